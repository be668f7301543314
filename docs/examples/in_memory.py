"""An in-memory transport for tests: smtp-proto's core against a scripted server, no sockets.

Code that sends mail through an ``smtplib.SMTP``-like object can be given an ``InMemorySMTP``
in its tests: the same methods (``starttls``, ``login``, ``sendmail``, ``send_message``,
``quit``...) run by the real protocol core, against ``ScriptedServer``, a few lines of Python
that answer each command as it arrives and keep what they accept.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from smtp_proto import CLOSE, LOCAL_HOSTNAME, RECEIVE, START_TLS, Client, Operation
from smtp_proto.driving import drive

Reply = tuple[int, str]
T = TypeVar("T")


@dataclass
class Delivery:
    """A message the server accepted: its envelope, and its content with dots unstuffed."""

    sender: str
    recipients: list[str] = field(default_factory=list)
    data: bytes = b""


class ScriptedServer:
    """The server side, one connection at a time: answers each command line as it arrives.

    ``refuse`` maps a recipient to the reply to its RCPT; ``fail`` a verb to the reply it gets
    instead of the usual one (``{"MAIL": (451, "4.3.0 Try again later")}``); ``users`` holds
    the accounts AUTH PLAIN accepts.  ``messages``, ``commands`` and ``logins`` are the record.
    """

    def __init__(
        self,
        *,
        refuse: Mapping[str, Reply] | None = None,
        fail: Mapping[str, Reply] | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.refuse, self.fail, self.users = dict(refuse or {}), dict(fail or {}), dict(users or {})
        self.messages: list[Delivery] = []
        self.commands: list[str] = []
        self.logins: list[str] = []
        self.connect()

    def connect(self) -> None:
        """A new connection: the greeting is the first thing to read."""
        self.output = bytearray(b"220 scripted.test ESMTP\r\n")  # what the client reads next
        self.closed, self.tls = False, False
        self._input = bytearray()
        self._envelope: Delivery | None = None
        self._body: bytearray | None = None  # the message so far, between DATA and "."

    def feed(self, data: bytes | memoryview) -> None:
        """Bytes from the client; the replies go to ``output``."""
        self._input += data
        while not self.closed and (end := self._input.find(b"\r\n")) >= 0:
            line = bytes(self._input[:end])
            del self._input[: end + 2]
            if self._body is None:
                self._command(line.decode("utf-8", "replace"))
            elif line == b".":
                assert self._envelope is not None
                self._envelope.data, self._body = bytes(self._body), None
                self.messages.append(self._envelope)
                self._reply(250, f"2.0.0 Ok: queued as {len(self.messages)}")
            else:
                self._body += line[1:] + b"\r\n" if line.startswith(b".") else line + b"\r\n"

    def _reply(self, code: int, *lines: str) -> None:
        for line in lines[:-1]:
            self.output += f"{code}-{line}\r\n".encode()
        self.output += f"{code} {lines[-1]}\r\n".encode()

    def _command(self, line: str) -> None:
        self.commands.append(line)
        verb, _, argument = line.partition(" ")
        verb = verb.upper()
        if verb in self.fail:
            self._reply(*self.fail[verb])
        elif verb == "EHLO":
            offers = ["AUTH PLAIN"] if self.users else []
            offers += [] if self.tls else ["STARTTLS"]
            self._reply(250, "scripted.test", "PIPELINING", "8BITMIME", *offers)
        elif verb == "STARTTLS":  # nothing is encrypted in memory: only the record says TLS
            self.tls, self._envelope = True, None
            self._reply(220, "2.0.0 Ready to start TLS")
        elif verb == "AUTH":
            self._reply(*self._login(argument))
        elif verb in ("MAIL", "RCPT", "DATA"):
            self._reply(*self._transaction(verb, argument))
        elif verb in ("RSET", "NOOP"):
            self._envelope = None if verb == "RSET" else self._envelope
            self._reply(250, "2.0.0 Ok")
        elif verb == "QUIT":
            self._reply(221, "2.0.0 Bye")
            self.closed = True
        else:
            self._reply(502, "5.5.2 Command not recognized")

    def _login(self, argument: str) -> Reply:
        mechanism, _, response = argument.partition(" ")
        if mechanism.upper() != "PLAIN" or not response:  # PLAIN, the password given at once
            return 504, "5.5.4 Unrecognized authentication type"
        _, user, password = base64.b64decode(response).decode().split("\0")
        if self.users.get(user) != password:
            return 535, "5.7.8 Authentication credentials invalid"
        self.logins.append(user)
        return 235, "2.7.0 Authentication successful"

    def _transaction(self, verb: str, argument: str) -> Reply:
        envelope = self._envelope
        if verb == "MAIL":
            self._envelope = Delivery(_path(argument))
            return 250, "2.1.0 Ok"
        if envelope is None:
            return 503, "5.5.1 MAIL first"
        if verb == "RCPT":
            recipient = _path(argument)
            code, text = self.refuse.get(recipient, (250, "2.1.5 Ok"))
            if code == 250:
                envelope.recipients.append(recipient)
            return code, text
        if not envelope.recipients:
            return 554, "5.5.1 No valid recipients"
        self._body = bytearray()
        return 354, "End data with <CR><LF>.<CR><LF>"


def _path(argument: str) -> str:
    """The address of ``FROM:<address> PARAMETERS`` (or ``TO:``)."""
    path = argument.partition(":")[2].strip()
    return path[1 : path.index(">")]


class InMemorySMTP:
    """An ``smtplib.SMTP`` look-alike connected to ``server`` in memory.

    Its methods are ``smtp_proto.Client``'s, each operation run to its end at once; its
    other attributes (``esmtp_features``, ``ehlo_resp``...) are the client's.
    """

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.client = Client()
        server.connect()
        self.client.connecting("scripted.test", 25)
        self.run(self.client.greeting())

    def perform(self, request: Any) -> Any:
        """Carry out one I/O request: the server reads and answers at once."""
        if isinstance(request, bytes | memoryview):
            self.server.feed(request)
        elif request is RECEIVE:
            if not self.server.output:  # a socket would wait here for ever
                if self.server.closed:
                    return b""
                raise TimeoutError("the scripted server has nothing to say")
            data = bytes(self.server.output)
            self.server.output.clear()
            return data
        elif request is CLOSE:
            self.server.closed = True
        elif request is LOCAL_HOSTNAME:
            return "client.test"
        elif request is not START_TLS:  # STARTTLS: nothing to encrypt in memory
            raise NotImplementedError(f"{request!r}")
        return None

    def abort(self) -> None:
        self.client.close()
        self.server.closed = True

    def run(self, operation: Operation[T]) -> T:
        return drive(operation, self.perform, self.abort)

    def __getattr__(self, name: str) -> Any:
        """The client's attribute ``name``; a method is run to its end when it is an operation."""
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def method(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            return self.run(result) if isinstance(result, Generator) else result

        return method

    def __enter__(self) -> InMemorySMTP:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.client.is_connected:
            self.run(self.client.exit())
        self.abort()
