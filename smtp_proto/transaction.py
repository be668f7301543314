"""The mail transaction as operations: ``sendmail``'s MAIL, RCPT and body, one protocol each.

``transaction_gen`` picks how: through the adapter's own ``mail``/``rcpt``/``data`` when a
subclass or a mock replaced one of the methods ``smtplib``'s ``sendmail`` calls; else
pipelined with BDAT (RFC 2920 and 3030: one round trip for a message of one chunk), pipelined
with DATA, or lock-step.  Every protocol gives the same results and exceptions as
``smtplib``'s lock-step exchange, and keeps the replies in ``client.last_replies``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .body import PIECE_SIZE, BodyEncoder, sent_as_is
from .commands import Bdat, Command, Data, Mail, Rcpt, is_utf8
from .errors import (
    SMTPDataError,
    SMTPMessageTooLarge,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .replies import Reply
from .requests import IORequest, Operation
from .source import Message, Pieces, Source, known_size, source_of

if TYPE_CHECKING:
    from .client import Client

__all__ = ["BDAT_WINDOW", "TransactionReplies", "data_gen", "transaction_gen"]

#: What an LMTP recipient the server never answered gets in the refused dict (``smtplib``
#: uses -1 for a reply it could not read).
_UNANSWERED = (-1, b"Connection unexpectedly closed before the server answered")
#: How many BDAT chunks may await their replies at once while a large message streams.
BDAT_WINDOW = 16


def _binary_body(options: Sequence[str]) -> bool:
    """Whether MAIL declares ``BODY=BINARYMIME`` (RFC 3030): the body then goes by BDAT only,
    byte for byte."""
    return bool(options) and any(option.upper() == "BODY=BINARYMIME" for option in options)


_Piece = TypeVar("_Piece", bound=bytes | memoryview)


class _Verbatim:
    """The BINARYMIME "encoder": the body is sent exactly as given."""

    __slots__ = ()

    def encode(self, piece: _Piece) -> _Piece:
        return piece

    def finish(self) -> bytes:
        return b""


def _bdat_encoder(binary: bool) -> _Verbatim | BodyEncoder:
    """The encoder of a BDAT body: line ends normalised, no dot-stuffing (BDAT counts
    bytes), or nothing changed at all for BINARYMIME."""
    return _Verbatim() if binary else BodyEncoder(stuff_dots=False)


@dataclass(frozen=True, slots=True)
class TransactionReplies:
    """The replies of one transaction: to each RCPT (by recipient) and to the body (one under
    the key ``""``, or one per recipient for LMTP)."""

    rcpt: dict[str, Reply]
    body: dict[str, Reply]


#: The methods ``smtplib``'s ``sendmail`` calls, directly or through the ones it calls.
_TRANSACTION_METHODS = ("mail", "rcpt", "data", "rset", "send", "putcmd", "getreply", "docmd")


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
    return (yield from _data_gen(client, pieces))


def _data_gen(client: Client, pieces: Pieces) -> Generator[IORequest, Any, tuple[int, bytes]]:
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
        yield from _drop_unfinished_body_gen(client)
        raise
    out += connection.end_data()  # the last piece goes out with the end of data
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(out))
    return (yield from finish_body_gen(client, out))


def _drop_unfinished_body_gen(client: Client) -> Generator[IORequest, Any, None]:
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
        return _body_reply(client, reply)
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


def _body_reply(client: Client, reply: Reply) -> tuple[int, bytes]:
    """Keep the (SMTP) reply to a body in ``last_replies`` and trace it; its ``(code, text)``."""
    client.last_replies = TransactionReplies(client.last_replies.rcpt, {"": reply})
    result = reply.as_tuple()
    if client.owner.debuglevel > 0:
        client.print_debug("data:", result)
    return result


def transaction_gen(
    client: Client,
    from_addr: str,
    recipients: Sequence[tuple[str, Sequence[str]]],
    msg: Message,
    mail_options: Sequence[str] = (),
) -> Operation[dict[str, tuple[int, bytes]]]:
    """``sendmail`` with RCPT options per recipient (``(address, options)`` pairs).

    The replies of the transaction are kept in ``last_replies`` (RCPT replies by
    recipient, and the final reply to the body, one per recipient for LMTP).
    """
    yield from client._greeted_gen()
    owner = client.owner
    source = source_of(msg)
    binary = _binary_body(mail_options)
    options = mail_parameters(client, from_addr, source, mail_options)
    extensions = client.connection.extensions
    client.last_replies = TransactionReplies({}, {})
    if client._any_replaced(_TRANSACTION_METHODS):
        return (yield from _through_methods_gen(client, from_addr, recipients, source, options))
    mail = client._build_mail(from_addr, options)
    rcpts = [client._build_rcpt(recipient, rcpt_opts) for recipient, rcpt_opts in recipients]
    pieces = Pieces(source)
    yield from pieces.start()
    if extensions.pipelining and recipients:
        if binary or (owner.chunking and extensions.chunking):
            return (yield from _pipelined_bdat_gen(client, mail, rcpts, pieces, binary))
        return (yield from _pipelined_data_gen(client, mail, rcpts, pieces))
    return (yield from _lockstep_gen(client, mail, rcpts, pieces, binary))


def mail_parameters(
    client: Client, from_addr: str, source: Source, mail_options: Sequence[str]
) -> Sequence[str]:
    """The parameters of MAIL for ``source`` on this server: ``SIZE=`` first when the server
    takes SIZE and the size is known.  Raises, before anything is sent, what the server would
    refuse: ``SMTPMessageTooLarge`` over its SIZE, ``SMTPNotSupportedError`` for BINARYMIME
    without CHUNKING."""
    owner = client.owner
    binary = _binary_body(mail_options)
    # Measured only for a server that takes SIZE: a file is sought, bytes are scanned.
    size = known_size(source, binary) if owner.does_esmtp and owner.has_extn("size") else None
    extensions = client.connection.extensions
    if extensions.size and size is not None and size > extensions.size:
        raise SMTPMessageTooLarge(size, extensions.size, from_addr)
    if binary and not extensions.chunking:
        raise SMTPNotSupportedError(
            "BODY=BINARYMIME needs BDAT, but the server does not advertise CHUNKING"
        )
    if not owner.does_esmtp:
        return ()
    if size is not None:
        return (f"size={size}", *mail_options)
    return mail_options


def _through_methods_gen(
    client: Client,
    from_addr: str,
    recipients: Sequence[tuple[str, Sequence[str]]],
    source: Source,
    options: Sequence[str],
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """``smtplib``'s ``sendmail``, step by step through the adapter's ``mail``, ``rcpt``,
    ``data`` and ``rset`` (replaced or not), with the arguments ``smtplib`` passes them."""
    binary = _binary_body(options)

    def body() -> Operation[tuple[int, bytes]]:
        if binary:
            return _binary_body_gen(client, source)
        return client._call_gen("data", source)

    mail = _reply_gen(client._call_gen("mail", from_addr, list(options)))
    rcpts = (
        (recipient, _reply_gen(client._call_gen("rcpt", recipient, rcpt_options)))
        for recipient, rcpt_options in recipients
    )
    return (yield from _one_by_one_gen(client, from_addr, mail, rcpts, body))


def _lockstep_gen(
    client: Client, mail: Mail, rcpts: list[Rcpt], pieces: Pieces, binary: bool
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """MAIL, each RCPT and the body one command at a time (no PIPELINING)."""
    utf8 = is_utf8(client.owner.command_encoding)
    for command in (mail, *rcpts):
        command.encode(utf8)  # a refused RCPT (injection) refuses it all, unsent

    def body() -> Operation[tuple[int, bytes]]:
        return _send_chunks_gen(client, pieces, binary) if binary else _data_gen(client, pieces)

    envelope = ((rcpt.recipient, client._command_gen(rcpt)) for rcpt in rcpts)
    return (
        yield from _one_by_one_gen(client, mail.sender, client._command_gen(mail), envelope, body)
    )


def _one_by_one_gen(
    client: Client,
    sender: str,
    mail: Operation[Reply],
    rcpts: Iterable[tuple[str, Operation[Reply]]],
    body: Callable[[], Operation[tuple[int, bytes]]],
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """A transaction a command at a time, with ``smtplib``'s rules: each RCPT after MAIL's
    250, RSET after a refused envelope (not after a 421, which closed the connection), the
    body only when a recipient was accepted."""
    reply = yield from mail
    if reply.code != 250:
        yield from _refuse_sender_gen(client, sender, reply)
    refused: dict[str, tuple[int, bytes]] = {}
    total = 0
    for recipient, rcpt in rcpts:
        total += 1
        reply = yield from rcpt
        client.last_replies.rcpt[recipient] = reply
        if reply.code not in (250, 251):
            refused[recipient] = reply.as_tuple()
        if reply.code == 421:
            raise SMTPRecipientsRefused(refused)
    if len(refused) == total:
        yield from client._rset_gen()
        raise SMTPRecipientsRefused(refused)
    code, text = yield from body()
    return (yield from _finish_transaction_gen(client, code, text, refused, total))


def _reply_gen(operation: Operation[tuple[int, bytes]]) -> Operation[Reply]:
    """The ``(code, text)`` of a public method's operation as a ``Reply``."""
    code, text = yield from operation
    return Reply.from_tuple(code, text)


def _binary_body_gen(client: Client, source: Source) -> Operation[tuple[int, bytes]]:
    """A ``BODY=BINARYMIME`` message, read from ``source``, as BDAT chunks."""
    pieces = Pieces(source)
    yield from pieces.start()
    return (yield from _send_chunks_gen(client, pieces, True))


def _refuse_sender_gen(client: Client, sender: str, reply: Reply) -> Operation[None]:
    """After a refused MAIL: close on 421, RSET otherwise, then raise."""
    if reply.code != 421:
        yield from client._rset_gen()
    raise SMTPSenderRefused(reply.code, reply.text, sender)


def _envelope_replies(
    kept: dict[str, Reply], rcpts: Sequence[Rcpt], replies: Sequence[Reply]
) -> tuple[dict[str, tuple[int, bytes]], bool]:
    """The refused recipients among pipelined RCPT replies (each reply kept in ``kept``), and
    whether a 421 closed."""
    refused: dict[str, tuple[int, bytes]] = {}
    closed_at_rcpt = False
    for rcpt, reply in zip(rcpts, replies, strict=False):
        kept[rcpt.recipient] = reply
        if reply.code not in (250, 251):
            refused[rcpt.recipient] = reply.as_tuple()
        closed_at_rcpt = reply.code == 421
    return refused, closed_at_rcpt


def _pipelined_data_gen(
    client: Client, mail: Mail, rcpts: list[Rcpt], pieces: Pieces
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """MAIL, the RCPTs and DATA in one write (RFC 2920), then the body after a 354.

    Results and exceptions are those of the lock-step exchange.
    """
    expected = len(rcpts) + 2
    replies = yield from client._exchange_gen(client._encode(mail, *rcpts, Data()), expected)
    mail_reply = replies[0]
    refused, closed_at_rcpt = _envelope_replies(client.last_replies.rcpt, rcpts, replies[1:])
    proceed = mail_reply.code == 250 and not closed_at_rcpt and len(refused) < len(rcpts)
    data_reply = replies[-1] if len(replies) == expected else None
    if client.owner.debuglevel > 0 and data_reply is not None:
        client.print_debug("data:", data_reply.as_tuple())
    if not proceed:
        if data_reply is not None and data_reply.code == 354:
            # The server opened a body we must not send (RFC 2920 3.1): send it empty.
            yield from send_body_gen(client, Pieces(b""))
        yield from _refuse_envelope_gen(client, mail, mail_reply, refused, closed_at_rcpt)
    assert data_reply is not None
    if data_reply.code != 354:
        raise SMTPDataError(data_reply.code, data_reply.text)
    code, text = yield from send_body_gen(client, pieces)
    if code == 250 and not client.lmtp:
        return refused
    return (yield from _finish_transaction_gen(client, code, text, refused, len(rcpts)))


def _pipelined_bdat_gen(
    client: Client, mail: Mail, rcpts: list[Rcpt], pieces: Pieces, binary: bool
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """MAIL and the RCPTs in one write (RFC 2920) with, for a message of one chunk, the
    whole body as ``BDAT n LAST`` (RFC 3030): one round trip.  A longer message streams
    as BDAT chunks once the envelope is accepted.

    Results and exceptions are those of the lock-step exchange with DATA.
    """
    piece, single = pieces.first
    if single and not client.lmtp:
        # The envelope's replies and the body's in one read, which may end early only where
        # reading them one after the other would have raised.
        first = one_chunk_request(client, (mail, *rcpts), piece, binary)
        replies = yield from client._exchange_gen(first, len(rcpts) + 2, partial_at_eof=True)
        return (yield from conclude_gen(client, one_chunk_outcome(mail, rcpts, replies)))
    if single:
        first = one_chunk_request(client, (mail, *rcpts), piece, binary)
    else:
        first = client._encode(mail, *rcpts)
    replies = yield from client._exchange_gen(first, len(rcpts) + 1)
    mail_reply = replies[0]
    refused, closed_at_rcpt = _envelope_replies(client.last_replies.rcpt, rcpts, replies[1:])
    proceed = mail_reply.code == 250 and not closed_at_rcpt and len(refused) < len(rcpts)
    if single and (proceed or client.is_connected):
        code, text = yield from finish_body_gen(client, b"")  # (a refused body's too)
    if not proceed:
        yield from _refuse_envelope_gen(client, mail, mail_reply, refused, closed_at_rcpt)
    if not single:
        code, text = yield from _send_chunks_gen(client, pieces, binary)
    return (yield from _finish_transaction_gen(client, code, text, refused, len(rcpts)))


def one_chunk_request(
    client: Client, commands: Sequence[Command], piece: bytes | memoryview, binary: bool
) -> bytes:
    """``commands`` (MAIL and the RCPTs) and a body of one piece as ``BDAT n LAST``, as one
    write; traced at debug level in wire order."""
    encoder = _bdat_encoder(binary)
    body, tail = encoder.encode(piece), encoder.finish()
    bdat = Bdat(len(body) + len(tail), last=True)
    data = b"".join((client._encode(*commands, bdat), body, tail))
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(bytes(body) + tail))
    return data


@dataclass(frozen=True, slots=True)
class OneChunkOutcome:
    """What lock-step ``sendmail`` makes of the replies to a one-chunk SMTP transaction.

    ``replies`` are the ones to keep in ``last_replies``; ``body`` the reply to the body, if
    it came; ``refused`` the result when ``error`` is ``None``, else ``error`` is what it
    raises, after an RSET if ``rset``.
    """

    replies: TransactionReplies
    refused: dict[str, tuple[int, bytes]]
    error: Exception | None
    rset: bool
    body: Reply | None


def one_chunk_outcome(
    mail: Mail, rcpts: Sequence[Rcpt], replies: Sequence[Reply]
) -> OneChunkOutcome:
    """The outcome of MAIL, ``rcpts`` and ``BDAT n LAST`` sent together, from their replies in
    order: all ``len(rcpts) + 2`` of them, or fewer when the server closed the connection
    (after a 421, or at EOF).  No I/O: the single transaction and a batch share it."""
    wanted = len(rcpts) + 2
    kept: dict[str, Reply] = {}
    cut_short = len(replies) < wanted and (not replies or replies[-1].code != 421)
    if cut_short and len(replies) < wanted - 1:
        lost = SMTPServerDisconnected("Connection unexpectedly closed")
        return OneChunkOutcome(TransactionReplies(kept, {}), {}, lost, False, None)
    refused, closed_at_rcpt = _envelope_replies(kept, rcpts, replies[1 : wanted - 1])
    if cut_short:
        lost = SMTPServerDisconnected("Connection unexpectedly closed")
        return OneChunkOutcome(TransactionReplies(kept, {}), refused, lost, False, None)
    body = replies[-1] if len(replies) == wanted else None
    outcome = partial(OneChunkOutcome, TransactionReplies(kept, {} if body is None else {"": body}))
    mail_reply = replies[0]
    if mail_reply.code != 250:
        refusal = SMTPSenderRefused(mail_reply.code, mail_reply.text, mail.sender)
        return outcome(refused, refusal, mail_reply.code != 421, body)
    if closed_at_rcpt or len(refused) == len(rcpts):
        return outcome(refused, SMTPRecipientsRefused(refused), not closed_at_rcpt, body)
    assert body is not None  # no 421 before it, no EOF
    if body.code != 250:
        return outcome(refused, SMTPDataError(body.code, body.text), body.code != 421, body)
    return outcome(refused, None, False, body)


def keep_outcome(client: Client, outcome: OneChunkOutcome) -> None:
    """Keep a one-chunk outcome's replies in ``last_replies``; trace the body's reply."""
    client.last_replies = outcome.replies
    if outcome.body is not None and client.owner.debuglevel > 0:
        client.print_debug("data:", outcome.body.as_tuple())


def conclude_gen(
    client: Client, outcome: OneChunkOutcome
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """Act on a one-chunk outcome as lock-step ``sendmail``: keep the replies, trace the
    body's, RSET if it would, then raise or return the refused recipients."""
    keep_outcome(client, outcome)
    if outcome.rset:
        yield from client._rset_gen()
    if outcome.error is not None:
        raise outcome.error
    return outcome.refused


def _refuse_envelope_gen(
    client: Client,
    mail: Mail,
    mail_reply: Reply,
    refused: dict[str, tuple[int, bytes]],
    closed_at_rcpt: bool,
) -> Operation[None]:
    """Raise what lock-step ``sendmail`` raises for a refused envelope (RSET as it does)."""
    if mail_reply.code != 250:
        yield from _refuse_sender_gen(client, mail.sender, mail_reply)
    if not closed_at_rcpt:
        yield from client._rset_gen()
    raise SMTPRecipientsRefused(refused)


def _send_chunks_gen(
    client: Client, pieces: Pieces, binary: bool
) -> Generator[IORequest, Any, tuple[int, bytes]]:
    """Send a message as BDAT chunks, up to ``BDAT_WINDOW`` of them unanswered when the
    server pipelines (one at a time otherwise); unchanged for BINARYMIME.

    A message in memory that needs no rewriting (BINARYMIME, or every line end CRLF and
    the last line ended) goes as one chunk instead: the same bytes, without a command and
    a reply per piece, and still without a copy.
    """
    whole = pieces.whole()
    if whole is not None and (binary or sent_as_is(whole)):
        yield from _write_chunk_gen(client, whole, last=True)
        return (yield from finish_body_gen(client, b""))
    encoder = _bdat_encoder(binary)
    window = BDAT_WINDOW if client.connection.extensions.pipelining else 0
    unanswered = 0
    failure: Reply | None = None
    try:
        last = False
        while not last:
            piece, last = yield from pieces.next()
            out = encoder.encode(piece)
            if last or not out:
                continue  # the last piece goes out with BDAT LAST
            if unanswered < window:
                unanswered += 1
                yield from _write_chunk_gen(client, out, last=False)
                continue
            reply = (yield from _write_chunk_gen(client, out, last=False, replies=1))[0]
            if reply.code != 250:
                failure = reply
                break
    except Exception:
        yield from _drop_unfinished_body_gen(client)
        raise
    if failure is None:
        tail = encoder.finish()
        if tail:
            out = b"".join((out, tail))
        chunk_replies = yield from _write_chunk_gen(client, out, last=True, replies=unanswered)
        failure = next((reply for reply in chunk_replies if reply.code != 250), None)
        result = yield from finish_body_gen(client, b"")
        if failure is None:
            return result
    else:
        yield from client._exchange_gen(b"", unanswered)
    if failure.code != 421 and client.is_connected:
        yield from client._rset_gen()
    raise SMTPDataError(failure.code, failure.text)


def _write_chunk_gen(
    client: Client, data: bytes | memoryview, last: bool, replies: int = 0
) -> Generator[IORequest, Any, list[Reply]]:
    """Send one BDAT chunk, then read ``replies`` replies.

    The command and the data go out as separate writes, so a large chunk (a ``memoryview``
    of the caller's message) is never copied to join them; a chunk larger than a piece is
    written a piece at a time, so no transport buffers more than that at once.
    """
    yield from client._exchange_gen(client._encode(Bdat(len(data), last=last)), 0)
    if client.owner.debuglevel > 0:
        client.print_debug("send:", repr(bytes(data)))  # after its BDAT line: wire order
    view = memoryview(data) if len(data) > PIECE_SIZE else data
    while len(view) > PIECE_SIZE:
        yield from client._exchange_gen(view[:PIECE_SIZE], 0)
        view = view[PIECE_SIZE:]
    return (yield from client._exchange_gen(view, replies))


def _finish_transaction_gen(
    client: Client, code: int, text: bytes, refused: dict[str, tuple[int, bytes]], total: int
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """Map the reply to the body onto ``sendmail``'s result (per recipient for LMTP)."""
    lmtp_replies = client.owner.lmtp_replies
    if client.lmtp and lmtp_replies:
        for recipient, (rcode, rtext) in lmtp_replies.items():
            if not 200 <= rcode < 300:
                refused[recipient] = (rcode, rtext)
        if len(refused) >= total:
            raise SMTPRecipientsRefused(refused)
        return refused
    if code != 250:
        if code != 421:
            yield from client._rset_gen()
        raise SMTPDataError(code, text)
    return refused
