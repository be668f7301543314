"""A message streamed from a file by BDAT on every adapter (issue #14, W3), over real sockets
to the capture server on 127.0.0.1: the core reads the file into buffers of its own and
writes each chunk's command in front of its piece, and reuses a buffer only once nothing
views it; the transports (asyncio's, uvloop's, trio's, TLS) must deliver every byte intact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from smtp_proto.transports.testing import CaptureServer

from smtp_proto.body import PIECE_SIZE, BodyEncoder
from tests.adapters import Adapter, all_adapters
from tests.servers.certs import LocalCA

#: Many pieces: CRLF lines (pieces that go as read), a stretch of bare LFs (rewritten), a
#: CRLF cut in two at a piece's end, and no line end at the very end.
LINE = b"%07d the quick brown fox jumps over the lazy dog\r\n"
CONTENT = (
    b"".join(LINE % n for n in range(40_000))
    + b"bare\n" * 30_000
    + b"x" * (PIECE_SIZE - 1)
    + b"\r\ntail"
)
EXPECTED = BodyEncoder(stuff_dots=False).encode_all(CONTENT)


@pytest.fixture
def message_file(tmp_path: Path) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(CONTENT)
    return path


@all_adapters
async def test_a_file_of_many_pieces_arrives_intact(adapter: Adapter, message_file: Path) -> None:
    assert len(CONTENT) > 8 * PIECE_SIZE
    with CaptureServer() as server:
        async with adapter.connected(server.host, server.port) as smtp:
            with message_file.open("rb") as file:
                result = await adapter.call(smtp.sendmail, "a@x.test", ["b@x.test"], file)
                assert result == {}
                assert file.read() == b""  # read to its end
            assert await adapter.call(smtp.noop) == (250, b"2.0.0 Ok")
    (received,) = server.messages
    assert received.chunked
    assert received.data == EXPECTED


@all_adapters
async def test_a_file_of_many_pieces_arrives_intact_over_tls(
    adapter: Adapter, message_file: Path, tls_ca: LocalCA
) -> None:
    """A TLS transport holds what it has not encrypted and sent yet."""
    with CaptureServer(tls_context=tls_ca.server_context()) as server:
        async with adapter.connected(server.host, server.port) as smtp:
            await adapter.call(smtp.starttls, context=tls_ca.client_context())
            with message_file.open("rb") as file:
                result = await adapter.call(smtp.sendmail, "a@x.test", ["b@x.test"], file)
                assert result == {}
    (received,) = server.messages
    assert received.chunked and received.tls
    assert received.data == EXPECTED
