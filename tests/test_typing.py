"""The types users see: a typed program checked by mypy and pyright, and pyright's score.

``tests/typing/user_program.py`` uses the adapters, ``send()`` and the core as the
documentation shows, pinning the types it relies on with ``assert_type``.  It must pass
``mypy --strict`` and pyright in strict mode (``tests/typing/pyrightconfig.json``), and run.
``pyright --verifytypes`` must find known types for at least 98% of the public symbols.

Type checkers do not follow the import hook of a default editable install, which maps
``transports/`` to ``smtp_proto.transports``; they read a folder of links laid out as the
installed package instead.  The pyright checks are skipped where pyright cannot run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import smtp_proto.transports
from smtp_proto.transports.testing import CaptureServer

import smtp_proto

TYPING = Path(__file__).parent / "typing"
PROGRAM = TYPING / "user_program.py"
#: The lowest share of public symbols with known types ``--verifytypes`` may report.
MIN_COMPLETENESS = 0.98
#: Seconds a checker may take (pyright's first run may install node).
CHECK_TIMEOUT = 600


@pytest.fixture(scope="module")
def package_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``smtp_proto`` as installed: links to the sources Python imports,
    with ``transports`` linked in as its subpackage."""
    root = tmp_path_factory.mktemp("typed")
    package = root / "smtp_proto"
    package.mkdir()
    core = Path(smtp_proto.__file__).parent
    for entry in core.iterdir():
        if entry.name not in {"__pycache__", "transports"}:
            (package / entry.name).symlink_to(entry)
    (package / "transports").symlink_to(Path(smtp_proto.transports.__file__).parent)
    return root


def run_checker(
    command: list[str], package_tree: Path, variable: str
) -> subprocess.CompletedProcess[str]:
    """``command`` with ``package_tree`` first on the checker's search path (``variable``),
    run outside the repository so that its ``smtp_proto/`` folder is not found instead."""
    search = [str(package_tree), *filter(None, [os.environ.get(variable)])]
    return subprocess.run(
        command,
        cwd=package_tree,
        env={**os.environ, variable: os.pathsep.join(search)},
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def pyright() -> list[str]:
    """The command that runs pyright; the test is skipped when there is none that runs."""
    if importlib.util.find_spec("pyright") is not None:
        command = [sys.executable, "-m", "pyright"]
    elif (executable := shutil.which("pyright")) is not None:
        command = [executable]
    else:
        pytest.skip("pyright is not installed (pip install pyright)")
    probe = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"pyright cannot run here:\n{probe.stdout}{probe.stderr}")
    return command


def test_user_program_passes_mypy_strict(package_tree: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (the dev extra has it)")
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", "mypy-cache"]
    result = run_checker([*command, str(PROGRAM)], package_tree, "MYPYPATH")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 1 source file" in result.stdout


def test_user_program_passes_pyright_strict(package_tree: Path, pyright: list[str]) -> None:
    config = TYPING / "pyrightconfig.json"
    command = [*pyright, "--project", str(config), "--pythonpath", sys.executable]
    result = run_checker(command, package_tree, "PYTHONPATH")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings" in result.stdout


def test_public_symbols_have_known_types(package_tree: Path, pyright: list[str]) -> None:
    command = [*pyright, "--verifytypes", "smtp_proto", "--ignoreexternal", "--outputjson"]
    result = run_checker([*command, "--pythonpath", sys.executable], package_tree, "PYTHONPATH")
    try:
        report = json.loads(result.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        pytest.fail(f"no report from pyright --verifytypes:\n{result.stdout}{result.stderr}")
    checked = Path(report["moduleRootDirectory"]).resolve()
    assert checked == (package_tree / "smtp_proto").resolve()  # the tree, not the sources
    problems = [
        f"{symbol['name']}: {diagnostic['message']}"
        for symbol in report["symbols"]
        for diagnostic in symbol["diagnostics"]
        if diagnostic["severity"] == "error"
    ]
    score = report["completenessScore"]
    assert score >= MIN_COMPLETENESS, f"{score:.1%} known:\n" + "\n".join(problems)


def load_program() -> ModuleType:
    spec = importlib.util.spec_from_file_location("user_program", PROGRAM)
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    return program


def test_user_program_runs() -> None:
    """The checked program is right at run time too: every message it sends arrives."""
    program = load_program()
    with CaptureServer(refuse={program.UNKNOWN: (550, "5.1.1 No such user")}) as server:
        expected = program.main(server.host, server.port)
        captured = server.wait_for_messages(expected)
        assert len(server.messages) == expected
    assert all(message.rcpt_tos == [program.RECIPIENT] for message in captured)
    assert all(message.mail_from == program.SENDER for message in captured)
