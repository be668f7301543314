"""Cancellation and sharing, on the async adapters (asyncio and trio).

The caller's own cancellation (an ``asyncio.timeout`` or ``Task.cancel()``; a trio cancel
scope) may hit a client at any step of a session.  It must propagate as the framework's
cancellation, leave the object closed (never reused half-way through a command), and the
object must then connect again and send.  Two tasks sharing one client take turns: their
transactions never interleave on the wire.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from smtp_proto.errors import SMTPServerDisconnected
from tests.adapters import (
    LOCAL_NAME,
    MESSAGE,
    TIMEOUT,
    Adapter,
    FaultyThenHealthy,
    async_adapters,
    sends_after_reconnect,
)
from tests.offline import smtplib_spelling
from tests.scripted_server import ScriptedServer, Session, StandardESMTP

STEPS = ["greeting", "ehlo", "mail", "rcpt", "data", "body", "after-data", "quit"]


async def session(smtp: Any, server: ScriptedServer) -> None:
    """Connect, send ``MESSAGE`` and quit: one of these steps stalls and never returns."""
    await smtp.connect(server.host, server.port)
    await smtp.sendmail("s@example.test", ["r@example.test"], MESSAGE)
    await smtp.quit()


@asynccontextmanager
async def deadline_at_stall(adapter: Adapter, stalled: threading.Event) -> AsyncIterator[None]:
    """The framework's deadline around the block, expiring once the server sets ``stalled``,
    so it always hits the client while it waits, however slow the machine:
    ``asyncio.timeout`` (raising ``TimeoutError``) or a trio cancel scope's deadline (caught).
    """
    if adapter.name == "asyncio":
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as deadline:

                async def expire_at_stall() -> None:
                    await adapter.wait_for(stalled)
                    deadline.reschedule(loop.time())

                watcher = asyncio.create_task(expire_at_stall())
                try:
                    yield
                finally:
                    watcher.cancel()
        assert deadline.expired()  # this deadline, not the client's own timeout
        return
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def expire_at_stall() -> None:
                assert await trio.to_thread.run_sync(stalled.wait, TIMEOUT, abandon_on_cancel=True)
                scope.deadline = trio.current_time()

            nursery.start_soon(expire_at_stall)
            yield
    assert scope.cancelled_caught


async def cancel_when_stalled(
    adapter: Adapter, work: Callable[[], Awaitable[None]], handler: FaultyThenHealthy
) -> None:
    """Run ``work`` as a task and cancel it once the server stalls: ``Task.cancel()`` (the
    task ends with ``CancelledError``) or ``CancelScope.cancel()`` (the scope catches it)."""
    if adapter.name == "asyncio":
        task = asyncio.create_task(work())
        await adapter.wait_for(handler.stalled)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return
    scope = trio.CancelScope()
    finished = False

    async def run() -> None:
        nonlocal finished
        with scope:
            await work()
            finished = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await adapter.wait_for(handler.stalled)
        scope.cancel()
    assert scope.cancelled_caught and not finished


async def closed_then_reusable(
    adapter: Adapter, smtp: Any, server: ScriptedServer, handler: FaultyThenHealthy, step: str
) -> None:
    assert smtp.is_connected is False
    with pytest.raises(SMTPServerDisconnected, match="please run connect"):
        await smtp.noop()
    await sends_after_reconnect(adapter, smtp, server, handler)
    assert len(handler.faulty.envelopes) == (1 if step in ("after-data", "quit") else 0)


@async_adapters
@pytest.mark.parametrize("step", STEPS)
async def test_deadline_while_waiting(adapter: Adapter, step: str) -> None:
    handler = FaultyThenHealthy({step: "stall"})
    with ScriptedServer(handler) as server:
        smtp = adapter.new()
        async with deadline_at_stall(adapter, handler.stalled):
            await session(smtp, server)
        await closed_then_reusable(adapter, smtp, server, handler, step)


@async_adapters
@pytest.mark.parametrize("step", STEPS)
async def test_cancelled_while_waiting(adapter: Adapter, step: str) -> None:
    handler = FaultyThenHealthy({step: "stall"})
    with ScriptedServer(handler) as server:
        smtp = adapter.new()
        await cancel_when_stalled(adapter, lambda: session(smtp, server), handler)
        await closed_then_reusable(adapter, smtp, server, handler, step)


@async_adapters
async def test_cancelled_command_by_command(adapter: Adapter) -> None:
    """The steps one method at a time: a deadline on ``rcpt`` leaves nothing half-done."""
    handler = FaultyThenHealthy({"rcpt": "stall"})
    with ScriptedServer(handler) as server:
        smtp = adapter.new()
        await smtp.connect(server.host, server.port)
        await smtp.ehlo()
        assert (await smtp.mail("s@example.test"))[0] == 250
        async with deadline_at_stall(adapter, handler.stalled):
            await smtp.rcpt("r@example.test")
        await closed_then_reusable(adapter, smtp, server, handler, "rcpt")
    assert handler.faulty.commands == [
        f"ehlo {LOCAL_NAME}".encode(),
        smtplib_spelling(b"mail FROM:<s@example.test>"),
        smtplib_spelling(b"rcpt TO:<r@example.test>"),
    ]


@async_adapters
async def test_cancelled_during_the_tls_handshake(adapter: Adapter) -> None:
    handshake_stalled = threading.Event()
    healthy = StandardESMTP()

    def handler(s: Session) -> None:
        if s.index > 0:
            healthy(s)
            return
        s.reply("220 tls.example.test ESMTP")
        s.expect("ehlo ")
        s.reply("250-tls.example.test", "250 STARTTLS")
        s.expect("starttls")
        s.reply("220 2.0.0 Go ahead")
        handshake_stalled.set()
        s.stall()  # and never answers the client's TLS hello

    with ScriptedServer(handler) as server:
        smtp = adapter.new()
        await smtp.connect(server.host, server.port)
        async with deadline_at_stall(adapter, handshake_stalled):
            await smtp.starttls()
        assert smtp.is_connected is False
        assert await smtp.connect(server.host, server.port) == (220, b"test.local ESMTP")
        assert await smtp.noop() == (250, b"2.0.0 OK")
        assert await smtp.quit() == (221, b"2.0.0 Bye")


def message(name: str) -> bytes:
    return f"Subject: from task {name}\r\n\r\n".encode() + f"line {name}\r\n".encode() * 2000


@async_adapters
async def test_two_tasks_share_one_connection(adapter: Adapter) -> None:
    srv = StandardESMTP()
    with ScriptedServer(srv) as server:
        smtp = await adapter.open(server.host, server.port)

        async def send(name: str) -> dict[str, tuple[int, bytes]]:
            return await smtp.sendmail(f"{name}@sender.test", [f"{name}@rcpt.test"], message(name))

        assert await adapter.gather(lambda: send("a"), lambda: send("b")) == [{}, {}]
        assert await smtp.quit() == (221, b"2.0.0 Bye")

    order = [envelope.mail_from.split("@")[0] for envelope in srv.envelopes]
    assert sorted(order) == ["a", "b"]
    expected = [f"ehlo {LOCAL_NAME}".encode()]  # one EHLO: the second task saw it done
    for name, envelope in zip(order, srv.envelopes, strict=True):
        assert envelope.rcpt_tos == [f"{name}@rcpt.test"]
        assert envelope.data == message(name)
        expected += [
            smtplib_spelling(f"mail FROM:<{name}@sender.test> size={len(message(name))}".encode()),
            smtplib_spelling(f"rcpt TO:<{name}@rcpt.test>".encode()),
            b"data",
        ]
    assert srv.commands == [*expected, b"quit"]
