#!/bin/sh
# tests/cli-info.sh: `bitlens info` on the real test models (TAP).
#
# The expected values come from sources independent of bitlens: the test
# data's READMEs (dimensions, vocabulary, tied or separate classifier), the
# model files' own headers read with od(1) (llama2.c magic, GGUF version,
# tensor and key counts), and arithmetic here (parameter counts, tensor
# shapes, the bytes a llama2.c file must hold).  `--json` is checked to
# parse and to hold the same numbers as the text.
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
BIN=$D/models/stories260K.bin
TOK=$D/models/tok512.bin
GGUF=$D/models/stories260K.gguf
GQA=$D/golden/llama_gqa_random/llama-random-e96-l2-h6-kv2-ff256-f16.gguf
VOCAB=$D/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf
for f in "$D/README.md" "$D/golden/README.md" "$BIN" "$TOK" "$GGUF" "$GQA" "$VOCAB"; do
    if [ ! -r "$f" ]; then
        echo "1..0 # SKIP test data not found ('$f'; configure --with-testdata=DIR)"
        exit 0
    fi
done

# ------------------------------------------------------------------ TAP
# ------------------------------------------------------------------ helpers
# field NAME FILE: the value of a "NAME:  value" line of the text output
field() { sed -n "s/^$1: *//p" "$2" | head -n 1; }

# row TENSOR FILE: "type shape offset bytes" of a row of the tensor table
row() {
    awk -v t="$1" '
    /^tensors \(/ { tab = 1; next }
    tab && $1 == t {
        s = $3
        for (i = 4; i <= NF - 2; i++) s = s " " $i
        print $2, s, $(NF - 1), $NF
        exit
    }' "$2"
}

# rows FILE: the rows of the tensor table (after its header line)
rows() { awk '/^tensors \(/ { tab = 1; getline; next } tab && NF' "$1"; }

# le FILE OFFSET SIZE: an unsigned little-endian integer read from the file
le() {
    od -An -tu1 -j "$2" -N "$3" "$1" |
        awk '{ for (i = 1; i <= NF; i++) b[k++] = $i }
             END { v = 0; for (i = k - 1; i >= 0; i--) v = v * 256 + b[i]; printf "%.0f\n", v }'
}

# readme_num TEXT PATTERN: the number that stands at '#' in PATTERN (a sed
# regular expression), from its last match in TEXT
readme_num() {
    _re=$(printf '%s\n' "$2" | sed 's/#/\\([0-9][0-9]*\\)/')
    printf '%s\n' "$1" | sed -n "s/.*$_re.*/\\1/p" | head -n 1
}

# params DIM LAYERS HEADS KV_HEADS HIDDEN VOCAB TIED: the number of weights
# of a Llama model: embedding (and classifier), final norm, and per layer
# two norms, q, k, v, o and the three MLP matrices
params() {
    _d=$1 _l=$2 _h=$3 _kv=$4 _f=$5 _v=$6 _tied=$7
    _hd=$((_d / _h))
    _kvd=$((_kv * _hd))
    _layer=$((2 * _d + _d * _d + 2 * _d * _kvd + _d * _d + 3 * _d * _f))
    _cls=$((_tied ? 0 : _d * _v))
    echo $((_d * _v + _cls + _d + _l * _layer))
}

# run NAME ARGS...: bitlens info ARGS > $tmp/NAME.out 2> $tmp/NAME.err;
# the exit status goes to $tmp/NAME.rc
run() {
    _name=$1
    shift
    set +e
    "$BL_BIN" info "$@" >"$tmp/$_name.out" 2>"$tmp/$_name.err"
    echo $? >"$tmp/$_name.rc"
    set -e
}

have_python=0
if command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null; then
    have_python=1
fi

# json_summary FILE: the numbers of a --json object, in the order of
# text_summary, one "key value" per line
json_summary() {
    python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
c = o["config"]
print("format", o["format"])
print("architecture", o["architecture"])
print("parameters", o["parameters"])
for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "ctx_train"):
    print(k, c[k])
print("tied", "yes" if c["tied_classifier"] else "no")
v = o["vocabulary"]
print("vocabulary", "none %d" % c["n_vocab"] if v is None else "%d %s %d %d" % (v["size"], v["model"], v["bos"], v["eos"]))
print("tensors", len(o["tensors"]))
print("file_size", o["file_size"])
' "$1"
}

# json_tensors FILE: the tensor table of a --json object as the text prints it
json_tensors() {
    python3 -c '
import json, sys
for t in json.load(open(sys.argv[1]))["tensors"]:
    print(t["name"], t["type"], "[" + ", ".join(str(x) for x in t["shape"]) + "]", t["offset"], t["bytes"])
' "$1"
}

# text_summary FILE: the same numbers, read from the text output
text_summary() {
    f=$1
    echo "format $(field format "$f")"
    echo "architecture $(field architecture "$f")"
    echo "parameters $(field parameters "$f" | sed 's/ .*//')"
    field dimensions "$f" | sed -n 's/^dim \([0-9]*\), \([0-9]*\) layers, \([0-9]*\) heads (\([0-9]*\) key\/value), head dim \([0-9]*\), hidden \([0-9]*\)$/dim \1\
n_layers \2\
n_heads \3\
n_kv_heads \4\
head_dim \5\
hidden_dim \6/p'
    echo "ctx_train $(field context "$f" | sed 's/ positions.*//')"
    case $(field classifier "$f") in
    tied*) echo "tied yes" ;;
    separate*) echo "tied no" ;;
    *) echo "tied ?" ;;
    esac
    field vocabulary "$f" | sed -n \
        -e 's/^\([0-9]*\) tokens (\(.*\)), BOS \([0-9-]*\), EOS \([0-9-]*\)$/vocabulary \1 \2 \3 \4/p' \
        -e 's/^\([0-9]*\) rows; no tokenizer.*/vocabulary none \1/p'
    echo "tensors $(rows "$f" | wc -l | tr -d ' ')"
    echo "file_size $(field file "$f" | sed 's/.*(\([0-9]*\) bytes)$/\1/')"
}

# describe LABEL FILE EXPECT_FORMAT DIM LAYERS HEADS KV HIDDEN VOCAB CTX TIED
#          VOCAB_LINE N_TENSORS [ARGS...]
# All checks of one model file; LABEL names the run, ARGS go before FILE.
describe() {
    label=$1 file=$2 efmt=$3 ed=$4 el=$5 eh=$6 ekv=$7 ef=$8 ev=$9
    shift 9
    ectx=$1 etied=$2 evocab=$3 ent=$4
    shift 4
    run "$label" "$@" "$file"
    out=$tmp/$label.out
    rows "$out" >"$tmp/$label.rows"
    is "$label: exit status 0" "$(cat "$tmp/$label.rc")" 0
    check "$label: nothing on stderr" test ! -s "$tmp/$label.err"
    diag <"$tmp/$label.err"
    is "$label: file and size" "$(field file "$out")" "$file ($(wc -c <"$file" | tr -d ' ') bytes)"
    is "$label: format" "$(field format "$out")" "$efmt"
    is "$label: architecture" "$(field architecture "$out")" llama
    is "$label: dimensions" "$(field dimensions "$out")" \
        "dim $ed, $el layers, $eh heads ($ekv key/value), head dim $((ed / eh)), hidden $ef"
    is "$label: trained context" "$(field context "$out" | sed 's/;.*//')" "$ectx positions"
    eparams=$(params "$ed" "$el" "$eh" "$ekv" "$ef" "$ev" "$etied")
    is "$label: parameter count ($eparams from the dimensions)" \
        "$(field parameters "$out" | sed 's/ .*//')" "$eparams"
    if [ "$etied" = 1 ]; then ecls="tied to the token embedding"; else ecls="separate (output.weight)"; fi
    is "$label: classifier" "$(field classifier "$out")" "$ecls"
    is "$label: vocabulary" "$(field vocabulary "$out")" "$evocab"
    is "$label: tensor count in the heading" "$(sed -n 's/^tensors (\([0-9]*\)):$/\1/p' "$out")" "$ent"
    is "$label: tensor table rows" "$(rows "$out" | wc -l | tr -d ' ')" "$ent"
    kvd=$((ekv * (ed / eh)))
    is "$label: token_embd.weight shape" "$(row token_embd.weight "$out" | sed 's/^[^ ]* \(\[.*\]\) .*/\1/')" "[$ed, $ev]"
    is "$label: blk.0.attn_k.weight shape" "$(row blk.0.attn_k.weight "$out" | sed 's/^[^ ]* \(\[.*\]\) .*/\1/')" "[$ed, $kvd]"
    last=$((el - 1))
    is "$label: blk.$last.ffn_down.weight shape" "$(row "blk.$last.ffn_down.weight" "$out" | sed 's/^[^ ]* \(\[.*\]\) .*/\1/')" "[$ef, $ed]"
    is "$label: blk.$last.ffn_gate.weight shape" "$(row "blk.$last.ffn_gate.weight" "$out" | sed 's/^[^ ]* \(\[.*\]\) .*/\1/')" "[$ed, $ef]"
    is "$label: output_norm.weight shape" "$(row output_norm.weight "$out" | sed 's/^[^ ]* \(\[.*\]\) .*/\1/')" "[$ed]"
    if [ "$etied" = 1 ]; then
        is "$label: no output.weight row" "$(row output.weight "$out")" ""
    else
        is "$label: output.weight shape" "$(row output.weight "$out" | sed 's/^[^ ]* \(\[.*\]\) .*/\1/')" "[$ed, $ev]"
    fi
    # every tensor lies inside the file
    size=$(wc -c <"$file" | tr -d ' ')
    check "$label: every tensor lies inside the file" \
        awk -v size="$size" '$(NF - 1) + $NF > size { bad = 1 } END { exit bad }' "$tmp/$label.rows"
}

# ------------------------------------------------------------------ expectations
# testdata/README.md, the models table:
#   stories260K.bin ... (dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads,
#   vocab 512, seq 512, shared classifier)
line=$(grep '^| `stories260K.bin`' "$D/README.md" || true)
S_DIM=$(readme_num "$line" 'dim #')
S_HID=$(readme_num "$line" 'hidden #')
S_L=$(readme_num "$line" ' # layers')
S_H=$(readme_num "$line" ', # heads')
S_KV=$(readme_num "$line" ' # kv heads')
S_V=$(readme_num "$line" 'vocab #')
S_CTX=$(readme_num "$line" 'seq #')
case $line in *"shared classifier"*) S_TIED=1 ;; *) S_TIED=0 ;; esac
# stories260K.gguf: "the same model as GGUF v3 ... llama.context_length 128"
gline=$(grep '^| `stories260K.gguf`' "$D/README.md" || true)
G_CTX=$(readme_num "$gline" '`llama.context_length` #')
# golden/README.md, section 5 (the paragraph that starts with the file name)
para=$(sed -n '/^`llama-random-e96-l2-h6-kv2-ff256-f16.gguf`/,/^$/p' "$D/golden/README.md" | tr '\n' ' ')
Q_DIM=$(readme_num "$para" ' n_embd #')
Q_L=$(readme_num "$para" 'n_layer #')
Q_H=$(readme_num "$para" 'n_head #')
Q_KV=$(readme_num "$para" 'n_head_kv #')
Q_F=$(readme_num "$para" 'n_ff #')
Q_CTX=$(readme_num "$para" 'n_ctx #')
Q_ROT=$(readme_num "$para" 'rope dimension #')
Q_V=$(readme_num "$para" '(# tokens')
Q_BOS=$(readme_num "$para" 'bos #')
Q_EOS=$(readme_num "$para" 'eos #')
case $para in *"separate, not tied"*) Q_TIED=0 ;; *) Q_TIED=1 ;; esac

all="$S_DIM $S_HID $S_L $S_H $S_KV $S_V $S_CTX $G_CTX $Q_DIM $Q_L $Q_H $Q_KV $Q_F $Q_CTX $Q_ROT $Q_V $Q_BOS $Q_EOS"
bad=0
for v in $all; do
    case $v in '' | *[!0-9]*) bad=1 ;; esac
done
set -- $all
if [ "$bad" = 1 ] || [ $# -ne 18 ]; then
    echo "Bail out! cannot read the dimensions from the test data READMEs (got: $all)"
    exit 1
fi
pass "the READMEs give the dimensions (stories260K: $S_DIM/$S_L/$S_H/$S_KV/$S_HID/$S_V; GQA: $Q_DIM/$Q_L/$Q_H/$Q_KV/$Q_F/$Q_V)"

# The files' own headers: llama2.c version 1 starts with "ak42", the legacy
# header with dim; a GGUF file holds its version at byte 4, its tensor count
# at byte 8 and its key count at byte 16.
if [ "$(le "$BIN" 0 4)" = 1630745650 ]; then   # "ak42" little-endian
    S_FMT="llama2.c v1"
else
    S_FMT="llama2.c v0 (legacy header)"
    is "stories260K.bin: the legacy header starts with dim" "$(le "$BIN" 0 4)" "$S_DIM"
fi
S_NT=$((3 + 9 * S_L - S_TIED))
G_NT=$(le "$GGUF" 8 8)
G_NKV=$(le "$GGUF" 16 8)
Q_NT=$(le "$GQA" 8 8)
Q_NKV=$(le "$GQA" 16 8)
is "GQA model header: 3 + 9 x layers tensors, less one if tied" "$Q_NT" $((3 + 9 * Q_L - Q_TIED))
# whether stories260K.gguf stores a classifier: the tensor name
# "output.weight" in its header, after its 64-bit length, 13
if od -An -tx1 -v "$GGUF" | tr -d ' \n' |
    grep -q '0d000000000000006f75747075742e776569676874'; then
    G_TIED=0
else
    G_TIED=1
fi
is "stories260K.gguf: the header's tensor count matches its classifier" "$G_NT" $((3 + 9 * S_L - G_TIED))

# ------------------------------------------------------------------ the runs
vocab_none="$S_V rows; no tokenizer (give a tokenizer.bin with -z)"
vocab_tok="$S_V tokens (llama2.c), BOS 1, EOS 2"

# BOS 1 and EOS 2: the llama2.c convention, which the GGUF conversion keeps
# (golden/README.md: "ids[0] is BOS (id 1)")
describe bin "$BIN" "$S_FMT" "$S_DIM" "$S_L" "$S_H" "$S_KV" "$S_HID" "$S_V" \
    "$S_CTX" "$S_TIED" "$vocab_none" "$S_NT"
describe bin-z "$BIN" "$S_FMT" "$S_DIM" "$S_L" "$S_H" "$S_KV" "$S_HID" "$S_V" \
    "$S_CTX" "$S_TIED" "$vocab_tok" "$S_NT" -z "$TOK"
describe gguf "$GGUF" "gguf v$(le "$GGUF" 4 4)" "$S_DIM" "$S_L" "$S_H" "$S_KV" "$S_HID" "$S_V" \
    "$G_CTX" "$G_TIED" "$S_V tokens (llama), BOS 1, EOS 2" "$G_NT"
describe gqa "$GQA" "gguf v$(le "$GQA" 4 4)" "$Q_DIM" "$Q_L" "$Q_H" "$Q_KV" "$Q_F" "$Q_V" \
    "$Q_CTX" "$Q_TIED" "$Q_V tokens (llama), BOS $Q_BOS, EOS $Q_EOS" "$Q_NT"

# llama2.c: the weights are f32 and fill the file after the 28-byte header,
# with the RoPE tables (2 x seq x head_dim/2 floats) after the final norm
if [ "$S_FMT" = "llama2.c v0 (legacy header)" ]; then
    sum=$(awk '{ s += $NF } END { printf "%.0f\n", s }' "$tmp/bin.rows")
    rope=$((2 * S_CTX * (S_DIM / S_H / 2) * 4))
    is "stories260K.bin: header + tensors + RoPE tables = the file size" \
        $((28 + sum + rope)) "$(wc -c <"$BIN" | tr -d ' ')"
fi
check "stories260K.bin: every tensor is f32, 4 bytes per element of its shape" \
    awk '{
        s = ""
        for (i = 3; i <= NF - 2; i++) s = s " " $i
        gsub(/[^0-9]/, " ", s)
        m = split(s, a, " ")
        p = 1
        for (j = 1; j <= m; j++) p *= a[j]
        if ($2 != "f32" || $NF != 4 * p) bad = 1
    } END { exit bad }' "$tmp/bin.rows"
is "stories260K.bin: token_embd.weight is the first tensor, at offset 28" \
    "$(head -n 1 "$tmp/bin.rows" | awk '{ print $1, $(NF - 1) }')" "token_embd.weight 28"

# the GQA model's tensor types (golden/README.md: F16 matrices, F32 norms)
is "gqa: token_embd.weight is f16" "$(row token_embd.weight "$tmp/gqa.out" | cut -d' ' -f1)" f16
is "gqa: blk.1.attn_norm.weight is f32" "$(row blk.1.attn_norm.weight "$tmp/gqa.out" | cut -d' ' -f1)" f32
is "gqa: blk.0.attn_q.weight: f16 [$Q_DIM, $Q_DIM], $((Q_DIM * Q_DIM * 2)) bytes" \
    "$(row blk.0.attn_q.weight "$tmp/gqa.out" | awk '{ print $1, $2, $3, $NF }')" \
    "f16 [$Q_DIM, $Q_DIM] $((Q_DIM * Q_DIM * 2))"
is "gqa: RoPE over $Q_ROT dims" "$(field context "$tmp/gqa.out" | sed -n 's/.*over \([0-9]*\) dims.*/\1/p')" "$Q_ROT"

# -v lists the GGUF metadata, as many keys as the header says
run gqa-v -v "$GQA"
is "gqa -v: exit status 0" "$(cat "$tmp/gqa-v.rc")" 0
is "gqa -v: metadata heading gives the header's key count" \
    "$(sed -n 's/^metadata (\([0-9]*\) keys):$/\1/p' "$tmp/gqa-v.out")" "$Q_NKV"
is "gqa -v: one line per key" \
    "$(awk '/^metadata \(/ { m = 1; next } m && /^$/ { exit } m { k++ } END { print k + 0 }' "$tmp/gqa-v.out")" "$Q_NKV"
check "gqa -v: llama.attention.head_count_kv is $Q_KV" \
    grep -qE "^  llama\.attention\.head_count_kv +$Q_KV\$" "$tmp/gqa-v.out"
check "gqa -v: the vocabulary is an array of $Q_V strings" \
    grep -qE "^  tokenizer\.ggml\.tokens +\[string x $Q_V\]\$" "$tmp/gqa-v.out"
run gguf-v -v "$GGUF"
is "stories260K.gguf -v: metadata heading gives the header's key count" \
    "$(sed -n 's/^metadata (\([0-9]*\) keys):$/\1/p' "$tmp/gguf-v.out")" "$G_NKV"
check "stories260K.gguf -v: llama.context_length is $G_CTX" \
    grep -qE "^  llama\.context_length +$G_CTX\$" "$tmp/gguf-v.out"
run bin-v -v "$BIN"
check "stories260K.bin -v: no metadata (llama2.c has none)" \
    sh -c '! grep -q "^metadata" "$1"' sh "$tmp/bin-v.out"

# ------------------------------------------------------------------ --json
for spec in bin bin-z gguf gqa; do
    case $spec in
    bin) set -- "$BIN" ;;
    bin-z) set -- -z "$TOK" "$BIN" ;;
    gguf) set -- "$GGUF" ;;
    gqa) set -- "$GQA" ;;
    esac
    run "$spec-json" --json "$@"
    is "$spec --json: exit status 0" "$(cat "$tmp/$spec-json.rc")" 0
    if [ "$have_python" = 0 ]; then
        skip "$spec --json: parses as JSON" "python3 is not installed"
        continue
    fi
    if python3 -c 'import json, sys; json.load(sys.stdin)' <"$tmp/$spec-json.out" 2>"$tmp/err"; then
        pass "$spec --json: parses as JSON"
    else
        fail "$spec --json: parses as JSON"
        diag <"$tmp/err"
        continue
    fi
    json_summary "$tmp/$spec-json.out" >"$tmp/js" 2>"$tmp/err" || diag <"$tmp/err"
    text_summary "$tmp/$spec.out" >"$tmp/ts"
    if cmp -s "$tmp/js" "$tmp/ts"; then
        pass "$spec --json: the same numbers as the text"
    else
        fail "$spec --json: the same numbers as the text"
        diff "$tmp/ts" "$tmp/js" | diag || true
    fi
    json_tensors "$tmp/$spec-json.out" >"$tmp/jt" 2>"$tmp/err" || diag <"$tmp/err"
    awk '{ s = $3; for (i = 4; i <= NF - 2; i++) s = s " " $i; print $1, $2, s, $(NF - 1), $NF }' \
        "$tmp/$spec.rows" >"$tmp/tt"
    if cmp -s "$tmp/jt" "$tmp/tt"; then
        pass "$spec --json: the same tensor table as the text"
    else
        fail "$spec --json: the same tensor table as the text"
        diff "$tmp/tt" "$tmp/jt" | diag || true
    fi
    # the parameter count is the sum of the tensors' elements
    is "$spec --json: parameters = the elements of all tensors" \
        "$(python3 -c '
import json, sys
o = json.load(open(sys.argv[1])); s = 0
for t in o["tensors"]:
    p = 1
    for x in t["shape"]: p *= x
    s += p
print(s == o["parameters"])' "$tmp/$spec-json.out")" True
done
if [ "$have_python" = 1 ]; then
    is "gqa --json: the metadata object has the header's key count" \
        "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["metadata"]))' "$tmp/gqa-json.out")" "$Q_NKV"
    is "bin --json: a llama2.c file has no metadata and, without -z, a null vocabulary" \
        "$(python3 -c 'import json, sys; o = json.load(open(sys.argv[1])); print("metadata" in o, o["vocabulary"])' "$tmp/bin-json.out")" \
        "False None"
fi

# ------------------------------------------------------------------ no tensors
# A vocabulary-only GGUF (llama.cpp's tokenizer test file) has no weights:
# it is described as a vocabulary (bitlens train --tokenizer writes such
# files), with the size, BOS and EOS its keys give.
for j in "" --json; do
    run vocab $j "$VOCAB"
    rc=$(cat "$tmp/vocab.rc")
    is "vocabulary-only GGUF${j:+ $j}: exit status 0" "$rc" 0
    check "vocabulary-only GGUF${j:+ $j}: nothing on stderr" test ! -s "$tmp/vocab.err"
done
run vocab "$VOCAB"
check "vocabulary-only GGUF: a vocabulary without a model" grep -q "^format: *gguf v3, a vocabulary without a model\$" "$tmp/vocab.out"
check "vocabulary-only GGUF: Llama's 32000 tokens, BOS 1, EOS 2" \
    grep -q "^vocabulary: *32000 tokens (llama), BOS 1, EOS 2\$" "$tmp/vocab.out"
run vocab --json "$VOCAB"
check "vocabulary-only GGUF --json: type vocabulary, 32000 tokens" \
    sh -c 'grep -q "\"type\":.*\"vocabulary\"" "$1" && grep -q "\"tokens\":.*32000" "$1"' sh "$tmp/vocab.out"

done_testing
