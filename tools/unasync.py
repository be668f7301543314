#!/usr/bin/env python3
"""Generate the sync adapter's twins of the async modules of ``transports/``.

The ``smtplib`` methods (``_api_async.py``) and the ``Mailer`` (``_mailer_async.py``) are
written once, as coroutines; the blocking adapter's (``_api_sync.py``, ``_mailer_sync.py``)
are the same text with ``async``/``await`` taken out (the way httpcore and psycopg keep
their twins).  ``python3 tools/unasync.py`` rewrites them; ``--check`` exits 1 when one is
out of date (``tests/test_unasync.py`` does the same check).
"""

from __future__ import annotations

import sys
from pathlib import Path

TRANSPORTS = Path(__file__).resolve().parents[1] / "transports"

#: Each async source, its sync twin, and, in order, what the async text says and what the
#: sync text says instead.
PAIRS = (
    (
        "_api_async.py",
        "_api_sync.py",
        (
            (
                "written once, as coroutines (the asyncio and trio adapters).\n\n"
                "``_api_sync.py`` (the sync adapter's) is generated from this file by "
                "``tools/unasync.py``:\n``python3 tools/unasync.py`` rewrites it, and a test "
                "fails when the two differ.\n",
                "as blocking calls (the sync adapter).\n\n"
                "GENERATED from ``_api_async.py`` by ``tools/unasync.py``: edit that file, not "
                "this one.\n",
            ),
            ("AsyncAPI", "SyncAPI"),
            ("as coroutines;", "as blocking calls;"),
            ("async def ", "def "),
            ("await ", ""),
        ),
    ),
    (
        "_mailer_async.py",
        "_mailer_sync.py",
        (
            (
                "written once, as coroutines (the asyncio and trio adapters).\n\n"
                "``_mailer_sync.py`` (the sync adapter's) is generated from this file by "
                "``tools/unasync.py``.\n",
                "as blocking calls (the sync adapter).\n\n"
                "GENERATED from ``_mailer_async.py`` by ``tools/unasync.py``: edit that file, "
                "not this one.\n",
            ),
            ("AsyncMailer", "SyncMailer"),
            ("import AsyncIterator, Iterable", "import Iterable, Iterator"),
            ("AsyncIterator", "Iterator"),
            ("async for ", "for "),
            ("async def ", "def "),
            ("await ", ""),
        ),
    ),
)


def generate(text: str, replacements: tuple[tuple[str, str], ...], source: str) -> str:
    """The sync twin of the async module ``text``."""
    for old, new in replacements:
        if old not in text:
            raise SystemExit(f"{source} no longer contains {old!r}: update PAIRS")
        text = text.replace(old, new)
    return text


def main() -> int:
    status = 0
    for source, target, replacements in PAIRS:
        wanted = generate((TRANSPORTS / source).read_text(encoding="utf-8"), replacements, source)
        path = TRANSPORTS / target
        if "--check" in sys.argv[1:]:
            if path.read_text(encoding="utf-8") != wanted:
                print(f"{path} is out of date: run python3 tools/unasync.py", file=sys.stderr)
                status = 1
            continue
        path.write_text(wanted, encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
