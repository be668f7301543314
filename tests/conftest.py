"""Shared test configuration: the real-server fixtures, plus helpers the adapter tests share."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.servers.postfix import PostfixServer
from tests.servers.util import wait_until

pytest_plugins = ["tests.servers.plugin"]


@pytest.fixture
def token() -> str:
    """A marker unique to one test, to find its messages among everything a shared server holds."""
    return uuid.uuid4().hex


@pytest.fixture
def postfix_delivered(postfix: PostfixServer) -> Callable[..., list[bytes]]:
    """``wait(marker, count=1)``: the Postfix deliveries containing ``marker``, once ``count``
    of them arrived (Postfix delivers in the background after answering the end of data)."""

    def wait(marker: str, count: int = 1) -> list[bytes]:
        needle = marker.encode("utf-8")

        def probe() -> list[bytes] | None:
            found = [m for m in postfix.messages() if needle in m]
            return found if len(found) >= count else None

        return wait_until(probe, 10.0, f"{count} Postfix deliveries containing {marker}")

    return wait
