"""asyncio adapter: the ``smtplib`` API as coroutines, on an asyncio protocol.

::

    from smtp_proto.transports.asyncio import SMTP

    async with SMTP("mail.example.com", 587) as smtp:
        await smtp.starttls()
        await smtp.login("me", "secret")
        await smtp.sendmail("me@example.com", ["you@example.com"], message)

Needs nothing but the standard library.  ``timeout`` is applied as ``_common.Deadline``
says; the caller's own cancellation (``asyncio.timeout``, ``Task.cancel``) closes the
connection and propagates.

``send`` sends one message on a connection of its own; ``Mailer`` sends many, from any
number of tasks, over a few connections, pipelined::

    async with Mailer("mail.example.com", connections=4, username="me", password="secret") as m:
        results = await m.send_many(messages)  # each a SendResult, or the error send raises
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from math import inf
from typing import Any, TypeVar, Unpack, cast

from smtp_proto.batch import Outgoing
from smtp_proto.errors import RemoteProtocolError, SMTPServerDisconnected
from smtp_proto.requests import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS
from smtp_proto.send import SendResult

from . import _smtplib_names
from ._api_async import send_with
from ._async import AsyncMailerBase, AsyncSMTPBase, AsyncSMTPSSLBase
from ._common import (
    LMTPBase,
    default_tls_context,
    local_hostname,
)
from ._send import SendMessage, SendOptions
from ._smtplib_names import *  # noqa: F403 (the smtplib module surface)

__all__ = ["LMTP", "SMTP", "SMTP_SSL", "Mailer", "Outgoing", "SendMessage", "SendOptions", "send"]
__all__ += _smtplib_names.__all__

T = TypeVar("T")


#: Received bytes held unread before the transport stops reading from the socket: past it the
#: kernel's buffers push back on the server, so a server cannot fill memory while nothing reads.
_READ_LIMIT = 1 << 18


class _Stream(asyncio.Protocol):
    """Bytes in and out of one connection, with the buffering, flow control and timeouts we need.

    Received bytes wait in ``_received`` until read; what is read is exactly what arrived,
    so at STARTTLS the adapter can tell whether the server sent anything it should not have.

    Each wait is bounded by a deadline (loop time).  Rather than a timer per wait
    (``asyncio.timeout`` costs a timer and a heap insertion on every read), one timer per
    connection checks the deadline of the wait under way and re-arms itself while it lies
    ahead.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None  # the read or write waiting
        self._paused = False
        self._reading_paused = False
        self._deadline = inf
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, not always a subclass of asyncio.Transport (uvloop's is not).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received += data
        if len(self._received) >= _READ_LIMIT and not self._reading_paused:
            assert self.transport is not None
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._paused = False
        self._wake()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, deadline: float) -> None:
        """Wait for the next event on the connection, until ``deadline`` at the latest."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._deadline = deadline
        timer = self._timer
        if deadline != inf and (timer is None or timer.when() > deadline):
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._check_deadline)
        try:
            await waiter
        finally:
            self._waiter = None

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nothing waits now; the next wait arms a new timer
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            waiter.set_exception(TimeoutError("timed out"))
        elif self._deadline != inf:
            self._timer = loop.call_at(self._deadline, self._check_deadline)

    async def read(self, deadline: float) -> bytes:
        """What arrived since the last read (waiting until ``deadline``), ``b""`` at EOF."""
        while not self._received:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            await self._wait(deadline)
        data = bytes(self._received)
        self._received.clear()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes | memoryview, deadline: float) -> None:
        """Send ``data``, waiting (until ``deadline``) while the transport's buffer is full."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        while self._paused:
            await self._wait(deadline)

    def unread(self) -> int:
        """How many received bytes are waiting to be read."""
        return len(self._received)


class SMTP(AsyncSMTPBase):
    """An SMTP client connection with the ``smtplib.SMTP`` API, awaitable, on asyncio."""

    _stream: _Stream | None = None

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _make_lock(self) -> AbstractAsyncContextManager[Any]:
        return asyncio.Lock()

    async def _open(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            if port:
                _, stream = await loop.create_connection(
                    _Stream,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                    local_addr=self.source_address,
                )
            else:
                _, stream = await loop.create_unix_connection(_Stream, host)
        self._stream = stream

    async def _adopt(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        sock.setblocking(False)
        async with asyncio.timeout(self._timeout):
            _, stream = await asyncio.get_running_loop().create_connection(
                _Stream, sock=sock, ssl=tls, server_hostname=self._host if tls else None
            )
        self._stream = stream

    async def _in_thread(self, function: Callable[[], T]) -> T:
        return await asyncio.to_thread(function)

    async def _perform(self, request: Any) -> Any:
        stream = self._stream
        if stream is None:
            raise SMTPServerDisconnected("please run connect() first")
        if request.__class__ is bytes or request.__class__ is memoryview:
            await stream.write(request, self._deadline.for_write(self._timeout))
            return None
        if request is RECEIVE:
            return await stream.read(self._deadline.for_read(self._client, self._timeout))
        if request is CLOSE:
            self.close()  # as smtplib's methods do, so a subclass's close() sees it
            return None
        if request is START_TLS:
            if stream.unread():
                raise RemoteProtocolError("server sent data after its 220 to STARTTLS")
            await self._secure(self._tls_context or default_tls_context())
            return None
        if request is LOCAL_HOSTNAME:
            return await self._in_thread(local_hostname)
        raise AssertionError(f"unknown I/O request {request!r}")

    async def _secure(self, context: ssl.SSLContext) -> None:
        stream = self._stream
        assert stream is not None and stream.transport is not None
        async with asyncio.timeout(self._timeout):
            transport = await asyncio.get_running_loop().start_tls(
                stream.transport, stream, context, server_hostname=self._host
            )
        if transport is None:
            raise SMTPServerDisconnected("connection closed during the TLS handshake")
        stream.transport = transport

    @property
    def is_connected(self) -> bool:
        return self._stream is not None

    @property
    def sock(self) -> asyncio.Transport | None:
        """The connection's transport (TLS once there is TLS), ``None`` when not connected:
        ``smtplib``'s ``sock``, as asyncio has it (``get_extra_info`` gives the details)."""
        return None if self._stream is None else self._stream.transport

    def _abort(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and stream.transport is not None:
            stream.transport.abort()


class SMTP_SSL(AsyncSMTPSSLBase, SMTP):
    """SMTP over implicit TLS (port 465) on asyncio, certificates verified by default."""


class LMTP(LMTPBase, SMTP):
    """LMTP on asyncio; ``host`` may be the absolute path of a Unix socket."""


async def send(
    message: SendMessage, host: str, port: int | None = None, **options: Unpack[SendOptions]
) -> SendResult:
    """Connect, secure, authenticate, send one message and QUIT; see ``SendOptions``."""
    return await send_with((SMTP, SMTP_SSL, LMTP), message, host, port, options)


class Mailer(AsyncMailerBase):
    """Sends many messages to one server over a few connections, pipelined, on asyncio: use
    it with ``async with``, which waits for every message given and QUITs at the end.  See
    ``smtp_proto.transports._mailer_async.AsyncMailer`` for the options."""

    _classes = (SMTP, SMTP_SSL, LMTP)

    def _new_event(self) -> asyncio.Event:
        return asyncio.Event()

    def _now(self) -> float:
        return time.monotonic()

    async def _wait(self, event: asyncio.Event, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    def _task_group(self) -> asyncio.TaskGroup:
        return asyncio.TaskGroup()

    def _start_worker(self, group: asyncio.TaskGroup) -> None:
        group.create_task(self._work())
