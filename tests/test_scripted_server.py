"""Tests of the scripted test server itself, driven by raw sockets.

The client test suites rely on `ScriptedServer`/`StandardESMTP` for exact transcripts and
fault injection, so the server's own behaviour is pinned down here with nothing between
the test and the bytes on the wire.
"""

from __future__ import annotations

import base64
import hmac
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
import trustme

from tests.scripted_server import (
    FAULT_STEPS,
    Envelope,
    ScriptedServer,
    Session,
    StandardESMTP,
)

CLIENT_TIMEOUT = 5.0  # a safety bound only; nothing waits for it in a passing test


class RawClient:
    """A minimal line-oriented client over a plain (or TLS-wrapped) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sock.settimeout(CLIENT_TIMEOUT)

    @classmethod
    def connect(cls, server: ScriptedServer) -> Self:
        if server.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CLIENT_TIMEOUT)
            sock.connect(server.unix_path)
            return cls(sock)
        return cls(socket.create_connection((server.host, server.port), CLIENT_TIMEOUT))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One line including CRLF; b"" at EOF."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> list[bytes]:
        """A complete (possibly multi-line) reply, lines without CRLF."""
        lines = []
        while True:
            line = self.line()
            assert line.endswith(b"\r\n"), f"incomplete reply line {line!r}"
            lines.append(line[:-2])
            if line[3:4] != b"-":
                return lines

    def cmd(self, command: str) -> list[bytes]:
        self.send(command.encode() + b"\r\n")
        return self.reply()

    def code(self, command: str) -> int:
        return int(self.cmd(command)[-1][:3])

    def starttls(self, context: ssl.SSLContext) -> None:
        assert not self.buf
        # No ragged EOFs: a server close without close_notify must show up as an error.
        self.sock = context.wrap_socket(
            self.sock, server_hostname="test.local", suppress_ragged_eofs=False
        )


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for the name test.local, from a throwaway CA."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("test.local").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def greet(client: RawClient, verb: str = "EHLO") -> list[bytes]:
    """Read the greeting, say hello, and return the advertised extension lines."""
    assert client.reply()[0].startswith(b"220")
    reply = client.cmd(f"{verb} client.example")
    assert reply[0] == (b"250-test.local" if len(reply) > 1 else b"250 test.local")
    return [line[4:] for line in reply[1:]]


# -- StandardESMTP transcripts -----------------------------------------------------------


def test_full_transaction_exact_transcript() -> None:
    behaviour = StandardESMTP()
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as client:
        assert client.sock.getpeername() == ("127.0.0.1", server.port)
        assert client.reply() == [b"220 test.local ESMTP"]
        assert client.cmd("EHLO client.example") == [
            b"250-test.local",
            b"250-PIPELINING",
            b"250-8BITMIME",
            b"250 SIZE 1000000",
        ]
        assert client.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME") == [b"250 2.1.0 Sender OK"]
        assert client.cmd("RCPT TO:<b@example.net>") == [b"250 2.1.5 Recipient OK"]
        assert client.code("DATA") == 354
        assert client.cmd("Subject: hi\r\n\r\nhello\r\n.") == [
            b"250 2.0.0 Message accepted for delivery"
        ]
        assert client.cmd("QUIT") == [b"221 2.0.0 Bye"]
        assert client.line() == b""  # the server closed after 221
        server.wait_sessions_done()

    [session] = server.sessions
    assert bytes(session.received) == (
        b"EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=8BITMIME\r\n"
        b"RCPT TO:<b@example.net>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n"
    )
    assert bytes(session.sent) == (
        b"220 test.local ESMTP\r\n250-test.local\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
        b"250 SIZE 1000000\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n"
        b"250 2.0.0 Message accepted for delivery\r\n221 2.0.0 Bye\r\n"
    )
    assert session.closed
    assert behaviour.commands == [
        b"EHLO client.example",
        b"MAIL FROM:<a@example.org> BODY=8BITMIME",
        b"RCPT TO:<b@example.net>",
        b"DATA",
        b"QUIT",
    ]
    assert behaviour.envelopes == [
        Envelope(
            mail_from="a@example.org",
            mail_options=["BODY=8BITMIME"],
            rcpt_tos=["b@example.net"],
            rcpt_options=[[]],
            data=b"Subject: hi\r\n\r\nhello\r\n",
            via="DATA",
        )
    ]


def test_pipelined_commands_answered_in_order() -> None:
    behaviour = StandardESMTP(
        reject=lambda addr: (550, "5.1.1 No such user") if addr.startswith("reject") else None
    )
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as client:
        greet(client)
        client.send(
            b"MAIL FROM:<> SIZE=10\r\nRCPT TO:<one@x> NOTIFY=NEVER\r\n"
            b"RCPT TO:<reject-me@x>\r\nRCPT TO:<two@x>\r\nDATA\r\n"
        )
        replies = [client.reply() for _ in range(5)]
        assert [r[0][:3] for r in replies] == [b"250", b"250", b"550", b"250", b"354"]
        assert replies[2] == [b"550 5.1.1 No such user"]
        client.send(b"body\r\n.\r\nQUIT\r\n")
        assert client.reply()[0].startswith(b"250")
        assert client.reply()[0].startswith(b"221")

    [envelope] = behaviour.envelopes
    assert envelope.mail_from == ""
    assert envelope.mail_options == ["SIZE=10"]
    assert envelope.rcpt_tos == ["one@x", "two@x"]
    assert envelope.rcpt_options == [["NOTIFY=NEVER"], []]
    assert behaviour.commands[1:6] == [
        b"MAIL FROM:<> SIZE=10",
        b"RCPT TO:<one@x> NOTIFY=NEVER",
        b"RCPT TO:<reject-me@x>",
        b"RCPT TO:<two@x>",
        b"DATA",
    ]


def test_data_is_dot_unstuffed_but_received_raw() -> None:
    behaviour = StandardESMTP()
    stuffed = b"line1\r\n..leading dot\r\n..\r\n...\r\nend .\r\n"
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as client:
        greet(client)
        for command in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"):
            assert client.code(command) in (250, 354)
        client.send(stuffed + b".\r\n")
        assert client.reply()[0].startswith(b"250")
        # An empty message is just the terminator.
        for command in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"):
            assert client.code(command) in (250, 354)
        assert client.code(".") == 250
        assert client.code("QUIT") == 221

    assert [e.data for e in behaviour.envelopes] == [
        b"line1\r\n.leading dot\r\n.\r\n..\r\nend .\r\n",
        b"",
    ]
    assert stuffed in server.sessions[0].received


def test_bdat_chunks_are_read_exactly() -> None:
    behaviour = StandardESMTP(chunking=True)
    chunk1 = b"a\r\n.\r\nDATA\r\n"  # protocol-looking bytes inside a chunk are just data
    chunk2 = b"\x00\xff end"
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as client:
        assert greet(client)[-1] == b"CHUNKING"
        assert client.code("MAIL FROM:<a@x> BODY=BINARYMIME") == 250
        assert client.code("RCPT TO:<b@x>") == 250
        client.send(b"BDAT %d\r\n%s" % (len(chunk1), chunk1))
        client.send(b"BDAT %d LAST\r\n%s" % (len(chunk2), chunk2))
        assert client.reply() == [b"250 2.0.0 %d octets received" % len(chunk1)]
        assert client.reply() == [b"250 2.0.0 Message accepted for delivery"]
        # BDAT 0 LAST ends a message; DATA after BDAT is refused.
        assert client.code("MAIL FROM:<a@x>") == 250
        assert client.code("RCPT TO:<b@x>") == 250
        assert client.code("BDAT 0 LAST") == 250
        assert client.code("QUIT") == 221

    assert [(e.data, e.via) for e in behaviour.envelopes] == [
        (chunk1 + chunk2, "BDAT"),
        (b"", "BDAT"),
    ]
    assert b"BDAT 12" in behaviour.commands
    assert chunk1 not in behaviour.commands  # chunk payloads are not commands


def test_bdat_without_chunking_is_unknown_and_data_after_bdat_refused() -> None:
    with ScriptedServer(StandardESMTP(chunking=True)) as server, RawClient.connect(server) as c:
        greet(c)
        assert c.code("MAIL FROM:<a@x>") == 250
        assert c.code("RCPT TO:<b@x>") == 250
        c.send(b"BDAT 2\r\nhi")
        assert c.reply()[0].startswith(b"250")
        assert c.code("DATA") == 503
    with ScriptedServer(StandardESMTP()) as server, RawClient.connect(server) as c:
        assert b"CHUNKING" not in greet(c)
        assert c.code("BDAT 0 LAST") == 500


def test_sequence_and_misc_commands() -> None:
    behaviour = StandardESMTP()
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        c.reply()
        assert c.code("MAIL FROM:<a@x>") == 503  # no greeting yet
        assert c.cmd("HELO client.example") == [b"250 test.local"]
        assert c.code("RCPT TO:<b@x>") == 503
        assert c.code("DATA") == 503
        assert c.code("MAIL FROM:a@x") == 501
        assert c.code("MAIL FROM:<a@x> SIZE=2000000") == 552
        assert c.code("MAIL FROM:<a@x>") == 250
        assert c.code("MAIL FROM:<a@x>") == 503
        assert c.code("DATA") == 554  # no recipients
        assert c.code("RSET") == 250
        assert c.code("RCPT TO:<b@x>") == 503  # RSET ended the transaction
        assert c.code("NOOP") == 250
        assert c.code("VRFY someone") == 252
        assert c.code("VRFY") == 501
        assert c.code("EXPN list") == 502
        assert c.cmd("HELP")[0].startswith(b"214-")
        assert c.code("STARTTLS") == 502
        assert c.code("AUTH PLAIN") == 502
        assert c.code("XYZZY") == 500
        assert c.code("EHLO") == 501
        c.send(b"NOOP\n")
        assert c.reply() == [b"500 5.5.2 Command line must end with CRLF"]
        assert c.code("QUIT") == 221
    assert behaviour.envelopes == []
    assert b"NOOP" in behaviour.commands


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    behaviour = StandardESMTP(
        greeting="220 test.local LMTP",
        lmtp=True,
        reject=lambda addr: (550, "5.1.1 unknown") if addr.startswith("reject") else None,
    )
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        c.reply()
        assert c.code("EHLO client.example") == 500
        assert c.cmd("LHLO client.example")[-1] == b"250 SIZE 1000000"
        c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<u1@x>\r\nRCPT TO:<reject1@x>\r\nRCPT TO:<u2@x>\r\n")
        assert [c.reply()[0][:3] for _ in range(4)] == [b"250", b"250", b"550", b"250"]
        assert c.code("DATA") == 354
        c.send(b"msg\r\n.\r\n")
        assert c.reply() == [b"250 2.1.5 <u1@x> delivered"]
        assert c.reply() == [b"250 2.1.5 <u2@x> delivered"]
        assert c.code("QUIT") == 221
    assert behaviour.envelopes[0].rcpt_tos == ["u1@x", "u2@x"]


def test_lmtp_custom_data_replies() -> None:
    def replies(rcpts: list[str]) -> list[str]:
        return [f"452 4.2.2 <{r}> over quota" if "full" in r else "250 2.0.0 ok" for r in rcpts]

    behaviour = StandardESMTP(lmtp=True, data_replies=replies)
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        greet(c, "LHLO")
        for command in ("MAIL FROM:<a@x>", "RCPT TO:<full@x>", "RCPT TO:<ok@x>", "DATA"):
            c.cmd(command)
        c.send(b"msg\r\n.\r\n")
        assert c.reply() == [b"452 4.2.2 <full@x> over quota"]
        assert c.reply() == [b"250 2.0.0 ok"]
    assert len(behaviour.envelopes) == 1


def test_smtp_data_replies_form_the_final_reply() -> None:
    behaviour = StandardESMTP(data_replies=lambda rcpts: ["554-5.7.1 spam", "554 5.7.1 go away"])
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        greet(c)
        for command in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"):
            c.cmd(command)
        assert c.cmd("spam\r\n.") == [b"554-5.7.1 spam", b"554 5.7.1 go away"]


def cram_md5(challenge_line: bytes, user: str, password: str) -> str:
    challenge = base64.b64decode(challenge_line[4:])
    digest = hmac.new(password.encode(), challenge, "md5").hexdigest()
    return base64.b64encode(f"{user} {digest}".encode()).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def login_plain_initial(c: RawClient, user: str, pw: str) -> list[bytes]:
    return c.cmd("AUTH PLAIN " + b64(f"\0{user}\0{pw}".encode()))


def login_plain_challenge(c: RawClient, user: str, pw: str) -> list[bytes]:
    assert c.cmd("AUTH PLAIN") == [b"334 "]
    return c.cmd(b64(f"{user}\0{user}\0{pw}".encode()))


def login_login(c: RawClient, user: str, pw: str) -> list[bytes]:
    assert c.cmd("AUTH LOGIN") == [b"334 " + base64.b64encode(b"Username:")]
    assert c.cmd(b64(user.encode())) == [b"334 " + base64.b64encode(b"Password:")]
    return c.cmd(b64(pw.encode()))


def login_cram_md5(c: RawClient, user: str, pw: str) -> list[bytes]:
    [challenge] = c.cmd("AUTH CRAM-MD5")
    assert challenge.startswith(b"334 ")
    assert base64.b64decode(challenge[4:]).endswith(b"@test.local>")
    return c.cmd(cram_md5(challenge, user, pw))


LOGINS = [login_plain_initial, login_plain_challenge, login_login, login_cram_md5]


@pytest.mark.parametrize("login", LOGINS, ids=lambda f: f.__name__)
def test_auth_mechanisms(login: Callable[[RawClient, str, str], list[bytes]]) -> None:
    behaviour = StandardESMTP(auth={"alice": "s3cret"})
    with ScriptedServer(behaviour) as server:
        with RawClient.connect(server) as c:
            assert b"AUTH PLAIN LOGIN CRAM-MD5" in greet(c)
            assert login(c, "alice", "wrong") == [b"535 5.7.8 Authentication credentials invalid"]
            assert login(c, "mallory", "s3cret")[0].startswith(b"535")
            assert login(c, "alice", "s3cret") == [b"235 2.7.0 Authentication successful"]
            assert c.code("AUTH PLAIN") == 503  # already authenticated
        server.wait_sessions_done()
    assert behaviour.authenticated == ["alice"]


def test_auth_cancel_bad_base64_and_unknown_mechanism() -> None:
    with ScriptedServer(StandardESMTP(auth={"u": "p"})) as server, RawClient.connect(server) as c:
        greet(c)
        assert c.cmd("AUTH LOGIN")[0].startswith(b"334")
        assert c.cmd("*") == [b"501 5.7.0 Authentication cancelled"]
        assert c.code("AUTH PLAIN not!base64") == 501
        assert c.code("AUTH PLAIN =") == 501  # empty response is not user\0user\0password
        assert c.code("AUTH CRAM-MD5 abc") == 501
        assert c.code("AUTH GSSAPI") == 504
        assert c.code("AUTH PLAIN " + b64(b"\0u\0p")) == 235


def test_starttls_then_transaction(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    behaviour = StandardESMTP(tls_context=server_ctx, auth={"u": "p"})
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        assert greet(c) == [
            b"PIPELINING",
            b"8BITMIME",
            b"SIZE 1000000",
            b"AUTH PLAIN LOGIN CRAM-MD5",
            b"STARTTLS",
        ]
        assert c.code("MAIL FROM:<a@x>") == 250  # discarded by STARTTLS
        assert c.cmd("STARTTLS") == [b"220 2.0.0 Ready to start TLS"]
        c.starttls(client_ctx)
        assert c.code("MAIL FROM:<a@x>") == 503  # must say hello again after TLS
        ehlo = c.cmd("EHLO client.example")
        assert not any(b"STARTTLS" in line for line in ehlo)
        assert c.code("STARTTLS") == 503
        assert c.code("AUTH PLAIN " + b64(b"\0u\0p")) == 235
        for command in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"):
            c.cmd(command)
        assert c.code("secret\r\n.") == 250
        assert c.code("QUIT") == 221
        assert c.line() == b""  # clean TLS close: close_notify, not a ragged EOF
        server.wait_sessions_done()
    [session] = server.sessions
    assert session.tls
    assert b"secret\r\n.\r\n" in session.received  # transcripts hold the decrypted bytes
    assert behaviour.envelopes[0].data == b"secret\r\n"


def test_plaintext_pipelined_after_starttls_fails_the_test(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, _ = tls
    with (
        pytest.raises(AssertionError, match="after the STARTTLS command"),
        ScriptedServer(StandardESMTP(tls_context=server_ctx)) as server,
        RawClient.connect(server) as c,
    ):
        greet(c)
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
        assert c.reply() == [b"220 2.0.0 Ready to start TLS"]
        assert c.line() == b""
        server.wait_sessions_done()


def test_failed_client_handshake_is_recorded_not_an_error(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, _ = tls
    behaviour = StandardESMTP(tls_context=server_ctx)
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        greet(c)
        assert c.code("STARTTLS") == 220
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls(ssl.create_default_context())  # does not trust the test CA
        server.wait_sessions_done()
    assert len(behaviour.tls_errors) == 1


# -- fault injection ---------------------------------------------------------------------


def drive_to(step: str, c: RawClient) -> None:
    """Run a normal session up to the point where `step`'s fault fires."""
    if step == "greeting":
        return
    assert c.reply()[0].startswith(b"220")
    if step == "ehlo":
        c.send(b"EHLO client.example\r\n")
        return
    assert c.cmd("EHLO client.example")[-1].startswith(b"250")
    last = {
        "quit": b"QUIT",
        "auth": b"AUTH PLAIN " + base64.b64encode(b"\0u\0p"),
        "starttls": b"STARTTLS",
        "mail": b"MAIL FROM:<a@x>",
    }
    if step in last:
        c.send(last[step] + b"\r\n")
        return
    assert c.code("MAIL FROM:<a@x>") == 250
    if step == "rcpt":
        c.send(b"RCPT TO:<b@x>\r\n")
        return
    assert c.code("RCPT TO:<b@x>") == 250
    if step == "data":
        c.send(b"DATA\r\n")
        return
    assert c.code("DATA") == 354
    if step == "after-data":
        c.send(b"body\r\n.\r\n")


ALL_STEPS = sorted(FAULT_STEPS)


def faulty(step: str, action: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> StandardESMTP:
    return StandardESMTP(auth={"u": "p"}, tls_context=tls[0], fail_at={step: action})


@pytest.mark.parametrize("step", ALL_STEPS)
def test_fault_fin(step: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    behaviour = faulty(step, "fin", tls)
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        drive_to(step, c)
        assert c.sock.recv(100) == b""
    assert len(behaviour.envelopes) == (1 if step == "after-data" else 0)


@pytest.mark.parametrize("step", ALL_STEPS)
def test_fault_rst(step: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    behaviour = faulty(step, "rst", tls)
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        drive_to(step, c)
        with pytest.raises(ConnectionResetError):
            c.sock.recv(100)
    assert len(behaviour.envelopes) == (1 if step == "after-data" else 0)


@pytest.mark.parametrize("step", ALL_STEPS)
def test_fault_421(step: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    behaviour = faulty(step, "421", tls)
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        drive_to(step, c)
        assert c.line().startswith(b"421 4.3.2 test.local")
        assert c.line() == b""
    sent = bytes(server.sessions[0].sent)
    assert sent.count(b"421 ") == 1
    assert sent.endswith(b"closing\r\n")  # nothing follows the 421


@pytest.mark.parametrize("step", ["greeting", "rcpt", "body", "after-data"])
def test_fault_stall(step: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    with ScriptedServer(faulty(step, "stall", tls)) as server:
        c = RawClient.connect(server)  # stays open across the server's exit
        drive_to(step, c)
        c.sock.settimeout(0.2)  # the only short timeout: silence is the expected outcome
        with pytest.raises(TimeoutError):
            c.sock.recv(100)
    # Leaving the context released the stall and closed the connection cleanly.
    with c:
        c.sock.settimeout(CLIENT_TIMEOUT)
        assert c.sock.recv(100) == b""
    assert server.sessions[0].closed


@pytest.mark.parametrize(("step", "recorded"), [("body", 0), ("after-data", 1)])
def test_fault_with_bdat(step: str, recorded: int) -> None:
    behaviour = StandardESMTP(chunking=True, fail_at={step: "421"})
    with ScriptedServer(behaviour) as server, RawClient.connect(server) as c:
        greet(c)
        assert c.code("MAIL FROM:<a@x>") == 250
        assert c.code("RCPT TO:<b@x>") == 250
        c.send(b"BDAT 3 LAST\r\nabc")
        assert c.line().startswith(b"421")
        assert c.line() == b""
    assert len(behaviour.envelopes) == recorded


def test_unknown_fault_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="step"):
        StandardESMTP(fail_at={"helo": "fin"})
    with pytest.raises(ValueError, match="action"):
        StandardESMTP(fail_at={"rcpt": "explode"})


# -- scripted sessions -------------------------------------------------------------------


def test_scripted_session_primitives() -> None:
    seen: dict[str, bytes] = {}

    def handler(s: Session) -> None:
        s.reply("220-hello", "220 there")
        seen["ehlo"] = s.expect("ehlo")  # case-insensitive
        s.send(b"250 raw\r\n")
        s.expect("DATA")
        s.reply("354 go")
        seen["data"] = s.read_until(b"\r\n.\r\n")
        seen["bdat"] = s.read_exact(4)
        seen["line"] = s.read_line()
        seen["rest"] = s.read_until_eof()

    with ScriptedServer(handler) as server, RawClient.connect(server) as c:
        assert c.reply() == [b"220-hello", b"220 there"]
        assert c.cmd("EHLO x") == [b"250 raw"]
        assert c.cmd("DATA") == [b"354 go"]
        c.send(b"a\r\n..b\r\n.\r\n\x00\r\n\nxline\r\ntrailing")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.line() == b""  # the handler returned, so the server closed
        server.wait_sessions_done()
    assert seen == {
        "ehlo": b"EHLO x\r\n",
        "data": b"a\r\n..b\r\n.\r\n",
        "bdat": b"\x00\r\n\n",
        "line": b"xline\r\n",
        "rest": b"trailing",
    }
    session = server.sessions[0]
    assert bytes(session.sent) == b"220-hello\r\n220 there\r\n250 raw\r\n354 go\r\n"
    assert bytes(session.received).endswith(b"xline\r\ntrailing")


def test_reply_rejects_embedded_newlines() -> None:
    def handler(s: Session) -> None:
        s.reply("250 a\r\n250 b")

    with (
        pytest.raises(AssertionError, match="must not contain CR or LF"),
        ScriptedServer(handler) as server,
        RawClient.connect(server) as c,
    ):
        assert c.line() == b""


def test_reset_and_close_seen_by_the_client() -> None:
    def handler(s: Session) -> None:
        s.reply("220 hi")
        if s.expect("QUIT ") == b"QUIT rst\r\n":
            s.reset()
        else:
            s.close()

    with ScriptedServer(handler) as server:
        with RawClient.connect(server) as c:
            c.reply()
            c.send(b"QUIT rst\r\n")
            with pytest.raises(ConnectionResetError):
                c.sock.recv(100)
        with RawClient.connect(server) as c:
            c.reply()
            c.send(b"QUIT fin\r\n")
            assert c.sock.recv(100) == b""


def test_sessions_in_accept_order_and_wait_sessions_done() -> None:
    behaviour = StandardESMTP()
    with ScriptedServer(behaviour) as server:
        clients = [RawClient.connect(server) for _ in range(3)]
        for i, c in enumerate(clients):
            c.reply()
            c.cmd(f"EHLO client{i}")
        for c in reversed(clients):
            assert c.code("QUIT") == 221
            c.sock.close()
        server.wait_sessions_done()
        assert [s.closed for s in server.sessions] == [True, True, True]
    assert [bytes(s.received).split(b"\r\n")[0] for s in server.sessions] == [
        b"EHLO client0",
        b"EHLO client1",
        b"EHLO client2",
    ]


def test_wait_sessions_done_sees_a_connection_not_yet_answered() -> None:
    handled: list[bytes] = []

    def handler(s: Session) -> None:
        handled.append(s.read_until_eof())

    with ScriptedServer(handler) as server:
        with socket.create_connection((server.host, server.port), CLIENT_TIMEOUT) as sock:
            sock.sendall(b"hello")
        server.wait_sessions_done()
        assert handled == [b"hello"]


# -- error reporting and shutdown --------------------------------------------------------


def test_failed_expect_fails_the_test_at_exit() -> None:
    def handler(s: Session) -> None:
        s.reply("220 hi")
        s.expect("HELO")

    with (
        pytest.raises(AssertionError, match="expected a line starting with 'HELO'") as info,
        ScriptedServer(handler) as server,
        RawClient.connect(server) as c,
    ):
        c.reply()
        c.send(b"EHLO nope\r\n")
        assert c.line() == b""  # the failing handler's connection is closed
    assert "EHLO nope" in str(info.value)
    assert isinstance(info.value.__cause__, AssertionError)
    assert server.errors == [info.value.__cause__]


def test_any_handler_exception_becomes_an_assertion_error() -> None:
    def handler(s: Session) -> None:
        raise ValueError("boom")

    with (
        pytest.raises(AssertionError, match="ValueError: boom"),
        ScriptedServer(handler) as server,
        RawClient.connect(server) as c,
    ):
        assert c.line() == b""


def test_test_body_exception_wins_over_handler_errors() -> None:
    def handler(s: Session) -> None:
        raise ValueError("handler")

    with (
        pytest.raises(KeyError),
        ScriptedServer(handler) as server,
        RawClient.connect(server) as c,
    ):
        assert c.line() == b""
        server.wait_sessions_done()
        raise KeyError("body")
    assert [type(e) for e in server.errors] == [ValueError]


def test_reads_time_out_instead_of_hanging() -> None:
    def handler(s: Session) -> None:
        s.read_line()

    with (
        pytest.raises(AssertionError, match="TimeoutError: session #0: no data"),
        ScriptedServer(handler, timeout=0.2) as server,
        RawClient.connect(server),
    ):
        server.wait_sessions_done()


def test_exit_releases_a_handler_waiting_for_input() -> None:
    def handler(s: Session) -> None:
        s.reply("220 hi")
        s.expect("NEVER SENT")

    with ScriptedServer(handler) as server:
        c = RawClient.connect(server)  # stays open across the server's exit
        assert c.reply() == [b"220 hi"]
    with c:
        assert c.line() == b""  # the server closed the connection on its way out
    assert server.errors == []
    assert server.sessions[0].closed


def test_input_sent_before_exit_is_still_processed() -> None:
    """Client data already received wins over the stop signal, so the mismatch is reported."""

    def handler(s: Session) -> None:
        s.reply("220 hi")
        s.expect("QUIT")

    with pytest.raises(AssertionError, match="got b'NOPE"), ScriptedServer(handler) as server:
        c = RawClient.connect(server)  # stays open across the server's exit
        assert c.reply() == [b"220 hi"]
        c.send(b"NOPE\r\n")
    c.sock.close()


def test_binds_loopback_only_and_frees_the_port() -> None:
    with ScriptedServer(StandardESMTP()) as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        port = server.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), CLIENT_TIMEOUT)


def test_unix_socket_mode(tmp_path: Path) -> None:
    path = str(tmp_path / "smtp.sock")
    behaviour = StandardESMTP()
    with ScriptedServer(behaviour, unix_path=path) as server:
        assert server.unix_path == path
        assert Path(path).is_socket()
        with RawClient.connect(server) as c:
            greet(c)
            for command in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"):
                c.cmd(command)
            assert c.code("over unix\r\n.") == 250
            assert c.code("QUIT") == 221
    assert not Path(path).exists()
    assert behaviour.envelopes[0].data == b"over unix\r\n"


def test_server_can_only_start_once() -> None:
    server = ScriptedServer(StandardESMTP())
    with server:
        pass
    with pytest.raises(RuntimeError, match="once"):
        server.__enter__()
