"""Hostile proxies, on every adapter: a scripted SOCKS5 or HTTP CONNECT proxy on 127.0.0.1
(``tests/scripted_proxy.py``) that closes, resets or goes silent at each step of its
handshake, cuts or drips its answer, floods, answers garbage or something it was not asked,
sends bytes where none may be, or echoes the credentials back.

Each must give a typed ``ProxyError`` in bounded time (no hang), leave the object closed
(``is_connected`` false, ``sock`` ``None``, a command says "not connected"), and the object
must then connect again through the proxy's next, well-behaved session and deliver.  Also:
a proxy out of reach, and a cancellation during the handshake.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from smtp_proto.errors import (
    ProxyAuthenticationError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    ProxyTimeoutError,
    ProxyUnreachableError,
    SMTPServerDisconnected,
)
from tests.adapters import MESSAGE, TIMEOUT, Adapter, all_adapters, async_adapters
from tests.proxy_wire import basic, error_texts, http_head, rfc1929_request, socks5_reply
from tests.scripted_proxy import (
    PASSWORD,
    STEPS,
    USER,
    Action,
    HostileProxy,
    Scheme,
    ScriptedProxy,
)
from tests.scripted_server import ScriptedServer, Session
from tests.servers.certs import LocalCA
from tests.test_attacks_replies import CHUNK, kernel_buffers

TARGET, PORT = "mail.example.test", 25
#: The client's timeout in the tests that wait for it, and how much later than it, or than
#: nothing, a failure may come on a loaded machine.
SHORT = 0.5
SLACK = 2.0
SCHEMES: list[Scheme] = ["socks5", "http"]
#: The step of each protocol where the proxy answers CONNECT.
LAST_STEP: dict[Scheme, str] = {"socks5": "reply", "http": "head"}
SENDER, RECIPIENT = "s@example.test", "r@example.test"
#: The longest answer head the client takes (``smtp_proto.proxy``); what a flooding proxy
#: may get into the connection before the client gives up: that, the largest read an
#: adapter makes (asyncio's buffer, a recv), and the kernel's buffers.
HEAD_LIMIT = 16 * 1024
FLOOD_BOUND = HEAD_LIMIT + (1 << 18) + CHUNK + kernel_buffers()


def proxy_url(scheme: Scheme, server: ScriptedServer, *, credentials: bool = True) -> str:
    user = f"{USER}:{PASSWORD}@" if credentials else ""
    return f"{scheme}://{user}{server.host}:{server.port}"


def success(scheme: Scheme) -> bytes:
    """The proxy's answer that opens the tunnel."""
    return socks5_reply() if scheme == "socks5" else http_head(200, "Connection established")


@contextmanager
def timed() -> Iterator[list[float]]:
    """The seconds the block took, in the list it gives, once it ends (raising or not)."""
    elapsed: list[float] = []
    started = time.monotonic()
    try:
        yield elapsed
    finally:
        elapsed.append(time.monotonic() - started)


async def refused(
    adapter: Adapter, smtp: Any, expected: type[ProxyError] | tuple[type[ProxyError], ...]
) -> Any:
    """``smtp.connect`` through the proxy fails with exactly ``expected`` (or one of them),
    leaving ``smtp`` closed; returns the error."""
    with pytest.raises(ProxyError) as info:
        await adapter.call(smtp.connect, TARGET, PORT)
    allowed = expected if isinstance(expected, tuple) else (expected,)
    assert type(info.value) in allowed, repr(info.value)
    assert isinstance(info.value, ConnectionError)  # what smtplib's callers catch
    await closed(adapter, smtp)
    return info.value


async def closed(adapter: Adapter, smtp: Any) -> None:
    assert not adapter.is_connected(smtp)
    assert smtp.sock is None
    with pytest.raises(SMTPServerDisconnected):
        await adapter.call(smtp.noop)


async def delivers_through(adapter: Adapter, smtp: Any, proxy: ScriptedProxy) -> None:
    """``smtp`` connects again, through the proxy's next session (which behaves), and
    delivers ``MESSAGE`` to the mail server at the tunnel's end."""
    smtp.timeout = TIMEOUT
    assert (await adapter.call(smtp.connect, TARGET, PORT))[0] == 220
    assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], MESSAGE) == {}
    assert (await adapter.call(smtp.quit))[0] == 221
    assert not adapter.is_connected(smtp)
    assert proxy.targets[-1] == (TARGET, PORT)
    assert [(e.rcpt_tos, e.data) for e in proxy.mail.envelopes] == [([RECIPIENT], MESSAGE)]


# ---------------------------------------------------------------- at each step of the handshake

#: Each step and each way to fail there ("cut" needs an answer to cut: none at "accept").
FAULTS = [
    (scheme, step, action)
    for scheme in SCHEMES
    for step in STEPS[scheme]
    for action in ("fin", "rst", "cut", "stall")
    if not (action == "cut" and step == "accept")
]


@all_adapters
@pytest.mark.parametrize(("scheme", "step", "action"), FAULTS)
async def test_a_proxy_failing_at_each_step(
    adapter: Adapter, scheme: Scheme, step: str, action: Action
) -> None:
    """Closed, reset or cut short: a protocol error at once.  Silent: a timeout, after
    ``timeout`` (a ``TimeoutError`` too).  A reset as soon as the proxy accepted may reach
    the client while it still connects: then the proxy was out of reach."""
    proxy = HostileProxy(scheme, step, action, credentials=True)
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server), timeout=SHORT)
        expected: tuple[type[ProxyError], ...] = (ProxyProtocolError,)
        if action == "stall":
            expected = (ProxyTimeoutError,)
        elif (step, action) == ("accept", "rst"):
            expected = (ProxyProtocolError, ProxyUnreachableError)
        with timed() as elapsed:
            error = await refused(adapter, smtp, expected)
        assert proxy.reached.is_set()
        if action == "stall":
            assert isinstance(error, TimeoutError)
            assert SHORT * 0.9 <= elapsed[0] < SHORT + SLACK, elapsed
        else:
            assert elapsed[0] < SLACK, elapsed
        await delivers_through(adapter, smtp, proxy)
    assert proxy.logins == [(USER, PASSWORD)] * (1 + (step in ("status", "reply", "head")))


@all_adapters
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_dripped_answer_is_bounded_as_a_whole(adapter: Adapter, scheme: Scheme) -> None:
    """A byte every 0.1 s, each well within the timeout, for seconds: a per-read timeout
    would wait for them all; the handshake's own ends it after ``timeout``."""
    long_answer = (
        socks5_reply(0, b"\x03\x3c" + b"d" * 60)
        if scheme == "socks5"
        else http_head(200, "Connection established", [("Via", "1.1 " + "p" * 60)])
    )
    assert len(long_answer) * 0.1 > SHORT + SLACK
    proxy = HostileProxy(scheme, LAST_STEP[scheme], "drip", data=long_answer, interval=0.1)
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server, credentials=False), timeout=SHORT)
        with timed() as elapsed:
            error = await refused(adapter, smtp, ProxyTimeoutError)
        assert isinstance(error, TimeoutError)
        assert SHORT * 0.9 <= elapsed[0] < SHORT + SLACK, elapsed
        await adapter.wait_for(proxy.closed_by_client)
        await delivers_through(adapter, smtp, proxy)


# ---------------------------------------------------------------- answers it must not take


#: Answers a proxy must not take, each at its step: name -> (scheme, step, answer).
GARBAGE: dict[str, tuple[Scheme, str, bytes]] = {
    "socks5-an-http-answer": ("socks5", "method", b"HTTP/1.1 400 Bad Request\r\n\r\n"),
    "socks5-a-mail-server": ("socks5", "method", b"220 mail.example.test ESMTP\r\n"),
    "socks5-a-socks4-answer": ("socks5", "method", b"\x04\x5a"),
    "socks5-password-not-offered": ("socks5", "method", b"\x05\x02"),
    "socks5-gssapi-not-offered": ("socks5", "method", b"\x05\x01"),
    "socks5-unknown-atyp": ("socks5", "reply", b"\x05\x00\x00\x07" + bytes(8)),
    "socks5-reply-version": ("socks5", "reply", b"\x04\x00\x00\x01" + bytes(6)),
    "http-a-mail-server": ("http", "head", b"220 mail.example.test ESMTP\r\n"),
    "http-a-socks5-answer": ("http", "head", b"\x05\x00"),
    "http-a-bad-field": ("http", "head", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"),
    "http-101": ("http", "head", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: smtp\r\n\r\n"),
    "http-a-40-kb-head-in-one-write": (
        "http",
        "head",
        http_head(200, "OK", [("X-Filler", "x" * 40_000)]) + b"220 x\r\n",
    ),
}


@all_adapters
@pytest.mark.parametrize("garbage", list(GARBAGE))
async def test_garbage_is_a_protocol_error(adapter: Adapter, garbage: str) -> None:
    """Said at once (not after the timeout), and the connection closed (the proxy sees it)."""
    scheme, step, answer = GARBAGE[garbage]
    proxy = HostileProxy(scheme, step, "send", data=answer)
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server, credentials=False))
        with timed() as elapsed:
            await refused(adapter, smtp, ProxyProtocolError)
        assert elapsed[0] < SLACK, elapsed
        await adapter.wait_for(proxy.closed_by_client)
        await delivers_through(adapter, smtp, proxy)
    assert b"ehlo" not in bytes(server.sessions[0].received).lower()  # no SMTP through it


@all_adapters
async def test_an_endless_http_head_is_cut_off(adapter: Adapter) -> None:
    """Header lines without end: refused past 16 KiB, having taken in a bounded amount."""
    proxy = HostileProxy(
        "http",
        "head",
        "flood",
        lead=b"HTTP/1.1 200 Connection established\r\n",
        data=b"X-Filler: " + b"x" * 1000 + b"\r\n",
    )
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url("http", server, credentials=False))
        await refused(adapter, smtp, ProxyProtocolError)
        await adapter.sessions_done(server)
        assert HEAD_LIMIT < proxy.flooded[0] < FLOOD_BOUND, proxy.flooded
        await delivers_through(adapter, smtp, proxy)


#: A refusal at each step: the proxy's answer, and the error with its code.
REFUSALS: list[tuple[Scheme, str, bytes, type[ProxyRefusedError], int]] = [
    ("socks5", "method", b"\x05\xff", ProxyAuthenticationError, 255),
    ("socks5", "status", b"\x01\x01", ProxyAuthenticationError, 1),
    ("socks5", "reply", socks5_reply(2), ProxyRefusedError, 2),
    ("socks5", "reply", socks5_reply(5), ProxyTargetUnreachableError, 5),
    (
        "http",
        "head",
        http_head(407, "Proxy Authentication Required"),
        ProxyAuthenticationError,
        407,
    ),
    ("http", "head", http_head(403, "Forbidden"), ProxyRefusedError, 403),
    ("http", "head", http_head(502, "Bad Gateway"), ProxyTargetUnreachableError, 502),
]


@all_adapters
@pytest.mark.parametrize("refusal", REFUSALS, ids=[f"{r[0]}-{r[4]}" for r in REFUSALS])
async def test_a_refusal_is_its_error(
    adapter: Adapter, refusal: tuple[Scheme, str, bytes, type[ProxyRefusedError], int]
) -> None:
    scheme, step, answer, expected, code = refusal
    proxy = HostileProxy(scheme, step, "send", data=answer, credentials=True)
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server))
        error = await refused(adapter, smtp, expected)
        assert error.code == code
        await adapter.wait_for(proxy.closed_by_client)
        await delivers_through(adapter, smtp, proxy)


@all_adapters
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_wrong_credentials_are_an_authentication_error(
    adapter: Adapter, scheme: Scheme
) -> None:
    proxy = ScriptedProxy(scheme, credentials=True)
    with ScriptedServer(proxy) as server:
        wrong = f"{scheme}://{USER}:not-{PASSWORD}@{server.host}:{server.port}"
        smtp = adapter.new(proxy=wrong)
        error = await refused(adapter, smtp, ProxyAuthenticationError)
        assert error.code == (1 if scheme == "socks5" else 407)
        assert PASSWORD not in error_texts(error)
    assert proxy.logins == [(USER, f"not-{PASSWORD}")]
    assert proxy.targets == ([] if scheme == "socks5" else [(TARGET, PORT)])


#: Credentials echoed back: name -> (scheme, step, answer).
ECHOES: dict[str, tuple[Scheme, str, bytes]] = {
    "socks5-as-status": ("socks5", "status", rfc1929_request(USER, PASSWORD)),
    "socks5-in-bound-name": (
        "socks5",
        "reply",
        socks5_reply(0, b"\x03\x0a" + PASSWORD.encode() + b"\xff"),
    ),
    "http-token-as-reason": ("http", "head", http_head(407, basic(USER, PASSWORD))),
    "http-password-in-reason": ("http", "head", http_head(403, f"who is {USER}:{PASSWORD}?")),
    "http-token-as-bad-field": (
        "http",
        "head",
        f"HTTP/1.1 200 OK\r\n{basic(USER, PASSWORD)}\r\n\r\n".encode(),
    ),
}


@all_adapters
@pytest.mark.parametrize("echo", list(ECHOES))
async def test_a_proxy_echoing_the_credentials_does_not_get_them_into_the_error(
    adapter: Adapter, echo: str
) -> None:
    scheme, step, answer = ECHOES[echo]
    proxy = HostileProxy(scheme, step, "send", data=answer, credentials=True)
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server))
        with pytest.raises(ProxyError) as info:
            await adapter.call(smtp.connect, TARGET, PORT)
        await closed(adapter, smtp)
        shown = error_texts(info.value)
        assert PASSWORD not in shown and basic(USER, PASSWORD)[6:] not in shown, shown
        await delivers_through(adapter, smtp, proxy)


# ---------------------------------------------------------------- what comes after the answer


@all_adapters
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_the_greeting_in_the_answers_write_is_the_greeting(
    adapter: Adapter, scheme: Scheme
) -> None:
    """The proxy's success and the server's greeting in one write: the greeting is read as
    such (the handshake took only its answer), and the session goes on."""
    proxy = ScriptedProxy(scheme, greeting_in_answer=True)
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server, credentials=False))
        assert await adapter.call(smtp.connect, TARGET, PORT) == (220, b"test.local ESMTP")
        assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], MESSAGE) == {}
        assert (await adapter.call(smtp.quit))[0] == 221
    assert proxy.coalesced == [success(scheme) + b"220 test.local ESMTP\r\n"]
    assert [(e.rcpt_tos, e.data) for e in proxy.mail.envelopes] == [([RECIPIENT], MESSAGE)]


@all_adapters
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("separately", [False, True], ids=["same-write", "dripped"])
async def test_bytes_before_an_implicit_tls_handshake_fail_it(
    adapter: Adapter, scheme: Scheme, separately: bool, tls_ca: LocalCA
) -> None:
    """``SMTP_SSL``: plaintext after the proxy's success, where the TLS handshake should
    start.  With the answer, the handshake sees it: ``ProxyProtocolError``; in writes of
    their own, it may reach TLS instead: ``ssl.SSLError``.  Never a session."""
    injected = success(scheme) + b"220 evil.example.test ESMTP\r\n"
    action: Action = "drip" if separately else "send"
    proxy = HostileProxy(
        scheme,
        LAST_STEP[scheme],
        action,
        data=injected,
        interval=0.01,
        tls_context=tls_ca.server_context(),
    )
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(
            "SMTP_SSL",
            proxy=proxy_url(scheme, server, credentials=False),
            context=tls_ca.client_context(),
        )
        with pytest.raises((ProxyProtocolError, ssl.SSLError)) as info:
            await adapter.call(smtp.connect, "localhost", 465)
        if not separately:
            assert type(info.value) is ProxyProtocolError
        await closed(adapter, smtp)
        await adapter.wait_for(proxy.closed_by_client)
        smtp.timeout = TIMEOUT
        assert await adapter.call(smtp.connect, "localhost", 465) == (220, b"test.local ESMTP")
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        assert (await adapter.call(smtp.quit))[0] == 221
    assert proxy.targets == [("localhost", 465)] * 2
    assert server.sessions[1].tls


# ---------------------------------------------------------------- out of reach; cancelled


@contextmanager
def serving_one(listener: socket.socket, handler: ScriptedProxy) -> Iterator[None]:
    """``listener`` (bound) listens and serves one connection with ``handler``, on a thread,
    as the scripted server's own sessions are (``Session``); the block must end it."""
    listener.listen(1)
    stop, (wake, waker) = threading.Event(), socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            handler(Session(connection, index=0, timeout=TIMEOUT, stop=stop, wake=wake))
            connection.close()
        except BaseException as exc:  # the test's failure, reported from its thread
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        waker.send(b"x")  # wakes a session waiting for its client
        thread.join(TIMEOUT)
        wake.close()
        waker.close()
    assert not thread.is_alive() and not errors, errors


@all_adapters
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_proxy_out_of_reach(adapter: Adapter, scheme: Scheme) -> None:
    """A closed port (bound, not listening: nothing else can take it meanwhile); once a
    proxy listens there, the same object connects through it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        smtp = adapter.new(proxy=f"{scheme}://127.0.0.1:{port}")
        error = await refused(adapter, smtp, ProxyUnreachableError)
        assert isinstance(error.__cause__, ConnectionRefusedError), repr(error.__cause__)
        assert f"127.0.0.1:{port}" in str(error)
        proxy = ScriptedProxy(scheme)
        with serving_one(listener, proxy):
            await delivers_through(adapter, smtp, proxy)


@all_adapters
async def test_an_unreachable_proxy_does_not_show_the_password(adapter: Adapter) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        smtp = adapter.new(proxy=f"socks5://{USER}:{PASSWORD}@127.0.0.1:{port}")
        error = await refused(adapter, smtp, ProxyUnreachableError)
    assert f"{USER}:****@127.0.0.1:{port}" in str(error) and PASSWORD not in error_texts(error)


@async_adapters
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_cancelled_during_the_handshake(adapter: Adapter, scheme: Scheme) -> None:
    """The proxy has the CONNECT request and says nothing; the caller cancels: the
    framework's cancellation, the connection closed (the proxy sees it), then reusable."""
    proxy = HostileProxy(scheme, LAST_STEP[scheme], "send", data=b"")
    with ScriptedServer(proxy) as server:
        smtp = adapter.new(proxy=proxy_url(scheme, server, credentials=False))

        async def connect() -> None:
            await smtp.connect(TARGET, PORT)

        if adapter.name == "asyncio":
            task = asyncio.create_task(connect())
            await adapter.wait_for(proxy.reached)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(connect)
                await adapter.wait_for(proxy.reached)
                nursery.cancel_scope.cancel()
            assert nursery.cancel_scope.cancelled_caught
        await closed(adapter, smtp)
        await adapter.wait_for(proxy.closed_by_client)
        await delivers_through(adapter, smtp, proxy)
