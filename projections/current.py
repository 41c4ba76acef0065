"""Per-patient read models as of the stream now, from kept state (`PatientState`).

A read of a patient's current views reads the patient's stream through the ledger (which keeps
decoded histories and reads only what was stored since, by any process: read-your-writes), and
brings this process's kept state of the patient up to that version with only the new events.
Each view is computed from the kept items (no decode, no sort) and its JSON kept until the
stream moves, so repeated reads of an unchanged patient cost a lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import msgspec

from domain import events as ev
from domain.ledger.application import Ledger
from projections import readmodels
from projections.ctc import ctc_of
from projections.patient_state import PatientState
from projections.response import response_of
from projections.stage import stage_of
from projections.survival import survival_of
from projections.timeline import timeline_of

CACHED_PATIENTS = 2000


def view_of(state: PatientState, view: str, rule: str | None = None) -> msgspec.Struct:
    """One read model of the patient from its kept state (what `readmodels.compute` gives over
    the same history)."""
    pid = state.patient_id
    if view == "timeline":
        return timeline_of(pid, state.items.items)
    items = state.items.in_force()
    if view == "stage":
        return stage_of(pid, items)
    if view == "ctc":
        return ctc_of(pid, items, rule=rule)
    if view == "response":
        return response_of(pid, items)
    if view == "survival":
        return survival_of(pid, items)
    raise KeyError(view)


class _Kept:
    __slots__ = ("docs", "state")

    def __init__(self, state: PatientState) -> None:
        self.state = state
        self.docs: dict[tuple[str, str], bytes] = {}  # (view, rule): JSON at state.version


class CurrentReads:
    """The current read models of recently read patients, kept per process (LRU)."""

    def __init__(self, ledger: Ledger, *, size: int = CACHED_PATIENTS) -> None:
        self.ledger = ledger
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def _current(self, patient_id: str, history: list[ev.AnyEvent]) -> _Kept:
        """Kept state at the version of `history` (the stream as read just before)."""
        kept = self._kept.pop(patient_id, None)
        if kept is None or not kept.state.follows(history):
            kept = _Kept(PatientState(patient_id, history))
        elif kept.state.version < len(history):
            for entry in history[kept.state.version :]:
                kept.state.apply(entry)
            kept.docs.clear()
        self._kept[patient_id] = kept
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return kept

    def view(self, patient_id: str, view: str, *, rule: str | None = None) -> msgspec.Struct:
        history = self.ledger.history(patient_id)  # NotFound when not registered
        with self._lock:
            return view_of(self._current(patient_id, history).state, view, rule)

    def json(self, patient_id: str, view: str, *, rule: str | None = None) -> bytes:
        effective = readmodels.effective_rule(rule) if view == "ctc" else ""
        history = self.ledger.history(patient_id)
        with self._lock:
            kept = self._current(patient_id, history)
            doc = kept.docs.get((view, effective))
            if doc is None:
                doc = msgspec.json.encode(view_of(kept.state, view, effective or None))
                kept.docs[(view, effective)] = doc
            return doc

    def row(self, patient_id: str) -> readmodels.PatientRow:
        history = self.ledger.history(patient_id)
        with self._lock:
            return self._current(patient_id, history).state.rows()[0]

    def forget(self, patient_id: str) -> None:
        with self._lock:
            self._kept.pop(patient_id, None)
