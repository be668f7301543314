#!/bin/sh
# Install the Debian packages that the tests need: for the real-server fixtures
# (tests/servers/) Postfix, Dovecot (SASL auth for Postfix + LMTP) and openssl; for the
# docs build (tests/test_docs.py) graphviz, which draws the generated state diagram.
#
# Usage (as root):  sh .ci/install-servers.sh
#
# Idempotent and cheap when everything is already installed. Safe to run
# concurrently (a lock serialises callers, e.g. several pytest-xdist workers).
# Never lets the packages start their system-wide daemons: the fixtures run
# private instances on 127.0.0.1 with configs of their own. Postfix is told
# "No configuration" through debconf, so /etc/postfix/main.cf is not written.
# Do not add exim4 here: it conflicts with postfix.
set -eu

PACKAGES="postfix dovecot-core dovecot-lmtpd openssl graphviz"

missing() {
    out=""
    for p in $PACKAGES; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$'; then
            out="$out $p"
        fi
    done
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
todo=$(missing)
[ -n "$todo" ] || exit 0

export DEBIAN_FRONTEND=noninteractive
export DEBCONF_NONINTERACTIVE_SEEN=true
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Keep maintainer scripts from starting daemons (they would take ports 25 etc.).
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
cleanup() {
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT INT TERM

APT="apt-get -q -o DPkg::Lock::Timeout=300"

lists_present() {
    ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'
}

install() {
    # shellcheck disable=SC2086
    $APT install -y --no-install-recommends $todo
}

# apt-get update only when needed: no package lists yet, or the install fails
# (stale lists pointing at package versions the mirror no longer has).
if ! lists_present; then
    $APT update
    install
elif ! install; then
    echo "install-servers.sh: install failed; refreshing package lists and retrying" >&2
    $APT update
    install
fi

left=$(missing)
if [ -n "$left" ]; then
    echo "install-servers.sh: still missing after install:$left" >&2
    exit 1
fi
