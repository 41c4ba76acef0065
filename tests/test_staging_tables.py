"""Cell-by-cell tests of the AJCC 8 esophageal clinical (cTNM) stage group tables.

The expected grids below are written out by hand from the AJCC Cancer Staging Manual,
8th edition, chapter 16 (clinical prognostic stage groups), for comparison with the
book; they are deliberately not derived from the code's own tables.
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
    "T4":  (U,     "IVA", "IVA", "IVA", "IVA"),
    "T4a": (U,     "IVA", "IVA", "IVA", "IVA"),
    "T4b": (U,     "IVA", "IVA", "IVA", "IVA"),
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
    "TX":  (U,     U,     U,     U,     "IVA"),
    "T0":  (U,     U,     U,     U,     "IVA"),
    "Tis": (U,     "0",   U,     U,     U),
    "T1":  (U,     "I",   "IIA", "IVA", "IVA"),
    "T1a": (U,     "I",   "IIA", "IVA", "IVA"),
    "T1b": (U,     "I",   "IIA", "IVA", "IVA"),
    "T2":  (U,     "IIB", "III", "IVA", "IVA"),
    "T3":  (U,     "III", "III", "IVA", "IVA"),
    "T4":  (U,     U,     U,     "IVA", "IVA"),
    "T4a": (U,     "III", "III", "IVA", "IVA"),
    "T4b": (U,     "IVA", "IVA", "IVA", "IVA"),
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


@pytest.mark.parametrize("context", ["p", "yc", "yp", "r"])
@pytest.mark.parametrize("histology", ["squamous_cell_carcinoma", "adenocarcinoma"])
@pytest.mark.parametrize(
    ("t", "n", "m"), [("T1", "N0", "M0"), ("T4", "N2", "M1"), ("Tis", "N0", "M0")]
)
def test_non_clinical_contexts_are_unknown(
    context: str, histology: str, t: str, n: str, m: str
) -> None:
    assert stage_group(context=context, histology=histology, t=t, n=n, m=m) == U


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
    assert STAGE_ORDER == ("0", "I", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IVA", "IVB")


@pytest.mark.parametrize(
    ("group", "rank"),
    [
        ("0", 0),
        ("I", 1),
        ("II", 2),
        ("IIA", 3),
        ("IIB", 4),
        ("III", 5),
        ("IIIA", 6),
        ("IIIB", 7),
        ("IVA", 8),
        ("IVB", 9),
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
    ],
)
def test_compare_groups(earlier: str, later: str, trend: str) -> None:
    assert compare_groups(earlier, later) == trend
