# ruff: noqa: E501 - transcript lines are kept whole, as printed
"""The transcripts printed in the smtplib chapter of Doug Hellmann's "Python Module of the
Week" (PyMOTW-3, source/smtplib/index.rst), replayed offline (``tests/offline.py``): the
``Client`` prints and sends what they show."""

from __future__ import annotations

import ast
import base64
from typing import Any

import pytest

from smtp_proto import (
    Client,
)
from tests.offline import (
    C,
    Peer,
    S,
    Step,
    chain,
    lines,
    play,
    smtplib_spelling,
    stdlib_play,
    stdlib_smtp,
)

# The transcripts printed (with debuglevel 1) in PyMOTW-3's smtplib chapter, with the lines
# the page wraps joined again and the long reverse-DNS host name written as {HOST}.

PYMOTW_HOST = "1." + "0." * 31 + "ip6.arpa"

PYMOTW_SENDMAIL = r"""
send: 'ehlo {HOST}\r\n'
reply: b'250-{HOST}\r\n'
reply: b'250-SIZE 33554432\r\n'
reply: b'250 HELP\r\n'
reply: retcode (250); Msg: b'{HOST}\nSIZE 33554432\nHELP'
send: 'mail FROM:<author@example.com> size=236\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'rcpt TO:<recipient@example.com>\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'data\r\n'
reply: b'354 End data with <CR><LF>.<CR><LF>\r\n'
reply: retcode (354); Msg: b'End data with <CR><LF>.<CR><LF>'
data: (354, b'End data with <CR><LF>.<CR><LF>')
send: b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nTo: Recipient <recipient@example.com>\r\nFrom: Author <author@example.com>\r\nSubject: Simple test message\r\n\r\nThis is the body of the message.\r\n.\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
data: (250, b'OK')
send: 'quit\r\n'
reply: b'221 Bye\r\n'
reply: retcode (221); Msg: b'Bye'
"""

PYMOTW_AUTHENTICATED_PLAIN = r"""
send: 'ehlo {HOST}\r\n'
reply: b'250-{HOST}\r\n'
reply: b'250-SIZE 33554432\r\n'
reply: b'250 HELP\r\n'
reply: retcode (250); Msg: b'{HOST}\nSIZE 33554432\nHELP'
(no STARTTLS)
(no AUTH)
send: 'mail FROM:<author@example.com> size=220\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'rcpt TO:<doug@pymotw.com>\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
send: 'data\r\n'
reply: b'354 End data with <CR><LF>.<CR><LF>\r\n'
reply: retcode (354); Msg: b'End data with <CR><LF>.<CR><LF>'
data: (354, b'End data with <CR><LF>.<CR><LF>')
send: b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nTo: Recipient <doug@pymotw.com>\r\nFrom: Author <author@example.com>\r\nSubject: Test from PyMOTW\r\n\r\nTest message from PyMOTW.\r\n.\r\n'
reply: b'250 OK\r\n'
reply: retcode (250); Msg: b'OK'
data: (250, b'OK')
send: 'quit\r\n'
reply: b'221 Bye\r\n'
reply: retcode (221); Msg: b'Bye'
"""

PYMOTW_AUTHENTICATED_TLS = r"""
send: 'ehlo {HOST}\r\n'
reply: b'250-mail.isp.net\r\n'
reply: b'250-PIPELINING\r\n'
reply: b'250-SIZE 71000000\r\n'
reply: b'250-ENHANCEDSTATUSCODES\r\n'
reply: b'250-8BITMIME\r\n'
reply: b'250-AUTH PLAIN LOGIN\r\n'
reply: b'250 AUTH=PLAIN LOGIN\r\n'
reply: retcode (250); Msg: b'mail.isp.net\nPIPELINING\nSIZE 71000000\nENHANCEDSTATUSCODES\n8BITMIME\nAUTH PLAIN LOGIN\nAUTH=PLAIN LOGIN'
(no STARTTLS)
(logging in)
send: 'AUTH PLAIN AGRvdWdoZWxsbWFubkBmYXN0bWFpbC5mbQBUTUZ3MDBmZmFzdG1haWw=\r\n'
reply: b'235 2.0.0 OK\r\n'
reply: retcode (235); Msg: b'2.0.0 OK'
send: 'mail FROM:<author@example.com> size=220\r\n'
reply: b'250 2.1.0 Ok\r\n'
reply: retcode (250); Msg: b'2.1.0 Ok'
send: 'rcpt TO:<doug@pymotw.com>\r\n'
reply: b'250 2.1.5 Ok\r\n'
reply: retcode (250); Msg: b'2.1.5 Ok'
send: 'data\r\n'
reply: b'354 End data with <CR><LF>.<CR><LF>\r\n'
reply: retcode (354); Msg: b'End data with <CR><LF>.<CR><LF>'
data: (354, b'End data with <CR><LF>.<CR><LF>')
send: b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nTo: Recipient <doug@pymotw.com>\r\nFrom: Author <author@example.com>\r\nSubject: Test from PyMOTW\r\n\r\nTest message from PyMOTW.\r\n.\r\n'
reply: b'250 2.0.0 Ok: queued as A0EF7F2983\r\n'
reply: retcode (250); Msg: b'2.0.0 Ok: queued as A0EF7F2983'
data: (250, b'2.0.0 Ok: queued as A0EF7F2983')
send: 'quit\r\n'
reply: b'221 2.0.0 Bye\r\n'
reply: retcode (221); Msg: b'2.0.0 Bye'
"""

# Printed by a Python 2 smtplib, whose verify() still sent the address in angle brackets.
PYMOTW_VERIFY = r"""
send: 'vrfy <dhellmann>\r\n'
reply: '250 2.1.5 Doug Hellmann <dhellmann@mail>\r\n'
reply: retcode (250); Msg: 2.1.5 Doug Hellmann <dhellmann@mail>
send: 'vrfy <notthere>\r\n'
reply: '550 5.1.1 <notthere>... User unknown\r\n'
reply: retcode (550); Msg: 5.1.1 <notthere>... User unknown
send: 'quit\r\n'
reply: '221 2.0.0 mail closing connection\r\n'
reply: retcode (221); Msg: 2.0.0 mail closing connection
"""


def transcript_lines(transcript: str) -> list[str]:
    """The transcript's lines, MAIL and RCPT spelled as the running smtplib spells them (the
    page's Python printed ``mail FROM:``, as every smtplib before 3.13 did)."""
    return smtplib_spelling(transcript.replace("{HOST}", PYMOTW_HOST)).strip().splitlines()


def transcript_script(transcript: str) -> list[Step]:
    """The conversation of a transcript: ``send:`` lines are C steps, ``reply:`` lines S steps."""
    script: list[Step] = []
    for line in transcript_lines(transcript):
        kind, _, rest = line.partition(": ")
        if kind not in ("send", "reply") or rest.startswith("retcode"):
            continue
        value = ast.literal_eval(rest)
        data = value if isinstance(value, bytes) else value.encode("latin-1")
        script.append(C(data) if kind == "send" else S(data))
    return script


def debug_lines(transcript: str) -> list[str]:
    """The lines smtplib itself printed (not the example program's own messages)."""
    return [
        line
        for line in transcript_lines(transcript)
        if line.startswith(("send: ", "reply: ", "data: "))
    ]


def message_of(script: list[Step]) -> str:
    """The message text the example passed to sendmail(): msg.as_string(), with LF line ends."""
    body = next(s.data for s in script if isinstance(s, C) and s.data.startswith(b"Content-Type"))
    assert body.endswith(b"\r\n.\r\n")
    return body[: -len(b"\r\n.\r\n")].decode("ascii").replace("\r\n", "\n")


def pymotw_client() -> Client:
    client = Client()  # no local_hostname: the example's socket.getfqdn() answer is used
    client.connecting("mail", 25)
    # The transcripts start after the greeting (debuglevel was set after connecting).
    Peer([S(b"220 mail ESMTP\r\n")]).run(client.greeting())
    return client


def test_pymotw_sendmail_transcript(capsys: pytest.CaptureFixture[str]) -> None:
    script = transcript_script(PYMOTW_SENDMAIL)
    message = message_of(script)
    assert len(message.replace("\n", "\r\n")) == 236  # the size= the transcript shows
    client = pymotw_client()
    client.debuglevel = 1
    capsys.readouterr()
    peer = Peer(script, hostname=PYMOTW_HOST)
    refused = peer.run(client.sendmail("author@example.com", ["recipient@example.com"], message))
    assert peer.run(client.quit()) == (221, b"Bye")
    peer.expect_finished()
    assert refused == {}
    expected_sends = [step.data for step in script if isinstance(step, C)]
    assert peer.writes == expected_sends
    # The debug output is the transcript itself.
    assert capsys.readouterr().err.splitlines() == debug_lines(PYMOTW_SENDMAIL)


def test_pymotw_sendmail_transcript_is_what_stdlib_sends() -> None:
    script = transcript_script(PYMOTW_SENDMAIL)
    peer = Peer(script)
    smtp = stdlib_smtp(peer, local_hostname=PYMOTW_HOST)
    smtp.sendmail("author@example.com", ["recipient@example.com"], message_of(script))
    smtp.quit()
    peer.expect_finished()


def test_pymotw_authenticated_insecure_transcript(capsys: pytest.CaptureFixture[str]) -> None:
    script = transcript_script(PYMOTW_AUTHENTICATED_PLAIN)
    client = pymotw_client()
    client.debuglevel = 1
    capsys.readouterr()
    peer = Peer(script, hostname=PYMOTW_HOST)
    peer.run(client.ehlo())
    assert not client.has_extn("STARTTLS")  # "(no STARTTLS)"
    assert not client.has_extn("AUTH")  # "(no AUTH)"
    message = message_of(script)
    assert peer.run(client.sendmail("author@example.com", ["doug@pymotw.com"], message)) == {}
    assert peer.run(client.quit()) == (221, b"Bye")
    peer.expect_finished()
    assert peer.writes == [step.data for step in script if isinstance(step, C)]
    assert capsys.readouterr().err.splitlines() == debug_lines(PYMOTW_AUTHENTICATED_PLAIN)


def test_pymotw_authenticated_tls_transcript() -> None:
    # The second run used SMTP_SSL (TLS from the first byte), PLAIN login and a server that
    # advertises PIPELINING: the client may pipeline MAIL/RCPT/DATA, with the same bytes.
    script = transcript_script(PYMOTW_AUTHENTICATED_TLS)
    auth_line = next(s.data for s in script if isinstance(s, C) and s.data.startswith(b"AUTH"))
    _, user, password = base64.b64decode(auth_line.split()[2]).split(b"\0")
    client = pymotw_client()
    peer = Peer(script, hostname=PYMOTW_HOST, pipelining=True)
    peer.run(client.ehlo())
    assert not client.has_extn("STARTTLS")  # "(no STARTTLS)"
    assert peer.run(client.login(user.decode(), password.decode())) == (235, b"2.0.0 OK")
    message = message_of(script)
    assert peer.run(client.sendmail("author@example.com", ["doug@pymotw.com"], message)) == {}
    assert peer.run(client.quit()) == (221, b"2.0.0 Bye")
    peer.expect_finished()
    sends = [step.data for step in script if isinstance(step, C)]
    assert peer.client_bytes == b"".join(sends)
    assert b"".join(sends[2:5]) in peer.writes  # MAIL, RCPT and DATA in one write


def test_pymotw_verify_transcript() -> None:
    # The bytes of the transcript, sent with the low-level API (Python 2's verify() quoted
    # the address; today's smtplib and the client send it bare, see the next test).
    script = transcript_script(PYMOTW_VERIFY)
    client = pymotw_client()
    peer = Peer(script)
    dhellmann = peer.run(client.docmd("vrfy", "<dhellmann>"))
    notthere = peer.run(client.docmd("vrfy", "<notthere>"))
    assert peer.run(client.quit()) == (221, b"2.0.0 mail closing connection")
    peer.expect_finished()
    assert peer.writes == [step.data for step in script if isinstance(step, C)]
    assert dhellmann == (250, b"2.1.5 Doug Hellmann <dhellmann@mail>")
    assert notthere == (550, b"5.1.1 <notthere>... User unknown")


def test_pymotw_verify_with_todays_smtplib() -> None:
    replies = [step for step in transcript_script(PYMOTW_VERIFY) if isinstance(step, S)]
    script = [
        *lines("vrfy dhellmann"),
        replies[0],
        *lines("vrfy notthere"),
        replies[1],
        *lines("quit"),
        replies[2],
    ]

    def action(s: Any) -> Any:
        if isinstance(s, Client):
            return chain(s.verify("dhellmann"), s.verify("notthere"), s.quit())
        return (s.verify("dhellmann"), s.verify("notthere"), s.quit())

    expected, _ = stdlib_play(script, action)
    got, peer = play(pymotw_client(), script, action)
    assert got.value == (221, b"2.0.0 mail closing connection")
    assert expected.value[-1] == got.value
    assert peer.closed
