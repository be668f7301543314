"""A local SMTP/LMTP server that captures what it receives: for trying the client, and for tests.

``CaptureServer`` listens on 127.0.0.1 (or a Unix socket), runs in background threads while in
a ``with`` block, and keeps every message it accepts as a ``CapturedMessage``::

    with CaptureServer() as server:
        with SMTP(server.host, server.port) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        (captured,) = server.wait_for_messages(1)
        assert captured.data == b"Subject: hi\\r\\n\\r\\nhello\\r\\n"

It speaks ESMTP with PIPELINING, 8BITMIME, SMTPUTF8, SIZE (enforced), DSN, CHUNKING and
ENHANCEDSTATUSCODES; STARTTLS when given a server ``ssl.SSLContext``; AUTH PLAIN and LOGIN when
given credentials; and LMTP (LHLO, one reply per recipient after the message) when asked.
It refuses recipients, fails a step, drops, resets or stalls the connection on cue, so a
test can check how its code handles each.  It is written independently of the client code,
so it checks the client from the outside.
"""

from __future__ import annotations

from .message import CapturedMessage
from .reply import Action, Fault, Reply
from .server import CaptureServer

__all__ = ["Action", "CaptureServer", "CapturedMessage", "Fault", "Reply"]
