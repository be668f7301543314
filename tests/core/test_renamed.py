"""Public names renamed for one word per concept still import, with a DeprecationWarning."""

import importlib

import pytest

import smtp_proto
from smtp_proto.body import PIECE_SIZE
from smtp_proto.requests import NextRead


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("smtp_proto", "NextChunk", NextRead),
        ("smtp_proto.requests", "NextChunk", NextRead),
        ("smtp_proto.client", "NextChunk", NextRead),
        ("smtp_proto.body", "CHUNK_SIZE", PIECE_SIZE),
    ],
)
def test_old_name_is_the_new_object_with_a_warning(module: str, old: str, new: object) -> None:
    with pytest.warns(DeprecationWarning, match=f"{module}.{old} is deprecated"):
        value = getattr(importlib.import_module(module), old)
    assert value is new


def test_unknown_names_still_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = smtp_proto.NoSuchThing  # type: ignore[attr-defined]
