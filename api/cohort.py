"""`/api/v1/cohort/survival`: overall survival by group over the cohort index's filters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from api.auth import SECURITY, requires
from api.cohort_filters import DEPENDENCIES, CohortFilters
from api.errors import error_responses
from api.params import AsOf, Rule, utc
from api.reads import log_read
from projections.cohort_subjects import Grouping
from projections.figure import MEDIA_TYPES
from projections.root import OncoLedger, Principal
from projections.survival_report import SurvivalReport

Landmark = Annotated[
    float | None,
    QueryParameter(
        ge=0,
        le=600,
        description="Landmark in months after diagnosis: group by what was known then, keep "
        "patients alive and followed beyond it, start the clock there",
    ),
]


def survival_query(
    by: Annotated[Grouping, QueryParameter(description="Group patients by this")],
    filters: CohortFilters,
    rule: Rule = None,
    as_of: AsOf = None,
    landmark: Landmark = None,
) -> dict[str, Any]:
    """What both survival routes take, as `OncoLedger.cohort_survival`'s arguments."""
    return {
        "by": by,
        "filters": filters,
        "rule": rule,
        "as_of": utc(as_of),
        "landmark_months": landmark,
    }


class CohortController(Controller):
    path = "/api/v1/cohort"
    tags = ("cohort",)
    security = SECURITY
    dependencies = {**DEPENDENCIES, "selection": Provide(survival_query, sync_to_thread=False)}

    @get(
        path="/survival",
        operation_id="getCohortSurvival",
        summary="Overall survival by group: Kaplan-Meier, log-rank, stage-adjusted Cox",
        description="Patients selected by the cohort index's filters, grouped by `by`: per "
        "group n, deaths, censored, median with 95 % CI, survival at 12/24/36 months with CI "
        "and the Kaplan-Meier step function; log-rank across groups and pairwise (Holm); a "
        "Cox model of survival on the CTC group adjusted for stage at diagnosis with a "
        "proportional-hazards check. `definitions` states time zero, censoring, exclusions "
        "and methods. A selection with no patient answers 200 with `empty: true`. Current "
        "data read the stored views; `as_of`, `landmark` and another `rule` recompute "
        "every patient's groups and take longer.",
        sync_to_thread=True,
        guards=[requires("read")],
        responses=error_responses(400, 401, 403),
    )
    def survival(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        selection: NamedDependency[dict[str, Any]],
        cox: Annotated[
            bool, QueryParameter(description="Fit the stage-adjusted Cox model (slower)")
        ] = True,
    ) -> SurvivalReport:
        analysis = service.cohort_survival(**selection, with_cox=cox)
        log_read(service, request, "cohort-survival")
        return analysis.report

    @get(
        path="/survival/plot",
        operation_id="getCohortSurvivalPlot",
        summary="The Kaplan-Meier figure of the same analysis (SVG, PDF or PNG)",
        description="Curves per group with 95 % bands and censor ticks, numbers at risk under "
        "the x-axis, the log-rank p in the corner. Same query as `/survival`; `format` picks "
        "SVG (default, text kept as text), PDF or PNG.",
        sync_to_thread=True,
        guards=[requires("read")],
        responses={
            200: ResponseSpec(None, description="The figure", media_type="image/svg+xml"),
            **error_responses(400, 401, 403),
        },
    )
    def survival_plot(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        selection: NamedDependency[dict[str, Any]],
        format: Annotated[
            Literal["svg", "pdf", "png"], QueryParameter(description="Image format")
        ] = "svg",
    ) -> Response[bytes]:
        from projections.survival_plot import plot_bytes

        analysis = service.cohort_survival(**selection, with_cox=False)
        log_read(service, request, "cohort-survival-plot")
        return Response(plot_bytes(analysis, format), media_type=MEDIA_TYPES[format])
