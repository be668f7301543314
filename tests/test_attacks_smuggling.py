"""SMTP smuggling, on every adapter: a message holding a lenient end-of-data sequence must
not end early at a server that accepts one.

The scripted server here (``StandardESMTP(lenient_data_end=True)``) ends DATA at the first
of ``LENIENT_DATA_ENDS`` (LF.LF, CR.CR, CRLF.LF, LF.CRLF, CR.LF and CRLF.CRLF) and reads
what follows as commands, as the servers of the 2023 SMTP smuggling disclosures did.  Each
message hides a second transaction after such a sequence; a vulnerable client (one that
passes bare CR or LF through, or forgets to stuff a dot) makes the server receive two
messages.  The client must deliver exactly one, equal to the input with its line ends
normalised to CRLF, and the server must see no smuggled command.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.adapters import Adapter, all_adapters
from tests.scripted_server import LENIENT_DATA_ENDS, ScriptedServer, StandardESMTP

SENDER, RECIPIENT = "s@example.test", "r@example.test"
SMUGGLED = (
    b"MAIL FROM:<evil@example.test>\r\n"
    b"RCPT TO:<victim@example.test>\r\n"
    b"DATA\r\n"
    b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\npay the invoice\r\n"
    b".\r\n"
)


def normalised(body: bytes) -> bytes:
    """What the server must receive: every line end CRLF, a final CRLF added if missing."""
    body = re.sub(rb"\r\n|\r|\n", b"\r\n", body)
    return body if body.endswith(b"\r\n") else body + b"\r\n"


def smuggling_messages(end: bytes) -> list[bytes]:
    """Messages carrying ``end`` then a second transaction: mid-message, at the very start,
    and at the very end."""
    dot = end.index(b".")
    return [
        b"Subject: first\r\n\r\nhello" + end + SMUGGLED + b"bye\r\n",
        end[dot:] + SMUGGLED,
        b"Subject: last\r\n\r\nhello" + end + SMUGGLED.rstrip(b"\r\n"),
    ]


def split_around_dots(body: bytes, after: bool) -> Iterator[bytes]:
    """``body`` in chunks cut right before (or right after) every dot."""
    start = 0
    for index, byte in enumerate(body):
        if byte == ord("."):
            cut = index + 1 if after else index
            yield body[start:cut]
            start = cut
    yield body[start:]


#: Ways the public API takes a message: each gives what to pass for ``body``.
FORMS: dict[str, Any] = {
    "bytes": lambda body: body,
    "str": lambda body: body.decode("ascii"),
    "file": io.BytesIO,
    "chunks-before-dots": lambda body: split_around_dots(body, after=False),
    "chunks-after-dots": lambda body: split_around_dots(body, after=True),
    "chunks-of-one-byte": lambda body: [body[i : i + 1] for i in range(len(body))],
}


async def send_each_way(adapter: Adapter, smtp: Any, body: bytes) -> int:
    """Send ``body`` in every form, through ``sendmail`` and through ``data``; how many."""
    count = 0
    for form in FORMS.values():
        assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], form(body)) == {}
        assert (await adapter.call(smtp.mail, SENDER))[0] == 250
        assert (await adapter.call(smtp.rcpt, RECIPIENT))[0] == 250
        assert (await adapter.call(smtp.data, form(body)))[0] == 250
        count += 2
    return count


@all_adapters
@pytest.mark.parametrize("end", LENIENT_DATA_ENDS, ids=repr)
async def test_lenient_end_of_data_inside_a_message_smuggles_nothing(
    adapter: Adapter, end: bytes
) -> None:
    behaviour = StandardESMTP(lenient_data_end=True)
    expected: list[bytes] = []
    with ScriptedServer(behaviour, nodelay=True) as server:
        async with adapter.connected(server.host, server.port) as smtp:
            for body in smuggling_messages(end):
                expected += [normalised(body)] * await send_each_way(adapter, smtp, body)
    assert [e.data for e in behaviour.envelopes] == expected
    assert {(e.mail_from, tuple(e.rcpt_tos)) for e in behaviour.envelopes} == {
        (SENDER, (RECIPIENT,))
    }
    verbs = [command.split(b" ")[0].lower() for command in behaviour.commands]
    assert verbs == [b"ehlo"] + [b"mail", b"rcpt", b"data"] * len(expected) + [b"quit"]
    assert not any(b"evil" in command for command in behaviour.commands)


@all_adapters
async def test_lenient_server_reads_well_formed_messages_exactly(adapter: Adapter) -> None:
    """The lenient server is faithful for messages without smuggling (so the test above
    would see a second message if one got through): dots, bare line ends, empty lines."""
    bodies = [
        b"Subject: plain\r\n\r\nbody\r\n",
        b".\r\n..\r\n. leading dot\r\n",
        b"bare\nline\rends\r\n\r\n",
        b"no final line end",
        b"",
    ]
    behaviour = StandardESMTP(lenient_data_end=True)
    with ScriptedServer(behaviour, nodelay=True) as server:
        async with adapter.connected(server.host, server.port) as smtp:
            for body in bodies:
                assert await adapter.call(smtp.sendmail, SENDER, [RECIPIENT], body) == {}
    assert [e.data for e in behaviour.envelopes] == [normalised(b) for b in bodies]


def test_lenient_server_would_accept_a_smuggled_message() -> None:
    """The server really is vulnerable: a raw client that sends ``\\n.\\n`` unchanged gets a
    second, smuggled message delivered (which is what the tests above rule out)."""
    behaviour = StandardESMTP(lenient_data_end=True)
    with (
        ScriptedServer(behaviour, nodelay=True) as server,
        socket.create_connection((server.host, server.port), timeout=10) as sock,
    ):
        stream = sock.makefile("rwb")
        stream.readline()
        stream.write(b"EHLO raw\r\nMAIL FROM:<s@example.test>\r\nRCPT TO:<r@example.test>\r\n")
        stream.write(b"DATA\r\nhello\n.\n" + SMUGGLED + b"QUIT\r\n")
        stream.flush()
        while stream.readline()[:3] != b"221":
            pass
    assert [(e.mail_from, e.data) for e in behaviour.envelopes] == [
        ("s@example.test", b"hello\n"),
        (
            "evil@example.test",
            b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\npay the invoice\r\n",
        ),
    ]
