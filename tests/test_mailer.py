"""``Mailer`` on every adapter: many messages over a few connections, pipelined, against the
capture server, the scripted server (a connection dropped mid-window, retries) and real MTAs
(Postfix, Exim: every message arrives intact, under its own sender)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import pytest
import trio
from smtp_proto.transports.testing import CaptureServer
from smtp_proto.transports.testing.wire import _Disconnect

from smtp_proto.batch import Outgoing
from smtp_proto.errors import SMTPServerDisconnected
from smtp_proto.send import SendResult, SMTPAllRecipientsRefused
from tests.adapters import (
    LOCAL_NAME,
    TIMEOUT,
    Adapter,
    FaultyThenHealthy,
    all_adapters,
    async_adapters,
)
from tests.scripted_server import ScriptedServer, Session, StandardESMTP, _StandardSession
from tests.servers.exim import EximServer
from tests.servers.postfix import PostfixServer
from tests.servers.util import wait_until


@contextlib.asynccontextmanager
async def open_mailer(adapter: Adapter, host: str, port: int, **options: Any) -> AsyncIterator[Any]:
    """The adapter's ``Mailer`` in its ``with`` (or ``async with``) block."""
    options.setdefault("local_hostname", LOCAL_NAME)
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("tls", "none")
    mailer = adapter.module.Mailer(host, port, **options)
    if adapter.is_async:
        async with mailer as entered:
            yield entered
    else:
        with mailer as entered:
            yield entered


async def each(adapter: Adapter, results: Any) -> list[Any]:
    """The items of a ``stream`` (an async iterator for the async adapters)."""
    if adapter.is_async:
        return [item async for item in results]
    return list(results)


async def concurrently(adapter: Adapter, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once: as tasks (async adapters) or in threads (sync)."""
    if adapter.is_async:
        return await adapter.gather(*calls)
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def outgoing(index: int, token: str = "", **options: Any) -> Outgoing:
    """Message ``index``, complete (an MTA adds only trace fields to it)."""
    body = (
        f"From: sender{index}@example.test\r\nTo: rcpt{index}@example.test\r\n"
        f"Date: Mon, 7 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{index}.{token}@example.test>\r\n"
        f"Subject: {token} message {index}\r\n\r\nbody of message {index}\r\n.dot line\r\n"
    )
    options.setdefault("sender", f"sender{index}@example.test")
    options.setdefault("recipients", [f"rcpt{index}@example.test"])
    return Outgoing(body.encode(), **options)


def sessions(commands: list[str]) -> int:
    return sum(command.lower().startswith("ehlo") for command in commands)


# ---------------------------------------------------------------- the capture server


@all_adapters
async def test_send_many_delivers_every_message_intact_pipelined(adapter: Adapter) -> None:
    messages = [outgoing(n) for n in range(30)]
    with CaptureServer() as server:
        async with open_mailer(adapter, server.host, server.port, connections=2) as mailer:
            results = await adapter.call(mailer.send_many, messages)
        commands = server.commands
        captured = server.messages
    assert [type(result) for result in results] == [SendResult] * 30
    assert all(result.ok and result.queue_id for result in results)
    assert len({result.queue_id for result in results}) == 30
    by_sender = {message.mail_from: message for message in captured}
    assert len(by_sender) == len(captured) == 30
    for sent in messages:
        arrived = by_sender[str(sent.sender)]
        assert arrived.data == sent.message and arrived.rcpt_tos == sent.recipients
        assert arrived.chunked
    assert "rset" in commands  # a transaction went out behind another awaiting its replies
    assert sessions(commands) <= 2
    assert commands.count("quit") == sessions(commands)  # every connection said QUIT


@all_adapters
@pytest.mark.parametrize("way", ["data", "lmtp", "streamed"])
async def test_messages_that_cannot_be_pipelined_go_one_by_one(adapter: Adapter, way: str) -> None:
    """DATA (chunking=False), LMTP and a body read from an iterable take the ordinary
    transaction, each alone on the connection: all arrive intact, with send()'s results."""
    messages = [outgoing(n) for n in range(5)]
    options: dict[str, Any] = {"chunking": False} if way == "data" else {}
    if way == "lmtp":
        options["lmtp"] = True
    if way == "streamed":
        messages = [
            Outgoing(iter([bytes(m.message)]), sender=m.sender, recipients=m.recipients)
            for m in messages
        ]
    with CaptureServer(lmtp=way == "lmtp") as server:
        async with open_mailer(adapter, server.host, server.port, **options) as mailer:
            results = await adapter.call(mailer.send_many, messages)
        captured = {message.mail_from: message for message in server.messages}
        commands = server.commands
    assert all(isinstance(result, SendResult) for result in results), results
    if way == "lmtp":
        assert all(result.data_reply is None and result.lmtp_replies for result in results)
    for n in range(5):
        arrived = captured[f"sender{n}@example.test"]
        assert arrived.data == outgoing(n).message
        assert arrived.chunked is (way != "data")
    assert "rset" not in commands  # nothing in flight behind another, nothing refused


@all_adapters
async def test_a_refusal_affects_only_its_own_message(adapter: Adapter) -> None:
    refuse = {"nobody@example.test": (550, "5.1.1 No such user")}
    messages: list[Any] = [outgoing(n) for n in range(8)]
    messages[3] = outgoing(3, recipients=["nobody@example.test", "rcpt3@example.test"])
    messages[5] = outgoing(5, recipients=["nobody@example.test"])
    messages[6] = Outgoing(b"x", sender="s@example.test", recipients=[])  # no recipient
    with CaptureServer(refuse=refuse) as server:
        async with open_mailer(adapter, server.host, server.port, window=8) as mailer:
            results = await adapter.call(mailer.send_many, messages)
        delivered = sorted(message.mail_from for message in server.messages)
    assert isinstance(results[6], ValueError)
    assert isinstance(results[5], SMTPAllRecipientsRefused)
    assert results[5].recipients == {"nobody@example.test": (550, b"5.1.1 No such user")}
    partial = results[3]
    assert isinstance(partial, SendResult) and list(partial.accepted) == ["rcpt3@example.test"]
    assert partial.refused["nobody@example.test"].code == 550
    ok = [n for n in range(8) if n not in (5, 6)]
    assert all(isinstance(results[n], SendResult) for n in ok)
    assert delivered == sorted(f"sender{n}@example.test" for n in ok)


@all_adapters
async def test_send_from_many_callers_at_once(adapter: Adapter) -> None:
    with CaptureServer(refuse={"refused@x": (550, "5.1.1 No")}) as server:
        async with open_mailer(adapter, server.host, server.port, connections=3) as mailer:
            calls = [
                lambda n=n: mailer.send(
                    b"Subject: %d\r\n\r\nhello\r\n" % n,
                    sender=f"s{n}@example.test",
                    recipients=f"r{n}@example.test",
                )
                for n in range(12)
            ]
            results = await concurrently(adapter, calls)
            with pytest.raises(SMTPAllRecipientsRefused):
                await adapter.call(mailer.send, b"x", sender="s@x", recipients="refused@x")
        captured = {message.mail_from: message.data for message in server.messages}
    assert all(isinstance(result, SendResult) for result in results)
    assert captured == {
        f"s{n}@example.test": b"Subject: %d\r\n\r\nhello\r\n" % n for n in range(12)
    }


@all_adapters
async def test_stream_yields_each_result_once_reading_the_messages_as_it_goes(
    adapter: Adapter,
) -> None:
    read: list[int] = []

    def messages() -> Iterator[Outgoing]:
        for n in range(50):
            read.append(n)
            yield outgoing(n)

    with CaptureServer() as server:
        async with open_mailer(adapter, server.host, server.port, window=2) as mailer:
            stream = mailer.stream(messages())
            first = await (anext(stream) if adapter.is_async else _next(stream))
            ahead = len(read)
            rest = await each(adapter, stream)
    assert ahead <= 1 * 2 * 2 + 1  # connections * window * 2 given to the pool, one more read
    indexes = sorted(index for index, _ in [first, *rest])
    assert indexes == list(range(50))
    assert all(isinstance(result, SendResult) for _, result in [first, *rest])


async def _next(iterator: Iterator[Any]) -> Any:
    return next(iterator)


@all_adapters
async def test_connections_are_replaced_after_their_limit(adapter: Adapter) -> None:
    extensions = ["PIPELINING", "CHUNKING", "8BITMIME", "LIMITS MAILMAX=3 RCPTMAX=100"]
    with CaptureServer() as server, CaptureServer(extensions=extensions) as limited:
        async with open_mailer(
            adapter, server.host, server.port, max_messages_per_connection=2
        ) as mailer:
            await adapter.call(mailer.send_many, [outgoing(n) for n in range(7)])
        async with open_mailer(adapter, limited.host, limited.port) as mailer:
            await adapter.call(mailer.send_many, [outgoing(n) for n in range(7)])
        assert len(server.messages) == len(limited.messages) == 7
        assert sessions(server.commands) == 4  # 2 + 2 + 2 + 1
        assert sessions(limited.commands) == 3  # the server's MAILMAX: 3 + 3 + 1


@all_adapters
async def test_a_message_over_the_server_limits_goes_as_several_transactions(
    adapter: Adapter,
) -> None:
    extensions = ["PIPELINING", "CHUNKING", "LIMITS RCPTMAX=2 RCPTDOMAINMAX=1"]
    recipients = ["a@x.test", "b@y.test", "c@x.test", "d@x.test", "e@y.test"]
    with CaptureServer(extensions=extensions) as server:
        async with open_mailer(adapter, server.host, server.port) as mailer:
            result = await adapter.call(
                mailer.send,
                b"Subject: limits\r\n\r\nhi\r\n",
                sender="s@x.test",
                recipients=recipients,
            )
        parts = [message.rcpt_tos for message in server.messages]
    assert sorted(parts) == [["a@x.test", "c@x.test"], ["b@y.test", "e@y.test"], ["d@x.test"]]
    assert isinstance(result, SendResult) and sorted(result.accepted) == recipients
    assert result.queue_id is not None


@all_adapters
async def test_a_mailer_sends_only_inside_its_block(adapter: Adapter) -> None:
    mailer = adapter.module.Mailer("127.0.0.1", 25, tls="none")
    with pytest.raises(RuntimeError, match="with block"):
        await adapter.call(mailer.send, b"x", sender="s@x", recipients="r@x")
    with pytest.raises(TypeError, match="belong to each message"):
        adapter.module.Mailer("127.0.0.1", 25, sender="s@x")
    for bad in ({"tls": "sometimes"}, {"rate": 0}, {"window": 0}, {"retries": -1}):
        with pytest.raises(ValueError):
            adapter.module.Mailer("127.0.0.1", 25, **bad)


@all_adapters
async def test_recipients_refused_for_now_are_sent_again_alone(adapter: Adapter) -> None:
    """``once`` gets a 451 at its first RCPT, ``always`` at every one, ``gone`` a 550: the
    message is delivered to ``ok`` and, in a second transaction of the two refused for now,
    to ``once``; ``always`` goes a third time alone (retries=2), and the result says each
    one's last reply."""
    attempts: Counter[str] = Counter()

    def reject(address: str) -> tuple[int, str] | None:
        local = address.partition("@")[0]
        attempts[local] += 1
        if local == "gone":
            return 550, "5.1.1 No such user"
        if local == "always" or (local == "once" and attempts[local] == 1):
            return 451, f"4.3.0 Try again later ({attempts[local]})"
        return None

    handler = StandardESMTP(chunking=True, reject=reject)
    recipients = ["ok@x.test", "once@x.test", "always@x.test", "gone@x.test"]
    with ScriptedServer(handler) as server:
        async with open_mailer(adapter, server.host, server.port, backoff=0) as mailer:
            result = await adapter.call(
                mailer.send, b"Subject: s\r\n\r\nhi\r\n", sender="s@x.test", recipients=recipients
            )
        await adapter.sessions_done(server)
    assert [envelope.rcpt_tos for envelope in handler.envelopes] == [
        ["ok@x.test"],
        ["once@x.test"],
    ]
    assert attempts == {"ok": 1, "once": 2, "always": 3, "gone": 1}
    assert isinstance(result, SendResult)
    assert list(result.accepted) == ["ok@x.test", "once@x.test"]
    assert {r: reply.as_tuple() for r, reply in result.refused.items()} == {
        "always@x.test": (451, b"4.3.0 Try again later (3)"),
        "gone@x.test": (550, b"5.1.1 No such user"),
    }
    assert len(server.sessions) == 1


# ---------------------------------------------------------------- lost connections


class _DropsAtMail(_StandardSession):
    """The capture server's dialogue, closing the connection instead of answering its
    ``drop_at``-th MAIL."""

    def __init__(self, behaviour: StandardESMTP, session: Session, drop_at: int) -> None:
        super().__init__(behaviour, session)
        self.mails, self.drop_at = 0, drop_at

    def cue(self, step: str) -> Any:
        if step == "MAIL":
            self.mails += 1
            if self.mails == self.drop_at:
                self.wire.close()
                raise _Disconnect
        return super().cue(step)


class DropOnce:
    """A handler whose first session drops at its ``drop_at``-th MAIL; the others behave."""

    def __init__(self, drop_at: int) -> None:
        self.standard = StandardESMTP(chunking=True)
        self.drop_at = drop_at

    def __call__(self, session: Session) -> None:
        if session.index > 0:
            self.standard(session)
            return
        with contextlib.suppress(_Disconnect, ConnectionError):
            _DropsAtMail(self.standard, session, self.drop_at).run()


@all_adapters
async def test_a_dropped_connection_replays_only_what_it_never_answered(adapter: Adapter) -> None:
    """The connection drops at the third message, three more in flight behind it: those
    four go again on a new connection without using up an attempt (retries=0), the two
    answered are not sent again."""
    handler = DropOnce(drop_at=3)
    messages = [outgoing(n) for n in range(7)]
    with ScriptedServer(handler) as server:
        async with open_mailer(adapter, server.host, server.port, window=4, retries=0) as mailer:
            results = await adapter.call(mailer.send_many, messages)
        await adapter.sessions_done(server)
    assert all(isinstance(result, SendResult) for result in results), results
    senders = [envelope.mail_from for envelope in handler.standard.envelopes]
    assert sorted(senders) == sorted(str(m.sender) for m in messages)  # each one once
    assert len(server.sessions) == 2


@all_adapters
async def test_a_message_the_connection_failed_on_is_retried(adapter: Adapter) -> None:
    """A fresh connection drops at the first MAIL: that attempt counts."""
    for retries, expected in ((0, SMTPServerDisconnected), (1, SendResult)):
        handler = DropOnce(drop_at=1)
        with ScriptedServer(handler) as server:
            async with open_mailer(
                adapter, server.host, server.port, retries=retries, backoff=0
            ) as mailer:
                results = await adapter.call(mailer.send_many, [outgoing(0)])
            await adapter.sessions_done(server)
        assert isinstance(results[0], expected), results
        assert len(handler.standard.envelopes) == retries


@all_adapters
async def test_a_server_that_cannot_be_reached_fails_each_message(adapter: Adapter) -> None:
    with CaptureServer() as server:
        host, port = server.host, server.port
    async with open_mailer(adapter, host, port, retries=1, backoff=0) as mailer:
        results = await adapter.call(mailer.send_many, [outgoing(0), outgoing(1)])
    assert all(isinstance(result, ConnectionRefusedError) for result in results)


@async_adapters
async def test_a_cancelled_mailer_ends_its_messages_unsent(adapter: Adapter) -> None:
    """The server goes silent at MAIL; the task holding the mailer's block is cancelled:
    the block ends at once, and a message another task is waiting for ends with an error
    instead of hanging."""
    handler = FaultyThenHealthy({"mail": "stall"}, chunking=True)
    outcome: list[BaseException] = []
    entered = trio.Event() if adapter.name == "trio" else asyncio.Event()
    with ScriptedServer(handler) as server:
        mailer = adapter.module.Mailer(
            server.host, server.port, tls="none", local_hostname=LOCAL_NAME, timeout=TIMEOUT
        )

        async def hold() -> None:
            async with mailer:
                entered.set()
                await (trio.sleep_forever() if adapter.name == "trio" else asyncio.Event().wait())

        async def send() -> None:
            await entered.wait()
            try:
                await mailer.send(b"x", sender="s@example.test", recipients="r@example.test")
            except SMTPServerDisconnected as exc:
                outcome.append(exc)

        await cancel_when(adapter, hold, send, handler.stalled)
    (error,) = outcome
    assert "stopped before the message was sent" in str(error)


async def cancel_when(
    adapter: Adapter,
    hold: Callable[[], Awaitable[None]],
    send: Callable[[], Awaitable[None]],
    ready: threading.Event,
) -> None:
    """Run ``hold`` and ``send`` as tasks; cancel ``hold`` when ``ready`` is set (by a server
    thread), then let ``send`` finish."""
    if adapter.name == "trio":
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def held() -> None:
                with scope:
                    await hold()

            nursery.start_soon(held)
            nursery.start_soon(send)
            await adapter.wait_for(ready)
            scope.cancel()
        return
    holder = asyncio.create_task(hold())
    sender = asyncio.create_task(send())
    await adapter.wait_for(ready)
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    await sender


# ---------------------------------------------------------------- a cancelled send


class _HoldingSession(_StandardSession):
    """The capture server's dialogue, holding its reply to EHLO, or to a MAIL from a given
    sender, as ``Holding`` says."""

    def __init__(self, holding: Holding, session: Session) -> None:
        super().__init__(holding.standard, session)
        self.holding = holding

    def do_ehlo(self, argument: str, verb: str = "EHLO") -> None:
        self.holding.hold("EHLO")
        super().do_ehlo(argument, verb)

    def do_mail(self, argument: str) -> None:
        match = re.search(r"<([^>]*)>", argument)
        sender = match[1] if match else ""
        self.holding.hold(sender)
        if sender in self.holding.quit_first:
            self.read_to_quit()
        super().do_mail(argument)

    def read_to_quit(self) -> None:
        """Read ahead until QUIT has come (a TimeoutError, failing the test, if it does not
        without a reply first)."""
        deadline = time.monotonic() + TIMEOUT
        while b"quit\r\n" not in self.session.buffer.lower():
            assert self.session._fill(deadline), "the client hung up without QUIT"


class Holding:
    """A handler that answers the first command for ``key`` (``"EHLO"``, or a sender's
    address: its MAIL) only once the test sets ``release``; ``arrived`` is set when that
    command comes.  The MAIL of a sender in ``quit_first`` is answered only once QUIT has
    arrived behind it.  The rest of the dialogue is the capture server's."""

    def __init__(self, key: str = "", quit_first: frozenset[str] = frozenset()) -> None:
        self.standard = StandardESMTP(chunking=True)
        self.key, self.quit_first = key, quit_first
        self.arrived, self.release = threading.Event(), threading.Event()

    def hold(self, key: str) -> None:
        if key == self.key and not self.arrived.is_set():
            self.arrived.set()
            assert self.release.wait(TIMEOUT), "the test never released the reply"

    def __call__(self, session: Session) -> None:
        with contextlib.suppress(_Disconnect, ConnectionError):
            _HoldingSession(self, session).run()

    @property
    def senders(self) -> list[str]:
        """The sender of each message received."""
        return [envelope.mail_from for envelope in self.standard.envelopes]


async def send_cancelled(
    adapter: Adapter, mailer: Any, sender: str, ready: threading.Event | None
) -> None:
    """``mailer.send`` a message from ``sender`` in a task, and cancel the task once the
    message is in the pool and ``ready`` (set by a server thread) is set: asyncio's
    ``Task.cancel``, or a trio cancel scope.  The cancellation propagates out of ``send``."""
    submitted = trio.Event() if adapter.name == "trio" else asyncio.Event()
    submit = mailer._submit

    def submitting(job: Any) -> None:
        submit(job)
        submitted.set()

    mailer._submit = submitting
    send = partial(mailer.send, b"Subject: withdrawn\r\n\r\nx\r\n", sender=sender, recipients="r@x")
    if adapter.name == "trio":
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await submitted.wait()
                if ready is not None:
                    await adapter.wait_for(ready)
                scope.cancel()
        assert scope.cancelled_caught
    else:
        task = asyncio.create_task(send())
        await submitted.wait()
        if ready is not None:
            await adapter.wait_for(ready)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    del mailer._submit


@async_adapters
@pytest.mark.parametrize("where", ["queued", "connecting", "written"])
async def test_a_cancelled_send_withdraws_its_message_unless_written(
    adapter: Adapter, where: str
) -> None:
    """The message is cancelled while it waits in the queue (the one connection's window
    of one is taken by a message whose MAIL reply is held), while its connection is being
    opened (the EHLO reply held), or once written (its MAIL reply held): the first two never
    reach the server, the last one arrives once.  The pool goes on with the next message
    on the same connection."""
    held = {"queued": "first@example.test", "connecting": "EHLO", "written": "gone@example.test"}
    handler = Holding(held[where])
    with ScriptedServer(handler) as server:
        async with open_mailer(adapter, server.host, server.port, window=1) as mailer:

            async def cancel() -> None:
                if where == "queued":  # behind the first message, in flight
                    await adapter.wait_for(handler.arrived)
                    await send_cancelled(adapter, mailer, "gone@example.test", None)
                else:
                    await send_cancelled(adapter, mailer, "gone@example.test", handler.arrived)
                handler.release.set()

            first = partial(mailer.send, b"x", sender="first@example.test", recipients="r@x")
            await adapter.gather(cancel, *([first] if where == "queued" else []))
            await mailer.send(b"y", sender="last@example.test", recipients="r@x")
        await adapter.sessions_done(server)
    expected = {
        "queued": ["first@example.test", "last@example.test"],
        "connecting": ["last@example.test"],
        "written": ["gone@example.test", "last@example.test"],
    }
    assert handler.senders == expected[where]
    assert len(server.sessions) == 1


# ---------------------------------------------------------------- QUIT behind the last message


@all_adapters
async def test_a_spent_connection_sends_quit_behind_its_last_transaction(adapter: Adapter) -> None:
    """Two messages per connection: the server answers each connection's second MAIL only
    once QUIT has come behind it, which a client waiting for that message's replies before
    its QUIT would never send."""
    messages = [outgoing(n) for n in range(4)]
    handler = Holding(quit_first=frozenset({"sender1@example.test", "sender3@example.test"}))
    with ScriptedServer(handler) as server:
        async with open_mailer(
            adapter, server.host, server.port, max_messages_per_connection=2
        ) as mailer:
            results = await adapter.call(mailer.send_many, messages)
        await adapter.sessions_done(server)
    assert all(isinstance(result, SendResult) for result in results), results
    assert sorted(handler.senders) == [f"sender{n}@example.test" for n in range(4)]
    assert len(server.sessions) == 2
    assert [c for c in handler.standard.commands if c.lower() == b"quit"] == [b"quit"] * 2


@async_adapters
async def test_a_closing_mailer_sends_quit_behind_the_last_message(adapter: Adapter) -> None:
    """The block ends while the first of two messages awaits its replies (the window of one
    full): the second one goes out with QUIT behind it, and the server answers its MAIL only
    once QUIT has come."""
    messages = [outgoing(0), outgoing(1)]
    handler = Holding("sender0@example.test", quit_first=frozenset({"sender1@example.test"}))
    results: list[Any] = []
    entered = trio.Event() if adapter.name == "trio" else asyncio.Event()
    with ScriptedServer(handler) as server:
        mailer = adapter.module.Mailer(
            server.host, server.port, tls="none", window=1, local_hostname=LOCAL_NAME
        )

        async def close_while_busy() -> None:
            async with mailer:
                entered.set()
                await adapter.wait_for(handler.arrived)  # both given, the first written
                handler.release.set()

        async def send() -> None:
            await entered.wait()
            results.extend(await mailer.send_many(messages))

        await adapter.gather(close_while_busy, send)
        await adapter.sessions_done(server)
    assert all(isinstance(result, SendResult) for result in results), results
    assert handler.senders == ["sender0@example.test", "sender1@example.test"]


# ---------------------------------------------------------------- real servers


def return_path(delivered: bytes) -> str:
    match = re.search(rb"^Return-[Pp]ath: <([^>]*)>", delivered, re.MULTILINE)
    assert match is not None, delivered[:300]
    return match[1].decode()


async def many_to_a_real_server(
    adapter: Adapter, server: PostfixServer | EximServer, token: str, connections: int
) -> None:
    """Twenty messages, one with a refused recipient and one refused to everyone in the
    middle of a window, each from its own sender: every one accepted arrives intact (on one
    connection, the message after the refused one is pipelined behind it).  A connection
    takes seven transactions, the last with QUIT behind it."""
    messages = [outgoing(n, token) for n in range(20)]
    messages[7] = outgoing(7, token, recipients=["reject-me@example.test", "rcpt7@example.test"])
    messages[8] = outgoing(8, token, recipients=["reject-all@example.test"])
    async with open_mailer(
        adapter,
        server.host,
        server.port,
        connections=connections,
        window=6,
        max_messages_per_connection=7,
    ) as mailer:
        results = await adapter.call(mailer.send_many, messages)
    refusal = results[8]
    assert isinstance(refusal, SMTPAllRecipientsRefused)
    assert refusal.recipients["reject-all@example.test"][0] == 550
    assert list(results[7].refused) == ["reject-me@example.test"]
    accepted = [n for n in range(20) if n != 8]
    assert all(isinstance(results[n], SendResult) and results[n].queue_id for n in accepted)
    needle = token.encode()
    delivered = wait_until(
        lambda: (
            found if len(found := [m for m in server.messages() if needle in m]) >= 19 else None
        ),
        10.0,
        f"19 deliveries containing {token}",
    )
    by_sender = {return_path(message): message for message in delivered}
    assert sorted(by_sender) == sorted(f"sender{n}@example.test" for n in accepted)
    for n in accepted:
        sent = messages[n].message
        assert isinstance(sent, bytes)
        arrived = by_sender[f"sender{n}@example.test"].replace(b"\r\n", b"\n")
        assert arrived.endswith(sent.replace(b"\r\n", b"\n")), arrived[-200:]


@all_adapters
async def test_many_messages_pipelined_to_postfix(
    adapter: Adapter, postfix: PostfixServer, token: str
) -> None:
    await many_to_a_real_server(adapter, postfix, token, connections=2)


@all_adapters
async def test_many_messages_pipelined_to_exim(
    adapter: Adapter, exim: EximServer, token: str
) -> None:
    """Exim keeps a refused transaction's sender: the message pipelined after the one
    refused to everyone arrives under its own sender all the same (the RSET before it)."""
    await many_to_a_real_server(adapter, exim, token, connections=1)
