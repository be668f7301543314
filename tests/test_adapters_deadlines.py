"""``timeout`` bounds each wait for a complete reply, not each socket read (issue #7).

A hostile server that sends a reply one byte at a time, each byte well within ``timeout`` of
the last, or continuation lines without end, must not keep a client waiting: the client
gives up once ``timeout`` has passed since it started waiting, with the error a silent
server gets (``SMTPServerDisconnected`` caused by ``TimeoutError``), and the object is
closed.  A server that is slow but answers each reply in time is not cut off: the deadline
starts again for each reply.

The servers drip from their own thread at ``INTERVAL``; the tests assert on outcomes (which
error, how little of the reply was sent), never on durations.  A server gives up after
``LIMIT`` steps, so that a client that waits too long (a blocking one is beyond the reach
of the harness's ``GUARD``) fails the test in seconds instead of hanging it.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from smtp_proto.errors import SMTPServerDisconnected
from tests.adapters import MESSAGE, PATIENT_TIMEOUT, PAUSE, Adapter, all_adapters
from tests.scripted_server import ScriptedServer, Session

#: The client's timeout in these tests, and the server's pause before each byte it drips.
TIMEOUT = 0.5
INTERVAL = 0.1
#: Bytes a server drips (or chunks it reads) before it gives up and hangs up: 10 s or more.
LIMIT = 100
SENDER, RECIPIENT = "s@example.test", "r@example.test"
GREETING = b"220 drip.example.test ESMTP a server that takes its time with every reply\r\n"
EHLO_REPLY = b"250-drip.example.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"
CHALLENGE = b"334 PDQxOTI5NDIzNDEuMTI4Mjg0NzJAc291cmNlZm91ci5hbmRyZXcuY211LmVkdT4=\r\n"
FINAL_REPLY = b"250 2.0.0 Ok: queued as 4BD2A1C3F0 after a long, long think about it\r\n"


class Drip:
    """Sends bytes one at a time, ``INTERVAL`` apart, until they run out, the client hangs
    up, ``stop`` is set or ``LIMIT`` bytes went out; ``sent`` counts them."""

    def __init__(self) -> None:
        self.sent = 0
        self.stop = threading.Event()

    def __call__(self, session: Session, data: Iterable[int]) -> None:
        for byte in itertools.islice(data, LIMIT):
            if self.stop.wait(INTERVAL):
                return
            try:
                session.send(bytes([byte]))
            except OSError:  # the client gave up and closed the connection
                return
            self.sent += 1


def endless_continuation_lines() -> Iterable[int]:
    """A multi-line 250 reply that never reaches its last line."""
    return itertools.chain.from_iterable(itertools.repeat(b"250-still thinking\r\n"))


def greeted(session: Session, features: bytes = EHLO_REPLY) -> None:
    """A prompt greeting and EHLO reply."""
    session.send(GREETING)
    session.expect("ehlo ")
    session.send(features)


def dripping_server(drip: Drip, step: str) -> Callable[[Session], None]:
    """A server answering promptly up to ``step``, whose reply it then drips."""

    def handler(session: Session) -> None:
        if step == "greeting":
            drip(session, GREETING)
            return
        if step == "ehlo":
            session.send(GREETING)
            session.expect("ehlo ")
            drip(session, EHLO_REPLY)
        elif step == "ehlo-endless":
            session.send(GREETING)
            session.expect("ehlo ")
            drip(session, endless_continuation_lines())
        elif step == "auth":
            greeted(session, b"250-drip.example.test\r\n250 AUTH CRAM-MD5\r\n")
            session.expect("auth cram-md5")
            drip(session, CHALLENGE)
        else:
            assert step == "after-data"
            greeted(session)
            session.expect("mail from:")
            session.expect("rcpt to:")
            session.expect("data")
            session.send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
            session.read_until(b"\r\n.\r\n")
            drip(session, FINAL_REPLY)
        # A client that gives up with a dripped byte still unread closes with a reset.
        with contextlib.suppress(ConnectionResetError):
            session.read_until_eof()

    return handler


async def drive_to(adapter: Adapter, smtp: Any, step: str, server: ScriptedServer) -> None:
    """What the client does up to (and including) the step whose reply the server drips."""
    await adapter.call(smtp.connect, server.host, server.port)
    if step in ("ehlo", "ehlo-endless"):
        await adapter.call(smtp.ehlo)
    elif step == "auth":
        await adapter.call(smtp.login, "user", "secret")
    elif step == "after-data":
        await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], MESSAGE)


DRIPPED = {
    "greeting": len(GREETING),
    "ehlo": len(EHLO_REPLY),
    "ehlo-endless": None,
    "auth": len(CHALLENGE),
    "after-data": len(FINAL_REPLY),
}


@all_adapters
@pytest.mark.parametrize("step", list(DRIPPED))
async def test_a_dripped_reply_times_out(adapter: Adapter, step: str) -> None:
    drip = Drip()
    with ScriptedServer(dripping_server(drip, step)) as server:
        smtp = adapter.new(timeout=TIMEOUT)
        try:
            with pytest.raises(SMTPServerDisconnected) as info:
                await drive_to(adapter, smtp, step, server)
        finally:
            drip.stop.set()
        assert isinstance(info.value.__cause__, TimeoutError), repr(info.value.__cause__)
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.noop)
    # Far less than the reply: with a timeout per read the client would have waited for all
    # of it (or, for the endless one, until the server gave up).
    whole = DRIPPED[step]
    assert 0 < drip.sent < min(whole or LIMIT, LIMIT) // 2, drip.sent


@all_adapters
async def test_each_pipelined_reply_gets_its_own_deadline(adapter: Adapter) -> None:
    """MAIL, RCPT and DATA go out in one write; the server answers each after ``PAUSE``,
    so the three replies take longer than the timeout in all, but each comes in time."""
    pause = threading.Event()

    def handler(session: Session) -> None:
        greeted(session)
        for line, reply in [
            ("mail from:", b"250 2.1.0 Ok\r\n"),
            ("rcpt to:", b"250 2.1.5 Ok\r\n"),
            ("data", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ]:
            session.expect(line)
            pause.wait(PAUSE)  # never set: a pause the client must sit through
            session.send(reply)
        session.read_until(b"\r\n.\r\n")
        session.send(b"250 2.0.0 Ok: queued\r\n")
        session.expect("quit")
        session.send(b"221 2.0.0 Bye\r\n")

    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=PATIENT_TIMEOUT)
        await adapter.call(smtp.connect, server.host, server.port)
        assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], MESSAGE) == {}
        assert await adapter.call(smtp.quit) == (221, b"2.0.0 Bye")


@all_adapters
async def test_a_slowly_read_write_times_out(adapter: Adapter) -> None:
    """After 354 the server reads the body a little at a time: each write of the body must
    end by its deadline, however the kernel hands out room in the socket's buffer (the sync
    and trio adapters bounded each whole write before issue #7 too; asyncio each wait)."""
    drip = Drip()
    drained = 0
    large = b"Subject: large\r\n\r\n" + (b"y" * 998 + b"\r\n") * 32000  # 32 MB

    def handler(session: Session) -> None:
        nonlocal drained
        greeted(session)
        session.expect("mail from:")
        session.expect("rcpt to:")
        session.expect("data")
        session.send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
        for _ in range(LIMIT):
            if drip.stop.wait(2 * INTERVAL):
                return
            try:
                session.read_exact(1 << 15)
            except (OSError, AssertionError):  # the client gave up: reset, or EOF
                return
            drained += 1 << 15

    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=TIMEOUT)
        await adapter.call(smtp.connect, server.host, server.port)
        try:
            with pytest.raises(SMTPServerDisconnected):
                await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], large)
        finally:
            drip.stop.set()
        assert not adapter.is_connected(smtp)
    # With a timeout per socket write, the client would have kept going until the server
    # gave up.
    assert drained < LIMIT // 2 * (1 << 15), drained


@all_adapters
async def test_a_failed_connect_leaves_the_object_closed(adapter: Adapter) -> None:
    """A connect that fails (refused here; reset or timed out alike) leaves nothing half-open:
    the next command says "not connected", as after a timeout, instead of tripping over a
    connection still waiting for its greeting."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = adapter.new(timeout=TIMEOUT)
    with pytest.raises(ConnectionRefusedError):
        await adapter.call(smtp.connect, "127.0.0.1", port)
    with pytest.raises(SMTPServerDisconnected, match="please run connect"):
        await adapter.call(smtp.noop)
