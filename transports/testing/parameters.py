"""The arguments of MAIL and RCPT: the path, its ESMTP parameters and their checks."""

from __future__ import annotations

from .reply import Reply

_MAIL_PARAMETERS = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"})
_RCPT_PARAMETERS = frozenset({"NOTIFY", "ORCPT"})


def _path_and_parameters(argument: str) -> tuple[str, list[str]] | None:
    """``<address> PARAM=VALUE ...`` split into the address and its parameters."""
    argument = argument.lstrip(" ")
    if argument.startswith("<"):
        address, closed, rest = argument[1:].partition(">")
        if not closed:
            return None
    else:
        address, _, rest = argument.partition(" ")
    return address, rest.split()


def _bad_parameter(parameters: list[str], known: frozenset[str]) -> Reply | None:
    """The refusal for a parameter this server does not implement, if any."""
    for parameter in parameters:
        if parameter.partition("=")[0].upper() not in known:
            return 555, f"5.5.4 Unsupported parameter {parameter}"
    return None


_UTF8_REQUIRED: Reply = (553, "5.6.7 Non-ASCII address without SMTPUTF8")


def _utf8(mail_parameters: list[str]) -> bool:
    """Whether MAIL asked for SMTPUTF8 (RFC 6531): non-ASCII addresses need it."""
    return any(parameter.upper() == "SMTPUTF8" for parameter in mail_parameters)
