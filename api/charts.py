"""`/api/v1/patients/{id}/chart.svg|png|pdf`: the CTC and stage figure (case report Figure 4).

A clinical read like the others: a reader token or above, an access-log entry, the stream
version as ETag (the same version, rule and `as_of` always draw the same bytes).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import AsOf, IfNoneMatch, PatientIdPath, Rule, utc
from api.reads import patient_read, read_headers
from projections.figure import FORMATS, MEDIA_TYPES, Format
from projections.root import OncoLedger, Principal

_DESCRIPTION = (
    "CTC counts per 7.5 mL (raw counts labelled, the positivity threshold of `rule` drawn), "
    "the AJCC 8 stage group in force with the TNM of each assessment, treatments, declined "
    "therapy, imaging and death or last follow-up on one time axis, captioned with the "
    "CTC/stage concordance sentence. One journal column wide."
)


def chart_response(
    service: OncoLedger,
    request: Request[Any, Principal, Any],
    patient_id: str,
    fmt: Format,
    if_none_match: str | None,
    *,
    as_of: Any = None,
    rule: str | None = None,
) -> Response[Any]:
    """The figure of one patient as a conditional, access-logged read."""
    return patient_read(
        service,
        request,
        patient_id,
        "chart",
        if_none_match,
        lambda: service.chart(patient_id, fmt, as_of=utc(as_of), rule=rule),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'inline; filename="{patient_id}-ctc-stage.{fmt}"'},
    )


def _responses(fmt: Format) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            bytes,
            description=f"The figure as {fmt.upper()}",
            media_type=MEDIA_TYPES[fmt],
            generate_examples=False,
        ),
        304: ResponseSpec(None, description="Unchanged since the ETag sent in If-None-Match"),
        **error_responses(400, 401, 403, 404),
    }


def _chart_route(fmt: Format) -> HTTPRouteHandler:
    summary = {
        "svg": "The CTC and stage figure as SVG (text kept as text)",
        "png": "The CTC and stage figure as PNG (300 dpi)",
        "pdf": "The CTC and stage figure as PDF (fonts embedded)",
    }[fmt]

    @get(
        path=f"/api/v1/patients/{{patient_id:str}}/chart.{fmt}",
        name=f"chart-{fmt}",
        operation_id=f"getChart{fmt.title()}",
        summary=summary,
        description=_DESCRIPTION,
        tags=["projections"],
        security=SECURITY,
        guards=[requires("read")],
        response_headers=read_headers(),
        sync_to_thread=True,
        responses=_responses(fmt),
    )
    def chart(
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
        as_of: AsOf = None,
        rule: Rule = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[bytes]:
        return chart_response(
            service, request, patient_id, fmt, if_none_match, as_of=as_of, rule=rule
        )

    return chart


CHART_ROUTES: list[HTTPRouteHandler] = [_chart_route(fmt) for fmt in FORMATS]
