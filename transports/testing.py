"""A local SMTP server that captures what it receives: for trying the client, and for tests.

It listens on 127.0.0.1 only, accepts every message (or refuses recipients on cue) and keeps
each one as a ``CapturedMessage``.  It is a plain threaded server, independent of the client
code, so it can check the client from the outside::

    with CaptureServer() as server:
        with SMTP(server.host, server.port) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        assert server.messages[0].data == b"Subject: hi\\r\\n\\r\\nhello\\r\\n"
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["CaptureServer", "CapturedMessage"]

_MAX_LINE = 4096
_MAX_MESSAGE = 64 << 20


@dataclass
class CapturedMessage:
    """One message as the server received it: envelope and content (dots unstuffed)."""

    mail_from: str
    rcpt_tos: list[str] = field(default_factory=list)
    mail_options: list[str] = field(default_factory=list)
    data: bytes = b""


def _address(argument: str) -> tuple[str, list[str]]:
    """Split ``<addr> OPTIONS`` into the address and its ESMTP options."""
    address, _, options = argument.strip().partition(">")
    return address.lstrip("<"), options.split()


class _Session(socketserver.StreamRequestHandler):
    """One client connection: a small ESMTP dialogue."""

    server: _Server

    def reply(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

    def read_data(self) -> bytes | None:
        """The message after DATA, dots unstuffed; ``None`` if the client went away."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(_MAX_LINE + 2)
            if not line:
                return None
            if line == b".\r\n":
                return b"".join(lines)
            size += len(line)
            if size <= _MAX_MESSAGE:
                lines.append(line[1:] if line.startswith(b".") else line)

    def handle(self) -> None:
        capture = self.server.capture
        self.reply(f"220 {capture.hostname} ESMTP smtp-proto capture server")
        message: CapturedMessage | None = None
        while True:
            raw = self.rfile.readline(_MAX_LINE + 2)
            if not raw:
                return
            verb, _, argument = raw.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "LHLO"):
                self.reply(
                    f"250-{capture.hostname}",
                    "250-PIPELINING",
                    f"250-SIZE {_MAX_MESSAGE}",
                    "250-8BITMIME",
                    "250-SMTPUTF8",
                    "250 ENHANCEDSTATUSCODES",
                )
            elif verb == "HELO":
                self.reply(f"250 {capture.hostname}")
            elif verb == "MAIL" and argument[:5].upper() == "FROM:":
                sender, options = _address(argument[5:])
                message = CapturedMessage(sender, mail_options=options)
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT" and argument[:3].upper() == "TO:":
                recipient, _ = _address(argument[3:])
                refusal = capture.refuse(recipient) if capture.refuse else None
                if message is None:
                    self.reply("503 5.5.1 MAIL first")
                elif refusal:
                    self.reply(refusal)
                else:
                    message.rcpt_tos.append(recipient)
                    self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if message is None or not message.rcpt_tos:
                    self.reply("554 5.5.1 No valid recipients")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = self.read_data()
                if data is None:
                    return
                message.data = data
                capture.add(message)
                self.reply(f"250 2.0.0 Ok: queued as {len(capture.messages)}")
                message = None
            elif verb == "RSET":
                message = None
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    capture: CaptureServer


class CaptureServer:
    """A capturing SMTP server on 127.0.0.1, run in a background thread while in ``with``.

    ``refuse`` may map a recipient to a refusal reply (e.g. ``"550 5.1.1 No such user"``) or
    ``None`` to accept it.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        hostname: str = "capture.local",
        refuse: Callable[[str], str | None] | None = None,
    ) -> None:
        self.hostname = hostname
        self.refuse = refuse
        self.messages: list[CapturedMessage] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Session, bind_and_activate=True)
        self._server.capture = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """The address it listens on: always 127.0.0.1."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self._server.server_address[1])

    def add(self, message: CapturedMessage) -> None:
        """Record a received message (called by the connection threads)."""
        with self._lock:
            self.messages.append(message)

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
