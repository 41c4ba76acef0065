"""Tamper evidence over HTTP (SPEC §6): verify a patient's hash chain, the ledger digest."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import AsOf, PatientIdPath, utc
from api.schemas import Verification
from projections.audit import LedgerDigest
from projections.root import OncoLedger


class IntegrityController(Controller):
    path = "/api/v1"
    tags = ("integrity",)
    security = SECURITY
    guards = [requires("audit")]

    @get(
        path="/patients/{patient_id:str}/verify",
        operation_id="verifyPatient",
        summary="Recompute the patient's hash chain from the stored bytes",
        description="`ok` is false when the chain is broken; `breaks` names the first "
        "(patient_id, version) that does not check out and why.",
        sync_to_thread=True,
        responses=error_responses(400, 401, 403, 404),
    )
    def verify(
        self, service: NamedDependency[OncoLedger], patient_id: PatientIdPath
    ) -> Verification:
        return Verification.of(service.verify(patient_id))

    @get(
        path="/ledger/digest",
        operation_id="getDigest",
        summary="One SHA-256 over every stream head: keep it elsewhere to prove nothing changed",
        sync_to_thread=True,
        responses=error_responses(400, 401, 403),
    )
    def digest(self, service: NamedDependency[OncoLedger], as_of: AsOf = None) -> LedgerDigest:
        return service.digest(as_of=utc(as_of))
