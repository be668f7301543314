"""DSN parameters (RFC 3461): xtext, MAIL/RCPT options, validation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_proto import dsn

XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")


@given(st.text())
def test_xtext_round_trip(text: str) -> None:
    assert dsn.xtext_decode(dsn.xtext_encode(text)) == text


@given(st.text())
def test_xtext_output_is_always_valid_xtext(text: str) -> None:
    encoded = dsn.xtext_encode(text)
    assert XTEXT.fullmatch(encoded), encoded
    assert "=" not in encoded and " " not in encoded
    assert all(33 <= ord(char) <= 126 for char in encoded)


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126)))
def test_xtext_leaves_plain_ascii_alone_but_plus_and_equals(text: str) -> None:
    expected = text.replace("+", "+2B").replace("=", "+3D")
    assert dsn.xtext_encode(text) == expected


def test_xtext_examples() -> None:
    assert dsn.xtext_encode("a+b=c d\r\n") == "a+2Bb+3Dc+20d+0D+0A"
    assert dsn.xtext_encode("é") == "+C3+A9"
    assert dsn.xtext_decode("a+2Bb") == "a+b"


@pytest.mark.parametrize("bad", ["a+", "a+2", "+2b", "a=b", "a b", "+ZZ", "\x7f", "+FF"])
def test_xtext_decode_refuses_what_is_not_xtext(bad: str) -> None:
    with pytest.raises(ValueError):
        dsn.xtext_decode(bad)


@given(st.text(max_size=300))
def test_xtext_decode_never_crashes(text: str) -> None:
    try:
        decoded = dsn.xtext_decode(text)
    except ValueError:
        return
    assert dsn.xtext_encode(decoded) == text


def test_mail_options() -> None:
    assert dsn.mail_options(ret="hdrs", envid="QQ 314159+x") == [
        "RET=HDRS",
        "ENVID=QQ+20314159+2Bx",
    ]
    assert dsn.mail_options() == []
    assert dsn.mail_options(ret="FULL") == ["RET=FULL"]


def test_rcpt_options() -> None:
    options = dsn.rcpt_options(notify=["failure", "SUCCESS", "delay"], orcpt="Bob+x@example.com")
    assert options == ["NOTIFY=SUCCESS,FAILURE,DELAY", "ORCPT=rfc822;Bob+2Bx@example.com"]
    assert dsn.rcpt_options(notify="never") == ["NOTIFY=NEVER"]
    assert dsn.rcpt_options(notify="success, failure") == ["NOTIFY=SUCCESS,FAILURE"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"notify": ["NEVER", "SUCCESS"]},
        {"notify": "never,delay"},
        {"notify": []},
        {"notify": "sometimes"},
        {"orcpt": "caf\u00e9@example.com"},
        {"orcpt": "a@b", "addr_type": "rfc 822"},
        {"orcpt": ""},
        {"orcpt": "x" * 501},
        {"orcpt": "+" * 200},
    ],
)
def test_rcpt_options_refuse_invalid_combinations(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dsn.rcpt_options(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments", [{"ret": "BODY"}, {"envid": ""}, {"envid": "x" * 101}, {"envid": "tab\there"}]
)
def test_mail_options_refuse_invalid_values(arguments: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        dsn.mail_options(**arguments)


def test_typed_request_per_recipient() -> None:
    request = dsn.DSN(
        ret="HDRS",
        envid="env-1",
        notify=("FAILURE",),
        orcpt=True,
        recipients={"b@example.com": dsn.RecipientDSN(notify="SUCCESS", orcpt="old@example.com")},
    )
    assert request.mail_options() == ["RET=HDRS", "ENVID=env-1"]
    assert request.rcpt_options("a@example.com") == [
        "NOTIFY=FAILURE",
        "ORCPT=rfc822;a@example.com",
    ]
    assert request.rcpt_options("b@example.com") == [
        "NOTIFY=SUCCESS",
        "ORCPT=rfc822;old@example.com",
    ]
    assert dsn.DSN().rcpt_options("a@example.com") == []


def test_typed_request_is_validated_when_made() -> None:
    with pytest.raises(ValueError):
        dsn.DSN(notify=("NEVER", "DELAY"))
    with pytest.raises(ValueError):
        dsn.RecipientDSN(notify="always")
    with pytest.raises(ValueError):
        dsn.DSN(ret="ALL")  # type: ignore[arg-type]
