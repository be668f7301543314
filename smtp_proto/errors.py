"""Exceptions: the stdlib ``smtplib`` classes themselves, extended, plus protocol errors.

Each ``SMTP...`` exception here subclasses the ``smtplib`` class of the same name, so code
that catches ``smtplib.SMTPException`` (Django's backend, ``logging.handlers.SMTPHandler``,
retry decorators) catches what this library raises, through whichever module it imported.
They keep ``smtplib``'s attributes (``smtp_code``, ``smtp_error``, ``sender``, ``recipients``)
and add ``enhanced_status``, the RFC 3463 code parsed from the reply where the server sent one.

``smtplib`` is imported for its classes only: the core still opens no socket.
"""

from __future__ import annotations

import smtplib

from .status import EnhancedStatus, parse_enhanced_status

__all__ = [
    "CommandEncodingError",
    "LocalProtocolError",
    "MalformedGreeting",
    "ProtocolError",
    "ProxyAuthenticationError",
    "ProxyError",
    "ProxyProtocolError",
    "ProxyRefusedError",
    "ProxyTargetUnreachableError",
    "ProxyTimeoutError",
    "ProxyUnreachableError",
    "RemoteProtocolError",
    "ReplyLineTooLong",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPMessageTooLarge",
    "SMTPNotSupportedError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
]


class SMTPException(smtplib.SMTPException):
    """Base class of every exception this library raises about SMTP (an ``OSError``)."""


class SMTPNotSupportedError(SMTPException, smtplib.SMTPNotSupportedError):
    """The command or option is not supported by the server."""


class SMTPServerDisconnected(SMTPException, smtplib.SMTPServerDisconnected):
    """The connection is closed: by the server, by a network error, or never opened."""


class SMTPResponseException(SMTPException, smtplib.SMTPResponseException):
    """The server answered with an error code; ``smtp_code`` and ``smtp_error`` hold the reply."""

    @property
    def enhanced_status(self) -> EnhancedStatus | None:
        """The RFC 3463 ``class.subject.detail`` code at the start of the reply text, if any."""
        text = self.smtp_error
        if isinstance(text, str):
            text = text.encode("utf-8", "replace")
        return parse_enhanced_status(self.smtp_code, text)


class SMTPSenderRefused(SMTPResponseException, smtplib.SMTPSenderRefused):
    """The server refused the envelope sender (``sender``)."""


class SMTPMessageTooLarge(SMTPSenderRefused):
    """The message is larger than the server's SIZE limit (RFC 1870); nothing was sent.

    A server refuses such a message at MAIL with 552, which ``smtplib`` raises as
    ``SMTPSenderRefused``; this is that exception (code 552, the sender), raised before any
    byte of the transaction goes out, so the connection stays usable.  ``size`` and
    ``limit`` are in bytes.
    """

    def __init__(self, size: int, limit: int, sender: str) -> None:
        text = f"5.3.4 Message of {size} bytes exceeds the server's SIZE limit of {limit} bytes"
        super().__init__(552, text.encode("ascii"), sender)
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[type[SMTPMessageTooLarge], tuple[int, int, str]]:
        return type(self), (self.size, self.limit, self.sender)


class SMTPRecipientsRefused(SMTPException, smtplib.SMTPRecipientsRefused):
    """Every recipient was refused; ``recipients`` maps each one to its ``(code, text)`` reply."""

    recipients: dict[str, tuple[int, bytes]]


class SMTPDataError(SMTPResponseException, smtplib.SMTPDataError):
    """The server refused the message data."""


class SMTPConnectError(SMTPResponseException, smtplib.SMTPConnectError):
    """The server's greeting was not a 220, or not a reply at all."""


class SMTPHeloError(SMTPResponseException, smtplib.SMTPHeloError):
    """The server refused HELO or EHLO."""


class SMTPAuthenticationError(SMTPResponseException, smtplib.SMTPAuthenticationError):
    """Authentication failed: the server refused the credentials or every mechanism tried."""


class ProtocolError(Exception):
    """A protocol rule was broken: by the caller (:class:`LocalProtocolError`, a ``ValueError``:
    nothing sent, the connection unchanged) or by the server (:class:`RemoteProtocolError`, an
    ``SMTPServerDisconnected``: the connection closed)."""


class LocalProtocolError(ProtocolError, ValueError):
    """The caller asked for something that would corrupt the byte stream.

    Examples: CR, LF or NUL inside a command argument, a command while a message body is open.
    A programming error, not a network one: a ``ValueError`` (what ``smtplib`` raises for a
    newline in a command), never an ``OSError``, so ``except OSError`` around network code
    does not swallow it.  Nothing is sent and the connection stays usable.
    """


class CommandEncodingError(LocalProtocolError, UnicodeEncodeError):
    """A command holds non-ASCII text and the session is not in SMTPUTF8 mode.

    A ``UnicodeEncodeError``, as ``smtplib`` raises, but raised before anything is sent.
    """

    def __str__(self) -> str:
        return f"{super().__str__()} (non-ASCII text in a command requires SMTPUTF8)"


class RemoteProtocolError(ProtocolError, SMTPServerDisconnected):
    """The server sent something no correct server sends (garbage, overlong lines, ...).

    It is an ``SMTPServerDisconnected`` too: the connection is closed after one.  ``line``
    is the offending reply line, when one line was at fault.
    """

    line = b""


class ReplyLineTooLong(RemoteProtocolError, SMTPResponseException):
    """A reply line longer than the limit: ``smtplib``'s ``SMTPResponseException(500, "Line
    too long.")``, and a ``RemoteProtocolError`` (the connection is closed)."""

    def __init__(self) -> None:
        SMTPResponseException.__init__(self, 500, "Line too long.")

    def __reduce__(self) -> tuple[type[ReplyLineTooLong], tuple[()]]:
        return type(self), ()


class MalformedGreeting(RemoteProtocolError, SMTPConnectError):
    """The server's banner is no SMTP reply (``199 hi``, garbage): the ``SMTPConnectError``
    ``smtplib.SMTP(host)`` raises for it (the code the line starts with, else -1), and a
    ``RemoteProtocolError`` (the connection is closed)."""

    def __init__(self, line: bytes) -> None:
        code = int(line[:3]) if line[:3].isdigit() else -1
        SMTPConnectError.__init__(self, code, line[4:].strip())  # smtplib's text, even for -1
        self.line = line

    def __reduce__(self) -> tuple[type[MalformedGreeting], tuple[bytes]]:
        return type(self), (self.line,)


class ProxyError(ConnectionError):
    """The proxy the connection goes through failed, not the mail server: the base class of
    the proxy errors.  A ``ConnectionError`` (an ``OSError``), as a failed connection is in
    ``smtplib``, so code that handles those handles these; the connection is closed."""


class ProxyUnreachableError(ProxyError):
    """The proxy itself could not be reached (refused, no route, its name not found, timed
    out); ``__cause__`` is the error connecting to it."""


class ProxyTimeoutError(ProxyError, TimeoutError):
    """The proxy's handshake took longer than ``timeout`` (bounded as a whole: a proxy that
    drips its reply gets this too); a ``TimeoutError`` as well."""


class ProxyProtocolError(ProxyError):
    """The proxy broke its protocol: garbage or an oversize reply, a method or version it was
    not offered, or the connection closed half-way through the handshake."""


class ProxyRefusedError(ProxyError):
    """The proxy refused to open the tunnel: ``code`` is its SOCKS reply code or HTTP status,
    ``reason`` its words (or the RFC's, for SOCKS)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"proxy refused ({code}): {reason}")
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[type[ProxyRefusedError], tuple[int, str]]:
        return type(self), (self.code, self.reason)


class ProxyAuthenticationError(ProxyRefusedError):
    """The proxy refused the credentials given, or wants credentials and none were given."""


class ProxyTargetUnreachableError(ProxyRefusedError):
    """The proxy could not reach the mail server (refused, unreachable, timed out there)."""
