"""An in-memory scripted SMTP peer for driving clients without any socket.

A script is the conversation as a list of steps, in the order a lock-step client sees them:

* ``C(b"...")`` -- bytes the client must send.  A single write may cover several ``C`` steps
  and a ``C`` step may arrive in several writes: what is checked is the exact byte stream.
* ``S(b"...")`` -- bytes the server sends, handed over on the client's next read
  (``S(b"")`` is end-of-file).
* ``TLS`` -- the client must start TLS here (after everything before it, before anything after).

Causality is always enforced: the client may not read a server step before it has sent
every client step that comes before it in the script (a server does not answer commands it
has not received), and it may not send anything the script does not expect next.  In the
default *lock-step* mode the client may also not send a step before it has read every server
step before it; with ``pipelining=True`` it may send ahead (RFC 2920).

Two clients can be driven with the same script: ``Peer.run`` drives a ``smtp_proto.Client``
operation (a generator of I/O requests), and ``stdlib_smtp`` gives a real, never-connected
``smtplib.SMTP`` whose socket is the peer, so the stdlib's own behaviour validates a script.
``same_as_stdlib`` plays a script both ways and checks that the ``Client`` sends the same
bytes at the same moments and returns or raises the same thing.  Where the server
advertises PIPELINING the client may (and for ``sendmail`` must) send ahead.

Scripts and expectations are written with smtplib's spelling of MAIL and RCPT before Python
3.13, ``mail FROM:`` and ``rcpt TO:``; ``C`` steps (and ``smtplib_spelling`` for other
expectations) turn them into the running smtplib's (``mail from:``, ``rcpt to:`` from 3.13 on,
CPython gh-65495), learnt from smtplib itself, so that every script holds on every Python.

The script pieces of a two-recipient ``sendmail`` (``MAIL``, ``RCPT_A``, ... ``OK``) are
shared by the tests; ``ReactiveServer`` is a peer that answers whatever comes (each command
with a code it was given) instead of following a script, for differential tests.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, AnyStr

from smtp_proto import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS, Client


@dataclass(frozen=True)
class C:
    """Bytes the client is expected to send (MAIL and RCPT as the running smtplib spells them)."""

    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", smtplib_spelling(self.data))


@dataclass(frozen=True)
class S:
    """Bytes the server sends (``b""`` is EOF)."""

    data: bytes


class _Tls:
    def __repr__(self) -> str:
        return "TLS"


TLS = _Tls()
Step = C | S | _Tls


class ScriptError(AssertionError):
    """The client did something the script does not allow."""


def _drive(operation: Generator[Any, Any, Any], answer: Callable[[Any], Any]) -> Any:
    """Run ``operation`` to its end, each I/O request it yields answered by ``answer``."""
    result: Any = None
    while True:
        try:
            request = operation.send(result)
        except StopIteration as done:
            return done.value
        result = answer(request)


@dataclass
class Peer:
    """Plays one script; records everything the client did."""

    script: list[Step]
    pipelining: bool = False
    hostname: str = "client.example"
    #: Each bytes object the client wrote, in order (a pipelined group is one write).
    writes: list[bytes] = field(default_factory=list)
    #: ("C", bytes) / ("S", bytes) / ("TLS", b"") / ("CLOSE", b"") in the order they happened.
    transcript: list[tuple[str, bytes]] = field(default_factory=list)
    closed: bool = False
    _client: int = 0  # index of the next C/TLS step
    _server: int = 0  # index of the next S step
    _partial: int = 0  # bytes of the C step at _client already matched

    def __post_init__(self) -> None:
        self._client = self._advance(0, (C, _Tls))
        self._server = self._advance(0, (S,))

    # -------------------------------------------------------------- bookkeeping

    def _advance(self, index: int, kinds: tuple[type, ...]) -> int:
        while index < len(self.script) and not isinstance(self.script[index], kinds):
            index += 1
        return index

    def _step(self, index: int) -> Step | None:
        return self.script[index] if index < len(self.script) else None

    def _where(self) -> str:
        return (
            f"(next client step {self._client}: {self._step(self._client)!r}, "
            f"next server step {self._server}: {self._step(self._server)!r})"
        )

    def _client_step_done(self) -> None:
        self._partial = 0
        self._client = self._advance(self._client + 1, (C, _Tls))

    def _may_take_client_step(self) -> None:
        if not self.pipelining and self._server < self._client:
            raise ScriptError(
                f"client sends before reading the server's reply (no pipelining) {self._where()}"
            )

    def _receive_client_bytes(self, data: bytes) -> None:
        while data:
            step = self._step(self._client)
            if not isinstance(step, C):
                raise ScriptError(f"client sent {data!r} unexpectedly {self._where()}")
            if self._partial == 0:
                self._may_take_client_step()
            expected = step.data[self._partial :]
            take = min(len(expected), len(data))
            if data[:take] != expected[:take]:
                raise ScriptError(
                    f"client sent {data!r}, script expects {expected!r} {self._where()}"
                )
            data = data[take:]
            self._partial += take
            if self._partial == len(step.data):
                self._client_step_done()

    def _server_bytes(self) -> bytes:
        step = self._step(self._server)
        if not isinstance(step, S):
            raise ScriptError(f"client waits for data the server never sends {self._where()}")
        if self._client < self._server:
            raise ScriptError(
                f"client reads a reply to something it has not sent yet {self._where()}"
            )
        self._server = self._advance(self._server + 1, (S,))
        self.transcript.append(("S", step.data))
        return step.data

    # -------------------------------------------------------------- the I/O requests

    def answer(self, request: Any) -> Any:
        """Perform one I/O request of a ``smtp_proto.Client`` operation."""
        if isinstance(request, bytes | bytearray | memoryview):
            data = bytes(request)
            self.writes.append(data)
            self.transcript.append(("C", data))
            self._receive_client_bytes(data)
            return None
        if request is RECEIVE:
            return self._server_bytes()
        if request is START_TLS:
            if self._step(self._client) is not TLS or self._server < self._client:
                raise ScriptError(f"client starts TLS out of turn {self._where()}")
            self._client_step_done()
            self.transcript.append(("TLS", b""))
            return None
        if request is CLOSE:
            self.closed = True
            self.transcript.append(("CLOSE", b""))
            return None
        if request is LOCAL_HOSTNAME:
            return self.hostname
        raise ScriptError(f"unknown I/O request {request!r}")

    def run(self, operation: Generator[Any, Any, Any]) -> Any:
        """Drive one operation to its end: return its value or raise its exception."""
        return _drive(operation, self.answer)

    @property
    def finished(self) -> bool:
        """Whether every step was played."""
        return self._client >= len(self.script) and self._server >= len(self.script)

    def expect_finished(self) -> None:
        """Fail unless every step of the script was played."""
        if not self.finished:
            raise ScriptError(f"script not played to the end {self._where()}")

    @property
    def client_bytes(self) -> bytes:
        """Everything the client wrote, concatenated."""
        return b"".join(self.writes)


# ------------------------------------------------------------------ the stdlib on a peer


class _PulledFile:
    """``sock.makefile('rb')`` for smtplib: ``readline`` pulls the server's bytes on demand."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._read = read
        self._buffer = b""
        self._eof = False

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self._buffer and not self._eof:
            data = self._read()
            self._eof = not data
            self._buffer += data
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if limit >= 0:
            end = min(end, limit)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def close(self) -> None:
        pass


class _CallbackSocket:
    """The few socket methods smtplib uses after connecting, each a call to the peer."""

    def __init__(
        self,
        send: Callable[[bytes], object],
        read: Callable[[], bytes],
        close: Callable[[], object],
    ) -> None:
        self._send = send
        self._read = read
        self._close = close

    def sendall(self, data: bytes) -> None:
        self._send(bytes(data))

    def makefile(self, mode: str) -> _PulledFile:
        return _PulledFile(self._read)

    def close(self) -> None:
        self._close()


def _stdlib_on(sock: _CallbackSocket, local_hostname: str) -> smtplib.SMTP:
    """A real ``smtplib.SMTP``, already "connected" (greeting done) through ``sock``."""
    smtp = smtplib.SMTP(local_hostname=local_hostname)
    smtp.sock = sock  # type: ignore[assignment]
    return smtp


def stdlib_smtp(peer: Peer, local_hostname: str = "client.example") -> smtplib.SMTP:
    """A real ``smtplib.SMTP``, already "connected" (greeting done) to ``peer``."""
    sock = _CallbackSocket(peer.answer, lambda: peer.answer(RECEIVE), lambda: peer.answer(CLOSE))
    return _stdlib_on(sock, local_hostname)


# ------------------------------------------------------------------ smtplib's spelling


def _smtplib_keywords() -> tuple[bytes, bytes]:
    """How the running smtplib starts MAIL and RCPT lines, seen by letting it send them."""
    sent: list[bytes] = []
    sock = _CallbackSocket(sent.append, lambda: b"250 ok\r\n", lambda: None)
    smtp = _stdlib_on(sock, "client.example")
    smtp.mail("s@example.org")
    smtp.rcpt("r@example.org")
    mail, rcpt = (line.partition(b"<")[0] for line in sent)
    return mail, rcpt


#: The running smtplib's MAIL and RCPT keywords: ``mail FROM:`` and ``rcpt TO:`` before
#: Python 3.13, ``mail from:`` and ``rcpt to:`` since.
MAIL_FROM, RCPT_TO = _smtplib_keywords()


def smtplib_spelling(text: AnyStr) -> AnyStr:
    """``text`` with each ``mail FROM:`` and ``rcpt TO:`` spelled as the running smtplib does."""
    if isinstance(text, bytes):
        return text.replace(b"mail FROM:", MAIL_FROM).replace(b"rcpt TO:", RCPT_TO)
    mail, rcpt = MAIL_FROM.decode(), RCPT_TO.decode()
    return text.replace("mail FROM:", mail).replace("rcpt TO:", rcpt)


# ------------------------------------------------------------------ outcomes


@dataclass(frozen=True)
class Outcome:
    """What an operation did: its return value, or its exception's class name and args."""

    value: Any = None
    error: str | None = None
    args: tuple[Any, ...] = ()


def outcome(action: Callable[[], Any]) -> Outcome:
    """Run ``action``; ``ScriptError`` (a broken script) propagates, other errors are recorded."""
    try:
        return Outcome(value=action())
    except ScriptError:
        raise
    except Exception as exc:
        return Outcome(error=type(exc).__name__, args=exc.args)


#: The client name, banner and EHLO line of the conversations of ``connected()`` clients.
HOST = "client.example"
GREETING = b"220 server.example ESMTP ready\r\n"
EHLO_LINE = C(b"ehlo client.example\r\n")


def connected(lmtp: bool = False, local_hostname: str | None = HOST) -> Client:
    """A ``Client`` that has connected and read a 220 greeting."""
    client = Client(local_hostname, lmtp=lmtp)
    peer = Peer([S(GREETING)])
    client.connecting("server.example", 25)
    assert peer.run(client.greeting()) == (220, b"server.example ESMTP ready")
    peer.expect_finished()
    return client


# ------------------------------------------------------------------ playing a script

Action = Callable[[Any], Any]


def play(
    client: Client, script: list[Step], action: Action, *, pipelining: bool = False
) -> tuple[Outcome, Peer]:
    """Run ``action(client)`` (an operation) against ``script``; the script must be used up."""
    peer = Peer(list(script), pipelining=pipelining)
    result = outcome(lambda: peer.run(action(client)))
    peer.expect_finished()
    return result, peer


def stdlib_play(script: list[Step], action: Action) -> tuple[Outcome, Peer]:
    """Run ``action(smtp)`` on a real ``smtplib.SMTP`` against ``script``."""
    peer = Peer(list(script))
    smtp = stdlib_smtp(peer)
    result = outcome(lambda: action(smtp))
    peer.expect_finished()
    return result, peer


def same_as_stdlib(script: list[Step], action: Action, client: Client | None = None) -> Outcome:
    """Play ``script`` with smtplib and with ``Client``: same bytes, same result, same closing."""
    expected, stdlib_peer = stdlib_play(script, action)
    got, peer = play(client or connected(), script, action)
    assert got == expected
    assert peer.client_bytes == stdlib_peer.client_bytes
    # smtplib leaves the socket open after some 421 replies; the core closes on every 421.
    assert peer.closed or not stdlib_peer.closed
    if not any(isinstance(step, S) and step.data.startswith(b"421") for step in script):
        assert peer.closed == stdlib_peer.closed
    return got


def sending(*args: Any) -> Action:
    """An action calling ``sendmail(*args)`` (on smtplib or on the client)."""
    return lambda s: s.sendmail(*args)


def lines(*texts: str) -> list[Step]:
    return [C(text.encode() + b"\r\n") for text in texts]


def chain(*operations: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Run several operations as one; the last one's value is the result."""
    value = None
    for operation in operations:
        value = yield from operation
    return value


# ------------------------------------------------------------------ script pieces

EHLO_SIMPLE = S(b"250-server.example\r\n250-8BITMIME\r\n250 HELP\r\n")
EHLO_PIPELINING = S(b"250-server.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
MAIL = C(b"mail FROM:<s@example.org>\r\n")
RCPT_A = C(b"rcpt TO:<a@example.org>\r\n")
RCPT_B = C(b"rcpt TO:<b@example.org>\r\n")
DATA = C(b"data\r\n")
RSET = C(b"rset\r\n")
BODY = C(b"Subject: test\r\n\r\n..leading dot\r\n.\r\n")
OK = S(b"250 2.0.0 ok\r\n")
GO = S(b"354 go ahead\r\n")
MESSAGE = b"Subject: test\r\n\r\n.leading dot\r\n"


def sendmail(s: Any) -> Any:
    return s.sendmail("s@example.org", ["a@example.org", "b@example.org"], MESSAGE)


# ------------------------------------------------------------------ a reactive peer


class ReactiveServer:
    """A small, well-behaved SMTP server answering each command line with a scripted code.

    It never pipelines anything itself; it answers lines as they arrive, so a client that
    pipelines gets every reply it asked for.  After a 421 (or the reply to QUIT) it closes.
    """

    def __init__(
        self, features: list[str], mail: int, rcpts: list[int], data: int, body: int
    ) -> None:
        self.features = features
        self.codes = {"mail": mail, "data": data, "body": body}
        self.rcpt_codes = list(rcpts)
        self.pipelining = "PIPELINING" in features
        self.inbox = b""
        self.outbox: list[bytes] = []
        self.closed = False
        self.in_body = False
        self.mail_ok = False
        self.accepted = 0
        self.rcpts_seen = 0
        self.lockstep_violations = 0

    def _reply(self, code: int, text: str) -> None:
        if self.closed:
            return
        self.outbox.append(f"{code} {text}\r\n".encode())
        if code == 421 or text == "bye":
            self.closed = True

    def _reset(self) -> None:
        self.mail_ok = False
        self.accepted = 0

    def receive(self, data: bytes) -> None:
        if self.outbox and not self.pipelining and not self.in_body:
            self.lockstep_violations += 1
        self.inbox += data
        while not self.closed:
            if self.in_body:
                if self.inbox.startswith(b".\r\n"):
                    end = 0
                else:
                    end = self.inbox.find(b"\r\n.\r\n")
                    if end < 0:
                        return
                    end += 2
                self.inbox = self.inbox[end + 3 :]
                self.in_body = False
                self._reset()
                self._reply(self.codes["body"], "reply to the body")
                continue
            end = self.inbox.find(b"\r\n")
            if end < 0:
                return
            line, self.inbox = self.inbox[:end].decode(), self.inbox[end + 2 :]
            self._command(line.split(" ", 1)[0].lower())

    def _command(self, verb: str) -> None:
        if verb in ("ehlo", "helo"):
            self._reset()
            lines = ["server.example", *self.features]
            text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}"
            self.outbox.append(text.encode() + b"\r\n")
        elif verb == "mail":
            code = self.codes["mail"]
            self.mail_ok = code == 250
            self._reply(code, "reply to MAIL")
        elif verb == "rcpt":
            if not self.mail_ok:
                self._reply(503, "5.5.1 need MAIL first")
                return
            code = self.rcpt_codes[self.rcpts_seen]
            self.rcpts_seen += 1
            self.accepted += code in (250, 251)
            self._reply(code, f"reply to RCPT {self.rcpts_seen}")
        elif verb == "data":
            if not self.mail_ok:
                self._reply(503, "5.5.1 need MAIL first")
            elif not self.accepted:
                self._reply(554, "5.5.1 no valid recipients")
            else:
                code = self.codes["data"]
                self.in_body = code == 354
                self._reply(code, "reply to DATA")
        elif verb == "rset":
            self._reset()
            self._reply(250, "reset")
        elif verb == "quit":
            self._reply(221, "bye")
        else:
            self._reply(500, "unknown")

    def read(self) -> bytes:
        if self.outbox:
            data = b"".join(self.outbox)
            self.outbox.clear()
            return data
        if self.closed:
            return b""
        raise AssertionError("the client waits for a reply to nothing: deadlock")


def run_client_against(server: ReactiveServer, action: Action) -> tuple[Outcome, bytes]:
    """Run ``action(client)`` (an operation) against ``server``; the outcome and every byte
    the client sent."""
    client = connected()
    sent: list[bytes] = []

    def answer(request: Any) -> Any:
        if isinstance(request, bytes | memoryview):
            sent.append(bytes(request))
            server.receive(bytes(request))
            return None
        return server.read() if request is RECEIVE else None

    return outcome(lambda: _drive(action(client), answer)), b"".join(sent)


def run_stdlib_against(server: ReactiveServer, action: Action) -> tuple[Outcome, bytes]:
    """Run ``action(smtp)`` on a real ``smtplib.SMTP`` talking to ``server``; the outcome and
    every byte it sent."""
    sent: list[bytes] = []

    def send(data: bytes) -> None:
        sent.append(data)
        server.receive(data)

    smtp = _stdlib_on(_CallbackSocket(send, server.read, lambda: None), HOST)
    return outcome(lambda: action(smtp)), b"".join(sent)
