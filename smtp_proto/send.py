"""The high-level send: one operation from EHLO to QUIT, with secure defaults.

``Submission`` checks what the caller asked for before any connection is made (the
envelope, the body, how TLS is to be used, the credentials, DSN); its ``operation(client)``
is then the whole session on a connected ``Client`` whose greeting was read: EHLO, STARTTLS
(required unless relaxed), EHLO again, AUTH (only over TLS unless relaxed), the
transaction with the parameters the message needs (SMTPUTF8, 8BITMIME, BINARYMIME, DSN,
SIZE; BDAT when offered), and QUIT.  It returns a ``SendResult``, or raises
``SMTPAllRecipientsRefused`` (which carries it) when no recipient took the message.  The
transports only open the connection the ``Submission`` describes and drive the operation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from . import sasl
from .client import Client
from .dsn import DSN
from .errors import (
    ProtocolError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .limits import Limits
from .message import prepare_message
from .outcome import TransactionReplies
from .ports import LMTP_PORT, SMTPS_PORT, SUBMISSION_PORT
from .replies import Reply
from .requests import Operation
from .source import Message, fix_line_ends

__all__ = [
    "Credentials",
    "SMTPAllRecipientsRefused",
    "SMTPAuthNotSupportedError",
    "SMTPSecurityError",
    "SendResult",
    "Submission",
    "TLSMode",
    "body_kind",
    "merge_outcomes",
    "send_outcome",
]

#: How TLS is used: ``auto`` is implicit TLS on port 465 and required STARTTLS elsewhere
#: (no TLS on an LMTP Unix socket); ``implicit`` and ``starttls`` say which one explicitly;
#: ``opportunistic`` uses STARTTLS when offered and goes on in clear text otherwise;
#: ``none`` never encrypts.  The last two are the explicit relaxations.
TLSMode = Literal["auto", "implicit", "starttls", "opportunistic", "none"]
TLS_MODES: tuple[str, ...] = ("auto", "implicit", "starttls", "opportunistic", "none")

BodyKind = Literal["7bit", "8bit", "binary", "stream"]
_STATUS = rb"(?:[245]\.\d{1,3}\.\d{1,3}:?\s+)?"  # an RFC 3463 code first, if any
#: How common servers name the queue id in their final reply (``(?m)``: any of its lines), in
#: the order they are tried: Postfix (and the services built on it), Exim, Microsoft Exchange,
#: Gmail, Sendmail and OpenSMTPD, Amazon SES, qmail.
_QUEUE_IDS = tuple(
    re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    for pattern in (
        rb"queued as\s*([A-Za-z0-9][A-Za-z0-9._-]*)",
        rb"\bid=\s*([A-Za-z0-9][A-Za-z0-9._-]*)",
        rb"\[InternalId=(\d+)",
        rb"^" + _STATUS + rb"OK\s+\d+\s+([A-Za-z0-9._-]+)\s+-\s+gsmtp",
        rb"^" + _STATUS + rb"([A-Za-z0-9]+)\s+Message accepted for delivery",
        rb"^" + _STATUS + rb"Ok\s+([A-Za-z0-9]+(?:-[A-Za-z0-9]+)+)\s*$",
        rb"^ok\s+\d+\s+qp\s+(\d+)",
    )
)


class SMTPSecurityError(SMTPNotSupportedError):
    """The session cannot be as secure as asked: the server offers no STARTTLS where TLS is
    required, or credentials would travel in clear text.  Nothing but EHLO was sent."""


class SMTPAuthNotSupportedError(SMTPNotSupportedError):
    """Credentials were given, but the server offers no AUTH, or no mechanism they can use.

    Its own type, so that a caller can tell a login that could not happen from a message
    the server cannot take (the other kinds of ``SMTPNotSupportedError``).  No envelope was
    sent.
    """


@dataclass(frozen=True)
class SendResult:
    """What the server said about one message.

    ``accepted`` and ``refused`` map each recipient to its reply: the reply to RCPT, or for
    LMTP the reply after the body.  ``data_reply`` is the final reply to the body (DATA or
    BDAT; its text often names the queue id), ``None`` for LMTP, whose per-recipient final
    replies are in ``lmtp_replies``.
    """

    accepted: dict[str, Reply]
    refused: dict[str, Reply]
    data_reply: Reply | None
    lmtp_replies: dict[str, Reply] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every recipient was accepted."""
        return not self.refused

    @property
    def queue_id(self) -> str | None:
        """The queue id in the final reply, if the server names it in a form it knows:
        Postfix's ``queued as X``, Exim's ``id=X``, Exchange's ``[InternalId=X, ...]``,
        Gmail's ``OK <time> X - gsmtp``, Sendmail's and OpenSMTPD's ``X Message accepted for
        delivery``, Amazon SES's ``Ok X``, qmail's ``ok <time> qp X``."""
        if self.data_reply is None:
            return None
        text = self.data_reply.text
        for pattern in _QUEUE_IDS:
            match = pattern.search(text)
            if match is not None:
                return match[1].decode("ascii")
        return None


class SMTPAllRecipientsRefused(SMTPRecipientsRefused):
    """``send`` delivered to nobody: every recipient was refused, at RCPT or (LMTP) after the
    message.  ``recipients`` is as for ``sendmail``; ``result`` has every reply there was,
    with the LMTP replies after the message in ``result.lmtp_replies``."""

    def __init__(self, recipients: dict[str, tuple[int, bytes]], result: SendResult) -> None:
        super().__init__(recipients)
        self.result = result

    def __reduce__(
        self,
    ) -> tuple[type[SMTPAllRecipientsRefused], tuple[dict[str, tuple[int, bytes]], SendResult]]:
        return type(self), (self.recipients, self.result)


def body_kind(data: bytes) -> BodyKind:
    """What a body needs: ``7bit`` (ASCII), ``8bit`` (8BITMIME) or ``binary`` (BINARYMIME).

    Only a NUL byte makes a body binary: no text body may carry one.  Bare CR and LF are
    line ends written the Unix or old Mac way, turned into CRLF on the way as ``sendmail``
    does (the MTA would do the same); lines over 998 octets are the server's to judge, as
    with ``smtplib``.  ``binary=True`` sends a body byte for byte instead.
    """
    if b"\0" in data:
        return "binary"
    return "7bit" if data.isascii() else "8bit"


def _header_block(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[:end]


@dataclass(frozen=True)
class Credentials:
    """Who logs in, and how; the secrets are left out of ``repr`` (tracebacks, logs)."""

    username: str
    password: str | None = field(repr=False)
    oauth2_token: str | Callable[[], str] | None = field(repr=False)
    mechanism: str | None


@dataclass(frozen=True)
class Submission:
    """One message to send and how, checked before connecting (``create``)."""

    sender: str
    recipients: tuple[str, ...]
    body: Message
    kind: BodyKind
    international: bool
    port: int
    implicit_tls: bool
    starttls: Literal["require", "try", "never"]
    credentials: Credentials | None
    plaintext_auth: bool
    dsn: DSN | None
    chunking: bool
    lmtp: bool

    @classmethod
    def create(
        cls,
        message: email.message.Message | Message,
        host: str,
        port: int | None = None,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        tls: TLSMode = "auto",
        username: str | None = None,
        password: str | None = None,
        oauth2_token: str | Callable[[], str] | None = None,
        mechanism: str | None = None,
        plaintext_auth: bool = False,
        dsn: DSN | None = None,
        chunking: bool = True,
        binary: bool | None = None,
        lmtp: bool = False,
    ) -> Submission:
        """Check the arguments of ``send`` (see the transports) and work out the envelope,
        the body and the connection; ``ValueError`` / ``TypeError`` for bad ones."""
        port, implicit, starttls = _connection_plan(host, port, tls, lmtp)
        credentials = _credentials(username, password, oauth2_token, mechanism)
        sender, targets, body, international = _envelope(message, sender, recipients)
        if not targets:
            raise ValueError("no recipients")
        kind, international = _body_kind(body, binary, international)
        return cls(
            sender=sender,
            recipients=tuple(targets),
            body=body,
            kind=kind,
            international=international,
            port=port,
            implicit_tls=implicit,
            starttls=starttls,
            credentials=credentials,
            plaintext_auth=plaintext_auth,
            dsn=dsn,
            chunking=chunking,
            lmtp=lmtp,
        )

    # ------------------------------------------------------------------ the session

    def operation(self, client: Client) -> Operation[SendResult]:
        """The session after the greeting, to QUIT; ``client`` must be connected.

        A transaction that delivers to nobody ends with QUIT too, then raises
        ``SMTPAllRecipientsRefused``.
        """
        yield from self.open(client)
        try:
            result = yield from self.deliver(client)
        except SMTPAllRecipientsRefused:
            yield from _quit_gen(client)
            raise
        yield from _quit_gen(client)
        return result

    def open(self, client: Client) -> Operation[None]:
        """The session's opening, once per connection: EHLO, STARTTLS (as ``tls`` says) and
        EHLO again, AUTH."""
        encrypted = self.implicit_tls
        yield from self._hello(client, encrypted)
        if self.starttls != "never" and not encrypted:
            if client.owner.has_extn("starttls"):
                yield from client.starttls()
                encrypted = True
                yield from self._hello(client, encrypted)
            elif self.starttls == "require":
                raise SMTPSecurityError(
                    "the server does not offer STARTTLS; nothing was sent (pass "
                    "tls='opportunistic' or tls='none' to send without TLS)"
                )
        if self.credentials is not None:
            if not encrypted and not self.plaintext_auth:
                raise SMTPSecurityError(
                    "refusing to send credentials without TLS (pass plaintext_auth=True to "
                    "allow it)"
                )
            yield from _authenticate(client, self.credentials)

    def deliver(self, client: Client) -> Operation[SendResult]:
        """The message's transaction on a session ``open`` opened (any number of them may
        follow each other); raises ``SMTPAllRecipientsRefused`` when nobody took it.

        When the server announces RFC 9422 ``LIMITS`` that the recipients exceed
        (``RCPTMAX``, ``RCPTDOMAINMAX``), the message goes as several transactions, one after
        another on this session (``Limits.split``), and its outcome merges theirs
        (``merge_outcomes``): a transaction that failed as a whole leaves its recipients
        refused while the others' are delivered.
        """
        groups = Limits.from_features(client.owner.esmtp_features).split(self.recipients)
        if len(groups) == 1:
            outcome = yield from self._transaction_gen(client)
        else:
            parts: list[tuple[Sequence[str], SendResult | Exception]] = []
            for group in groups:
                part = dataclasses.replace(self, recipients=tuple(group))
                try:
                    parts.append((group, (yield from part._transaction_gen(client))))
                except (SMTPException, OSError, ProtocolError) as exc:  # the session's state
                    parts.append((group, exc))  # (a lost connection fails the next ones too)
            outcome = merge_outcomes(parts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _transaction_gen(self, client: Client) -> Operation[SendResult | Exception]:
        """One transaction for all the recipients: its ``send_outcome`` (a refusal of
        everyone returned, not raised; any other failure raised)."""
        options = self.mail_options(client)
        client.owner.chunking = self.chunking
        refusal: SMTPRecipientsRefused | None = None
        try:
            yield from client.transaction(self.sender, self.rcpt_options(), self.body, options)
        except SMTPRecipientsRefused as exc:
            refusal = exc
        return send_outcome(client.last_replies, client.lmtp, refusal)

    def rcpt_options(self) -> list[tuple[str, list[str]]]:
        """Each recipient with its RCPT parameters (DSN's)."""
        dsn = self.dsn
        return [(r, dsn.rcpt_options(r) if dsn else []) for r in self.recipients]

    def _hello(self, client: Client, encrypted: bool) -> Operation[None]:
        """EHLO (LHLO); HELO only where no extension is needed."""
        code, text = yield from client.ehlo()
        if 200 <= code < 300:
            return
        if self.starttls == "require" and not encrypted:
            raise SMTPSecurityError(
                f"EHLO refused ({code}), so STARTTLS is not available; nothing was sent"
            )
        if client.lmtp:
            raise SMTPHeloError(code, text)
        code, text = yield from client.helo()
        if not 200 <= code < 300:
            raise SMTPHeloError(code, text)

    def mail_options(self, client: Client) -> list[str]:
        """MAIL parameters for this message on this server; refuses what it cannot take."""
        features = client.connection.extensions
        options: list[str] = []
        if self.kind == "binary":
            if not (features.binarymime and features.chunking):
                raise SMTPNotSupportedError(
                    "the message is binary (it has NUL bytes, or binary=True was given) "
                    "and the server does not advertise BINARYMIME and CHUNKING"
                )
            options.append("BODY=BINARYMIME")
        elif self.kind == "8bit" or (self.kind == "stream" and features.eightbitmime):
            if not features.eightbitmime:
                raise SMTPNotSupportedError(
                    "the message has 8-bit content and the server does not advertise 8BITMIME"
                )
            options.append("BODY=8BITMIME")
        if self.international:
            if not features.smtputf8:
                raise SMTPNotSupportedError(
                    "the envelope or header has non-ASCII text and the server does not "
                    "advertise SMTPUTF8"
                )
            options.append("SMTPUTF8")
        if self.dsn is not None:
            dsn_options = self.dsn.mail_options()
            wanted = dsn_options or any(self.dsn.rcpt_options(r) for r in self.recipients)
            if wanted and not features.dsn:
                raise SMTPNotSupportedError(
                    "delivery status notifications were asked for and the server does not "
                    "advertise DSN"
                )
            options += dsn_options
        return options


def _connection_plan(
    host: str, port: int | None, tls: TLSMode, lmtp: bool
) -> tuple[int, bool, Literal["require", "try", "never"]]:
    """The port (0 for a Unix socket), whether TLS is implicit, and what to do about STARTTLS."""
    if tls not in TLS_MODES:
        raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    unix = lmtp and host.startswith("/")
    implicit = tls == "implicit" or (tls == "auto" and port == SMTPS_PORT and not unix)
    if implicit and lmtp:
        raise ValueError("LMTP over implicit TLS is not supported: use tls='starttls'")
    starttls: Literal["require", "try", "never"]
    if unix and tls == "auto":
        starttls = "never"
    elif tls in ("auto", "starttls"):
        starttls = "never" if implicit else "require"
    else:
        starttls = "try" if tls == "opportunistic" else "never"
    if port is None:
        port = 0 if unix else SMTPS_PORT if implicit else LMTP_PORT if lmtp else SUBMISSION_PORT
    return port, implicit, starttls


def _credentials(
    username: str | None,
    password: str | None,
    oauth2_token: str | Callable[[], str] | None,
    mechanism: str | None,
) -> Credentials | None:
    """The credentials to log in with, if any; a username needs exactly one secret."""
    if password is None and oauth2_token is None:
        if username is not None:
            raise ValueError("a username needs a password or an OAuth 2 token")
        return None
    if not username:
        raise ValueError("a password or an OAuth 2 token needs a username")
    if password is not None and oauth2_token is not None:
        raise ValueError("give a password or an OAuth 2 token, not both")
    return Credentials(username, password, oauth2_token, mechanism)


def _envelope(
    message: email.message.Message | Message,
    sender: str | None,
    recipients: str | Sequence[str] | None,
) -> tuple[str, list[str], Message, bool]:
    """The sender, the recipients, the body and whether an address is international: from
    an ``EmailMessage``'s headers (``send_message``'s rules) unless given, else as given."""
    if isinstance(message, email.message.Message):
        prepared = prepare_message(message, sender, recipients)
        return prepared.from_addr, prepared.to_addrs, prepared.data, prepared.international
    if sender is None or recipients is None:
        raise TypeError("a message given as bytes or a stream needs sender= and recipients=")
    targets = [recipients] if isinstance(recipients, str) else list(recipients)
    if isinstance(message, str):
        message = fix_line_ends(message).encode("utf-8")
    elif isinstance(message, bytearray | memoryview):
        message = bytes(message)
    international = not all(address.isascii() for address in (sender, *targets))
    return sender, targets, message, international


def _body_kind(body: Message, binary: bool | None, international: bool) -> tuple[BodyKind, bool]:
    """How the body goes (``7bit``, ``8bit``, ``binary`` or ``stream``), and whether the
    message is international once its header block is seen too."""
    if isinstance(body, bytes):
        kind: BodyKind = body_kind(body)
        if binary is False and kind == "binary":
            kind = "7bit" if body.isascii() else "8bit"  # line ends fixed on the way
        international = international or not _header_block(body).isascii()
    else:
        kind = "stream"
    return ("binary" if binary else kind), international


def _authenticate(client: Client, credentials: Credentials) -> Operation[None]:
    """AUTH with a password (the named mechanism, or ``login``'s choice) or an OAuth 2 token
    (OAUTHBEARER or XOAUTH2, whichever is offered, or the named one)."""
    advertised = client.connection.extensions.auth
    if not advertised:
        raise SMTPAuthNotSupportedError("SMTP AUTH extension not supported by server.")
    name = credentials.mechanism.upper() if credentials.mechanism else None
    mechanism: sasl.Mechanism
    if credentials.oauth2_token is not None:
        if name is None:
            name = next((n for n in ("OAUTHBEARER", "XOAUTH2") if n in advertised), None)
            if name is None:
                raise SMTPAuthNotSupportedError("the server offers neither OAUTHBEARER nor XOAUTH2")
        if name == "OAUTHBEARER":
            mechanism = sasl.OAuthBearer(credentials.username, credentials.oauth2_token)
        elif name == "XOAUTH2":
            mechanism = sasl.XOAuth2(credentials.username, credentials.oauth2_token)
        else:
            raise ValueError(f"an OAuth 2 token goes with OAUTHBEARER or XOAUTH2, not {name}")
    else:
        assert credentials.password is not None
        if name is None:
            if not any(known in advertised for known in sasl.PASSWORD_MECHANISMS):
                offered = " ".join(sorted(advertised))
                raise SMTPAuthNotSupportedError(f"no password mechanism among AUTH {offered}")
            yield from client.login(credentials.username, credentials.password)
            return
        try:
            mechanism = sasl.mechanism_for(name, credentials.username, credentials.password)
        except KeyError:
            raise ValueError(f"unknown password mechanism {name}") from None
    if name not in advertised:
        raise SMTPAuthNotSupportedError(f"the server does not offer AUTH {name}")
    yield from client.auth(name, mechanism)


def send_outcome(
    replies: TransactionReplies, lmtp: bool, error: Exception | None = None
) -> SendResult | Exception:
    """What ``send`` reports for a transaction with these replies, which returned (``error``
    is ``None``) or raised ``error``: its ``SendResult``, or ``SMTPAllRecipientsRefused``
    carrying it when every recipient was refused, or ``error`` itself."""
    if error is None:
        return _result(replies, lmtp)
    if isinstance(error, SMTPRecipientsRefused):
        return SMTPAllRecipientsRefused(error.recipients, _result(replies, lmtp))
    return error


def merge_outcomes(
    parts: Iterable[tuple[Sequence[str], SendResult | Exception]],
) -> SendResult | Exception:
    """The outcome of one message sent as several transactions, from each one's recipients
    and outcome, in the order they were sent.  A later transaction's reply to a recipient
    replaces an earlier one's (a recipient sent again after a passing refusal).

    If a transaction delivered: a ``SendResult`` with every recipient (those of a transaction
    that failed as a whole refused with that failure's code, -1 for none, as ``smtplib``
    reports an unanswered LMTP recipient), whose ``data_reply`` is the first delivery's.  Else
    ``SMTPAllRecipientsRefused`` when every transaction was refused so, or the first other
    failure.
    """
    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    lmtp: dict[str, Reply] = {}
    delivered: list[SendResult] = []
    failures: list[Exception] = []

    def record(recipient: str, reply: Reply, into: dict[str, Reply]) -> None:
        accepted.pop(recipient, None)
        refused.pop(recipient, None)
        into[recipient] = reply

    for recipients, outcome in parts:
        result = outcome.result if isinstance(outcome, SMTPAllRecipientsRefused) else outcome
        if isinstance(result, SendResult):
            for recipient, reply in result.accepted.items():
                record(recipient, reply, accepted)
            for recipient, reply in result.refused.items():
                record(recipient, reply, refused)
            lmtp |= result.lmtp_replies
            if outcome is result:
                delivered.append(result)
            continue
        assert isinstance(outcome, Exception)
        failures.append(outcome)
        code, text = (
            (outcome.smtp_code, outcome.smtp_error)
            if isinstance(outcome, SMTPResponseException)
            else (-1, str(outcome).encode("utf-8", "replace"))
        )
        for recipient in recipients:
            record(recipient, Reply.from_tuple(code, text), refused)
    if delivered:
        return SendResult(accepted, refused, delivered[0].data_reply, lmtp)
    if failures:
        return failures[0]
    everyone = {recipient: reply.as_tuple() for recipient, reply in refused.items()}
    return SMTPAllRecipientsRefused(everyone, SendResult(accepted, refused, None, lmtp))


def _quit_gen(client: Client) -> Operation[None]:
    """QUIT after the transaction: a server hanging up at QUIT (or before) changes nothing."""
    with contextlib.suppress(SMTPServerDisconnected):
        yield from client.quit()


def _result(replies: TransactionReplies, lmtp: bool) -> SendResult:
    """The ``SendResult`` of a transaction, from its replies."""
    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    for recipient, reply in replies.rcpt.items():
        (accepted if reply.code in (250, 251) else refused)[recipient] = reply
    if not lmtp:
        return SendResult(accepted, refused, replies.body.get(""))
    lmtp_replies = {recipient: reply for recipient, reply in replies.body.items() if recipient}
    for recipient, reply in lmtp_replies.items():
        accepted.pop(recipient, None)
        (accepted if 200 <= reply.code < 300 else refused)[recipient] = reply
    return SendResult(accepted, refused, None, lmtp_replies)
