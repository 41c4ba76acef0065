"""Rows of issue 11 beyond one HTTP process: the first write after a restart to a long history,
the views' size on disk against the event store's, and `oncoledger serve --workers 2` against
`--workers 1` on PostgreSQL (with every process's CPU time, so the ratio can be read)."""

from __future__ import annotations

import base64
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from bench import cpu, procs
from bench.common import median
from bench.http_rows import SECTION as HTTP_SECTION
from bench.http_rows import Run, catch_up, cpu_text, latency, load_round
from bench.report import Figure
from bench.stores import BIG_PATIENT

PG_ENV = ("ONCOLEDGER_BENCH_DATABASE_URL", "ONCOLEDGER_TEST_DATABASE_URL")


def first_write(bench: Run, store: dict[str, Any]) -> None:
    """A new process and a new `OncoLedger`, then one append: to the 1,000-event patient and to
    a 10-event patient of the same store, alternately."""
    path = store["path"]
    conn = sqlite3.connect(path)
    row = conn.execute(
        # A patient the store was generated with (P...), not one a workload added.
        "SELECT originator_id FROM stored_events WHERE originator_id LIKE 'P%' "
        "GROUP BY originator_id HAVING COUNT(*) = 10 LIMIT 1"
    ).fetchone()
    conn.close()
    if row is None:
        raise procs.ChildFailed("no patient of 10 events in the store")
    small = str(row[0])
    samples: dict[str, list[float]] = {"big": [], "small": [], "open": []}
    for _ in range(bench.plan.restart_reps):
        for key, pid in (("big", BIG_PATIENT), ("small", small)):
            child = procs.worker("first_write", {"path": path, "patient_id": pid})
            samples[key] += child.result["samples"]["append_ms"]
            samples["open"] += child.result["samples"]["open_ms"]
    section = "First write after a restart"
    data = f"a store of {store['events'] + 1000:,} events, a new process per write"
    small_fig = bench.add(
        Figure(
            section=section,
            label=f"first append to a 10-event patient ({small})",
            data=data,
            value=median(samples["small"]),
            unit="ms",
            runs=len(samples["small"]),
            rss_kib=None,
            higher_is_better=False,
        )
    )
    bench.add(
        Figure(
            section=section,
            label=f"first append to the 1,000-event patient ({BIG_PATIENT})",
            data=data,
            value=median(samples["big"]),
            unit="ms",
            runs=len(samples["big"]),
            rss_kib=None,
            higher_is_better=False,
            baseline=small_fig,
        )
    )
    bench.add(
        Figure(
            section=section,
            label="difference: 1,000-event patient minus 10-event patient",
            data=data,
            value=median(samples["big"]) - median(samples["small"]),
            unit="ms",
            runs=len(samples["big"]),
            rss_kib=None,
            higher_is_better=False,
            target=("≤ +5 ms", 5.0),
            headline=True,
            extra=f"OncoLedger(config) itself before it: {median(samples['open']):.0f} ms "
            "(the same for both)",
        )
    )


def disk(bench: Run, store: dict[str, Any]) -> None:
    """Views on disk ÷ event store on disk, both files after a checkpoint."""
    child = procs.worker("disk_sizes", {"path": store["path"]})
    sizes = child.result["info"]["sizes"]
    section = "Disk"
    data = f"{store['events'] + 1000:,} events, encrypted at rest, after views.rebuild()"
    events = bench.add(
        Figure(
            section=section,
            label="event store (the .db file)",
            data=data,
            value=sizes["events"]["file"] / 1e6,
            unit="MB",
            runs=1,
            rss_kib=None,
            higher_is_better=False,
            extra=f"pages in use {sizes['events']['used'] / 1e6:,.0f} MB",
        )
    )
    bench.add(
        Figure(
            section=section,
            label="views (the .db.views file)",
            data=data,
            value=sizes["views"]["file"] / 1e6,
            unit="MB",
            runs=1,
            rss_kib=None,
            higher_is_better=False,
            baseline=events,
            target=("≤ 1\u00d7 the event store", float("inf")),
            ratio_max=1.0,
            headline=True,
            extra=f"pages in use {sizes['views']['used'] / 1e6:,.0f} MB",
        )
    )


def postgres_url() -> str | None:
    return next((os.environ[n] for n in PG_ENV if os.environ.get(n)), None)


def listening(port: int) -> int:
    """How many sockets listen on TCP `port` here (one per `serve` worker on Linux, each having
    a SO_REUSEPORT socket of its own: see `cli.serve`)."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def _tracker(pid: int) -> bool:
    """Whether `pid` is multiprocessing's resource tracker (a child of uvicorn's supervisor
    beside the workers)."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def wait_listening(port: int, workers: int, timeout: float = 180.0) -> None:
    """Until every worker listens: the server answers /health as soon as its first worker does,
    and connections made before the others listen would all be the first one's."""
    deadline = time.monotonic() + timeout
    while listening(port) < workers:
        if time.monotonic() > deadline:
            raise procs.ChildFailed(f"{workers} workers did not all listen within {timeout:.0f} s")
        time.sleep(0.1)


def per_event(rounds: list[dict[str, Any]]) -> str:
    """The CPU every process spent per stored event, summed over the processes (the servers'
    workers, their PostgreSQL backends and the client): on a machine of `cores` cores, no
    arrangement of processes appends faster than cores / that."""
    costs = [sum(r["cpu"].values()) / max(r["stored"], 1) for r in rounds]
    cores = os.cpu_count() or 1
    cost = median(costs)
    return (
        f"CPU per stored event, all processes: {cost * 1000:.2f} ms "
        f"(at most {cores / cost:,.0f}/s on this machine's {cores} cores)"
    )


def postgres_workers(bench: Run) -> None:
    """`oncoledger serve --workers 2` against `--workers 1` on one PostgreSQL database, each
    round on a server started for it, the two alternated (a schema that grows, a machine whose
    other load changes, weigh on both alike). uvicorn's line per request is off, as in the
    other HTTP rows (`--no-access-log`)."""
    url = postgres_url()
    if url is None:
        reason = (
            "PostgreSQL rows skipped: set ONCOLEDGER_BENCH_DATABASE_URL (or "
            "ONCOLEDGER_TEST_DATABASE_URL) to a server the run may make a schema in"
        )
        bench.log(reason)
        bench.notes.append(reason)
        return
    import psycopg

    plan = bench.plan
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    key = base64.b64encode(os.urandom(32)).decode()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        store = {"database_url": url, "schema": schema, "cipher_key": key}
        built = procs.worker(
            "build_http_store",
            store | {"patients": plan.pg_patients, "mean_events": plan.mean_events},
        )
        info = built.result["info"]
        token, patients = info["token"], info["patients"]
        env = {
            "ONCOLEDGER_DATABASE_URL": url,
            "ONCOLEDGER_DATABASE_SCHEMA": schema,
            "ONCOLEDGER_CIPHER_KEY": key,
        }
        data = (
            f"{plan.http_clients} clients, {plan.pg_patients:,} patients "
            f"({info['events']:,} events), PostgreSQL on this machine, encrypted"
        )
        rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        rss: dict[int, int] = {1: 0, 2: 0}
        for _ in range(plan.pg_reps):
            for workers in (1, 2):
                app = f"oncoledger-bench-{schema}-{workers}"
                args = ["--workers", str(workers), "--reuse-port", "--no-access-log"]
                with procs.Server(
                    "oncoledger serve", env | {"PGAPPNAME": app}, serve_args=args
                ) as api:
                    wait_listening(api.port, workers)
                    catch_up(api.url, token)

                    def watch(pid: int = api.pid, app: str = app) -> cpu.Groups:
                        # Each worker process on its own (an uneven share of the connections
                        # would show), then their PostgreSQL backends.
                        found = [p for p in cpu.children(pid) if not _tracker(p)] or [pid]
                        groups = {f"worker {i + 1}": [p] for i, p in enumerate(found)}
                        return groups | {"postgres backends": cpu.backends(url, app)}

                    # Uncounted: the workers' first reads of the patients they write.
                    load_round(bench, api.url, token, patients, plan.http_events // 4)
                    catch_up(api.url, token)
                    measured = load_round(
                        bench, api.url, token, patients, plan.http_events, watch=watch
                    )
                    measured["lag"], measured["catch_up"] = catch_up(api.url, token)
                    rounds[workers].append(measured)
                rss[workers] = max(rss[workers], api.max_rss_kib)
        figures: dict[int, Figure] = {}
        for workers in (1, 2):
            done = rounds[workers]
            sustained = median([r["stored"] / (r["seconds"] + r["catch_up"]) for r in done])
            figures[workers] = bench.add(
                Figure(
                    section=HTTP_SECTION + " on PostgreSQL",
                    label=f"OncoLedger API, `oncoledger serve --workers {workers}` "
                    "(a projector embedded in each worker, one active at a time)",
                    data=data,
                    value=median([r["rate"] for r in done]),
                    unit="events/s",
                    runs=len(done),
                    rss_kib=rss[workers] or None,
                    baseline=figures.get(1),
                    target=("≥ 1.2\u00d7 one worker", 0.0) if workers > 1 else None,
                    ratio_target=1.2 if workers > 1 else None,
                    headline=workers > 1,
                    extra=f"{latency(done)}; projector lag when the load stopped "
                    f"{median([r['lag'] for r in done]):,.0f} events, caught up "
                    f"{median([r['catch_up'] for r in done]):.2f} s later (load and catch-up "
                    f"together: {sustained:,.0f} events/s); {cpu_text(done)}; "
                    f"{per_event(done)}",
                )
            )
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
