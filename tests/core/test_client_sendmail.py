"""``Client.sendmail`` driven offline (``tests/offline.py``): each scenario played by the real
``smtplib`` and by ``Client``, lock-step and pipelined, then the same against a reactive peer
for any combination of replies (a differential test)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto.body import PIECE_SIZE
from tests.offline import (
    BODY,
    DATA,
    EHLO_LINE,
    EHLO_PIPELINING,
    EHLO_SIMPLE,
    GO,
    MAIL,
    MESSAGE,
    OK,
    RCPT_A,
    RCPT_B,
    RSET,
    C,
    Outcome,
    Peer,
    ReactiveServer,
    S,
    Step,
    connected,
    play,
    run_client_against,
    run_stdlib_against,
    same_as_stdlib,
    sending,
    sendmail,
    smtplib_spelling,
    stdlib_play,
)

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
    big = (b"." + b"x" * 998 + b"\r\n") * (2 * PIECE_SIZE // 1000 + 3)
    wire = big.replace(b"\r\n.", b"\r\n..")
    wire = b"." + wire + b".\r\n"
    script = [EHLO_LINE, EHLO_SIMPLE, MAIL, OK, RCPT_A, OK, DATA, GO, C(wire), OK]
    action = sending("s@example.org", ["a@example.org"], big)
    client = connected()
    result, peer = play(client, script, action)
    assert result == Outcome(value={})
    assert len(peer.writes) > 4  # the body went out in several writes


# --------------------------------------------------------------------------- differential


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
    sent_mail = smtplib_spelling(b"ehlo client.example\r\nmail FROM:<s@example.org>")
    assert client_bytes.startswith(sent_mail)
