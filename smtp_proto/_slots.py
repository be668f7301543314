"""Quick constructors for the frozen dataclasses built for every message (commands, replies).

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__`` by
name, which looks the field up on every call; setting a slot through its own descriptor does
the same in half the time.  The classes on the per-message path write their ``__init__`` with
the setters ``slot_setters`` returns, and keep everything else the dataclass gives them
(immutability, equality, hashing, ``repr``, ``fields``, ``replace``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["slot_setters"]

Setter = Callable[[Any, Any], None]


def slot_setters(cls: type, *names: str) -> tuple[Setter, ...]:
    """The setters of the slots ``names`` of the slotted class ``cls`` (which must declare
    them itself), bypassing its ``__setattr__``: for its ``__init__`` only."""
    return tuple(vars(cls)[name].__set__ for name in names)
