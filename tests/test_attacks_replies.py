"""Hostile replies, on every adapter: replies that never end, and AUTH challenges that never
end.  The client gives up with a typed error after a bounded amount of input, and is closed
(or, after a cancelled AUTH the server acknowledged, still usable).

A vulnerable client buffers a reply line or a multi-line reply without limit (memory grows
as long as the server sends), or answers 334 challenges for as long as they come.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smtp_proto import sasl
from smtp_proto.errors import (
    RemoteProtocolError,
    SMTPAuthenticationError,
    SMTPException,
    SMTPServerDisconnected,
)
from smtp_proto.replies import MAX_LINE_LENGTH, MAX_LINES_PER_REPLY, ReplyParser
from tests.adapters import Adapter, all_adapters
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.certs import LocalCA

CHUNK = 1 << 16


def kernel_buffers() -> int:
    """The most the kernel may buffer on one loopback TCP connection: the largest receive
    buffer (client side) plus the largest send buffer (server side) autotuning may reach."""
    try:
        rmem = Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()
        wmem = Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()
    except OSError:
        return 64 << 20
    return int(rmem[2]) + int(wmem[2])


#: What a flooding server may get into the connection before the client gives up: what the
#: reply parser holds at most, one read's worth, and the kernel's buffers.
FLOOD_BOUND = ReplyParser().max_buffer + CHUNK + kernel_buffers()
#: What the flooding server sends at most: what an unbounded client would take in.
FLOOD_LIMIT = 4 * FLOOD_BOUND

#: How long the idle flood's send may block before the server decides the client stopped
#: reading (a client reading everything never blocks it that long).
IDLE_SEND_TIMEOUT = 0.5

#: Replies that never end: (first bytes, then this repeated).
FLOODS: dict[str, tuple[str, bytes]] = {
    "endless-line": (" ", b"x" * CHUNK),
    "endless-continuation-lines": ("-", b"%(code)s-x\r\n" * (CHUNK // 6)),
    "huge-reply-of-long-lines": ("-", (b"%(code)s-" + b"y" * 8000 + b"\r\n") * 8),
}


def flooding(step: str, flood: str, written: list[int]) -> Callable[[Session], None]:
    """Floods ``flood`` instead of the greeting or the EHLO reply in the first session (the
    bytes it got out go to ``written``); later sessions behave."""
    healthy = StandardESMTP()
    code = "220" if step == "greeting" else "250"
    separator, chunk = FLOODS[flood]

    def handler(s: Session) -> None:
        if s.index > 0:
            healthy(s)
            return
        if step == "ehlo":
            s.reply("220 test.local ESMTP")
            s.expect("ehlo ")
        head = f"{code}{separator}".encode()
        written.append(len(head) + s.flood(head + chunk % {b"code": code.encode()}, FLOOD_LIMIT))

    return handler


@all_adapters
@pytest.mark.parametrize("flood", list(FLOODS))
@pytest.mark.parametrize("step", ["greeting", "ehlo"])
async def test_endless_reply_is_cut_off(adapter: Adapter, step: str, flood: str) -> None:
    written: list[int] = []
    with ScriptedServer(flooding(step, flood, written)) as server:
        smtp = adapter.new()
        with pytest.raises(RemoteProtocolError) as info:
            await adapter.call(smtp.connect, server.host, server.port)
            await adapter.call(smtp.ehlo)
        assert isinstance(info.value, SMTPServerDisconnected)
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.noop)
        await adapter.sessions_done(server)
        assert 0 < written[0] < FLOOD_BOUND, f"the server got {written[0]} bytes out"
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        await adapter.call(smtp.quit)


@all_adapters
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "implicit-tls"])
async def test_flood_while_no_command_waits_is_bounded(
    adapter: Adapter, tls: bool, tls_ca: LocalCA
) -> None:
    """A server that floods between commands, while the caller does something else: the
    client must not take it all in (an adapter reading ahead without flow control would
    buffer everything the server sends); the next command then fails on the garbage."""
    written: list[int] = []
    flooded = threading.Event()

    def handler(s: Session) -> None:
        if tls:
            s.start_tls(tls_ca.server_context())
        s.reply("220 test.local ESMTP")
        # Sends until the client stops reading: a send then blocks for the session timeout.
        written.append(s.flood(b"x" * CHUNK, FLOOD_LIMIT))
        flooded.set()

    with ScriptedServer(handler, timeout=IDLE_SEND_TIMEOUT) as server:
        if tls:
            smtp = await adapter.open_ssl(server.host, server.port, context=tls_ca.client_context())
        else:
            smtp = await adapter.open(server.host, server.port)
        await adapter.wait_for(flooded)
        assert written[0] < FLOOD_BOUND, f"the client took in {written[0]} bytes"
        with pytest.raises(RemoteProtocolError):
            await adapter.call(smtp.noop)
        assert not adapter.is_connected(smtp)


def test_floods_exceed_the_parser_limits() -> None:
    """The floods really exceed the parser's limits (else nothing would be cut off)."""
    assert len(FLOODS["endless-line"][1]) > MAX_LINE_LENGTH
    assert FLOOD_LIMIT // len(b"250-x\r\n") > MAX_LINES_PER_REPLY


# ---------------------------------------------------------------- endless AUTH challenges

#: Rounds a challenging server gives up after (a vulnerable client would reach it).
CHALLENGE_LIMIT = 1000
#: Lines the client sends after its AUTH line, ``*`` included: a mechanism that knows its
#: steps cancels at the first challenge too many; an authobject answers up to smtplib's five
#: challenges (the AUTH line's initial response counting as one), then cancels.
ANSWERS = {
    "auth-PLAIN": 1,
    "auth-LOGIN": 2,  # the password, then *
    "auth-CRAM-MD5": 2,
    "auth-XOAUTH2": 2,  # the empty answer to the error challenge, then *
    "auth-SCRAM-SHA-256": 2,  # client-final (proof), then *
    "auth-authobject": 5,
    "auth-authobject-no-initial": 6,
    "login-PLAIN": 1,
    "login-LOGIN": 2,
    "login-CRAM-MD5": 2,
}


Challenge = bytes | Callable[[bytes], bytes]


def scram_server_first(auth_line: bytes) -> bytes:
    """A well-formed SCRAM server-first-message extending the client's nonce, so the client
    goes one step further (its proof) before the loop shows."""
    client_first = base64.b64decode(auth_line.split()[2])
    nonce = client_first.split(b"r=", 1)[1]
    return b"r=" + nonce + b"server,s=c2FsdA==,i=4096"


class EndlessChallenges:
    """Answers every AUTH line with another 334: ``challenge``, or ``challenge(AUTH line)``.

    ``cancel_reply``: what it says to the client's ``*`` (None: yet another 334).
    ``responses`` counts the client's answers per session; later commands get NOOP/QUIT
    answers so a test can check the connection is still usable.
    """

    def __init__(self, mechanisms: str, challenge: Challenge, cancel_reply: str | None) -> None:
        self.mechanisms = mechanisms
        self.challenge = challenge
        self.cancel_reply = cancel_reply
        self.responses: list[int] = []
        self.cancelled: list[bool] = []

    def __call__(self, s: Session) -> None:
        s.reply("220 test.local ESMTP")
        s.expect("ehlo ")
        s.reply("250-test.local", f"250 AUTH {self.mechanisms}")
        auth = s.expect("auth ")
        challenge = self.challenge(auth) if callable(self.challenge) else self.challenge
        responses, cancelled = 0, False
        while responses < CHALLENGE_LIMIT:
            s.reply("334 " + base64.b64encode(challenge).decode("ascii"))
            line = s.read_line()
            if not line.endswith(b"\n"):
                break  # the client went away
            responses += 1
            if line == b"*\r\n":
                cancelled = True
                if self.cancel_reply is not None:
                    s.reply(self.cancel_reply)
                    break
        self.responses.append(responses)
        self.cancelled.append(cancelled)
        while (line := s.read_line()).endswith(b"\n"):
            if line.lower().startswith(b"quit"):
                s.reply("221 2.0.0 Bye")
                return
            s.reply("250 2.0.0 OK")


#: How the public API starts an AUTH exchange: (mechanism advertised, challenge, call).
AuthCall = Callable[[Any], tuple[Callable[..., Any], tuple[Any, ...]]]
AUTH_CALLS: dict[str, tuple[str, Challenge, AuthCall]] = {
    "auth-PLAIN": ("PLAIN", b"", lambda smtp: (smtp.auth, ("PLAIN", sasl.Plain("u", "p")))),
    "auth-LOGIN": (
        "LOGIN",
        b"Password:",
        lambda smtp: (smtp.auth, ("LOGIN", sasl.Login("u", "p"))),
    ),
    "auth-CRAM-MD5": (
        "CRAM-MD5",
        b"<1.2@test.local>",
        lambda smtp: (smtp.auth, ("CRAM-MD5", sasl.CramMD5("u", "p"))),
    ),
    "auth-XOAUTH2": (
        "XOAUTH2",
        b'{"status":"401","schemes":"bearer"}',
        lambda smtp: (smtp.auth, ("XOAUTH2", sasl.XOAuth2("u", "token"))),
    ),
    "auth-SCRAM-SHA-256": (
        "SCRAM-SHA-256",
        scram_server_first,
        lambda smtp: (smtp.auth, ("SCRAM-SHA-256", sasl.ScramSHA256("u", "p"))),
    ),
    "auth-authobject": ("XLOOP", b"more?", lambda smtp: (smtp.auth, ("XLOOP", lambda c=None: "x"))),
    "auth-authobject-no-initial": (
        "XLOOP",
        b"more?",
        lambda smtp: (smtp.auth, ("XLOOP", lambda c=None: "x")),
    ),
    "login-PLAIN": ("PLAIN", b"", lambda smtp: (smtp.login, ("u", "p"))),
    "login-LOGIN": ("LOGIN", b"Password:", lambda smtp: (smtp.login, ("u", "p"))),
    "login-CRAM-MD5": ("CRAM-MD5", b"<1.2@test.local>", lambda smtp: (smtp.login, ("u", "p"))),
}


@all_adapters
@pytest.mark.parametrize("label", list(AUTH_CALLS))
async def test_endless_auth_challenges_then_cancelled(adapter: Adapter, label: str) -> None:
    """The client answers a bounded number of 334s, then cancels (``*``); the server says
    501 as RFC 4954 requires, and the connection is still usable."""
    mechanism, challenge, start = AUTH_CALLS[label]
    behaviour = EndlessChallenges(mechanism, challenge, "501 5.7.0 Authentication cancelled")
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        method, args = start(smtp)
        kwargs = {"initial_response_ok": False} if label.endswith("no-initial") else {}
        with pytest.raises(SMTPException) as info:
            await adapter.call(method, *args, **kwargs)
        check_auth_error(label, info.value)
        assert adapter.is_connected(smtp)
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        await adapter.call(smtp.quit)
    assert behaviour.cancelled == [True]
    assert behaviour.responses == [ANSWERS[label]]


@all_adapters
@pytest.mark.parametrize("label", list(AUTH_CALLS))
async def test_endless_auth_challenges_even_after_cancel(adapter: Adapter, label: str) -> None:
    """The server answers ``*`` with yet another 334: the client stops there, raises, and
    closes the connection (it cannot know what the server will take the next line for)."""
    mechanism, challenge, start = AUTH_CALLS[label]
    behaviour = EndlessChallenges(mechanism, challenge, None)
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        method, args = start(smtp)
        kwargs = {"initial_response_ok": False} if label.endswith("no-initial") else {}
        with pytest.raises(SMTPException) as info:
            await adapter.call(method, *args, **kwargs)
        check_auth_error(label, info.value)
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.noop)
        await adapter.sessions_done(server)
    assert behaviour.cancelled == [True]
    assert behaviour.responses == [ANSWERS[label]]


def check_auth_error(label: str, error: BaseException) -> None:
    """A mechanism that knows its steps fails on the first unexpected challenge
    (``SMTPAuthenticationError``, the reply to the cancellation); an ``smtplib``-style
    authobject answers anything, so the challenge cap stops it (``SMTPException``, as in
    ``smtplib``)."""
    if "authobject" in label:
        assert type(error) is SMTPException, repr(error)
        assert "infinite loop" in str(error)
    else:
        assert isinstance(error, SMTPAuthenticationError), repr(error)
