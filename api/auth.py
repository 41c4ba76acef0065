"""Bearer tokens on every `/api/v1` route; each route names what it needs: read, write or audit.

The guard runs before the body is read, so a request without a valid token is refused as such
(401) whatever else is wrong with it. The token lookup is a database read: it runs in a worker
thread, never on the event loop; a token this process verified within the last second is
admitted without it (`TokenStore.verified`: no I/O, no thread hop).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from domain.errors import Unauthorized
from projections.root import OncoLedger, Permission, authorize

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
        token = bearer_token(connection.headers.get("authorization"))
        service: OncoLedger = connection.app.state.ledger
        principal = service.tokens.verified(token)
        if principal is None:
            principal = await anyio.to_thread.run_sync(service.tokens.authenticate, token)
        if principal is None:
            raise Unauthorized(
                "unknown or revoked token", field="Authorization", rule="bearer_token"
            )
        authorize(principal, permission, action=_ACTIONS[permission])
        connection.scope["auth"] = principal

    guard.__name__ = f"requires_{permission}"
    return guard


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
