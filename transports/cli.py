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

import argparse
import asyncio
import email.message
import email.parser
import email.policy
import email.utils
import functools
import getpass
import hashlib
import importlib
import io
import json
import mimetypes
import os
import ssl
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn, TextIO

from smtp_proto.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPResponseException,
    SMTPSenderRefused,
)
from smtp_proto.message import header_envelope
from smtp_proto.ports import LMTP_PORT, SMTP_PORT, SMTPS_PORT, SUBMISSION_PORT
from smtp_proto.send import (
    SendResult,
    SMTPAllRecipientsRefused,
    SMTPAuthNotSupportedError,
    SMTPSecurityError,
    TLSMode,
)
from smtp_proto.source import Message

from . import sync
from ._send import SendOptions
from .testing import CaptureServer

__all__ = ["main", "parse_server", "without_bcc"]

EXIT_OK = 0
EXIT_SOME_REFUSED = 1
EXIT_FAILED = 2
EXIT_TLS = 3
EXIT_AUTH = 4
EXIT_USAGE = 64

#: Messages at least this large get a progress bar when stderr is a terminal.
PROGRESS_THRESHOLD = 1 << 20
#: The IANA port of LMTP over TCP (RFC 2033).
_DEFAULT_PORTS = {"implicit": SMTPS_PORT, "starttls": SUBMISSION_PORT, "none": SMTP_PORT}
_NOOP_SAMPLES = 5


class Failure(Exception):
    """The command cannot go on: the exit code and what to tell the user."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class UsageError(Failure):
    """Bad options or input files (exit code 64)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE, message)


# ---------------------------------------------------------------------- pure helpers


def parse_server(text: str, default_port: int) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]``, ``[IPv6]:PORT``, a bare IPv6 address, or the
    absolute path of a Unix socket (port 0).  Raises ``ValueError`` for anything else."""
    if text.startswith("/"):
        return text, 0
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""  # a name, an IPv4 address or a bare IPv6 address
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"bad server {text!r}: no host name")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad server {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def without_bcc(data: bytes) -> bytes:
    """``data`` with its ``Bcc`` and ``Resent-Bcc`` header fields removed, every other byte
    kept: the blind recipients belong in the envelope only."""
    out = io.BytesIO()
    lines = iter(data.splitlines(keepends=True))
    dropping = False
    for line in lines:
        if line in (b"\r\n", b"\n"):
            out.write(line)
            break  # the end of the header section
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.write(line)
            continue
        name = line.partition(b":")[0].strip().lower()
        dropping = name in (b"bcc", b"resent-bcc")
        if not dropping:
            out.write(line)
    for line in lines:
        out.write(line)
    return out.getvalue()


def _unique(addresses: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(address for address in addresses if address))


# ---------------------------------------------------------------------- the message


@dataclass
class Envelope:
    """What ``send`` sends: envelope and the message's bytes (``send()`` of the library
    declares what they need: SMTPUTF8, 8BITMIME, SIZE)."""

    sender: str
    recipients: list[str]
    data: bytes


def _read(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _compose(args: argparse.Namespace, sender: str) -> email.message.EmailMessage:
    """The message the options describe (Bcc recipients left out of the headers)."""
    message = email.message.EmailMessage()
    message["From"] = sender
    if args.to:
        message["To"] = ", ".join(args.to)
    if args.cc:
        message["Cc"] = ", ".join(args.cc)
    message["Subject"] = args.subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain="smtp-proto.local")
    if args.body_file is not None:
        try:
            body = _read(args.body_file).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{args.body_file} is not UTF-8 text") from None
    else:
        body = args.body
    message.set_content(body)
    for path in args.attach:
        content_type, encoding = mimetypes.guess_type(path)
        if content_type is None or encoding is not None:
            content_type = "application/octet-stream"  # unknown, or compressed
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(
            _read(path), maintype=maintype, subtype=subtype, filename=os.path.basename(path)
        )
    return message


def build_envelope(args: argparse.Namespace, default_sender: str | None) -> Envelope:
    """The envelope and bytes to send, from the options or the ``--eml`` file."""
    recipients = _unique([*args.to, *args.cc, *args.bcc])
    if args.eml is not None:
        raw = _read(args.eml)
        headers = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            raw, headersonly=True
        )
        try:
            header_sender, header_recipients = header_envelope(headers)
        except (ValueError, IndexError) as exc:  # several Resent- blocks, an empty From
            raise UsageError(f"{args.eml}: {exc}") from None
        sender = args.sender or header_sender
        recipients = recipients or _unique(header_recipients)
        data = without_bcc(raw)
    else:
        sender = args.sender or default_sender
        if sender is None:
            raise UsageError("--from is required with --server")
        data = b""
    if sender is None:
        raise UsageError("no sender: give --from, or a From header in the --eml file")
    if not recipients:
        raise UsageError("no recipients: give --to, --cc or --bcc")
    if args.eml is None:
        international = not all(address.isascii() for address in (sender, *recipients))
        policy = email.policy.SMTPUTF8 if international else email.policy.SMTP
        data = _compose(args, sender).as_bytes(policy=policy)
    return Envelope(sender, recipients, data)


class _Progress(io.BytesIO):
    """The message as a file the client streams from, drawing a progress bar as it is read.

    A file (unlike an iterable of chunks) has a known size, so MAIL still carries SIZE=.
    """

    def __init__(self, data: bytes, out: TextIO) -> None:
        super().__init__(data)
        self._total = len(data)
        self._out = out
        self._shown = -1

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        done = self.tell()
        percent = done * 100 // self._total if self._total else 100
        if percent != self._shown:
            self._shown = percent
            bar = "#" * (percent * 30 // 100)
            self._out.write(
                f"\r[{bar:.<30}] {percent:3d}% {done / 2**20:.1f}/{self._total / 2**20:.1f} MiB"
                + ("\n" if done >= self._total else "")
            )
            self._out.flush()
        return chunk


# ---------------------------------------------------------------------- one send, any adapter

#: Where to send: LMTP or not, the TLS mode, the host (or a Unix socket's path) and port.
Target = tuple[bool, TLSMode, str, int]


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


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error behind ``exc``, if TLS is what failed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not verified: {exc.verify_message}"
    if isinstance(exc, SMTPResponseException):
        text = exc.smtp_error
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__


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
        body = _Progress(envelope.data, plan.progress)
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
        raise Failure(EXIT_AUTH, f"authentication failed: {_describe(exc)}") from exc
    except SMTPConnectError as exc:
        raise Failure(EXIT_FAILED, f"greeting: {_describe(exc)}") from exc
    except SMTPSenderRefused as exc:
        raise Failure(EXIT_FAILED, f"sender <{exc.sender}> refused: {_describe(exc)}") from exc
    except OSError as exc:  # SMTPException included
        if _tls_cause(exc) is None:
            raise
        raise Failure(EXIT_TLS, f"TLS failed: {_describe(exc)}") from exc


# ---------------------------------------------------------------------- send


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    """Verifying TLS (system CAs, or ``--cafile``) unless ``--insecure`` says otherwise."""
    if args.insecure:
        print("smtp-proto: --insecure: the server's certificate is NOT checked", file=sys.stderr)
        return _unverified_context()
    try:
        return ssl.create_default_context(cafile=args.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load --cafile {args.cafile}: {exc}") from None


def _target(args: argparse.Namespace) -> Target:
    """LMTP or not, the TLS mode, host (or socket path) and port the options name."""
    unix = args.server.startswith("/")
    lmtp = args.lmtp or unix
    tls: TLSMode = args.tls or ("none" if unix else "starttls")
    if unix and tls != "none":
        raise UsageError("a Unix socket is local: no --tls with it")
    if lmtp and tls == "implicit":
        raise UsageError("LMTP with implicit TLS is not supported (use --tls starttls)")
    try:
        host, port = parse_server(args.server, LMTP_PORT if lmtp else _DEFAULT_PORTS[tls])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return lmtp, tls, host, port


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


def _progress_stream(args: argparse.Namespace, size: int) -> TextIO | None:
    if args.progress or (size >= PROGRESS_THRESHOLD and sys.stderr.isatty()):
        return sys.stderr
    return None


def _send_and_show(args: argparse.Namespace, target: Target, envelope: Envelope) -> int:
    """Send ``envelope`` to ``target`` as the options say, and show each recipient's fate."""
    lmtp, tls, host, port = target
    plan = Plan(
        host=host,
        port=port,
        lmtp=lmtp,
        tls=tls,
        context=None if tls == "none" else _context(args),
        helo=args.helo,
        timeout=args.timeout,
        verbose=args.verbose,
        user=args.user,
        password=_password(args),
        envelope=envelope,
        progress=_progress_stream(args, len(envelope.data)),
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
    target = _target(args)
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


# ---------------------------------------------------------------------- probe

_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
}


def _name(parts: Any) -> str:
    """A name as ``ssl`` decodes it (a tuple of RDNs) written ``CN=..., O=...``."""
    return ", ".join(f"{_SHORT_NAMES.get(key, key)}={value}" for rdn in parts for key, value in rdn)


def _iso(cert_time: str) -> str:
    moment = time.gmtime(ssl.cert_time_to_seconds(cert_time))
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def _decode_der(der: bytes) -> dict[str, Any]:
    """Names and dates of a certificate ``ssl`` does not decode (one it did not verify), with
    the ``cryptography`` package when it is installed; nothing without it."""
    try:
        x509: Any = importlib.import_module("cryptography.x509")  # optional, not a dependency
    except ImportError:
        return {}
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [f"DNS:{name}" for name in names.get_values_for_type(x509.DNSName)]
        sans += [f"IP Address:{ip}" for ip in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    return {
        "subject": ", ".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in cert.subject),
        "issuer": ", ".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in cert.issuer),
        "sans": sans,
        "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _tls_session(sock: ssl.SSLSocket, verified: bool) -> dict[str, Any]:
    """Protocol version, cipher and the peer certificate of a TLS connection."""
    cipher = sock.cipher()
    der = sock.getpeercert(binary_form=True) or b""
    certificate: dict[str, Any] = {"sha256": hashlib.sha256(der).hexdigest()}
    decoded = sock.getpeercert() if verified else None
    if decoded:
        sans: Any = decoded.get("subjectAltName", ())
        certificate.update(
            subject=_name(decoded.get("subject", ())),
            issuer=_name(decoded.get("issuer", ())),
            sans=[f"{kind}:{value}" for kind, value in sans],
            not_before=_iso(str(decoded["notBefore"])),
            not_after=_iso(str(decoded["notAfter"])),
        )
    elif der:
        certificate.update(_decode_der(der))
    return {
        "version": sock.version(),
        "cipher": cipher[0] if cipher else None,
        "bits": cipher[2] if cipher else None,
        "certificate": certificate,
    }


def _features(smtp: sync.SMTP) -> list[str]:
    """The extensions of the last EHLO/LHLO, as the server wrote them."""
    return [
        f"{name.upper()} {value.strip()}".strip() for name, value in smtp.esmtp_features.items()
    ]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _greet(smtp: sync.SMTP, host: str, port: int, report: dict[str, Any]) -> None:
    """Connect, read the greeting and say EHLO (LHLO), timing the connection."""
    start = time.perf_counter()
    code, text = smtp.connect(host, port)
    report["connect_ms"] = _ms(start)
    report["greeting"] = {"code": code, "text": text.decode("utf-8", "replace")}
    smtp.ehlo_or_helo_if_needed()


def _probe(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """Fill ``report`` with what the server offers; returns the exit code.

    A certificate that fails verification is reported (exit code 3), and the probe goes on
    without checking it, to show the rest: it sends nothing that needs protecting.
    """
    lmtp, tls, host, port = _target(args)
    report.update(server=f"{host}:{port}" if port else host, protocol="LMTP" if lmtp else "SMTP")
    context = _context(args)
    status = EXIT_OK
    verification = "not checked (--insecure)" if args.insecure else "yes"
    smtp: sync.SMTP
    if lmtp:
        smtp = sync.LMTP(local_hostname=args.helo, timeout=args.timeout)
    elif tls == "implicit":
        smtp = sync.SMTP_SSL(local_hostname=args.helo, timeout=args.timeout, context=context)
    else:
        smtp = sync.SMTP(local_hostname=args.helo, timeout=args.timeout)
    smtp.set_debuglevel(1 if args.verbose else 0)
    with smtp:
        try:
            _greet(smtp, host, port, report)
        except ssl.SSLCertVerificationError as exc:
            assert isinstance(smtp, sync.SMTP_SSL)
            verification, status = f"NO: {_describe(exc)}", EXIT_TLS
            smtp.context = _unverified_context()
            _greet(smtp, host, port, report)
        report["extensions"] = _features(smtp)
        if tls == "starttls":
            report["starttls_offered"] = smtp.has_extn("starttls")
        if report.get("starttls_offered"):
            start = time.perf_counter()
            try:
                smtp.starttls(context=context)
            except ssl.SSLCertVerificationError as exc:
                verification, status = f"NO: {_describe(exc)}", EXIT_TLS
                _greet(smtp, host, port, {})
                start = time.perf_counter()
                smtp.starttls(context=_unverified_context())
            report["tls_handshake_ms"] = _ms(start)
            smtp.ehlo_or_helo_if_needed()
            report["extensions_after_tls"] = _features(smtp)
        if isinstance(smtp.sock, ssl.SSLSocket):
            report["tls"] = _tls_session(smtp.sock, verified=verification == "yes")
            report["tls"]["verified"] = verification == "yes"
            if verification == "yes":
                trusted = args.cafile or "the system's CA store"
                verification = f"yes: signed by a CA in {trusted}, and issued for {host}"
            report["tls"]["verification"] = verification
        samples = []
        for _ in range(_NOOP_SAMPLES):
            start = time.perf_counter()
            smtp.noop()
            samples.append(_ms(start))
        report["noop_ms"] = {"min": min(samples), "median": statistics.median(samples)}
    return status


def _print_probe(report: dict[str, Any]) -> None:
    def listing(title: str, lines: list[str]) -> None:
        print(f"{title:<12}" + "\n            ".join(lines or ["(none)"]))

    print(f"server      {report['server']} ({report['protocol']})")
    if "greeting" in report:
        greeting = report["greeting"]
        print(f"greeting    {greeting['code']} {greeting['text']}")
        print(f"connected   in {report['connect_ms']} ms")
    if "extensions" in report:
        listing("extensions", report["extensions"])
    if report.get("starttls_offered") is False:
        print("STARTTLS    not offered: the session stays in clear text")
    if "tls" in report:
        tls = report["tls"]
        print(f"TLS         {tls['version']}, {tls['cipher']} ({tls['bits']} bits)")
        if "tls_handshake_ms" in report:
            print(f"            STARTTLS handshake in {report['tls_handshake_ms']} ms")
        cert = tls["certificate"]
        print("certificate")
        for key, label in (("subject", "subject"), ("issuer", "issuer"), ("sans", "SANs")):
            if key in cert:
                value = cert[key]
                print(f"  {label:<10}{', '.join(value) if isinstance(value, list) else value}")
        if "not_before" in cert:
            print(f"  valid     {cert['not_before']} to {cert['not_after']}")
        print(f"  sha256    {cert['sha256']}")
        print(f"  verified  {tls['verification']}")
    if "extensions_after_tls" in report:
        listing("after TLS", report["extensions_after_tls"])
    if "noop_ms" in report:
        noop = report["noop_ms"]
        print(
            f"round trip  {noop['min']} ms (NOOP, best of {_NOOP_SAMPLES}; "
            f"median {noop['median']} ms)"
        )
    if "error" in report:
        print(f"error       {report['error']}")


def probe(args: argparse.Namespace) -> int:
    """The ``probe`` command."""
    report: dict[str, Any] = {}
    try:
        status = _probe(args, report)
    except UsageError:
        raise
    except (OSError, SMTPException) as exc:
        report["error"] = _describe(exc)
        status = EXIT_TLS if _tls_cause(exc) is not None else EXIT_FAILED
    report["exit_code"] = status
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_probe(report)
    return status


# ---------------------------------------------------------------------- command line


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
        prog="smtp-proto", description=(__doc__ or "").split("\n\n")[0], allow_abbrev=False
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
        print(f"smtp-proto: {type(exc).__name__}: {_describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
