"""The documentation: it builds, its examples run, and what it shows is what the code does.

Conventions for code in ``docs/*.md`` and ``README.md`` (checked here):

* Every fenced block marked ```` ```python ```` is run.  A page's blocks run in order, in one
  fresh namespace (a block may use what an earlier block of the same page defined), in a
  subprocess whose working directory is an empty temporary directory, with a time limit.
* So they must be self-contained and work offline: examples send to the capture server
  (``from smtp_proto.transports.testing import CaptureServer``), never to a real host, and
  check what it received with ``assert``.  Anything that cannot run that way (a real server's
  name, a shell session, output) goes in a ```` ```text ````, ```` ```console ```` or
  ```` ```sh ```` block.
* The docs build with ``sphinx-build -W --keep-going`` (warnings are errors); the state
  diagram in ``docs/core.md`` is generated from ``ClientConnection`` by exploration
  (``docs/_ext/state_diagram.py``); ``docs/examples/lmtp_unix.py`` is a complete transport,
  under 80 lines, that must deliver to Dovecot over its Unix socket.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_proto import ClientConnection, Command, LocalProtocolError, State
from tests.servers.dovecot import DovecotLMTPServer
from tests.servers.util import ensure_installed

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "lmtp_unix.py"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
BLOCK_TIMEOUT = 120
#: A few names from each documented module that the API page must define.
API_SAMPLE = (
    "smtp_proto.connection.ClientConnection",
    "smtp_proto.body.BodyEncoder",
    "smtp_proto.driving.drive_async",
    "smtp_proto.sasl.ScramSHA256",
    "smtp_proto.client.Client.sendmail",
    "smtp_proto.transports.sync.SMTP.sendmail",
    "smtp_proto.transports.asyncio.SMTP.sendmail",
    "smtp_proto.transports.trio.LMTP",
    "smtp_proto.proxy.Proxy",
    "smtp_proto.proxy.open_tunnel",
    "smtp_proto.proxy.tunnel_gen",
    "smtp_proto.errors.ProxyError",
    "smtp_proto.errors.ProxyTargetUnreachableError",
)

sys.path.insert(0, str(DOCS / "_ext"))
import state_diagram  # noqa: E402 - docs/_ext is not a package

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# Runs the blocks it reads as JSON from stdin, in order, in one namespace; each block is
# compiled under the page's name, padded to its line, so a traceback points into the page.
_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for name, source in json.load(sys.stdin):
    exec(compile(source, name.rsplit(":", 1)[0], "exec"), namespace)
"""


def python_blocks(page: Path) -> list[tuple[str, str]]:
    """The page's ```python blocks as ``(page:line, source)``, in order.

    The source is padded with blank lines so line numbers in tracebacks are the page's.
    """
    text = page.read_text("utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start(1))
        blocks.append((f"{page.name}:{first_line + 1}", "\n" * first_line + match.group(1)))
    return blocks


# ---------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML build of the docs, warnings as errors (as in CI)."""
    if (
        importlib.util.find_spec("sphinx") is None
        or importlib.util.find_spec("myst_parser") is None
    ):
        pytest.fail("Sphinx and myst-parser are needed: pip install -e '.[test]'", pytrace=False)
    if shutil.which("dot") is None:
        # As root, installs the Debian packages the tests need (graphviz among them).
        ensure_installed(["/usr/bin/dot"], "graphviz's dot, which draws the state diagram")
    out = tmp_path_factory.mktemp("docs-html")
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", DOCS, out],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"sphinx-build failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_docs_build_without_warnings(built: Path) -> None:
    for page in DOCS.glob("*.md"):
        assert (built / page.with_suffix(".html").name).is_file(), page.name
    api = (built / "api.html").read_text("utf-8")
    for name in API_SAMPLE:
        assert f'id="{name}"' in api, name


def test_every_page_is_in_the_toctree(built: Path) -> None:
    index = (built / "index.html").read_text("utf-8")
    for page in DOCS.glob("*.md"):
        if page.stem != "index":
            assert f'href="{page.stem}.html"' in index, page.name


# ---------------------------------------------------------------- the examples


EXAMPLE_PAGES = [page for page in PAGES if python_blocks(page)]


def test_the_guides_have_runnable_examples() -> None:
    names = {page.name for page in EXAMPLE_PAGES}
    guides = {"quickstart.md", "migrating.md", "asyncio.md", "trio.md", "core.md", "README.md"}
    assert guides <= names


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=[page.name for page in EXAMPLE_PAGES])
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    blocks = python_blocks(page)
    run = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, f"{page.name}: a python block failed:\n{run.stderr}"


def test_block_extraction_keeps_page_line_numbers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\ntext\n\n```text\nnot run\n```\n"
        "```python\nraise ValueError(x)\n```\n"
    )
    blocks = python_blocks(page)
    assert [name for name, _ in blocks] == ["page.md:4", "page.md:13"]
    run = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    assert run.returncode != 0
    assert 'File "page.md", line 13' in run.stderr
    assert "ValueError: 1" in run.stderr


_LINE = st.text(st.characters(blacklist_characters="\r\n`", blacklist_categories=("Cs",)))


@given(
    st.lists(
        st.tuples(st.sampled_from(["python", "text", "console", ""]), st.lists(_LINE)),
        max_size=6,
    ),
    st.lists(_LINE, max_size=3),
)
def test_block_extraction_finds_exactly_the_python_blocks(
    blocks: list[tuple[str, list[str]]], prose: list[str]
) -> None:
    lines = ["# Page"]
    expected = []
    for language, body in blocks:
        lines += [*prose, f"```{language}"]
        if language == "python":
            expected.append((f"page.md:{len(lines) + 1}", body))
        lines += [*body, "```"]
    page = Path(tempfile.mkdtemp()) / "page.md"
    page.write_text("\n".join(lines) + "\n", "utf-8")
    found = python_blocks(page)
    assert [name for name, _ in found] == [name for name, _ in expected]
    for (name, source), (_, body) in zip(found, expected, strict=True):
        first = int(name.rsplit(":", 1)[1])
        assert source.split("\n")[first - 1 : -1] == body  # the body, at the page's lines


# ---------------------------------------------------------------- the transport example


def load_example(name: str = "lmtp_unix") -> ModuleType:
    """``docs/examples/<name>.py``, imported (and in ``sys.modules``, as dataclasses need)."""
    qualified = f"_docs_example_{name}"
    spec = importlib.util.spec_from_file_location(qualified, DOCS / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


def test_transport_example_is_short() -> None:
    assert len(EXAMPLE.read_text("utf-8").splitlines()) < 80


def test_transport_example_is_included_whole() -> None:
    page = (DOCS / "transport.md").read_text("utf-8")
    assert "literalinclude} examples/lmtp_unix.py" in page


def test_transport_example_delivers_to_dovecot(dovecot_lmtp: DovecotLMTPServer, token: str) -> None:
    example = load_example()
    message = f"From: a@example.test\r\nSubject: {token}\r\n\r\nvia the example\r\n".encode()
    results = example.deliver(
        str(dovecot_lmtp.unix_path),
        "sender@example.test",
        ["alice@example.test", "full@example.test", "bob@example.test"],
        message,
    )
    assert set(results) == {"alice@example.test", "full@example.test", "bob@example.test"}
    assert results["alice@example.test"][0] == 250
    assert results["bob@example.test"][0] == 250
    assert results["full@example.test"][0] == 552  # over quota: refused after the body
    for user, count in (("alice", 1), ("bob", 1), ("full", 0)):
        delivered = [m for m in dovecot_lmtp.messages_for(user) if token.encode() in m]
        assert len(delivered) == count, user
    assert b"via the example" in delivered_to(dovecot_lmtp, "alice", token)


def delivered_to(dovecot: DovecotLMTPServer, user: str, token: str) -> bytes:
    (message,) = [m for m in dovecot.messages_for(user) if token.encode() in m]
    return message


def test_transport_example_reports_recipients_refused_at_rcpt(
    dovecot_lmtp: DovecotLMTPServer, token: str
) -> None:
    example = load_example()
    message = f"Subject: {token}\r\n\r\nhello\r\n".encode()
    results = example.deliver(
        str(dovecot_lmtp.unix_path),
        "sender@example.test",
        ["alice@example.test", "nobody-here@example.test"],
        message,
    )
    assert results["alice@example.test"][0] == 250
    assert results["nobody-here@example.test"][0] == 550
    assert len(delivered_to(dovecot_lmtp, "alice", token)) > 0


# ---------------------------------------------------------------- the state diagram


def test_exploration_reaches_every_state() -> None:
    transitions = state_diagram.explore()
    assert {t.source for t in transitions} == set(State)


def test_exploration_is_the_same_for_lmtp() -> None:
    smtp = state_diagram.edges(state_diagram.explore())
    lmtp = state_diagram.edges(state_diagram.explore(lmtp=True))
    assert smtp == lmtp


def test_exploration_finds_the_documented_transitions() -> None:
    changes = state_diagram.edges(state_diagram.explore())
    assert changes[State.READY, State.BODY] == ["DATA → 354"]
    assert changes[State.READY, State.SASL] == ["AUTH → 334"]
    assert changes[State.READY, State.TLS_HANDSHAKE] == ["STARTTLS → 220"]
    assert changes[State.TLS_HANDSHAKE, State.READY] == ["tls_established()"]
    assert "QUIT → any reply" in changes[State.READY, State.CLOSED]
    assert "any command → 421" in changes[State.READY, State.CLOSED]
    assert not any(source is State.CLOSED for source, _ in changes)  # closed is final


def test_exploration_catches_a_refusal_that_changes_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exploration is a check, not just a drawing: a broken rule makes it fail."""
    original = ClientConnection.send

    def send_that_breaks_state(self: ClientConnection, command: Command) -> bytes:
        if self.state is State.SASL:
            self.state = State.READY
            raise LocalProtocolError("refused, but the state changed")
        return original(self, command)

    monkeypatch.setattr(ClientConnection, "send", send_that_breaks_state)
    with pytest.raises(state_diagram.ExplorationError):
        state_diagram.explore()


def test_built_diagram_shows_the_explored_transitions(built: Path) -> None:
    changes = state_diagram.edges(state_diagram.explore())
    svgs = list((built / "_images").glob("graphviz-*.svg"))
    diagrams = [svg.read_text("utf-8") for svg in svgs]
    (diagram,) = [svg for svg in diagrams if "ClientConnection" in svg]
    titles = {
        html.unescape(t) for t in re.findall(r'class="edge">\s*<title>(.*?)</title>', diagram)
    }
    assert titles == {f"{source.name}->{target.name}" for source, target in changes}
    nodes = {html.unescape(t) for t in re.findall(r'class="node">\s*<title>(.*?)</title>', diagram)}
    assert nodes == {state.name for state in State}
    page = html.unescape((built / "core.html").read_text("utf-8"))
    for labels in changes.values():
        assert "; ".join(labels) in page
