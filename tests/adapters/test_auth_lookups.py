"""Requests that miss the remembered token check at the same moment share one store lookup."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

from api.auth import _LOOKUPS, _authenticate
from projections.root import OncoLedger, Principal


class _Tokens:
    """A token store whose lookups wait until the test lets them answer."""

    def __init__(self) -> None:
        self.lookups = 0
        self.answer = threading.Event()

    def authenticate(self, token: str) -> Principal | None:
        self.lookups += 1
        self.answer.wait()
        return Principal("nurse.a", "clinician") if token == "good" else None


class _Service:
    def __init__(self) -> None:
        self.tokens = _Tokens()


def test_concurrent_misses_of_one_token_share_one_lookup() -> None:
    service = _Service()

    async def scenario() -> list[Any]:
        ol = cast(OncoLedger, service)
        waiting = [asyncio.ensure_future(_authenticate(ol, "good")) for _ in range(8)]
        other = asyncio.ensure_future(_authenticate(ol, "bad"))
        while service.tokens.lookups < 2:  # both lookups under way, every request waiting
            await asyncio.sleep(0.001)
        waiting[0].cancel()  # a client that went away leaves the lookup to the others
        service.tokens.answer.set()
        return await asyncio.gather(*waiting[1:], other)

    *principals, refused = asyncio.run(scenario())
    assert service.tokens.lookups == 2  # one per token, not one per request
    assert principals == [Principal("nurse.a", "clinician")] * 7
    assert refused is None
    assert not _LOOKUPS  # nothing kept once answered
