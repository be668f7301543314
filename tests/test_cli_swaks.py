"""The swaks-style options of ``smtp-proto send`` against real servers: Postfix (STARTTLS, Dovecot
SASL), Exim speaking SMTP over a Unix socket (``exim -bs``), Dovecot LMTP.

Each option is judged by what the server did: the message it delivered, its log, and the
session as the transcript (``-v``) shows it, built from the library's own record of the
wire.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from smtp_proto.transports.cli import main

from tests.offline import smtplib_spelling
from tests.servers.dovecot import DovecotLMTPServer
from tests.servers.exim import EXIM, EximServer
from tests.servers.postfix import PostfixServer
from tests.servers.util import wait_until

Delivered = Callable[..., list[bytes]]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def client_lines(transcript: str) -> list[str]:
    """The client's lines of a transcript, without their markers."""
    return [line[3:] for line in transcript.splitlines() if line.startswith(("-> ", "~> "))]


def submission(postfix: PostfixServer, *argv: str) -> list[str]:
    """``send`` to Postfix's submission port: STARTTLS (required) and AUTH as testuser."""
    return [
        *("send", "--server", f"{postfix.host}:{postfix.submission_port}"),
        *("--cafile", str(postfix.cafile), "--user", "testuser"),
        *argv,
    ]


def clear_text(postfix: PostfixServer, *argv: str) -> list[str]:
    """``send`` to Postfix's port 25 equivalent, without TLS or AUTH."""
    return ["send", "--server", f"{postfix.host}:{postfix.port}", "--tls", "none", *argv]


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "testpass")


# ---------------------------------------------------------------- the message


def test_header_fields_added_and_replaced(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    token: str,
) -> None:
    code, _, err = run(
        capsys,
        *clear_text(postfix, "--from", "me@example.test", "--to", "to@example.test"),
        *("--header", f"Subject: replaced {token}", "--header", "X-Campaign:spring"),
        *("--header", "X-Empty:"),
    )
    assert code == 0, err
    (raw,) = postfix_delivered(token)
    message = parse(raw)
    assert message.get_all("Subject") == [f"replaced {token}"]
    assert message["X-Campaign"] == "spring"
    assert message["X-Empty"] == ""


def test_dump_message_is_what_send_sends(
    capsysbinary: pytest.CaptureFixture[bytes],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tmp_path: Path,
    token: str,
) -> None:
    """The dump, sent as it is with ``--eml``, is delivered byte for byte (after the
    headers Postfix adds); dumping connects to nothing."""
    argv = clear_text(postfix, "--from", "me@example.test", "--to", "dump@example.test")
    assert main([*argv, "--subject", f"dump {token}", "--dump-message"]) == 0
    dumped = capsysbinary.readouterr().out
    assert dumped.startswith(b"From: me@example.test\r\nTo: dump@example.test\r\n")
    eml = tmp_path / "dumped.eml"
    eml.write_bytes(dumped)
    assert main(clear_text(postfix, "--eml", str(eml))) == 0
    (raw,) = postfix_delivered(token)
    assert raw.replace(b"\n", b"\r\n").endswith(dumped)


# ---------------------------------------------------------------- AUTH


@pytest.mark.usefixtures("password")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_uses_the_mechanism_chosen(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    mechanism: str,
    token: str,
) -> None:
    code, out, err = run(
        capsys,
        *submission(postfix, "--auth", mechanism.lower(), "-v", "--subject", token),
        *("--from", "me@example.test", "--to", "to@example.test"),
    )
    assert code == 0, err
    assert f"AUTH {mechanism}" in " ".join(client_lines(err))
    assert "testpass" not in err and "dGVzdHBhc3M" not in err
    queue_id = out.splitlines()[-1].removeprefix("queue id  ")
    postfix_delivered(token)
    # Postfix's smtpd logs the mechanism the client authenticated with, by queue id.
    logged = wait_until(
        lambda: re.search(rf"{queue_id}: client=\S+, sasl_method=(\S+),", postfix_log(postfix)),
        10.0,
        f"the SASL method of {queue_id} in {postfix.log_path}",
    )
    assert logged[1] == mechanism


def postfix_log(postfix: PostfixServer) -> str:
    return postfix.log_path.read_text("utf-8", errors="replace")


@pytest.mark.usefixtures("password")
def test_auth_with_a_mechanism_the_server_lacks_exits_4(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer
) -> None:
    code, out, err = run(
        capsys,
        *submission(postfix, "--auth", "SCRAM-SHA-256", "--from", "me@example.test"),
        *("--to", "to@example.test"),
    )
    assert (code, out) == (4, "")
    assert err == (
        "smtp-proto: authentication failed: the server does not offer AUTH SCRAM-SHA-256\n"
    )


# ---------------------------------------------------------------- the session


_STAGE_COMMANDS = {
    "connect": [],
    "ehlo": ["ehlo smtp-proto.local"],
    "tls": ["ehlo smtp-proto.local", "STARTTLS", "ehlo smtp-proto.local"],
    "auth": ["ehlo smtp-proto.local", "STARTTLS", "ehlo smtp-proto.local", "AUTH PLAIN ****"],
}


@pytest.mark.usefixtures("password")
@pytest.mark.parametrize("stage", ["connect", "ehlo", "tls", "auth", "mail", "rcpt"])
def test_quit_after_each_stage(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, stage: str
) -> None:
    """The session goes exactly as far as the stage, then QUITs, and Postfix says goodbye."""
    code, out, err = run(
        capsys,
        *submission(postfix, "--auth", "PLAIN", "--quit-after", stage, "-v"),
        *("--from", "me@example.test", "--to", "one@example.test", "--to", "two@example.test"),
    )
    assert code == 0, err
    envelope = [smtplib_spelling("mail FROM:<me@example.test>")]
    if stage == "rcpt":
        envelope += [smtplib_spelling(f"rcpt TO:<{name}@example.test>") for name in ("one", "two")]
    expected = _STAGE_COMMANDS.get(stage, [*_STAGE_COMMANDS["auth"], *envelope])
    assert client_lines(err) == [*expected, "quit"]
    assert err.splitlines()[-1].endswith("221 2.0.0 Bye")
    lines = out.splitlines()
    assert lines[0] == f"quit after {stage} (--quit-after): no message sent"
    if stage == "rcpt":
        assert lines[1:] == [
            "sender    me@example.test  250 2.1.0 Ok",
            "accepted  one@example.test  250 2.1.5 Ok",
            "accepted  two@example.test  250 2.1.5 Ok",
            "2 of 2 recipients accepted",
        ]


@pytest.mark.parametrize(
    ("recipients", "code"),
    [
        (["fine@example.test", "tempfail@example.test"], 1),
        (["tempfail@example.test"], 75),
        (["reject-me@example.test"], 2),
        (["tempfail@example.test", "reject-me@example.test"], 75),
    ],
)
@pytest.mark.parametrize("quit_after", [None, "rcpt"])
def test_exit_codes_tell_temporary_from_permanent_refusals(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    recipients: list[str],
    code: int,
    quit_after: str | None,
) -> None:
    """Postfix answers tempfail* with 451 and reject* with 550 at RCPT."""
    stop = [] if quit_after is None else ["--quit-after", quit_after]
    result = run(
        capsys,
        *clear_text(postfix, "--from", "me@example.test", *stop, "--json"),
        *(arg for recipient in recipients for arg in ("--to", recipient)),
    )
    assert result[0] == code, result[2]
    report = json.loads(result[1])
    assert report["exit_code"] == code
    by_address = {r["address"]: r for r in report["recipients"]}
    for recipient in recipients:
        reply = by_address[recipient]["reply"]
        if recipient.startswith("tempfail"):
            assert (reply["code"], reply["enhanced_status"]) == (451, "4.3.0")
        elif recipient.startswith("reject"):
            assert (reply["code"], reply["enhanced_status"]) == (550, "5.1.1")
        else:
            assert by_address[recipient]["status"] == "accepted"


@pytest.mark.parametrize(
    ("recipients", "code"),
    [(["alice@example.test", "tempfail@example.test"], 1), (["tempfail@example.test"], 75),
     (["full@example.test"], 2)],
)  # fmt: skip
def test_lmtp_exit_codes_after_the_message(
    capsys: pytest.CaptureFixture[str],
    dovecot_lmtp: DovecotLMTPServer,
    recipients: list[str],
    code: int,
) -> None:
    """Dovecot's replies after the message: 451 for tempfail, 552 for full."""
    result = run(
        capsys,
        *("send", "--server", str(dovecot_lmtp.unix_path), "--from", "me@example.test"),
        *(arg for recipient in recipients for arg in ("--to", recipient)),
    )
    assert result[0] == code, result


def test_json_report_against_postfix(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    monkeypatch: pytest.MonkeyPatch,
    token: str,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "testpass")
    code, out, err = run(
        capsys,
        *submission(postfix, "--json", "--from", "me@example.test", "--subject", token),
        *("--to", "ok@example.test", "--to", "reject-me@example.test"),
    )
    assert code == 1, err
    report = json.loads(out)
    assert report["server"] == f"{postfix.host}:{postfix.submission_port}"
    assert report["recipients"] == [
        {
            "address": "ok@example.test",
            "status": "accepted",
            "reply": {"code": 250, "enhanced_status": "2.1.5", "text": "2.1.5 Ok"},
        },
        {
            "address": "reject-me@example.test",
            "status": "refused",
            "reply": {
                "code": 550,
                "enhanced_status": "5.1.1",
                "text": "5.1.1 <reject-me@example.test>: Recipient address rejected: "
                "Rejected test recipient",
            },
        },
    ]
    final = report["final_reply"]
    assert (final["code"], final["enhanced_status"]) == (250, "2.0.0")
    assert final["text"].endswith(f"queued as {report['queue_id']}")
    (raw,) = postfix_delivered(token)
    assert f" id {report['queue_id']}" in str(parse(raw).get_all("Received")[0])
    timings = report["timings_ms"]
    assert list(timings) == ["greeting", "ehlo", "tls", "auth", "message", "total"]
    assert 0 < timings["greeting"] < timings["ehlo"] < timings["tls"] < timings["auth"]
    assert timings["auth"] < timings["message"] <= timings["total"]
    assert (report["error"], report["quit_after"]) == (None, None)


# ---------------------------------------------------------------- protocol options


def test_pipelining_and_no_pipelining(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, postfix_delivered: Delivered
) -> None:
    """Pipelined, MAIL, RCPT and BDAT go before any reply; with --no-pipelining each command
    waits for its reply (and the library sends a text message one at a time with DATA)."""
    transcripts = []
    for option, token in (("-v", "piped-one"), ("--no-pipelining", "piped-not")):
        code, _, err = run(
            capsys,
            *clear_text(postfix, "-v", option, "--from", "me@example.test"),
            *("--to", "a@example.test", "--to", "b@example.test", "--subject", token),
        )
        assert code == 0, err
        postfix_delivered(token, 2)
        lines = err.splitlines()
        mail = next(
            i for i, line in enumerate(lines) if line.startswith(smtplib_spelling("-> mail FROM:"))
        )
        transcripts.append([line[:2] for line in lines[mail : mail + 8]])
    pipelined, one_by_one = transcripts
    # MAIL, 2 RCPTs, BDAT and its data, then the replies
    assert pipelined == ["->", "->", "->", "->", "->", "<-", "<-", "<-"]
    assert one_by_one == ["->", "<-", "->", "<-", "->", "<-", "->", "<-"]  # ... DATA, 354


def test_no_chunking_sends_data(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, postfix_delivered: Delivered
) -> None:
    code, _, err = run(
        capsys,
        *clear_text(postfix, "-v", "--no-chunking", "--from", "me@example.test"),
        *("--to", "a@example.test", "--subject", "no-bdat", "--body", ".dot first\n"),
    )
    assert code == 0, err
    assert "BDAT" not in err
    lines = err.splitlines()
    data = lines.index("-> data")
    assert lines[data + 3].startswith("<- 354 End data with")
    assert re.fullmatch(r'-> \(message: \d+ bytes in \d+ lines, then "\."\)', lines[data + 4])
    (raw,) = postfix_delivered("no-bdat")
    assert parse(raw).get_content() == ".dot first\n"  # stuffed on the way, unstuffed by Postfix


def test_port_option(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, postfix_delivered: Delivered
) -> None:
    code, _, err = run(
        capsys,
        *("send", "--server", postfix.host, "--port", str(postfix.port), "--tls", "none"),
        *("--from", "me@example.test", "--to", "port@example.test", "--subject", "by-port"),
    )
    assert code == 0, err
    (raw,) = postfix_delivered("by-port")
    assert parse(raw)["Delivered-To"] == "port@example.test"


def test_opportunistic_tls_when_offered(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, postfix_delivered: Delivered
) -> None:
    code, _, err = run(
        capsys,
        *("send", "--server", f"{postfix.host}:{postfix.port}", "--tls", "opportunistic"),
        *("--cafile", str(postfix.cafile), "-v", "--from", "me@example.test"),
        *("--to", "opp@example.test", "--subject", "opportunistic-tls"),
    )
    assert code == 0, err
    assert "== TLS started" in err.splitlines()
    (raw,) = postfix_delivered("opportunistic-tls")
    assert "with ESMTPS" in str(parse(raw).get_all("Received")[0])


@pytest.mark.usefixtures("password")
def test_implicit_tls_transcript(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer
) -> None:
    """TLS from the first byte: every protocol line behind a TLS marker."""
    code, _, err = run(
        capsys,
        *("send", "--server", f"{postfix.host}:{postfix.smtps_port}", "--tls", "implicit"),
        *("--cafile", str(postfix.cafile), "--user", "testuser", "-v"),
        *("--from", "me@example.test", "--to", "tls@example.test"),
    )
    assert code == 0, err
    note, *protocol = err.splitlines()
    assert note == f"== connecting to {postfix.host}:{postfix.smtps_port} (SMTP)"
    assert protocol[0] == "<~ 220 postfix.test ESMTP Postfix (smtp-proto test instance)"
    assert {line[:3] for line in protocol} == {"<~ ", "~> "}
    assert "~> AUTH CRAM-MD5" in protocol


# ---------------------------------------------------------------- SMTP over a Unix socket


@pytest.fixture
def exim_on_a_unix_socket(exim: EximServer, tmp_path: Path) -> Iterator[Path]:
    """A Unix socket where each connection is served by ``exim -bs``: Exim's SMTP server on
    its standard input and output, delivering as the Exim fixture does."""
    path = tmp_path / "smtp.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    sessions: list[subprocess.Popen[bytes]] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with connection:
                argv = [EXIM, "-C", str(exim.scratch / "exim.conf"), "-bs"]
                sessions.append(
                    subprocess.Popen(
                        argv, stdin=connection, stdout=connection, stderr=subprocess.DEVNULL
                    )
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(10)
        for session in sessions:
            assert session.wait(10) == 0


def test_smtp_over_a_unix_socket(
    capsys: pytest.CaptureFixture[str], exim: EximServer, exim_on_a_unix_socket: Path, token: str
) -> None:
    code, out, err = run(
        capsys,
        *("send", "--socket", str(exim_on_a_unix_socket), "-v", "--from", "me@example.test"),
        *("--to", "sock@example.test", "--subject", f"socket {token}"),
    )
    assert code == 0, err
    assert err.splitlines()[:2] == [
        f"== connecting to {exim_on_a_unix_socket} (SMTP)",
        "<- 220 exim.test ESMTP Exim 4.96 (smtp-proto test instance)",
    ]
    assert "-> ehlo smtp-proto.local" in err.splitlines()  # SMTP, not LMTP's LHLO
    assert re.search(r"^queue id  \S+$", out, re.MULTILINE)  # Exim's "OK id=..."
    raw = exim.wait_for_message(lambda m: token.encode() in m)
    assert parse(raw)["Envelope-to"] == "sock@example.test"


# ---------------------------------------------------------------- the transcript


def test_a_large_attachment_in_the_transcript(
    capsys: pytest.CaptureFixture[str],
    postfix: PostfixServer,
    postfix_delivered: Delivered,
    tmp_path: Path,
) -> None:
    """400 KB: one BDAT chunk (a message in memory that goes as it is), its command before its
    data summarised, each reply once, every line short."""
    attachment = tmp_path / "big.bin"
    attachment.write_bytes(bytes(range(256)) * 1600)
    code, _, err = run(
        capsys,
        *clear_text(postfix, "-v", "--from", "me@example.test", "--to", "big@example.test"),
        *("--subject", "big-attachment", "--attach", str(attachment)),
    )
    assert code == 0, err
    lines = err.splitlines()
    assert max(map(len, lines)) < 100
    (chunk,) = [i for i, line in enumerate(lines) if line.startswith("-> BDAT ")]
    size = int(lines[chunk].split()[2])
    assert size > 400_000 and lines[chunk].endswith(" LAST")
    assert lines[chunk + 1] == f"-> ({size} bytes of message data)"
    # The reply, once, after the chunk: then QUIT.
    replies = lines[chunk + 2 :]
    assert re.fullmatch(rf"<- 250 2.0.0 Ok: {size} bytes queued as \w+", replies[0])
    assert replies[1:] == ["-> quit", "<- 221 2.0.0 Bye"]
    (raw,) = postfix_delivered("big-attachment")
    (part,) = parse(raw).iter_attachments()
    assert part.get_content() == attachment.read_bytes()


@pytest.mark.parametrize(
    ("options", "kinds"),
    [
        ([], {"==", "->", "<-"}),
        (["--hide-server"], {"==", "->"}),
        (["--hide-client"], {"==", "<-"}),
        (["--hide-info", "--hide-server"], {"->"}),
    ],
)
def test_hiding_kinds_of_line(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, options: list[str], kinds: set[str]
) -> None:
    code, _, err = run(
        capsys,
        *clear_text(postfix, "-v", *options, "--from", "me@example.test"),
        *("--to", "hide@example.test"),
    )
    assert code == 0, err
    assert {line[:2] for line in err.splitlines()} == kinds


@pytest.mark.parametrize("option", ["--show-data", "--suppress-data"])
def test_showing_or_suppressing_the_data(
    capsys: pytest.CaptureFixture[str], postfix: PostfixServer, option: str
) -> None:
    code, _, err = run(
        capsys,
        *clear_text(postfix, "-v", option, "--no-chunking", "--from", "me@example.test"),
        *("--to", "data@example.test", "--subject", "shown?", "--body", "line one\n.two\n"),
    )
    assert code == 0, err
    lines = err.splitlines()
    go_ahead = next(i for i, line in enumerate(lines) if line.startswith("<- 354"))
    after_354 = lines[go_ahead + 1 :]
    if option == "--show-data":
        body = after_354[: after_354.index("-> .") + 1]
        assert "-> Subject: shown?" in body
        assert body[-4:] == ["-> ", "-> line one", "-> ..two", "-> ."]  # dot-stuffed, as sent
    else:
        assert after_354[0].startswith("<- 250 2.0.0 Ok: queued as ")
