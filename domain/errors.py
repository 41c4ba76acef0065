"""The domain's error hierarchy. Adapters map each class to one exit code and one HTTP status.

Deliberately not `ValueError`: Litestar treats ValueError subclasses as its own 400s.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused command: nothing was stored. Names the rule and, where there is one, the field."""

    kind = "error"

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule

    def as_dict(self) -> dict[str, str]:
        extra = {"kind": self.kind}
        if self.field:
            extra["field"] = self.field
        if self.rule:
            extra["rule"] = self.rule
        return extra


class ValidationFailed(DomainError):
    """Malformed body, unknown field, wrong type, value out of range."""

    kind = "validation"


class NotFound(DomainError):
    kind = "not_found"


class Gone(NotFound):
    """The patient was erased: its clinical content no longer exists (HTTP 410, CLI exit 3)."""

    kind = "gone"


class Conflict(DomainError):
    """The command clashes with what is stored: an id already used, a duplicate registration."""

    kind = "conflict"


def different_body(event_id: object, patient_id: str) -> Conflict:
    """An event id re-sent with another body than the one stored: not a retry (SPEC §3)."""
    return Conflict(
        f"event_id {event_id} is already recorded for patient {patient_id} with a different body",
        field="event_id",
        rule="idempotent_event_id",
    )


class StaleVersion(Conflict):
    """The caller's expected version is not the stream's version any more."""

    kind = "precondition_failed"


class RuleViolation(DomainError):
    """Well-formed, but breaks a clinical or ledger rule given the patient's stream."""

    kind = "rule_violation"


class Unauthorized(DomainError):
    kind = "unauthorized"


class Forbidden(DomainError):
    kind = "forbidden"


class StorageFault(DomainError):
    """The store could not do what was asked: nothing was stored (or, for a read, refused)."""

    kind = "unavailable"


class StorageFull(StorageFault):
    """The store's disk is full: nothing was stored."""

    kind = "storage_full"


class OutcomeUnknown(StorageFault):
    """The store failed while committing and could not be asked afterwards whether the commit
    happened. The events carry ids already, so sending them again with those ids is safe."""

    def __init__(self, message: str, *, event_ids: list[str], field: str | None = None):
        super().__init__(message, field=field, rule="outcome_unknown")
        self.event_ids = event_ids

    def as_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = dict(super().as_dict())
        return extra | {
            "outcome": "unknown",
            "event_id": self.event_ids[0],
            "event_ids": self.event_ids,
        }
