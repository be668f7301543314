"""Faults: dropped connections, 421, stalls and garbage, as ``smtplib`` reports them.

After any of them the object is closed (``sock is None``) and can connect again; in these
tests the first session misbehaves and every later one is healthy, so reconnecting and
sending must then work.
"""

from __future__ import annotations

import pytest
from smtp_proto.transports import sync as smtplib

from smtp_proto.errors import RemoteProtocolError
from tests.scripted_server import ScriptedServer, Session, StandardESMTP

LOCAL_NAME = "client.example.test"
PIPELINED = ["PIPELINING", "8BITMIME", "SIZE 1000000"]
LOCKSTEP = ["8BITMIME", "SIZE 1000000"]
MESSAGE = b"Subject: fault test\r\n\r\nbody\r\n"


class FirstSessionFails:
    """A handler whose first session injects faults and whose later sessions behave."""

    def __init__(self, features: list[str], fail_at: dict[str, str]) -> None:
        self.faulty = StandardESMTP(features=features, fail_at=fail_at)
        self.healthy = StandardESMTP(features=features)

    def __call__(self, session: Session) -> None:
        (self.faulty if session.index == 0 else self.healthy)(session)


def send_after_reconnect(
    smtp: smtplib.SMTP, server: ScriptedServer, handler: FirstSessionFails
) -> None:
    """The closed object connects again and delivers a message."""
    assert smtp.sock is None
    assert smtp.connect(server.host, server.port)[0] == 220
    assert smtp.sendmail("s@example.test", ["r@example.test"], MESSAGE) == {}
    assert smtp.quit()[0] == 221
    assert [e.data for e in handler.healthy.envelopes] == [MESSAGE]


@pytest.mark.parametrize("features", [PIPELINED, LOCKSTEP], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("action", ["fin", "rst"])
@pytest.mark.parametrize("step", ["ehlo", "mail", "rcpt", "data", "body", "after-data"])
def test_connection_dropped_during_sendmail(features: list[str], action: str, step: str) -> None:
    handler = FirstSessionFails(features, {step: action})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.sendmail("s@example.test", ["r@example.test", "q@example.test"], MESSAGE)
        assert smtp.sock is None
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
        send_after_reconnect(smtp, server, handler)
    # Only a drop after the whole message was received leaves a (possibly delivered) message.
    assert len(handler.faulty.envelopes) == (1 if step == "after-data" else 0)


@pytest.mark.parametrize("action", ["fin", "rst"])
def test_connection_dropped_at_greeting(action: str) -> None:
    handler = FirstSessionFails(PIPELINED, {"greeting": action})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(local_hostname=LOCAL_NAME, timeout=10)
        # A reset can also beat a blocking connect() on a loaded machine: then connect() fails
        # as smtplib's does, with the ConnectionResetError itself.
        expected = (smtplib.SMTPServerDisconnected, ConnectionResetError)
        with pytest.raises(expected if action == "rst" else expected[0]) as info:
            smtp.connect(server.host, server.port)
        if isinstance(info.value, smtplib.SMTPServerDisconnected):
            assert str(info.value).startswith("Connection unexpectedly closed")
        assert smtp.sock is None
        send_after_reconnect(smtp, server, handler)


@pytest.mark.parametrize("features", [PIPELINED, LOCKSTEP], ids=["pipelined", "lockstep"])
def test_421_at_mail(features: list[str]) -> None:
    handler = FirstSessionFails(features, {"mail": "421"})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            smtp.sendmail("s@example.test", ["r@example.test"], MESSAGE)
        assert info.value.smtp_code == 421
        assert info.value.smtp_error == b"4.3.2 test.local Service not available, closing"
        assert info.value.sender == "s@example.test"
        assert smtp.sock is None
        send_after_reconnect(smtp, server, handler)


@pytest.mark.parametrize("features", [PIPELINED, LOCKSTEP], ids=["pipelined", "lockstep"])
def test_421_at_rcpt(features: list[str]) -> None:
    handler = FirstSessionFails(features, {"rcpt": "421"})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("s@example.test", ["r@example.test", "q@example.test"], MESSAGE)
        assert info.value.recipients == {
            "r@example.test": (421, b"4.3.2 test.local Service not available, closing")
        }
        assert smtp.sock is None
        send_after_reconnect(smtp, server, handler)


@pytest.mark.parametrize("features", [PIPELINED, LOCKSTEP], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("step", ["data", "after-data"])
def test_421_at_data(features: list[str], step: str) -> None:
    handler = FirstSessionFails(features, {step: "421"})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.sendmail("s@example.test", ["r@example.test"], MESSAGE)
        assert info.value.smtp_code == 421
        assert smtp.sock is None
        send_after_reconnect(smtp, server, handler)


def test_421_at_ehlo() -> None:
    handler = FirstSessionFails(PIPELINED, {"ehlo": "421"})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)
        assert smtp.ehlo() == (421, b"4.3.2 test.local Service not available, closing")
        assert smtp.sock is None
        send_after_reconnect(smtp, server, handler)


def test_421_greeting_is_a_connect_error() -> None:
    srv = StandardESMTP(greeting="421 4.3.2 busy.example.test too busy")
    with ScriptedServer(srv) as server:
        with pytest.raises(smtplib.SMTPConnectError) as info:
            smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)
        assert info.value.args == (421, b"4.3.2 busy.example.test too busy")


@pytest.mark.parametrize("step", ["greeting", "mail", "after-data"])
def test_stalled_server_times_out(step: str) -> None:
    handler = FirstSessionFails(PIPELINED, {step: "stall"})
    with ScriptedServer(handler) as server:
        smtp = smtplib.SMTP(local_hostname=LOCAL_NAME, timeout=0.5)
        with pytest.raises(smtplib.SMTPServerDisconnected) as info:
            smtp.connect(server.host, server.port)
            smtp.sendmail("s@example.test", ["r@example.test"], MESSAGE)
        assert str(info.value) == "Connection unexpectedly closed: timed out"
        assert isinstance(info.value.__cause__, TimeoutError)
        send_after_reconnect(smtp, server, handler)


def garbage_greeting(s: Session) -> None:
    s.send(b"HTTP/1.1 400 Bad Request\r\n")
    s.read_until_eof()


def garbage_ehlo_reply(s: Session) -> None:
    s.reply("220 test.local ESMTP")
    s.expect("ehlo ")
    s.send(b"hello, this is not SMTP\r\n")
    s.read_until_eof()


def code_changes_mid_reply(s: Session) -> None:
    s.reply("220 test.local ESMTP")
    s.expect("ehlo ")
    s.reply("250-test.local", "251 PIPELINING")
    s.read_until_eof()


def endless_line(s: Session) -> None:
    s.reply("220 test.local ESMTP")
    s.expect("ehlo ")
    s.send(b"250-" + b"x" * 20000)
    s.read_until_eof()


@pytest.mark.parametrize(
    "handler", [garbage_greeting, garbage_ehlo_reply, code_changes_mid_reply, endless_line]
)
def test_garbage_from_server(handler: object) -> None:
    with ScriptedServer(handler) as server:  # type: ignore[arg-type]
        smtp = smtplib.SMTP(local_hostname=LOCAL_NAME, timeout=10)
        with pytest.raises(smtplib.SMTPServerDisconnected) as info:
            smtp.connect(server.host, server.port)
            smtp.ehlo()
        assert isinstance(info.value, RemoteProtocolError)
        assert isinstance(info.value, smtplib.SMTPException)
        assert smtp.sock is None
        server.wait_sessions_done()
    assert all(session.closed for session in server.sessions)
