# ruff: noqa: E501 - transcript lines are kept whole, as printed
"""``smtp_proto.Client`` driven offline by scripted peers, checked against the real ``smtplib``.

Most conversations are written once as a script (``tests/offline.py``) and played twice: by a
real, never-connected ``smtplib.SMTP`` whose socket is the scripted peer, and by ``Client``.
The stdlib run proves the script is what ``smtplib`` does; the ``Client`` run must then send
the same bytes at the same moments and return or raise the same thing.  Where the server
advertises PIPELINING the client may (and for ``sendmail`` must) send ahead.

The last part replays the transcripts printed in the smtplib chapter of Doug Hellmann's
"Python Module of the Week" (PyMOTW-3, source/smtplib/index.rst).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
from collections.abc import Callable, Generator
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto import (
    CLOSE,
    RECEIVE,
    Client,
    SMTPException,
    SMTPServerDisconnected,
)
from smtp_proto.body import CHUNK_SIZE
from tests.offline import (
    EHLO_LINE,
    HOST,
    TLS,
    C,
    Outcome,
    Peer,
    S,
    ScriptError,
    Step,
    connected,
    outcome,
    stdlib_smtp,
)

EHLO_SIMPLE = S(b"250-server.example\r\n250-8BITMIME\r\n250 HELP\r\n")
EHLO_PIPELINING = S(b"250-server.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")

Action = Callable[[Any], Any]


def play(
    client: Client, script: list[Step], action: Action, *, pipelining: bool = False
) -> tuple[Outcome, Peer]:
    """Run ``action(client)`` (an operation) against ``script``; the script must be used up."""
    peer = Peer(list(script), pipelining=pipelining)
    result = outcome(lambda: peer.run(action(client)))
    peer.expect_finished()
    return result, peer


def stdlib_play(script: list[Step], action: Action) -> tuple[Outcome, Peer]:
    """Run ``action(smtp)`` on a real ``smtplib.SMTP`` against ``script``."""
    peer = Peer(list(script))
    smtp = stdlib_smtp(peer)
    result = outcome(lambda: action(smtp))
    peer.expect_finished()
    return result, peer


def same_as_stdlib(script: list[Step], action: Action, client: Client | None = None) -> Outcome:
    """Play ``script`` with smtplib and with ``Client``: same bytes, same result, same closing."""
    expected, stdlib_peer = stdlib_play(script, action)
    got, peer = play(client or connected(), script, action)
    assert got == expected
    assert peer.client_bytes == stdlib_peer.client_bytes
    # smtplib leaves the socket open after some 421 replies; the core closes on every 421.
    assert peer.closed or not stdlib_peer.closed
    if not any(isinstance(step, S) and step.data.startswith(b"421") for step in script):
        assert peer.closed == stdlib_peer.closed
    return got


def sending(*args: Any) -> Action:
    """An action calling ``sendmail(*args)`` (on smtplib or on the client)."""
    return lambda s: s.sendmail(*args)


def lines(*texts: str) -> list[Step]:
    return [C(text.encode() + b"\r\n") for text in texts]


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


# --------------------------------------------------------------------------- sendmail

MAIL = C(b"mail FROM:<s@example.org>\r\n")
RCPT_A = C(b"rcpt TO:<a@example.org>\r\n")
RCPT_B = C(b"rcpt TO:<b@example.org>\r\n")
DATA = C(b"data\r\n")
RSET = C(b"rset\r\n")
BODY = C(b"Subject: test\r\n\r\n..leading dot\r\n.\r\n")
OK = S(b"250 2.0.0 ok\r\n")
GO = S(b"354 go ahead\r\n")
MESSAGE = b"Subject: test\r\n\r\n.leading dot\r\n"


def sendmail(s: Any) -> Any:
    return s.sendmail("s@example.org", ["a@example.org", "b@example.org"], MESSAGE)


# name -> (lock-step script after EHLO, pipelined script after EHLO or None if the same,
#          expected outcome)
SCENARIOS: dict[str, tuple[list[Step], list[Step] | None, Outcome]] = {
    "all-accepted": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, S(b"251 2.1.5 forwarded\r\n"), DATA, GO, BODY, OK],
        None,
        Outcome(value={}),
    ),
    "some-refused": (
        [MAIL, OK, RCPT_A, S(b"550 5.1.1 unknown\r\n"), RCPT_B, OK, DATA, GO, BODY, OK],
        None,
        Outcome(value={"a@example.org": (550, b"5.1.1 unknown")}),
    ),
    "all-refused": (
        [
            MAIL,
            OK,
            RCPT_A,
            S(b"550 5.1.1 unknown\r\n"),
            RCPT_B,
            S(b"450 4.2.1 later\r\n"),
            RSET,
            OK,
        ],
        [
            MAIL,
            OK,
            RCPT_A,
            S(b"550 5.1.1 unknown\r\n"),
            RCPT_B,
            S(b"450 4.2.1 later\r\n"),
            DATA,
            S(b"554 5.5.1 no valid recipients\r\n"),
            RSET,
            OK,
        ],
        Outcome(
            error="SMTPRecipientsRefused",
            args=(
                {"a@example.org": (550, b"5.1.1 unknown"), "b@example.org": (450, b"4.2.1 later")},
            ),
        ),
    ),
    "all-refused-but-data-opened": (
        [
            MAIL,
            OK,
            RCPT_A,
            S(b"550 5.1.1 unknown\r\n"),
            RCPT_B,
            S(b"550 5.1.1 unknown\r\n"),
            RSET,
            OK,
        ],
        [
            MAIL,
            OK,
            RCPT_A,
            S(b"550 5.1.1 unknown\r\n"),
            RCPT_B,
            S(b"550 5.1.1 unknown\r\n"),
            DATA,
            GO,
            C(b"\r\n.\r\n"),
            S(b"554 5.5.1 no recipients\r\n"),
            RSET,
            OK,
        ],
        Outcome(
            error="SMTPRecipientsRefused",
            args=(
                {
                    "a@example.org": (550, b"5.1.1 unknown"),
                    "b@example.org": (550, b"5.1.1 unknown"),
                },
            ),
        ),
    ),
    "sender-refused": (
        [MAIL, S(b"553 5.1.8 bad sender\r\n"), RSET, OK],
        [
            MAIL,
            S(b"553 5.1.8 bad sender\r\n"),
            RCPT_A,
            S(b"503 5.5.1 need MAIL\r\n"),
            RCPT_B,
            S(b"503 5.5.1 need MAIL\r\n"),
            DATA,
            S(b"503 5.5.1 need MAIL\r\n"),
            RSET,
            OK,
        ],
        Outcome(error="SMTPSenderRefused", args=(553, b"5.1.8 bad sender", "s@example.org")),
    ),
    "sender-421": (
        [MAIL, S(b"421 4.3.2 shutting down\r\n")],
        [MAIL, S(b"421 4.3.2 shutting down\r\n"), RCPT_A, RCPT_B, DATA],
        Outcome(error="SMTPSenderRefused", args=(421, b"4.3.2 shutting down", "s@example.org")),
    ),
    "rcpt-421": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, S(b"421 4.4.5 too busy\r\n")],
        [MAIL, OK, RCPT_A, OK, RCPT_B, S(b"421 4.4.5 too busy\r\n"), DATA],
        Outcome(error="SMTPRecipientsRefused", args=({"b@example.org": (421, b"4.4.5 too busy")},)),
    ),
    "first-rcpt-421": (
        [MAIL, OK, RCPT_A, S(b"421 4.4.5 too busy\r\n")],
        [MAIL, OK, RCPT_A, S(b"421 4.4.5 too busy\r\n"), RCPT_B, DATA],
        Outcome(error="SMTPRecipientsRefused", args=({"a@example.org": (421, b"4.4.5 too busy")},)),
    ),
    "data-refused": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, S(b"554 5.3.0 not now\r\n")],
        None,
        Outcome(error="SMTPDataError", args=(554, b"5.3.0 not now")),
    ),
    "data-421": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, S(b"421 4.3.0 bye\r\n")],
        None,
        Outcome(error="SMTPDataError", args=(421, b"4.3.0 bye")),
    ),
    "body-refused": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, GO, BODY, S(b"552 5.3.4 too big\r\n"), RSET, OK],
        None,
        Outcome(error="SMTPDataError", args=(552, b"5.3.4 too big")),
    ),
    "body-421": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, GO, BODY, S(b"421 4.3.0 bye\r\n")],
        None,
        Outcome(error="SMTPDataError", args=(421, b"4.3.0 bye")),
    ),
    "eof-after-mail": (
        [MAIL, OK, RCPT_A, S(b"")],
        [MAIL, OK, RCPT_A, RCPT_B, DATA, S(b"")],
        Outcome(error="SMTPServerDisconnected", args=("Connection unexpectedly closed",)),
    ),
    "eof-after-first-rcpt": (
        [MAIL, OK, RCPT_A, OK, RCPT_B, S(b"")],
        [MAIL, OK, RCPT_A, OK, RCPT_B, DATA, S(b"")],
        Outcome(error="SMTPServerDisconnected", args=("Connection unexpectedly closed",)),
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_sendmail_lockstep_matches_stdlib(name: str) -> None:
    lockstep, _, expected = SCENARIOS[name]
    script = [EHLO_LINE, EHLO_SIMPLE, *lockstep]
    assert same_as_stdlib(script, sendmail) == expected


@pytest.mark.parametrize("name", SCENARIOS)
def test_sendmail_pipelined_same_outcome(name: str) -> None:
    lockstep, pipelined, expected = SCENARIOS[name]
    # What smtplib does with this server (it never pipelines) is the reference outcome.
    reference, _ = stdlib_play([EHLO_LINE, EHLO_PIPELINING, *lockstep], sendmail)
    assert reference == expected
    client = connected()
    got, peer = play(
        client, [EHLO_LINE, EHLO_PIPELINING, *(pipelined or lockstep)], sendmail, pipelining=True
    )
    assert got == expected
    # MAIL, every RCPT and DATA went out in one write.
    assert MAIL.data + RCPT_A.data + RCPT_B.data + DATA.data in peer.writes
    if "421" in name or "eof" in name:
        assert peer.closed
        assert RSET.data not in peer.writes
        assert not client.is_connected


def test_pipelined_transaction_reads_replies_only_after_sending_the_group() -> None:
    client = connected()
    script = [EHLO_LINE, EHLO_PIPELINING, MAIL, RCPT_A, RCPT_B, DATA, OK, OK, OK, GO, BODY, OK]
    result, peer = play(client, script, sendmail, pipelining=True)
    assert result == Outcome(value={})
    assert peer.transcript[2:4] == [
        ("C", MAIL.data + RCPT_A.data + RCPT_B.data + DATA.data),
        ("S", OK.data),
    ]


def test_sendmail_mail_and_rcpt_options() -> None:
    script = [
        EHLO_LINE, EHLO_SIMPLE, C(b"mail FROM:<s@example.org> BODY=8BITMIME\r\n"), OK,
        C(b"rcpt TO:<a@example.org> NOTIFY=NEVER\r\n"), OK, DATA, GO, BODY, OK,
    ]  # fmt: skip
    action = sending("s@example.org", "a@example.org", MESSAGE, ["BODY=8BITMIME"], ["NOTIFY=NEVER"])
    assert same_as_stdlib(script, action) == Outcome(value={})


def test_sendmail_single_recipient_string() -> None:
    script = [EHLO_LINE, EHLO_SIMPLE, MAIL, OK, RCPT_A, OK, DATA, GO, BODY, OK]
    action = sending("s@example.org", "a@example.org", MESSAGE)
    assert same_as_stdlib(script, action) == Outcome(value={})


def test_sendmail_size_option_when_advertised() -> None:
    ehlo = S(b"250-server.example\r\n250-SIZE 100000\r\n250 HELP\r\n")
    script = [
        EHLO_LINE, ehlo, C(b"mail FROM:<s@example.org> size=%d BODY=8BITMIME\r\n" % len(MESSAGE)),
        OK, RCPT_A, OK, DATA, GO, BODY, OK,
    ]  # fmt: skip
    action = sending("s@example.org", ["a@example.org"], MESSAGE, ["BODY=8BITMIME"])
    assert same_as_stdlib(script, action) == Outcome(value={})


def test_sendmail_str_message_line_endings_fixed() -> None:
    text = "Subject: x\nA\rB\r\n.dot\n.\nend"
    wire = b"Subject: x\r\nA\r\nB\r\n..dot\r\n..\r\nend\r\n.\r\n"
    ehlo = S(b"250-server.example\r\n250 SIZE\r\n")
    size = len("Subject: x\r\nA\r\nB\r\n.dot\r\n.\r\nend")
    script = [
        EHLO_LINE, ehlo, C(b"mail FROM:<s@example.org> size=%d\r\n" % size), OK,
        RCPT_A, OK, DATA, GO, C(wire), OK,
    ]  # fmt: skip
    action = sending("s@example.org", ["a@example.org"], text)
    assert same_as_stdlib(script, action) == Outcome(value={})


def test_sendmail_non_ascii_str_message_is_refused_like_stdlib() -> None:
    script = [EHLO_LINE, EHLO_SIMPLE]
    action = sending("s@example.org", ["a@example.org"], "caf\u00e9")
    expected, _ = stdlib_play(script, action)
    got, peer = play(connected(), script, action)
    assert got.error == expected.error == "UnicodeEncodeError"
    assert peer.client_bytes == EHLO_LINE.data


def test_sendmail_smtputf8_switches_command_encoding() -> None:
    ehlo = S(b"250-server.example\r\n250-SMTPUTF8\r\n250 SIZE 1000\r\n")
    body = "Subject: caf\u00e9\r\n\r\nh\u00e9\r\n".encode()
    script = [
        EHLO_LINE, ehlo,
        C(f"mail FROM:<j\u00f6rg@example.org> size={len(body)} SMTPUTF8\r\n".encode()),
        OK, C("rcpt TO:<\u00e9l\u00e8ve@example.org>\r\n".encode()), OK,
        DATA, GO, C(body + b".\r\n"), OK,
    ]  # fmt: skip
    action = sending("j\u00f6rg@example.org", ["\u00e9l\u00e8ve@example.org"], body, ["SMTPUTF8"])
    client = connected()
    assert same_as_stdlib(script, action, client) == Outcome(value={})
    assert client.command_encoding == "utf-8"
    # RSET returns to ASCII, like smtplib.
    play(client, [RSET, OK], lambda c: c.rset())
    assert client.command_encoding == "ascii"
    with pytest.raises(ValueError):
        Peer([]).run(client.mail("j\u00f6rg@example.org"))


def test_sendmail_smtputf8_not_advertised() -> None:
    script = [EHLO_LINE, EHLO_SIMPLE]
    action = sending("s@example.org", ["a@example.org"], b"x", ["SMTPUTF8"])
    got = same_as_stdlib(script, action)
    assert got.error == "SMTPNotSupportedError"


def test_send_message_bcc_not_transmitted() -> None:
    msg = EmailMessage()
    msg["From"] = "Sender <s@example.org>"
    msg["To"] = "a@example.org"
    msg["Bcc"] = "hidden@example.org"
    msg["Subject"] = "hi"
    msg.set_payload("hello\n")
    wire = b"From: Sender <s@example.org>\r\nTo: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n.\r\n"
    script = [
        EHLO_LINE, EHLO_SIMPLE, MAIL, OK, RCPT_A, OK,
        C(b"rcpt TO:<hidden@example.org>\r\n"), OK, DATA, GO, C(wire), OK,
    ]  # fmt: skip
    client = connected()
    assert same_as_stdlib(script, lambda s: s.send_message(msg), client) == Outcome(value={})
    assert msg["Bcc"] == "hidden@example.org"  # the caller's message is untouched


def test_message_bigger_than_one_chunk() -> None:
    big = (b"." + b"x" * 998 + b"\r\n") * (2 * CHUNK_SIZE // 1000 + 3)
    wire = big.replace(b"\r\n.", b"\r\n..")
    wire = b"." + wire + b".\r\n"
    script = [EHLO_LINE, EHLO_SIMPLE, MAIL, OK, RCPT_A, OK, DATA, GO, C(wire), OK]
    action = sending("s@example.org", ["a@example.org"], big)
    client = connected()
    result, peer = play(client, script, action)
    assert result == Outcome(value={})
    assert len(peer.writes) > 4  # the body went out in several writes


# --------------------------------------------------------------------------- LMTP

LHLO = C(b"lhlo client.example\r\n")


@pytest.mark.parametrize("pipelining", [False, True])
def test_lmtp_one_recipient_refused_after_data(pipelining: bool) -> None:
    features = b"250-lmtp.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    ehlo = S(features if pipelining else b"250 lmtp.example\r\n")
    script = [
        LHLO, ehlo, MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, GO, BODY,
        S(b"250 2.1.5 a delivered\r\n"), S(b"452 4.2.2 b over quota\r\n"),
    ]  # fmt: skip
    client = connected(lmtp=True)
    result, _ = play(client, script, sendmail, pipelining=pipelining)
    assert result == Outcome(value={"b@example.org": (452, b"4.2.2 b over quota")})
    assert client.lmtp_replies == {
        "a@example.org": (250, b"2.1.5 a delivered"),
        "b@example.org": (452, b"4.2.2 b over quota"),
    }
    assert client.is_connected


def test_lmtp_refused_at_rcpt_and_after_data() -> None:
    script = [
        LHLO, S(b"250 lmtp.example\r\n"), MAIL, OK, RCPT_A, S(b"550 5.1.1 unknown\r\n"),
        RCPT_B, OK, DATA, GO, BODY, S(b"250 2.1.5 b delivered\r\n"),
    ]  # fmt: skip
    result, _ = play(connected(lmtp=True), script, sendmail)
    assert result == Outcome(value={"a@example.org": (550, b"5.1.1 unknown")})


def test_lmtp_all_refused_after_data() -> None:
    script = [
        LHLO, S(b"250 lmtp.example\r\n"), MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, GO, BODY,
        S(b"552 5.2.2 a over quota\r\n"), S(b"451 4.3.0 b failed\r\n"),
    ]  # fmt: skip
    result, _ = play(connected(lmtp=True), script, sendmail)
    assert result == Outcome(
        error="SMTPRecipientsRefused",
        args=(
            {
                "a@example.org": (552, b"5.2.2 a over quota"),
                "b@example.org": (451, b"4.3.0 b failed"),
            },
        ),
    )


@pytest.mark.parametrize(
    "after_body",
    [
        [S(b"250 2.1.5 a delivered\r\n"), S(b"")],
        [S(b"421 4.3.0 shutting down\r\n")],
    ],
    ids=["eof-after-first-reply", "421-as-first-reply"],
)
def test_lmtp_connection_lost_before_every_recipient_is_answered(after_body: list[Step]) -> None:
    # The server goes away before answering for b@: its delivery is unknown and must not be
    # reported as a success (a normal return without b@ in the refused dict).
    script = [
        LHLO, S(b"250 lmtp.example\r\n"), MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, GO, BODY,
        *after_body,
    ]  # fmt: skip
    client = connected(lmtp=True)
    result, peer = play(client, script, sendmail)
    assert peer.closed
    assert result.error is not None or "b@example.org" in result.value, result


def test_lmtp_data_returns_the_first_refusal() -> None:
    client = connected(lmtp=True)
    script = [
        LHLO, S(b"250 lmtp.example\r\n"), MAIL, OK, RCPT_A, OK, RCPT_B, OK, DATA, GO, BODY,
        S(b"250 2.1.5 a ok\r\n"), S(b"550 5.0.0 b failed\r\n"),
    ]  # fmt: skip
    result, _ = play(
        client,
        script,
        lambda c: _chain(
            c.ehlo(), c.mail("s@example.org"), c.rcpt("a@example.org"), c.rcpt("b@example.org"),
            c.data(MESSAGE),
        ),
    )  # fmt: skip
    assert result == Outcome(value=(550, b"5.0.0 b failed"))


def _chain(*operations: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Run several operations as one; the last one's value is the result."""
    value = None
    for operation in operations:
        value = yield from operation
    return value


# --------------------------------------------------------------------------- STARTTLS


def test_starttls_forgets_features_and_next_command_re_ehlos() -> None:
    ehlo_before = S(b"250-server.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    ehlo_after = S(b"250-server.example\r\n250-SIZE 500\r\n250 AUTH PLAIN\r\n")
    client = connected()
    script = [EHLO_LINE, ehlo_before, C(b"STARTTLS\r\n"), S(b"220 2.0.0 go ahead\r\n"), TLS]
    result, peer = play(client, script, lambda c: c.starttls())
    assert result == Outcome(value=(220, b"2.0.0 go ahead"))
    assert ("TLS", b"") in peer.transcript
    assert client.esmtp_features == {}
    assert client.ehlo_resp is None
    assert not client.does_esmtp
    assert not client.has_extn("starttls")
    # The next command that needs the features says EHLO again; PIPELINING is forgotten.
    script = [
        EHLO_LINE, ehlo_after, C(b"mail FROM:<s@example.org> size=%d\r\n" % len(MESSAGE)), OK,
        RCPT_A, OK, DATA, GO, BODY, OK,
    ]  # fmt: skip
    action = sending("s@example.org", ["a@example.org"], MESSAGE)
    result, _ = play(client, script, action)
    assert result == Outcome(value={})
    assert client.has_extn("auth")


def test_starttls_not_advertised() -> None:
    got = same_as_stdlib([EHLO_LINE, EHLO_SIMPLE], lambda s: s.starttls())
    assert got == Outcome(
        error="SMTPNotSupportedError", args=("STARTTLS extension not supported by server.",)
    )


def test_starttls_refused() -> None:
    ehlo = S(b"250-server.example\r\n250 STARTTLS\r\n")
    script = [EHLO_LINE, ehlo, C(b"STARTTLS\r\n"), S(b"454 4.7.0 TLS not available\r\n")]
    got = same_as_stdlib(script, lambda s: s.starttls())
    assert got == Outcome(error="SMTPResponseException", args=(454, b"4.7.0 TLS not available"))


def test_starttls_plaintext_injection_after_220_is_refused() -> None:
    ehlo = S(b"250-server.example\r\n250 STARTTLS\r\n")
    client = connected()
    script = [EHLO_LINE, ehlo, C(b"STARTTLS\r\n"), S(b"220 go ahead\r\n250-PIPELINING\r\n")]
    peer = Peer(script)
    with pytest.raises(SMTPServerDisconnected):
        peer.run(client.starttls())
    assert peer.closed
    assert ("TLS", b"") not in peer.transcript


# --------------------------------------------------------------------------- AUTH


def ehlo_auth(mechanisms: str) -> list[Step]:
    return [EHLO_LINE, S(f"250-server.example\r\n250 AUTH {mechanisms}\r\n".encode())]


def b64(data: str | bytes) -> bytes:
    return base64.b64encode(data.encode() if isinstance(data, str) else data)


CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"  # RFC 2195's example


def cram_md5_response(user: str, password: str) -> bytes:
    digest = hmac.new(password.encode(), CHALLENGE, hashlib.md5).hexdigest()
    return b64(f"{user} {digest}") + b"\r\n"


def test_cram_md5_rfc_2195_example() -> None:
    # RFC 2195: user tim, password tanstaaftanstaaf -> "tim b913a602c7eda7a495b4e6e7334d3890".
    assert base64.b64decode(cram_md5_response("tim", "tanstaaftanstaaf")) == (
        b"tim b913a602c7eda7a495b4e6e7334d3890"
    )


def test_login_prefers_cram_md5() -> None:
    script = [
        *ehlo_auth("LOGIN PLAIN CRAM-MD5"), C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(CHALLENGE) + b"\r\n"),
        C(cram_md5_response("tim", "tanstaaftanstaaf")), S(b"235 2.7.0 ok\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("tim", "tanstaaftanstaaf"))
    assert got == Outcome(value=(235, b"2.7.0 ok"))


def test_login_prefers_plain_over_login() -> None:
    script = [
        *ehlo_auth("LOGIN PLAIN"),
        C(b"AUTH PLAIN " + b64("\0user\0pass") + b"\r\n"),
        S(b"235 ok\r\n"),
    ]
    assert same_as_stdlib(script, lambda s: s.login("user", "pass")) == Outcome(value=(235, b"ok"))


def test_login_falls_back_after_535() -> None:
    script = [
        *ehlo_auth("CRAM-MD5 PLAIN LOGIN"),
        C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(CHALLENGE) + b"\r\n"),
        C(cram_md5_response("user", "pass")), S(b"535 5.7.8 no cram\r\n"),
        C(b"AUTH PLAIN " + b64("\0user\0pass") + b"\r\n"), S(b"535 5.7.8 no plain\r\n"),
        C(b"AUTH LOGIN " + b64("user") + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
        C(b64("pass") + b"\r\n"), S(b"235 2.7.0 finally\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("user", "pass"))
    assert got == Outcome(value=(235, b"2.7.0 finally"))


def test_login_without_initial_responses() -> None:
    script = [
        *ehlo_auth("PLAIN LOGIN"),
        C(b"AUTH PLAIN\r\n"), S(b"334 \r\n"), C(b64("\0user\0pass") + b"\r\n"),
        S(b"535 5.7.8 no plain\r\n"),
        C(b"AUTH LOGIN\r\n"), S(b"334 VXNlcm5hbWU6\r\n"), C(b64("user") + b"\r\n"),
        S(b"334 UGFzc3dvcmQ6\r\n"), C(b64("pass") + b"\r\n"), S(b"235 2.7.0 ok\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("user", "pass", initial_response_ok=False))
    assert got == Outcome(value=(235, b"2.7.0 ok"))


def test_login_every_mechanism_fails_raises_the_last_error() -> None:
    script = [
        *ehlo_auth("PLAIN LOGIN"),
        C(b"AUTH PLAIN " + b64("\0user\0pass") + b"\r\n"), S(b"535 5.7.8 no plain\r\n"),
        C(b"AUTH LOGIN " + b64("user") + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
        C(b64("pass") + b"\r\n"), S(b"535 5.7.8 no login\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("user", "pass"))
    assert got == Outcome(error="SMTPAuthenticationError", args=(535, b"5.7.8 no login"))


def test_login_plain_only_refused() -> None:
    script = [
        *ehlo_auth("PLAIN"),
        C(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n"),
        S(b"535 5.7.8 bad\r\n"),
    ]
    got = same_as_stdlib(script, lambda s: s.login("u", "p"))
    assert got == Outcome(error="SMTPAuthenticationError", args=(535, b"5.7.8 bad"))


def test_login_503_already_authenticated() -> None:
    script = [
        *ehlo_auth("PLAIN"),
        C(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n"),
        S(b"503 5.5.1 already\r\n"),
    ]
    assert same_as_stdlib(script, lambda s: s.login("u", "p")) == Outcome(
        value=(503, b"5.5.1 already")
    )


def test_login_without_auth_extension() -> None:
    got = same_as_stdlib([EHLO_LINE, EHLO_SIMPLE], lambda s: s.login("u", "p"))
    assert got == Outcome(
        error="SMTPNotSupportedError", args=("SMTP AUTH extension not supported by server.",)
    )


def test_login_without_a_suitable_mechanism() -> None:
    got = same_as_stdlib(ehlo_auth("GSSAPI NTLM"), lambda s: s.login("u", "p"))
    assert got == Outcome(error="SMTPException", args=("No suitable authentication method found.",))


def test_login_plain_non_ascii_password_is_utf8() -> None:
    password = "p\u00e4ssw\u00f6rd\u20ac"
    script = [
        *ehlo_auth("PLAIN"),
        C(b"AUTH PLAIN " + b64("\0j\u00fcrgen\0".encode() + password.encode("utf-8")) + b"\r\n"),
        S(b"235 ok\r\n"),
    ]
    result, _ = play(connected(), script, lambda c: c.login("j\u00fcrgen", password))
    assert result == Outcome(value=(235, b"ok"))


def test_login_login_non_ascii_password_is_utf8() -> None:
    password = "p\u00e4ssw\u00f6rd\u20ac"
    script = [
        *ehlo_auth("LOGIN"),
        C(b"AUTH LOGIN " + b64("j\u00fcrgen") + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
        C(b64(password.encode("utf-8")) + b"\r\n"), S(b"235 ok\r\n"),
    ]  # fmt: skip
    result, _ = play(connected(), script, lambda c: c.login("j\u00fcrgen", password))
    assert result == Outcome(value=(235, b"ok"))


def test_auth_with_an_smtplib_style_authobject() -> None:
    def authobject(challenge: bytes | None = None) -> str:
        return "first" if challenge is None else "answer to " + challenge.decode()

    script = [
        *lines(f"AUTH XTEST {b64('first').decode()}"), S(b"334 " + b64("question") + b"\r\n"),
        C(b64("answer to question") + b"\r\n"), S(b"235 2.7.0 ok\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.auth("xtest", authobject))
    assert got == Outcome(value=(235, b"2.7.0 ok"))


def test_auth_authobject_without_initial_response() -> None:
    seen: list[bytes | None] = []

    def authobject(challenge: bytes | None = None) -> str:
        seen.append(challenge)
        return "resp"

    script = [
        *lines("AUTH XTEST"),
        S(b"334 " + b64("chal") + b"\r\n"),
        C(b64("resp") + b"\r\n"),
        S(b"235 ok\r\n"),
    ]
    got = same_as_stdlib(script, lambda s: s.auth("XTEST", authobject, initial_response_ok=False))
    assert got == Outcome(value=(235, b"ok"))
    assert seen == [b"chal", b"chal"]  # once for smtplib, once for the client


@pytest.mark.parametrize(
    ("mechanism", "script"),
    [
        ("PLAIN", [C(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n"), S(b"235 ok\r\n")]),
        (
            "LOGIN",
            [
                C(b"AUTH LOGIN " + b64("u") + b"\r\n"),
                S(b"334 UGFzc3dvcmQ6\r\n"),
                C(b64("p") + b"\r\n"),
                S(b"235 ok\r\n"),
            ],
        ),
        (
            "CRAM-MD5",
            [
                C(b"AUTH CRAM-MD5\r\n"),
                S(b"334 " + b64(CHALLENGE) + b"\r\n"),
                C(cram_md5_response("u", "p")),
                S(b"235 ok\r\n"),
            ],
        ),
    ],
)
def test_auth_with_the_builtin_authobjects(mechanism: str, script: list[Step]) -> None:
    def action(s: Any) -> Any:
        s.user, s.password = "u", "p"
        method = getattr(s, "auth_" + mechanism.lower().replace("-", "_"))
        return s.auth(mechanism, method)

    assert same_as_stdlib(script, action) == Outcome(value=(235, b"ok"))


def test_auth_334_loop_is_capped() -> None:
    client = connected()
    operation = client.auth("XLOOP", lambda challenge=None: "again")
    sent: list[bytes] = []
    result: Any = None
    with pytest.raises(SMTPException) as caught:
        for _ in range(100):
            request = operation.send(result)
            result = None
            if isinstance(request, bytes | memoryview):
                sent.append(bytes(request))
            elif request is RECEIVE:
                result = b"334 " + b64("more") + b"\r\n"
        pytest.fail("the client never gave up")
    assert "infinite loop" in str(caught.value)
    assert type(caught.value) is SMTPException  # like smtplib: not an authentication error
    responses = [line for line in sent if not line.startswith(b"AUTH")]
    # smtplib gives up after at most 6 responses; so must the client.
    assert 1 <= len(responses) <= 6


def test_auth_refused_mechanism_name() -> None:
    client = connected()
    with pytest.raises(ValueError):
        Peer([]).run(client.auth("BAD NAME\r\nRSET", lambda challenge=None: "x"))


# --------------------------------------------------------------------------- debug output


def test_debug_output_format(capsys: pytest.CaptureFixture[str]) -> None:
    client = connected()
    client.debuglevel = 1
    play(client, [C(b"ehlo x\r\n"), S(b"250 ok\r\n")], lambda c: c.ehlo("x"))
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "send: 'ehlo x\\r\\n'",
        "reply: b'250 ok\\r\\n'",
        "reply: retcode (250); Msg: b'ok'",
    ]


def test_debug_output_matches_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    script = [
        EHLO_LINE, S(b"250-server.example\r\n250 SIZE 1000\r\n"),
        C(b"mail FROM:<s@example.org> size=%d\r\n" % len(MESSAGE)), OK,
        RCPT_A, S(b"550 5.1.1 no\r\n"), RCPT_B, S(b"250-first\r\n250 second\r\n"),
        DATA, GO, BODY, OK, *lines("noop"), S(b"250 \xe9t\xe9\r\n"), *lines("quit"), S(b"221 bye\r\n"),
    ]  # fmt: skip

    def action(s: Any) -> Any:
        s.debuglevel = 1
        if isinstance(s, Client):
            return _chain(sendmail(s), s.noop(), s.quit())
        return [sendmail(s), s.noop(), s.quit()]

    capsys.readouterr()
    stdlib_play(script, action)
    expected = capsys.readouterr().err
    play(connected(), script, action)
    got = capsys.readouterr().err
    assert got == expected
    assert "send: 'mail FROM:<s@example.org> size=" in got


# --------------------------------------------------------------------------- PyMOTW transcripts
# The transcripts printed (with debuglevel 1) in PyMOTW-3's smtplib chapter, with the lines
# the page wraps joined again and the long reverse-DNS host name written as {HOST}.

PYMOTW_HOST = "1." + "0." * 31 + "ip6.arpa"

PYMOTW_SENDMAIL = r"""
send: 'ehlo {HOST}\r\n'
reply: b'250-{HOST}\r\n'
reply: b'250-SIZE 33554432\r\n'
reply: b'250 HELP\r\n'
reply: retcode (250); Msg: b'{HOST}\nSIZE 33554432\nHELP'
send: 'mail FROM:<author@example.com> size=236\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'rcpt TO:<recipient@example.com>\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'data\r\n'
reply: b'354 End data with <CR><LF>.<CR><LF>\r\n'
reply: retcode (354); Msg: b'End data with <CR><LF>.<CR><LF>'
data: (354, b'End data with <CR><LF>.<CR><LF>')
send: b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nTo: Recipient <recipient@example.com>\r\nFrom: Author <author@example.com>\r\nSubject: Simple test message\r\n\r\nThis is the body of the message.\r\n.\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
data: (250, b'OK')
send: 'quit\r\n'
reply: b'221 Bye\r\n'
reply: retcode (221); Msg: b'Bye'
"""

PYMOTW_AUTHENTICATED_PLAIN = r"""
send: 'ehlo {HOST}\r\n'
reply: b'250-{HOST}\r\n'
reply: b'250-SIZE 33554432\r\n'
reply: b'250 HELP\r\n'
reply: retcode (250); Msg: b'{HOST}\nSIZE 33554432\nHELP'
(no STARTTLS)
(no AUTH)
send: 'mail FROM:<author@example.com> size=220\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'rcpt TO:<doug@pymotw.com>\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'data\r\n'
reply: b'354 End data with <CR><LF>.<CR><LF>\r\n'
reply: retcode (354); Msg: b'End data with <CR><LF>.<CR><LF>'
data: (354, b'End data with <CR><LF>.<CR><LF>')
send: b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nTo: Recipient <doug@pymotw.com>\r\nFrom: Author <author@example.com>\r\nSubject: Test from PyMOTW\r\n\r\nTest message from PyMOTW.\r\n.\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
data: (250, b'OK')
send: 'quit\r\n'
reply: b'221 Bye\r\n'
reply: retcode (221); Msg: b'Bye'
"""

PYMOTW_AUTHENTICATED_TLS = r"""
send: 'ehlo {HOST}\r\n'
reply: b'250-mail.isp.net\r\n'
reply: b'250-PIPELINING\r\n'
reply: b'250-SIZE 71000000\r\n'
reply: b'250-ENHANCEDSTATUSCODES\r\n'
reply: b'250-8BITMIME\r\n'
reply: b'250-AUTH PLAIN LOGIN\r\n'
reply: b'250 AUTH=PLAIN LOGIN\r\n'
reply: retcode (250); Msg: b'mail.isp.net\nPIPELINING\nSIZE 71000000\nENHANCEDSTATUSCODES\n8BITMIME\nAUTH PLAIN LOGIN\nAUTH=PLAIN LOGIN'
(no STARTTLS)
(logging in)
send: 'AUTH PLAIN AGRvdWdoZWxsbWFubkBmYXN0bWFpbC5mbQBUTUZ3MDBmZmFzdG1haWw=\r\n'
reply: b'235 2.0.0 OK\r\n'
reply: retcode (235); Msg: b'2.0.0 OK'
send: 'mail FROM:<author@example.com> size=220\r\n'
reply: b'250 2.1.0 Ok\r\n'
reply: retcode (250); Msg: b'2.1.0 Ok'
send: 'rcpt TO:<doug@pymotw.com>\r\n'
reply: b'250 2.1.5 Ok\r\n'
reply: retcode (250); Msg: b'2.1.5 Ok'
send: 'data\r\n'
reply: b'354 End data with <CR><LF>.<CR><LF>\r\n'
reply: retcode (354); Msg: b'End data with <CR><LF>.<CR><LF>'
data: (354, b'End data with <CR><LF>.<CR><LF>')
send: b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nTo: Recipient <doug@pymotw.com>\r\nFrom: Author <author@example.com>\r\nSubject: Test from PyMOTW\r\n\r\nTest message from PyMOTW.\r\n.\r\n'
reply: b'250 2.0.0 Ok: queued as A0EF7F2983\r\n'
reply: retcode (250); Msg: b'2.0.0 Ok: queued as A0EF7F2983'
data: (250, b'2.0.0 Ok: queued as A0EF7F2983')
send: 'quit\r\n'
reply: b'221 2.0.0 Bye\r\n'
reply: retcode (221); Msg: b'2.0.0 Bye'
"""

# Printed by a Python 2 smtplib, whose verify() still sent the address in angle brackets.
PYMOTW_VERIFY = r"""
send: 'vrfy <dhellmann>\r\n'
reply: '250 2.1.5 Doug Hellmann <dhellmann@mail>\r\n'
reply: retcode (250); Msg: 2.1.5 Doug Hellmann <dhellmann@mail>
send: 'vrfy <notthere>\r\n'
reply: '550 5.1.1 <notthere>... User unknown\r\n'
reply: retcode (550); Msg: 5.1.1 <notthere>... User unknown
send: 'quit\r\n'
reply: '221 2.0.0 mail closing connection\r\n'
reply: retcode (221); Msg: 2.0.0 mail closing connection
"""


def transcript_lines(transcript: str) -> list[str]:
    return transcript.replace("{HOST}", PYMOTW_HOST).strip().splitlines()


def transcript_script(transcript: str) -> list[Step]:
    """The conversation of a transcript: ``send:`` lines are C steps, ``reply:`` lines S steps."""
    script: list[Step] = []
    for line in transcript_lines(transcript):
        kind, _, rest = line.partition(": ")
        if kind not in ("send", "reply") or rest.startswith("retcode"):
            continue
        value = ast.literal_eval(rest)
        data = value if isinstance(value, bytes) else value.encode("latin-1")
        script.append(C(data) if kind == "send" else S(data))
    return script


def debug_lines(transcript: str) -> list[str]:
    """The lines smtplib itself printed (not the example program's own messages)."""
    return [
        line
        for line in transcript_lines(transcript)
        if line.startswith(("send: ", "reply: ", "data: "))
    ]


def message_of(script: list[Step]) -> str:
    """The message text the example passed to sendmail(): msg.as_string(), with LF line ends."""
    body = next(s.data for s in script if isinstance(s, C) and s.data.startswith(b"Content-Type"))
    assert body.endswith(b"\r\n.\r\n")
    return body[: -len(b"\r\n.\r\n")].decode("ascii").replace("\r\n", "\n")


def pymotw_client() -> Client:
    client = Client()  # no local_hostname: the example's socket.getfqdn() answer is used
    client.connecting("mail", 25)
    # The transcripts start after the greeting (debuglevel was set after connecting).
    Peer([S(b"220 mail ESMTP\r\n")]).run(client.greeting())
    return client


def test_pymotw_sendmail_transcript(capsys: pytest.CaptureFixture[str]) -> None:
    script = transcript_script(PYMOTW_SENDMAIL)
    message = message_of(script)
    assert len(message.replace("\n", "\r\n")) == 236  # the size= the transcript shows
    client = pymotw_client()
    client.debuglevel = 1
    capsys.readouterr()
    peer = Peer(script, hostname=PYMOTW_HOST)
    refused = peer.run(client.sendmail("author@example.com", ["recipient@example.com"], message))
    assert peer.run(client.quit()) == (221, b"Bye")
    peer.expect_finished()
    assert refused == {}
    expected_sends = [step.data for step in script if isinstance(step, C)]
    assert peer.writes == expected_sends
    # The debug output is the transcript itself.
    assert capsys.readouterr().err.splitlines() == debug_lines(PYMOTW_SENDMAIL)


def test_pymotw_sendmail_transcript_is_what_stdlib_sends() -> None:
    script = transcript_script(PYMOTW_SENDMAIL)
    peer = Peer(script)
    smtp = stdlib_smtp(peer, local_hostname=PYMOTW_HOST)
    smtp.sendmail("author@example.com", ["recipient@example.com"], message_of(script))
    smtp.quit()
    peer.expect_finished()


def test_pymotw_authenticated_insecure_transcript(capsys: pytest.CaptureFixture[str]) -> None:
    script = transcript_script(PYMOTW_AUTHENTICATED_PLAIN)
    client = pymotw_client()
    client.debuglevel = 1
    capsys.readouterr()
    peer = Peer(script, hostname=PYMOTW_HOST)
    peer.run(client.ehlo())
    assert not client.has_extn("STARTTLS")  # "(no STARTTLS)"
    assert not client.has_extn("AUTH")  # "(no AUTH)"
    message = message_of(script)
    assert peer.run(client.sendmail("author@example.com", ["doug@pymotw.com"], message)) == {}
    assert peer.run(client.quit()) == (221, b"Bye")
    peer.expect_finished()
    assert peer.writes == [step.data for step in script if isinstance(step, C)]
    assert capsys.readouterr().err.splitlines() == debug_lines(PYMOTW_AUTHENTICATED_PLAIN)


def test_pymotw_authenticated_tls_transcript() -> None:
    # The second run used SMTP_SSL (TLS from the first byte), PLAIN login and a server that
    # advertises PIPELINING: the client may pipeline MAIL/RCPT/DATA, with the same bytes.
    script = transcript_script(PYMOTW_AUTHENTICATED_TLS)
    auth_line = next(s.data for s in script if isinstance(s, C) and s.data.startswith(b"AUTH"))
    _, user, password = base64.b64decode(auth_line.split()[2]).split(b"\0")
    client = pymotw_client()
    peer = Peer(script, hostname=PYMOTW_HOST, pipelining=True)
    peer.run(client.ehlo())
    assert not client.has_extn("STARTTLS")  # "(no STARTTLS)"
    assert peer.run(client.login(user.decode(), password.decode())) == (235, b"2.0.0 OK")
    message = message_of(script)
    assert peer.run(client.sendmail("author@example.com", ["doug@pymotw.com"], message)) == {}
    assert peer.run(client.quit()) == (221, b"2.0.0 Bye")
    peer.expect_finished()
    sends = [step.data for step in script if isinstance(step, C)]
    assert peer.client_bytes == b"".join(sends)
    assert b"".join(sends[2:5]) in peer.writes  # MAIL, RCPT and DATA in one write


def test_pymotw_verify_transcript() -> None:
    # The bytes of the transcript, sent with the low-level API (Python 2's verify() quoted
    # the address; today's smtplib and the client send it bare, see the next test).
    script = transcript_script(PYMOTW_VERIFY)
    client = pymotw_client()
    peer = Peer(script)
    dhellmann = peer.run(client.docmd("vrfy", "<dhellmann>"))
    notthere = peer.run(client.docmd("vrfy", "<notthere>"))
    assert peer.run(client.quit()) == (221, b"2.0.0 mail closing connection")
    peer.expect_finished()
    assert peer.writes == [step.data for step in script if isinstance(step, C)]
    assert dhellmann == (250, b"2.1.5 Doug Hellmann <dhellmann@mail>")
    assert notthere == (550, b"5.1.1 <notthere>... User unknown")


def test_pymotw_verify_with_todays_smtplib() -> None:
    replies = [step for step in transcript_script(PYMOTW_VERIFY) if isinstance(step, S)]
    script = [
        *lines("vrfy dhellmann"),
        replies[0],
        *lines("vrfy notthere"),
        replies[1],
        *lines("quit"),
        replies[2],
    ]

    def action(s: Any) -> Any:
        if isinstance(s, Client):
            return _chain(s.verify("dhellmann"), s.verify("notthere"), s.quit())
        return (s.verify("dhellmann"), s.verify("notthere"), s.quit())

    expected, _ = stdlib_play(script, action)
    got, peer = play(pymotw_client(), script, action)
    assert got.value == (221, b"2.0.0 mail closing connection")
    assert expected.value[-1] == got.value
    assert peer.closed


def test_starttls_cram_md5_sendmail_session() -> None:
    # Not a PyMOTW transcript: the STARTTLS + CRAM-MD5 path its example takes when offered.
    client = connected()
    script = [
        EHLO_LINE, S(b"250-server.example\r\n250-STARTTLS\r\n250 SIZE 1000\r\n"),
        C(b"STARTTLS\r\n"), S(b"220 2.0.0 ready\r\n"), TLS,
        EHLO_LINE, S(b"250-server.example\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 SIZE 1000\r\n"),
        C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(CHALLENGE) + b"\r\n"),
        C(cram_md5_response("tim", "tanstaaftanstaaf")), S(b"235 2.7.0 ok\r\n"),
        C(b"mail FROM:<s@example.org> size=%d\r\n" % len(MESSAGE)), OK, RCPT_A, OK,
        DATA, GO, BODY, OK, *lines("quit"), S(b"221 bye\r\n"),
    ]  # fmt: skip
    peer = Peer(script)
    peer.run(client.ehlo())
    assert client.has_extn("starttls")
    peer.run(client.starttls())
    peer.run(client.ehlo())
    assert not client.has_extn("starttls")
    assert peer.run(client.login("tim", "tanstaaftanstaaf")) == (235, b"2.7.0 ok")
    assert peer.run(client.sendmail("s@example.org", ["a@example.org"], MESSAGE)) == {}
    peer.run(client.quit())
    peer.expect_finished()
    assert peer.closed


def test_script_errors_are_reported() -> None:
    # The harness itself: a client that sends something unexpected fails loudly.
    client = connected()
    with pytest.raises(ScriptError):
        Peer([*lines("rset"), OK]).run(client.noop())


# --------------------------------------------------------------------------- differential


class ReactiveServer:
    """A small, well-behaved SMTP server answering each command line with a scripted code.

    It never pipelines anything itself; it answers lines as they arrive, so a client that
    pipelines gets every reply it asked for.  After a 421 (or the reply to QUIT) it closes.
    """

    def __init__(
        self, features: list[str], mail: int, rcpts: list[int], data: int, body: int
    ) -> None:
        self.features = features
        self.codes = {"mail": mail, "data": data, "body": body}
        self.rcpt_codes = list(rcpts)
        self.pipelining = "PIPELINING" in features
        self.inbox = b""
        self.outbox: list[bytes] = []
        self.closed = False
        self.in_body = False
        self.mail_ok = False
        self.accepted = 0
        self.rcpts_seen = 0
        self.lockstep_violations = 0

    def _reply(self, code: int, text: str) -> None:
        if self.closed:
            return
        self.outbox.append(f"{code} {text}\r\n".encode())
        if code == 421 or text == "bye":
            self.closed = True

    def _reset(self) -> None:
        self.mail_ok = False
        self.accepted = 0

    def receive(self, data: bytes) -> None:
        if self.outbox and not self.pipelining and not self.in_body:
            self.lockstep_violations += 1
        self.inbox += data
        while not self.closed:
            if self.in_body:
                if self.inbox.startswith(b".\r\n"):
                    end = 0
                else:
                    end = self.inbox.find(b"\r\n.\r\n")
                    if end < 0:
                        return
                    end += 2
                self.inbox = self.inbox[end + 3 :]
                self.in_body = False
                self._reset()
                self._reply(self.codes["body"], "reply to the body")
                continue
            end = self.inbox.find(b"\r\n")
            if end < 0:
                return
            line, self.inbox = self.inbox[:end].decode(), self.inbox[end + 2 :]
            self._command(line.split(" ", 1)[0].lower())

    def _command(self, verb: str) -> None:
        if verb in ("ehlo", "helo"):
            self._reset()
            lines = ["server.example", *self.features]
            text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}"
            self.outbox.append(text.encode() + b"\r\n")
        elif verb == "mail":
            code = self.codes["mail"]
            self.mail_ok = code == 250
            self._reply(code, "reply to MAIL")
        elif verb == "rcpt":
            if not self.mail_ok:
                self._reply(503, "5.5.1 need MAIL first")
                return
            code = self.rcpt_codes[self.rcpts_seen]
            self.rcpts_seen += 1
            self.accepted += code in (250, 251)
            self._reply(code, f"reply to RCPT {self.rcpts_seen}")
        elif verb == "data":
            if not self.mail_ok:
                self._reply(503, "5.5.1 need MAIL first")
            elif not self.accepted:
                self._reply(554, "5.5.1 no valid recipients")
            else:
                code = self.codes["data"]
                self.in_body = code == 354
                self._reply(code, "reply to DATA")
        elif verb == "rset":
            self._reset()
            self._reply(250, "reset")
        elif verb == "quit":
            self._reply(221, "bye")
        else:
            self._reply(500, "unknown")

    def read(self) -> bytes:
        if self.outbox:
            data = b"".join(self.outbox)
            self.outbox.clear()
            return data
        if self.closed:
            return b""
        raise AssertionError("the client waits for a reply to nothing: deadlock")


def run_client_against(server: ReactiveServer, action: Action) -> tuple[Outcome, bytes]:
    client = connected()
    sent: list[bytes] = []

    def drive() -> Any:
        operation = action(client)
        result: Any = None
        while True:
            try:
                request = operation.send(result)
            except StopIteration as done:
                return done.value
            result = None
            if isinstance(request, bytes | memoryview):
                sent.append(bytes(request))
                server.receive(bytes(request))
            elif request is RECEIVE:
                result = server.read()

    return outcome(drive), b"".join(sent)


class _ReactiveFile:
    def __init__(self, server: ReactiveServer) -> None:
        self.server = server
        self.buffer = b""

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self.buffer:
            data = self.server.read()
            if not data:
                break
            self.buffer += data
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def close(self) -> None:
        pass


class _ReactiveSocket:
    def __init__(self, server: ReactiveServer, sent: list[bytes]) -> None:
        self.server = server
        self.sent = sent

    def sendall(self, data: bytes) -> None:
        self.sent.append(bytes(data))
        self.server.receive(bytes(data))

    def makefile(self, mode: str) -> _ReactiveFile:
        return _ReactiveFile(self.server)

    def close(self) -> None:
        pass


def run_stdlib_against(server: ReactiveServer, action: Action) -> tuple[Outcome, bytes]:
    sent: list[bytes] = []
    smtp = stdlib_smtp(Peer([]), local_hostname=HOST)
    smtp.sock = _ReactiveSocket(server, sent)  # type: ignore[assignment]
    return outcome(lambda: action(smtp)), b"".join(sent)


@settings(max_examples=150, deadline=None)
@given(
    mail=st.sampled_from([250, 421, 451, 550, 553]),
    rcpts=st.lists(st.sampled_from([250, 251, 421, 450, 550, 552]), min_size=1, max_size=4),
    data=st.sampled_from([354, 421, 451, 554]),
    body=st.sampled_from([250, 421, 451, 552, 554]),
    size=st.booleans(),
)
def test_sendmail_differential_against_stdlib(
    mail: int, rcpts: list[int], data: int, body: int, size: bool
) -> None:
    recipients = [f"r{index}@example.org" for index in range(len(rcpts))]

    def action(s: Any) -> Any:
        return s.sendmail("s@example.org", recipients, MESSAGE)

    features = ["SIZE 100000"] if size else ["8BITMIME"]
    reference, stdlib_bytes = run_stdlib_against(
        ReactiveServer(features, mail, rcpts, data, body), action
    )
    # Lock-step: the same bytes and the same outcome as smtplib.
    server = ReactiveServer(features, mail, rcpts, data, body)
    got, client_bytes = run_client_against(server, action)
    assert got == reference
    assert client_bytes == stdlib_bytes
    assert server.lockstep_violations == 0
    # Pipelined: the same outcome.
    server = ReactiveServer([*features, "PIPELINING"], mail, rcpts, data, body)
    got, client_bytes = run_client_against(server, action)
    assert got == reference
    assert client_bytes.startswith(b"ehlo client.example\r\nmail FROM:<s@example.org>")
