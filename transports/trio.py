"""trio adapter: the ``smtplib`` API as coroutines, on trio streams (extra ``[trio]``).

::

    from smtp_proto.transports.trio import SMTP

    async with SMTP("mail.example.com", 587) as smtp:
        await smtp.starttls()
        await smtp.sendmail("me@example.com", ["you@example.com"], message)

``timeout`` is applied as ``_common.Deadline`` says; the caller's own cancel scopes close the
connection when they cancel a command half-way, and propagate.

``send`` sends one message on a connection of its own; ``Mailer`` sends many, from any
number of tasks, over a few connections, pipelined::

    async with Mailer("mail.example.com", connections=4, username="me", password="secret") as m:
        results = await m.send_many(messages)  # each a SendResult, or the error send raises

Plain-text I/O goes straight to the connection's (non-blocking) socket and enters trio only
to wait, in a cancel scope whose deadline is the reply's or the write's: a message costs a
scheduler round trip per wait instead of several per read and write.  TLS goes through
``trio.SSLStream``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from math import inf
from typing import Any, TypeVar, Unpack

import trio

from smtp_proto.batch import Outgoing
from smtp_proto.errors import SMTPServerDisconnected
from smtp_proto.requests import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS
from smtp_proto.send import SendResult

from . import _smtplib_names
from ._api_async import send_with
from ._async import AsyncMailerBase, AsyncSMTPBase, AsyncSMTPSSLBase
from ._common import (
    Deadline,
    LMTPBase,
    default_tls_context,
    local_hostname,
)
from ._send import SendMessage, SendOptions
from ._smtplib_names import *  # noqa: F403 (the smtplib module surface)

__all__ = ["LMTP", "SMTP", "SMTP_SSL", "Mailer", "Outgoing", "SendMessage", "SendOptions", "send"]
__all__ += _smtplib_names.__all__

T = TypeVar("T")
_RECEIVE_SIZE = 1 << 16


class SMTP(AsyncSMTPBase):
    """An SMTP client connection with the ``smtplib.SMTP`` API, awaitable, on trio."""

    _socket: trio.socket.SocketType | None = None  # the connection, as trio knows it
    _raw: socket.socket | None = None  # the same socket: plain-text I/O goes straight to it
    _tls: trio.SSLStream[trio.SocketStream] | None = None  # TLS over it, once there is TLS

    _now = staticmethod(trio.current_time)

    _turns: _Turns
    #: A write since the last read: its reply cannot be there yet, so don't look before a yield.
    _wrote = False

    def _make_lock(self) -> AbstractAsyncContextManager[Any]:
        self._turns = _Turns()
        return self._turns

    def _time_limit(self) -> trio.CancelScope:
        """A cancel scope for connecting or a TLS handshake: ``timeout`` seconds, or none."""
        if self._timeout is None:
            return trio.CancelScope()
        return trio.move_on_after(self._timeout)

    async def _open(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        connected: tuple[trio.socket.SocketType, socket.socket] | None = None
        with self._time_limit():
            connected = await _connect(host, port, self.source_address)
        if connected is None:
            raise TimeoutError(f"timed out connecting to {host}")
        await self._take(*connected, tls)

    async def _adopt(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await self._take(trio.socket.from_stdlib_socket(sock), sock, tls)

    async def _take(
        self, sock: trio.socket.SocketType, raw: socket.socket, tls: ssl.SSLContext | None
    ) -> None:
        """Use the connected ``sock`` (``raw`` as the standard library's), in TLS if asked."""
        self._socket, self._raw = sock, raw
        self._turns.yielded = True
        # The run's clock itself: trio.current_time finds it anew on every call.
        self._deadline = Deadline(trio.lowlevel.current_clock().current_time)
        if tls is not None:
            await self._secure(tls)

    async def _in_thread(self, function: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(function)

    async def _secure(self, context: ssl.SSLContext) -> None:
        assert self._socket is not None
        tls_stream = trio.SSLStream(
            trio.SocketStream(self._socket), context, server_hostname=self._host
        )
        with self._time_limit():
            try:
                await tls_stream.do_handshake()
            except trio.BrokenResourceError as exc:
                # Say what failed (a certificate, say) as ssl does in the other adapters.
                if isinstance(exc.__cause__, OSError):
                    raise exc.__cause__ from None
                raise ConnectionResetError(str(exc) or "TLS handshake failed") from exc
            self._tls = tls_stream
            return
        raise TimeoutError("timed out in the TLS handshake")

    async def _perform(self, request: Any) -> Any:
        sock = self._raw
        if sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        if request is RECEIVE:
            return await self._receive(sock)
        if request.__class__ is bytes or request.__class__ is memoryview:
            await self._send(sock, request)
            return None
        if request is CLOSE:
            self.close()  # as smtplib's methods do, so a subclass's close() sees it
            return None
        self._turns.yielded = True
        if request is START_TLS:
            await self._secure(self._tls_context or default_tls_context())
            return None
        if request is LOCAL_HOSTNAME:
            return await self._in_thread(local_hostname)
        raise AssertionError(f"unknown I/O request {request!r}")

    async def _receive(self, sock: socket.socket) -> bytes:
        """What the server sent: taken at once when it is there (and no write just went out,
        whose reply cannot be), else waited for until the reply's deadline."""
        deadline = self._deadline.for_read(self._client, self._timeout)
        if self._tls is not None:
            self._turns.yielded = True
            return await _receive_tls(self._tls, deadline)
        if self._wrote:
            self._wrote = False
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                return sock.recv(_RECEIVE_SIZE)
            except BlockingIOError:
                pass
        self._turns.yielded = True
        return await _receive(sock, deadline)

    async def _send(self, sock: socket.socket, data: bytes | memoryview) -> None:
        """Write all of ``data`` by the write's deadline."""
        deadline = self._deadline.for_write(self._timeout)
        if self._tls is not None:
            self._turns.yielded = True
            await _send_tls(self._tls, data, deadline)
            return
        self._wrote = True
        if await _send(sock, data, deadline):
            self._turns.yielded = True

    @property
    def is_connected(self) -> bool:
        return self._raw is not None

    @property
    def sock(self) -> trio.socket.SocketType | None:
        """The connection's socket (TLS, once there is TLS, runs over it), ``None`` when not
        connected: ``smtplib``'s ``sock``, as trio has it."""
        return self._socket

    def _abort(self) -> None:
        sock, self._socket, self._raw, self._tls = self._socket, None, None, None
        if sock is not None:
            sock.close()  # wakes a task waiting on it, which then fails


class _Turns:
    """A ``trio.Lock`` for the operations of one connection, that yields once per operation.

    ``trio.Lock`` lets other tasks run on every acquire, and a command that waits for its
    reply lets them run again: here an uncontended acquire only checks for cancellation, and
    the operation's schedule point is its own first wait, or, for one that never had to wait
    (a reply already there, a write the socket took whole), one at its end.
    """

    __slots__ = ("_lock", "yielded")

    def __init__(self) -> None:
        self._lock = trio.Lock()
        #: Whether the operation holding the lock has let other tasks run yet.
        self.yielded = False

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()
            self.yielded = False
        except trio.WouldBlock:
            await self._lock.acquire()
            self.yielded = True

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()
        if exc_info[0] is None and not self.yielded:
            await trio.lowlevel.cancel_shielded_checkpoint()


async def _connect(
    host: str, port: int, source_address: tuple[str, int] | None
) -> tuple[trio.socket.SocketType, socket.socket]:
    """A connected socket, as trio's and as the standard library's: to the Unix socket
    ``host`` when ``port`` is 0, else to the first address of ``host`` that accepts, from
    ``source_address`` if given.  As ``socket.create_connection``, the first attempt's
    error (``ConnectionRefusedError``, say) is raised when every attempt fails."""
    targets: list[tuple[int, int, int, Any]]
    if port:
        targets = [
            (family, kind, proto, address)
            for family, kind, proto, _, address in await trio.socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        ]
    else:
        targets = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, host)]
    errors: list[OSError] = []
    for family, kind, proto, address in targets:
        raw = socket.socket(family, kind, proto)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            if source_address and port:
                await sock.bind(source_address)
            await sock.connect(address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        if family != socket.AF_UNIX:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, raw
    raise errors[0] if errors else OSError(f"no address found for {host}")


async def _wait(
    ready: Callable[[socket.socket], Awaitable[None]], sock: socket.socket, deadline: float
) -> None:
    """Wait until ``ready(sock)`` returns, until ``deadline`` at the latest (``TimeoutError``)."""
    try:
        if deadline == inf:
            await ready(sock)
            return
        with trio.CancelScope(deadline=deadline) as scope:
            await ready(sock)
    except trio.ClosedResourceError as exc:  # closed by another task
        raise ConnectionResetError("connection closed") from exc
    if scope.cancelled_caught:
        raise TimeoutError("timed out")


async def _receive(sock: socket.socket, deadline: float) -> bytes:
    """Some bytes from ``sock`` (``b""`` at EOF), when none were there to take at once (or
    none could be, a request just sent): waits until ``deadline`` at the latest, after
    letting other tasks run once (a checkpoint: the reply is often there by then, and a
    yield costs less than a wait, with its cancel scope and epoll registration)."""
    await trio.lowlevel.checkpoint()
    while True:
        try:
            return sock.recv(_RECEIVE_SIZE)
        except BlockingIOError:
            await _wait(trio.lowlevel.wait_readable, sock, deadline)


async def _send(sock: socket.socket, data: bytes | memoryview, deadline: float) -> bool:
    """Send all of ``data`` on ``sock``, waiting until ``deadline`` at the latest; whether
    it had to wait (and so let other tasks run)."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return False  # the usual case: the socket's buffer took it all
    with memoryview(data) as view:
        while sent < len(view):
            await _wait(trio.lowlevel.wait_writable, sock, deadline)
            with suppress(BlockingIOError):  # woken, yet the buffer is full again
                sent += sock.send(view[sent:])
    return True


async def _receive_tls(stream: trio.SSLStream[trio.SocketStream], deadline: float) -> bytes:
    """Some bytes from ``stream`` (``b""`` at EOF); trio's stream errors become ``OSError``."""
    with trio.CancelScope(deadline=deadline):
        try:
            return bytes(await stream.receive_some(_RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionResetError(str(exc) or "connection broken") from exc
    raise TimeoutError("timed out")  # reached only when the deadline cancelled it


async def _send_tls(
    stream: trio.SSLStream[trio.SocketStream], data: bytes | memoryview, deadline: float
) -> None:
    """Send all of ``data``; trio's stream errors become ``OSError``."""
    with trio.CancelScope(deadline=deadline):
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionResetError(str(exc) or "connection broken") from exc
        return
    raise TimeoutError("timed out")


class SMTP_SSL(AsyncSMTPSSLBase, SMTP):
    """SMTP over implicit TLS (port 465) on trio, certificates verified by default."""


class LMTP(LMTPBase, SMTP):
    """LMTP on trio; ``host`` may be the absolute path of a Unix socket."""


async def send(
    message: SendMessage, host: str, port: int | None = None, **options: Unpack[SendOptions]
) -> SendResult:
    """Connect, secure, authenticate, send one message and QUIT; see ``SendOptions``."""
    return await send_with((SMTP, SMTP_SSL, LMTP), message, host, port, options)


class Mailer(AsyncMailerBase):
    """Sends many messages to one server over a few connections, pipelined, on trio: use it
    with ``async with``, which waits for every message given and QUITs at the end.  See
    ``smtp_proto.transports._mailer_async.AsyncMailer`` for the options."""

    _classes = (SMTP, SMTP_SSL, LMTP)

    def _new_event(self) -> trio.Event:
        return trio.Event()

    def _now(self) -> float:
        return trio.current_time()

    async def _wait(self, event: trio.Event, timeout: float | None) -> None:
        with trio.move_on_after(inf if timeout is None else timeout):
            await event.wait()

    def _task_group(self) -> AbstractAsyncContextManager[trio.Nursery]:
        return trio.open_nursery()

    def _start_worker(self, group: trio.Nursery) -> None:
        group.start_soon(self._work)
