"""What a server is set to do, and what it saw: one ``_Service`` for all its connections."""

from __future__ import annotations

import itertools
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence

from .auth import _MECHANISMS
from .message import CapturedMessage
from .reply import _ACTIONS, _TEXTS, Fault, Reply

#: Refused recipients: address -> reply, or a function giving the reply (None: accepted).
Refusals = Mapping[str, Reply] | Callable[[str], Reply | None]


class _Service:
    """The configuration every session of a server follows, and the record they keep.

    ``extensions`` is the EHLO keyword list (STARTTLS and AUTH are added as configured; its
    SIZE is the limit enforced); ``texts`` replaces some of the server's own replies
    (`reply._TEXTS`).  The record (messages, command lines, logins) is safe to use from any
    thread.
    """

    def __init__(
        self,
        *,
        lmtp: bool,
        hostname: str,
        extensions: Sequence[str],
        tls_context: ssl.SSLContext | None,
        credentials: Mapping[str, str] | None,
        auth_mechanisms: Sequence[str],
        refuse: Refusals | None,
        fail: Mapping[str, Fault],
        lmtp_failures: Mapping[str, Reply] | None = None,
        texts: Mapping[str, Reply] | None = None,
        implicit_tls: bool = False,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        unknown = [m for m in auth_mechanisms if m not in _MECHANISMS]
        if unknown:
            raise ValueError(f"unsupported AUTH mechanisms {unknown}; known: {list(_MECHANISMS)}")
        self.fail = dict(fail)
        for step, fault in self.fail.items():
            if isinstance(fault, str) and fault not in _ACTIONS:
                raise ValueError(f"unknown action {fault!r} at {step!r}; expected {set(_ACTIONS)}")
        self.lmtp = lmtp
        self.hostname = hostname
        self.extensions = list(extensions)
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.credentials = None if credentials is None else dict(credentials)
        self.auth_mechanisms = list(auth_mechanisms)
        self.refusal: Callable[[str], Reply | None] = (
            refuse if callable(refuse) else dict(refuse or {}).get
        )
        self.lmtp_failures: Mapping[str, Reply] = dict(lmtp_failures or {})
        self.texts = {**_TEXTS, **(texts or {})}
        self.changed = threading.Condition()
        self._messages: list[CapturedMessage] = []
        self._commands: list[str] = []
        self._logins: list[str] = []
        self._queue_ids = itertools.count(1)
        self._challenge_ids = itertools.count(1)

    # -- the record ----------------------------------------------------------------------

    def add(self, message: CapturedMessage) -> None:
        """Capture an accepted message."""
        with self.changed:
            self._messages.append(message)
            self.changed.notify_all()

    def record_command(self, line: str) -> None:
        with self.changed:
            self._commands.append(line)

    def record_login(self, user: str) -> None:
        with self.changed:
            self._logins.append(user)

    def queue_id(self) -> int:
        """The number of the message accepted now: 1, 2, 3..."""
        with self.changed:
            return next(self._queue_ids)

    def challenge_id(self) -> int:
        """The number of a CRAM-MD5 challenge, unique on the server: 1, 2, 3..."""
        with self.changed:
            return next(self._challenge_ids)

    @property
    def messages(self) -> list[CapturedMessage]:
        with self.changed:
            return list(self._messages)

    @property
    def commands(self) -> list[str]:
        with self.changed:
            return list(self._commands)

    @property
    def logins(self) -> list[str]:
        with self.changed:
            return list(self._logins)

    def wait_for_messages(self, count: int, timeout: float) -> list[CapturedMessage]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages after {timeout}s")
            return list(self._messages)

    def clear(self) -> None:
        with self.changed:
            self._messages.clear()
