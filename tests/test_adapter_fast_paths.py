"""The adapters' per-message fast paths (issue #14) against the general code they stand in for:
the one-call check of replaced methods."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from smtp_proto.transports import sync

#: The methods the transaction's path asks about at once.
NAMES = ("ehlo_or_helo_if_needed", "mail", "rcpt", "data", "rset", "send", "getreply", "docmd")
REPLACEMENTS = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["method", None]))


def replacement(self: Any, *args: Any) -> None:
    """What a subclass or a mock puts in a method's place."""


@given(on_class=REPLACEMENTS, on_object=REPLACEMENTS, asked=st.lists(st.sampled_from(NAMES)))
def test_replaced_is_any_override(
    on_class: dict[str, str | None], on_object: dict[str, str | None], asked: list[str]
) -> None:
    """``_replaced(names)`` is ``_override`` of each name, in one call: methods replaced on a
    subclass or on the object, and attributes set to ``None`` (which ``_override`` ignores
    on the object, and honours as a replacement on the class)."""
    attributes = {name: replacement if kind else None for name, kind in on_class.items()}
    smtp = type("Replaced", (sync.SMTP,), attributes)()
    for name, kind in on_object.items():
        setattr(smtp, name, (lambda *args: None) if kind else None)
    names = tuple(asked)
    assert smtp._replaced(names) == any(smtp._override(name) is not None for name in names)


def test_nothing_replaced_on_the_adapter_itself() -> None:
    assert not sync.SMTP()._replaced(NAMES)
