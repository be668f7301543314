"""The sync adapter's ``smtplib`` methods are generated from the async ones and checked in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_sync_api_is_up_to_date() -> None:
    """``transports/_api_sync.py`` is what ``tools/unasync.py`` makes of ``_api_async.py``."""
    check = [sys.executable, str(ROOT / "tools" / "unasync.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_generated_file_has_no_async_left() -> None:
    text = (ROOT / "transports" / "_api_sync.py").read_text(encoding="utf-8")
    assert "async " not in text and "await " not in text
    assert "GENERATED from ``_api_async.py``" in text
