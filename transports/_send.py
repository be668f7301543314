"""The high-level ``send`` of every adapter: its options, and the client object of the right
class for a ``Submission``.  The protocol is all in ``smtp_proto.send``; the session (connect,
drive the submission's operation, close) is ``send_with`` in ``_api_async.py``."""

from __future__ import annotations

import email.message
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypedDict

from smtp_proto.dsn import DSN
from smtp_proto.proxy import Proxy
from smtp_proto.send import Submission, TLSMode
from smtp_proto.source import Message

from ._common import GLOBAL_DEFAULT_TIMEOUT

__all__ = [
    "MailerOptions",
    "MessageOptions",
    "SendMessage",
    "SendOptions",
    "new_client",
    "prepare_send",
    "split_options",
]

#: What ``send`` sends: an ``email.message.Message`` (envelope from its headers unless given),
#: or bytes, text, a binary file object or a (sync or async) iterable of bytes with an
#: explicit ``sender=`` and ``recipients=``.
SendMessage: TypeAlias = email.message.Message | Message


class MailerOptions(TypedDict, total=False):
    """``send``'s keyword arguments but the envelope: what a ``Mailer``'s messages share (see
    ``SendOptions``)."""

    tls: TLSMode
    context: ssl.SSLContext | None
    username: str
    password: str
    oauth2_token: str | Callable[[], str]
    mechanism: str
    plaintext_auth: bool
    dsn: DSN
    chunking: bool
    binary: bool
    lmtp: bool
    timeout: float | None
    local_hostname: str
    source_address: tuple[str, int]
    proxy: str | Proxy | None
    debuglevel: int


class SendOptions(MailerOptions, total=False):
    """The keyword arguments of ``send``.

    - ``sender``, ``recipients``: the envelope (required unless the message is an
      ``EmailMessage``, whose headers give it, as with ``send_message``).
    - ``tls``: ``"auto"`` (default: implicit TLS on port 465, else STARTTLS, required),
      ``"implicit"``, ``"starttls"``, or the relaxations ``"opportunistic"`` (STARTTLS if
      offered) and ``"none"``.  ``context``: the ``ssl.SSLContext`` (default: certificates and
      host names verified).
    - ``username`` with ``password`` (or ``mechanism=``, e.g. ``"SCRAM-SHA-256"``) or with
      ``oauth2_token`` (a string or a callable returning a fresh one; OAUTHBEARER or XOAUTH2).
      Never sent without TLS unless ``plaintext_auth=True``.
    - ``dsn``: an ``smtp_proto.dsn.DSN`` request.  ``chunking``: BDAT when offered (default
      True).  ``binary``: force (True) or refuse (False) BINARYMIME; by default a bytes body
      is binary only if it has NUL bytes (bare CR/LF become CRLF).  ``lmtp``: speak LMTP
      (``host`` may be a Unix socket path).
    - ``timeout``, ``local_hostname``, ``source_address``, ``proxy``: as for ``SMTP``
      (``proxy``: ``"socks5://[user:password@]host:port"`` or ``"http://..."`` (CONNECT), or
      an ``smtp_proto.proxy.Proxy``; needs the ``smtp-proto[proxy]`` extra).
    - ``debuglevel``: as ``set_debuglevel``: 1 prints the session's transcript on stderr
      (AUTH credentials shown as ``****``), 2 adds timestamps; 0 (the default) prints nothing.
    """

    sender: str
    recipients: str | Sequence[str]


class MessageOptions(TypedDict, total=False):
    """A ``Mailer``'s per-message arguments (``send``'s, for one message): the envelope, and
    ``dsn`` and ``binary`` when they differ from the mailer's."""

    sender: str
    recipients: str | Sequence[str]
    dsn: DSN
    binary: bool


_CONNECTION_OPTIONS = ("context", "timeout", "local_hostname", "source_address", "proxy")


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """``send``'s options as the ``Submission``'s arguments, the client object's (connection)
    arguments, and the debug level."""
    arguments = dict(options)
    connection = {name: arguments.pop(name) for name in _CONNECTION_OPTIONS if name in arguments}
    return arguments, connection, arguments.pop("debuglevel", 0)


def new_client(
    classes: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    submission: Submission,
    connection: Mapping[str, Any],
    debuglevel: int,
) -> Any:
    """An unconnected client object of the class ``submission`` needs, of an adapter's
    ``SMTP``, ``SMTP_SSL`` and ``LMTP``, with the connection arguments ``split_options`` gave."""
    arguments = dict(connection)
    context = arguments.pop("context", None)
    arguments.setdefault("timeout", GLOBAL_DEFAULT_TIMEOUT)
    smtp, smtp_ssl, lmtp = classes
    if submission.implicit_tls:
        client = smtp_ssl(context=context, **arguments)
    else:
        client = (lmtp if submission.lmtp else smtp)(**arguments)
        client._tls_context = context
    client.set_debuglevel(debuglevel)
    return client


def prepare_send(
    classes: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    message: SendMessage,
    host: str,
    port: int | None,
    options: SendOptions,
) -> tuple[Submission, Any]:
    """The checked submission and an unconnected client object of the right class."""
    arguments, connection, debuglevel = split_options(options)
    submission = Submission.create(message, host, port, **arguments)
    return submission, new_client(classes, submission, connection, debuglevel)
