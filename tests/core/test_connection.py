"""Tests for ``smtp_proto.connection.ClientConnection``: states, events and framing safety."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_proto.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Helo,
    Mail,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
)
from smtp_proto.connection import (
    NEED_DATA,
    ClientConnection,
    ConnectionClosed,
    DataEnd,
    Greeting,
    State,
)
from smtp_proto.errors import LocalProtocolError, RemoteProtocolError
from smtp_proto.replies import Reply
from tests.core.connections import (
    EHLO_PIPELINING,
    EHLO_PLAIN,
    event,
    greeted,
    in_body,
    ready,
    reply,
)
from tests.offline import RCPT_TO, smtplib_spelling

# --------------------------------------------------------------------------- greeting


def test_greeting_220() -> None:
    conn = ClientConnection()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"220-server.example\r\n220 ")
    assert conn.next_event() is NEED_DATA
    assert conn.state is State.GREETING
    ev = event(conn, b"ESMTP ready\r\n")
    assert isinstance(ev, Greeting)
    assert ev.code == 220
    assert ev.lines == (b"server.example", b"ESMTP ready")
    assert conn.state is State.READY
    assert conn.next_event() is NEED_DATA


def test_greeting_554_still_allows_quit() -> None:
    conn = ClientConnection()
    ev = event(conn, b"554 no service for you\r\n")
    assert isinstance(ev, Greeting)
    assert ev.code == 554
    assert conn.state is not State.CLOSED
    assert conn.send(Quit()) == b"quit\r\n"
    assert reply(conn, b"221 bye\r\n").code == 221
    assert conn.state is State.CLOSED


def test_greeting_421_closes() -> None:
    conn = ClientConnection()
    ev = event(conn, b"421 too busy\r\n")
    assert isinstance(ev, Greeting)
    assert ev.code == 421
    assert conn.state is State.CLOSED
    assert isinstance(conn.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("x"))


def test_commands_before_greeting_are_refused() -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("x"))


def test_eof_before_greeting() -> None:
    conn = ClientConnection()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.state is State.CLOSED


# --------------------------------------------------------------------------- replies


def test_need_data_until_the_reply_completes_byte_by_byte() -> None:
    conn = greeted()
    conn.send(Noop())
    data = b"250-one\r\n250 two\r\n"
    for index in range(len(data) - 1):
        conn.receive_data(data[index : index + 1])
        assert conn.next_event() is NEED_DATA
    ev = event(conn, data[-1:])
    assert ev == Reply(250, (b"one", b"two"), data)
    assert conn.pending == ()


def test_reply_with_nothing_pending_is_a_protocol_error() -> None:
    conn = greeted()
    conn.receive_data(b"250 surprise\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_unsolicited_421_closes() -> None:
    conn = greeted()
    ev = event(conn, b"421 4.4.2 idle too long\r\n")
    assert isinstance(ev, Reply)
    assert ev.code == 421
    assert conn.state is State.CLOSED


def test_ehlo_features_and_extensions() -> None:
    conn = greeted()
    assert conn.send(Ehlo("client")) == b"ehlo client\r\n"
    assert conn.features == {}
    reply(conn, EHLO_PIPELINING)
    assert conn.features == {"pipelining": "", "chunking": "", "size": "1000"}
    assert conn.extensions.pipelining
    assert conn.extensions.chunking
    assert conn.extensions.size == 1000


def test_failed_ehlo_leaves_no_features() -> None:
    conn = greeted()
    conn.send(Ehlo("client"))
    assert reply(conn, b"502 command not implemented\r\n").code == 502
    assert conn.features == {}
    assert not conn.extensions.pipelining
    assert conn.state is State.READY


def test_new_greeting_forgets_features() -> None:
    conn = ready()
    conn.send(Helo("client"))
    assert conn.features == {}
    assert not conn.extensions.pipelining
    reply(conn, b"250 hello\r\n")
    assert conn.features == {}


# --------------------------------------------------------------------------- pipelining


def test_without_pipelining_one_command_at_a_time() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(Mail("s@x"))
    with pytest.raises(LocalProtocolError):
        conn.send(Rcpt("a@x"))
    assert conn.pending == (Mail("s@x"),)
    assert conn.state is State.READY
    reply(conn, b"250 ok\r\n")
    assert conn.send(Rcpt("a@x")) == RCPT_TO + b"<a@x>\r\n"


def test_pipelined_transaction_replies_in_order() -> None:
    conn = ready()
    sent = b"".join(
        conn.send(command) for command in (Mail("s@x"), Rcpt("a@x"), Rcpt("b@x"), Data())
    )
    assert sent == smtplib_spelling(
        b"mail FROM:<s@x>\r\nrcpt TO:<a@x>\r\nrcpt TO:<b@x>\r\ndata\r\n"
    )
    assert conn.pending == (Mail("s@x"), Rcpt("a@x"), Rcpt("b@x"), Data())
    conn.receive_data(
        b"250 2.1.0 sender ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 go\r\n"
    )
    codes = []
    while (ev := conn.next_event()) is not NEED_DATA:
        assert isinstance(ev, Reply)
        codes.append(ev.code)
        assert len(conn.pending) == 4 - len(codes)
    assert codes == [250, 550, 250, 354]
    assert conn.state is State.BODY


@pytest.mark.parametrize(
    "follower", [Noop(), Rset(), Mail("s@x"), Rcpt("c@x"), Quit(), Data(), Raw("NOOP")], ids=repr
)
def test_nothing_may_follow_data_before_its_reply(follower: Command) -> None:
    conn = ready()
    for command in (Mail("s@x"), Rcpt("a@x"), Data()):
        conn.send(command)
    with pytest.raises(LocalProtocolError):
        conn.send(follower)
    assert conn.pending == (Mail("s@x"), Rcpt("a@x"), Data())


@pytest.mark.parametrize("leader", [Ehlo("x"), StartTLS(), Quit(), Noop(), Helo("x")], ids=repr)
def test_group_ending_commands_cannot_be_followed(leader: Command) -> None:
    conn = ready()
    conn.send(leader)
    with pytest.raises(LocalProtocolError):
        conn.send(Rset())


def test_rset_and_mail_may_be_pipelined() -> None:
    conn = ready()
    conn.send(Rset())
    conn.send(Mail("s@x"))
    conn.send(Rcpt("a@x"))
    assert [reply(conn, b"250 ok\r\n").code for _ in range(3)] == [250, 250, 250]
    assert conn.pending == ()


@given(
    st.lists(st.sampled_from([250, 251, 450, 550]), min_size=1, max_size=6),
    st.lists(st.integers(1, 30), min_size=1, max_size=10),
)
def test_pipelined_replies_any_chunking(rcpt_codes: list[int], sizes: list[int]) -> None:
    conn = ready()
    commands: list[Command] = [Mail("s@x")]
    commands += [Rcpt(f"r{index}@x") for index in range(len(rcpt_codes))]
    commands.append(Data())
    for command in commands:
        conn.send(command)
    codes = [250, *rcpt_codes, 354]
    stream = b"".join(b"%d-line one\r\n%d line two\r\n" % (code, code) for code in codes)
    got: list[int] = []
    position = 0
    index = 0
    while position < len(stream):
        size = sizes[index % len(sizes)]
        conn.receive_data(stream[position : position + size])
        position += size
        index += 1
        while (ev := conn.next_event()) is not NEED_DATA:
            assert isinstance(ev, Reply)
            got.append(ev.code)
    assert got == codes
    assert conn.state is State.BODY
    assert conn.pending == ()


# --------------------------------------------------------------------------- AUTH


def test_auth_exchange() -> None:
    conn = ready(EHLO_PLAIN)
    assert conn.send(Auth("LOGIN")) == b"AUTH LOGIN\r\n"
    assert conn.state is State.SASL
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())  # only an AuthResponse may follow a 334
    assert reply(conn, b"334 VXNlcm5hbWU6\r\n").code == 334
    assert conn.state is State.SASL
    for other in (Noop(), Mail("s@x"), Quit(), Auth("PLAIN")):
        with pytest.raises(LocalProtocolError):
            conn.send(other)
    assert conn.send(AuthResponse(b"user")) == b"dXNlcg==\r\n"
    assert reply(conn, b"334 UGFzc3dvcmQ6\r\n").code == 334
    assert conn.send(AuthResponse(b"pass")) == b"cGFzcw==\r\n"
    assert reply(conn, b"235 2.7.0 ok\r\n").code == 235
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError):
        conn.send(AuthResponse(b"late"))
    assert conn.send(Noop()) == b"noop\r\n"


def test_auth_refused_returns_to_ready() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(Auth("PLAIN", b"\0u\0p"))
    assert reply(conn, b"535 5.7.8 bad credentials\r\n").code == 535
    assert conn.state is State.READY


def test_auth_cancel() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(Auth("CRAM-MD5"))
    reply(conn, b"334 PDEyMzQ+\r\n")
    assert conn.send(AuthResponse(b"", cancel=True)) == b"*\r\n"
    assert reply(conn, b"501 5.7.0 cancelled\r\n").code == 501
    assert conn.state is State.READY


def test_auth_response_outside_sasl_refused() -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError):
        conn.send(AuthResponse(b"x"))


def test_421_during_sasl_closes() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(Auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    conn.send(AuthResponse(b"user"))
    assert reply(conn, b"421 bye\r\n").code == 421
    assert conn.state is State.CLOSED
    assert conn.pending == ()


# --------------------------------------------------------------------------- DATA


def test_data_body_and_reply() -> None:
    conn = in_body()
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())
    with pytest.raises(LocalProtocolError):
        conn.send(Quit())
    out = conn.send_data(b"Subject: x\n\n.hidden\r") + conn.send_data(b"\nend")
    out += conn.end_data()
    assert out == b"Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n"
    assert conn.state is State.READY
    assert conn.pending == (DataEnd(),)
    ev = reply(conn, b"250 2.0.0 queued\r\n")
    assert ev.code == 250
    assert conn.pending == ()
    assert conn.state is State.READY


def test_data_refused_stays_ready() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(Data())
    assert reply(conn, b"503 need RCPT\r\n").code == 503
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")


def test_body_calls_outside_body_refused() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.end_data()


def test_raw_data_opens_a_body() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(Raw("DATA"))
    reply(conn, b"354 go\r\n")
    assert conn.state is State.BODY
    assert conn.end_data() == b"\r\n.\r\n"


def test_421_during_body_closes() -> None:
    conn = in_body()
    assert reply(conn, b"421 4.4.2 timeout\r\n").code == 421
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")


def test_smtp_one_reply_after_data_whatever_the_recipients() -> None:
    conn = in_body(recipients=("a@x", "b@x", "c@x"))
    conn.end_data()
    assert conn.pending == (DataEnd(),)


# --------------------------------------------------------------------------- BDAT


def test_send_bdat_is_header_plus_unstuffed_chunk() -> None:
    conn = ready()
    chunk = b".\r\n.leading dot\nbare LF\r\n"
    assert conn.send_bdat(chunk) == b"BDAT %d\r\n" % len(chunk) + chunk
    assert conn.pending == (Bdat(len(chunk)),)
    reply(conn, b"250 2.0.0 chunk ok\r\n")
    assert conn.send_bdat(b"", last=True) == b"BDAT 0 LAST\r\n"
    assert reply(conn, b"250 2.0.0 queued\r\n").code == 250
    assert conn.pending == ()
    assert conn.state is State.READY


def test_bdat_chunks_may_be_pipelined() -> None:
    conn = ready()
    out = conn.send_bdat(b"abc") + conn.send_bdat(b"def", last=True)
    assert out == b"BDAT 3\r\nabcBDAT 3 LAST\r\ndef"
    assert len(conn.pending) == 2


# --------------------------------------------------------------------------- QUIT, 421, EOF


def test_quit_closes() -> None:
    conn = ready()
    conn.send(Quit())
    assert reply(conn, b"221 2.0.0 bye\r\n").code == 221
    assert conn.state is State.CLOSED
    assert isinstance(conn.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_raw_quit_closes() -> None:
    conn = ready()
    conn.send(Raw("quit"))
    reply(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


def test_421_drops_pending_commands() -> None:
    conn = ready()
    for command in (Mail("s@x"), Rcpt("a@x"), Rcpt("b@x"), Data()):
        conn.send(command)
    conn.receive_data(b"250 ok\r\n421 4.3.2 shutting down\r\n")
    assert reply(conn, b"").code == 250
    ev = conn.next_event()
    assert isinstance(ev, Reply)
    assert ev.code == 421
    assert conn.state is State.CLOSED
    assert conn.pending == ()
    assert isinstance(conn.next_event(), ConnectionClosed)


@pytest.mark.parametrize(
    "command", [Ehlo("x"), Mail("s@x"), Rcpt("a@x"), Data(), Rset(), Noop(), StartTLS()], ids=repr
)
def test_421_in_reply_to_any_command_closes(command: Command) -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(command)
    assert reply(conn, b"421 closing\r\n").code == 421
    assert conn.state is State.CLOSED
    assert conn.pending == ()


def test_eof_with_a_command_pending() -> None:
    conn = ready()
    conn.send(Noop())
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.state is State.CLOSED
    assert conn.pending == ()


def test_eof_in_the_middle_of_a_reply() -> None:
    conn = ready()
    conn.send(Noop())
    conn.receive_data(b"250-partial\r\n250 and")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.state is State.CLOSED


def test_replies_before_eof_are_still_delivered() -> None:
    conn = ready()
    conn.send(Quit())
    conn.receive_data(b"221 bye\r\n")
    conn.receive_data(b"")
    assert reply(conn, b"").code == 221
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_close_by_the_transport() -> None:
    conn = ready()
    conn.send(Noop())
    conn.close()
    assert conn.state is State.CLOSED
    assert conn.pending == ()
    assert isinstance(conn.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


# --------------------------------------------------------------------------- STARTTLS


def test_starttls_then_tls_established_forgets_everything() -> None:
    conn = ready(b"250-server.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
    conn.utf8 = True
    assert conn.send(StartTLS()) == b"STARTTLS\r\n"
    assert reply(conn, b"220 2.0.0 ready to start TLS\r\n").code == 220
    assert conn.state is State.TLS_HANDSHAKE
    for command in (Ehlo("x"), Noop(), Quit()):
        with pytest.raises(LocalProtocolError):
            conn.send(command)
    conn.tls_established()
    assert conn.state is State.READY
    assert conn.features == {}
    assert not conn.extensions.pipelining
    assert not conn.extensions.starttls
    assert conn.utf8 is False
    # Without PIPELINING now, one command at a time until EHLO is done again.
    conn.send(Ehlo("x"))
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())
    reply(conn, b"250-server.example\r\n250 PIPELINING\r\n")
    assert conn.extensions.pipelining


def test_bytes_after_the_220_in_the_same_chunk() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(StartTLS())
    conn.receive_data(b"220 go ahead\r\n250 injected\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_partial_bytes_after_the_220_in_the_same_chunk() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(StartTLS())
    conn.receive_data(b"220 go ahead\r\n2")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_bytes_after_the_220_before_tls_established() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(StartTLS())
    assert reply(conn, b"220 go ahead\r\n").code == 220
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"250 injected in plaintext\r\n")
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_starttls_refused_keeps_features() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(StartTLS())
    assert reply(conn, b"454 4.7.0 TLS not available\r\n").code == 454
    assert conn.state is State.READY
    assert conn.extensions.starttls


def test_tls_established_only_after_220() -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    conn.send(StartTLS())
    with pytest.raises(LocalProtocolError):
        conn.tls_established()  # the 220 has not arrived yet


# --------------------------------------------------------------------------- protocol errors


def _garbage(conn: ClientConnection) -> None:
    conn.send(Noop())
    conn.receive_data(b"hello there\r\n")
    conn.next_event()


def _code_change(conn: ClientConnection) -> None:
    conn.send(Noop())
    conn.receive_data(b"250-a\r\n550 b\r\n")
    conn.next_event()


def _unexpected(conn: ClientConnection) -> None:
    conn.receive_data(b"250 nobody asked\r\n")
    conn.next_event()


def _too_long(conn: ClientConnection) -> None:
    conn.send(Noop())
    conn.receive_data(b"250 " + b"x" * 100_000)
    conn.next_event()


def _flood(conn: ClientConnection) -> None:
    conn.send(Noop())
    conn.receive_data(b"250-x\r\n" * 200_000)
    conn.next_event()


def _nul(conn: ClientConnection) -> None:
    conn.send(Noop())
    conn.receive_data(b"250 \x00\r\n")
    conn.next_event()


def _in_body(conn: ClientConnection) -> None:
    conn.send(Data())
    conn.receive_data(b"354 go\r\n")
    conn.next_event()
    conn.receive_data(b"250 not now\r\n")
    conn.next_event()


@pytest.mark.parametrize(
    "provoke", [_garbage, _code_change, _unexpected, _too_long, _flood, _nul, _in_body]
)
def test_after_any_protocol_error_the_connection_is_closed(
    provoke: Callable[[ClientConnection], None],
) -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(RemoteProtocolError):
        provoke(conn)
    assert conn.state is State.CLOSED
    assert conn.pending == ()
    assert isinstance(conn.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_utf8_commands_after_switch() -> None:
    conn = ready(b"250-server.example\r\n250 SMTPUTF8\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("j\u00f6rg@x"))
    assert conn.pending == ()
    conn.utf8 = True
    assert conn.send(Mail("j\u00f6rg@x", ["SMTPUTF8"])) == (
        smtplib_spelling("mail FROM:<j\u00f6rg@x> SMTPUTF8\r\n").encode()
    )


def test_send_many_queues_all_or_none() -> None:
    conn = ready(EHLO_PIPELINING)
    with pytest.raises(LocalProtocolError):
        conn.send_many([Mail("s@x"), Rcpt("a@x"), Rcpt("b@x\r\nRSET")])
    assert conn.pending == ()  # nothing queued: the replies stay matched to what was sent
    data = conn.send_many([Mail("s@x"), Rcpt("a@x")])
    assert data == smtplib_spelling(b"mail FROM:<s@x>\r\nrcpt TO:<a@x>\r\n")
    assert conn.pending == (Mail("s@x"), Rcpt("a@x"))
