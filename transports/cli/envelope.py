"""What ``send`` sends: the envelope and the message's bytes, composed from the options or read
from the ``--eml`` file."""

from __future__ import annotations

import argparse
import email.message
import email.parser
import email.policy
import email.utils
import io
import mimetypes
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from smtp_proto import LocalProtocolError, Mail, Rcpt
from smtp_proto.message import header_envelope

from .failure import UsageError

#: The characters of a header field's name (RFC 5322 ftext: printable ASCII but the colon).
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")


def parse_header(text: str) -> tuple[str, str]:
    """``--header``'s ``NAME:VALUE`` (one space after the colon is dropped); ``ValueError`` for
    a bad name or a line break in the value, which would start another field."""
    name, colon, value = text.partition(":")
    if not colon or not _FIELD_NAME.match(name):
        raise ValueError(f"bad --header {text!r}: expected NAME:VALUE")
    if "\r" in value or "\n" in value:
        raise ValueError(f"bad --header {name}: its value has a line break")
    return name, value.removeprefix(" ")


def without_bcc(data: bytes) -> bytes:
    """``data`` with its ``Bcc`` and ``Resent-Bcc`` header fields removed, every other byte
    kept: the blind recipients belong in the envelope only."""
    return without_fields(data, {b"bcc", b"resent-bcc"})


def with_fields(data: bytes, fields: Sequence[tuple[str, str]]) -> bytes:
    """``data`` with ``fields`` at the top of its header section, replacing any fields of
    the same names it had."""
    if not fields:
        return data
    names = {name.lower().encode("ascii") for name, _ in fields}
    added = b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)
    return added + without_fields(data, names)


def without_fields(data: bytes, names: set[bytes]) -> bytes:
    """``data`` with the header fields of these (lower-case) names removed, folded lines
    included, every other byte kept."""
    out = io.BytesIO()
    lines = iter(data.splitlines(keepends=True))
    dropping = False
    for line in lines:
        if line in (b"\r\n", b"\n"):
            out.write(line)
            break  # the end of the header section
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.write(line)
            continue
        name = line.partition(b":")[0].strip().lower()
        dropping = name in names
        if not dropping:
            out.write(line)
    for line in lines:
        out.write(line)
    return out.getvalue()


def _unique(addresses: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(address for address in addresses if address))


@dataclass
class Envelope:
    """What ``send`` sends: envelope and the message's bytes (``send()`` of the library
    declares what they need: SMTPUTF8, 8BITMIME, SIZE)."""

    sender: str
    recipients: list[str]
    data: bytes


def _read(path: str) -> bytes:
    try:
        if path == "-":
            if sys.stdin is None:  # the command was started with its standard input closed
                raise UsageError("cannot read -: standard input is closed")
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _set_field(message: email.message.EmailMessage, name: str, value: str, option: str) -> None:
    """``message[name] = value``, an option's value that the ``email`` package refuses being a
    usage error: a line break (``ValueError``), or an address it cannot parse, for which it
    raises what it happens to (``IndexError`` or ``AttributeError``: ``"x@"``, ``"<"``)."""
    try:
        message[name] = value
    except (ValueError, IndexError, AttributeError):
        raise UsageError(f"{option} {value!r}: not a valid {name} header field") from None


def _sendable(command: type[Mail | Rcpt], what: str, address: str) -> None:
    """Refuse before connecting an address that no command can carry (a line break or another
    control character), by the core's own check of the command's line."""
    try:
        command(address).encode(utf8=True)
    except LocalProtocolError:
        raise UsageError(f"{what} {address!r} holds a control character") from None


def _compose(args: argparse.Namespace, sender: str) -> email.message.EmailMessage:
    """The message the options describe (Bcc recipients left out of the headers)."""
    message = email.message.EmailMessage()
    _set_field(message, "From", sender, "--from")
    if args.to:
        _set_field(message, "To", ", ".join(args.to), "--to")
    if args.cc:
        _set_field(message, "Cc", ", ".join(args.cc), "--cc")
    _set_field(message, "Subject", args.subject, "--subject")
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain="smtp-proto.local")
    if args.body_file is not None:
        try:
            body = _read(args.body_file).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{args.body_file} is not UTF-8 text") from None
    else:
        body = args.body
    message.set_content(body)
    for name, value in args.header:
        del message[name]
        _set_field(message, name, value, "--header")
    for path in args.attach:
        content_type, encoding = mimetypes.guess_type(path)
        if content_type is None or encoding is not None:
            content_type = "application/octet-stream"  # unknown, or compressed
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(
            _read(path), maintype=maintype, subtype=subtype, filename=os.path.basename(path)
        )
    return message


def build_envelope(args: argparse.Namespace, default_sender: str | None) -> Envelope:
    """The envelope and bytes to send, from the options or the ``--eml`` file."""
    recipients = _unique([*args.to, *args.cc, *args.bcc])
    if args.eml is not None:
        raw = with_fields(_read(args.eml), args.header)
        headers = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            raw, headersonly=True
        )
        try:
            header_sender, header_recipients = header_envelope(headers)
        except ValueError as exc:  # several Resent- blocks, an empty From
            raise UsageError(f"{args.eml}: {exc}") from None
        except (IndexError, AttributeError):  # what the email package raises for some addresses
            raise UsageError(f"{args.eml}: an address field it cannot parse") from None
        sender = args.sender or header_sender
        recipients = recipients or _unique(header_recipients)
        data = without_bcc(raw)
    else:
        sender = args.sender or default_sender
        if sender is None:
            raise UsageError("--from is required with --server")
        data = b""
    if sender is None:
        raise UsageError("no sender: give --from, or a From header in the --eml file")
    if not recipients:
        raise UsageError("no recipients: give --to, --cc or --bcc")
    _sendable(Mail, "the sender", sender)
    for recipient in recipients:
        _sendable(Rcpt, "the recipient", recipient)
    if args.eml is None:
        international = not all(address.isascii() for address in (sender, *recipients))
        policy = email.policy.SMTPUTF8 if international else email.policy.SMTP
        data = _compose(args, sender).as_bytes(policy=policy)
    return Envelope(sender, recipients, data)
