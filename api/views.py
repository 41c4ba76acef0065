"""`/api/v1/patients/{id}/timeline|stage|ctc|response|survival`: the patient's read models.

Current reads are the stored view's JSON bytes, sent as they are; with `as_of`, `upto` or a CTC
rule other than the stored one, the view is derived from the stream as it was then.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import AsOf, IfNoneMatch, PatientIdPath, Rule, Upto, utc
from api.reads import patient_read, read_headers
from projections.ctc import CtcView
from projections.response import ResponseView
from projections.root import OncoLedger, Principal
from projections.stage import StageView
from projections.survival import SurvivalView
from projections.timeline import TimelineView

_RESPONSES = {
    304: ResponseSpec(None, description="Unchanged since the ETag sent in If-None-Match"),
    **error_responses(400, 401, 403, 404),
}


def _view(
    ledger: OncoLedger,
    request: Request[Any, Principal, Any],
    patient_id: str,
    view: str,
    if_none_match: str | None,
    **query: Any,
) -> Response[Any]:
    if query.get("as_of") is not None:
        query["as_of"] = utc(query["as_of"])
    return patient_read(
        ledger,
        request,
        patient_id,
        view,
        if_none_match,
        lambda: ledger.read_json(patient_id, view, **query),
    )


class ViewController(Controller):
    path = "/api/v1/patients/{patient_id:str}"
    tags = ("projections",)
    security = SECURITY
    guards = [requires("read")]
    response_headers = read_headers()

    @get(
        path="/timeline",
        operation_id="getTimeline",
        summary="Events in clinical order with their correction status",
        sync_to_thread=True,
        responses=_RESPONSES,
    )
    def timeline(
        self,
        request: Request[Any, Principal, Any],
        ledger: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[TimelineView]:
        return _view(ledger, request, patient_id, "timeline", if_none_match, as_of=as_of, upto=upto)

    @get(
        path="/stage",
        operation_id="getStage",
        summary="Clinical stage (TNM, AJCC 8 stage group): current, at diagnosis, history, trend",
        sync_to_thread=True,
        responses=_RESPONSES,
    )
    def stage(
        self,
        request: Request[Any, Principal, Any],
        ledger: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[StageView]:
        return _view(ledger, request, patient_id, "stage", if_none_match, as_of=as_of, upto=upto)

    @get(
        path="/ctc",
        operation_id="getCtc",
        summary="CTC draws per 7.5 mL, trend, clearance and concordance with the stage",
        sync_to_thread=True,
        responses=_RESPONSES,
    )
    def ctc(
        self,
        request: Request[Any, Principal, Any],
        ledger: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        rule: Rule = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[CtcView]:
        return _view(
            ledger, request, patient_id, "ctc", if_none_match, as_of=as_of, upto=upto, rule=rule
        )

    @get(
        path="/response",
        operation_id="getResponse",
        summary="Target lesions and RECIST 1.1 style response categories",
        sync_to_thread=True,
        responses=_RESPONSES,
    )
    def response(
        self,
        request: Request[Any, Principal, Any],
        ledger: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[ResponseView]:
        return _view(ledger, request, patient_id, "response", if_none_match, as_of=as_of, upto=upto)

    @get(
        path="/survival",
        operation_id="getSurvival",
        summary="Overall survival from diagnosis: status, days, months, censoring",
        sync_to_thread=True,
        responses=_RESPONSES,
    )
    def survival(
        self,
        request: Request[Any, Principal, Any],
        ledger: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[SurvivalView]:
        return _view(ledger, request, patient_id, "survival", if_none_match, as_of=as_of, upto=upto)
