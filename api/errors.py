"""The one mapping from errors to HTTP responses (SPEC §8).

Every error body is Litestar's shape, `{status_code, detail, extra}`. For the domain's refusals
`detail` is the domain's sentence and `extra` its `{kind, field, rule}`; Litestar's own errors
(a query value of the wrong type, a body too large, an unknown route) get the same shape, their
messages passed through with the parameter they concern.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from api.schemas import ErrorBody
from domain.errors import DomainError

STATUS_BY_KIND: dict[str, int] = {
    "validation": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "gone": 410,
    "precondition_failed": 412,
    "rule_violation": 422,
    "unavailable": 503,
    "storage_full": 507,
}
KIND_BY_STATUS: dict[int, str] = {status: kind for kind, status in STATUS_BY_KIND.items()}
KIND_BY_STATUS |= {405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}

_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="oncoledger"'}

log = logging.getLogger("oncoledger.api")


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Map a `DomainError` or a Litestar `HTTPException` onto one JSON error response."""
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        status = STATUS_BY_KIND.get(exc.kind, 400)
        body = ErrorBody(status_code=status, detail=exc.message, extra=dict(exc.as_dict()))
    elif isinstance(exc, ValidationException):
        status = 400
        detail, extra = _parameter_errors(exc)
        body = ErrorBody(status_code=status, detail=detail, extra=extra)
    elif isinstance(exc, HTTPException) and exc.status_code != 500:
        status = exc.status_code
        headers |= exc.headers or {}
        kind = KIND_BY_STATUS.get(status, "error" if status < 500 else "server_error")
        body = ErrorBody(status_code=status, detail=exc.detail, extra={"kind": kind})
    else:
        return internal_error(request, exc)
    if status == 401:
        headers |= _AUTHENTICATE
    return Response(body, status_code=status, headers=headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Anything unexpected: its traceback goes to the server's log under a correlation id,
    and the client gets that id (never the traceback) to quote to whoever runs the server."""
    correlation_id = uuid4().hex
    log.error(
        "500 on %s %s, correlation_id=%s",
        request.method,
        request.url.path,
        correlation_id,
        exc_info=exc,
    )
    body = ErrorBody(
        status_code=500,
        detail="internal server error: the server's log has the details under correlation id "
        f"{correlation_id}",
        extra={"kind": "server_error", "correlation_id": correlation_id},
    )
    return Response(body, status_code=500)


def _parameter_errors(exc: ValidationException) -> tuple[str, dict[str, Any]]:
    """Litestar's list of `{message, key, source}` as one sentence naming each parameter."""
    errors = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        source = _source(error)
        where = f" - at {source} parameter `{error['key']}`" if "key" in error else ""
        parts.append(f"{error.get('message', 'invalid value')}{where}")
    extra: dict[str, Any] = {"kind": "validation", "rule": "schema"}
    first = next((e for e in errors if isinstance(e, dict) and "key" in e), None)
    if first is not None:
        extra |= {"field": str(first["key"]), "source": _source(first)}
    return ("; ".join(parts) or exc.detail), extra


def _source(error: dict[str, Any]) -> str:
    source = error.get("source", "")
    return str(getattr(source, "value", source))  # Litestar's ParamType is an Enum


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: error_response,
    HTTPException: error_response,
    Exception: error_response,
}

_DESCRIPTIONS: dict[int, str] = {
    400: "Validation failed: malformed JSON, unknown field, wrong type, value out of range, "
    "or a bad query/path/header value",
    401: "No bearer token, or an unknown or revoked one",
    403: "The token's role does not allow this",
    410: "The patient was erased: its clinical content no longer exists",
    404: "No such patient or event",
    409: "Conflicts with what is stored (duplicate registration, event id reused with "
    "another body)",
    412: "If-Match names a version the stream has moved past",
    413: "Request body larger than the server accepts",
    415: "The body is not sent as application/json",
    422: "Well-formed, but breaks a clinical or ledger rule",
    503: "The store is unavailable, or a read could not be recorded in the access log (refused); "
    'for a write with `extra.outcome: "unknown"`, send it again with `extra.event_id`',
    507: "The store's disk is full: nothing was stored",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer with (and 503: any route may
    find the store unavailable)."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody, description=_DESCRIPTIONS[status], generate_examples=False
        )
        for status in (*statuses, 503)
    }
