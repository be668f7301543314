"""RFC 3463 enhanced status codes, as RFC 2034 puts them at the start of reply text."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EnhancedStatus", "parse_enhanced_status"]

_ENHANCED = re.compile(rb"([245])\.(\d{1,3})\.(\d{1,3})(?=[ \t]|$)")


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 status code ``class.subject.detail``, e.g. ``5.1.1`` (bad mailbox)."""

    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


def parse_enhanced_status(code: int, text: bytes) -> EnhancedStatus | None:
    """The enhanced status code ``text`` starts with, if its class matches ``code`` (RFC 2034)."""
    match = _ENHANCED.match(text)
    if match is None or int(match[1]) != code // 100:
        return None
    return EnhancedStatus(int(match[1]), int(match[2]), int(match[3]))
