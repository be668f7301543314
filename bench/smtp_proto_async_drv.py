"""smtp-proto's asyncio and trio adapters as rows of the team's benchmark harness.

    run.sh --driver smtp-proto-asyncio=bench/smtp_proto_async_drv.py,--flavor,asyncio \\
           --driver smtp-proto-trio=bench/smtp_proto_async_drv.py,--flavor,trio

Each workload is written once as a coroutine function over the adapter's ``SMTP`` class and
run on the chosen framework (BDAT, since the sink offers CHUNKING; ``--data`` turns it off).
W5 (no network) is the core's, measured by ``bench/smtp_proto_drv.py``.
"""

import asyncio
import importlib
import statistics
import sys
import time

import bench_common as bc  # the harness puts its clients folder on PYTHONPATH

FLAVORS = {"asyncio": "smtp_proto.transports.asyncio", "trio": "smtp_proto.transports.trio"}


def add_arguments(parser):
    parser.add_argument("--flavor", choices=sorted(FLAVORS), default="asyncio")
    parser.add_argument("--data", action="store_true", help="send with DATA, never BDAT")


def run(args, workload):
    """Run ``workload(args, SMTP)`` on the framework ``--flavor`` names."""
    adapter = importlib.import_module(FLAVORS[args.flavor])
    if args.flavor == "trio":
        import trio  # noqa: PLC0415 - optional: only the trio rows need it

        return trio.run(workload, args, adapter.SMTP)
    return asyncio.run(workload(args, adapter.SMTP))


async def connected(args, smtp_class):
    smtp = smtp_class(args.host, args.port, local_hostname=bc.LOCAL_HOSTNAME, timeout=args.timeout)
    smtp.chunking = not args.data
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def many_small(args, smtp_class):
    msgs = [bc.small_message(i, args.msg_size) for i in range(args.n)]
    smtp = await connected(args, smtp_class)
    t0, c0 = time.perf_counter(), time.process_time()
    for m in msgs:
        await smtp.sendmail(bc.SENDER, [bc.RCPT], m)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await smtp.quit()
    return {"msgs_per_s": args.n / dt, "seconds": dt, "cpu_s": cpu, "n": args.n}


async def fan_out(args, smtp_class):
    rcpts = [f"r{i}@bench.test" for i in range(args.rcpts)]
    msg = bc.small_message(0, args.msg_size)
    t0 = time.perf_counter()
    smtp = await connected(args, smtp_class)
    t1 = time.perf_counter()
    refused = await smtp.sendmail(bc.SENDER, rcpts, msg)
    t2 = time.perf_counter()
    await smtp.quit()
    t3 = time.perf_counter()
    assert not refused, refused
    return {"txn_s": t2 - t1, "session_s": t3 - t0, "connect_ehlo_s": t1 - t0, "rcpts": args.rcpts}


async def big(args, smtp_class):
    msg = bc.big_message(args.big_mb)
    smtp = await connected(args, smtp_class)
    with bc.BigSend() as b:
        await smtp.sendmail(bc.SENDER, [bc.RCPT], msg)
    _, text = await smtp.docmd("XSTAT")
    await smtp.quit()
    got = int(text.decode().split("last=")[1])
    return b.result(len(msg), verified=(got == bc.wire_size(msg)), sink_size=got)


async def concurrent_round(args, smtp_class):
    """One W4 round: ``--total`` messages over ``--conns`` connections at once."""
    per = [args.total // args.conns + (k < args.total % args.conns) for k in range(args.conns)]
    msg = bc.small_message(0, args.msg_size)

    async def worker(count):
        smtp = await connected(args, smtp_class)
        for _ in range(count):
            await smtp.sendmail(bc.SENDER, [bc.RCPT], msg)
        await smtp.quit()

    t0 = time.perf_counter()
    if args.flavor == "trio":
        import trio  # noqa: PLC0415 - optional: only the trio rows need it

        async with trio.open_nursery() as nursery:
            for count in per:
                nursery.start_soon(worker, count)
    else:
        await asyncio.gather(*(worker(count) for count in per))
    return time.perf_counter() - t0


def w4(args):
    dt = statistics.median(run(args, concurrent_round) for _ in range(args.rounds))
    return {
        "msgs_per_s": args.total / dt,
        "seconds": dt,
        "rounds": args.rounds,
        "conns": args.conns,
        "total": args.total,
    }


if __name__ == "__main__":
    sys.exit(
        bc.main(
            "smtp-proto-async",
            {
                "W1": lambda args: run(args, many_small),
                "W2": lambda args: run(args, fan_out),
                "W3": lambda args: run(args, big),
                "W4": w4,
                "W5": "the core's own (no network): see bench/smtp_proto_drv.py",
            },
            add_arguments=add_arguments,
        )
    )
