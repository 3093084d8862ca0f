#!/bin/sh
# tests/cli-demo.sh: `bitlens demo` (TAP).
#
# The demo is checked against what it says it did, and against the
# commands themselves run here:
#   - a full run on the default model (-n 48): exit 0; README.txt lists
#     exactly the files in DIR, each there and not empty; the command lines
#     printed are the 13 steps bitlens-demo(1) describes, and the record
#     lines are the command the traces' headers hold; `bitlens info` finds
#     20 prompts (those of prompts.txt), the default model's path and
#     SHA-256 (sha256sum) and the default drafter in trace.blt, 40 greedy
#     prompts of 128 tokens in baseline.blt; the verdict table is drift.json's
#     summary (python3) and the verdict sentence follows from it as the page
#     says; drift.txt is `bitlens drift trace.blt --baseline baseline.blt -q`
#     run here; with gnuplot, six PNG images;
#   - a run with three prompts of this test (--prompts) and a PATH holding
#     only ls, sed and expr (for a libtool wrapper): it needs no other
#     program; prompts.txt is the file,
#     the trace holds those 3 prompts, charts/ holds CHART.gp scripts (and
#     with gnuplot each draws its PNG); the printed command lines, run again
#     by sh as printed, write byte for byte the demo's files (the traces up
#     to their creation time);
#   - a rerun into that DIR with -q: accepted, no step banners or command
#     lines, the report, the verdict and "everything is in", nothing on
#     stderr;
#   - with the test data, stories260K -m with no drafter, into a DIR holding
#     a space: no drafter channel in the report, a verify row only and the
#     no-fast-mode verdict; --threads reaches the steps;
#   - errors exit 2 with a message: usage mistakes, a DIR not the demo's
#     (left untouched), a DIR that is a file, no default model, a step that
#     fails (not a model; a drafter for another model) stopping the demo
#     with "'bitlens record' failed" and leaving a DIR that can be rerun.
#   - a DIR holding a space: the printed lines, its '> FILE' included, run
#     as printed.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BITLENS_DATADIR, the directory holding default-model.gguf and
# default-drafter.gguf (the source tree's lib/); BL_TESTDATA, the shared
# test data (without it the stories260K runs are skipped).  python3 and
# gnuplot are optional: the checks that need them are skipped with a reason.
# About 60 s on 2 cores, most of it the full run's report and charts.

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
: "${BL_TESTDATA:=}"
: "${BITLENS_DATADIR:=$BL_SRCDIR/lib}"
export BITLENS_DATADIR
# make check runs tests side by side: OpenMP threads that spin while they
# wait, on cores another test holds, slow the model's forward passes (drift
# runs the model on every text) ten- to twentyfold; waiting passively costs
# nothing here.
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY

if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
B=$BL_BIN
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
MODEL=$BITLENS_DATADIR/default-model.gguf
DRAFTER=$BITLENS_DATADIR/default-drafter.gguf
[ -r "$MODEL" ] && [ -r "$DRAFTER" ] ||
    skip_all "no default model and drafter in BITLENS_DATADIR='$BITLENS_DATADIR'"
PY=
if command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null; then
    PY=python3
fi
GP=$(command -v gnuplot 2>/dev/null || true)
SH=$(command -v sh)
TD=
if [ -n "$BL_TESTDATA" ] && [ -r "$BL_TESTDATA/models/stories260K.bin" ] &&
    [ -r "$BL_TESTDATA/models/tok512.bin" ]; then
    TD=$BL_TESTDATA/models
fi
cd "$tmp"

# ------------------------------------------------------------------ helpers
# same FILE1 FILE2: equal, else the difference as diagnostics
same() {
    if cmp -s "$1" "$2"; then
        return 0
    fi
    diff "$1" "$2" | head -n 20 | diag || true
    return 1
}

# listed DIR: the files README.txt lists (a name before its description,
# "a, b" for two; directories end in '/'), one a line
listed() {
    awk 'NR > 1 && /^[a-z]/ && $1 != "model" && $1 != "drafter" {
        if ($1 ~ /,$/) { sub(/,$/, "", $1); print $1; print $2 } else print $1 }' "$1/README.txt"
}

# readme_ok DIR: every file README.txt lists is there and not empty (a
# directory: holds files, none empty), and every file in DIR but README.txt
# is listed
readme_ok() {
    _bad=0
    listed "$1" >"$tmp/listed"
    [ -s "$tmp/listed" ] || { echo "# README.txt lists no file"; _bad=1; }
    while read -r _f; do
        case $_f in
        */)
            if [ ! -d "$1/$_f" ] || [ -z "$(ls "$1/$_f")" ]; then
                echo "# $_f: not a directory holding files"
                _bad=1
            elif [ -n "$(find "$1/$_f" -type f -empty)" ]; then
                echo "# $_f: holds empty files"
                _bad=1
            fi
            ;;
        *) [ -s "$1/$_f" ] || { echo "# $_f: missing or empty"; _bad=1; } ;;
        esac
    done <"$tmp/listed"
    for _f in $(cd "$1" && ls); do
        [ "$_f" = README.txt ] && continue
        [ -d "$1/$_f" ] && _f=$_f/
        grep -qxF "$_f" "$tmp/listed" || { echo "# $_f: in DIR, not in README.txt"; _bad=1; }
    done
    return $_bad
}

# commands OUT: the command lines a demo printed, without the "    $ "
commands() { sed -n 's/^    \$ //p' "$1"; }

# magic FILE N: the first N bytes in hex
magic() { od -An -tx1 -N"$2" "$1" | tr -d ' \n'; }

# infoj TRACE EXPR: a Python expression over `bitlens info --json TRACE` (j)
infoj() {
    "$B" info --json "$1" >"$tmp/info.json"
    "$PY" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$tmp/info.json" "$2"
}

# verdict OUT JSON: "ok", or what differs between the verdict a demo printed
# on OUT and the one bitlens-demo(1) says follows from drift.json: a row per
# mode of its summary (mode, texts, texts_flagged, mean_score to 2
# decimals), the threshold, and the sentence from the share of texts
# flagged in verify mode and in each "fast k=K" mode
cat >verdict.py <<'EOF'
import json, re, sys
out = open(sys.argv[1]).read().split('\n')
d = json.load(open(sys.argv[2]))
head = [i for i, l in enumerate(out) if re.match(r'^  mode +texts +texts flagged +mean score', l)]
if len(head) != 1:
    sys.exit('%d verdict tables on stdout' % len(head))
i = head[0]
m = re.search(r'\(threshold (\S+)\)', out[i])
problems = []
if not m or float(m.group(1)) != d['threshold']:
    problems.append('threshold %s, drift.json %s' % (m and m.group(1), d['threshold']))
rows = []
for l in out[i + 1:]:
    if not l.strip():
        break
    rows.append(l.split())
want = [s['mode'].split() + [str(s['texts']), str(s['texts_flagged']), '%.2f' % s['mean_score']]
        for s in d['summary']]
for k in range(max(len(rows), len(want))):
    g = rows[k] if k < len(rows) else None
    w = want[k] if k < len(want) else None
    if g is None or w is None or g[:-1] != w[:-1] or abs(float(g[-1]) - float(w[-1])) > 0.0051:
        problems.append('row %d: %s, want %s' % (k, g, w))
text = []
for l in out[i + 1 + len(rows) + 1:]:
    if not l.strip():
        break
    text.append(l.strip())
got = ' '.join(' '.join(text).split())
share = lambda s: s['texts_flagged'] / s['texts'] if s['texts'] else 0
ver = [s for s in d['summary'] if s['mode'] == 'verify']
fast = [(int(s['mode'][7:]), share(s)) for s in d['summary'] if s['mode'].startswith('fast k=')]
if not ver:
    exp = 'verdict: no verify-mode text to judge.'
else:
    v = ver[0]
    vs = share(v)
    if fast and max(f[1] for f in fast) > vs:
        lo = min(fast, key=lambda f: f[1])       # the first of equal shares
        hi = max(fast, key=lambda f: f[1])
        exp = ("verdict: the drafter's unchecked drafts drift away from English. Fast mode is "
               "flagged on %.0f%% (k=%d) to %.0f%% (k=%d) of the texts, the model's own text in verify "
               "mode on %.0f%% (%d of %d). drift.txt shows each flagged span and what moved."
               % (100 * lo[1], lo[0], 100 * hi[1], hi[0], 100 * vs, v['texts_flagged'], v['texts']))
    elif fast:
        exp = ("verdict: the drafter's drafts are flagged no more often than the model's own "
               "text (%d of %d texts in verify mode)." % (v['texts_flagged'], v['texts']))
    else:
        exp = ("verdict: %d of the model's %d texts flagged against its own baseline; with no "
               "drafter there is no fast mode to compare." % (v['texts_flagged'], v['texts']))
if got != exp:
    problems.append('sentence: %r, want %r' % (got, exp))
print('; '.join(problems) if problems else 'ok')
EOF

# ------------------------------------------------------------------ usage
run h "$B" demo -h
is "-h: exit 0" "$(rc h)" 0
check "-h: usage on stdout" grep -q '^usage: bitlens demo \[-o DIR\]' h.out
for t in "unknown:--frobnicate" "n0:-n 0" "n4097:-n 4097" "nx:-n 12x" "threads0:--threads 0" \
    "extra:-o u extra" "empty-o:-o ''" "missing-arg:-o" "z-without-m:-z tok.bin"; do
    name=${t%%:*}
    eval "set -- ${t#*:}"
    run e "$B" demo "$@"
    is "usage error $name ('${t#*:}'): exit 2" "$(rc e)" 2
    check "usage error $name: a message and a pointer to -h, nothing on stdout" \
        sh -c "grep -q '^bitlens demo: ' e.err && grep -q \"see 'bitlens demo -h'\" e.err && test ! -s e.out"
done
check "usage errors: no DIR made (not the default bitlens-demo, not 'u')" \
    sh -c '! test -e bitlens-demo && ! test -e u'
run e "$B" demo -o nosuch --prompts nosuch.txt
is "--prompts of a missing file: exit 2" "$(rc e)" 2
check "... naming it, before DIR is made" sh -c "grep -q 'nosuch.txt: No such file' e.err && ! test -e nosuch"

# ------------------------------------------------------------------ no default model
run e env BITLENS_DATADIR="$tmp/nowhere" "$B" demo -o nodefault -n 1
is "BITLENS_DATADIR pointing nowhere: exit 2" "$(rc e)" 2
check "... 'no default model', naming BITLENS_DATADIR" \
    grep -q "^bitlens demo: no default model: .*BITLENS_DATADIR is set to '$tmp/nowhere'" e.err
check "... and no DIR made" test ! -e nodefault
mkdir -p onlymodel
ln -s "$BITLENS_DATADIR/default-model.gguf" onlymodel/default-model.gguf
run e env BITLENS_DATADIR="$tmp/onlymodel" "$B" demo -o nodrafter -n 1 -q
is "the default model without its drafter: exit 2" "$(rc e)" 2
check "... 'no default drafter', naming the file and --drafter" \
    grep -q "^bitlens demo: no default drafter: $tmp/onlymodel/default-drafter.gguf: .*--drafter DRAFTER" e.err

# ------------------------------------------------------------------ DIR refused
mkdir notmine
printf 'my notes\n' >notmine/README.txt
cp notmine/README.txt want.readme
run e "$B" demo -o notmine --no-charts -n 1
is "a non-empty DIR whose README.txt is not the demo's: exit 2" "$(rc e)" 2
check "... the message names DIR and says why" \
    grep -q "^bitlens demo: notmine: exists, is not empty and was not written by bitlens demo" e.err
check "... README.txt untouched, nothing added" \
    sh -c 'cmp -s notmine/README.txt want.readme && test "$(ls notmine)" = README.txt'
mkdir other
printf 'x\n' >other/data.csv
run e "$B" demo -o other --no-charts -n 1
is "a non-empty DIR without README.txt: exit 2" "$(rc e)" 2
check "... naming DIR; its file untouched, nothing added" \
    sh -c "grep -q '^bitlens demo: other: exists, is not empty' e.err && test \"\$(ls other)\" = data.csv && test \"\$(cat other/data.csv)\" = x"
printf 'a file\n' >afile
run e "$B" demo -o afile --no-charts -n 1
is "DIR a regular file: exit 2" "$(rc e)" 2
check "... naming it; the file untouched" \
    sh -c "grep -q '^bitlens demo: afile: exists and is not a directory' e.err && test \"\$(cat afile)\" = 'a file'"

# ------------------------------------------------------------------ a step fails
printf 'not a model\n' >notmodel.gguf
run f "$B" demo -o failed -m notmodel.gguf --no-charts -n 4
is "-m a file that is not a model: exit 2" "$(rc f)" 2
check "... record's own message naming the file, then \"'bitlens record' failed\"" \
    sh -c "grep -q '^bitlens record: notmodel.gguf: ' f.err && grep -q \"^bitlens demo: 'bitlens record' failed\" f.err"
is "... the failing command is the last line printed" "$(tail -n 1 f.out)" \
    "    \$ bitlens record -m notmodel.gguf -f failed/baseline-prompts.txt -n 128 -t 0 --hooks none --no-lens -o failed/baseline.blt --force"
check "... and DIR is marked as the demo's, so it can be run again" grep -q '^bitlens demo' failed/README.txt
check "... nothing recorded" sh -c '! test -e failed/baseline.blt && ! test -e failed/trace.blt'

# ------------------------------------------------------------------ the full run
run full "$B" demo -o "$tmp/d" -n 48
is "full run (-n 48): exit 0" "$(rc full)" 0
if [ "$(rc full)" != 0 ]; then
    diag <full.err
fi
D=$tmp/d
check "full run: README.txt starts with the marker 'bitlens demo'" grep -q '^bitlens demo: written by' "$D/README.txt"
check "full run: README.txt names the model and the drafter" \
    sh -c "grep -qxF 'model    $MODEL' '$D/README.txt' && grep -qxF 'drafter  $DRAFTER' '$D/README.txt'"
listed "$D" | sort | tr '\n' ' ' >full.listed
is "full run: README.txt lists the files of bitlens-demo(1)" "$(cat full.listed)" \
    "baseline-prompts.txt baseline.blt charts/ drift.csv drift.json drift.txt npy/ prompts.txt report.txt trace.blt "
check "full run: every file README.txt lists is there and not empty, and no other" readme_ok "$D"
check "full run: stderr says the default model is used, naming it" \
    grep -qF "bitlens demo: no -m: using the default model, $MODEL (" full.err
is "full run: the step banners 1 to 7, in order" "$(sed -n 's/^==> \([0-9]\)\. .*/\1/p' full.out | tr -d '\n')" 1234567
check "full run: 'everything is in DIR/'" grep -q "^==> done in [0-9]* s: everything is in $D/ " full.out

# the command lines: DIR's paths print bare when they need no quoting
case $D in
*[!A-Za-z0-9_./=,:+@%-]*) plain= ;;
*) plain=1 ;;
esac
{
    echo "record -m $MODEL -f $D/baseline-prompts.txt -n 128 -t 0 --hooks none --no-lens -o $D/baseline.blt --force"
    echo "record -m $MODEL --drafter $DRAFTER -f $D/prompts.txt -n 48 -t 0 -o $D/trace.blt --force"
    echo "report $D/trace.blt -q > $D/report.txt"
    echo "drift $D/trace.blt --baseline $D/baseline.blt -q > $D/drift.txt"
    echo "drift $D/trace.blt --baseline $D/baseline.blt -q --csv > $D/drift.csv"
    echo "drift $D/trace.blt --baseline $D/baseline.blt -q --json > $D/drift.json"
    for c in entropy bits spectrum lens probe; do
        echo "plot $D/trace.blt --chart $c -o $D/charts/$c.png --force -q"
    done
    echo "plot $D/drift.csv --chart drift -o $D/charts/drift.png --force -q"
    echo "export $D/trace.blt --format npy -o $D/npy --force -q"
} | sed 's/^/bitlens /' >want.commands
if [ -z "$GP" ]; then
    sed -i 's| -o \([^ ]*\)/charts/[a-z]*\.png | --script \1/charts |' want.commands
fi
commands full.out >full.commands
if [ -n "$plain" ]; then
    check "full run: the 13 command lines printed, one per step as bitlens-demo(1) lists them" \
        same want.commands full.commands
else
    skip "full run: the 13 command lines printed" "'$tmp' needs quoting"
fi
is "full run: trace.blt's header holds the command printed for it" \
    "$("$B" info "$D/trace.blt" | sed -n 's/^command: *//p')" "$(sed -n 2p full.commands)"
is "full run: baseline.blt's header holds the command printed for it" \
    "$("$B" info "$D/baseline.blt" | sed -n 's/^command: *//p')" "$(sed -n 1p full.commands)"

# the traces
"$B" info "$D/trace.blt" >full.info
"$B" info "$D/baseline.blt" >base.info
sha=$(sha256sum "$MODEL" | cut -d' ' -f1)
is "trace.blt: 20 prompts" "$(sed -n 's/^prompts: *//p' full.info)" 20
is "trace.blt: the default model's path" "$(sed -n 's/^model: *//p' full.info)" "$MODEL"
is "trace.blt: its SHA-256 (sha256sum)" "$(sed -n 's/^sha256: *\([0-9a-f]*\) .*/\1/p' full.info)" "$sha"
is "trace.blt: greedy, 48 tokens after each prompt" \
    "$(sed -n 's/^sampling: *temperature \([0-9.]*\),.*/\1/p; s/^generated: *//p' full.info | tr '\n' '|')" \
    "0|48 tokens after each prompt|"
is "baseline.blt: 40 prompts, the same model" \
    "$(sed -n 's/^prompts: *//p; s/^sha256: *\([0-9a-f]*\) .*/\1/p' base.info | tr '\n' ' ')" "$sha 40 "
is "baseline.blt: greedy, 128 tokens after each prompt, no hook point, no lens" \
    "$(sed -n 's/^sampling: *temperature \([0-9.]*\),.*/\1/p; s/^generated: *//p; s/^recorded: *//p' base.info | tr '\n' '|')" \
    "0|128 tokens after each prompt|0 hook points as f16; logit lens not taken|"
is "prompts.txt: 20 lines; baseline-prompts.txt: 40" \
    "$(wc -l <"$D/prompts.txt" | tr -d ' ') $(wc -l <"$D/baseline-prompts.txt" | tr -d ' ')" "20 40"
if [ -n "$PY" ]; then
    dsha=$(sha256sum "$DRAFTER" | cut -d' ' -f1)
    is "trace.blt: recorded with the default drafter (path, SHA-256, 4 Medusa heads)" \
        "$(infoj "$D/trace.blt" '"%s %s %s %d" % (j["recorded"]["drafter"]["path"], j["recorded"]["drafter"]["sha256"], j["recorded"]["drafter"]["kind"], j["recorded"]["drafter"]["n_heads"])')" \
        "$DRAFTER $dsha medusa 4"
    is "trace.blt: its prompts are the lines of prompts.txt" \
        "$(infoj "$D/trace.blt" '"\n".join(p["text"] for p in j["prompts"])')" "$(cat "$D/prompts.txt")"
    is "baseline.blt: its prompts are the lines of baseline-prompts.txt" \
        "$(infoj "$D/baseline.blt" '"\n".join(p["text"] for p in j["prompts"])')" "$(cat "$D/baseline-prompts.txt")"
    is "baseline.blt: no drafter" "$(infoj "$D/baseline.blt" 'j["recorded"].get("drafter")')" None
else
    skip "trace.blt: recorded with the default drafter" "python3 is not installed"
    skip "trace.blt: its prompts are the lines of prompts.txt" "python3 is not installed"
    skip "baseline.blt: its prompts are the lines of baseline-prompts.txt" "python3 is not installed"
    skip "baseline.blt: no drafter" "python3 is not installed"
fi
is "the demo's prompts and the baseline's share no line" \
    "$(sort "$D/prompts.txt" "$D/baseline-prompts.txt" | uniq -d | wc -l | tr -d ' ')" 0

# report, drift, the verdict
check "report.txt: the drafter channel" grep -q '^drafter channel: medusa, 4 heads' "$D/report.txt"
is "stdout: report.txt, shown whole (its lines not on stdout)" "$(grep -vxF -f full.out "$D/report.txt" || true)" ""
set +e
"$B" drift "$D/trace.blt" --baseline "$D/baseline.blt" -q >drift.mine 2>drift.mine.err
set -e
check "drift.txt is 'bitlens drift trace.blt --baseline baseline.blt -q' run here" same drift.mine "$D/drift.txt"
if [ -n "$PY" ]; then
    is "the verdict printed: drift.json's summary, and the sentence it gives" \
        "$("$PY" verdict.py full.out "$D/drift.json" 2>&1)" ok
    is "the verdict: verify and fast k=2..5 rows of 20 texts" \
        "$("$PY" -c 'import json, sys; print(" ".join("%s:%d" % (s["mode"], s["texts"]) for s in json.load(open(sys.argv[1]))["summary"]))' "$D/drift.json")" \
        "verify:20 fast k=2:20 fast k=3:20 fast k=4:20 fast k=5:20"
else
    skip "the verdict printed: drift.json's summary" "python3 is not installed"
    skip "the verdict: verify and fast rows" "python3 is not installed"
fi
check "drift.csv: a header and rows" sh -c "head -n 1 '$D/drift.csv' | grep -q '^text,mode,k,span,' && test \$(wc -l <'$D/drift.csv') -gt 1"

# charts and arrays
if [ -n "$GP" ]; then
    bad=
    for c in entropy bits spectrum lens probe drift; do
        [ "$(magic "$D/charts/$c.png" 8)" = 89504e470d0a1a0a ] || bad="$bad $c"
    done
    is "charts (gnuplot in PATH): the six PNG images, each a PNG" "$bad" ""
    is "charts: nothing else in charts/" "$(ls "$D/charts" | tr '\n' ' ')" \
        "bits.png drift.png entropy.png lens.png probe.png spectrum.png "
else
    skip "charts: the six PNG images" "gnuplot is not installed"
    skip "charts: nothing else in charts/" "gnuplot is not installed"
fi
is "npy/: one .npy per hook point of the trace (8), and index.csv" \
    "$(ls "$D/npy" | tr '\n' ' ')" \
    "blocks.0.hook_resid_post.npy blocks.1.hook_resid_post.npy blocks.2.hook_resid_post.npy blocks.3.hook_resid_post.npy drafter.heads.1.hook_hidden.npy drafter.heads.2.hook_hidden.npy drafter.heads.3.hook_hidden.npy drafter.heads.4.hook_hidden.npy index.csv "
is "npy/: numpy files ('\\x93NUMPY')" "$(magic "$D/npy/blocks.0.hook_resid_post.npy" 6)" 934e554d5059

# ------------------------------------------------------------------ --prompts, no gnuplot
cat >mine.txt <<'EOF'
The old lighthouse keeper climbed the stairs at dusk
In the spring of that year the river rose
She opened the letter and read it twice before
EOF
# a PATH with no gnuplot: only what the libtool wrapper that BL_BIN may be
# runs (ls; it calls sed by its full path)
mkdir bin
for p in ls sed expr; do
    q=$(command -v "$p" 2>/dev/null) && ln -s "$q" "bin/$p"
done
mkdir p
P=$tmp/p
run pr env PATH="$tmp/bin" "$B" demo -o "$P" --prompts mine.txt -n 8
is "--prompts FILE, no gnuplot in PATH, an empty DIR that exists: exit 0" "$(rc pr)" 0
if [ "$(rc pr)" != 0 ]; then
    diag <pr.err
fi
check "... nothing on stderr says a program is missing" sh -c "! grep -qi 'not found' pr.err"
check "--prompts: prompts.txt is FILE" same mine.txt "$P/prompts.txt"
is "--prompts: the trace holds its 3 prompts" "$("$B" info "$P/trace.blt" | sed -n 's/^prompts: *//p')" 3
check "--prompts: banner 1 names FILE" grep -q '^==> 1\. prompts: yours, from mine.txt, copied to ' pr.out
check "no gnuplot: banner 6 says so" grep -q '^==> 6\. plot: gnuplot is not installed' pr.out
bad=
for c in entropy bits spectrum lens probe drift; do
    [ -s "$P/charts/$c.gp" ] || bad="$bad $c"
done
is "no gnuplot: charts/ holds the six CHART.gp scripts" "$bad" ""
check "no gnuplot: and no PNG" sh -c "! ls '$P/charts' | grep -q png"
check "no gnuplot: README.txt says so" grep -q '^charts/ .*gnuplot scripts (CHART.gp)' "$P/README.txt"
check "no gnuplot: every file README.txt lists is there and not empty, and no other" readme_ok "$P"
check "no gnuplot: stdout points at the scripts" \
    grep -qF "    charts: $P/charts/{entropy,bits,spectrum,lens,probe,drift}.gp" pr.out
if [ -n "$GP" ]; then
    bad=
    cp -R "$P/charts" gpcharts
    for c in entropy bits spectrum lens probe drift; do
        (cd gpcharts && gnuplot "$c.gp" >/dev/null 2>&1) || bad="$bad $c(exit)"
        [ "$(magic "gpcharts/$c.png" 8 2>/dev/null)" = 89504e470d0a1a0a ] || bad="$bad $c"
    done
    is "no gnuplot: 'cd charts && gnuplot CHART.gp' draws CHART.png (each of the six)" "$bad" ""
else
    skip "no gnuplot: 'gnuplot CHART.gp' draws CHART.png" "gnuplot is not installed"
fi

# the transcript, run again as printed: the same files
cp -R "$P" p.demo
{
    echo 'bitlens() { "$B" "$@"; }'
    commands pr.out
} >replay.sh
set +e
env B="$B" PATH="$tmp/bin" "$SH" replay.sh >replay.out 2>replay.err
set -e
bad=
for f in report.txt drift.txt drift.csv drift.json $(cd p.demo && ls charts/* npy/*); do
    cmp -s "p.demo/$f" "$P/$f" || bad="$bad $f"
done
is "the printed commands, run by sh as printed: report, drift, charts and npy byte for byte" "$bad" ""
for t in trace baseline; do
    "$B" info -v "p.demo/$t.blt" | sed -e 1d -e '/^created:/d' >"$t.a"
    "$B" info -v "$P/$t.blt" | sed -e 1d -e '/^created:/d' >"$t.b"
    check "... and $t.blt, all but its creation time (bitlens info -v)" same "$t.a" "$t.b"
done

# ------------------------------------------------------------------ rerun, -q
run q "$B" demo -o "$P" --prompts mine.txt -n 8 --no-charts -q
is "rerun into the demo's own DIR, -q: exit 0" "$(rc q)" 0
is "-q: nothing on stderr" "$(cat q.err)" ""
is "-q: no step banner, no command line" "$(grep -c '^==> [0-9]\|^    \$ ' q.out || true)" 0
check "-q: the report" grep -q "^trace  *$P/trace.blt: 3 prompts" q.out
check "-q: the verdict" grep -q '^  verdict: ' q.out
check "-q: 'everything is in DIR/'" grep -q "^==> done in [0-9]* s: everything is in $P/ " q.out
check "rerun: README.txt rewritten, no charts/ listed" sh -c "grep -q '^bitlens demo' '$P/README.txt' && ! grep -q '^charts/' '$P/README.txt'"

# ------------------------------------------------------------------ -m stories260K
if [ -n "$TD" ]; then
    # into a DIR holding a space
    S="$tmp/st dir"
    run st "$B" demo -o "$S" -m "$TD/stories260K.bin" -z "$TD/tok512.bin" --no-charts -n 16 --threads 1
    is "-m stories260K.bin -z tok512.bin --no-charts -n 16, DIR holding a space: exit 0" "$(rc st)" 0
    if [ "$(rc st)" != 0 ]; then
        diag <st.err
    fi
    check "-m: no drafter in README.txt, no charts/" \
        sh -c '! grep -q "^drafter" "$1/README.txt" && ! test -e "$1/charts" && ! grep -q "^charts/" "$1/README.txt"' - "$S"
    check "-m: every file README.txt lists is there and not empty, and no other" readme_ok "$S"
    check "-m: banner 3 says there is no drafter" grep -q 'no drafter: give one with --drafter' st.out
    check "-m: the report has no drafter channel" sh -c '! grep -q "drafter channel" "$1/report.txt"' - "$S"
    check "-m: the verdict says there is no fast mode" \
        sh -c "grep -q '^  verdict: [0-9]* of the model.s 20 texts flagged' st.out && grep -q 'drafter there is no fast mode to compare' st.out"
    if [ -n "$PY" ]; then
        is "-m: the verdict printed is drift.json's, one verify row" "$("$PY" verdict.py st.out "$S/drift.json" 2>&1)" ok
        is "-m: drift.json's summary: verify only" \
            "$("$PY" -c 'import json, sys; print(" ".join(s["mode"] for s in json.load(open(sys.argv[1]))["summary"]))' "$S/drift.json")" verify
    else
        skip "-m: the verdict printed is drift.json's" "python3 is not installed"
        skip "-m: drift.json's summary: verify only" "python3 is not installed"
    fi
    is "--threads 1 reaches record, report and drift (the 6 lines), not export" \
        "$(commands st.out | grep -c -- ' --threads 1\( \|$\)')" 6
    is "-m: trace.blt names stories260K.bin" "$("$B" info "$S/trace.blt" | sed -n 's/^model: *//p')" "$TD/stories260K.bin"
    # the report line, run as printed
    mv "$S/report.txt" st.report
    {
        echo 'bitlens() { "$B" "$@"; }'
        commands st.out | grep '^bitlens report '
    } >replay-st.sh
    env B="$B" "$SH" replay-st.sh >/dev/null 2>&1 || true
    check "DIR holding a space: the printed report line, run as printed, writes report.txt" \
        sh -c 'test -f "$2" && cmp -s "$1" "$2"' - st.report "$S/report.txt"

    run dm "$B" demo -o dm -m "$TD/stories260K.bin" -z "$TD/tok512.bin" --drafter "$DRAFTER" --no-charts -n 4 -q
    is "--drafter of a drafter for another model: exit 2" "$(rc dm)" 2
    check "... record's message naming both models, then \"'bitlens record' failed\"" \
        sh -c "grep -q '^bitlens record: .*default-drafter.gguf: a drafter for model .bitlens-llama.* not for .stories260K.bin.' dm.err && grep -q \"^bitlens demo: 'bitlens record' failed\" dm.err"
    check "... the demo stops: baseline.blt written, no trace.blt, no report.txt, no 'everything is in'" \
        sh -c "test -s dm/baseline.blt && ! test -e dm/trace.blt && ! test -e dm/report.txt && ! grep -q 'everything is in' dm.out"
else
    for d in "-m stories260K.bin: exit 0 and the no-drafter verdict" "--drafter for another model: exit 2"; do
        skip "$d" "no models/stories260K.bin and tok512.bin under BL_TESTDATA='$BL_TESTDATA'"
    done
fi

done_testing
