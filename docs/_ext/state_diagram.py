"""The ``state-diagram`` directive: ``ClientConnection``'s states and transitions, drawn from
the code rather than by hand.

``connection.py`` keeps its transitions in code, not in a table, so this module finds them by
exploration: from every state it can reach, it tries every trigger on a fresh connection
brought to that state (each command followed by each reply code, the end of a message body,
replies nobody asked for, malformed bytes, EOF, the TLS handshake, ``close()``) and records
where the connection ends up.  Refusals (``LocalProtocolError``) must leave the connection
unchanged and server errors (``RemoteProtocolError``) must close it; the exploration checks
both as it goes, so it is a test of the state machine as well as the source of the diagram.
``tests/test_docs.py`` checks that the built page shows exactly these transitions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.ext.graphviz import graphviz
from sphinx.util.docutils import SphinxDirective

from smtp_proto.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
)
from smtp_proto.connection import ClientConnection, State
from smtp_proto.errors import LocalProtocolError, RemoteProtocolError

#: The reply codes each command is tried with: one of each kind the state machine may care about.
CODES = (220, 235, 250, 334, 354, 421, 450, 554)

#: One command of every kind, with the name the diagram gives it.  ``Raw`` commands (what
#: ``docmd`` sends) are named by their verb, so they share edges with the typed commands.
COMMANDS: tuple[tuple[str, Command], ...] = (
    ("EHLO", Ehlo("client.example")),
    ("HELO", Helo("client.example")),
    ("LHLO", Lhlo("client.example")),
    ("MAIL", Mail("a@example.com")),
    ("RCPT", Rcpt("b@example.com")),
    ("DATA", Data()),
    ("BDAT", Bdat(3, last=True)),
    ("RSET", Rset()),
    ("VRFY", Vrfy("a@example.com")),
    ("EXPN", Expn("list@example.com")),
    ("HELP", Help()),
    ("NOOP", Noop()),
    ("QUIT", Quit()),
    ("STARTTLS", StartTLS()),
    ("AUTH", Auth("PLAIN")),
    ("SASL response", AuthResponse(b"secret")),
    ("DATA", Raw("DATA")),
    ("STARTTLS", Raw("STARTTLS")),
    ("QUIT", Raw("QUIT")),
    ("RSET", Raw("RSET")),
    ("HELO", Raw("HELO", "client.example")),
    ("NOOP", Raw("NOOP")),
)

Step = Callable[[ClientConnection], Any]


@dataclass(frozen=True)
class Trigger:
    """Something that may happen to a connection: ``name``, and ``code`` for a reply."""

    name: str
    code: int | None
    step: Step


@dataclass(frozen=True)
class Transition:
    """``trigger`` in state ``source`` leads to ``target`` (``None``: refused, nothing changes).

    ``error`` says the trigger raised ``RemoteProtocolError`` (the connection closes).
    """

    source: State
    name: str
    code: int | None
    target: State | None
    error: bool = False


class ExplorationError(AssertionError):
    """The state machine broke a rule the documentation states."""


def _receive(connection: ClientConnection, data: bytes) -> None:
    connection.receive_data(data)
    connection.next_event()


def _command_then_reply(command: Command, code: int) -> Step:
    def step(connection: ClientConnection) -> None:
        connection.send(command)
        _receive(connection, f"{code} reply\r\n".encode())

    return step


def _end_of_data_then_reply(code: int) -> Step:
    def step(connection: ClientConnection) -> None:
        connection.end_data()
        _receive(connection, f"{code} reply\r\n".encode())

    return step


def _reply(code: int) -> Step:
    return lambda connection: _receive(connection, f"{code} reply\r\n".encode())


def triggers() -> Iterator[Trigger]:
    """Every trigger the exploration tries, in a fixed order."""
    for name, command in COMMANDS:
        for code in CODES:
            yield Trigger(name, code, _command_then_reply(command, code))
    for code in CODES:
        yield Trigger("end_data()", code, _end_of_data_then_reply(code))
        yield Trigger("reply", code, _reply(code))
    yield Trigger("send_data()", None, lambda connection: connection.send_data(b"x\r\n"))
    yield Trigger("tls_established()", None, ClientConnection.tls_established)
    yield Trigger("malformed reply", None, lambda connection: _receive(connection, b"hi\r\n"))
    yield Trigger("EOF", None, lambda connection: _receive(connection, b""))
    yield Trigger("close()", None, ClientConnection.close)


def explore(*, lmtp: bool = False) -> list[Transition]:
    """Every trigger tried in every reachable state; ``ExplorationError`` if a rule is broken."""
    paths: dict[State, list[Step]] = {State.GREETING: []}
    queue = [State.GREETING]
    found: list[Transition] = []
    while queue:
        source = queue.pop(0)
        for trigger in triggers():
            connection = ClientConnection(lmtp=lmtp)
            for step in paths[source]:
                step(connection)
            if connection.state is not source:
                raise ExplorationError(
                    f"replaying the path to {source} ended in {connection.state}"
                )
            before = (connection.pending, connection.features, connection.accepted_recipients)
            error = False
            try:
                trigger.step(connection)
            except LocalProtocolError:
                after = (connection.pending, connection.features, connection.accepted_recipients)
                if connection.state is not source or after != before:
                    raise ExplorationError(
                        f"refusing {trigger.name} {trigger.code} in {source} changed the connection"
                    ) from None
                found.append(Transition(source, trigger.name, trigger.code, None))
                continue
            except RemoteProtocolError:
                if connection.state is not State.CLOSED:
                    raise ExplorationError(
                        f"{trigger.name} {trigger.code} in {source}: a RemoteProtocolError "
                        f"left the connection {connection.state}"
                    ) from None
                error = True
            target = connection.state
            found.append(Transition(source, trigger.name, trigger.code, target, error))
            if target not in paths:
                paths[target] = [*paths[source], trigger.step]
                queue.append(target)
    return found


_NOT_COMMANDS = ("reply", "end_data()")


def _codes_text(codes: set[int | None]) -> str:
    if codes == set(CODES):
        return "any reply"
    if len(codes) > len(CODES) // 2:
        left_out = ", ".join(str(code) for code in CODES if code not in codes)
        return f"any reply but {left_out}"
    return ", ".join(str(code) for code in CODES if code in codes)


def edges(transitions: list[Transition]) -> dict[tuple[State, State], list[str]]:
    """The state changes, ``(source, target) -> labels``, self-loops and refusals left out.

    A command's reply codes are summarised (``QUIT → any reply``), and a change that every
    command allowed in the state makes alike is said once (``any command → 421``).
    """
    accepted: dict[State, set[str]] = defaultdict(set)
    for t in transitions:
        if t.target is not None and t.code is not None and t.name not in _NOT_COMMANDS:
            accepted[t.source].add(t.name)
    grouped: dict[tuple[State, State], dict[tuple[str, bool], set[int | None]]] = defaultdict(
        lambda: defaultdict(set)
    )
    for t in transitions:
        if t.target is not None and t.target is not t.source:
            grouped[t.source, t.target][t.name, t.error].add(t.code)
    result: dict[tuple[State, State], list[str]] = {}
    for (source, target), by_name in grouped.items():
        labels: list[str] = []
        commands: dict[str, set[int | None]] = {}
        for (name, error), codes in by_name.items():
            suffix = " (protocol error)" if error else ""
            if codes == {None}:
                labels.append(name + suffix)
            elif name == "reply":
                what = "greeting" if source is State.GREETING else "unsolicited reply"
                labels.append(f"{what}: {_codes_text(codes)}{suffix}")
            elif name == "end_data()":
                labels.append(f"end_data(), then {_codes_text(codes)}{suffix}")
            elif error:
                labels.append(f"{name} → {_codes_text(codes)}{suffix}")
            else:
                commands[name] = codes
        common: set[int | None] = set()
        if len(accepted[source]) > 1 and set(commands) == accepted[source]:
            common = set.intersection(*commands.values())
            labels.append(f"any command → {_codes_text(common)}")
        by_text: dict[str, list[str]] = defaultdict(list)
        for name, codes in commands.items():
            if codes != common:
                by_text[_codes_text(codes)].append(name)
        labels += [f"{', '.join(names)} → {text}" for text, names in by_text.items()]
        result[source, target] = sorted(labels)
    return result


def dot_source(transitions: list[Transition]) -> str:
    """The graphviz ``digraph`` of the state changes.

    What leads to ``closed`` from every state (EOF, ``close()``, ...) is said once, in the
    graph's caption, rather than on every arrow.
    """

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    changes = edges(transitions)
    everywhere = set.intersection(
        *(set(labels) for (_, target), labels in changes.items() if target is State.CLOSED)
    )
    caption = "From every state to closed: " + "; ".join(sorted(everywhere))
    lines = [
        "digraph ClientConnection {",
        "  rankdir=LR;",
        f"  label={quoted(caption)};",
        '  fontname="sans-serif"; fontsize=11;',
        '  node [shape=box, style=rounded, fontname="sans-serif"];',
        '  edge [fontname="sans-serif", fontsize=10];',
    ]
    lines += [f"  {state.name} [label={quoted(state.value)}];" for state in State]
    for (source, target), labels in changes.items():
        shown = [label for label in labels if label not in everywhere]
        lines.append(f"  {source.name} -> {target.name} [label={quoted(chr(10).join(shown))}];")
    lines.append("}")
    return "\n".join(lines)


class StateDiagram(SphinxDirective):
    """``state-diagram``: the diagram, then a table of the same transitions."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        transitions = explore()
        diagram = graphviz()
        diagram["code"] = dot_source(transitions)
        diagram["options"] = {"docname": self.env.docname}
        diagram["alt"] = "ClientConnection state diagram"
        return [diagram, self._table(transitions)]

    def _table(self, transitions: list[Transition]) -> nodes.table:
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        for width in (15, 15, 70):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        body = nodes.tbody()
        group += body
        head += self._row("from", "to", "when")
        for (source, target), labels in edges(transitions).items():
            body += self._row(source.value, target.value, "; ".join(labels))
        return table

    @staticmethod
    def _row(*cells: str) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=text)
            row += entry
        return row


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("state-diagram", StateDiagram)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
