"""The ``smtp-proto`` command (also ``python -m smtp_proto``): ``send`` and ``probe``.

``smtp-proto send`` sends one message, composed from options or read from a file, over the
blocking, asyncio or trio adapter.  With no ``--server`` it starts a local capture server on
127.0.0.1, sends to it, and prints what the server received, so the first run needs no mail
server at all.  ``smtp-proto probe`` shows what a server offers: greeting, extensions before
and after TLS, the TLS session and certificate, and the round-trip time.  The exit codes are
``failure.EXIT_CODES``, shown by ``smtp-proto send --help``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from .connection import parse_server
from .envelope import without_bcc
from .failure import (
    EXIT_CLOSED_OUTPUT,
    EXIT_CODES,
    EXIT_USAGE,
    Failure,
    describe,
    exit_code_for,
)
from .parser import build_parser

__all__ = ["EXIT_CODES", "EXIT_USAGE", "main", "parse_server", "without_bcc"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _escape_what_the_output_cannot_show()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command == "probe" and args.server is None and args.socket is None:
        print("smtp-proto probe: --server or --socket is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # here, where a closed pipe can still be told apart
    except Failure as failure:
        print(f"smtp-proto: {failure}", file=sys.stderr)
        return failure.code
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_CLOSED_OUTPUT
    except OSError as exc:  # outside a session: starting the capture server, say
        print(f"smtp-proto: {type(exc).__name__}: {describe(exc)}", file=sys.stderr)
        return exit_code_for(exc, greeted=False)
    except KeyboardInterrupt:
        return 130
    return code


def _escape_what_the_output_cannot_show() -> None:
    """Print a character that stdout's or stderr's encoding lacks (an ASCII locale, a cp1252
    console) as a backslash escape, rather than end with a ``UnicodeEncodeError`` after the
    message was sent: an address, a subject or the capture server's copy may hold any."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def _discard_stdout() -> None:
    """The reader of stdout went away: send what is still buffered for it to /dev/null, so
    that Python's own flush at exit does not fail again (the Python docs' advice on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
