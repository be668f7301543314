"""``--proxy`` in ``smtp-proto send`` and ``probe``: through Dante (SOCKS5) and tinyproxy (HTTP
CONNECT) to Postfix, over each transport, the proxy's password from the environment or the
URL and never shown; the proxies' real refusals and a proxy that is not there, each with exit
code 6, a line on stderr naming the proxy and what it did, and ``proxy_failure`` in ``--json``;
what ``--proxy`` cannot go with; the environment's proxy variables left alone.

That a session went through the proxy is read from the proxy's log, where each logs the
tunnels it opens with their destination port (``tests.test_proxy_servers.tunnels``).
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from smtp_proto.transports.cli import main
from smtp_proto.transports.testing import CaptureServer

from tests.servers.postfix import PostfixServer
from tests.servers.proxies import ProxyServer
from tests.servers.util import LOOPBACK, free_ports
from tests.test_cli import run_without_a_terminal
from tests.test_proxy_servers import tunnels, wait_for_tunnels

PROXIES = ("dante", "tinyproxy")
EXIT_PROXY = 6
#: A password that must never appear in anything the command prints.
WRONG = "wrong-secret-3f9a"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> ProxyServer:
    server: ProxyServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch, proxy: ProxyServer) -> None:
    """Postfix's password and the proxy's in the environment, where the command looks."""
    monkeypatch.setenv("SMTP_PASSWORD", "testpass")
    monkeypatch.setenv("SMTP_PROXY_PASSWORD", proxy.password)


def user_url(proxy: ProxyServer) -> str:
    """The proxy's authenticating listener, with the user and no password."""
    return f"{proxy.scheme}://{proxy.username}@{proxy.host}:{proxy.auth_port}"


def shown(proxy: ProxyServer, auth: bool = True) -> str:
    """How the command writes the proxy: the password as ``****``."""
    if not auth:
        return proxy.url(auth=False)
    return f"{proxy.scheme}://{proxy.username}:****@{proxy.host}:{proxy.auth_port}"


def submission(postfix: PostfixServer, proxy: str, *argv: str) -> list[str]:
    """``send`` to Postfix's submission port (STARTTLS and AUTH) through ``proxy``."""
    return [
        *("send", "--server", f"{postfix.host}:{postfix.submission_port}", "--proxy", proxy),
        *("--cafile", str(postfix.cafile), "--user", "testuser", "--from", "me@example.test"),
        *argv,
    ]


def one_line(err: str) -> str:
    (line,) = err.splitlines()
    return line


# ---------------------------------------------------------------- send


@pytest.mark.parametrize("transport", ["blocking", "asyncio", "trio"])
@pytest.mark.usefixtures("passwords")
def test_send_through_the_proxy_with_its_password_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    proxy: ProxyServer,
    postfix: PostfixServer,
    token: str,
    transport: str,
) -> None:
    before = tunnels(proxy, True, postfix.submission_port)
    code, out, err = run(
        capsys,
        *submission(postfix, user_url(proxy), "--to", "to@example.test", "--subject", token),
        *("--transport", transport, "--json", "-v"),
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["proxy"] == shown(proxy)
    assert report["recipients"][0]["status"] == "accepted"
    assert (report["error"], report["proxy_failure"]) == (None, None)
    where = f"{postfix.host}:{postfix.submission_port}"
    assert f"== connecting to {where} (SMTP) through the proxy {shown(proxy)}" in err
    assert proxy.password not in out + err
    wait_for_tunnels(proxy, True, postfix.submission_port, before + 1)
    delivered = postfix.wait_for_message(lambda message: token.encode() in message)
    assert b"with ESMTPSA" in delivered


@pytest.mark.usefixtures("passwords")
def test_a_password_in_the_url_is_taken_and_never_shown(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    proxy: ProxyServer,
    postfix: PostfixServer,
    token: str,
) -> None:
    monkeypatch.delenv("SMTP_PROXY_PASSWORD")
    code, out, err = run(
        capsys,
        *submission(postfix, proxy.url(auth=True), "--to", "url@example.test"),
        *("--subject", token, "-v"),
    )
    assert code == 0, err
    assert out.startswith("accepted  url@example.test\n")
    assert f"through the proxy {shown(proxy)}" in err and proxy.password not in out + err
    postfix.wait_for_message(lambda message: token.encode() in message)


def test_no_proxy_password_and_no_terminal_is_a_usage_error(tmp_path: Path) -> None:
    """No terminal, no ``$SMTP_PROXY_PASSWORD``: a usage error before any connection, and
    standard input is not read for the password."""
    argv = ["send", "--server", "127.0.0.1:25", "--proxy", "socks5://ann@127.0.0.1:1080"]
    argv += ["--from", "me@example.test", "--to", "to@example.test"]
    result = run_without_a_terminal(argv, "hunter2\n", tmp_path)
    assert (result.returncode, result.stdout) == (64, "")
    assert result.stderr == (
        "smtp-proto: no password: set $SMTP_PROXY_PASSWORD, or run in a terminal\n"
    )


def test_the_capture_server_through_the_proxy(
    capsys: pytest.CaptureFixture[str], proxy: ProxyServer
) -> None:
    """No ``--server``: the capture server started on 127.0.0.1 is reached through it."""
    code, out, err = run(capsys, "send", "--proxy", proxy.url(auth=False), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["proxy"] == shown(proxy, auth=False)
    assert [m["rcpt_tos"] for m in report["captured"]] == [["recipient@example.com"]]
    port = int(report["server"].rpartition(":")[2])
    wait_for_tunnels(proxy, False, port, 1)


# ---------------------------------------------------------------- refusals


@pytest.mark.usefixtures("passwords")
def test_a_wrong_proxy_password_exits_6(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    proxy: ProxyServer,
    postfix: PostfixServer,
) -> None:
    monkeypatch.setenv("SMTP_PROXY_PASSWORD", WRONG)
    code, out, err = run(
        capsys, *submission(postfix, user_url(proxy), "--to", "to@example.test", "--json")
    )
    assert code == EXIT_PROXY
    status = 1 if proxy.scheme == "socks5" else 401  # RFC 1929's failure; tinyproxy's answer
    line = one_line(err)
    assert line.startswith(f"smtp-proto: proxy {shown(proxy)}: authentication failed ({status}: ")
    report = json.loads(out)
    assert report["exit_code"] == EXIT_PROXY and report["error"] == line[len("smtp-proto: ") :]
    assert report["proxy_failure"]["kind"] == "authentication"
    assert report["proxy_failure"]["code"] == status
    assert WRONG not in out + err


def test_no_credentials_for_a_proxy_that_wants_them_exits_6(
    capsys: pytest.CaptureFixture[str], proxy: ProxyServer, postfix: PostfixServer
) -> None:
    url = f"{proxy.scheme}://{proxy.host}:{proxy.auth_port}"
    code, out, err = run(
        capsys,
        *("send", "--server", f"{postfix.host}:{postfix.port}", "--tls", "none"),
        *("--proxy", url, "--from", "me@example.test", "--to", "to@example.test"),
    )
    assert code == EXIT_PROXY and out == ""
    # RFC 1928's "no acceptable methods" (0xFF); HTTP's 407
    status = 255 if proxy.scheme == "socks5" else 407
    line = one_line(err)
    assert line.startswith(f"smtp-proto: proxy {url}: authentication failed ({status}: ")
    user_hint = f"{proxy.scheme}://USER@{proxy.host}:{proxy.auth_port}"
    assert line.endswith(f"; give a user: --proxy {user_hint}")


def test_a_closed_port_behind_the_proxy_exits_6(
    capsys: pytest.CaptureFixture[str], proxy: ProxyServer
) -> None:
    port = free_ports(1)[0]
    code, out, err = run(
        capsys,
        *("send", "--server", f"{LOOPBACK}:{port}", "--tls", "none", "--proxy", proxy.url()),
        *("--from", "me@example.test", "--to", "to@example.test"),
    )
    assert code == EXIT_PROXY and out == ""
    status = 5 if proxy.scheme == "socks5" else 500
    assert one_line(err).startswith(
        f"smtp-proto: proxy {proxy.url()} could not reach {LOOPBACK}:{port} ({status}: "
    )


def test_a_destination_dante_refuses_exits_6(
    capsys: pytest.CaptureFixture[str], dante: ProxyServer
) -> None:
    """192.0.2.1 (TEST-NET-1) is outside Dante's rules: refused before any connection."""
    code, out, err = run(
        capsys,
        *("send", "--server", "192.0.2.1:25", "--tls", "none", "--proxy", dante.url()),
        *("--from", "me@example.test", "--to", "to@example.test", "--json"),
    )
    assert code == EXIT_PROXY
    assert one_line(err) == (
        f"smtp-proto: proxy {dante.url()} refused the connection to 192.0.2.1:25 "
        "(2: connection not allowed by ruleset)"
    )
    assert json.loads(out)["proxy_failure"] == {
        "kind": "refused",
        "code": 2,
        "reason": "connection not allowed by ruleset",
    }


@pytest.mark.parametrize("scheme", ["socks5", "http"])
def test_no_proxy_there_exits_6(capsys: pytest.CaptureFixture[str], scheme: str) -> None:
    url = f"{scheme}://{LOOPBACK}:{free_ports(1)[0]}"
    code, out, err = run(
        capsys,
        *("send", "--server", "mail.example.test", "--proxy", url, "--json"),
        *("--from", "me@example.test", "--to", "to@example.test"),
    )
    assert code == EXIT_PROXY
    assert one_line(err) == f"smtp-proto: proxy {url} unreachable: [Errno 111] Connection refused"
    report = json.loads(out)
    assert report["proxy_failure"] == {"kind": "proxy unreachable", "code": None, "reason": None}
    assert report["recipients"] == [] and report["exit_code"] == EXIT_PROXY


def test_a_proxy_that_never_answers_exits_6_after_the_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A listening socket nobody reads: the connection opens, the handshake gets no answer."""
    with socket.create_server((LOOPBACK, 0)) as silent:
        url = f"socks5://{LOOPBACK}:{silent.getsockname()[1]}"
        code, out, err = run(
            capsys,
            *("send", "--server", "mail.example.test", "--proxy", url, "--timeout", "0.5"),
            *("--from", "me@example.test", "--to", "to@example.test", "--json"),
        )
    assert code == EXIT_PROXY
    assert one_line(err) == f"smtp-proto: proxy {url}: no answer within --timeout"
    assert json.loads(out)["proxy_failure"]["kind"] == "timeout"


@pytest.mark.usefixtures("passwords")
def test_an_untrusted_certificate_is_fetched_again_through_the_proxy(
    capsys: pytest.CaptureFixture[str], proxy: ProxyServer, postfix: PostfixServer
) -> None:
    """Without ``--cafile``: exit code 3, and the certificate's names, read over a second
    connection through the same proxy (never around it)."""
    port = postfix.submission_port
    before = tunnels(proxy, True, port)
    argv = submission(postfix, user_url(proxy), "--to", "to@example.test")
    argv.remove("--cafile")
    argv.remove(str(postfix.cafile))
    code, _, err = run(capsys, *argv)
    assert code == 3
    lines = err.splitlines()
    assert lines[1].startswith("  the certificate: O=trustme")
    assert lines[3] == f"  you connected to {postfix.host} through the proxy {shown(proxy)}"
    wait_for_tunnels(proxy, True, port, before + 2)


# ---------------------------------------------------------------- probe


def test_probe_through_the_proxy(
    capsys: pytest.CaptureFixture[str], proxy: ProxyServer, postfix: PostfixServer
) -> None:
    server = f"{postfix.host}:{postfix.port}"
    before = tunnels(proxy, True, postfix.port)
    code, out, err = run(
        capsys,
        *("probe", "--server", server, "--proxy", proxy.url(auth=True)),
        *("--cafile", str(postfix.cafile), "--json"),
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["proxy"] == shown(proxy)
    assert report["greeting"]["text"].startswith("postfix.test ESMTP Postfix")
    assert report["tls"]["verified"] is True  # checked against 127.0.0.1, the server's name
    assert proxy.password not in out + err
    wait_for_tunnels(proxy, True, postfix.port, before + 1)
    # Implicit TLS, the test CA unknown to the system's store: reported, then probed again
    # without checking, both times through the proxy.
    smtps = f"{postfix.host}:{postfix.smtps_port}"
    before = tunnels(proxy, False, postfix.smtps_port)
    code, out, _ = run(
        capsys, "probe", "--server", smtps, "--tls", "implicit", "--proxy", proxy.url(auth=False)
    )
    assert code == 3
    lines = out.splitlines()
    assert lines[1] == f"proxy       {proxy.url(auth=False)}"
    assert lines[2].startswith("greeting    220 postfix.test ESMTP Postfix")
    unverified = "certificate not verified: unable to get local issuer certificate"
    assert f"  verified  NO: {unverified}" in lines
    wait_for_tunnels(proxy, False, postfix.smtps_port, before + 2)


def test_probe_with_no_proxy_there_exits_6(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"socks5://user:{WRONG}@{LOOPBACK}:{free_ports(1)[0]}"
    code, out, err = run(capsys, "probe", "--server", "127.0.0.1:25", "--proxy", url, "--json")
    assert code == EXIT_PROXY and err == ""
    report = json.loads(out)
    shown_url = url.replace(WRONG, "****")
    assert report["proxy"] == shown_url
    assert report["error"] == f"proxy {shown_url} unreachable: [Errno 111] Connection refused"
    assert report["proxy_failure"]["kind"] == "proxy unreachable"
    assert WRONG not in out
    code, out, _ = run(capsys, "probe", "--server", "127.0.0.1:25", "--proxy", url)
    assert code == EXIT_PROXY
    assert out.splitlines()[-1] == f"error       {report['error']}"


# ---------------------------------------------------------------- what goes with --proxy


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--server", "127.0.0.1:25", "--proxy", f"ftp://ann:{WRONG}@proxy.test:21"],
            "smtp-proto: --proxy: bad proxy URL 'ftp://ann:****@proxy.test:21': the scheme is "
            "socks5, socks5h or http",
        ),
        (
            ["--socket", "/run/x.sock", "--proxy", "socks5://proxy.test:1080"],
            "smtp-proto: a Unix socket is local: no --tls and no --proxy with it",
        ),
        (
            ["--server", "/run/lmtp.sock", "--proxy", "socks5://proxy.test:1080"],
            "smtp-proto: a Unix socket is local: no --tls, --port or --proxy with it",
        ),
    ],
    ids=["bad-url", "socket", "lmtp-socket"],
)
@pytest.mark.parametrize("command", ["send", "probe"])
def test_what_does_not_go_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], command: str, argv: list[str], message: str
) -> None:
    envelope = ["--from", "me@example.test", "--to", "to@example.test"]
    code, out, err = run(capsys, command, *argv, *(envelope if command == "send" else []))
    assert (code, out) == (64, "")
    assert one_line(err) == message


def test_the_environments_proxy_variables_are_ignored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ``--proxy`` sets a proxy: these point at nothing, and the send goes straight on."""
    nowhere = f"socks5://{LOOPBACK}:{free_ports(1)[0]}"
    for name in ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, nowhere)
    with CaptureServer() as server:
        code, out, err = run(
            capsys,
            *("send", "--server", f"{server.host}:{server.port}", "--tls", "none"),
            *("--from", "me@example.test", "--to", "to@example.test", "--json"),
        )
        received = server.messages
    assert code == 0, err
    assert json.loads(out)["proxy"] is None
    assert [m.rcpt_tos for m in received] == [["to@example.test"]]


@pytest.mark.parametrize("command", ["send", "probe"])
def test_help_says_the_proxy_is_explicit_only(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    out = " ".join(run(capsys, command, "--help")[1].split())
    assert "--proxy URL connect through this proxy: socks5://[USER@]HOST:PORT" in out
    assert "Only this option sets a proxy: ALL_PROXY, HTTPS_PROXY and the like are ignored" in out
    assert "(default: SMTP_PROXY_PASSWORD)" in out
    assert re.search(r"\b6,? the proxy failed\b", out), out
