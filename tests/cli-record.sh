#!/bin/sh
# bitlens record: every option of `bitlens record -h` changes the trace as
# it says (read back with a small python3 reader of bitlens-trace(5):
# header JSON, chunk CRCs, zlib, record headers), nothing on stdout,
# progress only when stderr is a terminal, `-o -` to standard output,
# --force, and every error exits 2 with a message and leaves no file.
. "$BL_SRCDIR/tests/setup"

for f in models/stories260K.bin models/tok512.bin models/stories260K.gguf golden/stories260K/tokens.json; do
    [ -r "${BL_TESTDATA:-/nonexistent}/$f" ] || skip_all "test data '$f' not found under BL_TESTDATA='${BL_TESTDATA:-}'"
done
M=$BL_TESTDATA/models/stories260K.bin
Z=$BL_TESTDATA/models/tok512.bin
G=$BL_TESTDATA/models/stories260K.gguf
SHA=b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696
P="Once upon a time"

py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import json, zlib, struct' 2>/dev/null; then
        py=$p
        break
    fi
done

# tq TRACE EXPR: EXPR evaluated over the trace (python3): h is the header,
# chunks the [(type, payload)] list, complete whether index and trailer
# closed it; helpers below.  '-' reads standard input.
cat >"$tmp/tq.py" <<'EOF'
import hashlib, json, struct, sys, zlib
path, expr = sys.argv[1], sys.argv[2]
d = sys.stdin.buffer.read() if path == '-' else open(path, 'rb').read()
assert d[:8] == b'BLTRACE\n', 'magic'
ver, hl = struct.unpack_from('<II', d, 8)
assert ver == 1
hdr = d[16:16 + hl]
assert zlib.crc32(hdr) == struct.unpack_from('<I', d, 16 + hl)[0], 'header crc'
h = json.loads(hdr)
at, chunks, complete = 16 + hl + 4, [], False
while at + 20 <= len(d):
    typ, fl, st, raw, crc = struct.unpack_from('<4sIIII', d, at)
    pay = d[at + 20:at + 20 + st]
    if len(pay) < st:
        break
    assert zlib.crc32(pay, zlib.crc32(d[at:at + 16])) == crc, 'chunk crc at %d' % at
    if typ == b'INDX':
        end = at + 20 + st
        complete = (len(d) == end + 16 and d[end + 8:end + 16] == b'BLTREND\n'
                    and struct.unpack_from('<Q', d, end)[0] == at)
        break
    if fl & 1:
        pay = zlib.decompress(pay)
    assert len(pay) == raw
    chunks.append((typ.decode(), pay))
    at += 20 + st

def u32(b, o): return struct.unpack_from('<I', b, o)[0]
def u64(b, o): return struct.unpack_from('<Q', b, o)[0]
def count(t): return sum(1 for c in chunks if c[0] == t)
def recs(t, p=None): return [b for c, b in chunks if c == t and (p is None or u32(b, 0) == p)]
def toks(p=0):
    out = []
    for b in recs('TOKS', p):
        n = u64(b, 16)
        out += list(struct.unpack_from('<%di' % n, b, 24))
    return ' '.join(map(str, out))
def sampled(p=0):
    out = []
    for b in recs('TOKS', p):
        n = u64(b, 16)
        out += list(b[24 + 4 * n:24 + 5 * n])
    return ''.join(map(str, out))
def stat_rows(p=0): return sum(u64(b, 16) for b in recs('STAT', p))
def stat_k(): return ' '.join(sorted({str(u32(b, 4)) for b in recs('STAT')}))
def stat_digest(): return hashlib.sha256(b''.join(recs('STAT'))).hexdigest()
def drft_rows(p=0): return sum(u64(b, 16) for b in recs('DRFT', p))
def drft_k(): return ' '.join(sorted({str(u32(b, 4)) for b in recs('DRFT')}))
def drft(p=0):
    out = []
    for b in recs('DRFT', p):
        k, n = u32(b, 4), u64(b, 16)
        out += [struct.unpack_from('<iffi', b, 24 + 16 * i) for i in range(k * n)]
    return out
def hook_kinds(): return ' '.join('%d/%d/%s' % (x['kind'], x['layer'], x.get('head', '-')) for x in h['recorded']['hooks'])
def tens_dtypes(): return ' '.join(sorted({str(u32(b, 8)) for b in recs('TENS')}))
def tens_hooks(): return ' '.join(map(str, sorted({u32(b, 4) for b in recs('TENS')})))
def hooks(): return ','.join(x['name'] for x in h['recorded']['hooks'])
def prompts(): return '|'.join(x['text'] for x in h['prompts'])
def prmt(): return '|'.join(b[16 + 4 * u32(b, 4):].decode() for b in recs('PRMT'))
def digest(): return hashlib.sha256(b''.join(c.encode() + b for c, b in chunks)).hexdigest()
def has(path):
    o = h
    for k in path.split('.'):
        if isinstance(o, list):
            o = o[int(k)]
        elif k in o:
            o = o[k]
        else:
            return 'no'
    return 'yes'
def js(x): return json.dumps(x)
r = eval(expr)
print(r if not isinstance(r, bool) else int(r))
EOF

tq() { "$py" "$tmp/tq.py" "$@"; }

# qcheck DESC TRACE EXPR WANT: a test point from the trace (skipped without python3)
qcheck() {
    if [ -z "$py" ]; then
        skip "$1" "no python3 to read the trace"
        return
    fi
    q_got=$(tq "$2" "$3" 2>"$tmp/tq.err") || q_got="error: $(cat "$tmp/tq.err")"
    if [ "$q_got" = "$4" ]; then
        pass "$1"
    else
        fail "$1"
        diag "$3: got '$q_got', want '$4'"
    fi
}

# rec NAME ARGS...: record into $tmp/NAME.blt, stdout to NAME.out, stderr to
# NAME.err, the exit status in $rc
rec() {
    r_name=$1
    shift
    rc=0
    "$BL_BIN" record "$@" -o "$tmp/$r_name.blt" >"$tmp/$r_name.out" 2>"$tmp/$r_name.err" || rc=$?
}

# quiet NAME: exit 0, nothing on stdout
quiet() {
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/$1.out" ] && [ -s "$tmp/$1.blt" ]; then
        pass "$1: exit 0, a trace, nothing on stdout"
    else
        fail "$1: exit 0, a trace, nothing on stdout"
        diag "exit $rc" <"$tmp/$1.err"
    fi
}

# ---- -h: every option it lists is exercised in this file
"$BL_BIN" record -h >"$tmp/help" 2>"$tmp/help.err"
"$BL_BIN" record --help >"$tmp/help2" 2>&1
check "--help: the same text" cmp -s "$tmp/help" "$tmp/help2"
check "-h: usage on stdout, exit 0" grep -q '^usage: bitlens record' "$tmp/help"
missing=
for o in $(grep -o -- '--[a-z][a-z-]*' "$tmp/help" | sort -u) $(grep -o -- '^ *-[a-zA-Z],' "$tmp/help" | tr -d ' ,'); do
    grep -q -- "$o[ =]" "$0" || grep -q -- "$o\$" "$0" || missing="$missing $o"
done
if [ -z "$missing" ]; then pass "every option of -h is exercised by this test"; else fail "options of -h not exercised:$missing"; fi

# ---- defaults (-m, -z, -p), no progress when stderr is not a terminal
rec def -m "$M" -z "$Z" -p "$P"
quiet def
check "def: a one-line summary on stderr" grep -q '^bitlens record: 1 prompt, 5 positions' "$tmp/def.err"
if grep -q "$(printf '\r')" "$tmp/def.err" || grep -q 'prompt 1/1' "$tmp/def.err"; then
    fail "def: no progress when stderr is not a terminal"
else
    pass "def: no progress when stderr is not a terminal"
fi
qcheck "def: complete, one prompt" "$tmp/def.blt" 'complete and count("PRMT") == 1' 1
qcheck "-p: the prompt in the header and its PRMT" "$tmp/def.blt" 'prompts() + "/" + prmt()' "$P/$P"
qcheck "-m: the model, its sha256, its format" "$tmp/def.blt" \
    'h["model"]["path"].endswith("stories260K.bin") and h["model"]["files"][0]["sha256"] == "'$SHA'" and h["model"]["format"].startswith("llama2.c")' 1
qcheck "-z: the tokenizer's vocabulary (512, BOS 1)" "$tmp/def.blt" 'h["model"]["vocabulary"]["size"] == 512 and toks() == "1 403 407 261 378"' 1
qcheck "default --hooks: blocks.*.hook_resid_post" "$tmp/def.blt" 'hooks() + " " + tens_hooks()' \
    "blocks.0.hook_resid_post,blocks.1.hook_resid_post,blocks.2.hook_resid_post,blocks.3.hook_resid_post,blocks.4.hook_resid_post 0 1 2 3 4"
qcheck "default --dtype: f16 (TENS dtype 1)" "$tmp/def.blt" 'h["recorded"]["dtype"] + " " + tens_dtypes()' "f16 1"
qcheck "default -n 0: the prompt only, every position evaluated" "$tmp/def.blt" \
    'str(h["sampling"]["n_gen"]) + " " + sampled() + " " + str(stat_rows())' "0 00000 5"
qcheck "defaults: T 1, top-p 0.9, top-k 0, seed 42, keep top 10, lens" "$tmp/def.blt" \
    'js([h["sampling"][k] for k in ("temperature", "top_p", "top_k", "seed")] + [h["recorded"]["top_k"], h["recorded"]["lens"], stat_k(), count("LENS")])' \
    '[1, 0.9, 0, 42, 10, true, "10", 1]'
qcheck "the command line in the header" "$tmp/def.blt" 'h["command"].startswith("bitlens record -m ")' 1

# ---- -n, -t, --top-k, --top-p, --seed
rec n10 -m "$M" -z "$Z" -p "$P" -n 10 -t 0
quiet n10
qcheck "-n 10: 15 tokens, the 10 generated flagged sampled, 14 positions" "$tmp/n10.blt" \
    'str(h["sampling"]["n_gen"]) + " " + sampled() + " " + str(stat_rows())' "10 000001111111111 14"
qcheck "-t 0: greedy, the golden tokens" "$tmp/n10.blt" \
    'str(h["sampling"]["temperature"]) + " " + toks()' "0 1 403 407 261 378 432 383 286 261 376 298 315 421 395 317"
rec k1 -m "$M" -z "$Z" -p "$P" -n 10 -t 1 --top-k 1
quiet k1
qcheck "--top-k 1: samples the greedy tokens; header top_k 1" "$tmp/k1.blt" 'str(h["sampling"]["top_k"]) + " " + toks()' \
    "1 1 403 407 261 378 432 383 286 261 376 298 315 421 395 317"
rec s7a -m "$M" -z "$Z" -p "$P" -n 30 --seed 7
rec s7b -m "$M" -z "$Z" -p "$P" -n 30 --seed 7
rec s8 -m "$M" -z "$Z" -p "$P" -n 30 --seed 8
qcheck "--seed 7: in the header" "$tmp/s7a.blt" 'h["sampling"]["seed"]' 7
if [ -n "$py" ]; then
    a=$(tq "$tmp/s7a.blt" 'toks()')
    b=$(tq "$tmp/s7b.blt" 'toks()')
    c=$(tq "$tmp/s8.blt" 'toks()')
    if [ "$a" = "$b" ] && [ "$a" != "$c" ]; then pass "--seed: the same seed, the same tokens; another, others"; else
        fail "--seed: the same seed, the same tokens; another, others"; fi
else
    skip "--seed: tokens" "no python3 to read the trace"
fi
rec p05 -m "$M" -z "$Z" -p "$P" -n 5 --top-p 0.5 -t 0.7
quiet p05
qcheck "--top-p 0.5 -t 0.7: in the header" "$tmp/p05.blt" 'js([h["sampling"]["top_p"], h["sampling"]["temperature"]])' "[0.5, 0.7]"

# ---- --hooks, --dtype, --keep-top, --no-lens, --no-hash, -c, --threads
rec hk -m "$M" -z "$Z" -p "$P" --hooks 'hook_embed,blocks.1.hook_resid_post'
quiet hk
qcheck "--hooks hook_embed,blocks.1.hook_resid_post: those two points, in forward order" "$tmp/hk.blt" \
    'hooks() + " " + tens_hooks()' "hook_embed,blocks.1.hook_resid_post 0 1"
rec hn -m "$M" -z "$Z" -p "$P" --hooks none
quiet hn
qcheck "--hooks none: no hook, no TENS record" "$tmp/hn.blt" 'str(len(h["recorded"]["hooks"])) + " " + str(count("TENS"))' "0 0"
rec d32 -m "$M" -z "$Z" -p "$P" --dtype f32
quiet d32
qcheck "--dtype f32: header and TENS dtype 0" "$tmp/d32.blt" 'h["recorded"]["dtype"] + " " + tens_dtypes()' "f32 0"
rec dbf -m "$M" -z "$Z" -p "$P" --dtype bf16
qcheck "--dtype bf16: header and TENS dtype 30" "$tmp/dbf.blt" 'h["recorded"]["dtype"] + " " + tens_dtypes()' "bf16 30"
rec dfh -m "$M" -z "$Z" -p "$P" --dtype f16
qcheck "--dtype f16: header and TENS dtype 1" "$tmp/dfh.blt" 'h["recorded"]["dtype"] + " " + tens_dtypes()' "f16 1"
rec kt -m "$M" -z "$Z" -p "$P" --keep-top 3
qcheck "--keep-top 3: header and STAT k 3" "$tmp/kt.blt" 'str(h["recorded"]["top_k"]) + " " + stat_k()' "3 3"
rec kt0 -m "$M" -z "$Z" -p "$P" --keep-top 0
qcheck "--keep-top 0: header and STAT k 0" "$tmp/kt0.blt" 'str(h["recorded"]["top_k"]) + " " + stat_k()' "0 0"
rec nl -m "$M" -z "$Z" -p "$P" --no-lens
quiet nl
qcheck "--no-lens: lens false, no LENS record" "$tmp/nl.blt" 'str(h["recorded"]["lens"]) + " " + str(count("LENS"))' "False 0"
rec nh -m "$M" -z "$Z" -p "$P" --no-hash
quiet nh
qcheck "--no-hash: no sha256 in the header (there is one by default)" "$tmp/nh.blt" \
    'has("model.files.0.sha256") + " " + has("model.files.0.path")' "no yes"
rec c8 -m "$M" -z "$Z" -p "$P" -n 20 -c 8 -t 0
quiet c8
qcheck "-c 8 -n 20: context 8, generation stops there (9 tokens, 8 positions)" "$tmp/c8.blt" \
    'str(h["recorded"]["n_ctx"]) + " " + str(len(toks().split())) + " " + str(stat_rows())' "8 9 8"
rec th1 -m "$M" -z "$Z" -p "$P" -n 8 --threads 1
rec th2 -m "$M" -z "$Z" -p "$P" -n 8 --threads 2
quiet th2
if [ -n "$py" ]; then
    a=$(tq "$tmp/th1.blt" 'digest()')
    b=$(tq "$tmp/th2.blt" 'digest()')
    if [ -n "$a" ] && [ "$a" = "$b" ]; then pass "--threads 1 and --threads 2: the same records, bit for bit"; else
        fail "--threads 1 and --threads 2: the same records, bit for bit"; fi
else
    skip "--threads" "no python3 to read the trace"
fi

# ---- -f and --prompts, -f -, a GGUF model without -z, long options
printf 'Once upon a time\n\nLily went\r\nThe sun\n' >"$tmp/prompts.txt"
rec f3 -m "$M" -z "$Z" -f "$tmp/prompts.txt"
quiet f3
qcheck "-f: one prompt per non-empty line (CR stripped)" "$tmp/f3.blt" 'prompts() + "/" + prmt() + "/" + str(count("PRMT"))' \
    "Once upon a time|Lily went|The sun/Once upon a time|Lily went|The sun/3"
rc=0
"$BL_BIN" record -m "$M" -z "$Z" -f - -o "$tmp/fstdin.blt" <"$tmp/prompts.txt" >"$tmp/fstdin.out" 2>"$tmp/fstdin.err" || rc=$?
quiet fstdin
qcheck "-f -: the prompts from standard input" "$tmp/fstdin.blt" 'prompts()' "Once upon a time|Lily went|The sun"
rc=0
"$BL_BIN" record --model "$G" --prompt "$P" --tokens 3 --temperature 0 --output "$tmp/long.blt" --ctx 16 \
    >"$tmp/long.out" 2>"$tmp/long.err" || rc=$?
quiet long
qcheck "--model GGUF (its own vocabulary, no -z), --prompt, --tokens, --temperature, --ctx, --output" "$tmp/long.blt" \
    'h["model"]["format"].startswith("gguf") and toks() == "1 403 407 261 378 432 383 286" and h["recorded"]["n_ctx"] == 8' 1
rc=0
"$BL_BIN" record -m "$M" --tokenizer "$Z" --prompts "$tmp/prompts.txt" -o "$tmp/longf.blt" >"$tmp/longf.out" 2>&1 || rc=$?
qcheck "--tokenizer, --prompts" "$tmp/longf.blt" 'count("PRMT")' 3

# ---- -q, -v, --quiet, --verbose
rec q -m "$M" -z "$Z" -p "$P" -q
quiet q
check "-q: nothing on stderr" test ! -s "$tmp/q.err"
rec q2 -m "$M" -z "$Z" -p "$P" --quiet
check "--quiet: nothing on stderr" test ! -s "$tmp/q2.err"
rec v -m "$M" -z "$Z" -p "$P" -v
quiet v
check "-v: the hook points stored, on stderr" grep -q "hooks 'blocks.\*.hook_resid_post', f16" "$tmp/v.err"
rec v2 -m "$M" -z "$Z" -p "$P" --verbose --no-lens
check "--verbose: says lens off" grep -q "lens off" "$tmp/v2.err"

# ---- -o -: the trace on standard output; default output bitlens.blt
mkdir "$tmp/cwd"
rc=0
(cd "$tmp/cwd" && "$BL_BIN" record -m "$M" -z "$Z" -p "$P" -o - >"$tmp/stdout.blt" 2>"$tmp/stdout.err") || rc=$?
check "-o -: exit 0, the trace on stdout, no file written" test "$rc" -eq 0 -a -s "$tmp/stdout.blt" -a -z "$(ls "$tmp/cwd")"
check "-o -: the summary names standard output" grep -q 'written to standard output' "$tmp/stdout.err"
qcheck "-o -: the stream reads back complete" - 'complete and count("PRMT") == 1' 1 <"$tmp/stdout.blt"
rc=0
(cd "$tmp/cwd" && "$BL_BIN" record -m "$M" -z "$Z" -p "$P" -q >"$tmp/cwd.out" 2>&1) || rc=$?
check "no -o: bitlens.blt in the current directory" test "$rc" -eq 0 -a -s "$tmp/cwd/bitlens.blt" -a ! -s "$tmp/cwd.out"

# ---- --force
cp "$tmp/def.blt" "$tmp/keep.blt"
rc=0
"$BL_BIN" record -m "$M" -z "$Z" -p "Lily" -o "$tmp/def.blt" >"$tmp/nf.out" 2>"$tmp/nf.err" || rc=$?
check "an existing trace without --force: exit 2" test "$rc" -eq 2
check "an existing trace without --force: says it exists" grep -q 'exists' "$tmp/nf.err"
check "an existing trace without --force: left as it was" cmp -s "$tmp/def.blt" "$tmp/keep.blt"
rc=0
"$BL_BIN" record -m "$M" -z "$Z" -p "Lily" -o "$tmp/def.blt" --force >"$tmp/ff.out" 2>"$tmp/ff.err" || rc=$?
check "--force: exit 0, nothing on stdout" test "$rc" -eq 0 -a ! -s "$tmp/ff.out"
qcheck "--force: the trace is replaced" "$tmp/def.blt" 'prompts()' "Lily"
check "no temporary file is left in the output directory" test -z "$(ls "$tmp" | grep '\.tmp\.')"

# ---- progress only when stderr is a terminal
if command -v script >/dev/null 2>&1 && script -qec 'true' /dev/null </dev/null >/dev/null 2>&1; then
    script -qec "'$BL_BIN' record -m '$M' -z '$Z' -f '$tmp/prompts.txt' -n 20 -o '$tmp/tty.blt' >'$tmp/tty.out'" \
        /dev/null </dev/null >"$tmp/tty.log" 2>&1 || true
    check "a terminal on stderr: progress ('prompt N/3, ... positions')" grep -q 'prompt [0-9]/3, [0-9]* positions' "$tmp/tty.log"
    check "a terminal on stderr: nothing on stdout" test -s "$tmp/tty.blt" -a ! -s "$tmp/tty.out"
    script -qec "'$BL_BIN' record -q -m '$M' -z '$Z' -p '$P' -o '$tmp/ttyq.blt' >'$tmp/ttyq.out'" \
        /dev/null </dev/null >"$tmp/ttyq.log" 2>&1 || true
    check "a terminal on stderr with -q: no progress, nothing at all" test -s "$tmp/ttyq.blt" -a ! -s "$tmp/ttyq.log"
else
    skip "progress on a terminal" "no working script(1) to give the command a terminal"
    skip "a terminal: nothing on stdout" "no working script(1)"
    skip "a terminal with -q" "no working script(1)"
fi

# ---- --drafter: a drafter trained here, on a few lines, for 20 steps
printf 'Once upon a time there was a little girl named Lily. She liked to play outside.\n\nTom had a red ball. He threw it to his dog and the dog ran fast.\n\nThe sun was hot. The cat slept under the big tree all day.\n\nSam and Mia went to the park. They saw a duck in the pond.\n' >"$tmp/corpus.txt"
D=$tmp/drafter.gguf
rc=0
"$BL_BIN" train --drafter medusa -m "$M" -z "$Z" --corpus "$tmp/corpus.txt" --gen 8 --steps 20 --heads 3 -o "$D" -q \
    >"$tmp/train.out" 2>&1 || rc=$?
check "a drafter to record with (bitlens train --drafter medusa, 3 heads)" test "$rc" -eq 0 -a -s "$D"
rec dr -m "$M" -z "$Z" -p "$P" -n 10 -t 0 --drafter "$D"
quiet dr
check "--drafter: the summary says how many positions were drafted from" grep -q 'drafted from 14 positions' "$tmp/dr.err"
qcheck "--drafter: recorded.drafter names it (path, 3 heads, medusa, its hook, a sha256)" "$tmp/dr.blt" \
    'js([h["recorded"]["drafter"][k] for k in ("path", "n_heads", "kind", "hook")]) + " " + str(len(h["recorded"]["drafter"]["sha256"]))' \
    "[\"$D\", 3, \"medusa\", \"ln_final.hook_normalized\"] 64"
qcheck "--drafter without --hooks: the default points and each head's hook_hidden (kind 64, layer -1, head J)" "$tmp/dr.blt" \
    'hooks() + " " + hook_kinds() + " " + tens_hooks()' \
    "blocks.0.hook_resid_post,blocks.1.hook_resid_post,blocks.2.hook_resid_post,blocks.3.hook_resid_post,blocks.4.hook_resid_post,drafter.heads.1.hook_hidden,drafter.heads.2.hook_hidden,drafter.heads.3.hook_hidden 18/0/- 18/1/- 18/2/- 18/3/- 18/4/- 64/-1/1 64/-1/2 64/-1/3 0 1 2 3 4 5 6 7"
qcheck "--drafter: a DRFT row of 3 heads at every position with statistics" "$tmp/dr.blt" \
    'drft_k() + " " + str(drft_rows()) + " " + str(stat_rows())' "3 14 14"
qcheck "--drafter: drafts in the vocabulary, ranks known up to the last token, then -1" "$tmp/dr.blt" \
    'all(0 <= r[0] < 512 and r[1] >= 0 for r in drft()) and [r[3] >= 0 for r in drft()][-6:] == [True, False, False, False, False, False]' 1
qcheck "--drafter: the same tokens and statistics as without it (-n 10 -t 0)" "$tmp/dr.blt" \
    'toks() + " " + stat_digest()' "$(tq "$tmp/n10.blt" 'toks() + " " + stat_digest()' 2>/dev/null || echo none)"
rec drl -m "$M" -z "$Z" -p "$P" -n 4 --drafter "$D" --hooks 'drafter.heads.2.hook_logits' --dtype f32
qcheck "--drafter --hooks drafter.heads.2.hook_logits: that point alone, 512 wide (kind 65)" "$tmp/drl.blt" \
    'hooks() + " " + hook_kinds() + " " + str(h["recorded"]["hooks"][0]["width"])' "drafter.heads.2.hook_logits 65/-1/2 512"
rec drn -m "$M" -z "$Z" -p "$P" --drafter "$D" --hooks none --no-hash
qcheck "--drafter --hooks none: no TENS, the DRFT rows; --no-hash: no sha256 of the drafter" "$tmp/drn.blt" \
    'str(count("TENS")) + " " + str(drft_rows()) + " " + str(h["recorded"]["drafter"]["sha256"])' "0 5 None"
qcheck "no --drafter: recorded.drafter is null, no DRFT record" "$tmp/def.blt" \
    'str(h["recorded"]["drafter"]) + " " + str(count("DRFT"))' "None 0"
rec drv -m "$M" -z "$Z" -p "$P" --drafter "$D" -v
check "--drafter -v: names the drafter, its heads and hook" grep -q "drafter $D: 3 heads on ln_final.hook_normalized" "$tmp/drv.err"
rc=0
"$BL_BIN" info "$tmp/dr.blt" >"$tmp/drinfo.out" 2>&1 || rc=$?
check "bitlens info on a trace with a drafter: exit 0, DRFT records counted" \
    sh -c "test $rc -eq 0 && grep -q '^  DRFT  *1 ' '$tmp/drinfo.out'"
rc=0
"$BL_BIN" export --format csv -o "$tmp/drexport" "$tmp/dr.blt" -q >"$tmp/drexp.out" 2>&1 || rc=$?
check "bitlens export --format csv on a trace with a drafter: exit 0 (DRFT left out)" \
    test "$rc" -eq 0 -a -s "$tmp/drexport/stats.csv"
rc=0
"$BL_BIN" train --drafter eagle -m "$M" -z "$Z" --corpus "$tmp/corpus.txt" --gen 8 --steps 5 --heads 3 \
    -o "$tmp/eagle.gguf" -q >"$tmp/traine.out" 2>&1 || rc=$?
check "an EAGLE-style drafter to record with (bitlens train --drafter eagle, 3 heads)" test "$rc" -eq 0 -a -s "$tmp/eagle.gguf"
rec dre -m "$M" -z "$Z" -p "$P" -n 10 -t 0 --drafter "$tmp/eagle.gguf"
quiet dre
qcheck "--drafter EAGLE-style: recorded.drafter kind eagle, a DRFT row of 3 heads at every position" "$tmp/dre.blt" \
    'h["recorded"]["drafter"]["kind"] + " " + drft_k() + " " + str(drft_rows()) + " " + str(stat_rows())' "eagle 3 14 14"
qcheck "--drafter EAGLE-style: drafts in the vocabulary, ranks known up to the last token, then -1" "$tmp/dre.blt" \
    'all(0 <= r[0] < 512 and r[1] >= 0 for r in drft()) and [r[3] >= 0 for r in drft()][-6:] == [True, False, False, False, False, False]' 1
qcheck "--drafter EAGLE-style: the same tokens and statistics as without it (-n 10 -t 0)" "$tmp/dre.blt" \
    'toks() + " " + stat_digest()' "$(tq "$tmp/n10.blt" 'toks() + " " + stat_digest()' 2>/dev/null || echo none)"

# ---- errors: exit 2, a message, nothing on stdout, no trace left
# err DESC PATTERN ARGS...: bitlens record ARGS exits 2 with PATTERN on stderr
err() {
    e_desc=$1 e_pat=$2
    shift 2
    rm -f "$tmp/e.blt"
    rc=0
    "$BL_BIN" record "$@" >"$tmp/e.out" 2>"$tmp/e.err" || rc=$?
    if [ "$rc" -eq 2 ] && grep -q -- "$e_pat" "$tmp/e.err" && [ ! -s "$tmp/e.out" ] && [ ! -e "$tmp/e.blt" ] &&
        [ -z "$(ls "$tmp" | grep '\.tmp\.')" ]; then
        pass "error: $e_desc: exit 2, '$e_pat'"
    else
        fail "error: $e_desc: exit 2, '$e_pat'"
        diag "exit $rc" <"$tmp/e.err"
    fi
}
O="-o $tmp/e.blt"
# shellcheck disable=SC2086
{
datadir=$BITLENS_DATADIR
BITLENS_DATADIR=$tmp/nosuchdir
err "no -m and no default model" "no default model: $tmp/nosuchdir/default-model.gguf" -p "$P" $O
BITLENS_DATADIR=$datadir
err "-z without -m" "a tokenizer goes with a llama2.c model given with -m" -z "$Z" -p "$P" $O
err "no prompt" "give the prompts" -m "$M" -z "$Z" $O
err "both -p and -f" "give the prompts" -m "$M" -z "$Z" -p "$P" -f "$tmp/prompts.txt" $O
printf '\n\n\r\n' >"$tmp/empty.txt"
err "empty prompts file" "no prompts" -m "$M" -z "$Z" -f "$tmp/empty.txt" $O
err "missing prompts file" "no-such-prompts.txt: cannot open" -m "$M" -z "$Z" -f "$tmp/no-such-prompts.txt" $O
err "bad --dtype" "--dtype 'f8'" -m "$M" -z "$Z" -p "$P" --dtype f8 $O
err "--keep-top 1001" "--keep-top" -m "$M" -z "$Z" -p "$P" --keep-top 1001 $O
err "--keep-top -1" "--keep-top" -m "$M" -z "$Z" -p "$P" --keep-top -1 $O
err "--keep-top abc" "--keep-top 'abc'" -m "$M" -z "$Z" -p "$P" --keep-top abc $O
err "hooks matching nothing" "no hook point matches 'blocks.\*.hook_nothing'" -m "$M" -z "$Z" -p "$P" --hooks 'blocks.*.hook_nothing' $O
err "a prompt longer than -c" "does not fit the context of 3" -m "$M" -z "$Z" -p "$P" -c 3 $O
err "a .bin model without its tokenizer" "tokenizer" -m "$M" -p "$P" $O
err "a missing model" "no-such-model.bin" -m "$tmp/no-such-model.bin" -z "$Z" -p "$P" $O
err "-n abc" "-n 'abc'" -m "$M" -z "$Z" -p "$P" -n abc $O
err "-t -1" "-t" -m "$M" -z "$Z" -p "$P" -t -1 $O
err "--top-p 0" "--top-p" -m "$M" -z "$Z" -p "$P" --top-p 0 $O
err "--top-p 1.5" "--top-p" -m "$M" -z "$Z" -p "$P" --top-p 1.5 $O
err "--top-k -2" "--top-k" -m "$M" -z "$Z" -p "$P" --top-k -2 $O
err "--seed x" "--seed" -m "$M" -z "$Z" -p "$P" --seed x $O
err "-c 0" "-c" -m "$M" -z "$Z" -p "$P" -c 0 $O
err "--threads 0" "--threads" -m "$M" -z "$Z" -p "$P" --threads 0 $O
err "an unknown option" "unknown option '--bogus'" -m "$M" -z "$Z" -p "$P" --bogus $O
err "an option without its argument" "needs an argument" -m "$M" -z "$Z" $O -p
err "an extra argument" "unexpected argument 'extra'" -m "$M" -z "$Z" -p "$P" extra $O
err "a missing --drafter" "no-such-drafter.gguf: cannot open" -m "$M" -z "$Z" -p "$P" --drafter "$tmp/no-such-drafter.gguf" $O
err "--drafter of a model file" "not a drafter file" -m "$M" -z "$Z" -p "$P" --drafter "$G" $O
err "--drafter without its argument" "needs an argument" -m "$M" -z "$Z" -p "$P" $O --drafter
}
A=${BL_TESTDATA}/models/aidreams260K.bin
AZ=${BL_TESTDATA}/models/aidreams_tok512.bin
if [ -r "$A" ] && [ -r "$AZ" ] && "$BL_BIN" train --drafter medusa -m "$A" -z "$AZ" --corpus "$tmp/corpus.txt" --gen 8 \
    --steps 5 -o "$tmp/other.gguf" -q >/dev/null 2>&1; then
    err "--drafter made for another model: names both" "a drafter for model 'aidreams260K.bin'.*not for 'stories260K.bin'" \
        -m "$M" -z "$Z" -p "$P" --drafter "$tmp/other.gguf" -o "$tmp/e.blt"
else
    skip "error: --drafter made for another model" "no aidreams260K test data to train one for"
fi
err "an output directory that does not exist" "cannot create" -m "$M" -z "$Z" -p "$P" -o "$tmp/no/such/dir/t.blt"
: >"$tmp/afile"
err "an output path under a regular file" "cannot create" -m "$M" -z "$Z" -p "$P" -o "$tmp/afile/t.blt"
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$tmp/ro"
    chmod 555 "$tmp/ro"
    err "an unwritable output directory" "cannot create" -m "$M" -z "$Z" -p "$P" -o "$tmp/ro/t.blt"
    chmod 755 "$tmp/ro"
else
    skip "error: an unwritable output directory" "running as root, who may write to a read-only directory"
fi

done_testing
