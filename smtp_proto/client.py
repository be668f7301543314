"""``Client``: the ``smtplib`` semantics, written once, as I/O-free operations.

Every method that talks to the server returns an *operation*: a generator that yields I/O
requests and receives their results.  A transport drives it with one small loop::

    op = client.ehlo()
    result = None
    try:
        while True:
            request = op.send(result)
            if isinstance(request, bytes | memoryview): sock.sendall(request); result = None
            elif request is RECEIVE:        result = sock.recv(65536)   # b"" at EOF
            elif request is START_TLS:      sock = wrap(sock); result = None
            elif request is CLOSE:          sock.close(); result = None
            elif request is LOCAL_HOSTNAME: result = socket.getfqdn()
    except StopIteration as done:
        return done.value

An ``OSError`` raised by the transport while performing a request is thrown into the
operation (``op.throw(exc)``), which closes the connection and raises what ``smtplib`` raises.
The transports therefore hold no protocol logic: only connect, TLS, timeouts and this loop.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import email.message
import inspect
import logging
import os
import re
import sys
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from . import sasl
from .attributes import SMTPAttributes
from .body import CHUNK_SIZE, BodyEncoder, normalised_size
from .commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
)
from .connection import _CLOSED, NEED_DATA, ClientConnection, ConnectionClosed
from .errors import (
    MalformedGreeting,
    ProtocolError,
    RemoteProtocolError,
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPMessageTooLarge,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .extensions import parse_ehlo
from .message import prepare_message
from .replies import Reply

__all__ = [
    "CLOSE",
    "Call",
    "END_OF_BODY",
    "LOCAL_HOSTNAME",
    "RECEIVE",
    "START_TLS",
    "Client",
    "IORequest",
    "Message",
    "NextChunk",
    "Operation",
    "Readable",
    "Request",
    "TransactionReplies",
]

logger = logging.getLogger("smtp_proto")

#: ``smtplib`` gives up on an AUTH exchange after this many 334 challenges.
MAX_AUTH_CHALLENGES = 5


class Request:
    """An I/O request an operation yields (besides the data to send, ``bytes`` or a
    ``memoryview``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Read some bytes from the server and send them into the operation (``b""`` at EOF).
RECEIVE: Final = Request("RECEIVE")
#: Wrap the connection in TLS now (the server said 220 to STARTTLS); send ``None``.
START_TLS: Final = Request("START_TLS")
#: Close the connection; send ``None``.
CLOSE: Final = Request("CLOSE")
#: Send the local host's name (``socket.getfqdn()``, off the event loop) into the operation.
LOCAL_HOSTNAME: Final = Request("LOCAL_HOSTNAME")

#: What a driver sends into the operation when an async body has no more chunks.
END_OF_BODY: Final = Request("END_OF_BODY")


class NextChunk(Request):
    """Await the next chunk of an async message body and send it into the operation.

    The core cannot await, so a body given as an async iterable is pulled by the driver:
    ``await anext(request.source, END_OF_BODY)``.  An exception the source raises is thrown
    into the operation (as the iterable's own exception, not an I/O error).  Bodies from
    ``bytes``, files and plain iterables are read by the operation itself.
    """

    __slots__ = ("source",)

    def __init__(self, source: AsyncIterator[Any]) -> None:
        super().__init__("NEXT_CHUNK")
        self.source = source


class Call(Request):
    """Call a public method of the adapter object that a subclass or a mock replaced, and
    send its result into the operation (awaited first when it is awaitable).

    Whatever the method raises is thrown into the operation, where ``smtplib``'s own handling
    applies (``login`` catching ``SMTPAuthenticationError`` from ``auth``, say).
    """

    __slots__ = ("args", "kwargs", "method")

    def __init__(
        self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        super().__init__("CALL")
        self.method = method
        self.args = args
        self.kwargs = kwargs


def _nothing_overridden(name: str) -> None:
    """The ``overrides`` of a ``Client`` on its own: no public method to replace."""


#: The methods through which ``smtplib`` writes commands and reads replies.
_WIRE_METHODS = ("send", "putcmd", "getreply", "docmd")
#: The methods ``smtplib``'s ``sendmail`` calls (directly or through the ones it calls).
_TRANSACTION_METHODS = ("mail", "rcpt", "data", "rset", *_WIRE_METHODS)


def _is_utf8(encoding: str) -> bool:
    """Whether ``command_encoding`` names UTF-8 (``SMTPUTF8`` mode)."""
    return encoding != "ascii" and encoding.lower().replace("_", "-") in ("utf-8", "utf8")


IORequest = bytes | memoryview | Request
T = TypeVar("T")
#: What every server-facing method of ``Client`` returns; see the module docstring.
Operation = Generator[IORequest, Any, T]
Recipients = str | Sequence[str]


@runtime_checkable
class Readable(Protocol):
    """A binary file object: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int, /) -> bytes: ...


#: A message body: ``str`` (ASCII), ``bytes``, a binary file object (read from its position
#: on) or an iterable of ``bytes`` chunks, sync or async (async ones with the async adapters);
#: the streamed ones are read a chunk at a time.
Message = bytes | str | Readable | Iterable[bytes] | AsyncIterable[bytes]
_Source = bytes | Readable | Iterable[bytes] | AsyncIterable[bytes]

_BARE_LINE_END = re.compile(r"\r\n|\n|\r")
#: What an LMTP recipient the server never answered gets in the refused dict (``smtplib``
#: uses -1 for a reply it could not read).
_UNANSWERED = (-1, b"Connection unexpectedly closed before the server answered")
#: How many BDAT chunks may await their replies at once while a large message streams.
BDAT_WINDOW = 16


def _binary_body(options: Sequence[str]) -> bool:
    """Whether MAIL declares ``BODY=BINARYMIME`` (RFC 3030): the body then goes by BDAT only,
    byte for byte."""
    return any(option.upper() == "BODY=BINARYMIME" for option in options)


_Chunk = TypeVar("_Chunk", bound=bytes | memoryview)


class _Verbatim:
    """The BINARYMIME "encoder": the body is sent exactly as given."""

    __slots__ = ()

    def encode(self, chunk: _Chunk) -> _Chunk:
        return chunk

    def finish(self) -> bytes:
        return b""


def _bdat_encoder(binary: bool) -> _Verbatim | BodyEncoder:
    """The encoder of a BDAT body: line ends normalised, no dot-stuffing (BDAT counts
    bytes), or nothing changed at all for BINARYMIME."""
    return _Verbatim() if binary else BodyEncoder(stuff_dots=False)


@dataclass(frozen=True)
class TransactionReplies:
    """The replies of one transaction: to each RCPT (by recipient) and to the body (one under
    the key ``""``, or one per recipient for LMTP)."""

    rcpt: dict[str, Reply]
    body: dict[str, Reply]


def fix_line_ends(text: str) -> str:
    """CRLF for every line end of a ``str`` message, as ``smtplib`` does before encoding."""
    return _BARE_LINE_END.sub("\r\n", text)


class Client(SMTPAttributes):
    """The state and operations of an ``smtplib.SMTP`` object, without any I/O.

    The methods have ``smtplib``'s names, arguments, results and exceptions, but return
    operations for a transport to drive.  ``smtplib``'s attributes (``helo_resp``,
    ``esmtp_features``, ``debuglevel``, ...) live on ``owner``: the adapter's ``SMTP`` object,
    or the ``Client`` itself when it is used on its own.

    The operations call each other as ``smtplib``'s methods do (``sendmail`` through
    ``ehlo_or_helo_if_needed``, ``mail``, ``rcpt`` and ``data``, ``login`` through ``auth``,
    every command through ``putcmd``, ``getreply`` and ``send``), so that a subclass or a mock
    of the adapter's public method is honoured: ``overrides(name)`` returns the replaced
    method, which the operation then calls (a ``Call`` request), or ``None``, and the core's
    own operation runs inline.  With nothing replaced, ``sendmail`` takes the pipelined path.
    """

    def __init__(
        self,
        local_hostname: str | None = None,
        *,
        lmtp: bool = False,
        owner: SMTPAttributes | None = None,
        overrides: Callable[[str], Callable[..., Any] | None] | None = None,
    ) -> None:
        SMTPAttributes.__init__(self)
        #: The object holding ``smtplib``'s attributes: an adapter's ``SMTP``, or this one.
        self.owner: Any = self if owner is None else owner
        if owner is None:
            self._local_hostname = local_hostname
            if lmtp:
                self.ehlo_msg = "lhlo"
        self.lmtp = lmtp
        #: The replies of the last ``sendmail``/``transaction``, as ``Reply`` objects.
        self.last_replies = TransactionReplies({}, {})
        self._override = overrides or _nothing_overridden
        self._connection: ClientConnection | None = None

    @property
    def local_hostname(self) -> str | None:
        """The name sent with HELO/EHLO (looked up through ``LOCAL_HOSTNAME`` when ``None``)."""
        return self._local_hostname

    @local_hostname.setter
    def local_hostname(self, value: str | None) -> None:
        self._local_hostname = value

    # ------------------------------------------------------------------ lifecycle

    @property
    def connection(self) -> ClientConnection:
        """The protocol state machine of the open connection."""
        if self._connection is None or self._connection.state is _CLOSED:
            raise SMTPServerDisconnected("please run connect() first")
        return self._connection

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open."""
        return self._connection is not None and self._connection.state is not _CLOSED

    def connecting(self, host: str, port: int, source_address: object = None) -> None:
        """A transport is about to connect: start fresh state (and say so at debug level)."""
        if self.owner.debuglevel > 0:
            self.print_debug("connect: to", (host, port), source_address)
        self._connection = ClientConnection(lmtp=self.lmtp)
        self._forget_session()
        self.owner.command_encoding = "ascii"

    def _forget_session(self) -> None:
        """Forget what HELO/EHLO learned (after STARTTLS, QUIT, or a new connection)."""
        owner = self.owner
        owner.helo_resp = owner.ehlo_resp = None
        owner.esmtp_features = {}
        owner.does_esmtp = False

    def close(self) -> None:
        """The transport closed the connection; the object may connect again."""
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def greeting(self) -> Operation[tuple[int, bytes]]:
        """Read the server's banner after connecting, as ``smtplib.SMTP.connect`` does.

        A banner that is no reply at all (``199 hi``, garbage) raises ``MalformedGreeting``,
        an ``SMTPConnectError`` as ``smtplib.SMTP(host)`` raises, and closes the connection.
        """
        try:
            reply = yield from self._read_reply()
        except RemoteProtocolError as exc:
            if not exc.line:
                raise  # a reply, but too long or too large
            raise MalformedGreeting(exc.line) from exc
        if self.owner.debuglevel > 0:
            self.print_debug("connect:", repr(reply.text))
        return reply.as_tuple()

    # ------------------------------------------------------------------ transcript

    def print_debug(self, *args: object) -> None:
        """Print a debug line to stderr as ``smtplib`` does (with a timestamp at level 2)."""
        if self.owner.debuglevel > 1:
            print(datetime.datetime.now().time(), *args, file=sys.stderr)
        else:
            print(*args, file=sys.stderr)

    def _trace_reply(self, reply: Reply) -> None:
        """Print (debuglevel) and log one reply."""
        if self.owner.debuglevel > 0:
            for raw_line in reply.raw.splitlines(keepends=True):
                self.print_debug("reply:", repr(raw_line))
            self.print_debug(f"reply: retcode ({reply.code}); Msg: {reply.text!a}")
        logger.debug("reply: %d %r", reply.code, reply.text)

    # ------------------------------------------------------------------ the call graph

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Operation[Any]:
        """The public method ``name``: the replacement a subclass or a mock made of it on the
        adapter object, else the core's own operation, run inline."""
        method = self._override(name)
        if method is None:
            return (yield from getattr(self, name)(*args, **kwargs))
        return (yield Call(method, args, kwargs))

    def _wire_hooked(self) -> bool:
        """Whether ``send``, ``putcmd``, ``getreply`` or ``docmd`` was replaced: then every
        command goes through them, one at a time, as ``smtplib``'s do."""
        override = self._override
        return override is not _nothing_overridden and any(
            override(name) is not None for name in _WIRE_METHODS
        )

    # ------------------------------------------------------------------ I/O primitives

    def _abort(self) -> Generator[IORequest, Any, None]:
        """Close the transport (which sees the connection still open, as a subclass's
        ``close()`` does in ``smtplib``), and forget the connection."""
        try:
            yield CLOSE
        finally:
            self.close()

    def _encode(self, *commands: Command) -> bytes:
        """The bytes of one command, or of a pipelined group of them; traced and logged."""
        connection = self.connection
        connection.utf8 = _is_utf8(self.owner.command_encoding)
        if len(commands) == 1:
            data = connection.send(commands[0])
        else:
            data = connection.send_many(commands)
        debuglevel = self.owner.debuglevel
        if debuglevel > 0 or logger.isEnabledFor(logging.DEBUG):
            for command in commands:
                line = _redacted_line(command)
                if debuglevel > 0:
                    self.print_debug("send:", repr(line + "\r\n"))
                logger.debug("send: %r", line)
        return data

    def _write(self, data: bytes | memoryview | str) -> Generator[IORequest, Any, None]:
        """Write ``data`` through the adapter's ``send`` when it was replaced (a command line
        as ``str``, as ``smtplib`` passes it; message data as bytes), else directly.  A
        failure closes the connection: ``SMTPServerDisconnected``."""
        send = self._override("send")
        try:
            if send is not None:
                yield Call(send, (data,), {})
            elif isinstance(data, str):
                yield data.encode(self.owner.command_encoding)
            else:
                yield data
        except OSError:
            yield from self._abort()
            raise SMTPServerDisconnected("Server not connected") from None

    def _exchange(
        self, data: bytes | memoryview, count: int, partial_at_eof: bool = False
    ) -> Generator[IORequest, Any, list[Reply]]:
        """Write ``data`` (if any), then read ``count`` replies.

        Fewer replies come back when the server closes with a 421 after one of them, or, with
        ``partial_at_eof``, when it hangs up after at least one.  EOF, I/O errors, protocol
        errors and 421 close the connection; the errors raise what ``smtplib`` raises.
        """
        if data:
            yield from self._write(data)
        connection = self.connection
        replies: list[Reply] = []
        tracing = self.owner.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)
        try:
            while len(replies) < count:
                event = connection.next_event()
                if event is NEED_DATA:
                    try:
                        received = yield RECEIVE
                    except OSError as exc:
                        yield from self._abort()
                        raise SMTPServerDisconnected(
                            f"Connection unexpectedly closed: {exc}"
                        ) from exc
                    connection.receive_data(received)
                    continue
                if event.__class__ is ConnectionClosed:
                    yield from self._abort()
                    if partial_at_eof and replies:
                        return replies
                    raise SMTPServerDisconnected("Connection unexpectedly closed")
                assert isinstance(event, Reply)
                if tracing:
                    self._trace_reply(event)
                replies.append(event)
                if connection.state is _CLOSED:
                    break
        except ProtocolError:
            yield from self._abort()
            raise
        if connection.state is _CLOSED:
            yield from self._abort()  # 421 or the reply to QUIT: the server is going away
        return replies

    def _read_reply(self) -> Generator[IORequest, Any, Reply]:
        """Read one reply: through the adapter's ``getreply`` when it was replaced."""
        if self._override("getreply") is None:
            return (yield from self._exchange(b"", 1))[0]
        code, text = yield from self._call("getreply")
        return _as_reply(code, text)

    def _command(
        self, command: Command, *, docmd: bool = False
    ) -> Generator[IORequest, Any, Reply]:
        """Send one command and read its reply.

        When a wire method was replaced, the command goes as ``smtplib`` sends it: through
        ``docmd`` (if ``smtplib`` uses it for this command, flagged by ``docmd``) or else
        ``putcmd``, each as replaced, else written through ``send``; the reply is read
        through ``getreply``.
        """
        if not self._wire_hooked():
            return (yield from self._exchange(self._encode(command), 1))[0]
        verb, _, args = command.line().partition(" ")
        if docmd and self._override("docmd") is not None:
            code, text = yield from self._call("docmd", *((verb, args) if args else (verb,)))
            return _as_reply(code, text)
        if self._override("putcmd") is not None:
            # smtplib passes the (maybe empty) arguments, but for DATA's bare putcmd("data")
            yield from self._call(
                "putcmd", *((verb,) if command.__class__ is Data else (verb, args))
            )
        else:
            yield from self._write(self._encode(command).decode(self.owner.command_encoding))
        return (yield from self._read_reply())

    # ------------------------------------------------------------------ low-level smtplib API

    def send(self, data: bytes | str, *, raw: bool = True) -> Operation[None]:
        """Write ``data`` as it is (``smtplib.SMTP.send``; a ``str`` in ``command_encoding``).

        ``raw``: the caller's own bytes (not the write of an operation, which the adapter's
        ``send`` performs with ``raw=False``); they bypass the protocol state machine, which
        from then on accepts replies it cannot match to a command (``getreply`` reads them).
        """
        if isinstance(data, str):
            data = data.encode(self.owner.command_encoding)
        connection = self.connection
        if raw:
            connection.sent_raw()
        try:
            yield data
        except OSError:
            yield from self._abort()
            raise SMTPServerDisconnected("Server not connected") from None

    def putcmd(self, cmd: str, args: str = "") -> Operation[None]:
        """Send one command line without reading its reply (``smtplib.SMTP.putcmd``)."""
        data = self._encode(Raw(cmd, args))
        if self._override("send") is None:
            yield from self._exchange(data, 0)
        else:
            yield from self._write(data.decode(self.owner.command_encoding))

    def getreply(self) -> Operation[tuple[int, bytes]]:
        """Read one reply (``smtplib.SMTP.getreply``)."""
        return (yield from self._exchange(b"", 1))[0].as_tuple()

    def docmd(self, cmd: str, args: str = "") -> Operation[tuple[int, bytes]]:
        """Send any command and return its reply."""
        return (yield from self._command(Raw(cmd, args))).as_tuple()

    # ------------------------------------------------------------------ greetings

    def _hostname(self) -> Generator[IORequest, Any, str]:
        owner = self.owner
        if owner._local_hostname is None:
            owner._local_hostname = yield LOCAL_HOSTNAME
        name: str = owner._local_hostname
        return name

    def helo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        """HELO; the reply text is kept in ``helo_resp``."""
        name = name or (yield from self._hostname())
        reply = yield from self._command(Helo(name))
        self.owner.helo_resp = reply.text
        return reply.as_tuple()

    def ehlo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        """EHLO (LHLO for LMTP); on 250 fills ``esmtp_features`` and sets ``does_esmtp``."""
        owner = self.owner
        owner.esmtp_features = {}
        name = name or (yield from self._hostname())
        verb = owner.ehlo_msg
        greeting = Lhlo(name) if verb == "lhlo" else Ehlo(name, verb)
        reply = yield from self._command(greeting)
        owner.ehlo_resp = reply.text
        if reply.code == 250:
            owner.does_esmtp = True
            owner.esmtp_features = parse_ehlo(reply.text)
        return reply.as_tuple()

    def ehlo_or_helo_if_needed(self) -> Operation[None]:
        """EHLO, falling back to HELO, unless one of them was done already."""
        owner = self.owner
        if owner.helo_resp is None and owner.ehlo_resp is None:
            code, _ = yield from self._call("ehlo")
            if not 200 <= code <= 299:
                code, text = yield from self._call("helo")
                if not 200 <= code <= 299:
                    raise SMTPHeloError(code, text)

    def _greeted(self) -> Operation[None]:
        """``ehlo_or_helo_if_needed`` as ``smtplib``'s methods call it (a replacement is
        always called), without an operation when nothing is to be done."""
        if self._override("ehlo_or_helo_if_needed") is not None:
            yield from self._call("ehlo_or_helo_if_needed")
        elif self.owner.helo_resp is None and self.owner.ehlo_resp is None:
            yield from self.ehlo_or_helo_if_needed()

    # ------------------------------------------------------------------ simple commands

    def rset(self) -> Operation[tuple[int, bytes]]:
        """RSET; also returns command encoding to ASCII."""
        self.owner.command_encoding = "ascii"
        return (yield from self._command(Rset(), docmd=True)).as_tuple()

    def _rset(self) -> Operation[None]:
        """RSET, ignoring a closed connection (as after a refusal in ``sendmail``)."""
        with contextlib.suppress(SMTPServerDisconnected):
            yield from self._call("rset")

    def noop(self) -> Operation[tuple[int, bytes]]:
        """NOOP."""
        return (yield from self._command(Noop(), docmd=True)).as_tuple()

    def verify(self, address: str) -> Operation[tuple[int, bytes]]:
        """VRFY with the bare address."""
        return (yield from self._command(Vrfy(address))).as_tuple()

    vrfy = verify

    def expn(self, address: str) -> Operation[tuple[int, bytes]]:
        """EXPN with the bare address."""
        return (yield from self._command(Expn(address))).as_tuple()

    def help(self, args: str = "") -> Operation[bytes]:
        """HELP; returns only the reply text, as ``smtplib`` does."""
        return (yield from self._command(Help(args))).text

    def quit(self) -> Operation[tuple[int, bytes]]:
        """QUIT, then close; forgets what EHLO/HELO learned."""
        try:
            reply = yield from self._command(Quit(), docmd=True)  # its reply closes
        finally:
            self._forget_session()
        if self.is_connected:
            yield from self._abort()
        return reply.as_tuple()

    def exit(self) -> Operation[None]:
        """What leaving a ``with`` block does: QUIT, where a closed connection is fine.

        The transport closes its socket afterwards whatever happened.
        """
        try:
            reply = yield from self._command(Raw("QUIT"), docmd=True)  # its reply closes
        except SMTPServerDisconnected:
            return
        if reply.code != 221:
            raise SMTPResponseException(reply.code, reply.text)

    # ------------------------------------------------------------------ mail transaction

    def _mail_command(self, sender: str, options: Sequence[str]) -> Mail:
        owner = self.owner
        if not (options and owner.does_esmtp):
            return Mail(sender)
        if any(option.lower() == "smtputf8" for option in options):
            if not owner.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            owner.command_encoding = "utf-8"
        return Mail(sender, tuple(options))

    def _rcpt_command(self, recipient: str, options: Sequence[str]) -> Rcpt:
        return Rcpt(recipient, tuple(options) if options and self.owner.does_esmtp else ())

    def mail(self, sender: str, options: Sequence[str] = ()) -> Operation[tuple[int, bytes]]:
        """MAIL FROM; an ``SMTPUTF8`` option switches commands to UTF-8 (server permitting)."""
        return (yield from self._command(self._mail_command(sender, options))).as_tuple()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> Operation[tuple[int, bytes]]:
        """RCPT TO."""
        return (yield from self._command(self._rcpt_command(recip, options))).as_tuple()

    def data(self, msg: Message) -> Operation[tuple[int, bytes]]:
        """DATA, then the message with line endings fixed and dots stuffed.

        ``msg`` may be a binary file object (read from its position on) or an iterable of
        ``bytes`` chunks too: it is then streamed, ``CHUNK_SIZE`` bytes at a time, and must not
        be used meanwhile.  Its first chunk is read before DATA, so a source that cannot be
        read leaves the connection usable; one that fails later closes it (a truncated message
        is never ended).  The operation reads a sync source itself (with the asyncio and trio
        adapters, on the event loop); an async iterable or async file object is pulled by the
        async driver, one ``NextChunk`` request per chunk.

        Raises ``SMTPDataError`` unless DATA gets 354; returns the reply to the body.  For LMTP
        that is the first refusal among the per-recipient replies (all are kept in
        ``lmtp_replies``), or the last acceptance.
        """
        pieces = _Pieces(_source(msg))
        yield from pieces.start()
        return (yield from self._data(pieces))

    def _data(self, pieces: _Pieces) -> Generator[IORequest, Any, tuple[int, bytes]]:
        """DATA, then the body if the server says 354."""
        reply = yield from self._command(Data())
        if self.owner.debuglevel > 0:
            self.print_debug("data:", reply.as_tuple())
        if reply.code != 354:
            raise SMTPDataError(reply.code, reply.text)
        return (yield from self._send_body(pieces))

    def _send_body(self, pieces: _Pieces) -> Generator[IORequest, Any, tuple[int, bytes]]:
        """Send the body after a 354 and read its reply (one per recipient for LMTP)."""
        connection = self.connection
        try:
            last = False
            while not last:
                piece, last = yield from pieces.next()
                out = connection.send_data(piece)
                if not last:
                    yield from self._write_body(out)
        except Exception:
            yield from self._drop_unfinished_body()
            raise
        out += connection.end_data()  # the last piece goes out with the end of data
        if self.owner.debuglevel > 0:
            self.print_debug("send:", repr(out))
        return (yield from self._finish_body(out))

    def _drop_unfinished_body(self) -> Generator[IORequest, Any, None]:
        """Close the connection in the middle of a body: ending it would deliver it truncated."""
        if self.is_connected:
            yield from self._abort()

    def _write_body(self, data: bytes) -> Generator[IORequest, Any, None]:
        """Send part of a message body, traced at debug level."""
        if self.owner.debuglevel > 0:
            self.print_debug("send:", repr(data))
        yield from self._exchange(data, 0)

    def _finish_body(self, data: bytes) -> Generator[IORequest, Any, tuple[int, bytes]]:
        """Send the end of a body and read the reply to it: one, or one per LMTP recipient.

        For LMTP the per-recipient replies go to ``lmtp_replies`` and the result is the first
        refusal, else the last acceptance; a recipient never answered counts as refused.
        """
        if not self.lmtp:
            if self._override("getreply") is None:
                reply = (yield from self._exchange(data, 1))[0]
            else:
                yield from self._exchange(data, 0)
                reply = yield from self._read_reply()
            self.last_replies = TransactionReplies(self.last_replies.rcpt, {"": reply})
            result = reply.as_tuple()
        else:
            expected = self.connection.accepted_recipients or (None,)
            replies = yield from self._exchange(data, len(expected), partial_at_eof=True)
            unanswered = replies[-1].as_tuple() if replies[-1].code == 421 else _UNANSWERED
            answers = [reply.as_tuple() for reply in replies]
            answers += [unanswered] * (len(expected) - len(answers))
            self.owner.lmtp_replies = {
                recipient: answer
                for recipient, answer in zip(expected, answers, strict=True)
                if recipient is not None
            }
            final = {
                recipient or "": Reply(code, (text,)) if index >= len(replies) else replies[index]
                for index, (recipient, (code, text)) in enumerate(
                    zip(expected, answers, strict=True)
                )
            }
            self.last_replies = TransactionReplies(self.last_replies.rcpt, final)
            refusals = [answer for answer in answers if not 200 <= answer[0] < 300]
            result = refusals[0] if refusals else answers[-1]
        if self.owner.debuglevel > 0:
            self.print_debug("data:", result)
        return result

    def sendmail(
        self,
        from_addr: str,
        to_addrs: Recipients,
        msg: Message,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> Operation[dict[str, tuple[int, bytes]]]:
        """A whole transaction: MAIL, RCPT for each recipient, DATA and the body.

        Returns the refused recipients (address -> (code, text)); raises
        ``SMTPSenderRefused``, ``SMTPRecipientsRefused`` (every recipient refused) or
        ``SMTPDataError`` exactly as ``smtplib`` does.  When the server advertises PIPELINING,
        MAIL, the RCPTs and DATA go out in one write (RFC 2920) with the same results.
        For LMTP, recipients refused after the body are reported too.

        ``msg`` may be streamed from a binary file object or an iterable of chunks, as for
        ``data``.  MAIL carries ``SIZE=`` when the size is known up front: always for ``str``
        and ``bytes``, for a file object that can seek (the bytes from its position on), never
        for an iterable.  A message known to be larger than the server's SIZE limit raises
        ``SMTPMessageTooLarge`` (an ``SMTPSenderRefused`` with code 552, what the server would
        answer) before anything is sent.

        ``BODY=BINARYMIME`` in ``mail_options`` sends the body with BDAT (DATA cannot carry
        it), byte for byte: no line ending is changed.  ``SMTPNotSupportedError`` before
        anything is sent when the server does not advertise CHUNKING.
        """
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        return (
            yield from self.transaction(
                from_addr,
                [(recipient, rcpt_options) for recipient in recipients],
                msg,
                mail_options,
            )
        )

    def transaction(
        self,
        from_addr: str,
        recipients: Sequence[tuple[str, Sequence[str]]],
        msg: Message,
        mail_options: Sequence[str] = (),
    ) -> Operation[dict[str, tuple[int, bytes]]]:
        """``sendmail`` with RCPT options per recipient (``(address, options)`` pairs).

        The replies of the transaction are kept in ``last_replies`` (RCPT replies by
        recipient, and the final reply to the body, one per recipient for LMTP).
        """
        yield from self._greeted()
        owner = self.owner
        source = _source(msg)
        binary = _binary_body(mail_options)
        # Measured only for a server that takes SIZE: a file is sought, bytes are scanned.
        size = _size(source, binary) if owner.does_esmtp and owner.has_extn("size") else None
        extensions = self.connection.extensions
        if extensions.size and size is not None and size > extensions.size:
            raise SMTPMessageTooLarge(size, extensions.size, from_addr)
        if binary and not extensions.chunking:
            raise SMTPNotSupportedError(
                "BODY=BINARYMIME needs BDAT, but the server does not advertise CHUNKING"
            )
        if not owner.does_esmtp:
            options: Sequence[str] = ()
        elif size is not None:
            options = (f"size={size}", *mail_options)
        else:
            options = mail_options
        self.last_replies = TransactionReplies({}, {})
        if self._transaction_hooked():
            return (
                yield from self._sendmail_through_methods(from_addr, recipients, source, options)
            )
        mail = self._mail_command(from_addr, options)
        rcpts = [self._rcpt_command(recipient, rcpt_opts) for recipient, rcpt_opts in recipients]
        pieces = _Pieces(source)
        yield from pieces.start()
        if extensions.pipelining and recipients:
            if binary or (owner.chunking and extensions.chunking):
                return (yield from self._sendmail_bdat(mail, rcpts, pieces, binary))
            return (yield from self._sendmail_pipelined(mail, rcpts, pieces))
        return (yield from self._sendmail_lockstep(mail, rcpts, pieces, binary))

    def _transaction_hooked(self) -> bool:
        """Whether a method ``sendmail`` calls in ``smtplib`` was replaced."""
        override = self._override
        return override is not _nothing_overridden and any(
            override(name) is not None for name in _TRANSACTION_METHODS
        )

    def _sendmail_through_methods(
        self,
        from_addr: str,
        recipients: Sequence[tuple[str, Sequence[str]]],
        source: _Source,
        options: Sequence[str],
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """``smtplib``'s ``sendmail``, step by step through the adapter's ``mail``, ``rcpt``,
        ``data`` and ``rset`` (replaced or not), one command at a time."""
        code, text = yield from self._call("mail", from_addr, list(options))
        if code != 250:
            if code != 421:
                yield from self._rset()
            raise SMTPSenderRefused(code, text, from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for recipient, rcpt_options in recipients:
            code, text = yield from self._call("rcpt", recipient, rcpt_options)
            self.last_replies.rcpt[recipient] = _as_reply(code, text)
            if code not in (250, 251):
                refused[recipient] = (code, text)
            if code == 421:
                raise SMTPRecipientsRefused(refused)
        if len(refused) == len(recipients):
            yield from self._rset()
            raise SMTPRecipientsRefused(refused)
        if _binary_body(options):
            pieces = _Pieces(source)
            yield from pieces.start()
            code, text = yield from self._send_chunks(pieces, True)
        else:
            code, text = yield from self._call("data", source)
        return (yield from self._finish_transaction(code, text, refused, len(recipients)))

    def _refuse_sender(self, mail: Mail, reply: Reply) -> Operation[None]:
        """After a refused MAIL: close on 421, RSET otherwise, then raise."""
        if reply.code != 421:
            yield from self._rset()
        raise SMTPSenderRefused(reply.code, reply.text, mail.sender)

    def _sendmail_lockstep(
        self, mail: Mail, rcpts: list[Rcpt], pieces: _Pieces, binary: bool
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        utf8 = _is_utf8(self.owner.command_encoding)
        for command in (mail, *rcpts):
            command.encode(utf8)  # a refused RCPT (injection) refuses it all, unsent
        reply = yield from self._command(mail)
        if reply.code != 250:
            yield from self._refuse_sender(mail, reply)
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in rcpts:
            reply = yield from self._command(rcpt)
            self.last_replies.rcpt[rcpt.recipient] = reply
            if reply.code not in (250, 251):
                refused[rcpt.recipient] = reply.as_tuple()
            if reply.code == 421:
                raise SMTPRecipientsRefused(refused)
        if len(refused) == len(rcpts):
            yield from self._rset()
            raise SMTPRecipientsRefused(refused)
        if binary:
            code, text = yield from self._send_chunks(pieces, binary)
        else:
            code, text = yield from self._data(pieces)
        return (yield from self._finish_transaction(code, text, refused, len(rcpts)))

    def _envelope_replies(
        self, rcpts: list[Rcpt], replies: list[Reply]
    ) -> tuple[dict[str, tuple[int, bytes]], bool]:
        """The refused recipients among pipelined RCPT replies, and whether a 421 closed."""
        refused: dict[str, tuple[int, bytes]] = {}
        closed_at_rcpt = False
        for rcpt, reply in zip(rcpts, replies, strict=False):
            self.last_replies.rcpt[rcpt.recipient] = reply
            if reply.code not in (250, 251):
                refused[rcpt.recipient] = reply.as_tuple()
            closed_at_rcpt = reply.code == 421
        return refused, closed_at_rcpt

    def _sendmail_pipelined(
        self, mail: Mail, rcpts: list[Rcpt], pieces: _Pieces
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """MAIL, the RCPTs and DATA in one write (RFC 2920), then the body after a 354.

        Results and exceptions are those of the lock-step exchange.
        """
        expected = len(rcpts) + 2
        replies = yield from self._exchange(self._encode(mail, *rcpts, Data()), expected)
        mail_reply = replies[0]
        refused, closed_at_rcpt = self._envelope_replies(rcpts, replies[1:])
        proceed = mail_reply.code == 250 and not closed_at_rcpt and len(refused) < len(rcpts)
        data_reply = replies[-1] if len(replies) == expected else None
        if self.owner.debuglevel > 0 and data_reply is not None:
            self.print_debug("data:", data_reply.as_tuple())
        if not proceed:
            if data_reply is not None and data_reply.code == 354:
                # The server opened a body we must not send (RFC 2920 3.1): send it empty.
                yield from self._send_body(_Pieces(b""))
            yield from self._refuse_envelope(mail, mail_reply, refused, closed_at_rcpt)
        assert data_reply is not None
        if data_reply.code != 354:
            raise SMTPDataError(data_reply.code, data_reply.text)
        code, text = yield from self._send_body(pieces)
        if code == 250 and not self.lmtp:
            return refused
        return (yield from self._finish_transaction(code, text, refused, len(rcpts)))

    def _sendmail_bdat(
        self, mail: Mail, rcpts: list[Rcpt], pieces: _Pieces, binary: bool
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """MAIL and the RCPTs in one write (RFC 2920) with, for a message of one chunk, the
        whole body as ``BDAT n LAST`` (RFC 3030): one round trip.  A longer message streams
        as BDAT chunks once the envelope is accepted.

        Results and exceptions are those of the lock-step exchange with DATA.
        """
        piece, single = pieces.first
        if single:
            encoder = _bdat_encoder(binary)
            body, tail = encoder.encode(piece), encoder.finish()
            bdat = Bdat(len(body) + len(tail), last=True)
            first = b"".join((self._encode(mail, *rcpts, bdat), body, tail))
            if self.owner.debuglevel > 0:
                self.print_debug("send:", repr(bytes(body) + tail))
        else:
            first = self._encode(mail, *rcpts)
        replies = yield from self._exchange(first, len(rcpts) + 1)
        mail_reply = replies[0]
        refused, closed_at_rcpt = self._envelope_replies(rcpts, replies[1:])
        proceed = mail_reply.code == 250 and not closed_at_rcpt and len(refused) < len(rcpts)
        if not proceed:
            if single and self.is_connected:
                yield from self._finish_body(b"")  # the refused body's own reply
            yield from self._refuse_envelope(mail, mail_reply, refused, closed_at_rcpt)
        if single:
            code, text = yield from self._finish_body(b"")
        else:
            code, text = yield from self._send_chunks(pieces, binary)
        if code == 250 and not self.lmtp:
            return refused
        return (yield from self._finish_transaction(code, text, refused, len(rcpts)))

    def _refuse_envelope(
        self,
        mail: Mail,
        mail_reply: Reply,
        refused: dict[str, tuple[int, bytes]],
        closed_at_rcpt: bool,
    ) -> Operation[None]:
        """Raise what lock-step ``sendmail`` raises for a refused envelope (RSET as it does)."""
        if mail_reply.code != 250:
            yield from self._refuse_sender(mail, mail_reply)
        if not closed_at_rcpt:
            yield from self._rset()
        raise SMTPRecipientsRefused(refused)

    def _send_chunks(
        self, pieces: _Pieces, binary: bool
    ) -> Generator[IORequest, Any, tuple[int, bytes]]:
        """Send a message as BDAT chunks, up to ``BDAT_WINDOW`` of them unanswered when the
        server pipelines (one at a time otherwise); unchanged for BINARYMIME."""
        encoder = _bdat_encoder(binary)
        window = BDAT_WINDOW if self.connection.extensions.pipelining else 0
        unanswered = 0
        failure: Reply | None = None
        try:
            last = False
            while not last:
                piece, last = yield from pieces.next()
                out = encoder.encode(piece)
                if last or not out:
                    continue  # the last piece goes out with BDAT LAST
                if unanswered < window:
                    unanswered += 1
                    yield from self._write_chunk(out, last=False)
                    continue
                reply = (yield from self._write_chunk(out, last=False, replies=1))[0]
                if reply.code != 250:
                    failure = reply
                    break
        except Exception:
            yield from self._drop_unfinished_body()
            raise
        if failure is None:
            tail = encoder.finish()
            if tail:
                out = b"".join((out, tail))
            chunk_replies = yield from self._write_chunk(out, last=True, replies=unanswered)
            failure = next((reply for reply in chunk_replies if reply.code != 250), None)
            result = yield from self._finish_body(b"")
            if failure is None:
                return result
        else:
            yield from self._exchange(b"", unanswered)
        if failure.code != 421 and self.is_connected:
            yield from self._rset()
        raise SMTPDataError(failure.code, failure.text)

    def _write_chunk(
        self, data: bytes | memoryview, last: bool, replies: int = 0
    ) -> Generator[IORequest, Any, list[Reply]]:
        """Send one BDAT chunk, then read ``replies`` replies.

        The command and the data go out as two writes, so a large chunk (a ``memoryview`` of
        the caller's message) is never copied to join them.
        """
        if self.owner.debuglevel > 0:
            self.print_debug("send:", repr(bytes(data)))
        yield from self._exchange(self._encode(Bdat(len(data), last=last)), 0)
        return (yield from self._exchange(data, replies))

    def _finish_transaction(
        self, code: int, text: bytes, refused: dict[str, tuple[int, bytes]], total: int
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """Map the reply to the body onto ``sendmail``'s result (per recipient for LMTP)."""
        lmtp_replies = self.owner.lmtp_replies
        if self.lmtp and lmtp_replies:
            for recipient, (rcode, rtext) in lmtp_replies.items():
                if not 200 <= rcode < 300:
                    refused[recipient] = (rcode, rtext)
            if len(refused) >= total:
                raise SMTPRecipientsRefused(refused)
            return refused
        if code != 250:
            if code != 421:
                yield from self._rset()
            raise SMTPDataError(code, text)
        return refused

    def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: Recipients | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> Operation[dict[str, tuple[int, bytes]]]:
        """Send an ``email.message.Message`` with ``smtplib``'s header rules (Bcc never sent),
        through ``sendmail`` as ``smtplib`` does (positional arguments)."""
        yield from self._greeted()
        prepared = prepare_message(msg, from_addr, to_addrs, mail_options)
        if prepared.international and not self.owner.has_extn("smtputf8"):
            raise SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        refused: dict[str, tuple[int, bytes]] = yield from self._call(
            "sendmail",
            prepared.from_addr,
            prepared.to_addrs if to_addrs is None else to_addrs,  # as given, like smtplib
            prepared.data,
            prepared.mail_options if prepared.international else mail_options,
            rcpt_options,
        )
        return refused

    # ------------------------------------------------------------------ STARTTLS

    def starttls(self) -> Operation[tuple[int, bytes]]:
        """STARTTLS, the TLS handshake (by the transport), and forgetting what EHLO learned.

        The next command that needs it does EHLO again (RFC 3207).
        """
        yield from self._greeted()
        if not self.owner.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        reply = yield from self._command(StartTLS(), docmd=True)
        if reply.code != 220:
            raise SMTPResponseException(reply.code, reply.text)
        try:
            yield START_TLS
        except OSError:
            yield from self._abort()
            raise
        self.connection.tls_established()
        self._forget_session()
        return reply.as_tuple()

    # ------------------------------------------------------------------ AUTH

    def auth(
        self,
        mechanism: str,
        authobject: Any,
        *,
        initial_response_ok: bool = True,
    ) -> Operation[tuple[int, bytes]]:
        """AUTH with ``authobject``: an ``smtplib``-style callable or a ``sasl.Mechanism``.

        Returns the 235 (or 503, already authenticated) reply; raises
        ``SMTPAuthenticationError`` otherwise.
        """
        owner = self.owner
        if isinstance(authobject, sasl.Mechanism):
            mech = authobject
        else:
            mech = sasl.AuthObject(mechanism, authobject, initial_response_ok)
        initial = mech.initial_response() if initial_response_ok else None
        reply = yield from self._command(Auth(mech.name, initial), docmd=True)
        owner._auth_challenge_count = 0 if initial is None else 1
        while reply.code == 334:
            owner._auth_challenge_count += 1
            if owner._auth_challenge_count > MAX_AUTH_CHALLENGES:
                yield from self._cancel_auth()
                raise SMTPException(
                    f"Server AUTH mechanism infinite loop. Last response: {reply.as_tuple()!r}"
                )
            try:
                challenge = base64.b64decode(reply.text, validate=True)
            except binascii.Error:
                challenge = reply.text  # not base64: hand over the prompt as sent
            try:
                response = mech.respond(challenge)
            except sasl.SASLError as exc:
                cancel = yield from self._cancel_auth()
                raise SMTPAuthenticationError(cancel.code, cancel.text) from exc
            reply = yield from self._command(AuthResponse(response), docmd=True)
        if reply.code == 235:
            mech.verify_success()
            return reply.as_tuple()
        if reply.code == 503:
            return reply.as_tuple()
        raise SMTPAuthenticationError(reply.code, reply.text)

    def _cancel_auth(self) -> Generator[IORequest, Any, Reply]:
        """Cancel an AUTH exchange (``*``).  RFC 4954 has the server answer 501; one that
        sends yet another 334 ignores the cancellation, so the connection is closed."""
        reply = yield from self._command(AuthResponse(b"", cancel=True), docmd=True)
        if reply.code == 334:
            yield from self._abort()
        return reply

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> Operation[tuple[int, bytes]]:
        """Log in with the first of CRAM-MD5, PLAIN, LOGIN that the server offers.

        Like ``smtplib``, through ``auth`` with the ``auth_...`` authobject of each mechanism
        (a subclass's own ``auth`` or authobject is used; else this library's mechanism, which
        takes any Unicode text as UTF-8); the next mechanism is tried when one fails, and the
        last failure is raised (at once if the failure closed the connection, as a 421 does).
        """
        yield from self._greeted()
        owner = self.owner
        if not owner.has_extn("auth"):
            raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = owner.esmtp_features["auth"].upper().split()
        mechanisms = [name for name in sasl.PASSWORD_MECHANISMS if name in advertised]
        if not mechanisms:
            raise SMTPException("No suitable authentication method found.")
        owner.user, owner.password = user, password
        own_auth = self._override("auth") is None
        last_error: SMTPAuthenticationError | None = None
        for name in mechanisms:
            method_name = "auth_" + name.lower().replace("-", "_")
            authobject: Any = self._override(method_name)
            if authobject is None:
                authobject = (
                    sasl.mechanism_for(name, user, password)
                    if own_auth
                    else getattr(owner, method_name)
                )
            try:
                code, text = yield from self._call(
                    "auth", name, authobject, initial_response_ok=initial_response_ok
                )
            except SMTPAuthenticationError as exc:
                last_error = exc
                if not self.is_connected:
                    raise  # a 421, say: no other mechanism can be tried, and this says why
                continue
            if code in (235, 503):
                return code, text
            last_error = SMTPAuthenticationError(code, text)  # a replaced auth() returned it
        assert last_error is not None
        raise last_error


def _as_reply(code: int, text: bytes | str) -> Reply:
    """A reply that a replaced method returned as ``smtplib``'s ``(code, text)``."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    return Reply(code, tuple(text.split(b"\n")))


def _redacted_line(command: Command) -> str:
    """The command line for transcripts and logs, with credentials hidden."""
    if isinstance(command, Auth):
        return f"AUTH {command.mechanism}" + ("" if command.initial_response is None else " ****")
    if isinstance(command, AuthResponse):
        return "*" if command.cancel else "****"
    return command.line()


def _source(msg: Message) -> _Source:
    """``msg`` to send: a ``str`` encoded as ``smtplib`` does, other bytes-like objects as
    bytes, file objects and iterables as they are (an async file object as an async
    iterable of its reads)."""
    if isinstance(msg, bytes):
        return msg
    if isinstance(msg, str):
        return fix_line_ends(msg).encode("ascii")
    if isinstance(msg, bytearray | memoryview):
        return bytes(msg)
    if isinstance(msg, Readable) and inspect.iscoroutinefunction(msg.read):
        return _async_reads(msg)
    return msg


async def _async_reads(file: Any) -> AsyncIterator[bytes]:
    """The reads of an async file object, ``CHUNK_SIZE`` bytes at a time."""
    while chunk := await file.read(CHUNK_SIZE):
        yield chunk


def _size(source: _Source, binary: bool) -> int | None:
    """The size of a message as sent, if known before reading it: exact for bytes (line ends
    normalised unless ``binary``), a file's size otherwise (an estimate, as RFC 1870 allows:
    its bare line ends are not counted)."""
    if isinstance(source, bytes):
        return len(source) if binary else normalised_size(source)
    if not isinstance(source, Readable):
        return None
    file: Any = source
    if not (hasattr(file, "seek") and hasattr(file, "tell")):
        return None
    try:
        if hasattr(file, "seekable") and not file.seekable():
            return None
        position = file.tell()
    except (OSError, ValueError):
        return None
    try:
        file.seek(0, os.SEEK_END)
        end: int | None = file.tell()
    except (OSError, ValueError):
        end = None
    file.seek(position)  # errors propagate: the message must be read from where it starts
    return None if end is None else max(end - position, 0)


def _chunks(source: Readable | Iterable[bytes]) -> Iterator[object]:
    """What a file object reads or an iterable yields."""
    if isinstance(source, Readable):
        return iter(partial(source.read, CHUNK_SIZE), b"")
    return iter(source)


class _Pieces:
    """A message in ``CHUNK_SIZE`` pieces, each with whether it is the last one.

    The pieces depend on the bytes only, not on how a file or an iterable hands them over.
    ``start()`` reads the first piece (and the next, to know whether it is the last) before
    the caller sends anything, so that a source that cannot be read fails while the
    connection is still usable.  Sync sources are read directly; an async iterable is pulled
    through the driver with ``NextChunk`` requests.  At most two pieces are held at a time.
    """

    __slots__ = (
        "_ahead",
        "_async",
        "_buffer",
        "_data",
        "_ended",
        "_iterator",
        "_offset",
        "_taken",
        "first",
    )

    def __init__(self, source: _Source) -> None:
        self.first: tuple[bytes | memoryview, bool] = (b"", True)
        self._data: memoryview | None = None
        self._iterator: Any = None
        self._async = False
        self._buffer = bytearray()
        self._ended = False
        self._ahead: bytes | memoryview | None = None
        self._offset = 0
        self._taken = False
        if isinstance(source, bytes):
            if len(source) <= CHUNK_SIZE:
                self.first, self._ended = (source, True), True  # the common case, made quick
            self._data = memoryview(source)  # pieces of it without copies
        elif isinstance(source, AsyncIterable):
            self._iterator, self._async = aiter(source), True
        else:
            self._iterator = _chunks(source)

    def start(self) -> Generator[IORequest, Any, None]:
        """Read the first piece (and look one ahead)."""
        if self._data is not None and self._ended:
            return
        piece = yield from self._slice()
        self._ahead = yield from self._slice()
        self.first = (piece or b"", self._ahead is None)

    def next(self) -> Generator[IORequest, Any, tuple[bytes | memoryview, bool]]:
        """The next piece (the first one first) and whether it is the last."""
        if not self._taken:
            self._taken = True
            return self.first
        piece = self._ahead
        assert piece is not None, "read past the last piece"
        self._ahead = yield from self._slice()
        return piece, self._ahead is None

    def _slice(self) -> Generator[IORequest, Any, bytes | memoryview | None]:
        """The next ``CHUNK_SIZE`` bytes (fewer at the end), ``None`` when there are none."""
        data = self._data
        if data is not None:
            start = self._offset
            if start >= len(data):
                return None
            self._offset = start + CHUNK_SIZE
            return data[start : start + CHUNK_SIZE]
        buffer = self._buffer
        while len(buffer) < CHUNK_SIZE and not self._ended:
            if self._async:
                chunk = yield NextChunk(self._iterator)
                if chunk is END_OF_BODY:
                    self._ended = True
                    break
            else:
                chunk = next(self._iterator, END_OF_BODY)
                if chunk is END_OF_BODY:
                    self._ended = True
                    break
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError(f"message chunks must be bytes, not {type(chunk).__name__}")
            if not buffer and len(chunk) == CHUNK_SIZE:
                return bytes(chunk)
            buffer += chunk
        if not buffer:
            return None
        piece = bytes(buffer[:CHUNK_SIZE])
        del buffer[:CHUNK_SIZE]
        return piece
