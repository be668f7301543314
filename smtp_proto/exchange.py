"""``Exchange``: the connection a ``Client`` drives, and how one command and its replies cross
it: writes (through a replaced ``send`` if there is one), reads, tracing, and errors mapped
to what ``smtplib`` raises."""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Callable, Generator
from typing import Any, NoReturn

from .attributes import SMTPAttributes
from .commands import Auth, AuthResponse, Command, Data, is_utf8
from .connection import _CLOSED, NEED_DATA, ClientConnection
from .errors import MalformedGreeting, ProtocolError, RemoteProtocolError, SMTPServerDisconnected
from .outcome import TransactionReplies
from .replies import Reply
from .requests import CLOSE, RECEIVE, Call, IORequest, Operation

__all__ = ["Exchange"]

logger: logging.Logger = logging.getLogger("smtp_proto")


def _nothing_overridden(name: str) -> None:
    """The ``overrides`` of a ``Client`` on its own: no public method to replace."""


#: The methods through which ``smtplib`` writes commands and reads replies.
_WIRE_METHODS = ("send", "putcmd", "getreply", "docmd")


class Exchange(SMTPAttributes):
    """What every operation is built on: the connection's lifecycle, the transcript, the call
    graph (which public methods a subclass or a mock replaced), and the writing of commands
    and reading of replies.  ``Client`` adds the ``smtplib`` methods."""

    def __init__(
        self,
        local_hostname: str | None = None,
        *,
        lmtp: bool = False,
        owner: SMTPAttributes | None = None,
        overrides: Callable[[str], Callable[..., Any] | None] | None = None,
        replaced: Callable[[tuple[str, ...]], bool] | None = None,
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
        self.last_replies: TransactionReplies = TransactionReplies({}, {})
        self._override = overrides or _nothing_overridden
        #: ``any(overrides(name) is not None for name in names)``, if the owner has it quicker.
        self._replaced = replaced
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
        if override is not _nothing_overridden:
            if self._replaced is not None:
                return self._replaced(names)
            for name in names:
                if override(name) is not None:
                    return True
        return False

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
        connection = self._connection
        if connection is None or connection.state is _CLOSED:
            connection = self.connection  # raises (the property, without its call when open)
        encoding = self.owner.command_encoding
        connection.utf8 = encoding != "ascii" and is_utf8(encoding)
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

    def _exchange_gen(  # noqa: PLR0912 (the connection property inline: issue #14)
        self,
        data: bytes | memoryview | str,
        count: int,
        partial_at_eof: bool = False,
        *,
        as_is: bool = False,
        replies: list[Reply] | None = None,
    ) -> Generator[IORequest, Any, list[Reply]]:
        """Write ``data`` (if any), then read ``count`` replies.

        Fewer replies come back when the server closes with a 421 after one of them, or, with
        ``partial_at_eof``, when it hangs up after at least one.  EOF, I/O errors, protocol
        errors and 421 close the connection; the errors raise what ``smtplib`` raises.
        ``as_is``: the caller knows ``send`` is not replaced, so ``data`` (bytes) is the write
        request itself (``_write_request`` would return it).  ``replies``: those read so far
        (by a driver's round trip, ``smtp_proto.driving``), which the reading goes on from.
        """
        if data:
            try:
                yield data if as_is else self._write_request(data)  # type: ignore[misc]
            except OSError:
                yield from self._write_failed_gen()
        connection = self._connection
        if replies is None:
            if connection is None or connection.state is _CLOSED:
                connection = self.connection  # raises (the property, without its call when open)
            replies = []
        assert connection is not None  # (going on: it was open when the exchange began)
        tracing = self.owner.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)
        try:
            while True:
                traced = len(replies)
                try:
                    event = connection.next_replies(replies, count)
                finally:
                    if tracing:
                        for reply in replies[traced:]:
                            self._trace_reply(reply)
                if event is None:
                    break
                if event is NEED_DATA:
                    try:
                        received = yield RECEIVE
                    except OSError as exc:
                        yield from self._read_failed_gen(exc)
                    connection.receive_data(received)
                    continue
                yield from self._abort_gen()  # ConnectionClosed
                if partial_at_eof and replies:
                    return replies
                raise SMTPServerDisconnected("Connection unexpectedly closed")
        except ProtocolError:
            yield from self._abort_gen()
            raise
        if connection.state is _CLOSED:
            yield from self._abort_gen()  # 421 or the reply to QUIT: the server is going away
        return replies

    def _write_failed_gen(self) -> Generator[IORequest, Any, NoReturn]:
        """A write failed: close, and raise what ``smtplib`` raises."""
        yield from self._abort_gen()
        raise SMTPServerDisconnected("Server not connected") from None

    def _read_failed_gen(self, exc: OSError) -> Generator[IORequest, Any, NoReturn]:
        """A read failed with ``exc``: close, and raise what ``smtplib`` raises."""
        yield from self._abort_gen()
        raise SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc

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
            yield from self._put_gen(command)
        return (yield from self._read_reply_gen())

    def _put_gen(self, command: Command) -> Operation[None]:
        """Write one command without reading its reply; a replaced ``send`` gets it as the
        ``str`` line ``smtplib`` passes (``_write_request`` encodes it back otherwise)."""
        yield from self._exchange_gen(self._encode(command).decode(self.owner.command_encoding), 0)


def _redacted_line(command: Command) -> str:
    """The command line for transcripts and logs, with credentials hidden."""
    if isinstance(command, Auth):
        return f"AUTH {command.mechanism}" + ("" if command.initial_response is None else " ****")
    if isinstance(command, AuthResponse):
        return "*" if command.cancel else "****"
    return command.line()
