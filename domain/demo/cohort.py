"""A synthetic esophageal-cancer cohort for `oncoledger demo --cohort N`: seeded, reproducible.

Every patient is made up (ids `SYN-00001` ..., each registration note says so) and its course is
drawn from a simple model so that a survival analysis has something to show: a clinical stage
at diagnosis (squamous cell carcinoma or adenocarcinoma, AJCC 8 groups I to IVB), a CTC
trajectory (falling, flat, rising, fluctuating, or a single draw), and a death time drawn from an
exponential hazard that grows with the stage and with a rising CTC count, censored by loss to
follow-up or by the end of the study (2025-06-30). Some patients are restaged, some are dated
to the month only, a few have no confirmed diagnosis. Event ids derive from the seed, so
recording the same cohort again stores nothing new.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from domain.codec import decode_entry
from domain.ledger.application import Ledger
from domain.synthetic import GENERATED_PREFIX

DEFAULT_SEED = 2016
STUDY_END = date(2025, 6, 30)
_NAMESPACE = uuid.UUID("6f1c2a8e-2f4b-4c55-9a51-5d0c7e7b1a01")
_MONTH = 30.4375

# (histology, T, N, M, stage group it stages to, monthly death hazard)
_STAGES: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("squamous_cell_carcinoma", "T1", "N0", "M0", "I", 0.008),
    ("squamous_cell_carcinoma", "T2", "N0", "M0", "II", 0.013),
    ("squamous_cell_carcinoma", "T3", "N1", "M0", "III", 0.022),
    ("squamous_cell_carcinoma", "T4", "N1", "M0", "IVA", 0.035),
    ("squamous_cell_carcinoma", "T4", "N2", "M1", "IVB", 0.05),
    ("adenocarcinoma", "T1", "N0", "M0", "I", 0.008),
    ("adenocarcinoma", "T1", "N1", "M0", "IIA", 0.012),
    ("adenocarcinoma", "T2", "N0", "M0", "IIB", 0.015),
    ("adenocarcinoma", "T3", "N1", "M0", "III", 0.022),
    ("adenocarcinoma", "T4b", "N1", "M0", "IVA", 0.035),
    ("adenocarcinoma", "T3", "N2", "M1", "IVB", 0.05),
)
# CTC course -> (weight, hazard ratio)
_COURSES: dict[str, tuple[int, float]] = {
    "falling": (30, 0.45),
    "flat": (15, 0.9),
    "rising": (25, 2.0),
    "fluctuating": (20, 1.1),
    "single": (10, 1.2),
}


def cohort_ids(n: int) -> list[str]:
    return [f"{GENERATED_PREFIX}{i:05d}" for i in range(1, n + 1)]


def synthetic_patient(index: int, seed: int = DEFAULT_SEED) -> tuple[str, list[dict[str, Any]]]:
    """Patient number `index` (1-based) of the cohort drawn with `seed`: id and events."""
    pid = cohort_ids(index)[-1]
    rng = random.Random(f"{seed}:{index}")
    events: list[dict[str, Any]] = []

    def add(kind: str, on: date | str, **fields: Any) -> None:
        occurred = on if isinstance(on, str) else on.isoformat()
        event_id = uuid.uuid5(_NAMESPACE, f"{seed}/{pid}/{len(events)}")
        events.append(
            {"type": kind, "event_id": str(event_id), "patient_id": pid, "occurred": occurred}
            | fields
        )

    diagnosed = date(2015, 1, 1) + timedelta(days=rng.randrange(0, 8 * 365))
    add(
        "patient_registered",
        diagnosed - timedelta(days=rng.randrange(3, 30)),
        sex=rng.choice(("male", "male", "female")),
        birth_year=rng.randrange(1932, 1972),
        primary_site="esophagus",
        note=f"Synthetic patient (oncoledger demo --cohort, seed {seed}): not a real person.",
    )
    histology, t, n, m, _group, hazard = rng.choice(_STAGES)
    course = rng.choices(list(_COURSES), weights=[w for w, _ in _COURSES.values()])[0]
    hazard *= _COURSES[course][1]
    death = diagnosed + timedelta(days=round(rng.expovariate(hazard) * _MONTH) + 1)
    lost = diagnosed + timedelta(days=round(rng.uniform(4, 90) * _MONTH))
    end = min(death, lost, STUDY_END)
    if rng.random() < 0.03:  # no confirmed diagnosis: excluded from survival analyses
        add("ctc_count", diagnosed, count=rng.randrange(0, 12), blood_volume_ml=7.5)
        add("follow_up", end, status="alive")
        return pid, events
    month_only = rng.random() < 0.05
    add(
        "diagnosis_confirmed",
        diagnosed.isoformat()[:7] if month_only else diagnosed,
        histology=histology,
        grade=rng.choice(("G1", "G2", "G3", "GX")),
        tumor_location=rng.choice(("upper", "middle", "lower")),
        basis="histology",
    )
    staged = diagnosed + timedelta(days=rng.randrange(15, 25))
    if staged < end:
        _course(rng, add, staged, end, (t, n, m), course)
    if end == death:
        add("death", end, cause=rng.choice(("cancer", "cancer", "cancer", "other")))
    else:
        add("follow_up", end, status="alive" if end == STUDY_END else "lost_to_follow_up")
    return pid, events


def _course(
    rng: random.Random,
    add: Callable[..., None],
    staged: date,
    end: date,
    tnm: tuple[str, str, str],
    course: str,
) -> None:
    """Staging, chemotherapy, then CTC draws about every three months with follow-ups, and a
    restaging at the third draw (a rising course may have metastasised by then)."""
    t, n, m = tnm
    add("staging", staged, context="c", t=t, n=n, m=m)
    if staged + timedelta(days=7) < end:
        add(
            "chemotherapy",
            staged + timedelta(days=7),
            regimen="TP",
            agents=["paclitaxel", "cisplatin"],
            courses=rng.randrange(2, 7),
            intent="palliative" if m == "M1" else "curative",
        )
    day = staged + timedelta(days=rng.randrange(1, 10))
    for number, count in enumerate(_draws(rng, course)):
        if day >= end:
            break
        add("ctc_count", day, count=count, blood_volume_ml=7.5, assay="CellSearch")
        if number == 2:
            worse_m = "M1" if course == "rising" and m == "M0" and rng.random() < 0.5 else m
            add("staging", day, context="c", t=t, n=n, m=worse_m)
        day += timedelta(days=rng.randrange(70, 110))
        if day < end:
            add("follow_up", day - timedelta(days=14), status="alive")


def _draws(rng: random.Random, course: str) -> list[int]:
    start = rng.randrange(3, 25)
    length = 1 if course == "single" else rng.randrange(3, 9)
    values = [start]
    for _ in range(length - 1):
        last = values[-1]
        if course == "falling":
            values.append(max(0, last - rng.randrange(1, max(2, last // 2 + 2))))
        elif course == "rising":
            values.append(last + rng.randrange(1, 6))
        elif course == "flat":
            values.append(last)
        else:
            values.append(max(0, last + rng.choice((-4, -3, 3, 5))))
    if course == "falling" and values[-1] == values[0]:
        values[-1] = max(0, values[0] - 1)
    return values


def record_cohort(
    ledger: Ledger,
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    actor: str,
    source: str = "cli",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Record patients 1..n of the cohort drawn with `seed`; return how many events were new."""
    created = 0
    for index in range(1, n + 1):
        pid, events = synthetic_patient(index, seed)
        receipts = ledger.append(pid, [decode_entry(e) for e in events], actor=actor, source=source)
        created += sum(1 for receipt in receipts if receipt.created)
        if progress:
            progress(index)
    return created
