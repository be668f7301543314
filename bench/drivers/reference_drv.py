"""The reference: not a library but the least a client can do on this wire, over a blocking
socket, to show what the protocol allows here (a floor for round trips and copies).

It pipelines (RFC 2920): MAIL, every RCPT and DATA in one write, then the body: two round
trips a message (row ``ref-pipelined``). With ``--bdat`` it uses CHUNKING (RFC 3030): the
envelope, ``BDAT <size> LAST`` and the message in one go, one round trip a message and no
dot-stuffing copy (row ``ref-bdat``). It checks no input and handles nothing the benchmark
does not need. There is no W5: it has no layer apart from its socket.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import common


class Connection:
    """A greeted (EHLO) connection to the sink."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.bdat: bool = args.bdat
        self.sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""
        self.expect(1)
        self.sock.sendall(b"EHLO " + common.LOCAL_HOSTNAME.encode() + b"\r\n")
        ehlo = self.expect(1)[0]
        if b"PIPELINING" not in ehlo:
            raise RuntimeError(f"no PIPELINING: {ehlo!r}")

    def replies(self, count: int) -> list[tuple[int, bytes]]:
        """The next ``count`` replies as (code, text); a multi-line text keeps its lines."""
        found: list[tuple[int, bytes]] = []
        lines: list[bytes] = []
        while len(found) < count:
            end = self.pending.find(b"\r\n")
            if end < 0:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.pending += data
                continue
            line, self.pending = self.pending[:end], self.pending[end + 2 :]
            lines.append(line)
            if line[3:4] != b"-":
                found.append((int(line[:3]), b"\n".join(lines)))
                lines = []
        return found

    def expect(self, count: int) -> list[bytes]:
        """The next ``count`` replies' texts; an error reply raises."""
        replies = self.replies(count)
        for code, text in replies:
            if code >= 400:
                raise RuntimeError(text.decode(errors="replace"))
        return [text for _, text in replies]

    def send(self, message: bytes, rcpts: list[str]) -> bytes:
        """One transaction; the text of its final reply."""
        envelope = b"MAIL FROM:<%s> SIZE=%d\r\n" % (common.SENDER.encode(), len(message))
        envelope += b"".join(b"RCPT TO:<%s>\r\n" % rcpt.encode() for rcpt in rcpts)
        if self.bdat:
            self.sock.sendall(envelope + b"BDAT %d LAST\r\n" % len(message))
            self.sock.sendall(message)
            return self.expect(len(rcpts) + 2)[-1]
        self.sock.sendall(envelope + b"DATA\r\n")
        self.expect(len(rcpts) + 2)
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        self.sock.sendall(stuffed + b".\r\n")  # the messages end with CRLF
        return self.expect(1)[0]

    def quit(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self.replies(1)
        self.sock.close()


def many_small(args: argparse.Namespace) -> common.Result:
    messages = [common.small_message(i, args.msg_size) for i in range(args.n)]
    connection = Connection(args)
    with common.Timer() as timer:
        replies = [connection.send(message, [common.RCPT]) for message in messages]
    connection.quit()
    return common.rate(args.n, timer) | common.delivery_from_replies(
        messages, [reply.decode() for reply in replies]
    )


def fan_out(args: argparse.Namespace) -> common.Result:
    rcpts = common.fan_out_recipients(args.rcpts)
    message = common.small_message(0, args.msg_size)
    start = time.perf_counter()
    connection = Connection(args)
    greeted = time.perf_counter()
    connection.send(message, rcpts)
    sent = time.perf_counter()
    connection.quit()
    return common.fan_out(start, greeted, sent, time.perf_counter(), args.rcpts)


def big(args: argparse.Namespace) -> common.Result:
    message = common.big_message(args.big_mb)
    connection = Connection(args)
    with common.BigSend() as send:
        reply = connection.send(message, [common.RCPT])
    connection.quit()
    return send.result(len(message)) | common.delivery_from_replies([message], [reply.decode()])


def concurrent_round(args: argparse.Namespace) -> float:
    message = common.small_message(0, args.msg_size)

    def session(count: int) -> None:
        connection = Connection(args)
        for _ in range(count):
            connection.send(message, [common.RCPT])
        connection.quit()

    return common.threaded_round(args, session, common.per_connection(args.total, args.conns))


def concurrent(args: argparse.Namespace) -> common.Result:
    return common.concurrent(args, [concurrent_round(args) for _ in range(args.rounds)])


def volume(args: argparse.Namespace) -> common.Result:
    """W6 and W7: one transaction at a time on each connection, a thread per connection."""
    messages, conns = common.volume(args, slow=True)
    replies: list[str] = []

    def session(share: list[bytes]) -> None:
        connection = Connection(args)
        replies.extend(connection.send(message, [common.RCPT]).decode() for message in share)
        connection.quit()

    seconds = common.threaded_round(args, session, common.split(messages, conns))
    return common.throughput(len(messages), seconds) | common.delivery_from_replies(
        messages, replies
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bdat", action="store_true", help="CHUNKING instead of DATA")


if __name__ == "__main__":
    sys.exit(
        common.main(
            "reference",
            {
                "W1": many_small,
                "W2": fan_out,
                "W3": big,
                "W4": concurrent,
                "W5": "the reference has no layer apart from its socket",
                "W6": volume,
                "W7": volume,
            },
            add_arguments=add_arguments,
        )
    )
