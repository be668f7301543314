"""Send a message through a SOCKS5 or HTTP CONNECT proxy: a blocking transport that runs the
core's proxy handshake, then SMTP, over one socket.

    python proxy_tunnel.py socks5://user:password@proxy.example:1080 mail.example.com 587 \\
        sender@example.com rcpt@example.com < message.eml

The handshake (``smtp_proto.proxy.open_tunnel``) is an operation like the client's: it yields
the bytes to send and ``RECEIVE``, so one ``perform`` serves the proxy and the mail server.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from typing import Any, TypeVar

from smtp_proto import (
    CLOSE,
    LOCAL_HOSTNAME,
    RECEIVE,
    START_TLS,
    Client,
    Operation,
    SMTPConnectError,
)
from smtp_proto.driving import drive
from smtp_proto.errors import ProxyUnreachableError
from smtp_proto.proxy import Proxy, open_tunnel

T = TypeVar("T")


class ProxiedSMTP:
    """One SMTP connection to ``host:port`` through ``proxy``, driving the core's operations.

    STARTTLS (``client.starttls()``) checks the certificate against ``host``, the mail
    server's name, never the proxy's; ``context`` is the ``ssl.SSLContext`` it uses.
    """

    def __init__(
        self,
        proxy: Proxy,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.context, self.timeout = host, context, timeout
        self.client = Client()
        self.deadline: float | None = None  # while set, every wait ends by then
        try:
            self.sock = socket.create_connection((proxy.host, proxy.port), timeout)
        except OSError as exc:
            raise ProxyUnreachableError(f"cannot connect to the proxy {proxy}: {exc}") from exc
        # Fresh protocol state before the tunnel: the greeting may arrive with its answer.
        self.client.connecting(host, port)
        self.deadline = time.monotonic() + timeout  # the handshake as a whole, drip or not
        try:
            self.run(open_tunnel(self.client, proxy, host, port))  # raises a ProxyError
            self.deadline = None  # from here on, each read and write gets the timeout
            code, text = self.run(self.client.greeting())
        except BaseException:
            self.abort()
            raise
        if code != 220:
            self.abort()
            raise SMTPConnectError(code, text)

    def _arm(self) -> None:
        """Bound the next read or write: by the handshake's deadline, or by the timeout."""
        if self.deadline is None:
            self.sock.settimeout(self.timeout)
        elif (left := self.deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
        else:
            raise TimeoutError("timed out")  # an OSError: the operation decides what it means

    def perform(self, request: Any) -> Any:
        """Carry out one I/O request of an operation; the result goes back into it."""
        if isinstance(request, bytes | memoryview):
            self._arm()
            self.sock.sendall(request)
        elif request is RECEIVE:
            self._arm()
            return self.sock.recv(65536)  # b"" when the peer has closed
        elif request is START_TLS:
            context = self.context or ssl.create_default_context()
            self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        elif request is CLOSE:
            self.sock.close()
        elif request is LOCAL_HOSTNAME:
            return socket.getfqdn()
        else:
            raise NotImplementedError(f"{request!r}")
        return None

    def abort(self) -> None:
        """Drop the connection at once (an operation was interrupted half-way)."""
        self.client.close()
        self.sock.close()

    def run(self, operation: Operation[T]) -> T:
        return drive(operation, self.perform, self.abort)


def deliver(
    proxy: str | Proxy,
    server: tuple[str, int],
    sender: str,
    recipients: list[str],
    message: bytes,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> dict[str, tuple[int, bytes]]:
    """Send ``message`` to ``server`` (its name and port) through ``proxy`` (a URL or a
    ``Proxy``); returns the refused recipients, as ``sendmail`` does.  With ``context``,
    STARTTLS first (required)."""
    proxy = Proxy.from_url(proxy) if isinstance(proxy, str) else proxy
    smtp = ProxiedSMTP(proxy, *server, context=context, timeout=timeout)
    try:
        if context is not None:
            smtp.run(smtp.client.starttls())
        refused = smtp.run(smtp.client.sendmail(sender, recipients, message))
        smtp.run(smtp.client.quit())
        return refused
    finally:
        smtp.abort()


if __name__ == "__main__":
    proxy_url, host, port, from_addr, *to_addrs = sys.argv[1:]
    message = sys.stdin.buffer.read()
    tls = ssl.create_default_context()
    refused = deliver(proxy_url, (host, int(port)), from_addr, to_addrs, message, context=tls)
    for rcpt, (code, text) in refused.items():
        print(rcpt, code, text.decode(errors="replace"))
