#!/bin/sh
# tests/cli-plot.sh: `bitlens plot` (TAP).
#
# A trace of stories260K over the first eight stories of the TinyStories
# head in the test data.  For every chart: the image is a PNG (signature)
# of the size asked for (width and height read from its IHDR chunk with
# od), nothing goes to stdout; --script DIR writes CHART.gp and CHART.dat,
# the script names exactly that data file, every data row has the columns
# its header names, and `cd DIR && gnuplot CHART.gp` draws the chart.  The
# numbers in the data files are those of bitlens report / spectrum / lens
# --csv for the same trace, seed and bootstrap (compared with awk); the
# histograms sum to 1 and the spectra to the total variance.  SVG output,
# --size, --force, standard input, -q, the temporary directory removed;
# errors: no gnuplot in PATH (exit 2, naming gnuplot-nox), an existing
# output, a bad --chart, -o or --size, a trace without a lens or without
# hooks, a gnuplot that fails (its message shown, no file left), and the
# png fallback of a gnuplot without pngcairo (a stand-in script in PATH).
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_TESTDATA, the shared test data.  Without gnuplot (Debian:
# gnuplot-nox) its checks are skipped with a reason; --script and the
# error paths run all the same.

. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
: "${BL_TESTDATA:=}"

if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
MODEL=$(td models/stories260K.bin)
TOK=$(td models/tok512.bin)
TEXT=$(td text/tinystories_train_head.txt)
B=$BL_BIN
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
GP=$(command -v gnuplot 2>/dev/null || true)
cd "$tmp"

# the probe and the bootstrap kept small: the whole test well under 60 s
OPTS="--bootstrap 20 -k 2 --seed 7 --threads 2"
CHARTS="entropy bits spectrum lens probe"

# ------------------------------------------------------------------ helpers
# pngsig FILE: the first 8 bytes in hex
pngsig() { od -An -tx1 -N8 "$1" | tr -d ' \n'; }
PNGSIG=89504e470d0a1a0a

# pngsize FILE: "WIDTH HEIGHT" from the IHDR chunk (bytes 16-23, big-endian)
pngsize() {
    od -An -tu1 -j16 -N8 "$1" | awk '{ for (i = 1; i <= NF; i++) b[k++] = $i }
        END { printf "%d %d\n", ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3],
                                ((b[4] * 256 + b[5]) * 256 + b[6]) * 256 + b[7] }'
}
# ihdr FILE: "IHDR" if the first chunk is IHDR
ihdr() { dd if="$1" bs=1 skip=12 count=4 2>/dev/null; }

# close A B: A and B the same numbers within a relative 1e-9 (awk)
close() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); m = split(b, y, " ")
        if (n != m || n == 0) exit 1
        for (i = 1; i <= n; i++) {
            if (x[i] == y[i]) continue
            d = x[i] - y[i]; if (d < 0) d = -d
            s = y[i] < 0 ? -y[i] : y[i]
            if (d > 1e-9 * s) exit 1
        }
    }'
}

# ------------------------------------------------------------------ the trace
awk 'BEGIN { RS = "" } NR <= 8 { gsub(/\n/, " "); print }' "$TEXT" >prompts.txt
is "eight prompts, one paragraph each" "$(wc -l <prompts.txt | tr -d ' ')" 8
"$B" record -q -m "$MODEL" -z "$TOK" -f prompts.txt -o t.blt
"$B" record -q -m "$MODEL" -z "$TOK" -p "Once upon a time" -n 8 --no-lens -o nolens.blt
"$B" record -q -m "$MODEL" -z "$TOK" -p "Once upon a time" -n 8 --hooks none -o nohooks.blt
pass "recorded the traces to plot"

# ------------------------------------------------------------------ -h
run h "$B" plot -h
is "-h: exit 0" "$(rc h)" 0
check "-h: usage on stdout" grep -q '^usage: bitlens plot TRACE\.\.\. --chart' h.out
check "-h: names the default size 900x600" grep -q 'default 900x600' h.out

# ------------------------------------------------------------------ --script (no gnuplot needed)
for c in $CHARTS; do
    run s "$B" plot t.blt --chart "$c" $OPTS --script "s-$c"
    is "$c --script: exit 0" "$(rc s)" 0
    is "$c --script: DIR holds $c.dat and $c.gp, nothing else" "$(cd "s-$c" && ls | tr '\n' ' ')" "$c.dat $c.gp "
    is "$c --script: the script names exactly the data file $c.dat" \
        "$(grep -o '[A-Za-z0-9_.-]*\.dat' "s-$c/$c.gp" | sort -u | tr '\n' ' ')" "$c.dat "
    check "$c --script: the command to draw it on stderr" grep -qF "cd s-$c && gnuplot $c.gp" s.err
    is "$c --script: nothing on stdout" "$(wc -c <s.out | tr -d ' ')" 0
    check "$c --script: the script writes $c.png" grep -qx "set output '$c.png'" "s-$c/$c.gp"
    check "$c --script: pngcairo (or png), 900x600" grep -qE "^set terminal (pngcairo|png) size 900,600 " "s-$c/$c.gp"
    check "$c --script: the title names the model and the trace" \
        grep -q "^set title .*model stories260K.bin; trace t.blt (8 prompts" "s-$c/$c.gp"
    check "$c.dat: a first line of # and column names" grep -qE '^# [a-z_0-9]+( [a-z_0-9]+)+$' "s-$c/$c.dat"
    is "$c.dat: every row has the columns the header names" "$(awk '
        NR == 1 { n = NF - 1; next }
        NF == 0 { next }
        NF != n { bad++ }
        END { print bad + 0 }' "s-$c/$c.dat")" 0
done
is "--script: no temporary files left in DIR" "$(ls s-bits | tr '\n' ' ')" "bits.dat bits.gp "
check "bits.gp: y on a log scale" grep -qx 'set logscale y' s-bits/bits.gp
check "spectrum.gp: y on a log scale" grep -qx 'set logscale y' s-spectrum/spectrum.gp
check "probe.gp: y linear" sh -c "! grep -q logscale s-probe/probe.gp"
check "bits.gp: axes labelled with units" grep -q "^set ylabel 'bits per vector (log scale)'" s-bits/bits.gp
check "entropy.gp: axes labelled with units" grep -q "^set xlabel 'bits per position'" s-entropy/entropy.gp

# ------------------------------------------------------------------ the numbers
"$B" report t.blt $OPTS --csv >report.csv
H=blocks.2.hook_resid_post
is "bits.dat: a row per hook, in layer order" "$(awk 'NR > 1 { printf "%s:%s ", $1, $3 }' s-bits/bits.dat)" \
    "0:0 1:1 2:2 3:3 4:4 "
got=$(awk -v h=$H '$2 == h { print $6, $7, $8 }' s-bits/bits.dat)
want=$(awk -F, -v h=$H '$1 == h && $4 == "capacity_bits" { print $5, $6, $7 }' report.csv)
if close "$got" "$want"; then pass "bits.dat: $H's capacity and interval are report --csv's ($want)"
else fail "bits.dat: $H's capacity and interval are report --csv's"; echo "#   got '$got', want '$want'"; fi
got=$(awk -v h=$H '$2 == h { print $10, $11, $12, $13 }' s-bits/bits.dat)
want="$(awk -F, -v h=$H '$1 == h && $4 == "lens_bits" { print $5, $6, $7 }' report.csv) \
$(awk -F, -v h=$H '$1 == h && $4 == "probe_bits" && $3 == 1 { print $5 }' report.csv)"
if close "$got" "$want"; then pass "bits.dat: $H's lens (with interval) and probe k=1 are report --csv's"
else fail "bits.dat: $H's lens and probe k=1 are report --csv's"; echo "#   got '$got', want '$want'"; fi
is "bits.dat: raw_bits = 64 x 32 and zlib_bits = 64 x report's bits per element" "$(awk -F, -v h=$H '
    NR == FNR { if ($1 == h && $4 == "zlib_bits_per_element") z = $5 * 64; next }
    $2 == h { d = $9 - z; if (d < 0) d = -d; print $5, (d < 1e-6 * z) }' report.csv FS=' ' s-bits/bits.dat)" "2048 1"
is "bits.gp: the mean token entropy and log2|V| are report's" "$(awk -F, '
    NR == FNR { if ($4 == "mean_entropy") m = $5; if ($4 == "log2_vocab") l = $5; next }
    /^Hmean = / { d = $3 - m; if (d < 0) d = -d; ok += d < 1e-8 * m }
    /^log2V = / { ok += $3 == l }
    END { print ok + 0, l }' report.csv FS=' ' s-bits/bits.gp)" "2 9"
is "entropy.dat: each histogram sums to 1" "$(awk 'NR > 1 { e += $3; s += $4 }
    END { d = e - 1; d2 = s - 1; print (d < 1e-6 && d > -1e-6 && d2 < 1e-6 && d2 > -1e-6) }' s-entropy/entropy.dat)" 1
is "entropy.dat: contiguous bins from 0" "$(awk 'NR == 2 && $1 != 0 { bad++ } NR > 2 && $1 != prev { bad++ }
    NR > 1 { prev = $2 } END { print bad + 0 }' s-entropy/entropy.dat)" 0
is "entropy.gp: log2|V| = 9 and report's mean entropy" "$(awk -F, '
    NR == FNR { if ($4 == "mean_entropy") m = $5; next }
    /^Hmean = / { d = $3 - m; if (d < 0) d = -d; ok += d < 1e-6 * m }
    /^log2V = / { ok += $3 == 9 }
    END { print ok + 0 }' report.csv FS=' ' s-entropy/entropy.gp)" 2
"$B" spectrum t.blt --bootstrap 20 --seed 7 --threads 2 --csv >spectrum.csv
is "spectrum.dat: 64 components for each of the 5 hooks" "$(awk 'NR > 1 && NF { n[$1]++ }
    END { for (h in n) c[n[h]]++; for (k in c) print c[k] " x " k }' s-spectrum/spectrum.dat)" "5 x 64"
is "spectrum.dat: eigenvalues are spectrum --csv's, fractions sum to 1" "$(awk -F, '
    NR == FNR { if (FNR > 1) e[$1 " " $3 + 1] = $4; next }
    FNR > 1 && NF { k = $1 " " $3; d = $4 - e[k]; if (d < 0) d = -d; if (!(k in e) || d > 1e-9 * e[k]) bad++
                    if ($3 == 64) { d = $6 - 1; if (d > 1e-9 || d < -1e-9) bad++ } }
    END { print bad + 0 }' spectrum.csv FS=' ' s-spectrum/spectrum.dat)" 0
"$B" lens t.blt --bootstrap 20 --seed 7 --csv >lens.csv
is "lens.dat: five layers; median entropy and KL, bits and interval are lens --csv's" "$(awk -F, '
    NR == FNR { v[$1 " " $2 " " $3] = $4; next }
    FNR > 1 { n++; l = $1
              if ($4 != v[l " entropy median"] || $7 != v[l " kl median"] || $3 != v[l " entropy p05"]) bad++
              if ($12 != v[l " bits value"] || $13 != v[l " bits lo"] || $14 != v[l " bits hi"]) bad++ }
    END { print n, bad + 0 }' lens.csv FS=' ' s-lens/lens.dat)" "5 0"
is "probe.dat: k = 1, 2 for each of the 5 hooks; bits are report --csv's" "$(awk -F, '
    NR == FNR { if ($4 == "probe_bits") v[$1 " " $3] = $5; next }
    FNR > 1 && NF { n++; d = $4 - v[$1 " " $3]; if (d < 0) d = -d; if (d > 1e-9 * (v[$1 " " $3] < 0 ? -v[$1 " " $3] : v[$1 " " $3])) bad++ }
    END { print n, bad + 0 }' report.csv FS=' ' s-probe/probe.dat)" "10 0"

# ------------------------------------------------------------------ gnuplot
if [ -z "$GP" ]; then
    for c in $CHARTS; do
        skip "$c: a PNG of 900x600" "gnuplot is not installed (Debian: gnuplot-nox)"
    done
    skip "SVG, --size, --force, standard input, the png fallback" "gnuplot is not installed (Debian: gnuplot-nox)"
else
    mkdir tmpd
    for c in $CHARTS; do
        run p env TMPDIR="$tmp/tmpd" "$B" plot t.blt --chart "$c" $OPTS
        is "$c: exit 0" "$(rc p)" 0
        is "$c: nothing on stdout" "$(wc -c <p.out | tr -d ' ')" 0
        check "$c: a summary naming $c.png" grep -q "^bitlens plot: $c.png: the $c chart of t.blt" p.err
        is "$c: $c.png has the PNG signature" "$(pngsig "$c.png")" $PNGSIG
        is "$c: its IHDR says 900 x 600 pixels" "$(ihdr "$c.png") $(pngsize "$c.png")" "IHDR 900 600"
        (cd "s-$c" && gnuplot "$c.gp") >gp.out 2>gp.err || true
        is "$c --script: cd DIR && gnuplot $c.gp draws a 900 x 600 PNG, silently" \
            "$(pngsig "s-$c/$c.png") $(pngsize "s-$c/$c.png") $(wc -c <gp.err | tr -d ' ')" "$PNGSIG 900 600 0"
    done
    is "the temporary directories are removed" "$(ls tmpd | wc -l | tr -d ' ')" 0
    is "no temporary image left beside the outputs" "$(ls | grep -c '\.tmp\.' || true)" 0

    run p "$B" plot t.blt --chart bits $OPTS -o b.svg --size 640x480
    is "-o FILE.svg: exit 0" "$(rc p)" 0
    check "-o FILE.svg: an SVG document" grep -q '<svg' b.svg
    check "-o FILE.svg: 640 x 480 (--size)" grep -q 'width="640" height="480"' b.svg
    check "-o FILE.svg: the summary names the svg terminal" grep -q '(svg, 640x480)' p.err

    run p "$B" plot t.blt --chart lens --size 1200x700 -o big.png -q
    is "--size 1200x700: a PNG of 1200 x 700" "$(rc p) $(pngsize big.png)" "0 1200 700"
    is "-q: nothing on stderr" "$(wc -c <p.err | tr -d ' ')" 0

    cp lens.png lens.before
    run p "$B" plot t.blt --chart lens
    is "an existing output: exit 2" "$(rc p)" 2
    check "an existing output: the message names it and --force" grep -q 'lens.png: exists (--force replaces it)' p.err
    check "an existing output: left as it was" cmp -s lens.png lens.before
    run p "$B" plot t.blt --chart lens --force --size 300x200
    is "--force replaces it" "$(rc p) $(pngsize lens.png)" "0 300 200"

    run p sh -c "cat t.blt | '$B' plot - --chart entropy -o stdin.png"
    is "a trace on standard input ('-'): exit 0, a PNG" "$(rc p) $(pngsig stdin.png)" "0 $PNGSIG"
    "$B" plot - --chart entropy --script sin <t.blt 2>/dev/null
    check "standard input: the title names <stdin>" grep -q "trace <stdin> (8 prompts" sin/entropy.gp
    is "standard input: the same histogram as from the file" "$(cmp -s sin/entropy.dat s-entropy/entropy.dat && echo same)" same

    # a gnuplot without pngcairo: the png terminal, said under -v
    mkdir nocairo
    cat >nocairo/gnuplot <<EOF
#!/bin/sh
for a in "\$@"; do
    case \$a in *pngcairo*) echo 'unknown or ambiguous terminal type' >&2; exit 1 ;; esac
done
exec '$GP' "\$@"
EOF
    chmod +x nocairo/gnuplot
    run p env PATH="$tmp/nocairo:$PATH" "$B" plot t.blt --chart entropy -o fb.png -v
    is "no pngcairo: exit 0" "$(rc p)" 0
    check "no pngcairo: -v says png is used" grep -q 'has no pngcairo terminal: using png' p.err
    is "no pngcairo: still a PNG of 900 x 600" "$(pngsig fb.png) $(pngsize fb.png)" "$PNGSIG 900 600"
    env PATH="$tmp/nocairo:$PATH" "$B" plot t.blt --chart entropy --script fbs -q
    check "no pngcairo: the script asks for png" grep -q '^set terminal png size 900,600' fbs/entropy.gp

    # a gnuplot that fails: its message, exit 2, nothing left behind
    mkdir broken
    cat >broken/gnuplot <<EOF
#!/bin/sh
case "\$*" in *-e*) exec '$GP' "\$@" ;; esac
echo 'line 7: something is wrong' >&2
exit 1
EOF
    chmod +x broken/gnuplot
    mkdir tmpd2
    run p env TMPDIR="$tmp/tmpd2" PATH="$tmp/broken:$PATH" "$B" plot t.blt --chart entropy -o broken.png
    is "gnuplot fails: exit 2" "$(rc p)" 2
    check "gnuplot fails: its message is shown" grep -q '^gnuplot: line 7: something is wrong' p.err
    check "gnuplot fails: bitlens says so" grep -q 'gnuplot failed on the entropy chart' p.err
    is "gnuplot fails: no image, no temporary file, no temporary directory" \
        "$(ls | grep -c 'broken\.png' || true) $(ls tmpd2 | wc -l | tr -d ' ')" "0 0"
fi

# ------------------------------------------------------------------ errors
# no gnuplot in PATH (the libtool wrapper of an uninstalled bitlens needs
# a few tools: they stay reachable)
mkdir nogp
for t in sh ls expr cat sed; do
    p=$(command -v "$t" 2>/dev/null || true)
    [ -n "$p" ] && ln -s "$p" "nogp/$t"
done
run e env PATH="$tmp/nogp" "$B" plot t.blt --chart bits -o nogp.png $OPTS
is "no gnuplot in PATH: exit 2" "$(rc e)" 2
check "no gnuplot in PATH: the message names gnuplot-nox" grep -q 'gnuplot is not installed.*gnuplot-nox' e.err
check "no gnuplot in PATH: no image" test ! -e nogp.png
run e env PATH="$tmp/nogp" "$B" plot t.blt --chart lens --script nogp-s
is "no gnuplot in PATH: --script still writes the files" "$(rc e) $(ls nogp-s | tr '\n' ' ')" "0 lens.dat lens.gp "

run e "$B" plot t.blt --chart lens --script nogp-s
is "--script: existing files: exit 2" "$(rc e)" 2
check "--script: existing files: the message names the script" grep -q 'nogp-s/lens.gp: exists (--force replaces it)' e.err
run e "$B" plot t.blt --chart lens --script nogp-s --force
is "--script --force replaces them" "$(rc e)" 0

run e "$B" plot t.blt --chart pie
is "--chart pie: exit 2" "$(rc e)" 2
check "--chart pie: the message lists the charts" grep -q "'pie': not one of entropy, bits, spectrum, lens, probe" e.err
run e "$B" plot t.blt
is "no --chart: exit 2" "$(rc e)" 2
run e "$B" plot --chart bits
is "no trace: exit 2" "$(rc e)" 2
run e "$B" plot t.blt --chart bits -o x.pdf
is "-o x.pdf: exit 2" "$(rc e)" 2
check "-o x.pdf: the message asks for .png or .svg" grep -q 'ending in .png or .svg' e.err
for s in 900 0x600 900x 900x600x 20000x600 axb; do
    run e "$B" plot t.blt --chart bits --size "$s" --script bad
    is "--size $s: exit 2" "$(rc e)" 2
done
run e "$B" plot t.blt --chart probe -k 0 --script bad
is "the probe chart with -k 0: exit 2" "$(rc e)" 2
run e "$B" plot t.blt --chart bits --frobnicate
is "an unknown option: exit 2" "$(rc e)" 2
run e "$B" plot missing.blt --chart entropy --script bad
is "a missing trace: exit 2" "$(rc e)" 2
check "a missing trace: the message names it" grep -q 'missing.blt' e.err
run e "$B" plot nolens.blt --chart lens --script bad
is "the lens chart of a trace without a lens: exit 2" "$(rc e)" 2
check "... saying so" grep -q 'no logit lens' e.err
run e "$B" plot nohooks.blt --chart spectrum --script bad
is "the spectrum chart of a trace without hooks: exit 2" "$(rc e)" 2
check "... saying so" grep -q 'no hook tensors' e.err
check "failures leave no --script directory behind" test ! -e bad

done_testing
