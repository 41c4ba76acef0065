"""AJCC 8th edition stage groups for esophageal cancer (clinical, cTNM).

Sources:

- AJCC Cancer Staging Manual, 8th edition (Amin MB, Edge S, Greene F, et al., eds.;
  Springer, 2017), chapter 16 "Esophagus and Esophagogastric Junction":
  clinical prognostic stage groups (cTNM) for squamous cell carcinoma and for
  adenocarcinoma.
- Rice TW, Ishwaran H, Ferguson MK, Blackstone EH, Goldstraw P. "Cancer of the
  esophagus and esophagogastric junction: an eighth edition staging primer."
  J Thorac Oncol 2017;12(1):36-42.

The clinical tables use T, N and M only (grade and location matter only in the
pathological squamous table). Both tables are written out below row by row, exactly
as printed, so that each cell can be checked against the book.

Reading of the tables (SPEC section 4, **stage**):

- Only the clinical context ``c`` has tables here. Every other context (``p``,
  ``yc``, ``yp``, ``r``) gives ``"unknown"`` until its own table is added, even with M1.
- Histology ``other`` (or anything unrecognised) gives ``"unknown"``.
- T1a and T1b are staged as T1. For squamous cell carcinoma T4a and T4b are staged
  as T4. For adenocarcinoma the table splits T4a from T4b, so a bare ``T4`` is staged
  only where both would give the same group (N2, N3, M1) and is ``"unknown"`` with
  N0 or N1.
- "Any T" (the N3 row and the M1 row) is read literally as every T category, TX and
  T0 included: TX/T0 N3 M0 is IVA, and any T with any N (NX and Tis included)
  and M1 is IVB.
- Tis is carcinoma in situ (high-grade dysplasia). Tis N0 M0 is stage 0. Tis with N
  other than N0 and M0 (which SPEC section 3 calls invalid) gives ``"unknown"``; with M1
  the table's "any T, any N, M1" row and SPEC section 4 ("any M1 is IVB") give IVB.
- Any combination the table does not define (TX, T0 or NX with M0 outside the N3
  row) gives ``"unknown"``, and so does any value that is not a recognised code.
  ``stage_group`` never raises for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

STAGE_ORDER: tuple[str, ...] = ("0", "I", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IVA", "IVB")
UNKNOWN: Final = "unknown"

# One printed table row: (T categories, N categories, M category, stage group).
_Row = tuple[tuple[str, ...], tuple[str, ...], str, str]

_ANY_N: Final = ("NX", "N0", "N1", "N2", "N3")  # "Any N", NX included.

# --- Squamous cell carcinoma, clinical (cTNM) -------------------------------------
# T rows of the printed table. "Any T" = all of them except Tis.
_SCC_T_ROWS: Final = ("TX", "T0", "Tis", "T1", "T2", "T3", "T4")
_SCC_ANY_T: Final = tuple(row for row in _SCC_T_ROWS if row != "Tis")
# fmt: off
_SCC_TABLE: Final[tuple[_Row, ...]] = (
    # T                     N                     M     group
    (("Tis",),              ("N0",),              "M0", "0"),
    (("T1",),               ("N0", "N1"),         "M0", "I"),
    (("T2",),               ("N0", "N1"),         "M0", "II"),
    (("T3",),               ("N0",),              "M0", "II"),
    (("T3",),               ("N1",),              "M0", "III"),
    (("T1", "T2", "T3"),    ("N2",),              "M0", "III"),
    (("T4",),               ("N0", "N1", "N2"),   "M0", "IVA"),
    (_SCC_ANY_T,            ("N3",),              "M0", "IVA"),  # Any T, N3, M0
    (_SCC_T_ROWS,           _ANY_N,               "M1", "IVB"),  # Any T, any N, M1
)
# fmt: on
# Input T code -> the printed T rows it falls under.
_SCC_T_INPUT: Final[dict[str, tuple[str, ...]]] = {
    "TX": ("TX",),
    "T0": ("T0",),
    "Tis": ("Tis",),
    "T1": ("T1",),
    "T1a": ("T1",),
    "T1b": ("T1",),
    "T2": ("T2",),
    "T3": ("T3",),
    "T4": ("T4",),
    "T4a": ("T4",),
    "T4b": ("T4",),
}

# --- Adenocarcinoma, clinical (cTNM) ----------------------------------------------
_ADC_T_ROWS: Final = ("TX", "T0", "Tis", "T1", "T2", "T3", "T4a", "T4b")
_ADC_ANY_T: Final = tuple(row for row in _ADC_T_ROWS if row != "Tis")
# fmt: off
_ADC_TABLE: Final[tuple[_Row, ...]] = (
    # T                         N                     M     group
    (("Tis",),                  ("N0",),              "M0", "0"),
    (("T1",),                   ("N0",),              "M0", "I"),
    (("T1",),                   ("N1",),              "M0", "IIA"),
    (("T2",),                   ("N0",),              "M0", "IIB"),
    (("T2",),                   ("N1",),              "M0", "III"),
    (("T3",),                   ("N0", "N1"),         "M0", "III"),
    (("T4a",),                  ("N0", "N1"),         "M0", "III"),
    (("T1", "T2", "T3", "T4a"), ("N2",),              "M0", "IVA"),
    (("T4b",),                  ("N0", "N1", "N2"),   "M0", "IVA"),
    (_ADC_ANY_T,                ("N3",),              "M0", "IVA"),  # Any T, N3, M0
    (_ADC_T_ROWS,               _ANY_N,               "M1", "IVB"),  # Any T, any N, M1
)
# fmt: on
_ADC_T_INPUT: Final[dict[str, tuple[str, ...]]] = {
    "TX": ("TX",),
    "T0": ("T0",),
    "Tis": ("Tis",),
    "T1": ("T1",),
    "T1a": ("T1",),
    "T1b": ("T1",),
    "T2": ("T2",),
    "T3": ("T3",),
    "T4": ("T4a", "T4b"),  # defined only where T4a and T4b agree
    "T4a": ("T4a",),
    "T4b": ("T4b",),
}


def _cells(rows: Iterable[_Row]) -> dict[tuple[str, str, str], str]:
    """Expand printed rows into a (T row, N, M) -> group map; rows must not overlap."""
    cells: dict[tuple[str, str, str], str] = {}
    for t_rows, n_values, m, group in rows:
        for t in t_rows:
            for n in n_values:
                if (t, n, m) in cells:
                    raise ValueError(f"overlapping table rows at {t} {n} {m}")
                cells[(t, n, m)] = group
    return cells


# histology -> (input T -> printed T rows, (T row, N, M) -> group)
_Table = tuple[dict[str, tuple[str, ...]], dict[tuple[str, str, str], str]]
_TABLES: Final[dict[str, _Table]] = {
    "squamous_cell_carcinoma": (_SCC_T_INPUT, _cells(_SCC_TABLE)),
    "adenocarcinoma": (_ADC_T_INPUT, _cells(_ADC_TABLE)),
}


def stage_group(*, context: str, histology: str, t: str, n: str, m: str) -> str:
    """Return the AJCC 8 esophageal stage group for a TNM assessment, or ``"unknown"``."""
    if not all(isinstance(value, str) for value in (context, histology, t, n, m)):
        return UNKNOWN
    if context != "c" or histology not in _TABLES:
        return UNKNOWN
    t_input, cells = _TABLES[histology]
    groups = {cells.get((row, n, m)) for row in t_input.get(t, ())}
    if len(groups) != 1:  # no such T, or (bare adenocarcinoma T4) T4a and T4b disagree
        return UNKNOWN
    group = groups.pop()
    return UNKNOWN if group is None else group


def stage_rank(group: str) -> int | None:
    """Position of ``group`` in STAGE_ORDER, or None for ``"unknown"`` or anything else."""
    try:
        return STAGE_ORDER.index(group)
    except ValueError:
        return None


def compare_groups(earlier: str, later: str) -> str:
    """Trend from ``earlier`` to ``later``: unchanged, improved, worsened or insufficient_data."""
    before, after = stage_rank(earlier), stage_rank(later)
    if before is None or after is None:
        return "insufficient_data"
    if after == before:
        return "unchanged"
    return "improved" if after < before else "worsened"
