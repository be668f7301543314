"""Types of the optional C accelerator (``smtp_proto/_speedups.c``)."""

from collections import deque
from collections.abc import Callable
from typing import Any

from .commands import Bdat, Command, Mail, Rcpt
from .replies import Reply, ReplyParser

def crlf_only(data: bytes | memoryview, /) -> bool:
    """True iff every CR is followed by LF and every LF is preceded by CR."""

def stuff_dots(data: bytes | memoryview, line_start: bool, /) -> bytes:
    """The data with every dot that follows CRLF (or starts it, if ``line_start``) doubled."""

def bind_replies(namespace: dict[str, Any], /) -> type[ReplyParser]:
    """The C ``ReplyParser``, bound to ``smtp_proto.replies``' namespace: it makes that
    module's ``Reply``, raises its errors and reads its limits (when a parser is made).  It
    behaves as the pure-Python class in every observable way."""

def bind_commands(
    mail: type[Mail], rcpt: type[Rcpt], bdat: type[Bdat], /
) -> Callable[[ReplyParser, deque[Command], list[Reply], int, list[str], bool], Reply | None]:
    """The C ``take_replies``, bound to ``smtp_proto.commands``' ``Mail``, ``Rcpt`` and
    ``Bdat``: it does what ``smtp_proto.connection.take_replies`` does."""
