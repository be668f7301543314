"""``smtp_proto.proxy`` without sockets: ``Proxy`` (URL parsing, what it refuses, what it
shows) and the handshake operation ``tunnel_gen`` driven by hand.

The bytes the client sends are checked against encoders written from the RFCs
(``tests/proxy_wire.py``: 1928 SOCKS5, 1929 its passwords, 9110 CONNECT, 7617 Basic), not
against the libraries the module uses.  The proxy's answers are cut into reads at every
point: what the handshake gives back, and how far it reads, must not depend on the cuts.
"""

from __future__ import annotations

import itertools
import string
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from smtp_proto import RECEIVE, Client
from smtp_proto.errors import (
    ProxyAuthenticationError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyTargetUnreachableError,
    ProxyTimeoutError,
)
from smtp_proto.proxy import Proxy, ProxyScheme, as_proxy, open_tunnel, tunnel_gen
from tests.proxy_wire import (
    authority,
    basic,
    error_texts,
    http_head,
    request_head,
    rfc1929_request,
    socks5_connect,
    socks5_offer,
    socks5_reply,
)

pytest.importorskip("socksio", reason="the proxy extra: pip install 'smtp-proto[proxy]'")
pytest.importorskip("h11", reason="the proxy extra: pip install 'smtp-proto[proxy]'")

TARGET, PORT = "mail.example.test", 25
USER, PASSWORD = "proxy-user", "Sesame-42"
#: A proxy answer's head, the most the client takes (``smtp_proto.proxy``).
HEAD_LIMIT = 16 * 1024

# ---------------------------------------------------------------- driving the handshake


@dataclass
class Run:
    """What one handshake did: each write, how many reads it took, and how it ended."""

    writes: list[bytes]
    reads: int
    early: bytes | None = None  # what it returned: the bytes after the proxy's answer
    error: ProxyError | None = None


def run(proxy: Proxy, pieces: Sequence[bytes], host: str = TARGET, port: int = PORT) -> Run:
    """Drive ``tunnel_gen``: each read takes the next piece, then ``b""`` (EOF)."""
    operation = tunnel_gen(proxy, host, port)
    done = Run([], 0)
    value: Any = None
    while True:
        try:
            request = operation.send(value)
        except StopIteration as end:
            done.early = end.value
            return done
        except ProxyError as exc:
            done.error = exc
            return done
        value = None
        if request is RECEIVE:
            value = pieces[done.reads] if done.reads < len(pieces) else b""
            done.reads += 1
        else:
            assert isinstance(request, bytes), request
            done.writes.append(request)


def fails(proxy: Proxy, pieces: Sequence[bytes], host: str = TARGET) -> ProxyError:
    """The error the handshake ends with."""
    done = run(proxy, pieces, host)
    assert done.error is not None, f"the handshake succeeded: {done}"
    return done.error


def cut(data: bytes, points: Sequence[int]) -> list[bytes]:
    """``data`` in pieces, cut at ``points`` (none empty: an empty read is the end)."""
    edges = [0, *sorted({p for p in points if 0 < p < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def every_cut(data: bytes) -> Iterator[list[bytes]]:
    """``data`` whole, cut once at each point, and a byte at a time."""
    yield [data]
    for point in range(1, len(data)):
        yield cut(data, [point])
    yield [bytes([b]) for b in data]


def reads_needed(pieces: Sequence[bytes], size: int) -> int:
    """How many of ``pieces`` it takes to hold the first ``size`` bytes."""
    total = 0
    for count, piece in enumerate(pieces, 1):
        total += len(piece)
        if total >= size:
            return count
    raise AssertionError("the pieces are shorter than the answer")


def check_split(proxy: Proxy, answer: bytes, after: bytes, pieces: list[bytes]) -> None:
    """The handshake over ``answer + after`` cut into ``pieces`` reads exactly as far as the
    piece that ends the answer, returns the rest of what it read, and writes what it writes
    when the answer comes whole."""
    whole = run(proxy, [answer])
    assert whole.error is None and whole.early == b"", whole
    done = run(proxy, pieces)
    assert done.error is None, done.error
    used = reads_needed(pieces, len(answer))
    assert done.reads == used
    assert done.early == b"".join(pieces[:used])[len(answer) :]
    assert done.writes == whole.writes


def socks5(username: str | None = None, password: str | None = None) -> Proxy:
    return Proxy("socks5", "proxy.example.test", 1080, username, password)


def http(username: str | None = None, password: str | None = None) -> Proxy:
    return Proxy("http", "proxy.example.test", 3128, username, password)


# ---------------------------------------------------------------- Proxy.from_url

labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
names = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(str)
hosts = st.one_of(names, ipv4s, ipv6s)
#: Text without lone surrogates (which UTF-8 cannot carry).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def url_of(scheme: str, host: str, port: int | None, userinfo: str | None) -> str:
    where = f"[{host}]" if ":" in host else host
    user = "" if userinfo is None else f"{userinfo}@"
    return f"{scheme}://{user}{where}" + ("" if port is None else f":{port}")


def valid_credentials(scheme: str, username: str, password: str) -> bool:
    """RFC 1929 (1 to 255 bytes each) or RFC 7617 (no ':' in the user-id, no CTL in either)."""
    if scheme == "socks5":
        return all(0 < len(text.encode()) < 256 for text in (username, password))
    controls = {chr(c) for c in range(32)} | {"\x7f"}
    return ":" not in username and not controls & set(username + password)


@given(
    scheme=st.sampled_from(["socks5", "socks5h", "http", "SOCKS5", "Http"]),
    host=hosts,
    port=st.none() | st.integers(1, 65535),
)
def test_a_url_without_credentials_parses_to_its_fields(
    scheme: str, host: str, port: int | None
) -> None:
    proxy = Proxy.from_url(url_of(scheme, host, port, None))
    expected: ProxyScheme = "http" if scheme.lower() == "http" else "socks5"
    default = 80 if expected == "http" else 1080
    assert proxy == Proxy(expected, host, default if port is None else port)
    assert Proxy.from_url(str(proxy)) == proxy  # str() is a URL for it
    assert Proxy.from_url(url_of(scheme, host, port, None) + "/") == proxy


@given(scheme=st.sampled_from(["socks5", "http"]), host=hosts, username=texts, password=texts)
@example(scheme="http", host="h", username="us@er", password="p:a/s?s#w@rd%")
@example(scheme="socks5", host="h", username="ü", password="€")
@example(scheme="http", host="h", username="", password="")
def test_percent_escaped_credentials_parse_or_are_refused_by_the_rules(
    scheme: str, host: str, username: str, password: str
) -> None:
    """Any text, percent-escaped, comes back as it was when the scheme's rules allow it,
    else is refused (``test_no_refusal_shows_the_password``: without showing it)."""
    url = url_of(scheme, host, 1, f"{quote(username, safe='')}:{quote(password, safe='')}")
    if valid_credentials(scheme, username, password):
        proxy = Proxy.from_url(url)
        assert (proxy.scheme, proxy.host, proxy.port) == (scheme, host, 1)
        assert (proxy.username, proxy.password) == (username, password)
    else:
        with pytest.raises(ValueError):
            Proxy.from_url(url)


@given(scheme=st.sampled_from(["socks5", "http"]), host=hosts, port=st.integers(1, 65535))
def test_str_and_repr_never_show_the_password(scheme: Any, host: str, port: int) -> None:
    proxy = Proxy(scheme, host, port, USER, PASSWORD)
    where = f"[{host}]" if ":" in host else host
    assert str(proxy) == f"{scheme}://{USER}:****@{where}:{port}"
    assert repr(proxy) == (
        f"Proxy(scheme={scheme!r}, host={host!r}, port={port!r}, username={USER!r})"
    )
    assert PASSWORD not in f"{proxy} {proxy!r} {proxy!s}"


@pytest.mark.parametrize(
    "url",
    [
        "socks4://h:1080",
        "https://h:443",
        "ftp://h:21",
        "h:1080",
        "//h:1080",
        "socks5:/h:1080",
        "socks5://h:0",
        "socks5://h:65536",
        "socks5://h:-1",
        "socks5://h:+80",
        "socks5://h:x",
        "socks5://h:1:2",
        "socks5://h:1080/path",
        "socks5://h:1080?query=1",
        "socks5://h:1080#fragment",
        "socks5://:1080",
        "socks5://",
        "socks5://user:pw@:1080",
        "socks5://[::1:1080",
        "socks5://[not-an-address]:1080",
        "socks5://ho st:1080",
        "socks5://ho\nst:1080",
        "socks5://ho\tst:1080",
        "socks5://host:10\r80",
        " socks5://host:1080",
        "socks5://user@h:1080",  # a username without a password
        "socks5://:pw@h:1080",  # SOCKS5: an empty username
        "socks5://user:@h:1080",  # SOCKS5: an empty password
        f"socks5://{'u' * 256}:pw@h:1080",  # SOCKS5: 256 bytes
        f"socks5://user:{'é' * 128}@h:1080",  # SOCKS5: 256 bytes once in UTF-8
        "http://us%3Aer:pw@h:3128",  # HTTP: ':' in the user-id
        "http://user:p%0Dw@h:3128",  # HTTP: a control character
        "http://user:p%7Fw@h:3128",
        "socks5://user:p%FFw@h:1080",  # not UTF-8
        "socks5://user:p%ED%A0%80w@h:1080",  # a lone surrogate, in UTF-8's form
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"proxy|SOCKS5|HTTP"):
        Proxy.from_url(url)


#: A password holding every delimiter a URL has, what the rules refuse, and a marker found
#: nowhere else in the URL.
delimited_passwords = st.lists(
    st.sampled_from(
        ["/", "?", "#", "@", ":", "[", "]", "%", "%zz", "%FF", "%0D", " ", "\n", "\udc80", "Q"]
    ),
    max_size=8,
).map(lambda parts: "QZ" + "".join(parts))


@given(
    prefix=st.sampled_from(["socks5://", "http://", "socks5:/", "", "socks5:", "SOCKS5://"]),
    user=st.sampled_from(["user", "us%3Aer", "", "u" * 256]),
    password=delimited_passwords,
    rest=st.sampled_from(["h:1080", "h", "h:x", "[::1]:1", "[::1", "h:1/x", "h:99999", "h:0"]),
)
@example(prefix="socks5:/", user="user", password="QZ://", rest="h:1080")  # '://' in the password
def test_no_refusal_shows_the_password(prefix: str, user: str, password: str, rest: str) -> None:
    """However the URL breaks (a delimiter left raw in the password, say) and whatever
    rule it breaks, the error message shows no part of the password."""
    try:
        proxy = Proxy.from_url(f"{prefix}{user}:{password}@{rest}")
    except ValueError as exc:
        assert "QZ" not in str(exc), str(exc)
    else:
        assert proxy.password is not None and proxy.password.startswith("QZ")
        assert "QZ" not in f"{proxy} {proxy!r}"


@pytest.mark.parametrize(
    "arguments",
    [
        ("socks5h", "h", 1),
        ("socks4", "h", 1),
        ("socks5", "", 1),
        ("socks5", "a/b", 1),
        ("socks5", "a@b", 1),
        ("socks5", "a b", 1),
        ("socks5", "a\0b", 1),
        ("socks5", "h", 0),
        ("socks5", "h", 65536),
        ("socks5", "h", 1, "user", None),
        ("socks5", "h", 1, None, "pw"),
        ("socks5", "h", 1, "", "pw"),
        ("socks5", "h", 1, "user", "x" * 256),
        ("socks5", "h", 1, "user", "\udc80"),
        ("http", "h", 1, "us:er", "pw"),
        ("http", "h", 1, "user", "p\r\nw"),
        ("http", "h", 1, "user", "\udc80"),
    ],
)
def test_bad_proxies_are_refused_at_construction(arguments: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError) as refused:
        Proxy(*arguments)
    if len(arguments) == 5 and arguments[4]:
        assert arguments[4] not in str(refused.value)


def test_as_proxy_takes_a_url_a_proxy_or_none() -> None:
    proxy = socks5(USER, PASSWORD)
    assert as_proxy(None) is None
    assert as_proxy(proxy) is proxy
    assert as_proxy("http://h:3128") == Proxy("http", "h", 3128)
    with pytest.raises(TypeError):
        as_proxy(("socks5", "h", 1080))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        as_proxy("socks4://h:1080")


@pytest.mark.parametrize(("url", "module"), [("socks5://h:1", "socksio"), ("http://h:1", "h11")])
def test_a_missing_extra_is_an_import_error_naming_it(
    url: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an import finds for a missing one
    with pytest.raises(ImportError, match=r"smtp-proto\[proxy\]"):
        as_proxy(url)


# ---------------------------------------------------------------- SOCKS5: the bytes sent

socks5_proxies = st.sampled_from([socks5(), socks5(USER, PASSWORD)])
ports = st.integers(1, 65535)


@given(host=st.one_of(ipv4s, ipv6s, names), port=ports, proxy=socks5_proxies)
def test_socks5_sends_rfc1928_and_rfc1929(host: str, port: int, proxy: Proxy) -> None:
    with_password = proxy.username is not None
    answers = (b"\x05\x02" + b"\x01\x00") if with_password else b"\x05\x00"
    done = run(proxy, [answers + socks5_reply()], host, port)
    expected = [socks5_offer(with_password)]
    if with_password:
        expected.append(rfc1929_request(USER, PASSWORD))
    assert done.writes == [*expected, socks5_connect(host, port)]
    assert done.early == b""


@given(username=texts, password=texts)
def test_the_rfc1929_request_carries_any_credentials(username: str, password: str) -> None:
    assume(valid_credentials("socks5", username, password))
    proxy = socks5(username, password)
    done = run(proxy, [b"\x05\x02\x01\x00" + socks5_reply()])
    assert done.writes[1] == rfc1929_request(username, password)


def test_a_socks5_proxy_may_choose_no_authentication_when_offered_a_password() -> None:
    done = run(socks5(USER, PASSWORD), [b"\x05\x00" + socks5_reply()])
    assert done.writes == [socks5_offer(True), socks5_connect(TARGET, PORT)]


@pytest.mark.parametrize(
    ("name", "idna"),
    [  # RFC 3490 / 3492 (Punycode) as the proxy gets them: ASCII only
        ("bücher.example", "xn--bcher-kva.example"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("mail.example.test.", "mail.example.test."),
    ],
)
def test_names_go_to_the_proxy_in_idna(name: str, idna: str) -> None:
    done = run(socks5(), [b"\x05\x00" + socks5_reply()], name)
    assert done.writes[1] == socks5_connect(idna, PORT)
    done = run(http(), [b"HTTP/1.1 200 OK\r\n\r\n"], name)
    line, headers = request_head(done.writes[0])
    assert line == f"CONNECT {idna}:{PORT} HTTP/1.1"
    assert headers["host"] == [f"{idna}:{PORT}"]


@pytest.mark.parametrize(
    "host",
    [
        "",
        "mail.example.test\r\nX-Injected: 1",
        "mail example",
        "mail/example",
        "user@mail.example",
        "mail.example:25",
        "[::1]",
        "fe80::1%eth0",  # a scope means nothing to the proxy
        "a" * 64 + ".example",  # a label over 63 bytes
        ".".join(["a" * 60] * 5),  # over 255 bytes
        "a..b",
    ],
)
@pytest.mark.parametrize("proxy", [socks5(), http()], ids=["socks5", "http"])
def test_a_bad_mail_server_name_is_refused_before_anything_is_sent(host: str, proxy: Proxy) -> None:
    operation = tunnel_gen(proxy, host, PORT)
    with pytest.raises(ValueError, match=r"mail server name|scope"):
        next(operation)


# ---------------------------------------------------------------- SOCKS5: the answers

bound_addresses = st.one_of(
    st.binary(min_size=4, max_size=4).map(lambda a: b"\x01" + a),
    st.binary(min_size=16, max_size=16).map(lambda a: b"\x04" + a),
    st.text(string.ascii_letters + string.digits + ".-", max_size=255).map(
        lambda n: b"\x03" + bytes([len(n)]) + n.encode()
    ),
)


@st.composite
def socks5_exchanges(draw: st.DrawFn) -> tuple[Proxy, bytes]:
    """A proxy and all it answers in a successful handshake: method (with the password's
    status when it chose passwords), then the reply to CONNECT with any bound address."""
    proxy = draw(socks5_proxies)
    chosen = draw(st.sampled_from([0, 2])) if proxy.username else 0
    answer = bytes([5, chosen]) + (b"\x01\x00" if chosen == 2 else b"")
    return proxy, answer + socks5_reply(0, draw(bound_addresses), draw(ports))


@given(exchange=socks5_exchanges(), after=st.binary(max_size=40), data=st.data())
def test_socks5_answers_cut_anywhere_give_the_same_result(
    exchange: tuple[Proxy, bytes], after: bytes, data: st.DataObject
) -> None:
    proxy, answer = exchange
    whole = answer + after
    points = data.draw(st.lists(st.integers(1, max(1, len(whole) - 1)), max_size=12))
    check_split(proxy, answer, after, cut(whole, points))


@pytest.mark.parametrize("proxy", [socks5(), socks5(USER, PASSWORD)], ids=["none", "password"])
def test_socks5_answers_cut_at_every_point(proxy: Proxy) -> None:
    methods = b"\x05\x02\x01\x00" if proxy.username else b"\x05\x00"
    answer = methods + socks5_reply(0, b"\x03\x0bproxy.local")
    after = b"220 mail.example.test ESMTP\r\n"
    for pieces in every_cut(answer + after):
        check_split(proxy, answer, after, pieces)


@pytest.mark.parametrize("proxy", [socks5(), socks5(USER, PASSWORD)], ids=["none", "password"])
def test_socks5_closed_before_its_answer_ends(proxy: Proxy) -> None:
    methods = b"\x05\x02\x01\x00" if proxy.username else b"\x05\x00"
    answer = methods + socks5_reply(0, b"\x04" + bytes(16))
    for size in range(len(answer)):
        error = fails(proxy, [answer[:size]] if size else [])
        assert type(error) is ProxyProtocolError, (size, error)
        assert "closed" in str(error)


RFC1928_WORDS = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


@pytest.mark.parametrize("code", range(1, 256))
def test_every_socks5_reply_code_is_its_error(code: int) -> None:
    error = fails(socks5(), [b"\x05\x00" + socks5_reply(code)])
    expected = ProxyTargetUnreachableError if code in (3, 4, 5, 6) else ProxyRefusedError
    assert type(error) is expected
    assert isinstance(error, ProxyRefusedError)  # for the type checker
    assert error.code == code
    assert error.reason == RFC1928_WORDS.get(code, "unassigned SOCKS5 reply code")
    assert str(code) in str(error)


@pytest.mark.parametrize("status", range(1, 256))
def test_every_rfc1929_failure_is_an_authentication_error(status: int) -> None:
    error = fails(socks5(USER, PASSWORD), [b"\x05\x02", bytes([1, status])])
    assert type(error) is ProxyAuthenticationError
    assert error.code == status


@pytest.mark.parametrize("proxy", [socks5(), socks5(USER, PASSWORD)], ids=["none", "password"])
def test_no_acceptable_method_is_an_authentication_error(proxy: Proxy) -> None:
    error = fails(proxy, [b"\x05\xff"])
    assert type(error) is ProxyAuthenticationError
    assert error.code == 0xFF


@pytest.mark.parametrize(
    ("proxy", "method"),
    [(socks5(), 2), (socks5(), 1), (socks5(), 3), (socks5(), 0x80), (socks5(USER, PASSWORD), 1)],
)
def test_a_method_not_offered_is_a_protocol_error(proxy: Proxy, method: int) -> None:
    done = run(proxy, [bytes([5, method]) + b"\x01\x00" + socks5_reply()])
    assert type(done.error) is ProxyProtocolError
    assert len(done.writes) == 1  # nothing after the offer: no password, no CONNECT


@pytest.mark.parametrize(
    "answers",
    [
        [b"\x04\x00"],  # a SOCKS4 reply
        [b"HTTP/1.1 400 Bad Request\r\n\r\n"],  # an HTTP proxy
        [b"220 mail.example.test ESMTP\r\n"],  # a mail server
        [b"\x00\x5a"],
        [b"\x05\x00", b"\x04\x00\x00\x01\x7f\x00\x00\x01\x00\x19"],  # the reply's VER
        [b"\x05\x02", b"\x05\x00"],  # the RFC 1929 status's VER (5: a common mistake)
        [b"\x05\x02", b"\x00\x00"],
    ],
)
def test_socks5_garbage_is_a_protocol_error(answers: list[bytes]) -> None:
    assert type(fails(socks5(USER, PASSWORD), answers)) is ProxyProtocolError


@pytest.mark.parametrize("atyp", [0, 2, *range(5, 256)])
def test_an_unknown_address_type_is_a_protocol_error(atyp: int) -> None:
    done = run(socks5(), [b"\x05\x00" + bytes([5, 0, 0, atyp]) + bytes(20)])
    assert type(done.error) is ProxyProtocolError
    assert done.reads == 1


# ---------------------------------------------------------------- HTTP CONNECT: the bytes sent


@given(host=st.one_of(ipv4s, ipv6s, names), port=ports)
def test_http_connect_sends_rfc9110_authority_form(host: str, port: int) -> None:
    done = run(http(), [b"HTTP/1.1 200 Connection established\r\n\r\n"], host, port)
    [write] = done.writes
    line, headers = request_head(write)
    assert line == f"CONNECT {authority(host, port)} HTTP/1.1"
    assert headers["host"] == [authority(host, port)]
    assert "proxy-authorization" not in headers
    assert not {"content-length", "transfer-encoding"} & set(headers)


@given(username=texts, password=texts)
@example(username="Aladdin", password="open sesame")  # RFC 7617 section 2
@example(username="test", password="123\N{POUND SIGN}")  # RFC 7617 section 2.1
def test_http_basic_credentials_are_rfc7617(username: str, password: str) -> None:
    assume(valid_credentials("http", username, password))
    done = run(http(username, password), [b"HTTP/1.1 200 OK\r\n\r\n"])
    _, headers = request_head(done.writes[0])
    assert headers["proxy-authorization"] == [basic(username, password)]


def test_rfc7617_examples() -> None:
    """The encoder of these tests against the RFC's own examples."""
    assert basic("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert basic("test", "123\N{POUND SIGN}") == "Basic dGVzdDoxMjPCow=="


# ---------------------------------------------------------------- HTTP CONNECT: the answers

tokens = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
reasons = st.text(string.ascii_letters + string.digits + " .-", max_size=30)
fields = st.lists(
    st.tuples(tokens, st.text(string.ascii_letters + string.digits + " ;=/", max_size=30)),
    max_size=5,
)


@st.composite
def http_answers(draw: st.DrawFn) -> bytes:
    """Informational heads, then a 2xx with any reason and fields."""
    early = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    final = http_head(draw(st.integers(200, 299)), draw(reasons), draw(fields))
    return b"".join(http_head(status, "Info") for status in early) + final


@given(answer=http_answers(), after=st.binary(max_size=40), data=st.data())
def test_http_answers_cut_anywhere_give_the_same_result(
    answer: bytes, after: bytes, data: st.DataObject
) -> None:
    whole = answer + after
    points = data.draw(st.lists(st.integers(1, max(1, len(whole) - 1)), max_size=12))
    check_split(http(USER, PASSWORD), answer, after, cut(whole, points))


def test_http_answers_cut_at_every_point() -> None:
    answer = http_head(100, "Continue") + http_head(200, "Connection established", [("Via", "p")])
    after = b"220 mail.example.test ESMTP\r\n"
    for pieces in every_cut(answer + after):
        check_split(http(), answer, after, pieces)


def test_http_closed_before_its_answer_ends() -> None:
    answer = http_head(200, "OK", [("Proxy-Agent", "test")])
    for size in range(len(answer)):
        error = fails(http(), [answer[:size]] if size else [])
        assert type(error) is ProxyProtocolError, (size, error)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (300, ProxyRefusedError),
        (302, ProxyRefusedError),
        (400, ProxyRefusedError),
        (401, ProxyAuthenticationError),
        (403, ProxyRefusedError),
        (404, ProxyRefusedError),
        (405, ProxyRefusedError),
        (407, ProxyAuthenticationError),
        (408, ProxyRefusedError),
        (429, ProxyRefusedError),
        (500, ProxyTargetUnreachableError),
        (501, ProxyRefusedError),
        (502, ProxyTargetUnreachableError),
        (503, ProxyTargetUnreachableError),
        (504, ProxyTargetUnreachableError),
        (505, ProxyRefusedError),
        (511, ProxyRefusedError),
        (599, ProxyRefusedError),
    ],
)
def test_http_statuses_are_their_errors(status: int, expected: type[ProxyRefusedError]) -> None:
    reason = f"Reason for {status}"
    answer = http_head(status, reason, [("Content-Length", "4")]) + b"body"
    error = fails(http(USER, PASSWORD), [answer])
    assert type(error) is expected
    assert isinstance(error, ProxyRefusedError)  # for the type checker
    assert (error.code, error.reason) == (status, reason)


@pytest.mark.parametrize(
    "answers",
    [
        [b"220 mail.example.test ESMTP\r\n"],  # a mail server: said at once, not waited on
        [b"\x05\x00"],  # a SOCKS5 proxy
        [b"H", b"T", b"T", b"P", b"X"],
        [b"http/1.1 200 OK\r\n\r\n"],
        [b"HTTP/2 200\r\n\r\n"],
        [b"HTTP/1.1 2000 OK\r\n\r\n"],
        [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: smtp\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"],
        [b"HTTP/1.1 100 Continue\r\n\r\n"],  # and then the end
    ],
)
def test_http_garbage_is_a_protocol_error(answers: list[bytes]) -> None:
    done = run(http(), answers)
    assert type(done.error) is ProxyProtocolError
    assert done.reads <= len(answers) + 1


def test_garbage_from_an_http_proxy_is_refused_at_its_first_bytes() -> None:
    done = run(http(), [b"220 mail.example.test ESMTP\r\n"])
    assert type(done.error) is ProxyProtocolError and done.reads == 1


@pytest.mark.parametrize("piece", [HEAD_LIMIT * 4, 1024, 1])
def test_an_http_head_over_16_kib_is_refused(piece: int) -> None:
    """In one read or many: the head is bounded, so is what is read of it."""
    head = http_head(200, "OK", [("X-Filler", "x" * HEAD_LIMIT)])
    done = run(http(), cut(head + b"220 hi\r\n", range(piece, len(head) + 8, piece)))
    assert type(done.error) is ProxyProtocolError
    assert done.reads * piece <= HEAD_LIMIT + 2 * piece or done.reads == 1


def test_an_http_head_of_16_kib_is_taken() -> None:
    filler = HEAD_LIMIT - len(http_head(200, "OK", [("X-Filler", "")]))
    head = http_head(200, "OK", [("X-Filler", "x" * filler)])
    assert len(head) == HEAD_LIMIT
    assert run(http(), [head + b"220"]).early == b"220"
    longer = http_head(200, "OK", [("X-Filler", "x" * (filler + 1))])
    assert type(run(http(), [longer + b"220"]).error) is ProxyProtocolError


def test_informational_heads_are_bounded_in_all() -> None:
    """A proxy answering "100 Continue" without end is stopped once they pass the bound."""
    heads = http_head(100, "Continue") * (2 * HEAD_LIMIT // 25) + http_head(200)
    pieces = cut(heads, range(1024, len(heads), 1024))
    done = run(http(), pieces)
    assert type(done.error) is ProxyProtocolError and "16384" in str(done.error)
    assert done.reads == HEAD_LIMIT // 1024 + 1 < len(pieces)


# ---------------------------------------------------------------- echoed credentials


@pytest.mark.parametrize(
    "answers",
    [
        [http_head(407, basic(USER, PASSWORD))],
        [http_head(407, f"bad password {PASSWORD}")],
        [http_head(403, PASSWORD)],
        [f"HTTP/1.1 200 OK\r\n{PASSWORD}\r\n\r\n".encode()],
        [f"HTTP/1.1 200 OK\r\nX: {basic(USER, PASSWORD)}\r\nbad\r\n\r\n".encode()],
    ],
)
def test_an_http_proxy_echoing_the_credentials_does_not_put_them_in_the_error(
    answers: list[bytes],
) -> None:
    error = fails(http(USER, PASSWORD), answers)
    shown = error_texts(error)
    assert PASSWORD not in shown and basic(USER, PASSWORD)[6:] not in shown


def test_a_socks5_proxy_echoing_the_credentials_does_not_put_them_in_the_error() -> None:
    echo = rfc1929_request(USER, PASSWORD)
    error = fails(socks5(USER, PASSWORD), [b"\x05\x02", echo])
    assert type(error) is ProxyAuthenticationError and PASSWORD not in error_texts(error)
    bound = b"\x03" + bytes([len(PASSWORD) + 1]) + PASSWORD.encode() + b"\xff"  # not UTF-8
    error = fails(socks5(USER, PASSWORD), [b"\x05\x02\x01\x00" + socks5_reply(0, bound)])
    assert type(error) is ProxyProtocolError and PASSWORD not in error_texts(error)


# ---------------------------------------------------------------- the transport's errors


@pytest.mark.parametrize("proxy", [socks5(USER, PASSWORD), http(USER, PASSWORD)])
@pytest.mark.parametrize("reads", [0, 1])
def test_a_timeout_is_a_proxy_timeout(proxy: Proxy, reads: int) -> None:
    """The transport's ``TimeoutError``, thrown in at a read or a write."""
    operation = tunnel_gen(proxy, TARGET, PORT)
    request = next(operation)
    for _ in range(reads):
        request = operation.send(None)  # the read after the first write
    if reads:
        assert request is RECEIVE
    else:
        assert isinstance(request, bytes)
    timeout = TimeoutError("timed out")
    with pytest.raises(ProxyTimeoutError) as caught:
        operation.throw(timeout)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.__cause__ is timeout


@pytest.mark.parametrize("proxy", [socks5(), http()])
@pytest.mark.parametrize("failure", [ConnectionResetError, BrokenPipeError, OSError])
def test_a_transport_error_is_a_protocol_error(proxy: Proxy, failure: type[OSError]) -> None:
    operation = tunnel_gen(proxy, TARGET, PORT)
    next(operation)
    assert operation.send(None) is RECEIVE
    error = failure("gone")
    with pytest.raises(ProxyProtocolError) as caught:
        operation.throw(error)
    assert caught.value.__cause__ is error


# ---------------------------------------------------------------- open_tunnel


def tunnel(client: Client, proxy: Proxy, answer: bytes, *, tls_first: bool = False) -> None:
    """Run ``open_tunnel`` with ``answer`` as the proxy's one read."""
    operation = open_tunnel(client, proxy, TARGET, PORT, tls_first=tls_first)
    value: Any = None
    while True:
        try:
            request = operation.send(value)
        except StopIteration:
            return
        value = answer if request is RECEIVE else None


def new_client() -> Client:
    client = Client("client.example.test")
    client.connecting(TARGET, PORT)
    return client


@pytest.mark.parametrize(
    ("proxy", "success"),
    [(socks5(), b"\x05\x00" + socks5_reply()), (http(), b"HTTP/1.1 200 OK\r\n\r\n")],
    ids=["socks5", "http"],
)
def test_the_greeting_that_came_with_the_answer_is_the_greeting(
    proxy: Proxy, success: bytes
) -> None:
    client = new_client()
    tunnel(client, proxy, success + b"220 mail.example.test ESMTP ready\r\n")
    greeting = client.greeting()
    with pytest.raises(StopIteration) as done:
        next(greeting)  # no read: it is all there
    assert done.value.value == (220, b"mail.example.test ESMTP ready")


def test_the_start_of_a_greeting_is_kept_for_the_rest() -> None:
    client = new_client()
    tunnel(client, socks5(), b"\x05\x00" + socks5_reply() + b"220 mail.exa")
    greeting = client.greeting()
    assert next(greeting) is RECEIVE
    with pytest.raises(StopIteration) as done:
        greeting.send(b"mple.test ESMTP\r\n")
    assert done.value.value == (220, b"mail.example.test ESMTP")


@pytest.mark.parametrize(
    ("proxy", "success"),
    [(socks5(), b"\x05\x00" + socks5_reply()), (http(), b"HTTP/1.1 200 OK\r\n\r\n")],
    ids=["socks5", "http"],
)
def test_bytes_before_an_implicit_tls_handshake_are_refused(proxy: Proxy, success: bytes) -> None:
    tunnel(new_client(), proxy, success, tls_first=True)  # nothing after it: fine
    with pytest.raises(ProxyProtocolError, match="before the TLS handshake"):
        tunnel(new_client(), proxy, success + b"\x16\x03\x01", tls_first=True)


def test_debug_output_names_the_proxy_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = new_client()
    client.debuglevel = 1
    tunnel(client, socks5(USER, PASSWORD), b"\x05\x02\x01\x00" + socks5_reply())
    err = capsys.readouterr().err
    assert f"proxy: socks5://{USER}:****@proxy.example.test:1080 to {TARGET}:{PORT}" in err
    assert PASSWORD not in err
