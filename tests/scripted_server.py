"""A small scriptable SMTP server for the test suite, built on the shipped capture server.

The project's clients (blocking, asyncio, trio) are tested against real sockets, so the
server side has to be exact (byte-for-byte transcripts) and able to misbehave on purpose
(fault injection) while never hanging a test: every read is bounded by a timeout and
everything is torn down (listener, connections, threads) when the context exits.

Two layers, both on ``smtp_proto.transports.testing``'s parts (listening, threads, reads,
TLS and the ways to end a connection are its `_Listener` and `_Wire`):

* `ScriptedServer` + `Session`: a test supplies a handler, called on its own thread with
  one `Session` per accepted connection, and scripts the conversation with `reply`,
  `expect`, `read_*`, `close`, `reset`, `stall`, ...  A handler's error fails the test.
* `StandardESMTP`: a ready-made handler, the capture server's own dialogue (its `_Session`)
  with the reply texts these tests were written against, fault injection at named steps,
  and the hostile behaviours of the attack tests.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NoReturn

from smtp_proto.transports.testing.auth import _MECHANISMS
from smtp_proto.transports.testing.listener import _Listener
from smtp_proto.transports.testing.reply import Fault, Reply
from smtp_proto.transports.testing.service import _Service
from smtp_proto.transports.testing.session import _Session
from smtp_proto.transports.testing.wire import _Disconnect, _Stopped, _Wire

__all__ = [
    "Envelope",
    "FAULT_ACTIONS",
    "FAULT_STEPS",
    "LENIENT_DATA_ENDS",
    "Handler",
    "MAX_BLOCK",
    "MAX_LINE",
    "ScriptedServer",
    "Session",
    "StandardESMTP",
    "UnexpectedEOF",
]

Handler = Callable[["Session"], None]

MAX_LINE = 64 * 1024
"""Longest line `Session.read_line` accepts by default (including the line ending)."""
MAX_BLOCK = 64 * 1024 * 1024
"""Largest amount `read_until` / `read_exact` / `read_until_eof` will buffer."""

_TAIL = 1000  # bytes of transcript attached to a handler's error


class UnexpectedEOF(AssertionError):
    """The client closed the connection before the data a handler asked for arrived."""


def _tail(data: bytes | bytearray) -> bytes:
    return bytes(data[-_TAIL:])


class Session(_Wire):
    """One accepted connection, driven by the server's handler on a dedicated thread.

    All reads go through the connection's buffer so that pipelined input is consumed
    exactly as the handler asks for it; `received` and `sent` keep the raw transcript
    (after TLS decryption) for exact assertions.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        index: int,
        timeout: float,
        stop: threading.Event,
        wake: socket.socket,
    ) -> None:
        super().__init__(sock, stop=stop, wake=wake, timeout=timeout)
        self.index = index
        self.received = bytearray()
        self.sent = bytearray()

    def __repr__(self) -> str:
        return f"<Session #{self.index} closed={self.closed} tls={self.tls}>"

    def _arrived(self, data: bytes) -> None:
        super()._arrived(data)
        self.received += data

    def _fill(self, deadline: float | None) -> bool:
        try:
            return super()._fill(deadline)
        except TimeoutError as exc:
            raise TimeoutError(
                f"session #{self.index}: {exc}; last bytes received: {_tail(self.received)!r}"
            ) from None

    # -- writing -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes (one sendall), bounded by the session timeout."""
        super().send(data)
        self.sent += data

    def reply(self, *lines: str) -> None:
        """Send reply lines, each terminated by CRLF, in one sendall.

        ``reply("250-a", "250 b")`` sends ``b"250-a\\r\\n250 b\\r\\n"``; use `send` for
        deliberately malformed output.
        """
        if not lines:
            raise ValueError("reply() needs at least one line")
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"reply line must not contain CR or LF: {line!r}")
        self.send(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))

    def flood(self, data: bytes, limit: int) -> int:
        """Send ``data`` over and over until ``limit`` bytes went out or the client is gone.

        Returns how many bytes the kernel accepted (a whole ``data`` at a time; not recorded
        in `sent`): a bound on how much a client read before it gave up and closed.  A client
        that stops reading without closing ends it with the session timeout.
        """
        total = 0
        try:
            while total < limit:
                self.sock.sendall(data)
                total += len(data)
        except OSError:
            pass  # the client closed: that is the end of the flood
        return total

    # -- reading -------------------------------------------------------------------------

    def read_line(self, limit: int = MAX_LINE) -> bytes:
        """Read one line up to and including b"\\n"; b"" at EOF.

        A partial line cut off by EOF is returned as is (without the newline).  Lines
        longer than `limit` raise AssertionError rather than growing without bound.
        """
        line = self.readline(limit + 1)
        if len(line) > limit:
            raise AssertionError(
                f"session #{self.index}: line longer than {limit} bytes: {line[:80]!r}..."
            )
        return line

    def expect(self, prefix: str) -> bytes:
        """Read a line and assert it starts with `prefix` (case-insensitive); return it."""
        line = self.read_line()
        if not line.upper().startswith(prefix.encode("utf-8").upper()):
            at_eof = " (EOF)" if not line.endswith(b"\n") else ""
            raise AssertionError(
                f"session #{self.index}: expected a line starting with {prefix!r}, "
                f"got {line!r}{at_eof}"
            )
        return line

    def read_until(self, terminator: bytes, limit: int = MAX_BLOCK) -> bytes:
        """Read up to and including `terminator` (e.g. b"\\r\\n.\\r\\n"), at most `limit` bytes.

        Raises `UnexpectedEOF` if the client closes first.
        """
        if not terminator:
            raise ValueError("terminator must not be empty")
        deadline = self._deadline()
        start = 0
        while True:
            found = self.buffer.find(terminator, start)
            if found >= 0 and found + len(terminator) <= limit:
                return self._take(found + len(terminator))
            if found >= 0 or len(self.buffer) >= limit:
                raise AssertionError(
                    f"session #{self.index}: no {terminator!r} within {limit} bytes"
                )
            start = max(0, len(self.buffer) - len(terminator) + 1)
            if not self._fill(deadline):
                raise UnexpectedEOF(
                    f"session #{self.index}: EOF before {terminator!r}; "
                    f"buffered: {_tail(self.buffer)!r}"
                )

    def read_exact(self, n: int) -> bytes:
        """Read exactly `n` bytes (a BDAT chunk); raises `UnexpectedEOF` if the client closes."""
        if not 0 <= n <= MAX_BLOCK:
            raise ValueError(f"read_exact size must be within 0..{MAX_BLOCK}, got {n}")
        data = bytearray()
        try:
            self.read_into(n, data)
        except _Disconnect:
            raise UnexpectedEOF(
                f"session #{self.index}: EOF after {len(data)} of {n} bytes"
            ) from None
        return bytes(data)

    def read_until_any(
        self, terminators: Sequence[bytes], *, prefix: bytes = b"", limit: int = MAX_BLOCK
    ) -> tuple[bytes, bytes]:
        """Read up to and including the earliest of several terminators.

        Returns the bytes read and the terminator found.  The search runs over ``prefix`` +
        the input, so with ``prefix=b"\\r\\n"`` a terminator starting with a line end also
        matches at the very start of the input (only its part in the input is read).  Of two
        terminators starting at the same place the longer wins.  Raises `UnexpectedEOF` if
        the client closes first.
        """
        if not terminators or not all(terminators):
            raise ValueError("terminators must be non-empty")
        deadline = self._deadline()
        while True:
            view = prefix + bytes(self.buffer)
            found = [(view.find(t), -len(t), t) for t in terminators]
            hits = sorted(hit for hit in found if hit[0] >= 0)
            if hits:
                start, _, terminator = hits[0]
                return self._take(start + len(terminator) - len(prefix)), terminator
            if len(self.buffer) >= limit:
                raise AssertionError(f"session #{self.index}: no terminator within {limit} bytes")
            if not self._fill(deadline):
                raise UnexpectedEOF(
                    f"session #{self.index}: EOF before any of {list(terminators)!r}; "
                    f"buffered: {_tail(self.buffer)!r}"
                )

    def read_until_eof(self) -> bytes:
        """Read everything the client sends until it closes its side (at most `MAX_BLOCK`)."""
        deadline = self._deadline()
        while self._fill(deadline):
            if len(self.buffer) > MAX_BLOCK:
                raise AssertionError(f"session #{self.index}: more than {MAX_BLOCK} bytes")
        return self._take(len(self.buffer))

    # -- connection control --------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the connection server-side and run the handshake (bounded by the timeout).

        Call after sending the "220" that answers STARTTLS.  Plaintext the client sent after
        the STARTTLS line is a protocol violation (command injection), so it fails loudly.
        """
        if self.tls:
            raise RuntimeError(f"session #{self.index}: TLS is already active")
        if self.buffer:
            raise AssertionError(
                f"session #{self.index}: client sent {bytes(self.buffer)!r} after the STARTTLS "
                "command, before the TLS handshake"
            )
        super().start_tls(context)

    def _describe(self) -> str:
        return (
            f"session #{self.index} transcript tail: received {_tail(self.received)!r}; "
            f"sent {_tail(self.sent)!r}"
        )


class ScriptedServer(_Listener):
    """A listening SMTP test server on 127.0.0.1 (or a Unix socket) running `handler`.

    Started on ``__enter__``; ``__exit__`` stops it (releasing stalls, unblocking reads,
    joining threads) and re-raises the first handler error as AssertionError unless the
    test body itself raised, so a failed `Session.expect` fails the test.

    ``nodelay`` sets TCP_NODELAY on accepted TCP connections: replies written one after the
    other (answers to pipelined commands) then go out at once instead of waiting for the
    client's delayed ACK (some 40 ms each), which makes tests sending many messages faster.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        unix_path: str | None = None,
        timeout: float = 10.0,
        nodelay: bool = False,
    ) -> None:
        super().__init__(
            port=0, unix_path=unix_path, nodelay=nodelay, timeout=timeout, name="scripted-smtp"
        )
        self.handler = handler
        self.host = "127.0.0.1"

    @property
    def sessions(self) -> list[Session]:
        """The accepted connections, in accept order."""
        return self._wires  # type: ignore[return-value]  # _connection makes Sessions

    @property
    def errors(self) -> list[BaseException]:
        """What the handlers (and the accepting thread) raised."""
        return self._errors

    def __repr__(self) -> str:
        where = self.unix_path if self.unix_path is not None else f"{self.host}:{self.port}"
        return f"<ScriptedServer {where} sessions={len(self.sessions)}>"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        if exc_type is None and self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise AssertionError(
                f"scripted SMTP handler failed{more}: {type(first).__name__}: {first}"
            ) from first

    def wait_sessions_done(self, timeout: float = 10.0) -> None:
        """Wait until every connection made so far has been accepted and its handler returned.

        Raises TimeoutError if that takes longer than `timeout`.
        """
        self._wait_idle(timeout)

    def _connection(self, sock: socket.socket, index: int) -> Session:
        assert self._wake_r is not None and self.timeout is not None
        return Session(sock, index=index, timeout=self.timeout, stop=self._stop, wake=self._wake_r)

    def _serve(self, wire: _Wire) -> None:
        assert isinstance(wire, Session)
        try:
            self.handler(wire)
        except _Stopped:
            raise
        except BaseException as exc:
            if not wire._forced:
                exc.add_note(wire._describe())
                self._errors.append(exc)


# -- ready-made ESMTP / LMTP behaviour ----------------------------------------------------

#: The fault steps of `StandardESMTP`, and the capture server's steps each stands for.
_STEPS: dict[str, tuple[str, ...]] = {
    "greeting": ("connect",),
    "ehlo": ("EHLO", "HELO", "LHLO"),
    "mail": ("MAIL",),
    "rcpt": ("RCPT",),
    "data": ("DATA", "BDAT"),
    "body": ("message",),
    "after-data": ("captured",),
    "quit": ("QUIT",),
    "auth": ("AUTH",),
    "starttls": ("STARTTLS",),
}
FAULT_STEPS = frozenset(_STEPS)
"""Where `StandardESMTP(fail_at=...)` can inject a fault.

greeting: instead of the greeting.  ehlo/mail/rcpt/quit/auth/starttls: on receipt of that
command (EHLO, HELO and LHLO count as "ehlo"), instead of answering it.  data: on DATA
(instead of 354) or on the first BDAT (before its chunk is read).  body: DATA - right after
the 354, before reading the message; BDAT - after the first chunk was read, instead of its
reply.  after-data: once the whole message was received (it IS recorded in `envelopes`),
instead of the final reply.
"""
FAULT_ACTIONS = frozenset({"fin", "rst", "421", "stall"})
"""fin: orderly close; rst: abortive close; 421: send a 421 reply then close; stall: go
silent until the server stops."""

LENIENT_DATA_ENDS: tuple[bytes, ...] = (
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\r\n.\n",
    b"\n.\r\n",
    b"\r.\n",
)
"""The end-of-data sequences some server accepts besides CRLF.CRLF (SMTP smuggling)."""

DEFAULT_FEATURES: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 1000000")

#: The replies the tests were written against, where they differ from the capture server's.
_TEXTS: dict[str, Reply] = {
    "unknown": (500, "5.5.2 Command not recognized"),
    "nested-mail": (503, "5.5.1 Bad sequence of commands: nested MAIL"),
    "mail-ok": (250, "2.1.0 Sender OK"),
    "rcpt-ok": (250, "2.1.5 Recipient OK"),
    "queued": (250, "2.0.0 Message accepted for delivery"),
    "delivered": (250, "2.1.5 <{recipient}> delivered"),
    "ok": (250, "2.0.0 OK"),
}


@dataclass
class Envelope:
    """One received message; addresses are without angle brackets ("" for the null path)."""

    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    rcpt_options: list[list[str]]
    data: bytes
    via: Literal["DATA", "BDAT"]


class StandardESMTP:
    """A handler behaving like a compliant ESMTP (or LMTP) server, with fault injection.

    One instance may serve several sessions; it records every complete command line
    (without its CRLF) in `commands` and every received message in `envelopes`.
    """

    def __init__(
        self,
        *,
        greeting: str = "220 test.local ESMTP",
        features: Sequence[str] = DEFAULT_FEATURES,
        auth: Mapping[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        lmtp: bool = False,
        reject: Callable[[str], tuple[int, str] | None] | None = None,
        data_replies: Callable[[list[str]], list[str]] | None = None,
        chunking: bool = False,
        fail_at: Mapping[str, str] | None = None,
        hostname: str = "test.local",
        tls_features: Sequence[str] | None = None,
        starttls_injection: bytes = b"",
        starttls_injection_separately: bool = False,
        lenient_data_end: bool = False,
        fail_at_rcpt: int = 1,
    ) -> None:
        """Configure the behaviour.

        auth: user -> password, enables AUTH PLAIN/LOGIN/CRAM-MD5.  tls_context: a server
        context, enables STARTTLS.  reject(address) -> (code, text) refuses a RCPT.
        data_replies(accepted_rcpts) -> reply lines after the message: with lmtp, one line
        per recipient; otherwise the lines of the single final reply.  fail_at maps a step
        in `FAULT_STEPS` to an action in `FAULT_ACTIONS`.  greeting: the whole greeting
        line; one that is not a 220 refuses service (only QUIT is answered).

        Hostile behaviours, for the attack tests: tls_features, when given, is the EHLO
        reply's whole list of keywords once TLS is active (nothing added).
        starttls_injection is plaintext sent right after the 220 to STARTTLS (in the same
        write, or in a write of its own with starttls_injection_separately), as a man in
        the middle would inject it; the TLS handshake is attempted all the same.
        lenient_data_end ends DATA at the first `LENIENT_DATA_ENDS` sequence and reads what
        follows as commands, as servers open to SMTP smuggling do.  fail_at_rcpt: which RCPT
        of a transaction (1 = the first) a "rcpt" fault fires on.
        """
        faults: dict[str, Fault] = {}
        closing = (421, f"4.3.2 {hostname} Service not available, closing")
        actions: dict[str, Fault] = {"fin": "close", "rst": "reset", "stall": "stall"}
        for step, action in (fail_at or {}).items():
            if step not in FAULT_STEPS:
                raise ValueError(f"unknown fault step {step!r}; expected one of {FAULT_STEPS}")
            if action not in FAULT_ACTIONS:
                raise ValueError(f"unknown fault action {action!r}; expected {FAULT_ACTIONS}")
            faults.update(dict.fromkeys(_STEPS[step], actions.get(action, closing)))
        code, _, text = greeting.partition(" ")
        texts = dict(_TEXTS)
        if code == "220":
            texts["greeting"] = (220, text)
        else:
            faults.setdefault("connect", (int(code), text))
        extensions = list(features)
        if chunking and "CHUNKING" not in {k.split()[0].upper() for k in extensions if k.strip()}:
            extensions.append("CHUNKING")
        self.service = _Service(
            lmtp=lmtp,
            hostname=hostname,
            extensions=extensions,
            tls_context=tls_context,
            credentials=auth,
            auth_mechanisms=list(_MECHANISMS),
            refuse=reject,
            fail=faults,
            texts=texts,
        )
        self.data_replies = data_replies
        self.tls_features = None if tls_features is None else list(tls_features)
        self.starttls_injection = starttls_injection
        self.starttls_injection_separately = starttls_injection_separately
        self.lenient_data_end = lenient_data_end
        self.fail_at_rcpt = fail_at_rcpt
        self.tls_errors: list[BaseException] = []  # failed STARTTLS handshakes (not errors)

    def __call__(self, session: Session) -> None:
        with contextlib.suppress(_Disconnect, UnexpectedEOF, ConnectionError):
            _StandardSession(self, session).run()

    @property
    def envelopes(self) -> list[Envelope]:
        """The messages received, oldest first."""
        return [
            Envelope(
                mail_from=message.mail_from,
                mail_options=list(message.mail_options),
                rcpt_tos=list(message.rcpt_tos),
                rcpt_options=[list(options) for options in message.rcpt_options],
                data=message.data,
                via="BDAT" if message.chunked else "DATA",
            )
            for message in self.service.messages
        ]

    @property
    def commands(self) -> list[bytes]:
        """Every complete command line received, without its CRLF, as sent."""
        return [line.encode("utf-8", "surrogateescape") for line in self.service.commands]

    @property
    def authenticated(self) -> list[str]:
        """The user names that logged in successfully."""
        return self.service.logins


class _StandardSession(_Session):
    """The capture server's dialogue, with `StandardESMTP`'s hostile options."""

    def __init__(self, behaviour: StandardESMTP, session: Session) -> None:
        super().__init__(behaviour.service, session)
        self.behaviour = behaviour
        self.session = session
        self.rcpts_seen = 0  # RCPT commands since MAIL, for fail_at_rcpt

    def cue(self, step: str) -> Reply | None:
        if step == "MAIL":
            self.rcpts_seen = 0
        elif step == "RCPT":
            self.rcpts_seen += 1
            if self.rcpts_seen != self.behaviour.fail_at_rcpt:
                return None
        return super().cue(step)

    def extensions(self) -> list[str]:
        tls_features = self.behaviour.tls_features
        if self.wire.tls and tls_features is not None:
            return list(tls_features)  # exactly as configured
        return super().extensions()

    def message_limit(self) -> None:
        return None  # SIZE is checked at MAIL only: a body of unknown length may be larger

    def ready_for_tls(self) -> None:
        ready = self.encode(*self.text("tls-ready"))
        injection = self.behaviour.starttls_injection
        if self.behaviour.starttls_injection_separately:
            self.session.send(ready)
            self.session.send(injection)
        else:
            self.session.send(ready + injection)

    def tls_failed(self, error: OSError) -> NoReturn:
        if isinstance(error, TimeoutError):
            raise error  # the test's own failure, not the client's refusal
        self.behaviour.tls_errors.append(error)
        super().tls_failed(error)

    def read_data(self) -> bytearray | None:
        if not self.behaviour.lenient_data_end:
            return super().read_data()
        raw, end = self.session.read_until_any(LENIENT_DATA_ENDS, prefix=b"\r\n")
        # Keep the line end that starts the end sequence, drop its dot and what follows;
        # then undo dot-stuffing at every CRLF line start.
        text = (b"\r\n" + raw)[: len(raw) + 2 - len(end) + end.index(b".")]
        return bytearray(text.replace(b"\r\n.", b"\r\n")[2:])

    def final_replies(self, recipients: list[str], failure: Reply | None) -> list[Reply]:
        data_replies = self.behaviour.data_replies
        if data_replies is None or failure is not None:
            return super().final_replies(recipients, failure)
        lines = list(data_replies(list(recipients)))
        if not self.service.lmtp:
            return [(int(lines[-1][:3]), "\n".join(line[4:] for line in lines))]
        if len(lines) != len(recipients):
            raise AssertionError(
                f"data_replies gave {len(lines)} replies for {len(recipients)} LMTP recipients"
            )
        return [(int(line[:3]), line[4:]) for line in lines]
