"""Sending at volume, I/O-free: many messages on one connection (a pool's other rules are
``smtp_proto.pool``'s).

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
  window to empty and goes through the ordinary transaction.  The groups are written
  ``FLUSH_SIZE`` bytes at a time as the window fills; once the lane is spent, or the pool
  closing, QUIT follows the last of them; a job withdrawn (``Withdrawn``) before it is
  written never is.
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
- ``RetryPolicy`` and ``transient`` (which failures are worth another attempt, and when) and
  ``Dispatcher`` (the queue, the retries, recipients refused for now sent again alone, and
  the pool's rate) are in ``smtp_proto.pool`` and named here too.

A failure of the connection itself fails only the messages in flight on it; one whose final
reply was read is never sent again.  A message that was not answered at all because the
connection (which had already served a transaction) was lost goes back to the queue without
using up an attempt: a server closing an idle connection is not the message's fault.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .bdat import one_chunk_request
from .body import PIECE_SIZE
from .client import Client
from .commands import Mail, Quit, Rcpt, Rset
from .errors import (
    ProtocolError,
    SMTPServerDisconnected,
)
from .outcome import TransactionReplies, one_chunk_outcome
from .pool import (
    Dispatcher,
    Job,
    Limits,
    Outcome,
    Outgoing,
    RetryPolicy,
    Split,
    Template,
    Withdrawn,
    merge_parts,
    transient,
)
from .replies import Reply
from .requests import Operation
from .send import Submission, send_outcome
from .transaction import keep_outcome, mail_parameters

__all__ = [
    "FLUSH_SIZE",
    "Dispatcher",
    "Job",
    "Lane",
    "Limits",
    "Outcome",
    "Outgoing",
    "RetryPolicy",
    "Split",
    "Template",
    "Withdrawn",
    "lane_gen",
    "merge_parts",
    "transient",
]

#: Pipelined groups are written once they come to this many bytes, so that the server
#: starts on the first transactions of a window while the lane makes the next ones.
FLUSH_SIZE = 1 << 16

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
    limits: Limits = field(default_factory=Limits)
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


class _Run:
    """One run of ``lane_gen``: the groups in flight, and the jobs taken and reported."""

    def __init__(
        self, client: Client, lane: Lane, take: Callable[[], Job | None], report: Report
    ) -> None:
        self.client, self.lane, self.take, self.report = client, lane, take, report
        self.flight: deque[_Group] = deque()
        #: QUIT went out behind the last transaction: nothing more is taken.
        self.quitting = False

    def settle(self, job: Job, outcome: Outcome | Split, counts: bool) -> None:
        """Report ``job``'s outcome; the lane holds it no more."""
        self.lane.held.remove(job)
        self.report(job, outcome, counts)

    def next_job(self) -> Job | None:
        """The next job, if the lane has room and one is ready."""
        lane = self.lane
        full = len(self.flight) >= lane.window or lane.spent
        if full or self.quitting or not self.client.is_connected:
            return None
        job = self.take()
        if job is not None:
            lane.held.append(job)
        return job

    def withdrawn(self, job: Job) -> bool:
        """Whether ``job`` was withdrawn, and then reports it so, unsent."""
        if job.withdrawn:
            self.settle(job, Withdrawn(), True)
        return job.withdrawn

    def pipeline(self, pending: Job | None) -> tuple[list[bytes], Job | None, bool]:
        """The groups of ``pending`` and of the jobs taken after it while they go in the
        window; the first job that does not (for the ordinary transaction), if any; whether
        the groups stopped at ``FLUSH_SIZE`` bytes (more may follow once they are written)."""
        client, lane = self.client, self.lane
        data: list[bytes] = []
        size = 0
        while pending is not None:
            if self.withdrawn(pending):
                pending = self.next_job()
                continue
            parts = lane.parts(pending)
            if parts is not None:  # several transactions, each a job, queued first
                self.settle(pending, Split(parts), True)
                pending = self.next_job()
                continue
            if not _pipelines(client, pending.submission):
                break
            rset = bool(self.flight) or not lane.clean
            try:
                group, request = _request(client, pending, rset)
            except Exception as exc:  # the message cannot go on this server: nothing sent
                self.settle(pending, exc, True)
            else:
                lane.begun += 1
                lane.clean = False
                self.flight.append(group)
                data.append(request)
                size += len(request)
                if size >= FLUSH_SIZE:
                    return data, None, True
            pending = self.next_job()
        return data, pending, False


def lane_gen(
    client: Client,
    lane: Lane,
    job: Job,
    take: Callable[[], Job | None],
    report: Report,
    *,
    last: Callable[[], bool] = lambda: False,
) -> Operation[None]:
    """Send ``job``, then the jobs ``take`` hands out, on ``client``'s open session.

    ``job``, taken by the caller, is in ``lane.held`` already.  ``take`` returns the next
    job or ``None`` when none is ready; it must not block (the adapter waits for work outside
    the operation).  It is called only while the lane has room.  Each job's outcome goes to
    ``report`` as soon as it is known.  A job withdrawn before it is written is reported
    ``Withdrawn`` and never written.  Returns when no job is ready and none is in flight, or
    once the lane is spent and its last replies are read, or when the connection was lost (it
    is then closed); every job taken was reported.

    ``last()`` says whether no job will come any more (the pool is closing with none
    queued).  When it does, or once the lane is spent, QUIT goes out behind the
    transactions in flight (with the last of them, or alone while their replies are
    awaited), as RFC 2920 lets a group end: the session ends with their replies instead of
    a round trip after them, and the connection is closed.
    """
    run = _Run(client, lane, take, report)
    flight, settle, next_job = run.flight, run.settle, run.next_job
    pending: Job | None = job
    while True:
        data, pending, full = run.pipeline(pending)
        done = pending is None and not full and not run.quitting  # nothing more to write
        if done and flight and (lane.spent or last()):
            data.append(client._encode(Quit()))
            run.quitting = True
        if data:
            written = yield from _write_gen(client, b"".join(data))
            if full and written:  # the server starts on these while the next are made
                pending = next_job()
                continue
        if pending is not None:  # for the ordinary transaction, once the window is empty
            while flight:
                yield from _read_gen(client, lane, flight, settle)
            if run.withdrawn(pending):
                pass  # (taken while the window emptied; nothing of it was written)
            elif client.is_connected:
                yield from _ordinary_gen(client, lane, pending, settle)
            else:
                settle(pending, SMTPServerDisconnected("Connection unexpectedly closed"), False)
            pending = next_job()
            continue
        if not flight:
            if run.quitting:
                yield from _quit_reply_gen(client)
            return
        yield from _read_gen(client, lane, flight, settle)
        pending = next_job()


def _write_gen(client: Client, data: bytes) -> Operation[bool]:
    """Write pipelined groups; whether they went out.  A failed write is not the end yet:
    replies to what went out before may be waiting, and a message whose final reply came
    must not be sent again, so the replies are read until the connection's end shows."""
    try:
        yield client._write_request(data)
    except OSError:
        return False
    return True


def _quit_reply_gen(client: Client) -> Operation[None]:
    """The reply to a QUIT written behind the last transactions; the connection closes.  A
    server that already hung up changes nothing."""
    try:
        if client.is_connected:
            yield from client._exchange_gen(b"", 1)
    except (SMTPServerDisconnected, ProtocolError):
        pass  # closed already
    finally:
        client._forget_session()
    if client.is_connected:
        yield from client._abort_gen()


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
