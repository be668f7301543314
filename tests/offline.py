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
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from smtp_proto import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS, Client


@dataclass(frozen=True)
class C:
    """Bytes the client is expected to send."""

    data: bytes


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
        result: Any = None
        while True:
            try:
                request = operation.send(result)
            except StopIteration as done:
                return done.value
            result = self.answer(request)

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


class _PeerFile:
    """``sock.makefile('rb')`` for smtplib: ``readline`` pulls server steps on demand."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer
        self._buffer = b""
        self._eof = False

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self._buffer and not self._eof:
            data = self._peer.answer(RECEIVE)
            self._eof = not data
            self._buffer += data
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if limit >= 0:
            end = min(end, limit)
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def close(self) -> None:
        pass


class _PeerSocket:
    """The few socket methods smtplib uses after connecting."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer

    def sendall(self, data: bytes) -> None:
        self._peer.answer(bytes(data))

    def makefile(self, mode: str) -> _PeerFile:
        return _PeerFile(self._peer)

    def close(self) -> None:
        self._peer.answer(CLOSE)


def stdlib_smtp(peer: Peer, local_hostname: str = "client.example") -> smtplib.SMTP:
    """A real ``smtplib.SMTP``, already "connected" (greeting done) to ``peer``."""
    smtp = smtplib.SMTP(local_hostname=local_hostname)
    smtp.sock = _PeerSocket(peer)  # type: ignore[assignment]
    return smtp


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
