"""Benchmark: smtp-proto next to smtplib, aiosmtplib and smtpproto, against a C sink.

    python3 bench/run.py [--quick] [--workloads W1,W3] [--drivers smtplib,smtp-proto] [--reps 5]

Builds the sink with the system C compiler when needed, starts it and the delaying proxy on
loopback, and runs every driver whose library is importable (the others are named, with the
pip command that installs them) on every workload: one unrecorded warm-up round, then
``--reps`` rounds, the drivers in alternating order (A B C, C B A, ...) so that the
machine's slow drift cancels out. Each driver run is a fresh process. It prints the medians
with each driver's factor against smtplib and against the raw reference client, and writes
the raw results, the tables and one JSON line per driver and workload to ``bench/results/``,
and the chart to ``docs/_static/benchmark.svg`` (a run with ``--quick`` or only some
workloads or drivers writes it next to its results instead).

    python3 bench/run.py --redraw bench/results/run-A.json bench/results/run-B.json

measures nothing: it draws the chart from saved runs, each workload from the last of them
that has it (a page's tables from one run, a workload measured again in another), to the
docs' chart or to ``--chart``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import chart
import report
import servers
from drivers.common import OPTIONS, WORKLOADS, Workload

BENCH = Path(__file__).resolve().parent
DRIVERS_DIR = BENCH / "drivers"
DOCS_CHART = BENCH.parent / "docs" / "_static" / "benchmark.svg"
INSTALL = {
    "aiosmtplib": "pip install aiosmtplib",
    "smtpproto": "pip install smtpproto",
    "trio": "pip install trio",
    "uvloop": "pip install uvloop",
    "smtp_proto": "pip install -e .",
}


@dataclass(frozen=True)
class Driver:
    """A row of the table: a script in ``drivers/``, the arguments it gets, what it needs."""

    name: str
    script: str
    kind: str  # baseline, peer, reference or ours: the chart's colours
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


OURS = ("smtp_proto",)
DRIVERS = (
    Driver("smtplib", "smtplib_drv.py", "baseline"),
    Driver("aiosmtplib", "aiosmtplib_drv.py", "peer", needs=("aiosmtplib",)),
    Driver("smtpproto", "smtpproto_drv.py", "peer", needs=("smtpproto",)),
    Driver("ref-pipelined", "reference_drv.py", "reference"),
    Driver("ref-bdat", "reference_drv.py", "reference", ("--bdat",)),
    Driver("ref-asyncio", "reference_async_drv.py", "reference"),
    Driver("ref-uvloop", "reference_async_drv.py", "reference", ("--uvloop",), ("uvloop",)),
    Driver("smtp-proto", "smtp_proto_drv.py", "ours", needs=OURS),
    Driver("smtp-proto-data", "smtp_proto_drv.py", "ours", ("--data",), OURS),
    Driver("smtp-proto-file", "smtp_proto_drv.py", "ours", ("--from-file",), OURS),
    Driver("smtp-proto-asyncio", "smtp_proto_async_drv.py", "ours", ("--flavor", "asyncio"), OURS),
    Driver(
        "smtp-proto-uvloop",
        "smtp_proto_async_drv.py",
        "ours",
        ("--flavor", "uvloop"),
        (*OURS, "uvloop"),
    ),
    Driver(
        "smtp-proto-trio", "smtp_proto_async_drv.py", "ours", ("--flavor", "trio"), (*OURS, "trio")
    ),
)
BASELINE = "smtplib"
REFERENCE = "ref-bdat"
TITLE = f"Times as fast as {BASELINE} (log scale, longer is better)"


class Abort(Exception):
    """The run stops early: a signal, or the time budget is spent."""


@dataclass
class Run:
    """A run: what it measures, with what, and what it collects."""

    args: argparse.Namespace
    drivers: Sequence[Driver]
    workloads: Sequence[Workload]
    results: list[dict[str, Any]] = field(default_factory=list)
    #: (driver, workload) -> (status, reason): skipped, failed or missing.
    unavailable: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    round_trip: float | None = None
    #: The sink's highest share of a driver run's wall time, by workload.
    sink_load: dict[str, float] = field(default_factory=dict)
    sink_said: str = ""
    partial: bool = False
    #: The port of each workload target (None: no network), once the servers are up.
    ports: dict[str | None, int] = field(default_factory=lambda: {None: 0})
    sink_pid: int = 0
    deadline: float = 0.0
    #: The machine's 1-minute load average before the run and after it: was it shared?
    load: list[float] = field(default_factory=lambda: [os.getloadavg()[0]])


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: small sizes, 2 reps")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="default: all")
    parser.add_argument("--drivers", default=",".join(d.name for d in DRIVERS), help="default: all")
    parser.add_argument("--reps", type=int, help="recorded rounds (default 5; --quick: 2)")
    parser.add_argument("--warmup", type=int, help="unrecorded rounds first (1; --quick: 0)")
    for option in OPTIONS:
        parser.add_argument(
            f"--{option.name}",
            type=option.kind,
            help=f"{option.help} (default {option.default:g}; --quick: {option.quick:g})",
        )
    parser.add_argument("--delay-ms", type=float, default=10.0, help="the proxy's one-way delay")
    parser.add_argument(
        "--pin",
        choices=("split", "none"),
        default="split",
        help="split: servers on the last CPU, drivers on the first",
    )
    parser.add_argument("--run-timeout", type=float, default=300.0, help="one driver run, s")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="the whole run, s")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="results folder")
    parser.add_argument("--build-dir", type=Path, default=BENCH / "build", help="the sink's")
    parser.add_argument("--chart", type=Path, help="where the SVG goes (see above)")
    parser.add_argument(
        "--redraw", type=Path, nargs="+", metavar="JSON", help="draw saved runs (see above)"
    )
    args = parser.parse_args()
    for name, full, quick in [("reps", 5, 2), ("warmup", 1, 0)] + [
        (o.name.replace("-", "_"), o.default, o.quick) for o in OPTIONS
    ]:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def chosen(args: argparse.Namespace) -> tuple[list[Driver], list[Workload]]:
    """The drivers and workloads the options name, checked."""
    names = [name.strip() for name in args.drivers.split(",") if name.strip()]
    known = {driver.name: driver for driver in DRIVERS}
    ids = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for name in names:
        if name not in known:
            sys.exit(f"unknown driver {name!r}; the drivers: {', '.join(known)}")
    for id_ in ids:
        if id_ not in WORKLOADS:
            sys.exit(f"unknown workload {id_!r}; the workloads: {', '.join(WORKLOADS)}")
    return [d for d in DRIVERS if d.name in names], [WORKLOADS[i] for i in WORKLOADS if i in ids]


def missing(driver: Driver) -> str | None:
    """Why ``driver`` cannot run here (a library it imports is not installed), or None."""
    absent = [module for module in driver.needs if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    commands = " and ".join(f"`{INSTALL[module]}`" for module in absent)
    return f"{', '.join(absent)} not installed for {sys.executable} ({commands})"


def log(*words: object) -> None:
    print(*words, file=sys.stderr, flush=True)


def run_driver(run: Run, driver: Driver, workload: Workload, timeout: float) -> dict[str, Any]:
    """One driver process on one workload: the JSON line it printed, or what went wrong."""
    args = run.args
    command = [sys.executable, str(DRIVERS_DIR / driver.script), "--workload", workload.id]
    command += ["--port", str(run.ports[workload.target]), "--sink-port", str(run.ports["sink"])]
    for option in OPTIONS:
        command += [f"--{option.name}", str(getattr(args, option.name.replace("-", "_")))]
    command += driver.args
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers.pin(process.pid, args.client_cpus)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        return {"ok": False, "error": f"no result after {timeout:.0f} s"}
    except BaseException:  # a signal: the driver does not outlive the run
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        tail = err.strip()[-400:]
        return {"ok": False, "error": f"exit status {process.returncode}, no result: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("verified") is False:
        result["ok"] = False
        result["error"] = (
            f"the sink received {result['sink_msgs']} messages, {result['sink_bytes']} bytes;"
            f" {result['expected_msgs']}, {result['expected_bytes']} bytes were sent"
        )
    return result


def measure(run: Run, workload: Workload) -> None:
    """Every round of ``workload``: the warm-up, then ``--reps`` recorded ones."""
    args = run.args
    for rep in range(-args.warmup, args.reps):
        for driver in run.drivers if rep % 2 == 0 else reversed(run.drivers):
            if (driver.name, workload.id) in run.unavailable:
                continue
            left = run.deadline - time.monotonic()
            if left < 5:
                raise Abort("--max-seconds is spent")
            sink_cpu, start = servers.cpu_seconds(run.sink_pid), time.perf_counter()
            result = run_driver(run, driver, workload, min(args.run_timeout, left))
            wall = time.perf_counter() - start
            sink_share = (servers.cpu_seconds(run.sink_pid) - sink_cpu) / wall
            if "skipped" in result:
                run.unavailable[driver.name, workload.id] = ("skipped", result["skipped"])
            elif not result.get("ok"):
                run.unavailable[driver.name, workload.id] = ("failed", result["error"])
                log(f"{workload.id} {driver.name}: FAILED: {result['error']}")
            elif rep >= 0:
                result |= {"driver": driver.name, "rep": rep, "sink_cpu_share": sink_share}
                run.results.append(result)
                run.sink_load[workload.id] = max(run.sink_load.get(workload.id, 0.0), sink_share)
                key = workload.metrics[0].key
                log(f"{workload.id} rep {rep} {driver.name:18} {key} {result[key]:.4g}")


def measure_all(run: Run) -> None:
    """Build and start the servers, run every workload, stop the servers whatever happens."""
    args = run.args
    run.deadline = time.monotonic() + args.max_seconds
    started = servers.Servers(args.server_cpus)
    try:
        binary = servers.build_sink(args.build_dir)
        run.sink_pid, sink_port = started.start_sink(binary, args.max_seconds + 60)
        run.ports["sink"] = sink_port
        if any(w.target == "proxy" for w in run.workloads):
            proxy = started.start_proxy(sink_port, args.delay_ms, args.max_seconds + 60)
            run.ports["proxy"] = proxy
            run.round_trip = servers.round_trip(proxy)
            log(f"round trip through the proxy: {run.round_trip * 1000:.2f} ms")
        for workload in run.workloads:
            measure(run, workload)
    except Abort as stop:
        run.partial = True
        log(f"stopping early: {stop}")
    finally:
        run.sink_said = started.stop()
        run.load.append(os.getloadavg()[0])


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("smtp-proto", "aiosmtplib", "smtpproto", "anyio", "trio", "uvloop"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    installed = importlib.util.find_spec("smtp_proto") is not None
    accelerated = installed and importlib.util.find_spec("smtp_proto._speedups") is not None
    found["smtp_proto._speedups"] = "yes" if accelerated else "no"
    return found


def notes(run: Run) -> list[str]:
    """What a reader of the tables needs to know about the run."""
    args = run.args
    found = versions()
    rtt = (
        f" The round trip through the proxy: {run.round_trip * 1000:.1f} ms."
        if run.round_trip
        else ""
    )
    pinning = "no CPU pinning."
    if args.server_cpus:
        pinning = f"servers on CPU {min(args.server_cpus)}, drivers on CPU {min(args.client_cpus)}."
    lines = [
        f"Medians of {args.reps} runs after {args.warmup} unrecorded warm-up round(s). Nx: times"
        f" as good as {BASELINE} (as {REFERENCE} in the second table): for a ↓ column, its"
        " figure divided by the row's. ±N%: the median absolute deviation, shown from 3 %."
        " [N RTT]: the time in round trips through the proxy.",
        " ".join(f"{w.id}: {w.about.format_map(vars(args))}." for w in run.workloads) + rtt,
        f"Python {found.pop('python')} on {platform.machine()} Linux {platform.release()},"
        f" {os.cpu_count()} CPUs; {pinning} Load average {run.load[0]:.1f} before the run,"
        f" {run.load[-1]:.1f} after it.",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in found.items()) + ".",
    ]
    if run.sink_load:
        shares = ", ".join(f"{w} {share:.0%}" for w, share in run.sink_load.items())
        lines.append(f"The sink's highest share of a driver run's wall time: {shares}.")
    reasons: dict[tuple[str, str, str], list[str]] = {}
    for (driver, workload), (status, reason) in run.unavailable.items():
        reasons.setdefault((driver, status, reason), []).append(workload)
    for (driver, status, reason), ids in reasons.items():
        lines.append(f"{driver} on {','.join(ids)}: {status}: {reason}")
    if run.partial:
        lines.append("PARTIAL RESULTS: the run stopped early.")
    return lines


def panels(
    workloads: Sequence[Workload],
    drivers: Sequence[Driver],
    stats: report.Stats,
    round_trips: dict[str, float | None],
) -> list[chart.Panel]:
    """A panel per workload with a baseline figure: each driver's factor on the headline
    (``round_trips``: the proxy's, by workload, for the figures counted in round trips)."""
    found = []
    for workload in workloads:
        metric = workload.metrics[0]
        round_trip = round_trips.get(workload.id)
        bars = []
        for driver in drivers:
            ratio = report.factor(stats, workload.id, metric, driver.name, BASELINE)
            if ratio is None:
                continue
            value = stats[workload.id, metric.key, driver.name].median
            label = f"{report.times(ratio)} · {report.number(value)} {metric.unit}"
            if metric.in_round_trips and round_trip:
                label += f" [{value / round_trip:.1f} RTT]"
            bars.append(chart.Bar(driver.name, driver.kind, ratio, label))
        better = "higher" if metric.higher_is_better else "lower"
        title = f"{workload.title}: {metric.unit}, {better} is better"
        if bars:
            found.append(chart.Panel(workload.id, title, bars))
    return found


def write(run: Run) -> None:
    """Print the tables; save them, the raw results, the summary and the chart."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    names = [driver.name for driver in run.drivers]
    stats = report.medians(run.results)
    said = notes(run)
    text = (
        f"Against {BASELINE}:\n\n"
        + report.values_table(stats, names, run.workloads, BASELINE, run.round_trip)
        + f"\n\nAgainst the raw reference client, {REFERENCE}:\n\n"
        + report.factors_table(stats, names, run.workloads, REFERENCE)
        + "\n\n"
        + "\n".join(said)
        + "\n"
    )
    print(text)
    base = run.args.out / f"run-{stamp}"
    base.with_suffix(".md").write_text(text)
    raw = {
        "args": {key: str(value) for key, value in vars(run.args).items()},
        "versions": versions(),
        "round_trip_s": run.round_trip,
        "sink": run.sink_said,
        "partial": run.partial,
        "results": run.results,
    }
    base.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    summary = report.summary(
        stats,
        names,
        run.workloads,
        run.unavailable,
        against={"baseline": BASELINE, "reference": REFERENCE},
        round_trip=run.round_trip,
    )
    lines = "".join(json.dumps(line, sort_keys=True) + "\n" for line in summary)
    Path(f"{base}.summary.jsonl").write_text(lines)
    log(f"saved {base}.md, .json and .summary.jsonl")
    round_trips = dict.fromkeys((w.id for w in run.workloads), run.round_trip)
    drawn = panels(run.workloads, run.drivers, stats, round_trips)
    if not drawn:
        log(f"no chart: {BASELINE} has no figure to compare with")
        return
    svg = chart.render(drawn, TITLE, [f"python3 bench/run.py ({stamp}). " + said[1], said[2]])
    for path in {base.with_suffix(".svg"), run.args.chart or chart_path(run, base)}:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg)
        log(f"chart: {path}")


def redraw(files: Sequence[Path], target: Path) -> None:
    """The chart of saved runs (``--redraw``): each workload's figures from the last of
    ``files`` that has it, and notes that say which run each comes from."""
    runs: dict[str, tuple[str, dict[str, Any]]] = {}
    for file in files:
        saved = json.loads(file.read_text())
        for result in saved["results"]:
            runs[result["workload"]] = (file.stem, saved)
    workloads = [workload for id_, workload in WORKLOADS.items() if id_ in runs]
    results = [
        result
        for workload in workloads
        for result in runs[workload.id][1]["results"]
        if result["workload"] == workload.id
    ]
    round_trips = {w.id: runs[w.id][1]["round_trip_s"] for w in workloads}
    drawn = panels(workloads, DRIVERS, report.medians(results), round_trips)
    if not drawn:
        sys.exit(f"no chart: {BASELINE} has no figure to compare with")
    sources: dict[str, list[str]] = {}
    for workload in workloads:
        sources.setdefault(runs[workload.id][0], []).append(workload.id)
    about = []
    for workload in workloads:
        saved = runs[workload.id][1]
        sizes = {"delay_ms": float(saved["args"]["delay_ms"])}
        for option in OPTIONS:  # (the JSON holds their text; a run may predate an option)
            key = option.name.replace("-", "_")
            if key in saved["args"]:
                sizes[key] = option.kind(saved["args"][key])
        rtt = saved["round_trip_s"]
        said = f" ({rtt * 1000:.1f} ms round trip)" if rtt and workload.target == "proxy" else ""
        about.append(f"{workload.id}: {workload.about.format_map(sizes)}{said}.")
    versions = runs[workloads[-1].id][1]["versions"]
    notes = [
        "python3 bench/run.py --redraw: "
        + "; ".join(f"{', '.join(ids)} from {name}" for name, ids in sources.items())
        + ". "
        + " ".join(about),
        "Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(chart.render(drawn, TITLE, notes))
    log(f"chart: {target}")


def chart_path(run: Run, base: Path) -> Path:
    """The docs' chart after a full run; the results folder's after a partial one."""
    full = len(run.drivers) == len(DRIVERS) and len(run.workloads) == len(WORKLOADS)
    return DOCS_CHART if full and not run.args.quick else base.with_suffix(".svg")


def main() -> int:
    args = arguments()
    if args.redraw:
        redraw(args.redraw, args.chart or DOCS_CHART)
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    split = args.pin == "split" and len(cpus) > 1
    args.server_cpus, args.client_cpus = ({cpus[-1]}, {cpus[0]}) if split else (None, None)
    run = Run(args, *chosen(args))
    for driver in run.drivers:
        reason = missing(driver)
        if reason:
            log(f"{driver.name} is not measured: {reason}")
            run.unavailable |= {(driver.name, w.id): ("missing", reason) for w in run.workloads}
    args.out.mkdir(parents=True, exist_ok=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Abort(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        measure_all(run)
    except servers.ServerError as error:
        sys.exit(str(error))
    write(run)
    return 1 if run.partial else 0


if __name__ == "__main__":
    sys.exit(main())
