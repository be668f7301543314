"""The I/O requests an operation yields, and what an operation is.

An *operation* is a generator: it yields requests (data to send, as ``bytes`` or a
``memoryview``, or one of the ``Request`` objects below) and is sent each one's result.  A
transport performs ``RECEIVE``, ``START_TLS``, ``CLOSE`` and ``LOCAL_HOSTNAME``; the driver
loop (``smtp_proto.driving``) performs ``NextRead`` and ``Call`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Final, TypeVar

from ._renamed import ModuleGetattr, renamed

__all__ = [
    "CLOSE",
    "END_OF_BODY",
    "LOCAL_HOSTNAME",
    "RECEIVE",
    "START_TLS",
    "Call",
    "IORequest",
    "NextRead",
    "Operation",
    "Request",
]


class Request:
    """An I/O request an operation yields (besides the data to send, ``bytes`` or a
    ``memoryview``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name: str = name

    def __repr__(self) -> str:
        return self.name


#: Read some bytes from the server and send them into the operation (``b""`` at EOF).
RECEIVE: Final = Request("RECEIVE")
#: Wrap the connection in TLS now (the server said 220 to STARTTLS); send ``None``.
START_TLS: Final = Request("START_TLS")
#: Close the connection; send ``None``.
CLOSE: Final = Request("CLOSE")
#: Send the local host's name for EHLO into the operation (the lookup may block on DNS: an
#: async transport does it off the event loop).
LOCAL_HOSTNAME: Final = Request("LOCAL_HOSTNAME")

#: What a driver sends into the operation when an async body has nothing more to read.
END_OF_BODY: Final = Request("END_OF_BODY")


class NextRead(Request):
    """Await the next read of an async message body and send it into the operation.

    The core cannot await, so a body given as an async iterable is pulled by the driver:
    ``await anext(request.source, END_OF_BODY)``.  An exception the source raises is thrown
    into the operation (as the iterable's own exception, not an I/O error).  Bodies from
    ``bytes``, files and plain iterables are read by the operation itself.
    """

    __slots__ = ("source",)

    def __init__(self, source: AsyncIterator[Any]) -> None:
        super().__init__("NEXT_READ")
        self.source: AsyncIterator[Any] = source


class Call(Request):
    """Call a public method of the adapter object that a subclass or a mock replaced, and
    send its result into the operation (awaited first when it is awaitable).

    Whatever the method raises is thrown into the operation, where ``smtplib``'s own handling
    applies (``login`` catching ``SMTPAuthenticationError`` from ``auth``, say).
    """

    __slots__ = ("args", "kwargs", "method")

    def __init__(
        self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        super().__init__("CALL")
        self.method: Callable[..., Any] = method
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs


IORequest = bytes | memoryview | Request
T = TypeVar("T")
#: What every server-facing method of ``Client`` returns; see the module docstring.
Operation = Generator[IORequest, Any, T]


__getattr__: ModuleGetattr = renamed(globals(), {"NextChunk": "NextRead"})
