"""``smtp_proto.transports.testing``: the capture server users test their code against.

Driven by the project's own blocking client (and raw sockets where a client would not
misbehave on purpose); every test checks both what the client saw and what was captured.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_proto.transports import sync as smtplib
from smtp_proto.transports.testing import CaptureServer

from tests.servers.certs import LocalCA

LOCAL_NAME = "client.example.test"
MESSAGE = b"From: a@example.test\r\nSubject: hello\r\n\r\nHello.\r\n"


def connect(server: CaptureServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=10)


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as capture:
        yield capture


class Raw:
    """A bare socket to the server, for exchanges a well-behaved client never makes."""

    def __init__(self, server: CaptureServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> bytes:
        lines = [self.file.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.file.readline())
        return b"".join(lines)

    def send(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# ---------------------------------------------------------------- messages and envelope


def test_a_message_is_captured_with_its_envelope(server: CaptureServer) -> None:
    with connect(server) as smtp:
        refused = smtp.sendmail(
            "a@example.test",
            ["b@example.test", "c@example.test"],
            MESSAGE,
            mail_options=["BODY=8BITMIME"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
        )
    assert refused == {}
    (captured,) = server.wait_for_messages(1)
    assert captured.mail_from == "a@example.test"
    assert captured.rcpt_tos == ["b@example.test", "c@example.test"]
    assert captured.mail_options == [f"size={len(MESSAGE)}", "BODY=8BITMIME"]
    assert captured.rcpt_options == [["NOTIFY=SUCCESS,FAILURE"]] * 2
    assert captured.data == MESSAGE
    assert captured.message["Subject"] == "hello"
    assert captured.message.get_content() == "Hello.\n"
    assert (captured.tls, captured.auth_user, captured.chunked) == (False, None, True)  # BDAT


def test_the_advertised_extensions(server: CaptureServer) -> None:
    with connect(server) as smtp:
        smtp.ehlo()
        features = dict(smtp.esmtp_features)
    assert set(features) == {
        "pipelining", "8bitmime", "smtputf8", "size", "dsn", "chunking", "enhancedstatuscodes",
    }  # fmt: skip
    assert features["size"] == str(10 << 20)


def test_leading_dots_are_unstuffed(server: CaptureServer) -> None:
    message = b"Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\nend.\r\n"
    with connect(server) as smtp:
        smtp.sendmail("a@example.test", "b@example.test", message)
    assert server.messages[0].data == message


def test_an_smtputf8_envelope(server: CaptureServer) -> None:
    with connect(server) as smtp:
        smtp.sendmail("jösé@example.test", "zoë@example.test", MESSAGE, ["SMTPUTF8"])
    (captured,) = server.messages
    assert (captured.mail_from, captured.rcpt_tos) == ("jösé@example.test", ["zoë@example.test"])
    raw = Raw(server)  # this client never sends them without SMTPUTF8; others might
    raw.send(b"EHLO x\r\n")
    refusal = b"553 5.6.7 Non-ASCII address without SMTPUTF8\r\n"
    assert raw.send("MAIL FROM:<jösé@example.test>\r\n".encode()) == refusal
    assert raw.send(b"MAIL FROM:<a@example.test>\r\n") == b"250 2.1.0 Ok\r\n"
    assert raw.send("RCPT TO:<zoë@example.test>\r\n".encode()) == refusal
    raw.close()


def test_several_threads_send_at_once(server: CaptureServer) -> None:
    def send(number: int) -> None:
        with connect(server) as smtp:
            for index in range(5):
                smtp.sendmail(
                    f"t{number}@example.test", "b@example.test", MESSAGE + b"%d\r\n" % index
                )

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    captured = server.wait_for_messages(20)
    assert Counter(m.mail_from for m in captured) == {f"t{n}@example.test": 5 for n in range(4)}


def test_wait_for_messages_times_out(server: CaptureServer) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 messages"):
        server.wait_for_messages(1, timeout=0.05)


def test_clear_forgets(server: CaptureServer) -> None:
    with connect(server) as smtp:
        smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
    assert len(server.messages) == 1
    server.clear()
    assert server.messages == []


# ---------------------------------------------------------------- refusals and failures on cue


def test_refused_recipients() -> None:
    refuse = {"nobody@example.test": (550, "5.1.1 No such user")}
    with CaptureServer(refuse=refuse) as server, connect(server) as smtp:
        refused = smtp.sendmail(
            "a@example.test", ["nobody@example.test", "b@example.test"], MESSAGE
        )
        assert refused == {"nobody@example.test": (550, b"5.1.1 No such user")}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("a@example.test", ["nobody@example.test"], MESSAGE)
        assert info.value.recipients == refused
    (captured,) = server.messages
    assert captured.rcpt_tos == ["b@example.test"]


@pytest.mark.parametrize(
    ("step", "exception"),
    [
        ("MAIL", smtplib.SMTPSenderRefused),
        ("DATA", smtplib.SMTPDataError),
        ("body", smtplib.SMTPDataError),
    ],
)
def test_failures_on_cue(step: str, exception: type[smtplib.SMTPResponseException]) -> None:
    with CaptureServer(fail={step: (451, "4.3.0 Try later")}) as server, connect(server) as smtp:
        smtp.chunking = step != "DATA"  # the DATA command's own reply
        with pytest.raises(exception) as info:
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
        assert (info.value.smtp_code, info.value.smtp_error) == (451, b"4.3.0 Try later")
        assert smtp.noop() == (250, b"2.0.0 Ok")  # the session goes on
    assert server.messages == []


def test_a_greeting_failure_then_only_quit() -> None:
    with CaptureServer(fail={"connect": (554, "5.3.2 No service")}) as server:
        raw = Raw(server)
        assert raw.greeting == b"554 5.3.2 No service\r\n"
        assert raw.send(b"EHLO x\r\n") == b"503 5.5.1 No service\r\n"
        assert raw.send(b"QUIT\r\n") == b"221 2.0.0 Bye\r\n"
        raw.close()


def test_a_421_closes_the_connection() -> None:
    with CaptureServer(fail={"RCPT": (421, "4.3.2 Shutting down")}) as server:
        smtp = connect(server)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
        assert info.value.recipients == {"b@example.test": (421, b"4.3.2 Shutting down")}
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
        smtp.close()


@pytest.mark.parametrize("step", ["MAIL", "DATA", "body"])
def test_dropping_the_connection_on_cue(step: str) -> None:
    with CaptureServer(drop_at=step) as server:
        smtp = connect(server)
        smtp.chunking = step != "DATA"  # dropped at the DATA command itself
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
        smtp.close()
    assert server.messages == []


def test_commands_out_of_order_and_unknown(server: CaptureServer) -> None:
    raw = Raw(server)
    assert raw.send(b"MAIL FROM:<a@example.test>\r\n").startswith(b"503 5.5.1")
    assert raw.send(b"EHLO x\r\n").startswith(b"250-")
    assert raw.send(b"RCPT TO:<b@example.test>\r\n").startswith(b"503 5.5.1 MAIL first")
    assert raw.send(b"MAIL FROM:<a@example.test> FROB=1\r\n").startswith(b"555 5.5.4")
    assert raw.send(b"MAIL FROM:<a@example.test\r\n").startswith(b"501 5.5.4")
    assert raw.send(b"MAIL FROM:<a@example.test>\r\n") == b"250 2.1.0 Ok\r\n"
    assert raw.send(b"MAIL FROM:<a@example.test>\r\n").startswith(b"503 5.5.1 Nested")
    assert raw.send(b"DATA\r\n").startswith(b"554 5.5.1")
    assert raw.send(b"XYZZY\r\n").startswith(b"502 5.5.2")
    assert raw.send(b"X" * 5000 + b"\r\n").startswith(b"500 5.5.2 Line too long")
    assert raw.send(b"NOOP\r\n") == b"250 2.0.0 Ok\r\n"  # still in step after the long line
    raw.close()


# ---------------------------------------------------------------- SIZE and BDAT


def test_size_is_advertised_and_enforced() -> None:
    with CaptureServer(size_limit=1000) as server:
        with connect(server) as smtp, pytest.raises(smtplib.SMTPMessageTooLarge):
            smtp.sendmail("a@example.test", "b@example.test", b"x" * 2000)  # refused by the client
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"MAIL FROM:<a@example.test> SIZE=1001\r\n").startswith(b"552 5.3.4")
        assert raw.send(b"MAIL FROM:<a@example.test> SIZE=x\r\n").startswith(b"501 5.5.4")
        raw.send(b"MAIL FROM:<a@example.test>\r\n")
        raw.send(b"RCPT TO:<b@example.test>\r\n")
        assert raw.send(b"DATA\r\n").startswith(b"354")
        assert raw.send(b"y" * 998 + b"\r\n" + b"y\r\n.\r\n").startswith(b"552 5.3.4")
        raw.send(b"MAIL FROM:<a@example.test>\r\n")
        raw.send(b"RCPT TO:<b@example.test>\r\n")
        assert raw.send(b"BDAT 600\r\n" + b"z" * 600) == b"250 2.0.0 600 octets received\r\n"
        assert raw.send(b"BDAT 600 LAST\r\n" + b"z" * 600).startswith(b"552 5.3.4")
        assert raw.send(b"NOOP\r\n") == b"250 2.0.0 Ok\r\n"
        raw.close()
    assert server.messages == []


@pytest.mark.parametrize("size", [40, 3 * (1 << 18) + 17])
def test_bdat_carries_the_message_unchanged(server: CaptureServer, size: int) -> None:
    line = b".dot-led line, never stuffed with BDAT\r\n"
    message = b"Subject: chunks\r\n\r\n" + line * (size // len(line) + 1)
    with connect(server) as smtp:
        smtp.chunking = True
        assert smtp.sendmail("a@example.test", "b@example.test", message) == {}
    (captured,) = server.messages
    assert captured.chunked
    assert captured.data == message


def test_bdat_by_hand(server: CaptureServer) -> None:
    raw = Raw(server)
    raw.send(b"EHLO x\r\n")
    assert raw.send(b"BDAT 3\r\nabc").startswith(b"503 5.5.1")  # the 3 bytes are consumed
    raw.send(b"MAIL FROM:<a@example.test>\r\n")
    raw.send(b"RCPT TO:<b@example.test>\r\n")
    assert raw.send(b"DATA\r\n").startswith(b"354")  # that BDAT was no part of this one
    assert raw.send(b"Hi\r\n.\r\n").startswith(b"250 2.0.0 Ok")
    raw.send(b"MAIL FROM:<a@example.test>\r\n")
    raw.send(b"RCPT TO:<b@example.test>\r\n")
    assert raw.send(b"BDAT 5\r\nHello") == b"250 2.0.0 5 octets received\r\n"
    assert raw.send(b"DATA\r\n").startswith(b"503 5.5.1 DATA after BDAT")
    assert raw.send(b"BDAT 0\r\n") == b"250 2.0.0 0 octets received\r\n"
    assert raw.send(b"BDAT 9 LAST\r\n, world\r\n").startswith(b"250 2.0.0 Ok")
    assert raw.send(b"BDAT x\r\n").startswith(b"501 5.5.4")  # unknown length: the end
    assert raw.file.read() == b""
    raw.close()
    first, second = server.messages
    assert (first.data, first.chunked) == (b"Hi\r\n", False)
    assert (second.data, second.chunked) == (b"Hello, world\r\n", True)


def test_a_failed_chunk_ends_the_transaction() -> None:
    with CaptureServer(fail={"BDAT": (554, "5.6.0 Bad chunk")}) as server:
        raw = Raw(server)
        raw.send(b"EHLO x\r\nMAIL FROM:<a@example.test>\r\n")
        raw.reply()
        raw.send(b"RCPT TO:<b@example.test>\r\n")
        assert raw.send(b"BDAT 4\r\nabcd") == b"554 5.6.0 Bad chunk\r\n"
        assert raw.send(b"BDAT 4 LAST\r\nefgh").startswith(b"503 5.5.1")
        raw.close()
    assert server.messages == []


# ---------------------------------------------------------------- STARTTLS and AUTH


def test_starttls(tls_ca: LocalCA) -> None:
    with CaptureServer(tls_context=tls_ca.server_context()) as server, connect(server) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert smtp.starttls(context=tls_ca.client_context())[0] == 220
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
    (captured,) = server.messages
    assert captured.tls


def test_commands_sent_with_starttls_are_never_run(tls_ca: LocalCA) -> None:
    with CaptureServer(tls_context=tls_ca.server_context()) as server:
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n").startswith(b"220")
        assert raw.file.read() == b""  # the server hung up instead of running them
        raw.close()


def test_starttls_is_not_offered_without_a_context(server: CaptureServer) -> None:
    with connect(server) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 502


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("initial_response_ok", [True, False])
def test_auth(mechanism: str, initial_response_ok: bool) -> None:
    credentials = {"jo": "sécret"}
    with CaptureServer(credentials=credentials) as server, connect(server) as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        smtp.user, smtp.password = "jo", "sécret"
        authobject = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        code, _ = smtp.auth(mechanism, authobject, initial_response_ok=initial_response_ok)
        assert code == 235
        smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
    assert server.messages[0].auth_user == "jo"


def test_auth_failures() -> None:
    with CaptureServer(credentials={"jo": "right"}) as server:
        with connect(server) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as info:
            smtp.login("jo", "wrong")
        assert info.value.smtp_code == 535
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"AUTH CRAM-MD5\r\n").startswith(b"504 5.5.4")
        assert raw.send(b"AUTH PLAIN not-base64!\r\n").startswith(b"501 5.5.2")
        assert raw.send(b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"
        assert raw.send(b"*\r\n").startswith(b"501 5.7.0")
        assert raw.send(b"AUTH PLAIN\r\n") == b"334 \r\n"
        assert raw.send(b"A" * 9000 + b"\r\n").startswith(b"501 5.5.2")  # too long: dropped
        assert raw.send(b"NOOP\r\n") == b"250 2.0.0 Ok\r\n"
        raw.close()
    with CaptureServer() as server, connect(server) as smtp:  # noqa: SIM117
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login("jo", "right")  # AUTH is not offered without credentials


# ---------------------------------------------------------------- LMTP


def test_lmtp_over_tcp_replies_per_recipient() -> None:
    failures = {"full@example.test": (552, "5.2.2 Mailbox full")}
    with CaptureServer(lmtp=True, lmtp_failures=failures) as server:
        with smtplib.LMTP(server.host, server.port, local_hostname=LOCAL_NAME) as lmtp:
            refused = lmtp.sendmail(
                "a@example.test", ["b@example.test", "full@example.test"], MESSAGE
            )
            replies = lmtp.lmtp_replies
        assert refused == {"full@example.test": (552, b"5.2.2 Mailbox full <full@example.test>")}
        assert replies["b@example.test"] == (250, b"2.0.0 Delivered <b@example.test>")
        raw = Raw(server)
        assert b"LMTP" in raw.greeting
        assert raw.send(b"EHLO x\r\n").startswith(b"500 5.5.1 LHLO expected")
        assert raw.send(b"HELO x\r\n").startswith(b"500 5.5.1 LHLO expected")
        raw.close()
    (captured,) = server.messages
    assert captured.rcpt_tos == ["b@example.test"]  # only the recipient it was delivered to


def test_lmtp_over_a_unix_socket_with_bdat(tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    failures = {"c@example.test": (451, "4.2.0 Try later")}
    with CaptureServer(unix_path=path, lmtp=True, lmtp_failures=failures) as server:
        assert server.host == str(path) and server.port == 0
        with smtplib.LMTP(str(path), local_hostname=LOCAL_NAME) as lmtp:
            lmtp.chunking = True
            refused = lmtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)
        assert refused == {"c@example.test": (451, b"4.2.0 Try later <c@example.test>")}
    assert not path.exists()  # removed when the server stops
    (captured,) = server.messages
    assert (captured.rcpt_tos, captured.chunked, captured.data) == (
        ["b@example.test"],
        True,
        MESSAGE,
    )


def test_every_lmtp_recipient_failing_captures_nothing() -> None:
    with CaptureServer(lmtp=True, fail={"body": (554, "5.6.0 Rejected")}) as server:
        lmtp = smtplib.LMTP(server.host, server.port, local_hostname=LOCAL_NAME)
        with lmtp, pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            lmtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)
        assert set(info.value.recipients) == {"b@example.test", "c@example.test"}
    assert server.messages == []


# ---------------------------------------------------------------- lifecycle


def test_stop_ends_open_connections() -> None:
    server = CaptureServer()
    server.start()
    smtp = connect(server)
    assert smtp.noop()[0] == 250
    server.stop()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()
    smtp.close()


# ---------------------------------------------------------------- what is sent is captured

_LINE = st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_LINE, min_size=1, max_size=30),
    chunking=st.booleans(),
    pieces=st.integers(min_value=1, max_value=7),
)
def test_what_is_sent_is_what_is_captured(lines: list[bytes], chunking: bool, pieces: int) -> None:
    """Dots, NULs, 8-bit bytes and any split into chunks (of a message in canonical form:
    CRLF line ends, at least one line): DATA (dot-stuffed by the client,
    unstuffed by the server) and BDAT (counted bytes) both deliver the message unchanged."""
    message = b"".join(line + b"\r\n" for line in lines)
    step = len(message) // pieces + 1
    chunks = [message[i : i + step] for i in range(0, len(message), step)]
    with CaptureServer() as server, connect(server) as smtp:
        smtp.chunking = chunking
        smtp.sendmail("a@example.test", "b@example.test", iter(chunks))
        (captured,) = server.messages
    assert captured.data == message
    assert captured.chunked == chunking
