"""Fuzz target: every SASL mechanism's ``respond()`` on arbitrary challenge sequences.

Input layout: a selector byte picks the mechanism (or ``saslprep`` alone); length-prefixed
fields give the credentials (arbitrary Unicode, lone surrogates included); a flag says whether
``initial_response()`` is taken first; the rest is a sequence of length-prefixed challenges.
``verify_success()`` is called at the end.

Checked, for every input:

* only ``SASLError`` escapes constructors, ``initial_response``, ``respond`` and
  ``verify_success``, and every answer is ``bytes``;
* each mechanism's answers are the ones its specification gives: PLAIN's credentials once,
  LOGIN's user then password, CRAM-MD5's ``user hex(HMAC-MD5)``, XOAUTH2's and OAUTHBEARER's
  first message and error acknowledgement, SCRAM's client-final layout; a mechanism that
  ran out of steps refuses every later challenge, and so does SCRAM after any refusal;
* SCRAM-SHA-256 against a reference server written here (RFC 5802): for a server-first
  message built from the input (nonce suffix, salt, iteration count, extensions) the client's
  proof verifies, the true server signature is accepted and ``verify_success`` passes, and a
  wrong signature, or success without one, raises ``SASLError``;
* ``saslprep`` returns NFKC text free of prohibited characters, or raises ``SASLError``.

Run: ``python fuzz/fuzz_sasl.py [libFuzzer options] [corpus_dir]``.  Without atheris the
module only provides ``check(data)``, which the test suite replays over the seed corpus.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import stringprep
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

import _input  # fuzz/ is on sys.path: run as a script, or loaded by the tests

from smtp_proto import sasl
from smtp_proto.sasl import SASLError

MAX_CHALLENGES = 8
_PRINTABLE = bytes(byte for byte in range(0x21, 0x7F) if byte != ord(","))


class Input(_input.Input):
    """The shared input reader, plus the strings SASL needs."""

    def text(self) -> str:
        """A length-prefixed string: UTF-8 where it is, lone surrogates where it is not."""
        raw = self.field()
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "surrogateescape")

    def printable(self, minimum: int = 0) -> str:
        """A length-prefixed RFC 5802 ``printable`` string (no comma), at least ``minimum`` long."""
        raw = self.field() or b"\0" * minimum
        return bytes(_PRINTABLE[byte % len(_PRINTABLE)] for byte in raw).decode("ascii")


def utf8(text: str) -> bytes | None:
    """``text`` as UTF-8, or ``None`` when it holds a lone surrogate (a refused credential)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def answer(step: Callable[[], bytes | None]) -> bytes | SASLError | None:
    """Run one mechanism step: its answer, or the ``SASLError`` it raised (nothing else)."""
    try:
        result = step()
    except SASLError as exc:
        return exc
    assert result is None or isinstance(result, bytes), result
    return result


# ------------------------------------------------------------------ the mechanisms


def exchange(source: Input) -> tuple[bool, list[bytes]]:
    """After the credentials: whether ``initial_response()`` is taken, then the challenges."""
    first = bool(source.byte() & 1)
    challenges: list[bytes] = []
    while not source.exhausted and len(challenges) < MAX_CHALLENGES:
        challenges.append(source.field())
    return first, challenges


def run_plain(source: Input) -> None:
    user, password, authzid = source.text(), source.text(), source.text()
    first, challenges = exchange(source)
    try:
        mech = sasl.Plain(user, password, authzid)
    except SASLError:
        parts = [utf8(authzid), utf8(user), utf8(password)]
        assert any(part is None or b"\0" in part for part in parts)
        return
    message = b"\0".join([authzid.encode(), user.encode(), password.encode()])
    steps: list[bytes | SASLError | None] = []
    if first:
        steps.append(answer(mech.initial_response))
    steps += [answer(lambda c=c: mech.respond(c)) for c in challenges]
    assert steps[:1] in ([], [message]), steps
    assert all(isinstance(step, SASLError) for step in steps[1:]), steps
    mech.verify_success()


def run_login(source: Input) -> None:
    user, password = source.text(), source.text()
    first, challenges = exchange(source)
    try:
        mech = sasl.Login(user, password)
    except SASLError:
        assert utf8(user) is None or utf8(password) is None
        return
    expected: list[bytes | SASLError | None] = [user.encode(), password.encode()]
    steps = [answer(mech.initial_response)] if first else []
    steps += [answer(lambda c=c: mech.respond(c)) for c in challenges]
    assert steps[:2] == expected[: len(steps)], steps
    assert all(isinstance(step, SASLError) for step in steps[2:]), steps
    mech.verify_success()


def run_cram_md5(source: Input) -> None:
    user, password = source.text(), source.text()
    first, challenges = exchange(source)
    try:
        mech = sasl.CramMD5(user, password)
    except SASLError:
        assert utf8(user) is None or utf8(password) is None
        return
    if first:
        assert mech.initial_response() is None
    done = False  # one challenge only; an empty one is refused without using it up
    for challenge in challenges:
        step = answer(lambda c=challenge: mech.respond(c))
        if done or not challenge:
            assert isinstance(step, SASLError), step
            continue
        digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
        assert step == user.encode() + b" " + digest.encode(), step
        done = True
    mech.verify_success()


def run_bearer(source: Input, oauthbearer: bool) -> None:
    user, token = source.text(), source.text()
    provider = source.byte() & 1
    calls: list[str] = []

    def fetch() -> str:
        calls.append(token)
        return token

    host: str | None = None
    port: int | None = None
    try:
        if oauthbearer:
            if source.byte() & 1:
                host = source.text()
            if source.byte() & 1:
                port = int.from_bytes(source.take(3).ljust(3, b"\0"), "big") - 1000
            mech: sasl.Mechanism = sasl.OAuthBearer(user, fetch if provider else token, host, port)
        else:
            mech = sasl.XOAuth2(user, fetch if provider else token)
    except SASLError:
        return
    first, challenges = exchange(source)
    steps = [answer(mech.initial_response)] if first else []
    steps += [answer(lambda c=c: mech.respond(c)) for c in challenges]
    if not steps:
        return
    if isinstance(steps[0], SASLError):
        # The token cannot be carried (every later step retries building the first message).
        return
    assert len(calls) <= 1, calls  # a provider is called once, when the message is built
    message = steps[0]
    assert isinstance(message, bytes)
    assert message.endswith(b"\x01\x01") and b"auth=Bearer " + token.encode() in message
    if oauthbearer:
        assert message.startswith(b"n,"), message
        acknowledgement = b"\x01"
    else:
        assert message.startswith(b"user=" + user.encode() + b"\x01"), message
        acknowledgement = b""
    assert steps[1:2] in ([], [acknowledgement]), steps
    assert all(isinstance(step, SASLError) for step in steps[2:]), steps
    if len(challenges) > (0 if first else 1):
        error = challenges[0 if first else 1]
        assert mech.server_error == error  # type: ignore[attr-defined]
    mech.verify_success()


class Scram(NamedTuple):
    mech: sasl.ScramSHA256
    user: str
    password: str
    cap: int
    nonce: str


def scram(source: Input) -> Scram | None:
    """A SCRAM-SHA-256 client with credentials, iteration cap and nonce from the input."""
    user, password = source.text(), source.text()
    cap = 1 + source.byte() % 64
    nonce = source.printable(minimum=1)
    try:
        mech = sasl.ScramSHA256(user, password, max_iterations=cap, nonce=nonce)
    except SASLError:
        return None
    return Scram(mech, user, password, cap, nonce)


def run_scram_raw(source: Input) -> None:
    made = scram(source)
    if made is None:
        return
    mech, nonce = made.mech, made.nonce
    first, challenges = exchange(source)
    steps = [answer(mech.initial_response)] if first else []
    steps += [answer(lambda c=c: mech.respond(c)) for c in challenges]
    verified = False
    for index, step in enumerate(steps):
        if isinstance(step, SASLError):
            assert all(isinstance(later, SASLError) for later in steps[index:]), steps
            break
        assert isinstance(step, bytes)
        if index == 0:
            assert step.startswith(b"n,,n=") and step.endswith(b",r=" + nonce.encode()), step
        elif index == 1:
            head, _, proof = step.partition(b",p=")
            assert head.startswith(b"c=biws,r=" + nonce.encode()), step
            assert len(base64.b64decode(proof, validate=True)) == 32, step
        elif index == 2:
            assert step == b"", step
            verified = True
        else:
            raise AssertionError(f"a fourth SCRAM step was answered: {steps!r}")
    try:
        mech.verify_success()
    except SASLError:
        assert not verified
    else:
        assert verified


def run_scram_server(source: Input) -> None:
    """The client against a reference RFC 5802 server whose parameters come from the input."""
    made = scram(source)
    if made is None:
        return
    mech, user, nonce = made.mech, made.user, made.nonce
    password = sasl.saslprep(made.password).encode("utf-8")  # what a server keeps keys for
    first = mech.initial_response()
    assert first.startswith(b"n,,")
    client_first_bare = first[3:]
    escaped = sasl.saslprep(user).replace("=", "=3D").replace(",", "=2C")
    assert client_first_bare == f"n={escaped},r={nonce}".encode(), client_first_bare

    suffix = source.printable()
    salt = source.field()
    iterations = 1 + source.byte() % min(made.cap, 8)
    extensions = [source.printable() for _ in range(source.byte() % 3)]
    server_first = f"r={nonce}{suffix},s={base64.b64encode(salt).decode()},i={iterations}"
    server_first += "".join(f",x{index}={value}" for index, value in enumerate(extensions))
    final = mech.respond(server_first.encode())

    without_proof, _, proof_b64 = final.partition(b",p=")
    assert without_proof == f"c=biws,r={nonce}{suffix}".encode(), final
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = b",".join([client_first_bare, server_first.encode(), without_proof])
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = base64.b64decode(proof_b64, validate=True)
    recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(recovered).digest() == stored_key, "client proof does not verify"
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()

    if source.byte() & 1:
        # A wrong signature (one bit flipped) must be refused, and success not claimed.
        flip = bytearray(server_signature)
        flip[source.byte() % len(flip)] ^= 1 << (source.byte() % 8)
        wrong = b"v=" + base64.b64encode(bytes(flip))
        assert isinstance(answer(lambda: mech.respond(wrong)), SASLError)
        assert isinstance(answer(mech.verify_success), SASLError)
        return
    assert mech.respond(b"v=" + base64.b64encode(server_signature)) == b""
    mech.verify_success()


def run_authobject(source: Input) -> None:
    names = ("PLAIN", "LOGIN", "CRAM-MD5", "X-CUSTOM_1", "XOAUTH2")
    name = names[source.byte() % len(names)]
    as_bytes = source.byte() & 1
    seen: list[bytes | None] = []

    def authobject(challenge: bytes | None = None) -> str | bytes:
        seen.append(challenge)
        if as_bytes:
            return b"bytes:" + (challenge or b"")
        return "text:" + (challenge or b"").decode("utf-8", "surrogateescape")

    mech = sasl.AuthObject(name.lower(), authobject, initial_response_ok=bool(source.byte() & 1))
    assert mech.name == name
    first, challenges = exchange(source)
    steps = [answer(mech.initial_response)] if first else []
    steps += [answer(lambda c=c: mech.respond(c)) for c in challenges]
    for step, challenge in zip(steps[len(steps) - len(challenges) :], challenges, strict=True):
        if as_bytes:
            assert step == b"bytes:" + challenge, step
        elif isinstance(step, bytes):
            assert step == ("text:" + challenge.decode("utf-8", "surrogateescape")).encode()
        else:
            assert isinstance(step, SASLError), step


def run_saslprep(source: Input) -> None:
    text = source.text()
    try:
        prepared = sasl.saslprep(text)
    except SASLError:
        return
    assert prepared, text
    assert unicodedata.ucd_3_2_0.normalize("NFKC", prepared) == prepared, (text, prepared)
    for ch in prepared:
        assert not stringprep.in_table_c12(ch) and not stringprep.in_table_c21_c22(ch), ch
        assert not stringprep.in_table_c3(ch) and not stringprep.in_table_c5(ch), ch
        assert not stringprep.in_table_c6(ch) and not stringprep.in_table_c8(ch), ch


def check(data: bytes) -> None:
    """The whole property for one input; raises on a finding."""
    source = Input(data)
    selector = source.byte() % 10
    if selector == 0:
        run_plain(source)
    elif selector == 1:
        run_login(source)
    elif selector == 2:
        run_cram_md5(source)
    elif selector in (3, 4):
        run_bearer(source, oauthbearer=selector == 4)
    elif selector in (5, 6):
        run_scram_raw(source)
    elif selector == 7:
        run_authobject(source)
    elif selector == 8:
        run_scram_server(source)
    else:
        run_saslprep(source)


def main() -> None:
    from _driver import fuzz  # noqa: PLC0415 - fuzz/ is on sys.path when run as a script

    fuzz(check)


if __name__ == "__main__":
    main()
