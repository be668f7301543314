"""The command line's parser: the ``send`` and ``probe`` subcommands and their options."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from . import __doc__ as _package_doc  # its first paragraph is the command's description
from .failure import EXIT_USAGE
from .probe import probe
from .send import send


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 64 (EX_USAGE) instead of 2 (which means failed)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        help="HOST[:PORT], [IPv6]:PORT, or the absolute path of an LMTP Unix socket",
    )
    parser.add_argument("--lmtp", action="store_true", help="speak LMTP over TCP (port 24)")
    parser.add_argument(
        "--tls",
        choices=("starttls", "implicit", "none"),
        help="starttls (the default with --server; required by send), implicit TLS (port "
        "465), or none (the default for a Unix socket and the capture server)",
    )
    parser.add_argument("--cafile", help="PEM file of CA certificates to trust instead")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do NOT verify the server's certificate (testing only)",
    )
    parser.add_argument("--helo", default="smtp-proto.local", help="name sent with EHLO/LHLO")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per write and per whole reply"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the transcript")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="smtp-proto", description=(_package_doc or "").split("\n\n")[0], allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sending = commands.add_parser("send", help="send one message", allow_abbrev=False)
    _connection_options(sending)
    sending.add_argument("--transport", choices=("blocking", "asyncio", "trio"), default="blocking")
    sending.add_argument("--user", help="log in as this user")
    sending.add_argument(
        "--password-env",
        default="SMTP_PASSWORD",
        help="environment variable holding the password (default SMTP_PASSWORD; else a prompt)",
    )
    sending.add_argument("--from", dest="sender", help="envelope sender and From header")
    for option, what in (("to", "To"), ("cc", "Cc"), ("bcc", "envelope-only")):
        sending.add_argument(f"--{option}", action="append", default=[], help=f"{what} recipient")
    sending.add_argument("--subject")
    body = sending.add_mutually_exclusive_group()
    body.add_argument("--body", help="the text of the message")
    body.add_argument("--body-file", help="a UTF-8 file with the text ('-': standard input)")
    sending.add_argument("--attach", action="append", default=[], help="attach a file")
    sending.add_argument("--eml", help="send this ready message file as is (Bcc removed)")
    sending.add_argument("--progress", action="store_true", help="progress bar on stderr")
    sending.set_defaults(handler=send)
    probing = commands.add_parser("probe", help="show what a server offers", allow_abbrev=False)
    _connection_options(probing)
    probing.add_argument("--json", action="store_true", help="machine-readable output")
    probing.set_defaults(handler=probe)
    return parser
