"""One send, as planned from the options, and its outcome: each recipient's fate, the exit code
that means, and what to tell the user when it failed."""

from __future__ import annotations

import contextlib
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from smtp_proto.errors import (
    ProxyError,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPSenderRefused,
)
from smtp_proto.proxy import Proxy
from smtp_proto.replies import Reply
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
from .connection import where
from .console import Console
from .envelope import Envelope
from .failure import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_PERMANENT,
    EXIT_TEMPORARY,
    UsageError,
    describe,
    exit_code_for,
    is_temporary,
    proxy_failure,
    refusal_code,
    tls_cause,
)
from .progress import Progress
from .session import Hooks, QuitAfter, Stage, run_session
from .tls_session import unverified_certificate
from .transcript import Transcript


@dataclass
class Plan:
    """Where and how to send: everything ``deliver`` needs, resolved from the options."""

    host: str
    port: int | None
    lmtp: bool
    unix_socket: bool
    tls: TLSMode
    context: ssl.SSLContext | None  # None without TLS: loading CA certificates takes time
    helo: str
    timeout: float
    user: str | None
    password: str | None
    mechanism: str | None
    envelope: Envelope
    transport: str = "blocking"
    chunking: bool = True
    pipelining: bool = True
    quit_after: Stage | None = None
    progress: Console | None = None
    proxy: Proxy | None = None

    @property
    def where(self) -> str:
        """The server as the user would write it: ``host:port``, ``[IPv6]:port``, a path."""
        return where(self.host, self.port)


Status = Literal["accepted", "delivered", "refused", "failed", "not sent"]


@dataclass(frozen=True)
class Fate:
    """What became of one recipient, and the reply that said so (none for ``not sent``)."""

    address: str
    status: Status
    reply: Reply | None

    @property
    def ok(self) -> bool:
        return self.status in ("accepted", "delivered")


@dataclass
class Outcome:
    """How the send went: each recipient's fate, the library's result, where it stopped, the
    error that ended it (and how the proxy failed, when it did), the exit code, and the
    milliseconds each stage took to end."""

    fates: list[Fate]
    code: int
    result: SendResult | None = None
    stopped_after: Stage | None = None
    mail_reply: Reply | None = None
    error: str | None = None
    proxy_failure: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def fates(result: SendResult, recipients: list[str]) -> list[Fate]:
    """Each recipient's fate in ``result``."""
    told: list[Fate] = []
    for address in recipients:
        final = result.lmtp_replies.get(address)
        if final is not None:
            told.append(Fate(address, "delivered" if final.is_positive else "failed", final))
        elif address in result.refused:
            told.append(Fate(address, "refused", result.refused[address]))
        elif result.data_reply is None and not result.lmtp_replies:
            told.append(Fate(address, "not sent", None))  # the server closed (421) first
        else:
            told.append(Fate(address, "accepted", result.accepted.get(address)))
    return told


def fates_code(told: list[Fate]) -> int:
    """The exit code of these fates: all, some or none accepted, and if none, whether a
    refusal was temporary."""
    accepted = sum(fate.ok for fate in told)
    if accepted == len(told):
        return EXIT_OK
    if accepted:
        return EXIT_PARTIAL
    refused = (fate.reply for fate in told if not fate.ok)
    return EXIT_TEMPORARY if any(is_temporary(reply) for reply in refused) else EXIT_PERMANENT


def _options(plan: Plan) -> SendOptions:
    envelope = plan.envelope
    options: SendOptions = {
        "sender": envelope.sender,
        "recipients": envelope.recipients,
        "tls": plan.tls,
        "context": plan.context,
        "lmtp": plan.lmtp,
        "local_hostname": plan.helo,
        "timeout": plan.timeout,
        "chunking": plan.chunking,
    }
    if plan.proxy is not None:
        options["proxy"] = plan.proxy
    if plan.user is not None:
        options["username"] = plan.user
        options["password"] = plan.password or ""
        options["plaintext_auth"] = plan.tls == "none"  # clear text only when asked for
        if plan.mechanism is not None:
            options["mechanism"] = plan.mechanism
    return options


def _stopped(plan: Plan, stop: QuitAfter) -> Outcome:
    """The outcome of a session ``--quit-after`` ended."""
    recipients = plan.envelope.recipients
    told: list[Fate] = []
    code = EXIT_OK
    if stop.mail_reply is not None and stop.mail_reply.code != 250:
        code = refusal_code(stop.mail_reply.code)
    elif stop.stage == "rcpt":
        replies = stop.rcpt_replies
        told = [
            Fate(r, "accepted" if replies[r].code in (250, 251) else "refused", replies[r])
            for r in recipients
        ]
        code = fates_code(told)
    return Outcome(told, code, stopped_after=stop.stage, mail_reply=stop.mail_reply)


def deliver(plan: Plan, transcript: Transcript) -> Outcome:
    """Send as planned, the session shown by ``transcript``; a failure is an outcome too."""
    start = time.perf_counter()
    outcome = _send(plan, transcript)
    outcome.timings = {**transcript.timings, "total": _ms_since(start)}
    return outcome


def _send(plan: Plan, transcript: Transcript) -> Outcome:
    message: Message = plan.envelope.data
    if plan.progress is not None:
        message = Progress(plan.envelope.data, plan.progress)
    hooks = Hooks(transcript, plan.quit_after, plan.pipelining, plan.unix_socket)
    try:
        with transcript.attached():
            result = run_session(
                plan.transport, hooks, message, plan.host, plan.port, options=_options(plan)
            )
    except SMTPAllRecipientsRefused as refusal:
        result = refusal.result
    except QuitAfter as stop:
        return _stopped(plan, stop)
    except OSError as exc:  # SMTPException, ProxyError, ssl's errors (some ValueErrors) included
        code = exit_code_for(exc, transcript.greeted)
        return Outcome([], code, error=explain(exc, plan), proxy_failure=proxy_failure(exc))
    except ValueError as exc:  # what the library refuses to send, unsent
        raise UsageError(str(exc)) from exc
    told = fates(result, plan.envelope.recipients)
    return Outcome(told, fates_code(told), result)


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def explain(exc: OSError, plan: Plan) -> str:
    """What went wrong, and what to do about it when this command has an option for it."""
    if isinstance(exc, ProxyError):
        return describe(exc, plan.proxy, plan.where)
    if isinstance(exc, SMTPSecurityError):
        if plan.tls == "opportunistic":
            return f"{exc}; with this command: --tls none sends the password in clear text"
        return f"{exc}; with this command: --tls opportunistic (STARTTLS when offered) or none"
    if isinstance(exc, SMTPAuthenticationError | SMTPAuthNotSupportedError):
        return f"authentication failed: {describe(exc)}"
    if isinstance(exc, SMTPConnectError):
        return f"greeting: {describe(exc)}"
    if isinstance(exc, SMTPSenderRefused):
        return f"sender <{exc.sender}> refused: {describe(exc)}"
    if isinstance(exc, SMTPDataError):
        return f"message refused: {describe(exc)}"
    cause = tls_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return _unverified(cause, plan)
    if cause is not None:
        return (
            f"TLS failed: {describe(cause)}; --tls implicit is for ports where TLS starts at "
            f"once (465), --tls starttls for those where it starts after STARTTLS (587, 25)"
        )
    if isinstance(exc, SMTPException):
        return f"{type(exc).__name__}: {describe(exc)}"
    return f"cannot connect to {plan.where}: {describe(exc)}"


def _unverified(error: ssl.SSLCertVerificationError, plan: Plan) -> str:
    """A certificate that failed verification: why, the names it was issued for (fetched
    again without checking it), and the options that deal with it."""
    lines = [f"TLS failed: {describe(error)}"]
    certificate = {}
    with contextlib.suppress(OSError, SMTPException):
        certificate = unverified_certificate(
            plan.host,
            plan.port or 0,
            implicit=plan.tls == "implicit",
            lmtp=plan.lmtp,
            helo=plan.helo,
            timeout=plan.timeout,
            proxy=plan.proxy,
        )
    if "subject" in certificate:
        names = ", ".join(certificate.get("sans") or []) or "no subjectAltName"
        lines.append(f"  the certificate: {certificate['subject']} ({names})")
        lines.append(f"  issued by:       {certificate['issuer']}")
    through = "" if plan.proxy is None else f" through the proxy {plan.proxy}"
    lines.append(f"  you connected to {plan.host}{through}")
    lines.append(
        "  to trust its CA: --cafile FILE (PEM); to skip the check, for testing only: --insecure"
    )
    return "\n".join(lines)
