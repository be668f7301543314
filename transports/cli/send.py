"""The ``send`` command: one message to the server named, or to a capture server started here,
and each recipient's fate."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from smtp_proto.send import SendResult

# Relative: installed, the parent is smtp_proto.transports; to mypy it is transports.
from ..testing import CaptureServer  # noqa: TID252
from .connection import Target, target_of, tls_context
from .deliver import Plan, deliver
from .envelope import Envelope, build_envelope
from .failure import EXIT_FAILED, EXIT_OK, EXIT_SOME_REFUSED, UsageError
from .progress import progress_stream


def _password(args: argparse.Namespace) -> str | None:
    if args.user is None:
        return None
    from_environment = os.environ.get(args.password_env)
    if from_environment is not None:
        return from_environment
    try:
        return getpass.getpass(f"Password for {args.user}: ")
    except (OSError, EOFError):
        raise UsageError(f"no password: set ${args.password_env}, or run in a terminal") from None


def _show_results(result: SendResult, recipients: Sequence[str]) -> int:
    """Print each recipient's fate; returns the exit code it means."""
    delivered = 0
    for recipient in recipients:
        reply = result.lmtp_replies.get(recipient)
        if reply is not None:
            label = "delivered" if 200 <= reply.code < 300 else "failed"
        elif recipient in result.refused:
            reply, label = result.refused[recipient], "refused"
        elif result.data_reply is None:
            label = "not sent"  # accepted, but the server closed (421) before the message
        else:
            label = "accepted"
        delivered += label in ("delivered", "accepted")
        said = "" if reply is None else f"  {reply.code} {reply.text.decode('utf-8', 'replace')}"
        print(f"{label:<9} {recipient}{said}")
    print(f"{delivered} of {len(recipients)} recipients accepted")
    if delivered == len(recipients):
        return EXIT_OK
    return EXIT_FAILED if delivered == 0 else EXIT_SOME_REFUSED


def _send_and_show(args: argparse.Namespace, target: Target, envelope: Envelope) -> int:
    """Send ``envelope`` to ``target`` as the options say, and show each recipient's fate."""
    lmtp, tls, host, port = target
    plan = Plan(
        host=host,
        port=port,
        lmtp=lmtp,
        tls=tls,
        context=None if tls == "none" else tls_context(args),
        helo=args.helo,
        timeout=args.timeout,
        verbose=args.verbose,
        user=args.user,
        password=_password(args),
        envelope=envelope,
        progress=progress_stream(args, len(envelope.data)),
    )
    return _show_results(deliver(plan, args.transport), envelope.recipients)


def send(args: argparse.Namespace) -> int:
    """The ``send`` command."""
    if args.eml is not None and (args.attach or args.body_file or args.body is not None):
        raise UsageError("--eml sends a ready message: no --body, --body-file or --attach")
    if args.eml is not None and args.subject is not None:
        raise UsageError("--eml sends a ready message: no --subject")
    args.subject = "Hello from smtp-proto" if args.subject is None else args.subject
    args.body = "This message was sent by smtp-proto.\n" if args.body is None else args.body
    if args.server is None:
        return _send_to_capture_server(args)
    target = target_of(args)
    return _send_and_show(args, target, build_envelope(args, default_sender=None))


def _send_to_capture_server(args: argparse.Namespace) -> int:
    """No server named: send to a capture server started here, then show what it received."""
    if args.tls not in (None, "none") or args.user is not None:
        raise UsageError("the capture server (no --server) has no TLS and no AUTH")
    if not (args.to or args.cc or args.bcc or args.eml):
        args.to = ["recipient@example.com"]
    envelope = build_envelope(args, default_sender="sender@example.com")
    with CaptureServer(lmtp=args.lmtp) as server:
        print(f"No --server given: sending to a capture server on {server.host}:{server.port}")
        sys.stdout.flush()
        status = _send_and_show(args, (args.lmtp, "none", server.host, server.port), envelope)
        for captured in server.messages:
            print(
                f"\nThe capture server received, from <{captured.mail_from}> "
                f"for {', '.join(f'<{r}>' for r in captured.rcpt_tos)}:"
            )
            print(captured.data.decode("utf-8", "replace"))
    return status
