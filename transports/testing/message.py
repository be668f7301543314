"""``CapturedMessage``: one message as the capture server received it."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from dataclasses import dataclass, field
from functools import cached_property


@dataclass
class CapturedMessage:
    """One message as the server received it: envelope, session facts and content.

    ``data`` is the message exactly as the client meant it: dots unstuffed after DATA, the
    chunks joined after BDAT, without the terminating ``.``.
    """

    mail_from: str
    rcpt_tos: list[str] = field(default_factory=list)
    mail_options: list[str] = field(default_factory=list)
    #: The RCPT parameters of each recipient in ``rcpt_tos`` (same order).
    rcpt_options: list[list[str]] = field(default_factory=list)
    data: bytes = b""
    #: Whether the session was in TLS, who had authenticated, and whether BDAT carried it.
    tls: bool = False
    auth_user: str | None = None
    chunked: bool = False

    @cached_property
    def message(self) -> email.message.EmailMessage:
        """``data`` parsed as an ``email.message.EmailMessage`` (headers, parts, content),
        with Python's line endings (LF) instead of the wire's CRLF."""
        parser = email.parser.BytesParser(policy=email.policy.default)
        parsed = parser.parsebytes(self.data.replace(b"\r\n", b"\n"))
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed
