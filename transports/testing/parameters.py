"""The arguments of MAIL and RCPT: the path, its ESMTP parameters and their checks."""

from __future__ import annotations

_MAIL_PARAMETERS = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"})
_RCPT_PARAMETERS = frozenset({"NOTIFY", "ORCPT"})


def _path_and_parameters(argument: str, keyword: str) -> tuple[str, list[str]] | None:
    """``FROM:<address> PARAM=VALUE ...`` (``keyword`` is ``"FROM:"`` or ``"TO:"``) split
    into the address, without its angle brackets, and its parameters; None if malformed."""
    if argument[: len(keyword)].upper() != keyword:
        return None
    rest = argument[len(keyword) :].lstrip(" ")
    end = rest.find(">")
    if not rest.startswith("<") or end < 0:
        return None
    tail = rest[end + 1 :]
    if tail and not tail.startswith(" "):
        return None
    return rest[1:end], tail.split()


def _unsupported(parameters: list[str], known: frozenset[str]) -> str | None:
    """The first parameter this server does not implement, if any."""
    for parameter in parameters:
        if parameter.partition("=")[0].upper() not in known:
            return parameter
    return None


def _utf8(mail_parameters: list[str]) -> bool:
    """Whether MAIL asked for SMTPUTF8 (RFC 6531): non-ASCII addresses need it."""
    return any(parameter.upper() == "SMTPUTF8" for parameter in mail_parameters)
