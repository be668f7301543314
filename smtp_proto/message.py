"""Turn an ``email.message.Message`` into an SMTP envelope and wire bytes, as ``send_message`` does.

:func:`prepare_message` applies the header rules of ``smtplib.SMTP.send_message`` without doing
any I/O, so every adapter (blocking, asyncio, trio) shares one implementation and sends exactly
what the stdlib would.  Compatibility is the goal, quirks included; the ones a reader might take
for bugs are called out where they are reproduced.  Checking that the server offers SMTPUTF8 is
left to the caller, which knows the server's capabilities: this module only reports the need.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.utils import getaddresses
from typing import Any

from .errors import LocalProtocolError

__all__ = ["INTERNATIONAL_MAIL_OPTIONS", "PreparedMessage", "header_envelope", "prepare_message"]

#: MAIL FROM parameters ``send_message`` appends when an envelope address is non-ASCII.
INTERNATIONAL_MAIL_OPTIONS: tuple[str, ...] = ("SMTPUTF8", "BODY=8BITMIME")

#: Header fields that name recipients, in the order ``send_message`` collects them.
_RECIPIENT_FIELDS: tuple[str, ...] = ("To", "Bcc", "Cc")

#: Blind-copy fields that ``send_message`` removes before flattening, resent or not.
_BLIND_FIELDS: tuple[str, ...] = ("Bcc", "Resent-Bcc")

#: A line break followed by white space: header folding (RFC 5322 section 2.2.3).
_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass(frozen=True)
class PreparedMessage:
    """What to send for one message: the envelope, the DATA payload and the MAIL FROM options."""

    from_addr: str
    to_addrs: list[str]
    data: bytes
    """The flattened message with CRLF line endings, not yet dot-stuffed."""
    mail_options: tuple[str, ...]
    """The caller's options, plus :data:`INTERNATIONAL_MAIL_OPTIONS` when ``international``."""
    international: bool
    """True when an envelope address is non-ASCII, so the server must offer SMTPUTF8."""


def prepare_message(
    msg: Message[Any, Any],
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    mail_options: Sequence[str] = (),
) -> PreparedMessage:
    """Compute the envelope and bytes ``smtplib.SMTP.send_message`` would pass to ``sendmail``.

    The sender is the first ``Sender`` field if there is one, else the first ``From``; the
    recipients come from the first ``To``, ``Bcc`` and ``Cc`` fields, in that order.  A message
    with exactly one ``Resent-Date`` is a resent one and the ``Resent-`` variants of those fields
    are used instead.  Explicit ``from_addr`` / ``to_addrs`` win over the headers (a ``str``
    ``to_addrs`` is a single recipient).  ``Bcc`` and ``Resent-Bcc`` are never transmitted;
    ``msg`` itself is left untouched.

    Raises ``ValueError`` when the message has several ``Resent-`` blocks (even with explicit
    addresses, as smtplib does), ``LocalProtocolError`` (a ``ValueError``) when an address
    field it reads holds a line break that is not folding, ``IndexError`` when the sender
    field holds no address, and ``TypeError`` when an international message uses a policy
    without a ``utf8`` setting (``email.policy.compat32``, the default of
    ``email.message.Message``).
    """
    prefix = _resent_prefix(msg)
    sender = _header_sender(msg, prefix) if from_addr is None else from_addr
    if to_addrs is None:
        recipients = _header_recipients(msg, prefix)
    elif isinstance(to_addrs, str):
        recipients = [to_addrs]
    else:
        recipients = list(to_addrs)

    international = not all(address.isascii() for address in (sender, *recipients))
    options = tuple(mail_options)
    if international:
        options += INTERNATIONAL_MAIL_OPTIONS
    wire_copy = _detached_copy(msg)
    for field in _BLIND_FIELDS:
        del wire_copy[field]
    return PreparedMessage(
        from_addr=sender,
        to_addrs=recipients,
        data=_flatten(wire_copy, international),
        mail_options=options,
        international=international,
    )


def header_envelope(msg: Message[Any, Any]) -> tuple[str | None, list[str]]:
    """The sender and recipients ``send_message`` takes from the headers of ``msg`` (its
    rules: ``Sender`` else ``From``; ``To``, ``Bcc``, ``Cc``; the ``Resent-`` fields of a
    resent message); the sender is ``None`` when neither field is there."""
    prefix = _resent_prefix(msg)
    sender_field = f"{prefix}Sender" if f"{prefix}Sender" in msg else f"{prefix}From"
    sender = _header_sender(msg, prefix) if sender_field in msg else None
    return sender, _header_recipients(msg, prefix)


def _resent_prefix(msg: Message[Any, Any]) -> str:
    """Return ``"Resent-"`` for a message resent once, ``""`` for one never resent.

    ``Resent-Date`` is mandatory in each resent block (RFC 5322 section 3.6.6), so counting it
    counts the blocks.  With several there is no reliable way to tell the latest, so refuse.
    """
    dates = msg.get_all("Resent-Date") or []
    if len(dates) > 1:
        raise ValueError(
            f"message has more than one 'Resent-' header block ({len(dates)} Resent-Date "
            "fields); cannot tell which one applies"
        )
    return "Resent-" if dates else ""


def _header_sender(msg: Message[Any, Any], prefix: str) -> str:
    """The envelope sender from the first ``Sender`` field, or from ``From`` when absent.

    RFC 5322 section 3.6.2 makes ``Sender`` the agent actually responsible for transmission.
    Like smtplib, a missing ``From`` is read as the text ``"None"``, which parses as the
    address ``None``: a surprising envelope, kept so both libraries agree.
    """
    field = f"{prefix}Sender" if f"{prefix}Sender" in msg else f"{prefix}From"
    addresses = getaddresses([_address_field(field, msg.get(field))])
    if not addresses:
        raise IndexError(f"the {field} header holds no address to use as the envelope sender")
    return addresses[0][1]


def _header_recipients(msg: Message[Any, Any], prefix: str) -> list[str]:
    """Envelope recipients from the first ``To``, ``Bcc`` and ``Cc`` fields, in that order.

    The fields are parsed together, as smtplib does; unparsable entries and empty groups such
    as ``undisclosed-recipients:;`` come out as empty addresses and are kept, as smtplib does.
    """
    fields = [prefix + name for name in _RECIPIENT_FIELDS]
    present = [_address_field(field, msg[field]) for field in fields if field in msg]
    return [address for _, address in getaddresses(present)]


def _address_field(field: str, value: object) -> str:
    """The text of an address field, refused if it holds a line break that is not folding.

    ``getaddresses`` reads a bare CR or LF as white space, so ``To: a@example.org\\r\\nRSET``
    (a header set by a program, not parsed) would quietly become the recipients ``a@example.org``
    and ``RSET``: header injection turned into envelope injection.  ``smtplib`` sends those;
    the value is refused instead, before anything is sent.
    """
    text = str(value)
    if _LINE_BREAK.search(_FOLDING.sub("", text)) is not None:
        raise LocalProtocolError(f"line break in the {field} header: {text!r}")
    return text


def _detached_copy(msg: Message[Any, Any]) -> Message[Any, Any]:
    """Copy every container of the message tree, sharing the leaves.

    Deleting headers from the copy cannot reach ``msg``, and neither can the generator, which
    stores a freshly made boundary into any multipart part that lacks one (with a plain
    shallow copy, as in smtplib, that would write into the caller's sub-parts).  Payload
    strings are immutable and shared, so this costs one small object per part.
    """
    duplicate = copy.copy(msg)
    if msg.is_multipart():
        parts: list[Message | str] = [
            _detached_copy(part) if isinstance(part, Message) else part
            for part in msg.get_payload()
        ]
        duplicate.set_payload(parts)
    return duplicate


def _flatten(msg: Message[Any, Any], international: bool) -> bytes:
    """Serialise ``msg`` with CRLF line endings, choosing the generator setup as smtplib does.

    International messages use the message's policy with ``utf8=True`` so addresses are written
    raw.  Otherwise the generator gets no policy (it then uses the message's own) and quotes
    body lines starting with ``From `` as ``>From ``, even when that policy says not to: the
    generator's default, which smtplib keeps.  The utf8 generator follows the policy instead.
    """
    buffer = io.BytesIO()
    if international:
        # Typeshed types msg.policy as the base Policy, which has no utf8 setting to clone.
        policy: Any = msg.policy
        if not hasattr(policy, "utf8"):
            raise TypeError(
                "non-ASCII envelope addresses need a message policy with a utf8 setting "
                f"(e.g. email.policy.SMTPUTF8), not {type(policy).__name__}"
            )
        utf8_policy = policy.clone(utf8=True)
        generator = BytesGenerator(
            buffer, mangle_from_=utf8_policy.mangle_from_, policy=utf8_policy
        )
    else:
        generator = BytesGenerator(buffer, mangle_from_=True, policy=None)
    generator.flatten(msg, linesep="\r\n")
    return buffer.getvalue()
