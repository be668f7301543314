"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the one mechanism here that proves the server too."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from .mechanism import ClientFirst, SASLError, escape_saslname
from .saslprep import saslprep

__all__ = ["ScramSHA256"]


def _is_printable_nonce(value: str) -> bool:
    """RFC 5802 ``printable``: ASCII 0x21..0x7E except ``,``."""
    return bool(value) and all("!" <= ch <= "~" and ch != "," for ch in value)


def _b64decode_strict(value: str, what: str) -> bytes:
    """Decode strict base64 text, turning every failure into a :class:`SASLError`."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise SASLError(f"SCRAM: {what} is not valid base64") from None


class ScramSHA256(ClientFirst):
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
        self._user = escape_saslname(saslprep(user))
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
