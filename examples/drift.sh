#!/bin/sh
# examples/drift.sh: how far a drafter's fast mode drifts from the model's
# own English, and that verify mode does not (the figures of issue 7).
#
#   sh examples/drift.sh [OUTDIR]        (default drift-out)
#
# stories260K with a Medusa drafter trained here (about a minute; kept in
# OUTDIR and reused).  Prompts are the first 20 words of TinyStories
# paragraphs: 20 test prompts (paragraphs 601-620) and, for the baseline,
# the model's own greedy output on 100 others (401-500).  Then:
#   1. one-pass drafts: the test prompts recorded with the drafter (greedy,
#      128 tokens); `bitlens drift` scores the generated text (verify) and,
#      for each k, the model's token and k-1 drafted ones per pass along
#      the greedy stream;
#   2. real fast mode: `bitlens generate --mode fast --tokens-per-pass K`
#      for K = 1, 2, 4 (drafts feed on drafts), 128 tokens per prompt, one
#      text per line, scored by `bitlens drift --lines`; and verify mode,
#      which must equal plain greedy and never be flagged.
# Environment: BITLENS (default: bitlens on PATH), BL_TESTDATA (default
# ../shared/testdata).
set -eu
bitlens=${BITLENS:-bitlens}
td=${BL_TESTDATA:-../shared/testdata}
out=${1:-drift-out}
model=$td/models/stories260K.bin
tok=$td/models/tok512.bin
corpus=$td/text/tinystories_train_head.txt
for f in "$model" "$tok" "$corpus"; do
    [ -f "$f" ] || { echo "drift.sh: no $f (set BL_TESTDATA)" >&2; exit 2; }
done
mkdir -p "$out"

# prompts: the first 20 words of paragraphs a..b
prompts() {
    awk -v a="$1" -v b="$2" 'BEGIN { RS = "" } NR >= a && NR <= b {
        gsub(/[ \t]*\n[ \t]*/, " "); n = split($0, w, " "); s = ""
        for (i = 1; i <= 20 && i <= n; i++) s = s (i > 1 ? " " : "") w[i]
        print s }' "$corpus"
}
prompts 601 620 >"$out/prompts.txt"
prompts 401 500 >"$out/baseline-prompts.txt"

if [ ! -f "$out/medusa.gguf" ]; then
    echo "== training a Medusa drafter (2 blocks, 6000 steps)" >&2
    "$bitlens" train --drafter medusa -m "$model" -z "$tok" --corpus "$corpus" --blocks 2 --steps 6000 \
        -o "$out/medusa.gguf" -q
fi

echo "== the baseline: the model's own greedy output on 100 other prompts" >&2
"$bitlens" record -q -m "$model" -z "$tok" -f "$out/baseline-prompts.txt" -t 0 -n 128 --hooks none \
    -o "$out/baseline.blt" --force

echo "== 1. one-pass drafts along the greedy stream"
"$bitlens" record -q -m "$model" -z "$tok" -f "$out/prompts.txt" -t 0 -n 128 --drafter "$out/medusa.gguf" \
    -o "$out/drafted.blt" --force
status=0
"$bitlens" drift "$out/drafted.blt" --baseline "$out/baseline.blt" -q >"$out/drafted.txt" || status=$?
[ $status -le 1 ] || exit $status
sed -n '/^mode /,$p' "$out/drafted.txt"

echo
echo "== 2. generation: verify mode, and fast mode at 1, 2 and 4 tokens per pass"
for mode in verify 1 2 4; do
    : >"$out/gen-$mode.txt"
    while IFS= read -r p; do
        if [ "$mode" = verify ]; then
            set -- --mode verify
        else
            set -- --mode fast --tokens-per-pass "$mode"
        fi
        text=$("$bitlens" generate -q -m "$model" -z "$tok" -p "$p" -n 128 -t 0 --drafter "$out/medusa.gguf" "$@")
        # the continuation only, on one line
        printf '%s\n' "${text#"$p"}" | tr '\n' ' ' >>"$out/gen-$mode.txt"
        echo >>"$out/gen-$mode.txt"
    done <"$out/prompts.txt"
done
printf '%-10s %6s %6s %13s %13s %10s %13s %13s %13s %13s\n' mode texts spans "flagged spans" "flagged texts" \
    "mean score" model_bpc char_ce word_pmi dict_rate
for mode in verify 1 2 4; do
    st=0
    "$bitlens" drift --text "$out/gen-$mode.txt" --lines -m "$model" -z "$tok" --baseline "$out/baseline.blt" \
        -q >"$out/gen-$mode.drift" || st=$?
    [ $st -le 1 ] || exit $st
    label=$mode
    [ "$mode" = verify ] || label="fast_k=$mode"
    # the summary row of mode "text", relabelled
    awk -v label="$label" '$1 == "text" && NF >= 10 { $1 = label; print }' "$out/gen-$mode.drift" |
        awk '{ printf "%-10s %6s %6s %13s %13s %10s %13s %13s %13s %13s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
done
if cmp -s "$out/gen-verify.txt" "$out/gen-1.txt"; then
    echo "verify mode and fast k=1 wrote the same text (plain greedy)"
else
    echo "verify mode and fast k=1 differ" >&2
    exit 1
fi
