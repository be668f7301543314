"""The optional C accelerator (``smtp_proto/_speedups.c``) against its pure-Python equivalent.

The install builds the accelerator whenever a C compiler is present (CI's and this
machine kind's always have one), so the first test fails if the build silently fell back.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtp_proto import _speedups, body

#: Mostly line-end bytes, so that every arrangement of CR and LF comes up.
line_end_heavy = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"x", b"\x00", b".", b"\r\n."]), max_size=80
).map(b"".join)
any_bytes = st.one_of(line_end_heavy, st.binary(max_size=200))


def test_the_body_encoder_uses_the_accelerator() -> None:
    assert body.crlf_only is _speedups.crlf_only
    assert body.stuff_dots is _speedups.stuff_dots


@given(any_bytes)
@example(b"")
@example(b"\r")
@example(b"\n")
@example(b"\r\n")
@example(b"\n\r")
@example(b"a\r\r\nb")
@example(b"a\r\n\nb")
def test_agrees_with_the_python_check(data: bytes) -> None:
    expected = body._crlf_only(data)
    assert _speedups.crlf_only(data) is expected
    assert _speedups.crlf_only(bytearray(data)) is expected
    assert _speedups.crlf_only(memoryview(data)) is expected
    assert body._crlf_only(memoryview(data)) is expected


@given(line_end_heavy, line_end_heavy, line_end_heavy)
def test_agrees_on_views_into_a_larger_buffer(before: bytes, data: bytes, after: bytes) -> None:
    """A slice's neighbours are not part of it: a CR just before or an LF just after counts
    for nothing."""
    view = memoryview(before + data + after)[len(before) : len(before) + len(data)]
    assert _speedups.crlf_only(view) is body._crlf_only(data)


@given(st.integers(min_value=0, max_value=200_000), st.sampled_from([b"\r", b"\n", b"\r\r"]))
@example(0, b"\n")
@example(4095, b"\n")
@example(4096, b"\r")
@example(4097, b"\n")
@example(199_999, b"\r")
def test_one_bad_line_end_anywhere_in_a_large_buffer(position: int, bad: bytes) -> None:
    """Large buffers are checked in blocks, with the GIL released: a single bare CR or LF is
    found in any block and at any boundary."""
    clean = (b"x" * 76 + b"\r\n") * (200_000 // 78 + 1)
    assert _speedups.crlf_only(clean) is True
    # Replace one byte that is not part of a CRLF, so exactly one line end is broken.
    position = min(position, len(clean) - 1)
    while clean[position : position + 1] in (b"\r", b"\n"):
        position -= 1
    broken = clean[:position] + bad + clean[position + 1 :]
    assert _speedups.crlf_only(broken) is False
    assert body._crlf_only(broken) is False


def test_only_buffers_are_accepted() -> None:
    with pytest.raises(TypeError):
        _speedups.crlf_only("text\r\n")  # type: ignore[arg-type]


@given(any_bytes, st.booleans())
@example(b".", True)
@example(b".", False)
@example(b"\r\n.", False)
@example(b"\n.\r.", True)
@example(b"..\r\n..", True)
def test_dot_stuffing_agrees_with_the_python_version(data: bytes, line_start: bool) -> None:
    expected = body._stuff_dots(data, line_start)
    for given_as in (data, bytearray(data), memoryview(data)):
        out = _speedups.stuff_dots(given_as, line_start)
        assert type(out) is bytes
        assert out == expected


@given(line_end_heavy, line_end_heavy, line_end_heavy, st.booleans())
def test_dot_stuffing_of_a_view_ignores_its_neighbours(
    before: bytes, data: bytes, after: bytes, line_start: bool
) -> None:
    view = memoryview(before + data + after)[len(before) : len(before) + len(data)]
    assert _speedups.stuff_dots(view, line_start) == body._stuff_dots(data, line_start)


def test_nothing_to_stuff_returns_the_same_bytes_object() -> None:
    data = b"no line starts with a dot.\r\nnor here.\r\n"
    assert _speedups.stuff_dots(data, True) is data
    assert body._stuff_dots(data, True) is data


@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=40), st.booleans())
def test_dot_stuffing_of_a_large_buffer(dotted_lines: list[int], line_start: bool) -> None:
    """Large buffers are stuffed with the GIL released: every chosen line gets its dot."""
    lines = [b"x" * 76] * 3000
    for index in dotted_lines:
        lines[index % len(lines)] = b"." + b"x" * 75
    data = b"\r\n".join(lines) + b"\r\n"
    assert len(data) >= 65536
    out = _speedups.stuff_dots(data, line_start)
    assert out == body._stuff_dots(data, line_start)
    dotted = {i % len(lines) for i in dotted_lines}
    if not line_start:
        dotted.discard(0)  # the first line continues one that came before
    assert len(out) - len(data) == len(dotted)


def test_stuff_dots_takes_a_buffer_and_a_flag() -> None:
    with pytest.raises(TypeError):
        _speedups.stuff_dots("text", True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.stuff_dots(b"text")  # type: ignore[call-arg]
