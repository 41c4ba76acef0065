"""The live feed for integrators: `GET /api/v1/events` (pages, long poll) and its SSE stream.

Both need the `auditor` or `admin` role: the feed carries every patient's clinical events. Each
page served (each batch sent on the stream) is one access-log entry. Waiting never blocks the
event loop and holds no database connection (`projections.feed`).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from api.auth import SECURITY, requires
from api.errors import error_responses
from api.params import MAX_BIGINT
from api.reads import log_read
from domain.errors import ValidationFailed
from projections.feed import MAX_LIMIT, MAX_WAIT_SECONDS, FeedPage, check_wait
from projections.root import OncoLedger, Principal

# A stream sends a comment line this often while idle, so proxies keep the connection open.
KEEPALIVE_SECONDS = 15.0
# A stream ends after this long; the client reconnects with `Last-Event-ID` and loses nothing.
# It bounds how long a server shutdown waits for open streams.
STREAM_LIFETIME_SECONDS = 300.0
STREAM_BATCH = 500
_RECONNECT_MS = 1000
_POSITION = re.compile(r"^\s*(\d{1,19})\s*$")
_json = msgspec.json.Encoder()

FeedAfter = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=MAX_BIGINT,
        description="Events with a position greater than this (exclusive); `next_after` of the "
        "previous page, or 0 for the first event. The same positions as the audit feed's "
        "`after`. Beyond the latest position: 400.",
    ),
]
FeedLimit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description="Events per page (1 to 1000)")
]
FeedWait = Annotated[
    float,
    QueryParameter(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="When nothing is newer than `after`, wait up to this many seconds (0 to 60) "
        "for the next event before answering with an empty page (long poll)",
    ),
]
StreamAfter = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        le=MAX_BIGINT,
        description="Start after this position (default 0: every event); `Last-Event-ID` wins",
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        description="The `id` of the last event received: the stream resumes after it "
        "(browsers' EventSource sends it by itself on reconnecting)",
    ),
]


class FeedController(Controller):
    path = "/api/v1/events"
    tags = ("feed",)
    security = SECURITY
    guards = [requires("audit")]

    @get(
        path="/",
        operation_id="listEvents",
        summary="Every stored event across all patients, in recording order (long poll)",
        description="Pages through the ledger as it grows: each event in its flat JSON form "
        "with its `position`; pass `next_after` as `after` for the next page. With `wait`, an "
        "empty page is held back until an event arrives or `wait` seconds pass. Needs the "
        "auditor or admin role; each page served is recorded in the access log.",
        responses=error_responses(400, 401, 403),
    )
    async def events(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        after: FeedAfter = 0,
        limit: FeedLimit = 100,
        wait: FeedWait = 0,
    ) -> FeedPage:
        check_wait(wait)
        feed = service.feed
        page = await anyio.to_thread.run_sync(feed.page, after, limit)
        if not page.events and wait > 0 and await feed.wait_async(after, wait):
            page = await anyio.to_thread.run_sync(feed.page, after, limit)
        await anyio.to_thread.run_sync(log_read, service, request, "feed")
        return page

    @get(
        path="/stream",
        operation_id="streamEvents",
        summary="The same feed as Server-Sent Events",
        description="`text/event-stream`: one message per stored event, `id:` its position and "
        "`data:` its JSON, oldest first, then each new event as it is stored. Resumes after "
        "`Last-Event-ID` (or `after`). Idle streams get a comment line every 15 s; a stream "
        f"ends after {int(STREAM_LIFETIME_SECONDS)} s and the client reconnects with "
        "`Last-Event-ID`. Needs the auditor or admin role; each batch sent is recorded in the "
        "access log.",
        responses=error_responses(400, 401, 403),
    )
    async def stream(
        self,
        request: Request[Any, Principal, Any],
        service: NamedDependency[OncoLedger],
        after: StreamAfter = None,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        start = _resume_position(last_event_id, after)
        # A bad start is refused with a status before the stream begins.
        await anyio.to_thread.run_sync(service.feed.page, start, 1)
        return ServerSentEvent(
            _messages(service, request, start),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _resume_position(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    match = _POSITION.match(last_event_id)
    if match is None or int(match.group(1)) > MAX_BIGINT:
        raise ValidationFailed(
            f"`Last-Event-ID` must be an event position (a whole number), not {last_event_id!r}",
            field="Last-Event-ID",
            rule="position",
        )
    return int(match.group(1))


async def _messages(
    service: OncoLedger, request: Request[Any, Principal, Any], position: int
) -> AsyncIterator[ServerSentEventMessage]:
    feed = service.feed
    ends = time.monotonic() + STREAM_LIFETIME_SECONDS
    yield ServerSentEventMessage(data=None, retry=_RECONNECT_MS, comment="oncoledger feed")
    while time.monotonic() < ends:
        page = await anyio.to_thread.run_sync(feed.page, position, STREAM_BATCH)
        if page.events:
            await anyio.to_thread.run_sync(log_read, service, request, "feed")
            for event in page.events:
                yield ServerSentEventMessage(data=_json.encode(event), id=event["position"])
            position = page.next_after
            continue
        remaining = ends - time.monotonic()
        if not await feed.wait_async(position, max(0.0, min(KEEPALIVE_SECONDS, remaining))):
            yield ServerSentEventMessage(data=None, comment="keep-alive")
