"""How far the projector has brought the read models: `GET /api/v1/projections/status`."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from api.auth import SECURITY, requires
from api.errors import error_responses
from projections.root import OncoLedger


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    position: int  # the last notification (recording position) the views have applied
    head: int  # the last one the ledger has recorded
    lag: int  # head - position: recorded events the views do not show yet
    projector: bool  # whether a projector runs in the process that answered


class ProjectionController(Controller):
    path = "/api/v1/projections"
    tags = ("service",)
    security = SECURITY
    guards = [requires("read")]

    @get(
        path="/status",
        operation_id="getProjectionStatus",
        summary="The projector's position, the ledger's head and the lag between them",
        description="Per-patient reads are always current (read-your-writes); the cohort "
        "list and its count may lag by `lag` events.",
        sync_to_thread=True,
        responses=error_responses(401, 403),
    )
    def status(self, service: NamedDependency[OncoLedger]) -> ProjectionStatus:
        status = service.projection_status()
        running = service.projector is not None and service.projector.running
        return ProjectionStatus(
            position=status["position"], head=status["head"], lag=status["lag"], projector=running
        )
