"""Tests for ``smtp_proto.extensions``: ``parse_ehlo`` against the real stdlib ``smtplib``."""

from __future__ import annotations

import io
import smtplib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtp_proto.extensions import Extensions, parse_ehlo
from smtp_proto.replies import ReplyParser


class _DiscardingSocket:
    """Enough of a socket for ``smtplib.SMTP.send``: accepts and records every write."""

    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data


def stdlib_features(reply: bytes) -> tuple[tuple[int, bytes], dict[str, str]]:
    """What the real ``smtplib.SMTP.ehlo`` returns and stores for this EHLO reply."""
    smtp = smtplib.SMTP(local_hostname="x")  # no host: nothing is connected
    sock = _DiscardingSocket()
    smtp.sock = sock  # type: ignore[assignment]
    smtp.file = io.BytesIO(reply)  # type: ignore[assignment]
    result = smtp.ehlo("x")
    assert sock.sent == b"ehlo x\r\n"
    return result, smtp.esmtp_features


def core_features(reply: bytes) -> tuple[tuple[int, bytes], dict[str, str]]:
    parser = ReplyParser()
    parser.feed(reply)
    parsed = parser.next_reply()
    assert parsed is not None
    assert parser.next_reply() is None
    return parsed.as_tuple(), parse_ehlo(parsed.text)


def ehlo_reply(lines: list[str]) -> bytes:
    out = []
    for index, line in enumerate(lines):
        separator = " " if index == len(lines) - 1 else "-"
        out.append(f"250{separator}{line}\r\n".encode("latin-1"))
    return b"".join(out)


# --------------------------------------------------------------------------- examples

POSTFIX = [
    "mail.example.org",
    "PIPELINING",
    "SIZE 10240000",
    "VRFY",
    "ETRN",
    "STARTTLS",
    "AUTH PLAIN LOGIN",
    "AUTH=PLAIN LOGIN",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
]


def test_postfix_like_reply() -> None:
    features = parse_ehlo(core_features(ehlo_reply(POSTFIX))[0][1])
    assert features == {
        "pipelining": "",
        "size": "10240000",
        "vrfy": "",
        "etrn": "",
        "starttls": "",
        "auth": " PLAIN LOGIN PLAIN LOGIN",
        "enhancedstatuscodes": "",
        "8bitmime": "",
        "dsn": "",
        "smtputf8": "",
        "chunking": "",
    }
    assert features == stdlib_features(ehlo_reply(POSTFIX))[1]


def test_first_line_is_the_server_name_not_a_keyword() -> None:
    assert parse_ehlo(b"PIPELINING\nSIZE 5") == {"size": "5"}


def test_keywords_lowercased_parameters_kept() -> None:
    assert parse_ehlo(b"host\nX-Thing Arg1 ARG2\nsize  42 ") == {
        "x-thing": "Arg1 ARG2",
        "size": "42",
    }


def test_lines_that_are_not_keywords_are_skipped() -> None:
    assert parse_ehlo(b"host\n-bad\n\n pipelining\nOK") == {"ok": ""}


def test_old_style_auth_only() -> None:
    assert parse_ehlo(b"host\nAUTH=LOGIN") == {"auth": " LOGIN"}


def test_auth_lines_accumulate_in_order() -> None:
    assert parse_ehlo(b"host\nAUTH=LOGIN\nAUTH PLAIN\nauth cram-md5") == {
        "auth": " LOGIN PLAIN cram-md5"
    }


# --------------------------------------------------------------------------- stdlib equivalence

_keyword = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", max_size=12)
_params = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
)
_extension_line = st.one_of(
    st.builds(lambda k, p: f"{k} {p}", _keyword, _params),
    st.builds(lambda k: k, _keyword),
    st.builds(lambda p: f"AUTH {p}", _params),
    st.builds(lambda p: f"AUTH={p}", _params),
    st.builds(lambda p: f"auth={p}", _params),
    st.builds(
        lambda c, p: f"{c}{p}", st.sampled_from(["Auth", "AUTH", "auth", "AUTH=", "SIZE"]), _params
    ),
    st.sampled_from(
        ["PIPELINING", "SIZE", "SIZE 0", "SIZE 35882577", "8BITMIME", "STARTTLS", "SMTPUTF8"]
    ),
    _params,
)
_server_name = st.text("abcdefghijklmnopqrstuvwxyz.-0123456789 ", max_size=30)


@given(_server_name, st.lists(_extension_line, max_size=12))
@example("host", ["AUTH=LOGIN", "AUTH PLAIN", "AUTH=CRAM-MD5 LOGIN", "AUTH GSSAPI"])
@example("host", ["AUTH PLAIN", "AUTH PLAIN"])
@example("host", ["SIZE 1", "SIZE 2", "size 3"])
@example("host", ["AUTH", "AUTH=", "authx"])
@example("host", ["\tSIZE 5 \t", " AUTH=\tX"])
def test_parse_ehlo_equals_stdlib(server_name: str, extension_lines: list[str]) -> None:
    reply = ehlo_reply([server_name, *extension_lines])
    stdlib_result, stdlib_dict = stdlib_features(reply)
    core_result, core_dict = core_features(reply)
    assert core_result == stdlib_result
    assert core_dict == stdlib_dict


def test_non_250_ehlo_leaves_stdlib_features_empty() -> None:
    # smtplib only parses a 250 reply; the core's parse_ehlo is only called for one too.
    result, features = stdlib_features(b"502 no\r\n")
    assert result == (502, b"no")
    assert features == {}


# --------------------------------------------------------------------------- typed view


def test_no_extensions() -> None:
    ext = Extensions.from_features({})
    assert ext.size is None
    assert ext.auth == frozenset()
    assert not any(
        [
            ext.pipelining,
            ext.chunking,
            ext.binarymime,
            ext.smtputf8,
            ext.eightbitmime,
            ext.dsn,
            ext.enhancedstatuscodes,
            ext.starttls,
        ]
    )


def test_all_flags() -> None:
    ext = Extensions.from_features(parse_ehlo(core_features(ehlo_reply(POSTFIX))[0][1]))
    assert ext.size == 10240000
    assert ext.auth == frozenset({"PLAIN", "LOGIN"})
    assert ext.pipelining
    assert ext.chunking
    assert ext.smtputf8
    assert ext.eightbitmime
    assert ext.dsn
    assert ext.enhancedstatuscodes
    assert ext.starttls
    assert not ext.binarymime


def test_binarymime_flag() -> None:
    assert Extensions.from_features({"binarymime": ""}).binarymime


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("35882577", 35882577),
        ("0", 0),
        ("", 0),
        ("  ", 0),
        (" 1000 ", 1000),
        ("abc", None),
        ("10 20", None),
        ("-5", None),
        ("1e6", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits are not an SMTP number
    ],
)
def test_size_parsing(param: str, expected: int | None) -> None:
    assert Extensions.from_features({"size": param}).size == expected


def test_auth_set_is_upper_case_and_merged() -> None:
    features = parse_ehlo(b"host\nAUTH=login\nAUTH plain CRAM-md5\nAUTH LOGIN")
    assert Extensions.from_features(features).auth == frozenset({"LOGIN", "PLAIN", "CRAM-MD5"})


@given(st.dictionaries(_keyword.map(str.lower), _params, max_size=10))
def test_flags_follow_the_features_dict(features: dict[str, str]) -> None:
    ext = Extensions.from_features(features)
    assert ext.pipelining == ("pipelining" in features)
    assert ext.chunking == ("chunking" in features)
    assert ext.eightbitmime == ("8bitmime" in features)
    assert ext.smtputf8 == ("smtputf8" in features)
    assert ext.starttls == ("starttls" in features)
    assert ext.dsn == ("dsn" in features)
    assert ext.enhancedstatuscodes == ("enhancedstatuscodes" in features)
    if "size" not in features:
        assert ext.size is None
    elif ext.size is not None:
        # Whatever it accepted is the advertised number (or 0 for "no limit stated").
        assert ext.size == (int(features["size"]) if features["size"].strip() else 0)
        assert ext.size >= 0
