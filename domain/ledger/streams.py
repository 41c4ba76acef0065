"""The patients one process has loaded, and a lock per patient (striped)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from domain.patient import Patient


class Streams:
    """Patients this process has loaded, and a lock per patient (striped).

    Writers to one patient in this process queue on its lock instead of racing each other (the
    lock is held until the commit that holds the append, so appends of one patient are never
    in one group commit; appends of patients on different stripes are). A writer trusts its
    cached patient without asking the store (the store's unique (stream, version) key refuses
    a save on a stale one; the writer then reloads); a reader brings it up to date with the
    events stored since by any process. A patient is taken out of the cache while a command
    works on it and put back only after a successful save, so a refused or failed command
    never leaves half-applied state behind.
    """

    STRIPES = 4096

    def __init__(self, maxsize: int = 10_000) -> None:
        # Made on first use: a new ledger does not pay for 4,096 locks it may never take.
        self._locks: list[threading.Lock | None] = [None] * self.STRIPES
        self._guard = threading.Lock()
        self._patients: OrderedDict[str, Patient] = OrderedDict()
        self._maxsize = maxsize

    def stripe(self, patient_id: str) -> int:
        """Which of the locks is `patient_id`'s (patients of one stripe share it)."""
        return hash(patient_id) % self.STRIPES

    def lock(self, patient_id: str) -> threading.Lock:
        stripe = self.stripe(patient_id)
        lock = self._locks[stripe]
        if lock is None:
            with self._guard:
                lock = self._locks[stripe]
                if lock is None:
                    lock = self._locks[stripe] = threading.Lock()
        return lock

    def take(self, patient_id: str) -> Patient | None:
        with self._guard:
            return self._patients.pop(patient_id, None)

    def put(self, patient: Patient) -> None:
        with self._guard:
            self._patients[patient.id] = patient
            while len(self._patients) > self._maxsize:
                self._patients.popitem(last=False)


def rolled_back(patient: Patient, *, at: int) -> Patient:
    """`patient` as it stood at version `at`: what a command applied to it taken off (its
    decoded entries replayed, the store's bytes never read again)."""
    patient.collect_events()
    if patient.version == at:
        return patient
    twin = Patient(patient.id)
    for entry in patient.entries[:at]:
        twin.apply(entry)
    return twin
