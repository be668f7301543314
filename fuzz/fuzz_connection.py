"""Fuzz target: whole ``Client`` sessions (and so ``ClientConnection``) against a fuzzed server.

The input is read as a script.  A few header bytes choose SMTP or LMTP, the debug level,
``chunking`` and whether (and at which I/O request) the network fails once.  Then, op after
op, a byte picks a client operation (greeting, EHLO/HELO, login, AUTH with each mechanism,
sendmail and send_message with PIPELINING and CHUNKING on or off, STARTTLS, the simple
commands, putcmd/getreply, QUIT, reconnecting...) and its arguments; message bodies are
bytes, text, file objects (seekable or not) or iterables, small or over one chunk, and some
sources fail on purpose.  Whenever the client reads, the server's bytes come from the input
too: whole canned replies (greetings, EHLO replies with chosen extensions,
250/354/334/235/4xx/5xx/421, SCRAM messages computed for the client's nonce, replies for a
whole pipelined group), multi-line replies, raw garbage or EOF, handed over in arbitrary
pieces.  When the input runs out the server hangs up.

Allowed outcomes of an operation: a result of the documented type, or an exception of the
library (``SMTPException`` and subclasses, and ``LocalProtocolError``, a ``ValueError``);
also ``UnicodeEncodeError`` for a ``str`` message with non-ASCII characters (``smtplib``
raises it there too) and the transport's own
``OSError`` from the TLS handshake (re-raised, as ``smtplib`` lets ``ssl`` errors through)
and a message source's own exception (the connection must then be as it was if the source
failed before DATA, and closed if it failed in the middle of the body).  Anything else
(``AssertionError``, ``IndexError``, ``KeyError``, ``TypeError``, ...) is a finding, as are
these broken invariants:

* the operation ends (no endless stream of I/O requests);
* no I/O on a connection after the operation asked the transport to close it;
* after ``SMTPServerDisconnected`` (protocol errors included) or a close, the client is
  disconnected;
* an operation that returns normally leaves the connection ready, with nothing pending
  except the commands sent by ``putcmd`` and not yet read by ``getreply``;
* an operation refused with ``LocalProtocolError`` before it wrote anything leaves the
  connection as it was (no command queued for a reply that will never come);
* every CR and LF the client writes is part of a CRLF (commands and bodies alike).

Run: ``python fuzz/fuzz_connection.py [libFuzzer options] [corpus_dir]``.  Without atheris
the module only provides ``check(data)``, which the test suite replays over the seed corpus.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.message
import hashlib
import hmac
import io
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any

from _input import Input  # fuzz/ is on sys.path: run as a script, or loaded by the tests

from smtp_proto import sasl
from smtp_proto.body import PIECE_SIZE
from smtp_proto.client import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS, Client
from smtp_proto.connection import State
from smtp_proto.driving import drive
from smtp_proto.errors import LocalProtocolError, SMTPException, SMTPServerDisconnected

MAX_OPERATIONS = 24
MAX_REQUESTS = 5000  # I/O requests one operation may make before it counts as a hang
SCRAM_NONCE = "fuzzclientnonce"

ADDRESSES = (
    "alice@example.org",
    "<>",
    "Bob Example <bob@example.org>",
    "üser@example.org",
    "carol@example.org\r\nRCPT TO:<evil@example.org>",
    "dave@example.org\0",
    "",
    '"quoted local"@example.org',
    "<erin@example.org>",
    "frank@[192.0.2.1]",
)
MAIL_OPTIONS = ((), ("SMTPUTF8",), ("BODY=8BITMIME",), ("SMTPUTF8", "BODY=8BITMIME"), ("x\r\n",))
RCPT_OPTIONS = ((), ("NOTIFY=SUCCESS,FAILURE",), ("ORCPT=rfc822;a@example.org",))
CREDENTIALS = (
    ("user", "pencil"),
    ("üser", "pässwörd"),
    ("a,b=c", "secret"),
    ("nul\0user", "x"),
    ("", ""),
)
NAMES = ("", "client.example", "bad name\r\n", "ünicode.example")
VERBS = ("NOOP", "DATA", "STARTTLS", "QUIT", "RSET", "HELO x", "XCLIENT", "BDAT 0 LAST", "")
REPLY_CODES = (
    211,
    214,
    220,
    221,
    235,
    250,
    251,
    252,
    334,
    354,
    421,
    450,
    451,
    452,
    500,
    501,
    502,
    503,
    504,
    530,
    534,
    535,
    550,
    551,
    552,
    553,
    554,
    555,
)
EXTENSIONS = (
    "PIPELINING",
    "CHUNKING",
    "SIZE 10485760",
    "AUTH PLAIN LOGIN CRAM-MD5",
    "AUTH=LOGIN",
    "STARTTLS",
    "SMTPUTF8",
    "8BITMIME",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "AUTH SCRAM-SHA-256 XOAUTH2 OAUTHBEARER",
    "SIZE",
    "BINARYMIME",
    "SIZE 100",
    "SIZE nonsense",
    "AUTH",
)
RAW_OPERATIONS = ("docmd", "putcmd", "getreply", "greeting")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class Finding(AssertionError):
    """A broken invariant of the session (as opposed to an exception from the library)."""


class SourceError(Exception):
    """Raised by a message source (the caller's file object or iterable) on purpose."""


class _Unseekable:
    """A binary file object that can only be read (a pipe, a socket): size unknown."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def read(self, size: int, /) -> bytes:
        return self._file.read(size)


# ------------------------------------------------------------------ the fuzzed server


def reply(code: int, *lines: str) -> bytes:
    """A well-formed reply."""
    texts = list(lines) or [""]
    head = [f"{code}-{text}\r\n" for text in texts[:-1]]
    return ("".join(head) + f"{code} {texts[-1]}\r\n").encode("utf-8")


class Server:
    """One connection's server side: reads what the client wrote, answers from the input."""

    def __init__(self, source: Input, session: Session) -> None:
        self.source = source
        self.session = session
        self.outgoing = b""
        self.hung_up = False
        self.written = b""  # everything the client wrote on this connection
        self.closed = False
        self.tls = False
        self.last_server_first = b""

    # What the client wrote, as the server reads it.

    def client_wrote(self, data: bytes) -> None:
        self.written += data

    def last_line(self) -> bytes:
        lines = self.written.split(b"\r\n")
        return lines[-2] if len(lines) >= 2 else b""

    # What the server sends.

    def read(self) -> bytes:
        """The next piece of the server's output (``b""`` once it hung up)."""
        if not self.outgoing and not self.hung_up:
            self.outgoing = self.produce()
            if not self.outgoing:
                self.hung_up = True
        if not self.outgoing:
            return b""
        cut = self.source.byte()
        size = len(self.outgoing) if cut == 0 else 1 + cut % len(self.outgoing)
        piece, self.outgoing = self.outgoing[:size], self.outgoing[size:]
        return piece

    def produce(self) -> bytes:
        source = self.source
        if source.exhausted:
            return b""
        choice = source.byte() % 24
        if choice == 0:
            return reply(220, "fuzz.example ESMTP ready")
        if choice == 1:
            return self.ehlo_reply(long_size=False)
        if choice in (2, 3):
            return reply(250, source.pick(("OK", "2.0.0 OK", "2.1.5 Recipient OK", "")))
        if choice == 4:
            return reply(354, "End data with <CR><LF>.<CR><LF>")
        if choice == 5:
            return reply(334, base64.b64encode(source.field()).decode("ascii"))
        if choice == 6:
            return b"334 " + source.field().translate(None, b"\r\n") + b"\r\n"
        if choice == 7:
            return reply(235, "2.7.0 Authentication successful")
        if choice == 8:
            return reply(221, "2.0.0 Bye")
        if choice == 9:
            return reply(421, "4.3.2 Service shutting down")
        if choice == 10:
            return reply(source.pick(REPLY_CODES), "4.0.0 or 5.0.0 something")
        if choice == 11:
            return source.field() or b"\r\n"  # anything at all
        if choice == 12:
            code = source.pick(REPLY_CODES)
            return reply(code, *[f"line {index}" for index in range(1 + source.byte() % 4)])
        if choice == 13:
            return reply(220, "2.0.0 Ready to start TLS")
        if choice == 14:
            return reply(334, base64.b64encode(self.scram_server_first()).decode("ascii"))
        if choice == 15:
            return reply(334, base64.b64encode(self.scram_server_final()).decode("ascii"))
        if choice == 16:
            # Replies for a whole pipelined group at once.
            codes = [source.pick((250, 250, 251, 354, 550, 452, 421)) for _ in range(5)]
            return b"".join(reply(code, "pipelined") for code in codes[: 1 + source.byte() % 5])
        if choice == 17:
            return self.ehlo_reply(long_size=True)
        if choice == 18:
            return reply(250, "fuzz.example") + reply(250, "extra unsolicited reply")
        if choice == 19:
            return b"250 bare LF line end\n"
        if choice == 20:
            return reply(334, "")
        if choice == 21:
            return reply(source.pick(REPLY_CODES), source.field().decode("latin-1"))
        if choice == 22:
            return reply(source.pick((250, 450, 550, 452, 421)), "per-recipient")
        return reply(source.pick(REPLY_CODES), "x")

    def ehlo_reply(self, long_size: bool) -> bytes:
        mask = self.source.byte() | self.source.byte() << 8
        lines = ["fuzz.example greets you"]
        lines += [extension for bit, extension in enumerate(EXTENSIONS) if mask >> bit & 1]
        if long_size:
            lines.append("SIZE " + "9" * (1 + 40 * self.source.byte()))
        return reply(250, *lines)

    def scram_server_first(self) -> bytes:
        suffix = self.source.field().translate(None, b",\r\n\0")
        salt = base64.b64encode(self.source.field() or b"salt")
        iterations = 1 + self.source.byte() % 8
        message = b"r=" + SCRAM_NONCE.encode() + suffix + b",s=" + salt + b",i=%d" % iterations
        self.last_server_first = message
        return message

    def scram_server_final(self) -> bytes:
        """The true server signature for the exchange so far (or junk if there is none)."""
        try:
            client_final = base64.b64decode(self.last_line(), validate=True)
            without_proof = client_final.partition(b",p=")[0]
            attributes = dict(
                part.split(b"=", 1) for part in self.last_server_first.split(b",") if b"=" in part
            )
            salt = base64.b64decode(attributes[b"s"])
            iterations = int(attributes[b"i"])
            user, password = self.session.scram_credentials
            bare = f"n={sasl.saslprep(user).replace('=', '=3D').replace(',', '=2C')}"
            prepared_password = sasl.saslprep(password).encode()
        except (binascii.Error, KeyError, ValueError, sasl.SASLError):
            return b"v=" + base64.b64encode(b"no exchange to sign")
        bare += f",r={SCRAM_NONCE}"
        salted = hashlib.pbkdf2_hmac("sha256", prepared_password, salt, iterations)
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        auth_message = b",".join([bare.encode(), self.last_server_first, without_proof])
        signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return b"v=" + base64.b64encode(signature)


# ------------------------------------------------------------------ the session


class Session:
    """One client object, its connections, and the checks between operations."""

    def __init__(self, source: Input) -> None:
        self.source = source
        header = source.byte()
        self.lmtp = bool(header & 1)
        self.client = Client(
            local_hostname=None if header & 2 else "client.example", lmtp=self.lmtp
        )
        self.client.debuglevel = (header >> 2) % 4 if header & 0x10 else 0
        self.client.chunking = bool(header & 0x20)
        self.fail_at = source.byte() if header & 0x40 else 0
        self.scram_credentials = CREDENTIALS[0]
        self.unread_putcmds = 0
        self.non_ascii_text_message = False
        self.source_failure: SourceError | None = None
        self.source_failure_late = False
        self.body_started = False
        self.idle_before = False
        self.server = self.connect()

    def connect(self) -> Server:
        self.client.close()
        self.client.connecting("fuzz.example", 25)
        self.requests = 0
        return Server(self.source, self)

    # The transport.

    def perform(self, request: Any) -> Any:
        server = self.server
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            raise Finding(f"operation still running after {MAX_REQUESTS} I/O requests")
        if request is CLOSE:
            server.closed = True
            return None
        if request is LOCAL_HOSTNAME:
            return "fuzz.example"
        if server.closed:
            raise Finding(f"I/O request {request!r} after the connection was closed")
        if self.requests == self.fail_at:
            self.injected = ConnectionResetError("injected network failure")
            self.injected_at = request
            raise self.injected
        if isinstance(request, bytes | memoryview):
            request = bytes(request)
            server.client_wrote(request)
            client = self.client
            in_body = client.is_connected and client.connection.state is State.BODY
            if in_body or b"BDAT " in request:
                self.body_started = True
            return None
        if request is RECEIVE:
            return server.read()
        if request is START_TLS:
            server.tls = True
            return None
        raise Finding(f"unknown I/O request {request!r}")

    def abort(self) -> None:
        self.server.closed = True

    def run(self, name: str, operation: Generator[Any, Any, Any]) -> tuple[bool, Any]:
        """Drive one operation: (True, result) or (False, the allowed exception)."""
        self.injected: OSError | None = None
        self.injected_at: Any = None
        server = self.server
        was_connected = self.client.is_connected
        self.body_started = False  # whether a message body began to go out in this operation
        before = self.snapshot()
        try:
            return True, drive(operation, self.perform, self.abort)
        except (SMTPException, LocalProtocolError) as exc:
            if isinstance(exc, SMTPServerDisconnected) and self.client.is_connected:
                raise Finding(f"{name}: {exc!r} raised but the client is still connected") from exc
            # Refused before anything was written: nothing may have changed either.
            silent = isinstance(exc, LocalProtocolError) and len(server.written) == before[0]
            if silent and self.snapshot()[1:] != before[1:]:
                raise Finding(
                    f"{name}: refused ({exc}) before writing anything, yet the connection "
                    f"changed from {before[1:]!r} to {self.snapshot()[1:]!r}"
                ) from exc
            return False, exc
        except UnicodeEncodeError as exc:
            if not self.non_ascii_text_message:
                raise
            return False, exc
        except SourceError as exc:
            if exc is not self.source_failure:
                raise
            # Documented: a source that cannot be read first leaves the connection usable;
            # one that fails later closes it (a truncated message is never ended).
            if self.source_failure_late and self.client.is_connected and self.body_started:
                raise Finding(f"{name}: the source failed mid-body, still connected") from exc
            if not self.source_failure_late and (
                self.client.is_connected != was_connected or (self.idle_before and not self.idle())
            ):
                raise Finding(f"{name}: the first read of the message failed, not idle") from exc
            return False, exc
        except OSError as exc:
            if exc is not self.injected or self.injected_at is not START_TLS:
                raise
            if self.client.is_connected:
                raise Finding(f"{name}: the TLS handshake failed, the client is connected") from exc
            return False, exc
        finally:
            if server.closed and self.client.is_connected and server is self.server:
                raise Finding(f"{name}: the transport was closed but the client is connected")
            bare = _BARE_CR_OR_LF.search(server.written)
            if bare is not None:
                raise Finding(f"{name}: bare CR or LF written: {server.written[-200:]!r}")

    def snapshot(self) -> tuple[int, State | None, tuple[Any, ...]]:
        """Bytes written so far, and the connection's state and pending commands."""
        client = self.client
        if not client.is_connected:
            return len(self.server.written), None, ()
        connection = client.connection
        return len(self.server.written), connection.state, connection.pending

    def idle(self) -> bool:
        """Connected, ready, and nothing pending but unread ``putcmd`` replies."""
        client = self.client
        if not client.is_connected:
            return False
        connection = client.connection
        return connection.state is State.READY and len(connection.pending) == self.unread_putcmds

    # The operations.

    def message(self) -> Any:
        """A message body: bytes, text, a file object or an iterable, small or large."""
        source = self.source
        kind = source.byte() % 10
        if kind == 0:
            return b"Subject: hi\r\n\r\nHello.\r\n.\r\n.. dots\r\n"
        if kind == 1:
            return source.field()
        if kind == 2:
            return source.field().decode("ascii", "replace").replace("\ufffd", "?")
        if kind == 3:
            self.non_ascii_text_message = True
            return "Subject: ünïcode\n\nnon-ASCII text"
        if kind == 4:
            return self.large_message()
        if kind == 5:
            return io.BytesIO(source.field())  # seekable: its size is known up front
        if kind == 6:
            data, size = source.field(), 1 + source.byte() % 64
            return (data[start : start + size] for start in range(0, len(data), size))
        if kind == 7:
            return _Unseekable(source.field())
        if kind == 8:
            return io.BytesIO(self.large_message())
        if kind == 9:
            return self.failing_message(late=bool(source.byte() & 1))
        return b""

    def large_message(self) -> bytes:
        """Larger than one chunk: the streamed DATA path and the BDAT window."""
        line = b"x" * 78 + b"\r\n" + b".\r\n"[: self.source.byte() % 4]
        return line * (PIECE_SIZE // len(line) + 1 + self.source.byte() % 3)

    def failing_message(self, late: bool) -> Iterator[bytes]:
        """An iterable that fails: at once (before DATA), or after a whole chunk was sent."""
        self.source_failure = SourceError("the message source failed")
        self.source_failure_late = late
        if late:
            # Two whole chunks: the first is sent, the second was read ahead (to know whether
            # the first is the last), the third is where the source fails.
            yield b"x" * 998 + b"\r\n"
            yield b"y" * (2 * PIECE_SIZE)
        raise self.source_failure

    def recipients(self) -> str | list[str]:
        count = self.source.byte() % 5
        if count == 4:
            return self.source.pick(ADDRESSES)
        return [self.source.pick(ADDRESSES) for _ in range(count)]

    def mechanism(self) -> tuple[str, Any]:
        source = self.source
        user, password = source.pick(CREDENTIALS)
        client = self.client
        client.user, client.password = user, password
        kind = source.byte() % 9
        try:
            if kind == 0:
                scram = sasl.ScramSHA256(user, password, max_iterations=8, nonce=SCRAM_NONCE)
                self.scram_credentials = (user, password)
                return scram.name, scram
            if kind == 1:
                return "XOAUTH2", sasl.XOAuth2(user, "token-" + password)
            if kind == 2:
                return "OAUTHBEARER", sasl.OAuthBearer(user, "token", "fuzz.example", 587)
            if kind == 3:
                return "PLAIN", sasl.Plain(user, password)
            if kind == 4:
                return "CRAM-MD5", sasl.CramMD5(user, password)
        except sasl.SASLError:
            return "PLAIN", client.auth_plain
        authobjects: tuple[tuple[str, Callable[..., Any]], ...] = (
            ("PLAIN", client.auth_plain),
            ("LOGIN", client.auth_login),
            ("CRAM-MD5", client.auth_cram_md5),
            ("X-OTHER", lambda challenge=None: b"raw-bytes"),
        )
        return authobjects[kind - 5]

    def step(self) -> None:
        """Pick and run one operation; check what it returned."""
        source = self.source
        client = self.client
        self.non_ascii_text_message = False
        self.source_failure = None
        choice = source.byte() % 26
        operation: Generator[Any, Any, Any]
        check: Callable[[Any], bool]
        if choice in (0, 1):
            name, operation, check = "greeting", client.greeting(), _is_reply
        elif choice in (2, 3):
            name, operation, check = "ehlo", client.ehlo(source.pick(NAMES)), _is_reply
        elif choice == 4:
            name, operation, check = "helo", client.helo(source.pick(NAMES)), _is_reply
        elif choice == 5:
            name, operation, check = "ehlo_or_helo", client.ehlo_or_helo_if_needed(), _is_none
        elif choice == 6:
            user, password = source.pick(CREDENTIALS)
            initial = bool(source.byte() & 1)
            operation = client.login(user, password, initial_response_ok=initial)
            name, check = "login", _is_reply
        elif choice == 7:
            mechanism, authobject = self.mechanism()
            initial = bool(source.byte() & 1)
            operation = client.auth(mechanism, authobject, initial_response_ok=initial)
            name, check = "auth", _is_reply
        elif choice in (8, 9, 10):
            client.chunking = bool(source.byte() & 1)
            sender = source.pick(ADDRESSES)
            recipients = self.recipients()
            message = self.message()
            options = source.pick(MAIL_OPTIONS)
            rcpt_options = source.pick(RCPT_OPTIONS)
            operation = client.sendmail(sender, recipients, message, options, rcpt_options)
            name, check = "sendmail", _is_refused
        elif choice == 11:
            msg = email.message.EmailMessage()
            msg["From"] = source.pick(ADDRESSES[:4])
            msg["To"] = source.pick(ADDRESSES[:4])
            msg["Subject"] = "fuzz"
            msg.set_content(source.field().decode("ascii", "replace"))
            operation = client.send_message(msg)
            name, check = "send_message", _is_refused
        elif choice == 12:
            name, operation, check = "starttls", client.starttls(), _is_reply
        elif choice == 13:
            name, operation, check = "quit", client.quit(), _is_reply
        elif choice == 14:
            name, operation, check = "exit", client.exit(), _is_none
        elif choice == 15:
            name, operation, check = "noop", client.noop(), _is_reply
        elif choice == 16:
            name, operation, check = "rset", client.rset(), _is_reply
        elif choice == 17:
            address = source.pick(ADDRESSES)
            verify = source.byte() & 1
            operation = client.verify(address) if verify else client.expn(address)
            name, check = "verify", _is_reply
        elif choice == 18:
            name, operation, check = "help", client.help(source.pick(("", "DATA"))), _is_bytes
        elif choice == 19:
            verb = source.pick(VERBS)
            name, operation, check = "docmd", client.docmd(verb), _is_reply
        elif choice == 20:
            operation = client.mail(source.pick(ADDRESSES), source.pick(MAIL_OPTIONS))
            name, check = "mail", _is_reply
        elif choice == 21:
            operation = client.rcpt(source.pick(ADDRESSES), source.pick(RCPT_OPTIONS))
            name, check = "rcpt", _is_reply
        elif choice == 22:
            name, operation, check = "data", client.data(self.message()), _is_reply
        elif choice == 23:
            verb = source.pick(VERBS)
            name, operation, check = "putcmd", client.putcmd(verb), _is_none
        elif choice == 24:
            name, operation, check = "getreply", client.getreply(), _is_reply
        else:
            self.server = self.connect()
            self.unread_putcmds = 0
            return
        idle_before = self.idle_before = self.idle()
        returned, result = self.run(name, operation)
        if not client.is_connected:
            self.unread_putcmds = 0
        elif not returned:
            # A failed operation may leave anything behind: start counting afresh.
            self.unread_putcmds = len(client.connection.pending)
        else:
            if not check(result):
                raise Finding(f"{name} returned {result!r}")
            if name == "putcmd":
                self.unread_putcmds += 1
            elif name in ("getreply", "greeting") and self.unread_putcmds:
                self.unread_putcmds -= 1
            pending = client.connection.pending
            if len(pending) != self.unread_putcmds:
                raise Finding(
                    f"{name} returned with replies pending: {pending!r} "
                    f"({self.unread_putcmds} putcmd replies unread)"
                )
            # A raw command may leave a body or a TLS handshake open (docmd("DATA") gets 354);
            # the smtplib-level operations must not.
            state = client.connection.state
            if idle_before and name not in RAW_OPERATIONS and state is not State.READY:
                raise Finding(f"{name} returned with the connection in state {state}")


def _is_reply(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], int)
        and isinstance(value[1], bytes)
    )


def _is_none(value: Any) -> bool:
    return value is None


def _is_bytes(value: Any) -> bool:
    return isinstance(value, bytes)


def _is_refused(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and _is_reply(answer) for key, answer in value.items()
    )


def check(data: bytes) -> None:
    """The whole property for one input; raises on a finding."""
    source = Input(data)
    with contextlib.redirect_stderr(io.StringIO()):  # the debug transcript, when enabled
        session = Session(source)
        for _ in range(MAX_OPERATIONS):
            if source.exhausted:
                break
            session.step()


def main() -> None:
    from _driver import fuzz  # noqa: PLC0415 - fuzz/ is on sys.path when run as a script

    fuzz(check)


if __name__ == "__main__":
    main()
