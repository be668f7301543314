"""Fuzz target: ``ReplyParser`` on arbitrary bytes in arbitrary chunks.

Input layout: two plan bytes, then the byte stream "the server sends".  The plan bytes decide
the chunk sizes the stream is fed in and, for the tight pass, the parser's limits.

Checked, for every input:

* ``next_reply`` only ever returns a ``Reply`` or ``None``, or raises ``RemoteProtocolError``;
  anything else escaping is a finding;
* ``buffered`` never exceeds ``max_buffer`` and always equals the bytes fed minus the bytes of
  the replies returned; the replies' ``raw`` fields, concatenated, are a prefix of the stream;
* every reply is well formed (code 200-599, no control characters, blanks stripped) and
  parses back to itself when fed alone;
* the replies (and whether the stream is refused) do not depend on the chunking and agree
  with a small reference parser written from RFC 5321 section 4.2 in this file;
* ``smtplib.SMTP.getreply`` reads the same ``(code, text)`` from each accepted reply;
* a second pass with tight limits (short lines, few lines per reply, a small buffer) checks
  the bounds are enforced and that what is accepted is still what the reference accepts;
* with the C accelerator installed, its parser and the pure-Python one (``PyReplyParser``),
  fed alike and asked for replies alike, give the same thing at every step, with either
  limits: the same replies, ``None`` or exception (type, message, ``.line``), the same
  ``buffered``, and the same object where the Python one hands back a remembered reply.
  (``Twins`` is the harness; tests/core/test_replies_speedups.py drives it too.)

Run: ``python fuzz/fuzz_replies.py [libFuzzer options] [corpus_dir]``.  Without atheris the
module only provides ``check(data)``, which the test suite replays over the seed corpus.
"""

from __future__ import annotations

import io
import re
import smtplib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from smtp_proto import replies as replies_module
from smtp_proto.errors import RemoteProtocolError
from smtp_proto.replies import PyReplyParser, Reply, ReplyParser

DEFAULT_MAX_BUFFER = 1 << 20
# Reference grammar: code 2xx-5xx, then nothing, or " " / "-" and text without control
# characters other than HT.
_REFERENCE_LINE = re.compile(rb"([2-5]\d\d)(?:([ -])([\x09\x20-\x7e\x80-\xff]*))?")
_FORBIDDEN_IN_TEXT = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class Refused(Exception):
    """The reference parser refuses the stream at this point."""


def reference_replies(
    stream: bytes, max_line: int, max_lines: int
) -> tuple[list[tuple[int, tuple[bytes, ...], bytes]], bool]:
    """Parse a whole stream the simple way: (replies as (code, lines, raw), refused?)."""
    found: list[tuple[int, tuple[bytes, ...], bytes]] = []
    position = 0
    code: bytes | None = None
    texts: list[bytes] = []
    reply_start = 0
    while True:
        newline = stream.find(b"\n", position)
        if newline < 0:
            # An unterminated last line is fine unless it is already too long.
            return found, len(stream) - position > max_line
        if newline - position > max_line:
            return found, True
        line = stream[position:newline]
        if line.endswith(b"\r"):
            line = line[:-1]
        position = newline + 1
        match = _REFERENCE_LINE.fullmatch(line)
        if match is None:
            return found, True
        this_code, separator, text = match.group(1), match.group(2), match.group(3) or b""
        if code is not None and this_code != code:
            return found, True
        if len(texts) >= max_lines:
            return found, True
        texts.append(text.strip(b" \t"))
        code = this_code
        if separator != b"-":
            found.append((int(this_code), tuple(texts), stream[reply_start:position]))
            texts = []
            code = None
            reply_start = position


def chunk_sizes(plan: bytes, stream: bytes) -> list[int]:
    """Chunk sizes (1 to 32 bytes) that depend on both the plan byte and the stream itself."""
    if not stream:
        return []
    spread = plan[0] % 32 + 1
    sizes: list[int] = []
    position = 0
    while position < len(stream):
        size = 1 + (plan[0] ^ stream[position]) % spread
        sizes.append(size)
        position += size
    return sizes


def smtplib_reading(raw: bytes) -> tuple[int, bytes]:
    """What the stdlib's ``getreply`` makes of one reply's bytes."""
    client = smtplib.SMTP(local_hostname="fuzz.invalid")
    client.file = io.BytesIO(raw)  # type: ignore[assignment]
    try:
        return client.getreply()
    finally:
        client.file = None


def check_reply(reply: object) -> Reply:
    """Fail unless ``reply`` is a well-formed ``Reply``."""
    assert type(reply) is Reply, f"next_reply returned {reply!r}"
    assert 200 <= reply.code <= 599, reply
    assert reply.lines, reply
    for text in reply.lines:
        assert _FORBIDDEN_IN_TEXT.search(text) is None, reply
        assert text == text.strip(b" \t"), reply
    assert reply.raw.endswith(b"\n"), reply
    assert reply.text == b"\n".join(reply.lines)
    return reply


def parse_in_chunks(stream: bytes, sizes: list[int], max_buffer: int) -> tuple[list[Reply], bool]:
    """Feed ``stream`` in chunks of ``sizes``, draining replies after each; check the bounds."""
    parser = ReplyParser(max_buffer)
    got: list[Reply] = []
    fed = consumed = 0
    try:
        for size in sizes:
            chunk = stream[fed : fed + size]
            fed += len(chunk)
            parser.feed(chunk)
            assert parser.buffered <= max_buffer, (parser.buffered, max_buffer)
            while True:
                reply = parser.next_reply()
                if reply is None:
                    break
                got.append(check_reply(reply))
                assert stream[consumed : consumed + len(reply.raw)] == reply.raw, reply
                consumed += len(reply.raw)
                assert parser.buffered <= max_buffer, (parser.buffered, max_buffer)
            assert parser.buffered == fed - consumed, (parser.buffered, fed, consumed)
    except RemoteProtocolError:
        return got, True
    return got, False


@contextmanager
def limits(**values: int) -> Iterator[None]:
    """Temporarily lower the parser's module-level limits (restored afterwards), for the
    parsers made inside: the C one reads them when it is made."""
    saved = {name: getattr(replies_module, name) for name in values}
    for name, value in values.items():
        setattr(replies_module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(replies_module, name, value)


def as_tuples(found: list[Reply]) -> list[tuple[int, tuple[bytes, ...], bytes]]:
    return [(reply.code, reply.lines, reply.raw) for reply in found]


def describe(result: Callable[[], object], seen: list[object]) -> tuple[object, ...]:
    """What one call gives, as comparable values: the reply (and which earlier reply in
    ``seen`` it is the same object as), another value, or the exception."""
    try:
        value = result()
    except Exception as error:  # (every exception is part of the behaviour)
        return ("raised", type(error), error.args, str(error), getattr(error, "line", None))
    if not isinstance(value, Reply):
        return ("returned", value)
    same = next((index for index, earlier in enumerate(seen) if earlier is value), None)
    seen.append(value)
    assert type(value) is Reply, value
    return ("reply", value.code, value.lines, value.raw, same)


class Twins:
    """A C and a pure-Python parser, driven alike and compared after every step."""

    def __init__(self, *args: object) -> None:
        self.c: Any = ReplyParser(*args)
        self.python: Any = PyReplyParser(*args)
        self.both = (self.c, self.python)
        self.seen: tuple[list[object], list[object]] = ([], [])

    def step(self, action: Callable[[Any], object]) -> tuple[object, ...]:
        """Run ``action`` on both; fail unless they agree.  Returns what it gave."""
        c = describe(lambda: action(self.c), self.seen[0])
        python = describe(lambda: action(self.python), self.seen[1])
        assert c == python, (c, python)
        assert self.c.buffered == self.python.buffered, (self.c.buffered, self.python.buffered)
        limit = [describe(lambda parser=parser: parser.max_buffer, []) for parser in self.both]
        assert limit[0] == limit[1], limit
        return c

    def feed(self, data: object) -> tuple[object, ...]:
        return self.step(lambda parser: parser.feed(data))

    def next_reply(self) -> tuple[object, ...]:
        return self.step(lambda parser: parser.next_reply())

    def drain(self, limit: int = 200) -> None:
        """``next_reply`` until ``None`` (or ``limit`` calls: an error repeats itself)."""
        for _ in range(limit):
            if self.next_reply() == ("returned", None):
                return


def compare_parsers(stream: bytes, sizes: list[int], max_buffer: int) -> None:
    """The C parser against the Python one on ``stream`` fed in chunks of ``sizes``; after
    each chunk, up to three ``next_reply`` calls (as many as the stream's last byte says),
    then all until ``None``: errors do not end the run, the state they leave is compared."""
    twins = Twins(max_buffer)
    fed = 0
    for size in sizes:
        twins.feed(stream[fed : fed + size])
        fed = min(fed + size, len(stream))
        for _ in range(stream[fed - 1] % 4):
            twins.next_reply()
    twins.drain()


def check(data: bytes) -> None:
    """The whole property for one input; raises (AssertionError or worse) on a finding."""
    plan, stream = data[:2].ljust(2, b"\0"), data[2:]
    max_line = replies_module.MAX_LINE_LENGTH
    max_lines = replies_module.MAX_LINES_PER_REPLY

    # Default limits: chunking must not matter, and the reference must agree exactly.
    whole = parse_in_chunks(stream, [len(stream)] if stream else [], DEFAULT_MAX_BUFFER)
    chunked = parse_in_chunks(stream, chunk_sizes(plan, stream), DEFAULT_MAX_BUFFER)
    assert as_tuples(whole[0]) == as_tuples(chunked[0]), (whole, chunked)
    assert whole[1] == chunked[1], (whole, chunked)
    expected, refused = reference_replies(stream, max_line, max_lines)
    assert as_tuples(whole[0]) == expected, (whole, expected)
    assert whole[1] == refused, (whole, refused)
    for reply in whole[0]:
        alone = ReplyParser()
        alone.feed(reply.raw)
        assert alone.next_reply() == reply, reply
        assert alone.buffered == 0
        if all(len(line) <= smtplib._MAXLINE for line in reply.raw.split(b"\n")):
            # (smtplib refuses lines over 8192 bytes with their CRLF; the parser allows 8192
            # before the LF, so the two differ only on lines of exactly that size.)
            assert smtplib_reading(reply.raw) == reply.as_tuple(), reply

    # Tight limits: what is accepted is what the reference accepts, in bounded memory.
    tight_line = 8 + plan[1] % 128
    tight_lines = 1 + plan[1] % 16
    tight_buffer = 16 + 8 * plan[0]
    tight_recent = {"RECENT_REPLIES": plan[0] % 4, "RECENT_LINE_LENGTH": plan[1] % 64}
    with limits(MAX_LINE_LENGTH=tight_line, MAX_LINES_PER_REPLY=tight_lines, **tight_recent):
        got, failed = parse_in_chunks(stream, chunk_sizes(plan, stream), tight_buffer)
        if ReplyParser is not PyReplyParser:
            compare_parsers(stream, chunk_sizes(plan, stream), tight_buffer)
    if ReplyParser is not PyReplyParser:
        compare_parsers(stream, chunk_sizes(plan, stream), DEFAULT_MAX_BUFFER)
    expected, refused = reference_replies(stream, tight_line, tight_lines)
    assert as_tuples(got) == expected[: len(got)], (got, expected)
    if not failed:
        assert as_tuples(got) == expected and not refused, (got, expected)


def main() -> None:
    from _driver import fuzz  # noqa: PLC0415 - fuzz/ is on sys.path when run as a script

    fuzz(check)


if __name__ == "__main__":
    main()
