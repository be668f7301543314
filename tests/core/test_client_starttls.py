"""``Client.starttls`` driven offline (``tests/offline.py``): features forgotten, refusals as
smtplib's, and no plaintext after the 220 (STARTTLS injection)."""

from __future__ import annotations

import pytest

from smtp_proto import (
    SMTPServerDisconnected,
)
from tests.offline import (
    BODY,
    DATA,
    EHLO_LINE,
    EHLO_SIMPLE,
    GO,
    MESSAGE,
    OK,
    RCPT_A,
    TLS,
    C,
    Outcome,
    Peer,
    S,
    connected,
    play,
    same_as_stdlib,
    sending,
)


def test_starttls_forgets_features_and_next_command_re_ehlos() -> None:
    ehlo_before = S(b"250-server.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    ehlo_after = S(b"250-server.example\r\n250-SIZE 500\r\n250 AUTH PLAIN\r\n")
    client = connected()
    script = [EHLO_LINE, ehlo_before, C(b"STARTTLS\r\n"), S(b"220 2.0.0 go ahead\r\n"), TLS]
    result, peer = play(client, script, lambda c: c.starttls())
    assert result == Outcome(value=(220, b"2.0.0 go ahead"))
    assert ("TLS", b"") in peer.transcript
    assert client.esmtp_features == {}
    assert client.ehlo_resp is None
    assert not client.does_esmtp
    assert not client.has_extn("starttls")
    # The next command that needs the features says EHLO again; PIPELINING is forgotten.
    script = [
        EHLO_LINE, ehlo_after, C(b"mail FROM:<s@example.org> size=%d\r\n" % len(MESSAGE)), OK,
        RCPT_A, OK, DATA, GO, BODY, OK,
    ]  # fmt: skip
    action = sending("s@example.org", ["a@example.org"], MESSAGE)
    result, _ = play(client, script, action)
    assert result == Outcome(value={})
    assert client.has_extn("auth")


def test_starttls_not_advertised() -> None:
    got = same_as_stdlib([EHLO_LINE, EHLO_SIMPLE], lambda s: s.starttls())
    assert got == Outcome(
        error="SMTPNotSupportedError", args=("STARTTLS extension not supported by server.",)
    )


def test_starttls_refused() -> None:
    ehlo = S(b"250-server.example\r\n250 STARTTLS\r\n")
    script = [EHLO_LINE, ehlo, C(b"STARTTLS\r\n"), S(b"454 4.7.0 TLS not available\r\n")]
    got = same_as_stdlib(script, lambda s: s.starttls())
    assert got == Outcome(error="SMTPResponseException", args=(454, b"4.7.0 TLS not available"))


def test_starttls_plaintext_injection_after_220_is_refused() -> None:
    ehlo = S(b"250-server.example\r\n250 STARTTLS\r\n")
    client = connected()
    script = [EHLO_LINE, ehlo, C(b"STARTTLS\r\n"), S(b"220 go ahead\r\n250-PIPELINING\r\n")]
    peer = Peer(script)
    with pytest.raises(SMTPServerDisconnected):
        peer.run(client.starttls())
    assert peer.closed
    assert ("TLS", b"") not in peer.transcript
