"""``CaptureServer`` and the socketserver classes that run its connections in threads."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from .message import CapturedMessage
from .reply import Reply
from .session import _Session
from .wire import _Disconnect, _Wire


class _Handler(socketserver.BaseRequestHandler):
    server: Any  # one of the _Server classes, with ``capture`` set

    def handle(self) -> None:
        capture: CaptureServer = self.server.capture
        if capture.unix_path is None:
            # Replies go out one write each: without this, Nagle's algorithm holds a reply
            # back until the client's delayed ACK of the previous one (some 40 ms).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = _Wire(self.request)
        with capture._tracking(wire):
            with contextlib.suppress(_Disconnect, OSError):
                _Session(capture, wire).run()
            with contextlib.suppress(OSError):
                wire.sock.close()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    capture: CaptureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are the client's business: no tracebacks on stderr."""


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    capture: CaptureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are the client's business: no tracebacks on stderr."""


class CaptureServer:
    """A capturing SMTP (or LMTP) server on 127.0.0.1 or a Unix socket, run in threads.

    Start it with ``with`` (or ``start()``/``stop()``); it listens from construction on, so
    ``host`` and ``port`` are known at once.  Everything is optional:

    - ``port``: 0 (the default) picks a free port; ``unix_path`` listens on that Unix
      socket instead of TCP.
    - ``lmtp``: speak LMTP (LHLO; after the message, one reply per accepted recipient,
      ``lmtp_failures`` giving the failing ones).
    - ``size_limit``: advertised with SIZE and enforced (at MAIL, and on the data).
    - ``tls_context``: a server-side ``ssl.SSLContext``; offers STARTTLS.
    - ``credentials``: user -> password; offers AUTH PLAIN and LOGIN.
    - ``refuse``: recipient -> reply given to its RCPT, e.g. ``(550, "5.1.1 No such user")``.
    - ``fail``: step -> reply given there instead of the normal one.  A step is a command
      verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"BDAT"``, ``"EHLO"``, ``"AUTH"``...),
      ``"connect"`` (the greeting) or ``"body"`` (the end of a message).  A 421 reply also
      closes the connection.
    - ``drop_at``: a step at which the server closes the connection without replying.

    ``messages`` holds what was accepted; ``wait_for_messages(n)`` waits for deliveries
    made by other threads or processes.  It is safe to use from any thread.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        unix_path: str | os.PathLike[str] | None = None,
        lmtp: bool = False,
        hostname: str = "capture.local",
        size_limit: int = 10 << 20,
        tls_context: ssl.SSLContext | None = None,
        credentials: Mapping[str, str] | None = None,
        refuse: Mapping[str, Reply] | None = None,
        fail: Mapping[str, Reply] | None = None,
        drop_at: str | None = None,
        lmtp_failures: Mapping[str, Reply] | None = None,
    ) -> None:
        self.lmtp = lmtp
        self.hostname = hostname
        self.size_limit = size_limit
        self.tls_context = tls_context
        self.credentials = credentials
        self.refuse: Mapping[str, Reply] = refuse or {}
        self.fail: Mapping[str, Reply] = fail or {}
        self.drop_at = drop_at
        self.lmtp_failures: Mapping[str, Reply] = lmtp_failures or {}
        self.unix_path = None if unix_path is None else os.fspath(unix_path)
        self._messages: list[CapturedMessage] = []
        self._changed = threading.Condition()
        self._wires: set[_Wire] = set()
        self._server: _TCPServer | _UnixServer
        if self.unix_path is not None:
            self._server = _UnixServer(self.unix_path, _Handler)
        else:
            self._server = _TCPServer(("127.0.0.1", port), _Handler)
        self._server.capture = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="capture-server", daemon=True
        )  # a short poll interval: stop() returns quickly

    @property
    def host(self) -> str:
        """The address it listens on (127.0.0.1), or the Unix socket's path."""
        return "127.0.0.1" if self.unix_path is None else self.unix_path

    @property
    def port(self) -> int:
        """The TCP port it listens on (0 for a Unix socket)."""
        address = self._server.server_address
        return address[1] if isinstance(address, tuple) else 0

    @property
    def messages(self) -> list[CapturedMessage]:
        """The messages accepted so far, oldest first (a copy)."""
        with self._changed:
            return list(self._messages)

    def _add(self, message: CapturedMessage) -> int:
        """Record an accepted message; returns how many there are now."""
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()
            return len(self._messages)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Wait until at least ``count`` messages were accepted; return them all.

        Raises ``TimeoutError`` after ``timeout`` seconds without them.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages after {timeout}s")
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages accepted so far."""
        with self._changed:
            self._messages.clear()

    @contextlib.contextmanager
    def _tracking(self, wire: _Wire) -> Iterator[None]:
        """Keep a live connection known, so ``stop()`` can end it."""
        with self._changed:
            self._wires.add(wire)
        try:
            yield
        finally:
            with self._changed:
                self._wires.discard(wire)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, end the open connections and wait for the threads."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._changed:
            wires = list(self._wires)
        for wire in wires:
            with contextlib.suppress(OSError):
                wire.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)

    def __enter__(self) -> CaptureServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
