"""The ``smtplib`` API as coroutines, shared by the asyncio and trio adapters.

A framework adapter subclasses ``AsyncSMTPBase`` and supplies only its I/O: opening a TCP or
Unix connection (``_open``) or taking a connected socket (``_adopt``), performing one I/O
request (``_perform``), dropping the connection at once (``_abort``), a worker thread and a
lock.  Everything else, protocol and API alike, is here
or in ``smtp_proto.Client``.
"""

from __future__ import annotations

import inspect
import socket
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from smtp_proto.driving import drive_async
from smtp_proto.errors import SMTPConnectError
from smtp_proto.proxy import Proxy, open_tunnel
from smtp_proto.requests import Operation

from ._api_async import AsyncAPI
from ._common import (
    _RUNNING,
    GLOBAL_DEFAULT_TIMEOUT,
    Deadline,
    SMTPSSLBase,
    open_socket,
    proxy_unreachable,
)
from ._mailer_async import AsyncMailer

__all__ = ["AsyncMailerBase", "AsyncSMTPBase", "AsyncSMTPSSLBase"]

T = TypeVar("T")
Self = TypeVar("Self", bound="AsyncSMTPBase")
MailerSelf = TypeVar("MailerSelf", bound="AsyncMailerBase")


class AsyncSMTPBase(AsyncAPI):
    """An SMTP client connection whose methods are the ``smtplib.SMTP`` methods, awaitable.

    Unlike ``smtplib.SMTP``, the constructor does no I/O: ``async with SMTP(host, port)``
    connects (and QUITs at the end), or call ``await smtp.connect()``.  Two tasks sharing one
    object never interleave their commands.  A cancellation while a command is under way
    closes the connection (it is never reused half-way) and propagates.

    ``timeout`` bounds connecting (with the TLS handshake), each write and each whole reply
    (see ``Deadline``).

    The coroutines call each other as ``smtplib``'s methods do, so a subclass's override (a
    coroutine, or a plain method) or a mock of one of them is awaited where ``smtplib`` would
    call it; the connection's lock is held once for the outermost call.
    """

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        timeout: float | None = GLOBAL_DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        *,
        proxy: str | Proxy | None = None,
    ) -> None:
        AsyncAPI.__init__(self, host, local_hostname, timeout, source_address, proxy)
        self._port = port
        self._lock: AbstractAsyncContextManager[Any] = self._make_lock()
        self._deadline = Deadline(self._now)

    def _implicit_tls_context(self) -> ssl.SSLContext | None:
        """The context to wrap the connection in as soon as it is open (``SMTP_SSL``'s)."""
        return None

    # ------------------------------------------------------------------ the framework's part

    def _make_lock(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    @staticmethod
    def _now() -> float:
        """The framework's clock, in seconds: deadlines are on it."""
        raise NotImplementedError

    async def _open(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        """Connect to ``host:port`` (a Unix socket when ``port`` is 0), in TLS if asked."""
        raise NotImplementedError

    async def _adopt(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        """Take ``sock`` (connected by a replaced ``_get_socket``) as the connection."""
        raise NotImplementedError

    async def _secure(self, context: ssl.SSLContext) -> None:
        """Wrap the open connection in TLS now, for the server ``self._host``."""
        raise NotImplementedError

    async def _in_thread(self, function: Callable[[], T]) -> T:
        """``function()`` in a worker thread, off the event loop."""
        raise NotImplementedError

    async def _perform(self, request: Any) -> Any:
        """Carry out one I/O request of a core operation."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Drop the connection now, without waiting (also from a cancelled task)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle

    async def _run(self, operation: Operation[T]) -> T:
        if self._inside_operation():  # called by a replacement, from inside an operation
            self._deadline.start_operation()
            return await drive_async(operation, self._perform, self.close)
        async with self._lock:
            self._deadline.start_operation()
            token = _RUNNING.set(self)
            try:
                return await drive_async(operation, self._perform, self.close)
            finally:
                _RUNNING.reset(token)

    async def _get_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A connected socket: the hook ``smtplib`` code overrides to connect another way,
        here a coroutine or a plain method.  Unless it is replaced, the adapter connects with
        its framework's own I/O (through ``proxy`` when set) and does not call it; a
        replacement connects as it likes (``proxy`` is then its business); called, this one
        connects a blocking socket, directly, in a worker thread."""
        return await self._in_thread(
            partial(open_socket, host, port, timeout, self.source_address, lmtp=self._lmtp)
        )

    async def connect(
        self, host: str = "", port: int = 0, source_address: tuple[str, int] | None = None
    ) -> tuple[int, bytes]:
        """Connect (to the constructor's host and port unless given) and read the greeting."""
        if not host:
            host, port = self._host or "localhost", port or self._port
        host, port = self._start_connecting(host, port, source_address, socket.getdefaulttimeout())
        unix = self._lmtp and host.startswith("/")
        tls = self._implicit_tls_context()
        async with self._lock:
            try:
                if type(self)._get_socket is not AsyncSMTPBase._get_socket:
                    sock = self._get_socket(host, port, self.timeout)
                    await self._adopt(await sock if inspect.isawaitable(sock) else sock, tls)
                elif self._proxy is not None:
                    await self._open_tunnel(self._proxy, host, port, tls)
                else:
                    await self._open(host, 0 if unix else port, tls)
            except BaseException:
                self.close()
                raise
        return await self._run(self._client.greeting())

    async def _open_tunnel(
        self, proxy: Proxy, host: str, port: int, tls: ssl.SSLContext | None
    ) -> None:
        """Connect to ``host:port`` through ``proxy``: the tunnel's handshake is bounded by
        ``timeout`` as a whole; then TLS, when implicit, with the mail server's name."""
        try:
            await self._open(proxy.host, proxy.port, None)
        except OSError as exc:
            raise proxy_unreachable(proxy, exc) from exc
        tunnel = open_tunnel(self._client, proxy, host, port, tls_first=tls is not None)
        with self._one_deadline():
            await drive_async(tunnel, self._perform, self.close)
        if tls is not None:
            await self._secure(tls)

    def close(self) -> None:
        """Close the connection; the object can connect again."""
        self._drop()

    def _drop(self) -> None:
        """Close the connection and forget it."""
        self._client.close()
        self._abort()

    async def __aenter__(self: Self) -> Self:
        if not self.is_connected:
            code, message = await self.connect()
            if code != 220:
                self.close()
                raise SMTPConnectError(code, message)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self.is_connected:
                await self._run(self._client.exit())
        finally:
            self.close()


class AsyncSMTPSSLBase(SMTPSSLBase, AsyncSMTPBase):
    """Implicit TLS (port 465), certificates verified by default: mixed into ``SMTP_SSL``."""

    _plain = AsyncSMTPBase

    def _implicit_tls_context(self) -> ssl.SSLContext:
        return self.context


class AsyncMailerBase(AsyncMailer):
    """The asyncio and trio ``Mailer``'s shared part: no lock (one event loop), and the
    workers in a task group for the ``async with`` block.  A framework supplies the group
    (``_task_group``) and how a worker starts in it (``_start_worker``)."""

    _group: AbstractAsyncContextManager[Any]

    def _make_lock(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def _task_group(self) -> AbstractAsyncContextManager[Any]:
        """A new task group (asyncio's ``TaskGroup``, a trio nursery)."""
        raise NotImplementedError

    def _start_worker(self, group: Any) -> None:
        """Start one ``_work`` task in ``group``, as the framework starts tasks."""
        raise NotImplementedError

    async def __aenter__(self: MailerSelf) -> MailerSelf:
        self._group = self._task_group()
        group = await self._group.__aenter__()
        for _ in range(self._connections):
            self._start_worker(group)
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Wait for every message (unless cancelled: then those not sent end unsent)."""
        cancelled = exc is not None and not isinstance(exc, Exception)
        self._stop(abandon=cancelled)
        if cancelled:
            await self._group.__aexit__(exc_type, exc, traceback)
        else:
            await self._group.__aexit__(None, None, None)
