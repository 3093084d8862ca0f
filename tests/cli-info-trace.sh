#!/bin/sh
# tests/cli-info-trace.sh: `bitlens info TRACE` (TAP).
#
# Traces are recorded from stories260K of the test data.  The expected
# values come from outside `info`: the options given to `bitlens record`,
# the golden prompt ids of run.c (5 tokens for "Once upon a time"),
# sha256sum(1) of the model files, and the trace file's own bytes walked
# chunk by chunk with od(1) (types, offsets, stored lengths).  `--json` is
# checked with Python's json module where python3 is present.  Incomplete
# (cut short) and corrupted traces, a trace on standard input, -v, and -z
# with a trace are tested too.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_TESTDATA, the shared test data.

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
for f in "$MODEL" "$TOK"; do
    if [ ! -r "$f" ]; then
        echo "1..0 # SKIP test data not found ('$f'; configure --with-testdata=DIR)"
        exit 0
    fi
done
B=$BL_BIN
PY3=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1; then PY3=$p; break; fi
done
cd "$tmp"

# ------------------------------------------------------------------ helpers
is() {
    if [ "x$2" = "x$3" ]; then
        pass "$1"
    else
        fail "$1"
        echo "#   got:  '$2'"
        echo "#   want: '$3'"
    fi
}

run() {
    _n=$1
    shift
    set +e
    "$@" >"$_n.out" 2>"$_n.err"
    echo $? >"$_n.rc"
    set -e
}
rc() { cat "$1.rc"; }

# field NAME FILE: the value of the first "NAME:  value" line
field() { sed -n "s/^$1: *//p" "$2" | head -n 1; }

le() {
    od -An -tu1 -j "$2" -N "$3" "$1" |
        awk '{ for (i = 1; i <= NF; i++) b[k++] = $i }
             END { v = 0; for (i = k - 1; i >= 0; i--) v = v * 256 + b[i]; printf "%.0f\n", v }'
}

# chunks TRACE: "index type offset stored raw" of each whole chunk, walked
# with od, the index chunk (INDX) last if the trace has one
chunks() {
    _size=$(wc -c <"$1")
    _off=$((16 + $(le "$1" 12 4) + 4))
    _i=0
    while [ $((_off + 20)) -le "$_size" ]; do
        _type=$(dd if="$1" bs=1 skip="$_off" count=4 2>/dev/null)
        _st=$(le "$1" $((_off + 8)) 4)
        _raw=$(le "$1" $((_off + 12)) 4)
        [ $((_off + 20 + _st)) -le "$_size" ] || break
        echo "$_i $_type $_off $_st $_raw"
        [ "$_type" = INDX ] && break
        _off=$((_off + 20 + _st))
        _i=$((_i + 1))
    done
}

# table FILE: the chunk-type table of `info` as "type count stored raw"
table() { awk '/^chunks:/ { t = 1; getline; next } t && /^  [A-Z?]/ { print $1, $2, $3, $4; next } t { exit }' "$1"; }

# ------------------------------------------------------------------ traces
rec() { "$B" record -q -m "$MODEL" -z "$TOK" "$@"; }
rec -p "Once upon a time" -n 20 -o t.blt
printf '%s\n' "One day" "The cat sat" "Ben ran" "A big red ball" "Tim said \"hi\"" >prompts.txt
rec -f prompts.txt -n 3 --dtype bf16 --keep-top 4 --no-lens --no-hash \
    --hooks 'blocks.*.hook_resid_post,blocks.0.attn.hook_pattern' -o m.blt
pass "recorded the traces to describe"
version=$("$B" --version | sed 's/^bitlens //')
size=$(wc -c <t.blt | tr -d ' ')

# ------------------------------------------------------------------ text
run i "$B" info t.blt
is "info TRACE: exit 0" "$(rc i)" 0
is "trace: the path and the format version" "$(field trace i.out)" "t.blt (format version 1)"
is "written by: this bitlens" "$(field 'written by' i.out)" "bitlens $version"
check "command: the record command line" grep -q '^command: *bitlens record .*-o t.blt' i.out
check "created: an ISO 8601 UTC time" grep -qE '^created: *[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' i.out
is "model: the path recorded" "$(field model i.out)" "$MODEL"
check "model: format, architecture, parameters" \
    grep -q '^ *llama2.c v0 (legacy header), llama, 260032 parameters$' i.out
check "dimensions: as the test data's README gives them" \
    grep -q '^dimensions: *dim 64, 5 layers, 8 heads (4 key/value), head dim 8, hidden 172, context 512$' i.out
is "sha256: as sha256sum prints them" "$(sed -n 's/^sha256: *//p' i.out)" \
    "$(sha256sum "$MODEL" "$TOK" | sed 's/ \*/  /')"
is "vocabulary" "$(field vocabulary i.out)" "512 tokens (llama2.c), BOS 1, EOS 2"
is "prompts: 1" "$(field prompts i.out)" 1
check "prompts: the text, quoted, with its 5 tokens (run.c's [1, 403, 407, 261, 378])" \
    grep -q '^  0: "Once upon a time" (5 tokens)$' i.out
is "sampling: record's defaults" "$(field sampling i.out)" "temperature 1, top-p 0.9, top-k 0, seed 42"
is "generated: -n 20" "$(field generated i.out)" "20 tokens after each prompt"
is "recorded: 5 resid_post hooks as f16, with the lens" "$(field recorded i.out)" \
    "5 hook points as f16; logit lens at each layer"
check "recorded: top 10, context 25 (5 + 20)" grep -q '^ *top 10 ids per position; context 25 positions$' i.out
is "recorded: the hooks and widths" "$(grep '^  blocks\.' i.out | tr -s ' ' | tr '\n' '|')" \
    " blocks.0.hook_resid_post (width 64)| blocks.1.hook_resid_post (width 64)| blocks.2.hook_resid_post (width 64)| blocks.3.hook_resid_post (width 64)| blocks.4.hook_resid_post (width 64)|"

# the chunk summary against the file's own bytes
chunks t.blt >walk
n_chunks=$(grep -vc ' INDX ' walk)
is "chunks: the count and bytes, as od walks them" "$(field chunks i.out)" \
    "$n_chunks ($(awk '$2 != "INDX" { s += $4; r += $5 } END { print s " bytes stored, " r " raw" }' walk))"
is "chunks: the table per type, as od walks them" "$(table i.out | sort)" \
    "$(awk '$2 != "INDX" { c[$2]++; s[$2] += $4; r[$2] += $5 }
           END { for (t in c) print t, c[t], s[t], r[t] }' walk | sort)"
is "chunks: one TENS chunk per hook" "$(table i.out | awk '$1 == "TENS" { print $2 }')" 5
is "tokens: 25 (20 sampled)" "$(field tokens i.out)" "25 (20 sampled)"
is "evaluated: 24 positions" "$(field evaluated i.out)" "24 with statistics, 24 with the logit lens"
is "tensor rows: 5 x 24" "$(field 'tensor rows' i.out)" "120 (5 hook points)"
check "per prompt: prompt 0" grep -q '^  0: 25 tokens (20 sampled), 24 evaluated, 24 rows per hook$' i.out
is "status: complete, with the file's size" "$(field status i.out)" "complete ($size bytes, closing index read)"

# standard input
run s "$B" info - <t.blt
is "info -: exit 0" "$(rc s)" 0
is "info -: the same description" "$(sed 1d s.out)" "$(sed 1d i.out)"
is "info -: the trace is <stdin>" "$(field trace s.out)" "<stdin> (format version 1)"
cat t.blt | "$B" info - >p.out
is "info - from a pipe: the same" "$(sed 1d p.out)" "$(sed 1d i.out)"

# -v: every chunk, as od walks them
run v "$B" info -v t.blt
is "-v: exit 0" "$(rc v)" 0
is "-v: one line per chunk: index, type, offset, stored, raw" \
    "$(awk '/^chunk list:/ { l = 1; getline; next } l && NF == 0 { exit } l { print $1, $2, $3, $4, $5 }' v.out)" \
    "$(grep -v ' INDX ' walk)"
check "-v: a TENS line names the prompt, hook and positions" \
    grep -q ' TENS .*prompt 0, hook 4, positions 0+24$' v.out

# several prompts; --no-hash; bf16; attention pattern
run m "$B" info m.blt
is "5 prompts" "$(field prompts m.out)" 5
is "the first three are shown, then how many more" "$(grep -c '^  [0-9]: "' m.out)$(grep -c '^  \.\.\. 2 more' m.out)" 31
run mv "$B" info -v m.blt
check "-v: every prompt, a quote escaped" grep -q '^  4: "Tim said \\"hi\\"" ([0-9]* tokens)$' mv.out
check "--no-hash: no sha256 recorded" grep -q '^sha256: *(not recorded: --no-hash)' m.out
is "recorded: 6 hooks as bf16, no lens" "$(field recorded m.out)" "6 hook points as bf16; logit lens not taken"
check "the attention pattern's width varies" grep -q '^  blocks.0.attn.hook_pattern (varies with the position)$' m.out
is "per prompt: 5 lines" "$(sed -n '/^per prompt:/,/^status:/p' m.out | grep -c '^  [0-9]: ')" 5

# ------------------------------------------------------------------ JSON
run j "$B" info --json t.blt
is "--json: exit 0" "$(rc j)" 0
if [ -n "$PY3" ]; then
    hdr_len=$(le t.blt 12 4)
    dd if=t.blt bs=1 skip=16 count="$hdr_len" 2>/dev/null >hdr.json
    walkj=$(awk '$2 != "INDX" { printf "%s%s:%s:%s", s, $2, $4, $5; s = "," }' walk)
    out=$("$PY3" - "$size" "$n_chunks" "$walkj" <<'EOF'
import json, sys
size, n, walk = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
j = json.load(open("j.out"))
h = json.load(open("hdr.json"))
c = j.pop("chunks")
assert j == h, "the header differs from the trace's"
types = {}
for e in walk.split(","):
    t, s, r = e.split(":")
    d = types.setdefault(t, {"count": 0, "stored": 0, "raw": 0})
    d["count"] += 1; d["stored"] += int(s); d["raw"] += int(r)
assert c["types"] == types, (c["types"], types)
assert c["count"] == n and c["complete"] is True and c["bytes"] == size, c
assert c["header_bytes"] == 16 + len(open("hdr.json", "rb").read()) + 4
assert c["tokens"] == 25 and c["sampled"] == 20 and c["positions"] == 24, c
assert c["lens_positions"] == 24 and c["tensor_rows"] == 120, c
p = c["prompts"]
assert len(p) == 1 and p[0]["recorded"] and p[0]["tokens"] == 25, p
assert p[0]["rows_per_hook_min"] == p[0]["rows_per_hook_max"] == 24, p
print("ok")
EOF
    ) || true
    is "--json: the header as stored, plus 'chunks' agreeing with the file" "$out" ok
else
    skip "--json parses" "no python3"
fi

# ------------------------------------------------------------------ cut short
# cut inside the third TENS chunk: the two before it are whole
set -- $(awk '$2 == "TENS" { n++ } $2 == "TENS" && n == 3 { print $3; exit }' walk)
end=$1
head -c $((end + 100)) t.blt >cut.blt
run c "$B" info cut.blt
is "cut short: exit 0" "$(rc c)" 0
is "cut short: status incomplete" "$(field status c.out)" "incomplete: no closing index"
check "cut short: where the whole chunks end, of the bytes read" \
    grep -q "^ *whole chunks end at offset $end of $((end + 100)) bytes$" c.out
is "cut short: the chunks before the cut" "$(table c.out | awk '$1 == "TENS" { print $2 }')" 2
check "cut short: hooks hold 0 to 24 rows" grep -q '^  0: 25 tokens (20 sampled), 24 evaluated, 0 to 24 rows per hook$' c.out
run c "$B" info --json cut.blt
if [ -n "$PY3" ]; then
    is "cut short, --json: complete false, end_offset" "$("$PY3" -c '
import json
c = json.load(open("c.out"))["chunks"]
print(c["complete"], c["end_offset"], c["bytes"], c["prompts"][0]["rows_per_hook_min"])')" "False $end $((end + 100)) 0"
else
    skip "cut short, --json" "no python3"
fi
# a cut inside the trailer: every chunk is there, the trace is not closed
head -c $((size - 4)) t.blt >cut.blt
run c "$B" info cut.blt
is "cut in the trailer: exit 0, incomplete" "$(rc c) $(field status c.out)" "0 incomplete: no closing index"
# prompts the trace ends before
set -- $(chunks m.blt | awk '$2 == "PRMT" { n++ } $2 == "PRMT" && n == 3 { print $3; exit }')
head -c "$1" m.blt >cut.blt
run c "$B" info -v cut.blt
check "prompts after the cut: not in the trace" grep -q '^  3: not in the trace$' c.out
head -c 200 t.blt >cut.blt
run c "$B" info cut.blt
is "cut inside the header: exit 2" "$(rc c)" 2
check "cut inside the header: says so" grep -q 'cut short' c.err

# ------------------------------------------------------------------ corrupt
set -- $(awk '$2 == "STAT" { print $1, $3; exit }' walk)
cp t.blt bad.blt
printf '\377' | dd of=bad.blt bs=1 seek=$(($2 + 20 + 10)) conv=notrunc 2>/dev/null
run b "$B" info bad.blt
is "a flipped byte in a payload: exit 2" "$(rc b)" 2
check "... naming chunk $1 (STAT) at offset $2" grep -q "bad.blt: chunk $1 (STAT) at offset $2: CRC mismatch" b.err
run b "$B" info --json bad.blt
is "... also with --json" "$(rc b)" 2
cp t.blt bad.blt
printf 'X' | dd of=bad.blt bs=1 seek=40 conv=notrunc 2>/dev/null
run b "$B" info bad.blt
is "a flipped byte in the header: exit 2" "$(rc b)" 2
check "... header CRC mismatch" grep -q "header CRC mismatch" b.err

# ------------------------------------------------------------------ usage
run z "$B" info -z "$TOK" t.blt
is "-z with a trace: exit 2" "$(rc z)" 2
check "-z with a trace: says why" grep -q 'not a trace' z.err
run z "$B" info t.blt m.blt
is "two traces: exit 2" "$(rc z)" 2
run z "$B" info -z "$TOK" "$MODEL"
is "a model is still described as before" "$(rc z) $(field format z.out)" "0 llama2.c v0 (legacy header)"

done_testing
