"""The composition root: one `OncoLedger` per process opens the ledger and its read models.

The CLI and the REST API both call this and nothing below it. Commands go to the domain's
`Ledger`. In the CLI the views catch up before a write command returns; in the server a
projector (`projections.projector`) applies writes after they are answered. Per-patient reads
come from the stored views when those hold the whole stream, else (and for `as_of` / `upto`)
are derived from the stream: a client always reads its own writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import DomainError, NotFound, OutcomeUnknown, StorageFault, ValidationFailed
from domain.export import ExportReport, export_patient, verify_export
from domain.input_checks import in_batch, parse_json, strip_bom
from domain.integrity import ChainReport

# What the adapters (api/, cli/) use from the write side, named here so that they import the
# service root and nothing below it (the import-linter contract in pyproject.toml checks it).
from domain.ledger.access_log import MAX_LIMIT as ACCESS_MAX_LIMIT
from domain.ledger.access_log import AccessLog, AccessLogReport, AccessPage
from domain.ledger.application import Ledger, Receipt, StoreConfig
from domain.ledger.db import open_db
from domain.ledger.db import views_path as views_path
from domain.ledger.key_check import check_cipher_key, rotate_master_key
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
from projections import readmodels
from projections.audit import AuditPage, LedgerDigest, ledger_digest, query_audit
from projections.feed import Feed
from projections.figure import FigureData, figure_data
from projections.figure import Format as ChartFormat
from projections.projector import Projector
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

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from projections.cohort_survival import Analysis

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


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    # Lines that carried server-assigned fields (an export's lines do): this ledger assigns
    # them anew, so their values were ignored.
    server_fields_ignored: int = 0
    # A storage fault (full disk, lost store) stops the import: the line it stopped at, from
    # which on nothing was imported (unless `stopped_outcome_unknown`: that line's batch may
    # have been stored; the lines after it were not), and the fault's sentence.
    stopped_at: int | None = None
    stopped_because: str | None = None
    stopped_outcome_unknown: bool = False


class _ImportStopped(Exception):
    def __init__(self, line: int, fault: StorageFault) -> None:
        super().__init__(fault.message)
        self.line, self.fault = line, fault


class OncoLedger:
    """The product's service layer as one object: ledger + views for one process."""

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
        receipts = self.ledger.append(
            patient_id, entries, actor=actor, source=source, expected_version=expected_version
        )
        self._after_write()
        return receipts

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

    def import_lines(
        self,
        lines: Iterable[bytes | str],
        *,
        actor: str,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """JSON Lines of events for many patients: valid lines stored, invalid ones reported.

        Consecutive lines of one patient are stored as one transaction; when that batch is
        refused, its lines are stored one by one so that exactly the bad ones are reported."""
        report = ImportReport()
        try:
            self._import_all(lines, actor, progress, report)
        except _ImportStopped as stop:
            report.stopped_at, report.stopped_because = stop.line, stop.fault.message
            report.stopped_outcome_unknown = isinstance(stop.fault, OutcomeUnknown)
        report.failed.sort()
        self._after_write()
        return report

    def _import_all(
        self,
        lines: Iterable[bytes | str],
        actor: str,
        progress: Callable[[int], None] | None,
        report: ImportReport,
    ) -> None:
        run: list[tuple[int, ev.AnyEvent]] = []
        run_patient: str | None = None
        for number, line in enumerate(lines, start=1):
            if progress:
                progress(number)
            if number == 1:
                line = strip_bom(line)
            if not line.strip():
                continue
            try:
                patient_id, entry, ignored = _import_line(line)
            except DomainError as exc:
                report.failed.append((number, exc.message))
                continue
            if patient_id != run_patient or len(run) >= IMPORT_BATCH:
                self._import_run(run_patient, run, actor, report)
                run, run_patient = [], patient_id
            run.append((number, entry))
            report.server_fields_ignored += ignored
        self._import_run(run_patient, run, actor, report)

    def _import_run(
        self,
        patient_id: str | None,
        run: list[tuple[int, ev.AnyEvent]],
        actor: str,
        report: ImportReport,
    ) -> None:
        if patient_id is None or not run:
            return
        try:
            receipts = self.ledger.append(
                patient_id, [entry for _, entry in run], actor=actor, source="import"
            )
        except StorageFault as fault:  # every later line would fail alike: stop here
            raise _ImportStopped(run[0][0], fault) from fault
        except DomainError as exc:
            if len(run) == 1:
                report.failed.append((run[0][0], exc.message))
            else:
                for item in run:
                    self._import_run(patient_id, [item], actor, report)
            return
        for receipt in receipts:
            if receipt.created:
                report.stored += 1
            else:
                report.duplicates += 1

    # -- reads ---------------------------------------------------------------------------------

    def history(
        self, patient_id: str, *, as_of: datetime | None = None, upto: int | None = None
    ) -> list[ev.AnyEvent]:
        return self.ledger.history(patient_id, as_of=as_of, upto=upto)

    def event(self, patient_id: str, event_id: UUID) -> ev.AnyEvent:
        """One stored event of a patient's stream, as first recorded."""
        for entry in self.history(patient_id):
            if entry.event_id == event_id:
                return entry
        raise NotFound(
            f"event {event_id} is not in the stream of patient {patient_id}", field="event_id"
        )

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

    def version(self, patient_id: str) -> int:
        return self.ledger.version(patient_id)

    def read(
        self,
        patient_id: str,
        view: str,
        *,
        as_of: datetime | None = None,
        upto: int | None = None,
        rule: str | None = None,
    ) -> msgspec.Struct:
        """One read model of one patient, now or as it was at `as_of` / `upto`."""
        if self._current_read(patient_id, view, as_of=as_of, upto=upto):
            return self.views.current.view(patient_id, view, rule=rule)
        history = self.history(patient_id, as_of=as_of, upto=upto)
        computed: msgspec.Struct = readmodels.compute(view, patient_id, history, rule=rule)
        return computed

    def read_json(
        self,
        patient_id: str,
        view: str,
        *,
        as_of: datetime | None = None,
        upto: int | None = None,
        rule: str | None = None,
    ) -> bytes:
        """The same as `read`, as JSON; the current state comes from the kept state."""
        if self._current_read(patient_id, view, as_of=as_of, upto=upto):
            return self.views.current.json(patient_id, view, rule=rule)
        return msgspec.json.encode(self.read(patient_id, view, as_of=as_of, upto=upto, rule=rule))

    def _current_read(
        self, patient_id: str, view: str, *, as_of: datetime | None, upto: int | None
    ) -> bool:
        """Per-patient read models are not stored (they grow with the history): the current
        ones are computed from the stream as stored now (read-your-writes from any process)
        through this process's kept state of the patient (`projections.current`)."""
        if view not in readmodels.PATIENT_VIEWS:
            raise NotFound(f"no view named {view!r}", field="view")
        self.ledger.refuse_erased(patient_id)
        return as_of is None and upto is None

    def figure(
        self, patient_id: str, *, as_of: datetime | None = None, rule: str | None = None
    ) -> FigureData:
        """The content of the CTC and stage figure (case report Figure 4) of one patient."""
        views = {
            name: self.read(patient_id, name, as_of=as_of, rule=rule if name == "ctc" else None)
            for name in ("timeline", "stage", "ctc", "survival")
        }
        return figure_data(**views)  # type: ignore[arg-type]

    def chart(
        self,
        patient_id: str,
        fmt: ChartFormat = "svg",
        *,
        as_of: datetime | None = None,
        rule: str | None = None,
    ) -> bytes:
        """That figure drawn as SVG, PNG or PDF."""
        return self.draw(self.figure(patient_id, as_of=as_of, rule=rule), fmt)

    @staticmethod
    def draw(figure: FigureData, fmt: ChartFormat = "svg") -> bytes:
        # matplotlib takes a second to import: only what draws a figure pays for it.
        from projections.chart import render

        return render(figure, fmt)

    def replay(self, patient_id: str) -> list[readmodels.ReplayStep]:
        return readmodels.replay(patient_id, self.history(patient_id))

    def patients(self, **query: Any) -> readmodels.PatientPage:
        """The cohort index, which may lag the ledger by the projector's delay (the page's
        `position` and `lag` say by how much): with a projector running it is waited for
        briefly; inline (the CLI), the views catch up first."""
        if self.project_inline and self.projector is None:
            self._require_current_views("the cohort index")
        else:
            waiter = self.projector or Projector(self.views)
            behind = not waiter.wait_for(self.views.head(), COHORT_WAIT_SECONDS)
            if behind and self.projector is not None:
                # This process's projector is busy, or failing? One try here tells (never
                # waiting on another's batch): a failure is a refusal, not a stale list. With
                # projection left to workers (--no-projector), the page says its lag instead.
                try:
                    self.views.catch_up(skip_locked=True)
                except Exception as exc:
                    log.exception("the cohort index could not catch up with the ledger")
                    raise _views_behind("the cohort index") from exc
        return self.views.patients(**query)

    def patient(self, patient_id: str) -> readmodels.PatientRow:
        self.ledger.refuse_erased(patient_id)
        version = self.ledger.version(patient_id)
        if not version:
            return self.views.patient(patient_id)  # not registered: NotFound
        try:
            row = self.views.patient_at(patient_id, version)
        except Exception:
            log.exception("the views could not be read; derived from the stream instead")
            row = None
        if row is not None:
            return row
        return self.views.current.row(patient_id)

    def projection_status(self) -> dict[str, int]:
        """How far the projector has applied the ledger: position, head and lag (events)."""
        return self.views.status()

    # -- keeping the views current -------------------------------------------------------------
    # A write is acknowledged once the ledger has stored it; the views are derived and catch up
    # on the next write or read when they cannot now (a full disk under the views file, say).
    # Reads never answer from views that are behind: they derive from the stream, or refuse.

    def _after_write(self) -> None:
        if self.project_inline and self.projector is None:
            self.catch_up_views()

    def catch_up_views(self) -> bool:
        """Bring the views up to the ledger's head (a server does it at start-up, after an
        interrupted import say). False when they cannot now (logged): a later write or read
        tries again."""
        try:
            self.views.catch_up()
        except Exception:
            log.exception("the views could not catch up with the ledger; they will later")
            return False
        return True

    def _require_current_views(self, what: str) -> None:
        if not self.catch_up_views():
            raise _views_behind(what)

    # -- cohort survival -----------------------------------------------------------------------

    def cohort_survival(self, *, by: str, **query: Any) -> Analysis:
        """Survival by group over the cohort index's filters (`projections.cohort_survival`;
        imported here: lifelines takes most of a second to load, which no other command pays)."""
        from projections.cohort_survival import survival_by_group

        return survival_by_group(self.views, by=by, **query)

    # -- integrity -----------------------------------------------------------------------------

    def verify(self, patient_id: str | None = None) -> ChainReport:
        return self.ledger.verify(patient_id)

    def digest(self, *, as_of: datetime | str | None = None) -> LedgerDigest:
        """SPEC §6 digest over the recomputed stream heads plus the access log's head; with
        `as_of`, over what was recorded up to that instant (to compare with a digest kept then)."""
        return ledger_digest(self.ledger, self.access_log, as_of=as_of)

    # -- erasure (crypto-shredding, domain/ledger/patient_keys.py) -----------------------------

    def erase(self, patient_id: str, *, actor: str, reason: str, channel: str) -> Erasure:
        """Destroy the patient's data key, forget its read models, record who, when and why
        (in the key table and the access log). Idempotent: again, it answers with the first."""
        erasure = self.ledger.erase(patient_id, actor=actor, reason=reason)
        self.views.forget(patient_id)
        if erasure.created:
            self.log_access(actor, channel=channel, resource="erasure", patient_id=patient_id)
            self.feed.wake()
        return erasure

    def erasures(self) -> list[Erasure]:
        """Every erasure: patient id, when, by whom, why (no clinical content)."""
        return self.ledger.erasures()

    def rotate_keys(self, new_master_key: str, *, actor: str, channel: str) -> int:
        """Re-wrap every patient key under `new_master_key` (events untouched); the store's
        key check moves to the new key in the same step."""
        count = rotate_master_key(self.access_log.db, self.ledger, new_master_key)
        self.log_access(actor, channel=channel, resource="keys-rotate")
        return count

    # -- change audit, access log, export ------------------------------------------------------

    def audit(
        self,
        patient_id: str | None = None,
        *,
        actor: str | None = None,
        type: str | Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        corrections: bool = False,
        after: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """Stored events in recording order (SPEC §4 audit), filtered, paged by `position`."""
        self._require_current_views("the change audit")
        return query_audit(
            self.views.db,
            patient_id,
            actor=actor,
            type=type,
            since=since,
            until=until,
            corrections=corrections,
            after=after,
            limit=limit,
        )

    def log_access(
        self,
        actor: str,
        *,
        channel: str,
        resource: str,
        patient_id: str | None = None,
        address: str | None = None,
    ) -> None:
        """Record one read of clinical data; adapters call it on every clinical read, before
        they answer. A read that cannot be logged is refused (fail closed: HIPAA §164.312(b)
        audit controls), as a `StorageFault` saying why."""
        try:
            self.access_log.record(
                actor, channel=channel, resource=resource, patient_id=patient_id, address=address
            )
        except DomainError:
            raise
        except Exception as exc:
            fault = storage_fault(
                exc,
                doing="writing the access-log entry of this read",
                path=self.config.sqlite_path,
            )
            if fault is None:
                raise
            raise StorageFault(
                f"{fault.message.rsplit(';', 1)[0]}, so the read is refused: every read of "
                "clinical data must be recorded in the access log",
                rule="access_log_unavailable",
            ) from exc

    def access_entries(
        self,
        auditor: str,
        *,
        channel: str,
        address: str | None = None,
        patient_id: str | None = None,
        actor: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> AccessPage:
        """The access log for auditors; the read is itself logged as `access-log` by `auditor`."""
        page = self.access_log.query(patient_id, actor, since, after, limit, until=until)
        self.log_access(
            auditor, channel=channel, resource="access-log", patient_id=patient_id, address=address
        )
        return page

    def verify_access_log(self) -> AccessLogReport:
        return self.access_log.verify()

    def export(self, patient_id: str) -> dict[str, Any]:
        """One patient's stream as a self-contained, offline-verifiable JSON document."""
        return export_patient(self.ledger, patient_id)

    @staticmethod
    def verify_export(
        document: dict[str, Any] | bytes | str, *, digest: str | None = None
    ) -> ExportReport:
        """Verify an export with no database (callable on the class, nothing opened)."""
        return verify_export(document, digest=digest)


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


IMPORT_BATCH = 500
# How long a cohort-list read waits for a running projector to reach the head before it answers
# with what the views hold (saying so in `lag`).
COHORT_WAIT_SECONDS = 2.0


def _import_line(line: bytes | str) -> tuple[str, ev.AnyEvent, bool]:
    """One JSON Lines record: its patient, its event (validated), and whether it carried
    server-assigned fields, which are ignored (the server assigns them again here)."""
    data = parse_json(line, what="the line")
    if not isinstance(data, dict):
        raise ValidationFailed("a line must be one JSON object", field="$")
    patient_id = data.get("patient_id")
    if not isinstance(patient_id, str):
        raise ValidationFailed(
            "each line needs a `patient_id`", field="patient_id", rule="required"
        )
    ignored = any(data.get(name) is not None for name in ev.SERVER_FIELDS)
    return patient_id, decode_entry(ev.strip_server_fields(data)), ignored


def _views_behind(what: str) -> StorageFault:
    return StorageFault(
        f"{what} cannot catch up with the ledger (the server log says why); it would "
        "be incomplete, so it is not answered; try again later",
        rule="views_behind",
    )


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
