"""``pipelining = False``: each command waits for its reply although the server offers
PIPELINING (for servers that mishandle it), with the results of the pipelined exchange."""

from __future__ import annotations

import pytest

from smtp_proto import SMTPRecipientsRefused
from smtp_proto.client import Client
from tests.offline import EHLO_LINE, C, Peer, S, connected

EHLO_PIPELINING = S(b"250-server.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n")


def client_without_pipelining(chunking: bool) -> Client:
    client = connected()
    client.pipelining = False
    client.chunking = chunking
    peer = Peer([EHLO_LINE, EHLO_PIPELINING])
    assert peer.run(client.ehlo())[0] == 250
    return client


@pytest.mark.parametrize("chunking", [True, False], ids=["chunking-on", "chunking-off"])
def test_each_command_waits_for_its_reply(chunking: bool) -> None:
    """Without pipelining the message goes by DATA even where CHUNKING is offered (BDAT is
    used only pipelined, for its one round trip)."""
    client = client_without_pipelining(chunking)
    body = [C(b"data\r\n"), S(b"354 go on\r\n"), C(b"hello\r\n.\r\n")]
    script = [
        C(b"mail FROM:<a@x>\r\n"),
        S(b"250 ok\r\n"),
        C(b"rcpt TO:<b@x>\r\n"),
        S(b"250 ok\r\n"),
        C(b"rcpt TO:<c@x>\r\n"),
        S(b"550 no such user\r\n"),
        *body,
        S(b"250 queued\r\n"),
    ]
    peer = Peer(script)  # refuses a command sent before the reply to the one before
    refused = peer.run(client.sendmail("a@x", ["b@x", "c@x"], b"hello\r\n"))
    peer.expect_finished()
    assert refused == {"c@x": (550, b"no such user")}


def test_every_recipient_refused_is_reported_as_when_pipelined() -> None:
    client = client_without_pipelining(chunking=True)
    script = [
        C(b"mail FROM:<a@x>\r\n"),
        S(b"250 ok\r\n"),
        C(b"rcpt TO:<b@x>\r\n"),
        S(b"550 no\r\n"),
        C(b"rset\r\n"),
        S(b"250 reset\r\n"),
    ]
    peer = Peer(script)
    with pytest.raises(SMTPRecipientsRefused) as caught:
        peer.run(client.sendmail("a@x", ["b@x"], b"hello\r\n"))
    peer.expect_finished()
    assert caught.value.recipients == {"b@x": (550, b"no")}
