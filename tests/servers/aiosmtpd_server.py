"""In-process aiosmtpd test servers (SMTP on 127.0.0.1, LMTP on a unix socket).

Each server runs an asyncio event loop in a daemon thread of the test process;
the handler records every accepted message in a list that tests read from the
main thread.

What aiosmtpd (1.4.x) does and does not support, as relevant to client tests:

- EHLO keywords: SIZE, 8BITMIME, SMTPUTF8, STARTTLS (until TLS is on), AUTH
  (PLAIN LOGIN), HELP. It does not advertise PIPELINING by itself although it
  reads commands from a stream, so pipelined input works; the handler here adds
  ``PIPELINING`` unless ``advertise_pipelining`` is switched off.
- MAIL FROM parameters: only ``SIZE=``, ``BODY=7BIT|8BITMIME`` and ``SMTPUTF8``;
  anything else (e.g. DSN's ``RET``/``ENVID``) gets ``555``. RCPT TO parameters:
  none at all (``NOTIFY``/``ORCPT`` get ``555``). No CHUNKING/BDAT; VRFY answers
  252 but is not advertised; DATA lines over 1000 octets get ``500``.
- LMTP (``aiosmtpd.lmtp.LMTP``): the class only swaps EHLO/HELO for LHLO. It has
  no per-recipient API for the replies after DATA: ``SMTP.smtp_DATA`` sends the
  string returned by the ``handle_DATA`` hook verbatim, followed by CRLF. So the
  LMTP handler here returns one complete reply line per accepted recipient, in
  RCPT order, joined with CRLF (e.g. ``"250 2.0.0 <a@x> OK\\r\\n552 5.2.2 <b@x> Full"``);
  the client reads them as separate replies, as RFC 2033 requires. The handler
  must itself append accepted recipients to ``envelope.rcpt_tos`` in
  ``handle_RCPT`` (aiosmtpd only does that when there is no ``handle_RCPT``),
  so that list is exactly the set that needs a reply after DATA.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .certs import LocalCA
from .util import LOOPBACK, USERS, ServerError, make_scratch, remove_scratch, wait_until

T = TypeVar("T")

HOSTNAME = "aiosmtpd.test"
"""Server name in greetings (given explicitly: the default is a slow getfqdn())."""

DATA_SIZE_LIMIT = 10 * 1024 * 1024
LOOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the server received it.

    ``rcpt_tos`` are the recipients it was delivered to: for LMTP, those that got
    a 2xx reply after DATA; for SMTP, every recipient accepted at RCPT.
    ``replies`` are the reply lines sent after DATA (LMTP: one per recipient accepted
    at RCPT, in order). ``content`` is the data exactly as received (dot-unstuffed,
    CRLF line ends, without the final ``.``).
    """

    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    rcpt_options: list[str]
    content: bytes
    smtp_utf8: bool
    auth_user: str | None
    tls: bool
    helo: str | None
    peer: str
    replies: list[str]


def _local_part(address: str) -> str:
    return address.rsplit("@", 1)[0].lower()


def authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    """aiosmtpd authenticator for AUTH PLAIN/LOGIN against :data:`USERS` (UTF-8)."""
    if isinstance(auth_data, LoginPassword):
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if USERS.get(login) == password:
            return AuthResult(success=True, auth_data=login)
    # handled=False: aiosmtpd itself answers 535 5.7.8.
    return AuthResult(success=False, handled=False)


class RecordingHandler:
    """aiosmtpd handler: records messages, with test hooks by recipient local part.

    At RCPT (SMTP and LMTP): ``reject*`` -> 550, ``tempfail*`` -> 451 (SMTP only).
    After DATA (LMTP only, per recipient): ``fail*`` -> 550, ``full*`` -> 552,
    ``tempfail*`` -> 451, anyone else 250. ``after_data_replies`` (address ->
    complete reply line, e.g. ``"554 5.6.0 <x@y> no"``) overrides the per-recipient
    reply for exact addresses (case-insensitive); for SMTP, ``data_reply`` replaces
    the single DATA reply (the message is then not recorded unless it starts with 2).
    """

    def __init__(self, *, lmtp: bool) -> None:
        self.lmtp = lmtp
        self._lock = threading.Lock()
        self._records: list[ReceivedMessage] = []
        self.advertise_pipelining = True
        self.after_data_replies: dict[str, str] = {}
        self.data_reply: str | None = None

    # -- state shared with the test thread

    @property
    def records(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        """Forget recorded messages and undo per-test settings."""
        with self._lock:
            self._records.clear()
        self.advertise_pipelining = True
        self.after_data_replies = {}
        self.data_reply = None

    # -- aiosmtpd hooks (run in the server's event loop thread)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.advertise_pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = _local_part(address)
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient rejected (test hook)"
        if not self.lmtp and local.startswith("tempfail"):
            return f"451 4.3.0 <{address}>: Temporary failure (test hook)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    def _lmtp_reply(self, rcpt: str) -> str:
        override = self.after_data_replies.get(rcpt.lower())
        if override is not None:
            return override
        local = _local_part(rcpt)
        if local.startswith("tempfail"):
            return f"451 4.3.0 <{rcpt}> Temporary failure (test hook)"
        if local.startswith("fail"):
            return f"550 5.1.1 <{rcpt}> Delivery failed (test hook)"
        if local.startswith("full"):
            return f"552 5.2.2 <{rcpt}> Mailbox full (test hook)"
        return f"250 2.0.0 <{rcpt}> Delivered"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.lmtp:
            replies = [self._lmtp_reply(r) for r in envelope.rcpt_tos]
            delivered = [
                r for r, rep in zip(envelope.rcpt_tos, replies, strict=True) if rep.startswith("2")
            ]
        else:
            replies = [self.data_reply or "250 2.0.0 OK: queued"]
            delivered = list(envelope.rcpt_tos) if replies[0].startswith("2") else []
        if delivered:
            transport = server.transport
            tls = transport is not None and transport.get_extra_info("ssl_object") is not None
            auth = session.auth_data if isinstance(session.auth_data, str) else None
            content = envelope.original_content
            if content is None:
                raw = envelope.content
                content = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
            record = ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=delivered,
                mail_options=list(envelope.mail_options),
                rcpt_options=list(envelope.rcpt_options),
                content=content or b"",
                smtp_utf8=envelope.smtp_utf8,
                auth_user=auth,
                tls=tls,
                helo=session.host_name,
                peer=str(session.peer),
                replies=replies,
            )
            with self._lock:
                self._records.append(record)
        return "\r\n".join(replies)


class _LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = LOOP_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _cancel_all(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self, servers: list[asyncio.Server]) -> None:
        """Close ``servers`` and every open connection, then stop the loop and thread."""

        async def shutdown() -> None:
            for s in servers:
                s.close()
            await self._cancel_all()

        try:
            with contextlib.suppress(Exception):
                self.call(shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(LOOP_TIMEOUT)
            if self._thread.is_alive():
                raise ServerError(f"aiosmtpd loop thread {self._thread.name} did not stop")
            self.loop.close()


@dataclass
class AiosmtpdServer:
    """In-process aiosmtpd SMTP server on 127.0.0.1.

    ``port``: STARTTLS offered (certificate from ``tls_ca``; trust ``cafile``),
    AUTH PLAIN/LOGIN also in clear text (``testuser``/``testpass``,
    ``utf8user``/``pässwörd``), SMTPUTF8, 8BITMIME, SIZE, PIPELINING.
    ``smtps_port``: the same over implicit TLS.
    Recipients ``reject*`` -> 550 and ``tempfail*`` -> 451 at RCPT.
    See :class:`RecordingHandler` for per-test knobs (``handler``).
    """

    host: str
    port: int
    smtps_port: int
    cafile: Path
    handler: RecordingHandler = field(repr=False)
    _loop: _LoopThread | None = field(default=None, repr=False)
    _servers: list[asyncio.Server] = field(default_factory=list, repr=False)

    def messages(self) -> list[ReceivedMessage]:
        """Messages received so far (since the last :meth:`clear`), in order."""
        return self.handler.records

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait (bounded) until at least ``n`` messages were received; return them all."""
        return wait_until(
            lambda: m if len(m := self.messages()) >= n else None, timeout, f"{n} message(s)"
        )

    def clear(self) -> None:
        """Forget received messages and reset the handler's per-test settings."""
        self.handler.reset()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.close(self._servers)
            self._loop = None


@dataclass
class AiosmtpdLMTPServer:
    """In-process aiosmtpd LMTP server on the unix socket ``unix_path``.

    Every recipient is accepted at RCPT except ``reject*`` (550). After DATA,
    one reply per recipient: ``fail*`` 550, ``full*`` 552, ``tempfail*`` 451,
    others 250; ``handler.after_data_replies`` sets exact replies per address.
    ``messages()`` lists a message with only the recipients that got 250.
    """

    unix_path: Path
    handler: RecordingHandler = field(repr=False)
    scratch: Path
    _loop: _LoopThread | None = field(default=None, repr=False)
    _servers: list[asyncio.Server] = field(default_factory=list, repr=False)

    def messages(self) -> list[ReceivedMessage]:
        """Messages delivered to at least one recipient (since the last :meth:`clear`)."""
        return self.handler.records

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait (bounded) until at least ``n`` messages were received; return them all."""
        return wait_until(
            lambda: m if len(m := self.messages()) >= n else None, timeout, f"{n} message(s)"
        )

    def set_after_data_reply(self, address: str, reply: str) -> None:
        """Make ``address`` get exactly ``reply`` (e.g. ``"452 4.2.2 full"``) after DATA."""
        self.handler.after_data_replies[address.lower()] = reply

    def clear(self) -> None:
        """Forget received messages and per-address replies."""
        self.handler.reset()

    def stop(self) -> None:
        """Stop serving (the scratch dir with the socket is left to the caller)."""
        if self._loop is not None:
            self._loop.close(self._servers)
            self._loop = None
        with contextlib.suppress(FileNotFoundError):
            self.unix_path.unlink()


def _smtp_factory(
    cls: type[SMTP],
    handler: RecordingHandler,
    loop: asyncio.AbstractEventLoop,
    tls_context: ssl.SSLContext | None,
) -> Callable[[], SMTP]:
    def make() -> SMTP:
        return cls(
            handler,
            hostname=HOSTNAME,
            ident="smtp-proto test server (aiosmtpd)",
            enable_SMTPUTF8=True,
            decode_data=False,
            data_size_limit=DATA_SIZE_LIMIT,
            tls_context=tls_context,
            require_starttls=False,
            auth_require_tls=False,
            authenticator=authenticate,
            loop=loop,
        )

    return make


def start_aiosmtpd(ca: LocalCA) -> AiosmtpdServer:
    """Start the SMTP server (STARTTLS port + implicit-TLS port) on free ports."""
    handler = RecordingHandler(lmtp=False)
    lt = _LoopThread("aiosmtpd-smtp")
    server_ctx = ca.server_context()
    servers: list[asyncio.Server] = []

    async def listen() -> None:
        loop = asyncio.get_running_loop()
        for tls_ctx, ssl_arg in ((server_ctx, None), (None, server_ctx)):
            factory = _smtp_factory(SMTP, handler, loop, tls_ctx)
            servers.append(await loop.create_server(factory, LOOPBACK, 0, ssl=ssl_arg))

    try:
        lt.call(listen())
    except BaseException:
        lt.close(servers)
        raise
    port = servers[0].sockets[0].getsockname()[1]
    smtps_port = servers[1].sockets[0].getsockname()[1]
    return AiosmtpdServer(
        host=LOOPBACK,
        port=port,
        smtps_port=smtps_port,
        cafile=ca.cafile,
        handler=handler,
        _loop=lt,
        _servers=servers,
    )


def start_aiosmtpd_lmtp_unix() -> AiosmtpdLMTPServer:
    """Start the LMTP server on a unix socket in a fresh scratch dir."""
    handler = RecordingHandler(lmtp=True)
    scratch = make_scratch("aiosmtpd-lmtp")
    path = scratch / "lmtp.sock"
    lt = _LoopThread("aiosmtpd-lmtp")
    servers: list[asyncio.Server] = []

    async def listen() -> None:
        loop = asyncio.get_running_loop()
        factory = _smtp_factory(LMTP, handler, loop, None)
        servers.append(await loop.create_unix_server(factory, str(path)))

    try:
        lt.call(listen())
    except BaseException:
        lt.close(servers)
        remove_scratch(scratch)
        raise
    return AiosmtpdLMTPServer(
        unix_path=path, handler=handler, scratch=scratch, _loop=lt, _servers=servers
    )
