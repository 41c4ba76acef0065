"""Tamper evidence (SPEC §6): recompute hash chains from what is stored, and digest stream heads.

Verification reads the stored JSON itself, not the decoded events, so it checks exactly the
bytes an auditor would and works the same on an export file with no database at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from domain.patient import GENESIS_HASH, chain_hash

_sorted = msgspec.json.Encoder(order="sorted")
# What the ledger hands the checker for a stored event its cipher cannot decrypt.
UNDECRYPTABLE = b"\x00undecryptable"
# Marks the clear envelope the ledger hands the checker for an event of an erased patient.
ERASED = "__erased__"


@dataclass(frozen=True)
class Break:
    patient_id: str
    version: int
    reason: str


@dataclass
class ChainReport:
    """The outcome of a verification: streams and events checked, the first break per stream."""

    patients: int = 0
    events: int = 0
    breaks: list[Break] = field(default_factory=list)
    # Streams of erased patients: their linkage was checked from the stored hashes (the
    # content that the hashes cover was destroyed with the patient's key).
    erased: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


@dataclass
class _Chain:
    version: int = 0
    head: str = GENESIS_HASH
    broken: bool = False


def event_hash(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k not in ("hash", "class_version")}
    return chain_hash(_sorted.encode(body), str(data.get("prev_hash")))


class ChainChecker:
    """Feeds stored events one by one, in stream order per patient; remembers the first break."""

    def __init__(self) -> None:
        self.chains: dict[str, _Chain] = {}
        self.report = ChainReport()

    def feed(self, patient_id: str, version: int, state: bytes | dict[str, Any]) -> None:
        chain = self.chains.get(patient_id)
        if chain is None:
            chain = self.chains[patient_id] = _Chain()
            self.report.patients += 1
        self.report.events += 1
        if chain.broken:
            return
        reason = self._check(chain, patient_id, version, state)
        if reason:
            chain.broken = True
            self.report.breaks.append(Break(patient_id, version, reason))

    def _check(
        self, chain: _Chain, patient_id: str, version: int, state: bytes | dict[str, Any]
    ) -> str | None:
        if version != chain.version + 1:
            return f"version {version} follows {chain.version}: an event is missing or moved"
        chain.version = version
        if state == UNDECRYPTABLE:
            return (
                "cannot decrypt: wrong key? (the event was written under another key, "
                "or its ciphertext was altered)"
            )
        try:
            data = state if isinstance(state, dict) else msgspec.json.decode(state)
        except msgspec.DecodeError as exc:
            return f"stored event is not valid JSON ({exc})"
        if not isinstance(data, dict):
            return "stored event is not a JSON object"
        if data.get(ERASED):
            if chain.version == 1:
                self.report.erased.append(patient_id)
            if data.get("stream") != patient_id or data.get("version") != version:
                return "the erased event's envelope disagrees with its place in the store"
        elif data.get("patient_id") != patient_id or data.get("version") != version:
            return "the event's patient_id/version disagree with its place in the store"
        if data.get("prev_hash") != chain.head:
            return "prev_hash does not match the previous event's hash"
        if data.get(ERASED):
            if not isinstance(data.get("hash"), str):
                return "the erased event's envelope has no hash"
            chain.head = str(data["hash"])
            return None
        recomputed = event_hash(data)
        if data.get("hash") != recomputed:
            return "hash does not match the event's content"
        chain.head = recomputed
        return None

    def heads(self) -> dict[str, tuple[int, str]]:
        return {pid: (c.version, c.head) for pid, c in self.chains.items()}


def verify_entries(rows: Iterable[tuple[str, int, bytes | dict[str, Any]]]) -> ChainReport:
    checker = ChainChecker()
    for patient_id, version, state in rows:
        checker.feed(patient_id, version, state)
    return checker.report


@dataclass(frozen=True)
class Digest:
    """One SHA-256 over every stream head in patient-id order, with the counts it covers."""

    sha256: str
    patients: int
    events: int


def digest_heads(heads: Iterable[tuple[str, int, str]], extra: Iterable[str] = ()) -> Digest:
    """`heads`: (patient_id, version, head hash) per stream. Lines are `id version hash`."""
    h = hashlib.sha256()
    patients = events = 0
    for patient_id, version, head in sorted(heads):
        h.update(f"{patient_id} {version} {head}\n".encode())
        patients += 1
        events += version
    for line in extra:
        h.update(f"{line}\n".encode())
    return Digest(h.hexdigest(), patients, events)
