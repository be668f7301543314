"""The ``send`` command: one message to the server named, or to a capture server started here,
and each recipient's fate."""

from __future__ import annotations

import argparse
import sys

# Relative: installed, the parent is smtp_proto.transports; to mypy it is transports.
from ..testing import CaptureServer  # noqa: TID252
from .connection import Target, proxy_of, target_of, tls_context
from .console import Console
from .deliver import Outcome, Plan, deliver
from .envelope import Envelope, build_envelope
from .failure import EXIT_OK, UsageError
from .password import read_password
from .progress import wants_progress
from .report import as_json, as_lines
from .transcript import HIDDEN, DataView, Hidden, Transcript, View

#: The envelope with no server named: the capture server takes any addresses.
_CAPTURE_SENDER = "sender@example.com"
_CAPTURE_RECIPIENT = "recipient@example.com"


def _password(args: argparse.Namespace) -> str | None:
    if args.user is None:
        return None
    return read_password(args.password_env, f"Password for {args.user}: ")


def _view(args: argparse.Namespace) -> View:
    hidden: frozenset[Hidden] = frozenset(kind for kind in HIDDEN if getattr(args, f"hide_{kind}"))
    if hidden and not args.verbose:
        raise UsageError("--hide-* shape the transcript: add -v")
    data: DataView = "full" if args.show_data else "none" if args.suppress_data else "summary"
    return View(data=data, hidden=hidden)


def _plan(args: argparse.Namespace, target: Target, envelope: Envelope, console: Console) -> Plan:
    return Plan(
        host=target.host,
        port=target.port,
        lmtp=target.lmtp,
        unix_socket=target.unix,
        tls=target.tls,
        context=None if target.tls == "none" else tls_context(args),
        helo=args.helo,
        timeout=args.timeout,
        user=args.user,
        password=_password(args),
        mechanism=args.auth,
        envelope=envelope,
        transport=args.transport,
        chunking=args.chunking,
        pipelining=args.pipelining,
        quit_after=args.quit_after,
        progress=console if wants_progress(args, len(envelope.data)) else None,
        proxy=target.proxy,
    )


def _send(args: argparse.Namespace, target: Target, envelope: Envelope) -> tuple[Outcome, Plan]:
    """Send ``envelope`` to ``target`` as the options say; print the outcome for people (the
    JSON report is the caller's to print, with what it adds)."""
    console = Console(sys.stderr)
    plan = _plan(args, target, envelope, console)
    transcript = Transcript(
        console if args.verbose else None, envelope.data, args.view, tls=target.tls == "implicit"
    )
    through = "" if plan.proxy is None else f" through the proxy {plan.proxy}"
    transcript.info(f"connecting to {plan.where} ({'LMTP' if plan.lmtp else 'SMTP'}){through}")
    outcome = deliver(plan, transcript)
    if outcome.error is not None:
        print(f"smtp-proto: {outcome.error}", file=sys.stderr)
    if not args.json:
        for line in as_lines(outcome, plan):
            print(line)
    return outcome, plan


def _check_options(args: argparse.Namespace) -> None:
    """Refuse what does not go together; fill in the composed message's defaults."""
    if args.auth is not None and args.user is None:
        raise UsageError("--auth chooses how --user logs in: give --user too")
    args.view = _view(args)  # checked before anything is sent
    if args.eml is not None and (args.attach or args.body_file or args.body is not None):
        raise UsageError("--eml sends a ready message: no --body, --body-file or --attach")
    if args.eml is not None and args.subject is not None:
        raise UsageError("--eml sends a ready message: no --subject")
    args.subject = "Hello from smtp-proto" if args.subject is None else args.subject
    args.body = "This message was sent by smtp-proto.\n" if args.body is None else args.body


def send(args: argparse.Namespace) -> int:
    """The ``send`` command."""
    _check_options(args)
    capture = args.server is None and args.socket is None
    if capture and not (args.to or args.cc or args.bcc or args.eml):
        args.to = [_CAPTURE_RECIPIENT]
    envelope = build_envelope(args, default_sender=_CAPTURE_SENDER if capture else None)
    if args.dump_message:
        sys.stdout.flush()
        sys.stdout.buffer.write(envelope.data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    if capture:
        return _send_to_capture_server(args, envelope)
    outcome, plan = _send(args, target_of(args), envelope)
    if args.json:
        print(as_json(outcome, plan))
    return outcome.code


def _send_to_capture_server(args: argparse.Namespace, envelope: Envelope) -> int:
    """No server named: send to a capture server started here, then show what it received."""
    if args.tls not in (None, "none") or args.user is not None:
        raise UsageError("the capture server (no --server) has no TLS and no AUTH")
    proxy = proxy_of(args)  # a capture server on 127.0.0.1 is reached through it too
    with CaptureServer(lmtp=args.lmtp) as server:
        print(
            f"No --server given: sending to a capture server on {server.host}:{server.port}",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )
        target = Target(args.lmtp, "none", server.host, server.port, unix=False, proxy=proxy)
        outcome, plan = _send(args, target, envelope)
    captured = server.messages
    if args.json:
        received = [
            {
                "mail_from": message.mail_from,
                "rcpt_tos": message.rcpt_tos,
                "data": message.data.decode("utf-8", "replace"),
            }
            for message in captured
        ]
        print(as_json(outcome, plan, captured=received))
        return outcome.code
    for message in captured:
        recipients = ", ".join(f"<{r}>" for r in message.rcpt_tos)
        print(f"\nThe capture server received, from <{message.mail_from}> for {recipients}:")
        print(message.data.decode("utf-8", "replace"))
    return outcome.code
