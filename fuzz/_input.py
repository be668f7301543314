"""How the targets read their input: the fuzzer's bytes as small typed values."""

from __future__ import annotations

from typing import Any


class Input:
    """Reads the fuzzer's bytes as small typed values; past the end everything is zero."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.data)

    def byte(self) -> int:
        value = self.data[self.position] if self.position < len(self.data) else 0
        self.position += 1
        return value

    def pick(self, options: tuple[Any, ...]) -> Any:
        return options[self.byte() % len(options)]

    def take(self, count: int) -> bytes:
        value = self.data[self.position : self.position + count]
        self.position += count
        return value

    def field(self) -> bytes:
        """A length-prefixed byte string (up to 255 bytes)."""
        return self.take(self.byte())
