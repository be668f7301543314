"""``Client.sendmail``/``data`` with the SIZE limit (RFC 1870) and with streamed bodies, offline.

A message known to exceed the advertised SIZE is refused before a byte of the transaction is
sent.  A binary file object or an iterable of chunks puts on the wire exactly the bytes (and
writes) the same message as ``bytes`` does, on the DATA and BDAT paths, wherever the chunks
it is handed over in happen to split it.
"""

from __future__ import annotations

import io
import itertools
import pickle
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from smtp_proto import (
    Client,
    SMTPException,
    SMTPMessageTooLarge,
    SMTPResponseException,
    SMTPSenderRefused,
)
from smtp_proto.body import PIECE_SIZE, BodyEncoder
from smtp_proto.driving import drive
from tests.offline import EHLO_LINE, C, Peer, S, Step, connected

SENDER, RECIPIENT = "s@example.org", "a@example.org"
MAIL = b"mail FROM:<s@example.org>"
RCPT = C(b"rcpt TO:<a@example.org>\r\n")
OK = S(b"250 2.0.0 ok\r\n")


def ehlo_reply(*features: str) -> S:
    lines = ["server.example", *features]
    text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
    return S(text.encode())


def client_after_ehlo(*features: str, chunking: bool = False) -> Client:
    client = connected()
    client.chunking = chunking
    peer = Peer([EHLO_LINE, ehlo_reply(*features)])
    assert peer.run(client.ehlo())[0] == 250
    peer.expect_finished()
    return client


def run(script: list[Step], operation: Any, pipelining: bool = False) -> Peer:
    """Drive ``operation``; the script must be played to its end.  Returns the peer."""
    peer = Peer(script, pipelining=pipelining)
    assert peer.run(operation) in ({}, (250, b"2.0.0 ok"))
    peer.expect_finished()
    return peer


# --------------------------------------------------------------------------- SIZE


@pytest.mark.parametrize(
    ("features", "chunking"),
    [
        (("SIZE 100",), False),
        (("PIPELINING", "SIZE 100"), False),
        (("PIPELINING", "CHUNKING", "SIZE 100"), True),
    ],
    ids=["lockstep", "pipelined", "bdat"],
)
def test_message_over_the_size_limit_is_refused_before_anything_is_sent(
    features: tuple[str, ...], chunking: bool
) -> None:
    client = client_after_ehlo(*features, chunking=chunking)
    peer = Peer([])
    with pytest.raises(SMTPMessageTooLarge) as caught:
        peer.run(client.sendmail(SENDER, [RECIPIENT], b"x" * 101))
    assert peer.writes == []
    assert not peer.closed
    error = caught.value
    assert (error.size, error.limit, error.smtp_code) == (101, 100, 552)
    assert b"101" in error.smtp_error and b"100" in error.smtp_error
    assert str(error.enhanced_status) == "5.3.4"
    assert error.args == (552, error.smtp_error, SENDER)
    assert isinstance(error, SMTPResponseException) and isinstance(error, SMTPException)
    assert isinstance(error, SMTPSenderRefused)  # what smtplib code catches for a 552 at MAIL
    # Nothing was sent: the connection is in step and usable.
    assert client.is_connected
    run([C(b"noop\r\n"), OK], client.noop())


def test_message_of_exactly_the_limit_is_sent() -> None:
    client = client_after_ehlo("SIZE 100")
    script = [C(MAIL + b" size=100\r\n"), OK, RCPT, OK, C(b"data\r\n"), S(b"354 go\r\n")]
    script += [C(b"x" * 98 + b"\r\n.\r\n"), OK]
    run(script, client.sendmail(SENDER, [RECIPIENT], b"x" * 98 + b"\r\n"))


@pytest.mark.parametrize("size", ["SIZE", "SIZE 0", "SIZE unlimited"])
def test_no_limit_without_a_positive_size(size: str) -> None:
    client = client_after_ehlo(size)
    message = b"y" * 1000 + b"\r\n"
    script = [C(MAIL + b" size=1002\r\n"), OK, RCPT, OK, C(b"data\r\n"), S(b"354 go\r\n")]
    script += [C(message + b".\r\n"), OK]
    run(script, client.sendmail(SENDER, [RECIPIENT], message))


def test_file_over_the_limit_is_refused_without_being_read() -> None:
    client = client_after_ehlo("SIZE 100")
    file = io.BytesIO(b"header\r\n\r\n" + b"z" * 200)
    file.seek(10)
    with pytest.raises(SMTPMessageTooLarge) as caught:
        Peer([]).run(client.sendmail(SENDER, [RECIPIENT], file))
    assert caught.value.size == 200  # what is left from the file's position
    assert file.tell() == 10


def test_send_message_over_the_limit() -> None:
    client = client_after_ehlo("SIZE 100")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, RECIPIENT, "big"
    msg.set_content("w" * 200)
    peer = Peer([])
    with pytest.raises(SMTPMessageTooLarge):
        peer.run(client.send_message(msg))
    assert peer.writes == []


def test_iterable_of_unknown_size_is_left_to_the_server() -> None:
    client = client_after_ehlo("SIZE 100")
    script = [C(MAIL + b"\r\n"), OK, RCPT, OK, C(b"data\r\n"), S(b"354 go\r\n")]
    script += [C(b"v" * 200 + b"\r\n.\r\n"), S(b"552 5.3.4 too big\r\n"), C(b"rset\r\n"), OK]
    peer = Peer(script)
    with pytest.raises(SMTPResponseException) as caught:
        peer.run(client.sendmail(SENDER, [RECIPIENT], iter([b"v" * 100, b"v" * 100])))
    peer.expect_finished()
    assert caught.value.smtp_code == 552
    assert not isinstance(caught.value, SMTPMessageTooLarge)


def test_message_too_large_pickles() -> None:
    error = pickle.loads(pickle.dumps(SMTPMessageTooLarge(7, 5, "a@x")))
    assert (error.size, error.limit, error.sender) == (7, 5, "a@x")
    assert error.args == SMTPMessageTooLarge(7, 5, "a@x").args


def test_message_too_large_is_what_smtplib_code_catches_for_a_refused_size() -> None:
    error = SMTPMessageTooLarge(7, 5, "a@x")
    assert isinstance(error, SMTPSenderRefused)
    assert (error.smtp_code, error.sender) == (552, "a@x")


# --------------------------------------------------------------------------- size= on MAIL


class Unseekable(io.RawIOBase):
    """A raw binary stream that cannot seek and returns short reads, like a pipe or socket."""

    def __init__(self, data: bytes, most: int = 1000) -> None:
        self._data = memoryview(data)
        self._most = most

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        take = self._most if size < 0 else min(size, self._most)
        piece, self._data = bytes(self._data[:take]), self._data[take:]
        return piece


def test_unix_line_ends_count_as_the_crlf_they_become() -> None:
    """80 bytes as given, 120 as sent: over a limit of 100, so refused before anything goes
    out, rather than sent whole and refused at its end."""
    client = client_after_ehlo("PIPELINING", "SIZE 100")
    peer = Peer([])
    with pytest.raises(SMTPMessageTooLarge) as caught:
        peer.run(client.sendmail(SENDER, [RECIPIENT], b"x\n" * 40))
    assert peer.writes == []
    assert (caught.value.size, caught.value.limit) == (120, 100)


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda m: m, b" size=14"),  # the final bare CR goes out as CRLF
        (io.BytesIO, b" size=13"),  # a file's size: an estimate
        (Unseekable, b""),
        (lambda m: iter([m]), b""),
        (lambda m: [m[:5], m[5:]], b""),
    ],
    ids=["bytes", "seekable-file", "unseekable-file", "generator", "list"],
)
def test_size_option_only_when_the_size_is_known(
    make: Callable[[bytes], Any], option: bytes
) -> None:
    client = client_after_ehlo("SIZE 1000")
    message = b"Subject: s\r\n\r"
    script = [C(MAIL + option + b"\r\n"), OK, RCPT, OK, C(b"data\r\n"), S(b"354 go\r\n")]
    script += [C(b"Subject: s\r\n\r\n.\r\n"), OK]
    run(script, client.sendmail(SENDER, [RECIPIENT], make(message)))


# --------------------------------------------------------------------------- streamed bodies


def normalised(message: bytes) -> bytes:
    """The message with CRLF line ends and a final CRLF (independent of the client's encoder)."""
    text = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    return text if text.endswith(b"\r\n") else text + b"\r\n"


def edgy_message() -> bytes:
    """Three chunks and a bit: a CRLF split by the first chunk boundary, a dot at the start of
    the third chunk (and of a line), a bare CR ending the third chunk, bare CRs and LFs."""
    message = bytearray(b"Subject: streamed\r\n\r\n")
    while len(message) < PIECE_SIZE - 1:
        message += b".dotted line\n" if len(message) % 7 else b"plain line\r\n"
    del message[PIECE_SIZE - 1 :]
    message += b"\r\n"  # CR is the last byte of chunk one, LF the first of chunk two
    message += b".starts chunk two\r\n"
    while len(message) < 2 * PIECE_SIZE - 2:
        message += b"line\r"
    del message[2 * PIECE_SIZE - 2 :]
    message += b"\r\n.starts chunk three\r"  # the dot is the first byte of chunk three
    while len(message) < 3 * PIECE_SIZE - 1:
        message += b"x\r\n"
    del message[3 * PIECE_SIZE - 1 :]
    message += b"\rno line end at the end"  # a bare CR ends chunk three
    assert message[PIECE_SIZE - 1 : PIECE_SIZE + 2] == b"\r\n."
    assert message[2 * PIECE_SIZE - 2 : 2 * PIECE_SIZE + 1] == b"\r\n."
    assert message[3 * PIECE_SIZE - 1 : 3 * PIECE_SIZE + 1] == b"\rn"
    return bytes(message)


MESSAGES = {
    "empty": b"",
    "small": b"Subject: s\r\n\r\n.dot\nline\rend",
    "exactly-two-chunks": (b"." + b"a" * 98 + b"\n") * (2 * PIECE_SIZE // 100)
    + b"b" * (2 * PIECE_SIZE % 100),
    "edgy": edgy_message(),
}


def awkward_cuts(message: bytes) -> Iterator[bytes]:
    """The message in chunks cut inside CRLFs, just before dots and at odd sizes."""
    cuts = {0, len(message)}
    cuts.update(m.start() + 1 for m in re.finditer(rb"\r\n", message[:5000]))
    cuts.update(m.start() + 1 for m in re.finditer(rb"\n\.", message[:5000]))
    cuts.update(range(5000, len(message), 65521))  # a prime: never lines up with PIECE_SIZE
    cuts.update(b for b in (PIECE_SIZE, 2 * PIECE_SIZE, 3 * PIECE_SIZE) if b < len(message))
    ordered = sorted(cuts)
    for start, end in itertools.pairwise(ordered):
        yield message[start:end]


def generator_with_empty_chunks(message: bytes) -> Iterator[bytes]:
    yield b""
    for chunk in awkward_cuts(message):
        yield chunk
        yield b""


SOURCES: dict[str, Callable[[bytes], Any]] = {
    "file": io.BytesIO,
    "buffered-file": lambda m: io.BufferedReader(io.BytesIO(m)),
    "short-reads": Unseekable,
    "generator": awkward_cuts,
    "empty-chunks": generator_with_empty_chunks,
    "bytearray-chunks": lambda m: [bytearray(chunk) for chunk in awkward_cuts(m)],
    "one-big-chunk": lambda m: iter([m]),
}

LOCKSTEP = ("8BITMIME",)
PIPELINED = ("PIPELINING", "8BITMIME")
CHUNKING = ("PIPELINING", "CHUNKING")


def data_script(message: bytes) -> list[Step]:
    wire = normalised(message) if message else b"\r\n"
    wire = re.sub(rb"(?m)^\.", b"..", wire) + b".\r\n"
    return [C(MAIL + b"\r\n"), OK, RCPT, OK, C(b"data\r\n"), S(b"354 go\r\n"), C(wire), OK]


def bdat_script(message: bytes) -> list[Step]:
    """BDAT chunks as the client frames them: one per ``PIECE_SIZE`` slice of the message."""
    encoder = BodyEncoder(stuff_dots=False)
    slices = [message[i : i + PIECE_SIZE] for i in range(0, len(message), PIECE_SIZE)] or [b""]
    payloads = [encoder.encode(piece) for piece in slices[:-1]]
    payloads = [payload for payload in payloads if payload]
    last = encoder.encode(slices[-1]) + encoder.finish()
    assert b"".join(payloads) + last == (normalised(message) if message else b"\r\n")
    envelope: list[Step] = [C(MAIL + b"\r\n"), RCPT]
    bdat_last = C(b"BDAT %d LAST\r\n" % len(last) + last)
    if not payloads:
        return [*envelope, bdat_last, S(b"250 ok\r\n" * 3)]
    chunks = [C(b"BDAT %d\r\n" % len(payload) + payload) for payload in payloads]
    replies = S(b"250 chunk\r\n" * len(payloads) + b"250 queued\r\n")
    return [*envelope, S(b"250 ok\r\n" * 2), *chunks, bdat_last, replies]


PATHS = {
    "lockstep": (LOCKSTEP, False, data_script),
    "pipelined": (PIPELINED, False, data_script),
    "bdat": (CHUNKING, True, bdat_script),
}


def send(path: str, message: bytes, source: Any) -> Peer:
    features, chunking, script = PATHS[path]
    client = client_after_ehlo(*features, chunking=chunking)
    operation = client.sendmail(SENDER, [RECIPIENT], source)
    return run(script(message), operation, pipelining=chunking or features == PIPELINED)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", MESSAGES)
def test_streamed_sources_send_what_bytes_send(path: str, name: str) -> None:
    message = MESSAGES[name]
    expected = send(path, message, message).writes
    for kind, make in SOURCES.items():
        assert send(path, message, make(message)).writes == expected, kind


def test_real_file_from_its_position(tmp_path: Any) -> None:
    message = MESSAGES["edgy"]
    path = tmp_path / "message.eml"
    path.write_bytes(b"skipped preamble" + message)
    expected = send("bdat", message, message).writes
    with path.open("rb") as file:
        file.seek(len(b"skipped preamble"))
        assert send("bdat", message, file).writes == expected
    client = client_after_ehlo("SIZE 10000000")
    with path.open("rb") as file:
        file.seek(len(b"skipped preamble"))
        operation = client.sendmail(SENDER, [RECIPIENT], file)
        mail = C(MAIL + b" size=%d\r\n" % len(message))
        run([mail, *data_script(message)[1:]], operation)


def test_data_streams_a_generator() -> None:
    message = MESSAGES["edgy"]
    script = data_script(message)
    client = client_after_ehlo(*LOCKSTEP)
    run(script[:2], client.mail(SENDER))
    run(script[2:4], client.rcpt(RECIPIENT))
    run(script[4:], client.data(awkward_cuts(message)))


# --------------------------------------------------------------------------- failing sources


def failing_after(count: int) -> Iterator[bytes]:
    """``count`` chunks of ``PIECE_SIZE`` bytes, then an error."""
    for _ in range(count):
        yield b"q" * PIECE_SIZE
    raise OSError("disk on fire")


async def async_chunks() -> AsyncIterator[bytes]:
    yield b"never"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (lambda: io.StringIO("text mode"), TypeError),
        (lambda: ["a", "b"], TypeError),
        (async_chunks, TypeError),
        (lambda: failing_after(1), OSError),
        (lambda: 42, TypeError),
    ],
    ids=["text-file", "str-chunks", "async-iterable", "fails-at-once", "not-a-message"],
)
@pytest.mark.parametrize("path", PATHS)
def test_unreadable_source_fails_before_anything_is_sent(
    path: str, source: Callable[[], Any], error: type[Exception]
) -> None:
    features, chunking, _ = PATHS[path]
    client = client_after_ehlo(*features, chunking=chunking)
    peer = Peer([])
    with pytest.raises(error):  # the blocking driver: an async iterable needs an async one
        drive(client.sendmail(SENDER, [RECIPIENT], source()), peer.answer, client.close)
    assert peer.writes == []
    assert client.is_connected
    run([C(b"noop\r\n"), OK], client.noop())


def test_async_file_object_is_refused_by_the_blocking_driver() -> None:
    class AsyncFile:
        async def read(self, size: int) -> bytes:
            return b""

    client = client_after_ehlo(*LOCKSTEP)
    with pytest.raises(TypeError, match="async"):
        drive(client.sendmail(SENDER, [RECIPIENT], AsyncFile()), Peer([]).answer, client.close)


def test_source_failing_mid_body_closes_without_ending_data() -> None:
    client = client_after_ehlo(*LOCKSTEP)
    script = [*data_script(b"")[:6], C(b"q" * (2 * PIECE_SIZE))]
    peer = Peer(script)
    with pytest.raises(OSError, match="disk on fire"):
        peer.run(client.sendmail(SENDER, [RECIPIENT], failing_after(3)))
    peer.expect_finished()  # two chunks went out, and no end of data
    assert peer.closed
    assert not client.is_connected


def test_source_failing_mid_bdat_closes_without_bdat_last() -> None:
    client = client_after_ehlo(*CHUNKING, chunking=True)
    chunk = C(b"BDAT %d\r\n" % PIECE_SIZE + b"q" * PIECE_SIZE)
    script = [C(MAIL + b"\r\n"), RCPT, S(b"250 ok\r\n250 ok\r\n"), chunk, chunk]
    peer = Peer(script, pipelining=True)
    with pytest.raises(OSError, match="disk on fire"):
        peer.run(client.sendmail(SENDER, [RECIPIENT], failing_after(3)))
    peer.expect_finished()
    assert peer.closed
    assert not client.is_connected


def test_chunks_are_read_a_bounded_amount_ahead() -> None:
    """Streaming keeps a few chunks in memory, however long the message."""
    read: list[int] = []

    def counted(total: int) -> Iterable[bytes]:
        for index in range(total):
            read.append(index)
            yield b"r" * PIECE_SIZE

    client = client_after_ehlo(*LOCKSTEP)
    operation = client.sendmail(SENDER, [RECIPIENT], counted(20))
    peer = Peer(data_script(b"r" * 20 * PIECE_SIZE))
    writes_seen = 0
    result: Any = None
    while True:
        try:
            request = operation.send(result)
        except StopIteration:
            break
        result = peer.answer(request)
        if isinstance(request, bytes | memoryview) and bytes(request).startswith(b"rrrr"):
            writes_seen += 1
            assert len(read) <= writes_seen + 2
    peer.expect_finished()
    assert len(read) == 20
