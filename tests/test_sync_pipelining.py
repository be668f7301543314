"""PIPELINING gives the results of lock-step SMTP, and no message can smuggle another one."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from smtp_proto.transports import sync as smtplib

from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]
LOCAL_NAME = "client.example.test"
SMUGGLING_ENDS = ["\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r", "\r.\r\n"]


def connect(server: PostfixServer | AiosmtpdServer | ScriptedServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)


def smuggling_message(token: str) -> bytes:
    """One message that, to a lenient server, would end early and start another transaction
    for each of the end-of-data look-alikes, plus lone CRs and LFs in plain text lines."""
    parts = [f"From: outer@example.test\r\nSubject: outer {token}\r\n\r\n"]
    parts.append("bare LF here\nbare CR here\rmixed\r\r\n\n\rend of plain lines\r\n")
    for index, fake_end in enumerate(SMUGGLING_ENDS):
        parts.append(
            f"attempt {index}{fake_end}"
            "MAIL FROM:<evil@example.test>\r\n"
            f"RCPT TO:<victim{index}-{token}@example.test>\r\n"
            "DATA\r\n"
            f"Subject: smuggled {index} {token}\r\n\r\n"
            f"smuggled body {index}\r\n"
        )
    parts.append("last line without a line end")
    return "".join(parts).encode()


def normalised(data: bytes) -> bytes:
    """What the server must receive: every CR, LF and CRLF as CRLF, ending with one."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def test_no_smuggling_into_postfix(
    postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    msg = smuggling_message(token)
    with connect(postfix) as smtp:
        assert smtp.sendmail("outer@example.test", [f"target-{token}@example.test"], msg) == {}
        # Had the server seen an early end of data, its replies to the smuggled commands
        # would now be waiting in front of the reply to NOOP.
        assert smtp.noop() == (250, b"2.0.0 Ok")
        assert (
            smtp.sendmail(
                "outer@example.test",
                [f"marker-{token}@example.test"],
                f"Subject: marker {token}\r\n\r\nsent after the outer message\r\n",
            )
            == {}
        )
    delivered = postfix_delivered(token, 2)
    marker = [m for m in delivered if f"Delivered-To: marker-{token}@".encode() in m]
    outer = [m for m in delivered if f"Delivered-To: target-{token}@".encode() in m]
    assert len(marker) == 1
    assert len(outer) == 1
    assert len(delivered) == 2, [m.split(b"\n\n")[0] for m in delivered]
    assert not any(b"Delivered-To: victim" in m for m in postfix.messages())
    # Maildir stores LF line ends: the body is the normalised message, in one piece.
    expected_body = normalised(msg).split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    assert outer[0].endswith(b"\n\n" + expected_body)
    assert b"\n.\nMAIL FROM:<evil@example.test>\n" in outer[0]


def test_no_smuggling_exact_bytes(aiosmtpd_server: AiosmtpdServer, token: str) -> None:
    msg = smuggling_message(token)
    with connect(aiosmtpd_server) as smtp:
        assert smtp.sendmail("outer@example.test", ["target@example.test"], msg) == {}
        assert smtp.noop() == (250, b"OK")
    (record,) = aiosmtpd_server.messages()
    assert record.content == normalised(msg)
    as_sent = re.sub(rb"\r\n|\r|\n", b"\r\n", msg)  # SIZE counts each bare CR or LF as CRLF
    assert record.mail_options == [f"SIZE={len(as_sent)}"]


def test_wire_has_no_bare_cr_or_lf() -> None:
    srv = StandardESMTP()
    msg = smuggling_message("wire")
    with ScriptedServer(srv) as server:
        with connect(server) as smtp:
            smtp.sendmail("outer@example.test", ["target@example.test"], msg)
            smtp.sendmail("outer@example.test", ["target@example.test"], msg.decode())
        server.wait_sessions_done()
    wire = bytes(server.sessions[0].received)
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", wire) is None
    assert wire.count(b"\r\n.\r\n") == 2  # exactly one end of data per message
    assert [e.data for e in srv.envelopes] == [normalised(msg)] * 2


# ---------------------------------------------------------------- pipelined == lock-step


def sent_and_replies(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The logged transcript reduced to 'S <verb>' and 'R <code>' items."""
    items = []
    for record in caplog.records:
        text = record.getMessage()
        if text.startswith("send: '"):
            items.append("S " + text[7:].split(" ")[0].split("'")[0].lower())
        elif text.startswith("reply: "):
            items.append("R " + text[7:10])
    return items


def transaction_shape(items: list[str]) -> list[str]:
    start = items.index("S mail")
    end = items.index("R 354", start)
    return items[start : end + 1]


RECIPIENTS = ["first@example.test", "reject-second@example.test", "third@example.test"]


def test_pipelined_postfix_matches_lockstep_aiosmtpd(
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    aiosmtpd_server: AiosmtpdServer,
    caplog: pytest.LogCaptureFixture,
    token: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtp_proto")
    msg = f"Subject: pipelining {token}\r\n\r\nthree recipients\r\n"
    with connect(postfix) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("pipelining")
        smtp.chunking = False  # the DATA flight (BDAT has its own tests)
        pipelined = smtp.sendmail("p@example.test", RECIPIENTS, msg)
    pipelined_shape = transaction_shape(sent_and_replies(caplog))
    caplog.clear()

    aiosmtpd_server.handler.advertise_pipelining = False
    with connect(aiosmtpd_server) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("pipelining")
        lockstep = smtp.sendmail("p@example.test", RECIPIENTS, msg)
    lockstep_shape = transaction_shape(sent_and_replies(caplog))

    # Every command went out before the first reply was read ...
    sends = ["S mail", "S rcpt", "S rcpt", "S rcpt", "S data"]
    assert pipelined_shape == [*sends, "R 250", "R 250", "R 550", "R 250", "R 354"]
    # ... versus one command, one reply.
    replies = ["R 250", "R 250", "R 550", "R 250", "R 354"]
    assert lockstep_shape == [item for pair in zip(sends, replies, strict=True) for item in pair]
    assert list(pipelined) == list(lockstep) == ["reject-second@example.test"]
    assert pipelined["reject-second@example.test"][0] == 550
    assert lockstep["reject-second@example.test"][0] == 550
    for result in (pipelined, lockstep):
        assert result["reject-second@example.test"][1].startswith(
            b"5.1.1 <reject-second@example.test>"
        )
    assert len(postfix_delivered(token, 2)) == 2
    (record,) = aiosmtpd_server.messages()
    assert record.rcpt_tos == ["first@example.test", "third@example.test"]


def reject_by_name(address: str) -> tuple[int, str] | None:
    if address.startswith("reject"):
        return 550, f"5.1.1 <{address}> unknown"
    if address.startswith("tempfail"):
        return 451, "4.3.0 try later"
    return None


@pytest.mark.parametrize(
    "recipients",
    [
        ["a@example.test", "reject-b@example.test", "tempfail-c@example.test"],
        ["reject-a@example.test", "tempfail-b@example.test"],
        ["a@example.test"],
    ],
)
def test_same_results_with_and_without_pipelining(recipients: list[str]) -> None:
    results = []
    for features in (["PIPELINING", "SIZE 1000"], ["SIZE 1000"]):
        srv = StandardESMTP(features=features, reject=reject_by_name)
        with ScriptedServer(srv) as server, connect(server) as smtp:
            try:
                outcome: object = smtp.sendmail("s@example.test", recipients, b"x\r\n")
            except smtplib.SMTPRecipientsRefused as exc:
                outcome = ("refused", exc.recipients)
            assert smtp.noop()[0] == 250
        results.append((outcome, [(e.mail_from, e.rcpt_tos, e.data) for e in srv.envelopes]))
    assert results[0] == results[1]


def test_pipelined_sender_refused_sends_no_body() -> None:
    srv = StandardESMTP(features=["PIPELINING", "SIZE 10"])
    with ScriptedServer(srv) as server, connect(server) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            # Streamed with a declared size, so that the server (not the client) refuses it.
            body = iter([b"more than ten bytes\r\n"])
            smtp.sendmail("big@example.test", ["a@example.test"], body, ["SIZE=21"])
        assert info.value.smtp_code == 552
        assert smtp.noop()[0] == 250
    assert srv.envelopes == []
    assert srv.commands[1:] == [
        smtplib_spelling(b"mail FROM:<big@example.test> SIZE=21"),
        smtplib_spelling(b"rcpt TO:<a@example.test>"),
        b"data",
        b"rset",
        b"noop",
        b"QUIT",
    ]


def test_pipelined_354_with_no_valid_recipient_gets_an_empty_body() -> None:
    """A server that opens the body although every RCPT failed gets an empty one (RFC 2920)."""
    seen: list[bytes] = []

    def sloppy(s: Session) -> None:
        s.reply("220 sloppy.example.test ESMTP")
        s.expect("ehlo ")
        s.reply("250-sloppy.example.test", "250 PIPELINING")
        s.expect(smtplib_spelling("mail FROM:<s@example.test>"))
        s.expect(smtplib_spelling("rcpt TO:<nobody@example.test>"))
        s.expect("data")
        s.reply("250 2.1.0 ok", "550 5.1.1 no such user", "354 go ahead anyway")
        seen.append(s.read_until(b".\r\n"))
        s.reply("554 5.5.1 no valid recipients")
        s.expect("rset")
        s.reply("250 2.0.0 reset")
        s.expect("quit")
        s.reply("221 2.0.0 bye")

    with ScriptedServer(sloppy) as server:
        smtp = connect(server)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("s@example.test", ["nobody@example.test"], b"secret body\r\n")
        assert info.value.recipients == {"nobody@example.test": (550, b"5.1.1 no such user")}
        assert smtp.quit()[0] == 221
    assert seen == [b"\r\n.\r\n"]
