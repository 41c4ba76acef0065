"""The CLI's session: the global options, and the ledger opened lazily for one command."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

import click

from cli.errors import from_domain, unexpected
from domain.errors import DomainError
from domain.ledger import StoreConfig
from projections.root import OncoLedger

SOURCE = "cli"


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no login name in some containers
        return "unknown"


@dataclass
class Session:
    """The global options, and the ledger opened lazily for the command that needs it."""

    db: str
    actor: str
    ctx: click.Context
    _ledger: OncoLedger | None = field(default=None, repr=False)

    @property
    def config(self) -> StoreConfig:
        return StoreConfig.from_env(self.db)

    def open(self) -> OncoLedger:
        if self._ledger is None:
            self._ledger = self.ctx.with_resource(OncoLedger(self.config))
        return self._ledger

    def log_read(self, resource: str, patient_id: str | None = None) -> None:
        """Record a read of clinical data in the access log, once it has succeeded."""
        self.open().log_access(self.actor, channel=SOURCE, resource=resource, patient_id=patient_id)


pass_session = click.make_pass_decorator(Session)


class LedgerGroup(click.Group):
    """Maps the domain's errors to exit codes; an unexpected error is one line, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except DomainError as exc:
            raise from_domain(exc) from exc
        except Exception as exc:
            if os.environ.get("ONCOLEDGER_DEBUG"):
                raise
            raise unexpected(exc) from exc
