"""A local SMTP/LMTP server that captures what it receives: for trying the client, and for tests.

``CaptureServer`` listens on 127.0.0.1 (or a Unix socket), runs in background threads while in
a ``with`` block, and keeps every message it accepts as a ``CapturedMessage``::

    with CaptureServer() as server:
        with SMTP(server.host, server.port) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        (captured,) = server.wait_for_messages(1)
        assert captured.data == b"Subject: hi\\r\\n\\r\\nhello\\r\\n"

It speaks ESMTP with PIPELINING, 8BITMIME, SMTPUTF8, SIZE (enforced), DSN, CHUNKING and
ENHANCEDSTATUSCODES; STARTTLS when given a server ``ssl.SSLContext``; AUTH PLAIN and LOGIN when
given credentials; and LMTP (LHLO, one reply per recipient after the message) when asked.
It refuses recipients, fails a step or drops the connection on cue, so a test can check how
its code handles each.  It is written independently of the client code, so it checks the
client from the outside.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.message
import email.parser
import email.policy
import hmac
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import TracebackType
from typing import Any

__all__ = ["CaptureServer", "CapturedMessage", "Reply"]

#: A reply the server gives on cue: code and text, e.g. ``(550, "5.1.1 No such user")``.
Reply = tuple[int, str]

_MAX_COMMAND = 4096
_DATA_PIECE = 1 << 16
_MAIL_PARAMETERS = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"})
_RCPT_PARAMETERS = frozenset({"NOTIFY", "ORCPT"})


@dataclass
class CapturedMessage:
    """One message as the server received it: envelope, session facts and content.

    ``data`` is the message exactly as the client meant it: dots unstuffed after DATA, the
    chunks joined after BDAT, without the terminating ``.``.
    """

    mail_from: str
    rcpt_tos: list[str] = field(default_factory=list)
    mail_options: list[str] = field(default_factory=list)
    #: The RCPT parameters of each recipient in ``rcpt_tos`` (same order).
    rcpt_options: list[list[str]] = field(default_factory=list)
    data: bytes = b""
    #: Whether the session was in TLS, who had authenticated, and whether BDAT carried it.
    tls: bool = False
    auth_user: str | None = None
    chunked: bool = False

    @cached_property
    def message(self) -> email.message.EmailMessage:
        """``data`` parsed as an ``email.message.EmailMessage`` (headers, parts, content),
        with Python's line endings (LF) instead of the wire's CRLF."""
        parser = email.parser.BytesParser(policy=email.policy.default)
        parsed = parser.parsebytes(self.data.replace(b"\r\n", b"\n"))
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


class _Disconnect(Exception):
    """The session ends now (client gone, a cue to drop, or a reply that closes it)."""


class _Wire:
    """Buffered reads and writes on one connection; STARTTLS swaps the socket underneath."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise _Disconnect
        self.buffer += chunk

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF, or ``limit`` bytes of a longer line."""
        while True:
            end = self.buffer.find(b"\n", 0, limit)
            if end >= 0 or len(self.buffer) >= limit:
                size = end + 1 if end >= 0 else limit
                line = bytes(self.buffer[:size])
                del self.buffer[:size]
                return line
            self._fill()

    def read_into(self, count: int, sink: bytearray | None) -> None:
        """Consume exactly ``count`` bytes, appending them to ``sink`` unless it is ``None``."""
        while count:
            if not self.buffer:
                self._fill()
            piece = self.buffer[:count]
            del self.buffer[:count]
            count -= len(piece)
            if sink is not None:
                sink += piece

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(f"{line}\r\n" for line in lines).encode("utf-8"))


def _path_and_parameters(argument: str) -> tuple[str, list[str]] | None:
    """``<address> PARAM=VALUE ...`` split into the address and its parameters."""
    argument = argument.lstrip(" ")
    if argument.startswith("<"):
        address, closed, rest = argument[1:].partition(">")
        if not closed:
            return None
    else:
        address, _, rest = argument.partition(" ")
    return address, rest.split()


def _bad_parameter(parameters: list[str], known: frozenset[str]) -> Reply | None:
    """The refusal for a parameter this server does not implement, if any."""
    for parameter in parameters:
        if parameter.partition("=")[0].upper() not in known:
            return 555, f"5.5.4 Unsupported parameter {parameter}"
    return None


_UTF8_REQUIRED: Reply = (553, "5.6.7 Non-ASCII address without SMTPUTF8")


def _utf8(mail_parameters: list[str]) -> bool:
    """Whether MAIL asked for SMTPUTF8 (RFC 6531): non-ASCII addresses need it."""
    return any(parameter.upper() == "SMTPUTF8" for parameter in mail_parameters)


class _Session:
    """One client connection: the SMTP (or LMTP) dialogue and its transaction state."""

    def __init__(self, capture: CaptureServer, wire: _Wire) -> None:
        self.capture = capture
        self.wire = wire
        self.greeted = False
        self.tls = False
        self.user: str | None = None
        self.transaction: CapturedMessage | None = None
        self.chunks: bytearray | None = None  # BDAT data so far; None when too large
        self.chunked = False  # whether BDAT was used in this transaction

    # ------------------------------------------------------------------ replies and cues

    def reply(self, code: int, text: str) -> None:
        self.wire.send(f"{code} {text}")
        if code == 421:
            raise _Disconnect  # 421 announces that the server closes the connection

    def cue(self, step: str) -> Reply | None:
        """Drop the connection if told to at ``step``; else the failure to give there, if any."""
        if self.capture.drop_at == step:
            raise _Disconnect
        return self.capture.fail.get(step)

    # ------------------------------------------------------------------ the dialogue

    def run(self) -> None:
        capture = self.capture
        greeting_failure = self.cue("connect")
        if greeting_failure is not None:
            self.wire.send(f"{greeting_failure[0]} {greeting_failure[1]}")
        else:
            kind = "LMTP" if capture.lmtp else "ESMTP"
            self.wire.send(f"220 {capture.hostname} {kind} smtp-proto capture server")
        while True:
            text = self.read_line()
            if text is None:
                self.reply(500, "5.5.2 Line too long")
                continue
            verb, _, argument = text.partition(" ")
            verb = verb.upper()
            if greeting_failure is not None and verb != "QUIT":
                self.reply(503, "5.5.1 No service")
                continue
            if verb != "BDAT" and (failure := self.cue(verb)) is not None:
                self.reply(*failure)
                continue
            handler = getattr(self, f"do_{verb.lower()}", None) if verb.isalpha() else None
            if handler is None:
                self.reply(502, "5.5.2 Command not implemented")
            else:
                handler(argument)

    def read_line(self) -> str | None:
        """The next command (or AUTH response) line, decoded; ``None`` if it was too long
        (then read to its end and dropped)."""
        line = self.wire.readline(_MAX_COMMAND)
        if line.endswith(b"\n"):
            return line.decode("utf-8", "replace").rstrip("\r\n")
        while not self.wire.readline(_MAX_COMMAND).endswith(b"\n"):
            pass
        return None

    def reset(self) -> None:
        self.transaction = None
        self.chunks = None
        self.chunked = False

    def do_ehlo(self, argument: str, *, lmtp: bool = False) -> None:
        capture = self.capture
        if lmtp != capture.lmtp:
            self.reply(500, f"5.5.1 {'LHLO' if capture.lmtp else 'EHLO'} expected")
            return
        self.reset()
        self.greeted = True
        lines = [
            capture.hostname,
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            f"SIZE {capture.size_limit}",
            "DSN",
            "CHUNKING",
            "ENHANCEDSTATUSCODES",
        ]
        if capture.tls_context is not None and not self.tls:
            lines.append("STARTTLS")
        if capture.credentials is not None and self.user is None:
            lines.append("AUTH PLAIN LOGIN")
        self.wire.send(*(f"250-{line}" for line in lines[:-1]), f"250 {lines[-1]}")

    def do_lhlo(self, argument: str) -> None:
        self.do_ehlo(argument, lmtp=True)

    def do_helo(self, argument: str) -> None:
        if self.capture.lmtp:
            self.reply(500, "5.5.1 LHLO expected")
            return
        self.reset()
        self.greeted = True
        self.reply(250, self.capture.hostname)

    def do_starttls(self, argument: str) -> None:
        context = self.capture.tls_context
        if context is None or self.tls:
            self.reply(502, "5.5.1 STARTTLS not available")
            return
        self.reply(220, "2.0.0 Ready to start TLS")
        if self.wire.buffer:
            raise _Disconnect  # commands sent before TLS: injected, never to be run
        self.wire.sock = context.wrap_socket(self.wire.sock, server_side=True)
        self.tls = True
        self.greeted = False
        self.user = None
        self.reset()

    def do_auth(self, argument: str) -> None:
        if self.capture.credentials is None:
            self.reply(502, "5.5.1 AUTH not available")
            return
        if self.user is not None or self.transaction is not None:
            self.reply(503, "5.5.1 Already authenticated, or in a transaction")
            return
        mechanism, _, initial = argument.partition(" ")
        try:
            if mechanism.upper() == "PLAIN":
                decoded = self.answer("", initial).split(b"\0")
                if len(decoded) != 3:
                    raise ValueError("PLAIN needs three fields")
                user, password = decoded[1], decoded[2]
            elif mechanism.upper() == "LOGIN":
                user = self.answer("VXNlcm5hbWU6", initial)  # "Username:"
                password = self.answer("UGFzc3dvcmQ6", "")  # "Password:"
            else:
                self.reply(504, "5.5.4 Unrecognized authentication type")
                return
        except _Cancelled:
            self.reply(501, "5.7.0 Authentication cancelled")
            return
        except ValueError:
            self.reply(501, "5.5.2 Cannot decode the response")
            return
        expected = self.capture.credentials.get(user.decode("utf-8", "replace"))
        if expected is not None and hmac.compare_digest(expected.encode("utf-8"), password):
            self.user = user.decode("utf-8")
            self.reply(235, "2.7.0 Authentication successful")
        else:
            self.reply(535, "5.7.8 Authentication credentials invalid")

    def answer(self, challenge: str, initial: str) -> bytes:
        """The client's base64 response: the initial one if sent, else one to a 334."""
        if not initial:
            self.wire.send(f"334 {challenge}")
            line = self.read_line()
            if line is None:
                raise ValueError("response too long")
            initial = line.strip()
        if initial == "*":
            raise _Cancelled
        if initial == "=":
            return b""
        try:
            return base64.b64decode(initial, validate=True)
        except binascii.Error as exc:
            raise ValueError(str(exc)) from None

    def do_mail(self, argument: str) -> None:
        if not self.greeted:
            self.reply(503, f"5.5.1 {'LHLO' if self.capture.lmtp else 'EHLO/HELO'} first")
            return
        if self.transaction is not None:
            self.reply(503, "5.5.1 Nested MAIL command")
            return
        parsed = _path_and_parameters(argument[5:]) if argument[:5].upper() == "FROM:" else None
        if parsed is None:
            self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
            return
        sender, parameters = parsed
        refusal = _bad_parameter(parameters, _MAIL_PARAMETERS)
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.upper() == "SIZE" and not (value.isascii() and value.isdigit()):
                refusal = (501, "5.5.4 Bad SIZE parameter")
            elif name.upper() == "SIZE" and int(value) > self.capture.size_limit:
                refusal = (552, "5.3.4 Message size exceeds fixed limit")
        if not sender.isascii() and not _utf8(parameters):
            refusal = _UTF8_REQUIRED
        if refusal is not None:
            self.reply(*refusal)
            return
        self.reset()
        self.transaction = CapturedMessage(
            sender, mail_options=parameters, tls=self.tls, auth_user=self.user
        )
        self.chunks = bytearray()
        self.reply(250, "2.1.0 Ok")

    def do_rcpt(self, argument: str) -> None:
        transaction = self.transaction
        if transaction is None:
            self.reply(503, "5.5.1 MAIL first")
            return
        parsed = _path_and_parameters(argument[3:]) if argument[:3].upper() == "TO:" else None
        if parsed is None:
            self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
            return
        recipient, parameters = parsed
        refusal = _bad_parameter(parameters, _RCPT_PARAMETERS) or self.capture.refuse.get(recipient)
        if not recipient.isascii() and not _utf8(transaction.mail_options):
            refusal = _UTF8_REQUIRED
        if refusal is not None:
            self.reply(*refusal)
            return
        transaction.rcpt_tos.append(recipient)
        transaction.rcpt_options.append(parameters)
        self.reply(250, "2.1.5 Ok")

    def do_data(self, argument: str) -> None:
        transaction = self.transaction
        if transaction is None or not transaction.rcpt_tos:
            self.reply(503 if transaction is None else 554, "5.5.1 No valid recipients")
            return
        if self.chunked:
            self.reply(503, "5.5.1 DATA after BDAT")
            return
        self.reply(354, "End data with <CR><LF>.<CR><LF>")
        self.finish(self.read_data())

    def read_data(self) -> bytearray | None:
        """The message after DATA, dots unstuffed; ``None`` if it exceeds the size limit."""
        data: bytearray | None = bytearray()
        at_line_start = True
        limit = self.capture.size_limit
        while True:
            piece = self.wire.readline(_DATA_PIECE)
            if at_line_start:
                if piece == b".\r\n":
                    return data
                if piece.startswith(b"."):
                    piece = piece[1:]
            at_line_start = piece.endswith(b"\n")
            if data is not None:
                data += piece
                if len(data) > limit:
                    data = None

    def do_bdat(self, argument: str) -> None:
        size, _, last = argument.partition(" ")
        if not (size.isascii() and size.isdigit()) or last.upper() not in ("", "LAST"):
            self.reply(501, "5.5.4 Syntax: BDAT size [LAST]")
            raise _Disconnect  # the chunk's length is unknown: the stream cannot be followed
        failure = self.cue("BDAT")
        transaction = self.transaction
        usable = transaction is not None and transaction.rcpt_tos and failure is None
        if (
            usable
            and self.chunks is not None
            and len(self.chunks) + int(size) > (self.capture.size_limit)
        ):
            self.chunks = None
        self.wire.read_into(int(size), self.chunks if usable else None)
        self.chunked = True
        if transaction is None or not transaction.rcpt_tos:
            self.reply(503, "5.5.1 No valid recipients")
        elif failure is not None:
            self.reset()  # RFC 3030: a failed chunk ends the transaction
            self.reply(*failure)
        elif last:
            transaction.chunked = True
            self.finish(self.chunks)
        else:
            self.reply(250, f"2.0.0 {size} octets received")

    def finish(self, data: bytearray | None) -> None:
        """The end of a message: capture it and reply (once per recipient for LMTP)."""
        transaction = self.transaction
        assert transaction is not None
        self.reset()
        failure = self.cue("body")
        if data is None:
            failure = (552, "5.3.4 Message size exceeds fixed limit")
        transaction.data = bytes(data or b"")
        if not self.capture.lmtp:
            if failure is None:
                number = self.capture._add(transaction)
                failure = (250, f"2.0.0 Ok: queued as {number}")
            self.reply(*failure)
            return
        recipients = transaction.rcpt_tos
        replies = [
            failure or self.capture.lmtp_failures.get(recipient) or (250, "2.0.0 Delivered")
            for recipient in recipients
        ]
        delivered = [i for i, (code, _) in enumerate(replies) if 200 <= code < 300]
        if delivered:
            transaction.rcpt_tos = [recipients[i] for i in delivered]
            transaction.rcpt_options = [transaction.rcpt_options[i] for i in delivered]
            self.capture._add(transaction)
        for recipient, (code, text) in zip(recipients, replies, strict=True):
            self.reply(code, f"{text} <{recipient}>")

    def do_rset(self, argument: str) -> None:
        self.reset()
        self.reply(250, "2.0.0 Ok")

    def do_noop(self, argument: str) -> None:
        self.reply(250, "2.0.0 Ok")

    def do_vrfy(self, argument: str) -> None:
        self.reply(252, "2.5.0 Cannot VRFY user, but will accept the message")

    def do_quit(self, argument: str) -> None:
        self.wire.send("221 2.0.0 Bye")
        raise _Disconnect


class _Cancelled(Exception):
    """The client cancelled an AUTH exchange with ``*``."""


class _Handler(socketserver.BaseRequestHandler):
    server: Any  # one of the _Server classes, with ``capture`` set

    def handle(self) -> None:
        capture: CaptureServer = self.server.capture
        if capture.unix_path is None:
            # Replies go out one write each: without this, Nagle's algorithm holds a reply
            # back until the client's delayed ACK of the previous one (some 40 ms).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = _Wire(self.request)
        with capture._tracking(wire):
            with contextlib.suppress(_Disconnect, OSError):
                _Session(capture, wire).run()
            with contextlib.suppress(OSError):
                wire.sock.close()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    capture: CaptureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are the client's business: no tracebacks on stderr."""


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    capture: CaptureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are the client's business: no tracebacks on stderr."""


class CaptureServer:
    """A capturing SMTP (or LMTP) server on 127.0.0.1 or a Unix socket, run in threads.

    Start it with ``with`` (or ``start()``/``stop()``); it listens from construction on, so
    ``host`` and ``port`` are known at once.  Everything is optional:

    - ``port``: 0 (the default) picks a free port; ``unix_path`` listens on that Unix
      socket instead of TCP.
    - ``lmtp``: speak LMTP (LHLO; after the message, one reply per accepted recipient,
      ``lmtp_failures`` giving the failing ones).
    - ``size_limit``: advertised with SIZE and enforced (at MAIL, and on the data).
    - ``tls_context``: a server-side ``ssl.SSLContext``; offers STARTTLS.
    - ``credentials``: user -> password; offers AUTH PLAIN and LOGIN.
    - ``refuse``: recipient -> reply given to its RCPT, e.g. ``(550, "5.1.1 No such user")``.
    - ``fail``: step -> reply given there instead of the normal one.  A step is a command
      verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"BDAT"``, ``"EHLO"``, ``"AUTH"``...),
      ``"connect"`` (the greeting) or ``"body"`` (the end of a message).  A 421 reply also
      closes the connection.
    - ``drop_at``: a step at which the server closes the connection without replying.

    ``messages`` holds what was accepted; ``wait_for_messages(n)`` waits for deliveries
    made by other threads or processes.  It is safe to use from any thread.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        unix_path: str | os.PathLike[str] | None = None,
        lmtp: bool = False,
        hostname: str = "capture.local",
        size_limit: int = 10 << 20,
        tls_context: ssl.SSLContext | None = None,
        credentials: Mapping[str, str] | None = None,
        refuse: Mapping[str, Reply] | None = None,
        fail: Mapping[str, Reply] | None = None,
        drop_at: str | None = None,
        lmtp_failures: Mapping[str, Reply] | None = None,
    ) -> None:
        self.lmtp = lmtp
        self.hostname = hostname
        self.size_limit = size_limit
        self.tls_context = tls_context
        self.credentials = credentials
        self.refuse: Mapping[str, Reply] = refuse or {}
        self.fail: Mapping[str, Reply] = fail or {}
        self.drop_at = drop_at
        self.lmtp_failures: Mapping[str, Reply] = lmtp_failures or {}
        self.unix_path = None if unix_path is None else os.fspath(unix_path)
        self._messages: list[CapturedMessage] = []
        self._changed = threading.Condition()
        self._wires: set[_Wire] = set()
        self._server: _TCPServer | _UnixServer
        if self.unix_path is not None:
            self._server = _UnixServer(self.unix_path, _Handler)
        else:
            self._server = _TCPServer(("127.0.0.1", port), _Handler)
        self._server.capture = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="capture-server", daemon=True
        )  # a short poll interval: stop() returns quickly

    @property
    def host(self) -> str:
        """The address it listens on (127.0.0.1), or the Unix socket's path."""
        return "127.0.0.1" if self.unix_path is None else self.unix_path

    @property
    def port(self) -> int:
        """The TCP port it listens on (0 for a Unix socket)."""
        address = self._server.server_address
        return address[1] if isinstance(address, tuple) else 0

    @property
    def messages(self) -> list[CapturedMessage]:
        """The messages accepted so far, oldest first (a copy)."""
        with self._changed:
            return list(self._messages)

    def _add(self, message: CapturedMessage) -> int:
        """Record an accepted message; returns how many there are now."""
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()
            return len(self._messages)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Wait until at least ``count`` messages were accepted; return them all.

        Raises ``TimeoutError`` after ``timeout`` seconds without them.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages after {timeout}s")
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages accepted so far."""
        with self._changed:
            self._messages.clear()

    @contextlib.contextmanager
    def _tracking(self, wire: _Wire) -> Iterator[None]:
        """Keep a live connection known, so ``stop()`` can end it."""
        with self._changed:
            self._wires.add(wire)
        try:
            yield
        finally:
            with self._changed:
                self._wires.discard(wire)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, end the open connections and wait for the threads."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._changed:
            wires = list(self._wires)
        for wire in wires:
            with contextlib.suppress(OSError):
                wire.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)

    def __enter__(self) -> CaptureServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
