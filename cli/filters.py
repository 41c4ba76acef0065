"""The cohort index's filters as CLI options: `patient list`, `cohort survival` and
`cbioportal export` share them, generated from the one list (`projections.cohort_filters`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from cli.params import TIMESTAMP
from projections import cohort_filters as vocabulary

F = TypeVar("F", bound=Callable[..., Any])

# Shorter flags than the filters' names, where the name is long.
_FLAGS = {
    "survival_status": "--status",
    "ctc_latest_per_7_5_ml_min": "--ctc-min",
    "ctc_latest_per_7_5_ml_max": "--ctc-max",
    "last_recorded_at_min": "--recorded-after",
    "last_recorded_at_max": "--recorded-before",
}


def _flag(name: str) -> str:
    return _FLAGS.get(name) or "--" + name.replace("_", "-")


def _options() -> list[Callable[[F], F]]:
    options: list[Callable[[F], F]] = [
        click.option(
            f.name,
            _flag(f.name),
            multiple=True,
            help=f"Only patients whose {f.what} is this (repeat for any of several).",
        )
        for f in vocabulary.EQUALITY
    ]
    for between in vocabulary.RANGES:
        kind: Any = TIMESTAMP if between.value is datetime else between.value
        for name, bound in between.bounds:
            options.append(
                click.option(name, _flag(name), type=kind, help=f"{between.what} {bound} this.")
            )
    options.append(
        click.option(
            vocabulary.SYNTHETIC,
            "--synthetic/--no-synthetic",
            default=None,
            help="Only synthetic patients (SYN-/DEMO- ids), or only real ones [default: both].",
        )
    )
    return options


def cohort_filters(command: F) -> F:
    """Every filter of the cohort index as an option; the command gets them as keywords."""
    for option in reversed(_options()):
        command = option(command)
    return command


def filter_query(filters: dict[str, Any]) -> dict[str, Any]:
    """The options given, as the service layer's `filters` (repeated options as lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in filters.items()
        if value not in (None, ())
    }
