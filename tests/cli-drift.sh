#!/bin/sh
# tests/cli-drift.sh: `bitlens drift` and `bitlens plot --chart drift` (TAP).
#
# Text written here (five paragraphs of plain English prose; base64 of it;
# words of random letters from a seeded awk) scores 0 and 1 as exit
# statuses; usage and input errors exit 2 naming the file.  The --csv rows
# are checked against figures computed here from the documented rules
# (bitlens-drift(1)): the spans' character ranges (word starts, stride,
# short tails), mean_word_len and stopword_rate (awk), zlib_ratio (python3's
# zlib, raw deflate at level 9), each z against the baseline's median and
# scale of --json, the score as the root of the sum of the squared positive
# z, the CUSUM and the flags.  --json parses (python3); --lines, --window
# and --stride give the spans the rules say; empty, binary, invalid UTF-8
# and 2 MB single-line input run.  With the test data: traces of
# stories260K (greedy) without and with a Medusa drafter trained here for
# 200 steps give verify and fast k=2..4 rows, --tokens-per-pass, --baseline
# with a trace, --no-model; the verify text is what `bitlens generate`
# writes.  --build-reference round trips, a truncated reference is an
# error.  `bitlens plot --chart drift` writes its data and script from a
# CSV, a text and a trace, and with gnuplot a PNG.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_TESTDATA, the shared test data (without it the trace checks are
# skipped).  python3 and /usr/share/dict/words are optional: the checks
# that need them are skipped with a reason.

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
: "${BL_TESTDATA:=}"

if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
B=$BL_BIN
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
PY=
if command -v python3 >/dev/null 2>&1 && python3 -c 'import json, zlib, csv' 2>/dev/null; then
    PY=python3
fi
GP=$(command -v gnuplot 2>/dev/null || true)
TD=
if [ -n "$BL_TESTDATA" ] && [ -r "$BL_TESTDATA/models/stories260K.bin" ] &&
    [ -r "$BL_TESTDATA/models/tok512.bin" ] && [ -r "$BL_TESTDATA/text/tinystories_train_head.txt" ] &&
    [ -r "$BL_TESTDATA/text/pride_and_prejudice.txt" ]; then
    TD=$BL_TESTDATA
fi
cd "$tmp"

# ------------------------------------------------------------------ helpers
# spans FILE WINDOW STRIDE: "start end" of each span bitlens-drift(1)
# describes, for an ASCII text ending in a newline: spans begin at word
# starts (the first character, or one that is neither space nor newline
# after a space, tab or newline), the first at the first one, each next at
# the first at or after STRIDE past the last start (at most 32 further,
# else there); WINDOW characters or to the end; a tail shorter than half
# the window or than 8 is left out unless it is the only span.
spans() {
    awk -v w="$2" -v s="$3" '
    function start(b,   p, q) {
        if (b == 0) return 1
        p = substr(t, b, 1); q = substr(t, b + 1, 1)
        return (p == " " || p == "\n" || p == "\t") && q != " " && q != "\n"
    }
    function from(c,   j) {
        for (j = c; j < n && j <= c + 32; j++) if (start(j)) return j
        return c
    }
    { t = t $0 "\n" }
    END {
        n = length(t); m = int(w / 2); if (m < 8) m = 8
        k = 0
        for (c = from(0); c < n; c = from(c + s)) {
            e = c + w < n ? c + w : n
            if (e - c < m && k > 0) break
            print c, e; k++
            if (e == n) break
        }
    }' "$1"
}

# cols CSV: "char_start char_end" of each row (text and mode hold no comma)
cols() { awk -F, 'NR > 1 { print $5, $6 }' "$1"; }

# ------------------------------------------------------------------ the texts
# plain English, a paragraph per line (written for this test)
cat >clean.txt <<'EOF'
The town council met on Tuesday evening to discuss the new bridge over the river. Most of the members agreed that the old one had served the town well for more than sixty years, but the engineers who inspected it last spring found cracks in two of its supports. The mayor said that the work would begin in the summer and should be finished before the first snow.
My grandmother kept a small garden behind her house, and every morning she walked out with a basket to see what had grown during the night. She grew beans, tomatoes and a few rows of potatoes, and she would not let anyone else pick them. When we visited her in August, she sent us home with more vegetables than we could possibly eat in a week.
The history of the railroad in this part of the country is closely tied to the growth of the cities along its line. Before the tracks were laid, farmers had to haul their grain by wagon to the nearest port, a journey that could take several days. Once the trains began to run, the price of moving goods fell sharply, and new towns appeared wherever the company built a station.
It was late when he finally reached the house. The lights were off, and for a moment he thought that everyone had gone to bed without waiting for him. Then he saw a lamp burning in the kitchen window, and he knew that his sister was still awake. He opened the door quietly, hung his coat on the hook and went in to tell her what had happened at the office.
Students who want to take the advanced course must first pass the examination given at the end of the second year. The examination covers the material of both earlier courses, and it is not unusual for a third of the class to fail it on the first attempt. Those who do not pass may take it again in the fall, after a summer of study with one of the teaching assistants.
EOF
# base64 of it; words of 2 to 9 random letters (a seeded awk)
base64 clean.txt | tr -d '\n' >b64.txt
echo >>b64.txt
awk 'BEGIN { srand(7); for (l = 0; l < 3; l++) { s = ""
    for (w = 0; w < 60; w++) { n = 2 + int(rand() * 8); x = ""
        for (i = 0; i < n; i++) x = x sprintf("%c", 97 + int(rand() * 26)); s = s (w ? " " : "") x }
    print s } }' >letters.txt
cat clean.txt b64.txt letters.txt >mixed.txt
pass "wrote the texts"

# ------------------------------------------------------------------ -h, exit statuses
run h "$B" drift -h
is "-h: exit 0" "$(rc h)" 0
check "-h: usage on stdout" grep -q '^usage: bitlens drift (TRACE | --text FILE | -)' h.out

run c "$B" drift --no-model --text clean.txt
is "clean English: exit 0" "$(rc c)" 0
check "clean English: the first line counts the spans and names the baseline" \
    grep -q '^drift: 14 spans of up to 128 characters in 1 texts; baseline reference English (Brown corpus' c.out
check "clean English: no span listed (nothing flagged)" sh -c "! grep -q '^clean.txt ' c.out"
check "clean English: a summary row of mode text, 0 flagged" grep -qE '^text +1 +14 +0 +0 ' c.out

run b "$B" drift --no-model --text b64.txt
is "base64 of it: exit 1" "$(rc b)" 1
check "base64: flagged spans listed with '*' and the features that moved" \
    grep -qE '^b64.txt +text +0 +0\.\.[0-9]+ +[0-9.]+ +[0-9.]+ \*' b.out
run l "$B" drift --no-model --text letters.txt
is "random letters: exit 1" "$(rc l)" 1
check "random letters: the dictionary or character model moved" grep -qE '(char_ce|dict_rate|word_ce) [-+]' l.out
run g sh -c "'$B' drift --text b64.txt -q || echo drifted"
is "a pipeline gate: '|| echo drifted' fires" "$(cat g.out | tail -n 1)" drifted

# ------------------------------------------------------------------ errors
mkdir adir
head -c 3000 /dev/urandom >rnd.bin
printf 'BLTR but not a trace\n' >fake.blt
for t in "frobnicate:--frobnicate" "text-missing:--text nosuch.txt" "trace-missing:nosuch.blt" \
    "text-dir:--text adir" "trace-dir:adir" "not-trace:rnd.bin" "not-trace2:fake.blt" \
    "window:--text clean.txt -w 4" "csvjson:--text clean.txt --csv --json" \
    "lines:nosuch.blt --lines" "tpp:--text clean.txt --tokens-per-pass 2" \
    "dict:--text clean.txt --dict nosuch.words" "two:clean.txt clean.txt" "none:" \
    "threshold:--text clean.txt -t x" "build:--build-reference r.gguf --train clean.txt"; do
    name=${t%%:*}
    # shellcheck disable=SC2086
    run e "$B" drift ${t#*:}
    is "error $name ('${t#*:}'): exit 2" "$(rc e)" 2
    check "error $name: a message on stderr, nothing on stdout" \
        sh -c "grep -q '^bitlens drift: ' e.err && test ! -s e.out"
    case $name in
    text-missing) check "error $name: names the file" grep -q 'nosuch.txt: No such file' e.err ;;
    trace-missing) check "error $name: names the file" grep -q 'nosuch.blt: No such file' e.err ;;
    text-dir | trace-dir) check "error $name: names the directory" grep -q 'adir: is a directory' e.err ;;
    not-trace) check "error $name: names the file and --text" grep -q 'rnd.bin: not a bitlens trace (for text give --text rnd.bin)' e.err ;;
    not-trace2) check "error $name: names the file" grep -q 'fake.blt: not a bitlens trace' e.err ;;
    frobnicate) check "error $name: names the option" grep -q "unknown option '--frobnicate'" e.err ;;
    dict) check "error $name: names the file" grep -q 'nosuch.words' e.err ;;
    esac
done
head -n 2 clean.txt >short.txt
run e "$B" drift --no-model --text clean.txt --baseline short.txt
is "a baseline of fewer than 20 spans: exit 2" "$(rc e)" 2
check "... naming it and saying how many spans it holds" grep -q 'short.txt: drift baseline: only [0-9]* spans of 128 characters in the text (20 needed)' e.err

# ------------------------------------------------------------------ --csv
H="text,mode,k,span,char_start,char_end,score,cusum,flagged,alarm"
F="model_bpc char_ce word_ce word_pmi dict_rate zlib_ratio nonprint_rate script_rate repeat_rate stopword_rate mean_word_len symbol_ratio alpha_words"
for f in $F; do H="$H,$f"; done
for f in $F; do H="$H,z_$f"; done
H="$H,span_text"
"$B" drift --no-model --text clean.txt --csv >clean.csv
is "--csv: the header names the 37 columns" "$(head -n 1 clean.csv)" "$H"
spans clean.txt 128 128 >want
cols clean.csv >got
is "--csv: a row per span, the spans the rules give (14)" "$(wc -l <got | tr -d ' ') $(cmp -s got want && echo same)" "14 same"
is "--csv: the last span ends at the text's end ($(wc -m <clean.txt | tr -d ' ') characters)" \
    "$(tail -n 1 got | cut -d' ' -f2)" "$(wc -m <clean.txt | tr -d ' ')"
is "--csv: spans in order, each a window of 128 but the last, none overlapping" "$(awk '
    { if ($2 - $1 != 128 && NR != n) bad++; if (NR > 1 && $1 < e) bad++; e = $2 } END { print bad + 0 }' n=14 got)" 0
is "--csv: the text and mode columns" "$(awk -F, 'NR > 1 { print $1, $2, $3 }' clean.csv | sort -u)" '"clean.txt" "text" 0'
is "--csv: model_bpc empty without a model, the other features present" \
    "$(awk -F, 'NR > 1 { e += $11 == ""; for (i = 12; i <= 23; i++) if (i != 15) f += $i == "" } END { print e, f + 0 }' clean.csv)" \
    "14 0"
run s sh -c "'$B' drift --no-model --csv -q - <clean.txt"
is "standard input ('-') with -q: exit 0, nothing on stderr" "$(rc s) $(wc -c <s.err | tr -d ' ')" "0 0"
is "--csv from standard input: the text is 'stdin'" "$(awk -F, 'NR > 1 { print $1 }' s.out | sort -u)" '"stdin"'
is "--csv from standard input: every other column as from the file" \
    "$(cut -d, -f2- s.out | cksum)" "$(cut -d, -f2- clean.csv | cksum)"

# span 2 of clean.txt, recomputed: its characters (the text is ASCII: bytes)
set -- $(awk -F, 'NR == 4 { print $5, $6 }' clean.csv)
S0=$1 S1=$2
tr '\n' ' ' <clean.txt | cut -c"$((S0 + 1))-$S1" >span2.txt
is "span 2: mean_word_len (awk: characters of the whitespace words over their number)" \
    "$(awk '{ for (i = 1; i <= NF; i++) c += length($i); n += NF } END { printf "%.6g\n", c / n }' span2.txt)" \
    "$(awk -F, 'NR == 4 { print $21 }' clean.csv)"
# the 45 function words of bitlens-drift(1)
SW="the be to of and that have with a an in is it for on was as at by he she i you we they his her not but or this are from had has were been which there their will would all so if"
is "span 2: stopword_rate (awk: stripped, lowercased words in the 45-word list)" \
    "$(awk -v sw="$SW" 'BEGIN { k = split(sw, a, " "); for (i = 1; i <= k; i++) s[a[i]] = 1 }
        { for (i = 1; i <= NF; i++) { w = tolower($i); gsub(/^[^a-z0-9]+|[^a-z0-9]+$/, "", w); h += (w in s); n++ } }
        END { printf "%.6g\n", h / n }' span2.txt)" \
    "$(awk -F, 'NR == 4 { print $20 }' clean.csv)"
is "span 2: repeat_rate 0, alpha_words 1, symbol_ratio 0, nonprint_rate 0" \
    "$(awk -F, 'NR == 4 { print $19, $23, $22, $17 }' clean.csv)" "0 1 0 0"
if [ -n "$PY" ]; then
    is "span 2: zlib_ratio (python3 zlib: raw deflate, level 9, memLevel 9)" \
        "$(python3 -c '
import sys, zlib
b = open("clean.txt", "rb").read()[int(sys.argv[1]):int(sys.argv[2])]
c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
print("%.6g" % (len(c.compress(b) + c.flush()) / len(b)))' "$S0" "$S1")" \
        "$(awk -F, 'NR == 4 { print $16 }' clean.csv)"
    is "--csv: span_text is the span's characters, newlines as spaces (python3 csv)" "$(python3 -c '
import csv
t = open("clean.txt").read()
bad = 0
for r in list(csv.reader(open("clean.csv")))[1:]:
    bad += r[36] != t[int(r[4]):int(r[5])].replace("\n", " ")
print(bad)')" 0
else
    skip "span 2: zlib_ratio (python3 zlib)" "python3 is not installed"
    skip "--csv: span_text is the span's characters" "python3 is not installed"
fi
if [ -r /usr/share/dict/words ]; then
    is "--csv: dict_rate near 1 on clean English with the system word list" \
        "$(awk -F, 'NR > 1 && $15 < 0.9 { bad++ } END { print bad + 0 }' clean.csv)" 0
    : >nowords.txt
    run d "$B" drift --no-model --text clean.txt --csv --dict nowords.txt
    is "--dict an empty list: dict_rate 0" "$(awk -F, 'NR > 1 { print $15 }' d.out | sort -u)" 0
else
    skip "--csv: dict_rate with the system word list" "no /usr/share/dict/words (Debian: wamerican)"
    skip "--dict an empty list" "no /usr/share/dict/words (Debian: wamerican)"
fi

# z, the score, the CUSUM and the flags against --json's baseline
"$B" drift --no-model --text mixed.txt --lines --csv >mixed.csv || true
"$B" drift --no-model --text mixed.txt --lines --json >mixed.json || true
mflag=$(awk -F, 'NR > 1 { f += $9 } END { print (f > 0) " " (NR - 1 - f > 0) }' mixed.csv)
is "mixed text by lines: both flagged and unflagged spans" "$mflag" "1 1"
is "--csv: the score is sqrt(sum of squared positive z) (to the z columns' 4 digits)" "$(awk -F, 'NR > 1 {
    s = 0; for (i = 24; i <= 36; i++) if ($i > 0) s += $i * $i; d = sqrt(s) - $7; if (d < 0) d = -d
    if (d > 2e-3 * $7 + 1e-3) bad++ } END { print bad + 0 }' mixed.csv)" 0
is "--csv: flagged = score above 5.5 or a CUSUM alarm" \
    "$(awk -F, 'NR > 1 && $9 != ($7 > 5.5 || $10) { bad++ } END { print bad + 0 }' mixed.csv)" 0
if [ -n "$PY" ]; then
    is "--json: texts, spans and summary; spans and flags as --csv's" "$(python3 -c '
import csv, json
d = json.load(open("mixed.json"))
rows = list(csv.reader(open("mixed.csv")))[1:]
sp = [s for t in d["texts"] for s in t["spans"]]
ok = sorted(d) == ["baseline", "cusum_h", "cusum_k", "summary", "texts", "threshold", "window"]
ok &= d["window"] == 128 and d["threshold"] == 5.5 and d["cusum_h"] == 5.5
ok &= len(sp) == len(rows) == sum(m["spans"] for m in d["summary"])
ok &= all(int(s["flagged"]) == int(r[8]) and abs(s["score"] - float(r[6])) <= 1e-5 * s["score"] + 1e-9
          for s, r in zip(sp, rows))
print(ok, len(d["texts"]))')" "True $(grep -c . mixed.txt)"
    # z = (v - median) / scale, turned: lower is worse for stopword_rate, higher
    # for char_ce (the baseline of --json is the window's: spans of 128)
    is "--json: z = (value - median) / scale, toward the bad side (char_ce, stopword_rate, zlib_ratio)" \
        "$(python3 -c '
import json
d = json.load(open("mixed.json")); b = d["baseline"]; bad = 0
for t in d["texts"]:
    for s in t["spans"]:
        if s["char_end"] - s["char_start"] != d["window"]:
            continue
        for f, sign in (("char_ce", 1), ("stopword_rate", -1), ("zlib_ratio", 0)):
            z = (s["features"][f] - b["median"][f]) / b["scale"][f]
            z = abs(z) if sign == 0 else sign * z
            bad += abs(z - s["z"][f]) > 1e-9 * (1 + abs(z))
print(bad)')" 0
    is "--json: the CUSUM s = max(0, s + score - k) along each text, the alarm s > h" "$(python3 -c '
import json
d = json.load(open("mixed.json")); k = d["cusum_k"]; h = d["cusum_h"]; bad = 0
for t in d["texts"]:
    c = 0
    for s in t["spans"]:
        c = max(0.0, c + s["score"] - k)
        bad += abs(c - s["cusum"]) > 1e-9 * (1 + c) or s["alarm"] != (c > h)
print(bad, k == d["baseline"]["score"]["p90"])')" "0 True"
else
    for c in "--json parses" "--json: z" "--json: the CUSUM"; do skip "$c" "python3 is not installed"; done
fi
"$B" drift --no-model --text mixed.txt --lines --csv --cusum-h 1e9 >noalarm.csv || true
is "--cusum-h 1e9: no alarm; flagged exactly where the score is above 5.5" \
    "$(awk -F, 'NR > 1 { a += $10; if ($9 != ($7 > 5.5)) bad++ } END { print a + 0, bad + 0 }' noalarm.csv)" "0 0"

# ------------------------------------------------------------------ --lines, --window, --stride
printf 'one two three four five six seven\n\n%s\n' "$(sed -n 2p clean.txt)" >three.txt
"$B" drift --no-model --text three.txt --lines --csv >three.csv || true
is "--lines: a text per non-empty line, numbered from 1" \
    "$(awk -F, 'NR > 1 { print $1 }' three.csv | uniq | tr '\n' ' ')" '"line 1" "line 3" '
is "--lines: the short line is one span of its 33 characters" "$(awk -F, 'NR == 2 { print $4, $5, $6 }' three.csv)" "0 0 33"
# words of 4 letters: word starts every 5 characters
awk 'BEGIN { for (i = 0; i < 300; i++) printf "%s%s", (i ? " " : ""), substr("wordfarmbooktreelakehill", 1 + 4 * (i % 6), 4); print "" }' >words.txt
for ws in "128 128" "40 40" "64 20" "100 35" "8 1"; do
    set -- $ws
    "$B" drift --no-model --text words.txt -w "$1" --stride "$2" --csv -q >ws.csv || true
    spans words.txt "$1" "$2" >want
    cols ws.csv >got
    is "-w $1 --stride $2: the $(wc -l <want | tr -d ' ') spans the rules give for 1500 characters" \
        "$(cmp -s got want && echo same)" same
done
# word starts every 5 characters and strides of 20: spans at 0, 20, ...,
# the first to reach the end (1500) at 1440
is "-w 64 --stride 20: overlapping spans, 73 of them" \
    "$("$B" drift --no-model --text words.txt -w 64 --stride 20 --csv -q | awk -F, 'NR > 1' | wc -l | tr -d ' ')" 73

# ------------------------------------------------------------------ odd input
: >empty.txt
run e "$B" drift --no-model --text empty.txt
is "empty input: exit 0" "$(rc e)" 0
check "empty input: a note that there is nothing to score" grep -q 'no text to score' e.err
check "empty input: the table says 0 spans" grep -q '^drift: 0 spans' e.out
run e sh -c "'$B' drift --csv - </dev/null"
is "empty standard input, --csv: exit 0, the header only" "$(rc e) $(wc -l <e.out | tr -d ' ')" "0 1"
awk 'BEGIN { for (i = 0; i < 256; i++) printf "%c", i }' >bytes.bin
printf '\000\001\002\377\376' >>bytes.bin
run e "$B" drift --no-model --text bytes.bin --csv
is "bytes 0..255: exit 1 or 0, rows written" "$(test "$(rc e)" -le 1 && echo ok) $(test "$(wc -l <e.out)" -ge 2 && echo rows)" "ok rows"
head -c 4096 /dev/urandom >urandom.bin
for fmt in "" --json; do
    # shellcheck disable=SC2086
    run e "$B" drift --no-model --text urandom.bin $fmt
    is "random bytes ${fmt:-table}: exit 1 (drift), no crash" "$(rc e)" 1
done
if [ -n "$PY" ]; then
    is "random bytes --json: valid JSON (invalid UTF-8 as U+FFFD)" \
        "$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(len(d["texts"]))' e.out 2>&1)" 1
else
    skip "random bytes --json: valid JSON" "python3 is not installed"
fi
printf 'The cat sat on the \300\257 mat and \355\240\200 then \377 went home to sleep in the warm \364\220\200\200 sun.\n' >invalid.txt
run e "$B" drift --no-model --text invalid.txt --csv
is "invalid UTF-8: runs (exit 0 or 1)" "$(test "$(rc e)" -le 1 && echo ok)" ok
is "invalid UTF-8: one span, nonprint_rate above 0" "$(awk -F, 'NR > 1 { print $4, ($17 > 0) }' e.out)" "0 1"
# without -m, the default model gives model_bpc, and the command says so
run dm "$B" drift --text clean.txt --csv
is "no -m: the default model: exit 0" "$(rc dm)" 0
check "no -m: says on stderr that it uses the default model, naming it" \
    grep -q "^bitlens drift: no -m: using the default model, $BITLENS_DATADIR/default-model.gguf" dm.err
is "no -m: model_bpc filled in every row" "$(awk -F, 'NR > 1 && $11 == "" { e++ } END { print e + 0 }' dm.out)" 0
run dq "$B" drift --text clean.txt --csv -q
is "no -m, -q: the same rows, nothing on stderr" "$(cmp -s dq.out dm.out && echo same) $(wc -c <dq.err | tr -d ' ')" "same 0"
run dn "$B" drift --text clean.txt --csv --no-model
is "--no-model: no model, no word of one" "$(awk -F, 'NR > 1 && $11 != "" { e++ } END { print e + 0 }' dn.out) $(grep -c 'default model' dn.err)" "0 0"
run dx env BITLENS_DATADIR="$PWD/nosuchdir" "$B" drift --text clean.txt
is "no -m, the default model missing: exit 2, naming where it looked and -m" \
    "$(rc dx) $(grep -c "no default model: $PWD/nosuchdir/default-model.gguf.*-m MODEL" dx.err)" "2 1"

# a 2 MB line of prose, and of base64 (no blanks: spans every 128 characters)
tr '\n' ' ' <clean.txt >one.txt
awk '{ for (i = 0; i < 1160; i++) printf "%s", $0; print "" }' one.txt >huge.txt
t0=$(date +%s)
run e "$B" drift --no-model --text huge.txt --csv -q
t1=$(date +%s)
is "a 2 MB line of prose: exit 0 or 1, a row per span" \
    "$(test "$(rc e)" -le 1 && echo ok) $(test "$(wc -l <e.out)" -gt 15000 && echo rows)" "ok rows"
check "a 2 MB line of prose: in a few seconds ($((t1 - t0)) s, at most 30)" test $((t1 - t0)) -le 30
awk 'BEGIN { srand(3); for (i = 0; i < 2000000; i++) printf "%c", 65 + int(rand() * 26); print "" }' >noblank.txt
run e "$B" drift --no-model --text noblank.txt --csv -q
N=$(wc -c <noblank.txt | tr -d ' ')
is "2 MB without a blank: a span every 128 characters, not one for the whole line" \
    "$(rc e) $(awk -F, 'NR > 1' e.out | wc -l | tr -d ' ')" "1 $(((N - 64) / 128 + 1))"

# ------------------------------------------------------------------ --build-reference
if [ -n "$TD" ]; then
    awk 'BEGIN { RS = "" } { gsub(/[ \t]*\n[ \t]*/, " "); print }' "$TD/text/pride_and_prejudice.txt" |
        awk 'length > 80' >pp.txt
    sed -n 100,300p pp.txt >train.txt
    sed -n 301,380p pp.txt >calib.txt
    run r "$B" drift --build-reference ref.gguf --train train.txt --calibration calib.txt --source 'Austen test'
    is "--build-reference from $(wc -c <train.txt | tr -d ' ') bytes: exit 0, nothing on stdout" \
        "$(rc r) $(wc -c <r.out | tr -d ' ')" "0 0"
    is "--build-reference: a GGUF file" "$(od -An -c -N4 ref.gguf | tr -d ' ')" GGUF
    run r "$B" drift --no-model --text clean.txt --reference ref.gguf --csv
    is "--reference: scores with it, a row per span" "$(test "$(rc r)" -le 1 && echo ok) $(awk -F, 'NR > 1' r.out | wc -l | tr -d ' ')" "ok 14"
    is "--reference: char_ce differs from the built-in tables' in every span" \
        "$(awk -F, 'NR == FNR { a[FNR] = $12; next } FNR > 1 && $12 != a[FNR] { d++ } END { print d + 0 }' clean.csv r.out)" 14
    "$B" drift --no-model --text clean.txt --reference ref.gguf --json >r.json || true
    check "--reference: the baseline is its calibration text, named by --source" \
        grep -q '"source":[[:space:]]*"reference English (Austen test)"' r.json
    head -c 5000 ref.gguf >trunc.gguf
    run r "$B" drift --no-model --text clean.txt --reference trunc.gguf
    is "a truncated reference: exit 2" "$(rc r)" 2
    check "a truncated reference: the message names it" grep -q 'trunc.gguf: .*past the end of the file' r.err
    run r "$B" drift --no-model --text clean.txt --reference clean.txt
    is "a reference that is not GGUF: exit 2 naming it" "$(rc r) $(grep -c 'clean.txt: not a GGUF file' r.err)" "2 1"
    head -n 3 calib.txt >calib3.txt
    "$B" drift --build-reference small.gguf --train train.txt --calibration calib3.txt -q
    run r "$B" drift --no-model --text clean.txt --reference small.gguf
    is "a reference whose calibration text holds fewer than 20 spans: exit 2" "$(rc r)" 2
else
    skip "--build-reference" "test data not found under BL_TESTDATA='$BL_TESTDATA'"
fi

# ------------------------------------------------------------------ traces
if [ -n "$TD" ]; then
    M=$TD/models/stories260K.bin
    Z=$TD/models/tok512.bin
    printf 'Once upon a time\nThe little dog\nLily and Tom went\n' >prompts.txt
    awk 'BEGIN { RS = "" } NR > 20 && NR <= 30 { n = split($0, w, /[ \t\n]+/); s = ""
        for (i = 1; i <= 8 && i <= n; i++) s = s (i > 1 ? " " : "") w[i]; print s }' \
        "$TD/text/tinystories_train_head.txt" >base-prompts.txt
    "$B" record -q -m "$M" -z "$Z" -f prompts.txt -n 48 -t 0 -o v.blt
    "$B" record -q -m "$M" -z "$Z" -f base-prompts.txt -n 160 -t 0 --hooks none -o base.blt
    "$B" train --drafter medusa -m "$M" -z "$Z" --corpus "$TD/text/tinystories_train_head.txt" --heads 3 \
        --prompts 30 --gen 16 --steps 200 --threads 1 -q -o medusa.gguf
    "$B" record -q -m "$M" -z "$Z" -f prompts.txt -n 48 -t 0 --drafter medusa.gguf -o d.blt
    pass "recorded stories260K greedy, with and without a drafter; trained a drafter"

    run v "$B" drift v.blt --csv --baseline base.blt --threads 1
    is "a trace: exit 0 or 1" "$(test "$(rc v)" -le 1 && echo ok)" ok
    is "a trace: verify rows for prompts 0, 1, 2, k 1" \
        "$(awk -F, 'NR > 1 { print $1, $2, $3 }' v.out | sort -u | tr '\n' ' ')" \
        '"prompt 0" "verify" 1 "prompt 1" "verify" 1 "prompt 2" "verify" 1 '
    is "a trace: model_bpc under the model it names" \
        "$(awk -F, 'NR > 1 && $11 == "" { e++ } END { print e + 0 }' v.out)" 0
    "$B" generate -q -m "$M" -z "$Z" -p 'Once upon a time' -n 48 -t 0 >gen.txt
    if [ -n "$PY" ]; then
        is "a trace: prompt 0's verify text is what 'bitlens generate' writes after the prompt" "$(python3 -c '
import csv
g = open("gen.txt").read()[len("Once upon a time"):].replace("\n", " ")
r = [r for r in list(csv.reader(open("v.out")))[1:] if r[0] == "prompt 0"][0]
print(g[int(r[4]):int(r[5])] == r[36])')" True
    else
        skip "a trace: prompt 0's verify text" "python3 is not installed"
    fi
    run n "$B" drift v.blt --csv --no-model
    is "--no-model: model_bpc empty" "$(awk -F, 'NR > 1 { print ($11 == "") }' n.out | sort -u)" 1

    run d "$B" drift d.blt --csv --no-model
    is "a drafter's trace (3 heads): verify and fast k=2, 3, 4, three texts each" \
        "$(awk -F, 'NR > 1 { print $1 "/" $2 "/" $3 }' d.out | sort -u | awk -F/ '{ n[$2 " " $3]++ } END { for (m in n) print m, n[m] }' | sort | tr '\n' ';')" \
        '"fast k=2" 2 3;"fast k=3" 3 3;"fast k=4" 4 3;"verify" 1 3;'
    is "--no-model with drafts: the model spells them, model_bpc stays empty" \
        "$(awk -F, 'NR > 1 { print ($11 == "") }' d.out | sort -u)" 1
    is "a drafter's trace: its verify rows are those of the trace without a drafter" \
        "$(grep '"verify"' d.out | cksum)" "$(grep '"verify"' n.out | cksum)"
    check "a drafter's trace: fast-mode text differs from verify text" \
        test "$(grep '"fast k=2"' d.out | head -n 1 | sed 's/.*,"//')" != "$(grep '"verify"' d.out | head -n 1 | sed 's/.*,"//')"
    run d2 "$B" drift d.blt --csv --no-model --tokens-per-pass 2
    is "--tokens-per-pass 2: verify and fast k=2 only" \
        "$(awk -F, 'NR > 1 { print $2 }' d2.out | sort -u | tr '\n' ' ')" '"fast k=2" "verify" '
    is "--tokens-per-pass 2: the same fast k=2 rows" "$(grep '"fast k=2"' d2.out | cksum)" "$(grep '"fast k=2"' d.out | cksum)"
    run e "$B" drift d.blt --no-model --tokens-per-pass 5
    is "--tokens-per-pass 5 with 3 heads: exit 2" "$(rc e) $(grep -c 'the drafter has 3 heads, so at most 4' e.err)" "2 1"
    run e "$B" drift v.blt --tokens-per-pass 2
    is "--tokens-per-pass on a trace without a drafter: exit 2" "$(rc e) $(grep -c 'recorded without a drafter' e.err)" "2 1"
    run e "$B" drift v.blt -m "$TD/models/aidreams260K.bin" -z "$TD/models/aidreams_tok512.bin"
    is "-m a model that is not the trace's: exit 2 naming it" "$(rc e) $(grep -c 'aidreams260K.bin: sha256' e.err)" "2 1"

    run bl "$B" drift d.blt --baseline base.blt --json --threads 1
    is "--baseline a trace (with the model): exit 0 or 1" "$(test "$(rc bl)" -le 1 && echo ok)" ok
    if [ -n "$PY" ]; then
        is "--baseline a trace: the baseline is named, its spans counted, model_bpc measured" "$(python3 -c '
import json
d = json.load(open("bl.out")); b = d["baseline"]
print(b["source"], b["spans"] >= 20, "model_bpc" in b["median"], sorted({t["mode"] for t in d["texts"]}))')" \
            "base.blt True True ['fast k=2', 'fast k=3', 'fast k=4', 'verify']"
    else
        skip "--baseline a trace" "python3 is not installed"
    fi
    run e "$B" drift v.blt --baseline v.blt --no-model
    is "--baseline a trace of 3 short texts: fewer than 20 spans, exit 2" "$(rc e)" 2
else
    skip_reason="test data not found under BL_TESTDATA='$BL_TESTDATA'"
    skip "traces: verify and fast-mode rows, --tokens-per-pass, --baseline, --no-model" "$skip_reason"
fi

# ------------------------------------------------------------------ plot --chart drift
run p "$B" plot mixed.csv --chart drift --script pc
is "plot --chart drift from a CSV: exit 0" "$(rc p)" 0
is "plot: DIR holds drift.dat and drift.gp" "$(cd pc && ls | tr '\n' ' ')" "drift.dat drift.gp "
is "plot: the script reads drift.dat, draws the threshold 5.5" \
    "$(grep -o "'drift.dat'" pc/drift.gp | sort -u) $(grep -c '^threshold = 5.5$' pc/drift.gp)" "'drift.dat' 1"
is "plot: a data row per span, with the CSV's scores and flags" \
    "$(awk 'NR > 1 && NF { print $9, $11, $12 }' pc/drift.dat | cksum)" \
    "$(awk -F, 'NR > 1 { print $7, $9, $10 }' mixed.csv | cksum)"
is "plot: every data row has the 12 columns its header names" \
    "$(awk 'NR == 1 { n = NF - 1; next } NF && NF != n { bad++ } END { print n, bad + 0 }' pc/drift.dat)" "12 0"
check "plot: the title names the CSV and counts texts, spans and flagged spans" \
    grep -q "^set title 'English drift: the score of each span'.*'mixed.csv: $(grep -c . mixed.txt) texts, [0-9]* spans, [0-9]* flagged'" pc/drift.gp
"$B" plot --text mixed.txt --chart drift --script pt -q
"$B" drift --text mixed.txt --csv >mixed1.csv || true
is "plot --text FILE: the spans of 'bitlens drift --text FILE'" \
    "$(awk 'NR > 1 && NF { print $7, $8, $9 }' pt/drift.dat | cksum)" \
    "$(awk -F, 'NR > 1 { print $5, $6, $7 }' mixed1.csv | cksum)"
"$B" plot --text mixed.txt --chart drift -w 64 -t 9 --script pw -q
is "plot -w 64 -t 9: passed to the drift command; the threshold drawn at 9" \
    "$(awk 'NR == 2 { print $8 - $7 }' pw/drift.dat) $(grep -c '^threshold = 9$' pw/drift.gp)" "64 1"
run p sh -c "'$B' drift --no-model --text mixed.txt --lines --csv | '$B' plot - --chart drift --script ps"
is "plot - (a CSV on standard input): exit 0, the same data" "$(rc p) $(cmp -s ps/drift.dat pc/drift.dat && echo same)" "0 same"
run p "$B" plot mixed.csv --chart drift -t 1 --script pth
check "plot a CSV with another -t: a warning that the flags disagree" grep -q 'flagged otherwise than a threshold of 1 says' p.err
run p sh -c "'$B' plot - --chart drift --script px <clean.txt"
is "plot - with text on standard input: exit 2, pointing at --text -" "$(rc p) $(grep -c 'give --text -' p.err)" "2 1"
run p "$B" plot --chart drift --script px
is "plot --chart drift without input: exit 2" "$(rc p)" 2
run p "$B" plot mixed.csv clean.csv --chart drift --script px
is "plot --chart drift with two inputs: exit 2" "$(rc p)" 2
run p "$B" plot --text empty.txt --chart drift --script px
is "plot --chart drift of an empty text: exit 2, no span to plot" "$(rc p) $(grep -c 'no span to plot' p.err)" "2 1"
run p "$B" plot mixed.csv --chart entropy -w 64 --script px
is "plot: -w with another chart: exit 2" "$(rc p)" 2
check "plot: failures leave no --script directory" test ! -e px
if [ -n "$TD" ]; then
    run p "$B" plot d.blt --chart drift --baseline base.blt --threads 1 --script ptr
    is "plot a drafter's trace: exit 0, a block per mode" \
        "$(rc p) $(awk 'NR > 1 && NF { print $2 }' ptr/drift.dat | uniq | tr '\n' ' ')" "0 verify fast_k=2 fast_k=3 fast_k=4 "
    check "plot a trace: the title names the trace and the baseline" \
        grep -q "'trace d.blt: 12 texts, 12 spans, [0-9]* flagged; baseline base.blt'" ptr/drift.gp
else
    skip "plot a drafter's trace" "test data not found under BL_TESTDATA='$BL_TESTDATA'"
fi
PNGSIG=89504e470d0a1a0a
if [ -n "$GP" ]; then
    run p "$B" plot mixed.csv --chart drift -o drift.png
    is "plot --chart drift: a PNG" "$(rc p) $(od -An -tx1 -N8 drift.png | tr -d ' \n')" "0 $PNGSIG"
    check "plot: the summary names drift.png" grep -q '^bitlens plot: drift.png: the drift chart of mixed.csv' p.err
    for d in pc ptr; do
        [ -d "$d" ] || continue
        (cd "$d" && gnuplot drift.gp) >gp.out 2>gp.err || true
        is "cd $d && gnuplot drift.gp: a PNG, silently" \
            "$(od -An -tx1 -N8 "$d/drift.png" | tr -d ' \n') $(wc -c <gp.err | tr -d ' ')" "$PNGSIG 0"
    done
else
    skip "plot --chart drift: a PNG" "gnuplot is not installed (Debian: gnuplot-nox)"
fi

done_testing
