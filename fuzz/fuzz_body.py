"""Fuzz target: ``BodyEncoder`` over arbitrary message bytes in arbitrary chunks.

Input layout: one plan byte (DATA or BDAT path, and how chunk sizes are drawn), then the
message.  The message is encoded in chunks whose sizes (0 included) come from the plan and
the message bytes, then ``finish()`` is called; the same message is also encoded whole.

Checked, for every input:

* the output does not depend on the chunking;
* DATA path: a strict RFC 5321 receiver (section 4.1.1.4 end of data, section 4.5.2 dot
  removal), written in this file, finds the end of data exactly at the end of the output and
  decodes the message with every line end normalised to CRLF and a final CRLF added if
  missing (an empty message is one empty line, as ``smtplib`` sends it);
* DATA path: no lenient end-of-data sequence (a line end, a dot, a line end, where a line end
  is CR, LF or CRLF: LF.LF, CR.CR, CRLF.LF, LF.CRLF, ...) appears anywhere before the end, so
  no receiver, however lenient, ends the message early (SMTP smuggling);
* every CR and LF of the output is part of a CRLF pair;
* BDAT path: the output is exactly the normalised message, nothing stuffed, nothing added but
  the final CRLF;
* ``encode_all`` gives the same bytes, and ``quotedata`` agrees on text messages;
* the chunks given as ``memoryview`` objects (how the client hands over a large message)
  give the same bytes;
* the line-end check and the dot-stuffing in use (the C accelerator when built) agree with
  the pure-Python ones on the message and on every chunk.

Run: ``python fuzz/fuzz_body.py [libFuzzer options] [corpus_dir]``.  Without atheris the
module only provides ``check(data)``, which the test suite replays over the seed corpus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from smtp_proto import body
from smtp_proto.body import BodyEncoder, quotedata

_ANY_LINE_END = re.compile(rb"\r\n|\r|\n")
# Every position where a (lenient) line end is followed by a dot and another line end.
_LENIENT_END = re.compile(rb"(?=[\r\n]\.[\r\n])")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def normalised(message: bytes) -> bytes:
    """The message as it should arrive: CRLF line ends, ending with CRLF (empty: one CRLF)."""
    text = _ANY_LINE_END.sub(b"\r\n", message)
    return text if text.endswith(b"\r\n") else text + b"\r\n"


def strict_receive(stream: bytes) -> bytes:
    """What a strict receiver makes of the bytes after ``DATA``'s 354: the message it stores.

    The stream starts right after the CRLF of the DATA command, so it is read as if prefixed
    by CRLF.  End of data is the first CRLF.CRLF; a line starting with a dot loses that dot.
    """
    prefixed = b"\r\n" + stream
    end = prefixed.find(b"\r\n.\r\n")
    assert end >= 0, f"no end of data in {stream!r}"
    assert end + 5 == len(prefixed), f"end of data before the end of {stream!r}"
    lines = prefixed[2 : end + 2].split(b"\r\n")[:-1]
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def chunked(message: bytes, plan: int) -> list[bytes]:
    """Cut the message in chunks of 0 to 15 bytes (0 only where the plan allows it)."""
    chunks: list[bytes] = []
    position = 0
    empty_allowed = bool(plan & 0x10)
    while position < len(message):
        size = (message[position] ^ plan) % 16
        if size == 0 and not empty_allowed:
            size = 1
        chunks.append(message[position : position + size])
        position += size
        empty_allowed = bool(plan & 0x10) and size > 0  # never two empty chunks in a row
    return chunks


def encode(chunks: Sequence[bytes | memoryview], stuff_dots: bool) -> bytes:
    encoder = BodyEncoder(stuff_dots=stuff_dots)
    pieces = [encoder.encode(chunk) for chunk in chunks]
    for piece in pieces:
        assert isinstance(piece, bytes | memoryview), piece
    return b"".join(pieces) + encoder.finish()


def check(data: bytes) -> None:
    """The whole property for one input; raises on a finding."""
    plan = data[0] if data else 0
    message = data[1:]
    stuff_dots = not plan & 1
    whole = encode([message], stuff_dots)
    chunks = chunked(message, plan)
    in_chunks = encode(chunks, stuff_dots)
    assert whole == in_chunks, (whole, in_chunks)
    assert encode([memoryview(chunk) for chunk in chunks], stuff_dots) == whole
    for piece in (message, *chunks):
        assert body.crlf_only(piece) is body._crlf_only(piece), piece
        for line_start in (False, True):
            stuffed = body.stuff_dots(piece, line_start)
            assert stuffed == body._stuff_dots(piece, line_start), (piece, line_start)
    assert BodyEncoder(stuff_dots).encode_all(message) == whole
    assert _BARE_CR_OR_LF.search(whole) is None, whole
    expected = normalised(message)
    if not stuff_dots:
        assert whole == expected, (whole, expected)
        return
    assert strict_receive(whole) == expected, (whole, expected)
    lenient = [match.start() for match in _LENIENT_END.finditer(b"\r\n" + whole)]
    assert lenient == [len(whole) - 2], (whole, lenient)
    if message.isascii():
        # What smtplib.SMTP.data sends for this message given as text.
        quoted = quotedata(message.decode("ascii")).encode("ascii")
        if not quoted.endswith(b"\r\n"):
            quoted += b"\r\n"
        assert quoted + b".\r\n" == whole, (message, quoted, whole)


def main() -> None:
    from _driver import fuzz  # noqa: PLC0415 - fuzz/ is on sys.path when run as a script

    fuzz(check)


if __name__ == "__main__":
    main()
