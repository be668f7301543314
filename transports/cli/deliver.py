"""One send over any adapter (blocking, asyncio or trio), its failures told as exit codes."""

from __future__ import annotations

import asyncio
import functools
import importlib
import ssl
from dataclasses import dataclass
from types import ModuleType
from typing import TextIO

from smtp_proto.errors import SMTPAuthenticationError, SMTPConnectError, SMTPSenderRefused
from smtp_proto.send import (
    SendResult,
    SMTPAllRecipientsRefused,
    SMTPAuthNotSupportedError,
    SMTPSecurityError,
    TLSMode,
)
from smtp_proto.source import Message

# Relative: installed, the parent is smtp_proto.transports; to mypy it is transports.
from .._send import SendOptions  # noqa: TID252
from .envelope import Envelope
from .failure import EXIT_AUTH, EXIT_FAILED, EXIT_TLS, Failure, UsageError, describe, tls_cause
from .progress import Progress


@dataclass
class Plan:
    """Where and how to send: everything ``deliver`` needs, resolved from the options."""

    host: str
    port: int
    lmtp: bool
    tls: TLSMode
    context: ssl.SSLContext | None  # None without TLS: loading CA certificates takes time
    helo: str
    timeout: float
    verbose: bool
    user: str | None
    password: str | None
    envelope: Envelope
    progress: TextIO | None


def _adapter(name: str) -> ModuleType:
    module = "sync" if name == "blocking" else name
    try:
        return importlib.import_module(f"smtp_proto.transports.{module}")
    except ImportError as exc:
        raise UsageError(
            f"--transport {name} needs {exc.name} (pip install smtp-proto[trio])"
        ) from None


def _adapter_send(plan: Plan, transport: str) -> SendResult:
    """The ``send()`` of the adapter ``transport`` as planned, its event loop started as it
    needs: the session itself is the library's, written once in ``smtp_proto.send``."""
    module = _adapter(transport)
    envelope = plan.envelope
    options: SendOptions = {
        "sender": envelope.sender,
        "recipients": envelope.recipients,
        "tls": plan.tls,
        "context": plan.context,
        "lmtp": plan.lmtp,
        "local_hostname": plan.helo,
        "timeout": plan.timeout,
        "debuglevel": 1 if plan.verbose else 0,
    }
    if plan.user is not None:
        options["username"] = plan.user
        options["password"] = plan.password or ""
        options["plaintext_auth"] = plan.tls == "none"  # clear text only when asked for
    body: Message = envelope.data
    if plan.progress is not None:
        body = Progress(envelope.data, plan.progress)
    call = functools.partial(module.send, body, plan.host, plan.port, **options)
    result: SendResult
    if transport == "asyncio":
        result = asyncio.run(call())
    elif transport == "trio":
        result = importlib.import_module("trio").run(call)
    else:
        result = call()
    return result


def deliver(plan: Plan, transport: str) -> SendResult:
    """Send as planned; a failure becomes a ``Failure`` with its exit code and message.

    A message no recipient took is a result like any other (``SMTPAllRecipientsRefused``
    carries it); the phase that failed is told by the exception's type, and a TLS failure by
    the ``ssl`` error behind it.
    """
    try:
        return _adapter_send(plan, transport)
    except SMTPAllRecipientsRefused as refusal:
        return refusal.result
    except SMTPSecurityError as exc:
        # The library's message names send()'s arguments; say what this command's option is.
        raise Failure(EXIT_TLS, f"{exc}; with this command: --tls none") from exc
    except (SMTPAuthenticationError, SMTPAuthNotSupportedError) as exc:
        raise Failure(EXIT_AUTH, f"authentication failed: {describe(exc)}") from exc
    except SMTPConnectError as exc:
        raise Failure(EXIT_FAILED, f"greeting: {describe(exc)}") from exc
    except SMTPSenderRefused as exc:
        raise Failure(EXIT_FAILED, f"sender <{exc.sender}> refused: {describe(exc)}") from exc
    except OSError as exc:  # SMTPException included
        if tls_cause(exc) is None:
            raise
        raise Failure(EXIT_TLS, f"TLS failed: {describe(exc)}") from exc
