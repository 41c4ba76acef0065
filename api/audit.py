"""The auditor's reads (SPEC §4 audit, §6, §8): change audit, access log, patient export.

Auditor and admin tokens only. Each read is itself recorded in the access log once it has
succeeded: the audit and the export here, the access log by the service layer as it answers
(so an auditor's look at the access log shows in the next one).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter
from msgspec import Meta, Struct

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import MAX_BIGINT, PATIENT_ID_PATTERN, PatientIdPath
from api.reads import client_address, log_read
from domain import events as ev
from projections.audit import MAX_LIMIT as AUDIT_MAX_LIMIT
from projections.audit import AuditPage
from projections.root import ACCESS_MAX_LIMIT, AccessPage, OncoLedger, Principal

# The event tags as one Literal, built from the registry (a type checker sees a plain `str`).
if TYPE_CHECKING:
    EventType = str
else:
    EventType = Literal[tuple(ev.EVENT_TYPES)]

# No stored actor holds NUL (PostgreSQL text cannot): refused here rather than by the driver.
Actor = Annotated[
    str | None,
    QueryParameter(
        min_length=1, max_length=200, pattern=r"^[^\x00]*$", description="Only those by this actor"
    ),
]
Since = Annotated[
    datetime | None,
    QueryParameter(description="At or after this instant (RFC 3339; without an offset, UTC)"),
]
Until = Annotated[
    datetime | None,
    QueryParameter(description="At or before this instant (RFC 3339; without an offset, UTC)"),
]
EventTypes = Annotated[
    list[EventType] | None,
    QueryParameter(description="Only events of these types (repeatable)"),
]
Corrections = Annotated[
    bool, QueryParameter(description="Only corrections: `event_amended` and `event_retracted`")
]
AuditAfter = Annotated[
    int | None,
    QueryParameter(
        ge=0, le=MAX_BIGINT, description="`next_cursor` of the previous page (a position)"
    ),
]
AuditLimit = Annotated[
    int, QueryParameter(ge=1, le=AUDIT_MAX_LIMIT, description="Entries per page")
]
AccessPatient = Annotated[
    str | None,
    QueryParameter(pattern=PATIENT_ID_PATTERN, description="Only reads of this patient"),
]
AccessAfter = Annotated[
    int | None,
    QueryParameter(ge=0, le=MAX_BIGINT, description="`next_cursor` of the previous page (a seq)"),
]
AccessLimit = Annotated[
    int, QueryParameter(ge=1, le=ACCESS_MAX_LIMIT, description="Entries per page")
]
_AUDIT_DESCRIPTION = (
    "Who recorded what, when, through which channel; for corrections the event corrected and "
    "why. In recording order, paged by position: pass `next_cursor` as `after` for the next "
    "page (null: last page). Filters combine with AND. This read is recorded in the access log."
)


class ExportHead(Struct, frozen=True, kw_only=True):
    version: int
    hash: str


class ExportDocument(Struct, frozen=True, kw_only=True):
    """One patient's stream, self-contained: `oncoledger verify --file` checks it offline.

    Documents the export route; the document itself is sent as the domain builds it."""

    format: str
    patient_id: str
    exported_at: str
    events: Annotated[
        list[dict[str, Any]],
        Meta(description="Every stored event as stored: flat JSON with its envelope and hashes"),
    ]
    head: ExportHead
    chain_digest: Annotated[
        str, Meta(description="SHA-256 of `<patient_id> <version> <head hash>\\n`")
    ]


def audit_query(
    actor: Actor = None,
    type: EventTypes = None,
    since: Since = None,
    until: Until = None,
    corrections: Corrections = False,
    after: AuditAfter = None,
    limit: AuditLimit = 100,
) -> dict[str, Any]:
    """The audit trail's query parameters, one dependency for both audit routes."""
    return {
        "actor": actor,
        "type": type,
        "since": since,
        "until": until,
        "corrections": corrections,
        "after": after,
        "limit": limit,
    }


class AuditController(Controller):
    path = "/api/v1"
    tags = ("audit",)
    security = SECURITY
    guards = [requires("audit")]
    dependencies = {"selection": Provide(audit_query, sync_to_thread=False)}

    @get(
        path="/audit",
        operation_id="listAudit",
        summary="Every stored event across all patients, in recording order",
        description=_AUDIT_DESCRIPTION,
        sync_to_thread=True,
        responses=error_responses(400, 401, 403),
    )
    def ledger_audit(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        selection: NamedDependency[dict[str, Any]],
    ) -> AuditPage:
        page = service.audit(**selection)
        log_read(service, request, "audit")
        return page

    @get(
        path="/patients/{patient_id:str}/audit",
        operation_id="getPatientAudit",
        summary="Every stored event of one patient, in recording order",
        description=_AUDIT_DESCRIPTION,
        sync_to_thread=True,
        responses=error_responses(400, 401, 403, 404),
    )
    def patient_audit(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        selection: NamedDependency[dict[str, Any]],
    ) -> AuditPage:
        page = service.audit(patient_id, **selection)
        log_read(service, request, "audit", patient_id)
        return page

    @get(
        path="/access-log",
        operation_id="listAccessLog",
        summary="Who read which patient's clinical data, when, through which channel",
        description="Entries of the hash-chained access log in order, paged by `seq`: pass "
        "`next_cursor` as `after` for the next page (null: last page). This read is itself "
        "recorded, and shows in the next one.",
        sync_to_thread=True,
        responses=error_responses(400, 401, 403),
    )
    def access_log(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: AccessPatient = None,
        actor: Actor = None,
        since: Since = None,
        until: Until = None,
        after: AccessAfter = None,
        limit: AccessLimit = 100,
    ) -> AccessPage:
        return service.access_entries(
            request.auth.name,
            channel="api",
            address=client_address(request),
            patient_id=patient_id,
            actor=actor,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )

    @get(
        path="/patients/{patient_id:str}/export",
        operation_id="exportPatient",
        summary="The patient's stream as one document that verifies offline",
        description="Every stored event as stored, the stream head and `chain_digest`: "
        "`oncoledger verify --file` recomputes every hash with no database. A stream whose "
        "stored chain is broken is not exported (422). This read is recorded in the access log.",
        sync_to_thread=True,
        responses={
            200: ResponseSpec(
                ExportDocument, description="The export document", generate_examples=False
            ),
            **error_responses(400, 401, 403, 404, 422),
        },
    )
    def export(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
    ) -> Response[dict[str, Any]]:
        # Sent as the domain built it: a typed copy could drop a field and break the chain.
        document = service.export(patient_id)
        log_read(service, request, "export", patient_id)
        return Response(document, headers={"Cache-Control": "private, no-cache"})
