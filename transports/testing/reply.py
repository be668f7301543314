"""The replies the capture server gives: on cue (``Reply``, ``Action``), and its own texts."""

from typing import Literal

#: A reply the server gives on cue: code and text, e.g. ``(550, "5.1.1 No such user")``.  A
#: text of several lines (separated by ``"\n"``) makes a multi-line reply.
Reply = tuple[int, str]

#: What the server can do at a step instead of replying: ``"close"`` the connection (FIN,
#: after TLS's close_notify), ``"reset"`` it (RST), or ``"stall"``: go silent, reading
#: nothing, until the server stops.
Action = Literal["close", "reset", "stall"]

#: What a step of ``CaptureServer(fail=...)`` does: give a reply, or take an action.
Fault = Reply | Action

_ACTIONS: frozenset[str] = frozenset({"close", "reset", "stall"})

#: The server's own replies, by name; ``{...}`` fields are filled in where they are given.
_TEXTS: dict[str, Reply] = {
    "greeting": (220, "{hostname} {protocol} smtp-proto capture server"),
    "unknown": (502, "5.5.2 Command not implemented"),
    "too-long": (500, "5.5.2 Line too long"),
    "bare-lf": (500, "5.5.2 Command line must end with CRLF"),
    "no-service": (503, "5.5.1 No service"),
    "wrong-hello": (500, "5.5.1 {hello} expected"),
    "hello-syntax": (501, "5.5.4 Syntax: {verb} hostname"),
    "helo": (250, "{hostname}"),
    "hello-first": (503, "5.5.1 {hello} first"),
    "nested-mail": (503, "5.5.1 Nested MAIL command"),
    "mail-syntax": (501, "5.5.4 Syntax: MAIL FROM:<address>"),
    "unsupported-parameter": (555, "5.5.4 Unsupported parameter {parameter}"),
    "bad-size": (501, "5.5.4 Bad SIZE parameter"),
    "too-large": (552, "5.3.4 Message size exceeds fixed limit"),
    "utf8-required": (553, "5.6.7 Non-ASCII address without SMTPUTF8"),
    "mail-ok": (250, "2.1.0 Ok"),
    "mail-first": (503, "5.5.1 MAIL first"),
    "rcpt-syntax": (501, "5.5.4 Syntax: RCPT TO:<address>"),
    "rcpt-ok": (250, "2.1.5 Ok"),
    "no-recipients": (554, "5.5.1 No valid recipients"),
    "data-syntax": (501, "5.5.4 Syntax: DATA"),
    "data-after-bdat": (503, "5.5.1 DATA after BDAT"),
    "go-ahead": (354, "End data with <CR><LF>.<CR><LF>"),
    "queued": (250, "2.0.0 Ok: queued as {number}"),
    "delivered": (250, "2.0.0 Delivered <{recipient}>"),
    "bdat-syntax": (501, "5.5.4 Syntax: BDAT size [LAST]"),
    "chunk-ok": (250, "2.0.0 {size} octets received"),
    "ok": (250, "2.0.0 Ok"),
    "vrfy-syntax": (501, "5.5.4 Syntax: VRFY address"),
    "cannot-vrfy": (252, "2.5.0 Cannot VRFY user, but will accept the message"),
    "no-expn": (502, "5.5.1 EXPN not implemented"),
    "help": (214, "Commands supported:\n{verbs}"),
    "bye": (221, "2.0.0 Bye"),
    "no-tls": (502, "5.5.1 STARTTLS not available"),
    "tls-active": (503, "5.5.1 TLS already active"),
    "starttls-syntax": (501, "5.5.4 Syntax: STARTTLS"),
    "tls-ready": (220, "2.0.0 Ready to start TLS"),
    "no-auth": (502, "5.5.1 AUTH not available"),
    "auth-before-ehlo": (503, "5.5.1 EHLO first"),
    "auth-again": (503, "5.5.1 Already authenticated"),
    "auth-in-transaction": (503, "5.5.1 AUTH not permitted during a mail transaction"),
    "auth-mechanism": (504, "5.5.4 Unrecognized authentication type"),
    "auth-cancelled": (501, "5.7.0 Authentication cancelled"),
    "auth-undecodable": (501, "5.5.2 Cannot decode the response"),
    "auth-malformed": (501, "5.5.2 Malformed {mechanism} response"),
    "auth-ok": (235, "2.7.0 Authentication successful"),
    "auth-failed": (535, "5.7.8 Authentication credentials invalid"),
}
