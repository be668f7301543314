"""AUTH on the server side (RFC 4954): the PLAIN, LOGIN and CRAM-MD5 exchanges."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import _Session


class _Refused(Exception):
    """The AUTH exchange ends early with one of the server's own replies (by name)."""

    def __init__(self, name: str, **fields: object) -> None:
        super().__init__(name)
        self.name = name
        self.fields = fields


def _response(session: _Session, challenge: bytes, initial: str | None) -> bytes:
    """The client's decoded answer: its initial response if it sent one, else its reply to a
    334 carrying ``challenge``.  ``*`` cancels; ``=`` is the empty response."""
    if initial is None:
        session.reply(334, base64.b64encode(challenge).decode("ascii"))
        line = session.command_line()
        if line is None:
            raise _Refused("auth-undecodable")
        initial = line.strip()
    if initial == "*":
        raise _Refused("auth-cancelled")
    if initial == "=":
        return b""
    try:
        return base64.b64decode(initial, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused("auth-undecodable") from None


def _checked(session: _Session, user: bytes, password: bytes) -> str | None:
    """The user name if ``password`` is its password."""
    name = user.decode("utf-8", "replace")
    expected = (session.service.credentials or {}).get(name)
    if expected is None or not hmac.compare_digest(expected.encode("utf-8"), password):
        return None
    return name


def _plain(session: _Session, initial: str | None) -> str | None:
    fields = _response(session, b"", initial).split(b"\0")
    if len(fields) != 3:
        raise _Refused("auth-malformed", mechanism="PLAIN")
    authzid, authcid, password = fields
    if authzid and authzid != authcid:
        return None  # acting for someone else: not this server's business
    return _checked(session, authcid, password)


def _login(session: _Session, initial: str | None) -> str | None:
    user = _response(session, b"Username:", initial)
    return _checked(session, user, _response(session, b"Password:", None))


def _cram_md5(session: _Session, initial: str | None) -> str | None:
    if initial is not None:
        raise _Refused("auth-malformed", mechanism="CRAM-MD5")  # it takes no initial response
    service = session.service
    # Numbered, not random, so that transcripts are reproducible: a test server needs no
    # unpredictable challenge.
    challenge = f"<{service.challenge_id()}.0@{service.hostname}>".encode("ascii")
    user, space, digest = _response(session, challenge, None).rpartition(b" ")
    if not space:
        raise _Refused("auth-malformed", mechanism="CRAM-MD5")
    name = user.decode("utf-8", "replace")
    password = (service.credentials or {}).get(name)
    if password is None:
        return None
    expected = hmac.new(password.encode("utf-8"), challenge, "md5").hexdigest().encode("ascii")
    return name if hmac.compare_digest(expected, digest.lower()) else None


#: The mechanisms, by name: each runs its exchange and gives the user who logged in, if any.
_MECHANISMS: dict[str, Callable[[_Session, str | None], str | None]] = {
    "PLAIN": _plain,
    "LOGIN": _login,
    "CRAM-MD5": _cram_md5,
}
