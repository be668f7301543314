"""Instructions per transaction, counted by valgrind's callgrind: the figure that stays the
same on a busy machine, where the rates of ``core_bench.py`` and ``run.py`` move by tens of
percent.

    python3 bench/instructions.py [--paths bdat,data,lockstep,connection,blocking]
                                  [--small 200] [--large 1200]

Each path runs ``--small`` and then ``--large`` transactions of a 2 KB message under
callgrind, in fresh processes; the difference of the two totals divided by the difference
of the counts is what one transaction costs, with the interpreter's start-up and imports
taken out.  The paths:

* ``bdat``, ``data``, ``lockstep``: ``Client.sendmail`` with canned replies (pipelined BDAT
  with a new queue id in every final reply, pipelined DATA, DATA without PIPELINING), as
  ``core_bench.py`` drives them;
* ``connection``: the bare ``ClientConnection``, pipelined DATA;
* ``blocking``: the blocking adapter's ``sendmail`` on a stand-in for its socket that
  answers MAIL, RCPT and ``BDAT n LAST`` in one read, as the benchmark's sink does (the
  adapter's own layer included, the kernel's left out).

``--run PATH --count N`` runs one path without callgrind (what each measured process does).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import core_bench

HERE = Path(__file__).resolve().parent
EHLO = core_bench.EHLO_CHUNKING


class StandInSocket:
    """What the blocking adapter needs of a socket, answering the commands it is sent."""

    def __init__(self) -> None:
        self.replies = [b"220 bench ESMTP\r\n"]
        self.timeout: float | None = 30.0
        self.transactions = 0

    def sendall(self, data: bytes | memoryview) -> None:
        verb = bytes(data[:4]).upper()
        if verb == b"EHLO":
            self.replies.append(EHLO)
        elif verb == b"MAIL":
            self.transactions += 1
            final = b"250 2.0.0 Ok: queued as %08X\r\n" % self.transactions
            self.replies.append(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" + final)
        elif verb == b"QUIT":
            self.replies.append(b"221 bye\r\n")

    def recv(self, size: int) -> bytes:
        return self.replies.pop(0)

    def gettimeout(self) -> float | None:
        return self.timeout

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def close(self) -> None:
        pass


def blocking(count: int) -> int:
    """``count`` messages through the blocking adapter on a ``StandInSocket``; how many
    transactions the stand-in saw."""
    from smtp_proto.transports.sync import SMTP  # noqa: PLC0415 - only this path needs it

    stand_in = StandInSocket()

    class OnStandIn(SMTP):
        def _get_socket(self, host: str, port: int, timeout: float | None) -> Any:
            return stand_in

    smtp = OnStandIn("bench", 25, local_hostname="bench.local", timeout=30)
    smtp.ehlo()
    message = core_bench.small_message()
    for _ in range(count):
        smtp.sendmail("a@bench.test", ["b@bench.test"], message)
    return stand_in.transactions


PATHS: dict[str, Callable[[int], object]] = {
    "bdat": lambda count: core_bench.transaction_rate(count, True, chunking=True),
    "data": lambda count: core_bench.transaction_rate(count, True),
    "lockstep": lambda count: core_bench.transaction_rate(count, False),
    "connection": core_bench.connection_rate,
    "blocking": blocking,
}


def collected(path: str, count: int) -> int:
    """The instructions callgrind counts for a process that runs ``count`` transactions."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--run",
        path,
        "--count",
        str(count),
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total for {path}:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default=",".join(PATHS), help="default: all")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--run", choices=sorted(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        print(PATHS[args.run](args.count))  # a rate, or the transactions the stand-in saw
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install valgrind", file=sys.stderr)
        return 2
    for path in args.paths.split(","):
        if path not in PATHS:
            parser.error(f"unknown path {path!r}; known: {', '.join(PATHS)}")
        small, large = collected(path, args.small), collected(path, args.large)
        per = (large - small) / (args.large - args.small)
        print(f"{path:<11} {per:>10,.0f} instructions per transaction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
