"""Fuzz target: ``parse_ehlo`` and ``Extensions.from_features`` on arbitrary bytes.

The input is the text of an EHLO reply (lines joined by ``\\n``, as ``Reply.text`` gives it).

Checked, for every input:

* neither function raises anything;
* ``parse_ehlo`` builds exactly the ``esmtp_features`` dict the stdlib's ``smtplib.SMTP.ehlo``
  builds from the same reply text (the stdlib's own code runs on it, with its I/O stubbed);
* every key is a lower-case keyword and ``Extensions`` is consistent with the dict: each flag
  is the presence of its keyword, ``auth`` is the upper-cased words of the ``auth`` entry and
  ``size`` is ``None`` or a non-negative integer that agrees with the SIZE parameter;
* ``from_features`` also copes with a dict that did not come from ``parse_ehlo``: the input
  split into ``key=value`` pairs.

Run: ``python fuzz/fuzz_ehlo.py [libFuzzer options] [corpus_dir]``.  Without atheris the
module only provides ``check(data)``, which the test suite replays over the seed corpus.
"""

from __future__ import annotations

import re
import smtplib

from smtp_proto.extensions import Extensions, parse_ehlo

_KEYWORD = re.compile(r"[a-z0-9][a-z0-9-]*")
_FLAGS = {
    "pipelining": "pipelining",
    "chunking": "chunking",
    "binarymime": "binarymime",
    "smtputf8": "smtputf8",
    "eightbitmime": "8bitmime",
    "dsn": "dsn",
    "enhancedstatuscodes": "enhancedstatuscodes",
    "starttls": "starttls",
}


class _StdlibEhlo(smtplib.SMTP):
    """``smtplib.SMTP`` whose ``ehlo`` parses a given reply: no socket, no command sent."""

    def __init__(self, text: bytes) -> None:
        super().__init__(local_hostname="fuzz.invalid")
        self._canned = text

    def putcmd(self, cmd: str, args: str = "") -> None:
        pass

    def getreply(self) -> tuple[int, bytes]:
        return 250, self._canned


def stdlib_features(text: bytes) -> dict[str, str]:
    """The ``esmtp_features`` the stdlib builds from an EHLO 250 reply with this text."""
    client = _StdlibEhlo(text)
    client.ehlo("fuzz.invalid")
    return client.esmtp_features


def check_extensions(features: dict[str, str], extensions: Extensions) -> None:
    """``Extensions`` must say exactly what the features dict says."""
    for attribute, keyword in _FLAGS.items():
        assert getattr(extensions, attribute) == (keyword in features), (attribute, features)
    assert extensions.auth == frozenset(features.get("auth", "").upper().split()), features
    if "size" not in features:
        assert extensions.size is None, extensions
        return
    # Documented: 0 for SIZE without a limit, the number when it is one of at most 20 ASCII
    # digits, None for anything else (a parameter too long to be a real limit included).
    limit = features["size"].strip()
    if not limit:
        assert extensions.size == 0, (limit, extensions)
    elif limit.isascii() and limit.isdigit() and len(limit) <= 20:
        assert extensions.size == int(limit), (limit, extensions)
    else:
        assert extensions.size is None, (limit, extensions)


def check(data: bytes) -> None:
    """The whole property for one input; raises on a finding."""
    features = parse_ehlo(data)
    assert features == stdlib_features(data), (features, stdlib_features(data))
    for key, value in features.items():
        assert _KEYWORD.fullmatch(key), key
        assert isinstance(value, str), value
    check_extensions(features, Extensions.from_features(features))

    # Any dict at all: keys and values taken from the input, one pair per line.
    arbitrary: dict[str, str] = {}
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        key, _, value = line.partition("=")
        arbitrary[key.lower()] = value
    check_extensions(arbitrary, Extensions.from_features(arbitrary))


def main() -> None:
    from _driver import fuzz  # noqa: PLC0415 - fuzz/ is on sys.path when run as a script

    fuzz(check)


if __name__ == "__main__":
    main()
