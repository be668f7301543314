"""A private Exim 4 daemon on 127.0.0.1, run from the unpacked Debian binary.

Exim cannot be an installed Debian package beside Postfix (both provide
mail-transport-agent), so ``.ci/install-servers.sh`` unpacks exim4-daemon-light into
``/opt/smtp-proto-test/exim4`` and creates the ``Debian-exim`` user. The daemon runs
in the foreground (``-bdf``) as the leader of its own process group, with a config
of its own (``-C``). Started as root with ``-C``, Exim gives up root for good and runs
as ``Debian-exim`` (mainlog: "exim user lost privilege for using -C option"), so
everything it writes to is owned by that user and it delivers as that user.

Layout under the scratch dir::

    exim.conf   the config (owned by root: Exim refuses others with -C)
    passwd      the AUTH accounts, "user: password" (lsearch; group Debian-exim)
    spool/      Exim's spool (queue, hints databases)
    log/        mainlog, rejectlog, paniclog
    mail/inbox/ the Maildir every recipient goes to
    exim.out    the daemon's stdout/stderr
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

from .certs import LocalCA
from .util import (
    LOOPBACK,
    USERS,
    MaildirInbox,
    ManagedProcess,
    ServerError,
    ensure_installed,
    free_ports,
    require_root,
    start_in_scratch,
    startup_failure,
    wait_for_greeting,
)

EXIM = "/opt/smtp-proto-test/exim4/usr/sbin/exim4"
"""The unpacked binary (``EXIM_DIR`` in ``.ci/install-servers.sh``)."""
EXIM_USER = "Debian-exim"
HOSTNAME = "exim.test"
BANNER_NOTE = "(smtp-proto test instance)"
MESSAGE_SIZE_LIMIT = 10 * 1024 * 1024

START_TIMEOUT = 30.0


@dataclass
class EximServer(MaildirInbox):
    """A running Exim test instance (both ports on 127.0.0.1).

    - ``port``: SMTP; STARTTLS offered (not required).
    - ``smtps_port``: implicit TLS (``SMTP_SSL``).

    EHLO advertises SIZE 8BITMIME DSN PIPELINING PIPECONNECT CHUNKING STARTTLS PRDR
    SMTPUTF8 HELP, and AUTH PLAIN LOGIN CRAM-MD5 only over TLS (this fixture's choice;
    the Postfix fixture offers AUTH in clear text too); never ENHANCEDSTATUSCODES, which
    Exim does not implement, so no reply text starts with an RFC 3463 code. Users:
    ``testuser``/``testpass`` and ``utf8user``/``pässwörd``. A client whose EHLO name is
    ``<mechanism>.only.test`` (``plain``, ``login``, ``cram-md5``) is offered that AUTH
    mechanism alone.

    Every recipient, of any domain, is delivered into the Maildir ``maildir``
    (``Envelope-to:`` names the recipient; Exim stores LF line ends), except local parts
    starting with ``reject`` (550 at RCPT) and ``tempfail`` (451 at RCPT). Exim delivers
    each message in the background right after answering the end of its data; there is
    no queue runner (nothing here defers a delivery). DSNs go back to the envelope
    sender, so they land in the same Maildir. ``log_path`` is the mainlog: one line per
    message received (``<=``, with ``P=<protocol>``, ``A=<authenticator>:<user>``, ``K``
    for CHUNKING) and per delivery (``=>``). Nothing is ever relayed off the machine.
    """

    host: str
    port: int
    smtps_port: int
    cafile: Path
    maildir: Path
    log_path: Path
    scratch: Path
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    _daemon: ManagedProcess | None = field(default=None, repr=False)

    def log(self) -> str:
        """The mainlog so far."""
        return self.log_path.read_text("utf-8", errors="replace")

    def stop(self) -> None:
        if self._daemon is not None:
            self._daemon.stop()
            self._daemon = None


EXIM_CONF = r"""# Exim test instance: EXIM_CONF of tests/servers/exim.py, filled in.
primary_hostname = @HOSTNAME@
qualify_domain = example.test
local_interfaces = <; @LOOPBACK@
daemon_smtp_ports = @SMTP_PORT@ : @SMTPS_PORT@
tls_on_connect_ports = @SMTPS_PORT@
spool_directory = @SCRATCH@/spool
log_file_path = @SCRATCH@/log/%slog
pid_file_path = @SCRATCH@/exim.pid
exim_user = @EXIM_USER@
exim_group = @EXIM_USER@
never_users = root
# Exim re-executes itself (deliveries, DSNs): this binary, not /usr/sbin/exim4.
exim_path = @EXIM@
keep_environment =
smtp_banner = $smtp_active_hostname ESMTP Exim $version_number @BANNER_NOTE@

# No DNS, no ident; deliver at once, however many messages a connection sends.
host_lookup =
rfc1413_hosts =
smtp_accept_queue_per_connection = 0

# DSN is off unless told; the other extensions are made explicit.
dsn_advertise_hosts = *
pipelining_advertise_hosts = *
chunking_advertise_hosts = *
smtputf8_advertise_hosts = *
prdr_enable = true
accept_8bitmime = true
message_size_limit = @MESSAGE_SIZE_LIMIT@

tls_advertise_hosts = *
tls_certificate = @CERTFILE@
tls_privatekey = @KEYFILE@
# AUTH only once the connection is encrypted (after STARTTLS, or on the implicit TLS port).
auth_advertise_hosts = ${if def:tls_in_cipher {*}{}}

acl_smtp_rcpt = acl_check_rcpt

# Test hook: a client whose EHLO name is <mechanism>.only.test (plain, login or cram-md5)
# is offered that AUTH mechanism alone, so that login() has to use it.
ONLY_MECHANISM = ${if match{$sender_helo_name}{\N^(.+)\.only\.test$\N}{$1}{any}}

begin acl

acl_check_rcpt:
  # Test hooks by local part; the texts start with no RFC 3463 code.
  deny    local_parts = ^reject
          message = <$local_part@$domain>: recipient rejected (test hook)
  defer   local_parts = ^tempfail
          message = <$local_part@$domain>: temporary failure (test hook)
  accept

begin routers

everyone:
  driver = accept
  transport = inbox

begin transports

inbox:
  driver = appendfile
  directory = @SCRATCH@/mail/inbox
  maildir_format
  delivery_date_add
  envelope_to_add
  return_path_add
  # Exim runs as @EXIM_USER@ (see tests/servers/exim.py), so it delivers as that user.
  user = @EXIM_USER@
  group = @EXIM_USER@
  mode = 0644

begin retry

*   *   F,1m,1m

begin authenticators

# "user: password" lines; an unknown user makes the lookup, so the login, fail.
# The authenticator's name is what the mainlog shows as A=<name>:<user>.
plain:
  driver = plaintext
  public_name = PLAIN
  server_advertise_condition = ${if inlist{ONLY_MECHANISM}{any:plain}}
  server_prompts = :
  server_condition = ${if eq{$auth3}{${lookup{$auth2}lsearch{@SCRATCH@/passwd}{$value}fail}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_advertise_condition = ${if inlist{ONLY_MECHANISM}{any:login}}
  server_prompts = Username:: : Password::
  server_condition = ${if eq{$auth2}{${lookup{$auth1}lsearch{@SCRATCH@/passwd}{$value}fail}}}
  server_set_id = $auth1

cram_md5:
  driver = cram_md5
  public_name = CRAM-MD5
  server_advertise_condition = ${if inlist{ONLY_MECHANISM}{any:cram-md5}}
  server_secret = ${lookup{$auth1}lsearch{@SCRATCH@/passwd}{$value}fail}
  server_set_id = $auth1
"""


def _exim_conf(scratch: Path, ports: tuple[int, int], ca: LocalCA) -> str:
    """``EXIM_CONF`` for this instance."""
    values = {
        "HOSTNAME": HOSTNAME,
        "LOOPBACK": LOOPBACK,
        "SMTP_PORT": str(ports[0]),
        "SMTPS_PORT": str(ports[1]),
        "SCRATCH": str(scratch),
        "EXIM_USER": EXIM_USER,
        "EXIM": EXIM,
        "BANNER_NOTE": BANNER_NOTE,
        "MESSAGE_SIZE_LIMIT": str(MESSAGE_SIZE_LIMIT),
        "CERTFILE": str(ca.certfile),
        "KEYFILE": str(ca.keyfile),
    }
    text = EXIM_CONF
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def _configure(scratch: Path, ports: tuple[int, int], ca: LocalCA) -> Path:
    """Write the config and password file; make the directories Exim writes its own."""
    uid = pwd.getpwnam(EXIM_USER).pw_uid
    gid = grp.getgrnam(EXIM_USER).gr_gid
    for d in (scratch / "spool", scratch / "log", scratch / "mail"):
        d.mkdir()
        os.chown(d, uid, gid)
    passwd = scratch / "passwd"
    passwd.write_text("".join(f"{u}: {p}\n" for u, p in USERS.items()), "utf-8")
    os.chown(passwd, 0, gid)
    os.chmod(passwd, 0o640)
    conf = scratch / "exim.conf"
    conf.write_text(_exim_conf(scratch, ports, ca), "utf-8")
    os.chmod(conf, 0o644)
    return conf


def _start_once(ca: LocalCA, scratch: Path) -> EximServer:
    smtp, smtps = free_ports(2)
    conf = _configure(scratch, (smtp, smtps), ca)
    log_path = scratch / "log" / "mainlog"
    daemon = ManagedProcess("exim", [EXIM, "-C", str(conf), "-bdf"], scratch / "exim.out")
    try:
        wait_for_greeting((LOOPBACK, smtp), START_TIMEOUT, f"Exim SMTP on port {smtp}", daemon)
        tls = ca.client_context()
        wait_for_greeting((LOOPBACK, smtps), START_TIMEOUT, f"Exim SMTPS on {smtps}", daemon, tls)
    except ServerError as exc:
        logs = {
            "exim output": scratch / "exim.out",
            "paniclog": scratch / "log" / "paniclog",
            "mainlog": log_path,
        }
        raise startup_failure(exc, daemon, (smtp, smtps), logs) from None
    return EximServer(
        host=LOOPBACK,
        port=smtp,
        smtps_port=smtps,
        cafile=ca.cafile,
        maildir=scratch / "mail" / "inbox",
        log_path=log_path,
        scratch=scratch,
        _daemon=daemon,
    )


def start_exim(ca: LocalCA, attempts: int = 3) -> EximServer:
    """Start Exim on free ports; retry with new ports if one got taken meanwhile."""
    ensure_installed((EXIM,), "Exim")
    require_root("Exim")
    return start_in_scratch("Exim", "exim", attempts, lambda scratch: _start_once(ca, scratch))
