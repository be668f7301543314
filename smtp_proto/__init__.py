"""smtp-proto: a sans-I/O SMTP/ESMTP/LMTP client core.

``ClientConnection`` is the h11-style state machine (bytes in, events and bytes out);
``Client`` holds the ``smtplib`` semantics as I/O-free operations that the transports in
``smtp_proto.transports`` drive over sockets, asyncio or trio.
"""

from ._renamed import ModuleGetattr, renamed
from ._version import __version__ as __version__
from .body import BodyEncoder
from .client import Client
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
    quoteaddr,
)
from .connection import (
    NEED_DATA,
    ClientConnection,
    ConnectionClosed,
    DataEnd,
    Event,
    Greeting,
    NeedData,
    State,
)
from .dsn import DSN, RecipientDSN
from .errors import (
    LocalProtocolError,
    ProtocolError,
    ProxyAuthenticationError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    ProxyTimeoutError,
    ProxyUnreachableError,
    RemoteProtocolError,
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
from .extensions import Extensions, parse_ehlo
from .outcome import TransactionReplies
from .proxy import Proxy
from .replies import EnhancedStatus, Reply, ReplyParser
from .requests import (
    CLOSE,
    END_OF_BODY,
    LOCAL_HOSTNAME,
    RECEIVE,
    START_TLS,
    IORequest,
    NextRead,
    Operation,
)
from .send import (
    SendResult,
    SMTPAllRecipientsRefused,
    SMTPAuthNotSupportedError,
    SMTPSecurityError,
)

__all__ = [
    "CLOSE",
    "DSN",
    "END_OF_BODY",
    "LOCAL_HOSTNAME",
    "NEED_DATA",
    "RECEIVE",
    "START_TLS",
    "Auth",
    "AuthResponse",
    "Bdat",
    "BodyEncoder",
    "Client",
    "ClientConnection",
    "Command",
    "ConnectionClosed",
    "Data",
    "DataEnd",
    "Ehlo",
    "EnhancedStatus",
    "Event",
    "Expn",
    "Extensions",
    "Greeting",
    "Helo",
    "Help",
    "IORequest",
    "Lhlo",
    "LocalProtocolError",
    "Mail",
    "NeedData",
    "NextRead",
    "Noop",
    "Operation",
    "ProtocolError",
    "Proxy",
    "ProxyAuthenticationError",
    "ProxyError",
    "ProxyProtocolError",
    "ProxyRefusedError",
    "ProxyTargetUnreachableError",
    "ProxyTimeoutError",
    "ProxyUnreachableError",
    "Quit",
    "Raw",
    "Rcpt",
    "RecipientDSN",
    "RemoteProtocolError",
    "Reply",
    "ReplyParser",
    "Rset",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPMessageTooLarge",
    "SMTPNotSupportedError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPAllRecipientsRefused",
    "SMTPAuthNotSupportedError",
    "SMTPSecurityError",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SendResult",
    "StartTLS",
    "State",
    "TransactionReplies",
    "Vrfy",
    "parse_ehlo",
    "quoteaddr",
]


__getattr__: ModuleGetattr = renamed(globals(), {"NextChunk": "NextRead"})
