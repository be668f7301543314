"""The rules of a pool of connections, I/O-free: which failures are retried and when, the
queue of messages waiting for a connection and the pool's rate (``Dispatcher``), a message
split over several transactions (the server's RFC 9422 LIMITS: ``Limits``, from
``smtp_proto.limits``) and its outcome merged.  The operation each connection runs is
``smtp_proto.batch.lane_gen``."""

from __future__ import annotations

import dataclasses
import email.message
import heapq
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import inf
from typing import Any

from .dsn import DSN
from .errors import (
    ProtocolError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .limits import Limits
from .send import SendResult, SMTPAllRecipientsRefused, Submission, merge_outcomes
from .source import Message

__all__ = [
    "Dispatcher",
    "Job",
    "Limits",
    "Outcome",
    "Outgoing",
    "PER_MESSAGE",
    "RetryPolicy",
    "Split",
    "Template",
    "Withdrawn",
    "merge_parts",
    "transient",
]

#: What a message comes to: the ``SendResult`` ``send`` returns, or the exception it raises.
Outcome = SendResult | Exception


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a message that failed for a passing reason is sent again, and when.

    After the ``n``-th such failure (``n`` from 1) a message waits ``backoff * 2 ** (n - 1)``
    seconds, at most ``max_backoff``, then goes back in the queue; after ``retries + 1``
    attempts its last failure is its outcome.
    """

    retries: int = 2
    backoff: float = 1.0
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("retries and backoff must not be negative")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure."""
        return min(self.max_backoff, self.backoff * 2.0 ** min(failures - 1, 64))


def transient(error: BaseException) -> bool:
    """Whether ``error`` may pass if the message is sent again later: a 4xx reply (421
    included; for refused recipients, one of them 4xx), or a connection that failed, was
    lost or timed out.  Never a 5xx reply, a refusal made before sending (a message the
    server cannot take, bad credentials), a TLS failure or a server breaking the protocol;
    nor a proxy's refusal (of the credentials, by its rules) unless it could not reach the
    server."""
    if isinstance(error, ProtocolError):  # a server that speaks garbage, or a bad message
        return False
    if isinstance(error, ProxyRefusedError):  # a ConnectionError, but not a passing one
        return isinstance(error, ProxyTargetUnreachableError)
    if isinstance(error, SMTPRecipientsRefused):  # -1: no reply (an LMTP connection lost)
        return any(code == -1 or 400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, SMTPResponseException):
        return 400 <= error.smtp_code < 500
    return isinstance(error, SMTPServerDisconnected | ConnectionError | TimeoutError)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for a pool with ``send``'s per-message arguments: its envelope (``sender``,
    ``recipients``: from the headers of an ``EmailMessage`` unless given), and ``dsn`` and
    ``binary`` when they differ from the pool's."""

    message: email.message.Message | Message
    sender: str | None = None
    recipients: str | Sequence[str] | None = None
    dsn: DSN | None = None
    binary: bool | None = None


#: ``send``'s options that an ``Outgoing`` message may give for itself.
PER_MESSAGE = ("sender", "recipients", "dsn", "binary")


class Template:
    """What the messages of a pool share: the server and ``send``'s options, checked once
    (``ValueError``/``TypeError`` for bad ones); ``submission`` makes each message's
    ``Submission``."""

    def __init__(self, host: str, port: int | None, options: Mapping[str, Any]) -> None:
        misplaced = sorted(set(options) & {"sender", "recipients"})
        if misplaced:
            raise TypeError(f"{', '.join(misplaced)} belong to each message, not to the pool")
        self.host, self.port, self._options = host, port, dict(options)
        # The session's arguments checked now, on a stand-in message.
        Submission.create(b"", host, port, sender="", recipients="checked", **options)

    def submission(self, item: Outgoing | email.message.Message | Message) -> Submission:
        """The ``Submission`` of one message (``ValueError``/``TypeError`` if it is bad)."""
        options = dict(self._options)
        if isinstance(item, Outgoing):
            for name in PER_MESSAGE:
                value = getattr(item, name)
                if value is not None:
                    options[name] = value
            item = item.message
        return Submission.create(item, self.host, self.port, **options)


class Withdrawn(Exception):
    """The outcome of a job withdrawn before it was written to a connection (its sender gave
    up waiting: a cancelled ``send``); it was not sent."""


@dataclass(eq=False, slots=True)
class Job:
    """One message in a pool: its ``Submission``, the failed attempts that counted, and its
    final ``outcome`` once there is one.  ``token`` is the adapter's: it is called with the
    job once the outcome is final."""

    submission: Submission
    token: Any = None
    failures: int = 0
    outcome: Outcome | None = None
    #: Nobody waits for the outcome any more (``Dispatcher.withdraw``): the job is not
    #: written to a connection from now on, nor sent again.
    withdrawn: bool = False
    #: A message the server's LIMITS made several transactions: each one a job of its own
    #: (``parts``, each with its ``parent``), the message's outcome their merged outcomes.
    parent: Job | None = None
    parts: list[Job] = field(default_factory=list)
    unfinished: int = 0
    #: A message sent again to the recipients refused for a passing reason (``submission``
    #: then has only those): each transaction's recipients and outcome, the last one's too
    #: once it is finished, its ``outcome`` then theirs merged.
    transactions: list[tuple[Sequence[str], Outcome]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Split:
    """A lane's report that a job goes as several transactions, ``parts`` (RFC 9422 LIMITS)."""

    parts: list[Job]


class Dispatcher:
    """The messages of a pool waiting for a connection, their retries and the pool's rate.

    I/O-free and not thread-safe: the adapter serialises the calls and passes its clock's
    ``now`` (seconds).  ``take`` hands out the next job; every job taken comes back through
    ``settle`` with its outcome, which either ends it or puts it back in the queue.
    """

    def __init__(self, policy: RetryPolicy, rate: float | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.policy = policy
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._ready: deque[Job] = deque()
        self._later: list[tuple[float, int, Job]] = []  # a heap: (when, order, job)
        self._order = itertools.count()
        self._next_start = -inf
        #: Jobs taken and not settled yet.
        self.busy = 0

    def submit(self, job: Job) -> None:
        """Queue a new job."""
        self._ready.append(job)

    def _promote(self, now: float) -> None:
        later = self._later
        while later and later[0][0] <= now:
            self._ready.append(heapq.heappop(later)[2])

    def take(self, now: float) -> Job | None:
        """The next job to send, or ``None`` when none may start yet (nothing queued, retries
        not due, or the rate would be exceeded)."""
        self._promote(now)
        if not self._ready or now < self._next_start:
            return None
        self._next_start = max(self._next_start, now) + self._interval
        self.busy += 1
        return self._ready.popleft()

    def wait(self, now: float) -> float | None:
        """Seconds until ``take`` may give a job (0: now), or ``None`` when no job is queued
        (only ``submit`` or ``settle`` can change that)."""
        self._promote(now)
        if self._ready:
            return max(0.0, self._next_start - now)
        if self._later:
            return max(0.0, self._later[0][0] - now, self._next_start - now)
        return None

    @property
    def queued(self) -> bool:
        """Whether a job waits to be taken (now, or once its retry is due)."""
        return bool(self._ready or self._later)

    @property
    def idle(self) -> bool:
        """Whether every job submitted has its outcome."""
        return not (self.queued or self.busy)

    def settle(
        self, job: Job, outcome: Outcome | Split, now: float, counts: bool = True
    ) -> Job | None:
        """A taken job came to ``outcome``; the message that is now finished (``outcome``
        set), if any: the job itself, or the message it is the last part of.

        A transient failure sends the job back: at once when it does not ``count`` (the
        connection was lost before the server answered any of it), else after the policy's
        delay, while attempts remain; never a withdrawn job.  Recipients refused for a
        passing reason (4xx) go back so too, alone: the job's next transaction is for them
        only, and its outcome will merge the transactions'.  A ``Split`` puts the parts first
        in the queue.
        """
        self.busy -= 1
        if isinstance(outcome, Split):
            job.parts, job.unfinished = outcome.parts, len(outcome.parts)
            self._ready.extendleft(reversed(outcome.parts))
            return None
        if job.withdrawn:
            return _finished(job, outcome)
        again = _refused_for_now(outcome)
        if again or (isinstance(outcome, Exception) and transient(outcome)):
            if not counts and not again:
                self._ready.appendleft(job)
                return None
            job.failures += 1
            if job.failures <= self.policy.retries:
                if again:
                    job.transactions.append((job.submission.recipients, outcome))
                    job.submission = dataclasses.replace(job.submission, recipients=again)
                when = now + self.policy.delay(job.failures)
                heapq.heappush(self._later, (when, next(self._order), job))
                return None
        return _finished(job, outcome)

    def end(self, job: Job, outcome: Outcome) -> Job | None:
        """A taken job ends with ``outcome``, whatever it is (no retry); as ``settle``."""
        self.busy -= 1
        return _finished(job, outcome)

    def withdraw(self, job: Job) -> list[Job]:
        """Nobody waits for ``job``'s message any more: what of it is queued ends now,
        unsent (``Withdrawn``); a part taken by a connection is marked so that it is not
        written (the lane ends it) or, already written, not sent again.  The messages
        finished."""
        finished: list[Job] = []
        job.withdrawn = True
        for each in job.parts or [job]:
            each.withdrawn = True
            if self._unqueue(each) and (done := _finished(each, Withdrawn())) is not None:
                finished.append(done)
        return finished

    def _unqueue(self, job: Job) -> bool:
        """Take ``job`` out of the queue; whether it was there."""
        if job in self._ready:
            self._ready.remove(job)
            return True
        later = [entry for entry in self._later if entry[2] is not job]
        if len(later) == len(self._later):
            return False
        heapq.heapify(later)
        self._later = later
        return True

    def cancel(self, error: Exception) -> list[Job]:
        """End every queued job (not the ones taken) with ``error``; the messages finished."""
        jobs = [*self._ready, *(entry[2] for entry in self._later)]
        self._ready.clear()
        self._later.clear()
        return [done for job in jobs if (done := _finished(job, error)) is not None]


def _refused_for_now(outcome: Outcome) -> tuple[str, ...]:
    """The recipients a transaction's result refused for a passing reason: a 4xx reply, or
    none at all (-1: an LMTP connection lost before that recipient's reply)."""
    result = outcome.result if isinstance(outcome, SMTPAllRecipientsRefused) else outcome
    if not isinstance(result, SendResult):
        return ()
    return tuple(
        r for r, reply in result.refused.items() if reply.code < 0 or reply.code // 100 == 4
    )


def _finished(job: Job, outcome: Outcome) -> Job | None:
    """``job`` ends with ``outcome`` (merged with its earlier transactions'): the message
    finished by that, if any."""
    if job.transactions:
        job.transactions.append((job.submission.recipients, outcome))
        outcome = merge_outcomes(job.transactions)
    job.outcome = outcome
    parent = job.parent
    if parent is None:
        return job
    parent.unfinished -= 1
    if parent.unfinished:
        return None
    return _finished(parent, merge_parts(parent.parts))


def merge_parts(parts: Sequence[Job]) -> Outcome:
    """The outcome of a message sent as several transactions (``parts``, each finished), as
    ``smtp_proto.send.merge_outcomes`` makes it from every transaction of every part."""
    transactions: list[tuple[Sequence[str], Outcome]] = []
    for part in parts:
        assert part.outcome is not None
        transactions += part.transactions or [(part.submission.recipients, part.outcome)]
    return merge_outcomes(transactions)
