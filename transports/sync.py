"""Blocking-socket adapter: a drop-in for the stdlib ``smtplib``.

Change ``import smtplib`` to ``from smtp_proto.transports import sync as smtplib`` and the
code works unchanged, with these deliberate differences:

* ``SMTP_SSL`` and ``starttls()`` verify certificates and host names by default
  (``ssl.create_default_context()``); pass ``context=`` to choose otherwise.
* Bare CR and LF in ``bytes`` messages become CRLF, so no message can smuggle a second one.
* ``LMTP.sendmail`` reports recipients refused after the body, and commands pipeline when the
  server offers PIPELINING.
* ``timeout`` bounds each write and each whole reply, not each socket read (``Deadline``).

Everything SMTP is done by ``smtp_proto.Client``; this module only connects, wraps TLS and
moves bytes.

Beyond ``smtplib``: ``send`` sends one message on a connection of its own, with secure
defaults; ``Mailer`` sends many, from any number of threads, over a few connections,
pipelined::

    with Mailer("mail.example.com", connections=4, username="me", password="secret") as mailer:
        results = mailer.send_many(messages)  # each a SendResult, or the error send raises
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from math import inf
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from smtp_proto.batch import Outgoing
from smtp_proto.driving import drive
from smtp_proto.errors import SMTPConnectError, SMTPServerDisconnected
from smtp_proto.proxy import Proxy, open_tunnel
from smtp_proto.requests import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS, Operation
from smtp_proto.send import SendResult

from . import _smtplib_names
from ._api_sync import SyncAPI, send_with
from ._common import (
    _RUNNING,
    GLOBAL_DEFAULT_TIMEOUT,
    Deadline,
    LMTPBase,
    SMTPSSLBase,
    default_tls_context,
    local_hostname,
    open_socket,
    proxy_unreachable,
)
from ._mailer_sync import SyncMailer
from ._send import SendMessage, SendOptions
from ._smtplib_names import *  # noqa: F403 (the smtplib module surface)

__all__ = ["LMTP", "SMTP", "SMTP_SSL", "Mailer", "Outgoing", "SendMessage", "SendOptions", "send"]
__all__ += _smtplib_names.__all__

T = TypeVar("T")
_RECV_SIZE = 1 << 16
#: How far past its deadline a socket call may be allowed to wait: setting a socket's timeout
#: is a system call, which the first read of each reply would otherwise pay for nothing.
_LATE = 0.005


class SMTP(SyncAPI):
    """An SMTP client connection with the ``smtplib.SMTP`` API, over a blocking socket.

    ``timeout`` bounds connecting, each write and each whole reply (see ``Deadline``).

    The methods call each other as ``smtplib``'s do (``send_message`` through ``sendmail``,
    ``connect`` through ``_get_socket``, every write through ``send``, ...), so subclasses
    and mocks of them work as they do with ``smtplib``.
    """

    #: The connection's socket (an ``ssl.SSLSocket`` once there is TLS), ``None`` when closed.
    sock: socket.socket | None = None

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
        SyncAPI.__init__(self, host, local_hostname, timeout, source_address, proxy)
        self._deadline = Deadline(time.monotonic)
        if host:
            code, msg = self.connect(host, port)
            if code != 220:
                self.close()
                raise SMTPConnectError(code, msg)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self.sock is not None:
                self._run(self._client.exit())
        finally:
            self.close()

    # ------------------------------------------------------------------ transport

    def _get_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A connected socket to ``host:port`` (through ``proxy`` when set): the hook
        ``smtplib`` code overrides to connect another way.  ``SMTP_SSL`` wraps it in TLS; for
        ``LMTP`` a ``host`` that is an absolute path is a Unix socket."""
        proxy = self._proxy
        if proxy is None:
            return open_socket(
                host, port, timeout, self.source_address, lmtp=self._lmtp, sockets=socket
            )
        try:
            sock = open_socket(proxy.host, proxy.port, timeout, self.source_address, sockets=socket)
        except OSError as exc:
            raise proxy_unreachable(proxy, exc) from exc
        self.sock = sock  # the tunnel's exchange runs on it; connect() closes it on failure
        tunnel = open_tunnel(
            self._client, proxy, host, port, tls_first=isinstance(self, SMTPSSLBase)
        )
        with self._one_deadline():
            self._run(tunnel)
        sock.settimeout(self._timeout)  # for what follows, as open_socket left it
        return sock

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: tuple[str, int] | None = None
    ) -> tuple[int, bytes]:
        """Connect and read the greeting; returns its ``(code, text)``."""
        # The default timeout through this module's socket global, which mocks replace.
        host, port = self._start_connecting(host, port, source_address, socket.getdefaulttimeout())
        try:
            self.sock = self._get_socket(host, port, self.timeout)
        except BaseException:
            self.close()  # the client state too: a later command says "not connected"
            raise
        self.file = None
        return self._run(self._client.greeting())

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open: ``sock`` is set."""
        return self.sock is not None

    def close(self) -> None:
        """Close the connection; the object can connect again."""
        self._drop()

    def _drop(self) -> None:
        """Close the connection and forget it."""
        sock, self.sock = self.sock, None
        self.file = None
        self._client.close()
        if sock is not None:
            sock.close()

    def _perform(self, request: Any) -> Any:
        """Carry out one I/O request of an operation."""
        sock = self.sock
        if sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        if request.__class__ is bytes or request.__class__ is memoryview:
            sys.audit("smtplib.send", self, request)
            _arm(sock, self._deadline.for_write(self._timeout))
            _write(sock, request)
            return None
        if request is RECEIVE:
            _arm(sock, self._deadline.for_read(self._client, self._timeout))
            return sock.recv(_RECV_SIZE)
        if request is CLOSE:
            self.close()
            return None
        if request is START_TLS:
            # The ssl module bounds the whole handshake by the socket's timeout.
            _arm(sock, self._deadline.for_write(self._timeout))
            context = self._tls_context or default_tls_context()
            self.sock = context.wrap_socket(sock, server_hostname=self._host)
            self.file = None
            return None
        if request is LOCAL_HOSTNAME:
            return local_hostname()
        raise AssertionError(f"unknown I/O request {request!r}")

    def _run(self, operation: Operation[T]) -> T:
        """Drive a core operation to its end over this socket."""
        self._deadline.start_operation()
        token = _RUNNING.set(self)
        try:
            return drive(operation, self._perform, self.close)
        finally:
            _RUNNING.reset(token)


def _write(sock: socket.socket, data: bytes | memoryview) -> None:
    """``sock.sendall(data)``, bounded by the socket's timeout, without the ``poll()`` that
    Python makes before every send on a socket with a timeout: a plain socket's descriptor is
    then non-blocking, so a write the kernel's buffer takes whole (a message's usually) is one
    system call; whatever it does not take goes through ``sendall``."""
    if sock.__class__ is socket.socket and sock.gettimeout() is not None:
        try:
            sent = os.write(sock.fileno(), data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        data = memoryview(data)[sent:]
    sock.sendall(data)  # the socket's timeout bounds the whole call


def _arm(sock: socket.socket, when: float) -> None:
    """Make the next call on ``sock`` give up at ``when`` (``time.monotonic``), or never."""
    if when == inf:
        if sock.gettimeout() is not None:
            sock.settimeout(None)
        return
    remaining = when - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out")
    current = sock.gettimeout()
    if current is None or not remaining <= current <= remaining + _LATE:
        sock.settimeout(remaining)


class SMTP_SSL(SMTPSSLBase, SMTP):
    """SMTP over implicit TLS (port 465), certificates verified by default."""

    _plain = SMTP

    def _get_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise


class LMTP(LMTPBase, SMTP):
    """LMTP (RFC 2033) over a blocking socket: TCP, or a Unix socket when ``host`` is a path."""


def send(
    message: SendMessage, host: str, port: int | None = None, **options: Unpack[SendOptions]
) -> SendResult:
    """Connect, secure, authenticate, send one message and QUIT; see ``SendOptions``."""
    return send_with((SMTP, SMTP_SSL, LMTP), message, host, port, options)


class Mailer(SyncMailer):
    """Sends many messages to one server over a few connections, pipelined, from any number
    of threads: use it with ``with`` (or call ``close()``), which waits for every message given
    and QUITs at the end.  The workers are daemon threads.  See
    ``smtp_proto.transports._mailer_sync.SyncMailer`` for the options."""

    _classes = (SMTP, SMTP_SSL, LMTP)
    _threads: list[threading.Thread]

    def _make_lock(self) -> threading.Lock:
        return threading.Lock()

    def _new_event(self) -> threading.Event:
        return threading.Event()

    def _now(self) -> float:
        return time.monotonic()

    def _wait(self, event: threading.Event, timeout: float | None) -> None:
        event.wait(timeout)

    def __enter__(self) -> Mailer:
        self._threads = [
            threading.Thread(target=self._work, name=f"smtp-proto-mailer-{n}", daemon=True)
            for n in range(self._connections)
        ]
        for thread in self._threads:
            thread.start()
        self._running = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Wait for every message (after ``KeyboardInterrupt``, those not sent end unsent)."""
        self._stop(abandon=exc is not None and not isinstance(exc, Exception))
        for thread in self._threads:
            thread.join()

    def close(self) -> None:
        """Wait for every message given, then QUIT every connection."""
        self.__exit__(None, None, None)
