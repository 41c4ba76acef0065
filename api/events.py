"""`/api/v1/patients/{id}/events`: append (one, or a batch atomically), history, corrections.

An append answers 201 with the receipt. The same `event_id` sent again with the same body is a
safe retry: nothing is stored and the original receipt comes back, again with 201 and with
`Idempotent-Replay: true` (with another body: 409). `If-Match: "<version>"` makes the append
conditional on the stream's version (412).
"""

from __future__ import annotations

import re
from typing import Any, cast
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, SkipValidation
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from api.auth import SECURITY, admit, requires
from api.bodies import require_json_body
from api.errors import error_responses
from api.params import (
    PATIENT_ID_PATTERN,
    AsOf,
    EventIdPath,
    IfMatch,
    IfNoneMatch,
    PatientIdPath,
    Upto,
    expected_version,
    utc,
)
from api.reads import patient_read, read_headers, replay_header, replay_headers
from api.schemas import (
    TYPED_BODY,
    Amendment,
    AmendmentCreate,
    EventBatch,
    EventBatchCreate,
    EventRequest,
    PatientHistory,
    Receipt,
    Receipts,
    Retraction,
    decode,
    event_from_bytes,
)
from projections.root import OncoLedger, Principal
from projections.root import Receipt as LedgerReceipt

SOURCE = "api"

_encoder = msgspec.json.Encoder()
_PATIENT_ID = re.compile(PATIENT_ID_PATTERN)
_APPEND_ERRORS = error_responses(400, 401, 403, 404, 409, 412, 413, 415, 422, 507)


def _receipt(receipt: LedgerReceipt) -> Response[Receipt]:
    # A retry of a stored event_id answers exactly as the first time did (201, same receipt);
    # the header tells a client that wants to know that nothing new was stored. The body is
    # encoded here, as Litestar would (msgspec JSON), without its serializer's lookups.
    body = _encoder.encode(Receipt.of(receipt))
    response = Response(
        body, status_code=201, media_type=MediaType.JSON, headers=replay_header([receipt])
    )
    return cast(Response[Receipt], response)


class AppendPath:
    """`POST .../events` (one event) without Litestar's per-request machinery around the
    handler: the guard's copy of the route handler, the signature model, the response object
    (measured under the bench's load: about a tenth of an append's CPU). The checks are the
    route's own, in the same order: the token (`admit`), the body (`require_json_body`), the
    path parameter, `If-Match`; errors are raised to the app's exception handlers like the
    handler's. A patient id the route would refuse goes the route's way (`append`), which
    answers as it always has; so does anything that is not an HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path_params = scope.get("path_params") or {}
        patient_id = path_params.get("patient_id", "")
        if scope["type"] != ScopeType.HTTP or _PATIENT_ID.fullmatch(patient_id) is None:
            await self.app(scope, receive, send)
            return
        request: Request[Any, Principal, Any] = Request(scope, receive, send)
        await admit(request, "write")
        await require_json_body(request)
        service: OncoLedger = request.app.state.ledger
        (receipt,) = await service.append_async(
            patient_id,
            [cast(Any, ScopeState.from_scope(scope).json)],
            actor=request.auth.name,
            source=SOURCE,
            expected_version=expected_version(request.headers.get("if-match")),
        )
        body = _encoder.encode(Receipt.of(receipt))
        replay = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in replay_header([receipt]).items()
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [
                    *replay,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _correct(
    service: OncoLedger,
    request: Request[Any, Principal, Any],
    patient_id: str,
    target: UUID,
    correction: Amendment | Retraction,
    if_match: str | None,
) -> Response[Receipt]:
    """The one path of both corrections: who, from where, which retry id, on which version;
    an amendment also carries its replacement."""
    common: dict[str, Any] = {
        "reason": correction.reason,
        "actor": request.auth.name,
        "source": SOURCE,
        "event_id": correction.event_id,
        "expected_version": expected_version(if_match),
    }
    if isinstance(correction, Amendment):
        receipt = service.amend(patient_id, target, correction.replacement, **common)
    else:
        receipt = service.retract(patient_id, target, **common)
    return _receipt(receipt)


class EventController(Controller):
    path = "/api/v1/patients/{patient_id:str}/events"
    tags = ("events",)
    security = SECURITY

    @post(
        path="/",
        operation_id="appendEvent",
        summary="Record one event",
        description="The body is one event in its flat form, tagged by `type`; the server "
        "assigns `version`, `recorded_at`, `recorded_by` (the token's name), `source` and the "
        "hashes. A correction can be sent here too (`event_amended`, `event_retracted`).",
        status_code=201,
        guards=[requires("write")],
        responses=_APPEND_ERRORS,
        response_headers=replay_headers(),
        opt={TYPED_BODY: event_from_bytes},
        middleware=[AppendPath],
    )
    async def append(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        data: JSONBody[SkipValidation[EventRequest]],
        if_match: IfMatch = None,
    ) -> Response[Receipt]:
        # On the event loop: the ledger runs the append there but for its commit (and whatever
        # must read the store), which it awaits from threads of its own.
        (receipt,) = await service.append_async(
            patient_id,
            [data],
            actor=request.auth.name,
            source=SOURCE,
            expected_version=expected_version(if_match),
        )
        return _receipt(receipt)

    @post(
        path="/batch",
        operation_id="appendEvents",
        summary="Record several events atomically",
        description="All the events are stored in one transaction, in the order given, or none "
        "is: the first refusal is reported and nothing is stored.",
        status_code=201,
        sync_to_thread=True,
        guards=[requires("write")],
        responses=_APPEND_ERRORS,
        response_headers=replay_headers(),
    )
    def append_batch(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        data: JSONBody[SkipValidation[EventBatchCreate]],
        if_match: IfMatch = None,
    ) -> Response[Receipts]:
        batch = decode(data, EventBatch)
        receipts = service.append(
            patient_id,
            batch.events,
            actor=request.auth.name,
            source=SOURCE,
            expected_version=expected_version(if_match),
        )
        return Response(
            Receipts(receipts=[Receipt.of(r) for r in receipts]),
            status_code=201,
            headers=replay_header(receipts),
        )

    @get(
        path="/",
        operation_id="getHistory",
        summary="The patient's events in stream order",
        description="Every event with its envelope, as known at `as_of` or up to `upto`.",
        sync_to_thread=True,
        guards=[requires("read")],
        response_headers=read_headers(),
        responses={
            304: ResponseSpec(None, description="Unchanged since the ETag sent"),
            **error_responses(400, 401, 403, 404),
        },
    )
    def history(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[PatientHistory]:
        def produce() -> PatientHistory:
            events = service.history(patient_id, as_of=utc(as_of), upto=upto)
            return PatientHistory(patient_id=patient_id, events=events)

        return patient_read(service, request, patient_id, "history", if_none_match, produce)

    @post(
        path="/{event_id:str}/amendments",
        operation_id="amendEvent",
        summary="Amend an event",
        description="`replacement` is the complete corrected body, of the target's type. The "
        "original stays in the ledger, marked amended; projections count the replacement.",
        status_code=201,
        sync_to_thread=True,
        guards=[requires("write")],
        responses=_APPEND_ERRORS,
        response_headers=replay_headers(),
    )
    def amend(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        event_id: EventIdPath,
        data: JSONBody[SkipValidation[AmendmentCreate]],
        if_match: IfMatch = None,
    ) -> Response[Receipt]:
        return _correct(service, request, patient_id, event_id, decode(data, Amendment), if_match)

    @post(
        path="/{event_id:str}/retractions",
        operation_id="retractEvent",
        summary="Retract an event entered in error",
        description="The event stays in the ledger, marked retracted; projections leave it out.",
        status_code=201,
        sync_to_thread=True,
        guards=[requires("write")],
        responses=_APPEND_ERRORS,
        response_headers=replay_headers(),
    )
    def retract(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        event_id: EventIdPath,
        data: JSONBody[SkipValidation[Retraction]],
        if_match: IfMatch = None,
    ) -> Response[Receipt]:
        return _correct(service, request, patient_id, event_id, decode(data, Retraction), if_match)
