"""`GET /api/v1/patients/{id}/fhir`: the patient's record as a FHIR R4 / mCODE STU4 Bundle."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import AsOf, IfNoneMatch, PatientIdPath, Upto, utc
from api.reads import patient_read, read_headers
from projections.fhir import export_fhir
from projections.root import OncoLedger, Principal

FHIR_JSON = "application/fhir+json"


class FhirController(Controller):
    path = "/api/v1/patients/{patient_id:str}"
    tags = ("interchange",)
    security = SECURITY
    guards = [requires("read")]
    response_headers = read_headers()

    @get(
        path="/fhir",
        operation_id="getFhirBundle",
        summary="The patient's record as a FHIR R4 (4.0.1) Bundle of type collection, mapped "
        "to mCODE STU4 profiles",
        description="Amended events appear as their current version (`meta.versionId`), "
        "retracted ones as `entered-in-error`, each correction with a `Provenance`; every "
        "resource's `meta.source` is `urn:uuid:<ledger event id>`. `as_of` / `upto` give the "
        "record as known then. Sent as `application/fhir+json`.",
        sync_to_thread=True,
        media_type=FHIR_JSON,
        responses={
            200: ResponseSpec(dict[str, Any], description="A FHIR Bundle", media_type=FHIR_JSON),
            304: ResponseSpec(None, description="Unchanged since the ETag sent in If-None-Match"),
            **error_responses(400, 401, 403, 404),
        },
    )
    def fhir_bundle(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[dict[str, Any]]:
        return patient_read(
            service,
            request,
            patient_id,
            "fhir",
            if_none_match,
            lambda: export_fhir(service, patient_id, as_of=utc(as_of), upto=upto),
            media_type=FHIR_JSON,
        )
