"""BDAT (RFC 3030) as operations: a body as chunks, a window of them unanswered, or as one
chunk when it can go as it is; BINARYMIME bodies byte for byte."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .body import PIECE_SIZE, BodyEncoder, sent_as_is
from .commands import Bdat, Command
from .data import drop_unfinished_body_gen, finish_body_gen
from .errors import SMTPDataError
from .replies import Reply
from .requests import IORequest, Operation
from .source import Pieces, Source

if TYPE_CHECKING:
    from .client import Client

__all__ = ["BDAT_WINDOW", "one_chunk_request"]

#: How many BDAT chunks may await their replies at once while a large message streams.
BDAT_WINDOW = 16

_Piece = TypeVar("_Piece", bound=bytes | memoryview)


class _Verbatim:
    """The BINARYMIME "encoder": the body is sent exactly as given."""

    __slots__ = ()

    def encode(self, piece: _Piece) -> _Piece:
        return piece

    def finish(self) -> bytes:
        return b""


def bdat_encoder(binary: bool) -> _Verbatim | BodyEncoder:
    """The encoder of a BDAT body: line ends normalised, no dot-stuffing (BDAT counts
    bytes), or nothing changed at all for BINARYMIME."""
    return _Verbatim() if binary else BodyEncoder(stuff_dots=False)


def one_chunk_request(
    client: Client,
    commands: Sequence[Command],
    piece: bytes | memoryview,
    binary: bool,
    *,
    crlf: bool | None = None,
) -> bytes:
    """``commands`` (MAIL and the RCPTs) and a body of one piece as ``BDAT n LAST``, as one
    write; traced at debug level in wire order.  ``crlf``: whether every line end of the
    piece is CRLF, when the caller knows it already (see ``sent_as_is``)."""
    if binary or sent_as_is(piece, crlf):
        body, tail = piece, b""  # what the encoder would give: the piece as it is
    else:
        encoder = BodyEncoder(stuff_dots=False)
        body, tail = encoder.encode(piece), encoder.finish()
    bdat = Bdat(len(body) + len(tail), last=True)
    data = b"".join((client._encode(*commands, bdat), body, tail))
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(bytes(body) + tail))
    return data


def binary_body_gen(client: Client, source: Source) -> Operation[tuple[int, bytes]]:
    """A ``BODY=BINARYMIME`` message, read from ``source``, as BDAT chunks."""
    pieces = Pieces(source)
    yield from pieces.start()
    return (yield from send_chunks_gen(client, pieces, True))


def send_chunks_gen(
    client: Client, pieces: Pieces, binary: bool, *, crlf: bool | None = None
) -> Generator[IORequest, Any, tuple[int, bytes]]:
    """Send a message as BDAT chunks, up to ``BDAT_WINDOW`` of them unanswered when the
    server pipelines (one at a time otherwise); unchanged for BINARYMIME.

    A message in memory that needs no rewriting (BINARYMIME, or every line end CRLF and
    the last line ended) goes as one chunk instead: the same bytes, without a command and
    a reply per piece, and still without a copy.  ``crlf``: whether every line end of the
    message in memory is CRLF, when the caller knows already (it is not scanned again).
    """
    whole = pieces.whole()
    if whole is not None and (binary or sent_as_is(whole, crlf)):
        yield from _write_chunk_gen(client, whole, last=True)
        return (yield from finish_body_gen(client, b""))
    encoder = bdat_encoder(binary)
    pipelining = client.owner.pipelining and client.connection.extensions.pipelining
    window = BDAT_WINDOW if pipelining else 0
    # A chunk that is a piece as read goes out with its command in one write, unless a
    # replaced send() is to see the command and the data as before.
    headed = None if client._any_replaced(("send",)) else pieces
    unanswered = 0
    failure: Reply | None = None
    try:
        last = False
        while not last:
            piece, last = yield from pieces.next()
            out = encoder.encode(piece)
            if last or not out:
                continue  # the last piece goes out with BDAT LAST
            if unanswered < window:
                unanswered += 1
                yield from _write_chunk_gen(client, out, last=False, pieces=headed)
                continue
            reply = (yield from _write_chunk_gen(client, out, False, 1, headed))[0]
            if reply.code != 250:
                failure = reply
                break
    except Exception:
        yield from drop_unfinished_body_gen(client)
        raise
    if failure is None:
        tail = encoder.finish()
        if tail:
            out = b"".join((out, tail))
        chunk_replies = yield from _write_chunk_gen(client, out, True, unanswered, headed)
        failure = next((reply for reply in chunk_replies if reply.code != 250), None)
        result = yield from finish_body_gen(client, b"")
        if failure is None:
            return result
    else:
        yield from client._exchange_gen(b"", unanswered)
    if failure.code != 421 and client.is_connected:
        yield from client._rset_gen()
    raise SMTPDataError(failure.code, failure.text)


def _write_chunk_gen(
    client: Client,
    data: bytes | memoryview,
    last: bool,
    replies: int = 0,
    pieces: Pieces | None = None,
) -> Generator[IORequest, Any, list[Reply]]:
    """Send one BDAT chunk, then read ``replies`` replies.

    A chunk that is a piece as ``pieces`` read it into a buffer of its own goes out in one
    write with its command, written in the room before it (``Pieces.headed``).  Otherwise
    the command and the data go out as separate writes, so a large chunk (a ``memoryview``
    of the caller's message) is never copied to join them; a chunk larger than a piece is
    written a piece at a time, so no transport buffers more than that at once.
    """
    line = client._encode(Bdat(len(data), last=last))
    headed = None if pieces is None else pieces.headed(data, line)
    if headed is None:
        yield from client._exchange_gen(line, 0)
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(bytes(data)))  # after its BDAT line: wire order
    if headed is not None:
        return (yield from client._exchange_gen(headed, replies))
    view = memoryview(data) if len(data) > PIECE_SIZE else data
    while len(view) > PIECE_SIZE:
        yield from client._exchange_gen(view[:PIECE_SIZE], 0)
        view = view[PIECE_SIZE:]
    return (yield from client._exchange_gen(view, replies))
