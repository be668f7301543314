"""Attacks on TLS, on every adapter: STARTTLS response injection, state carried across
STARTTLS, STRIPTLS, and certificates that must be refused.

Each test describes what a vulnerable client would do and asserts the opposite, mostly on
what the (scripted) server received.  See ``docs/security.md``.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from smtp_proto.errors import (
    RemoteProtocolError,
    SMTPNotSupportedError,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from tests.adapters import LOCAL_NAME, MESSAGE, Adapter, all_adapters
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.certs import BAD_CERTIFICATES, LocalCA, bad_server_context

EHLO = f"ehlo {LOCAL_NAME}".encode()
USER, PASSWORD = "user", "secret"

# ---------------------------------------------------------------- STARTTLS response injection

#: Replies a man in the middle slips in after the 220 to STARTTLS (Poddebniak et al.,
#: "Why TLS is better without STARTTLS", USENIX Security 2021): a vulnerable client keeps them
#: buffered and reads them, after the handshake, as the server's answers over TLS.
INJECTIONS = {
    "fake-ehlo": b"250-evil.example.test\r\n250 AUTH PLAIN\r\n",
    "fake-auth-success": b"235 2.7.0 Authentication successful\r\n",
    "fake-ehlo-and-auth": b"250 evil.example.test\r\n235 2.7.0 OK\r\n250 2.1.0 OK\r\n",
    "partial-line": b"250 evil",
}


@all_adapters
@pytest.mark.parametrize("separately", [False, True], ids=["same-write", "own-write"])
@pytest.mark.parametrize("injection", list(INJECTIONS), ids=list(INJECTIONS))
async def test_starttls_response_injection_is_refused(
    adapter: Adapter, tls_ca: LocalCA, injection: str, separately: bool
) -> None:
    """Bytes after the 220 to STARTTLS end the connection before TLS starts.

    In the same write as the 220 the client sees them with the reply: a
    ``RemoteProtocolError``.  In a write of their own they may arrive after the client read
    the 220; they then reach the TLS handshake as plaintext where a record should be: an
    ``ssl.SSLError``.  Either way no handshake completes and nothing else is sent.
    """
    behaviour = StandardESMTP(
        auth={USER: PASSWORD},
        tls_context=tls_ca.server_context(),
        starttls_injection=INJECTIONS[injection],
        starttls_injection_separately=separately,
    )
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        with pytest.raises((RemoteProtocolError, ssl.SSLError)) as info:
            await adapter.call(smtp.starttls, context=tls_ca.client_context())
        if not separately:
            assert isinstance(info.value, RemoteProtocolError), repr(info.value)
            assert isinstance(info.value, SMTPServerDisconnected)
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.login, USER, PASSWORD)
        await adapter.sessions_done(server)
    assert len(behaviour.tls_errors) == 1, "the client completed the TLS handshake"
    assert bytes(server.sessions[0].received) == EHLO + b"\r\nSTARTTLS\r\n"
    assert behaviour.commands == [EHLO, b"STARTTLS"]
    assert behaviour.authenticated == []


@all_adapters
async def test_auth_mechanisms_advertised_before_tls_are_forgotten(
    adapter: Adapter, tls_ca: LocalCA
) -> None:
    """Plaintext EHLO offers PLAIN, the EHLO over TLS offers only LOGIN: ``login`` must use
    LOGIN (a client that kept the plaintext list picks PLAIN, its first choice)."""
    behaviour = StandardESMTP(
        auth={USER: PASSWORD},
        tls_context=tls_ca.server_context(),
        features=["AUTH PLAIN", "XPLAINTEXT"],
        tls_features=["AUTH LOGIN", "XTLS"],
    )
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        assert smtp.esmtp_features["auth"].split() == ["PLAIN"]
        assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
        assert smtp.esmtp_features == {}
        assert not smtp.has_extn("auth") and not smtp.has_extn("xplaintext")
        assert await adapter.call(smtp.login, USER, PASSWORD) == (
            235,
            b"2.7.0 Authentication successful",
        )
        assert smtp.esmtp_features.keys() == {"auth", "xtls"}
        assert smtp.esmtp_features["auth"].split() == ["LOGIN"]
        await adapter.call(smtp.quit)
    assert [c.split()[:2] for c in behaviour.commands if c.upper().startswith(b"AUTH")] == [
        [b"AUTH", b"LOGIN"]
    ]
    assert behaviour.authenticated == [USER]


@all_adapters
async def test_no_auth_after_tls_means_no_login(adapter: Adapter, tls_ca: LocalCA) -> None:
    """AUTH offered only in plaintext: ``login`` after STARTTLS finds no AUTH and sends none."""
    behaviour = StandardESMTP(
        auth={USER: PASSWORD},
        tls_context=tls_ca.server_context(),
        features=["AUTH PLAIN LOGIN"],
        tls_features=["8BITMIME"],
    )
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
        with pytest.raises(SMTPNotSupportedError):
            await adapter.call(smtp.login, USER, PASSWORD)
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        await adapter.call(smtp.quit)
    assert not [c for c in behaviour.commands if c.upper().startswith(b"AUTH")]
    assert behaviour.commands.count(EHLO) == 2


@all_adapters
async def test_extensions_after_starttls_are_only_the_tls_ones(
    adapter: Adapter, tls_ca: LocalCA
) -> None:
    """A plaintext SIZE limit must not refuse (or size) a message after TLS, where the server
    advertises no SIZE; ``has_extn`` answers from the EHLO over TLS alone."""
    behaviour = StandardESMTP(
        tls_context=tls_ca.server_context(),
        features=["SIZE 10", "PIPELINING", "XPLAINTEXT"],
        tls_features=["XTLS"],
    )
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        assert smtp.has_extn("size") and smtp.has_extn("xplaintext")
        assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
        for name in ("size", "pipelining", "xplaintext", "starttls", "xtls"):
            assert not smtp.has_extn(name), name  # forgotten, and no EHLO over TLS yet
        assert (await adapter.call(smtp.ehlo))[0] == 250
        assert smtp.has_extn("xtls")
        assert not any(smtp.has_extn(n) for n in ("size", "pipelining", "xplaintext"))
        assert len(MESSAGE) > 10
        assert (
            await adapter.call(smtp.sendmail, "s@example.test", ["r@example.test"], MESSAGE) == {}
        )
        await adapter.call(smtp.quit)
    [envelope] = behaviour.envelopes
    assert envelope.mail_options == []  # no SIZE= from the plaintext EHLO
    assert envelope.data == MESSAGE


# ---------------------------------------------------------------- STRIPTLS


def refusing_starttls(reply: str) -> Callable[[Session], None]:
    """Advertises STARTTLS, answers it with ``reply``, then records whatever else comes."""

    def handler(s: Session) -> None:
        s.reply("220 test.local ESMTP")
        s.expect("ehlo ")
        s.reply("250-test.local", "250-AUTH PLAIN LOGIN", "250 STARTTLS")
        s.expect("starttls")
        s.reply(reply)
        s.read_until_eof()

    return handler


@all_adapters
async def test_starttls_not_advertised(adapter: Adapter) -> None:
    """A man in the middle removed STARTTLS from EHLO: ``starttls`` raises and sends nothing."""
    behaviour = StandardESMTP(auth={USER: PASSWORD}, features=["AUTH PLAIN LOGIN"])
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(SMTPNotSupportedError):
            await adapter.call(smtp.starttls)
        smtp.close()
        await adapter.sessions_done(server)
    assert bytes(server.sessions[0].received) == EHLO + b"\r\n"


@all_adapters
@pytest.mark.parametrize(
    "reply",
    [
        "454 4.7.0 TLS not available due to temporary reason",
        "502 5.5.1 Command not implemented",
        "554 5.7.3 No TLS for you",
    ],
    ids=["454", "502", "554"],
)
async def test_starttls_refused(adapter: Adapter, reply: str) -> None:
    """A refused STARTTLS is an ``SMTPResponseException`` with the server's code, and
    ``starttls`` sends nothing after it (no AUTH, no MAIL in plaintext)."""
    with ScriptedServer(refusing_starttls(reply)) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(SMTPResponseException) as info:
            await adapter.call(smtp.starttls)
        assert info.value.smtp_code == int(reply[:3])
        assert info.value.smtp_error == reply[4:].encode()
        smtp.close()
        await adapter.sessions_done(server)
    assert bytes(server.sessions[0].received) == EHLO + b"\r\nSTARTTLS\r\n"


def garbage_instead_of_server_hello(garbage: bytes) -> Callable[[Session], None]:
    """Says 220 to STARTTLS, reads the ClientHello's record header, answers ``garbage``."""

    def handler(s: Session) -> None:
        s.reply("220 test.local ESMTP")
        s.expect("ehlo ")
        s.reply("250-test.local", "250-AUTH PLAIN LOGIN", "250 STARTTLS")
        s.expect("starttls")
        s.reply("220 2.0.0 Ready to start TLS")
        assert s.read_exact(1) == b"\x16", "the client's first TLS record is not a handshake"
        s.send(garbage)
        with contextlib.suppress(ConnectionError):  # the client may well reset
            s.read_until_eof()

    return handler


#: What a TLS client makes of the first bytes it gets instead of a ServerHello (OpenSSL's
#: reason): plaintext, a fatal handshake_failure alert, a handshake record holding garbage.
NOT_A_SERVER_HELLO = {
    "plaintext": (b"250 2.0.0 plaintext, not TLS\r\n", "WRONG_VERSION_NUMBER"),
    "alert": (b"\x15\x03\x03\x00\x02\x02\x28", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
    "bad-record": (b"\x16\x03\x03\x00\x04garb", "UNEXPECTED_MESSAGE"),
}


@all_adapters
@pytest.mark.parametrize("kind", list(NOT_A_SERVER_HELLO))
async def test_starttls_handshake_failure(adapter: Adapter, kind: str) -> None:
    """Garbage (or a TLS alert) instead of a ServerHello: the handshake's ``ssl.SSLError``
    from every adapter, the object closed, and no plaintext command after it."""
    garbage, reason = NOT_A_SERVER_HELLO[kind]
    with ScriptedServer(garbage_instead_of_server_hello(garbage)) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(ssl.SSLError) as info:
            await adapter.call(smtp.starttls)
        assert info.value.reason == reason, repr(info.value)
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.login, USER, PASSWORD)
        await adapter.sessions_done(server)
    received = bytes(server.sessions[0].received)
    prefix = EHLO + b"\r\nSTARTTLS\r\n\x16"
    assert received.startswith(prefix)
    assert b"AUTH" not in received[len(prefix) :].upper()
    assert b"MAIL" not in received[len(prefix) :].upper()


# ---------------------------------------------------------------- certificates

#: What ``SSLCertVerificationError.verify_message`` says for each refused certificate.
VERIFY_MESSAGES = {
    "wrong-host": "IP address mismatch",  # the client connects to 127.0.0.1
    "expired": "certificate has expired",
    "self-signed": "self-signed certificate",
    "unknown-ca": "unable to get local issuer certificate",
}


def implicit_tls(context: ssl.SSLContext, behaviour: StandardESMTP) -> Callable[[Session], None]:
    """TLS from the first byte (port 465 style), then ``behaviour``; failed handshakes are
    kept in ``behaviour.tls_errors``."""

    def handler(s: Session) -> None:
        try:
            s.start_tls(context)
        except OSError as exc:
            behaviour.tls_errors.append(exc)
            return
        behaviour(s)

    return handler


def check_refusal(error: ssl.SSLCertVerificationError, expected: str) -> None:
    """The error says why the certificate was refused."""
    assert error.reason == "CERTIFICATE_VERIFY_FAILED", error.reason
    assert expected in error.verify_message, error.verify_message
    assert expected in str(error)


@all_adapters
@pytest.mark.parametrize("kind", BAD_CERTIFICATES)
async def test_smtp_ssl_refuses_a_bad_certificate(
    adapter: Adapter, tls_ca: LocalCA, tmp_path: Path, kind: str
) -> None:
    behaviour = StandardESMTP(auth={USER: PASSWORD})
    context = bad_server_context(tls_ca, kind, tmp_path)
    with ScriptedServer(implicit_tls(context, behaviour)) as server:
        smtp = adapter.new("SMTP_SSL", context=tls_ca.client_context())
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await adapter.call(smtp.connect, server.host, server.port)
        check_refusal(info.value, VERIFY_MESSAGES[kind])
        assert not adapter.is_connected(smtp)
        await adapter.sessions_done(server)
    assert behaviour.commands == []
    assert len(behaviour.tls_errors) == 1  # the server saw the client abort the handshake


@all_adapters
async def test_smtp_ssl_refuses_a_certificate_for_another_host_name(
    adapter: Adapter, tls_ca: LocalCA, tmp_path: Path
) -> None:
    """Connecting by name ("localhost", which is 127.0.0.1 here) to a server whose
    certificate names another host."""
    behaviour = StandardESMTP()
    context = bad_server_context(tls_ca, "wrong-host", tmp_path)
    with ScriptedServer(implicit_tls(context, behaviour)) as server:
        smtp = adapter.new("SMTP_SSL", context=tls_ca.client_context())
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await adapter.call(smtp.connect, "localhost", server.port)
        check_refusal(info.value, "Hostname mismatch")
        assert not adapter.is_connected(smtp)
    assert behaviour.commands == []


@all_adapters
@pytest.mark.parametrize("kind", BAD_CERTIFICATES)
async def test_smtp_ssl_default_context_refuses_a_bad_certificate(
    adapter: Adapter, tls_ca: LocalCA, tmp_path: Path, kind: str
) -> None:
    """Without ``context=`` the client verifies against the system's CAs: refused too."""
    behaviour = StandardESMTP()
    context = bad_server_context(tls_ca, kind, tmp_path)
    with ScriptedServer(implicit_tls(context, behaviour)) as server:
        smtp = adapter.new("SMTP_SSL")
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await adapter.call(smtp.connect, server.host, server.port)
        assert info.value.reason == "CERTIFICATE_VERIFY_FAILED"
        assert not adapter.is_connected(smtp)
    assert behaviour.commands == []


@all_adapters
@pytest.mark.parametrize("kind", BAD_CERTIFICATES)
async def test_starttls_refuses_a_bad_certificate(
    adapter: Adapter, tls_ca: LocalCA, tmp_path: Path, kind: str
) -> None:
    """``starttls`` raises the verification error, closes, and sends no credentials; the
    object can connect again."""
    behaviour = StandardESMTP(
        auth={USER: PASSWORD}, tls_context=bad_server_context(tls_ca, kind, tmp_path)
    )
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await adapter.call(smtp.starttls, context=tls_ca.client_context())
        check_refusal(info.value, VERIFY_MESSAGES[kind])
        assert not adapter.is_connected(smtp)
        with pytest.raises(SMTPServerDisconnected):
            await adapter.call(smtp.login, USER, PASSWORD)
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        await adapter.call(smtp.quit)
    assert behaviour.commands == [EHLO, b"STARTTLS", b"noop", b"quit"]
    assert behaviour.authenticated == []
    assert len(behaviour.tls_errors) == 1
