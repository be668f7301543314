"""pytest fixtures starting real mail servers on 127.0.0.1.

Enable in ``tests/conftest.py`` with ``pytest_plugins = ["tests.servers.plugin"]``.

Session-scoped (started on first use, stopped at the end of the session):

- ``tls_ca`` -> :class:`~tests.servers.certs.LocalCA`
- ``postfix`` -> :class:`~tests.servers.postfix.PostfixServer` (root)
- ``exim`` -> :class:`~tests.servers.exim.EximServer` (root)
- ``dovecot_lmtp`` -> :class:`~tests.servers.dovecot.DovecotLMTPServer` (root)
- ``dante`` -> :class:`~tests.servers.dante.DanteServer`, SOCKS5 (root)
- ``tinyproxy`` -> :class:`~tests.servers.tinyproxy.TinyproxyServer`, HTTP CONNECT
- ``aiosmtpd_server_session`` -> :class:`~tests.servers.aiosmtpd_server.AiosmtpdServer`
- ``aiosmtpd_lmtp_unix_session`` -> :class:`~tests.servers.aiosmtpd_server.AiosmtpdLMTPServer`

Function-scoped: ``aiosmtpd_server`` and ``aiosmtpd_lmtp_unix`` give the same
session servers with their record list and per-test settings reset.

Tests using ``postfix``, ``exim``, ``dovecot_lmtp``, ``dante`` or ``tinyproxy`` get the
``realserver`` marker, so ``pytest -m "not realserver"`` leaves them out. Scratch dirs are
removed at the end unless ``SMTP_PROTO_KEEP_SERVER_SCRATCH=1`` is set (to read the logs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from .aiosmtpd_server import (
    AiosmtpdLMTPServer,
    AiosmtpdServer,
    start_aiosmtpd,
    start_aiosmtpd_lmtp_unix,
)
from .certs import LocalCA, make_local_ca
from .dante import DanteServer, start_dante
from .dovecot import DovecotLMTPServer, start_dovecot_lmtp
from .exim import EximServer, start_exim
from .postfix import PostfixServer, start_postfix
from .tinyproxy import TinyproxyServer, start_tinyproxy
from .util import ServerError, make_scratch, remove_scratch

KEEP_SCRATCH_ENV = "SMTP_PROTO_KEEP_SERVER_SCRATCH"
REAL_SERVER_FIXTURES = frozenset({"postfix", "exim", "dovecot_lmtp", "dante", "tinyproxy"})

S = TypeVar("S", bound="_Stoppable")


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def pytest_configure(config: pytest.Config) -> None:
    if not any(str(line).startswith("realserver") for line in config.getini("markers")):
        config.addinivalue_line(
            "markers",
            "realserver: talks to a real MTA started by the tests (Postfix, Exim, Dovecot)",
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realserver)


def _remove(scratch: Path) -> None:
    if os.environ.get(KEEP_SCRATCH_ENV, "") not in ("", "0"):
        return
    remove_scratch(scratch)


def _start(what: str, start: Callable[[], S]) -> S:
    """Start a server, turning setup problems into a clear fixture failure (never a skip)."""
    try:
        return start()
    except ServerError as exc:
        pytest.fail(f"{what}: {exc}", pytrace=False)


def _serve(server: S, scratch: Path | None) -> Iterator[S]:
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            if scratch is not None:
                _remove(scratch)


@pytest.fixture(scope="session")
def tls_ca() -> Iterator[LocalCA]:
    """Test CA (trustme) and a server certificate for localhost, 127.0.0.1 and ::1.

    ``cafile`` is the CA to trust; ``client_context()`` returns an
    ``ssl.SSLContext`` that trusts it (hostname/IP checking on).
    """
    scratch = make_scratch("tls")
    try:
        yield make_local_ca(scratch)
    finally:
        _remove(scratch)


@pytest.fixture(scope="session")
def postfix(tls_ca: LocalCA) -> Iterator[PostfixServer]:
    """Postfix (+ Dovecot SASL) on free 127.0.0.1 ports: SMTP, SMTPS and submission."""
    server = _start("postfix fixture", lambda: start_postfix(tls_ca))
    yield from _serve(server, server.scratch)


@pytest.fixture(scope="session")
def exim(tls_ca: LocalCA) -> Iterator[EximServer]:
    """Exim (the unpacked Debian binary) on free 127.0.0.1 ports: SMTP and SMTPS."""
    server = _start("exim fixture", lambda: start_exim(tls_ca))
    yield from _serve(server, server.scratch)


@pytest.fixture(scope="session")
def dovecot_lmtp(tls_ca: LocalCA) -> Iterator[DovecotLMTPServer]:
    """Dovecot LMTP on a free 127.0.0.1 port and on a unix socket."""
    server = _start("dovecot_lmtp fixture", lambda: start_dovecot_lmtp(tls_ca))
    yield from _serve(server, server.scratch)


@pytest.fixture(scope="session")
def dante() -> Iterator[DanteServer]:
    """Dante, a SOCKS5 proxy on free 127.0.0.1 ports: ``port`` with no authentication,
    ``auth_port`` with username/password; it relays to 127.0.0.0/8 only."""
    server = _start("dante fixture", start_dante)
    yield from _serve(server, server.scratch)


@pytest.fixture(scope="session")
def tinyproxy() -> Iterator[TinyproxyServer]:
    """tinyproxy, an HTTP CONNECT proxy on free 127.0.0.1 ports: ``port`` with no
    authentication, ``auth_port`` with Basic auth."""
    server = _start("tinyproxy fixture", start_tinyproxy)
    yield from _serve(server, server.scratch)


@pytest.fixture(scope="session")
def aiosmtpd_server_session(tls_ca: LocalCA) -> Iterator[AiosmtpdServer]:
    """The in-process aiosmtpd SMTP server, shared by the whole session."""
    server = _start("aiosmtpd_server fixture", lambda: start_aiosmtpd(tls_ca))
    yield from _serve(server, None)


@pytest.fixture
def aiosmtpd_server(aiosmtpd_server_session: AiosmtpdServer) -> Iterator[AiosmtpdServer]:
    """The aiosmtpd SMTP server with an empty record list and default settings."""
    aiosmtpd_server_session.clear()
    yield aiosmtpd_server_session
    aiosmtpd_server_session.clear()


@pytest.fixture(scope="session")
def aiosmtpd_lmtp_unix_session() -> Iterator[AiosmtpdLMTPServer]:
    """The in-process aiosmtpd LMTP server on a unix socket, shared by the session."""
    server = _start("aiosmtpd_lmtp_unix fixture", start_aiosmtpd_lmtp_unix)
    yield from _serve(server, server.scratch)


@pytest.fixture
def aiosmtpd_lmtp_unix(
    aiosmtpd_lmtp_unix_session: AiosmtpdLMTPServer,
) -> Iterator[AiosmtpdLMTPServer]:
    """The aiosmtpd LMTP server with an empty record list and default replies."""
    aiosmtpd_lmtp_unix_session.clear()
    yield aiosmtpd_lmtp_unix_session
    aiosmtpd_lmtp_unix_session.clear()
