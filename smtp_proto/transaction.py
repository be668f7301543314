"""The mail transaction as operations: ``sendmail``'s MAIL, RCPT and body, one protocol each.

``transaction_gen`` picks how: through the adapter's own ``mail``/``rcpt``/``data`` when a
subclass or a mock replaced one of the methods ``smtplib``'s ``sendmail`` calls; else
pipelined with BDAT (RFC 2920 and 3030: one round trip for a message of one chunk), pipelined
with DATA, or lock-step.  Every protocol gives the same results and exceptions as
``smtplib``'s lock-step exchange, and keeps the replies in ``client.last_replies``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .bdat import BDAT_WINDOW, binary_body_gen, one_chunk_request, send_chunks_gen
from .body import PIECE_SIZE, normalised_size
from .commands import Data, Mail, Rcpt, is_utf8
from .connection import _CLOSED
from .data import (
    body_reply,
    data_command_gen,
    data_gen,
    drop_unfinished_body_gen,
    finish_body_gen,
    send_body_gen,
)
from .errors import (
    ProtocolError,
    SMTPDataError,
    SMTPMessageTooLarge,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
)
from .exchange import _nothing_overridden, logger
from .outcome import (
    OneChunkOutcome,
    TransactionReplies,
    envelope_replies,
    one_chunk_outcome,
)
from .replies import Reply
from .requests import IORequest, Operation
from .source import Message, Pieces, Source, known_size, source_of

if TYPE_CHECKING:
    from .client import Client

# BDAT_WINDOW, TransactionReplies and data_gen live in bdat.py, outcome.py and data.py; they
# are named here too, where they were before those modules were split off.
__all__ = [
    "BDAT_WINDOW",
    "Sendmail",
    "TransactionReplies",
    "conclude_gen",
    "data_gen",
    "keep_outcome",
    "mail_parameters",
    "sendmail_gen",
    "transaction_gen",
]


def _binary_body(options: Sequence[str]) -> bool:
    """Whether MAIL declares ``BODY=BINARYMIME`` (RFC 3030): the body then goes by BDAT only,
    byte for byte."""
    return bool(options) and any(option.upper() == "BODY=BINARYMIME" for option in options)


#: The methods ``smtplib``'s ``sendmail`` calls, directly or through the ones it calls.
_TRANSACTION_METHODS = ("mail", "rcpt", "data", "rset", "send", "putcmd", "getreply", "docmd")


#: What ``transaction_gen`` calls through the call graph before a transaction of one piece.
_ONE_PIECE_METHODS = ("ehlo_or_helo_if_needed", *_TRANSACTION_METHODS)


def sendmail_gen(
    client: Client,
    from_addr: str,
    recipients: Sequence[str],
    msg: Message,
    *,
    mail_options: Sequence[str] = (),
    rcpt_options: Sequence[str] = (),
    path: bool | Literal["ask"] | None = "ask",
) -> Operation[dict[str, tuple[int, bytes]]]:
    """``sendmail`` to ``recipients`` (each with ``rcpt_options``): ``transaction_gen``.

    The per-message case, a message in memory of one piece to a server that pipelines, in a
    greeted session with nothing replaced and no transcript, runs here inline: the steps
    ``transaction_gen`` takes for it, in the same order, without the generators and checks
    that choose among its protocols.  With BDAT that is one round trip (``Sendmail``);
    with DATA two, and anything but a 354 to an accepted envelope goes on as
    ``transaction_gen`` does.  ``path``: what ``_one_piece`` says, when the caller asked it
    already (``Sendmail``).
    """
    chunking = _one_piece(client, recipients, msg, mail_options) if path == "ask" else path
    if chunking is None:
        envelope = [(recipient, rcpt_options) for recipient in recipients]
        return (yield from transaction_gen(client, from_addr, envelope, msg, mail_options))
    assert isinstance(msg, bytes)
    mail, rcpts, binary, crlf = _envelope(
        client, from_addr, recipients, msg, mail_options=mail_options, rcpt_options=rcpt_options
    )
    if chunking:
        first = one_chunk_request(client, (mail, *rcpts), msg, binary, crlf=crlf)
        replies = yield from client._exchange_gen(
            first, len(rcpts) + 2, partial_at_eof=True, as_is=True
        )
        refused = delivered(client, rcpts, replies)
        if refused is not None:
            return refused
        return (yield from conclude_gen(client, one_chunk_outcome(mail, rcpts, replies)))
    expected = len(rcpts) + 2
    first = client._encode(mail, *rcpts, Data())
    replies = yield from client._exchange_gen(first, expected, as_is=True)
    if not _envelope_accepted(replies, expected):
        return (yield from _data_envelope_gen(client, mail, rcpts, Pieces(msg), replies))
    refused = envelope_replies(client.last_replies.rcpt, rcpts, replies[1:])[0]
    connection = client._connection  # open: DATA's 354 came (a 421 closes, fewer replies)
    assert connection is not None
    try:
        out = connection.send_data(msg)
    except Exception:
        yield from drop_unfinished_body_gen(client)
        raise
    out += connection.end_data()
    reply = (yield from client._exchange_gen(out, 1, as_is=True))[0]
    code, text = body_reply(client, reply)
    if code == 250:
        return refused
    return (yield from _finish_transaction_gen(client, code, text, refused, len(rcpts)))


def _envelope(
    client: Client,
    from_addr: str,
    recipients: Sequence[str],
    msg: bytes,
    *,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
) -> tuple[Mail, list[Rcpt], bool, bool | None]:
    """MAIL and the RCPTs of an inline ``sendmail``, ``last_replies`` emptied in between;
    whether the body goes as it is (``BODY=BINARYMIME``); whether every line end of ``msg``
    is CRLF, if that is known (``_plain_envelope``)."""
    if mail_options or rcpt_options:
        options = mail_parameters(client, from_addr, msg, mail_options)
        client.last_replies = TransactionReplies({}, {})
        mail = client._build_mail(from_addr, options)
        rcpts = [client._build_rcpt(recipient, rcpt_options) for recipient in recipients]
        return mail, rcpts, _binary_body(mail_options), None
    mail, rcpts, crlf = _plain_envelope(client, from_addr, recipients, msg)
    return mail, rcpts, False, crlf


def delivered(
    client: Client, rcpts: list[Rcpt], replies: list[Reply]
) -> dict[str, tuple[int, bytes]] | None:
    """The refused recipients when the replies to MAIL, ``rcpts`` and ``BDAT n LAST`` say the
    message was delivered (``one_chunk_outcome``'s success), kept in ``last_replies``; else
    ``None``: ``conclude_gen`` makes of them what ``sendmail`` does."""
    if len(replies) == len(rcpts) + 2 and replies[0].code == 250 and replies[-1].code == 250:
        # last_replies is still the empty one made for this transaction (_envelope): filled
        # in place, it is what TransactionReplies(kept, {"": final}) would be.
        kept = client.last_replies
        refused = envelope_replies(kept.rcpt, rcpts, replies[1:-1])[0]
        if len(refused) < len(rcpts):  # (a 421 closed: fewer replies)
            kept.body[""] = replies[-1]
            return refused
    return None


class Sendmail(Generator[IORequest, Any, dict[str, tuple[int, bytes]]]):
    """``Client.sendmail``'s operation: a generator, as every operation is (``sendmail_gen``,
    made at the first step), which the drivers of ``smtp_proto.driving`` also run without
    one in the usual case.

    The driver asks ``round_trip()``; given the bytes, it writes them, hands what it reads to
    the connection until ``next_replies`` has the replies (or ends), and returns
    ``delivered()`` unless that is ``None``; then, or when the write, a read or the
    connection failed, it runs ``rest_gen(failure, written)``, which goes on from there as
    ``sendmail_gen`` would have.
    """

    __slots__ = ("_arguments", "_envelope", "_operation", "_path", "client", "replies")

    def __init__(
        self,
        client: Client,
        from_addr: str,
        recipients: list[str],
        msg: Message,
        *,
        mail_options: Sequence[str],
        rcpt_options: Sequence[str],
    ) -> None:
        #: The client the message is sent by.
        self.client = client
        self._arguments = (from_addr, recipients, msg, mail_options, rcpt_options)
        self._operation: Operation[dict[str, tuple[int, bytes]]] | None = None
        self._path: bool | Literal["ask"] | None = "ask"
        self._envelope: tuple[Mail, list[Rcpt]] | None = None
        #: The replies the driver read, in the usual case.
        self.replies: list[Reply] = []

    def operation(self) -> Operation[dict[str, tuple[int, bytes]]]:
        """The generator: ``sendmail_gen`` (made once)."""
        if self._operation is None:
            from_addr, recipients, msg, mail_options, rcpt_options = self._arguments
            self._operation = sendmail_gen(
                self.client,
                from_addr,
                recipients,
                msg,
                mail_options=mail_options,
                rcpt_options=rcpt_options,
                path=self._path,
            )
        return self._operation

    def round_trip(self) -> tuple[bytes, int] | None:
        """Before the first step, in the usual case (no transcript, not even the logger's):
        what ``sendmail_gen`` would write, its commands queued on the connection, and how
        many replies it waits for.  Else ``None``: run ``operation()``."""
        if self._operation is not None:
            return None
        client = self.client
        from_addr, recipients, msg, mail_options, rcpt_options = self._arguments
        self._path = path = _one_piece(client, recipients, msg, mail_options)
        if not path or logger.isEnabledFor(logging.DEBUG):
            return None
        assert isinstance(msg, bytes)
        mail, rcpts, binary, crlf = _envelope(
            client, from_addr, recipients, msg, mail_options=mail_options, rcpt_options=rcpt_options
        )
        self._envelope = mail, rcpts
        return one_chunk_request(client, (mail, *rcpts), msg, binary, crlf=crlf), len(rcpts) + 2

    def delivered(self) -> dict[str, tuple[int, bytes]] | None:
        """After the driver's round trip: the result if the message was delivered (see the
        function ``delivered``), else ``None``."""
        assert self._envelope is not None
        return delivered(self.client, self._envelope[1], self.replies)

    def rest_gen(
        self, failure: Exception | None, written: bool
    ) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
        """After the driver's round trip, unless it delivered: ``failure`` (the ``OSError``
        of the write, or of a read once ``written``, or the connection's ``ProtocolError``),
        else the reading's end and what the replies so far mean, each taken as the
        operation's exchange takes it."""
        client = self.client
        if isinstance(failure, ProtocolError):
            yield from client._abort_gen()
            raise failure
        if isinstance(failure, OSError):
            if written:
                yield from client._read_failed_gen(failure)
            yield from client._write_failed_gen()
        assert self._envelope is not None
        mail, rcpts = self._envelope
        replies = yield from client._exchange_gen(
            b"", len(rcpts) + 2, partial_at_eof=True, replies=self.replies
        )
        return (yield from conclude_gen(client, one_chunk_outcome(mail, rcpts, replies)))

    def __iter__(self) -> Operation[dict[str, tuple[int, bytes]]]:
        """The generator itself: ``yield from`` and loops then step it with no call here."""
        return self.operation()

    def send(self, value: Any) -> IORequest:
        operation = self._operation
        return (self.operation() if operation is None else operation).send(value)

    def throw(self, *exc_info: Any) -> IORequest:
        return self.operation().throw(*exc_info)

    def close(self) -> None:
        if self._operation is not None:
            self._operation.close()


def _plain_envelope(
    client: Client, from_addr: str, recipients: Sequence[str], msg: bytes
) -> tuple[Mail, list[Rcpt], bool | None]:
    """MAIL and the RCPTs of a transaction with no options given, as ``transaction_gen``
    makes them (``mail_parameters``, ``_build_mail``, ``_build_rcpt`` with nothing to look
    for in the options), ``last_replies`` emptied in between; and whether every line end of
    ``msg`` is CRLF when counting its SIZE found it (its length then), else ``None``."""
    owner = client.owner
    size = normalised_size(msg) if owner.does_esmtp and owner.has_extn("size") else None
    connection = client._connection  # open (_one_piece)
    assert connection is not None
    limit = connection.extensions.size
    if limit and size is not None and size > limit:
        raise SMTPMessageTooLarge(size, limit, from_addr)
    client.last_replies = TransactionReplies({}, {})
    if size is None:
        return Mail(from_addr), list(map(Rcpt, recipients)), None
    return Mail(from_addr, (f"size={size}",)), list(map(Rcpt, recipients)), size == len(msg)


def _one_piece(
    client: Client, recipients: Sequence[str], msg: Message, mail_options: Sequence[str]
) -> bool | None:
    """Whether ``transaction_gen`` would send ``msg`` pipelined as one piece, with nothing to
    do first (greeted; its own steps, none replaced; no transcript): ``True`` as ``BDAT n
    LAST``, ``False`` after DATA, ``None`` if not."""
    connection = client._connection
    owner = client.owner
    if (
        msg.__class__ is not bytes
        or len(msg) > PIECE_SIZE
        or not recipients
        or client.lmtp
        or connection is None
        or connection.state is _CLOSED
        or owner.debuglevel > 0
        or (owner.helo_resp is None and owner.ehlo_resp is None)
    ):
        return None
    extensions = connection.extensions
    if not (owner.pipelining and extensions.pipelining):
        return None
    if client._override is not _nothing_overridden and client._any_replaced(_ONE_PIECE_METHODS):
        return None  # (a Client on its own replaces nothing: no call to ask)
    return bool((owner.chunking and extensions.chunking) or _binary_body(mail_options))


def _envelope_accepted(replies: list[Reply], expected: int) -> bool:
    """Whether the replies to MAIL, the RCPTs and DATA let the body go: every one came (a 421
    closes: none after it), MAIL 250, a RCPT 250 or 251, DATA 354."""
    if len(replies) != expected or replies[0].code != 250 or replies[-1].code != 354:
        return False
    for reply in replies[1:-1]:  # noqa: SIM110 (any() over a generator: two calls more)
        if reply.code in (250, 251):
            return True
    return False


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
    options, size = _sized_parameters(client, from_addr, source, mail_options)
    # Counting the size found whether every line end of a message in memory is CRLF (it is
    # its length then): its chunks need not scan it again.
    counted = size is not None and not binary and isinstance(source, bytes)
    crlf = size == len(source) if counted else None  # type: ignore[arg-type]
    extensions = client.connection.extensions
    client.last_replies = TransactionReplies({}, {})
    if client._any_replaced(_TRANSACTION_METHODS):
        return (yield from _through_methods_gen(client, from_addr, recipients, source, options))
    mail = client._build_mail(from_addr, options)
    rcpts = [client._build_rcpt(recipient, rcpt_opts) for recipient, rcpt_opts in recipients]
    pieces = Pieces(source)
    yield from pieces.start()
    if owner.pipelining and extensions.pipelining and recipients:
        if binary or (owner.chunking and extensions.chunking):
            return (yield from _pipelined_bdat_gen(client, mail, rcpts, pieces, binary, crlf=crlf))
        return (yield from _pipelined_data_gen(client, mail, rcpts, pieces))
    return (yield from _lockstep_gen(client, mail, rcpts, pieces, binary))


def mail_parameters(
    client: Client, from_addr: str, source: Source, mail_options: Sequence[str]
) -> Sequence[str]:
    """The parameters of MAIL for ``source`` on this server: ``SIZE=`` first when the server
    takes SIZE and the size is known.  Raises, before anything is sent, what the server would
    refuse: ``SMTPMessageTooLarge`` over its SIZE, ``SMTPNotSupportedError`` for BINARYMIME
    without CHUNKING."""
    return _sized_parameters(client, from_addr, source, mail_options)[0]


def _sized_parameters(
    client: Client, from_addr: str, source: Source, mail_options: Sequence[str]
) -> tuple[Sequence[str], int | None]:
    """``mail_parameters``, and the size it measured (``None`` if it measured none)."""
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
        return (), size
    if size is not None:
        return (f"size={size}", *mail_options), size
    return mail_options, size


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
            return binary_body_gen(client, source)
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
        return (
            send_chunks_gen(client, pieces, binary) if binary else data_command_gen(client, pieces)
        )

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


def _refuse_sender_gen(client: Client, sender: str, reply: Reply) -> Operation[None]:
    """After a refused MAIL: close on 421, RSET otherwise, then raise."""
    if reply.code != 421:
        yield from client._rset_gen()
    raise SMTPSenderRefused(reply.code, reply.text, sender)


def _pipelined_data_gen(
    client: Client, mail: Mail, rcpts: list[Rcpt], pieces: Pieces
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """MAIL, the RCPTs and DATA in one write (RFC 2920), then the body after a 354.

    Results and exceptions are those of the lock-step exchange.
    """
    expected = len(rcpts) + 2
    replies = yield from client._exchange_gen(client._encode(mail, *rcpts, Data()), expected)
    return (yield from _data_envelope_gen(client, mail, rcpts, pieces, replies))


def _data_envelope_gen(
    client: Client, mail: Mail, rcpts: list[Rcpt], pieces: Pieces, replies: list[Reply]
) -> Generator[IORequest, Any, dict[str, tuple[int, bytes]]]:
    """What follows the replies to a pipelined MAIL, RCPTs and DATA: the body, or what
    lock-step ``sendmail`` does for the refusal among them."""
    expected = len(rcpts) + 2
    mail_reply = replies[0]
    refused, closed_at_rcpt = envelope_replies(client.last_replies.rcpt, rcpts, replies[1:])
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
    client: Client,
    mail: Mail,
    rcpts: list[Rcpt],
    pieces: Pieces,
    binary: bool,
    *,
    crlf: bool | None = None,
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
    refused, closed_at_rcpt = envelope_replies(client.last_replies.rcpt, rcpts, replies[1:])
    proceed = mail_reply.code == 250 and not closed_at_rcpt and len(refused) < len(rcpts)
    if single and (proceed or client.is_connected):
        code, text = yield from finish_body_gen(client, b"")  # (a refused body's too)
    if not proceed:
        yield from _refuse_envelope_gen(client, mail, mail_reply, refused, closed_at_rcpt)
    if not single:
        code, text = yield from send_chunks_gen(client, pieces, binary, crlf=crlf)
    return (yield from _finish_transaction_gen(client, code, text, refused, len(rcpts)))


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
