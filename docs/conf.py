"""Sphinx configuration: Markdown pages (MyST), the API reference from the docstrings, and
the connection state diagram generated from ``smtp_proto.connection`` (``_ext/``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

project = "smtp-proto"
author = "the smtp-proto authors"
copyright = "2026, the smtp-proto authors"
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "state_diagram",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = "smtp-proto"
graphviz_output_format = "svg"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Wide enough for 100-column code (the project's line length) without scrolling.
html_theme_options = {"page_width": "1240px", "sidebar_width": "220px", "body_max_width": "none"}
