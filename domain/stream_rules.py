"""The rules of SPEC §3 that look at a patient's whole stream: corrections and the invariants.

Incremental: the stream as stored already keeps these rules (every append was checked against
them), so an append looks only at what it changes, and a rule costs the same at 10 and at 1,000
events. The patient's `InForce` (`domain.in_force`, where corrections are applied) keeps the
deaths and diagnoses in force by type as events are applied (`Patient.deaths`,
`Patient.diagnoses`). The whole stream is walked only when the new event
moves a bound every other event is measured against: a death recorded or amended, or an amended
registration's birth year.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, cast

from domain import events as ev
from domain.dates import parse as parse_partial
from domain.errors import NotFound, RuleViolation

if TYPE_CHECKING:
    from domain.patient import Patient


def check_correction(patient: Patient, entry: ev.AnyEvent) -> None:
    """A correction's target is in the stream, an original event, not retracted; an amendment
    keeps its type and the registration is never retracted."""
    if not isinstance(entry, ev.EventAmended | ev.EventRetracted):
        return
    target = patient.entry(entry.target_event_id)
    if target is None:
        raise NotFound(
            f"event {entry.target_event_id} is not in the stream of patient {patient.id}",
            field="target_event_id",
        )
    if target.is_correction:
        raise RuleViolation(
            f"event {entry.target_event_id} is itself a correction ({target.type}); "
            "correct the original event instead",
            field="target_event_id",
            rule="no_correction_of_correction",
        )
    if patient.status.get(entry.target_event_id) == "retracted":
        raise RuleViolation(
            f"event {entry.target_event_id} is retracted and cannot be corrected",
            field="target_event_id",
            rule="target_not_retracted",
        )
    if isinstance(entry, ev.EventRetracted):
        if isinstance(target, ev.PatientRegistered):
            raise RuleViolation(
                "the registration cannot be retracted; amend it instead",
                field="target_event_id",
                rule="registration_stays",
            )
        return
    if entry.replacement.type != target.type:
        raise RuleViolation(
            f"an amendment keeps the target's type: `replacement.type` is "
            f"{entry.replacement.type!r}, the target is {target.type!r}",
            field="replacement.type",
            rule="amendment_keeps_type",
        )


def check_stream_invariants(patient: Patient, new: ev.AnyEvent) -> None:
    """Rules over the whole stream as it would stand: one death, nothing after it, nothing
    before an amended registration's birth year."""
    if isinstance(new, ev.EventAmended) and isinstance(new.replacement, ev.PatientRegistered):
        born = new.replacement.birth_year
        if born is not None:
            for body in would_stand(patient, new):  # the bound moved: every event against it
                if parse_partial(body.occurred).year < born:
                    raise RuleViolation(
                        f"`replacement.birth_year` {born} is after the {body.type} on "
                        f"{body.occurred}",
                        field="replacement.birth_year",
                        rule="not_before_birth",
                    )
    deaths = deaths_would_stand(patient, new)
    if len(deaths) > 1:
        raise RuleViolation(
            f"patient {patient.id} already has a death recorded; retract it first",
            field="type",
            rule="death_once",
        )
    if not deaths:
        return
    bodies: Iterable[ev.ClinicalEvent]
    if isinstance(new, ev.Death) or (
        isinstance(new, ev.EventAmended) and isinstance(new.replacement, ev.Death)
    ):
        bodies = would_stand(patient, new)  # the bound moved: every event against it
    elif isinstance(new, ev.EventAmended):
        bodies = (new.replacement,)
    elif isinstance(new, ev.EventRetracted):
        return  # one event fewer breaks none of these rules
    else:
        bodies = (cast(ev.ClinicalEvent, new),)
    check_nothing_after_death(bodies, deaths[0], new)


def would_stand(patient: Patient, new: ev.AnyEvent) -> Iterator[ev.ClinicalEvent]:
    """The events in force if `new` were recorded, in stream order (nothing is copied)."""
    target = new.target_event_id if isinstance(new, ev.EventAmended | ev.EventRetracted) else None
    for key, body in patient.effective.items():
        if key != target:
            yield body
        elif isinstance(new, ev.EventAmended):
            yield new.replacement
    if not new.is_correction:
        yield cast(ev.ClinicalEvent, new)


def deaths_would_stand(patient: Patient, new: ev.AnyEvent) -> list[ev.Death]:
    """The deaths in force if `new` were recorded, in stream order."""
    deaths = dict(patient.deaths)  # zero or one: a copy that does not grow with the stream
    if isinstance(new, ev.EventAmended) and isinstance(new.replacement, ev.Death):
        if new.target_event_id in deaths:
            deaths[new.target_event_id] = new.replacement
    elif isinstance(new, ev.EventRetracted):
        deaths.pop(new.target_event_id, None)
    result = list(deaths.values())
    if isinstance(new, ev.Death):
        result.append(new)
    return result


def check_nothing_after_death(
    bodies: Iterable[ev.ClinicalEvent], death: ev.Death, new: ev.AnyEvent
) -> None:
    """None of `bodies` (but deaths and the registration) is certainly after `death`."""
    died = parse_partial(death.occurred)
    for body in bodies:
        if isinstance(body, ev.Death | ev.PatientRegistered):
            continue
        if parse_partial(body.occurred).is_certainly_after(died):
            field = "occurred" if body is new or not new.is_correction else "replacement"
            raise RuleViolation(
                f"a {body.type} on {body.occurred} would be after the death on {death.occurred}",
                field=field,
                rule="nothing_after_death",
            )
