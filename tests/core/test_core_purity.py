"""The core is sans-I/O: no module of ``smtp_proto`` imports networking, threads or clocks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import smtp_proto

PACKAGE = Path(smtp_proto.__file__).parent
FORBIDDEN = {"socket", "ssl", "select", "selectors", "asyncio", "trio", "threading", "time"}
CORE_FILES = sorted(PACKAGE.glob("*.py"))


def imported_modules(source: str) -> set[str]:
    """Every absolute module name an ``import`` statement anywhere in ``source`` names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def test_the_core_files_are_found() -> None:
    names = {path.name for path in CORE_FILES}
    assert {"replies.py", "commands.py", "body.py", "connection.py", "client.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda path: path.name)
def test_no_io_imports_in_source(path: Path) -> None:
    modules = imported_modules(path.read_text(encoding="utf-8"))
    bad = {name for name in modules if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_checker_sees_every_import_form() -> None:
    source = (
        "import os, socket as s\n"
        "from ssl import SSLContext\n"
        "def f():\n    import time\n"
        "try:\n    import trio\nexcept ImportError:\n    pass\n"
        "__import__('select')\n"
        "import importlib\nimportlib.import_module('threading')\n"
        "from . import sibling\n"
    )
    found = imported_modules(source)
    assert {"socket", "ssl", "time", "trio", "select", "threading"} <= found
    assert "sibling" not in found


def test_importing_the_package_pulls_in_no_event_loop() -> None:
    """``ssl`` and ``socket`` do come in, with ``smtplib``: the core's exceptions subclass its
    classes, so that code catching ``smtplib.SMTPException`` catches them.  No event loop."""
    code = (
        "import sys\n"
        "import smtp_proto, smtp_proto.client, smtp_proto.connection, smtp_proto.sasl\n"
        "import smtp_proto.message, smtp_proto.replies, smtp_proto.body\n"
        "print(' '.join(sorted(m for m in ('asyncio', 'trio', 'anyio') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=PACKAGE.parent,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
