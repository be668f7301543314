"""The ``smtplib.SMTP`` methods, written once, as coroutines (the asyncio and trio adapters).

``_api_sync.py`` (the sync adapter's) is generated from this file by ``tools/unasync.py``:
``python3 tools/unasync.py`` rewrites it, and a test fails when the two differ.
Each method is one line: the core's operation of the same name, run by the adapter's ``_run``.
"""

from __future__ import annotations

import email.message
import ssl
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from smtp_proto.errors import SMTPConnectError
from smtp_proto.requests import Operation
from smtp_proto.send import SendResult
from smtp_proto.source import Message

from ._common import SMTPObject, register_api, tls_context_with_client_cert
from ._send import SendMessage, SendOptions, prepare_send

__all__ = ["AsyncAPI", "send_with"]

T = TypeVar("T")


class AsyncAPI(SMTPObject):
    """The ``smtplib.SMTP`` methods as coroutines; an adapter supplies ``_run`` (drive an
    operation on the connection), ``close`` and ``is_connected``."""

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open (until ``close()``: as ``smtplib``'s ``sock``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection; the object can connect again."""
        raise NotImplementedError

    async def _run(self, operation: Operation[T]) -> T:
        """Drive ``operation`` to its end on this object's connection."""
        raise NotImplementedError

    async def send(self, s: str | bytes) -> None:
        """Write ``s`` as it is (a ``str`` in ``command_encoding``): every write of a session
        goes through here, so a replacement sees the bytes on the wire, as with ``smtplib``.
        Called by other code, the bytes bypass the protocol core, as in ``smtplib``."""
        await self._run(self._client.send(s, raw=not self._inside_operation()))

    async def putcmd(self, cmd: str, args: str = "") -> None:
        """Send a command line without reading the reply."""
        await self._run(self._client.putcmd(cmd, args))

    async def getreply(self) -> tuple[int, bytes]:
        """Read one reply."""
        return await self._run(self._client.getreply())

    async def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        """Send a command and return its reply."""
        return await self._run(self._client.docmd(cmd, args))

    async def helo(self, name: str = "") -> tuple[int, bytes]:
        """HELO."""
        return await self._run(self._client.helo(name))

    async def ehlo(self, name: str = "") -> tuple[int, bytes]:
        """EHLO (LHLO for LMTP)."""
        return await self._run(self._client.ehlo(name))

    async def ehlo_or_helo_if_needed(self) -> None:
        """EHLO, or HELO if EHLO fails, unless done already."""
        await self._run(self._client.ehlo_or_helo_if_needed())

    async def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        """Authenticate with CRAM-MD5, PLAIN or LOGIN, whichever the server offers first."""
        return await self._run(
            self._client.login(user, password, initial_response_ok=initial_response_ok)
        )

    async def auth(
        self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        """Authenticate with one mechanism and an authobject (or ``smtp_proto.sasl`` mechanism)."""
        return await self._run(
            self._client.auth(mechanism, authobject, initial_response_ok=initial_response_ok)
        )

    if sys.version_info >= (3, 12):

        async def starttls(self, *, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
            """Upgrade to TLS, verifying the server's certificate unless ``context`` says
            otherwise (the signature of this Python's ``smtplib``: no keyfile, no certfile)."""
            self._tls_context = context
            return await self._run(self._client.starttls())

    else:

        async def starttls(
            self,
            keyfile: str | None = None,
            certfile: str | None = None,
            context: ssl.SSLContext | None = None,
        ) -> tuple[int, bytes]:
            """Upgrade to TLS, verifying the server's certificate unless ``context`` says
            otherwise; ``keyfile`` and ``certfile`` (a client certificate) with ``smtplib``
            3.11's ``DeprecationWarning``, as there (3.12 removed them).
            """
            self._tls_context = tls_context_with_client_cert(keyfile, certfile, context)
            return await self._run(self._client.starttls())

    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: Message,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Send one message; returns the refused recipients."""
        return await self._run(
            self._client.sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        )

    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Send an ``email.message.Message``, envelope taken from its headers."""
        return await self._run(
            self._client.send_message(msg, from_addr, to_addrs, mail_options, rcpt_options)
        )

    async def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        """MAIL FROM."""
        return await self._run(self._client.mail(sender, options))

    async def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        """RCPT TO."""
        return await self._run(self._client.rcpt(recip, options))

    async def data(self, msg: Message) -> tuple[int, bytes]:
        """DATA and the message."""
        return await self._run(self._client.data(msg))

    async def rset(self) -> tuple[int, bytes]:
        """RSET."""
        return await self._run(self._client.rset())

    async def noop(self) -> tuple[int, bytes]:
        """NOOP."""
        return await self._run(self._client.noop())

    async def verify(self, address: str) -> tuple[int, bytes]:
        """VRFY."""
        return await self._run(self._client.verify(address))

    vrfy = verify

    async def expn(self, address: str) -> tuple[int, bytes]:
        """EXPN."""
        return await self._run(self._client.expn(address))

    async def help(self, args: str = "") -> bytes:
        """HELP; returns the reply text."""
        return await self._run(self._client.help(args))

    async def quit(self) -> tuple[int, bytes]:
        """QUIT and close (through ``close()``)."""
        try:
            return await self._run(self._client.quit())
        finally:
            if self.is_connected:
                self.close()


register_api(AsyncAPI)


async def send_with(
    classes: tuple[type[AsyncAPI], type[AsyncAPI], type[AsyncAPI]],
    message: SendMessage,
    host: str,
    port: int | None,
    options: SendOptions,
) -> SendResult:
    """``send`` for an adapter, given its ``SMTP``, ``SMTP_SSL`` and ``LMTP``: connect as the
    submission says, run its whole session, close."""
    submission, client = prepare_send(classes, message, host, port, options)
    try:
        code, text = await client.connect(host, submission.port)
        if code != 220:
            raise SMTPConnectError(code, text)
        result: SendResult = await client._run(submission.operation(client._client))
        return result
    finally:
        client.close()
