"""The message to send, read in pieces: from ``bytes``, a file object or a (sync or async)
iterable, with its size known up front when it can be (for SIZE)."""

from __future__ import annotations

import inspect
import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Iterator
from functools import partial
from typing import Any, Protocol, runtime_checkable

from .body import PIECE_SIZE, fix_line_ends, normalised_size
from .requests import END_OF_BODY, IORequest, NextRead

__all__ = ["Message", "Pieces", "Readable", "Source", "fix_line_ends", "known_size", "source_of"]


@runtime_checkable
class Readable(Protocol):
    """A binary file object: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int, /) -> bytes: ...


#: A message body: ``str`` (ASCII), ``bytes``, a binary file object (read from its position
#: on) or an iterable of ``bytes`` of any sizes, sync or async (async ones with the async
#: adapters); the streamed ones are sent ``PIECE_SIZE`` bytes at a time.
Message = bytes | str | Readable | Iterable[bytes] | AsyncIterable[bytes]
#: A message as it is read to be sent: ``source_of(message)``.
Source = bytes | Readable | Iterable[bytes] | AsyncIterable[bytes]


def source_of(msg: Message) -> Source:
    """``msg`` to send: a ``str`` encoded as ``smtplib`` does, other bytes-like objects as
    bytes, file objects and iterables as they are (an async file object as an async
    iterable of its reads)."""
    if isinstance(msg, bytes):
        return msg
    if isinstance(msg, str):
        return fix_line_ends(msg).encode("ascii")
    if isinstance(msg, bytearray | memoryview):
        return bytes(msg)
    if isinstance(msg, Readable) and inspect.iscoroutinefunction(msg.read):
        return _async_reads(msg)
    return msg


async def _async_reads(file: Any) -> AsyncIterator[bytes]:
    """The reads of an async file object, ``PIECE_SIZE`` bytes at a time."""
    while read := await file.read(PIECE_SIZE):
        yield read


def known_size(source: Source, binary: bool) -> int | None:
    """The size of a message as sent, if known before reading it: exact for bytes (line ends
    normalised unless ``binary``), a file's size otherwise (an estimate, as RFC 1870 allows:
    its bare line ends are not counted)."""
    if isinstance(source, bytes):
        return len(source) if binary else normalised_size(source)
    if not isinstance(source, Readable):
        return None
    file: Any = source
    if not (hasattr(file, "seek") and hasattr(file, "tell")):
        return None
    try:
        if hasattr(file, "seekable") and not file.seekable():
            return None
        position = file.tell()
    except (OSError, ValueError):
        return None
    try:
        file.seek(0, os.SEEK_END)
        end: int | None = file.tell()
    except (OSError, ValueError):
        end = None
    file.seek(position)  # errors propagate: the message must be read from where it starts
    return None if end is None else max(end - position, 0)


#: Room kept before each piece read into a buffer of ours: the BDAT command line of a chunk
#: that is the piece as read can be written there and go out with it, in one write
#: (``BDAT 262144 LAST\r\n`` takes 18 bytes).
HEADROOM = 32
#: How many buffers the pieces of a file rotate through: the piece being sent, the one
#: read ahead and the one being read.
_BUFFERS = 3
#: The file classes whose ``readinto`` reads what their ``read`` would (exactly these
#: classes: a subclass may change what ``read`` returns).
_READINTO_CLASSES = (io.BufferedReader, io.BufferedRandom, io.FileIO, io.BytesIO)


def _unviewed(buffer: bytearray) -> bool:
    """Whether no view of ``buffer`` is left, so that nothing can read its bytes any more
    (a transport that keeps data it could not send at once keeps a view of it, or a copy).
    A ``bytearray`` cannot change size while a view of it exists: one byte less, then the
    byte back (within its allocation: no copy)."""
    try:
        del buffer[-1:]
    except BufferError:
        return False
    buffer.append(0)
    return True


def _reads(source: Readable | Iterable[bytes]) -> Iterator[object]:
    """What a file object reads or an iterable yields."""
    if isinstance(source, Readable):
        return iter(partial(source.read, PIECE_SIZE), b"")
    return iter(source)


class Pieces:
    """A message in ``PIECE_SIZE`` pieces, each with whether it is the last one.

    The pieces depend on the bytes only, not on how a file or an iterable hands them over.
    ``start()`` reads the first piece (and the next, to know whether it is the last) before
    the caller sends anything, so that a source that cannot be read fails while the
    connection is still usable.  Sync sources are read directly; an async iterable is pulled
    through the driver with ``NextRead`` requests.  At most two pieces are held at a time.

    After its first piece, a file of the ``io`` classes is read with ``readinto`` into
    ``_BUFFERS`` buffers of ours, ``HEADROOM`` bytes in, instead of a new ``bytes`` object
    a piece: the same bytes, without fresh memory for each piece, and with room for the
    chunk's command (``headed``).  A buffer is filled again only once no view of it is
    left (``_unviewed``); a new one is made while all are viewed (and the oldest left to
    its viewer), so this holds ``_BUFFERS`` pieces' memory, and a transport what it keeps.
    """

    __slots__ = (
        "_ahead",
        "_ahead_buffer",
        "_async",
        "_buffer",
        "_buffers",
        "_data",
        "_ended",
        "_file",
        "_given",
        "_iterator",
        "_offset",
        "_readinto",
        "_taken",
        "first",
    )

    def __init__(self, source: Source) -> None:
        self.first: tuple[bytes | memoryview, bool] = (b"", True)
        self._data: memoryview | None = None
        self._iterator: Any = None
        self._async = False
        self._buffer = bytearray()
        self._ended = False
        self._ahead: bytes | memoryview | None = None
        self._offset = 0
        self._taken = False
        self._file: Any = None
        self._readinto: Callable[[memoryview], int | None] | None = None
        self._given: tuple[bytes | memoryview, bytearray] | None = None
        # _buffers and _ahead_buffer: set once a file is read into buffers of ours
        if isinstance(source, bytes):
            if len(source) <= PIECE_SIZE:
                self.first, self._ended = (source, True), True  # the common case, made quick
            self._data = memoryview(source)  # pieces of it without copies
        elif isinstance(source, AsyncIterable):
            self._iterator, self._async = aiter(source), True
        else:
            self._iterator = _reads(source)
            if type(source) in _READINTO_CLASSES:
                self._file = source

    def start(self) -> Iterable[IORequest]:
        """Read the first piece (and look one ahead): nothing to run (``()``) for a message
        in memory that is one piece."""
        if self._data is not None and self._ended:
            return ()
        return self._read_first()

    def _read_first(self) -> Generator[IORequest, Any, None]:
        piece = yield from self._slice()
        if self._file is not None:  # (no buffer is made for a file shorter than a piece)
            self._buffers: list[bytearray] = []
            self._readinto = self._file.readinto
            self._ahead = self._read_into()
        else:
            self._ahead = yield from self._slice()
        self.first = (piece or b"", self._ahead is None)

    def whole(self) -> memoryview | None:
        """The whole message as one view of the caller's bytes, if it is in memory and no
        piece of it was handed out yet (``None`` otherwise)."""
        return self._data if not self._taken else None

    def next(self) -> Generator[IORequest, Any, tuple[bytes | memoryview, bool]]:
        """The next piece (the first one first) and whether it is the last."""
        if not self._taken:
            self._taken = True
            return self.first
        piece = self._ahead
        assert piece is not None, "read past the last piece"
        if self._readinto is not None:
            self._given = (piece, self._ahead_buffer)
            self._ahead = self._read_into()
        else:
            self._ahead = yield from self._slice()
        return piece, self._ahead is None

    def headed(self, piece: bytes | memoryview, line: bytes) -> memoryview | None:
        """``line`` and ``piece`` as one view, when ``piece`` is the last one ``next()``
        gave, as read into a buffer of ours (``line`` written into the room before it);
        ``None`` otherwise."""
        given = self._given
        if given is None or piece is not given[0] or len(line) > HEADROOM:
            return None
        view = memoryview(given[1])
        start = HEADROOM - len(line)
        view[start:HEADROOM] = line
        return view[start : HEADROOM + len(piece)]

    def _read_into(self) -> memoryview | None:
        """The next ``PIECE_SIZE`` bytes of the file (fewer at the end) as a view of a buffer
        of ours, ``HEADROOM`` bytes in; ``None`` when there are none."""
        if self._ended:
            return None
        buffer = self._free_buffer()
        view = memoryview(buffer)
        end = HEADROOM + len(self._buffer)
        if self._buffer:  # what the first piece's reads gave beyond it
            view[HEADROOM:end] = self._buffer
            self._buffer.clear()
        readinto: Any = self._readinto
        limit = HEADROOM + PIECE_SIZE
        while end < limit:
            count = readinto(view[end:limit])
            if not count:
                if count is None:  # a non-blocking file with nothing to read: as read() gives
                    raise TypeError("a message body must yield bytes, not NoneType")
                self._ended = True
                break
            end += count
        if end == HEADROOM:
            return None
        self._ahead_buffer: bytearray = buffer
        return view[HEADROOM:end]

    def _free_buffer(self) -> bytearray:
        """A buffer of ours that nothing views any more, else a new one (which replaces the
        oldest of ours once there are ``_BUFFERS``: that one is freed when its viewer drops
        it)."""
        buffers = self._buffers
        for buffer in buffers:
            if _unviewed(buffer):
                return buffer
        buffer = bytearray(HEADROOM + PIECE_SIZE)
        if len(buffers) == _BUFFERS:
            del buffers[0]
        buffers.append(buffer)
        return buffer

    def _slice(self) -> Generator[IORequest, Any, bytes | memoryview | None]:
        """The next ``PIECE_SIZE`` bytes (fewer at the end), ``None`` when there are none."""
        data = self._data
        if data is not None:
            start = self._offset
            if start >= len(data):
                return None
            self._offset = start + PIECE_SIZE
            return data[start : start + PIECE_SIZE]
        buffer = self._buffer
        while len(buffer) < PIECE_SIZE and not self._ended:
            if self._async:
                read = yield NextRead(self._iterator)
                if read is END_OF_BODY:
                    self._ended = True
                    break
            else:
                read = next(self._iterator, END_OF_BODY)
                if read is END_OF_BODY:
                    self._ended = True
                    break
            if not isinstance(read, bytes | bytearray | memoryview):
                raise TypeError(f"a message body must yield bytes, not {type(read).__name__}")
            if not buffer and len(read) == PIECE_SIZE:
                return bytes(read)
            buffer += read
        if not buffer:
            return None
        piece = bytes(buffer[:PIECE_SIZE])
        del buffer[:PIECE_SIZE]
        return piece
