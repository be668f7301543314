"""The high-level send's core, offline: body classification, argument checks, the result,
and mechanism choice for OAuth 2 tokens."""

from __future__ import annotations

import base64
import email.message
import pickle
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_proto import DSN, Client, Reply
from smtp_proto.body import BodyEncoder
from smtp_proto.send import (
    SendResult,
    SMTPAllRecipientsRefused,
    SMTPAuthNotSupportedError,
    Submission,
    body_kind,
)
from tests.offline import C, Peer, S

GREETING = b"220 server.example ESMTP ready\r\n"
OK = S(b"250 2.0.0 ok\r\n")

line_bytes = st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)


@given(st.lists(line_bytes, max_size=8))
def test_line_safe_bodies_are_never_changed_by_the_encoder(lines: list[bytes]) -> None:
    data = b"".join(line + b"\r\n" for line in lines)
    kind = body_kind(data)
    assert kind in (("7bit", "8bit", "binary"))
    assert (kind == "binary") == (b"\0" in data)
    if kind != "binary":
        assert BodyEncoder(stuff_dots=False).encode_all(data) == (data or b"\r\n")
        assert kind == ("7bit" if data.isascii() else "8bit")


@given(st.binary(max_size=300))
def test_classification_matches_its_definition(data: bytes) -> None:
    expected = "binary" if b"\0" in data else "7bit" if data.isascii() else "8bit"
    assert body_kind(data) == expected


@given(st.binary(max_size=300).filter(lambda data: b"\0" not in data))
def test_text_bodies_reach_the_server_with_only_their_line_ends_changed(data: bytes) -> None:
    normalised = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    tail = b"" if normalised.endswith(b"\r\n") else b"\r\n"
    assert BodyEncoder(stuff_dots=False).encode_all(data) == normalised + tail


def test_overlong_lines_and_unix_line_ends_are_not_binary() -> None:
    assert body_kind(b"a" * 5000 + b"\r\n") == "7bit"
    assert body_kind(b"unix\nline ends\n") == "7bit"
    assert body_kind(b"old mac\rline ends\r\xc3\xa9") == "8bit"


# ---------------------------------------------------------------- argument checks


def submission(**options: Any) -> Submission:
    options.setdefault("sender", "s@x")
    options.setdefault("recipients", "r@x")
    return Submission.create(b"Subject: s\r\n\r\n", "mail.example", **options)


@pytest.mark.parametrize(
    ("port", "tls", "expected"),
    [
        (None, "auto", (587, False, "require")),
        (465, "auto", (465, True, "never")),
        (25, "auto", (25, False, "require")),
        (None, "implicit", (465, True, "never")),
        (None, "starttls", (587, False, "require")),
        (2525, "opportunistic", (2525, False, "try")),
        (25, "none", (25, False, "never")),
    ],
)
def test_tls_plan(port: int | None, tls: Any, expected: tuple[int, bool, str]) -> None:
    plan = (
        submission(tls=tls)
        if port is None
        else Submission.create(b"x", "h", port, sender="s", recipients="r", tls=tls)
    )
    assert (plan.port, plan.implicit_tls, plan.starttls) == expected


def test_lmtp_on_a_unix_socket_needs_no_tls() -> None:
    plan = Submission.create(b"x", "/run/lmtp", sender="s", recipients="r", lmtp=True)
    assert (plan.port, plan.implicit_tls, plan.starttls) == (0, False, "never")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"tls": "sometimes"}, ValueError),
        ({"password": "p"}, ValueError),
        ({"username": "u"}, ValueError),
        ({"username": "u", "password": "p", "oauth2_token": "t"}, ValueError),
        ({"recipients": []}, ValueError),
        ({"sender": None}, TypeError),
        ({"lmtp": True, "tls": "implicit"}, ValueError),
    ],
)
def test_bad_arguments_fail_before_connecting(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        submission(**options)


def test_secrets_stay_out_of_repr() -> None:
    plan = submission(username="alice", password="hunter2", tls="none", plaintext_auth=True)
    token = submission(username="alice", oauth2_token="ya29.secret-token")
    assert "alice" in repr(plan)
    assert "hunter2" not in repr(plan) and "secret-token" not in repr(token)


def test_body_kinds_from_arguments() -> None:
    assert submission().kind == "7bit"
    assert Submission.create("na\u00efve", "h", sender="s", recipients="r").kind == "8bit"
    assert submission(binary=True).kind == "binary"
    unix = Submission.create(b"unix\nline ends\n", "h", sender="s", recipients="r")
    assert unix.kind == "7bit"
    text = Submission.create(b"nul\0byte\r\n", "h", sender="s", recipients="r", binary=False)
    assert text.kind == "7bit"
    stream = Submission.create(iter([b"x"]), "h", sender="s", recipients="r")
    assert stream.kind == "stream"
    assert Submission.create(
        b"Subject: \xc3\xa9\r\n\r\n", "h", sender="s", recipients="r"
    ).international


def test_email_message_envelope_from_headers() -> None:
    message = email.message.EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Bcc"] = "hidden@example.com"
    message.set_content("hi")
    plan = Submission.create(message, "h")
    assert (plan.sender, plan.recipients) == (
        "a@example.com",
        ("b@example.com", "hidden@example.com"),
    )
    assert isinstance(plan.body, bytes) and b"hidden" not in plan.body


# ---------------------------------------------------------------- results


@pytest.mark.parametrize(
    ("text", "queue_id"),
    [
        (b"2.0.0 Ok: 227 bytes queued as 675A7164440", "675A7164440"),
        (b"OK id=1q2w3e-000abc-Xy", "1q2w3e-000abc-Xy"),
        (b"2.0.0 Message accepted", None),
    ],
)
def test_queue_id(text: bytes, queue_id: str | None) -> None:
    result = SendResult({}, {}, Reply(250, (text,)))
    assert result.queue_id == queue_id
    assert result.ok
    assert SendResult({}, {"r": Reply(550, (b"no",))}, None).ok is False


# ---------------------------------------------------------------- a whole session, offline


def start_session(script: list[Any], pipelining: bool = False) -> tuple[Client, Peer]:
    """A client that read the greeting, and the peer playing the rest of ``script``."""
    client = Client("client.example")
    peer = Peer([S(GREETING), *script], pipelining=pipelining)
    client.connecting("server.example", 25)
    peer.run(client.greeting())
    return client, peer


def run_session(plan: Submission, script: list[Any], pipelining: bool = False) -> Any:
    client, peer = start_session(script, pipelining)
    result = peer.run(plan.operation(client))
    peer.expect_finished()
    return result, peer


@pytest.mark.parametrize(
    ("advertised", "mechanism", "expected"),
    [
        ("OAUTHBEARER XOAUTH2", None, "OAUTHBEARER"),
        ("XOAUTH2 PLAIN", None, "XOAUTH2"),
        ("OAUTHBEARER XOAUTH2", "xoauth2", "XOAUTH2"),
    ],
)
def test_oauth2_mechanism_follows_the_offer(
    advertised: str, mechanism: str | None, expected: str
) -> None:
    tokens = iter(["fresh-token"])
    plan = Submission.create(
        b"x",
        "h",
        25,
        sender="s@x",
        recipients="r@x",
        tls="none",
        username="me@x",
        oauth2_token=lambda: next(tokens),
        mechanism=mechanism,
        plaintext_auth=True,
    )
    if expected == "OAUTHBEARER":
        initial = b"n,a=me@x,\x01auth=Bearer fresh-token\x01\x01"
    else:
        initial = b"user=me@x\x01auth=Bearer fresh-token\x01\x01"
    auth = f"AUTH {expected} ".encode() + base64.b64encode(initial) + b"\r\n"
    script = [
        C(b"ehlo client.example\r\n"),
        S(f"250-server.example\r\n250 AUTH {advertised}\r\n".encode()),
        C(auth),
        S(b"235 2.7.0 ok\r\n"),
        C(b"mail FROM:<s@x>\r\n"),
        OK,
        C(b"rcpt TO:<r@x>\r\n"),
        OK,
        C(b"data\r\n"),
        S(b"354 go\r\n"),
        C(b"x\r\n.\r\n"),
        S(b"250 2.0.0 queued as Q1\r\n"),
        C(b"quit\r\n"),
        S(b"221 bye\r\n"),
    ]
    result, peer = run_session(plan, script)
    assert result.queue_id == "Q1" and peer.closed


@pytest.mark.parametrize(
    ("credentials", "offered", "error"),
    [
        ({"oauth2_token": "t"}, b"PLAIN", "OAUTHBEARER nor XOAUTH2"),
        ({"password": "p"}, b"GSSAPI", "AUTH GSSAPI"),  # no mechanism a password can serve
    ],
    ids=["oauth2", "password"],
)
def test_credentials_without_a_mechanism_for_them_send_nothing(
    credentials: dict[str, Any], offered: bytes, error: str
) -> None:
    """AUTH is offered, but not with a mechanism these credentials can use: the same typed
    error as no AUTH at all, before any AUTH command."""
    plan = Submission.create(
        b"x", "h", 25, sender="s", recipients="r", tls="none", username="u",
        plaintext_auth=True, **credentials,
    )  # fmt: skip
    script = [
        C(b"ehlo client.example\r\n"),
        S(b"250-server.example\r\n250 AUTH " + offered + b"\r\n"),
    ]
    with pytest.raises(SMTPAuthNotSupportedError, match=error):
        run_session(plan, script)


def test_a_transaction_refused_to_everyone_ends_with_quit_and_keeps_the_replies() -> None:
    plan = Submission.create(
        b"x", "h", 25, sender="s@x", recipients=["a@x", "b@x"], tls="none", chunking=False
    )
    script = [
        C(b"ehlo client.example\r\n"),
        S(b"250 server.example\r\n"),
        C(b"mail FROM:<s@x>\r\n"),
        OK,
        C(b"rcpt TO:<a@x>\r\n"),
        S(b"550 5.1.1 no a\r\n"),
        C(b"rcpt TO:<b@x>\r\n"),
        S(b"551 5.1.6 b moved\r\n"),
        C(b"rset\r\n"),
        OK,
        C(b"quit\r\n"),
        S(b"221 bye\r\n"),
    ]
    client, peer = start_session(script)
    with pytest.raises(SMTPAllRecipientsRefused) as caught:
        peer.run(plan.operation(client))
    peer.expect_finished()  # QUIT was said
    refusal = caught.value
    assert refusal.recipients == {"a@x": (550, b"5.1.1 no a"), "b@x": (551, b"5.1.6 b moved")}
    assert {r: reply.as_tuple() for r, reply in refusal.result.refused.items()} == (
        refusal.recipients
    )
    copy = pickle.loads(pickle.dumps(refusal))  # e.g. from a worker process
    assert (copy.recipients, copy.result) == (refusal.recipients, refusal.result)


def test_dsn_parameters_in_a_pipelined_session() -> None:
    plan = Submission.create(
        b"x",
        "h",
        25,
        sender="s@x",
        recipients=["a@x"],
        tls="none",
        dsn=DSN(ret="FULL", notify=("DELAY", "FAILURE"), orcpt=True),
        chunking=False,
    )
    script = [
        C(b"ehlo client.example\r\n"),
        S(b"250-server.example\r\n250-PIPELINING\r\n250 DSN\r\n"),
        C(b"mail FROM:<s@x> RET=FULL\r\n"),
        C(b"rcpt TO:<a@x> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@x\r\n"),
        C(b"data\r\n"),
        S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        C(b"x\r\n.\r\n"),
        S(b"250 done\r\n"),
        C(b"quit\r\n"),
        S(b"221 bye\r\n"),
    ]
    result, _ = run_session(plan, script, pipelining=True)
    assert list(result.accepted) == ["a@x"] and result.data_reply.text == b"done"
