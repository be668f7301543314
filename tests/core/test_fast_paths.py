"""The per-message fast paths (issue #14) against the general code they stand in for.

Each fast path must give exactly what the general one gives, for any input: the same bytes,
the same result or exception, the same state left behind.  The general one is reachable on
its own (``transaction_gen``, ``_send_checked``, ``_send_each``, ``next_event``, a
dataclass's generated ``__init__``, ``encode_line``, ``BodyEncoder``), so each property runs
both on twins and compares everything they expose.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Coroutine, Generator
from functools import partial
from typing import Any
from unittest.mock import patch

from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

from smtp_proto import connection as connection_module
from smtp_proto.bdat import one_chunk_request
from smtp_proto.body import BodyEncoder, crlf_only, normalised_size, sent_as_is
from smtp_proto.client import Client
from smtp_proto.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Mail,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    encode_line,
)
from smtp_proto.connection import NEED_DATA, ClientConnection, ConnectionClosed, DataEnd
from smtp_proto.driving import drive, drive_async
from smtp_proto.errors import RemoteProtocolError
from smtp_proto.outcome import OneChunkOutcome, TransactionReplies
from smtp_proto.replies import Reply
from smtp_proto.requests import CLOSE, RECEIVE
from smtp_proto.transaction import Sendmail, _one_piece
from tests.offline import EHLO_LINE, Peer, S, connected, smtplib_spelling

# --------------------------------------------------------------------------- strategies

ADDRESSES = st.sampled_from(
    [
        *("a@example.org", "b@example.org", "Ann <c@example.org>", "", "<>"),
        *("j\u00f6rg@example.org", "evil@example.org>\r\nRSET", "nul\x00@example.org"),
    ]
)
COMMANDS = st.sampled_from(
    [
        Mail("s@example.org"),
        Mail("s@example.org", ("SIZE=10", "BODY=8BITMIME")),
        Mail("evil@example.org>\r\nRCPT TO:<x@example.org"),
        Rcpt("a@example.org"),
        Rcpt("b@example.org", ("NOTIFY=NEVER",)),
        Rcpt("\u00fcser@example.org"),
        Data(),
        Bdat(5),
        Bdat(0, last=True),
        Rset(),
        Noop(),
        Quit(),
        StartTLS(),
        Ehlo("client.example"),
        Auth("PLAIN", b"\0u\0p"),
        AuthResponse(b"x"),
        Raw("DATA"),
        Raw("XCLIENT", "ADDR=192.0.2.1"),
        DataEnd(),
    ]
)
#: Reply lines a server may send, good and bad.
LINES = st.sampled_from(
    [
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 Ok\r\n",
        b"251 forwarded\r\n",
        b"250 2.0.0 Ok: queued as 4F2A\r\n",
        b"250-first\r\n250 second\r\n",
        b"354 go ahead\r\n",
        b"334 VXNlcm5hbWU6\r\n",
        b"220 ready\r\n",
        b"221 bye\r\n",
        b"421 4.3.2 closing\r\n",
        b"450 busy\r\n",
        b"451 try later\r\n",
        b"452 too many\r\n",
        b"550 5.1.1 no such user\r\n",
        b"552 too big\r\n",
        b"554 refused\r\n",
        b"250 bare lf\n",
        b"hello garbage\r\n",
        b"250-code\r\n251 changed\r\n",
    ]
)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in pieces at the (sorted, in-range) offsets ``cuts``."""
    offsets = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(offsets) if b > a]


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What ``call`` did: ``("value", result)`` or ``("raised", (type, args))``."""
    try:
        return "value", call()
    except Exception as exc:
        return "raised", (type(exc), exc.args)


def connection_state(conn: ClientConnection) -> tuple[object, ...]:
    return (conn.state, conn.pending, conn.extensions, conn.utf8, conn.accepted_recipients)


def ready(ehlo: bytes, lmtp: bool = False, pending: tuple[Command, ...] = ()) -> ClientConnection:
    """A connection past EHLO with ``ehlo``'s extensions and ``pending`` sent."""
    conn = ClientConnection(lmtp=lmtp)
    conn.receive_data(b"220 server.example\r\n")
    conn.next_event()
    conn.send(Ehlo("client"))
    conn.receive_data(ehlo)
    conn.next_event()
    for command in pending:
        conn.send(command)
    return conn


EHLO_PIPELINING = b"250-server.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
EHLO_PLAIN = b"250-server.example\r\n250 CHUNKING\r\n"
PENDING = st.sampled_from(
    [(), (Mail("s@x"),), (Rcpt("a@x"),), (Rset(), Mail("s@x")), (Noop(),), (Data(),)]
)


# --------------------------------------------------------------------------- commands


@given(COMMANDS, st.booleans(), st.sampled_from([EHLO_PIPELINING, EHLO_PLAIN]), PENDING)
def test_send_is_send_checked(command: Command, utf8: bool, ehlo: bytes, pending: Any) -> None:
    """``send``'s quick case (a command with nothing to refuse but its bytes) is the full
    check's: same bytes or exception, same state after."""
    quick, checked = ready(ehlo), ready(ehlo)
    for conn in (quick, checked):
        conn.utf8 = utf8
        for sent in pending:
            if outcome(lambda sent=sent, conn=conn: conn.send(sent))[0] == "raised":
                break
    assert connection_state(quick) == connection_state(checked)
    got = outcome(lambda: quick.send(command))
    assert got == outcome(lambda: checked._send_checked(command))
    assert connection_state(quick) == connection_state(checked)


@given(
    st.lists(COMMANDS, max_size=6),
    st.booleans(),
    st.sampled_from([EHLO_PIPELINING, EHLO_PLAIN]),
    PENDING,
)
@example([Mail("s@x"), Rcpt("a@x"), Data()], False, EHLO_PIPELINING, ())
@example([Data(), Rcpt("a\r\n@x")], False, EHLO_PIPELINING, ())
def test_send_many_is_sending_each(
    group: list[Command], utf8: bool, ehlo: bytes, pending: Any
) -> None:
    """``send_many``'s one-pass group is ``send`` one command after the other, undone on a
    refusal: same bytes or exception, same state after."""
    quick, each = ready(ehlo), ready(ehlo)
    for conn in (quick, each):
        conn.utf8 = utf8
        for sent in pending:
            if outcome(lambda sent=sent, conn=conn: conn.send(sent))[0] == "raised":
                break
    assert outcome(lambda: quick.send_many(group)) == outcome(lambda: each._send_each(group))
    assert connection_state(quick) == connection_state(each)


@given(COMMANDS, st.booleans())
def test_encode_is_encode_line_of_the_line(command: Command, utf8: bool) -> None:
    """``Command.encode``'s inline quick case is ``encode_line``'s."""
    line = outcome(command.line)
    assume(line[0] == "value")
    assert outcome(lambda: command.encode(utf8)) == outcome(lambda: encode_line(line[1], utf8))


# --------------------------------------------------------------------------- replies


@settings(max_examples=300)
@given(
    group=st.lists(COMMANDS, max_size=5),
    lines=st.lists(LINES, max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=4),
    eof=st.booleans(),
    count=st.integers(0, 6),
    lmtp=st.booleans(),
    ehlo=st.sampled_from([EHLO_PIPELINING, EHLO_PLAIN]),
    take=st.sampled_from([connection_module._take_replies, connection_module.take_replies]),
)
def test_next_replies_is_next_event_in_a_loop(
    *,
    group: list[Command],
    lines: list[bytes],
    cuts: list[int],
    eof: bool,
    count: int,
    lmtp: bool,
    ehlo: bytes,
    take: Callable[..., Reply | None],
) -> None:
    """``next_replies`` gives what calling ``next_event`` until ``count`` replies, a closed
    connection, ``NEED_DATA`` or ``ConnectionClosed`` gives, read after read: with the C
    ``take_replies`` and with the Python one (an install without the accelerator)."""
    batch, single = ready(ehlo, lmtp), ready(ehlo, lmtp)
    for conn in (batch, single):
        outcome(lambda conn=conn: conn.send_many(group))
    assert connection_state(batch) == connection_state(single)
    reads = [*cut(b"".join(lines), cuts), *([b""] if eof else [])]  # b"": EOF
    got: list[Reply] = []
    expected: list[Reply] = []

    def one_by_one() -> object:
        while len(expected) < count:
            answer = single.next_event()
            if not isinstance(answer, Reply):
                return answer
            expected.append(answer)
            if single.state.value == "closed":
                return None
        return None

    for data in [None, *reads]:  # first asked before any byte arrived
        if data is not None:
            fed = outcome(lambda data=data: batch.receive_data(data))
            assert fed == outcome(lambda data=data: single.receive_data(data))
        with patch.object(connection_module, "_take_replies", take):
            status = outcome(lambda: batch.next_replies(got, count))
        assert status == outcome(one_by_one)
        assert got == expected
        assert connection_state(batch) == connection_state(single)
        if status != ("value", NEED_DATA):
            break


def test_next_replies_returns_need_data_before_any_byte_and_none_at_count() -> None:
    conn = ready(EHLO_PIPELINING, pending=(Mail("s@x"), Rcpt("a@x")))
    replies: list[Reply] = []
    assert conn.next_replies(replies, 2) is NEED_DATA
    conn.receive_data(b"250 ok\r\n250 ")
    assert conn.next_replies(replies, 2) is NEED_DATA
    assert [reply.code for reply in replies] == [250]
    conn.receive_data(b"ok\r\n")
    assert conn.next_replies(replies, 2) is None
    assert [reply.code for reply in replies] == [250, 250]
    assert conn.next_replies(replies, 2) is None  # nothing more asked: nothing read
    conn.receive_data(b"")
    assert isinstance(conn.next_replies(replies, 3), ConnectionClosed)


def test_next_replies_keeps_the_replies_before_a_protocol_error() -> None:
    conn = ready(EHLO_PIPELINING, pending=(Mail("s@x"), Rcpt("a@x")))
    conn.receive_data(b"250 ok\r\nhello\r\n")
    replies: list[Reply] = []
    try:
        conn.next_replies(replies, 2)
    except RemoteProtocolError:
        pass
    else:
        raise AssertionError("garbage must be refused")
    assert [reply.code for reply in replies] == [250]
    assert conn.state.value == "closed"


# --------------------------------------------------------------------------- quick __init__s

QUICK = [
    (Mail, st.tuples(st.text(max_size=5), st.tuples(st.text(max_size=5)))),
    (Rcpt, st.tuples(st.text(max_size=5), st.tuples(st.text(max_size=5)))),
    (Bdat, st.tuples(st.integers(0, 10**9), st.booleans())),
    (Reply, st.tuples(st.integers(200, 599), st.tuples(st.binary(max_size=5)), st.binary())),
    (TransactionReplies, st.tuples(st.just({"a": Reply(250, (b"x",))}), st.just({}))),
    (
        OneChunkOutcome,
        st.tuples(
            st.just(TransactionReplies({}, {})),
            st.just({}),
            st.sampled_from([None, ValueError("x")]),
            st.booleans(),
            st.sampled_from([None, Reply(250, (b"ok",))]),
        ),
    ),
]


@given(st.data())
def test_quick_inits_build_what_the_dataclass_would(data: st.DataObject) -> None:
    """The hand-written ``__init__`` of the per-message dataclasses sets every field as the
    generated one does (positionally, by keyword, defaults omitted) and keeps them frozen."""
    cls, values = data.draw(st.sampled_from(QUICK))
    args = data.draw(values)
    fields = dataclasses.fields(cls)
    keywords = {f.name: a for f, a in zip(fields, args, strict=True)}
    by_position, by_keyword = cls(*args), cls(**keywords)
    for built in (by_position, by_keyword):
        assert tuple(getattr(built, f.name) for f in fields) == args
        assert built == by_position
        assert outcome(lambda built=built: hash(built)) == outcome(lambda: hash(by_position))
        try:
            setattr(built, fields[0].name, args[0])
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError(f"{cls.__name__} is not frozen")
    required = [f for f in fields if f.default is dataclasses.MISSING]
    shortest = cls(*args[: len(required)])
    for f in fields[len(required) :]:
        assert getattr(shortest, f.name) == f.default
    assert repr(by_position).startswith(f"{cls.__name__}(")
    assert dataclasses.replace(by_position) == by_position


# --------------------------------------------------------------------------- one chunk


BODIES = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"line", b".dot", b"\r\n", b"\n", b"\r", b"x"]), max_size=12).map(
        b"".join
    ),
)


@given(BODIES, st.booleans(), st.booleans())
@example(b"a\r\n", False, False)
@example(b"", False, False)
@example(b"a\r", False, True)
def test_one_chunk_request_as_is_is_what_the_encoder_sends(
    body: bytes, binary: bool, known: bool
) -> None:
    """``one_chunk_request`` sends a body that needs no rewriting as it is, without the
    encoder: the bytes the encoder would send, whether it scans the body or is told
    (``known``) whether every line end is CRLF, as sendmail_gen tells it from the SIZE count."""
    client = chunking_client([EHLO_LINE, S(EHLO_PIPELINING)])
    crlf = normalised_size(body) == len(body) if known else None
    commands = (Mail("s@x"), Rcpt("a@x"))
    request = one_chunk_request(client, commands, body, binary, crlf=crlf)
    if binary:
        expected = body
    else:
        encoder = BodyEncoder(stuff_dots=False)
        expected = encoder.encode(body) + encoder.finish()
        assert sent_as_is(body) == (expected == body)
    envelope = smtplib_spelling(b"mail FROM:<s@x>\r\nrcpt TO:<a@x>\r\n")
    assert request == envelope + b"BDAT %d LAST\r\n" % len(expected) + expected


@given(BODIES)
@example(b"a\r\r\n")
@example(b"\n\r")
def test_a_size_equal_to_the_length_means_crlf_line_ends(body: bytes) -> None:
    """``transaction_gen`` takes a message whose SIZE count is its length for one whose line
    ends are all CRLF, and does not scan it again to see whether it goes as it is."""
    assert (normalised_size(body) == len(body)) == crlf_only(body)
    assert sent_as_is(body, crlf_only(body)) == sent_as_is(body)


# --------------------------------------------------------------------------- sendmail


def chunking_client(script: list[Any]) -> Client:
    client = connected()
    assert Peer(script).run(client.ehlo())[0] == 250
    return client


class Feed:
    """Answers a client's requests from a fixed list of reads (EOF after the last), failing
    the ``fail_write``-th write and the ``fail_read``-th read with an ``OSError``; records
    every request."""

    def __init__(self, reads: list[bytes], fail_write: int, fail_read: int) -> None:
        self.reads = list(reads)
        self.fail_write, self.fail_read = fail_write, fail_read
        self.log: list[tuple[str, bytes]] = []

    def answer(self, request: Any) -> Any:
        if isinstance(request, bytes | memoryview):
            self.log.append(("write", bytes(request)))
            if sum(kind == "write" for kind, _ in self.log) == self.fail_write:
                raise OSError("write failed")
            return None
        if request is RECEIVE:
            self.log.append(("read", b""))
            if sum(kind == "read" for kind, _ in self.log) == self.fail_read:
                raise OSError("read failed")
            return self.reads.pop(0) if self.reads else b""
        self.log.append((repr(request), b""))
        assert request is CLOSE
        return None


def run_fed(operation: Generator[Any, Any, Any], feed: Feed) -> tuple[str, Any]:
    def drive() -> Any:
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                request = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as done:
                return done.value
            error = None
            try:
                value = feed.answer(request)
            except OSError as exc:
                error = exc

    return outcome(drive)


def client_state(client: Client) -> tuple[object, ...]:
    connection = client._connection
    state = None if connection is None else connection_state(connection)
    owner = client.owner
    return (
        state,
        client.last_replies,
        owner.command_encoding,
        owner.helo_resp,
        owner.ehlo_resp,
        client.is_connected,
    )


#: Mostly what the per-message path takes: a server that pipelines, greeted, bytes.
FEATURES = st.tuples(
    st.sampled_from([["PIPELINING"]] * 4 + [[]]),
    st.lists(st.sampled_from(["CHUNKING", "CHUNKING", "SIZE 40", "SIZE 100000", "SMTPUTF8"])),
).map(lambda parts: parts[0] + parts[1])
MOSTLY = st.sampled_from([True, True, True, False])
MESSAGES = st.one_of(
    BODIES,
    BODIES,
    BODIES,
    st.sampled_from([b"Subject: s\r\n\r\nbody\r\n", b".\r\n", "text \u00e9\n", "plain\n"]),
    st.sampled_from([b"x" * 39 + b"\n", b"y" * 40 + b"\r\n"]),  # about the SIZE of 40
)
RECIPIENTS = st.sampled_from([1, 1, 1, 0]).flatmap(
    lambda some: st.lists(ADDRESSES, min_size=some, max_size=3 * some)
)
NO_FAILURE = st.sampled_from([0] * 8 + [1, 2, 3])  # the n-th write or read fails; 0: none


def reply_line(code: int, text: bytes) -> bytes:
    return b"%d %s\r\n" % (code, text)


#: What a server answers a transaction: codes for MAIL, each RCPT, DATA or BDAT, the body,
#: and the final reply's text; mostly what lets it through, a refusal or closing now and then.
TRANSACTION_CODES = st.tuples(
    st.sampled_from([250, 250, 250, 421, 451, 550]),
    st.lists(st.sampled_from([250, 250, 251, 421, 450, 450, 550]), min_size=3, max_size=3),
    st.sampled_from([354, 354, 250, 250, 421, 451, 554]),
    st.sampled_from([250, 250, 250, 421, 452, 554]),
    st.sampled_from([b"2.0.0 Ok: queued as 9B1C", b"ok", b"2.0.0 Ok: queued as 77AE0"]),
)


def transaction_replies(codes: Any, recipients: int, chunking: bool) -> list[bytes]:
    """The lines a server sends to a transaction of ``recipients`` with ``codes``: MAIL's,
    the RCPTs', DATA's (unless ``chunking``), the body's, then RSET's."""
    mail, rcpts, data, body, text = codes
    return [
        b"%d 2.1.0 sender\r\n" % mail,
        *(b"%d 2.1.5 rcpt\r\n" % code for code in rcpts[:recipients]),
        *([] if chunking else [b"%d go on\r\n" % data]),
        b"%d %s\r\n" % (body, text),
        b"250 2.0.0 reset\r\n",
    ]


@settings(max_examples=2500, deadline=None)
@given(
    features=FEATURES,
    chunking=MOSTLY,
    pipelining=MOSTLY,
    sender=ADDRESSES,
    recipients=RECIPIENTS,
    message=MESSAGES,
    mail_options=st.sampled_from(
        [(), (), (), ("SMTPUTF8",), ("BODY=BINARYMIME",), ("BODY=8BITMIME",), ("bad\r\n",)]
    ),
    rcpt_options=st.sampled_from([(), (), ("NOTIFY=NEVER",)]),
    codes=st.one_of(TRANSACTION_CODES, TRANSACTION_CODES, st.lists(LINES, max_size=10)),
    cuts=st.lists(st.integers(0, 600), max_size=4),
    fail_write=NO_FAILURE,
    fail_read=NO_FAILURE,
    greeted=MOSTLY,
    tamper=st.sampled_from(["", "", "", "does_esmtp", "esmtp_features"]),
)
@example(  # DATA opened for an envelope whose every recipient was refused: an empty body
    features=["PIPELINING"],
    chunking=False,
    pipelining=True,
    sender="a@example.org",
    recipients=["b@example.org"],
    message=b"hi\r\n",
    mail_options=(),
    rcpt_options=(),
    codes=(250, [450, 250, 250], 354, 250, b"ok"),
    cuts=[],
    fail_write=0,
    fail_read=0,
    greeted=True,
    tamper="",
)
@example(  # BDAT with one recipient of two refused
    features=["PIPELINING", "CHUNKING"],
    chunking=True,
    pipelining=True,
    sender="a@example.org",
    recipients=["b@example.org", "a@example.org"],
    message=b"hi\r\n",
    mail_options=(),
    rcpt_options=(),
    codes=(250, [550, 250, 250], 354, 250, b"ok"),
    cuts=[7],
    fail_write=0,
    fail_read=0,
    greeted=True,
    tamper="",
)
@example(  # over the server's SIZE: refused before anything is sent
    features=["PIPELINING", "CHUNKING", "SIZE 40"],
    chunking=True,
    pipelining=True,
    sender="a@example.org",
    recipients=["b@example.org"],
    message=b"y" * 40 + b"\r\n",
    mail_options=(),
    rcpt_options=(),
    codes=(250, [250, 250, 250], 354, 250, b"ok"),
    cuts=[],
    fail_write=0,
    fail_read=0,
    greeted=True,
    tamper="",
)
def test_sendmail_is_the_general_transaction(
    *,
    features: list[str],
    chunking: bool,
    pipelining: bool,
    sender: str,
    recipients: list[str],
    message: bytes | str,
    mail_options: tuple[str, ...],
    rcpt_options: tuple[str, ...],
    codes: Any,
    cuts: list[int],
    fail_write: int,
    fail_read: int,
    greeted: bool,
    tamper: str,
) -> None:
    """``sendmail`` (which runs a message of one piece inline) does what ``transaction_gen``
    does for the same arguments, against the same reads: the same requests in the same
    order, the same result or exception, the same replies kept and state left (``tamper``:
    ``smtplib`` attributes a user set after EHLO)."""
    ehlo_lines = ["server.example", *features]
    ehlo = b"".join(
        b"250%s%s\r\n" % (b"-" if index < len(features) else b" ", text.encode())
        for index, text in enumerate(ehlo_lines)
    )
    if isinstance(codes, tuple):
        bdat = (chunking and "CHUNKING" in features) or "BODY=BINARYMIME" in mail_options
        lines = transaction_replies(codes, len(recipients), bdat)
    else:
        lines = codes  # any lines at all
    reads = cut(b"".join(lines), cuts)
    if not greeted:
        reads = [ehlo, *reads]  # sendmail's EHLO first
    clients = []
    for _ in range(4):
        client = connected()
        client.chunking, client.pipelining = chunking, pipelining
        if greeted:
            Peer([EHLO_LINE, S(ehlo)]).run(client.ehlo())
            # What smtplib's users may set: no ESMTP parameters, or features of their own.
            if tamper == "does_esmtp":
                client.does_esmtp = False
            elif tamper == "esmtp_features":
                client.esmtp_features = {"pipelining": ""}
        client.last_replies = TransactionReplies({"earlier@example.org": Reply(250, (b"",))}, {})
        clients.append(client)
    quick, general, driven, driven_async = clients
    path = _one_piece(quick, recipients, message, mail_options)
    event(f"sendmail's path: {({None: 'general', True: 'BDAT', False: 'DATA'})[path]}")
    feeds = [Feed(reads, fail_write, fail_read) for _ in range(4)]
    got = run_fed(quick.sendmail(sender, recipients, message, mail_options, rcpt_options), feeds[0])
    envelope = [(recipient, rcpt_options) for recipient in recipients]
    expected = run_fed(general.transaction(sender, envelope, message, mail_options), feeds[1])
    assert got == expected
    assert feeds[0].log == feeds[1].log
    assert client_state(quick) == client_state(general)
    # The drivers run the BDAT case without the operation's generators (Sendmail.round_trip).
    operation = driven.sendmail(sender, recipients, message, mail_options, rcpt_options)
    by_driver = outcome(lambda: drive(operation, feeds[2].answer, unexpected_abort))
    assert by_driver == expected
    assert feeds[2].log == feeds[1].log
    assert client_state(driven) == client_state(general)

    async def perform(request: Any) -> Any:
        return feeds[3].answer(request)

    operation = driven_async.sendmail(sender, recipients, message, mail_options, rcpt_options)
    coroutine = drive_async(operation, perform, unexpected_abort)
    assert outcome(lambda: run_unsuspended(coroutine)) == expected
    assert feeds[3].log == feeds[1].log
    assert client_state(driven_async) == client_state(general)


def run_unsuspended(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (its I/O answers at once) to its end."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def unexpected_abort() -> None:
    raise AssertionError("aborted: only for what is not an OSError")


# --------------------------------------------------------------------------- Sendmail

ONE_CHUNK_REPLIES = [b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued as 1\r\n"]


def test_sendmail_is_a_sendmail_only_where_a_round_trip_may_come() -> None:
    """A ``Sendmail`` when the server offers CHUNKING and the client uses it; else the bare
    generator, which costs the DATA path nothing more."""
    offered = chunking_client([EHLO_LINE, S(EHLO_PIPELINING)])
    assert type(offered.sendmail("s@x", ["a@x"], b"hi\r\n")) is Sendmail
    declined = chunking_client([EHLO_LINE, S(EHLO_PIPELINING)])
    declined.chunking = False
    assert type(declined.sendmail("s@x", ["a@x"], b"hi\r\n")) is not Sendmail
    plain = chunking_client([EHLO_LINE, S(b"250-server.example\r\n250 PIPELINING\r\n")])
    assert type(plain.sendmail("s@x", ["a@x"], b"hi\r\n")) is not Sendmail
    assert type(connected().sendmail("s@x", ["a@x"], b"hi\r\n")) is not Sendmail  # no EHLO yet


def test_a_sendmail_runs_as_any_generator_does() -> None:
    """``yield from`` steps the generator itself, a loop of one's own steps it through
    ``send``, and both give what ``drive`` gives: one write, one read; once it has started,
    ``round_trip`` says ``None``, so no driver takes it over half-way."""
    results = []
    for way in ("drive", "send", "yield from"):
        client = chunking_client([EHLO_LINE, S(EHLO_PIPELINING)])
        operation = client.sendmail("s@x", ["a@x", "b@x"], b"hi\r\n")
        assert isinstance(operation, Sendmail)
        feed = Feed(ONE_CHUNK_REPLIES, 0, 0)
        if way == "drive":
            run = partial(drive, operation, feed.answer, unexpected_abort)
            results.append(outcome(run))
        elif way == "send":
            results.append(run_fed(operation, feed))
            assert operation.round_trip() is None
        else:

            def outer(inner: Sendmail = operation) -> Generator[Any, Any, Any]:
                return (yield from inner)

            assert iter(operation) is operation.operation()
            results.append(run_fed(outer(), feed))
        assert feed.log[0][0] == "write" and feed.log[1:] == [("read", b"")]
        assert client.last_replies.body[""].text == b"2.0.0 queued as 1"
    assert results == [("value", {})] * 3
