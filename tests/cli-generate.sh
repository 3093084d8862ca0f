#!/bin/sh
# bitlens generate: greedy text identical to llama2.c's run.c on stories260K
# (.bin and .gguf), identical to an independent float64 reference on the
# other checkpoints, reproducible sampling.
. "$BL_SRCDIR/tests/setup"

# td in a command substitution would only leave the subshell: check here
for f in models/stories260K.bin models/stories260K.gguf models/tok512.bin \
    golden/stories260K_greedy_n256.txt golden/stories260K/tokens.json; do
    [ -r "${BL_TESTDATA:-/nonexistent}/$f" ] || skip_all "test data '$f' not found under BL_TESTDATA='${BL_TESTDATA:-}'"
done
models=$BL_TESTDATA/models
golden=$BL_TESTDATA/golden/stories260K_greedy_n256.txt

# llama2.c: `run stories260K.bin -z tok512.bin -t 0` (its -n 256 from BOS
# prints 256 new tokens; bitlens' -n counts new tokens, default 256)
"$BL_BIN" generate -q -m "$models/stories260K.bin" -z "$models/tok512.bin" -t 0 >"$tmp/bin.txt"
check "stories260K.bin greedy: byte for byte llama2.c's output" cmp "$tmp/bin.txt" "$golden"
"$BL_BIN" generate -q -m "$models/stories260K.gguf" -t 0 >"$tmp/gguf.txt"
check "stories260K.gguf greedy: byte for byte llama2.c's output" cmp "$tmp/gguf.txt" "$golden"
"$BL_BIN" generate -q -m "$models/stories260K.bin" -z "$models/tok512.bin" -t 0 --threads 1 >"$tmp/t1.txt"
check "one thread: the same text" cmp "$tmp/t1.txt" "$golden"

# the GGUF says its context is 128 positions: going past it warns on stderr
"$BL_BIN" generate -m "$models/stories260K.gguf" -t 0 -n 200 >/dev/null 2>"$tmp/err"
check "past the trained context: a warning on stderr" grep -q "trained with a context of 128" "$tmp/err"
"$BL_BIN" generate -q -m "$models/stories260K.gguf" -t 0 -n 200 >/dev/null 2>"$tmp/err"
check "-q: nothing on stderr" test ! -s "$tmp/err"

# run.c's stdout for `run stories260K.bin -z tok512.bin -t 0 -n 48 -i "Once
# upon a time"`, kept in golden/stories260K/tokens.json: 48 positions with a
# 5-token prompt are 44 new tokens
tokens_json=$BL_TESTDATA/golden/stories260K/tokens.json
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["runc_greedy_stdout"])' \
        "$tokens_json" >"$tmp/p.want"
    "$BL_BIN" generate -q -m "$models/stories260K.bin" -z "$models/tok512.bin" -t 0 \
        -p "Once upon a time" -n 44 >"$tmp/p.txt"
    check "prompted greedy run: run.c's stdout in golden/stories260K/tokens.json" cmp "$tmp/p.txt" "$tmp/p.want"
else
    skip "no python3 to read golden/stories260K/tokens.json"
fi

"$BL_BIN" generate -q -m "$models/stories260K.bin" -z "$models/tok512.bin" -p "Hello there" -n 0 >"$tmp/n0.txt"
printf 'Hello there\n' >"$tmp/n0.want"
check "-n 0 prints the prompt and a newline" cmp "$tmp/n0.txt" "$tmp/n0.want"

# sampling: a seed fixes the text, another seed changes it
gen() { "$BL_BIN" generate -q -m "$models/stories260K.bin" -z "$models/tok512.bin" -n 64 "$@"; }
gen --seed 7 >"$tmp/s7a.txt"
gen --seed 7 >"$tmp/s7b.txt"
gen --seed 8 >"$tmp/s8.txt"
check "same seed, same sampled text" cmp "$tmp/s7a.txt" "$tmp/s7b.txt"
if cmp -s "$tmp/s7a.txt" "$tmp/s8.txt"; then fail "another seed, other text"; else pass "another seed, other text"; fi
gen --seed 7 --top-k 1 -t 1 >"$tmp/k1.txt"
head -c 64 "$golden" >"$tmp/g64"
check "--top-k 1 samples the greedy text" test "$(head -c 64 "$tmp/k1.txt")" = "$(cat "$tmp/g64")"

# other checkpoints against an independent float64 reference (tests/ref);
# the reference itself is first checked against llama2.c's output
py=$(find_numpy_python)
if [ -z "$py" ]; then
    skip "no python3 with numpy (Debian: python3-numpy): float64 reference checks"
else
    ref="$BL_SRCDIR/tests/ref/llama_ref.py"
    "$py" "$ref" "$models/stories260K.bin" "$models/tok512.bin" "" 256 >"$tmp/ref0.txt"
    check "float64 reference reproduces llama2.c's stories260K text" cmp "$tmp/ref0.txt" "$golden"
    while IFS='|' read -r model tok prompt ntok; do
        [ -r "$models/$model" ] && [ -r "$models/$tok" ] || { skip "$model absent"; continue; }
        "$py" "$ref" "$models/$model" "$models/$tok" "$prompt" "$ntok" >"$tmp/ref.txt"
        "$BL_BIN" generate -q -m "$models/$model" -z "$models/$tok" -p "$prompt" -n "$ntok" -t 0 >"$tmp/out.txt"
        check "$model, prompt '$prompt', $ntok greedy tokens: same text as the float64 reference" \
            cmp "$tmp/ref.txt" "$tmp/out.txt"
    done <<LIST
llama2xs.bin|tok512.bin|Once upon a time|250
llama2xs.bin|tok512.bin|Lily saw a big dog. She|200
aidreams260K.bin|aidreams_tok512.bin|The|120
aidreams260K.bin|aidreams_tok512.bin|I dream of|100
stories260K.bin|tok512.bin|Tom and Jane went to the|300
LIST
fi

done_testing
