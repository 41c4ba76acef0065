"""What every read of one patient's clinical data does: ETag, conditional GET, access log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from litestar import Request, Response
from litestar.datastructures import ResponseHeader

from api.params import etag, not_modified
from projections.root import OncoLedger, Principal, Receipt

_NO_SHARED_CACHE = "private, no-cache"


# A documented header's `value` is what gives it a schema (`type: string`) in the document.
def read_headers() -> list[ResponseHeader]:
    return [
        ResponseHeader(
            name="ETag",
            value='"7"',
            documentation_only=True,
            description='The stream version, e.g. `"7"`: send it as If-Match when appending, '
            "or as If-None-Match to read again only if something changed",
        ),
        ResponseHeader(
            name="Cache-Control",
            value=_NO_SHARED_CACHE,
            documentation_only=True,
            description="Clinical data: no shared cache keeps it, and a client revalidates",
        ),
    ]


def replay_header(receipts: Sequence[Receipt]) -> dict[str, str]:
    """A retry of stored event ids answers as the first time did (201, same receipts); this
    header tells a client that wants to know whether anything new was stored."""
    return {"Idempotent-Replay": "false" if any(r.created for r in receipts) else "true"}


def replay_headers() -> list[ResponseHeader]:
    return [
        ResponseHeader(
            name="Idempotent-Replay",
            value="false",
            documentation_only=True,
            description="`true` when every `event_id` sent was already stored with the same body: "
            "nothing new was stored and the original receipt is returned",
        )
    ]


def unchanged(headers: dict[str, str]) -> Response[Any]:
    """304 Not Modified: the client's copy (its If-None-Match) is current."""
    return Response(b"", status_code=304, headers=headers)


def client_address(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def log_read(
    service: OncoLedger,
    request: Request[Any, Any, Any],
    resource: str,
    patient_id: str | None = None,
    *,
    actor: str | None = None,
    channel: str = "api",
) -> None:
    """Record who read what in the access log (SPEC §7 `access-log`): by default the bearer
    token's actor over the API; the browser pages name their session's actor and `web`."""
    service.log_access(
        actor if actor is not None else request.auth.name,
        channel=channel,
        resource=resource,
        patient_id=patient_id,
        address=client_address(request),
    )


def patient_read(
    service: OncoLedger,
    request: Request[Any, Principal, Any],
    patient_id: str,
    resource: str,
    if_none_match: str | None,
    produce: Callable[[], Any],
    *,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """Answer a read of one patient with its ETag, or 304 if the client's copy is current.

    The version is read before the content: the content is then at least as new as its ETag, so
    a client never holds an ETag that claims a newer state than what it was sent.
    """
    version = service.version(patient_id)
    headers = {**(headers or {}), "ETag": etag(version), "Cache-Control": _NO_SHARED_CACHE}
    if not_modified(if_none_match, version):
        log_read(service, request, resource, patient_id)
        return unchanged(headers)
    content = produce()
    log_read(service, request, resource, patient_id)
    return Response(content, headers=headers, media_type=media_type)
