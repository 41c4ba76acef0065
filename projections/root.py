"""The composition root: one `OncoLedger` per process opens the ledger and its read models.

The CLI and the REST API both call this and nothing below it. Commands go to the domain's
`Ledger`. In the CLI the views catch up before a write command returns; in the server a
projector (`projections.projector`) applies writes after they are answered. Per-patient reads
come from the stored views when those hold the whole stream, else (and for `as_of` / `upto`)
are derived from the stream: a client always reads its own writes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import DomainError, ValidationFailed
from domain.input_checks import in_batch

# What the adapters (api/, cli/) use from the write side, named here so that they import the
# service root and nothing below it (the import-linter contract in pyproject.toml checks it).
from domain.ledger.access_log import MAX_LIMIT as ACCESS_MAX_LIMIT
from domain.ledger.access_log import AccessLog, AccessPage
from domain.ledger.application import Ledger, Receipt, StoreConfig
from domain.ledger.db import open_db
from domain.ledger.db import views_path as views_path
from domain.ledger.key_check import check_cipher_key
from domain.ledger.key_file import create_key_file as create_key_file
from domain.ledger.key_file import with_key_file
from domain.ledger.migration import MigrationReport, migrate
from domain.ledger.patient_keys import Erasure
from domain.ledger.storage_faults import storage_fault
from domain.ledger.tokens import ROLES as ROLES
from domain.ledger.tokens import Permission as Permission
from domain.ledger.tokens import Principal as Principal
from domain.ledger.tokens import TokenStore
from domain.ledger.tokens import authorize as authorize
from domain.ledger.web_sessions import LIFETIME as WEB_SESSION_LIFETIME
from domain.ledger.web_sessions import WebSession as WebSession
from domain.ledger.web_sessions import WebSessionStore
from projections.feed import Feed
from projections.importer import IMPORT_BATCH as IMPORT_BATCH
from projections.importer import ImportMixin
from projections.importer import ImportReport as ImportReport
from projections.projector import Projector
from projections.root_audit import AuditMixin
from projections.root_reads import COHORT_WAIT_SECONDS as COHORT_WAIT_SECONDS
from projections.root_reads import ReadsMixin
from projections.views import REBUILD_BATCH as REBUILD_BATCH
from projections.views import Views

__all__ = [
    "ACCESS_MAX_LIMIT",
    "REBUILD_BATCH",
    "ROLES",
    "WEB_SESSION_LIFETIME",
    "AccessPage",
    "Erasure",
    "OncoLedger",
    "Permission",
    "Principal",
    "Receipt",
    "StoreConfig",
    "WebSession",
    "authorize",
    "storage_fault",
    "views_path",
]

Body = dict[str, Any] | ev.AnyEvent


def _batch_entry(body: Body, index: int, total: int, patient_id: str) -> ev.AnyEvent:
    try:
        return as_entry(body, patient_id=patient_id)
    except DomainError as exc:
        raise (in_batch(exc, index) if total > 1 else exc) from None


def as_entry(body: Body, *, patient_id: str | None = None) -> ev.AnyEvent:
    if isinstance(body, ev.Event):
        return body
    if not isinstance(body, dict):
        raise ValidationFailed("an event must be a JSON object", field="$", rule="schema")
    if patient_id is not None and "patient_id" not in body:
        body = {**body, "patient_id": patient_id}
    return decode_entry(body)


class OncoLedger(ImportMixin, ReadsMixin, AuditMixin):
    """The product's service layer as one object: ledger + views for one process.

    Writes are here; imports (`projections.importer`), reads (`projections.root_reads`),
    integrity, erasure, change audit, access log and export (`projections.root_audit`) are
    mixins over the state they share, which keeps the views current (`projections.root_state`)."""

    def __init__(self, config: StoreConfig | None = None, *, project_inline: bool = True) -> None:
        # No key set, and `<db>.key` beside a SQLite store: that is its master key.
        self.config = with_key_file(config or StoreConfig.from_env())
        # True (the CLI): a write brings the views current before it returns. False (the
        # server): writes return once stored, and a projector applies them.
        self.project_inline = project_inline
        self.projector: Projector | None = None
        self.ledger = Ledger(self.config)
        self.access_log = AccessLog.open(self.config)
        try:
            check_cipher_key(self.access_log.db, self.ledger)  # before any read or write
        except BaseException:
            self.access_log.close()
            self.ledger.close()
            raise
        self.views = Views.open(self.config, self.ledger)
        self.tokens = TokenStore.open(self.config)
        self.feed = Feed(self.ledger)
        self.ledger.on_saved = self._saved
        self.web_sessions = WebSessionStore.open(self.config, self.tokens)

    def _saved(self) -> None:
        self.feed.wake()
        if self.projector is not None:
            self.projector.wake()

    def start_projector(self) -> Projector:
        """Run a projector thread in this process (the server's default)."""
        if self.projector is None:
            self.projector = Projector(self.views)
        self.projector.start()
        return self.projector

    def close(self) -> None:
        if self.projector is not None:
            self.projector.stop()
        self.web_sessions.close()
        self.tokens.close()
        self.access_log.close()
        self.views.close()
        self.ledger.close()

    def __enter__(self) -> OncoLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------------

    def register(self, patient_id: str, body: Body, *, actor: str, source: str) -> Receipt:
        if isinstance(body, dict):
            body = {"type": "patient_registered", **body}
        entry = as_entry(body, patient_id=patient_id)
        if not isinstance(entry, ev.PatientRegistered):
            raise ValidationFailed(
                "a registration is a patient_registered event", field="type", rule="schema"
            )
        return self.append(patient_id, [entry], actor=actor, source=source)[0]

    def append(
        self,
        patient_id: str,
        bodies: Sequence[Body],
        *,
        actor: str,
        source: str,
        expected_version: int | None = None,
    ) -> list[Receipt]:
        entries = [_batch_entry(b, i, len(bodies), patient_id) for i, b in enumerate(bodies)]
        return self._append_entries(
            patient_id, entries, actor=actor, source=source, expected_version=expected_version
        )

    def _append_entries(
        self,
        patient_id: str,
        entries: Sequence[ev.AnyEvent],
        *,
        actor: str,
        source: str,
        expected_version: int | None = None,
    ) -> list[Receipt]:
        receipts = self.ledger.append(
            patient_id, entries, actor=actor, source=source, expected_version=expected_version
        )
        self._after_write()
        return receipts

    async def append_async(
        self,
        patient_id: str,
        bodies: Sequence[Body],
        *,
        actor: str,
        source: str,
        expected_version: int | None = None,
    ) -> list[Receipt]:
        """`append`, for a caller on an event loop (`Ledger.append_async`). Where the views
        are brought current by the writer itself (no projector), the whole append runs in a
        worker thread, as that reads the store."""
        entries = [_batch_entry(b, i, len(bodies), patient_id) for i, b in enumerate(bodies)]
        if self.project_inline and self.projector is None:
            return await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(
                    self._append_entries,
                    patient_id,
                    entries,
                    actor=actor,
                    source=source,
                    expected_version=expected_version,
                ),
            )
        return await self.ledger.append_async(
            patient_id, entries, actor=actor, source=source, expected_version=expected_version
        )

    def amend(
        self,
        patient_id: str,
        target_event_id: UUID,
        replacement: Body,
        *,
        reason: str,
        actor: str,
        source: str,
        event_id: UUID | None = None,
        expected_version: int | None = None,
    ) -> Receipt:
        if isinstance(replacement, ev.Event):
            replacement = msgspec.to_builtins(replacement)
        return self._correct(
            patient_id,
            {"type": "event_amended", "replacement": replacement},
            target_event_id,
            reason=reason,
            actor=actor,
            source=source,
            event_id=event_id,
            expected_version=expected_version,
        )

    def retract(
        self,
        patient_id: str,
        target_event_id: UUID,
        *,
        reason: str,
        actor: str,
        source: str,
        event_id: UUID | None = None,
        expected_version: int | None = None,
    ) -> Receipt:
        return self._correct(
            patient_id,
            {"type": "event_retracted"},
            target_event_id,
            reason=reason,
            actor=actor,
            source=source,
            event_id=event_id,
            expected_version=expected_version,
        )

    def _correct(
        self,
        patient_id: str,
        body: dict[str, Any],
        target_event_id: UUID,
        *,
        reason: str,
        actor: str,
        source: str,
        event_id: UUID | None,
        expected_version: int | None,
    ) -> Receipt:
        """A correction is an event of its own, dated the day it is made."""
        body = {**body, "occurred": _today(), "target_event_id": str(target_event_id)}
        body["reason"] = reason
        if event_id is not None:
            body["event_id"] = str(event_id)
        return self.append(
            patient_id, [body], actor=actor, source=source, expected_version=expected_version
        )[0]

    def record_demo(self, *, actor: str, source: str = "cli") -> list[tuple[str, int]]:
        """Record the shipped demo patients (idempotent: their events carry fixed ids)."""
        from domain.demo import record_demo

        recorded = record_demo(self.ledger, actor=actor, source=source)
        self._after_write()
        return recorded

    def record_demo_cohort(
        self,
        n: int,
        *,
        seed: int | None = None,
        actor: str,
        source: str = "cli",
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Record `n` synthetic SYN- patients (seeded; again: a no-op); return the new events."""
        from domain.demo.cohort import DEFAULT_SEED, record_cohort

        created = record_cohort(
            self.ledger,
            n,
            seed=DEFAULT_SEED if seed is None else seed,
            actor=actor,
            source=source,
            progress=progress,
        )
        self._after_write()
        return created


def migrate_store(config: StoreConfig) -> MigrationReport:
    """Seal a store's older events under per-patient keys (`oncoledger migrate`). Opens the
    ledger without the start-up key check: a plaintext store given a key is what it migrates."""
    ledger = Ledger(with_key_file(config))
    db = open_db(ledger.config, side="ledger")
    try:
        return migrate(db, ledger)
    finally:
        db.close()
        ledger.close()


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
