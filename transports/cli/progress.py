"""The progress bar ``send`` draws on stderr as the client reads the message."""

from __future__ import annotations

import argparse
import io
import sys

from .console import Console

#: Messages at least this large get a progress bar when stderr is a terminal.
PROGRESS_THRESHOLD = 1 << 20


class Progress(io.BytesIO):
    """The message as a file the client streams from, drawing a progress bar as it is read.

    A file (unlike an iterable of chunks) has a known size, so MAIL still carries SIZE=.
    """

    def __init__(self, data: bytes, console: Console) -> None:
        super().__init__(data)
        self._total = len(data)
        self._console = console
        self._shown = -1

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        done = self.tell()
        percent = done * 100 // self._total if self._total else 100
        if percent != self._shown:
            self._shown = percent
            bar = "#" * (percent * 30 // 100)
            self._console.status(
                f"[{bar:.<30}] {percent:3d}% {done / 2**20:.1f}/{self._total / 2**20:.1f} MiB",
                final=done >= self._total,
            )
        return chunk


def wants_progress(args: argparse.Namespace, size: int) -> bool:
    """``--progress``, or a large message and a terminal to draw on."""
    return bool(args.progress) or (size >= PROGRESS_THRESHOLD and sys.stderr.isatty())
