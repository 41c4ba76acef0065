"""Storage faults that reach an adapter unconverted (a read when the database went away, say)
answer 503 or 507 saying so, like the service layer's own `StorageFault`s, instead of a 500."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from eventsourcing.persistence import PersistenceError
from litestar import Request, Response
from litestar.exceptions import InternalServerException
from litestar.types import ExceptionHandlersMap

from api.errors import EXCEPTION_HANDLERS, error_response
from api.schemas import ErrorBody
from projections.root import storage_fault

log = logging.getLogger(__name__)


def storage_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    fault = storage_fault(exc, doing="answering this request")
    if fault is not None:
        response: Response[ErrorBody] = error_response(request, fault)
        return response
    fallback = EXCEPTION_HANDLERS.get(Exception) or EXCEPTION_HANDLERS.get(500)
    if fallback is not None:  # the app's own handling of an unexpected error
        answer: Response[Any] = fallback(request, exc)
        return answer
    log.error("unexpected database error", exc_info=exc)
    return error_response(request, InternalServerException())


def _driver_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return ()
    return (psycopg.Error,)


_STORAGE_ERRORS: tuple[type[Exception], ...] = (PersistenceError, sqlite3.Error, *_driver_errors())
STORAGE_EXCEPTION_HANDLERS: ExceptionHandlersMap = dict.fromkeys(
    _STORAGE_ERRORS, storage_error_response
)
