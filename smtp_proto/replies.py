"""Server replies: the ``Reply`` value, RFC 3463 enhanced status codes, and the incremental parser.

The parser is fed whatever bytes the transport read, in any chunking, and yields complete
replies.  It is bounded in every dimension (line length, lines per reply, bytes buffered) so
that no server can make it use unbounded memory, and it refuses anything that is not a
well-formed reply with a ``RemoteProtocolError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import RemoteProtocolError
from .status import EnhancedStatus, parse_enhanced_status

__all__ = ["EnhancedStatus", "Reply", "ReplyParser", "parse_enhanced_status"]

#: Reply lines longer than this (RFC 5321 says 512; real servers send more) are refused.
MAX_LINE_LENGTH = 8192
#: A multi-line reply with more lines than this is refused (EHLO replies have a few dozen).
MAX_LINES_PER_REPLY = 1000

# Any C0 control except HT, and DEL, is garbage inside reply text (CR only ends a line).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete server reply.

    ``lines`` holds the text of each line, without the code, separator and line ending,
    stripped of surrounding blanks as ``smtplib`` does; ``raw`` is the reply exactly as received
    (for transcripts).
    """

    code: int
    lines: tuple[bytes, ...]
    raw: bytes = b""

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

    def as_tuple(self) -> tuple[int, bytes]:
        """``(code, text)``, the shape every ``smtplib`` method returns."""
        return self.code, b"\n".join(self.lines)


class ReplyParser:
    """Turns a byte stream into ``Reply`` objects, whatever the chunking.

    Accepts CRLF and (leniently) bare LF as line ends.  State carries across ``feed`` calls:
    the completed lines of a multi-line reply in progress and the unconsumed bytes.
    """

    __slots__ = ("_buffer", "_code", "_lines", "_reply_start", "_scan_from", "max_buffer")

    def __init__(self, max_buffer: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._reply_start = 0
        self._scan_from = 0
        self._lines: list[bytes] = []
        self._code = -1
        #: Bytes that may be held unparsed; more than this is a ``RemoteProtocolError``.
        self.max_buffer = max_buffer

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned reply."""
        return len(self._buffer) - self._reply_start

    def feed(self, data: bytes) -> None:
        """Add bytes read from the peer."""
        buffer = self._buffer
        if self._reply_start:
            del buffer[: self._reply_start]
            self._scan_from -= self._reply_start
            self._reply_start = 0
        buffer += data
        if len(buffer) > self.max_buffer:
            raise RemoteProtocolError(f"server sent more than {self.max_buffer} bytes unanswered")

    def next_reply(self) -> Reply | None:
        """The next complete reply, or ``None`` when more bytes are needed."""
        buffer = self._buffer
        lines = self._lines
        while True:
            start = self._scan_from
            end = buffer.find(b"\n", start)
            if end < 0:
                if len(buffer) - start > MAX_LINE_LENGTH:
                    raise RemoteProtocolError("reply line too long")
                return None
            if end - start > MAX_LINE_LENGTH:
                raise RemoteProtocolError("reply line too long")
            line = bytes(buffer[start:end])
            self._scan_from = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            code_bytes = line[:3]
            separator = line[3:4]
            if (
                len(code_bytes) != 3
                or not code_bytes.isdigit()
                or separator not in (b" ", b"-", b"")
                or not b"2" <= code_bytes[:1] <= b"5"
            ):
                raise RemoteProtocolError(f"malformed reply line {line[:80]!r}")
            code = int(code_bytes)
            if self._code != code:
                if self._code >= 0:
                    raise RemoteProtocolError(
                        f"reply code changed from {self._code} to {code} within one reply"
                    )
                self._code = code
            text = line[4:]
            if _CONTROL.search(text) is not None:
                raise RemoteProtocolError(f"control character in reply line {line[:80]!r}")
            lines.append(text.strip(b" \t"))
            if separator == b"-":
                if len(lines) >= MAX_LINES_PER_REPLY:
                    raise RemoteProtocolError("reply has too many continuation lines")
                continue
            raw = bytes(buffer[self._reply_start : self._scan_from])
            self._reply_start = self._scan_from
            self._lines = []
            self._code = -1
            return Reply(code, tuple(lines), raw)

    def take_unparsed(self) -> bytes:
        """Remove and return every byte not yet part of a reply (used at the STARTTLS boundary)."""
        rest = bytes(self._buffer[self._reply_start :])
        self._buffer.clear()
        self._reply_start = self._scan_from = 0
        self._lines = []
        self._code = -1
        return rest
