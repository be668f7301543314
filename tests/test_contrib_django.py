"""``smtp_proto.contrib.django.EmailBackend``, as Django's mail tests use a backend: settings
overridden per test, connections from ``get_connection``, messages sent with ``send_messages``,
``send_mail`` and ``send_mass_mail``; against the capture server (every message intact, all
of a call pipelined on one connection) and Postfix (STARTTLS or implicit TLS, with AUTH)."""

from __future__ import annotations

import smtplib as stdlib_smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.mail import EmailMessage, get_connection, send_mail, send_mass_mail
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend
from django.test import override_settings
from smtp_proto.contrib.django import EmailBackend
from smtp_proto.transports.testing import CaptureServer

import smtp_proto
from smtp_proto import contrib, transports
from smtp_proto.errors import SMTPRecipientsRefused
from smtp_proto.send import SMTPSecurityError
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND="smtp_proto.contrib.django.EmailBackend",
        DEFAULT_FROM_EMAIL="Site <site@example.test>",
        EMAIL_TIMEOUT=10,
    )

GONE = "gone@example.test"


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    """A capture server that refuses ``GONE``, and the settings that send to it."""
    with (
        CaptureServer(refuse={GONE: (550, "5.1.1 No such user")}) as capture,
        override_settings(EMAIL_HOST=capture.host, EMAIL_PORT=capture.port),
    ):
        yield capture


def message(number: int, token: str = "", **fields: Any) -> EmailMessage:
    """Message ``number``: a named sender, To, Cc and Bcc, a non-ASCII subject, a line that
    begins with a dot, and fixed Date and Message-ID (so that its bytes are known)."""
    fields.setdefault("to", [f"To {number} <to{number}@example.test>"])
    fields.setdefault("cc", [f"cc{number}@example.test"])
    fields.setdefault("bcc", [f"bcc{number}@example.test"])
    return EmailMessage(
        subject=f"{token} Grüße {number}".lstrip(),  # Django 6 drops a leading space
        body=f"message {number}\n.a line with a leading dot\n",
        from_email=f"Sender {number} <sender{number}@example.test>",
        headers={
            "Date": "Mon, 07 Dec 2026 12:00:00 +0000",
            "Message-ID": f"<{number}.{token}@example.test>",
        },
        **fields,
    )


def wire(sent: EmailMessage) -> bytes:
    """The message as Django's own SMTP backend sends it (over smtplib, to a capture server):
    how Django renders a message changed in 6.0, and the backend must follow."""
    with CaptureServer() as capture:
        django_smtp = DjangoSMTPBackend(host=capture.host, port=capture.port, timeout=10)
        assert django_smtp.send_messages([sent]) == 1
    (arrived,) = capture.messages
    return arrived.data


def sessions(server: CaptureServer) -> int:
    return sum(command.startswith("ehlo") for command in server.commands)


def test_send_messages_pipelines_every_message_intact(server: CaptureServer) -> None:
    messages = [message(n) for n in range(20)]
    assert get_connection().send_messages(messages) == 20
    captured = {arrived.mail_from: arrived for arrived in server.messages}
    assert len(captured) == 20
    for n, sent in enumerate(messages):
        arrived = captured[f"sender{n}@example.test"]
        assert arrived.rcpt_tos == [
            f"to{n}@example.test",
            f"cc{n}@example.test",
            f"bcc{n}@example.test",
        ]
        assert arrived.data == wire(sent)
        assert arrived.message["Subject"] == f"Grüße {n}"
        assert "Bcc" not in arrived.message
        assert arrived.chunked
    assert "rset" in server.commands  # a transaction went out behind another's pending replies
    assert sessions(server) == 1 and server.commands[-1] == "quit"


def test_send_mass_mail_sends_all_on_one_connection(server: CaptureServer) -> None:
    datatuple = [
        (f"subject {n}", f"body {n}\n", f"from{n}@example.test", [f"r{n}@example.test"])
        for n in range(10)
    ]
    assert send_mass_mail(datatuple) == 10
    by_sender = {arrived.mail_from: arrived for arrived in server.messages}
    for subject, body, sender, recipients in datatuple:
        arrived = by_sender[sender]
        assert arrived.rcpt_tos == recipients
        assert arrived.message["Subject"] == subject
        assert arrived.message.get_content() == body
    assert "rset" in server.commands
    assert sessions(server) == 1


def test_send_mail_uses_the_backend(server: CaptureServer) -> None:
    assert send_mail("hello", "Hello!\n", None, ["you@example.test"]) == 1
    (arrived,) = server.messages
    assert arrived.mail_from == "site@example.test"  # DEFAULT_FROM_EMAIL, without its name
    assert arrived.message["From"] == "Site <site@example.test>"


def test_a_refused_message_raises_after_the_others_are_sent(server: CaptureServer) -> None:
    messages = [message(0), message(1, to=[GONE], cc=[], bcc=[]), message(2, to=[GONE])]
    with pytest.raises(SMTPRecipientsRefused) as info:
        get_connection().send_messages(messages)
    assert isinstance(info.value, stdlib_smtplib.SMTPRecipientsRefused)  # what Django's raises
    assert info.value.recipients == {GONE: (550, b"5.1.1 No such user")}
    by_sender = {arrived.mail_from: arrived for arrived in server.messages}
    assert sorted(by_sender) == ["sender0@example.test", "sender2@example.test"]
    assert by_sender["sender2@example.test"].rcpt_tos == ["cc2@example.test", "bcc2@example.test"]


def test_a_refused_message_fails_silently(server: CaptureServer) -> None:
    messages = [message(0), message(1, to=[GONE], cc=[], bcc=[]), message(2)]
    assert get_connection(fail_silently=True).send_messages(messages) == 2
    assert len(server.messages) == 2
    assert send_mail("hi", "hi\n", "me@example.test", [GONE], fail_silently=True) == 0
    with pytest.raises(SMTPRecipientsRefused):
        send_mail("hi", "hi\n", "me@example.test", [GONE])


def test_messages_without_recipients_are_skipped(server: CaptureServer) -> None:
    empty = EmailMessage("nobody", "nobody\n", "me@example.test", [])
    assert get_connection().send_messages([empty, message(0)]) == 1
    assert get_connection().send_messages([]) == 0
    assert [arrived.mail_from for arrived in server.messages] == ["sender0@example.test"]


def test_the_connection_is_reused_inside_with(server: CaptureServer) -> None:
    with get_connection() as connection:
        assert isinstance(connection, EmailBackend)
        assert connection.open() is False  # already open
        assert connection.send_messages([message(0)]) == 1
        assert connection.send_messages([message(1), message(2)]) == 2
        assert "quit" not in server.commands  # still connected between the calls
    assert connection.mailer is None
    assert len(server.messages) == 3
    assert sessions(server) == 1
    assert server.commands.count("quit") == 1


def test_a_server_that_refuses_the_connection() -> None:
    with (
        CaptureServer(fail={"connect": (554, "5.3.2 No service")}) as server,
        override_settings(EMAIL_HOST=server.host, EMAIL_PORT=server.port),
    ):
        assert get_connection(fail_silently=True).send_messages([message(0), message(1)]) == 0
        with pytest.raises(stdlib_smtplib.SMTPConnectError) as info:
            get_connection().send_messages([message(0)])
        assert info.value.smtp_code == 554
        assert server.messages == []


def test_a_client_certificate_that_cannot_be_read(server: CaptureServer, tmp_path: Any) -> None:
    missing = str(tmp_path / "missing.pem")
    quiet = get_connection(use_tls=True, ssl_certfile=missing, fail_silently=True)
    assert quiet.open() is False
    assert quiet.send_messages([message(0)]) == 0
    with pytest.raises(FileNotFoundError):
        get_connection(use_tls=True, ssl_certfile=missing).open()
    assert server.commands == []  # never connected


def test_tls_and_ssl_together_are_refused() -> None:
    with pytest.raises(ValueError, match="EMAIL_USE_TLS"):
        get_connection(use_tls=True, use_ssl=True)
    with override_settings(EMAIL_USE_TLS=True, EMAIL_USE_SSL=True), pytest.raises(ValueError):
        get_connection()


def test_credentials_are_never_sent_in_the_clear() -> None:
    """Django's SMTP backend would log in over the unencrypted connection; this one fails
    each message instead, and says why."""
    with (
        CaptureServer(credentials={"user": "secret"}) as server,
        override_settings(
            EMAIL_HOST=server.host,
            EMAIL_PORT=server.port,
            EMAIL_HOST_USER="user",
            EMAIL_HOST_PASSWORD="secret",
        ),
    ):
        with pytest.raises(SMTPSecurityError, match="without TLS"):
            get_connection().send_messages([message(0)])
        assert get_connection(fail_silently=True).send_messages([message(0)]) == 0
        assert server.messages == []
        assert not any(command.startswith("auth") for command in server.commands)


@pytest.fixture
def trust_test_ca(tls_ca: LocalCA, monkeypatch: pytest.MonkeyPatch) -> LocalCA:
    """The test CA trusted by the default TLS context (as ``SSL_CERT_FILE`` does for any
    program), since Django's settings name no CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_ca.cafile))
    return tls_ca


def test_starttls_and_auth_to_the_capture_server(trust_test_ca: LocalCA) -> None:
    with (
        CaptureServer(
            tls_context=trust_test_ca.server_context(), credentials={"user": "secret"}
        ) as server,
        override_settings(
            EMAIL_HOST=server.host,
            EMAIL_PORT=server.port,
            EMAIL_USE_TLS=True,
            EMAIL_HOST_USER="user",
            EMAIL_HOST_PASSWORD="secret",
        ),
    ):
        assert get_connection().send_messages([message(n) for n in range(5)]) == 5
        captured = server.messages
    assert len(captured) == 5
    assert all(arrived.tls and arrived.auth_user == "user" for arrived in captured)


# ---------------------------------------------------------------- Postfix


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_postfix_with_tls_and_auth(
    postfix: PostfixServer,
    postfix_delivered: Callable[..., list[bytes]],
    trust_test_ca: LocalCA,
    token: str,
    tls: str,
) -> None:
    """The submission port requires STARTTLS before AUTH and AUTH before RCPT; the SMTPS
    port is implicit TLS.  Every message arrives intact, authenticated over TLS."""
    messages = [message(n, token) for n in range(6)]
    connection = get_connection(
        host=postfix.host,
        port=postfix.submission_port if tls == "starttls" else postfix.smtps_port,
        username="testuser",
        password="testpass",
        use_tls=tls == "starttls",
        use_ssl=tls == "implicit",
    )
    assert connection.send_messages(messages) == 6
    delivered = postfix_delivered(token, 18)  # one delivery per recipient: To, Cc and Bcc
    for sent in messages:
        needle = sent.extra_headers["Message-ID"].encode()
        copies = [m for m in delivered if needle in m]
        assert len(copies) == 3
        for arrived in copies:
            assert b"with ESMTPSA id" in arrived  # authenticated, over TLS
            unix = arrived.replace(b"\r\n", b"\n")
            assert unix.endswith(wire(sent).replace(b"\r\n", b"\n")), unix[-300:]


# ---------------------------------------------------------------- types


def test_the_backend_passes_mypy_strict(tmp_path: Path) -> None:
    """Checked with django-stubs, in a folder of links laid out as the installed package (the
    project's own mypy run reads ``contrib/`` as a top-level package, where the adapters it
    imports cannot be found)."""
    pytest.importorskip("mypy", reason="mypy is not installed (the dev extra has it)")
    package = tmp_path / "smtp_proto"
    package.mkdir()
    for entry in Path(smtp_proto.__file__).parent.iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for subpackage in (transports, contrib):
        (package / subpackage.__name__.rpartition(".")[2]).symlink_to(
            Path(subpackage.__file__ or "").parent
        )
    command = [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.11"]
    result = subprocess.run(
        [*command, "--cache-dir", str(tmp_path / "cache"), "-p", "smtp_proto.contrib"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 2 source files" in result.stdout
