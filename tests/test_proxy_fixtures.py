"""The proxy fixtures' own checks: Dante (SOCKS5) and tinyproxy (HTTP CONNECT) relay to the
Postfix fixture, on each listener, and refuse what their classes say they refuse.

The client sides are minimal and hand-written on stdlib sockets (SOCKS5: RFC 1928 and
RFC 1929; CONNECT: RFC 9110 section 9.3.6), so that these checks depend on nothing the
product's own proxy code does. Each tunnel is driven from the fixture's ``url()``.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from urllib.parse import SplitResult, unquote, urlsplit

import pytest

from tests.servers.dante import DanteServer
from tests.servers.postfix import PostfixServer
from tests.servers.tinyproxy import TinyproxyServer
from tests.servers.util import LOOPBACK, free_ports

TIMEOUT = 10.0

SOCKS_NO_AUTH, SOCKS_USERNAME, SOCKS_NO_ACCEPTABLE = 0x00, 0x02, 0xFF
SOCKS_SUCCEEDED, SOCKS_CONNECTION_REFUSED = 0, 5


class Stream:
    """A connection to a proxy, read through a buffer: whatever arrives after the proxy's
    reply is the tunnel's first bytes, and must not be lost."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int) -> bytes:
        data = self.reader.read(n)
        if len(data) != n:
            raise EOFError(f"connection closed after {data!r}, {n} bytes expected")
        return data

    def line(self) -> bytes:
        return self.reader.readline()


@contextlib.contextmanager
def connected(url: SplitResult) -> Iterator[Stream]:
    assert url.hostname == LOOPBACK and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=TIMEOUT) as sock:
        stream = Stream(sock)
        with stream.reader:
            yield stream


def credentials(url: SplitResult) -> tuple[str, str] | None:
    if url.username is None or url.password is None:
        return None
    return unquote(url.username), unquote(url.password)


def closed_port() -> int:
    """A 127.0.0.1 port that was free a moment ago, so that nothing listens there."""
    return free_ports(1)[0]


# --------------------------------------------------------------------------- SOCKS5


def socks_method(stream: Stream, offered: bytes) -> int:
    """Offer the methods ``offered``; the one the server chose."""
    stream.send(bytes([5, len(offered)]) + offered)
    version, method = stream.read(2)
    assert version == 5
    return method


def socks_login(stream: Stream, user: str, password: str) -> int:
    """RFC 1929's exchange; its status (0: success)."""
    name, secret = user.encode(), password.encode()
    stream.send(bytes([1, len(name)]) + name + bytes([len(secret)]) + secret)
    version, status = stream.read(2)
    assert version == 1
    return status


def socks_connect(stream: Stream, host: str, port: int) -> int:
    """CONNECT to an IPv4 address (ATYP 1) or a name (ATYP 3); the reply's REP field."""
    try:
        address = bytes([1]) + ipaddress.IPv4Address(host).packed
    except ValueError:
        address = bytes([3, len(host)]) + host.encode()
    stream.send(bytes([5, 1, 0]) + address + port.to_bytes(2, "big"))
    version, reply, _reserved, atyp = stream.read(4)
    assert version == 5
    length = {1: 4, 4: 16}.get(atyp) or stream.read(1)[0]
    stream.read(length + 2)  # the bound address and port
    return reply


def socks_open(stream: Stream, url: SplitResult) -> None:
    """Negotiate as ``url`` says: username/password when it has credentials, else none."""
    login = credentials(url)
    if login is None:
        assert socks_method(stream, bytes([SOCKS_NO_AUTH])) == SOCKS_NO_AUTH
    else:
        assert socks_method(stream, bytes([SOCKS_USERNAME])) == SOCKS_USERNAME
        assert socks_login(stream, *login) == 0


# --------------------------------------------------------------------------- HTTP CONNECT


def http_connect(stream: Stream, port: int, login: tuple[str, str] | None) -> int:
    """CONNECT to 127.0.0.1:``port``; the reply's status, its head read to the end."""
    target = f"{LOOPBACK}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if login is not None:
        token = base64.b64encode(":".join(login).encode()).decode()
        head += f"Proxy-Authorization: Basic {token}\r\n"
    stream.send(f"{head}\r\n".encode())
    status = int(stream.line().split()[1])
    while stream.line() not in (b"\r\n", b""):
        pass
    return status


# --------------------------------------------------------------------------- through the tunnel


def greeting_then_quit(stream: Stream) -> bytes:
    """The SMTP server's greeting through the tunnel, then QUIT answered: both directions."""
    greeting = stream.line()
    stream.send(b"QUIT\r\n")
    assert stream.line().startswith(b"221 ")
    return greeting


def assert_postfix_greeting(greeting: bytes) -> None:
    assert greeting.startswith(b"220 postfix.test ESMTP Postfix"), greeting


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "username"])
@pytest.mark.parametrize("host", [LOOPBACK, "localhost"], ids=["ipv4", "name"])
def test_dante_relays_smtp(
    dante: DanteServer, postfix: PostfixServer, auth: bool, host: str
) -> None:
    url = urlsplit(dante.url(auth))
    assert url.scheme == "socks5"
    assert url.port == (dante.auth_port if auth else dante.port)
    assert credentials(url) == ((dante.username, dante.password) if auth else None)
    with connected(url) as stream:
        socks_open(stream, url)
        assert socks_connect(stream, host, postfix.port) == SOCKS_SUCCEEDED
        assert_postfix_greeting(greeting_then_quit(stream))


def test_dante_auth_port_demands_credentials(dante: DanteServer) -> None:
    with connected(urlsplit(dante.url(auth=True))) as stream:
        assert socks_method(stream, bytes([SOCKS_NO_AUTH])) == SOCKS_NO_ACCEPTABLE


def test_dante_refuses_wrong_password(dante: DanteServer) -> None:
    with connected(urlsplit(dante.url(auth=True))) as stream:
        assert socks_method(stream, bytes([SOCKS_USERNAME])) == SOCKS_USERNAME
        assert socks_login(stream, dante.username, dante.password + "x") != 0


def test_dante_reports_a_closed_port(dante: DanteServer) -> None:
    url = urlsplit(dante.url(auth=False))
    with connected(url) as stream:
        socks_open(stream, url)
        assert socks_connect(stream, LOOPBACK, closed_port()) == SOCKS_CONNECTION_REFUSED


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "basic"])
def test_tinyproxy_relays_smtp(
    tinyproxy: TinyproxyServer, postfix: PostfixServer, auth: bool
) -> None:
    url = urlsplit(tinyproxy.url(auth))
    assert url.scheme == "http"
    assert url.port == (tinyproxy.auth_port if auth else tinyproxy.port)
    assert credentials(url) == ((tinyproxy.username, tinyproxy.password) if auth else None)
    with connected(url) as stream:
        assert http_connect(stream, postfix.port, credentials(url)) == 200
        assert_postfix_greeting(greeting_then_quit(stream))


@pytest.mark.parametrize(
    ("password", "statuses"),
    [(None, {407}), ("wrong", {401, 407})],
    ids=["no-credentials", "wrong-password"],
)
def test_tinyproxy_auth_port_refuses(
    tinyproxy: TinyproxyServer, postfix: PostfixServer, password: str | None, statuses: set[int]
) -> None:
    login = None if password is None else (tinyproxy.username, password)
    with connected(urlsplit(tinyproxy.url(auth=True))) as stream:
        assert http_connect(stream, postfix.port, login) in statuses


def test_tinyproxy_reports_a_closed_port(tinyproxy: TinyproxyServer) -> None:
    with connected(urlsplit(tinyproxy.url(auth=False))) as stream:
        assert http_connect(stream, closed_port(), None) == 500
