"""The package's version, written here only: the build metadata (``pyproject.toml``), the
docs and the ``smtp-proto`` command read it from this module."""

__version__ = "0.1.0"
