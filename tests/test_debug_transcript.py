"""``set_debuglevel(1)`` prints the transcript in wire order, as ``smtplib``'s does."""

import io

import pytest
from smtp_proto.transports import sync
from smtp_proto.transports.testing import CaptureServer

from smtp_proto.body import PIECE_SIZE


def test_each_bdat_chunk_is_printed_after_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    line = b"x" * 78 + b"\r\n"
    message = line * (2 * PIECE_SIZE // len(line) + 1)  # three chunks
    with CaptureServer() as server, sync.SMTP(server.host, server.port) as smtp:
        smtp.set_debuglevel(1)
        smtp.sendmail("a@example.com", ["b@example.com"], io.BytesIO(message))  # streamed
    sent = [text for text in capsys.readouterr().err.splitlines() if text.startswith("send:")]
    commands = [text for text in sent if "BDAT" in text]
    chunks = [index for index, text in enumerate(sent) if text.startswith("send: b'xxx")]
    assert len(commands) == len(chunks) == 3
    for chunk_index in chunks:
        assert "BDAT" in sent[chunk_index - 1]  # the chunk's own command, just before it
    assert server.messages[0].data == message
