"""Stage groups for every context through the service root (SQLite and PostgreSQL): a patient
staged clinically, given neoadjuvant chemotherapy, restaged, operated on and staged on the
specimen; pathological groups from the grade and location of the diagnosis in force; the trend
and the concordance naming the assessments they compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from domain import events as ev
from domain.errors import RuleViolation
from domain.ledger.application import StoreConfig
from projections.ctc import CtcView
from projections.root import OncoLedger
from projections.stage import Assessment, StageView

P = "P13"
DX = UUID("d1300000-0000-4000-8000-000000000001")
C_STAGE = UUID("51300000-0000-4000-8000-000000000001")
YC_STAGE = UUID("51300000-0000-4000-8000-000000000002")
YP_STAGE = UUID("51300000-0000-4000-8000-000000000003")
P_STAGE = UUID("51300000-0000-4000-8000-000000000004")


@pytest.fixture
def system(store: StoreConfig) -> Iterator[OncoLedger]:
    with OncoLedger(store) as root:
        root.register(P, {"occurred": "2020-01-02", "sex": "male"}, actor="t", source="cli")
        yield root


def stage_of(system: OncoLedger) -> StageView:
    view = system.read(P, "stage")
    assert isinstance(view, StageView)
    return view


def current(system: OncoLedger) -> Assessment:
    assessment = stage_of(system).current
    assert assessment is not None
    return assessment


def record(system: OncoLedger, *bodies: dict[str, Any]) -> None:
    system.append(P, list(bodies), actor="t", source="cli")


def diagnosis(histology: str, grade: str, location: str, *, new: bool = True) -> dict[str, Any]:
    """A diagnosis body; `new=False` for an amendment's replacement (it keeps the target's id)."""
    return {
        "type": "diagnosis_confirmed",
        **({"event_id": str(DX)} if new else {}),
        "occurred": "2020-01-10",
        "histology": histology,
        "grade": grade,
        "tumor_location": location,
    }


def rediagnose(system: OncoLedger, grade: str, location: str) -> None:
    """Amend the squamous cell carcinoma diagnosis to another grade and location."""
    replacement = diagnosis("squamous_cell_carcinoma", grade, location, new=False)
    system.amend(P, DX, replacement, reason="pathology review", actor="t", source="cli")


def staging(event_id: UUID, on: str, context: str, t: str, n: str, m: str) -> dict[str, Any]:
    return {
        "type": "staging",
        "event_id": str(event_id),
        "occurred": on,
        "context": context,
        "t": t,
        "n": n,
        "m": m,
    }


def test_clinical_then_neoadjuvant_then_surgery_then_yptnm(system: OncoLedger) -> None:
    record(
        system,
        diagnosis("squamous_cell_carcinoma", "G2", "middle"),
        staging(C_STAGE, "2020-01-20", "c", "T3", "N1", "M0"),
        {"type": "ctc_count", "occurred": "2020-01-21", "count": 6},
        {
            "type": "chemotherapy",
            "occurred": "2020-02-01",
            "regimen": "CROSS",
            "agents": ["carboplatin", "paclitaxel"],
            "courses": 5,
            "intent": "neoadjuvant",
            "ended": "2020-03-01",
        },
        staging(YC_STAGE, "2020-03-20", "yc", "T2", "N0", "M0"),
        {"type": "surgery", "occurred": "2020-04-15", "procedure": "esophagectomy"},
        staging(YP_STAGE, "2020-04-22", "yp", "T1b", "N0", "M0"),
        {"type": "ctc_count", "occurred": "2020-05-01", "count": 0},
    )

    stage = stage_of(system)
    ctc = system.read(P, "ctc")
    assert isinstance(ctc, CtcView)

    # Every assessment in clinical order, each with its group and the table that gave it.
    assert [(a.tnm, a.stage_group, a.table) for a in stage.history] == [
        ("cT3N1M0", "III", "AJCC8 cTNM SCC"),
        ("ycT2N0M0", "II", "AJCC8 cTNM SCC"),
        ("ypT1bN0M0", "I", "AJCC8 ypTNM"),
    ]
    assert current(system).tnm == "ypT1bN0M0"
    assert stage.at_diagnosis is not None and stage.at_diagnosis.tnm == "cT3N1M0"
    # One scale across contexts: clinical III to post-neoadjuvant I is an improvement.
    assert (stage.trend, stage.trend_from, stage.trend_to) == ("improved", C_STAGE, YP_STAGE)
    # The stored events carry the same groups, computed when they were recorded.
    stored = [e.stage_group for e in system.history(P) if isinstance(e, ev.Staging)]
    assert stored == ["III", "II", "I"]
    # The concordance compares the assessments in force at the first and last draw.
    assert (ctc.concordance.status, ctc.concordance.stage_trend) == ("concordant", "improved")
    assert (ctc.concordance.stage_from, ctc.concordance.stage_to) == (C_STAGE, YP_STAGE)
    assert ctc.concordance.summary == (
        "CTC count decreasing (6 → 0 per 7.5 mL) and stage improved (cIII → ypI)"
    )
    assert system.patient(P).stage_group == "I"


def test_pathological_group_uses_the_grade_of_the_diagnosis(system: OncoLedger) -> None:
    record(system, diagnosis("adenocarcinoma", "G3", "lower"))

    # pT1a N0 M0 is IA for G1/GX, IB for G2 and IC for G3: a client sending IA is refused...
    with pytest.raises(RuleViolation) as refused:
        record(
            system, {**staging(P_STAGE, "2020-02-01", "p", "T1a", "N0", "M0"), "stage_group": "IA"}
        )
    assert (refused.value.field, refused.value.rule) == ("stage_group", "stage_group_agrees")
    assert "AJCC8 pTNM adenocarcinoma" in str(refused.value)
    assert [e.type for e in system.history(P)] == ["patient_registered", "diagnosis_confirmed"]
    # ...and IC is stored.
    record(system, {**staging(P_STAGE, "2020-02-01", "p", "T1a", "N0", "M0"), "stage_group": "IC"})
    assessment = current(system)
    assert (assessment.stage_group, assessment.table, assessment.unknown_reason) == (
        "IC",
        "AJCC8 pTNM adenocarcinoma",
        None,
    )


def test_amended_diagnosis_restages_by_grade_and_location(system: OncoLedger) -> None:
    record(
        system,
        diagnosis("squamous_cell_carcinoma", "G1", "middle"),
        staging(P_STAGE, "2020-02-01", "p", "T3", "N0", "M0"),
    )
    assert current(system).stage_group == "IIA"  # G1, upper/middle

    rediagnose(system, "G1", "unknown")
    assert current(system).stage_group == "IIB"  # any grade, location X

    rediagnose(system, "G3", "upper")
    assert current(system).stage_group == "IIB"  # G2-G3, upper/middle

    rediagnose(system, "GX", "lower")
    assessment = current(system)
    assert (assessment.stage_group, assessment.table) == ("IIA", "AJCC8 pTNM SCC")  # lower


def test_unknown_group_says_why(system: OncoLedger) -> None:
    record(
        system,
        diagnosis("squamous_cell_carcinoma", "G1", "upper"),
        staging(P_STAGE, "2020-02-01", "p", "T1", "N0", "M0"),
        staging(C_STAGE, "2020-02-02", "c", "T4", "NX", "M0"),
    )

    first, second = stage_of(system).history
    assert (first.stage_group, first.unknown_reason) == (
        "unknown",
        "AJCC8 pTNM SCC gives IA, IB for the values pT1N0M0 stands for",
    )
    assert (second.stage_group, second.unknown_reason) == ("IVA", None)  # every N gives IVA
    assert stage_of(system).trend == "insufficient_data"


def test_other_histology_has_no_table_and_says_so(system: OncoLedger) -> None:
    record(
        system,
        diagnosis("other", "GX", "unknown"),
        staging(YP_STAGE, "2020-04-22", "yp", "T4a", "NX", "M1"),
    )

    assessment = current(system)
    assert (assessment.stage_group, assessment.table, assessment.unknown_reason) == (
        "unknown",
        None,
        "no AJCC 8 esophageal table for histology 'other' in context 'yp'",
    )
