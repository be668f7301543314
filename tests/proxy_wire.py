"""The proxy protocols' bytes, written here from the RFCs (1928 SOCKS5, 1929 its passwords,
9110 CONNECT, 7617 Basic) and not taken from the libraries ``smtp_proto.proxy`` uses: what
the offline tests (``tests/core/test_proxy.py``) check the client's bytes against, and what
the scripted proxy (``tests/scripted_proxy.py``) answers.  Standard library only."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence

__all__ = [
    "authority",
    "basic",
    "error_texts",
    "http_head",
    "request_head",
    "rfc1929_request",
    "socks5_connect",
    "socks5_offer",
    "socks5_reply",
]


def socks5_offer(with_password: bool) -> bytes:
    """RFC 1928 section 3: VER NMETHODS METHODS (0 none, 2 username/password)."""
    methods = b"\x00\x02" if with_password else b"\x00"
    return b"\x05" + bytes([len(methods)]) + methods


def rfc1929_request(username: str, password: str) -> bytes:
    """RFC 1929 section 2: VER(1) ULEN UNAME PLEN PASSWD."""
    user, secret = username.encode(), password.encode()
    return b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret


def socks5_connect(host: str, port: int) -> bytes:
    """RFC 1928 section 4: VER CMD(1, CONNECT) RSV ATYP DST.ADDR DST.PORT (network order)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        where = b"\x03" + bytes([len(name)]) + name
    else:
        where = (b"\x01" if address.version == 4 else b"\x04") + address.packed
    return b"\x05\x01\x00" + where + port.to_bytes(2, "big")


def socks5_reply(code: int = 0, bound: bytes = b"\x01\x7f\x00\x00\x01", port: int = 1080) -> bytes:
    """RFC 1928 section 6: VER REP RSV ATYP BND.ADDR BND.PORT (``bound``: ATYP and address)."""
    return bytes([5, code, 0]) + bound + port.to_bytes(2, "big")


def authority(host: str, port: int) -> str:
    """RFC 9110 section 9.3.6 (authority-form, RFC 3986's host: an IPv6 one in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def basic(username: str, password: str) -> str:
    """RFC 7617 section 2: ``Basic`` and base64 of user-id ':' password, in UTF-8 (2.1)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def request_head(write: bytes) -> tuple[str, dict[str, list[str]]]:
    """An HTTP request head (RFC 9112): its request line, and its fields by lower-case name.
    It must be the whole write: a CONNECT has no body."""
    assert write.endswith(b"\r\n\r\n"), write
    line, *fields = write[:-4].decode("ascii").split("\r\n")
    headers: dict[str, list[str]] = {}
    for field in fields:
        name, colon, value = field.partition(":")
        assert colon and name == name.strip(), field
        headers.setdefault(name.lower(), []).append(value.strip(" \t"))
    return line, headers


def http_head(status: int, reason: str = "OK", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """A response head (RFC 9112 section 4)."""
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    return "".join(line + "\r\n" for line in lines).encode("ascii") + b"\r\n"


def error_texts(error: BaseException) -> str:
    """``str`` and ``repr`` of ``error`` and of every error a traceback would show with it."""
    shown: list[str] = []
    current: BaseException | None = error
    while current is not None:
        shown += [str(current), repr(current)]
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return "\n".join(shown)
