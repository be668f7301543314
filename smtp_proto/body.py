"""The message body encoder: line-ending normalisation and dot-stuffing, streamed.

Every bare CR and bare LF becomes CRLF (for ``bytes`` too, unlike ``smtplib``): a lone CR or
LF is what lenient servers mistake for a line end, which is how SMTP smuggling hides a second
message inside the first.  After this encoder no byte sequence a message contains can end the
DATA phase early, under the strict rule (CRLF.CRLF) or any lenient one (LF.LF, CR.CR,
CRLF.LF, LF.CRLF).  State carries across pieces, so memory stays bounded by one piece.
"""

from __future__ import annotations

import re
from typing import overload

from ._renamed import ModuleGetattr, renamed

__all__ = [
    "PIECE_SIZE",
    "BodyEncoder",
    "fix_line_ends",
    "normalised_size",
    "quotedata",
    "sent_as_is",
]

#: How much of a large message is encoded and sent at a time (a BDAT chunk is one piece).
PIECE_SIZE = 1 << 18

_LINE_END = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")
_TEXT_LEADING_DOT = re.compile(r"^\.", re.MULTILINE)


def _crlf_only(data: bytes | memoryview) -> bool:
    """True iff every CR is followed by LF and every LF is preceded by CR (pure Python).

    ``splitlines()`` drops every line break, CRLF, CR or LF (a final one without a line after
    it too): they were all CRLFs iff joining the lines with CRLF gives the data back.  Two fast
    passes, one of them memcpy; counting ``b"\\r\\n"`` (a branchy substring search) takes
    longer than both.  The C accelerator does it in one vectorised pass, ~25x faster.
    """
    data = bytes(data)
    rejoined = b"\r\n".join(data.splitlines())
    final_crlf = 2 if data.endswith(b"\r\n") else 0
    return len(data) == len(rejoined) + final_crlf and data.startswith(rejoined)


def _stuff_dots(data: bytes | memoryview, line_start: bool) -> bytes:
    """``data`` with every dot that follows CRLF (or starts it, if ``line_start``) doubled
    (pure Python)."""
    data = bytes(data)
    pieces = data.split(b"\r\n.")
    if len(pieces) > 1:
        data = b"\r\n..".join(pieces)
    if line_start and data[:1] == b".":
        data = b"." + data
    return data


try:
    from ._speedups import crlf_only, stuff_dots
except ImportError:  # installed without a C compiler: the same work, slower
    crlf_only, stuff_dots = _crlf_only, _stuff_dots


def sent_as_is(data: bytes | memoryview, crlf: bool | None = None) -> bool:
    """Whether BDAT sends ``data`` unchanged: every line end is CRLF and the last line ends
    (``BodyEncoder(stuff_dots=False)`` would change nothing and add nothing).  ``crlf``:
    ``crlf_only(data)`` when the caller knows it already (a scan of the whole message)."""
    return data[-2:] == b"\r\n" and (crlf_only(data) if crlf is None else crlf)


def normalised_size(data: bytes) -> int:
    """The size of ``data`` once every line end is CRLF, as ``BodyEncoder`` sends it (before
    the final CRLF it adds when one is missing, which ``smtplib``'s SIZE does not count
    either)."""
    if crlf_only(data):
        return len(data)
    crlf = data.count(b"\r\n")  # every bare CR and every bare LF becomes CRLF: one byte more
    return len(data) + data.count(b"\r") - crlf + data.count(b"\n") - crlf


def quotedata(data: str) -> str:
    """A ``str`` message with CRLF line ends and leading dots doubled (``smtplib.quotedata``)."""
    return _TEXT_LEADING_DOT.sub("..", fix_line_ends(data))


def fix_line_ends(text: str) -> str:
    """CRLF for every line end of a ``str`` message, as ``smtplib`` does before encoding."""
    return _TEXT_LINE_END.sub("\r\n", text)


class BodyEncoder:
    """Encodes a message body given in pieces of any size.

    With ``stuff_dots`` (the DATA path) a dot that starts a line is doubled and ``finish()``
    returns the end-of-data marker; without it (the BDAT path) only line endings are normalised.
    """

    __slots__ = ("_ends_with_crlf", "_held_cr", "_line_start", "_stuff_dots")

    def __init__(self, stuff_dots: bool = True) -> None:
        self._stuff_dots = stuff_dots
        self._held_cr = False
        self._line_start = True
        self._ends_with_crlf = False

    @overload
    def encode(self, piece: bytes) -> bytes: ...
    @overload
    def encode(self, piece: bytes | memoryview) -> bytes | memoryview: ...

    def encode(self, piece: bytes | memoryview) -> bytes | memoryview:
        """Encode the next piece of the message; the result may be shorter or longer.

        A piece that needs no change comes back as it is, so a ``memoryview`` of a large
        message goes out without a copy on the BDAT path.
        """
        if self._held_cr:
            piece = b"\r" + piece
            self._held_cr = False
        if piece[-1:] == b"\r":
            # A CR at the end may be the first half of a CRLF split across pieces.
            piece = piece[:-1]
            self._held_cr = True
        if not piece:
            return b""
        if not crlf_only(piece):
            piece = _LINE_END.sub(b"\r\n", piece)
        if self._stuff_dots:
            piece = stuff_dots(piece, self._line_start)
        ends_with_crlf = piece[-1:] == b"\n"
        self._line_start = self._ends_with_crlf = ends_with_crlf
        return piece

    def finish(self) -> bytes:
        """The bytes that end the body: a final CRLF when missing, then ``.CRLF`` on the DATA path.

        Like ``smtplib``, an empty body is sent as one empty line.
        """
        tail = b"" if self._ends_with_crlf and not self._held_cr else b"\r\n"
        self._held_cr = False
        self._line_start = self._ends_with_crlf = True
        return tail + b".\r\n" if self._stuff_dots else tail

    def encode_all(self, body: bytes) -> bytes:
        """Encode a whole body at once, end marker included (for bodies that fit in memory)."""
        return self.encode(body) + self.finish()


__getattr__: ModuleGetattr = renamed(globals(), {"CHUNK_SIZE": "PIECE_SIZE"})
