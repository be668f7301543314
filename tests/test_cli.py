"""``smtp-proto send`` and ``probe`` against the capture server (no outside server needed).

The command runs in-process (``main(argv)``, output read with capsys) except for the README's
own first command, run as the real ``python -m smtp_proto`` subprocess.
"""

from __future__ import annotations

import contextlib
import email.message
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smtp_proto.transports.cli import EXIT_CODES, EXIT_USAGE, main, parse_server, without_bcc
from smtp_proto.transports.testing import CaptureServer

from tests.offline import smtplib_spelling
from tests.servers.certs import LocalCA

TRANSPORTS = ["blocking", "asyncio", "trio"]


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as capture:
        yield capture


def to(server: CaptureServer, *argv: str) -> list[str]:
    """``send`` arguments for the capture server ``server``, in clear text."""
    return ["send", "--server", f"{server.host}:{server.port}", "--tls", "none", *argv]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_without_a_terminal(
    argv: list[str], stdin: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``python -m smtp_proto *argv`` in a session of its own, so with no controlling terminal
    (as under cron, whatever runs the tests), ``stdin`` piped in, no ``$SMTP_*`` variables."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    return subprocess.run(
        [sys.executable, "-m", "smtp_proto", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=environment,
        start_new_session=True,
        check=False,
    )


# ---------------------------------------------------------------- no server: the README command


def test_the_readme_command_shows_the_transcript_and_the_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smtp_proto", "send", "-v"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "No --server given: sending to a capture server on 127.0.0.1:" in result.stdout
    assert "accepted  recipient@example.com" in result.stdout
    assert "The capture server received, from <sender@example.com>" in result.stdout
    assert "Subject: Hello from smtp-proto" in result.stdout
    assert "This message was sent by smtp-proto." in result.stdout
    assert "queue id  1" in result.stdout
    # The transcript: one line per protocol line, in wire order, the message summarised.
    transcript = re.sub(r"\d+", "N", result.stderr).splitlines()
    assert transcript == [
        "== connecting to N.N.N.N:N (SMTP)",
        "<- N capture.local ESMTP smtp-proto capture server",
        "-> ehlo smtp-proto.local",
        "<- N-capture.local",
        "<- N-PIPELINING",
        "<- N-NBITMIME",
        "<- N-SMTPUTFN",
        "<- N-SIZE N",
        "<- N-DSN",
        "<- N-CHUNKING",
        "<- N ENHANCEDSTATUSCODES",
        smtplib_spelling("-> mail FROM:<sender@example.com> size=N"),
        smtplib_spelling("-> rcpt TO:<recipient@example.com>"),
        "-> BDAT N LAST",
        "-> (N bytes of message data)",
        "<- N N.N.N Ok",
        "<- N N.N.N Ok",
        "<- N N.N.N Ok: queued as N",
        "-> quit",
        "<- N N.N.N Bye",
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_server_over_each_transport(capsys: pytest.CaptureFixture[str], transport: str) -> None:
    code, out, _ = run(capsys, "send", "--transport", transport, "--to", "x@example.test")
    assert code == 0
    assert "accepted  x@example.test" in out
    assert "The capture server received, from <sender@example.com> for <x@example.test>:" in out


# ---------------------------------------------------------------- composing


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_to_cc_bcc_subject_body_and_attachments(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, tmp_path: Path, transport: str
) -> None:
    table = tmp_path / "table.csv"
    table.write_bytes(b"a,b\r\n1,2\r\n")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    code, out, _ = run(
        capsys,
        *to(server, "--transport", transport, "--from", "me@example.test"),
        *("--to", "t1@example.test", "--to", "t2@example.test", "--cc", "c@example.test"),
        *("--bcc", "hidden@example.test", "--subject", "Quarterly ☃", "--body", "See attached.\n"),
        *("--attach", str(table), "--attach", str(blob)),
    )
    assert code == 0
    assert out.splitlines()[-2:] == ["4 of 4 recipients accepted", "queue id  1"]
    (captured,) = server.messages
    assert captured.mail_from == "me@example.test"
    assert captured.rcpt_tos == [
        "t1@example.test", "t2@example.test", "c@example.test", "hidden@example.test",
    ]  # fmt: skip
    message = captured.message
    assert message["To"] == "t1@example.test, t2@example.test"
    assert message["Cc"] == "c@example.test"
    assert message["Bcc"] is None and b"hidden" not in captured.data
    assert message["Subject"] == "Quarterly ☃"
    body, *attachments = message.iter_parts()
    assert body.get_content() == "See attached.\n"
    assert [(a.get_content_type(), a.get_filename()) for a in attachments] == [
        ("text/csv", "table.csv"),
        ("application/octet-stream", "blob.bin"),
    ]
    assert attachments[1].get_content() == bytes(range(256))


def test_body_from_a_file_and_an_international_address(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, tmp_path: Path
) -> None:
    body = tmp_path / "body.txt"
    body.write_text("Grüße aus Köln\n", encoding="utf-8")
    code, _, _ = run(
        capsys,
        *to(server, "--from", "me@example.test", "--to", "jürgen@example.test"),
        *("--body-file", str(body)),
    )
    assert code == 0
    (captured,) = server.messages
    assert captured.rcpt_tos == ["jürgen@example.test"]
    assert "SMTPUTF8" in captured.mail_options
    assert captured.message.get_content() == "Grüße aus Köln\n"


def test_eml_is_sent_as_is_without_its_bcc(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, tmp_path: Path
) -> None:
    eml = tmp_path / "ready.eml"
    headers = b"From: Ann <ann@example.test>\r\nTo: bob@example.test\r\nCc: cy@example.test\r\n"
    eml.write_bytes(
        headers + b"Bcc: dee@example.test,\r\n eve@example.test\r\nSubject: ready\r\n\r\nAs is.\r\n"
    )
    code, out, _ = run(capsys, *to(server, "--eml", str(eml)))
    assert code == 0, out
    (captured,) = server.messages
    assert captured.mail_from == "ann@example.test"
    assert captured.rcpt_tos == [  # send_message's rule and order: To, Bcc, Cc
        "bob@example.test", "dee@example.test", "eve@example.test", "cy@example.test",
    ]  # fmt: skip
    assert captured.data == headers + b"Subject: ready\r\n\r\nAs is.\r\n"


def test_eml_with_the_envelope_from_options(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, tmp_path: Path
) -> None:
    eml = tmp_path / "ready.eml"
    eml.write_bytes(b"From: ann@example.test\r\nTo: bob@example.test\r\n\r\nx\r\n")
    argv = to(server, "--eml", str(eml), "--from", "bounce@example.test", "--to", "z@example.test")
    assert run(capsys, *argv)[0] == 0
    (captured,) = server.messages
    assert (captured.mail_from, captured.rcpt_tos) == ("bounce@example.test", ["z@example.test"])


def test_a_progress_bar_for_a_large_body(
    capsys: pytest.CaptureFixture[str], server: CaptureServer
) -> None:
    body = "x" * 76 + "\n"
    code, _, err = run(
        capsys,
        *to(server, "--from", "me@example.test", "--to", "a@example.test", "--progress"),
        *("--body", body * 30_000),
    )
    assert code == 0
    assert err.count("%") > 2 and "] 100% 2.2/2.2 MiB\n" in err
    (captured,) = server.messages
    assert f"size={len(captured.data)}" in captured.mail_options  # the size is still declared
    assert captured.message.get_content() == body * 30_000


def test_no_progress_bar_unless_asked_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], server: CaptureServer
) -> None:
    body = "x" * 76 + "\n"
    argv = to(
        server, "--from", "me@example.test", "--to", "a@example.test", "--body", body * 30_000
    )
    expected = "accepted  a@example.test\n1 of 1 recipients accepted\nqueue id  1\n"
    assert run(capsys, *argv) == (0, expected, "")


# ---------------------------------------------------------------- results and exit codes


def test_a_refused_recipient_exits_1_and_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    refuse = {"gone@example.test": (550, "5.1.1 <gone@example.test>: no such user")}
    with CaptureServer(refuse=refuse) as server:
        code, out, _ = run(
            capsys,
            *to(server, "--from", "me@example.test"),
            *("--to", "here@example.test", "--to", "gone@example.test"),
        )
    assert code == 1
    assert out.splitlines() == [
        "accepted  here@example.test",
        "refused   gone@example.test  550 5.1.1 <gone@example.test>: no such user",
        "1 of 2 recipients accepted",
        "queue id  1",
    ]


def test_every_recipient_refused_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer(refuse={"gone@example.test": (550, "5.1.1 no")}) as server:
        code, out, _ = run(
            capsys, *to(server, "--from", "a@example.test", "--to", "gone@example.test")
        )
    assert code == 2
    assert "refused   gone@example.test  550 5.1.1 no" in out
    assert server.messages == []


def test_a_421_during_the_envelope_sends_to_nobody(capsys: pytest.CaptureFixture[str]) -> None:
    """A recipient accepted before the server shut down did not get the message either; a
    421 is temporary, so the exit code says to try again later (75)."""
    with CaptureServer(refuse={"late@example.test": (421, "4.3.2 shutting down")}) as server:
        code, out, _ = run(
            capsys,
            *to(server, "--from", "a@example.test"),
            *("--to", "early@example.test", "--to", "late@example.test"),
        )
    assert code == 75
    assert out.splitlines() == [
        "not sent  early@example.test",
        "refused   late@example.test  421 4.3.2 shutting down",
        "0 of 2 recipients accepted",
    ]
    assert server.messages == []


@pytest.mark.parametrize(
    ("fail", "code", "expected"),
    [
        (
            {"MAIL": (553, "5.1.8 Bad sender")},
            2,
            "sender <a@example.test> refused: 553 5.1.8 Bad sender",
        ),
        (
            {"MAIL": (451, "4.3.0 Try later")},
            75,
            "sender <a@example.test> refused: 451 4.3.0 Try later",
        ),
        ({"body": (554, "5.6.0 Spam")}, 2, "message refused: 554 5.6.0 Spam"),
        ({"body": (452, "4.3.1 Disk full")}, 75, "message refused: 452 4.3.1 Disk full"),
        ({"connect": (554, "5.3.2 No service")}, 2, "greeting: 554 5.3.2 No service"),
        ({"connect": (421, "4.3.2 Busy")}, 75, "greeting: 421 4.3.2 Busy"),
    ],
)
def test_a_refusal_exits_by_its_class(
    capsys: pytest.CaptureFixture[str], fail: dict[str, tuple[int, str]], code: int, expected: str
) -> None:
    """A 5xx refusal exits 2 (do not retry), a 4xx one 75 (EX_TEMPFAIL: try again later)."""
    with CaptureServer(fail=fail) as server:
        result = run(capsys, *to(server, "--from", "a@example.test", "--to", "b@example.test"))
    assert result == (code, "", f"smtp-proto: {expected}\n")
    assert server.messages == []


@pytest.mark.parametrize("recipients", [["soon@x.test"], ["soon@x.test", "never@x.test"]])
def test_every_recipient_refused_temporarily_or_not(
    capsys: pytest.CaptureFixture[str], recipients: list[str]
) -> None:
    """Nothing delivered: 75 if a refusal was temporary (a retry may reach that one)."""
    refuse = {"soon@x.test": (450, "4.2.1 Mailbox busy"), "never@x.test": (550, "5.1.1 No")}
    with CaptureServer(refuse=refuse) as server:
        argv = to(server, "--from", "a@x.test", *(arg for r in recipients for arg in ("--to", r)))
        assert run(capsys, *argv)[0] == 75
        assert run(capsys, *to(server, "--from", "a@x.test", "--to", "never@x.test"))[0] == 2


def test_an_unreachable_server_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer() as server:
        port = server.port
    code, _, err = run(capsys, "send", "--server", f"127.0.0.1:{port}", "--tls", "none",
                       "--from", "a@example.test", "--to", "b@example.test")  # fmt: skip
    assert code == 5
    assert f"smtp-proto: cannot connect to 127.0.0.1:{port}: [Errno 111] Connection refused" in err


def test_a_connection_lost_during_the_session_exits_75(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer(drop_at="RCPT") as server:
        code, out, err = run(capsys, *to(server, "--from", "a@x.test", "--to", "b@x.test"))
    assert (code, out) == (75, "")
    assert "SMTPServerDisconnected: Connection unexpectedly closed" in err


# ---------------------------------------------------------------- TLS and AUTH


def test_starttls_is_required_by_default(
    capsys: pytest.CaptureFixture[str], server: CaptureServer
) -> None:
    argv = [
        "send",
        "--server",
        f"127.0.0.1:{server.port}",
        "--from",
        "a@x.test",
        "--to",
        "b@x.test",
    ]
    code, _, err = run(capsys, *argv)
    assert code == 3
    assert "does not offer STARTTLS" in err
    # the options, not send()'s argument names
    assert "with this command: --tls opportunistic (STARTTLS when offered) or none" in err
    assert server.messages == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_starttls_verified_with_cafile_and_auth(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tls_ca: LocalCA,
    transport: str,
) -> None:
    monkeypatch.setenv("MY_SECRET", "s3cret-pässword")
    with CaptureServer(
        tls_context=tls_ca.server_context(), credentials={"ann": "s3cret-pässword"}
    ) as server:
        code, _, err = run(
            capsys,
            *("send", "--server", f"127.0.0.1:{server.port}", "--cafile", str(tls_ca.cafile)),
            *("--user", "ann", "--password-env", "MY_SECRET", "--transport", transport, "-v"),
            *("--from", "ann@example.test", "--to", "b@example.test"),
        )
    assert code == 0, err
    (captured,) = server.messages
    assert (captured.tls, captured.auth_user) == (True, "ann")
    lines = err.splitlines()
    starttls = lines.index("-> STARTTLS")
    assert lines[starttls + 1 : starttls + 4] == [
        "<- 220 2.0.0 Ready to start TLS",
        "== TLS started",
        "~> ehlo smtp-proto.local",
    ]
    assert "~> AUTH PLAIN ****" in lines  # the transcript hides the credentials
    assert all(line.startswith(("~>", "<~")) for line in lines[starttls + 3 :])
    assert "s3cret" not in err and "czNjcmV0" not in err and "YW5u" not in err


def test_a_certificate_that_cannot_be_verified_exits_3(
    capsys: pytest.CaptureFixture[str], tls_ca: LocalCA
) -> None:
    with CaptureServer(tls_context=tls_ca.server_context()) as server:
        argv = [
            "send",
            "--server",
            f"127.0.0.1:{server.port}",
            "--from",
            "a@x.test",
            "--to",
            "b@x.test",
        ]
        code, _, err = run(capsys, *argv)
        assert code == 3
        assert "certificate not verified: unable to get local issuer certificate" in err
        assert server.messages == []
        code, _, err = run(capsys, *argv, "--insecure")  # only an explicit flag skips checking
        assert code == 0
        assert "--insecure: the server's certificate is NOT checked" in err


def test_implicit_tls_to_a_clear_text_server_exits_3(
    capsys: pytest.CaptureFixture[str], server: CaptureServer
) -> None:
    argv = ["send", "--server", f"127.0.0.1:{server.port}", "--tls", "implicit"]
    code, out, err = run(capsys, *argv, "--from", "a@x.test", "--to", "b@x.test")
    assert (code, out) == (3, "")
    assert err.startswith("smtp-proto: TLS failed: [SSL: WRONG_VERSION_NUMBER]")
    assert err.endswith(
        "; --tls implicit is for ports where TLS starts at once (465), --tls starttls for those "
        "where it starts after STARTTLS (587, 25)\n"
    )
    assert server.messages == []


def test_a_wrong_password_exits_4(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    with CaptureServer(credentials={"ann": "right"}) as server:
        code, _, err = run(
            capsys,
            *to(server, "--user", "ann", "--from", "a@example.test", "--to", "b@example.test"),
        )
    assert code == 4
    assert "authentication failed: 535 5.7.8" in err
    assert server.messages == []


def test_the_capture_server_has_no_tls_or_auth(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "send", "--tls", "starttls")[0] == EXIT_USAGE
    assert run(capsys, "send", "--user", "ann")[0] == EXIT_USAGE


# ---------------------------------------------------------------- LMTP


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("deliverable", [["ok@example.test"], []], ids=["one-ok", "none-ok"])
def test_lmtp_over_a_unix_socket_shows_each_reply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, transport: str, deliverable: list[str]
) -> None:
    """Delivered, failed after the message, refused at RCPT; with nobody delivered to, the
    session still ends with QUIT and exits 2."""
    recipients = [*deliverable, "full@example.test", "nobody@example.test"]
    with CaptureServer(
        unix_path=tmp_path / "lmtp.sock",
        lmtp=True,
        refuse={"nobody@example.test": (550, "5.1.1 User unknown")},
        lmtp_failures={"full@example.test": (552, "5.2.2 Quota exceeded")},
    ) as server:
        code, out, err = run(
            capsys,
            *("send", "--server", server.host, "--transport", transport, "-v"),
            *("--from", "a@example.test", *(arg for r in recipients for arg in ("--to", r))),
        )
    assert code == (1 if deliverable else 2)
    assert out.splitlines() == [
        *(f"delivered {r}  250 2.0.0 Delivered <{r}>" for r in deliverable),
        "failed    full@example.test  552 5.2.2 Quota exceeded <full@example.test>",
        "refused   nobody@example.test  550 5.1.1 User unknown",
        f"{len(deliverable)} of {len(recipients)} recipients accepted",
    ]
    assert err.splitlines()[-2:] == ["-> quit", "<- 221 2.0.0 Bye"]
    assert [message.rcpt_tos for message in server.messages] == [deliverable] * len(deliverable)


def test_lmtp_over_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer(lmtp=True) as server:
        code, out, _ = run(capsys, *to(server, "--lmtp", "--from", "a@x.test", "--to", "b@x.test"))
    assert code == 0
    assert out.startswith("delivered b@x.test  250 2.0.0 Delivered <b@x.test>\n")


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "--bogus"],
        ["send", "--body", "a", "--body-file", "b"],
        ["send", "--eml", "x.eml", "--subject", "s"],
        ["send", "--eml", "x.eml", "--body", "b"],
        ["send", "--server", "mail.example.test", "--to", "b@example.test"],  # no --from
        ["send", "--server", "mail.example.test:99999", "--from", "a@x.test", "--to", "b@x.test"],
        ["send", "--server", "[::1", "--from", "a@x.test", "--to", "b@x.test"],
        ["send", "--server", "/run/lmtp", "--tls", "starttls", "--to", "b@x.test"],
        ["send", "--attach", "/nonexistent/file"],
        ["send", "--eml", "/nonexistent/file.eml"],
        ["send", "--tls", "nope"],
        ["probe"],
    ],
)
def test_usage_errors_exit_64(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "send", "--help")
    assert code == 0
    assert "--transport {blocking,asyncio,trio}" in out


# ---------------------------------------------------------------- probe


def test_probe_the_capture_server_with_starttls(
    capsys: pytest.CaptureFixture[str], tls_ca: LocalCA
) -> None:
    with CaptureServer(tls_context=tls_ca.server_context(), credentials={"a": "b"}) as server:
        code, out, _ = run(
            capsys,
            *("probe", "--server", f"127.0.0.1:{server.port}", "--cafile", str(tls_ca.cafile)),
            "--json",
        )
    assert code == 0
    report = json.loads(out)
    assert report["greeting"]["code"] == 220
    assert {"STARTTLS", "AUTH PLAIN LOGIN", "CHUNKING", "SIZE 10485760"} <= set(
        report["extensions"]
    )
    assert "STARTTLS" not in report["extensions_after_tls"]
    assert report["tls"]["verified"] is True
    assert report["tls"]["certificate"]["sans"][0] == "DNS:localhost"
    assert report["noop_ms"]["min"] <= report["noop_ms"]["median"]


def test_probe_without_starttls_says_so(
    capsys: pytest.CaptureFixture[str], server: CaptureServer
) -> None:
    code, out, _ = run(capsys, "probe", "--server", f"127.0.0.1:{server.port}")
    assert code == 0
    assert "STARTTLS    not offered: the session stays in clear text" in out
    assert "round trip  " in out


def test_probe_an_lmtp_unix_socket(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with CaptureServer(unix_path=tmp_path / "s", lmtp=True) as server:
        code, out, _ = run(capsys, "probe", "--server", server.host)
    assert code == 0
    assert f"server      {server.host} (LMTP)" in out
    assert "CHUNKING" in out


def test_probe_a_closed_port_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer() as server:
        port = server.port
    code, out, _ = run(capsys, "probe", "--server", f"127.0.0.1:{port}", "--json")
    assert code == 5
    assert json.loads(out)["exit_code"] == 5


# ---------------------------------------------------------------- the parsers, as properties

_HOSTS = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
)


@given(host=_HOSTS, port=st.none() | st.integers(1, 65535))
def test_parse_server_names_and_ipv4(host: str, port: int | None) -> None:
    text = host if port is None else f"{host}:{port}"
    assert parse_server(text, 587) == (host, 587 if port is None else port)


@given(address=st.ip_addresses(v=6).map(str), port=st.none() | st.integers(1, 65535))
def test_parse_server_ipv6(address: str, port: int | None) -> None:
    assert parse_server(f"[{address}]" + ("" if port is None else f":{port}"), 25) == (
        address,
        25 if port is None else port,
    )
    if ":" in address and address.count(":") > 1:
        assert parse_server(address, 25) == (address, 25)  # bare: no port possible


@given(path=st.from_regex(r"(/[a-z0-9._-]{1,12}){1,4}", fullmatch=True))
def test_parse_server_unix_paths(path: str) -> None:
    assert parse_server(path, 24) == (path, 0)


@given(st.text(max_size=30))
def test_parse_server_never_crashes(text: str) -> None:
    try:
        host, port = parse_server(text, 25)
    except ValueError:
        return
    assert host and 0 <= port < 65536


_NAME = st.sampled_from(["To", "Subject", "Bcc", "BCC", "bcc ", "Resent-Bcc", "X-Bcc", "Cc"])
_VALUE = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=20)


@given(
    fields=st.lists(st.tuples(_NAME, _VALUE, st.lists(_VALUE, max_size=2)), max_size=8),
    body=st.binary(max_size=60),
    newline=st.sampled_from([b"\r\n", b"\n"]),
)
def test_without_bcc_drops_exactly_the_bcc_fields(
    fields: list[tuple[str, str, list[str]]], body: bytes, newline: bytes
) -> None:
    def field(name: str, value: str, folds: list[str]) -> bytes:
        lines = [f"{name}: {value}".encode(), *(f"\t{fold}".encode() for fold in folds)]
        return b"".join(line + newline for line in lines)

    kept = [f for f in fields if f[0].strip().lower() not in ("bcc", "resent-bcc")]
    message = b"".join(field(*f) for f in fields) + newline + body
    assert without_bcc(message) == b"".join(field(*f) for f in kept) + newline + body


def test_a_password_is_never_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    """Not even by abbreviating ``--password-env``: abbreviations are off."""
    assert run(capsys, "send", "--password", "x")[0] == EXIT_USAGE
    assert "SMTP_PASSWORD" in run(capsys, "send", "--help")[1]


def test_no_password_and_no_terminal_is_a_usage_error(tmp_path: Path) -> None:
    """As under cron: no terminal and no ``$SMTP_PASSWORD``.  Standard input is never read
    for the password (``getpass`` would, echoed, after a warning), even when it holds it."""
    body = tmp_path / "body.txt"
    body.write_text("hello\n")
    argv = ["--user", "ann", "--from", "a@x.test", "--to", "b@x.test", "--body-file", str(body)]
    with CaptureServer(credentials={"ann": "hunter2"}) as server:
        result = run_without_a_terminal(to(server, *argv), "hunter2\n", tmp_path)
    assert (result.returncode, result.stdout) == (EXIT_USAGE, "")
    assert result.stderr == "smtp-proto: no password: set $SMTP_PASSWORD, or run in a terminal\n"
    assert server.messages == []


def test_auth_not_offered_exits_4(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: CaptureServer
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    code, _, err = run(
        capsys, *to(server, "--user", "ann", "--from", "a@x.test", "--to", "b@x.test")
    )
    assert code == 4
    assert "authentication failed: SMTP AUTH extension not supported by server" in err
    assert server.messages == []


def test_the_body_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: CaptureServer
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("piped ✓\n".encode())))
    argv = to(server, "--from", "a@x.test", "--to", "b@x.test", "--body-file", "-")
    assert run(capsys, *argv)[0] == 0
    assert server.messages[0].message.get_content() == "piped ✓\n"


def envelope_but(option: str) -> list[str]:
    """``--from`` and ``--to`` options for a valid envelope, but for ``option``."""
    given = {"--from": "a@x.test", "--to": "b@x.test"}
    return [text for name, value in given.items() if name != option for text in (name, value)]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[CaptureServer]:
    with CaptureServer() as capture:
        yield capture


@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("--from", "From", "x@"),
        ("--to", "To", "<"),
        ("--cc", "Cc", "x@["),
        ("--subject", "Subject", "a\nb"),
    ],
)
def test_what_the_email_package_refuses_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, option: str, field: str, value: str
) -> None:
    """The running ``email`` package decides: it raises ``ValueError`` for a line break, and
    ``IndexError`` or ``AttributeError`` for some malformed addresses (later Pythons take
    some of them).  What it refuses is a usage error naming the option, before connecting;
    what it takes is sent."""
    try:
        email.message.EmailMessage()[field] = value
    except (ValueError, IndexError, AttributeError):
        refused = True
    else:
        refused = False
    code, out, err = run(capsys, *to(server, *envelope_but(option), f"{option}={value}"))
    if refused:
        message = f"smtp-proto: {option} {value!r}: not a valid {field} header field\n"
        assert (code, out, err) == (EXIT_USAGE, "", message)
        assert server.commands == []
    else:
        assert code != EXIT_USAGE and server.commands, err


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--from", "a\x1b@x.test", "smtp-proto: the sender 'a\\x1b@x.test' holds a control"),
        ("--bcc", "c@x.test\rRSET", "smtp-proto: the recipient 'c@x.test\\rRSET' holds a"),
        ("--helo", "a\nQUIT", "error: argument --helo: 'a\\nQUIT' holds a control character"),
    ],
)
def test_a_control_character_in_a_command_is_a_usage_error_before_connecting(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, option: str, value: str, error: str
) -> None:
    """No command can carry one: the core's own check, made before connecting."""
    code, out, err = run(capsys, *to(server, *envelope_but(option), f"{option}={value}"))
    assert (code, out) == (EXIT_USAGE, "")
    assert error in err
    assert server.commands == []


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "1e12", "soon"])
def test_a_timeout_no_socket_can_take_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], server: CaptureServer, seconds: str
) -> None:
    code, out, err = run(capsys, *to(server, "--to", "b@x.test", f"--timeout={seconds}"))
    assert (code, out) == (EXIT_USAGE, "")
    assert f"argument --timeout: {seconds!r} is not a number of seconds in (0, " in err
    assert server.commands == []


@given(
    option=st.sampled_from(["--from", "--to", "--cc", "--bcc", "--subject", "--body", "--helo"]),
    value=st.text(max_size=30),
)
def test_any_option_value_is_sent_or_refused_never_a_crash(
    shared_server: CaptureServer, option: str, value: str
) -> None:
    """Whatever text an option is given (control characters, line breaks, any script), the
    command returns an exit code and, for a usage error, has sent nothing."""
    argv = to(shared_server, *envelope_but(option), f"{option}={value}")
    before = len(shared_server.commands)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in dict(EXIT_CODES), err.getvalue()  # a refusal (a NUL in a header: 2), ...
    assert "Traceback" not in err.getvalue()
    if code == EXIT_USAGE:
        last_line = err.getvalue().rstrip("\n").rsplit("\n", 1)[-1]  # after argparse's usage
        assert last_line.startswith("smtp-proto") and last_line.isprintable(), last_line
        assert len(shared_server.commands) == before


def test_a_closed_standard_input_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: CaptureServer
) -> None:
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed file descriptor 0
    argv = to(server, "--from", "a@x.test", "--to", "b@x.test", "--body-file", "-")
    assert run(capsys, *argv) == (
        EXIT_USAGE,
        "",
        "smtp-proto: cannot read -: standard input is closed\n",
    )
    assert server.commands == []


def test_output_the_locale_cannot_encode_is_escaped(tmp_path: Path) -> None:
    """An ASCII-only stdout (a C locale, a legacy console) and a message that is not ASCII:
    sent, and shown with backslash escapes, not ended by a ``UnicodeEncodeError``."""
    result = subprocess.run(
        [sys.executable, "-m", "smtp_proto", "send", "--subject", "Grüße", "--body", "héllo ✓"],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, b""), result.stderr
    assert b"accepted  recipient@example.com" in result.stdout
    assert b"h\\xe9llo \\u2713" in result.stdout  # the capture server's copy of the body
