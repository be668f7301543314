"""``ClientConnection``s brought to a state by feeding them what a server says: the harness of
the connection tests (``test_connection.py``, ``test_lmtp.py``)."""

from __future__ import annotations

from smtp_proto.commands import Data, Ehlo, Lhlo, Mail, Rcpt
from smtp_proto.connection import ClientConnection, Greeting, State
from smtp_proto.replies import Reply

EHLO_PIPELINING = b"250-server.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000\r\n"
EHLO_PLAIN = b"250-server.example\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"


def event(conn: ClientConnection, data: bytes = b"") -> object:
    """Feed ``data`` (if any) and return the next event."""
    if data:
        conn.receive_data(data)
    return conn.next_event()


def reply(conn: ClientConnection, data: bytes) -> Reply:
    ev = event(conn, data)
    assert isinstance(ev, Reply), ev
    return ev


def greeted(lmtp: bool = False) -> ClientConnection:
    conn = ClientConnection(lmtp=lmtp)
    assert conn.state is State.GREETING
    ev = event(conn, b"220 server.example ESMTP\r\n")
    assert isinstance(ev, Greeting)
    assert conn.state is State.READY
    return conn


def ready(ehlo_reply: bytes = EHLO_PIPELINING, lmtp: bool = False) -> ClientConnection:
    conn = greeted(lmtp)
    conn.send(Lhlo("client") if lmtp else Ehlo("client"))
    assert reply(conn, ehlo_reply).code == 250
    return conn


def in_body(lmtp: bool = False, recipients: tuple[str, ...] = ("a@x",)) -> ClientConnection:
    conn = ready(EHLO_PLAIN, lmtp)
    conn.send(Mail("s@x"))
    reply(conn, b"250 ok\r\n")
    for recipient in recipients:
        conn.send(Rcpt(recipient))
        reply(conn, b"250 ok\r\n")
    conn.send(Data())
    assert reply(conn, b"354 go\r\n").code == 354
    assert conn.state is State.BODY
    return conn
