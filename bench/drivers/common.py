"""What the runner and every driver share: the workloads, their options, the messages, and
a driver's half of the protocol between them.

A driver is a script in this folder that runs one workload per invocation and prints one
JSON line on stdout (anything else goes to stderr). ``main(name, {"W1": fn, ...})`` parses
the options, calls ``fn(args)`` and prints the dict it returns with ``"ok": true``; a string
in place of the function, or returned by it, says why the workload does not apply to this
driver (its cell reads n/a), and an exception is reported as ``"ok": false``.

Adding a workload is one entry in ``WORKLOADS`` (an option it needs: one in ``OPTIONS``) and
a function in each driver that supports it; the others report it as not written.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

Result = dict[str, Any]
WorkloadFn = Callable[[argparse.Namespace], "Result | str"]
T = TypeVar("T")

SENDER = "sender@bench.test"
RCPT = "rcpt@bench.test"
LOCAL_HOSTNAME = "bench.local"  # given to every client, so none looks its own name up in DNS

#: What the sink's EHLO says, for the workloads that replay canned replies (W5).
EHLO_REPLY = (
    b"250-sink.local\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n"
    b"250 AUTH PLAIN LOGIN\r\n"
)
MAIL_OK = b"250 2.1.0 Ok\r\n"
RCPT_OK = b"250 2.1.5 Ok\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued\r\n"


@dataclass(frozen=True)
class Metric:
    """A number a workload reports: its JSON key, its unit, and which way is better."""

    key: str
    unit: str
    higher_is_better: bool
    #: Whether a factor against another client means something (not for memory near zero).
    compared: bool = True
    #: Whether the table also shows it as a count of the delaying proxy's round trips.
    in_round_trips: bool = False


@dataclass(frozen=True)
class Workload:
    """One row of the workload table; ``metrics[0]`` is the headline the chart draws."""

    id: str
    title: str
    #: Where the driver connects: the sink, the delaying proxy in front of it, or nowhere.
    target: str | None
    metrics: tuple[Metric, ...]
    #: What it does, for the notes under the tables; ``{option}`` stands for its value.
    about: str


MSGS_PER_S = Metric("msgs_per_s", "msg/s", higher_is_better=True)
#: W6 and W7: the time through the proxy over the same messages' straight to the sink.
DELAY_COST = Metric("delay_cost", "x the time with no delay", False, compared=False)


def _volume(workload: str, over: str) -> str:
    """What W6 or W7 does, for the notes."""
    return (
        f"{{{workload}_n:,}} messages of {{msg_size:,}} bytes over {over} through the proxy,"
        " timed from connecting to the last QUIT: smtp-proto's Mailer (window {window}) sends"
        " them with send_many, then again straight to the sink (x the time with no delay);"
        " the clients that wait for each transaction's reply (smtplib, aiosmtplib, the"
        f" reference) send {{{workload}_slow_n:,}}"
    )


WORKLOADS = {
    w.id: w
    for w in (
        Workload(
            "W1",
            "many small",
            "sink",
            (MSGS_PER_S, Metric("cpu_us_per_msg", "client CPU µs/msg", higher_is_better=False)),
            "{n:,} messages of {msg_size:,} bytes on one connection, timed from after EHLO",
        ),
        Workload(
            "W2",
            "fan-out",
            "proxy",
            (
                Metric("txn_s", "txn s", higher_is_better=False, in_round_trips=True),
                Metric("session_s", "session s", higher_is_better=False, in_round_trips=True),
            ),
            "one message to {rcpts} recipients through the proxy ({delay_ms:g} ms each way):"
            " MAIL to the final reply (txn), connect to the reply to QUIT (session)",
        ),
        Workload(
            "W3",
            "big",
            "sink",
            (
                Metric("seconds", "s", higher_is_better=False),
                Metric("peak_extra_mb", "peak extra MB", higher_is_better=False, compared=False),
            ),
            "one message of {big_mb:g} MiB: the send's wall time, and the memory the client"
            " allocates on top of the message (peak RSS during the send minus RSS before)",
        ),
        Workload(
            "W4",
            "concurrent",
            "sink",
            (MSGS_PER_S,),
            "{total} messages over {conns} connections at once (threads or tasks), connect"
            " and QUIT included, the median of {rounds} rounds",
        ),
        Workload(
            "W5",
            "parse-only",
            None,
            (MSGS_PER_S, Metric("big_mb_per_s", "big MB/s", higher_is_better=True)),
            "no network: the W1 transactions and the W3 message against canned replies",
        ),
        Workload(
            "W6",
            "volume",
            "proxy",
            (MSGS_PER_S, DELAY_COST),
            _volume("w6", "one connection"),
        ),
        Workload(
            "W7",
            "volume, pooled",
            "proxy",
            (MSGS_PER_S, DELAY_COST),
            _volume("w7", "10 connections (threads for smtplib, tasks for aiosmtplib)"),
        ),
    )
}


@dataclass(frozen=True)
class Option:
    """A size the runner passes to every driver (``--name``), with its ``--quick`` value."""

    name: str
    kind: type[int] | type[float]
    default: float
    quick: float
    help: str


OPTIONS = (
    Option("n", int, 2000, 200, "W1, W5: messages over one connection"),
    Option("msg-size", int, 2048, 2048, "W1, W2, W4, W5: bytes in a small message"),
    Option("rcpts", int, 50, 50, "W2: recipients of the message"),
    Option("big-mb", float, 50, 5, "W3, W5: MiB in the big message"),
    Option("conns", int, 20, 20, "W4: concurrent connections"),
    Option("total", int, 200, 200, "W4: messages over all connections"),
    Option("rounds", int, 5, 2, "W4: rounds in one driver run (their median is reported)"),
    Option("w6-n", int, 1000, 200, "W6: messages for the Mailer"),
    Option("w6-slow-n", int, 100, 20, "W6: messages for the clients that wait for each reply"),
    Option("w7-n", int, 10000, 1000, "W7: messages for the Mailer"),
    Option("w7-slow-n", int, 500, 100, "W7: messages for the clients that wait for each reply"),
    Option("window", int, 100, 100, "W6, W7: the Mailer's transactions in flight (its default)"),
)

#: W6's and W7's connections.
VOLUME_CONNECTIONS = {"W6": 1, "W7": 10}


def parse_args(
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options the runner gives every driver, and the driver's own (``add_arguments``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="the workload's target's port")
    parser.add_argument("--sink-port", type=int, default=0, help="the sink's, for W6 and W7")
    parser.add_argument("--timeout", type=float, default=120.0, help="client I/O timeout, s")
    for option in OPTIONS:
        parser.add_argument(
            f"--{option.name}", type=option.kind, default=option.default, help=option.help
        )
    if add_arguments is not None:
        add_arguments(parser)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- messages


def _text_line(k: int, width: int = 76) -> bytes:
    """Line ``k`` of a body: printable ASCII, a different rotation for each ``k``."""
    text = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz"
    shift = k * 7 % 20
    return (text[shift:] + text[:shift])[:width]


def small_message(i: int, size: int = 2048) -> bytes:
    """Message ``i``: about ``size`` bytes, CRLF line ends, its fourth body line a dot-line."""
    head = (
        f"From: Bench Sender <{SENDER}>\r\nTo: Bench Rcpt <{RCPT}>\r\n"
        f"Subject: benchmark message {i}\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"Message-ID: <{i}.bench@bench.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode()
    lines = []
    room = size - len(head)
    k = 0
    while room > 2:
        line = (b"." + _text_line(k, 75) if k == 3 else _text_line(k))[: room - 2]
        lines.append(line + b"\r\n")
        room -= len(line) + 2
        k += 1
    return head + b"".join(lines)


def big_message(mib: float) -> bytes:
    """About ``mib`` MiB of 76-character lines, every 25th one starting with a dot.

    One 100-line block repeated, so that building it needs little more than the result.
    """
    head = (
        f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: big\r\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <big.bench@bench.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    block = b"".join(
        (b"." + _text_line(k, 75) if k % 25 == 0 else _text_line(k)) + b"\r\n" for k in range(100)
    )
    return head + block * max(1, (int(mib * 2**20) - len(head)) // len(block))


def fan_out_recipients(count: int) -> list[str]:
    return [f"r{i}@bench.test" for i in range(count)]


def per_connection(total: int, conns: int) -> list[int]:
    """``total`` messages shared out over ``conns`` connections, as evenly as can be."""
    return [total // conns + (k < total % conns) for k in range(conns)]


# ---------------------------------------------------------------- what the sink received

_COUNTER = re.compile(r"(\w+)=(\d+)")


def sink_counters(text: str | bytes) -> dict[str, int]:
    """The numbers in a sink reply: XSTAT's ``msgs= rcpts= bytes= last=``, or ``size=``."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return {key: int(value) for key, value in _COUNTER.findall(text)}


def delivery(messages: Iterable[bytes | int], sink_msgs: int, sink_bytes: int) -> Result:
    """Whether the sink got every message, each byte of it (the size it counts is the
    message's after undoing dot-stuffing); ``messages`` are the messages or their sizes."""
    sizes = [m if isinstance(m, int) else len(m) for m in messages]
    return {
        "verified": sink_msgs == len(sizes) and sink_bytes == sum(sizes),
        "expected_msgs": len(sizes),
        "expected_bytes": sum(sizes),
        "sink_msgs": sink_msgs,
        "sink_bytes": sink_bytes,
    }


def delivery_from_replies(messages: Iterable[bytes | int], replies: Iterable[str]) -> Result:
    """``delivery`` from the final replies, each of which says ``size=`` of its message."""
    sizes = [sink_counters(reply).get("size", -1) for reply in replies]
    return delivery(messages, len(sizes), sum(sizes))


# ---------------------------------------------------------------- timing


class Timer:
    """Wall and CPU seconds of the block it wraps."""

    seconds: float
    cpu_s: float

    def __enter__(self) -> Self:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu


def rate(count: int, timer: Timer) -> Result:
    """W1's and W5's figures for ``count`` messages sent in ``timer``."""
    return {
        "msgs_per_s": count / timer.seconds,
        "seconds": timer.seconds,
        "cpu_s": timer.cpu_s,
        "cpu_us_per_msg": timer.cpu_s / count * 1e6,
        "n": count,
    }


def fan_out(start: float, greeted: float, sent: float, closed: float, rcpts: int) -> Result:
    """W2's figures from ``perf_counter`` readings at the session's four points."""
    return {
        "txn_s": sent - greeted,
        "session_s": closed - start,
        "connect_ehlo_s": greeted - start,
        "rcpts": rcpts,
    }


def concurrent(args: argparse.Namespace, rounds: Iterable[float]) -> Result:
    """W4's figures from the wall seconds of each round."""
    seconds = statistics.median(rounds)
    return {
        "msgs_per_s": args.total / seconds,
        "seconds": seconds,
        "rounds": args.rounds,
        "conns": args.conns,
        "total": args.total,
    }


def threaded_round(
    args: argparse.Namespace, session: Callable[[T], None], shares: Iterable[T]
) -> float:
    """One round on threads, one per share: ``session(share)`` sends its share (a count or
    the messages) on a connection of its own; the threads start at once. Its wall seconds."""
    errors: list[str] = []
    go = threading.Event()

    def run(share: T) -> None:
        try:
            go.wait(args.timeout)
            session(share)
        except Exception as error:  # collected, and raised by the round
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join(args.timeout)
    seconds = time.perf_counter() - start
    if errors or any(thread.is_alive() for thread in threads):
        raise RuntimeError(f"{len(errors)} connections failed, the first: {errors[:1]}")
    return seconds


# ---------------------------------------------------------------- W6 and W7


def volume(args: argparse.Namespace, slow: bool = False) -> tuple[list[bytes], int]:
    """W6's or W7's messages and connections; ``slow``: the share of the clients that wait
    for each transaction's reply."""
    workload = args.workload
    count = getattr(args, f"{workload.lower()}_{'slow_n' if slow else 'n'}")
    return [small_message(i, args.msg_size) for i in range(count)], VOLUME_CONNECTIONS[workload]


def split(messages: list[bytes], conns: int) -> list[list[bytes]]:
    """``messages`` shared out over ``conns`` connections, in order."""
    ends = list(itertools.accumulate(per_connection(len(messages), conns), initial=0))
    return [messages[a:b] for a, b in itertools.pairwise(ends)]


def throughput(count: int, seconds: float) -> Result:
    """W6's and W7's figures for ``count`` messages sent in ``seconds``."""
    return {"msgs_per_s": count / seconds, "seconds": seconds, "n": count}


def final_replies(outcomes: Iterable[object]) -> list[str]:
    """The text of each Mailer result's final reply; an exception's ``repr`` names no size,
    so its message counts as lost."""
    return [getattr(getattr(o, "data_reply", None), "text", repr(o)) for o in outcomes]


DELIVERY = ("expected_msgs", "expected_bytes", "sink_msgs", "sink_bytes")


def with_no_delay(delayed: Result, direct: Result) -> Result:
    """A W6 or W7 result through the proxy, with the delay's cost: its time over that of the
    same messages sent straight to the sink. Delivery counts both sends."""
    return (
        delayed
        | {key: delayed[key] + direct[key] for key in DELIVERY}
        | {
            "verified": delayed["verified"] and direct["verified"],
            "delay_cost": delayed["seconds"] / direct["seconds"],
            "direct_msgs_per_s": direct["msgs_per_s"],
            "direct_seconds": direct["seconds"],
        }
    )


def _rss_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (the high-water mark) of this process, in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


class BigSend(Timer):
    """W3's timer: also the memory the send allocates, on top of what the process held.

    The kernel's high-water mark of the resident set is reset on entry (``clear_refs``), so
    the peak it reports on exit is the send's.
    """

    def __enter__(self) -> Self:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        self._rss = _rss_mb("VmRSS")
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.extra_mb = max(0.0, _rss_mb("VmHWM") - self._rss)

    def result(self, message_bytes: int) -> Result:
        return {
            "seconds": self.seconds,
            "cpu_s": self.cpu_s,
            "mb_per_s": message_bytes / 2**20 / self.seconds,
            "peak_extra_mb": round(self.extra_mb, 1),
        }


# ---------------------------------------------------------------- the driver's side


def emit(line: Mapping[str, object]) -> None:
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


def main(
    name: str,
    workloads: Mapping[str, WorkloadFn | str],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Run the workload ``--workload`` names and print its JSON line; the exit status."""
    args = parse_args(add_arguments=add_arguments)
    head = {"driver": name, "workload": args.workload}
    run = workloads.get(args.workload, "not written for this driver")
    try:
        result = run if isinstance(run, str) else run(args)
    except Exception as error:  # any failure is a result too: the runner reports it
        traceback.print_exc()
        emit({**head, "ok": False, "error": f"{type(error).__name__}: {error}"[:500]})
        return 1
    if isinstance(result, str):
        emit({**head, "ok": True, "skipped": result})
    else:
        emit({**head, "ok": True, **result})
    return 0
