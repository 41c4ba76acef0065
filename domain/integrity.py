"""Tamper evidence (SPEC §6): the one chain checker and the one digest.

A chain is a sequence of stored records (a patient's events, the access log's rows), each
holding the `hash` of its own content and the `prev_hash` of the record before it. The link
check (`link_break`: place in the sequence, `prev_hash`, `hash`) is written once here and used by
every chain: the ledger's `verify`, export verification (`oncoledger verify --file`), the
SPEC §6 digest, and the access log (`verify_sequence`). The digest (`digest_heads`) is one
SHA-256 over `id version hash` lines of stream heads, for the ledger, its digest with the access
log, and an export's `chain_digest`.

Verification reads the stored JSON itself, not the decoded events, so it checks exactly the
bytes an auditor would and works the same on an export file with no database at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
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


@dataclass(frozen=True)
class ChainKind:
    """How a chain names its records, for the reasons a break is given."""

    position: str  # the field that numbers the records: "version", "seq"
    record: str  # "event", "row"
    article: str  # "an", "a"


EVENTS = ChainKind("version", "event", "an")
ACCESS_LOG_ROWS = ChainKind("seq", "row", "a")


def record_hash(data: Mapping[str, Any]) -> str:
    """SPEC §6 over one stored record: SHA-256 of its canonical JSON (sorted keys, without `hash`
    and `class_version`) followed by its `prev_hash`."""
    body = {k: v for k, v in data.items() if k not in ("hash", "class_version")}
    return chain_hash(_sorted.encode(body), str(data.get("prev_hash")))


# The name the event callers know.
event_hash = record_hash


def order_break(position: Any, previous: int, kind: ChainKind = EVENTS) -> str | None:
    """Why a record at `position` cannot follow the one at `previous`, or None."""
    if position != previous + 1:
        return (
            f"{kind.position} {position} follows {previous}: "
            f"{kind.article} {kind.record} is missing or moved"
        )
    return None


def link_break(
    data: Mapping[str, Any], head: str, kind: ChainKind = EVENTS, *, sealed: bool = True
) -> str | None:
    """Why `data` does not extend a chain whose head is `head`, or None: its `prev_hash` must be
    the head and (when `sealed`, i.e. its content is there to hash) its `hash` its content's."""
    if data.get("prev_hash") != head:
        return f"prev_hash does not match the previous {kind.record}'s hash"
    if sealed and data.get("hash") != record_hash(data):
        return f"hash does not match the {kind.record}'s content"
    return None


@dataclass(frozen=True)
class SequenceReport:
    """One chain recomputed: records intact before the first break, the head they end at."""

    ok: bool
    entries: int
    head: str
    first_broken: int | None = None
    reason: str | None = None


def verify_sequence(
    records: Iterable[Mapping[str, Any]], kind: ChainKind = ACCESS_LOG_ROWS
) -> SequenceReport:
    """Recompute one chain numbered from 1 by `kind.position`; stops at the first break."""
    entries, head = 0, GENESIS_HASH
    for data in records:
        reason = order_break(data.get(kind.position), entries, kind) or link_break(data, head, kind)
        if reason is not None:
            return SequenceReport(
                ok=False, entries=entries, head=head, first_broken=entries + 1, reason=reason
            )
        head = str(data["hash"])
        entries += 1
    return SequenceReport(ok=True, entries=entries, head=head)


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
        out_of_order = order_break(version, chain.version)
        if out_of_order:
            return out_of_order
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
        erased = bool(data.get(ERASED))
        broken = link_break(data, chain.head, sealed=not erased)
        if broken:
            return broken
        if erased and not isinstance(data.get("hash"), str):
            return "the erased event's envelope has no hash"
        chain.head = str(data["hash"])
        return None

    def heads(self) -> dict[str, tuple[int, str]]:
        return {pid: (c.version, c.head) for pid, c in self.chains.items()}

    def verified_heads(self) -> list[tuple[str, int, str]]:
        """Each stream's head for `digest_heads`, `broken` for a chain that does not verify."""
        return [
            (pid, c.version, "broken" if c.broken else c.head) for pid, c in self.chains.items()
        ]


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


def stored_heads(
    rows: Iterable[tuple[str, int, bytes | dict[str, Any]]],
) -> list[tuple[str, int, str]]:
    """Each stream's last stored `hash` as it is stored, not recomputed (`unreadable` when the
    last event cannot be read), for `digest_heads`: the digest of what the store says."""
    heads: dict[str, tuple[int, str]] = {}
    for patient_id, version, state in rows:
        try:
            data = state if isinstance(state, dict) else msgspec.json.decode(state)
            head = str(data.get("hash"))
        except (msgspec.DecodeError, AttributeError):
            head = "unreadable"
        heads[patient_id] = (version, head)
    return [(pid, v, h) for pid, (v, h) in heads.items()]


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
