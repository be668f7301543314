#!/usr/bin/env python3
"""Run real consumers of ``smtplib`` against ``smtp_proto.transports.sync``.

Each suite runs twice in a venv of its own: "stdlib" (the real smtplib) and "replaced"
(shim/ on PYTHONPATH, whose sitecustomize.py puts smtp_proto.transports.sync into
sys.modules["smtplib"] before any consumer code is imported). The consumers are downloaded
at run time into the work directory; none of their code is kept in this repository.

Exit status: 0 when no test fails replaced that passes with the stdlib (but for the
deliberate differences listed in DELIBERATE), 1 when one does, 2 when a suite could not be
set up or the shim did not take.
See README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"
POSTFIX = Path("/usr/sbin/postfix")  # installed by .ci/install-servers.sh
DJANGO_VERSION = "5.2.20"  # the newest 5.2 LTS: Django 6 needs Python 3.12
EMAILS_VERSION = "1.1.3"
#: What smoke_senders.py sends with (their own test suites fake smtplib).
SENDERS = ["Flask-Mail==0.10.0", "yagmail==0.16.0", "redmail==0.6.0", "zope.sendmail==7.3"]
FLASK_MAILMAN_GIT = "https://github.com/waynerv/flask-mailman"  # its sdist ships no tests
EMAILS_GIT = "https://github.com/lavr/python-emails"  # nor does this one
# python-emails tests that fetch pages over HTTP from the Internet: left out, as offline.
EMAILS_ONLINE_TESTS = [
    "emails/testsuite/loader/test_loaders.py::test_loaders",
    "emails/testsuite/loader/test_loaders.py::test_loaders_with_params",
    "emails/testsuite/loader/test_loaders.py::test_loader_image_callback",
    "emails/testsuite/loader/test_loaders.py::test_external_urls",
    "emails/testsuite/message/test_send.py::test_send_letters",
    "emails/testsuite/store/test_store.py::test_lazy_http",
    "emails/testsuite/test_utils.py::test_fetch_url",
    "emails/testsuite/test_utils.py::test_url_fix",
]
#: Tests that fail replaced because of a deliberate, safer difference (docs/migrating.md),
#: by a part of their name, with the reason; they do not count against the replacement.
DELIBERATE = {
    "LMTPGeneralTests.testUnixDomainSocketTimeoutDefault": (
        "no timeout given means 600 s per reply, for a Unix socket too (smtplib: none)"
    ),
}
MODES = ("stdlib", "replaced")
TIMEOUT = 1800  # seconds, per suite and mode
Command = list[str | Path]


class Unavailable(Exception):
    """The consumer's tests could not be had (no network to its repository, say)."""


class SetupError(Exception):
    """Installing or preparing a suite failed."""


def call(argv: Command, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run argv; the caller looks at its exit status."""
    return subprocess.run(argv, check=False, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


@dataclass
class Counts:
    run: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""
    problems: dict[str, str] = field(default_factory=dict)  # failing test -> one-line cause


@dataclass
class Suite:
    name: str
    python: Path
    cwd: Path
    argv: list[str]  # after the interpreter; "{junit}" is replaced by the report's path
    report: str  # "junit" (pytest --junitxml) or "unittest" (its text summary)
    pythonpath: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # "{port}": the local aiosmtpd's
    smtpd: bool = False  # start a local aiosmtpd sink for the run
    postfix: bool = False  # start a private Postfix for the run: see private_postfix()


@dataclass
class Work:
    root: Path
    wheel: Path = Path()

    def log(self, name: str) -> Path:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        return self.root / "logs" / name

    def sh(self, argv: Command, log: str, cwd: Path | None = None) -> None:
        with self.log(log).open("a") as out:
            out.write(f"$ {' '.join(map(str, argv))}\n")
            out.flush()
            done = call(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = self.log(log).read_text().splitlines()[-15:]
            raise SetupError(f"{argv[:4]} exited {done.returncode}:\n  " + "\n  ".join(tail))

    def venv(self, name: str, requirements: list[str]) -> Path:
        """A venv with the requirements (installed once) and this run's smtp-proto wheel."""
        where = self.root / "venvs" / name
        python = where / "bin" / "python"
        if not python.exists():
            self.sh([sys.executable, "-m", "venv", where], f"setup-{name}.log")
        stamp = where / "consumers-requirements.txt"
        wanted = "\n".join(requirements)
        if requirements and (not stamp.exists() or stamp.read_text() != wanted):
            self.sh([python, "-m", "pip", "install", "-q", *requirements], f"setup-{name}.log")
            stamp.write_text(wanted)
        reinstall: Command = ["install", "-q", "--no-deps", "--force-reinstall", self.wheel]
        self.sh([python, "-m", "pip", *reinstall], f"setup-{name}.log")
        return python

    def sdist(self, name: str, version: str) -> Path:
        """The unpacked source distribution of name==version (downloaded once)."""
        downloads = self.root / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        archive = downloads / f"{name}-{version}.tar.gz"
        if not archive.exists():
            options: Command = ["-q", "--no-binary", ":all:", "--no-deps", "-d", downloads]
            self.sh(
                [sys.executable, "-m", "pip", "download", *options, f"{name}=={version}"],
                "downloads.log",
            )
        unpacked = self.root / "src" / f"{name}-{version}"
        if not unpacked.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked.parent, filter="data")
        return unpacked

    def git_source(self, name: str, env_var: str, url: str) -> Path:
        """A checkout of the consumer: $env_var if set, else a shallow clone of url."""
        if os.environ.get(env_var):
            given = Path(os.environ[env_var]).resolve()
            if not given.is_dir():
                raise SetupError(f"{env_var}={given} is not a directory")
            return given
        dest = self.root / "src" / f"{name}-git"
        if not dest.exists():
            done = call(["git", "clone", "-q", "--depth", "1", url, dest], capture_output=True)
            if done.returncode:
                why = (done.stderr.strip().splitlines() or ["?"])[-1]
                raise Unavailable(f"git clone {url} failed ({why}); set {env_var} to a checkout")
        return dest


def build_wheel(checkout: Path, work: Work) -> Path:
    """A wheel of the checkout, built from a copy so that nothing is written into it."""
    copy = work.root / "build" / "smtp-proto"
    shutil.rmtree(copy, ignore_errors=True)
    listing = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = call(["git", "-C", checkout, *listing], capture_output=True)
    if listed.returncode:
        raise SetupError(f"{checkout} is not a git checkout: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        if (checkout / name).is_file():  # not a tracked file deleted in the work tree
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(checkout / name, copy / name)
    wheels = work.root / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    build: Command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, copy]
    work.sh(build, "setup-wheel.log")
    return next(wheels.glob("smtp_proto-*.whl"))


# The suites: each returns what to run, or raises Unavailable / SetupError.


def django(work: Work) -> list[Suite]:
    src = work.sdist("django", DJANGO_VERSION)
    # Of tests/requirements/py3.txt, the mail tests need only aiosmtpd.
    python = work.venv("django", [str(src), "aiosmtpd"])
    argv = ["runtests.py", "mail", "--verbosity=2", "--parallel=1", "--noinput"]
    return [Suite("django", python, src / "tests", argv, "unittest")]


def flask_mailman(work: Work) -> list[Suite]:
    src = work.git_source("flask-mailman", "FLASK_MAILMAN_SRC", FLASK_MAILMAN_GIT)
    python = work.venv("flask-mailman", ["flask", "pytest", "aiosmtpd"])
    argv = ["-m", "pytest", "-p", "no:cacheprovider", "--junitxml={junit}", "tests"]
    # As its tox.ini does: the checkout on PYTHONPATH, not installed.
    return [Suite("flask-mailman", python, src, argv, "junit", pythonpath=[src])]


def emails(work: Work) -> list[Suite]:
    requirements = [f"emails=={EMAILS_VERSION}", "pytest", "aiosmtpd"]
    smoke = ["-m", "pytest", "-p", "no:cacheprovider", "-c", os.devnull, "--junitxml={junit}"]
    smoke.append(str(HERE / "smoke_emails.py"))
    if why := postfix_missing():  # then its test is not parametrised: 1 skipped
        print(f"postfix: {why}, python-emails -> Postfix not run", flush=True)
    try:
        src = work.git_source("python-emails", "EMAILS_SRC", EMAILS_GIT)
    except Unavailable as e:
        print(f"emails-tests: UNAVAILABLE: {e}; running the smoke test only", flush=True)
        python = work.venv("emails", requirements)
        return [Suite("emails-smoke", python, work.root, smoke, "junit", postfix=not why)]
    for name in ("base.txt", "tests-base.txt"):  # tests.txt adds Django, for its Django tests
        requirements += ["-r", str(src / "requirements" / name)]
    python = work.venv("emails", requirements)
    argv = ["-m", "pytest", "-p", "no:cacheprovider", "-m", "not django", "--junitxml={junit}"]
    argv += [f"--deselect={test}" for test in EMAILS_ONLINE_TESTS] + ["emails/testsuite"]
    env = {  # its e2e tests send to the servers named so: ours, on loopback
        "SMTP_TEST_SETS": "LOCAL",
        "SMTP_TEST_LOCAL_HOST": "127.0.0.1",
        "SMTP_TEST_LOCAL_PORT": "{port}",
        "SMTP_TEST_LOCAL_WITHOUT_TLS": "true",
    }
    return [
        Suite("emails-smoke", python, work.root, smoke, "junit", postfix=not why),
        # The checkout first on PYTHONPATH, so its emails package shadows the PyPI one.
        Suite("emails-tests", python, src, argv, "junit", [src], env, smtpd=True),
    ]


def senders(work: Work) -> list[Suite]:
    python = work.venv("senders", [*SENDERS, "pytest", "trustme"])
    argv = ["-m", "pytest", "-p", "no:cacheprovider", "-c", os.devnull, "--junitxml={junit}"]
    return [Suite("senders", python, work.root, [*argv, str(HERE / "smoke_senders.py")], "junit")]


def cpython(work: Work) -> list[Suite]:
    python = work.venv("cpython", [])
    argv = ["-m", "unittest", "-v", "test.test_smtplib"]
    return [Suite("cpython", python, work.root, argv, "unittest")]


SUITES: dict[str, Callable[[Work], list[Suite]]] = {
    "django": django,
    "flask-mailman": flask_mailman,
    "emails": emails,
    "senders": senders,
    "cpython": cpython,
}


# Running a suite and reading its results.


@contextmanager
def smtpd(python: Path, log: Path) -> Iterator[int]:
    """An aiosmtpd sink on a free loopback port, run with the stdlib smtplib."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listen = ["-n", "-u", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [python, "-m", "aiosmtpd", *listen], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SetupError(f"aiosmtpd did not listen on port {port}: see {log}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def postfix_missing() -> str | None:
    """Why no Postfix can be started here, if none can."""
    if not POSTFIX.exists():
        return "not installed"
    if os.geteuid() != 0:
        return "installed, but starting it needs root"
    return None


@contextmanager
def private_postfix(maillog: Path) -> Iterator[dict[str, str]]:
    """A private Postfix on 127.0.0.1 (tests/servers/postfix.py: STARTTLS required, then AUTH,
    on its submission port; a test CA); yields where it is as CONSUMERS_POSTFIX_* variables.
    Its log is copied to ``maillog`` when it stops."""
    if str(HERE.parents[1]) not in sys.path:  # this checkout, for tests.servers (needs trustme)
        sys.path.insert(0, str(HERE.parents[1]))
    from tests.servers import certs, postfix, util  # noqa: PLC0415 (only with Postfix)

    with ExitStack() as cleanup:
        ca = util.make_scratch("tls")
        cleanup.callback(util.remove_scratch, ca)
        try:
            server = postfix.start_postfix(certs.make_local_ca(ca))
        except util.ServerError as e:
            raise SetupError(f"Postfix did not start: {e}") from None
        cleanup.callback(util.remove_scratch, server.scratch)
        cleanup.callback(shutil.copyfile, server.log_path, maillog)
        cleanup.callback(server.stop)
        yield {
            "CONSUMERS_POSTFIX_HOST": server.host,
            "CONSUMERS_POSTFIX_PORT": str(server.submission_port),
            "CONSUMERS_POSTFIX_SMTPS_PORT": str(server.smtps_port),
            "CONSUMERS_POSTFIX_CAFILE": str(server.cafile),
            "CONSUMERS_POSTFIX_MAILDIR": str(server.maildir),
            "CONSUMERS_POSTFIX_LOG": str(server.log_path),
        }


def check_shim(python: Path, env: dict[str, str]) -> None:
    """The replacement took: site only prints an error raised by a sitecustomize."""
    probe = call(
        [python, "-c", "import smtplib; print(smtplib.__name__)"], env=env, capture_output=True
    )
    if probe.stdout.strip() != "smtp_proto.transports.sync":
        raise SetupError(f"the shim did not take in {python}:\n{probe.stdout}{probe.stderr}")


def run_mode(suite: Suite, mode: str, work: Work) -> Counts:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    paths = ([SHIM] if mode == "replaced" else []) + suite.pythonpath
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(map(str, paths))
    env.update(CONSUMERS_MODE=mode, PYTHONDONTWRITEBYTECODE="1")
    if mode == "replaced":
        check_shim(suite.python, env)
    log, junit = work.log(f"{suite.name}-{mode}.log"), work.log(f"{suite.name}-{mode}.xml")
    junit.unlink(missing_ok=True)
    argv = [a.replace("{junit}", str(junit)) for a in suite.argv]
    started = time.monotonic()
    with ExitStack() as servers, log.open("w") as out:
        port = 0
        if suite.smtpd:
            port = servers.enter_context(
                smtpd(suite.python, work.log(f"{suite.name}-{mode}-smtpd.log"))
            )
        if suite.postfix:
            env.update(
                servers.enter_context(private_postfix(work.log(f"{suite.name}-{mode}-maillog.log")))
            )
        env.update({k: v.replace("{port}", str(port)) for k, v in suite.env.items()})
        try:
            run: Command = [suite.python, *argv]
            code: object = call(
                run, cwd=suite.cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT
            ).returncode
        except subprocess.TimeoutExpired:
            code = f"timeout after {TIMEOUT} s"
    output = log.read_text(errors="replace")
    counts = read_junit(junit) if suite.report == "junit" else read_unittest(output)
    counts.seconds = round(time.monotonic() - started, 1)
    if counts.run == 0:  # a crash before any test ran: count it as one error
        last = (output.strip().splitlines() or ["(no output)"])[-1]
        counts.errors, counts.note = 1, f"no test result (exit {code}): {last[:200]}"
    return counts


def read_junit(path: Path) -> Counts:
    counts = Counts()
    if not path.exists():
        return counts
    for case in ET.parse(path).getroot().iter("testcase"):
        counts.run += 1
        failure, error = case.find("failure"), case.find("error")
        bad = failure if failure is not None else error
        if case.find("skipped") is not None:
            counts.skipped += 1
        elif bad is None:
            counts.passed += 1
        else:
            counts.failed += bad.tag == "failure"
            counts.errors += bad.tag == "error"
            cause = (bad.get("message") or bad.text or "").strip().splitlines() or ["?"]
            counts.problems[f"{case.get('classname')}::{case.get('name')}"] = cause[0][:300]
    return counts


def read_unittest(text: str) -> Counts:
    """Counts from unittest's closing lines; the causes from its FAIL:/ERROR: reports."""
    counts = Counts()
    ran = re.findall(r"^Ran (\d+) tests? in", text, re.MULTILINE)
    verdict = re.findall(r"^(?:OK|FAILED)(?: \((.*)\))?$", text, re.MULTILINE)
    if not ran or not verdict:
        return counts
    tally = {k.strip(): int(v) for k, v in re.findall(r"([a-z ]+)=(\d+)", verdict[-1])}
    counts.run = int(ran[-1])
    counts.failed, counts.errors = tally.get("failures", 0), tally.get("errors", 0)
    counts.skipped = tally.get("skipped", 0)
    counts.passed = counts.run - counts.failed - counts.errors - counts.skipped
    # Each report: "=" * 70, "FAIL: test (id)", "-" * 70, the traceback, "Error: message".
    for block in text.split("=" * 70 + "\n")[1:]:
        header, _, body = block.partition("-" * 70 + "\n")
        body = body.split("-" * 70)[0]
        ends = [
            line
            for line in body.splitlines()
            if re.match(r"[A-Za-z_][\w.]*(:|$)", line)
            and not line.startswith(("Traceback", "During handling", "The above"))
        ]
        counts.problems[header.strip().splitlines()[0]] = (ends[-1] if ends else "?")[:300]
    return counts


def describe(checkout: Path) -> str:
    done = call(["git", "-C", checkout, "describe", "--always", "--dirty"], capture_output=True)
    return f"{checkout} @ {done.stdout.strip() or '?'}"


def deliberate(test: str) -> str | None:
    """Why ``test`` fails replaced on purpose, if it does."""
    return next((why for part, why in DELIBERATE.items() if part in test), None)


def report(name: str, modes: dict[str, Counts], setup: float) -> int:
    """Print a suite's counts; returns how many of its tests fail only when replaced, not
    counting the deliberate differences."""
    print(f"\n{name} (setup {setup} s)")
    columns = ("run", "passed", "failed", "errors", "skipped")
    print(f"  {'mode':<9}" + "".join(f"{c:>8}" for c in columns) + f"{'time':>9}")
    for mode, c in modes.items():
        numbers = "".join(f"{getattr(c, col):>8}" for col in columns)
        print(f"  {mode:<9}{numbers}{c.seconds:>8}s {c.note}")
    stdlib, replaced = modes["stdlib"].problems, modes["replaced"].problems
    new = {test: cause for test, cause in replaced.items() if test not in stdlib}
    if new:
        print(f"  failing only when replaced ({len(new)}):")
        for test, cause in sorted(new.items()):
            why = deliberate(test)
            print(f"    {test}\n      {cause}" + (f"\n      deliberate: {why}" if why else ""))
    if stdlib:
        print(f"  failing with the stdlib too: {', '.join(sorted(stdlib))}")
    sys.stdout.flush()
    lost = modes["replaced"].run < modes["stdlib"].run  # an import or collection failure
    return sum(deliberate(test) is None for test in new) + lost


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"of {', '.join(SUITES)}")
    parser.add_argument(
        "--checkout",
        type=Path,
        default=HERE.parents[1],
        help="the smtp-proto checkout to test (default: the one holding this script)",
    )
    default_work = Path(tempfile.gettempdir()) / "smtp-proto-consumers"
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("CONSUMERS_WORKDIR") or default_work),
        help=f"downloads, venvs, logs, kept between runs ($CONSUMERS_WORKDIR or {default_work})",
    )
    args = parser.parse_args()
    if unknown := set(args.suites) - set(SUITES):
        parser.error(f"unknown suites: {', '.join(sorted(unknown))}")
    checkout = args.checkout.resolve()
    work = Work(args.workdir.resolve())
    work.root.mkdir(parents=True, exist_ok=True)
    print(f"testing {describe(checkout)}; work directory {work.root}", flush=True)
    results: dict[str, object] = {}
    status = 0
    try:
        work.wheel = build_wheel(checkout, work)
    except SetupError as e:
        print(f"building smtp-proto failed: {e}")
        return 2
    for key in args.suites or list(SUITES):
        started = time.monotonic()
        try:
            suites = SUITES[key](work)
        except Unavailable as e:
            results[key] = {"unavailable": str(e)}
            print(f"\n{key}: UNAVAILABLE: {e}", flush=True)
            continue
        except SetupError as e:
            results[key] = {"setup_error": str(e)}
            print(f"\n{key}: SETUP FAILED: {e}", flush=True)
            status = 2
            continue
        setup = round(time.monotonic() - started, 1)  # shown with a consumer's first suite
        for suite in suites:
            try:
                modes = {mode: run_mode(suite, mode, work) for mode in MODES}
            except SetupError as e:
                results[suite.name] = {"setup_error": str(e)}
                print(f"\n{suite.name}: SETUP FAILED: {e}", flush=True)
                status = 2
                continue
            results[suite.name] = {"setup_seconds": setup} | {
                m: asdict(c) for m, c in modes.items()
            }
            if report(suite.name, modes, setup) and status == 0:
                status = 1
            setup = 0.0
    summary = {"checkout": describe(checkout), "suites": results}
    (work.root / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {work.root / 'results.json'}; logs: {work.root / 'logs'}; exit {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
