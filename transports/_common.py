"""What every adapter shares that is not protocol: names, constants, attribute plumbing.

Protocol logic lives in ``smtp_proto.Client``; this module holds the small pieces of
``smtplib``'s surface that are identical for blocking, asyncio and trio adapters, and the
rule by which every adapter applies ``timeout`` (``Deadline``).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from math import inf
from typing import Any

from smtp_proto.body import quotedata
from smtp_proto.client import Client
from smtp_proto.commands import quoteaddr

__all__ = [
    "CRLF",
    "DEFAULT_TIMEOUT",
    "GLOBAL_DEFAULT_TIMEOUT",
    "LMTP_PORT",
    "SMTP_PORT",
    "SMTP_SSL_PORT",
    "ClientAttributes",
    "Deadline",
    "bCRLF",
    "default_tls_context",
    "local_hostname",
    "quoteaddr",
    "quotedata",
    "resolve_timeout",
    "split_host_port",
]

SMTP_PORT = 25
SMTP_SSL_PORT = 465
LMTP_PORT = 2003
CRLF = "\r\n"
bCRLF = b"\r\n"

#: The "no timeout given" default of ``smtplib`` (and ``socket.create_connection``).
GLOBAL_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

#: Seconds one write or one wait for a reply may take when the caller gives no timeout and the
#: socket module has no default either: RFC 5321 section 4.5.3.2 allows servers up to 5
#: minutes per command (10 for the end of data), and a client must not wait forever.
DEFAULT_TIMEOUT = 600.0


def resolve_timeout(timeout: object) -> float | None:
    """The timeout to use: the caller's, else the socket default, else ``DEFAULT_TIMEOUT``."""
    if timeout is GLOBAL_DEFAULT_TIMEOUT:
        timeout = socket.getdefaulttimeout()
        return DEFAULT_TIMEOUT if timeout is None else timeout
    if timeout is not None and not timeout:
        raise ValueError("Non-blocking socket (timeout=0) is not supported")
    return timeout  # type: ignore[return-value]


class Deadline:
    """When the write or reply wait under way must end: how every adapter applies ``timeout``.

    ``timeout`` bounds each complete write, and each wait for a complete reply, from the
    moment the client starts waiting for it until its last line has arrived (``smtplib``'s
    bounds each socket read instead).  Bytes that arrive do not extend it, so a
    server that drips a reply one byte at a time, or sends continuation lines without end,
    gets a timeout once ``timeout`` has passed, as a silent one does.

    A reply wait starts at the first read of an operation or after a write, and again each
    time a reply completes while the operation reads on (pipelined replies, LMTP's reply per
    recipient): the core takes a complete reply off its queue of pending commands, so a
    change in that queue's length between two reads marks the start of a new wait.  A
    deadline of ``inf`` means no timeout.  Adapters pass their framework's clock.
    """

    __slots__ = ("_clock", "_pending", "when")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._pending = -1  # the pending commands at the start of the wait; -1: none started
        #: The deadline of the write or wait under way, on ``clock``.
        self.when = inf

    def start_operation(self) -> None:
        """An operation begins: its first read starts a new wait."""
        self._pending = -1

    def for_write(self, timeout: float | None) -> float:
        """The deadline of a write starting now; the next read starts a new wait."""
        self._pending = -1
        self.when = inf if timeout is None else self._clock() + timeout
        return self.when

    def for_read(self, client: Client, timeout: float | None) -> float:
        """The deadline of a read: a new one if a reply wait starts now, else the current one."""
        pending = len(client.connection.pending)
        if pending != self._pending:
            self._pending = pending
            self.when = inf if timeout is None else self._clock() + timeout
        return self.when


def local_hostname() -> str:
    """This host's name for HELO/EHLO: its FQDN, or ``[address]`` when it has no dots.

    It may block on DNS: the async adapters run it in a worker thread.
    """
    fqdn = socket.getfqdn()
    if "." in fqdn:
        return fqdn
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = "127.0.0.1"
    return f"[{address}]"


def split_host_port(host: str, port: int, default_port: int) -> tuple[str, int]:
    """Accept ``"host:port"`` when no port is given, as ``smtplib.SMTP.connect`` does."""
    if not port and host.count(":") == 1:
        host, _, port_text = host.partition(":")
        try:
            port = int(port_text)
        except ValueError:
            raise OSError("nonnumeric port") from None
    return host, port or default_port


def default_tls_context() -> ssl.SSLContext:
    """Certificates and host names verified: unlike ``smtplib``, which verifies neither."""
    return ssl.create_default_context()


class _Delegated:
    """An attribute stored on the adapter's ``Client``, so user code reads and sets it as usual."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return getattr(instance._client, self.name)

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(instance._client, self.name, value)


class ClientAttributes:
    """The ``smtplib.SMTP`` attributes and plain (non-I/O) methods, shared by every adapter."""

    _client: Client

    helo_resp = _Delegated()
    ehlo_resp = _Delegated()
    does_esmtp = _Delegated()
    esmtp_features = _Delegated()
    command_encoding = _Delegated()
    user = _Delegated()
    password = _Delegated()
    debuglevel = _Delegated()
    ehlo_msg = _Delegated()
    lmtp_replies = _Delegated()
    chunking = _Delegated()

    @property
    def local_hostname(self) -> str:
        """The name sent with HELO/EHLO; looked up once, the first time it is needed."""
        if self._client.local_hostname is None:
            self._client.local_hostname = local_hostname()
        return self._client.local_hostname

    @local_hostname.setter
    def local_hostname(self, value: str) -> None:
        self._client.local_hostname = value

    def set_debuglevel(self, debuglevel: int) -> None:
        """1 prints the transcript to stderr as ``smtplib`` does; 2 adds timestamps."""
        self._client.debuglevel = debuglevel

    def has_extn(self, opt: str) -> bool:
        """Whether the server advertised the extension ``opt``."""
        return self._client.has_extn(opt)

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        """The CRAM-MD5 authobject for ``auth()``."""
        return self._client.auth_cram_md5(challenge)

    def auth_plain(self, challenge: bytes | None = None) -> str:
        """The PLAIN authobject for ``auth()``."""
        return self._client.auth_plain(challenge)

    def auth_login(self, challenge: bytes | None = None) -> str | None:
        """The LOGIN authobject for ``auth()``."""
        return self._client.auth_login(challenge)
