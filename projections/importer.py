"""Importing JSON Lines of events into the ledger (`OncoLedger.import_lines`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import DomainError, OutcomeUnknown, StorageFault, ValidationFailed
from domain.input_checks import parse_json, strip_bom
from projections.root_state import RootState

IMPORT_BATCH = 500


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


class ImportMixin(RootState):
    """`OncoLedger`'s import of JSON Lines."""

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
