"""aiosmtplib (asyncio), through its public API; ``sendmail`` is given bytes.

W5 connects it to an in-memory transport instead of a socket (by overriding the private
``SMTP._create_connection``, the one place that opens a connection): the figure still pays
for the event loop and its futures, which are part of the library's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiosmtplib
import common
from aiosmtplib.protocol import SMTPProtocol


async def connect(
    args: argparse.Namespace, smtp_class: type[aiosmtplib.SMTP] = aiosmtplib.SMTP
) -> aiosmtplib.SMTP:
    smtp = smtp_class(
        hostname=args.host,
        port=args.port,
        local_hostname=common.LOCAL_HOSTNAME,
        start_tls=False,
        use_tls=False,
        timeout=args.timeout,
    )
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def delivered(smtp: aiosmtplib.SMTP, messages: list[bytes] | list[int]) -> common.Result:
    counters = common.sink_counters((await smtp.execute_command(b"XSTAT")).message)
    return common.delivery(messages, counters["msgs"], counters["bytes"])


async def many_small(args: argparse.Namespace) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    smtp = await connect(args)
    with common.Timer() as timer:
        for message in messages:
            await smtp.sendmail(common.SENDER, [common.RCPT], message)
    result = common.rate(args.n, timer) | await delivered(smtp, messages)
    await smtp.quit()
    return result


async def fan_out(args: argparse.Namespace) -> common.Result:
    rcpts = common.fan_out_recipients(args.rcpts)
    message = common.small_message(0, args.msg_size)
    start = time.perf_counter()
    smtp = await connect(args)
    greeted = time.perf_counter()
    refused, _ = await smtp.sendmail(common.SENDER, rcpts, message)
    sent = time.perf_counter()
    await smtp.quit()
    closed = time.perf_counter()
    if refused:
        raise RuntimeError(f"refused: {refused}")
    return common.fan_out(start, greeted, sent, closed, args.rcpts)


async def big(args: argparse.Namespace) -> common.Result:
    message = common.big_message(args.big_mb)
    smtp = await connect(args)
    with common.BigSend() as send:
        await smtp.sendmail(common.SENDER, [common.RCPT], message)
    result = send.result(len(message)) | await delivered(smtp, [len(message)])
    await smtp.quit()
    return result


async def concurrent_round(args: argparse.Namespace) -> float:
    message = common.small_message(0, args.msg_size)

    async def send(count: int) -> None:
        smtp = await connect(args)
        for _ in range(count):
            await smtp.sendmail(common.SENDER, [common.RCPT], message)
        await smtp.quit()

    start = time.perf_counter()
    await asyncio.gather(*(send(n) for n in common.per_connection(args.total, args.conns)))
    return time.perf_counter() - start


def concurrent(args: argparse.Namespace) -> common.Result:
    return common.concurrent(
        args, [asyncio.run(concurrent_round(args)) for _ in range(args.rounds)]
    )


async def volume(args: argparse.Namespace) -> common.Result:
    """W6 and W7: a task per connection, each a loop of ``sendmail`` on its own client."""
    messages, conns = common.volume(args, slow=True)

    async def session(share: list[bytes]) -> list[str]:
        smtp = await connect(args)
        replies = [(await smtp.sendmail(common.SENDER, [common.RCPT], m))[1] for m in share]
        await smtp.quit()
        return replies

    start = time.perf_counter()
    shares = await asyncio.gather(*(session(share) for share in common.split(messages, conns)))
    seconds = time.perf_counter() - start
    replies = [reply for share in shares for reply in share]
    return common.throughput(len(messages), seconds) | common.delivery_from_replies(
        messages, replies
    )


# ---------------------------------------------------------------- W5


class CannedTransport(asyncio.Transport):
    """An in-memory transport: every write is answered, on the loop's next turn, with the
    reply the sink would give to what it starts with (the end of the data gets QUEUED)."""

    REPLIES = (
        (b"EHLO", common.EHLO_REPLY),
        (b"MAIL", common.MAIL_OK),
        (b"RCPT", common.RCPT_OK),
        (b"DATA\r", common.GO_AHEAD),
        (b"QUIT", b"221 2.0.0 Bye\r\n"),
    )

    def __init__(self, protocol: SMTPProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.closing = False
        self.sent = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        head = bytes(data[:5]).upper()
        reply = next((r for verb, r in self.REPLIES if head.startswith(verb)), common.QUEUED)
        asyncio.get_running_loop().call_soon(self.protocol.data_received, reply)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)


class CannedSMTP(aiosmtplib.SMTP):
    """``aiosmtplib.SMTP`` connected to a ``CannedTransport``."""

    transport: CannedTransport

    async def _create_connection(self, timeout: float | None) -> aiosmtplib.SMTPResponse:
        protocol = SMTPProtocol(
            loop=asyncio.get_running_loop(), connection_lost_callback=self._on_connection_lost
        )
        self.transport = CannedTransport(protocol)
        protocol.connection_made(self.transport)
        self.protocol = protocol
        protocol.data_received(b"220 canned ESMTP\r\n")
        return await protocol.read_response(timeout=timeout)


async def parse_only(args: argparse.Namespace) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    big_message = common.big_message(args.big_mb)
    smtp = await connect(args, CannedSMTP)
    with common.Timer() as timer:
        for message in messages:
            await smtp.sendmail(common.SENDER, [common.RCPT], message)
    with common.Timer() as big_timer:
        await smtp.sendmail(common.SENDER, [common.RCPT], big_message)
    await smtp.quit()
    return common.rate(args.n, timer) | {
        "big_mb_per_s": len(big_message) / 2**20 / big_timer.seconds,
        "layer": "aiosmtplib.SMTP's public API over an in-memory asyncio transport",
    }


def on_asyncio(
    workload: Callable[[argparse.Namespace], Coroutine[Any, Any, common.Result]],
) -> common.WorkloadFn:
    """A coroutine function of ``args`` as a workload that ``asyncio.run`` runs."""

    def run(args: argparse.Namespace) -> common.Result:
        return asyncio.run(workload(args))

    return run


if __name__ == "__main__":
    sys.exit(
        common.main(
            "aiosmtplib",
            {
                "W1": on_asyncio(many_small),
                "W2": on_asyncio(fan_out),
                "W3": on_asyncio(big),
                "W4": concurrent,
                "W5": on_asyncio(parse_only),
                "W6": on_asyncio(volume),
                "W7": on_asyncio(volume),
            },
        )
    )
