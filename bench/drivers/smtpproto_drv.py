"""smtpproto, the package of that name on PyPI (another project): a sans-I/O protocol and an
AnyIO client, run here on asyncio.

Its API sends ``email.message.EmailMessage`` objects only and serializes each one on every
send, so the benchmark's bytes are parsed into messages before the timing starts and the
serialization is timed: that is what its users pay. The sink's size in each final reply is
checked against the message's serialization. W5 drives its sans-I/O ``SMTPClientProtocol``
directly, with no event loop at all.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys
import time
from collections.abc import Callable, Coroutine
from email.message import EmailMessage
from typing import Any

import anyio
import common
from smtpproto.client import AsyncSMTPClient
from smtpproto.protocol import SMTPClientProtocol


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def wire_size(message: EmailMessage) -> int:
    """The bytes of ``message`` that smtpproto sends (ASCII addresses: the SMTP policy)."""
    return len(message.as_bytes(policy=email.policy.SMTP))


def client(args: argparse.Namespace) -> AsyncSMTPClient:
    return AsyncSMTPClient(
        host=args.host,
        port=args.port,
        domain=common.LOCAL_HOSTNAME,
        timeout=args.timeout,
        connect_timeout=args.timeout,
    )


async def many_small(args: argparse.Namespace) -> common.Result:
    messages = [parsed(common.small_message(i, args.msg_size)) for i in range(args.n)]
    replies = []
    async with client(args).connect() as session:
        with common.Timer() as timer:
            for message in messages:
                reply = await session.send_message(
                    message, sender=common.SENDER, recipients=[common.RCPT]
                )
                replies.append(reply.message)
    sizes = [wire_size(message) for message in messages]
    return common.rate(args.n, timer) | common.delivery_from_replies(sizes, replies)


async def fan_out(args: argparse.Namespace) -> common.Result:
    rcpts = common.fan_out_recipients(args.rcpts)
    message = parsed(common.small_message(0, args.msg_size))
    start = time.perf_counter()
    async with client(args).connect() as session:
        greeted = time.perf_counter()
        reply = await session.send_message(message, sender=common.SENDER, recipients=rcpts)
        sent = time.perf_counter()
    closed = time.perf_counter()
    if reply.code != 250:
        raise RuntimeError(f"not sent: {reply}")
    return common.fan_out(start, greeted, sent, closed, args.rcpts)


async def big(args: argparse.Namespace) -> common.Result:
    message = parsed(common.big_message(args.big_mb))  # the bytes are not kept
    async with client(args).connect() as session:
        with common.BigSend() as send:
            reply = await session.send_message(
                message, sender=common.SENDER, recipients=[common.RCPT]
            )
    size = wire_size(message)
    return send.result(size) | common.delivery_from_replies([size], [reply.message])


async def concurrent_round(args: argparse.Namespace) -> float:
    message = parsed(common.small_message(0, args.msg_size))
    smtp = client(args)

    async def send(count: int) -> None:
        async with smtp.connect() as session:
            for _ in range(count):
                await session.send_message(message, sender=common.SENDER, recipients=[common.RCPT])

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for count in common.per_connection(args.total, args.conns):
            group.start_soon(send, count)
    return time.perf_counter() - start


def concurrent(args: argparse.Namespace) -> common.Result:
    return common.concurrent(args, [anyio.run(concurrent_round, args) for _ in range(args.rounds)])


# ---------------------------------------------------------------- W5


def transaction(protocol: SMTPClientProtocol, message: EmailMessage) -> int:
    """One transaction through the sans-I/O protocol with canned replies; the bytes sent."""
    sent = 0
    for command, argument, reply in (
        (protocol.mail, common.SENDER, common.MAIL_OK),
        (protocol.recipient, common.RCPT, common.RCPT_OK),
    ):
        command(argument)
        sent += len(protocol.get_outgoing_data())
        protocol.feed_bytes(reply)
    protocol.start_data()
    sent += len(protocol.get_outgoing_data())
    protocol.feed_bytes(common.GO_AHEAD)
    protocol.data(message)
    sent += len(protocol.get_outgoing_data())
    final = protocol.feed_bytes(common.QUEUED)
    if final is None or final.code != 250:
        raise RuntimeError(f"not queued: {final}")
    return sent


def parse_only(args: argparse.Namespace) -> common.Result:
    messages = [parsed(common.small_message(i, args.msg_size)) for i in range(args.n)]
    protocol = SMTPClientProtocol()
    protocol.feed_bytes(b"220 canned ESMTP\r\n")
    protocol.send_greeting(common.LOCAL_HOSTNAME)
    protocol.get_outgoing_data()
    protocol.feed_bytes(common.EHLO_REPLY)
    with common.Timer() as timer:
        for message in messages:
            transaction(protocol, message)
    big_message = parsed(common.big_message(args.big_mb))
    with common.Timer() as big_timer:
        sent = transaction(protocol, big_message)
    return common.rate(args.n, timer) | {
        "big_mb_per_s": sent / 2**20 / big_timer.seconds,
        "big_bytes_out": sent,
        "layer": "smtpproto's SMTPClientProtocol (sans-I/O, no event loop)",
    }


def on_anyio(
    workload: Callable[[argparse.Namespace], Coroutine[Any, Any, common.Result]],
) -> common.WorkloadFn:
    """A coroutine function of ``args`` as a workload that AnyIO runs on asyncio."""

    def run(args: argparse.Namespace) -> common.Result:
        return anyio.run(workload, args)

    return run


if __name__ == "__main__":
    sys.exit(
        common.main(
            "smtpproto",
            {
                "W1": on_anyio(many_small),
                "W2": on_anyio(fan_out),
                "W3": on_anyio(big),
                "W4": concurrent,
                "W5": parse_only,
            },
        )
    )
