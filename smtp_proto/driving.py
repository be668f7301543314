"""The driver loop every transport runs, written once for blocking and once for async I/O.

The two loops are the one deliberate twin in the core (with their runs of ``sendmail``'s
usual case, ``Sendmail``): a loop cannot serve both without a coroutine or generator layer on
every I/O request, and they differ where the I/O does (a ``perform`` awaited or not, an async
body's read); what they share is written once.

A transport supplies ``perform(request)``, which carries out one I/O request of an operation
(see ``smtp_proto.requests``), and ``abort()``, which drops the connection.  The loop sends each
result back into the operation; an ``OSError`` from ``perform`` is thrown into the operation,
which maps it to what ``smtplib`` raises and closes the connection.  Any other exception
while I/O is under way (a cancellation, ``KeyboardInterrupt``, a timeout the framework raises
as something else) leaves the byte stream in an unknown state, so ``abort()`` runs and the
exception propagates: the connection is never reused half-way through a command.

Two requests are the driver's own business, not the transport's.  ``Call``: a public method
of the adapter that a subclass or a mock replaced, called (and awaited, by ``drive_async``,
when it returns an awaitable) with its result sent into the operation and whatever it raises
thrown in.  ``NextRead``: the next read of an async message body, which ``drive_async``
awaits (whatever the source raises is thrown into the operation, which decides what that
means for the connection); ``drive`` cannot await, so it throws a ``TypeError`` into the
operation instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, cast

from .connection import NEED_DATA
from .errors import ProtocolError
from .requests import END_OF_BODY, RECEIVE, Call, NextRead
from .transaction import Sendmail

__all__ = ["drive", "drive_async"]

T = TypeVar("T")


def _call(request: Call) -> tuple[Any, Exception | None]:
    """Call a replaced public method: its result, or the error it raised, which goes into the
    operation (the operation decides what a replacement's failure means)."""
    try:
        return request.method(*request.args, **request.kwargs), None
    except Exception as exc:
        return None, exc


def drive(
    operation: Generator[Any, Any, T],
    perform: Callable[[Any], Any],
    abort: Callable[[], None],
) -> T:
    """Run ``operation`` to its end with blocking I/O."""
    if operation.__class__ is Sendmail:
        return cast(T, _drive_sendmail(operation, perform, abort))
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                request = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            error = None
            if request.__class__ is Call:
                value, error = _call(request)
                continue
            if request.__class__ is NextRead:
                error = TypeError("an async iterable message body needs an async adapter")
                continue
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
    if operation.__class__ is Sendmail:
        return cast(T, await _drive_sendmail_async(operation, perform, abort))
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                request = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            error = None
            if request.__class__ is Call:
                value, error = _call(request)
                if error is None and inspect.isawaitable(value):
                    try:
                        value = await value
                    except Exception as exc:  # the replacement's own error: as _call's
                        error = exc
                continue
            if request.__class__ is NextRead:
                try:
                    value = await anext(request.source, END_OF_BODY)
                except Exception as exc:  # the caller's source failed: the operation decides
                    error = exc
                except BaseException:
                    abort()
                    raise
                continue
            try:
                value = await perform(request)
            except OSError as exc:
                error = exc
            except BaseException:
                abort()
                raise
    finally:
        operation.close()


def _drive_sendmail(
    sendmail: Sendmail, perform: Callable[[Any], Any], abort: Callable[[], None]
) -> dict[str, tuple[int, bytes]]:
    """``sendmail`` in its usual case without the operation's generators (see ``Sendmail``):
    one write, the reads until the replies are in, and the operation only for the rest."""
    prepared = sendmail.round_trip()
    if prepared is None:
        return drive(sendmail.operation(), perform, abort)
    data, count = prepared
    connection, replies = sendmail.client.connection, sendmail.replies
    failure: Exception | None = None
    written = False
    try:
        perform(data)
        written = True
        while connection.next_replies(replies, count) is NEED_DATA:
            connection.receive_data(perform(RECEIVE))
    except (ProtocolError, OSError) as exc:  # the connection's, or perform's (I/O): see rest_gen
        failure = exc
    except BaseException:
        abort()
        raise
    refused = None if failure is not None else sendmail.delivered()
    if refused is not None:
        return refused
    return drive(sendmail.rest_gen(failure, written), perform, abort)


async def _drive_sendmail_async(
    sendmail: Sendmail, perform: Callable[[Any], Awaitable[Any]], abort: Callable[[], None]
) -> dict[str, tuple[int, bytes]]:
    """``_drive_sendmail`` with async I/O."""
    prepared = sendmail.round_trip()
    if prepared is None:
        return await drive_async(sendmail.operation(), perform, abort)
    data, count = prepared
    connection, replies = sendmail.client.connection, sendmail.replies
    failure: Exception | None = None
    written = False
    try:
        await perform(data)
        written = True
        while connection.next_replies(replies, count) is NEED_DATA:
            connection.receive_data(await perform(RECEIVE))
    except (ProtocolError, OSError) as exc:  # the connection's, or perform's (I/O): see rest_gen
        failure = exc
    except BaseException:
        abort()
        raise
    refused = None if failure is not None else sendmail.delivered()
    if refused is not None:
        return refused
    return await drive_async(sendmail.rest_gen(failure, written), perform, abort)
