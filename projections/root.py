"""The composition root: one `OncoLedger` per process opens the ledger and its read models.

The CLI and the REST API both call this and nothing below it. Commands go to the domain's
`Ledger`; after each write the views catch up before the command returns, so a client reads
its own writes. Reads come from the stored views, or, for `as_of` / `upto`, are derived from
the stream as it was then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from domain import events as ev
from domain.errors import DomainError, NotFound, ValidationFailed
from domain.export import ExportReport, export_patient, verify_export
from domain.integrity import ChainReport
from domain.ledger import Ledger, Receipt, StoreConfig, decode_entry
from projections import readmodels
from projections.access_log import AccessLog, AccessLogReport, AccessPage
from projections.audit import AuditPage, LedgerDigest, ledger_digest, query_audit
from projections.figure import FigureData, figure_data
from projections.figure import Format as ChartFormat
from projections.tokens import TokenStore
from projections.views import Views
from projections.web_sessions import WebSessionStore

Body = dict[str, Any] | ev.AnyEvent


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


class OncoLedger:
    """The product's service layer as one object: ledger + views for one process."""

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig.from_env()
        self.ledger = Ledger(self.config)
        self.views = Views.open(self.config, self.ledger)
        self.ledger.locate_event = self.views.locate_event
        self.access_log = AccessLog.open(self.config)
        self.tokens = TokenStore.open(self.config)
        self.web_sessions = WebSessionStore.open(self.config, self.tokens)

    def close(self) -> None:
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
        entries = [as_entry(b, patient_id=patient_id) for b in bodies]
        receipts = self.ledger.append(
            patient_id, entries, actor=actor, source=source, expected_version=expected_version
        )
        self.views.catch_up()
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
        run: list[tuple[int, ev.AnyEvent]] = []
        run_patient: str | None = None
        for number, line in enumerate(lines, start=1):
            if progress:
                progress(number)
            if not line.strip():
                continue
            try:
                patient_id, entry = _import_line(line)
            except DomainError as exc:
                report.failed.append((number, exc.message))
                continue
            if patient_id != run_patient or len(run) >= IMPORT_BATCH:
                self._import_run(run_patient, run, actor, report)
                run, run_patient = [], patient_id
            run.append((number, entry))
        self._import_run(run_patient, run, actor, report)
        report.failed.sort()
        self.views.catch_up()
        return report

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
        self.views.catch_up()
        return recorded

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
        stored = self._stored_doc(patient_id, view, as_of=as_of, upto=upto, rule=rule)
        if stored is not None:
            decoded: msgspec.Struct = msgspec.json.decode(stored, type=readmodels.VIEW_TYPES[view])
            return decoded
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
        """The same as `read`, as JSON; the current state comes straight from the stored view."""
        stored = self._stored_doc(patient_id, view, as_of=as_of, upto=upto, rule=rule)
        if stored is not None:
            return stored
        return msgspec.json.encode(self.read(patient_id, view, as_of=as_of, upto=upto, rule=rule))

    def _stored_doc(
        self,
        patient_id: str,
        view: str,
        *,
        as_of: datetime | None,
        upto: int | None,
        rule: str | None,
    ) -> bytes | None:
        if view not in readmodels.PATIENT_VIEWS:
            raise NotFound(f"no view named {view!r}", field="view")
        if as_of is not None or upto is not None:
            return None
        if view == "ctc" and readmodels.effective_rule(rule) != readmodels.STORED_CTC_RULE:
            return None
        self.views.catch_up()
        return self.views.doc(patient_id, view)

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
        return self.views.patients(**query)

    def patient(self, patient_id: str) -> readmodels.PatientRow:
        return self.views.patient(patient_id)

    # -- integrity -----------------------------------------------------------------------------

    def verify(self, patient_id: str | None = None) -> ChainReport:
        return self.ledger.verify(patient_id)

    def digest(self, *, as_of: datetime | str | None = None) -> LedgerDigest:
        """SPEC §6 digest over the recomputed stream heads plus the access log's head; with
        `as_of`, over what was recorded up to that instant (to compare with a digest kept then)."""
        return ledger_digest(self.ledger, self.access_log, as_of=as_of)

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
        self.views.catch_up()
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
        """Record one read of clinical data; adapters call it on every clinical read."""
        self.access_log.record(
            actor, channel=channel, resource=resource, patient_id=patient_id, address=address
        )

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


IMPORT_BATCH = 500


def _import_line(line: bytes | str) -> tuple[str, ev.AnyEvent]:
    """One JSON Lines record: its patient and its event, validated."""
    try:
        data = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"not valid JSON: {exc}", field="$", rule="json") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("a line must be one JSON object", field="$")
    patient_id = data.get("patient_id")
    if not isinstance(patient_id, str):
        raise ValidationFailed(
            "each line needs a `patient_id`", field="patient_id", rule="required"
        )
    return patient_id, decode_entry(ev.strip_server_fields(data))


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
