"""The benchmark's chart, as SVG written by hand (no plotting library): a panel per workload,
a bar per driver, each bar as long as the driver's factor against the baseline on a log
scale, so that "4x as fast" is seen at a glance and 0.5x and 2x sit equally far from 1x.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

#: Bar colours by kind of client, and the legend's words for them.
KINDS = {
    "baseline": ("#7f7f7f", "the standard library"),
    "peer": ("#5b84b1", "other libraries"),
    "reference": ("#c9c9c9", "raw reference client"),
    "ours": ("#e07b24", "smtp-proto"),
}
WIDTH = 820
NAME_RIGHT = 172  # the drivers' names end here
PLOT_LEFT, PLOT_RIGHT = 182, 600  # the axis
ROW, BAR_HEIGHT = 18, 12
PANEL_TITLE, PANEL_GAP = 22, 12
LINE = 16  # the height of a line of text outside the panels
#: Drawn under a bar's label, so that the grid lines do not cross it.
HALO = 'fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke"'
NOTE_WIDTH = 125  # characters in a line of the notes at the bottom


@dataclass(frozen=True)
class Bar:
    driver: str
    kind: str  # a key of KINDS
    factor: float  # times as good as the baseline
    label: str  # written after the bar's end, e.g. "4.3x · 10,966 msg/s"


@dataclass(frozen=True)
class Panel:
    workload: str
    title: str
    bars: Sequence[Bar]


#: The least room between two labelled grid lines, in pixels: over a span of many tenfolds
#: (W6's hundreds of times next to W1's few) only the powers of ten are marked.
TICK_ROOM = 40


def ticks(low: float, high: float, steps: Sequence[int] = (1, 2, 5)) -> list[float]:
    """The 1-2-5 steps (or ``steps``) from ``low`` to ``high`` (both included when they are
    steps)."""
    found = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for step in steps:
            value = step * 10.0**exponent
            if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
                found.append(value)
    return found


def domain(panels: Sequence[Panel]) -> tuple[float, float]:
    """The axis's ends: 1-2-5 steps around every factor and 1, with some room to spare."""
    factors = [bar.factor for panel in panels for bar in panel.bars] + [1.0]
    steps = ticks(min(factors) / 10, max(factors) * 10)
    low = max(step for step in steps if step <= min(factors) / 1.4)
    high = min(step for step in steps if step >= max(factors) * 1.2)
    return low, high


def tick_label(value: float) -> str:
    return f"{value:g}x"


def render(panels: Sequence[Panel], title: str, notes: Sequence[str]) -> str:
    """The chart as an SVG document."""
    low, high = domain(panels)
    span = math.log(high) - math.log(low)

    def x(factor: float) -> float:
        return PLOT_LEFT + (math.log(factor) - math.log(low)) / span * (PLOT_RIGHT - PLOT_LEFT)

    bar_top = (ROW - BAR_HEIGHT) / 2
    out: list[str] = []
    y = 22
    out.append(f'<text x="12" y="{y}" font-size="15" font-weight="bold">{escape(title)}</text>')
    y += LINE + 4
    legend_x = 12.0
    for colour, words in KINDS.values():
        out.append(f'<rect x="{legend_x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 16}" y="{y}">{escape(words)}</text>')
        legend_x += 30 + 7 * len(words)
    y += 14
    top = y
    for panel in panels:
        out.append(
            f'<text x="12" y="{y + 15}" font-weight="bold">{escape(panel.workload)}'
            f'</text><text x="42" y="{y + 15}">{escape(panel.title)}</text>'
        )
        y += PANEL_TITLE
        for bar in panel.bars:
            colour = KINDS[bar.kind][0]
            end = x(bar.factor)
            middle = y + ROW / 2 + 4
            out.append(
                f'<text x="{NAME_RIGHT}" y="{middle}" text-anchor="end">{escape(bar.driver)}</text>'
                f'<rect class="bar" data-workload="{escape(panel.workload)}" '
                f'data-driver="{escape(bar.driver)}" x="{PLOT_LEFT}" y="{y + bar_top}"'
                f' width="{end - PLOT_LEFT:.1f}" height="{BAR_HEIGHT}" fill="{colour}">'
                f"<title>{escape(bar.driver)}: {escape(bar.label)}</title></rect>"
                f'<text x="{end + 5:.1f}" y="{middle}" {HALO}>{escape(bar.label)}</text>'
            )
            y += ROW
        y += PANEL_GAP
    grid = []
    decade = (PLOT_RIGHT - PLOT_LEFT) / (span / math.log(10))  # pixels per tenfold
    marks = ticks(low, high, (1, 2, 5) if decade * math.log10(2) >= TICK_ROOM else (1,))
    for value in marks:
        style = 'stroke="#333" stroke-dasharray="4 3"' if value == 1 else 'stroke="#e3e3e3"'
        grid.append(f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top}" y2="{y}" {style}/>')
        grid.append(
            f'<text x="{x(value):.1f}" y="{y + 12}" text-anchor="middle" fill="#555">'
            f"{tick_label(value)}</text>"
        )
    y += 12 + LINE
    for note in notes:
        for line in textwrap.wrap(note, NOTE_WIDTH):
            out.append(f'<text x="12" y="{y}" fill="#555">{escape(line)}</text>')
            y += LINE
    height = y
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="12" role="img">\n<title>{escape(title)}</title>\n'
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>\n'
        + "\n".join(grid + out)
        + "\n</svg>\n"
    )
