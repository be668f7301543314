"""What the replies to a transaction mean, with no I/O: the replies kept for the caller, the
refused recipients, and the exception ``sendmail`` raises, shared by the single transaction
(``smtp_proto.transaction``) and a batch of them (``smtp_proto.batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._slots import slot_setters
from .commands import Mail, Rcpt
from .errors import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .replies import Reply

__all__ = ["OneChunkOutcome", "TransactionReplies", "envelope_replies", "one_chunk_outcome"]


@dataclass(frozen=True, slots=True, init=False)
class TransactionReplies:
    """The replies of one transaction: to each RCPT (by recipient) and to the body (one under
    the key ``""``, or one per recipient for LMTP)."""

    rcpt: dict[str, Reply]
    body: dict[str, Reply]

    def __init__(self, rcpt: dict[str, Reply], body: dict[str, Reply]) -> None:
        # Made for every message: the slots set directly (smtp_proto._slots).
        _set_rcpt(self, rcpt)
        _set_body(self, body)


_set_rcpt, _set_body = slot_setters(TransactionReplies, "rcpt", "body")


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


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(
        self,
        replies: TransactionReplies,
        refused: dict[str, tuple[int, bytes]],
        error: Exception | None,
        rset: bool,
        body: Reply | None,
    ) -> None:
        # Made for every message: the slots set directly (smtp_proto._slots).
        _set_replies(self, replies)
        _set_refused(self, refused)
        _set_error(self, error)
        _set_rset(self, rset)
        _set_outcome_body(self, body)


_set_replies, _set_refused, _set_error, _set_rset, _set_outcome_body = slot_setters(
    OneChunkOutcome, "replies", "refused", "error", "rset", "body"
)


def one_chunk_outcome(
    mail: Mail, rcpts: Sequence[Rcpt], replies: Sequence[Reply]
) -> OneChunkOutcome:
    """The outcome of MAIL, ``rcpts`` and ``BDAT n LAST`` sent together, from their replies in
    order: all ``len(rcpts) + 2`` of them, or fewer when the server closed the connection
    (after a 421, or at EOF).  No I/O: the single transaction and a batch share it."""
    wanted = len(rcpts) + 2
    count = len(replies)
    kept: dict[str, Reply] = {}
    if count < wanted and (not replies or replies[-1].code != 421):  # cut short by EOF
        refused = {} if count < wanted - 1 else envelope_replies(kept, rcpts, replies[1:])[0]
        lost = SMTPServerDisconnected("Connection unexpectedly closed")
        return OneChunkOutcome(TransactionReplies(kept, {}), refused, lost, False, None)
    refused, closed_at_rcpt = envelope_replies(kept, rcpts, replies[1 : wanted - 1])
    if count == wanted:
        body: Reply | None = replies[-1]
        outcome = TransactionReplies(kept, {"": replies[-1]})
    else:
        body, outcome = None, TransactionReplies(kept, {})
    code = replies[0].code
    if code != 250:
        refusal = SMTPSenderRefused(code, replies[0].text, mail.sender)
        return OneChunkOutcome(outcome, refused, refusal, code != 421, body)
    if closed_at_rcpt or len(refused) == len(rcpts):
        every = SMTPRecipientsRefused(refused)
        return OneChunkOutcome(outcome, refused, every, not closed_at_rcpt, body)
    assert body is not None  # no 421 before it, no EOF
    if body.code != 250:
        failure = SMTPDataError(body.code, body.text)
        return OneChunkOutcome(outcome, refused, failure, body.code != 421, body)
    return OneChunkOutcome(outcome, refused, None, False, body)
