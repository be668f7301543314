"""The TLS session and the server's certificate, as ``probe`` reports them."""

from __future__ import annotations

import hashlib
import importlib
import ssl
import time
from typing import Any

from smtp_proto.proxy import Proxy

# Relative: installed, the parent is smtp_proto.transports; to mypy it is transports.
from .. import sync  # noqa: TID252
from .connection import unverified_context

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


def tls_session(sock: ssl.SSLSocket, verified: bool) -> dict[str, Any]:
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


def unverified_certificate(
    host: str,
    port: int,
    *,
    implicit: bool,
    lmtp: bool,
    helo: str,
    timeout: float,
    proxy: Proxy | None = None,
) -> dict[str, Any]:
    """The certificate the server presents, fetched over a connection (through ``proxy``, as
    the first one) that does not check it and sends nothing but EHLO and STARTTLS: to tell
    which names it was issued for."""
    context = unverified_context()
    smtp: sync.SMTP
    if implicit:
        smtp = sync.SMTP_SSL(local_hostname=helo, timeout=timeout, context=context, proxy=proxy)
    else:
        kind = sync.LMTP if lmtp else sync.SMTP
        smtp = kind(local_hostname=helo, timeout=timeout, proxy=proxy)
    with smtp:
        smtp.connect(host, port)
        if not implicit:
            smtp.starttls(context=context)
        assert isinstance(smtp.sock, ssl.SSLSocket)
        certificate: dict[str, Any] = tls_session(smtp.sock, verified=False)["certificate"]
    return certificate
