#!/bin/sh
# tests/example-probe.sh: examples/probe-norms, the example program that
# registers its own probes, builds against the public API and prints sane
# tables on stories260K (TAP).
#
# The prompt is the first 16 positions of the golden llama2.c run
# (golden/stories260K: "Once upon a time, there was a little girl named
# Lily." is ids[0..15] there), so two of the three tables have independent
# answers:
#   - the L2 norm of blocks.L.hook_resid_post at each position equals the
#     norm of the golden resid_post row (run.c's own dump), within 2e-3
#     (the example prints 3 decimals: 5e-4 of rounding, plus the 1e-5 or so
#     by which bitlens and run.c differ on rows of norm up to 19);
#   - the baseline mean next-token surprisal equals the one computed here
#     from the golden logits (rows 0..14, next tokens ids[1..15]), within
#     1e-3 (4 decimals printed; logits agree to about 2e-5);
# and the third is checked for what must hold: attention-pattern entropies
# lie in [0, log2 16 = 4] bits, and zeroing a head's hook_z changes the
# surprisal (a probe that writes takes effect) by finite amounts.
#
# Environment (set by `make check`): BL_BUILDDIR, the build tree holding
# examples/probe-norms; BL_TESTDATA, the shared test data.

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_TESTDATA:=}"

EX=$BL_BUILDDIR/examples/probe-norms
BIN=$BL_TESTDATA/models/stories260K.bin
TOK=$BL_TESTDATA/models/tok512.bin
G=$BL_TESTDATA/golden/stories260K
# td in a command substitution would only leave the subshell: check here
for f in "$BIN" "$TOK" "$G/resid_post.f32" "$G/logits.f32" "$G/tokens.json"; do
    [ -r "$f" ] || skip_all "test data not found ('$f'; configure --with-testdata=DIR)"
done
[ -x "$EX" ] || skip_all "'$EX' is not built (it is a check program: make check builds it)"

PROMPT='Once upon a time, there was a little girl named Lily.'
L=5 P=16 H=8 NG=48 V=512

if "$EX" -z "$TOK" -p "$PROMPT" "$BIN" >"$tmp/out" 2>"$tmp/err"; then
    pass "probe-norms runs on stories260K"
else
    fail "probe-norms runs on stories260K"
    diag <"$tmp/err"
fi
check "nothing on stderr" test ! -s "$tmp/err"
check "the first line names the model and the prompt length" \
    grep -qx "# stories260K.bin: $L layers, $H heads, dim 64; prompt of $P tokens" "$tmp/out"

# table NAME: the data lines of one table (after '# NAME:', up to a blank)
table() {
    awk -v t="$1" '
        /^# / { if (index($0, "# " t ":") == 1) on = 1; next }
        /^$/ { on = 0; next }
        on && $1 ~ /^[0-9]+$/ { print }
    ' "$tmp/out"
}
table norms >"$tmp/norms"
table entropy >"$tmp/entropy"
table ablation >"$tmp/ablation"

check "norms: one row per position ($P), $L layers each" \
    awk -v P="$P" -v L="$L" '$1 != NR - 1 || NF < L + 1 { bad = 1 } END { exit bad || NR != P }' "$tmp/norms"

# golden norms: resid_post.f32 is [L x NG x 64] f32 little-endian (read
# natively: the test data and the test machines are little-endian)
od -An -v -t f4 -w256 "$G/resid_post.f32" |
    awk -v NG="$NG" -v P="$P" '{
        r = NR - 1; l = int(r / NG); p = r % NG
        if (p >= P) next
        s = 0
        for (i = 1; i <= NF; i++) s += $i * $i
        printf "%d %d %.6f\n", l, p, sqrt(s)
    }' >"$tmp/gold-norms"
check "golden resid_post read ($L x $P rows)" test "$(wc -l <"$tmp/gold-norms")" -eq $((L * P))
awk -v L="$L" '
    NR == FNR { g[$1 " " $2] = $3; next }
    { for (l = 0; l < L; l++) {
          x = $(NF - L + 1 + l); d = x - g[l " " $1]; if (d < 0) d = -d
          if (!(x > 0) || d > 2e-3) { printf "layer %d position %d: %s, golden %s\n", l, $1, x, g[l " " $1]; bad = 1 }
          n++ } }
    END { exit bad || n != L * 16 }
' "$tmp/gold-norms" "$tmp/norms" >"$tmp/d" && ok=1 || ok=0
check "norms: ||blocks.L.hook_resid_post|| equals run.c's resid_post norms within 2e-3" test "$ok" = 1
diag <"$tmp/d"

check "entropy: $L rows of $H heads, each in [0, 4] bits" \
    awk -v L="$L" -v H="$H" '
        NF != H + 1 || $1 != NR - 1 { bad = 1 }
        { for (i = 2; i <= NF; i++) if (!($i >= 0 && $i <= 4.0005)) bad = 1 }
        END { exit bad || NR != L }' "$tmp/entropy"

# golden baseline: mean over t = 0..P-2 of -log2 softmax(logits[t])[ids[t+1]]
ids=$(grep -o '"ids": *\[[^]]*\]' "$G/tokens.json" | sed 's/.*\[//; s/\]//; s/,/ /g')
od -An -v -t f4 -w2048 "$G/logits.f32" |
    awk -v ids="$ids" -v P="$P" '
        BEGIN { split(ids, id, " ") }
        NR < P {
            m = $1
            for (i = 2; i <= NF; i++) if ($i > m) m = $i
            z = 0
            for (i = 1; i <= NF; i++) z += exp($i - m)
            s += -($(id[NR + 1] + 1) - m - log(z)) / log(2)
        }
        END { printf "%.6f\n", s / (P - 1) }' >"$tmp/gold-base"
base=$(sed -n 's/.*; baseline \([0-9.]*\) bits$/\1/p' "$tmp/out")
gold=$(cat "$tmp/gold-base")
if [ -n "$base" ] && awk -v a="$base" -v b="$gold" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-3) }'; then
    pass "ablation: baseline surprisal $base bits equals the golden logits' $gold"
else
    fail "ablation: baseline surprisal '$base' bits equals the golden logits' $gold"
fi

check "ablation: $L rows of $H finite changes, not all zero" \
    awk -v L="$L" -v H="$H" '
        NF != H + 1 || $1 != NR - 1 { bad = 1 }
        { for (i = 2; i <= NF; i++) {
              if ($i !~ /^[-+][0-9]+\.[0-9]+$/ || $i + 0 > 20 || $i + 0 < -20) bad = 1
              if ($i + 0 != 0) nz++ } }
        END { exit bad || NR != L || nz == 0 }' "$tmp/ablation"

# the same run gives the same bits
"$EX" -z "$TOK" -p "$PROMPT" "$BIN" >"$tmp/out2" 2>/dev/null || true
check "a second run prints the same tables" cmp -s "$tmp/out" "$tmp/out2"

# errors: a usage error is 2, a model that cannot be loaded 1, naming it
set +e
"$EX" >/dev/null 2>"$tmp/e1"; s1=$?
"$EX" "$tmp/no-such-model" >/dev/null 2>"$tmp/e2"; s2=$?
set -e
check "no model: usage on stderr, exit 2" test "$s1" = 2 -a -s "$tmp/e1"
check "a missing model: exit 1 with a message naming it" \
    sh -c 'test "$1" = 1 && grep -q "no-such-model" "$2"' sh "$s2" "$tmp/e2"

done_testing
