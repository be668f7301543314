"""``proxy=`` against real proxies in every adapter: Dante (SOCKS5) and tinyproxy (HTTP
CONNECT), each with and without credentials, relaying to Postfix (STARTTLS and AUTH on the
submission port, implicit TLS on the smtps port) and to Dovecot's LMTP over TCP, and the
refusals they really give (a wrong password, a closed port, a destination against the rules,
no proxy at all).

Each client is checked to be connected to the proxy (its peer is the proxy's port), and each
message read back from the Maildir it was delivered to.  Where no client object is at hand
(the ``Mailer``'s connections, how often it tries again after a proxy's refusal), the proxy's
log tells.  The proxies and mail servers are the session's fixtures; nothing here sleeps.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smtp_proto.errors import (
    ProxyAuthenticationError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    ProxyUnreachableError,
)
from smtp_proto.send import SendResult
from tests.adapters import Adapter, all_adapters, send
from tests.servers.certs import LocalCA
from tests.servers.dante import DanteServer
from tests.servers.dovecot import DovecotLMTPServer
from tests.servers.postfix import PostfixServer
from tests.servers.proxies import ProxyServer
from tests.servers.tinyproxy import TinyproxyServer
from tests.servers.util import LOOPBACK, free_ports, wait_until
from tests.test_mailer import open_mailer, outgoing

SENDER = "proxied@example.test"
RECIPIENT = "rcpt@example.test"
PROXIES = ("dante", "tinyproxy")
#: What each proxy answers a wrong password and no credentials at all with: RFC 1929's
#: failure status and RFC 1928's "no acceptable methods"; tinyproxy's 401 and 407.
WRONG_PASSWORD = {"dante": 1, "tinyproxy": 401}
NO_CREDENTIALS = {"dante": 0xFF, "tinyproxy": 407}


@dataclass(frozen=True)
class Via:
    """A proxy fixture, and whether its credentials (and its ``auth_port``) are used."""

    name: str
    server: ProxyServer
    auth: bool

    @property
    def url(self) -> str:
        return self.server.url(self.auth)

    @property
    def port(self) -> int:
        return self.server.auth_port if self.auth else self.server.port


@pytest.fixture(
    params=[(name, auth) for name in PROXIES for auth in (False, True)],
    ids=[f"{name}-{mode}" for name in PROXIES for mode in ("open", "auth")],
)
def via(request: pytest.FixtureRequest) -> Via:
    """Each proxy, each listener."""
    name, auth = request.param
    return Via(name, request.getfixturevalue(name), auth)


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> tuple[str, ProxyServer]:
    """Each proxy, for what does not depend on the listener."""
    name: str = request.param
    return name, request.getfixturevalue(name)


def message(token: str, lines: int = 0) -> bytes:
    """A complete message (an MTA adds only trace fields) with a line that starts with a
    dot and ``lines`` more lines of filler, so that it takes several reads to relay."""
    body = [f"line {n:06d} {'x' * 64}" for n in range(lines)]
    head = [f"From: {SENDER}", f"To: {RECIPIENT}", "Date: Mon, 7 Dec 2026 12:00:00 +0000"]
    head.append(f"Message-ID: <{token}@example.test>")
    text = [*head, f"Subject: proxied {token}", "", ".a line that starts with a dot", *body, ""]
    return "\r\n".join(text).encode()


def peer_port(adapter: Adapter, client: Any) -> int:
    """The port at the other end of the client's connection (the proxy's, through one)."""
    if adapter.name == "asyncio":
        port: int = client.sock.get_extra_info("peername")[1]
        return port
    return int(client.sock.getpeername()[1])


def arrived_intact(delivered: bytes, sent: bytes) -> bool:
    """Whether ``sent`` is the end of ``delivered`` (Maildir files end lines with LF)."""
    return delivered.replace(b"\r\n", b"\n").endswith(sent.replace(b"\r\n", b"\n"))


def delivered(postfix: PostfixServer, token: str, count: int = 1) -> list[bytes]:
    """The ``count`` messages holding ``token`` in Postfix's Maildir, waited for."""
    needle = token.encode()

    def probe() -> list[bytes] | None:
        found = [m for m in postfix.messages() if needle in m]
        return found if len(found) >= count else None

    return wait_until(probe, 10.0, f"{count} deliveries containing {token}")


def tunnels(proxy: ProxyServer, auth: bool, port: int) -> int:
    """How many tunnels to 127.0.0.1:``port`` the proxy's listener (``auth_port`` or
    ``port``) logged so far: tinyproxy logs each CONNECT request, Dante each session."""
    if isinstance(proxy, TinyproxyServer):
        log = proxy.auth_log_path if auth else proxy.log_path
        needle = f"): CONNECT {LOOPBACK}:{port} HTTP/1.1"
        return sum(needle in line for line in log.read_text().splitlines())
    # Dante: "tcp/connect [: <client> <listener> -> <its end> <destination>", once a session.
    listener = f" {LOOPBACK}.{proxy.auth_port if auth else proxy.port} -> "
    return sum(
        "tcp/connect [:" in line and listener in line and line.endswith(f" {LOOPBACK}.{port}")
        for line in proxy.log_path.read_text().splitlines()
    )


def wait_for_tunnels(proxy: ProxyServer, auth: bool, port: int, count: int) -> None:
    """Wait until the listener logged ``count`` tunnels to ``port`` (a proxy may log one
    after the client was answered)."""
    wait_until(lambda: tunnels(proxy, auth, port) >= count, 10.0, f"{count} tunnels to port {port}")


# ---------------------------------------------------------------- Postfix


@all_adapters
async def test_starttls_and_auth_on_the_submission_port(
    adapter: Adapter, via: Via, postfix: PostfixServer, tls_ca: LocalCA, token: str
) -> None:
    sent = message(token, lines=2000)  # 150 KB
    smtp = await adapter.open(postfix.host, postfix.submission_port, proxy=via.url)
    assert peer_port(adapter, smtp) == via.port
    await adapter.call(smtp.ehlo)
    assert smtp.has_extn("starttls") and not smtp.has_extn("auth")  # AUTH only under TLS
    assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
    await adapter.call(smtp.ehlo)
    assert smtp.has_extn("auth")
    assert (await adapter.call(smtp.login, "testuser", "testpass"))[0] == 235
    assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], sent) == {}
    assert peer_port(adapter, smtp) == via.port  # TLS over the tunnel, not around it
    assert (await adapter.call(smtp.quit))[0] == 221
    (arrived,) = delivered(postfix, token)
    assert b"with ESMTPSA id" in arrived and b"(using TLSv1." in arrived
    assert arrived_intact(arrived, sent)


@all_adapters
@pytest.mark.parametrize("name", [LOOPBACK, "localhost"])
async def test_implicit_tls_checks_the_mail_servers_name(
    adapter: Adapter, via: Via, name: str, postfix: PostfixServer, token: str
) -> None:
    """The certificate names 127.0.0.1 (an IP address SAN) and localhost (a DNS one), and
    the proxy resolves the name; the session is the smtps port's, TLS from the first byte."""
    sent = message(token)
    context = ssl.create_default_context(cafile=postfix.cafile)  # the tls_ca fixture's CA
    smtp = await adapter.open_ssl(name, postfix.smtps_port, context=context, proxy=via.url)
    assert peer_port(adapter, smtp) == via.port
    await adapter.call(smtp.ehlo)
    assert not smtp.has_extn("starttls")  # already in TLS
    assert (await adapter.call(smtp.login, "testuser", "testpass"))[0] == 235
    assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], sent) == {}
    assert (await adapter.call(smtp.quit))[0] == 221
    (arrived,) = delivered(postfix, token)
    assert b"with ESMTPSA id" in arrived
    assert arrived_intact(arrived, sent)


@all_adapters
async def test_implicit_tls_refuses_a_name_the_certificate_lacks(
    adapter: Adapter, via: Via, postfix: PostfixServer, tls_ca: LocalCA
) -> None:
    """``127.1`` is 127.0.0.1 to the proxy's resolver, so the tunnel reaches Postfix, but it
    is no name of the certificate: the handshake fails.  The proxy's own address is in the
    certificate, so a check against the proxy's name would wrongly pass."""
    smtp = adapter.new("SMTP_SSL", context=tls_ca.client_context(), proxy=via.url)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await adapter.call(smtp.connect, "127.1", postfix.smtps_port)
    assert caught.value.verify_message == "Hostname mismatch, certificate is not valid for '127.1'."
    assert not adapter.is_connected(smtp)


# ---------------------------------------------------------------- Dovecot LMTP


@all_adapters
async def test_lmtp_over_tcp_gives_each_recipients_reply(
    adapter: Adapter, via: Via, dovecot_lmtp: DovecotLMTPServer, token: str
) -> None:
    alice, full, nobody = (f"{user}@example.test" for user in ("alice", "full", "nobody"))
    lmtp = await adapter.open_lmtp(dovecot_lmtp.host, dovecot_lmtp.port, proxy=via.url)
    assert peer_port(adapter, lmtp) == via.port
    sent = message(token)
    refused = await adapter.call(lmtp.sendmail, SENDER, [alice, full, nobody], sent)
    assert {address: reply[0] for address, reply in refused.items()} == {nobody: 550, full: 552}
    assert [(address, reply[0]) for address, reply in lmtp.lmtp_replies.items()] == [
        (alice, 250),
        (full, 552),
    ]
    assert (await adapter.call(lmtp.quit))[0] == 221
    (arrived,) = [m for m in dovecot_lmtp.messages_for("alice") if token.encode() in m]
    assert arrived_intact(arrived, sent)
    assert not [m for m in dovecot_lmtp.messages_for("full") if token.encode() in m]


# ---------------------------------------------------------------- send() and Mailer


@all_adapters
async def test_send_and_a_mailer_through_the_proxy(
    adapter: Adapter, via: Via, postfix: PostfixServer, tls_ca: LocalCA, token: str
) -> None:
    """``send`` once, then a ``Mailer`` of two connections sends eight messages, each
    connection through the proxy, in TLS, logged in; every message arrives intact."""
    secure: dict[str, Any] = {
        "context": tls_ca.client_context(),
        "username": "testuser",
        "password": "testpass",
        "proxy": via.url,
    }
    first = message(token)
    before = tunnels(via.server, via.auth, postfix.submission_port)
    result = await send(
        adapter, first, postfix.host, postfix.submission_port, sender=SENDER,
        recipients=[RECIPIENT], **secure,
    )  # fmt: skip
    assert isinstance(result, SendResult) and result.ok and result.queue_id
    messages = [outgoing(n, token) for n in range(8)]
    async with open_mailer(
        adapter, postfix.host, postfix.submission_port, connections=2, tls="starttls", **secure
    ) as mailer:
        results = await adapter.call(mailer.send_many, messages)
    assert all(isinstance(r, SendResult) and r.ok and r.queue_id for r in results), results
    wait_for_tunnels(via.server, via.auth, postfix.submission_port, before + 3)
    assert tunnels(via.server, via.auth, postfix.submission_port) == before + 3  # send's, 2
    arrived = delivered(postfix, token, count=9)
    assert len(arrived) == 9
    assert sum(arrived_intact(m, first) for m in arrived) == 1
    for sent in messages:
        assert isinstance(sent.message, bytes)
        assert sum(arrived_intact(m, sent.message) for m in arrived) == 1


# ---------------------------------------------------------------- refusals


@all_adapters
@pytest.mark.parametrize("wrong", ["password", "none"])
async def test_the_proxy_refuses_the_credentials(
    adapter: Adapter, proxy: tuple[str, ProxyServer], wrong: str, postfix: PostfixServer
) -> None:
    name, server = proxy
    host = f"{server.host}:{server.auth_port}"
    secret = f"not-{server.password}"
    login = f"{server.username}:{secret}@" if wrong == "password" else ""
    smtp = adapter.new(proxy=f"{server.scheme}://{login}{host}")
    with pytest.raises(ProxyAuthenticationError) as caught:
        await adapter.call(smtp.connect, postfix.host, postfix.port)
    expected = (WRONG_PASSWORD if wrong == "password" else NO_CREDENTIALS)[name]
    assert caught.value.code == expected
    assert secret not in f"{caught.value!s} {caught.value!r}"
    assert not adapter.is_connected(smtp)


@all_adapters
async def test_the_proxy_cannot_reach_a_closed_port(
    adapter: Adapter, via: Via, postfix: PostfixServer
) -> None:
    smtp = adapter.new(proxy=via.url)
    with pytest.raises(ProxyTargetUnreachableError) as caught:
        await adapter.call(smtp.connect, LOOPBACK, free_ports(1)[0])
    assert caught.value.code == {"dante": 5, "tinyproxy": 500}[via.name]
    assert not adapter.is_connected(smtp)
    # The same object, through the same proxy, then reaches a server that listens.
    assert (await adapter.call(smtp.connect, postfix.host, postfix.port))[0] == 220
    assert (await adapter.call(smtp.quit))[0] == 221


@all_adapters
async def test_dante_refuses_a_destination_outside_its_rules(
    adapter: Adapter, dante: DanteServer
) -> None:
    """Dante relays to 127.0.0.0/8 only: it refuses a TEST-NET address by its rules, before
    trying to connect, so nothing leaves the loopback interface."""
    smtp = adapter.new(proxy=dante.url(auth=False))
    with pytest.raises(ProxyRefusedError) as caught:
        await adapter.call(smtp.connect, "192.0.2.1", 25)
    assert type(caught.value) is ProxyRefusedError
    assert (caught.value.code, caught.value.reason) == (2, "connection not allowed by ruleset")
    assert not adapter.is_connected(smtp)


@all_adapters
@pytest.mark.parametrize("scheme", ["socks5", "http"])
async def test_no_proxy_listening(adapter: Adapter, scheme: str) -> None:
    port = free_ports(1)[0]
    smtp = adapter.new(proxy=f"{scheme}://user:secret@{LOOPBACK}:{port}")
    with pytest.raises(ProxyUnreachableError) as caught:
        await adapter.call(smtp.connect, LOOPBACK, 25)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert f"{LOOPBACK}:{port}" in str(caught.value) and "secret" not in str(caught.value)
    assert not adapter.is_connected(smtp)


# ---------------------------------------------------------------- the Mailer's retries


def logged(log: Path, needle: str) -> int:
    """How many lines of a proxy's ``log`` hold ``needle``."""
    return sum(needle in line for line in log.read_text().splitlines())


def attempts(log: Path, needle: str, before: int) -> int:
    """How many lines holding ``needle`` ``log`` gained since it had ``before``: waited for
    until there is one, as a proxy may log an attempt after answering it."""
    wait_until(lambda: logged(log, needle) > before, 10.0, f"{needle!r} in {log}")
    return logged(log, needle) - before


async def mail_one(adapter: Adapter, host: str, port: int, proxy: str) -> Any:
    """The outcome of one message a ``Mailer`` sends through ``proxy``, retrying at once."""
    async with open_mailer(adapter, host, port, proxy=proxy, retries=2, backoff=0) as mailer:
        (outcome,) = await adapter.call(mailer.send_many, [outgoing(0)])
    return outcome


@all_adapters
async def test_a_mailer_does_not_retry_a_refused_password(
    adapter: Adapter, proxy: tuple[str, ProxyServer], postfix: PostfixServer
) -> None:
    name, server = proxy
    url = f"{server.scheme}://{server.username}:not-{server.password}@"
    url += f"{server.host}:{server.auth_port}"
    if name == "dante":  # it logs the failure; tinyproxy, the request it then refuses
        log, needle = server.log_path, f'authentication failed for user "{server.username}"'
    else:
        assert isinstance(server, TinyproxyServer)
        log, needle = server.auth_log_path, f"CONNECT {LOOPBACK}:{postfix.port} HTTP/1.1"
    before = logged(log, needle)
    outcome = await mail_one(adapter, postfix.host, postfix.port, url)
    assert isinstance(outcome, ProxyAuthenticationError)
    assert attempts(log, needle, before) == 1


@all_adapters
async def test_a_mailer_does_not_retry_what_dantes_rules_refuse(
    adapter: Adapter, dante: DanteServer
) -> None:
    needle = " 192.0.2.1.25"
    before = logged(dante.log_path, needle)
    outcome = await mail_one(adapter, "192.0.2.1", 25, dante.url(auth=False))
    assert type(outcome) is ProxyRefusedError and outcome.code == 2
    assert attempts(dante.log_path, needle, before) == 1


@all_adapters
async def test_a_mailer_retries_when_the_proxy_cannot_reach_the_server(
    adapter: Adapter, proxy: tuple[str, ProxyServer]
) -> None:
    """A closed port may open: each of the 1 + 2 attempts goes to the proxy."""
    _, server = proxy
    port = free_ports(1)[0]
    if isinstance(server, TinyproxyServer):
        needle = f"CONNECT {LOOPBACK}:{port} HTTP/1.1"
    else:  # the end of Dante's line for a session the destination refused
        needle = f" {LOOPBACK}.{port} -> 0: remote peer error (Connection refused)"
    before = logged(server.log_path, needle)
    outcome = await mail_one(adapter, LOOPBACK, port, server.url(auth=False))
    assert isinstance(outcome, ProxyTargetUnreachableError)
    wait_until(lambda: logged(server.log_path, needle) >= before + 3, 10.0, "3 attempts")
    assert logged(server.log_path, needle) == before + 3
