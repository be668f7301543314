"""``smtp-proto`` as a tool for people and scripts: help, version, JSON, exit on a closed pipe,
the transcript's form, the message dump, and the session options over every transport; against
the capture server (the real-server tests are in ``test_cli_swaks.py``)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from smtp_proto.transports.cli import EXIT_CODES, main
from smtp_proto.transports.cli.connection import where
from smtp_proto.transports.cli.console import Console
from smtp_proto.transports.cli.envelope import parse_header, with_fields
from smtp_proto.transports.cli.parser import build_parser
from smtp_proto.transports.cli.transcript import Transcript, View
from smtp_proto.transports.testing import CaptureServer

import smtp_proto
from smtp_proto.replies import ReplyParser
from tests.servers.certs import LocalCA

TRANSPORTS = ["blocking", "asyncio", "trio"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def to(server: CaptureServer, *argv: str) -> list[str]:
    """``send`` arguments for the capture server ``server``, in clear text."""
    return ["send", "--server", f"{server.host}:{server.port}", "--tls", "none", *argv]


def kinds(transcript: str) -> list[str]:
    return [line[:2] for line in transcript.splitlines()]


# ---------------------------------------------------------------- help and version


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "``" not in out and ":class:" not in out and "==  ===" not in out
    assert "smtp-proto send    send one message" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"smtp-proto {smtp_proto.__version__}\n", "")


def _command(command: str) -> argparse.ArgumentParser:
    actions = build_parser()._actions
    subparsers = next(a for a in actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = subparsers.choices[command]
    return parser


@pytest.mark.parametrize("command", ["send", "probe"])
def test_every_option_has_help_and_its_default(command: str) -> None:
    parser = _command(command)
    formatter = parser._get_formatter()
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 10
    for action in options:
        assert action.help, action.option_strings
        assert "default" in formatter._get_help_string(action), action.option_strings


def test_defaults_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(run(capsys, "send", "--help")[1].split())
    assert "the library's adapter to send with (default: blocking)" in out
    assert "(default: SMTP_PASSWORD)" in out and "(default: 30.0)" in out


def test_send_help_has_the_exit_codes_and_the_capture_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run(capsys, "send", "--help")[1]
    assert "With no --server (and no --socket), a capture server is started on 127.0.0.1" in (
        " ".join(out.split())
    )
    table = out.split("exit codes:\n")[1]
    listed = [int(code) for code in re.findall(r"^ +(\d+)  ", table, re.MULTILINE)]
    assert listed == [code for code, _ in EXIT_CODES]
    assert len({code for code, _ in EXIT_CODES}) == len(EXIT_CODES)


def test_the_docs_list_the_exit_codes() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text("utf-8")
    for code, meaning in EXIT_CODES:
        assert f"| {code} | {meaning} |" in docs


# ---------------------------------------------------------------- scripts


def test_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """Standard output whose reader is gone (``smtp-proto send | head -1`` once head exits):
    no traceback, the exit code of a program a closed pipe ended."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "smtp_proto", "send"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (141, "")


def test_json_for_the_capture_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send", "--json", "--to", "a@x.test", "--bcc", "b@x.test")
    assert code == 0
    assert err.startswith("No --server given: sending to a capture server on 127.0.0.1:")
    report = json.loads(out)  # stdout is the JSON object alone
    assert report["recipients"] == [
        {
            "address": address,
            "status": "accepted",
            "reply": {"code": 250, "enhanced_status": "2.1.5", "text": "2.1.5 Ok"},
        }
        for address in ("a@x.test", "b@x.test")
    ]
    assert report["final_reply"] == {
        "code": 250,
        "enhanced_status": "2.0.0",
        "text": "2.0.0 Ok: queued as 1",
    }
    assert (report["queue_id"], report["exit_code"], report["error"]) == ("1", 0, None)
    (captured,) = report["captured"]
    assert captured["rcpt_tos"] == ["a@x.test", "b@x.test"]
    assert "b@x.test" not in captured["data"]


def test_json_when_the_send_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer(fail={"MAIL": (451, "4.3.0 Try later")}) as server:
        code, out, err = run(capsys, *to(server, "--json", "--from", "a@x.test", "--to", "b@x"))
    assert code == 75
    report = json.loads(out)
    assert report["exit_code"] == 75
    assert report["error"] == "sender <a@x.test> refused: 451 4.3.0 Try later"
    assert report["recipients"] == [] and report["final_reply"] is None
    assert err == f"smtp-proto: {report['error']}\n"


def test_dump_message_sends_nothing(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with CaptureServer() as server:
        argv = to(server, "--from", "a@x.test", "--to", "b@x.test", "--bcc", "c@x.test")
        code = main([*argv, "--header", "X-Test: 1", "--body", "Hi\n", "--dump-message"])
        assert server.messages == []
    assert code == 0
    dumped = capsysbinary.readouterr().out
    assert dumped.startswith(b"From: a@x.test\r\nTo: b@x.test\r\nSubject: Hello from smtp-proto")
    assert b"\r\nX-Test: 1\r\n" in dumped and b"c@x.test" not in dumped
    assert dumped.endswith(b"\r\n\r\nHi\r\n")


def test_header_on_an_eml_replaces_its_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    eml = tmp_path / "ready.eml"
    eml.write_bytes(b"From: a@x.test\r\nSubject: old\r\n folded\r\nTo: b@x.test\r\n\r\nbody\r\n")
    with CaptureServer() as server:
        assert run(capsys, *to(server, "--eml", str(eml), "--header", "subject: new"))[0] == 0
    (captured,) = server.messages
    assert captured.data == b"subject: new\r\nFrom: a@x.test\r\nTo: b@x.test\r\n\r\nbody\r\n"


_NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                 min_size=1, max_size=12)  # fmt: skip
_VALUES = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=20)


@given(name=_NAMES, value=_VALUES, space=st.booleans())
@example(name="0", value=" ", space=False)
@example(name="X", value=" v ", space=True)
def test_parse_header(name: str, value: str, space: bool) -> None:
    # One space after the colon is dropped: the separating one, else the value's first.
    expected = value if space else value.removeprefix(" ")
    assert parse_header(f"{name}:{' ' if space else ''}{value}") == (name, expected)


@given(text=st.text(max_size=30))
def test_parse_header_refuses_what_is_no_field(text: str) -> None:
    try:
        name, value = parse_header(text)
    except ValueError:
        return
    assert name and ":" not in name and "\r" not in value and "\n" not in value


@given(
    fields=st.lists(st.tuples(st.sampled_from(["A", "B", "Subject"]), _VALUES), max_size=3),
    existing=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "SUBJECT"]), _VALUES), max_size=5),
    body=st.binary(max_size=30),
)
def test_with_fields_replaces_same_names_only(
    fields: list[tuple[str, str]], existing: list[tuple[str, str]], body: bytes
) -> None:
    def block(pairs: list[tuple[str, str]]) -> bytes:
        return b"".join(f"{name}: {value}\r\n".encode() for name, value in pairs)

    replaced = {name.lower() for name, _ in fields}
    kept = [(name, value) for name, value in existing if name.lower() not in replaced]
    message = block(existing) + b"\r\n" + body
    assert with_fields(message, fields) == block(fields) + block(kept) + b"\r\n" + body


# ---------------------------------------------------------------- the transcript


#: Reply lines as a reply holds them: the parser strips the spaces around each (as smtplib).
_REPLY_LINES = st.lists(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),
    min_size=1,
    max_size=5,
)


# 354 is left out: the transcript follows it with the message's summary, a client line.
@given(
    code=st.integers(200, 599).filter(lambda code: code != 354),
    lines=_REPLY_LINES,
    tls=st.booleans(),
)
def test_a_reply_is_shown_line_by_line_as_received(code: int, lines: list[str], tls: bool) -> None:
    """Each line of a reply on a line of its own, behind the server's marker: taking the
    markers away gives the reply the server sent, as the library's parser reads it."""
    stream = io.StringIO()
    transcript = Transcript(Console(stream), b"", View(), tls=tls)
    text = "\n".join(lines).encode()
    with transcript.attached():
        logging.getLogger("smtp_proto").debug("reply: %d %r", code, text)
    shown = stream.getvalue().splitlines()
    assert all(line.startswith("<~ " if tls else "<- ") for line in shown)
    parser = ReplyParser()
    parser.feed("".join(line[3:] + "\r\n" for line in shown).encode())
    reply = parser.next_reply()
    assert reply is not None
    assert (reply.code, reply.lines) == (code, tuple(line.encode() for line in lines))


def test_progress_and_transcript_lines_stay_apart(capsys: pytest.CaptureFixture[str]) -> None:
    body = "x" * 76 + "\n"
    with CaptureServer() as server:
        code, _, err = run(
            capsys,
            *to(server, "--from", "a@x.test", "--to", "b@x.test", "--progress", "-v"),
            *("--body", body * 30_000),
        )
    assert code == 0
    for line in err.split("\n"):
        drawn = line.split("\r")
        # a line is a transcript line, or progress bars drawn over each other
        assert (
            line == ""
            or line[:3] in ("== ", "-> ", "<- ")
            or all(re.fullmatch(r"\[[#.]{30}\] +\d+% [\d.]+/[\d.]+ MiB", bar) for bar in drawn[1:])
        ), line
    assert "] 100% 2.2/2.2 MiB\n" in err


def test_hiding_needs_the_transcript(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send", "--hide-server")
    assert (code, err) == (64, "smtp-proto: --hide-* shape the transcript: add -v\n")


# ---------------------------------------------------------------- session options


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_quit_after_and_no_pipelining_over_each_transport(
    capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    with CaptureServer() as server:
        code, out, err = run(
            capsys,
            *to(server, "--transport", transport, "--no-pipelining", "--quit-after", "rcpt"),
            *("-v", "--from", "a@x.test", "--to", "b@x.test", "--to", "c@x.test"),
        )
    assert code == 0, err
    assert kinds(err)[-8:] == ["->", "<-", "->", "<-", "->", "<-", "->", "<-"]
    assert err.splitlines()[-2:] == ["-> quit", "<- 221 2.0.0 Bye"]
    assert out.splitlines() == [
        "quit after rcpt (--quit-after): no message sent",
        "sender    a@x.test  250 2.1.0 Ok",
        "accepted  b@x.test  250 2.1.5 Ok",
        "accepted  c@x.test  250 2.1.5 Ok",
        "2 of 2 recipients accepted",
    ]
    assert server.messages == []


@pytest.mark.parametrize("stage", ["connect", "ehlo"])
def test_quit_after_a_stage_before_a_requirement_fails(
    capsys: pytest.CaptureFixture[str], stage: str
) -> None:
    """STARTTLS is required and this server lacks it; quitting before that matters is fine."""
    with CaptureServer() as server:
        code, out, err = run(
            capsys,
            *("send", "--server", f"{server.host}:{server.port}", "--quit-after", stage, "-v"),
            *("--from", "a@x.test", "--to", "b@x.test"),
        )
    assert code == 0, err
    assert out == f"quit after {stage} (--quit-after): no message sent\n"
    sent = [line for line in err.splitlines() if line.startswith("-> ")]
    assert sent == [*(["-> ehlo smtp-proto.local"] if stage == "ehlo" else []), "-> quit"]


def test_quit_after_a_refused_sender(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer(fail={"MAIL": (550, "5.7.1 Not you")}) as server:
        code, out, _ = run(
            capsys, *to(server, "--quit-after", "rcpt", "--from", "a@x.test", "--to", "b@x")
        )
    assert code == 2
    assert out.splitlines() == [
        "quit after rcpt (--quit-after): no message sent",
        "sender    a@x.test  550 5.7.1 Not you",
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_smtp_over_a_unix_socket_over_each_transport(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, transport: str
) -> None:
    with CaptureServer(unix_path=tmp_path / "smtp.sock") as server:
        code, out, err = run(
            capsys,
            *("send", "--socket", server.host, "--transport", transport, "-v"),
            *("--from", "a@x.test", "--to", "b@x.test"),
        )
    assert code == 0, err
    assert "-> ehlo smtp-proto.local" in err.splitlines()
    assert out.startswith("accepted  b@x.test\n")
    assert [m.rcpt_tos for m in server.messages] == [["b@x.test"]]


def test_opportunistic_tls_without_starttls_goes_in_clear(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with CaptureServer() as server:
        code, _, err = run(
            capsys,
            *("send", "--server", f"{server.host}:{server.port}", "--tls", "opportunistic"),
            *("-v", "--from", "a@x.test", "--to", "b@x.test"),
        )
    assert code == 0, err
    assert "== TLS started" not in err and server.messages[0].tls is False


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_auth_mechanism_with_the_capture_server(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tls_ca: LocalCA,
    mechanism: str,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    with CaptureServer(tls_context=tls_ca.server_context(), credentials={"ann": "pw"}) as server:
        code, _, err = run(
            capsys,
            *("send", "--server", f"{server.host}:{server.port}", "--cafile", str(tls_ca.cafile)),
            *("--user", "ann", "--auth", mechanism, "-v", "--from", "a@x.test", "--to", "b@x"),
        )
    assert code == 0, err
    assert f"~> AUTH {mechanism}" in " ".join(err.splitlines())
    assert server.messages[0].auth_user == "ann"


# ---------------------------------------------------------------- where, and usage


@given(address=st.ip_addresses(v=6).map(str), port=st.integers(1, 65535))
def test_ipv6_addresses_are_written_in_brackets(address: str, port: int) -> None:
    assert where(address, port) == f"[{address}]:{port}"


def test_probe_names_an_ipv6_server_in_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    with CaptureServer() as server:
        port = server.port  # closed once the server stops: nothing answers on [::1] either
    code, out, _ = run(capsys, "probe", "--server", f"[::1]:{port}", "--json", "--timeout", "5")
    assert code == 5
    assert json.loads(out)["server"] == f"[::1]:{port}"


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "--auth", "PLAIN"],  # no --user
        ["send", "--socket", "/tmp/x", "--server", "h", "--from", "a@x", "--to", "b@x"],
        ["send", "--socket", "/tmp/x", "--tls", "starttls", "--from", "a@x", "--to", "b@x"],
        ["send", "--socket", "/tmp/x", "--port", "25", "--from", "a@x", "--to", "b@x"],
        ["send", "--server", "h:25", "--port", "26", "--from", "a@x", "--to", "b@x"],
        ["send", "--server", "/run/lmtp", "--port", "26", "--from", "a@x", "--to", "b@x"],
        ["send", "--port", "0"],
        ["send", "--header", "No colon"],
        ["send", "--header", "Bad name: x"],
        ["send", "--quit-after", "data"],
        ["send", "--show-data", "--suppress-data"],
    ],
)
def test_more_usage_errors_exit_64(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (64, "")
    assert err


def test_a_message_in_several_chunks_is_summed_up_at_its_last() -> None:
    """Each BDAT chunk's data is summarised after its command; the last one also gives the
    whole message's size and how many chunks carried it."""
    message = b"a" * 5 + b"b" * 7 + b"c" * 3
    stream = io.StringIO()
    transcript = Transcript(Console(stream), message, View(), tls=False)
    log = logging.getLogger("smtp_proto")
    with transcript.attached():
        log.debug("send: %r", "BDAT 5")
        log.debug("send: %r", "BDAT 7")
        log.debug("send: %r", "BDAT 3 LAST")
    assert stream.getvalue().splitlines() == [
        "-> BDAT 5",
        "-> (5 bytes of message data)",
        "-> BDAT 7",
        "-> (7 bytes of message data)",
        "-> BDAT 3 LAST",
        "-> (3 bytes of message data; message: 15 bytes in 3 chunks)",
    ]
