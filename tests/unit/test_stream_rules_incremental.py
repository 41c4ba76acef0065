"""The stream rules are checked incrementally (domain/stream_rules.py): for every stream the
rules let through, each answer equals the one the former full scan of the stream gave.

The oracle below is the former rule, verbatim: a copy of the events in force as they would
stand, every one of them walked. Random streams of events, deaths, late entries, amendments
(of dates, of the death, of the registration's birth year) and retractions are sent to a
patient checked incrementally and to one checked by the oracle; both must accept or refuse
each event alike, with the same rule, field and message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID, uuid4

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.codec import decode_entry
from domain.dates import PartialDate
from domain.errors import DomainError, RuleViolation
from domain.patient import Patient

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DATES = ["2016", "2016-05", "2016-05-10", "2017", "2017-03", "2017-03-01", "2018-08-30", "2019"]
YEARS = [None, 1940, 2015, 2016, 2017, 2018]


class FullScan(Patient):
    """The stream rules as they were: the whole stream walked on every append."""

    def check_stream_invariants(self, new: ev.AnyEvent) -> None:
        effective: dict[UUID, ev.ClinicalEvent] = dict(self.effective)
        if isinstance(new, ev.EventAmended):
            effective[new.target_event_id] = new.replacement
        elif isinstance(new, ev.EventRetracted):
            effective.pop(new.target_event_id, None)
        else:
            effective = {**effective, uuid4(): cast(ev.ClinicalEvent, new)}
        if isinstance(new, ev.EventAmended) and isinstance(new.replacement, ev.PatientRegistered):
            born = new.replacement.birth_year
            for body in effective.values():
                if born is not None and PartialDate.parse(body.occurred).year < born:
                    raise RuleViolation(
                        f"`replacement.birth_year` {born} is after the {body.type} on "
                        f"{body.occurred}",
                        field="replacement.birth_year",
                        rule="not_before_birth",
                    )
        deaths = [body for body in effective.values() if isinstance(body, ev.Death)]
        if len(deaths) > 1:
            raise RuleViolation(
                f"patient {self.id} already has a death recorded; retract it first",
                field="type",
                rule="death_once",
            )
        if not deaths:
            return
        died = PartialDate.parse(deaths[0].occurred)
        for body in effective.values():
            if isinstance(body, ev.Death | ev.PatientRegistered):
                continue
            if PartialDate.parse(body.occurred).is_certainly_after(died):
                field = "occurred" if body is new or not new.is_correction else "replacement"
                raise RuleViolation(
                    f"a {body.type} on {body.occurred} would be after the death on "
                    f"{deaths[0].occurred}",
                    field=field,
                    rule="nothing_after_death",
                )


def _body(kind: str, occurred: str, birth_year: int | None = None) -> dict[str, Any]:
    if kind == "death":
        return {"type": "death", "occurred": occurred}
    if kind == "follow_up":
        return {"type": "follow_up", "occurred": occurred, "status": "alive"}
    if kind == "patient_registered":
        body = {"type": "patient_registered", "occurred": "2015", "sex": "male"}
        return body | ({"birth_year": birth_year} if birth_year is not None else {})
    return {"type": "ctc_count", "occurred": occurred, "count": 1}


step = st.one_of(
    st.tuples(st.just("new"), st.sampled_from(["ctc_count", "follow_up", "death"]), st.integers()),
    st.tuples(st.just("amend"), st.integers(0, 6), st.integers()),
    st.tuples(st.just("retract"), st.integers(0, 6), st.integers()),
    st.tuples(st.just("born"), st.sampled_from(YEARS), st.integers()),
)


def _entry(patient: Patient, op: tuple[str, Any, int]) -> ev.AnyEvent:
    kind, arg, pick = op
    occurred = DATES[pick % len(DATES)]
    if kind == "new":
        return decode_entry(_body(arg, occurred))
    if kind == "born":
        target: ev.AnyEvent = patient.entries[0]
        replacement = _body("patient_registered", occurred, birth_year=arg)
    else:
        # a recent original event, mostly; now and then any event (a correction is refused)
        pool = patient.entries if arg == 6 else [e for e in patient.entries if not e.is_correction]
        target = pool[-1 - arg % len(pool)]
        replacement = _body(target.type, occurred, birth_year=1940)
    if kind == "retract":
        body = {"type": "event_retracted", "target_event_id": str(target.event_id)}
        return decode_entry(body | {"occurred": "2020", "reason": "entered in error"})
    if target.is_correction:  # an amendment of a correction: refused by both
        replacement = _body("ctc_count", occurred)
    body = {"type": "event_amended", "target_event_id": str(target.event_id)}
    return decode_entry(body | {"occurred": "2020", "reason": "typo", "replacement": replacement})


def _with_id(entry: ev.AnyEvent) -> ev.AnyEvent:
    """The same event id in both streams, so that corrections name the same target in each."""
    return msgspec.structs.replace(entry, event_id=uuid4())


def _outcome(patient: Patient, entry: ev.AnyEvent) -> tuple[str, ...]:
    try:
        patient.record(entry, actor="t", source="api", now=NOW)
    except DomainError as exc:
        return (type(exc).__name__, str(exc.rule), str(exc.field), str(exc))
    return ("stored",)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=30))
def test_incremental_rules_answer_as_the_full_scan(ops: list[tuple[str, Any, int]]) -> None:
    incremental, oracle = Patient("P1"), FullScan("P1")
    registration = _with_id(decode_entry(_body("patient_registered", "2015", birth_year=1940)))
    for patient in (incremental, oracle):
        assert _outcome(patient, registration) == ("stored",)
    for op in ops:
        entry = _with_id(_entry(oracle, op))
        assert _outcome(incremental, entry) == _outcome(oracle, entry), op
        assert incremental.deaths == {
            k: b for k, b in incremental.effective.items() if isinstance(b, ev.Death)
        }
        assert incremental.diagnoses == {
            k: b for k, b in incremental.effective.items() if isinstance(b, ev.DiagnosisConfirmed)
        }


def test_the_examples_the_issue_names() -> None:
    # death once, nothing after death, birth year amendment, retraction of a death: the
    # incremental answer and the full scan's, on one stream
    incremental, oracle = Patient("P1"), FullScan("P1")

    def both(body: dict[str, Any]) -> tuple[str, ...]:
        entry = _with_id(decode_entry(body))
        answer = _outcome(incremental, entry)
        assert answer == _outcome(oracle, entry), body
        return answer

    both(_body("patient_registered", "2015", birth_year=1940))
    draw = incremental.entries[0]
    assert both(_body("ctc_count", "2017-03-01")) == ("stored",)
    draw = incremental.entries[-1]
    assert both(_body("death", "2018-08-30")) == ("stored",)
    died = incremental.entries[-1]
    assert both(_body("death", "2018-09-01"))[1] == "death_once"
    assert both(_body("ctc_count", "2019"))[1] == "nothing_after_death"
    assert both(_body("ctc_count", "2018-08"))[0] == "stored"  # may be the same month
    amend = {"type": "event_amended", "occurred": "2020", "reason": "typo"}
    death_earlier = amend | {"target_event_id": str(died.event_id)}
    assert both(death_earlier | {"replacement": _body("death", "2017-01-01")})[1] == (
        "nothing_after_death"
    )
    registered = incremental.entries[0]
    later_birth = amend | {"target_event_id": str(registered.event_id)}
    born_2018 = later_birth | {"replacement": _body("patient_registered", "", birth_year=2018)}
    assert both(born_2018)[1] == "not_before_birth"
    retract = {"type": "event_retracted", "occurred": "2020", "reason": "wrong patient"}
    assert both(retract | {"target_event_id": str(died.event_id)}) == ("stored",)
    assert both(_body("ctc_count", "2019")) == ("stored",)  # nothing after a retracted death
    assert both(_body("death", "2019-05")) == ("stored",)
    assert (
        both(
            amend
            | {"target_event_id": str(draw.event_id)}
            | {"replacement": _body("ctc_count", "2020")}
        )[1]
        == "nothing_after_death"
    )
