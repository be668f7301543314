"""AUTH as operations: ``auth`` with one mechanism (RFC 4954) and ``login``'s choice of one."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from . import sasl
from .commands import Auth, AuthResponse
from .errors import SMTPAuthenticationError, SMTPException, SMTPNotSupportedError
from .replies import Reply
from .requests import IORequest, Operation

if TYPE_CHECKING:
    from .client import Client

__all__ = ["MAX_AUTH_CHALLENGES", "auth_gen", "login_gen"]

#: ``smtplib`` gives up on an AUTH exchange after this many 334 challenges.
MAX_AUTH_CHALLENGES = 5


def auth_gen(
    client: Client,
    mechanism: str,
    authobject: Any,
    *,
    initial_response_ok: bool = True,
) -> Operation[tuple[int, bytes]]:
    """AUTH with ``authobject``: an ``smtplib``-style callable or a ``sasl.Mechanism``.

    Returns the 235 (or 503, already authenticated) reply; raises
    ``SMTPAuthenticationError`` otherwise.
    """
    owner = client.owner
    if isinstance(authobject, sasl.Mechanism):
        mech = authobject
    else:
        mech = sasl.AuthObject(mechanism, authobject, initial_response_ok)
    initial = mech.initial_response() if initial_response_ok else None
    reply = yield from client._command_gen(Auth(mech.name, initial), docmd=True)
    owner._auth_challenge_count = 0 if initial is None else 1
    while reply.code == 334:
        owner._auth_challenge_count += 1
        if owner._auth_challenge_count > MAX_AUTH_CHALLENGES:
            yield from _cancel_auth_gen(client)
            raise SMTPException(
                f"Server AUTH mechanism infinite loop. Last response: {reply.as_tuple()!r}"
            )
        try:
            challenge = base64.b64decode(reply.text, validate=True)
        except binascii.Error:
            challenge = reply.text  # not base64: hand over the prompt as sent
        try:
            response = mech.respond(challenge)
        except sasl.SASLError as exc:
            cancel = yield from _cancel_auth_gen(client)
            raise SMTPAuthenticationError(cancel.code, cancel.text) from exc
        reply = yield from client._command_gen(AuthResponse(response), docmd=True)
    if reply.code == 235:
        mech.verify_success()
        return reply.as_tuple()
    if reply.code == 503:
        return reply.as_tuple()
    raise SMTPAuthenticationError(reply.code, reply.text)


def _cancel_auth_gen(client: Client) -> Generator[IORequest, Any, Reply]:
    """Cancel an AUTH exchange (``*``).  RFC 4954 has the server answer 501; one that
    sends yet another 334 ignores the cancellation, so the connection is closed."""
    reply = yield from client._command_gen(AuthResponse(b"", cancel=True), docmd=True)
    if reply.code == 334:
        yield from client._abort_gen()
    return reply


def login_gen(
    client: Client, user: str, password: str, *, initial_response_ok: bool = True
) -> Operation[tuple[int, bytes]]:
    """Log in with the first of CRAM-MD5, PLAIN, LOGIN that the server offers.

    Like ``smtplib``, through ``auth`` with the ``auth_...`` authobject of each mechanism
    (a subclass's own ``auth`` or authobject is used; else this library's mechanism, which
    takes any Unicode text as UTF-8); the next mechanism is tried when one fails, and the
    last failure is raised (at once if the failure closed the connection, as a 421 does).
    """
    yield from client._greeted_gen()
    owner = client.owner
    if not owner.has_extn("auth"):
        raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    advertised = owner.esmtp_features["auth"].upper().split()
    mechanisms = [name for name in sasl.PASSWORD_MECHANISMS if name in advertised]
    if not mechanisms:
        raise SMTPException("No suitable authentication method found.")
    owner.user, owner.password = user, password
    own_auth = client._override("auth") is None
    last_error: SMTPAuthenticationError | None = None
    for name in mechanisms:
        method_name = "auth_" + name.lower().replace("-", "_")
        authobject: Any = client._override(method_name)
        if authobject is None:
            authobject = (
                sasl.mechanism_for(name, user, password)
                if own_auth
                else getattr(owner, method_name)
            )
        try:
            code, text = yield from client._call_gen(
                "auth", name, authobject, initial_response_ok=initial_response_ok
            )
        except SMTPAuthenticationError as exc:
            last_error = exc
            if not client.is_connected:
                raise  # a 421, say: no other mechanism can be tried, and this says why
            continue
        if code in (235, 503):
            return code, text
        last_error = SMTPAuthenticationError(code, text)  # a replaced auth() returned it
    assert last_error is not None
    raise last_error
