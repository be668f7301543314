#!/usr/bin/env bash
# Build the C accelerator (smtp_proto/_speedups.c) with AddressSanitizer and
# UndefinedBehaviorSanitizer and run the tests that drive it against that build: the property
# tests comparing it with the pure-Python code (the body functions, the reply parser and
# take_replies), the body encoder's, the reply parser's and the connection's own tests, and
# the fuzz targets' seed corpora.  Any
# out-of-bounds access, use after free or undefined behaviour aborts the run with a report.
# Nothing is written into the repository: the package is copied to a temporary directory,
# which PYTHONPATH puts before the installed one.
#
#   fuzz/sanitize_speedups.sh [extra pytest arguments]
#
# Needs gcc (or CC) with its sanitizer runtimes, and the test requirements.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
cc=${CC:-gcc}
work=$(mktemp -d "${TMPDIR:-/tmp}/smtp-proto-asan.XXXXXX")
trap 'rm -rf "$work"' EXIT

cp -r "$root/smtp_proto" "$work/smtp_proto"
cp -r "$root/transports" "$work/smtp_proto/transports"
rm -f "$work"/smtp_proto/_speedups*.so
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
"$cc" -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fno-sanitize-recover=all -I"$include" "$root/smtp_proto/_speedups.c" \
    -o "$work/smtp_proto/_speedups$suffix"

# The interpreter is not instrumented: preload the ASan runtime, and let every allocation go
# through malloc so that ASan sees the bounds of small bytes objects too.
export LD_PRELOAD
LD_PRELOAD=$("$cc" -print-file-name=libasan.so)
export ASAN_OPTIONS=detect_leaks=0 PYTHONMALLOC=malloc PYTHONPATH="$work"
# -P: the current directory (the repository, with its own build of the accelerator) is not put
# first on sys.path, so the copy on PYTHONPATH comes before any install of the package: a
# regular one in site-packages, or an editable one, whose import hook runs after the path.
# The interpreter keeps its site initialisation, so it runs in its virtualenv if it has one.
cd "$root"
"$python" -P - "$work" "$@" <<'EOF'
import sys

import pytest
import smtp_proto._speedups as speedups  # imported now, so the tests get this one

assert speedups.__file__.startswith(sys.argv[1]), f"not the sanitized build: {speedups.__file__}"
tests = [
    "tests/core/test_speedups.py", "tests/core/test_body.py", "tests/core/test_fuzz_corpus.py",
    "tests/core/test_replies_speedups.py", "tests/core/test_replies.py",
    "tests/core/test_fast_paths.py", "tests/core/test_take_replies_speedups.py",
    "tests/core/test_connection.py",
]
# --capture=sys: a sanitizer writes its report to fd 2, which must reach the terminal.
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--capture=sys", *tests, *sys.argv[2:]]))
EOF
