"""trio adapter: the ``smtplib`` API as coroutines, on trio streams (extra ``[trio]``).

::

    from smtp_proto.transports.trio import SMTP

    async with SMTP("mail.example.com", 587) as smtp:
        await smtp.starttls()
        await smtp.sendmail("me@example.com", ["you@example.com"], message)

Every read and write is bounded by ``timeout`` (a cancel scope; a timeout raises what
``smtplib`` raises for one); the caller's own cancel scopes close the connection when they
cancel a command half-way, and propagate.
"""

from __future__ import annotations

import ssl
from contextlib import AbstractAsyncContextManager
from typing import Any, Unpack

import trio

from smtp_proto.client import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS
from smtp_proto.errors import SMTPServerDisconnected
from smtp_proto.send import SendResult

from . import _smtplib_names
from ._async import AsyncLMTPBase, AsyncSMTPBase, AsyncSMTPSSLBase
from ._common import (
    default_tls_context,
    local_hostname,
)
from ._send import SendMessage, SendOptions, send_async
from ._smtplib_names import *  # noqa: F403 (the smtplib module surface)

__all__ = ["LMTP", "SMTP", "SMTP_SSL", "send"]
__all__ += _smtplib_names.__all__

_RECEIVE_SIZE = 1 << 16


class SMTP(AsyncSMTPBase):
    """An SMTP client connection with the ``smtplib.SMTP`` API, awaitable, on trio."""

    _stream: trio.abc.Stream | None = None
    _socket_stream: trio.SocketStream | None = None

    def _make_lock(self) -> AbstractAsyncContextManager[Any]:
        return trio.Lock()

    def _deadline(self) -> trio.CancelScope:
        """A cancel scope for one I/O step: ``timeout`` seconds, or none."""
        if self.timeout is None:
            return trio.CancelScope()
        return trio.move_on_after(self.timeout)

    async def _open(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        stream: trio.SocketStream | None = None
        with self._deadline():
            if not port:
                stream = await trio.open_unix_socket(host)
            elif self.source_address:
                stream = await _connect_from(self.source_address, host, port)
            else:
                try:
                    stream = await trio.open_tcp_stream(host, port)
                except OSError as exc:
                    raise _first_attempt_error(exc) from None
        if stream is None:
            raise TimeoutError(f"timed out connecting to {host}")
        self._socket_stream = self._stream = stream
        if tls is not None:
            await self._handshake(tls)

    async def _handshake(self, context: ssl.SSLContext) -> None:
        assert self._stream is not None
        tls_stream = trio.SSLStream(self._stream, context, server_hostname=self._host)
        with self._deadline():
            try:
                await tls_stream.do_handshake()
            except trio.BrokenResourceError as exc:
                # Say what failed (a certificate, say) as ssl does in the other adapters.
                if isinstance(exc.__cause__, OSError):
                    raise exc.__cause__ from None
                raise ConnectionResetError(str(exc) or "TLS handshake failed") from exc
            self._stream = tls_stream
            return
        raise TimeoutError("timed out in the TLS handshake")

    async def _perform(self, request: Any) -> Any:
        stream = self._stream
        if stream is None:
            raise SMTPServerDisconnected("please run connect() first")
        if request is RECEIVE:
            with self._deadline():
                return await _receive(stream)
            raise TimeoutError("timed out")  # reached only when the deadline cancelled it
        if request.__class__ is bytes:
            with self._deadline():
                await _send(stream, request)
                return None
            raise TimeoutError("timed out")
        if request is CLOSE:
            self._abort()
            return None
        if request is START_TLS:
            await self._handshake(self._tls_context or default_tls_context())
            return None
        if request is LOCAL_HOSTNAME:
            return await trio.to_thread.run_sync(local_hostname)
        raise AssertionError(f"unknown I/O request {request!r}")

    def _abort(self) -> None:
        socket_stream, self._socket_stream, self._stream = self._socket_stream, None, None
        if socket_stream is not None:
            socket_stream.socket.close()


async def _connect_from(source_address: tuple[str, int], host: str, port: int) -> trio.SocketStream:
    """A TCP connection from ``source_address`` (host and port, as ``smtplib`` binds it)."""
    error: OSError = OSError(f"no address found for {host}")
    for family, kind, proto, _, address in await trio.socket.getaddrinfo(
        host, port, type=trio.socket.SOCK_STREAM
    ):
        sock = trio.socket.socket(family, kind, proto)
        try:
            await sock.bind(source_address)
            await sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return trio.SocketStream(sock)
    raise error


def _first_attempt_error(exc: OSError) -> OSError:
    """The error of the first connection attempt (e.g. ``ConnectionRefusedError``).

    ``trio.open_tcp_stream`` raises a summary ``OSError`` with every attempt's error grouped
    in its cause; ``smtplib`` users catch the specific one.
    """
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup) and isinstance(cause.exceptions[0], OSError):
        return cause.exceptions[0]
    return exc


async def _receive(stream: trio.abc.Stream) -> bytes:
    """Some bytes from ``stream`` (``b""`` at EOF); trio's stream errors become ``OSError``."""
    try:
        return bytes(await stream.receive_some(_RECEIVE_SIZE))
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ConnectionResetError(str(exc) or "connection broken") from exc


async def _send(stream: trio.abc.Stream, data: bytes) -> None:
    """Send all of ``data``; trio's stream errors become ``OSError``."""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ConnectionResetError(str(exc) or "connection broken") from exc


class SMTP_SSL(AsyncSMTPSSLBase, SMTP):
    """SMTP over implicit TLS (port 465) on trio, certificates verified by default."""


class LMTP(AsyncLMTPBase, SMTP):
    """LMTP on trio; ``host`` may be the absolute path of a Unix socket."""


async def send(
    message: SendMessage, host: str, port: int | None = None, **options: Unpack[SendOptions]
) -> SendResult:
    """Connect, secure, authenticate, send one message and QUIT; see ``SendOptions``."""
    return await send_async((SMTP, SMTP_SSL, LMTP), message, host, port, options)
