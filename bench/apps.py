"""The HTTP baseline: a bare Litestar endpoint at the append route that stores nothing.

Served the same way as the real API (uvicorn, one process, the handler a sync function run in a
worker thread, the body parsed as JSON), it measures what the server and the load generator
cost by themselves: the ceiling any append over HTTP can reach on this machine. Its twin with
an `async def` handler shows what the worker thread's hop costs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Response, get, post


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@post("/api/v1/patients/{patient_id:str}/events", sync_to_thread=True, status_code=201)
def append(patient_id: str, data: dict[str, Any]) -> Response[dict[str, Any]]:
    receipt = {
        "event_id": data.get("event_id") or str(uuid.uuid4()),
        "version": 1,
        "recorded_at": datetime.now(UTC).isoformat(),
        "hash": "0" * 64,
    }
    return Response(receipt, status_code=201)


@post("/api/v1/patients/{patient_id:str}/events", status_code=201)
async def append_on_loop(patient_id: str, data: dict[str, Any]) -> Response[dict[str, Any]]:
    receipt = {
        "event_id": data.get("event_id") or str(uuid.uuid4()),
        "version": 1,
        "recorded_at": datetime.now(UTC).isoformat(),
        "hash": "0" * 64,
    }
    return Response(receipt, status_code=201)


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[health, append])


def create_bare_async_app() -> Litestar:
    """The same endpoint as an `async def` run on the event loop (no worker thread), as the
    API's single-event append is."""
    return Litestar(route_handlers=[health, append_on_loop])
