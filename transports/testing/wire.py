"""Reading commands and data from a client connection, and writing replies to it."""

from __future__ import annotations

import socket


class _Disconnect(Exception):
    """The session ends now (client gone, a cue to drop, or a reply that closes it)."""


class _Wire:
    """Buffered reads and writes on one connection; STARTTLS swaps the socket underneath."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise _Disconnect
        self.buffer += chunk

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF, or ``limit`` bytes of a longer line."""
        while True:
            end = self.buffer.find(b"\n", 0, limit)
            if end >= 0 or len(self.buffer) >= limit:
                size = end + 1 if end >= 0 else limit
                line = bytes(self.buffer[:size])
                del self.buffer[:size]
                return line
            self._fill()

    def read_into(self, count: int, sink: bytearray | None) -> None:
        """Consume exactly ``count`` bytes, appending them to ``sink`` unless it is ``None``."""
        while count:
            if not self.buffer:
                self._fill()
            piece = self.buffer[:count]
            del self.buffer[:count]
            count -= len(piece)
            if sink is not None:
                sink += piece

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(f"{line}\r\n" for line in lines).encode("utf-8"))
