"""Types of the optional C accelerator (``smtp_proto/_speedups.c``)."""

def crlf_only(data: bytes | memoryview, /) -> bool:
    """True iff every CR is followed by LF and every LF is preceded by CR."""

def stuff_dots(data: bytes | memoryview, line_start: bool, /) -> bytes:
    """The data with every dot that follows CRLF (or starts it, if ``line_start``) doubled."""
