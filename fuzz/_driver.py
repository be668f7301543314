"""The atheris entry point shared by the targets (imported only when fuzzing, never by tests).

``fuzz(check)`` instruments ``smtp_proto`` for coverage and runs libFuzzer on ``check``.

By default the first finding stops the run, as libFuzzer always does (the input is written as
``crash-<sha1>`` next to ``-artifact_prefix``).  With ``FUZZ_FINDINGS_DIR`` set, a finding is
recorded there instead and fuzzing goes on, so one bug that is easy to hit does not hide the
others: per distinct finding (exception type and where it was raised) the smallest input is
kept as ``<signature>.input`` with its traceback in ``<signature>.txt``.  ``run_all.sh`` uses
this mode and fails when the directory is not empty at the end.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path


def instrument_library(atheris: types.ModuleType) -> None:
    """Add coverage instrumentation to every function of ``smtp_proto`` (not the stdlib)."""
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith("smtp_proto"):
            atheris.instrument_func(obj)


def signature(exc: BaseException) -> str:
    """Exception type and the innermost frame that raised it: one name per distinct finding."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__}@{where}"


def recorder(check: Callable[[bytes], None], directory: Path) -> Callable[[bytes], None]:
    """``check``, recording findings in ``directory`` instead of stopping the fuzzer."""
    directory.mkdir(parents=True, exist_ok=True)

    def recording(data: bytes) -> None:
        try:
            check(data)
        except Exception as exc:
            name = signature(exc)
            stem = hashlib.sha1(name.encode()).hexdigest()[:12]
            kept = directory / f"{stem}.input"
            if kept.exists() and len(kept.read_bytes()) <= len(data):
                return
            kept.write_bytes(data)
            report = "".join(traceback.format_exception(exc))
            (directory / f"{stem}.txt").write_text(f"{name}\n\n{report}", "utf-8")
            print(f"\nFINDING {name} (input of {len(data)} bytes kept in {kept})", flush=True)

    return recording


def fuzz(check: Callable[[bytes], None]) -> None:
    """Run libFuzzer on ``check`` with the command line's options and corpus directories."""
    import atheris  # noqa: PLC0415 - atheris is needed only when fuzzing

    instrument_library(atheris)
    findings = os.environ.get("FUZZ_FINDINGS_DIR")
    target = recorder(check, Path(findings)) if findings else check
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
