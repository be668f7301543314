"""One client connection as a server sees it: buffered reads, writes, TLS, and ways to end it."""

from __future__ import annotations

import contextlib
import math
import select
import socket
import ssl
import struct
import threading
import time

_RECV_SIZE = 1 << 16


class _Disconnect(Exception):
    """The session ends now (client gone, a cue to drop, or a reply that closes it)."""


class _Stopped(BaseException):
    """The server is stopping: unwinds a session that waits for its client.

    A BaseException, so that a handler's ``except Exception`` cannot swallow it.
    """


class _Wire:
    """Buffered reads and writes on one accepted connection; STARTTLS swaps the socket.

    Every wait for the client also watches the server's ``wake`` socket, so stopping the
    server releases it (``_Stopped``); with a ``timeout`` each read is bounded by it.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        stop: threading.Event,
        wake: socket.socket,
        timeout: float | None,
    ) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.timeout = timeout
        self._stop = stop
        self._wake = wake
        self._lock = threading.Lock()
        self._closed = False
        self._forced = False
        sock.settimeout(timeout)

    @property
    def closed(self) -> bool:
        """True once `close` or `reset` ran."""
        return self._closed

    @property
    def tls(self) -> bool:
        """True once TLS is up."""
        return isinstance(self.sock, ssl.SSLSocket)

    # -- reading -------------------------------------------------------------------------

    def _arrived(self, data: bytes) -> None:
        """Keep bytes the client sent for the reads to come."""
        self.buffer += data

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _fill(self, deadline: float | None) -> bool:
        """Wait for the client's next bytes and buffer them; False at EOF.

        Client data wins over the stop signal, so input that came before the server stopped
        is still read; raises `_Stopped` when the server stops first and `TimeoutError` when
        the deadline passes.
        """
        if self._closed:
            raise RuntimeError("the connection is closed; cannot read")
        sock = self.sock
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            poller.register(self._wake, select.POLLIN)
            wait = -1
            if deadline is not None:
                wait = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            ready = {fd for fd, _ in poller.poll(wait)}
            if sock.fileno() not in ready:
                if ready:
                    raise _Stopped
                raise TimeoutError(f"no data from the client within {self.timeout} s")
        data = sock.recv(_RECV_SIZE)
        if not data:
            return False
        self._arrived(data)
        return True

    def _take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF; the first ``limit`` bytes of a longer line; at EOF
        what is left (``b""`` when nothing is)."""
        deadline = self._deadline()
        start = 0
        while True:
            end = self.buffer.find(b"\n", start, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self.buffer) >= limit:
                return self._take(limit)
            start = len(self.buffer)
            if not self._fill(deadline):
                return self._take(len(self.buffer))

    def read_into(self, count: int, sink: bytearray | None) -> None:
        """Consume exactly ``count`` bytes, appending them to ``sink`` unless it is ``None``;
        `_Disconnect` if the client closes first."""
        deadline = self._deadline()
        while count:
            if not self.buffer and not self._fill(deadline):
                raise _Disconnect
            piece = self.buffer[:count]
            del self.buffer[:count]
            count -= len(piece)
            if sink is not None:
                sink += piece

    # -- writing and TLS -----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes (one ``sendall``)."""
        self.sock.sendall(data)

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the connection server-side and run the handshake.

        Call after the 220 to STARTTLS.  Bytes the client sent after its STARTTLS line were
        injected before TLS (RFC 3207 forbids them): never run, the session ends instead.
        """
        if self.buffer:
            raise _Disconnect
        tls = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        self.sock = tls
        tls.settimeout(self.timeout)
        tls.do_handshake()

    # -- ending --------------------------------------------------------------------------

    def close(self) -> None:
        """Close in an orderly way: TLS close_notify if needed, then FIN.

        After the FIN, input the client already sent is drained so that the kernel does not
        turn the close into a RST.  Idempotent; errors from a dead peer are ignored.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sock = self.sock
        if isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                # Sends close_notify; not waiting for the peer's reply is intended.
                sock = sock.unwrap()
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_WR)
        if not isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                for _ in range(64):
                    data = sock.recv(_RECV_SIZE)
                    if not data:
                        break
                    self._arrived(data)
        sock.close()

    def reset(self) -> None:
        """Abortive close (SO_LINGER 1/0): a TCP client sees ECONNRESET.

        On a Unix socket there is no RST; the connection is simply closed.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sock = self.sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def stall(self) -> None:
        """Stop reading and answering until the server stops (no sleeping, no polling)."""
        self._stop.wait()

    def _force_shutdown(self) -> None:
        """Unblock a session stuck in a send or a handshake; its errors are then ignored."""
        self._forced = True
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
