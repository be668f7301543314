"""The C reply parser (``smtp_proto._speedups``) against the pure-Python one it stands in for.

Twins, one of each, are fed the same bytes in the same splits and asked for replies at the
same moments; every step must give the same thing: the same reply values, ``None`` or
exception (type, message, ``.line``), the same ``buffered``, and the same object where the
Python parser hands back a remembered reply.  The limits (line length, lines per reply, the
memory of recent replies, ``max_buffer``) are made small so that every bound is reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtp_proto import _speedups, replies
from smtp_proto.connection import ClientConnection
from smtp_proto.replies import PyReplyParser, Reply, ReplyParser
from tests.core.test_fuzz_corpus import load_target

#: The harness, shared with the fuzz target: ``Twins`` runs each step on a parser of each
#: kind and fails unless they agree; ``describe`` is what a step gave, as comparable values.
fuzz_replies = load_target("fuzz_replies")
Twins, describe, limits = fuzz_replies.Twins, fuzz_replies.describe, fuzz_replies.limits

# --------------------------------------------------------------------------- the accelerator


def test_the_replies_module_uses_the_accelerator() -> None:
    """The install builds the accelerator (tests/core/test_speedups.py checks it is there)."""
    assert ReplyParser is not PyReplyParser
    assert ReplyParser.__module__ == "smtp_proto.replies"
    assert ReplyParser.__name__ == "ReplyParser"
    assert ReplyParser.__doc__ == PyReplyParser.__doc__
    assert _speedups.bind_replies(vars(replies)) is ReplyParser  # bound once, the same type
    assert type(ClientConnection()._parser) is ReplyParser


# --------------------------------------------------------------------------- strategies

CODES = st.sampled_from([b"250", b"220", b"354", b"421", b"550", b"599", b"199", b"25", b"2x0"])
SEPARATORS = st.sampled_from([b" ", b"-", b"", b"_"])
TEXT = st.lists(
    st.sampled_from([b"ok", b"2.1.0", b" ", b"\t", b"\x00", b"\x1f", b"\x7f", b"\r", b"\xff"]),
    max_size=8,
).map(b"".join)
ENDS = st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b"\r", b""])
LINE = st.one_of(
    st.tuples(CODES, SEPARATORS, TEXT, ENDS).map(b"".join),
    st.tuples(CODES, st.sampled_from([b" ", b"-"]), st.integers(0, 70)).map(
        lambda parts: parts[0] + parts[1] + b"x" * parts[2] + b"\r\n"  # around the line limit
    ),
    st.binary(max_size=12),
)
#: A stream: lines drawn from a small pool, so that lines repeat (and are remembered).
STREAM = (
    st.lists(LINE, min_size=1, max_size=6)
    .flatmap(lambda pool: st.lists(st.sampled_from(pool), max_size=30))
    .map(b"".join)
)
#: How to feed a stream: chunk sizes, each with how many ``next_reply`` calls follow, the
#: type the chunk is passed as, and now and then a new ``max_buffer``.
STEPS = st.lists(
    st.tuples(
        st.integers(1, 40),
        st.integers(0, 3),
        st.sampled_from([bytes, bytearray, memoryview]),
        st.none() | st.integers(0, 300),
    ),
    min_size=1,
)


def run(twins: Any, stream: bytes, steps: list[tuple[int, int, type, int | None]]) -> None:
    """Feed ``stream`` to both in the steps' splits, asking for replies as they say, then
    drain; errors do not stop the run, so that the state each leaves behind is compared."""
    fed = 0
    while fed < len(stream):
        for size, calls, kind, max_buffer in steps:
            if max_buffer is not None:
                twins.step(lambda parser, value=max_buffer: setattr(parser, "max_buffer", value))
            twins.feed(kind(stream[fed : fed + size]))
            fed += size
            for _ in range(calls):
                twins.next_reply()
            if fed >= len(stream):
                break
    twins.drain()


# --------------------------------------------------------------------------- properties


#: The limits: line length, lines per reply, replies remembered, longest line remembered,
#: max_buffer.
BOUNDS = st.tuples(
    st.integers(4, 40),
    st.integers(1, 6),
    st.integers(0, 4),
    st.integers(0, 40),
    st.integers(0, 400),
)
DEFAULT_BOUNDS = (8192, 1000, 32, 512, 1 << 20)


@settings(max_examples=400, deadline=None)  # (a shared machine: no flaky deadline)
@given(STREAM, STEPS, BOUNDS)
@example(b"250 a\r\n" * 4, [(7, 1, bytes, None)], DEFAULT_BOUNDS)
@example(b"250-a\r\n250 b\r\n" * 3, [(3, 2, bytes, None)], DEFAULT_BOUNDS)
@example(b"250-a\r\n251 b\r\n250 c\r\n", [(30, 0, bytes, None)], DEFAULT_BOUNDS)
@example(b"250-abc\r\n" * 5 + b"250 d\r\n", [(8, 1, bytes, None)], (*DEFAULT_BOUNDS[:4], 20))
@example(b"250 " + b"x" * 40 + b"\r\n", [(50, 1, bytes, None)], (20, *DEFAULT_BOUNDS[1:]))
def test_agrees_with_the_python_parser(
    stream: bytes,
    steps: list[tuple[int, int, type, int | None]],
    bounds: tuple[int, int, int, int, int],
) -> None:
    max_line, max_lines, recent, recent_line, max_buffer = bounds
    with limits(
        MAX_LINE_LENGTH=max_line,
        MAX_LINES_PER_REPLY=max_lines,
        RECENT_REPLIES=recent,
        RECENT_LINE_LENGTH=recent_line,
    ):
        run(Twins(max_buffer), stream, steps)


@given(STREAM, STEPS)
def test_agrees_with_the_default_limits(
    stream: bytes, steps: list[tuple[int, int, type, int | None]]
) -> None:
    run(Twins(), stream, steps)


@pytest.mark.parametrize(
    "stream",
    [
        b"250 " + b"x" * (replies.MAX_LINE_LENGTH - 6) + b"\r\n",  # the longest line, and CR
        b"250 " + b"x" * (replies.MAX_LINE_LENGTH - 5) + b"\r\n",  # one byte too many
        b"250 " + b"x" * (replies.MAX_LINE_LENGTH - 5) + b"\n",  # the longest, bare LF
        b"250 " + b"x" * (replies.MAX_LINE_LENGTH + 50),  # too long before its end comes
        b"\x00" * (replies.MAX_LINE_LENGTH + 50) + b"\r\n",  # malformed: .line is cut there
        b"250-x\r\n" * (replies.MAX_LINES_PER_REPLY - 1) + b"250 end\r\n",  # the most lines
        b"250-x\r\n" * replies.MAX_LINES_PER_REPLY + b"250 end\r\n",  # one too many
        (b"250-" + b"y" * 4000 + b"\r\n") * 300 + b"250 end\r\n",  # over max_buffer
        b"250 a\r\n" * 5000,  # more than max_buffer in one feed
    ],
    ids=["longest", "too-long", "longest-lf", "endless", "garbage", "most-lines",
         "too-many-lines", "huge-reply", "flood"],
)  # fmt: skip
@pytest.mark.parametrize("chunk", [1 << 30, 4096, 1000])
def test_agrees_at_the_default_bounds(stream: bytes, chunk: int) -> None:
    twins = Twins(20000)
    for start in range(0, len(stream), chunk):
        twins.feed(stream[start : start + chunk])
        twins.drain(limit=5)
    twins.drain()


def test_remembered_replies_are_the_same_objects() -> None:
    """The second time a line comes it is remembered; from the third on, the reply is the
    same object (in both parsers)."""
    twins = Twins()
    for _ in range(4):
        twins.feed(b"250 2.1.0 Ok\r\n")
        twins.next_reply()
    assert [reply.raw for reply in twins.seen[0]] == [b"250 2.1.0 Ok\r\n"] * 4
    assert twins.seen[0][1] is not twins.seen[0][0]
    assert twins.seen[0][2] is twins.seen[0][1] and twins.seen[0][3] is twins.seen[0][1]
    assert twins.c._recent == twins.python._recent
    assert twins.c._seen_once == twins.python._seen_once


@pytest.mark.parametrize(
    "max_buffer", [0, -1, 10**30, -(10**30), 20.5, True, "many", None], ids=repr
)
def test_any_max_buffer_is_compared_as_python_compares_it(max_buffer: object) -> None:
    twins = Twins(max_buffer)
    twins.feed(b"250-a\r\n")
    twins.next_reply()
    twins.feed(b"250-b\r\n250 c\r\n")
    twins.drain()


def test_a_deleted_max_buffer() -> None:
    twins = Twins()
    twins.feed(b"250-a\r\n")
    for parser in twins.both:
        del parser.max_buffer
    assert twins.next_reply()[:2] == ("raised", AttributeError)  # checking the line's size
    assert twins.feed(b"250 b\r\n")[:2] == ("raised", AttributeError)
    twins.step(lambda parser: setattr(parser, "max_buffer", 100))
    assert twins.next_reply()[:2] == ("reply", 250)


@pytest.mark.parametrize(
    "data", [b"250 a\r\n", bytearray(b"250 a\r\n"), memoryview(b"250 a\r\n"), 3, "250 a\r\n"]
)
def test_feed_takes_what_the_python_one_takes(data: object) -> None:
    twins = Twins()
    twins.feed(data)
    twins.drain()
    twins.feed(b"250 b")  # and with bytes left over, which are joined to the next
    twins.feed(data)
    twins.drain()


class Odd(bytes):
    """A bytes whose ``+`` from the left gives something else."""

    def __radd__(self, other: bytes) -> bytes:
        return bytes(other) + b"-odd\r\n" + bytes(self)


def test_feed_of_a_bytes_subclass() -> None:
    twins = Twins()
    twins.feed(b"250")
    twins.feed(Odd(b"250 x\r\n"))
    twins.drain()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((7,), {}), ((), {"max_buffer": 7}), ((1, 2), {}), ((1,), {"max_buffer": 2}),
     ((), {"size": 2}), ((), {"max_buffer": 1, "size": 2}), ((1, 2, 3), {"size": 2})],
)  # fmt: skip
def test_made_with_the_same_arguments(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    made = [describe(lambda cls=cls: cls(*args, **kwargs).max_buffer, []) for cls in
            (ReplyParser, PyReplyParser)]  # fmt: skip
    assert made[0] == made[1]
    attribute = [describe(lambda cls=cls: cls().size, []) for cls in (ReplyParser, PyReplyParser)]
    assert attribute[0] == attribute[1]  # (the messages name the class alike)


CALLS: list[Callable[[Any], object]] = [
    lambda parser: parser.feed(),
    lambda parser: parser.feed(b"250 a\r\n", b"x"),
    lambda parser: parser.feed(data=b"250 a\r\n"),
    lambda parser: parser.feed(b"250 a\r\n", data=b"x"),
    lambda parser: parser.feed(b"250 a\r\n", size=1),
    lambda parser: parser.next_reply(1),
    lambda parser: parser.next_reply(1, 2),
    lambda parser: parser.next_reply(size=1),
    lambda parser: parser.next_reply(1, size=1),
]


@pytest.mark.parametrize("call", CALLS)
def test_methods_take_the_same_arguments(call: Callable[[Any], object]) -> None:
    twins = Twins()
    twins.step(call)
    twins.drain()


def test_reinitialised() -> None:
    twins = Twins()
    twins.feed(b"250 a\r\n250 a\r\n250-b\r\n")
    twins.drain()
    twins.step(lambda parser: parser.__init__(50))
    assert twins.c.buffered == 0 and not twins.c._recent
    twins.feed(b"250 a\r\n")
    twins.drain()


def test_subclassed() -> None:
    """Both can be subclassed (the Python class could)."""

    class Counting(ReplyParser):  # type: ignore[valid-type,misc]
        def next_reply(self) -> Reply | None:
            self.calls = getattr(self, "calls", 0) + 1
            return super().next_reply()  # type: ignore[no-any-return]

    parser = Counting(max_buffer=100)
    parser.feed(b"250 ok\r\n")
    assert parser.next_reply() == Reply(250, (b"ok",), b"250 ok\r\n")
    assert parser.calls == 1 and parser.buffered == 0
