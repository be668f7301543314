"""The reference on an event loop: what an asyncio client can do on this wire at the least.

Not a library: ``ref-bdat``'s W1 (the envelope, ``BDAT <size> LAST`` and the message in one
write, then the three replies) over an ``asyncio.Protocol`` that wakes the waiting task once
the replies it needs are in, with no checks, no timeouts and no API. It is the floor under
the asyncio adapter as ``ref-bdat`` is under the blocking one: the event loop's own cost per
message (a ``select`` round, a callback, a future, a task step) is in it. ``--uvloop`` runs it
on uvloop's loop (row ``ref-uvloop``; plain asyncio is row ``ref-asyncio``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import common


class _Replies(asyncio.Protocol):
    """Counts received reply lines; wakes the waiter when enough have come."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = b""
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += data
        if self.waiter is not None and self.received.count(b"\r\n") >= self.wanted:
            self.waiter.set_result(None)
            self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None:
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    async def lines(self, count: int) -> list[bytes]:
        """The next ``count`` reply lines (every reply the sink sends W1 has one line, but
        EHLO's, read with ``until_final``)."""
        if self.received.count(b"\r\n") < count:
            self.wanted = count
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        lines = self.received.split(b"\r\n")
        self.received = b"\r\n".join(lines[count:])
        return lines[:count]

    async def until_final(self) -> bytes:
        """A multi-line reply's lines up to its last one, joined."""
        found = []
        while True:
            line = (await self.lines(1))[0]
            found.append(line)
            if line[3:4] != b"-":
                return b"\n".join(found)


async def _many_small(args: argparse.Namespace) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_connection(_Replies, args.host, args.port)
    await replies.until_final()
    transport.write(b"EHLO " + common.LOCAL_HOSTNAME.encode() + b"\r\n")
    if b"CHUNKING" not in await replies.until_final():
        raise RuntimeError("no CHUNKING")
    envelope = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (
        common.SENDER.encode(),
        common.RCPT.encode(),
    )
    finals = []
    with common.Timer() as timer:
        for message in messages:
            transport.write(envelope + b"BDAT %d LAST\r\n" % len(message) + message)
            finals.append((await replies.lines(3))[2].decode())
    transport.write(b"QUIT\r\n")
    await replies.lines(1)
    transport.close()
    return common.rate(args.n, timer) | common.delivery_from_replies(messages, finals)


def many_small(args: argparse.Namespace) -> common.Result:
    if args.uvloop:
        import uvloop  # noqa: PLC0415 - optional: only the ref-uvloop row needs it

        return uvloop.run(_many_small(args))
    return asyncio.run(_many_small(args))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uvloop", action="store_true", help="uvloop's event loop")


if __name__ == "__main__":
    ONLY_W1 = "the event-loop reference measures W1 only"
    sys.exit(
        common.main(
            "reference-async",
            {"W1": many_small, **dict.fromkeys(("W2", "W3", "W4", "W5", "W6", "W7"), ONLY_W1)},
            add_arguments=add_arguments,
        )
    )
