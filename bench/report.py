"""A run's figures: the medians, the tables, and one JSON line per driver and workload.

A factor says how many times as good as another client a driver is, whichever way the metric
points: for a rate, its value divided by the other's; for a time, the other's divided by its.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.common import WORKLOADS, Metric, Workload

SPREAD_SHOWN = 3.0  # a cell shows its spread from this percentage of the median up


@dataclass(frozen=True)
class Stat:
    """The median of a metric over a driver's runs, and its spread."""

    median: float
    #: The median absolute deviation, in percent of the median.
    spread_pct: float
    runs: int


#: (workload, metric key, driver) -> Stat
Stats = dict[tuple[str, str, str], Stat]


def medians(results: Iterable[Mapping[str, Any]]) -> Stats:
    """The ``Stat`` of every metric of every (workload, driver) in the recorded ``results``."""
    values: defaultdict[tuple[str, str, str], list[float]] = defaultdict(list)
    for result in results:
        for metric in WORKLOADS[result["workload"]].metrics:
            if metric.key in result:
                values[result["workload"], metric.key, result["driver"]].append(result[metric.key])
    stats = {}
    for key, found in values.items():
        middle = statistics.median(found)
        deviation = statistics.median(abs(value - middle) for value in found)
        stats[key] = Stat(middle, deviation / middle * 100 if middle else 0.0, len(found))
    return stats


def factor(stats: Stats, workload: str, metric: Metric, driver: str, other: str) -> float | None:
    """How many times as good as ``other`` ``driver`` is on ``metric``; None if unknown."""
    mine = stats.get((workload, metric.key, driver))
    theirs = stats.get((workload, metric.key, other))
    if not (metric.compared and mine and theirs and mine.median and theirs.median):
        return None
    if metric.higher_is_better:
        return mine.median / theirs.median
    return theirs.median / mine.median


def number(value: float) -> str:
    """Three significant digits or more (thousands grouped), trailing zeros kept."""
    for least, digits in ((100, 0), (10, 1), (1, 2)):
        if value >= least:
            return f"{value:,.{digits}f}"
    return f"{value:.3g}" if value else "0"


def times(value: float) -> str:
    """A factor: ``0.54x``, ``4.40x``, ``52.4x``, ``117x``."""
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f}x"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, its columns padded to line up."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [_row(row, widths) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def _columns(stats: Stats, workloads: Sequence[Workload]) -> list[tuple[Workload, Metric]]:
    """The (workload, metric) pairs some driver has a figure for, in table order."""
    measured = {(w, key) for w, key, _ in stats}
    return [(w, m) for w in workloads for m in w.metrics if (w.id, m.key) in measured]


def _drivers(stats: Stats, drivers: Sequence[str]) -> list[str]:
    measured = {driver for _, _, driver in stats}
    return [driver for driver in drivers if driver in measured]


def values_table(
    stats: Stats,
    drivers: Sequence[str],
    workloads: Sequence[Workload],
    baseline: str,
    round_trip: float | None,
) -> str:
    """Every median, with the factor against ``baseline``, the count of round trips where
    the metric asks for it, and the spread when it is large enough to matter."""
    columns = _columns(stats, workloads)
    header = ["driver"] + [
        f"{w.id} {m.unit} {'↑' if m.higher_is_better else '↓'}" for w, m in columns
    ]
    rows = []
    for driver in _drivers(stats, drivers):
        row = [driver]
        for workload, metric in columns:
            stat = stats.get((workload.id, metric.key, driver))
            if stat is None:
                row.append("n/a")
                continue
            cell = number(stat.median)
            if metric.in_round_trips and round_trip:
                cell += f" [{stat.median / round_trip:.1f} RTT]"
            ratio = factor(stats, workload.id, metric, driver, baseline)
            if ratio is not None and driver != baseline:
                cell += f" {times(ratio)}"
            if stat.spread_pct >= SPREAD_SHOWN:
                cell += f" ±{stat.spread_pct:.0f}%"
            row.append(cell)
        rows.append(row)
    return markdown(header, rows)


def factors_table(
    stats: Stats, drivers: Sequence[str], workloads: Sequence[Workload], against: str
) -> str:
    """Each driver's factor against ``against`` on each workload's headline metric."""
    headlines = [(w, w.metrics[0]) for w in workloads if (w.id, w.metrics[0].key, against) in stats]
    header = ["driver"] + [f"{w.id} {m.unit}" for w, m in headlines]
    rows = []
    for driver in _drivers(stats, drivers):
        if driver == against:
            continue
        ratios = [factor(stats, w.id, m, driver, against) for w, m in headlines]
        rows.append([driver] + ["n/a" if r is None else times(r) for r in ratios])
    return markdown(header, rows)


def summary(
    stats: Stats,
    drivers: Sequence[str],
    workloads: Sequence[Workload],
    unavailable: Mapping[tuple[str, str], tuple[str, str]],
    *,
    against: Mapping[str, str],
    round_trip: float | None,
) -> list[dict[str, Any]]:
    """One line per driver and workload: its status (ok, skipped, failed, missing or not
    run, with the reason), medians, spreads, and factors against each of ``against``
    (label -> driver, e.g. {"baseline": "smtplib"})."""
    lines = []
    for driver in drivers:
        for workload in workloads:
            metrics = [m for m in workload.metrics if (workload.id, m.key, driver) in stats]
            status, reason = unavailable.get(
                (driver, workload.id), ("ok" if metrics else "not run", "")
            )
            line: dict[str, Any] = {"driver": driver, "workload": workload.id, "status": status}
            if reason:
                line["reason"] = reason
            if metrics:
                found = {m.key: stats[workload.id, m.key, driver] for m in metrics}
                line["runs"] = found[metrics[0].key].runs
                line["metrics"] = {key: stat.median for key, stat in found.items()}
                line["spread_pct"] = {key: round(s.spread_pct, 2) for key, s in found.items()}
                line["better"] = {
                    m.key: "higher" if m.higher_is_better else "lower" for m in metrics
                }
                for label, other in against.items():
                    ratios = {m.key: factor(stats, workload.id, m, driver, other) for m in metrics}
                    line[f"factor_vs_{label}"] = {k: r for k, r in ratios.items() if r is not None}
                    line[label] = other
            if round_trip and any(m.in_round_trips for m in workload.metrics):
                line["round_trip_s"] = round_trip
            lines.append(line)
    return lines
