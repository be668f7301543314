"""The library's ``send()`` session, run with the command's hooks.

The session is ``smtp_proto.send.Submission``'s, driven by the chosen adapter's own
``send_with``; the command changes only the ``Client`` the adapter drives, at the points where
that session calls it (the first EHLO, STARTTLS, AUTH, the transaction), and how the adapter
connects:

- ``--quit-after STAGE``: at the first of those points past STAGE, QUIT instead of going on
  (for ``mail`` and ``rcpt``: MAIL, then RCPT, and QUIT instead of the message);
- ``--no-pipelining``: the adapter's ``pipelining = False``: commands go one at a time;
- ``--socket PATH``: SMTP over a Unix socket (the library connects only LMTP so by itself);
- the transcript is told when TLS starts and when each stage ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Literal

from smtp_proto.client import Client
from smtp_proto.errors import SMTPServerDisconnected
from smtp_proto.replies import Reply
from smtp_proto.requests import Operation
from smtp_proto.send import SendResult
from smtp_proto.source import Message

# Relative: installed, the parent is smtp_proto.transports; to mypy it is transports.
from .._api_async import send_with as send_with_async  # noqa: TID252
from .._api_sync import send_with  # noqa: TID252
from .._common import open_socket  # noqa: TID252
from .._send import SendOptions  # noqa: TID252
from .failure import UsageError
from .transcript import Transcript

Stage = Literal["connect", "ehlo", "tls", "auth", "mail", "rcpt"]
#: The stages of a session, in order; ``--quit-after`` names one.
STAGES: tuple[Stage, ...] = ("connect", "ehlo", "tls", "auth", "mail", "rcpt")


@dataclass(frozen=True)
class Hooks:
    """What the command changes in the library's session."""

    transcript: Transcript
    quit_after: Stage | None = None
    pipelining: bool = True
    unix_socket: bool = False


class QuitAfter(Exception):
    """The session ended with QUIT after ``stage``, as ``--quit-after`` asked; ``mail_reply``
    and ``rcpt_replies`` hold the replies to MAIL and RCPT when it went that far."""

    def __init__(self, stage: Stage, mail_reply: Reply | None, rcpt_replies: dict[str, Reply]):
        super().__init__(f"quit after {stage}")
        self.stage = stage
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies


class _SessionClient(Client):
    """The library's ``Client``, with the command's hooks where the session calls it."""

    def __init__(self, hooks: Hooks, **client: Any) -> None:
        super().__init__(**client)
        self._hooks = hooks
        self._greeted = False
        self._securing = False  # STARTTLS done, the EHLO after it not yet
        self._mail_reply: Reply | None = None
        self._rcpt_replies: dict[str, Reply] = {}

    def _enter(self, stage: Stage) -> Operation[None]:
        """Before ``stage`` begins: QUIT here if ``--quit-after`` named an earlier stage the
        session had no reason to go through (``tls`` without TLS, ``auth`` without AUTH)."""
        stop = self._hooks.quit_after
        if stop is not None and STAGES.index(stop) < STAGES.index(stage):
            raise (yield from self._quit(stop))

    def _done(self, stage: Stage) -> Operation[None]:
        """``stage`` ended: note when, and QUIT here if ``--quit-after`` named it."""
        self._hooks.transcript.stage_done(stage)
        if self._hooks.quit_after == stage:
            raise (yield from self._quit(stage))

    def _quit(self, stage: Stage) -> Operation[QuitAfter]:
        """QUIT; the exception that tells ``deliver`` where and how the session ended."""
        with contextlib.suppress(SMTPServerDisconnected):  # a server that already hung up
            yield from self.quit()
        return QuitAfter(stage, self._mail_reply, self._rcpt_replies)

    def ehlo(self, name: str = "") -> Operation[tuple[int, bytes]]:
        first = not self._greeted
        if first:
            yield from self._enter("ehlo")
            self._greeted = True
        reply = yield from super().ehlo(name)
        if first:
            yield from self._done("ehlo")
        elif self._securing:
            self._securing = False
            yield from self._done("tls")
        return reply

    def starttls(self) -> Operation[tuple[int, bytes]]:
        yield from self._enter("tls")
        reply = yield from super().starttls()
        self._hooks.transcript.tls_started()
        self._securing = True
        return reply

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> Operation[tuple[int, bytes]]:
        yield from self._enter("auth")
        return (yield from super().login(user, password, initial_response_ok=initial_response_ok))

    def auth(
        self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True
    ) -> Operation[tuple[int, bytes]]:
        """``login`` calls this too, once per mechanism it tries."""
        yield from self._enter("auth")
        reply = yield from super().auth(
            mechanism, authobject, initial_response_ok=initial_response_ok
        )
        yield from self._done("auth")
        return reply

    def transaction(
        self,
        from_addr: str,
        recipients: Sequence[tuple[str, Sequence[str]]],
        msg: Message,
        mail_options: Sequence[str] = (),
    ) -> Operation[dict[str, tuple[int, bytes]]]:
        yield from self._enter("mail")
        stop = self._hooks.quit_after
        if stop not in ("mail", "rcpt"):
            refused = yield from super().transaction(from_addr, recipients, msg, mail_options)
            self._hooks.transcript.stage_done("message")
            return refused
        self._mail_reply = Reply.from_tuple(*(yield from self.mail(from_addr, mail_options)))
        if self._mail_reply.code != 250:
            raise (yield from self._quit(stop))
        yield from self._done("mail")  # QUIT here for --quit-after mail
        for address, options in recipients:
            reply = yield from self.rcpt(address, options)
            self._rcpt_replies[address] = Reply.from_tuple(*reply)
        self._hooks.transcript.stage_done("rcpt")
        raise (yield from self._quit("rcpt"))


class _Hooked:
    """Mixed into an adapter's class: the object drives a ``_SessionClient``."""

    hooks: ClassVar[Hooks]
    _lmtp: bool
    _override: Callable[[str], Callable[..., Any] | None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client = _SessionClient(
            self.hooks, lmtp=self._lmtp, owner=self, overrides=self._override
        )
        self.pipelining = self.hooks.pipelining


class OverUnixSocket:
    """Mixed into an adapter's ``SMTP``: connect to the Unix socket at the path ``host``."""

    def _get_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        # The library's own connecting code: with lmtp=True a path is a Unix socket.
        return open_socket(host, port, timeout, None, lmtp=True)


def _classes(module: ModuleType, hooks: Hooks) -> tuple[Any, Any, Any]:
    """The adapter's ``SMTP``, ``SMTP_SSL`` and ``LMTP``, with the hooks."""
    smtp_mixins = (_Hooked, OverUnixSocket) if hooks.unix_socket else (_Hooked,)
    return (
        type("SMTP", (*smtp_mixins, module.SMTP), {"hooks": hooks}),
        type("SMTP_SSL", (_Hooked, module.SMTP_SSL), {"hooks": hooks}),
        type("LMTP", (_Hooked, module.LMTP), {"hooks": hooks}),
    )


def _adapter(transport: str) -> ModuleType:
    module = "sync" if transport == "blocking" else transport
    try:
        return importlib.import_module(f"smtp_proto.transports.{module}")
    except ImportError as exc:
        raise UsageError(
            f"--transport {transport} needs {exc.name} (pip install smtp-proto[trio])"
        ) from None


def run_session(
    transport: str,
    hooks: Hooks,
    message: Message,
    host: str,
    port: int | None,
    *,
    options: SendOptions,
) -> SendResult:
    """``send()`` over the adapter ``transport`` (its event loop started as it needs), with
    ``hooks``; raises ``QuitAfter`` when ``--quit-after`` ended the session."""
    classes = _classes(_adapter(transport), hooks)
    if transport == "blocking":
        return send_with(classes, message, host, port, options)
    call = functools.partial(send_with_async, classes, message, host, port, options)
    result: SendResult
    if transport == "asyncio":
        result = asyncio.run(call())
    else:
        result = importlib.import_module("trio").run(call)
    return result
