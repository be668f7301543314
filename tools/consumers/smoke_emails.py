"""python-emails (the PyPI release) sends through a local aiosmtpd server, and to a real
Postfix with STARTTLS and AUTH when run.py started one.

run.py runs this file with pytest in the emails venv, once per mode; CONSUMERS_MODE tells
which smtplib is expected, CONSUMERS_POSTFIX_* where its Postfix is (without them the Postfix
test has no parameter and is skipped). It is our own test of the consumer, not code taken from
it.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import importlib.util
import os
import smtplib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

EXPECTED_SMTPLIB = {"stdlib": "smtplib", "replaced": "smtp_proto.transports.sync"}
REFUSED = "nobody@example.org"
CHECKOUT = Path(__file__).resolve().parents[2]
POSTFIX = {
    key: os.environ.get(f"CONSUMERS_POSTFIX_{key}", "")
    for key in ("HOST", "PORT", "SMTPS_PORT", "CAFILE", "MAILDIR", "LOG")
}


class Recorder:
    """Keeps each message it accepts; refuses one recipient."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[tuple[Recorder, dict[str, Any]]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    try:
        yield recorder, {"host": "127.0.0.1", "port": controller.port, "timeout": 10}
    finally:
        controller.stop()


@pytest.fixture
def emails() -> Any:
    """Imported by each test, so that an import error fails each test, not the collection."""
    return importlib.import_module("emails")


def test_smtplib_is_the_expected_module() -> None:
    assert smtplib.__name__ == EXPECTED_SMTPLIB[os.environ.get("CONSUMERS_MODE", "stdlib")]


def test_import_emails() -> None:
    importlib.import_module("emails.backend.smtp")  # the module that imports smtplib


def test_send_html(server: tuple[Recorder, dict[str, Any]], emails: Any) -> None:
    recorder, smtp = server
    message = emails.html(
        html="<p>Hello</p>", text="Hello", subject="smoke", mail_from=("Me", "me@example.com")
    )
    response = message.send(to="you@example.com", smtp=smtp)
    assert response.success, response.error
    assert response.status_code == 250
    [envelope] = recorder.envelopes
    assert envelope.mail_from == "me@example.com"
    assert envelope.rcpt_tos == ["you@example.com"]
    assert b"Subject: smoke" in envelope.content


def test_two_messages_on_one_connection(
    server: tuple[Recorder, dict[str, Any]], emails: Any
) -> None:
    backend_class = importlib.import_module("emails.backend.smtp").SMTPBackend
    recorder, smtp = server
    with backend_class(**smtp) as backend:
        for n in range(2):
            message = emails.html(html=f"<p>{n}</p>", subject=f"n={n}", mail_from="me@example.com")
            response = message.send(to="you@example.com", smtp=backend)
            assert response.success, response.error
    assert len(recorder.envelopes) == 2


def test_utf8_recipient(server: tuple[Recorder, dict[str, Any]], emails: Any) -> None:
    recorder, smtp = server
    message = emails.html(html="<p>é</p>", subject="utf8", mail_from="me@example.com")
    response = message.send(to="anaïs@example.com", smtp=smtp, smtp_mail_options=["smtputf8"])
    assert response.success, response.error
    assert recorder.envelopes[0].rcpt_tos == ["anaïs@example.com"]


def test_refused_recipient(server: tuple[Recorder, dict[str, Any]], emails: Any) -> None:
    recorder, smtp = server
    message = emails.html(html="<p>x</p>", subject="refused", mail_from="me@example.com")
    response = message.send(to=REFUSED, smtp=smtp)
    assert not response.success
    assert type(response.error).__name__ == "SMTPRecipientsRefused"
    assert response.error.recipients == {REFUSED: (550, b"5.1.1 no such user")}
    assert recorder.envelopes == []


def maildir_inbox(postfix: dict[str, str]) -> Any:
    """A MaildirInbox of tests/servers/util.py, loaded by its path: that file needs only the
    stdlib, but its package wants trustme, which is not installed here."""
    spec = importlib.util.spec_from_file_location("util", CHECKOUT / "tests/servers/util.py")
    assert spec is not None and spec.loader is not None
    util = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(util)
    inbox = util.MaildirInbox()
    inbox.maildir, inbox.log_path = Path(postfix["MAILDIR"]), Path(postfix["LOG"])
    return inbox


@pytest.mark.parametrize("postfix", [POSTFIX] if all(POSTFIX.values()) else [], ids=["postfix"])
@pytest.mark.parametrize("security", ["tls", "ssl"])
def test_send_to_postfix(
    postfix: dict[str, str], security: str, emails: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's "python-emails imports and sends to Postfix": with ``tls`` on the submission
    port, which wants STARTTLS before AUTH and AUTH before RCPT, and with ``ssl`` (its client
    class derives from both ``SMTP_SSL`` and its own ``SMTP`` subclass) on the SMTPS port;
    then the message is read from the Maildir."""
    # python-emails calls starttls() with no context: smtplib then checks no certificate, the
    # adapter checks it against the default trust store, where the test CA goes.
    monkeypatch.setenv("SSL_CERT_FILE", postfix["CAFILE"])
    marker = f"marker-{uuid.uuid4().hex}"
    recipient = "smoke@example.test"
    message = emails.html(
        html=f"<p>{marker}</p>",
        text=marker,
        subject=f"to Postfix {marker}",
        mail_from="me@example.com",
    )
    port = int(postfix["PORT" if security == "tls" else "SMTPS_PORT"])
    smtp = {"host": postfix["HOST"], "port": port, security: True, "timeout": 10}
    smtp |= {"user": "testuser", "password": "testpass"}  # tests/servers/util.py's USERS
    response = message.send(to=recipient, smtp=smtp)
    # A failed TLS handshake becomes an SMTPConnectNetworkError whose text is in strerror.
    assert response.success, f"{response.error!r}: {getattr(response.error, 'strerror', '')}"
    raw = maildir_inbox(postfix).wait_for_message(lambda m: marker.encode() in m)
    delivered = email.message_from_bytes(raw, policy=email.policy.default)
    assert delivered["Subject"] == f"to Postfix {marker}"
    assert delivered["Delivered-To"] == recipient
    assert delivered.get_body(("plain",)).get_content().strip() == marker
    assert "using TLS" in delivered["Received"]  # Postfix notes the TLS session there
