"""The sync adapter's ``smtplib`` methods are generated from the async ones and checked in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_sync_api_is_up_to_date() -> None:
    """``transports/_api_sync.py`` and ``_mailer_sync.py`` are what ``tools/unasync.py`` makes
    of their async twins."""
    check = [sys.executable, str(ROOT / "tools" / "unasync.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["api", "mailer"])
def test_the_generated_file_has_no_async_left(name: str) -> None:
    text = (ROOT / "transports" / f"_{name}_sync.py").read_text(encoding="utf-8")
    assert "async " not in text and "await " not in text
    assert f"GENERATED from ``_{name}_async.py``" in text
