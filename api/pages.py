"""The browser pages: the cohort (`GET /patients`) and one patient (`GET /patients/{id}`).

Both need a signed-in session (`api.web_auth`); each view is an access-log entry on the `web`
channel. The patient page shows the summary, the CTC and stage figure inline (SVG, its text
searchable), a swim-lane timeline of every event with its correction status, and the tables
of CTC draws, stage assessments and lesion measurements. `rule` and `as_of` work as in the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from api.html import PAGE_EXCEPTION_HANDLERS, page
from api.params import PatientIdPath
from api.web_auth import log_page, signed_in
from domain.errors import ValidationFailed
from domain.instants import assume_utc
from projections import cohort_filters
from projections.ctc import RULES, check_rule
from projections.figure import MEDIA_TYPES, Format, describe
from projections.root import OncoLedger
from projections.views import PATIENT_COLUMNS

PAGE_SIZE = 50
# The cohort filters the page offers, in its order; their labels and choices are the one list's
# (`projections.cohort_filters`).
_EQUALITY = {f.name: f for f in cohort_filters.EQUALITY}
FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    name: (_EQUALITY[name].label, _EQUALITY[name].choices)
    for name in ("stage_group", "ctc_trend", "concordance", "survival_status", "sex", "histology")
}
# Range filters: (column, label, number type); each gives COLUMN_min and COLUMN_max.
_RANGES = {f.column: f for f in cohort_filters.RANGES}
RANGES: tuple[tuple[str, str, type[int] | type[float]], ...] = tuple(
    (column, _RANGES[column].label, cast(type[int] | type[float], _RANGES[column].value))
    for column in ("birth_year", "ctc_latest_per_7_5_ml", "os_months")
)
# Swim lanes of the timeline, left to right, and the event types in each.
LANES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Diagnosis", ("patient_registered", "diagnosis_confirmed", "biopsy")),
    ("Imaging", ("imaging",)),
    ("Staging", ("staging",)),
    ("Treatment", ("chemotherapy", "radiotherapy", "ablation", "surgery", "therapy_declined")),
    ("CTC", ("ctc_count",)),
    ("Follow-up", ("follow_up", "death")),
)
LANE_OF = {t: i for i, (_, types) in enumerate(LANES) for t in types}


def _one(request: Request[Any, Any, Any], name: str) -> str | None:
    values = request.query_params.getall(name, [])
    if len(values) > 1:
        raise ValidationFailed(f"`{name}` may be given once", field=name, rule="single")
    return values[0] if values and values[0] != "" else None


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            f"`as_of` {text!r} is not an ISO 8601 timestamp (e.g. 2017-01-01T00:00:00Z)",
            field="as_of",
            rule="timestamp",
        ) from None
    return assume_utc(moment)


def _rule(text: str | None) -> str | None:
    return None if text is None else check_rule(text)


class PageController(Controller):
    path = "/patients"
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get(path="/", sync_to_thread=True)
    def cohort(
        self, request: Request[Any, Any, Any], service: NamedDependency[OncoLedger]
    ) -> Response[str]:
        session = signed_in(request, service)
        chosen: dict[str, list[str]] = {}
        for name, (label, allowed) in FILTERS.items():
            values = [v for v in request.query_params.getall(name, []) if v != ""]
            for value in values:
                if value not in allowed:
                    raise ValidationFailed(
                        f"{label} {value!r} is not one of {', '.join(allowed)}",
                        field=name,
                        rule="filter",
                    )
            if values:
                chosen[name] = values
        bounds: dict[str, int | float] = {}
        for column, label, kind in RANGES:
            for end in ("min", "max"):
                name = f"{column}_{end}"
                text = _one(request, name)
                if text is None:
                    continue
                try:
                    value = kind(text)
                except ValueError:
                    raise ValidationFailed(
                        f"{label} {'from' if end == 'min' else 'to'} {text!r} is not a number",
                        field=name,
                        rule="number",
                    ) from None
                if value != value or abs(value) > 1e12:  # NaN or beyond any stored value
                    raise ValidationFailed(f"`{name}` is out of range", field=name, rule="range")
                bounds[name] = value
        sort = _one(request, "sort") or "patient_id"
        if sort.lstrip("-") not in PATIENT_COLUMNS:
            raise ValidationFailed(
                f"`sort` must be one of {', '.join(PATIENT_COLUMNS)} (prefix - for descending)",
                field="sort",
                rule="sort_column",
            )
        cursor = _one(request, "cursor")
        result = service.patients(
            filters={**chosen, **bounds}, sort=sort, limit=PAGE_SIZE, cursor=cursor, count=True
        )
        log_page(service, request, session, "patients")
        query = [(k, v) for k, values in chosen.items() for v in values]
        query += [(k, str(v)) for k, v in bounds.items()] + [("sort", sort)]
        next_url = None
        if result.next_cursor:
            next_url = "/patients?" + urlencode([*query, ("cursor", result.next_cursor)])
        return page(
            "patients.html",
            title="Patients",
            session=session,
            filters=FILTERS,
            chosen=chosen,
            ranges=RANGES,
            bounds=bounds,
            sort=sort,
            sorts=PATIENT_COLUMNS,
            page=result,
            next_url=next_url,
            first_url="/patients?" + urlencode(query) if cursor else None,
        )

    @get(path="/{patient_id:str}", sync_to_thread=True)
    def patient(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
    ) -> Response[str]:
        session = signed_in(request, service)
        as_of = _as_of(_one(request, "as_of"))
        rule = _rule(_one(request, "rule"))
        row = service.patient(patient_id)
        views: dict[str, Any] = {
            name: service.read(patient_id, name, as_of=as_of, rule=rule if name == "ctc" else None)
            for name in ("timeline", "stage", "ctc", "response", "survival")
        }
        figure = service.figure(patient_id, as_of=as_of, rule=rule)
        svg = service.draw(figure, "svg").decode()
        # Every lesion as measured at each imaging in force (the response view keeps sums).
        measurements = [
            (entry.occurred, lesion)
            for entry in views["timeline"].events
            if entry.type == "imaging" and entry.status != "retracted"
            for lesion in entry.event.get("lesions") or []
        ]
        log_page(service, request, session, "patient-page", patient_id)
        query = urlencode(
            [(k, v) for k, v in (("rule", rule), ("as_of", _one(request, "as_of"))) if v]
        )
        return page(
            "patient.html",
            title=patient_id,
            session=session,
            row=row,
            as_of=as_of,
            rule=views["ctc"].rule,
            rules=tuple(RULES),
            query=f"?{query}" if query else "",
            lanes=[name for name, _ in LANES],
            lane_of=LANE_OF,
            # matplotlib writes the SVG and escapes every label in it (tests feed it markup).
            figure_svg=svg[svg.index("<svg") :],
            figure_text=describe(figure),
            measurements=measurements,
            treated={
                lesion.lesion_id for lesion in views["response"].lesions if lesion.locally_treated
            },
            **views,
        )

    @get(path="/{patient_id:str}/chart.svg", sync_to_thread=True)
    def chart_svg(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
    ) -> Response[Any]:
        return self._chart(request, service, patient_id, "svg")

    @get(path="/{patient_id:str}/chart.png", sync_to_thread=True)
    def chart_png(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
    ) -> Response[Any]:
        return self._chart(request, service, patient_id, "png")

    @get(path="/{patient_id:str}/chart.pdf", sync_to_thread=True)
    def chart_pdf(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[OncoLedger],
        patient_id: PatientIdPath,
    ) -> Response[Any]:
        return self._chart(request, service, patient_id, "pdf")

    def _chart(
        self, request: Request[Any, Any, Any], service: OncoLedger, patient_id: str, fmt: Format
    ) -> Response[Any]:
        """The figure for download under the page's cookie (same rule and as_of as the page)."""
        session = signed_in(request, service)
        as_of = _as_of(_one(request, "as_of"))
        rule = _rule(_one(request, "rule"))
        version = service.version(patient_id)
        content = service.chart(patient_id, fmt, as_of=as_of, rule=rule)
        log_page(service, request, session, "chart", patient_id)
        return chart_download(patient_id, fmt, content, version)


def chart_download(patient_id: str, fmt: Format, content: bytes, version: int) -> Response[Any]:
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'inline; filename="{patient_id}-ctc-stage.{fmt}"',
            "Cache-Control": "no-store",
            "ETag": f'"{version}"',
        },
    )
