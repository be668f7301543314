"""SASLprep (RFC 4013), a stringprep (RFC 3454) profile, used by SCRAM (RFC 5802 section 2.2)."""

from __future__ import annotations

import stringprep
import unicodedata

from .mechanism import SASLError

__all__ = ["saslprep"]


def _prohibited(ch: str) -> bool:
    """True for characters RFC 4013 section 2.3 forbids in SASLprep output."""
    return (
        stringprep.in_table_c12(ch)  # non-ASCII spaces
        or stringprep.in_table_c21_c22(ch)  # control characters
        or stringprep.in_table_c3(ch)  # private use
        or stringprep.in_table_c4(ch)  # non-character code points
        or stringprep.in_table_c5(ch)  # surrogates
        or stringprep.in_table_c6(ch)  # inappropriate for plain text
        or stringprep.in_table_c7(ch)  # inappropriate for canonical representation
        or stringprep.in_table_c8(ch)  # change display properties / deprecated
        or stringprep.in_table_c9(ch)  # tagging characters
    )


def saslprep(text: str) -> str:
    """Prepare ``text`` with SASLprep (RFC 4013) as a *query* string; raise SASLError if refused.

    Full profile, with the Unicode 3.2 tables RFC 3454 is defined on: non-ASCII spaces become
    U+0020, "commonly mapped to nothing" characters are removed, the result is NFKC-normalised,
    prohibited characters and bad bidirectional text are refused.  Unassigned code points are
    allowed (query string), as RFC 5802 asks.  An empty result is refused too.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if not prepared:
        raise SASLError("SASLprep: the string is empty")
    for ch in prepared:
        if _prohibited(ch):
            raise SASLError(f"SASLprep: prohibited character U+{ord(ch):04X}")
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        # RFC 3454 section 6: right-to-left text must not mix in left-to-right characters and
        # must start and end with a right-to-left character.
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise SASLError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLError("SASLprep: right-to-left text must start and end with an RTL char")
    return prepared
