"""``Client``'s debug output (``debuglevel``), driven offline (``tests/offline.py``): the same
lines as smtplib's."""

from __future__ import annotations

from typing import Any

import pytest

from smtp_proto import (
    Client,
)
from tests.offline import (
    BODY,
    DATA,
    EHLO_LINE,
    GO,
    MESSAGE,
    OK,
    RCPT_A,
    RCPT_B,
    C,
    S,
    chain,
    connected,
    lines,
    play,
    sendmail,
    smtplib_spelling,
    stdlib_play,
)


def test_debug_output_format(capsys: pytest.CaptureFixture[str]) -> None:
    client = connected()
    client.debuglevel = 1
    play(client, [C(b"ehlo x\r\n"), S(b"250 ok\r\n")], lambda c: c.ehlo("x"))
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "send: 'ehlo x\\r\\n'",
        "reply: b'250 ok\\r\\n'",
        "reply: retcode (250); Msg: b'ok'",
    ]


def test_debug_output_matches_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    script = [
        EHLO_LINE, S(b"250-server.example\r\n250 SIZE 1000\r\n"),
        C(b"mail FROM:<s@example.org> size=%d\r\n" % len(MESSAGE)), OK,
        RCPT_A, S(b"550 5.1.1 no\r\n"), RCPT_B, S(b"250-first\r\n250 second\r\n"),
        DATA, GO, BODY, OK, *lines("noop"), S(b"250 \xe9t\xe9\r\n"),
        *lines("quit"), S(b"221 bye\r\n"),
    ]  # fmt: skip

    def action(s: Any) -> Any:
        s.debuglevel = 1
        if isinstance(s, Client):
            return chain(sendmail(s), s.noop(), s.quit())
        return [sendmail(s), s.noop(), s.quit()]

    capsys.readouterr()
    stdlib_play(script, action)
    expected = capsys.readouterr().err
    play(connected(), script, action)
    got = capsys.readouterr().err
    assert got == expected
    assert smtplib_spelling("send: 'mail FROM:<s@example.org> size=") in got
