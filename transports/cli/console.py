"""Standard error, shared by the transcript's lines and the progress bar's redrawn line."""

from __future__ import annotations

from typing import TextIO


class Console:
    """Whole lines and one redrawn status line on one stream, never glued together.

    The progress bar redraws its line in place (``\\r``); a transcript line written while it
    is showing first ends that line, so every transcript line starts in the first column and
    the bar goes on below it.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._status_showing = False

    def line(self, text: str) -> None:
        """Write ``text`` as a line of its own."""
        if self._status_showing:
            self._stream.write("\n")
            self._status_showing = False
        self._stream.write(text + "\n")
        self._stream.flush()

    def status(self, text: str, *, final: bool = False) -> None:
        """Draw ``text`` over the status line; ``final`` ends it (the next one starts below)."""
        self._stream.write("\r" + text + ("\n" if final else ""))
        self._status_showing = not final
        self._stream.flush()
