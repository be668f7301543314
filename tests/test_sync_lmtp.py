"""LMTP: Unix sockets and TCP, and the per-recipient replies after the message body.

LMTP answers the end of a message once per accepted recipient (RFC 2033).  ``smtplib.LMTP``
reads only the first of those replies (CPython gh-76984); the adapter reads them all, reports
the refused ones in ``sendmail``'s result and keeps every one in ``lmtp_replies``.
"""

from __future__ import annotations

import smtplib as stdlib_smtplib
from pathlib import Path

import pytest
from smtp_proto.transports import sync as smtplib

from tests.scripted_server import ScriptedServer, Session
from tests.servers.aiosmtpd_server import AiosmtpdLMTPServer
from tests.servers.dovecot import DovecotLMTPServer

LOCAL_NAME = "client.example.test"
SENDER = "lmtp-sender@example.test"


def addr(user: str) -> str:
    return f"{user}@example.test"


def message(token: str) -> bytes:
    return f"From: {SENDER}\r\nSubject: lmtp {token}\r\n\r\nHello over LMTP.\r\n".encode()


def holds(dovecot: DovecotLMTPServer, user: str, token: str) -> int:
    """How many of ``user``'s messages contain ``token`` (Dovecot delivers before replying)."""
    return sum(token.encode() in m for m in dovecot.messages_for(user))


@pytest.fixture(params=["unix", "tcp"])
def dovecot(request: pytest.FixtureRequest, dovecot_lmtp: DovecotLMTPServer) -> smtplib.LMTP:
    """An LMTP client connected to Dovecot over its Unix socket or over TCP."""
    if request.param == "unix":
        path = str(dovecot_lmtp.unix_path)
        assert Path(path).is_absolute()
        client = smtplib.LMTP(path, local_hostname=LOCAL_NAME, timeout=10)
    else:
        client = smtplib.LMTP(
            dovecot_lmtp.host, dovecot_lmtp.port, local_hostname=LOCAL_NAME, timeout=10
        )
    request.addfinalizer(client.close)
    return client


# ---------------------------------------------------------------- Dovecot


def test_lhlo(dovecot: smtplib.LMTP, capfd: pytest.CaptureFixture[str]) -> None:
    dovecot.set_debuglevel(1)
    code, text = dovecot.ehlo()
    assert code == 250
    assert text.startswith(b"lmtp.test\n")
    assert dovecot.does_esmtp and dovecot.has_extn("pipelining")
    assert dovecot.quit()[0] == 221
    assert capfd.readouterr().err.startswith(f"send: 'lhlo {LOCAL_NAME}\\r\\n'\n")


def test_all_delivered(dovecot: smtplib.LMTP, dovecot_lmtp: DovecotLMTPServer, token: str) -> None:
    refused = dovecot.sendmail(SENDER, [addr("alice"), addr("bob")], message(token))
    assert refused == {}
    assert set(dovecot.lmtp_replies) == {addr("alice"), addr("bob")}
    assert all(code == 250 for code, _ in dovecot.lmtp_replies.values())
    assert holds(dovecot_lmtp, "alice", token) == 1
    assert holds(dovecot_lmtp, "bob", token) == 1
    assert dovecot.quit()[0] == 221


@pytest.mark.parametrize("order", ["full-first", "full-last"])
def test_refused_after_data_is_reported(
    dovecot: smtplib.LMTP, dovecot_lmtp: DovecotLMTPServer, token: str, order: str
) -> None:
    recipients = [addr("full"), addr("alice")]
    if order == "full-last":
        recipients.reverse()
    refused = dovecot.sendmail(SENDER, recipients, message(token))
    assert list(refused) == [addr("full")]
    code, text = refused[addr("full")]
    assert code == 552
    assert text.startswith(b"5.2.2 <full@example.test>")
    assert dovecot.lmtp_replies[addr("full")] == (code, text)
    assert dovecot.lmtp_replies[addr("alice")][0] == 250
    assert holds(dovecot_lmtp, "alice", token) == 1
    assert holds(dovecot_lmtp, "full", token) == 0
    assert dovecot.noop()[0] == 250  # no reply was left unread
    dovecot.quit()


def test_refused_at_rcpt_and_after_data(
    dovecot: smtplib.LMTP, dovecot_lmtp: DovecotLMTPServer, token: str
) -> None:
    recipients = [addr("nosuchuser"), addr("full"), addr("bob")]
    refused = dovecot.sendmail(SENDER, recipients, message(token))
    assert {k: v[0] for k, v in refused.items()} == {addr("nosuchuser"): 550, addr("full"): 552}
    assert set(dovecot.lmtp_replies) == {addr("full"), addr("bob")}  # accepted at RCPT only
    assert holds(dovecot_lmtp, "bob", token) == 1
    dovecot.quit()


def test_all_refused_after_data(
    dovecot: smtplib.LMTP, dovecot_lmtp: DovecotLMTPServer, token: str
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        dovecot.sendmail(SENDER, [addr("full"), addr("tempfail")], message(token))
    assert {k: v[0] for k, v in info.value.recipients.items()} == {
        addr("full"): 552,
        addr("tempfail"): 451,
    }
    assert dovecot.lmtp_replies == info.value.recipients
    assert dovecot.noop()[0] == 250
    # The connection goes on: the next transaction is delivered.
    assert dovecot.sendmail(SENDER, [addr("alice")], message(token)) == {}
    assert holds(dovecot_lmtp, "alice", token) == 1
    dovecot.quit()


def test_stdlib_loses_the_second_reply(dovecot_lmtp: DovecotLMTPServer, token: str) -> None:
    """The contrast (gh-76984): smtplib.LMTP reports success although ``full`` was refused."""
    stdlib_lmtp = stdlib_smtplib.LMTP(str(dovecot_lmtp.unix_path), local_hostname=LOCAL_NAME)
    try:
        assert stdlib_lmtp.sendmail(SENDER, [addr("alice"), addr("full")], message(token)) == {}
    finally:
        stdlib_lmtp.close()
    assert holds(dovecot_lmtp, "alice", token) == 1
    assert holds(dovecot_lmtp, "full", token) == 0


def test_unix_socket_missing(tmp_path: Path) -> None:
    client = smtplib.LMTP(local_hostname=LOCAL_NAME)
    with pytest.raises(FileNotFoundError):
        client.connect(str(tmp_path / "no-such.sock"))
    assert client.sock is None


# ---------------------------------------------------------------- aiosmtpd LMTP


def aiosmtpd_client(server: AiosmtpdLMTPServer) -> smtplib.LMTP:
    return smtplib.LMTP(str(server.unix_path), local_hostname=LOCAL_NAME, timeout=10)


def test_aiosmtpd_all_delivered(aiosmtpd_lmtp_unix: AiosmtpdLMTPServer) -> None:
    with aiosmtpd_client(aiosmtpd_lmtp_unix) as lmtp:
        assert lmtp.sendmail(SENDER, [addr("alice"), addr("bob")], message("x")) == {}
        assert {k: v[0] for k, v in lmtp.lmtp_replies.items()} == {
            addr("alice"): 250,
            addr("bob"): 250,
        }
    (record,) = aiosmtpd_lmtp_unix.messages()
    assert record.rcpt_tos == [addr("alice"), addr("bob")]
    assert record.content == message("x")


@pytest.mark.parametrize("pipelining", [True, False])
def test_aiosmtpd_refused_after_data(
    aiosmtpd_lmtp_unix: AiosmtpdLMTPServer, pipelining: bool
) -> None:
    aiosmtpd_lmtp_unix.handler.advertise_pipelining = pipelining
    aiosmtpd_lmtp_unix.set_after_data_reply(addr("carol"), "452 4.2.2 <carol@example.test> later")
    recipients = [
        addr("fail-1"),
        addr("alice"),
        addr("reject-2"),
        addr("full-3"),
        addr("carol"),
        addr("bob"),
    ]
    with aiosmtpd_client(aiosmtpd_lmtp_unix) as lmtp:
        refused = lmtp.sendmail(SENDER, recipients, message("y"))
        assert refused == {
            addr("reject-2"): (
                550,
                b"5.1.1 <reject-2@example.test>: Recipient rejected (test hook)",
            ),
            addr("fail-1"): (550, b"5.1.1 <fail-1@example.test> Delivery failed (test hook)"),
            addr("full-3"): (552, b"5.2.2 <full-3@example.test> Mailbox full (test hook)"),
            addr("carol"): (452, b"4.2.2 <carol@example.test> later"),
        }
        assert list(lmtp.lmtp_replies) == [
            addr("fail-1"),
            addr("alice"),
            addr("full-3"),
            addr("carol"),
            addr("bob"),
        ]
        assert lmtp.noop()[0] == 250
    (record,) = aiosmtpd_lmtp_unix.messages()
    assert record.rcpt_tos == [addr("alice"), addr("bob")]


def test_aiosmtpd_all_refused_after_data(aiosmtpd_lmtp_unix: AiosmtpdLMTPServer) -> None:
    with aiosmtpd_client(aiosmtpd_lmtp_unix) as lmtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            lmtp.sendmail(SENDER, [addr("fail-a"), addr("full-b")], message("z"))
        assert info.value.recipients == {
            addr("fail-a"): (550, b"5.1.1 <fail-a@example.test> Delivery failed (test hook)"),
            addr("full-b"): (552, b"5.2.2 <full-b@example.test> Mailbox full (test hook)"),
        }
        assert lmtp.lmtp_replies == info.value.recipients
        assert lmtp.sendmail(SENDER, addr("alice"), message("z")) == {}
    assert [r.rcpt_tos for r in aiosmtpd_lmtp_unix.messages()] == [[addr("alice")]]


def test_aiosmtpd_data_method_returns_first_refusal(aiosmtpd_lmtp_unix: AiosmtpdLMTPServer) -> None:
    """``data()`` itself returns one reply: the first refusal, all of them in lmtp_replies."""
    with aiosmtpd_client(aiosmtpd_lmtp_unix) as lmtp:
        lmtp.ehlo()
        lmtp.mail(SENDER)
        for user in ("alice", "full-1", "fail-2"):
            assert lmtp.rcpt(addr(user))[0] == 250
        code, text = lmtp.data(message("d"))
        assert (code, text) == (552, b"5.2.2 <full-1@example.test> Mailbox full (test hook)")
        assert [v[0] for v in lmtp.lmtp_replies.values()] == [250, 552, 550]
        assert lmtp.noop()[0] == 250


# ---------------------------------------------------------------- a server that dies mid-replies


def test_connection_lost_between_lmtp_replies(tmp_path: Path) -> None:
    """The server answers for the first recipient, then the connection ends.

    The second recipient got no reply: whether it was delivered is unknown, so sendmail must
    not report it as delivered (raise SMTPServerDisconnected, or list it as refused).
    """

    def dies_after_first_reply(s: Session) -> None:
        s.reply("220 lmtp.example.test LMTP")
        s.expect("lhlo ")
        s.reply("250-lmtp.example.test", "250 8BITMIME")
        s.expect("mail FROM:")
        s.reply("250 2.1.0 ok")
        s.expect("rcpt TO:<alice@")
        s.reply("250 2.1.5 ok")
        s.expect("rcpt TO:<bob@")
        s.reply("250 2.1.5 ok")
        s.expect("data")
        s.reply("354 go ahead")
        s.read_until(b"\r\n.\r\n")
        s.reply("250 2.0.0 <alice@example.test> delivered")
        # ... and the delivery to bob crashes the server: no reply, the connection ends.

    with ScriptedServer(dies_after_first_reply, unix_path=str(tmp_path / "lmtp.sock")) as server:
        assert server.unix_path is not None
        lmtp = smtplib.LMTP(server.unix_path, local_hostname=LOCAL_NAME, timeout=10)
        try:
            refused = lmtp.sendmail(SENDER, [addr("alice"), addr("bob")], message("lost"))
        except smtplib.SMTPServerDisconnected:
            pass
        else:
            assert addr("bob") in refused, f"bob never got a reply, yet sendmail gave {refused}"
        assert lmtp.lmtp_replies.get(addr("alice")) == (
            250,
            b"2.0.0 <alice@example.test> delivered",
        )
        assert lmtp.sock is None
