"""The module-level names every adapter exports: smtplib's constants, exceptions, helpers, and ours.

Each adapter module is a drop-in for the ``smtplib`` module, so besides its ``SMTP``,
``SMTP_SSL`` and ``LMTP`` classes it offers these, defined once here, the private ones that
real code imports included (python-emails does ``from smtplib import _have_ssl``).
"""

import re
from email.base64mime import body_encode as encode_base64

from smtp_proto.authentication import MAX_AUTH_CHALLENGES
from smtp_proto.commands import address_only
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
from smtp_proto.extensions import OLDSTYLE_AUTH
from smtp_proto.replies import MAX_LINE_LENGTH
from smtp_proto.source import fix_line_ends

from ._common import CRLF, LMTP_PORT, SMTP_PORT, SMTP_SSL_PORT, bCRLF, quoteaddr, quotedata

try:
    import ssl  # noqa: F401 (whether it can be)
except ImportError:
    _have_ssl = False
else:
    _have_ssl = True

#: The longest reply line accepted; a longer one is ``SMTPResponseException(500, ...)``.
_MAXLINE = MAX_LINE_LENGTH
#: The most 334 challenges one AUTH exchange may take.
_MAXCHALLENGE = MAX_AUTH_CHALLENGES
_addr_only = address_only
_fix_eols = fix_line_ends
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def _quote_periods(bindata: bytes) -> bytes:
    """``bindata`` with every dot that starts a line doubled (``smtplib``'s helper)."""
    return _LEADING_DOT.sub(b"..", bindata)


__all__ = [
    "CRLF",
    "LMTP_PORT",
    "OLDSTYLE_AUTH",
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
    "encode_base64",
    "quoteaddr",
    "quotedata",
    # smtplib's private names that real code imports (listed, so that ``import *`` takes them)
    "_MAXCHALLENGE",
    "_MAXLINE",
    "_addr_only",
    "_fix_eols",
    "_have_ssl",
    "_quote_periods",
]
