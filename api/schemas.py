"""Request and response bodies of the REST API (SPEC §8), as msgspec Structs.

Events themselves are the domain's own Structs (`domain.events`): the body a client sends is the
event's flat JSON form, and OpenAPI shows every event type with its fields and limits. Bodies are
decoded strictly, like the CLI's, so `"count": "4"` is refused rather than coerced.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

from api.event_bodies import EventCreate, request_body
from domain import events as ev
from domain.codec import convert_strict
from domain.input_checks import may_hold_unstorable
from domain.integrity import ChainReport
from projections.readmodels import PatientRow
from projections.root import Receipt as LedgerReceipt

MAX_BATCH = 1000

T = TypeVar("T")


class PatientCreate(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A registration: the patient id with the `patient_registered` fields."""

    patient_id: ev.PatientId
    type: Literal["patient_registered"] = "patient_registered"
    occurred: ev.ClinicalDate
    sex: ev.Sex
    birth_year: ev.BirthYear | None = None
    primary_site: ev.Text = "esophagus"
    date_estimated: bool = False
    note: ev.Note | None = None
    event_id: UUID | None = None

    def registration(self) -> dict[str, Any]:
        """The body of the `patient_registered` event this stands for (the type is implied)."""
        body: dict[str, Any] = msgspec.to_builtins(self)
        return body


class EventBatch(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events for one patient, stored in one transaction: all of them or none."""

    events: Annotated[list[ev.AnyEvent], Meta(min_length=1, max_length=MAX_BATCH)]


class Amendment(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replace what an event says; the original stays in the ledger, marked amended."""

    reason: ev.Reason
    replacement: ev.ClinicalEvent
    event_id: Annotated[
        UUID | None,
        Meta(description="Id for the amendment itself: sending it again is a safe retry"),
    ] = None


class Retraction(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Withdraw an event entered in error; it stays in the ledger, marked retracted."""

    reason: ev.Reason
    event_id: Annotated[
        UUID | None,
        Meta(description="Id for the retraction itself: sending it again is a safe retry"),
    ] = None


# What the request bodies look like in the OpenAPI document: no server-assigned field anywhere.
# Handlers decode the raw body into the domain-typed Structs above.
if TYPE_CHECKING:
    EventRequest = ev.AnyEvent
    EventBatchCreate = EventBatch
    AmendmentCreate = Amendment
else:
    EventRequest = EventCreate
    EventBatchCreate = request_body(EventBatch)
    AmendmentCreate = request_body(Amendment)


class Receipt(Struct, frozen=True, kw_only=True):
    """What an append returns: enough to cite the stored event."""

    event_id: UUID
    version: int
    recorded_at: datetime
    hash: str

    @classmethod
    def of(cls, receipt: LedgerReceipt) -> Receipt:
        return cls(
            event_id=receipt.event_id,
            version=receipt.version,
            recorded_at=receipt.recorded_at,
            hash=receipt.hash,
        )


class Receipts(Struct, frozen=True, kw_only=True):
    receipts: list[Receipt]


class Patient(PatientRow, frozen=True, kw_only=True):
    """The patient's cohort row and the version of the stream it was derived from."""

    version: int


class PatientHistory(Struct, frozen=True, kw_only=True):
    """Every event of the patient in stream order, each in its flat form with its envelope."""

    patient_id: str
    events: list[ev.AnyEvent]


class ChainBreak(Struct, frozen=True, kw_only=True):
    patient_id: str
    version: int
    reason: str


class Verification(Struct, frozen=True, kw_only=True):
    """The hash chain recomputed from the stored bytes; `breaks` has the first break per stream."""

    ok: bool
    patients: int
    events: int
    breaks: list[ChainBreak]
    # Erased patients: their linkage was checked from the stored hashes (content destroyed).
    erased: list[str] = []

    @classmethod
    def of(cls, report: ChainReport) -> Verification:
        return cls(
            ok=report.ok,
            patients=report.patients,
            events=report.events,
            erased=list(report.erased),
            breaks=[
                ChainBreak(patient_id=b.patient_id, version=b.version, reason=b.reason)
                for b in report.breaks
            ],
        )


class Health(Struct, frozen=True, kw_only=True):
    status: str


class ErrorBody(Struct, frozen=True, kw_only=True):
    """Every error: Litestar's `{status_code, detail, extra}`; `extra` names kind, field, rule."""

    status_code: int
    detail: str
    extra: dict[str, Any] | None = None


# A route's `opt` key for a function decoding its body bytes into their Struct, or answering
# None: then the body is parsed as untyped JSON and the handler validates it (`api.app`).
TYPED_BODY = "typed_body"
_event_decoder = msgspec.json.Decoder(ev.AnyEvent, strict=True)


def event_from_bytes(body: bytes) -> ev.AnyEvent | None:
    """An event body decoded straight from its bytes into the event's Struct, in one pass; None
    when that is not the whole answer: a body that may hold unstorable text or deep nesting,
    or one this decode refuses, is read the long way (`parse_json`, then the strict
    conversion), whose refusals name the field. Whatever this decode accepts, the long way
    accepts as the same event."""
    if may_hold_unstorable(body):
        return None
    try:
        event: ev.AnyEvent = _event_decoder.decode(body)
    except Exception:  # refused: the long way says why, as it always has
        return None
    return event


def decode(data: Any, type_: type[T]) -> T:
    """Validate a parsed JSON body as `type_`, strictly: the one reading of msgspec's errors
    (`domain.codec`), which names the field (``... - at `$.events[0].count` ``)."""
    return convert_strict(data, type_)
