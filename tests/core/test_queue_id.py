"""``SendResult.queue_id``: the queue id in the final reply, in the forms common servers
document for it (the reply texts below are written from those forms, not captured)."""

from __future__ import annotations

import pytest

from smtp_proto.replies import Reply
from smtp_proto.send import SendResult

EXCHANGE = (
    b"2.6.0 <a1b2c3@mail.example.com> [InternalId=2503855697932, "
    b"Hostname=DM6PR01MB1234.namprd01.prod.outlook.com] 1523 bytes in 0.062, "
    b"23.970 KB/sec Queued mail for delivery"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(b"2.0.0 Ok: queued as 4B0BC1F8A39", "4B0BC1F8A39", id="postfix"),
        pytest.param(b"Ok: queued as 4Tx9yK2Lm1z5xQb", "4Tx9yK2Lm1z5xQb", id="postfix-long-ids"),
        pytest.param(b"OK id=1xaWsW-0006Tg-1m", "1xaWsW-0006Tg-1m", id="exim"),
        pytest.param(
            b"108 byte chunk, total 108\nOK id=1rA5s8-00000001xyz-0K9",
            "1rA5s8-00000001xyz-0K9",
            id="exim-bdat-two-lines",
        ),
        pytest.param(b"2.0.0 7a3b2c1d Message accepted for delivery", "7a3b2c1d", id="opensmtpd"),
        pytest.param(b"2.0.0: 7a3b2c1d Message accepted for delivery", "7a3b2c1d", id="opensmtpd:"),
        pytest.param(
            b"2.0.0 u9LCY5w5029587 Message accepted for delivery", "u9LCY5w5029587", id="sendmail"
        ),
        pytest.param(EXCHANGE, "2503855697932", id="exchange"),
        pytest.param(
            b"2.0.0 OK  1696440000 d9443c01a7336-1c9b1a2b3c4si123456pld.123 - gsmtp",
            "d9443c01a7336-1c9b1a2b3c4si123456pld.123",
            id="gmail",
        ),
        pytest.param(
            b"Ok 0100018b0f0e8a4b-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-000000",
            "0100018b0f0e8a4b-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-000000",
            id="amazon-ses",
        ),
        pytest.param(b"ok 1696440000 qp 12345", "12345", id="qmail"),
        pytest.param(b"2.0.0 Message accepted for delivery", None, id="no-id"),
        pytest.param(b"2.0.0 Ok", None, id="bare-ok"),
        pytest.param(b"OK 1696440000", None, id="ok-and-a-number"),
    ],
)
def test_queue_id_in_the_final_reply(text: bytes, expected: str | None) -> None:
    result = SendResult({}, {}, Reply.from_tuple(250, text))
    assert result.queue_id == expected


def test_no_final_reply_no_queue_id() -> None:
    assert SendResult({}, {}, None).queue_id is None  # LMTP: one reply per recipient
