"""Where the command's passwords come from: never its arguments, which other users can read
in the process list, but an environment variable, or else a prompt on the terminal."""

from __future__ import annotations

import getpass
import os

from .failure import UsageError


def read_password(variable: str, prompt: str) -> str:
    """The value of the environment variable ``variable``; without it, what the user types
    after ``prompt``; with neither (no terminal), a usage error naming the variable."""
    from_environment = os.environ.get(variable)
    if from_environment is not None:
        return from_environment
    try:
        return getpass.getpass(prompt)
    except (OSError, EOFError):
        raise UsageError(f"no password: set ${variable}, or run in a terminal") from None
