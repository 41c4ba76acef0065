"""The service root's integrity checks, erasure, change audit, access log and export."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.errors import DomainError, StorageFault
from domain.export import ExportReport, export_patient, verify_export
from domain.integrity import ChainReport
from domain.ledger.access_log import AccessLogReport, AccessPage
from domain.ledger.key_check import rotate_master_key
from domain.ledger.patient_keys import Erasure
from domain.ledger.storage_faults import storage_fault
from projections.audit import AuditPage, LedgerDigest, ledger_digest, query_audit
from projections.root_state import RootState


class AuditMixin(RootState):
    """`OncoLedger`'s integrity, erasure, change audit, access log and export."""

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
