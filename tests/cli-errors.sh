#!/bin/sh
# tests/cli-errors.sh: `bitlens` on bad input.  Every case must exit with
# status 2 (never a signal: a status >= 128 is a crash), print nothing on
# stdout, and print on stderr a first line "bitlens CMD: ..." that names the
# file at fault and says what is wrong.  Broken files are made by
# tests/craft in a temporary directory; the shared test data is only read.
#
# Each case: check LABEL PATTERN... -- COMMAND...
#   PATTERN  a fixed string stderr must contain ("a|b": either one),
#            or "!text": stderr must not contain text

. "$BL_SRCDIR/tests/setup"

if [ -z "${BL_BIN:-}" ] || [ ! -x "$BL_BIN" ]; then
    echo "1..0 # SKIP BL_BIN does not name the bitlens command ('${BL_BIN:-}')"
    exit 0
fi
TD=${BL_TESTDATA:-}
CRAFT=${BL_BUILDDIR:-.}/tests/craft


# have FILE...: every file is in the test data (else say which is not)
missing=
have() {
    missing=
    for f in "$@"; do
        if [ -z "$TD" ] || [ ! -r "$TD/$f" ]; then
            missing="test data '$f' not found under BL_TESTDATA='$TD'"
            return 1
        fi
    done
    return 0
}

# crafted NAME: the file was made (else say why not)
crafted() {
    if [ -s "$tmp/$1" ]; then
        return 0
    fi
    missing="tests/craft did not make $1"
    return 1
}

# craft ARGS...: make a file with tests/craft (quietly; failures show later
# as skipped cases)
craft() {
    if [ -x "$CRAFT" ]; then
        "$CRAFT" "$@" 2>"$tmp/craft.err" || diag "craft $*: $(cat "$tmp/craft.err")"
    fi
}

check() {
    label=$1
    shift
    : >"$tmp/pats"
    while [ "$1" != "--" ]; do
        printf '%s\n' "$1" >>"$tmp/pats"
        shift
    done
    shift
    # the message prefix: "bitlens CMD: " for a command, else "bitlens: "
    case ${2:-} in
    generate | info) prefix="bitlens $2: " ;;
    *) prefix="bitlens: " ;;
    esac
    st=0
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || st=$?
    why=
    if [ "$st" -ge 128 ]; then
        why="killed by signal $((st - 128)) (exit status $st)"
    elif [ "$st" -ne 2 ]; then
        why="exit status $st, expected 2"
    fi
    if [ -s "$tmp/out" ]; then
        why="${why:+$why; }wrote $(wc -c <"$tmp/out" | tr -d ' ') bytes on stdout"
    fi
    if grep -q -e 'Sanitizer' -e 'runtime error:' "$tmp/err"; then
        why="${why:+$why; }sanitizer report on stderr"
    fi
    first=$(sed -n 1p "$tmp/err")
    case $first in
    "$prefix"?*) ;;
    *) why="${why:+$why; }the first line of stderr does not start with '$prefix'" ;;
    esac
    while IFS= read -r pat; do
        case $pat in
        !*)
            if grep -q -F -e "${pat#!}" "$tmp/err"; then
                why="${why:+$why; }stderr says '${pat#!}'"
            fi
            ;;
        *)
            printf '%s\n' "$pat" | tr '|' '\n' >"$tmp/alts"
            if ! grep -q -F -f "$tmp/alts" "$tmp/err"; then
                why="${why:+$why; }stderr does not say '$pat'"
            fi
            ;;
        esac
    done <"$tmp/pats"
    if [ -z "$why" ]; then
        pass "$label"
    else
        fail "$label"
        diag "$why" "command: $(printf '%.300s' "$*")" "stderr:"
        sed -n '1,5s/^/#   /p' "$tmp/err"
        if [ -s "$tmp/out" ]; then
            diag "stdout:"
            sed -n '1,3s/^/#   /p' "$tmp/out"
        fi
    fi
}

# check_ok LABEL PATTERN -- COMMAND...: exit 0, stdout contains PATTERN
check_ok() {
    label=$1
    pat=$2
    shift 3
    st=0
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || st=$?
    if [ "$st" -eq 0 ] && grep -q -F -e "$pat" "$tmp/out"; then
        pass "$label"
    else
        fail "$label"
        diag "exit status $st; stdout should say '$pat'" "command: $*" "stderr:"
        sed -n '1,5s/^/#   /p' "$tmp/err"
    fi
}

B=$BL_BIN
M=$TD/models
BIN=$M/stories260K.bin
TOK=$M/tok512.bin
GGUF=$M/stories260K.gguf
AID=$M/aidreams260K.bin
AIDTOK=$M/aidreams_tok512.bin

# ---------------------------------------------------------------- usage
check "unknown command" "'frobnicate'" "not a bitlens command" -- "$B" frobnicate
if have models/stories260K.gguf; then
    check "generate: unknown option names it" "--frobnicate" -- "$B" generate --frobnicate -m "$GGUF"
    check "generate: -m without its argument is not an 'unknown option'" \
        "-m|'m'" "!unknown option" -- "$B" generate -m
    check "generate -n abc" "-n" "'abc'" "not an integer" -- "$B" generate -m "$GGUF" -n abc
    check "generate -t -1" "-t" "-1" "out of range" -- "$B" generate -m "$GGUF" -t -1
    check "generate --top-p 2" "--top-p" "out of range" -- "$B" generate -m "$GGUF" --top-p 2
    check "generate -c 0" "-c" "out of range" -- "$B" generate -m "$GGUF" -c 0
    check "generate --threads x" "--threads" "'x'" -- "$B" generate -m "$GGUF" --threads x
    check "generate: an extra argument" "'stray'" -- "$B" generate -m "$GGUF" stray
else
    for c in 1 2 3 4 5 6 7 8; do skip "$missing"; done
fi
check "generate: -z without -m" "-z x.bin" "given with -m" -- "$B" generate -z x.bin
check "info: unknown option names it" "--frobnicate" -- "$B" info --frobnicate x.gguf
# no -m (no FILE for info) and no default model: where it looked, and -m
datadir=$BITLENS_DATADIR
BITLENS_DATADIR=$tmp/nosuchdir
check "generate without -m nor a default model" "no default model" "nosuchdir/default-model.gguf" "-m MODEL" -- "$B" generate
check "info without a file nor a default model" "no default model" "nosuchdir/default-model.gguf" -- "$B" info
BITLENS_DATADIR=$datadir
check "info with two files" "'b.gguf'" -- "$B" info a.gguf b.gguf

# ---------------------------------------------------------------- files
check "generate: missing model file" "$tmp/no-such.bin" "cannot open" -- \
    "$B" generate -m "$tmp/no-such.bin"
check "info: missing model file" "$tmp/no-such.gguf" "cannot open" -- "$B" info "$tmp/no-such.gguf"
check "info: a directory" "$tmp" "directory" -- "$B" info "$tmp"
: >"$tmp/empty.bin"
check "info: empty file" "$tmp/empty.bin" "too short" -- "$B" info "$tmp/empty.bin"
check "generate: empty file" "$tmp/empty.bin" "too short" -- "$B" generate -m "$tmp/empty.bin"

if [ -x "$CRAFT" ]; then
    craft badmagic "$tmp/bad.bin"
    craft gguf-q4k "$tmp/q4k.gguf"
    if have models/stories260K.bin models/tok512.bin models/stories260K.gguf; then
        craft truncate "$BIN" "$tmp/cut.bin" 500000
        craft truncate "$BIN" "$tmp/cut-rope.bin" -1
        craft truncate "$GGUF" "$tmp/cut.gguf" 600000
        craft truncate "$GGUF" "$tmp/cut-header.gguf" 1000
        craft gguf-offset "$GGUF" "$tmp/offset.gguf" token_embd.weight
        craft gguf-vocab "$GGUF" "$tmp/vocab.gguf" 12
        craft gguf-arch "$GGUF" "$tmp/mamba.gguf" mamba
        craft gguf-set "$GGUF" "$tmp/hidden.gguf" llama.feed_forward_length=171
        craft llama2c-v2 "$BIN" "$tmp/v2.bin"
        craft tok-head "$TOK" "$tmp/tok300.bin" 300
        craft tok-cut "$TOK" "$tmp/tokcut.bin"
    fi
fi
if [ ! -x "$CRAFT" ]; then
    skipwhy="tests/craft not built ('$CRAFT')"
fi

# both LABEL FILE PATTERN...: generate (a .bin with -z tok512.bin) and info
# on the crafted FILE
both() {
    b_label=$1
    b_file=$2
    shift 2
    if crafted "$b_file"; then
        case $b_file in
        *.bin) check "generate: $b_label" "$tmp/$b_file" "$@" -- \
            "$B" generate -m "$tmp/$b_file" -z "$TOK" ;;
        *) check "generate: $b_label" "$tmp/$b_file" "$@" -- "$B" generate -m "$tmp/$b_file" ;;
        esac
        check "info: $b_label" "$tmp/$b_file" "$@" -- "$B" info "$tmp/$b_file"
    else
        skip "${skipwhy:-$missing}"
        skip "${skipwhy:-$missing}"
    fi
}

both "wrong magic (a text file)" bad.bin "not a model file"
if have models/stories260K.bin models/tok512.bin models/stories260K.gguf; then
    both "truncated .bin (500000 bytes)" cut.bin "truncated" "past the end"
    both "truncated .bin (one byte short)" cut-rope.bin "truncated"
    both "truncated .gguf (600000 bytes)" cut.gguf "past the end|truncated"
    both "truncated .gguf (in the metadata)" cut-header.gguf "truncated|can hold"
    both "tensor offset past the end" offset.gguf "token_embd.weight" "past the end"
    both "vocabulary of 500 against an embedding of 512 rows" vocab.gguf "500" "512"
    both "architecture mamba" mamba.gguf "'mamba'" "not supported"
    both "feed_forward_length 171 against [64, 172] tensors" hidden.gguf "blk.0.ffn_gate.weight" "171"
    both "llama2.c version 2" v2.bin "version 2" "not supported"
else
    for c in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18; do skip "$missing"; done
fi

# a q4_K matrix: generate refuses it, info describes it
if crafted q4k.gguf; then
    check "generate: unsupported tensor type q4_K" "$tmp/q4k.gguf" "blk.0.ffn_down.weight" "q4_K" -- \
        "$B" generate -m "$tmp/q4k.gguf" -p a
    check_ok "info: describes the q4_K tensor" "q4_K" -- "$B" info "$tmp/q4k.gguf"
else
    skip "${skipwhy:-$missing}"
    skip "${skipwhy:-$missing}"
fi

# ---------------------------------------------------------------- tokenizers
if have models/stories260K.bin models/tok512.bin && crafted tok300.bin; then
    check "generate: tokenizer.bin for another model" "$tmp/tok300.bin" "300" "512" -- \
        "$B" generate -m "$BIN" -z "$tmp/tok300.bin"
    check "info: tokenizer.bin for another model" "$tmp/tok300.bin" "300" "512" -- \
        "$B" info -z "$tmp/tok300.bin" "$BIN"
    check "generate: tokenizer.bin with its last token cut short" "$tmp/tokcut.bin" "token 511" -- \
        "$B" generate -m "$BIN" -z "$tmp/tokcut.bin"
    check "generate: missing tokenizer file" "$tmp/no-such-tok.bin" "cannot open" -- \
        "$B" generate -m "$BIN" -z "$tmp/no-such-tok.bin"
    # llama2.c's default: tokenizer.bin beside the model
    mkdir "$tmp/beside" "$tmp/alone"
    ln -s "$BIN" "$tmp/beside/model.bin"
    ln -s "$BIN" "$tmp/alone/model.bin"
    cp "$tmp/tok300.bin" "$tmp/beside/tokenizer.bin"
    check "generate: the tokenizer.bin beside the model is for another model" \
        "$tmp/beside/tokenizer.bin" "300" -- "$B" generate -m "$tmp/beside/model.bin"
    check "info: the tokenizer.bin beside the model is for another model" \
        "$tmp/beside/tokenizer.bin" "300" -- "$B" info "$tmp/beside/model.bin"
    check "generate: a .bin without -z and no tokenizer.bin beside it" \
        "$tmp/alone/model.bin" "-z" -- "$B" generate -m "$tmp/alone/model.bin"
    check_ok "info: a .bin without a tokenizer is still described" "no tokenizer" -- \
        "$B" info "$tmp/alone/model.bin"
else
    for c in 1 2 3 4 5 6 7 8; do skip "${skipwhy:-$missing}"; done
fi

# ---------------------------------------------------------------- context
if have models/stories260K.bin models/tok512.bin; then
    check "generate: prompt longer than -c 4" "longer than the context" "-c 4" -- \
        "$B" generate -m "$BIN" -z "$TOK" -c 4 -p "Once upon a time there was a girl"
else
    skip "$missing"
fi
if have models/aidreams260K.bin models/aidreams_tok512.bin; then
    long=
    i=0
    while [ $i -lt 40 ]; do
        long="$long the robot dreamed of electric stars."
        i=$((i + 1))
    done
    check "generate: prompt longer than the model's 128 positions (no -c)" "$AID" "128" "context" -- \
        "$B" generate -m "$AID" -z "$AIDTOK" -p "$long"
else
    skip "$missing"
fi

done_testing
