"""What the parts of the service root share: the attributes `OncoLedger.__init__` opens, and
keeping the views current (`projections.root` composes `OncoLedger` from this and its mixins)."""

from __future__ import annotations

import logging

from domain.errors import StorageFault
from domain.ledger.access_log import AccessLog
from domain.ledger.application import Ledger, StoreConfig
from projections.feed import Feed
from projections.projector import Projector
from projections.views import Views

# The service root's logger, as before it was split into modules.
log = logging.getLogger("projections.root")


class RootState:
    """The state of one `OncoLedger` (set by its `__init__`) and the views' catching up."""

    config: StoreConfig
    project_inline: bool
    projector: Projector | None
    ledger: Ledger
    access_log: AccessLog
    views: Views
    feed: Feed

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


def _views_behind(what: str) -> StorageFault:
    return StorageFault(
        f"{what} cannot catch up with the ledger (the server log says why); it would "
        "be incomplete, so it is not answered; try again later",
        rule="views_behind",
    )
