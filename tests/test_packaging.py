"""Release metadata stays in one place: the version is written only in ``smtp_proto/_version.py``
and everything else reads it; the changelog has an entry for it.

Building and installing the distributions is ``tools/build-dist.sh`` (run by CI): it needs the
package index and takes minutes, so it is not a test here.
"""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

import smtp_proto
from smtp_proto import _version

ROOT = Path(__file__).resolve().parents[1]
VERSION = smtp_proto.__version__


def test_the_package_version_is_the_one_in_version_py() -> None:
    assert smtp_proto.__version__ is _version.__version__  # re-exported, not a copy
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", VERSION), VERSION


def test_the_build_reads_the_version_from_version_py() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "smtp_proto._version.__version__"}


def test_the_docs_show_the_package_version() -> None:
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    assert conf["release"] == VERSION
    assert VERSION.startswith(conf["version"] + ".")


def test_no_other_file_writes_the_version() -> None:
    """A second copy of the version string (in the CLI, the docs, the build) drifts."""
    sources = [
        ROOT / "pyproject.toml",
        ROOT / "setup.py",
        *(ROOT / "smtp_proto").rglob("*.py"),
        *(ROOT / "transports").rglob("*.py"),
        *(ROOT / "docs").rglob("*.py"),
        *(ROOT / "tools").rglob("*.py"),
    ]
    literal = re.compile(rf"""["']{re.escape(VERSION)}["']""")
    writers = {
        path.relative_to(ROOT).as_posix()
        for path in sources
        if literal.search(path.read_text(encoding="utf-8"))
    }
    assert writers == {"smtp_proto/_version.py"}


def test_the_changelog_has_an_entry_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - ", changelog, re.MULTILINE), VERSION
    assert re.search(rf"^\[{re.escape(VERSION)}\]: https://", changelog, re.MULTILINE)
