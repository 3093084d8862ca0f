#!/bin/sh
# examples/walkthrough.sh: from a model and some text to a trace, a report,
# charts and arrays for a notebook, one bitlens command at a time.
#
# usage: examples/walkthrough.sh [MODEL TOKENIZER TEXT [OUTDIR]]
#
#   MODEL      a model bitlens reads (GGUF, llama2.c .bin, Hugging Face folder)
#   TOKENIZER  the llama2.c tokenizer.bin for a .bin model; '-' for a model
#              that carries its own vocabulary (GGUF, Hugging Face)
#   TEXT       plain text whose paragraphs (blocks of lines separated by a
#              blank line) become the prompts
#   OUTDIR     where everything goes (default ./walkthrough-out)
#
# Without arguments it uses stories260K (a 260K-parameter Llama trained on
# TinyStories) and the TinyStories text of the test data: $BL_TESTDATA, else
# ../shared/testdata beside the source tree.  Environment:
#   N       prompts to record (default 50)
#   BL_BIN  the bitlens command (default: bitlens in PATH)
#
# Every step prints what it does and why, then runs the command as you
# would type it.  The whole walk takes about 20 seconds for N=50 on two
# cores; the future-token probe, trained anew by each report and by the
# bits and probe charts, takes most of it.  It can be run again: every
# output is replaced.

set -eu

# ---------------------------------------------------------------- settings
srcdir=$(cd "$(dirname "$0")/.." && pwd)
testdata=${BL_TESTDATA:-$srcdir/../shared/testdata}

hint=
case $# in
0) MODEL=$testdata/models/stories260K.bin
   TOKENIZER=$testdata/models/tok512.bin
   TEXT=$testdata/text/tinystories_train_head.txt
   OUT=./walkthrough-out
   hint=" (set BL_TESTDATA, or give MODEL TOKENIZER TEXT)" ;;
3) MODEL=$1 TOKENIZER=$2 TEXT=$3 OUT=./walkthrough-out ;;
4) MODEL=$1 TOKENIZER=$2 TEXT=$3 OUT=$4 ;;
*) echo "usage: $0 [MODEL TOKENIZER TEXT [OUTDIR]]" >&2
   exit 2 ;;
esac
N=${N:-50}
BITLENS=${BL_BIN:-bitlens}

case $N in
''|*[!0-9]*) n_ok=false ;;
*) if [ "$N" -ge 1 ]; then n_ok=true; else n_ok=false; fi ;;
esac
if ! $n_ok; then
    echo "$0: N='$N': give a number of prompts, 1 or more" >&2
    exit 2
fi
if ! command -v "$BITLENS" >/dev/null 2>&1; then
    echo "$0: '$BITLENS' not found: put bitlens in PATH or set BL_BIN" >&2
    exit 2
fi
for f in "$MODEL" "$TEXT"; do
    if [ ! -r "$f" ]; then
        echo "$0: '$f' not found$hint" >&2
        exit 2
    fi
done
# -z only where a tokenizer is given: GGUF files carry their vocabulary
if [ "$TOKENIZER" = - ]; then
    set --
elif [ -r "$TOKENIZER" ]; then
    set -- -z "$TOKENIZER"
else
    echo "$0: tokenizer '$TOKENIZER' not found ('-' for a model with its own)" >&2
    exit 2
fi

mkdir -p "$OUT"
TRACE=$OUT/trace.blt

# step LINE...: announce a step, its first line after '==>'
step() {
    echo
    printf '==> %s\n' "$1"
    shift
    [ $# -eq 0 ] || printf '    %s\n' "$@"
}

# ---------------------------------------------------------------- 1. prompts
step "1. prompts: the first $N paragraphs of $(basename "$TEXT")," \
    "one per line, as record reads them"
# In awk, RS="" makes a record of each block of lines between blank lines;
# the line breaks inside a paragraph become spaces.
awk -v n="$N" 'BEGIN { RS = "" } NR <= n { gsub(/[ \t]*\n[ \t]*/, " "); print }' \
    "$TEXT" >"$OUT/prompts.txt"
echo "$(wc -l <"$OUT/prompts.txt" | tr -d ' ') prompts in $OUT/prompts.txt"

# ---------------------------------------------------------------- 2. record
step "2. record: run each prompt through the model once, keeping the residual" \
    "stream after every block, the entropy and surprisal of every next-token" \
    "distribution and the logit lens in the trace $TRACE"
# Teacher-forced (-n 0, the default): the model reads the prompt, it does
# not write.  The residual streams are stored as f16 (--dtype); the analysis
# commands below read the trace and never run the model forward again.
# record prints nothing on stdout, like perf record; a summary on stderr.
"$BITLENS" record -m "$MODEL" "$@" -f "$OUT/prompts.txt" \
    --hooks 'blocks.*.hook_resid_post' -o "$TRACE" --force

# ---------------------------------------------------------------- 3. info
step "3. info: what the trace holds (model, prompts, hook points, sizes)"
"$BITLENS" info "$TRACE"

# ---------------------------------------------------------------- 4. report
step "4. report: the bottleneck table: the bits each residual stream could carry" \
    "(capacity, zlib) against the bits a reader decodes from it (logit lens," \
    "future-token probe) and the bits the tokens pass (entropy)"
# The table is for reading; --csv gives the same numbers as a tidy table
# (hook,layer,k,estimate,value,lo,hi) for pandas or R.  Both use seed 1,
# so they agree.
"$BITLENS" report "$TRACE" >"$OUT/report.txt"
cat "$OUT/report.txt"
"$BITLENS" report "$TRACE" --csv >"$OUT/report.csv"
echo "(the same as CSV: $OUT/report.csv)"

# ---------------------------------------------------------------- 5. spectrum
step "5. spectrum: the covariance spectrum behind the capacity column:" \
    "how many directions of each residual stream hold its variance"
"$BITLENS" spectrum "$TRACE" >"$OUT/spectrum.txt"
cat "$OUT/spectrum.txt"

# ---------------------------------------------------------------- 6. lens
step "6. lens: the logit lens block by block: how close each block's output" \
    "already is to the model's own next-token distribution"
"$BITLENS" lens "$TRACE" >"$OUT/lens.txt"
cat "$OUT/lens.txt"

# ---------------------------------------------------------------- 7. charts
mkdir -p "$OUT/charts"
if command -v gnuplot >/dev/null 2>&1; then
    step "7. plot: the five charts as PNG images in $OUT/charts"
    for chart in entropy bits spectrum lens probe; do
        "$BITLENS" plot "$TRACE" --chart "$chart" -o "$OUT/charts/$chart.png" --force
    done
else
    step "7. plot: gnuplot is not installed (Debian: apt install gnuplot-nox)," \
        "so each chart is written as its data and gnuplot script in" \
        "$OUT/charts; once gnuplot is installed," \
        "'cd $OUT/charts && gnuplot CHART.gp' draws CHART.png"
    for chart in entropy bits spectrum lens probe; do
        "$BITLENS" plot "$TRACE" --chart "$chart" --script "$OUT/charts" --force
    done
fi

# ---------------------------------------------------------------- 8. export
step "8. export: each recorded hook as a numpy array (.npy), one row per" \
    "position, and index.csv naming the prompt, position and token of each row"
"$BITLENS" export "$TRACE" --format npy -o "$OUT/npy" --force
# In Python with numpy (>= 1.23, for quotechar), from the directory you ran
# this in; blocks.4 is the last block of stories260K:
#
#   import numpy as np
#   r = np.load("walkthrough-out/npy/blocks.4.hook_resid_post.npy")  # (rows, 64) float16
#   pos = np.loadtxt("walkthrough-out/npy/index.csv", delimiter=",", skiprows=1,
#                    usecols=2, quotechar='"', dtype=int)            # position of each row
#   norm = np.linalg.norm(r.astype(np.float32), axis=1)              # |r| of each row
#   print([norm[pos == t].mean() for t in range(5)])                 # mean |r| at positions 0..4

# ---------------------------------------------------------------- files
step "files made in $OUT:"
find "$OUT" -type f | LC_ALL=C sort
