"""The DATA body as operations: DATA and its 354, the message dot-stuffed and ended with
``CRLF.CRLF``, and the reply to it (one per recipient for LMTP)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from .commands import Data
from .errors import SMTPDataError
from .outcome import TransactionReplies
from .replies import Reply
from .requests import IORequest, Operation
from .source import Message, Pieces, source_of

if TYPE_CHECKING:
    from .client import Client

__all__ = ["data_gen", "finish_body_gen", "send_body_gen"]

#: What an LMTP recipient the server never answered gets in the refused dict (``smtplib``
#: uses -1 for a reply it could not read).
_UNANSWERED = (-1, b"Connection unexpectedly closed before the server answered")


def data_gen(client: Client, msg: Message) -> Operation[tuple[int, bytes]]:
    """DATA, then the message with line endings fixed and dots stuffed.

    ``msg`` may be a binary file object (read from its position on) or an iterable of
    ``bytes`` too: it is then streamed, ``PIECE_SIZE`` bytes at a time, and must not
    be used meanwhile.  Its first piece is read before DATA, so a source that cannot be
    read leaves the connection usable; one that fails later closes it (a truncated message
    is never ended).  The operation reads a sync source itself (with the asyncio and trio
    adapters, on the event loop); an async iterable or async file object is pulled by the
    async driver, one ``NextRead`` request per read.

    Raises ``SMTPDataError`` unless DATA gets 354; returns the reply to the body.  For LMTP
    that is the first refusal among the per-recipient replies (all are kept in
    ``lmtp_replies``), or the last acceptance.
    """
    pieces = Pieces(source_of(msg))
    yield from pieces.start()
    return (yield from data_command_gen(client, pieces))


def data_command_gen(
    client: Client, pieces: Pieces
) -> Generator[IORequest, Any, tuple[int, bytes]]:
    """DATA, then the body if the server says 354."""
    reply = yield from client._command_gen(Data())
    if client.owner.debuglevel > 0:
        client.print_debug("data:", reply.as_tuple())
    if reply.code != 354:
        raise SMTPDataError(reply.code, reply.text)
    return (yield from send_body_gen(client, pieces))


def send_body_gen(client: Client, pieces: Pieces) -> Generator[IORequest, Any, tuple[int, bytes]]:
    """Send the body after a 354 and read its reply (one per recipient for LMTP)."""
    connection = client.connection
    try:
        last = False
        while not last:
            piece, last = yield from pieces.next()
            out = connection.send_data(piece)
            if not last:
                yield from _write_body_gen(client, out)
    except Exception:
        yield from drop_unfinished_body_gen(client)
        raise
    out += connection.end_data()  # the last piece goes out with the end of data
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(out))
    return (yield from finish_body_gen(client, out))


def drop_unfinished_body_gen(client: Client) -> Generator[IORequest, Any, None]:
    """Close the connection in the middle of a body: ending it would deliver it truncated."""
    if client.is_connected:
        yield from client._abort_gen()


def _write_body_gen(client: Client, data: bytes) -> Generator[IORequest, Any, None]:
    """Send part of a message body, traced at debug level."""
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(data))
    yield from client._exchange_gen(data, 0)


def finish_body_gen(client: Client, data: bytes) -> Generator[IORequest, Any, tuple[int, bytes]]:
    """Send the end of a body and read the reply to it: one, or one per LMTP recipient.

    For LMTP the per-recipient replies go to ``lmtp_replies`` and the result is the first
    refusal, else the last acceptance; a recipient never answered counts as refused.
    """
    if not client.lmtp:
        if client._override("getreply") is None:
            reply = (yield from client._exchange_gen(data, 1))[0]
        else:
            yield from client._exchange_gen(data, 0)
            reply = yield from client._read_reply_gen()
        return body_reply(client, reply)
    expected = client.connection.accepted_recipients or (None,)
    replies = yield from client._exchange_gen(data, len(expected), partial_at_eof=True)
    unanswered = replies[-1].as_tuple() if replies[-1].code == 421 else _UNANSWERED
    answers = [reply.as_tuple() for reply in replies]
    answers += [unanswered] * (len(expected) - len(answers))
    client.owner.lmtp_replies = {
        recipient: answer
        for recipient, answer in zip(expected, answers, strict=True)
        if recipient is not None
    }
    final = {
        recipient or "": Reply(code, (text,)) if index >= len(replies) else replies[index]
        for index, (recipient, (code, text)) in enumerate(zip(expected, answers, strict=True))
    }
    client.last_replies = TransactionReplies(client.last_replies.rcpt, final)
    refusals = [answer for answer in answers if not 200 <= answer[0] < 300]
    result = refusals[0] if refusals else answers[-1]
    if client.owner.debuglevel > 0:
        client.print_debug("data:", result)
    return result


def body_reply(client: Client, reply: Reply) -> tuple[int, bytes]:
    """Keep the (SMTP) reply to a body in ``last_replies`` and trace it; its ``(code, text)``."""
    client.last_replies = TransactionReplies(client.last_replies.rcpt, {"": reply})
    result = reply.as_tuple()
    if client.owner.debuglevel > 0:
        client.print_debug("data:", result)
    return result
