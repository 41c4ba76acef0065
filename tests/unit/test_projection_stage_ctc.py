"""The stage and ctc read models (SPEC §4), computed from histories recorded through `Patient`.

Every history is built by recording bodies on the real aggregate, so the entries are exactly what
the store holds (server-computed stage groups, versions, hashes). Expected values are written out.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
import pytest

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import ValidationFailed
from domain.patient import Patient
from projections.ctc import compute_ctc, default_rule
from projections.stage import TREND_RULE, Assessment, compute_stage, group_in_force_on

Body = dict[str, Any]

DX = "d0000000-0000-4000-8000-000000000001"
S1 = "50000000-0000-4000-8000-000000000001"
S2 = "50000000-0000-4000-8000-000000000002"
S3 = "50000000-0000-4000-8000-000000000003"
S4 = "50000000-0000-4000-8000-000000000004"
C1 = "c0000000-0000-4000-8000-000000000001"
C2 = "c0000000-0000-4000-8000-000000000002"
C3 = "c0000000-0000-4000-8000-000000000003"
C4 = "c0000000-0000-4000-8000-000000000004"


def record(*bodies: Body) -> list[ev.AnyEvent]:
    """The stored entries of patient P1 after recording `bodies`, in stream order."""
    patient = Patient("P1")
    for body in bodies:
        patient.record(decode_entry(body), actor="t", source="cli")
    return patient.entries


def registered() -> Body:
    return {"type": "patient_registered", "occurred": "2016-04-26", "sex": "male"}


def diagnosis(on: str = "2016-05-09", histology: str = "squamous_cell_carcinoma") -> Body:
    return {
        "type": "diagnosis_confirmed",
        "event_id": DX,
        "occurred": on,
        "histology": histology,
        "grade": "G3",
        "basis": "histology",
        "method": "gastroscopy",
    }


def staging(event_id: str, on: str, t: str, n: str, m: str, context: str = "c") -> Body:
    return {
        "type": "staging",
        "event_id": event_id,
        "occurred": on,
        "context": context,
        "t": t,
        "n": n,
        "m": m,
    }


def ctc(event_id: str, on: str, count: int, volume: float | None = None) -> Body:
    body: Body = {"type": "ctc_count", "event_id": event_id, "occurred": on, "count": count}
    if volume is not None:
        body["blood_volume_ml"] = volume
    return body


def amend(target: str, replacement: Body) -> Body:
    return {
        "type": "event_amended",
        "occurred": replacement["occurred"],
        "target_event_id": target,
        "replacement": {k: v for k, v in replacement.items() if k != "event_id"},
        "reason": "transcription error",
    }


def retract(target: str, on: str) -> Body:
    return {
        "type": "event_retracted",
        "occurred": on,
        "target_event_id": target,
        "reason": "entered in error",
    }


def case_report(*extra: Body) -> list[ev.AnyEvent]:
    """The seed case: SCC, cT4N2M1 at four evaluations, CTC 4 → 2 → 0."""
    return record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        ctc(C1, "2016-08-30", 4, 7.5),
        staging(S2, "2016-08-30", "T4", "N2", "M1"),
        ctc(C2, "2016-12-30", 2, 7.5),
        staging(S3, "2016-12-30", "T4", "N2", "M1"),
        ctc(C3, "2017-10-10", 0, 7.5),
        staging(S4, "2017-10-10", "T4", "N2", "M1"),
        *extra,
    )


def ivb(event_id: str, on: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred": on,
        "context": "c",
        "t": "T4",
        "n": "N2",
        "m": "M1",
        "tnm": "cT4N2M1",
        "stage_group": "IVB",
        "system": "AJCC8",
        "table": "AJCC8 cTNM SCC",
        "unknown_reason": None,
    }


@pytest.fixture(autouse=True)
def _no_rule_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONCOLEDGER_CTC_RULE", raising=False)


# -- the case report -----------------------------------------------------------------------------


def test_case_report_stage_view_is_spec_shape() -> None:
    view = compute_stage("P1", case_report())

    assert msgspec.to_builtins(view) == {
        "patient_id": "P1",
        "histology": "squamous_cell_carcinoma",
        "current": ivb(S4, "2017-10-10"),
        "at_diagnosis": ivb(S1, "2016-05-31"),
        "history": [
            ivb(S1, "2016-05-31"),
            ivb(S2, "2016-08-30"),
            ivb(S3, "2016-12-30"),
            ivb(S4, "2017-10-10"),
        ],
        "trend": "unchanged",
        "trend_from": S1,
        "trend_to": S4,
        "trend_rule": TREND_RULE,
    }


def test_case_report_ctc_view_is_spec_shape() -> None:
    view = compute_ctc("P1", case_report())

    assert msgspec.to_builtins(view) == {
        "patient_id": "P1",
        "rule": "ge1",
        "draws": [
            {
                "event_id": C1,
                "occurred": "2016-08-30",
                "count": 4,
                "blood_volume_ml": 7.5,
                "per_7_5_ml": 4.0,
                "change": None,
                "change_pct": None,
                "positive": True,
            },
            {
                "event_id": C2,
                "occurred": "2016-12-30",
                "count": 2,
                "blood_volume_ml": 7.5,
                "per_7_5_ml": 2.0,
                "change": -2.0,
                "change_pct": -50.0,
                "positive": True,
            },
            {
                "event_id": C3,
                "occurred": "2017-10-10",
                "count": 0,
                "blood_volume_ml": 7.5,
                "per_7_5_ml": 0.0,
                "change": -2.0,
                "change_pct": -100.0,
                "positive": False,
            },
        ],
        "trend": "decreasing",
        "latest_per_7_5_ml": 0.0,
        "cleared": True,
        "concordance": {
            "status": "discordant",
            "ctc_trend": "decreasing",
            "stage_trend": "unchanged",
            "summary": (
                "CTC count decreasing (4 → 0 per 7.5 mL) while clinical stage unchanged (IVB)"
            ),
            "stage_from": S2,
            "stage_to": S4,
        },
    }


def test_case_report_json_keys_are_the_spec_fields() -> None:
    stage = msgspec.json.decode(msgspec.json.encode(compute_stage("P1", case_report())))
    ctc_view = msgspec.json.decode(msgspec.json.encode(compute_ctc("P1", case_report())))

    # SPEC's fields first, in SPEC order; issue 13 added trend_from, trend_to and trend_rule.
    assert list(stage) == [
        "patient_id",
        "histology",
        "current",
        "at_diagnosis",
        "history",
        "trend",
        "trend_from",
        "trend_to",
        "trend_rule",
    ]
    assert list(stage["current"])[:9] == [
        "event_id",
        "occurred",
        "context",
        "t",
        "n",
        "m",
        "tnm",
        "stage_group",
        "system",
    ]
    assert list(ctc_view) == [
        "patient_id",
        "rule",
        "draws",
        "trend",
        "latest_per_7_5_ml",
        "cleared",
        "concordance",
    ]


# -- positivity rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "positives", "cleared"),
    [
        ("ge1", [True, True, False], True),
        ("ge3", [True, False, False], True),
        ("ge5", [False, False, False], False),
    ],
)
def test_positivity_rules_on_the_case_report(
    rule: str, positives: list[bool], cleared: bool
) -> None:
    view = compute_ctc("P1", case_report(), rule=rule)

    assert view.rule == rule
    assert [d.positive for d in view.draws] == positives
    assert view.cleared is cleared
    assert [d.count for d in view.draws] == [4, 2, 0]  # raw counts always shown


def test_rule_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLEDGER_CTC_RULE", "ge3")

    assert default_rule() == "ge3"
    view = compute_ctc("P1", case_report())
    assert view.rule == "ge3"
    assert [d.positive for d in view.draws] == [True, False, False]


def test_rule_per_request_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLEDGER_CTC_RULE", "ge5")

    assert compute_ctc("P1", case_report(), rule="ge1").rule == "ge1"


def test_rule_defaults_to_ge1_when_environment_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLEDGER_CTC_RULE", "")

    assert default_rule() == "ge1"


def test_unknown_rule_is_a_validation_error_listing_the_rules() -> None:
    with pytest.raises(ValidationFailed) as caught:
        compute_ctc("P1", case_report(), rule="ge2")

    assert caught.value.field == "rule"
    assert (
        str(caught.value) == "`rule` 'ge2' is not a CTC positivity rule; valid rules: ge1, ge3, ge5"
    )


def test_unknown_rule_in_environment_is_a_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLEDGER_CTC_RULE", "any")

    with pytest.raises(ValidationFailed) as caught:
        compute_ctc("P1", case_report())

    assert caught.value.field == "rule"
    assert str(caught.value) == (
        "`ONCOLEDGER_CTC_RULE` 'any' is not a CTC positivity rule; valid rules: ge1, ge3, ge5"
    )


# -- normalisation -------------------------------------------------------------------------------


def test_draw_volume_normalises_to_7_5_ml() -> None:
    history = record(
        registered(),
        diagnosis(),
        ctc(C1, "2016-08-30", 4, 10),
        ctc(C2, "2016-09-30", 3, 7.4),
        ctc(C3, "2016-10-30", 1),
    )

    view = compute_ctc("P1", history, rule="ge3")

    assert [(d.count, d.blood_volume_ml, d.per_7_5_ml) for d in view.draws] == [
        (4, 10.0, 3.0),
        (3, 7.4, 3.04),
        (1, 7.5, 1.0),
    ]
    assert [d.positive for d in view.draws] == [True, True, False]  # 3.0 is on the threshold
    assert [d.change for d in view.draws] == [None, 0.04, -2.04]
    assert [d.change_pct for d in view.draws] == [None, 1.4, -67.1]
    assert view.latest_per_7_5_ml == 1.0
    # Unrounded values: 3 → 3.0405… is a rise, so the series is not monotone.
    assert view.trend == "fluctuating"


def test_equal_concentrations_in_different_volumes_are_stable() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        ctc(C1, "2016-08-30", 1, 0.1),
        ctc(C2, "2016-12-30", 3, 0.3),
    )

    view = compute_ctc("P1", history)

    assert [d.per_7_5_ml for d in view.draws] == [75.0, 75.0]
    assert view.trend == "stable"


def test_change_pct_is_none_after_a_zero_draw() -> None:
    history = record(registered(), ctc(C1, "2016-08-30", 0), ctc(C2, "2016-12-30", 2))

    view = compute_ctc("P1", history)

    assert [(d.change, d.change_pct) for d in view.draws] == [(None, None), (2.0, None)]
    assert view.trend == "increasing"
    assert view.cleared is False


# -- trend ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "trend"),
    [
        ([4, 2, 0], "decreasing"),
        ([2, 2, 0], "decreasing"),
        ([0, 2, 2], "increasing"),
        ([1, 3, 6], "increasing"),
        ([2, 2, 2], "stable"),
        ([2, 0, 2], "fluctuating"),
        ([4, 1, 6], "fluctuating"),
        ([5], "insufficient_data"),
        ([], "insufficient_data"),
    ],
)
def test_ctc_trend(counts: list[int], trend: str) -> None:
    draws = zip([C1, C2, C3], ["2016-08-30", "2016-12-30", "2017-10-10"], counts, strict=False)
    history = record(registered(), *(ctc(i, day, count) for i, day, count in draws))

    assert compute_ctc("P1", history).trend == trend


def test_cleared_needs_an_earlier_positive_and_a_negative_latest() -> None:
    came_back = record(
        registered(), ctc(C1, "2016-08-30", 4), ctc(C2, "2016-12-30", 0), ctc(C3, "2017-10-10", 1)
    )
    never_positive = record(registered(), ctc(C1, "2016-08-30", 0), ctc(C2, "2016-12-30", 0))

    assert compute_ctc("P1", came_back).cleared is False
    assert compute_ctc("P1", never_positive).cleared is False


# -- concordance ---------------------------------------------------------------------------------


def test_increasing_with_worsened_stage_is_concordant() -> None:
    history = record(
        registered(),
        diagnosis("2020-01-05"),
        staging(S1, "2020-01-10", "T3", "N0", "M0"),
        ctc(C1, "2020-02-01", 1),
        ctc(C2, "2020-05-01", 3),
        staging(S2, "2020-07-20", "T4", "N0", "M0"),
        ctc(C3, "2020-08-01", 6),
    )

    assert msgspec.to_builtins(compute_ctc("P1", history).concordance) == {
        "status": "concordant",
        "ctc_trend": "increasing",
        "stage_trend": "worsened",
        "summary": "CTC count increasing (1 → 6 per 7.5 mL) and clinical stage worsened (II → IVA)",
        "stage_from": S1,
        "stage_to": S2,
    }


def test_decreasing_with_improved_stage_is_concordant() -> None:
    history = record(
        registered(),
        diagnosis("2020-01-05"),
        staging(S1, "2020-01-10", "T4", "N1", "M0"),
        ctc(C1, "2020-02-01", 5),
        staging(S2, "2020-06-01", "T3", "N2", "M0"),
        ctc(C2, "2020-06-01", 1),
    )

    assert msgspec.to_builtins(compute_ctc("P1", history).concordance) == {
        "status": "concordant",
        "ctc_trend": "decreasing",
        "stage_trend": "improved",
        "summary": (
            "CTC count decreasing (5 → 1 per 7.5 mL) and clinical stage improved (IVA → III)"
        ),
        "stage_from": S1,
        "stage_to": S2,
    }


def test_stable_with_unchanged_stage_is_concordant() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        ctc(C1, "2016-08-30", 2),
        ctc(C2, "2016-12-30", 4, 15),
    )

    assert msgspec.to_builtins(compute_ctc("P1", history).concordance) == {
        "status": "concordant",
        "ctc_trend": "stable",
        "stage_trend": "unchanged",
        "summary": "CTC count stable (2 per 7.5 mL) and clinical stage unchanged (IVB)",
        "stage_from": S1,
        "stage_to": S1,
    }


def test_stable_with_worsened_stage_is_discordant() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T3", "N2", "M0"),
        ctc(C1, "2016-08-30", 2),
        staging(S2, "2016-12-01", "T4", "N2", "M1"),
        ctc(C2, "2016-12-30", 2),
    )

    assert msgspec.to_builtins(compute_ctc("P1", history).concordance) == {
        "status": "discordant",
        "ctc_trend": "stable",
        "stage_trend": "worsened",
        "summary": "CTC count stable (2 per 7.5 mL) while clinical stage worsened (III → IVB)",
        "stage_from": S1,
        "stage_to": S2,
    }


def test_fluctuating_ctc_is_undetermined() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        ctc(C1, "2016-08-30", 4),
        ctc(C2, "2016-12-30", 1),
        ctc(C3, "2017-10-10", 5, 5),
    )

    assert msgspec.to_builtins(compute_ctc("P1", history).concordance) == {
        "status": "undetermined",
        "ctc_trend": "fluctuating",
        "stage_trend": "unchanged",
        "summary": (
            "CTC count fluctuating (4 → 1 → 7.5 per 7.5 mL), no single direction to compare "
            "with clinical stage unchanged (IVB)"
        ),
        "stage_from": S1,
        "stage_to": S1,
    }


def test_one_draw_is_insufficient() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        ctc(C1, "2016-08-30", 4),
    )

    view = compute_ctc("P1", history)

    assert view.trend == "insufficient_data"
    assert view.latest_per_7_5_ml == 4.0
    assert view.cleared is False
    assert msgspec.to_builtins(view.concordance) == {
        "status": "undetermined",
        "ctc_trend": "insufficient_data",
        "stage_trend": "insufficient_data",
        "summary": "Not enough CTC draws to compare with the stage (1 draw)",
        "stage_from": None,
        "stage_to": None,
    }


def test_no_draws() -> None:
    view = compute_ctc("P1", record(registered(), diagnosis()))

    assert msgspec.to_builtins(view) == {
        "patient_id": "P1",
        "rule": "ge1",
        "draws": [],
        "trend": "insufficient_data",
        "latest_per_7_5_ml": None,
        "cleared": False,
        "concordance": {
            "status": "undetermined",
            "ctc_trend": "insufficient_data",
            "stage_trend": "insufficient_data",
            "summary": "No CTC draws recorded, so nothing to compare with the stage",
            "stage_from": None,
            "stage_to": None,
        },
    }


def test_no_staging_before_first_draw_takes_the_first_in_the_window() -> None:
    history = record(
        registered(),
        diagnosis("2020-01-05"),
        ctc(C1, "2020-02-01", 5),
        staging(S1, "2020-03-01", "T4", "N0", "M0"),
        staging(S2, "2020-05-01", "T3", "N2", "M0"),
        ctc(C2, "2020-06-01", 1),
        staging(S3, "2020-07-01", "T4", "N2", "M1"),  # after the last draw: not in the window
    )

    concordance = compute_ctc("P1", history).concordance

    assert (concordance.status, concordance.stage_trend) == ("concordant", "improved")
    assert concordance.summary == (
        "CTC count decreasing (5 → 1 per 7.5 mL) and clinical stage improved (IVA → III)"
    )
    assert compute_stage("P1", history).trend == "worsened"  # IVA → IVB over all assessments


def test_staging_only_after_the_last_draw_is_insufficient() -> None:
    history = record(
        registered(),
        diagnosis("2020-01-05"),
        ctc(C1, "2020-02-01", 5),
        ctc(C2, "2020-06-01", 1),
        staging(S1, "2020-07-01", "T4", "N2", "M1"),
    )

    assert msgspec.to_builtins(compute_ctc("P1", history).concordance) == {
        "status": "undetermined",
        "ctc_trend": "decreasing",
        "stage_trend": "insufficient_data",
        "summary": (
            "CTC count decreasing (5 → 1 per 7.5 mL); no staging on or before the last draw "
            "to compare with"
        ),
        "stage_from": None,
        "stage_to": None,
    }


def test_no_staging_at_all_is_insufficient() -> None:
    history = record(
        registered(), diagnosis("2020-01-05"), ctc(C1, "2020-02-01", 5), ctc(C2, "2020-06-01", 1)
    )

    concordance = compute_ctc("P1", history).concordance

    assert (concordance.status, concordance.stage_trend) == ("undetermined", "insufficient_data")
    assert concordance.summary == (
        "CTC count decreasing (5 → 1 per 7.5 mL); no staging recorded to compare with"
    )


def test_unknown_stage_group_at_an_end_is_insufficient() -> None:
    history = record(
        registered(),
        diagnosis("2020-01-05"),
        staging(S1, "2020-01-10", "TX", "NX", "M0"),
        ctc(C1, "2020-02-01", 5),
        staging(S2, "2020-05-01", "T4", "N2", "M1"),
        ctc(C2, "2020-06-01", 1),
    )

    concordance = compute_ctc("P1", history).concordance

    assert (concordance.status, concordance.stage_trend) == ("undetermined", "insufficient_data")
    assert concordance.summary == (
        "CTC count decreasing (5 → 1 per 7.5 mL); the clinical stage group is unknown at "
        "the first draw"
    )


# -- corrections ---------------------------------------------------------------------------------


def test_retracted_draw_does_not_count() -> None:
    view = compute_ctc("P1", case_report(retract(C2, "2016-12-30")))

    assert [(str(d.event_id), d.per_7_5_ml, d.change, d.change_pct) for d in view.draws] == [
        (C1, 4.0, None, None),
        (C3, 0.0, -4.0, -100.0),
    ]
    assert view.trend == "decreasing"


def test_amended_draw_counts_with_its_replacement() -> None:
    view = compute_ctc("P1", case_report(amend(C3, ctc(C3, "2017-10-10", 3, 5))))

    assert [(str(d.event_id), d.count, d.blood_volume_ml, d.per_7_5_ml) for d in view.draws] == [
        (C1, 4, 7.5, 4.0),
        (C2, 2, 7.5, 2.0),
        (C3, 3, 5.0, 4.5),
    ]
    assert view.trend == "fluctuating"
    assert view.cleared is False
    assert view.concordance.status == "undetermined"


def test_amended_draw_date_moves_it_in_clinical_order() -> None:
    view = compute_ctc("P1", case_report(amend(C1, ctc(C1, "2017-12-01", 4))))

    assert [(d.occurred, d.per_7_5_ml) for d in view.draws] == [
        ("2016-12-30", 2.0),
        ("2017-10-10", 0.0),
        ("2017-12-01", 4.0),
    ]
    assert view.trend == "fluctuating"


def test_retracted_staging_does_not_count() -> None:
    view = compute_stage("P1", case_report(retract(S4, "2017-10-10")))

    assert [str(a.event_id) for a in view.history] == [S1, S2, S3]
    assert view.current is not None and str(view.current.event_id) == S3


def test_amended_staging_counts_with_its_replacement() -> None:
    history = case_report(amend(S4, staging(S4, "2017-10-10", "T4", "N2", "M0")))

    stage = compute_stage("P1", history)
    assert stage.current is not None
    assert (str(stage.current.event_id), stage.current.tnm, stage.current.stage_group) == (
        S4,
        "cT4N2M0",
        "IVA",
    )
    assert stage.trend == "improved"
    concordance = compute_ctc("P1", history).concordance
    assert msgspec.to_builtins(concordance) == {
        "status": "concordant",
        "ctc_trend": "decreasing",
        "stage_trend": "improved",
        "summary": (
            "CTC count decreasing (4 → 0 per 7.5 mL) and clinical stage improved (IVB → IVA)"
        ),
        "stage_from": S2,
        "stage_to": S4,
    }


def test_amended_diagnosis_restages_every_assessment() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T2", "N1", "M0"),
        staging(S2, "2016-08-30", "T4", "N0", "M0"),
        amend(DX, diagnosis(histology="adenocarcinoma")),
    )

    view = compute_stage("P1", history)

    assert view.histology == "adenocarcinoma"
    assert [(a.tnm, a.stage_group) for a in view.history] == [
        ("cT2N1M0", "III"),
        ("cT4N0M0", "unknown"),  # adenocarcinoma splits T4a from T4b with N0
    ]
    assert view.trend == "insufficient_data"
    # The stored groups were computed under squamous cell carcinoma and stay as recorded.
    stored = [e.stage_group for e in history if isinstance(e, ev.Staging)]
    assert stored == ["II", "IVA"]


def test_adenocarcinoma_grouping() -> None:
    history = record(
        registered(),
        diagnosis(histology="adenocarcinoma"),
        staging(S1, "2016-05-31", "T1", "N1", "M0"),
        staging(S2, "2016-08-30", "T2", "N0", "M0"),
        staging(S3, "2016-12-30", "T4b", "N1", "M0"),
    )

    view = compute_stage("P1", history)

    assert [(a.tnm, a.stage_group) for a in view.history] == [
        ("cT1N1M0", "IIA"),
        ("cT2N0M0", "IIB"),
        ("cT4bN1M0", "IVA"),
    ]
    assert view.trend == "worsened"


def test_retracted_diagnosis_leaves_stagings_unknown() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        staging(S2, "2016-08-30", "T4", "N2", "M1"),
        retract(DX, "2016-05-09"),
    )

    view = compute_stage("P1", history)

    assert view.histology is None
    assert [a.stage_group for a in view.history] == ["unknown", "unknown"]
    assert view.trend == "insufficient_data"


# -- stage view ----------------------------------------------------------------------------------


def test_stage_view_without_stagings() -> None:
    assert msgspec.to_builtins(compute_stage("P1", record(registered()))) == {
        "patient_id": "P1",
        "histology": None,
        "current": None,
        "at_diagnosis": None,
        "history": [],
        "trend": "insufficient_data",
        "trend_from": None,
        "trend_to": None,
        "trend_rule": TREND_RULE,
    }


def test_one_staging_is_insufficient_for_a_trend() -> None:
    history = record(registered(), diagnosis(), staging(S1, "2016-05-31", "T4", "N2", "M1"))

    view = compute_stage("P1", history)

    assert view.current == view.at_diagnosis
    assert view.trend == "insufficient_data"


def test_yc_assessment_is_grouped_with_the_clinical_table() -> None:
    history = record(
        registered(),
        diagnosis(),
        staging(S1, "2016-05-31", "T4", "N2", "M1"),
        staging(S2, "2016-08-30", "T4", "N2", "M0", context="yc"),
    )

    view = compute_stage("P1", history)

    assert [(a.tnm, a.stage_group, a.table) for a in view.history] == [
        ("cT4N2M1", "IVB", "AJCC8 cTNM SCC"),
        ("ycT4N2M0", "IVA", "AJCC8 cTNM SCC"),
    ]
    assert view.trend == "improved"


def test_at_diagnosis_is_the_first_staging_on_or_after_the_diagnosis_date() -> None:
    history = record(
        registered(),
        diagnosis("2016-05-09"),
        staging(S1, "2016-04-20", "T3", "N0", "M0"),
        staging(S2, "2016-05", "T4", "N2", "M1"),  # may be on or after 9 May
        staging(S3, "2016-06-30", "T4", "N2", "M0"),
    )

    view = compute_stage("P1", history)

    assert [a.occurred for a in view.history] == ["2016-04-20", "2016-05", "2016-06-30"]
    assert view.at_diagnosis is not None and str(view.at_diagnosis.event_id) == S2
    assert view.current is not None and str(view.current.event_id) == S3
    assert view.trend == "worsened"  # II → IVA


def test_at_diagnosis_falls_back_to_the_first_staging() -> None:
    history = record(
        registered(),
        diagnosis("2016-05-09"),
        staging(S1, "2016-04-20", "T3", "N0", "M0"),
        staging(S2, "2016-04-30", "T4", "N2", "M1"),
    )

    view = compute_stage("P1", history)

    assert view.at_diagnosis is not None and str(view.at_diagnosis.event_id) == S1


def test_group_in_force_on_uses_imputed_days() -> None:
    history = record(
        registered(),
        diagnosis("2016-01-09"),
        staging(S1, "2016", "T3", "N0", "M0"),  # imputed 1 July 2016
        staging(S2, "2016-03-01", "T4", "N2", "M1"),
        staging(S3, "2016-08", "T4", "N0", "M0"),  # imputed 15 August 2016
    )
    assessments: list[Assessment] = compute_stage("P1", history).history

    def in_force_on(day: date) -> str | None:
        found = group_in_force_on(assessments, day)
        return None if found is None else str(found.event_id)

    assert in_force_on(date(2016, 2, 29)) is None
    assert in_force_on(date(2016, 3, 1)) == S2
    assert in_force_on(date(2016, 6, 30)) == S2
    assert in_force_on(date(2016, 7, 1)) == S1
    assert in_force_on(date(2016, 8, 14)) == S1
    assert in_force_on(date(2016, 8, 15)) == S3
