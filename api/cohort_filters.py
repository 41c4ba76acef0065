"""The cohort index's filters as query parameters, one dependency for every route that selects a
cohort (`GET /api/v1/patients`, `GET /api/v1/cohort/survival[/plot]`).

The parameters are generated from the one list of filters (`projections.cohort_filters`) into
the signature of `cohort_filters`, a Litestar dependency: Litestar reads that signature for
validation and the OpenAPI document, and the query check (`api/query_checks.py`) reads it to
know which names a route takes. A route declares `filters: CohortFilters` and gets them as the
service layer's `filters`.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Annotated, Any

from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.params import utc
from projections import cohort_filters as vocabulary

# `status` is an older spelling of `survival_status`, still accepted.
_ALIASES = {"status": "survival_status"}
_annotated: Any = Annotated  # the parameters' types are built at run time
_list: Any = list


def _any_of(filter: vocabulary.AnyOf, name: str, what: str) -> inspect.Parameter:
    description = f"Only patients whose {what} is one of these (repeatable)"
    kind = _annotated[_list[filter.value] | None, QueryParameter(description=description)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)


def _parameters() -> list[inspect.Parameter]:
    parameters = [_any_of(f, f.name, f.what) for f in vocabulary.EQUALITY]
    for alias, name in _ALIASES.items():
        same = next(f for f in vocabulary.EQUALITY if f.name == name)
        parameters.append(_any_of(same, alias, f"{same.what} (same as {name})"))
    for between in vocabulary.RANGES:
        for name, bound in between.bounds:
            description = f"Only patients whose {between.what} is {bound} this"
            kind = _annotated[
                between.value | None,
                QueryParameter(ge=between.ge, le=between.le, description=description),
            ]
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind
                )
            )
    synthetic = Annotated[
        bool | None,
        QueryParameter(
            description="true: only synthetic patients (SYN-/DEMO- ids); false: only real "
            "ones; absent: both"
        ),
    ]
    parameters.append(
        inspect.Parameter(
            vocabulary.SYNTHETIC,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=synthetic,
        )
    )
    return parameters


def cohort_filters(**given: Any) -> dict[str, Any]:
    """The filters given, as the service layer takes them: aliases merged into their filter,
    timestamps read as UTC, absent ones left out."""
    for alias, name in _ALIASES.items():
        extra = given.pop(alias, None)
        if extra:
            given[name] = (given.get(name) or []) + extra
    for name, value in given.items():
        if isinstance(value, datetime):
            given[name] = utc(value)
    return {name: value for name, value in given.items() if value is not None}


_PARAMETERS = _parameters()
cohort_filters.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    _PARAMETERS, return_annotation=dict[str, Any]
)
cohort_filters.__annotations__ = {
    **{p.name: p.annotation for p in _PARAMETERS},
    "return": dict[str, Any],
}

# What a route declares to receive them, and the provider it registers under that name.
CohortFilters = NamedDependency[dict[str, Any]]
DEPENDENCIES = {"filters": Provide(cohort_filters, sync_to_thread=False)}
