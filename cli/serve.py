"""`oncoledger serve` (the REST API on uvicorn) and `oncoledger token create|list|revoke`.

Both use the main group's session (`ctx.obj`: the store from `--db` / ONCOLEDGER_DATABASE_URL);
run on their own they read the store from the environment.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import click

from cli import render
from cli.params import json_option
from projections.projector import NO_PROJECTOR_ENV
from projections.root import ROLES, OncoLedger, StoreConfig

APP_FACTORY = "api.app:create_app"
FIRST_TOKEN_NAME = "demo-admin"
# Several processes on one SQLite file are correct (WAL, the store's unique keys, the views'
# tracking position), but SQLite commits one writer at a time: more workers add read capacity,
# never write throughput, and each process's group commit batches only its own appends.
SQLITE_WORKERS_NOTE = (
    "note: SQLite commits one writer at a time, so extra workers serve reads in parallel but "
    "queue their writes for the one write lock; use PostgreSQL to scale writes out"
)


# `--reuse-port`: with several workers on Linux, each listens on a socket of its own bound with
# SO_REUSEPORT, so that the kernel spreads new connections over the workers. On uvicorn's one
# shared socket the event loop of whichever worker wakes first accepts every connection waiting
# at that moment: 32 clients connecting at once were seen split 26 / 6, one worker held by its
# GIL while the other idled (`serve --workers 2` then no faster than one worker).
REUSE_PORT_LOOP = "cli.serve:reuse_port_loop"
WORKER_HEALTHCHECK_SECONDS = 60


def reuse_port_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's event loop (uvloop when installed) whose servers listen on a socket of their own
    per process, bound with SO_REUSEPORT to the address of the one uvicorn gave them (which the
    supervisor keeps bound but never listens on, so no connection waits on it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover (uvicorn[standard] brings it)
        base: type[asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop
    else:
        base = uvloop.Loop

    class Loop(base):  # type: ignore[valid-type,misc]
        async def create_server(
            self, protocol_factory: Callable[[], asyncio.Protocol], *args: Any, **kwargs: Any
        ) -> asyncio.Server:
            shared = kwargs.get("sock")
            if shared is not None and shared.family in (socket.AF_INET, socket.AF_INET6):
                own = socket.socket(shared.family, socket.SOCK_STREAM)
                own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                own.bind(shared.getsockname())
                kwargs["sock"] = own
            server: asyncio.Server = await super().create_server(protocol_factory, *args, **kwargs)
            return server

    return Loop()


def reuse_port_supported() -> bool:
    """SO_REUSEPORT spreads connections over the sockets of one port on Linux (elsewhere it may
    give them all to one socket)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def _config(ctx: click.Context) -> StoreConfig:
    config = getattr(ctx.find_root().obj, "config", None)
    return config if isinstance(config, StoreConfig) else StoreConfig.from_env()


def _ledger(ctx: click.Context) -> OncoLedger:
    session = ctx.find_root().obj
    if hasattr(session, "open"):
        ledger: OncoLedger = session.open()
        return ledger
    return ctx.with_resource(OncoLedger(_config(ctx)))


def store_environment(config: StoreConfig) -> dict[str, str | None]:
    """The environment that makes `StoreConfig.from_env()` in a worker process name `config`."""
    return {
        "ONCOLEDGER_DB": os.path.abspath(config.sqlite_path) if config.sqlite_path else None,
        "ONCOLEDGER_DATABASE_URL": config.database_url,
        "ONCOLEDGER_DATABASE_SCHEMA": config.schema,
        "ONCOLEDGER_CIPHER_KEY": config.cipher_key,
    }


def base_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (each opens the store, and runs a projector unless --no-projector). "
    "For PostgreSQL; on SQLite they share its single writer.",
)
@click.option(
    "--no-projector",
    is_flag=True,
    help="Do not apply events to the views in this server: leave it to "
    "`oncoledger projections run` workers.",
)
@click.option(
    "--reuse-port/--no-reuse-port",
    default=True,
    show_default=True,
    help="With --workers N on Linux: each worker listens on a SO_REUSEPORT socket of its own, "
    "and the kernel spreads new connections over them (on one shared socket, a burst of "
    "connections may all go to one worker).",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="uvicorn's line per request on stderr (about 0.1 ms of CPU per request; the ledger's "
    "own access log of clinical reads is kept either way).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    no_projector: bool,
    reuse_port: bool,
    access_log: bool,
) -> None:
    """Serve the REST API; OpenAPI docs at http://HOST:PORT/schema.

    On a ledger that has never had an API token, an admin token named `demo-admin` is made
    and printed once, to try the API with; revoke it with `oncoledger token revoke demo-admin`.
    """
    import uvicorn

    config = _config(ctx)
    if workers > 1 and not config.is_postgres:
        click.echo(SQLITE_WORKERS_NOTE, err=True)
    with OncoLedger(config) as ledger:
        first = ledger.tokens.create_first(FIRST_TOKEN_NAME, "admin")
    url = base_url(host, port)
    if first is not None:
        click.echo(
            f"No API token existed, so an admin token named {FIRST_TOKEN_NAME!r} was made.\n"
            "It is shown only now; keep it, or revoke it with "
            f"`oncoledger token revoke {FIRST_TOKEN_NAME}`:\n\n"
            f"    {first}\n\n"
            f"Try:  curl -H 'Authorization: Bearer {first}' {url}/api/v1/patients\n"
        )
    click.echo(f"OncoLedger API docs: {url}/schema")
    click.echo(f"Patient pages (sign in with a token): {url}/patients")
    for name, value in store_environment(config).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if no_projector:
        os.environ[NO_PROJECTOR_ENV] = "1"
    else:
        os.environ.pop(NO_PROJECTOR_ENV, None)
    options: dict[str, Any] = {}
    if not access_log:
        options["access_log"] = False
    if workers > 1:
        # A worker still importing on a busy machine is not hung: uvicorn's 5 s default
        # killed and restarted such workers in a loop.
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
        if reuse_port and reuse_port_supported():
            options["loop"] = REUSE_PORT_LOOP
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, **options)


@click.group()
def token() -> None:
    """Make, list and revoke API tokens (the secret is shown once and stored hashed)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(ROLES),
    help="reader: clinical reads; clinician: + record and correct; auditor: + verify and "
    "audit; admin: everything.",
)
@json_option
@click.pass_context
def token_create(ctx: click.Context, name: str, role: str, as_json: bool) -> None:
    """Make a token for NAME (recorded as the actor of what it appends); print its secret."""
    secret = _ledger(ctx).tokens.create(name, role)
    if as_json:
        render.emit_json({"name": name, "role": role, "token": secret})
        return
    click.echo(secret)
    click.echo(
        f"Token {name!r} ({role}) made. The secret above is shown only now: store it safely.",
        err=True,
    )


@token.command("list")
@json_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """Every token, active and revoked (never the secrets)."""
    tokens = _ledger(ctx).tokens.list()
    if as_json:
        render.emit_json({"tokens": tokens})
        return
    rows: list[list[Any]] = [
        [t.name, t.role, t.key_id, t.created_at, t.revoked_at or "active"] for t in tokens
    ]
    render.show(render.table(None, ["name", "role", "key id", "created", "revoked"], rows))


@token.command("revoke")
@click.argument("name")
@json_option
@click.pass_context
def token_revoke(ctx: click.Context, name: str, as_json: bool) -> None:
    """Revoke NAME's active token: it stops working at once."""
    info = _ledger(ctx).tokens.revoke(name)
    if as_json:
        render.emit_json(info)
        return
    click.echo(f"token {info.name!r} ({info.role}) revoked")
