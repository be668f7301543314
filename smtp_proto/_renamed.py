"""Old public names kept importable, with a ``DeprecationWarning``, as the deprecation policy
says (two minor releases and six months at least: docs/versioning.md)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

#: A module's ``__getattr__``, as ``renamed`` makes it.
ModuleGetattr = Callable[[str], Any]


def renamed(namespace: dict[str, Any], old_to_new: dict[str, str]) -> ModuleGetattr:
    """A module ``__getattr__`` that serves each old name as its new one, with a warning."""
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        new = old_to_new.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated; use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new]

    return __getattr__
