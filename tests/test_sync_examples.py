"""Well-known ``smtplib`` examples, unchanged but for the import, run against Postfix.

Each one sets the debug level, so the stderr transcript must have the shape ``smtplib``
prints (``send: '...'``, ``reply: b'...'``, ``reply: retcode (...); Msg: ...``,
``data: (250, ...)``; the message goes by BDAT, which Postfix offers), and each message must
really arrive in Postfix's Maildir.
"""

from __future__ import annotations

import email.utils
import re
import smtplib as stdlib_smtplib
from collections.abc import Callable
from email.mime.text import MIMEText

import pytest
from smtp_proto.transports import sync as smtplib

from tests.offline import smtplib_spelling
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]


def transcript(err: str) -> list[str]:
    return err.splitlines()


def assert_ehlo_shape(lines: list[str]) -> None:
    """EHLO sent, each reply line echoed raw, then the parsed code and text."""
    assert any(re.fullmatch(r"send: 'ehlo [^\s']+\\r\\n'", line) for line in lines), lines
    assert "reply: b'250-postfix.test\\r\\n'" in lines
    assert "reply: b'250-PIPELINING\\r\\n'" in lines
    assert "reply: b'250 CHUNKING\\r\\n'" in lines
    assert any(
        line.startswith("reply: retcode (250); Msg: b'postfix.test\\nPIPELINING\\n")
        for line in lines
    ), lines


def assert_sendmail_shape(lines: list[str], sender: str, recipients: list[str]) -> None:
    """MAIL, one RCPT per recipient, then the message: Postfix offers CHUNKING, so one
    ``BDAT n LAST`` with the body (and no DATA, no 354), and the final 250 (Postfix counts the
    bytes in it) as ``data:``."""
    assert any(
        re.fullmatch(
            smtplib_spelling(rf"send: 'mail FROM:<{re.escape(sender)}> size=\d+\\r\\n'"), line
        )
        for line in lines
    ), lines
    for rcpt in recipients:
        assert smtplib_spelling(f"send: 'rcpt TO:<{rcpt}>\\r\\n'") in lines
    assert any(re.fullmatch(r"send: 'BDAT \d+ LAST\\r\\n'", line) for line in lines), lines
    assert not any(line.startswith(("send: 'data", "data: (354")) for line in lines)
    assert any(line.startswith("send: b'") and line.endswith("\\r\\n'") for line in lines)
    assert any(
        re.fullmatch(r"data: \(250, b'2\.0\.0 Ok: \d+ bytes queued as \w+'\)", line)
        for line in lines
    ), lines


def assert_quit_shape(lines: list[str]) -> None:
    assert lines[-3:] == [
        "send: 'quit\\r\\n'",
        "reply: b'221 2.0.0 Bye\\r\\n'",
        "reply: retcode (221); Msg: b'2.0.0 Bye'",
    ]


@pytest.mark.parametrize("level", [1, True])
def test_python_docs_example(
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    token: str,
    level: int,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The library reference's example: headers and body glued into a str, then sendmail."""
    fromaddr = "docs-author@example.test"
    toaddrs = ["docs-first@example.test", "docs-second@example.test"]
    msg = f"From: {fromaddr}\r\nTo: {', '.join(toaddrs)}\r\n\r\n"
    for line in [f"Typed at the prompt ({token}).", "A second line.", ""]:
        if not line:
            break
        msg = msg + line + "\n"
    print("Message length is", len(msg))

    server = smtplib.SMTP(postfix.host, postfix.port)
    server.set_debuglevel(level)
    refused = server.sendmail(fromaddr, toaddrs, msg)
    server.quit()

    out, err = capfd.readouterr()
    assert refused == {}
    assert out == f"Message length is {len(msg)}\n"
    lines = transcript(err)
    assert_ehlo_shape(lines)
    assert_sendmail_shape(lines, fromaddr, toaddrs)
    assert_quit_shape(lines)
    assert not any(line.startswith("connect:") for line in lines)  # debug was set after connect

    delivered = postfix_delivered(token, 2)
    assert len(delivered) == 2
    assert {m.split(b"Delivered-To: ", 1)[1].split(b"\n", 1)[0] for m in delivered} == {
        a.encode() for a in toaddrs
    }
    for message in delivered:
        # The bare LFs of the str message were turned into CRLF, which Maildir stores as LF.
        assert f"\n\nTyped at the prompt ({token}).\nA second line.\n".encode() in message
        assert b"\r" not in message


def test_pymotw_sendmail(
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    token: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """PyMOTW-3 smtplib_sendmail.py: a MIMEText message, debug on, quit in ``finally``."""
    msg = MIMEText(f"This is the body of the message. {token}")
    msg["To"] = email.utils.formataddr(("Recipient", "recipient@example.test"))
    msg["From"] = email.utils.formataddr(("Author", "author@example.test"))
    msg["Subject"] = "Simple test message"

    server = smtplib.SMTP(postfix.host, postfix.port)
    server.set_debuglevel(True)  # show communication with the server
    try:
        refused = server.sendmail(
            "author@example.test", ["recipient@example.test"], msg.as_string()
        )
    finally:
        server.quit()

    assert refused == {}
    assert server.sock is None
    lines = transcript(capfd.readouterr().err)
    assert_ehlo_shape(lines)
    assert_sendmail_shape(lines, "author@example.test", ["recipient@example.test"])
    assert_quit_shape(lines)

    (message,) = postfix_delivered(token)
    assert b"Subject: Simple test message\n" in message
    assert b"From: Author <author@example.test>\n" in message
    assert b"To: Recipient <recipient@example.test>\n" in message
    assert b'Content-Type: text/plain; charset="us-ascii"\n' in message
    assert b"Return-Path: <author@example.test>\n" in message


def test_pymotw_authenticated(
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tls_ca: LocalCA,
    token: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """PyMOTW-3 smtplib_authenticated.py on the submission port (STARTTLS required for AUTH)."""
    to_email = "pymotw-reader@example.test"
    username, password = "testuser", "testpass"
    msg = MIMEText(f"Test message from PyMOTW. {token}")
    msg.set_unixfrom("author")
    msg["To"] = email.utils.formataddr(("Recipient", to_email))
    msg["From"] = email.utils.formataddr(("Author", "author@example.test"))
    msg["Subject"] = "Test from PyMOTW"

    server = smtplib.SMTP(postfix.host, postfix.submission_port)
    try:
        server.set_debuglevel(True)
        server.ehlo()
        encrypted = False
        if server.has_extn("STARTTLS"):
            server.starttls(context=tls_ca.client_context())
            server.ehlo()  # re-identify ourselves over the TLS connection
            encrypted = True
        server.login(username, password)
        refused = server.sendmail("author@example.test", [to_email], msg.as_string())
    finally:
        server.quit()

    assert encrypted
    assert refused == {}
    lines = transcript(capfd.readouterr().err)
    assert_ehlo_shape(lines)
    assert "send: 'STARTTLS\\r\\n'" in lines
    assert "reply: retcode (220); Msg: b'2.0.0 Ready to start TLS'" in lines
    # The second EHLO, over TLS, no longer offers STARTTLS.
    assert lines.count("reply: b'250-STARTTLS\\r\\n'") == 1
    assert "reply: retcode (235); Msg: b'2.7.0 Authentication successful'" in lines
    assert_sendmail_shape(lines, "author@example.test", [to_email])
    assert_quit_shape(lines)

    (message,) = postfix_delivered(token)
    assert b"Subject: Test from PyMOTW\n" in message
    assert b"with ESMTPSA id" in message  # Postfix: received over TLS from an authenticated client
    assert not message.startswith(b"From author")  # the unixfrom line is not part of as_string()


def test_pymotw_verify(postfix: PostfixServer, capfd: pytest.CaptureFixture[str]) -> None:
    """PyMOTW-3 smtplib_verify.py: VRFY two addresses, print the results."""
    server = smtplib.SMTP(postfix.host, postfix.port)
    server.set_debuglevel(True)  # show communication with the server
    try:
        dhellmann_result = server.verify("dhellmann")
        notthere_result = server.verify("notthere")
    finally:
        server.quit()

    print("dhellmann:", dhellmann_result)
    print("notthere :", notthere_result)

    out, err = capfd.readouterr()
    assert out.splitlines() == [
        "dhellmann: (252, b'2.0.0 dhellmann')",
        "notthere : (252, b'2.0.0 notthere')",
    ]
    assert transcript(err) == [
        "send: 'vrfy dhellmann\\r\\n'",
        "reply: b'252 2.0.0 dhellmann\\r\\n'",
        "reply: retcode (252); Msg: b'2.0.0 dhellmann'",
        "send: 'vrfy notthere\\r\\n'",
        "reply: b'252 2.0.0 notthere\\r\\n'",
        "reply: retcode (252); Msg: b'2.0.0 notthere'",
        "send: 'quit\\r\\n'",
        "reply: b'221 2.0.0 Bye\\r\\n'",
        "reply: retcode (221); Msg: b'2.0.0 Bye'",
    ]


def test_debuglevel_two_adds_timestamps(
    postfix: PostfixServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """Level 2 prefixes every transcript line with the time, as ``smtplib`` does."""
    server = smtplib.SMTP(postfix.host, postfix.port, local_hostname="client.example.test")
    server.set_debuglevel(2)
    assert server.noop() == (250, b"2.0.0 Ok")
    server.quit()
    lines = transcript(capfd.readouterr().err)
    stamp = r"\d\d:\d\d:\d\d\.\d+ "
    assert len(lines) == 6
    assert re.fullmatch(stamp + r"send: 'noop\\r\\n'", lines[0]), lines
    assert re.fullmatch(stamp + r"reply: retcode \(250\); Msg: b'2\.0\.0 Ok'", lines[2]), lines
    assert re.fullmatch(stamp + r"send: 'quit\\r\\n'", lines[3]), lines


def stdlib_and_adapter_transcripts(
    server: AiosmtpdServer, capfd: pytest.CaptureFixture[str]
) -> tuple[list[str], list[str]]:
    """The same session, debug on before connecting, by smtplib and by the adapter."""
    transcripts = []
    for module in (stdlib_smtplib, smtplib):
        client = module.SMTP(local_hostname="client.example.test")
        client.set_debuglevel(1)
        client.connect(server.host, server.port)
        client.ehlo()
        client.noop()
        client.verify("Somebody <somebody@example.test>")
        client.help()
        client.mail("a@example.test")
        client.rcpt("b@example.test")
        client.rset()
        recipients = ["b@example.test", "reject-c@example.test"]
        client.sendmail("a@example.test", recipients, "S: x\n\n.\n")
        client.quit()
        transcripts.append(transcript(capfd.readouterr().err))
    return transcripts[0], transcripts[1]


def test_transcript_identical_to_stdlib(
    aiosmtpd_server: AiosmtpdServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without PIPELINING (and without AUTH, which the adapter masks), line for line the same."""
    aiosmtpd_server.handler.advertise_pipelining = False
    theirs, ours = stdlib_and_adapter_transcripts(aiosmtpd_server, capfd)
    assert ours[0] == f"connect: to ('{aiosmtpd_server.host}', {aiosmtpd_server.port}) None"
    assert ours[-1] == "reply: retcode (221); Msg: b'Bye'"
    assert ours == theirs
    assert [m.content for m in aiosmtpd_server.messages()] == [b"S: x\r\n\r\n.\r\n"] * 2
