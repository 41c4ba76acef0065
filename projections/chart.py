"""Draw `FigureData` (the case report's Figure 4 for any patient) with matplotlib.

Three panels on one shared axis of clinical days: the CTC trajectory (per 7.5 mL, raw counts
labelled, the positivity threshold as a line, positive draws filled and negative ones open),
the stage group in force as a step line with the TNM at each assessment, and the treatments,
declined therapy, imaging and the end of follow-up; the concordance sentence is the caption.

Made for print: one journal column wide (89 mm), 7 pt type, the Okabe-Ito colour-blind-safe
palette with shape as well as colour telling things apart, no grid or box beyond the axes.
SVG keeps its text as text (`svg.fonttype: none`), PDF embeds TrueType fonts (`pdf.fonttype:
42`), and nothing in a label is read as mathtext. The same data gives the same bytes (no dates
or random ids in the files), so a figure can be compared and cached by its content.
"""

from __future__ import annotations

import io
import textwrap
import threading
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from projections.chart_panels import (
    approximate_anywhere,
    ctc_panel,
    lane_panel,
    stage_panel,
    time_axis,
)
from projections.chart_style import GREY, PNG_DPI, RC, WIDTH_IN, x_of
from projections.figure import APPROX, FORMATS, FigureData, Format

_METADATA: dict[Format, dict[str, Any]] = {
    "svg": {"Date": None, "Creator": "OncoLedger (matplotlib)"},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": "OncoLedger (matplotlib)"},
    "png": {"Software": "OncoLedger (matplotlib)"},
}
# rcParams are process-wide and matplotlib is not thread-safe: one figure at a time.
_LOCK = threading.Lock()


def render(data: FigureData, fmt: Format = "svg") -> bytes:
    """The figure as SVG, PNG (300 dpi) or PDF bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}")
    with _LOCK, matplotlib.rc_context(RC):
        figure = _draw(data)
        buffer = io.BytesIO()
        figure.savefig(
            buffer,
            format=fmt,
            dpi=PNG_DPI,
            metadata=_metadata(data, fmt),
            bbox_inches=None,
        )
    return buffer.getvalue()


def _metadata(data: FigureData, fmt: Format) -> dict[str, Any]:
    """The file's own title and description: the caption whole, for search and screen readers
    (the drawn caption is broken into lines)."""
    title = f"{data.patient_id}: CTC count and clinical stage"
    described = {
        "svg": {"Title": title, "Description": data.caption},
        "pdf": {"Title": title, "Subject": data.caption},
        "png": {"Title": title, "Description": data.caption},
    }[fmt]
    return {**_METADATA[fmt], **described}


def _draw(data: FigureData) -> Figure:
    lanes = data.lanes
    # The stage axis grows with STAGE_ORDER (0.1 in a group) so that each label stays legible.
    heights = [1.6, max(1.05, 0.1 * len(data.stage_levels)), 0.2 + 0.22 * max(1, len(lanes))]
    caption = _wrap(_caption(data))
    caption_in = 0.1 + 0.115 * (caption.count("\n") + 1)
    height = sum(heights) + caption_in + 0.45
    figure = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    parts: Any = figure.subfigures(2, 1, height_ratios=[height - caption_in, caption_in])
    top, bottom = parts
    ctc_ax, stage_ax, lane_ax = top.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": heights}
    )
    top.suptitle(
        f"{data.patient_id}: CTC count and clinical stage",
        fontsize=7.5,
        fontweight="bold",
        x=0.02,
        ha="left",
    )
    ctc_panel(ctc_ax, data)
    stage_panel(stage_ax, data)
    lane_panel(lane_ax, data, lanes)
    time_axis(lane_ax, data)
    for ax in (ctc_ax, stage_ax):
        ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
        ax.spines["bottom"].set_visible(False)
    end = next((m for m in data.marks if m.lane == "outcome"), None)
    if end is not None:
        for ax in (ctc_ax, stage_ax, lane_ax):
            ax.axvline(x_of(end.day), color=GREY, linewidth=0.5, linestyle=":", zorder=0)
    bottom.text(0.02, 0.9, caption, ha="left", va="top", fontsize=6.5, gid="caption")
    return figure


def _caption(data: FigureData) -> str:
    caption = data.caption + "."
    if any(approximate_anywhere(data)):
        caption += (
            f" {APPROX} marks an approximate date (partial or estimated), and so does an open"
            " stage or treatment marker."
        )
    return caption


def _wrap(text: str, width: int = 70) -> str:
    """Lines of at most `width` characters, never breaking "III → II" or "4 → 0"."""
    glue = "\x00"
    lines = textwrap.wrap(
        text.replace(" \N{RIGHTWARDS ARROW} ", f"{glue}\N{RIGHTWARDS ARROW}{glue}"), width
    )
    return "\n".join(lines).replace(glue, " ")
