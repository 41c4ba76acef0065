"""`/api/v1/patients/{id}/timeline|stage|ctc|response|survival`: the patient's read models.

Current reads are the stored view's JSON bytes, sent as they are; with `as_of`, `upto` or a CTC
rule other than the stored one, the view is derived from the stream as it was then. The five
handlers come from one definition, `_view_route`, and one table, `VIEWS`.
"""

# No `from __future__ import annotations`: the handlers' annotations name the view's type from
# the enclosing call, so they are evaluated where the handler is defined.

import inspect
from typing import Any

from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
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

# (view, its type, summary, takes a CTC `rule`)
VIEWS: tuple[tuple[str, type[Any], str, bool], ...] = (
    ("timeline", TimelineView, "Events in clinical order with their correction status", False),
    (
        "stage",
        StageView,
        "Clinical stage (TNM, AJCC 8 stage group): current, at diagnosis, history, trend",
        False,
    ),
    ("ctc", CtcView, "CTC draws per 7.5 mL, trend, clearance and concordance with the stage", True),
    ("response", ResponseView, "Target lesions and RECIST 1.1 style response categories", False),
    (
        "survival",
        SurvivalView,
        "Overall survival from diagnosis: status, days, months, censoring",
        False,
    ),
)


def _view_route(view: str, model: type[Any], summary: str, with_rule: bool) -> HTTPRouteHandler:
    """The GET handler of one read model. Only the CTC view declares `rule` (the others leave it
    out of their signature: an undeclared query parameter is refused, 400)."""

    def read(
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        upto: Upto = None,
        rule: Rule = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[model]:  # type: ignore[valid-type]
        query: dict[str, Any] = {"as_of": utc(as_of), "upto": upto}
        if with_rule:
            query["rule"] = rule
        return patient_read(
            service,
            request,
            patient_id,
            view,
            if_none_match,
            lambda: service.read_json(patient_id, view, **query),
        )

    if not with_rule:
        signature = inspect.signature(read)
        read.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for p in signature.parameters.values() if p.name != "rule"]
        )
    read.__name__ = read.__qualname__ = f"get_{view}"
    return get(
        path=f"/{view}",
        name=f"view-{view}",
        operation_id=f"get{view.capitalize()}",
        summary=summary,
        sync_to_thread=True,
        responses=_RESPONSES,
    )(read)


ViewController = Router(
    path="/api/v1/patients/{patient_id:str}",
    tags=["projections"],
    security=SECURITY,
    guards=[requires("read")],
    response_headers=read_headers(),
    route_handlers=[_view_route(*spec) for spec in VIEWS],
)
