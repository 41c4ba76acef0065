"""Synthetic patients: realistic, valid event bodies in the flat ledger JSON form (SPEC §3).

Every patient follows an esophageal-cancer course: registration, endoscopy, biopsy, confirmed
diagnosis, baseline CT with measured lesions, clinical staging, a baseline CTC draw, then cycles
of chemotherapy, radiotherapy, restaging imaging with the same lesions, CTC draws and follow-up,
with the occasional surgery, ablation, declined therapy, amendment or retraction, and for some
patients a death as the last event. Bodies carry a fixed `event_id` (as an export does), so the
same seed gives the same bodies, and they pass every rule of the `Patient` aggregate.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

Body = dict[str, Any]

SITES = ("esophagus, upper third", "esophagus, middle third", "esophagus, lower third")
NODE_SITES = ("right paraesophageal lymph node", "left supraclavicular lymph node", "celiac node")
METASTASIS_SITES = ("liver, segment VI", "liver, right anterior lobe", "lung, right lower lobe")
REGIMENS = (
    ("FLOT", ["fluorouracil", "leucovorin", "oxaliplatin", "docetaxel"]),
    ("weekly carboplatin + paclitaxel", ["carboplatin", "paclitaxel"]),
    ("cisplatin + fluorouracil", ["cisplatin", "fluorouracil"]),
    ("FOLFOX", ["fluorouracil", "leucovorin", "oxaliplatin"]),
    ("ramucirumab + paclitaxel", ["ramucirumab", "paclitaxel"]),
)
ASSAYS = (
    "CellSearch",
    "immunomagnetic EpCAM enrichment + immunofluorescence",
    "CellRich: immunomagnetic beads + density gradient centrifugation",
)
NOTES = (
    "Reviewed at the multidisciplinary tumour board.",
    "Abstracted from the discharge letter; day confirmed against the lab report.",
    "Patient tolerated the procedure well; no complications recorded.",
    "Values transcribed from the radiology report by the study abstractor.",
)
# Follow-on events after the work-up, by weight (the rest of a stream).
MIX: tuple[tuple[str, int], ...] = (
    ("ctc_count", 24),
    ("imaging", 20),
    ("chemotherapy", 15),
    ("follow_up", 14),
    ("staging", 6),
    ("radiotherapy", 5),
    ("biopsy", 3),
    ("event_amended", 4),
    ("event_retracted", 2),
    ("surgery", 2),
    ("ablation", 2),
    ("therapy_declined", 1),
)
_KINDS = [k for k, _ in MIX]
_WEIGHTS = [w for _, w in MIX]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Course:
    """One patient's stream being written: the clock, lesions and what may be corrected."""

    def __init__(self, rng: random.Random, patient_id: str, n_events: int, today: date) -> None:
        self.rng = rng
        self.patient_id = patient_id
        self.today = today
        # Spread the stream over at most ~8 years, ending before today.
        self.gap = max(1, min(60, 2900 // max(1, n_events)))
        span = self.gap * n_events + rng.randint(30, 400)
        self.day = today - timedelta(days=span)
        self.birth_year = rng.randint(1930, min(1980, self.day.year - 20))
        self.histology = rng.choice(("squamous_cell_carcinoma", "adenocarcinoma"))
        self.site = rng.choice(SITES)
        self.lesions: dict[str, list[float]] = {}
        self.bodies: list[Body] = []
        self.correctable: list[int] = []  # indexes of clinical events that may be corrected
        self.retracted: set[int] = set()

    def tick(self, spread: int | None = None) -> str:
        gap = self.gap if spread is None else spread
        self.day = min(self.today, self.day + timedelta(days=self.rng.randint(0, 2 * gap)))
        return self.day.isoformat()

    def add(self, body: Body, *, correctable: bool = True) -> None:
        body = {"event_id": _uuid(self.rng), "patient_id": self.patient_id, **body}
        if self.rng.random() < 0.25:
            body.setdefault("note", self.rng.choice(NOTES))
        if correctable:
            self.correctable.append(len(self.bodies))
        self.bodies.append(body)

    # -- the work-up ---------------------------------------------------------------------------

    def registration(self) -> None:
        self.add(
            {
                "type": "patient_registered",
                "occurred": self.tick(),
                "sex": self.rng.choice(("male", "male", "female", "unknown")),
                "birth_year": self.birth_year,
                "primary_site": "esophagus",
            },
            correctable=False,
        )

    def endoscopy(self) -> None:
        self.add(
            {
                "type": "imaging",
                "occurred": self.tick(7),
                "modality": "endoscopy",
                "region": "esophagus",
                "finding": f"Ulcerated mass, {self.site}.",
            }
        )

    def diagnosis(self) -> None:
        self.add(
            {
                "type": "diagnosis_confirmed",
                "occurred": self.tick(7),
                "histology": self.histology,
                "grade": self.rng.choice(("G1", "G2", "G3", "GX")),
                "tumor_location": self.site.split(", ")[1].split()[0],
                "basis": "histology",
                "method": "endoscopic biopsy",
            },
            correctable=False,
        )

    def baseline_ct(self) -> None:
        self.lesions = {"eso-1": sorted([self._mm(15, 60), self._mm(8, 25)], reverse=True)}
        for i in range(self.rng.randint(0, 2)):
            self.lesions[f"ln-{i + 1}"] = sorted([self._mm(10, 30), self._mm(6, 15)], reverse=True)
        self.add(self._imaging("Baseline staging CT.", new=None))

    # -- follow-on events ----------------------------------------------------------------------

    def biopsy(self) -> None:
        self.add(
            {
                "type": "biopsy",
                "occurred": self.tick(7),
                "site": self.site,
                "method": self.rng.choice(("endoscopic", "needle")),
                "histology": self.histology,
                "grade": self.rng.choice(("G1", "G2", "G3")),
                "finding": "Carcinoma confirmed on histology.",
            }
        )

    def imaging(self) -> None:
        for dims in self.lesions.values():
            factor = self.rng.uniform(0.6, 1.3)
            dims[:] = sorted((round(min(1500.0, d * factor), 1) for d in dims), reverse=True)
        new = None
        if self.rng.random() < 0.08:
            new = f"met-{len(self.lesions) + 1}"
            self.lesions[new] = [self._mm(8, 30)]
        self.add(self._imaging("Restaging CT.", new=new))

    def _imaging(self, finding: str, *, new: str | None) -> Body:
        lesions = [
            {
                "lesion_id": lid,
                "site": self._lesion_site(lid),
                "dimensions_mm": list(dims),
                "new": lid == new,
            }
            for lid, dims in self.lesions.items()
        ]
        return {
            "type": "imaging",
            "occurred": self.tick(),
            "modality": self.rng.choice(("ct", "ct", "pet_ct", "mri")),
            "region": "chest, abdomen and pelvis",
            "finding": finding,
            "lesions": lesions,
        }

    def _lesion_site(self, lesion_id: str) -> str:
        if lesion_id.startswith("eso"):
            return f"{self.site} (primary)"
        if lesion_id.startswith("ln"):
            return NODE_SITES[int(lesion_id.split("-")[1]) % len(NODE_SITES)]
        return METASTASIS_SITES[int(lesion_id.split("-")[1]) % len(METASTASIS_SITES)]

    def staging(self) -> None:
        self.add(
            {
                "type": "staging",
                "occurred": self.tick(7),
                "context": "c",
                "t": self.rng.choice(("T1", "T1a", "T1b", "T2", "T3", "T4a", "T4b")),
                "n": self.rng.choice(("N0", "N1", "N2", "N3")),
                "m": self.rng.choice(("M0", "M0", "M0", "M1")),
                "system": "AJCC8",
            }
        )

    def ctc_count(self) -> None:
        volume = self.rng.choice((7.5, 7.5, 10.0, 7.4))
        self.add(
            {
                "type": "ctc_count",
                "occurred": self.tick(),
                "count": self.rng.choice((0, 0, 1, 2, 3, 5, 8, 12, 20, 40)),
                "blood_volume_ml": volume,
                "assay": self.rng.choice(ASSAYS),
                "sample_id": f"{self.patient_id}-S{len(self.bodies)}",
            }
        )

    def chemotherapy(self) -> None:
        regimen, agents = self.rng.choice(REGIMENS)
        occurred = self.tick()
        courses = self.rng.randint(1, 6)
        ended = min(self.today, self.day + timedelta(days=21 * courses))
        self.add(
            {
                "type": "chemotherapy",
                "occurred": occurred,
                "regimen": regimen,
                "agents": agents,
                "courses": courses,
                "intent": self.rng.choice(("curative", "palliative", "neoadjuvant", "adjuvant")),
                "ended": ended.isoformat(),
            }
        )

    def radiotherapy(self) -> None:
        fractions = self.rng.choice((25, 28, 30))
        self.add(
            {
                "type": "radiotherapy",
                "occurred": self.tick(),
                "target": "esophagus and involved nodes",
                "dose_gy": round(1.8 * fractions, 1),
                "fractions": fractions,
                "intent": self.rng.choice(("curative", "palliative")),
            }
        )

    def surgery(self) -> None:
        self.add(
            {
                "type": "surgery",
                "occurred": self.tick(),
                "procedure": "Ivor Lewis esophagectomy",
                "intent": "curative",
            }
        )

    def ablation(self) -> None:
        target = next((lid for lid in self.lesions if lid.startswith("met")), None)
        body: Body = {
            "type": "ablation",
            "occurred": self.tick(),
            "modality": self.rng.choice(("radiofrequency", "microwave")),
            "site": "liver",
        }
        if target:
            body["target_lesion_id"] = target
        self.add(body)

    def therapy_declined(self) -> None:
        self.add(
            {
                "type": "therapy_declined",
                "occurred": self.tick(),
                "scope": self.rng.choice(("chemotherapy", "radiotherapy", "surgery")),
                "reason": "Patient preference after counselling.",
            }
        )

    def follow_up(self) -> None:
        self.add(
            {
                "type": "follow_up",
                "occurred": self.tick(),
                "status": "alive" if self.rng.random() < 0.97 else "lost_to_follow_up",
            }
        )

    def _target(self) -> int | None:
        candidates = [i for i in self.correctable[-20:] if i not in self.retracted]
        return self.rng.choice(candidates) if candidates else None

    def event_amended(self) -> None:
        index = self._target()
        if index is None:
            return self.follow_up()
        target = self.bodies[index]
        replacement = {
            k: v for k, v in target.items() if k not in ("event_id", "patient_id", "note")
        }
        replacement["note"] = "Corrected after source verification."
        if target["type"] == "ctc_count":
            replacement["count"] = max(0, int(target["count"]) - 1)
        self.add(
            {
                "type": "event_amended",
                "occurred": self.tick(3),
                "target_event_id": target["event_id"],
                "replacement": replacement,
                "reason": "Transcription error found at source data verification.",
            },
            correctable=False,
        )
        return None

    def event_retracted(self) -> None:
        index = self._target()
        if index is None or self.bodies[index]["type"] == "imaging":
            # Retracting an imaging event could drop the response baseline; amend instead.
            return self.event_amended()
        self.retracted.add(index)
        self.add(
            {
                "type": "event_retracted",
                "occurred": self.tick(3),
                "target_event_id": self.bodies[index]["event_id"],
                "reason": "Entered in error: belongs to another patient.",
            },
            correctable=False,
        )
        return None

    def death(self) -> None:
        self.add(
            {
                "type": "death",
                "occurred": self.tick(),
                "cause": self.rng.choice(("cancer", "other")),
            },
            correctable=False,
        )

    def _mm(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 1)


def patient_events(
    rng: random.Random,
    patient_id: str,
    n_events: int,
    *,
    today: date | None = None,
    deaths: bool = True,
) -> list[Body]:
    """`n_events` valid bodies for one patient, in stream order (a fifth die, if `deaths`)."""
    course = _Course(rng, patient_id, n_events, today or datetime.now(UTC).date())
    workup = (
        course.registration,
        course.endoscopy,
        course.biopsy,
        course.diagnosis,
        course.baseline_ct,
        course.staging,
        course.ctc_count,
    )
    dies = deaths and n_events >= 8 and rng.random() < 0.2
    body_events = n_events - (1 if dies else 0)
    for step in workup[:body_events]:
        step()
    while len(course.bodies) < body_events:
        kind = rng.choices(_KINDS, _WEIGHTS)[0]
        getattr(course, kind)()
    if dies:
        course.death()
    return course.bodies


def patient_id(i: int, prefix: str = "P") -> str:
    return f"{prefix}{i:07d}"


def cohort(
    n_patients: int,
    mean_events: int,
    *,
    seed: int = 1,
    start: int = 0,
    prefix: str = "P",
    deaths: bool = True,
) -> Iterator[tuple[str, list[Body]]]:
    """Patients `start`..`start + n_patients - 1` with mean_events ± 40 % events each."""
    today = datetime.now(UTC).date()
    low = max(1, round(mean_events * 0.6))
    high = max(low, round(mean_events * 1.4))
    for i in range(start, start + n_patients):
        rng = random.Random(seed * 1_000_003 + i)
        n = rng.randint(low, high)
        pid = patient_id(i, prefix)
        yield pid, patient_events(rng, pid, n, today=today, deaths=deaths)


def follow_on(rng: random.Random, patient_id: str, today: date | None = None) -> Body:
    """One event a clinician might add today to a patient in follow-up (no death recorded)."""
    day = (today or datetime.now(UTC).date()) - timedelta(days=rng.randint(0, 30))
    kind = rng.choice(("ctc_count", "ctc_count", "follow_up", "imaging", "chemotherapy"))
    body: Body = {
        "type": kind,
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "patient_id": patient_id,
        "occurred": day.isoformat(),
    }
    if kind == "ctc_count":
        body |= {"count": rng.randint(0, 20), "blood_volume_ml": 7.5, "assay": ASSAYS[0]}
    elif kind == "follow_up":
        body |= {"status": "alive", "note": rng.choice(NOTES)}
    elif kind == "imaging":
        dims = sorted((round(rng.uniform(5, 60), 1) for _ in range(2)), reverse=True)
        body |= {
            "modality": "ct",
            "region": "chest, abdomen and pelvis",
            "finding": "Restaging CT.",
            "lesions": [{"lesion_id": "eso-1", "site": SITES[1], "dimensions_mm": dims}],
        }
    else:
        regimen, agents = rng.choice(REGIMENS)
        body |= {"regimen": regimen, "agents": agents, "courses": 1, "intent": "palliative"}
    return body
