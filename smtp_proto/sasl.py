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

import hashlib
import hmac
from collections.abc import Callable

from .errors import LocalProtocolError
from .mechanism import ClientFirst, Mechanism, SASLError, escape_saslname, token_text, utf8
from .saslprep import saslprep
from .scram import ScramSHA256

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


class Plain(ClientFirst):
    """PLAIN (RFC 4616): ``authzid NUL user NUL password``, UTF-8, no preparation applied."""

    name = "PLAIN"

    def __init__(self, user: str, password: str, authzid: str = "") -> None:
        super().__init__()
        parts = [utf8(authzid, "authzid"), utf8(user, "user name"), utf8(password, "password")]
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
        self._answers = [utf8(user, "user name"), utf8(password, "password")]
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
        self._user = utf8(user, "user name")
        self._password = utf8(password, "password")
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


class XOAuth2(ClientFirst):
    """XOAUTH2 (Google/Microsoft): ``user=U ^A auth=Bearer T ^A ^A``.

    ``token`` may be a zero-argument callable, called once when the first message is built,
    so that a fresh access token can be fetched late.  On failure the server sends a ``334``
    with a JSON error; we answer ``b""`` so it sends its final error reply, and keep the
    challenge in ``server_error``.
    """

    name = "XOAUTH2"

    def __init__(self, user: str, token: str | Callable[[], str]) -> None:
        super().__init__()
        self._user = utf8(user, "user name")
        if b"\x01" in self._user:
            raise SASLError("XOAUTH2 cannot carry a \\x01 character in the user name")
        self._token = token
        #: The raw error challenge (JSON) the server sent, if any.
        self.server_error: bytes | None = None

    def _build_first(self) -> bytes:
        token = utf8(token_text(self._token), "token")
        if b"\x01" in token:
            raise SASLError("XOAUTH2 cannot carry a \\x01 character in the token")
        return b"user=" + self._user + b"\x01auth=Bearer " + token + b"\x01\x01"

    def _next(self, challenge: bytes) -> bytes:
        if self.server_error is not None:
            raise SASLError("XOAUTH2: unexpected challenge after the error challenge")
        self.server_error = challenge
        return b""


class OAuthBearer(ClientFirst):
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
        authzid = "a=" + escape_saslname(user) if user else ""
        fields = [b"n," + utf8(authzid, "user name") + b","]
        if host is not None:
            fields.append(b"host=" + utf8(host, "host"))
        if port is not None:
            fields.append(b"port=" + str(port).encode("ascii"))
        self._fields = fields
        self._token = token
        #: The raw error challenge (JSON) the server sent, if any.
        self.server_error: bytes | None = None

    def _build_first(self) -> bytes:
        token = utf8(token_text(self._token), "token")
        if b"\x01" in token:
            raise SASLError("OAUTHBEARER cannot carry a \\x01 character in the token")
        return b"\x01".join([*self._fields, b"auth=Bearer " + token]) + b"\x01\x01"

    def _next(self, challenge: bytes) -> bytes:
        if self.server_error is not None:
            raise SASLError("OAUTHBEARER: unexpected challenge after the error challenge")
        self.server_error = challenge
        return b"\x01"


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
            return utf8(value, "authobject result")
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
