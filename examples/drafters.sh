#!/bin/sh
# examples/drafters.sh: train a Medusa-style and an EAGLE-style drafter for
# stories260K and measure what each buys in real decoding.
#
# usage: examples/drafters.sh [OUTDIR]
#
# Both are trained by `bitlens train` on the model's own greedy
# continuations of the TinyStories paragraphs of the test data, every 10th
# paragraph held out (--valid-every 10).  Each held-out paragraph's first 20
# words are then a prompt for `bitlens generate -n 128`, once plainly
# (greedy, -t 0) and once with each drafter in verify mode.  Printed per
# drafter: the prompts whose text is byte for byte plain greedy's, and the
# tokens per model forward pass over all of them (the passes counted by
# generate).  About 10 minutes on two cores.
#
# Environment: BL_BIN (default: bitlens in PATH), BL_TESTDATA (default:
# ../shared/testdata beside the source tree).
set -eu

srcdir=$(cd "$(dirname "$0")/.." && pwd)
td=${BL_TESTDATA:-$srcdir/../shared/testdata}
B=${BL_BIN:-bitlens}
OUT=${1:-./drafters-out}
M=$td/models/stories260K.bin
Z=$td/models/tok512.bin
T=$td/text/tinystories_train_head.txt
for f in "$M" "$Z" "$T"; do
    [ -r "$f" ] || { echo "$0: '$f' not found (set BL_TESTDATA)" >&2; exit 2; }
done
command -v "$B" >/dev/null 2>&1 || { echo "$0: '$B' not found: set BL_BIN" >&2; exit 2; }
mkdir -p "$OUT"

echo "==> training: Medusa-style (4 heads of 2 blocks of width 256) and EAGLE-style (one layer)"
"$B" train --drafter medusa -m "$M" -z "$Z" --corpus "$T" --blocks 2 --steps 6000 --eval-every 1000 \
    -o "$OUT/medusa.gguf" --force
"$B" train --drafter eagle -m "$M" -z "$Z" --corpus "$T" --steps 6000 --eval-every 1000 \
    -o "$OUT/eagle.gguf" --force

# the held-out paragraphs (10th, 20th, ...), their first 20 words
awk 'BEGIN { RS = "" } NR % 10 == 0 {
    gsub(/[ \t]*\n[ \t]*/, " "); n = split($0, w, " "); s = w[1]
    for (i = 2; i <= n && i <= 20; i++) s = s " " w[i]; print s }' "$T" >"$OUT/heldout.txt"

echo "==> plain greedy decoding of the $(wc -l <"$OUT/heldout.txt" | tr -d ' ') held-out prompts"
i=0
while IFS= read -r p; do
    "$B" generate -m "$M" -z "$Z" -t 0 -n 128 -q -p "$p" >"$OUT/plain.$i.txt"
    i=$((i + 1))
done <"$OUT/heldout.txt"

for k in medusa eagle; do
    echo "==> $k: verify mode on the same prompts"
    i=0
    while IFS= read -r p; do
        "$B" generate -m "$M" -z "$Z" -n 128 -p "$p" --drafter "$OUT/$k.gguf" \
            >"$OUT/$k.$i.txt" 2>"$OUT/$k.$i.err"
        same=0
        cmp -s "$OUT/plain.$i.txt" "$OUT/$k.$i.txt" && same=1
        echo "$same $(sed -n 's/^bitlens generate: \([0-9]*\) tokens\{0,1\} in \([0-9]*\) model passes.*/\1 \2/p' \
            "$OUT/$k.$i.err")"
        i=$((i + 1))
    done <"$OUT/heldout.txt" | awk -v k="$k" '{ s += $1; t += $2; p += $3; n++ }
        END { printf "%s: %d of %d prompts identical to plain greedy; %d tokens in %d passes: %.3f tokens per pass\n",
              k, s, n, t, p, t / p }'
done
