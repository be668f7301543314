"""Every documented ``smtplib.SMTP`` method and attribute, against real servers.

Postfix and aiosmtpd answer as deployed servers do; the scripted server is used where the
exact command lines matter or where a server has to behave in a particular way (HELO only,
one AUTH mechanism only).
"""

from __future__ import annotations

import email.message
import smtplib as stdlib_smtplib
import ssl
import sys
from collections.abc import Callable

import pytest
from smtp_proto.transports import sync as smtplib

from smtp_proto import sasl
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]
LOCAL_NAME = "client.example.test"
USERS = {"testuser": "testpass"}


def connect(server: PostfixServer | AiosmtpdServer | ScriptedServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)


# ---------------------------------------------------------------- connecting and closing


def test_connect_host_port_string(postfix: PostfixServer) -> None:
    smtp = smtplib.SMTP(local_hostname=LOCAL_NAME)
    assert smtp.sock is None
    code, banner = smtp.connect(f"127.0.0.1:{postfix.port}")
    assert (code, banner) == (220, b"postfix.test ESMTP Postfix (smtp-proto test instance)")
    assert smtp.sock is not None
    assert smtp.sock.getpeername() == ("127.0.0.1", postfix.port)
    assert smtp.noop() == (250, b"2.0.0 Ok")
    smtp.quit()

    smtp = smtplib.SMTP(f"127.0.0.1:{postfix.port}", local_hostname=LOCAL_NAME)  # constructor too
    assert smtp.noop()[0] == 250
    smtp.quit()

    with pytest.raises(OSError, match="nonnumeric port"):
        smtplib.SMTP(local_hostname=LOCAL_NAME).connect("127.0.0.1:smtp")


def test_with_block_sends_quit() -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        with connect(server) as smtp:
            assert smtp.noop() == (250, b"2.0.0 OK")
        assert smtp.sock is None
        with pytest.raises(RuntimeError, match="boom"), connect(server) as smtp:
            smtp.noop()
            raise RuntimeError("boom")
        assert smtp.sock is None
        server.wait_sessions_done()
    assert srv.commands == [b"noop", b"QUIT", b"noop", b"QUIT"]
    assert all(session.closed for session in server.sessions)


def test_with_block_after_quit_is_quiet() -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server, connect(server) as smtp:
        assert smtp.quit() == (221, b"2.0.0 Bye")
    assert srv.commands == [b"quit"]


def test_quit_forgets_the_session_and_allows_reconnecting(postfix: PostfixServer) -> None:
    smtp = connect(postfix)
    smtp.ehlo()
    assert smtp.does_esmtp
    assert smtp.quit() == (221, b"2.0.0 Bye")
    assert smtp.sock is None
    assert smtp.ehlo_resp is None and smtp.helo_resp is None
    assert smtp.esmtp_features == {} and smtp.does_esmtp is False
    assert smtp.connect(postfix.host, postfix.port)[0] == 220
    assert smtp.noop()[0] == 250
    smtp.quit()


def test_close_then_reconnect(postfix: PostfixServer) -> None:
    smtp = connect(postfix)
    smtp.ehlo()
    smtp.close()
    assert smtp.sock is None
    smtp.close()  # idempotent
    with pytest.raises(smtplib.SMTPServerDisconnected, match="please run connect"):
        smtp.noop()
    assert smtp.connect(postfix.host, postfix.port)[0] == 220
    assert smtp.esmtp_features == {}  # a new connection starts with nothing learned
    smtp.ehlo()
    assert smtp.has_extn("pipelining")
    smtp.quit()


# ---------------------------------------------------------------- low-level commands


def test_docmd_putcmd_getreply(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        assert smtp.docmd("NOOP") == (250, b"2.0.0 Ok")
        assert smtp.docmd("VRFY", "alice") == (252, b"2.0.0 alice")
        assert smtp.docmd("XYZZY") == (500, b"5.5.2 Error: command not recognized")
        smtp.putcmd("noop")
        assert smtp.getreply() == (250, b"2.0.0 Ok")


def test_helo(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        assert smtp.helo() == (250, b"postfix.test")
        assert smtp.helo_resp == b"postfix.test"
        assert smtp.ehlo_resp is None
        assert smtp.does_esmtp is False
        assert smtp.esmtp_features == {}
        smtp.ehlo_or_helo_if_needed()  # HELO was done: nothing more is sent
        assert smtp.ehlo_resp is None


def test_helo_session_sends_plain_commands() -> None:
    """After HELO, sendmail uses no ESMTP parameters and no pipelining."""
    srv = StandardESMTP()
    with ScriptedServer(srv) as server, connect(server) as smtp:
        assert smtp.helo("named.example.test") == (250, b"test.local")
        smtp.sendmail("a@example.test", "b@example.test", b"Subject: x\r\n\r\nbody\r\n")
    assert srv.commands == [
        b"helo named.example.test",
        b"mail FROM:<a@example.test>",
        b"rcpt TO:<b@example.test>",
        b"data",
        b"QUIT",
    ]
    assert srv.envelopes[0].data == b"Subject: x\r\n\r\nbody\r\n"


def test_ehlo(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        code, text = smtp.ehlo()
        assert code == 250
        assert text.startswith(b"postfix.test\nPIPELINING\n")
        assert smtp.ehlo_resp == text
        assert smtp.does_esmtp is True
        features = smtp.esmtp_features
        assert features["size"] == "10240000"
        assert features["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        assert features["pipelining"] == ""
        assert {"starttls", "8bitmime", "smtputf8", "dsn", "chunking", "vrfy"} <= set(features)
        stdlib_smtp = stdlib_smtplib.SMTP(postfix.host, postfix.port, local_hostname=LOCAL_NAME)
        assert stdlib_smtp.ehlo() == (code, text)
        assert features == stdlib_smtp.esmtp_features  # the same parse, to the space
        stdlib_smtp.quit()
        assert smtp.has_extn("STARTTLS") and smtp.has_extn("starttls")
        assert smtp.has_extn("SMTPUTF8")
        assert not smtp.has_extn("XCLIENT")
        assert smtp.ehlo("other.example.test")[0] == 250  # EHLO again is fine


def test_ehlo_sends_local_hostname() -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname="first.example.test")
        assert smtp.local_hostname == "first.example.test"
        smtp.ehlo()
        smtp.local_hostname = "second.example.test"
        smtp.ehlo()
        smtp.ehlo("explicit.example.test")
        smtp.quit()
        default = smtplib.SMTP()
        assert default.local_hostname  # the host's FQDN or [address], looked up once
    assert srv.commands == [
        b"ehlo first.example.test",
        b"ehlo second.example.test",
        b"ehlo explicit.example.test",
        b"quit",
    ]


def test_ehlo_or_helo_if_needed(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        assert smtp.ehlo_resp is None
        smtp.ehlo_or_helo_if_needed()
        assert smtp.does_esmtp and smtp.ehlo_resp is not None
        assert smtp.ehlo_resp.startswith(b"postfix.test\n")


def test_ehlo_or_helo_if_needed_falls_back_to_helo() -> None:
    def old_server(s: Session) -> None:
        s.reply("220 old.example.test SMTP")
        s.expect("ehlo ")
        s.reply("502 5.5.2 EHLO not implemented")
        s.expect("helo client.example.test")
        s.reply("250 old.example.test")
        s.expect("quit")
        s.reply("221 bye")

    with ScriptedServer(old_server) as server:
        smtp = connect(server)
        smtp.ehlo_or_helo_if_needed()
        assert smtp.ehlo_resp == b"5.5.2 EHLO not implemented"
        assert smtp.helo_resp == b"old.example.test"
        assert smtp.does_esmtp is False
        assert smtp.quit() == (221, b"bye")


def test_ehlo_or_helo_if_needed_raises_helo_error() -> None:
    def hostile(s: Session) -> None:
        s.reply("220 hostile.example.test")
        s.expect("ehlo ")
        s.reply("550 5.7.1 Go away")
        s.expect("helo ")
        s.reply("550 5.7.1 Really, go away")
        s.expect("quit")
        s.reply("221 bye")

    with ScriptedServer(hostile) as server:
        smtp = connect(server)
        with pytest.raises(smtplib.SMTPHeloError) as info:
            smtp.sendmail("a@example.test", "b@example.test", b"x\r\n")
        assert info.value.args == (550, b"5.7.1 Really, go away")
        smtp.quit()


def test_verify_expn_help(postfix: PostfixServer, aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(postfix) as smtp:
        assert smtp.verify("alice@example.test") == (252, b"2.0.0 alice@example.test")
        assert smtp.vrfy("Bob Example <bob@example.test>") == (252, b"2.0.0 bob@example.test")
        code, _ = smtp.expn("staff")
        assert code in (500, 502)  # Postfix does not implement EXPN
    with connect(aiosmtpd_server) as smtp:
        assert smtp.expn("staff") == (502, b"EXPN not implemented")
        assert smtp.help().startswith(b"Supported commands: AUTH DATA EHLO HELO HELP")
        assert smtp.help("NOOP") == b"Syntax: NOOP [ignored]"


def test_verify_sends_the_bare_address() -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server, connect(server) as smtp:
        assert smtp.verify("Alice Example <alice@example.test>")[0] == 252
        assert smtp.expn("Staff <staff@example.test>")[0] == 502
        assert smtp.help()[:3] == b"Com"
    assert srv.commands == [
        b"vrfy alice@example.test",
        b"expn staff@example.test",
        b"help",
        b"QUIT",
    ]


def test_rset_and_noop(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        assert smtp.noop() == (250, b"2.0.0 Ok")
        smtp.ehlo()
        assert smtp.mail("sender@example.test")[0] == 250
        assert smtp.mail("again@example.test")[0] == 503  # nested MAIL
        assert smtp.rset() == (250, b"2.0.0 Ok")
        assert smtp.mail("again@example.test")[0] == 250  # the transaction was reset
        assert smtp.rset()[0] == 250


# ---------------------------------------------------------------- a transaction by hand


def test_mail_rcpt_data(postfix: PostfixServer, postfix_delivered: Delivered, token: str) -> None:
    with connect(postfix) as smtp:
        smtp.ehlo()
        assert smtp.mail("by-hand@example.test", ["BODY=8BITMIME"]) == (250, b"2.1.0 Ok")
        assert smtp.rcpt("first@example.test", ["NOTIFY=NEVER"]) == (250, b"2.1.5 Ok")
        code, text = smtp.rcpt("reject-this@example.test")
        assert code == 550 and text.startswith(b"5.1.1 <reject-this@example.test>")
        assert smtp.rcpt("second@example.test") == (250, b"2.1.5 Ok")
        code, text = smtp.data(f"Subject: by hand {token}\n\n.leading dot\nend\n")
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    delivered = postfix_delivered(token, 2)
    recipients = sorted(m.split(b"Delivered-To: ")[1].split(b"\n")[0] for m in delivered)
    assert recipients == [b"first@example.test", b"second@example.test"]
    for message in delivered:
        assert b"Return-Path: <by-hand@example.test>\n" in message
        assert message.endswith(b"\n\n.leading dot\nend\n")  # dot-stuffed on the wire, undone


def test_data_without_354_raises(aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(aiosmtpd_server) as smtp:
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.data(b"no transaction\r\n")
        assert info.value.smtp_code == 503
        assert smtp.noop() == (250, b"OK")


# ---------------------------------------------------------------- sendmail and send_message


def test_sendmail_refused_dict(
    postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    recipients = ["good@example.test", "reject-x@example.test", "tempfail-y@example.test"]
    with connect(postfix) as smtp:
        refused = smtp.sendmail(
            "sender@example.test", recipients, f"Subject: {token}\r\n\r\nbody\r\n"
        )
        assert smtp.noop() == (250, b"2.0.0 Ok")
    assert set(refused) == {"reject-x@example.test", "tempfail-y@example.test"}
    assert refused["reject-x@example.test"][0] == 550
    assert refused["tempfail-y@example.test"][0] == 451
    assert all(isinstance(text, bytes) for _, text in refused.values())
    (message,) = postfix_delivered(token)
    assert b"Delivered-To: good@example.test\n" in message


def test_sendmail_single_recipient_string(aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(aiosmtpd_server) as smtp:
        assert smtp.sendmail("a@example.test", "only@example.test", "Subject: s\n\nx") == {}
    (record,) = aiosmtpd_server.messages()
    assert record.rcpt_tos == ["only@example.test"]
    assert record.content == b"Subject: s\r\n\r\nx\r\n"
    assert record.mail_options == ["SIZE=15"]  # the size of the message with CRLF line ends


def test_sendmail_all_refused(aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(aiosmtpd_server) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("a@example.test", ["reject-1@x.test", "tempfail-2@x.test"], b"x\r\n")
        assert {k: v[0] for k, v in info.value.recipients.items()} == {
            "reject-1@x.test": 550,
            "tempfail-2@x.test": 451,
        }
        assert smtp.sendmail("a@example.test", ["ok@x.test"], b"Subject: next\r\n\r\n") == {}
    assert [r.rcpt_tos for r in aiosmtpd_server.messages()] == [["ok@x.test"]]


def test_send_message_does_not_transmit_bcc(
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    aiosmtpd_server: AiosmtpdServer,
    token: str,
) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = "To Person <to@example.test>"
    msg["Cc"] = "cc@example.test"
    msg["Bcc"] = "Hidden <hidden@example.test>"
    msg["Subject"] = f"bcc check {token}"
    msg.set_content("Nobody sees the Bcc line.\n")

    with connect(aiosmtpd_server) as smtp:
        assert smtp.send_message(msg) == {}
    (record,) = aiosmtpd_server.messages()
    assert record.mail_from == "sender@example.test"
    # smtplib's order: To, Bcc, Cc.
    assert record.rcpt_tos == ["to@example.test", "hidden@example.test", "cc@example.test"]
    assert b"\nBcc:" not in record.content and b"hidden@" not in record.content
    assert b"To: To Person <to@example.test>\r\nCc: cc@example.test\r\n" in record.content
    assert msg["Bcc"] == "Hidden <hidden@example.test>"  # the caller's message is unchanged

    with connect(postfix) as smtp:
        assert smtp.send_message(msg) == {}
    delivered = postfix_delivered(token, 3)
    assert len(delivered) == 3
    for message in delivered:
        assert b"\nBcc:" not in message and b"Hidden <" not in message
        assert b"Nobody sees the Bcc line." in message
    assert b"Delivered-To: hidden@example.test\n" in b"".join(delivered)


def test_send_message_explicit_envelope(aiosmtpd_server: AiosmtpdServer) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "header-from@example.test"
    msg["To"] = "header-to@example.test"
    msg.set_content("envelope given\n")
    with connect(aiosmtpd_server) as smtp:
        smtp.send_message(msg, "env-from@example.test", ["env-to@example.test"])
    (record,) = aiosmtpd_server.messages()
    assert record.mail_from == "env-from@example.test"
    assert record.rcpt_tos == ["env-to@example.test"]


# ---------------------------------------------------------------- SMTPUTF8 and command_encoding


def test_command_encoding_follows_smtputf8(aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(aiosmtpd_server) as smtp:
        smtp.ehlo()
        assert smtp.command_encoding == "ascii"
        with pytest.raises(ValueError):  # smtplib: UnicodeEncodeError; here LocalProtocolError
            smtp.mail("jörg@example.test")
        assert smtp.mail("jörg@example.test", ["SMTPUTF8"]) == (250, b"OK")
        assert smtp.command_encoding == "utf-8"
        assert smtp.rcpt("zoë@example.test")[0] == 250
        assert smtp.data("Subject: utf8\r\n\r\nbody\r\n")[0] == 250
        assert smtp.rset()[0] == 250
        assert smtp.command_encoding == "ascii"
    (record,) = aiosmtpd_server.messages()
    assert record.mail_from == "jörg@example.test"
    assert record.rcpt_tos == ["zoë@example.test"]
    assert record.smtp_utf8 is True


def test_sendmail_smtputf8_to_postfix(
    postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    with connect(postfix) as smtp:
        refused = smtp.sendmail(
            "jörg@example.test",
            ["zoë@example.test"],
            f"Subject: {token}\r\n\r\nGrüße\r\n".encode(),
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
        assert refused == {}
        assert smtp.command_encoding == "utf-8"
    (message,) = postfix_delivered(token)
    assert "Delivered-To: zoë@example.test\n".encode() in message
    assert "Return-Path: <jörg@example.test>\n".encode() in message
    assert "\n\nGrüße\n".encode() in message


def test_send_message_international_uses_smtputf8(aiosmtpd_server: AiosmtpdServer) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <jörg@example.test>"
    msg["To"] = "zoë@example.test"
    msg["Subject"] = "Grüße"
    msg.set_content("Schöne Grüße\n")
    with connect(aiosmtpd_server) as smtp:
        assert smtp.send_message(msg) == {}
    (record,) = aiosmtpd_server.messages()
    assert record.smtp_utf8 is True
    assert record.mail_from == "jörg@example.test"
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(record.mail_options)


# ---------------------------------------------------------------- AUTH


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_login_with_the_only_advertised_mechanism(mechanism: str) -> None:
    srv = StandardESMTP(auth=USERS, features=["PIPELINING", f"AUTH {mechanism}"])
    with ScriptedServer(srv) as server, connect(server) as smtp:
        assert smtp.login("testuser", "testpass") == (235, b"2.7.0 Authentication successful")
        assert smtp.user == "testuser" and smtp.password == "testpass"
        smtp.sendmail("a@example.test", "b@example.test", b"Subject: after login\r\n\r\n")
    assert srv.authenticated == ["testuser"]
    assert srv.commands[0] == b"ehlo " + LOCAL_NAME.encode()
    assert srv.commands[1].startswith(f"AUTH {mechanism}".encode())
    assert len(srv.envelopes) == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_login_sends_what_stdlib_sends(mechanism: str) -> None:
    """login() puts the same lines on the wire as smtplib's login() (initial responses included)."""
    wires = []
    for module in (stdlib_smtplib, smtplib):
        srv = StandardESMTP(auth=USERS, features=[f"AUTH {mechanism}"])
        with ScriptedServer(srv) as server:
            client = module.SMTP(server.host, server.port, local_hostname=LOCAL_NAME)
            assert client.login("testuser", "testpass")[0] == 235
            client.quit()
            server.wait_sessions_done()
        assert srv.authenticated == ["testuser"]
        wires.append(bytes(server.sessions[0].received))
    assert wires[1] == wires[0]


def test_login_postfix_prefers_cram_md5(
    postfix: PostfixServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="smtp_proto")
    with connect(postfix) as smtp:
        assert smtp.login("testuser", "testpass") == (235, b"2.7.0 Authentication successful")
        assert smtp.user == "testuser" and smtp.password == "testpass"
        # A second AUTH is refused with 503, which login()/auth() return instead of raising.
        code, text = smtp.login("testuser", "testpass")
        assert (code, text) == (503, b"5.5.1 Error: already authenticated")
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("send:")]
    assert "send: 'AUTH CRAM-MD5'" in sent


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize("initial_response_ok", [True, False])
def test_auth_with_sasl_mechanisms(
    postfix: PostfixServer, mechanism: str, initial_response_ok: bool
) -> None:
    with connect(postfix) as smtp:
        smtp.ehlo()
        mech = sasl.mechanism_for(mechanism, "testuser", "testpass")
        reply = smtp.auth(mechanism, mech, initial_response_ok=initial_response_ok)
        assert reply == (235, b"2.7.0 Authentication successful")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_authobject_methods(postfix: PostfixServer, mechanism: str) -> None:
    with connect(postfix) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = "testuser", "testpass"
        authobject = getattr(smtp, "auth_" + mechanism.lower())
        assert smtp.auth(mechanism, authobject)[0] == 235


def test_auth_wrong_password(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            smtp.auth("PLAIN", sasl.Plain("testuser", "nope"))
        assert info.value.smtp_code == 535
        assert smtp.auth("PLAIN", sasl.Plain("testuser", "testpass"))[0] == 235


# ---------------------------------------------------------------- STARTTLS


def test_starttls_postfix_forgets_and_relearns(
    postfix: PostfixServer, postfix_delivered: Delivered, tls_ca: LocalCA, token: str
) -> None:
    with connect(postfix) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        plain_features = dict(smtp.esmtp_features)
        assert smtp.starttls(context=tls_ca.client_context()) == (
            220,
            b"2.0.0 Ready to start TLS",
        )
        assert isinstance(smtp.sock, ssl.SSLSocket)
        assert smtp.sock.version() is not None
        assert smtp.ehlo_resp is None and smtp.helo_resp is None
        assert smtp.esmtp_features == {} and smtp.does_esmtp is False
        smtp.ehlo()
        assert smtp.does_esmtp
        assert not smtp.has_extn("starttls")
        assert set(smtp.esmtp_features) == set(plain_features) - {"starttls"}
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.starttls(context=tls_ca.client_context())
        smtp.login("testuser", "testpass")
        assert smtp.sendmail("tls@example.test", "r@example.test", f"Subject: {token}\n\n") == {}
    (message,) = postfix_delivered(token)
    assert b"with ESMTPSA id" in message
    assert b"(using TLS" in message  # smtpd_tls_received_header


def test_starttls_aiosmtpd_implicit_ehlo(aiosmtpd_server: AiosmtpdServer, tls_ca: LocalCA) -> None:
    """No explicit EHLO anywhere: starttls() and sendmail() greet as needed."""
    with connect(aiosmtpd_server) as smtp:
        assert smtp.starttls(context=tls_ca.client_context())[0] == 220
        assert smtp.esmtp_features == {}
        smtp.sendmail("a@example.test", "b@example.test", b"Subject: over tls\r\n\r\n")
        assert smtp.does_esmtp
        assert not smtp.has_extn("starttls") and smtp.has_extn("auth")
    (record,) = aiosmtpd_server.messages()
    assert record.tls is True
    assert record.helo == LOCAL_NAME


# ---------------------------------------------------------------- sockets and audit events


def test_timeout_and_source_address(postfix: PostfixServer, tls_ca: LocalCA) -> None:
    smtp = smtplib.SMTP(
        postfix.host,
        postfix.port,
        local_hostname=LOCAL_NAME,
        timeout=3.5,
        source_address=("127.0.0.1", 0),
    )
    assert smtp.timeout == 3.5
    assert smtp.sock is not None and smtp.sock.gettimeout() == 3.5
    assert smtp.sock.getsockname()[0] == "127.0.0.1"
    smtp.starttls(context=tls_ca.client_context())
    assert smtp.sock.gettimeout() == 3.5  # kept by the TLS socket
    smtp.quit()
    unbounded = smtplib.SMTP(postfix.host, postfix.port, local_hostname=LOCAL_NAME, timeout=None)
    assert unbounded.sock is not None and unbounded.sock.gettimeout() is None
    unbounded.quit()


AUDITED: list[tuple[str, object, tuple[object, ...]]] = []
_hook_installed = False


def _record_smtplib_events(event: str, args: tuple[object, ...]) -> None:
    if event.startswith("smtplib."):
        data = args[1:]
        AUDITED.append((event, type(args[0]).__name__, data))


@pytest.fixture
def audited() -> list[tuple[str, object, tuple[object, ...]]]:
    """smtplib.* audit events raised during the test (the hook stays, it cannot be removed)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_record_smtplib_events)
        _hook_installed = True
    AUDITED.clear()
    return AUDITED


@pytest.mark.parametrize("module", [stdlib_smtplib, smtplib], ids=["stdlib", "adapter"])
def test_audit_events(
    aiosmtpd_server: AiosmtpdServer,
    audited: list[tuple[str, object, tuple[object, ...]]],
    module: object,
) -> None:
    """smtplib documents the audit events smtplib.connect (self, host, port) and
    smtplib.send (self, data); a drop-in raises them too."""
    client = module.SMTP(local_hostname=LOCAL_NAME)  # type: ignore[attr-defined]
    client.connect(aiosmtpd_server.host, aiosmtpd_server.port)
    client.noop()
    client.quit()
    events = [(event, data) for event, _, data in audited]
    connects = [data for event, data in events if event == "smtplib.connect"]
    assert connects == [(aiosmtpd_server.host, aiosmtpd_server.port)]
    sent = [data[0] for event, data in events if event == "smtplib.send"]
    sent = [s.encode() if isinstance(s, str) else s for s in sent]
    assert b"noop\r\n" in sent and b"quit\r\n" in sent
    assert {name for _, name, _ in audited} == {"SMTP"}
