"""`python -m bench [--quick] [--out FILE]`: build the data, run every workload, write the table.

The full run builds stores of 1k, 10k and 100k patients (about 10k, 100k and 1M events) and
takes four to fifteen minutes on a 2-core machine (four on a quiet one); `--quick` builds two small
stores and fewer rounds, about two minutes. Every workload runs in a child process of its own,
several times, with its baseline measured in the same run (see `bench.workloads`). The HTTP
rows are in `bench.http_rows`, the restart, disk and PostgreSQL rows in `bench.scale_rows`
(PostgreSQL only when ONCOLEDGER_BENCH_DATABASE_URL or ONCOLEDGER_TEST_DATABASE_URL is set).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import http_rows, machine, procs, query_rows, report, scale_rows
from bench.common import median
from bench.report import Figure
from bench.stores import BIG_PATIENT


@dataclass(frozen=True)
class Plan:
    name: str
    sizes: tuple[int, ...]  # patients per store of the scale curves; the largest is the main one
    mean_events: int
    rebuild_reps: tuple[int, ...]  # per size
    scan_reps: int
    load_cold: int
    load_warm: int
    cohort_rows: int
    cohort_reps: int
    append_events: int  # per rep, in-process append curve
    append_reps: int
    import_events: int
    import_reps: int
    http_patients: int
    http_clients: int
    http_events: int  # per rep, API
    http_reps: int
    http_shared: bool  # also the 8-shared-patients contention round
    bare_events: int
    save_events: int
    http_long_events: int  # per rep, API on patients of 1,000-event histories
    http_long_patients: int  # how many such patients (one client each)
    restart_reps: int  # first write after a restart: new processes per patient
    pg_reps: int  # rounds of http_events: serve --workers 1 / 2 on PostgreSQL, --no-projector
    pg_patients: int  # patients of the PostgreSQL store

    @classmethod
    def full(cls) -> Plan:
        return cls(
            name="full",
            sizes=(1_000, 10_000, 100_000),
            mean_events=10,
            rebuild_reps=(3, 2, 1),
            scan_reps=3,
            load_cold=10,
            load_warm=30,
            cohort_rows=100_000,
            cohort_reps=15,
            append_events=300,
            append_reps=3,
            import_events=100_000,
            import_reps=1,
            http_patients=1024,
            http_clients=32,
            http_events=1600,
            http_reps=3,
            http_shared=True,
            bare_events=8000,
            save_events=3000,
            http_long_events=640,
            http_long_patients=32,
            restart_reps=7,
            pg_reps=3,
            pg_patients=1024,
        )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            name="quick",
            sizes=(500, 2_000),
            mean_events=10,
            rebuild_reps=(2, 2),
            scan_reps=3,
            load_cold=5,
            load_warm=10,
            cohort_rows=20_000,
            cohort_reps=5,
            append_events=100,
            append_reps=2,
            import_events=5_000,
            import_reps=1,
            http_patients=256,
            http_clients=32,
            http_events=256,
            http_reps=2,
            http_shared=False,
            bare_events=2000,
            save_events=1000,
            http_long_events=64,
            http_long_patients=8,
            restart_reps=3,
            pg_reps=1,
            pg_patients=64,
        )


@dataclass
class Bench:
    plan: Plan
    work: Path
    figures: list[Figure] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    loads: list[float] = field(default_factory=list)  # 1-minute load average at each step

    # -- plumbing ---------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        self.loads.append(os.getloadavg()[0])
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def step(self, name: str, fn: Callable[[], None]) -> None:
        self.log(name)
        try:
            fn()
        except Exception as exc:  # one failing workload must not lose the others' figures
            self.log(f"  FAILED: {exc}")
            traceback.print_exc(file=sys.stderr)
            first = str(exc).strip().splitlines()
            self.failures.append(f"{name}: {first[0] if first else type(exc).__name__}")

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        self.log(f"  {figure.label} [{figure.data}]: {figure.display()}")
        return figure

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> None:
        stores: list[dict[str, Any]] = []

        def build() -> None:
            child = procs.worker(
                "build",
                {
                    "dir": str(self.work),
                    "sizes": list(self.plan.sizes),
                    "mean_events": self.plan.mean_events,
                },
            )
            stores.extend(child.result["info"]["stores"])
            for s in stores:
                self.notes.append(
                    f"Store of {s['patients']:,} patients: {s['events']:,} events generated at "
                    f"{s['generate_rate']:,.0f} events/s ({s['generate_seconds']:.1f} s in all), "
                    f"plus the {BIG_PATIENT} patient (1,000 events)."
                )

        self.step("building stores", build)
        for i, store in enumerate(stores):
            curve: dict[str, Any] = {
                "patients": store["patients"] + 1,  # with the 1,000-event patient
                "events": store["events"] + 1000,
            }
            self.curves.append(curve)
            main = i == len(stores) - 1
            reps = self.plan.rebuild_reps[i]
            self.step(
                f"rebuild over {store['events']:,} events",
                partial(self.rebuild, store, curve, reps, main),
            )
            self.step(
                f"cohort on real views of {store['patients']:,} patients",
                partial(self.cohort_real, store, curve),
            )
            self.step(
                f"load in a store of {store['events']:,} events",
                partial(self.load, store, curve, main),
            )
            if main:
                self.step(
                    f"disk use of a store of {store['events']:,} events",
                    partial(scale_rows.disk, self, store),
                )
            self.step(
                f"in-process append, store of {store['events']:,} events",
                partial(self.append_curve, store, curve),
            )
        if stores:
            self.step(
                "first write after a restart",
                partial(scale_rows.first_write, self, stores[-1]),
            )
        self.step("cohort over synthetic rows", lambda: query_rows.cohort_synthetic(self))
        self.step("import", lambda: query_rows.import_(self))
        self.step("append over HTTP", lambda: http_rows.http(self))
        self.step(
            "serve --workers 1 and 2 on PostgreSQL", lambda: scale_rows.postgres_workers(self)
        )

    # -- workloads ------------------------------------------------------------------------------

    def rebuild(self, store: dict[str, Any], curve: dict[str, Any], reps: int, main: bool) -> None:
        data = f"{store['events'] + 1000:,} events, {store['patients'] + 1:,} patients"
        scan = procs.worker("raw_scan", {"path": store["path"], "reps": self.plan.scan_reps})
        base = Figure(
            section="Rebuild all projections",
            label="raw scan: SELECT over stored_events (sqlite3, 1,000 rows a fetch)",
            data=data,
            value=median(scan.result["samples"]["rate"]),
            unit="events/s",
            runs=len(scan.result["samples"]["rate"]),
            rss_kib=scan.max_rss_kib,
        )
        child = procs.worker("rebuild", {"path": store["path"], "reps": reps})
        samples = child.result["samples"]
        fig = Figure(
            section="Rebuild all projections",
            label="views.rebuild()",
            data=data,
            value=median(samples["rate"]),
            unit="events/s",
            runs=len(samples["rate"]),
            rss_kib=child.max_rss_kib,
            baseline=base,
            target=("≥ 50,000 events/s", 50_000.0),
            headline=main,
            extra=f"{median(samples['seconds']):.1f} s per rebuild",
        )
        self.add(base)
        self.add(fig)
        curve["rebuild_rate"] = fig.value
        curve["rebuild_seconds"] = median(samples["seconds"])
        curve["rebuild_rss_kib"] = child.max_rss_kib
        curve["scan_rate"] = base.value

    def cohort_real(self, store: dict[str, Any], curve: dict[str, Any]) -> None:
        child = procs.worker("cohort", {"path": store["path"], "reps": self.plan.cohort_reps})
        samples = child.result["samples"]
        name = next(k for k in samples if k.startswith("product:"))
        curve["cohort_ms"] = median(samples[name])
        curve["cohort_raw_ms"] = median(samples["raw:" + name.split(":", 1)[1]])
        curve["cohort_worst_ms"] = max(
            median(v) for k, v in samples.items() if k.startswith("product:")
        )

    def load(self, store: dict[str, Any], curve: dict[str, Any], main: bool) -> None:
        data = f"{BIG_PATIENT} (1,000 events) in a store of {store['events'] + 1000:,} events"
        child = procs.worker(
            "load",
            {
                "path": store["path"],
                "patient_id": BIG_PATIENT,
                "cold_reps": self.plan.load_cold,
                "warm_reps": self.plan.load_warm,
            },
        )
        s = child.result["samples"]
        curve["load_cold_ms"] = median(s["cold"])
        curve["load_warm_ms"] = median(s["warm"])
        if not main:
            return
        section = "Load one patient of 1,000 events"

        def fig(label: str, key: str, **kw: Any) -> Figure:
            return Figure(
                section=section,
                label=label,
                data=data,
                value=median(s[key]),
                unit="ms",
                runs=len(s[key]),
                rss_kib=child.max_rss_kib,
                higher_is_better=False,
                **kw,
            )

        raw = self.add(fig("raw SQL: sqlite3 SELECT of the patient's stored_events rows", "raw"))
        self.add(
            fig(
                "raw SQL + decrypt + msgspec decode of every row to the event Structs",
                "raw_decode",
            )
        )
        self.add(
            fig(
                "plain eventsourcing Aggregate replay (repository.get, default transcoder)",
                "plain_replay",
            )
        )
        target = ("≤ 5 ms", 5.0)
        self.add(
            fig(
                "Ledger.load, cold (first load on a new Ledger instance)",
                "cold",
                baseline=raw,
                target=target,
                headline=True,
                extra=f"new Ledger() itself: {median(s['construct']):.1f} ms",
            )
        )
        self.add(
            fig(
                "Ledger.load, warm (same instance, repeated)",
                "warm",
                baseline=raw,
                target=target,
                headline=True,
            )
        )
        self.add(fig("Ledger.history, warm", "history", baseline=raw, target=target))

    def append_curve(self, store: dict[str, Any], curve: dict[str, Any]) -> None:
        child = procs.worker(
            "append_inproc",
            {
                "path": store["path"],
                "reps": self.plan.append_reps,
                "events_per_rep": self.plan.append_events,
                "patients": 32,
            },
        )
        curve["append_rate"] = median(child.result["samples"]["rate"])
        curve["append_ms"] = median(child.result["samples"]["latency_ms"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick", action="store_true", help="two small stores, fewer rounds, about two minutes"
    )
    parser.add_argument(
        "--out",
        help="Markdown file to write (default: BENCHMARKS.md for a full run; a quick run prints "
        "to stdout unless --out is given)",
    )
    parser.add_argument(
        "--sizes",
        help="patients per store of the scale curves, comma-separated (largest = main store; "
        "default 1000,10000,100000, quick 500,2000)",
    )
    parser.add_argument("--import-events", type=int, help="events in the import file")
    parser.add_argument("--workdir", help="where stores are built (default: a temporary dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()
    if args.sizes:
        sizes = tuple(sorted(int(x) for x in args.sizes.split(",")))
        first, last = plan.rebuild_reps[0], plan.rebuild_reps[-1]
        plan = replace(plan, sizes=sizes, rebuild_reps=(first,) * (len(sizes) - 1) + (last,))
    if args.import_events:
        plan = replace(plan, import_events=args.import_events)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="oncoledger-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    command = "python -m bench" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    bench = Bench(plan, work)
    bench.log(f"{plan.name} run in {work}")
    started = datetime.now(UTC)
    try:
        bench.run()
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - bench.started
    text = report.render(
        plan_name=plan.name,
        command=command,
        started=started,
        seconds=seconds,
        machine=machine.describe(procs.ROOT)
        | {
            "Load average (1 min) during the run": f"{min(bench.loads):.1f} to "
            f"{max(bench.loads):.1f} (2 cores; other processes shared the machine when above ~1)"
        },
        figures=bench.figures,
        curves=bench.curves,
        notes=bench.notes,
        failures=bench.failures,
        quick=args.quick,
    )
    out = args.out or (None if args.quick else "BENCHMARKS.md")
    if out is None:
        sys.stdout.write(text)
    else:
        path = Path(out)
        path.write_text(report.keep_notes(text, path))
        bench.log(f"wrote {path}")
    bench.log(f"done in {seconds:.0f} s")
