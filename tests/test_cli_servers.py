"""``smtp-proto send`` and ``probe`` against real servers: Postfix (STARTTLS with the test CA,
Dovecot SASL) and Dovecot LMTP over its Unix socket; delivered mail read from the Maildirs."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from smtp_proto.transports.cli import main

from tests.servers.dovecot import DovecotLMTPServer
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def submission(postfix: PostfixServer, *argv: str) -> list[str]:
    """``send`` to Postfix's submission port: STARTTLS (the default) and AUTH required."""
    return [
        *("send", "--server", f"{postfix.host}:{postfix.submission_port}"),
        *("--cafile", str(postfix.cafile), "--user", "testuser"),
        *argv,
    ]


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The right password in ``$SMTP_PASSWORD``, where ``send`` looks for it."""
    monkeypatch.setenv("SMTP_PASSWORD", "testpass")


# ---------------------------------------------------------------- probe


def test_probe_shows_postfix_capabilities_tls_and_certificate(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer
) -> None:
    code, out, _ = run(
        capsys,
        *("probe", "--server", f"{postfix.host}:{postfix.port}", "--cafile", str(postfix.cafile)),
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["greeting"] == {
        "code": 220,
        "text": "postfix.test ESMTP Postfix (smtp-proto test instance)",
    }
    before = report["extensions"]
    assert {"PIPELINING", "STARTTLS", "CHUNKING", "DSN", "SMTPUTF8", "8BITMIME"} <= set(before)
    assert {"ENHANCEDSTATUSCODES", "SIZE 10240000", "AUTH PLAIN LOGIN CRAM-MD5"} <= set(before)
    after = report["extensions_after_tls"]
    assert "STARTTLS" not in after and "AUTH PLAIN LOGIN CRAM-MD5" in after
    tls = report["tls"]
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["verified"] is True
    assert tls["verification"].startswith(f"yes: signed by a CA in {postfix.cafile}")
    certificate = tls["certificate"]
    assert certificate["subject"].startswith("O=trustme")
    assert certificate["issuer"].startswith("O=smtp-proto tests")
    assert {"DNS:localhost", "IP Address:127.0.0.1"} <= set(certificate["sans"])
    assert certificate["not_after"] > certificate["not_before"]
    assert report["noop_ms"]["min"] > 0


def test_probe_postfix_text_output_over_implicit_tls(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer
) -> None:
    code, out, _ = run(
        capsys,
        *("probe", "--server", f"{postfix.host}:{postfix.smtps_port}", "--tls", "implicit"),
        *("--cafile", str(postfix.cafile)),
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "greeting    220 postfix.test ESMTP Postfix (smtp-proto test instance)"
    assert any(line.startswith("TLS         TLSv1.") for line in lines)
    assert any(line.startswith("  subject   O=trustme") for line in lines)
    assert "STARTTLS" not in out  # implicit TLS: nothing to upgrade
    assert any(line.startswith("  verified  yes") for line in lines)


def test_probe_reports_an_untrusted_certificate_and_exits_3(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer
) -> None:
    code, out, _ = run(capsys, "probe", "--server", f"{postfix.host}:{postfix.port}")
    assert code == 3
    assert "  verified  NO: certificate not verified: unable to get local issuer certificate" in out
    assert "  subject   O=trustme" in out  # still shown, to tell which certificate it was
    assert "after TLS   PIPELINING" in out


# ---------------------------------------------------------------- send


@pytest.mark.parametrize("transport", ["blocking", "asyncio", "trio"])
@pytest.mark.usefixtures("password")
def test_send_with_starttls_auth_attachment_cc_and_bcc(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tmp_path: Path,
    transport: str,
) -> None:
    token = uuid.uuid4().hex
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 " + token.encode() + b"\x00\xff")
    code, out, err = run(
        capsys,
        *submission(postfix, "--transport", transport, "--from", "me@example.test"),
        *("--to", "to@example.test", "--cc", "cc@example.test", "--bcc", "bcc@example.test"),
        *("--subject", f"report {token}", "--body", "Attached.\n", "--attach", str(report)),
    )
    assert code == 0, err
    *fates, queued = out.splitlines()
    assert fates == [
        "accepted  to@example.test",
        "accepted  cc@example.test",
        "accepted  bcc@example.test",
        "3 of 3 recipients accepted",
    ]
    queue_id = queued.removeprefix("queue id  ")
    copies = [parse(raw) for raw in postfix_delivered(token, 3)]
    assert sorted(m["Delivered-To"] for m in copies) == [
        "bcc@example.test", "cc@example.test", "to@example.test",
    ]  # fmt: skip
    for message in copies:
        received = str(message.get_all("Received")[0])
        assert "with ESMTPSA" in received  # TLS and AUTH were used
        assert f" id {queue_id}" in received  # the queue id the command printed
        assert message["To"] == "to@example.test" and message["Cc"] == "cc@example.test"
        assert message["Bcc"] is None
        assert "bcc@example.test" not in str(message["To"]) + str(message["Cc"])
        (attachment,) = message.iter_attachments()
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == "report.pdf"
        assert attachment.get_content() == report.read_bytes()


@pytest.mark.usefixtures("password")
def test_send_an_eml_file_to_postfix(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tmp_path: Path,
    token: str,
) -> None:
    eml = tmp_path / "ready.eml"
    eml.write_bytes(
        b"From: ann@example.test\r\nTo: eml@example.test\r\nBcc: secret@example.test\r\n"
        b"Subject: eml " + token.encode() + b"\r\nX-Kept: yes\r\n\r\nReady-made.\r\n"
    )
    code, out, err = run(capsys, *submission(postfix, "--eml", str(eml)))
    assert code == 0, err
    assert "accepted  secret@example.test" in out
    copies = [parse(raw) for raw in postfix_delivered(token, 2)]
    assert sorted(m["Delivered-To"] for m in copies) == ["eml@example.test", "secret@example.test"]
    for message in copies:
        assert message["X-Kept"] == "yes" and message["Bcc"] is None
        assert message.get_content() == "Ready-made.\n"


@pytest.mark.usefixtures("password")
def test_a_recipient_postfix_refuses_exits_1(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    token: str,
) -> None:
    code, out, _ = run(
        capsys,
        *submission(postfix, "--from", "me@example.test", "--subject", token),
        *("--to", "fine@example.test", "--to", "reject-me@example.test"),
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "accepted  fine@example.test"
    assert lines[1].startswith(
        "refused   reject-me@example.test  550 5.1.1 <reject-me@example.test>"
    )
    assert lines[2] == "1 of 2 recipients accepted"
    (delivered,) = postfix_delivered(token)
    assert parse(delivered)["Delivered-To"] == "fine@example.test"


@pytest.mark.usefixtures("password")
def test_send_over_implicit_tls(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, postfix_delivered: Delivered
) -> None:
    token = uuid.uuid4().hex
    code, out, err = run(
        capsys,
        *("send", "--server", f"{postfix.host}:{postfix.smtps_port}", "--tls", "implicit"),
        *("--cafile", str(postfix.cafile), "--user", "testuser", "--from", "me@example.test"),
        *("--to", "tls@example.test", "--subject", f"implicit {token}"),
    )
    assert code == 0, err
    assert re.fullmatch(r"accepted  tls@example.test\n1 of 1 recipients accepted\n"
                        r"queue id  [0-9A-F]+\n", out)  # fmt: skip
    (delivered,) = postfix_delivered(token)
    assert "with ESMTPSA" in str(parse(delivered).get_all("Received")[0])


@pytest.mark.usefixtures("password")
def test_an_untrusted_certificate_exits_3(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer
) -> None:
    code, out, err = run(
        capsys,
        *("send", "--server", f"{postfix.host}:{postfix.submission_port}", "--user", "testuser"),
        *("--from", "me@example.test", "--to", "to@example.test"),
    )
    assert code == 3
    assert out == ""
    problem, certificate, issuer, host, advice = err.splitlines()
    assert problem == (
        "smtp-proto: TLS failed: certificate not verified: unable to get local issuer certificate"
    )
    # The names the certificate was issued for, fetched again without checking it.
    assert certificate.startswith("  the certificate: O=trustme")
    assert certificate.endswith("(DNS:localhost, IP Address:127.0.0.1, IP Address:::1)")
    assert issuer.startswith("  issued by:       O=smtp-proto tests")  # the test CA
    assert host == f"  you connected to {postfix.host}"
    assert advice == (
        "  to trust its CA: --cafile FILE (PEM); to skip the check, for testing only: --insecure"
    )


def test_a_wrong_password_exits_4(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, postfix: PostfixServer
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "not-the-password")
    code, out, err = run(
        capsys, *submission(postfix, "--from", "me@example.test", "--to", "to@example.test")
    )
    assert code == 4
    assert out == ""
    assert "authentication failed: 535 5.7.8" in err
    assert "not-the-password" not in err


def test_the_real_command_sends_to_postfix(
    postfix: PostfixServer, postfix_delivered: Delivered, token: str
) -> None:
    """The installed module run as a program, the password from its environment."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "smtp_proto", *submission(postfix)),
            *("--from", "me@example.test", "--to", "cmd@example.test"),
            *("--subject", f"cmd {token}", "-v"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SMTP_PASSWORD": "testpass"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("accepted  cmd@example.test\n1 of 1 recipients accepted\n")
    # login() takes CRAM-MD5, the first it knows that Postfix offers; its answer is hidden
    assert "~> AUTH CRAM-MD5" in result.stderr.splitlines()
    assert "~> ****" in result.stderr.splitlines()
    assert "testpass" not in result.stderr and "dGVzdHBhc3M" not in result.stderr
    (delivered,) = postfix_delivered(token)
    assert parse(delivered)["Subject"] == f"cmd {token}"


# ---------------------------------------------------------------- LMTP to Dovecot


@pytest.mark.parametrize("transport", ["blocking", "asyncio", "trio"])
def test_lmtp_to_dovecot_over_its_unix_socket(
    capsys: pytest.CaptureFixture[str],
    dovecot_lmtp: DovecotLMTPServer,
    token: str,
    transport: str,
) -> None:
    code, out, _ = run(
        capsys,
        *("send", "--server", str(dovecot_lmtp.unix_path), "--transport", transport),
        *("--from", "me@example.test", "--subject", f"lmtp {token}"),
        *("--to", "alice@example.test", "--to", "full@example.test", "--to", "nobody@example.test"),
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("delivered alice@example.test  250 2.0.0 <alice@example.test>")
    assert lines[1].startswith("failed    full@example.test  552 5.2.2")
    assert lines[2].startswith("refused   nobody@example.test  550 5.1.1")
    assert lines[3] == "1 of 3 recipients accepted"
    assert sum(token.encode() in m for m in dovecot_lmtp.messages_for("alice")) == 1
