"""The module-level names every adapter exports: smtplib's constants, exceptions, helpers, and ours.

Each adapter module is a drop-in for the ``smtplib`` module, so besides its ``SMTP``,
``SMTP_SSL`` and ``LMTP`` classes it offers these, defined once here.
"""

from smtp_proto.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
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

from ._common import CRLF, LMTP_PORT, SMTP_PORT, SMTP_SSL_PORT, bCRLF, quoteaddr, quotedata

__all__ = [
    "CRLF",
    "LMTP_PORT",
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
    "SMTP_PORT",
    "SMTP_SSL_PORT",
    "bCRLF",
    "quoteaddr",
    "quotedata",
]
