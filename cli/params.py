"""Parameter types and shared options of the CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from domain.instants import assume_utc

F = TypeVar("F", bound=Callable[..., Any])

# click >= 8.2 makes ParamType generic; pyproject still allows 8.1, where it is not subscriptable.
if TYPE_CHECKING:
    StrParamType = click.ParamType[str, Any]
    DatetimeParamType = click.ParamType[datetime, Any]
else:
    StrParamType = DatetimeParamType = click.ParamType


class Timestamp(DatetimeParamType):
    """ISO 8601 date or date-time; a naive value is UTC."""

    name = "TIMESTAMP"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(
                    f"{value!r} is not an ISO 8601 timestamp (e.g. 2024-05-01T12:00:00Z)",
                    param,
                    ctx,
                )
        return assume_utc(moment)


TIMESTAMP = Timestamp()


def json_option(command: F) -> F:
    return click.option(
        "as_json", "--json", is_flag=True, help="Print one JSON document on stdout."
    )(command)


def as_of_options(command: F) -> F:
    command = click.option(
        "--upto",
        type=click.IntRange(min=1),
        metavar="VERSION",
        help="Only the stream up to this version.",
    )(command)
    return click.option(
        "--as-of",
        type=TIMESTAMP,
        help="As known at this instant (ISO 8601; naive means UTC): later recordings ignored.",
    )(command)
