"""A scripted SOCKS5 (RFC 1928, 1929) or HTTP CONNECT proxy on the scripted server
(``tests.scripted_server``, on 127.0.0.1), for the adapter tests of ``proxy=``.

It tunnels nowhere: once it has answered a CONNECT with success, the same session goes on
as the mail server (``StandardESMTP``, in TLS first for implicit TLS), so one server shows a
test both what the client asked the proxy and what it then said to the mail server.

`ScriptedProxy` follows its protocol and checks what the client sends.  Each of its answers
is a named step (`STEPS`); `HostileProxy` misbehaves at one step of its first session
(`ACTIONS`: close, reset, go silent, cut the answer short, drip it, flood, or answer
something else), and behaves in the sessions after, so a test can show the client reusable.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import ssl
import threading
import time
from typing import Literal, get_args

from tests.proxy_wire import basic, http_head, request_head, socks5_reply
from tests.scripted_server import Session, StandardESMTP, UnexpectedEOF

__all__ = [
    "ACTIONS",
    "PASSWORD",
    "STEPS",
    "USER",
    "Action",
    "HostileProxy",
    "ScriptedProxy",
    "Scheme",
]

Scheme = Literal["socks5", "http"]
#: The credentials a proxy with ``credentials=True`` wants.
USER, PASSWORD = "proxy-user", "Sesame-42"
#: Where a proxy answers, in order: "accept" (before reading anything), then SOCKS5's method
#: choice, RFC 1929 status (with credentials) and reply to CONNECT; HTTP's response head.
STEPS: dict[Scheme, tuple[str, ...]] = {
    "socks5": ("accept", "method", "status", "reply"),
    "http": ("accept", "head"),
}
#: What a `HostileProxy` does at its step, instead of answering: "fin" closes, "rst" resets,
#: "stall" goes silent, "cut" sends the first half of the answer and closes, "drip" sends it
#: (or ``data``) a byte at a time, ``interval`` apart, "flood" sends ``lead`` then ``data``
#: over and over until the client stops taking it, "send" sends ``data`` instead; after
#: "drip" and "send" it waits for the client to close.
Action = Literal["fin", "rst", "stall", "cut", "drip", "flood", "send"]
ACTIONS: tuple[Action, ...] = get_args(Action)

#: The most a flood sends: far more than a bounded client takes in.
_FLOOD_LIMIT = 256 << 20


class _Ended(Exception):
    """The session's handshake ended at a step (a refusal, or a hostile action)."""


class ScriptedProxy:
    """A handler: a proxy that follows its protocol, then is the mail server (``mail``, a
    ``StandardESMTP``).

    ``credentials`` makes it want `USER` and `PASSWORD` (RFC 1929, Basic).  ``tls_context``
    starts TLS (server side) before the mail server's greeting: implicit TLS in the tunnel.
    ``greeting_in_answer`` sends its success answer in the same write as the greeting.
    It records what each session asked for (``targets``) and the credentials it was given.
    """

    def __init__(
        self,
        scheme: Scheme,
        *,
        credentials: bool = False,
        tls_context: ssl.SSLContext | None = None,
        greeting_in_answer: bool = False,
    ) -> None:
        self.scheme = scheme
        self.credentials = credentials
        self.mail = StandardESMTP()
        self.tls_context = tls_context
        self.greeting_in_answer = greeting_in_answer
        self.targets: list[tuple[str, int]] = []
        self.logins: list[tuple[str, str]] = []
        #: Each write that carried the success answer with the greeting.
        self.coalesced: list[bytes] = []

    def __call__(self, session: Session) -> None:
        try:
            self._handshake(session)
        except (_Ended, UnexpectedEOF, ConnectionError):
            return
        if self.tls_context is not None:
            session.start_tls(self.tls_context)
        self.mail(session)

    def _handshake(self, session: Session) -> None:
        self.step(session, "accept")
        if self.scheme == "socks5":
            self._socks5(session)
        else:
            self._http(session)

    def _socks5(self, session: Session) -> None:
        version, count = session.read_exact(2)
        methods = session.read_exact(count)
        assert version == 5, f"not a SOCKS5 offer: {version}"
        wanted = 2 if self.credentials else 0
        if wanted not in methods:
            self.step(session, "method", b"\x05\xff")
            raise _Ended
        self.step(session, "method", bytes([5, wanted]))
        if self.credentials:
            version, size = session.read_exact(2)
            assert version == 1, f"not an RFC 1929 request: {version}"
            username = session.read_exact(size).decode()
            password = session.read_exact(session.read_exact(1)[0]).decode()
            self.logins.append((username, password))
            good = (username, password) == (USER, PASSWORD)
            self.step(session, "status", b"\x01\x00" if good else b"\x01\x01")
            if not good:
                raise _Ended
        version, command, _, kind = session.read_exact(4)
        assert (version, command) == (5, 1), f"not a SOCKS5 CONNECT: {version} {command}"
        if kind == 3:
            host = session.read_exact(session.read_exact(1)[0]).decode("ascii")
        else:
            host = str(ipaddress.ip_address(session.read_exact({1: 4, 4: 16}[kind])))
        self.targets.append((host, int.from_bytes(session.read_exact(2), "big")))
        self.step(session, "reply", socks5_reply(0, b"\x01\x7f\x00\x00\x01", 1080))

    def _http(self, session: Session) -> None:
        line, headers = request_head(session.read_until(b"\r\n\r\n", 64 * 1024))
        method, target, version = line.split(" ")
        assert (method, version) == ("CONNECT", "HTTP/1.1"), line
        assert headers["host"] == [target], headers
        host, _, port = target.rpartition(":")
        self.targets.append((host.strip("[]"), int(port)))
        given = headers.get("proxy-authorization", [])
        for value in given:
            scheme, _, token = value.partition(" ")
            assert scheme == "Basic", value
            username, _, password = base64.b64decode(token).decode().partition(":")
            self.logins.append((username, password))
        if self.credentials and given != [basic(USER, PASSWORD)]:
            self.step(session, "head", http_head(407, "Proxy Authentication Required"))
            raise _Ended
        self.step(session, "head", http_head(200, "Connection established"))

    def step(self, session: Session, name: str, answer: bytes = b"") -> None:
        """The proxy's answer at step ``name`` (nothing at "accept"): sent, or, for the last
        one with ``greeting_in_answer``, kept to go out with the greeting."""
        if self.greeting_in_answer and name in ("reply", "head"):
            send = session.send

            def with_answer(data: bytes) -> None:
                session.send = send  # type: ignore[method-assign]
                self.coalesced.append(answer + data)
                send(answer + data)

            session.send = with_answer  # type: ignore[method-assign]
        elif answer:
            session.send(answer)


class HostileProxy(ScriptedProxy):
    """A `ScriptedProxy` that does ``action`` (see `ACTIONS`) at step ``at`` of its first
    session.  ``reached`` is set when it gets there, ``closed_by_client`` when, after "drip"
    or "send", it saw the client close; ``flooded`` holds how much a flood got out."""

    def __init__(
        self,
        scheme: Scheme,
        at: str,
        action: Action,
        *,
        data: bytes = b"",
        lead: bytes = b"",
        interval: float = 0.0,
        credentials: bool = False,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(scheme, credentials=credentials, tls_context=tls_context)
        assert at in STEPS[scheme] and action in ACTIONS, (at, action)
        self.at, self.action, self.data, self.lead = at, action, data, lead
        self.interval = interval
        self.reached = threading.Event()
        self.closed_by_client = threading.Event()
        self.flooded: list[int] = []

    def step(self, session: Session, name: str, answer: bytes = b"") -> None:
        if session.index > 0 or name != self.at:
            super().step(session, name, answer)
            return
        self.reached.set()
        action = self.action
        if action == "fin":
            session.close()
        elif action == "rst":
            session.reset()
        elif action == "stall":
            session.stall()
        elif action == "cut":
            session.send(answer[: len(answer) // 2])
            session.close()
        elif action == "flood":
            session.send(self.lead)
            self.flooded.append(len(self.lead) + session.flood(self.data, _FLOOD_LIMIT))
        else:  # "drip" or "send"
            whole = self.data or answer
            pieces = [whole[i : i + 1] for i in range(len(whole))] if action == "drip" else [whole]
            with contextlib.suppress(ConnectionError):  # the client may leave first: the point
                for piece in pieces:
                    session.send(piece)
                    time.sleep(self.interval)  # a drip's pace, not a synchronisation
            with contextlib.suppress(ConnectionError):  # a reset is a close too
                session.read_until_eof()
            self.closed_by_client.set()
        raise _Ended
