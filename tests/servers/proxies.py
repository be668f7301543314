"""What the two proxy fixtures (Dante's SOCKS5 server, tinyproxy) have in common.

Each runs two listeners on 127.0.0.1: ``port`` asks for no credentials, ``auth_port``
demands ``username``/``password``. They only relay: point them at one of the other
fixtures' servers (any 127.0.0.1 port).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

PROXY_USER = "proxyuser"
PROXY_PASS = "proxypass"
"""The proxies' account. Dante checks it against the system's passwd/shadow, so
``.ci/install-servers.sh`` creates this system user with this password."""


@dataclass(kw_only=True)
class ProxyServer:
    """A running proxy: ``host``, the two ports, the credentials and the log.

    :meth:`url` gives the address in the form the ``proxy=`` option takes.
    """

    scheme: ClassVar[str]

    host: str
    port: int
    auth_port: int
    log_path: Path
    scratch: Path
    username: str = PROXY_USER
    password: str = PROXY_PASS

    def url(self, auth: bool = False) -> str:
        """``scheme://host:port``, or with ``auth`` ``scheme://user:pass@host:auth_port``."""
        if not auth:
            return f"{self.scheme}://{self.host}:{self.port}"
        credentials = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return f"{self.scheme}://{credentials}@{self.host}:{self.auth_port}"
