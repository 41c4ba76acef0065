"""Output: one JSON document for `--json`, rich tables and short lines otherwise.

Nothing is computed here; every value shown comes from a read model or a receipt as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from domain import events as ev
from projections.readmodels import ReplayStep
from projections.root import Receipt
from projections.timeline import summarize

# Piped output is not squeezed to 80 columns: ids and hashes stay on one line.
PIPE_WIDTH = 200


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*(cell(v) for v in row))
    return result


def show(*renderables: Any) -> None:
    out = console()
    for renderable in renderables:
        out.print(renderable)


def occurred(entry: ev.Event) -> str:
    return f"~{entry.occurred}" if entry.date_estimated else entry.occurred


# -- writes ------------------------------------------------------------------------------------


def receipt_line(patient_id: str, type_name: str, receipt: Receipt) -> str:
    what = "recorded" if receipt.created else "already recorded (nothing new)"
    return (
        f"{what}: {type_name} for {patient_id} as version {receipt.version}, "
        f"event {receipt.event_id}, at {cell(receipt.recorded_at)}, hash {receipt.hash}"
    )


# -- history and replay --------------------------------------------------------------------------


def describe(entry: ev.AnyEvent) -> str:
    if isinstance(entry, ev.EventAmended):
        return (
            f"amends {entry.target_event_id}: {summarize(entry.replacement)} "
            f"(reason: {entry.reason})"
        )
    if isinstance(entry, ev.EventRetracted):
        return f"retracts {entry.target_event_id} (reason: {entry.reason})"
    return summarize(entry)


def history_table(patient_id: str, entries: Sequence[ev.AnyEvent]) -> Table:
    return table(
        f"History of {patient_id} ({len(entries)} events, stream order)",
        ["v", "occurred", "type", "what", "event_id", "recorded_at", "by", "source"],
        (
            [
                e.version,
                occurred(e),
                e.type,
                describe(e),
                e.event_id,
                e.recorded_at,
                e.recorded_by,
                e.source,
            ]
            for e in entries
        ),
    )


def replay_table(patient_id: str, steps: Sequence[ReplayStep]) -> Table:
    return table(
        f"Replay of {patient_id}: derived state after each event",
        [
            "v",
            "type",
            "occurred",
            "stage",
            "stage trend",
            "CTC trend",
            "CTC/7.5mL",
            "response",
            "survival",
            "OS months",
        ],
        (
            [
                s.version,
                s.type,
                s.occurred,
                s.stage_group,
                s.stage_trend,
                s.ctc_trend,
                s.ctc_latest_per_7_5_ml,
                s.response,
                s.survival_status,
                s.os_months,
            ]
            for s in steps
        ),
    )
