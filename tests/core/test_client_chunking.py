"""``Client.sendmail`` over BDAT (``client.chunking``, on by default) against scripted peers.

The envelope and a one-chunk body go out in one write; refusals read every reply the server
owes before RSET, so the connection stays in step; a large streamed message goes as chunks
with a bounded number of replies outstanding, a large one in memory that needs no rewriting
as one chunk written a piece at a time.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto import SMTPDataError, SMTPRecipientsRefused, SMTPSenderRefused
from smtp_proto.body import PIECE_SIZE
from smtp_proto.client import BDAT_WINDOW, Client
from smtp_proto.driving import drive
from smtp_proto.requests import RECEIVE
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
    client: Client, script: list[Step], recipients: list[str], message: bytes | io.BytesIO
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
    message = b"x" * (PIECE_SIZE * count - 2) + b"\r\n"
    chunks = [message[i : i + PIECE_SIZE] for i in range(0, len(message), PIECE_SIZE)]
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
    result, _ = run(client, script, ["b@x"], io.BytesIO(message))  # streamed: read in pieces
    assert result == {}


def test_a_large_message_in_memory_with_a_bare_line_end_goes_as_chunks() -> None:
    """Rewritten on the way (a bare LF becomes CRLF), it is encoded and sent a piece at a
    time, each piece a chunk of its own."""
    client = chunking_client()
    message, chunks = large_message()
    message = b"bare\n" + message[5:]
    chunks = [b"bare\r\n" + chunks[0][5:], *chunks[1:]]
    script: list[Step] = [*envelope("b@x"), S(b"250 ok\r\n250 ok\r\n")]
    for index, chunk in enumerate(chunks[:-1]):
        script.append(C(b"BDAT %d\r\n" % len(chunk) + chunk))
        if index >= BDAT_WINDOW:
            script.append(S(b"250 chunk\r\n"))
    script.append(C(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1]))
    script.append(S(b"250 chunk\r\n" * BDAT_WINDOW + b"250 queued\r\n"))
    result, _ = run(client, script, ["b@x"], message)
    assert result == {}


def test_a_large_bytes_message_goes_out_as_views_of_itself() -> None:
    """A ``bytes`` message that needs no rewriting goes as one BDAT LAST chunk, written a
    piece at a time as ``memoryview`` slices of the caller's object after its BDAT command:
    the message is never copied on the way out, and no write is larger than a piece."""
    client = chunking_client()
    message, chunks = large_message()
    script: list[Step] = [*envelope("b@x"), S(b"250 ok\r\n250 ok\r\n")]
    script.append(C(b"BDAT %d LAST\r\n" % len(message) + message))
    script.append(S(b"250 queued\r\n"))
    peer = Peer(script, pipelining=True)
    requests: list[object] = []

    def perform(request: object) -> object:
        requests.append(request)
        return peer.answer(request)

    assert drive(client.sendmail("a@x", ["b@x"], message), perform, client.close) == {}
    peer.expect_finished()
    views = [r for r in requests if isinstance(r, memoryview)]
    assert all(view.obj is message for view in views)
    assert [bytes(view) for view in views] == chunks  # pieces of PIECE_SIZE, in order


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
        run(client, script, ["b@x"], io.BytesIO(message))
    assert caught.value.smtp_code == 552


def delivered(client: Client, message: bytes | io.BytesIO) -> tuple[bytes, int]:
    """Send ``message`` through ``client`` to a server that accepts everything; what the
    BDAT chunks carried, joined, and how many chunks there were."""
    wire = bytearray()

    def perform(request: object) -> object:
        if isinstance(request, bytes | memoryview):
            wire.extend(request)
            return None
        assert request is RECEIVE
        return b"250 ok\r\n"  # one reply each time the client waits for one

    assert drive(client.sendmail("a@x", ["b@x"], message), perform, client.close) == {}
    chunks = bdat_chunks(bytes(wire))
    return b"".join(chunks), len(chunks)


def bdat_chunks(wire: bytes) -> list[bytes]:
    """The data of each BDAT chunk in ``wire`` (the client's side of a session), in order."""
    chunks, rest = [], wire
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        if line.startswith(b"BDAT "):
            size = int(line.split()[1])
            chunks.append(rest[:size])
            rest = rest[size:]
    return chunks


@given(
    tail=st.lists(
        st.binary(max_size=200).map(lambda line: line.replace(b"\r", b"").replace(b"\n", b"")),
        max_size=20,
    )
)
@settings(max_examples=25, deadline=None)
def test_one_chunk_in_memory_carries_what_the_chunks_of_a_stream_carry(tail: list[bytes]) -> None:
    """The one-chunk way for a ``bytes`` message that needs no rewriting delivers exactly
    the bytes the piece-by-piece chunks deliver for the same message streamed."""
    message = b"x" * 78 + b"\r\n"
    message = message * (PIECE_SIZE // len(message) + 1) + b"".join(line + b"\r\n" for line in tail)
    whole, whole_chunks = delivered(chunking_client(), message)
    streamed, streamed_chunks = delivered(chunking_client(), io.BytesIO(message))
    assert whole == streamed == message
    assert whole_chunks == 1 and streamed_chunks == -(-len(message) // PIECE_SIZE)
