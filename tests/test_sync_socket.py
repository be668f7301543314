"""What only the blocking adapter has: smtplib's ``sock`` with its timeout, and the
``smtplib.*`` audit events raised around it.

Every other documented ``smtplib.SMTP`` method and attribute is tested once for all three
adapters, in ``tests/test_adapters_methods.py``.
"""

from __future__ import annotations

import smtplib as stdlib_smtplib
import sys

import pytest
from smtp_proto.transports import sync as smtplib

from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

LOCAL_NAME = "client.example.test"


def test_timeout_and_source_address(postfix: PostfixServer, tls_ca: LocalCA) -> None:
    smtp = smtplib.SMTP(
        postfix.host,
        postfix.port,
        local_hostname=LOCAL_NAME,
        timeout=3.5,
        source_address=("127.0.0.1", 0),
    )
    assert smtp.timeout == 3.5
    assert smtp.sock is not None and smtp.sock.gettimeout() == 3.5
    assert smtp.sock.getsockname()[0] == "127.0.0.1"
    smtp.starttls(context=tls_ca.client_context())
    assert smtp.sock.gettimeout() == 3.5  # kept by the TLS socket
    smtp.quit()
    unbounded = smtplib.SMTP(postfix.host, postfix.port, local_hostname=LOCAL_NAME, timeout=None)
    assert unbounded.sock is not None and unbounded.sock.gettimeout() is None
    unbounded.quit()


AUDITED: list[tuple[str, object, tuple[object, ...]]] = []
_hook_installed = False


def _record_smtplib_events(event: str, args: tuple[object, ...]) -> None:
    if event.startswith("smtplib."):
        data = args[1:]
        AUDITED.append((event, type(args[0]).__name__, data))


@pytest.fixture
def audited() -> list[tuple[str, object, tuple[object, ...]]]:
    """smtplib.* audit events raised during the test (the hook stays, it cannot be removed)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_record_smtplib_events)
        _hook_installed = True
    AUDITED.clear()
    return AUDITED


@pytest.mark.parametrize("module", [stdlib_smtplib, smtplib], ids=["stdlib", "adapter"])
def test_audit_events(
    aiosmtpd_server: AiosmtpdServer,
    audited: list[tuple[str, object, tuple[object, ...]]],
    module: object,
) -> None:
    """smtplib documents the audit events smtplib.connect (self, host, port) and
    smtplib.send (self, data); a drop-in raises them too."""
    client = module.SMTP(local_hostname=LOCAL_NAME)  # type: ignore[attr-defined]
    client.connect(aiosmtpd_server.host, aiosmtpd_server.port)
    client.noop()
    client.quit()
    events = [(event, data) for event, _, data in audited]
    connects = [data for event, data in events if event == "smtplib.connect"]
    assert connects == [(aiosmtpd_server.host, aiosmtpd_server.port)]
    sent = [data[0] for event, data in events if event == "smtplib.send"]
    sent = [s.encode() if isinstance(s, str) else s for s in sent]
    assert b"noop\r\n" in sent and b"quit\r\n" in sent
    assert {name for _, name, _ in audited} == {"SMTP"}
