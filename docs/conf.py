"""Sphinx configuration: Markdown pages (MyST), the API reference from the docstrings, links
into the Python, trio and anyio docs, and the connection state diagram generated from
``smtp_proto.connection`` (``_ext/``).

The package documented is the installed one (``pip install -e '.[docs]'``), so that
``smtp_proto.transports`` is found where the install maps it; the version shown is its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

from smtp_proto import __version__

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "smtp-proto"
author = "the smtp-proto authors"
copyright = "2026, the smtp-proto authors"
release = __version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.intersphinx",
    "state_diagram",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3

# Each inventory is fetched when the build starts. Offline, the fetch fails and intersphinx
# falls back to the next location, offline.inv, an empty inventory: the build then succeeds
# without warnings (only those links are missing) instead of failing under -W.
_OFFLINE = "offline.inv"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", (None, _OFFLINE)),
    "trio": ("https://trio.readthedocs.io/en/stable/", (None, _OFFLINE)),
    "anyio": ("https://anyio.readthedocs.io/en/stable/", (None, _OFFLINE)),
}
intersphinx_timeout = 10

html_theme = "alabaster"
html_title = f"smtp-proto {release}"
graphviz_output_format = "svg"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Wide enough for 100-column code (the project's line length) without scrolling.
html_theme_options = {"page_width": "1240px", "sidebar_width": "220px", "body_max_width": "none"}
