#!/usr/bin/env python3
"""Generate ``transports/_api_sync.py`` from ``transports/_api_async.py``.

The ``smtplib`` methods are written once, as coroutines; the blocking adapter's are the same
text with ``async``/``await`` taken out (the way httpcore and psycopg keep their twins).
``python3 tools/unasync.py`` rewrites the file; ``--check`` exits 1 when it is out of date
(``tests/test_unasync.py`` does the same check).
"""

from __future__ import annotations

import sys
from pathlib import Path

TRANSPORTS = Path(__file__).resolve().parents[1] / "transports"
SOURCE = TRANSPORTS / "_api_async.py"
TARGET = TRANSPORTS / "_api_sync.py"

#: In order: what the async text says, and what the sync text says instead.
REPLACEMENTS = (
    (
        "written once, as coroutines (the asyncio and trio adapters).\n\n"
        "``_api_sync.py`` (the sync adapter's) is generated from this file by "
        "``tools/unasync.py``:\n``python3 tools/unasync.py`` rewrites it, and a test fails "
        "when the two differ.\n",
        "as blocking calls (the sync adapter).\n\n"
        "GENERATED from ``_api_async.py`` by ``tools/unasync.py``: edit that file, not this one.\n",
    ),
    ("AsyncAPI", "SyncAPI"),
    ("as coroutines;", "as blocking calls;"),
    ("async def ", "def "),
    ("await ", ""),
)


def generate(text: str) -> str:
    """The sync twin of the async API module ``text``."""
    for old, new in REPLACEMENTS:
        if old not in text:
            raise SystemExit(f"{SOURCE.name} no longer contains {old!r}: update REPLACEMENTS")
        text = text.replace(old, new)
    return text


def main() -> int:
    wanted = generate(SOURCE.read_text(encoding="utf-8"))
    if "--check" in sys.argv[1:]:
        if TARGET.read_text(encoding="utf-8") != wanted:
            print(f"{TARGET} is out of date: run python3 tools/unasync.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
