"""Delivery status notifications (RFC 3461): the MAIL and RCPT parameters, validated.

``mail_options`` and ``rcpt_options`` return the parameter strings ``sendmail`` takes (so they
work with the ``smtplib``-compatible API too); :class:`DSN` is the typed request the high-level
``send`` takes, with per-recipient settings.  ENVID and ORCPT values travel as *xtext*
(RFC 3461 section 4): ``+``, ``=`` and every character outside ``!``..``~`` become ``+XX``
(upper-case hex of the byte).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DSN",
    "NOTIFY_VALUES",
    "RecipientDSN",
    "mail_options",
    "rcpt_options",
    "xtext_decode",
    "xtext_encode",
]

#: The NOTIFY keywords; NEVER excludes the others.
NOTIFY_VALUES = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
#: RFC 3461 section 4.4: an ENVID is at most 100 characters (before encoding).
MAX_ENVID = 100
#: RFC 3461 section 4.2: an ORCPT parameter (``addr-type;xtext``) is at most 500 characters.
MAX_ORCPT = 500

Ret = Literal["FULL", "HDRS"]
_PLAIN = frozenset(range(33, 127)) - {ord("+"), ord("=")}
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


def xtext_encode(text: str) -> str:
    """``text`` as xtext: its UTF-8 bytes, with ``+``, ``=`` and any byte outside 33..126 as
    ``+XX``.  (The RFC defines xtext over ASCII; other characters are carried byte by byte.)"""
    data = text.encode("utf-8")
    return "".join(chr(byte) if byte in _PLAIN else f"+{byte:02X}" for byte in data)


def xtext_decode(text: str) -> str:
    """The text an xtext string encodes; ``ValueError`` if it is not valid xtext."""
    if _XTEXT.fullmatch(text) is None:
        raise ValueError(f"not valid xtext: {text!r}")
    data = bytearray()
    position = 0
    while position < len(text):
        if text[position] == "+":
            data.append(int(text[position + 1 : position + 3], 16))
            position += 3
        else:
            data.append(ord(text[position]))
            position += 1
    return data.decode("utf-8")


def _printable_ascii(value: str, what: str, limit: int) -> None:
    if not value or len(value) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters, not {len(value)}")
    if any(not " " <= char <= "~" for char in value):
        raise ValueError(f"{what} must be printable US-ASCII: {value!r}")


def _ret(ret: str) -> str:
    upper = ret.upper()
    if upper not in ("FULL", "HDRS"):
        raise ValueError(f"RET must be FULL or HDRS, not {ret!r}")
    return upper


def _notify(notify: str | Iterable[str]) -> tuple[str, ...]:
    """The NOTIFY keywords, upper-cased, each once, in the RFC's order; checked."""
    items = notify.split(",") if isinstance(notify, str) else list(notify)
    words = {item.strip().upper() for item in items}
    unknown = words - set(NOTIFY_VALUES)
    if unknown or not words:
        raise ValueError(f"NOTIFY takes NEVER or any of SUCCESS, FAILURE, DELAY, not {notify!r}")
    if "NEVER" in words and len(words) > 1:
        raise ValueError("NOTIFY=NEVER cannot be combined with SUCCESS, FAILURE or DELAY")
    return tuple(word for word in NOTIFY_VALUES if word in words)


def mail_options(*, ret: str | None = None, envid: str | None = None) -> list[str]:
    """The MAIL parameters for RET (``FULL`` or ``HDRS``) and ENVID (printable ASCII, at most
    100 characters, sent as xtext).  ``ValueError`` for anything else."""
    options: list[str] = []
    if ret is not None:
        options.append(f"RET={_ret(ret)}")
    if envid is not None:
        _printable_ascii(envid, "ENVID", MAX_ENVID)
        options.append(f"ENVID={xtext_encode(envid)}")
    return options


def rcpt_options(
    *,
    notify: str | Iterable[str] | None = None,
    orcpt: str | None = None,
    addr_type: str = "rfc822",
) -> list[str]:
    """The RCPT parameters for NOTIFY (``NEVER``, or any of ``SUCCESS``, ``FAILURE``,
    ``DELAY``, as an iterable or a comma-separated string) and ORCPT (``addr_type;address``,
    the address printable ASCII and sent as xtext).  ``ValueError`` for anything else."""
    options: list[str] = []
    if notify is not None:
        options.append("NOTIFY=" + ",".join(_notify(notify)))
    if orcpt is not None:
        if _ATOM.fullmatch(addr_type) is None:
            raise ValueError(f"ORCPT address type must be an atom such as rfc822: {addr_type!r}")
        _printable_ascii(orcpt, "ORCPT address", MAX_ORCPT)
        parameter = f"ORCPT={addr_type};{xtext_encode(orcpt)}"
        if len(parameter) - len("ORCPT=") > MAX_ORCPT:
            raise ValueError(f"ORCPT parameter longer than {MAX_ORCPT} characters once encoded")
        options.append(parameter)
    return options


@dataclass(frozen=True)
class RecipientDSN:
    """What to ask for one recipient: NOTIFY keywords and the original recipient (ORCPT)."""

    notify: str | tuple[str, ...] | None = None
    orcpt: str | None = None
    addr_type: str = "rfc822"

    def __post_init__(self) -> None:
        self.options()  # validate now, not half-way through a transaction

    def options(self) -> list[str]:
        """The RCPT parameters."""
        return rcpt_options(notify=self.notify, orcpt=self.orcpt, addr_type=self.addr_type)


@dataclass(frozen=True)
class DSN:
    """A typed DSN request for ``send``: RET and ENVID for the message, NOTIFY for every
    recipient, and per-recipient settings (``recipients`` maps an address to its own
    :class:`RecipientDSN`, which replaces ``notify`` for it).  With ``orcpt=True`` each
    recipient without its own ORCPT gets ``rfc822;<its address>``."""

    ret: Ret | None = None
    envid: str | None = None
    notify: str | tuple[str, ...] | None = None
    orcpt: bool = False
    recipients: Mapping[str, RecipientDSN] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mail_options()
        if self.notify is not None:
            _notify(self.notify)

    def mail_options(self) -> list[str]:
        """The MAIL parameters."""
        return mail_options(ret=self.ret, envid=self.envid)

    def rcpt_options(self, recipient: str) -> list[str]:
        """The RCPT parameters for ``recipient``."""
        own = self.recipients.get(recipient)
        if own is None:
            own = RecipientDSN(notify=self.notify)
        if self.orcpt and own.orcpt is None and recipient.isascii():
            own = RecipientDSN(notify=own.notify, orcpt=recipient)
        return own.options()
