"""``send`` within the server's RFC 9422 LIMITS, offline: a message with more recipients
than ``RCPTMAX`` (or domains than ``RCPTDOMAINMAX``) goes as several transactions on the
one session, and its outcome is theirs merged (``smtp_proto.send.merge_outcomes``)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_proto import Client
from smtp_proto.driving import drive
from smtp_proto.errors import SMTPDataError, SMTPSenderRefused, SMTPServerDisconnected
from smtp_proto.limits import Limits
from smtp_proto.replies import Reply
from smtp_proto.send import SendResult, SMTPAllRecipientsRefused, Submission, merge_outcomes
from tests.core.test_batch_core import ModelServer, Script, open_session

SENDER = "s0@example.test"


def submission(recipients: list[str]) -> Submission:
    return Submission.create(
        b"Subject: limits\r\n\r\nbody\r\n",
        "model.example",
        25,
        sender=SENDER,
        recipients=recipients,
        tls="none",
    )


def deliver(client: Client, server: ModelServer, sub: Submission) -> tuple[object, list[int]]:
    """``sub`` delivered on ``client``'s session: its outcome, and the number of RCPTs of
    each transaction the server saw."""
    sizes: list[int] = []
    perform = server.perform

    def watching(request: Any) -> Any:
        if isinstance(request, bytes | memoryview):
            for verb in re.findall(rb"(?im)^(mail|rcpt) ", bytes(request)):
                if verb.lower() == b"mail":
                    sizes.append(0)
                else:
                    sizes[-1] += 1
        return perform(request)

    try:
        outcome: object = drive(sub.deliver(client), watching, client.close)
    except Exception as exc:
        outcome = exc
    return outcome, sizes


domains = st.sampled_from(["x.test", "y.test", "z.test"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefghij"), domains), min_size=1, unique=True),
    st.integers(1, 4),
    st.none() | st.integers(1, 2),
    st.data(),
)
def test_a_message_over_the_limits_goes_in_transactions_within_them_merged(
    addresses: list[tuple[str, str]], rcptmax: int, rcptdomainmax: int | None, data: st.DataObject
) -> None:
    recipients = [f"{local}@{domain}" for local, domain in addresses]
    codes = {r: data.draw(st.sampled_from([250, 251, 450, 550]), r) for r in recipients}
    mail = data.draw(st.sampled_from([250, 250, 250, 451]), "mail")
    body = data.draw(st.sampled_from([250, 250, 554]), "body")
    server = ModelServer({SENDER: Script(mail, codes, body)})
    client = open_session(server)
    advertised = f"RCPTMAX={rcptmax}" + (f" RCPTDOMAINMAX={rcptdomainmax}" if rcptdomainmax else "")
    client.esmtp_features["limits"] = advertised
    outcome, sizes = deliver(client, server, submission(recipients))

    groups = Limits(rcptmax=rcptmax, rcptdomainmax=rcptdomainmax).split(recipients)
    assert len(server.mails) == len(groups) and all(size <= rcptmax for size in sizes)
    taken = {r for r, code in codes.items() if code in (250, 251)}
    refused = {r: code for r, code in codes.items() if code not in (250, 251)}
    if mail != 250:
        assert isinstance(outcome, SMTPSenderRefused) and outcome.smtp_code == mail
    elif taken and body == 250:
        assert isinstance(outcome, SendResult)
        assert set(outcome.accepted) == taken
        assert {r: reply.code for r, reply in outcome.refused.items()} == refused
        assert outcome.queue_id == "S0"
        assert server.delivered == [SENDER] * sum(bool(set(g) & taken) for g in groups)
    elif taken:
        assert isinstance(outcome, SMTPDataError) and outcome.smtp_code == body
    else:
        assert isinstance(outcome, SMTPAllRecipientsRefused)
        assert {r: code for r, (code, _) in outcome.recipients.items()} == refused
    assert sum(sizes) == len(recipients)  # each recipient in one transaction (pipelined)


def test_a_message_within_the_limits_is_one_transaction() -> None:
    recipients = ["a@x.test", "b@y.test"]
    server = ModelServer({SENDER: Script(250, dict.fromkeys(recipients, 250), 250)})
    client = open_session(server)
    client.esmtp_features["limits"] = "RCPTMAX=2"
    outcome, sizes = deliver(client, server, submission(recipients))
    assert isinstance(outcome, SendResult) and sizes == [2]


def test_a_connection_lost_after_a_part_leaves_the_rest_refused_unanswered() -> None:
    """RCPTMAX=1: the first transaction is delivered, then the server hangs up: the message
    was delivered, to the first recipient only, and the others are reported unanswered."""
    recipients = ["a@x.test", "b@x.test", "c@x.test"]
    server = ModelServer({SENDER: Script(250, dict.fromkeys(recipients, 250), 250)})
    client = open_session(server)
    client.esmtp_features["limits"] = "RCPTMAX=1"
    server.drop_after = server.replies + 3  # MAIL, RCPT and BDAT of the first
    outcome, sizes = deliver(client, server, submission(recipients))
    assert isinstance(outcome, SendResult) and list(outcome.accepted) == ["a@x.test"]
    assert {r: reply.code for r, reply in outcome.refused.items()} == {
        "b@x.test": -1,
        "c@x.test": -1,
    }
    assert server.delivered == [SENDER]
    assert sizes == [1, 1]  # the second written before the close showed, the third never


def test_merge_outcomes_lets_a_later_reply_replace_an_earlier_one() -> None:
    """A recipient refused for a passing reason, then sent again: its last reply counts."""
    ok, busy, gone = (Reply.from_tuple(code, b"r") for code in (250, 450, 550))
    first = SendResult({"a@x": ok}, {"b@x": busy, "c@x": gone}, Reply.from_tuple(250, b"id=A"))
    again = SendResult({"b@x": ok}, {}, Reply.from_tuple(250, b"id=B"))
    merged = merge_outcomes([(["a@x", "b@x", "c@x"], first), (["b@x"], again)])
    assert isinstance(merged, SendResult)
    assert list(merged.accepted) == ["a@x", "b@x"] and list(merged.refused) == ["c@x"]
    assert merged.queue_id == "A"
    lost = SMTPServerDisconnected("lost")
    still = merge_outcomes([(["a@x", "b@x", "c@x"], first), (["b@x"], lost)])
    assert isinstance(still, SendResult) and still.refused["b@x"].code == -1
