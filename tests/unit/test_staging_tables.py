"""Cell-by-cell tests of the AJCC 8 esophageal clinical (cTNM) stage group tables.

The expected grids below are written out by hand from the AJCC Cancer Staging Manual,
8th edition, chapter 16 (clinical prognostic stage groups), for comparison with the
book; they are deliberately not derived from the code's own tables.

An X category or unsubcategorised T is staged where every value it stands for gives the same
group (issue 13): SCC cT4 NX M0 is IVA (T4 N0-N3 all IVA), adenocarcinoma cTX N2 M0 is IVA
(T1-T4b N2 all IVA), cT4b NX M0 is IVA in both tables. The pathological and post-neoadjuvant
tables are tested in tests/test_staging_path_yp_tables.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.staging import STAGE_ORDER, compare_groups, stage_group, stage_rank

U = "unknown"
N_COLUMNS = ("NX", "N0", "N1", "N2", "N3")

# fmt: off
# Squamous cell carcinoma, clinical, M0.
SCC_M0: dict[str, tuple[str, str, str, str, str]] = {
    #       NX     N0     N1     N2     N3
    "TX":  (U,     U,     U,     U,     "IVA"),
    "T0":  (U,     U,     U,     U,     "IVA"),
    "Tis": (U,     "0",   U,     U,     U),
    "T1":  (U,     "I",   "I",   "III", "IVA"),
    "T1a": (U,     "I",   "I",   "III", "IVA"),
    "T1b": (U,     "I",   "I",   "III", "IVA"),
    "T2":  (U,     "II",  "II",  "III", "IVA"),
    "T3":  (U,     "II",  "III", "III", "IVA"),
    "T4":  ("IVA", "IVA", "IVA", "IVA", "IVA"),  # NX: every N gives IVA
    "T4a": ("IVA", "IVA", "IVA", "IVA", "IVA"),
    "T4b": ("IVA", "IVA", "IVA", "IVA", "IVA"),
}

# Squamous cell carcinoma, clinical, M1: IVB for any T and any N (SPEC: any M1 is IVB).
SCC_M1: dict[str, tuple[str, str, str, str, str]] = {
    #       NX     N0     N1     N2     N3
    "TX":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T0":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "Tis": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T1":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T1a": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T1b": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T2":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T3":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T4":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T4a": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T4b": ("IVB", "IVB", "IVB", "IVB", "IVB"),
}

# Adenocarcinoma, clinical, M0. Bare T4 is undefined with N0-N1 (T4a III, T4b IVA).
ADC_M0: dict[str, tuple[str, str, str, str, str]] = {
    #       NX     N0     N1     N2     N3
    "TX":  (U,     U,     U,     "IVA", "IVA"),  # N2: every T (T1-T4b) gives IVA
    "T0":  (U,     U,     U,     U,     "IVA"),
    "Tis": (U,     "0",   U,     U,     U),
    "T1":  (U,     "I",   "IIA", "IVA", "IVA"),
    "T1a": (U,     "I",   "IIA", "IVA", "IVA"),
    "T1b": (U,     "I",   "IIA", "IVA", "IVA"),
    "T2":  (U,     "IIB", "III", "IVA", "IVA"),
    "T3":  (U,     "III", "III", "IVA", "IVA"),
    "T4":  (U,     U,     U,     "IVA", "IVA"),
    "T4a": (U,     "III", "III", "IVA", "IVA"),
    "T4b": ("IVA", "IVA", "IVA", "IVA", "IVA"),  # NX: every N gives IVA
}

# Adenocarcinoma, clinical, M1: IVB for any T and any N (SPEC: any M1 is IVB).
ADC_M1: dict[str, tuple[str, str, str, str, str]] = {
    #       NX     N0     N1     N2     N3
    "TX":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T0":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "Tis": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T1":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T1a": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T1b": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T2":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T3":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T4":  ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T4a": ("IVB", "IVB", "IVB", "IVB", "IVB"),
    "T4b": ("IVB", "IVB", "IVB", "IVB", "IVB"),
}
# fmt: on

GRIDS = {
    ("squamous_cell_carcinoma", "M0"): SCC_M0,
    ("squamous_cell_carcinoma", "M1"): SCC_M1,
    ("adenocarcinoma", "M0"): ADC_M0,
    ("adenocarcinoma", "M1"): ADC_M1,
}

CELLS = [
    pytest.param(histology, t, n, m, expected, id=f"{histology}-{t}{n}{m}")
    for (histology, m), grid in GRIDS.items()
    for t, row in grid.items()
    for n, expected in zip(N_COLUMNS, row, strict=True)
]


def test_grids_cover_every_t_n_m() -> None:
    all_t = ["TX", "T0", "Tis", "T1", "T1a", "T1b", "T2", "T3", "T4", "T4a", "T4b"]
    for grid in GRIDS.values():
        assert list(grid) == all_t
    assert len(CELLS) == 2 * 2 * 11 * 5


@pytest.mark.parametrize(("histology", "t", "n", "m", "expected"), CELLS)
def test_clinical_table_cell(histology: str, t: str, n: str, m: str, expected: str) -> None:
    assert stage_group(context="c", histology=histology, t=t, n=n, m=m) == expected


def test_case_report_staging_is_ivb() -> None:
    # The seed case: esophageal squamous cell carcinoma, cT4N2M1.
    assert (
        stage_group(context="c", histology="squamous_cell_carcinoma", t="T4", n="N2", m="M1")
        == "IVB"
    )


@pytest.mark.parametrize("context", ["c", "yc", "r"])
@pytest.mark.parametrize("histology", ["squamous_cell_carcinoma", "adenocarcinoma"])
@pytest.mark.parametrize("m", ["M0", "M1"])
@pytest.mark.parametrize("n", N_COLUMNS)
@pytest.mark.parametrize("t", ["TX", "T0", "Tis", "T1", "T1a", "T2", "T3", "T4", "T4a", "T4b"])
def test_yc_and_r_use_the_clinical_table(
    context: str, histology: str, t: str, n: str, m: str
) -> None:
    # AJCC 8 prints no ycTNM or rTNM table: both are grouped with the cTNM table (prefix kept).
    expected = GRIDS[(histology, m)][t][N_COLUMNS.index(n)]
    assert stage_group(context=context, histology=histology, t=t, n=n, m=m) == expected


@pytest.mark.parametrize(
    ("t", "n", "m"), [("T1", "N0", "M0"), ("T4", "N2", "M1"), ("TX", "N3", "M0")]
)
def test_other_histology_is_unknown(t: str, n: str, m: str) -> None:
    assert stage_group(context="c", histology="other", t=t, n=n, m=m) == U


@pytest.mark.parametrize(
    ("context", "histology", "t", "n", "m"),
    [
        ("", "squamous_cell_carcinoma", "T1", "N0", "M0"),
        ("C", "squamous_cell_carcinoma", "T1", "N0", "M0"),
        ("c", "", "T1", "N0", "M0"),
        ("c", "Squamous_Cell_Carcinoma", "T1", "N0", "M0"),
        ("c", "squamous_cell_carcinoma", "T5", "N0", "M0"),
        ("c", "squamous_cell_carcinoma", "t1", "N0", "M0"),
        ("c", "squamous_cell_carcinoma", " T1", "N0", "M0"),
        ("c", "adenocarcinoma", "T1c", "N0", "M0"),
        ("c", "adenocarcinoma", "T1", "N4", "M0"),
        ("c", "adenocarcinoma", "T1", "N0", "MX"),
        ("c", "adenocarcinoma", "T1", "N0", "M1a"),
        ("c", "adenocarcinoma", "T4", "N9", "M1"),
        ("c", "adenocarcinoma", "", "", ""),
        ("c", "adenocarcinoma", "T1\x00", "N0\n", "M0 "),
        ("c", "adenocarcinoma", "T1" * 1000, "N0", "M0"),
    ],
)
def test_garbage_strings_are_unknown(context: str, histology: str, t: str, n: str, m: str) -> None:
    assert stage_group(context=context, histology=histology, t=t, n=n, m=m) == U


@pytest.mark.parametrize("bad", [None, 1, ["T1"], {"T": 1}, b"T1"])
def test_non_string_input_is_unknown(bad: Any) -> None:
    assert stage_group(context=bad, histology="adenocarcinoma", t="T1", n="N0", m="M0") == U
    assert stage_group(context="c", histology=bad, t="T1", n="N0", m="M0") == U
    assert stage_group(context="c", histology="adenocarcinoma", t=bad, n="N0", m="M1") == U
    assert stage_group(context="c", histology="adenocarcinoma", t="T1", n=bad, m="M1") == U
    assert stage_group(context="c", histology="adenocarcinoma", t="T1", n="N0", m=bad) == U


def test_stage_order() -> None:
    # Each stage number before its lettered subgroups, as SPEC section 4 orders II < IIA < IIB.
    assert STAGE_ORDER == (
        "0", "I", "IA", "IB", "IC", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IVA", "IVB"
    )  # fmt: skip
    assert isinstance(STAGE_ORDER, tuple) and all(isinstance(g, str) for g in STAGE_ORDER)


def test_stage_order_keeps_the_spec_order() -> None:
    spec = ["0", "I", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IVA", "IVB"]
    assert [g for g in STAGE_ORDER if g in spec] == spec


@pytest.mark.parametrize(
    ("group", "rank"),
    [
        ("0", 0),
        ("I", 1),
        ("IA", 2),
        ("IB", 3),
        ("IC", 4),
        ("II", 5),
        ("IIA", 6),
        ("IIB", 7),
        ("III", 8),
        ("IIIA", 9),
        ("IIIB", 10),
        ("IVA", 11),
        ("IVB", 12),
    ],
)
def test_stage_rank(group: str, rank: int) -> None:
    assert stage_rank(group) == rank


@pytest.mark.parametrize("group", ["unknown", "", "IV", "ivb", "V"])
def test_stage_rank_unknown(group: str) -> None:
    assert stage_rank(group) is None


@pytest.mark.parametrize(
    ("earlier", "later", "trend"),
    [
        ("IVB", "IVB", "unchanged"),
        ("IVA", "III", "improved"),
        ("II", "IVB", "worsened"),
        ("unknown", "IVB", "insufficient_data"),
        ("IVB", "unknown", "insufficient_data"),
        ("unknown", "unknown", "insufficient_data"),
        ("IIA", "IIB", "worsened"),
        ("I", "0", "improved"),
        ("IA", "IB", "worsened"),
        ("IC", "IIA", "worsened"),
        ("IIB", "IIIA", "worsened"),
        ("IIIB", "IVA", "worsened"),
        ("IVA", "IVB", "worsened"),
        ("IIIA", "IIB", "improved"),
        ("IB", "IA", "improved"),
        # A group without a letter covers its subgroups (clinical I vs pathological IA-IC).
        ("I", "IA", "unchanged"),
        ("IC", "I", "unchanged"),
        ("II", "IIB", "unchanged"),
        ("IIIA", "III", "unchanged"),
        ("I", "IIA", "worsened"),
        ("III", "IIB", "improved"),
        ("II", "IIIA", "worsened"),
    ],
)
def test_compare_groups(earlier: str, later: str, trend: str) -> None:
    assert compare_groups(earlier, later) == trend
