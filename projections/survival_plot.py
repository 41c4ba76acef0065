"""The Kaplan-Meier figure of a cohort survival analysis, as a paper would print it.

One curve per group with its 95 % band and censor ticks, numbers at risk (and censored, and
deaths) under the x-axis, the log-rank p in the corner, the definitions that matter in the
caption. matplotlib's non-interactive backend; SVG keeps text as text, PDF embeds fonts as
Type 42, both vector.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from lifelines import KaplanMeierFitter
from lifelines.plotting import add_at_risk_counts

from domain.errors import ValidationFailed
from projections.cohort_survival import Analysis

FORMATS = {".svg": "svg", ".pdf": "pdf", ".png": "png", ".eps": "eps"}


def check_plot_path(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValidationFailed(
            f"`plot` {path!r} must end in {', '.join(FORMATS)} (svg, pdf and eps are vector)",
            field="plot",
            rule="plot_format",
        )
    return FORMATS[suffix]


def _p_text(p: float | None) -> str:
    if p is None:
        return "log-rank p: n/a"
    return "log-rank p < 0.0001" if p < 0.0001 else f"log-rank p = {p:.4f}"


def write_plot(analysis: Analysis, path: str) -> str:
    """Draw the curves into `path` (its suffix picks the format); return the format."""
    fmt = check_plot_path(path)
    with open(path, "wb") as out:
        draw(analysis, out, fmt)
    return fmt


def plot_bytes(analysis: Analysis, fmt: str) -> bytes:
    """The figure as `svg`, `pdf`, `eps` or `png` bytes."""
    buffer = io.BytesIO()
    draw(analysis, buffer, fmt)
    return buffer.getvalue()


def draw(analysis: Analysis, out: BinaryIO, fmt: str) -> None:
    report = analysis.report
    fitted = []
    for name, (months, dead) in analysis.curves.items():
        if len(months):  # lifelines draws the curves, the bands and the at-risk table
            fitted.append(KaplanMeierFitter(label=name).fit(months, dead))
    with plt.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42, "font.size": 9}):
        rows = ["At risk", "Censored", "Events"] if len(fitted) <= 2 else ["At risk"]
        table_lines = max(1, len(fitted)) * (len(rows) + 1)
        fig, ax = plt.subplots(figsize=(8, 5.0 + 0.19 * table_lines))
        for fitter in fitted:
            fitter.plot_survival_function(
                ax=ax,
                ci_show=True,
                ci_alpha=0.15,
                show_censors=True,
                censor_styles={"marker": "|", "ms": 7, "mew": 1},
            )
        where = "landmark" if report.landmark_months is not None else "diagnosis"
        ax.set_xlabel(f"Months from {where}")
        ax.set_ylabel("Overall survival probability")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
        title = f"Overall survival by {report.by}"
        if report.landmark_months is not None:
            title += f" (landmark {report.landmark_months:g} months)"
        if report.as_of is not None:
            title += f", as of {report.as_of.isoformat(timespec='seconds')}"
        ax.set_title(title, loc="left")
        n = report.patients
        ax.text(
            0.98,
            0.97,
            f"{_p_text(report.logrank.p)}\nn = {n.analysed}, deaths = {n.events}",
            transform=ax.transAxes,
            ha="right",
            va="top",
        )
        if not fitted:
            ax.text(0.5, 0.5, "no patient to analyse", transform=ax.transAxes, ha="center")
        else:
            ax.legend(loc="lower left", title=report.by, frameon=False)
            add_at_risk_counts(*fitted, ax=ax, rows_to_show=rows)
        caption = (
            f"Kaplan-Meier estimates with 95% CI (exponential Greenwood); | = censored. "
            f"Excluded: {n.excluded_no_diagnosis_date} without a diagnosis date"
            + (
                f", {n.excluded_before_landmark} dead or last seen by the landmark"
                if report.landmark_months is not None
                else ""
            )
            + (f". {n.synthetic} synthetic patients." if n.synthetic else ".")
        )
        fig.text(0.01, 0.005, "\n".join(textwrap.wrap(caption, 150)), fontsize=7, va="bottom")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(out, format=fmt, dpi=150)
        plt.close(fig)
