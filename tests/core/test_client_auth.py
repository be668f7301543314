"""``Client.login`` and ``auth`` driven offline (``tests/offline.py``): the mechanisms in
smtplib's order of preference, fallbacks, the authobjects, and a STARTTLS + CRAM-MD5 session."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from smtp_proto import (
    RECEIVE,
    SMTPException,
)
from tests.offline import (
    BODY,
    DATA,
    EHLO_LINE,
    EHLO_SIMPLE,
    GO,
    MESSAGE,
    OK,
    RCPT_A,
    TLS,
    C,
    Outcome,
    Peer,
    S,
    Step,
    connected,
    lines,
    play,
    same_as_stdlib,
)


def ehlo_auth(mechanisms: str) -> list[Step]:
    return [EHLO_LINE, S(f"250-server.example\r\n250 AUTH {mechanisms}\r\n".encode())]


def b64(data: str | bytes) -> bytes:
    return base64.b64encode(data.encode() if isinstance(data, str) else data)


CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"  # RFC 2195's example


def cram_md5_response(user: str, password: str) -> bytes:
    digest = hmac.new(password.encode(), CHALLENGE, hashlib.md5).hexdigest()
    return b64(f"{user} {digest}") + b"\r\n"


def test_cram_md5_rfc_2195_example() -> None:
    # RFC 2195: user tim, password tanstaaftanstaaf -> "tim b913a602c7eda7a495b4e6e7334d3890".
    assert base64.b64decode(cram_md5_response("tim", "tanstaaftanstaaf")) == (
        b"tim b913a602c7eda7a495b4e6e7334d3890"
    )


def test_login_prefers_cram_md5() -> None:
    script = [
        *ehlo_auth("LOGIN PLAIN CRAM-MD5"),
        C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(CHALLENGE) + b"\r\n"),
        C(cram_md5_response("tim", "tanstaaftanstaaf")), S(b"235 2.7.0 ok\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("tim", "tanstaaftanstaaf"))
    assert got == Outcome(value=(235, b"2.7.0 ok"))


def test_login_prefers_plain_over_login() -> None:
    script = [
        *ehlo_auth("LOGIN PLAIN"),
        C(b"AUTH PLAIN " + b64("\0user\0pass") + b"\r\n"),
        S(b"235 ok\r\n"),
    ]
    assert same_as_stdlib(script, lambda s: s.login("user", "pass")) == Outcome(value=(235, b"ok"))


def test_login_falls_back_after_535() -> None:
    script = [
        *ehlo_auth("CRAM-MD5 PLAIN LOGIN"),
        C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(CHALLENGE) + b"\r\n"),
        C(cram_md5_response("user", "pass")), S(b"535 5.7.8 no cram\r\n"),
        C(b"AUTH PLAIN " + b64("\0user\0pass") + b"\r\n"), S(b"535 5.7.8 no plain\r\n"),
        C(b"AUTH LOGIN " + b64("user") + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
        C(b64("pass") + b"\r\n"), S(b"235 2.7.0 finally\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("user", "pass"))
    assert got == Outcome(value=(235, b"2.7.0 finally"))


def test_login_without_initial_responses() -> None:
    script = [
        *ehlo_auth("PLAIN LOGIN"),
        C(b"AUTH PLAIN\r\n"), S(b"334 \r\n"), C(b64("\0user\0pass") + b"\r\n"),
        S(b"535 5.7.8 no plain\r\n"),
        C(b"AUTH LOGIN\r\n"), S(b"334 VXNlcm5hbWU6\r\n"), C(b64("user") + b"\r\n"),
        S(b"334 UGFzc3dvcmQ6\r\n"), C(b64("pass") + b"\r\n"), S(b"235 2.7.0 ok\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("user", "pass", initial_response_ok=False))
    assert got == Outcome(value=(235, b"2.7.0 ok"))


def test_login_every_mechanism_fails_raises_the_last_error() -> None:
    script = [
        *ehlo_auth("PLAIN LOGIN"),
        C(b"AUTH PLAIN " + b64("\0user\0pass") + b"\r\n"), S(b"535 5.7.8 no plain\r\n"),
        C(b"AUTH LOGIN " + b64("user") + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
        C(b64("pass") + b"\r\n"), S(b"535 5.7.8 no login\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.login("user", "pass"))
    assert got == Outcome(error="SMTPAuthenticationError", args=(535, b"5.7.8 no login"))


def test_login_plain_only_refused() -> None:
    script = [
        *ehlo_auth("PLAIN"),
        C(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n"),
        S(b"535 5.7.8 bad\r\n"),
    ]
    got = same_as_stdlib(script, lambda s: s.login("u", "p"))
    assert got == Outcome(error="SMTPAuthenticationError", args=(535, b"5.7.8 bad"))


def test_login_503_already_authenticated() -> None:
    script = [
        *ehlo_auth("PLAIN"),
        C(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n"),
        S(b"503 5.5.1 already\r\n"),
    ]
    assert same_as_stdlib(script, lambda s: s.login("u", "p")) == Outcome(
        value=(503, b"5.5.1 already")
    )


def test_login_without_auth_extension() -> None:
    got = same_as_stdlib([EHLO_LINE, EHLO_SIMPLE], lambda s: s.login("u", "p"))
    assert got == Outcome(
        error="SMTPNotSupportedError", args=("SMTP AUTH extension not supported by server.",)
    )


def test_login_without_a_suitable_mechanism() -> None:
    got = same_as_stdlib(ehlo_auth("GSSAPI NTLM"), lambda s: s.login("u", "p"))
    assert got == Outcome(error="SMTPException", args=("No suitable authentication method found.",))


def test_login_plain_non_ascii_password_is_utf8() -> None:
    password = "p\u00e4ssw\u00f6rd\u20ac"
    script = [
        *ehlo_auth("PLAIN"),
        C(b"AUTH PLAIN " + b64("\0j\u00fcrgen\0".encode() + password.encode("utf-8")) + b"\r\n"),
        S(b"235 ok\r\n"),
    ]
    result, _ = play(connected(), script, lambda c: c.login("j\u00fcrgen", password))
    assert result == Outcome(value=(235, b"ok"))


def test_login_login_non_ascii_password_is_utf8() -> None:
    password = "p\u00e4ssw\u00f6rd\u20ac"
    script = [
        *ehlo_auth("LOGIN"),
        C(b"AUTH LOGIN " + b64("j\u00fcrgen") + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
        C(b64(password.encode("utf-8")) + b"\r\n"), S(b"235 ok\r\n"),
    ]  # fmt: skip
    result, _ = play(connected(), script, lambda c: c.login("j\u00fcrgen", password))
    assert result == Outcome(value=(235, b"ok"))


def test_auth_with_an_smtplib_style_authobject() -> None:
    def authobject(challenge: bytes | None = None) -> str:
        return "first" if challenge is None else "answer to " + challenge.decode()

    script = [
        *lines(f"AUTH XTEST {b64('first').decode()}"), S(b"334 " + b64("question") + b"\r\n"),
        C(b64("answer to question") + b"\r\n"), S(b"235 2.7.0 ok\r\n"),
    ]  # fmt: skip
    got = same_as_stdlib(script, lambda s: s.auth("xtest", authobject))
    assert got == Outcome(value=(235, b"2.7.0 ok"))


def test_auth_authobject_without_initial_response() -> None:
    seen: list[bytes | None] = []

    def authobject(challenge: bytes | None = None) -> str:
        seen.append(challenge)
        return "resp"

    script = [
        *lines("AUTH XTEST"),
        S(b"334 " + b64("chal") + b"\r\n"),
        C(b64("resp") + b"\r\n"),
        S(b"235 ok\r\n"),
    ]
    got = same_as_stdlib(script, lambda s: s.auth("XTEST", authobject, initial_response_ok=False))
    assert got == Outcome(value=(235, b"ok"))
    assert seen == [b"chal", b"chal"]  # once for smtplib, once for the client


@pytest.mark.parametrize(
    ("mechanism", "script"),
    [
        ("PLAIN", [C(b"AUTH PLAIN " + b64("\0u\0p") + b"\r\n"), S(b"235 ok\r\n")]),
        (
            "LOGIN",
            [
                C(b"AUTH LOGIN " + b64("u") + b"\r\n"),
                S(b"334 UGFzc3dvcmQ6\r\n"),
                C(b64("p") + b"\r\n"),
                S(b"235 ok\r\n"),
            ],
        ),
        (
            "CRAM-MD5",
            [
                C(b"AUTH CRAM-MD5\r\n"),
                S(b"334 " + b64(CHALLENGE) + b"\r\n"),
                C(cram_md5_response("u", "p")),
                S(b"235 ok\r\n"),
            ],
        ),
    ],
)
def test_auth_with_the_builtin_authobjects(mechanism: str, script: list[Step]) -> None:
    def action(s: Any) -> Any:
        s.user, s.password = "u", "p"
        method = getattr(s, "auth_" + mechanism.lower().replace("-", "_"))
        return s.auth(mechanism, method)

    assert same_as_stdlib(script, action) == Outcome(value=(235, b"ok"))


def test_auth_334_loop_is_capped() -> None:
    client = connected()
    operation = client.auth("XLOOP", lambda challenge=None: "again")
    sent: list[bytes] = []
    result: Any = None
    with pytest.raises(SMTPException) as caught:
        for _ in range(100):
            request = operation.send(result)
            result = None
            if isinstance(request, bytes | memoryview):
                sent.append(bytes(request))
            elif request is RECEIVE:
                result = b"334 " + b64("more") + b"\r\n"
        pytest.fail("the client never gave up")
    assert "infinite loop" in str(caught.value)
    assert type(caught.value) is SMTPException  # like smtplib: not an authentication error
    responses = [line for line in sent if not line.startswith(b"AUTH")]
    # smtplib gives up after at most 6 responses; so must the client.
    assert 1 <= len(responses) <= 6


def test_auth_refused_mechanism_name() -> None:
    client = connected()
    with pytest.raises(ValueError):
        Peer([]).run(client.auth("BAD NAME\r\nRSET", lambda challenge=None: "x"))


def test_starttls_cram_md5_sendmail_session() -> None:
    # Not a PyMOTW transcript: the STARTTLS + CRAM-MD5 path its example takes when offered.
    client = connected()
    script = [
        EHLO_LINE, S(b"250-server.example\r\n250-STARTTLS\r\n250 SIZE 1000\r\n"),
        C(b"STARTTLS\r\n"), S(b"220 2.0.0 ready\r\n"), TLS,
        EHLO_LINE, S(b"250-server.example\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 SIZE 1000\r\n"),
        C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(CHALLENGE) + b"\r\n"),
        C(cram_md5_response("tim", "tanstaaftanstaaf")), S(b"235 2.7.0 ok\r\n"),
        C(b"mail FROM:<s@example.org> size=%d\r\n" % len(MESSAGE)), OK, RCPT_A, OK,
        DATA, GO, BODY, OK, *lines("quit"), S(b"221 bye\r\n"),
    ]  # fmt: skip
    peer = Peer(script)
    peer.run(client.ehlo())
    assert client.has_extn("starttls")
    peer.run(client.starttls())
    peer.run(client.ehlo())
    assert not client.has_extn("starttls")
    assert peer.run(client.login("tim", "tanstaaftanstaaf")) == (235, b"2.7.0 ok")
    assert peer.run(client.sendmail("s@example.org", ["a@example.org"], MESSAGE)) == {}
    peer.run(client.quit())
    peer.expect_finished()
    assert peer.closed
