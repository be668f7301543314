"""``Client.sendmail`` over BDAT (``client.chunking``, on by default) against scripted peers.

The envelope and a one-chunk body go out in one write; refusals read every reply the server
owes before RSET, so the connection stays in step; a large message streams as chunks with a
bounded number of replies outstanding.
"""

from __future__ import annotations

import pytest

from smtp_proto import SMTPDataError, SMTPRecipientsRefused, SMTPSenderRefused
from smtp_proto.body import CHUNK_SIZE
from smtp_proto.client import BDAT_WINDOW, Client
from smtp_proto.driving import drive
from tests.offline import EHLO_LINE, C, Peer, S, Step, connected

EHLO_CHUNKING = S(b"250-server.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
MESSAGE = b"Subject: s\r\n\r\n.dot\nline"
WIRE_BODY = b"Subject: s\r\n\r\n.dot\r\nline\r\n"  # normalised, unstuffed, final CRLF added


def chunking_client() -> Client:
    client = connected()
    client.chunking = True
    peer = Peer([EHLO_LINE, EHLO_CHUNKING])
    assert peer.run(client.ehlo())[0] == 250
    return client


def envelope(*recipients: str) -> list[Step]:
    return [C(b"mail FROM:<a@x>\r\n"), *(C(b"rcpt TO:<%s>\r\n" % r.encode()) for r in recipients)]


def run(
    client: Client, script: list[Step], recipients: list[str], message: bytes
) -> tuple[object, Peer]:
    """``sendmail`` against ``script``, which must be played to its end; (result, peer)."""
    peer = Peer(script, pipelining=True)
    try:
        result = peer.run(client.sendmail("a@x", recipients, message))
    finally:
        peer.expect_finished()
    return result, peer


def test_one_chunk_in_one_write_with_the_envelope() -> None:
    client = chunking_client()
    bdat = C(b"BDAT %d LAST\r\n" % len(WIRE_BODY) + WIRE_BODY)
    script = [*envelope("b@x"), bdat, S(b"250 ok\r\n250 ok\r\n250 queued\r\n")]
    result, peer = run(client, script, ["b@x"], MESSAGE)
    assert result == {}
    assert len(peer.writes) == 1


def test_sender_refused_reads_the_body_reply_then_rsets() -> None:
    client = chunking_client()
    bdat = C(b"BDAT %d LAST\r\n" % len(WIRE_BODY) + WIRE_BODY)
    script = [
        *envelope("b@x"),
        bdat,
        S(b"550 no sender\r\n503 no mail\r\n554 no transaction\r\n"),
        C(b"rset\r\n"),
        S(b"250 reset\r\n"),
    ]
    with pytest.raises(SMTPSenderRefused) as caught:
        run(client, script, ["b@x"], MESSAGE)
    assert (caught.value.smtp_code, caught.value.sender) == (550, "a@x")


def test_every_recipient_refused() -> None:
    client = chunking_client()
    bdat = C(b"BDAT %d LAST\r\n" % len(WIRE_BODY) + WIRE_BODY)
    script = [
        *envelope("b@x", "c@x"),
        bdat,
        S(b"250 ok\r\n550 no b\r\n551 no c\r\n554 no recipients\r\n"),
        C(b"rset\r\n"),
        S(b"250 reset\r\n"),
    ]
    with pytest.raises(SMTPRecipientsRefused) as caught:
        run(client, script, ["b@x", "c@x"], MESSAGE)
    assert caught.value.recipients == {"b@x": (550, b"no b"), "c@x": (551, b"no c")}


def test_body_refused_is_a_data_error_after_rset() -> None:
    client = chunking_client()
    bdat = C(b"BDAT %d LAST\r\n" % len(WIRE_BODY) + WIRE_BODY)
    script = [
        *envelope("b@x"),
        bdat,
        S(b"250 ok\r\n250 ok\r\n554 5.6.0 spam\r\n"),
        C(b"rset\r\n"),
        S(b"250 reset\r\n"),
    ]
    with pytest.raises(SMTPDataError) as caught:
        run(client, script, ["b@x"], MESSAGE)
    assert caught.value.smtp_code == 554
    assert str(caught.value.enhanced_status) == "5.6.0"


def large_message() -> tuple[bytes, list[bytes]]:
    """A message of several chunks and the chunks the client must send (last one LAST)."""
    count = BDAT_WINDOW + 3
    message = b"x" * (CHUNK_SIZE * count - 2) + b"\r\n"
    chunks = [message[i : i + CHUNK_SIZE] for i in range(0, len(message), CHUNK_SIZE)]
    return message, chunks


def test_large_message_keeps_a_bounded_window_of_unanswered_chunks() -> None:
    client = chunking_client()
    message, chunks = large_message()
    script: list[Step] = [*envelope("b@x"), S(b"250 ok\r\n250 ok\r\n")]
    for index, chunk in enumerate(chunks[:-1]):
        script.append(C(b"BDAT %d\r\n" % len(chunk) + chunk))
        if index >= BDAT_WINDOW:  # past the window, one reply is read per chunk sent
            script.append(S(b"250 chunk\r\n"))
    script.append(C(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1]))
    script.append(S(b"250 chunk\r\n" * BDAT_WINDOW + b"250 queued\r\n"))
    result, _ = run(client, script, ["b@x"], message)
    assert result == {}


def test_a_large_bytes_message_goes_out_as_views_of_itself() -> None:
    """Each chunk of a ``bytes`` message that needs no rewriting is written as a
    ``memoryview`` into the caller's object, its BDAT command as a write of its own: the
    message is never copied on the way out."""
    client = chunking_client()
    message, chunks = large_message()
    script: list[Step] = [*envelope("b@x"), S(b"250 ok\r\n250 ok\r\n")]
    for index, chunk in enumerate(chunks[:-1]):
        script.append(C(b"BDAT %d\r\n" % len(chunk) + chunk))
        if index >= BDAT_WINDOW:
            script.append(S(b"250 chunk\r\n"))
    script.append(C(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1]))
    script.append(S(b"250 chunk\r\n" * BDAT_WINDOW + b"250 queued\r\n"))
    peer = Peer(script, pipelining=True)
    requests: list[object] = []

    def perform(request: object) -> object:
        requests.append(request)
        return peer.answer(request)

    assert drive(client.sendmail("a@x", ["b@x"], message), perform, client.close) == {}
    peer.expect_finished()
    views = [r for r in requests if isinstance(r, memoryview)]
    assert all(view.obj is message for view in views)
    assert [bytes(view) for view in views] == chunks


def test_chunk_refused_mid_stream_stops_sending_and_rsets() -> None:
    client = chunking_client()
    message, chunks = large_message()
    script: list[Step] = [*envelope("b@x"), S(b"250 ok\r\n250 ok\r\n")]
    for chunk in chunks[: BDAT_WINDOW + 1]:
        script.append(C(b"BDAT %d\r\n" % len(chunk) + chunk))
    script.append(S(b"552 5.3.4 too big\r\n"))  # the first chunk's reply
    script.append(S(b"503 aborted\r\n" * BDAT_WINDOW))
    script += [C(b"rset\r\n"), S(b"250 reset\r\n")]
    with pytest.raises(SMTPDataError) as caught:
        run(client, script, ["b@x"], message)
    assert caught.value.smtp_code == 552
