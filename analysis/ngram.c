/* analysis/ngram.c: interpolated Kneser-Ney n-gram models over small
 * alphabets (characters, word ids), the word tokenizer and UTF-8 decoding
 * behind the drift features.  See drift_internal.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "drift_internal.h"
#include "internal.h"

/* ---------------------------------------------------------------- map */

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

int bli_u64map_init(struct bli_u64map *m, uint64_t expected)
{
    uint64_t cap = 16;
    while (cap < expected * 2)
        cap <<= 1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->vals) {
        bli_u64map_free(m);
        return BL_ENOMEM;
    }
    return BL_OK;
}

void bli_u64map_free(struct bli_u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int grow(struct bli_u64map *m)
{
    struct bli_u64map g;
    if (bli_u64map_init(&g, m->cap) != BL_OK)
        return BL_ENOMEM;
    for (uint64_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            *bli_u64map_slot(&g, m->keys[i]) = m->vals[i];
    bli_u64map_free(m);
    *m = g;
    return BL_OK;
}

uint32_t *bli_u64map_slot(struct bli_u64map *m, uint64_t key)
{
    if ((m->n + 1) * 2 > m->cap && grow(m) != BL_OK)
        return NULL;
    uint64_t mask = m->cap - 1, i = mix(key) & mask;
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & mask;
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->vals[i] = 0;
        m->n++;
    }
    return &m->vals[i];
}

const uint32_t *bli_u64map_get(const struct bli_u64map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    uint64_t mask = m->cap - 1, i = mix(key) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == key)
            return &m->vals[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

uint64_t bli_fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

/* ---------------------------------------------------------------- n-grams */

/* The key of sym[i-n+1..i] (oldest first), order n in the top 4 bits. */
static uint64_t gram_key(const uint32_t *sym, int64_t i, int n, int bits)
{
    uint64_t k = 0;
    for (int j = n - 1; j >= 0; j--)
        k = (k << bits) | sym[i - j];
    return (uint64_t)n << 60 | k;
}

/* The context key of a gram key (its n-1 oldest symbols). */
static uint64_t ctx_of(uint64_t gk, int bits)
{
    int n = (int)(gk >> 60);
    uint64_t k = (gk & ((1ULL << 60) - 1)) >> bits;
    return (uint64_t)(n - 1) << 60 | k;
}

/* The gram key without its oldest symbol. */
static uint64_t suffix_of(uint64_t gk, int bits)
{
    int n = (int)(gk >> 60);
    uint64_t k = gk & ((1ULL << (bits * (n - 1))) - 1);
    return (uint64_t)(n - 1) << 60 | k;
}

static uint32_t oldest_symbol(uint64_t gk, int bits)
{
    int n = (int)(gk >> 60);
    return (uint32_t)((gk >> (bits * (n - 1))) & ((1ULL << bits) - 1));
}

struct kv {
    uint64_t k;
    uint32_t v;
};

static int cmp_kv(const void *a, const void *b)
{
    uint64_t x = ((const struct kv *)a)->k, y = ((const struct kv *)b)->k;
    return x < y ? -1 : x > y;
}

int bli_ngram_build(struct bli_ngram *m, const uint32_t *sym, int64_t n, int order, int bits,
                    uint32_t n_sym, int min_count)
{
    memset(m, 0, sizeof *m);
    if (order < 1 || order > BLI_NGRAM_MAX_ORDER || bits * order > 60 || n_sym > (1u << bits))
        return BL_EINVAL;
    m->order = order;
    m->bits = bits;
    m->n_sym = n_sym;
    int rc = BL_ENOMEM;
    struct bli_u64map raw[BLI_NGRAM_MAX_ORDER + 1], cnt[BLI_NGRAM_MAX_ORDER + 1], ctx, kept;
    memset(raw, 0, sizeof raw);
    memset(cnt, 0, sizeof cnt);
    memset(&ctx, 0, sizeof ctx);
    memset(&kept, 0, sizeof kept);
    struct kv *g = NULL, *c = NULL;
    double *ctx_kept_mass = NULL;

    for (int o = 1; o <= order; o++)
        if (bli_u64map_init(&raw[o], 1024) || bli_u64map_init(&cnt[o], 1024))
            goto out;
    /* raw counts: grams inside one paragraph, never predicting a start */
    int64_t para = 0;
    for (int64_t i = 0; i < n; i++) {
        if (sym[i] == 0) {
            para = i;
            continue;
        }
        for (int o = 1; o <= order && i - o + 1 >= para; o++) {
            uint32_t *v = bli_u64map_slot(&raw[o], gram_key(sym, i, o, bits));
            if (!v)
                goto out;
            (*v)++;
        }
    }
    /* Kneser-Ney counts: the highest order raw; lower orders the number of
     * distinct left extensions, or raw for grams that begin a paragraph */
    for (int o = order; o >= 1; o--) {
        const struct bli_u64map *r = &raw[o];
        for (uint64_t s = 0; s < r->cap; s++) {
            if (!r->keys[s])
                continue;
            uint64_t k = r->keys[s];
            if (o == order || oldest_symbol(k, bits) == 0) {
                uint32_t *v = bli_u64map_slot(&cnt[o], k);
                if (!v)
                    goto out;
                *v += r->vals[s];
            }
            if (o > 1) {   /* k is a distinct left extension of its suffix */
                uint32_t *v = bli_u64map_slot(&cnt[o - 1], suffix_of(k, bits));
                if (!v)
                    goto out;
                (*v)++;
            }
        }
    }
    /* discounts from counts of counts */
    for (int o = 1; o <= order; o++) {
        double n1 = 0, n2 = 0;
        for (uint64_t s = 0; s < cnt[o].cap; s++)
            if (cnt[o].keys[s]) {
                n1 += cnt[o].vals[s] == 1;
                n2 += cnt[o].vals[s] == 2;
            }
        double d = n1 + 2 * n2 > 0 ? n1 / (n1 + 2 * n2) : 0.5;
        m->discount[o] = (float)(d < 0.1 ? 0.1 : d > 0.95 ? 0.95 : d);
    }
    /* context totals over all grams, then the grams kept and their mass */
    if (bli_u64map_init(&ctx, 1024) || bli_u64map_init(&kept, 1024))
        goto out;
    int64_t n_all = 0;
    for (int o = 1; o <= order; o++)
        n_all += (int64_t)cnt[o].n;
    g = malloc((size_t)n_all * sizeof *g);
    if (!g)
        goto out;
    int64_t ng = 0;
    for (int o = 1; o <= order; o++)
        for (uint64_t s = 0; s < cnt[o].cap; s++) {
            if (!cnt[o].keys[s] || !cnt[o].vals[s])
                continue;
            uint64_t k = cnt[o].keys[s];
            uint32_t v = cnt[o].vals[s];
            if (o > 1) {
                uint32_t *t = bli_u64map_slot(&ctx, ctx_of(k, bits));
                if (!t)
                    goto out;
                *t += v;
            }
            if (o == 1 || v >= (uint32_t)min_count)
                g[ng++] = (struct kv){k, v};
        }
    qsort(g, (size_t)ng, sizeof *g, cmp_kv);
    /* contexts with kept grams: their totals and the mass left over */
    ctx_kept_mass = calloc((size_t)(ng ? ng : 1), sizeof *ctx_kept_mass);
    c = malloc((size_t)(ng ? ng : 1) * sizeof *c);
    if (!ctx_kept_mass || !c)
        goto out;
    int64_t nc = 0;
    for (int64_t i = 0; i < ng; i++) {
        int o = (int)(g[i].k >> 60);
        if (o == 1)
            continue;
        uint64_t ck = ctx_of(g[i].k, bits);
        uint32_t *idx = bli_u64map_slot(&kept, ck);
        if (!idx)
            goto out;
        if (*idx == 0) {
            c[nc] = (struct kv){ck, *bli_u64map_get(&ctx, ck)};
            *idx = (uint32_t)++nc;
        }
        ctx_kept_mass[*idx - 1] += fmax((double)g[i].v - m->discount[o], 0.0);
    }
    m->n_grams = ng;
    m->gram_key = malloc((size_t)(ng ? ng : 1) * sizeof *m->gram_key);
    m->gram_count = malloc((size_t)(ng ? ng : 1) * sizeof *m->gram_count);
    m->ctx_key = malloc((size_t)(nc ? nc : 1) * sizeof *m->ctx_key);
    m->ctx_tot = malloc((size_t)(nc ? nc : 1) * sizeof *m->ctx_tot);
    m->ctx_gamma = malloc((size_t)(nc ? nc : 1) * sizeof *m->ctx_gamma);
    if (!m->gram_key || !m->gram_count || !m->ctx_key || !m->ctx_tot || !m->ctx_gamma)
        goto out;
    for (int64_t i = 0; i < ng; i++) {
        m->gram_key[i] = g[i].k;
        m->gram_count[i] = g[i].v;
    }
    /* contexts sorted by key; gamma from the kept mass */
    struct kv *cs = malloc((size_t)(nc ? nc : 1) * sizeof *cs);
    if (!cs)
        goto out;
    for (int64_t i = 0; i < nc; i++)
        cs[i] = (struct kv){c[i].k, (uint32_t)i};
    qsort(cs, (size_t)nc, sizeof *cs, cmp_kv);
    for (int64_t i = 0; i < nc; i++) {
        int64_t j = cs[i].v;
        m->ctx_key[i] = c[j].k;
        m->ctx_tot[i] = c[j].v;
        m->ctx_gamma[i] = (float)((c[j].v - ctx_kept_mass[j]) / c[j].v);
    }
    free(cs);
    m->n_ctx = nc;
    rc = bli_ngram_index(m);
out:
    for (int o = 1; o <= order; o++) {
        bli_u64map_free(&raw[o]);
        bli_u64map_free(&cnt[o]);
    }
    bli_u64map_free(&ctx);
    bli_u64map_free(&kept);
    free(g);
    free(c);
    free(ctx_kept_mass);
    if (rc != BL_OK)
        bli_ngram_free(m);
    return rc;
}

int bli_ngram_index(struct bli_ngram *m)
{
    if (bli_u64map_init(&m->gram_map, (uint64_t)m->n_grams) ||
        bli_u64map_init(&m->ctx_map, (uint64_t)m->n_ctx))
        return BL_ENOMEM;
    for (int64_t i = 0; i < m->n_grams; i++)
        *bli_u64map_slot(&m->gram_map, m->gram_key[i]) = m->gram_count[i];
    for (int64_t i = 0; i < m->n_ctx; i++)
        *bli_u64map_slot(&m->ctx_map, m->ctx_key[i]) = (uint32_t)i;
    /* order 1's leftover mass, spread uniformly */
    double kept = 0;
    m->uni_tot = 0;
    for (int64_t i = 0; i < m->n_grams && (m->gram_key[i] >> 60) == 1; i++) {
        kept += fmax((double)m->gram_count[i] - m->discount[1], 0.0);
        m->uni_tot += m->gram_count[i];
    }
    m->gamma1 = m->uni_tot > 0 ? (m->uni_tot - kept) / m->uni_tot : 1.0;
    return BL_OK;
}

void bli_ngram_free(struct bli_ngram *m)
{
    free(m->gram_key);
    free(m->gram_count);
    free(m->ctx_key);
    free(m->ctx_tot);
    free(m->ctx_gamma);
    bli_u64map_free(&m->gram_map);
    bli_u64map_free(&m->ctx_map);
    memset(m, 0, sizeof *m);
}

double bli_ngram_log2p(const struct bli_ngram *m, const uint32_t *sym, int64_t lo, int64_t i)
{
    int bits = m->bits;
    const uint32_t *c1 = bli_u64map_get(&m->gram_map, gram_key(sym, i, 1, bits));
    double p = (c1 ? fmax((double)*c1 - m->discount[1], 0.0) / m->uni_tot : 0.0) + m->gamma1 / m->n_sym;
    for (int o = 2; o <= m->order; o++) {
        if (i - (o - 1) < lo)
            break;
        if (o > 2 && sym[i - o + 2] == 0)   /* the context would reach past a paragraph start */
            break;
        uint64_t gk = gram_key(sym, i, o, bits);
        const uint32_t *ci = bli_u64map_get(&m->ctx_map, ctx_of(gk, bits));
        if (!ci)
            continue;
        const uint32_t *cg = bli_u64map_get(&m->gram_map, gk);
        double tot = m->ctx_tot[*ci];
        p = (cg ? fmax((double)*cg - m->discount[o], 0.0) / tot : 0.0) + m->ctx_gamma[*ci] * p;
    }
    return log2(p);
}

/* ---------------------------------------------------------------- text */

uint32_t bli_utf8_next(const unsigned char *p, size_t n, int *len, int *valid)
{
    unsigned c = p[0];
    *len = 1;
    *valid = 1;
    if (c < 0x80)
        return c;
    int need;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        *valid = 0;
        return 0xfffd;
    }
    if ((size_t)need >= n) {
        *valid = 0;
        return 0xfffd;
    }
    for (int k = 1; k <= need; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            *valid = 0;
            return 0xfffd;
        }
        cp = cp << 6 | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        *valid = 0;
        return 0xfffd;
    }
    *len = need + 1;
    return cp;
}

int64_t bl_utf8_offsets(const char *text, size_t n, int64_t *off)
{
    const unsigned char *p = (const unsigned char *)text;
    int64_t nc = 0;
    size_t i = 0;
    while (i < n) {
        int len, valid;
        bli_utf8_next(p + i, n - i, &len, &valid);
        if (off)
            off[nc] = (int64_t)i;
        nc++;
        i += (size_t)len;
    }
    if (off)
        off[nc] = (int64_t)n;
    return nc;
}

uint32_t bli_char_symbol(uint32_t cp, int valid)
{
    if (!valid)
        return 97;
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return 1;
    if (cp >= 32 && cp < 127)
        return cp - 31;
    if (cp < 32 || cp == 127 || (cp >= 0x80 && cp < 0xa0))
        return 97;
    return 96;
}

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

int64_t bli_word_tokens(const char *text, size_t n, int64_t *start, int64_t *len, int64_t cap)
{
    const unsigned char *p = (const unsigned char *)text;
    int64_t k = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (is_word_byte(c)) {
            while (j < n && (is_word_byte(p[j]) ||
                             ((p[j] == '\'' || p[j] == '-') && j + 1 < n && is_word_byte(p[j + 1]))))
                j++;
        }
        if (k < cap) {
            start[k] = (int64_t)i;
            len[k] = (int64_t)(j - i);
        }
        k++;
        i = j;
    }
    return k;
}

static int ends_with(const char *w, int64_t n, const char *suf)
{
    int64_t m = (int64_t)strlen(suf);
    return n > m + 1 && memcmp(w + n - m, suf, (size_t)m) == 0;
}

int bli_word_shape(const char *w, int64_t n)
{
    const unsigned char *p = (const unsigned char *)w;
    if (n == 1 && !is_word_byte(p[0]))
        return BLI_UNK_PUNCT;
    if (n > 24)
        return BLI_UNK_LONG;
    for (int64_t i = 0; i < n; i++)
        if (p[i] >= 0x80)
            return BLI_UNK_NONASCII;
    for (int64_t i = 0; i < n; i++)
        if (p[i] >= '0' && p[i] <= '9')
            return BLI_UNK_NUM;
    if (p[0] >= 'A' && p[0] <= 'Z')
        return BLI_UNK_CAP;
    if (ends_with(w, n, "ing"))
        return BLI_UNK_ING;
    if (ends_with(w, n, "ed"))
        return BLI_UNK_ED;
    if (ends_with(w, n, "ly"))
        return BLI_UNK_LY;
    if (ends_with(w, n, "tion") || ends_with(w, n, "sion"))
        return BLI_UNK_TION;
    if (ends_with(w, n, "er") || ends_with(w, n, "or"))
        return BLI_UNK_ER;
    if (ends_with(w, n, "al") || ends_with(w, n, "ous") || ends_with(w, n, "ive") ||
        ends_with(w, n, "able") || ends_with(w, n, "ic"))
        return BLI_UNK_ADJ;
    if (ends_with(w, n, "s"))
        return BLI_UNK_S;
    return BLI_UNK_LOWER;
}

/* Lowercase out[a..b) when it holds two or more capitals and no small
 * letter (a non-ASCII byte counts as one). */
static void lower_capitals(char *out, size_t a, size_t b)
{
    size_t caps = 0, lower = 0;
    for (size_t k = a; k < b; k++) {
        unsigned char c = (unsigned char)out[k];
        caps += c >= 'A' && c <= 'Z';
        lower += (c >= 'a' && c <= 'z') || c >= 0x80;
    }
    if (caps >= 2 && !lower)
        for (size_t k = a; k < b; k++)
            if (out[k] >= 'A' && out[k] <= 'Z')
                out[k] = (char)(out[k] + 32);
}

/* Typographic punctuation to its ASCII spelling, emphasis underscores and
 * invisible characters dropped, words of two or more capitals lowercased:
 * the reference tables are plain ASCII prose.  Never longer than the input. */
size_t bli_drift_normalize(const char *text, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t o = 0, i = 0, word = 0;
    while (i < n) {
        int len, valid;
        uint32_t cp = bli_utf8_next(p + i, n - i, &len, &valid);
        const char *rep = NULL;
        if (valid) {
            switch (cp) {
            case 0x2018: case 0x2019: case 0x201b: case 0x2032: rep = "'"; break;
            case 0x201c: case 0x201d: case 0x201e: case 0x2033: rep = "\""; break;
            case 0x2014: case 0x2015: rep = "--"; break;
            case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2212: rep = "-"; break;
            case 0x2026: rep = "..."; break;
            case 0xa0: case 0x202f: rep = " "; break;
            case 0xad: case 0x200b: case 0x200c: case 0x200d: case 0xfeff: case '_': rep = ""; break;
            default:
                if (cp >= 0x2000 && cp <= 0x200a)
                    rep = " ";
            }
        }
        /* a space ends a word, the ones written for the spaces of other
         * widths included: lowercase it if it is two or more capitals */
        int space = rep ? rep[0] == ' ' : p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r';
        if (space)
            lower_capitals(out, word, o);
        if (rep) {
            size_t m = strlen(rep);
            memcpy(out + o, rep, m);
            o += m;
        } else {
            memcpy(out + o, p + i, (size_t)len);
            o += (size_t)len;
        }
        i += (size_t)len;
        if (space)
            word = o;
    }
    lower_capitals(out, word, o);
    return o;
}
