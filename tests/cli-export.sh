#!/bin/sh
# tests/cli-export.sh: `bitlens export` (TAP).
#
# Traces are recorded from stories260K of the test data and exported as CSV
# and as .npy.  What is checked comes from outside the exporter where it
# can: the golden dumps of llama2.c's run.c (the prompt's token ids, the
# greedy continuation, resid_post of every layer, entropies from its
# logits), the trace file's own bytes walked with od(1), the .npy format
# (numpy.load, and its header read byte by byte), arithmetic here (rows =
# positions x layers, columns = 9 + 2 x top-k).  Errors: a missing trace,
# a file that is not a trace, a trace cut short (exported as far as its
# whole chunks, with a warning), a flipped byte (CRC), malformed records
# with valid CRCs (written by a Python script here), files in the way,
# bad options.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_TESTDATA, the shared test data.  numpy (python3-numpy) is used where
# present; its checks are skipped with a reason without it.

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
GOLD=$D/golden/stories260K
for f in "$MODEL" "$TOK" "$GOLD/resid_post.f32" "$GOLD/logits.f32" "$GOLD/tokens.json"; do
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
# csv FILE: the CSV file as tab-separated fields, one record a line (RFC
# 4180: quoted fields may hold commas, doubled quotes and line breaks;
# a line break inside a field becomes "\n", a tab "\t")
csv() {
    awk '
    {
        rec = pending == "" && !inrec ? $0 : pending "\n" $0
        q = rec; nq = gsub(/"/, "", q)
        if (nq % 2) { pending = rec; inrec = 1; next }
        pending = ""; inrec = 0
        out = ""; f = ""; inq = 0; L = length(rec)
        for (i = 1; i <= L; i++) {
            c = substr(rec, i, 1)
            if (inq) {
                if (c == "\"") {
                    if (substr(rec, i + 1, 1) == "\"") { f = f "\""; i++ } else inq = 0
                } else if (c == "\n") f = f "\\n"
                else if (c == "\t") f = f "\\t"
                else f = f c
            } else if (c == "\"") inq = 1
            else if (c == ",") { out = out f "\t"; f = "" }
            else f = f c
        }
        print out f
    }' "$1"
}

# le FILE OFFSET SIZE: an unsigned little-endian integer from the file
le() {
    od -An -tu1 -j "$2" -N "$3" "$1" |
        awk '{ for (i = 1; i <= NF; i++) b[k++] = $i }
             END { v = 0; for (i = k - 1; i >= 0; i--) v = v * 256 + b[i]; printf "%.0f\n", v }'
}

# chunks TRACE: "index type offset stored" of each chunk, walked with od
# (the index chunk last, if the trace has one)
chunks() {
    _size=$(wc -c <"$1")
    _off=$((16 + $(le "$1" 12 4) + 4))
    _i=0
    while [ $((_off + 20)) -le "$_size" ]; do
        _type=$(dd if="$1" bs=1 skip="$_off" count=4 2>/dev/null)
        _st=$(le "$1" $((_off + 8)) 4)
        [ $((_off + 20 + _st)) -le "$_size" ] || break
        echo "$_i $_type $_off $_st"
        [ "$_type" = INDX ] && break
        _off=$((_off + 20 + _st))
        _i=$((_i + 1))
    done
}

# npyrows FILE: the row count in a .npy header written as bitlens does
npyrows() { head -c 128 "$1" | tr -d '\000' | sed -n "s/.*'shape': (\([0-9]*\), [0-9]*).*/\1/p"; }

# ------------------------------------------------------------------ traces
rec() { "$B" record -q -m "$MODEL" -z "$TOK" "$@"; }
rec -p "Once upon a time" -n 20 -o t.blt
rec -p "Once upon a time" -n 20 --dtype f32 -o t32.blt
rec -p "Once upon a time" -n 20 --dtype bf16 -o tbf.blt
rec -p "Once upon a time" -n 44 -t 0 --dtype f32 -o g.blt
rec -p "Once upon a time" -n 0 --no-lens --keep-top 0 -o n0.blt
rec -p "Once upon a time" -n 4 --hooks none -o none.blt
printf '%s\n' "Once upon a time" "The cat sat" "Lily and Ben, \"friends\", played" >prompts.txt
rec -f prompts.txt -n 6 --keep-top 3 --dtype bf16 \
    --hooks 'blocks.1.hook_resid_post,blocks.*.attn.hook_pattern,blocks.0.attn.hook_attn_scores,blocks.2.mlp.hook_post' \
    -o m.blt
pass "recorded the traces to export"

# ------------------------------------------------------------------ CSV
run e "$B" export t.blt --format csv
is "csv: exit 0" "$(rc e)" 0
is "csv: nothing on stdout" "$(wc -c <e.out | tr -d ' ')" 0
check "csv: a summary on stderr naming the directory" grep -q 't-export' e.err
is "csv: the default directory is TRACE without .blt plus -export" \
    "$(cd t-export && ls | tr '\n' ' ')" "lens.csv stats.csv tokens.csv "
csv t-export/tokens.csv >tok.tsv
csv t-export/stats.csv >st.tsv
csv t-export/lens.csv >lens.tsv

is "tokens.csv: header" "$(head -n 1 tok.tsv)" "$(printf 'prompt\tposition\ttoken\ttext\tsampled')"
is "tokens.csv: 5 prompt tokens + 20 sampled = 25 rows" "$(($(wc -l <tok.tsv) - 1))" 25
is "tokens.csv: 20 rows are sampled" "$(awk -F '\t' 'NR > 1 && $5 == 1' tok.tsv | wc -l | tr -d ' ')" 20
is "tokens.csv: positions 0..24 of prompt 0, in order" \
    "$(awk -F '\t' 'NR > 1 && ($1 != 0 || $2 != NR - 2) { bad = 1 } END { print bad + 0 }' tok.tsv)" 0
is "tokens.csv: the prompt's ids are run.c's [1, 403, 407, 261, 378]" \
    "$(awk -F '\t' 'NR > 1 && NR <= 6 { printf "%s%s", s, $3; s = "," }' tok.tsv)" "1,403,407,261,378"
is "tokens.csv: the prompt's texts spell the prompt" \
    "$(awk -F '\t' 'NR > 1 && NR <= 6 { printf "%s", $4 }' tok.tsv)" "Once upon a time"
is "tokens.csv: every row has 5 fields (text quoted, commas inside)" \
    "$(awk -F '\t' 'NF != 5' tok.tsv | wc -l | tr -d ' ')" 0
check "tokens.csv: a comma token is quoted" grep -q '^0,[0-9]*,[0-9]*,",",1$' t-export/tokens.csv

want="prompt	position	token	next	entropy_bits	entropy_t_bits	surprisal_bits	rank	prob"
for j in 1 2 3 4 5 6 7 8 9 10; do want="$want	top${j}_id	top${j}_p"; done
is "stats.csv: header with top1..top10" "$(head -n 1 st.tsv)" "$want"
is "stats.csv: 24 evaluated positions" "$(($(wc -l <st.tsv) - 1))" 24
is "stats.csv: 9 + 2 x 10 fields in every row" "$(awk -F '\t' 'NF != 29' st.tsv | wc -l | tr -d ' ')" 0
# next of position t is the token at t + 1 (tokens.csv); token is that of t
is "stats.csv: token and next agree with tokens.csv" "$(awk -F '\t' '
    FNR == 1 { next }
    NR == FNR { tok[$2] = $3; next }
    $3 != tok[$2] || $4 != tok[$2 + 1] { bad++ }
    END { print bad + 0 }' tok.tsv st.tsv)" 0
is "stats.csv: surprisal = -log2(prob), rank >= 1, top-p descending, top1 rank 1" "$(awk -F '\t' '
    NR == 1 { next }
    {
        s = -log($9) / log(2)
        if ((s - $7) > 1e-4 || ($7 - s) > 1e-4 || $8 < 1 || $9 <= 0 || $9 > 1) bad++
        for (j = 11; j + 2 <= NF; j += 2) if ($(j + 2) > $j) bad++
        if (($8 == 1) != ($10 == $4)) bad++
        if ($5 != $6) bad++     # sampled at temperature 1
    }
    END { print bad + 0 }' st.tsv)" 0

is "lens.csv: header" "$(head -n 1 lens.tsv)" \
    "$(printf 'prompt\tposition\tlayer\tentropy_bits\tcross_entropy_bits\tkl_bits')"
is "lens.csv: 24 positions x 5 layers rows" "$(($(wc -l <lens.tsv) - 1))" 120
is "lens.csv: layers 0..4 for each position, in order" "$(awk -F '\t' '
    NR > 1 { i = NR - 2; if ($2 != int(i / 5) || $3 != i % 5) bad++ } END { print bad + 0 }' lens.tsv)" 0
# the last layer's lens is the model's own distribution: KL 0, same entropy
is "lens.csv: the last layer has KL 0 and the model's entropy" "$(awk -F '\t' '
    FNR == 1 { next }
    NR == FNR { h[$2] = $5; next }
    $3 == 4 { d = $4 - h[$2]; if ($6 > 1e-4 || $6 < -1e-4 || d > 1e-3 || d < -1e-3) bad++ }
    END { print bad + 0 }' st.tsv lens.tsv)" 0

# no next token: -n 0, last position
"$B" export -q n0.blt --format csv
is "csv: --no-lens: no lens.csv" "$(cd n0-export && ls | tr '\n' ' ')" "stats.csv tokens.csv "
is "stats.csv: --keep-top 0: no top columns" "$(head -n 1 n0-export/stats.csv)" \
    "prompt,position,token,next,entropy_bits,entropy_t_bits,surprisal_bits,rank,prob"
is "stats.csv: without a next token: next -1, surprisal and prob empty, rank 0" \
    "$(tail -n 1 n0-export/stats.csv | cut -d, -f2,4,7-9)" "4,-1,,0,"

# several prompts, quotes and commas in the text
"$B" export -q m.blt --format csv
csv m-export/tokens.csv >mt.tsv
is "csv: three prompts, numbered 0, 1, 2" "$(awk -F '\t' 'NR > 1 { print $1 }' mt.tsv | uniq | tr '\n' ' ')" "0 1 2 "
is "tokens.csv: the third prompt's text, quotes and commas kept" \
    "$(awk -F '\t' 'NR > 1 && $1 == 2 && $5 == 0 { printf "%s", $4 }' mt.tsv)" 'Lily and Ben, "friends", played'
check "tokens.csv: a quote in the text is doubled" grep -q '""' m-export/tokens.csv
is "stats.csv: --keep-top 3: 15 columns" "$(head -n 1 m-export/stats.csv | tr ',' '\n' | wc -l | tr -d ' ')" 15

# ------------------------------------------------------------------ npy
run e "$B" export t.blt --format npy -o npy
is "npy: exit 0" "$(rc e)" 0
is "npy: one file per recorded hook point and index.csv" "$(cd npy && ls | tr '\n' ' ')" \
    "blocks.0.hook_resid_post.npy blocks.1.hook_resid_post.npy blocks.2.hook_resid_post.npy blocks.3.hook_resid_post.npy blocks.4.hook_resid_post.npy index.csv "
f=npy/blocks.2.hook_resid_post.npy
is "npy: magic and version 1.0" "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" "934e554d50590100"
is "npy: header length 118 (data at byte 128, a multiple of 64)" "$(le "$f" 8 2)" 118
check "npy: header dict '<f2', C order, shape (24, 64)" \
    grep -q "{'descr': '<f2', 'fortran_order': False, 'shape': (24, 64), }" "$f"
is "npy: header ends in a newline" "$(dd if="$f" bs=1 skip=127 count=1 2>/dev/null | od -An -tx1 | tr -d ' ')" 0a
is "npy: 128 + 24 x 64 x 2 bytes" "$(wc -c <"$f" | tr -d ' ')" $((128 + 24 * 64 * 2))
csv npy/index.csv >ix.tsv
is "index.csv: header" "$(head -n 1 ix.tsv)" "$(printf 'row\tprompt\tposition\ttoken\ttext')"
is "index.csv: 24 rows, positions 0..23, tokens and text as tokens.csv" "$(awk -F '\t' '
    FNR == 1 { next }
    NR == FNR { tok[$2] = $3 "\t" $4; next }
    { n++; if ($1 != n - 1 || $2 != 0 || $3 != n - 1 || $4 "\t" $5 != tok[$3]) bad++ }
    END { print n + 0, bad + 0 }' tok.tsv ix.tsv)" "24 0"
run e "$B" export none.blt --format npy
is "npy: a trace without hook points: exit 2" "$(rc e)" 2
check "npy: ... saying so" grep -q 'no hook tensors' e.err
check "npy: ... and writing nothing" test ! -e none-export

# from a pipe: the same bytes
cat t.blt | "$B" export - --format npy -o pipe 2>pipe.err
same=0
for f in npy/*; do cmp -s "$f" "pipe/$(basename "$f")" || same=1; done
is "npy from a pipe ('-') equals npy from the file" "$same" 0
check "npy from a pipe: the summary names <stdin>" grep -q '<stdin>' pipe.err
"$B" export -q -i t.blt --format csv -o viai
check "-i TRACE: the same CSV" cmp -s t-export/stats.csv viai/stats.csv
mkdir cwd && (cd cwd && "$B" export -q - --format csv <../t.blt)
is "standard input: the default directory is bitlens-export" "$(cd cwd && ls)" bitlens-export

# ------------------------------------------------------------------ numpy
if [ -n "$PY" ]; then
    "$B" export -q t32.blt --format npy -o n32
    "$B" export -q tbf.blt --format npy -o nbf
    "$B" export -q g.blt --format npy -o ng
    "$B" export -q g.blt --format csv -o cg
    "$B" export -q m.blt --format npy -o nm
    "$B" info --json m.blt >m.json
    # shapes, dtypes, and f16/bf16 against f32 of the same recording
    out=$("$PY" - <<'EOF'
import numpy as np
for d, dt in (("npy", "float16"), ("n32", "float32"), ("nbf", "float32")):
    for l in range(5):
        a = np.load("%s/blocks.%d.hook_resid_post.npy" % (d, l))
        assert a.shape == (24, 64) and str(a.dtype) == dt, (d, l, a.shape, a.dtype)
for l in range(5):
    a32 = np.load("n32/blocks.%d.hook_resid_post.npy" % l)
    a16 = np.load("npy/blocks.%d.hook_resid_post.npy" % l).astype(np.float32)
    abf = np.load("nbf/blocks.%d.hook_resid_post.npy" % l)
    # f16 rounding: half an ulp, 2^-11 relative (plus subnormals);
    # bf16: 2^-8 relative
    assert (np.abs(a16 - a32) <= np.abs(a32) * 2.0**-11 + 2.0**-24).all(), l
    assert (np.abs(abf - a32) <= np.abs(a32) * 2.0**-8).all(), l
    # bf16 widened exactly: the low 16 bits are zero
    assert (abf.view(np.uint32) & 0xffff == 0).all()
print("ok")
EOF
    ) || true
    is "numpy: every .npy loads as [24 x 64], f16 / f32 / bf16->f32, values within rounding of f32" "$out" ok

    # resid_post of the greedy continuation against run.c's golden dump
    out=$("$PY" - "$GOLD" <<'EOF'
import json, sys, csv
import numpy as np
g = sys.argv[1]
gold = np.fromfile(g + "/resid_post.f32", "<f4").reshape(5, 48, 64)
ids = json.load(open(g + "/tokens.json"))["ids"]
ix = list(csv.DictReader(open("ng/index.csv")))
assert [int(r["token"]) for r in ix] == ids, "tokens differ from run.c's"
worst = 0.0
for l in range(5):
    a = np.load("ng/blocks.%d.hook_resid_post.npy" % l)
    assert a.shape == (48, 64) and a.dtype == np.float32
    worst = max(worst, float(np.abs(a - gold[l]).max()))
# token entropies from the golden logits, in float64
lg = np.fromfile(g + "/logits.f32", "<f4").reshape(48, 512).astype(np.float64)
p = np.exp(lg - lg.max(1, keepdims=True))
p /= p.sum(1, keepdims=True)
h = -(p * np.log2(p)).sum(1)
st = list(csv.DictReader(open("cg/stats.csv")))
e = np.array([float(r["entropy_bits"]) for r in st])
print("ok" if worst < 1e-4 and len(e) == 48 and np.abs(e - h).max() < 1e-4 else "resid %g entropy %g" % (worst, np.abs(e - h).max()))
EOF
    ) || true
    is "numpy: resid_post exported from a greedy f32 trace equals run.c's dump within 1e-4, entropies too" "$out" ok

    # attention rows padded to n_heads x n_ctx; several prompts
    out=$("$PY" - <<'EOF'
import json, csv
import numpy as np
hdr = json.load(open("m.json"))
H = hdr["model"]["config"]["n_heads"]
C = hdr["recorded"]["n_ctx"]
ix = list(csv.DictReader(open("nm/index.csv")))
pos = np.array([int(r["position"]) for r in ix])
n = len(ix)
assert n == hdr["chunks"]["positions"], (n, hdr["chunks"]["positions"])
for l in range(5):
    a = np.load("nm/blocks.%d.attn.hook_pattern.npy" % l)
    assert a.shape == (n, H * C) and a.dtype == np.float32, a.shape
    a = a.reshape(n, H, C)
    for i in range(n):
        assert (a[i, :, pos[i] + 1:] == 0).all()          # unseen keys: 0
        assert np.allclose(a[i, :, :pos[i] + 1].sum(1), 1, atol=2e-2)   # bf16
s = np.load("nm/blocks.0.attn.hook_attn_scores.npy").reshape(n, H, C)
for i in range(n):
    assert np.isneginf(s[i, :, pos[i] + 1:]).all()       # unseen keys: -inf
    assert np.isfinite(s[i, :, :pos[i] + 1]).all()
for name, w in (("blocks.1.hook_resid_post", 64), ("blocks.2.mlp.hook_post", 172)):
    assert np.load("nm/%s.npy" % name).shape == (n, w)
print("ok")
EOF
    ) || true
    is "numpy: attention patterns and scores padded to n_heads x n_ctx (0 / -inf), rows as index.csv" "$out" ok
else
    skip "numpy checks of the .npy files" "no python3 with numpy (Debian: python3-numpy)"
    skip "resid_post against run.c's golden dump" "no python3 with numpy (Debian: python3-numpy)"
    skip "attention padding" "no python3 with numpy (Debian: python3-numpy)"
fi

# ------------------------------------------------------------------ errors
run e "$B" export no-such.blt --format csv
is "missing trace: exit 2" "$(rc e)" 2
check "missing trace: named" grep -q "no-such.blt: cannot open" e.err
run e "$B" export "$TOK" --format csv -o x
is "not a trace: exit 2" "$(rc e)" 2
check "not a trace: says so" grep -q "not a bitlens trace" e.err
check "not a trace: no directory made" test ! -e x
run e "$B" export t.blt
is "no --format: exit 2" "$(rc e)" 2
check "no --format: says so" grep -q "no format" e.err
run e "$B" export t.blt --format xml
is "bad --format: exit 2" "$(rc e)" 2
check "bad --format: names it" grep -q "'xml'" e.err
run e "$B" export --format csv
is "no trace: exit 2" "$(rc e)" 2
run e "$B" export t.blt t32.blt --format csv
is "two traces: exit 2" "$(rc e)" 2
run e "$B" export -i t.blt t32.blt --format csv
is "-i and an argument: exit 2" "$(rc e)" 2
run e "$B" export --frobnicate t.blt --format csv
is "unknown option: exit 2" "$(rc e)" 2
check "unknown option: named" grep -q "frobnicate" e.err
run e "$B" export t.blt --format csv -o t.blt
is "-o naming a file: exit 2" "$(rc e)" 2

# files in the way
cp t-export/stats.csv stats.before
echo keep >t-export/notes.txt
run e "$B" export t.blt --format csv
is "existing output without --force: exit 2" "$(rc e)" 2
check "existing output: names the file" grep -q "t-export/tokens.csv: exists" e.err
check "existing output: left as it was" cmp -s stats.before t-export/stats.csv
run e "$B" export t.blt --format csv --force -o t-export
is "--force: exit 0" "$(rc e)" 0
is "--force: other files are left alone" "$(cat t-export/notes.txt)" keep
is "no temporary files left" "$(ls t-export npy | grep -c tmp || true)" 0

# ------------------------------------------------------------------ cut short
# every 997th byte from the end of the header: whole chunks only, a
# warning, exit 0; the files are prefixes of the full export and the .npy
# files keep the same rows
"$B" export -q t.blt --format npy -o full
hdr_end=$((16 + $(le t.blt 12 4) + 4))
size=$(wc -c <t.blt)
bad=0
cut=$hdr_end
ncut=0
while [ "$cut" -lt "$size" ]; do
    head -c "$cut" t.blt >cut.blt
    rm -rf cc cn
    set +e
    "$B" export cut.blt --format csv -o cc 2>cc.err
    r1=$?
    "$B" export cut.blt --format npy -o cn 2>cn.err
    r2=$?
    set -e
    ncut=$((ncut + 1))
    if [ $r1 != 0 ] || [ $r2 != 0 ] || ! grep -q 'warning: cut.blt: incomplete trace' cc.err ||
        ! grep -q 'incomplete trace' cn.err; then
        echo "# cut at $cut: exit $r1 / $r2"; bad=1; continue
    fi
    for f in tokens stats lens; do
        k=$(wc -l <cc/$f.csv)
        head -n "$k" t-export/$f.csv | cmp -s - cc/$f.csv || { echo "# cut at $cut: $f.csv"; bad=1; }
    done
    rows=$(npyrows cn/blocks.0.hook_resid_post.npy)
    [ "$(($(wc -l <cn/index.csv) - 1))" = "$rows" ] || { echo "# cut at $cut: index.csv rows"; bad=1; }
    for f in full/*.npy; do
        g=cn/$(basename "$f")
        [ "$(npyrows "$g")" = "$rows" ] || { echo "# cut at $cut: $g rows"; bad=1; }
        nb=$(($(wc -c <"$g") - 128))
        [ "$nb" = $((rows * 64 * 2)) ] || { echo "# cut at $cut: $g size"; bad=1; }
        [ "$nb" = 0 ] || cmp -s -n "$nb" -i 128:128 "$f" "$g" || { echo "# cut at $cut: $g data"; bad=1; }
    done
    cut=$((cut + 997))
done
is "cut at every 997th byte ($ncut cuts): exit 0, a warning, files are prefixes of the full export" "$bad" 0

# cut right after the last chunk of hook 1: hooks 0 and 1 hold the rows,
# 2..4 do not: no rows, the same in every file
last=$(chunks t.blt | awk '$2 == "TENS" { n++ } $2 == "TENS" && n == 2 { print $3 + 20 + $4 }')
head -c "$last" t.blt >cut.blt
rm -rf cn
run e "$B" export cut.blt --format npy -o cn
is "cut between hooks: exit 0" "$(rc e)" 0
check "cut between hooks: says the rows not every hook holds were left out" grep -q 'left out' e.err
is "cut between hooks: every .npy has 0 rows, index.csv none" \
    "$(for f in cn/*.npy; do npyrows "$f"; done | sort -u | tr '\n' ' ')$(($(wc -l <cn/index.csv) - 1))" "0 0"
check "cut: the warning names the offset where the whole chunks end" grep -q "offset $last " e.err
run e "$B" export -q cut.blt --format npy -o cn --force
is "-q: an incomplete trace without a word" "$(wc -c <e.err | tr -d ' ')" 0
head -c 100 t.blt >cut.blt
run e "$B" export cut.blt --format csv -o cc2
is "cut inside the header: exit 2" "$(rc e)" 2
check "cut inside the header: says so" grep -q 'cut short' e.err

# a flipped byte in a payload: CRC error naming the chunk and offset
set -- $(chunks t.blt | awk '$2 == "TENS" { print $1, $3, $4; exit }')
ci=$1 co=$2
cp t.blt bad.blt
printf '\001' | dd of=bad.blt bs=1 seek=$((co + 20 + 100)) conv=notrunc 2>/dev/null
run e "$B" export bad.blt --format npy -o bn
is "flipped byte: exit 2" "$(rc e)" 2
check "flipped byte: names chunk $ci (TENS) at offset $co" grep -q "chunk $ci (TENS) at offset $co: CRC mismatch" e.err
check "flipped byte: no file left behind" test ! -e bn
run e "$B" export bad.blt --format csv -o bc
is "flipped byte, csv: exit 2" "$(rc e)" 2

# malformed records with valid CRCs, rewritten by Python (zlib, struct)
if [ -n "$PY3" ]; then
    cat >retrace.py <<'EOF'
# retrace.py IN OUT EDIT: rewrite a trace with one record changed, with
# valid CRCs and a closing index (a complete trace)
import struct, sys, zlib
src, dst, edit = sys.argv[1:4]
b = open(src, "rb").read()
fourcc = lambda s: struct.unpack("<I", s.encode())[0]
hl = struct.unpack_from("<I", b, 12)[0]
out = bytearray(b[:16 + hl + 4])
off, chunks = len(out), []
while True:
    t, fl, st, raw, crc = struct.unpack_from("<5I", b, off)
    if t == fourcc("INDX"):
        break
    chunks.append([t, fl, raw, b[off + 20:off + 20 + st]])
    off += 20 + st
def data(c):
    return bytearray(zlib.decompress(c[3]) if c[1] & 1 else c[3])
def put(c, d):
    c[3] = zlib.compress(bytes(d)) if c[1] & 1 else bytes(d)
    c[2] = len(d)
tens = [c for c in chunks if c[0] == fourcc("TENS")]
if edit == "drop-tens":          # the last hook's rows are missing
    chunks.remove(tens[-1])
elif edit == "tens-hook":        # a hook the header does not list
    d = data(tens[0]); struct.pack_into("<I", d, 4, 99); put(tens[0], d)
elif edit == "toks-count":       # more tokens than the record holds
    c = [c for c in chunks if c[0] == fourcc("TOKS")][0]
    d = data(c); struct.pack_into("<Q", d, 16, 1 << 40); put(c, d)
elif edit == "tens-width":       # rows of another width
    d = data(tens[0])
    struct.pack_into("<QQ", d, 24, 32, 48)    # 32 rows x 48 = 24 x 64
    put(tens[0], d)
idx = []
for t, fl, raw, p in chunks:
    h = struct.pack("<4I", t, fl, len(p), raw)
    idx.append((t, fl, len(out), len(p), raw))
    out += h + struct.pack("<I", zlib.crc32(h + p)) + p
at = len(out)
p = struct.pack("<Q", len(idx)) + b"".join(struct.pack("<IIQII", *e) for e in idx)
h = struct.pack("<4I", fourcc("INDX"), 0, len(p), len(p))
out += h + struct.pack("<I", zlib.crc32(h + p)) + p + struct.pack("<Q", at) + b"BLTREND\n"
open(dst, "wb").write(out)
EOF
    "$PY3" retrace.py t.blt same.blt none
    run e "$B" export same.blt --format npy -o sn
    is "retrace.py: an unchanged rewrite exports as the original" \
        "$(rc e)$(cmp -s sn/blocks.4.hook_resid_post.npy npy/blocks.4.hook_resid_post.npy && echo same)" 0same
    "$PY3" retrace.py t.blt drop.blt drop-tens
    run e "$B" export drop.blt --format npy -o dn
    is "a complete trace whose hooks hold different positions: exit 2" "$(rc e)" 2
    check "... naming both hooks" grep -q "hook 'blocks.0.hook_resid_post' at positions 0 to 23 but 'blocks.4.hook_resid_post' at no positions" e.err
    check "... no file left behind" test ! -e dn
    run e "$B" export drop.blt --format csv -o dc
    is "... which csv does not need: exit 0" "$(rc e)" 0
    "$PY3" retrace.py t.blt hook.blt tens-hook
    run e "$B" export hook.blt --format npy -o hn
    is "a TENS record of an unknown hook: exit 2" "$(rc e)" 2
    check "... naming the chunk" grep -q "chunk [0-9]* (TENS) at offset [0-9]*: hook 99 is not in the header" e.err
    "$PY3" retrace.py t.blt toks.blt toks-count
    run e "$B" export toks.blt --format csv -o tn
    is "a malformed TOKS record: exit 2" "$(rc e)" 2
    check "... naming the chunk" grep -q "chunk 1 (TOKS) at offset [0-9]*: token count" e.err
    "$PY3" retrace.py t.blt width.blt tens-width
    run e "$B" export width.blt --format npy -o wn
    is "TENS rows of a width the header does not give: exit 2" "$(rc e)" 2
    check "... naming the hook and the widths" grep -q "'blocks.0.hook_resid_post' rows of width 48, the header says 64" e.err
else
    skip "malformed records with valid CRCs" "no python3"
fi

# ------------------------------------------------------------------ -h
run e "$B" export -h
is "-h: exit 0" "$(rc e)" 0
check "-h: usage on stdout" grep -q '^usage: bitlens export' e.out

done_testing
