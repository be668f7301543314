"""The high-level ``send`` of every adapter: open the connection a ``Submission`` describes,
drive its operation, close.  The protocol is all in ``smtp_proto.send``."""

from __future__ import annotations

import email.message
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypedDict

from smtp_proto.dsn import DSN
from smtp_proto.errors import SMTPConnectError
from smtp_proto.requests import Operation
from smtp_proto.send import SendResult, Submission, TLSMode
from smtp_proto.source import Message

from ._common import GLOBAL_DEFAULT_TIMEOUT

__all__ = ["SendMessage", "SendOptions", "send_async", "send_blocking"]

#: What ``send`` sends: an ``email.message.Message`` (envelope from its headers unless given),
#: or bytes, text, a binary file object or a (sync or async) iterable of bytes with an
#: explicit ``sender=`` and ``recipients=``.
SendMessage = email.message.Message | Message


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


class _Blocking(Protocol):
    _client: Any
    _tls_context: ssl.SSLContext | None

    def connect(self, host: str, port: int) -> tuple[int, bytes]: ...
    def _run(self, operation: Operation[SendResult]) -> SendResult: ...
    def close(self) -> None: ...


class _Async(Protocol):
    _client: Any
    _tls_context: ssl.SSLContext | None

    async def connect(self, host: str, port: int) -> tuple[int, bytes]: ...
    async def _run(self, operation: Operation[SendResult]) -> SendResult: ...
    def close(self) -> None: ...


def _prepare(
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


def send_blocking(
    classes: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    message: SendMessage,
    host: str,
    port: int | None,
    options: SendOptions,
) -> SendResult:
    """``send`` for the blocking adapter, given its ``SMTP``, ``SMTP_SSL`` and ``LMTP``."""
    submission, client = _prepare(classes, message, host, port, options)
    smtp: _Blocking = client
    try:
        code, text = smtp.connect(host, submission.port)
        if code != 220:
            raise SMTPConnectError(code, text)
        return smtp._run(submission.operation(smtp._client))
    finally:
        smtp.close()


async def send_async(
    classes: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    message: SendMessage,
    host: str,
    port: int | None,
    options: SendOptions,
) -> SendResult:
    """``send`` for an async adapter, given its ``SMTP``, ``SMTP_SSL`` and ``LMTP``."""
    submission, client = _prepare(classes, message, host, port, options)
    smtp: _Async = client
    try:
        code, text = await smtp.connect(host, submission.port)
        if code != 220:
            raise SMTPConnectError(code, text)
        return await smtp._run(submission.operation(smtp._client))
    finally:
        smtp.close()
