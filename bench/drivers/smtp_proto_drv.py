"""smtp-proto's blocking adapter, ``smtp_proto.transports.sync``, and its core.

W1 to W4 are the stdlib driver's workloads, unchanged, on the adapter's ``SMTP`` (the
``smtplib`` API): BDAT, since the sink offers CHUNKING; ``--data`` turns BDAT off (row
``smtp-proto-data``). ``--from-file`` runs only W3, with the message streamed from a file
object (written before the timing starts) instead of handed over as ``bytes`` (row
``smtp-proto-file``). W5 drives the sans-I/O ``smtp_proto.Client`` with canned replies and no
socket, through the same operations the adapters run. W6 and W7 send with the adapter's
``Mailer``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from collections.abc import Generator, Iterator
from typing import Any

import common
import smtplib_drv
from smtp_proto.transports import sync

from smtp_proto import RECEIVE, Client


class DataSMTP(sync.SMTP):
    """The blocking adapter with BDAT turned off: DATA even when the server offers CHUNKING."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunking = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="store_true", help="send with DATA, never BDAT")
    parser.add_argument("--from-file", action="store_true", help="W3 from a file object only")


def on_adapter(workload: str) -> common.WorkloadFn:
    """The stdlib driver's ``workload`` on the adapter this run's options choose."""

    def run(args: argparse.Namespace) -> common.Result | str:
        if args.from_file and workload != "W3":
            return "the same code as smtp-proto: only W3 reads a file"
        if not args.from_file:
            return smtplib_drv.workloads(DataSMTP if args.data else sync.SMTP)[workload](args)
        with tempfile.TemporaryFile() as file:
            return smtplib_drv.big(args, sync.SMTP, from_file=file)

    return run


def mailed(args: argparse.Namespace, port: int, messages: list[bytes], conns: int) -> common.Result:
    """``messages`` through a ``Mailer`` of ``conns`` connections to ``port``."""
    outgoing = [sync.Outgoing(m, sender=common.SENDER, recipients=[common.RCPT]) for m in messages]
    options = {"local_hostname": common.LOCAL_HOSTNAME, "timeout": args.timeout}
    with (
        common.Timer() as timer,
        sync.Mailer(
            args.host, port, tls="none", connections=conns, window=args.window, **options
        ) as mailer,
    ):
        outcomes = mailer.send_many(outgoing)
    return common.throughput(len(messages), timer.seconds) | common.delivery_from_replies(
        messages, common.final_replies(outcomes)
    )


def volume(args: argparse.Namespace) -> common.Result | str:
    """W6 and W7: through the proxy, then straight to the sink."""
    if args.data or args.from_file:
        return "the Mailer pipelines BDAT: the smtp-proto row"
    messages, conns = common.volume(args)
    delayed = mailed(args, args.port, messages, conns)
    return common.with_no_delay(delayed, mailed(args, args.sink_port, messages, conns))


# ---------------------------------------------------------------- W5

ENVELOPE_REPLIES = common.MAIL_OK + common.RCPT_OK + common.GO_AHEAD


def run_offline(operation: Generator[Any, Any, Any], replies: Iterator[bytes]) -> int:
    """Drive a core operation with canned replies; the bytes it sent."""
    value = None
    sent = 0
    try:
        while True:
            request = operation.send(value)
            value = None
            if request is RECEIVE:
                value = next(replies)
            elif isinstance(request, bytes | memoryview):
                sent += len(request)
    except StopIteration:
        return sent


def offline_client(chunking: bool) -> Client:
    client = Client(common.LOCAL_HOSTNAME)
    client.chunking = chunking
    client.connecting("sink", 25)
    run_offline(client.greeting(), iter([b"220 canned ESMTP\r\n"]))
    run_offline(client.ehlo(), iter([common.EHLO_REPLY]))
    return client


def parse_only(args: argparse.Namespace) -> common.Result | str:
    if args.from_file:
        return "the same code as smtp-proto: only W3 reads a file"
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    client = offline_client(chunking=not args.data)
    # BDAT: every reply is a 250, one per read keeps them in step; DATA: the pipelined
    # envelope's three replies in one read, then the end of data's.
    replies = itertools.cycle([ENVELOPE_REPLIES, common.QUEUED] if args.data else [common.QUEUED])
    with common.Timer() as timer:
        for message in messages:
            run_offline(client.sendmail(common.SENDER, [common.RCPT], message), replies)
    big_message = common.big_message(args.big_mb)
    with common.Timer() as big_timer:
        sent = run_offline(client.sendmail(common.SENDER, [common.RCPT], big_message), replies)
    return common.rate(args.n, timer) | {
        "big_mb_per_s": len(big_message) / 2**20 / big_timer.seconds,
        "big_bytes_out": sent,
        "layer": "smtp_proto.Client's operations, canned replies, no socket",
    }


if __name__ == "__main__":
    sys.exit(
        common.main(
            "smtp-proto",
            {w: on_adapter(w) for w in ("W1", "W2", "W3", "W4")}
            | {"W5": parse_only, "W6": volume, "W7": volume},
            add_arguments=add_arguments,
        )
    )
