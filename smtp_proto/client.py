"""``Client``: the state of an ``smtplib.SMTP`` object and its methods, as I/O-free operations.

Every method that talks to the server returns an *operation* (``smtp_proto.requests``),
which a transport drives with ``smtp_proto.driving``.  This module holds the connection's
lifecycle, the transcript, the I/O primitives every operation is built on, the simple
commands, EHLO and STARTTLS; the transaction is in ``smtp_proto.transaction``, AUTH in
``smtp_proto.authentication``, the reading of the message in ``smtp_proto.source``.
"""

from __future__ import annotations

import contextlib
import datetime
import email.message
import logging
import sys
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

from .attributes import SMTPAttributes
from .authentication import auth_gen, login_gen
from .commands import (
    Auth,
    AuthResponse,
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
    is_utf8,
)
from .connection import _CLOSED, NEED_DATA, ClientConnection, ConnectionClosed
from .errors import (
    MalformedGreeting,
    ProtocolError,
    RemoteProtocolError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .extensions import parse_ehlo
from .message import prepare_message
from .replies import Reply
from .requests import (
    CLOSE,
    END_OF_BODY,
    LOCAL_HOSTNAME,
    RECEIVE,
    START_TLS,
    Call,
    IORequest,
    NextChunk,
    Operation,
    Request,
)
from .source import Message, Readable, fix_line_ends
from .transaction import BDAT_WINDOW, TransactionReplies, data_gen, transaction_gen

__all__ = [
    "BDAT_WINDOW",
    "CLOSE",
    "END_OF_BODY",
    "LOCAL_HOSTNAME",
    "RECEIVE",
    "START_TLS",
    "Call",
    "Client",
    "IORequest",
    "Message",
    "NextChunk",
    "Operation",
    "Readable",
    "Request",
    "TransactionReplies",
    "fix_line_ends",
]

Recipients = str | Sequence[str]

logger = logging.getLogger("smtp_proto")


def _nothing_overridden(name: str) -> None:
    """The ``overrides`` of a ``Client`` on its own: no public method to replace."""


#: The methods through which ``smtplib`` writes commands and reads replies.
_WIRE_METHODS = ("send", "putcmd", "getreply", "docmd")


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
            reply = yield from self._read_reply_gen()
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

    def _call_gen(self, name: str, *args: Any, **kwargs: Any) -> Operation[Any]:
        """The public method ``name``: the replacement a subclass or a mock made of it on the
        adapter object, else the core's own operation, run inline."""
        method = self._override(name)
        if method is None:
            return (yield from getattr(self, name)(*args, **kwargs))
        return (yield Call(method, args, kwargs))

    def _any_replaced(self, names: tuple[str, ...]) -> bool:
        """Whether a subclass or a mock replaced any of the public methods ``names``."""
        override = self._override
        return override is not _nothing_overridden and any(
            override(name) is not None for name in names
        )

    # ------------------------------------------------------------------ I/O primitives

    def _abort_gen(self) -> Generator[IORequest, Any, None]:
        """Close the transport (which sees the connection still open, as a subclass's
        ``close()`` does in ``smtplib``), and forget the connection."""
        try:
            yield CLOSE
        finally:
            self.close()

    def _encode(self, *commands: Command) -> bytes:
        """The bytes of one command, or of a pipelined group of them; traced and logged."""
        connection = self.connection
        connection.utf8 = is_utf8(self.owner.command_encoding)
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

    def _write_request(self, data: bytes | memoryview | str) -> IORequest:
        """The request that writes ``data``: through the adapter's ``send`` when it was
        replaced (a command line as ``str``, as ``smtplib`` passes it; message data as bytes),
        else the bytes themselves."""
        send = None if self._override is _nothing_overridden else self._override("send")
        if send is not None:
            return Call(send, (data,), {})
        if isinstance(data, str):
            return data.encode(self.owner.command_encoding)
        return data

    def _exchange_gen(
        self, data: bytes | memoryview | str, count: int, partial_at_eof: bool = False
    ) -> Generator[IORequest, Any, list[Reply]]:
        """Write ``data`` (if any), then read ``count`` replies.

        Fewer replies come back when the server closes with a 421 after one of them, or, with
        ``partial_at_eof``, when it hangs up after at least one.  EOF, I/O errors, protocol
        errors and 421 close the connection; the errors raise what ``smtplib`` raises.
        """
        if data:
            try:
                yield self._write_request(data)
            except OSError:
                yield from self._abort_gen()
                raise SMTPServerDisconnected("Server not connected") from None
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
                        yield from self._abort_gen()
                        raise SMTPServerDisconnected(
                            f"Connection unexpectedly closed: {exc}"
                        ) from exc
                    connection.receive_data(received)
                    continue
                if event.__class__ is ConnectionClosed:
                    yield from self._abort_gen()
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
            yield from self._abort_gen()
            raise
        if connection.state is _CLOSED:
            yield from self._abort_gen()  # 421 or the reply to QUIT: the server is going away
        return replies

    def _read_reply_gen(self) -> Generator[IORequest, Any, Reply]:
        """Read one reply: through the adapter's ``getreply`` when it was replaced."""
        if self._override("getreply") is None:
            return (yield from self._exchange_gen(b"", 1))[0]
        code, text = yield from self._call_gen("getreply")
        return Reply.from_tuple(code, text)

    def _command_gen(
        self, command: Command, *, docmd: bool = False
    ) -> Generator[IORequest, Any, Reply]:
        """Send one command and read its reply.

        When a wire method was replaced, the command goes as ``smtplib`` sends it: through
        ``docmd`` (if ``smtplib`` uses it for this command, flagged by ``docmd``) or else
        ``putcmd``, each as replaced, else written through ``send``; the reply is read
        through ``getreply``.
        """
        if not self._any_replaced(_WIRE_METHODS):
            return (yield from self._exchange_gen(self._encode(command), 1))[0]
        verb, _, args = command.line().partition(" ")
        if docmd and self._override("docmd") is not None:
            code, text = yield from self._call_gen("docmd", *((verb, args) if args else (verb,)))
            return Reply.from_tuple(code, text)
        if self._override("putcmd") is not None:
            # smtplib passes the (maybe empty) arguments, but for DATA's bare putcmd("data")
            yield from self._call_gen(
                "putcmd", *((verb,) if command.__class__ is Data else (verb, args))
            )
        else:
            text = self._encode(command).decode(self.owner.command_encoding)
            yield from self._exchange_gen(text, 0)
        return (yield from self._read_reply_gen())

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
            yield from self._abort_gen()
            raise SMTPServerDisconnected("Server not connected") from None

    def putcmd(self, cmd: str, args: str = "") -> Operation[None]:
        """Send one command line without reading its reply (``smtplib.SMTP.putcmd``)."""
        data = self._encode(Raw(cmd, args))
        if self._override("send") is None:
            yield from self._exchange_gen(data, 0)
        else:
            yield from self._exchange_gen(data.decode(self.owner.command_encoding), 0)

    def getreply(self) -> Operation[tuple[int, bytes]]:
        """Read one reply (``smtplib.SMTP.getreply``)."""
        return (yield from self._exchange_gen(b"", 1))[0].as_tuple()

    def docmd(self, cmd: str, args: str = "") -> Operation[tuple[int, bytes]]:
        """Send any command and return its reply."""
        return (yield from self._command_gen(Raw(cmd, args))).as_tuple()

    # ------------------------------------------------------------------ greetings

    def _hostname_gen(self) -> Generator[IORequest, Any, str]:
        owner = self.owner
        if owner._local_hostname is None:
            owner._local_hostname = yield LOCAL_HOSTNAME
        name: str = owner._local_hostname
        return name

    def helo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        """HELO; the reply text is kept in ``helo_resp``."""
        name = name or (yield from self._hostname_gen())
        reply = yield from self._command_gen(Helo(name))
        self.owner.helo_resp = reply.text
        return reply.as_tuple()

    def ehlo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        """EHLO (LHLO for LMTP); on 250 fills ``esmtp_features`` and sets ``does_esmtp``."""
        owner = self.owner
        owner.esmtp_features = {}
        name = name or (yield from self._hostname_gen())
        verb = owner.ehlo_msg
        greeting = Lhlo(name) if verb == "lhlo" else Ehlo(name, verb)
        reply = yield from self._command_gen(greeting)
        owner.ehlo_resp = reply.text
        if reply.code == 250:
            owner.does_esmtp = True
            owner.esmtp_features = parse_ehlo(reply.text)
        return reply.as_tuple()

    def ehlo_or_helo_if_needed(self) -> Operation[None]:
        """EHLO, falling back to HELO, unless one of them was done already."""
        owner = self.owner
        if owner.helo_resp is None and owner.ehlo_resp is None:
            code, _ = yield from self._call_gen("ehlo")
            if not 200 <= code <= 299:
                code, text = yield from self._call_gen("helo")
                if not 200 <= code <= 299:
                    raise SMTPHeloError(code, text)

    def _greeted_gen(self) -> Iterable[IORequest]:
        """``ehlo_or_helo_if_needed`` as ``smtplib``'s methods call it (a replacement is
        always called); nothing to run (``()``) when nothing is to be done."""
        if self._override("ehlo_or_helo_if_needed") is not None:
            return self._call_gen("ehlo_or_helo_if_needed")
        if self.owner.helo_resp is None and self.owner.ehlo_resp is None:
            return self.ehlo_or_helo_if_needed()
        return ()

    # ------------------------------------------------------------------ simple commands

    def rset(self) -> Operation[tuple[int, bytes]]:
        """RSET; also returns command encoding to ASCII."""
        self.owner.command_encoding = "ascii"
        return (yield from self._command_gen(Rset(), docmd=True)).as_tuple()

    def _rset_gen(self) -> Operation[None]:
        """RSET, ignoring a closed connection (as after a refusal in ``sendmail``)."""
        with contextlib.suppress(SMTPServerDisconnected):
            yield from self._call_gen("rset")

    def noop(self) -> Operation[tuple[int, bytes]]:
        """NOOP."""
        return (yield from self._command_gen(Noop(), docmd=True)).as_tuple()

    def verify(self, address: str) -> Operation[tuple[int, bytes]]:
        """VRFY with the bare address."""
        return (yield from self._command_gen(Vrfy(address))).as_tuple()

    vrfy = verify

    def expn(self, address: str) -> Operation[tuple[int, bytes]]:
        """EXPN with the bare address."""
        return (yield from self._command_gen(Expn(address))).as_tuple()

    def help(self, args: str = "") -> Operation[bytes]:
        """HELP; returns only the reply text, as ``smtplib`` does."""
        return (yield from self._command_gen(Help(args))).text

    def quit(self) -> Operation[tuple[int, bytes]]:
        """QUIT, then close; forgets what EHLO/HELO learned."""
        try:
            reply = yield from self._command_gen(Quit(), docmd=True)  # its reply closes
        finally:
            self._forget_session()
        if self.is_connected:
            yield from self._abort_gen()
        return reply.as_tuple()

    def exit(self) -> Operation[None]:
        """What leaving a ``with`` block does: QUIT, where a closed connection is fine.

        The transport closes its socket afterwards whatever happened.
        """
        try:
            reply = yield from self._command_gen(Raw("QUIT"), docmd=True)  # its reply closes
        except SMTPServerDisconnected:
            return
        if reply.code != 221:
            raise SMTPResponseException(reply.code, reply.text)

    # ------------------------------------------------------------------ mail transaction

    def _build_mail(self, sender: str, options: Sequence[str]) -> Mail:
        owner = self.owner
        if not (options and owner.does_esmtp):
            return Mail(sender)
        if any(option.lower() == "smtputf8" for option in options):
            if not owner.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            owner.command_encoding = "utf-8"
        return Mail(sender, tuple(options))

    def _build_rcpt(self, recipient: str, options: Sequence[str]) -> Rcpt:
        return Rcpt(recipient, tuple(options) if options and self.owner.does_esmtp else ())

    def mail(self, sender: str, options: Sequence[str] = ()) -> Operation[tuple[int, bytes]]:
        """MAIL FROM; an ``SMTPUTF8`` option switches commands to UTF-8 (server permitting)."""
        return (yield from self._command_gen(self._build_mail(sender, options))).as_tuple()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> Operation[tuple[int, bytes]]:
        """RCPT TO."""
        return (yield from self._command_gen(self._build_rcpt(recip, options))).as_tuple()

    def data(self, msg: Message) -> Operation[tuple[int, bytes]]:
        """DATA, then the message with line endings fixed and dots stuffed (``data_gen``)."""
        return data_gen(self, msg)

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
        """``sendmail`` with RCPT options per recipient (``(address, options)`` pairs); the
        replies are kept in ``last_replies`` (see ``transaction_gen``)."""
        return transaction_gen(self, from_addr, recipients, msg, mail_options)

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
        yield from self._greeted_gen()
        prepared = prepare_message(msg, from_addr, to_addrs, mail_options)
        if prepared.international and not self.owner.has_extn("smtputf8"):
            raise SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        refused: dict[str, tuple[int, bytes]] = yield from self._call_gen(
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
        yield from self._greeted_gen()
        if not self.owner.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        reply = yield from self._command_gen(StartTLS(), docmd=True)
        if reply.code != 220:
            raise SMTPResponseException(reply.code, reply.text)
        try:
            yield START_TLS
        except OSError:
            yield from self._abort_gen()
            raise
        self.connection.tls_established()
        self._forget_session()
        return reply.as_tuple()

    # ------------------------------------------------------------------ AUTH

    def auth(
        self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True
    ) -> Operation[tuple[int, bytes]]:
        """AUTH with ``authobject``: an ``smtplib``-style callable or a ``sasl.Mechanism``."""
        return auth_gen(self, mechanism, authobject, initial_response_ok=initial_response_ok)

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> Operation[tuple[int, bytes]]:
        """Log in with the first of CRAM-MD5, PLAIN, LOGIN that the server offers."""
        return login_gen(self, user, password, initial_response_ok=initial_response_ok)


def _redacted_line(command: Command) -> str:
    """The command line for transcripts and logs, with credentials hidden."""
    if isinstance(command, Auth):
        return f"AUTH {command.mechanism}" + ("" if command.initial_response is None else " ****")
    if isinstance(command, AuthResponse):
        return "*" if command.cancel else "****"
    return command.line()
