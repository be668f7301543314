"""Tests for ``smtp_proto.replies``: the incremental reply parser and the ``Reply`` value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto import replies as replies_module
from smtp_proto.errors import RemoteProtocolError, SMTPServerDisconnected
from smtp_proto.replies import (
    MAX_LINE_LENGTH,
    MAX_LINES_PER_REPLY,
    RECENT_LINE_LENGTH,
    RECENT_REPLIES,
    EnhancedStatus,
    Reply,
    ReplyParser,
)


def parse_all(data: bytes, chunks: list[int] | None = None, **kwargs: int) -> list[Reply]:
    """Feed ``data`` (split at the given chunk sizes, or whole) and collect every reply."""
    parser = ReplyParser(**kwargs)
    replies: list[Reply] = []
    pieces = [data] if chunks is None else split(data, chunks)
    for piece in pieces:
        parser.feed(piece)
        while (reply := parser.next_reply()) is not None:
            replies.append(reply)
    return replies


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes (cycled); the last piece takes the rest."""
    pieces: list[bytes] = []
    position = 0
    index = 0
    while position < len(data):
        size = max(1, sizes[index % len(sizes)]) if sizes else len(data)
        pieces.append(data[position : position + size])
        position += size
        index += 1
    return pieces


def one(data: bytes) -> Reply:
    replies = parse_all(data)
    assert len(replies) == 1, replies
    return replies[0]


# --------------------------------------------------------------------------- well-formed


def test_single_line_reply() -> None:
    reply = one(b"250 OK\r\n")
    assert reply.code == 250
    assert reply.lines == (b"OK",)
    assert reply.text == b"OK"
    assert reply.raw == b"250 OK\r\n"
    assert reply.as_tuple() == (250, b"OK")
    assert reply.is_positive


def test_multi_line_reply() -> None:
    raw = b"250-mail.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 HELP\r\n"
    reply = one(raw)
    assert reply.code == 250
    assert reply.lines == (b"mail.example", b"PIPELINING", b"SIZE 1000", b"HELP")
    assert reply.text == b"mail.example\nPIPELINING\nSIZE 1000\nHELP"
    assert reply.raw == raw


def test_code_only_reply_has_empty_text() -> None:
    reply = one(b"250\r\n")
    assert reply.code == 250
    assert reply.lines == (b"",)
    assert reply.text == b""


def test_continuation_with_empty_text() -> None:
    reply = one(b"220-\r\n220 ready\r\n")
    assert reply.lines == (b"", b"ready")


def test_bare_lf_accepted() -> None:
    replies = parse_all(b"250-first\n250 second\n354 go\n")
    assert [r.as_tuple() for r in replies] == [(250, b"first\nsecond"), (354, b"go")]


def test_text_is_stripped_like_smtplib() -> None:
    reply = one(b"250-  padded\t \r\n250 \tend  \r\n")
    assert reply.lines == (b"padded", b"end")


def test_several_replies_in_one_chunk_and_none_until_complete() -> None:
    parser = ReplyParser()
    parser.feed(b"250 a\r\n550 b\r\n45")
    assert parser.next_reply() == Reply(250, (b"a",), b"250 a\r\n")
    assert parser.next_reply() == Reply(550, (b"b",), b"550 b\r\n")
    assert parser.next_reply() is None
    assert parser.buffered == 2
    parser.feed(b"1-x\r\n451 y")
    assert parser.next_reply() is None
    parser.feed(b"\r\n")
    assert parser.next_reply() == Reply(451, (b"x", b"y"), b"451-x\r\n451 y\r\n")
    assert parser.buffered == 0


def test_high_bytes_are_kept() -> None:
    assert one("250 caf\u00e9\r\n".encode()).lines == ("caf\u00e9".encode(),)


def test_is_positive() -> None:
    assert one(b"354 go\r\n").is_positive
    assert not one(b"421 bye\r\n").is_positive
    assert not one(b"550 no\r\n").is_positive


# --------------------------------------------------------------------------- enhanced status


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"250 2.1.0 Ok\r\n", EnhancedStatus(2, 1, 0)),
        (b"550 5.7.1 relaying denied\r\n", EnhancedStatus(5, 7, 1)),
        (b"451 4.123.456 later\r\n", EnhancedStatus(4, 123, 456)),
        (b"250 2.0.0\r\n", EnhancedStatus(2, 0, 0)),
        (b"250-2.1.5 first\r\n250 2.1.5 second\r\n", EnhancedStatus(2, 1, 5)),
        # The class must match the reply code's first digit (RFC 3463).
        (b"250 5.1.0 Ok\r\n", None),
        (b"550 2.1.0 no\r\n", None),
        # 3 is not an enhanced status class.
        (b"354 3.0.0 go\r\n", None),
        (b"250 Ok\r\n", None),
        (b"250 2.1.0Ok\r\n", None),
        (b"250 2.1\r\n", None),
        (b"250 2.1234.0 x\r\n", None),
        (b"250\r\n", None),
    ],
)
def test_enhanced_status(raw: bytes, expected: EnhancedStatus | None) -> None:
    assert one(raw).enhanced_status == expected


def test_enhanced_status_str() -> None:
    status = one(b"550 5.1.1 unknown user\r\n").enhanced_status
    assert status is not None
    assert str(status) == "5.1.1"
    assert (status.klass, status.subject, status.detail) == (5, 1, 1)


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"25 OK\r\n", id="two-digit-code"),
        pytest.param(b"2500 OK\r\n", id="four-digit-code"),
        pytest.param(b"abc OK\r\n", id="letters"),
        pytest.param(b"\r\n", id="empty-line"),
        pytest.param(b"OK\r\n", id="no-code"),
        pytest.param(b"150 OK\r\n", id="first-digit-1"),
        pytest.param(b"650 OK\r\n", id="first-digit-6"),
        pytest.param(b"050 OK\r\n", id="first-digit-0"),
        pytest.param(b"250_OK\r\n", id="separator-underscore"),
        pytest.param(b"250\tOK\r\n", id="separator-tab"),
        pytest.param(b"250+OK\r\n", id="separator-plus"),
        pytest.param(b"250-a\r\n251 b\r\n", id="continuation-code-changes"),
        pytest.param(b"250-a\r\n550 b\r\n", id="continuation-class-changes"),
        pytest.param(b"250 O\x00K\r\n", id="nul"),
        pytest.param(b"250 O\x1bK\r\n", id="escape"),
        pytest.param(b"250 O\x7fK\r\n", id="del"),
        pytest.param(b"250 O\rK\r\n", id="bare-cr-inside"),
        pytest.param(b"250 OK\r\r\n", id="double-cr"),
        pytest.param(b"\x00\x00\x00\r\n", id="nul-code"),
        pytest.param(b"\xef\xbb\xbf250 OK\r\n", id="bom"),
        pytest.param(b" 250 OK\r\n", id="leading-space"),
    ],
)
def test_malformed_lines_raise(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_all(raw)


def test_malformed_line_raises_whatever_the_chunking() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_all(b"250-a\r\n251 b\r\n", [1])


def test_remote_protocol_error_is_server_disconnected() -> None:
    with pytest.raises(SMTPServerDisconnected):
        parse_all(b"xyz\r\n")


def test_longest_accepted_line() -> None:
    text = b"x" * (MAX_LINE_LENGTH - 8)
    reply = one(b"250 " + text + b"\r\n")
    assert reply.lines == (text,)


def test_line_too_long_with_line_end() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_all(b"250 " + b"x" * MAX_LINE_LENGTH + b"\r\n")


def test_line_too_long_without_line_end() -> None:
    parser = ReplyParser()
    parser.feed(b"250 " + b"x" * (MAX_LINE_LENGTH + 10))
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_line_too_long_one_byte_at_a_time_raises_early() -> None:
    parser = ReplyParser()
    parser.feed(b"250-ok\r\n")
    assert parser.next_reply() is None
    fed = 0
    with pytest.raises(RemoteProtocolError):
        for _ in range(4 * MAX_LINE_LENGTH):
            parser.feed(b"y")
            fed += 1
            assert parser.next_reply() is None
            # Never more than one maximal line (plus the finished line before it) is held.
            assert parser.buffered <= MAX_LINE_LENGTH + 1 + len(b"250-ok\r\n")
    # It raised as soon as the partial line exceeded the limit, not at the end of the stream.
    assert MAX_LINE_LENGTH <= fed <= MAX_LINE_LENGTH + 1


def test_too_many_lines() -> None:
    many = b"250-x\r\n" * MAX_LINES_PER_REPLY + b"250 end\r\n"
    with pytest.raises(RemoteProtocolError):
        parse_all(many)


def test_as_many_lines_as_allowed() -> None:
    allowed = b"250-x\r\n" * (MAX_LINES_PER_REPLY - 1) + b"250 end\r\n"
    reply = one(allowed)
    assert len(reply.lines) == MAX_LINES_PER_REPLY


def test_too_many_lines_fed_line_by_line() -> None:
    parser = ReplyParser()
    with pytest.raises(RemoteProtocolError):
        for _ in range(MAX_LINES_PER_REPLY + 5):
            parser.feed(b"250-x\r\n")
            assert parser.next_reply() is None


def test_max_buffer_exceeded() -> None:
    parser = ReplyParser(max_buffer=100)
    parser.feed(b"250-" + b"a" * 90 + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"250-bbbbbbbbbb")


def test_max_buffer_counts_only_unreturned_bytes() -> None:
    parser = ReplyParser(max_buffer=64)
    for _ in range(100):
        parser.feed(b"250 " + b"z" * 40 + b"\r\n")
        reply = parser.next_reply()
        assert reply is not None
        assert reply.code == 250
    assert parser.buffered == 0


def test_max_buffer_exceeded_by_an_unfinished_reply_fed_line_by_line() -> None:
    # The lines of a reply in progress are bytes received and not yet returned: they count.
    parser = ReplyParser(max_buffer=100)
    with pytest.raises(RemoteProtocolError):
        for _ in range(30):
            parser.feed(b"250-abcdef\r\n")
            assert parser.next_reply() is None
            assert parser.buffered <= 100


def test_max_buffer_in_one_feed() -> None:
    parser = ReplyParser(max_buffer=1000)
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"250 ok\r\n" * 200)


# --------------------------------------------------------------------------- properties

codes = st.integers(200, 599)
# Reply text: no control characters (HT allowed inside), no surrounding blanks to strip.
text_bytes = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128).strip(b" \t")
)
replies = st.tuples(codes, st.lists(text_bytes, min_size=1, max_size=5))
line_ends = st.sampled_from([b"\r\n", b"\n"])


def serialise(code: int, lines: list[bytes], line_end: bytes) -> bytes:
    out = b""
    for index, line in enumerate(lines):
        separator = b" " if index == len(lines) - 1 else b"-"
        # An empty last line may also be sent as the bare code.
        if not line and index == len(lines) - 1 and code % 2:
            out += b"%d" % code + line_end
        else:
            out += b"%d" % code + separator + line + line_end
    return out


@given(
    st.lists(st.tuples(replies, line_ends), min_size=1, max_size=8),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_chunk_invariance(
    items: list[tuple[tuple[int, list[bytes]], bytes]], sizes: list[int]
) -> None:
    data = b"".join(serialise(code, lines, end) for (code, lines), end in items)
    whole = parse_all(data)
    chunked = parse_all(data, sizes)
    bytewise = parse_all(data, [1])
    assert whole == chunked == bytewise
    assert [(r.code, r.lines) for r in whole] == [
        (code, tuple(lines)) for (code, lines), _ in items
    ]
    assert b"".join(r.raw for r in whole) == data


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=30),
            st.sampled_from([b"250 ok\r\n", b"250-", b"\r\n", b"\n", b"550", b" x", b"\x00"]),
        ),
        max_size=30,
    ),
    st.integers(8, 400),
)
def test_any_bytes_any_chunking_only_replies_or_protocol_error(
    chunks: list[bytes], max_buffer: int
) -> None:
    parser = ReplyParser(max_buffer=max_buffer)
    received = b""
    try:
        for chunk in chunks:
            parser.feed(chunk)
            received += chunk
            while (reply := parser.next_reply()) is not None:
                assert isinstance(reply, Reply)
                assert 200 <= reply.code <= 599
                assert reply.lines
            assert 0 <= parser.buffered <= max_buffer
            assert parser.buffered <= len(received)
    except RemoteProtocolError:
        pass


@given(st.binary(min_size=1, max_size=200))
def test_any_bytes_byte_by_byte_bounded(data: bytes) -> None:
    parser = ReplyParser(max_buffer=64)
    try:
        for position in range(len(data)):
            parser.feed(data[position : position + 1])
            while parser.next_reply() is not None:
                pass
            assert parser.buffered <= 64
    except RemoteProtocolError:
        pass


# --------------------------------------------------------------------------- remembered replies


def outcome(parser: ReplyParser, chunks: list[bytes]) -> tuple[list[Reply], str | None]:
    """Every reply the chunks give, and the error that stopped them (its message), if any."""
    replies: list[Reply] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (reply := parser.next_reply()) is not None:
                replies.append(reply)
                assert parser.buffered >= 0
    except RemoteProtocolError as exc:
        return replies, str(exc)
    return replies, None


# Lines that are single-line replies on their own, the last line of a multi-line one after a
# continuation, or malformed within one (a code change): the remembered path must tell them apart.
reply_lines = st.one_of(
    st.sampled_from(
        [
            b"250 ok\r\n",
            b"250-ok\r\n",
            b"251 ok\r\n",
            b"250 ok\n",
            b"250\r\n",
            b"354 go\r\n",
            b"250 \tok \r\n",
            b"2x0 ok\r\n",
            b"250 o\x00k\r\n",
        ]
    ),
    st.tuples(codes, st.sampled_from([b" ", b"-"]), text_bytes).map(lambda t: b"%d%s%s\r\n" % t),
)


def standalone(line: bytes) -> bool:
    """Whether ``line`` is a whole single-line reply on its own."""
    replies, error = outcome(parser := ReplyParser(), [line])
    return error is None and len(replies) == 1 and parser.buffered == 0


@settings(max_examples=300)
@given(
    st.lists(reply_lines, min_size=1, max_size=12),
    st.lists(reply_lines, max_size=12),
    st.lists(st.integers(1, 30), min_size=1, max_size=10),
    st.integers(1, 4),
)
def test_remembered_replies_equal_a_fresh_parse(
    lines: list[bytes], seen: list[bytes], sizes: list[int], remembered: int
) -> None:
    """A parser that has seen (and remembered) lines before parses exactly as a fresh one."""
    data = b"".join(lines)
    fresh = outcome(ReplyParser(), split(data, sizes))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replies_module, "RECENT_REPLIES", remembered)  # forgetting, too
        warm = ReplyParser()
        outcome(warm, [line for line in seen + lines if standalone(line)])
        assert outcome(warm, split(data, sizes)) == fresh
        if fresh[1] is None and warm.buffered == 0:
            assert outcome(warm, split(data, sizes)) == fresh  # now mostly remembered


def test_a_remembered_line_inside_a_multi_line_reply_ends_it() -> None:
    parser = ReplyParser()
    parser.feed(b"250 OK\r\n250 OK\r\n")  # remembered the second time
    parser.next_reply()
    first = parser.next_reply()
    parser.feed(b"250-first\r\n")
    assert parser.next_reply() is None
    parser.feed(b"250 OK\r\n250 OK\r\n")
    assert parser.next_reply() == Reply(250, (b"first", b"OK"), b"250-first\r\n250 OK\r\n")
    assert parser.next_reply() is first
    assert parser.next_reply() is None
    assert parser.buffered == 0


def test_a_remembered_line_does_not_hide_a_code_change() -> None:
    parser = ReplyParser()
    parser.feed(b"550 no\r\n")
    assert parser.next_reply() is not None
    parser.feed(b"250-first\r\n")
    assert parser.next_reply() is None
    parser.feed(b"550 no\r\n")
    with pytest.raises(RemoteProtocolError, match="code changed"):
        parser.next_reply()


def test_one_off_replies_do_not_push_out_the_repeated_ones() -> None:
    """Each message's final reply has a queue id of its own; MAIL's reply stays remembered."""
    parser = ReplyParser()
    ok = b"250 2.1.0 Ok\r\n"
    parser.feed(ok + ok)
    parser.next_reply()
    remembered = parser.next_reply()
    for number in range(3 * RECENT_REPLIES):
        parser.feed(b"250 2.0.0 queued as %d\r\n" % number + ok)
        reply = parser.next_reply()
        assert reply is not None and reply.lines == (b"2.0.0 queued as %d" % number,)
        assert parser.next_reply() is remembered
    assert len(parser._recent) == 1


def test_the_remembered_replies_are_bounded() -> None:
    parser = ReplyParser()
    for number in range(3 * RECENT_REPLIES):
        parser.feed(b"250 queued as %d\r\n" % number)
        reply = parser.next_reply()
        assert reply is not None and reply.lines == (b"queued as %d" % number,)
        assert len(parser._recent) <= RECENT_REPLIES
    line = b"250 " + b"x" * RECENT_LINE_LENGTH + b"\r\n"  # too long to be remembered
    parser.feed(line + line)
    first, second = parser.next_reply(), parser.next_reply()
    assert first == second and first is not second
    assert line not in parser._recent
