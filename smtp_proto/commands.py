"""SMTP commands as values, and their serialisation.

Verbs are spelled as the running Python's ``smtplib`` spells them (``ehlo``, ``mail FROM:``,
``rcpt TO:``, ``data``, ...; ``mail from:`` and ``rcpt to:`` from Python 3.13 on), so
transcripts match the stdlib byte for byte.  Every encoded line is checked
for control characters: an argument containing CR, LF, NUL or any other control character
could inject a second command, so it is refused with a ``LocalProtocolError``.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ._slots import slot_setters
from .errors import CommandEncodingError, LocalProtocolError

#: How ``smtplib`` starts MAIL and RCPT lines: Python 3.13 lower-cased their keywords
#: (CPython gh-65495); both are the same command to a server (RFC 5321, 2.4).
_MAIL_FROM, _RCPT_TO = (
    ("mail from:", "rcpt to:") if sys.version_info >= (3, 13) else ("mail FROM:", "rcpt TO:")
)

__all__ = [
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "Ehlo",
    "Expn",
    "Helo",
    "Help",
    "Lhlo",
    "Mail",
    "Noop",
    "Quit",
    "Raw",
    "Rcpt",
    "Rset",
    "StartTLS",
    "Vrfy",
    "address_only",
    "is_utf8",
    "quoteaddr",
]

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# A plain dot-atom@domain address, which email.utils.parseaddr returns unchanged: the common
# case, quoted without the (slow) general parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")


def _verbatim(address: str) -> str:
    """``address``, refused if it holds a control character.

    Checked before quoting because ``email.utils.parseaddr`` silently drops some of them (a
    trailing CRLF, say): an injection attempt must fail loudly, not be half-repaired.
    """
    if _CONTROL_TEXT.search(address) is not None:
        raise LocalProtocolError(_refusal("address contains", address))
    return address


def quoteaddr(addrstring: str) -> str:
    """Quote an address for MAIL/RCPT exactly as ``smtplib.quoteaddr`` does.

    A parseable address becomes ``<addr-spec>``; anything else (the null sender ``<>``
    included) is sent as given when it starts with ``<``, else wrapped in angle brackets.
    """
    if _SIMPLE_ADDRESS.fullmatch(addrstring) is not None:
        return f"<{addrstring}>"
    display_name, addr_spec = email.utils.parseaddr(addrstring)
    if display_name or addr_spec:
        return f"<{addr_spec}>"
    return addrstring if addrstring.strip().startswith("<") else f"<{addrstring}>"


@functools.lru_cache(maxsize=256)
def _quoted(address: str) -> str:
    """``quoteaddr(address)``, refusing control characters first (see ``_verbatim``).

    A plain dot-atom address (the common case) cannot hold a control character and quotes to
    itself in angle brackets, so it skips both the check and ``email.utils.parseaddr``.  The
    result depends on the text alone and senders (and often recipients) repeat, so the last
    few are remembered; a refusal raises every time.
    """
    if _SIMPLE_ADDRESS.fullmatch(address) is not None:
        return f"<{address}>"
    return quoteaddr(_verbatim(address))


def address_only(addrstring: str) -> str:
    """The bare addr-spec of an address (for VRFY and EXPN), or the input if it does not parse."""
    display_name, addr_spec = email.utils.parseaddr(addrstring)
    return addr_spec if display_name or addr_spec else addrstring


def is_utf8(encoding: str) -> bool:
    """Whether ``command_encoding`` names UTF-8 (``SMTPUTF8`` mode)."""
    return encoding != "ascii" and encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def encode_line(line: str, utf8: bool) -> bytes:
    """Encode one command line (without CRLF) and append CRLF, refusing any control character."""
    if line.isascii() and line.isprintable():
        # Fast path for the usual line: in ASCII, "printable" is exactly 0x20-0x7E, so
        # these bytes hold no control character (the check below would pass) and ASCII and
        # UTF-8 encode them alike.
        return line.encode("ascii") + b"\r\n"
    try:
        data = line.encode("utf-8" if utf8 else "ascii")
    except UnicodeEncodeError as exc:
        raise CommandEncodingError(
            exc.encoding, exc.object, exc.start, exc.end, exc.reason
        ) from exc
    if _CONTROL.search(data) is not None:
        raise LocalProtocolError(_refusal("command and arguments contain", line))
    return data + b"\r\n"


def _refusal(what: str, text: str) -> str:
    """Why ``text`` cannot be sent: for a line break, in ``smtplib``'s words and escaping."""
    if "\r" in text or "\n" in text:
        escaped = text.replace("\n", "\\n").replace("\r", "\\r")
        return f"{what} prohibited newline characters: {escaped}"
    return f"{what} a control character: {text!r}"


class Command:
    """Base of all commands.

    ``group_end`` marks the commands RFC 2920 allows only as the last of a pipelined group
    (their reply decides what comes next).
    """

    __slots__ = ()
    group_end: ClassVar[bool] = True

    def line(self) -> str:
        """The command line as text, without CRLF."""
        raise NotImplementedError

    def encode(self, utf8: bool = False) -> bytes:
        """The bytes to send: the line, encoded, checked and terminated by CRLF."""
        line = self.line()
        if line.isascii() and line.isprintable():
            return line.encode("ascii") + b"\r\n"  # encode_line's quick case, without a call
        return encode_line(line, utf8)


@dataclass(frozen=True, slots=True)
class Raw(Command):
    """Any command, as ``smtplib.docmd(verb, args)`` sends it."""

    verb: str
    args: str = ""

    def line(self) -> str:
        return f"{self.verb} {self.args}" if self.args else self.verb


class _Constant(Command):
    """A command whose line never changes (``verb``): its bytes are made once, with nothing
    to check."""

    __slots__ = ()
    verb: ClassVar[str]
    _wire: ClassVar[bytes]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._wire = cls.verb.encode("ascii") + b"\r\n"

    def line(self) -> str:
        return self.verb

    def encode(self, utf8: bool = False) -> bytes:
        return self._wire


@dataclass(frozen=True, slots=True)
class Helo(Command):
    """HELO, the RFC 821 greeting."""

    name: str

    def line(self) -> str:
        return f"helo {self.name}"


@dataclass(frozen=True, slots=True)
class Ehlo(Command):
    """EHLO, the extended greeting that asks for the server's extensions.

    ``verb``: what to send for it (``smtplib``'s ``ehlo_msg``, which a subclass may change);
    the reply is read as an EHLO reply whatever the verb.
    """

    name: str
    verb: str = "ehlo"

    def line(self) -> str:
        return f"{self.verb} {self.name}"


@dataclass(frozen=True, slots=True)
class Lhlo(Command):
    """LHLO, LMTP's EHLO (RFC 2033)."""

    name: str

    def line(self) -> str:
        return f"lhlo {self.name}"


# Mail, Rcpt and Bdat are made for every message: their __init__ sets the slots directly
# (see smtp_proto._slots), as the generated one would, in half the time.


@dataclass(frozen=True, slots=True, init=False)
class Mail(Command):
    """MAIL FROM with ESMTP parameters; the sender is quoted by ``quoteaddr``."""

    group_end: ClassVar[bool] = False
    sender: str
    options: Sequence[str] = field(default=())

    def __init__(self, sender: str, options: Sequence[str] = ()) -> None:
        _set_mail_sender(self, sender)
        _set_mail_options(self, options)

    def line(self) -> str:
        if self.options:
            return f"{_MAIL_FROM}{_quoted(self.sender)} {' '.join(self.options)}"
        return f"{_MAIL_FROM}{_quoted(self.sender)}"


@dataclass(frozen=True, slots=True, init=False)
class Rcpt(Command):
    """RCPT TO with ESMTP parameters; the recipient is quoted by ``quoteaddr``."""

    group_end: ClassVar[bool] = False
    recipient: str
    options: Sequence[str] = field(default=())

    def __init__(self, recipient: str, options: Sequence[str] = ()) -> None:
        _set_rcpt_recipient(self, recipient)
        _set_rcpt_options(self, options)

    def line(self) -> str:
        if self.options:
            return f"{_RCPT_TO}{_quoted(self.recipient)} {' '.join(self.options)}"
        return f"{_RCPT_TO}{_quoted(self.recipient)}"


@dataclass(frozen=True, slots=True)
class Data(_Constant):
    """DATA: a 354 reply opens the message body."""

    verb = "data"


@dataclass(frozen=True, slots=True, init=False)
class Bdat(Command):
    """The header of one BDAT chunk (RFC 3030); the chunk's bytes follow it unchanged."""

    group_end: ClassVar[bool] = False
    size: int
    last: bool = False

    def __init__(self, size: int, last: bool = False) -> None:
        _set_bdat_size(self, size)
        _set_bdat_last(self, last)

    def line(self) -> str:
        return f"BDAT {self.size} LAST" if self.last else f"BDAT {self.size}"

    def encode(self, utf8: bool = False) -> bytes:
        # Made for every message: digits need no check, so an int size is formatted as
        # bytes at once (anything else goes the general way).
        if self.size.__class__ is int:
            return b"BDAT %d LAST\r\n" % self.size if self.last else b"BDAT %d\r\n" % self.size
        return Command.encode(self, utf8)


_set_mail_sender, _set_mail_options = slot_setters(Mail, "sender", "options")
_set_rcpt_recipient, _set_rcpt_options = slot_setters(Rcpt, "recipient", "options")
_set_bdat_size, _set_bdat_last = slot_setters(Bdat, "size", "last")


@dataclass(frozen=True, slots=True)
class Rset(_Constant):
    """RSET: abort the mail transaction."""

    group_end: ClassVar[bool] = False
    verb = "rset"


@dataclass(frozen=True, slots=True)
class Vrfy(Command):
    """VRFY: ask whether the server knows an address."""

    address: str

    def line(self) -> str:
        return f"vrfy {address_only(_verbatim(self.address))}"


@dataclass(frozen=True, slots=True)
class Expn(Command):
    """EXPN: ask the server to expand a mailing list."""

    address: str

    def line(self) -> str:
        return f"expn {address_only(_verbatim(self.address))}"


@dataclass(frozen=True, slots=True)
class Help(Command):
    """HELP, with an optional topic."""

    topic: str = ""

    def line(self) -> str:
        return f"help {self.topic}" if self.topic else "help"


@dataclass(frozen=True, slots=True)
class Noop(_Constant):
    """NOOP."""

    verb = "noop"


@dataclass(frozen=True, slots=True)
class Quit(_Constant):
    """QUIT: the server answers 221 and closes."""

    verb = "quit"


@dataclass(frozen=True, slots=True)
class StartTLS(_Constant):
    """STARTTLS: after its 220 nothing but a TLS handshake may cross the connection."""

    verb = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """AUTH with a mechanism and an optional initial response (raw bytes; sent base64)."""

    mechanism: str
    initial_response: bytes | None = None

    def line(self) -> str:
        if self.initial_response is None:
            return f"AUTH {self.mechanism}"
        encoded = base64.b64encode(self.initial_response).decode("ascii")
        return f"AUTH {self.mechanism} {encoded or '='}"


@dataclass(frozen=True, slots=True)
class AuthResponse(Command):
    """A client response in a SASL exchange (raw bytes; sent base64), or ``*`` to cancel."""

    response: bytes
    cancel: bool = False

    def line(self) -> str:
        return "*" if self.cancel else base64.b64encode(self.response).decode("ascii")
