"""Deliver a message over LMTP on a Unix socket: a complete transport for smtp-proto's core.

    python lmtp_unix.py /path/to/lmtp.sock sender@example.com rcpt@example.com < message.eml

``smtp_proto.Client`` does all of the protocol; this file only connects and moves bytes.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, TypeVar

from smtp_proto import CLOSE, LOCAL_HOSTNAME, RECEIVE, Client, Operation, SMTPConnectError
from smtp_proto.driving import drive

T = TypeVar("T")


class UnixLMTP:
    """One LMTP connection over a Unix socket, driving the core's operations."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.client = Client(lmtp=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)  # every read and write is bounded
        self.sock.connect(path)
        self.client.connecting(path, 0)  # fresh protocol state for this connection
        code, text = self.run(self.client.greeting())
        if code != 220:
            self.abort()
            raise SMTPConnectError(code, text)

    def perform(self, request: Any) -> Any:
        """Carry out one I/O request of an operation; the result goes back into it."""
        if isinstance(request, bytes | memoryview):
            self.sock.sendall(request)
            return None
        if request is RECEIVE:
            return self.sock.recv(65536)  # b"" when the server has closed
        if request is CLOSE:
            self.sock.close()
            return None
        if request is LOCAL_HOSTNAME:
            return socket.getfqdn()
        raise NotImplementedError(f"{request!r}")  # START_TLS: not over a local socket

    def abort(self) -> None:
        """Drop the connection at once (an operation was interrupted half-way)."""
        self.client.close()
        self.sock.close()

    def run(self, operation: Operation[T]) -> T:
        return drive(operation, self.perform, self.abort)


def deliver(
    path: str, sender: str, recipients: list[str], message: bytes
) -> dict[str, tuple[int, bytes]]:
    """Send ``message``; returns each recipient's final ``(code, text)``.

    Recipients refused at RCPT and those refused after the body both appear, with the
    server's reply; raises ``SMTPRecipientsRefused`` if every recipient is refused.
    """
    lmtp = UnixLMTP(path)
    try:
        refused = lmtp.run(lmtp.client.sendmail(sender, recipients, message))
        results = {**lmtp.client.lmtp_replies, **refused}
        lmtp.run(lmtp.client.quit())
        return results
    finally:
        lmtp.abort()


if __name__ == "__main__":
    socket_path, from_addr, *to_addrs = sys.argv[1:]
    results = deliver(socket_path, from_addr, to_addrs, sys.stdin.buffer.read())
    for rcpt, (code, text) in results.items():
        print(rcpt, code, text.decode(errors="replace"))
