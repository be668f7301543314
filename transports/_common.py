"""What every adapter shares that is not protocol: names, constants, attribute plumbing.

Protocol logic lives in ``smtp_proto.Client``; this module holds the small pieces of
``smtplib``'s surface that are identical for blocking, asyncio and trio adapters, and the
rule by which every adapter applies ``timeout`` (``Deadline``).
"""

from __future__ import annotations

import socket
import ssl
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from math import inf
from operator import attrgetter, is_
from typing import Any, ClassVar

from smtp_proto.attributes import SMTPAttributes
from smtp_proto.body import quotedata
from smtp_proto.client import Client
from smtp_proto.commands import quoteaddr
from smtp_proto.errors import ProxyUnreachableError
from smtp_proto.ports import LMTP_PORT, SMTP_PORT, SMTPS_PORT
from smtp_proto.proxy import Proxy, as_proxy

__all__ = [
    "CRLF",
    "DEFAULT_TIMEOUT",
    "GLOBAL_DEFAULT_TIMEOUT",
    "LMTP_PORT",
    "LMTPBase",
    "SMTP_PORT",
    "SMTP_SSL_PORT",
    "HOOKS",
    "Deadline",
    "SMTPObject",
    "WholeDeadline",
    "SMTPSSLBase",
    "bCRLF",
    "default_tls_context",
    "local_hostname",
    "open_socket",
    "proxy_unreachable",
    "quoteaddr",
    "quotedata",
    "register_api",
    "resolve_timeout",
    "split_host_port",
    "tls_context_with_client_cert",
]

SMTP_SSL_PORT = SMTPS_PORT
CRLF = "\r\n"
bCRLF = b"\r\n"

#: The "no timeout given" default of ``smtplib`` (and ``socket.create_connection``).
GLOBAL_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

#: Seconds one write or one wait for a reply may take when the caller gives no timeout and the
#: socket module has no default either: RFC 5321 section 4.5.3.2 allows servers up to 5
#: minutes per command (10 for the end of data), and a client must not wait forever.
DEFAULT_TIMEOUT = 600.0


def resolve_timeout(timeout: object, socket_default: float | None) -> float | None:
    """The timeout to use: the caller's, else the socket module's default (``socket_default``,
    read when connecting, as ``smtplib`` does), else ``DEFAULT_TIMEOUT``."""
    if timeout is GLOBAL_DEFAULT_TIMEOUT:
        return DEFAULT_TIMEOUT if socket_default is None else socket_default
    if timeout is not None and not timeout:
        raise ValueError("Non-blocking socket (timeout=0) is not supported")
    return timeout  # type: ignore[return-value]


class Deadline:
    """When the write or reply wait under way must end: how every adapter applies ``timeout``.

    ``timeout`` (seconds, ``None`` for none; see ``resolve_timeout`` for the default) bounds
    each complete write, and each wait for a complete reply, from the moment the client
    starts waiting for it until its last line has arrived (``smtplib``'s bounds each socket
    read instead).  Bytes that arrive do not extend it, so a server that drips a reply one
    byte at a time, or sends continuation lines without end, gets a timeout once ``timeout``
    has passed, as a silent one does: ``SMTPServerDisconnected`` caused by ``TimeoutError``,
    and the connection is closed.

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
        pending = client.connection.awaiting
        if pending != self._pending:
            self._pending = pending
            self.when = inf if timeout is None else self._clock() + timeout
        return self.when

    def whole(self, timeout: float | None) -> WholeDeadline:
        """One deadline, ``timeout`` from now, for every write and read of an exchange."""
        whole = WholeDeadline(self._clock)
        whole.when = inf if timeout is None else self._clock() + timeout
        return whole


class WholeDeadline(Deadline):
    """A ``Deadline`` that does not move: a proxy's handshake is bounded as a whole, so a
    proxy that answers a byte at a time cannot stretch it."""

    __slots__ = ()

    def start_operation(self) -> None:
        """Nothing starts anew."""

    def for_write(self, timeout: float | None) -> float:
        """The one deadline."""
        return self.when

    def for_read(self, client: Client, timeout: float | None) -> float:
        """The one deadline."""
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


def open_socket(
    host: str,
    port: int,
    timeout: float | None,
    source_address: tuple[str, int] | None,
    *,
    lmtp: bool = False,
    sockets: Any = socket,
) -> socket.socket:
    """A blocking socket connected to ``host:port``, or for LMTP to the Unix socket ``host``
    when it is an absolute path: what ``_get_socket`` returns unless a subclass says otherwise.

    ``timeout`` may be ``GLOBAL_DEFAULT_TIMEOUT`` (the socket module's default).  ``sockets``
    is the socket module to use: the blocking adapter passes its own global, which tests of
    ``smtplib`` code replace with a mock (``smtplib.socket = mock_socket``).
    """
    if not (lmtp and host.startswith("/")):
        sock: socket.socket = sockets.create_connection((host, port), timeout, source_address)
        # Commands are small writes that wait for their reply: Nagle's algorithm would hold
        # one back until the server's delayed ACK (tens of ms; a 10 MB send took 10x longer).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    try:
        if timeout is not GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(timeout)
        sock.connect(host)
    except BaseException:
        sock.close()
        raise
    return sock


def proxy_unreachable(proxy: Proxy, error: OSError) -> ProxyUnreachableError:
    """The error for a proxy that could not be connected to (``error`` is its cause)."""
    return ProxyUnreachableError(f"cannot connect to the proxy {proxy}: {error}")


def default_tls_context() -> ssl.SSLContext:
    """Certificates and host names verified: unlike ``smtplib``, which verifies neither."""
    return ssl.create_default_context()


#: The adapter object whose operation is being driven in this context (thread or task): a
#: public method called from inside an operation (a subclass's override calling the base
#: method) runs inside it, on the same connection, without taking the lock again.
_RUNNING: ContextVar[object] = ContextVar("smtp_proto_running", default=None)

#: The public methods the core's operations call, as ``smtplib``'s call each other: a
#: subclass's or a mock's replacement of one of them is called instead of the core's step.
HOOKS = (
    "auth",
    "auth_cram_md5",
    "auth_login",
    "auth_plain",
    "data",
    "docmd",
    "ehlo",
    "ehlo_or_helo_if_needed",
    "getreply",
    "helo",
    "mail",
    "putcmd",
    "rcpt",
    "rset",
    "send",
    "sendmail",
)


def tls_context_with_client_cert(
    keyfile: str | None, certfile: str | None, context: ssl.SSLContext | None
) -> ssl.SSLContext | None:
    """The context for ``starttls``/``SMTP_SSL`` on Python 3.11: ``context``, or, given
    ``smtplib``'s deprecated ``keyfile``/``certfile`` (with its ``DeprecationWarning``), a
    default (verifying) context holding that client certificate."""
    if keyfile is None and certfile is None:
        return context
    if context is not None:
        raise ValueError("context and keyfile/certfile arguments are mutually exclusive")
    warnings.warn(
        "keyfile and certfile are deprecated, use a custom context instead",
        DeprecationWarning,
        stacklevel=3,
    )
    context = default_tls_context()
    context.load_cert_chain(certfile, keyfile)  # type: ignore[arg-type]
    return context


class SMTPObject(SMTPAttributes):
    """What every adapter's ``SMTP`` shares that is not I/O: ``smtplib``'s attributes (on the
    object itself, class defaults included; see ``SMTPAttributes``), ``set_debuglevel``, and
    how the core learns which public methods a subclass or a mock replaced."""

    #: The port ``connect`` uses when none is given.
    default_port: int = SMTP_PORT
    #: ``smtplib``'s file for reading replies: always ``None`` here (replies are read by the core).
    file: Any | None = None
    #: As given: seconds, ``None``, or ``GLOBAL_DEFAULT_TIMEOUT`` (resolved when connecting).
    timeout: float | None = GLOBAL_DEFAULT_TIMEOUT
    #: The ``(host, port)`` to connect from, ``None`` for any.
    source_address: tuple[str, int] | None
    #: The proxy connections go through (``proxy=``), ``None`` for none.  Private: ``proxy`` is
    #: a name ``smtplib`` subclasses use for their own (the "smtplib over a proxy" recipes).
    _proxy: Proxy | None = None
    #: The timeout in force on the connection (see ``resolve_timeout``).
    _timeout: float | None = DEFAULT_TIMEOUT
    _lmtp = False
    #: How the adapter bounds the write or reply wait under way (see ``Deadline``).
    _deadline: Deadline
    #: The adapter's own function for each name in ``HOOKS`` (set by ``register_api``).
    _api: ClassVar[dict[str, Any]] = {}
    #: For each tuple of names ``_replaced`` was asked about: what reads them off a class,
    #: and the adapter's own functions for them (``_api_lookup``; emptied by ``register_api``).
    _api_lookups: ClassVar[
        dict[tuple[str, ...], tuple[Callable[[type], tuple[Any, ...]], tuple[Any, ...]]]
    ] = {}
    _client: Client

    def __init__(
        self,
        host: str,
        local_hostname: str | None,
        timeout: float | None,
        source_address: tuple[str, int] | None,
        proxy: str | Proxy | None = None,
    ) -> None:
        """What every adapter's constructor does before any I/O; attributes a subclass set
        before calling it (``user``, ``debuglevel``, ...) are kept, as in ``smtplib``.  A bad
        ``proxy`` URL is refused here, before anything connects."""
        SMTPAttributes.__init__(self)
        self._host = host
        self.timeout = timeout
        self.source_address = source_address
        self._proxy = as_proxy(proxy)
        self.command_encoding = "ascii"
        if local_hostname:
            self._local_hostname = local_hostname
        self._tls_context: ssl.SSLContext | None = None
        #: The protocol core for this object, which holds its attributes.
        self._client = Client(
            lmtp=self._lmtp, owner=self, overrides=self._override, replaced=self._replaced
        )

    def _drop(self) -> None:
        """Close the connection and forget it (the adapter's own; ``close()`` calls it)."""
        raise NotImplementedError

    def _start_connecting(
        self,
        host: str,
        port: int,
        source_address: tuple[str, int] | None,
        socket_default: float | None,
    ) -> tuple[str, int]:
        """What ``connect`` does before opening the connection, in every adapter: the host
        and port to use (``"host:port"`` split, an LMTP socket path kept), the old connection
        dropped (not through ``close()``, which ``smtplib``'s ``connect`` does not call), the
        timeout resolved against the socket module's default now, fresh protocol state."""
        if source_address:
            self.source_address = source_address
        if not (self._lmtp and host.startswith("/")):
            host, port = split_host_port(host, port, self.default_port)
        elif self._proxy is not None:
            raise ValueError("a Unix socket cannot be reached through a proxy")
        self._drop()
        self._timeout = resolve_timeout(self.timeout, socket_default)
        self._host = host
        self._client.connecting(host, port, self.source_address)
        sys.audit("smtplib.connect", self, host, port)
        return host, port

    @contextmanager
    def _one_deadline(self) -> Iterator[None]:
        """Bound every write and read inside by one deadline, ``timeout`` from now (a proxy's
        handshake, as a whole), then go back to the usual rule."""
        general, self._deadline = self._deadline, self._deadline.whole(self._timeout)
        try:
            yield
        finally:
            self._deadline = general

    def _override(self, name: str) -> Callable[..., Any] | None:
        """The method ``name`` if a subclass or a mock replaced it (on the class or on this
        object), else ``None``: the core then runs its own step inline."""
        replaced = self.__dict__.get(name)
        if replaced is not None:
            return replaced  # type: ignore[no-any-return]
        if getattr(type(self), name) is self._api[name]:
            return None
        return getattr(self, name)  # type: ignore[no-any-return]

    def _replaced(self, names: tuple[str, ...]) -> bool:
        """Whether any of the methods ``names`` was replaced (``_override`` of each is not
        ``None``), asked once a message: the usual answer, nothing set on the object and the
        class's own methods, is found without a Python call per name (one ``attrgetter``
        call reads them all off the class; each is compared by identity)."""
        if self.__dict__.keys().isdisjoint(names):
            lookup = self._api_lookups.get(names)
            if lookup is None:
                lookup = self._api_lookups[names] = _api_lookup(self._api, names)
            read, own = lookup
            if all(map(is_, read(type(self)), own)):
                return False
        return any(self._override(name) is not None for name in names)

    def _inside_operation(self) -> bool:
        """Whether this call comes from inside one of this object's operations."""
        return _RUNNING.get() is self

    @property
    def local_hostname(self) -> str:
        """The name sent with HELO/EHLO; looked up once, the first time it is needed."""
        if self._local_hostname is None:
            self._local_hostname = local_hostname()
        return self._local_hostname

    @local_hostname.setter
    def local_hostname(self, value: str) -> None:
        self._local_hostname = value

    def set_debuglevel(self, debuglevel: int) -> None:
        """1 prints the transcript to stderr as ``smtplib`` does; 2 adds timestamps."""
        self.debuglevel = debuglevel


class LMTPBase(SMTPObject):
    """LMTP (RFC 2033): LHLO, a Unix socket when ``host`` is an absolute path, one reply per
    recipient; mixed in before an adapter's ``SMTP``, with ``smtplib.LMTP``'s constructor."""

    default_port: int = LMTP_PORT
    ehlo_msg: str = "lhlo"
    _lmtp = True

    def __init__(
        self,
        host: str = "",
        port: int = LMTP_PORT,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | None = GLOBAL_DEFAULT_TIMEOUT,
        *,
        proxy: str | Proxy | None = None,
    ) -> None:
        # The adapter's SMTP is next in the MRO (not SMTPObject, as a type checker sees it).
        smtp_init: Callable[..., None] = super().__init__
        smtp_init(
            host,
            port,
            local_hostname=local_hostname,
            timeout=timeout,
            source_address=source_address,
            proxy=proxy,
        )


class SMTPSSLBase(SMTPObject):
    """Implicit TLS (port 465), certificates verified by default: mixed in before an adapter's
    ``SMTP``, with the running Python's ``smtplib.SMTP_SSL`` constructor."""

    default_port: int = SMTP_SSL_PORT
    #: The TLS settings of the connection.
    context: ssl.SSLContext
    #: The adapter's plain ``SMTP`` class, whose constructor runs after the TLS settings.
    _plain: ClassVar[type[SMTPObject]]

    if sys.version_info >= (3, 12):

        def __init__(
            self,
            host: str = "",
            port: int = 0,
            local_hostname: str | None = None,
            *,
            timeout: float | None = GLOBAL_DEFAULT_TIMEOUT,
            source_address: tuple[str, int] | None = None,
            context: ssl.SSLContext | None = None,
            proxy: str | Proxy | None = None,
        ) -> None:
            """smtplib 3.12's signature: no keyfile or certfile, ``timeout`` keyword-only."""
            self.context = default_tls_context() if context is None else context
            self._init_plain(host, port, local_hostname, timeout, source_address, proxy)

    else:
        #: The client certificate's key and certificate files (deprecated, as in ``smtplib``).
        keyfile: str | None
        certfile: str | None

        def __init__(  # noqa: PLR0917 (smtplib's signature)
            self,
            host: str = "",
            port: int = 0,
            local_hostname: str | None = None,
            keyfile: str | None = None,
            certfile: str | None = None,
            timeout: float | None = GLOBAL_DEFAULT_TIMEOUT,
            source_address: tuple[str, int] | None = None,
            context: ssl.SSLContext | None = None,
            *,
            proxy: str | Proxy | None = None,
        ) -> None:
            """smtplib 3.11's signature: ``keyfile`` and ``certfile`` deprecated, as there."""
            self.keyfile, self.certfile = keyfile, certfile
            self.context = (
                tls_context_with_client_cert(keyfile, certfile, context) or default_tls_context()
            )
            self._init_plain(host, port, local_hostname, timeout, source_address, proxy)

    def _init_plain(  # noqa: PLR0917 (smtplib's positional arguments)
        self,
        host: str,
        port: int,
        local_hostname: str | None,
        timeout: float | None,
        source_address: tuple[str, int] | None,
        proxy: str | Proxy | None,
    ) -> None:
        """Run the plain class's constructor, after the TLS settings are made.

        As smtplib: the plain class by name, not super(), so that a subclass that also
        derives from its own SMTP subclass (python-emails' SSL client) does not get these
        arguments.  After the TLS settings: a blocking adapter connects in its constructor.
        """
        plain_init: Callable[..., None] = self._plain.__init__
        plain_init(self, host, port, local_hostname, timeout, source_address, proxy=proxy)


def register_api(cls: type[SMTPObject]) -> None:
    """Record ``cls``'s public methods as the ones a subclass or a mock may replace."""
    cls._api = {name: getattr(cls, name) for name in HOOKS}
    cls._api_lookups = {}


def _api_lookup(
    api: dict[str, Any], names: tuple[str, ...]
) -> tuple[Callable[[type], tuple[Any, ...]], tuple[Any, ...]]:
    """A function that reads the attributes ``names`` off a class as a tuple, and the
    adapter's own functions for them, in the same order."""
    own = tuple(api[name] for name in names)
    if len(names) > 1:
        return attrgetter(*names), own
    return (lambda cls: tuple(getattr(cls, name) for name in names)), own  # (attrgetter: 2+)
