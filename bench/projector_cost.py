"""What the projector takes off the request path (issue 11): `python -m bench.projector_cost`.

In-process, one thread, SQLite, on a 10-event and a 1,000-event patient: milliseconds per
`OncoLedger.append` with the views projected inside the call (the CLI's way) and without (the
server's way, a projector applies them after), and the projector's own cost per event when it
applies one event per round. Printed as a Markdown table with same-run ratios."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from projections.projector import Projector
from projections.root import OncoLedger, StoreConfig

APPENDS = 100
ROUNDS = 50


def _draw(count: int) -> dict[str, Any]:
    return {"type": "ctc_count", "occurred": "2016-06-01", "count": count}


def _append_ms(config: StoreConfig, patient_id: str, *, inline: bool) -> float:
    with OncoLedger(config, project_inline=inline) as system:
        system.append(patient_id, [_draw(0)], actor="bench", source="cli")  # warm caches
        Projector(system.views).step()
        start = time.perf_counter()
        for i in range(APPENDS):
            system.append(patient_id, [_draw(i)], actor="bench", source="cli")
        elapsed = time.perf_counter() - start
        Projector(system.views).step()
    return elapsed / APPENDS * 1000


def _projector_ms(config: StoreConfig, patient_id: str) -> float:
    with OncoLedger(config, project_inline=False) as system:
        projector = Projector(system.views)
        total = 0.0
        for i in range(ROUNDS):
            system.append(patient_id, [_draw(i)], actor="bench", source="cli")
            start = time.perf_counter()
            projector.step()
            total += time.perf_counter() - start
    return total / ROUNDS * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = StoreConfig(sqlite_path=str(Path(tmp) / "ledger.db"))
        with OncoLedger(config) as system:
            for patient_id, events in (("SMALL", 10), ("BIG", 1000)):
                registration = {"occurred": "2016-04-26", "sex": "male", "birth_year": 1940}
                system.register(patient_id, registration, actor="bench", source="cli")
                bodies = [_draw(i) for i in range(events - 1)]
                system.append(patient_id, bodies, actor="bench", source="cli")
        print(
            "| patient | append, projected inline | append, projector off the request | ratio "
            "| projector, per event (1 a round) |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for patient_id, label in (
            ("SMALL", "10 events at start"),
            ("BIG", "1,000 events at start"),
        ):
            inline = _append_ms(config, patient_id, inline=True)
            off = _append_ms(config, patient_id, inline=False)
            projector = _projector_ms(config, patient_id)
            print(
                f"| {label} | {inline:.2f} ms | {off:.2f} ms | {off / inline:.2f}x "
                f"| {projector:.2f} ms |"
            )


if __name__ == "__main__":
    main()
