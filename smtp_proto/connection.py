"""``ClientConnection``: the I/O-free SMTP/LMTP client state machine, h11-style.

The caller owns the I/O.  It feeds received bytes to ``receive_data`` and pulls events from
``next_event``; it turns commands into bytes with ``send`` (and message bodies with
``send_data``/``end_data`` or ``send_bdat``) and writes them out.  The connection is strict
about framing and safety, not about command order: the server judges order, as with smtplib.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, NoReturn

from .body import BodyEncoder
from .commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Helo,
    Lhlo,
    Mail,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
)
from .errors import LocalProtocolError, RemoteProtocolError
from .extensions import NO_EXTENSIONS, Extensions, parse_ehlo
from .replies import Reply, ReplyParser

__all__ = [
    "NEED_DATA",
    "ClientConnection",
    "ConnectionClosed",
    "DataEnd",
    "Event",
    "Greeting",
    "NeedData",
    "State",
    "take_replies",
]


class State(enum.Enum):
    """Where the connection is; ``ClientConnection.state``."""

    GREETING = "greeting"  # waiting for the server's banner
    READY = "ready"  # commands may be sent
    SASL = "sasl"  # the server sent 334: only an AuthResponse may follow
    BODY = "body"  # DATA got 354: message bytes are being sent
    TLS_HANDSHAKE = "tls-handshake"  # STARTTLS got 220: only a TLS handshake may follow
    CLOSED = "closed"


# The states as plain module constants: the hot paths test them many times per message, and
# a module global is an order of magnitude cheaper to reach than an Enum class attribute.
_GREETING, _READY, _SASL, _BODY, _TLS_HANDSHAKE, _CLOSED = State


class NeedData:
    """The type of ``NEED_DATA``, its one instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: ``next_event`` returns this when a reply is not complete yet: feed more bytes.
NEED_DATA: Final = NeedData()


@dataclass(frozen=True, slots=True)
class Greeting(Reply):
    """The server's banner (220, or 554 when it will not serve us)."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection (EOF) with no reply pending or part of one received."""


@dataclass(frozen=True, slots=True)
class DataEnd(Command):
    """Stands in the reply queue for the end of a message body.

    In LMTP one is queued per accepted recipient (``recipient`` says which), because the
    server answers once per recipient after the body.
    """

    group_end: ClassVar[bool] = False  # RFC 2920: commands may follow the end of data in a group
    recipient: str | None = None

    def line(self) -> str:
        raise LocalProtocolError("DataEnd is not a command; use end_data()")


Event = Greeting | Reply | ConnectionClosed

# The end of an SMTP body stands for no recipient: one immutable instance serves every message.
_DATA_END: Final = DataEnd()

# The commands that start a session afresh (the server's extensions are forgotten).
_GREETINGS: Final = frozenset({Ehlo, Lhlo, Helo})
# The commands whose sending changes more than the queue: the greetings, AUTH (a 334 may
# follow) and a SASL response (allowed only after one).
_SENT_WITH_EFFECT: Final = _GREETINGS | {Auth, AuthResponse}

# Commands whose reply changes the connection's state, by the verb a Raw command may carry.
_RAW_KINDS: dict[str, type[Command]] = {
    "DATA": Data,
    "STARTTLS": StartTLS,
    "QUIT": Quit,
    "RSET": Rset,
    "HELO": Helo,
}


class ClientConnection:
    """The protocol state of one client connection to an SMTP (or LMTP) server.

    Several commands may be in flight when the server advertised PIPELINING (RFC 2920); their
    replies come back in order.  After a ``RemoteProtocolError`` the connection is
    ``CLOSED``; a ``LocalProtocolError`` (a refused command) leaves it unchanged.
    """

    def __init__(self, *, lmtp: bool = False, max_buffer: int = 1 << 20) -> None:
        self.lmtp = lmtp
        self.state: State = _GREETING
        #: What the last successful EHLO/LHLO advertised (nothing before it and after TLS).
        self.extensions: Extensions = NO_EXTENSIONS
        #: Send commands as UTF-8 (after ``MAIL ... SMTPUTF8``) instead of ASCII.
        self.utf8: bool = False
        self._parser = ReplyParser(max_buffer)
        self._pending: deque[Command] = deque()
        self._accepted: list[str] = []
        self._body: BodyEncoder | None = None
        self._eof = False
        self._raw_writes = False

    # ------------------------------------------------------------------ receiving

    @property
    def features(self) -> Mapping[str, str]:
        """``esmtp_features`` of the last successful EHLO/LHLO: ``extensions.features``."""
        return self.extensions.features

    @property
    def awaiting(self) -> int:
        """How many commands sent await their replies (``len(pending)``, without a copy)."""
        return len(self._pending)

    @property
    def pending(self) -> tuple[Command, ...]:
        """The commands sent whose replies have not been returned yet, oldest first."""
        return tuple(self._pending)

    @property
    def accepted_recipients(self) -> tuple[str, ...]:
        """Recipients accepted (2xx to RCPT) in the transaction under way, in order."""
        return tuple(self._accepted)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` means the server closed the connection."""
        if not data:
            self._eof = True
            return
        if self.state is _TLS_HANDSHAKE:
            self._fail(RemoteProtocolError("server sent data between its 220 to STARTTLS and TLS"))
        if self.state is _CLOSED:
            return
        try:
            self._parser.feed(data)
        except RemoteProtocolError as exc:
            self._fail(exc)

    def next_event(self) -> Event | NeedData:
        """The next reply, ``NEED_DATA`` if it is incomplete, or ``ConnectionClosed``."""
        state = self.state
        if state is _CLOSED:
            return ConnectionClosed()
        try:
            reply = self._parser.next_reply()
        except RemoteProtocolError as exc:
            self._fail(exc)
        if reply is None:
            return self._no_reply()
        if state is _GREETING:
            return self._on_greeting(reply)
        pending = self._pending
        if not pending:
            if reply.code == 421:
                self._closed_by_server()
                return reply
            if self._raw_writes:
                return reply
            self._fail(RemoteProtocolError(f"unexpected reply with no command pending: {reply}"))
        command = pending.popleft()
        code = reply.code
        if code == 421:
            self._closed_by_server()
            return reply
        effect = _REPLY_EFFECTS.get(command.__class__)
        if effect is not None:
            effect(self, command, code, reply)
        return reply

    def next_replies(  # noqa: PLR0912 (next_event's usual case inline: issue #14)
        self, replies: list[Reply], count: int
    ) -> NeedData | ConnectionClosed | None:
        """``next_event`` until ``replies`` holds ``count`` replies: a pipelined group's
        replies in one call.

        Each reply is appended to ``replies`` as it comes.  Returns ``None`` once there are
        ``count``, or as soon as a reply closed the connection (a 421, the reply to QUIT);
        ``NEED_DATA`` or ``ConnectionClosed`` when ``next_event`` does.  Raises what
        ``next_event`` raises, with the replies before the error appended.
        """
        pending = self._pending
        parser = self._parser
        if not parser.buffered and not self._eof and self.state is not _CLOSED:
            return NEED_DATA if len(replies) < count else None  # (the usual first call)
        next_reply = parser.next_reply
        accepted = self._accepted
        lmtp = self.lmtp
        while len(replies) < count:
            state = self.state
            if state is _CLOSED or state is _GREETING or not pending:
                event = self.next_event()  # the unusual cases, as next_event handles them
                if not isinstance(event, Reply):
                    return event  # NEED_DATA or ConnectionClosed
                replies.append(event)
                if self.state is _CLOSED:
                    return None
                continue
            # next_event for the usual replies, those to the oldest commands pending: the
            # transaction's (MAIL, RCPT, BDAT) in one call, then any other one by one.
            try:
                reply = _take_replies(parser, pending, replies, count, accepted, lmtp)
                if reply is None:
                    if len(replies) >= count:
                        return None
                    if not pending:
                        continue  # (every command answered: as next_event says)
                    reply = next_reply()
            except RemoteProtocolError as exc:
                self._fail(exc)
            if reply is None:
                return self._no_reply()
            command = pending.popleft()
            code = reply.code
            if code == 421:
                self._closed_by_server()
                replies.append(reply)
                return None
            effect = _REPLY_EFFECTS.get(command.__class__)
            if effect is not None:
                effect(self, command, code, reply)
            replies.append(reply)
            if self.state is _CLOSED:
                return None
        return None

    def _no_reply(self) -> NeedData | ConnectionClosed:
        """What ``next_event`` returns when no complete reply is buffered."""
        if self._eof:
            self.state = _CLOSED
            self._pending.clear()
            return ConnectionClosed()
        return NEED_DATA

    def _on_greeting(self, reply: Reply) -> Greeting:
        greeting = Greeting(reply.code, reply.lines, reply.raw)
        if reply.code == 421:
            self._closed_by_server()
        else:
            self.state = _READY
        return greeting

    # What a reply to each kind of command changes (``_REPLY_EFFECTS``).

    def _after_raw(self, command: Command, code: int, reply: Reply) -> None:
        """A ``Raw`` command's reply changes what its verb's command's would."""
        assert isinstance(command, Raw)
        kind = _RAW_KINDS.get(command.verb.upper())
        effect = None if kind is None else _REPLY_EFFECTS.get(kind)
        if effect is not None:
            effect(self, command, code, reply)

    def _after_rcpt(self, command: Command, code: int, reply: Reply) -> None:
        if code < 300:
            assert isinstance(command, Rcpt)
            self._accepted.append(command.recipient)

    def _after_data_end(self, command: Command, code: int, reply: Reply) -> None:
        if not self._pending or type(self._pending[0]) is not DataEnd:
            self._accepted.clear()  # the last of an LMTP message's replies, or SMTP's one

    def _after_data(self, command: Command, code: int, reply: Reply) -> None:
        if code == 354:
            self.state = _BODY
            self._body = BodyEncoder(stuff_dots=True)

    def _after_new_transaction(self, command: Command, code: int, reply: Reply) -> None:
        self._accepted.clear()

    def _after_ehlo(self, command: Command, code: int, reply: Reply) -> None:
        if code == 250:
            self.extensions = Extensions.from_features(parse_ehlo(reply.text))

    def _after_auth(self, command: Command, code: int, reply: Reply) -> None:
        self.state = _SASL if code == 334 else _READY

    def _after_starttls(self, command: Command, code: int, reply: Reply) -> None:
        if code == 220:
            if self._parser.buffered:
                self._fail(RemoteProtocolError("server sent data after its 220 to STARTTLS"))
            self.state = _TLS_HANDSHAKE

    def _after_quit(self, command: Command, code: int, reply: Reply) -> None:
        self.state = _CLOSED
        self._pending.clear()

    def _after_bdat(self, command: Command, code: int, reply: Reply) -> None:
        assert isinstance(command, Bdat)
        if command.last and self.lmtp and len(self._accepted) > 1:
            # LMTP answers BDAT LAST once per accepted recipient; this reply is the first
            # one's.  (Only known now: RCPTs may be pipelined with the BDATs.)
            followers = [DataEnd(recipient) for recipient in self._accepted[1:]]
            self._pending.extendleft(reversed(followers))
        elif code >= 300 or command.last:
            self._accepted.clear()

    def _closed_by_server(self) -> None:
        """A 421: the server is closing; nothing else will be answered."""
        self.state = _CLOSED
        self._pending.clear()

    def _fail(self, exc: RemoteProtocolError) -> NoReturn:
        self.state = _CLOSED
        self._pending.clear()
        raise exc

    # ------------------------------------------------------------------ sending

    def send(self, command: Command) -> bytes:
        """The bytes for ``command``; its reply is expected in order after those already pending."""
        pending = self._pending
        if (
            self.state is not _READY
            or type(command) in _SENT_WITH_EFFECT
            or (pending and (pending[-1].group_end or not self.extensions.pipelining))
        ):
            return self._send_checked(command)
        data = command.encode(self.utf8)  # the usual command: nothing to refuse but its bytes
        pending.append(command)
        return data

    def _send_checked(self, command: Command) -> bytes:
        """``send``, for a command that may be refused or changes the state as it goes."""
        kind = type(command)
        state = self.state
        if state is not _READY:
            if state is not _SASL:
                raise LocalProtocolError(f"cannot send a command in state {state.value}")
            if kind is not AuthResponse:
                raise LocalProtocolError("the server expects a SASL response (334 pending)")
        elif kind is AuthResponse:
            raise LocalProtocolError("an AuthResponse answers a 334 reply only")
        pending = self._pending
        if pending and (pending[-1].group_end or not self.extensions.pipelining):
            raise LocalProtocolError(
                f"cannot send {kind.__name__} while {type(pending[-1]).__name__} "
                "awaits its reply (the server did not advertise PIPELINING or the "
                "command must end a pipelined group)"
            )
        data = command.encode(self.utf8)
        if kind in _GREETINGS:
            self.extensions = NO_EXTENSIONS
        elif kind is Auth:
            self.state = _SASL  # nothing but a SASL response may follow a 334
        pending.append(command)
        return data

    def send_many(self, commands: Sequence[Command]) -> bytes:
        """The bytes for a pipelined group of commands, queued all or none.

        If any command is refused (``LocalProtocolError``), the connection is left exactly as
        before (nothing queued, state and extensions unchanged), so the caller can raise
        having sent nothing and the replies stay matched to commands.
        """
        pending = self._pending
        if (
            self.state is _READY
            and self.extensions.pipelining
            and (not pending or not pending[-1].group_end)
        ):
            # The usual group (MAIL, RCPTs, DATA or BDAT): with PIPELINING, only a command
            # that ends a group before the last, or one that changes the state as it is
            # sent, makes ``send`` refuse or do more than encode; those take the general way.
            utf8 = self.utf8
            encoded = []
            ended = False  # the command before ends a group
            for command in commands:
                if ended or command.__class__ in _SENT_WITH_EFFECT:
                    break
                ended = command.group_end
                encoded.append(command.encode(utf8))
            else:
                pending.extend(commands)
                return b"".join(encoded)
        return self._send_each(commands)

    def _send_each(self, commands: Sequence[Command]) -> bytes:
        """``send_many`` by ``send``, one command after the other, undone if one is refused."""
        queued = len(self._pending)
        before = (self.state, self.extensions)
        try:
            return b"".join([self.send(command) for command in commands])
        except LocalProtocolError:
            while len(self._pending) > queued:
                self._pending.pop()
            self.state, self.extensions = before
            raise

    def sent_raw(self) -> None:
        """The caller wrote bytes of its own (``smtplib``'s ``send``): replies to them cannot
        be matched to commands, so from now on a reply with no command pending is returned
        as it comes instead of being refused."""
        self._raw_writes = True

    def send_data(self, chunk: bytes | memoryview) -> bytes:
        """Encode part of a message body (after DATA's 354): line endings fixed, dots stuffed."""
        if self._body is None or self.state is not _BODY:
            raise LocalProtocolError("no message body is open (DATA needs a 354 reply first)")
        return bytes(self._body.encode(chunk))  # dot-stuffing always gives bytes

    def end_data(self) -> bytes:
        """Close the message body: the final CRLF if missing and the ``.`` line."""
        if self._body is None or self.state is not _BODY:
            raise LocalProtocolError("no message body is open (DATA needs a 354 reply first)")
        data = self._body.finish()
        self._body = None
        self.state = _READY
        if self.lmtp and self._accepted:
            self._pending.extend(DataEnd(rcpt) for rcpt in self._accepted)
        else:
            self._pending.append(_DATA_END)
        return data

    def send_bdat(self, chunk: bytes, last: bool = False) -> bytes:
        """A BDAT command and its chunk, as one buffer; the chunk is sent unstuffed (RFC 3030)."""
        return self.send(Bdat(len(chunk), last)) + chunk

    def tls_established(self) -> None:
        """Tell the connection the TLS handshake after STARTTLS is done.

        Everything learned before TLS is forgotten (RFC 3207): the client must EHLO again.
        """
        if self.state is not _TLS_HANDSHAKE:
            raise LocalProtocolError("TLS is established only after a 220 reply to STARTTLS")
        self.state = _READY
        self.extensions = NO_EXTENSIONS
        self.utf8 = False

    def close(self) -> None:
        """Mark the connection closed (the transport closed it); it is never reused."""
        self.state = _CLOSED
        self._pending.clear()
        self._body = None


_ReplyEffect = Callable[[ClientConnection, Command, int, Reply], None]


def take_replies(  # noqa: PLR0917 (positional, as the C function takes them)
    parser: ReplyParser,
    pending: deque[Command],
    replies: list[Reply],
    count: int,
    accepted: list[str],
    lmtp: bool,
) -> Reply | None:
    """The replies to the MAIL, RCPT and BDAT commands at the head of ``pending``, taken from
    ``parser`` in order, each command popped and its effect on ``accepted`` applied (MAIL
    empties it, an accepted RCPT adds its recipient, a refused or last BDAT empties it), and
    appended to ``replies`` until it holds ``count``: ``next_replies``' usual case, which
    ``smtp_proto._speedups`` does in C (this function is the reference it is checked against).

    Stops (``None``) when no command is pending, before any other command, before the last
    BDAT of an LMTP message with more than one recipient accepted (it has followers), and
    when no complete reply is buffered.  A 421 is returned, its command still pending: the
    caller closes.  Whatever ``parser`` raises comes out, the replies before it kept.
    """
    while len(replies) < count and pending:
        command = pending[0]
        kind = command.__class__
        if kind is Bdat:
            if command.last and lmtp and len(accepted) > 1:  # type: ignore[attr-defined]
                return None
        elif kind is not Mail and kind is not Rcpt:
            return None
        reply = parser.next_reply()
        if reply is None:
            return None
        code = reply.code
        if code == 421:
            return reply
        pending.popleft()
        if kind is Rcpt:
            if code < 300:
                accepted.append(command.recipient)  # type: ignore[attr-defined]
        elif kind is Mail or code >= 300 or command.last:  # type: ignore[attr-defined]
            accepted.clear()
        replies.append(reply)
    return None


_take_replies = take_replies
if not TYPE_CHECKING:  # (type checkers see the Python function, which the C one mirrors)
    try:
        from ._speedups import bind_commands
    except ImportError:  # installed without a C compiler: the same function, slower
        pass
    else:
        _take_replies = bind_commands(Mail, Rcpt, Bdat)

#: What a reply changes in the connection's state, by the kind of command it answers.
_REPLY_EFFECTS: dict[type[Command], _ReplyEffect] = {
    Rcpt: ClientConnection._after_rcpt,
    DataEnd: ClientConnection._after_data_end,
    Data: ClientConnection._after_data,
    Mail: ClientConnection._after_new_transaction,
    Rset: ClientConnection._after_new_transaction,
    Ehlo: ClientConnection._after_ehlo,
    Lhlo: ClientConnection._after_ehlo,
    Auth: ClientConnection._after_auth,
    AuthResponse: ClientConnection._after_auth,
    StartTLS: ClientConnection._after_starttls,
    Quit: ClientConnection._after_quit,
    Bdat: ClientConnection._after_bdat,
    Raw: ClientConnection._after_raw,
}
