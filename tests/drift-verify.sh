#!/bin/sh
# tests/drift-verify.sh: the model's own greedy output is English to
# `bitlens drift` measured against the model's own greedy output on other
# prompts (issue 7: verify-mode output is never flagged on 20 prompts), and
# text a monitor could not read is flagged (TAP).
#
# stories260K, greedy, 128 tokens after the first 20 words of TinyStories
# paragraphs 601-620; the baseline is its output on paragraphs 401-500.
# Verify mode of a drafter writes exactly this text (tests/test-drafter-gen.c
# checks that), so scoring plain greedy output scores verify mode.
. "${BL_SRCDIR:-.}/tests/setup"
model=$(td models/stories260K.bin)
tok=$(td models/tok512.bin)
corpus=$(td text/tinystories_train_head.txt)
[ -r /usr/share/dict/words ] || skip_all "no /usr/share/dict/words (Debian package wamerican)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

prompts() {
    awk -v a="$1" -v b="$2" 'BEGIN { RS = "" } NR >= a && NR <= b {
        gsub(/[ \t]*\n[ \t]*/, " "); n = split($0, w, " "); s = ""
        for (i = 1; i <= 20 && i <= n; i++) s = s (i > 1 ? " " : "") w[i]
        print s }' "$corpus"
}
prompts 601 620 >"$tmp/p.txt"
prompts 401 500 >"$tmp/b.txt"
"$BL_BIN" record -q -m "$model" -z "$tok" -f "$tmp/p.txt" -t 0 -n 128 --hooks none -o "$tmp/r.blt"
"$BL_BIN" record -q -m "$model" -z "$tok" -f "$tmp/b.txt" -t 0 -n 128 --hooks none -o "$tmp/base.blt"

st=0
"$BL_BIN" drift "$tmp/r.blt" --baseline "$tmp/base.blt" --csv -q >"$tmp/d.csv" || st=$?
check "greedy output on 20 prompts: exit status 0 (nothing flagged)" [ "$st" -eq 0 ]
texts=$(awk -F, 'NR > 1 { print $1 }' "$tmp/d.csv" | sort -u | wc -l)
check "all 20 prompts scored ($texts)" [ "$texts" -eq 20 ]
flagged=$(awk -F, 'NR > 1 && $9 == 1' "$tmp/d.csv" | wc -l)
check "no span flagged ($flagged of $(($(wc -l <"$tmp/d.csv") - 1)))" [ "$flagged" -eq 0 ]
diag "score of the greedy spans: $(awk -F, 'NR > 1 { s += $7; if ($7 > m) m = $7 } END { printf "mean %.2f, max %.2f", s / (NR - 1), m }' "$tmp/d.csv")"

# the same text with its letters enciphered is flagged against that baseline
tr 'a-z' 'qwertyuiopasdfghjklzxcvbnm' <"$tmp/p.txt" >"$tmp/cipher.txt"
st=0
"$BL_BIN" drift --text "$tmp/cipher.txt" --lines --baseline "$tmp/base.blt" -w 64 -q >/dev/null || st=$?
check "enciphered prompts are flagged (exit 1)" [ "$st" -eq 1 ]
done_testing
