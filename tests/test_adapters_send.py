"""The high-level ``send`` on every adapter, against Postfix and the scripted server: secure
defaults, DSN, BDAT/BINARYMIME, SIZE and async bodies (LMTP's results: ``test_lmtp.py``)."""

from __future__ import annotations

import email
import email.message
import email.policy
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from smtp_proto.transports.testing import CaptureServer

from smtp_proto import DSN, RecipientDSN, SendResult, SMTPSecurityError
from smtp_proto.body import PIECE_SIZE
from smtp_proto.errors import (
    SMTPDataError,
    SMTPMessageTooLarge,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
)
from smtp_proto.send import SMTPAllRecipientsRefused, SMTPAuthNotSupportedError
from tests.adapters import LOCAL_NAME, Adapter, all_adapters, async_adapters, send
from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

SENDER = "sender@example.test"
EHLO = f"ehlo {LOCAL_NAME}".encode()
ESMTP = ("PIPELINING", "8BITMIME", "SIZE 100000", "ENHANCEDSTATUSCODES")


async def refused_after_ehlo(
    adapter: Adapter, features: tuple[str, ...], message: Any, **options: Any
) -> SMTPNotSupportedError:
    """What ``send`` (no TLS) to a server offering ``features`` raises, having checked that
    the server received nothing but EHLO."""
    handler = StandardESMTP(features=features)
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPNotSupportedError) as caught:
            await send(adapter, message, server.host, server.port, tls="none", **options)
        await adapter.sessions_done(server)
    assert handler.commands == [EHLO]
    return caught.value


def email_message(sender: str, to: str, subject: str, body: str = "hello\n") -> Any:
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


# ---------------------------------------------------------------- Postfix


@all_adapters
async def test_starttls_auth_delivers_and_reports_each_recipient(
    adapter: Adapter, postfix: PostfixServer, tls_ca: LocalCA, token: str
) -> None:
    message = email_message(SENDER, "ok@example.test, reject-me@example.test", token)
    result = await send(
        adapter,
        message,
        postfix.host,
        postfix.submission_port,  # STARTTLS and AUTH required here
        context=tls_ca.client_context(),
        username="testuser",
        password="testpass",
    )
    assert isinstance(result, SendResult)
    assert list(result.accepted) == ["ok@example.test"]
    assert result.accepted["ok@example.test"].code == 250
    refusal = result.refused["reject-me@example.test"]
    assert (refusal.code, str(refusal.enhanced_status)) == (550, "5.1.1")
    assert not result.ok
    assert result.data_reply is not None and result.data_reply.code == 250
    assert result.queue_id and result.queue_id.encode() in result.data_reply.text
    delivered = postfix.wait_for_message(lambda m: token.encode() in m and b"ok@" in m)
    assert f"with ESMTPSA id {result.queue_id}".encode() in delivered  # TLS, authenticated


@all_adapters
async def test_implicit_tls_with_bdat(
    adapter: Adapter, postfix: PostfixServer, tls_ca: LocalCA, token: str
) -> None:
    message = email_message(SENDER, "implicit@example.test", token, "x" * (PIECE_SIZE * 2))
    result = await send(
        adapter,
        message,
        postfix.host,
        postfix.smtps_port,
        tls="implicit",
        context=tls_ca.client_context(),
        username="testuser",
        password="testpass",
    )
    assert result.ok and result.queue_id
    delivered = postfix.wait_for_message(lambda m: token.encode() in m)
    assert b"with ESMTPSA id" in delivered


@all_adapters
async def test_dsn_request_comes_back_as_a_notification(
    adapter: Adapter, postfix: PostfixServer, tls_ca: LocalCA, token: str
) -> None:
    sender = f"dsn-{token}@example.test"  # delivered to the same Maildir: we read the DSN
    recipient = f"rcpt-{token}@example.test"
    envid = f"env {token} +="
    original = f"original+{token} x@example.test"
    request = DSN(
        ret="HDRS",
        envid=envid,
        recipients={recipient: RecipientDSN(notify=("SUCCESS", "FAILURE"), orcpt=original)},
    )
    message = email_message(sender, recipient, f"dsn {token}", "the body stays home\n")
    result = await send(
        adapter,
        message,
        postfix.host,
        postfix.port,
        context=tls_ca.client_context(),
        username="testuser",
        password="testpass",
        dsn=request,
    )
    assert result.ok
    raw = postfix.wait_for_message(lambda m: b"Return-Path: <>" in m and token.encode() in m)
    notification = email.message_from_bytes(raw, policy=email.policy.default)
    assert notification.get_content_type() == "multipart/report"
    assert notification["To"] == sender
    parts = {part.get_content_type(): part for part in notification.walk()}
    status = parts["message/delivery-status"].get_payload()
    per_message, per_recipient = status[0], status[1]
    assert per_message["Original-Envelope-Id"] == envid
    assert per_message["X-Postfix-Queue-ID"] == result.queue_id
    assert per_recipient["Original-Recipient"] == f"rfc822;{original}"
    assert per_recipient["Final-Recipient"] == f"rfc822; {recipient}"
    assert per_recipient["Action"] == "delivered"
    assert "text/rfc822-headers" in parts  # RET=HDRS: headers only, not the body
    assert b"the body stays home" not in raw


@all_adapters
async def test_message_over_the_size_limit_is_refused_before_mail(
    adapter: Adapter, postfix: PostfixServer, tls_ca: LocalCA
) -> None:
    body = b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n"
    big = body * (10240000 // len(body) + 1)
    with pytest.raises(SMTPMessageTooLarge) as caught:
        await send(
            adapter,
            big,
            postfix.host,
            postfix.port,
            sender=SENDER,
            recipients=["big@example.test"],
            context=tls_ca.client_context(),
        )
    assert (caught.value.size, caught.value.limit) == (len(big), 10240000)


# ---------------------------------------------------------------- secure defaults


def no_starttls_server(**options: Any) -> StandardESMTP:
    return StandardESMTP(features=ESMTP, auth={"user": "secret"}, **options)


@all_adapters
@pytest.mark.parametrize("tls", ["auto", "starttls"])
async def test_no_starttls_means_nothing_sent_beyond_ehlo(adapter: Adapter, tls: str) -> None:
    handler = no_starttls_server()
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPSecurityError, match="STARTTLS"):
            await send(
                adapter,
                b"Subject: s\r\n\r\nsecret\r\n",
                server.host,
                server.port,
                tls=tls,
                sender=SENDER,
                recipients="r@example.test",
                username="user",
                password="secret",
            )
        await adapter.sessions_done(server)
    assert handler.commands == [EHLO]
    assert b"secret" not in bytes(server.sessions[0].received)
    assert isinstance(SMTPSecurityError("x"), SMTPNotSupportedError)


@all_adapters
async def test_credentials_not_sent_in_clear_text_unless_allowed(adapter: Adapter) -> None:
    handler = no_starttls_server()
    options: dict[str, Any] = {
        "tls": "opportunistic",
        "sender": SENDER,
        "recipients": "r@example.test",
        "username": "user",
        "password": "secret",
    }
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPSecurityError, match="credentials"):
            await send(adapter, b"Subject: s\r\n\r\n", server.host, server.port, **options)
        await adapter.sessions_done(server)
        assert handler.commands == [EHLO] and handler.authenticated == []
        result = await send(
            adapter, b"Subject: s\r\n\r\n", server.host, server.port, plaintext_auth=True, **options
        )
    assert result.ok and handler.authenticated == ["user"]
    assert [e.rcpt_tos for e in handler.envelopes] == [["r@example.test"]]


@all_adapters
async def test_plaintext_without_credentials_when_relaxed(adapter: Adapter) -> None:
    handler = StandardESMTP(features=ESMTP)
    with ScriptedServer(handler) as server:
        result = await send(
            adapter,
            email_message(SENDER, "r@example.test", "plain"),
            server.host,
            server.port,
            tls="none",
        )
    assert result.ok and result.data_reply is not None
    assert handler.commands[-1] == b"quit"
    assert handler.envelopes[0].mail_options == [f"size={len(handler.envelopes[0].data)}"]


# ---------------------------------------------------------------- body types and extensions


BINARY = (
    b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\rbare CR\nbare LF\r\n" + b"y" * 2000
)


@all_adapters
async def test_binary_body_goes_as_binarymime_unchanged(adapter: Adapter) -> None:
    handler = StandardESMTP(features=(*ESMTP, "BINARYMIME"), chunking=True)
    with ScriptedServer(handler) as server:
        result = await send(
            adapter, BINARY, server.host, server.port, tls="none", sender=SENDER, recipients="r@x"
        )
    assert result.ok
    (envelope,) = handler.envelopes
    assert envelope.via == "BDAT" and envelope.data == BINARY
    assert "BODY=BINARYMIME" in envelope.mail_options


@all_adapters
@pytest.mark.parametrize("features", [(*ESMTP, "BINARYMIME"), (*ESMTP, "CHUNKING")])
async def test_binary_body_refused_without_binarymime_and_chunking(
    adapter: Adapter, features: tuple[str, ...]
) -> None:
    error = await refused_after_ehlo(adapter, features, BINARY, sender=SENDER, recipients="r")
    assert "BINARYMIME" in str(error)


@all_adapters
async def test_a_large_message_over_starttls_arrives_byte_for_byte(
    adapter: Adapter, tls_ca: LocalCA
) -> None:
    """Several BDAT chunks, each a view of the caller's bytes, through each adapter's TLS
    writes: the server stores exactly the message."""
    lines = [b"%06d " % n + b"y" * 70 for n in range(4 * PIECE_SIZE // 78)]
    message = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    with CaptureServer(tls_context=tls_ca.server_context()) as server:
        result = await send(
            adapter,
            message,
            server.host,
            server.port,
            sender="a@x.test",
            recipients=["b@x.test"],
            context=tls_ca.client_context(),
        )
    assert result.ok
    (received,) = server.messages
    assert received.chunked and received.tls
    assert received.data == message


@all_adapters
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("size", ["small", "large"])
async def test_sendmail_binarymime_forces_bdat_even_with_chunking_off(
    adapter: Adapter, pipelining: bool, size: str
) -> None:
    features = ("PIPELINING", "BINARYMIME") if pipelining else ("BINARYMIME",)
    handler = StandardESMTP(features=features, chunking=True)
    body = BINARY if size == "small" else BINARY * (5 * PIECE_SIZE // (2 * len(BINARY)))
    # A large one streamed, so read and sent a piece (a chunk) at a time.
    source = body if size == "small" else io.BytesIO(body)
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        smtp.chunking = False
        refused = await adapter.call(
            smtp.sendmail, SENDER, ["r@x"], source, mail_options=["BODY=BINARYMIME"]
        )
        assert refused == {}
        await adapter.call(smtp.quit)
    (envelope,) = handler.envelopes
    assert envelope.via == "BDAT" and envelope.data == body
    chunks = [command for command in handler.commands if command.startswith(b"BDAT")]
    assert len(chunks) == (1 if size == "small" else 3)


@all_adapters
async def test_sendmail_binarymime_without_chunking_sends_nothing(adapter: Adapter) -> None:
    handler = StandardESMTP(features=(*ESMTP, "BINARYMIME"))
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        await adapter.call(smtp.ehlo)
        with pytest.raises(SMTPNotSupportedError, match="CHUNKING"):
            await adapter.call(smtp.sendmail, SENDER, ["r@x"], b"x", ["BODY=BINARYMIME"])
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")  # still usable
        await adapter.call(smtp.quit)
    assert handler.commands == [EHLO, b"noop", b"quit"]


@all_adapters
async def test_eight_bit_and_international_messages_get_their_parameters(
    adapter: Adapter,
) -> None:
    handler = StandardESMTP(features=(*ESMTP, "SMTPUTF8"))
    message = email_message(
        "J\u00f6rg <j\u00f6rg@example.test>", "r@example.test", "gr\u00fc\u00df"
    )
    message.policy = email.policy.SMTPUTF8
    with ScriptedServer(handler) as server:
        await send(adapter, message, server.host, server.port, tls="none")
        await send(
            adapter,
            "Subject: s\r\n\r\nna\u00efve\r\n",
            server.host,
            server.port,
            tls="none",
            sender=SENDER,
            recipients="r@x",
        )
    first, second = handler.envelopes
    assert first.mail_from == "j\u00f6rg@example.test"
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(first.mail_options)
    assert second.mail_options[1:] == ["BODY=8BITMIME"]


@all_adapters
async def test_international_envelope_refused_without_smtputf8(adapter: Adapter) -> None:
    error = await refused_after_ehlo(adapter, ESMTP, b"s", sender="\u00e9@x", recipients="r")
    assert "SMTPUTF8" in str(error)


@all_adapters
async def test_dsn_refused_locally_when_not_advertised(adapter: Adapter) -> None:
    request = DSN(notify="NEVER")
    error = await refused_after_ehlo(
        adapter, ESMTP, b"s", sender=SENDER, recipients="r", dsn=request
    )
    assert "DSN" in str(error)


@all_adapters
async def test_dsn_parameters_per_recipient(adapter: Adapter) -> None:
    handler = StandardESMTP(features=(*ESMTP, "DSN"))
    request = DSN(envid="id+1", notify="FAILURE", recipients={"b@x": RecipientDSN(notify="NEVER")})
    with ScriptedServer(handler) as server:
        result = await send(
            adapter,
            b"Subject: s\r\n\r\n",
            server.host,
            server.port,
            tls="none",
            sender=SENDER,
            recipients=["a@x", "b@x"],
            dsn=request,
        )
    assert list(result.accepted) == ["a@x", "b@x"]
    (envelope,) = handler.envelopes
    assert envelope.mail_options[1:] == ["ENVID=id+2B1"]
    assert envelope.rcpt_options == [["NOTIFY=FAILURE"], ["NOTIFY=NEVER"]]


@all_adapters
async def test_every_recipient_refused_raises(adapter: Adapter) -> None:
    handler = StandardESMTP(features=ESMTP, reject=lambda address: (550, "5.1.1 no such user"))
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPAllRecipientsRefused) as caught:
            await send(
                adapter, b"s", server.host, server.port, tls="none", sender=SENDER, recipients="r"
            )
        await adapter.sessions_done(server)
    assert isinstance(caught.value, SMTPRecipientsRefused)  # what sendmail raises
    assert caught.value.recipients == {"r": (550, b"5.1.1 no such user")}
    result = caught.value.result
    assert (result.accepted, result.refused["r"].code, result.data_reply) == ({}, 550, None)
    assert handler.envelopes == []
    assert handler.commands[-2:] == [b"rset", b"quit"]  # the session still ends politely


@all_adapters
async def test_credentials_the_server_cannot_take_raise_their_own_error(adapter: Adapter) -> None:
    credentials = {"username": "user", "password": "secret", "plaintext_auth": True}
    error = await refused_after_ehlo(  # ESMTP offers no AUTH
        adapter, ESMTP, b"s", sender=SENDER, recipients="r", **credentials
    )
    assert isinstance(error, SMTPAuthNotSupportedError)
    assert str(error) == "SMTP AUTH extension not supported by server."


@all_adapters
async def test_debuglevel_prints_the_transcript_without_the_credentials(
    adapter: Adapter, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = StandardESMTP(features=ESMTP, auth={"user": "secret"})
    options: dict[str, Any] = {
        "tls": "none",
        "plaintext_auth": True,
        "sender": SENDER,
        "recipients": "r@x",
        "username": "user",
        "password": "secret",
        "mechanism": "PLAIN",
    }
    with ScriptedServer(handler) as server:
        await send(adapter, b"Subject: s\r\n\r\n", server.host, server.port, **options)
        assert capsys.readouterr().err == ""  # silent by default
        await send(
            adapter, b"Subject: s\r\n\r\n", server.host, server.port, debuglevel=1, **options
        )
    transcript = capsys.readouterr().err
    assert f"connect: to ('{server.host}', {server.port})" in transcript
    assert f"send: 'ehlo {LOCAL_NAME}\\r\\n'" in transcript
    assert "send: 'AUTH PLAIN ****\\r\\n'" in transcript
    assert smtplib_spelling(f"send: 'mail FROM:<{SENDER}> size=14\\r\\n'") in transcript
    assert "send: 'quit\\r\\n'" in transcript and "reply: retcode (221)" in transcript
    assert "secret" not in transcript and "c2VjcmV0" not in transcript  # nor its base64
    assert handler.authenticated == ["user", "user"]


class RefuseSecondChunk:
    """A CHUNKING server that accepts the first BDAT chunk and refuses every later one."""

    def __init__(self) -> None:
        self.chunks = 0
        self.after: list[bytes] = []

    def __call__(self, session: Session) -> None:
        session.reply("220 test.local ESMTP")
        session.expect("EHLO")
        session.reply("250-test.local", "250-PIPELINING", "250 CHUNKING")
        session.expect("MAIL")
        session.expect("RCPT")
        session.reply("250 2.1.0 Ok", "250 2.1.5 Ok")
        while (line := session.read_line()).upper().startswith(b"BDAT "):
            session.read_exact(int(line.split()[1]))
            self.chunks += 1
            session.reply("250 2.0.0 Ok" if self.chunks == 1 else "552 5.3.4 Mailbox full")
        self.after.append(line)
        session.reply("250 2.0.0 Reset")


@all_adapters
async def test_bdat_refused_mid_transaction(adapter: Adapter) -> None:
    handler = RefuseSecondChunk()
    body = b"Subject: s\r\n\r\n" + (b"z" * 78 + b"\r\n") * (4 * PIECE_SIZE // 80)
    streamed = io.BytesIO(body)  # read in pieces, so sent as several chunks
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPDataError) as caught:
            await send(
                adapter,
                streamed,
                server.host,
                server.port,
                tls="none",
                sender=SENDER,
                recipients="r",
            )
        await adapter.sessions_done(server)
    assert caught.value.smtp_code == 552
    assert str(caught.value.enhanced_status) == "5.3.4"
    assert handler.chunks >= 2
    assert handler.after == [b"rset\r\n"]  # every reply read: the client stayed in step


@all_adapters
async def test_chunking_can_be_turned_off(adapter: Adapter) -> None:
    handler = StandardESMTP(features=ESMTP, chunking=True)
    with ScriptedServer(handler) as server:
        await send(
            adapter, b"s", server.host, server.port, tls="none", sender=SENDER, recipients="r"
        )
        await send(
            adapter,
            b"s",
            server.host,
            server.port,
            tls="none",
            sender=SENDER,
            recipients="r",
            chunking=False,
        )
    assert [envelope.via for envelope in handler.envelopes] == ["BDAT", "DATA"]


# ---------------------------------------------------------------- streamed bodies


def pieces(count: int) -> Iterator[bytes]:
    yield b"Subject: streamed\r\n\r\n"
    for index in range(count):
        yield bytes([65 + index % 26]) * 100_000 + b"\r\n"


async def async_pieces(count: int) -> AsyncIterator[bytes]:
    for piece in pieces(count):
        yield piece


@async_adapters
@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_async_iterable_body(adapter: Adapter, chunking: bool) -> None:
    handler = StandardESMTP(features=ESMTP, chunking=True)
    expected = b"".join(pieces(12))
    with ScriptedServer(handler) as server:
        result = await send(
            adapter,
            async_pieces(12),
            server.host,
            server.port,
            tls="none",
            sender=SENDER,
            recipients="r",
            chunking=chunking,
        )
        assert result.ok
        smtp = await adapter.open(server.host, server.port)
        smtp.chunking = chunking
        assert await adapter.call(smtp.sendmail, SENDER, ["r"], async_pieces(12)) == {}
        await adapter.call(smtp.quit)
    assert [envelope.data for envelope in handler.envelopes] == [expected, expected]
    assert {envelope.via for envelope in handler.envelopes} == {"BDAT" if chunking else "DATA"}


@async_adapters
async def test_async_body_failing_at_once_leaves_the_connection_usable(adapter: Adapter) -> None:
    async def failing() -> AsyncIterator[bytes]:
        raise ValueError("nothing to read")
        yield b""  # pragma: no cover - makes this an async generator

    handler = StandardESMTP(features=ESMTP)
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        await adapter.call(smtp.ehlo)
        with pytest.raises(ValueError, match="nothing to read"):
            await adapter.call(smtp.sendmail, SENDER, ["r"], failing())
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        await adapter.call(smtp.quit)
    assert handler.commands == [EHLO, b"noop", b"quit"]


@async_adapters
async def test_async_body_failing_midway_never_ends_the_message(adapter: Adapter) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"Subject: s\r\n\r\n" + b"q" * (3 * PIECE_SIZE)
        raise ValueError("source broke")

    handler = StandardESMTP(features=ESMTP)
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        with pytest.raises(ValueError, match="source broke"):
            await adapter.call(smtp.sendmail, SENDER, ["r"], failing())
        assert not smtp.is_connected
    assert handler.envelopes == []


@all_adapters
async def test_async_body_on_the_blocking_adapter_is_refused_before_sending(
    adapter: Adapter,
) -> None:
    if adapter.is_async:
        return  # covered above: async adapters take async bodies
    handler = StandardESMTP(features=ESMTP)
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        await adapter.call(smtp.ehlo)
        with pytest.raises(TypeError, match="async adapter"):
            await adapter.call(smtp.sendmail, SENDER, ["r"], async_pieces(1))
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        await adapter.call(smtp.quit)
    assert handler.commands == [EHLO, b"noop", b"quit"]


@async_adapters
async def test_async_file_object_body(adapter: Adapter) -> None:
    class AsyncFile:
        """An async file object: ``await read(n)``, ``b""`` at the end."""

        def __init__(self, data: bytes) -> None:
            self.data = data
            self.reads = 0

        async def read(self, size: int) -> bytes:
            self.reads += 1
            piece, self.data = self.data[:size], self.data[size:]
            return piece

    expected = b"".join(pieces(8))
    source = AsyncFile(expected)
    handler = StandardESMTP(features=ESMTP)
    with ScriptedServer(handler) as server:
        smtp = await adapter.open(server.host, server.port)
        assert await adapter.call(smtp.sendmail, SENDER, ["r"], source) == {}
        await adapter.call(smtp.quit)
    assert handler.envelopes[0].data == expected
    assert source.reads == len(expected) // PIECE_SIZE + 2  # chunk by chunk, then b""
