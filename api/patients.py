"""`/api/v1/patients`: register a patient, the cohort index, one patient's cohort row."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, QueryParameter, SkipValidation

from api.auth import SECURITY, requires
from api.cohort_filters import DEPENDENCIES, CohortFilters
from api.errors import error_responses
from api.params import IfNoneMatch, PatientIdPath, etag, not_modified
from api.reads import log_read, read_headers, replay_header, replay_headers, unchanged
from api.schemas import Patient, PatientCreate, Receipt, decode
from projections.readmodels import PatientPage
from projections.root import OncoLedger, Principal


class PatientController(Controller):
    path = "/api/v1/patients"
    tags = ("patients",)
    security = SECURITY

    @post(
        path="/",
        operation_id="registerPatient",
        summary="Register a patient",
        description="Records the `patient_registered` event that opens the patient's stream. "
        "Sending the same `event_id` with the same body again stores nothing and returns the "
        "original receipt, again with 201 and `Idempotent-Replay: true`.",
        status_code=201,
        sync_to_thread=True,
        guards=[requires("write")],
        response_headers=[
            ResponseHeader(
                name="Location",
                value="/api/v1/patients/P1",
                documentation_only=True,
                description="The patient's URL",
            ),
            *replay_headers(),
        ],
        responses={
            **error_responses(400, 401, 403, 409, 413, 415, 422, 507),
        },
    )
    def register(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        data: JSONBody[SkipValidation[PatientCreate]],
    ) -> Response[Receipt]:
        body = decode(data, PatientCreate)
        receipt = service.register(
            body.patient_id, body.registration(), actor=request.auth.name, source="api"
        )
        return Response(
            Receipt.of(receipt),
            status_code=201,
            headers={
                "Location": f"{self.path}/{body.patient_id}",
                **replay_header([receipt]),
            },
        )

    @get(
        path="/",
        operation_id="listPatients",
        dependencies=DEPENDENCIES,
        summary="The cohort index",
        description="One row per patient, filtered (filters combine with AND; a repeated "
        "equality filter matches any of its values), sorted and paged: pass `next_cursor` as "
        "`cursor` for the next page.",
        sync_to_thread=True,
        guards=[requires("read")],
        responses=error_responses(400, 401, 403),
    )
    def list_patients(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        filters: CohortFilters,
        sort: Annotated[
            str,
            QueryParameter(
                description="A column of the row (patient_id, stage_group, os_months, "
                "ctc_latest_per_7_5_ml, last_recorded_at, ...); prefix `-` for descending",
            ),
        ] = "patient_id",
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Rows per page")] = 50,
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the previous page")
        ] = None,
        count: Annotated[
            bool,
            QueryParameter(description="Also count every matching row into `total` (slower)"),
        ] = False,
    ) -> PatientPage:
        page = service.patients(
            filters=filters,
            sort=sort,
            limit=limit,
            cursor=cursor,
            count=count,
        )
        log_read(service, request, "patients")
        return page

    @get(
        path="/{patient_id:str}",
        operation_id="getPatient",
        summary="One patient's cohort row and stream version",
        sync_to_thread=True,
        guards=[requires("read")],
        response_headers=read_headers(),
        responses={
            304: ResponseSpec(None, description="Unchanged since the ETag sent in If-None-Match"),
            **error_responses(400, 401, 403, 404),
        },
    )
    def get_patient(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        if_none_match: IfNoneMatch = None,
    ) -> Response[Patient]:
        row = service.patient(patient_id)
        headers = {"ETag": etag(row.events), "Cache-Control": "private, no-cache"}
        log_read(service, request, "patient", patient_id)
        if not_modified(if_none_match, row.events):
            return unchanged(headers)
        fields = {name: getattr(row, name) for name in row.__struct_fields__}
        return Response(Patient(**fields, version=row.events), headers=headers)
