"""The cohort index's filters as CLI options: `patient list` and `cohort survival` share them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from cli.params import TIMESTAMP

F = TypeVar("F", bound=Callable[..., Any])

EQUALITY_FILTERS = (
    ("--sex", "sex"),
    ("--histology", "histology"),
    ("--primary-site", "primary_site"),
    ("--stage-group", "stage_group"),
    ("--ctc-trend", "ctc_trend"),
    ("--concordance", "concordance"),
    ("--status", "survival_status"),
)
RANGE_FILTERS: tuple[tuple[str, str, Any], ...] = (
    ("--birth-year", "birth_year", int),
    ("--os-months", "os_months", float),
    ("--events", "events", int),
    ("--ctc", "ctc_latest_per_7_5_ml", float),
)


def cohort_filters(command: F) -> F:
    """Every filter of the cohort index as an option; the command gets them as keywords."""
    command = click.option(
        "synthetic",
        "--synthetic/--no-synthetic",
        default=None,
        help="Only synthetic patients (SYN-/DEMO- ids), or only real ones [default: both].",
    )(command)
    command = click.option(
        "last_recorded_at_max",
        "--recorded-before",
        type=TIMESTAMP,
        help="Last recorded at or before.",
    )(command)
    command = click.option(
        "last_recorded_at_min",
        "--recorded-after",
        type=TIMESTAMP,
        help="Last recorded at or after.",
    )(command)
    for flag, key, kind in reversed(RANGE_FILTERS):
        for bound in ("max", "min"):
            command = click.option(
                f"{key}_{bound}",
                f"{flag}-{bound}",
                type=kind,
                help=f"{key} {'at least' if bound == 'min' else 'at most'} this.",
            )(command)
    for flag, key in reversed(EQUALITY_FILTERS):
        command = click.option(
            key, flag, multiple=True, help=f"{key} equals (repeat for any of several)."
        )(command)
    return command


def filter_query(filters: dict[str, Any]) -> dict[str, Any]:
    """The options given, as the service layer's `filters` (repeated options as lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in filters.items()
        if value not in (None, ())
    }
