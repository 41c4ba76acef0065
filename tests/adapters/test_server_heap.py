"""A running server keeps the collector off what start-up made (`api.app.settled_heap`)."""

from __future__ import annotations

import gc

from litestar.testing import TestClient

from api.app import GC_THRESHOLDS, create_app
from domain.ledger.application import StoreConfig


def test_a_running_app_freezes_its_start_up_heap_and_restores_the_collector(
    sqlite_store: StoreConfig,
) -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with TestClient(create_app(sqlite_store, projector=False)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_threshold() == GC_THRESHOLDS
        # The app, its routes and the opened ledger are frozen: the collector skips them.
        assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
