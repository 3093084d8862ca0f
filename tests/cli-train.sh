#!/bin/sh
# bitlens train: a small training of stories260K's drafter heads on the
# first 30 paragraphs of the TinyStories head in the test data (16 greedy
# tokens each, 60 steps; a few seconds) writes a GGUF drafter whose keys
# and tensors are those bitlens-train(1) lists (read back by a small
# python3 GGUF reader, by od and grep without python3), prints nothing on
# stdout and its progress on stderr, gives the same bytes for the same
# command and thread count, needs --force to replace a file, and every
# error exits 2 with a message and leaves no file.
#
# Environment (set by `make check`): BL_BIN, the built command;
# BL_TESTDATA, the shared test data.
. "$BL_SRCDIR/tests/setup"

: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
for f in models/stories260K.bin models/tok512.bin text/tinystories_train_head.txt; do
    [ -r "${BL_TESTDATA:-/nonexistent}/$f" ] || skip_all "test data '$f' not found under BL_TESTDATA='${BL_TESTDATA:-}'"
done
M=$BL_TESTDATA/models/stories260K.bin
Z=$BL_TESTDATA/models/tok512.bin
T=$BL_TESTDATA/text/tinystories_train_head.txt
SHA=b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696

py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import struct' 2>/dev/null; then
        py=$p
        break
    fi
done

# ------------------------------------------------------------------ helpers
# is DESC GOT WANT
is() {
    if [ "x$2" = "x$3" ]; then
        pass "$1"
    else
        fail "$1"
        diag "got:  '$2'" "want: '$3'"
    fi
}

# train NAME ARGS...: bitlens train ARGS, stdout to $tmp/NAME.out, stderr
# to $tmp/NAME.err, the exit status in $rc
train() {
    t_name=$1
    shift
    rc=0
    "$BL_BIN" train "$@" >"$tmp/$t_name.out" 2>"$tmp/$t_name.err" || rc=$?
}

# small NAME ARGS...: the small training, into $tmp/NAME.gguf
small() {
    s_name=$1
    shift
    train "$s_name" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --prompts 30 --gen 16 --steps 60 \
        --eval-every 20 -o "$tmp/$s_name.gguf" "$@"
}

# ok_run NAME: exit 0, nothing on stdout (else the messages as diagnostics)
ok_run() {
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/$1.out" ]; then
        pass "$2: exit 0, nothing on stdout"
    else
        fail "$2: exit 0, nothing on stdout"
        diag "exit $rc" <"$tmp/$1.err"
    fi
}

# no_tmp: no temporary drafter (NAME.tmp.PID) left in $tmp
no_tmp() {
    for f in "$tmp"/*.tmp.*; do
        [ -e "$f" ] && return 1
    done
    return 0
}

# magic FILE: the first 8 bytes in hex ("47 47 55 46 03 00 00 00": GGUF v3)
magic() {
    od -A n -t x1 -N 8 "$1" 2>/dev/null | tr -s ' \n' '  ' | sed -e 's/^ //' -e 's/ $//'
}

# gguf FILE: the keys ("key type value") and tensors ("name type ne...")
# of a GGUF file, in file order (python3)
cat >"$tmp/gguf.py" <<'EOF'
import struct, sys
d = open(sys.argv[1], 'rb').read()
at = 0
def take(fmt):
    global at
    v = struct.unpack_from('<' + fmt, d, at)
    at += struct.calcsize('<' + fmt)
    return v[0] if len(v) == 1 else v
def string():
    global at
    n = take('Q')
    s = d[at:at + n].decode('utf-8')
    at += n
    return s
SCALAR = {0: ('u8', 'B'), 1: ('i8', 'b'), 2: ('u16', 'H'), 3: ('i16', 'h'), 4: ('u32', 'I'),
          5: ('i32', 'i'), 6: ('f32', 'f'), 7: ('bool', '?'), 10: ('u64', 'Q'), 11: ('i64', 'q'),
          12: ('f64', 'd')}
def value(t):
    if t == 8:
        return 'str', string()
    if t == 9:
        et, n = take('I'), take('Q')
        return 'array', [value(et)[1] for _ in range(n)]
    name, fmt = SCALAR[t]
    return name, take(fmt)
assert d[:4] == b'GGUF', 'magic'
at = 4
ver, nt, nkv = take('I'), take('Q'), take('Q')
print('version %d' % ver)
for _ in range(nkv):
    k = string()
    tn, v = value(take('I'))
    print('%s %s %s' % (k, tn, v))
for _ in range(nt):
    name = string()
    nd = take('I')
    ne = [take('Q') for _ in range(nd)]
    typ, off = take('I'), take('Q')
    print('%s %s %s' % (name, {0: 'f32'}.get(typ, typ), ' '.join(map(str, ne))))
EOF
gguf() { "$py" "$tmp/gguf.py" "$1"; }

# ------------------------------------------------------------------ a small training
small a --threads 2
ok_run a "a small training (--prompts 30 --gen 16 --steps 60 --eval-every 20)"
check "progress: the training set on stderr (30 prompts, 480 self-distilled rows)" \
    grep -q "^bitlens train: 30 prompts of $T, 480 rows (self-distilled targets) in [0-9.]* s\$" "$tmp/a.err"
# the three evaluations, in order: step, train loss, held-out loss, top-1 of 4 heads
f='[0-9]*\.[0-9]*'
grep -E "^bitlens train: step +[0-9]+/60  train $f  held-out $f nats  top-1 $f $f $f $f  \\([0-9]+ s\\)\$" \
    "$tmp/a.err" | sed -E 's/^bitlens train: step +([0-9]+)\/.*/\1/' | tr '\n' ' ' >"$tmp/a.steps"
is "progress: a line with step, held-out loss and top-1 per head every 20 steps" "$(cat "$tmp/a.steps")" "20 40 60 "
check "the summary names the file, the steps, the rows and the held-out prompts (10, 20, 30)" \
    grep -q "^bitlens train: $tmp/a.gguf: 60 steps in [0-9.]* s on 432 rows; held-out (48 rows) loss $f nats, top-1 per head $f $f $f $f\$" \
    "$tmp/a.err"
check "the held-out decoding, simulated: tokens per model pass" \
    grep -q "^bitlens train: held-out decoding in verify mode (simulated on 3 continuations): $f tokens per model pass ([0-9]* tokens, [0-9]* passes)\$" "$tmp/a.err"
is "stderr: nothing else (no error, no warning)" "$(wc -l <"$tmp/a.err" | tr -d ' ')" 6
check "stderr not a terminal: no carriage returns or escapes" \
    test -z "$(tr -d '\n' <"$tmp/a.err" | tr -d '[:print:]')"
h_top1=$(sed -n 's/.*top-1 per head \([0-9.]*\) .*/\1/p' "$tmp/a.err")
check "held-out top-1 of head 1 after 60 steps is above chance (0.05; it is about 0.38)" \
    awk -v x="$h_top1" 'BEGIN { exit !(x > 0.05) }'

# ------------------------------------------------------------------ the file
is "the file is GGUF version 3 (od)" "$(magic "$tmp/a.gguf")" "47 47 55 46 03 00 00 00"
check "general.architecture bitlens-drafter in its header (grep)" \
    grep -q -a 'general\.architecture.*bitlens-drafter' "$tmp/a.gguf"
if [ -n "$py" ]; then
    gguf "$tmp/a.gguf" >"$tmp/a.kv" 2>&1 || true
    cat >"$tmp/a.want" <<EOF
version 3
general.architecture str bitlens-drafter
general.name str medusa drafter for stories260K.bin
general.file_type u32 0
bitlens.drafter.kind str medusa
bitlens.drafter.n_heads u32 4
bitlens.drafter.n_blocks u32 1
bitlens.drafter.width u32 256
bitlens.drafter.hook str ln_final.hook_normalized
bitlens.drafter.model.name str stories260K.bin
bitlens.drafter.model.sha256 str $SHA
bitlens.drafter.model.dim u32 64
bitlens.drafter.model.n_vocab u32 512
drafter.heads.1.blocks.0.w1 f32 64 256
drafter.heads.1.blocks.0.b1 f32 256
drafter.heads.1.blocks.0.w2 f32 256 64
drafter.heads.2.blocks.0.w1 f32 64 256
drafter.heads.2.blocks.0.b1 f32 256
drafter.heads.2.blocks.0.w2 f32 256 64
drafter.heads.3.blocks.0.w1 f32 64 256
drafter.heads.3.blocks.0.b1 f32 256
drafter.heads.3.blocks.0.w2 f32 256 64
drafter.heads.4.blocks.0.w1 f32 64 256
drafter.heads.4.blocks.0.b1 f32 256
drafter.heads.4.blocks.0.w2 f32 256 64
EOF
    if cmp -s "$tmp/a.want" "$tmp/a.kv"; then
        pass "keys and tensors as bitlens-train(1) lists them (defaults: 4 heads, 1 block, width 4 x 64)"
    else
        fail "keys and tensors as bitlens-train(1) lists them (defaults: 4 heads, 1 block, width 4 x 64)"
        diff "$tmp/a.want" "$tmp/a.kv" | diag || true
    fi
else
    skip "keys and tensors as bitlens-train(1) lists them" "no python3 to read the GGUF file"
fi

# ------------------------------------------------------------------ determinism
small b --threads 2
ok_run b "the same command again"
check "the same command twice: byte-identical files" cmp -s "$tmp/a.gguf" "$tmp/b.gguf"
small c --threads 1
ok_run c "--threads 1"
if cmp -s "$tmp/a.gguf" "$tmp/c.gguf"; then
    pass "--threads 1 and --threads 2: byte-identical files"
else
    # The trainer is thread-invariant (tests/test-drafter.c), but the main
    # model's batched forward pass gives other last bits to the hook rows
    # on 1 and 2 threads, and bitlens-train(1) promises the same bytes only
    # for the same thread count.
    n=$((n + 1))
    echo "not ok $n - --threads 1 and --threads 2: byte-identical files # TODO the model's hook rows differ in their last bits between thread counts"
fi

# ------------------------------------------------------------------ --force, -q
cp "$tmp/a.gguf" "$tmp/keep.gguf"
train nf --drafter medusa -m "$M" -z "$Z" --corpus "$T" -o "$tmp/a.gguf"
is "an existing file without --force: exit 2" "$rc" 2
check "an existing file without --force: the message names it" \
    grep -q "^bitlens train: $tmp/a.gguf exists: --force replaces it\$" "$tmp/nf.err"
check "an existing file without --force: left as it was, nothing on stdout" \
    test ! -s "$tmp/nf.out" -a -z "$(cmp "$tmp/a.gguf" "$tmp/keep.gguf" 2>&1)"
: >"$tmp/a.gguf"
small a --threads 2 --force -q
ok_run a "--force -q"
check "-q: nothing on stderr" test ! -s "$tmp/a.err"
check "--force: the file is replaced, by the same bytes as before" cmp -s "$tmp/a.gguf" "$tmp/b.gguf"
check "no temporary file is left" no_tmp

# ------------------------------------------------------------------ --targets corpus, -v
small corpus --targets corpus -v
ok_run corpus "--targets corpus -v"
check "--targets corpus: the prompts' own tokens (929 rows, corpus targets)" \
    grep -q "^bitlens train: 30 prompts of $T, 929 rows (corpus targets) in" "$tmp/corpus.err"
check "-v: the settings first (medusa, 4 heads of 1 block, width 256, 132096 parameters)" \
    grep -q "^bitlens train: medusa drafter, 4 heads of 1 block(s), width 256 (132096 parameters), reading ln_final.hook_normalized of $M (d 64)\$" \
    "$tmp/corpus.err"
is "--targets corpus: a GGUF drafter too" "$(magic "$tmp/corpus.gguf")" "47 47 55 46 03 00 00 00"
check "--targets corpus: another drafter than self-distillation's" test -n "$(cmp "$tmp/corpus.gguf" "$tmp/b.gguf" 2>&1)"

# ------------------------------------------------------------------ -o's default, --valid-every 0, options in the file
mkdir "$tmp/cwd"
rc=0
(cd "$tmp/cwd" && "$BL_BIN" train --drafter medusa --model "$M" --tokenizer "$Z" --corpus "$T" --prompts 20 \
    --gen 8 --steps 4 --valid-every 0 --heads 2 --blocks 3 --width 0 --batch 16 --seed 9 --threads 2 \
    >"$tmp/v0.out" 2>"$tmp/v0.err") || rc=$?
ok_run v0 "no -o, long options, --valid-every 0"
check "no -o: drafter.gguf in the current directory" test -s "$tmp/cwd/drafter.gguf"
check "--valid-every 0: nothing held out, said, and no held-out figures" \
    sh -c 'grep -q "^bitlens train: warning: no prompt held out (20 prompts, --valid-every 0): no held-out figures\$" "$1" &&
           grep -q "^bitlens train: drafter.gguf: 4 steps in [0-9.]* s on 160 rows\$" "$1"' sh "$tmp/v0.err"
if [ -n "$py" ]; then
    gguf "$tmp/cwd/drafter.gguf" 2>&1 | grep -E '^(bitlens.drafter.(n_heads|n_blocks|width) |drafter\.)' >"$tmp/v0.kv" || true
    cat >"$tmp/v0.want" <<EOF
bitlens.drafter.n_heads u32 2
bitlens.drafter.n_blocks u32 3
bitlens.drafter.width u32 0
drafter.heads.1.blocks.0.w1 f32 64 64
drafter.heads.1.blocks.0.b1 f32 64
drafter.heads.1.blocks.1.w1 f32 64 64
drafter.heads.1.blocks.1.b1 f32 64
drafter.heads.1.blocks.2.w1 f32 64 64
drafter.heads.1.blocks.2.b1 f32 64
drafter.heads.2.blocks.0.w1 f32 64 64
drafter.heads.2.blocks.0.b1 f32 64
drafter.heads.2.blocks.1.w1 f32 64 64
drafter.heads.2.blocks.1.b1 f32 64
drafter.heads.2.blocks.2.w1 f32 64 64
drafter.heads.2.blocks.2.b1 f32 64
EOF
    if cmp -s "$tmp/v0.want" "$tmp/v0.kv"; then
        pass "--heads 2 --blocks 3 --width 0: 2 x 3 blocks of W1 [64 x 64] and b1, no W2"
    else
        fail "--heads 2 --blocks 3 --width 0: 2 x 3 blocks of W1 [64 x 64] and b1, no W2"
        diff "$tmp/v0.want" "$tmp/v0.kv" | diag || true
    fi
else
    skip "--heads 2 --blocks 3 --width 0: the tensors" "no python3 to read the GGUF file"
fi

# ------------------------------------------------------------------ -h
train help -h
is "-h: exit 0" "$rc" 0
check "-h: the usage on stdout, nothing on stderr" \
    test "$(sed -n 1p "$tmp/help.out" | cut -c1-20)" = "usage: bitlens train" -a ! -s "$tmp/help.err"
check "-h: then the option list (--valid-every among them)" \
    grep -q -- '--valid-every N' "$tmp/help.out"

# ------------------------------------------------------------------ errors
# err DESC PATTERN ARGS...: bitlens train ARGS exits 2 with PATTERN on
# stderr, nothing on stdout, no drafter $tmp/e.gguf left
err() {
    e_desc=$1 e_pat=$2
    shift 2
    rm -f "$tmp/e.gguf"
    rc=0
    "$BL_BIN" train "$@" >"$tmp/e.out" 2>"$tmp/e.err" || rc=$?
    if [ "$rc" -eq 2 ] && grep -q -- "$e_pat" "$tmp/e.err" && [ ! -s "$tmp/e.out" ] && [ ! -e "$tmp/e.gguf" ] && no_tmp; then
        pass "error: $e_desc: exit 2, '$e_pat'"
    else
        fail "error: $e_desc: exit 2, '$e_pat'"
        diag "exit $rc" <"$tmp/e.err"
    fi
}
O=$tmp/e.gguf
printf 'Once upon a time there was a dog.\nIt ran.\n \t\r\n' >"$tmp/one.txt"
printf '\n \n\t\n' >"$tmp/blank.txt"
err "no --drafter" "--drafter medusa|eagle (or --tokenizer) is required" -m "$M" -z "$Z" --corpus "$T" -o "$O"
err "-z without -m" "a tokenizer goes with a llama2.c model given with -m" --drafter medusa -z "$Z" --corpus "$T" -o "$O"
err "no --corpus" "--corpus TEXT is required" --drafter medusa -m "$M" -z "$Z" -o "$O"
err "--drafter hydra" "--drafter 'hydra': medusa or eagle" --drafter hydra -m "$M" -z "$Z" --corpus "$T" -o "$O"
err "--drafter eagle --blocks 2" "an EAGLE-style drafter is one layer: 2 blocks" \
    --drafter eagle -m "$M" -z "$Z" --corpus "$T" --blocks 2 -o "$O"
err "--heads 0" "--heads 0: out of range \[1, 16\]" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --heads 0 -o "$O"
err "--heads 17" "--heads 17: out of range \[1, 16\]" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --heads 17 -o "$O"
err "--blocks 65" "--blocks 65: out of range \[1, 64\]" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --blocks 65 -o "$O"
err "--targets bogus" "--targets 'bogus': self or corpus" \
    --drafter medusa -m "$M" -z "$Z" --corpus "$T" --targets bogus -o "$O"
err "--width -1" "--width -1: out of range \[0, 65536\]" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --width -1 -o "$O"
err "--lr 0" "--lr 0: out of range" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --lr 0 -o "$O"
err "--steps x" "--steps 'x': not an integer" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --steps x -o "$O"
err "--threads 0" "--threads 0: out of range" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --threads 0 -o "$O"
err "an unknown option" "unknown option '--bogus'" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --bogus -o "$O"
err "an extra argument" "unexpected argument 'extra'" --drafter medusa -m "$M" -z "$Z" --corpus "$T" -o "$O" extra
err "a corpus of one paragraph" "one.txt: 1 paragraph(s): at least 2 are needed" \
    --drafter medusa -m "$M" -z "$Z" --corpus "$tmp/one.txt" -o "$O"
err "a corpus of blank lines" "blank.txt: 0 paragraph(s)" --drafter medusa -m "$M" -z "$Z" --corpus "$tmp/blank.txt" -o "$O"
err "a corpus that does not exist" "no-such-corpus.txt: cannot open" \
    --drafter medusa -m "$M" -z "$Z" --corpus "$tmp/no-such-corpus.txt" -o "$O"
err "a model that does not exist" "no-such-model.bin" \
    --drafter medusa -m "$tmp/no-such-model.bin" -z "$Z" --corpus "$T" -o "$O"
err "--hook bogus" "no hook point 'bogus'" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --hook bogus -o "$O"
err "--valid-every 1 (every row held out)" "no training rows" \
    --drafter medusa -m "$M" -z "$Z" --corpus "$T" --prompts 4 --gen 4 --valid-every 1 -o "$O"
err "an output directory that does not exist" "cannot write in" \
    --drafter medusa -m "$M" -z "$Z" --corpus "$T" --prompts 4 --gen 4 --steps 2 -o "$tmp/no/such/dir/e.gguf"

# ------------------------------------------------------------------ an EAGLE-style drafter
rc=0
"$BL_BIN" train --drafter eagle -m "$M" -z "$Z" --corpus "$T" --prompts 30 --gen 16 --steps 40 --eval-every 20 \
    -o "$tmp/eagle.gguf" >"$tmp/eg.out" 2>"$tmp/eg.err" || rc=$?
ok_run eg "--drafter eagle: a small training"
"$BL_BIN" info "$tmp/eagle.gguf" >"$tmp/eg.info" 2>&1
check "--drafter eagle: the file is an eagle drafter of 4 heads, width 256" \
    sh -c 'grep -q "^kind: *eagle\$" "$1" && grep -q "^n_heads: *4\$" "$1" && grep -q "^width: *256\$" "$1"' sh "$tmp/eg.info"

# ------------------------------------------------------------------ bitlens info on a drafter
"$BL_BIN" info "$tmp/a.gguf" >"$tmp/info.out" 2>"$tmp/info.err"
check "info: a drafter file is described without a model (kind, heads, hook, parameters)" \
    sh -c 'grep -q "^format: *gguf v3, a drafter (bitlens train)\$" "$1" && grep -q "^kind: *medusa\$" "$1" &&
           grep -q "^n_heads: *4\$" "$1" && grep -q "^hook: *ln_final.hook_normalized\$" "$1" &&
           grep -q "^model.sha256: *[0-9a-f]\{64\}\$" "$1" && grep -q "^parameters: *132096 in 12 tensors\$" "$1"' \
    sh "$tmp/info.out"
"$BL_BIN" info --json "$tmp/a.gguf" >"$tmp/info.json" 2>/dev/null
check "info --json: a drafter object" grep -q '"type":.*"drafter"' "$tmp/info.json"

# ------------------------------------------------------------------ a BPE vocabulary (--tokenizer)
rc=0
"$BL_BIN" train --tokenizer --corpus "$T" --vocab 600 -o "$tmp/v.gguf" >"$tmp/v.out" 2>"$tmp/v.err" || rc=$?
ok_run v "--tokenizer --vocab 600: a vocabulary trained on the TinyStories head"
check "--tokenizer: the figures name 600 tokens and the bytes per token" \
    grep -q "v.gguf: 600 tokens (asked 600) from [0-9]* bytes of .* bytes per token" "$tmp/v.err"
"$BL_BIN" info "$tmp/v.gguf" >"$tmp/v.info" 2>&1
check "info: a vocabulary without a model, 600 tokens, BOS 1, EOS 2" \
    grep -q "^vocabulary: *600 tokens (llama), BOS 1, EOS 2\$" "$tmp/v.info"
# the sample line lists the pieces; joined (with U+2581 as a space) they spell the sample
sample=$(sed -n 's/^sample: *"\(.*\)" is [0-9]* tokens: \(.*\)$/\1/p' "$tmp/v.info")
pieces=$(sed -n 's/^sample: *".*" is [0-9]* tokens: \(.*\)$/\1/p' "$tmp/v.info" | tr -d ' ' | sed 's/\xe2\x96\x81/ /g; s/^ //')
check "info: the sample's pieces spell the sample ('$pieces')" [ -n "$sample" ] && [ "$pieces" = "$sample" ]
"$BL_BIN" train --tokenizer --corpus "$T" --vocab 600 -o "$tmp/v2.gguf" --threads 1 -q 2>/dev/null
check "--tokenizer: the same file on 1 thread as on the default" cmp -s "$tmp/v.gguf" "$tmp/v2.gguf"
err "--tokenizer --vocab 259" "out of range" --tokenizer --corpus "$T" --vocab 259 -o "$tmp/e.gguf"
err "--vocab without --tokenizer" "are for --tokenizer" --drafter medusa -m "$M" -z "$Z" --corpus "$T" --vocab 600 -o "$tmp/e.gguf"
err "--tokenizer with -m" "no --drafter, -m or -z" --tokenizer -m "$M" --corpus "$T" -o "$tmp/e.gguf"
err "--tokenizer without --corpus" "--corpus TEXT is required" --tokenizer -o "$tmp/e.gguf"

# ------------------------------------------------------------------ a model from scratch (--model)
small="--dim 16 --layers 1 --heads 2 --hidden 32 --ctx 64 --seq 32 --steps 60 --eval-every 30 --warmup 5 --lr 0.01"
rc=0
"$BL_BIN" train --model --corpus "$T" --vocab 400 $small -o "$tmp/m.gguf" >"$tmp/m.out" 2>"$tmp/m.err" || rc=$?
ok_run m "--model --vocab 400: a small model trained on the TinyStories head"
start=$(sed -n 's/.*held-out loss \([0-9.]*\) nats (\([0-9.]*\) at the start).*/\2/p' "$tmp/m.err")
end=$(sed -n 's/.*held-out loss \([0-9.]*\) nats (\([0-9.]*\) at the start).*/\1/p' "$tmp/m.err")
check "--model: the held-out loss falls ($start -> $end nats) from about ln 400 = 5.99" \
    awk -v s="$start" -v e="$end" 'BEGIN { exit !(s > 5.5 && s < 6.5 && e < s - 0.3) }'
"$BL_BIN" info "$tmp/m.gguf" >"$tmp/m.info" 2>&1
check "info: a llama GGUF of dim 16, 1 layer, with its 400-token vocabulary inside" \
    sh -c 'grep -q "dim 16, 1 layer," "$1" && grep -q "^vocabulary: *400 tokens (llama)" "$1"' sh "$tmp/m.info"
"$BL_BIN" generate -q -m "$tmp/m.gguf" -p "Once upon a time" -n 8 -t 0 >"$tmp/m.gen" 2>&1
check "generate runs the trained model" grep -q "^Once upon a time" "$tmp/m.gen"
"$BL_BIN" train --model --corpus "$T" --vocab 400 $small -o "$tmp/m1.gguf" --threads 1 -q 2>/dev/null
check "--model: the same file bit for bit on 1 thread as on the default" cmp -s "$tmp/m.gguf" "$tmp/m1.gguf"
"$BL_BIN" train --model --corpus "$T" -z "$tmp/v.gguf" $small -o "$tmp/mz.gguf" -q 2>/dev/null
"$BL_BIN" info "$tmp/mz.gguf" >"$tmp/mz.info" 2>&1
check "--model -z VOCAB: the vocabulary of --tokenizer (600 tokens) inside" grep -q "^vocabulary: *600 tokens" "$tmp/mz.info"
err "--model with --drafter" "no --drafter" --model --drafter medusa --corpus "$T" -o "$tmp/e.gguf"
err "--model --dim 15 --heads 2 (odd heads)" "dim" --model --corpus "$T" --vocab 300 --dim 15 --heads 2 -o "$tmp/e.gguf"
err "--dim without --model" "are for --model" --tokenizer --corpus "$T" --dim 16 -o "$tmp/e.gguf"

done_testing
