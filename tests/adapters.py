"""One behavioural suite for the three adapters: the harness of ``tests/test_adapters_*.py``.

A test is written once, as an ``async def`` taking an ``adapter`` argument, and decorated
with ``@all_adapters`` (sync, asyncio and trio) or ``@async_adapters`` (asyncio and trio)::

    @all_adapters
    async def test_noop(adapter: Adapter, postfix: PostfixServer) -> None:
        smtp = await adapter.open(postfix.host, postfix.port)
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 Ok")

Every client method that does I/O goes through ``await adapter.call(method, *args)``: for the
sync adapter that calls the blocking method right away (in the test's thread; every test
server runs in another thread or process), for the async ones it awaits the coroutine.
Attributes and plain methods (``has_extn``, ``close``) are used directly.  The test body
runs under ``asyncio.run`` (sync and asyncio) or ``trio.run`` (trio), bounded by ``GUARD``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
import trio
import uvloop

from tests.scripted_server import ScriptedServer, Session, StandardESMTP

__all__ = [
    "GUARD",
    "LOCAL_NAME",
    "MESSAGE",
    "PATIENT_TIMEOUT",
    "PAUSE",
    "TIMEOUT",
    "Adapter",
    "FaultyThenHealthy",
    "all_adapters",
    "async_adapters",
    "on_adapters",
    "send",
    "sends_after_reconnect",
]

LOCAL_NAME = "client.example.test"
#: The clients' own timeout unless a test gives one.
TIMEOUT = 10.0
#: Seconds an async test body may take in all before the harness fails it (a hang guard).
GUARD = 30.0
#: In the slow-but-steady tests: the client's timeout, and the server's pause before each reply.
PATIENT_TIMEOUT = 1.5
PAUSE = 0.9
MESSAGE = b"Subject: adapter test\r\n\r\nbody\r\n"


@dataclass(frozen=True)
class Adapter:
    """One adapter (``"sync"``, ``"asyncio"`` or ``"trio"``) and how to drive it from a test.

    ``loop="uvloop"`` runs the asyncio adapter on uvloop's event loop instead of asyncio's
    own: its transports are not subclasses of ``asyncio.Transport`` and it calls back in its
    own order, so the adapter is proven on both (shown as ``uvloop`` in test ids).
    """

    name: str
    loop: str = ""

    def __repr__(self) -> str:
        return self.loop or self.name

    @property
    def module(self) -> ModuleType:
        """``smtp_proto.transports.<name>``."""
        return importlib.import_module(f"smtp_proto.transports.{self.name}")

    @property
    def is_async(self) -> bool:
        return self.name != "sync"

    # ------------------------------------------------------------------ running a test body

    def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body()`` on this adapter's event loop, failing it after ``GUARD`` seconds."""
        if self.name == "trio":

            async def under_trio() -> None:
                with trio.fail_after(GUARD):
                    await body()

            trio.run(under_trio)
        else:

            async def under_asyncio() -> None:
                async with asyncio.timeout(GUARD):
                    await body()

            with asyncio.Runner(loop_factory=_LOOP_FACTORIES.get(self.loop)) as runner:
                runner.run(under_asyncio())

    async def call(self, method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)``, awaited for an async adapter."""
        result = method(*args, **kwargs)
        assert inspect.isawaitable(result) == self.is_async, f"{method!r} on {self.name}"
        return await result if self.is_async else result

    async def gather(self, *functions: Callable[[], Awaitable[Any]]) -> list[Any]:
        """Run coroutine functions as concurrent tasks (async adapters); their results."""
        if self.name == "asyncio":
            return list(await asyncio.gather(*(function() for function in functions)))
        assert self.name == "trio", "concurrent tasks need an async adapter"
        results: list[Any] = [None] * len(functions)

        async def keep(index: int, function: Callable[[], Awaitable[Any]]) -> None:
            results[index] = await function()

        async with trio.open_nursery() as nursery:
            for index, function in enumerate(functions):
                nursery.start_soon(keep, index, function)
        return results

    async def wait_for(self, event: threading.Event) -> None:
        """Wait until a server thread sets ``event``, without blocking an event loop."""
        if self.name == "asyncio":
            ok = await asyncio.to_thread(event.wait, TIMEOUT)
        elif self.name == "trio":
            ok = await trio.to_thread.run_sync(event.wait, TIMEOUT)
        else:
            ok = event.wait(TIMEOUT)
        assert ok, "the server never reached the expected point"

    # ------------------------------------------------------------------ clients

    def new(self, kind: str = "SMTP", **kwargs: Any) -> Any:
        """An unconnected ``SMTP`` / ``SMTP_SSL`` / ``LMTP`` (no I/O)."""
        kwargs.setdefault("local_hostname", LOCAL_NAME)
        kwargs.setdefault("timeout", TIMEOUT)
        return getattr(self.module, kind)(**kwargs)

    async def open(self, host: str, port: int = 0, *, kind: str = "SMTP", **kwargs: Any) -> Any:
        """A connected client, connected the adapter's usual way: the sync constructor
        connects; an async client is constructed, then ``await client.connect()``."""
        kwargs.setdefault("local_hostname", LOCAL_NAME)
        kwargs.setdefault("timeout", TIMEOUT)
        client = getattr(self.module, kind)(host, port, **kwargs)
        if self.is_async:
            assert not client.is_connected  # the async constructors do no I/O
            code, text = await client.connect()
            assert code == 220, (code, text)
        assert self.is_connected(client)
        return client

    async def open_ssl(self, host: str, port: int, **kwargs: Any) -> Any:
        """A connected ``SMTP_SSL`` (pass ``context=``)."""
        return await self.open(host, port, kind="SMTP_SSL", **kwargs)

    async def open_lmtp(self, host: str, port: int = 0, **kwargs: Any) -> Any:
        """A connected ``LMTP``: ``host`` an absolute Unix socket path, or host and port."""
        return await self.open(host, port, kind="LMTP", **kwargs)

    @asynccontextmanager
    async def connected(
        self, host: str, port: int = 0, *, kind: str = "SMTP", **kwargs: Any
    ) -> AsyncIterator[Any]:
        """The adapter's context manager: ``with SMTP(host, port)`` for sync, ``async with``
        for the async ones (which connects on entry); both QUIT and close on exit."""
        kwargs.setdefault("local_hostname", LOCAL_NAME)
        kwargs.setdefault("timeout", TIMEOUT)
        client = getattr(self.module, kind)(host, port, **kwargs)
        if self.is_async:
            async with client as entered:
                assert entered is client
                yield client
        else:
            with client as entered:
                assert entered is client
                yield client

    async def sessions_done(self, server: ScriptedServer) -> None:
        """Wait until every session's handler on ``server`` returned, without blocking an
        event loop (whose own work, such as really closing an aborted socket, the handlers
        may be waiting for)."""
        if self.name == "asyncio":
            await asyncio.to_thread(server.wait_sessions_done)
        elif self.name == "trio":
            await trio.to_thread.run_sync(server.wait_sessions_done)
        else:
            server.wait_sessions_done()

    def is_connected(self, client: Any) -> bool:
        """Whether ``client`` holds an open connection (sync: ``sock``, async: ``is_connected``)."""
        if self.is_async:
            return bool(client.is_connected)
        return client.sock is not None


async def send(adapter: Adapter, message: Any, host: str, port: int | None, **options: Any) -> Any:
    """``adapter``'s high-level ``send``, with the test suite's local name and timeout."""
    options.setdefault("local_hostname", LOCAL_NAME)
    options.setdefault("timeout", TIMEOUT)
    return await adapter.call(adapter.module.send, message, host, port, **options)


def on_adapters(*names: str) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Turn ``async def test_x(adapter, <fixtures>)`` into a pytest test run once per adapter."""

    def decorate(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        assert inspect.iscoroutinefunction(test), f"{test.__name__} must be an async def"

        @functools.wraps(test)  # pytest reads the fixtures from the wrapped signature
        def run_test(**arguments: Any) -> None:
            adapter: Adapter = arguments["adapter"]
            adapter.run(lambda: test(**arguments))

        adapters = [
            Adapter("asyncio", name) if name in _LOOP_FACTORIES else Adapter(name) for name in names
        ]
        return pytest.mark.parametrize("adapter", adapters, ids=list(names))(run_test)

    return decorate


#: Event loops other than asyncio's own that the asyncio adapter is run on, by name.
_LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop
}

all_adapters = on_adapters("sync", "asyncio", "uvloop", "trio")
async_adapters = on_adapters("asyncio", "uvloop", "trio")


# ---------------------------------------------------------------- a server that fails once


class FaultyThenHealthy:
    """A ``StandardESMTP`` handler: the first session injects ``fail_at``, later ones behave.

    ``stalled`` is set when the first session starts a ``"stall"`` fault, so a test can act
    exactly when the client is left waiting.
    """

    def __init__(self, fail_at: dict[str, str], **options: Any) -> None:
        self.faulty = StandardESMTP(fail_at=fail_at, **options)
        self.healthy = StandardESMTP(**options)
        self.stalled = threading.Event()

    def __call__(self, session: Session) -> None:
        if session.index > 0:
            self.healthy(session)
            return
        stall = session.stall

        def signal_then_stall() -> None:
            self.stalled.set()
            stall()

        session.stall = signal_then_stall  # type: ignore[method-assign]
        self.faulty(session)


async def sends_after_reconnect(
    adapter: Adapter, smtp: Any, server: ScriptedServer, handler: FaultyThenHealthy
) -> None:
    """The closed ``smtp`` connects again (to the healthy session) and delivers ``MESSAGE``.

    With the usual timeout: a stall test's short one is too short for a loaded machine.
    """
    assert not adapter.is_connected(smtp)
    smtp.timeout = TIMEOUT
    assert (await adapter.call(smtp.connect, server.host, server.port))[0] == 220
    assert await adapter.call(smtp.sendmail, "s@example.test", ["r@example.test"], MESSAGE) == {}
    assert await adapter.call(smtp.quit) == (221, b"2.0.0 Bye")
    assert not adapter.is_connected(smtp)
    assert [(e.rcpt_tos, e.data) for e in handler.healthy.envelopes] == [
        (["r@example.test"], MESSAGE)
    ]
