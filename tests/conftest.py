"""Shared test configuration: the real-server fixtures, plus helpers the adapter tests share.

The real-server fixtures need the test extra (trustme, aiosmtpd): without it they are not
loaded, so that the core's tests run with nothing but pytest and hypothesis
(``pip install pytest hypothesis && pytest tests/core``); a test that asks
for a server then fails with "fixture not found".
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

# CI runs the property tests derandomized (HYPOTHESIS_PROFILE=ci in .ci/run), so that a run
# passes or fails the same way each time; anywhere else each run explores new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

if TYPE_CHECKING:
    from tests.servers.postfix import PostfixServer

SERVERS_AVAILABLE = all(find_spec(name) is not None for name in ("trustme", "aiosmtpd"))
pytest_plugins = ["tests.servers.plugin"] if SERVERS_AVAILABLE else []


@pytest.fixture
def token() -> str:
    """A marker unique to one test, to find its messages among everything a shared server holds."""
    return uuid.uuid4().hex


@pytest.fixture
def postfix_delivered(postfix: PostfixServer) -> Callable[..., list[bytes]]:
    """``wait(marker, count=1)``: the Postfix deliveries containing ``marker``, once ``count``
    of them arrived (Postfix delivers in the background after answering the end of data)."""

    from tests.servers.util import wait_until  # noqa: PLC0415 (only with the test extra)

    def wait(marker: str, count: int = 1) -> list[bytes]:
        needle = marker.encode("utf-8")

        def probe() -> list[bytes] | None:
            found = [m for m in postfix.messages() if needle in m]
            return found if len(found) >= count else None

        return wait_until(probe, 10.0, f"{count} Postfix deliveries containing {marker}")

    return wait
