"""``proxy=`` as every adapter takes it: checked when given, before any I/O (a bad URL, a
missing extra, a Unix socket), and kept parsed (privately: ``proxy`` is a name ``smtplib``
subclasses use for their own)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from smtp_proto import Proxy
from tests.adapters import Adapter, all_adapters, send

BAD_URLS = [
    "socks4://127.0.0.1:1080",  # not offered
    "https://127.0.0.1:3128",  # TLS to the proxy: not offered
    "socks5://127.0.0.1:99999",
    "socks5://:1080",
    "socks5://user@127.0.0.1:1080",  # a username without a password
    "http://127.0.0.1:3128/path",
    "http://127.0.0.1:3128?q=1",
    "127.0.0.1:1080",  # no scheme
]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that nobody should connect to."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(0)
        yield sock


def connected_to(listener: socket.socket) -> bool:
    """Whether a connection arrived (and is waiting to be accepted) at ``listener``."""
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@all_adapters
@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_bad_proxy_url_is_refused_before_connecting(
    adapter: Adapter, url: str, listener: socket.socket
) -> None:
    host, port = listener.getsockname()
    for make in (
        lambda: adapter.module.SMTP(host, port, proxy=url),
        lambda: adapter.module.SMTP_SSL(host, port, proxy=url),
        lambda: adapter.module.LMTP(host, port, proxy=url),
    ):
        with pytest.raises(ValueError, match="proxy"):
            make()
    with pytest.raises(ValueError, match="proxy"):
        await send(adapter, b"x", host, port, sender="a@b", recipients=["c@d"], proxy=url)
    assert not connected_to(listener)


@all_adapters
async def test_the_password_is_not_in_the_error_for_a_bad_url(adapter: Adapter) -> None:
    with pytest.raises(ValueError, match="proxy") as caught:
        adapter.module.SMTP(proxy="socks4://user:s3cret@127.0.0.1:1080")
    assert "s3cret" not in str(caught.value)


@all_adapters
async def test_a_proxy_that_is_no_url_nor_proxy_is_a_type_error(adapter: Adapter) -> None:
    with pytest.raises(TypeError, match="Proxy"):
        adapter.module.SMTP(proxy=("127.0.0.1", 1080))


@all_adapters
async def test_the_proxy_is_kept_parsed(adapter: Adapter) -> None:
    smtp = adapter.module.SMTP(proxy="socks5h://me:p%40ss@proxy.example:1081")
    assert smtp._proxy == Proxy("socks5", "proxy.example", 1081, "me", "p@ss")
    ssl_smtp = adapter.module.SMTP_SSL(proxy=Proxy("http", "127.0.0.1", 3128))
    assert ssl_smtp._proxy == Proxy("http", "127.0.0.1", 3128)
    assert adapter.module.LMTP()._proxy is None


@all_adapters
@pytest.mark.parametrize(("url", "module"), [("socks5://h:1", "socksio"), ("http://h:1", "h11")])
async def test_a_missing_extra_is_named_when_the_proxy_is_given(
    adapter: Adapter, url: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"smtp-proto\[proxy\]"):
        adapter.module.SMTP(proxy=url)


@all_adapters
async def test_an_lmtp_unix_socket_cannot_go_through_a_proxy(adapter: Adapter) -> None:
    lmtp = adapter.module.LMTP(proxy="socks5://127.0.0.1:1080")
    with pytest.raises(ValueError, match="Unix socket"):
        await adapter.call(lmtp.connect, "/run/dovecot/lmtp")
    assert not adapter.is_connected(lmtp)


@all_adapters
@pytest.mark.parametrize("url", BAD_URLS[:3])
async def test_a_mailer_refuses_a_bad_proxy_url_when_made(adapter: Adapter, url: str) -> None:
    with pytest.raises(ValueError, match="proxy"):
        adapter.module.Mailer("127.0.0.1", 25, proxy=url)
