"""Bearer tokens on every `/api/v1` route; each route names what it needs: read, write or audit.

The guard runs before the body is read, so a request without a valid token is refused as such
(401) whatever else is wrong with it. The token lookup is a database read: it runs in a worker
thread, never on the event loop; a token this process verified within the last second is
admitted without it (`TokenStore.verified`: no I/O, no thread hop). When that second is up,
the requests in flight with the token all miss at once: they share one lookup (`_authenticate`),
not one thread hop and one read each.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from domain.errors import Unauthorized
from projections.root import OncoLedger, Permission, Principal, authorize

SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]

_ACTIONS: dict[Permission, str] = {
    "read": "read clinical data",
    "write": "record events and corrections",
    "audit": "verify the ledger",
    "erase": "erase a patient",
}


def requires(permission: Permission) -> Guard:
    """A guard admitting tokens whose role allows `permission` (SPEC §8 roles)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        await admit(connection, permission)

    guard.__name__ = f"requires_{permission}"
    return guard


async def admit(connection: ASGIConnection[Any, Any, Any, Any], permission: Permission) -> None:
    """What the guard checks: a known token whose role allows `permission` (401, 403); its
    principal becomes the connection's `auth`."""
    token = bearer_token(connection.headers.get("authorization"))
    service: OncoLedger = connection.app.state.ledger
    principal = service.tokens.verified(token)
    if principal is None:
        principal = await _authenticate(service, token)
    if principal is None:
        raise Unauthorized("unknown or revoked token", field="Authorization", rule="bearer_token")
    authorize(principal, permission, action=_ACTIONS[permission])
    connection.scope["auth"] = principal


# The lookups under way, by event loop, token store and token.
_LOOKUPS: dict[tuple[int, int, str], asyncio.Future[Principal | None]] = {}


async def _authenticate(service: OncoLedger, token: str) -> Principal | None:
    """`service.tokens.authenticate(token)` in a worker thread; a request that finds the same lookup
    under way waits for its answer (a read that began after the token was last verified)."""
    tokens = service.tokens
    loop = asyncio.get_running_loop()
    key = (id(loop), id(tokens), token)
    lookup = _LOOKUPS.get(key)
    if lookup is None:
        lookup = loop.run_in_executor(None, tokens.authenticate, token)
        _LOOKUPS[key] = lookup
        lookup.add_done_callback(lambda _: _LOOKUPS.pop(key, None))
    # One waiter cancelled (its client went away) leaves the lookup to the others.
    return await asyncio.shield(lookup)


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthorized(
            "no bearer token: send `Authorization: Bearer <token>` (an admin makes one with "
            "`oncoledger token create NAME --role ROLE`)",
            field="Authorization",
            rule="bearer_token",
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must read `Bearer <token>`",
            field="Authorization",
            rule="bearer_token",
        )
    return token.strip()
