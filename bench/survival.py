"""`python -m bench.survival`: cohort survival (issue 15) at scale, printed as BENCHMARKS.md rows.

Two stores:
- **index rows**: `--patients` (default 100,000) synthetic rows written straight into the
  cohort index and the survival rows (`ol_patients`, `ol_survival`), as the views would hold
  them; measures the current-data path (it reads only those two tables) in process and over
  HTTP (Litestar's in-process test client: routing, token check, encoding; no socket).
- **real patients**: `--real` (default 2,000) patients recorded with `demo --cohort`; measures
  the recomputing paths (`landmark`, `as_of`), which read each patient's events from the views.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from bench import stores
from bench.common import config, max_rss_kib, median, now
from bench.workloads import _repeat
from domain.ledger.db import views_path
from projections.root import OncoLedger
from projections.survival_subjects import COLUMNS as SURVIVAL_COLUMNS
from projections.survival_subjects import TABLE as SURVIVAL_TABLE
from projections.views import PATIENT_COLUMNS

# Monthly hazard by CTC trend: the curves differ, as in a real analysis.
_HAZARD = {
    "decreasing": 0.01,
    "stable": 0.02,
    "increasing": 0.04,
    "fluctuating": 0.025,
    "insufficient_data": 0.03,
}


def populate(path: str, n: int) -> None:
    OncoLedger(config(path)).close()  # creates the view tables
    rng = random.Random(15)
    patients = stores.cohort_rows(n)
    survival = []
    trend_at = PATIENT_COLUMNS.index("ctc_trend")
    stage_at = PATIENT_COLUMNS.index("stage_group")
    for row in patients:
        diagnosed = row[stage_at] is not None or rng.random() < 0.5
        death = rng.expovariate(_HAZARD[row[trend_at]]) * 30.4375
        follow = rng.uniform(30, 3650)
        survival.append(
            (
                row[0],
                "2018-01-01" if diagnosed else None,
                round(min(death, follow)) if diagnosed else None,
                int(death <= follow),
                int(rng.random() < 0.05),
                row[stage_at],
                rng.choice(("unchanged", "improved", "worsened", "insufficient_data")),
                int(row[trend_at] == "decreasing" and rng.random() < 0.5),
                rng.randint(0, 8),
            )
        )
    conn = sqlite3.connect(views_path(config(path)))
    for table, columns, rows in (
        ("ol_patients", PATIENT_COLUMNS, patients),
        (SURVIVAL_TABLE, SURVIVAL_COLUMNS, survival),
    ):
        conn.execute(f"DELETE FROM {table}")
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows,
        )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def _times(fn: Any, reps: int) -> list[float]:
    fn()  # warm: imports, page cache
    return _repeat(fn, reps)


def index_rows(path: str, n: int, reps: int) -> dict[str, Any]:
    from litestar.testing import TestClient

    from api.app import create_app

    populate(path, n)
    results: dict[str, Any] = {}
    with OncoLedger(config(path)) as ol:
        shapes = {
            "KM + log-rank + pairwise, by ctc_trend (5 groups)": {"by": "ctc_trend"},
            "same, by stage_group (11 groups, 55 pairs)": {"by": "stage_group"},
            "same, filtered (histology = squamous_cell_carcinoma)": {
                "by": "ctc_trend",
                "filters": {"histology": "squamous_cell_carcinoma"},
            },
        }
        for name, query in shapes.items():
            results[name] = _times(lambda q=query: ol.cohort_survival(with_cox=False, **q), reps)
        results["with the stage-adjusted Cox model and PH test, by ctc_trend"] = _times(
            lambda: ol.cohort_survival(by="ctc_trend"), max(2, reps // 3)
        )
        report = ol.cohort_survival(by="ctc_trend", with_cox=False).report
        size = len(msgspec.json.encode(report))
        token = ol.tokens.create("bench-reader", "reader")
    with TestClient(create_app(config(path))) as client:
        headers = {"Authorization": f"Bearer {token}"}

        def http() -> None:
            response = client.get("/api/v1/cohort/survival?by=ctc_trend&cox=false", headers=headers)
            assert response.status_code == 200, response.text

        results["HTTP GET /api/v1/cohort/survival?by=ctc_trend&cox=false"] = _times(http, reps)
    return {"samples": results, "analysed": report.patients.analysed, "bytes": size}


def real_patients(path: str, n: int, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with OncoLedger(config(path)) as ol:
        start = now()
        ol.record_demo_cohort(n, actor="bench")
        record_s = now() - start
        as_of = ol.history(f"SYN-{n // 2:05d}")[-1].recorded_at
        results["current data (stored rows), by ctc_trend, no Cox"] = _times(
            lambda: ol.cohort_survival(by="ctc_trend", with_cox=False), reps
        )
        results["landmark 6 months (recomputed from the views' events), no Cox"] = _times(
            lambda: ol.cohort_survival(by="ctc_trend", landmark_months=6, with_cox=False),
            max(2, reps // 3),
        )
        results["as_of half-way through recording (recomputed), no Cox"] = _times(
            lambda: ol.cohort_survival(by="ctc_trend", as_of=as_of, with_cox=False),
            max(2, reps // 3),
        )
    return {"samples": results, "record_s": record_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        rows = index_rows(str(Path(work) / "rows.db"), args.patients, args.reps)
        real = real_patients(str(Path(work) / "real.db"), args.real, args.reps)
    print("| Workload | Figure | Data | Median | Runs |")
    print("| --- | --- | --- | ---: | ---: |")
    sets = (
        (rows, f"{args.patients:,} patients (index rows), {rows['analysed']:,} analysed"),
        (real, f"{args.real:,} patients recorded with demo --cohort"),
    )
    for result, data in sets:
        for name, samples in result["samples"].items():
            value = f"**{median(samples):,.0f} ms**"
            print(f"| Cohort survival | {name} | {data} | {value} | {len(samples)} |")
    print(
        f"\nresponse body (by ctc_trend, no Cox): {rows['bytes'] / 1e6:.2f} MB; recording "
        f"{args.real:,} patients took {real['record_s']:.1f} s; peak RSS "
        f"{max_rss_kib() / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
