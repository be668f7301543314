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
import hmac
import inspect
import logging
import os
import re
import sys
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from . import sasl
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
    ProtocolError,
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
from .message import prepare_message
from .replies import Reply

__all__ = [
    "CLOSE",
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


def _fix_line_ends(text: str) -> str:
    """CRLF for every line end of a ``str`` message, as ``smtplib`` does before encoding."""
    return _BARE_LINE_END.sub("\r\n", text)


class Client:
    """The state and operations of an ``smtplib.SMTP`` object, without any I/O.

    The attributes are ``smtplib``'s (``helo_resp``, ``ehlo_resp``, ``does_esmtp``,
    ``esmtp_features``, ``command_encoding``, ``user``, ``password``, ``debuglevel``,
    ``local_hostname``); the methods have ``smtplib``'s names, arguments, results and
    exceptions, but return operations for a transport to drive.
    """

    def __init__(self, local_hostname: str | None = None, *, lmtp: bool = False) -> None:
        self.lmtp = lmtp
        self.ehlo_msg = "lhlo" if lmtp else "ehlo"
        self.local_hostname = local_hostname
        self.debuglevel = 0
        self.helo_resp: bytes | None = None
        self.ehlo_resp: bytes | None = None
        self.does_esmtp = False
        self.esmtp_features: dict[str, str] = {}
        self._command_encoding = "ascii"
        self._utf8 = False
        self.user: str | None = None
        self.password: str | None = None
        #: Per-recipient replies to the last LMTP message body (recipient -> (code, text)).
        self.lmtp_replies: dict[str, tuple[int, bytes]] = {}
        #: The replies of the last ``sendmail``/``transaction``, as ``Reply`` objects.
        self.last_replies = TransactionReplies({}, {})
        #: Send ``sendmail``'s message with BDAT (RFC 3030) when the server offers CHUNKING and
        #: PIPELINING: one round trip per message instead of two, no dot-stuffing.  The results
        #: and exceptions are DATA's; set it to ``False`` to use DATA all the same.
        self.chunking = True
        self._auth_challenge_count = 0
        self._connection: ClientConnection | None = None

    @property
    def command_encoding(self) -> str:
        """How command lines are encoded: ``ascii``, or ``utf-8`` after ``MAIL ... SMTPUTF8``."""
        return self._command_encoding

    @command_encoding.setter
    def command_encoding(self, value: str) -> None:
        self._command_encoding = value
        self._utf8 = value.lower().replace("_", "-") in ("utf-8", "utf8")

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
        if self.debuglevel > 0:
            self.print_debug("connect: to", (host, port), source_address)
        self._connection = ClientConnection(lmtp=self.lmtp)
        self.helo_resp = self.ehlo_resp = None
        self.does_esmtp = False
        self.esmtp_features = {}
        self.command_encoding = "ascii"

    def close(self) -> None:
        """The transport closed the connection; the object may connect again."""
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def greeting(self) -> Operation[tuple[int, bytes]]:
        """Read the server's banner after connecting, as ``smtplib.SMTP.connect`` does."""
        reply = (yield from self._exchange(b"", 1))[0]
        if self.debuglevel > 0:
            self.print_debug("connect:", repr(reply.text))
        return reply.as_tuple()

    # ------------------------------------------------------------------ transcript

    def print_debug(self, *args: object) -> None:
        """Print a debug line to stderr as ``smtplib`` does (with a timestamp at level 2)."""
        if self.debuglevel > 1:
            print(datetime.datetime.now().time(), *args, file=sys.stderr)
        else:
            print(*args, file=sys.stderr)

    def _trace_reply(self, reply: Reply) -> None:
        """Print (debuglevel) and log one reply."""
        if self.debuglevel > 0:
            for raw_line in reply.raw.splitlines(keepends=True):
                self.print_debug("reply:", repr(raw_line))
            self.print_debug(f"reply: retcode ({reply.code}); Msg: {reply.text!a}")
        logger.debug("reply: %d %r", reply.code, reply.text)

    # ------------------------------------------------------------------ I/O primitives

    def _abort(self) -> Generator[IORequest, Any, None]:
        """Close the transport and forget the connection."""
        self.close()
        yield CLOSE

    def _encode(self, *commands: Command) -> bytes:
        """The bytes of one command, or of a pipelined group of them; traced and logged."""
        connection = self.connection
        connection.utf8 = self._utf8
        if len(commands) == 1:
            data = connection.send(commands[0])
        else:
            data = connection.send_many(commands)
        if self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG):
            for command in commands:
                line = _redacted_line(command)
                if self.debuglevel > 0:
                    self.print_debug("send:", repr(line + "\r\n"))
                logger.debug("send: %r", line)
        return data

    def _exchange(
        self, data: bytes | memoryview, count: int, partial_at_eof: bool = False
    ) -> Generator[IORequest, Any, list[Reply]]:
        """Write ``data`` (if any), then read ``count`` replies.

        Fewer replies come back when the server closes with a 421 after one of them, or, with
        ``partial_at_eof``, when it hangs up after at least one.  EOF, I/O errors, protocol
        errors and 421 close the connection; the errors raise what ``smtplib`` raises.
        """
        if data:
            try:
                yield data
            except OSError:
                yield from self._abort()
                raise SMTPServerDisconnected("Server not connected") from None
        connection = self.connection
        replies: list[Reply] = []
        tracing = self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)
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

    def _command(self, command: Command) -> Generator[IORequest, Any, Reply]:
        """Send one command and read its reply."""
        return (yield from self._exchange(self._encode(command), 1))[0]

    # ------------------------------------------------------------------ low-level smtplib API

    def putcmd(self, cmd: str, args: str = "") -> Operation[None]:
        """Send one command line without reading its reply (``smtplib.SMTP.putcmd``)."""
        yield from self._exchange(self._encode(Raw(cmd, args)), 0)

    def getreply(self) -> Operation[tuple[int, bytes]]:
        """Read one reply (``smtplib.SMTP.getreply``)."""
        return (yield from self._exchange(b"", 1))[0].as_tuple()

    def docmd(self, cmd: str, args: str = "") -> Operation[tuple[int, bytes]]:
        """Send any command and return its reply."""
        return (yield from self._command(Raw(cmd, args))).as_tuple()

    # ------------------------------------------------------------------ greetings

    def _hostname(self) -> Generator[IORequest, Any, str]:
        if self.local_hostname is None:
            self.local_hostname = yield LOCAL_HOSTNAME
        assert self.local_hostname is not None
        return self.local_hostname

    def helo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        """HELO; the reply text is kept in ``helo_resp``."""
        name = name or (yield from self._hostname())
        reply = yield from self._command(Helo(name))
        self.helo_resp = reply.text
        return reply.as_tuple()

    def ehlo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        """EHLO (LHLO for LMTP); on 250 fills ``esmtp_features`` and sets ``does_esmtp``."""
        self.esmtp_features = {}
        name = name or (yield from self._hostname())
        greeting = Lhlo(name) if self.ehlo_msg.lower() == "lhlo" else Ehlo(name)
        reply = yield from self._command(greeting)
        self.ehlo_resp = reply.text
        if reply.code == 250:
            self.does_esmtp = True
            self.esmtp_features = dict(self.connection.features)
        return reply.as_tuple()

    def ehlo_or_helo_if_needed(self) -> Operation[None]:
        """EHLO, falling back to HELO, unless one of them was done already."""
        if self.helo_resp is None and self.ehlo_resp is None:
            code, _ = yield from self.ehlo()
            if not 200 <= code <= 299:
                code, text = yield from self.helo()
                if not 200 <= code <= 299:
                    raise SMTPHeloError(code, text)

    def has_extn(self, opt: str) -> bool:
        """Whether the server advertised the extension ``opt`` (case-insensitive)."""
        return opt.lower() in self.esmtp_features

    # ------------------------------------------------------------------ simple commands

    def rset(self) -> Operation[tuple[int, bytes]]:
        """RSET; also returns command encoding to ASCII."""
        self.command_encoding = "ascii"
        return (yield from self._command(Rset())).as_tuple()

    def _rset(self) -> Operation[None]:
        """RSET, ignoring a closed connection (as after a refusal in ``sendmail``)."""
        with contextlib.suppress(SMTPServerDisconnected):
            yield from self.rset()

    def noop(self) -> Operation[tuple[int, bytes]]:
        """NOOP."""
        return (yield from self._command(Noop())).as_tuple()

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
            reply = yield from self._command(Quit())  # the reply to QUIT closes the connection
        finally:
            self.ehlo_resp = self.helo_resp = None
            self.esmtp_features = {}
            self.does_esmtp = False
        return reply.as_tuple()

    def exit(self) -> Operation[None]:
        """What leaving a ``with`` block does: QUIT, where a closed connection is fine.

        The transport closes its socket afterwards whatever happened.
        """
        try:
            reply = yield from self._command(Raw("QUIT"))  # its reply closes the connection
        except SMTPServerDisconnected:
            return
        if reply.code != 221:
            raise SMTPResponseException(reply.code, reply.text)

    # ------------------------------------------------------------------ mail transaction

    def _mail_command(self, sender: str, options: Sequence[str]) -> Mail:
        if not (options and self.does_esmtp):
            return Mail(sender)
        if any(option.lower() == "smtputf8" for option in options):
            if not self.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        return Mail(sender, tuple(options))

    def _rcpt_command(self, recipient: str, options: Sequence[str]) -> Rcpt:
        return Rcpt(recipient, tuple(options) if options and self.does_esmtp else ())

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
        if self.debuglevel > 0:
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
        if self.debuglevel > 0:
            self.print_debug("send:", repr(out))
        return (yield from self._finish_body(out))

    def _drop_unfinished_body(self) -> Generator[IORequest, Any, None]:
        """Close the connection in the middle of a body: ending it would deliver it truncated."""
        if self.is_connected:
            yield from self._abort()

    def _write_body(self, data: bytes) -> Generator[IORequest, Any, None]:
        """Send part of a message body, traced at debug level."""
        if self.debuglevel > 0:
            self.print_debug("send:", repr(data))
        yield from self._exchange(data, 0)

    def _finish_body(self, data: bytes) -> Generator[IORequest, Any, tuple[int, bytes]]:
        """Send the end of a body and read the reply to it: one, or one per LMTP recipient.

        For LMTP the per-recipient replies go to ``lmtp_replies`` and the result is the first
        refusal, else the last acceptance; a recipient never answered counts as refused.
        """
        if not self.lmtp:
            reply = (yield from self._exchange(data, 1))[0]
            self.last_replies = TransactionReplies(self.last_replies.rcpt, {"": reply})
            result = reply.as_tuple()
        else:
            expected = self.connection.accepted_recipients or (None,)
            replies = yield from self._exchange(data, len(expected), partial_at_eof=True)
            unanswered = replies[-1].as_tuple() if replies[-1].code == 421 else _UNANSWERED
            answers = [reply.as_tuple() for reply in replies]
            answers += [unanswered] * (len(expected) - len(answers))
            self.lmtp_replies = {
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
        if self.debuglevel > 0:
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
        if self.helo_resp is None and self.ehlo_resp is None:
            yield from self.ehlo_or_helo_if_needed()
        source = _source(msg)
        binary = _binary_body(mail_options)
        # Measured only for a server that takes SIZE: a file is sought, bytes are scanned.
        size = _size(source, binary) if "size" in self.esmtp_features else None
        extensions = self.connection.extensions
        if extensions.size and size is not None and size > extensions.size:
            raise SMTPMessageTooLarge(size, extensions.size, from_addr)
        if binary and not extensions.chunking:
            raise SMTPNotSupportedError(
                "BODY=BINARYMIME needs BDAT, but the server does not advertise CHUNKING"
            )
        if not self.does_esmtp:
            options: Sequence[str] = ()
        elif "size" in self.esmtp_features and size is not None:
            options = (f"size={size}", *mail_options)
        else:
            options = mail_options
        mail = self._mail_command(from_addr, options)
        rcpts = [self._rcpt_command(recipient, rcpt_opts) for recipient, rcpt_opts in recipients]
        pieces = _Pieces(source)
        yield from pieces.start()
        self.last_replies = TransactionReplies({}, {})
        if extensions.pipelining and recipients:
            return (yield from self._sendmail_pipelined(mail, rcpts, pieces, binary))
        return (yield from self._sendmail_lockstep(mail, rcpts, pieces, binary))

    def _sender_refused(self, mail: Mail, reply: Reply) -> Operation[None]:
        """After a refused MAIL: close on 421, RSET otherwise, then raise."""
        if reply.code != 421:
            yield from self._rset()
        raise SMTPSenderRefused(reply.code, reply.text, mail.sender)

    def _sendmail_lockstep(
        self, mail: Mail, rcpts: list[Rcpt], pieces: _Pieces, binary: bool
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        for command in (mail, *rcpts):
            command.encode(self._utf8)  # a refused RCPT (injection) refuses it all, unsent
        reply = yield from self._command(mail)
        if reply.code != 250:
            yield from self._sender_refused(mail, reply)
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

    def _sendmail_pipelined(
        self, mail: Mail, rcpts: list[Rcpt], pieces: _Pieces, binary: bool
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """MAIL, the RCPTs and DATA in one write (RFC 2920); with CHUNKING (RFC 3030) a
        message of one chunk goes in that same write as ``BDAT n LAST``.

        Results and exceptions are those of the lock-step exchange.
        """
        connection = self.connection
        chunked = binary or (self.chunking and connection.extensions.chunking)
        piece, single = pieces.first
        body_sent = chunked and single
        if body_sent:
            encoder = _bdat_encoder(binary)
            body, tail = encoder.encode(piece), encoder.finish()
            bdat = Bdat(len(body) + len(tail), last=True)
            first = b"".join((self._encode(mail, *rcpts, bdat), body, tail))
            if self.debuglevel > 0:
                self.print_debug("send:", repr(bytes(body) + tail))
        else:
            first = self._encode(mail, *rcpts) if chunked else self._encode(mail, *rcpts, Data())
        expected = len(rcpts) + 1 + (not chunked)
        replies = yield from self._exchange(first, expected)
        mail_reply = replies[0]
        refused: dict[str, tuple[int, bytes]] = {}
        closed_at_rcpt = False
        for rcpt, reply in zip(rcpts, replies[1:], strict=False):
            self.last_replies.rcpt[rcpt.recipient] = reply
            if reply.code not in (250, 251):
                refused[rcpt.recipient] = reply.as_tuple()
            closed_at_rcpt = reply.code == 421
        proceed = mail_reply.code == 250 and not closed_at_rcpt and len(refused) < len(rcpts)
        if chunked:
            if not proceed:
                if body_sent and self.is_connected:
                    yield from self._finish_body(b"")  # the refused body's own reply
                yield from self._envelope_failed(mail, mail_reply, refused, closed_at_rcpt)
            if body_sent:
                code, text = yield from self._finish_body(b"")
            else:
                code, text = yield from self._send_chunks(pieces, binary)
        else:
            data_reply = replies[-1] if len(replies) == expected else None
            if self.debuglevel > 0 and data_reply is not None:
                self.print_debug("data:", data_reply.as_tuple())
            if not proceed:
                if data_reply is not None and data_reply.code == 354:
                    # The server opened a body we must not send (RFC 2920 3.1): send it empty.
                    yield from self._send_body(_Pieces(b""))
                yield from self._envelope_failed(mail, mail_reply, refused, closed_at_rcpt)
            assert data_reply is not None
            if data_reply.code != 354:
                raise SMTPDataError(data_reply.code, data_reply.text)
            code, text = yield from self._send_body(pieces)
        if code == 250 and not self.lmtp:
            return refused
        return (yield from self._finish_transaction(code, text, refused, len(rcpts)))

    def _envelope_failed(
        self,
        mail: Mail,
        mail_reply: Reply,
        refused: dict[str, tuple[int, bytes]],
        closed_at_rcpt: bool,
    ) -> Operation[None]:
        """Raise what lock-step ``sendmail`` raises for a refused envelope (RSET as it does)."""
        if mail_reply.code != 250:
            yield from self._sender_refused(mail, mail_reply)
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
        if self.debuglevel > 0:
            self.print_debug("send:", repr(bytes(data)))
        yield from self._exchange(self._encode(Bdat(len(data), last=last)), 0)
        return (yield from self._exchange(data, replies))

    def _finish_transaction(
        self, code: int, text: bytes, refused: dict[str, tuple[int, bytes]], total: int
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """Map the reply to the body onto ``sendmail``'s result (per recipient for LMTP)."""
        if self.lmtp and self.lmtp_replies:
            for recipient, (rcode, rtext) in self.lmtp_replies.items():
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
        """Send an ``email.message.Message`` with ``smtplib``'s header rules (Bcc never sent)."""
        yield from self.ehlo_or_helo_if_needed()
        prepared = prepare_message(msg, from_addr, to_addrs, mail_options)
        if prepared.international and not self.has_extn("smtputf8"):
            raise SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        return (
            yield from self.sendmail(
                prepared.from_addr,
                prepared.to_addrs,
                prepared.data,
                prepared.mail_options,
                rcpt_options,
            )
        )

    # ------------------------------------------------------------------ STARTTLS

    def starttls(self) -> Operation[tuple[int, bytes]]:
        """STARTTLS, the TLS handshake (by the transport), and forgetting what EHLO learned.

        The next command that needs it does EHLO again (RFC 3207).
        """
        yield from self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        reply = yield from self._command(StartTLS())
        if reply.code != 220:
            raise SMTPResponseException(reply.code, reply.text)
        try:
            yield START_TLS
        except OSError:
            yield from self._abort()
            raise
        self.connection.tls_established()
        self.helo_resp = self.ehlo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        return reply.as_tuple()

    # ------------------------------------------------------------------ AUTH

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        """``smtplib``'s CRAM-MD5 authobject, from ``user`` and ``password``."""
        if challenge is None:
            return None
        assert self.user is not None and self.password is not None
        digest = hmac.new(self.password.encode("utf-8"), challenge, "md5").hexdigest()
        return f"{self.user} {digest}"

    def auth_plain(self, challenge: bytes | None = None) -> str:
        """``smtplib``'s PLAIN authobject (sent as UTF-8, so non-ASCII passwords work)."""
        return f"\0{self.user}\0{self.password}"

    def auth_login(self, challenge: bytes | None = None) -> str | None:
        """``smtplib``'s LOGIN authobject: the user name first, then the password."""
        if challenge is None or self._auth_challenge_count < 2:
            return self.user
        return self.password

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
        if isinstance(authobject, sasl.Mechanism):
            mech = authobject
        else:
            mech = sasl.AuthObject(mechanism, authobject, initial_response_ok)
        initial = mech.initial_response() if initial_response_ok else None
        reply = yield from self._command(Auth(mech.name, initial))
        self._auth_challenge_count = 0 if initial is None else 1
        while reply.code == 334:
            self._auth_challenge_count += 1
            if self._auth_challenge_count > MAX_AUTH_CHALLENGES:
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
            reply = yield from self._command(AuthResponse(response))
        if reply.code == 235:
            mech.verify_success()
            return reply.as_tuple()
        if reply.code == 503:
            return reply.as_tuple()
        raise SMTPAuthenticationError(reply.code, reply.text)

    def _cancel_auth(self) -> Generator[IORequest, Any, Reply]:
        """Cancel an AUTH exchange (``*``).  RFC 4954 has the server answer 501; one that
        sends yet another 334 ignores the cancellation, so the connection is closed."""
        reply = yield from self._command(AuthResponse(b"", cancel=True))
        if reply.code == 334:
            yield from self._abort()
        return reply

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> Operation[tuple[int, bytes]]:
        """Log in with the first of CRAM-MD5, PLAIN, LOGIN that the server offers.

        Like ``smtplib``, the next mechanism is tried when one fails; the last failure is
        raised (at once if the failure closed the connection, as a 421 does).  User names
        and passwords may be any Unicode text (sent as UTF-8).
        """
        yield from self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = self.esmtp_features["auth"].upper().split()
        mechanisms = [name for name in sasl.PASSWORD_MECHANISMS if name in advertised]
        if not mechanisms:
            raise SMTPException("No suitable authentication method found.")
        self.user, self.password = user, password
        last_error: SMTPAuthenticationError | None = None
        for name in mechanisms:
            try:
                return (
                    yield from self.auth(
                        name,
                        sasl.mechanism_for(name, user, password),
                        initial_response_ok=initial_response_ok,
                    )
                )
            except SMTPAuthenticationError as exc:
                last_error = exc
                if not self.is_connected:
                    raise  # a 421, say: no other mechanism can be tried, and this says why
        assert last_error is not None
        raise last_error


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
        return _fix_line_ends(msg).encode("ascii")
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
