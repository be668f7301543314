"""``Client``: the state of an ``smtplib.SMTP`` object and its methods, as I/O-free operations.

Every method that talks to the server returns an *operation* (``smtp_proto.requests``),
which a transport drives with ``smtp_proto.driving``.  This module holds the simple
commands, EHLO and STARTTLS; what they are built on (the connection's lifecycle, the
transcript, writing commands and reading replies) is ``smtp_proto.exchange``, the transaction
``smtp_proto.transaction``, AUTH ``smtp_proto.authentication``, the reading of the message
``smtp_proto.source``.
"""

from __future__ import annotations

import contextlib
import email.message
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from ._renamed import ModuleGetattr, renamed
from .authentication import auth_gen, login_gen
from .bdat import BDAT_WINDOW
from .commands import (
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
from .data import data_gen
from .errors import (
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .exchange import Exchange
from .extensions import parse_ehlo
from .message import prepare_message
from .outcome import TransactionReplies
from .requests import (
    CLOSE,
    END_OF_BODY,
    LOCAL_HOSTNAME,
    RECEIVE,
    START_TLS,
    Call,
    IORequest,
    NextRead,
    Operation,
    Request,
)
from .source import Message, Readable, fix_line_ends
from .transaction import Sendmail, sendmail_gen, transaction_gen

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
    "NextRead",
    "Operation",
    "Readable",
    "Request",
    "TransactionReplies",
    "fix_line_ends",
]

Recipients = str | Sequence[str]


class Client(Exchange):
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
            yield from self._write_failed_gen()

    def putcmd(self, cmd: str, args: str = "") -> Operation[None]:
        """Send one command line without reading its reply (``smtplib.SMTP.putcmd``)."""
        return self._put_gen(Raw(cmd, args))

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
            # From the reply itself: a replaced getreply() may have given it, unseen by the
            # connection.
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
        for option in options:
            if option.lower() == "smtputf8":
                if not owner.has_extn("smtputf8"):
                    raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
                owner.command_encoding = "utf-8"
                break
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

        ``msg`` may be streamed from a binary file object or an iterable of ``bytes``, as for
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
        connection = self._connection
        if connection is not None and connection.extensions.chunking and self.owner.chunking:
            # Maybe one round trip, which the drivers run themselves (Sendmail.round_trip
            # decides when the operation starts: another may be under way now).
            return Sendmail(
                self,
                from_addr,
                recipients,
                msg,
                mail_options=mail_options,
                rcpt_options=rcpt_options,
            )
        return sendmail_gen(
            self, from_addr, recipients, msg, mail_options=mail_options, rcpt_options=rcpt_options
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


__getattr__: ModuleGetattr = renamed(globals(), {"NextChunk": "NextRead"})
