#!/bin/sh
# tests/fuzz/run.sh SECONDS TARGET...: run each libFuzzer target for SECONDS.
#
# `make fuzz FUZZ_SECONDS=N` calls it from the build directory with the
# target programs (tests/fuzz/fuzz-gguf ...).  For each target it makes a
# corpus directory in the build tree (never in the source tree), seeds it
# from the test data ($BL_TESTDATA, copied, not linked) and from the small
# valid files tests/fuzz-replay --write-seeds builds, runs the fuzzer with
# -max_total_time=SECONDS -rss_limit_mb=2048 (so one allocation over 2 GB is
# a finding), -timeout=10 (an input that takes 10 s is a finding) and
# -max_len=65536, and prints a summary line per target (runs, exec/s, the
# edges covered).  Exits 1 if any target found a crash, a leak, a timeout or an
# out-of-memory; the reproducer is in the crashes directory it names.
#
# Environment:
#   BL_TESTDATA   the shared test data (seeds); optional
#   FUZZ_WORKDIR  where corpora, crashes and logs go
#                 (default: BUILDDIR/tests/fuzz/work)
#   FUZZ_ARGS     extra libFuzzer options, e.g. "-use_value_profile=1
#                 -max_len=1048576"
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS TARGET..." >&2
    exit 2
fi
secs=$1
shift
case $secs in
    ''|*[!0-9]*) echo "$0: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
td=${BL_TESTDATA:-}
[ -n "$td" ] && [ ! -d "$td" ] && td=

# UBSan reports are crashes too, and stack traces help
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS
export BL_TESTDATA="$td"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS

# seed DIR NAME FILE [BYTES]: copy FILE into DIR as NAME, with BYTES (octal
# escapes for printf) in front.  (sh has no locals: s_* are its own.)
seed() {
    s_dir=$1 s_name=$2 s_file=$3 s_prefix=${4:-}
    [ -f "$s_file" ] || return 0
    if [ -n "$s_prefix" ]; then
        { printf "$s_prefix"; cat "$s_file"; } > "$s_dir/$s_name"
    else
        cp "$s_file" "$s_dir/$s_name"
    fi
}

# text_seeds DIR BYTE TAG: the first 400 bytes of each text file, BYTE in front
text_seeds() {
    for t_f in "$td"/text/*.txt; do
        [ -f "$t_f" ] || continue
        { printf "$2"; head -c 400 "$t_f"; } > "$1/td-text-$(basename "$t_f" .txt)-$3"
    done
}

status=0
summary=
for prog in "$@"; do
    if [ ! -x "$prog" ]; then
        echo "$0: $prog: not an executable" >&2
        status=1
        continue
    fi
    progdir=$(cd "$(dirname "$prog")" && pwd)
    builddir=$(cd "$progdir/../.." && pwd)
    name=$(basename "$prog")
    target=${name#fuzz-}
    if [ -n "${FUZZ_WORKDIR:-}" ]; then
        work=$FUZZ_WORKDIR
    elif [ "$builddir" = "$srcdir" ]; then
        # an in-tree build: keep the corpus out of the source tree
        work=${TMPDIR:-/tmp}/bitlens-fuzz-work
        echo "$0: in-tree build: corpora go to $work (set FUZZ_WORKDIR to choose)" >&2
    else
        work=$builddir/tests/fuzz/work
    fi
    corpus=$work/corpus-$target
    crashes=$work/crashes-$target
    log=$work/$target.log
    mkdir -p "$corpus" "$crashes" || exit 2

    # seeds: only add, never remove what earlier runs found
    if [ -n "$td" ]; then
        case $target in
        gguf|llama2c)
            for f in "$td"/models/*.gguf "$td"/tokenizers/*/*.gguf "$td"/models/*.bin; do
                seed "$corpus" "td-$(basename "$f")" "$f"
            done ;;
        tokenizer)
            for f in "$td"/models/*tok*.bin; do
                # mode 0 with 512 tokens (1 + 0x01ff), and mode 3 (counted)
                seed "$corpus" "td-mode0-$(basename "$f")" "$f" '\000\377\001'
                seed "$corpus" "td-mode3-$(basename "$f")" "$f" '\003'
            done
            text_seeds "$corpus" '\001' tok512      # mode 1: tok512.bin
            text_seeds "$corpus" '\006' spm-bos ;;  # mode 2: Llama vocabulary, BOS
        esac
    fi
    replay=$builddir/tests/fuzz-replay
    if [ ! -x "$replay" ]; then
        (cd "$builddir" && ${MAKE:-make} tests/fuzz-replay) > "$work/build-replay.log" 2>&1 ||
            echo "$0: could not build tests/fuzz-replay (see $work/build-replay.log): no synthetic seeds" >&2
    fi
    if [ -x "$replay" ]; then
        "$replay" --write-seeds "$target" "$corpus" 2>/dev/null ||
            echo "$0: $replay --write-seeds $target failed" >&2
    fi
    if nm "$builddir/lib/.libs/libbitlens_core.a" 2>/dev/null | grep -q '__sancov\|__sanitizer_cov'; then
        :
    else
        echo "$0: warning: lib/ is not instrumented for coverage, so libFuzzer sees only the target's" >&2
        echo "$0:   own edges; configure with CFLAGS='-g -O1 -fsanitize=fuzzer-no-link,address,undefined'" >&2
    fi

    stamp=$work/.start-$target
    : > "$stamp"
    n_seeds=$(ls "$corpus" | wc -l)
    echo "== $name: $secs s, corpus $corpus ($n_seeds files), log $log"
    # shellcheck disable=SC2086
    # -max_len: the test data's 1 MB models would set it to 1 MB and cut the
    # speed twentyfold; the synthetic seeds are a few KB (FUZZ_ARGS may
    # override: the last -max_len wins)
    "$prog" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$crashes/" ${FUZZ_ARGS:-} "$corpus" > "$log" 2>&1
    rc=$?
    # the last status line: "#N DONE cov: C ft: F corp: ... exec/s: E rss: R"
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    # artifacts of this run (earlier ones stay, and are not counted again)
    new=$(find "$crashes" -type f -newer "$stamp" 2>/dev/null)
    found=$(printf '%s' "$new" | grep -c .)
    if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
        result="FOUND SOMETHING (exit $rc): $(grep -m1 -E 'ERROR: |fuzz check failed|assertion failed|SUMMARY' "$log")"
        status=1
    else
        result=ok
    fi
    line=$(printf '%-16s %5ss %10s runs %7s exec/s  cov %-6s ft %-6s corpus %-6s rss %sMB  %s' \
        "$name" "$secs" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result")
    echo "$line"
    summary="$summary$line
"
    if [ "$found" -ne 0 ]; then
        printf '%s\n' "$new" | sed 's|^|    |'
        echo "    reproduce: $prog ARTIFACT; minimize: $prog -minimize_crash=1 -runs=10000 ARTIFACT"
    fi
done

echo
echo "== fuzz summary"
printf '%s' "$summary"
exit $status
