"""The three panels of the case-report figure: the CTC trajectory, the stage group in force,
the lanes of treatments and imaging, and the shared time axis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

from domain.staging import UNKNOWN
from projections.chart_style import (
    BEHIND,
    BLACK,
    BLUE,
    GREEN,
    GREY,
    LANE_STYLE,
    VERMILLION,
    tick_label,
    x_of,
)
from projections.figure import APPROX, LANE_TITLES, FigureData, Lane, Mark


def approximate_anywhere(data: FigureData) -> list[bool]:
    return (
        [p.approximate for p in data.draws]
        + [s.approximate for s in data.stages]
        + [m.approximate for m in data.marks if m.lane != "imaging"]
    )


def _date_text(occurred: str, approximate: bool) -> str:
    return f"{APPROX}{occurred}" if approximate else occurred


def ctc_panel(ax: Axes, data: FigureData) -> None:
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
    ax.plot([x_of(p.day) for p in data.draws], values, color=BLACK, linewidth=1.0, zorder=2)
    for positive in (True, False):
        points = [p for p in data.draws if p.positive is positive]
        if not points:
            continue
        ax.plot(
            [x_of(p.day) for p in points],
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
            (x_of(point.day), point.per_7_5_ml),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=6,
            linespacing=1.1,
            bbox=BEHIND,
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


def stage_panel(ax: Axes, data: FigureData) -> None:
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
    xs = [x_of(s.day) for s in data.stages] + [x_of(max(end, data.stages[-1].day))]
    ys = [index[s.stage_group] for s in data.stages]
    ax.step(xs, [*ys, ys[-1]], where="post", color=GREEN, linewidth=1.4, zorder=2)
    for n, point in enumerate(data.stages, 1):
        y = index[point.stage_group]
        unknown = point.stage_group == UNKNOWN
        ax.plot(
            x_of(point.day),
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
            (x_of(point.day), y),
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


def lane_panel(ax: Axes, data: FigureData, lanes: Sequence[Lane]) -> None:
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
        marker, colour = LANE_STYLE[mark.lane]
        if mark.end is not None:
            ax.plot(
                [x_of(mark.day), x_of(mark.end)],
                [y, y],
                color=colour,
                linewidth=3.2,
                solid_capstyle="butt",
                gid=gid,
            )
        else:
            ax.plot(
                x_of(mark.day),
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
            (x_of(mark.day), y),
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
        x_of(mark.day),
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
        (x_of(mark.day), y),
        xytext=(-5, 0),
        textcoords="offset points",
        ha="right",
        va="center",
        fontsize=5.5,
        gid="outcome-label",
        in_layout=False,
    )


def time_axis(ax: Axes, data: FigureData) -> None:
    first, last = data.first_day, data.last_day
    if first is None or last is None:  # nothing dated: an axis without dates
        ax.set_xticks([])
        ax.set_xlabel("Clinical date")
        return
    span = max((last - first).days, 30)
    pad = timedelta(days=max(round(span * 0.05), 10))
    ax.set_xlim(x_of(first - pad), x_of(last + pad))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(FuncFormatter(tick_label))
    ax.set_xlabel("Clinical date")
