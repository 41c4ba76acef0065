"""The library's own baseline: a plain eventsourcing Aggregate and Application on SQLite.

No OncoLedger code: the default JSON transcoder, the library's mapper, one event class. This is
what the SPEC's "in-process save() rate" and "plain eventsourcing replay" figures refer to.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


def plain_env(path: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "30",
    }


class Chart(Aggregate):
    @event("Opened")
    def __init__(self, name: str) -> None:
        self.name = name
        self.entries = 0

    @event("Recorded")
    def record(self, body: dict[str, Any]) -> None:
        self.entries += 1


class PlainApp(Application[Any]):
    name = "PlainBaseline"

    def new_chart(self, name: str) -> Chart:
        return Chart(name)
