"""The high-level ``send`` of every adapter: its options, and the client object of the right
class for a ``Submission``.  The protocol is all in ``smtp_proto.send``; the session (connect,
drive the submission's operation, close) is ``send_with`` in ``_api_async.py``."""

from __future__ import annotations

import email.message
import ssl
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypedDict

from smtp_proto.dsn import DSN
from smtp_proto.send import Submission, TLSMode
from smtp_proto.source import Message

from ._common import GLOBAL_DEFAULT_TIMEOUT

__all__ = ["SendMessage", "SendOptions", "prepare_send"]

#: What ``send`` sends: an ``email.message.Message`` (envelope from its headers unless given),
#: or bytes, text, a binary file object or a (sync or async) iterable of bytes with an
#: explicit ``sender=`` and ``recipients=``.
SendMessage: TypeAlias = email.message.Message | Message


class SendOptions(TypedDict, total=False):
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
    - ``timeout``, ``local_hostname``, ``source_address``: as for ``SMTP``.
    - ``debuglevel``: as ``set_debuglevel``: 1 prints the session's transcript on stderr
      (AUTH credentials shown as ``****``), 2 adds timestamps; 0 (the default) prints nothing.
    """

    sender: str
    recipients: str | Sequence[str]
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
    debuglevel: int


_CONNECTION_OPTIONS = ("context", "timeout", "local_hostname", "source_address")


def prepare_send(
    classes: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    message: SendMessage,
    host: str,
    port: int | None,
    options: SendOptions,
) -> tuple[Submission, Any]:
    """The checked submission and an unconnected client object of the right class."""
    arguments: dict[str, Any] = dict(options)
    connection = {name: arguments.pop(name) for name in _CONNECTION_OPTIONS if name in arguments}
    debuglevel = arguments.pop("debuglevel", 0)
    submission = Submission.create(message, host, port, **arguments)
    context = connection.pop("context", None)
    connection.setdefault("timeout", GLOBAL_DEFAULT_TIMEOUT)
    smtp, smtp_ssl, lmtp = classes
    if submission.implicit_tls:
        client = smtp_ssl(context=context, **connection)
    else:
        client = (lmtp if submission.lmtp else smtp)(**connection)
        client._tls_context = context
    client.set_debuglevel(debuglevel)
    return submission, client
