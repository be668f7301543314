"""Where the command connects, and how: the server it names, LMTP or SMTP, the TLS mode, the
TLS context and the proxy."""

from __future__ import annotations

import argparse
import dataclasses
import os
import ssl
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from smtp_proto.ports import LMTP_PORT, SMTP_PORT, SMTPS_PORT, SUBMISSION_PORT
from smtp_proto.proxy import Proxy, as_proxy
from smtp_proto.send import TLSMode

from .failure import UsageError
from .password import read_password

#: The default port of each TLS mode (LMTP's is LMTP_PORT).
_DEFAULT_PORTS = {
    "implicit": SMTPS_PORT,
    "starttls": SUBMISSION_PORT,
    "opportunistic": SMTP_PORT,
    "none": SMTP_PORT,
}


def parse_server(text: str, default_port: int) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]``, ``[IPv6]:PORT``, a bare IPv6 address, or the
    absolute path of a Unix socket (port 0); ``default_port`` when none is written.  Raises
    ``ValueError`` for anything else."""
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


def where(host: str, port: int | None) -> str:
    """``host:port``, with an IPv6 address in brackets; a Unix socket's path alone."""
    if host.startswith("/") or not port:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Target:
    """Where to connect: LMTP or SMTP, the TLS mode, the host (or a Unix socket's path) and
    port (``None`` for a Unix socket), whether it is a Unix socket, and through which proxy."""

    lmtp: bool
    tls: TLSMode
    host: str
    port: int | None
    unix: bool
    proxy: Proxy | None = None


def _with_stand_in_password(url: str) -> str | None:
    """``url`` with a stand-in password when it names a user but no password (``None``
    otherwise), for ``Proxy.from_url`` to check all the rest before the real one is asked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None  # Proxy.from_url says what is wrong, and never shows a password
    if parts.username is None or parts.password is not None:
        return None
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user}:-@{host}").geturl()


def proxy_of(args: argparse.Namespace) -> Proxy | None:
    """The ``--proxy`` to connect through (``None`` without one: the environment's proxy
    variables are not read).  When its URL names a user but no password, the password comes
    from ``--proxy-password-env`` or a prompt.  A bad URL or a missing extra is a usage error."""
    if args.proxy is None:
        return None
    stand_in = _with_stand_in_password(args.proxy)
    try:
        proxy = Proxy.from_url(stand_in or args.proxy)
        if stand_in is not None:
            prompt = f"Password for {proxy.username} at the proxy {proxy.host}: "
            password = read_password(args.proxy_password_env, prompt)
            proxy = dataclasses.replace(proxy, password=password)
        return as_proxy(proxy)
    except (ValueError, ImportError) as exc:  # neither says the password
        raise UsageError(f"--proxy: {exc}") from None


def unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_context(args: argparse.Namespace) -> ssl.SSLContext:
    """Verifying TLS (system CAs, or ``--cafile``) unless ``--insecure`` says otherwise."""
    if args.insecure:
        print("smtp-proto: --insecure: the server's certificate is NOT checked", file=sys.stderr)
        return unverified_context()
    try:
        return ssl.create_default_context(cafile=args.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load --cafile {args.cafile}: {exc}") from None


def _socket_target(args: argparse.Namespace) -> Target:
    """``--socket PATH``: SMTP (LMTP with ``--lmtp``) over a Unix socket, in clear text."""
    if args.server is not None:
        raise UsageError("give --server or --socket, not both")
    if args.port is not None:
        raise UsageError("--port goes with --server, not with --socket")
    if args.tls not in (None, "none") or args.proxy is not None:
        raise UsageError("a Unix socket is local: no --tls and no --proxy with it")
    # Absolute: the library takes a host that starts with "/" for a Unix socket's path.
    return Target(args.lmtp, "none", os.path.abspath(args.socket), None, unix=True)


def target_of(args: argparse.Namespace) -> Target:
    """Where the options say to connect (``--server`` or ``--socket``), and how."""
    if args.socket is not None:
        return _socket_target(args)
    unix = args.server.startswith("/")
    lmtp = args.lmtp or unix
    tls: TLSMode = args.tls or ("none" if unix else "starttls")
    if unix and (tls != "none" or args.port is not None or args.proxy is not None):
        raise UsageError("a Unix socket is local: no --tls, --port or --proxy with it")
    if lmtp and tls == "implicit":
        raise UsageError("LMTP with implicit TLS is not supported (use --tls starttls)")
    try:
        host, port = parse_server(args.server, 0)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if unix:
        return Target(True, tls, host, None, unix=True)
    if port and args.port is not None:
        raise UsageError(f"two ports: --server {args.server} and --port {args.port}")
    port = port or args.port or (LMTP_PORT if lmtp else _DEFAULT_PORTS[tls])
    return Target(lmtp, tls, host, port, unix=False, proxy=proxy_of(args))
