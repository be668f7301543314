"""The adapters' per-message fast paths (issue #14) against the general code they stand in for:
the one-call check of replaced methods, and the blocking adapter's write."""

from __future__ import annotations

import socket
import threading
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smtp_proto.transports import sync
from smtp_proto.transports.sync import _write

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


@pytest.mark.parametrize("names", [NAMES, ("rcpt",)])
def test_a_class_patched_after_the_first_question_is_seen(names: tuple[str, ...]) -> None:
    """What ``_replaced`` keeps between calls reads the class afresh every time: a method
    patched on the adapter's class (``mock.patch.object``) after a first call is seen, and
    so is its restoration."""
    smtp = sync.SMTP()
    assert not smtp._replaced(names)
    with mock.patch.object(sync.SMTP, "rcpt", replacement):
        assert smtp._replaced(names)
    assert not smtp._replaced(names)


def read_all(sock: socket.socket, into: list[bytes]) -> None:
    while data := sock.recv(1 << 16):
        into.append(data)


@pytest.mark.parametrize("size", [10, 2048, 8 << 20])
@pytest.mark.parametrize("timeout", [5.0, None])
def test_write_sends_everything_whatever_the_kernel_takes_at_once(
    size: int, timeout: float | None
) -> None:
    """``_write`` is ``sendall``: a write larger than the socket's buffer goes out whole too
    (its first part in one system call, the rest through ``sendall``)."""
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    ours, theirs = socket.socketpair()
    ours.settimeout(timeout)
    received: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(theirs, received))
    reader.start()
    try:
        _write(ours, memoryview(payload) if size > 4096 else payload)
        ours.shutdown(socket.SHUT_WR)
        reader.join()
    finally:
        ours.close()
        theirs.close()
    assert b"".join(received) == payload


class CountingSocket(socket.socket):
    """A socket subclass (a proxy's, say) whose ``sendall`` must be the one used."""

    calls = 0

    def sendall(self, data: Any, flags: int = 0) -> None:
        type(self).calls += 1
        super().sendall(data, flags)


def test_write_goes_through_a_socket_subclass_sendall() -> None:
    left, right = socket.socketpair()
    ours = CountingSocket(fileno=left.detach())
    ours.settimeout(5.0)
    try:
        _write(ours, b"hello")
        assert right.recv(16) == b"hello"
    finally:
        ours.close()
        right.close()
    assert CountingSocket.calls == 1
