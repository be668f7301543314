"""LMTP on every adapter: Dovecot over its Unix socket and over TCP, aiosmtpd's LMTP over a
Unix socket, and scripted servers (one dies between its per-recipient replies).

LMTP answers the end of a message once per accepted recipient (RFC 2033): ``sendmail``
reports the ones refused then in its result and keeps every reply in ``lmtp_replies``, and
``send()`` tells them apart from the RCPT refusals.  ``smtplib.LMTP`` reads only the first of
those replies (CPython gh-76984).  The Dovecot transaction tests also run with
``chunking = True``, where the message goes as ``BDAT ... LAST``.  Time limits: each reply has
its own deadline, and on a Unix socket the default limit is 600 s per wait (a documented
difference: smtplib waits forever), none with ``timeout=None``.  The offline tests of the
core's LMTP are in ``tests/core/test_lmtp.py``.
"""

from __future__ import annotations

import asyncio
import smtplib as stdlib_smtplib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from smtp_proto.transports import sync

from smtp_proto.errors import SMTPRecipientsRefused, SMTPServerDisconnected
from smtp_proto.send import SMTPAllRecipientsRefused
from tests.adapters import (
    LOCAL_NAME,
    MESSAGE,
    PATIENT_TIMEOUT,
    PAUSE,
    TIMEOUT,
    Adapter,
    all_adapters,
    send,
)
from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdLMTPServer
from tests.servers.certs import LocalCA
from tests.servers.dovecot import DovecotLMTPServer

SENDER = "lmtp-sender@example.test"
#: The documented limit on each wait when no timeout is given (docs/migrating.md).
DEFAULT_LIMIT = 600.0


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


def test_lmtp_per_recipient_replies_after_bdat(dovecot_lmtp: DovecotLMTPServer, token: str) -> None:
    message = f"Subject: {token}\r\n\r\nhello\r\n".encode()
    with sync.LMTP(str(dovecot_lmtp.unix_path), local_hostname="client.test") as client:
        client.chunking = True
        refused = client.sendmail(SENDER, ["alice@example.test", "full@example.test"], message)
        assert list(refused) == ["full@example.test"]
        assert refused["full@example.test"][0] == 552
        assert client.lmtp_replies["alice@example.test"][0] == 250
        with pytest.raises(SMTPRecipientsRefused) as caught:
            client.sendmail(SENDER, ["full@example.test", "tempfail@example.test"], message)
        assert {code for code, _ in caught.value.recipients.values()} == {552, 451}
    assert sum(token.encode() in m for m in dovecot_lmtp.messages_for("alice")) == 1


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
    s.expect(smtplib_spelling("mail FROM:"))
    s.reply("250 2.1.0 ok")
    s.expect(smtplib_spelling("rcpt TO:<alice@"))
    s.reply("250 2.1.5 ok")
    s.expect(smtplib_spelling("rcpt TO:<bob@"))
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


# ---------------------------------------------------------------- send()


@all_adapters
@pytest.mark.parametrize("where", ["unix", "tcp-starttls"])
async def test_lmtp_per_recipient_replies(
    adapter: Adapter, dovecot_lmtp: DovecotLMTPServer, tls_ca: LocalCA, token: str, where: str
) -> None:
    message = f"From: {SENDER}\r\nSubject: {token}\r\n\r\nhello\r\n".encode()
    if where == "unix":  # no TLS on a Unix socket
        address: tuple[str, int | None] = (str(dovecot_lmtp.unix_path), None)
    else:  # STARTTLS required, as for SMTP
        address = (dovecot_lmtp.host, dovecot_lmtp.port)
    result = await send(
        adapter,
        message,
        *address,
        context=tls_ca.client_context(),
        lmtp=True,
        sender=SENDER,
        recipients=["alice@example.test", "full@example.test", "nobody@example.test"],
    )
    assert set(result.lmtp_replies) == {"alice@example.test", "full@example.test"}
    assert list(result.accepted) == ["alice@example.test"]
    assert result.accepted["alice@example.test"] is result.lmtp_replies["alice@example.test"]
    assert result.refused["full@example.test"].code == 552
    assert result.refused["nobody@example.test"].code == 550  # refused at RCPT
    assert result.data_reply is None and result.queue_id is None
    (delivered,) = [m for m in dovecot_lmtp.messages_for("alice") if token.encode() in m]
    assert (b"with LMTPS" in delivered) == (where == "tcp-starttls"), delivered[:600]


@all_adapters
async def test_every_lmtp_recipient_failing_after_the_message_raises_with_the_replies(
    adapter: Adapter,
) -> None:
    handler = StandardESMTP(
        features=("PIPELINING", "8BITMIME", "SIZE 100000", "ENHANCEDSTATUSCODES"),
        lmtp=True,
        reject=lambda address: (550, "5.1.1 unknown") if address == "gone@x" else None,
        data_replies=lambda accepted: ["452 4.2.2 mailbox full"] * len(accepted),
    )
    with ScriptedServer(handler) as server:
        with pytest.raises(SMTPAllRecipientsRefused) as caught:
            await send(
                adapter,
                b"Subject: s\r\n\r\n",
                server.host,
                server.port,
                lmtp=True,
                tls="none",
                sender=SENDER,
                recipients=["full@x", "gone@x"],
            )
        await adapter.sessions_done(server)
    result = caught.value.result
    assert set(caught.value.recipients) == {"full@x", "gone@x"}
    assert list(result.lmtp_replies) == ["full@x"]  # told apart from the RCPT refusal
    assert str(result.lmtp_replies["full@x"].enhanced_status) == "4.2.2"
    assert result.refused["gone@x"].code == 550 and not result.accepted
    assert handler.commands[-1] == b"quit"


# ---------------------------------------------------------------- time limits


@all_adapters
async def test_each_lmtp_reply_gets_its_own_deadline(adapter: Adapter) -> None:
    """LMTP answers the end of data once per recipient, here each after ``PAUSE``."""
    pause = threading.Event()
    recipients = ["a@example.test", "b@example.test"]

    def handler(session: Session) -> None:
        session.send(b"220 lmtp.example.test LMTP\r\n")
        session.expect("lhlo ")
        session.send(b"250-lmtp.example.test\r\n250 PIPELINING\r\n")
        session.expect("mail from:")
        session.expect("rcpt to:")
        session.expect("rcpt to:")
        session.expect("data")
        session.send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n")
        session.read_until(b"\r\n.\r\n")
        for recipient in recipients:
            pause.wait(PAUSE)  # never set: delivery takes its time
            session.send(f"250 2.0.0 <{recipient}> delivered\r\n".encode())
        session.read_until_eof()

    with ScriptedServer(handler) as server:
        smtp = await adapter.open_lmtp(server.host, server.port, timeout=PATIENT_TIMEOUT)
        assert await adapter.call(smtp.sendmail, SENDER, recipients, MESSAGE) == {}
        assert smtp.lmtp_replies == {
            recipient: (250, f"2.0.0 <{recipient}> delivered".encode()) for recipient in recipients
        }
        smtp.close()


@all_adapters
@pytest.mark.parametrize("timeout_given", ["default", "None"])
async def test_lmtp_unix_socket_delivers(
    adapter: Adapter, aiosmtpd_lmtp_unix: AiosmtpdLMTPServer, timeout_given: str, token: str
) -> None:
    """``LMTP(path)`` with the default timeout, and with ``timeout=None``, delivers."""
    kwargs: dict[str, Any] = {} if timeout_given == "default" else {"timeout": None}
    lmtp = adapter.module.LMTP(
        str(aiosmtpd_lmtp_unix.unix_path), local_hostname=LOCAL_NAME, **kwargs
    )
    if adapter.is_async:
        assert (await lmtp.connect())[0] == 220
    message = f"Subject: {token}\r\n\r\nover LMTP\r\n".encode()
    assert (
        await adapter.call(lmtp.sendmail, SENDER, ["a@example.test", "b@example.test"], message)
        == {}
    )
    assert (await adapter.call(lmtp.quit))[0] == 221
    (record,) = aiosmtpd_lmtp_unix.messages()
    assert record.rcpt_tos == ["a@example.test", "b@example.test"]
    assert token.encode() in record.content
    if timeout_given == "None":
        assert lmtp.timeout is None


def test_sync_lmtp_unix_socket_wait_limits(aiosmtpd_lmtp_unix: AiosmtpdLMTPServer) -> None:
    """The socket's timeout bounds each blocking wait: 600 s by default (smtplib: none)."""
    path = str(aiosmtpd_lmtp_unix.unix_path)
    theirs = stdlib_smtplib.LMTP(path, local_hostname=LOCAL_NAME)
    assert theirs.sock.gettimeout() is None  # smtplib waits forever: the documented difference
    theirs.close()
    default = sync.LMTP(path, local_hostname=LOCAL_NAME)
    assert (default.ehlo())[0] == 250
    limit = default.sock.gettimeout()
    assert limit is not None and DEFAULT_LIMIT - 5 < limit <= DEFAULT_LIMIT
    default.quit()
    unlimited = sync.LMTP(path, local_hostname=LOCAL_NAME, timeout=None)
    assert unlimited.sock.gettimeout() is None
    assert unlimited.ehlo()[0] == 250
    assert unlimited.sock.gettimeout() is None
    unlimited.quit()


class StallsAfterNoop:
    """An LMTP server that answers LHLO, then never answers NOOP; ``waiting`` is set then."""

    def __init__(self) -> None:
        self.waiting = threading.Event()

    def __call__(self, session: Session) -> None:
        session.reply("220 lmtp.test LMTP")
        session.expect("LHLO")
        session.reply("250-lmtp.test", "250 PIPELINING")
        session.expect("NOOP")
        self.waiting.set()
        session.stall()


class SkewedLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test can move forward: deadlines are on ``time()``."""

    skew = 0.0

    def time(self) -> float:
        return super().time() + self.skew


async def settle() -> None:
    """Let the event loop run its ready callbacks and due timers for a while."""
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.parametrize("timeout_given", ["default", "None"])
def test_asyncio_lmtp_unix_socket_wait_limit(tmp_path: Path, timeout_given: str) -> None:
    """A stalled reply fails after 600 s of the loop's clock by default, never with None."""
    adapter_module = Adapter("asyncio").module
    path = str(tmp_path / "lmtp.sock")
    handler = StallsAfterNoop()
    kwargs: dict[str, Any] = {} if timeout_given == "default" else {"timeout": None}
    results: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SkewedLoop)
        lmtp = adapter_module.LMTP(path, local_hostname=LOCAL_NAME, **kwargs)
        assert (await lmtp.connect())[0] == 220
        assert (await lmtp.ehlo())[0] == 250
        task = asyncio.create_task(lmtp.noop())
        assert await asyncio.to_thread(handler.waiting.wait, TIMEOUT)
        loop.skew += DEFAULT_LIMIT - 1
        await settle()
        results["before the limit"] = task.done()
        loop.skew += 2
        await settle()
        results["past the limit"] = task.done()
        loop.skew += 1e6
        await settle()
        results["much later"] = task.done()
        if task.done():
            results["error"] = task.exception()
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        results["connected"] = lmtp.is_connected
        lmtp.close()

    with ScriptedServer(handler, unix_path=path), asyncio.Runner(loop_factory=SkewedLoop) as runner:
        runner.run(main())
    assert results["before the limit"] is False
    if timeout_given == "default":
        assert results["past the limit"] is True
        error = results["error"]
        assert isinstance(error, stdlib_smtplib.SMTPServerDisconnected)
        assert isinstance(error.__cause__, TimeoutError)
        assert results["connected"] is False
    else:
        assert results["much later"] is False
        assert results["connected"] is False  # the cancellation closed it


@pytest.mark.parametrize("timeout_given", ["default", "None"])
def test_trio_lmtp_unix_socket_wait_limit(tmp_path: Path, timeout_given: str) -> None:
    """The same with trio's ``MockClock``: virtual time, moved by hand."""
    adapter_module = Adapter("trio").module
    path = str(tmp_path / "lmtp.sock")
    handler = StallsAfterNoop()
    kwargs: dict[str, Any] = {} if timeout_given == "default" else {"timeout": None}
    clock = trio.testing.MockClock()
    results: dict[str, Any] = {}

    async def main() -> None:
        lmtp = adapter_module.LMTP(path, local_hostname=LOCAL_NAME, **kwargs)
        assert (await lmtp.connect())[0] == 220
        assert (await lmtp.ehlo())[0] == 250
        errors: list[BaseException] = []

        async def noop() -> None:
            start = trio.current_time()
            try:
                await lmtp.noop()
            except stdlib_smtplib.SMTPServerDisconnected as exc:
                errors.append(exc)
                results["waited"] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            nursery.start_soon(noop)
            assert await trio.to_thread.run_sync(handler.waiting.wait, TIMEOUT)
            clock.jump(DEFAULT_LIMIT - 1)
            await trio.testing.wait_all_tasks_blocked()
            results["before the limit"] = list(errors)
            clock.jump(2)
            await trio.testing.wait_all_tasks_blocked()
            results["past the limit"] = list(errors)
            clock.jump(1e6)
            await trio.testing.wait_all_tasks_blocked()
            results["much later"] = list(errors)
            nursery.cancel_scope.cancel()
        results["connected"] = lmtp.is_connected
        lmtp.close()

    with ScriptedServer(handler, unix_path=path):
        trio.run(main, clock=clock)
    assert results["before the limit"] == []
    if timeout_given == "default":
        (error,) = results["past the limit"]
        assert isinstance(error.__cause__, TimeoutError)
        assert DEFAULT_LIMIT <= results["waited"] < DEFAULT_LIMIT + 2
        assert results["connected"] is False
    else:
        assert results["much later"] == []
        assert results["connected"] is False  # the cancellation closed it


# ---------------------------------------------------------------- the constructor


@all_adapters
async def test_lmtp_positional_arguments_as_smtplib(adapter: Adapter) -> None:
    """smtplib's ``LMTP(host, port, local_hostname, source_address, timeout)``."""
    theirs = stdlib_smtplib.LMTP("", stdlib_smtplib.LMTP_PORT, LOCAL_NAME, None, 5.0)
    ours = adapter.module.LMTP("", stdlib_smtplib.LMTP_PORT, LOCAL_NAME, None, 5.0)
    assert (ours.timeout, ours.source_address) == (theirs.timeout, theirs.source_address)
    assert (ours.timeout, ours.source_address) == (5.0, None)
