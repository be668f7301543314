"""What the replies to a transaction mean, with no I/O: the replies kept for the caller, the
refused recipients, and the exception ``sendmail`` raises, shared by the single transaction
(``smtp_proto.transaction``) and a batch of them (``smtp_proto.batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from .commands import Mail, Rcpt
from .errors import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .replies import Reply

__all__ = ["OneChunkOutcome", "TransactionReplies", "envelope_replies", "one_chunk_outcome"]


@dataclass(frozen=True, slots=True)
class TransactionReplies:
    """The replies of one transaction: to each RCPT (by recipient) and to the body (one under
    the key ``""``, or one per recipient for LMTP)."""

    rcpt: dict[str, Reply]
    body: dict[str, Reply]


def envelope_replies(
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
    refused, closed_at_rcpt = envelope_replies(kept, rcpts, replies[1 : wanted - 1])
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
