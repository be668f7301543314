"""The SIZE limit and streamed message bodies with the blocking adapter, against Postfix.

Postfix advertises ``SIZE 10240000``: a message known to be larger is refused by the client
before MAIL, and the connection goes on.  A message of a few megabytes read from a file object
or a generator arrives intact over DATA and over BDAT.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smtp_proto.transports import sync as smtplib

from tests.servers.postfix import PostfixServer

SENDER = "stream@example.test"
LIMIT = 10240000


def connect(postfix: PostfixServer) -> smtplib.SMTP:
    return smtplib.SMTP(postfix.host, postfix.port, local_hostname="client.test", timeout=30)


def body_lines(text: bytes) -> list[bytes]:
    """The body of a message (after the header block) as lines: Postfix's Maildir stores LF."""
    return text.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1].split(b"\n")


@pytest.mark.parametrize("kind", ["bytes", "file"])
def test_message_over_the_advertised_size_is_refused_locally(
    postfix: PostfixServer,
    tmp_path: Path,
    kind: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "huge.eml"
    with path.open("wb") as file:
        file.write(b"Subject: huge\r\n\r\n")
        file.truncate(LIMIT + 1)  # sparse: nothing of it is ever read
    with connect(postfix) as smtp, path.open("rb") as file:
        smtp.ehlo()
        assert smtp.esmtp_features["size"] == str(LIMIT)
        message: Any = file.read() if kind == "bytes" else file
        smtp.set_debuglevel(1)
        with pytest.raises(smtplib.SMTPMessageTooLarge) as caught:
            smtp.sendmail(SENDER, ["big@example.test"], message)
        assert (caught.value.size, caught.value.limit) == (LIMIT + 1, LIMIT)
        assert caught.value.smtp_code == 552
        assert isinstance(caught.value, smtplib.SMTPResponseException)
        assert smtp.noop() == (250, b"2.0.0 Ok")
        if kind == "file":
            assert file.tell() == 0
    sends = [line for line in capfd.readouterr().err.splitlines() if line.startswith("send:")]
    assert sends == ["send: 'noop\\r\\n'", "send: 'QUIT\\r\\n'"]


def write_message(path: Path, token: str) -> bytes:
    """A message of about 3 MB: numbered lines, some with leading dots or bare LF line ends."""
    with path.open("wb") as file:
        file.write(f"Subject: {token}\r\n\r\n".encode())
        for number in range(42000):
            line = b"%07d %s" % (number, b"-=" * 32)
            if number % 5 == 0:
                line = b"." + line
            file.write(line + (b"\n" if number % 3 == 0 else b"\r\n"))
    return path.read_bytes()


def generator(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(65521):
            yield chunk


@pytest.mark.parametrize(
    "way",
    [("file", False), ("file", True), ("generator", False), ("generator", True)],
    ids=["file-data", "file-bdat", "generator-data", "generator-bdat"],
)
def test_large_streamed_message_arrives_intact(
    postfix: PostfixServer,
    postfix_delivered: Callable[..., list[bytes]],
    token: str,
    tmp_path: Path,
    way: tuple[str, bool],
) -> None:
    kind, chunking = way
    path = tmp_path / "message.eml"
    original = write_message(path, token)
    assert len(original) > 3_000_000
    with connect(postfix) as smtp, path.open("rb") as file:
        smtp.chunking = chunking
        source = file if kind == "file" else generator(path)
        assert smtp.sendmail(SENDER, ["streamed@example.test"], source) == {}
        assert smtp.noop()[0] == 250
    (delivered,) = postfix_delivered(token)
    assert body_lines(delivered) == body_lines(original)


def test_unreadable_source_leaves_the_connection_usable(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        with pytest.raises(TypeError):
            smtp.sendmail(SENDER, ["a@example.test"], io.StringIO("opened in text mode"))
        assert smtp.noop() == (250, b"2.0.0 Ok")
