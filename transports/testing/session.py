"""One client connection's SMTP (or LMTP) dialogue: the command-handling state machine."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING

from .message import CapturedMessage
from .parameters import (
    _MAIL_PARAMETERS,
    _RCPT_PARAMETERS,
    _UTF8_REQUIRED,
    _bad_parameter,
    _path_and_parameters,
    _utf8,
)
from .reply import Reply
from .wire import _Disconnect, _Wire

if TYPE_CHECKING:
    from .server import CaptureServer

_MAX_COMMAND = 4096
_DATA_PIECE = 1 << 16


class _Session:
    """One client connection: the SMTP (or LMTP) dialogue and its transaction state."""

    def __init__(self, capture: CaptureServer, wire: _Wire) -> None:
        self.capture = capture
        self.wire = wire
        self.greeted = False
        self.tls = False
        self.user: str | None = None
        self.transaction: CapturedMessage | None = None
        self.chunks: bytearray | None = None  # BDAT data so far; None when too large
        self.chunked = False  # whether BDAT was used in this transaction

    # ------------------------------------------------------------------ replies and cues

    def reply(self, code: int, text: str) -> None:
        self.wire.send(f"{code} {text}")
        if code == 421:
            raise _Disconnect  # 421 announces that the server closes the connection

    def cue(self, step: str) -> Reply | None:
        """Drop the connection if told to at ``step``; else the failure to give there, if any."""
        if self.capture.drop_at == step:
            raise _Disconnect
        return self.capture.fail.get(step)

    # ------------------------------------------------------------------ the dialogue

    def run(self) -> None:
        capture = self.capture
        greeting_failure = self.cue("connect")
        if greeting_failure is not None:
            self.wire.send(f"{greeting_failure[0]} {greeting_failure[1]}")
        else:
            kind = "LMTP" if capture.lmtp else "ESMTP"
            self.wire.send(f"220 {capture.hostname} {kind} smtp-proto capture server")
        while True:
            text = self.read_line()
            if text is None:
                self.reply(500, "5.5.2 Line too long")
                continue
            verb, _, argument = text.partition(" ")
            verb = verb.upper()
            if greeting_failure is not None and verb != "QUIT":
                self.reply(503, "5.5.1 No service")
                continue
            if verb != "BDAT" and (failure := self.cue(verb)) is not None:
                self.reply(*failure)
                continue
            handler = getattr(self, f"do_{verb.lower()}", None) if verb.isalpha() else None
            if handler is None:
                self.reply(502, "5.5.2 Command not implemented")
            else:
                handler(argument)

    def read_line(self) -> str | None:
        """The next command (or AUTH response) line, decoded; ``None`` if it was too long
        (then read to its end and dropped)."""
        line = self.wire.readline(_MAX_COMMAND)
        if line.endswith(b"\n"):
            return line.decode("utf-8", "replace").rstrip("\r\n")
        while not self.wire.readline(_MAX_COMMAND).endswith(b"\n"):
            pass
        return None

    def reset(self) -> None:
        self.transaction = None
        self.chunks = None
        self.chunked = False

    def do_ehlo(self, argument: str, *, lmtp: bool = False) -> None:
        capture = self.capture
        if lmtp != capture.lmtp:
            self.reply(500, f"5.5.1 {'LHLO' if capture.lmtp else 'EHLO'} expected")
            return
        self.reset()
        self.greeted = True
        lines = [
            capture.hostname,
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            f"SIZE {capture.size_limit}",
            "DSN",
            "CHUNKING",
            "ENHANCEDSTATUSCODES",
        ]
        if capture.tls_context is not None and not self.tls:
            lines.append("STARTTLS")
        if capture.credentials is not None and self.user is None:
            lines.append("AUTH PLAIN LOGIN")
        self.wire.send(*(f"250-{line}" for line in lines[:-1]), f"250 {lines[-1]}")

    def do_lhlo(self, argument: str) -> None:
        self.do_ehlo(argument, lmtp=True)

    def do_helo(self, argument: str) -> None:
        if self.capture.lmtp:
            self.reply(500, "5.5.1 LHLO expected")
            return
        self.reset()
        self.greeted = True
        self.reply(250, self.capture.hostname)

    def do_starttls(self, argument: str) -> None:
        context = self.capture.tls_context
        if context is None or self.tls:
            self.reply(502, "5.5.1 STARTTLS not available")
            return
        self.reply(220, "2.0.0 Ready to start TLS")
        if self.wire.buffer:
            raise _Disconnect  # commands sent before TLS: injected, never to be run
        self.wire.sock = context.wrap_socket(self.wire.sock, server_side=True)
        self.tls = True
        self.greeted = False
        self.user = None
        self.reset()

    def do_auth(self, argument: str) -> None:
        if self.capture.credentials is None:
            self.reply(502, "5.5.1 AUTH not available")
            return
        if self.user is not None or self.transaction is not None:
            self.reply(503, "5.5.1 Already authenticated, or in a transaction")
            return
        mechanism, _, initial = argument.partition(" ")
        try:
            if mechanism.upper() == "PLAIN":
                decoded = self.answer("", initial).split(b"\0")
                if len(decoded) != 3:
                    raise ValueError("PLAIN needs three fields")
                user, password = decoded[1], decoded[2]
            elif mechanism.upper() == "LOGIN":
                user = self.answer("VXNlcm5hbWU6", initial)  # "Username:"
                password = self.answer("UGFzc3dvcmQ6", "")  # "Password:"
            else:
                self.reply(504, "5.5.4 Unrecognized authentication type")
                return
        except _Cancelled:
            self.reply(501, "5.7.0 Authentication cancelled")
            return
        except ValueError:
            self.reply(501, "5.5.2 Cannot decode the response")
            return
        expected = self.capture.credentials.get(user.decode("utf-8", "replace"))
        if expected is not None and hmac.compare_digest(expected.encode("utf-8"), password):
            self.user = user.decode("utf-8")
            self.reply(235, "2.7.0 Authentication successful")
        else:
            self.reply(535, "5.7.8 Authentication credentials invalid")

    def answer(self, challenge: str, initial: str) -> bytes:
        """The client's base64 response: the initial one if sent, else one to a 334."""
        if not initial:
            self.wire.send(f"334 {challenge}")
            line = self.read_line()
            if line is None:
                raise ValueError("response too long")
            initial = line.strip()
        if initial == "*":
            raise _Cancelled
        if initial == "=":
            return b""
        try:
            return base64.b64decode(initial, validate=True)
        except binascii.Error as exc:
            raise ValueError(str(exc)) from None

    def do_mail(self, argument: str) -> None:
        if not self.greeted:
            self.reply(503, f"5.5.1 {'LHLO' if self.capture.lmtp else 'EHLO/HELO'} first")
            return
        if self.transaction is not None:
            self.reply(503, "5.5.1 Nested MAIL command")
            return
        parsed = _path_and_parameters(argument[5:]) if argument[:5].upper() == "FROM:" else None
        if parsed is None:
            self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
            return
        sender, parameters = parsed
        refusal = _bad_parameter(parameters, _MAIL_PARAMETERS)
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.upper() == "SIZE" and not (value.isascii() and value.isdigit()):
                refusal = (501, "5.5.4 Bad SIZE parameter")
            elif name.upper() == "SIZE" and int(value) > self.capture.size_limit:
                refusal = (552, "5.3.4 Message size exceeds fixed limit")
        if not sender.isascii() and not _utf8(parameters):
            refusal = _UTF8_REQUIRED
        if refusal is not None:
            self.reply(*refusal)
            return
        self.reset()
        self.transaction = CapturedMessage(
            sender, mail_options=parameters, tls=self.tls, auth_user=self.user
        )
        self.chunks = bytearray()
        self.reply(250, "2.1.0 Ok")

    def do_rcpt(self, argument: str) -> None:
        transaction = self.transaction
        if transaction is None:
            self.reply(503, "5.5.1 MAIL first")
            return
        parsed = _path_and_parameters(argument[3:]) if argument[:3].upper() == "TO:" else None
        if parsed is None:
            self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
            return
        recipient, parameters = parsed
        refusal = _bad_parameter(parameters, _RCPT_PARAMETERS) or self.capture.refuse.get(recipient)
        if not recipient.isascii() and not _utf8(transaction.mail_options):
            refusal = _UTF8_REQUIRED
        if refusal is not None:
            self.reply(*refusal)
            return
        transaction.rcpt_tos.append(recipient)
        transaction.rcpt_options.append(parameters)
        self.reply(250, "2.1.5 Ok")

    def do_data(self, argument: str) -> None:
        transaction = self.transaction
        if transaction is None or not transaction.rcpt_tos:
            self.reply(503 if transaction is None else 554, "5.5.1 No valid recipients")
            return
        if self.chunked:
            self.reply(503, "5.5.1 DATA after BDAT")
            return
        self.reply(354, "End data with <CR><LF>.<CR><LF>")
        self.finish(self.read_data())

    def read_data(self) -> bytearray | None:
        """The message after DATA, dots unstuffed; ``None`` if it exceeds the size limit."""
        data: bytearray | None = bytearray()
        at_line_start = True
        limit = self.capture.size_limit
        while True:
            piece = self.wire.readline(_DATA_PIECE)
            if at_line_start:
                if piece == b".\r\n":
                    return data
                if piece.startswith(b"."):
                    piece = piece[1:]
            at_line_start = piece.endswith(b"\n")
            if data is not None:
                data += piece
                if len(data) > limit:
                    data = None

    def do_bdat(self, argument: str) -> None:
        size, _, last = argument.partition(" ")
        if not (size.isascii() and size.isdigit()) or last.upper() not in ("", "LAST"):
            self.reply(501, "5.5.4 Syntax: BDAT size [LAST]")
            raise _Disconnect  # the chunk's length is unknown: the stream cannot be followed
        failure = self.cue("BDAT")
        transaction = self.transaction
        usable = transaction is not None and transaction.rcpt_tos and failure is None
        if (
            usable
            and self.chunks is not None
            and len(self.chunks) + int(size) > (self.capture.size_limit)
        ):
            self.chunks = None
        self.wire.read_into(int(size), self.chunks if usable else None)
        self.chunked = True
        if transaction is None or not transaction.rcpt_tos:
            self.reply(503, "5.5.1 No valid recipients")
        elif failure is not None:
            self.reset()  # RFC 3030: a failed chunk ends the transaction
            self.reply(*failure)
        elif last:
            transaction.chunked = True
            self.finish(self.chunks)
        else:
            self.reply(250, f"2.0.0 {size} octets received")

    def finish(self, data: bytearray | None) -> None:
        """The end of a message: capture it and reply (once per recipient for LMTP)."""
        transaction = self.transaction
        assert transaction is not None
        self.reset()
        failure = self.cue("body")
        if data is None:
            failure = (552, "5.3.4 Message size exceeds fixed limit")
        transaction.data = bytes(data or b"")
        if not self.capture.lmtp:
            if failure is None:
                number = self.capture._add(transaction)
                failure = (250, f"2.0.0 Ok: queued as {number}")
            self.reply(*failure)
            return
        recipients = transaction.rcpt_tos
        replies = [
            failure or self.capture.lmtp_failures.get(recipient) or (250, "2.0.0 Delivered")
            for recipient in recipients
        ]
        delivered = [i for i, (code, _) in enumerate(replies) if 200 <= code < 300]
        if delivered:
            transaction.rcpt_tos = [recipients[i] for i in delivered]
            transaction.rcpt_options = [transaction.rcpt_options[i] for i in delivered]
            self.capture._add(transaction)
        for recipient, (code, text) in zip(recipients, replies, strict=True):
            self.reply(code, f"{text} <{recipient}>")

    def do_rset(self, argument: str) -> None:
        self.reset()
        self.reply(250, "2.0.0 Ok")

    def do_noop(self, argument: str) -> None:
        self.reply(250, "2.0.0 Ok")

    def do_vrfy(self, argument: str) -> None:
        self.reply(252, "2.5.0 Cannot VRFY user, but will accept the message")

    def do_quit(self, argument: str) -> None:
        self.wire.send("221 2.0.0 Bye")
        raise _Disconnect


class _Cancelled(Exception):
    """The client cancelled an AUTH exchange with ``*``."""
