"""``smtp_proto.transports.testing``: the capture server users test their code against.

Driven by the project's own blocking client (and raw sockets where a client would not
misbehave on purpose); every test checks both what the client saw and what was captured.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_proto.transports import sync as smtplib
from smtp_proto.transports.testing import CaptureServer
from smtp_proto.transports.testing.parameters import _path_and_parameters
from smtp_proto.transports.testing.session import _Session

from smtp_proto.replies import ReplyParser
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


def drive_to(raw: Raw, step: str) -> None:
    """A session up to ``step``; the line the server acts on is sent, its reply not read."""
    raw.send(b"EHLO x\r\n")
    if step == "MAIL":
        raw.sock.sendall(b"MAIL FROM:<a@example.test>\r\n")
        return
    raw.send(b"MAIL FROM:<a@example.test>\r\n")
    raw.send(b"RCPT TO:<b@example.test>\r\n")
    if step == "message":
        raw.sock.sendall(b"DATA\r\n")
        assert raw.file.readline().startswith(b"354 ")
        return
    assert raw.send(b"DATA\r\n").startswith(b"354 ")
    raw.sock.sendall(b"Hi\r\n.\r\n")


STEPS = ["MAIL", "message", "body", "captured"]


@pytest.mark.parametrize("step", STEPS)
def test_closing_on_cue(step: str) -> None:
    with CaptureServer(fail={step: "close"}) as server:
        raw = Raw(server)
        drive_to(raw, step)
        assert raw.file.read() == b""  # an orderly close, and not a word
        raw.close()
    assert len(server.messages) == (step == "captured")


@pytest.mark.parametrize("step", STEPS)
def test_resetting_on_cue(step: str) -> None:
    with CaptureServer(fail={step: "reset"}) as server:
        raw = Raw(server)
        drive_to(raw, step)
        with pytest.raises(ConnectionResetError):
            raw.sock.recv(100)
        raw.close()
    assert len(server.messages) == (step == "captured")


@pytest.mark.parametrize("step", STEPS)
def test_stalling_on_cue_until_the_server_stops(step: str) -> None:
    with CaptureServer(fail={step: "stall"}) as server:
        raw = Raw(server)
        drive_to(raw, step)
        raw.sock.settimeout(0.2)  # silence is the expected outcome
        with pytest.raises(TimeoutError):
            raw.sock.recv(100)
    raw.sock.settimeout(10)
    assert raw.sock.recv(100) == b""  # stopping the server ended the stall
    raw.close()


def test_a_stalled_server_meets_the_client_timeout() -> None:
    with CaptureServer(fail={"message": "stall"}) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME, timeout=0.3)
        with pytest.raises(smtplib.SMTPServerDisconnected) as info:
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE * 1000)
        assert isinstance(info.value.__cause__, TimeoutError)
        smtp.close()
    assert server.messages == []


def test_a_reply_while_the_message_comes_ends_the_connection() -> None:
    with CaptureServer(fail={"message": (554, "5.7.0 Not from you")}) as server:
        raw = Raw(server)
        drive_to(raw, "message")
        assert raw.file.read() == b"554 5.7.0 Not from you\r\n"
        raw.close()
    assert server.messages == []


def test_a_captured_message_can_be_told_otherwise() -> None:
    """The reply after the message fails, though the message arrived: a resend duplicates."""
    later = (451, "4.3.0 Try later")
    with CaptureServer(fail={"captured": later}) as server, connect(server) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
        assert (info.value.smtp_code, info.value.smtp_error) == (451, b"4.3.0 Try later")
    (captured,) = server.messages
    assert captured.data == MESSAGE


def test_lmtp_recipients_all_get_the_reply_given_after_the_capture() -> None:
    with CaptureServer(lmtp=True, fail={"captured": (452, "4.2.2 Full")}) as server:
        lmtp = smtplib.LMTP(server.host, server.port, local_hostname=LOCAL_NAME)
        with lmtp, pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            lmtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)
        assert info.value.recipients == {
            "b@example.test": (452, b"4.2.2 Full"),
            "c@example.test": (452, b"4.2.2 Full"),
        }
    assert server.messages[0].rcpt_tos == ["b@example.test", "c@example.test"]


def test_a_multi_line_reply_on_cue() -> None:
    with CaptureServer(fail={"MAIL": (550, "5.7.1 Not you\n5.7.1 Nor anyone")}) as server:
        with connect(server) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as info:
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
        assert info.value.smtp_error == b"5.7.1 Not you\n5.7.1 Nor anyone"
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"MAIL FROM:<a@example.test>\r\n") == (
            b"550-5.7.1 Not you\r\n550 5.7.1 Nor anyone\r\n"
        )
        raw.close()


def test_recipients_refused_by_a_function() -> None:
    def refuse(address: str) -> tuple[int, str] | None:
        user = address.partition("@")[0]
        return (550, f"5.1.1 No {user} here") if user.startswith("x") else None

    with CaptureServer(refuse=refuse) as server, connect(server) as smtp:
        refused = smtp.sendmail("a@example.test", ["xavier@x.test", "b@example.test"], MESSAGE)
        assert refused == {"xavier@x.test": (550, b"5.1.1 No xavier here")}
    assert server.messages[0].rcpt_tos == ["b@example.test"]


def test_an_unknown_action_or_mechanism_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown action 'explode' at 'MAIL'"):
        CaptureServer(fail={"MAIL": "explode"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unsupported AUTH mechanisms"):
        CaptureServer(credentials={}, auth_mechanisms=["GSSAPI"])


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


def test_strict_where_rfc_5321_is(server: CaptureServer) -> None:
    raw = Raw(server)
    assert raw.send(b"EHLO\r\n").startswith(b"501 5.5.4 Syntax: EHLO hostname")
    assert raw.send(b"NOOP\n") == b"500 5.5.2 Command line must end with CRLF\r\n"
    assert raw.send(b"HELO x\r\n") == b"250 capture.local\r\n"
    assert raw.send(b"MAIL FROM:a@example.test\r\n").startswith(b"501 5.5.4")  # no <>
    assert raw.send(b"MAIL FROM:<a@example.test>x\r\n").startswith(b"501 5.5.4")
    assert raw.send(b"VRFY\r\n").startswith(b"501 5.5.4")
    assert raw.send(b"VRFY b\r\n").startswith(b"252 ")
    assert raw.send(b"EXPN staff\r\n").startswith(b"502 5.5.1")
    help_lines = raw.send(b"HELP\r\n").split(b"\r\n")
    assert help_lines[0] == b"214-Commands supported:"
    assert {b"EHLO", b"MAIL", b"BDAT", b"STARTTLS", b"QUIT"} <= set(help_lines[1][4:].split())
    raw.send(b"MAIL FROM:<a@example.test>\r\n")
    raw.send(b"RCPT TO:<b@example.test>\r\n")
    assert raw.send(b"DATA now\r\n").startswith(b"501 5.5.4 Syntax: DATA")
    raw.close()
    assert server.messages == []


def test_every_command_line_is_recorded() -> None:
    with CaptureServer(credentials={"jo": "pw"}) as server:
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"AUTH PLAIN\r\n") == b"334 \r\n"
        assert raw.send(b"AGpvAHB3\r\n").startswith(b"235")  # the answer: no command
        raw.send(b"MAIL FROM:<a@example.test>\r\n")
        raw.send(b"RCPT TO:<b@example.test>\r\n")
        raw.send(b"DATA\r\n")
        raw.send(b"QUIT\r\n.\r\n")  # the message: no command either
        assert raw.send(b"quit \xff\r\n") == b"221 2.0.0 Bye\r\n"
        raw.close()
    assert server.commands == [
        "EHLO x",
        "AUTH PLAIN",
        "MAIL FROM:<a@example.test>",
        "RCPT TO:<b@example.test>",
        "DATA",
        "quit \udcff",  # kept as sent: not UTF-8, a surrogate escape
    ]
    assert server.messages[0].data == b"QUIT\r\n"


# ---------------------------------------------------------------- what it advertises


def test_the_extensions_it_is_given_and_keeps_to() -> None:
    with CaptureServer(hostname="mx.test", extensions=["PIPELINING", "SIZE 100"]) as server:
        raw = Raw(server)
        assert raw.greeting == b"220 mx.test ESMTP smtp-proto capture server\r\n"
        assert raw.send(b"EHLO x\r\n") == b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n"
        assert raw.send(b"MAIL FROM:<a@example.test> SIZE=101\r\n").startswith(b"552 5.3.4")
        raw.send(b"MAIL FROM:<a@example.test> SIZE=100\r\n")
        raw.send(b"RCPT TO:<b@example.test>\r\n")
        assert raw.send(b"BDAT 3\r\n").startswith(b"502 5.5.2")  # no CHUNKING: unknown
        assert raw.send(b"DATA\r\n").startswith(b"354")
        assert raw.send(b"y" * 101 + b"\r\n.\r\n").startswith(b"552 5.3.4")
        raw.close()
    assert server.messages == []


def test_starttls_and_auth_are_added_to_the_extensions(tls_ca: LocalCA) -> None:
    context = tls_ca.server_context()
    server = CaptureServer(extensions=["8BITMIME"], tls_context=context, credentials={})
    with server, connect(server) as smtp:
        smtp.ehlo()
        assert list(smtp.esmtp_features) == ["8bitmime", "auth", "starttls"]
        smtp.starttls(context=tls_ca.client_context())
        smtp.ehlo()
        assert list(smtp.esmtp_features) == ["8bitmime", "auth"]
        assert smtp.docmd("STARTTLS") == (503, b"5.5.1 TLS already active")


def test_no_size_limit() -> None:
    with CaptureServer(size_limit=None) as server:
        with connect(server) as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("size")
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"MAIL FROM:<a@example.test> SIZE=99999999999\r\n").startswith(b"250")
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


def test_implicit_tls_for_smtp_ssl(tls_ca: LocalCA) -> None:
    server_context = tls_ca.server_context()
    credentials = {"ann": "s3cret"}
    with CaptureServer(tls_context=server_context, implicit_tls=True, credentials=credentials) as (
        server
    ):
        context = tls_ca.client_context()
        with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("auth") and not smtp.has_extn("starttls")
            smtp.login("ann", "s3cret")
            assert smtp.sendmail("a@example.test", "b@example.test", MESSAGE) == {}
    (captured,) = server.messages
    assert (captured.tls, captured.auth_user, captured.data) == (True, "ann", MESSAGE)


def test_implicit_tls_a_refused_certificate_ends_only_its_connection(tls_ca: LocalCA) -> None:
    with CaptureServer(tls_context=tls_ca.server_context(), implicit_tls=True) as server:
        with pytest.raises(ssl.SSLCertVerificationError):  # the test CA is not trusted
            smtplib.SMTP_SSL(server.host, server.port, timeout=10)
        context = tls_ca.client_context()
        with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=10) as smtp:
            assert smtp.noop() == (250, b"2.0.0 Ok")
    assert server.commands == ["noop", "QUIT"]  # as smtplib leaves a with block


def test_implicit_tls_needs_a_context() -> None:
    with pytest.raises(ValueError, match="implicit_tls needs a tls_context"):
        CaptureServer(implicit_tls=True)


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


def test_cram_md5() -> None:
    credentials = {"jo": "sécret"}
    with CaptureServer(credentials=credentials, auth_mechanisms=["CRAM-MD5", "LOGIN"]) as server:
        with connect(server) as smtp:
            smtp.ehlo()
            assert smtp.esmtp_features["auth"].split() == ["CRAM-MD5", "LOGIN"]
            assert smtp.login("jo", "sécret")[0] == 235  # smtplib's first choice: CRAM-MD5
            smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
        raw = Raw(server)
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"AUTH CRAM-MD5 am8=\r\n").startswith(b"501 5.5.2")  # no initial
        assert raw.send(b"AUTH CRAM-MD5\r\n").startswith(b"334 ")
        assert raw.send(b"am8gMDEyMw==\r\n").startswith(b"535 5.7.8")  # "jo 0123"
        assert raw.send(b"AUTH PLAIN AGpvAHPDqWNyZXQ=\r\n").startswith(b"504 5.5.4")
        raw.close()
    assert server.messages[0].auth_user == "jo"
    assert [c for c in server.commands if c.startswith("AUTH")] == [
        "AUTH CRAM-MD5",  # the client's login
        "AUTH CRAM-MD5 am8=",
        "AUTH CRAM-MD5",
        "AUTH PLAIN AGpvAHPDqWNyZXQ=",
    ]


def test_auth_needs_ehlo_and_comes_once() -> None:
    with CaptureServer(credentials={"jo": "pw"}) as server:
        raw = Raw(server)
        raw.send(b"HELO x\r\n")
        assert raw.send(b"AUTH PLAIN AGpvAHB3\r\n").startswith(b"503 5.5.1 EHLO first")
        raw.send(b"EHLO x\r\n")
        assert raw.send(b"AUTH PLAIN AHhvAHB3\r\n").startswith(b"535")  # authzid "x" for jo
        assert raw.send(b"AUTH PLAIN AGpvAHB3\r\n").startswith(b"235")
        assert raw.send(b"AUTH PLAIN AGpvAHB3\r\n").startswith(b"503 5.5.1 Already")
        raw.close()


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


_REPLY_LINE = st.from_regex(r"[!-~]([ -~]*[!-~])?", fullmatch=True)


@given(code=st.integers(min_value=200, max_value=599), lines=st.lists(_REPLY_LINE, min_size=1))
def test_replies_read_back_as_given(code: int, lines: list[str]) -> None:
    """Any reply the server is told to give, one line or several, is the one a client reads."""
    parser = ReplyParser()
    parser.feed(_Session.encode(code, "\n".join(lines)))
    reply = parser.next_reply()
    assert reply is not None
    assert (reply.code, reply.lines) == (code, tuple(line.encode() for line in lines))
    assert parser.next_reply() is None


_ADDRESS = st.text(st.characters(blacklist_characters="<>\r\n", blacklist_categories=["Cs"]))
#: ESMTP parameters (RFC 5321 esmtp-value, less the angle brackets it allows: then taking one
#: of the path's brackets away leaves no path, which the test checks).
_PARAMETER = st.from_regex(r"[A-Za-z][A-Za-z0-9-]*(=[!-;?-~]+)?", fullmatch=True)


@given(
    keyword=st.sampled_from(["FROM:", "from:", "TO:", "To:"]),
    address=_ADDRESS,
    parameters=st.lists(_PARAMETER, max_size=4),
    space=st.sampled_from(["", " "]),
)
def test_paths_and_parameters_are_split_as_written(
    keyword: str, address: str, parameters: list[str], space: str
) -> None:
    argument = f"{keyword}{space}<{address}>" + "".join(f" {p}" for p in parameters)
    expected = (address, parameters)
    assert _path_and_parameters(argument, keyword.upper()) == expected
    assert _path_and_parameters(argument.replace(">", "", 1), keyword.upper()) is None
    assert _path_and_parameters(argument.replace("<", "", 1), keyword.upper()) is None
    other = "TO:" if keyword.upper() == "FROM:" else "FROM:"
    assert _path_and_parameters(argument, other) is None
