"""``Mailer``, sending at volume, as blocking calls (the sync adapter).

GENERATED from ``_mailer_async.py`` by ``tools/unasync.py``: edit that file, not this one.
Every decision is the core's (``smtp_proto.batch``): this is the pool's plumbing.  Each worker
owns one connection at a time: it waits for a message, opens a session (an adapter client
object, as ``send`` makes it), and runs ``lane_gen`` on it, which sends that message and any
others ready, pipelined.  A framework supplies a lock (none is needed on an event loop), an
event, its clock, a timed wait, and the starting and joining of the workers.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeAlias, Unpack

from smtp_proto.batch import (
    Dispatcher,
    Job,
    Lane,
    Outcome,
    Outgoing,
    RetryPolicy,
    Split,
    Template,
    lane_gen,
)
from smtp_proto.errors import SMTPConnectError, SMTPException, SMTPServerDisconnected
from smtp_proto.proxy import as_proxy
from smtp_proto.send import SendResult

from ._send import MailerOptions, MessageOptions, SendMessage, new_client, split_options

__all__ = ["SyncMailer", "Item"]

#: A message for ``send_many`` and ``stream``: an ``EmailMessage`` (its envelope from its
#: headers), or any message ``send`` takes as an ``Outgoing`` with its envelope.
Item: TypeAlias = SendMessage | Outgoing


class SyncMailer:
    """Sends many messages to one server over a few connections, pipelined.

    ``options`` are ``send``'s (but the envelope, which is each message's); the pool's own:
    ``connections`` (at most that many open at once), ``window`` (transactions in flight on
    one connection), ``max_messages_per_connection`` (the connection is replaced after so many
    transactions; the server's RFC 9422 MAILMAX too), ``rate`` (messages per second across
    the pool, at most), ``retries`` and ``backoff`` (a message that failed for a passing
    reason is sent again up to ``retries`` times, after ``backoff`` seconds, doubling; so are
    recipients refused with a 4xx, in a transaction of their own).  Each message's result is
    the one ``send`` would give it (merged over its transactions when it took several).
    """

    #: The adapter's ``SMTP``, ``SMTP_SSL`` and ``LMTP``.
    _classes: tuple[Any, Any, Any]

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        connections: int = 1,
        window: int = 100,
        max_messages_per_connection: int | None = None,
        rate: float | None = None,
        retries: int = 2,
        backoff: float = 1.0,
        **options: Unpack[MailerOptions],
    ) -> None:
        if connections < 1 or window < 1:
            raise ValueError("connections and window must be at least 1")
        if max_messages_per_connection is not None and max_messages_per_connection < 1:
            raise ValueError("max_messages_per_connection must be at least 1")
        arguments, self._connection, self._debuglevel = split_options(options)
        if "proxy" in self._connection:  # a bad URL, or no extra, refused now, not per message
            self._connection["proxy"] = as_proxy(self._connection["proxy"])
        self._template = Template(host, port, arguments)
        self._dispatcher = Dispatcher(RetryPolicy(retries, backoff), rate)
        self._connections = connections
        self._window = window
        self._max_messages = max_messages_per_connection
        self._lock = self._make_lock()
        self._signal = self._new_event()  # set, and replaced, whenever there is news
        self._running = False  # the workers started
        self._closing = False

    # ------------------------------------------------------------------ the framework's part

    def _make_lock(self) -> AbstractContextManager[Any]:
        """What serialises the pool's bookkeeping (a no-op on an event loop)."""
        raise NotImplementedError

    def _new_event(self) -> Any:
        """A fresh, unset event (``set()``, ``wait()``)."""
        raise NotImplementedError

    def _now(self) -> float:
        """The framework's clock, in seconds."""
        raise NotImplementedError

    def _wait(self, event: Any, timeout: float | None) -> None:
        """Wait until ``event`` is set, ``timeout`` seconds at most (``None``: no limit)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ sending

    def send(self, message: SendMessage, **options: Unpack[MessageOptions]) -> SendResult:
        """Send one message; returns or raises what ``send`` would.  Safe from many tasks (or,
        for the blocking adapter, threads) at once.

        Cancelled (or interrupted) while it waits, it withdraws the message: not written to
        a connection yet, it never will be; already written, it cannot be taken back, and
        its result is dropped (it is not sent again, even after a transient failure).
        """
        job = Job(self._template.submission(Outgoing(message, **options)))
        done = self._new_event()
        job.token = lambda _: done.set()
        self._submit(job)
        try:
            done.wait()
        except BaseException:
            self._withdraw(job)
            raise
        outcome = job.outcome
        if isinstance(outcome, Exception):
            raise outcome
        assert outcome is not None
        return outcome

    def send_many(self, messages: Iterable[Item]) -> list[Outcome]:
        """Send every message; each one's ``SendResult``, or the exception ``send`` would raise
        for it, in the order given (one message's failure raises nothing)."""
        results: dict[int, Outcome] = {}
        for index, outcome in self.stream(messages):
            results[index] = outcome
        return [results[index] for index in range(len(results))]

    def stream(self, messages: Iterable[Item]) -> Iterator[tuple[int, Outcome]]:
        """Send the messages, yielding ``(index, result or exception)`` as each one finishes.

        The messages are read as the pool has room for them (a few per connection), so any
        number of them go through in bounded memory.  Leaving the iteration early leaves the
        messages already given to the pool to be sent.
        """
        finished: deque[tuple[int, Job]] = deque()
        arrived: list[Any] = [self._new_event()]

        def on_done(index: int, job: Job) -> None:  # under the lock
            finished.append((index, job))
            arrived[0].set()

        items = enumerate(messages)
        room = self._connections * self._window * 2
        given = 0
        more = True
        while True:
            while more and given < room:
                entry = next(items, None)
                if entry is None:
                    more = False
                    break
                index, item = entry
                try:
                    submission = self._template.submission(item)
                except (ValueError, TypeError) as exc:
                    yield index, exc
                    continue
                self._submit(Job(submission, partial(on_done, index)))
                given += 1
            if not given:
                return
            with self._lock:
                ready = list(finished)
                finished.clear()
                if not ready:
                    waiter = arrived[0] = self._new_event()
            if not ready:
                waiter.wait()
                continue
            for index, job in ready:
                given -= 1
                assert job.outcome is not None
                yield index, job.outcome

    def _submit(self, job: Job) -> None:
        with self._lock:
            if not self._running or self._closing:
                raise RuntimeError("a Mailer sends only inside its with block")
            self._dispatcher.submit(job)
            self._wake()

    # ------------------------------------------------------------------ the workers

    def _wake(self) -> None:
        """Tell the waiting workers there is news (under the lock)."""
        self._signal.set()
        self._signal = self._new_event()

    def _take(self) -> Job | None:
        with self._lock:
            return self._dispatcher.take(self._now())

    def _last(self) -> bool:
        """Whether no message will come any more: the pool is closing, none queued."""
        with self._lock:
            return self._closing and not self._dispatcher.queued

    def _report(self, job: Job, outcome: Outcome | Split, counts: bool) -> None:
        with self._lock:
            finished = self._dispatcher.settle(job, outcome, self._now(), counts)
            if finished is not None:
                finished.token(finished)
            self._wake()

    def _end(self, jobs: Iterable[Job], error: Exception) -> None:
        """End taken jobs with ``error`` and no retry (their connection's run was cut)."""
        with self._lock:
            for job in list(jobs):
                finished = self._dispatcher.end(job, error)
                if finished is not None:
                    finished.token(finished)
            self._wake()

    def _withdraw(self, job: Job) -> None:
        with self._lock:
            for finished in self._dispatcher.withdraw(job):
                finished.token(finished)
            self._wake()  # the queue may be empty now: a closing pool's workers may end

    def _stop(self, abandon: bool) -> None:
        """No more messages; with ``abandon``, the queued ones end at once, unsent."""
        with self._lock:
            self._closing = True
            if abandon:
                for job in self._dispatcher.cancel(_abandoned()):
                    job.token(job)
            self._wake()

    def _next_job(self) -> Job | None:
        """The next job to send, once there is one; ``None`` when closing and all is done."""
        while True:
            with self._lock:
                now = self._now()
                job = self._dispatcher.take(now)
                if job is not None:
                    return job
                if self._closing and self._dispatcher.idle:
                    return None
                wait = self._dispatcher.wait(now)
                signal = self._signal
            self._wait(signal, wait)

    def _work(self) -> None:
        """One worker: a connection at a time, replaced when lost or spent."""
        client: Any = None
        lane: Lane | None = None
        try:
            while (job := self._next_job()) is not None:
                if lane is None or not client.is_connected:
                    client, lane = self._open(job)
                    if lane is None:
                        continue
                self._drive(client, lane, job)
                if lane.spent or not client.is_connected:
                    _hang_up(client)
                    lane = None
        except BaseException:
            if client is not None:
                client.close()
            raise
        if lane is not None:
            _hang_up(client)

    def _open(self, job: Job) -> tuple[Any, Lane | None]:
        """A connected client with its session open, as ``job`` needs; the failure is the
        job's outcome otherwise."""
        submission = job.submission
        client: Any = None
        try:
            client = new_client(self._classes, submission, self._connection, self._debuglevel)
            code, text = client.connect(self._template.host, submission.port)
            if code != 220:
                raise SMTPConnectError(code, text)
            client._run(submission.open(client._client))
            lane = Lane.open(client._client, self._window, self._max_messages)
        except Exception as exc:
            if client is not None:
                client.close()
            self._report(job, exc, True)
            return None, None
        except BaseException:
            if client is not None:
                client.close()
            self._end([job], _abandoned())
            raise
        return client, lane

    def _drive(self, client: Any, lane: Lane, job: Job) -> None:
        """Run the lane from ``job`` on; if the run is cut short, the jobs it held end."""
        lane.held.append(job)
        try:
            run = lane_gen(client._client, lane, job, self._take, self._report, last=self._last)
            client._run(run)
        except Exception as exc:
            client.close()
            self._end(lane.held, exc)
        except BaseException:
            client.close()
            self._end(lane.held, _abandoned())
            raise


def _abandoned() -> SMTPServerDisconnected:
    return SMTPServerDisconnected("the mailer stopped before the message was sent")


def _hang_up(client: Any) -> None:
    """QUIT and close: a server that already hung up changes nothing."""
    with contextlib.suppress(SMTPException, OSError):
        client.quit()
    client.close()
