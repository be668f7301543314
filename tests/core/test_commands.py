"""Tests for ``smtp_proto.commands``: exact serialisation, ``quoteaddr`` and injection safety."""

from __future__ import annotations

import base64
import re
import smtplib
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtp_proto.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
    encode_line,
    quoteaddr,
)
from smtp_proto.errors import LocalProtocolError
from tests.offline import MAIL_FROM, RCPT_TO, smtplib_spelling

# --------------------------------------------------------------------------- exact bytes


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Ehlo("x"), b"ehlo x\r\n"),
        (Ehlo("mail.example.org"), b"ehlo mail.example.org\r\n"),
        (Helo("x"), b"helo x\r\n"),
        (Lhlo("x"), b"lhlo x\r\n"),
        (Mail("a@b"), b"mail FROM:<a@b>\r\n"),
        (Mail("a@b", ["size=10"]), b"mail FROM:<a@b> size=10\r\n"),
        (Mail("a@b", ("size=10", "BODY=8BITMIME")), b"mail FROM:<a@b> size=10 BODY=8BITMIME\r\n"),
        (Mail("<>"), b"mail FROM:<>\r\n"),
        (Mail(""), b"mail FROM:<>\r\n"),
        (Mail("Author <a@b>"), b"mail FROM:<a@b>\r\n"),
        (Rcpt("a@b"), b"rcpt TO:<a@b>\r\n"),
        (Rcpt("a@b", ["NOTIFY=NEVER"]), b"rcpt TO:<a@b> NOTIFY=NEVER\r\n"),
        (Rcpt("Someone <a@b>"), b"rcpt TO:<a@b>\r\n"),
        (Data(), b"data\r\n"),
        (Rset(), b"rset\r\n"),
        (Noop(), b"noop\r\n"),
        (Quit(), b"quit\r\n"),
        (Vrfy("a@b"), b"vrfy a@b\r\n"),
        (Vrfy("Someone <a@b>"), b"vrfy a@b\r\n"),
        (Vrfy("dhellmann"), b"vrfy dhellmann\r\n"),
        (Expn("list"), b"expn list\r\n"),
        (Help(), b"help\r\n"),
        (Help("topic"), b"help topic\r\n"),
        (StartTLS(), b"STARTTLS\r\n"),
        (Auth("PLAIN", b"\0user\0pass"), b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        (Auth("CRAM-MD5"), b"AUTH CRAM-MD5\r\n"),
        (Auth("X", b""), b"AUTH X =\r\n"),
        (AuthResponse(b"user"), b"dXNlcg==\r\n"),
        (AuthResponse(b""), b"\r\n"),
        (AuthResponse(b"ignored", cancel=True), b"*\r\n"),
        (Bdat(10), b"BDAT 10\r\n"),
        (Bdat(10, last=True), b"BDAT 10 LAST\r\n"),
        (Bdat(0, True), b"BDAT 0 LAST\r\n"),
        (Raw("XCLIENT"), b"XCLIENT\r\n"),
        (Raw("noop"), b"noop\r\n"),
        (Raw("xcmd", "a b c"), b"xcmd a b c\r\n"),
    ],
)
def test_serialisation(command: Command, expected: bytes) -> None:
    expected = smtplib_spelling(expected)
    assert command.encode() == expected
    assert command.line().encode() + b"\r\n" == expected


@given(st.binary(max_size=200))
def test_auth_initial_response_is_base64(response: bytes) -> None:
    line = Auth("PLAIN", response).encode()
    assert line.startswith(b"AUTH PLAIN ")
    assert line.endswith(b"\r\n")
    encoded = line[len(b"AUTH PLAIN ") : -2]
    if response:
        assert base64.b64decode(encoded, validate=True) == response
    else:
        assert encoded == b"="


@given(st.binary(max_size=200))
def test_auth_response_is_base64(response: bytes) -> None:
    line = AuthResponse(response).encode()
    assert base64.b64decode(line[:-2], validate=True) == response


@given(st.integers(min_value=0, max_value=2**70) | st.booleans(), st.booleans(), st.booleans())
def test_bdat_encodes_as_every_command_does(size: int, last: bool, utf8: bool) -> None:
    """BDAT's quick encoding of an int size (made for every message) is the line encoded the
    general way, checks and all; a size of another type takes the general way."""
    command = Bdat(size, last=last)
    assert command.encode(utf8) == Command.encode(command, utf8)


def test_group_end_marks_commands_that_end_a_pipelined_group() -> None:
    assert not Mail("a@b").group_end
    assert not Rcpt("a@b").group_end
    assert not Rset().group_end
    assert not Bdat(1).group_end
    for command in (Data(), Ehlo("x"), Helo("x"), StartTLS(), Auth("PLAIN"), Quit(), Noop()):
        assert command.group_end, command


# --------------------------------------------------------------------------- quoteaddr

_local = st.text("abcxyzABC0123._+-'", min_size=1, max_size=10)
_domain = st.text("abcdefxyz0123.-", min_size=1, max_size=12)
_simple = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
_display = st.text("Abc xyz.\",'()\\", max_size=12)
_with_name = st.builds(lambda name, addr: f"{name} <{addr}>", _display, _simple)
_blank = st.sampled_from(["", " ", "  ", "\t"])
_null = st.builds(lambda a, b: f"{a}<>{b}", _blank, _blank)
_garbage = st.text(
    st.sampled_from([*'ab@.<>()",;:\\[] \t', "é", "\u00a0"]),
    max_size=20,
)
addresses = st.one_of(
    _simple,
    _with_name,
    _null,
    _garbage,
    st.builds(lambda s, a, b: a + s + b, _simple, _blank, _blank),
)


@given(addresses)
@example("<>")
@example("")
@example(" <>")
@example("<> ")
@example("Someone <a@b.c>")
@example("garbage(")
@example("a@b.c")
def test_quoteaddr_matches_stdlib(address: str) -> None:
    assert quoteaddr(address) == smtplib.quoteaddr(address)


@pytest.mark.parametrize("address", [" <>", "<> ", " <> ", "\t<>"])
def test_null_sender_with_blanks_matches_stdlib(address: str) -> None:
    # smtplib returns an unparseable address that starts with "<" unchanged.
    assert quoteaddr(address) == smtplib.quoteaddr(address)


def test_quoteaddr_examples() -> None:
    assert quoteaddr("<>") == "<>"
    assert quoteaddr("a@b.example") == "<a@b.example>"
    assert quoteaddr("Author <a@b.example>") == "<a@b.example>"
    assert quoteaddr("") == "<>"


# --------------------------------------------------------------------------- encodings


NON_ASCII: list[tuple[str, Callable[[str], Command]]] = [
    ("ehlo", Ehlo),
    ("helo", Helo),
    ("lhlo", Lhlo),
    ("mail", lambda s: Mail(f"{s}@example.org")),
    ("mail-option", lambda s: Mail("a@b", [f"X={s}"])),
    ("rcpt", lambda s: Rcpt(f"{s}@example.org")),
    ("vrfy", Vrfy),
    ("expn", Expn),
    ("help", Help),
    ("raw", lambda s: Raw("xcmd", s)),
]


@pytest.mark.parametrize(("name", "build"), NON_ASCII, ids=[n for n, _ in NON_ASCII])
def test_non_ascii_needs_utf8(name: str, build: Callable[[str], Command]) -> None:
    command = build("j\u00f6rg")
    with pytest.raises(LocalProtocolError):
        command.encode()
    with pytest.raises(ValueError):  # LocalProtocolError is a ValueError, like smtplib's
        command.encode(utf8=False)
    data = command.encode(utf8=True)
    assert "j\u00f6rg".encode() in data
    assert data.endswith(b"\r\n")
    assert data.decode("utf-8") == command.line() + "\r\n"


def test_utf8_mail_exact() -> None:
    assert Mail("j\u00f6rg@example.org", ["SMTPUTF8"]).encode(utf8=True) == (
        MAIL_FROM + b"<j\xc3\xb6rg@example.org> SMTPUTF8\r\n"
    )


# --------------------------------------------------------------------------- injection

CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]

# Every text argument of every command: (label, base value, build(value) -> command).
ARGUMENTS: list[tuple[str, str, Callable[[str], Command]]] = [
    ("raw-verb", "XCMD", lambda s: Raw(s, "arg")),
    ("raw-args", "some args", lambda s: Raw("XCMD", s)),
    ("helo", "client.example", Helo),
    ("ehlo", "client.example", Ehlo),
    ("lhlo", "client.example", Lhlo),
    ("mail-sender", "sender@example.org", Mail),
    ("mail-option-1", "SIZE=10", lambda s: Mail("a@b.example", [s])),
    ("mail-option-2", "BODY=8BITMIME", lambda s: Mail("a@b.example", ["SIZE=10", s])),
    ("rcpt-recipient", "rcpt@example.org", Rcpt),
    ("rcpt-option", "NOTIFY=NEVER", lambda s: Rcpt("a@b.example", [s])),
    ("vrfy", "user@example.org", Vrfy),
    ("expn", "list@example.org", Expn),
    ("help", "topic", Help),
    ("auth-mechanism", "PLAIN", lambda s: Auth(s, b"\0u\0p")),
]


@st.composite
def injected(draw: st.DrawFn) -> tuple[str, Callable[[str], Command], str]:
    label, base, build = draw(st.sampled_from(ARGUMENTS))
    if draw(st.booleans()):
        base = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
    control = draw(st.sampled_from(CONTROLS))
    position = draw(st.integers(0, len(base)))
    return label, build, base[:position] + control + base[position:]


@given(injected())
def test_control_character_in_any_argument_is_refused(
    case: tuple[str, Callable[[str], Command], str],
) -> None:
    label, build, value = case
    command = build(value)
    for utf8 in (False, True):
        with pytest.raises(LocalProtocolError):
            data = command.encode(utf8)
            pytest.fail(f"{label}: {value!r} was encoded as {data!r}")


@pytest.mark.parametrize(
    ("label", "base", "build"), ARGUMENTS, ids=[label for label, _, _ in ARGUMENTS]
)
@pytest.mark.parametrize("control", ["\r", "\n", "\r\n", "\t", "\0"], ids=repr)
def test_crlf_nul_tab_at_end_of_every_argument_refused(
    label: str, base: str, build: Callable[[str], Command], control: str
) -> None:
    command = build(base + control)
    with pytest.raises(LocalProtocolError):
        data = command.encode()
        pytest.fail(f"{label}: {base + control!r} was encoded as {data!r}")


def test_smuggled_command_in_recipient_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Rcpt("victim@example.org>\r\nRCPT TO:<attacker@example.net").encode()


# --------------------------------------------------------------------------- fast paths


def reference_encoding(line: str, utf8: bool) -> bytes:
    """The rule ``encode_line`` implements, spelled out: encode, then refuse any C0 or DEL byte."""
    try:
        data = line.encode("utf-8" if utf8 else "ascii")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError("not encodable") from exc
    if re.search(rb"[\x00-\x1f\x7f]", data):
        raise LocalProtocolError("control character")
    return data + b"\r\n"


def outcome(encode: Callable[[str, bool], bytes], line: str, utf8: bool) -> bytes | None:
    try:
        return encode(line, utf8)
    except LocalProtocolError:
        return None


@given(
    st.one_of(
        st.text(),
        st.text(st.characters(max_codepoint=0x7F)),
        st.text(st.sampled_from(["a", " ", "\x7f", "\x00", "\t", "\r", "\n", "\u00e9", "\x85"])),
    ),
    st.booleans(),
)
@example("mail FROM:<a@b.example> size=10", False)
@example("x\x7f", False)
@example("\u00a0", True)
@example("\x85", True)
def test_encode_line_fast_path_matches_the_rule(line: str, utf8: bool) -> None:
    assert outcome(encode_line, line, utf8) == outcome(reference_encoding, line, utf8)


@pytest.mark.parametrize("command", [Data(), Rset(), Noop(), Quit(), StartTLS()], ids=repr)
@pytest.mark.parametrize("utf8", [False, True])
def test_constant_commands_encode_their_line(command: Command, utf8: bool) -> None:
    assert command.encode(utf8) == encode_line(command.line(), utf8)


@given(addresses | st.text(max_size=30), st.booleans())
@example("a@b.example\r\nRSET", False)
@example("a\x00@b.example", True)
def test_quoted_addresses_are_quoteaddr_after_a_control_check(address: str, utf8: bool) -> None:
    """MAIL/RCPT quote a plain address without parseaddr; it must not change the result."""
    for build, prefix in ((Mail, MAIL_FROM.decode()), (Rcpt, RCPT_TO.decode())):
        command = build(address)
        if re.search(r"[\x00-\x1f\x7f]", address):
            with pytest.raises(LocalProtocolError):
                command.encode(utf8)
        else:
            assert command.line() == prefix + quoteaddr(address)
