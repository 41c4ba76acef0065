"""The cohort-query rows over synthetic rows, and the import rows (`python -m bench` calls
them, as it calls `bench.http_rows` and `bench.scale_rows`)."""

from __future__ import annotations

import sys

import msgspec

from bench import procs
from bench.common import median
from bench.http_rows import Run
from bench.report import Figure


def cohort_synthetic(bench: Run) -> None:
    rows = bench.plan.cohort_rows
    path = str(bench.work / "cohort.db")
    child = procs.worker(
        "cohort", {"path": path, "reps": bench.plan.cohort_reps, "synthetic_rows": rows}
    )
    samples, info = child.result["samples"], child.result["info"]
    data = f"{rows:,} patients (synthetic rows)"
    first = True
    for key in samples:
        if not key.startswith("product:"):
            continue
        name = key.split(":", 1)[1]
        base = bench.add(
            Figure(
                section="Cohort query",
                label=f"raw SQL, same statements ({name})",
                data=data,
                value=median(samples["raw:" + name]),
                unit="ms",
                runs=len(samples["raw:" + name]),
                rss_kib=None,
                higher_is_better=False,
            )
        )
        bench.add(
            Figure(
                section="Cohort query",
                label=f"OncoLedger.patients: {name}",
                data=data,
                value=median(samples[key]),
                unit="ms",
                runs=len(samples[key]),
                rss_kib=child.max_rss_kib,
                higher_is_better=False,
                baseline=base,
                target=("≤ 20 ms", 20.0),
                headline=first or median(samples[key]) > 20,
                extra=_matching(info["totals"].get(name)),
            )
        )
        first = False
    statements = info["sql"]
    bench.notes.append(
        "Cohort SQL issued by `OncoLedger.patients` (captured with sqlite3's trace callback, "
        "replayed verbatim by the baseline): "
        + " | ".join(f"`{s}`" for s in next(iter(statements.values())))
    )


def import_(bench: Run) -> None:
    n = bench.plan.import_events
    file = str(bench.work / "import.jsonl")
    made = procs.worker("write_import_file", {"path": file, "events": n})
    info = made.result["info"]
    data = f"{info['events']:,} events, JSONL of {info['bytes'] / 1e6:.1f} MB"
    rates, rss, via = [], 0, "oncoledger import (CLI subprocess)"
    for rep in range(bench.plan.import_reps):
        db = str(bench.work / f"import-{rep}.db")
        child = procs.run(
            [
                sys.executable,
                "-c",
                "from cli.main import main; main()",
                "--db",
                db,
                "--actor",
                "bench",
                "import",
                file,
                "--json",
            ]
        )
        stored = None
        if child.returncode == 0:
            try:
                stored = int(msgspec.json.decode(child.stdout)["stored"])
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                stored = None
        if stored is None:
            bench.notes.append(
                f"`oncoledger import` did not run (exit {child.returncode}: "
                f"{child.stderr.strip().splitlines()[-1:] or ''}); measured "
                "`OncoLedger.import_lines` in-process instead."
            )
            via = "OncoLedger.import_lines (in-process; the CLI did not run)"
            fallback = procs.worker("import_inproc", {"path": db + ".inproc", "file": file})
            rates.append(fallback.result["samples"]["rate"][0])
            rss = max(rss, fallback.max_rss_kib)
        else:
            rates.append(stored / child.seconds)
            rss = max(rss, child.max_rss_kib)
    base_child = procs.worker(
        "batch_append", {"path": str(bench.work / "import-base.db"), "file": file}
    )
    base = bench.add(
        Figure(
            section="Import",
            label="one Ledger.append per patient with all its events (no views)",
            data=data,
            value=base_child.result["samples"]["rate"][0],
            unit="events/s",
            runs=1,
            rss_kib=base_child.max_rss_kib,
        )
    )
    bench.add(
        Figure(
            section="Import",
            label=via,
            data=data,
            value=median(rates),
            unit="events/s",
            runs=len(rates),
            rss_kib=rss,
            baseline=base,
            headline=True,
            extra="wall time of the whole command, interpreter start and final catch-up included",
        )
    )


def _matching(total: int | None) -> str:
    return "total not counted" if total is None else f"{total:,} matching"
