"""RFC 9422 ``LIMITS``: the limits a server announces in its EHLO reply, and the recipients
of a message shared out into transactions within them.  ``send`` and the pool's lanes both
split a message so (``smtp_proto.send.Submission.deliver``, ``smtp_proto.batch.Lane``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Limits"]

_LIMIT = re.compile(r"([A-Za-z0-9_-]+)(?:=(\S*))?")


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a server announces with RFC 9422 ``LIMITS`` (``None``: not announced).

    ``mailmax``: transactions per session; ``rcptmax``: recipients per transaction;
    ``rcptdomainmax``: recipient domains per transaction.
    """

    mailmax: int | None = None
    rcptmax: int | None = None
    rcptdomainmax: int | None = None

    @classmethod
    def from_features(cls, features: Mapping[str, str]) -> Limits:
        """The limits in ``esmtp_features`` (an unknown limit, or a value that is not a
        positive number, is ignored)."""
        values: dict[str, int] = {}
        for name, value in _LIMIT.findall(features.get("limits", "")):
            key = name.lower()
            if key in ("mailmax", "rcptmax", "rcptdomainmax") and value.isdigit():
                number = int(value[:9])  # at most a few digits in practice; never huge
                if number > 0:
                    values[key] = number
        return cls(**values)

    def split(self, recipients: Sequence[str]) -> list[list[str]]:
        """``recipients`` in transactions within ``rcptmax`` and ``rcptdomainmax``: as given
        when one is enough, else each domain's recipients together as far as they fit, in
        the order given."""
        by_domain: dict[str, list[str]] = {}
        for recipient in recipients:
            by_domain.setdefault(recipient.rpartition("@")[2].lower(), []).append(recipient)
        size = self.rcptmax or len(recipients)
        most_domains = self.rcptdomainmax or len(by_domain)
        if len(recipients) <= size and len(by_domain) <= most_domains:
            return [list(recipients)]
        parts: list[list[str]] = []
        domains = 0
        for group in by_domain.values():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                if parts and len(parts[-1]) + len(chunk) <= size and domains < most_domains:
                    parts[-1] += chunk
                    domains += start == 0
                else:
                    parts.append(list(chunk))
                    domains = 1
        return parts
