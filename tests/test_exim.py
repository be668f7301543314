"""Interoperability with a real Exim 4 (``tests/servers/exim.py``), through every adapter.

Exim differs from the Postfix fixture where a client can notice: no ENHANCEDSTATUSCODES (so
no reply carries an RFC 3463 code), AUTH offered only over TLS, a two-line reply to the last
BDAT (``<n> byte chunk, total <t>`` then ``OK id=<queue id>``), and DSN fields copied as the
client sent them (xtext).  Delivered messages are read back from Exim's Maildir, where Exim
stores LF line ends under four trace fields of its own.  (Over plain TCP, Exim holds its reply
to QUIT up to 200 ms, waiting for the client to close first; over TLS it answers at once.)
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from typing import Any

import pytest

from smtp_proto.body import PIECE_SIZE
from smtp_proto.dsn import DSN, RecipientDSN, xtext_decode, xtext_encode
from smtp_proto.errors import SMTPAuthenticationError
from tests.adapters import LOCAL_NAME, Adapter, all_adapters, send
from tests.servers.certs import LocalCA
from tests.servers.exim import BANNER_NOTE, HOSTNAME, MESSAGE_SIZE_LIMIT, EximServer
from tests.servers.postfix import PostfixServer

SENDER = "sender@example.test"
AUTHENTICATED = (235, b"Authentication succeeded")
BYE = (221, b"exim.test closing connection")
#: What Exim 4.96 offers in clear text: no AUTH yet, and never ENHANCEDSTATUSCODES.
PLAIN_FEATURES = {
    "size": str(MESSAGE_SIZE_LIMIT),
    "8bitmime": "",
    "dsn": "",
    "pipelining": "",
    "pipeconnect": "",
    "chunking": "",
    "starttls": "",
    "prdr": "",
    "smtputf8": "",
    "help": "",
}
#: Each SASL mechanism and the Exim authenticator serving it (the mainlog's ``A=<name>:``).
AUTHENTICATORS = {"PLAIN": "plain", "LOGIN": "login", "CRAM-MD5": "cram_md5"}
QUEUE_ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
TRACE_FIELDS = ("Return-path", "Envelope-to", "Delivery-date", "Received")


async def starttls(adapter: Adapter, smtp: Any, tls_ca: LocalCA) -> None:
    """STARTTLS with the test CA verified, then EHLO again."""
    assert await adapter.call(smtp.starttls, context=tls_ca.client_context()) == (
        220,
        b"TLS go ahead",
    )
    assert (await adapter.call(smtp.ehlo))[0] == 250


def split_trace(delivered: bytes) -> tuple[dict[str, str], bytes]:
    """The trace fields Exim put on top of a delivered message, and the message under them."""
    fields: dict[str, str] = {}
    rest = delivered
    for name in TRACE_FIELDS:
        prefix = f"{name}: ".encode()
        assert rest.startswith(prefix), rest[:300]
        end = rest.index(b"\n")
        while rest[end + 1 : end + 2] == b"\t":  # a folded field goes on
            end = rest.index(b"\n", end + 1)
        fields[name] = rest[len(prefix) : end].decode("utf-8")
        rest = rest[end + 1 :]
    return fields, rest


def received_line(exim: EximServer, queue_id: str) -> str:
    """The mainlog's ``<=`` line: the message with this queue id arrived."""
    (line,) = [x for x in exim.log().splitlines() if f" {queue_id} <= " in x]
    return line


def queue_id_of(trace: dict[str, str]) -> str:
    """The queue id in Exim's ``Received:`` field."""
    match = re.search(r"\bid (\S+)", trace["Received"])
    assert match is not None, trace["Received"]
    return match[1]


def big_message(token: str) -> bytes:
    """About 3 MB with bare LF line ends, many lines starting with dots, a lone ``.`` line."""
    head = f"From: <{SENDER}>\nTo: <chunks@example.test>\nSubject: chunks {token}\n\n"
    lines = b"".join(b".%06d " % n + b"x" * 70 + b"\n" for n in range(40000))
    return head.encode() + b".\n..\n" + lines + b"...last\n"


# ---------------------------------------------------------------- EHLO and replies


@all_adapters
async def test_ehlo_offers_exims_extensions_and_no_enhancedstatuscodes(
    adapter: Adapter, exim: EximServer, tls_ca: LocalCA
) -> None:
    smtp = adapter.new()
    code, banner = await adapter.call(smtp.connect, exim.host, exim.port)
    assert code == 220
    assert banner.startswith(b"exim.test ESMTP Exim 4.") and banner.endswith(BANNER_NOTE.encode())
    code, text = await adapter.call(smtp.ehlo)
    assert code == 250
    assert text.startswith(f"{HOSTNAME} Hello {LOCAL_NAME} [127.0.0.1]\n".encode())
    assert smtp.esmtp_features == PLAIN_FEATURES
    assert not smtp.has_extn("enhancedstatuscodes") and not smtp.has_extn("auth")
    await starttls(adapter, smtp, tls_ca)
    after_tls = {k: v for k, v in PLAIN_FEATURES.items() if k != "starttls"}
    after_tls["auth"] = " PLAIN LOGIN CRAM-MD5"  # smtplib's leading space, kept
    assert smtp.esmtp_features == after_tls
    assert await adapter.call(smtp.quit) == BYE


@all_adapters
async def test_replies_and_refusals_carry_no_enhanced_status(
    adapter: Adapter, exim: EximServer, postfix: PostfixServer, tls_ca: LocalCA, token: str
) -> None:
    accepted, rejected, deferred = (
        "kept@example.test",
        "reject-me@example.test",
        "tempfail-me@example.test",
    )
    result = await send(
        adapter,
        f"Subject: {token}\r\n\r\nbody\r\n",
        exim.host,
        exim.port,
        sender=SENDER,
        recipients=[accepted, rejected, deferred],
        context=tls_ca.client_context(),
    )
    replies = [result.accepted[accepted], result.refused[rejected], result.refused[deferred]]
    assert [(r.code, r.text, r.enhanced_status) for r in replies] == [
        (250, b"Accepted", None),
        (550, f"<{rejected}>: recipient rejected (test hook)".encode(), None),
        (451, f"<{deferred}>: temporary failure (test hook)".encode(), None),
    ]
    assert result.data_reply is not None and result.data_reply.enhanced_status is None

    smtp = await adapter.open(exim.host, exim.port)
    await starttls(adapter, smtp, tls_ca)
    with pytest.raises(SMTPAuthenticationError) as exim_refusal:
        await adapter.call(smtp.login, "testuser", "wrong")
    assert exim_refusal.value.smtp_code == 535
    assert exim_refusal.value.smtp_error == b"Incorrect authentication data"
    assert exim_refusal.value.enhanced_status is None
    assert await adapter.call(smtp.login, "testuser", "testpass") == AUTHENTICATED  # still usable
    assert await adapter.call(smtp.quit) == BYE

    smtp = await adapter.open(postfix.host, postfix.port)  # Postfix, by contrast, sends them
    with pytest.raises(SMTPAuthenticationError) as postfix_refusal:
        await adapter.call(smtp.login, "testuser", "wrong")
    assert str(postfix_refusal.value.enhanced_status) == "5.7.8"
    await adapter.call(smtp.quit)


# ---------------------------------------------------------------- STARTTLS and AUTH


@all_adapters
@pytest.mark.parametrize("mechanism", list(AUTHENTICATORS))
@pytest.mark.parametrize(("how", "user"), [("login", "testuser"), ("auth", "utf8user")])
async def test_starttls_auth_and_delivery(
    adapter: Adapter,
    exim: EximServer,
    *,
    tls_ca: LocalCA,
    token: str,
    mechanism: str,
    how: str,
    user: str,
) -> None:
    # The fixture's hook: EHLO <mechanism>.only.test is offered that mechanism alone.
    smtp = await adapter.open(exim.host, exim.port, local_hostname=f"{mechanism.lower()}.only.test")
    await adapter.call(smtp.ehlo)
    assert not smtp.has_extn("auth")  # not before TLS
    await starttls(adapter, smtp, tls_ca)
    assert smtp.esmtp_features["auth"].split() == [mechanism]
    password = exim.users[user]
    if how == "login":
        reply = await adapter.call(smtp.login, user, password)
    else:
        smtp.user, smtp.password = user, password
        authobject = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
        reply = await adapter.call(smtp.auth, mechanism, authobject)
    assert reply == AUTHENTICATED
    message = (
        f"From: Sender <{SENDER}>\r\nTo: <to@example.test>\r\nSubject: {mechanism} {token}\r\n"
        f"Message-ID: <{token}@example.test>\r\n\r\nFirst line\r\n.leading dot\r\nlast\r\n"
    ).encode()
    assert await adapter.call(smtp.sendmail, SENDER, ["to@example.test"], message) == {}
    assert await adapter.call(smtp.quit) == BYE
    trace, stored = split_trace(exim.wait_for_message(lambda m: token.encode() in m))
    assert stored == message.replace(b"\r\n", b"\n")  # headers and body as sent
    assert (trace["Return-path"], trace["Envelope-to"]) == (f"<{SENDER}>", "to@example.test")
    assert "with esmtpsa" in trace["Received"]  # TLS and authenticated
    assert f" A={AUTHENTICATORS[mechanism]}:{user} " in received_line(exim, queue_id_of(trace))


# ---------------------------------------------------------------- send()


@all_adapters
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_send_with_tls_and_credentials(
    adapter: Adapter, exim: EximServer, tls_ca: LocalCA, token: str, tls: str
) -> None:
    message = email.message.EmailMessage()
    message["From"] = SENDER
    message["To"] = "ok@example.test, reject-me@example.test"
    message["Subject"] = token
    message.set_content("hello Exim\n")
    result = await send(
        adapter,
        message,
        exim.host,
        exim.port if tls == "starttls" else exim.smtps_port,
        tls=tls,
        context=tls_ca.client_context(),
        username="testuser",
        password="testpass",
    )
    assert list(result.accepted) == ["ok@example.test"]
    assert list(result.refused) == ["reject-me@example.test"]
    assert result.refused["reject-me@example.test"].code == 550
    assert not result.ok
    queue_id = result.queue_id
    assert queue_id is not None and QUEUE_ID.fullmatch(queue_id)
    assert result.data_reply is not None
    assert result.data_reply.lines[-1] == f"OK id={queue_id}".encode()  # after the chunk line
    trace, stored = split_trace(exim.wait_for_message(lambda m: token.encode() in m))
    assert queue_id_of(trace) == queue_id and trace["Envelope-to"] == "ok@example.test"
    assert stored.endswith(b"\n\nhello Exim\n")
    line = received_line(exim, queue_id)
    assert " P=esmtpsa " in line and " A=cram_md5:testuser " in line  # login()'s first choice


# ---------------------------------------------------------------- CHUNKING


@all_adapters
async def test_chunking_sendmail_streams_bdat_chunks(
    adapter: Adapter, exim: EximServer, token: str, capfd: pytest.CaptureFixture[str]
) -> None:
    message = big_message(token)
    on_the_wire = message.replace(b"\n", b"\r\n")
    smtp = await adapter.open(exim.host, exim.port)
    smtp.chunking = True
    await adapter.call(smtp.ehlo)
    capfd.readouterr()
    smtp.set_debuglevel(1)
    assert await adapter.call(smtp.sendmail, SENDER, ["chunks@example.test"], message) == {}
    smtp.set_debuglevel(0)
    assert await adapter.call(smtp.quit) == BYE
    commands = re.findall(r"^send: 'BDAT (\d+)( LAST)?\\r\\n'$", capfd.readouterr().err, re.M)
    assert len(commands) == -(-len(message) // PIECE_SIZE) > 1  # one per 256 KiB
    assert [last for _, last in commands] == [""] * (len(commands) - 1) + [" LAST"]
    assert sum(int(size) for size, _ in commands) == len(on_the_wire)  # LF went out as CRLF
    trace, stored = split_trace(exim.wait_for_message(lambda m: token.encode() in m))
    assert stored == message  # dots untouched (no stuffing in BDAT), CRLF stored as LF
    assert " K " in received_line(exim, queue_id_of(trace))  # Exim's mark for CHUNKING


@all_adapters
async def test_chunking_send(
    adapter: Adapter, exim: EximServer, tls_ca: LocalCA, token: str
) -> None:
    message = big_message(token)
    result = await send(
        adapter,
        message,
        exim.host,
        exim.port,
        sender=SENDER,
        recipients=["chunks@example.test"],
        context=tls_ca.client_context(),
    )
    assert result.ok and result.data_reply is not None
    chunk_line = re.fullmatch(rb"(\d+) byte chunk, total (\d+)", result.data_reply.lines[0])
    assert chunk_line is not None, result.data_reply
    last, total = int(chunk_line[1]), int(chunk_line[2])
    assert total == len(message.replace(b"\n", b"\r\n"))
    assert 0 < last < total  # the last of several chunks
    assert result.queue_id is not None and " K " in received_line(exim, result.queue_id)
    delivered = exim.wait_for_message(lambda m: token.encode() in m)
    assert split_trace(delivered)[1] == message


# ---------------------------------------------------------------- SMTPUTF8 and DSN


@all_adapters
async def test_smtputf8_addresses(
    adapter: Adapter, exim: EximServer, tls_ca: LocalCA, token: str
) -> None:
    sender, recipient = f"jörg-{token}@example.test", "zoë@bücher.example"
    message = email.message.EmailMessage(policy=email.policy.SMTPUTF8)
    message["From"] = f"Jörg <{sender}>"
    message["To"] = f"Zoë <{recipient}>"
    message["Subject"] = f"Grüße {token}"
    message.set_content("Schöne Grüße\n")
    result = await send(adapter, message, exim.host, exim.port, context=tls_ca.client_context())
    assert list(result.accepted) == [recipient]
    trace, stored = split_trace(exim.wait_for_message(lambda m: token.encode() in m))
    assert (trace["Return-path"], trace["Envelope-to"]) == (f"<{sender}>", recipient)
    assert f"Subject: Grüße {token}\n".encode() in stored  # raw UTF-8, no encoded words
    line = received_line(exim, queue_id_of(trace))
    assert f" <= {sender} " in line and " P=utf8esmtps " in line


@all_adapters
async def test_dsn_parameters_reach_the_notification(
    adapter: Adapter, exim: EximServer, tls_ca: LocalCA, token: str
) -> None:
    sender, recipient = f"dsn-{token}@example.test", f"rcpt-{token}@example.test"
    envid, original = f"env {token} +=", f"original+{token} x@example.test"
    request = DSN(
        ret="HDRS",
        envid=envid,
        recipients={recipient: RecipientDSN(notify=("SUCCESS", "FAILURE"), orcpt=original)},
    )
    message = f"Subject: dsn {token}\r\n\r\nthe body stays home\r\n"
    result = await send(
        adapter,
        message,
        exim.host,
        exim.port,
        sender=sender,
        recipients=[recipient],
        context=tls_ca.client_context(),
        dsn=request,
    )
    assert result.ok
    raw = exim.wait_for_message(lambda m: m.startswith(b"Return-path: <>") and token.encode() in m)
    trace, stored = split_trace(raw)
    assert trace["Envelope-to"] == sender
    notification = email.message_from_bytes(stored, policy=email.policy.default)
    assert notification.get_content_type() == "multipart/report"
    parts = {part.get_content_type(): part for part in notification.walk()}
    per_message, per_recipient = parts["message/delivery-status"].get_payload()
    # Exim copies ENVID and ORCPT as they came, in xtext (Postfix decodes them).
    assert per_message["Original-Envelope-ID"] == xtext_encode(envid)
    assert xtext_decode(per_message["Original-Envelope-ID"]) == envid
    assert per_recipient["Original-Recipient"] == f"rfc822;{xtext_encode(original)}"
    assert per_recipient["Final-Recipient"] == f"rfc822;{recipient}"
    assert per_recipient["Action"] == "delivered"
    assert "text/rfc822-headers" in parts  # RET=HDRS: the headers only
    assert b"the body stays home" not in raw


# ---------------------------------------------------------------- sendmail's refused dict


@all_adapters
async def test_sendmail_refused_recipients(adapter: Adapter, exim: EximServer, token: str) -> None:
    recipients = ["good@example.test", "reject-x@example.test", "tempfail-y@example.test"]
    smtp = await adapter.open(exim.host, exim.port)
    refused = await adapter.call(
        smtp.sendmail, SENDER, recipients, f"Subject: {token}\r\n\r\nbody\r\n"
    )
    assert refused == {
        "reject-x@example.test": (550, b"<reject-x@example.test>: recipient rejected (test hook)"),
        "tempfail-y@example.test": (
            451,
            b"<tempfail-y@example.test>: temporary failure (test hook)",
        ),
    }
    assert await adapter.call(smtp.noop) == (250, b"OK")  # still in step
    assert await adapter.call(smtp.quit) == BYE
    trace, stored = split_trace(exim.wait_for_message(lambda m: token.encode() in m))
    assert trace["Envelope-to"] == "good@example.test"
    assert stored == f"Subject: {token}\n\nbody\n".encode()
    assert len([m for m in exim.messages() if token.encode() in m]) == 1
