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
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Final

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from domain.staging import UNKNOWN
from projections.figure import APPROX, FORMATS, LANE_TITLES, FigureData, Format, Lane, Mark

# Okabe & Ito (2008), "Color Universal Design": distinguishable with any colour vision.
BLACK: Final = "#000000"
ORANGE: Final = "#E69F00"
SKY_BLUE: Final = "#56B4E9"
GREEN: Final = "#009E73"
BLUE: Final = "#0072B2"
VERMILLION: Final = "#D55E00"
PURPLE: Final = "#CC79A7"
GREY: Final = "#6E6E6E"

WIDTH_IN: Final = 89 / 25.4  # one journal column
PNG_DPI: Final = 300

_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "oncoledger",
    "date.epoch": "1970-01-01T00:00:00",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "text.usetex": False,
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA: dict[Format, dict[str, Any]] = {
    "svg": {"Date": None, "Creator": "OncoLedger (matplotlib)"},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": "OncoLedger (matplotlib)"},
    "png": {"Software": "OncoLedger (matplotlib)"},
}
# rcParams are process-wide and matplotlib is not thread-safe: one figure at a time.
_LOCK = threading.Lock()
# A label sits on a white patch, so a line passing behind it does not cross its text.
_BEHIND: dict[str, Any] = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"}
_LANE_STYLE: dict[str, tuple[str, str]] = {  # lane -> (marker, colour)
    "chemotherapy": ("s", BLUE),
    "radiotherapy": ("D", SKY_BLUE),
    "ablation": ("^", ORANGE),
    "surgery": ("v", PURPLE),
    "declined": ("x", VERMILLION),
    "imaging": ("|", GREY),
}


def render(data: FigureData, fmt: Format = "svg") -> bytes:
    """The figure as SVG, PNG (300 dpi) or PDF bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}")
    with _LOCK, matplotlib.rc_context(_RC):
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
    _ctc_panel(ctc_ax, data)
    _stage_panel(stage_ax, data)
    _lane_panel(lane_ax, data, lanes)
    _time_axis(lane_ax, data)
    for ax in (ctc_ax, stage_ax):
        ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
        ax.spines["bottom"].set_visible(False)
    end = next((m for m in data.marks if m.lane == "outcome"), None)
    if end is not None:
        for ax in (ctc_ax, stage_ax, lane_ax):
            ax.axvline(_x(end.day), color=GREY, linewidth=0.5, linestyle=":", zorder=0)
    bottom.text(0.02, 0.9, caption, ha="left", va="top", fontsize=6.5, gid="caption")
    return figure


def _caption(data: FigureData) -> str:
    caption = data.caption + "."
    if any(_approximate_anywhere(data)):
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


def _approximate_anywhere(data: FigureData) -> list[bool]:
    return (
        [p.approximate for p in data.draws]
        + [s.approximate for s in data.stages]
        + [m.approximate for m in data.marks if m.lane != "imaging"]
    )


def _date_text(occurred: str, approximate: bool) -> str:
    return f"{APPROX}{occurred}" if approximate else occurred


def _ctc_panel(ax: Axes, data: FigureData) -> None:
    ax.set_ylabel("CTCs per 7.5 mL")
    values = [p.per_7_5_ml for p in data.draws]
    top = max([*values, float(data.threshold)]) if values else float(data.threshold)
    places = [_label_place(values, i) for i in range(len(values))]
    low = any(va == "top" for _, _, _, va in places)  # a label hangs below its point
    ceiling = top * 1.3 + 0.5
    ax.set_ylim(-(0.3 * top + 0.6) if low else -0.08 * top - 0.2, ceiling)
    ticks = [t for t in MaxNLocator(nbins=5, integer=True).tick_values(0, top) if 0 <= t <= ceiling]
    ax.set_yticks(ticks)
    ax.spines["left"].set_bounds(0, ticks[-1])  # no axis below zero cells
    ax.axhline(
        data.threshold,
        color=GREY,
        linewidth=0.7,
        linestyle="--",
        zorder=1,
        label=f"positive \N{GREATER-THAN OR EQUAL TO} {data.threshold} ({data.rule})",
    )
    if data.draws:
        _draws(ax, data, values, places)
    else:
        ax.text(0.5, 0.55, "no CTC draws", transform=ax.transAxes, ha="center", color=GREY)
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=3,
        frameon=False,
        handletextpad=0.3,
        columnspacing=1.0,
        borderaxespad=0.2,
        handlelength=1.6,
    )


def _draws(
    ax: Axes, data: FigureData, values: list[float], places: list[tuple[float, float, str, str]]
) -> None:
    ax.plot([_x(p.day) for p in data.draws], values, color=BLACK, linewidth=1.0, zorder=2)
    for positive in (True, False):
        points = [p for p in data.draws if p.positive is positive]
        if not points:
            continue
        ax.plot(
            [_x(p.day) for p in points],
            [p.per_7_5_ml for p in points],
            linestyle="none",
            marker="o",
            markersize=5,
            markerfacecolor=VERMILLION if positive else "white",
            markeredgecolor=BLACK if positive else BLUE,
            markeredgewidth=0.6 if positive else 1.0,
            label="positive" if positive else "negative",
            zorder=3,
        )
    dated = len(data.draws) <= 6
    for n, (point, (dx, dy, ha, va)) in enumerate(zip(data.draws, places, strict=True), 1):
        label = point.raw_label
        if dated:
            label += "\n" + _date_text(point.occurred, point.approximate)
        elif point.approximate:
            label = APPROX + label
        ax.annotate(  # a data label: the layout is not bent around it
            label,
            (_x(point.day), point.per_7_5_ml),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=6,
            linespacing=1.1,
            bbox=_BEHIND,
            zorder=4,
            gid=f"ctc-draw-{n}",
            in_layout=False,
        )


def _label_place(values: list[float], i: int) -> tuple[float, float, str, str]:
    """Where a point's label goes so that the line through the point does not cross it:
    above, on a side where the line falls away (or ends); beside, at a dip."""
    rises_left = i > 0 and values[i - 1] > values[i]
    rises_right = i + 1 < len(values) and values[i + 1] > values[i]
    if (rises_left and rises_right) or (rises_right and i == 0):  # no room left of the first
        return 5, -1, "left", "top"
    if rises_left and i + 1 == len(values):  # the last of a fall: beside it, level with it
        return 6, 0, "left", "center"
    if rises_left:
        return 3, 4, "left", "bottom"
    if rises_right:
        return -3, 4, "right", "bottom"
    return 0, 5, "center", "bottom"


def _stage_panel(ax: Axes, data: FigureData) -> None:
    levels = data.stage_levels
    index = {group: i for i, group in enumerate(levels)}
    ax.set_ylim(-0.7, len(levels) - 0.3)
    ax.set_ylabel("Stage group")
    labelled = _labelled_levels(levels, {s.stage_group for s in data.stages})
    ax.set_yticks(range(len(levels)))
    ax.set_yticklabels([g if g in labelled else "" for g in levels])
    ax.tick_params(axis="y", length=2)
    if not data.stages:
        ax.text(0.5, 0.5, "no staging", transform=ax.transAxes, ha="center", color=GREY)
        return
    end = data.last_day or data.stages[-1].day
    xs = [_x(s.day) for s in data.stages] + [_x(max(end, data.stages[-1].day))]
    ys = [index[s.stage_group] for s in data.stages]
    ax.step(xs, [*ys, ys[-1]], where="post", color=GREEN, linewidth=1.4, zorder=2)
    for n, point in enumerate(data.stages, 1):
        y = index[point.stage_group]
        unknown = point.stage_group == UNKNOWN
        ax.plot(
            _x(point.day),
            y,
            marker="o",
            markersize=3.5,
            color=GREEN,
            markerfacecolor="white" if unknown or point.approximate else GREEN,
            markeredgewidth=0.9,
            zorder=3,
        )
        below = y >= len(levels) / 2
        ax.annotate(  # a data label: the layout is not bent around it
            point.tnm,
            (_x(point.day), y),
            xytext=(1.5, -4 if below else 4),  # right of the riser where the stage changes
            textcoords="offset points",
            ha="left",
            va="top" if below else "bottom",
            rotation=90,
            fontsize=5.5,
            gid=f"stage-{n}",
            in_layout=False,
        )


def _labelled_levels(levels: list[str], present: set[str]) -> set[str]:
    """Every level when they fit; else the ends, the main groups and those in the data."""
    if len(levels) <= 16:
        return set(levels)
    main = {g for g in levels if g.rstrip("ABC") == g}
    return {levels[0], levels[-1], *main, *present}


def _lane_panel(ax: Axes, data: FigureData, lanes: Sequence[Lane]) -> None:
    ax.spines["left"].set_visible(False)
    ax.set_ylim(len(lanes) - 0.4, -0.6)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([LANE_TITLES[lane] for lane in lanes])
    ax.tick_params(axis="y", length=0)
    row = {lane: i for i, lane in enumerate(lanes)}
    for n, mark in enumerate(data.marks, 1):
        y = row[mark.lane]
        gid = f"{mark.type}-{n}"
        if mark.lane == "outcome":
            _outcome_mark(ax, mark, y)
            continue
        marker, colour = _LANE_STYLE[mark.lane]
        if mark.end is not None:
            ax.plot(
                [_x(mark.day), _x(mark.end)],
                [y, y],
                color=colour,
                linewidth=3.2,
                solid_capstyle="butt",
                gid=gid,
            )
        else:
            ax.plot(
                _x(mark.day),
                y,
                marker=marker,
                markersize=4 if marker != "|" else 6,
                color=colour,
                markerfacecolor="white" if mark.approximate and marker not in "x|" else colour,
                markeredgewidth=0.9,
                linestyle="none",
                gid=gid,
            )
        if mark.lane in ("imaging", "declined") or not mark.label:
            continue
        spans = mark.end is not None  # a span's label sits above it, from its start
        ax.annotate(  # a data label: the layout is not bent around it
            _shorten(mark.label),
            (_x(mark.day), y),
            xytext=(0, 2.5) if spans else (4, 0),
            textcoords="offset points",
            ha="left",
            va="bottom" if spans else "center",
            fontsize=5.5,
            gid=f"{gid}-label",
            in_layout=False,
        )


def _shorten(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"


def _outcome_mark(ax: Axes, mark: Mark, y: int) -> None:
    dead = mark.type == "death"
    ax.plot(
        _x(mark.day),
        y,
        marker="X" if dead else ">",
        markersize=5,
        color=BLACK,
        markerfacecolor=BLACK if dead else "white",
        linestyle="none",
        gid="outcome",
    )
    ax.annotate(  # a data label: the layout is not bent around it
        f"{mark.label} {_date_text(mark.occurred, mark.approximate)}",
        (_x(mark.day), y),
        xytext=(-5, 0),
        textcoords="offset points",
        ha="right",
        va="center",
        fontsize=5.5,
        gid="outcome-label",
        in_layout=False,
    )


def _time_axis(ax: Axes, data: FigureData) -> None:
    first, last = data.first_day, data.last_day
    if first is None or last is None:  # nothing dated: an axis without dates
        ax.set_xticks([])
        ax.set_xlabel("Clinical date")
        return
    span = max((last - first).days, 30)
    pad = timedelta(days=max(round(span * 0.05), 10))
    ax.set_xlim(_x(first - pad), _x(last + pad))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
    ax.set_xlabel("Clinical date")


_EPOCH: Final = date(1970, 1, 1)  # matplotlib's date epoch, set in _RC


def _x(day: date) -> float:
    """A clinical day on the time axis (matplotlib date units: days since the epoch)."""
    return float((day - _EPOCH).days)


def _tick_label(value: float, position: int | None) -> str:
    """Month ticks name the month, and the year at January and at the first tick."""
    day = _EPOCH + timedelta(days=round(value))
    if day.month == 1 and day.day == 1:
        return str(day.year)
    if day.day != 1:
        return day.isoformat()
    month = day.strftime("%b")
    return f"{month}\n{day.year}" if position == 0 else month
