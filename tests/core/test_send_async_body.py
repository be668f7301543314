"""Async bodies are sent exactly as the same bytes given at once: property-tested over
random messages and random chunkings, on the DATA and BDAT paths (asyncio adapter, the
scripted server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_proto.transports.asyncio import SMTP

from tests.scripted_server import ScriptedServer, StandardESMTP

PIECE = st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"x", b"\x00", b"\xff", b"ab"])
MESSAGE = st.lists(PIECE, max_size=60).map(b"".join)


async def chunked(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in sorted(cut % (len(data) + 1) for cut in cuts):
        yield data[start:cut]
        start = max(start, cut)
    yield data[start:]


async def deliver(port: int, source: object, chunking: bool) -> None:
    async with SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as smtp:
        smtp.chunking = chunking
        assert await smtp.sendmail("s@x", ["r@x"], source) == {}  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGE, st.lists(st.integers(min_value=0, max_value=200), max_size=6), st.booleans())
def test_async_chunks_arrive_as_the_whole_message_would(
    data: bytes, cuts: list[int], chunking: bool
) -> None:
    handler = StandardESMTP(features=("PIPELINING", "CHUNKING"), chunking=True)
    with ScriptedServer(handler) as server:

        async def both() -> None:
            await deliver(server.port, data, chunking)
            await deliver(server.port, chunked(data, cuts), chunking)

        asyncio.run(both())
    whole, streamed = handler.envelopes
    assert streamed.data == whole.data
    assert streamed.via == whole.via == ("BDAT" if chunking else "DATA")
