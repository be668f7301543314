"""Proxy tunnels before SMTP: SOCKS5 (RFC 1928, with RFC 1929 passwords) and HTTP CONNECT.

A proxy handshake is one more I/O-free stage before the server's greeting: ``tunnel_gen`` is
an operation like the client's (it yields the bytes to send and ``RECEIVE``), so every
transport drives it with the driver loop it already has, over the connection it opened to the
proxy.  The encodings are the well-kept sans-I/O libraries' (``socksio``, ``h11``: the
``smtp-proto[proxy]`` extra), imported only when a proxy is used; this module frames the
replies, so it never reads a byte past the proxy's answer, and maps every outcome to the
typed errors of ``smtp_proto.errors``.

Names are always resolved by the proxy (``socks5h`` semantics, for ``socks5`` URLs too): the
mail server's name goes through the tunnel, so a client behind an egress proxy needs no DNS,
and TLS is checked against that name, never the proxy's.
"""

from __future__ import annotations

import base64
import ipaddress
import string
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from ._version import __version__
from .errors import (
    ProxyAuthenticationError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    ProxyTimeoutError,
)
from .requests import RECEIVE, Operation

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Proxy", "ProxyScheme", "as_proxy", "open_tunnel", "tunnel_gen"]

ProxyScheme = Literal["socks5", "http"]

#: The URL schemes accepted, and the protocol each means.
_SCHEMES: Final[dict[str, ProxyScheme]] = {"socks5": "socks5", "socks5h": "socks5", "http": "http"}
_DEFAULT_PORTS: Final[dict[ProxyScheme, int]] = {"socks5": 1080, "http": 80}
#: The most bytes an HTTP proxy's answer (its response heads) may take.
_HTTP_HEAD_LIMIT: Final = 16 * 1024
#: What a name given to the proxy may hold once in IDNA: letters, digits, '-', '.' and '_'
#: (no whitespace, control character or delimiter can reach the proxy's request).
_NAME_CHARACTERS: Final = frozenset(string.ascii_letters + string.digits + "-._")
#: What a URL's scheme may hold (RFC 3986 section 3.1).
_SCHEME_CHARACTERS: Final = frozenset(string.ascii_letters + string.digits + "+-.")
#: RFC 1928's words for its reply codes, and which ones mean the mail server was not reached.
_SOCKS5_REPLIES: Final = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
_SOCKS5_TARGET_FAILURES: Final = frozenset({3, 4, 5, 6})
#: HTTP statuses by which a CONNECT proxy says it could not reach the server.
_HTTP_TARGET_FAILURES: Final = frozenset({500, 502, 503, 504})
_HTTP_AUTH_FAILURES: Final = frozenset({401, 407})


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy to reach the mail server through: ``Proxy.from_url("socks5://user:pw@host:1080")``.

    ``scheme`` is ``"socks5"`` (names resolved by the proxy) or ``"http"`` (HTTP CONNECT, with
    Basic authentication when a username is given).  ``str()`` and ``repr()`` never show the
    password.
    """

    scheme: ProxyScheme
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported proxy scheme {self.scheme!r} (socks5 or http)")
        if not self.host or "/" in self.host or "@" in self.host or _has_controls(self.host, " "):
            raise ValueError(f"bad proxy host {self.host!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"bad proxy port {self.port!r}")
        if (self.username is None) != (self.password is None):
            raise ValueError("a proxy username needs a password, and a password a username")
        if self.username is None or self.password is None:
            return
        # Errors name neither value: the password must not reach a log through them.
        encoded = []
        for what, value in (("username", self.username), ("password", self.password)):
            try:
                encoded.append(value.encode())
            except UnicodeEncodeError:
                raise ValueError(f"a proxy {what} is text that UTF-8 can encode") from None
        if self.scheme == "socks5":
            # RFC 1929: each is 1 to 255 bytes.
            for what, octets in zip(("username", "password"), encoded, strict=True):
                if not 0 < len(octets) < 256:
                    raise ValueError(f"a SOCKS5 {what} is 1 to 255 bytes")
        elif ":" in self.username or _has_controls(self.username + self.password):
            # RFC 7617 section 2: no ':' in the user-id, no control character in either.
            raise ValueError("no ':' in an HTTP proxy username, no control character in either")

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """Parse ``scheme://[user:password@]host[:port]`` (``socks5``, ``socks5h``, ``http``;
        percent-escapes in the user and password decoded), or raise ``ValueError``."""
        shown = _redacted(url)
        if _has_controls(url, " "):
            # urlsplit would drop some silently (a tab, a line feed), making another URL.
            raise ValueError(f"bad proxy URL {shown!r}: whitespace or a control character")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            # urlsplit's words may quote the password (a part of it, cut at a '/'): then none.
            detail = "bad host or port" if "@" in url else str(exc)
            raise ValueError(f"bad proxy URL {shown!r}: {detail}") from None
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None:
            raise ValueError(f"bad proxy URL {shown!r}: the scheme is socks5, socks5h or http")
        if parts.netloc and "@" in url and "@" not in parts.netloc:
            raise ValueError(
                f"bad proxy URL {shown!r}: '/', '?', '#' in a user or password are percent-escaped"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment or not parts.hostname:
            raise ValueError(f"bad proxy URL {shown!r}: want scheme://host:port")
        try:
            username = None if parts.username is None else unquote(parts.username, errors="strict")
            password = None if parts.password is None else unquote(parts.password, errors="strict")
        except UnicodeDecodeError:
            raise ValueError(
                f"bad proxy URL {shown!r}: percent-escapes in the user or password not UTF-8"
            ) from None
        return cls(
            scheme,
            parts.hostname,
            _DEFAULT_PORTS[scheme] if port is None else port,
            username,
            password,
        )

    def __str__(self) -> str:
        user = "" if self.username is None else f"{self.username}:****@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``****``, for error messages: all that comes
    before its last ``@`` but the scheme and the username is hidden, whatever the URL's
    shape (a password holding ``/`` or ``@``, the scheme's slashes missing)."""
    userinfo, at, rest = url.rpartition("@")
    if not at:
        return url
    scheme, sep, user = userinfo.partition("://")
    if not sep or not _SCHEME_CHARACTERS.issuperset(scheme):  # that '://' was the password's
        return f"****@{rest}"
    username, colon, _ = user.partition(":")
    return f"{scheme}://{username}{':****' if colon else ''}@{rest}"


def _has_controls(text: str, also: str = "") -> bool:
    """Whether ``text`` holds a C0 control character, DEL, or one of ``also``."""
    return any(c < " " or c == "\x7f" or c in also for c in text)


def _shown(proxy: Proxy, text: str) -> str:
    """``text``, the proxy's words, for an error message, or a placeholder when it holds
    the password (as text, as escaped bytes, or in the Basic token): a proxy that echoes
    the credentials back must not put them in a log.  Withheld whole, as replacing the
    password in it would show where it was, and so what it is."""
    if proxy.username is None or proxy.password is None:
        return text
    secrets = (
        proxy.password,
        repr(proxy.password.encode())[2:-1],
        _basic_token(proxy.username, proxy.password),
    )
    if any(secret and secret in text for secret in secrets):
        return "(withheld: it holds the proxy password)"
    return text


def _basic_token(username: str, password: str) -> str:
    """RFC 7617's credentials: ``user-id:password`` in UTF-8, base64-encoded."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def as_proxy(proxy: str | Proxy | None) -> Proxy | None:
    """The ``proxy=`` argument checked: a URL parsed (``ValueError`` when it is bad), and the
    ``smtp-proto[proxy]`` extra present (``ImportError`` saying how to install it)."""
    if proxy is None:
        return None
    if isinstance(proxy, str):
        proxy = Proxy.from_url(proxy)
    elif not isinstance(proxy, Proxy):
        raise TypeError(f"proxy must be a URL or a Proxy, not {type(proxy).__name__}")
    try:
        if proxy.scheme == "socks5":
            import socksio  # noqa: F401, PLC0415 (optional: only with a proxy)
        else:
            import h11  # noqa: F401, PLC0415 (optional: only with a proxy)
    except ImportError as exc:
        raise ImportError(
            f"a {proxy.scheme} proxy needs the proxy extra: pip install 'smtp-proto[proxy]'"
        ) from exc
    return proxy


def open_tunnel(
    client: Client, proxy: Proxy, host: str, port: int, *, tls_first: bool = False
) -> Operation[None]:
    """The operation a transport runs on a connection just opened to ``proxy``, before the
    greeting: the tunnel to ``host:port``, with what followed the proxy's answer kept as the
    start of the server's greeting (which must not come before an implicit TLS handshake,
    ``tls_first``)."""
    if client.owner.debuglevel > 0:
        client.print_debug("proxy:", f"{proxy} to {host}:{port}")
    early = yield from tunnel_gen(proxy, host, port)
    if early and tls_first:
        raise ProxyProtocolError("data came through the tunnel before the TLS handshake")
    if early:
        client.connection.receive_data(early)


def tunnel_gen(proxy: Proxy, host: str, port: int) -> Generator[Any, Any, bytes]:
    """Ask ``proxy``, over a connection just opened to it, for a tunnel to ``host:port``.

    Returns the bytes that came after the proxy's answer (the start of the server's
    greeting, when they arrived together).  Raises a ``ProxyError``: the transport's
    ``OSError`` becomes ``ProxyTimeoutError`` (a ``TimeoutError``) or ``ProxyProtocolError``.
    """
    buffer = bytearray()
    try:
        if proxy.scheme == "socks5":
            yield from _socks5_gen(proxy, _target_name(host), port, buffer)
        else:
            yield from _http_connect_gen(proxy, host, port, buffer)
    except ProxyError:
        raise
    except TimeoutError as exc:
        raise ProxyTimeoutError(f"the proxy {proxy} did not answer in time") from exc
    except OSError as exc:
        raise ProxyProtocolError(f"the connection to the proxy {proxy} failed: {exc}") from exc
    return bytes(buffer)


def _target_name(host: str) -> str:
    """``host`` as the proxy is to be given it: an IP address as it is, a name in IDNA
    (letters, digits, '-', '.' and '_' only, so that nothing else reaches the request)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            name = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"bad mail server name {host!r}: {exc}") from None
        if not 0 < len(name) < 256:
            raise ValueError("a mail server name is 1 to 255 bytes") from None
        if not _NAME_CHARACTERS.issuperset(name):
            raise ValueError(f"bad mail server name {host!r}") from None
        return name
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"a proxy cannot use the scope of the address {host!r}")
    return host


def _take_gen(buffer: bytearray, size: int, what: str) -> Generator[Any, bytes, bytes]:
    """The next ``size`` bytes of the proxy's answer, read as needed; the rest stays."""
    while len(buffer) < size:
        data = yield RECEIVE
        if not data:
            raise ProxyProtocolError(f"the proxy closed the connection before its {what}")
        buffer += data
    taken = bytes(buffer[:size])
    del buffer[:size]
    return taken


def _socks5_gen(proxy: Proxy, host: str, port: int, buffer: bytearray) -> Generator[Any, Any, None]:
    """SOCKS5: the method (none, or username/password when given), then CONNECT."""
    from socksio import socks5  # noqa: PLC0415

    connection = socks5.SOCKS5Connection()
    yield from _socks5_authenticate_gen(proxy, connection, buffer)
    request = socks5.SOCKS5CommandRequest.from_address(socks5.SOCKS5Command.CONNECT, (host, port))
    connection.send(request)
    yield connection.data_to_send()
    yield from _socks5_reply_gen(proxy, connection, buffer)


def _socks5_authenticate_gen(
    proxy: Proxy, connection: Any, buffer: bytearray
) -> Generator[Any, Any, None]:
    """The method offered and chosen (RFC 1928 section 3), then the password (RFC 1929)."""
    from socksio import ProtocolError as SOCKSProtocolError  # noqa: PLC0415
    from socksio import socks5  # noqa: PLC0415

    methods = [socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED]
    if proxy.username is not None:
        methods.append(socks5.SOCKS5AuthMethod.USERNAME_PASSWORD)
    connection.send(socks5.SOCKS5AuthMethodsRequest(methods))
    yield connection.data_to_send()
    answer = yield from _take_gen(buffer, 2, "method selection")
    if answer[0] != 5:
        raise ProxyProtocolError(f"not a SOCKS5 proxy (it answered {answer!r})")
    try:
        chosen = connection.receive_data(answer)
    except SOCKSProtocolError:
        chosen = None
    if getattr(chosen, "method", None) == socks5.SOCKS5AuthMethod.NO_ACCEPTABLE_METHODS:
        wanted = "other credentials" if proxy.username else "credentials"
        raise ProxyAuthenticationError(answer[1], f"the proxy wants {wanted}")
    if not isinstance(chosen, socks5.SOCKS5AuthReply) or chosen.method not in methods:
        raise ProxyProtocolError(f"the SOCKS5 proxy chose a method it was not offered ({answer!r})")
    if chosen.method != socks5.SOCKS5AuthMethod.USERNAME_PASSWORD:
        return
    assert proxy.username is not None and proxy.password is not None
    connection.send(
        socks5.SOCKS5UsernamePasswordRequest(proxy.username.encode(), proxy.password.encode())
    )
    yield connection.data_to_send()
    status = yield from _take_gen(buffer, 2, "authentication status")
    if status[0] != 1:  # RFC 1929's version, which its reply repeats
        raise ProxyProtocolError(f"malformed SOCKS5 authentication status {status!r}")
    verdict = connection.receive_data(status)
    if not (isinstance(verdict, socks5.SOCKS5UsernamePasswordReply) and verdict.success):
        raise ProxyAuthenticationError(status[1], "the proxy refused the username or password")


def _socks5_reply_gen(
    proxy: Proxy, connection: Any, buffer: bytearray
) -> Generator[Any, Any, None]:
    """The reply to CONNECT (RFC 1928 section 6), read to its last byte and no further:
    VER REP, then (on success) RSV ATYP, the bound address (its length by ATYP) and port."""
    from socksio import ProtocolError as SOCKSProtocolError  # noqa: PLC0415

    head = yield from _take_gen(buffer, 2, "reply")
    if head[0] != 5:
        raise ProxyProtocolError(f"malformed SOCKS5 reply {head!r}")
    code = head[1]
    if code in _SOCKS5_REPLIES:
        error = (
            ProxyTargetUnreachableError if code in _SOCKS5_TARGET_FAILURES else ProxyRefusedError
        )
        raise error(code, _SOCKS5_REPLIES[code])
    if code:
        raise ProxyRefusedError(code, "unassigned SOCKS5 reply code")
    head += yield from _take_gen(buffer, 3, "reply")
    lengths = {1: 4, 3: 1 + head[4], 4: 16}  # IPv4, a name (its length first), IPv6
    if head[3] not in lengths:
        raise ProxyProtocolError(f"malformed SOCKS5 reply {head!r}")
    whole = head + (yield from _take_gen(buffer, lengths[head[3]] + 2 - 1, "reply"))
    try:
        connection.receive_data(whole)
    except SOCKSProtocolError:
        # Not chained: the decoding error under it would quote the bytes, withheld or not.
        raise ProxyProtocolError(f"malformed SOCKS5 reply {_shown(proxy, repr(whole))}") from None


def _http_connect_gen(
    proxy: Proxy, host: str, port: int, buffer: bytearray
) -> Generator[Any, Any, None]:
    """HTTP CONNECT (RFC 9110 section 9.3.6), with Basic credentials (RFC 7617) when given."""
    import h11  # noqa: PLC0415

    name = _target_name(host)
    authority = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    headers = [("Host", authority), ("User-Agent", f"smtp-proto/{__version__}")]
    if proxy.username is not None and proxy.password is not None:
        token = _basic_token(proxy.username, proxy.password)
        headers.append(("Proxy-Authorization", f"Basic {token}"))
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=_HTTP_HEAD_LIMIT)
    request = connection.send(h11.Request(method="CONNECT", target=authority, headers=headers))
    ending = connection.send(h11.EndOfMessage())
    yield (request or b"") + (ending or b"")
    response = yield from _http_response_gen(proxy, connection)
    status = response.status_code
    if 200 <= status < 300:
        buffer += connection.trailing_data[0]
        return
    reason = _shown(proxy, response.reason.decode("ascii", "replace"))
    if status in _HTTP_AUTH_FAILURES:
        raise ProxyAuthenticationError(status, reason)
    if status in _HTTP_TARGET_FAILURES:
        raise ProxyTargetUnreachableError(status, reason)
    raise ProxyRefusedError(status, reason)


def _http_response_gen(proxy: Proxy, connection: Any) -> Generator[Any, Any, Any]:
    """The proxy's final response (``h11.Response``), after any informational ones, its
    heads no longer than ``_HTTP_HEAD_LIMIT`` in all; what follows stays in h11's buffer."""
    import h11  # noqa: PLC0415

    received = 0
    start = b""  # the answer's first bytes, until there are five
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            message = f"malformed answer from the HTTP proxy: {_shown(proxy, str(exc))}"
            raise ProxyProtocolError(message) from None
        if event is h11.NEED_DATA:
            data = yield RECEIVE
            if not data:
                raise ProxyProtocolError("the proxy closed the connection before its answer")
            received += len(data)
            if len(start) < 5:
                # Not an HTTP proxy (an SMTP server's greeting, say): said at once, where
                # h11 would wait for the end of a head that never comes.
                start = (start + data)[:5]
                if not b"HTTP/".startswith(start):
                    raise ProxyProtocolError(f"not an HTTP proxy (it answered {start!r})")
            connection.receive_data(data)
            continue
        # h11 bounds a head still incomplete; this, one that came whole in a read, and the
        # informational heads in all.
        if received - len(connection.trailing_data[0]) > _HTTP_HEAD_LIMIT:
            raise ProxyProtocolError(f"the HTTP proxy's answer is over {_HTTP_HEAD_LIMIT} bytes")
        if isinstance(event, h11.Response):
            return event
        if not isinstance(event, h11.InformationalResponse):
            raise ProxyProtocolError(f"unexpected answer from the HTTP proxy: {event!r}")
