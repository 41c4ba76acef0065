"""`oncoledger cohort survival`: overall survival by group over the cohort index's filters."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli import render
from cli.filters import cohort_filters, filter_query
from cli.params import TIMESTAMP, json_option
from cli.session import SOURCE, Session, pass_session
from domain.demo.cohort import DEFAULT_SEED, cohort_ids
from projections.cohort_subjects import GROUPINGS
from projections.ctc import RULES
from projections.root import OncoLedger

if TYPE_CHECKING:  # lifelines loads only when the command runs
    from projections.survival_report import SurvivalReport


def _progress(label: str, *, quiet: bool = False) -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    err = render.console(stderr=True)
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )


def record_cohort(
    service: OncoLedger, n: int, seed: int | None, *, actor: str, quiet: bool
) -> dict[str, Any] | None:
    """`demo --cohort N`: record the synthetic cohort with a progress bar on stderr."""
    if n <= 0:
        return None
    with _progress("synthetic cohort", quiet=quiet) as bar:
        task = bar.add_task("patients", total=n)
        created = service.record_demo_cohort(
            n,
            seed=seed,
            actor=actor,
            source=SOURCE,
            progress=lambda done: bar.update(task, completed=done),
        )
    return {
        "patients": n,
        "first": cohort_ids(1)[0],
        "last": cohort_ids(n)[-1],
        "seed": DEFAULT_SEED if seed is None else seed,
        "new_events": created,
    }


@click.group()
def cohort() -> None:
    """Analyses across patients: survival by CTC trajectory, stage, histology."""


@cohort.command("survival")
@click.option("--by", required=True, type=click.Choice(GROUPINGS), help="Group patients by this.")
@cohort_filters
@click.option(
    "--rule",
    type=click.Choice(tuple(RULES)),
    help="CTC positivity rule for ctc_cleared [default: ge1, the stored views' rule].",
)
@click.option("--as-of", type=TIMESTAMP, help="As recorded up to this instant (slower).")
@click.option(
    "--landmark",
    "landmark_months",
    type=float,
    metavar="MONTHS",
    help="Group by what was known MONTHS after diagnosis; keep only patients alive and "
    "followed then; start the clock there (against immortal-time bias).",
)
@click.option("--cox/--no-cox", default=True, show_default=True, help="Fit the Cox model.")
@click.option(
    "--plot",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Also draw the Kaplan-Meier figure: FILE.svg, .pdf or .eps (vector) or .png.",
)
@json_option
@pass_session
def survival(
    session: Session,
    /,
    by: str,
    rule: str | None,
    as_of: datetime | None,
    landmark_months: float | None,
    cox: bool,
    plot: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """Kaplan-Meier by group, medians, survival at 12/24/36 months, log-rank, Cox on the CTC
    group adjusted for stage at diagnosis. Definitions are printed with the result."""
    from projections.survival_plot import check_plot_path, write_plot

    if plot:
        check_plot_path(plot)
    service = session.open()
    with _progress("recomputing groups") as bar:
        task = bar.add_task("patients", total=None)
        analysis = service.cohort_survival(
            by=by,
            filters=filter_query(filters),
            rule=rule,
            as_of=as_of,
            landmark_months=landmark_months,
            with_cox=cox,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    session.log_read("cohort-survival")
    if plot:
        write_plot(analysis, plot)
    if as_json:
        render.emit_json(analysis.report)
        return
    render.show(*report_lines(analysis.report))
    if plot:
        click.echo(f"plot written to {plot}")


def _ci(low: float | None, high: float | None, *, pct: bool = False, digits: int = 1) -> str:
    def cell(v: float | None) -> str:
        if v is None:
            return "NR" if not pct else "-"
        return f"{v * 100:.0f}%" if pct else f"{v:.{digits}f}"

    return f"({cell(low)} to {cell(high)})"


def report_lines(report: SurvivalReport) -> list[Any]:
    n = report.patients
    where = "current data" if report.as_of is None else f"as of {report.as_of.isoformat()}"
    landmark = (
        "no landmark"
        if report.landmark_months is None
        else f"landmark {report.landmark_months:g} mo"
    )
    lines: list[Any] = [
        f"Overall survival by {report.by} ({where}, {landmark}, CTC rule {report.rule})",
        f"patients: {n.matched} matched, {n.excluded_no_diagnosis_date} excluded without a "
        f"diagnosis date, "
        + (
            f"{n.excluded_before_landmark} dead or last seen by the landmark, "
            if report.landmark_months is not None
            else ""
        )
        + f"{n.analysed} analysed ({n.events} deaths, {n.censored} censored; "
        f"{n.approximate_times} with approximate times; {n.synthetic} synthetic)",
    ]
    if report.empty:
        lines.append("EMPTY RESULT: no patient to analyse")
    rows = []
    for g in report.groups:
        med = g.median_months
        cells = [g.group, g.n, g.events, g.censored]
        cells.append(f"{med.estimate:.1f} {_ci(*med.ci95)}" if med.estimate is not None else "NR")
        for m in g.survival:
            cells.append(
                "-" if m.estimate is None else f"{m.estimate * 100:.0f}% {_ci(*m.ci95, pct=True)}"
            )
        rows.append(cells)
    lines.append(
        render.table(
            "Kaplan-Meier (months; 95% CI; NR = not reached)",
            ["group", "n", "deaths", "censored", "median", "S(12)", "S(24)", "S(36)"],
            rows,
        )
    )
    lr = report.logrank
    lines.append(
        f"log-rank: chi2 = {lr.statistic:.3f}, df = {lr.df}, p = {lr.p:.4g}"
        if lr.statistic is not None and lr.p is not None
        else f"log-rank: not computed ({lr.note})"
    )
    if report.pairwise:
        lines.append(
            render.table(
                "pairwise log-rank (Holm-adjusted)",
                ["groups", "chi2", "p", "p (Holm)"],
                [
                    (" vs ".join(p.groups), _g(p.statistic), _g(p.p), _g(p.p_holm))
                    for p in report.pairwise
                ],
            )
        )
    if report.cox is not None:
        lines.extend(_cox_lines(report))
    for warning in [
        *report.warnings,
        *(f"{g.group}: {w}" for g in report.groups for w in g.warnings),
    ]:
        lines.append(f"warning: {warning}")
    lines.append("definitions:")
    lines.extend(f"  {key}: {text}" for key, text in report.definitions.items())
    return lines


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cox_lines(report: SurvivalReport) -> list[Any]:
    cox = report.cox
    assert cox is not None
    head = (
        f"Cox PH: {cox.exposure} adjusted for {cox.covariate} "
        f"(n = {cox.n}, {cox.events} deaths, {cox.excluded_unknown_stage} left out: unknown stage)"
    )
    if cox.note:
        return [f"{head}: not fitted ({cox.note})"]
    ph = {True: "holds", False: "VIOLATED for some terms (PH test p < 0.05)", None: "not tested"}[
        cox.proportional_hazards_ok
    ]
    lr = cox.lr_test_ctc_added
    out: list[Any] = [
        render.table(
            head,
            ["term", "reference", "HR", "95% CI", "p", "PH test p"],
            [
                (
                    h.term,
                    h.reference,
                    "-" if h.hazard_ratio is None else f"{h.hazard_ratio:.2f}",
                    _ci(*h.ci95, digits=2),
                    "-" if h.p is None else f"{h.p:.4g}",
                    next((f"{c.p:.3g}" for c in cox.proportional_hazards if c.term == h.term), "-"),
                )
                for h in cox.hazard_ratios
            ],
        ),
        f"proportional hazards assumption: {ph}"
        + (f" ({cox.proportional_hazards_note})" if cox.proportional_hazards_note else ""),
        f"concordance index: stage alone {_g(cox.concordance_stage_only)}, stage + CTC "
        f"{_g(cox.concordance_with_ctc)}; CTC group added to stage: likelihood-ratio chi2 = "
        f"{_g(lr.statistic)}, df = {lr.df}, p = {_g(lr.p)}",
    ]
    out.extend(f"warning (Cox): {w}" for w in cox.warnings)
    return out
