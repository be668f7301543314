"""How the command fails: its exit codes, the exceptions that carry them, and what to tell the
user about an error."""

from __future__ import annotations

import ssl

from smtp_proto.errors import SMTPResponseException

EXIT_OK = 0
EXIT_SOME_REFUSED = 1
EXIT_FAILED = 2
EXIT_TLS = 3
EXIT_AUTH = 4
EXIT_USAGE = 64


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


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not verified: {exc.verify_message}"
    if isinstance(exc, SMTPResponseException):
        text = exc.smtp_error
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__
