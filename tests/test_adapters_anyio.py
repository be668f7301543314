"""The async adapters under anyio: asyncio's on anyio's asyncio backend, trio's on its trio
backend, with anyio's own primitives (deadlines, cancel scopes, task groups) around them."""

from __future__ import annotations

import anyio
import pytest
from smtp_proto.transports.testing import CaptureServer

from smtp_proto.errors import SMTPServerDisconnected
from tests.adapters import (
    LOCAL_NAME,
    MESSAGE,
    TIMEOUT,
    Adapter,
    FaultyThenHealthy,
    sends_after_reconnect,
)
from tests.scripted_server import ScriptedServer
from tests.servers.aiosmtpd_server import AiosmtpdServer

BACKENDS = [Adapter("asyncio"), Adapter("trio")]
on_anyio = pytest.mark.parametrize("adapter", BACKENDS, ids=[a.name for a in BACKENDS])


@on_anyio
def test_sendmail_to_the_capture_server(adapter: Adapter) -> None:
    async def main() -> None:
        with anyio.fail_after(10):
            async with adapter.module.SMTP(
                server.host, server.port, local_hostname=LOCAL_NAME
            ) as smtp:
                refused = await smtp.sendmail("a@example.test", ["b@example.test"], MESSAGE)
                assert refused == {}
            assert not smtp.is_connected

    with CaptureServer() as server:
        anyio.run(main, backend=adapter.name)
    (captured,) = server.messages
    assert (captured.mail_from, captured.rcpt_tos) == ("a@example.test", ["b@example.test"])
    assert captured.data == MESSAGE


@on_anyio
def test_task_group_sending_to_aiosmtpd(adapter: Adapter, aiosmtpd_server: AiosmtpdServer) -> None:
    async def main() -> None:
        smtp = adapter.module.SMTP(
            aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME, timeout=10
        )
        async with smtp:
            async with anyio.create_task_group() as tasks:
                for name in ("x", "y"):
                    tasks.start_soon(
                        smtp.sendmail, "a@example.test", f"{name}@example.test", MESSAGE
                    )
            assert await smtp.noop() == (250, b"OK")

    anyio.run(main, backend=adapter.name)
    records = aiosmtpd_server.messages()
    assert sorted(r.rcpt_tos[0] for r in records) == ["x@example.test", "y@example.test"]
    assert all(r.content == MESSAGE for r in records)


@on_anyio
def test_anyio_cancel_scope_closes_the_client(adapter: Adapter) -> None:
    handler = FaultyThenHealthy({"after-data": "stall"})

    async def main() -> None:
        smtp = adapter.new()
        await smtp.connect(server.host, server.port)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tasks:

                async def cancel_at_stall() -> None:
                    stalled = handler.stalled.wait
                    assert await anyio.to_thread.run_sync(stalled, TIMEOUT, abandon_on_cancel=True)
                    scope.cancel()

                tasks.start_soon(cancel_at_stall)
                await smtp.sendmail("s@example.test", ["r@example.test"], MESSAGE)
        assert scope.cancelled_caught
        assert not smtp.is_connected
        with pytest.raises(SMTPServerDisconnected):
            await smtp.noop()
        await sends_after_reconnect(adapter, smtp, server, handler)

    with ScriptedServer(handler) as server:
        anyio.run(main, backend=adapter.name)
