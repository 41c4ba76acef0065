"""The reads of the service root: streams, per-patient read models, figures, the cohort."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from domain import events as ev
from domain.errors import NotFound
from projections import readmodels
from projections.figure import FigureData, figure_data
from projections.figure import Format as ChartFormat
from projections.projector import Projector
from projections.root_state import RootState, _views_behind

if TYPE_CHECKING:
    from projections.cohort_survival import Analysis

# The service root's logger, as before it was split into modules.
log = logging.getLogger("projections.root")

# How long a cohort-list read waits for a running projector to reach the head before it answers
# with what the views hold (saying so in `lag`).
COHORT_WAIT_SECONDS = 2.0


class ReadsMixin(RootState):
    """`OncoLedger`'s reads."""

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

    # -- cohort survival -----------------------------------------------------------------------

    def cohort_survival(self, *, by: str, **query: Any) -> Analysis:
        """Survival by group over the cohort index's filters (`projections.cohort_survival`;
        imported here: lifelines takes most of a second to load, which no other command pays)."""
        from projections.cohort_survival import survival_by_group

        return survival_by_group(self.views, by=by, **query)
