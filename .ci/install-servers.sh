#!/bin/sh
# Install what the tests need: for the real-server fixtures (tests/servers/) Postfix,
# Dovecot (SASL auth for Postfix + LMTP), openssl, an unpacked Exim and the two proxies
# (Dante's SOCKS5 server, tinyproxy), with the system user the SOCKS5 username/password
# listener checks; for the docs build (tests/test_docs.py) graphviz, which draws the
# generated state diagram; valgrind, whose callgrind bench/instructions.py counts with
# (tests/test_bench.py).
#
# Usage (as root):  sh .ci/install-servers.sh
#
# Idempotent and cheap when everything is already installed. Safe to run
# concurrently (a lock serialises callers, e.g. several pytest-xdist workers).
# Never lets the packages start their system-wide daemons: the fixtures run
# private instances on 127.0.0.1 with configs of their own. Postfix is told
# "No configuration" through debconf, so /etc/postfix/main.cf is not written.
#
# Exim: Postfix and Exim both provide mail-transport-agent and conflict as Debian
# packages (installing exim4 would remove postfix), so Exim is never installed as a
# package. The exim4-daemon-light .deb is downloaded and unpacked into $EXIM_DIR
# (dpkg does not know about it); the shared libraries it links against are ordinary
# packages installed here, and the Debian-exim user its binary insists on is created.
#
# Dante: its "username" method (RFC 1929) has no password file of its own, it checks the
# name and password against the system's passwd/shadow. So a locked-down system account
# $PROXY_USER is created (no home, nologin shell) with the password $PROXY_PASS, set again
# whenever the stored hash does not match it.
set -eu

PACKAGES="postfix dovecot-core dovecot-lmtpd openssl graphviz nodejs dante-server tinyproxy valgrind"
# The libraries exim4-daemon-light (4.96, bookworm) depends on; none conflicts with Postfix.
EXIM_LIBRARIES="libc6 libcrypt1 libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0"
EXIM_DIR=/opt/smtp-proto-test/exim4
EXIM_BINARY="$EXIM_DIR/usr/sbin/exim4"
EXIM_USER=Debian-exim
# The SOCKS5 account of tests/servers/dante.py (its USERNAME and PASSWORD).
PROXY_USER=proxyuser
PROXY_PASS=proxypass

missing_packages() {
    out=""
    for p in $PACKAGES $EXIM_LIBRARIES; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$'; then
            out="$out $p"
        fi
    done
    echo "$out"
}

# True when $PROXY_USER exists and, where the shadow database is readable (as root), has
# the password $PROXY_PASS. perl is Essential in Debian and its crypt() is libcrypt's, as
# Dante's is.
proxy_user_ok() {
    getent passwd "$PROXY_USER" >/dev/null || return 1
    [ "$(id -u)" = 0 ] || return 0
    stored=$(getent shadow "$PROXY_USER" | cut -d: -f2)
    PW="$PROXY_PASS" HASH="$stored" perl -e 'exit(crypt($ENV{PW}, $ENV{HASH}) eq $ENV{HASH} ? 0 : 1)'
}

missing() {
    out=$(missing_packages)
    if [ ! -x "$EXIM_BINARY" ] || ! getent passwd "$EXIM_USER" >/dev/null; then
        out="$out exim4(unpacked)"
    fi
    proxy_user_ok || out="$out user:$PROXY_USER"
    echo "$out"
}

[ -n "$(missing)" ] || exit 0

if [ "$(id -u)" != 0 ]; then
    echo "install-servers.sh: must run as root to install:$(missing)" >&2
    exit 1
fi

# One installer at a time; re-check after getting the lock.
exec 9>/var/lock/smtp-proto-install-servers.lock
flock -w 600 9
[ -n "$(missing)" ] || exit 0

export DEBIAN_FRONTEND=noninteractive
export DEBCONF_NONINTERACTIVE_SEEN=true
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Keep maintainer scripts from starting daemons (they would take ports 25, 1080, 8888 etc.).
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
download=""
cleanup() {
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "$download" ]; then rm -rf "$download"; fi
}
trap cleanup EXIT INT TERM

APT="apt-get -q -o DPkg::Lock::Timeout=300"

lists_present() {
    ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'
}

# Runs "$@" (an apt-get command); apt-get update only when needed: no package lists yet,
# or the command fails (stale lists pointing at versions the mirror no longer has).
with_lists() {
    if ! lists_present; then
        $APT update
        "$@"
    elif ! "$@"; then
        echo "install-servers.sh: '$*' failed; refreshing package lists and retrying" >&2
        $APT update
        "$@"
    fi
}

install_packages() {
    todo=$(missing_packages)
    [ -n "$todo" ] || return 0
    # shellcheck disable=SC2086
    with_lists $APT install -y --no-install-recommends $todo
}

download_exim() {
    (cd "$download" && $APT download exim4-daemon-light)
}

install_exim() {
    getent passwd "$EXIM_USER" >/dev/null ||
        useradd --system --user-group --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin "$EXIM_USER"
    [ -x "$EXIM_BINARY" ] && return 0
    mkdir -p "$(dirname "$EXIM_DIR")"
    download=$(mktemp -d "$(dirname "$EXIM_DIR")/download.XXXXXX")
    chmod 755 "$download"
    # apt's download sandbox user must be able to write the .deb there.
    if getent passwd _apt >/dev/null; then chown _apt "$download"; fi
    with_lists download_exim
    dpkg-deb -x "$download"/exim4-daemon-light_*.deb "$download/root"
    if ldd "$download/root/usr/sbin/exim4" | grep 'not found'; then
        echo "install-servers.sh: the unpacked exim4 misses the libraries above" >&2
        exit 1
    fi
    # The package makes it setuid root; the tests start it as root, so nothing needs
    # that, and a setuid binary that never gets security updates is best avoided.
    chmod u-s "$download/root/usr/sbin/exim4"
    # Appears complete or not at all: a half-unpacked tree never looks installed.
    rm -rf "$EXIM_DIR"
    mv "$download/root" "$EXIM_DIR"
}

install_proxy_user() {
    getent passwd "$PROXY_USER" >/dev/null ||
        useradd --system --user-group --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin "$PROXY_USER"
    proxy_user_ok || echo "$PROXY_USER:$PROXY_PASS" | chpasswd
}

install_packages
install_exim
install_proxy_user

left=$(missing)
if [ -n "$left" ]; then
    echo "install-servers.sh: still missing after install:$left" >&2
    exit 1
fi
