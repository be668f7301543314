#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), one after the other, each on a copy of
# its seed corpus in a temporary directory: nothing is written into the repository.
#
#   fuzz/run_all.sh [SECONDS] [TARGET...]
#
# Prints, per target: executions, executions per second, coverage (libFuzzer's cov and ft)
# and findings.  A finding does not stop a target: each distinct one (exception type and
# place) is recorded with its smallest input (see fuzz/_driver.py), and fuzzing goes on until
# the time is up.  Exits non-zero if any target had a finding (or libFuzzer itself reported
# a crash, a timeout of a single input, or running out of memory); the temporary directory
# is then kept, with every reproducer, and its path printed.
set -uo pipefail

seconds=${1:-60}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_replies fuzz_ehlo fuzz_sasl fuzz_body fuzz_connection)
fi
if ! "$python" -c "import atheris" 2>/dev/null; then
    echo "atheris is not installed: pip install atheris" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/smtp-proto-fuzz.XXXXXX")
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the repository either
status=0
printf '%-16s %8s %10s %8s %6s %7s %s\n' target seconds execs "exec/s" cov ft findings
for target in "${targets[@]}"; do
    case $target in
        fuzz_replies | fuzz_ehlo) max_len=16384 ;;  # room for over-long lines and parameters
        *) max_len=4096 ;;
    esac
    dir=$work/$target
    mkdir -p "$dir/corpus" "$dir/findings" "$dir/artifacts"
    cp "$here/corpus/$target/"* "$dir/corpus/"
    start=$(date +%s)
    (
        cd "$dir" &&
            FUZZ_FINDINGS_DIR=$dir/findings "$python" "$here/$target.py" \
                -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
                -print_final_stats=1 -artifact_prefix="$dir/artifacts/" corpus >"$dir/log" 2>&1
    )
    rc=$?
    elapsed=$(($(date +%s) - start))
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$dir/log")
    rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$dir/log")
    last=$(grep -E '^#[0-9]+' "$dir/log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    found=$(find "$dir/findings" -name '*.input' | wc -l)
    crashed=$(find "$dir/artifacts" -type f | wc -l)
    printf '%-16s %8s %10s %8s %6s %7s %s\n' "$target" "$elapsed" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "$((found + crashed))"
    if [ "$found" -gt 0 ] || [ "$crashed" -gt 0 ] || [ "$rc" -ne 0 ]; then
        status=1
        for report in "$dir"/findings/*.txt; do
            [ -e "$report" ] || continue
            echo "    finding: $(head -n 1 "$report")  (input: ${report%.txt}.input)"
        done
        for artifact in "$dir"/artifacts/*; do
            [ -e "$artifact" ] || continue
            echo "    libFuzzer artifact: $artifact"
        done
        if [ "$rc" -ne 0 ]; then
            echo "    libFuzzer exited with status $rc; last lines of $dir/log:"
            tail -n 15 "$dir/log" | sed 's/^/        /'
        fi
    fi
done

if [ "$status" -ne 0 ]; then
    echo "findings: reproducers and logs kept in $work"
    echo "replay one (prints its traceback): python3 fuzz/TARGET.py INPUT"
else
    rm -rf "$work"
fi
exit "$status"
