"""One patient's stream as a self-contained JSON document that anyone can verify offline.

The document carries every stored event exactly as stored (flat JSON, `prev_hash` and `hash`
included), the stream head and `chain_digest`, the SPEC §6 digest of a ledger holding only this
patient: SHA-256 of the line `"<patient_id> <version> <head hash>\\n"`. `verify_export` needs no
database: it recomputes every hash from the events' content, so one character changed anywhere
in an event breaks the chain at that event, named by (patient_id, version). Dropping events from
the end and fixing up `head` and `chain_digest` leaves a document that is consistent with itself;
only a digest kept elsewhere shows that, so pass it as `digest`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import Struct

from domain.errors import NotFound, RuleViolation
from domain.integrity import ChainChecker, digest_heads
from domain.ledger.application import Ledger

FORMAT = "oncoledger-export/1"


class ExportBreak(Struct, frozen=True, kw_only=True):
    patient_id: str
    version: int
    reason: str


class ExportReport(Struct, frozen=True, kw_only=True):
    """What `verify_export` found. `ok` only when the chain, the head, `chain_digest` and (when
    given) the expected digest all agree."""

    ok: bool
    patient_id: str | None
    events: int
    # The head and digest recomputed from the events (up to the first break).
    head_version: int
    head_hash: str | None
    chain_digest: str | None
    first_break: ExportBreak | None = None
    problems: list[str] = msgspec.field(default_factory=list)
    # The stream version whose head / chain_digest equals the expected `digest`, if any: a
    # digest kept at an earlier export still matches the prefix recorded by then.
    digest_matched_version: int | None = None


def chain_digest(patient_id: str, version: int, head_hash: str) -> str:
    return digest_heads([(patient_id, version, head_hash)]).sha256


def export_patient(ledger: Ledger, patient_id: str) -> dict[str, Any]:
    """The export document of one patient; refuses a stream whose chain does not verify."""
    if not ledger.exists(patient_id):
        raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
    ledger.refuse_erased(patient_id)
    checker = ChainChecker()
    events: list[dict[str, Any]] = []
    for _pid, version, state in ledger.scan(patient_id):
        checker.feed(patient_id, version, state)
        if not checker.report.ok:
            broken = checker.report.breaks[0]
            raise RuleViolation(
                f"patient {patient_id}'s stored chain is broken at version {broken.version} "
                f"({broken.reason}); nothing was exported, run verify",
                field="patient_id",
                rule="chain_intact",
            )
        assert isinstance(state, bytes)  # refused above when erased (a dict): never reached
        events.append(msgspec.json.decode(state))
    version, head = checker.heads()[patient_id]
    return {
        "format": FORMAT,
        "patient_id": patient_id,
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "events": events,
        "head": {"version": version, "hash": head},
        "chain_digest": chain_digest(patient_id, version, head),
    }


def verify_export(
    document: dict[str, Any] | bytes | str, *, digest: str | None = None
) -> ExportReport:
    """Recompute an export's chain with no database; `digest`: a head hash or chain digest kept
    elsewhere (of this export or of an earlier one of the same patient)."""
    problems: list[str] = []
    if isinstance(document, bytes | str):
        try:
            document = msgspec.json.decode(document)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return _failed(f"the document is not valid JSON ({exc})")
    if not isinstance(document, dict):
        return _failed("the document is not a JSON object")
    if document.get("format") != FORMAT:
        problems.append(f"`format` is {document.get('format')!r}, not {FORMAT!r}")
    patient_id = document.get("patient_id")
    events = document.get("events")
    if not isinstance(patient_id, str) or not patient_id:
        return _failed("`patient_id` is missing", problems)
    if not isinstance(events, list) or not events:
        return _failed("`events` is missing or empty", problems, patient_id=patient_id)

    checker = ChainChecker()
    # Every prefix's digest lines, to match a digest kept at an earlier export.
    prefixes: dict[str, int] = {}
    for index, event in enumerate(events, start=1):
        checker.feed(patient_id, index, event if isinstance(event, dict) else b"[]")
        if not checker.report.ok:
            break
        head_hash = str(event["hash"])
        prefixes[head_hash] = index
        prefixes[chain_digest(patient_id, index, head_hash)] = index
    version, head = checker.heads()[patient_id]
    first = checker.report.first_break
    intact = first is None
    recomputed = chain_digest(patient_id, version, head) if intact else None

    stated = document.get("head")
    if not isinstance(stated, dict):
        problems.append("`head` is missing")
    elif intact and (stated.get("version") != version or stated.get("hash") != head):
        problems.append(
            f"`head` says version {stated.get('version')} hash {stated.get('hash')}, "
            f"the events end at version {version} hash {head}"
        )
    if intact and document.get("chain_digest") != recomputed:
        problems.append(
            f"`chain_digest` is {document.get('chain_digest')!r}, the events give {recomputed}"
        )
    matched = None
    if digest is not None:
        matched = prefixes.get(digest.strip().lower())
        if matched is None:
            problems.append(
                "the expected digest matches neither the head nor the chain digest of any "
                "version in this export"
            )
    return ExportReport(
        ok=intact and not problems,
        patient_id=patient_id,
        events=len(events),
        head_version=version if first is None else first.version - 1,
        head_hash=head if first is None or first.version > 1 else None,
        chain_digest=recomputed,
        first_break=(
            ExportBreak(patient_id=first.patient_id, version=first.version, reason=first.reason)
            if first is not None
            else None
        ),
        problems=problems,
        digest_matched_version=matched,
    )


def _failed(
    problem: str, problems: list[str] | None = None, *, patient_id: str | None = None
) -> ExportReport:
    return ExportReport(
        ok=False,
        patient_id=patient_id,
        events=0,
        head_version=0,
        head_hash=None,
        chain_digest=None,
        problems=[*(problems or []), problem],
    )


__all__ = [
    "FORMAT",
    "ExportBreak",
    "ExportReport",
    "chain_digest",
    "export_patient",
    "verify_export",
]
