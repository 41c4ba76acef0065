"""SPEC §3 rules, one test per rule: a refused event names its error kind and field, stores nothing.

Every test reads given / when / then. Bodies go through `decode_entry` (the schema) and then
`Ledger.append` (the stream rules), the way the API, the CLI and import send them; whichever of
the two refuses, the refusal must say which field and leave the stream exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    RuleViolation,
    StaleVersion,
    ValidationFailed,
)
from domain.ledger.application import Ledger, Receipt, StoreConfig

ACTOR = "test-nurse"
P1 = "P1"
P2 = "P2"


# -- helpers --------------------------------------------------------------------------------------


class ReloadingLedger(Ledger):
    """A ledger that forgets the patient before each append, so every rule runs on the state
    loaded from the store: what a restarted server or another worker process sees (the stored
    events decode into the trusted twins, not the classes a client's body decodes into)."""

    def append(self, patient_id: str, *args: Any, **kwargs: Any) -> list[Receipt]:
        self._streams.take(patient_id)
        return super().append(patient_id, *args, **kwargs)


@pytest.fixture(params=["kept", "reloaded"])
def ledger(store: StoreConfig, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    led = Ledger(store) if request.param == "kept" else ReloadingLedger(store)
    yield led
    led.close()


def today() -> date:
    return datetime.now(UTC).date()


def in_days(days: int) -> str:
    return (today() + timedelta(days=days)).isoformat()


def send(ledger: Ledger, patient_id: str, *bodies: dict[str, Any], **kw: Any) -> list[Receipt]:
    """Decode each body with the schema, then append them as one batch."""
    entries = [decode_entry(body) for body in bodies]
    return ledger.append(patient_id, entries, actor=ACTOR, source="api", **kw)


def send1(ledger: Ledger, patient_id: str, body: dict[str, Any]) -> Receipt:
    return send(ledger, patient_id, body)[0]


def registration(**fields: Any) -> dict[str, Any]:
    return {"type": "patient_registered", "occurred": "2016-05-01", "sex": "male"} | fields


def diagnosis(occurred: str = "2016-05-20", **fields: Any) -> dict[str, Any]:
    body = {"type": "diagnosis_confirmed", "occurred": occurred}
    return body | {"histology": "squamous_cell_carcinoma"} | fields


def staging(occurred: str = "2016-05-31", **fields: Any) -> dict[str, Any]:
    return {"type": "staging", "occurred": occurred, "t": "T4", "n": "N2", "m": "M1"} | fields


def ctc(occurred: Any = "2016-08-30", count: Any = 4, **fields: Any) -> dict[str, Any]:
    return {"type": "ctc_count", "occurred": occurred, "count": count} | fields


def death(occurred: str = "2018-08-30", **fields: Any) -> dict[str, Any]:
    return {"type": "death", "occurred": occurred, "cause": "cancer"} | fields


def amend(target: UUID, replacement: dict[str, Any], occurred: str = "2016") -> dict[str, Any]:
    return {
        "type": "event_amended",
        "occurred": occurred,
        "target_event_id": str(target),
        "replacement": replacement,
        "reason": "transcription error",
    }


def retract(target: UUID, occurred: str = "2016") -> dict[str, Any]:
    return {
        "type": "event_retracted",
        "occurred": occurred,
        "target_event_id": str(target),
        "reason": "entered in the wrong chart",
    }


def given_registered(ledger: Ledger, patient_id: str = P1, **fields: Any) -> Receipt:
    fields.setdefault("birth_year", 1940)
    return send1(ledger, patient_id, registration(**fields))


def given_diagnosed(ledger: Ledger, patient_id: str = P1) -> Receipt:
    given_registered(ledger, patient_id)
    return send1(ledger, patient_id, diagnosis())


def state(ledger: Ledger, patient_id: str) -> tuple[int, list[ev.AnyEvent]]:
    """Everything a refusal must leave alone: the stream's version and its full history."""
    version = ledger.version(patient_id)
    return version, (ledger.history(patient_id) if version else [])


def refused(
    ledger: Ledger,
    patient_id: str,
    *bodies: dict[str, Any],
    kind: type[DomainError],
    field: str,
    rule: str | None = None,
) -> DomainError:
    """When the bodies are sent, then they are refused with `kind` naming `field`, and nothing
    in the stream changed."""
    before = state(ledger, patient_id)
    with pytest.raises(DomainError) as info:
        send(ledger, patient_id, *bodies)
    exc = info.value
    assert type(exc) is kind, f"{type(exc).__name__}: {exc}"
    assert exc.field == field, str(exc)
    if rule is not None:
        assert exc.rule == rule, str(exc)
    assert state(ledger, patient_id) == before
    if before[0]:
        assert ledger.verify(patient_id).ok
    return exc


# -- unknown patient ------------------------------------------------------------------------------


def test_event_for_an_unknown_patient_is_not_found(ledger: Ledger) -> None:
    # given another patient, but not P9
    given_registered(ledger, P1)
    # when / then
    refused(ledger, "P9", ctc(), kind=NotFound, field="patient_id")
    assert not ledger.exists("P9")
    with pytest.raises(NotFound):
        ledger.history("P9")


def test_correction_for_an_unknown_patient_is_not_found(ledger: Ledger) -> None:
    refused(ledger, "P9", retract(uuid4()), kind=NotFound, field="patient_id")


# -- schema: malformed body, unknown field, wrong type, out of range ------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(ctc(count=-1), "count", id="count-negative"),
        pytest.param(ctc(count="4"), "count", id="count-string"),
        pytest.param(ctc(count=4.0), "count", id="count-float"),
        pytest.param(ctc(count=True), "count", id="count-bool"),
        pytest.param(ctc(blood_volume_ml=0), "blood_volume_ml", id="volume-zero"),
        pytest.param(ctc(blood_volume_ml=-7.5), "blood_volume_ml", id="volume-negative"),
        pytest.param(ctc(blood_volume_ml=51), "blood_volume_ml", id="volume-51"),
        pytest.param(ctc(blood_volume_ml=1e-300), "blood_volume_ml", id="volume-vanishing"),
        pytest.param(ctc(count=10**400), "count", id="count-huge"),
        pytest.param(ctc(count=1_000_001), "count", id="count-over-a-million"),
        pytest.param(ctc(blood_volume_ml=50.01), "blood_volume_ml", id="volume-over-50"),
        pytest.param(ctc(note="x" * 2001), "note", id="note-2001-chars"),
        pytest.param(ctc(patient_id="P 1"), "patient_id", id="patient-id-space"),
        pytest.param(ctc(patient_id="P1/x"), "patient_id", id="patient-id-slash"),
        pytest.param(ctc(patient_id=""), "patient_id", id="patient-id-empty"),
        pytest.param(ctc(patient_id="P" * 65), "patient_id", id="patient-id-65-chars"),
        pytest.param(ctc(occurred="30.08.2016"), "occurred", id="occurred-not-iso"),
        pytest.param(ctc(occurred="2016-8-30"), "occurred", id="occurred-no-padding"),
        pytest.param(ctc(occurred=2016), "occurred", id="occurred-number"),
        pytest.param(ctc(date_estimated="yes"), "date_estimated", id="estimated-string"),
        pytest.param(ctc(event_id="not-a-uuid"), "event_id", id="event-id-not-uuid"),
        pytest.param(ctc(colour="red"), "colour", id="unknown-field"),
        pytest.param({"type": "ctc_count", "occurred": "2016"}, "count", id="missing-count"),
        pytest.param({"occurred": "2016", "count": 1}, "type", id="missing-type"),
        pytest.param(ctc(type="ctc"), "type", id="unknown-type"),
        pytest.param(registration(sex="m"), "sex", id="sex-not-in-enum"),
        pytest.param(registration(birth_year=1700), "birth_year", id="birth-year-1700"),
        pytest.param(staging(t="T5"), "t", id="t-not-in-enum"),
        pytest.param(staging(system="AJCC7"), "system", id="system-not-ajcc8"),
        pytest.param(
            {"type": "chemotherapy", "occurred": "2016", "regimen": "TP", "courses": 0},
            "courses",
            id="courses-zero",
        ),
        pytest.param(
            {
                "type": "imaging",
                "occurred": "2016",
                "modality": "ct",
                "region": "chest",
                "lesions": [{"lesion_id": "L1", "site": "liver", "dimensions_mm": [-1]}],
            },
            "lesions[0].dimensions_mm[0]",
            id="lesion-dimension-negative",
        ),
        pytest.param(
            {
                "type": "imaging",
                "occurred": "2016",
                "modality": "ct",
                "region": "chest",
                "lesions": [{"lesion_id": "L1", "site": "liver", "dimensions_mm": [4, 3, 2, 1]}],
            },
            "lesions[0].dimensions_mm",
            id="lesion-four-dimensions",
        ),
        pytest.param(retract(uuid4()) | {"reason": ""}, "reason", id="retraction-empty-reason"),
        pytest.param(
            amend(uuid4(), ctc(count=-1)), "replacement.count", id="replacement-out-of-range"
        ),
        pytest.param(
            amend(uuid4(), retract(uuid4())), "replacement.type", id="replacement-is-correction"
        ),
    ],
)
def test_malformed_body_is_a_validation_error_naming_the_field(
    ledger: Ledger, body: dict[str, Any], field: str
) -> None:
    # given a registered patient
    given_registered(ledger)
    # when the body is decoded, then the schema refuses it and names the field
    with pytest.raises(ValidationFailed) as info:
        decode_entry(body)
    assert info.value.field == field, str(info.value)
    assert info.value.kind == "validation"
    # and sent to the ledger, the stream is unchanged
    refused(ledger, P1, body, kind=ValidationFailed, field=field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(amend(uuid4(), ctc(colour="red")), "replacement.colour", id="unknown"),
        pytest.param(
            amend(uuid4(), {"type": "ctc_count", "occurred": "2016"}),
            "replacement.count",
            id="missing",
        ),
    ],
)
def test_nested_unknown_or_missing_field_is_named_with_its_path(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        decode_entry(body)
    assert info.value.field == field, str(info.value)


@pytest.mark.parametrize("body", ["ctc_count", ["ctc_count"], 4, None])
def test_a_body_that_is_not_an_object_names_no_made_up_field(body: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        decode_entry(body)
    assert info.value.field is None, str(info.value)


def test_boundary_values_are_accepted(ledger: Ledger) -> None:
    # given a registered patient
    given_registered(ledger)
    # when events sit exactly on each bound
    receipts = send(
        ledger,
        P1,
        ctc(count=0, blood_volume_ml=50),
        ctc(count=1, blood_volume_ml=0.5, note="x" * 2000),
        ctc(occurred="2016-08", count=2, patient_id=P1),
        ctc(occurred="2016", count=3, date_estimated=True),
        ctc(occurred=today().isoformat(), count=3),
    )
    # then all are stored
    assert [r.version for r in receipts] == [2, 3, 4, 5, 6]
    assert all(r.created for r in receipts)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(ctc(occurred="2016-13-01"), "occurred", id="month-13"),
        pytest.param(ctc(occurred="2016-00"), "occurred", id="month-00"),
        pytest.param(ctc(occurred="2016-02-30"), "occurred", id="february-30"),
        pytest.param(ctc(occurred="2017-02-29"), "occurred", id="not-a-leap-year"),
        pytest.param(ctc(occurred="2016-04-31"), "occurred", id="april-31"),
        pytest.param(ctc(occurred="2016-01-00"), "occurred", id="day-00"),
        pytest.param(ctc(occurred="1799"), "occurred", id="year-1799"),
        pytest.param(
            {
                "type": "chemotherapy",
                "occurred": "2016-06",
                "regimen": "TP",
                "ended": "2016-02-30",
            },
            "ended",
            id="ended-february-30",
        ),
        pytest.param(
            amend(uuid4(), ctc(occurred="2016-02-30")),
            "replacement.occurred",
            id="replacement-february-30",
        ),
    ],
)
def test_a_date_that_is_not_on_the_calendar_is_a_validation_error(
    ledger: Ledger, body: dict[str, Any], field: str
) -> None:
    # given a registered patient (the pattern YYYY-MM-DD matches, the calendar does not)
    given_registered(ledger)
    # when / then
    refused(ledger, P1, body, kind=ValidationFailed, field=field, rule="calendar_date")


def test_leap_day_is_a_calendar_date(ledger: Ledger) -> None:
    given_registered(ledger)
    assert send1(ledger, P1, ctc(occurred="2016-02-29")).version == 2


# -- dates: never in the future, never before birth -----------------------------------------------


@pytest.mark.parametrize(
    "occurred",
    [
        pytest.param(in_days(2), id="day"),
        pytest.param(in_days(40)[:7], id="month"),
        pytest.param(str(today().year + 1), id="year"),
    ],
)
def test_occurred_in_the_future_is_a_rule_violation(ledger: Ledger, occurred: str) -> None:
    # given a registered patient
    given_registered(ledger)
    # when / then
    refused(ledger, P1, ctc(occurred=occurred), kind=RuleViolation, field="occurred")


def test_occurred_today_and_this_month_are_allowed(ledger: Ledger) -> None:
    given_registered(ledger)
    receipts = send(ledger, P1, ctc(occurred=today().isoformat()), ctc(occurred=in_days(0)[:7]))
    assert [r.version for r in receipts] == [2, 3]


def test_registration_in_the_future_is_a_rule_violation(ledger: Ledger) -> None:
    refused(
        ledger,
        P1,
        registration(occurred=in_days(2)),
        kind=RuleViolation,
        field="occurred",
        rule="not_in_future",
    )
    assert not ledger.exists(P1)


def test_birth_year_in_the_future_is_a_rule_violation(ledger: Ledger) -> None:
    refused(
        ledger,
        P1,
        registration(occurred="2016", birth_year=today().year + 1),
        kind=RuleViolation,
        field="birth_year",
    )


def test_chemotherapy_ended_in_the_future_or_before_it_began(ledger: Ledger) -> None:
    given_registered(ledger)
    chemo = {"type": "chemotherapy", "occurred": "2016-06-05", "regimen": "TP"}
    refused(ledger, P1, chemo | {"ended": in_days(2)}, kind=RuleViolation, field="ended")
    refused(ledger, P1, chemo | {"ended": "2016-06-01"}, kind=RuleViolation, field="ended")
    # a partial end date that may be the same month is fine
    assert send1(ledger, P1, chemo | {"ended": "2016-06"}).created


def test_occurred_before_birth_year_is_a_rule_violation(ledger: Ledger) -> None:
    # given a patient born in 1940
    given_registered(ledger, birth_year=1940)
    # when an event is dated 1939, then it is refused
    refused(
        ledger,
        P1,
        ctc(occurred="1939-12-31"),
        kind=RuleViolation,
        field="occurred",
        rule="not_before_birth",
    )
    # and the birth year itself is allowed
    assert send1(ledger, P1, ctc(occurred="1940")).version == 2


def test_registration_dated_before_its_own_birth_year_is_a_rule_violation(ledger: Ledger) -> None:
    refused(
        ledger,
        P1,
        registration(occurred="1939", birth_year=1940),
        kind=RuleViolation,
        field="occurred",
        rule="not_before_birth",
    )


def test_amended_replacement_before_birth_is_a_rule_violation(ledger: Ledger) -> None:
    given_registered(ledger, birth_year=1940)
    target = send1(ledger, P1, ctc()).event_id
    refused(
        ledger,
        P1,
        amend(target, ctc(occurred="1930")),
        kind=RuleViolation,
        field="replacement.occurred",
    )


def test_amending_birth_year_past_recorded_events_is_a_rule_violation(ledger: Ledger) -> None:
    # given a patient born in 1940, registered in 2016, with an earlier biopsy entered late
    registered = given_registered(ledger, birth_year=1940)
    send1(ledger, P1, {"type": "biopsy", "occurred": "2010-03", "site": "esophagus"})
    # when the registration is amended to a birth year after that biopsy, then it is refused
    refused(
        ledger,
        P1,
        amend(registered.event_id, registration(birth_year=2012)),
        kind=RuleViolation,
        field="replacement.birth_year",
        rule="not_before_birth",
    )
    # and a birth year that still precedes every event is fine
    assert send1(ledger, P1, amend(registered.event_id, registration(birth_year=2010))).created


# -- death ----------------------------------------------------------------------------------------


def test_event_after_a_death_is_a_rule_violation(ledger: Ledger) -> None:
    # given a patient who died on 2018-08-30
    given_registered(ledger)
    send1(ledger, P1, death("2018-08-30"))
    # when a later event is sent, then it is refused
    refused(
        ledger,
        P1,
        ctc(occurred="2018-08-31"),
        kind=RuleViolation,
        field="occurred",
        rule="nothing_after_death",
    )
    refused(ledger, P1, ctc(occurred="2018-09"), kind=RuleViolation, field="occurred")
    refused(ledger, P1, ctc(occurred="2019"), kind=RuleViolation, field="occurred")


def test_late_entry_of_earlier_events_after_a_death_is_allowed(ledger: Ledger) -> None:
    # given a patient who died on 2018-08-30
    given_registered(ledger)
    send1(ledger, P1, death("2018-08-30"))
    # when earlier events (or ones a partial date cannot place after the death) arrive late
    receipts = send(
        ledger,
        P1,
        ctc(occurred="2017-10-10"),
        ctc(occurred="2018-08-30"),
        ctc(occurred="2018-08"),
        ctc(occurred="2018"),
    )
    # then they are stored
    assert [r.version for r in receipts] == [3, 4, 5, 6]


def test_death_dated_before_recorded_events_is_a_rule_violation(ledger: Ledger) -> None:
    given_registered(ledger)
    send1(ledger, P1, ctc(occurred="2017-10-10"))
    refused(ledger, P1, death("2017-01-01"), kind=RuleViolation, field="occurred")


def test_event_after_a_retracted_death_is_allowed(ledger: Ledger) -> None:
    # given a death that was entered in error and retracted
    given_registered(ledger)
    died = send1(ledger, P1, death("2018-08-30"))
    send1(ledger, P1, retract(died.event_id))
    # when a later event arrives, then it is stored
    assert send1(ledger, P1, ctc(occurred="2019-01-10")).version == 4


def test_death_twice_is_a_rule_violation(ledger: Ledger) -> None:
    given_registered(ledger)
    send1(ledger, P1, death("2018-08-30"))
    refused(ledger, P1, death("2018-08-30"), kind=RuleViolation, field="type", rule="death_once")
    refused(ledger, P1, death("2018-01-01"), kind=RuleViolation, field="type", rule="death_once")


def test_two_deaths_in_one_batch_are_a_rule_violation(ledger: Ledger) -> None:
    given_registered(ledger)
    refused(ledger, P1, death(), death(), kind=RuleViolation, field="type", rule="death_once")


def test_death_again_after_retracting_the_first_is_allowed(ledger: Ledger) -> None:
    # given a death that was retracted
    given_registered(ledger)
    first = send1(ledger, P1, death("2018-08-30"))
    send1(ledger, P1, retract(first.event_id))
    # when a death is recorded again, then it is stored
    second = send1(ledger, P1, death("2018-09-02"))
    assert second.version == 4 and second.created
    # and a third is refused again
    refused(ledger, P1, death("2018-09-03"), kind=RuleViolation, field="type")


def test_amending_an_event_to_after_the_death_is_a_rule_violation(ledger: Ledger) -> None:
    # given a CTC draw and a later death
    given_registered(ledger)
    draw = send1(ledger, P1, ctc(occurred="2017-10-10"))
    send1(ledger, P1, death("2018-08-30"))
    # when the draw is amended to a date after the death, then it is refused
    refused(
        ledger,
        P1,
        amend(draw.event_id, ctc(occurred="2018-09-01")),
        kind=RuleViolation,
        field="replacement",
        rule="nothing_after_death",
    )
    # and amending it to another date before the death is fine
    assert send1(ledger, P1, amend(draw.event_id, ctc(occurred="2017-10-11"))).created


def test_amending_the_death_to_before_recorded_events_is_a_rule_violation(ledger: Ledger) -> None:
    given_registered(ledger)
    send1(ledger, P1, ctc(occurred="2017-10-10"))
    died = send1(ledger, P1, death("2018-08-30"))
    refused(
        ledger,
        P1,
        amend(died.event_id, death("2017-01-01")),
        kind=RuleViolation,
        field="replacement",
        rule="nothing_after_death",
    )


def test_amending_the_death_does_not_count_as_a_second_death(ledger: Ledger) -> None:
    given_registered(ledger)
    died = send1(ledger, P1, death("2018-08-30"))
    # a death can be amended (its date, its cause) without counting twice
    assert send1(ledger, P1, amend(died.event_id, death("2018-08-29", cause="other"))).created
    assert ledger.load(P1).status[died.event_id] == "amended"


# -- staging --------------------------------------------------------------------------------------


def test_staging_without_an_earlier_diagnosis_is_a_rule_violation(ledger: Ledger) -> None:
    # given a registered patient with no diagnosis
    given_registered(ledger)
    # when / then
    refused(ledger, P1, staging(), kind=RuleViolation, field="type", rule="staging_needs_diagnosis")


def test_staging_before_the_diagnosis_in_the_same_batch_is_a_rule_violation(
    ledger: Ledger,
) -> None:
    given_registered(ledger)
    refused(ledger, P1, staging(), diagnosis(), kind=RuleViolation, field="type")
    # in stream order, diagnosis first, the same pair is accepted
    receipts = send(ledger, P1, diagnosis(), staging())
    assert [r.version for r in receipts] == [2, 3]


def test_staging_after_the_diagnosis_was_retracted_is_a_rule_violation(ledger: Ledger) -> None:
    diagnosed = given_diagnosed(ledger)
    send1(ledger, P1, retract(diagnosed.event_id))
    refused(ledger, P1, staging(), kind=RuleViolation, field="type")


def test_tis_with_n_other_than_n0_is_a_rule_violation(ledger: Ledger) -> None:
    # given a diagnosed patient
    given_diagnosed(ledger)
    # when Tis is staged with N1 (or any N but N0), then it is refused naming `n`
    for n in ("N1", "N2", "N3", "NX"):
        refused(
            ledger,
            P1,
            staging(t="Tis", n=n, m="M0"),
            kind=RuleViolation,
            field="n",
            rule="tis_requires_n0",
        )
    # and Tis N0 M0 is stage 0
    send1(ledger, P1, staging(t="Tis", n="N0", m="M0"))
    stored = ledger.history(P1)[-1]
    assert isinstance(stored, ev.Staging) and stored.stage_group == "0"


def test_client_stage_group_that_disagrees_is_a_rule_violation(ledger: Ledger) -> None:
    # given a diagnosed patient (squamous cell carcinoma)
    given_diagnosed(ledger)
    # when cT4N2M1 is sent as stage III, then it is refused naming `stage_group`
    refused(
        ledger,
        P1,
        staging(stage_group="III"),
        kind=RuleViolation,
        field="stage_group",
        rule="stage_group_agrees",
    )


def test_client_stage_group_that_agrees_is_accepted(ledger: Ledger) -> None:
    given_diagnosed(ledger)
    send(ledger, P1, staging(stage_group="IVB"), staging(occurred="2016-09-01"))
    stored = ledger.history(P1)[-2:]
    # the server computes the group either way and stores it
    assert [(s.type, getattr(s, "stage_group", None)) for s in stored] == [
        ("staging", "IVB"),
        ("staging", "IVB"),
    ]


def test_amended_staging_with_a_disagreeing_stage_group_is_a_rule_violation(
    ledger: Ledger,
) -> None:
    given_diagnosed(ledger)
    staged = send1(ledger, P1, staging())
    refused(
        ledger,
        P1,
        amend(staged.event_id, staging(m="M0", stage_group="IVB")),
        kind=RuleViolation,
        field="replacement.stage_group",
    )
    refused(
        ledger,
        P1,
        amend(staged.event_id, staging(t="Tis", n="N1", m="M0")),
        kind=RuleViolation,
        field="replacement.n",
    )


# -- registration ---------------------------------------------------------------------------------


def test_registering_an_existing_patient_is_a_conflict(ledger: Ledger) -> None:
    # given a registered patient
    given_registered(ledger)
    # when registered again (even with other details), then it is a conflict
    refused(ledger, P1, registration(), kind=Conflict, field="patient_id", rule="register_once")
    refused(ledger, P1, registration(sex="female"), kind=Conflict, field="patient_id")


def test_the_first_event_must_be_a_registration(ledger: Ledger) -> None:
    refused(ledger, P1, diagnosis(), registration(), kind=NotFound, field="patient_id")
    assert not ledger.exists(P1)


def test_registration_and_first_events_in_one_batch(ledger: Ledger) -> None:
    receipts = send(ledger, P1, registration(birth_year=1940), diagnosis(), staging(), ctc())
    assert [r.version for r in receipts] == [1, 2, 3, 4]


def test_patient_id_in_the_body_must_match_the_stream(ledger: Ledger) -> None:
    given_registered(ledger, P1)
    given_registered(ledger, P2)
    refused(ledger, P1, ctc(patient_id=P2), kind=ValidationFailed, field="patient_id")
    assert ledger.version(P2) == 1


# -- corrections ----------------------------------------------------------------------------------


def test_correction_target_in_another_stream_is_not_found(ledger: Ledger) -> None:
    # given two patients, a CTC draw in P2's stream
    given_registered(ledger, P1)
    given_registered(ledger, P2)
    elsewhere = send1(ledger, P2, ctc()).event_id
    p2_before = state(ledger, P2)
    # when P1's stream tries to correct it, then the target is not found there
    refused(ledger, P1, retract(elsewhere), kind=NotFound, field="target_event_id")
    refused(ledger, P1, amend(elsewhere, ctc(count=5)), kind=NotFound, field="target_event_id")
    # and P2's stream is untouched as well
    assert state(ledger, P2) == p2_before


def test_correction_target_unknown_is_not_found(ledger: Ledger) -> None:
    given_registered(ledger)
    refused(ledger, P1, retract(uuid4()), kind=NotFound, field="target_event_id")
    refused(ledger, P1, amend(uuid4(), ctc()), kind=NotFound, field="target_event_id")


def test_correcting_a_retracted_event_is_a_rule_violation(ledger: Ledger) -> None:
    # given a retracted draw
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    send1(ledger, P1, retract(draw))
    # when it is amended or retracted again, then it is refused
    refused(
        ledger,
        P1,
        amend(draw, ctc(count=5)),
        kind=RuleViolation,
        field="target_event_id",
        rule="target_not_retracted",
    )
    refused(ledger, P1, retract(draw), kind=RuleViolation, field="target_event_id")


def test_retracting_an_amended_event_is_allowed(ledger: Ledger) -> None:
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    send1(ledger, P1, amend(draw, ctc(count=5)))
    assert send1(ledger, P1, retract(draw)).version == 4
    patient = ledger.load(P1)
    assert patient.status[draw] == "retracted" and draw not in patient.effective


@pytest.mark.parametrize("correction", ["amendment", "retraction"])
@pytest.mark.parametrize("target", ["amendment", "retraction"])
def test_correcting_a_correction_is_a_rule_violation(
    ledger: Ledger, correction: str, target: str
) -> None:
    # given a draw with a correction
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    first = send1(ledger, P1, amend(draw, ctc(count=5)) if target == "amendment" else retract(draw))
    # when the correction itself is corrected, then it is refused
    body = (
        amend(first.event_id, ctc(count=6))
        if correction == "amendment"
        else retract(first.event_id)
    )
    refused(
        ledger,
        P1,
        body,
        kind=RuleViolation,
        field="target_event_id",
        rule="no_correction_of_correction",
    )


def test_amendment_that_changes_the_type_is_a_rule_violation(ledger: Ledger) -> None:
    # given a CTC draw
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    # when it is amended into a follow-up, then it is refused
    refused(
        ledger,
        P1,
        amend(draw, {"type": "follow_up", "occurred": "2016-08-30", "status": "alive"}),
        kind=RuleViolation,
        field="replacement.type",
        rule="amendment_keeps_type",
    )


def test_retracting_the_registration_is_a_rule_violation(ledger: Ledger) -> None:
    registered = given_registered(ledger)
    refused(
        ledger,
        P1,
        retract(registered.event_id),
        kind=RuleViolation,
        field="target_event_id",
        rule="registration_stays",
    )


def test_amending_the_registration_is_allowed(ledger: Ledger) -> None:
    registered = given_registered(ledger, birth_year=1940)
    send1(ledger, P1, amend(registered.event_id, registration(birth_year=1941)))
    assert ledger.load(P1).birth_year == 1941
    refused(ledger, P1, ctc(occurred="1940"), kind=RuleViolation, field="occurred")


def test_amendment_replacement_in_the_future_is_a_rule_violation(ledger: Ledger) -> None:
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    refused(
        ledger,
        P1,
        amend(draw, ctc(occurred=in_days(2))),
        kind=RuleViolation,
        field="replacement.occurred",
    )


# -- server-assigned fields -----------------------------------------------------------------------

SERVER_VALUES: dict[str, Any] = {
    "version": 7,
    "recorded_at": "2016-09-01T10:00:00Z",
    "recorded_by": "mallory",
    "source": "import",
    "prev_hash": "0" * 64,
    "hash": "a" * 64,
    "salt": "b" * 32,
}


def test_server_value_table_covers_every_server_field() -> None:
    assert set(SERVER_VALUES) == set(ev.SERVER_FIELDS)


@pytest.mark.parametrize("name", list(SERVER_VALUES))
def test_server_assigned_field_sent_by_the_client_is_a_validation_error(
    ledger: Ledger, name: str
) -> None:
    # given a registered patient
    given_registered(ledger)
    # when a client sends a field the server assigns, then it is refused naming it
    refused(
        ledger,
        P1,
        ctc(**{name: SERVER_VALUES[name]}),
        kind=ValidationFailed,
        field=name,
        rule="server_assigned",
    )


@pytest.mark.parametrize("name", [*SERVER_VALUES, "event_id", "patient_id"])
def test_server_assigned_field_inside_a_replacement_is_a_validation_error(
    ledger: Ledger, name: str
) -> None:
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    value = {"event_id": str(uuid4()), "patient_id": P1, **SERVER_VALUES}[name]
    refused(
        ledger,
        P1,
        amend(draw, ctc(count=5, **{name: value})),
        kind=ValidationFailed,
        field=f"replacement.{name}",
    )


def test_registration_with_server_fields_is_refused(ledger: Ledger) -> None:
    refused(
        ledger,
        P1,
        registration(version=1),
        kind=ValidationFailed,
        field="version",
    )
    assert not ledger.exists(P1)


# -- imaging --------------------------------------------------------------------------------------


def imaging(*lesions: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "imaging",
        "occurred": "2016-06-01",
        "modality": "ct",
        "region": "chest",
        "lesions": list(lesions),
    }


def lesion(lesion_id: str, *dims: float) -> dict[str, Any]:
    return {"lesion_id": lesion_id, "site": "liver", "dimensions_mm": list(dims)}


def test_lesion_dimensions_not_longest_first_are_a_validation_error(ledger: Ledger) -> None:
    given_registered(ledger)
    refused(
        ledger,
        P1,
        imaging(lesion("L1", 30, 20), lesion("L2", 12, 15, 9)),
        kind=ValidationFailed,
        field="lesions[1].dimensions_mm",
        rule="longest_first",
    )
    refused(
        ledger,
        P1,
        imaging(lesion("L1", 20, 20, 21)),
        kind=ValidationFailed,
        field="lesions[0].dimensions_mm",
    )
    # equal diameters are longest-first too
    assert send1(ledger, P1, imaging(lesion("L1", 20, 20, 5), lesion("L2", 7))).created


def test_lesion_id_twice_in_one_imaging_is_a_validation_error(ledger: Ledger) -> None:
    given_registered(ledger)
    refused(
        ledger,
        P1,
        imaging(lesion("L1", 30), lesion("L1", 20)),
        kind=ValidationFailed,
        field="lesions[1].lesion_id",
    )


def test_amended_imaging_with_unordered_dimensions_is_a_validation_error(ledger: Ledger) -> None:
    given_registered(ledger)
    scan = send1(ledger, P1, imaging(lesion("L1", 30, 20))).event_id
    refused(
        ledger,
        P1,
        amend(scan, imaging(lesion("L1", 20, 30))),
        kind=ValidationFailed,
        field="replacement.lesions[0].dimensions_mm",
    )


# -- a batch is all or nothing --------------------------------------------------------------------


def test_a_batch_with_one_bad_event_stores_none_of_it(ledger: Ledger) -> None:
    given_diagnosed(ledger)
    refused(
        ledger,
        P1,
        ctc(count=1),
        staging(),
        ctc(count=2, occurred=in_days(3)),
        kind=RuleViolation,
        field="occurred",
    )


def test_an_empty_batch_is_a_validation_error(ledger: Ledger) -> None:
    given_registered(ledger)
    refused(ledger, P1, kind=ValidationFailed, field="events")


def test_the_same_event_id_twice_in_one_batch_is_a_validation_error(ledger: Ledger) -> None:
    given_registered(ledger)
    event_id = str(uuid4())
    refused(
        ledger,
        P1,
        ctc(event_id=event_id),
        ctc(event_id=event_id),
        kind=ValidationFailed,
        field="event_id",
    )


# -- idempotency ----------------------------------------------------------------------------------


def test_resending_an_event_id_with_the_same_body_returns_the_original_receipt(
    ledger: Ledger,
) -> None:
    # given a draw sent with a client-chosen event_id, and a later event
    given_registered(ledger)
    event_id = uuid4()
    original = send1(ledger, P1, ctc(event_id=str(event_id)))
    send1(ledger, P1, ctc(count=2, occurred="2016-12-30"))
    before = state(ledger, P1)
    # when it is sent again (defaults spelt out, the stream's own patient_id added)
    again = send1(
        ledger,
        P1,
        ctc(event_id=str(event_id), patient_id=P1, date_estimated=False, blood_volume_ml=7.5),
    )
    # then the original receipt comes back, marked not created, and nothing is stored
    assert original.created and not again.created
    assert (again.event_id, again.version, again.recorded_at, again.hash) == (
        original.event_id,
        original.version,
        original.recorded_at,
        original.hash,
    )
    assert again.event_id == event_id
    assert state(ledger, P1) == before


def test_resending_an_event_id_with_another_body_is_a_conflict(ledger: Ledger) -> None:
    given_registered(ledger)
    event_id = str(uuid4())
    send1(ledger, P1, ctc(event_id=event_id, count=4))
    for changed in (ctc(count=5), ctc(note="typo"), ctc(date_estimated=True), death()):
        refused(
            ledger,
            P1,
            changed | {"event_id": event_id},
            kind=Conflict,
            field="event_id",
            rule="idempotent_event_id",
        )


def test_resending_a_registration_is_a_no_op_not_a_conflict(ledger: Ledger) -> None:
    event_id = str(uuid4())
    first = send1(ledger, P1, registration(event_id=event_id, birth_year=1940))
    again = send1(ledger, P1, registration(event_id=event_id, birth_year=1940))
    assert not again.created and again.version == first.version == 1
    assert again.hash == first.hash and again.recorded_at == first.recorded_at


def test_resending_a_correction_is_a_no_op(ledger: Ledger) -> None:
    given_registered(ledger)
    draw = send1(ledger, P1, ctc()).event_id
    body = amend(draw, ctc(count=5)) | {"event_id": str(uuid4())}
    first = send1(ledger, P1, body)
    before = state(ledger, P1)
    again = send1(ledger, P1, body)
    assert not again.created and again.hash == first.hash
    assert state(ledger, P1) == before


def test_a_batch_mixing_a_resent_event_and_a_new_one(ledger: Ledger) -> None:
    given_registered(ledger)
    old = ctc(event_id=str(uuid4()))
    first = send1(ledger, P1, old)
    receipts = send(ledger, P1, old, ctc(count=1, occurred="2016-12-30"))
    assert [(r.version, r.created) for r in receipts] == [(first.version, False), (3, True)]
    assert receipts[0].hash == first.hash
    assert ledger.version(P1) == 3


def test_an_event_id_used_in_another_stream_is_a_conflict(ledger: Ledger) -> None:
    # given event X is stored in P2's stream
    given_registered(ledger, P1)
    given_registered(ledger, P2)
    event_id = uuid4()
    send1(ledger, P2, ctc(event_id=str(event_id)))
    # when P1 is sent an event with that id, then it is a conflict
    refused(ledger, P1, ctc(event_id=str(event_id)), kind=Conflict, field="event_id")


# -- expected version -----------------------------------------------------------------------------


def test_stale_expected_version_is_refused_and_stores_nothing(ledger: Ledger) -> None:
    given_registered(ledger)
    send1(ledger, P1, ctc())
    before = state(ledger, P1)
    with pytest.raises(StaleVersion) as info:
        send(ledger, P1, ctc(count=1), expected_version=1)
    assert info.value.field == "If-Match" and info.value.kind == "precondition_failed"
    assert state(ledger, P1) == before
    assert send(ledger, P1, ctc(count=1), expected_version=2)[0].version == 3


# -- corrections and time travel through history() ------------------------------------------------


def test_an_amendment_is_a_new_event_and_the_original_stays(ledger: Ledger) -> None:
    # given a draw of 4 cells, amended to 5
    given_registered(ledger)
    original = send1(ledger, P1, ctc(count=4))
    amended = send1(ledger, P1, amend(original.event_id, ctc(count=5)))
    # then history shows both, the original unchanged at its version
    history = ledger.history(P1)
    assert [e.type for e in history] == ["patient_registered", "ctc_count", "event_amended"]
    first, correction = history[1], history[2]
    assert isinstance(first, ev.CtcCount) and first.count == 4
    assert first.hash == original.hash and first.version == original.version
    assert isinstance(correction, ev.EventAmended)
    assert correction.target_event_id == original.event_id
    assert correction.event_id == amended.event_id and correction.version == 3
    assert correction.reason == "transcription error"
    assert correction.recorded_by == ACTOR and correction.source == "api"
    assert isinstance(correction.replacement, ev.CtcCount) and correction.replacement.count == 5
    # the replacement takes the target's identity: no id, stream or server fields of its own
    assert correction.replacement.event_id is None and correction.replacement.version is None
    # and the patient's events in force count the replacement
    patient = ledger.load(P1)
    assert patient.status[original.event_id] == "amended"
    in_force = patient.effective[original.event_id]
    assert isinstance(in_force, ev.CtcCount) and in_force.count == 5


def test_the_latest_amendment_of_an_event_is_in_force(ledger: Ledger) -> None:
    given_registered(ledger)
    draw = send1(ledger, P1, ctc(count=4)).event_id
    send1(ledger, P1, amend(draw, ctc(count=5)))
    send1(ledger, P1, amend(draw, ctc(count=6)))
    in_force = ledger.load(P1).effective[draw]
    assert isinstance(in_force, ev.CtcCount) and in_force.count == 6
    assert ledger.load(P1, upto=3).effective[draw] == ledger.history(P1)[2].replacement  # type: ignore[union-attr]


def test_a_retraction_is_a_new_event_and_the_target_stays_in_history(ledger: Ledger) -> None:
    given_registered(ledger)
    draw = send1(ledger, P1, ctc(count=4))
    send1(ledger, P1, retract(draw.event_id))
    history = ledger.history(P1)
    assert [e.type for e in history] == ["patient_registered", "ctc_count", "event_retracted"]
    assert history[1].hash == draw.hash
    patient = ledger.load(P1)
    assert patient.status[draw.event_id] == "retracted"
    assert draw.event_id not in patient.effective
    # as known before the retraction, the draw is in force
    assert ledger.load(P1, upto=2).status[draw.event_id] == "active"


def test_a_staging_amendment_gets_its_stage_group_computed(ledger: Ledger) -> None:
    given_diagnosed(ledger)
    staged = send1(ledger, P1, staging()).event_id
    send1(ledger, P1, amend(staged, staging(m="M0")))
    replacement = ledger.history(P1)[-1].replacement  # type: ignore[union-attr]
    assert isinstance(replacement, ev.Staging) and replacement.stage_group == "IVA"


def test_history_upto_stops_at_a_version(ledger: Ledger) -> None:
    # given five events
    given_registered(ledger)
    receipts = send(ledger, P1, ctc(count=4), ctc(count=2, occurred="2016-12-30"))
    draw = receipts[0].event_id
    send1(ledger, P1, amend(draw, ctc(count=3)))
    send1(ledger, P1, retract(draw))
    full = ledger.history(P1)
    # when read up to each version, then exactly the prefix comes back
    for version in range(1, 6):
        assert ledger.history(P1, upto=version) == full[:version]
    assert ledger.history(P1, upto=99) == full
    assert [e.version for e in full] == [1, 2, 3, 4, 5]


def test_history_as_of_excludes_events_recorded_later(ledger: Ledger) -> None:
    # given events recorded one after another
    first = given_registered(ledger)
    second = send1(ledger, P1, ctc(count=4))
    third = send1(ledger, P1, amend(second.event_id, ctc(count=5)))
    full = ledger.history(P1)
    assert first.recorded_at < second.recorded_at < third.recorded_at
    # when read as of each instant, then only what was known by then
    assert ledger.history(P1, as_of=second.recorded_at) == full[:2]
    assert ledger.history(P1, as_of=third.recorded_at - timedelta(microseconds=1)) == full[:2]
    assert ledger.history(P1, as_of=third.recorded_at) == full
    assert ledger.history(P1, as_of=first.recorded_at) == full[:1]
    assert ledger.history(P1, as_of=datetime.now(UTC)) == full
    # and both bounds together: whichever is tighter
    assert ledger.history(P1, as_of=third.recorded_at, upto=1) == full[:1]
    assert ledger.history(P1, as_of=second.recorded_at, upto=3) == full[:2]


def test_history_of_a_batch_shares_one_recorded_at(ledger: Ledger) -> None:
    receipts = send(ledger, P1, registration(), ctc(count=1), ctc(count=2))
    assert len({r.recorded_at for r in receipts}) == 1
    assert len(ledger.history(P1, as_of=receipts[0].recorded_at)) == 3


def test_history_carries_the_envelope(ledger: Ledger) -> None:
    given_registered(ledger)
    receipt = send1(ledger, P1, ctc(note="hémoglobine normale"))
    entry = ledger.history(P1)[-1]
    assert entry.patient_id == P1 and entry.version == 2
    assert entry.event_id == receipt.event_id and entry.recorded_at == receipt.recorded_at
    assert entry.recorded_at is not None and entry.recorded_at.tzinfo is not None
    assert entry.recorded_by == ACTOR and entry.source == "api"
    assert entry.prev_hash == ledger.history(P1)[0].hash and entry.hash == receipt.hash
    assert entry.note == "hémoglobine normale"


def test_history_of_an_unknown_patient_is_not_found(ledger: Ledger) -> None:
    with pytest.raises(NotFound) as info:
        ledger.history("nobody")
    assert info.value.field == "patient_id"
