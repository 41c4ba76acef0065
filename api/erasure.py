"""`POST /api/v1/patients/{id}/erasure` (admin only): crypto-shred one patient (issue 12)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, SkipValidation
from msgspec import Meta, Struct

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import PatientIdPath
from api.schemas import decode
from projections.root import Erasure, OncoLedger, Principal


class ErasureRequest(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why the patient is erased (e.g. the legal basis): kept in the trail."""

    reason: Annotated[str, Meta(min_length=1, max_length=2000)]


class ErasureRecord(Struct, frozen=True, kw_only=True):
    """One erasure: who, when, why (no clinical content)."""

    patient_id: str
    erased_at: str
    erased_by: str
    reason: str

    @classmethod
    def of(cls, erasure: Erasure) -> ErasureRecord:
        return cls(
            patient_id=erasure.patient_id,
            erased_at=erasure.erased_at,
            erased_by=erasure.erased_by,
            reason=erasure.reason,
        )


class ErasureController(Controller):
    path = "/api/v1"
    tags = ("erasure",)
    security = SECURITY

    @post(
        path="/patients/{patient_id:str}/erasure",
        operation_id="erasePatient",
        summary="Erase a patient: destroy its data key (crypto-shredding)",
        description="Its events can never be decrypted again; the hash chain stays verifiable "
        "from the stored hashes. Later clinical reads answer 410, writes are refused. "
        "Idempotent: 201 the first time, 200 with the first erasure after.",
        sync_to_thread=True,
        guards=[requires("erase")],
        responses=error_responses(400, 401, 403, 404),
    )
    def erase(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        data: JSONBody[SkipValidation[ErasureRequest]],
    ) -> Response[ErasureRecord]:
        body = decode(data, ErasureRequest)
        erasure = service.erase(
            patient_id, actor=request.auth.name, reason=body.reason, channel="api"
        )
        record = ErasureRecord.of(erasure)
        return Response(record, status_code=201 if erasure.created else 200)

    @get(
        path="/erasures",
        operation_id="listErasures",
        summary="Every erasure: patient, when, by whom, why",
        sync_to_thread=True,
        guards=[requires("audit")],
        responses=error_responses(401, 403),
    )
    def erasures(self, service: NamedDependency[OncoLedger]) -> list[ErasureRecord]:
        return [ErasureRecord.of(e) for e in service.erasures()]
