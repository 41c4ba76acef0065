"""Setting up and keeping the store: `init`, `demo`, `projections rebuild|status`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli import render, render_views
from cli.cohort import record_cohort
from cli.params import json_option
from cli.session import SOURCE, Session, pass_session
from domain.demo import CASE_REPORT_PATIENT
from projections.root import REBUILD_BATCH, StoreConfig, views_path


def store_place(config: StoreConfig) -> str:
    if config.database_url:
        url = urlparse(config.database_url)
        host = url.hostname or "127.0.0.1"
        port = f":{url.port}" if url.port else ""
        place = f"PostgreSQL {host}{port}{url.path or '/'}"
        return f"{place} (schema {config.schema})" if config.schema else place
    path = Path(config.sqlite_path or "oncoledger.db").resolve()
    return f"SQLite {path} (views in {Path(views_path(config)).resolve()})"


# -- setup --------------------------------------------------------------------------------------


@click.command()
@pass_session
def init(session: Session) -> None:
    """Create the event store and the views (does nothing to an existing ledger)."""
    status = session.open().views.status()
    click.echo(
        f"ledger ready at {store_place(session.config)}: {status['head']} events, "
        f"views at position {status['position']}"
    )


@click.command()
@click.option("--quiet", is_flag=True, help="Record only; print nothing.")
@click.option(
    "--cohort",
    "cohort_size",
    type=click.IntRange(min=0, max=100_000),
    default=0,
    help="Also record N synthetic patients SYN-00001... (seeded; for `cohort survival`).",
)
@click.option("--seed", type=int, help="Seed of the synthetic cohort [default: 2016].")
@json_option
@pass_session
def demo(session: Session, quiet: bool, cohort_size: int, seed: int | None, as_json: bool) -> None:
    """Record the demo patients (again: a no-op) and show the case report's patient."""
    service = session.open()
    recorded = service.record_demo(actor=session.actor, source=SOURCE)
    synthetic = record_cohort(service, cohort_size, seed, actor=session.actor, quiet=quiet)
    if quiet:
        return
    pid = CASE_REPORT_PATIENT
    history = service.history(pid)
    views = {name: service.read(pid, name) for name in ("stage", "ctc", "response", "survival")}
    for resource in ("history", *views):
        session.log_read(resource, pid)
    if as_json:
        render.emit_json(
            {
                "recorded": [{"patient_id": p, "new_events": n} for p, n in recorded],
                **({"synthetic_cohort": synthetic} if synthetic else {}),
                "patient_id": pid,
                "history": history,
                **views,
            }
        )
        return
    for patient_id, created in recorded:
        click.echo(f"{patient_id}: {created} new events recorded")
    if synthetic:
        click.echo(
            f"synthetic cohort {synthetic['first']}..{synthetic['last']} (seed "
            f"{synthetic['seed']}): {synthetic['new_events']} new events recorded"
        )
    render.show(render.history_table(pid, history))
    for name, view in views.items():
        click.echo()
        render.show(*render_views.render_view(name, view))


# -- projections --------------------------------------------------------------------------------


@click.group()
def projections() -> None:
    """The stored read models: rebuild them, see how far they have caught up."""


@projections.command("rebuild")
@click.option(
    "--batch",
    default=REBUILD_BATCH,
    show_default=True,
    type=click.IntRange(min=1, max=1_000_000),
    help="Events per committed batch (a killed rebuild resumes after the last one).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=0, max=64),
    help="Worker processes computing rows beside this one (0: none; default: one per spare "
    "core, up to 3, for 50,000 events or more).",
)
@json_option
@pass_session
def projections_rebuild(session: Session, batch: int, workers: int | None, as_json: bool) -> None:
    """Drop every view and rebuild it from the first event (progress bar on stderr).

    A rebuild that was interrupted (Ctrl-C, kill -9, a crash) is resumed from its last
    committed batch when run again."""
    views = session.open().views
    err = render.console(stderr=True)
    with Progress(
        TextColumn("rebuilding"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("rebuild", total=views.head())
        applied = views.rebuild(
            batch=batch,
            workers=workers,
            progress=lambda _done, position: progress.update(task, completed=position),
        )
    status = views.status()
    if as_json:
        render.emit_json({"applied": applied, **status})
        return
    click.echo(f"rebuilt the views from {applied} events; position {status['position']}")


@projections.command("status")
@json_option
@pass_session
def projections_status(session: Session, as_json: bool) -> None:
    """The views' tracked position, the ledger's head, and how far behind they are."""
    status = session.open().views.status()
    if as_json:
        render.emit_json(status)
        return
    click.echo(
        f"views at position {status['position']} of {status['head']} ({status['lag']} behind)"
    )
