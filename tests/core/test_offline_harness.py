"""The offline harness itself (``tests/offline.py``): a client that does what the script does
not allow fails loudly."""

from __future__ import annotations

import pytest

from tests.offline import (
    OK,
    Peer,
    ScriptError,
    connected,
    lines,
)


def test_script_errors_are_reported() -> None:
    # The harness itself: a client that sends something unexpected fails loudly.
    client = connected()
    with pytest.raises(ScriptError):
        Peer([*lines("rset"), OK]).run(client.noop())
