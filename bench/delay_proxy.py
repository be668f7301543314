"""A delaying TCP proxy on loopback: it makes a round trip cost what it costs over a WAN.

    python3 bench/delay_proxy.py --target-port PORT --delay-ms D [--listen-port 0]

Every chunk read from either side is written to the other side D ms after it was read (per
direction, order kept), so a round trip costs 2·D ms more than on loopback and a client that
pipelines its commands shows it. Used instead of ``tc netem``: it needs no privileges and
slows nothing else down (TCP's own handshake is not delayed, only data). Prints
``LISTENING <port>`` once ready; exits on SIGTERM or SIGINT, or after ``--max-seconds``.
The event loop's timers have about 1 ms granularity: the runner measures the real round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

HOST = "127.0.0.1"
READ_SIZE = 256 * 1024


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        data = b"x"
        while data:
            try:
                data = await reader.read(READ_SIZE)
            except OSError:
                data = b""
            await due.put((loop.time() + delay, data))

    receiving = asyncio.create_task(receive())
    try:
        while True:
            when, data = await due.get()
            await asyncio.sleep(max(0.0, when - loop.time()))
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except OSError:
        return
    finally:
        receiving.cancel()


async def serve(target_port: int, delay: float, listen_port: int, max_seconds: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(HOST, target_port)
        except OSError:
            client_w.close()
            return
        for writer in (client_w, server_w):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))
        finally:
            client_w.close()
            server_w.close()

    server = await asyncio.start_server(handle, HOST, listen_port, backlog=1024)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("--listen-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long")
    args = parser.parse_args()
    asyncio.run(serve(args.target_port, args.delay_ms / 1000, args.listen_port, args.max_seconds))


if __name__ == "__main__":
    main()
