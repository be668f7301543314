"""The progress bar ``send`` draws on stderr as the client reads the message."""

from __future__ import annotations

import argparse
import io
import sys
from typing import TextIO

#: Messages at least this large get a progress bar when stderr is a terminal.
PROGRESS_THRESHOLD = 1 << 20


class Progress(io.BytesIO):
    """The message as a file the client streams from, drawing a progress bar as it is read.

    A file (unlike an iterable of chunks) has a known size, so MAIL still carries SIZE=.
    """

    def __init__(self, data: bytes, out: TextIO) -> None:
        super().__init__(data)
        self._total = len(data)
        self._out = out
        self._shown = -1

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        done = self.tell()
        percent = done * 100 // self._total if self._total else 100
        if percent != self._shown:
            self._shown = percent
            bar = "#" * (percent * 30 // 100)
            self._out.write(
                f"\r[{bar:.<30}] {percent:3d}% {done / 2**20:.1f}/{self._total / 2**20:.1f} MiB"
                + ("\n" if done >= self._total else "")
            )
            self._out.flush()
        return chunk


def progress_stream(args: argparse.Namespace, size: int) -> TextIO | None:
    if args.progress or (size >= PROGRESS_THRESHOLD and sys.stderr.isatty()):
        return sys.stderr
    return None
