#!/bin/sh
# tests/cli-report.sh: `bitlens report`, `spectrum`, `lens` and `probe` (TAP).
#
# Traces of stories260K over the first 20 paragraphs of the TinyStories
# head in the test data (about 2200 positions), in f32 and in f16.  What
# is checked comes from outside the analysis code where it can:
#   - numpy (float64) from `bitlens export --format npy`: the population
#     covariance's eigenvalues (numpy.linalg.eigvalsh), participation ratio,
#     effective rank, c90/c99, the Gaussian capacity at an explicit --noise
#     and at the default floor (the mean rounding variance of the stored
#     values, recomputed from numpy.frexp), and the zlib figure (Python's
#     zlib on the byte planes bitlens-spectrum(1) describes);
#   - awk from `bitlens export --format csv`: mean token entropy,
#     H_unigram(next), the percentile blocks, lens bits per layer;
#   - the same rows given as one trace, as two, and grouped by --memory;
#   - byte-identical output for the same seed, twice and with 1 and 2
#     threads; a new seed moves intervals, not point estimates;
#   - the probe against the lens of the same layer;
#   - the drafter channel against python3 sums over the trace's DRFT
#     records and `bitlens export`'s stats.csv (1e-6 relative);
#   - every error: exit 2 and a message naming the file.
# Tolerances: 1e-6 relative where bitlens prints 9 significant digits
# (--csv; the errors seen are about 3e-9, the digits' own rounding),
# 1e-9 where both sides are bitlens' own doubles (--json).
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_TESTDATA, the shared test data.  numpy (python3-numpy) and python3
# are used where present; their checks are skipped with a reason without.

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
: "${BL_TESTDATA:=}"

if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
D=$BL_TESTDATA
MODEL=$D/models/stories260K.bin
TOK=$D/models/tok512.bin
OTHER=$D/models/llama2xs.bin
TEXT=$D/text/tinystories_train_head.txt
for f in "$MODEL" "$TOK" "$OTHER" "$TEXT"; do
    if [ ! -r "$f" ]; then
        echo "1..0 # SKIP test data not found ('$f'; configure --with-testdata=DIR)"
        exit 0
    fi
done
B=$BL_BIN
PY=$(find_numpy_python)
PY3=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1; then PY3=$p; break; fi
done
cd "$tmp"

# ------------------------------------------------------------------ helpers
# near GOT WANT TOL: |GOT - WANT| <= TOL |WANT| (both numbers)
near() {
    awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN {
        if (g == "" || w == "") exit 1
        d = g - w; if (d < 0) d = -d
        a = w < 0 ? -w : w
        exit !(d <= t * a) }'
}

# is_near DESCRIPTION GOT WANT TOL
is_near() {
    if near "$2" "$3" "$4"; then
        pass "$1"
    else
        fail "$1"
        echo "#   got:  '$2'"
        echo "#   want: '$3' (relative $4)"
    fi
}

# est CSV HOOK ESTIMATE [K] [COLUMN]: a value of a report/probe --csv
# (hook,layer,k,estimate,value,lo,hi); COLUMN 5 value, 6 lo, 7 hi
est() {
    awk -F, -v h="$2" -v e="$3" -v k="${4:-}" -v c="${5:-5}" \
        '$1 == h && $4 == e && $3 == k { print $c; exit }' "$1"
}

# lensv CSV LAYER QUANTITY STATISTIC: a value of lens --csv
lensv() {
    awk -F, -v l="$2" -v q="$3" -v s="$4" '$1 == l && $2 == q && $3 == s { print $4; exit }' "$1"
}

# maxrel: "GOT WANT" pairs on stdin; the largest relative difference
maxrel() {
    awk '{ d = $1 - $2; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2
           r = a > 0 ? d / a : d; if (r > m) m = r } END { printf "%.3g\n", m + 0 }'
}

# ------------------------------------------------------------------ traces
# the first 20 paragraphs of the TinyStories head, each on one line
awk 'BEGIN { RS = "" } NR <= 20 { gsub(/[ \t]*\n[ \t]*/, " "); print }' "$TEXT" >prompts.txt
head -n 10 prompts.txt >first.txt
tail -n +11 prompts.txt >second.txt
head -n 3 prompts.txt >three.txt
rec() { "$B" record -q -m "$MODEL" -z "$TOK" "$@"; }
rec -f prompts.txt --dtype f32 -o t32.blt
rec -f prompts.txt -o t16.blt
rec -f first.txt --dtype f32 -o a.blt
rec -f second.txt --dtype f32 -o b.blt
rec -f three.txt -n 8 -t 0.5 -o m.blt \
    --hooks 'hook_embed,blocks.*.hook_resid_post,blocks.*.attn.hook_pattern,blocks.1.mlp.hook_post'
rec -f three.txt --no-hash -o nohash.blt
rec -f three.txt --no-lens -o nolens.blt
"$B" record -q -m "$OTHER" -z "$TOK" -f three.txt -o other.blt
is "20 prompts, one paragraph a line" "$(wc -l <prompts.txt | tr -d ' ')" 20
"$B" export -q t32.blt --format csv -o c32
"$B" export -q m.blt --format csv -o cm
# positions evaluated, and those with a next token, from stats.csv
npos=$(($(wc -l <c32/stats.csv) - 1))
nnext=$(awk -F, 'NR > 1 && $4 >= 0' c32/stats.csv | wc -l | tr -d ' ')
diag "t32.blt: $npos positions, $nnext with a next token"

# ------------------------------------------------------------------ the table
run r "$B" report m.blt -k 1 --epochs 2 --bootstrap 20
is "report: exit 0" "$(rc r)" 0
# the rows of the main table: from its header line to the blank line
awk '/^hook  / && / capacity / { t = 1; next } t && /^$/ { exit } t { print $1 }' r.out >rows
is "report: one row per recorded hook of fixed width, in the forward pass's order" \
    "$(tr '\n' ' ' <rows)" \
    "hook_embed blocks.0.hook_resid_post blocks.1.mlp.hook_post blocks.1.hook_resid_post blocks.2.hook_resid_post blocks.3.hook_resid_post blocks.4.hook_resid_post "
check "report: the columns raw .. probe+1, cap/H, probe/H" \
    grep -Eq '^hook +d +raw +PR +erank +c90 +c99 +capacity +zlib +lens +probe\+1 +cap/H +probe/H$' r.out
is "report: d and raw = 32 d of each row" "$(awk '/^hook  / && / capacity / { t = 1; next } t && /^$/ { exit }
    t { printf "%s/%s ", $2, $3 }' r.out)" "64/2048 64/2048 172/5504 64/2048 64/2048 64/2048 64/2048 "
is "report: lens only on resid_post rows" "$(awk '/^hook  / && / capacity / { t = 1; next } t && /^$/ { exit }
    t { printf "%s ", ($10 == "-") == ($1 !~ /resid_post/) }' r.out)" "1 1 1 1 1 1 1 "
check "report: the attention patterns left out, with a note" \
    grep -q 'warning: 5 attention score/pattern hook(s) left out' r.err
check "report: a 95% interval block" grep -q '^95% intervals  *capacity  *cap/H  *lens  *probe+1$' r.out
n_m=$(($(wc -l <cm/stats.csv) - 1))
nn_m=$(awk -F, 'NR > 1 && $4 >= 0' cm/stats.csv | wc -l | tr -d ' ')
is "report: the token block: entropy at T=1 and T=0.5 over $n_m positions, surprisal over $nn_m" "$(sed -n '/^token channel, bits/,$p' r.out |
    awk 'NR > 1 { n = NF - 8; l = ""; for (i = 1; i < n; i++) l = l (i > 1 ? " " : "") $i; printf "%s=%s|", l, $n }')" \
    "entropy (T=1)=$n_m|entropy (T=0.5)=$n_m|surprisal=$nn_m|"
check "report: the preamble names the bound log2|V| = 9.000 bits" grep -q 'bound log2|V| = 9.000 bits per pass' r.out

# ------------------------------------------------------------------ token channel (awk)
run r "$B" report t32.blt --no-probe --bootstrap 0 --csv
is "report --csv: exit 0" "$(rc r)" 0
cp r.out r32.csv
is "report --csv: the header" "$(head -n 1 r32.csv)" "hook,layer,k,estimate,value,lo,hi"
is "report --csv: prompts, positions" "$(est r32.csv tokens prompts) $(est r32.csv tokens positions)" "20 $npos"
is "report --csv: --bootstrap 0 leaves lo and hi empty" \
    "$(awk -F, 'NR > 1 && ($6 != "" || $7 != "")' r32.csv | wc -l | tr -d ' ')" 0
want=$(awk -F, 'NR > 1 { s += $5; n++ } END { printf "%.17g", s / n }' c32/stats.csv)
is_near "mean token entropy = mean of stats.csv's entropy_bits ($want)" \
    "$(est r32.csv tokens mean_entropy)" "$want" 1e-6
hu=$(awk -F, 'NR > 1 && $4 >= 0 { c[$4]++; n++ }
    END { for (v in c) { q = c[v] / n; h -= q * log(q) / log(2) } printf "%.17g", h }' c32/stats.csv)
is_near "H_unigram(next) = plug-in entropy of stats.csv's next ($hu)" "$(est r32.csv tokens h_unigram_next)" "$hu" 1e-6
is_near "log2_vocab = 9" "$(est r32.csv tokens log2_vocab)" 9 1e-12
# percentile blocks: GSL's quantile of the sorted values, (1 - f) x[i] + f x[i + 1], i + f = (n - 1) p
pct() {
    sort -g | awk -v p="$1" '{ x[NR - 1] = $1 } END {
        if (p == "n") { print NR; exit }
        if (p == "min") { printf "%.17g\n", x[0]; exit }
        if (p == "max") { printf "%.17g\n", x[NR - 1]; exit }
        q = (NR - 1) * p; i = int(q); f = q - i
        printf "%.17g\n", i + 1 < NR ? (1 - f) * x[i] + f * x[i + 1] : x[i] }'
}
bad=0
for s in n min p01 p05 median p95 p99 max; do
    case $s in p01) p=0.01 ;; p05) p=0.05 ;; median) p=0.5 ;; p95) p=0.95 ;; p99) p=0.99 ;; *) p=$s ;; esac
    w=$(awk -F, 'NR > 1 { print $5 }' c32/stats.csv | pct "$p")
    g=$(est r32.csv tokens "entropy.$s")
    near "$g" "$w" 1e-6 || { echo "# entropy.$s: $g, want $w"; bad=1; }
    w=$(awk -F, 'NR > 1 && $7 != "" { print $7 }' c32/stats.csv | pct "$p")
    g=$(est r32.csv tokens "surprisal.$s")
    near "$g" "$w" 1e-6 || { echo "# surprisal.$s: $g, want $w"; bad=1; }
done
is "percentile blocks of entropy and surprisal (n, min, 1% .. 99%, max) as sorted stats.csv gives them" "$bad" 0

# lens bits per layer: H_unigram(next) - mean cross-entropy of lens.csv
run l "$B" lens t32.blt --csv --bootstrap 0
is "lens --csv: exit 0" "$(rc l)" 0
is "lens --csv: the header" "$(head -n 1 l.out)" "layer,quantity,statistic,value"
awk -F, -v h="$hu" 'NR > 1 && $5 != "" { s[$3] += $5; n[$3]++ }
    END { for (l = 0; l < 5; l++) printf "%d %.17g %.17g\n", l, h - s[l] / n[l], s[l] / n[l] }' c32/lens.csv >lensref
bad=0
while read -r l w ce; do
    g=$(est r32.csv "blocks.$l.hook_resid_post" lens_bits)
    near "$g" "$w" 1e-6 || { echo "# layer $l: report lens_bits $g, want $w"; bad=1; }
    g=$(lensv l.out "$l" bits value)
    near "$g" "$w" 1e-6 || { echo "# layer $l: lens bits $g, want $w"; bad=1; }
    g=$(lensv l.out "$l" cross_entropy mean)
    near "$g" "$ce" 1e-6 || { echo "# layer $l: lens mean CE $g, want $ce"; bad=1; }
done <lensref
is "lens bits per layer = H_unigram(next) - mean CE of lens.csv (report and lens)" "$bad" 0
diag "lens bits by layer: $(awk '{ printf "%.3f ", $2 }' lensref)"
is "lens: KL of the last layer is 0 (the model's own distribution)" \
    "$(lensv l.out 4 kl max | awk '{ print ($1 < 1e-3) }')" 1

# ------------------------------------------------------------------ numpy
if [ -n "$PY" ]; then
    cat >ref.py <<'EOF'
# ref.py NPYDIR SPECTRUM_CSV REPORT_CSV DEFAULT_CSV NOISE P: the estimates
# of five resid_post hooks recomputed in float64 from the exported rows
import csv, sys, zlib
import numpy as np
npy, spec, rep, drep = sys.argv[1:5]
noise, p = float(sys.argv[5]), int(sys.argv[6])
emin = {24: -126, 11: -14, 8: -126}[p]
S = {}
for r in csv.DictReader(open(spec)):
    S.setdefault(r["hook"], []).append(float(r["eigenvalue"]))
def est(fn):
    return {(r["hook"], r["estimate"]): r["value"] for r in csv.DictReader(open(fn))}
R, DR = est(rep), est(drep)
worst, bad = {}, []
def rel(name, got, want):
    e = abs(float(got) - want) / abs(want)
    worst[name] = max(worst.get(name, 0.0), e)
def zbits(x, var):
    # the quantizer and byte planes of bitlens-spectrum(1), Python's zlib
    step = np.sqrt(12 * var)
    v = np.floor(x.ravel() / step + 0.5).clip(-2.0**31, 2.0**31 - 1).astype(np.int64)
    zz = np.where(v >= 0, 2 * v, -2 * v - 1).astype(np.uint32)
    total = 0
    for b0 in range(0, zz.size, 65536):
        blk = zz[b0:b0 + 65536]
        for k in range(4):
            plane = ((blk >> (8 * k)) & 255).astype(np.uint8).tobytes()
            sizes = []
            for s in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE):
                co = zlib.compressobj(6, zlib.DEFLATED, -15, 8, s)
                sizes.append(len(co.compress(plane) + co.flush()))
            total += min(sizes)
    return 8.0 * total / zz.size
for l in range(5):
    h = "blocks.%d.hook_resid_post" % l
    x = np.load("%s/%s.npy" % (npy, h)).astype(np.float64)
    n, d = x.shape
    c = x - x.mean(axis=0)
    lam = np.linalg.eigvalsh(c.T @ c / n)[::-1].clip(min=0)
    tot = lam.sum()
    q = lam / tot
    cum = np.cumsum(lam) / tot
    got = np.array(S[h])
    if got.size != d:
        bad.append("%s: %d eigenvalues, want %d" % (h, got.size, d))
        continue
    rel("sum of eigenvalues", got.sum(), tot)
    rel("sum of squared eigenvalues", (got**2).sum(), (lam**2).sum())
    worst["eigenvalues, max |diff| / l_1"] = max(worst.get("eigenvalues, max |diff| / l_1", 0.0),
                                                 np.abs(got - lam).max() / lam[0])
    rel("participation ratio", R[(h, "participation_ratio")], tot**2 / (lam**2).sum())
    rel("effective rank", R[(h, "effective_rank")], np.exp(-(q[q > 0] * np.log(q[q > 0])).sum()))
    rel("capacity at --noise", R[(h, "capacity_bits")], 0.5 * np.log2(1 + lam / noise).sum())
    rel("mean square", R[(h, "mean_square")], (x * x).mean())
    c90 = int(np.argmax(cum >= 0.9 - 1e-12)) + 1
    c99 = int(np.argmax(cum >= 0.99 - 1e-12)) + 1
    for key, w in (("components_90", c90), ("components_99", c99)):
        for RR in (R, DR):
            if int(float(RR[(h, key)])) != w:
                bad.append("%s %s: %s, numpy %d" % (h, key, RR[(h, key)], w))
    # the default floor: the mean of u^2/12 over the stored values, u the
    # grid step of each value's binade (u^2/16 at a power of two)
    m, e = np.frexp(np.abs(x))
    e = np.where(m == 0, emin, e - 1)
    edge = (m == 0.5) & (e > emin)
    e = np.maximum(e, emin)
    u2 = 2.0 ** (2 * (e + 1 - p))
    floor = np.where(edge, u2 / 16, u2 / 12).mean()
    rel("default noise floor", DR[(h, "noise_var")], floor)
    rel("capacity at the default floor", DR[(h, "capacity_bits")], 0.5 * np.log2(1 + lam / floor).sum())
    rel("zlib bits per element at --noise", R[(h, "zlib_bits_per_element")], zbits(x, noise))
    rel("zlib bits per element at the default floor", DR[(h, "zlib_bits_per_element")], zbits(x, floor))
for k in sorted(worst):
    print("# %-45s %.3g" % (k, worst[k]))
for b in bad:
    print("# " + b)
print("worst %.3g bad %d" % (max(worst.values()), len(bad)))
EOF
    for dt in f32 f16; do
        case $dt in f32) t=t32 p=24 ;; f16) t=t16 p=11 ;; esac
        "$B" export -q $t.blt --format npy -o n$t
        "$B" spectrum -q $t.blt --csv --bootstrap 0 --noise 1e-3 >s$t.csv
        "$B" report -q $t.blt --csv --bootstrap 0 --noise 1e-3 --no-probe --no-lens >e$t.csv
        "$B" report -q $t.blt --csv --bootstrap 0 --no-probe --no-lens >d$t.csv
        out=$("$PY" ref.py n$t s$t.csv e$t.csv d$t.csv 1e-3 $p) || true
        printf '%s\n' "$out" | grep '^#' || true
        w=$(printf '%s\n' "$out" | sed -n 's/^worst \([^ ]*\) bad \([0-9]*\)$/\1 \2/p')
        is "numpy, $dt: eigenvalues, PR, erank, capacity, floor, zlib within 1e-6; c90/c99 exact" \
            "$(echo "$w" | awk '{ print ($1 != "" && $1 <= 1e-6 && $2 == 0) ? "ok" : "worst " $1 ", " $2 " mismatches" }')" ok
    done
    is "spectrum --csv: header" "$(head -n 1 st32.csv)" "hook,layer,i,eigenvalue,fraction,cumulative"
    is "spectrum --csv: 64 eigenvalues for each of 5 hooks, descending, cumulative ending at 1" "$(awk -F, '
        NR == 1 { next }
        { n[$1]++; if ($2 "" != substr($1, 8, 1) || $3 != n[$1] - 1) bad++
          if ($3 > 0 && $4 > prev + 0) bad++; prev = $4; last[$1] = $6; sf[$1] += $5 }
        END { for (h in n) { k++; if (n[h] != 64 || last[h] < 1 - 1e-6 || last[h] > 1 + 1e-6 ||
              sf[h] < 1 - 1e-6 || sf[h] > 1 + 1e-6) bad++ }
              print k, bad + 0 }' st32.csv)" "5 0"
else
    skip "numpy cross-check of the spectrum, capacity and zlib" "no python3 with numpy"
fi

# ------------------------------------------------------------------ determinism
rp() { "$B" report -q t32.blt -k 1 --epochs 2 --bootstrap 20 "$@"; }
rp --csv >d1.csv
rp --csv >d2.csv
rp --csv --threads 1 >d3.csv
rp --csv --threads 2 >d4.csv
check "report --csv: the same seed twice, byte-identical" cmp -s d1.csv d2.csv
check "report --csv: --threads 1 and --threads 2, byte-identical" cmp -s d3.csv d4.csv
rp --json --threads 1 >j1.json
rp --json --threads 2 >j2.json
rp --json >j3.json
check "report --json: --threads 1 and 2, byte-identical" cmp -s j1.json j2.json
check "report --json: again, byte-identical" cmp -s j1.json j3.json
"$B" spectrum -q t16.blt --json --bootstrap 30 --threads 1 >sp1.json
"$B" spectrum -q t16.blt --json --bootstrap 30 --threads 2 >sp2.json
check "spectrum --json: --threads 1 and 2, byte-identical" cmp -s sp1.json sp2.json
"$B" report -q t16.blt --no-probe --csv --bootstrap 30 --seed 1 >seed1.csv
"$B" report -q t16.blt --no-probe --csv --bootstrap 30 --seed 7 >seed7.csv
cut -d, -f1-5 seed1.csv >seed1.cut
cut -d, -f1-5 seed7.csv >seed7.cut
check "--seed 1 and 7: the same point estimates" cmp -s seed1.cut seed7.cut
is "--seed 1 and 7: different intervals of PR, erank and capacity" "$(awk -F, '
    NR == FNR { lo[FNR] = $6; hi[FNR] = $7; next }
    $4 ~ /^(participation_ratio|effective_rank|capacity_bits)$/ && $1 ~ /^blocks/ { n++; if ($6 != lo[FNR] || $7 != hi[FNR]) m++ }
    END { print n, m }' seed1.csv seed7.csv)" "15 15"

# ------------------------------------------------------------------ the same rows, merged
"$B" spectrum -q a.blt b.blt --csv --bootstrap 0 >ab.csv
"$B" spectrum -q t32.blt --csv --bootstrap 0 >all.csv
"$B" spectrum -q t32.blt --csv --bootstrap 20 --memory 1 >mem.csv 2>/dev/null
is "two traces of 10 prompts each: the eigenvalues of one trace of all 20 (--csv)" \
    "$(paste -d, ab.csv all.csv | awk -F, 'NR > 1 { print $4, $10 }' | maxrel |
       awk '{ print ($1 <= 1e-9) ? "ok" : "max relative " $1 }')" ok
run r "$B" report a.blt b.blt --no-probe --bootstrap 0
check "two traces: the preamble names both and 20 prompts, $npos positions" \
    grep -q "^trace      a.blt, b.blt: 20 prompts, $npos positions$" r.out
if [ -n "$PY3" ]; then
    "$B" spectrum -q a.blt b.blt --json --bootstrap 0 >ab.json
    "$B" spectrum -q t32.blt --json --bootstrap 0 >all.json
    "$B" spectrum -q t32.blt --json --bootstrap 20 --memory 1 >mem.json 2>/dev/null
    cat >sums.py <<'EOF'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
worst = 0.0
for x, y in zip(a["hooks"], b["hooks"]):
    ex, ey = x["eigenvalues"], y["eigenvalues"]
    assert x["name"] == y["name"] and len(ex) == len(ey) == 64
    for f in (lambda v: v, lambda v: v * v):
        s, t = sum(map(f, ex)), sum(map(f, ey))
        worst = max(worst, abs(s - t) / t)
    for k in ("participation_ratio", "effective_rank", "capacity_bits"):
        worst = max(worst, abs(x[k]["value"] - y[k]["value"]) / y[k]["value"])
print("%.3g %d %d" % (worst, len(a["hooks"]), a["resampling_units"]))
EOF
    is "two traces: sums of eigenvalues and squares, PR, erank, capacity within 1e-9 (--json)" \
        "$("$PY3" sums.py ab.json all.json | awk '{ print ($1 <= 1e-9) ? "ok " $2 " " $3 : $0 }')" "ok 5 20"
    g=$((1048576 / 2 / (5 * (64 * 64 + 64) * 8)))
    is "--memory 1: $g groups of prompts, the same eigenvalue sums within 1e-9" \
        "$("$PY3" sums.py mem.json all.json | awk '{ print ($1 <= 1e-9) ? "ok " $3 : $0 }')" "ok $g"
else
    skip "sums of eigenvalues within 1e-9 (--json)" "no python3"
fi
run r "$B" spectrum t32.blt --bootstrap 20 --memory 1
check "--memory 1: a note that moments were kept for groups" \
    grep -q "moments kept for [0-9]* groups of the 20 prompts (memory)" r.err
check "--memory 1: the intervals resample groups of prompts" \
    grep -q "^intervals  95% percentile bootstrap, 20 resamples over [0-9]* groups of prompts$" r.out
# from a pipe
cat t32.blt | "$B" spectrum -q - --csv --bootstrap 0 >pipe.csv
check "spectrum of a trace read from a pipe ('-'): the same CSV" cmp -s pipe.csv all.csv

# ------------------------------------------------------------------ JSON
if [ -n "$PY3" ]; then
    bad=0
    for v in report spectrum lens probe; do
        case $v in
        report | probe) o="-k 1 --epochs 2" ;;
        *) o= ;;
        esac
        # shellcheck disable=SC2086
        "$B" $v -q t32.blt $o --bootstrap 20 --json >$v.json
        "$PY3" -c 'import json,sys; json.load(sys.stdin)' <$v.json || { echo "# $v --json does not parse"; bad=1; }
    done
    is "--json of report, spectrum, lens and probe parses" "$bad" 0
    "$B" report -q t32.blt -k 1 --epochs 2 --bootstrap 20 --csv >rj.csv
    out=$("$PY3" - report.json rj.csv <<'EOF'
import csv, json, sys
j = json.load(open(sys.argv[1]))
c = {(r["hook"], r["estimate"], r["k"]): r for r in csv.DictReader(open(sys.argv[2]))}
bad = 0
for h in j["hooks"]:
    for key, k, sub in (("capacity_bits", "", None), ("capacity_ratio", "", None),
                        ("participation_ratio", "", None), ("probe_bits", "1", "bits")):
        e = h["probe"][0][sub] if sub else h[key]
        r = c[(h["name"], key, k)]
        for f in ("value", "lo", "hi"):
            if "%.9g" % e[f] != r[f]:
                print("# %s %s %s: json %r, csv %s" % (h["name"], key, f, e[f], r[f]))
                bad += 1
print(len(j["hooks"]), bad)
EOF
    ) || true
    printf '%s\n' "$out" | grep '^#' || true
    is "report --json holds the CSV's capacity, cap/H, PR and probe bits (value, lo, hi)" \
        "$(printf '%s\n' "$out" | tail -n 1)" "5 0"
    is "spectrum --json: 64 eigenvalues per hook, complete, 20 resampling units" "$("$PY3" -c '
import json, sys
j = json.load(sys.stdin)
print(sorted({len(h["eigenvalues"]) for h in j["hooks"]}), j["complete"], j["resampling_units"])' <spectrum.json)" \
        "[64] True 20"
else
    skip "--json parses" "no python3"
fi

# ------------------------------------------------------------------ probe
run p "$B" probe t32.blt -k 1 --epochs 2 --bootstrap 20 --csv
is "probe --csv: exit 0" "$(rc p)" 0
cp p.out probe.csv
is "probe --csv: the header" "$(head -n 1 probe.csv)" "hook,layer,k,estimate,value,lo,hi"
pb=$(for l in 0 1 2 3 4; do est probe.csv "blocks.$l.hook_resid_post" probe_bits 1; done | tr '\n' ' ')
lb=$(est r32.csv blocks.4.hook_resid_post lens_bits)
diag "probe bits (k = 1) by layer: $pb; lens bits of layer 4: $lb"
is "probe: the last layer's bits about x_{t+1} are positive" \
    "$(est probe.csv blocks.4.hook_resid_post probe_bits 1 | awk '{ print ($1 > 0) }')" 1
is "probe: the last layer's bits within 1 bit of its lens bits" \
    "$(awk -v a="$(est probe.csv blocks.4.hook_resid_post probe_bits 1)" -v b="$lb" \
        'BEGIN { d = a - b; print (a != "" && b != "" && d < 1 && d > -1) }')" 1
is "probe: bits about x_{t+1} increase from layer 0 to layer 4" \
    "$(echo "$pb" | awk '{ for (i = 2; i <= NF; i++) if (!($i > $(i - 1))) bad++; print NF == 5 && !bad }')" 1
is "probe: bits = unigram CE - probe CE, in every row" "$(awk -F, '
    NR == 1 { next }
    { v[$1 SUBSEP $4] = $5 }
    END { for (l = 0; l < 5; l++) { h = "blocks." l ".hook_resid_post"
          d = v[h, "unigram_ce"] - v[h, "probe_ce"] - v[h, "probe_bits"]; if (d > 1e-6 || d < -1e-6) bad++ }
          print bad + 0 }' probe.csv)" 0
is "probe: the interval holds the bits' row, lo <= hi" "$(awk -F, '
    $4 == "probe_bits" { n++; if ($6 == "" || $7 == "" || $6 > $7) bad++ } END { print n, bad + 0 }' probe.csv)" "5 0"
run p "$B" probe t32.blt -k 2 --epochs 2 --bootstrap 0 --hooks 'blocks.4.*'
is "probe -k 2 --hooks: rows for k = 1 and 2 of the one hook" \
    "$(awk '$1 ~ /^blocks/ { printf "%s/%s ", $1, $2 }' p.out)" "blocks.4.hook_resid_post/1 blocks.4.hook_resid_post/2 "

# ------------------------------------------------------------------ drafter channel
# a drafter of 3 heads trained briefly on the prompts, recorded greedily
"$B" train --drafter medusa -m "$MODEL" -z "$TOK" --corpus "$TEXT" --prompts 10 --gen 16 --steps 40 --heads 3 \
    -o dr.gguf -q
rec -f first.txt -n 16 -t 0 --drafter dr.gguf --hooks none -o dr.blt
"$B" export -q dr.blt --format csv -o cdr
run d "$B" report dr.blt --bootstrap 20 --csv
is "report --csv of a trace with a drafter: exit 0" "$(rc d)" 0
cp d.out dr.csv
is "drafter rows: drafter_heads 3; bits per pass, bound, top-1, surprisal for k = 1..4" \
    "$(est dr.csv drafter drafter_heads) $(awk -F, '$1 == "drafter" && $4 == "drafter_bits_per_pass" { printf "%s", $3 }
        $1 == "drafter" && $4 == "drafter_bound" { printf "/%s", $5 }' dr.csv)" "3 1/92/183/274/36"
is "k = 1: bits per pass = the mean token entropy, interval included" \
    "$(est dr.csv drafter drafter_bits_per_pass 1 5),$(est dr.csv drafter drafter_bits_per_pass 1 6),$(est dr.csv drafter drafter_bits_per_pass 1 7)" \
    "$(est dr.csv tokens mean_entropy '' 5),$(est dr.csv tokens mean_entropy '' 6),$(est dr.csv tokens mean_entropy '' 7)"
is "bits per pass at k = bits per pass at k-1 + the mean entropy of token k" "$(awk -F, '
    $1 == "drafter" && $4 == "drafter_bits_per_pass" { b[$3] = $5 }
    $1 == "drafter" && $4 == "drafter_entropy" { e[$3] = $5 }
    END { for (k = 2; k <= 4; k++) { d = b[k] - b[k - 1] - e[k]; if (d > 1e-6 * b[k] || d < -1e-6 * b[k]) bad++ }
          print bad + 0 }' dr.csv)" 0
is "every drafter figure has an interval, lo <= hi" "$(awk -F, '
    $1 == "drafter" && $4 ~ /^drafter_(entropy|bits_per_pass|top1|surprisal|accept_len)$/ {
        n++; if ($6 == "" || $7 == "" || $6 + 0 > $7 + 0) bad++ } END { print n, bad + 0 }' dr.csv)" "17 0"
if [ -n "$PY3" ]; then
    # the same figures summed in python3 from the DRFT records and stats.csv
    cat >drft.py <<'EOF2'
import json, struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
hl = struct.unpack_from('<I', d, 12)[0]
at, rows = 16 + hl + 4, []
while at + 20 <= len(d):
    typ, fl, st, raw, crc = struct.unpack_from('<4sIIII', d, at)
    if typ == b'INDX':
        break
    pay = d[at + 20:at + 20 + st]
    if fl & 1:
        pay = zlib.decompress(pay)
    if typ == b'DRFT':
        k, n = struct.unpack_from('<IQ', pay, 4)[0], struct.unpack_from('<Q', pay, 16)[0]
        for i in range(n):
            rows.append([struct.unpack_from('<iffi', pay, 24 + 16 * (k * i + j)) for j in range(k)])
    at += 20 + st
K = len(rows[0])
stats = [l.split(',') for l in open(sys.argv[2]).read().split('\n')[1:] if l]
known = [s for s in stats if int(s[3]) >= 0]
out = ['1 %.17g %.17g %.17g' % (sum(float(s[4]) for s in stats) / len(stats),
                                sum(int(s[7]) == 1 for s in known) / len(known),
                                sum(float(s[6]) for s in known) / len(known))]
for j in range(K):
    kn = [r[j] for r in rows if r[j][3] >= 0]
    out.append('%d %.17g %.17g %.17g' % (j + 2, sum(r[j][1] for r in rows) / len(rows),
                                         sum(h[3] == 0 for h in kn) / len(kn), sum(h[2] for h in kn) / len(kn)))
acc = []
for r in rows:
    if all(h[3] >= 0 for h in r):
        a = 1
        for h in r:
            if h[3] != 0:
                break
            a += 1
        acc.append(a)
out.append('accept %.17g %d %d' % (sum(acc) / len(acc), len(acc), len(rows)))
print('\n'.join(out))
EOF2
    "$PY3" drft.py dr.blt cdr/stats.csv >drft.ref
    bad=0
    while read -r k e t1 su; do
        if [ "$k" = accept ]; then
            near "$(est dr.csv drafter drafter_accept_len)" "$e" 1e-6 || { echo "# accept_len: want $e"; bad=1; }
            is "accepted length over the $t1 positions whose 4 next tokens are known (of $su)" \
                "$(est dr.csv drafter drafter_accept_n) $(est dr.csv drafter drafter_positions)" "$t1 $su"
            continue
        fi
        for x in "drafter_entropy $e" "drafter_top1 $t1" "drafter_surprisal $su"; do
            set -- $x
            near "$(est dr.csv drafter "$1" "$k")" "$2" 1e-6 || { echo "# k $k $1: $(est dr.csv drafter "$1" "$k"), want $2"; bad=1; }
        done
    done <drft.ref
    is "entropy, top-1 and surprisal per k, accepted length = python3 over DRFT and stats.csv (1e-6)" "$bad" 0
    diag "drafter: $(tr '\n' '|' <drft.ref)"
    is "report --json: a drafter object, k = 1..4, its k = 1 the mean entropy; null without a drafter" "$(
        "$B" report -q dr.blt --bootstrap 0 --json | "$PY3" -c '
import json, sys
j = json.load(sys.stdin); d = j["drafter"]
print(d["n_heads"], [t["k"] for t in d["tokens"]], d["tokens"][0]["bits_per_pass"]["value"] == j["tokens"]["mean_entropy"]["value"],
      d["path"], d["kind"])') $("$B" report -q nolens.blt --no-probe --bootstrap 0 --json 2>/dev/null |
        "$PY3" -c 'import json, sys; print(json.load(sys.stdin).get("drafter", "missing"))')" \
        "3 [1, 2, 3, 4] True dr.gguf medusa None"
else
    skip "drafter figures against python3" "no python3"
    skip "accepted length" "no python3"
    skip "report --json: a drafter object" "no python3"
fi
run d "$B" report dr.blt --bootstrap 20
check "report: the drafter channel's title" \
    grep -q '^drafter channel: medusa, 3 heads on ln_final.hook_normalized (dr.gguf), [0-9]* positions$' d.out
is "report: its rows, k = 1 (main) .. 4 (head 3), bits per pass and bound" "$(sed -n '/^drafter channel/,/^accepted/p' d.out |
    awk '$1 ~ /^[0-9]$/ { printf "%s %s%s %s|", $1, $2, ($2 == "head" ? " " $3 : ""), ($2 == "head" ? $7 : $6) }')" \
    "1 main 9.000|2 head 1 18.00|3 head 2 27.00|4 head 3 36.00|"
check "report: the accepted length line" grep -q '^accepted   [0-9.]* tokens per pass (95% [0-9.]*\.\.[0-9.]*) over the [0-9]* positions whose next 4 tokens are known$' d.out
is "report --csv of a trace without a drafter: no drafter rows" "$(awk -F, '$1 == "drafter"' r32.csv | wc -l | tr -d ' ')" 0
run d "$B" report dr.blt nolens.blt --no-probe --bootstrap 0
is "a trace with a drafter and one without, together: exit 2" "$(rc d)" 2
check "... saying so" grep -q "recorded with different drafters" d.err

# ------------------------------------------------------------------ traces cut short
size=$(wc -c <t32.blt)
head -c $((size * 3 / 5)) t32.blt >cut.blt
run c "$B" report cut.blt --no-probe --bootstrap 20
is "a trace cut short: exit 0" "$(rc c)" 0
check "... with a warning naming it" grep -q 'warning: cut.blt was cut short' c.err
check "... and '(cut short)' in the preamble" grep -q '^trace      cut.blt: 20 prompts, [0-9]* positions (cut short)$' c.out
cpos=$(sed -n 's/^trace      cut.blt: 20 prompts, \([0-9]*\) positions.*/\1/p' c.out)
is "... reporting fewer positions than the whole ($cpos < $npos)" "$(test -n "$cpos" && test "$cpos" -lt "$npos" && echo yes)" yes
if [ -n "$PY3" ]; then
    is "... and \"complete\": false in --json" "$("$B" spectrum -q cut.blt --bootstrap 0 --json |
        "$PY3" -c 'import json,sys; print(json.load(sys.stdin)["complete"])')" False
fi
head -c 100 t32.blt >cut2.blt
run c "$B" spectrum cut2.blt
is "a trace cut inside its header: exit 2" "$(rc c)" 2
check "... naming it" grep -q 'cut2.blt' c.err

# ------------------------------------------------------------------ errors
run e "$B" report nope.blt
is "missing trace: exit 2" "$(rc e)" 2
check "missing trace: named" grep -q "nope.blt" e.err
run e "$B" spectrum prompts.txt
is "not a trace: exit 2" "$(rc e)" 2
check "not a trace: named" grep -q "prompts.txt: not a bitlens trace" e.err
run e "$B" report t32.blt --csv --json
is "--csv with --json: exit 2" "$(rc e)" 2
run e "$B" probe t32.blt -k 0
is "probe -k 0: exit 2" "$(rc e)" 2
check "probe -k 0: says the range" grep -q -- "-k 0: out of range" e.err
run e "$B" lens t32.blt --frobnicate
is "unknown option: exit 2" "$(rc e)" 2
check "unknown option: named" grep -q "frobnicate" e.err
run e "$B" lens t32.blt --noise 1
is "an option of another view (lens --noise): exit 2" "$(rc e)" 2
run e "$B" spectrum
is "no trace: exit 2" "$(rc e)" 2
run e "$B" spectrum - -
is "standard input twice: exit 2" "$(rc e)" 2
run e "$B" spectrum t32.blt --hooks 'blocks.*.hook_q'
is "--hooks matching no recorded hook: exit 2" "$(rc e)" 2
check "... naming the glob" grep -q "blocks.\*.hook_q" e.err
run e "$B" spectrum t32.blt --noise 0
is "--noise 0: exit 2" "$(rc e)" 2
run e "$B" probe t32.blt -m "$OTHER" -k 1 --epochs 1 --bootstrap 0
is "probe -m with another model (sha256 differs): exit 2" "$(rc e)" 2
check "... naming the model file" grep -q "llama2xs.bin: sha256 .* is not the trace's model" e.err
run e "$B" report t32.blt -m "$OTHER" -k 1 --epochs 1 --bootstrap 0
is "report -m with another model: exit 2" "$(rc e)" 2
run e "$B" probe t32.blt -m "$OTHER" --no-verify -k 1 --epochs 1 --bootstrap 0 --hooks 'blocks.4.*'
is "... with --no-verify: exit 0" "$(rc e)" 0
run e "$B" probe nohash.blt -k 1 --epochs 1 --bootstrap 0
is "probe of a trace recorded with --no-hash: exit 2" "$(rc e)" 2
check "... naming the trace and --no-verify" grep -q "nohash.blt: recorded without the model's sha256 (--no-hash): pass --no-verify" e.err
run e "$B" probe nohash.blt -k 1 --epochs 1 --bootstrap 0 --no-verify --hooks 'blocks.4.*'
is "... with --no-verify: exit 0" "$(rc e)" 0
run e "$B" spectrum t32.blt other.blt --bootstrap 0
is "traces from two models together: exit 2" "$(rc e)" 2
check "... saying so" grep -q "different models" e.err
cp "$MODEL" gone.bin
"$B" record -q -m gone.bin -z "$TOK" -f three.txt -o gone.blt
rm gone.bin
run e "$B" report gone.blt -k 1 --bootstrap 0
is "report, the trace's model gone: exit 0, without the probe" "$(rc e)" 0
check "... saying so, naming the model" grep -q "gone.bin, is not there: no probe" e.err
run e "$B" probe gone.blt -k 1 --bootstrap 0
is "probe, the trace's model gone: exit 2" "$(rc e)" 2
run e "$B" lens nolens.blt
is "lens of a trace recorded --no-lens: exit 0" "$(rc e)" 0
check "... saying it holds no logit lens" grep -q "holds no logit lens" e.out
for v in report spectrum lens probe; do
    run e "$B" $v -h
    is "$v -h: exit 0, usage on stdout" "$(rc e) $(head -n 1 e.out | cut -d' ' -f1-3)" "0 usage: bitlens $v"
done

done_testing
