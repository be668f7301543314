"""Every adapter's ``send`` within the server's RFC 9422 LIMITS, against the capture server:
a message with more recipients than ``RCPTMAX`` goes as several transactions on one
connection, and the result merges theirs."""

from __future__ import annotations

import pytest
from smtp_proto.transports.testing import CaptureServer

from smtp_proto.send import SendResult, SMTPAllRecipientsRefused
from tests.adapters import Adapter, all_adapters, send

LIMITED = ["PIPELINING", "8BITMIME", "CHUNKING", "ENHANCEDSTATUSCODES", "LIMITS RCPTMAX=2"]
MESSAGE = b"Subject: limits\r\n\r\nto many\r\n"


@all_adapters
async def test_send_splits_a_message_over_rcptmax_on_one_connection(adapter: Adapter) -> None:
    recipients = [f"r{n}@example.test" for n in range(5)]
    refuse = {"r3@example.test": (550, "5.1.1 No such user")}
    with CaptureServer(extensions=LIMITED, refuse=refuse) as server:
        result = await send(
            adapter,
            MESSAGE,
            server.host,
            server.port,
            sender="s@x",
            recipients=recipients,
            tls="none",
        )
        parts = [message.rcpt_tos for message in server.messages]
        commands = server.commands
    assert parts == [
        ["r0@example.test", "r1@example.test"],
        ["r2@example.test"],
        ["r4@example.test"],
    ]
    assert sum(command.startswith("ehlo") for command in commands) == 1
    assert sum(command.startswith("mail") for command in commands) == 3
    assert isinstance(result, SendResult)
    assert sorted(result.accepted) == [
        "r0@example.test",
        "r1@example.test",
        "r2@example.test",
        "r4@example.test",
    ]
    assert {r: reply.code for r, reply in result.refused.items()} == {"r3@example.test": 550}
    assert result.queue_id is not None


@all_adapters
async def test_send_raises_when_every_part_is_refused(adapter: Adapter) -> None:
    recipients = ["a@example.test", "b@example.test", "c@example.test"]
    refuse = dict.fromkeys(recipients, (550, "5.1.1 No such user"))
    with CaptureServer(extensions=LIMITED, refuse=refuse) as server:
        with pytest.raises(SMTPAllRecipientsRefused) as refusal:
            await send(
                adapter,
                MESSAGE,
                server.host,
                server.port,
                sender="s@x",
                recipients=recipients,
                tls="none",
            )
        assert server.messages == []
        assert sum(command.startswith("mail") for command in server.commands) == 2
    assert sorted(refusal.value.recipients) == recipients
