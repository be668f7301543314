"""LMTP against Dovecot, over its Unix socket and over TCP, on every adapter.

LMTP answers the end of a message once per accepted recipient (RFC 2033): ``sendmail``
reports the ones refused then in its result and keeps every reply in ``lmtp_replies``.
Each test also runs with ``chunking = True``, where the message goes as ``BDAT ... LAST``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smtp_proto.errors import SMTPRecipientsRefused
from tests.adapters import LOCAL_NAME, Adapter, all_adapters
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


@all_adapters
async def test_lhlo(adapter: Adapter, address: tuple[str, int]) -> None:
    lmtp = await adapter.open_lmtp(*address)
    assert lmtp.ehlo_msg == "lhlo"
    code, text = await adapter.call(lmtp.ehlo)
    assert code == 250
    assert text.startswith(b"lmtp.test\n")
    assert lmtp.does_esmtp and lmtp.has_extn("pipelining") and lmtp.has_extn("chunking")
    assert (await adapter.call(lmtp.quit))[0] == 221
    assert not adapter.is_connected(lmtp)


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
