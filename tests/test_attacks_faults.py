"""The fault matrix's remaining cells, on every adapter (``tests/test_adapters_faults.py``
has greeting, EHLO, MAIL, the first RCPT, DATA, mid-body, after the body and QUIT with
PIPELINING): AUTH, STARTTLS, the second RCPT, and every transaction step without
PIPELINING, each with FIN, RST, 421 and a stall.

Each must give a typed exception (no hang, no success reported for a message the server
did not take), a closed object, and an object that connects again and delivers.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from smtp_proto.errors import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from tests.adapters import MESSAGE, Adapter, FaultyThenHealthy, all_adapters, sends_after_reconnect
from tests.scripted_server import ScriptedServer
from tests.servers.certs import LocalCA

STALL_TIMEOUT = 0.5
SLACK = 2.0
SERVICE_CLOSING = (421, b"4.3.2 test.local Service not available, closing")
SENDER, RECIPIENTS = "s@example.test", ["r@example.test", "q@example.test"]
ACTIONS = ["fin", "rst", "421", "stall"]
LOCKSTEP = ["8BITMIME", "SIZE 1000000"]


def check_error(error: BaseException | None, action: str, elapsed: float) -> None:
    """A disconnection for FIN, RST and a stall (after the timeout, from a ``TimeoutError``);
    the 421 itself is checked by the caller."""
    if action != "421":
        assert isinstance(error, SMTPServerDisconnected), repr(error)
    if action == "stall":
        assert STALL_TIMEOUT * 0.9 <= elapsed < STALL_TIMEOUT + SLACK, elapsed
        assert isinstance(error.__cause__, TimeoutError), repr(error.__cause__)
    else:
        assert elapsed < SLACK, f"took {elapsed:.2f} s to notice a {action}"


async def closed_then_reconnects(
    adapter: Adapter, smtp: Any, server: ScriptedServer, handler: FaultyThenHealthy
) -> None:
    """The faulty session left ``smtp`` closed; it connects again and delivers (with the
    usual timeout: the short one of a stall test is no bound for a loaded machine)."""
    assert not adapter.is_connected(smtp)
    with pytest.raises(SMTPServerDisconnected):
        await adapter.call(smtp.noop)
    smtp.timeout = 10.0
    await sends_after_reconnect(adapter, smtp, server, handler)


@all_adapters
@pytest.mark.parametrize("action", ACTIONS)
async def test_fault_at_auth(adapter: Adapter, action: str) -> None:
    handler = FaultyThenHealthy({"auth": action}, auth={"u": "p"})
    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=STALL_TIMEOUT if action == "stall" else 10.0)
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            await adapter.call(smtp.login, "u", "p")
        check_error(info.value, action, time.monotonic() - started)
        if action == "421":
            assert isinstance(info.value, SMTPAuthenticationError), repr(info.value)
            assert (info.value.smtp_code, info.value.smtp_error) == SERVICE_CLOSING
        await closed_then_reconnects(adapter, smtp, server, handler)
    assert handler.faulty.authenticated == []


@all_adapters
@pytest.mark.parametrize("action", ACTIONS)
async def test_fault_at_starttls(adapter: Adapter, action: str, tls_ca: LocalCA) -> None:
    """The server fails on receiving STARTTLS: no handshake, no plaintext after it."""
    handler = FaultyThenHealthy({"starttls": action}, tls_context=tls_ca.server_context())
    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=STALL_TIMEOUT if action == "stall" else 10.0)
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            await adapter.call(smtp.starttls, context=tls_ca.client_context())
        check_error(info.value, action, time.monotonic() - started)
        if action == "421":  # a refused STARTTLS, as smtplib reports one
            assert isinstance(info.value, SMTPResponseException), repr(info.value)
            assert (info.value.smtp_code, info.value.smtp_error) == SERVICE_CLOSING
        await closed_then_reconnects(adapter, smtp, server, handler)
    assert handler.faulty.commands[-1] == b"STARTTLS"
    assert server.sessions[0].received.endswith(b"STARTTLS\r\n")


@all_adapters
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("action", ACTIONS)
async def test_fault_at_the_second_rcpt(adapter: Adapter, action: str, pipelining: bool) -> None:
    """The first recipient was accepted; the fault at the second must not read as a
    partial success."""
    features = {"features": LOCKSTEP} if not pipelining else {}
    handler = FaultyThenHealthy({"rcpt": action}, fail_at_rcpt=2, **features)
    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=STALL_TIMEOUT if action == "stall" else 10.0)
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE)
        check_error(info.value, action, time.monotonic() - started)
        if action == "421":
            assert isinstance(info.value, SMTPRecipientsRefused), repr(info.value)
            assert info.value.recipients == {RECIPIENTS[1]: SERVICE_CLOSING}
        await closed_then_reconnects(adapter, smtp, server, handler)
    assert handler.faulty.envelopes == []


@all_adapters
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("step", ["mail", "rcpt", "data", "body", "after-data"])
async def test_fault_without_pipelining(adapter: Adapter, step: str, action: str) -> None:
    """The lock-step exchange (one command, one reply) fails as the pipelined one does."""
    handler = FaultyThenHealthy({step: action}, features=LOCKSTEP)
    with ScriptedServer(handler) as server:
        smtp = adapter.new(timeout=STALL_TIMEOUT if action == "stall" else 10.0)
        assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE)
        error = info.value
        if step == "body" and action == "421" and isinstance(error, SMTPServerDisconnected):
            action = "fin"  # the 421 came while the body was on its way: the write failed
        check_error(error, action, time.monotonic() - started)
        if action == "421":
            expected = {
                "mail": SMTPSenderRefused,
                "rcpt": SMTPRecipientsRefused,
                "data": SMTPDataError,
                "body": SMTPDataError,
                "after-data": SMTPDataError,
            }[step]
            assert isinstance(error, expected), repr(error)
            if isinstance(error, SMTPResponseException):
                assert (error.smtp_code, error.smtp_error) == SERVICE_CLOSING
            else:
                assert isinstance(error, SMTPRecipientsRefused)
                assert error.recipients == {RECIPIENTS[0]: SERVICE_CLOSING}
        await closed_then_reconnects(adapter, smtp, server, handler)
    delivered = [(e.rcpt_tos, e.data) for e in handler.faulty.envelopes]
    assert delivered == ([(RECIPIENTS, MESSAGE)] if step == "after-data" else [])
