"""Drop-in behaviour: code written against ``smtplib`` names works unchanged with the adapter.

Exceptions are caught by their ``smtplib`` names and carry the same attributes, subclasses of
``SMTP`` work, ``authobject`` callables go through ``auth()``, and the module-level constants
and helpers have the stdlib's values.
"""

from __future__ import annotations

import smtplib as stdlib_smtplib
from collections.abc import Callable

import pytest
from smtp_proto.transports import sync as smtplib

from tests.scripted_server import ScriptedServer, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.postfix import PostfixServer

Delivered = Callable[..., list[bytes]]
LOCAL_NAME = "client.example.test"

#: smtplib's exception classes, by name.
EXCEPTION_NAMES = [
    name
    for name, value in vars(stdlib_smtplib).items()
    if isinstance(value, type) and issubclass(value, stdlib_smtplib.SMTPException)
]


def connect(server: PostfixServer | AiosmtpdServer, port: int | None = None) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, port or server.port, local_hostname=LOCAL_NAME, timeout=10)


# ---------------------------------------------------------------- exceptions by smtplib names


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_exception_hierarchy_matches_stdlib(name: str) -> None:
    ours = getattr(smtplib, name)
    theirs = getattr(stdlib_smtplib, name)
    assert issubclass(ours, theirs)  # what code catching the stdlib's class catches
    assert issubclass(ours, smtplib.SMTPException)
    assert issubclass(ours, OSError)
    ours_bases = [c.__name__ for c in ours.__mro__ if c.__name__ in EXCEPTION_NAMES]
    theirs_bases = [c.__name__ for c in theirs.__mro__ if c.__name__ in EXCEPTION_NAMES]
    assert list(dict.fromkeys(ours_bases)) == theirs_bases


def test_recipients_refused_by_name(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        try:
            smtp.sendmail(
                "sender@example.test",
                ["reject-one@example.test", "tempfail-two@example.test"],
                b"Subject: nobody gets this\r\n\r\nbody\r\n",
            )
        except smtplib.SMTPRecipientsRefused as exc:
            caught = exc
        assert smtp.noop() == (250, b"2.0.0 Ok")  # the connection is still usable
    assert isinstance(caught, OSError)
    assert caught.args == (caught.recipients,)
    assert set(caught.recipients) == {"reject-one@example.test", "tempfail-two@example.test"}
    code, text = caught.recipients["reject-one@example.test"]
    assert code == 550 and text.startswith(b"5.1.1 <reject-one@example.test>")
    code, text = caught.recipients["tempfail-two@example.test"]
    assert code == 451 and text.startswith(b"4.3.0 <tempfail-two@example.test>")


def test_sender_refused_by_name(postfix: PostfixServer) -> None:
    """A message declared over Postfix's size limit is refused at MAIL: SMTPSenderRefused.

    (A message known to be too big is refused before MAIL, locally, with the same exception
    class; streaming it with a declared SIZE= lets the server do the refusing.)
    """
    body = iter([b"Subject: too big\r\n\r\nx\r\n"])
    with connect(postfix) as smtp:
        try:
            smtp.sendmail(
                "big-sender@example.test", ["someone@example.test"], body, ["SIZE=20000000"]
            )
        except smtplib.SMTPSenderRefused as exc:
            caught = exc
        assert smtp.noop() == (250, b"2.0.0 Ok")
    assert isinstance(caught, smtplib.SMTPResponseException)
    assert caught.smtp_code == 552
    assert caught.smtp_error == b"5.3.4 Message size exceeds fixed limit"
    assert caught.sender == "big-sender@example.test"
    assert caught.args == (
        552,
        b"5.3.4 Message size exceeds fixed limit",
        "big-sender@example.test",
    )


def test_data_error_by_name(postfix: PostfixServer, aiosmtpd_server: AiosmtpdServer) -> None:
    with connect(postfix) as smtp:
        smtp.ehlo()
        assert smtp.mail("sender@example.test")[0] == 250
        try:
            smtp.data(b"Subject: no recipients\r\n\r\nbody\r\n")
        except smtplib.SMTPDataError as exc:
            caught = exc
        assert smtp.rset() == (250, b"2.0.0 Ok")
    assert caught.smtp_code == 554
    assert caught.smtp_error == b"5.5.1 Error: no valid recipients"

    aiosmtpd_server.handler.data_reply = "554 5.6.0 Content refused (test)"
    with connect(aiosmtpd_server) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.sendmail("a@example.test", "b@example.test", b"Subject: x\r\n\r\nrefused\r\n")
        assert info.value.args == (554, b"5.6.0 Content refused (test)")
        assert smtp.noop()[0] == 250
    assert aiosmtpd_server.messages() == []


def test_authentication_error_by_name(postfix: PostfixServer) -> None:
    with connect(postfix) as smtp:
        try:
            smtp.login("testuser", "wrong password")
        except smtplib.SMTPAuthenticationError as exc:
            caught = exc
        assert smtp.login("testuser", "testpass")[0] == 235  # nothing stuck after the failure
    assert caught.smtp_code == 535
    assert caught.smtp_error.startswith(b"5.7.8 Error: authentication failed")


def test_not_supported_error_by_name() -> None:
    srv = StandardESMTP(features=["8BITMIME"])  # neither AUTH nor STARTTLS nor SMTPUTF8
    with ScriptedServer(srv) as server:
        smtp = smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME)
        with pytest.raises(smtplib.SMTPNotSupportedError, match="AUTH extension not supported"):
            smtp.login("testuser", "testpass")
        with pytest.raises(smtplib.SMTPNotSupportedError, match="STARTTLS extension"):
            smtp.starttls()
        with pytest.raises(smtplib.SMTPNotSupportedError, match="SMTPUTF8"):
            smtp.mail("sender@example.test", ["SMTPUTF8"])
        assert smtp.quit()[0] == 221
    assert srv.commands == [b"ehlo " + LOCAL_NAME.encode(), b"quit"]


def test_server_disconnected_by_name(postfix: PostfixServer) -> None:
    smtp = smtplib.SMTP()
    try:
        smtp.noop()
    except smtplib.SMTPServerDisconnected as exc:
        assert str(exc) == "please run connect() first"
    else:
        pytest.fail("noop() without a connection must raise SMTPServerDisconnected")
    smtp = connect(postfix)
    smtp.quit()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@example.test", "b@example.test", b"x\r\n")


def test_connect_error_for_554_greeting() -> None:
    srv = StandardESMTP(greeting="554 5.3.2 test.local No service for you")
    with ScriptedServer(srv) as server:
        try:
            smtplib.SMTP(server.host, server.port, local_hostname=LOCAL_NAME)
        except smtplib.SMTPConnectError as exc:
            caught = exc
        server.wait_sessions_done()
    assert isinstance(caught, smtplib.SMTPResponseException)
    assert caught.smtp_code == 554
    assert caught.smtp_error == b"5.3.2 test.local No service for you"
    assert srv.commands == []  # nothing was sent after the refusal
    assert server.sessions[0].closed


# ---------------------------------------------------------------- subclasses and authobjects


class AuditedSMTP(smtplib.SMTP):
    """What applications do: extra constructor arguments, extra state, wrapped methods."""

    def __init__(self, *args: object, tenant: str, **kwargs: object) -> None:
        self.tenant = tenant
        self.audit: list[str] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        self.audit.append(cmd)
        return super().docmd(cmd, args)

    def sendmail(self, from_addr: str, to_addrs: str, msg: str) -> dict[str, tuple[int, bytes]]:
        self.audit.append("sendmail")
        return super().sendmail(from_addr, to_addrs, msg)


def test_subclass_with_overrides_and_attributes(
    aiosmtpd_server: AiosmtpdServer, token: str
) -> None:
    smtp = AuditedSMTP(
        aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME, tenant="acme"
    )
    assert isinstance(smtp, smtplib.SMTP)
    assert smtp.docmd("NOOP") == (250, b"OK")
    smtp.helo_resp = None  # plain attributes of the object stay settable
    smtp.ehlo()
    refused = smtp.sendmail("acme@example.test", "x@example.test", f"Subject: {token}\n\nhi\n")
    assert refused == {}
    smtp.quit()
    assert smtp.tenant == "acme"
    assert smtp.audit == ["NOOP", "sendmail", "quit"]  # quit() goes through docmd(), as in smtplib
    (record,) = aiosmtpd_server.messages()
    assert record.content == f"Subject: {token}\r\n\r\nhi\r\n".encode()


def test_auth_with_stdlib_style_authobjects(aiosmtpd_server: AiosmtpdServer) -> None:
    """``smtp.auth("PLAIN", smtp.auth_plain)`` after setting user and password, as with smtplib."""
    smtp = connect(aiosmtpd_server)
    smtp.ehlo()
    smtp.user, smtp.password = "testuser", "testpass"
    assert smtp.auth("PLAIN", smtp.auth_plain) == (235, b"2.7.0 Authentication successful")
    smtp.sendmail("a@example.test", "b@example.test", b"Subject: auth\r\n\r\nplain\r\n")
    smtp.quit()
    assert aiosmtpd_server.messages()[0].auth_user == "testuser"


def test_auth_with_custom_callable(postfix: PostfixServer) -> None:
    """A hand-written authobject gets ``None`` first (initial response), then each challenge."""
    seen: list[bytes | None] = []

    def login_object(challenge: bytes | None = None) -> str:
        seen.append(challenge)
        if challenge in (None, b"Username:"):
            return "testuser"
        return "testpass"

    with connect(postfix) as smtp:
        smtp.ehlo()
        assert smtp.auth("login", login_object) == (235, b"2.7.0 Authentication successful")
    assert seen == [None, b"Password:"]

    seen.clear()
    with connect(postfix) as smtp:
        smtp.ehlo()
        code, _ = smtp.auth("LOGIN", login_object, initial_response_ok=False)
    assert code == 235
    assert seen == [b"Username:", b"Password:"]

    def plain_bytes(challenge: bytes | None = None) -> bytes:
        return b"\0testuser\0testpass"  # bytes are sent as they are

    with connect(postfix) as smtp:
        smtp.ehlo()
        assert smtp.auth("PLAIN", plain_bytes)[0] == 235


def test_auth_cram_md5_authobject(postfix: PostfixServer) -> None:
    """``smtp.auth("CRAM-MD5", smtp.auth_cram_md5)``: smtplib's own CRAM-MD5 authobject.

    ``auth_cram_md5()`` returns None when called without a challenge, which ``smtplib.auth``
    takes as "no initial response" and sends ``AUTH CRAM-MD5`` alone.
    """
    with connect(postfix) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = "testuser", "testpass"
        assert smtp.auth("CRAM-MD5", smtp.auth_cram_md5) == (
            235,
            b"2.7.0 Authentication successful",
        )


def test_stdlib_authobjects_give_stdlib_answers() -> None:
    """The authobject methods compute what smtplib's do for the same user and password."""
    ours = smtplib.SMTP()
    theirs = stdlib_smtplib.SMTP()
    for obj in (ours, theirs):
        obj.user, obj.password = "testuser", "testpass"
    challenge = b"<1896.697170952@postoffice.example.net>"
    assert ours.auth_cram_md5(challenge) == theirs.auth_cram_md5(challenge)
    assert ours.auth_plain() == theirs.auth_plain() == "\0testuser\0testpass"
    assert ours.auth_login() == theirs.auth_login() == "testuser"


# ---------------------------------------------------------------- module constants and helpers


@pytest.mark.parametrize("name", ["SMTP_PORT", "SMTP_SSL_PORT", "LMTP_PORT", "CRLF", "bCRLF"])
def test_constants(name: str) -> None:
    assert getattr(smtplib, name) == getattr(stdlib_smtplib, name)
    assert type(getattr(smtplib, name)) is type(getattr(stdlib_smtplib, name))


@pytest.mark.parametrize(
    "address",
    [
        "user@example.com",
        "Full Name <user@example.com>",
        '"Quoted, Name" <q@example.com>',
        "<already@quoted.example>",
        "<>",
        "",
        "no-at-sign",
        "(comment) c@example.com",
        "  padded@example.com  ",
        "üser@exämple.de",
    ],
)
def test_quoteaddr(address: str) -> None:
    assert smtplib.quoteaddr(address) == stdlib_smtplib.quoteaddr(address)


@pytest.mark.parametrize(
    "text", ["a\n.b\r\nc", ".first\r.second\n\n.", "", "\r\n.\r\n", "..x", "no dots"]
)
def test_quotedata(text: str) -> None:
    assert smtplib.quotedata(text) == stdlib_smtplib.quotedata(text)


def test_module_surface() -> None:
    for name in ["SMTP", "SMTP_SSL", "LMTP", *EXCEPTION_NAMES]:
        assert hasattr(smtplib, name), name
    assert issubclass(smtplib.SMTP_SSL, smtplib.SMTP)
    assert issubclass(smtplib.LMTP, smtplib.SMTP)
    assert smtplib.SMTP.default_port == 25
    assert smtplib.SMTP_SSL.default_port == 465
