"""EHLO reply parsing: the server's extensions, as one object.

``Extensions`` holds both views of the one fact: ``features``, the keyword-to-parameters map
``smtplib`` calls ``esmtp_features``, and typed fields for the extensions the protocol rules
depend on.  The core's rules read ``Extensions``.  The adapters' smtplib attribute
``esmtp_features`` is the same map, made by the same ``parse_ehlo`` from the reply the
smtplib API saw; the user may change it, and the smtplib methods that read it (``has_extn``,
``login``) do so because smtplib code relies on such changes taking effect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["OLDSTYLE_AUTH", "Extensions", "parse_ehlo"]

_KEYWORD = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*) ?")
#: The pre-RFC 2554 ``AUTH=`` EHLO line some servers still send (``smtplib.OLDSTYLE_AUTH``).
OLDSTYLE_AUTH = re.compile(r"auth=(.*)", re.IGNORECASE)


def parse_ehlo(text: bytes) -> dict[str, str]:
    """Map each extension keyword (lower-cased) of an EHLO reply to its parameters.

    ``text`` is the reply text with lines joined by ``\\n`` (the first line, the server's
    name, is skipped).  ``AUTH`` lines, including the old ``AUTH=`` form, accumulate into one
    space-separated ``auth`` entry, exactly as ``smtplib`` builds ``esmtp_features``.
    """
    features: dict[str, str] = {}
    for line in text.decode("latin-1").split("\n")[1:]:
        old_auth = OLDSTYLE_AUTH.match(line)
        if old_auth is not None:
            features["auth"] = f"{features.get('auth', '')} {old_auth[1]}"
            continue
        keyword = _KEYWORD.match(line)
        if keyword is None:
            continue
        name = keyword[1].lower()
        params = line[len(keyword[1]) :].strip()
        features[name] = f"{features.get('auth', '')} {params}" if name == "auth" else params
    return features


@dataclass(frozen=True, slots=True)
class Extensions:
    """What the server's EHLO (or LHLO) reply says it supports."""

    #: Each advertised keyword (lower-cased) and its parameters, as ``parse_ehlo`` gives them.
    features: Mapping[str, str] = field(compare=False)
    size: int | None
    auth: frozenset[str]
    pipelining: bool
    chunking: bool
    binarymime: bool
    smtputf8: bool
    eightbitmime: bool
    dsn: bool
    enhancedstatuscodes: bool
    starttls: bool

    @classmethod
    def from_features(cls, features: Mapping[str, str]) -> Extensions:
        """Build the typed view from an ``esmtp_features`` dict.

        ``size`` is the advertised limit in bytes (0 means no limit), or ``None`` when SIZE is
        not advertised or its parameter is not a number (of at most 20 digits).
        """
        size: int | None = None
        if "size" in features:
            limit = features["size"].strip()
            # At most 20 digits (any real limit fits): int() refuses very long digit strings.
            parseable = limit.isascii() and limit.isdigit() and len(limit) <= 20
            size = int(limit) if parseable else (0 if not limit else None)
        return cls(
            features=MappingProxyType(dict(features)),
            size=size,
            auth=frozenset(features.get("auth", "").upper().split()),
            pipelining="pipelining" in features,
            chunking="chunking" in features,
            binarymime="binarymime" in features,
            smtputf8="smtputf8" in features,
            eightbitmime="8bitmime" in features,
            dsn="dsn" in features,
            enhancedstatuscodes="enhancedstatuscodes" in features,
            starttls="starttls" in features,
        )


NO_EXTENSIONS = Extensions.from_features({})
