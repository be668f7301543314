"""Helpers shared by the attack tests (``tests/test_attacks_*.py``)."""

from __future__ import annotations

import asyncio

import trio

from tests.adapters import Adapter
from tests.scripted_server import ScriptedServer

__all__ = ["sessions_done"]


async def sessions_done(adapter: Adapter, server: ScriptedServer) -> None:
    """Wait until every session's handler returned, without blocking an event loop (whose
    own work, such as really closing an aborted socket, the handlers may be waiting for)."""
    if adapter.name == "asyncio":
        await asyncio.to_thread(server.wait_sessions_done)
    elif adapter.name == "trio":
        await trio.to_thread.run_sync(server.wait_sessions_done)
    else:
        server.wait_sessions_done()
