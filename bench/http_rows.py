"""The "Append over HTTP" rows: the library's save() loop and a bare endpoint as baselines, the
API with its projector embedded (the default) on fresh patients and on patients with 1,000-event
histories, and the API with the projector in a process of its own (`serve --no-projector` +
`oncoledger projections run`), with the projector's lag at the end of the load and its time to
catch up. Each HTTP row says its p50/p99 latency and the CPU each process spent."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import msgspec

from bench import cpu, procs
from bench.common import median
from bench.report import Figure

SECTION = "Append over HTTP"


class Run(Protocol):
    """What a row needs of the orchestrator (`bench.run.Bench`)."""

    plan: Any
    work: Any
    notes: list[str]

    def add(self, figure: Figure) -> Figure: ...

    def log(self, message: str) -> None: ...


def load_round(
    bench: Run,
    url: str,
    token: str | None,
    patients: list[str],
    events: int,
    *,
    watch: Callable[[], cpu.Groups] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One measured round of `bench.httpclient`; with `watch` (the processes to watch, by
    group, asked before and after), the CPU each group spent meanwhile, and the client's own,
    under "cpu"."""
    args = {
        "url": url,
        "token": token,
        "clients": bench.plan.http_clients,
        "patients": patients,
        "events": events,
    } | extra
    before = cpu.snapshot(watch() if watch else {})
    child = procs.run(
        [sys.executable, "-m", "bench.httpclient", msgspec.json.encode(args).decode()]
    )
    if child.returncode != 0:
        raise procs.ChildFailed(f"load generator failed:\n{child.stderr[-2000:]}")
    result: dict[str, Any] = msgspec.json.decode(child.stdout.strip().splitlines()[-1])
    if watch:
        after = cpu.snapshot(watch())
        result["cpu"] = cpu.spent(before, after) | {"client": result["cpu_seconds"]}
    if result["stored"] < result["requests"]:
        bench.notes.append(f"{SECTION}: non-2xx answers {result['statuses']}")
    return result


def latency(rounds: list[dict[str, Any]]) -> str:
    return (
        f"p50 {median([r['p50_ms'] for r in rounds]):.0f} ms, "
        f"p99 {median([r['p99_ms'] for r in rounds]):.0f} ms"
    )


def cpu_text(rounds: list[dict[str, Any]]) -> str:
    """The median CPU of each process over the rounds, per measured second of load."""
    names = rounds[0].get("cpu", {}).keys()
    totals = {n: median([r["cpu"][n] for r in rounds]) for n in names}
    return cpu.describe(totals, median([r["seconds"] for r in rounds]))


def status(url: str, token: str | None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{url}/api/v1/projections/status", headers=headers, timeout=30)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def catch_up(url: str, token: str | None, timeout: float = 300.0) -> tuple[int, float]:
    """(lag now, seconds until the views had applied everything recorded by now)."""
    start = time.monotonic()
    first = status(url, token)
    lag, head = first["lag"], first["head"]
    while status(url, token)["position"] < head:
        if time.monotonic() - start > timeout:
            raise procs.ChildFailed(f"the projector did not catch up within {timeout:.0f} s")
        time.sleep(0.02)
    return lag, time.monotonic() - start


def http(bench: Run) -> None:
    plan = bench.plan
    path = str(bench.work / "http.db")
    built = procs.worker(
        "build_http_store",
        {
            "path": path,
            "patients": plan.http_patients,
            "mean_events": plan.mean_events,
            "long_patients": plan.http_long_patients,
            "long_events": 1000,
        },
    )
    info = built.result["info"]
    token, fresh, long = info["token"], info["patients"], info["long_patients"]
    data = (
        f"{plan.http_clients} clients, {plan.http_patients:,} patients "
        f"({info['events']:,} events) in follow-up, SQLite, encrypted"
    )
    save = procs.worker(
        "save_loop",
        {
            "path": str(bench.work / "plain-save.db"),
            "reps": 3,
            "events_per_rep": plan.save_events,
            "patients": plan.http_patients,
        },
    )
    save_fig = bench.add(
        Figure(
            section=SECTION,
            label="library save() loop in-process: plain Aggregate + Application, "
            "1 event per save, 1 thread",
            data=f"{plan.http_patients:,} aggregates, SQLite",
            value=median(save.result["samples"]["rate"]),
            unit="events/s",
            runs=3,
            rss_kib=save.max_rss_kib,
        )
    )
    with procs.Server("bench.apps:create_bare_app") as bare:
        watch = lambda: {"server": [bare.pid]}  # noqa: E731
        rounds = [
            load_round(bench, bare.url, token, fresh, plan.bare_events, watch=watch)
            for _ in range(3)
        ]
    bare_fig = bench.add(
        Figure(
            section=SECTION,
            label="bare Litestar endpoint that stores nothing (same server, same client)",
            data=data,
            value=median([r["rate"] for r in rounds]),
            unit="events/s",
            runs=len(rounds),
            rss_kib=bare.max_rss_kib,
            extra=f"{latency(rounds)}; {cpu_text(rounds)}",
        )
    )
    with procs.Server("bench.apps:create_bare_async_app") as bare_async:
        watch = lambda: {"server": [bare_async.pid]}  # noqa: E731
        rounds = [
            load_round(bench, bare_async.url, token, fresh, plan.bare_events, watch=watch)
            for _ in range(3)
        ]
    bench.add(
        Figure(
            section=SECTION,
            label="bare Litestar endpoint, same, its handler an async def on the event loop "
            "(as the API's single-event append runs)",
            data=data,
            value=median([r["rate"] for r in rounds]),
            unit="events/s",
            runs=len(rounds),
            rss_kib=bare_async.max_rss_kib,
            baseline=bare_fig,
            extra=f"{latency(rounds)}; {cpu_text(rounds)}",
        )
    )
    inproc = procs.worker(
        "append_inproc",
        {
            "path": path,
            "reps": plan.append_reps,
            "events_per_rep": plan.append_events,
            "patients": 32,
        },
    )
    bench.add(
        Figure(
            section=SECTION,
            label="OncoLedger.append in-process (no HTTP), 1 thread",
            data=f"{plan.http_patients:,} patients in follow-up",
            value=median(inproc.result["samples"]["rate"]),
            unit="events/s",
            runs=plan.append_reps,
            rss_kib=inproc.max_rss_kib,
            baseline=save_fig,
            extra=f"p50 {median(inproc.result['samples']['latency_ms']):.1f} ms per append",
        )
    )
    env = {"ONCOLEDGER_DB": path}
    with procs.Server("api.app:create_app", env) as api:
        watch = lambda: {"server (projector thread inside)": [api.pid]}  # noqa: E731
        rounds = [
            load_round(bench, api.url, token, fresh, plan.http_events, watch=watch)
            for _ in range(plan.http_reps)
        ]
        catch_up(api.url, token)
        # One client per long patient: all 32 in the full run; fewer in the quick one, whose
        # fresh-patient baseline then gets a round with as many clients.
        clients = min(plan.http_clients, len(long))
        long_rounds = [
            load_round(
                bench, api.url, token, long, plan.http_long_events, watch=watch, clients=clients
            )
            for _ in range(plan.http_reps)
        ]
        catch_up(api.url, token)
        same_clients = rounds
        if clients < plan.http_clients:
            same_clients = [
                load_round(
                    bench,
                    api.url,
                    token,
                    fresh,
                    plan.http_long_events,
                    watch=watch,
                    clients=clients,
                )
                for _ in range(plan.http_reps)
            ]
        shared = None
        if plan.http_shared:
            shared = load_round(
                bench, api.url, token, fresh[:8], plan.http_events // 2, shared=True
            )
    api_rss = api.max_rss_kib
    value = median([r["rate"] for r in rounds])
    embedded = bench.add(
        Figure(
            section=SECTION,
            label="OncoLedger API: POST /api/v1/patients/{id}/events, each client its own "
            "patients, projector embedded (the default)",
            data=data,
            value=value,
            unit="events/s",
            runs=len(rounds),
            rss_kib=api_rss,
            baseline=save_fig,
            target=("≥ 2,000 events/s and ≥ 0.5\u00d7 save(); p99 ≤ 50 ms", 2000.0),
            ratio_target=0.5,
            p99_ms=median([r["p99_ms"] for r in rounds]),
            p99_max=50.0,
            headline=True,
            extra=f"{latency(rounds)}; {cpu_text(rounds)}",
        )
    )
    bench.add(
        Figure(
            section=SECTION,
            label="OncoLedger API, same, against the bare endpoint",
            data=data,
            value=value,
            unit="events/s",
            runs=len(rounds),
            rss_kib=api_rss,
            baseline=bare_fig,
            target=("≥ 0.25\u00d7 the bare endpoint", 0.0),
            ratio_target=0.25,
            headline=True,
        )
    )
    fresh_base = embedded
    if same_clients is not rounds:
        fresh_base = bench.add(
            Figure(
                section=SECTION,
                label=f"OncoLedger API, same, {clients} clients (the baseline of the next row)",
                data=data.replace(f"{plan.http_clients} clients", f"{clients} clients"),
                value=median([r["rate"] for r in same_clients]),
                unit="events/s",
                runs=len(same_clients),
                rss_kib=api_rss,
                extra=f"{latency(same_clients)}; {cpu_text(same_clients)}",
            )
        )
    bench.add(
        Figure(
            section=SECTION,
            label="OncoLedger API, same, on patients with 1,000-event histories (one per client)",
            data=f"{clients} clients, {len(long)} patients of 1,000+ events, same store",
            value=median([r["rate"] for r in long_rounds]),
            unit="events/s",
            runs=len(long_rounds),
            rss_kib=api_rss,
            baseline=fresh_base,
            target=("≥ 0.8\u00d7 the fresh-patient rate", 0.0),
            ratio_target=0.8,
            headline=True,
            extra=f"{latency(long_rounds)}; {cpu_text(long_rounds)}",
        )
    )
    if shared is not None:
        bench.add(
            Figure(
                section=SECTION,
                label="OncoLedger API, all clients on 8 shared patients (write contention)",
                data=data.replace(f"{plan.http_patients:,} patients", "8 patients"),
                value=shared["rate"],
                unit="events/s",
                runs=1,
                rss_kib=api_rss,
                baseline=save_fig,
                extra=f"p50 {shared['p50_ms']:.0f} ms, p99 {shared['p99_ms']:.0f} ms, "
                f"answers {shared['statuses']}",
            )
        )
    separate_projector(bench, path, token, fresh, data)


def separate_projector(
    bench: Run, path: str, token: str | None, fresh: list[str], data: str
) -> None:
    """`serve --no-projector --no-access-log` + `oncoledger projections run`: the write rate, the
    projector's lag when the load stops, and how long it then takes to catch up; against the
    embedded projector in the same window, the two servers alternated round by round.

    Alternated, each server started for its round after an uncounted warm-up that touches every
    patient: this row's rounds once ran minutes after the embedded row's, under another load on
    the shared machine (the three processes of this setup feel it most), and showed 0.54x where
    both setups, measured side by side, wrote at the same rate and this server spent no more CPU
    per event."""
    plan = bench.plan
    env = {"ONCOLEDGER_DB": path}
    embedded_rounds, rounds, lags, catches = [], [], [], []
    embedded_rss = rss = 0
    for _ in range(plan.pg_reps):
        result, peak = _embedded_round(bench, env, token, fresh)
        embedded_rounds.append(result)
        embedded_rss = max(embedded_rss, peak)
        result, peak, lag, seconds = _separate_round(bench, env, path, token, fresh)
        rounds.append(result)
        rss = max(rss, peak)
        lags.append(lag)
        catches.append(seconds)
    side_by_side = bench.add(
        Figure(
            section=SECTION,
            label="OncoLedger API, same, projector embedded, alternated round by round with the "
            "next row (a server started per round, after an uncounted warm-up)",
            data=data,
            value=median([r["rate"] for r in embedded_rounds]),
            unit="events/s",
            runs=len(embedded_rounds),
            rss_kib=embedded_rss,
            extra=f"{latency(embedded_rounds)}; {cpu_text(embedded_rounds)}",
        )
    )
    bench.add(
        Figure(
            section=SECTION,
            label="OncoLedger API, same, projector in its own process (`serve --no-projector` "
            "+ `oncoledger projections run`)",
            data=data,
            value=median([r["rate"] for r in rounds]),
            unit="events/s",
            runs=len(rounds),
            rss_kib=rss,
            baseline=side_by_side,
            headline=True,
            extra=f"{latency(rounds)}; projector lag when the load stopped "
            f"{median(lags):,.0f} events, caught up {median(catches):.2f} s later; "
            f"{cpu_text(rounds)}",
        )
    )


def _warm(bench: Run, url: str, token: str | None, fresh: list[str]) -> None:
    """An uncounted round that touches every patient once, so the measured one finds them all
    loaded (a server's first write to a patient reads its stream and opens its key)."""
    catch_up(url, token)
    load_round(bench, url, token, fresh, len(fresh))
    catch_up(url, token)


def _embedded_round(
    bench: Run, env: dict[str, str], token: str | None, fresh: list[str]
) -> tuple[dict[str, Any], int]:
    """One measured round on a server started for it, its projector embedded: (result, peak
    RSS)."""
    with procs.Server("api.app:create_app", env) as api:
        _warm(bench, api.url, token, fresh)
        watch = lambda: {"server (projector thread inside)": [api.pid]}  # noqa: E731
        result = load_round(bench, api.url, token, fresh, bench.plan.http_events, watch=watch)
        catch_up(api.url, token)
    return result, api.max_rss_kib


def _separate_round(
    bench: Run, env: dict[str, str], path: str, token: str | None, fresh: list[str]
) -> tuple[dict[str, Any], int, int, float]:
    """One measured round on `serve --no-projector` and a projector process, both started for
    it: (result, the server's peak RSS, the lag when the load stopped, seconds to catch up)."""
    projector = procs.Background(
        [*procs.CLI, "--db", path, "projections", "run", "--poll", "0.05", "--json"], env
    )
    try:
        # Without uvicorn's access log, as `procs.Server` runs the embedded one: a line per
        # request on stderr cost this server CPU (~0.05-0.1 ms per event) the other does not.
        args = ["--no-projector", "--no-access-log"]
        with procs.Server("oncoledger serve", env, serve_args=args) as api:
            _warm(bench, api.url, token, fresh)
            watch = lambda: {"server": [api.pid], "projector": [projector.pid]}  # noqa: E731
            result = load_round(bench, api.url, token, fresh, bench.plan.http_events, watch=watch)
            lag, seconds = catch_up(api.url, token)
    finally:
        projector.stop()
    return result, api.max_rss_kib, lag, seconds
