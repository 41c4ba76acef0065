"""Query strings are checked against what the route declares, before the handler runs.

A parameter the route does not take is refused (a mistyped filter would otherwise be ignored
and answer with the whole cohort), and an integer parameter must be written as digits (the
lenient parse would read `limit=1e3` as 1000). The declared parameters come from the signatures
of the handler and of the dependencies it takes (the cohort filters are one), the same ones
Litestar reads for the OpenAPI document, so the check cannot drift from the routes or the
document.
"""

from __future__ import annotations

import re
import typing
from functools import cache
from typing import Any

from litestar import Request
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler

from domain.errors import ValidationFailed

_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def check_query(request: Request[Any, Any, Any]) -> None:
    """Refuse unknown query parameters and integers not written as digits (400, named)."""
    scope = request.scope
    if not (scope.get("root_path", "") + scope["path"]).startswith("/api/"):
        return  # the OpenAPI pages take their own parameters
    if not scope["query_string"]:
        return  # nothing to check (most requests: every write)
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler):
        return
    declared = _query_parameters(handler, frozenset(request.path_params))
    for name in request.query_params:
        if name not in declared:
            takes = ", ".join(sorted(declared)) or "none"
            raise ValidationFailed(
                f"unknown query parameter `{name}`: this route takes {takes}",
                field=name,
                rule="unknown_parameter",
            )
        if declared[name]:
            for value in request.query_params.getall(name):
                if not _INTEGER.match(value):
                    raise ValidationFailed(
                        f"`{name}` must be a whole number written in digits, not {value!r}",
                        field=name,
                        rule="integer",
                    )


@cache
def _query_parameters(handler: HTTPRouteHandler, path_params: frozenset[str]) -> dict[str, bool]:
    """The query parameters `handler` and its dependencies declare, by name, each with whether
    it is an integer."""
    model = handler.create_kwargs_model(path_parameters=dict.fromkeys(path_params))  # type: ignore[arg-type]
    annotations = _annotations(handler)
    declared: dict[str, bool] = {}
    for param in model.expected_query_params:
        if param.param_type is not ParamType.QUERY:
            continue
        annotation = annotations[param.field_name]
        declared[param.field_alias] = int in (typing.get_args(annotation) or (annotation,))
    return declared


def _annotations(handler: HTTPRouteHandler) -> dict[str, Any]:
    """Each parameter's annotation, from the handler's signature and those of the dependencies
    it takes (and theirs, in turn)."""
    annotations: dict[str, Any] = {}
    providers = handler.resolve_dependencies()
    pending = [handler.parsed_fn_signature]
    seen: set[str] = set()
    while pending:
        signature = pending.pop()
        for name, parameter in signature.parameters.items():
            annotations.setdefault(name, parameter.annotation)
            provider = providers.get(name)
            if provider is not None and name not in seen:
                seen.add(name)
                pending.append(provider.parsed_fn_signature)
    return annotations
