"""The CLI's session: the global options, and the ledger opened lazily for one command."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

import click

from cli.errors import from_domain, unexpected
from domain.errors import DomainError, NotFound, OutcomeUnknown
from projections.root import OncoLedger, StoreConfig, create_key_file, storage_fault

SOURCE = "cli"
# Commands that only read: on a path where no ledger exists they say so instead of creating one.
# The commands that create a store (and its master key file, when no key is set).
CREATORS = frozenset({"init", "demo", "serve"})
READ_ONLY = frozenset(
    {
        "history",
        "replay",
        "timeline",
        "stage",
        "ctc",
        "response",
        "survival",
        "patient show",
        "patient list",
        "verify",
        "digest",
        "export",
        "fhir export",
        "audit",
        "access-log",
        "follow",
        "cbioportal export",
        "cohort survival",
        "chart",
    }
)


def _exists(path: str) -> bool:
    return path == ":memory:" or path.startswith("file:") or os.path.exists(path)


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
    _service: OncoLedger | None = field(default=None, repr=False)

    @property
    def config(self) -> StoreConfig:
        return StoreConfig.from_env(self.db)

    def open(self) -> OncoLedger:
        if self._service is None:
            config = self.config
            if not config.is_postgres and config.sqlite_path and not _exists(config.sqlite_path):
                command = click.get_current_context().command_path.split()[1:]
                if " ".join(command) in READ_ONLY:
                    # A read must not leave an empty ledger behind at a mistyped path.
                    raise NotFound(
                        f"no ledger at {config.sqlite_path}: check --db, or record something "
                        "first (oncoledger init / demo)",
                        field="db",
                    )
            if " ".join(click.get_current_context().command_path.split()[1:2]) in CREATORS:
                config, told = create_key_file(config)
                if told:
                    click.echo(told, err=True)
            self._service = self.ctx.with_resource(OncoLedger(config))
        return self._service

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
        except OutcomeUnknown as exc:
            raise from_domain(_with_retry_hint(ctx, exc)) from exc
        except DomainError as exc:
            raise from_domain(exc) from exc
        except Exception as exc:
            if os.environ.get("ONCOLEDGER_DEBUG"):
                raise
            path = getattr(ctx.obj, "config", StoreConfig()).sqlite_path
            fault = storage_fault(exc, doing="the command", outcome="nothing was stored", path=path)
            raise (from_domain(fault) if fault else unexpected(exc)) from exc


# The option that gives each writing command's event its id (the CLI always sends one).
_ID_OPTION = {"record": "--event-id", "patient": "--event-id", "amend": "--amendment-id"}
_ID_OPTION |= {"retract": "--retraction-id"}


def _with_retry_hint(ctx: click.Context, exc: OutcomeUnknown) -> OutcomeUnknown:
    option = _ID_OPTION.get(ctx.invoked_subcommand or "")
    if option is None or len(exc.event_ids) != 1:
        return exc
    hint = f"; run the same command again with {option} {exc.event_ids[0]}"
    return OutcomeUnknown(exc.message + hint, event_ids=exc.event_ids, field=exc.field)
