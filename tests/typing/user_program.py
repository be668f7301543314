"""A program that uses smtp-proto the way its documentation shows, for the type checkers.

``tests/test_typing.py`` checks it with ``mypy --strict`` and with pyright in strict mode
(``pyrightconfig.json`` here), then runs ``main`` against the capture server.  Each
``assert_type`` pins a type a user relies on: a checker that finds ``Any`` or another type
there reports it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from email.message import EmailMessage
from typing import assert_type

import trio
from smtp_proto.transports import asyncio as async_smtplib
from smtp_proto.transports import sync as smtplib
from smtp_proto.transports import trio as trio_smtplib
from smtp_proto.transports.sync import SendMessage, SendOptions

from smtp_proto import (
    CLOSE,
    LOCAL_HOSTNAME,
    NEED_DATA,
    RECEIVE,
    Client,
    ClientConnection,
    Data,
    Ehlo,
    EnhancedStatus,
    Event,
    Extensions,
    IORequest,
    Mail,
    NeedData,
    Quit,
    Rcpt,
    Reply,
    SendResult,
    State,
    TransactionReplies,
)
from smtp_proto.driving import drive

SENDER = "me@example.com"
RECIPIENT = "you@example.com"
UNKNOWN = "nobody@example.com"
MESSAGE = b"From: me@example.com\r\nTo: you@example.com\r\nSubject: hi\r\n\r\nHello!\r\n"

AnySMTP = smtplib.SMTP | async_smtplib.SMTP | trio_smtplib.SMTP


def email_message() -> EmailMessage:
    """The message of the ``send_message`` and ``send`` examples."""
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = RECIPIENT
    mail["Subject"] = "Report"
    mail.set_content("All done.\n")
    return mail


def smtplib_attributes(smtp: AnySMTP) -> None:
    """The attributes ``smtplib.SMTP`` has, typed as typeshed types them, in every adapter."""
    assert_type(smtp.esmtp_features, dict[str, str])
    assert_type(smtp.ehlo_resp, bytes | None)
    assert_type(smtp.helo_resp, bytes | None)
    assert_type(smtp.does_esmtp, bool)
    assert_type(smtp.ehlo_msg, str)
    assert_type(smtp.default_port, int)
    assert_type(smtp.debuglevel, int)
    assert_type(smtp.command_encoding, str)
    assert_type(smtp.local_hostname, str)
    assert_type(smtp.source_address, tuple[str, int] | None)
    assert_type(smtp.timeout, float | None)
    assert_type(smtp.user, str | None)
    assert_type(smtp.password, str | None)
    assert smtp.does_esmtp and smtp.has_extn("PIPELINING") and smtp.ehlo_resp is not None


def core_session() -> Reply:
    """The sans-I/O walk-through of the core's documentation: bytes in, events out."""
    conn = ClientConnection()
    assert_type(conn.state, State)
    conn.receive_data(b"220 mx.example ESMTP")
    event = conn.next_event()
    assert_type(event, Event | NeedData)
    assert event is NEED_DATA
    conn.receive_data(b" ready\r\n")
    assert _reply(conn).code == 220

    wire = conn.send(Ehlo("client.example"))
    assert_type(wire, bytes)
    conn.receive_data(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
    conn.next_event()
    extensions = conn.extensions
    assert_type(extensions, Extensions)
    assert extensions.pipelining and extensions.size == 1_000_000

    conn.send_many([Mail(SENDER), Rcpt(RECIPIENT), Data()])
    conn.receive_data(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n")
    codes = [_reply(conn).code for _ in range(3)]
    assert codes == [250, 250, 354] and conn.state is State.BODY
    conn.send_data(b"Subject: hi\n\n.hidden")
    conn.end_data()
    conn.receive_data(b"250 2.0.0 Queued as 7\r\n")
    queued = _reply(conn)
    status = queued.enhanced_status
    assert_type(status, EnhancedStatus | None)
    assert status is not None and status.klass == 2
    conn.send(Quit())
    return queued


def _reply(conn: ClientConnection) -> Reply:
    """The next event, which the script above knows to be a complete reply."""
    event = conn.next_event()
    assert isinstance(event, Reply)
    return event


class Transport:
    """A blocking transport for the core's ``Client``, as "Writing a transport" shows."""

    def __init__(self, host: str, port: int) -> None:
        self.client = Client()
        self.sock = socket.create_connection((host, port), timeout=10)
        self.client.connecting(host, port)

    def perform(self, request: IORequest) -> bytes | str | None:
        """Carry out one I/O request of an operation."""
        if isinstance(request, bytes | memoryview):
            self.sock.sendall(request)
            return None
        if request is RECEIVE:
            return self.sock.recv(65536)
        if request is CLOSE:
            self.sock.close()
            return None
        if request is LOCAL_HOSTNAME:
            return "client.example"
        raise NotImplementedError(repr(request))

    def abort(self) -> None:
        """Drop the connection at once."""
        self.client.close()
        self.sock.close()


def with_client(host: str, port: int) -> TransactionReplies:
    """A whole session driven by hand on the core's ``Client``."""
    transport = Transport(host, port)
    client = transport.client
    try:
        greeting = drive(client.greeting(), transport.perform, transport.abort)
        assert_type(greeting, tuple[int, bytes])
        drive(client.ehlo(), transport.perform, transport.abort)
        assert_type(client.esmtp_features, dict[str, str])
        envelope: list[tuple[str, list[str]]] = [(RECIPIENT, ["NOTIFY=SUCCESS"]), (UNKNOWN, [])]
        operation = client.transaction(SENDER, envelope, MESSAGE)
        refused = drive(operation, transport.perform, transport.abort)
        assert_type(refused, dict[str, tuple[int, bytes]])
        drive(client.quit(), transport.perform, transport.abort)
    finally:
        transport.abort()
    replies = client.last_replies
    assert_type(replies, TransactionReplies)
    assert list(refused) == [UNKNOWN] and replies.rcpt[UNKNOWN].code == 550
    return replies


def blocking(host: str, port: int) -> dict[str, tuple[int, bytes]]:
    """``smtplib`` code, unchanged but for the import."""
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        assert_type(smtp, smtplib.SMTP)
        code, text = smtp.ehlo()
        assert_type(text, bytes)
        assert code == 250
        smtplib_attributes(smtp)
        assert_type(smtp.sock, socket.socket | None)
        assert smtp.sock is not None and smtp.sock.getpeername()[1] == port
        try:
            smtp.sendmail(SENDER, [UNKNOWN], MESSAGE)
        except smtplib.SMTPRecipientsRefused as error:
            assert_type(error.recipients, dict[str, tuple[int, bytes]])
            assert error.recipients[UNKNOWN][0] == 550
        return smtp.sendmail(SENDER, [RECIPIENT, UNKNOWN], MESSAGE)


async def with_asyncio(host: str, port: int) -> dict[str, tuple[int, bytes]]:
    """The asyncio adapter: the same methods, awaited."""
    async with async_smtplib.SMTP(host, port, timeout=10) as smtp:
        assert_type(smtp, async_smtplib.SMTP)
        await smtp.ehlo()
        smtplib_attributes(smtp)
        transport = smtp.sock
        assert_type(transport, asyncio.Transport | None)
        assert transport is not None and transport.get_extra_info("peername")[1] == port
        refused = await smtp.send_message(email_message())
    assert smtp.sock is None  # closed by the end of the block
    return refused


async def with_trio(host: str, port: int) -> tuple[int, bytes]:
    """The trio adapter: the same methods, awaited."""
    async with trio_smtplib.SMTP(host, port, timeout=10) as smtp:
        assert_type(smtp, trio_smtplib.SMTP)
        await smtp.ehlo_or_helo_if_needed()
        smtplib_attributes(smtp)
        sock = smtp.sock
        assert_type(sock, trio.socket.SocketType | None)
        assert sock is not None and sock.getpeername()[1] == port
        await smtp.mail(SENDER)
        await smtp.rcpt(RECIPIENT)
        reply = await smtp.data(MESSAGE)
    assert smtp.sock is None  # closed by the end of the block
    return reply


def options(context: ssl.SSLContext | None = None) -> SendOptions:
    """``send``'s keyword arguments, built as a typed dictionary."""
    return {
        "tls": "none",
        "timeout": 10.0,
        "context": context,
        "sender": SENDER,
        "recipients": [RECIPIENT],
    }


def high_level(host: str, port: int) -> list[SendResult]:
    """``send()`` of each adapter: connect, send one message, QUIT."""
    message: SendMessage = MESSAGE
    results = [smtplib.send(message, host, port, **options())]
    results.append(
        asyncio.run(async_smtplib.send(email_message(), host, port, tls="none", timeout=10))
    )
    results.append(trio.run(_trio_send, host, port))
    for result in results:
        assert_type(result.accepted, dict[str, Reply])
        assert_type(result.queue_id, str | None)
        assert result.ok and list(result.accepted) == [RECIPIENT]
    return results


async def _trio_send(host: str, port: int) -> SendResult:
    return await trio_smtplib.send(MESSAGE, host, port, **options())


def main(host: str, port: int) -> int:
    """Everything above against a server at ``host:port`` that refuses ``UNKNOWN``; returns
    how many messages it should have accepted."""
    assert core_session().as_tuple() == (250, b"2.0.0 Queued as 7")
    with_client(host, port)
    assert blocking(host, port) == {UNKNOWN: (550, b"5.1.1 No such user")}
    assert asyncio.run(with_asyncio(host, port)) == {}
    assert trio.run(with_trio, host, port)[0] == 250
    high_level(host, port)
    return 7
