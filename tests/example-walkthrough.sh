#!/bin/sh
# tests/example-walkthrough.sh: examples/walkthrough.sh, the walk from
# record to report to charts, runs as a user runs it and leaves what it
# says it leaves (TAP).
#
# It runs the script with N=12 prompts of stories260K into $tmp/out and
# checks: exit 0, nothing left of a failed step; every file it makes exists
# and is not empty; the prompts file holds 12 lines; the report CSV has the
# header of bitlens-report(1) and rows for every blocks.L.hook_resid_post
# the trace holds; the charts are PNGs (signature) where gnuplot is
# installed, else their --script data and scripts are there; the .npy files
# start with numpy's magic; and a second run over the same OUTDIR (every
# step must --force) succeeds too.  The numbers themselves are checked by
# cli-report.sh and cli-plot.sh; this test is about the walk.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_SRCDIR, the source tree holding examples/walkthrough.sh; BL_TESTDATA,
# the shared test data.  Without gnuplot (Debian: gnuplot-nox) the PNG
# checks are skipped with a reason.

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
: "${BL_TESTDATA:=}"

SCRIPT=$BL_SRCDIR/examples/walkthrough.sh
D=$BL_TESTDATA
for f in "$D/models/stories260K.bin" "$D/models/tok512.bin" "$D/text/tinystories_train_head.txt"; do
    if [ -z "$D" ] || [ ! -r "$f" ]; then
        skip_all "test data not found ('$f'; configure --with-testdata=DIR)"
    fi
done
if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
GP=$(command -v gnuplot 2>/dev/null || true)
CHARTS="entropy bits spectrum lens probe"
OUT=$tmp/out

# walk NAME: run the script as a user would, output in $tmp/NAME.*.
# OMP_WAIT_POLICY=passive: under make -j the other tests keep the cores
# busy, and libgomp's threads spinning at the end of the probe's many short
# parallel loops then make report and plot tens of times slower (75 s
# instead of 2 s for one report); this test is about the walk, not speed.
walk() {
    set +e
    OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} N=12 BL_BIN=$BL_BIN BL_TESTDATA=$D sh "$SCRIPT" "$D/models/stories260K.bin" \
        "$D/models/tok512.bin" "$D/text/tinystories_train_head.txt" "$OUT" \
        >"$tmp/$1.out" 2>"$tmp/$1.err"
    echo $? >"$tmp/$1.rc"
    set -e
}

walk w1
if [ "$(cat "$tmp/w1.rc")" = 0 ]; then
    pass "walkthrough.sh with N=12 exits 0"
else
    fail "walkthrough.sh with N=12 exits 0 (exit $(cat "$tmp/w1.rc"))"
    diag <"$tmp/w1.err"
fi
check "each of its 8 steps is announced" \
    sh -c 'test "$(grep -c "^==> [1-8]\. " "$1")" = 8' sh "$tmp/w1.out"

# nonempty FILE...: every file exists and has bytes
nonempty() {
    for f in "$@"; do [ -s "$f" ] || return 1; done
}
for f in prompts.txt trace.blt report.txt report.csv spectrum.txt lens.txt npy/index.csv; do
    check "$f exists and is not empty" nonempty "$OUT/$f"
done
check "prompts.txt: 12 prompts, one a line" test "$(wc -l <"$OUT/prompts.txt" | tr -d ' ')" = 12
check "prompts.txt: no empty prompt" sh -c '! grep -q "^$" "$1"' sh "$OUT/prompts.txt"

# the hooks the trace holds, from bitlens info (stories260K: blocks 0..4)
"$BL_BIN" info "$OUT/trace.blt" 2>/dev/null |
    sed -n 's/^ *\(blocks\.[0-9]*\.hook_resid_post\) (width .*/\1/p' >"$tmp/hooks"
check "the trace holds the 5 blocks.L.hook_resid_post of stories260K" \
    test "$(wc -l <"$tmp/hooks" | tr -d ' ')" = 5

check "report.csv: the header hook,layer,k,estimate,value,lo,hi" \
    test "$(head -n 1 "$OUT/report.csv")" = "hook,layer,k,estimate,value,lo,hi"
missing=
while read -r h; do
    grep -q "^$h," "$OUT/report.csv" || missing="$missing $h"
done <"$tmp/hooks"
if [ -z "$missing" ]; then
    pass "report.csv: rows for every blocks.L.hook_resid_post"
else
    fail "report.csv: rows for every blocks.L.hook_resid_post"
    diag "no rows for:$missing"
fi
check "report.txt: a row of the table for every hook" \
    sh -c 'while read -r h; do grep -q "^$h " "$2" || exit 1; done <"$1"' sh "$tmp/hooks" "$OUT/report.txt"

missing=
while read -r h; do
    [ "$(od -An -c -N6 "$OUT/npy/$h.npy" 2>/dev/null | tr -d ' \n')" = '223NUMPY' ] ||
        missing="$missing $h"
done <"$tmp/hooks"
if [ -z "$missing" ]; then
    pass "npy/: a .npy array (numpy's magic) for every hook"
else
    fail "npy/: a .npy array (numpy's magic) for every hook"
    diag "missing or not .npy:$missing"
fi

# pngsig FILE: the first 8 bytes in hex
pngsig() { od -An -tx1 -N8 "$1" 2>/dev/null | tr -d ' \n'; }
if [ -n "$GP" ]; then
    for c in $CHARTS; do
        check "charts/$c.png has the PNG signature" test "$(pngsig "$OUT/charts/$c.png")" = 89504e470d0a1a0a
    done
else
    for c in $CHARTS; do
        skip "charts/$c.png has the PNG signature" "gnuplot is not installed (Debian: gnuplot-nox)"
        check "without gnuplot: charts/$c.gp and charts/$c.dat" nonempty "$OUT/charts/$c.gp" "$OUT/charts/$c.dat"
    done
    check "without gnuplot: the script says so, naming gnuplot-nox" grep -q gnuplot-nox "$tmp/w1.out"
fi

check "the closing list names every file made" \
    sh -c 'cd "$1" && find . -type f | sed "s|^\./||" | while read -r f; do grep -q "/$f\$" "$2" || exit 1; done' \
    sh "$OUT" "$tmp/w1.out"

# again over the same OUTDIR: every step replaces its output
walk w2
if [ "$(cat "$tmp/w2.rc")" = 0 ]; then
    pass "a second run over the same OUTDIR exits 0"
else
    fail "a second run over the same OUTDIR exits 0 (exit $(cat "$tmp/w2.rc"))"
    diag <"$tmp/w2.err"
fi

# usage errors: exit 2 with a message, before anything is written
set +e
BL_BIN=$BL_BIN sh "$SCRIPT" only-one-argument >/dev/null 2>"$tmp/e1"
s1=$?
N=x BL_BIN=$BL_BIN BL_TESTDATA=$D sh "$SCRIPT" "$D/models/stories260K.bin" \
    "$D/models/tok512.bin" "$D/text/tinystories_train_head.txt" "$tmp/e-out" >/dev/null 2>"$tmp/e2"
s2=$?
BL_BIN=$BL_BIN sh "$SCRIPT" "$tmp/no-such-model" "$D/models/tok512.bin" \
    "$D/text/tinystories_train_head.txt" "$tmp/e-out" >/dev/null 2>"$tmp/e3"
s3=$?
set -e
check "one argument: usage on stderr, exit 2" sh -c 'test "$1" = 2 && grep -q "^usage:" "$2"' sh "$s1" "$tmp/e1"
check "N=x: exit 2 with a message naming N" sh -c 'test "$1" = 2 && grep -q "N=.x." "$2"' sh "$s2" "$tmp/e2"
check "a missing model: exit 2 with a message naming it" \
    sh -c 'test "$1" = 2 && grep -q "no-such-model" "$2"' sh "$s3" "$tmp/e3"
check "usage errors write nothing" test ! -e "$tmp/e-out"

done_testing
