"""Cell-by-cell tests of the AJCC 8 esophageal pathological (pTNM) and post-neoadjuvant (ypTNM)
stage group tables, and of the determinate-unknown rule in every table.

Source: AJCC Cancer Staging Manual, 8th edition (2017), chapter 16 "Esophagus and
Esophagogastric Junction", pathological and postneoadjuvant prognostic stage groups; the pTNM
tables as reprinted in NCI PDQ "Esophageal Cancer Treatment - Health Professional Version",
tables 2-11; the ypTNM table as in Rice TW et al., J Thorac Oncol 2017;12:36-42. The grids are
written out by hand, cell by cell, from those tables; they are not derived from the code's
rows. Cells that no printed row defines are U, except where every value an X or
unsubcategorised T stands for gives one group (then that group, marked "det.").

pTNM SCC, pT3 N0 M0 (NCI PDQ table 4): "any grade, lower" IIA; "G1, upper/middle" IIA;
"G2-G3, upper/middle" IIB; "GX, any location" IIB; "any grade, location X" IIB. G1 with
location X matches only the last row: IIB. GX in the lower esophagus matches two rows (IIA and
IIB); the SEER/IMS "TNM 8 Path Stage Squamous" table (EOD 2018 algorithm) gives IIA.
"""

from __future__ import annotations

import pytest

from domain.staging import (
    CLINICAL_ADENOCARCINOMA,
    CLINICAL_SCC,
    PATHOLOGICAL_ADENOCARCINOMA,
    PATHOLOGICAL_SCC,
    POST_NEOADJUVANT,
    stage_group,
    staging_table,
    unknown_reason,
)

U = "unknown"
SCC = "squamous_cell_carcinoma"
ADC = "adenocarcinoma"
T_ALL = ("TX", "T0", "Tis", "T1", "T1a", "T1b", "T2", "T3", "T4", "T4a", "T4b")
N_ALL = ("NX", "N0", "N1", "N2", "N3")
GRADES = ("G1", "G2", "G3", "GX")
LOCATIONS = ("upper", "middle", "lower", "unknown")  # "unknown" is AJCC location X

# fmt: off
# pTNM squamous cell carcinoma, N0 M0: (T, grade) -> group at (upper, middle, lower, X).
P_SCC_N0: dict[tuple[str, str], tuple[str, str, str, str]] = {
    #                upper   middle  lower   X
    ("TX",  "G1"): (U,      U,      U,      U),
    ("TX",  "G2"): (U,      U,      U,      U),
    ("TX",  "G3"): (U,      U,      U,      U),
    ("TX",  "GX"): (U,      U,      U,      U),
    ("T0",  "G1"): (U,      U,      U,      U),
    ("T0",  "G2"): (U,      U,      U,      U),
    ("T0",  "G3"): (U,      U,      U,      U),
    ("T0",  "GX"): (U,      U,      U,      U),
    ("Tis", "G1"): ("0",    "0",    "0",    "0"),
    ("Tis", "G2"): ("0",    "0",    "0",    "0"),
    ("Tis", "G3"): ("0",    "0",    "0",    "0"),
    ("Tis", "GX"): ("0",    "0",    "0",    "0"),
    ("T1",  "G1"): (U,      U,      U,      U),      # T1a IA, T1b IB
    ("T1",  "G2"): ("IB",   "IB",   "IB",   "IB"),   # det.: T1a IB, T1b IB
    ("T1",  "G3"): ("IB",   "IB",   "IB",   "IB"),   # det.
    ("T1",  "GX"): (U,      U,      U,      U),      # T1a IA, T1b IB
    ("T1a", "G1"): ("IA",   "IA",   "IA",   "IA"),
    ("T1a", "G2"): ("IB",   "IB",   "IB",   "IB"),
    ("T1a", "G3"): ("IB",   "IB",   "IB",   "IB"),
    ("T1a", "GX"): ("IA",   "IA",   "IA",   "IA"),
    ("T1b", "G1"): ("IB",   "IB",   "IB",   "IB"),
    ("T1b", "G2"): ("IB",   "IB",   "IB",   "IB"),
    ("T1b", "G3"): ("IB",   "IB",   "IB",   "IB"),
    ("T1b", "GX"): ("IB",   "IB",   "IB",   "IB"),
    ("T2",  "G1"): ("IB",   "IB",   "IB",   "IB"),
    ("T2",  "G2"): ("IIA",  "IIA",  "IIA",  "IIA"),
    ("T2",  "G3"): ("IIA",  "IIA",  "IIA",  "IIA"),
    ("T2",  "GX"): ("IIA",  "IIA",  "IIA",  "IIA"),
    ("T3",  "G1"): ("IIA",  "IIA",  "IIA",  "IIB"),
    ("T3",  "G2"): ("IIB",  "IIB",  "IIA",  "IIB"),
    ("T3",  "G3"): ("IIB",  "IIB",  "IIA",  "IIB"),
    ("T3",  "GX"): ("IIB",  "IIB",  "IIA",  "IIB"),  # lower: SEER/IMS resolution
    ("T4",  "G1"): (U,      U,      U,      U),      # T4a IIIB, T4b IVA
    ("T4",  "G2"): (U,      U,      U,      U),
    ("T4",  "G3"): (U,      U,      U,      U),
    ("T4",  "GX"): (U,      U,      U,      U),
    ("T4a", "G1"): ("IIIB", "IIIB", "IIIB", "IIIB"),
    ("T4a", "G2"): ("IIIB", "IIIB", "IIIB", "IIIB"),
    ("T4a", "G3"): ("IIIB", "IIIB", "IIIB", "IIIB"),
    ("T4a", "GX"): ("IIIB", "IIIB", "IIIB", "IIIB"),
    ("T4b", "G1"): ("IVA",  "IVA",  "IVA",  "IVA"),
    ("T4b", "G2"): ("IVA",  "IVA",  "IVA",  "IVA"),
    ("T4b", "G3"): ("IVA",  "IVA",  "IVA",  "IVA"),
    ("T4b", "GX"): ("IVA",  "IVA",  "IVA",  "IVA"),
}

# pTNM squamous cell carcinoma, M0, N other than N0: the same for every grade and location.
P_SCC_NODES: dict[str, tuple[str, str, str, str]] = {
    #       NX     N1      N2      N3
    "TX":  (U,     U,      U,      "IVA"),  # N3: det. (any T)
    "T0":  (U,     U,      U,      "IVA"),
    "Tis": (U,     U,      U,      U),
    "T1":  (U,     "IIB",  "IIIA", "IVA"),
    "T1a": (U,     "IIB",  "IIIA", "IVA"),
    "T1b": (U,     "IIB",  "IIIA", "IVA"),
    "T2":  (U,     "IIIA", "IIIB", "IVA"),
    "T3":  (U,     "IIIB", "IIIB", "IVA"),
    "T4":  (U,     U,      "IVA",  "IVA"),  # N2: det. (T4a IVA, T4b IVA)
    "T4a": (U,     "IIIB", "IVA",  "IVA"),
    "T4b": ("IVA", "IVA",  "IVA",  "IVA"),  # NX: det. (N0-N3 all IVA)
}

# pTNM adenocarcinoma, N0 M0: T -> group at (G1, G2, G3, GX); location plays no part.
P_ADC_N0: dict[str, tuple[str, str, str, str]] = {
    #       G1      G2      G3      GX
    "TX":  (U,      U,      U,      U),
    "T0":  (U,      U,      U,      U),
    "Tis": ("0",    "0",    "0",    "0"),
    "T1":  (U,      "IB",   "IC",   U),     # G2, G3: det.; G1, GX: T1a IA, T1b IB
    "T1a": ("IA",   "IB",   "IC",   "IA"),
    "T1b": ("IB",   "IB",   "IC",   "IB"),
    "T2":  ("IC",   "IC",   "IIA",  "IIA"),
    "T3":  ("IIB",  "IIB",  "IIB",  "IIB"),
    "T4":  (U,      U,      U,      U),     # T4a IIIB, T4b IVA
    "T4a": ("IIIB", "IIIB", "IIIB", "IIIB"),
    "T4b": ("IVA",  "IVA",  "IVA",  "IVA"),
}

# pTNM adenocarcinoma, M0, N other than N0: the same for every grade.
P_ADC_NODES: dict[str, tuple[str, str, str, str]] = {
    #       NX     N1      N2      N3
    "TX":  (U,     U,      U,      "IVA"),
    "T0":  (U,     U,      U,      "IVA"),
    "Tis": (U,     U,      U,      U),
    "T1":  (U,     "IIB",  "IIIA", "IVA"),
    "T1a": (U,     "IIB",  "IIIA", "IVA"),
    "T1b": (U,     "IIB",  "IIIA", "IVA"),
    "T2":  (U,     "IIIA", "IIIB", "IVA"),
    "T3":  (U,     "IIIB", "IIIB", "IVA"),
    "T4":  (U,     U,      "IVA",  "IVA"),
    "T4a": (U,     "IIIB", "IVA",  "IVA"),
    "T4b": ("IVA", "IVA",  "IVA",  "IVA"),
}

# ypTNM, both histologies, M0; grade and location play no part. ypT0 and ypTis are staged
# with T1-T2 ("T0-2"); AJCC 8 has ypTis N0-N3 as categories of their own.
YP_M0: dict[str, tuple[str, str, str, str, str]] = {
    #       NX     N0      N1      N2      N3
    "TX":  (U,     U,      U,      U,      "IVA"),
    "T0":  (U,     "I",    "IIIA", "IIIB", "IVA"),
    "Tis": (U,     "I",    "IIIA", "IIIB", "IVA"),
    "T1":  (U,     "I",    "IIIA", "IIIB", "IVA"),
    "T1a": (U,     "I",    "IIIA", "IIIB", "IVA"),
    "T1b": (U,     "I",    "IIIA", "IIIB", "IVA"),
    "T2":  (U,     "I",    "IIIA", "IIIB", "IVA"),
    "T3":  (U,     "II",   "IIIB", "IIIB", "IVA"),
    "T4":  ("IVA", U,      "IVA",  "IVA",  "IVA"),  # N0: T4a IIIB, T4b IVA; NX, N1: det.
    "T4a": ("IVA", "IIIB", "IVA",  "IVA",  "IVA"),  # NX: the printed row ypT4a NX M0 IVA
    "T4b": ("IVA", "IVA",  "IVA",  "IVA",  "IVA"),  # NX: det.
}
# fmt: on


def every_row(
    context: str, histology: str, t: str, n: str, m: str, grades: tuple[str, ...] = GRADES
) -> set[str]:
    """The groups of one T, N, M across every grade (of `grades`) and every location."""
    return {
        stage_group(context=context, histology=histology, t=t, n=n, m=m, grade=g, location=loc)
        for g in grades
        for loc in LOCATIONS
    }


def test_grids_cover_every_t() -> None:
    for grid in (P_SCC_NODES, P_ADC_N0, P_ADC_NODES, YP_M0):
        assert tuple(grid) == T_ALL
    assert sorted(P_SCC_N0) == sorted((t, g) for t in T_ALL for g in GRADES)


P_SCC_N0_CELLS = [
    pytest.param(t, grade, location, expected, id=f"pT{t[1:]}N0M0-{grade}-{location}")
    for (t, grade), row in P_SCC_N0.items()
    for location, expected in zip(LOCATIONS, row, strict=True)
]


@pytest.mark.parametrize(("t", "grade", "location", "expected"), P_SCC_N0_CELLS)
def test_pathological_scc_n0_cell(t: str, grade: str, location: str, expected: str) -> None:
    got = stage_group(
        context="p", histology=SCC, t=t, n="N0", m="M0", grade=grade, location=location
    )
    assert got == expected


NODE_CELLS = [
    pytest.param(histology, t, n, expected, id=f"{label}-p{t}{n}M0")
    for histology, label, grid in ((SCC, "scc", P_SCC_NODES), (ADC, "adc", P_ADC_NODES))
    for t, row in grid.items()
    for n, expected in zip(("NX", "N1", "N2", "N3"), row, strict=True)
]


@pytest.mark.parametrize(("histology", "t", "n", "expected"), NODE_CELLS)
def test_pathological_node_cell_for_every_grade_and_location(
    histology: str, t: str, n: str, expected: str
) -> None:
    assert every_row("p", histology, t, n, "M0") == {expected}


@pytest.mark.parametrize(
    ("t", "grade", "expected"),
    [
        pytest.param(t, grade, expected, id=f"pT{t[1:]}N0M0-{grade}")
        for t, row in P_ADC_N0.items()
        for grade, expected in zip(GRADES, row, strict=True)
    ],
)
def test_pathological_adenocarcinoma_n0_cell_for_every_location(
    t: str, grade: str, expected: str
) -> None:
    assert every_row("p", ADC, t, "N0", "M0", grades=(grade,)) == {expected}


@pytest.mark.parametrize(
    ("t", "n", "expected"),
    [
        pytest.param(t, n, expected, id=f"yp{t}{n}M0")
        for t, row in YP_M0.items()
        for n, expected in zip(N_ALL, row, strict=True)
    ],
)
@pytest.mark.parametrize("histology", [SCC, ADC])
def test_post_neoadjuvant_cell(histology: str, t: str, n: str, expected: str) -> None:
    assert every_row("yp", histology, t, n, "M0") == {expected}


@pytest.mark.parametrize("context", ["c", "p", "yc", "yp", "r"])
@pytest.mark.parametrize("histology", [SCC, ADC])
@pytest.mark.parametrize("t", T_ALL)
@pytest.mark.parametrize("n", N_ALL)
def test_any_m1_is_ivb_in_every_context(context: str, histology: str, t: str, n: str) -> None:
    assert every_row(context, histology, t, n, "M1") == {"IVB"}


# -- the cells the issue and the tables' own rows single out ------------------------------------


@pytest.mark.parametrize(
    ("context", "histology", "t", "n", "grade", "location", "expected"),
    [
        # Determinate unknowns named in issue 13.
        ("c", SCC, "T4", "NX", "GX", "unknown", "IVA"),
        ("c", ADC, "TX", "N2", "GX", "unknown", "IVA"),
        # One per table: an X or unsubcategorised category every value of which agrees...
        ("c", SCC, "TX", "N3", "G2", "lower", "IVA"),
        ("c", ADC, "T4", "N2", "G2", "lower", "IVA"),
        ("c", ADC, "T4b", "NX", "G2", "lower", "IVA"),
        ("p", SCC, "T4b", "NX", "G1", "upper", "IVA"),
        ("p", SCC, "T1", "N0", "G3", "middle", "IB"),
        ("p", SCC, "T4", "N2", "G1", "upper", "IVA"),
        ("p", ADC, "T1", "N0", "G3", "unknown", "IC"),
        ("p", ADC, "T1", "N0", "G2", "unknown", "IB"),
        ("p", ADC, "TX", "N3", "G2", "unknown", "IVA"),
        ("yp", SCC, "T4", "NX", "G2", "upper", "IVA"),
        ("yp", ADC, "T4b", "NX", "G2", "upper", "IVA"),
        ("yp", ADC, "T4", "N1", "G2", "upper", "IVA"),
        ("yp", SCC, "T1", "N0", "G2", "upper", "I"),
        # ...and one each where the values disagree.
        ("c", SCC, "T1", "NX", "GX", "unknown", U),  # N0-N1 I, N2 III
        ("c", ADC, "T4", "N0", "GX", "unknown", U),  # T4a III, T4b IVA
        ("c", ADC, "TX", "N1", "GX", "unknown", U),  # T1 IIA, T2 III, T4b IVA
        ("p", SCC, "T1", "N0", "G1", "upper", U),  # T1a IA, T1b IB
        ("p", SCC, "TX", "N1", "G2", "upper", U),
        ("p", ADC, "T1", "N0", "GX", "lower", U),  # T1a IA, T1b IB
        ("p", ADC, "T4a", "NX", "G2", "lower", U),  # N0-N1 IIIB, N2-N3 IVA
        ("yp", SCC, "T4", "N0", "G2", "lower", U),  # T4a IIIB, T4b IVA
        ("yp", ADC, "TX", "N2", "G2", "lower", U),  # T0-T3 IIIB, T4 IVA
        # The table's own GX and location X rows.
        ("p", SCC, "T1a", "N0", "GX", "middle", "IA"),
        ("p", SCC, "T2", "N0", "GX", "middle", "IIA"),
        ("p", SCC, "T3", "N0", "G1", "unknown", "IIB"),
        ("p", SCC, "T3", "N0", "G3", "unknown", "IIB"),
        ("p", SCC, "T3", "N0", "GX", "upper", "IIB"),
        ("p", SCC, "T3", "N0", "GX", "lower", "IIA"),
        ("p", ADC, "T1a", "N0", "GX", "unknown", "IA"),
        ("p", ADC, "T2", "N0", "GX", "unknown", "IIA"),
        # The printed ypTNM row with NX.
        ("yp", SCC, "T4a", "NX", "GX", "unknown", "IVA"),
        ("yp", ADC, "T4a", "NX", "GX", "unknown", "IVA"),
    ],
)
def test_singled_out_cells(
    context: str, histology: str, t: str, n: str, grade: str, location: str, expected: str
) -> None:
    got = stage_group(
        context=context, histology=histology, t=t, n=n, m="M0", grade=grade, location=location
    )
    assert got == expected


def test_grade_and_location_default_to_the_gx_and_location_x_rows() -> None:
    assert stage_group(context="p", histology=SCC, t="T3", n="N0", m="M0") == "IIB"
    assert stage_group(context="p", histology=ADC, t="T2", n="N0", m="M0") == "IIA"


def test_clinical_tables_ignore_grade_and_location() -> None:
    assert every_row("c", SCC, "T3", "N0", "M0") == {"II"}


@pytest.mark.parametrize(
    ("context", "histology", "table"),
    [
        ("c", SCC, CLINICAL_SCC),
        ("yc", SCC, CLINICAL_SCC),
        ("r", SCC, CLINICAL_SCC),
        ("c", ADC, CLINICAL_ADENOCARCINOMA),
        ("yc", ADC, CLINICAL_ADENOCARCINOMA),
        ("r", ADC, CLINICAL_ADENOCARCINOMA),
        ("p", SCC, PATHOLOGICAL_SCC),
        ("p", ADC, PATHOLOGICAL_ADENOCARCINOMA),
        ("yp", SCC, POST_NEOADJUVANT),
        ("yp", ADC, POST_NEOADJUVANT),
        ("c", "other", None),
        ("yp", "other", None),
        ("x", SCC, None),
    ],
)
def test_each_context_names_its_table(context: str, histology: str, table: str | None) -> None:
    assert staging_table(context, histology) == table


def test_table_names() -> None:
    assert (CLINICAL_SCC, CLINICAL_ADENOCARCINOMA) == (
        "AJCC8 cTNM SCC",
        "AJCC8 cTNM adenocarcinoma",
    )
    assert (PATHOLOGICAL_SCC, PATHOLOGICAL_ADENOCARCINOMA, POST_NEOADJUVANT) == (
        "AJCC8 pTNM SCC",
        "AJCC8 pTNM adenocarcinoma",
        "AJCC8 ypTNM",
    )


@pytest.mark.parametrize("context", ["p", "yp"])
@pytest.mark.parametrize(("t", "n", "m"), [("T1a", "N0", "M0"), ("T4b", "N2", "M1")])
def test_other_histology_has_no_pathological_table(context: str, t: str, n: str, m: str) -> None:
    assert stage_group(context=context, histology="other", t=t, n=n, m=m) == U


@pytest.mark.parametrize(("grade", "location"), [("G4", "lower"), ("G1", "distal"), ("", "")])
def test_unrecognised_grade_or_location_is_unknown(grade: str, location: str) -> None:
    got = stage_group(
        context="p", histology=SCC, t="T2", n="N1", m="M0", grade=grade, location=location
    )
    assert got == U


def test_unknown_reasons_say_why() -> None:
    assert unknown_reason(context="c", histology=SCC, t="T4", n="N2", m="M1") is None
    assert unknown_reason(context="p", histology=SCC, t="T1", n="N0", m="M0", grade="G1") == (
        "AJCC8 pTNM SCC gives IA, IB for the values pT1N0M0 stands for"
    )
    assert unknown_reason(context="c", histology=ADC, t="T0", n="N2", m="M0") == (
        "AJCC8 cTNM adenocarcinoma defines no group for cT0N2M0"
    )
    assert unknown_reason(context="yp", histology="other", t="T1", n="N0", m="M0") == (
        "no AJCC 8 esophageal table for histology 'other' in context 'yp'"
    )
    assert unknown_reason(context="c", histology=None, t="T1", n="N0", m="M0") == (
        "no diagnosis in force: its histology picks the AJCC 8 table"
    )
