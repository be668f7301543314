"""The command line's parser: the ``send`` and ``probe`` subcommands and their options."""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
import threading
from typing import NoReturn

import smtp_proto

from .envelope import parse_header
from .failure import EXIT_CODES, EXIT_USAGE
from .probe import probe
from .send import send
from .session import STAGES
from .transcript import HIDDEN

_DESCRIPTION = """\
Send a message, in the spirit of swaks, or see what a mail server offers.

  smtp-proto send    send one message (to a capture server started on 127.0.0.1
                     when no --server is given) and tell each recipient's fate
  smtp-proto probe   show a server's greeting, extensions, TLS and certificate

Run "smtp-proto send --help" or "smtp-proto probe --help" for their options."""

_SEND_DESCRIPTION = """\
Send one message and print each recipient's fate on stdout (-v: the session on stderr).

With no --server (and no --socket), a capture server is started on 127.0.0.1 and the
message goes to it, in clear text; what it received is printed afterwards. So the first
try needs no mail server at all."""

_PROBE_DESCRIPTION = """\
Connect, say EHLO, start TLS where offered, and show the greeting, the extensions before
and after TLS, the TLS session, the certificate and whether it was verified, and the
round trip of a NOOP. Nothing is sent but EHLO, STARTTLS, NOOP and QUIT.

exit codes: 0 all well, 2 the server refused, 3 TLS or certificate problem, 5 no
connection, 6 the proxy failed, 64 usage error, 75 the connection failed during the
session."""


def _exit_codes() -> str:
    lines = ["exit codes:"]
    for code, meaning in EXIT_CODES:
        lines.append(
            textwrap.fill(meaning, 88, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
        )
    return "\n".join(lines)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; each option's default after its help, unless the help
    already says what happens without it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 64 (EX_USAGE) instead of 2 (which means refused)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return int(text)


def _seconds(text: str) -> float:
    """A timeout: above 0 (0 would mean non-blocking sockets), and no longer than a wait the
    operating system can take (``threading.TIMEOUT_MAX``; sockets refuse longer ones)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= threading.TIMEOUT_MAX:
        most = int(threading.TIMEOUT_MAX)
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, {most}]")
    return seconds


def _helo_name(text: str) -> str:
    """An EHLO name that the EHLO line can carry: the core's own check, before connecting."""
    try:
        smtp_proto.Ehlo(text).encode(utf8=True)
    except smtp_proto.LocalProtocolError:
        raise argparse.ArgumentTypeError(f"{text!r} holds a control character") from None
    return text


def _header(text: str) -> tuple[str, str]:
    try:
        return parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _connection_options(parser: argparse.ArgumentParser, without_server: str) -> None:
    where = parser.add_argument_group("where to connect")
    where.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        help="the server: HOST, HOST:PORT, [IPv6]:PORT, or the absolute path of an LMTP Unix "
        f"socket (default: {without_server})",
    )
    where.add_argument(
        "--port",
        type=_port,
        help="the port, if not in --server (default: 587 with --tls starttls, 465 with "
        "implicit, 25 with opportunistic or none, 2003 with --lmtp)",
    )
    where.add_argument(
        "--socket",
        metavar="PATH",
        help="speak SMTP (LMTP with --lmtp) over this Unix socket instead of --server "
        "(default: TCP)",
    )
    where.add_argument(
        "--lmtp", action="store_true", help="speak LMTP instead of SMTP (default: SMTP)"
    )
    where.add_argument(
        "--proxy",
        metavar="URL",
        help="connect through this proxy: socks5://[USER@]HOST:PORT (SOCKS5, names resolved "
        "by the proxy) or http://[USER@]HOST:PORT (HTTP CONNECT). Only this option sets a "
        "proxy: ALL_PROXY, HTTPS_PROXY and the like are ignored (default: connect directly)",
    )
    where.add_argument(
        "--proxy-password-env",
        metavar="NAME",
        default="SMTP_PROXY_PASSWORD",
        help="the environment variable holding the password of the --proxy USER; without it, "
        "a prompt",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument(
        "--tls",
        choices=("starttls", "opportunistic", "implicit", "none"),
        help="starttls: STARTTLS, required; opportunistic: STARTTLS when offered, else clear "
        "text; implicit: TLS from the first byte; none: clear text (default: starttls with "
        "--server, none for a Unix socket and the capture server)",
    )
    tls.add_argument(
        "--cafile",
        metavar="FILE",
        help="trust the CA certificates in this PEM file (default: the system's CA store)",
    )
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do NOT verify the server's certificate, for testing only (default: verify)",
    )
    session = parser.add_argument_group("session")
    session.add_argument(
        "--helo", type=_helo_name, default="smtp-proto.local", help="the name sent with EHLO"
    )
    session.add_argument(
        "--timeout", type=_seconds, default=30.0, help="seconds allowed per write and per reply"
    )
    session.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the session on stderr: -> client, <- server, ~> and <~ inside TLS, == "
        "notes (default: quiet)",
    )


def _send_options(parser: argparse.ArgumentParser) -> None:
    login = parser.add_argument_group("authentication")
    login.add_argument("--user", help="log in as this user (default: no AUTH)")
    login.add_argument(
        "--password-env",
        metavar="NAME",
        default="SMTP_PASSWORD",
        help="the environment variable holding the password; without it, a prompt",
    )
    login.add_argument(
        "--auth",
        metavar="MECHANISM",
        help="log in with this SASL mechanism: PLAIN, LOGIN, CRAM-MD5 or SCRAM-SHA-256 "
        "(default: the best the server offers)",
    )
    message = parser.add_argument_group("the message")
    message.add_argument(
        "--from",
        dest="sender",
        metavar="ADDRESS",
        help="the envelope sender and From: required with --server (default: "
        "sender@example.com for the capture server, the From of --eml)",
    )
    for option, what in (("to", "To"), ("cc", "Cc"), ("bcc", "envelope-only, no header")):
        message.add_argument(
            f"--{option}",
            action="append",
            default=[],
            metavar="ADDRESS",
            help=f"a recipient ({what}); repeatable (default: none)",
        )
    message.add_argument("--subject", help='the Subject (default: "Hello from smtp-proto")')
    body = message.add_mutually_exclusive_group()
    body.add_argument("--body", help="the text of the message (default: a line of greeting)")
    body.add_argument(
        "--body-file",
        metavar="FILE",
        help="a UTF-8 file with the text, '-' for standard input (default: --body)",
    )
    message.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file, its type guessed from its name; repeatable (default: none)",
    )
    message.add_argument(
        "--header",
        action="append",
        default=[],
        type=_header,
        metavar="NAME:VALUE",
        help="add this header field, replacing one of the same name; repeatable (default: none)",
    )
    message.add_argument(
        "--eml",
        metavar="FILE",
        help="send this ready message as it is, Bcc removed; envelope from its headers "
        "unless given (default: compose one)",
    )
    message.add_argument(
        "--dump-message",
        action="store_true",
        help="print the message that would be sent, and send nothing (default: send)",
    )
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument(
        "--transport", choices=("blocking", "asyncio", "trio"), default="blocking",
        help="the library's adapter to send with",
    )  # fmt: skip
    protocol.add_argument(
        "--no-pipelining",
        dest="pipelining",
        action="store_false",
        help="one command at a time, even if the server offers PIPELINING (default: pipeline)",
    )
    protocol.add_argument(
        "--no-chunking",
        dest="chunking",
        action="store_false",
        help="DATA, even if the server offers CHUNKING (default: BDAT when offered)",
    )
    protocol.add_argument(
        "--quit-after",
        choices=STAGES,
        help="QUIT after this stage, without sending the message (default: send it)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json", action="store_true", help="print the outcome as JSON (default: lines of text)"
    )
    output.add_argument(
        "--progress",
        action="store_true",
        help="draw a progress bar on stderr (default: for 1 MiB or more, on a terminal)",
    )
    data = output.add_mutually_exclusive_group()
    data.add_argument(
        "--show-data",
        action="store_true",
        help="-v shows the message line by line (default: its size only)",
    )
    data.add_argument(
        "--suppress-data",
        action="store_true",
        help="-v leaves the message out, not even its size (default: its size only)",
    )
    for kind, lines in zip(HIDDEN, ("client's", "server's", "== note"), strict=True):
        output.add_argument(
            f"--hide-{kind}",
            action="store_true",
            dest=f"hide_{kind}",
            help=f"-v leaves out the {lines} lines (default: shown)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="smtp-proto",
        description=_DESCRIPTION,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version", action="version", version=f"smtp-proto {smtp_proto.__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="{send,probe}"
    )
    sending = commands.add_parser(
        "send",
        help="send one message",
        description=_SEND_DESCRIPTION,
        epilog=_exit_codes(),
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    _connection_options(sending, "a capture server started on 127.0.0.1")
    _send_options(sending)
    sending.set_defaults(handler=send)
    probing = commands.add_parser(
        "probe",
        help="show what a server offers",
        description=_PROBE_DESCRIPTION,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    _connection_options(probing, "none: give --server or --socket")
    probing.add_argument(
        "--json", action="store_true", help="print the report as JSON (default: lines of text)"
    )
    probing.set_defaults(handler=probe)
    return parser
