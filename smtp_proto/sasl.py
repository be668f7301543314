"""SASL client mechanisms for SMTP AUTH (RFC 4954), as small I/O-free step objects.

The SMTP core drives a :class:`Mechanism` like this:

1. ``AUTH <mech.name> [base64(mech.initial_response())]`` -- an initial response of ``b""``
   must go on the wire as ``=`` (RFC 4954); ``None`` means "send no initial response".
2. On each ``334`` reply: base64-decode the text into ``challenge`` and send
   ``base64(mech.respond(challenge))`` (``b""`` is an empty line).
3. On ``235``: call ``mech.verify_success()``; it raises :class:`SASLError` when the mechanism
   needs a proof from the server that it did not get (SCRAM's server signature).

Every mechanism here is **single-use**: make a new object for each AUTH exchange.  Call
``initial_response()`` once, when the AUTH command is built, and only if its result is sent;
a core that does not send the initial response just answers the first (empty) ``334`` with
``respond(b"")``, which then returns the initial response instead.

Any :class:`SASLError` from ``respond()`` means the exchange cannot go on; the core should
cancel it with a ``*`` line (RFC 4954 section 4).  Constructors raise :class:`SASLError` too,
for credentials the mechanism cannot carry (a NUL in PLAIN, a lone surrogate, ...).

Text is always sent as UTF-8, never ASCII-only as in ``smtplib``.  Nothing here does I/O.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Callable

from .errors import LocalProtocolError, SMTPException

__all__ = [
    "PASSWORD_MECHANISMS",
    "AuthObject",
    "CramMD5",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "SASLError",
    "ScramSHA256",
    "XOAuth2",
    "mechanism_for",
    "saslprep",
]

#: Mechanisms ``login()`` tries, in ``smtplib``'s order.  SCRAM-SHA-256 is left out on
#: purpose to behave exactly like ``smtplib``; it is available through :func:`mechanism_for`
#: and explicit ``auth()``.
PASSWORD_MECHANISMS: tuple[str, ...] = ("CRAM-MD5", "PLAIN", "LOGIN")


class SASLError(SMTPException):
    """A SASL exchange cannot go on: bad server challenge, failed server proof, bad credentials."""


def _utf8(text: str, what: str) -> bytes:
    """Encode ``text`` as UTF-8, turning lone surrogates into a :class:`SASLError`."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise SASLError(f"{what} is not valid Unicode text (lone surrogate)") from None


def _token_text(token: str | Callable[[], str]) -> str:
    """Resolve a bearer token given as a string or as a zero-argument provider."""
    return token() if callable(token) else token


def _escape_saslname(name: str) -> str:
    """Escape ``=`` and ``,`` as ``=3D`` and ``=2C`` (RFC 5801 / RFC 5802 saslname)."""
    return name.replace("=", "=3D").replace(",", "=2C")


# --------------------------------------------------------------------------------------------
# SASLprep (RFC 4013), a stringprep (RFC 3454) profile, used by SCRAM (RFC 5802 section 2.2).


def _prohibited(ch: str) -> bool:
    """True for characters RFC 4013 section 2.3 forbids in SASLprep output."""
    return (
        stringprep.in_table_c12(ch)  # non-ASCII spaces
        or stringprep.in_table_c21_c22(ch)  # control characters
        or stringprep.in_table_c3(ch)  # private use
        or stringprep.in_table_c4(ch)  # non-character code points
        or stringprep.in_table_c5(ch)  # surrogates
        or stringprep.in_table_c6(ch)  # inappropriate for plain text
        or stringprep.in_table_c7(ch)  # inappropriate for canonical representation
        or stringprep.in_table_c8(ch)  # change display properties / deprecated
        or stringprep.in_table_c9(ch)  # tagging characters
    )


def saslprep(text: str) -> str:
    """Prepare ``text`` with SASLprep (RFC 4013) as a *query* string; raise SASLError if refused.

    Full profile, with the Unicode 3.2 tables RFC 3454 is defined on: non-ASCII spaces become
    U+0020, "commonly mapped to nothing" characters are removed, the result is NFKC-normalised,
    prohibited characters and bad bidirectional text are refused.  Unassigned code points are
    allowed (query string), as RFC 5802 asks.  An empty result is refused too.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if not prepared:
        raise SASLError("SASLprep: the string is empty")
    for ch in prepared:
        if _prohibited(ch):
            raise SASLError(f"SASLprep: prohibited character U+{ord(ch):04X}")
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        # RFC 3454 section 6: right-to-left text must not mix in left-to-right characters and
        # must start and end with a right-to-left character.
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise SASLError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLError("SASLprep: right-to-left text must start and end with an RTL char")
    return prepared


# --------------------------------------------------------------------------------------------
# Mechanisms


class Mechanism(abc.ABC):
    """One client side of one SASL exchange; single-use, no I/O.

    ``name`` is the upper-case mechanism name sent in ``AUTH``.  ``initial_response()`` gives
    the raw bytes to send with ``AUTH`` (or ``None``), ``respond()`` maps a raw, already
    base64-decoded ``334`` challenge to raw response bytes, and ``verify_success()`` is called
    on ``235`` and raises :class:`SASLError` if a required server proof is missing.
    """

    name: str

    def initial_response(self) -> bytes | None:
        """Raw bytes to send with the AUTH command, or ``None`` to wait for a ``334``."""
        return None

    @abc.abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one ``334`` challenge (raw bytes) with raw response bytes."""

    def verify_success(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op
        """Check, on ``235``, that the server proved what the mechanism needs; default: nothing."""


class _ClientFirst(Mechanism):
    """Base for mechanisms whose first message is the client's (sent as initial response).

    The first message is built once and cached.  If it was never handed out, the first
    ``respond()`` returns it (the server's empty ``334`` asks for it); later challenges go to
    :meth:`_next`.
    """

    def __init__(self) -> None:
        self._first: bytes | None = None

    @abc.abstractmethod
    def _build_first(self) -> bytes:
        """Build the client's first message."""

    @abc.abstractmethod
    def _next(self, challenge: bytes) -> bytes:
        """Answer a challenge that comes after the first message."""

    def initial_response(self) -> bytes:
        """The client's first message, built on the first call and cached."""
        if self._first is None:
            self._first = self._build_first()
        return self._first

    def respond(self, challenge: bytes) -> bytes:
        """The first message if not sent yet (the challenge is then ignored), else the next step."""
        if self._first is None:
            return self.initial_response()
        return self._next(challenge)


class Plain(_ClientFirst):
    """PLAIN (RFC 4616): ``authzid NUL user NUL password``, UTF-8, no preparation applied."""

    name = "PLAIN"

    def __init__(self, user: str, password: str, authzid: str = "") -> None:
        super().__init__()
        parts = [_utf8(authzid, "authzid"), _utf8(user, "user name"), _utf8(password, "password")]
        if any(b"\0" in part for part in parts):
            raise SASLError("PLAIN cannot carry a NUL character in authzid, user or password")
        self._message = b"\0".join(parts)

    def _build_first(self) -> bytes:
        return self._message

    def _next(self, challenge: bytes) -> bytes:
        raise SASLError("PLAIN: unexpected challenge after the credentials were sent")


class Login(Mechanism):
    """LOGIN (obsolete, draft-murchison-sasl-login): user name, then password, each on a 334.

    Like ``smtplib``, the user name goes with the AUTH command as an initial response when the
    caller sends one; otherwise it answers the first 334.  The prompt text is ignored (servers
    word it differently); a challenge after the password is an error.
    """

    name = "LOGIN"

    def __init__(self, user: str, password: str) -> None:
        self._answers = [_utf8(user, "user name"), _utf8(password, "password")]
        self._step = 0

    def initial_response(self) -> bytes | None:
        """The user name (the password then answers the first 334)."""
        if self._step == 0:
            self._step = 1
        return self._answers[0]

    def respond(self, challenge: bytes) -> bytes:
        """First challenge: the user name; second: the password; any later one: SASLError."""
        if self._step >= len(self._answers):
            raise SASLError("LOGIN: unexpected challenge after the password was sent")
        answer = self._answers[self._step]
        self._step += 1
        return answer


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``; one challenge only."""

    name = "CRAM-MD5"

    def __init__(self, user: str, password: str) -> None:
        self._user = _utf8(user, "user name")
        self._password = _utf8(password, "password")
        self._done = False

    def respond(self, challenge: bytes) -> bytes:
        """Answer the server's timestamp challenge; an empty or second challenge is refused."""
        if self._done:
            raise SASLError("CRAM-MD5: unexpected second challenge")
        if not challenge:
            raise SASLError("CRAM-MD5: the server sent an empty challenge")
        self._done = True
        digest = hmac.new(self._password, challenge, hashlib.md5).hexdigest()
        return self._user + b" " + digest.encode("ascii")


class XOAuth2(_ClientFirst):
    """XOAUTH2 (Google/Microsoft): ``user=U ^A auth=Bearer T ^A ^A``.

    ``token`` may be a zero-argument callable, called once when the first message is built,
    so that a fresh access token can be fetched late.  On failure the server sends a ``334``
    with a JSON error; we answer ``b""`` so it sends its final error reply, and keep the
    challenge in ``server_error``.
    """

    name = "XOAUTH2"

    def __init__(self, user: str, token: str | Callable[[], str]) -> None:
        super().__init__()
        self._user = _utf8(user, "user name")
        if b"\x01" in self._user:
            raise SASLError("XOAUTH2 cannot carry a \\x01 character in the user name")
        self._token = token
        #: The raw error challenge (JSON) the server sent, if any.
        self.server_error: bytes | None = None

    def _build_first(self) -> bytes:
        token = _utf8(_token_text(self._token), "token")
        if b"\x01" in token:
            raise SASLError("XOAUTH2 cannot carry a \\x01 character in the token")
        return b"user=" + self._user + b"\x01auth=Bearer " + token + b"\x01\x01"

    def _next(self, challenge: bytes) -> bytes:
        if self.server_error is not None:
            raise SASLError("XOAUTH2: unexpected challenge after the error challenge")
        self.server_error = challenge
        return b""


class OAuthBearer(_ClientFirst):
    """OAUTHBEARER (RFC 7628): ``n,a=USER, ^A host=H ^A port=P ^A auth=Bearer T ^A ^A``.

    The user name goes in the GS2 header with ``,`` and ``=`` escaped as ``=2C`` and ``=3D``
    (an empty user name omits ``a=``); ``host`` and ``port`` are sent when given.  ``token`` may
    be a zero-argument callable, called once.  On an error challenge (JSON) we answer
    ``b"\\x01"`` as RFC 7628 section 3.2.3 requires, and keep the challenge in ``server_error``.
    """

    name = "OAUTHBEARER"

    def __init__(
        self,
        user: str,
        token: str | Callable[[], str],
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__()
        if "\0" in user or "\x01" in user:
            raise SASLError("OAUTHBEARER cannot carry NUL or \\x01 in the user name")
        if host is not None and ("\x01" in host or not host):
            raise SASLError("OAUTHBEARER: the host must be non-empty and free of \\x01")
        if port is not None and not 0 <= port <= 65535:
            raise SASLError(f"OAUTHBEARER: port {port} is out of range")
        authzid = "a=" + _escape_saslname(user) if user else ""
        fields = [b"n," + _utf8(authzid, "user name") + b","]
        if host is not None:
            fields.append(b"host=" + _utf8(host, "host"))
        if port is not None:
            fields.append(b"port=" + str(port).encode("ascii"))
        self._fields = fields
        self._token = token
        #: The raw error challenge (JSON) the server sent, if any.
        self.server_error: bytes | None = None

    def _build_first(self) -> bytes:
        token = _utf8(_token_text(self._token), "token")
        if b"\x01" in token:
            raise SASLError("OAUTHBEARER cannot carry a \\x01 character in the token")
        return b"\x01".join([*self._fields, b"auth=Bearer " + token]) + b"\x01\x01"

    def _next(self, challenge: bytes) -> bytes:
        if self.server_error is not None:
            raise SASLError("OAUTHBEARER: unexpected challenge after the error challenge")
        self.server_error = challenge
        return b"\x01"


def _is_printable_nonce(value: str) -> bool:
    """RFC 5802 ``printable``: ASCII 0x21..0x7E except ``,``."""
    return bool(value) and all("!" <= ch <= "~" and ch != "," for ch in value)


def _b64decode_strict(value: str, what: str) -> bytes:
    """Decode strict base64 text, turning every failure into a :class:`SASLError`."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise SASLError(f"SCRAM: {what} is not valid base64") from None


class ScramSHA256(_ClientFirst):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding (GS2 header ``n,,``).

    User name and password are prepared with full :func:`saslprep` (RFC 4013; refused
    strings raise :class:`SASLError` from the constructor); ``,`` and ``=`` in the user name
    are escaped as ``=2C`` and ``=3D``.  The server's first message is checked strictly: its
    nonce must extend ours, the salt must be base64, ``1 <= i <= max_iterations`` is checked
    before any key stretching, and a mandatory extension (``m=``) is refused.  The server's
    signature is compared in constant time; :meth:`verify_success` raises unless it was
    verified, so a ``235`` from a server that never proved knowledge of the password fails.
    ``nonce`` is for tests only (known-answer vectors); leave it ``None`` otherwise.
    """

    name = "SCRAM-SHA-256"

    _GS2_HEADER = b"n,,"

    def __init__(
        self,
        user: str,
        password: str,
        *,
        max_iterations: int = 200_000,
        nonce: str | None = None,
    ) -> None:
        super().__init__()
        if max_iterations < 1:
            raise ValueError("max_iterations must be at least 1")
        if nonce is None:
            nonce = secrets.token_urlsafe(24)
        elif not _is_printable_nonce(nonce):
            raise ValueError("nonce must be non-empty printable ASCII without ','")
        self._user = _escape_saslname(saslprep(user))
        self._password = saslprep(password).encode("utf-8")
        self._max_iterations = max_iterations
        self._client_nonce = nonce
        self._client_first_bare = f"n={self._user},r={nonce}".encode()
        self._server_signature: bytes | None = None
        self._verified = False
        self._finished = False

    def _build_first(self) -> bytes:
        return self._GS2_HEADER + self._client_first_bare

    def _next(self, challenge: bytes) -> bytes:
        if self._finished:
            raise SASLError("SCRAM: unexpected challenge after the exchange ended")
        try:
            if self._server_signature is None:
                return self._client_final(challenge)
            self._finished = True
            return self._check_server_final(challenge)
        except SASLError:
            self._finished = True
            raise

    def _client_final(self, server_first: bytes) -> bytes:
        """Check the server-first-message and build the client-final-message with the proof."""
        try:
            text = server_first.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLError("SCRAM: server-first-message is not UTF-8") from None
        attrs = text.split(",")
        if attrs[0].startswith("e="):
            raise SASLError(f"SCRAM: server error: {attrs[0][2:]}")
        if attrs[0].startswith("m="):
            raise SASLError("SCRAM: server requires an unsupported mandatory extension")
        if len(attrs) < 3 or not (
            attrs[0].startswith("r=") and attrs[1].startswith("s=") and attrs[2].startswith("i=")
        ):
            raise SASLError("SCRAM: malformed server-first-message")
        nonce, salt_b64, iterations_text = attrs[0][2:], attrs[1][2:], attrs[2][2:]
        if not _is_printable_nonce(nonce) or not nonce.startswith(self._client_nonce):
            raise SASLError("SCRAM: the server nonce does not extend the client nonce")
        salt = _b64decode_strict(salt_b64, "salt")
        iterations = self._parse_iterations(iterations_text)

        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        channel_binding = base64.b64encode(self._GS2_HEADER)
        without_proof = b"c=" + channel_binding + b",r=" + nonce.encode("ascii")
        auth_message = self._client_first_bare + b"," + server_first + b"," + without_proof
        client_signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(k ^ s for k, s in zip(client_key, client_signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return without_proof + b",p=" + base64.b64encode(proof)

    def _parse_iterations(self, text: str) -> int:
        """Parse RFC 5802 ``posit-number`` and enforce ``1 <= i <= max_iterations``."""
        if not (text.isascii() and text.isdigit()) or text.startswith("0"):
            raise SASLError("SCRAM: the iteration count is not a positive number")
        # Compare lengths first: never convert a huge digit string.
        if len(text) > len(str(self._max_iterations)) or int(text) > self._max_iterations:
            raise SASLError(
                f"SCRAM: the server asks for {text[:20]} iterations, over the cap of "
                f"{self._max_iterations}"
            )
        return int(text)

    def _check_server_final(self, server_final: bytes) -> bytes:
        """Verify the server-final-message; answer ``b""`` when the signature matches."""
        first = server_final.split(b",", 1)[0]
        if first.startswith(b"e="):
            error = first[2:].decode("utf-8", "replace")
            raise SASLError(f"SCRAM: server error: {error}")
        if not first.startswith(b"v="):
            raise SASLError("SCRAM: malformed server-final-message")
        try:
            signature_text = first[2:].decode("ascii")
        except UnicodeDecodeError:
            raise SASLError("SCRAM: server signature is not valid base64") from None
        signature = _b64decode_strict(signature_text, "server signature")
        expected = self._server_signature or b""
        if not expected or not hmac.compare_digest(signature, expected):
            raise SASLError("SCRAM: the server signature is wrong (server does not know the key)")
        self._verified = True
        return b""

    def verify_success(self) -> None:
        """Raise :class:`SASLError` unless the server's signature was received and verified."""
        if not self._verified:
            raise SASLError("SCRAM: server reported success without a verified server signature")


class AuthObject(Mechanism):
    """Adapter for ``smtplib``-style authobjects: ``smtp.auth(name, authobject, ...)``.

    Like ``smtplib``, calls ``authobject()`` for the initial response (only when
    ``initial_response_ok``) and ``authobject(challenge)`` with the decoded challenge bytes for
    each ``334``.  A returned ``str`` is encoded as UTF-8 (``smtplib`` uses ASCII and fails on
    non-ASCII passwords); ``bytes`` are sent as they are.  ``name`` is upper-cased and must be a
    valid SASL mechanism name (RFC 4422: 1-20 of ``A-Z 0-9 - _``), else LocalProtocolError.
    """

    def __init__(
        self,
        name: str,
        authobject: Callable[..., str | bytes | None],
        initial_response_ok: bool = True,
    ) -> None:
        upper = name.upper()
        allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        if not 1 <= len(upper) <= 20 or any(ch not in allowed for ch in upper):
            raise LocalProtocolError(f"invalid SASL mechanism name: {name!r}")
        self.name = upper
        self._authobject = authobject
        self._initial_response_ok = initial_response_ok

    @staticmethod
    def _encode(value: str | bytes | None) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return _utf8(value, "authobject result")
        raise TypeError(f"authobject must return str or bytes, not {type(value).__name__}")

    def initial_response(self) -> bytes | None:
        """``authobject()`` encoded; ``None`` when it returns ``None`` (as ``smtplib``'s
        CRAM-MD5 authobject does) or when ``initial_response_ok`` is false."""
        if not self._initial_response_ok:
            return None
        value = self._authobject()
        return None if value is None else self._encode(value)

    def respond(self, challenge: bytes) -> bytes:
        """``authobject(challenge)`` encoded."""
        return self._encode(self._authobject(challenge))


_PASSWORD_FACTORIES: dict[str, Callable[[str, str], Mechanism]] = {
    "PLAIN": Plain,
    "LOGIN": Login,
    "CRAM-MD5": CramMD5,
    "SCRAM-SHA-256": ScramSHA256,
}


def mechanism_for(name: str, user: str, password: str) -> Mechanism:
    """A fresh user/password mechanism by (case-insensitive) name; KeyError if not one.

    Knows PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256 (the last is not in
    :data:`PASSWORD_MECHANISMS`, which mirrors ``smtplib``'s ``login()``).
    """
    return _PASSWORD_FACTORIES[name.upper()](user, password)
