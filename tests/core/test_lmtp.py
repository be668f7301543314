"""LMTP offline: one reply per accepted recipient after the message (RFC 2033), counted by
``ClientConnection`` (fed replies, ``tests/core/connections.py``) and reported by
``Client.sendmail`` and ``data`` (driven by scripted peers, ``tests/offline.py``).  LMTP against
real servers, on every adapter: ``tests/test_lmtp.py``."""

from __future__ import annotations

import pytest

from smtp_proto.commands import Bdat, Data, Mail, Rcpt, Rset
from smtp_proto.connection import NEED_DATA, DataEnd, State
from smtp_proto.replies import Reply
from tests.core.connections import EHLO_PIPELINING, EHLO_PLAIN, ready, reply
from tests.offline import (
    BODY,
    DATA,
    GO,
    MAIL,
    MESSAGE,
    OK,
    RCPT_A,
    RCPT_B,
    C,
    Outcome,
    S,
    Step,
    chain,
    connected,
    play,
    sendmail,
)

# --------------------------------------------------------------------------- the client's results

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
        lambda c: chain(
            c.ehlo(), c.mail("s@example.org"), c.rcpt("a@example.org"), c.rcpt("b@example.org"),
            c.data(MESSAGE),
        ),
    )  # fmt: skip
    assert result == Outcome(value=(550, b"5.0.0 b failed"))


# --------------------------------------------------------------------------- the connection's count


def test_lhlo_features() -> None:
    conn = ready(b"250-lmtp.example\r\n250 PIPELINING\r\n", lmtp=True)
    assert conn.extensions.pipelining


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    conn = ready(EHLO_PLAIN, lmtp=True)
    conn.send(Mail("s@x"))
    reply(conn, b"250 ok\r\n")
    for recipient, code in (("a@x", 250), ("b@x", 550), ("c@x", 251)):
        conn.send(Rcpt(recipient))
        assert reply(conn, b"%d r\r\n" % code).code == code
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    assert conn.send_data(b"body") + conn.end_data() == b"body\r\n.\r\n"
    assert conn.pending == (DataEnd("a@x"), DataEnd("c@x"))
    assert [c.recipient for c in conn.pending if isinstance(c, DataEnd)] == ["a@x", "c@x"]
    assert reply(conn, b"250 2.1.5 a delivered\r\n").code == 250
    assert conn.pending == (DataEnd("c@x"),)
    assert reply(conn, b"452 4.2.2 c over quota\r\n").code == 452
    assert conn.pending == ()
    # The next transaction starts from scratch.
    conn.send(Mail("s@x"))
    reply(conn, b"250 ok\r\n")
    conn.send(Rcpt("d@x"))
    reply(conn, b"250 ok\r\n")
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    conn.end_data()
    assert conn.pending == (DataEnd("d@x"),)


def test_lmtp_rset_forgets_accepted_recipients() -> None:
    conn = ready(EHLO_PLAIN, lmtp=True)
    for command in (Mail("s@x"), Rcpt("a@x"), Rset(), Mail("s@x"), Rcpt("b@x"), Data()):
        conn.send(command)
        reply(conn, b"354 go\r\n" if isinstance(command, Data) else b"250 ok\r\n")
    conn.end_data()
    assert conn.pending == (DataEnd("b@x"),)


def test_lmtp_bdat_last_gets_one_reply_per_recipient() -> None:
    conn = ready(EHLO_PIPELINING, lmtp=True)
    conn.send(Mail("s@x"))
    reply(conn, b"250 ok\r\n")
    for recipient, code in (("a@x", 250), ("b@x", 550), ("c@x", 250)):
        conn.send(Rcpt(recipient))
        reply(conn, b"%d r\r\n" % code)
    conn.send_bdat(b"part one ")
    reply(conn, b"250 chunk\r\n")
    assert conn.send_bdat(b"part two", last=True) == b"BDAT 8 LAST\r\npart two"
    assert conn.pending == (Bdat(8, last=True),)
    assert reply(conn, b"250 a ok\r\n").code == 250
    assert conn.pending == (DataEnd("c@x"),)  # the first reply was a@x's
    assert reply(conn, b"550 c refused\r\n").code == 550
    assert conn.pending == ()


def test_lmtp_bdat_last_pipelined_with_the_recipients() -> None:
    # RFC 3030 lets BDAT be pipelined after the RCPTs; an LMTP server then sends one reply
    # per accepted recipient after BDAT LAST (RFC 2033), as it does after DATA.
    conn = ready(EHLO_PIPELINING, lmtp=True)
    for command in (Mail("s@x"), Rcpt("a@x"), Rcpt("b@x")):
        conn.send(command)
    conn.send_bdat(b"message", last=True)
    conn.receive_data(b"250 sender ok\r\n250 a ok\r\n250 b ok\r\n250 a delivered\r\n")
    conn.receive_data(b"452 b over quota\r\n")
    codes = []
    while (ev := conn.next_event()) is not NEED_DATA:
        assert isinstance(ev, Reply)
        codes.append(ev.code)
    assert codes == [250, 250, 250, 250, 452]
    assert conn.state is State.READY
    assert conn.pending == ()
