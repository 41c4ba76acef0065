"""`python -m bench.httpclient ARGS_JSON`: N concurrent clients appending events over HTTP.

One asyncio task per client, each on a keep-alive HTTP/1.1 connection of its own, one request in
flight per client. The default client is a minimal HTTP/1.1 writer/reader on asyncio streams
(uvloop when installed): `httpx.AsyncClient` costs about 1 ms of client CPU per request, which on
a 2-core machine caps the load at ~700 requests/s whatever the server does (`"client": "httpx"`
selects it, to show that). Bodies are made and encoded before the clock starts; a warm-up round
is not counted. Prints one JSON object: events stored per second over the measured round,
latency percentiles and status counts.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from bench import synth


def _bodies(patients: list[str], n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        pid = patients[i % len(patients)]
        out.append((pid, msgspec.json.encode(synth.follow_on(rng, pid))))
    return out


async def _raw_client(
    url: str, headers: dict[str, str], work: list[tuple[str, bytes]], latencies: list[float]
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    try:
        for pid, body in work:
            head = (
                f"POST /api/v1/patients/{pid}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"{fixed}Content-Length: {len(body)}\r\n\r\n"
            )
            start = time.perf_counter()
            writer.write(head.encode() + body)
            status, _ = await _read_response(reader)
            latencies.append(time.perf_counter() - start)
            statuses[status] += 1
    finally:
        writer.close()
    return statuses


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in fields:
        return status, await reader.readexactly(int(fields["content-length"]))
    body = b""
    while fields.get("transfer-encoding") == "chunked":
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            break
        body += chunk[:-2]
    return status, body


async def _httpx_client(
    url: str, headers: dict[str, str], work: list[tuple[str, bytes]], latencies: list[float]
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        for pid, body in work:
            start = time.perf_counter()
            response = await client.post(f"/api/v1/patients/{pid}/events", content=body)
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] += 1
    return statuses


async def _round(
    url: str, headers: dict[str, str], works: list[list[tuple[str, bytes]]], kind: str
) -> tuple[float, list[float], Counter[int]]:
    client = _httpx_client if kind == "httpx" else _raw_client
    latencies: list[float] = []
    start = time.perf_counter()
    results = await asyncio.gather(*(client(url, headers, w, latencies) for w in works))
    took = time.perf_counter() - start
    total: Counter[int] = Counter()
    for statuses in results:
        total.update(statuses)
    return took, latencies, total


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


async def main_async(a: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(uuid.uuid4().int)
    headers = {"content-type": "application/json"}
    if a.get("token"):
        headers["authorization"] = f"Bearer {a['token']}"
    clients, patients = a["clients"], a["patients"]
    if a.get("shared"):
        own = [patients for _ in range(clients)]
    else:
        own = [patients[c::clients] or patients for c in range(clients)]
    per_client = max(1, a["events"] // clients)
    warm = [_bodies(own[c], a.get("warmup", 2), rng) for c in range(clients)]
    works = [_bodies(own[c], per_client, rng) for c in range(clients)]
    kind = a.get("client", "raw")
    await _round(a["url"], headers, warm, kind)
    cpu = time.process_time()
    took, latencies, statuses = await _round(a["url"], headers, works, kind)
    cpu = time.process_time() - cpu
    ok = statuses.get(201, 0) + statuses.get(200, 0)
    return {
        "rate": ok / took,
        "seconds": took,
        "requests": sum(statuses.values()),
        "stored": ok,
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "cpu_seconds": cpu,  # this load generator's CPU over the measured round
    }


def main() -> None:
    args = msgspec.json.decode(sys.argv[1])
    try:
        import uvloop

        result = uvloop.run(main_async(args))
    except ImportError:
        result = asyncio.run(main_async(args))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
