"""Speed of the sans-I/O core alone: no sockets, canned server replies.

    python bench/core_bench.py [--mb 50] [--transactions 20000] [--repeat 5]

Prints the body encoder's rate on a 50 MB message (DATA path: line endings checked, dots
stuffed) and whole MAIL/RCPT/DATA/body/end transactions (2 KB messages) per second through
``Client.sendmail`` with canned replies, with and without PIPELINING, and through the bare
``ClientConnection`` state machine.  The best of
``--repeat`` runs is reported, as ``timeit`` does.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from smtp_proto import RECEIVE, Client, ClientConnection, Data, Ehlo, Mail, Rcpt
from smtp_proto.body import CHUNK_SIZE, BodyEncoder

EHLO = (
    b"250-bench.local\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n"
    b"250 ENHANCEDSTATUSCODES\r\n"
)
EHLO_NO_PIPELINING = b"250-bench.local\r\n250-SIZE 104857600\r\n250 8BITMIME\r\n"


def big_message(megabytes: int) -> bytes:
    """76-character lines, every 25th starting with a dot (as the team's W3 workload)."""
    lines = [(b"." if i % 25 == 0 else b"x") + b"y" * 73 for i in range(megabytes * 2**20 // 76)]
    return b"\r\n".join(lines) + b"\r\n"


def small_message(size: int = 2048) -> bytes:
    """A ~2 KB message with one dot-line, as the team's W1 workload."""
    header = b"From: a@bench.test\r\nTo: b@bench.test\r\nSubject: bench\r\n\r\n"
    body = b".dot line\r\n" + b"z" * 70 + b"\r\n"
    return header + body * ((size - len(header)) // len(body))


def encode_rate(message: bytes) -> float:
    """MB/s of the DATA-path encoder over ``message`` in CHUNK_SIZE pieces."""
    encoder = BodyEncoder()
    view = memoryview(message)
    start = time.perf_counter()
    for offset in range(0, len(message), CHUNK_SIZE):
        encoder.encode(bytes(view[offset : offset + CHUNK_SIZE]))
    encoder.finish()
    return len(message) / 2**20 / (time.perf_counter() - start)


def drive(operation: object, replies: list[bytes]) -> object:
    """Run a core operation against canned replies, discarding what it sends."""
    feed = iter(replies)
    value = None
    try:
        while True:
            request = operation.send(value)  # type: ignore[attr-defined]
            value = next(feed) if request is RECEIVE else None
    except StopIteration as done:
        return done.value


def transaction_rate(count: int, pipelining: bool) -> float:
    """sendmail transactions per second through the core."""
    client = Client("bench.local")
    client.connecting("bench", 25)
    drive(client.greeting(), [b"220 bench ESMTP\r\n"])
    drive(client.ehlo(), [EHLO if pipelining else EHLO_NO_PIPELINING])
    if pipelining:
        replies = [b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n", b"250 2.0.0 queued\r\n"]
    else:
        replies = [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 Go ahead\r\n"]
        replies.append(b"250 2.0.0 queued\r\n")
    message = small_message()
    sendmail = client.sendmail
    start = time.perf_counter()
    for _ in range(count):
        drive(sendmail("a@bench.test", ["b@bench.test"], message), replies)
    return count / (time.perf_counter() - start)


def connection_rate(count: int) -> float:
    """Pipelined transactions per second through ``ClientConnection`` alone (no Client layer)."""
    connection = ClientConnection()
    connection.receive_data(b"220 bench ESMTP\r\n")
    connection.next_event()
    connection.send(Ehlo("bench.local"))
    connection.receive_data(EHLO)
    connection.next_event()
    message = small_message()
    envelope = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n"
    queued = b"250 2.0.0 queued\r\n"
    start = time.perf_counter()
    for _ in range(count):
        connection.send(Mail("a@bench.test", ("size=2048",)))
        connection.send(Rcpt("b@bench.test"))
        connection.send(Data())
        connection.receive_data(envelope)
        connection.next_event()
        connection.next_event()
        connection.next_event()
        connection.send_data(message)
        connection.end_data()
        connection.receive_data(queued)
        connection.next_event()
    return count / (time.perf_counter() - start)


def best(repeat: int, run: Callable[[], float]) -> float:
    return max(run() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--transactions", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    message = big_message(args.mb)
    print(
        f"body encoder, {len(message) / 2**20:.0f} MB, DATA path: "
        f"{best(args.repeat, lambda: encode_rate(message)):.0f} MB/s"
    )
    for pipelining in (True, False):
        rate = best(args.repeat, lambda p=pipelining: transaction_rate(args.transactions, p))
        label = "pipelined" if pipelining else "lock-step"
        print(f"sendmail transactions through the core ({label}): {rate:,.0f} /s")
    rate = best(args.repeat, lambda: connection_rate(args.transactions))
    print(f"the same through ClientConnection alone (pipelined): {rate:,.0f} /s")


if __name__ == "__main__":
    main()
