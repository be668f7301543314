"""Command injection, on every adapter: a control character in any argument of any public
method is refused before one byte of the command leaves, and the connection stays usable.

A vulnerable client writes ``rcpt TO:<a@example.test>\\r\\nRSET>`` (or lets a lone LF, CR or
NUL through, which lenient servers read as a line end): the server would then see an extra
command.  So each test ends by comparing everything the server received with what a safe
client sends: the EHLO, one NOOP after each refused call (each answered 250), and QUIT.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtp_proto import sasl
from smtp_proto.errors import LocalProtocolError, SMTPException
from smtp_proto.message import prepare_message
from tests.adapters import LOCAL_NAME, MESSAGE, Adapter, all_adapters, on_adapters
from tests.scripted_server import ScriptedServer, StandardESMTP

SENDER, RECIPIENT = "s@example.test", "r@example.test"
EHLO = f"ehlo {LOCAL_NAME}".encode()
#: A sample of the control characters, for the runs on every adapter (the hypothesis test
#: below tries every one of them on the blocking adapter).
CONTROLS = ["\r", "\n", "\r\n", "\0", "\t", "\x1b", "\x7f"]
ALL_CONTROLS = [chr(code) for code in range(0x20)] + ["\x7f"]
FEATURES = {
    "pipelining": ["PIPELINING", "8BITMIME", "SIZE 1000000", "SMTPUTF8", "DSN"],
    "lockstep": ["8BITMIME", "SIZE 1000000", "SMTPUTF8", "DSN"],
}


def message(**headers: str) -> email.message.Message:
    """A small message with the given address headers (compat32: any value can be set)."""
    msg = email.message.Message()
    fields = {"From": SENDER, "To": RECIPIENT, **headers}
    for name, value in fields.items():
        msg[name.replace("_", "-")] = value
    msg["Subject"] = "injection"
    msg.set_payload("body\n")
    return msg


def authobject(challenge: bytes | None = None) -> str:
    return "x"


#: Every argument of every public method that ends up in a command line: the method name
#: and its arguments, given the injected value.
Call = Callable[[str], tuple[str, tuple[Any, ...], dict[str, Any]]]
CALLS: dict[str, Call] = {
    "helo": lambda v: ("helo", (v,), {}),
    "ehlo": lambda v: ("ehlo", (v,), {}),
    "mail-address": lambda v: ("mail", (v,), {}),
    "mail-option": lambda v: ("mail", (SENDER, ["BODY=8BITMIME", v]), {}),
    "rcpt-address": lambda v: ("rcpt", (v,), {}),
    "rcpt-option": lambda v: ("rcpt", (RECIPIENT, [v]), {}),
    "sendmail-from": lambda v: ("sendmail", (v, [RECIPIENT], MESSAGE), {}),
    "sendmail-to-first": lambda v: ("sendmail", (SENDER, [v, RECIPIENT], MESSAGE), {}),
    "sendmail-to-last": lambda v: ("sendmail", (SENDER, [RECIPIENT, v], MESSAGE), {}),
    "sendmail-to-str": lambda v: ("sendmail", (SENDER, v, MESSAGE), {}),
    "sendmail-mail-option": lambda v: ("sendmail", (SENDER, [RECIPIENT], MESSAGE, [v]), {}),
    "sendmail-rcpt-option": lambda v: (
        "sendmail",
        (SENDER, [RECIPIENT, RECIPIENT], MESSAGE, ["BODY=8BITMIME"], ["NOTIFY=NEVER", v]),
        {},
    ),
    "send_message-from_addr": lambda v: ("send_message", (message(), v), {}),
    "send_message-to_addrs": lambda v: ("send_message", (message(), None, [RECIPIENT, v]), {}),
    "send_message-From": lambda v: ("send_message", (message(From=v),), {}),
    "send_message-Sender": lambda v: ("send_message", (message(Sender=v),), {}),
    "send_message-To": lambda v: ("send_message", (message(To=v),), {}),
    "send_message-Cc": lambda v: ("send_message", (message(Cc=v),), {}),
    "send_message-Bcc": lambda v: ("send_message", (message(Bcc=v),), {}),
    "send_message-mail_options": lambda v: (
        "send_message",
        (message(),),
        {"mail_options": [v]},
    ),
    "send_message-rcpt_options": lambda v: (
        "send_message",
        (message(),),
        {"rcpt_options": [v]},
    ),
    "verify": lambda v: ("verify", (v,), {}),
    "vrfy": lambda v: ("vrfy", (v,), {}),
    "expn": lambda v: ("expn", (v,), {}),
    "help": lambda v: ("help", (v,), {}),
    "docmd-verb": lambda v: ("docmd", (v,), {}),
    "docmd-args": lambda v: ("docmd", ("NOOP", v), {}),
    "putcmd-verb": lambda v: ("putcmd", (v,), {}),
    "putcmd-args": lambda v: ("putcmd", ("NOOP", v), {}),
    "auth-mechanism": lambda v: ("auth", (v, authobject), {}),
}
#: In a header, a tab is ordinary white space (and CRLF + blank is folding), not injection.
HEADER_CALLS = {label for label in CALLS if label.split("-")[-1][:1].isupper()}


def injected(label: str, control: str, position: int | None = None) -> str:
    """A plausible argument for ``label`` with ``control`` and a smuggled command inside."""
    base = {"helo": "client.example.test", "ehlo": "client.example.test"}.get(label, RECIPIENT)
    if label.endswith(("option", "options")):
        base = "NOTIFY=NEVER"
    elif label == "auth-mechanism":
        base = "PLAIN"
    elif label.startswith(("docmd", "putcmd", "help")):
        base = "NOOP"
    value = base + control + "RSET"
    if position is not None:
        position %= len(value) + 1
        value = value[:position] + control + value[position:]
    return value


async def refused(adapter: Adapter, smtp: Any, label: str, value: str) -> None:
    """``label``'s call with ``value`` raises ``LocalProtocolError``; a NOOP then gets 250."""
    name, args, kwargs = CALLS[label](value)
    with pytest.raises(LocalProtocolError):
        await adapter.call(getattr(smtp, name), *args, **kwargs)
        pytest.fail(f"{label}: {value!r} was sent")
    assert adapter.is_connected(smtp)
    assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")


def transcript(noops: int) -> bytes:
    """What the server receives from a client that sent none of the injected commands."""
    return EHLO + b"\r\n" + b"noop\r\n" * noops + b"quit\r\n"


#: PIPELINING changes how sendmail and send_message write, so they run without it too.
CASES = [(label, "pipelining") for label in CALLS] + [
    (label, "lockstep") for label in CALLS if label.startswith(("sendmail", "send_message"))
]


@all_adapters
@pytest.mark.parametrize(("label", "features"), CASES, ids=["-".join(case) for case in CASES])
async def test_control_characters_are_refused_before_sending(
    adapter: Adapter, label: str, features: str
) -> None:
    behaviour = StandardESMTP(features=FEATURES[features])
    controls = [c for c in CONTROLS if not (label in HEADER_CALLS and c == "\t")]
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        for control in controls:
            await refused(adapter, smtp, label, injected(label, control))
        assert (await adapter.call(smtp.quit))[0] == 221
    assert bytes(server.sessions[0].received) == transcript(len(controls))
    assert behaviour.envelopes == []


@on_adapters("sync")
@pytest.mark.parametrize("features", list(FEATURES))
async def test_any_control_character_anywhere_is_refused(adapter: Adapter, features: str) -> None:
    """Every control character, at any position, in any argument (hypothesis)."""
    behaviour = StandardESMTP(features=FEATURES[features])
    sent = 0
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            label=st.sampled_from(sorted(CALLS)),
            control=st.sampled_from(ALL_CONTROLS),
            position=st.integers(0, 40),
        )
        def check(label: str, control: str, position: int) -> None:
            nonlocal sent
            if label in HEADER_CALLS and control == "\t":
                return
            value = injected(label, control, position)
            name, args, kwargs = CALLS[label](value)
            with pytest.raises(LocalProtocolError):
                getattr(smtp, name)(*args, **kwargs)
                pytest.fail(f"{label}: {value!r} was sent")
            assert smtp.noop() == (250, b"2.0.0 OK")
            sent += 1

        check()
        assert (await adapter.call(smtp.quit))[0] == 221
    assert sent > 100
    assert bytes(server.sessions[0].received) == transcript(sent)


@all_adapters
async def test_local_hostname_with_control_characters(adapter: Adapter) -> None:
    """The constructor's ``local_hostname`` goes into EHLO and HELO: refused there, and by
    ``sendmail``, which greets first."""
    for control in CONTROLS:
        behaviour = StandardESMTP()
        with ScriptedServer(behaviour) as server:
            name = f"client.example.test{control}RSET"
            smtp = await adapter.open(server.host, server.port, local_hostname=name)
            for method, args in [
                (smtp.ehlo, ()),
                (smtp.helo, ()),
                (smtp.ehlo_or_helo_if_needed, ()),
                (smtp.sendmail, (SENDER, [RECIPIENT], MESSAGE)),
                (smtp.send_message, (message(),)),
                (smtp.login, ("user", "secret")),
            ]:
                with pytest.raises(LocalProtocolError):
                    await adapter.call(method, *args)
                assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
            assert (await adapter.call(smtp.quit))[0] == 221
        assert bytes(server.sessions[0].received) == b"noop\r\n" * 6 + b"quit\r\n"


@all_adapters
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_credentials_with_line_breaks_cannot_inject(adapter: Adapter, mechanism: str) -> None:
    """User names and passwords travel base64-encoded, so CR and LF in them are data: the
    server reads exactly one AUTH exchange and the credentials as given."""
    user, password = "user\r\nRSET\nQUIT", "pass\rword\r\nMAIL FROM:<x@example.test>"
    behaviour = StandardESMTP(features=[f"AUTH {mechanism}"], auth={user: password})
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.login, user, password))[0] == 235
        assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        assert (await adapter.call(smtp.quit))[0] == 221
    assert behaviour.authenticated == [user]
    verbs = [line.split(b" ")[0].upper() for line in behaviour.commands]
    assert verbs[0] == b"EHLO" and verbs[-2:] == [b"NOOP", b"QUIT"]
    assert b"AUTH" in verbs[1] and not {b"RSET", b"MAIL"} & set(verbs)


@all_adapters
async def test_nul_in_plain_credentials_is_refused_before_sending(adapter: Adapter) -> None:
    """PLAIN separates its fields with NUL: a NUL in the user name would shift them."""
    behaviour = StandardESMTP(features=["AUTH PLAIN"], auth={"user": "secret"})
    with ScriptedServer(behaviour) as server:
        smtp = await adapter.open(server.host, server.port)
        assert (await adapter.call(smtp.ehlo))[0] == 250
        for user, password in [("user\0admin", "secret"), ("user", "se\0cret")]:
            with pytest.raises(SMTPException):
                await adapter.call(smtp.login, user, password)
            with pytest.raises(SMTPException):
                await adapter.call(smtp.auth, "PLAIN", sasl.Plain(user, password))
            assert await adapter.call(smtp.noop) == (250, b"2.0.0 OK")
        assert (await adapter.call(smtp.quit))[0] == 221
    assert bytes(server.sessions[0].received) == transcript(2)
    assert behaviour.authenticated == []


# ---------------------------------------------------------------- address headers (offline)

ADDRESSES = st.lists(st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.test", fullmatch=True), min_size=1)
SEPARATORS = st.sampled_from([", ", ",", ",\r\n ", ",\n\t", ",\r\n\t  "])


@settings(deadline=None)  # prepare_message flattens a message: slow on a loaded machine
@given(addresses=ADDRESSES, data=st.data())
def test_folded_address_headers_are_read_whole(addresses: list[str], data: st.DataObject) -> None:
    """Folding (a line break, then white space) is part of a header, not an injection."""
    value = addresses[0]
    for address in addresses[1:]:
        value += data.draw(SEPARATORS) + address
    for field in ("To", "Cc", "Bcc"):
        headers = {"To": "", field: value}
        assert prepare_message(message(**headers)).to_addrs[-len(addresses) :] == addresses
    assert prepare_message(message(From=value)).from_addr == addresses[0]


@settings(deadline=None)
@given(
    addresses=ADDRESSES,
    line_break=st.sampled_from(["\r", "\n", "\r\n"]),
    field=st.sampled_from(["From", "Sender", "To", "Cc", "Bcc"]),
    data=st.data(),
)
def test_line_break_in_an_address_header_is_refused(
    addresses: list[str], line_break: str, field: str, data: st.DataObject
) -> None:
    """A line break that is not folding (not followed by white space) is refused, instead of
    ``getaddresses`` quietly reading it as a separator."""
    value = ", ".join(addresses)
    position = data.draw(st.integers(0, len(value)))
    assume(value[position : position + 1] not in (" ", "\t") or position == len(value))
    injected_value = value[:position] + line_break + value[position:]
    with pytest.raises(LocalProtocolError):
        prepare_message(message(**{field: injected_value}))
