"""The session as ``send -v`` shows it, and when each part of it happened.

The lines come from the library's own record of the session, the ``smtp_proto`` logger: each
command as written (AUTH credentials already replaced by ``****``) and each reply as read, in
the order they crossed the wire.  The message itself is not logged there; it is shown where it
went, from the bytes the command handed to the library: after the 354 reply to DATA, and after
each ``BDAT n`` command, whose ``n`` octets follow it (RFC 3030).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from smtp_proto.body import BodyEncoder
from smtp_proto.send import body_kind

from .console import Console

#: The format strings of the core's debug records (``smtp_proto.exchange``).
_SENT = "send: %r"
_RECEIVED = "reply: %d %r"
_BDAT = re.compile(r"BDAT (\d+)( LAST)?\Z", re.IGNORECASE)

DataView = Literal["summary", "full", "none"]
Hidden = Literal["client", "server", "info"]
#: The kinds of line ``--hide-*`` can leave out.
HIDDEN: tuple[Hidden, ...] = ("client", "server", "info")


@dataclass(frozen=True)
class View:
    """What the transcript shows: the message (summarised, in full, or not at all), and which
    kinds of line it leaves out."""

    data: DataView = "summary"
    hidden: frozenset[Hidden] = field(default_factory=frozenset)


class _Body:
    """The message as it goes on the wire, shown piece by piece as the transcript reaches it."""

    def __init__(self, message: bytes) -> None:
        self._message = message
        self._bdat: bytes | None = None
        self._offset = 0

    def data(self) -> bytes:
        """The body after DATA: line ends CRLF, leading dots doubled, ``.`` at the end."""
        return BodyEncoder(stuff_dots=True).encode_all(self._message)

    def next_chunk(self, size: int) -> bytes:
        """The next ``size`` octets sent with BDAT (a binary message goes unchanged)."""
        if self._bdat is None:
            binary = body_kind(self._message) == "binary"
            self._bdat = (
                self._message if binary else BodyEncoder(stuff_dots=False).encode_all(self._message)
            )
        chunk = self._bdat[self._offset : self._offset + size]
        self._offset += size
        return chunk


class Transcript(logging.Handler):
    """Listens to the library's log of one session (on this thread only): shows it on
    ``console`` (when given) and keeps the moments the session reached each stage."""

    def __init__(self, console: Console | None, message: bytes, view: View, tls: bool) -> None:
        super().__init__(logging.DEBUG)
        self._console = console
        self._view = view
        self._body = _Body(message)
        self._chunks: list[int] = []  # the sizes of the BDAT chunks so far
        self._tls = tls
        self._thread = threading.get_ident()
        self._start = time.perf_counter()
        #: Milliseconds from the start to the end of each stage the session reached.
        self.timings: dict[str, float] = {}

    @property
    def greeted(self) -> bool:
        """Whether the server's greeting (any reply) came."""
        return "greeting" in self.timings

    # ------------------------------------------------------------------ events

    def stage_done(self, stage: str) -> None:
        """The session finished ``stage`` (``greeting``, ``ehlo``, ``tls``, ``auth``, ...)."""
        self.timings[stage] = round((time.perf_counter() - self._start) * 1000, 3)

    def info(self, text: str) -> None:
        """A line of the command's own, not of the protocol."""
        self._show("info", "==", text)

    def tls_started(self) -> None:
        """The TLS handshake after STARTTLS succeeded: what follows is encrypted."""
        self._tls = True
        self.info("TLS started")

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread or not isinstance(record.args, tuple):
            return
        try:
            self._record(record.msg, record.args)
        except Exception:  # as logging's handlers do: the session goes on regardless
            self.handleError(record)

    def _record(self, message: object, args: tuple[object, ...]) -> None:
        """One record of the library's log: a command written, or a reply read."""
        if message == _SENT:
            (line,) = args
            self._client(str(line))
            chunk = _BDAT.match(str(line))
            if chunk:
                self._chunk(int(chunk[1]), last=chunk[2] is not None)
        elif message == _RECEIVED:
            code, text = args
            assert isinstance(code, int) and isinstance(text, bytes)
            if not self.greeted:
                self.stage_done("greeting")
            lines = text.split(b"\n")
            for number, line in enumerate(lines, 1):
                separator = " " if number == len(lines) else "-"
                self._server(f"{code}{separator}{line.decode('utf-8', 'backslashreplace')}")
            if code == 354:  # only DATA is answered so: the message follows
                self._data()

    # ------------------------------------------------------------------ lines

    def _show(self, kind: Hidden, marker: str, text: str) -> None:
        if self._console is not None and kind not in self._view.hidden:
            self._console.line(f"{marker} {text}")

    def _client(self, text: str) -> None:
        self._show("client", "~>" if self._tls else "->", text)

    def _server(self, text: str) -> None:
        self._show("server", "<~" if self._tls else "<-", text)

    def _data(self) -> None:
        if self._view.data == "none" or self._console is None:
            return
        data = self._body.data()
        if self._view.data == "full":
            for line in data[:-2].split(b"\r\n"):
                self._client(line.decode("utf-8", "backslashreplace"))
            return
        lines = data.count(b"\r\n") - 1
        self._client(f'(message: {len(data) - 3} bytes in {lines} lines, then ".")')

    def _chunk(self, size: int, last: bool) -> None:
        self._chunks.append(size)
        if self._view.data == "none" or self._console is None:
            return
        if self._view.data == "full":
            chunk = self._body.next_chunk(size)
            for line in chunk.decode("utf-8", "backslashreplace").splitlines():
                self._client(line)
            return
        total = ""
        if last and len(self._chunks) > 1:
            total = f"; message: {sum(self._chunks)} bytes in {len(self._chunks)} chunks"
        self._client(f"({size} bytes of message data{total})")

    # ------------------------------------------------------------------ lifetime

    @contextlib.contextmanager
    def attached(self) -> Iterator[Transcript]:
        """Listen to the library's log while the ``with`` block runs."""
        logger = logging.getLogger("smtp_proto")
        level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
