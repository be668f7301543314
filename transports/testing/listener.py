"""Listening on 127.0.0.1 or a Unix socket, each connection served on a thread of its own."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from types import TracebackType
from typing import Self

from .wire import _Stopped, _Wire

_GRACE = 2.0  # seconds the connections get to end on their own once the server stops
_STOP_WAIT = 10.0  # how long stopping waits for a thread when reads have no timeout


class _Listener:
    """Accepts connections and runs `_serve` for each on a thread of its own, until stopped.

    Subclasses say what a connection is (`_connection`) and what is done with it (`_serve`).
    Stopping wakes every connection waiting for its client (`_Stopped`), gives the threads a
    grace period to end on their own, then shuts the sockets down under those still busy in
    a send or a handshake.  Everything is released: listener, connections, threads.
    """

    def __init__(
        self, *, port: int, unix_path: str | None, nodelay: bool, timeout: float | None, name: str
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self.unix_path = unix_path
        self.timeout = timeout
        self._port = port
        self._nodelay = nodelay
        self._name = name
        self._wires: list[_Wire] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        # Written once at shutdown and never drained, so it wakes every waiter for good.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    @property
    def port(self) -> int:
        """The TCP port it listens on (0 for a Unix socket, or before it listens)."""
        return self._port

    # -- what subclasses provide ---------------------------------------------------------

    def _connection(self, sock: socket.socket, index: int) -> _Wire:
        """The object the accepted socket ``sock`` (the ``index``-th) is served as."""
        assert self._wake_r is not None
        return _Wire(sock, stop=self._stop, wake=self._wake_r, timeout=self.timeout)

    def _serve(self, wire: _Wire) -> None:
        """Serve one connection, on its own thread; it is closed when this returns."""
        raise NotImplementedError

    # -- running -------------------------------------------------------------------------

    def _listen(self) -> None:
        """Bind and listen."""
        if self.unix_path is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            address: str | tuple[str, int] = ("127.0.0.1", self._port)
        else:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = self.unix_path
        try:
            listener.bind(address)
            listener.listen(64)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        if self.unix_path is None:
            self._port = listener.getsockname()[1]
        self._listener = listener

    def start(self) -> None:
        """Serve in background threads (once in a server's life)."""
        if self._accept_thread is not None or self._stop.is_set():
            raise RuntimeError(f"a {type(self).__name__} can only be started once")
        if self._listener is None:
            self._listen()
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self._name}-accept", daemon=True
        )
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake_r
        assert listener is not None and wake is not None
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(wake, select.POLLIN)
        wake_fd = wake.fileno()
        try:
            while True:
                events = poller.poll()
                if any(fd == wake_fd for fd, _ in events):
                    return
                with self._cond:
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        pass  # the client gave up before we accepted
                    else:
                        self._begin(conn)
                    self._cond.notify_all()
        except BaseException as exc:
            self._errors.append(exc)

    def _begin(self, conn: socket.socket) -> None:
        if self._nodelay and self.unix_path is None:
            # Replies written one after the other then go out at once, instead of each
            # waiting for the client's delayed ACK of the one before (some 40 ms).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        index = len(self._wires)
        wire = self._connection(conn, index)
        thread = threading.Thread(
            target=self._run, args=(wire,), name=f"{self._name}-{index}", daemon=True
        )
        self._wires.append(wire)
        self._threads.append(thread)
        thread.start()

    def _run(self, wire: _Wire) -> None:
        try:
            self._serve(wire)
        except _Stopped:
            pass  # the server stopped while the connection waited for its client
        finally:
            wire.close()

    def _pending_connection(self) -> bool:
        """True if a connection waits in the listen queue (not accepted yet)."""
        if self._listener is None or self._stop.is_set():
            return False
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        return bool(poller.poll(0))

    def _wait_idle(self, timeout: float) -> None:
        """Wait until every connection made so far was accepted and served to its end.

        Raises TimeoutError if that takes longer than ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                while self._pending_connection():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        raise TimeoutError("a pending connection was not accepted in time")
                threads = list(self._threads)
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    raise TimeoutError(f"thread {thread.name} still running")
            with self._cond:
                if len(self._threads) == len(threads) and not self._pending_connection():
                    return

    def stop(self) -> None:
        """Stop listening, end the open connections and wait for the threads."""
        if self._stop.is_set():
            return
        self._stop.set()
        wait = _STOP_WAIT if self.timeout is None else self.timeout
        if self._wake_w is not None:
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(wait)
        if self._listener is not None:
            self._listener.close()
        grace_end = time.monotonic() + min(wait, _GRACE)
        for thread in self._threads:
            thread.join(max(0.0, grace_end - time.monotonic()))
        with self._cond:
            pairs = list(zip(self._wires, self._threads, strict=True))
        for wire, thread in pairs:
            if thread.is_alive():
                wire._force_shutdown()
        all_stopped = True
        for wire, thread in pairs:
            thread.join(wait)
            if thread.is_alive():  # an error; its connection is reset
                all_stopped = False
                self._errors.append(RuntimeError(f"the thread of {thread.name} did not stop"))
                wire.reset()
        if self.unix_path is not None and self._listener is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)
        if all_stopped and self._wake_r is not None and self._wake_w is not None:
            self._wake_r.close()
            self._wake_w.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
