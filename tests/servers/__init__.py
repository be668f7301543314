"""Real mail servers on 127.0.0.1 for the test suite, as pytest fixtures.

Enable with ``pytest_plugins = ["tests.servers.plugin"]`` in ``tests/conftest.py``.
Postfix and Dovecot come from Debian packages (``.ci/install-servers.sh``; the
fixtures run it themselves when running as root and the packages are missing);
aiosmtpd and trustme come from the ``test`` extra (``pip install -e '.[test]'``).
"""

from importlib.util import find_spec

_missing = [m for m in ("trustme", "aiosmtpd") if find_spec(m) is None]
if _missing:
    raise ImportError(
        f"tests.servers needs {', '.join(_missing)}: install the test extra "
        "with `pip install -e '.[test]'`"
    )
