"""Tests for smtp_proto.sasl: known-answer vectors from the RFCs and hypothesis properties."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smtp_proto.errors import LocalProtocolError, SMTPException
from smtp_proto.sasl import (
    PASSWORD_MECHANISMS,
    AuthObject,
    CramMD5,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    SASLError,
    ScramSHA256,
    XOAuth2,
    mechanism_for,
    saslprep,
)

# RFC 7677 section 3 test vector.
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

# Text that UTF-8 can encode (no lone surrogates).
utf8_text = st.text(alphabet=st.characters(codec="utf-8"))
no_nul_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"))
oauth_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0\x01"))
token_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x01"), min_size=1)


def unescape_saslname(name: str) -> str:
    """Reverse RFC 5801 saslname escaping, refusing any '=' that is not =2C or =3D."""
    out = []
    i = 0
    while i < len(name):
        if name[i] == "=":
            code = name[i : i + 3]
            assert code in ("=2C", "=3D"), f"bad escape in {name!r}"
            out.append("," if code == "=2C" else "=")
            i += 3
        else:
            assert name[i] != ",", "unescaped comma"
            out.append(name[i])
            i += 1
    return "".join(out)


def scram_rfc7677() -> ScramSHA256:
    """A SCRAM mechanism that has answered the RFC 7677 server-first-message."""
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    assert mech.respond(SERVER_FIRST) == CLIENT_FINAL
    return mech


# ------------------------------------------------------------------------------------------
# The exception and the registry


def test_sasl_error_is_an_smtp_exception() -> None:
    assert issubclass(SASLError, SMTPException)


def test_password_mechanisms_follow_smtplib_order() -> None:
    assert PASSWORD_MECHANISMS == ("CRAM-MD5", "PLAIN", "LOGIN")
    assert "SCRAM-SHA-256" not in PASSWORD_MECHANISMS


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("PLAIN", Plain),
        ("login", Login),
        ("Cram-MD5", CramMD5),
        ("SCRAM-SHA-256", ScramSHA256),
    ],
)
def test_mechanism_for_builds_fresh_objects(name: str, cls: type[Mechanism]) -> None:
    first = mechanism_for(name, "user", "pencil")
    second = mechanism_for(name, "user", "pencil")
    assert isinstance(first, cls)
    assert first is not second
    assert first.name == name.upper()


@pytest.mark.parametrize("name", ["XOAUTH2", "OAUTHBEARER", "GSSAPI", ""])
def test_mechanism_for_refuses_others(name: str) -> None:
    with pytest.raises(KeyError):
        mechanism_for(name, "user", "pencil")


# ------------------------------------------------------------------------------------------
# PLAIN


def test_plain_known_answer() -> None:
    mech = Plain("tim", "tanstaaftanstaaf")
    assert mech.name == "PLAIN"
    response = mech.initial_response()
    assert response == b"\0tim\0tanstaaftanstaaf"
    assert base64.b64encode(response) == b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"


def test_plain_with_authzid() -> None:
    assert Plain("tim", "secret", authzid="admin").initial_response() == b"admin\0tim\0secret"


def test_plain_answers_empty_334_when_no_initial_response_was_sent() -> None:
    mech = Plain("tim", "secret")
    assert mech.respond(b"") == b"\0tim\0secret"
    with pytest.raises(SASLError):
        mech.respond(b"")


def test_plain_refuses_a_challenge_after_the_initial_response() -> None:
    mech = Plain("tim", "secret")
    assert mech.initial_response() == b"\0tim\0secret"
    with pytest.raises(SASLError):
        mech.respond(b"")


@pytest.mark.parametrize(
    ("user", "password", "authzid"), [("t\0m", "p", ""), ("tim", "p\0", ""), ("tim", "p", "\0")]
)
def test_plain_refuses_nul(user: str, password: str, authzid: str) -> None:
    with pytest.raises(SASLError):
        Plain(user, password, authzid)


def test_plain_refuses_lone_surrogates() -> None:
    with pytest.raises(SASLError):
        Plain("tim", "\udc80")


@given(user=no_nul_text, password=no_nul_text, authzid=no_nul_text)
def test_plain_round_trips_utf8(user: str, password: str, authzid: str) -> None:
    response = Plain(user, password, authzid).initial_response()
    decoded = base64.b64decode(base64.b64encode(response))
    assert decoded.split(b"\0") == [
        authzid.encode("utf-8"),
        user.encode("utf-8"),
        password.encode("utf-8"),
    ]


# ------------------------------------------------------------------------------------------
# LOGIN


def test_login_known_answer() -> None:
    mech = Login("tim", "tanstaaftanstaaf")
    assert mech.name == "LOGIN"
    assert base64.b64encode(mech.respond(b"Username:")) == b"dGlt"
    assert base64.b64encode(mech.respond(b"Password:")) == b"dGFuc3RhYWZ0YW5zdGFhZg=="
    with pytest.raises(SASLError):
        mech.respond(b"Password:")


def test_login_user_name_as_initial_response_like_smtplib() -> None:
    mech = Login("tim", "tanstaaftanstaaf")
    assert base64.b64encode(mech.initial_response() or b"") == b"dGlt"
    assert base64.b64encode(mech.respond(b"Password:")) == b"dGFuc3RhYWZ0YW5zdGFhZg=="
    with pytest.raises(SASLError):
        mech.respond(b"Password:")


def test_login_ignores_prompt_text_and_uses_utf8() -> None:
    mech = Login("jörg", "pässwörd")
    assert mech.respond(b"whatever") == "jörg".encode()
    assert mech.respond(b"") == "pässwörd".encode()


# ------------------------------------------------------------------------------------------
# CRAM-MD5


def test_cram_md5_rfc2195_example() -> None:
    mech = CramMD5("tim", "tanstaaftanstaaf")
    assert mech.name == "CRAM-MD5"
    assert mech.initial_response() is None
    response = mech.respond(b"<1896.697170952@postoffice.reston.mci.net>")
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert base64.b64encode(response) == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
    with pytest.raises(SASLError):
        mech.respond(b"<again@example>")


def test_cram_md5_refuses_empty_challenge() -> None:
    with pytest.raises(SASLError):
        CramMD5("tim", "secret").respond(b"")


def test_cram_md5_keys_with_utf8_password() -> None:
    challenge = b"<1.2@example.org>"
    expected = hmac.new("pässwörd".encode(), challenge, hashlib.md5).hexdigest()
    assert CramMD5("tim", "pässwörd").respond(challenge) == b"tim " + expected.encode()


# ------------------------------------------------------------------------------------------
# XOAUTH2


def test_xoauth2_known_answer() -> None:
    mech = XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert mech.name == "XOAUTH2"
    assert mech.initial_response() == (
        b"user=someuser@example.com\x01auth=Bearer "
        b"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )


def test_xoauth2_error_challenge_gets_empty_answer() -> None:
    mech = XOAuth2("u@example.com", "tok")
    mech.initial_response()
    error = json.dumps({"status": "400", "schemes": "Bearer", "scope": "https://mail"}).encode()
    assert mech.respond(error) == b""
    assert mech.server_error == error
    with pytest.raises(SASLError):
        mech.respond(error)


def test_xoauth2_token_provider_called_once_and_late() -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return "fresh"

    mech = XOAuth2("u", provider)
    assert calls == []
    first = mech.initial_response()
    assert mech.initial_response() == first
    assert first == b"user=u\x01auth=Bearer fresh\x01\x01"
    assert calls == [1]


def test_xoauth2_refuses_separator_in_fields() -> None:
    with pytest.raises(SASLError):
        XOAuth2("u\x01", "tok")
    with pytest.raises(SASLError):
        XOAuth2("u", "to\x01k").initial_response()


@given(user=oauth_text, token=token_text)
def test_xoauth2_structure(user: str, token: str) -> None:
    response = XOAuth2(user, token).initial_response()
    assert response.endswith(b"\x01\x01")
    fields = response[:-2].split(b"\x01")
    assert fields == [b"user=" + user.encode(), b"auth=Bearer " + token.encode()]


# ------------------------------------------------------------------------------------------
# OAUTHBEARER


def test_oauthbearer_rfc7628_example() -> None:
    mech = OAuthBearer(
        "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143
    )
    assert mech.name == "OAUTHBEARER"
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_without_host_port_or_user() -> None:
    assert OAuthBearer("", "tok").initial_response() == b"n,,\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_error_challenge_gets_kvsep() -> None:
    mech = OAuthBearer("u", lambda: "tok")
    mech.initial_response()
    error = b'{"status":"invalid_token"}'
    assert mech.respond(error) == b"\x01"
    assert mech.server_error == error
    with pytest.raises(SASLError):
        mech.respond(error)


@pytest.mark.parametrize("port", [-1, 65536])
def test_oauthbearer_refuses_bad_port(port: int) -> None:
    with pytest.raises(SASLError):
        OAuthBearer("u", "tok", "host", port)


def test_oauthbearer_refuses_separator_in_user() -> None:
    with pytest.raises(SASLError):
        OAuthBearer("u\x01", "tok")


@given(
    user=oauth_text,
    token=token_text,
    host=st.none() | st.from_regex(r"[a-z0-9.-]{1,30}", fullmatch=True),
    port=st.none() | st.integers(0, 65535),
)
def test_oauthbearer_structure_and_escaping(
    user: str, token: str, host: str | None, port: int | None
) -> None:
    response = OAuthBearer(user, token, host, port).initial_response()
    assert response.endswith(b"\x01\x01")
    gs2, *pairs = response[:-2].split(b"\x01")
    assert gs2.startswith(b"n,") and gs2.endswith(b",")
    authzid = gs2[2:-1].decode("utf-8")
    if user:
        assert authzid.startswith("a=")
        assert unescape_saslname(authzid[2:]) == user
    else:
        assert authzid == ""
    expected = []
    if host is not None:
        expected.append(b"host=" + host.encode())
    if port is not None:
        expected.append(b"port=%d" % port)
    expected.append(b"auth=Bearer " + token.encode())
    assert pairs == expected


# ------------------------------------------------------------------------------------------
# SASLprep (RFC 4013 section 3 examples)


@pytest.mark.parametrize(
    ("text", "prepared"),
    [("I\u00adX", "IX"), ("user", "user"), ("USER", "USER"), ("\u00aa", "a"), ("\u2168", "IX")],
)
def test_saslprep_rfc4013_examples(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize("text", ["\u0007", "\u0627\u0031", "", "\u00ad", "a\udc80"])
def test_saslprep_refuses(text: str) -> None:
    with pytest.raises(SASLError):
        saslprep(text)


def test_saslprep_maps_non_ascii_space() -> None:
    assert saslprep("a\u00a0b") == "a b"


# ------------------------------------------------------------------------------------------
# SCRAM-SHA-256


def test_scram_rfc7677_vector() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    assert mech.name == "SCRAM-SHA-256"
    assert mech.initial_response() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mech.respond(SERVER_FIRST) == CLIENT_FINAL
    with pytest.raises(SASLError):
        mech.verify_success()  # no server signature yet
    assert mech.respond(SERVER_FINAL) == b""
    mech.verify_success()
    with pytest.raises(SASLError):
        mech.respond(SERVER_FINAL)  # single use


def test_scram_without_initial_response_answers_empty_334() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    assert mech.respond(b"") == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mech.respond(SERVER_FIRST) == CLIENT_FINAL
    assert mech.respond(SERVER_FINAL) == b""
    mech.verify_success()


def test_scram_tampered_server_signature_raises() -> None:
    mech = scram_rfc7677()
    signature = bytearray(base64.b64decode(SERVER_FINAL[2:]))
    signature[0] ^= 1
    with pytest.raises(SASLError, match="signature"):
        mech.respond(b"v=" + base64.b64encode(bytes(signature)))
    with pytest.raises(SASLError):
        mech.verify_success()


@pytest.mark.parametrize("server_final", [b"v=not base64!", b"v=", b"x=abc", b"", b"v=\xff\xfe"])
def test_scram_malformed_server_final_raises(server_final: bytes) -> None:
    mech = scram_rfc7677()
    with pytest.raises(SASLError):
        mech.respond(server_final)
    with pytest.raises(SASLError):
        mech.verify_success()


def test_scram_success_without_server_final_is_refused() -> None:
    with pytest.raises(SASLError, match="signature"):
        scram_rfc7677().verify_success()


def test_scram_server_error_is_surfaced() -> None:
    mech = scram_rfc7677()
    with pytest.raises(SASLError, match="invalid-proof"):
        mech.respond(b"e=invalid-proof")
    with pytest.raises(SASLError):
        mech.verify_success()


def test_scram_server_error_in_server_first_is_surfaced() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    with pytest.raises(SASLError, match="unknown-user"):
        mech.respond(b"e=unknown-user")


def test_scram_iteration_cap_checked_before_computing() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE, max_iterations=4095)
    mech.initial_response()
    with pytest.raises(SASLError, match="4095"):
        mech.respond(SERVER_FIRST)
    # A huge count must fail fast too (never int() of thousands of digits, never PBKDF2).
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    with pytest.raises(SASLError):
        mech.respond(SERVER_FIRST.replace(b"i=4096", b"i=" + b"9" * 10_000))


def test_scram_iteration_cap_allows_the_cap_itself() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE, max_iterations=4096)
    mech.initial_response()
    assert mech.respond(SERVER_FIRST) == CLIENT_FINAL


@pytest.mark.parametrize("count", [b"0", b"-1", b"04096", b"", b"4e3", b"\xd9\xa3"])
def test_scram_bad_iteration_count_raises(count: bytes) -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    with pytest.raises(SASLError):
        mech.respond(SERVER_FIRST.replace(b"i=4096", b"i=" + count))


def test_scram_wrong_nonce_prefix_refused() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    with pytest.raises(SASLError, match="nonce"):
        mech.respond(SERVER_FIRST.replace(b"r=rOprNG", b"r=XOprNG"))


def test_scram_mandatory_extension_refused() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    with pytest.raises(SASLError, match="mandatory"):
        mech.respond(b"m=ext," + SERVER_FIRST)


def test_scram_bad_salt_refused() -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)
    mech.initial_response()
    with pytest.raises(SASLError, match="salt"):
        mech.respond(SERVER_FIRST.replace(b"s=W22Z", b"s=*22Z"))


def test_scram_random_nonces_differ() -> None:
    first = ScramSHA256("user", "pencil").initial_response()
    second = ScramSHA256("user", "pencil").initial_response()
    assert first.startswith(b"n,,n=user,r=")
    assert first != second


def test_scram_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        ScramSHA256("user", "pencil", nonce="has,comma")
    with pytest.raises(ValueError):
        ScramSHA256("user", "pencil", max_iterations=0)
    with pytest.raises(SASLError):
        ScramSHA256("user", "pass\u0007word")


def test_scram_password_is_saslprepped() -> None:
    # U+2168 ROMAN NUMERAL NINE normalises to "IX": both spellings give the same proof.
    proofs = []
    for password in ("\u2168", "IX"):
        mech = ScramSHA256("user", password, nonce=CLIENT_NONCE)
        mech.initial_response()
        proofs.append(mech.respond(SERVER_FIRST))
    assert proofs[0] == proofs[1]


@given(user=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))
def test_scram_username_escaping_round_trips_ascii(user: str) -> None:
    first = ScramSHA256(user, "pencil", nonce=CLIENT_NONCE).initial_response().decode()
    assert first.startswith("n,,n=")
    assert first.endswith(",r=" + CLIENT_NONCE)
    name = first[len("n,,n=") : -len(",r=" + CLIENT_NONCE)]
    assert "," not in name
    assert unescape_saslname(name) == user


@given(user=st.text())
def test_scram_username_is_saslprep_then_escaped(user: str) -> None:
    try:
        prepared = saslprep(user)
    except SASLError:
        with pytest.raises(SASLError):
            ScramSHA256(user, "pencil", nonce=CLIENT_NONCE)
        return
    first = ScramSHA256(user, "pencil", nonce=CLIENT_NONCE).initial_response().decode()
    name = first[len("n,,n=") : -len(",r=" + CLIENT_NONCE)]
    assert unescape_saslname(name) == prepared


@given(garbage=st.binary())
def test_scram_garbage_server_first_raises_sasl_error(garbage: bytes) -> None:
    assume(not garbage.startswith(b"r=" + CLIENT_NONCE.encode()))
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE, max_iterations=16)
    mech.initial_response()
    with pytest.raises(SASLError):
        mech.respond(garbage)


@given(tail=st.binary())
def test_scram_near_valid_server_first_never_raises_other_errors(tail: bytes) -> None:
    mech = ScramSHA256("user", "pencil", nonce=CLIENT_NONCE, max_iterations=16)
    mech.initial_response()
    try:
        answer = mech.respond(b"r=" + CLIENT_NONCE.encode() + tail)
    except SASLError:
        return
    assert answer.startswith(b"c=biws,r=" + CLIENT_NONCE.encode())
    assert b",p=" in answer


@given(garbage=st.binary())
def test_scram_garbage_server_final_raises_sasl_error(garbage: bytes) -> None:
    assume(garbage.split(b",", 1)[0] != SERVER_FINAL)
    mech = scram_rfc7677()
    with pytest.raises(SASLError):
        mech.respond(garbage)
    with pytest.raises(SASLError):
        mech.verify_success()


# ------------------------------------------------------------------------------------------
# AuthObject (smtplib-style authobjects)


def test_authobject_calls_like_smtplib() -> None:
    calls: list[tuple[bytes, ...]] = []

    def authobject(challenge: bytes | None = None) -> str:
        calls.append(() if challenge is None else (challenge,))
        return "initial" if challenge is None else "answer:" + challenge.decode()

    mech = AuthObject("x-custom", authobject)
    assert mech.name == "X-CUSTOM"
    assert mech.initial_response() == b"initial"
    assert mech.respond(b"abc") == b"answer:abc"
    assert calls == [(), (b"abc",)]


def test_authobject_without_initial_response() -> None:
    calls: list[bytes | None] = []

    def authobject(challenge: bytes | None = None) -> bytes:
        calls.append(challenge)
        return b"\x00raw"

    mech = AuthObject("PLAIN", authobject, initial_response_ok=False)
    assert mech.initial_response() is None
    assert mech.respond(b"") == b"\x00raw"
    assert calls == [b""]


@given(text=utf8_text)
def test_authobject_encodes_str_as_utf8(text: str) -> None:
    mech = AuthObject("PLAIN", lambda challenge=None: text)
    assert mech.initial_response() == text.encode("utf-8")
    assert mech.respond(b"") == text.encode("utf-8")


def test_authobject_non_ascii_password() -> None:
    mech = AuthObject("PLAIN", lambda challenge=None: "\0jörg\0pässwörd€")
    assert mech.initial_response() == "\0jörg\0pässwörd€".encode()


def test_authobject_refuses_bad_results_and_names() -> None:
    # None as the initial response means "none" (smtplib's CRAM-MD5 authobject returns it);
    # as the answer to a challenge it is an error.
    assert AuthObject("CRAM-MD5", lambda challenge=None: None).initial_response() is None
    with pytest.raises(TypeError):
        AuthObject("PLAIN", lambda challenge=None: None).respond(b"x")
    for name in ("PLAIN\r\nQUIT", "", "A" * 21, "BAD NAME"):
        with pytest.raises(LocalProtocolError):
            AuthObject(name, lambda challenge=None: "")
