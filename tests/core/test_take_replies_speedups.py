"""The C ``take_replies`` (``smtp_proto._speedups``) against the Python function it stands in
for (``smtp_proto.connection.take_replies``).

Each run gives both the same pending commands, the same replies (fed to a parser of each
kind's own, in the same splits) and the same starting lists, and calls each the same
number of times: every call must return the same thing (the same reply values, ``None`` or
exception), and leave the same replies, accepted recipients, pending commands and buffered
bytes behind.  The C function is also run on the pure-Python parser, which it drives
through its methods.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtp_proto import _speedups, connection
from smtp_proto.commands import Bdat, Command, Data, Mail, Rcpt, Rset
from smtp_proto.replies import PyReplyParser, Reply, ReplyParser


def test_the_connection_uses_the_accelerator() -> None:
    assert connection._take_replies is not connection.take_replies
    assert connection._take_replies is _speedups.bind_commands(Mail, Rcpt, Bdat)  # the same


COMMANDS = st.lists(
    st.one_of(
        st.builds(Mail, st.sampled_from(["a@x", "b@x"])),
        st.builds(Rcpt, st.sampled_from(["r1@x", "r2@x", "r3@x"])),
        st.builds(Bdat, st.integers(0, 9), st.booleans()),
        st.just(Data()),
        st.just(Rset()),
    ),
    max_size=8,
)
LINES = st.lists(
    st.sampled_from(
        [
            b"250 ok\r\n",
            b"250 2.1.5 ok\r\n",
            b"251 forwarded\r\n",
            b"354 go\r\n",
            b"421 bye\r\n",
            b"450 later\r\n",
            b"550 no\r\n",
            b"250-multi\r\n250 line\r\n",
            b"2x0 garbage\r\n",
            b"250 queued as ",  # (a reply cut before its end)
        ]
    ),
    max_size=10,
).map(b"".join)
SPLITS = st.lists(st.integers(1, 30), min_size=1, max_size=4)


def describe(call: Callable[[], object]) -> tuple[object, ...]:
    """What a call gives, as comparable values."""
    try:
        value = call()
    except Exception as error:  # (every exception is part of the behaviour)
        return ("raised", type(error), str(error))
    if isinstance(value, Reply):
        return ("reply", value.code, value.lines, value.raw)
    return ("returned", value)


class Side:
    """One function with its own parser, pending commands and lists."""

    def __init__(
        self,
        take: Callable[..., Reply | None],
        parser: Any,
        commands: list[Command],
        accepted: list[str],
    ) -> None:
        self.take = take
        self.parser = parser
        self.pending: deque[Command] = deque(commands)
        self.replies: list[Reply] = []
        self.accepted = list(accepted)

    def call(self, count: int, lmtp: bool) -> tuple[object, ...]:
        return describe(
            lambda: self.take(self.parser, self.pending, self.replies, count, self.accepted, lmtp)
        )

    def state(self) -> tuple[object, ...]:
        return (
            [(reply.code, reply.raw) for reply in self.replies],
            self.accepted,
            list(self.pending),
            self.parser.buffered,
        )


@settings(max_examples=500, deadline=None)  # (a shared machine: no flaky deadline)
@given(
    COMMANDS,
    LINES,
    SPLITS,
    st.integers(0, 10),
    st.lists(st.sampled_from(["r1@x", "r2@x"]), max_size=3),
    st.booleans(),
    st.sampled_from([ReplyParser, PyReplyParser]),
)
@example(
    [Mail("a@x"), Rcpt("r1@x"), Bdat(3, True)], b"250 ok\r\n" * 3, [30], 3, [], False, ReplyParser
)
@example(
    [Mail("a@x"), Rcpt("r1@x"), Rcpt("r2@x"), Bdat(3, True)],
    b"250 ok\r\n" * 3,
    [30],
    4,
    [],
    True,
    ReplyParser,
)
@example([Mail("a@x"), Rcpt("r1@x")], b"250 ok\r\n421 bye\r\n", [30], 2, [], False, ReplyParser)
@example([Mail("a@x")], b"250 ok\r\n250 ok\r\n", [30], 2, [], False, PyReplyParser)
@example([Rcpt("r1@x"), Data()], b"550 no\r\n354 go\r\n", [5], 2, ["r2@x"], False, ReplyParser)
def test_agrees_with_the_python_function(  # noqa: PLR0917 (given's order)
    commands: list[Command],
    stream: bytes,
    splits: list[int],
    count: int,
    accepted: list[str],
    lmtp: bool,
    parser_class: type[Any],
) -> None:
    c = Side(connection._take_replies, parser_class(), commands, accepted)
    python = Side(connection.take_replies, PyReplyParser(), commands, accepted)
    fed = 0
    for size in splits * 4:
        for side in (c, python):
            side.parser.feed(stream[fed : fed + size])
        fed += size
        assert c.call(count, lmtp) == python.call(count, lmtp)
        assert c.state() == python.state()


def answered(reply: bytes) -> ReplyParser:
    parser = ReplyParser()
    parser.feed(reply)
    return parser


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ((), TypeError),
        ((answered(b"250 ok\r\n"), deque([Mail("a@x")]), (), 1, [], False), TypeError),
        ((answered(b"250 ok\r\n"), deque([Mail("a@x")]), [], "1", [], False), TypeError),
        ((answered(b"250 ok\r\n"), [Rcpt("r@x")], [], 1, [], False), AttributeError),
    ],
)
def test_refuses_what_the_python_function_cannot_take(
    arguments: tuple[object, ...], error: type[Exception]
) -> None:
    """No argument count, replies that are no list, a count that is no int, pending commands
    with no ``popleft()``: errors, as the Python function gives (a ``TypeError`` where it
    would fail later or not at all, so that nothing is half done)."""
    with pytest.raises(error):
        connection._take_replies(*arguments)  # type: ignore[arg-type]


def test_binds_only_slotted_command_classes() -> None:
    class Loose(Command):
        pass

    with pytest.raises(TypeError, match="recipient is not a slot"):
        _speedups.bind_commands(Mail, Loose, Bdat)
    with pytest.raises(TypeError, match="takes the classes"):
        _speedups.bind_commands(Mail, Rcpt)  # type: ignore[call-arg]
