"""`oncoledger chart PATIENT`: the CTC and stage figure (the case report's Figure 4) to a file."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import click

from cli import render
from cli.params import TIMESTAMP, json_option
from cli.session import Session, pass_session
from projections.ctc import RULES
from projections.figure import FORMATS, Format

_SUFFIXES = ", ".join(f".{fmt}" for fmt in FORMATS)


def chart_format(out: Path) -> Format:
    suffix = out.suffix.lower().lstrip(".")
    for fmt in FORMATS:
        if suffix == fmt:
            return fmt
    raise click.BadParameter(
        f"{str(out)!r} must end in {_SUFFIXES} (the file type is taken from it)",
        param_hint="'--out'",
    )


def write_atomically(path: Path, content: bytes) -> None:
    """Write beside the target, then rename: a failed write leaves no half-written file."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise click.BadParameter(f"no directory {str(directory)!r}", param_hint="'--out'")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@click.command()
@click.argument("patient_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The file to write ({_SUFFIXES}) [default: ./PATIENT_ID-ctc-stage.svg].",
)
@click.option(
    "--rule",
    type=click.Choice(tuple(RULES)),
    help="CTC positivity rule drawn as the threshold [default: ONCOLEDGER_CTC_RULE or ge1].",
)
@click.option(
    "--as-of",
    type=TIMESTAMP,
    help="As known at this instant (ISO 8601; naive means UTC): later recordings ignored.",
)
@json_option
@pass_session
def chart(
    session: Session,
    patient_id: str,
    out: Path | None,
    rule: str | None,
    as_of: datetime | None,
    as_json: bool,
) -> None:
    """Draw PATIENT_ID's CTC trajectory, clinical stage and treatments on one time axis.

    The case report's Figure 4 for any patient: SVG (text kept as text), PNG (300 dpi) or PDF
    (fonts embedded), one journal column wide. Prints the path of the file written.
    """
    path = out if out is not None else Path(f"{patient_id}-ctc-stage.svg")
    fmt = chart_format(path)
    content = session.open().chart(patient_id, fmt, as_of=as_of, rule=rule)
    write_atomically(path, content)
    session.log_read("chart", patient_id)
    if as_json:
        render.emit_json(
            {"patient_id": patient_id, "path": str(path), "format": fmt, "bytes": len(content)}
        )
        return
    click.echo(str(path))
