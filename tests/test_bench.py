"""The benchmark (``bench/run.py``): it builds its sink, measures, checks what the sink
received, and draws one bar per driver; a missing library is named and left out.

Small sizes, one round: these check the machinery, never the speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import chart
from bench.drivers import common

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
SVG = "{http://www.w3.org/2000/svg}"
SMALL = ["--quick", "--reps", "1", "--n", "50", "--big-mb", "1"]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sink build for the module's runs (the second run finds it built)."""
    return tmp_path_factory.mktemp("sink-build")


def bench(
    out: Path, build_dir: Path, *options: str, hide: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python3 bench/run.py`` with small sizes and ``options``; ``hide`` names a module
    that the run cannot import (as if it were not installed)."""
    argv = [str(RUN), *SMALL, "--out", str(out), "--build-dir", str(build_dir), *options]
    command = [sys.executable, *argv]
    if hide is not None:  # the script's folder first on the path, as when it is run
        start = f"sys.modules[{hide!r}] = None; sys.path.insert(0, {str(RUN.parent)!r})"
        run = f"sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
        command = [sys.executable, "-c", f"import runpy, sys; {start}; {run}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def bar_ends(svg: str) -> dict[tuple[str, str], float]:
    """Where each bar of the chart ends, by (workload, driver); a bar drawn twice fails."""
    ends = {}
    for rect in ET.fromstring(svg).iter(f"{SVG}rect"):
        if rect.get("class") == "bar":
            key = (rect.get("data-workload", ""), rect.get("data-driver", ""))
            assert key not in ends, key
            ends[key] = float(rect.get("x", "")) + float(rect.get("width", ""))
    return ends


def one(out: Path, pattern: str) -> Path:
    found = list(out.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_a_quick_run_builds_the_sink_measures_and_draws(tmp_path: Path, build_dir: Path) -> None:
    run = bench(tmp_path, build_dir, "--workloads", "W1,W3", "--drivers", "smtplib,smtp-proto")
    assert run.returncode == 0, run.stderr
    assert (build_dir / "smtp_sink").is_file()

    # Every run reached the sink whole: the count and the bytes it received are the sent ones.
    results = json.loads(one(tmp_path, "run-*.json").read_text())["results"]
    found = {(r["driver"], r["workload"]): r for r in results}
    assert sorted(found) == [(d, w) for d in ("smtp-proto", "smtplib") for w in ("W1", "W3")]
    for (_, workload), result in found.items():
        assert result["verified"] is True
        assert result["sink_msgs"] == result["expected_msgs"] == (50 if workload == "W1" else 1)
        assert result["sink_bytes"] == result["expected_bytes"]
    assert found["smtplib", "W1"]["sink_bytes"] == 50 * 2048
    assert 0.99 * 2**20 < found["smtplib", "W3"]["sink_bytes"] <= 2**20

    # The factors are the medians' ratios, whichever way the metric points.
    summary = [json.loads(line) for line in one(tmp_path, "run-*.summary.jsonl").open()]
    lines = {(s["driver"], s["workload"]): s for s in summary}
    assert {s["status"] for s in summary} == {"ok"}
    for workload, key, higher in (("W1", "msgs_per_s", True), ("W3", "seconds", False)):
        mine = lines["smtp-proto", workload]["metrics"][key]
        base = lines["smtplib", workload]["metrics"][key]
        expected = mine / base if higher else base / mine
        assert lines["smtp-proto", workload]["factor_vs_baseline"][key] == pytest.approx(expected)
        assert lines["smtplib", workload]["factor_vs_baseline"][key] == 1.0
    assert "| smtp-proto " in run.stdout
    assert "| smtplib " in run.stdout

    # The chart: well-formed, one bar per driver and workload, smtplib's ending at 1x.
    svg = one(tmp_path, "run-*.svg").read_text()
    ends = bar_ends(svg)
    assert sorted(ends) == [(w, d) for w in ("W1", "W3") for d in ("smtp-proto", "smtplib")]
    one_x = [
        float(line.get("x1", ""))
        for line in ET.fromstring(svg).iter(f"{SVG}line")
        if line.get("stroke-dasharray")
    ]
    assert len(one_x) == 1
    for workload, key in (("W1", "msgs_per_s"), ("W3", "seconds")):
        assert ends[workload, "smtplib"] == pytest.approx(one_x[0], abs=0.1)
        faster = lines["smtp-proto", workload]["factor_vs_baseline"][key] > 1
        assert (ends[workload, "smtp-proto"] > one_x[0]) == faster
    # A partial run leaves the documentation's chart alone: it draws in its results folder.
    charts = [
        line.split(": ", 1)[1] for line in run.stderr.splitlines() if line.startswith("chart: ")
    ]
    assert charts == [str(one(tmp_path, "run-*.svg"))]


def test_w6_sends_through_the_proxy_and_straight_to_the_sink(
    tmp_path: Path, build_dir: Path
) -> None:
    sizes = ("--w6-n", "40", "--w6-slow-n", "4")
    run = bench(tmp_path, build_dir, "--workloads", "W6", "--drivers", "smtplib,smtp-proto", *sizes)
    assert run.returncode == 0, run.stderr

    # smtplib sends its 4 messages; smtp-proto its 40 through the proxy and 40 to the sink.
    results = {
        r["driver"]: r for r in json.loads(one(tmp_path, "run-*.json").read_text())["results"]
    }
    assert sorted(results) == ["smtp-proto", "smtplib"]
    for driver, sent in (("smtplib", 4), ("smtp-proto", 80)):
        assert results[driver]["verified"] is True
        assert results[driver]["sink_msgs"] == results[driver]["expected_msgs"] == sent
        assert results[driver]["sink_bytes"] == results[driver]["expected_bytes"] == sent * 2048
    mine = results["smtp-proto"]
    assert mine["n"] == 40
    assert mine["msgs_per_s"] == pytest.approx(40 / mine["seconds"])
    assert mine["delay_cost"] == pytest.approx(mine["seconds"] / mine["direct_seconds"])
    assert "delay_cost" not in results["smtplib"]

    # The factor is the rates' ratio; the delay's cost is smtp-proto's own, with no factor.
    lines = {s["driver"]: s for s in map(json.loads, one(tmp_path, "run-*.summary.jsonl").open())}
    rates = [lines[d]["metrics"]["msgs_per_s"] for d in ("smtp-proto", "smtplib")]
    assert lines["smtp-proto"]["factor_vs_baseline"] == {
        "msgs_per_s": pytest.approx(rates[0] / rates[1])
    }
    assert lines["smtp-proto"]["metrics"]["delay_cost"] == mine["delay_cost"]
    assert "| smtp-proto " in run.stdout


def test_the_event_loop_rows_deliver_w1_and_leave_the_rest_out(
    tmp_path: Path, build_dir: Path
) -> None:
    drivers = "ref-asyncio,ref-uvloop,smtp-proto-uvloop"
    run = bench(tmp_path, build_dir, "--workloads", "W1,W3", "--drivers", drivers)
    assert run.returncode == 0, run.stderr
    results = json.loads(one(tmp_path, "run-*.json").read_text())["results"]
    measured = {(r["driver"], r["workload"]): r for r in results if "skipped" not in r}
    assert sorted(measured) == [
        ("ref-asyncio", "W1"),
        ("ref-uvloop", "W1"),
        ("smtp-proto-uvloop", "W1"),
        ("smtp-proto-uvloop", "W3"),
    ]
    for result in measured.values():
        assert result["verified"] is True
        assert result["sink_bytes"] == result["expected_bytes"]
    assert measured["ref-uvloop", "W1"]["sink_msgs"] == 50
    summary = [json.loads(line) for line in one(tmp_path, "run-*.summary.jsonl").open()]
    statuses = {(s["driver"], s["workload"]): s["status"] for s in summary}
    assert statuses["ref-asyncio", "W3"] == statuses["ref-uvloop", "W3"] != "ok"


INSTRUCTIONS = ROOT / "bench" / "instructions.py"


@pytest.mark.parametrize("path", ["bdat", "data", "lockstep", "connection", "blocking"])
def test_each_instruction_count_path_runs_its_transactions(path: str) -> None:
    """What ``bench/instructions.py`` has callgrind count: each path runs on its own, and the
    blocking adapter's stand-in socket sees every transaction it was given."""
    command = [sys.executable, str(INSTRUCTIONS), "--run", path, "--count", "7"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) == 7 if path == "blocking" else float(run.stdout) > 0


def test_instructions_are_counted_per_transaction() -> None:
    command = [sys.executable, str(INSTRUCTIONS), "--paths", "connection"]
    command += ["--small", "2", "--large", "12"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    path, count, *_ = run.stdout.split()
    assert path == "connection"
    assert 1_000 < int(count.replace(",", "")) < 10_000_000


def test_a_missing_library_is_named_with_its_pip_command(tmp_path: Path, build_dir: Path) -> None:
    options = ("--workloads", "W5", "--drivers", "smtplib,aiosmtplib")
    run = bench(tmp_path, build_dir, *options, hide="aiosmtplib")
    assert run.returncode == 0, run.stderr
    assert "aiosmtplib is not measured" in run.stderr
    assert "pip install aiosmtplib" in run.stderr
    lines = [json.loads(line) for line in one(tmp_path, "run-*.summary.jsonl").open()]
    summary = {line["driver"]: line for line in lines}
    assert summary["smtplib"]["status"] == "ok"
    assert summary["aiosmtplib"]["status"] == "missing"
    assert "pip install aiosmtplib" in summary["aiosmtplib"]["reason"]
    results = json.loads(one(tmp_path, "run-*.json").read_text())["results"]
    assert {r["driver"] for r in results} == {"smtplib"}


def test_the_sink_counts_are_checked_against_what_was_sent() -> None:
    messages = [common.small_message(i, 2048) for i in range(3)]
    assert [len(m) for m in messages] == [2048] * 3
    assert common.delivery(messages, 3, 3 * 2048)["verified"] is True
    assert common.delivery(messages, 3, 3 * 2048 - 1)["verified"] is False  # a byte lost
    assert common.delivery(messages, 2, 3 * 2048)["verified"] is False  # a message lost
    replies = ["250 2.0.0 Ok: queued as S1 size=2048"] * 2 + ["250 2.0.0 Ok: queued as S3"]
    assert common.delivery_from_replies(messages, replies)["verified"] is False


def test_the_chart_scale_is_logarithmic_and_names_are_escaped() -> None:
    factors = {"half": 0.5, "<base & co>": 1.0, "double": 2.0, "quadruple": 4.0}
    bars = [chart.Bar(name, "ours", f, f"{f}x") for name, f in factors.items()]
    svg = chart.render([chart.Panel("W1", "a & b", bars)], 'Title "quoted" <b>', ["a < b"])
    ends = {driver: end for (_, driver), end in bar_ends(svg).items()}
    assert sorted(ends, key=ends.__getitem__) == ["half", "<base & co>", "double", "quadruple"]
    step = ends["double"] - ends["<base & co>"]  # each doubling adds the same length
    assert step > 0
    assert ends["<base & co>"] - ends["half"] == pytest.approx(step)
    assert ends["quadruple"] - ends["double"] == pytest.approx(step)


def test_redraw_draws_each_workload_from_the_last_saved_run_that_has_it(tmp_path: Path) -> None:
    """Nothing is measured: W1 comes from the first run, W6 from the second, which measured
    it again; the notes name the run of each."""

    def saved(name: str, rates: dict[tuple[str, str], float]) -> Path:
        results = [
            {"driver": driver, "workload": workload, "msgs_per_s": rate, "rep": 0}
            for (driver, workload), rate in rates.items()
        ]
        options = {o.name.replace("-", "_"): str(o.default) for o in common.OPTIONS}
        run = {
            "args": {**options, "delay_ms": "10.0"},
            "versions": {"python": "3.11.7"},
            "round_trip_s": 0.021,
            "results": results,
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(run))
        return path

    first = saved(
        "run-A",
        {
            ("smtplib", "W1"): 100,
            ("smtp-proto", "W1"): 200,
            ("smtplib", "W6"): 10,
            ("smtp-proto", "W6"): 1000,
        },
    )
    second = saved("run-B", {("smtplib", "W6"): 10, ("smtp-proto", "W6"): 3000})
    target = tmp_path / "chart.svg"
    command = [
        sys.executable,
        str(RUN),
        "--redraw",
        str(first),
        str(second),
        "--chart",
        str(target),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    svg = target.read_text()
    labels = {
        (rect.get("data-workload"), rect.get("data-driver")): rect.findtext(f"{SVG}title")
        for rect in ET.fromstring(svg).iter(f"{SVG}rect")
        if rect.get("class") == "bar"
    }
    assert labels == {
        ("W1", "smtplib"): "smtplib: 1.00x · 100 msg/s",
        ("W1", "smtp-proto"): "smtp-proto: 2.00x · 200 msg/s",
        ("W6", "smtplib"): "smtplib: 1.00x · 10.0 msg/s",
        ("W6", "smtp-proto"): "smtp-proto: 300x · 3,000 msg/s",
    }
    assert "W1 from run-A; W6 from run-B" in svg
    assert not list(tmp_path.glob("run-*.md"))  # nothing measured, nothing saved
