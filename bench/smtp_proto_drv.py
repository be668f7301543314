"""smtp-proto's driver for the team's benchmark harness (``bench/run.sh`` of the shared kit).

    path/to/bench/run.sh --driver smtp-proto=bench/smtp_proto_drv.py

W1-W4 run the harness's own smtplib workloads against ``smtp_proto.transports.sync`` (the
smtplib API, unchanged: BDAT, since the sink offers CHUNKING; ``--data`` turns BDAT off for
a second row: ``--driver smtp-proto-data=bench/smtp_proto_drv.py,--data``); W5 drives the
sans-I/O ``smtp_proto.Client`` with canned replies and no socket, through the same
operations the adapters run.  ``--from-file`` makes W3 stream the message from a binary file
object (a temporary file written before the timing starts) instead of handing over
``bytes``: ``--driver smtp-proto-file=bench/smtp_proto_drv.py,--from-file``.
Needs ``pip install -e .``.
"""

import itertools
import sys
import tempfile
import time

import bench_common as bc  # the harness puts its clients folder on PYTHONPATH
import smtplib_drv
from smtp_proto.transports import sync

from smtp_proto import RECEIVE, Client


class DataSMTP(sync.SMTP):
    """The blocking adapter with BDAT turned off: DATA even when the server offers CHUNKING."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunking = False


def add_arguments(parser):
    parser.add_argument("--data", action="store_true", help="send with DATA, never BDAT")
    parser.add_argument(
        "--from-file", action="store_true", help="W3: stream the message from a file object"
    )


def with_module(workload):
    """Point the stdlib driver's workload at this adapter (BDAT off with --data)."""

    def run(args):
        smtplib_drv.smtp_module = sync
        if args.data:
            smtplib_drv.smtp_module = type("module", (), {"SMTP": DataSMTP})
        return workload(args)

    return run


def w3_from_file(args):
    """W3 with the message in a file: the client reads it chunk by chunk while sending."""
    if not args.from_file:
        return smtplib_drv.w3(args)
    msg = bc.big_message(args.big_mb)
    size, wire = len(msg), bc.wire_size(msg)
    with tempfile.TemporaryFile() as file:
        file.write(msg)
        del msg  # only the file holds the message now
        file.seek(0)
        s = smtplib_drv.connect(args)
        with bc.BigSend() as b:
            s.sendmail(bc.SENDER, [bc.RCPT], file)
    _, text = s.docmd("XSTAT")
    s.quit()
    got = int(text.decode().split("last=")[1])
    return b.result(size, verified=(got == wire), sink_size=got, source="file object")


EHLO_REPLY = smtplib_drv.EHLO_REPLY
ENVELOPE_REPLIES = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED_REPLY = b"250 2.0.0 Ok: queued\r\n"


def run_offline(operation, replies):
    """Drive a core operation against canned replies; returns (result, bytes it sent)."""
    feed = iter(replies) if isinstance(replies, list) else replies
    value = None
    sent = 0
    try:
        while True:
            request = operation.send(value)
            if request is RECEIVE:
                value = next(feed)
            else:
                value = None
                if isinstance(request, bytes | memoryview):
                    sent += len(request)
    except StopIteration as done:
        return done.value, sent


def offline_client(chunking):
    client = Client(bc.LOCAL_HOSTNAME)
    client.chunking = chunking
    client.connecting("sink", 25)
    run_offline(client.greeting(), [b"220 fake ESMTP\r\n"])
    run_offline(client.ehlo(), [EHLO_REPLY])
    return client


def w5(args):
    msgs = [bc.small_message(i, args.msg_size) for i in range(args.n)]
    client = offline_client(not args.data)
    replies = [ENVELOPE_REPLIES, QUEUED_REPLY]
    if not args.data:  # BDAT: every reply is a 250; one per read keeps them in step
        replies = itertools.repeat(b"250 2.0.0 Ok\r\n")
    c0 = time.process_time()
    t0 = time.perf_counter()
    for m in msgs:
        run_offline(client.sendmail(bc.SENDER, [bc.RCPT], m), replies)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    big = bc.big_message(args.big_mb)
    t1 = time.perf_counter()
    _, sent = run_offline(client.sendmail(bc.SENDER, [bc.RCPT], big), replies)
    bdt = time.perf_counter() - t1
    return {
        "msgs_per_s": args.n / dt,
        "seconds": dt,
        "cpu_s": cpu,
        "n": args.n,
        "big_mb_per_s": len(big) / 2**20 / bdt,
        "big_bytes_out": sent,
        "layer": "smtp_proto.Client operations, canned replies, no socket",
    }


if __name__ == "__main__":
    sys.exit(
        bc.main(
            "smtp-proto",
            {
                "W1": with_module(smtplib_drv.w1),
                "W2": with_module(smtplib_drv.w2),
                "W3": with_module(w3_from_file),
                "W4": with_module(smtplib_drv.w4),
                "W5": w5,
            },
            add_arguments=add_arguments,
        )
    )
