"""Server replies: the ``Reply`` value, RFC 3463 enhanced status codes, and the incremental parser.

The parser is fed whatever bytes the transport read, however the reads split them, and yields
complete replies.  It is bounded in every dimension (line length, lines per reply, bytes
buffered) so that no server can make it use unbounded memory, and it refuses anything that
is not a well-formed reply with a ``RemoteProtocolError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._slots import slot_setters
from .errors import RemoteProtocolError, ReplyLineTooLong
from .status import EnhancedStatus, parse_enhanced_status

__all__ = ["EnhancedStatus", "Reply", "ReplyParser", "parse_enhanced_status"]

#: Reply lines longer than this (RFC 5321 says 512; real servers send more) are refused.
MAX_LINE_LENGTH = 8192
#: A multi-line reply with more lines than this is refused (EHLO replies have a few dozen).
MAX_LINES_PER_REPLY = 1000
#: How many distinct single-line replies each parser remembers (see ``ReplyParser``), and the
#: longest line it remembers.
RECENT_REPLIES = 32
RECENT_LINE_LENGTH = 512

# One reply line without its line end: a code 2xx-5xx, then " " or "-" and text, or nothing.
# Any C0 control except HT, and DEL, is garbage inside the text (CR only ends a line).
_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])([^\x00-\x08\x0a-\x1f\x7f]*))?")


@dataclass(frozen=True, slots=True, init=False)
class Reply:
    """One complete server reply.

    ``lines`` holds the text of each line, without the code, separator and line ending,
    stripped of surrounding blanks as ``smtplib`` does; ``raw`` is the reply exactly as received
    (for transcripts).
    """

    code: int
    lines: tuple[bytes, ...]
    raw: bytes = b""

    def __init__(self, code: int, lines: tuple[bytes, ...], raw: bytes = b"") -> None:
        # Made for every reply a server sends: the slots set directly (smtp_proto._slots).
        _set_code(self, code)
        _set_lines(self, lines)
        _set_raw(self, raw)

    @property
    def text(self) -> bytes:
        """The lines joined by ``\\n``: the text of ``smtplib``'s ``(code, text)`` tuples."""
        return b"\n".join(self.lines)

    @property
    def enhanced_status(self) -> EnhancedStatus | None:
        """The RFC 3463 code the reply's first line starts with, if any."""
        return parse_enhanced_status(self.code, self.lines[0]) if self.lines else None

    @property
    def is_positive(self) -> bool:
        """2xx or 3xx."""
        return self.code < 400

    @classmethod
    def from_tuple(cls, code: int, text: bytes | str) -> Reply:
        """The reply a replaced method returned as ``smtplib``'s ``(code, text)``."""
        if isinstance(text, str):
            text = text.encode("utf-8", "replace")
        return cls(code, tuple(text.split(b"\n")))

    def as_tuple(self) -> tuple[int, bytes]:
        """``(code, text)``, the shape every ``smtplib`` method returns."""
        return self.code, b"\n".join(self.lines)


_set_code, _set_lines, _set_raw = slot_setters(Reply, "code", "lines", "raw")


class ReplyParser:
    """Turns a byte stream into ``Reply`` objects, however the reads split it.

    Accepts CRLF and (leniently) bare LF as line ends.  Only the incomplete last line is kept
    as bytes between ``feed`` calls; completed lines of a multi-line reply are kept parsed.

    A server repeats the same few single-line replies (``250 2.1.0 Ok``, ``354 ...``) on every
    transaction, so the parser remembers the ``Reply`` it built for each of the last few such
    lines, keyed by the line's exact bytes, and hands the same (immutable) object back when
    that line comes again outside a multi-line reply.  The result depends on those bytes alone,
    so it is the one the full parse would build; only the regex, the checks and the allocation
    are skipped.  A line is remembered the second time it comes: the final reply to each
    message carries a new queue id, and remembering those would push out the replies that do
    repeat (and fill the memory, which is then cleared, every few dozen messages).
    """

    __slots__ = (
        "_buffer",
        "_code",
        "_lines",
        "_position",
        "_raw",
        "_raw_size",
        "_recent",
        "_seen_once",
        "max_buffer",
    )

    def __init__(self, max_buffer: int = 1 << 20) -> None:
        self._buffer = b""
        self._position = 0  # where the next unparsed line starts in _buffer
        self._lines: list[bytes] = []  # text of the completed lines of the reply in progress
        self._raw: list[bytes] = []  # and those lines as received
        self._raw_size = 0  # their total length
        self._code = b""
        self._recent: dict[bytes, Reply] = {}  # single-line replies by their raw line
        self._seen_once: set[bytes] = set()  # lines seen once: remembered when seen again
        #: Bytes that may be held unparsed; more than this is a ``RemoteProtocolError``.
        self.max_buffer: int = max_buffer

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned reply."""
        return len(self._buffer) - self._position + self._raw_size

    def feed(self, data: bytes) -> None:
        """Add bytes read from the peer."""
        if self._position == len(self._buffer):
            self._buffer = bytes(data)  # the common case: nothing left over, no copy
        else:
            self._buffer = self._buffer[self._position :] + data
        self._position = 0
        if len(self._buffer) + self._raw_size > self.max_buffer:
            raise RemoteProtocolError(f"server sent more than {self.max_buffer} bytes unanswered")

    def next_reply(self) -> Reply | None:
        """The next complete reply, or ``None`` when more bytes are needed."""
        buffer = self._buffer
        start = self._position
        end = buffer.find(b"\n", start)
        if not self._lines and end >= 0:
            reply = self._recent.get(buffer[start : end + 1])
            if reply is not None:
                self._position = end + 1
                return reply
        while True:
            if end < 0 or end - start >= MAX_LINE_LENGTH:  # smtplib's limit counts the LF
                if len(buffer) - start > MAX_LINE_LENGTH:
                    raise ReplyLineTooLong
                return None
            self._position = end + 1
            code, separator, text = _parse_line(buffer, start, end)
            raw_line = buffer[start : self._position]
            if separator != b"-" and not self._lines:
                return self._single_line_reply(code, text, raw_line)
            reply = self._add_line(code, separator, text, raw_line)
            if reply is not None:
                return reply
            start = self._position
            end = buffer.find(b"\n", start)

    def _single_line_reply(self, code: bytes, text: bytes, raw_line: bytes) -> Reply:
        """A reply of one line, remembered (see the class docstring)."""
        reply = Reply(int(code), (text,), raw_line)
        if len(raw_line) <= RECENT_LINE_LENGTH:
            seen_once = self._seen_once
            if raw_line not in seen_once:
                if len(seen_once) >= RECENT_REPLIES:
                    seen_once.clear()
                seen_once.add(raw_line)
            else:
                if len(self._recent) >= RECENT_REPLIES:
                    self._recent.clear()  # relearn: the server's replies have changed
                self._recent[raw_line] = reply
        return reply

    def _add_line(
        self, code: bytes, separator: bytes | None, text: bytes, raw_line: bytes
    ) -> Reply | None:
        """Add a line to the multi-line reply in progress; the reply once it is complete."""
        lines = self._lines
        if lines and code != self._code:
            raise RemoteProtocolError(
                f"reply code changed from {self._code!r} to {code!r} within one reply"
            )
        if len(lines) >= MAX_LINES_PER_REPLY:
            raise RemoteProtocolError("reply has too many lines")
        self._raw_size += len(raw_line)
        if self._raw_size > self.max_buffer:
            raise RemoteProtocolError(f"reply longer than {self.max_buffer} bytes")
        lines.append(text)
        self._raw.append(raw_line)
        if separator == b"-":
            self._code = code
            return None
        reply = Reply(int(code), tuple(lines), b"".join(self._raw))
        self._lines = []
        self._raw = []
        self._raw_size = 0
        return reply


def _parse_line(buffer: bytes, start: int, end: int) -> tuple[bytes, bytes | None, bytes]:
    """The code, separator (``-``, `` `` or ``None``) and stripped text of the reply line at
    ``buffer[start:end]`` (``end`` at its LF); a ``RemoteProtocolError`` if it is none."""
    if end > start and buffer[end - 1] == 13:  # CRLF; a bare LF is tolerated
        end -= 1
    match = _LINE.fullmatch(buffer, start, end)
    if match is None:
        error = RemoteProtocolError(f"malformed reply line {buffer[start:end][:80]!r}")
        error.line = bytes(buffer[start:end][:MAX_LINE_LENGTH])
        raise error
    code, separator, text = match.groups()
    return code, separator, text.strip(b" \t") if text else b""


#: The pure-Python parser: the reference the C one (``smtp_proto._speedups``) is checked
#: against, and ``ReplyParser`` itself when the accelerator is not installed.
PyReplyParser = ReplyParser

if not TYPE_CHECKING:  # (type checkers see the Python class, which the C one mirrors)
    try:
        from ._speedups import bind_replies
    except ImportError:  # installed without a C compiler: the same parser, slower
        pass
    else:
        # The C parser makes this module's Reply, raises its errors, reads its limits.
        ReplyParser = bind_replies(globals())
