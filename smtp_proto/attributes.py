"""``smtplib.SMTP``'s public attributes and plain methods, with its class-level defaults.

An adapter's ``SMTP`` object holds them itself (``Client.owner`` is that object), exactly as
``smtplib`` does: a subclass may set them before calling ``__init__``, a class attribute
(``SMTP.debuglevel = 1``, ``ehlo_msg = "lhlo"``) is the default of every instance, and a
subclass's ``has_extn`` or ``auth_plain`` is what the operations call.  A ``Client`` used on
its own is its own owner.
"""

from __future__ import annotations

import hmac
from typing import overload

__all__ = ["SMTPAttributes"]


class SMTPAttributes:
    """The attributes ``smtplib.SMTP`` documents, and its methods that do no I/O."""

    #: 1 prints the transcript to stderr, 2 adds timestamps (``set_debuglevel``).
    debuglevel: int = 0
    #: The text of the last reply to HELO, ``None`` before one.
    helo_resp: bytes | None = None
    #: The greeting command: ``ehlo``, or ``lhlo`` for LMTP.
    ehlo_msg: str = "ehlo"
    #: The text of the last reply to EHLO, ``None`` before one.
    ehlo_resp: bytes | None = None
    #: Whether the last EHLO was accepted (250).
    does_esmtp: bool = False
    #: How command lines are encoded: ``ascii``, or ``utf-8`` after ``MAIL ... SMTPUTF8``.
    command_encoding: str = "ascii"
    #: The credentials of the last ``login`` (read by the ``auth_*`` methods); ``None``
    #: before one, where ``smtplib`` has no attribute yet.
    user: str | None = None
    password: str | None = None
    #: Send ``sendmail``'s message with BDAT (RFC 3030) when the server offers CHUNKING and
    #: PIPELINING: one round trip per message instead of two, no dot-stuffing.  The results
    #: and exceptions are DATA's; set it to ``False`` to use DATA all the same.
    chunking: bool = True
    #: Pipeline ``sendmail``'s commands (RFC 2920) when the server offers PIPELINING; set it
    #: to ``False`` for a server that mishandles pipelining: each command then waits for its
    #: reply, as in ``smtplib``, with the same results.
    pipelining: bool = True
    #: The name for HELO/EHLO; ``None`` until given or looked up.
    _local_hostname: str | None = None
    #: The 334 challenges answered so far in the AUTH exchange under way (``auth_login``
    #: reads it, as ``smtplib``'s does).
    _auth_challenge_count: int = 0

    def __init__(self) -> None:
        #: The extensions of the last EHLO: name (lower case) -> parameters.
        self.esmtp_features: dict[str, str] = {}
        #: Per-recipient replies to the last LMTP message body (recipient -> (code, text)).
        self.lmtp_replies: dict[str, tuple[int, bytes]] = {}

    def has_extn(self, opt: str) -> bool:
        """Whether the server advertised the extension ``opt`` (case-insensitive)."""
        return opt.lower() in self.esmtp_features

    @overload
    def auth_cram_md5(self, challenge: None = None) -> None: ...
    @overload
    def auth_cram_md5(self, challenge: bytes) -> str: ...
    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        """``smtplib``'s CRAM-MD5 authobject, from ``user`` and ``password``."""
        if challenge is None:
            return None
        assert self.user is not None and self.password is not None
        digest = hmac.new(self.password.encode("utf-8"), challenge, "md5").hexdigest()
        return f"{self.user} {digest}"

    def auth_plain(self, challenge: bytes | None = None) -> str:
        """``smtplib``'s PLAIN authobject (sent as UTF-8, so non-ASCII passwords work)."""
        return f"\0{self.user}\0{self.password}"

    def auth_login(self, challenge: bytes | None = None) -> str | None:
        """``smtplib``'s LOGIN authobject: the user name first, then the password."""
        if challenge is None or self._auth_challenge_count < 2:
            return self.user
        return self.password
