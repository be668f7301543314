"""A throw-away certificate authority (trustme) and a server certificate for the test servers,
plus certificates a client must refuse (wrong name, expired, self-signed, unknown CA)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVER_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
"""Subject alternative names of the server certificate (DNS and IP SANs)."""


@dataclass(frozen=True)
class LocalCA:
    """The test CA plus the server certificate every test server presents.

    ``cafile`` is what clients trust; ``certfile`` (leaf + chain) and ``keyfile``
    are what the servers load. The files are world-readable (test-only key) so
    daemons can load them whichever user they run as.
    """

    ca: trustme.CA = field(repr=False)
    server_cert: trustme.LeafCert = field(repr=False)
    directory: Path
    cafile: Path
    certfile: Path
    keyfile: Path

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only this CA and checks host names/IPs."""
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.cafile))

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the server certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        return ctx

    def configure_trust(self, ctx: ssl.SSLContext) -> None:
        """Make an existing context trust this CA (same as ``trustme.CA.configure_trust``)."""
        self.ca.configure_trust(ctx)


def make_local_ca(directory: Path) -> LocalCA:
    """Create the CA and a server certificate for localhost/127.0.0.1/::1 in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    ca = trustme.CA(organization_name="smtp-proto tests")
    leaf = ca.issue_cert(*SERVER_NAMES)
    cafile = directory / "ca.pem"
    certfile = directory / "cert.pem"
    keyfile = directory / "key.pem"
    ca.cert_pem.write_to_path(str(cafile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(keyfile))
    for p in (cafile, certfile, keyfile):
        os.chmod(p, 0o644)
    return LocalCA(
        ca=ca,
        server_cert=leaf,
        directory=directory,
        cafile=cafile,
        certfile=certfile,
        keyfile=keyfile,
    )


BAD_CERTIFICATES: tuple[str, ...] = ("wrong-host", "expired", "self-signed", "unknown-ca")
"""The kinds `bad_server_context` makes, each refused by a client that trusts `LocalCA`."""


def bad_server_context(local_ca: LocalCA, kind: str, directory: Path) -> ssl.SSLContext:
    """A server context presenting a certificate a client trusting ``local_ca`` must refuse.

    ``wrong-host``: issued by the trusted CA for ``wrong.example.test`` only; ``expired``: by
    the trusted CA for the usual names, valid until yesterday; ``self-signed``: for the usual
    names, signed by its own key; ``unknown-ca``: for the usual names, by another CA.
    ``directory`` receives the PEM files the context is loaded from.
    """
    now = datetime.datetime.now(datetime.UTC)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if kind == "wrong-host":
        local_ca.ca.issue_cert("wrong.example.test").configure_cert(context)
    elif kind == "expired":
        leaf = local_ca.ca.issue_cert(
            *SERVER_NAMES,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        leaf.configure_cert(context)
    elif kind == "unknown-ca":
        trustme.CA(organization_name="not trusted").issue_cert(*SERVER_NAMES).configure_cert(
            context
        )
    elif kind == "self-signed":
        certfile, keyfile = _self_signed(directory, now)
        context.load_cert_chain(str(certfile), str(keyfile))
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {BAD_CERTIFICATES}")
    return context


def _self_signed(directory: Path, now: datetime.datetime) -> tuple[Path, Path]:
    """A self-signed certificate for `SERVER_NAMES` and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    alternatives = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "self-signed.pem", directory / "self-signed-key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile
