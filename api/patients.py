"""`/api/v1/patients`: register a patient, the cohort index, one patient's cohort row."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, QueryParameter, SkipValidation

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import MAX_BIGINT, IfNoneMatch, PatientIdPath, etag, not_modified, utc
from api.reads import log_read, read_headers, unchanged
from api.schemas import Patient, PatientCreate, Receipt, decode
from domain import events as ev
from projections.readmodels import PatientPage
from projections.root import OncoLedger
from projections.tokens import Principal

CtcTrend = Literal["decreasing", "increasing", "stable", "fluctuating", "insufficient_data"]
Concordance = Literal["concordant", "discordant", "undetermined"]
SurvivalStatus = Literal["alive", "dead", "unknown"]
# Bounds keep every value storable (BIGINT) and finite; the columns hold nothing beyond them.
_YEARS: dict[str, float] = {"ge": 1850, "le": 2200}
_COUNTS: dict[str, float] = {"ge": 0, "le": MAX_BIGINT}
_AMOUNTS: dict[str, float] = {"ge": 0, "le": 1e12}


def _any_of(what: str) -> QueryParameter:
    return QueryParameter(description=f"Only patients whose {what} is one of these (repeatable)")


def _bound(
    what: str, bound: str, *, ge: float | None = None, le: float | None = None
) -> QueryParameter:
    return QueryParameter(ge=ge, le=le, description=f"Only patients whose {what} is {bound} this")


class PatientController(Controller):
    path = "/api/v1/patients"
    tags = ("patients",)
    security = SECURITY

    @post(
        path="/",
        operation_id="registerPatient",
        summary="Register a patient",
        description="Records the `patient_registered` event that opens the patient's stream. "
        "Sending the same `event_id` with the same body again returns the original receipt "
        "with 200 and stores nothing.",
        status_code=201,
        sync_to_thread=True,
        guards=[requires("write")],
        response_headers=[
            ResponseHeader(
                name="Location", documentation_only=True, description="The patient's URL"
            )
        ],
        responses={
            **error_responses(400, 401, 403, 409, 413, 415, 422, 507),
        },
    )
    def register(
        self,
        request: Request[Any, Principal, Any],
        ledger: NamedDependency[OncoLedger],
        data: JSONBody[SkipValidation[PatientCreate]],
    ) -> Response[Receipt]:
        body = decode(data, PatientCreate)
        receipt = ledger.register(
            body.patient_id, body.registration(), actor=request.auth.name, source="api"
        )
        return Response(
            Receipt.of(receipt),
            status_code=201,
            headers={
                "Location": f"{self.path}/{body.patient_id}",
                "Idempotent-Replay": "false" if receipt.created else "true",
            },
        )

    @get(
        path="/",
        operation_id="listPatients",
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
        ledger: NamedDependency[OncoLedger],
        sex: Annotated[list[ev.Sex] | None, _any_of("sex")] = None,
        histology: Annotated[list[ev.Histology] | None, _any_of("histology")] = None,
        primary_site: Annotated[list[str] | None, _any_of("primary site")] = None,
        stage_group: Annotated[
            list[str] | None, _any_of("current stage group (e.g. IVB, unknown)")
        ] = None,
        ctc_trend: Annotated[list[CtcTrend] | None, _any_of("CTC trend")] = None,
        concordance: Annotated[list[Concordance] | None, _any_of("CTC/stage concordance")] = None,
        survival_status: Annotated[list[SurvivalStatus] | None, _any_of("survival status")] = None,
        status: Annotated[
            list[SurvivalStatus] | None, _any_of("survival status (same as survival_status)")
        ] = None,
        birth_year_min: Annotated[int | None, _bound("birth year", "at least", **_YEARS)] = None,
        birth_year_max: Annotated[int | None, _bound("birth year", "at most", **_YEARS)] = None,
        ctc_latest_per_7_5_ml_min: Annotated[
            float | None, _bound("latest CTC per 7.5 mL", "at least", **_AMOUNTS)
        ] = None,
        ctc_latest_per_7_5_ml_max: Annotated[
            float | None, _bound("latest CTC per 7.5 mL", "at most", **_AMOUNTS)
        ] = None,
        os_months_min: Annotated[
            float | None, _bound("overall survival in months", "at least", **_AMOUNTS)
        ] = (None),
        os_months_max: Annotated[
            float | None, _bound("overall survival in months", "at most", **_AMOUNTS)
        ] = (None),
        events_min: Annotated[int | None, _bound("number of events", "at least", **_COUNTS)] = None,
        events_max: Annotated[int | None, _bound("number of events", "at most", **_COUNTS)] = None,
        last_recorded_at_min: Annotated[
            datetime | None, _bound("last recording time", "at or after")
        ] = None,
        last_recorded_at_max: Annotated[
            datetime | None, _bound("last recording time", "at or before")
        ] = None,
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
        filters: dict[str, Any] = {
            "sex": sex,
            "histology": histology,
            "primary_site": primary_site,
            "stage_group": stage_group,
            "ctc_trend": ctc_trend,
            "concordance": concordance,
            "survival_status": (survival_status or []) + (status or []) or None,
            "birth_year_min": birth_year_min,
            "birth_year_max": birth_year_max,
            "ctc_latest_per_7_5_ml_min": ctc_latest_per_7_5_ml_min,
            "ctc_latest_per_7_5_ml_max": ctc_latest_per_7_5_ml_max,
            "os_months_min": os_months_min,
            "os_months_max": os_months_max,
            "events_min": events_min,
            "events_max": events_max,
            "last_recorded_at_min": utc(last_recorded_at_min),
            "last_recorded_at_max": utc(last_recorded_at_max),
        }
        page = ledger.patients(
            filters={k: v for k, v in filters.items() if v is not None},
            sort=sort,
            limit=limit,
            cursor=cursor,
            count=count,
        )
        log_read(ledger, request, "patients")
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
        ledger: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        if_none_match: IfNoneMatch = None,
    ) -> Response[Patient]:
        row = ledger.patient(patient_id)
        headers = {"ETag": etag(row.events), "Cache-Control": "private, no-cache"}
        log_read(ledger, request, "patient", patient_id)
        if not_modified(if_none_match, row.events):
            return unchanged(headers)
        fields = {name: getattr(row, name) for name in row.__struct_fields__}
        return Response(Patient(**fields, version=row.events), headers=headers)
