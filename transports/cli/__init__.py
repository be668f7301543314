"""The ``smtp-proto`` command (also ``python -m smtp_proto``): ``send`` and ``probe``.

``smtp-proto send`` sends one message, composed from options or read from a file, over the
blocking, asyncio or trio adapter.  With no ``--server`` it starts a local capture server on
127.0.0.1, sends to it, and prints what the server received, so the first run needs no mail
server at all.  ``smtp-proto probe`` shows what a server offers: greeting, extensions before
and after TLS, the TLS session and certificate, and the round-trip time.

Exit codes (``send``; ``probe`` uses 0, 2, 3 and 64):

==  ===========================================================================
0   every recipient accepted
1   some recipients refused, the others accepted
2   failed: nothing delivered (server unreachable, sender or every recipient
    refused, message refused, connection lost)
3   TLS problem: STARTTLS not offered when required, handshake failed, or the
    certificate not verified
4   authentication failed (or AUTH not offered)
64  usage error: bad options or arguments, unreadable input file, no password
==  ===========================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .connection import parse_server
from .envelope import without_bcc
from .failure import EXIT_FAILED, EXIT_USAGE, Failure, describe
from .parser import build_parser

__all__ = ["main", "parse_server", "without_bcc"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command == "probe" and args.server is None:
        print("smtp-proto probe: --server is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except Failure as failure:
        print(f"smtp-proto: {failure}", file=sys.stderr)
        return failure.code
    except OSError as exc:  # SMTPException included
        print(f"smtp-proto: {type(exc).__name__}: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
