"""``sendmail`` over BDAT (RFC 3030), used whenever the server offers it (``smtp.chunking``).

With CHUNKING and PIPELINING offered, a message of one chunk goes out with MAIL and RCPT in
a single write (one round trip), unstuffed; larger ones stream as several chunks.  Results
and exceptions stay those of the DATA exchange.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from smtp_proto.transports import sync as smtplib

from smtp_proto.body import PIECE_SIZE
from tests.scripted_server import ScriptedServer, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.postfix import PostfixServer

SENDER = "chunks@example.test"


def body_lines(text: bytes) -> list[bytes]:
    """The body of a delivered message (after the header block), as lines.

    Postfix's Maildir stores LF line ends; the comparison is on lines either way.
    """
    return text.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1].split(b"\n")


def chunked_client(host: str, port: int) -> smtplib.SMTP:
    return smtplib.SMTP(host, port, local_hostname="client.test", timeout=10)


def test_one_chunk_goes_with_the_envelope_in_one_write(
    postfix: PostfixServer,
    postfix_delivered: Callable[..., list[bytes]],
    token: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    message = f"Subject: {token}\r\n\r\n.leading dot\nbare LF\r\n..two dots\r\n".encode()
    with chunked_client(postfix.host, postfix.port) as client:
        client.ehlo()
        client.set_debuglevel(1)
        assert client.sendmail(SENDER, ["a@example.test"], message) == {}
    transcript = capfd.readouterr().err.splitlines()
    sends = [i for i, line in enumerate(transcript) if line.startswith("send:")]
    first_reply = next(i for i, line in enumerate(transcript) if line.startswith("reply:"))
    assert [transcript[i].split("'")[1][:4] for i in sends[:3]] == ["mail", "rcpt", "BDAT"]
    assert all(i < first_reply for i in sends[:3]), "MAIL, RCPT and BDAT were not one flight"
    assert not any("'data" in line for line in transcript)
    (delivered,) = postfix_delivered(token)
    assert body_lines(delivered)[:3] == [b".leading dot", b"bare LF", b"..two dots"]


def test_large_message_streams_in_chunks(
    postfix: PostfixServer, postfix_delivered: Callable[..., list[bytes]], token: str
) -> None:
    line = b"." + b"x" * 75 + b"\r\n"
    body = line * (3 * PIECE_SIZE // len(line) + 7)
    message = f"Subject: {token}\r\n\r\n".encode() + body
    with chunked_client(postfix.host, postfix.port) as client:
        assert client.sendmail(SENDER, ["big@example.test"], message) == {}
        assert client.noop()[0] == 250
    (delivered,) = postfix_delivered(token)
    assert body_lines(delivered) == body_lines(b"\r\n\r\n" + body)


def test_refused_recipients_are_reported(
    postfix: PostfixServer, postfix_delivered: Callable[..., list[bytes]], token: str
) -> None:
    message = f"Subject: {token}\r\n\r\nhello\r\n".encode()
    with chunked_client(postfix.host, postfix.port) as client:
        refused = client.sendmail(SENDER, ["ok@example.test", "reject-me@example.test"], message)
        assert list(refused) == ["reject-me@example.test"]
        assert refused["reject-me@example.test"][0] == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            client.sendmail(SENDER, ["reject-a@example.test", "reject-b@example.test"], message)
        assert set(caught.value.recipients) == {"reject-a@example.test", "reject-b@example.test"}
        assert client.noop()[0] == 250  # the refused body's reply was read: still in step
    assert len(postfix_delivered(token)) == 1


def test_falls_back_to_data_without_chunking(aiosmtpd_server: AiosmtpdServer) -> None:
    with chunked_client(aiosmtpd_server.host, aiosmtpd_server.port) as client:
        client.ehlo()
        assert not client.has_extn("chunking")
        assert client.sendmail(SENDER, ["x@example.test"], b"Subject: s\r\n\r\n.dot\r\n") == {}
    (received,) = aiosmtpd_server.wait_for_messages(1)
    assert received.content.endswith(b"\r\n.dot\r\n")


def test_bdat_refused_with_421_closes_and_raises() -> None:
    handler = StandardESMTP(
        features=("PIPELINING", "CHUNKING"), chunking=True, fail_at={"data": "421"}
    )
    with ScriptedServer(handler) as server:
        client = chunked_client(server.host, server.port)
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail(SENDER, ["x@example.test"], b"Subject: s\r\n\r\nbody\r\n")
        assert caught.value.smtp_code == 421
        assert client.sock is None
    assert handler.envelopes == []


def test_chunking_turned_off_keeps_data(
    postfix: PostfixServer, capfd: pytest.CaptureFixture[str]
) -> None:
    with smtplib.SMTP(postfix.host, postfix.port, local_hostname="client.test") as client:
        assert client.chunking is True  # the default
        client.chunking = False
        client.set_debuglevel(1)
        client.sendmail(SENDER, ["a@example.test"], b"Subject: s\r\n\r\nx\r\n")
    assert "send: 'data\\r\\n'" in capfd.readouterr().err
