"""The adapters' public methods call each other as ``smtplib``'s do, so subclasses and mocks work.

``smtplib`` code customises a connection by overriding or mocking the methods the others call:
``send`` sees every write, ``sendmail`` goes through ``mail``/``rcpt``/``data``/``rset``,
``login`` through ``auth`` and the ``auth_*`` authobjects, ``connect`` through ``_get_socket``,
``send_message`` through ``sendmail``, ``quit`` through ``docmd`` and ``close``.

Most tests here record the calls a subclass sees (``RecordingMixin``: each method appends its
name and arguments, then calls the real one), run the same scenario with the standard
library's ``smtplib.SMTP`` subclassed by the same mixin, against the same real server on
127.0.0.1, and require the two recordings to be equal: the stdlib is the oracle.  The async
adapters are held to the same recording with coroutine overrides.  Last, with nothing
replaced, ``sendmail`` still pipelines.
"""

from __future__ import annotations

import base64
import difflib
import inspect
import smtplib as stdlib_smtplib
import socket
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from typing import Any
from unittest import mock

import pytest
from smtp_proto.transports import sync as smtplib

from tests.adapters import LOCAL_NAME, TIMEOUT, Adapter, all_adapters, async_adapters
from tests.offline import MAIL_FROM, RCPT_TO
from tests.scripted_server import ScriptedServer, Session, StandardESMTP
from tests.servers.aiosmtpd_server import AiosmtpdServer
from tests.servers.certs import LocalCA
from tests.servers.postfix import PostfixServer

#: One recorded call: the method's name, then its arguments as the caller passed them.
Entry = tuple[Any, ...]

MESSAGE = b"Subject: call graph\r\n\r\nfirst line\r\n.a line starting with a dot\r\n"
STUFFED = b"Subject: call graph\r\n\r\nfirst line\r\n..a line starting with a dot\r\n.\r\n"
SENDER = "sender@example.test"
RECIPIENTS = ["one@example.test", "two@example.test"]


# ---------------------------------------------------------------- recording subclasses

#: The methods a recording class overrides: every public method ``smtplib``'s call each other
#: through, the entry points, and ``close`` / ``_get_socket``.
SYNC_RECORDED = (
    "_get_socket",
    "connect",
    "data",
    "docmd",
    "ehlo",
    "ehlo_or_helo_if_needed",
    "expn",
    "getreply",
    "helo",
    "help",
    "login",
    "mail",
    "noop",
    "putcmd",
    "quit",
    "rcpt",
    "rset",
    "send",
    "send_message",
    "sendmail",
    "starttls",
    "verify",
    "auth",
)
#: The async adapters' coroutines recorded (``connect`` and ``_get_socket`` have tests of their
#: own: a replaced ``_get_socket`` changes how an async adapter connects).
ASYNC_RECORDED = tuple(name for name in SYNC_RECORDED if name not in ("_get_socket", "connect"))


class Recorder:
    """What the recording classes share: the record, and the plain (non-I/O) methods."""

    calls: list[Entry]
    #: Text that differs from one session to the next (a CRAM-MD5 response), and what to
    #: write down instead.
    placeholders: dict[str, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls, self.placeholders = [], {}  # first: smtplib's __init__ connects
        super().__init__(*args, **kwargs)

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        entry: Entry = (name, *(self._written(arg) for arg in args))
        if kwargs:
            entry += ({key: self._written(value) for key, value in kwargs.items()},)
        self.calls.append(entry)

    def _written(self, value: Any) -> Any:
        """An authobject by its name (a bound method is a new object each time), text with
        the session-specific parts replaced."""
        if callable(value) and hasattr(value, "__name__"):
            return f"<{value.__name__}>"
        if isinstance(value, str):
            for secret, placeholder in self.placeholders.items():
                value = value.replace(secret, placeholder)
        return value

    def has_extn(self, opt: str) -> bool:
        self._record("has_extn", opt)
        return super().has_extn(opt)  # type: ignore[misc,no-any-return]

    def close(self) -> None:
        self._record("close")
        super().close()  # type: ignore[misc]

    def auth_plain(self, *args: Any) -> Any:
        self._record("auth_plain", *args)
        return super().auth_plain(*args)  # type: ignore[misc]

    def auth_login(self, *args: Any) -> Any:
        self._record("auth_login", *args)
        return super().auth_login(*args)  # type: ignore[misc]

    def auth_cram_md5(self, *args: Any) -> Any:
        """Recorded with ``<challenge>`` for the server's nonce (new in every session); the
        response it computes is written down as ``<cram-md5 response>`` where it is sent."""
        self._record("auth_cram_md5", *("<challenge>" for _ in args))
        response = super().auth_cram_md5(*args)  # type: ignore[misc]
        if response is not None:
            encoded = base64.b64encode(response.encode("ascii")).decode("ascii")
            self.placeholders[encoded] = "<cram-md5 response>"
        return response


def add_recording(cls: type[Any], name: str, *, coroutine: bool) -> None:
    """Give ``cls`` a ``name`` method that records its call, then calls the one it overrides
    (awaiting it when ``coroutine``, as an async adapter's override does)."""
    if coroutine:

        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._record(name, *args, **kwargs)
            return await getattr(super(cls, self), name)(*args, **kwargs)

    else:

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._record(name, *args, **kwargs)
            return getattr(super(cls, self), name)(*args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"{cls.__name__}.{name}"
    setattr(cls, name, method)


def recording_class(base: type[Any], methods: Sequence[str]) -> type[Any]:
    """A subclass of ``base`` recording ``methods`` (and ``Recorder``'s plain methods)."""
    cls = type(f"Recording{base.__name__}", (Recorder, base), {})
    coroutine = inspect.iscoroutinefunction(base.send)
    for name in methods:
        add_recording(cls, name, coroutine=coroutine)
    return cls


class RecordingMixin(Recorder):
    """Mixed into ``smtplib.SMTP`` and into the blocking adapter's ``SMTP`` alike."""


class AsyncRecordingMixin(Recorder):
    """The same for the asyncio and trio adapters: every I/O method a coroutine override."""


for _name in SYNC_RECORDED:
    add_recording(RecordingMixin, _name, coroutine=False)
for _name in ASYNC_RECORDED:
    add_recording(AsyncRecordingMixin, _name, coroutine=True)


class RecordingSMTP(RecordingMixin, smtplib.SMTP):
    pass


class StdlibRecordingSMTP(RecordingMixin, stdlib_smtplib.SMTP):
    pass


def async_recording_class(adapter: Adapter) -> type[Any]:
    return type("RecordingSMTP", (AsyncRecordingMixin, adapter.module.SMTP), {})


def assert_same_calls(ours: Sequence[Any], theirs: Sequence[Any]) -> None:
    """``ours == theirs``, failing with a diff of the recordings (smtplib's is the expectation)."""
    if ours != theirs:
        diff = difflib.unified_diff(
            [repr(entry) for entry in theirs],
            [repr(entry) for entry in ours],
            "smtplib",
            "smtp_proto",
            lineterm="",
            n=2,
        )
        pytest.fail("the calls differ from smtplib's:\n" + "\n".join(diff), pytrace=False)


def names(calls: list[Entry]) -> list[str]:
    return [entry[0] for entry in calls]


def outcome(action: Callable[[], Any]) -> Any:
    """What ``action()`` returned, or the name and arguments of what it raised (our
    exceptions subclass smtplib's, under the same names)."""
    try:
        return action()
    except stdlib_smtplib.SMTPException as exc:
        return (type(exc).__name__, exc.args)


def record(
    cls: type[Any], host: str, port: int, scenario: Callable[[Any], Any]
) -> tuple[list[Entry], Any]:
    """Connect an instance of ``cls``, forget the connecting calls, run ``scenario(smtp)``;
    the calls it recorded and the scenario's outcome."""
    smtp = cls(host, port, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
    smtp.calls.clear()
    result = outcome(lambda: scenario(smtp))
    return smtp.calls, result


def both(host: str, port: int, scenario: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``record`` with smtplib, then with the adapter: (theirs, ours)."""
    theirs = record(StdlibRecordingSMTP, host, port, scenario)
    ours = record(RecordingSMTP, host, port, scenario)
    return theirs, ours


def quit_after(scenario: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(smtp: Any) -> Any:
        result = outcome(lambda: scenario(smtp))
        return result, smtp.quit()

    return run


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedServer, StandardESMTP]]:
    """A ``StandardESMTP`` (PIPELINING, 8BITMIME, SIZE) refusing ``reject*`` recipients."""

    def reject(address: str) -> tuple[int, str] | None:
        if address.startswith("reject"):
            return 550, f"5.1.1 <{address}>: Recipient rejected"
        return None

    handler = StandardESMTP(reject=reject)
    with ScriptedServer(handler, nodelay=True) as server:
        yield server, handler


# ---------------------------------------------------------------- sendmail


#: How smtplib's MAIL and RCPT arguments start: ``FROM:`` and ``TO:`` before Python 3.13.
FROM, TO = (keyword.decode().split(" ")[1] for keyword in (MAIL_FROM, RCPT_TO))

#: What a subclass of ``smtplib.SMTP`` sees for ``sendmail(SENDER, RECIPIENTS, MESSAGE)`` on a
#: fresh connection to an ESMTP server offering SIZE, then ``quit()``.
SENDMAIL_CALLS: list[Entry] = [
    ("sendmail", SENDER, RECIPIENTS, MESSAGE),
    ("ehlo_or_helo_if_needed",),
    ("ehlo",),
    ("putcmd", "ehlo", LOCAL_NAME),
    ("send", f"ehlo {LOCAL_NAME}\r\n"),
    ("getreply",),
    ("has_extn", "size"),
    ("mail", SENDER, [f"size={len(MESSAGE)}"]),
    ("putcmd", "mail", f"{FROM}<{SENDER}> size={len(MESSAGE)}"),
    ("send", f"mail {FROM}<{SENDER}> size={len(MESSAGE)}\r\n"),
    ("getreply",),
    ("rcpt", RECIPIENTS[0], ()),
    ("putcmd", "rcpt", f"{TO}<{RECIPIENTS[0]}>"),
    ("send", f"rcpt {TO}<{RECIPIENTS[0]}>\r\n"),
    ("getreply",),
    ("rcpt", RECIPIENTS[1], ()),
    ("putcmd", "rcpt", f"{TO}<{RECIPIENTS[1]}>"),
    ("send", f"rcpt {TO}<{RECIPIENTS[1]}>\r\n"),
    ("getreply",),
    ("data", MESSAGE),
    ("putcmd", "data"),
    ("send", "data\r\n"),
    ("getreply",),
    ("send", STUFFED),
    ("getreply",),
    ("quit",),
    ("docmd", "quit"),
    ("putcmd", "quit", ""),
    ("send", "quit\r\n"),
    ("getreply",),
    ("close",),
]


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_sendmail_calls_match_smtplib(aiosmtpd_server: AiosmtpdServer, pipelining: bool) -> None:
    """aiosmtpd advertises no PIPELINING itself (the test handler adds it unless told not to):
    either way a subclass sees smtplib's calls, one command at a time, each through ``send``."""
    aiosmtpd_server.handler.advertise_pipelining = pipelining
    scenario = quit_after(lambda smtp: smtp.sendmail(SENDER, RECIPIENTS, MESSAGE))
    (theirs, their_result), (ours, our_result) = both(
        aiosmtpd_server.host, aiosmtpd_server.port, scenario
    )
    assert theirs == SENDMAIL_CALLS  # the oracle is what this test says it is
    assert_same_calls(ours, theirs)
    assert our_result == their_result == ({}, (221, b"Bye"))
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.content == second.content == MESSAGE
    assert first.rcpt_tos == second.rcpt_tos == RECIPIENTS
    assert first.mail_options == second.mail_options == [f"SIZE={len(MESSAGE)}"]


def refusal(address: str) -> tuple[int, bytes]:
    """The scripted server's reply to ``RCPT TO:<reject...>``."""
    return 550, f"5.1.1 <{address}>: Recipient rejected".encode()


#: Scenario -> (what it does, what it returns or raises with smtplib).
SENDMAIL_SCENARIOS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "accepted": (lambda smtp: smtp.sendmail(SENDER, RECIPIENTS, MESSAGE), {}),
    "one refused": (
        lambda smtp: smtp.sendmail(
            SENDER, ["reject-me@example.test", *RECIPIENTS], MESSAGE, ["BODY=8BITMIME"]
        ),
        {"reject-me@example.test": refusal("reject-me@example.test")},
    ),
    "all refused": (
        lambda smtp: smtp.sendmail(
            SENDER, ["reject-a@example.test", "reject-b@example.test"], MESSAGE
        ),
        (
            "SMTPRecipientsRefused",
            (
                {
                    "reject-a@example.test": refusal("reject-a@example.test"),
                    "reject-b@example.test": refusal("reject-b@example.test"),
                },
            ),
        ),
    ),
    # a MAIL left open makes the server refuse the next one: 503 nested MAIL
    "sender refused": (
        lambda smtp: (
            smtp.ehlo(),
            smtp.mail("first@example.test"),
            smtp.sendmail(SENDER, RECIPIENTS, MESSAGE),
        ),
        (
            "SMTPSenderRefused",
            (503, b"5.5.1 Bad sequence of commands: nested MAIL", SENDER),
        ),
    ),
    "str message": (
        lambda smtp: smtp.sendmail(SENDER, RECIPIENTS[0], "Subject: s\n\nbare LF\n"),
        {},
    ),
}


@pytest.mark.parametrize("case", list(SENDMAIL_SCENARIOS))
def test_sendmail_calls_match_smtplib_on_a_pipelining_server(
    scripted: tuple[ScriptedServer, StandardESMTP], case: str
) -> None:
    """Against a server offering PIPELINING, a subclass replacing these methods turns the
    pipelined path off: smtplib's calls, results, exceptions, ``rset`` after a refused
    envelope, and byte for byte the same conversation."""
    server, handler = scripted
    action, expected = SENDMAIL_SCENARIOS[case]
    (theirs, their_result), (ours, our_result) = both(server.host, server.port, quit_after(action))
    assert their_result == (expected, (221, b"2.0.0 Bye"))
    assert (("rset",) in theirs) == (case in ("all refused", "sender refused"))
    assert_same_calls(ours, theirs)
    assert our_result == their_result
    server.wait_sessions_done()
    stdlib_session, our_session = server.sessions
    assert our_session.received == stdlib_session.received
    delivered = len(handler.envelopes) // 2
    assert handler.envelopes[:delivered] == handler.envelopes[delivered:]


def test_data_refused_goes_through_rset_as_in_smtplib() -> None:
    """The message refused after DATA: ``data`` returns the refusal, ``sendmail`` calls
    ``rset`` and raises ``SMTPDataError``."""
    handler = StandardESMTP(data_replies=lambda rcpts: ["554 5.6.0 Content refused"])
    with ScriptedServer(handler) as server:
        scenario = quit_after(lambda smtp: smtp.sendmail(SENDER, RECIPIENTS, MESSAGE))
        (theirs, their_result), (ours, our_result) = both(server.host, server.port, scenario)
    assert our_result == their_result
    assert their_result[0] == ("SMTPDataError", (554, b"5.6.0 Content refused"))
    assert names(theirs)[names(theirs).index("data") :][:7] == [
        "data",
        "putcmd",
        "send",
        "getreply",
        "send",
        "getreply",
        "rset",
    ]
    assert_same_calls(ours, theirs)


def helo_only(session: Session) -> None:
    """An old server: EHLO unknown, HELO accepted, one message, QUIT."""
    session.reply("220 old.test SMTP")
    session.expect("EHLO ")
    session.reply("502 5.5.2 Error: command not recognized")
    session.expect("HELO ")
    session.reply("250 old.test")
    session.expect(f"MAIL FROM:<{SENDER}>\r\n")  # no SIZE= for a server that did not say EHLO
    session.reply("250 2.1.0 OK")
    session.expect(f"RCPT TO:<{RECIPIENTS[0]}>")
    session.reply("250 2.1.5 OK")
    session.expect("DATA")
    session.reply("354 Go ahead")
    assert session.read_until(b"\r\n.\r\n") == STUFFED
    session.reply("250 2.0.0 Queued")
    session.expect("QUIT")
    session.reply("221 2.0.0 Bye")


def test_sendmail_falls_back_to_helo_as_smtplib_does() -> None:
    """``ehlo_or_helo_if_needed`` calls ``ehlo()`` then ``helo()``; without ESMTP, ``sendmail``
    asks ``has_extn`` nothing and passes ``mail`` no options."""
    with ScriptedServer(helo_only) as server:
        scenario = quit_after(lambda smtp: smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE))
        (theirs, their_result), (ours, our_result) = both(server.host, server.port, scenario)
    assert theirs[:10] == [
        ("sendmail", SENDER, RECIPIENTS[0], MESSAGE),
        ("ehlo_or_helo_if_needed",),
        ("ehlo",),
        ("putcmd", "ehlo", LOCAL_NAME),
        ("send", f"ehlo {LOCAL_NAME}\r\n"),
        ("getreply",),
        ("helo",),
        ("putcmd", "helo", LOCAL_NAME),
        ("send", f"helo {LOCAL_NAME}\r\n"),
        ("getreply",),
    ]
    assert theirs[10] == ("mail", SENDER, [])
    assert_same_calls(ours, theirs)
    assert our_result == their_result == ({}, (221, b"2.0.0 Bye"))


#: The methods ``sendmail`` reaches in smtplib: replacing any one of them alone is enough.
SINGLE_HOOKS = ["send", "putcmd", "getreply", "docmd", "mail", "rcpt", "data", "rset"]


@pytest.mark.parametrize("hook", SINGLE_HOOKS)
def test_replacing_one_method_is_honoured(
    scripted: tuple[ScriptedServer, StandardESMTP], hook: str
) -> None:
    """A subclass replacing only ``hook`` sees exactly the calls smtplib makes to it, and the
    conversation is smtplib's byte for byte (a refused recipient, then a refused envelope)."""
    server, _ = scripted

    def scenario(smtp: Any) -> Any:
        return (
            smtp.sendmail(SENDER, ["reject-me@example.test", RECIPIENTS[0]], MESSAGE),
            outcome(lambda: smtp.sendmail(SENDER, ["reject-all@example.test"], MESSAGE)),
            smtp.noop(),
            smtp.quit(),
        )

    results, recordings = [], []
    for base in (stdlib_smtplib.SMTP, smtplib.SMTP):
        calls, result = record(recording_class(base, [hook]), server.host, server.port, scenario)
        results.append(result)
        recordings.append([entry for entry in calls if entry[0] == hook])
    theirs, ours = recordings
    assert theirs  # the stdlib calls it
    assert_same_calls(ours, theirs)
    assert results[1] == results[0]
    assert results[0][0] == {"reject-me@example.test": refusal("reject-me@example.test")}
    server.wait_sessions_done()
    stdlib_session, our_session = server.sessions
    assert our_session.received == stdlib_session.received


# ---------------------------------------------------------------- send_message


def make_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Sender <sender@example.test>"
    message["To"] = "One <one@example.test>, two@example.test"
    message["Cc"] = "cc@example.test"
    message["Bcc"] = "hidden@example.test"
    message["Subject"] = "send_message call graph"
    message.set_content("body\n.dot\n")
    return message


SEND_MESSAGE_ARGUMENTS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "from headers": ((), {}),
    "str recipient": (("other@example.test", "single@example.test"), {}),
    "list options": (
        (),
        {"to_addrs": ["x@example.test"], "mail_options": ["BODY=8BITMIME"], "rcpt_options": []},
    ),
}


@pytest.mark.parametrize("case", list(SEND_MESSAGE_ARGUMENTS))
def test_send_message_calls_match_smtplib(aiosmtpd_server: AiosmtpdServer, case: str) -> None:
    """``send_message`` calls ``ehlo_or_helo_if_needed``, then ``sendmail`` with positional
    arguments: smtplib's whole call graph, and the same message delivered."""
    args, kwargs = SEND_MESSAGE_ARGUMENTS[case]
    message = make_message()  # one object: it is recorded, and send_message leaves it alone
    scenario = quit_after(lambda smtp: smtp.send_message(message, *args, **kwargs))
    (theirs, their_result), (ours, our_result) = both(
        aiosmtpd_server.host, aiosmtpd_server.port, scenario
    )
    assert names(theirs)[:4] == ["send_message", "ehlo_or_helo_if_needed", "ehlo", "putcmd"]
    assert "sendmail" in names(theirs)
    assert_same_calls(ours, theirs)
    assert our_result == their_result
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.content == second.content
    assert b"hidden@example.test" not in second.content
    assert first.rcpt_tos == second.rcpt_tos


@pytest.mark.parametrize("case", list(SEND_MESSAGE_ARGUMENTS))
def test_instance_mock_of_sendmail_gets_smtplibs_arguments(
    aiosmtpd_server: AiosmtpdServer, case: str
) -> None:
    """``mock.patch.object(smtp, "sendmail")``: ``send_message`` calls the mock, with the
    positional arguments smtplib passes; nothing is sent."""
    args, kwargs = SEND_MESSAGE_ARGUMENTS[case]
    seen = []
    for module in (stdlib_smtplib, smtplib):
        smtp = module.SMTP(
            aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT
        )
        with mock.patch.object(smtp, "sendmail", return_value={"x": (1, b"mocked")}) as sendmail:
            assert smtp.send_message(make_message(), *args, **kwargs) == {"x": (1, b"mocked")}
        assert sendmail.call_count == 1
        assert sendmail.call_args.kwargs == {}
        seen.append(sendmail.call_args.args)
        assert smtp.noop()[0] == 250  # still in step with the server
        smtp.quit()
    theirs, ours = seen
    assert len(theirs) == 5
    assert_same_calls(ours, theirs)
    assert [type(arg) for arg in ours] == [type(arg) for arg in theirs]
    assert aiosmtpd_server.messages() == []


# ---------------------------------------------------------------- STARTTLS and login


def test_starttls_calls_match_smtplib(aiosmtpd_server: AiosmtpdServer, tls_ca: LocalCA) -> None:
    context = tls_ca.client_context()

    def scenario(smtp: Any) -> Any:
        reply = smtp.starttls(context=context)
        return reply, smtp.ehlo()[0], smtp.has_extn("starttls"), smtp.noop(), smtp.quit()

    (theirs, their_result), (ours, our_result) = both(
        aiosmtpd_server.host, aiosmtpd_server.port, scenario
    )
    assert theirs[:7] == [
        ("starttls", {"context": context}),
        ("ehlo_or_helo_if_needed",),
        ("ehlo",),
        ("putcmd", "ehlo", LOCAL_NAME),
        ("send", f"ehlo {LOCAL_NAME}\r\n"),
        ("getreply",),
        ("has_extn", "starttls"),
    ]
    assert theirs[7:11] == [
        ("docmd", "STARTTLS"),
        ("putcmd", "STARTTLS", ""),
        ("send", "STARTTLS\r\n"),
        ("getreply",),
    ]
    assert_same_calls(ours, theirs)
    assert our_result == their_result
    assert our_result[:3] == ((220, b"Ready to start TLS"), 250, False)


def test_login_over_starttls_calls_match_smtplib(
    postfix: PostfixServer,
    tls_ca: LocalCA,
    postfix_delivered: Callable[..., list[bytes]],
    token: str,
) -> None:
    """Postfix offers CRAM-MD5, PLAIN and LOGIN: ``login`` calls ``auth`` with smtplib's first
    choice and ``auth_cram_md5`` as the authobject, which answers the challenge; every AUTH
    line goes through ``docmd``."""
    context = tls_ca.client_context()
    message = f"Subject: {token}\r\n\r\nafter login\r\n".encode()

    def scenario(smtp: Any) -> Any:
        smtp.starttls(context=context)
        code, _ = smtp.login("testuser", "testpass")
        refused = smtp.sendmail(SENDER, [f"{token}@example.test"], message)
        return code, refused, smtp.quit()[0]

    (theirs, their_result), (ours, our_result) = both(postfix.host, postfix.port, scenario)
    assert their_result == (235, {}, 221)
    assert our_result == their_result
    login = names(theirs).index("login")
    assert theirs[login : login + 10] == [
        ("login", "testuser", "testpass"),
        ("ehlo_or_helo_if_needed",),
        ("ehlo",),
        ("putcmd", "ehlo", LOCAL_NAME),
        ("send", f"ehlo {LOCAL_NAME}\r\n"),
        ("getreply",),
        ("has_extn", "auth"),
        ("auth", "CRAM-MD5", "<auth_cram_md5>", {"initial_response_ok": True}),
        ("auth_cram_md5",),
        ("docmd", "AUTH", "CRAM-MD5"),
    ]
    assert ("auth_cram_md5", "<challenge>") in theirs
    assert ("docmd", "<cram-md5 response>") in theirs
    assert_same_calls(ours, theirs)
    assert len(postfix_delivered(token, count=2)) == 2


class FailingCramMD5:
    """An authobject the server refuses: ``login`` must go on to the next mechanism."""

    def auth_cram_md5(self, *args: Any) -> Any:
        response = super().auth_cram_md5(*args)  # type: ignore[misc]
        return None if response is None else f"{self.user} {'0' * 32}"  # type: ignore[attr-defined]


class StdlibFailingCram(FailingCramMD5, StdlibRecordingSMTP):
    pass


class OurFailingCram(FailingCramMD5, RecordingSMTP):
    pass


def test_login_tries_the_next_mechanism_after_an_authentication_error(
    postfix: PostfixServer,
) -> None:
    results = []
    recordings = []
    for cls in (StdlibFailingCram, OurFailingCram):
        calls, result = record(
            cls, postfix.host, postfix.port, lambda smtp: smtp.login("testuser", "testpass")
        )
        recordings.append([entry for entry in calls if entry[0] in ("auth", "docmd")])
        results.append(result)
    theirs, ours = recordings
    assert theirs == [
        ("auth", "CRAM-MD5", "<auth_cram_md5>", {"initial_response_ok": True}),
        ("docmd", "AUTH", "CRAM-MD5"),
        ("docmd", base64.b64encode(b"testuser " + b"0" * 32).decode()),
        ("auth", "PLAIN", "<auth_plain>", {"initial_response_ok": True}),
        ("docmd", "AUTH", "PLAIN " + base64.b64encode(b"\0testuser\0testpass").decode()),
    ]
    assert_same_calls(ours, theirs)
    assert results[1] == results[0] == (235, b"2.7.0 Authentication successful")


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "PLAIN", "LOGIN"])
@pytest.mark.parametrize("initial_response_ok", [True, False], ids=["initial", "no-initial"])
def test_login_calls_a_replaced_authobject(mechanism: str, initial_response_ok: bool) -> None:
    """Only ``auth_cram_md5`` / ``auth_plain`` / ``auth_login`` replaced (not ``auth``): ``login``
    uses it as the authobject, calling it as smtplib's ``auth`` does."""
    handler = StandardESMTP(auth={"testuser": "testpass"}, features=[f"AUTH {mechanism}"])
    results, recordings = [], []
    with ScriptedServer(handler) as server:
        for base in (stdlib_smtplib.SMTP, smtplib.SMTP):
            calls, result = record(
                recording_class(base, []),
                server.host,
                server.port,
                lambda smtp: smtp.login(
                    "testuser", "testpass", initial_response_ok=initial_response_ok
                ),
            )
            results.append(result)
            recordings.append(calls)
    theirs, ours = recordings
    method = "auth_" + mechanism.lower().replace("-", "_")
    assert theirs[0] == ("has_extn", "auth")
    assert method in names(theirs)
    assert_same_calls(ours, theirs)
    assert results[1] == results[0] == (235, b"2.7.0 Authentication successful")
    assert handler.authenticated == ["testuser", "testuser"]


# ---------------------------------------------------------------- simple commands and quit


def test_simple_commands_go_through_docmd_and_putcmd(aiosmtpd_server: AiosmtpdServer) -> None:
    """``noop``, ``rset`` and ``quit`` through ``docmd``; ``helo``, ``verify``, ``expn`` and
    ``help`` through ``putcmd`` and ``getreply``; ``quit`` ends with ``close``."""

    def scenario(smtp: Any) -> Any:
        return (
            smtp.helo(),
            smtp.noop(),
            smtp.rset(),
            smtp.verify("someone@example.test"),
            smtp.expn("list"),
            smtp.help(),
            smtp.docmd("NOOP", "now"),
            smtp.quit(),
            smtp.sock,
        )

    (theirs, their_result), (ours, our_result) = both(
        aiosmtpd_server.host, aiosmtpd_server.port, scenario
    )
    assert theirs == [
        ("helo",),
        ("putcmd", "helo", LOCAL_NAME),
        ("send", f"helo {LOCAL_NAME}\r\n"),
        ("getreply",),
        ("noop",),
        ("docmd", "noop"),
        ("putcmd", "noop", ""),
        ("send", "noop\r\n"),
        ("getreply",),
        ("rset",),
        ("docmd", "rset"),
        ("putcmd", "rset", ""),
        ("send", "rset\r\n"),
        ("getreply",),
        ("verify", "someone@example.test"),
        ("putcmd", "vrfy", "someone@example.test"),
        ("send", "vrfy someone@example.test\r\n"),
        ("getreply",),
        ("expn", "list"),
        ("putcmd", "expn", "list"),
        ("send", "expn list\r\n"),
        ("getreply",),
        ("help",),
        ("putcmd", "help", ""),
        ("send", "help\r\n"),
        ("getreply",),
        ("docmd", "NOOP", "now"),
        ("putcmd", "NOOP", "now"),
        ("send", "NOOP now\r\n"),
        ("getreply",),
        ("quit",),
        ("docmd", "quit"),
        ("putcmd", "quit", ""),
        ("send", "quit\r\n"),
        ("getreply",),
        ("close",),
    ]
    assert_same_calls(ours, theirs)
    assert our_result == their_result
    assert our_result[-1] is None


def test_quit_closes_through_close() -> None:
    """A subclass's ``close`` runs when ``quit`` ends the session (once), as in smtplib."""
    closed = []
    for base in (stdlib_smtplib.SMTP, smtplib.SMTP):

        class Closing(base):  # type: ignore[valid-type,misc]
            def close(self) -> None:
                closed.append((type(self).__mro__[1].__module__, self.sock is not None))
                super().close()

        with ScriptedServer(StandardESMTP()) as server:
            smtp = Closing(server.host, server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
            closed.clear()
            assert smtp.quit() == (221, b"2.0.0 Bye")
            assert smtp.sock is None
            assert closed == [(base.__module__, True)]


# ---------------------------------------------------------------- connect and _get_socket


def test_constructor_connects_through_connect_and_get_socket(
    aiosmtpd_server: AiosmtpdServer,
) -> None:
    """``SMTP(host, port)`` calls ``connect(host, port)``, which calls ``_get_socket(host, port,
    timeout)`` and reads the greeting through ``getreply()``."""
    host, port = aiosmtpd_server.host, aiosmtpd_server.port
    recordings = []
    for cls in (StdlibRecordingSMTP, RecordingSMTP):
        smtp = cls(host, port, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
        recordings.append(smtp.calls)
        smtp.calls = []
        assert smtp.connect(host, port)[0] == 220  # connecting again, explicitly
        recordings.append(smtp.calls)
        smtp.quit()
    stdlib_init, stdlib_connect, our_init, our_connect = recordings
    assert stdlib_init == [
        ("connect", host, port),
        ("_get_socket", host, port, TIMEOUT),
        ("getreply",),
    ]
    assert_same_calls(our_init, stdlib_init)
    assert_same_calls(our_connect, stdlib_connect)


class ProxiedMixin:
    """The "smtplib over a proxy" recipe: ``_get_socket`` connects by itself, to wherever the
    proxy is, whatever host the application names."""

    proxy: tuple[str, int]
    asked: tuple[Any, ...] = ()

    def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
        self.asked = (host, port, timeout)
        return socket.create_connection(self.proxy, timeout)


def test_get_socket_replacement_connects_by_itself(aiosmtpd_server: AiosmtpdServer) -> None:
    proxy = (aiosmtpd_server.host, aiosmtpd_server.port)
    for base in (stdlib_smtplib.SMTP, smtplib.SMTP):
        cls = type("Proxied", (ProxiedMixin, base), {"proxy": proxy})
        smtp = cls("mail.invalid", 2525, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
        assert smtp.asked == ("mail.invalid", 2525, TIMEOUT)
        assert smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE) == {}
        assert smtp.quit()[0] == 221
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.content == second.content == MESSAGE


# ---------------------------------------------------------------- send() and the wire


def test_class_patch_of_send_sees_the_wire(aiosmtpd_server: AiosmtpdServer) -> None:
    """``mock.patch.object(SMTP, "send", autospec=True, side_effect=...)`` sees every write:
    ``"data\\r\\n"``, then the whole message in one piece ending in CRLF.CRLF (what Django's
    ``test_email_msg_uses_crlf`` looks for)."""
    seen: dict[str, list[Any]] = {}
    for module in (stdlib_smtplib, smtplib):
        writes: list[Any] = seen.setdefault(module.__name__, [])
        original = module.SMTP.send

        def spy(self: Any, s: Any, writes: list[Any] = writes, original: Any = original) -> Any:
            writes.append(s)
            return original(self, s)

        with mock.patch.object(module.SMTP, "send", autospec=True, side_effect=spy) as send:
            smtp = module.SMTP(
                aiosmtpd_server.host,
                aiosmtpd_server.port,
                local_hostname=LOCAL_NAME,
                timeout=TIMEOUT,
            )
            assert smtp.sendmail(SENDER, RECIPIENTS, "Subject: crlf\n\nline\r\nother\r") == {}
            smtp.quit()
        assert send.call_count == len(writes)
    theirs, ours = seen.values()
    data = ours.index("data\r\n")
    message = ours[data + 1]
    assert isinstance(message, bytes)
    assert message == b"Subject: crlf\r\n\r\nline\r\nother\r\n.\r\n"
    assert message[:-5].replace(b"\r\n", b"").count(b"\r") == 0
    assert_same_calls(ours, theirs)


def test_replaced_send_turns_chunking_off(
    postfix: PostfixServer, postfix_delivered: Callable[..., list[bytes]], token: str
) -> None:
    """Postfix offers PIPELINING and CHUNKING.  With ``SMTP.send`` replaced by a plain class
    attribute, as Django's ``test_email_msg_uses_crlf`` does, every command is a write of its
    own and the message goes with DATA, in one write: no BDAT."""
    seen: dict[str, list[Any]] = {}
    message = f"Subject: {token}\r\n\r\nno BDAT\r\n".encode()
    for module in (stdlib_smtplib, smtplib):
        writes: list[Any] = seen.setdefault(module.__name__, [])
        send = module.SMTP.send

        def mock_send(self: Any, s: Any, writes: list[Any] = writes, send: Any = send) -> None:
            writes.append(s)
            return send(self, s)  # type: ignore[no-any-return]

        module.SMTP.send = mock_send  # type: ignore[method-assign]
        try:
            with module.SMTP(
                postfix.host, postfix.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT
            ) as smtp:
                assert smtp.sendmail(SENDER, [f"{token}@example.test"], message) == {}
                assert smtp.has_extn("chunking") and smtp.has_extn("pipelining")
        finally:
            module.SMTP.send = send  # type: ignore[method-assign]
    theirs, ours = seen.values()
    assert_same_calls(ours, theirs)
    assert ours[-3:] == ["data\r\n", message + b".\r\n", "QUIT\r\n"]
    assert not any(isinstance(write, str) and write.lower().startswith("bdat") for write in ours)
    assert len(postfix_delivered(token, count=2)) == 2


@all_adapters
async def test_raw_send_then_getreply(adapter: Adapter, aiosmtpd_server: AiosmtpdServer) -> None:
    """``send()`` called by the application writes its bytes as they are; ``getreply()`` reads
    the answer, as with smtplib; the connection goes on working."""
    stdlib = stdlib_smtplib.SMTP(
        aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME
    )
    stdlib.send("NOOP\r\n")
    theirs = [stdlib.getreply()]
    stdlib.send(b"HELP\r\n")
    theirs += [stdlib.getreply(), stdlib.noop(), stdlib.quit()]

    smtp = await adapter.open(aiosmtpd_server.host, aiosmtpd_server.port)
    assert await adapter.call(smtp.send, "NOOP\r\n") is None
    ours = [await adapter.call(smtp.getreply)]
    await adapter.call(smtp.send, b"HELP\r\n")
    ours += [
        await adapter.call(smtp.getreply),
        await adapter.call(smtp.noop),
        await adapter.call(smtp.quit),
    ]
    assert_same_calls(ours, theirs)
    assert ours[0] == (250, b"OK")
    assert ours[1][0] == 250 and ours[1][1].startswith(b"Supported commands:")


@all_adapters
async def test_send_before_connect_raises_like_smtplib(adapter: Adapter) -> None:
    errors = []
    for data in ("NOOP\r\n", b"NOOP\r\n"):
        with pytest.raises(stdlib_smtplib.SMTPServerDisconnected) as theirs:
            stdlib_smtplib.SMTP().send(data)
        with pytest.raises(adapter.module.SMTPServerDisconnected) as ours:
            await adapter.call(adapter.new().send, data)
        errors.append((str(ours.value), str(theirs.value)))
    assert errors == [("please run connect() first", "please run connect() first")] * 2


# ---------------------------------------------------------------- the async adapters


def stdlib_recording(host: str, port: int, scenario: Callable[[Any], Any]) -> list[Entry]:
    """smtplib's calls for ``scenario``, minus the connecting ones the async test leaves out."""
    calls, _ = record(StdlibRecordingSMTP, host, port, scenario)
    return [entry for entry in calls if entry[0] not in ("_get_socket", "connect")]


async def async_recording(
    adapter: Adapter, cls: type[Any], host: str, port: int, scenario: Callable[[Any], Any]
) -> tuple[list[Entry], Any]:
    smtp = cls(host, port, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
    assert (await smtp.connect())[0] == 220
    smtp.calls.clear()
    result = await scenario(smtp)
    return smtp.calls, result


@async_adapters
async def test_async_subclass_calls_match_smtplib(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """Coroutine overrides of every method are awaited where smtplib calls the method."""
    host, port = aiosmtpd_server.host, aiosmtpd_server.port

    async def scenario(smtp: Any) -> Any:
        refused = await smtp.sendmail(SENDER, RECIPIENTS, MESSAGE)
        return refused, await smtp.quit()

    theirs = stdlib_recording(
        host, port, quit_after(lambda smtp: smtp.sendmail(SENDER, RECIPIENTS, MESSAGE))
    )
    ours, result = await async_recording(
        adapter, async_recording_class(adapter), host, port, scenario
    )
    assert theirs == SENDMAIL_CALLS
    assert_same_calls(ours, theirs)
    assert result == ({}, (221, b"Bye"))
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.content == second.content == MESSAGE


@async_adapters
async def test_async_send_message_and_simple_commands_match_smtplib(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    host, port = aiosmtpd_server.host, aiosmtpd_server.port
    message = make_message()

    def sync_scenario(smtp: Any) -> Any:
        return (
            smtp.send_message(message),
            smtp.noop(),
            smtp.rset(),
            smtp.verify("x@example.test"),
            smtp.help(),
            smtp.quit(),
        )

    async def scenario(smtp: Any) -> Any:
        return (
            await smtp.send_message(message),
            await smtp.noop(),
            await smtp.rset(),
            await smtp.verify("x@example.test"),
            await smtp.help(),
            await smtp.quit(),
        )

    theirs = stdlib_recording(host, port, sync_scenario)
    ours, result = await async_recording(
        adapter, async_recording_class(adapter), host, port, scenario
    )
    assert names(theirs)[:2] == ["send_message", "ehlo_or_helo_if_needed"]
    assert_same_calls(ours, theirs)
    assert result[0] == {} and result[-1] == (221, b"Bye")
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.content == second.content


@async_adapters
async def test_async_login_over_starttls_matches_smtplib(
    adapter: Adapter, postfix: PostfixServer, tls_ca: LocalCA
) -> None:
    context = tls_ca.client_context()

    def sync_scenario(smtp: Any) -> Any:
        smtp.starttls(context=context)
        return smtp.login("testuser", "testpass"), smtp.quit()

    async def scenario(smtp: Any) -> Any:
        await smtp.starttls(context=context)
        return await smtp.login("testuser", "testpass"), await smtp.quit()

    theirs = stdlib_recording(postfix.host, postfix.port, sync_scenario)
    ours, result = await async_recording(
        adapter, async_recording_class(adapter), postfix.host, postfix.port, scenario
    )
    assert ("auth", "CRAM-MD5", "<auth_cram_md5>", {"initial_response_ok": True}) in theirs
    assert_same_calls(ours, theirs)
    assert result[0] == (235, b"2.7.0 Authentication successful")


@async_adapters
async def test_async_sendmail_override_calling_super(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """A subclass's ``async def sendmail`` calling ``await super().sendmail(...)``: reached from
    ``send_message``, inside the operation, without deadlocking on the connection's lock."""
    audit: list[Any] = []

    class Audited(adapter.module.SMTP):  # type: ignore[name-defined,misc]
        async def sendmail(self, *args: Any) -> Any:
            audit.append(("sendmail", args[0], args[1]))
            refused = await super().sendmail(*args)
            audit.append(("sent", refused, await self.noop()))
            return refused

        async def ehlo_or_helo_if_needed(self) -> None:
            audit.append(("ehlo_or_helo_if_needed", self.ehlo_resp is None))
            await super().ehlo_or_helo_if_needed()

    async with Audited(
        aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT
    ) as smtp:
        assert await smtp.send_message(make_message()) == {}
        assert await smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE) == {}
    # smtplib's order: To, Bcc, Cc
    recipients = ["one@example.test", "two@example.test", "hidden@example.test", "cc@example.test"]
    assert audit == [
        ("ehlo_or_helo_if_needed", True),  # send_message's own
        ("sendmail", "sender@example.test", recipients),
        ("ehlo_or_helo_if_needed", False),  # sendmail's, through the override
        ("sent", {}, (250, b"OK")),
        ("sendmail", SENDER, RECIPIENTS[0]),
        ("ehlo_or_helo_if_needed", False),
        ("sent", {}, (250, b"OK")),
    ]
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.rcpt_tos == recipients
    assert second.content == MESSAGE


class LocalPolicyMixin:
    """``rcpt`` as a plain method: refuses some recipients itself (a non-awaitable result),
    passes the others on (to a coroutine in the async adapters)."""

    def rcpt(self, recip: str, options: Any = ()) -> Any:
        if recip.startswith("blocked"):
            return 550, b"5.7.1 blocked by local policy"
        return super().rcpt(recip, options)  # type: ignore[misc]


@async_adapters
async def test_async_plain_method_override_returning_a_value(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    recipients = ["blocked@example.test", *RECIPIENTS]

    class StdlibPolicy(LocalPolicyMixin, stdlib_smtplib.SMTP):
        pass

    class Policy(LocalPolicyMixin, adapter.module.SMTP):  # type: ignore[name-defined,misc]
        pass

    stdlib = StdlibPolicy(aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME)
    theirs = stdlib.sendmail(SENDER, recipients, MESSAGE)
    stdlib.quit()
    async with Policy(
        aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT
    ) as smtp:
        ours = await smtp.sendmail(SENDER, recipients, MESSAGE)
        with pytest.raises(adapter.module.SMTPRecipientsRefused) as info:
            await smtp.sendmail(SENDER, ["blocked-too@example.test"], MESSAGE)
        assert await smtp.noop() == (250, b"OK")  # RSET went out; still in step
    assert ours == theirs == {"blocked@example.test": (550, b"5.7.1 blocked by local policy")}
    assert info.value.recipients == {
        "blocked-too@example.test": (550, b"5.7.1 blocked by local policy")
    }
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.rcpt_tos == second.rcpt_tos == RECIPIENTS


@async_adapters
async def test_async_get_socket_replacement(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """A replaced ``_get_socket``, a plain method or a coroutine, is called with smtplib's
    arguments and its socket adopted: the proxy recipe works on the async adapters too."""
    proxy = (aiosmtpd_server.host, aiosmtpd_server.port)
    asked: list[Any] = []

    class PlainProxy(adapter.module.SMTP):  # type: ignore[name-defined,misc]
        def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
            asked.append(("plain", host, port, timeout))
            return socket.create_connection(proxy, timeout)

    class AsyncProxy(adapter.module.SMTP):  # type: ignore[name-defined,misc]
        async def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
            asked.append(("async", host, port, timeout))
            return socket.create_connection(proxy, timeout)

    class Delegating(adapter.module.SMTP):  # type: ignore[name-defined,misc]
        async def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
            asked.append(("delegating", host, port, timeout))
            return await super()._get_socket(*proxy, timeout)

    for cls in (PlainProxy, AsyncProxy, Delegating):
        smtp = cls(local_hostname=LOCAL_NAME, timeout=TIMEOUT)
        assert (await smtp.connect("mail.invalid", 2525))[0] == 220
        assert await smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE) == {}
        assert await smtp.quit() == (221, b"Bye")
        assert not smtp.is_connected
    assert asked == [
        ("plain", "mail.invalid", 2525, TIMEOUT),
        ("async", "mail.invalid", 2525, TIMEOUT),
        ("delegating", "mail.invalid", 2525, TIMEOUT),
    ]
    assert len(aiosmtpd_server.wait_for_messages(3)) == 3


@async_adapters
async def test_async_class_mock_of_send_sees_the_wire(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """``mock.patch.object(SMTP, "send", autospec=True, side_effect=<async spy>)`` sees every
    write of ``sendmail`` that smtplib's ``send`` sees."""
    host, port = aiosmtpd_server.host, aiosmtpd_server.port
    stdlib_writes: list[Any] = []
    stdlib_send = stdlib_smtplib.SMTP.send

    def stdlib_spy(self: Any, s: Any) -> None:
        stdlib_writes.append(s)
        stdlib_send(self, s)

    with mock.patch.object(stdlib_smtplib.SMTP, "send", autospec=True, side_effect=stdlib_spy):
        stdlib = stdlib_smtplib.SMTP(host, port, local_hostname=LOCAL_NAME)
        stdlib.sendmail(SENDER, RECIPIENTS, MESSAGE)
        stdlib.quit()

    writes: list[Any] = []
    our_send = adapter.module.SMTP.send

    async def spy(self: Any, s: Any) -> None:
        writes.append(s)
        await our_send(self, s)

    with mock.patch.object(adapter.module.SMTP, "send", autospec=True, side_effect=spy) as send:
        smtp = adapter.module.SMTP(host, port, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
        assert (await smtp.connect())[0] == 220
        assert await smtp.sendmail(SENDER, RECIPIENTS, MESSAGE) == {}
        assert await smtp.quit() == (221, b"Bye")
    assert send.call_count == send.await_count == len(writes)
    assert_same_calls(writes, stdlib_writes)
    assert writes[writes.index("data\r\n") + 1] == STUFFED
    first, second = aiosmtpd_server.wait_for_messages(2)
    assert first.content == second.content == MESSAGE


@async_adapters
async def test_async_instance_mock_of_sendmail(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """``mock.patch.object(smtp, "sendmail")`` on an async client (an ``AsyncMock``):
    ``send_message`` awaits it with the arguments smtplib's ``send_message`` passes."""
    host, port = aiosmtpd_server.host, aiosmtpd_server.port
    message = make_message()
    stdlib = stdlib_smtplib.SMTP(host, port, local_hostname=LOCAL_NAME)
    with mock.patch.object(stdlib, "sendmail", return_value={}) as stdlib_sendmail:
        stdlib.send_message(message, mail_options=["BODY=8BITMIME"])
    stdlib.quit()

    async with adapter.module.SMTP(host, port, local_hostname=LOCAL_NAME, timeout=TIMEOUT) as smtp:
        with mock.patch.object(smtp, "sendmail", return_value={}) as sendmail:
            assert isinstance(sendmail, mock.AsyncMock)
            assert await smtp.send_message(message, mail_options=["BODY=8BITMIME"]) == {}
        assert await smtp.noop() == (250, b"OK")
    assert sendmail.await_count == 1
    assert sendmail.call_args.kwargs == {}
    assert_same_calls(sendmail.call_args.args, stdlib_sendmail.call_args.args)
    assert aiosmtpd_server.messages() == []


@async_adapters
async def test_async_overrides_from_concurrent_tasks(
    adapter: Adapter, aiosmtpd_server: AiosmtpdServer
) -> None:
    """Two tasks calling an overridden ``sendmail`` on one connection: each transaction runs
    whole (the override's inner calls re-enter the lock its task holds), neither deadlocks."""
    cls = async_recording_class(adapter)
    smtp = cls(
        aiosmtpd_server.host, aiosmtpd_server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT
    )
    assert (await smtp.connect())[0] == 220
    results = await adapter.gather(
        lambda: smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE),
        lambda: smtp.sendmail(SENDER, RECIPIENTS[1], MESSAGE),
    )
    assert results == [{}, {}]
    await smtp.quit()
    transaction = [name for name in names(smtp.calls) if name in ("mail", "rcpt", "data")]
    assert transaction == ["mail", "rcpt", "data", "mail", "rcpt", "data"]
    messages = aiosmtpd_server.wait_for_messages(2)
    assert sorted(m.rcpt_tos[0] for m in messages) == sorted(RECIPIENTS)


@async_adapters
async def test_async_quit_closes_through_close(adapter: Adapter) -> None:
    """``await smtp.quit()`` ends with the subclass's ``close()``, once, as smtplib's does."""
    closed: list[bool] = []

    class Closing(adapter.module.SMTP):  # type: ignore[name-defined,misc]
        def close(self) -> None:
            closed.append(self.is_connected)
            super().close()

    with ScriptedServer(StandardESMTP()) as server:
        smtp = Closing(server.host, server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT)
        assert (await smtp.connect())[0] == 220
        closed.clear()
        assert await smtp.quit() == (221, b"2.0.0 Bye")
        assert not smtp.is_connected
    assert closed == [True]


# ---------------------------------------------------------------- the fast path


def strict_pipelining(session: Session) -> None:
    """A server that reads MAIL, both RCPTs and DATA before it answers any of them: a client
    waiting for each reply before the next command (lock-step) never gets through."""
    session.reply("220 strict.test ESMTP")
    session.expect("EHLO ")
    session.reply("250-strict.test", "250-PIPELINING", "250 8BITMIME")
    session.expect(f"MAIL FROM:<{SENDER}>")
    session.expect(f"RCPT TO:<{RECIPIENTS[0]}>")
    session.expect(f"RCPT TO:<{RECIPIENTS[1]}>")
    session.expect("DATA")
    session.reply("250 2.1.0 OK", "250 2.1.5 OK", "250 2.1.5 OK", "354 Go ahead")
    assert session.read_until(b"\r\n.\r\n") == STUFFED
    session.reply("250 2.0.0 Queued")
    session.expect("QUIT")
    session.reply("221 2.0.0 Bye")


class Tenant:
    """Overrides nothing ``sendmail`` calls: an ``__init__`` with an extra argument, ``close``,
    ``has_extn`` and a method of its own."""

    def __init__(self, *args: Any, tenant: str, **kwargs: Any) -> None:
        self.tenant = tenant
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        super().close()  # type: ignore[misc]

    def has_extn(self, opt: str) -> bool:
        return super().has_extn(opt)  # type: ignore[misc,no-any-return]

    def describe(self) -> str:
        return f"tenant {self.tenant}"


@all_adapters
async def test_fast_path_when_nothing_sendmail_calls_is_replaced(adapter: Adapter) -> None:
    """With nothing replaced (or only unrelated methods), MAIL, the RCPTs and DATA go out
    without waiting for replies, as RFC 2920 allows."""
    plain = adapter.module.SMTP
    tenant = type("TenantSMTP", (Tenant, plain), {})
    for cls, extra in ((plain, {}), (tenant, {"tenant": "acme"})):
        with ScriptedServer(strict_pipelining, timeout=5) as server:
            smtp = cls(
                server.host, server.port, local_hostname=LOCAL_NAME, timeout=TIMEOUT, **extra
            )
            if adapter.is_async:
                await smtp.connect()
            assert await adapter.call(smtp.sendmail, SENDER, RECIPIENTS, MESSAGE) == {}
            assert await adapter.call(smtp.quit) == (221, b"2.0.0 Bye")
            server.wait_sessions_done()
    assert smtp.describe() == "tenant acme"
