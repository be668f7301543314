"""One client connection's SMTP (or LMTP) dialogue: the command-handling state machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from .auth import _MECHANISMS, _Refused
from .message import CapturedMessage
from .parameters import (
    _MAIL_PARAMETERS,
    _RCPT_PARAMETERS,
    _path_and_parameters,
    _unsupported,
    _utf8,
)
from .reply import Reply
from .wire import _Disconnect, _Wire

if TYPE_CHECKING:
    import ssl

    from .service import _Service

_MAX_COMMAND = 4096
_DATA_PIECE = 1 << 16


class _Session:
    """One client connection: the SMTP (or LMTP) dialogue and its transaction state.

    What the server does is ``service``'s configuration.  The methods a test server
    overrides to misbehave on purpose: `cue`, `extensions`, `message_limit`, `ready_for_tls`,
    `tls_failed`, `read_data` and `final_replies`.
    """

    def __init__(self, service: _Service, wire: _Wire) -> None:
        self.service = service
        self.wire = wire
        self.greeted = False
        self.esmtp = False  # greeted with EHLO (LHLO), not HELO
        self.user: str | None = None
        self.transaction: CapturedMessage | None = None
        self.chunks: bytearray | None = None  # BDAT data so far; None when too large
        self.chunked = False  # whether BDAT chunks were accepted in this transaction

    # ------------------------------------------------------------------ replies and cues

    @staticmethod
    def encode(code: int, text: str) -> bytes:
        """A reply on the wire: one line for each line of ``text``."""
        *more, last = text.split("\n")
        lines = [f"{code}-{line}\r\n" for line in more] + [f"{code} {last}\r\n"]
        return "".join(lines).encode("utf-8", "surrogateescape")

    def reply(self, code: int, text: str) -> None:
        """Send a reply; a 421 also ends the session."""
        self.wire.send(self.encode(code, text))
        if code == 421:
            raise _Disconnect  # 421 announces that the server closes the connection

    def text(self, name: str, **fields: object) -> Reply:
        """One of the server's own replies, by name, with its fields filled in."""
        code, text = self.service.texts[name]
        return code, text.format(**fields)

    def say(self, name: str, **fields: object) -> None:
        self.reply(*self.text(name, **fields))

    def cue(self, step: str) -> Reply | None:
        """What the server was told to do at ``step``: the reply to give instead of the
        usual, if any.  An action (close, reset, stall) is taken here and ends the session."""
        fault = self.service.fail.get(step)
        if not isinstance(fault, str):
            return fault
        if fault == "close":
            self.wire.close()
        elif fault == "reset":
            self.wire.reset()
        else:
            self.wire.stall()
        raise _Disconnect

    def cue_message(self) -> None:
        """The ``"message"`` step, once the message is on its way: a reply given there ends
        the session, as the rest of the message could not be told from commands."""
        failure = self.cue("message")
        if failure is not None:
            self.reply(*failure)
            raise _Disconnect

    # ------------------------------------------------------------------ the dialogue

    def run(self) -> None:
        service = self.service
        if service.implicit_tls and service.tls_context is not None:
            self.start_tls(service.tls_context)
        refusal = self.cue("connect")
        protocol = "LMTP" if service.lmtp else "ESMTP"
        greeting = self.text("greeting", hostname=service.hostname, protocol=protocol)
        self.reply(*(refusal or greeting))
        while True:
            line = self.command_line()
            if line is None:
                self.say("too-long")
                continue
            service.record_command(line.rstrip("\r\n"))
            if not line.endswith("\r\n"):
                self.say("bare-lf")
                continue
            verb, _, argument = line[:-2].partition(" ")
            verb = verb.upper()
            if refusal is not None and verb != "QUIT":
                self.say("no-service")
                continue
            if verb != "BDAT" and (failure := self.cue(verb)) is not None:
                self.reply(*failure)
                continue
            handler = getattr(self, f"do_{verb.lower()}", None) if verb.isalpha() else None
            if handler is None:
                self.say("unknown")
            else:
                handler(argument)

    def command_line(self) -> str | None:
        """The next line (a command or an AUTH response), decoded, with its line end; None if
        it was too long (then read to its end and dropped).  `_Disconnect` at EOF."""
        line = self.wire.readline(_MAX_COMMAND)
        if line.endswith(b"\n"):
            return line.decode("utf-8", "surrogateescape")
        while len(line) == _MAX_COMMAND:
            line = self.wire.readline(_MAX_COMMAND)
            if line.endswith(b"\n"):
                return None
        raise _Disconnect

    def reset(self) -> None:
        self.transaction = None
        self.chunks = None
        self.chunked = False

    def extensions(self) -> list[str]:
        """The keywords the EHLO (LHLO) reply advertises now."""
        service = self.service
        keywords = list(service.extensions)
        names = {keyword.split()[0].upper() for keyword in keywords if keyword.strip()}
        if service.credentials is not None and "AUTH" not in names:
            keywords.append(" ".join(["AUTH", *service.auth_mechanisms]))
        if service.tls_context is not None and "STARTTLS" not in names:
            keywords.append("STARTTLS")
        if self.wire.tls:
            keywords = [keyword for keyword in keywords if keyword.strip().upper() != "STARTTLS"]
        return keywords

    def size_limit(self) -> int | None:
        """The SIZE limit advertised now (RFC 1870), if any: the one enforced."""
        for keyword in self.extensions():
            name, _, value = keyword.partition(" ")
            if name.upper() == "SIZE" and value.strip().isdecimal() and int(value) > 0:
                return int(value)
        return None

    def message_limit(self) -> int | None:
        """How large a message may be: the SIZE limit advertised now."""
        return self.size_limit()

    def do_ehlo(self, argument: str, verb: str = "EHLO") -> None:
        lmtp = self.service.lmtp
        if (verb == "LHLO") != lmtp:
            self.say("wrong-hello", hello="LHLO" if lmtp else "EHLO")
            return
        if not argument.strip():
            self.say("hello-syntax", verb=verb)
            return
        self.reset()
        self.greeted, self.esmtp = True, verb != "HELO"
        if self.esmtp:
            self.reply(250, "\n".join([self.service.hostname, *self.extensions()]))
        else:
            self.say("helo", hostname=self.service.hostname)

    def do_lhlo(self, argument: str) -> None:
        self.do_ehlo(argument, "LHLO")

    def do_helo(self, argument: str) -> None:
        self.do_ehlo(argument, "HELO")

    def do_starttls(self, argument: str) -> None:
        context = self.service.tls_context
        if context is None:
            self.say("no-tls")
        elif self.wire.tls:
            self.say("tls-active")
        elif argument.strip():
            self.say("starttls-syntax")
        else:
            self.ready_for_tls()
            self.start_tls(context)
            self.greeted = self.esmtp = False
            self.user = None
            self.reset()

    def start_tls(self, context: ssl.SSLContext) -> None:
        """The TLS handshake, server side: at the connection's start (implicit TLS) or after
        the 220 to STARTTLS."""
        try:
            self.wire.start_tls(context)
        except OSError as exc:
            self.tls_failed(exc)

    def ready_for_tls(self) -> None:
        """Tell the client to start TLS: the 220 to STARTTLS."""
        self.say("tls-ready")

    def tls_failed(self, error: OSError) -> NoReturn:
        """The TLS handshake failed (the client refused it or went away): the end."""
        raise _Disconnect from error

    def do_auth(self, argument: str) -> None:
        service = self.service
        if service.credentials is None:
            self.say("no-auth")
            return
        if not self.esmtp:
            self.say("auth-before-ehlo")
            return
        if self.user is not None or self.transaction is not None:
            self.say("auth-again" if self.user is not None else "auth-in-transaction")
            return
        mechanism, _, initial = argument.strip().partition(" ")
        if mechanism.upper() not in service.auth_mechanisms:
            self.say("auth-mechanism")
            return
        try:
            user = _MECHANISMS[mechanism.upper()](self, initial.strip() or None)
        except _Refused as refusal:
            self.say(refusal.name, **refusal.fields)
            return
        if user is None:
            self.say("auth-failed")
            return
        self.user = user
        service.record_login(user)
        self.say("auth-ok")

    # ------------------------------------------------------------------ the transaction

    def path(self, argument: str, keyword: str, syntax: str) -> tuple[str, list[str]] | None:
        """The address and parameters of MAIL (``keyword`` ``"FROM:"``) or RCPT (``"TO:"``);
        None, after the ``syntax`` reply, if they are malformed."""
        parsed = _path_and_parameters(argument, keyword)
        if parsed is None:
            self.say(syntax)
        return parsed

    def utf8_refusal(self, address: str, mail_parameters: list[str]) -> Reply | None:
        """The refusal of an address that is non-ASCII without SMTPUTF8, if it is."""
        if address.isascii() or _utf8(mail_parameters):
            return None
        return self.text("utf8-required")

    def unsupported(self, parameters: list[str], known: frozenset[str]) -> Reply | None:
        parameter = _unsupported(parameters, known)
        if parameter is None:
            return None
        return self.text("unsupported-parameter", parameter=parameter)

    def size_refusal(self, parameters: list[str]) -> Reply | None:
        """The refusal of a bad or too large ``SIZE=``, if any."""
        limit = self.size_limit()
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.upper() != "SIZE":
                continue
            if not (value.isascii() and value.isdigit()):
                return self.text("bad-size")
            if limit is not None and int(value) > limit:
                return self.text("too-large")
        return None

    def do_mail(self, argument: str) -> None:
        if not self.greeted:
            self.say("hello-first", hello="LHLO" if self.service.lmtp else "EHLO/HELO")
            return
        if self.transaction is not None:
            self.say("nested-mail")
            return
        if (parsed := self.path(argument, "FROM:", "mail-syntax")) is None:
            return
        sender, parameters = parsed
        refusal = (
            self.utf8_refusal(sender, parameters)
            or self.size_refusal(parameters)
            or self.unsupported(parameters, _MAIL_PARAMETERS)
        )
        if refusal is not None:
            self.reply(*refusal)
            return
        self.reset()
        self.transaction = CapturedMessage(
            sender, mail_options=parameters, tls=self.wire.tls, auth_user=self.user
        )
        self.chunks = bytearray()
        self.say("mail-ok")

    def do_rcpt(self, argument: str) -> None:
        transaction = self.transaction
        if transaction is None:
            self.say("mail-first")
            return
        if (parsed := self.path(argument, "TO:", "rcpt-syntax")) is None:
            return
        recipient, parameters = parsed
        refusal = (
            self.utf8_refusal(recipient, transaction.mail_options)
            or self.unsupported(parameters, _RCPT_PARAMETERS)
            or self.service.refusal(recipient)
        )
        if refusal is not None:
            self.reply(*refusal)
            return
        transaction.rcpt_tos.append(recipient)
        transaction.rcpt_options.append(parameters)
        self.say("rcpt-ok")

    def problem(self) -> Reply | None:
        """Why a message cannot come now, if it cannot."""
        if self.transaction is None:
            return self.text("mail-first")
        if not self.transaction.rcpt_tos:
            return self.text("no-recipients")
        return None

    def do_data(self, argument: str) -> None:
        problem = self.problem()
        if self.chunked:
            problem = self.text("data-after-bdat")
        elif argument.strip():
            problem = self.text("data-syntax")
        if problem is not None:
            self.reply(*problem)
            return
        self.say("go-ahead")
        self.cue_message()
        self.finish(self.read_data())

    def read_data(self) -> bytearray | None:
        """The message after DATA, dots unstuffed; ``None`` if it exceeds the size limit."""
        data: bytearray | None = bytearray()
        at_line_start = True
        limit = self.message_limit()
        while True:
            piece = self.wire.readline(_DATA_PIECE)
            if not piece:
                raise _Disconnect
            if at_line_start:
                if piece == b".\r\n":
                    return data
                if piece.startswith(b"."):
                    piece = piece[1:]
            at_line_start = piece.endswith(b"\n")
            if data is not None:
                data += piece
                if limit is not None and len(data) > limit:
                    data = None

    def do_bdat(self, argument: str) -> None:
        if not any(keyword.upper() == "CHUNKING" for keyword in self.extensions()):
            self.say("unknown")
            return
        size_text, _, last = argument.partition(" ")
        if not (size_text.isascii() and size_text.isdigit()) or last.upper() not in ("", "LAST"):
            self.say("bdat-syntax")
            raise _Disconnect  # the chunk's length is unknown: the stream cannot be followed
        size = int(size_text)
        failure = self.cue("BDAT")
        problem = self.problem()
        sink = self.chunks if problem is None and failure is None else None
        limit = self.message_limit()
        if sink is not None and limit is not None and len(sink) + size > limit:
            self.chunks = sink = None
        self.wire.read_into(size, sink)
        if problem is not None:
            self.reply(*problem)
        elif failure is not None:
            self.reset()  # RFC 3030: a failed chunk ends the transaction
            self.reply(*failure)
        else:
            first, self.chunked = not self.chunked, True
            if first:
                self.cue_message()
            if not last:
                self.say("chunk-ok", size=size)
            else:
                assert self.transaction is not None
                self.transaction.chunked = True
                self.finish(self.chunks)

    def finish(self, data: bytearray | None) -> None:
        """The end of a message: capture it where it is delivered, then the final reply (for
        LMTP, one for each recipient)."""
        transaction = self.transaction
        assert transaction is not None
        self.reset()
        failure = self.cue("body")
        if data is None:
            failure = self.text("too-large")
        transaction.data = bytes(data or b"")
        replies = self.final_replies(transaction.rcpt_tos, failure)
        delivered = [i for i, (code, _) in enumerate(replies) if 200 <= code < 300]
        if delivered:
            if self.service.lmtp:
                transaction.rcpt_tos = [transaction.rcpt_tos[i] for i in delivered]
                transaction.rcpt_options = [transaction.rcpt_options[i] for i in delivered]
            self.service.add(transaction)
        instead = self.cue("captured")
        for reply in replies if instead is None else [instead] * len(replies):
            self.reply(*reply)

    def final_replies(self, recipients: list[str], failure: Reply | None) -> list[Reply]:
        """The replies to a message: one, or for LMTP one for each recipient.  ``failure``, if
        any, for all; else delivered (for LMTP, unless ``lmtp_failures`` says otherwise)."""
        service = self.service
        if not service.lmtp:
            return [failure or self.text("queued", number=service.queue_id())]
        replies = []
        for recipient in recipients:
            refusal = failure or service.lmtp_failures.get(recipient)
            if refusal is None:
                replies.append(self.text("delivered", recipient=recipient))
            else:
                replies.append((refusal[0], f"{refusal[1]} <{recipient}>"))
        return replies

    # ------------------------------------------------------------------ the rest

    def do_rset(self, argument: str) -> None:
        self.reset()
        self.say("ok")

    def do_noop(self, argument: str) -> None:
        self.say("ok")

    def do_vrfy(self, argument: str) -> None:
        self.say("cannot-vrfy" if argument.strip() else "vrfy-syntax")

    def do_expn(self, argument: str) -> None:
        self.say("no-expn")

    def do_help(self, argument: str) -> None:
        verbs = sorted(name[3:].upper() for name in dir(self) if name.startswith("do_"))
        self.say("help", verbs=" ".join(verbs))

    def do_quit(self, argument: str) -> None:
        self.say("bye")
        raise _Disconnect
