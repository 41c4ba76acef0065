"""The REST API (SPEC §8): `create_app()` builds the Litestar application.

One `OncoLedger` per application, opened on startup and closed on shutdown. The library is
synchronous, so every handler that touches storage is a `def` run in a worker thread; the one
exception is the single-event append (`api.events.AppendPath`), which runs on the event loop
and awaits its commit from the ledger's group committer (`Ledger.append_async`).
`uvicorn --factory api.app:create_app` (what `oncoledger serve` runs) reads the store from the
environment: ONCOLEDGER_DB or ONCOLEDGER_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from importlib import metadata

import anyio.to_thread
from litestar import Litestar, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from api.audit import AuditController
from api.bodies import require_json_body
from api.charts import CHART_ROUTES
from api.cohort import CohortController
from api.docs_ui import docs_assets, docs_ui
from api.erasure import ErasureController
from api.errors import EXCEPTION_HANDLERS
from api.events import EventController
from api.feed import FeedController
from api.fhir import FhirController
from api.html import STATIC, pages_as_html
from api.integrity import IntegrityController
from api.pages import PageController
from api.patients import PatientController
from api.projections import ProjectionController
from api.schemas import Health
from api.storage_errors import STORAGE_EXCEPTION_HANDLERS
from api.views import ViewController
from api.web_auth import SignInController
from projections.projector import NO_PROJECTOR_ENV
from projections.root import OncoLedger, StoreConfig

MAX_BODY_BYTES = 1024 * 1024
# Threads for the sync handlers (the event loop's default executor, which Litestar runs them in).
# Python's default is cpu_count + 4 (6 on 2 cores): then at most 6 appends are ever in flight,
# so a group commit never holds more than 6. An append's thread mostly waits for its commit (no
# GIL held), but every runnable thread competes with the event loop for the GIL: measured with
# 32 clients on 2 cores, 16 threads answered at least as fast as 64 with a lower p99.
# (A single-event append takes none of them: it runs on the loop, `api.events.AppendPath`.)
HANDLER_THREADS = 16
# The cyclic garbage collector, tuned for a server (`settled_heap`). Measured under the bench's
# append load (32 clients, SQLite): with Python's defaults (700, 10, 10) the collector took
# about 5 s of a 30 s run, the full collections up to 0.7 s each (every request waits: the p99),
# most of it walking what start-up made and never frees (modules, the app, its routes, the
# ledger's caches). Those are frozen once the server is up (`gc.freeze`: never traversed
# again), and the youngest generation is collected every 10,000 allocations, not 700: most of a
# request's objects are freed by their reference counts before a collection sees them.
GC_THRESHOLDS = (10_000, 10, 10)

DESCRIPTION = """\
An append-only clinical event ledger for cancer care.

Every `/api/v1` route needs `Authorization: Bearer <token>`; tokens are made with
`oncoledger token create NAME --role reader|clinician|auditor|admin`. Readers read clinical
data; clinicians also record events and corrections; auditors also verify; admins do all.

Errors are JSON `{status_code, detail, extra}`: 400 validation, 401 no or bad token, 403 role,
404 not found, 409 conflict, 412 precondition failed (If-Match), 413 body too large,
415 not JSON, 422 rule violation, 503 store unavailable (or a clinical read that could not be
recorded in the access log), 507 the store's disk is full. A write answered 503 with
`extra.outcome: "unknown"` may or may not be stored: send it again with `extra.event_id`.
"""


@get(
    path="/health",
    operation_id="health",
    summary="Liveness",
    tags=("service",),
    sync_to_thread=False,
)
def health() -> Health:
    return Health(status="ok")


@get(path="/", include_in_schema=False, sync_to_thread=False)
def home() -> Redirect:
    return Redirect(path="/schema")


@contextmanager
def settled_heap() -> Iterator[None]:
    """While the server runs: what exists now is frozen out of the collector's walks, and the
    collector runs at `GC_THRESHOLDS`; at shutdown both are as they were (a process that opens
    and closes apps, a test run, keeps nothing frozen)."""
    previous = gc.get_threshold()
    gc.freeze()  # no collection first: start-up leaves little garbage, and tests start many apps
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def _version() -> str:
    try:
        return metadata.version("oncoledger")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def create_app(config: StoreConfig | None = None, *, projector: bool | None = None) -> Litestar:
    """The application over the store `config` (default: from the environment). Writes are
    answered once stored; a projector thread applies them to the views (`projector`, default:
    unless ONCOLEDGER_NO_PROJECTOR is set, which `serve --no-projector` does)."""
    store = config or StoreConfig.from_env()
    if projector is None:
        projector = not os.environ.get(NO_PROJECTOR_ENV)

    opened: list[OncoLedger] = []  # the service, once the lifespan has opened it

    def service_dependency() -> OncoLedger:
        # Without parameters: a dependency taking `state` costs every request a copy of the
        # app's State and a signature-model conversion.
        return opened[0]

    @asynccontextmanager
    async def open_ledger(app: Litestar) -> AsyncIterator[None]:
        threads = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="oncoledger-handler")
        asyncio.get_running_loop().set_default_executor(threads)
        service = await anyio.to_thread.run_sync(
            functools.partial(OncoLedger, store, project_inline=False)
        )
        if projector:
            await anyio.to_thread.run_sync(service.catch_up_views)  # e.g. after an import
            service.start_projector()
        app.state.ledger = service
        opened[:] = [service]
        try:
            with settled_heap():
                yield
        finally:
            opened.clear()
            await anyio.to_thread.run_sync(service.close)

    return Litestar(
        route_handlers=[
            home,
            health,
            PatientController,
            EventController,
            ViewController,
            *CHART_ROUTES,
            IntegrityController,
            ProjectionController,
            ErasureController,
            AuditController,
            FhirController,
            FeedController,
            CohortController,
            SignInController,
            PageController,
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False
            ),
            docs_assets(),
        ],
        lifespan=[open_ledger],
        dependencies={"service": Provide(service_dependency, sync_to_thread=False)},
        exception_handlers=pages_as_html({**EXCEPTION_HANDLERS, **STORAGE_EXCEPTION_HANDLERS}),
        before_request=require_json_body,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="OncoLedger",
            version=_version(),
            description=DESCRIPTION,
            path="/schema",
            render_plugins=[docs_ui()],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A token from `oncoledger token create`",
                    )
                }
            ),
            tags=[
                Tag(name="patients", description="Registration and the cohort index"),
                Tag(name="events", description="Append, history and corrections"),
                Tag(name="projections", description="Read models of one patient"),
                Tag(name="integrity", description="Hash chains and the ledger digest"),
                Tag(name="cohort", description="Analyses across patients: survival by group"),
                Tag(name="service", description="Service health"),
                Tag(name="interchange", description="FHIR R4 / mCODE export"),
            ],
        ),
    )
