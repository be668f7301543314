"""Every documented ``smtplib`` method and attribute, on the sync, asyncio and trio adapters.

Postfix and aiosmtpd answer as deployed servers do; the scripted server is used where the
exact command lines matter or where a server has to behave in one particular way.  Each
test is written once and run on each adapter (see ``tests/adapters.py``).
"""

from __future__ import annotations

import email.message
import errno
import smtplib as stdlib_smtplib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest
from smtp_proto.transports.testing import CaptureServer

from smtp_proto import sasl
from smtp_proto.errors import (
    RemoteProtocolError,
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPServerDisconnected,
)
from tests.adapters import LOCAL_NAME, Adapter, all_adapters, async_adapters
from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]
POSTFIX_BANNER = (220, b"postfix.test ESMTP Postfix (smtp-proto test instance)")
OK = (250, b"2.0.0 Ok")
BYE = (221, b"2.0.0 Bye")
AUTHENTICATED = (235, b"2.7.0 Authentication successful")
UTF8_USER, UTF8_PASSWORD = "utf8user", "pässwörd"


def _connection_socket(adapter: Adapter, smtp: Any) -> socket.socket:
    """The operating system's socket under an adapter's connection."""
    if adapter.name == "sync":
        return smtp.sock  # type: ignore[no-any-return]
    if adapter.name == "asyncio":
        return smtp._stream.transport.get_extra_info("socket")  # type: ignore[no-any-return]
    return smtp._raw  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the module surface


@all_adapters
async def test_module_has_the_smtplib_names(adapter: Adapter) -> None:
    module = adapter.module
    for name in ("SMTP", "SMTP_SSL", "LMTP", "SMTPException", "SMTPServerDisconnected"):
        assert hasattr(module, name), name
    assert module.SMTPServerDisconnected is SMTPServerDisconnected
    assert (module.SMTP_PORT, module.SMTP_SSL_PORT, module.LMTP_PORT) == (25, 465, 2003)
    assert module.quoteaddr("Alice <alice@example.test>") == "<alice@example.test>"


# ---------------------------------------------------------------- connecting and closing


@all_adapters
async def test_connect_host_port_string(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = adapter.new()
    assert not adapter.is_connected(smtp)
    assert await adapter.call(smtp.connect, f"127.0.0.1:{postfix.port}") == POSTFIX_BANNER
    assert adapter.is_connected(smtp)
    assert _connection_socket(adapter, smtp).getpeername() == ("127.0.0.1", postfix.port)
    assert await adapter.call(smtp.noop) == OK
    assert await adapter.call(smtp.quit) == BYE

    smtp = await adapter.open(f"127.0.0.1:{postfix.port}")  # "host:port" to the constructor
    assert await adapter.call(smtp.noop) == OK
    assert await adapter.call(smtp.quit) == BYE

    with pytest.raises(OSError, match="nonnumeric port"):
        await adapter.call(adapter.new().connect, "127.0.0.1:smtp")


@async_adapters
async def test_async_constructor_does_no_io(adapter: Adapter) -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        smtp = adapter.new(host=server.host, port=server.port)
        assert not smtp.is_connected
        with pytest.raises(SMTPServerDisconnected, match="please run connect"):
            await smtp.noop()
        assert await smtp.connect() == (220, b"test.local ESMTP")  # the constructor's address
        assert smtp.is_connected
        assert await smtp.quit() == BYE
        server.wait_sessions_done()
    assert len(server.sessions) == 1
    assert srv.commands == [b"quit"]


@all_adapters
async def test_quit_forgets_the_session_and_allows_reconnecting(
    adapter: Adapter, postfix: PostfixServer
) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    await adapter.call(smtp.ehlo)
    assert smtp.does_esmtp
    assert await adapter.call(smtp.quit) == BYE
    assert not adapter.is_connected(smtp)
    assert smtp.ehlo_resp is None and smtp.helo_resp is None
    assert smtp.esmtp_features == {} and smtp.does_esmtp is False
    assert await adapter.call(smtp.connect, postfix.host, postfix.port) == POSTFIX_BANNER
    assert await adapter.call(smtp.noop) == OK
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_connect_host_port_string_after_a_constructor_port(adapter: Adapter) -> None:
    """``connect("host:port")`` connects to that port, whatever the constructor was given.

    smtplib documents that ``connect()`` takes the port from a ``host:port`` string when no
    port is passed to it; the sync adapter does so.
    """
    first, second = StandardESMTP(greeting="220 first.test"), StandardESMTP(greeting="220 second")
    with ScriptedServer(first) as one, ScriptedServer(second) as two:
        smtp = await adapter.open(one.host, one.port)
        assert await adapter.call(smtp.quit) == BYE
        assert await adapter.call(smtp.connect, f"127.0.0.1:{two.port}") == (220, b"second")
        assert await adapter.call(smtp.quit) == BYE
    assert (first.commands, second.commands) == ([b"quit"], [b"quit"])


@all_adapters
async def test_connection_refused(adapter: Adapter) -> None:
    """As with smtplib, a refused connection raises ``ConnectionRefusedError``."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = adapter.new()
    with pytest.raises(ConnectionRefusedError) as info:
        await adapter.call(smtp.connect, "127.0.0.1", port)
    assert info.value.errno == errno.ECONNREFUSED
    assert not adapter.is_connected(smtp)


@all_adapters
async def test_source_address(adapter: Adapter, aiosmtpd_server: AiosmtpdServer) -> None:
    """``source_address=(host, port)`` binds the client's socket to that address and port."""
    with socket.socket() as probe:  # a free local port
        probe.bind(("127.0.0.1", 0))
        source = probe.getsockname()
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port, source_address=source)
    assert smtp.source_address == source
    assert await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"x\r\n") == {}
    assert (await adapter.call(smtp.quit))[0] == 221
    (record,) = aiosmtpd_server.messages()
    assert record.peer == str(source)


@all_adapters
async def test_connect_timeout(adapter: Adapter) -> None:
    """A server whose accept queue is full never completes the TCP handshake: connect()
    gives up after ``timeout`` with ``TimeoutError``, as ``socket.create_connection`` does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        with socket.create_connection(address):  # fills the queue: later SYNs are dropped
            smtp = adapter.new(timeout=0.5)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await adapter.call(smtp.connect, *address)
            assert time.monotonic() - started < 2.5
            assert not adapter.is_connected(smtp)


@all_adapters
async def test_close_then_reconnect(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    await adapter.call(smtp.ehlo)
    smtp.close()
    assert not adapter.is_connected(smtp)
    smtp.close()  # idempotent
    with pytest.raises(SMTPServerDisconnected, match="please run connect"):
        await adapter.call(smtp.noop)
    assert await adapter.call(smtp.connect, postfix.host, postfix.port) == POSTFIX_BANNER
    assert smtp.esmtp_features == {}  # a new connection starts with nothing learned
    await adapter.call(smtp.ehlo)
    assert smtp.has_extn("pipelining")
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_context_manager_sends_quit(adapter: Adapter) -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        async with adapter.connected(server.host, server.port) as smtp:
            assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        assert not adapter.is_connected(smtp)
        with pytest.raises(RuntimeError, match="boom"):
            async with adapter.connected(server.host, server.port) as smtp:
                await adapter.call(smtp.noop)
                raise RuntimeError("boom")
        assert not adapter.is_connected(smtp)
        async with adapter.connected(server.host, server.port) as smtp:
            assert await adapter.call(smtp.quit) == BYE  # leaving after QUIT sends nothing
        server.wait_sessions_done()
    assert srv.commands == [b"noop", b"QUIT", b"noop", b"QUIT", b"quit"]
    assert all(session.closed for session in server.sessions)


# ---------------------------------------------------------------- greetings


@all_adapters
async def test_ehlo(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    assert smtp.ehlo_resp is None and smtp.does_esmtp is False and smtp.esmtp_features == {}
    code, text = await adapter.call(smtp.ehlo)
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
    assert smtp.has_extn("STARTTLS") and smtp.has_extn("starttls") and smtp.has_extn("SMTPUTF8")
    assert not smtp.has_extn("XCLIENT")
    assert (await adapter.call(smtp.ehlo, "other.example.test"))[0] == 250  # again is fine
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_helo(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.helo) == (250, b"postfix.test")
    assert smtp.helo_resp == b"postfix.test"
    assert smtp.ehlo_resp is None
    assert smtp.does_esmtp is False
    assert smtp.esmtp_features == {}
    await adapter.call(smtp.ehlo_or_helo_if_needed)  # HELO was done: nothing is sent
    assert smtp.ehlo_resp is None
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_helo_session_sends_plain_commands(adapter: Adapter) -> None:
    """After HELO, sendmail uses no ESMTP parameters and no pipelining."""
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        async with adapter.connected(server.host, server.port) as smtp:
            assert await adapter.call(smtp.helo, "named.example.test") == (250, b"test.local")
            message = b"Subject: x\r\n\r\nbody\r\n"
            await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", message)
    assert srv.commands == [
        b"helo named.example.test",
        smtplib_spelling(b"mail FROM:<a@example.test>"),
        smtplib_spelling(b"rcpt TO:<b@example.test>"),
        b"data",
        b"QUIT",
    ]
    assert srv.envelopes[0].data == b"Subject: x\r\n\r\nbody\r\n"


@all_adapters
async def test_default_local_hostname(adapter: Adapter) -> None:
    """With no ``local_hostname``, EHLO names this host (looked up once, when first needed)."""
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        smtp = await adapter.open(server.host, server.port, local_hostname=None)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        name = smtp.local_hostname
        assert name and (name == socket.getfqdn() or name.startswith("["))
        await adapter.call(smtp.helo)
        await adapter.call(smtp.quit)
    assert srv.commands == [f"ehlo {name}".encode(), f"helo {name}".encode(), b"quit"]


@all_adapters
async def test_ehlo_sends_local_hostname(adapter: Adapter) -> None:
    """EHLO names ``local_hostname`` as it is when sent (set later too), or its argument."""
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        smtp = await adapter.open(server.host, server.port, local_hostname="first.example.test")
        assert smtp.local_hostname == "first.example.test"
        await adapter.call(smtp.ehlo)
        smtp.local_hostname = "second.example.test"
        await adapter.call(smtp.ehlo)
        await adapter.call(smtp.ehlo, "explicit.example.test")
        await adapter.call(smtp.quit)
        default = adapter.new(local_hostname=None)
        assert default.local_hostname  # the host's FQDN or [address], looked up once
    assert srv.commands == [
        b"ehlo first.example.test",
        b"ehlo second.example.test",
        b"ehlo explicit.example.test",
        b"quit",
    ]


@all_adapters
async def test_ehlo_or_helo_if_needed(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.ehlo_or_helo_if_needed) is None
    assert smtp.does_esmtp
    assert smtp.ehlo_resp is not None and smtp.ehlo_resp.startswith(b"postfix.test\n")
    assert smtp.has_extn("pipelining")
    assert await adapter.call(smtp.quit) == BYE


def old_server(s: Session) -> None:
    s.reply("220 old.example.test SMTP")
    s.expect("ehlo client.example.test")
    s.reply("502 5.5.2 EHLO not implemented")
    s.expect("helo client.example.test")
    s.reply("250 old.example.test")
    s.expect("quit")
    s.reply("221 bye")


def hostile_server(s: Session) -> None:
    s.reply("220 hostile.example.test")
    s.expect("ehlo ")
    s.reply("550 5.7.1 Go away")
    s.expect("helo ")
    s.reply("550 5.7.1 Really, go away")
    s.expect("quit")
    s.reply("221 bye")


@all_adapters
async def test_ehlo_or_helo_if_needed_falls_back_to_helo(adapter: Adapter) -> None:
    with ScriptedServer(old_server) as server:
        smtp = await adapter.open(server.host, server.port)
        await adapter.call(smtp.ehlo_or_helo_if_needed)
        assert smtp.ehlo_resp == b"5.5.2 EHLO not implemented"
        assert smtp.helo_resp == b"old.example.test"
        assert smtp.does_esmtp is False
        assert await adapter.call(smtp.quit) == (221, b"bye")


@all_adapters
async def test_helo_error(adapter: Adapter) -> None:
    with ScriptedServer(hostile_server) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(SMTPHeloError) as info:
            await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"x\r\n")
        assert info.value.args == (550, b"5.7.1 Really, go away")
        assert await adapter.call(smtp.quit) == (221, b"bye")


# ---------------------------------------------------------------- simple commands


@all_adapters
async def test_docmd_putcmd_getreply(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.docmd, "NOOP") == OK
    assert await adapter.call(smtp.docmd, "VRFY", "alice") == (252, b"2.0.0 alice")
    assert await adapter.call(smtp.docmd, "XYZZY") == (500, b"5.5.2 Error: command not recognized")
    assert await adapter.call(smtp.putcmd, "noop") is None
    assert await adapter.call(smtp.getreply) == OK
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_verify_expn_help(
    adapter: Adapter, postfix: PostfixServer, aiosmtpd_server: AiosmtpdServer
) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.verify, "alice@example.test") == (
        252,
        b"2.0.0 alice@example.test",
    )
    assert await adapter.call(smtp.vrfy, "Bob Example <bob@example.test>") == (
        252,
        b"2.0.0 bob@example.test",
    )
    assert (await adapter.call(smtp.expn, "staff"))[0] in (500, 502)  # Postfix has no EXPN
    assert await adapter.call(smtp.quit) == BYE

    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    assert await adapter.call(smtp.expn, "staff") == (502, b"EXPN not implemented")
    assert (await adapter.call(smtp.help)).startswith(b"Supported commands: AUTH DATA EHLO HELO")
    assert await adapter.call(smtp.help, "NOOP") == b"Syntax: NOOP [ignored]"
    assert (await adapter.call(smtp.quit))[0] == 221


@all_adapters
async def test_verify_sends_the_bare_address(adapter: Adapter) -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        async with adapter.connected(server.host, server.port) as smtp:
            verified = await adapter.call(smtp.verify, "Alice Example <alice@example.test>")
            assert verified[0] == 252
            assert (await adapter.call(smtp.expn, "Staff <staff@example.test>"))[0] == 502
            assert (await adapter.call(smtp.help))[:3] == b"Com"
    assert srv.commands == [
        b"vrfy alice@example.test",
        b"expn staff@example.test",
        b"help",
        b"QUIT",
    ]


@all_adapters
async def test_rset_and_noop(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.noop) == OK
    await adapter.call(smtp.ehlo)
    assert (await adapter.call(smtp.mail, "sender@example.test"))[0] == 250
    assert (await adapter.call(smtp.mail, "again@example.test"))[0] == 503  # nested MAIL
    assert await adapter.call(smtp.rset) == OK
    assert (await adapter.call(smtp.mail, "again@example.test"))[0] == 250  # reset worked
    assert await adapter.call(smtp.rset) == OK
    assert await adapter.call(smtp.quit) == BYE


# ---------------------------------------------------------------- a transaction by hand


@all_adapters
async def test_mail_rcpt_data(
    adapter: Adapter, postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    await adapter.call(smtp.ehlo)
    assert await adapter.call(smtp.mail, "by-hand@example.test", ["BODY=8BITMIME"]) == (
        250,
        b"2.1.0 Ok",
    )
    assert await adapter.call(smtp.rcpt, "first@example.test", ["NOTIFY=NEVER"]) == (
        250,
        b"2.1.5 Ok",
    )
    code, text = await adapter.call(smtp.rcpt, "reject-this@example.test")
    assert code == 550 and text.startswith(b"5.1.1 <reject-this@example.test>")
    assert await adapter.call(smtp.rcpt, "second@example.test") == (250, b"2.1.5 Ok")
    code, text = await adapter.call(smtp.data, f"Subject: {token}\n\n.leading dot\nend\n")
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    assert await adapter.call(smtp.quit) == BYE
    delivered = postfix_delivered(token, 2)
    recipients = sorted(m.split(b"Delivered-To: ")[1].split(b"\n")[0] for m in delivered)
    assert recipients == [b"first@example.test", b"second@example.test"]
    for message in delivered:
        assert b"Return-Path: <by-hand@example.test>\n" in message
        assert message.endswith(b"\n\n.leading dot\nend\n")  # dot-stuffed, then unstuffed


@all_adapters
async def test_data_without_354_raises(adapter: Adapter, aiosmtpd_server: AiosmtpdServer) -> None:
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    await adapter.call(smtp.ehlo)
    with pytest.raises(SMTPDataError) as info:
        await adapter.call(smtp.data, b"no transaction\r\n")
    assert info.value.smtp_code == 503
    assert await adapter.call(smtp.noop) == (250, b"OK")
    assert (await adapter.call(smtp.quit))[0] == 221
    assert aiosmtpd_server.messages() == []


# ---------------------------------------------------------------- sendmail and send_message


@all_adapters
async def test_sendmail_refused_dict(
    adapter: Adapter, postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    recipients = ["good@example.test", "reject-x@example.test", "tempfail-y@example.test"]
    smtp = await adapter.open(postfix.host, postfix.port)
    refused = await adapter.call(
        smtp.sendmail, "sender@example.test", recipients, f"Subject: {token}\r\n\r\nbody\r\n"
    )
    assert set(refused) == {"reject-x@example.test", "tempfail-y@example.test"}
    code, text = refused["reject-x@example.test"]
    assert code == 550 and text.startswith(b"5.1.1 <reject-x@example.test>")
    assert refused["tempfail-y@example.test"][0] == 451
    assert all(isinstance(text, bytes) for _, text in refused.values())
    assert await adapter.call(smtp.noop) == OK  # still in step
    assert await adapter.call(smtp.quit) == BYE
    (message,) = postfix_delivered(token)
    assert b"Delivered-To: good@example.test\n" in message


@all_adapters
async def test_sendmail_all_refused(adapter: Adapter, aiosmtpd_server: AiosmtpdServer) -> None:
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    with pytest.raises(SMTPRecipientsRefused) as info:
        await adapter.call(
            smtp.sendmail, "a@example.test", ["reject-1@x.test", "tempfail-2@x.test"], b"x\r\n"
        )
    assert {k: v[0] for k, v in info.value.recipients.items()} == {
        "reject-1@x.test": 550,
        "tempfail-2@x.test": 451,
    }
    # The next transaction works; a single recipient may be a string, the message a str.
    assert await adapter.call(smtp.sendmail, "a@example.test", "ok@x.test", "Subject: s\n\nx") == {}
    assert (await adapter.call(smtp.quit))[0] == 221
    (record,) = aiosmtpd_server.messages()
    assert record.rcpt_tos == ["ok@x.test"]
    assert record.content == b"Subject: s\r\n\r\nx\r\n"
    assert record.mail_options == ["SIZE=15"]  # as smtplib: the final CRLF is not counted


@all_adapters
async def test_large_message_round_trip(adapter: Adapter, aiosmtpd_server: AiosmtpdServer) -> None:
    """Some megabytes, so writes outrun the socket buffers and flow control is exercised."""
    lines = b"".join(b".%06d " % n + b"x" * 70 + b"\r\n" for n in range(40000))
    message = b"Subject: large\r\n\r\n" + lines
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    assert await adapter.call(smtp.sendmail, "a@example.test", ["b@example.test"], message) == {}
    assert await adapter.call(smtp.noop) == (250, b"OK")
    assert (await adapter.call(smtp.quit))[0] == 221
    (record,) = aiosmtpd_server.messages()
    assert record.content == message  # dot-stuffed on the way, unstuffed by the server


def bcc_message(token: str) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = "To Person <to@example.test>"
    msg["Cc"] = "cc@example.test"
    msg["Bcc"] = "Hidden <hidden@example.test>"
    msg["Subject"] = f"bcc check {token}"
    msg.set_content("Nobody sees the Bcc line.\n")
    return msg


@all_adapters
async def test_send_message_does_not_transmit_bcc(
    adapter: Adapter,
    aiosmtpd_server: AiosmtpdServer,
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    token: str,
) -> None:
    msg = bcc_message(token)
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    assert await adapter.call(smtp.send_message, msg) == {}
    assert (await adapter.call(smtp.quit))[0] == 221
    (record,) = aiosmtpd_server.messages()
    assert record.mail_from == "sender@example.test"
    assert record.rcpt_tos == ["to@example.test", "hidden@example.test", "cc@example.test"]
    assert b"\nBcc:" not in record.content and b"hidden@" not in record.content
    assert b"To: To Person <to@example.test>\r\nCc: cc@example.test\r\n" in record.content
    assert msg["Bcc"] == "Hidden <hidden@example.test>"  # the caller's message is unchanged

    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.send_message, msg) == {}
    assert await adapter.call(smtp.quit) == BYE
    delivered = postfix_delivered(token, 3)
    assert len(delivered) == 3
    for message in delivered:
        assert b"\nBcc:" not in message and b"Hidden <" not in message
        assert b"Nobody sees the Bcc line." in message
    assert b"Delivered-To: hidden@example.test\n" in b"".join(delivered)


@all_adapters
async def test_send_message_explicit_envelope(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "header-from@example.test"
    msg["To"] = "header-to@example.test"
    msg.set_content("envelope given\n")
    async with adapter.connected(aiosmtpd_server.host, aiosmtpd_server.port) as smtp:
        await adapter.call(smtp.send_message, msg, "env-from@example.test", ["env-to@example.test"])
    (record,) = aiosmtpd_server.messages()
    assert record.mail_from == "env-from@example.test"
    assert record.rcpt_tos == ["env-to@example.test"]


# ---------------------------------------------------------------- attributes, SMTPUTF8


@all_adapters
async def test_command_encoding_follows_smtputf8(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    await adapter.call(smtp.ehlo)
    assert smtp.command_encoding == "ascii"
    with pytest.raises(ValueError):  # a non-ASCII address needs SMTPUTF8
        await adapter.call(smtp.mail, "jörg@example.test")
    assert await adapter.call(smtp.mail, "jörg@example.test", ["SMTPUTF8"]) == (250, b"OK")
    assert smtp.command_encoding == "utf-8"
    assert (await adapter.call(smtp.rcpt, "zoë@example.test"))[0] == 250
    assert (await adapter.call(smtp.data, "Subject: utf8\r\n\r\nbody\r\n"))[0] == 250
    assert (await adapter.call(smtp.rset))[0] == 250
    assert smtp.command_encoding == "ascii"
    assert (await adapter.call(smtp.quit))[0] == 221
    (record,) = aiosmtpd_server.messages()
    assert (record.mail_from, record.rcpt_tos) == ("jörg@example.test", ["zoë@example.test"])
    assert record.smtp_utf8 is True


@all_adapters
async def test_smtputf8_sendmail_to_postfix(
    adapter: Adapter, postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    refused = await adapter.call(
        smtp.sendmail,
        "jörg@example.test",
        ["zoë@example.test"],
        f"Subject: {token}\r\n\r\nGrüße\r\n".encode(),
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    assert refused == {}
    assert smtp.command_encoding == "utf-8"
    assert await adapter.call(smtp.quit) == BYE
    (message,) = postfix_delivered(token)
    assert "Delivered-To: zoë@example.test\n".encode() in message
    assert "Return-Path: <jörg@example.test>\n".encode() in message
    assert "\n\nGrüße\n".encode() in message


@all_adapters
async def test_send_message_international_uses_smtputf8(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <jörg@example.test>"
    msg["To"] = "zoë@example.test"
    msg["Subject"] = "Grüße"
    msg.set_content("Schöne Grüße\n")
    async with adapter.connected(aiosmtpd_server.host, aiosmtpd_server.port) as smtp:
        assert await adapter.call(smtp.send_message, msg) == {}
    (record,) = aiosmtpd_server.messages()
    assert record.smtp_utf8 is True
    assert record.mail_from == "jörg@example.test"
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(record.mail_options)


@all_adapters
async def test_attributes_through_a_session(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    smtp = adapter.new()
    assert (smtp.helo_resp, smtp.ehlo_resp, smtp.does_esmtp) == (None, None, False)
    assert (smtp.esmtp_features, smtp.user, smtp.password) == ({}, None, None)
    assert smtp.command_encoding == "ascii"
    assert smtp.local_hostname == LOCAL_NAME
    await adapter.call(smtp.connect, aiosmtpd_server.host, aiosmtpd_server.port)
    await adapter.call(smtp.ehlo)
    assert smtp.ehlo_resp.startswith(b"aiosmtpd.test\n") and smtp.helo_resp is None
    assert smtp.does_esmtp and smtp.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
    assert await adapter.call(smtp.login, UTF8_USER, UTF8_PASSWORD) == (
        235,
        b"2.7.0 Authentication successful",
    )
    assert (smtp.user, smtp.password) == (UTF8_USER, UTF8_PASSWORD)
    assert await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"x\r\n") == {}
    assert (await adapter.call(smtp.quit))[0] == 221
    assert (smtp.ehlo_resp, smtp.does_esmtp, smtp.esmtp_features) == (None, False, {})
    (record,) = aiosmtpd_server.messages()
    assert record.auth_user == UTF8_USER
    assert record.helo == LOCAL_NAME


@all_adapters
async def test_set_debuglevel_prints_the_transcript(
    adapter: Adapter, capfd: pytest.CaptureFixture[str]
) -> None:
    with ScriptedServer(StandardESMTP()) as server:
        smtp = await adapter.open(server.host, server.port)
        smtp.set_debuglevel(1)
        assert smtp.debuglevel == 1
        await adapter.call(smtp.noop)
        await adapter.call(smtp.quit)
    err = capfd.readouterr().err
    assert "send: 'noop\\r\\n'" in err
    assert "reply: retcode (250); Msg: b'2.0.0 OK'" in err


# ---------------------------------------------------------------- AUTH


@all_adapters
@pytest.mark.parametrize(
    ("user", "password"),
    [("testuser", "testpass"), (UTF8_USER, UTF8_PASSWORD)],
    ids=["ascii", "utf8"],
)
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_login_with_the_only_advertised_mechanism(
    adapter: Adapter, mechanism: str, user: str, password: str
) -> None:
    srv = StandardESMTP(auth={user: password}, features=["PIPELINING", f"AUTH {mechanism}"])
    with ScriptedServer(srv) as server:
        smtp = await adapter.open(server.host, server.port)
        assert await adapter.call(smtp.login, user, password) == AUTHENTICATED
        assert (smtp.user, smtp.password) == (user, password)
        await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"Subject: x\r\n\r\n")
        await adapter.call(smtp.quit)
    assert srv.authenticated == [user]
    assert srv.commands[0] == b"ehlo " + LOCAL_NAME.encode()
    assert srv.commands[1].startswith(f"AUTH {mechanism}".encode())
    assert len(srv.envelopes) == 1


@all_adapters
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_login_sends_what_stdlib_sends(adapter: Adapter, mechanism: str) -> None:
    """login() puts the same lines on the wire as smtplib's login() (initial responses included)."""
    wires = []
    for client in ("stdlib", "adapter"):
        srv = StandardESMTP(auth={"testuser": "testpass"}, features=[f"AUTH {mechanism}"])
        with ScriptedServer(srv) as server:
            if client == "stdlib":
                theirs = stdlib_smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME)
                assert theirs.login("testuser", "testpass")[0] == 235
                theirs.quit()
            else:
                smtp = await adapter.open(server.host, server.port)
                assert (await adapter.call(smtp.login, "testuser", "testpass"))[0] == 235
                await adapter.call(smtp.quit)
            await adapter.sessions_done(server)
        assert srv.authenticated == ["testuser"]
        wires.append(bytes(server.sessions[0].received))
    assert wires[1] == wires[0]


@all_adapters
async def test_login_postfix(
    adapter: Adapter, postfix: PostfixServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="smtp_proto")
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.login, "testuser", "testpass") == AUTHENTICATED
    assert (smtp.user, smtp.password) == ("testuser", "testpass")
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("send:")]
    assert "send: 'AUTH CRAM-MD5'" in sent  # Postfix's strongest mechanism is chosen
    # A second AUTH is refused with 503, which login()/auth() return instead of raising.
    assert await adapter.call(smtp.login, "testuser", "testpass") == (
        503,
        b"5.5.1 Error: already authenticated",
    )
    assert await adapter.call(smtp.quit) == BYE
    smtp = await adapter.open(postfix.host, postfix.port)
    assert await adapter.call(smtp.login, UTF8_USER, UTF8_PASSWORD) == AUTHENTICATED
    assert await adapter.call(smtp.quit) == BYE
    smtp = await adapter.open(postfix.host, postfix.port)
    with pytest.raises(SMTPAuthenticationError) as info:
        await adapter.call(smtp.login, UTF8_USER, "passwörd")
    assert info.value.smtp_code == 535
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
@pytest.mark.parametrize(
    ("user", "password"),
    [("testuser", "testpass"), (UTF8_USER, UTF8_PASSWORD)],
    ids=["ascii", "utf8"],
)
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_auth_with_an_authobject(
    adapter: Adapter, postfix: PostfixServer, mechanism: str, user: str, password: str
) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    await adapter.call(smtp.ehlo)
    smtp.user, smtp.password = user, password
    authobject = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
    assert await adapter.call(smtp.auth, mechanism, authobject) == AUTHENTICATED
    assert await adapter.call(smtp.quit) == BYE

    for initial_response_ok in (True, False):  # a sasl mechanism, with and without an IR
        smtp = await adapter.open(postfix.host, postfix.port)
        await adapter.call(smtp.ehlo)
        mech = sasl.mechanism_for(mechanism, user, password)
        reply = await adapter.call(
            smtp.auth, mechanism, mech, initial_response_ok=initial_response_ok
        )
        assert reply == AUTHENTICATED
        assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_auth_wrong_password(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    await adapter.call(smtp.ehlo)
    with pytest.raises(SMTPAuthenticationError) as info:
        await adapter.call(smtp.auth, "PLAIN", sasl.Plain("testuser", "nope"))
    assert info.value.smtp_code == 535
    assert await adapter.call(smtp.auth, "PLAIN", sasl.Plain("testuser", "testpass")) == (
        AUTHENTICATED
    )
    assert await adapter.call(smtp.quit) == BYE


# ---------------------------------------------------------------- STARTTLS and SMTP_SSL


@all_adapters
async def test_starttls_postfix_forgets_and_relearns(
    adapter: Adapter,
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tls_ca: LocalCA,
    token: str,
) -> None:
    smtp = await adapter.open(postfix.host, postfix.port)
    await adapter.call(smtp.ehlo)
    assert smtp.has_extn("starttls")
    plain_features = dict(smtp.esmtp_features)
    assert await adapter.call(smtp.starttls, context=tls_ca.client_context()) == (
        220,
        b"2.0.0 Ready to start TLS",
    )
    if not adapter.is_async:  # smtplib's documented ``sock`` is the TLS socket now
        assert isinstance(smtp.sock, ssl.SSLSocket)
        assert smtp.sock.version() is not None
    assert smtp.ehlo_resp is None and smtp.helo_resp is None
    assert smtp.esmtp_features == {} and smtp.does_esmtp is False
    assert (await adapter.call(smtp.ehlo))[0] == 250
    assert smtp.does_esmtp and not smtp.has_extn("starttls")
    assert set(smtp.esmtp_features) == set(plain_features) - {"starttls"}
    with pytest.raises(SMTPNotSupportedError):
        await adapter.call(smtp.starttls, context=tls_ca.client_context())
    assert await adapter.call(smtp.login, "testuser", "testpass") == AUTHENTICATED
    message = f"Subject: {token}\n\n"
    assert await adapter.call(smtp.sendmail, "tls@example.test", "r@example.test", message) == {}
    assert await adapter.call(smtp.quit) == BYE
    (delivered,) = postfix_delivered(token)
    assert b"with ESMTPSA id" in delivered
    assert b"(using TLS" in delivered


@all_adapters
async def test_starttls_aiosmtpd_greets_as_needed(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer, tls_ca: LocalCA
) -> None:
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
    assert smtp.esmtp_features == {}
    await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"Subject: tls\r\n\r\n")
    assert smtp.does_esmtp
    assert not smtp.has_extn("starttls") and smtp.has_extn("auth")
    assert (await adapter.call(smtp.quit))[0] == 221
    (record,) = aiosmtpd_server.messages()
    assert record.tls is True
    assert record.helo == LOCAL_NAME


def injecting_tls_server(s: Session) -> None:
    """Answers STARTTLS with its 220 and, in the same write, a reply meant for later."""
    s.reply("220 tls.example.test ESMTP")
    s.expect("ehlo ")
    s.reply("250-tls.example.test", "250 STARTTLS")
    s.expect("starttls")
    s.reply("220 2.0.0 Go ahead", "250 injected before TLS")
    s.read_until_eof()


@all_adapters
async def test_starttls_refuses_data_sent_before_the_handshake(adapter: Adapter) -> None:
    with ScriptedServer(injecting_tls_server) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(RemoteProtocolError, match="after its 220 to STARTTLS"):
            await adapter.call(smtp.starttls)
        assert not adapter.is_connected(smtp)
    assert bytes(server.sessions[0].received).endswith(b"STARTTLS\r\n")  # no TLS hello sent


def assert_verification_failed(error: BaseException) -> None:
    """An ``ssl`` error saying the test CA's certificate could not be verified."""
    assert isinstance(error, ssl.SSLError), repr(error)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error), str(error)


@all_adapters
@pytest.mark.parametrize("server_name", ["postfix", "aiosmtpd_server"])
async def test_starttls_without_context_fails_verification(
    adapter: Adapter, request: pytest.FixtureRequest, tls_ca: LocalCA, server_name: str
) -> None:
    server = request.getfixturevalue(server_name)
    smtp = await adapter.open(server.host, server.port)
    await adapter.call(smtp.ehlo)
    with pytest.raises(ssl.SSLError) as info:
        await adapter.call(smtp.starttls)
    assert_verification_failed(info.value)
    assert not adapter.is_connected(smtp)
    with pytest.raises(SMTPServerDisconnected):
        await adapter.call(smtp.noop)

    assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
    assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
    await adapter.call(smtp.ehlo)
    assert not smtp.has_extn("starttls")
    assert (await adapter.call(smtp.noop))[0] == 250
    assert (await adapter.call(smtp.quit))[0] == 221


@all_adapters
async def test_starttls_checks_the_name_given_to_connect(adapter: Adapter, tls_ca: LocalCA) -> None:
    """``SMTP()`` and then ``connect(host)``: the certificate is checked against ``host``.
    (``smtplib`` keeps the constructor's empty name and its ``starttls()`` fails with a
    ``ValueError`` there, whatever the certificate.)  A certificate for ``localhost`` only is
    good for ``connect("localhost")`` and wrong for ``connect("127.0.0.1")``."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.ca.issue_cert("localhost").configure_cert(server_context)
    with CaptureServer(tls_context=server_context) as server:
        smtp = adapter.new()
        await adapter.call(smtp.connect, "127.0.0.1", server.port)
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            await adapter.call(smtp.starttls, context=tls_ca.client_context())
        assert not adapter.is_connected(smtp)

        await adapter.call(smtp.connect, "localhost", server.port)
        assert (await adapter.call(smtp.starttls, context=tls_ca.client_context()))[0] == 220
        assert await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"x") == {}
        assert (await adapter.call(smtp.quit))[0] == 221
    (received,) = server.messages
    assert received.tls


@all_adapters
async def test_smtp_ssl_postfix(
    adapter: Adapter,
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tls_ca: LocalCA,
    token: str,
) -> None:
    smtp = await adapter.open_ssl(postfix.host, postfix.smtps_port, context=tls_ca.client_context())
    assert (await adapter.call(smtp.ehlo))[0] == 250
    assert not smtp.has_extn("starttls")  # already encrypted
    assert await adapter.call(smtp.login, "testuser", "testpass") == AUTHENTICATED
    message = f"Subject: {token}\n\n"
    assert await adapter.call(smtp.sendmail, "ssl@example.test", "r@example.test", message) == {}
    assert await adapter.call(smtp.quit) == BYE
    (delivered,) = postfix_delivered(token)
    assert b"with ESMTPSA id" in delivered and b"(using TLS" in delivered


@all_adapters
async def test_smtp_ssl_verifies_by_default(adapter: Adapter, postfix: PostfixServer) -> None:
    smtp = adapter.new("SMTP_SSL")
    with pytest.raises(ssl.SSLError) as info:
        await adapter.call(smtp.connect, postfix.host, postfix.smtps_port)
    assert_verification_failed(info.value)
    assert not adapter.is_connected(smtp)


@all_adapters
async def test_smtp_ssl_context_manager_host_port_string(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer, tls_ca: LocalCA
) -> None:
    where = f"127.0.0.1:{aiosmtpd_server.smtps_port}"
    async with adapter.connected(where, kind="SMTP_SSL", context=tls_ca.client_context()) as smtp:
        assert (await adapter.call(smtp.ehlo))[0] == 250
        assert not smtp.has_extn("starttls")
        await adapter.call(smtp.sendmail, "a@example.test", "b@example.test", b"Subject: s\r\n\r\n")
    assert not adapter.is_connected(smtp)
    (record,) = aiosmtpd_server.messages()
    assert record.tls is True


@all_adapters
async def test_commands_are_not_held_back_by_nagle(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """TCP_NODELAY on every adapter's TCP connection: a command written after a large write
    (BDAT's next header after a chunk) must not wait for the server's delayed ACK."""
    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    sock = _connection_socket(adapter, smtp)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await adapter.call(smtp.quit)
