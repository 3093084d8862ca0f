/* tests/drift-corrupt.c: see drift-corrupt.h. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "drift-corrupt.h"

/* ---------------------------------------------------------------- helpers */

static int is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* ASCII whitespace other than the newline (NUL too: text given with a
 * length may hold one, and it would end the strings we return) */
static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\0';
}

static int is_space(unsigned char c)
{
    return c == '\n' || is_blank(c);
}

/* the codepoint at s (leniently: a byte that starts no valid sequence is
 * taken as itself) and, in *len, its bytes */
static unsigned decode(const unsigned char *s, size_t *len)
{
    unsigned c = s[0];
    int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    unsigned cp = n == 3 ? c & 0x07 : n == 2 ? c & 0x0F : c & 0x1F;
    for (int i = 1; i <= n; i++) {
        if (!is_cont(s[i])) {
            *len = 1;
            return c;
        }
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    *len = (size_t)n + 1;
    return n ? cp : c;
}

/* a letter or digit for dc_garbage_words: ASCII letters and digits, and
 * any non-ASCII codepoint outside the blocks of punctuation and symbols
 * (Latin-1's U+0080..U+00BF, U+00D7, U+00F7; U+2000..U+2BFF: dashes, quotes,
 * arrows, math, box drawing; CJK punctuation U+3000..U+303F; emoji
 * U+1F000..U+1FAFF) */
static int is_core(unsigned cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    return !(cp <= 0xBF || cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp <= 0x2BFF) ||
             (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0x1F000 && cp <= 0x1FAFF));
}

/* in word [ws, we) of s, the core: from its first letter or digit to the
 * end of its last, as [*cs, *ce), and its codepoints; 0 if it has none */
static size_t word_core(const char *s, size_t ws, size_t we, size_t *cs, size_t *ce)
{
    size_t n = 0, len;
    *cs = *ce = ws;
    for (size_t i = ws; i < we; i += len) {
        if (is_core(decode((const unsigned char *)s + i, &len))) {
            if (*ce == ws)
                *cs = i;
            *ce = i + len;
        }
    }
    if (*ce == ws)
        return 0;
    for (size_t i = *cs; i < *ce; i++)
        n += !is_cont((unsigned char)s[i]);
    return n;
}

/* a uniform integer in [0, n), n >= 1 */
static size_t uniform(gsl_rng *r, size_t n)
{
    return n > 1 ? (size_t)gsl_rng_uniform_int(r, (unsigned long)n) : 0;
}

static char *copy_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---------------------------------------------------------------- UTF-8 */

int64_t dc_utf8_len(const char *s)
{
    int64_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += !is_cont(*p);
    return n;
}

size_t dc_utf8_offset(const char *s, int64_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i;
    int64_t k = 0;
    for (i = 0; p[i]; i++)
        if (!is_cont(p[i]) && k++ == n)
            break;
    return i;
}

char *dc_utf8_truncate(char *s, int64_t n)
{
    s[dc_utf8_offset(s, n)] = '\0';
    return s;
}

int dc_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, cp, min;
        int n;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        for (int i = 1; i <= n; i++) {     /* the NUL is no continuation byte */
            if (!is_cont(p[i]))
                return 0;
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------- spans */

/* a place a span may start: its byte in the squeezed text and its codepoint
 * counted over the paragraphs long enough to hold a span */
struct cand {
    size_t byte;
    int64_t cp;
};

static int cand_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct cand *)a)->cp, y = ((const struct cand *)b)->cp;
    return (x > y) - (x < y);
}

void dc_strv_free(char **v, int64_t n)
{
    if (!v)
        return;
    for (int64_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int64_t dc_spans(const char *text, size_t n, int64_t L, int64_t max, gsl_rng *r,
                 char ***spans)
{
    char *sq = NULL;             /* the text squeezed, each paragraph ending in '\n' */
    size_t *off = NULL;          /* off[k]: byte of codepoint k of one paragraph */
    struct cand *c = NULL;       /* every possible start, nc of them */
    unsigned char *cov = NULL;   /* cov[cp]: codepoint cp is inside a kept span */
    char **out = NULL;
    int64_t kept = 0, ret = -1;

    if (spans)
        *spans = NULL;
    if (!text || !spans || !r || L < 1 || max < 0)
        return -1;

    /* squeeze blanks and drop empty paragraphs; m <= n + 1 */
    size_t m = 0, longest = 0;
    if (!(sq = malloc(n + 2)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t start = m;
        int gap = 0;
        for (; i < n && text[i] != '\n'; i++) {
            if (is_blank((unsigned char)text[i])) {
                gap = m > start;
                continue;
            }
            if (gap)
                sq[m++] = ' ';
            gap = 0;
            sq[m++] = text[i];
        }
        if (m > start) {
            if (m - start > longest)
                longest = m - start;
            sq[m++] = '\n';
        }
    }
    sq[m] = '\0';

    /* the candidates: word starts with L codepoints after them in the
     * paragraph, the last of which is not a space */
    size_t nc = 0, cap = 0;
    int64_t total = 0;
    if (!(off = malloc((longest + 1) * sizeof *off)))
        goto fail;
    for (size_t p = 0; p < m;) {
        size_t e = p, len = 0;
        for (; sq[e] != '\n'; e++)
            if (!is_cont((unsigned char)sq[e]))
                off[len++] = e;
        if ((int64_t)len >= L) {
            for (size_t k = 0; k + (size_t)L <= len; k++) {
                if (sq[off[k]] == ' ' || (k > 0 && sq[off[k - 1]] != ' ') ||
                    sq[off[k + (size_t)L - 1]] == ' ')
                    continue;
                if (nc == cap) {
                    size_t ncap = cap ? 2 * cap : 1024;
                    struct cand *nc_ = realloc(c, ncap * sizeof *c);
                    if (!nc_)
                        goto fail;
                    c = nc_;
                    cap = ncap;
                }
                c[nc].byte = off[k];
                c[nc].cp = total + (int64_t)k;
                nc++;
            }
            total += (int64_t)len;
        }
        p = e + 1;
    }

    /* visit the candidates in a random order (a Fisher-Yates shuffle done
     * lazily), keeping those that overlap nothing kept; spans all have L
     * codepoints, so [s, s+L) overlaps a kept one exactly when its first or
     * last codepoint is covered.  The kept ones move to the front of c. */
    if (nc > 1 && nc - 1 > gsl_rng_max(r) - gsl_rng_min(r))
        goto fail;   /* more starts than the generator can draw among */
    if (total > 0 && !(cov = calloc((size_t)total, 1)))
        goto fail;
    for (size_t i = 0; i < nc && kept < max; i++) {
        size_t j = i + uniform(r, nc - i);
        struct cand t = c[i];
        c[i] = c[j];
        c[j] = t;
        int64_t s = c[i].cp;
        if (cov[s] || cov[s + L - 1])
            continue;
        memset(cov + s, 1, (size_t)L);
        c[kept++] = c[i];
    }
    if (kept > 1)
        qsort(c, (size_t)kept, sizeof *c, cand_cmp);

    if (kept > 0 && !(out = calloc((size_t)kept, sizeof *out)))
        goto fail;
    for (int64_t i = 0; i < kept; i++) {
        const char *s = sq + c[i].byte;
        if (!(out[i] = copy_str(s, dc_utf8_offset(s, L))))
            goto fail;
    }
    *spans = out;
    out = NULL;
    ret = kept;
fail:
    dc_strv_free(out, kept);
    free(cov);
    free(c);
    free(off);
    free(sq);
    return ret;
}

/* ---------------------------------------------------------------- corruptions */

/* the words of s: start and end (one past) bytes; returns the count, or -1
 * when memory runs out.  *ws and *we are NULL for none. */
static int64_t find_words(const char *s, size_t **ws, size_t **we)
{
    size_t n = strlen(s), nw = 0;
    *ws = *we = NULL;
    for (size_t i = 0; i < n; i++)
        nw += !is_space((unsigned char)s[i]) && (i == 0 || is_space((unsigned char)s[i - 1]));
    if (nw == 0)
        return 0;
    *ws = malloc(nw * sizeof **ws);
    *we = malloc(nw * sizeof **we);
    if (!*ws || !*we) {
        free(*ws);
        free(*we);
        *ws = *we = NULL;
        return -1;
    }
    nw = 0;
    for (size_t i = 0; i < n;) {
        if (is_space((unsigned char)s[i])) {
            i++;
            continue;
        }
        (*ws)[nw] = i;
        while (i < n && !is_space((unsigned char)s[i]))
            i++;
        (*we)[nw++] = i;
    }
    return (int64_t)nw;
}

char *dc_shuffle_words(const char *span, gsl_rng *r)
{
    if (!span || !r)
        return NULL;
    size_t n = strlen(span), *ws, *we, *perm = NULL;
    int64_t nw = find_words(span, &ws, &we);
    char *out = NULL;
    if (nw < 0)
        return NULL;
    if (nw < 2) {
        out = copy_str(span, n);
        goto done;
    }
    if (!(perm = malloc((size_t)nw * sizeof *perm)) || !(out = malloc(n + 1)))
        goto done;
    for (int attempt = 0; attempt < 64; attempt++) {
        for (int64_t i = 0; i < nw; i++)
            perm[i] = (size_t)i;
        for (int64_t i = nw - 1; i > 0; i--) {
            size_t j = uniform(r, (size_t)i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        /* the blanks before word slot k, then word perm[k] */
        size_t o = 0, prev = 0;
        for (int64_t k = 0; k < nw; k++) {
            memcpy(out + o, span + prev, ws[k] - prev);
            o += ws[k] - prev;
            memcpy(out + o, span + ws[perm[k]], we[perm[k]] - ws[perm[k]]);
            o += we[perm[k]] - ws[perm[k]];
            prev = we[k];
        }
        memcpy(out + o, span + prev, n - prev);
        out[n] = '\0';
        if (strcmp(out, span) != 0)
            break;
    }
done:
    free(perm);
    free(ws);
    free(we);
    return out;
}

/* a vocabulary piece we can use: not empty, valid UTF-8, no C0 or C1
 * control character */
static int usable_piece(const char *s)
{
    if (!s || !*s || !dc_utf8_valid(s))
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F))
            return 0;
    return 1;
}

char *dc_random_tokens(const char *const *vocab, int64_t n_vocab, int64_t L, gsl_rng *r)
{
    if (!vocab || n_vocab < 1 || L < 0 || !r)
        return NULL;
    int64_t *use = malloc((size_t)n_vocab * sizeof *use), nuse = 0;
    char *out = NULL;
    size_t len = 0, cap = 0;
    if (!use)
        return NULL;
    for (int64_t i = 0; i < n_vocab; i++)
        if (usable_piece(vocab[i]))
            use[nuse++] = i;
    if (nuse == 0)
        goto fail;
    if (!(out = malloc(cap = 64)))
        goto fail;
    out[0] = '\0';
    for (int64_t cps = 0; cps < L;) {
        const char *t = vocab[use[uniform(r, (size_t)nuse)]];
        size_t tn = strlen(t);
        if (len + tn + 1 > cap) {
            while (len + tn + 1 > cap)
                cap *= 2;
            char *p = realloc(out, cap);
            if (!p)
                goto fail;
            out = p;
        }
        memcpy(out + len, t, tn + 1);
        len += tn;
        cps += dc_utf8_len(t);
    }
    free(use);
    return dc_utf8_truncate(out, L);
fail:
    free(use);
    free(out);
    return NULL;
}

char *dc_cipher(const char *span, gsl_rng *r)
{
    if (!span || !r)
        return NULL;
    unsigned char perm[26];
    int identity;
    do {
        for (int i = 0; i < 26; i++)
            perm[i] = (unsigned char)i;
        for (int i = 25; i > 0; i--) {
            size_t j = uniform(r, (size_t)i + 1);
            unsigned char t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        identity = 1;
        for (int i = 0; i < 26; i++)
            identity &= perm[i] == i;
    } while (identity);

    size_t n = strlen(span);
    char *out = copy_str(span, n);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch >= 'a' && ch <= 'z')
            out[i] = (char)('a' + perm[ch - 'a']);
        else if (ch >= 'A' && ch <= 'Z')
            out[i] = (char)('A' + perm[ch - 'A']);
    }
    return out;
}

char *dc_base64(const void *data, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *d = data;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out || (!data && n > 0)) {
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i += 3) {
        /* 24 bits from up to three bytes, zero-filled; '=' for missing ones */
        unsigned long v = (unsigned long)d[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

char *dc_base64_span(const char *span)
{
    if (!span)
        return NULL;
    char *out = dc_base64(span, strlen(span));
    if (out)
        out[dc_utf8_len(span)] = '\0';   /* ASCII: a codepoint per byte */
    return out;
}

char *dc_reverse(const char *span)
{
    if (!span)
        return NULL;
    size_t n = strlen(span), o = 0;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    /* take codepoints from the end: back to a byte that is not a
     * continuation byte (or to the start) */
    for (size_t j = n; j > 0;) {
        size_t i = j - 1;
        while (i > 0 && is_cont((unsigned char)span[i]))
            i--;
        memcpy(out + o, span + i, j - i);
        o += j - i;
        j = i;
    }
    out[n] = '\0';
    return out;
}

char *dc_garbage_words(const char *span, double frac, gsl_rng *r)
{
    if (!span || !r || !(frac >= 0 && frac <= 1))
        return NULL;
    size_t n = strlen(span), *ws, *we, *elig = NULL;
    int64_t nw = find_words(span, &ws, &we), ne = 0;
    unsigned char *pick = NULL;
    char *out = NULL;
    if (nw < 0)
        return NULL;
    if (!(out = malloc(n + 1)) || (nw > 0 && (!(elig = malloc((size_t)nw * sizeof *elig)) ||
                                              !(pick = calloc((size_t)nw, 1))))) {
        free(out);
        out = NULL;
        goto done;
    }
    for (int64_t k = 0; k < nw; k++) {
        size_t cs, ce;
        if (word_core(span, ws[k], we[k], &cs, &ce) > 0)
            elig[ne++] = (size_t)k;
    }

    /* the first nk of a partial Fisher-Yates shuffle of the eligible words */
    int64_t nk = (int64_t)lround(frac * (double)ne);
    if (nk > ne)
        nk = ne;
    for (int64_t i = 0; i < nk; i++) {
        size_t j = (size_t)i + uniform(r, (size_t)(ne - i)), t = elig[i];
        elig[i] = elig[j];
        elig[j] = t;
        pick[elig[i]] = 1;
    }

    /* copy, replacing the core of each picked word; a core of c codepoints
     * takes at least c bytes, its replacement exactly c, so n + 1 is room
     * enough */
    size_t o = 0, prev = 0;
    for (int64_t k = 0; k < nw; k++) {
        if (!pick[k])
            continue;
        size_t cs, ce, len = word_core(span, ws[k], we[k], &cs, &ce);
        memcpy(out + o, span + prev, cs - prev);
        o += cs - prev;
        do {
            for (size_t i = 0; i < len; i++)
                out[o + i] = (char)('a' + uniform(r, 26));
        } while (len == ce - cs && memcmp(out + o, span + cs, len) == 0);
        o += len;
        prev = ce;
    }
    memcpy(out + o, span + prev, n - prev);
    out[o + n - prev] = '\0';
done:
    free(pick);
    free(elig);
    free(ws);
    free(we);
    return out;
}

const char *dc_kind_name(dc_kind kind)
{
    static const char *const names[DC_NKINDS] = {
        [DC_SHUFFLE] = "shuffle", [DC_TOKENS] = "tokens",   [DC_CIPHER] = "cipher",
        [DC_BASE64] = "base64",   [DC_REVERSE] = "reverse", [DC_GARBAGE] = "garbage",
    };
    return (int)kind >= 0 && kind < DC_NKINDS ? names[kind] : NULL;
}

char *dc_corrupt(dc_kind kind, const char *span, const struct dc_params *p, gsl_rng *r)
{
    if (!span)
        return NULL;
    switch (kind) {
    case DC_SHUFFLE:
        return dc_shuffle_words(span, r);
    case DC_TOKENS:
        return p ? dc_random_tokens(p->vocab, p->n_vocab, dc_utf8_len(span), r) : NULL;
    case DC_CIPHER:
        return dc_cipher(span, r);
    case DC_BASE64:
        return dc_base64_span(span);
    case DC_REVERSE:
        return dc_reverse(span);
    case DC_GARBAGE:
        return p ? dc_garbage_words(span, p->garbage_frac, r) : NULL;
    default:
        return NULL;
    }
}

/* ---------------------------------------------------------------- AUROC */

struct scored {
    double v;
    int pos;    /* 1: from pos[], 0: from neg[] */
};

static int scored_cmp(const void *a, const void *b)
{
    double x = ((const struct scored *)a)->v, y = ((const struct scored *)b)->v;
    return (x > y) - (x < y);
}

double dc_auroc(const double *pos, int np, const double *neg, int nn)
{
    if (!pos || !neg || np < 1 || nn < 1)
        return NAN;
    size_t n = (size_t)np + (size_t)nn;
    struct scored *a = malloc(n * sizeof *a);
    if (!a)
        return NAN;
    for (int i = 0; i < np; i++)
        a[i] = (struct scored){pos[i], 1};
    for (int i = 0; i < nn; i++)
        a[(size_t)np + (size_t)i] = (struct scored){neg[i], 0};
    for (size_t i = 0; i < n; i++)
        if (isnan(a[i].v)) {
            free(a);
            return NAN;
        }
    qsort(a, n, sizeof *a, scored_cmp);

    /* R = the sum of pos' ranks (1-based; a run of ties i..j-1 all get the
     * mid-rank (i+1 + j)/2); U = R - np(np+1)/2 counts the pairs won */
    double R = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].v == a[i].v)
            j++;
        double mid = ((double)i + 1 + (double)j) / 2;
        for (size_t k = i; k < j; k++)
            if (a[k].pos)
                R += mid;
        i = j;
    }
    free(a);
    double U = R - (double)np * ((double)np + 1) / 2;
    return U / ((double)np * (double)nn);
}
