"""A file of the ``io`` classes read into buffers of ours (issue #14, W3): after its first
piece, ``Pieces`` reads it with ``readinto``, ``HEADROOM`` bytes into a few buffers it
reuses, and a BDAT chunk that is a piece as read goes out with its command in one write.

The pieces are those ``read()`` gives, whatever sizes the file hands its bytes over in; the
bytes on the wire are those sent when every piece was read with ``read()``; and a buffer is
never filled again while anything (a transport keeping what it could not send) views it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto import bdat, source
from smtp_proto.body import BodyEncoder
from smtp_proto.client import Client
from smtp_proto.driving import drive
from smtp_proto.requests import RECEIVE
from smtp_proto.source import Pieces
from tests.core.test_client_chunking import bdat_chunks
from tests.offline import EHLO_LINE, Peer, S, connected

#: The piece size in these tests: messages of a few hundred bytes are many pieces.
SMALL = 8

EHLO = S(b"250-server.example\r\n250-PIPELINING\r\n250-BINARYMIME\r\n250 CHUNKING\r\n")

#: Message bytes rich in what the BDAT encoder looks at: line ends whole, bare or cut in two.
TOKENS = st.sampled_from([b"ab", b"x", b"\r\n", b"\r", b"\n", b"."])
CONTENT = st.lists(TOKENS, max_size=300).map(b"".join)
#: Messages of several pieces after the first (which is read with ``read()``), so that the
#: buffers go round.
LONG_CONTENT = st.lists(TOKENS, min_size=6 * SMALL, max_size=300).map(b"".join)
#: How many bytes each read of a trickling file hands over (then whatever is asked for).
SIZES = st.lists(st.integers(1, 3 * SMALL), max_size=30)


@contextmanager
def small_pieces(readinto: bool = True) -> Iterator[None]:
    """Pieces of ``SMALL`` bytes; without ``readinto``, every piece of a file is read with
    ``read()``, as before buffers of ours."""
    classes = source._READINTO_CLASSES if readinto else ()
    with (
        mock.patch.object(source, "PIECE_SIZE", SMALL),
        mock.patch.object(bdat, "PIECE_SIZE", SMALL),
        mock.patch.object(source, "_READINTO_CLASSES", classes),
    ):
        yield


class Trickle(io.RawIOBase):
    """A raw stream that hands its bytes over in the given sizes (then as much as asked),
    as a pipe or a socket may; a ``None`` size is a non-blocking read with nothing yet."""

    def __init__(self, data: bytes, sizes: list[int | None]) -> None:
        super().__init__()
        self._data = data
        self._sizes = iter(sizes)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        size = next(self._sizes, len(buffer))
        if size is None:
            return None
        taken = self._data[: min(size, len(buffer))]
        buffer[: len(taken)] = taken
        self._data = self._data[len(taken) :]
        return len(taken)


def files(data: bytes, sizes: list[int]) -> dict[str, Any]:
    """The same bytes as files that take the ``readinto`` path (``BytesIO``, a
    ``BufferedReader`` over a trickle) and one that does not (the raw trickle itself)."""
    return {
        "BytesIO": io.BytesIO(data),
        "BufferedReader": io.BufferedReader(Trickle(data, list(sizes)), buffer_size=SMALL // 2),
        "raw": Trickle(data, list(sizes)),
    }


def expected_pieces(data: bytes) -> list[tuple[bytes, bool]]:
    """``data`` in pieces of ``SMALL`` bytes, the last one marked; one empty piece if none."""
    if not data:
        return [(b"", True)]
    return [(data[i : i + SMALL], i + SMALL >= len(data)) for i in range(0, len(data), SMALL)]


def unexpected(request: object) -> object:
    raise AssertionError(f"a sync file needs no I/O request, got {request!r}")


def pieces_of(file: Any) -> list[tuple[bytes, bool]]:
    """Every piece ``Pieces`` gives of ``file`` (copied as it comes), with its last flag."""
    pieces = Pieces(file)
    for request in pieces.start():
        unexpected(request)
    got: list[tuple[bytes, bool]] = []
    last = False
    while not last:
        piece, last = drive(pieces.next(), unexpected, lambda: None)
        assert len(piece) <= SMALL
        got.append((bytes(piece), last))
    return got


@given(data=CONTENT, sizes=SIZES)
@settings(max_examples=200, deadline=None)
def test_the_pieces_do_not_depend_on_how_the_file_reads(data: bytes, sizes: list[int]) -> None:
    for readinto in (True, False):
        with small_pieces(readinto):
            for name, file in files(data, sizes).items():
                assert pieces_of(file) == expected_pieces(data), (name, readinto)


@pytest.mark.parametrize("readinto", [True, False])
def test_a_file_with_nothing_to_read_yet_is_refused_as_before(readinto: bool) -> None:
    """A non-blocking file that has nothing to read after its first piece: ``read()``
    returns ``None``, which is not bytes; ``readinto`` too, refused the same way."""
    data = b"x" * (3 * SMALL)
    with small_pieces(readinto):
        pieces = Pieces(io.BufferedReader(Trickle(data, [SMALL, None])))
        with pytest.raises(TypeError, match="must yield bytes, not NoneType"):
            for request in pieces.start():
                unexpected(request)


@pytest.mark.parametrize(("mode", "buffering"), [("rb", 0), ("rb", -1), ("r+b", -1)])
def test_a_real_file_read_into_buffers_of_ours(tmp_path: Path, mode: str, buffering: int) -> None:
    """``FileIO``, ``BufferedReader`` and ``BufferedRandom``, read to their end as before."""
    data = b"line one\r\nline two\n" * 5
    path = tmp_path / "message.eml"
    path.write_bytes(data)
    with path.open(mode, buffering=buffering) as file, small_pieces():
        assert type(file) in source._READINTO_CLASSES
        assert pieces_of(file) == expected_pieces(data)
        assert file.read() == b""


def test_a_file_shorter_than_a_piece_makes_no_buffer() -> None:
    """The usual message: one piece, read with ``read()`` as before; no buffer of a piece
    is made (nor zeroed) for it."""
    with small_pieces():
        pieces = Pieces(io.BytesIO(b"x" * (SMALL - 1)))
        for request in pieces.start():
            unexpected(request)
        assert pieces.first == (b"x" * (SMALL - 1), True)
        assert pieces._buffers == []


def test_a_subclass_of_the_io_classes_is_read_with_its_own_read() -> None:
    """A subclass may change what ``read`` returns; ``readinto`` would bypass it."""

    class Shouting(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            return super().read(size).upper()

    with small_pieces():
        assert pieces_of(Shouting(b"quiet " * 10)) == expected_pieces(b"QUIET " * 10)


# ---------------------------------------------------------------- the bytes on the wire


def chunking_client() -> Client:
    client = connected()
    assert Peer([EHLO_LINE, EHLO]).run(client.ehlo())[0] == 250
    return client


def sent(
    file: Any, binary: bool, readinto: bool, keep: Callable[[bytes | memoryview], object]
) -> tuple[bytes, list[object]]:
    """What ``sendmail`` writes for ``file`` by BDAT to a server that accepts everything
    (one 250 each time the client waits for a reply), and what ``keep`` kept of each write."""
    client = chunking_client()
    kept: list[object] = []

    def perform(request: object) -> object:
        if isinstance(request, bytes | memoryview):
            kept.append(keep(request))
            return None
        assert request is RECEIVE
        return b"250 ok\r\n"

    options = ["BODY=BINARYMIME"] if binary else []
    with small_pieces(readinto):
        operation = client.sendmail("a@x", ["b@x"], file, mail_options=options)
        assert drive(operation, perform, client.close) == {}
    return b"".join(bytes(write) for write in kept if isinstance(write, bytes | memoryview)), kept


def chunks_carried(wire: bytes) -> bytes:
    """The BDAT chunks' data in ``wire``, joined."""
    return b"".join(bdat_chunks(wire))


def copied(write: bytes | memoryview) -> bytes:
    """What a transport that sends everything at once keeps: nothing of ours."""
    return bytes(write)


def as_given(write: bytes | memoryview) -> bytes | memoryview:
    """What a transport that could send nothing yet keeps: the very object, to send later."""
    return write


@given(data=LONG_CONTENT, sizes=SIZES, binary=st.booleans(), kept_views=st.booleans())
@settings(max_examples=150, deadline=None)
def test_the_wire_is_what_reading_with_read_sent(
    data: bytes, sizes: list[int], binary: bool, kept_views: bool
) -> None:
    """The same bytes, command lines and chunk boundaries as when every piece was read with
    ``read()``, in fewer writes; still so when the transport keeps every write to send it
    later (a buffer it views is never filled again); line ends normalised unless binary."""
    keep = as_given if kept_views else copied
    before, before_writes = sent(files(data, sizes)["raw"], binary, False, copied)
    for name in ("BytesIO", "BufferedReader"):
        wire, writes = sent(files(data, sizes)[name], binary, True, keep)
        assert wire == before, name
        assert len(writes) <= len(before_writes)
    body = data if binary else BodyEncoder(stuff_dots=False).encode_all(data)
    assert chunks_carried(before) == body


def test_a_piece_as_read_goes_out_with_its_command_in_one_write() -> None:
    data = b"abcdef\r\n" * 15  # pieces that end their lines: every one goes as read
    wire, writes = sent(io.BytesIO(data), False, True, as_given)
    before, before_writes = sent(Trickle(data, []), False, False, copied)
    assert wire == before
    starts = range(SMALL, len(data), SMALL)  # the first piece is read with read(), as before
    headed = [
        b"BDAT %d%s\r\n%s"
        % (SMALL, b" LAST" if i + SMALL == len(data) else b"", data[i : i + SMALL])
        for i in starts
    ]
    chunk_writes = [bytes(write) for write in writes if bytes(write).startswith(b"BDAT ")]
    assert chunk_writes[1:] == headed
    assert len(before_writes) - len(writes) == len(starts)


def test_the_buffers_are_few_and_reused_once_nothing_views_them() -> None:
    """A transport that sends each write at once (the blocking one): a message of many
    pieces goes through ``_BUFFERS`` buffers of ours."""
    data = b"0123456789abc\r\n" * 100
    buffers: list[object] = []

    def keep_buffer(write: bytes | memoryview) -> object:
        if isinstance(write, memoryview) and isinstance(write.obj, bytearray):
            buffers.append(write.obj)  # the buffer, not a view of it
        return bytes(write)

    wire, _ = sent(io.BytesIO(data), False, True, keep_buffer)
    assert chunks_carried(wire) == data
    assert len(buffers) > len(data) // SMALL // 2  # most chunks are pieces as read
    assert len({id(buffer) for buffer in buffers}) == source._BUFFERS


def test_a_send_replaced_sees_the_command_and_the_data_apart() -> None:
    """A replaced ``send`` (``smtplib``'s call graph: sendmail then goes through the
    methods, BINARYMIME by BDAT) is called with each BDAT command line on its own, as
    before."""
    data = b"0123456789abc\r\n" * 8
    client = chunking_client()
    calls: list[bytes] = []

    def send(data: str | bytes | memoryview) -> None:
        calls.append(data.encode() if isinstance(data, str) else bytes(data))

    def replaced(name: str) -> Callable[[str | bytes | memoryview], None] | None:
        return send if name == "send" else None

    client._override = replaced

    def perform(request: object) -> object:
        assert request is RECEIVE  # every write goes through the replaced send
        return b"250 ok\r\n"

    with small_pieces():
        operation = client.sendmail(
            "a@x", ["b@x"], io.BytesIO(data), mail_options=["BODY=BINARYMIME"]
        )
        assert drive(operation, perform, client.close) == {}
    assert b"BDAT %d\r\n" % SMALL in calls
    assert all(not call.startswith(b"BDAT ") or call.endswith(b"\r\n") for call in calls)
    assert chunks_carried(b"".join(calls)) == data
