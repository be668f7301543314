"""The benchmark's servers: building the C sink, starting it and the delaying proxy, and
stopping them. Every process started here is stopped by its PID."""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SINK_SOURCE = BENCH / "sink" / "smtp_sink.c"
PROXY = BENCH / "delay_proxy.py"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")


class ServerError(Exception):
    """A server could not be built or started."""


def compiler() -> str:
    """The system C compiler: ``$CC``, else ``cc``, else ``gcc``."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    raise ServerError("no C compiler found (set CC, or install gcc) to build the sink")


def build_sink(build_dir: Path) -> Path:
    """The sink's binary in ``build_dir``, compiled unless the one there was built from this
    very source with the same command (a stamp beside it holds their digest)."""
    command = [compiler(), *CFLAGS]
    digest = hashlib.sha256(SINK_SOURCE.read_bytes() + " ".join(command).encode()).hexdigest()
    binary = build_dir / "smtp_sink"
    stamp = build_dir / "smtp_sink.sha256"
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return binary
    build_dir.mkdir(parents=True, exist_ok=True)
    partial = build_dir / f"smtp_sink.{os.getpid()}.tmp"  # renamed into place when complete
    run = subprocess.run(
        [*command, "-o", str(partial), str(SINK_SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if run.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ServerError(f"building the sink failed:\n{run.stderr}")
    partial.replace(binary)
    stamp.write_text(digest + "\n")
    return binary


def pin(pid: int, cpus: set[int] | None) -> None:
    """Keep process ``pid`` on ``cpus`` (None: anywhere)."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


class Servers:
    """The processes a run starts (sink, proxy), pinned to ``cpus`` when given."""

    def __init__(self, cpus: set[int] | None) -> None:
        self.cpus = cpus
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, command: list[str], name: str, timeout: float = 10.0) -> tuple[int, int]:
        """Start a server that prints ``LISTENING <port>`` when ready: (its pid, the port)."""
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        pin(process.pid, self.cpus)
        self.processes.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("LISTENING "):
            raise ServerError(f"the {name} did not start (it said {line!r})")
        return process.pid, int(line.split()[1])

    def stop(self) -> str:
        """Stop every server (SIGTERM, then SIGKILL); what they printed on the way out."""
        said = []
        while self.processes:
            process = self.processes.pop()
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
            try:
                out, _ = process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                out, _ = process.communicate(timeout=5)
            said.append((out or "").strip())
        return " ".join(line for line in said if line)

    def start_sink(self, binary: Path, max_seconds: float) -> tuple[int, int]:
        return self.start([str(binary), "-t", str(int(max_seconds)), "0"], "sink")

    def start_proxy(self, target: int, delay_ms: float, max_seconds: float) -> int:
        command = [sys.executable, str(PROXY), "--target-port", str(target)]
        command += ["--delay-ms", str(delay_ms), "--max-seconds", str(int(max_seconds))]
        return self.start(command, "delaying proxy")[1]


def round_trip(port: int, count: int = 20) -> float:
    """The median round trip of a NOOP through the server on ``port``, seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        replies = sock.makefile("rb")
        replies.readline()
        times = []
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(b"NOOP\r\n")
            replies.readline()
            times.append(time.perf_counter() - start)
        sock.sendall(b"QUIT\r\n")
        replies.readline()
    return statistics.median(times)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
