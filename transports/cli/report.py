"""What ``send`` prints about an outcome: lines for people, or one JSON object for scripts."""

from __future__ import annotations

import json
from typing import Any

from smtp_proto.replies import Reply

from .deliver import Outcome, Plan


def _text(reply: Reply) -> str:
    return reply.text.decode("utf-8", "replace")


def _reply(reply: Reply | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    status = reply.enhanced_status
    return {
        "code": reply.code,
        "enhanced_status": None if status is None else str(status),
        "text": _text(reply),
    }


def as_lines(outcome: Outcome, plan: Plan) -> list[str]:
    """Each recipient's fate (with the server's reply where it says more than "accepted"),
    how many were accepted, and the queue id; or where ``--quit-after`` stopped."""
    lines = []
    if outcome.stopped_after is not None:
        lines.append(f"quit after {outcome.stopped_after} (--quit-after): no message sent")
        if outcome.mail_reply is not None:
            said = _said(outcome.mail_reply)
            lines.append(f"{'sender':<9} {plan.envelope.sender}  {said}")
    sent = outcome.result is not None  # after the message, "accepted" says it all
    for fate in outcome.fates:
        said = ""
        if fate.reply is not None and not (sent and fate.status == "accepted"):
            said = f"  {_said(fate.reply)}"
        lines.append(f"{fate.status:<9} {fate.address}{said}")
    if outcome.fates:
        accepted = sum(fate.ok for fate in outcome.fates)
        lines.append(f"{accepted} of {len(outcome.fates)} recipients accepted")
    if outcome.result is not None and outcome.result.queue_id is not None:
        lines.append(f"{'queue id':<9} {outcome.result.queue_id}")
    return lines


def _said(reply: Reply) -> str:
    return f"{reply.code} {_text(reply)}"


def as_json(outcome: Outcome, plan: Plan, **extra: Any) -> str:
    """The outcome as a JSON object: the proxy, if any; per recipient the status, code,
    enhanced status and text; the final reply and queue id; where it stopped or why it failed
    (and how the proxy failed); the exit code; and the milliseconds from the start to the end
    of each stage."""
    result = outcome.result
    report: dict[str, Any] = {
        "server": plan.where,
        "protocol": "LMTP" if plan.lmtp else "SMTP",
        "transport": plan.transport,
        "proxy": None if plan.proxy is None else str(plan.proxy),
        "sender": plan.envelope.sender,
        "recipients": [
            {"address": fate.address, "status": fate.status, "reply": _reply(fate.reply)}
            for fate in outcome.fates
        ],
        "final_reply": None if result is None else _reply(result.data_reply),
        "queue_id": None if result is None else result.queue_id,
        "quit_after": outcome.stopped_after,
        "mail_reply": _reply(outcome.mail_reply),
        "error": outcome.error,
        "proxy_failure": outcome.proxy_failure,
        "exit_code": outcome.code,
        "timings_ms": outcome.timings,
        **extra,
    }
    return json.dumps(report, indent=2, ensure_ascii=False)
