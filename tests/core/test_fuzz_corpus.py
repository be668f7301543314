"""The fuzz targets' checks in the normal suite, without atheris.

Every seed file of every target in ``fuzz/corpus/<target>/`` is replayed through the target's
``check`` function, and each target also gets a few inputs from hypothesis.  The regression
tests at the end replay the findings of the fuzzers (see ``fuzz/README.md``).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtp_proto import RECEIVE, Client
from smtp_proto.driving import drive
from smtp_proto.errors import LocalProtocolError

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = ("fuzz_replies", "fuzz_ehlo", "fuzz_sasl", "fuzz_body", "fuzz_connection")


def load_target(name: str) -> types.ModuleType:
    """Import ``fuzz/<name>.py`` (a script directory, not a package) as a module; the
    directory goes on ``sys.path``, as when a target runs as a script, for its helpers."""
    if name in sys.modules:
        return sys.modules[name]
    if str(FUZZ_DIR) not in sys.path:
        sys.path.append(str(FUZZ_DIR))
    spec = importlib.util.spec_from_file_location(name, FUZZ_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def seeds() -> list[tuple[str, Path]]:
    found = [
        (target, path)
        for target in TARGETS
        for path in sorted((FUZZ_DIR / "corpus" / target).iterdir())
        if path.is_file()
    ]
    assert found, "no seed corpus found"
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_has_a_seed_corpus(target: str) -> None:
    corpus = FUZZ_DIR / "corpus" / target
    assert len([path for path in corpus.iterdir() if path.is_file()]) >= 5
    assert callable(load_target(target).check)


@pytest.mark.parametrize(
    ("target", "seed"), seeds(), ids=[f"{target}/{path.name}" for target, path in seeds()]
)
def test_seed(target: str, seed: Path) -> None:
    load_target(target).check(seed.read_bytes())


_FEW = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    derandomize=True,  # the same inputs every run: a failure here is never a fluke
)


@pytest.mark.parametrize("target", TARGETS)
@_FEW
@given(data=st.binary(max_size=400))
def test_random_input(target: str, data: bytes) -> None:
    load_target(target).check(data)


@pytest.mark.parametrize("target", TARGETS)
@_FEW
@given(
    seed_index=st.integers(min_value=0), flips=st.lists(st.integers(0, (1 << 16) - 1), max_size=8)
)
def test_mutated_seed(target: str, seed_index: int, flips: list[int]) -> None:
    """Seeds with a few bytes changed: random input rarely gets as deep as a mutated seed."""
    corpus = sorted(path for path in (FUZZ_DIR / "corpus" / target).iterdir() if path.is_file())
    data = bytearray(corpus[seed_index % len(corpus)].read_bytes())
    for flip in flips:
        if data:
            data[flip % len(data)] = flip >> 8
    load_target(target).check(bytes(data))


# ---------------------------------------------------------------------------- findings
#
# Inputs the fuzzers found, kept as regression tests.


def test_finding_ehlo_size_with_more_than_4300_digits() -> None:
    """``Extensions.from_features`` used to call ``int()`` on any all-digit SIZE parameter,
    and Python refuses to convert more than 4300 digits: ``ValueError`` escaped instead of
    the parameter being ignored (fixed in d85fd0b: at most 20 digits are converted)."""
    load_target("fuzz_ehlo").check(b"mx.example.org\nPIPELINING\nSIZE " + b"9" * 5000)


def test_finding_connection_ehlo_reply_with_huge_size() -> None:
    """The same through a whole session: one 8 KB EHLO line is within the reply parser's
    limits, and made ``ClientConnection.next_event`` raise ``ValueError`` (no
    ``SMTPException``), which ``Client.ehlo`` let through with the EHLO reply consumed."""
    greeting = bytes([0, 0, 0, 0])  # header; op "greeting"; the server sends 220, whole
    ehlo = bytes([2, 1, 17, 0, 0, 200, 0])  # op "ehlo"; EHLO reply with SIZE of 8001 digits
    load_target("fuzz_connection").check(greeting + ehlo)


def test_finding_pipelined_sendmail_refused_recipient_leaves_phantom_commands() -> None:
    """With PIPELINING, ``sendmail`` handed MAIL, the RCPTs and DATA to the connection one by
    one and wrote them together; when a later command was refused (control character or
    non-ASCII in an address: ``LocalProtocolError``), the earlier ones stayed queued in
    ``ClientConnection.pending`` although nothing was written, and every later reply was
    matched with the wrong command (fixed in d0deaeb: ``send_many``, all or none)."""
    session = bytes([0, 0, 0, 0])  # header; op "greeting"; the server sends 220
    session += bytes([2, 1, 1, 1, 0, 0])  # op "ehlo"; EHLO reply with PIPELINING
    session += bytes([8, 0, 0, 1, 4, 0, 0, 0])  # op "sendmail" to "carol@...\r\nRCPT TO:<evil>"
    session += bytes([15, 2, 0, 0])  # op "noop"; the server says 250
    load_target("fuzz_connection").check(session)


def test_finding_pipelined_sendmail_after_a_refused_recipient() -> None:
    """What the phantom commands above did to the next, valid, ``sendmail``: the server
    accepted MAIL and RCPT and said 354 to DATA, but the connection took the 354 for the
    RCPT's reply, so the client raised ``LocalProtocolError`` ("no message body is open")
    and dropped the connection instead of sending the message."""
    replies = iter(
        [
            b"220 mx.example.org ESMTP\r\n",
            b"250-mx.example.org\r\n250 PIPELINING\r\n",
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
            b"250 2.0.0 Ok: queued\r\n",
        ]
    )
    written: list[bytes] = []

    def perform(request: object) -> bytes | None:
        if request is RECEIVE:
            return next(replies)
        if isinstance(request, bytes | memoryview):
            written.append(bytes(request))
        return None

    client = Client("client.example")
    client.connecting("mx.example.org", 25)
    drive(client.greeting(), perform, lambda: None)
    drive(client.ehlo(), perform, lambda: None)
    bad = ["b@example.org", "c@example.org\r\nRCPT TO:<evil@example.org>"]
    with pytest.raises(LocalProtocolError):
        first = client.sendmail("a@example.org", bad, b"Subject: 1\r\n\r\nx\r\n")
        drive(first, perform, lambda: None)
    assert client.connection.pending == ()  # was (Mail(...), Rcpt('b@example.org'))
    refused = drive(
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: 2\r\n\r\nx\r\n"),
        perform,
        lambda: None,
    )
    assert refused == {}
    assert written[-1].endswith(b"\r\n.\r\n")
