#!/bin/sh
# tests/cli-default.sh: commands given no -m use the default model (TAP).
#
# The reference is the same command given the default model by name,
# -m $BITLENS_DATADIR/default-model.gguf: without -m, generate must print
# byte for byte the same text, info the same description, drift on standard
# input the same spans; a conversion written without -m must generate the
# model's greedy text and hold its tensors; and the model's sha256, computed
# here with sha256sum, must be the one record writes in a trace's header and
# train in a drafter.  Each command names the default model on standard
# error, once, unless -q or -m is given.  (drift --text is checked in
# cli-drift.sh.)  Then where the model is looked for: BITLENS_DATADIR naming
# a directory without it is an error naming the path and -m, and an empty
# BITLENS_DATADIR is as if it were not set.  Last, -z without -m is a usage
# error for every command that takes -m.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BITLENS_DATADIR, the source tree's lib/ (else BL_SRCDIR/lib).

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
: "${BITLENS_DATADIR:=$BL_SRCDIR/lib}"
export BITLENS_DATADIR

if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
DM=$BITLENS_DATADIR/default-model.gguf
[ -r "$DM" ] || skip_all "no default model at '$DM' (set BITLENS_DATADIR)"
B=$BL_BIN
cd "$tmp"

# ------------------------------------------------------------------ helpers
# run NAME COMMAND...: stdout in NAME.out, stderr in NAME.err, the exit
# status in $st (set -e must not stop the test)
run() {
    name=$1
    shift
    st=0
    "$@" >"$name.out" 2>"$name.err" || st=$?
}

# same DESCRIPTION FILE1 FILE2: equal files, else a diff as diagnostics
same() {
    if cmp -s "$2" "$3"; then
        pass "$1"
    else
        fail "$1"
        diff "$2" "$3" | head -n 20 | diag || true
    fi
}

# said CMD OPTION NAME: how many lines of NAME.err say that CMD, given no
# OPTION (-m or FILE), uses the default model $DM
said() {
    grep -cxF "bitlens $1: no $2: using the default model, $DM (trained by bitlens on the Brown corpus; see bitlens(1))" \
        "$3.err" || true
}

# ok DESCRIPTION NAME: the last run exited 0, else its stderr as diagnostics
ok() {
    if [ "$st" = 0 ]; then
        pass "$1"
    else
        fail "$1"
        echo "#   exit status $st; stderr:"
        diag <"$2.err"
    fi
}

# errs DESCRIPTION NAME TEXT: the last run exited 2 and NAME.err holds TEXT
errs() {
    if [ "$st" = 2 ] && grep -qF -- "$3" "$2.err"; then
        pass "$1"
    else
        fail "$1"
        echo "#   exit status $st (want 2); stderr:"
        diag <"$2.err"
    fi
}

if command -v sha256sum >/dev/null 2>&1; then
    sha=$(sha256sum <"$DM" | cut -d' ' -f1)
elif command -v shasum >/dev/null 2>&1; then
    sha=$(shasum -a 256 <"$DM" | cut -d' ' -f1)
else
    sha=
fi

# ------------------------------------------------------------------ generate
P="The president said"
run g "$B" generate -p "$P" -n 16 -t 0
ok "generate without -m: exit 0" g
run gm "$B" generate -m "$DM" -p "$P" -n 16 -t 0
same "generate without -m: the text of -m $DM" g.out gm.out
check "... which is the prompt and more (not empty)" \
    test "$(head -c ${#P} g.out)" = "$P" -a "$(wc -c <g.out)" -gt $((${#P} + 8))
is "... and says once on stderr that it uses the default model, naming it" "$(said generate -m g)" 1
run gq "$B" generate -p "$P" -n 16 -t 0 -q
same "generate without -m, -q: the same text" g.out gq.out
is "... and not a word of the default model" "$(grep -c 'default model' gq.err || true)" 0
is "generate -m: not a word of the default model" "$(grep -c 'default model' gm.err || true)" 0

# ------------------------------------------------------------------ info
run i "$B" info
ok "info without FILE: exit 0" i
run im "$B" info "$DM"
same "info without FILE: the description of 'info $DM'" i.out im.out
is "... and says on stderr 'no FILE: using the default model', naming it" "$(said info FILE i)" 1
run ij "$B" info --json
run imj "$B" info --json "$DM"
same "info --json without FILE: the JSON of 'info --json $DM'" ij.out imj.out
check "... which names the file" grep -qF "\"file\":	\"$DM\"" ij.out

# ------------------------------------------------------------------ record
run r "$B" record -p "The jury said" -n 4 -o T.blt
ok "record without -m: exit 0" r
is "... says on stderr that it uses the default model" "$(said record -m r)" 1
run ri "$B" info T.blt
is "... the trace's header names the default model's path" "$(sed -n 's/^model: *//p' ri.out)" "$DM"
if [ -n "$sha" ]; then
    is "... and its sha256 (sha256sum: ${sha%"${sha#????????????????}"}...)" \
        "$(sed -n 's/^sha256: *//p' ri.out)" "$sha  $DM"
else
    skip "the trace's header names the default model's sha256" "neither sha256sum nor shasum is installed"
fi

# ------------------------------------------------------------------ convert
run c "$B" convert -o X.gguf
ok "convert without -m: exit 0" c
is "... says on stderr that it uses the default model" "$(said convert -m c)" 1
run cg "$B" generate -m X.gguf -p "$P" -n 16 -t 0 -q
same "... the file written generates the greedy text of -m $DM" cg.out gm.out
run ci "$B" info X.gguf
is "... and holds as many tensors" "$(grep '^tensors (' ci.out)" "$(grep '^tensors (' im.out)"
is "... with the same parameter count" "$(grep '^parameters:' ci.out)" "$(grep '^parameters:' im.out)"

# ------------------------------------------------------------------ train --drafter
# six paragraphs, two held out; two steps on a handful of rows: seconds
cat >small.txt <<'EOF'
The town council met on Tuesday evening to discuss the new bridge over the river.

My grandmother kept a small garden behind her house, and every morning she walked out to it.

The history of the railroad in this part of the country is tied to the growth of its cities.

It was late when he finally reached the house, and the lights were off.

Students who want to take the advanced course must first pass the examination.

The jury said that the election had been conducted well and that the city was glad of it.
EOF
run t "$B" train --drafter medusa --corpus small.txt --steps 2 --prompts 6 --prompt-tokens 8 \
    --gen 8 --batch 4 --valid-every 3 --eval-every 1 --width 32 --threads 2 -o D.gguf
ok "train --drafter without -m: exit 0" t
is "... says on stderr that it uses the default model" "$(said train -m t)" 1
run ti "$B" info D.gguf
is "... the drafter was trained for the default model (its name)" \
    "$(sed -n 's/^model\.name: *//p' ti.out)" "$(sed -n 's/^name: *//p' im.out)"
if [ -n "$sha" ]; then
    is "... and its sha256" "$(sed -n 's/^model\.sha256: *//p' ti.out)" "$sha"
else
    skip "the drafter names the default model's sha256" "neither sha256sum nor shasum is installed"
fi

# ------------------------------------------------------------------ drift -
cat >t.txt <<'EOF'
The town council met on Tuesday evening to discuss the new bridge over the river. Most of the members agreed that the old one had served the town well for more than sixty years, but the engineers who inspected it last spring found cracks in two of its supports.
EOF
run d sh -c "'$B' drift - --csv <t.txt"
is "drift - without -m: exit 0 or 1 (scored)" "$(test "$st" -le 1 && echo yes)" yes
is "... says on stderr that it uses the default model" "$(said drift -m d)" 1
is "... model_bpc filled in every row" \
    "$(awk -F, 'NR == 1 { ok = ($11 == "model_bpc") } NR > 1 { n++; if ($11 == "") e++ }
               END { print ok, (n > 0), e + 0 }' d.out)" "1 1 0"
run dm sh -c "'$B' drift - --csv -m '$DM' <t.txt"
same "... the rows of -m $DM" d.out dm.out

# ------------------------------------------------------------------ where it is looked for
mkdir nomodel
run x env BITLENS_DATADIR="$tmp/nomodel" "$B" generate -p "$P" -n 2
errs "BITLENS_DATADIR without the model: generate exits 2, naming the path" x "$tmp/nomodel/default-model.gguf"
check "... and pointing to -m MODEL" grep -qF -- "-m MODEL" x.err
is "... and writes nothing on stdout" "$(wc -c <x.out | tr -d ' ')" 0
run xr env BITLENS_DATADIR="$tmp/nomodel" "$B" record -p "$P" -o N.blt
errs "BITLENS_DATADIR without the model: record exits 2, naming the path" xr "$tmp/nomodel/default-model.gguf"
check "... and leaves no trace" test ! -e N.blt
run xi env BITLENS_DATADIR="$tmp/nomodel" "$B" info
errs "BITLENS_DATADIR without the model: info without FILE exits 2, naming the path" xi \
    "$tmp/nomodel/default-model.gguf"
run e env BITLENS_DATADIR= "$B" generate -p "$P" -n 2 -t 0
ok "BITLENS_DATADIR empty: as if unset, generate finds the default model" e
check "... and names it on stderr (installed, else the source tree's)" \
    grep -q '^bitlens generate: no -m: using the default model, /.*/default-model\.gguf (' e.err
diag "BITLENS_DATADIR empty: $(sed -n 's/.*using the default model, \([^ ]*\) .*/\1/p' e.err)"
# a relative BITLENS_DATADIR: the trace names the model by its absolute
# path, so the model is found again from another directory
mkdir -p rel/data sub
ln -s "$DM" rel/data/default-model.gguf
(cd rel && BITLENS_DATADIR=data "$B" record -p "$P" -n 2 -o ../R.blt -q) >/dev/null 2>&1 || true
run ri "$B" info R.blt
check "relative BITLENS_DATADIR: the trace names an absolute path" grep -q "$(cd rel/data && pwd -P)/default-model.gguf\|$(cd "$(dirname "$DM")" && pwd -P)/default-model.gguf" ri.out
(cd sub && "$B" report ../R.blt -q >rep.out 2>rep.err) || true
check "... and report, run from elsewhere, finds it (no 'is not there')" sh -c '! grep -q "is not there" sub/rep.err'
# a directory named default-model.gguf is not the model
mkdir -p dirdata/default-model.gguf
run dd env BITLENS_DATADIR="$tmp/dirdata" "$B" generate -p "$P" -n 2
errs "BITLENS_DATADIR holding a directory of that name: exit 2, not a regular file" dd "not a regular file"
# info -z without FILE; convert without -o asks for -o before any model
run iz "$B" info -z x.bin
errs "info -z x.bin without FILE: a usage error" iz "-z x.bin: a tokenizer goes with a llama2.c model FILE"
run co env BITLENS_DATADIR="$tmp/nomodel" "$B" convert
errs "convert without -o: asks for -o before looking for the default model" co "give the GGUF file to write with -o OUT"

# ------------------------------------------------------------------ -z without -m
: >x.bin
for c in "generate -p hi" "record -p hi -o Z.blt" "convert -o Z.gguf" \
    "train --drafter medusa --corpus small.txt -o Z.gguf" "drift --text t.txt"; do
    # shellcheck disable=SC2086
    run z "$B" $c -z x.bin
    errs "${c%% *} -z x.bin without -m: a usage error (exit 2)" z \
        "-z x.bin: a tokenizer goes with a llama2.c model given with -m"
done
check "... writing no file" test ! -e Z.blt -a ! -e Z.gguf

done_testing
