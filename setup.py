"""The optional C accelerator, ``smtp_proto._speedups`` (``smtp_proto/body.py`` has the
pure-Python fallback); everything else is in ``pyproject.toml``.

Declared here so that a build can leave it out: with ``SMTP_PROTO_NO_EXTENSIONS=1`` in the
environment there is no extension, so the wheel is pure Python (``py3-none-any``), the one
for every platform without a manylinux wheel (``tools/build-dist.sh``). Without a C compiler
the extension is skipped anyway (``optional``), but the wheel keeps a platform tag.
"""

import os

from setuptools import Extension, setup

PURE = os.environ.get("SMTP_PROTO_NO_EXTENSIONS", "") not in ("", "0")
SPEEDUPS = Extension("smtp_proto._speedups", ["smtp_proto/_speedups.c"], optional=True)

setup(ext_modules=[] if PURE else [SPEEDUPS])
