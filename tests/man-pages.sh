#!/bin/sh
# tests/man-pages.sh: the manual agrees with the program (TAP).
#
# For every command that `bitlens help --commands` lists:
#   - man/bitlens-NAME.1 exists, is listed in Makefile.am, and its NAME line
#     carries the summary of the command table;
#   - its SYNOPSIS reads as the usage lines of `bitlens NAME -h`, and names
#     the same set of options;
#   - its OPTIONS section has one tag per entry of the -h option list, with
#     the same options and arguments, and repeats every numeric default;
#   - bitlens.1 lists it under COMMANDS and SEE ALSO.
# And: no page without a command, bitlens.1's SYNOPSIS matches `bitlens
# help`, `bitlens --version` prints the version configure set, which every
# page footer names, every page renders without groff warnings and fits in
# 80 columns, and `bitlens help NAME` opens the page through man(1).
#
# Environment (set by `make check`): BL_BIN, the built command; BL_SRCDIR,
# the source tree; BL_BUILDDIR, the build tree.  Self-contained on purpose:
# it does not read tests/setup.

: "${BL_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
. "$BL_SRCDIR/tests/setup"
: "${BL_BUILDDIR:=.}"
: "${BL_BIN:=$BL_BUILDDIR/bin/bitlens}"
MANDIR=$BL_SRCDIR/man

if [ ! -x "$BL_BIN" ]; then
    echo "Bail out! '$BL_BIN' is not an executable (set BL_BIN)"
    exit 1
fi
if [ ! -f "$MANDIR/bitlens.1" ]; then
    echo "Bail out! no manual in '$MANDIR' (set BL_SRCDIR)"
    exit 1
fi

# ------------------------------------------------------------------ TAP
# same FILE1 FILE2: equal, else a diff as diagnostics
same() {
    if cmp -s "$1" "$2"; then
        return 0
    fi
    diff "$1" "$2" | diag || true
    return 1
}

# ------------------------------------------------------- reading roff
# roff2rec FILE: the text of a man(7) page, one record per output line:
#   SECTION <TAB> KIND <TAB> TEXT
# KIND is "tag" for the tag of a .TP/.TQ/.IP item, "th" for the .TH line
# (its arguments joined by '|'), "text" otherwise.  Font macros are joined
# as roff joins them (.B/.I with spaces, .BR and the other alternating ones
# without), .SY/.OP give the synopsis text, escapes are resolved
# (\- \fB \f(CW \f[R] \& \% \(aq \e ...).  Enough for the pages of this
# project, which keep to plain man macros.
roff2rec() {
    awk '
    function unesc(s,   t) {
        gsub(/\\\\|\\e/, "\001", s)                 # an escaped backslash
        gsub(/\\".*$/, "", s)                        # a comment
        gsub(/\\f\[[^]]*\]/, "", s)                  # fonts
        gsub(/\\f\([A-Za-z][A-Za-z]/, "", s)
        gsub(/\\f[A-Za-z0-9]/, "", s)
        gsub(/\\-/, "-", s)
        gsub(/\\\(aq/, "\047", s)
        gsub(/\\\((dq|lq|rq)/, "\"", s)
        gsub(/\\\((hy|en)/, "-", s)
        gsub(/\\\(em/, "--", s)
        gsub(/\\[&%|^c]/, "", s)                     # zero-width
        gsub(/\\[ ~0]/, " ", s)                      # spaces
        gsub(/\001/, "\\", s)
        return s
    }
    # split the arguments of a macro line (double quotes group words)
    function args(s, a,   n, i, c, cur, inq, have) {
        n = 0; cur = ""; inq = 0; have = 0
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (inq) {
                if (c == "\"") {
                    if (substr(s, i + 1, 1) == "\"") { cur = cur "\""; i++ }
                    else inq = 0
                } else cur = cur c
            } else if (c == "\"") {
                inq = 1; have = 1
            } else if (c == " " || c == "\t") {
                if (have || cur != "") { a[++n] = cur; cur = ""; have = 0 }
            } else {
                cur = cur c
                if (c == "\\" && i < length(s)) { i++; cur = cur substr(s, i, 1) }
            }
        }
        if (have || cur != "") a[++n] = cur
        return n
    }
    function emit(t,   kind) {
        kind = "text"
        if (tagnext) { kind = "tag"; tagnext = 0 }
        if (headnext) { sec = t; headnext = 0; return }
        print sec "\t" kind "\t" t
    }
    BEGIN { sec = ""; tagnext = 0; headnext = 0 }
    /^[.\047][ \t]*\\"/ { next }                    # comment line
    /^[.\047]/ {
        line = substr($0, 2)
        sub(/^[ \t]+/, "", line)
        name = line
        sub(/[ \t].*$/, "", name)
        rest = substr(line, length(name) + 1)
        sub(/^[ \t]+/, "", rest)
        delete a
        na = args(rest, a)
        for (i = 1; i <= na; i++) a[i] = unesc(a[i])
        if (name == "SH" || name == "SS") {
            if (name == "SS") { if (na) emit(a[1]); next }
            t = ""
            for (i = 1; i <= na; i++) t = t (i > 1 ? " " : "") a[i]
            if (na) sec = t; else headnext = 1
            tagnext = 0
            next
        }
        if (name == "TH") {
            t = ""
            for (i = 1; i <= na; i++) t = t (i > 1 ? "|" : "") a[i]
            print "TH\tth\t" t
            next
        }
        if (name == "TP" || name == "TQ") { tagnext = 1; next }
        if (name == "IP") { if (na) { tagnext = 1; emit(a[1]) } next }
        if (name == "B" || name == "I" || name == "SM" || name == "SB" || name == "SY") {
            t = ""
            for (i = 1; i <= na; i++) t = t (i > 1 ? " " : "") a[i]
            if (na) emit(t)
            next
        }
        if (name ~ /^(BR|RB|IR|RI|BI|IB)$/) {
            t = ""
            for (i = 1; i <= na; i++) t = t a[i]
            if (na) emit(t)
            next
        }
        if (name == "OP") {
            t = "[" a[1]
            for (i = 2; i <= na; i++) t = t " " a[i]
            emit(t "]")
            next
        }
        next                                         # layout requests
    }
    { emit(unesc($0)) }
    ' "$1"
}

# section FILE SECTION [KIND]: the text of one section, one line per record
section() {
    roff2rec "$1" | awk -F '\t' -v s="$2" -v k="${3:-}" \
        '$1 == s && (k == "" || $2 == k) { print $3 }'
}

# words: the text on stdin on one line, blanks collapsed
words() {
    { tr '\n\t' '  '; echo; } | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//'
}

# options: the options (-x, --xxx) named in the text on stdin, sorted
options() {
    tr -c 'A-Za-z0-9-' '\n' | grep -E '^--?[A-Za-z][A-Za-z0-9-]*$' | sort -u || true
}

# usage FILE: the usage lines of a -h text (from "usage:" to the first
# blank line), without the "usage:" / "or:" words
usage() {
    awk '/^usage:/ { u = 1 } u && /^[ \t]*$/ { exit } u' "$1" |
        sed -E 's/^[ \t]*(usage|or):[ \t]*//'
}

# optlist FILE: the option list of a -h text, one entry per line:
#   LEFT COLUMN <TAB> DESCRIPTION
# An entry starts with at most 8 blanks and a dash; more deeply indented lines
# continue the description of the entry above.
optlist() {
    awk '
    /^usage:/ { u = 1; next }
    u && /^[ \t]*$/ { u = 0; body = 1; next }
    !body { next }
    { match($0, /^ */); ind = RLENGTH }
    ind <= 8 && substr($0, ind + 1, 1) == "-" {
        if (e != "") print e
        l = $0
        sub(/^ +/, "", l)
        left = l; sub(/  .*$/, "", left)
        desc = substr(l, length(left) + 1); sub(/^ +/, "", desc)
        e = left "\t" desc
        next
    }
    ind > 8 && $0 !~ /^ *$/ && e != "" { l = $0; sub(/^ +/, "", l); e = e " " l; next }
    { if (e != "") print e; e = "" }
    END { if (e != "") print e }
    ' "$1"
}

# optbodies FILE: the OPTIONS section of a page, one item per line:
#   TAG <TAB> BODY
optbodies() {
    roff2rec "$1" | awk -F '\t' '
    $1 != "OPTIONS" { next }
    $2 == "tag" { if (t != "") print t "\t" b; t = $3; b = ""; next }
    t != "" { b = b " " $3 }
    END { if (t != "") print t "\t" b }
    '
}

# ------------------------------------------------------- the commands
"$BL_BIN" help --commands >"$tmp/commands"
check "'bitlens help --commands' prints name<TAB>summary lines" \
    awk -F '\t' 'NF != 2 || $1 !~ /^[a-z][a-z0-9-]*$/ || $2 == "" { bad = 1 }
                 END { exit bad || NR == 0 }' "$tmp/commands"
cut -f1 "$tmp/commands" >"$tmp/names"

if "$BL_BIN" --version >"$tmp/version" 2>&1; then
    check "'bitlens --version' prints 'bitlens X.Y.Z'" \
        grep -qE '^bitlens [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/version"
else
    fail "'bitlens --version' exits 0"
fi
version=$(sed -n 's/^bitlens //p' "$tmp/version")
if [ -f "$BL_BUILDDIR/config.h" ]; then
    conf=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$BL_BUILDDIR/config.h")
    check "'bitlens --version' prints the version configure set ($conf)" \
        test "x$version" = "x$conf"
else
    skip "'bitlens --version' prints the version configure set" "no config.h in '$BL_BUILDDIR'"
fi
"$BL_BIN" version >"$tmp/version2" 2>&1 || true
check "'bitlens version' prints the same" same "$tmp/version" "$tmp/version2"

# ------------------------------------------------------- the overview page
page=$MANDIR/bitlens.1
"$BL_BIN" help >"$tmp/help" 2>&1 || true
usage "$tmp/help" | words >"$tmp/u"
section "$page" SYNOPSIS text | words >"$tmp/s"
check "bitlens.1: SYNOPSIS reads as the usage line of 'bitlens help'" same "$tmp/u" "$tmp/s"
options <"$tmp/u" >"$tmp/uo"
options <"$tmp/s" >"$tmp/so"
check "bitlens.1: SYNOPSIS names the options of 'bitlens help' (--version, --help)" \
    same "$tmp/uo" "$tmp/so"
section "$page" OPTIONS tag | options >"$tmp/to"
check "bitlens.1: OPTIONS describes those options" same "$tmp/uo" "$tmp/to"
section "$page" COMMANDS tag | sed -n 's/^bitlens-\([a-z0-9-]*\)(1)$/\1/p' | sort >"$tmp/listed"
sort "$tmp/names" >"$tmp/names.sorted"
check "bitlens.1: COMMANDS lists every command, and no other" \
    same "$tmp/names.sorted" "$tmp/listed"
section "$page" "SEE ALSO" | words | tr -c 'A-Za-z0-9()-' '\n' |
    sed -n 's/^bitlens-\([a-z0-9-]*\)(1)$/\1/p' | sort -u >"$tmp/seealso"
check "bitlens.1: SEE ALSO names every command's page" same "$tmp/names.sorted" "$tmp/seealso"

# ------------------------------------------------------- one page per command
for page in "$MANDIR"/bitlens-*.1; do
    [ -f "$page" ] && basename "$page" .1
done | sed 's/^bitlens-//' | sort >"$tmp/pages"
check "every man/bitlens-NAME.1 belongs to a command" same "$tmp/names.sorted" "$tmp/pages"

while IFS='	' read -r name summary; do
    page=$MANDIR/bitlens-$name.1
    if [ ! -f "$page" ]; then
        fail "bitlens-$name.1 exists"
        continue
    fi
    pass "bitlens-$name.1 exists"
    check "bitlens-$name.1 is in Makefile.am's dist_man_MANS" \
        grep -q "man/bitlens-$name\\.1" "$BL_SRCDIR/Makefile.am"

    printf 'bitlens-%s - %s\n' "$name" "$summary" >"$tmp/n1"
    section "$page" NAME | words >"$tmp/n2"
    check "bitlens-$name.1: NAME carries the command-table summary" same "$tmp/n1" "$tmp/n2"

    if ! "$BL_BIN" "$name" -h >"$tmp/h" 2>"$tmp/h.err"; then
        fail "'bitlens $name -h' exits 0"
        diag <"$tmp/h.err"
        continue
    fi
    check "'bitlens $name -h' prints its usage on stdout" \
        grep -q "^usage: bitlens $name" "$tmp/h"

    usage "$tmp/h" | words >"$tmp/u"
    section "$page" SYNOPSIS text | words >"$tmp/s"
    check "bitlens-$name.1: SYNOPSIS reads as the usage of -h" same "$tmp/u" "$tmp/s"
    options <"$tmp/u" >"$tmp/uo"
    options <"$tmp/s" >"$tmp/so"
    check "bitlens-$name.1: SYNOPSIS names the options of -h's usage ($(words <"$tmp/uo"))" \
        same "$tmp/uo" "$tmp/so"

    optlist "$tmp/h" >"$tmp/ol"
    cut -f1 "$tmp/ol" | options >"$tmp/lo"
    section "$page" OPTIONS tag | options >"$tmp/to"
    check "bitlens-$name.1: OPTIONS describes every option of -h's list, and no other" \
        same "$tmp/lo" "$tmp/to"
    cut -f1 "$tmp/ol" | sed 's/  */ /g' | sort >"$tmp/lt"
    section "$page" OPTIONS tag | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//' | sort >"$tmp/tt"
    check "bitlens-$name.1: OPTIONS tags read as -h's (options and arguments)" \
        same "$tmp/lt" "$tmp/tt"

    # numeric defaults of -h ("(default 256)") appear in the page's item
    optbodies "$page" >"$tmp/ob"
    bad=0
    while IFS='	' read -r left desc; do
        d=$(printf '%s\n' "$desc" | sed -n 's/.*default:* *\(-*[0-9][0-9.]*\)[^0-9.].*/\1/p; s/.*default:* *\(-*[0-9][0-9.]*\)$/\1/p' | head -n 1)
        [ -n "$d" ] || continue
        body=$(awk -F '\t' -v t="$left" '{ g = $1; gsub(/  */, " ", g) } g == t { print $2 }' "$tmp/ob")
        if ! printf '%s\n' "$body" | tr -c '0-9.\n' ' ' | tr ' ' '\n' | sed 's/\.$//' | grep -qxF "$d"; then
            echo "# '$left': -h says default $d; the page does not say $d"
            bad=1
        fi
    done <"$tmp/ol"
    check "bitlens-$name.1: OPTIONS repeats -h's numeric defaults" test "$bad" = 0
done <"$tmp/commands"

# ------------------------------------------------------- every page
for page in "$MANDIR"/*.1; do
    base=$(basename "$page" .1)
    th=$(roff2rec "$page" | awk -F '\t' '$2 == "th" { print $3; exit }')
    up=$(printf '%s\n' "$base" | tr 'a-z' 'A-Z')
    check "$base.1: .TH names the page ($up) in section 1" \
        test "x$(printf '%s\n' "$th" | cut -d'|' -f1-2)" = "x$up|1"
    check "$base.1: its footer names bitlens $version" \
        test "x$(printf '%s\n' "$th" | cut -d'|' -f4)" = "xbitlens $version"
done

if command -v groff >/dev/null 2>&1; then
    for page in "$MANDIR"/*.1; do
        base=$(basename "$page")
        groff -man -ww -z "$page" >"$tmp/g" 2>&1 || true
        groff -man -Tutf8 -ww -z "$page" >>"$tmp/g" 2>&1 || true
        if [ -s "$tmp/g" ]; then
            fail "$base renders without groff warnings"
            diag <"$tmp/g"
        else
            pass "$base renders without groff warnings"
        fi
        groff -man -Tascii -P-cbou "$page" 2>/dev/null | awk 'length > 80' >"$tmp/w" || true
        if [ -s "$tmp/w" ]; then
            fail "$base fits in 80 columns"
            diag <"$tmp/w"
        else
            pass "$base fits in 80 columns"
        fi
    done
else
    skip "the pages render without groff warnings" "groff is not installed"
fi

# `bitlens help NAME` opens the page (through man, from a MANPATH here)
if command -v man >/dev/null 2>&1; then
    mkdir "$tmp/man" "$tmp/man/man1"
    for page in "$MANDIR"/*.1; do
        cp "$page" "$tmp/man/man1/"
    done
    while IFS='	' read -r name summary; do
        # a man(1) that cannot find pages by MANPATH (a stub in a minimal
        # container image, say) cannot show this
        if ! MANPATH=$tmp/man man -w "bitlens-$name" >/dev/null 2>&1; then
            skip "'bitlens help $name' shows bitlens-$name(1)" "man -w finds no page by MANPATH here"
            continue
        fi
        up=$(printf 'BITLENS-%s(1)' "$name" | tr 'a-z' 'A-Z')
        MANPATH=$tmp/man MANPAGER=cat PAGER=cat MANWIDTH=80 \
            "$BL_BIN" help "$name" </dev/null >"$tmp/o" 2>"$tmp/e" || true
        check "'bitlens help $name' shows bitlens-$name(1)" grep -q "$up" "$tmp/o"
    done <"$tmp/commands"
else
    skip "'bitlens help NAME' shows the page" "man is not installed"
fi

done_testing
