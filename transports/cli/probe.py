"""The ``probe`` command: what a server offers (greeting, extensions before and after TLS, the
TLS session and certificate) and the round-trip time."""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import sys
import time
from typing import Any

# Relative: installed, the parent is smtp_proto.transports; to mypy it is transports.
from .. import sync  # noqa: TID252
from .connection import Target, target_of, tls_context, unverified_context, where
from .console import Console
from .failure import EXIT_OK, EXIT_TLS, UsageError, describe, exit_code_for, proxy_failure
from .session import OverUnixSocket
from .tls_session import tls_session
from .transcript import Transcript, View

_NOOP_SAMPLES = 5


class _UnixSMTP(OverUnixSocket, sync.SMTP):
    """SMTP over the Unix socket ``--socket`` names."""


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


def _probe(args: argparse.Namespace, target: Target, report: dict[str, Any]) -> int:
    """Fill ``report`` with what the server offers; returns the exit code.

    A certificate that fails verification is reported (exit code 3), and the probe goes on
    without checking it, to show the rest: it sends nothing that needs protecting.
    """
    host, port, tls = target.host, target.port or 0, target.tls
    context = tls_context(args)
    status = EXIT_OK
    verification = "not checked (--insecure)" if args.insecure else "yes"
    transcript = Transcript(
        Console(sys.stderr) if args.verbose else None, b"", View(), tls=tls == "implicit"
    )
    smtp = _client(target, args, context)
    with transcript.attached(), smtp:
        try:
            _greet(smtp, host, port, report)
        except ssl.SSLCertVerificationError as exc:
            assert isinstance(smtp, sync.SMTP_SSL)
            verification, status = f"NO: {describe(exc)}", EXIT_TLS
            smtp.context = unverified_context()
            _greet(smtp, host, port, report)
        report["extensions"] = _features(smtp)
        if tls in ("starttls", "opportunistic"):
            report["starttls_offered"] = smtp.has_extn("starttls")
        if report.get("starttls_offered"):
            start = time.perf_counter()
            try:
                smtp.starttls(context=context)
            except ssl.SSLCertVerificationError as exc:
                verification, status = f"NO: {describe(exc)}", EXIT_TLS
                _greet(smtp, host, port, {})
                start = time.perf_counter()
                smtp.starttls(context=unverified_context())
            report["tls_handshake_ms"] = _ms(start)
            transcript.tls_started()
            smtp.ehlo_or_helo_if_needed()
            report["extensions_after_tls"] = _features(smtp)
        if isinstance(smtp.sock, ssl.SSLSocket):
            report["tls"] = tls_session(smtp.sock, verified=verification == "yes")
            report["tls"]["verified"] = verification == "yes"
            if verification == "yes":
                trusted = args.cafile or "the system's CA store"
                verification = f"yes: signed by a CA in {trusted}, and issued for {host}"
            report["tls"]["verification"] = verification
        report["noop_ms"] = _round_trip(smtp)
    return status


def _client(target: Target, args: argparse.Namespace, context: ssl.SSLContext) -> sync.SMTP:
    """The adapter object that connects to ``target`` (through its proxy, if any)."""
    helo, timeout, proxy = args.helo, args.timeout, target.proxy
    if target.lmtp:
        return sync.LMTP(local_hostname=helo, timeout=timeout, proxy=proxy)
    if target.tls == "implicit":
        return sync.SMTP_SSL(local_hostname=helo, timeout=timeout, context=context, proxy=proxy)
    if target.unix:
        return _UnixSMTP(local_hostname=helo, timeout=timeout)
    return sync.SMTP(local_hostname=helo, timeout=timeout, proxy=proxy)


def _round_trip(smtp: sync.SMTP) -> dict[str, float]:
    """The best and the median time of a NOOP, in milliseconds."""
    samples = []
    for _ in range(_NOOP_SAMPLES):
        start = time.perf_counter()
        smtp.noop()
        samples.append(_ms(start))
    return {"min": min(samples), "median": statistics.median(samples)}


def _print_probe(report: dict[str, Any]) -> None:
    def listing(title: str, lines: list[str]) -> None:
        print(f"{title:<12}" + "\n            ".join(lines or ["(none)"]))

    print(f"server      {report['server']} ({report['protocol']})")
    if "proxy" in report:
        print(f"proxy       {report['proxy']}")
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
    target = target_of(args)
    server = where(target.host, target.port or 0)
    report: dict[str, Any] = {"server": server, "protocol": "LMTP" if target.lmtp else "SMTP"}
    if target.proxy is not None:
        report["proxy"] = str(target.proxy)
    try:
        status = _probe(args, target, report)
    except UsageError:
        raise
    except OSError as exc:  # SMTPException and ProxyError included
        report["error"] = describe(exc, target.proxy, server)
        if (failure := proxy_failure(exc)) is not None:
            report["proxy_failure"] = failure
        status = exit_code_for(exc, greeted="greeting" in report)
    report["exit_code"] = status
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_probe(report)
    return status
