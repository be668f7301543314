"""TLS verified by default, non-ASCII credentials, and credentials kept out of logs."""

from __future__ import annotations

import base64
import hmac
import re
import smtplib as stdlib_smtplib
import ssl
from collections.abc import Callable, Iterator

import pytest
from smtp_proto.transports import sync as smtplib

from smtp_proto import sasl
from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]
LOCAL_NAME = "client.example.test"
UTF8_USER, UTF8_PASSWORD = "utf8user", "pässwörd"


def connect(server: PostfixServer | AiosmtpdServer | ScriptedServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)


# ---------------------------------------------------------------- implicit TLS (SMTP_SSL)


def test_smtp_ssl_with_context(
    postfix: PostfixServer, postfix_delivered: Delivered, tls_ca: LocalCA, token: str
) -> None:
    smtp = smtplib.SMTP_SSL(
        postfix.host,
        postfix.smtps_port,
        local_hostname=LOCAL_NAME,
        context=tls_ca.client_context(),
        timeout=10,
    )
    assert isinstance(smtp.sock, ssl.SSLSocket)
    assert smtp.sock.getpeercert()["subjectAltName"]  # a verified peer certificate
    with smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")  # already encrypted
        assert smtp.login("testuser", "testpass")[0] == 235
        assert smtp.sendmail("ssl@example.test", "r@example.test", f"Subject: {token}\n\n") == {}
    assert smtp.sock is None
    (message,) = postfix_delivered(token)
    assert b"with ESMTPSA id" in message


def test_smtp_ssl_host_port_string(aiosmtpd_server: AiosmtpdServer, tls_ca: LocalCA) -> None:
    smtp = smtplib.SMTP_SSL(local_hostname=LOCAL_NAME, context=tls_ca.client_context())
    assert smtp.connect(f"127.0.0.1:{aiosmtpd_server.smtps_port}")[0] == 220
    smtp.sendmail("a@example.test", "b@example.test", b"Subject: implicit\r\n\r\n")
    smtp.quit()
    (record,) = aiosmtpd_server.messages()
    assert record.tls is True


@pytest.mark.parametrize("server_name", ["postfix", "aiosmtpd"])
def test_smtp_ssl_verifies_by_default(request: pytest.FixtureRequest, server_name: str) -> None:
    """The test CA is not trusted by the default context: verification must fail."""
    server = request.getfixturevalue("postfix" if server_name == "postfix" else "aiosmtpd_server")
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        smtplib.SMTP_SSL(server.host, server.smtps_port, local_hostname=LOCAL_NAME, timeout=10)
    assert info.value.verify_message == "unable to get local issuer certificate"
    # For contrast, the stdlib does not verify at all by default and connects.
    stdlib_smtp = stdlib_smtplib.SMTP_SSL(server.host, server.smtps_port, local_hostname=LOCAL_NAME)
    assert stdlib_smtp.noop()[0] == 250
    stdlib_smtp.quit()


@pytest.mark.parametrize("server_name", ["postfix", "aiosmtpd"])
def test_starttls_verifies_by_default_and_stays_reconnectable(
    request: pytest.FixtureRequest, server_name: str, tls_ca: LocalCA
) -> None:
    server = request.getfixturevalue("postfix" if server_name == "postfix" else "aiosmtpd_server")
    smtp = connect(server)
    smtp.ehlo()
    with pytest.raises(ssl.SSLCertVerificationError):
        smtp.starttls()
    assert smtp.sock is None
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()

    assert smtp.connect(server.host, server.port)[0] == 220
    assert smtp.starttls(context=tls_ca.client_context())[0] == 220
    assert isinstance(smtp.sock, ssl.SSLSocket)
    smtp.ehlo()
    assert not smtp.has_extn("starttls")
    assert smtp.noop()[0] == 250
    smtp.quit()


# ---------------------------------------------------------------- non-ASCII credentials


def test_utf8_password_postfix(postfix: PostfixServer) -> None:
    ok = (235, b"2.7.0 Authentication successful")
    with connect(postfix) as smtp:
        assert smtp.login(UTF8_USER, UTF8_PASSWORD) == ok  # CRAM-MD5, Postfix's first choice
    with connect(postfix) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = UTF8_USER, UTF8_PASSWORD
        assert smtp.auth("PLAIN", smtp.auth_plain) == ok
    with connect(postfix) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = UTF8_USER, UTF8_PASSWORD
        assert smtp.auth("LOGIN", smtp.auth_login) == ok
    for mechanism in ("PLAIN", "LOGIN"):
        with connect(postfix) as smtp:
            smtp.ehlo()
            mech = sasl.mechanism_for(mechanism, UTF8_USER, UTF8_PASSWORD)
            assert smtp.auth(mechanism, mech) == ok
    with connect(postfix) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        smtp.login(UTF8_USER, "passwörd")  # a wrong non-ASCII password is still refused


def test_utf8_password_aiosmtpd(aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(aiosmtpd_server) as smtp:
        assert smtp.login(UTF8_USER, UTF8_PASSWORD)[0] == 235  # PLAIN (no CRAM-MD5 offered)
        smtp.sendmail("a@example.test", "b@example.test", b"Subject: plain\r\n\r\n")
    with connect(aiosmtpd_server) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = UTF8_USER, UTF8_PASSWORD
        assert smtp.auth("LOGIN", smtp.auth_login)[0] == 235
        smtp.sendmail("a@example.test", "b@example.test", b"Subject: login\r\n\r\n")
    assert [r.auth_user for r in aiosmtpd_server.messages()] == [UTF8_USER, UTF8_USER]


def test_utf8_password_login_only_server() -> None:
    srv = StandardESMTP(auth={UTF8_USER: UTF8_PASSWORD}, features=["AUTH LOGIN"])
    with ScriptedServer(srv) as server, connect(server) as smtp:
        assert smtp.login(UTF8_USER, UTF8_PASSWORD)[0] == 235
    assert srv.authenticated == [UTF8_USER]


@pytest.mark.parametrize("server_name", ["postfix", "aiosmtpd"])
def test_stdlib_fails_on_utf8_password(request: pytest.FixtureRequest, server_name: str) -> None:
    """The contrast: smtplib encodes credentials as ASCII."""
    server = request.getfixturevalue("postfix" if server_name == "postfix" else "aiosmtpd_server")
    stdlib_smtp = stdlib_smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME)
    try:
        with pytest.raises(UnicodeEncodeError):
            stdlib_smtp.login(UTF8_USER, UTF8_PASSWORD)
        stdlib_smtp.user, stdlib_smtp.password = UTF8_USER, UTF8_PASSWORD
        with pytest.raises(UnicodeEncodeError):
            stdlib_smtp.auth("PLAIN", stdlib_smtp.auth_plain)
    finally:
        stdlib_smtp.close()


# ---------------------------------------------------------------- credentials never logged


@pytest.fixture
def login_only_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(StandardESMTP(auth={"testuser": "testpass"}, features=["AUTH LOGIN"])) as s:
        yield s


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(
    ("server_name", "mechanism"),
    [("postfix", "CRAM-MD5"), ("aiosmtpd_server", "PLAIN"), ("login_only_server", "LOGIN")],
)
def test_logged_transcript_redacts_credentials(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    server_name: str,
    mechanism: str,
) -> None:
    server = request.getfixturevalue(server_name)
    caplog.set_level("DEBUG", logger="smtp_proto")
    with connect(server) as smtp:
        smtp.set_debuglevel(1)
        assert smtp.login("testuser", "testpass")[0] == 235
        smtp.sendmail("logged@example.test", ["r@example.test"], b"Subject: log\r\n\r\nx\r\n")

    records = [r for r in caplog.records if r.name.startswith("smtp_proto")]
    messages = [r.getMessage() for r in records]
    assert all(r.levelname == "DEBUG" for r in records)
    assert f"send: 'AUTH {mechanism}'" in messages or f"send: 'AUTH {mechanism} ****'" in messages
    assert any(
        re.fullmatch(smtplib_spelling(r"send: 'mail FROM:<logged@example\.test>( size=\d+)?'"), m)
        for m in messages
    ), messages
    assert smtplib_spelling("send: 'rcpt TO:<r@example.test>'") in messages
    if server_name == "postfix":  # offers CHUNKING and PIPELINING: BDAT
        assert any(re.fullmatch(r"send: 'BDAT \d+ LAST'", m) for m in messages), messages
    else:
        assert "send: 'data'" in messages
        assert any(m.startswith("reply: 354 ") for m in messages)
    assert any(m.startswith("reply: 235 ") for m in messages)

    # Every line sent between AUTH and its 235 is masked.
    start = next(i for i, m in enumerate(messages) if m.startswith("send: 'AUTH"))
    end = next(i for i, m in enumerate(messages) if m.startswith("reply: 235 "))
    exchange = messages[start + 1 : end]
    assert [m for m in exchange if m.startswith("send:")] == ["send: '****'"] * sum(
        m.startswith("send:") for m in exchange
    )

    secrets = {"testpass", b64(b"testpass"), b64(b"\0testuser\0testpass"), b64(b"testuser")}
    for m in exchange:  # CRAM-MD5: the digest answering each logged challenge
        found = re.fullmatch(r"reply: 334 b'([A-Za-z0-9+/=]+)'", m)
        if found and mechanism == "CRAM-MD5":
            challenge = base64.b64decode(found.group(1))
            digest = hmac.new(b"testpass", challenge, "md5").hexdigest()
            secrets |= {digest, b64(f"testuser {digest}".encode())}
    debug_output = capfd.readouterr().err
    assert "AUTH" in debug_output and "****" in debug_output
    for secret in secrets:
        assert not any(secret in m for m in messages), secret
        assert secret not in debug_output, secret
