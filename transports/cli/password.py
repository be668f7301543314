"""Where the command's passwords come from: never its arguments, which other users can read
in the process list, but an environment variable, or else a prompt on the terminal."""

from __future__ import annotations

import getpass
import os
import warnings

from .failure import UsageError


def read_password(variable: str, prompt: str) -> str:
    """The value of the environment variable ``variable``; without it, what the user types
    after ``prompt``; with neither (no terminal), a usage error naming the variable.

    ``getpass`` without a terminal would warn, then read a line of standard input, echoed:
    that is no prompt, and standard input may carry something else (the message itself), so
    its warning is the usage error too.
    """
    from_environment = os.environ.get(variable)
    if from_environment is not None:
        return from_environment
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt)
        except (OSError, EOFError, getpass.GetPassWarning):
            raise UsageError(f"no password: set ${variable}, or run in a terminal") from None
