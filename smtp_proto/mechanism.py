"""What every SASL mechanism is built on: the ``Mechanism`` step object, ``SASLError``, and
the encoding rules the mechanisms share (see ``smtp_proto.sasl`` for how a core drives one)."""

from __future__ import annotations

import abc
from collections.abc import Callable

from .errors import SMTPException

__all__ = ["ClientFirst", "Mechanism", "SASLError", "escape_saslname", "token_text", "utf8"]


class SASLError(SMTPException):
    """A SASL exchange cannot go on: bad server challenge, failed server proof, bad credentials."""


def utf8(text: str, what: str) -> bytes:
    """Encode ``text`` as UTF-8, turning lone surrogates into a :class:`SASLError`."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise SASLError(f"{what} is not valid Unicode text (lone surrogate)") from None


def token_text(token: str | Callable[[], str]) -> str:
    """Resolve a bearer token given as a string or as a zero-argument provider."""
    return token() if callable(token) else token


def escape_saslname(name: str) -> str:
    """Escape ``=`` and ``,`` as ``=3D`` and ``=2C`` (RFC 5801 / RFC 5802 saslname)."""
    return name.replace("=", "=3D").replace(",", "=2C")


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


class ClientFirst(Mechanism):
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
