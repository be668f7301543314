"""Helpers shared by the real-server fixtures: scratch dirs, ports, processes, waiting.

Everything here binds or connects to 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
"""The only address any test server listens on."""

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "install-servers.sh"

USERS: dict[str, str] = {"testuser": "testpass", "utf8user": "pässwörd"}
"""SMTP AUTH accounts offered by every SMTP test server (Postfix and aiosmtpd)."""


class ServerError(RuntimeError):
    """A test server could not be installed, started or stopped."""


# --------------------------------------------------------------------------- scratch dirs


def _traversable_by_others(path: Path) -> bool:
    """True when every directory from / down to ``path`` has the o+x bit."""
    p = path.resolve()
    return all(os.stat(d).st_mode & 0o001 for d in (p, *p.parents))


def make_scratch(prefix: str) -> Path:
    """Make a fresh scratch directory that the daemons' unprivileged users can reach.

    Not pytest's ``tmp_path``: it lives under ``/tmp/pytest-of-<user>`` (mode 0700),
    and Postfix/Dovecot workers running as ``postfix``/``nobody``/``dovecot`` must
    reach sockets, queues and Maildirs under the scratch dir.
    """
    for parent in (None, "/tmp"):
        d = Path(tempfile.mkdtemp(prefix=f"smtp-proto-{prefix}-", dir=parent))
        os.chmod(d, 0o755)
        if _traversable_by_others(d):
            return d
        shutil.rmtree(d, ignore_errors=True)
    raise ServerError(
        f"no scratch directory traversable by other users (TMPDIR={tempfile.gettempdir()!r} "
        "and /tmp both have a parent without o+x)"
    )


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def backdate(paths: Iterable[Path], seconds: float = 120.0) -> None:
    """Set mtime/atime into the past.

    Postfix waits ~1.5 s at start-up when main.cf is "too new" (written less than
    a second or two ago); backdating the config avoids that delay.
    """
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def nobody_ids() -> tuple[int, int]:
    """uid of ``nobody`` and gid of ``nogroup`` (Debian), used for mail delivery."""
    uid = pwd.getpwnam("nobody").pw_uid
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = pwd.getpwnam("nobody").pw_gid
    return uid, gid


def tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a log file, for error messages (empty if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- ports


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    All sockets are held open until every port is known, so the ports differ.
    Another process may still grab one before the server binds it: callers
    retry start-up with new ports when that happens.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def busy_ports(ports: Iterable[int]) -> list[int]:
    """Those of ``ports`` that cannot be bound on 127.0.0.1 right now (for diagnostics)."""
    busy: list[int] = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                busy.append(port)
    return busy


def start_in_scratch(what: str, prefix: str, attempts: int, start: Callable[[Path], T]) -> T:
    """``start(scratch)`` in a fresh scratch dir; on :class:`ServerError` (a port taken
    meanwhile, say) remove the dir and try again in a new one, ``attempts`` times in all."""
    errors: list[str] = []
    for _ in range(attempts):
        scratch = make_scratch(prefix)
        try:
            return start(scratch)
        except BaseException as exc:
            remove_scratch(scratch)
            if not isinstance(exc, ServerError):
                raise
            errors.append(str(exc))
    raise ServerError(f"{what} did not start:\n" + "\n=====\n".join(errors))


def startup_failure(
    exc: ServerError, process: ManagedProcess, ports: Iterable[int], logs: dict[str, Path]
) -> ServerError:
    """The error for a daemon that did not come up: stops ``process``, then adds which of
    ``ports`` another process holds and the end of each of ``logs`` (title -> file)."""
    process.stop(term_timeout=2.0)
    busy = busy_ports(ports)
    hint = f"\nport(s) {busy} taken by another process" if busy else ""
    details = "".join(f"\n--- {title}:\n{tail(path)}" for title, path in logs.items())
    return ServerError(f"{exc}{hint}{details}")


# --------------------------------------------------------------------------- installing

_install_lock = threading.Lock()
_install_attempted = False


def _missing(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if not os.access(p, os.X_OK)]


def ensure_installed(binaries: Iterable[str], what: str) -> None:
    """Make sure the given executables exist, installing the server packages if needed.

    As root, runs ``.ci/install-servers.sh`` (once per process) when something is
    missing. Otherwise raises :class:`ServerError` naming that script.
    """
    global _install_attempted
    wanted = list(binaries)
    missing = _missing(wanted)
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServerError(
            f"{what}: missing {', '.join(missing)}. Install the test servers as root with "
            f"`sh {INSTALL_SCRIPT.relative_to(REPO_ROOT)}` (from the repository root), "
            "then run the tests again."
        )
    with _install_lock:
        missing = _missing(wanted)
        if missing and not _install_attempted:
            _install_attempted = True
            try:
                r = subprocess.run(
                    ["sh", str(INSTALL_SCRIPT)],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ServerError(f"{what}: {INSTALL_SCRIPT} timed out") from exc
            if r.returncode != 0:
                raise ServerError(
                    f"{what}: {INSTALL_SCRIPT} failed (exit {r.returncode}):\n"
                    f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
                )
        missing = _missing(wanted)
    if missing:
        raise ServerError(
            f"{what}: still missing {', '.join(missing)} after running {INSTALL_SCRIPT}"
        )


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ServerError(
            f"{what} must be started as root (it switches to the postfix/dovecot/nobody users)"
        )


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rsplit(b")", 1)[1].split()
    return fields[0].decode(), int(fields[2])


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies.

    Zombies are ignored: a daemon's orphaned children are re-parented to PID 1,
    which on these machines may reap them only much later.
    """
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        st = _proc_stat(int(entry.name))
        if st is not None and st[1] == pgid and st[0] != "Z":
            found.append(int(entry.name))
    return found


_running: set[ManagedProcess] = set()
_running_lock = threading.Lock()


class ManagedProcess:
    """A daemon started in the foreground as the leader of a new session/process group.

    :meth:`stop` sends SIGTERM to the whole process group, waits (bounded) until
    no live member is left, then sends SIGKILL. Processes still running when the
    interpreter exits are killed by an ``atexit`` hook.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        # The child gets its own copy of the log file descriptor.
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        self.pid = self.popen.pid
        with _running_lock:
            _running.add(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def describe_exit(self) -> str:
        return f"{self.name} (pid {self.pid}) exited with status {self.popen.poll()}"

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _wait_group_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0)
            if self.popen.poll() is not None and not live_group_members(self.pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self, term_timeout: float = 5.0, kill_timeout: float = 5.0) -> None:
        """TERM the process group, then KILL it if it is still there after ``term_timeout``."""
        try:
            self._signal_group(signal.SIGTERM)
            if not self._wait_group_gone(term_timeout):
                self._signal_group(signal.SIGKILL)
                if not self._wait_group_gone(kill_timeout):
                    raise ServerError(
                        f"{self.name}: process group {self.pid} survived SIGKILL: "
                        f"{live_group_members(self.pid)}"
                    )
        finally:
            with _running_lock:
                _running.discard(self)


@atexit.register
def _kill_leftovers() -> None:
    with _running_lock:
        leftovers = list(_running)
    for p in leftovers:
        with contextlib.suppress(Exception):
            p.stop(term_timeout=1.0, kill_timeout=2.0)


# --------------------------------------------------------------------------- waiting


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.02,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than None/False; return that.

    ``abort`` may return a reason to give up early (e.g. the daemon died).
    Raises :class:`ServerError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        reason = abort() if abort is not None else None
        if reason:
            raise ServerError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise ServerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _greeting(address: tuple[str, int] | str, tls: ssl.SSLContext | None) -> bool | None:
    """One attempt: connect, read a ``220`` greeting, say QUIT. None when not (yet) possible."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            sock.settimeout(1.0)
            sock.connect(address)
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=LOOPBACK))
            if not sock.recv(512).startswith(b"220"):
                return None
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
                sock.recv(512)
            return True
    except OSError:  # ssl.SSLError is an OSError
        return None


def wait_for_greeting(
    address: tuple[str, int] | str,
    timeout: float,
    what: str,
    proc: ManagedProcess | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Wait until a server at ``(host, port)`` or a unix socket path sends ``220``."""

    def died() -> str | None:
        if proc is not None and not proc.alive():
            return proc.describe_exit()
        return None

    wait_until(lambda: _greeting(address, tls), timeout, what, abort=died)


def _accepts(port: int) -> bool:
    """One attempt: True when something accepts a TCP connection on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_ports(ports: Iterable[int], timeout: float, what: str, proc: ManagedProcess) -> None:
    """Wait until every one of ``ports`` on 127.0.0.1 accepts connections: the readiness of
    servers that send nothing before the client speaks (proxies). Gives up if ``proc`` exits."""

    def died() -> str | None:
        return None if proc.alive() else proc.describe_exit()

    wanted = list(ports)
    wait_until(
        lambda: all(_accepts(port) for port in wanted),
        timeout,
        f"{what} on port(s) {wanted}",
        abort=died,
    )


# --------------------------------------------------------------------------- maildirs


def maildir_files(maildir: Path) -> list[Path]:
    """Message files in a Maildir (``new/`` and ``cur/``), oldest delivery first."""
    files: list[tuple[int, str, Path]] = []
    for sub in ("new", "cur"):
        d = maildir / sub
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            continue
        for e in entries:
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime_ns, e.name, Path(e.path)))
    files.sort()
    return [p for _, _, p in files]


def read_maildir(maildir: Path) -> list[bytes]:
    """Contents of every message in a Maildir, oldest delivery first."""
    out: list[bytes] = []
    for p in maildir_files(maildir):
        with contextlib.suppress(FileNotFoundError):
            out.append(p.read_bytes())
    return out


def clear_maildir(maildir: Path) -> None:
    """Delete every delivered message (keeps the Maildir itself)."""
    for p in maildir_files(maildir):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


class MaildirInbox:
    """Reading the one Maildir (``maildir``) a test MTA delivers every recipient into.

    For the fixtures' dataclasses (Postfix, Exim), which declare ``maildir`` and
    ``log_path``. The MTA delivers in the background after it answered the end of the
    data, so tests wait (bounded) for what they expect to arrive.
    """

    maildir: Path
    log_path: Path

    def messages(self) -> list[bytes]:
        """Every message delivered so far (DSNs included), oldest delivery first."""
        return read_maildir(self.maildir)

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[bytes]:
        """Wait (bounded) until at least ``n`` messages are in the Maildir; return them all."""
        return wait_until(
            lambda: m if len(m := self.messages()) >= n else None,
            timeout,
            f"{n} message(s) in {self.maildir} (see {self.log_path})",
        )

    def wait_for_message(self, predicate: Callable[[bytes], bool], timeout: float = 10.0) -> bytes:
        """Wait (bounded) for a delivered message satisfying ``predicate``; return the first."""

        def probe() -> bytes | None:
            for m in self.messages():
                if predicate(m):
                    return m
            return None

        return wait_until(
            probe, timeout, f"a matching message in {self.maildir} (see {self.log_path})"
        )

    def clear(self) -> None:
        """Delete every delivered message."""
        clear_maildir(self.maildir)
