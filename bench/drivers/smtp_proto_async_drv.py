"""smtp-proto's asyncio and trio adapters (``--flavor asyncio|uvloop|trio``; ``uvloop``: the
asyncio adapter on uvloop's event loop).

Each workload is written once, as a coroutine function over the adapter's ``SMTP`` class
(W6 and W7: its ``Mailer``), and run on the framework the flavor names: BDAT, since the sink
offers CHUNKING (``--data`` turns it off). W5, which has no network, is the core's:
``smtp_proto_drv.py`` measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import common

FLAVORS = {
    "asyncio": "smtp_proto.transports.asyncio",
    "uvloop": "smtp_proto.transports.asyncio",
    "trio": "smtp_proto.transports.trio",
}

Workload = Callable[..., Coroutine[Any, Any, Any]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flavor", choices=sorted(FLAVORS), default="asyncio")
    parser.add_argument("--data", action="store_true", help="send with DATA, never BDAT")


def run(args: argparse.Namespace, workload: Workload, *more: Any) -> Any:
    """``workload(args, SMTP, *more)`` on the framework ``--flavor`` names."""
    adapter = importlib.import_module(FLAVORS[args.flavor])
    if args.flavor == "trio":
        import trio  # noqa: PLC0415 - optional: only the trio row needs it

        return trio.run(workload, args, adapter.SMTP, *more)
    if args.flavor == "uvloop":
        import uvloop  # noqa: PLC0415 - optional: only the uvloop row needs it

        return uvloop.run(workload(args, adapter.SMTP, *more))
    return asyncio.run(workload(args, adapter.SMTP, *more))


def on_flavor(workload: Workload) -> common.WorkloadFn:
    return lambda args: run(args, workload)


async def connect(args: argparse.Namespace, smtp_class: Any) -> Any:
    smtp = smtp_class(
        args.host, args.port, local_hostname=common.LOCAL_HOSTNAME, timeout=args.timeout
    )
    smtp.chunking = not args.data
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def delivered(smtp: Any, messages: list[bytes] | list[int]) -> common.Result:
    _, text = await smtp.docmd("XSTAT")
    counters = common.sink_counters(text)
    return common.delivery(messages, counters["msgs"], counters["bytes"])


async def many_small(args: argparse.Namespace, smtp_class: Any) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    smtp = await connect(args, smtp_class)
    with common.Timer() as timer:
        for message in messages:
            await smtp.sendmail(common.SENDER, [common.RCPT], message)
    result = common.rate(args.n, timer) | await delivered(smtp, messages)
    await smtp.quit()
    return result


async def fan_out(args: argparse.Namespace, smtp_class: Any) -> common.Result:
    rcpts = common.fan_out_recipients(args.rcpts)
    message = common.small_message(0, args.msg_size)
    start = time.perf_counter()
    smtp = await connect(args, smtp_class)
    greeted = time.perf_counter()
    refused = await smtp.sendmail(common.SENDER, rcpts, message)
    sent = time.perf_counter()
    await smtp.quit()
    closed = time.perf_counter()
    if refused:
        raise RuntimeError(f"refused: {refused}")
    return common.fan_out(start, greeted, sent, closed, args.rcpts)


async def big(args: argparse.Namespace, smtp_class: Any) -> common.Result:
    message = common.big_message(args.big_mb)
    smtp = await connect(args, smtp_class)
    with common.BigSend() as send:
        await smtp.sendmail(common.SENDER, [common.RCPT], message)
    result = send.result(len(message)) | await delivered(smtp, [len(message)])
    await smtp.quit()
    return result


async def concurrent_round(args: argparse.Namespace, smtp_class: Any) -> float:
    """One W4 round, a task per connection; its wall seconds."""
    message = common.small_message(0, args.msg_size)

    async def send(count: int) -> None:
        smtp = await connect(args, smtp_class)
        for _ in range(count):
            await smtp.sendmail(common.SENDER, [common.RCPT], message)
        await smtp.quit()

    counts = common.per_connection(args.total, args.conns)
    start = time.perf_counter()
    if args.flavor == "trio":
        import trio  # noqa: PLC0415 - optional: only the trio row needs it

        async with trio.open_nursery() as nursery:
            for count in counts:
                nursery.start_soon(send, count)
    else:
        await asyncio.gather(*(send(count) for count in counts))
    return time.perf_counter() - start


def concurrent(args: argparse.Namespace) -> common.Result:
    return common.concurrent(args, [run(args, concurrent_round) for _ in range(args.rounds)])


async def mailed(args: argparse.Namespace, smtp_class: Any, port: int) -> common.Result:
    """W6's or W7's messages through the adapter's ``Mailer`` to ``port``."""
    adapter = importlib.import_module(FLAVORS[args.flavor])
    messages, conns = common.volume(args)
    outgoing = [
        adapter.Outgoing(m, sender=common.SENDER, recipients=[common.RCPT]) for m in messages
    ]
    options = {"local_hostname": common.LOCAL_HOSTNAME, "timeout": args.timeout}
    with common.Timer() as timer:
        async with adapter.Mailer(
            args.host, port, tls="none", connections=conns, window=args.window, **options
        ) as mailer:
            outcomes = await mailer.send_many(outgoing)
    return common.throughput(len(messages), timer.seconds) | common.delivery_from_replies(
        messages, common.final_replies(outcomes)
    )


def volume(args: argparse.Namespace) -> common.Result | str:
    """W6 and W7: through the proxy, then straight to the sink."""
    if args.data:
        return "the Mailer pipelines BDAT"
    delayed = run(args, mailed, args.port)
    return common.with_no_delay(delayed, run(args, mailed, args.sink_port))


if __name__ == "__main__":
    sys.exit(
        common.main(
            "smtp-proto-async",
            {
                "W1": on_flavor(many_small),
                "W2": on_flavor(fan_out),
                "W3": on_flavor(big),
                "W4": concurrent,
                "W5": "the core's own, with no network: the smtp-proto row",
                "W6": volume,
                "W7": volume,
            },
            add_arguments=add_arguments,
        )
    )
