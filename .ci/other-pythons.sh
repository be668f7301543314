#!/usr/bin/env bash
# The test suite on every other CPython >= 3.11 this machine has (python3.N on PATH, or a
# pyenv version), one interpreter per minor version, each in a fresh venv of its own with the
# project installed editable (the C accelerator is built for each). The adapters must be a
# drop-in for the running Python's smtplib, and smtplib, email and Django (the version pip
# picks) differ between Pythons; the README's test command covers python3's own version.
#
# The suite runs but for what does not change with Python and costs the most time (the
# whole suite takes 4-5 minutes a version; CI must stay well under 20): the tests marked
# realserver (the same adapters as against the scripted servers, to Postfix, Exim, Dovecot
# and the proxies), the hostile-peer fault and proxy attacks (a minute of deadlines waited
# out, through the adapter I/O that test_adapters_faults and test_adapters_deadlines run
# here), the benchmark harness and the mypy checks (the dev extra). About 3 minutes a
# version, the install included (3.12 and 3.13: 6.5 minutes, 3,882 tests each). Usage:
#   bash .ci/other-pythons.sh [pytest args, e.g. tests/core]
set -euo pipefail
cd "$(dirname "$0")/.."

this_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
declare -A seen=(["$this_version"]=1)
candidates=()
for minor in $(seq 11 20); do
    candidates+=("python3.$minor")
done
candidates+=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/python3)

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
tested=0
for candidate in "${candidates[@]}"; do
    # Prints nothing for another implementation or an older Python; fails for a name that
    # is not there (or a pyenv shim of a version pyenv has not selected).
    version=$("$candidate" -c 'import sys
if sys.implementation.name == "cpython" and sys.version_info >= (3, 11):
    print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    if [ -z "$version" ] || [ -n "${seen[$version]:-}" ]; then
        continue
    fi
    seen[$version]=1
    echo "== Python $version ($candidate): the test suite but for the real servers"
    "$candidate" -m venv "$workdir/$version"
    "$workdir/$version/bin/python" -m pip install -q -e '.[test]'
    "$workdir/$version/bin/python" -m pytest -q -p no:cacheprovider -m "not realserver" \
        --ignore=tests/test_attacks_faults.py --ignore=tests/test_attacks_proxy.py \
        --ignore=tests/test_bench.py --ignore=tests/test_typing.py "$@"
    tested=$((tested + 1))
done
if [ "$tested" = 0 ]; then
    echo "== no CPython >= 3.11 other than $this_version found: nothing more to test"
fi
