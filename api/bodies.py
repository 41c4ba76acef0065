"""The check every `/api/` request body passes before its handler sees it (the app's
`before_request` hook, and the append's own path in `api.events`)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException
from litestar.utils.scope.state import ScopeState

from api.query_checks import check_query
from api.schemas import TYPED_BODY
from domain.errors import ValidationFailed
from domain.input_checks import parse_json

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """Bodies are JSON: refuse another media type (415), an empty body or malformed JSON (400).
    The query string is checked first, against what the route declares (400)."""
    check_query(request)
    # The scope's path and method, not `request.url` (a URL object built per request).
    scope = request.scope
    if scope["method"] not in _BODY_METHODS or not (
        scope.get("root_path", "") + scope["path"]
    ).startswith("/api/"):
        return  # the browser pages post forms
    media_type = request.content_type[0]
    if media_type and not (media_type == "application/json" or media_type.endswith("+json")):
        raise ClientException(
            status_code=415,
            detail=f"the body must be JSON sent as `Content-Type: application/json`, not "
            f"{media_type!r} (with curl: --json, or -H 'Content-Type: application/json')",
        )
    body = await request.body()
    if not body.strip():
        raise ValidationFailed(
            "the request body is empty: send one JSON object", field="$", rule="schema"
        )
    # What is parsed here is the handler's body parameter: Litestar takes a request's JSON from
    # its scope state when there, so the body is parsed once. A route that names a typed
    # decoder gets the body decoded straight into its Struct when that decode accepts it.
    typed = request.route_handler.opt.get(TYPED_BODY)
    parsed = typed(body) if typed is not None else None
    if parsed is None:
        # Refuses invalid UTF-8, over-deep nesting and unstorable text, naming where.
        parsed = parse_json(body, what="the body")
    ScopeState.from_scope(request.scope).json = parsed
