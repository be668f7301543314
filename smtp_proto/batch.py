"""Sending at volume, I/O-free: many messages on one connection, and the rules of a pool.

A pool (each adapter's ``Mailer``) keeps a few connections open and sends every message
through one of them.  What it decides is here, so that every adapter decides it the same way
and the rules are tested without a socket:

- ``lane_gen``, the operation one connection runs: it sends the messages a ``take`` callable
  hands it, and reports each one's outcome as soon as it is known.  When the server offers
  PIPELINING and CHUNKING, a message of one piece goes out as MAIL, the RCPTs and
  ``BDAT n LAST`` with its body, behind the messages still awaiting their replies, up to
  ``window`` of them (RFC 2920 lets a group of commands span transactions); each message's
  replies are matched to it in order and read as the single transaction reads them
  (``smtp_proto.outcome.one_chunk_outcome``), so its outcome is what ``send`` would have
  given it alone.  Any other message (DATA, a streamed or larger body, LMTP) waits for the
  window to empty and goes through the ordinary transaction.
- A transaction sent behind another whose outcome is unknown starts with RSET.  Measured
  against the test suite's MTAs: after a refused envelope with ``BDAT n LAST`` behind it,
  Postfix forgets the transaction, but Exim 4.96 keeps its sender, answers the next MAIL
  with "503 sender already given" and takes the next message under the previous sender; an
  RSET first puts both in a fresh state.
- ``Lane``: what one connection may still do (``window``, and the transactions it may begin:
  the pool's ``max_messages_per_connection`` and the server's RFC 9422 ``MAILMAX``).  A
  message with more recipients than the server's ``RCPTMAX``, or more domains than its
  ``RCPTDOMAINMAX``, goes as several transactions (``Split``), each a job of its own, retried
  on its own; the message's outcome merges theirs (``merge_parts``).
- ``RetryPolicy`` and ``transient``: which failures are worth another attempt (4xx replies,
  421, a connection lost before the final reply), and how long to wait before it.
- ``Dispatcher``: the queue of messages waiting for a connection, their retries, and the
  pool's rate; the adapter gives it the time.

A failure of the connection itself fails only the messages in flight on it; one whose final
reply was read is never sent again.  A message that was not answered at all because the
connection (which had already served a transaction) was lost goes back to the queue without
using up an attempt: a server closing an idle connection is not the message's fault.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import heapq
import itertools
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import inf
from typing import Any

from .bdat import one_chunk_request
from .body import PIECE_SIZE
from .client import Client
from .commands import Mail, Rcpt, Rset
from .dsn import DSN
from .errors import (
    ProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .outcome import TransactionReplies, one_chunk_outcome
from .replies import Reply
from .requests import Operation
from .send import SendResult, SMTPAllRecipientsRefused, Submission, send_outcome
from .source import Message
from .transaction import keep_outcome, mail_parameters

__all__ = [
    "Dispatcher",
    "Job",
    "Lane",
    "Limits",
    "Outcome",
    "Outgoing",
    "RetryPolicy",
    "Split",
    "Template",
    "lane_gen",
    "merge_parts",
    "transient",
]

#: What a message comes to: the ``SendResult`` ``send`` returns, or the exception it raises.
Outcome = SendResult | Exception

_LIMIT = re.compile(r"([A-Za-z0-9_-]+)(?:=(\S*))?")


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a server announces with RFC 9422 ``LIMITS`` (``None``: not announced).

    ``mailmax``: transactions per session; ``rcptmax``: recipients per transaction;
    ``rcptdomainmax``: recipient domains per transaction.
    """

    mailmax: int | None = None
    rcptmax: int | None = None
    rcptdomainmax: int | None = None

    @classmethod
    def from_features(cls, features: Mapping[str, str]) -> Limits:
        """The limits in ``esmtp_features`` (an unknown limit, or a value that is not a
        positive number, is ignored)."""
        values: dict[str, int] = {}
        for name, value in _LIMIT.findall(features.get("limits", "")):
            key = name.lower()
            if key in ("mailmax", "rcptmax", "rcptdomainmax") and value.isdigit():
                number = int(value[:9])  # at most a few digits in practice; never huge
                if number > 0:
                    values[key] = number
        return cls(**values)

    def split(self, recipients: Sequence[str]) -> list[list[str]]:
        """``recipients`` in transactions within ``rcptmax`` and ``rcptdomainmax``: as given
        when one is enough, else each domain's recipients together as far as they fit, in
        the order given."""
        by_domain: dict[str, list[str]] = {}
        for recipient in recipients:
            by_domain.setdefault(recipient.rpartition("@")[2].lower(), []).append(recipient)
        size = self.rcptmax or len(recipients)
        most_domains = self.rcptdomainmax or len(by_domain)
        if len(recipients) <= size and len(by_domain) <= most_domains:
            return [list(recipients)]
        parts: list[list[str]] = []
        domains = 0
        for group in by_domain.values():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                if parts and len(parts[-1]) + len(chunk) <= size and domains < most_domains:
                    parts[-1] += chunk
                    domains += start == 0
                else:
                    parts.append(list(chunk))
                    domains = 1
        return parts


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
    server cannot take, bad credentials), a TLS failure or a server breaking the protocol."""
    if isinstance(error, ProtocolError):  # a server that speaks garbage, or a bad message
        return False
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


@dataclass(eq=False, slots=True)
class Job:
    """One message in a pool: its ``Submission``, the failed attempts that counted, and its
    final ``outcome`` once there is one.  ``token`` is the adapter's: it is called with the
    job once the outcome is final."""

    submission: Submission
    token: Any = None
    failures: int = 0
    outcome: Outcome | None = None
    #: A message the server's LIMITS made several transactions: each one a job of its own
    #: (``parts``, each with its ``parent``), the message's outcome their merged outcomes.
    parent: Job | None = None
    parts: list[Job] = field(default_factory=list)
    unfinished: int = 0


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
    def idle(self) -> bool:
        """Whether every job submitted has its outcome."""
        return not (self._ready or self._later or self.busy)

    def settle(
        self, job: Job, outcome: Outcome | Split, now: float, counts: bool = True
    ) -> Job | None:
        """A taken job came to ``outcome``; the message that is now finished (``outcome``
        set), if any: the job itself, or the message it is the last part of.

        A transient failure sends the job back: at once when it does not ``count`` (the
        connection was lost before the server answered any of it), else after the policy's
        delay, while attempts remain.  A ``Split`` puts the parts first in the queue.
        """
        self.busy -= 1
        if isinstance(outcome, Split):
            job.parts, job.unfinished = outcome.parts, len(outcome.parts)
            self._ready.extendleft(reversed(outcome.parts))
            return None
        if isinstance(outcome, Exception) and transient(outcome):
            if not counts:
                self._ready.appendleft(job)
                return None
            job.failures += 1
            if job.failures <= self.policy.retries:
                when = now + self.policy.delay(job.failures)
                heapq.heappush(self._later, (when, next(self._order), job))
                return None
        return _finished(job, outcome)

    def end(self, job: Job, outcome: Outcome) -> Job | None:
        """A taken job ends with ``outcome``, whatever it is (no retry); as ``settle``."""
        self.busy -= 1
        return _finished(job, outcome)

    def cancel(self, error: Exception) -> list[Job]:
        """End every queued job (not the ones taken) with ``error``; the messages finished."""
        jobs = [*self._ready, *(entry[2] for entry in self._later)]
        self._ready.clear()
        self._later.clear()
        return [done for job in jobs if (done := _finished(job, error)) is not None]


def _finished(job: Job, outcome: Outcome) -> Job | None:
    """``job`` ends with ``outcome``: the message finished by that, if any."""
    job.outcome = outcome
    parent = job.parent
    if parent is None:
        return job
    parent.unfinished -= 1
    if parent.unfinished:
        return None
    parent.outcome = merge_parts(parent.parts)
    return parent


def merge_parts(parts: Sequence[Job]) -> Outcome:
    """The outcome of a message sent as several transactions, from theirs.

    If a part was delivered: a ``SendResult`` with every part's recipients (those of a part
    that failed as a whole refused with that failure's code, -1 for none, as ``smtplib``
    reports an unanswered LMTP recipient), whose ``data_reply`` is the first delivered
    part's.  Else ``SMTPAllRecipientsRefused`` when every part was refused so, or the first
    other failure.
    """
    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    lmtp: dict[str, Reply] = {}
    delivered: list[SendResult] = []
    failures: list[Exception] = []
    for part in parts:
        outcome = part.outcome
        result = outcome.result if isinstance(outcome, SMTPAllRecipientsRefused) else outcome
        if isinstance(result, SendResult):
            accepted |= result.accepted
            refused |= result.refused
            lmtp |= result.lmtp_replies
            if outcome is result:
                delivered.append(result)
            continue
        assert isinstance(outcome, Exception)
        failures.append(outcome)
        code, text = (
            (outcome.smtp_code, outcome.smtp_error)
            if isinstance(outcome, SMTPResponseException)
            else (-1, str(outcome).encode("utf-8", "replace"))
        )
        for recipient in part.submission.recipients:
            refused[recipient] = Reply.from_tuple(code, text)
    if delivered:
        return SendResult(accepted, refused, delivered[0].data_reply, lmtp)
    if failures:
        return failures[0]
    recipients = {recipient: reply.as_tuple() for recipient, reply in refused.items()}
    return SMTPAllRecipientsRefused(recipients, SendResult(accepted, refused, None, lmtp))


#: How a lane reports a job's outcome: ``report(job, outcome, counts)``.
Report = Callable[[Job, Outcome | Split, bool], None]


@dataclass(eq=False, slots=True)
class Lane:
    """One open connection of a pool, between runs of ``lane_gen``.

    ``window``: transactions in flight at most; ``limit``: transactions it may begin in all
    (``None``: no limit), after which the pool replaces the connection.
    """

    window: int
    limit: int | None = None
    #: The server's RFC 9422 limits: ``rcptmax`` and ``rcptdomainmax`` split a message.
    limits: Limits = Limits()
    #: Transactions begun (MAIL sent), and those the server answered (at least MAIL's reply).
    begun: int = 0
    answered: int = 0
    #: Whether the server is known to be outside a transaction with nothing in flight.
    clean: bool = True
    #: The jobs taken and not reported yet (the adapter ends them if the run is cancelled).
    held: list[Job] = field(default_factory=list)

    @classmethod
    def open(cls, client: Client, window: int, max_messages: int | None) -> Lane:
        """The lane of ``client``'s session, once it is open: the pool's limits and the
        server's ``MAILMAX``."""
        if window < 1:
            raise ValueError("window must be at least 1")
        limits = Limits.from_features(client.owner.esmtp_features)
        caps = [cap for cap in (max_messages, limits.mailmax) if cap is not None]
        return cls(window, min(caps) if caps else None, limits)

    @property
    def spent(self) -> bool:
        """Whether the connection may begin no more transactions."""
        return self.limit is not None and self.begun >= self.limit

    def parts(self, job: Job) -> list[Job] | None:
        """The transactions ``job``'s message needs here, as jobs, when the server's limits
        do not let it go in one (``None`` when they do)."""
        limits = self.limits
        if job.parent is not None or limits.rcptmax is limits.rcptdomainmax is None:
            return None
        groups = limits.split(job.submission.recipients)
        if len(groups) < 2:
            return None
        return [
            Job(dataclasses.replace(job.submission, recipients=tuple(group)), parent=job)
            for group in groups
        ]

    def counts(self, answered: bool) -> bool:
        """Whether a failure counts as an attempt: always, unless nothing of the message was
        answered on a connection that had already answered another transaction."""
        return answered or self.answered == 0


@dataclass(slots=True)
class _Group:
    """A pipelined transaction awaiting its replies."""

    job: Job
    rset: bool
    mail: Mail
    rcpts: list[Rcpt]


def _pipelines(client: Client, submission: Submission) -> bool:
    """Whether the message goes in the window: one piece of bytes, by BDAT, over SMTP on a
    server that pipelines."""
    extensions = client.connection.extensions
    return (
        client.owner.pipelining
        and extensions.pipelining
        and extensions.chunking
        and (submission.chunking or submission.kind == "binary")
        and not client.lmtp
        and isinstance(submission.body, bytes)
        and len(submission.body) <= PIECE_SIZE
    )


def _request(client: Client, job: Job, rset: bool) -> tuple[_Group, bytes]:
    """A message's group of commands and its body, checked as the single transaction checks
    them (anything refused raises with nothing sent)."""
    submission = job.submission
    client.owner.command_encoding = "ascii"  # as after RSET; SMTPUTF8 turns it to UTF-8
    body = submission.body
    assert isinstance(body, bytes)
    sender = submission.sender
    options = mail_parameters(client, sender, body, submission.mail_options(client))
    mail = client._build_mail(sender, options)
    rcpts = [client._build_rcpt(r, rcpt_options) for r, rcpt_options in submission.rcpt_options()]
    commands = (Rset(), mail, *rcpts) if rset else (mail, *rcpts)
    data = one_chunk_request(client, commands, body, submission.kind == "binary")
    return _Group(job, rset, mail, rcpts), data


def lane_gen(
    client: Client, lane: Lane, job: Job, take: Callable[[], Job | None], report: Report
) -> Operation[None]:
    """Send ``job``, then the jobs ``take`` hands out, on ``client``'s open session.

    ``job``, taken by the caller, is in ``lane.held`` already.  ``take`` returns the next
    job or ``None`` when none is ready; it must not block (the adapter waits for work outside
    the operation).  It is called only while the lane has room.  Each job's outcome goes to
    ``report`` as soon as it is known.  Returns when no job is ready and none is in flight, or
    once the lane is spent and its last replies are read, or when the connection was lost (it
    is then closed); every job taken was reported.
    """
    flight: deque[_Group] = deque()

    def settle(job: Job, outcome: Outcome | Split, counts: bool) -> None:
        lane.held.remove(job)
        report(job, outcome, counts)

    def next_job() -> Job | None:
        if not client.is_connected or len(flight) >= lane.window or lane.spent:
            return None
        job = take()
        if job is not None:
            lane.held.append(job)
        return job

    pending: Job | None = job
    while True:
        data: list[bytes] = []
        while pending is not None:
            parts = lane.parts(pending)
            if parts is not None:  # several transactions, each a job, queued first
                settle(pending, Split(parts), True)
                pending = next_job()
                continue
            if not _pipelines(client, pending.submission):
                break
            try:
                group, request = _request(client, pending, bool(flight) or not lane.clean)
            except Exception as exc:  # the message cannot go on this server: nothing sent
                settle(pending, exc, True)
            else:
                lane.begun += 1
                lane.clean = False
                flight.append(group)
                data.append(request)
            pending = next_job()
        if data:
            yield from _write_gen(client, b"".join(data))
        if pending is not None:  # for the ordinary transaction, once the window is empty
            while flight:
                yield from _read_gen(client, lane, flight, settle)
            if client.is_connected:
                yield from _ordinary_gen(client, lane, pending, settle)
            else:
                settle(pending, SMTPServerDisconnected("Connection unexpectedly closed"), False)
            pending = next_job()
            continue
        if not flight:
            return
        yield from _read_gen(client, lane, flight, settle)
        pending = next_job()


def _write_gen(client: Client, data: bytes) -> Operation[None]:
    """Write pipelined groups.  A failed write is not the end yet: replies to what went out
    before may be waiting, and a message whose final reply came must not be sent again, so
    the replies are read until the connection's end shows."""
    with contextlib.suppress(OSError):
        yield client._write_request(data)


def _read_gen(client: Client, lane: Lane, flight: deque[_Group], settle: Report) -> Operation[None]:
    """Read the replies of the oldest group in flight and report its outcome; if the
    connection is lost, report the groups behind it too (unanswered)."""
    group = flight.popleft()
    replies: list[Reply] = []
    try:
        if group.rset:
            yield from client._exchange_gen(b"", 1)
        if client.is_connected:  # (a 421 to RSET closes it)
            replies = yield from client._exchange_gen(b"", 1)
    except (SMTPServerDisconnected, ProtocolError) as exc:
        settle(group.job, exc, lane.counts(False))
    else:
        if not replies:
            lost = SMTPServerDisconnected("Connection unexpectedly closed")
            settle(group.job, lost, lane.counts(False))
        else:
            lane.answered += 1
            yield from _finish_group_gen(client, lane, group, replies, settle)
            lane.clean = not flight and lane.clean
    if not client.is_connected:
        while flight:
            lost = SMTPServerDisconnected("Connection unexpectedly closed")
            settle(flight.popleft().job, lost, lane.counts(False))


def _finish_group_gen(
    client: Client, lane: Lane, group: _Group, replies: list[Reply], settle: Report
) -> Operation[None]:
    """The rest of a group's replies after MAIL's, and its outcome, as the single transaction
    makes it."""
    if client.is_connected:
        try:
            replies += yield from client._exchange_gen(
                b"", len(group.rcpts) + 1, partial_at_eof=True
            )
        except (SMTPServerDisconnected, ProtocolError) as exc:
            settle(group.job, exc, True)
            return
    outcome = one_chunk_outcome(group.mail, group.rcpts, replies)
    keep_outcome(client, outcome)
    lane.clean = outcome.error is None
    settle(group.job, send_outcome(outcome.replies, False, outcome.error), True)


def _ordinary_gen(client: Client, lane: Lane, job: Job, settle: Report) -> Operation[None]:
    """A message that cannot be pipelined: the single transaction, alone on the connection
    (after an RSET if the last one may have left the server inside a transaction)."""
    lane.begun += 1
    client.last_replies = TransactionReplies({}, {})
    try:
        if not lane.clean:
            yield from client._rset_gen()
        lane.clean = False
        result = yield from job.submission.deliver(client)
    except Exception as exc:
        answered = bool(client.last_replies.rcpt) or not isinstance(exc, SMTPServerDisconnected)
        lane.answered += answered
        settle(job, exc, lane.counts(answered))
        return
    lane.answered += 1
    lane.clean = True
    settle(job, result, True)
