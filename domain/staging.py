"""AJCC 8th edition stage groups for cancer of the esophagus and esophagogastric junction.

Sources:

- AJCC Cancer Staging Manual, 8th edition (Amin MB, Edge SB, Greene FL, et al., eds.;
  Springer, 2017), chapter 16 "Esophagus and Esophagogastric Junction", pp. 185-202:
  the clinical (cTNM), pathological (pTNM) and post-neoadjuvant (ypTNM) prognostic stage
  group tables.
- NCI PDQ "Esophageal Cancer Treatment (PDQ®) - Health Professional Version", Stage
  Information, tables 2-11: the pTNM tables of both histologies, reprinted with permission
  from the manual (checked row by row against the rows below).
- Rice TW, Ishwaran H, Ferguson MK, Blackstone EH, Goldstraw P. "Cancer of the esophagus and
  esophagogastric junction: an eighth edition staging primer." J Thorac Oncol
  2017;12(1):36-42; Rice TW, Patil DT, Blackstone EH. "8th edition AJCC/UICC staging of
  cancers of the esophagus and esophagogastric junction: application to clinical practice."
  Ann Cardiothorac Surg 2017;6(2):119-130 (ypTNM is one table for both cell types and has
  categories of its own, ypT0 and ypTis with N0-N3).
- SEER / IMS "TNM 8 Path Stage Squamous" and "TNM 8 Path Stage Adenocarcinoma" tables of the
  EOD 2018 staging algorithm (github.com/imsweb/staging-algorithm-eod-public), the registrars'
  computable form of the pTNM tables: used to settle the one cell where two printed rows
  disagree (below) and as a second check of every pTNM cell.

Every table is written out below row by row, as printed, so that each row can be checked
against the book. How they are read:

- Context picks the table. ``c`` uses the cTNM table. ``p`` uses the pTNM table. ``yp`` uses
  the ypTNM table (one for both histologies). Chapter 16 prints no ycTNM or rTNM table; the
  general rules (AJCC 8 chapter 1) stage a post-therapy clinical classification and a
  recurrence with the table of the classification they are made in, keeping the prefix:
  ``yc`` uses the cTNM table (shown as ``ycT..N..M..``), and ``r``, which does not say whether
  the recurrence was staged clinically or pathologically, is read as clinical (rc) and uses
  the cTNM table too.
- Histology ``other`` (or anything unrecognised) has no table: ``"unknown"``.
- Grade (G1, G2, G3, GX) and tumour location (upper, middle, lower, unknown = location X)
  matter only where a pTNM row names them; GX and location X are rows of their own.
- Any M1 is IVB in every context and table ("any T, any N, M1"), Tis included.
- "Any T" (the N3 row) is every T row of the table except Tis in the cTNM and pTNM tables
  (there Tis, high-grade dysplasia, is N0 by definition); the ypTNM table has ypTis with
  N0-N3, so there "any T" and "T0-2" include Tis.
- Determinate unknowns. An ``X`` category or an unsubcategorised T (T1 where the table
  splits T1a/T1b, T4 where it splits T4a/T4b) is staged when every value it could stand for
  gives the same group: NX stands for N0-N3 (a printed NX row, ypT4a NX, is used as printed);
  TX stands for every T of an existing tumour (a staging needs a confirmed diagnosis, so not
  T0), Tis only with N0. So SCC cT4 NX M0 is IVA and adenocarcinoma cTX N2 M0 is IVA.
  Otherwise, and for any combination no row defines, the group is ``"unknown"``.
  ``stage_group`` never raises for bad input.
- The pTNM SCC table has one cell two rows claim: pT3 N0 M0 GX in the lower esophagus is
  IIA by "T3 N0 M0, any grade, lower" and IIB by "T3 N0 M0, GX, any location". It is IIA, as
  the SEER/IMS table has it (T3, N0, M0, grade 9, epicenter 2 -> 2A). pT3 N0 M0 G1 with
  location X matches one row only, "T3 N0 M0, any grade, location X" -> IIB (the G1 row is
  "upper/middle", not "any location"), as SEER/IMS also has it (grade 1, epicenter 9 -> 2B).

The order of groups (``STAGE_ORDER``) puts each stage number before its lettered subgroups,
as SPEC section 4 does: 0 < I < IA < IB < IC < II < IIA < IIB < III < IIIA < IIIB < IVA <
IVB. A group without a letter (the clinical I, II, III, the ypTNM I, II) covers all the
lettered groups of its number, so ``compare_groups`` calls I -> IA (or IIB -> II) unchanged;
otherwise the order decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

STAGE_ORDER: tuple[str, ...] = (
    "0",
    "I",
    "IA",
    "IB",
    "IC",
    "II",
    "IIA",
    "IIB",
    "III",
    "IIIA",
    "IIIB",
    "IVA",
    "IVB",
)
UNKNOWN: Final = "unknown"

T_CODES: Final = ("TX", "T0", "Tis", "T1", "T1a", "T1b", "T2", "T3", "T4", "T4a", "T4b")
N_CODES: Final = ("NX", "N0", "N1", "N2", "N3")
M_CODES: Final = ("M0", "M1")
GRADES: Final = ("G1", "G2", "G3", "GX")
LOCATIONS: Final = ("upper", "middle", "lower", "unknown")  # unknown = AJCC "location X"
CONTEXTS: Final = ("c", "p", "yc", "yp", "r")
HISTOLOGIES: Final = ("squamous_cell_carcinoma", "adenocarcinoma")

CLINICAL_SCC: Final = "AJCC8 cTNM SCC"
CLINICAL_ADENOCARCINOMA: Final = "AJCC8 cTNM adenocarcinoma"
PATHOLOGICAL_SCC: Final = "AJCC8 pTNM SCC"
PATHOLOGICAL_ADENOCARCINOMA: Final = "AJCC8 pTNM adenocarcinoma"
POST_NEOADJUVANT: Final = "AJCC8 ypTNM"

# One printed row: (T rows, N, M, grades, locations, group).
_Row = tuple[tuple[str, ...], tuple[str, ...], str, tuple[str, ...], tuple[str, ...], str]
_Cell = tuple[str, str, str, str, str]  # (T row, N, M, grade, location)

_ANY_G: Final = GRADES
_ANY_L: Final = LOCATIONS
_UPPER_MIDDLE: Final = ("upper", "middle")
_LOWER: Final = ("lower",)
_LOCATION_X: Final = ("unknown",)
_N0_TO_N3: Final = ("N0", "N1", "N2", "N3")
_ANY_N: Final = ("NX", *_N0_TO_N3)


def _rows(*rows: tuple[tuple[str, ...], tuple[str, ...], str, str]) -> tuple[_Row, ...]:
    """Rows that name neither grade nor location (any grade, any location)."""
    return tuple((t, n, m, _ANY_G, _ANY_L, group) for t, n, m, group in rows)


# --- Clinical (cTNM), squamous cell carcinoma -----------------------------------------------
_C_SCC_T: Final = ("T0", "Tis", "T1", "T2", "T3", "T4")
_C_SCC_ANY_T: Final = tuple(t for t in _C_SCC_T if t != "Tis")
# fmt: off
_C_SCC: Final = _rows(
    # T                     N                     M     group
    (("Tis",),              ("N0",),              "M0", "0"),
    (("T1",),               ("N0", "N1"),         "M0", "I"),
    (("T2",),               ("N0", "N1"),         "M0", "II"),
    (("T3",),               ("N0",),              "M0", "II"),
    (("T3",),               ("N1",),              "M0", "III"),
    (("T1", "T2", "T3"),    ("N2",),              "M0", "III"),
    (("T4",),               ("N0", "N1", "N2"),   "M0", "IVA"),
    (_C_SCC_ANY_T,          ("N3",),              "M0", "IVA"),  # Any T, N3, M0
    (_C_SCC_T,              _ANY_N,               "M1", "IVB"),  # Any T, any N, M1
)
# fmt: on

# --- Clinical (cTNM), adenocarcinoma ---------------------------------------------------------
_C_ADC_T: Final = ("T0", "Tis", "T1", "T2", "T3", "T4a", "T4b")
_C_ADC_ANY_T: Final = tuple(t for t in _C_ADC_T if t != "Tis")
# fmt: off
_C_ADC: Final = _rows(
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
    (_C_ADC_ANY_T,              ("N3",),              "M0", "IVA"),  # Any T, N3, M0
    (_C_ADC_T,                  _ANY_N,               "M1", "IVB"),  # Any T, any N, M1
)
# fmt: on

# --- Pathological (pTNM) and post-neoadjuvant (ypTNM): T1 and T4 split ----------------------
_P_T: Final = ("T0", "Tis", "T1a", "T1b", "T2", "T3", "T4a", "T4b")
_P_ANY_T: Final = tuple(t for t in _P_T if t != "Tis")
_T1: Final = ("T1a", "T1b")  # a printed "T1" row covers both subcategories

# Pathological (pTNM), squamous cell carcinoma. Columns: T, N, M, grade, location, group.
# fmt: off
_P_SCC: Final[tuple[_Row, ...]] = (
    (("Tis",),             ("N0",),              "M0", _ANY_G,             _ANY_L,        "0"),
    (("T1a",),             ("N0",),              "M0", ("G1",),            _ANY_L,        "IA"),
    (("T1a",),             ("N0",),              "M0", ("G2", "G3"),       _ANY_L,        "IB"),
    (("T1a",),             ("N0",),              "M0", ("GX",),            _ANY_L,        "IA"),
    (("T1b",),             ("N0",),              "M0", ("G1", "G2", "G3"), _ANY_L,        "IB"),
    (("T1b",),             ("N0",),              "M0", ("GX",),            _ANY_L,        "IB"),
    (("T2",),              ("N0",),              "M0", ("G1",),            _ANY_L,        "IB"),
    (("T2",),              ("N0",),              "M0", ("G2", "G3"),       _ANY_L,        "IIA"),
    (("T2",),              ("N0",),              "M0", ("GX",),            _ANY_L,        "IIA"),
    (("T3",),              ("N0",),              "M0", _ANY_G,             _LOWER,        "IIA"),
    (("T3",),              ("N0",),              "M0", ("G1",),            _UPPER_MIDDLE, "IIA"),
    (("T3",),              ("N0",),              "M0", ("G2", "G3"),       _UPPER_MIDDLE, "IIB"),
    (("T3",),              ("N0",),              "M0", ("GX",),            _ANY_L,        "IIB"),
    (("T3",),              ("N0",),              "M0", _ANY_G,             _LOCATION_X,   "IIB"),
    (_T1,                  ("N1",),              "M0", _ANY_G,             _ANY_L,        "IIB"),
    (_T1,                  ("N2",),              "M0", _ANY_G,             _ANY_L,        "IIIA"),
    (("T2",),              ("N1",),              "M0", _ANY_G,             _ANY_L,        "IIIA"),
    (("T2",),              ("N2",),              "M0", _ANY_G,             _ANY_L,        "IIIB"),
    (("T3",),              ("N1", "N2"),         "M0", _ANY_G,             _ANY_L,        "IIIB"),
    (("T4a",),             ("N0", "N1"),         "M0", _ANY_G,             _ANY_L,        "IIIB"),
    (("T4a",),             ("N2",),              "M0", _ANY_G,             _ANY_L,        "IVA"),
    (("T4b",),             ("N0", "N1", "N2"),   "M0", _ANY_G,             _ANY_L,        "IVA"),
    (_P_ANY_T,             ("N3",),              "M0", _ANY_G,             _ANY_L,        "IVA"),
    (_P_T,                 _ANY_N,               "M1", _ANY_G,             _ANY_L,        "IVB"),
)
# fmt: on
# The one cell two printed rows claim ("any grade, lower" IIA; "GX, any location" IIB): IIA,
# as the SEER/IMS "TNM 8 Path Stage Squamous" table has it.
_P_SCC_RESOLVED: Final[dict[_Cell, str]] = {("T3", "N0", "M0", "GX", "lower"): "IIA"}

# Pathological (pTNM), adenocarcinoma. Columns: T, N, M, grade, location, group.
# fmt: off
_P_ADC: Final[tuple[_Row, ...]] = (
    (("Tis",),             ("N0",),              "M0", _ANY_G,             _ANY_L, "0"),
    (("T1a",),             ("N0",),              "M0", ("G1",),            _ANY_L, "IA"),
    (("T1a",),             ("N0",),              "M0", ("GX",),            _ANY_L, "IA"),
    (("T1a",),             ("N0",),              "M0", ("G2",),            _ANY_L, "IB"),
    (("T1b",),             ("N0",),              "M0", ("G1", "G2"),       _ANY_L, "IB"),
    (("T1b",),             ("N0",),              "M0", ("GX",),            _ANY_L, "IB"),
    (_T1,                  ("N0",),              "M0", ("G3",),            _ANY_L, "IC"),
    (("T2",),              ("N0",),              "M0", ("G1", "G2"),       _ANY_L, "IC"),
    (("T2",),              ("N0",),              "M0", ("G3",),            _ANY_L, "IIA"),
    (("T2",),              ("N0",),              "M0", ("GX",),            _ANY_L, "IIA"),
    (_T1,                  ("N1",),              "M0", _ANY_G,             _ANY_L, "IIB"),
    (("T3",),              ("N0",),              "M0", _ANY_G,             _ANY_L, "IIB"),
    (_T1,                  ("N2",),              "M0", _ANY_G,             _ANY_L, "IIIA"),
    (("T2",),              ("N1",),              "M0", _ANY_G,             _ANY_L, "IIIA"),
    (("T2",),              ("N2",),              "M0", _ANY_G,             _ANY_L, "IIIB"),
    (("T3",),              ("N1", "N2"),         "M0", _ANY_G,             _ANY_L, "IIIB"),
    (("T4a",),             ("N0", "N1"),         "M0", _ANY_G,             _ANY_L, "IIIB"),
    (("T4a",),             ("N2",),              "M0", _ANY_G,             _ANY_L, "IVA"),
    (("T4b",),             ("N0", "N1", "N2"),   "M0", _ANY_G,             _ANY_L, "IVA"),
    (_P_ANY_T,             ("N3",),              "M0", _ANY_G,             _ANY_L, "IVA"),
    (_P_T,                 _ANY_N,               "M1", _ANY_G,             _ANY_L, "IVB"),
)
# fmt: on

# Post-neoadjuvant (ypTNM), both histologies. "T0-2" is ypT0, ypTis, ypT1 and ypT2.
_YP_T0_2: Final = ("T0", "Tis", "T1a", "T1b", "T2")
# fmt: off
_YP: Final = _rows(
    # T                         N                     M     group
    (_YP_T0_2,                  ("N0",),              "M0", "I"),
    (("T3",),                   ("N0",),              "M0", "II"),
    (_YP_T0_2,                  ("N1",),              "M0", "IIIA"),
    (("T3",),                   ("N1",),              "M0", "IIIB"),
    ((*_YP_T0_2, "T3"),         ("N2",),              "M0", "IIIB"),
    (("T4a",),                  ("N0",),              "M0", "IIIB"),
    (("T4a",),                  ("N1", "N2"),         "M0", "IVA"),
    (("T4a",),                  ("NX",),              "M0", "IVA"),
    (("T4b",),                  ("N0", "N1", "N2"),   "M0", "IVA"),
    (_P_T,                      ("N3",),              "M0", "IVA"),  # Any T, N3, M0
    (_P_T,                      _ANY_N,               "M1", "IVB"),  # Any T, any N, M1
)
# fmt: on


def _cells(rows: Iterable[_Row], resolved: dict[_Cell, str] | None = None) -> dict[_Cell, str]:
    """Expand printed rows into cells; rows that disagree on a cell must be resolved."""
    claims: dict[_Cell, set[str]] = {}
    for t_rows, n_values, m, grades, locations, group in rows:
        for t in t_rows:
            for n in n_values:
                for grade in grades:
                    for location in locations:
                        claims.setdefault((t, n, m, grade, location), set()).add(group)
    resolved = resolved or {}
    cells: dict[_Cell, str] = {}
    for cell, groups in claims.items():
        if len(groups) > 1 and cell not in resolved:
            raise ValueError(f"printed rows disagree at {cell}: {sorted(groups)}")
        cells[cell] = resolved.get(cell) or groups.pop()
    return cells


def _t_input(
    t_rows: Sequence[str], t1: tuple[str, ...], t4: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """What each input T code stands for among a table's T rows.

    ``t1``/``t4``: the rows an unsubcategorised T1/T4 stands for. TX stands for every T of an
    existing tumour (every row but T0).
    """
    mapping: dict[str, tuple[str, ...]] = {code: (code,) for code in ("T0", "Tis", "T2", "T3")}
    mapping |= {"TX": tuple(t for t in t_rows if t != "T0"), "T1": t1, "T4": t4}
    for code in ("T1a", "T1b"):
        mapping[code] = (code,) if code in t_rows else t1
    for code in ("T4a", "T4b"):
        mapping[code] = (code,) if code in t_rows else t4
    return mapping


class _Table:
    """One printed table: its cells, and what each input T code stands for in it."""

    def __init__(
        self,
        t_rows: Sequence[str],
        cells: dict[_Cell, str],
        *,
        t1: tuple[str, ...],
        t4: tuple[str, ...],
    ) -> None:
        self.cells = cells
        self.t_input = _t_input(t_rows, t1, t4)

    def groups(self, t: str, n: str, m: str, grade: str, location: str) -> set[str | None]:
        """Every group the T and N codes could give (None where no row defines one)."""
        found: set[str | None] = set()
        for t_row in self.t_input[t]:
            if t == "TX" and t_row == "Tis" and n != "N0":
                continue  # Tis is N0: a TX with nodes (or NX) is not Tis
            if n != "NX" or (t_row, n, m, grade, location) in self.cells:
                found.add(self.cells.get((t_row, n, m, grade, location)))
                continue
            for n_value in _N0_TO_N3:  # NX stands for N0-N3 where no NX row is printed
                found.add(self.cells.get((t_row, n_value, m, grade, location)))
        return found


_SPLIT: Final = {"t1": ("T1a", "T1b"), "t4": ("T4a", "T4b")}
_TABLES: Final[dict[str, _Table]] = {
    CLINICAL_SCC: _Table(_C_SCC_T, _cells(_C_SCC), t1=("T1",), t4=("T4",)),
    CLINICAL_ADENOCARCINOMA: _Table(_C_ADC_T, _cells(_C_ADC), t1=("T1",), t4=("T4a", "T4b")),
    PATHOLOGICAL_SCC: _Table(_P_T, _cells(_P_SCC, _P_SCC_RESOLVED), **_SPLIT),
    PATHOLOGICAL_ADENOCARCINOMA: _Table(_P_T, _cells(_P_ADC), **_SPLIT),
    POST_NEOADJUVANT: _Table(_P_T, _cells(_YP), **_SPLIT),
}
TABLE_NAMES: Final = tuple(_TABLES)


def staging_table(context: str, histology: str) -> str | None:
    """The name of the AJCC 8 table that stages this context and histology, or None."""
    if histology not in HISTOLOGIES:
        return None
    scc = histology == "squamous_cell_carcinoma"
    if context in ("c", "yc", "r"):
        return CLINICAL_SCC if scc else CLINICAL_ADENOCARCINOMA
    if context == "p":
        return PATHOLOGICAL_SCC if scc else PATHOLOGICAL_ADENOCARCINOMA
    if context == "yp":
        return POST_NEOADJUVANT
    return None


def stage_group(
    *,
    context: str,
    histology: str,
    t: str,
    n: str,
    m: str,
    grade: str = "GX",
    location: str = "unknown",
) -> str:
    """The AJCC 8 esophageal stage group of a TNM assessment, or ``"unknown"``.

    ``grade`` and ``location`` are those of the diagnosis in force; they matter only in the
    pTNM tables. Bad input of any kind gives ``"unknown"``.
    """
    values = (context, histology, t, n, m, grade, location)
    if not all(isinstance(value, str) for value in values):
        return UNKNOWN
    if t not in T_CODES or n not in N_CODES or m not in M_CODES:
        return UNKNOWN
    if grade not in GRADES or location not in LOCATIONS:
        return UNKNOWN
    name = staging_table(context, histology)
    if name is None:
        return UNKNOWN
    groups = _TABLES[name].groups(t, n, m, grade, location)
    if len(groups) != 1:
        return UNKNOWN
    group = groups.pop()
    return UNKNOWN if group is None else group


def stage_rank(group: str) -> int | None:
    """Position of ``group`` in STAGE_ORDER, or None for ``"unknown"`` or anything else."""
    try:
        return STAGE_ORDER.index(group)
    except ValueError:
        return None


def _number(group: str) -> str:
    """The stage number of a group: IIB -> II, IVA -> IV, 0 -> 0."""
    return group.rstrip("ABC")


def compare_groups(earlier: str, later: str) -> str:
    """Trend from ``earlier`` to ``later``: unchanged, improved, worsened or insufficient_data.

    A group without a letter stands for every lettered group of its number (I covers IA-IC),
    so I -> IA is unchanged; otherwise STAGE_ORDER decides.
    """
    before, after = stage_rank(earlier), stage_rank(later)
    if before is None or after is None:
        return "insufficient_data"
    number = _number(earlier)
    if after == before or (number == _number(later) and number in (earlier, later)):
        return "unchanged"
    return "improved" if after < before else "worsened"


def unknown_reason(
    *,
    context: str,
    histology: str | None,
    t: str,
    n: str,
    m: str,
    grade: str = "GX",
    location: str = "unknown",
) -> str | None:
    """Why ``stage_group`` gives ``"unknown"`` for this assessment, or None when it does not."""
    if histology is None:
        return "no diagnosis in force: its histology picks the AJCC 8 table"
    group = stage_group(
        context=context, histology=histology, t=t, n=n, m=m, grade=grade, location=location
    )
    if group != UNKNOWN:
        return None
    name = staging_table(context, histology) if isinstance(context, str) else None
    if name is None:
        return f"no AJCC 8 esophageal table for histology {histology!r} in context {context!r}"
    if t not in T_CODES or n not in N_CODES or m not in M_CODES:
        return f"{t}{n}{m} is not a TNM combination the tables know"
    groups = _TABLES[name].groups(t, n, m, grade, location)
    named = sorted((g for g in groups if g is not None), key=STAGE_ORDER.index)
    if len(named) > 1:
        return f"{name} gives {', '.join(named)} for the values {context}{t}{n}{m} stands for"
    if named:
        return f"{name} gives {named[0]} for only some of the values {context}{t}{n}{m} stands for"
    return f"{name} defines no group for {context}{t}{n}{m}"
