"""The domain's error hierarchy as click exceptions: one class, one exit code (SPEC §7).

click prints a `ClickException` to stderr as `Error: <message>` and exits with its
`exit_code`; the domain's messages already name the field and the rule, so they pass through.
"""

from __future__ import annotations

import click

from domain.errors import Conflict, DomainError, NotFound, RuleViolation, ValidationFailed

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 unexpected error; 2 usage or validation error (and `import` with "
    "any refused line); 3 not found; 4 conflict (duplicate registration, event id reuse, "
    "stale --expect-version); 5 rule violation, and a hash chain that does not verify "
    "(`verify`, `verify --file`, `access-log --verify`)."
)


class LedgerError(click.ClickException):
    exit_code = 1


class ValidationError(LedgerError):
    exit_code = 2


class NotFoundError(LedgerError):
    exit_code = 3


class ConflictError(LedgerError):
    exit_code = 4


class RuleError(LedgerError):
    exit_code = 5


class IntegrityFailure(LedgerError):
    """`verify` found a broken chain: reported like a rule violation (SPEC lists no other code)."""

    exit_code = 5


class ImportFailed(LedgerError):
    """Some lines of an import were refused; the valid ones are stored."""

    exit_code = 2


class UnexpectedError(LedgerError):
    exit_code = 1


# Most specific first: StaleVersion is a Conflict.
_BY_KIND: tuple[tuple[type[DomainError], type[LedgerError]], ...] = (
    (ValidationFailed, ValidationError),
    (NotFound, NotFoundError),
    (Conflict, ConflictError),
    (RuleViolation, RuleError),
)


def from_domain(exc: DomainError) -> LedgerError:
    for domain_class, cli_class in _BY_KIND:
        if isinstance(exc, domain_class):
            return cli_class(exc.message)
    return LedgerError(exc.message)


def unexpected(exc: Exception) -> UnexpectedError:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    name = type(exc).__name__
    return UnexpectedError(f"unexpected {name}: {detail}" if detail else f"unexpected {name}")
