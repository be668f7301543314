"""``CaptureServer``: the capture server's public face, a `_Listener` serving `_Session`s."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Mapping, Sequence

from .listener import _Listener
from .message import CapturedMessage
from .reply import Fault, Reply
from .service import Refusals, _Service
from .session import _Session
from .wire import _Disconnect, _Wire


class CaptureServer(_Listener):
    """A capturing SMTP (or LMTP) server on 127.0.0.1 or a Unix socket, run in threads.

    Start it with ``with`` (or ``start()``/``stop()``); it listens from construction on, so
    ``host`` and ``port`` are known at once.  Everything is optional:

    - ``port``: 0 (the default) picks a free port; ``unix_path`` listens on that Unix
      socket instead of TCP.
    - ``lmtp``: speak LMTP (LHLO; after the message, one reply per accepted recipient,
      ``lmtp_failures`` giving the failing ones).
    - ``hostname``: the name it gives in its greeting and EHLO reply.
    - ``size_limit``: advertised with SIZE and enforced (at MAIL, and on the data); None
      for no limit.
    - ``extensions``: the EHLO keywords to advertise instead of the default ones
      (PIPELINING, 8BITMIME, SMTPUTF8, SIZE ``size_limit``, DSN, CHUNKING,
      ENHANCEDSTATUSCODES).  STARTTLS and AUTH are added as configured.  The server keeps
      to what it advertises: the SIZE among them is the limit enforced, and BDAT is a
      command only while CHUNKING is advertised.
    - ``tls_context``: a server-side ``ssl.SSLContext``; offers STARTTLS.
    - ``implicit_tls``: with ``tls_context``, TLS from the first byte instead of STARTTLS
      (SMTPS, RFC 8314: what ``SMTP_SSL`` connects to).
    - ``credentials``: user -> password; offers AUTH with ``auth_mechanisms`` (PLAIN and
      LOGIN by default; CRAM-MD5 too if named).
    - ``refuse``: recipient -> reply given to its RCPT, e.g. ``(550, "5.1.1 No such user")``;
      or a function of the recipient giving that reply, or None to accept it.
    - ``fail``: step -> what the server does there instead of the normal: a reply, or an
      action: ``"close"`` the connection, ``"reset"`` it, or ``"stall"`` (silence until the
      server stops).  A step is a command verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``,
      ``"BDAT"``, ``"EHLO"``, ``"AUTH"``...), ``"connect"`` (the greeting), ``"message"``
      (while the message comes: after the 354, or once the first BDAT chunk is in; a reply
      there ends the connection), ``"body"`` (the end of a message, which is then not
      captured) or ``"captured"`` (the message was captured; instead of the reply saying
      so).  A 421 reply also closes the connection.
    - ``drop_at``: a step at which the server closes the connection without replying (the
      same as ``fail={step: "close"}``).

    ``messages`` holds what was accepted, ``commands`` every command line received;
    ``wait_for_messages(n)`` waits for deliveries made by other threads or processes.  It
    is safe to use from any thread.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        unix_path: str | os.PathLike[str] | None = None,
        lmtp: bool = False,
        hostname: str = "capture.local",
        size_limit: int | None = 10 << 20,
        extensions: Sequence[str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: Mapping[str, str] | None = None,
        auth_mechanisms: Sequence[str] = ("PLAIN", "LOGIN"),
        refuse: Refusals | None = None,
        fail: Mapping[str, Fault] | None = None,
        drop_at: str | None = None,
        lmtp_failures: Mapping[str, Reply] | None = None,
    ) -> None:
        faults = dict(fail or {})
        if drop_at is not None:
            faults[drop_at] = "close"
        if extensions is None:
            size = [] if size_limit is None else [f"SIZE {size_limit}"]
            extensions = ["PIPELINING", "8BITMIME", "SMTPUTF8", *size, "DSN", "CHUNKING"]
            extensions.append("ENHANCEDSTATUSCODES")
        self._service = _Service(
            lmtp=lmtp,
            hostname=hostname,
            extensions=extensions,
            tls_context=tls_context,
            implicit_tls=implicit_tls,
            credentials=credentials,
            auth_mechanisms=auth_mechanisms,
            refuse=refuse,
            fail=faults,
            lmtp_failures=lmtp_failures,
        )
        super().__init__(
            port=port,
            unix_path=None if unix_path is None else os.fspath(unix_path),
            nodelay=True,
            timeout=None,
            name="capture-server",
        )
        self._listen()

    def _serve(self, wire: _Wire) -> None:
        with contextlib.suppress(_Disconnect, OSError):
            _Session(self._service, wire).run()

    @property
    def host(self) -> str:
        """The address it listens on (127.0.0.1), or the Unix socket's path."""
        return "127.0.0.1" if self.unix_path is None else self.unix_path

    @property
    def messages(self) -> list[CapturedMessage]:
        """The messages accepted so far, oldest first (a copy)."""
        return self._service.messages

    @property
    def commands(self) -> list[str]:
        """Every command line received so far, oldest first, without its line end (a copy).

        Bytes that are not UTF-8 are kept as surrogate escapes.  The message content and
        the answers to AUTH challenges are not commands.
        """
        return self._service.commands

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Wait until at least ``count`` messages were accepted; return them all.

        Raises ``TimeoutError`` after ``timeout`` seconds without them.
        """
        return self._service.wait_for_messages(count, timeout)

    def clear(self) -> None:
        """Forget the messages accepted so far."""
        self._service.clear()
