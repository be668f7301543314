"""Faults at every step of a session, on every adapter: a typed exception, no hang, no
success reported for a message the server did not accept, and a closed object that can
connect again.

The scripted server's first session injects the fault (``fin``: orderly close, ``rst``:
abortive close, ``421``: a 421 reply then close, ``stall``: silence); later sessions behave,
so each test ends by reconnecting the same object and sending a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from smtp_proto.errors import (
    RemoteProtocolError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from tests.adapters import (
    MESSAGE,
    Adapter,
    FaultyThenHealthy,
    all_adapters,
    sends_after_reconnect,
)
from tests.scripted_server import ScriptedServer, Session, StandardESMTP

STALL_TIMEOUT = 0.5
#: Generous bound on how long past its timeout a client may take to give up.
SLACK = 2.0
SERVICE_CLOSING = (421, b"4.3.2 test.local Service not available, closing")
SENDER, RECIPIENTS = "s@example.test", ["r@example.test", "q@example.test"]
STEPS = ["greeting", "ehlo", "mail", "rcpt", "data", "body", "after-data", "quit"]
ACTIONS = ["fin", "rst", "421", "stall"]
LOCKSTEP = ["8BITMIME", "SIZE 1000000"]


def check_421(step: str, error: BaseException) -> None:
    """The exception ``sendmail`` raises when the server says 421 at ``step`` (as smtplib)."""
    if step == "mail":
        assert isinstance(error, SMTPSenderRefused), repr(error)
        assert (error.smtp_code, error.smtp_error, error.sender) == (*SERVICE_CLOSING, SENDER)
    elif step == "rcpt":
        assert isinstance(error, SMTPRecipientsRefused), repr(error)
        assert error.recipients == {RECIPIENTS[0]: SERVICE_CLOSING}
    elif step == "body" and isinstance(error, SMTPServerDisconnected):
        pass  # the 421 came while the body was on its way: the write may fail first
    elif step in ("data", "body", "after-data"):
        assert isinstance(error, SMTPDataError), repr(error)
        assert (error.smtp_code, error.smtp_error) == SERVICE_CLOSING
    else:  # ehlo: HELO follows the refused EHLO on a connection the server closed
        assert isinstance(error, SMTPServerDisconnected), repr(error)


def reset_while_connecting(error: BaseException | None) -> bool:
    """Whether ``error`` is the event loop's own report of a reset during connect().

    A reset right after the server accepted can beat the event loop's check of the
    non-blocking connect (asyncio, trio), which then reports a failed connect: asyncio a
    ``ConnectionResetError("Connect call failed ...")``, trio an ``OSError("all attempts to
    connect ... failed")`` from a group holding that ``ConnectionResetError``.  A blocking
    connect usually returns before the reset, which then surfaces as
    ``SMTPServerDisconnected``; on a loaded machine its ``connect()`` may see the reset too.
    """
    if isinstance(error, ConnectionResetError):
        return True
    group = error.__cause__ if isinstance(error, OSError) else None
    return isinstance(group, ExceptionGroup) and all(
        isinstance(inner, ConnectionResetError) for inner in group.exceptions
    )


@all_adapters
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("step", STEPS)
async def test_fault(adapter: Adapter, step: str, action: str) -> None:
    handler = FaultyThenHealthy({step: action})
    timeout = STALL_TIMEOUT if action == "stall" else 10.0
    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=timeout)
        error: BaseException | None = None
        started = time.monotonic()
        try:
            greeting = await adapter.call(smtp.connect, server.host, server.port)
            if step == "greeting" and action == "421":
                assert greeting == SERVICE_CLOSING  # connect() returns it, as smtplib's does
            else:
                assert greeting == (220, b"test.local ESMTP")
                refused = await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE)
                assert step == "quit", f"sendmail reported success: {refused}"
                assert refused == {}
                reply = await adapter.call(smtp.quit)
                assert (action, reply) == ("421", SERVICE_CLOSING)  # quit() returns the 421
        except Exception as exc:
            error = exc
        elapsed = time.monotonic() - started

        if (step, action) == ("greeting", "rst") and reset_while_connecting(error):
            pass  # a failed connect: nothing was sent, and the reconnect below must work
        elif action in ("fin", "rst", "stall"):
            assert isinstance(error, SMTPServerDisconnected), repr(error)
            if step == "greeting":  # smtplib's words (a stall's are checked below)
                assert str(error).startswith("Connection unexpectedly closed"), str(error)
        elif step not in ("greeting", "quit"):
            assert error is not None
            check_421(step, error)
        if action == "stall":
            assert STALL_TIMEOUT * 0.9 <= elapsed < STALL_TIMEOUT + SLACK, elapsed
            assert str(error) == "Connection unexpectedly closed: timed out"
            assert isinstance(error.__cause__, TimeoutError), repr(error.__cause__)
        else:
            assert elapsed < SLACK, f"took {elapsed:.2f} s to notice a {action} at {step}"
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.noop)
        await sends_after_reconnect(adapter, smtp, server, handler)
    # Only a fault once the whole message was received leaves a (possibly delivered) message.
    delivered = [(e.rcpt_tos, e.data) for e in handler.faulty.envelopes]
    assert delivered == ([(RECIPIENTS, MESSAGE)] if step in ("after-data", "quit") else [])


@all_adapters
async def test_421_greeting_is_a_connect_error(adapter: Adapter) -> None:
    handler = FaultyThenHealthy({"greeting": "421"})
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPConnectError) as info:
            async with adapter.connected(server.host, server.port):
                raise AssertionError("entered the with block after a 421 greeting")
        assert (info.value.smtp_code, info.value.smtp_error) == SERVICE_CLOSING
        assert info.value.args == SERVICE_CLOSING
        async with adapter.connected(server.host, server.port) as smtp:
            assert await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE) == {}
    assert len(handler.healthy.envelopes) == 1


@all_adapters
async def test_421_at_ehlo(adapter: Adapter) -> None:
    """``ehlo()`` itself returns the 421 (as smtplib's does) and the object is closed."""
    handler = FaultyThenHealthy({"ehlo": "421"})
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        assert await adapter.call(smtp.ehlo) == SERVICE_CLOSING
        await sends_after_reconnect(adapter, smtp, server, handler)
    assert handler.faulty.envelopes == []


@all_adapters
async def test_421_at_mail_without_pipelining(adapter: Adapter) -> None:
    """The lock-step exchange reports a 421 to MAIL as the pipelined one does (``check_421``),
    naming the sender.  The other lock-step cells: ``tests/test_attacks_faults.py``."""
    handler = FaultyThenHealthy({"mail": "421"}, features=LOCKSTEP)
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(SMTPSenderRefused) as info:
            await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE)
        check_421("mail", info.value)
        await sends_after_reconnect(adapter, smtp, server, handler)
    assert handler.faulty.envelopes == []


@all_adapters
@pytest.mark.parametrize("action", ["fin", "rst", "421"])
async def test_with_block_survives_a_fault_at_quit(adapter: Adapter, action: str) -> None:
    """Leaving a ``with`` block sends QUIT; a server gone at that point is no error, but a
    reply other than 221 is (smtplib raises ``SMTPResponseException`` there)."""
    handler = FaultyThenHealthy({"quit": action})
    with ScriptedServer(handler) as server:
        if action == "421":
            with pytest.raises(SMTPResponseException) as info:
                async with adapter.connected(server.host, server.port) as smtp:
                    assert await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE) == {}
            assert (info.value.smtp_code, info.value.smtp_error) == SERVICE_CLOSING
        else:
            async with adapter.connected(server.host, server.port) as smtp:
                assert await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE) == {}
        assert not adapter.is_connected(smtp)
    assert len(handler.faulty.envelopes) == 1


@all_adapters
async def test_write_timeout_while_the_server_reads_nothing(adapter: Adapter) -> None:
    """The server takes DATA, then reads nothing: a large body fills the socket buffers and
    the write itself must give up after ``timeout``."""
    handler = FaultyThenHealthy({"body": "stall"}, features=["PIPELINING", "8BITMIME"])
    large = b"Subject: large\r\n\r\n" + (b"x" * 998 + b"\r\n") * 16000  # 16 MB
    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=STALL_TIMEOUT)
        await adapter.call(smtp.connect, server.host, server.port)
        started = time.monotonic()
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, large)
        assert time.monotonic() - started < STALL_TIMEOUT + SLACK
        assert not adapter.is_connected(smtp)
        await sends_after_reconnect(adapter, smtp, server, handler)
    assert handler.faulty.envelopes == []


def tls_server(then: str) -> Callable[[Session], None]:
    """Says 220 to STARTTLS, then ``then`` ("stall", "fin" or "rst") instead of TLS; later
    sessions behave."""
    healthy = StandardESMTP()

    def handler(s: Session) -> None:
        if s.index > 0:
            healthy(s)
            return
        s.reply("220 tls.example.test ESMTP")
        s.expect("ehlo ")
        s.reply("250-tls.example.test", "250 STARTTLS")
        s.expect("starttls")
        s.reply("220 2.0.0 Go ahead")
        {"stall": s.stall, "fin": s.close, "rst": s.reset}[then]()

    return handler


@all_adapters
@pytest.mark.parametrize("action", ["fin", "rst"])
async def test_server_gone_during_the_starttls_handshake(adapter: Adapter, action: str) -> None:
    """As with smtplib, the handshake's own error comes out (``ssl.SSLEOFError``,
    ``ConnectionResetError``: ``OSError`` either way) and the object is closed."""
    with ScriptedServer(tls_server(action)) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(OSError):
            await adapter.call(smtp.starttls)
        assert not adapter.is_connected(smtp)
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        assert await adapter.call(smtp.quit) == (221, b"2.0.0 Bye")


@all_adapters
async def test_stalled_starttls_handshake_times_out(adapter: Adapter) -> None:
    with ScriptedServer(tls_server("stall")) as server:
        smtp = adapter.new(timeout=STALL_TIMEOUT)
        await adapter.call(smtp.connect, server.host, server.port)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await adapter.call(smtp.starttls)
        assert time.monotonic() - started < STALL_TIMEOUT + SLACK
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.noop)


@all_adapters
async def test_stalled_smtp_ssl_handshake_times_out(adapter: Adapter) -> None:
    healthy = StandardESMTP()

    def handler(s: Session) -> None:
        if s.index == 0:
            s.stall()  # a plain TCP server: the client's TLS hello is never answered
        else:
            healthy(s)

    with ScriptedServer(handler) as server:
        smtp = adapter.new("SMTP_SSL", timeout=STALL_TIMEOUT)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await adapter.call(smtp.connect, server.host, server.port)
        assert time.monotonic() - started < STALL_TIMEOUT + SLACK
        assert not adapter.is_connected(smtp)
        plain = adapter.new()  # the server itself is fine for a client without TLS
        assert (await adapter.call(plain.connect, server.host, server.port))[0] == 220
        assert (await adapter.call(plain.quit))[0] == 221


def garbage_greeting(s: Session) -> None:
    s.send(b"HTTP/1.1 400 Bad Request\r\n")
    s.read_until_eof()


def garbage_ehlo_reply(s: Session) -> None:
    s.reply("220 test.local ESMTP")
    s.expect("ehlo ")
    s.send(b"hello, this is not SMTP\r\n")
    s.read_until_eof()


def code_changes_mid_reply(s: Session) -> None:
    s.reply("220 test.local ESMTP")
    s.expect("ehlo ")
    s.reply("250-test.local", "251 PIPELINING")
    s.read_until_eof()


def endless_line(s: Session) -> None:
    s.reply("220 test.local ESMTP")
    s.expect("ehlo ")
    s.send(b"250-" + b"x" * 20000)
    s.read_until_eof()


@all_adapters
@pytest.mark.parametrize(
    "handler", [garbage_greeting, garbage_ehlo_reply, code_changes_mid_reply, endless_line]
)
async def test_garbage_from_server(adapter: Adapter, handler: Callable[[Session], None]) -> None:
    """Not SMTP: a ``RemoteProtocolError`` (an ``SMTPServerDisconnected``) and a closed
    connection, on both ends."""
    with ScriptedServer(handler) as server:
        smtp = adapter.new()
        with pytest.raises(SMTPServerDisconnected) as info:
            await adapter.call(smtp.connect, server.host, server.port)
            await adapter.call(smtp.ehlo)
        assert isinstance(info.value, RemoteProtocolError)
        assert isinstance(info.value, SMTPException)
        assert not adapter.is_connected(smtp)
        await adapter.sessions_done(server)
    assert all(session.closed for session in server.sessions)
