"""Four more smtplib consumers from PyPI send through their own APIs: Flask-Mail, yagmail,
red-mail and zope.sendmail, and so does the standard library's ``SMTPHandler``, each with
STARTTLS (Flask-Mail and yagmail with implicit TLS too), AUTH and one refused recipient, to
a capture server on 127.0.0.1.

Their own test suites fake smtplib (or, Flask-Mail's, never send), so they would prove
nothing here: this is our own test of what each one does with smtplib for real. run.py runs
it with pytest in the senders venv, once per mode; CONSUMERS_MODE tells which smtplib is
expected. The libraries call ``starttls()`` and ``SMTP_SSL`` without a context, which the
adapter verifies with the default trust store, so the test CA is put there (``SSL_CERT_FILE``).
"""

from __future__ import annotations

import email
import email.policy
import importlib
import logging
import logging.handlers
import os
import smtplib
import ssl
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from smtp_proto.transports.testing import CaptureServer

EXPECTED_SMTPLIB = {"stdlib": "smtplib", "replaced": "smtp_proto.transports.sync"}
USER, PASSWORD = "me@example.test", "secret-1"  # ASCII: smtplib fails on any other
SENDER = "me@example.test"
TO, REFUSED = "you@example.test", "nobody@example.test"
SUBJECT, BODY = "Grüße from a consumer", "First line.\n.A line that starts with a dot.\n"


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """The capture server's context; the CA that signed it becomes the default trust store."""
    ca = trustme.CA()
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    os.environ["SSL_CERT_FILE"] = str(cafile)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def implicit() -> bool:
    """Whether the server speaks implicit TLS (for ``SMTP_SSL``) instead of STARTTLS: no,
    unless a test parametrizes ``implicit`` (``EITHER_TLS``), which overrides this."""
    return False


#: Run a test once with STARTTLS and once with implicit TLS.
EITHER_TLS = pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])


@pytest.fixture
def server(tls_context: ssl.SSLContext, implicit: bool) -> Iterator[CaptureServer]:
    refuse = {REFUSED: (550, "5.1.1 No such user")}
    credentials = {USER: PASSWORD}
    with CaptureServer(
        tls_context=tls_context, implicit_tls=implicit, credentials=credentials, refuse=refuse
    ) as capture:
        yield capture


def delivered(server: CaptureServer) -> EmailMessage:
    """The one message the server accepted: over TLS, logged in, to the accepted recipient."""
    (captured,) = server.messages
    assert (captured.tls, captured.auth_user) == (True, USER)
    assert (captured.mail_from, captured.rcpt_tos) == (SENDER, [TO])
    message = email.message_from_bytes(captured.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == SUBJECT
    body = message.get_body(("plain",))
    assert body is not None
    content = body.get_content()  # yagmail's plain part has <br> for line ends
    assert all(line in content for line in BODY.splitlines()), content
    return message


def addresses(header: Any) -> set[str]:
    return {address.addr_spec for address in header.addresses}


def test_smtplib_is_the_expected_module() -> None:
    assert smtplib.__name__ == EXPECTED_SMTPLIB[os.environ.get("CONSUMERS_MODE", "stdlib")]


@EITHER_TLS
def test_flask_mail(server: CaptureServer, implicit: bool) -> None:
    flask = importlib.import_module("flask")
    flask_mail = importlib.import_module("flask_mail")
    app = flask.Flask(__name__)
    app.config.update(
        MAIL_SERVER=server.host,
        MAIL_PORT=server.port,
        MAIL_USE_TLS=not implicit,
        MAIL_USE_SSL=implicit,
        MAIL_USERNAME=USER,
        MAIL_PASSWORD=PASSWORD,
    )
    mail = flask_mail.Mail(app)
    with app.app_context():
        message = flask_mail.Message(SUBJECT, sender=SENDER, recipients=[TO, REFUSED], body=BODY)
        mail.send(message)  # a partly refused message counts as sent
    assert addresses(delivered(server)["To"]) == {TO, REFUSED}


@EITHER_TLS
def test_yagmail(server: CaptureServer, implicit: bool) -> None:
    yagmail = importlib.import_module("yagmail")
    yag = yagmail.SMTP(
        USER,
        PASSWORD,
        host=server.host,
        port=server.port,
        smtp_starttls=not implicit,
        smtp_ssl=implicit,
    )
    try:
        assert yag.send(to=[TO, REFUSED], subject=SUBJECT, contents=BODY) == {
            REFUSED: (550, b"5.1.1 No such user")
        }
    finally:
        yag.close()
    assert delivered(server)["From"].addresses[0].addr_spec == USER


def test_red_mail(server: CaptureServer) -> None:
    redmail = importlib.import_module("redmail")
    sender = redmail.EmailSender(
        host=server.host, port=server.port, username=USER, password=PASSWORD, use_starttls=True
    )
    sender.send(subject=SUBJECT, sender=SENDER, receivers=[TO, REFUSED], text=BODY)
    assert addresses(delivered(server)["To"]) == {TO, REFUSED}


def test_logging_smtp_handler(server: CaptureServer) -> None:
    """The standard library's own smtplib consumer: ``secure=()`` is a bare ``starttls()``."""
    handler = logging.handlers.SMTPHandler(
        (server.host, server.port), SENDER, [TO, REFUSED], SUBJECT, (USER, PASSWORD), (), 10
    )
    failures: list[BaseException | None] = []
    handler.handleError = lambda record: failures.append(sys.exc_info()[1])  # type: ignore[method-assign]
    logger = logging.getLogger("smoke_senders")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error("%s", BODY)
    finally:
        logger.removeHandler(handler)
    assert failures == []
    assert addresses(delivered(server)["To"]) == {TO, REFUSED}


@pytest.mark.parametrize("refused", [False, True], ids=["delivered", "all-refused"])
def test_zope_sendmail(server: CaptureServer, refused: bool) -> None:
    mailer_module = importlib.import_module("zope.sendmail.mailer")
    mailer = mailer_module.SMTPMailer(
        server.host, server.port, username=USER, password=PASSWORD, force_tls=True
    )
    raw = f"From: {SENDER}\r\nTo: {TO}\r\nSubject: {SUBJECT}\r\n\r\n{BODY}".encode()
    if refused:  # every recipient refused: smtplib's exception, nothing delivered
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            mailer.send(SENDER, [REFUSED], raw)
        assert info.value.recipients == {REFUSED: (550, b"5.1.1 No such user")}
        assert server.messages == []
    else:
        mailer.send(SENDER, [TO, REFUSED], raw)
        delivered(server)
