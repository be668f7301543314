"""A throw-away certificate authority (trustme) and a server certificate for the test servers."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

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
