"""The measured workloads, each run by `bench.worker` in a process of its own.

A workload takes a dict of arguments and returns `{"samples": {name: [values]}, "info": {...}}`;
the orchestrator takes medians and adds the process's peak RSS.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from bench import stores, synth
from bench.common import config, now, rss_kib, store_config
from domain.codec import decode_entry
from domain.ledger.application import Ledger
from domain.ledger.db import SqliteDb, views_path
from projections.root import OncoLedger
from projections.views import PATIENT_COLUMNS

Result = dict[str, Any]
ACTOR = "bench"


def _result(samples: dict[str, list[float]], **info: Any) -> Result:
    return {"samples": samples, "info": info}


# -- building -----------------------------------------------------------------------------------


def build(a: dict[str, Any]) -> Result:
    built = stores.build_series(a["dir"], a["sizes"], a["mean_events"])
    return _result({}, stores=built)


def build_http_store(a: dict[str, Any]) -> Result:
    """A store of patients in follow-up (no deaths), views current, and a clinician's token;
    with `long_patients`, that many more patients of `long_events` events each. On PostgreSQL
    when the arguments name a `database_url`."""
    cfg = store_config(a)
    events = stores.build_store(cfg, a["patients"], a["mean_events"], deaths=False)
    long = [f"LONG-{i:03d}" for i in range(a.get("long_patients", 0))]
    if long:
        rng = random.Random(1001)
        ledger = Ledger(cfg)
        try:
            events += stores.record_patients(
                ledger,
                (
                    (pid, synth.patient_events(rng, pid, a["long_events"], deaths=False))
                    for pid in long
                ),
            )
        finally:
            ledger.close()
    with OncoLedger(cfg) as ol:
        ol.views.rebuild()
        token = _make_token(ol)
    patients = [synth.patient_id(i, "H") for i in range(a["patients"])]
    return _result({}, events=events, patients=patients, long_patients=long, token=token)


def _make_token(ol: OncoLedger) -> str | None:
    """A clinician token through the product's TokenStore, if the API's auth exists yet."""
    try:
        from domain.ledger.tokens import TokenStore
    except ImportError:
        return None
    store = TokenStore.open(ol.config)
    try:
        return store.create(f"bench-{uuid.uuid4().hex[:8]}", role="clinician")
    finally:
        store.close()


def write_import_file(a: dict[str, Any]) -> Result:
    written = stores.write_import_file(a["path"], a["events"])
    return _result({}, events=written, bytes=os.path.getsize(a["path"]))


# -- rebuild ------------------------------------------------------------------------------------


def rebuild(a: dict[str, Any]) -> Result:
    """`views.rebuild()` over the whole store, `reps` times."""
    rates, seconds = [], []
    with OncoLedger(config(a["path"])) as ol:
        before = rss_kib()
        for _ in range(a["reps"]):
            start = now()
            applied = ol.views.rebuild()
            took = now() - start
            rates.append(applied / took)
            seconds.append(took)
    return _result({"rate": rates, "seconds": seconds}, events=applied, rss_before_kib=before)


def raw_scan(a: dict[str, Any]) -> Result:
    """Baseline: every stored event read in recording order, 1,000 rows at a time."""
    rates, seconds = [], []
    conn = sqlite3.connect(a["path"])
    before = rss_kib()
    for _ in range(a["reps"]):
        start = now()
        rows = 0
        cur = conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY rowid"
        )
        while batch := cur.fetchmany(1000):
            rows += len(batch)
        took = now() - start
        rates.append(rows / took)
        seconds.append(took)
    conn.close()
    return _result({"rate": rates, "seconds": seconds}, events=rows, rss_before_kib=before)


# -- load one patient ---------------------------------------------------------------------------


def load(a: dict[str, Any]) -> Result:
    path, pid = a["path"], a["patient_id"]
    cfg = config(path)
    cold, construct = [], []
    for _ in range(a["cold_reps"]):
        start = now()
        ledger = Ledger(cfg)
        middle = now()
        patient = ledger.load(pid)
        cold.append((now() - middle) * 1000)
        construct.append((middle - start) * 1000)
        ledger.close()
    events = patient.version
    ledger = Ledger(cfg)
    ledger.load(pid)
    warm = _repeat(lambda: ledger.load(pid), a["warm_reps"])
    history = _repeat(lambda: ledger.history(pid), a["warm_reps"])

    conn = sqlite3.connect(path)
    sql = (
        "SELECT originator_version, topic, state FROM stored_events "
        "WHERE originator_id = ? ORDER BY originator_version"
    )
    raw = _repeat(lambda: conn.execute(sql, (pid,)).fetchall(), a["warm_reps"])
    from eventsourcing.persistence import StoredEvent

    from domain import events as ev

    decoder = msgspec.json.Decoder(ev.AnyEvent)

    def decode_rows() -> list[Any]:
        # The store is encrypted at rest (the default): each row is opened, then decoded.
        return [
            decoder.decode(ledger.plaintext(StoredEvent(pid, r[0], r[1], r[2])))
            for r in conn.execute(sql, (pid,)).fetchall()
        ]

    raw_decode = _repeat(decode_rows, a["warm_reps"])
    conn.close()
    bodies = [msgspec.json.decode(state) for _, _, state in ledger.scan(pid)]  # type: ignore[arg-type]
    ledger.close()
    plain = _plain_replay(bodies, a["warm_reps"])
    return _result(
        {
            "cold": cold,
            "construct": construct,
            "warm": warm,
            "history": history,
            "raw": raw,
            "raw_decode": raw_decode,
            "plain_replay": plain,
        },
        events=events,
    )


def _repeat(fn: Callable[[], Any], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = now()
        fn()
        times.append((now() - start) * 1000)
    return times


def _plain_replay(bodies: list[Any], reps: int) -> list[float]:
    """Reference: a plain eventsourcing Aggregate of the same bodies, replayed by the library."""
    from bench.plain import PlainApp, plain_env

    pid, n_events = "PLAIN", len(bodies)
    with tempfile.TemporaryDirectory() as tmp:
        app = PlainApp(env=plain_env(os.path.join(tmp, "plain.db")))
        chart = app.new_chart(pid)
        for i in range(0, n_events - 1, 100):
            for body in bodies[i + 1 : i + 101]:
                chart.record(body)
            app.save(chart)
        app.repository.get(chart.id)
        times = _repeat(lambda: app.repository.get(chart.id), reps)
        app.close()
    return times


# -- cohort query -------------------------------------------------------------------------------


def _queries(histology: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "filter 2 columns, sort desc by CTC, 50 rows",
            {
                "filters": {
                    "histology": histology,
                    "stage_group": ["III", "IIIA", "IIIB", "IVA", "IVB"],
                },
                "sort": "-ctc_latest_per_7_5_ml",
                "limit": 50,
            },
        ),
        (
            "same, page 2 (next_cursor)",
            {"filters": {"histology": histology}, "sort": "-ctc_latest_per_7_5_ml", "limit": 50},
        ),
        (
            "range filter + equality, sort asc by OS, 50 rows",
            {
                "filters": {"survival_status": "alive", "os_months_min": 12},
                "sort": "os_months",
                "limit": 50,
            },
        ),
        (
            "no filter, sort desc by last recorded, 100 rows",
            {"sort": "-last_recorded_at", "limit": 100},
        ),
        ("no filter, default sort (patient_id), 50 rows", {"limit": 50}),
        (
            "first shape with total counted (count=True)",
            {
                "filters": {
                    "histology": histology,
                    "stage_group": ["III", "IIIA", "IIIB", "IVA", "IVB"],
                },
                "sort": "-ctc_latest_per_7_5_ml",
                "limit": 50,
                "count": True,
            },
        ),
    ]


def cohort(a: dict[str, Any]) -> Result:
    """`OncoLedger.patients(...)` for several query shapes; baseline: the same SQL, raw."""
    path = a["path"]
    if a.get("synthetic_rows"):
        _populate_cohort(path, a["synthetic_rows"])
    samples: dict[str, list[float]] = {}
    totals: dict[str, int | None] = {}
    with OncoLedger(config(path)) as ol:
        conn = sqlite3.connect(views_path(ol.config))
        statements: dict[str, list[str]] = {}
        assert isinstance(ol.views.db, SqliteDb)  # these workloads run on SQLite
        product = ol.views.db._connection()
        for name, query in _queries("squamous_cell_carcinoma"):
            if "page 2" in name:
                first = ol.patients(**query)
                query = {**query, "cursor": first.next_cursor}
            captured: list[str] = []
            product.set_trace_callback(captured.append)
            page = ol.patients(**query)
            product.set_trace_callback(None)
            totals[name] = page.total
            statements[name] = [
                s for s in captured if s.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")
            ]
            product_ms, raw_ms = [], []
            for _ in range(a["reps"]):
                start = now()
                ol.patients(**query)
                product_ms.append((now() - start) * 1000)
                start = now()
                for sql in statements[name]:
                    conn.execute(sql).fetchall()
                raw_ms.append((now() - start) * 1000)
            samples[f"product:{name}"] = product_ms
            samples[f"raw:{name}"] = raw_ms
        conn.close()
        count = ol.patients(limit=1, count=True).total
    return _result(samples, patients=count, totals=totals, sql=statements)


def _populate_cohort(path: str, n: int) -> None:
    """The cohort index filled with `n` synthetic rows, straight into the view table."""
    OncoLedger(config(path)).close()  # creates the view tables
    columns = PATIENT_COLUMNS
    conn = sqlite3.connect(views_path(config(path)))
    conn.execute("DELETE FROM ol_patients")
    conn.executemany(
        f"INSERT INTO ol_patients ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        stores.cohort_rows(n),
    )
    conn.commit()
    conn.execute("ANALYZE ol_patients")  # as `projections rebuild` leaves the views
    conn.close()


# -- appends in process ---------------------------------------------------------------------------


def append_inproc(a: dict[str, Any]) -> Result:
    """`OncoLedger.append` of one event per call, one thread, to fresh patients in this store."""
    rng = random.Random(uuid.uuid4().int)  # fresh event ids on every run against the same store
    rates, latencies = [], []
    with OncoLedger(config(a["path"])) as ol:
        ol.views.catch_up()
        pids = [f"A{os.getpid()}-{i}" for i in range(a["patients"])]
        for pid in pids:
            bodies = synth.patient_events(rng, pid, 4, deaths=False)
            ol.append(pid, bodies, actor=ACTOR, source="api")
        for _ in range(a["reps"]):
            bodies = [synth.follow_on(rng, pids[i % len(pids)]) for i in range(a["events_per_rep"])]
            start = now()
            for body in bodies:
                t0 = now()
                ol.append(body["patient_id"], [body], actor=ACTOR, source="api")
                latencies.append((now() - t0) * 1000)
            rates.append(len(bodies) / (now() - start))
    return _result({"rate": rates, "latency_ms": latencies})


def save_loop(a: dict[str, Any]) -> Result:
    """Baseline: the library's own save() loop, plain Aggregate + Application on SQLite."""
    from bench.plain import PlainApp, plain_env

    rng = random.Random(5)
    app = PlainApp(env=plain_env(a["path"]))
    charts = [app.new_chart(f"S{i}") for i in range(a["patients"])]
    app.save(*charts)
    rates = []
    for _ in range(a["reps"]):
        bodies = [synth.follow_on(rng, "S") for _ in range(a["events_per_rep"])]
        start = now()
        for i, body in enumerate(bodies):
            chart = charts[i % len(charts)]
            chart.record(body)
            app.save(chart)
        rates.append(len(bodies) / (now() - start))
    app.close()
    return _result({"rate": rates})


# -- import -------------------------------------------------------------------------------------


def import_inproc(a: dict[str, Any]) -> Result:
    """`OncoLedger.import_lines` over the file (what `oncoledger import` calls)."""
    with OncoLedger(config(a["path"])) as ol, open(a["file"], "rb") as lines:
        start = now()
        report = ol.import_lines(lines, actor=ACTOR)
        took = now() - start
    return _result(
        {"rate": [report.stored / took], "seconds": [took]},
        stored=report.stored,
        failed=len(report.failed),
        first_failure=report.failed[:1],
    )


def batch_append(a: dict[str, Any]) -> Result:
    """Baseline: the same lines, one `Ledger.append` per patient with all its events, no views."""
    groups: dict[str, list[Any]] = {}
    with open(a["file"], "rb") as lines:
        for line in lines:
            data = msgspec.json.decode(line)
            groups.setdefault(data["patient_id"], []).append(data)
    ledger = Ledger(config(a["path"]))
    start = now()
    stored = 0
    for pid, bodies in groups.items():
        receipts = ledger.append(
            pid, [decode_entry(b) for b in bodies], actor=ACTOR, source="import"
        )
        stored += len(receipts)
    took = now() - start
    ledger.close()
    return _result({"rate": [stored / took], "seconds": [took]}, stored=stored)


WORKLOADS: dict[str, Callable[[dict[str, Any]], Result]] = {
    "build": build,
    "build_http_store": build_http_store,
    "write_import_file": write_import_file,
    "rebuild": rebuild,
    "raw_scan": raw_scan,
    "load": load,
    "cohort": cohort,
    "append_inproc": append_inproc,
    "save_loop": save_loop,
    "import_inproc": import_inproc,
    "batch_append": batch_append,
}
