"""A small scriptable SMTP server for the test suite.

The project's clients (blocking, asyncio, trio) are tested against real sockets, so the
server side has to be exact (byte-for-byte transcripts) and able to misbehave on purpose
(fault injection) while never hanging a test: every read is bounded by a timeout and
everything is torn down (listener, connections, threads) when the context exits.

Two layers:

* `ScriptedServer` + `Session`: a test supplies a handler, called on its own thread with
  one `Session` per accepted connection, and scripts the conversation with `reply`,
  `expect`, `read_*`, `close`, `reset`, `stall`, ...
* `StandardESMTP`: a ready-made handler that behaves like a well-mannered ESMTP/LMTP
  server, records what it received, and can inject faults at named steps.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import itertools
import math
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

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

_RECV_SIZE = 65536
_STOP_GRACE = 2.0  # seconds a handler gets to unwind on its own before its socket is shut down
_TAIL = 1000  # bytes of transcript attached to a handler's error


class UnexpectedEOF(AssertionError):
    """The client closed the connection before the data a handler asked for arrived."""


class _Stopped(BaseException):
    """Unwinds a handler that is waiting for the client once the server is shutting down.

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """


def _tail(data: bytes | bytearray) -> bytes:
    return bytes(data[-_TAIL:])


class Session:
    """One accepted connection, driven by the server's handler on a dedicated thread.

    All reads go through an internal buffer so that pipelined input is consumed exactly as
    the handler asks for it; `received` and `sent` keep the raw transcript (after TLS
    decryption) for exact assertions.
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
        self.index = index
        self.received = bytearray()
        self.sent = bytearray()
        self._sock = sock
        self._buf = bytearray()
        self._timeout = timeout
        self._stop = stop
        self._wake = wake
        self._lock = threading.Lock()
        self._closed = False
        self._forced = False
        sock.settimeout(timeout)

    def __repr__(self) -> str:
        return f"<Session #{self.index} closed={self._closed} tls={self.tls}>"

    @property
    def closed(self) -> bool:
        """True once `close` or `reset` ran (the handler returning also closes)."""
        return self._closed

    @property
    def tls(self) -> bool:
        """True after a successful `start_tls`."""
        return isinstance(self._sock, ssl.SSLSocket)

    # -- writing -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes (one sendall), bounded by the session timeout."""
        self._sock.sendall(data)
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
                self._sock.sendall(data)
                total += len(data)
        except OSError:
            pass  # the client closed: that is the end of the flood
        return total

    # -- reading -------------------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Append the next bytes from the client to the buffer; False at EOF.

        Waits on the socket and the server's wake-up socket together, preferring client
        data, so input that arrived before shutdown is still seen; raises `_Stopped` when
        the server stops first and `TimeoutError` when the deadline passes.
        """
        if self._closed:
            raise RuntimeError(f"session #{self.index} is closed; cannot read")
        sock = self._sock
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            remaining = deadline - time.monotonic()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            poller.register(self._wake, select.POLLIN)
            events = poller.poll(max(0, math.ceil(remaining * 1000)))
            ready = {fd for fd, _ in events}
            if sock.fileno() not in ready:
                if ready:
                    raise _Stopped
                raise TimeoutError(
                    f"session #{self.index}: no data from the client within "
                    f"{self._timeout} s; last bytes received: {_tail(self.received)!r}"
                )
        data = sock.recv(_RECV_SIZE)
        if not data:
            return False
        self._buf += data
        self.received += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _deadline(self) -> float:
        return time.monotonic() + self._timeout

    def read_line(self, limit: int = MAX_LINE) -> bytes:
        """Read one line up to and including b"\\n"; b"" at EOF.

        A partial line cut off by EOF is returned as is (without the newline).  Lines
        longer than `limit` raise AssertionError rather than growing without bound.
        """
        deadline = self._deadline()
        start = 0
        while True:
            newline = self._buf.find(b"\n", start)
            if newline >= 0:
                if newline + 1 > limit:
                    break
                return self._take(newline + 1)
            if len(self._buf) > limit:
                break
            start = len(self._buf)
            if not self._fill(deadline):
                return self._take(len(self._buf))
        raise AssertionError(
            f"session #{self.index}: line longer than {limit} bytes: {bytes(self._buf[:80])!r}..."
        )

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
            found = self._buf.find(terminator, start)
            if found >= 0 and found + len(terminator) <= limit:
                return self._take(found + len(terminator))
            if found >= 0 or len(self._buf) >= limit:
                raise AssertionError(
                    f"session #{self.index}: no {terminator!r} within {limit} bytes"
                )
            start = max(0, len(self._buf) - len(terminator) + 1)
            if not self._fill(deadline):
                raise UnexpectedEOF(
                    f"session #{self.index}: EOF before {terminator!r}; "
                    f"buffered: {_tail(self._buf)!r}"
                )

    def read_exact(self, n: int) -> bytes:
        """Read exactly `n` bytes (a BDAT chunk); raises `UnexpectedEOF` if the client closes."""
        if not 0 <= n <= MAX_BLOCK:
            raise ValueError(f"read_exact size must be within 0..{MAX_BLOCK}, got {n}")
        deadline = self._deadline()
        while len(self._buf) < n:
            if not self._fill(deadline):
                raise UnexpectedEOF(
                    f"session #{self.index}: EOF after {len(self._buf)} of {n} bytes"
                )
        return self._take(n)

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
            view = prefix + bytes(self._buf)
            found = [(view.find(t), -len(t), t) for t in terminators]
            hits = sorted(hit for hit in found if hit[0] >= 0)
            if hits:
                start, _, terminator = hits[0]
                return self._take(start + len(terminator) - len(prefix)), terminator
            if len(self._buf) >= limit:
                raise AssertionError(f"session #{self.index}: no terminator within {limit} bytes")
            if not self._fill(deadline):
                raise UnexpectedEOF(
                    f"session #{self.index}: EOF before any of {list(terminators)!r}; "
                    f"buffered: {_tail(self._buf)!r}"
                )

    def read_until_eof(self) -> bytes:
        """Read everything the client sends until it closes its side (at most `MAX_BLOCK`)."""
        deadline = self._deadline()
        while self._fill(deadline):
            if len(self._buf) > MAX_BLOCK:
                raise AssertionError(f"session #{self.index}: more than {MAX_BLOCK} bytes")
        return self._take(len(self._buf))

    # -- connection control --------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the connection server-side and run the handshake (bounded by the timeout).

        Call after sending the "220" that answers STARTTLS.  Plaintext the client sent after
        the STARTTLS line is a protocol violation (command injection), so it fails loudly.
        """
        if self.tls:
            raise RuntimeError(f"session #{self.index}: TLS is already active")
        if self._buf:
            raise AssertionError(
                f"session #{self.index}: client sent {bytes(self._buf)!r} after the STARTTLS "
                "command, before the TLS handshake"
            )
        tls_sock = context.wrap_socket(self._sock, server_side=True, do_handshake_on_connect=False)
        self._sock = tls_sock
        tls_sock.settimeout(self._timeout)
        tls_sock.do_handshake()

    def close(self) -> None:
        """Close in an orderly way: TLS close_notify if needed, then FIN.

        After the FIN, input the client already sent is drained (and recorded) so that the
        kernel does not turn the final close into a RST.  Idempotent; errors from a dead
        peer are ignored.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sock = self._sock
        if isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                # Sends close_notify; not waiting for the peer's reply is intended.
                sock = sock.unwrap()
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_WR)
        if not isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                for _ in range(64):
                    data = sock.recv(_RECV_SIZE)
                    if not data:
                        break
                    self.received += data
        sock.close()

    def reset(self) -> None:
        """Abortive close (SO_LINGER 1/0): a TCP client sees ECONNRESET.

        On a Unix socket there is no RST; the connection is simply closed.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sock = self._sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def stall(self) -> None:
        """Stop reading and answering until the server stops (no sleeping, no polling)."""
        self._stop.wait()

    # -- used by ScriptedServer ----------------------------------------------------------

    def _force_shutdown(self) -> None:
        """Unblock a handler stuck in a send or handshake; its errors are then ignored."""
        self._forced = True
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def _describe(self) -> str:
        return (
            f"session #{self.index} transcript tail: received {_tail(self.received)!r}; "
            f"sent {_tail(self.sent)!r}"
        )


class ScriptedServer:
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
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.handler = handler
        self.unix_path = unix_path
        self.timeout = timeout
        self.nodelay = nodelay
        self.host = "127.0.0.1"
        self.port = 0  # the bound port once started (stays 0 in Unix socket mode)
        self.sessions: list[Session] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        # Written once at shutdown and never drained, so it wakes every waiter for good.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def __repr__(self) -> str:
        where = self.unix_path if self.unix_path is not None else f"{self.host}:{self.port}"
        return f"<ScriptedServer {where} sessions={len(self.sessions)}>"

    def __enter__(self) -> Self:
        if self._listener is not None or self._stop.is_set():
            raise RuntimeError("a ScriptedServer can only be started once")
        if self.unix_path is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address: str | tuple[str, int] = (self.host, 0)
        else:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = self.unix_path
        try:
            listener.bind(address)
            listener.listen(64)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        if self.unix_path is None:
            self.port = listener.getsockname()[1]
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="scripted-smtp-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()
        if exc_type is None and self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise AssertionError(
                f"scripted SMTP handler failed{more}: {type(first).__name__}: {first}"
            ) from first

    def _pending_connection(self) -> bool:
        """True if a connection is waiting in the listen queue (not yet accepted)."""
        if self._listener is None or self._stop.is_set():
            return False
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        return bool(poller.poll(0))

    def wait_sessions_done(self, timeout: float = 10.0) -> None:
        """Wait until every connection made so far has been accepted and its handler returned.

        Raises TimeoutError if that takes longer than `timeout`.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                while self._pending_connection():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        raise TimeoutError("a pending connection was not accepted in time")
                threads = list(self._threads)
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    raise TimeoutError(f"handler thread {thread.name} still running")
            with self._cond:
                if len(self._threads) == len(threads) and not self._pending_connection():
                    return

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake_r
        assert listener is not None and wake is not None
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(wake, select.POLLIN)
        wake_fd = wake.fileno()
        try:
            while True:
                events = poller.poll()
                if any(fd == wake_fd for fd, _ in events):
                    return
                with self._cond:
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        pass  # the client gave up before we accepted
                    else:
                        self._start_session(conn)
                    self._cond.notify_all()
        except BaseException as exc:
            self.errors.append(exc)

    def _start_session(self, conn: socket.socket) -> None:
        assert self._wake_r is not None
        if self.nodelay and self.unix_path is None:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(
            conn,
            index=len(self.sessions),
            timeout=self.timeout,
            stop=self._stop,
            wake=self._wake_r,
        )
        thread = threading.Thread(
            target=self._run_handler,
            args=(session,),
            name=f"scripted-smtp-session-{session.index}",
            daemon=True,
        )
        self.sessions.append(session)
        self._threads.append(thread)
        thread.start()

    def _run_handler(self, session: Session) -> None:
        try:
            self.handler(session)
        except _Stopped:
            pass  # the test is over; the handler was waiting for input that never came
        except BaseException as exc:
            if not session._forced:
                exc.add_note(session._describe())
                self.errors.append(exc)
        finally:
            session.close()

    def _shutdown(self) -> None:
        """Stop accepting, release handlers, join every thread, free every resource."""
        self._stop.set()
        if self._wake_w is not None:
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(self.timeout)
        if self._listener is not None:
            self._listener.close()
        grace_end = time.monotonic() + min(self.timeout, _STOP_GRACE)
        for thread in self._threads:
            thread.join(max(0.0, grace_end - time.monotonic()))
        with self._cond:
            pairs = list(zip(self.sessions, self._threads, strict=True))
        for session, thread in pairs:
            if thread.is_alive():
                session._force_shutdown()
        all_stopped = True
        for session, thread in pairs:
            thread.join(self.timeout)
            if thread.is_alive():
                all_stopped = False
                self.errors.append(
                    RuntimeError(f"handler thread for session #{session.index} did not stop")
                )
                session.reset()
        if self.unix_path is not None and self._listener is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)
        if all_stopped and self._wake_r is not None and self._wake_w is not None:
            self._wake_r.close()
            self._wake_w.close()


# -- ready-made ESMTP / LMTP behaviour ----------------------------------------------------

FAULT_STEPS = frozenset(
    {"greeting", "ehlo", "mail", "rcpt", "data", "body", "after-data", "quit", "auth", "starttls"}
)
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


@dataclass
class Envelope:
    """One received message; addresses are without angle brackets ("" for the null path)."""

    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    rcpt_options: list[list[str]]
    data: bytes
    via: Literal["DATA", "BDAT"]


class _EndSession(Exception):
    """An injected fault ended the conversation."""


class _AuthReply(Exception):
    """Ends an AUTH exchange early with the given reply line."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def _parse_path(arg: str, keyword: str) -> tuple[str, list[str]] | None:
    """Split "FROM:<addr> PARAM=x" into ("addr", ["PARAM=x"]); None if malformed."""
    if arg[: len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword) :].lstrip(" ")
    end = rest.find(">")
    if not rest.startswith("<") or end < 0:
        return None
    tail = rest[end + 1 :]
    if tail and not tail.startswith(" "):
        return None
    return rest[1:end], tail.split()


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
        in `FAULT_STEPS` to an action in `FAULT_ACTIONS`.

        Hostile behaviours, for the attack tests: tls_features, when given, is the EHLO
        reply's whole list of keywords once TLS is active (nothing added).
        starttls_injection is plaintext sent right after the 220 to STARTTLS (in the same
        write, or in a write of its own with starttls_injection_separately), as a man in
        the middle would inject it; the TLS handshake is attempted all the same.
        lenient_data_end ends DATA at the first `LENIENT_DATA_ENDS` sequence and reads what
        follows as commands, as servers open to SMTP smuggling do.  fail_at_rcpt: which RCPT
        of a transaction (1 = the first) a "rcpt" fault fires on.
        """
        fail_at = dict(fail_at or {})
        for step, action in fail_at.items():
            if step not in FAULT_STEPS:
                raise ValueError(f"unknown fault step {step!r}; expected one of {FAULT_STEPS}")
            if action not in FAULT_ACTIONS:
                raise ValueError(f"unknown fault action {action!r}; expected {FAULT_ACTIONS}")
        self.greeting = greeting
        self.features = list(features)
        self.auth = dict(auth) if auth is not None else None
        self.tls_context = tls_context
        self.lmtp = lmtp
        self.reject = reject
        self.data_replies = data_replies
        self.chunking = chunking
        self.fail_at = fail_at
        self.hostname = hostname
        self.tls_features = None if tls_features is None else list(tls_features)
        self.starttls_injection = starttls_injection
        self.starttls_injection_separately = starttls_injection_separately
        self.lenient_data_end = lenient_data_end
        self.fail_at_rcpt = fail_at_rcpt
        self.envelopes: list[Envelope] = []
        self.commands: list[bytes] = []
        self.authenticated: list[str] = []  # user names that logged in successfully
        self.tls_errors: list[BaseException] = []  # failed STARTTLS handshakes (not errors)
        self._lock = threading.Lock()
        self._challenge_ids = itertools.count(1)

    def __call__(self, session: Session) -> None:
        _Conversation(self, session).run()

    def ehlo_lines(self, tls_active: bool) -> list[str]:
        """The EHLO/LHLO reply: configured features plus AUTH/STARTTLS/CHUNKING as enabled."""
        if tls_active and self.tls_features is not None:
            lines = [self.hostname, *self.tls_features]  # exactly as configured
            return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]
        keywords = list(self.features)
        names = {k.split()[0].upper() for k in keywords if k.strip()}
        if self.auth is not None and "AUTH" not in names:
            keywords.append("AUTH PLAIN LOGIN CRAM-MD5")
        if self.tls_context is not None and "STARTTLS" not in names:
            keywords.append("STARTTLS")
        if self.chunking and "CHUNKING" not in names:
            keywords.append("CHUNKING")
        if tls_active:
            keywords = [k for k in keywords if k.strip().upper() != "STARTTLS"]
        lines = [self.hostname, *keywords]
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    @property
    def size_limit(self) -> int | None:
        """The advertised SIZE limit, if any (SIZE 0 means no limit)."""
        for keyword in self.features:
            name, _, value = keyword.partition(" ")
            if name.upper() == "SIZE" and value.strip().isdecimal() and int(value) > 0:
                return int(value)
        return None

    def _record(self, *, command: bytes | None = None, envelope: Envelope | None = None) -> None:
        with self._lock:
            if command is not None:
                self.commands.append(command)
            if envelope is not None:
                self.envelopes.append(envelope)


class _Conversation:
    """Per-connection state of a `StandardESMTP` session."""

    def __init__(self, server: StandardESMTP, session: Session) -> None:
        self.srv = server
        self.s = session
        self.greeted = False
        self.esmtp = False
        self.authenticated = False
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.rcpts: list[str] = []
        self.rcpt_options: list[list[str]] = []
        self.chunks = bytearray()
        self.bdat_active = False
        self.rcpt_count = 0  # RCPT commands in this transaction, for fail_at_rcpt
        self.verbs: dict[str, Callable[[str], bool]] = {
            "MAIL": self.mail,
            "RCPT": self.rcpt,
            "DATA": self.data,
            "BDAT": self.bdat,
            "RSET": self.rset,
            "NOOP": self.noop,
            "VRFY": self.vrfy,
            "EXPN": self.expn,
            "HELP": self.help,
            "QUIT": self.quit,
            "STARTTLS": self.starttls,
            "AUTH": self.auth,
        }
        if server.lmtp:
            self.verbs["LHLO"] = self.ehlo
            self.verbs["EHLO"] = self.verbs["HELO"] = self.not_lmtp
        else:
            self.verbs["EHLO"] = self.ehlo
            self.verbs["HELO"] = self.helo

    def run(self) -> None:
        try:
            self.fault("greeting")
            self.s.reply(self.srv.greeting)
            while self.one_command():
                pass
        except (_EndSession, UnexpectedEOF, ConnectionError):
            return  # injected fault, or the client went away mid-exchange

    def fault(self, step: str) -> None:
        """Perform the configured fault action for `step`, if any, and end the session."""
        action = self.srv.fail_at.get(step)
        if action is None:
            return
        if action == "fin":
            self.s.close()
        elif action == "rst":
            self.s.reset()
        elif action == "421":
            self.s.reply(f"421 4.3.2 {self.srv.hostname} Service not available, closing")
            self.s.close()
        else:
            self.s.stall()
        raise _EndSession(step)

    def reset_transaction(self) -> None:
        self.mail_from = None
        self.mail_options = []
        self.rcpts = []
        self.rcpt_options = []
        self.chunks = bytearray()
        self.bdat_active = False
        self.rcpt_count = 0

    def one_command(self) -> bool:
        """Read and answer one command; False when the session is over."""
        line = self.s.read_line()
        if not line.endswith(b"\n"):
            return False  # EOF (possibly mid-line)
        self.srv._record(command=line.rstrip(b"\r\n"))
        if not line.endswith(b"\r\n"):
            self.s.reply("500 5.5.2 Command line must end with CRLF")
            return True
        verb, _, arg = line[:-2].decode("utf-8", "surrogateescape").partition(" ")
        action = self.verbs.get(verb.upper())
        if action is None:
            self.s.reply("500 5.5.2 Command not recognized")
            return True
        return action(arg)

    # -- session commands ----------------------------------------------------------------

    def helo(self, arg: str) -> bool:
        self.fault("ehlo")
        if not arg.strip():
            self.s.reply("501 5.5.4 Syntax: HELO hostname")
            return True
        self.reset_transaction()
        self.greeted, self.esmtp = True, False
        self.s.reply(f"250 {self.srv.hostname}")
        return True

    def ehlo(self, arg: str) -> bool:
        self.fault("ehlo")
        if not arg.strip():
            self.s.reply("501 5.5.4 Syntax: EHLO hostname")
            return True
        self.reset_transaction()
        self.greeted = self.esmtp = True
        self.s.reply(*self.srv.ehlo_lines(self.s.tls))
        return True

    def not_lmtp(self, arg: str) -> bool:
        self.s.reply("500 5.5.1 This is an LMTP server: use LHLO")
        return True

    def rset(self, arg: str) -> bool:
        self.reset_transaction()
        self.s.reply("250 2.0.0 OK")
        return True

    def noop(self, arg: str) -> bool:
        self.s.reply("250 2.0.0 OK")
        return True

    def vrfy(self, arg: str) -> bool:
        if not arg.strip():
            self.s.reply("501 5.5.4 Syntax: VRFY address")
        else:
            self.s.reply("252 2.5.2 Cannot VRFY user, but will accept message")
        return True

    def expn(self, arg: str) -> bool:
        self.s.reply("502 5.5.1 EXPN not implemented")
        return True

    def help(self, arg: str) -> bool:
        self.s.reply(
            "214-Commands supported:",
            "214 HELO EHLO LHLO MAIL RCPT DATA BDAT RSET NOOP VRFY EXPN HELP AUTH STARTTLS QUIT",
        )
        return True

    def quit(self, arg: str) -> bool:
        self.fault("quit")
        self.s.reply("221 2.0.0 Bye")
        self.s.close()
        return False

    # -- mail transaction ----------------------------------------------------------------

    def mail(self, arg: str) -> bool:
        self.fault("mail")
        if not self.greeted:
            self.s.reply("503 5.5.1 Bad sequence of commands: say hello first")
            return True
        if self.mail_from is not None:
            self.s.reply("503 5.5.1 Bad sequence of commands: nested MAIL")
            return True
        parsed = _parse_path(arg, "FROM:")
        if parsed is None:
            self.s.reply("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]")
            return True
        address, options = parsed
        limit = self.srv.size_limit
        for option in options:
            name, _, value = option.partition("=")
            if name.upper() == "SIZE" and limit and value.isdecimal() and int(value) > limit:
                self.s.reply("552 5.3.4 Message size exceeds fixed maximum message size")
                return True
        self.mail_from, self.mail_options = address, options
        self.s.reply("250 2.1.0 Sender OK")
        return True

    def rcpt(self, arg: str) -> bool:
        self.rcpt_count += 1
        if self.rcpt_count == self.srv.fail_at_rcpt:
            self.fault("rcpt")
        if self.mail_from is None:
            self.s.reply("503 5.5.1 Bad sequence of commands: need MAIL first")
            return True
        parsed = _parse_path(arg, "TO:")
        if parsed is None:
            self.s.reply("501 5.5.4 Syntax: RCPT TO:<address> [parameters]")
            return True
        address, options = parsed
        refusal = self.srv.reject(address) if self.srv.reject is not None else None
        if refusal is not None:
            code, text = refusal
            self.s.reply(f"{code} {text}")
            return True
        self.rcpts.append(address)
        self.rcpt_options.append(options)
        self.s.reply("250 2.1.5 Recipient OK")
        return True

    def transaction_problem(self) -> str | None:
        """The reply refusing message content now, or None if a message may follow."""
        if self.mail_from is None:
            return "503 5.5.1 Bad sequence of commands: need MAIL first"
        if not self.rcpts:
            return "554 5.5.1 No valid recipients"
        return None

    def data(self, arg: str) -> bool:
        self.fault("data")
        problem = self.transaction_problem()
        if self.bdat_active:
            problem = "503 5.5.1 Bad sequence of commands: DATA after BDAT"
        elif arg.strip():
            problem = "501 5.5.4 Syntax: DATA"
        if problem is not None:
            self.s.reply(problem)
            return True
        self.s.reply("354 End data with <CR><LF>.<CR><LF>")
        self.fault("body")
        if self.srv.lenient_data_end:
            raw, end = self.s.read_until_any(LENIENT_DATA_ENDS, prefix=b"\r\n")
            # Keep the line end that starts the end sequence, drop its dot and what follows;
            # then undo dot-stuffing at every CRLF line start.
            text = (b"\r\n" + raw)[: len(raw) + 2 - len(end) + end.index(b".")]
            self.complete(text.replace(b"\r\n.", b"\r\n")[2:], "DATA")
            return True
        content = bytearray()
        while True:
            line = self.s.read_line(limit=MAX_BLOCK)
            if not line.endswith(b"\n"):
                raise UnexpectedEOF("client closed the connection during DATA")
            if line == b".\r\n":
                break
            content += line[1:] if line.startswith(b".") else line
            if len(content) > MAX_BLOCK:
                raise AssertionError(f"message larger than {MAX_BLOCK} bytes")
        self.complete(bytes(content), "DATA")
        return True

    def bdat(self, arg: str) -> bool:
        if not self.srv.chunking:
            self.s.reply("500 5.5.2 Command not recognized")
            return True
        parts = arg.split()
        valid = (
            1 <= len(parts) <= 2
            and parts[0].isascii()
            and parts[0].isdigit()
            and (len(parts) == 1 or parts[1].upper() == "LAST")
        )
        if not valid:
            self.s.reply("501 5.5.4 Syntax: BDAT size [LAST]")
            return True
        size, last = int(parts[0]), len(parts) == 2
        if size > MAX_BLOCK or len(self.chunks) + size > MAX_BLOCK:
            self.s.reply("552 5.3.4 Chunk too large for this test server")
            raise _EndSession("bdat size")  # cannot resynchronise without reading it
        first = not self.bdat_active
        if first:
            self.fault("data")
        chunk = self.s.read_exact(size)
        problem = self.transaction_problem()
        if problem is not None:
            self.s.reply(problem)  # the chunk is read and discarded, keeping us in sync
            return True
        self.bdat_active = True
        self.chunks += chunk
        if first:
            self.fault("body")
        if last:
            self.complete(bytes(self.chunks), "BDAT")
        else:
            self.s.reply(f"250 2.0.0 {size} octets received")
        return True

    def complete(self, content: bytes, via: Literal["DATA", "BDAT"]) -> None:
        """Record the message, then send the final reply (one per recipient for LMTP)."""
        assert self.mail_from is not None
        rcpts = list(self.rcpts)
        envelope = Envelope(
            mail_from=self.mail_from,
            mail_options=list(self.mail_options),
            rcpt_tos=rcpts,
            rcpt_options=[list(o) for o in self.rcpt_options],
            data=content,
            via=via,
        )
        self.srv._record(envelope=envelope)
        self.reset_transaction()
        self.fault("after-data")
        if self.srv.data_replies is not None:
            lines = list(self.srv.data_replies(list(rcpts)))
            if self.srv.lmtp and len(lines) != len(rcpts):
                raise AssertionError(
                    f"data_replies gave {len(lines)} replies for {len(rcpts)} LMTP recipients"
                )
        elif self.srv.lmtp:
            lines = [f"250 2.1.5 <{rcpt}> delivered" for rcpt in rcpts]
        else:
            lines = ["250 2.0.0 Message accepted for delivery"]
        self.s.reply(*lines)

    # -- STARTTLS and AUTH ---------------------------------------------------------------

    def starttls(self, arg: str) -> bool:
        self.fault("starttls")
        context = self.srv.tls_context
        if context is None:
            self.s.reply("502 5.5.1 STARTTLS not available")
            return True
        if self.s.tls:
            self.s.reply("503 5.5.1 TLS already active")
            return True
        if arg.strip():
            self.s.reply("501 5.5.4 Syntax: STARTTLS")
            return True
        ready = b"220 2.0.0 Ready to start TLS\r\n"
        if self.srv.starttls_injection_separately:
            self.s.send(ready)
            self.s.send(self.srv.starttls_injection)
        else:
            self.s.send(ready + self.srv.starttls_injection)
        try:
            self.s.start_tls(context)
        except TimeoutError:
            raise
        except OSError as exc:  # the client refused or aborted the handshake
            with self.srv._lock:
                self.srv.tls_errors.append(exc)
            raise _EndSession("tls handshake") from exc
        self.greeted = self.esmtp = self.authenticated = False
        self.reset_transaction()
        return True

    def auth(self, arg: str) -> bool:
        self.fault("auth")
        if self.srv.auth is None:
            self.s.reply("502 5.5.1 AUTH not available")
            return True
        if not self.esmtp:
            problem = "503 5.5.1 Bad sequence of commands: EHLO first"
        elif self.authenticated:
            problem = "503 5.5.1 Already authenticated"
        elif self.mail_from is not None:
            problem = "503 5.5.1 AUTH not permitted during a mail transaction"
        else:
            problem = None
        if problem is not None:
            self.s.reply(problem)
            return True
        mechanism, _, initial_text = arg.strip().partition(" ")
        initial = initial_text.strip() or None
        mechanisms = {
            "PLAIN": self.auth_plain,
            "LOGIN": self.auth_login,
            "CRAM-MD5": self.auth_cram_md5,
        }
        run = mechanisms.get(mechanism.upper())
        if run is None:
            self.s.reply("504 5.5.4 Unrecognized authentication mechanism")
            return True
        try:
            user = run(initial)
        except _AuthReply as refusal:
            self.s.reply(refusal.line)
            return True
        if user is None:
            self.s.reply("535 5.7.8 Authentication credentials invalid")
            return True
        self.authenticated = True
        with self.srv._lock:
            self.srv.authenticated.append(user)
        self.s.reply("235 2.7.0 Authentication successful")
        return True

    @staticmethod
    def decode(text: str) -> bytes:
        """Decode a SASL response ("=" is the empty initial response)."""
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _AuthReply("501 5.5.2 Cannot decode response") from None

    def challenge(self, payload: bytes) -> bytes:
        """Send a 334 challenge and return the client's decoded response."""
        self.s.reply("334 " + base64.b64encode(payload).decode("ascii"))
        line = self.s.read_line()
        if not line.endswith(b"\n"):
            raise UnexpectedEOF("client closed the connection during AUTH")
        response = line.rstrip(b"\r\n").decode("ascii", "replace")
        if response == "*":
            raise _AuthReply("501 5.7.0 Authentication cancelled")
        return self.decode(response)

    def check(self, user: str, password: str) -> str | None:
        expected = self.srv.auth.get(user) if self.srv.auth is not None else None
        if expected is None:
            return None
        ok = hmac.compare_digest(expected.encode("utf-8"), password.encode("utf-8"))
        return user if ok else None

    def auth_plain(self, initial: str | None) -> str | None:
        raw = self.decode(initial) if initial is not None else self.challenge(b"")
        parts = raw.decode("utf-8", "replace").split("\0")
        if len(parts) != 3:
            raise _AuthReply("501 5.5.2 Malformed PLAIN response")
        authzid, authcid, password = parts
        if authzid and authzid != authcid:
            return None
        return self.check(authcid, password)

    def auth_login(self, initial: str | None) -> str | None:
        user = self.decode(initial) if initial is not None else self.challenge(b"Username:")
        password = self.challenge(b"Password:")
        return self.check(user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))

    def auth_cram_md5(self, initial: str | None) -> str | None:
        if initial is not None:
            raise _AuthReply("501 5.5.2 CRAM-MD5 takes no initial response")
        # Deterministic (per StandardESMTP) so transcripts are reproducible; this is a test
        # server, unpredictability buys nothing here.
        nonce = f"<{next(self.srv._challenge_ids)}.0@{self.srv.hostname}>".encode("ascii")
        user_raw, space, digest = self.challenge(nonce).rpartition(b" ")
        if not space:
            raise _AuthReply("501 5.5.2 Malformed CRAM-MD5 response")
        user = user_raw.decode("utf-8", "replace")
        password = self.srv.auth.get(user) if self.srv.auth is not None else None
        if password is None:
            return None
        expected = hmac.new(password.encode("utf-8"), nonce, "md5").hexdigest().encode("ascii")
        return user if hmac.compare_digest(expected, digest.lower()) else None
