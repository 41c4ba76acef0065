"""How the case-report figure looks: the Okabe-Ito palette, the journal-column size, matplotlib's
settings, one marker and colour per lane, and the axis of clinical days."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

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

RC: dict[Any, Any] = {
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
# A label sits on a white patch, so a line passing behind it does not cross its text.
BEHIND: dict[str, Any] = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"}
LANE_STYLE: dict[str, tuple[str, str]] = {  # lane -> (marker, colour)
    "chemotherapy": ("s", BLUE),
    "radiotherapy": ("D", SKY_BLUE),
    "ablation": ("^", ORANGE),
    "surgery": ("v", PURPLE),
    "declined": ("x", VERMILLION),
    "imaging": ("|", GREY),
}


_EPOCH: Final = date(1970, 1, 1)  # matplotlib's date epoch, set in RC


def x_of(day: date) -> float:
    """A clinical day on the time axis (matplotlib date units: days since the epoch)."""
    return float((day - _EPOCH).days)


def tick_label(value: float, position: int | None) -> str:
    """Month ticks name the month, and the year at January and at the first tick."""
    day = _EPOCH + timedelta(days=round(value))
    if day.month == 1 and day.day == 1:
        return str(day.year)
    if day.day != 1:
        return day.isoformat()
    month = day.strftime("%b")
    return f"{month}\n{day.year}" if position == 0 else month
