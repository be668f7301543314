"""``Client``'s greeting, simple commands and EHLO/HELO, driven offline by scripted peers
(``tests/offline.py``) and checked against the real ``smtplib`` played the same script."""

from __future__ import annotations

import pytest

from smtp_proto import (
    CLOSE,
    RECEIVE,
    Client,
    SMTPServerDisconnected,
)
from tests.offline import (
    EHLO_LINE,
    EHLO_SIMPLE,
    HOST,
    Action,
    C,
    Outcome,
    Peer,
    S,
    Step,
    connected,
    lines,
    play,
    same_as_stdlib,
    sending,
)

# --------------------------------------------------------------------------- greeting, simple


def test_greeting_asks_nothing_but_reads() -> None:
    client = Client(HOST)
    client.connecting("server.example", 25)
    peer = Peer([S(b"220-server.example\r\n"), S(b"220 hello\r\n")])
    assert peer.run(client.greeting()) == (220, b"server.example\nhello")
    peer.expect_finished()
    assert client.is_connected


def test_greeting_554_is_returned() -> None:
    client = Client(HOST)
    client.connecting("server.example", 25)
    peer = Peer([S(b"554 5.7.1 go away\r\n")])
    assert peer.run(client.greeting()) == (554, b"5.7.1 go away")


def test_greeting_421_closes() -> None:
    client = Client(HOST)
    client.connecting("server.example", 25)
    peer = Peer([S(b"421 busy\r\n")])
    assert peer.run(client.greeting()) == (421, b"busy")
    assert peer.closed
    assert not client.is_connected


def test_operations_without_connection() -> None:
    client = Client(HOST)
    with pytest.raises(SMTPServerDisconnected):
        Peer([]).run(client.noop())


def test_local_hostname_is_asked_for_once() -> None:
    client = connected(local_hostname=None)
    peer = Peer([C(b"ehlo my.fqdn\r\n"), EHLO_SIMPLE, C(b"helo my.fqdn\r\n"), S(b"250 hi\r\n")])
    peer.hostname = "my.fqdn"
    peer.run(client.ehlo())
    peer.run(client.helo())
    peer.expect_finished()
    assert client.local_hostname == "my.fqdn"


@pytest.mark.parametrize(
    ("script", "action"),
    [
        ([*lines("noop"), S(b"250 2.0.0 ok\r\n")], lambda s: s.noop()),
        ([*lines("rset"), S(b"250 2.0.0 ok\r\n")], lambda s: s.rset()),
        (
            [*lines("vrfy a@b.example"), S(b"252 2.5.2 maybe\r\n")],
            lambda s: s.verify("A <a@b.example>"),
        ),
        ([*lines("vrfy user"), S(b"550 5.1.1 no\r\n")], lambda s: s.vrfy("user")),
        ([*lines("expn list"), S(b"250-a <a@x>\r\n250 b <b@x>\r\n")], lambda s: s.expn("list")),
        ([*lines("help"), S(b"214-2.0.0 commands\r\n214 end\r\n")], lambda s: s.help()),
        ([*lines("help mail"), S(b"214 2.0.0 MAIL FROM\r\n")], lambda s: s.help("mail")),
        (
            [*lines("xclient ADDR=1.2.3.4"), S(b"220 ok\r\n")],
            lambda s: s.docmd("xclient", "ADDR=1.2.3.4"),
        ),
        ([*lines("quit"), S(b"221 2.0.0 bye\r\n")], lambda s: s.quit()),
        ([*lines("ehlo client.example"), EHLO_SIMPLE], lambda s: s.ehlo()),
        ([*lines("ehlo other"), S(b"502 no\r\n")], lambda s: s.ehlo("other")),
        ([*lines("helo client.example"), S(b"250 server\r\n")], lambda s: s.helo()),
        ([*lines("noop"), S(b"")], lambda s: s.noop()),
        ([*lines("noop"), S(b"250-partial\r\n"), S(b"")], lambda s: s.noop()),
    ],
)
def test_simple_commands_match_stdlib(script: list[Step], action: Action) -> None:
    same_as_stdlib(script, action)


def test_putcmd_and_getreply() -> None:
    client = connected()
    peer = Peer([*lines("xfoo bar"), S(b"250 fine\r\n")])
    assert peer.run(client.putcmd("xfoo", "bar")) is None
    assert peer.run(client.getreply()) == (250, b"fine")
    peer.expect_finished()


def test_ehlo_state_like_stdlib() -> None:
    client = connected()
    script = [EHLO_LINE, S(b"250-server.example\r\n250-SIZE 1000\r\n250 AUTH=LOGIN\r\n")]
    result, _ = play(client, script, lambda c: c.ehlo())
    assert result.value == (250, b"server.example\nSIZE 1000\nAUTH=LOGIN")
    assert client.does_esmtp
    assert client.ehlo_resp == b"server.example\nSIZE 1000\nAUTH=LOGIN"
    assert client.esmtp_features == {"size": "1000", "auth": " LOGIN"}
    assert client.has_extn("SIZE")
    assert not client.has_extn("pipelining")


def test_quit_forgets_and_closes() -> None:
    client = connected()
    play(client, [EHLO_LINE, EHLO_SIMPLE], lambda c: c.ehlo())
    result, peer = play(client, [*lines("quit"), S(b"221 bye\r\n")], lambda c: c.quit())
    assert result.value == (221, b"bye")
    assert peer.closed
    assert not client.is_connected
    assert client.ehlo_resp is None
    assert client.helo_resp is None
    assert client.esmtp_features == {}
    assert not client.does_esmtp


def test_eof_raises_server_disconnected_and_closes() -> None:
    client = connected()
    result, peer = play(client, [*lines("noop"), S(b"")], lambda c: c.noop())
    assert result == Outcome(
        error="SMTPServerDisconnected", args=("Connection unexpectedly closed",)
    )
    assert peer.closed
    assert not client.is_connected


def test_garbage_reply_is_a_protocol_error_and_closes() -> None:
    client = connected()
    peer = Peer([*lines("noop"), S(b"hello world\r\n")])
    with pytest.raises(SMTPServerDisconnected):
        peer.run(client.noop())
    assert peer.closed
    assert not client.is_connected


def test_transport_error_is_thrown_into_the_operation() -> None:
    client = connected()
    operation = client.noop()
    assert operation.send(None) == b"noop\r\n"
    assert operation.send(None) is RECEIVE
    assert operation.throw(ConnectionResetError("reset by peer")) is CLOSE
    with pytest.raises(SMTPServerDisconnected):
        operation.send(None)
    assert not client.is_connected


def test_transport_error_while_writing() -> None:
    client = connected()
    operation = client.noop()
    assert operation.send(None) == b"noop\r\n"
    assert operation.throw(BrokenPipeError()) is CLOSE
    with pytest.raises(SMTPServerDisconnected):
        operation.send(None)


# --------------------------------------------------------------------------- EHLO / HELO


def test_ehlo_or_helo_falls_back_to_helo() -> None:
    script = [EHLO_LINE, S(b"500 what\r\n"), *lines("helo client.example"), S(b"250 hi\r\n")]
    assert same_as_stdlib(script, lambda s: s.ehlo_or_helo_if_needed()) == Outcome()


def test_ehlo_or_helo_both_fail() -> None:
    script = [EHLO_LINE, S(b"500 what\r\n"), *lines("helo client.example"), S(b"501 no\r\n")]
    got = same_as_stdlib(script, lambda s: s.ehlo_or_helo_if_needed())
    assert got == Outcome(error="SMTPHeloError", args=(501, b"no"))


def test_ehlo_or_helo_only_once() -> None:
    client = connected()
    play(client, [EHLO_LINE, EHLO_SIMPLE], lambda c: c.ehlo_or_helo_if_needed())
    result, peer = play(client, [], lambda c: c.ehlo_or_helo_if_needed())
    assert result == Outcome()
    assert peer.writes == []


def test_sendmail_after_helo_sends_no_options() -> None:
    script = [
        EHLO_LINE,
        S(b"502 no ehlo\r\n"),
        *lines("helo client.example"),
        S(b"250 hello\r\n"),
        *lines("mail FROM:<s@example.org>"),
        S(b"250 ok\r\n"),
        *lines("rcpt TO:<a@example.org>"),
        S(b"250 ok\r\n"),
        *lines("data"),
        S(b"354 go\r\n"),
        C(b"x\r\n.\r\n"),
        S(b"250 ok\r\n"),
    ]
    action = sending("s@example.org", "a@example.org", b"x", ["BODY=8BITMIME"], ["NOTIFY=NEVER"])
    assert same_as_stdlib(script, action) == Outcome(value={})
