"""Types of the optional C accelerator (``smtp_proto/_speedups.c``)."""

from typing import Any

from .replies import ReplyParser

def crlf_only(data: bytes | memoryview, /) -> bool:
    """True iff every CR is followed by LF and every LF is preceded by CR."""

def stuff_dots(data: bytes | memoryview, line_start: bool, /) -> bytes:
    """The data with every dot that follows CRLF (or starts it, if ``line_start``) doubled."""

def bind_replies(namespace: dict[str, Any], /) -> type[ReplyParser]:
    """The C ``ReplyParser``, bound to ``smtp_proto.replies``' namespace: it makes that
    module's ``Reply``, raises its errors and reads its limits (when a parser is made).  It
    behaves as the pure-Python class in every observable way."""
