"""The standard library's ``smtplib``: the baseline every factor is taken against.

W1 to W4 use nothing but the ``smtplib`` API of the class they are given (``smtplib.SMTP``
here), so the driver of a client with the same API reuses them (``smtp_proto_drv.py``).
W5 replays canned replies through a stand-in socket: ``sendall`` discards what it is given,
``makefile`` reads the replies.
"""

from __future__ import annotations

import argparse
import io
import smtplib
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO

import common

#: A class with the ``smtplib.SMTP`` API (typed loosely: smtp-proto's is not a subclass).
SMTPClass = Callable[..., Any]


def connect(args: argparse.Namespace, smtp_class: SMTPClass) -> Any:
    smtp = smtp_class(
        args.host, args.port, local_hostname=common.LOCAL_HOSTNAME, timeout=args.timeout
    )
    smtp.ehlo()
    return smtp


def delivered(smtp: Any, messages: list[bytes] | list[int]) -> common.Result:
    """What the sink counted on this connection (its XSTAT command) against ``messages``."""
    _, text = smtp.docmd("XSTAT")
    counters = common.sink_counters(text)
    return common.delivery(messages, counters["msgs"], counters["bytes"])


def many_small(args: argparse.Namespace, smtp_class: SMTPClass) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    smtp = connect(args, smtp_class)
    with common.Timer() as timer:
        for message in messages:
            smtp.sendmail(common.SENDER, [common.RCPT], message)
    result = common.rate(args.n, timer) | delivered(smtp, messages)
    smtp.quit()
    return result


def fan_out(args: argparse.Namespace, smtp_class: SMTPClass) -> common.Result:
    rcpts = common.fan_out_recipients(args.rcpts)
    message = common.small_message(0, args.msg_size)
    start = time.perf_counter()
    smtp = connect(args, smtp_class)
    greeted = time.perf_counter()
    refused = smtp.sendmail(common.SENDER, rcpts, message)
    sent = time.perf_counter()
    smtp.quit()
    closed = time.perf_counter()
    if refused:
        raise RuntimeError(f"refused: {refused}")
    return common.fan_out(start, greeted, sent, closed, args.rcpts)


def big(
    args: argparse.Namespace, smtp_class: SMTPClass, from_file: BinaryIO | None = None
) -> common.Result:
    """W3; with ``from_file`` (holding the big message) the client reads it from the file."""
    message = common.big_message(args.big_mb)
    size = len(message)
    payload: bytes | BinaryIO = message
    if from_file is not None:
        from_file.write(message)
        from_file.seek(0)
        payload = from_file
        del message  # only the file holds it now
    smtp = connect(args, smtp_class)
    with common.BigSend() as send:
        smtp.sendmail(common.SENDER, [common.RCPT], payload)
    result = send.result(size) | delivered(smtp, [size])
    smtp.quit()
    return result


def concurrent_round(args: argparse.Namespace, smtp_class: SMTPClass) -> float:
    message = common.small_message(0, args.msg_size)

    def session(count: int) -> None:
        smtp = connect(args, smtp_class)
        for _ in range(count):
            smtp.sendmail(common.SENDER, [common.RCPT], message)
        smtp.quit()

    return common.threaded_round(args, session, common.per_connection(args.total, args.conns))


def concurrent(args: argparse.Namespace, smtp_class: SMTPClass) -> common.Result:
    return common.concurrent(args, [concurrent_round(args, smtp_class) for _ in range(args.rounds)])


def volume(args: argparse.Namespace) -> common.Result:
    """W6 and W7: a loop of ``sendmail`` on each connection, a thread per connection."""
    messages, conns = common.volume(args, slow=True)
    counted: list[dict[str, int]] = []

    def session(share: list[bytes]) -> None:
        smtp = connect(args, smtplib.SMTP)
        for message in share:
            smtp.sendmail(common.SENDER, [common.RCPT], message)
        counted.append(common.sink_counters(smtp.docmd("XSTAT")[1]))
        smtp.quit()

    seconds = common.threaded_round(args, session, common.split(messages, conns))
    received = [sum(counters[key] for counters in counted) for key in ("msgs", "bytes")]
    return common.throughput(len(messages), seconds) | common.delivery(messages, *received)


# ---------------------------------------------------------------- W5

TRANSACTION_REPLIES = common.MAIL_OK + common.RCPT_OK + common.GO_AHEAD + common.QUEUED


class CannedSocket:
    """Stands in for the socket: ``sendall`` counts and discards, ``makefile`` replays."""

    def __init__(self, replies: bytes) -> None:
        self.replies = replies
        self.sent = 0

    def sendall(self, data: bytes) -> None:
        self.sent += len(data)

    def makefile(self, mode: str = "rb") -> io.BytesIO:
        return io.BytesIO(self.replies)

    def close(self) -> None:
        """Nothing to close."""


def canned(transactions: int) -> tuple[smtplib.SMTP, CannedSocket]:
    """An ``smtplib.SMTP`` after EHLO, with replies for ``transactions`` transactions."""
    smtp = smtplib.SMTP(local_hostname=common.LOCAL_HOSTNAME)  # no host: it does not connect
    sock = CannedSocket(common.EHLO_REPLY + TRANSACTION_REPLIES * transactions)
    smtp.sock = sock  # type: ignore[assignment]
    smtp.ehlo()
    return smtp, sock


def parse_only(args: argparse.Namespace) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    smtp, _ = canned(args.n)
    with common.Timer() as timer:
        for message in messages:
            smtp.sendmail(common.SENDER, [common.RCPT], message)
    smtp.close()
    big_message = common.big_message(args.big_mb)
    smtp, sock = canned(1)
    with common.Timer() as big_timer:
        smtp.sendmail(common.SENDER, [common.RCPT], big_message)
    smtp.close()
    return common.rate(args.n, timer) | {
        "big_mb_per_s": len(big_message) / 2**20 / big_timer.seconds,
        "big_bytes_out": sock.sent,
        "layer": "smtplib.SMTP's public API over a canned socket",
    }


def workloads(smtp_class: SMTPClass) -> dict[str, common.WorkloadFn]:
    """W1 to W4 on ``smtp_class``."""
    return {
        "W1": partial(many_small, smtp_class=smtp_class),
        "W2": partial(fan_out, smtp_class=smtp_class),
        "W3": partial(big, smtp_class=smtp_class),
        "W4": partial(concurrent, smtp_class=smtp_class),
    }


if __name__ == "__main__":
    sys.exit(
        common.main(
            "smtplib", workloads(smtplib.SMTP) | {"W5": parse_only, "W6": volume, "W7": volume}
        )
    )
