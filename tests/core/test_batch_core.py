"""The batch operation and the pool's rules, offline: ``smtp_proto.batch``.

The central property: messages pipelined on one connection, whatever each one's replies and
however the server's bytes are cut into reads, each come to what ``send`` gives the same
message alone against the same server, or, when the connection is lost (a drop, a 421) or a
write fails, to a retryable error; a message is reported delivered exactly when its final
250 came, and only once.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto import Client
from smtp_proto.batch import (
    FLUSH_SIZE,
    Dispatcher,
    Job,
    Lane,
    Limits,
    RetryPolicy,
    Split,
    Withdrawn,
    lane_gen,
    merge_parts,
    transient,
)
from smtp_proto.driving import drive
from smtp_proto.errors import (
    RemoteProtocolError,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from smtp_proto.replies import Reply
from smtp_proto.requests import CLOSE, LOCAL_HOSTNAME, RECEIVE
from smtp_proto.send import (
    SendResult,
    SMTPAllRecipientsRefused,
    SMTPSecurityError,
    Submission,
)

EHLO = (
    "250-model.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n"
)
COMMAND = re.compile(rb"(?i)(rset|mail|rcpt|bdat|quit|ehlo|data)\b([^\r]*)\r\n")


@dataclass(frozen=True)
class Script:
    """What the model server answers to one message (found by its sender): MAIL, each RCPT
    (by recipient) and the body."""

    mail: int
    rcpts: dict[str, int]
    body: int


def text(code: int, what: str, sender: str) -> bytes:
    """A reply line; a 250 to the body names the message's queue id, as Postfix does."""
    if what == "body" and code == 250:
        return b"250 2.0.0 Ok: queued as %s\r\n" % queue_id(sender).encode()
    return b"%d %s reply\r\n" % (code, what.encode())


def queue_id(sender: str) -> str:
    return sender.partition("@")[0].upper()


@dataclass
class ModelServer:
    """An in-memory SMTP server for the driver: it parses what the client writes and answers
    each command from the scripts, in order, pipelining allowed.  Like Exim, it stays in a
    transaction whose body was refused until RSET (a MAIL then gets 503).

    ``cuts`` decides how many bytes each read gets (any split of the replies, one line or
    many, a reply in pieces); ``drop_after`` closes the connection after that many replies;
    ``broken_writes``: a write after the close fails (``BrokenPipeError``) instead of
    vanishing.
    """

    scripts: dict[str, Script]
    cuts: deque[int] = field(default_factory=deque)
    drop_after: int | None = None
    broken_writes: bool = False
    inbound: bytearray = field(default_factory=bytearray)
    outbound: bytearray = field(default_factory=bytearray)
    replies: int = 0
    closed: bool = False
    sender: str | None = None  # of the transaction under way (MAIL accepted)
    accepted: int = 0  # recipients accepted in it
    in_data: bool = False  # after a 354: the body until its end
    mails: list[str] = field(default_factory=list)  # the sender of each MAIL received
    delivered: list[str] = field(default_factory=list)  # senders of the bodies taken (250)
    rsets: int = 0

    def _say(self, line: bytes) -> None:
        if self.closed:
            return
        self.outbound += line
        self.replies += 1
        if line.startswith(b"421") or self.replies == self.drop_after:
            self.closed = True

    def _feed(self) -> None:
        while not self.closed:
            if self.in_data:
                end = self.inbound.find(b"\r\n.\r\n")
                if end < 0:
                    return
                del self.inbound[: end + 5]
                self.in_data = False
                self._answer(b"bdat", "0 LAST")  # the end of a body, whichever way it came
                continue
            match = COMMAND.match(self.inbound)
            if match is None:
                assert b"\r\n" not in self.inbound, bytes(self.inbound)
                return
            verb, argument = match[1].lower(), match[2].decode()
            end = match.end()
            if verb == b"bdat":
                size = int(argument.split()[0])
                if len(self.inbound) < end + size:
                    return
                end += size
            del self.inbound[:end]
            self._answer(verb, argument)

    def _answer(self, verb: bytes, argument: str) -> None:
        if verb == b"ehlo":
            self._say(EHLO.encode())
        elif verb == b"rset":
            self.rsets += 1
            self.sender, self.accepted = None, 0
            self._say(b"250 2.0.0 reset\r\n")
        elif verb == b"mail":
            if self.sender is not None:  # as Exim after a refused body: still in the transaction
                self._say(b"503 5.5.1 sender already given\r\n")
                return
            sender = re.search(r"<([^>]*)>", argument)[1]  # type: ignore[index]
            self.mails.append(sender)
            code = self.scripts[sender].mail
            self.sender, self.accepted = (sender if code == 250 else None), 0
            self._say(text(code, "mail", sender))
        elif verb == b"rcpt":
            recipient = re.search(r"<([^>]*)>", argument)[1]  # type: ignore[index]
            if self.sender is None:
                self._say(b"503 5.5.1 need MAIL\r\n")
                return
            code = self.scripts[self.sender].rcpts[recipient]
            self.accepted += code in (250, 251)
            self._say(text(code, "rcpt", self.sender))
        elif verb == b"bdat" and not argument.upper().endswith("LAST"):
            self._say(b"250 2.0.0 chunk taken\r\n")
        elif verb == b"bdat":
            if self.sender is None or not self.accepted:
                self._say(b"554 5.5.1 no valid recipients\r\n")
                return
            code = self.scripts[self.sender].body
            self._say(text(code, "body", self.sender))
            if code == 250:
                self.delivered.append(self.sender)
                self.sender, self.accepted = None, 0
        elif verb == b"data":
            if self.sender is None or not self.accepted:
                self._say(b"554 5.5.1 no valid recipients\r\n")
                return
            self.in_data = True
            self._say(b"354 go ahead\r\n")
        elif verb == b"quit":
            self._say(b"221 bye\r\n")
            self.closed = True
        else:
            raise AssertionError(f"unexpected {verb!r}")

    def perform(self, request: Any) -> Any:
        if isinstance(request, bytes | memoryview):
            if self.closed:
                if self.broken_writes:
                    raise BrokenPipeError("the server closed")
                return None
            self.inbound += request
            self._feed()
            return None
        if request is RECEIVE:
            if not self.outbound:
                assert self.closed, "the client waits for a reply to nothing it sent"
                return b""
            size = max(1, self.cuts.popleft() if self.cuts else len(self.outbound))
            data = bytes(self.outbound[:size])
            del self.outbound[:size]
            return data
        if request is CLOSE:
            self.closed = True
            return None
        if request is LOCAL_HOSTNAME:
            return "client.example"
        raise AssertionError(f"unexpected request {request!r}")


def open_session(server: ModelServer) -> Client:
    """A client through the greeting and EHLO with the model server."""
    client = Client("client.example")
    client.connecting("model.example", 25)
    server.outbound += b"220 model.example ESMTP\r\n"
    run = lambda op: drive(op, server.perform, lambda: None)  # noqa: E731
    assert run(client.greeting())[0] == 220
    assert run(client.ehlo())[0] == 250
    return client


def alone(submission: Submission, scripts: dict[str, Script]) -> object:
    """What ``send``'s transaction gives the message alone on a fresh session."""
    server = ModelServer(scripts)
    client = open_session(server)
    try:
        return drive(submission.deliver(client), server.perform, lambda: None)
    except Exception as exc:
        return exc


def same(outcome: object, expected: object) -> bool:
    """Whether two outcomes are the same result, or the same exception with the same args
    (and, for a refusal of everyone, the same result)."""
    if isinstance(expected, SendResult):
        return outcome == expected
    assert isinstance(expected, Exception)
    if type(outcome) is not type(expected):
        return False
    assert isinstance(outcome, Exception)
    if isinstance(expected, SMTPAllRecipientsRefused):
        assert isinstance(outcome, SMTPAllRecipientsRefused)
        return outcome.recipients == expected.recipients and outcome.result == expected.result
    return outcome.args == expected.args


@dataclass
class Run:
    """One run of ``lane_gen`` over a list of jobs."""

    jobs: list[Job]
    reports: list[tuple[Job, object, bool]]
    lane: Lane
    server: ModelServer
    taken: int


def run_lane(
    submissions: list[Submission],
    server: ModelServer,
    window: int,
    limit: int | None = None,
    last: bool = False,
) -> Run:
    client = open_session(server)
    jobs = [Job(submission) for submission in submissions]
    queue = deque(jobs)
    taken = [1]
    reports: list[tuple[Job, object, bool]] = []

    def take() -> Job | None:
        if not queue:
            return None
        taken[0] += 1
        return queue.popleft()

    lane = Lane(window, limit)
    first = queue.popleft()
    lane.held.append(first)
    drive(
        lane_gen(
            client, lane, first, take, lambda *r: reports.append(r), last=lambda: last and not queue
        ),
        server.perform,
        client.close,
    )
    return Run(jobs, reports, lane, server, taken[0])


def submission_of(
    index: int, recipients: list[str], body: bytes = b"", chunking: bool = True
) -> Submission:
    return Submission.create(
        body or b"Subject: m%d\r\n\r\nbody %d\r\n" % (index, index),
        "model.example",
        25,
        sender=f"s{index}@example.test",
        recipients=recipients,
        tls="none",
        chunking=chunking,
    )


codes = st.sampled_from([250, 250, 250, 451, 550, 421])
rcpt_codes = st.sampled_from([250, 250, 251, 450, 550, 553, 421])
body_codes = st.sampled_from([250, 250, 250, 451, 554, 421])


@st.composite
def batches(draw: st.DrawFn, closing: bool = True) -> tuple[list[Submission], dict[str, Script]]:
    """Messages and the replies each gets; ``closing``: 421 among them."""
    keep = (lambda codes: codes) if closing else (lambda codes: codes.filter(lambda c: c != 421))
    submissions, scripts = [], {}
    for index in range(draw(st.integers(1, 7))):
        recipients = [f"r{index}.{n}@example.test" for n in range(draw(st.integers(1, 3)))]
        way = draw(st.sampled_from(["bdat"] * 8 + ["data", "streamed"]))
        body = b"x" * (300 << 10) if way == "streamed" else b""  # larger than one piece
        submission = submission_of(index, recipients, body, chunking=way != "data")
        submissions.append(submission)
        scripts[submission.sender] = Script(
            draw(keep(codes)),
            {recipient: draw(keep(rcpt_codes)) for recipient in recipients},
            draw(keep(body_codes)),
        )
    return submissions, scripts


def check_reports(run: Run) -> None:
    """Every job taken is reported once; none is left held."""
    reported = [id(job) for job, _, _ in run.reports]
    assert sorted(reported) == sorted(map(id, run.jobs[: run.taken]))
    assert run.lane.held == []


def outcomes(run: Run) -> list[object]:
    """The outcome of each job taken, in the order taken."""
    by_job = {id(job): outcome for job, outcome, _ in run.reports}
    return [by_job[id(job)] for job in run.jobs[: run.taken]]


@settings(max_examples=300, deadline=None)
@given(batches(closing=False), st.integers(1, 8), st.lists(st.integers(1, 40), max_size=60))
def test_without_a_lost_connection_each_message_gets_what_it_would_alone(
    batch: tuple[list[Submission], dict[str, Script]], window: int, cuts: list[int]
) -> None:
    submissions, scripts = batch
    server = ModelServer(scripts, deque(cuts))
    run = run_lane(submissions, server, window)
    check_reports(run)
    assert run.taken == len(submissions)
    assert all(counts for _, _, counts in run.reports)
    for outcome, submission in zip(outcomes(run), submissions, strict=True):
        assert same(outcome, alone(submission, scripts)), (outcome, alone(submission, scripts))
    delivered = [job.submission.sender for job, o, _ in run.reports if isinstance(o, SendResult)]
    assert delivered == server.delivered


@settings(max_examples=400, deadline=None)
@given(
    batches(),
    st.integers(1, 8),
    st.lists(st.integers(1, 40), max_size=60),
    st.tuples(st.none() | st.integers(1, 30), st.booleans()),
    st.booleans(),
)
def test_a_lost_connection_fails_only_what_was_in_flight_and_never_twice(
    batch: tuple[list[Submission], dict[str, Script]],
    window: int,
    cuts: list[int],
    faults: tuple[int | None, bool],
    last: bool,
) -> None:
    """``faults``: the server closes after so many replies, and a write after that fails
    or vanishes.  ``last``: the pool is closing, so QUIT goes out behind the last
    transactions."""
    drop_after, broken_writes = faults
    submissions, scripts = batch
    server = ModelServer(scripts, deque(cuts), drop_after, broken_writes)
    run = run_lane(submissions, server, window, last=last)
    check_reports(run)
    lost = False
    for job, outcome, counts in run.reports:
        expected = alone(job.submission, scripts)
        if same(outcome, expected) and not lost:
            assert counts
        else:
            # The connection went away under this message, or under an earlier one.
            assert isinstance(outcome, Exception) and transient(outcome), outcome
            assert isinstance(outcome, SMTPServerDisconnected) or same(outcome, expected)
            assert server.closed
            if not counts:  # free: the connection had served, or this was never sent
                assert isinstance(outcome, SMTPServerDisconnected)
                assert run.lane.answered > 0 or job.submission.sender not in server.mails
        lost = lost or not counts or isinstance(outcome, SMTPServerDisconnected)
    delivered = [job.submission.sender for job, o, _ in run.reports if isinstance(o, SendResult)]
    assert delivered == server.delivered  # a 250 read is reported; none reported unread


# ---------------------------------------------------------------- the wire, exactly


def test_transactions_are_pipelined_behind_each_other_with_rset_between() -> None:
    subs = [submission_of(n, [f"r{n}@example.test"]) for n in range(3)]
    scripts = {s.sender: Script(250, {s.recipients[0]: 250}, 250) for s in subs}
    writes: list[bytes] = []
    server = ModelServer(scripts)
    perform = server.perform

    def recording(request: Any) -> Any:
        if isinstance(request, bytes):
            writes.append(request)
        return perform(request)

    server.perform = recording  # type: ignore[method-assign]
    run = run_lane(subs, server, window=3)
    assert [type(o) for _, o, _ in run.reports] == [SendResult] * 3
    wire = b"".join(writes[1:])  # after EHLO
    assert wire.count(b"rset\r\n") == 2 and not wire.startswith(b"rset")
    assert len(writes) == 2  # EHLO, then the three transactions in one write
    assert server.rsets == 2
    assert [o.queue_id for _, o, _ in run.reports] == ["S0", "S1", "S2"]  # type: ignore[union-attr]


def test_a_window_is_written_as_it_is_made_a_flush_at_a_time() -> None:
    """Sixty messages of 3 KB in a window of 100: a write each time the groups come to
    FLUSH_SIZE bytes, before any reply is read, so the server starts on the first ones."""
    body = b"Subject: s\r\n\r\n" + b"x" * 3000 + b"\r\n"
    subs = [submission_of(n, [f"r{n}@example.test"], body) for n in range(60)]
    scripts = {s.sender: Script(250, {s.recipients[0]: 250}, 250) for s in subs}
    server = ModelServer(scripts)
    writes = recorded(server)
    order: list[str] = []
    perform = server.perform

    def watching(request: Any) -> Any:
        order.append("write" if isinstance(request, bytes) else "read")
        return perform(request)

    server.perform = watching  # type: ignore[method-assign]
    run = run_lane(subs, server, window=100)
    assert [type(o) for _, o, _ in run.reports] == [SendResult] * 60
    lane = writes[1:]  # after EHLO
    assert len(lane) == math.ceil(sum(map(len, lane)) / FLUSH_SIZE) > 2
    assert all(FLUSH_SIZE <= len(w) < FLUSH_SIZE + 3200 for w in lane[:-1])
    opening = ["read", "write", "read"]  # the greeting, EHLO
    assert order[: 3 + len(lane)] == opening + ["write"] * len(lane)  # before any reply


def test_a_window_of_one_waits_for_each_transaction() -> None:
    subs = [submission_of(n, [f"r{n}@example.test"]) for n in range(3)]
    scripts = {s.sender: Script(250, {s.recipients[0]: 250}, 250) for s in subs}
    server = ModelServer(scripts)
    writes: list[bytes] = []
    perform = server.perform

    def recording(request: Any) -> Any:
        if isinstance(request, bytes):
            writes.append(request)
            assert not server.outbound, "a write while replies wait unread"
        return perform(request)

    server.perform = recording  # type: ignore[method-assign]
    run = run_lane(subs, server, window=1)
    assert len(writes) == 4 and server.rsets == 0  # each one known to have succeeded
    assert all(isinstance(o, SendResult) for _, o, _ in run.reports)


def recorded(server: ModelServer) -> list[bytes]:
    """The writes the client makes to ``server`` from now on."""
    writes: list[bytes] = []
    perform = server.perform

    def recording(request: Any) -> Any:
        if isinstance(request, bytes):
            writes.append(request)
        return perform(request)

    server.perform = recording  # type: ignore[method-assign]
    return writes


def test_the_lane_stops_at_its_limit_with_quit_behind_its_last_transaction() -> None:
    subs = [submission_of(n, [f"r{n}@example.test"]) for n in range(5)]
    scripts = {s.sender: Script(250, {s.recipients[0]: 250}, 250) for s in subs}
    server = ModelServer(scripts)
    writes = recorded(server)
    run = run_lane(subs, server, window=4, limit=3)
    assert run.taken == 3 and run.lane.spent and len(run.reports) == 3
    assert all(isinstance(outcome, SendResult) for _, outcome, _ in run.reports)
    assert len(writes) == 2 and writes[-1].endswith(b"quit\r\n")  # EHLO; the three and QUIT
    assert server.closed and run.reports[0][0].submission.sender not in server.mails[3:]


@pytest.mark.parametrize("closing", ["before", "after"])
def test_a_closing_pool_sends_quit_behind_what_is_in_flight(closing: str) -> None:
    """Nothing will come any more: QUIT follows the last transaction in its write when the
    pool was closing as it was written, else alone as soon as the pool closes, while
    replies are awaited; every reply is still read, then QUIT's."""
    subs = [submission_of(n, [f"r{n}@example.test"]) for n in range(3)]
    scripts = {s.sender: Script(250, {s.recipients[0]: 250}, 250) for s in subs}
    server = ModelServer(scripts)
    client = open_session(server)
    writes = recorded(server)
    jobs = [Job(submission) for submission in subs]
    queue = deque(jobs[1:])
    closed = [closing == "before"]
    reports: list[tuple[Job, object, bool]] = []

    def report(job: Job, outcome: object, counts: bool) -> None:
        reports.append((job, outcome, counts))
        closed[0] = True  # (after the first reply read)

    lane = Lane(window=3)
    lane.held.append(jobs[0])
    take = lambda: queue.popleft() if queue else None  # noqa: E731
    last = lambda: closed[0] and not queue  # noqa: E731
    drive(lane_gen(client, lane, jobs[0], take, report, last=last), server.perform, client.close)
    assert [type(outcome) for _, outcome, _ in reports] == [SendResult] * 3
    assert server.delivered == [s.sender for s in subs] and server.closed
    quits = [write for write in writes if b"quit" in write]
    expected = [b"quit\r\n"] if closing == "after" else [writes[0]]
    assert quits == expected and len(writes) == (1 if closing == "before" else 2)
    assert writes[0].endswith(b"body 2\r\n" + (b"quit\r\n" if closing == "before" else b""))
    assert not client.is_connected and not lane.held


def test_a_message_the_server_cannot_take_fails_alone_with_nothing_sent() -> None:
    binary = Submission.create(
        b"\0binary", "model.example", 25, sender="s1@example.test", recipients="r@x", tls="none"
    )
    subs = [submission_of(0, ["r0@example.test"]), binary, submission_of(2, ["r2@example.test"])]
    scripts = {s.sender: Script(250, dict.fromkeys(s.recipients, 250), 250) for s in subs}
    run = run_lane(subs, ModelServer(scripts), window=4)
    first, refused, last = outcomes(run)
    assert isinstance(refused, SMTPNotSupportedError)
    assert isinstance(first, SendResult) and isinstance(last, SendResult)
    assert run.server.delivered == ["s0@example.test", "s2@example.test"]


def test_a_large_message_drains_the_window_and_goes_alone() -> None:
    large = submission_of(1, ["r1@example.test"], b"x" * (300 << 10))
    subs = [submission_of(0, ["r0@example.test"]), large, submission_of(2, ["r2@example.test"])]
    scripts = {s.sender: Script(250, dict.fromkeys(s.recipients, 250), 250) for s in subs}
    server = ModelServer(scripts)
    run = run_lane(subs, server, window=4)
    assert [type(o) for _, o, _ in run.reports] == [SendResult] * 3
    assert server.delivered == [s.sender for s in subs]


def test_an_idle_connection_closed_by_the_server_costs_no_attempt() -> None:
    """The connection served a message; the next one finds it closed before any reply."""
    subs = [submission_of(n, [f"r{n}@example.test"]) for n in range(3)]
    scripts = {s.sender: Script(250, {s.recipients[0]: 250}, 250) for s in subs}
    server = ModelServer(scripts, drop_after=1 + 3)  # EHLO, then the first transaction's
    run = run_lane(subs, server, window=1)
    (_, first, _), (_, second, counts), *_ = run.reports
    assert isinstance(first, SendResult)
    assert isinstance(second, SMTPServerDisconnected) and not counts
    assert len(run.reports) == 2  # the connection is gone: no more taken


def test_a_fresh_connection_lost_at_once_counts() -> None:
    sub = submission_of(0, ["r0@example.test"])
    server = ModelServer({sub.sender: Script(250, {"r0@example.test": 250}, 250)}, drop_after=1)
    run = run_lane([sub], server, window=2)
    ((_, outcome, counts),) = run.reports
    assert isinstance(outcome, SMTPServerDisconnected) and counts


# ---------------------------------------------------------------- retry policy


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SMTPSenderRefused(451, b"try later", "s"), True),
        (SMTPSenderRefused(421, b"closing", "s"), True),
        (SMTPSenderRefused(550, b"no", "s"), False),
        (SMTPDataError(452, b"full"), True),
        (SMTPDataError(554, b"spam"), False),
        (SMTPRecipientsRefused({"a": (550, b"no"), "b": (450, b"busy")}), True),
        (SMTPRecipientsRefused({"a": (550, b"no")}), False),
        (SMTPRecipientsRefused({"a": (-1, b"unanswered")}), True),
        (SMTPServerDisconnected("lost"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (SMTPConnectError(421, b"busy"), True),
        (SMTPConnectError(554, b"go away"), False),
        (SMTPAuthenticationError(454, b"temporary"), True),
        (SMTPAuthenticationError(535, b"bad credentials"), False),
        (SMTPSecurityError("no STARTTLS"), False),
        (RemoteProtocolError("garbage"), False),
        (ValueError("bad"), False),
    ],
)
def test_what_is_worth_another_attempt(error: Exception, expected: bool) -> None:
    assert transient(error) is expected


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(retries=9, backoff=0.5, max_backoff=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def lost() -> SMTPServerDisconnected:
    return SMTPServerDisconnected("lost")


def test_dispatcher_retries_transient_failures_after_the_backoff() -> None:
    dispatcher = Dispatcher(RetryPolicy(retries=2, backoff=1.0))
    job = Job(submission_of(0, ["r@x"]))
    dispatcher.submit(job)
    assert dispatcher.take(0.0) is job and dispatcher.take(0.0) is None
    assert not dispatcher.settle(job, lost(), 0.0)
    assert dispatcher.wait(0.5) == 0.5 and dispatcher.take(0.5) is None
    assert dispatcher.take(1.0) is job
    assert not dispatcher.settle(job, lost(), 1.0)
    assert dispatcher.wait(1.0) == 2.0
    assert dispatcher.take(3.0) is job
    final = lost()
    assert dispatcher.settle(job, final, 3.0) and job.outcome is final and dispatcher.idle


def test_dispatcher_ends_permanent_failures_and_results_at_once() -> None:
    dispatcher = Dispatcher(RetryPolicy(retries=5))
    jobs = [Job(submission_of(n, ["r@x"])) for n in range(2)]
    for job in jobs:
        dispatcher.submit(job)
    refused = SMTPSenderRefused(550, b"no", "s")
    assert dispatcher.settle(dispatcher.take(0), refused, 0)  # type: ignore[arg-type]
    result = SendResult({}, {}, None)
    assert dispatcher.settle(dispatcher.take(0), result, 0)  # type: ignore[arg-type]
    assert [job.outcome for job in jobs] == [refused, result] and dispatcher.idle


def test_an_unanswered_message_goes_back_first_without_using_an_attempt() -> None:
    dispatcher = Dispatcher(RetryPolicy(retries=0))
    first, second = Job(submission_of(0, ["r@x"])), Job(submission_of(1, ["r@x"]))
    dispatcher.submit(first)
    dispatcher.submit(second)
    taken = dispatcher.take(0)
    assert taken is first and not dispatcher.settle(first, lost(), 0, counts=False)
    assert dispatcher.take(0) is first and first.failures == 0
    assert dispatcher.settle(first, lost(), 0)  # counted: no retries left


@given(st.floats(0.5, 50), st.lists(st.floats(0, 2), min_size=1, max_size=30))
def test_the_rate_spaces_the_starts(rate: float, gaps: list[float]) -> None:
    dispatcher = Dispatcher(RetryPolicy(), rate=rate)
    for n in range(len(gaps)):
        dispatcher.submit(Job(submission_of(n, ["r@x"])))
    now, starts = 0.0, []
    for gap in gaps:
        now += gap
        job = dispatcher.take(now)
        while job is None:  # an adapter waits as told, then tries again
            wait = dispatcher.wait(now)
            assert wait is not None and wait <= 1 / rate + 1e-9
            now = max(now + wait, math.nextafter(now, math.inf))
            job = dispatcher.take(now)
        starts.append(now)
    assert all(b - a >= 1 / rate - 1e-9 for a, b in itertools.pairwise(starts))
    assert dispatcher.wait(now) is None


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["ok", "permanent", "transient", "unanswered"]), max_size=80))
def test_every_job_ends_and_transient_ones_within_their_attempts(events: list[str]) -> None:
    policy = RetryPolicy(retries=2, backoff=0.0)
    dispatcher = Dispatcher(policy)
    jobs = [Job(submission_of(n, ["r@x"])) for n in range(5)]
    for job in jobs:
        dispatcher.submit(job)
    unanswered = 0
    stream = iter(events)
    while not dispatcher.idle:
        job = dispatcher.take(0.0)
        assert job is not None
        event = next(stream, "ok")
        if event == "unanswered" and unanswered < 20:
            unanswered += 1
            dispatcher.settle(job, lost(), 0.0, counts=False)
        elif event == "permanent":
            dispatcher.settle(job, SMTPDataError(554, b"no"), 0.0)
        elif event == "transient":
            dispatcher.settle(job, lost(), 0.0)
        else:
            dispatcher.settle(job, SendResult({}, {}, None), 0.0)
    assert all(job.outcome is not None and job.failures <= policy.retries + 1 for job in jobs)


def test_cancel_ends_what_waits() -> None:
    dispatcher = Dispatcher(RetryPolicy(backoff=10))
    jobs = [Job(submission_of(n, ["r@x"])) for n in range(3)]
    for job in jobs:
        dispatcher.submit(job)
    busy = dispatcher.take(0)
    retried = dispatcher.take(0)
    assert retried is not None and not dispatcher.settle(retried, lost(), 0)
    stop = SMTPServerDisconnected("stopped")
    assert set(map(id, dispatcher.cancel(stop))) == {id(jobs[1]), id(jobs[2])}
    assert busy is not None and busy.outcome is None and dispatcher.busy == 1


# ---------------------------------------------------------------- LIMITS


@pytest.mark.parametrize(
    ("advertised", "expected"),
    [
        ("MAILMAX=1000 RCPTMAX=100 RCPTDOMAINMAX=1", Limits(1000, 100, 1)),
        ("rcptmax=20 FUTURE=x", Limits(rcptmax=20)),
        ("MAILMAX=0 RCPTMAX=-4 RCPTDOMAINMAX=lots", Limits()),
        ("", Limits()),
    ],
)
def test_limits_are_read_from_the_ehlo_keyword(advertised: str, expected: Limits) -> None:
    assert Limits.from_features({"limits": advertised}) == expected


def test_mailmax_caps_the_lane() -> None:
    server = ModelServer({})
    client = open_session(server)
    client.esmtp_features["limits"] = "MAILMAX=3"
    assert Lane.open(client, window=5, max_messages=None).limit == 3
    assert Lane.open(client, window=5, max_messages=2).limit == 2
    client.esmtp_features.pop("limits")
    assert Lane.open(client, window=5, max_messages=None).limit is None


addresses = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.sampled_from(["x.test", "Y.test", "z.test", ""])),
    min_size=1,
    max_size=30,
    unique=True,
).map(lambda pairs: [f"{local}@{domain}" if domain else local for local, domain in pairs])


@given(addresses, st.none() | st.integers(1, 5), st.none() | st.integers(1, 3))
def test_limits_split_recipients_into_transactions_within_them(
    recipients: list[str], rcptmax: int | None, rcptdomainmax: int | None
) -> None:
    parts = Limits(rcptmax=rcptmax, rcptdomainmax=rcptdomainmax).split(recipients)
    assert sorted(r for part in parts for r in part) == sorted(recipients)  # each one once
    domain = lambda r: r.rpartition("@")[2].lower()  # noqa: E731
    for part in parts:
        assert part and (rcptmax is None or len(part) <= rcptmax)
        assert rcptdomainmax is None or len({domain(r) for r in part}) <= rcptdomainmax
    for name in {domain(r) for r in recipients}:  # a domain's recipients in the order given
        ordered = [r for part in parts for r in part if domain(r) == name]
        assert ordered == [r for r in recipients if domain(r) == name]
    if rcptmax is None and rcptdomainmax is None:
        assert parts == [recipients]


def part(recipients: list[str], outcome: object) -> Job:
    job = Job(submission_of(0, recipients))
    job.outcome = outcome  # type: ignore[assignment]
    return job


def reply(code: int, text: bytes = b"ok") -> Reply:
    return Reply.from_tuple(code, text)


def test_merged_parts_report_every_recipient_and_the_first_delivery() -> None:
    first = SendResult({"a@x": reply(250)}, {"b@x": reply(550)}, reply(250, b"queued as A"))
    second = SendResult({"c@y": reply(250)}, {}, reply(250, b"queued as B"))
    refused = SMTPAllRecipientsRefused(
        {"d@z": (550, b"no")}, SendResult({}, {"d@z": reply(550, b"no")}, None)
    )
    failed = SMTPDataError(451, b"try later")
    merged = merge_parts(
        [
            part(["a@x", "b@x"], first),
            part(["c@y"], second),
            part(["d@z"], refused),
            part(["e@w"], failed),
        ]
    )
    assert isinstance(merged, SendResult)
    assert list(merged.accepted) == ["a@x", "c@y"]
    assert {r: reply.as_tuple() for r, reply in merged.refused.items()} == {
        "b@x": (550, b"ok"),
        "d@z": (550, b"no"),
        "e@w": (451, b"try later"),
    }
    assert merged.queue_id == "A"


def test_merged_parts_delivered_to_nobody() -> None:
    refusals = [
        SMTPAllRecipientsRefused({r: (550, b"no")}, SendResult({}, {r: reply(550, b"no")}, None))
        for r in ("a@x", "b@y")
    ]
    merged = merge_parts([part(["a@x"], refusals[0]), part(["b@y"], refusals[1])])
    assert isinstance(merged, SMTPAllRecipientsRefused)
    assert merged.recipients == {"a@x": (550, b"no"), "b@y": (550, b"no")}
    lost = SMTPServerDisconnected("lost")
    assert merge_parts([part(["a@x"], refusals[0]), part(["b@y"], lost)]) is lost
    only = merge_parts([part(["a@x"], lost)])
    assert only is lost and not isinstance(only, SMTPResponseException)


def test_parts_go_first_and_each_is_retried_alone() -> None:
    dispatcher = Dispatcher(RetryPolicy(retries=1, backoff=0.0))
    message, other = Job(submission_of(0, ["a@x", "b@y"])), Job(submission_of(1, ["c@x"]))
    dispatcher.submit(message)
    dispatcher.submit(other)
    assert dispatcher.take(0) is message
    parts = [Job(submission_of(0, [r]), parent=message) for r in ("a@x", "b@y")]
    assert dispatcher.settle(message, Split(parts), 0) is None
    assert dispatcher.take(0) is parts[0] and dispatcher.take(0) is parts[1]
    delivered = SendResult({"a@x": reply(250)}, {}, reply(250, b"queued as Q"))
    assert dispatcher.settle(parts[0], delivered, 0) is None  # the other part is not done
    assert dispatcher.settle(parts[1], SMTPDataError(451, b"later"), 0) is None  # retried
    assert dispatcher.take(0) is other
    assert dispatcher.take(0) is parts[1]  # only the part that failed goes again
    finished = dispatcher.settle(parts[1], SendResult({"b@y": reply(250)}, {}, reply(250)), 0)
    assert finished is message and isinstance(message.outcome, SendResult)
    assert list(message.outcome.accepted) == ["a@x", "b@y"]
    assert message.outcome.queue_id == "Q"


def test_a_lane_splits_what_the_server_limits() -> None:
    """RCPTMAX=2 RCPTDOMAINMAX=1: five recipients in two domains go as three transactions,
    each the server's answer; the message's result has them all."""
    recipients = ["a@x.test", "b@y.test", "c@x.test", "d@x.test", "e@y.test"]
    sub = submission_of(0, recipients)
    scripts = {sub.sender: Script(250, dict.fromkeys(recipients, 250), 250)}
    server = ModelServer(scripts)
    client = open_session(server)
    client.esmtp_features["limits"] = "RCPTMAX=2 RCPTDOMAINMAX=1"
    dispatcher = Dispatcher(RetryPolicy())
    job = Job(sub)
    dispatcher.submit(job)
    first = dispatcher.take(0)
    assert first is job
    lane = Lane.open(client, window=5, max_messages=None)
    lane.held.append(job)
    finished: list[Job] = []

    def report(job: Job, outcome: object, counts: bool) -> None:
        done = dispatcher.settle(job, outcome, 0, counts)  # type: ignore[arg-type]
        if done is not None:
            finished.append(done)

    operation = lane_gen(client, lane, job, lambda: dispatcher.take(0), report)
    drive(operation, server.perform, client.close)
    assert finished == [job] and dispatcher.idle
    assert [len(p.submission.recipients) for p in job.parts] == [2, 1, 2]
    assert isinstance(job.outcome, SendResult) and sorted(job.outcome.accepted) == recipients
    assert server.mails == [sub.sender] * 3 and server.delivered == [sub.sender] * 3


# ---------------------------------------------------------------- withdrawn messages


def test_a_withdrawn_message_leaves_the_queue_unsent() -> None:
    dispatcher = Dispatcher(RetryPolicy(retries=1, backoff=10.0))
    waiting, retrying = Job(submission_of(0, ["r@x"])), Job(submission_of(1, ["r@x"]))
    dispatcher.submit(retrying)
    dispatcher.submit(waiting)
    assert dispatcher.take(0) is retrying and not dispatcher.settle(retrying, lost(), 0)
    for job in (waiting, retrying):  # one ready, one waiting for its retry
        assert dispatcher.withdraw(job) == [job]
        assert isinstance(job.outcome, Withdrawn)
    assert dispatcher.idle and dispatcher.take(100.0) is None and dispatcher.wait(0) is None


@pytest.mark.parametrize("counts", [True, False])
def test_a_withdrawn_message_taken_is_never_sent_again(counts: bool) -> None:
    """Taken (and perhaps written): its outcome ends it, even one that would retry it."""
    dispatcher = Dispatcher(RetryPolicy(retries=3, backoff=0.0))
    job = Job(submission_of(0, ["r@x"]))
    dispatcher.submit(job)
    assert dispatcher.take(0) is job
    assert dispatcher.withdraw(job) == [] and job.outcome is None  # the lane has it
    failure = lost()
    assert dispatcher.settle(job, failure, 0, counts) is job
    assert job.outcome is failure and dispatcher.idle


def test_a_withdrawn_split_message_ends_once_its_parts_taken_end() -> None:
    dispatcher = Dispatcher(RetryPolicy())
    message = Job(submission_of(0, ["a@x", "b@y", "c@z"]))
    dispatcher.submit(message)
    assert dispatcher.take(0) is message
    parts = [Job(submission_of(0, [r]), parent=message) for r in ("a@x", "b@y", "c@z")]
    dispatcher.settle(message, Split(parts), 0)
    assert dispatcher.take(0) is parts[0]
    assert dispatcher.withdraw(message) == []  # the part taken is not done
    assert all(part.withdrawn for part in parts) and dispatcher.take(0) is None
    delivered = SendResult({"a@x": reply(250)}, {}, reply(250, b"queued as Q"))
    assert dispatcher.settle(parts[0], delivered, 0) is message and dispatcher.idle
    assert [type(part.outcome) for part in parts] == [SendResult, Withdrawn, Withdrawn]


def test_a_lane_never_writes_a_withdrawn_message() -> None:
    """Withdrawn while its connection opened (the first job), or while it waited for the
    window to empty (a message for the ordinary transaction): reported, never written."""
    subs = [
        submission_of(0, ["r0@example.test"]),
        submission_of(1, ["r1@example.test"]),
        submission_of(2, ["r2@example.test"], b"x" * (300 << 10)),  # waits for the window
        submission_of(3, ["r3@example.test"]),
    ]
    scripts = {s.sender: Script(250, dict.fromkeys(s.recipients, 250), 250) for s in subs}
    server = ModelServer(scripts)
    client = open_session(server)
    jobs = [Job(submission) for submission in subs]
    jobs[0].withdrawn = True
    queue = deque(jobs[1:])
    reports: list[tuple[Job, object, bool]] = []

    def report(job: Job, outcome: object, counts: bool) -> None:
        reports.append((job, outcome, counts))
        if job is jobs[1]:  # the large message is taken, waiting for this one's replies
            jobs[2].withdrawn = True

    lane = Lane(window=4)
    lane.held.append(jobs[0])
    take = lambda: queue.popleft() if queue else None  # noqa: E731
    drive(lane_gen(client, lane, jobs[0], take, report), server.perform, client.close)
    assert [(job, type(outcome)) for job, outcome, _ in reports] == [
        (jobs[0], Withdrawn),
        (jobs[1], SendResult),
        (jobs[2], Withdrawn),
        (jobs[3], SendResult),
    ]
    assert server.mails == [subs[1].sender, subs[3].sender] and lane.held == []


# ---------------------------------------------------------------- recipients refused for now


@settings(max_examples=300)
@given(
    st.lists(
        st.lists(st.sampled_from([250, 251, 421, 450, 451, 550, 553]), min_size=1, max_size=4),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, 3),
    st.sampled_from([250, 250, 451, 554]),
)
def test_recipients_refused_for_now_are_sent_again_alone(
    script: list[list[int]], retries: int, body: int
) -> None:
    """One message through the dispatcher, each of its transactions answered from a script:
    each recipient's RCPT reply at each attempt (its last one repeating), and the body's.
    A recipient refused with a 4xx goes again, after the backoff, in a transaction of just
    such recipients, until accepted or out of attempts; one accepted or refused with a 5xx
    is never sent again.  The outcome merges every transaction's: each recipient with its
    last reply, the first delivery's final reply; a body refused fails a transaction as a
    whole (451: all of it again)."""
    recipients = [f"r{n}@x" for n in range(len(script))]
    plan = dict(zip(recipients, script, strict=True))
    policy = RetryPolicy(retries=retries, backoff=0.5, max_backoff=1.0)
    dispatcher = Dispatcher(policy)
    job = Job(submission_of(0, recipients))
    dispatcher.submit(job)
    tries = dict.fromkeys(recipients, 0)
    sent: list[tuple[float, dict[str, int], object]] = []  # when, RCPT codes, outcome
    now, finished = 0.0, None
    while finished is None:
        wait = dispatcher.wait(now)
        assert wait is not None
        now += wait
        assert dispatcher.take(now) is job
        codes = {}
        for r in job.submission.recipients:
            codes[r] = plan[r][min(tries[r], len(plan[r]) - 1)]
            tries[r] += 1
        replies = {r: reply(code, b"attempt %d" % tries[r]) for r, code in codes.items()}
        accepted = {r: x for r, x in replies.items() if x.code in (250, 251)}
        refused = {r: x for r, x in replies.items() if r not in accepted}
        outcome: Any
        if not accepted:
            everyone = {r: x.as_tuple() for r, x in refused.items()}
            outcome = SMTPAllRecipientsRefused(everyone, SendResult({}, refused, None))
        elif body == 250:
            outcome = SendResult(accepted, refused, reply(250, b"queued as T%d" % len(sent)))
        else:
            outcome = SMTPDataError(body, b"no")
        sent.append((now, codes, outcome))
        finished = dispatcher.settle(job, outcome, now)
    assert finished is job and dispatcher.idle and 1 <= len(sent) <= retries + 1
    assert list(sent[0][1]) == recipients
    for n, ((before, codes, outcome), (after, again, _)) in enumerate(itertools.pairwise(sent)):
        assert after - before == policy.delay(n + 1)
        if isinstance(outcome, SMTPDataError):  # 451 to the body: the whole transaction again
            assert list(again) == list(codes)
        else:
            assert list(again) == [r for r, code in codes.items() if code // 100 == 4]
    last = {r: code for _, codes, _ in sent for r, code in codes.items()}
    final = job.outcome
    if isinstance(sent[-1][2], SMTPDataError):  # never delivered: the last attempt's failure
        assert final is sent[-1][2]
        return
    deliveries = [n for n, (_, _, outcome) in enumerate(sent) if isinstance(outcome, SendResult)]
    assert isinstance(final, SendResult if deliveries else SMTPAllRecipientsRefused)
    result = final if isinstance(final, SendResult) else final.result
    assert {r: x.code for r, x in (result.accepted | result.refused).items()} == last
    assert result.queue_id == (f"T{deliveries[0]}" if deliveries else None)


def test_a_part_sent_again_keeps_its_first_replies_in_the_message_result() -> None:
    """RCPTMAX split a message in two; the first part refused ``a`` for now and ``b`` for
    good, and its second attempt, for ``a`` alone, lost the connection: the message's result
    has ``c`` delivered, ``b`` with its 550 and ``a`` unanswered."""
    dispatcher = Dispatcher(RetryPolicy(retries=1, backoff=0.0))
    message = Job(submission_of(0, ["a@x", "b@x", "c@y"]))
    dispatcher.submit(message)
    assert dispatcher.take(0) is message
    first, second = (Job(submission_of(0, rs), parent=message) for rs in (["a@x", "b@x"], ["c@y"]))
    dispatcher.settle(message, Split([first, second]), 0)
    assert dispatcher.take(0) is first and dispatcher.take(0) is second
    refused = {"a@x": reply(451, b"later"), "b@x": reply(550, b"never")}
    everyone = SMTPAllRecipientsRefused(
        {r: x.as_tuple() for r, x in refused.items()}, SendResult({}, refused, None)
    )
    assert dispatcher.settle(first, everyone, 0) is None
    assert (
        dispatcher.settle(second, SendResult({"c@y": reply(250)}, {}, reply(250, b"id=C")), 0)
        is None
    )
    assert dispatcher.take(0) is first and first.submission.recipients == ("a@x",)
    assert dispatcher.settle(first, lost(), 0) is message and dispatcher.idle
    result = message.outcome
    assert isinstance(result, SendResult) and list(result.accepted) == ["c@y"]
    assert {r: x.code for r, x in result.refused.items()} == {"a@x": -1, "b@x": 550}
    assert result.queue_id == "C"
