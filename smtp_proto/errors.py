"""Exceptions: the stdlib ``smtplib`` hierarchy, same names and attributes, plus protocol errors.

Code written for ``smtplib`` catches these by the same names and reads the same attributes
(``smtp_code``, ``smtp_error``, ``sender``, ``recipients``).  Replies also carry the parsed
RFC 3463 enhanced status code as ``enhanced_status`` where the server sent one.
"""

from __future__ import annotations

from .status import EnhancedStatus, parse_enhanced_status

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
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


class SMTPException(OSError):
    """Base class of every exception this library raises about SMTP."""


class SMTPNotSupportedError(SMTPException):
    """The command or option is not supported by the server."""


class SMTPServerDisconnected(SMTPException):
    """The connection is closed: by the server, by a network error, or never opened."""


class SMTPResponseException(SMTPException):
    """The server answered with an error code; ``smtp_code`` and ``smtp_error`` hold the reply."""

    def __init__(self, code: int, msg: bytes | str) -> None:
        self.smtp_code = code
        self.smtp_error = msg
        self.args = (code, msg)

    @property
    def enhanced_status(self) -> EnhancedStatus | None:
        """The RFC 3463 ``class.subject.detail`` code at the start of the reply text, if any."""
        text = self.smtp_error
        if isinstance(text, str):
            text = text.encode("utf-8", "replace")
        return parse_enhanced_status(self.smtp_code, text)


class SMTPSenderRefused(SMTPResponseException):
    """The server refused the envelope sender (``sender``)."""

    def __init__(self, code: int, msg: bytes | str, sender: str) -> None:
        self.smtp_code = code
        self.smtp_error = msg
        self.sender = sender
        self.args = (code, msg, sender)


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


class SMTPRecipientsRefused(SMTPException):
    """Every recipient was refused; ``recipients`` maps each one to its ``(code, text)`` reply."""

    def __init__(self, recipients: dict[str, tuple[int, bytes]]) -> None:
        self.recipients = recipients
        self.args = (recipients,)


class SMTPDataError(SMTPResponseException):
    """The server refused the message data."""


class SMTPConnectError(SMTPResponseException):
    """The server's greeting was not a 220."""


class SMTPHeloError(SMTPResponseException):
    """The server refused HELO or EHLO."""


class SMTPAuthenticationError(SMTPResponseException):
    """Authentication failed: the server refused the credentials or every mechanism tried."""


class ProtocolError(SMTPException):
    """A protocol rule was broken: by the caller (:class:`LocalProtocolError`, nothing sent, the
    connection unchanged) or by the server (:class:`RemoteProtocolError`, the connection closed).
    """


class LocalProtocolError(ProtocolError, ValueError):
    """The caller asked for something that would corrupt the byte stream.

    Examples: CR, LF or NUL inside a command argument, a command while a message body is open.
    Like ``smtplib``'s refusal of newlines in commands, it is also a ``ValueError``.  Nothing is
    sent and the connection stays usable.
    """


class RemoteProtocolError(ProtocolError, SMTPServerDisconnected):
    """The server sent something no correct server sends (garbage, overlong lines, ...).

    It is an ``SMTPServerDisconnected`` too: the connection is closed after one.
    """
