"""The worked examples of "Writing a transport" (``docs/transport.md``) do what the page says.

``docs/examples/proxy_tunnel.py`` sends through the real proxies the fixtures start (Dante's
SOCKS5 server and tinyproxy, each with and without credentials) to the capture server, with
STARTTLS inside the tunnel checked against the mail server's name, and reports each proxy
failure as its typed error.  ``docs/examples/in_memory.py`` runs the core against its scripted
server without a socket, and ``docs/examples/test_receipts.py``, the user's tests written on
it, pass when run by pytest as a user would run them.  (The LMTP example is in test_docs.py.)
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smtp_proto.transports.testing import CaptureServer

from smtp_proto import SMTPRecipientsRefused
from smtp_proto.errors import (
    ProxyAuthenticationError,
    ProxyTargetUnreachableError,
    ProxyTimeoutError,
    ProxyUnreachableError,
)
from smtp_proto.proxy import Proxy
from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, Session
from tests.servers.certs import LocalCA, bad_server_context
from tests.servers.proxies import ProxyServer
from tests.servers.util import LOOPBACK, free_ports
from tests.test_adapters_deadlines import Drip
from tests.test_docs import DOCS, load_example

EXAMPLES = DOCS / "examples"
SENDER = "shop@example.test"
PROXIES = ["dante", "tinyproxy"]


def message(token: str) -> bytes:
    head = f"From: {SENDER}\r\nSubject: {token}\r\n\r\n"
    return head.encode() + b".leading dot\r\nthrough the tunnel\r\n"


@pytest.fixture(scope="module")
def proxy_example() -> ModuleType:
    return load_example("proxy_tunnel")


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> ProxyServer:
    """Each proxy fixture in turn."""
    server: ProxyServer = request.getfixturevalue(request.param)
    return server


def test_the_page_includes_each_example_whole() -> None:
    page = (DOCS / "transport.md").read_text("utf-8")
    for name in ("lmtp_unix.py", "proxy_tunnel.py", "in_memory.py", "test_receipts.py"):
        assert f"literalinclude}} examples/{name}" in page, name


# ---------------------------------------------------------------- through a proxy


@pytest.mark.parametrize("auth", [False, True], ids=["open", "credentials"])
def test_proxy_example_delivers_through_each_proxy(
    proxy_example: ModuleType, proxy: ProxyServer, auth: bool, token: str
) -> None:
    refuse = {"gone@example.test": (550, "5.1.1 No such user")}
    with CaptureServer(refuse=refuse) as server:
        refused = proxy_example.deliver(
            proxy.url(auth),
            (server.host, server.port),
            SENDER,
            ["ann@example.test", "gone@example.test"],
            message(token),
            timeout=10.0,
        )
        (captured,) = server.wait_for_messages(1)
    assert refused == {"gone@example.test": (550, b"5.1.1 No such user")}
    assert captured.mail_from == SENDER
    assert captured.rcpt_tos == ["ann@example.test"]
    assert captured.data == message(token)
    assert not captured.tls


def test_proxy_example_starts_tls_inside_the_tunnel(
    proxy_example: ModuleType, proxy: ProxyServer, tls_ca: LocalCA, token: str
) -> None:
    with CaptureServer(tls_context=tls_ca.server_context()) as server:
        refused = proxy_example.deliver(
            proxy.url(auth=True),
            ("localhost", server.port),  # the certificate's name, resolved by the proxy
            SENDER,
            ["ann@example.test"],
            message(token),
            context=tls_ca.client_context(),
            timeout=10.0,
        )
        (captured,) = server.wait_for_messages(1)
    assert refused == {}
    assert captured.tls
    assert captured.data == message(token)


def test_proxy_example_checks_the_mail_servers_name(
    proxy_example: ModuleType, tls_ca: LocalCA, tmp_path: Path, token: str, dante: ProxyServer
) -> None:
    """A certificate for another name is refused, though the proxy is reached by address."""
    wrong = bad_server_context(tls_ca, "wrong-host", tmp_path)
    with CaptureServer(tls_context=wrong) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            proxy_example.deliver(
                dante.url(),
                ("localhost", server.port),
                SENDER,
                ["ann@example.test"],
                message(token),
                context=tls_ca.client_context(),
                timeout=10.0,
            )
        assert server.messages == []


def test_proxy_example_reports_wrong_credentials(
    proxy_example: ModuleType, proxy: ProxyServer
) -> None:
    wrong = dataclasses.replace(Proxy.from_url(proxy.url(auth=True)), password="wrong")
    with CaptureServer() as server:
        with pytest.raises(ProxyAuthenticationError) as refused:
            proxy_example.deliver(
                wrong, (server.host, server.port), SENDER, ["a@example.test"], b"x", timeout=10.0
            )
        assert server.commands == []  # never reached
    assert refused.value.code in {1, 401, 407}  # RFC 1929's failure status; HTTP's statuses
    assert "wrong" not in str(refused.value)


def test_proxy_example_reports_a_mail_server_the_proxy_cannot_reach(
    proxy_example: ModuleType, proxy: ProxyServer
) -> None:
    (closed,) = free_ports(1)
    with pytest.raises(ProxyTargetUnreachableError) as unreachable:
        proxy_example.deliver(
            proxy.url(), (LOOPBACK, closed), SENDER, ["a@example.test"], b"x", timeout=10.0
        )
    assert unreachable.value.code in {5, 500, 502, 503}  # SOCKS5 "connection refused"; HTTP


def test_proxy_example_reports_a_proxy_it_cannot_reach(proxy_example: ModuleType) -> None:
    (closed,) = free_ports(1)
    with pytest.raises(ProxyUnreachableError) as unreachable:
        proxy_example.deliver(
            f"socks5://{LOOPBACK}:{closed}", ("mail.example.test", 25), SENDER, ["a@x.test"], b"x"
        )
    assert isinstance(unreachable.value.__cause__, ConnectionRefusedError)


def test_proxy_example_bounds_the_handshake_as_a_whole(proxy_example: ModuleType) -> None:
    """A proxy dripping its answer, each byte well within the timeout, is cut off once the
    timeout has passed since the handshake began (not after the whole answer)."""
    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    drip = Drip()

    def dripping_proxy(session: Session) -> None:
        session.read_until(b"\r\n\r\n")
        drip(session, answer)
        session.read_until_eof()

    with ScriptedServer(dripping_proxy) as proxy:
        try:
            with pytest.raises(ProxyTimeoutError):
                proxy_example.deliver(
                    f"http://{proxy.host}:{proxy.port}",
                    ("mail.example.test", 25),
                    SENDER,
                    ["a@example.test"],
                    b"x",
                    timeout=0.5,
                )
        finally:
            drip.stop.set()
    assert 0 < drip.sent < len(answer) // 2


# ---------------------------------------------------------------- in memory


@pytest.fixture(scope="module")
def in_memory() -> ModuleType:
    return load_example("in_memory")


#: A pytest plugin that fails any test opening a socket.
NO_SOCKETS = """
import socket

import pytest


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
"""


def pytest_without_sockets(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on ``tests`` from ``tmp_path``, as a user would, with any socket refused."""
    (tmp_path / "no_sockets.py").write_text(NO_SOCKETS)
    python_path = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no_sockets", tests],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *python_path])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_users_tests_on_the_in_memory_transport_pass(tmp_path: Path) -> None:
    run = pytest_without_sockets(tmp_path, str(EXAMPLES / "test_receipts.py"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b4 passed\b", run.stdout), run.stdout


def test_the_socket_guard_catches_a_socket(tmp_path: Path) -> None:
    """The guard can fail: a test that connects does."""
    (tmp_path / "test_connects.py").write_text(
        "import socket\n\n\ndef test_it():\n    socket.create_connection(('127.0.0.1', 9))\n"
    )
    run = pytest_without_sockets(tmp_path, "test_connects.py")
    assert run.returncode == 1 and "a socket was opened" in run.stdout, run.stdout


_LINE = st.one_of(
    st.sampled_from([b".", b"..", b".x", b"", b" .", b"From x"]),
    st.binary(max_size=30).filter(lambda line: b"\r" not in line and b"\n" not in line),
)


@given(st.lists(_LINE, max_size=20))
def test_in_memory_transport_delivers_any_body_intact(
    in_memory: ModuleType, lines: list[bytes]
) -> None:
    """Dot-stuffed by the core, unstuffed by the scripted server: the same bytes arrive."""
    body = b"Subject: lines\r\n\r\n" + b"".join(line + b"\r\n" for line in lines)
    server = in_memory.ScriptedServer()
    with in_memory.InMemorySMTP(server) as smtp:
        assert smtp.sendmail(SENDER, ["ann@example.test"], body) == {}
    (delivery,) = server.messages
    assert delivery.data == body


def test_in_memory_transport_pipelines_and_reports_refusals(in_memory: ModuleType) -> None:
    server = in_memory.ScriptedServer(refuse={"gone@example.test": (550, "5.1.1 No such user")})
    with in_memory.InMemorySMTP(server) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("pipelining")
        with pytest.raises(SMTPRecipientsRefused) as refused:
            smtp.sendmail(SENDER, ["gone@example.test"], b"Subject: x\r\n\r\n")
    assert refused.value.recipients == {"gone@example.test": (550, b"5.1.1 No such user")}
    assert server.messages == []
    # DATA was sent before the refusal was read: MAIL, RCPT and DATA were pipelined.
    envelope = [f"mail FROM:<{SENDER}>", "rcpt TO:<gone@example.test>", "data"]
    assert server.commands[1:4] == [smtplib_spelling(command) for command in envelope]
