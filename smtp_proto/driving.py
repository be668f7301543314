"""The driver loop every transport runs, written once for blocking and once for async I/O.

A transport supplies ``perform(request)``, which carries out one I/O request of an operation
(see ``smtp_proto.client``), and ``abort()``, which drops the connection.  The loop sends each
result back into the operation; an ``OSError`` from ``perform`` is thrown into the operation,
which maps it to what ``smtplib`` raises and closes the connection.  Any other exception
while I/O is under way (a cancellation, ``KeyboardInterrupt``, a timeout the framework raises
as something else) leaves the byte stream in an unknown state, so ``abort()`` runs and the
exception propagates: the connection is never reused half-way through a command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["drive", "drive_async"]

T = TypeVar("T")


def drive(
    operation: Generator[Any, Any, T],
    perform: Callable[[Any], Any],
    abort: Callable[[], None],
) -> T:
    """Run ``operation`` to its end with blocking I/O."""
    value: Any = None
    error: OSError | None = None
    try:
        while True:
            try:
                request = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            error = None
            try:
                value = perform(request)
            except OSError as exc:
                error = exc
            except BaseException:
                abort()
                raise
    finally:
        operation.close()


async def drive_async(
    operation: Generator[Any, Any, T],
    perform: Callable[[Any], Awaitable[Any]],
    abort: Callable[[], None],
) -> T:
    """Run ``operation`` to its end with async I/O (asyncio, trio, anyio alike)."""
    value: Any = None
    error: OSError | None = None
    try:
        while True:
            try:
                request = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            error = None
            try:
                value = await perform(request)
            except OSError as exc:
                error = exc
            except BaseException:
                abort()
                raise
    finally:
        operation.close()
