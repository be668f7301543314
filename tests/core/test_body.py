"""Properties of ``smtp_proto.body``: the streamed DATA/BDAT body encoder and ``quotedata``."""

from __future__ import annotations

import itertools
import re
import smtplib
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtp_proto import body as body_module
from smtp_proto.body import BodyEncoder, normalised_size, quotedata


@pytest.fixture(scope="module", autouse=True, params=["accelerated", "pure Python"])
def line_end_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs with the C accelerator and again with its Python fallback."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "pure Python":
            patch.setattr(body_module, "crlf_only", body_module._crlf_only)
            patch.setattr(body_module, "stuff_dots", body_module._stuff_dots)
        yield


LENIENT_ENDS = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r\n"]


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """Split ``data`` at the given offsets (taken modulo its length, sorted, deduplicated)."""
    if not data:
        return [b""] if points else []
    offsets = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(offsets)]


def encode(chunks: list[bytes], stuff_dots: bool = True) -> bytes:
    encoder = BodyEncoder(stuff_dots=stuff_dots)
    return b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.finish()


def normalised(data: bytes) -> bytes:
    """Every line end as CRLF, and a final CRLF when missing (an empty body is one empty line)."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def strict_decode(out: bytes) -> bytes:
    """What a strict RFC 5321 server stores: up to CRLF.CRLF, one leading dot removed per line."""
    assert out.endswith(b"\r\n.\r\n"), out[-10:]
    body = out[: -len(b".\r\n")]
    assert body.endswith(b"\r\n")
    lines = body[:-2].split(b"\r\n")
    decoded = []
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, line  # no bare CR or LF on the wire
        if line.startswith(b"."):
            # A line that starts with a dot was stuffed; a lone "." would have ended the data.
            assert line.startswith(b".."), line
            decoded.append(line[1:])
        else:
            decoded.append(line)
    return b"\r\n".join(decoded) + b"\r\n"


bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"\r", b"\n", b".", b"x"]), max_size=60).map(b"".join),
    st.lists(
        st.sampled_from([b"\r\n", b".\r\n", b"..", b"\r\n.", b"\n.", b"\r.", b"x", b"\r", b"\n"]),
        max_size=40,
    ).map(b"".join),
)
cut_points = st.lists(st.integers(0, 10_000), max_size=20)


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", b"\r\n.\r\n"),
        (b"hello", b"hello\r\n.\r\n"),
        (b"hello\r\n", b"hello\r\n.\r\n"),
        (b"a\nb\rc\r\nd", b"a\r\nb\r\nc\r\nd\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"..x", b"...x\r\n.\r\n"),
        (b"\r", b"\r\n.\r\n"),
        (b"\n", b"\r\n.\r\n"),
        (b"\r\r", b"\r\n\r\n.\r\n"),
        (b"\n\r", b"\r\n\r\n.\r\n"),
    ],
)
def test_examples(body: bytes, expected: bytes) -> None:
    assert BodyEncoder().encode_all(body) == expected
    assert encode([body[i : i + 1] for i in range(len(body))]) == expected


def test_cr_and_lf_split_across_chunks_are_one_line_end() -> None:
    encoder = BodyEncoder()
    out = encoder.encode(b"line\r") + encoder.encode(b"\n.dot") + encoder.finish()
    assert out == b"line\r\n..dot\r\n.\r\n"


def test_leading_dot_after_line_end_in_previous_chunk() -> None:
    encoder = BodyEncoder()
    out = encoder.encode(b"a\r\n") + encoder.encode(b".") + encoder.encode(b".") + encoder.finish()
    assert out == b"a\r\n...\r\n.\r\n"


def test_finish_resets_for_a_new_message() -> None:
    encoder = BodyEncoder()
    assert encoder.encode_all(b"x\r") == b"x\r\n.\r\n"
    assert encoder.encode_all(b".y") == b"..y\r\n.\r\n"


def test_bdat_path_examples() -> None:
    assert BodyEncoder(stuff_dots=False).encode_all(b".\r\n") == b".\r\n"
    assert BodyEncoder(stuff_dots=False).encode_all(b"a\n.\nb") == b"a\r\n.\r\nb\r\n"
    assert BodyEncoder(stuff_dots=False).encode_all(b"") == b"\r\n"


# --------------------------------------------------------------------------- properties


@given(bodies, cut_points)
@example(b"", [])
@example(b"\r", [0, 1])
@example(b"x\r\n.\r\n.", [2, 3, 4])
def test_round_trip_through_a_strict_decoder(body: bytes, points: list[int]) -> None:
    out = encode(cut(body, points))
    assert strict_decode(out) == normalised(body)


@given(bodies, cut_points, cut_points)
def test_chunking_invariance(body: bytes, points: list[int], other: list[int]) -> None:
    whole = BodyEncoder().encode_all(body)
    assert encode(cut(body, points)) == whole
    assert encode(cut(body, other)) == whole
    assert encode([body[i : i + 1] for i in range(len(body))]) == whole


@given(bodies, cut_points)
@example(b"\n.\n", [1, 2])
@example(b"\r.\r", [1, 2])
@example(b"\r\n.\n", [1, 2, 3])
@example(b"\n.\r\n", [1, 2])
@example(b".\n", [1])
@example(b"x\r", [2])
def test_no_lenient_end_of_data_before_the_terminator(body: bytes, points: list[int]) -> None:
    out = encode(cut(body, points))
    # The body starts right after a line end (the 354 reply's), so look at it that way; the
    # last byte is dropped so that only the real terminator's final LF completes a pattern.
    stream = b"\r\n" + out[:-1]
    for pattern in LENIENT_ENDS:
        assert pattern not in stream, (pattern, out)
    # The only line consisting of a single dot is the last one.
    assert out.split(b"\r\n").index(b".") == len(out.split(b"\r\n")) - 2


@given(bodies, cut_points)
def test_bdat_path_is_normalised_and_unstuffed(body: bytes, points: list[int]) -> None:
    assert encode(cut(body, points), stuff_dots=False) == normalised(body)


@given(bodies)
@example(b"a\r\nb\r\n")
@example(b"\x0b\x0c\x1c\x1d\x1e\x85\r\n")  # line breaks to str.splitlines, not to bytes
def test_clean_chunks_are_passed_through_uncopied(body: bytes) -> None:
    """A chunk whose CRs and LFs all form CRLFs needs no rewriting: it comes back as is."""
    clean = body.replace(b"\r", b"").replace(b"\n", b"\r\n")
    for chunk in (clean, clean + b"x"):  # a CR at the end would be held back for the next chunk
        assert BodyEncoder(stuff_dots=False).encode(chunk) is chunk
        view = memoryview(chunk)  # how the client hands over the pieces of a large message
        assert BodyEncoder(stuff_dots=False).encode(view) is (view if chunk else b"")
        if b"\n." not in chunk and not chunk.startswith(b"."):
            assert BodyEncoder().encode(chunk) is chunk


@given(bodies)
@example(b"a\r")
@example(b"\n\r")
def test_normalised_size_counts_each_bare_cr_or_lf_as_crlf(body: bytes) -> None:
    assert normalised_size(body) == len(re.sub(rb"\r\n|\r|\n", b"\r\n", body))


@given(bodies)
def test_encode_all_is_encode_plus_finish(body: bytes) -> None:
    encoder = BodyEncoder()
    assert BodyEncoder().encode_all(body) == encoder.encode(body) + encoder.finish()


@given(bodies, cut_points)
def test_encoded_size_is_bounded_by_the_input(body: bytes, points: list[int]) -> None:
    # At most: every byte doubled (a dot stuffed or a bare CR/LF expanded) plus the end marker.
    out = encode(cut(body, points))
    assert len(out) <= 2 * len(body) + len(b"\r\n.\r\n")


@given(st.text(st.sampled_from(["\r", "\n", ".", "x", "\u00e9", " ", "\u2028", "\x85"])))
@example("")
@example(".\r\n.")
@example("a\r\r\n.b")
def test_quotedata_matches_stdlib_on_line_end_text(text: str) -> None:
    assert quotedata(text) == smtplib.quotedata(text)


@given(st.text())
def test_quotedata_matches_stdlib(text: str) -> None:
    assert quotedata(text) == smtplib.quotedata(text)
