"""Tests for :mod:`smtp_proto.message`: the documented ``send_message`` rules, then equivalence.

The equivalence property runs the stdlib's own ``smtplib.SMTP.send_message`` against a fake
server that records what it would hand to ``sendmail``, and requires :func:`prepare_message`
to produce the same envelope, bytes and options (or to raise the same exception type).
"""

from __future__ import annotations

import ast
import dataclasses
import email.generator
import email.policy
import email.utils
import random
import smtplib
import string
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import smtp_proto.message
from smtp_proto.message import INTERNATIONAL_MAIL_OPTIONS, PreparedMessage, prepare_message

Captured = tuple[str, list[str], bytes, tuple[str, ...]]

RESENT_DATE = "Mon, 20 Nov 2023 10:00:00 +0000"


# --- the stdlib reference --------------------------------------------------------------------


class _CapturingSMTP(smtplib.SMTP):
    """A never-connected ``smtplib.SMTP`` that records the arguments ``send_message`` passes on."""

    def __init__(self, *, smtputf8: bool) -> None:
        # An explicit local_hostname keeps the constructor from calling socket.getfqdn().
        super().__init__(local_hostname="localhost")
        self.does_esmtp = True
        self.esmtp_features = {"smtputf8": ""} if smtputf8 else {}
        self.captured: Captured | None = None

    def ehlo_or_helo_if_needed(self) -> None:
        """Pretend EHLO already happened; the features above stand for its reply."""

    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: Any,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Record the call instead of talking to a server; nobody is refused."""
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        self.captured = (from_addr, recipients, bytes(msg), tuple(mail_options))
        return {}


@contextmanager
def _reproducible_boundaries(seed: int = 0) -> Iterator[None]:
    """Make the generator's random MIME boundaries repeatable so two flattenings can be compared.

    ``email.generator`` draws boundaries from the module-level ``random``; give it a private,
    seeded generator for the duration (the global random state is left alone).
    """
    saved = vars(email.generator)["random"]
    setattr(email.generator, "random", random.Random(seed))  # noqa: B010
    try:
        yield
    finally:
        setattr(email.generator, "random", saved)  # noqa: B010


def stdlib_send(
    msg: Message[Any, Any],
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    mail_options: Sequence[str] = (),
    *,
    smtputf8: bool = True,
) -> Captured | Exception:
    """What the stdlib's ``send_message`` passes to ``sendmail``, or the exception it raises."""
    server = _CapturingSMTP(smtputf8=smtputf8)
    try:
        with _reproducible_boundaries():
            server.send_message(msg, from_addr, to_addrs, mail_options)
    except Exception as exc:
        return exc
    finally:
        server.close()
    assert server.captured is not None
    return server.captured


def ours(
    msg: Message[Any, Any],
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    mail_options: Sequence[str] = (),
) -> PreparedMessage | Exception:
    """:func:`prepare_message` under the same boundary seed, or the exception it raises."""
    try:
        with _reproducible_boundaries():
            return prepare_message(msg, from_addr, to_addrs, mail_options)
    except Exception as exc:
        return exc


def snapshot(msg: Message[Any, Any]) -> object:
    """A comparable picture of a message tree: headers, payloads and the identity of parts."""
    payload: object = msg.get_payload()
    if msg.is_multipart():
        payload = [
            (id(part), snapshot(part) if isinstance(part, Message) else part)
            for part in msg.get_payload()
        ]
    headers = [(name, str(value)) for name, value in msg.items()]
    return headers, msg.preamble, msg.epilogue, payload


def make_message(*headers: tuple[str, str], body: str = "Hello.\n") -> EmailMessage:
    """An ``EmailMessage`` (default policy) with the given headers, in order, and a text body."""
    msg = EmailMessage()
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    return msg


# --- the documented rules, one by one --------------------------------------------------------


def test_sender_field_wins_over_from() -> None:
    msg = make_message(("From", "Author <author@example.com>"), ("Sender", "sec@example.com"))
    msg["To"] = "rcpt@example.com"

    assert prepare_message(msg).from_addr == "sec@example.com"


def test_from_field_is_used_without_sender() -> None:
    msg = make_message(("From", '"Doe, Jane" <jane@example.com>'), ("To", "rcpt@example.com"))

    assert prepare_message(msg).from_addr == "jane@example.com"


def test_recipients_come_from_to_then_bcc_then_cc() -> None:
    msg = make_message(
        ("To", "Ann <ann@example.com>, bob@example.com"),
        ("Cc", "carl@example.com"),
        ("Bcc", "dora@example.com"),
        ("From", "me@example.com"),
    )

    assert prepare_message(msg).to_addrs == [
        "ann@example.com",
        "bob@example.com",
        "dora@example.com",
        "carl@example.com",
    ]


def test_single_resent_block_takes_over_the_envelope() -> None:
    msg = make_message(
        ("From", "orig@example.com"),
        ("To", "orig-rcpt@example.com"),
        ("Cc", "orig-cc@example.com"),
        ("Resent-Date", RESENT_DATE),
        ("Resent-From", "forwarder@example.com"),
        ("Resent-To", "new@example.com"),
        ("Resent-Cc", "new-cc@example.com"),
        ("Resent-Bcc", "hidden@example.com"),
    )

    prepared = prepare_message(msg)

    assert prepared.from_addr == "forwarder@example.com"
    assert prepared.to_addrs == ["new@example.com", "hidden@example.com", "new-cc@example.com"]


def test_resent_sender_wins_over_resent_from() -> None:
    msg = make_message(
        ("From", "orig@example.com"),
        ("Resent-Date", RESENT_DATE),
        ("Resent-From", "forwarder@example.com"),
        ("Resent-Sender", "agent@example.com"),
        ("Resent-To", "new@example.com"),
    )

    assert prepare_message(msg).from_addr == "agent@example.com"


def test_resent_fields_without_resent_date_are_ignored() -> None:
    msg = make_message(
        ("From", "orig@example.com"),
        ("To", "orig-rcpt@example.com"),
        ("Resent-From", "forwarder@example.com"),
        ("Resent-To", "new@example.com"),
    )

    prepared = prepare_message(msg)

    assert (prepared.from_addr, prepared.to_addrs) == (
        "orig@example.com",
        ["orig-rcpt@example.com"],
    )


@pytest.mark.parametrize(
    ("from_addr", "to_addrs"), [(None, None), ("me@example.com", ["you@example.com"])]
)
def test_two_resent_blocks_are_refused_even_with_explicit_addresses(
    from_addr: str | None, to_addrs: list[str] | None
) -> None:
    msg = make_message(
        ("From", "orig@example.com"),
        ("Resent-Date", RESENT_DATE),
        ("Resent-From", "first@example.com"),
        ("Resent-Date", "Tue, 21 Nov 2023 10:00:00 +0000"),
        ("Resent-From", "second@example.com"),
    )

    with pytest.raises(ValueError, match=r"more than one 'Resent-' header block"):
        prepare_message(msg, from_addr, to_addrs)


def test_bcc_is_a_recipient_but_never_transmitted() -> None:
    msg = make_message(
        ("From", "me@example.com"), ("To", "you@example.com"), ("Bcc", "secret@example.com")
    )

    prepared = prepare_message(msg)

    assert "secret@example.com" in prepared.to_addrs
    assert b"secret@example.com" not in prepared.data
    assert b"\r\nbcc:" not in prepared.data.lower()
    assert prepared.data.startswith(b"From: me@example.com\r\nTo: you@example.com\r\n")


def test_resent_bcc_is_a_recipient_but_never_transmitted() -> None:
    msg = make_message(
        ("From", "orig@example.com"),
        ("Resent-Date", RESENT_DATE),
        ("Resent-From", "forwarder@example.com"),
        ("Resent-Bcc", "secret@example.com"),
    )

    prepared = prepare_message(msg)

    assert prepared.to_addrs == ["secret@example.com"]
    assert b"secret@example.com" not in prepared.data
    assert b"Resent-From: forwarder@example.com\r\n" in prepared.data


def test_every_bcc_field_is_stripped_whichever_block_applies() -> None:
    # Both kinds go, resent or not, and so does every repetition of them.
    msg = Message()
    msg["From"] = "me@example.com"
    msg["Bcc"] = "b1@example.com"
    msg["BCC"] = "b2@example.com"
    msg["Resent-Bcc"] = "rb@example.com"

    data = prepare_message(msg, to_addrs=["x@example.com"]).data

    assert data == b"From: me@example.com\r\n\r\n"


def test_explicit_addresses_override_the_headers() -> None:
    msg = make_message(
        ("From", "me@example.com"), ("To", "you@example.com"), ("Bcc", "secret@example.com")
    )

    prepared = prepare_message(msg, "bounce@example.net", ["a@example.net", "b@example.net"])

    assert prepared.from_addr == "bounce@example.net"
    assert prepared.to_addrs == ["a@example.net", "b@example.net"]
    assert b"secret@example.com" not in prepared.data  # overriding does not resurrect Bcc


def test_a_str_to_addrs_is_one_recipient_not_a_list_to_parse() -> None:
    msg = make_message(("From", "me@example.com"), ("To", "you@example.com"))

    prepared = prepare_message(msg, to_addrs="a@example.net, b@example.net")

    assert prepared.to_addrs == ["a@example.net, b@example.net"]


def test_explicit_empty_addresses_are_respected() -> None:
    msg = make_message(("From", "me@example.com"), ("To", "you@example.com"))

    prepared = prepare_message(msg, from_addr="", to_addrs=[])

    assert (prepared.from_addr, prepared.to_addrs) == ("", [])


def test_ascii_message_keeps_the_callers_options_only() -> None:
    msg = make_message(("From", "me@example.com"), ("To", "you@example.com"))

    prepared = prepare_message(msg, mail_options=["SIZE=100", "BODY=7BIT"])

    assert prepared.international is False
    assert prepared.mail_options == ("SIZE=100", "BODY=7BIT")


def test_non_ascii_sender_makes_the_message_international() -> None:
    msg = make_message(("From", "Jörg <jörg@bücher.de>"), ("To", "you@example.com"), body="Grüße\n")

    prepared = prepare_message(msg, mail_options=("SIZE=100",))

    assert prepared.international is True
    assert prepared.from_addr == "jörg@bücher.de"
    assert prepared.mail_options == ("SIZE=100", "SMTPUTF8", "BODY=8BITMIME")
    assert INTERNATIONAL_MAIL_OPTIONS == ("SMTPUTF8", "BODY=8BITMIME")
    # With utf8 on, the header goes out as raw UTF-8 instead of RFC 2047 encoded words.
    assert "From: Jörg <jörg@bücher.de>\r\n".encode() in prepared.data


@pytest.mark.parametrize("field", ["To", "Cc", "Bcc"])
def test_any_non_ascii_header_recipient_makes_the_message_international(field: str) -> None:
    msg = make_message(("From", "me@example.com"), (field, "δοκιμή@παράδειγμα.δοκιμή"))

    prepared = prepare_message(msg)

    assert prepared.international is True
    assert prepared.to_addrs == ["δοκιμή@παράδειγμα.δοκιμή"]
    assert prepared.mail_options == ("SMTPUTF8", "BODY=8BITMIME")


def test_non_ascii_explicit_recipient_makes_the_message_international() -> None:
    msg = make_message(("From", "me@example.com"), ("To", "you@example.com"))

    assert prepare_message(msg, to_addrs="用户@例子.广告").international is True


def test_non_ascii_display_name_alone_is_not_international() -> None:
    # Only envelope addresses count; a display name can be RFC 2047 encoded instead.
    msg = make_message(("From", "Jörg <joerg@example.com>"), ("To", "you@example.com"))

    prepared = prepare_message(msg)

    assert prepared.international is False
    assert prepared.mail_options == ()
    assert b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\n" in prepared.data


def test_international_message_under_compat32_is_a_type_error() -> None:
    # compat32, the policy of a plain Message, has no utf8 setting to switch on.
    msg = Message()
    msg["From"] = "jörg@bücher.de"

    with pytest.raises(TypeError, match="utf8"):
        prepare_message(msg, to_addrs=["you@example.com"])


def test_data_uses_crlf_line_endings_only() -> None:
    msg = make_message(
        ("From", "me@example.com"), ("To", "you@example.com"), body="one\ntwo\r\nthree\n"
    )

    data = prepare_message(msg).data

    assert data.endswith(b"\r\n\r\none\r\ntwo\r\nthree\r\n")
    assert data.count(b"\n") == data.count(b"\r\n")


def test_from_lines_in_the_body_are_quoted_only_when_not_international() -> None:
    # The ASCII path flattens with the generator's own default, which quotes "From " lines even
    # though the default policy says mangle_from_=False; the utf8 path follows the policy.
    ascii_msg = make_message(("From", "me@example.com"), body="From here on\n")
    intl_msg = make_message(("From", "mé@example.com"), body="From here on\n")

    assert prepare_message(ascii_msg, to_addrs=["x@example.com"]).data.endswith(
        b"\r\n>From here on\r\n"
    )
    assert prepare_message(intl_msg, to_addrs=["x@example.com"]).data.endswith(
        b"\r\nFrom here on\r\n"
    )


def test_missing_from_gives_the_literal_address_none_like_smtplib() -> None:
    msg = make_message(("To", "you@example.com"))

    assert prepare_message(msg).from_addr == "None"


def test_from_field_without_any_address_is_read_as_smtplib_reads_it() -> None:
    """smtplib takes the first of ``getaddresses``' answer for an empty From: an email package
    that finds no address there makes that an IndexError; one with the strict parser (CPython
    gh-102988: 3.13, and security releases of older versions) finds an empty address, the null
    sender."""
    msg = Message()
    msg["From"] = ""

    if email.utils.getaddresses([""]):
        assert email.utils.getaddresses([""]) == [("", "")]
        assert prepare_message(msg, to_addrs=["you@example.com"]).from_addr == ""
    else:
        with pytest.raises(IndexError, match="From"):
            prepare_message(msg, to_addrs=["you@example.com"])


def test_callers_message_is_left_unchanged() -> None:
    msg = make_message(
        ("From", "me@example.com"),
        ("To", "you@example.com"),
        ("Bcc", "secret@example.com"),
        ("Resent-Bcc", "other@example.com"),
    )
    msg.add_alternative("<p>Hello.</p>", subtype="html")
    msg.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    inner = msg.get_payload(0)
    assert isinstance(inner, Message)
    before = snapshot(msg)

    prepared = prepare_message(msg)

    assert snapshot(msg) == before
    assert msg["Bcc"] == "secret@example.com"
    # Flattening invents boundaries for both multiparts, but only inside our copy.
    assert msg.get_boundary() is None
    assert inner.get_boundary() is None
    assert b"multipart/alternative" in prepared.data


def test_prepared_message_is_immutable() -> None:
    prepared = prepare_message(make_message(("From", "me@example.com"), ("To", "x@example.com")))

    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.from_addr = "other@example.com"  # type: ignore[misc]


def test_module_does_no_io() -> None:
    source = Path(smtp_proto.message.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module.split(".")[0])

    forbidden = {"socket", "ssl", "select", "selectors", "asyncio", "trio", "threading", "time"}
    assert imported, "the import scan found nothing; it is not looking at the module"
    assert not imported & forbidden


# --- equivalence with the stdlib over generated messages -------------------------------------

NON_ASCII_LETTERS = "öüßéçñøδλж日本"
ADDRESS_FIELDS = ("From", "Sender", "To", "Cc", "Bcc")
RESENT_FIELDS = tuple(f"Resent-{name}" for name in ADDRESS_FIELDS)
POLICIES: dict[str, email.policy.Policy] = {
    "default": email.policy.default,
    "SMTP": email.policy.SMTP,
    "SMTPUTF8": email.policy.SMTPUTF8,
}

atoms = st.text(
    alphabet=string.ascii_letters + string.digits + "_+-" + NON_ASCII_LETTERS,
    min_size=1,
    max_size=6,
)
# Dot-atoms only: a stray dot makes the stdlib's header parser crash while *building* the
# message (TypeError in get_mailbox), which says nothing about send_message.
local_parts = st.lists(atoms, min_size=1, max_size=2).map(".".join)
domains = st.sampled_from(["example.com", "mail.example.org", "bücher.de", "例え.jp", "localhost"])
addr_specs = st.builds("{}@{}".format, local_parts, domains)
display_names = st.text(alphabet=string.ascii_letters + " " + NON_ASCII_LETTERS, max_size=10)


@st.composite
def mailboxes(draw: st.DrawFn) -> str:
    """One mailbox written the ways people write them: bare, bracketed, named, quoted-named."""
    addr = draw(addr_specs)
    name = draw(display_names).strip()
    shape = draw(st.sampled_from(["bare", "angle", "named", "quoted"]))
    if shape == "bare" or (shape == "named" and not name):
        return addr
    if shape == "angle":
        return f"<{addr}>"
    if shape == "named":
        return f"{name} <{addr}>"
    return f'"{name}" <{addr}>'


address_lists = st.one_of(
    st.lists(mailboxes(), min_size=1, max_size=3).map(", ".join),
    st.sampled_from(["", "undisclosed-recipients:;", "Team: a@example.com, b@example.com;"]),
)


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A random header set: address fields, Resent- fields, zero to two Resent-Dates, Subject."""
    names = st.sampled_from(ADDRESS_FIELDS + RESENT_FIELDS)
    headers = draw(st.lists(st.tuples(names, address_lists), max_size=8))
    headers += [("Resent-Date", RESENT_DATE)] * draw(st.sampled_from([0, 0, 1, 1, 2]))
    subject = st.text(alphabet=string.ascii_letters + " " + NON_ASCII_LETTERS, max_size=20)
    headers.append(("Subject", draw(subject)))
    return draw(st.permutations(headers))


bodies = st.lists(
    st.one_of(
        st.sampled_from(["From the start", "From", ">From", ".", "", "Grüße, Jörg"]),
        st.text(alphabet=string.printable.replace("\r", "").replace("\n", "") + "äé", max_size=30),
    ),
    max_size=5,
).map("\n".join)


@dataclass(frozen=True)
class MessageRecipe:
    """How to build one message, so identical fresh copies can go to the stdlib and to us."""

    policy: str  # a key of POLICIES, or "compat32" for the legacy Message / MIME classes
    headers: tuple[tuple[str, str], ...]
    body: str
    shape: str  # "text", "alternative" or "mixed" (a multipart nested in a multipart)

    def build(self) -> Message[Any, Any]:
        """A new message from the recipe; headers a policy rejects (a second To...) are skipped."""
        msg = self._build_compat32() if self.policy == "compat32" else self._build_email()
        for name, value in self.headers:
            try:
                msg[name] = value
            except ValueError:
                continue
        return msg

    def _build_email(self) -> Message[Any, Any]:
        msg = EmailMessage(policy=POLICIES[self.policy])
        msg.set_content(self.body)
        if self.shape != "text":
            msg.add_alternative(f"<pre>{self.body}</pre>", subtype="html")
        if self.shape == "mixed":
            msg.add_attachment(b"\x00data", maintype="application", subtype="octet-stream")
        return msg

    def _build_compat32(self) -> Message[Any, Any]:
        if self.shape == "text":
            return MIMEText(self.body, "plain", "utf-8")
        alternative = MIMEMultipart("alternative")
        alternative.attach(MIMEText(self.body, "plain", "utf-8"))
        alternative.attach(MIMEText(f"<pre>{self.body}</pre>", "html", "utf-8"))
        if self.shape == "alternative":
            return alternative
        mixed = MIMEMultipart("mixed")
        mixed.attach(alternative)
        return mixed


recipes = st.builds(
    MessageRecipe,
    policy=st.sampled_from(["compat32", *POLICIES]),
    headers=header_lists().map(tuple),
    body=bodies,
    shape=st.sampled_from(["text", "text", "alternative", "mixed"]),
)
explicit_from = st.one_of(st.none(), st.none(), addr_specs, st.just(""))
explicit_to = st.one_of(
    st.none(),
    st.none(),
    addr_specs,
    st.lists(addr_specs, max_size=3),
    st.lists(addr_specs, max_size=3).map(tuple),
)
caller_options = st.sampled_from([(), ("SIZE=1000",), ["BODY=7BIT", "SIZE=5"], ("SMTPUTF8",)])


def _assert_same_outcome(
    expected: Captured | Exception,
    actual: PreparedMessage | Exception,
    caller_mail_options: Sequence[str],
) -> None:
    """Ours must equal what the stdlib hands to sendmail, or fail with the same exception type."""
    if isinstance(expected, Exception):
        assert isinstance(actual, Exception), f"stdlib raised {expected!r}, we returned {actual}"
        assert type(actual) is type(expected), (actual, expected)
        return
    assert not isinstance(actual, Exception), f"we raised {actual!r}, stdlib sent {expected}"
    assert (actual.from_addr, actual.to_addrs, actual.data, actual.mail_options) == expected
    assert actual.international == (actual.mail_options != tuple(caller_mail_options))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recipe=recipes,
    from_addr=explicit_from,
    to_addrs=explicit_to,
    mail_options=caller_options,
)
def test_prepare_message_matches_stdlib_send_message(
    recipe: MessageRecipe,
    from_addr: str | None,
    to_addrs: str | Sequence[str] | None,
    mail_options: Sequence[str],
) -> None:
    theirs = recipe.build()
    mine = recipe.build()
    before = snapshot(mine)

    expected = stdlib_send(theirs, from_addr, to_addrs, mail_options)
    actual = ours(mine, from_addr, to_addrs, mail_options)

    _assert_same_outcome(expected, actual, mail_options)
    assert snapshot(mine) == before
    event(
        f"stdlib raised {type(expected).__name__}"
        if isinstance(expected, Exception)
        else f"sent, international={expected[3] != tuple(mail_options)}"
    )
    if isinstance(actual, PreparedMessage):
        # `international` is exactly the stdlib's reason to demand SMTPUTF8 from the server.
        refused = stdlib_send(recipe.build(), from_addr, to_addrs, mail_options, smtputf8=False)
        assert isinstance(refused, smtplib.SMTPNotSupportedError) == actual.international


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_message(("From", "me@example.com"), ("To", "you@example.com")),
        lambda: make_message(("Sender", "jörg@bücher.de"), ("Cc", "x@example.com")),
        lambda: MessageRecipe(
            "compat32",
            (("From", "Jörg <j@example.com>"), ("To", "a@example.com")),
            "Grüße",
            "mixed",
        ).build(),
        lambda: make_message(("From", ""), ("To", "you@example.com")),
    ],
    ids=["ascii", "international", "compat32-multipart", "empty-from"],
)
def test_prepare_message_matches_stdlib_on_fixed_examples(
    build: Callable[[], Message[Any, Any]],
) -> None:
    # Pinned cases that the property may or may not happen to draw on a given run.
    _assert_same_outcome(stdlib_send(build()), ours(build()), ())
