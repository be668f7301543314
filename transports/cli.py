"""The ``smtp-proto`` command (also ``python -m smtp_proto``).

``smtp-proto send`` sends one message.  With no ``--server`` it starts a local capture server
on 127.0.0.1, sends to it, and prints what the server received, so the first run needs no
mail server at all.
"""

from __future__ import annotations

import argparse
import email.message
import email.utils
import getpass
import os
import ssl
import sys
from collections.abc import Sequence

from smtp_proto.errors import SMTPException

from .testing import CaptureServer
from .sync import SMTP, SMTP_SSL

__all__ = ["main"]

#: Exit codes a script can act on.
EXIT_OK = 0
EXIT_SOME_REFUSED = 1
EXIT_FAILED = 2
EXIT_USAGE = 64


def _build_message(args: argparse.Namespace) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = args.sender
    message["To"] = ", ".join(args.to)
    message["Subject"] = args.subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain="smtp-proto.local")
    message.set_content(args.body)
    return message


def _send(args: argparse.Namespace, host: str, port: int) -> dict[str, tuple[int, bytes]]:
    """Connect, secure and authenticate as asked, and send the message."""
    context = ssl.create_default_context(cafile=args.cafile)
    smtp: SMTP
    if args.tls == "implicit":
        smtp = SMTP_SSL(host, port, args.helo, timeout=args.timeout, context=context)
    else:
        smtp = SMTP(host, port, args.helo, timeout=args.timeout)
    with smtp:
        smtp.set_debuglevel(1 if args.verbose else 0)
        if args.tls == "starttls":
            smtp.starttls(context=context)
        if args.user:
            password = os.environ.get(args.password_env) or getpass.getpass(
                f"Password for {args.user}: "
            )
            smtp.login(args.user, password)
        return smtp.send_message(_build_message(args))


def _report(refused: dict[str, tuple[int, bytes]], recipients: Sequence[str]) -> int:
    for recipient in recipients:
        if recipient in refused:
            code, text = refused[recipient]
            print(f"refused  {recipient}: {code} {text.decode('utf-8', 'replace')}")
        else:
            print(f"accepted {recipient}")
    return EXIT_SOME_REFUSED if refused else EXIT_OK


def send(args: argparse.Namespace) -> int:
    """The ``send`` command."""
    if args.server:
        host, _, port = args.server.rpartition(":") if ":" in args.server else (args.server, "", "")
        default_port = {"implicit": 465, "starttls": 587, "none": 25}[args.tls]
        refused = _send(args, host, int(port) if port else default_port)
        return _report(refused, args.to)
    args.tls = "none" if args.tls == "starttls" else args.tls
    with CaptureServer() as server:
        print(
            f"No --server given: sending to a capture server on {server.host}:{server.port}",
            flush=True,
        )
        refused = _send(args, server.host, server.port)
        status = _report(refused, args.to)
        for captured in server.messages:
            recipients = ", ".join(captured.rcpt_tos)
            print(f"\nThe server received, from {captured.mail_from} for {recipients}:")
            print(captured.data.decode("utf-8", "replace"))
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smtp-proto", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sending = commands.add_parser("send", help="send one message")
    sending.add_argument("--server", help="HOST[:PORT]; none: a local capture server")
    sending.add_argument(
        "--tls",
        choices=("starttls", "implicit", "none"),
        default="starttls",
        help="STARTTLS (default, required), implicit TLS, or none",
    )
    sending.add_argument("--cafile", help="CA certificates to trust instead of the system's")
    sending.add_argument("--user", help="log in as this user")
    sending.add_argument(
        "--password-env",
        default="SMTP_PASSWORD",
        help="environment variable with the password (else a prompt)",
    )
    sending.add_argument("--from", dest="sender", default="sender@example.com")
    sending.add_argument("--to", action="append", help="recipient (repeatable)")
    sending.add_argument("--subject", default="Hello from smtp-proto")
    sending.add_argument("--body", default="This message was sent by smtp-proto.\n")
    sending.add_argument("--helo", default="smtp-proto.local", help="name sent with EHLO")
    sending.add_argument("--timeout", type=float, default=30.0)
    sending.add_argument("-v", "--verbose", action="store_true", help="print the transcript")
    sending.set_defaults(handler=send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.to = args.to or ["recipient@example.com"]
    try:
        return int(args.handler(args))
    except (SMTPException, OSError) as exc:
        print(f"smtp-proto: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
