"""Speed of the sans-I/O core alone: no sockets, canned server replies.

    python bench/core_bench.py [--mb 50] [--transactions 20000] [--repeat 5] [--baseline DIR]

Prints the body encoder's rate on a 50 MB message (DATA path: line endings checked, dots
stuffed) and whole transactions of 2 KB messages per second, with canned replies: through
``Client.sendmail`` (MAIL/RCPT/DATA/body/end with and without PIPELINING, and with CHUNKING
the one-round-trip MAIL/RCPT/``BDAT n LAST``, as the adapters send to a server that offers
it), and through the bare ``ClientConnection`` state machine (DATA and BDAT).  The best of
``--repeat`` runs is reported, as ``timeit`` does.

On a shared, noisy machine compare two versions of the core in the same run instead of
across runs: ``--baseline DIR`` (a checkout holding another ``smtp_proto``, e.g. made with
``git worktree add /tmp/base HEAD~3``) measures both, alternately in fresh processes, and
prints each rate and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import smtp_proto
from smtp_proto import RECEIVE, Bdat, Client, ClientConnection, Data, Ehlo, Mail, Rcpt, driving
from smtp_proto.body import PIECE_SIZE, BodyEncoder

EHLO = (
    b"250-bench.local\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n"
    b"250 ENHANCEDSTATUSCODES\r\n"
)
EHLO_NO_PIPELINING = b"250-bench.local\r\n250-SIZE 104857600\r\n250 8BITMIME\r\n"
EHLO_CHUNKING = EHLO.replace(b"250 ENHANCED", b"250-CHUNKING\r\n250 ENHANCED")


def big_message(megabytes: int) -> bytes:
    """76-character lines, every 25th starting with a dot (as the team's W3 workload)."""
    lines = [(b"." if i % 25 == 0 else b"x") + b"y" * 73 for i in range(megabytes * 2**20 // 76)]
    return b"\r\n".join(lines) + b"\r\n"


def small_message(size: int = 2048) -> bytes:
    """A ~2 KB message with one dot-line, as the team's W1 workload."""
    header = b"From: a@bench.test\r\nTo: b@bench.test\r\nSubject: bench\r\n\r\n"
    body = b".dot line\r\n" + b"z" * 70 + b"\r\n"
    return header + body * ((size - len(header)) // len(body))


def encode_rate(message: bytes) -> float:
    """MB/s of the DATA-path encoder over ``message`` in PIECE_SIZE pieces."""
    encoder = BodyEncoder()
    view = memoryview(message)
    start = time.perf_counter()
    for offset in range(0, len(message), PIECE_SIZE):
        encoder.encode(bytes(view[offset : offset + PIECE_SIZE]))
    encoder.finish()
    return len(message) / 2**20 / (time.perf_counter() - start)


def drive(operation: Any, replies: list[bytes]) -> object:
    """Run a core operation against canned replies, discarding what it sends: through the
    core's own driver loop, as the adapters run it."""
    feed = iter(replies)

    def perform(request: object) -> bytes | None:
        return next(feed) if request is RECEIVE else None

    return driving.drive(operation, perform, abort)


def abort() -> None:
    """What the driver calls if something but an ``OSError`` escapes ``perform``: a bug."""
    raise AssertionError("the canned replies ran out")


def transaction_rate(count: int, pipelining: bool, chunking: bool = False) -> float:
    """sendmail transactions per second through the core: pipelined or lock-step DATA, or
    (``chunking``) pipelined BDAT, the envelope and the message in one write and every final
    reply naming a new queue id, as a real server's does."""
    client = Client("bench.local")
    client.connecting("bench", 25)
    drive(client.greeting(), [b"220 bench ESMTP\r\n"])
    ehlo = EHLO_CHUNKING if chunking else EHLO if pipelining else EHLO_NO_PIPELINING
    drive(client.ehlo(), [ehlo])
    if chunking:
        envelope = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
        queued = b"250 2.0.0 Ok: queued as %08X\r\n"
        feeds = [[envelope + queued % number] for number in range(count)]
    elif pipelining:
        replies = [b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n", b"250 2.0.0 queued\r\n"]
        feeds = [replies] * count
    else:
        replies = [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 Go ahead\r\n"]
        feeds = [[*replies, b"250 2.0.0 queued\r\n"]] * count
    message = small_message()
    sendmail = client.sendmail
    start = time.perf_counter()
    for feed in feeds:
        drive(sendmail("a@bench.test", ["b@bench.test"], message), feed)
    return count / (time.perf_counter() - start)


def greeted_connection(ehlo: bytes) -> ClientConnection:
    """A ``ClientConnection`` past the greeting and EHLO, with the extensions of ``ehlo``."""
    connection = ClientConnection()
    connection.receive_data(b"220 bench ESMTP\r\n")
    connection.next_event()
    connection.send(Ehlo("bench.local"))
    connection.receive_data(ehlo)
    connection.next_event()
    return connection


def connection_rate(count: int, queue_ids: bool = False) -> float:
    """Pipelined transactions per second through ``ClientConnection`` alone (no Client layer).

    With ``queue_ids`` every final reply names a new queue id, as a real server's does, so
    the reply parser cannot reuse the ``Reply`` it built for the previous one.
    """
    connection = greeted_connection(EHLO)
    message = small_message()
    envelope = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n"
    if queue_ids:
        finals = [b"250 2.0.0 Ok: queued as %08X\r\n" % number for number in range(count)]
    else:
        finals = [b"250 2.0.0 queued\r\n"] * count
    start = time.perf_counter()
    for queued in finals:
        connection.send(Mail("a@bench.test", ("size=2048",)))
        connection.send(Rcpt("b@bench.test"))
        connection.send(Data())
        connection.receive_data(envelope)
        connection.next_event()
        connection.next_event()
        connection.next_event()
        connection.send_data(message)
        connection.end_data()
        connection.receive_data(queued)
        connection.next_event()
    return count / (time.perf_counter() - start)


def bdat_connection_rate(count: int) -> float:
    """One-round-trip BDAT transactions per second through ``ClientConnection`` alone: MAIL,
    RCPT and ``BDAT n LAST`` as one pipelined group with the message, the three replies in
    one read, a new queue id in every final reply."""
    connection = greeted_connection(EHLO_CHUNKING)
    message = small_message()
    envelope = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
    replies = [envelope + b"250 2.0.0 Ok: queued as %08X\r\n" % number for number in range(count)]
    start = time.perf_counter()
    for reply in replies:
        group = [Mail("a@bench.test", ("size=2048",)), Rcpt("b@bench.test")]
        connection.send_many([*group, Bdat(len(message), last=True)])
        connection.receive_data(reply)
        connection.next_event()
        connection.next_event()
        connection.next_event()
    return count / (time.perf_counter() - start)


def best(repeat: int, run: Callable[[], float]) -> float:
    return max(run() for _ in range(repeat))


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Every rate this benchmark reports, by its label."""
    message = big_message(args.mb)
    rates = {
        f"body encoder, {len(message) / 2**20:.0f} MB, DATA path (MB/s)": best(
            args.repeat, lambda: encode_rate(message)
        )
    }
    for pipelining in (True, False):
        label = "pipelined" if pipelining else "lock-step"
        rates[f"sendmail transactions through the core ({label}) (/s)"] = best(
            args.repeat, partial(transaction_rate, args.transactions, pipelining)
        )
    rates["sendmail transactions through the core (pipelined BDAT, queue ids) (/s)"] = best(
        args.repeat, partial(transaction_rate, args.transactions, True, True)
    )
    rates["the same through ClientConnection alone (pipelined) (/s)"] = best(
        args.repeat, lambda: connection_rate(args.transactions)
    )
    rates["ClientConnection alone, a new queue id in every final reply (/s)"] = best(
        args.repeat, lambda: connection_rate(args.transactions, queue_ids=True)
    )
    rates["ClientConnection alone, BDAT in one group, queue ids (/s)"] = best(
        args.repeat, lambda: bdat_connection_rate(args.transactions)
    )
    return rates


def measure_in(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """``measure`` in a fresh process importing ``smtp_proto`` from ``tree``."""
    command = [sys.executable, __file__, "--json", "--mb", str(args.mb)]
    command += ["--transactions", str(args.transactions), "--repeat", str(args.repeat)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    module, rates = json.loads(result.stdout)
    if not Path(module).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"{tree} does not hold the smtp_proto that was imported ({module})")
    return dict(rates)


def compare(args: argparse.Namespace) -> None:
    """Alternate between this tree and ``--baseline``; print the best of each and the ratio."""
    trees = {"this": Path(__file__).resolve().parent.parent, "baseline": args.baseline}
    found: dict[str, dict[str, float]] = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            for label, rate in measure_in(tree, args).items():
                found[name][label] = max(found[name].get(label, 0.0), rate)
    for label, rate in found["this"].items():
        base = found["baseline"][label]
        print(f"{label}: {rate:,.0f} (baseline {base:,.0f}, x{rate / base:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--transactions", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --baseline")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline is not None:
        compare(args)
    elif args.json:
        print(json.dumps([smtp_proto.__file__, measure(args)]))
    else:
        for label, rate in measure(args).items():
            name, unit = label.rsplit(" (", 1)
            print(f"{name}: {rate:,.0f} {unit.rstrip(')')}")


if __name__ == "__main__":
    main()
