"""LMTP on every adapter: Dovecot over its Unix socket and over TCP, aiosmtpd's LMTP over a
Unix socket, and a scripted server that dies between its per-recipient replies.

LMTP answers the end of a message once per accepted recipient (RFC 2033): ``sendmail``
reports the ones refused then in its result and keeps every reply in ``lmtp_replies``.
``smtplib.LMTP`` reads only the first of those replies (CPython gh-76984).  The Dovecot
transaction tests also run with ``chunking = True``, where the message goes as ``BDAT ... LAST``.
"""

from __future__ import annotations

import smtplib as stdlib_smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smtp_proto.errors import SMTPRecipientsRefused, SMTPServerDisconnected
from tests.adapters import LOCAL_NAME, Adapter, all_adapters
from tests.scripted_server import ScriptedServer, Session
from tests.servers.aiosmtpd_server import AiosmtpdLMTPServer
from tests.servers.dovecot import DovecotLMTPServer

SENDER = "lmtp-sender@example.test"


def addr(user: str) -> str:
    return f"{user}@example.test"


def message(token: str) -> bytes:
    return f"From: {SENDER}\r\nSubject: lmtp {token}\r\n\r\nHello over LMTP.\r\n".encode()


def holds(dovecot: DovecotLMTPServer, user: str, token: str) -> int:
    """How many of ``user``'s messages contain ``token`` (Dovecot delivers before replying)."""
    return sum(token.encode() in m for m in dovecot.messages_for(user))


@pytest.fixture(params=["unix", "tcp"])
def address(request: pytest.FixtureRequest, dovecot_lmtp: DovecotLMTPServer) -> tuple[str, int]:
    """Where to reach Dovecot: its Unix socket (an absolute path) or its TCP port."""
    if request.param == "unix":
        return str(dovecot_lmtp.unix_path), 0
    return dovecot_lmtp.host, dovecot_lmtp.port


@pytest.fixture(params=[False, True], ids=["data", "bdat"])
def chunking(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[bool]:
    """Whether the client sends messages with BDAT (logged commands are checked at the end)."""
    caplog.set_level("DEBUG", logger="smtp_proto")
    yield request.param
    records = caplog.get_records("call")
    sent = [r.getMessage() for r in records if r.getMessage().startswith("send: ")]
    assert any(line.startswith("send: 'BDAT ") for line in sent) == request.param, sent
    assert any(line == "send: 'data'" for line in sent) == (not request.param), sent


async def open_lmtp(adapter: Adapter, address: tuple[str, int], chunking: bool) -> Any:
    client = await adapter.open_lmtp(*address)
    client.chunking = chunking
    return client


# ---------------------------------------------------------------- Dovecot


@all_adapters
async def test_lhlo(
    adapter: Adapter, address: tuple[str, int], capfd: pytest.CaptureFixture[str]
) -> None:
    lmtp = await adapter.open_lmtp(*address)
    assert lmtp.ehlo_msg == "lhlo"
    lmtp.set_debuglevel(1)
    code, text = await adapter.call(lmtp.ehlo)
    assert code == 250
    assert text.startswith(b"lmtp.test\n")
    assert lmtp.does_esmtp and lmtp.has_extn("pipelining") and lmtp.has_extn("chunking")
    assert (await adapter.call(lmtp.quit))[0] == 221
    assert not adapter.is_connected(lmtp)
    assert capfd.readouterr().err.startswith(f"send: 'lhlo {LOCAL_NAME}\\r\\n'\n")


@all_adapters
async def test_all_delivered(
    adapter: Adapter,
    address: tuple[str, int],
    chunking: bool,
    dovecot_lmtp: DovecotLMTPServer,
    token: str,
) -> None:
    lmtp = await open_lmtp(adapter, address, chunking)
    refused = await adapter.call(
        lmtp.sendmail, SENDER, [addr("alice"), addr("bob")], message(token)
    )
    assert refused == {}
    assert list(lmtp.lmtp_replies) == [addr("alice"), addr("bob")]
    assert all(code == 250 for code, _ in lmtp.lmtp_replies.values())
    assert holds(dovecot_lmtp, "alice", token) == 1
    assert holds(dovecot_lmtp, "bob", token) == 1
    assert (await adapter.call(lmtp.quit))[0] == 221


@all_adapters
async def test_refused_after_data_is_in_the_refused_dict(
    adapter: Adapter,
    address: tuple[str, int],
    chunking: bool,
    dovecot_lmtp: DovecotLMTPServer,
    token: str,
) -> None:
    lmtp = await open_lmtp(adapter, address, chunking)
    for recipients in ([addr("full"), addr("alice")], [addr("alice"), addr("full")]):
        refused = await adapter.call(lmtp.sendmail, SENDER, recipients, message(token))
        assert list(refused) == [addr("full")]
        code, text = refused[addr("full")]
        assert code == 552 and text.startswith(b"5.2.2 <full@example.test>")
        assert list(lmtp.lmtp_replies) == recipients  # in RCPT order
        assert lmtp.lmtp_replies[addr("full")] == (code, text)
        assert lmtp.lmtp_replies[addr("alice")][0] == 250
        assert (await adapter.call(lmtp.noop))[0] == 250  # no reply was left unread
    assert holds(dovecot_lmtp, "alice", token) == 2
    assert holds(dovecot_lmtp, "full", token) == 0
    assert (await adapter.call(lmtp.quit))[0] == 221


@all_adapters
async def test_refused_at_rcpt_and_after_data(
    adapter: Adapter,
    address: tuple[str, int],
    chunking: bool,
    dovecot_lmtp: DovecotLMTPServer,
    token: str,
) -> None:
    lmtp = await open_lmtp(adapter, address, chunking)
    recipients = [addr("nosuchuser"), addr("full"), addr("bob")]
    refused = await adapter.call(lmtp.sendmail, SENDER, recipients, message(token))
    assert {k: v[0] for k, v in refused.items()} == {addr("nosuchuser"): 550, addr("full"): 552}
    assert set(lmtp.lmtp_replies) == {addr("full"), addr("bob")}  # those accepted at RCPT
    assert holds(dovecot_lmtp, "bob", token) == 1
    assert (await adapter.call(lmtp.quit))[0] == 221


@all_adapters
async def test_all_refused_raises_and_the_connection_goes_on(
    adapter: Adapter,
    address: tuple[str, int],
    chunking: bool,
    dovecot_lmtp: DovecotLMTPServer,
    token: str,
) -> None:
    lmtp = await open_lmtp(adapter, address, chunking)
    with pytest.raises(SMTPRecipientsRefused) as info:
        await adapter.call(lmtp.sendmail, SENDER, [addr("full"), addr("tempfail")], message(token))
    assert {k: v[0] for k, v in info.value.recipients.items()} == {
        addr("full"): 552,
        addr("tempfail"): 451,
    }
    assert lmtp.lmtp_replies == info.value.recipients
    assert (await adapter.call(lmtp.noop))[0] == 250
    assert await adapter.call(lmtp.sendmail, SENDER, [addr("alice")], message(token)) == {}
    assert holds(dovecot_lmtp, "alice", token) == 1
    assert (await adapter.call(lmtp.quit))[0] == 221


@all_adapters
async def test_data_returns_the_first_refusal(
    adapter: Adapter, address: tuple[str, int], dovecot_lmtp: DovecotLMTPServer, token: str
) -> None:
    lmtp = await adapter.open_lmtp(*address)
    await adapter.call(lmtp.ehlo, LOCAL_NAME)
    assert (await adapter.call(lmtp.mail, SENDER))[0] == 250
    for user in ("alice", "full", "bob"):
        assert (await adapter.call(lmtp.rcpt, addr(user)))[0] == 250
    code, text = await adapter.call(lmtp.data, message(token))
    assert code == 552 and text.startswith(b"5.2.2 <full@example.test>")
    assert [v[0] for v in lmtp.lmtp_replies.values()] == [250, 552, 250]
    assert (await adapter.call(lmtp.noop))[0] == 250
    assert (await adapter.call(lmtp.quit))[0] == 221
    assert holds(dovecot_lmtp, "alice", token) == 1 and holds(dovecot_lmtp, "bob", token) == 1


@all_adapters
async def test_missing_unix_socket(adapter: Adapter, tmp_path: Path) -> None:
    lmtp = adapter.new("LMTP")
    with pytest.raises(FileNotFoundError):
        await adapter.call(lmtp.connect, str(tmp_path / "no-such.sock"))
    assert not adapter.is_connected(lmtp)


def test_stdlib_loses_the_second_reply(dovecot_lmtp: DovecotLMTPServer, token: str) -> None:
    """The contrast (gh-76984): smtplib.LMTP reports success although ``full`` was refused."""
    stdlib_lmtp = stdlib_smtplib.LMTP(str(dovecot_lmtp.unix_path), local_hostname=LOCAL_NAME)
    try:
        assert stdlib_lmtp.sendmail(SENDER, [addr("alice"), addr("full")], message(token)) == {}
    finally:
        stdlib_lmtp.close()
    assert holds(dovecot_lmtp, "alice", token) == 1
    assert holds(dovecot_lmtp, "full", token) == 0


# ---------------------------------------------------------------- aiosmtpd LMTP


@all_adapters
async def test_aiosmtpd_all_delivered(
    adapter: Adapter, aiosmtpd_lmtp_unix: AiosmtpdLMTPServer
) -> None:
    async with adapter.connected(str(aiosmtpd_lmtp_unix.unix_path), kind="LMTP") as lmtp:
        refused = await adapter.call(
            lmtp.sendmail, SENDER, [addr("alice"), addr("bob")], message("x")
        )
        assert refused == {}
        assert {k: v[0] for k, v in lmtp.lmtp_replies.items()} == {
            addr("alice"): 250,
            addr("bob"): 250,
        }
    (record,) = aiosmtpd_lmtp_unix.messages()
    assert record.rcpt_tos == [addr("alice"), addr("bob")]
    assert record.content == message("x")


@all_adapters
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
async def test_aiosmtpd_refused_after_data(
    adapter: Adapter, aiosmtpd_lmtp_unix: AiosmtpdLMTPServer, pipelining: bool
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
    async with adapter.connected(str(aiosmtpd_lmtp_unix.unix_path), kind="LMTP") as lmtp:
        refused = await adapter.call(lmtp.sendmail, SENDER, recipients, message("y"))
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
        assert (await adapter.call(lmtp.noop))[0] == 250
    (record,) = aiosmtpd_lmtp_unix.messages()
    assert record.rcpt_tos == [addr("alice"), addr("bob")]


@all_adapters
async def test_aiosmtpd_all_refused_after_data(
    adapter: Adapter, aiosmtpd_lmtp_unix: AiosmtpdLMTPServer
) -> None:
    async with adapter.connected(str(aiosmtpd_lmtp_unix.unix_path), kind="LMTP") as lmtp:
        with pytest.raises(SMTPRecipientsRefused) as info:
            await adapter.call(
                lmtp.sendmail, SENDER, [addr("fail-a"), addr("full-b")], message("z")
            )
        assert info.value.recipients == {
            addr("fail-a"): (550, b"5.1.1 <fail-a@example.test> Delivery failed (test hook)"),
            addr("full-b"): (552, b"5.2.2 <full-b@example.test> Mailbox full (test hook)"),
        }
        assert lmtp.lmtp_replies == info.value.recipients
        assert await adapter.call(lmtp.sendmail, SENDER, addr("alice"), message("z")) == {}
    assert [r.rcpt_tos for r in aiosmtpd_lmtp_unix.messages()] == [[addr("alice")]]


@all_adapters
async def test_aiosmtpd_data_method_returns_first_refusal(
    adapter: Adapter, aiosmtpd_lmtp_unix: AiosmtpdLMTPServer
) -> None:
    """``data()`` itself returns one reply: the first refusal, all of them in lmtp_replies."""
    async with adapter.connected(str(aiosmtpd_lmtp_unix.unix_path), kind="LMTP") as lmtp:
        await adapter.call(lmtp.ehlo)
        await adapter.call(lmtp.mail, SENDER)
        for user in ("alice", "full-1", "fail-2"):
            assert (await adapter.call(lmtp.rcpt, addr(user)))[0] == 250
        code, text = await adapter.call(lmtp.data, message("d"))
        assert (code, text) == (552, b"5.2.2 <full-1@example.test> Mailbox full (test hook)")
        assert [v[0] for v in lmtp.lmtp_replies.values()] == [250, 552, 550]
        assert (await adapter.call(lmtp.noop))[0] == 250


# ---------------------------------------------------------------- a server that dies mid-replies


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


@all_adapters
async def test_connection_lost_between_lmtp_replies(adapter: Adapter, tmp_path: Path) -> None:
    """The server answers for the first recipient, then the connection ends.

    The second recipient got no reply: whether it was delivered is unknown, so sendmail must
    not report it as delivered (raise SMTPServerDisconnected, or list it as refused).
    """
    with ScriptedServer(dies_after_first_reply, unix_path=str(tmp_path / "lmtp.sock")) as server:
        assert server.unix_path is not None
        lmtp = await adapter.open_lmtp(server.unix_path)
        try:
            recipients = [addr("alice"), addr("bob")]
            refused = await adapter.call(lmtp.sendmail, SENDER, recipients, message("lost"))
        except SMTPServerDisconnected:
            pass
        else:
            assert addr("bob") in refused, f"bob never got a reply, yet sendmail gave {refused}"
        assert lmtp.lmtp_replies.get(addr("alice")) == (
            250,
            b"2.0.0 <alice@example.test> delivered",
        )
        assert not adapter.is_connected(lmtp)
