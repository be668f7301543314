"""How the command fails: its exit codes, the exceptions that carry them, and what to tell the
user about an error."""

from __future__ import annotations

import ssl
from typing import Any

from smtp_proto.errors import (
    ProxyAuthenticationError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    ProxyTimeoutError,
    ProxyUnreachableError,
    RemoteProtocolError,
    SMTPAuthenticationError,
    SMTPNotSupportedError,
    SMTPResponseException,
)
from smtp_proto.proxy import Proxy
from smtp_proto.replies import Reply
from smtp_proto.sasl import SASLError
from smtp_proto.send import SMTPAuthNotSupportedError, SMTPSecurityError

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_PERMANENT = 2
EXIT_TLS = 3
EXIT_AUTH = 4
EXIT_NO_CONNECTION = 5
EXIT_PROXY = 6
EXIT_USAGE = 64  # sysexits.h EX_USAGE
EXIT_TEMPORARY = 75  # sysexits.h EX_TEMPFAIL, as sendmail and the MTAs' delivery agents use it
EXIT_CLOSED_OUTPUT = 141  # 128 + SIGPIPE: what a shell reports for a program a closed pipe ended

#: Every exit code and what it means: the one source of ``send --help`` and the docs' table.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "delivered: every recipient accepted (with --quit-after: every reply positive)"),
    (EXIT_PARTIAL, "partly delivered: some recipients accepted, the others refused"),
    (
        EXIT_PERMANENT,
        "refused permanently: nothing delivered, every refusal a 5xx reply (or the server "
        "cannot take this message at all); do not retry unchanged",
    ),
    (EXIT_TLS, "TLS failed: STARTTLS not offered, handshake failed, certificate not verified"),
    (EXIT_AUTH, "authentication failed, or the server offers no AUTH we can use"),
    (
        EXIT_NO_CONNECTION,
        "no connection: the name did not resolve, or the server refused or did not answer "
        "the connection",
    ),
    (
        EXIT_PROXY,
        "the proxy failed: it could not be reached or did not answer in time, refused the "
        "credentials or the connection, could not reach the server, or broke its protocol",
    ),
    (EXIT_USAGE, "usage error: bad options, an unreadable input file, no password"),
    (
        EXIT_TEMPORARY,
        "refused temporarily: nothing delivered, a 4xx reply, or the connection lost or timed "
        "out during the session; trying again later may work",
    ),
    (EXIT_CLOSED_OUTPUT, "standard output was closed (a pipe's reader exited) before the end"),
)


class Failure(Exception):
    """The command cannot go on: the exit code and what to tell the user."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class UsageError(Failure):
    """Bad options or input files (exit code 64)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE, message)


def tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error behind ``exc``, if TLS is what failed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


#: The kinds of proxy failure, most specific first, as ``--json`` names them.
_PROXY_FAILURES: tuple[tuple[type[ProxyError], str], ...] = (
    (ProxyAuthenticationError, "authentication"),
    (ProxyTargetUnreachableError, "server unreachable"),
    (ProxyRefusedError, "refused"),
    (ProxyUnreachableError, "proxy unreachable"),
    (ProxyTimeoutError, "timeout"),
    (ProxyProtocolError, "protocol"),
    (ProxyError, "proxy"),
)


def proxy_failure(exc: BaseException) -> dict[str, Any] | None:
    """How the proxy failed, for ``--json``: its kind, and its code and words when it refused
    (a SOCKS5 reply or status code, an HTTP status); ``None`` if the proxy is not what failed."""
    if not isinstance(exc, ProxyError):
        return None
    kind = next(name for cls, name in _PROXY_FAILURES if isinstance(exc, cls))
    if isinstance(exc, ProxyRefusedError):
        return {"kind": kind, "code": exc.code, "reason": exc.reason}
    return {"kind": kind, "code": None, "reason": None}


def _describe_proxy(exc: ProxyError, proxy: Proxy | None, server: str) -> str:
    """A proxy's failure in a line naming the proxy (its password shown as ``****``)."""
    name = f"proxy {proxy}" if proxy is not None else "the proxy"
    if isinstance(exc, ProxyRefusedError):
        said = f"({exc.code}: {exc.reason})"
        if isinstance(exc, ProxyAuthenticationError):
            if proxy is not None and proxy.username is None:
                hint = f"{proxy.scheme}://USER@{proxy.host}:{proxy.port}"
                return f"{name}: authentication failed {said}; give a user: --proxy {hint}"
            return f"{name}: authentication failed {said}"
        if isinstance(exc, ProxyTargetUnreachableError):
            return f"{name} could not reach {server} {said}"
        return f"{name} refused the connection to {server} {said}"
    if isinstance(exc, ProxyUnreachableError):
        cause = exc.__cause__  # the error connecting to it
        return f"{name} unreachable: {exc if cause is None else describe(cause)}"
    if isinstance(exc, ProxyTimeoutError):
        return f"{name}: no answer within --timeout"
    return f"{name} failed: {exc}"


def describe(exc: BaseException, proxy: Proxy | None = None, server: str = "the server") -> str:
    """What went wrong, in a line: the server's reply when there was one; for a proxy's
    failure, the ``proxy`` and what it did about ``server``."""
    if isinstance(exc, ProxyError):
        return _describe_proxy(exc, proxy, server)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not verified: {exc.verify_message}"
    if isinstance(exc, SMTPResponseException):
        text = exc.smtp_error
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__


def refusal_code(code: int | None) -> int:
    """The exit code of a refusal with this reply code (``None``: no reply came at all)."""
    return EXIT_PERMANENT if code is not None and 500 <= code < 600 else EXIT_TEMPORARY


def exit_code_for(exc: BaseException, greeted: bool) -> int:
    """The exit code of a session that ended with ``exc``; ``greeted``: whether the server's
    greeting had come (an error before it means there was no connection to speak of)."""
    if isinstance(exc, ProxyError):
        return EXIT_PROXY
    if isinstance(exc, SMTPSecurityError) or tls_cause(exc) is not None:
        return EXIT_TLS
    if isinstance(exc, SMTPAuthenticationError | SMTPAuthNotSupportedError | SASLError):
        return EXIT_AUTH
    if isinstance(exc, RemoteProtocolError):
        return EXIT_TEMPORARY  # a misbehaving server: another try may meet a better one
    if isinstance(exc, SMTPResponseException):
        return refusal_code(exc.smtp_code)
    if isinstance(exc, SMTPNotSupportedError):
        return EXIT_PERMANENT  # the message needs what the server does not offer
    return EXIT_TEMPORARY if greeted else EXIT_NO_CONNECTION


def is_temporary(reply: Reply | None) -> bool:
    """Whether a refusal may go away by itself: a 4xx reply, or none at all."""
    return refusal_code(None if reply is None else reply.code) == EXIT_TEMPORARY
