/* analysis/drift.c: the drift features of a text span, the reference English
 * tables (build, save, load), the word list, baselines, scores and the CUSUM.
 * See bitlens/drift.h. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <pcre2.h>
#include <zlib.h>

#include <bitlens/gguf.h>

#include "drift_internal.h"
#include "internal.h"

static const char *const feature_names[BL_DF_COUNT] = {
    "model_bpc",     "char_ce",       "word_ce",       "word_pmi",      "dict_rate",
    "zlib_ratio",    "nonprint_rate", "script_rate",   "repeat_rate",   "stopword_rate",
    "mean_word_len", "symbol_ratio",  "alpha_words",
};
static const int feature_dir[BL_DF_COUNT] = {+1, +1, +1, -1, -1, 0, +1, +1, +1, -1, 0, +1, -1};

const char *bl_drift_feature_name(int f)
{
    return f >= 0 && f < BL_DF_COUNT ? feature_names[f] : NULL;
}

int bl_drift_feature_direction(int f)
{
    return f >= 0 && f < BL_DF_COUNT ? feature_dir[f] : 0;
}

/* ---------------------------------------------------------------- reference */

struct bl_drift_build_params bl_drift_build_default_params(void)
{
    return (struct bl_drift_build_params){
        .char_order = 5,
        .char_min_count = 2,
        .word_order = 3,
        .word_min_count = 2,
        .word_vocab = 12000,
        .calib_bytes = 262144,
    };
}

/* Append the character symbols of one paragraph (after a 0). */
static int64_t char_symbols(const char *text, size_t n, uint32_t *out)
{
    const unsigned char *p = (const unsigned char *)text;
    int64_t k = 0;
    size_t i = 0;
    while (i < n) {
        int len, valid;
        uint32_t cp = bli_utf8_next(p + i, n - i, &len, &valid);
        out[k++] = bli_char_symbol(cp, valid);
        i += (size_t)len;
    }
    return k;
}

/* Iterate the lines of text: *line and *len, 0 at the end. */
static int next_line(const char *text, size_t n, size_t *pos, const char **line, size_t *len)
{
    if (*pos >= n)
        return 0;
    const char *s = text + *pos;
    const char *e = memchr(s, '\n', n - *pos);
    size_t l = e ? (size_t)(e - s) : n - *pos;
    *line = s;
    *len = l;
    *pos += l + (e ? 1 : 0);
    return 1;
}

struct form {
    uint64_t hash;
    const char *s;
    int64_t n;
    uint32_t count;
};

static int cmp_form(const void *a, const void *b)
{
    const struct form *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int64_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, (size_t)m);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int ref_index_vocab(struct bl_drift_ref *r)
{
    bli_u64map_free(&r->vocab_map);   /* indexed again once the unigrams are counted */
    if (bli_u64map_init(&r->vocab_map, (uint64_t)r->n_vocab))
        return BL_ENOMEM;
    for (int64_t i = 0; i < r->n_vocab; i++) {
        uint32_t *v = bli_u64map_slot(&r->vocab_map, bli_fnv1a(r->vocab[i], strlen(r->vocab[i])));
        if (!v)
            return BL_ENOMEM;
        if (*v == 0)
            *v = (uint32_t)(BLI_WORD_FIRST + i);
    }
    r->word_uni_tot = 0;
    for (int64_t i = 0; i < BLI_WORD_FIRST + r->n_vocab; i++)
        r->word_uni_tot += r->word_uni[i];
    return BL_OK;
}

uint32_t bli_ref_word_id(const struct bl_drift_ref *r, const char *w, int64_t n)
{
    const uint32_t *v = bli_u64map_get(&r->vocab_map, bli_fnv1a(w, (size_t)n));
    if (v) {
        const char *f = r->vocab[*v - BLI_WORD_FIRST];
        if ((int64_t)strlen(f) == n && memcmp(f, w, (size_t)n) == 0)
            return *v;
    }
    return (uint32_t)bli_word_shape(w, n);
}

int bl_drift_ref_build(bl_drift_ref **out, const char *train, size_t n_train, const char *calib,
                       size_t n_calib, const char *source, const struct bl_drift_build_params *p,
                       bl_err *err)
{
    *out = NULL;
    struct bl_drift_build_params d = bl_drift_build_default_params();
    if (!p)
        p = &d;
    if (p->char_order < 2 || p->char_order > BLI_NGRAM_MAX_ORDER || p->word_order < 2 ||
        p->word_order > 4 || p->word_vocab < 1 || p->word_vocab > (1 << 14) - BLI_WORD_FIRST)
        return bli_err(err, BL_EINVAL, "drift reference: orders or vocabulary out of range");
    struct bl_drift_ref *r = calloc(1, sizeof *r);
    uint32_t *sym = malloc((n_train + 1) * 2 * sizeof *sym);
    /* the tables are of the text as the features read it */
    char *tnorm = malloc(n_train + 1);
    if (tnorm) {
        n_train = bli_drift_normalize(train, n_train, tnorm);
        train = tnorm;
    }
    int64_t *ws = NULL, *wl = NULL;
    struct form *forms = NULL;
    struct bli_u64map fmap = {0};
    int rc = BL_ENOMEM;
    if (!r || !sym || !tnorm)
        goto fail;
    /* no words: no word model, and a file that could not be loaded */
    if (!bli_word_tokens(train, n_train, NULL, NULL, 0)) {
        rc = BL_EINVAL;
        goto fail;
    }
    /* characters */
    int64_t ns = 0;
    size_t pos = 0, len;
    const char *line;
    while (next_line(train, n_train, &pos, &line, &len)) {
        if (!len)
            continue;
        sym[ns++] = 0;
        ns += char_symbols(line, len, sym + ns);
    }

    rc = bli_ngram_build(&r->chars, sym, ns, p->char_order, 7, BLI_CHAR_NSYM, p->char_min_count);
    if (rc)
        goto fail;
    /* word forms and their counts */
    int64_t cap = (int64_t)n_train + 1, nw = bli_word_tokens(train, n_train, NULL, NULL, 0);
    ws = malloc((size_t)(nw + 1) * sizeof *ws);
    wl = malloc((size_t)(nw + 1) * sizeof *wl);
    forms = malloc((size_t)(nw + 1) * sizeof *forms);
    if (!ws || !wl || !forms || bli_u64map_init(&fmap, 1 << 16))
        goto fail;
    (void)cap;
    int64_t nf = 0;
    pos = 0;
    while (next_line(train, n_train, &pos, &line, &len)) {
        int64_t k = bli_word_tokens(line, len, ws, wl, nw);
        for (int64_t i = 0; i < k; i++) {
            uint64_t h = bli_fnv1a(line + ws[i], (size_t)wl[i]);
            uint32_t *v = bli_u64map_slot(&fmap, h);
            if (!v)
                goto fail;
            if (*v == 0) {
                forms[nf] = (struct form){h, line + ws[i], wl[i], 0};
                *v = (uint32_t)++nf;
            }
            forms[*v - 1].count++;
        }
    }
    qsort(forms, (size_t)nf, sizeof *forms, cmp_form);
    int64_t nv = 0;
    while (nv < nf && nv < p->word_vocab && forms[nv].count >= 2)
        nv++;
    r->n_vocab = nv;
    r->vocab = calloc((size_t)(nv ? nv : 1), sizeof *r->vocab);
    r->word_uni = calloc((size_t)(BLI_WORD_FIRST + nv), sizeof *r->word_uni);
    if (!r->vocab || !r->word_uni)
        goto fail;
    for (int64_t i = 0; i < nv; i++) {
        r->vocab[i] = malloc((size_t)forms[i].n + 1);
        if (!r->vocab[i])
            goto fail;
        memcpy(r->vocab[i], forms[i].s, (size_t)forms[i].n);
        r->vocab[i][forms[i].n] = 0;
    }
    if ((rc = ref_index_vocab(r)) != BL_OK)
        goto fail;
    /* the word id stream */
    ns = 0;
    pos = 0;
    while (next_line(train, n_train, &pos, &line, &len)) {
        int64_t k = bli_word_tokens(line, len, ws, wl, nw);
        if (!k)
            continue;
        sym[ns++] = 0;
        for (int64_t i = 0; i < k; i++) {
            uint32_t id = bli_ref_word_id(r, line + ws[i], wl[i]);
            r->word_uni[id]++;
            sym[ns++] = id;
        }
    }
    if ((rc = ref_index_vocab(r)) != BL_OK)   /* the unigram total, now counted */
        goto fail;
    rc = bli_ngram_build(&r->words, sym, ns, p->word_order, 14,
                         (uint32_t)(BLI_WORD_FIRST + nv), p->word_min_count);
    if (rc)
        goto fail;
    /* the calibration text: whole lines up to calib_bytes */
    size_t keep = 0;
    pos = 0;
    while (next_line(calib, n_calib, &pos, &line, &len) && (int64_t)pos <= p->calib_bytes)
        keep = pos;
    r->calib = malloc(keep + 1);
    r->source = strdup(source ? source : "");
    if (!r->calib || !r->source)
        goto fail;
    memcpy(r->calib, calib, keep);
    r->calib[keep] = 0;
    r->n_calib = keep;
    free(sym);
    free(tnorm);
    free(ws);
    free(wl);
    free(forms);
    bli_u64map_free(&fmap);
    *out = r;
    return BL_OK;
fail:
    free(sym);
    free(tnorm);
    free(ws);
    free(wl);
    free(forms);
    bli_u64map_free(&fmap);
    bl_drift_ref_free(r);
    return bli_err(err, rc, "drift reference: %s",
                   rc == BL_ENOMEM   ? "out of memory"
                   : rc == BL_EINVAL ? "the training text has no words"
                                     : "cannot build");
}

void bl_drift_ref_free(bl_drift_ref *r)
{
    if (!r)
        return;
    bli_ngram_free(&r->chars);
    bli_ngram_free(&r->words);
    for (int64_t i = 0; r->vocab && i < r->n_vocab; i++)
        free(r->vocab[i]);
    free(r->vocab);
    free(r->word_uni);
    bli_u64map_free(&r->vocab_map);
    free(r->calib);
    free(r->source);
    free(r);
}

const char *bl_drift_ref_calibration(const bl_drift_ref *r, size_t *n)
{
    *n = r->n_calib;
    return r->calib;
}

const char *bl_drift_ref_source(const bl_drift_ref *r)
{
    return r->source;
}

#define KEY "bitlens.drift."

/* Sorted keys as LEB128 varints of their differences, counts as varints:
 * the tables are mostly small steps and small counts. */
static unsigned char *pack_varints(const uint64_t *keys, const uint32_t *vals, int64_t n, size_t *len)
{
    unsigned char *b = malloc((size_t)(n ? n : 1) * 10), *p = b;
    if (!b)
        return NULL;
    uint64_t prev = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t v = keys ? keys[i] - prev : vals[i];
        if (keys)
            prev = keys[i];
        do {
            *p++ = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
    }
    *len = (size_t)(p - b);
    return b;
}

/* Decode n varints from b[0..len): differences (keys != NULL, summed) or
 * values; -1 when they run past the end, overflow, or leave bytes over. */
static int unpack_varints(const unsigned char *b, uint64_t len, int64_t n, uint64_t *keys, uint32_t *vals)
{
    uint64_t at = 0, prev = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        int shift = 0;
        for (;;) {
            if (at >= len || shift > 63)
                return -1;
            unsigned char c = b[at++];
            v |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80))
                break;
        }
        if (keys) {
            if (i && v == 0)
                return -1;   /* keys strictly increase */
            if (v > UINT64_MAX - prev)
                return -1;
            prev += v;
            keys[i] = prev;
        } else {
            if (v > UINT32_MAX)
                return -1;
            vals[i] = (uint32_t)v;
        }
    }
    return at == len ? 0 : -1;
}

static int save_ngram(bl_gguf_writer *w, const char *name, const struct bli_ngram *m)
{
    char k[96];
    int rc = 0;
    size_t len[4];
    unsigned char *b[4] = {
        pack_varints(m->gram_key, NULL, m->n_grams, &len[0]),
        pack_varints(NULL, m->gram_count, m->n_grams, &len[1]),
        pack_varints(m->ctx_key, NULL, m->n_ctx, &len[2]),
        pack_varints(NULL, m->ctx_tot, m->n_ctx, &len[3]),
    };
#define SETK(suffix) (snprintf(k, sizeof k, KEY "%s.%s", name, suffix), k)
    rc |= !b[0] || !b[1] || !b[2] || !b[3];
    rc |= bl_gguf_writer_set_u32(w, SETK("order"), (uint32_t)m->order);
    rc |= bl_gguf_writer_set_u32(w, SETK("bits"), (uint32_t)m->bits);
    rc |= bl_gguf_writer_set_u32(w, SETK("n_symbols"), m->n_sym);
    rc |= bl_gguf_writer_set_arr(w, SETK("discount"), BL_GGUF_FLOAT32, m->discount + 1, (uint64_t)m->order);
    rc |= bl_gguf_writer_set_u64(w, SETK("n_grams"), (uint64_t)m->n_grams);
    rc |= bl_gguf_writer_set_u64(w, SETK("n_contexts"), (uint64_t)m->n_ctx);
    if (!rc) {
        rc |= bl_gguf_writer_set_arr(w, SETK("gram_keys"), BL_GGUF_UINT8, b[0], len[0]);
        rc |= bl_gguf_writer_set_arr(w, SETK("gram_counts"), BL_GGUF_UINT8, b[1], len[1]);
        rc |= bl_gguf_writer_set_arr(w, SETK("ctx_keys"), BL_GGUF_UINT8, b[2], len[2]);
        rc |= bl_gguf_writer_set_arr(w, SETK("ctx_totals"), BL_GGUF_UINT8, b[3], len[3]);
    }
    rc |= bl_gguf_writer_set_arr(w, SETK("ctx_gamma"), BL_GGUF_FLOAT32, m->ctx_gamma, (uint64_t)m->n_ctx);
#undef SETK
    for (int i = 0; i < 4; i++)
        free(b[i]);
    return rc ? BL_ENOMEM : BL_OK;
}

int bl_drift_ref_save(const bl_drift_ref *r, const char *path, bl_err *err)
{
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    if (!w)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    rc |= bl_gguf_writer_set_str(w, "general.architecture", "bitlens-drift");
    rc |= bl_gguf_writer_set_u32(w, KEY "version", 1);
    rc |= bl_gguf_writer_set_str(w, KEY "source", r->source);
    rc |= save_ngram(w, "chars", &r->chars);
    rc |= save_ngram(w, "words", &r->words);
    size_t *lens = malloc((size_t)(r->n_vocab ? r->n_vocab : 1) * sizeof *lens);
    if (!lens)
        rc = BL_ENOMEM;
    for (int64_t i = 0; lens && i < r->n_vocab; i++)
        lens[i] = strlen(r->vocab[i]);
    if (lens)
        rc |= bl_gguf_writer_set_arr_str(w, KEY "words.vocab", (const char *const *)r->vocab, lens,
                                         (uint64_t)r->n_vocab);
    free(lens);
    rc |= bl_gguf_writer_set_arr(w, KEY "words.unigram", BL_GGUF_UINT32, r->word_uni,
                                 (uint64_t)(BLI_WORD_FIRST + r->n_vocab));
    rc |= bl_gguf_writer_set_str(w, KEY "calibration", r->calib);
    if (rc) {
        bl_gguf_writer_free(w);
        return bli_err(err, BL_ENOMEM, "%s: out of memory", path);
    }
    rc = bl_gguf_writer_write(w, path, err);
    bl_gguf_writer_free(w);
    return rc;
}

/* The reader's getters, with a message when the key is absent. */
static int absent(const bl_gguf *g, const char *key, int rc, bl_err *err)
{
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: not a bitlens drift reference: no key '%s'", bl_gguf_name(g), key);
    return rc;
}
#define GET_U32(g, key, out, err) absent(g, key, bl_gguf_get_u32(g, key, out, err), err)
#define GET_I64(g, key, out, err) absent(g, key, bl_gguf_get_i64(g, key, out, err), err)
#define GET_STR(g, key, out, err) absent(g, key, bl_gguf_get_str(g, key, out, err), err)
#define GET_ARR(g, key, t, n, err) absent(g, key, bl_gguf_get_arr(g, key, t, n, err), err)

/* A numeric array of n elements of `type` copied out (n may be 0). */
static int get_arr(const bl_gguf *g, const char *key, int type, size_t elem, uint64_t *n, void **out,
                   bl_err *err)
{
    int t;
    int rc = GET_ARR(g, key, &t, n, err);
    if (rc)
        return rc;
    if (t != type)
        return bli_err(err, BL_EFORMAT, "%s: key '%s' has elements of type %s, not %s", bl_gguf_name(g),
                       key, bl_gguf_type_name(t), bl_gguf_type_name(type));
    *out = malloc(*n ? *n * elem : 1);
    if (!*out)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", bl_gguf_name(g));
    if (*n)
        memcpy(*out, bl_gguf_arr_data(g, key), *n * elem);
    return BL_OK;
}

static int load_ngram(const bl_gguf *g, const char *name, struct bli_ngram *m, bl_err *err)
{
    char k[96];
    uint32_t order, bits, nsym;
    uint64_t nd, ng, ngc, nc, nct, ncg;
    float *disc = NULL;
    int rc;
#define K(suffix) (snprintf(k, sizeof k, KEY "%s.%s", name, suffix), k)
    if ((rc = GET_U32(g, K("order"), &order, err)) || (rc = GET_U32(g, K("bits"), &bits, err)) ||
        (rc = GET_U32(g, K("n_symbols"), &nsym, err)))
        return rc;
    /* bits > 60 / order, not bits * order > 60: the product can wrap */
    if (order < 1 || order > BLI_NGRAM_MAX_ORDER || bits < 1 || bits > 60 / order || nsym < 2 ||
        nsym > (1ULL << bits))
        return bli_err(err, BL_EFORMAT, "%s: %s model: order %u, %u bits, %u symbols out of range",
                       bl_gguf_name(g), name, order, bits, nsym);
    m->order = (int)order;
    m->bits = (int)bits;
    m->n_sym = nsym;
    if ((rc = get_arr(g, K("discount"), BL_GGUF_FLOAT32, 4, &nd, (void **)&disc, err)))
        return rc;
    if (nd != order) {
        free(disc);
        return bli_err(err, BL_EFORMAT, "%s: %s model: %llu discounts for order %u", bl_gguf_name(g), name,
                       (unsigned long long)nd, order);
    }
    for (uint32_t o = 1; o <= order; o++) {
        m->discount[o] = disc[o - 1];
        if (!(disc[o - 1] > 0 && disc[o - 1] < 1)) {   /* 0 would leave unseen symbols no mass */
            free(disc);   /* the message reads the copy in m->discount */
            return bli_err(err, BL_EFORMAT, "%s: %s model: discount %u is %g, not in (0, 1)",
                           bl_gguf_name(g), name, o, (double)m->discount[o]);
        }
    }
    free(disc);
    uint64_t ng64, nc64;
    {
        int64_t a, b;
        if ((rc = GET_I64(g, K("n_grams"), &a, err)) || (rc = GET_I64(g, K("n_contexts"), &b, err)))
            return rc;
        if (a < 1 || b < 0 || a > (int64_t)1 << 32 || b > (int64_t)1 << 32)
            return bli_err(err, BL_EFORMAT, "%s: %s model: %lld grams, %lld contexts out of range", bl_gguf_name(g),
                           name, (long long)a, (long long)b);
        ng64 = (uint64_t)a;
        nc64 = (uint64_t)b;
    }
    static const char *const packed[4] = {"gram_keys", "gram_counts", "ctx_keys", "ctx_totals"};
    /* a varint takes a byte at least: counts the packed arrays cannot hold
     * are refused before anything is allocated for them */
    for (int i = 0; i < 4; i++) {
        int t;
        uint64_t len, want = i < 2 ? ng64 : nc64;
        if ((rc = GET_ARR(g, K(packed[i]), &t, &len, err)))
            return rc;
        if (t != BL_GGUF_UINT8)
            return bli_err(err, BL_EFORMAT, "%s: key '%s' is not an array of uint8", bl_gguf_name(g), k);
        if (len < want)
            return bli_err(err, BL_EFORMAT, "%s: key '%s': %llu bytes cannot hold %llu varints", bl_gguf_name(g),
                           k, (unsigned long long)len, (unsigned long long)want);
    }
    m->gram_key = malloc((size_t)ng64 * sizeof *m->gram_key);
    m->gram_count = malloc((size_t)ng64 * sizeof *m->gram_count);
    m->ctx_key = malloc((size_t)(nc64 ? nc64 : 1) * sizeof *m->ctx_key);
    m->ctx_tot = malloc((size_t)(nc64 ? nc64 : 1) * sizeof *m->ctx_tot);
    if (!m->gram_key || !m->gram_count || !m->ctx_key || !m->ctx_tot)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", bl_gguf_name(g));
    for (int i = 0; i < 4; i++) {
        int t;
        uint64_t len;
        if ((rc = GET_ARR(g, K(packed[i]), &t, &len, err)))
            return rc;
        const unsigned char *data = bl_gguf_arr_data(g, k);
        int bad = unpack_varints(data, len, (int64_t)(i < 2 ? ng64 : nc64),
                                 i == 0 ? m->gram_key : i == 2 ? m->ctx_key : NULL,
                                 i == 1 ? m->gram_count : i == 3 ? m->ctx_tot : NULL);
        if (bad)
            return bli_err(err, BL_EFORMAT, "%s: key '%s': %llu bytes do not hold %llu increasing varints",
                           bl_gguf_name(g), k, (unsigned long long)len, (unsigned long long)(i < 2 ? ng64 : nc64));
    }
    ng = ngc = ng64;
    nc = nct = nc64;
    if ((rc = get_arr(g, K("ctx_gamma"), BL_GGUF_FLOAT32, 4, &ncg, (void **)&m->ctx_gamma, err)))
        return rc;
    if (ncg != nc64)
        return bli_err(err, BL_EFORMAT, "%s: %s model: %llu back-off weights for %llu contexts", bl_gguf_name(g),
                       name, (unsigned long long)ncg, (unsigned long long)nc64);
    m->n_grams = (int64_t)ng;
    m->n_ctx = (int64_t)nc;
    /* every key well formed and sorted; every probability term finite */
    uint64_t mask = (1ULL << 60) - 1;
    for (int64_t i = 0; i < m->n_grams; i++) {
        uint64_t key = m->gram_key[i];
        uint32_t o = (uint32_t)(key >> 60);
        if (o < 1 || o > order || (key & mask) >> (bits * o) || (i && key <= m->gram_key[i - 1]) ||
            !m->gram_count[i])
            return bli_err(err, BL_EFORMAT, "%s: %s model: gram %lld (key 0x%llx) malformed or out of order",
                           bl_gguf_name(g), name, (long long)i, (unsigned long long)key);
        for (uint32_t j = 0; j < o; j++)
            if (((key >> (bits * j)) & ((1ULL << bits) - 1)) >= nsym)
                return bli_err(err, BL_EFORMAT, "%s: %s model: gram %lld has a symbol out of range",
                               bl_gguf_name(g), name, (long long)i);
    }
    if (!m->n_grams || (m->gram_key[0] >> 60) != 1)
        return bli_err(err, BL_EFORMAT, "%s: %s model has no unigrams", bl_gguf_name(g), name);
    for (int64_t i = 0; i < m->n_ctx; i++) {
        uint64_t key = m->ctx_key[i];
        uint32_t o = (uint32_t)(key >> 60);
        if (o < 1 || o >= order || (key & mask) >> (bits * o) || (i && key <= m->ctx_key[i - 1]) ||
            !m->ctx_tot[i] || !(m->ctx_gamma[i] > 0 && m->ctx_gamma[i] <= 1))
            return bli_err(err, BL_EFORMAT, "%s: %s model: context %lld (key 0x%llx) malformed or out of order",
                           bl_gguf_name(g), name, (long long)i, (unsigned long long)key);
    }
    if (bli_ngram_index(m))
        return bli_err(err, BL_ENOMEM, "%s: out of memory", bl_gguf_name(g));
    /* discounts too small to change a count in a double (1e-45) leave
     * unseen symbols no mass: log2(0) */
    if (!(m->gamma1 > 0))
        return bli_err(err, BL_EFORMAT, "%s: %s model: the discounts leave unseen symbols no probability",
                       bl_gguf_name(g), name);
    return BL_OK;
}

static int ref_from_gguf(bl_drift_ref **out, const bl_gguf *g, bl_err *err)
{
    *out = NULL;
    struct bl_drift_ref *r = calloc(1, sizeof *r);
    struct bl_gguf_str s, *strs = NULL;
    uint32_t version;
    uint64_t nv, nu;
    int rc;
    if (!r)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", bl_gguf_name(g));
    if ((rc = GET_U32(g, KEY "version", &version, err)))
        goto fail;
    if (version != 1) {
        rc = bli_err(err, BL_EUNSUPPORTED, "%s: drift reference version %u (this bitlens reads 1)",
                     bl_gguf_name(g), version);
        goto fail;
    }
    if ((rc = load_ngram(g, "chars", &r->chars, err)) || (rc = load_ngram(g, "words", &r->words, err)))
        goto fail;
    if (r->chars.n_sym != BLI_CHAR_NSYM || r->words.n_sym < BLI_WORD_FIRST) {
        rc = bli_err(err, BL_EFORMAT, "%s: %u character symbols (expected %d), %u word symbols",
                     bl_gguf_name(g), r->chars.n_sym, BLI_CHAR_NSYM, r->words.n_sym);
        goto fail;
    }
    int t;
    if ((rc = GET_ARR(g, KEY "words.vocab", &t, &nv, err)))
        goto fail;
    if (t != BL_GGUF_STRING || nv != r->words.n_sym - BLI_WORD_FIRST) {
        rc = bli_err(err, BL_EFORMAT, "%s: %llu vocabulary forms for %u word symbols", bl_gguf_name(g),
                     (unsigned long long)nv, r->words.n_sym);
        goto fail;
    }
    strs = malloc((size_t)(nv ? nv : 1) * sizeof *strs);
    r->vocab = calloc((size_t)(nv ? nv : 1), sizeof *r->vocab);
    if (!strs || !r->vocab) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", bl_gguf_name(g));
        goto fail;
    }
    r->n_vocab = (int64_t)nv;
    if ((rc = bl_gguf_arr_strings(g, KEY "words.vocab", strs, nv, err)))
        goto fail;
    for (uint64_t i = 0; i < nv; i++) {
        r->vocab[i] = strndup(strs[i].ptr, strs[i].len);
        if (!r->vocab[i] || strlen(r->vocab[i]) != strs[i].len || !strs[i].len) {
            rc = bli_err(err, BL_EFORMAT, "%s: vocabulary form %llu is empty or holds a NUL", bl_gguf_name(g),
                         (unsigned long long)i);
            goto fail;
        }
    }
    if ((rc = get_arr(g, KEY "words.unigram", BL_GGUF_UINT32, 4, &nu, (void **)&r->word_uni, err)))
        goto fail;
    if (nu != r->words.n_sym) {
        rc = bli_err(err, BL_EFORMAT, "%s: %llu unigram counts for %u word symbols", bl_gguf_name(g),
                     (unsigned long long)nu, r->words.n_sym);
        goto fail;
    }
    if ((rc = ref_index_vocab(r))) {
        rc = bli_err(err, rc, "%s: out of memory", bl_gguf_name(g));
        goto fail;
    }
    if ((rc = GET_STR(g, KEY "calibration", &s, err)))
        goto fail;
    r->calib = strndup(s.ptr, s.len);
    r->n_calib = r->calib ? strlen(r->calib) : 0;
    if ((rc = GET_STR(g, KEY "source", &s, err)))
        goto fail;
    r->source = strndup(s.ptr, s.len);
    if (!r->calib || !r->source) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", bl_gguf_name(g));
        goto fail;
    }
    free(strs);
    *out = r;
    return BL_OK;
fail:
    free(strs);
    bl_drift_ref_free(r);
    return rc;
}

int bl_drift_ref_load(bl_drift_ref **out, const char *path, bl_err *err)
{
    bl_gguf *g;
    *out = NULL;
    int rc = bl_gguf_open(&g, path, err);
    if (rc)
        return rc;
    rc = ref_from_gguf(out, g, err);
    bl_gguf_free(g);
    return rc;
}

int bl_drift_ref_load_memory(bl_drift_ref **out, const void *data, size_t size, const char *name,
                             bl_err *err)
{
    bl_gguf *g;
    *out = NULL;
    int rc = bl_gguf_open_memory(&g, data, size, name, err);
    if (rc)
        return rc;
    rc = ref_from_gguf(out, g, err);
    bl_gguf_free(g);
    return rc;
}

/* ---------------------------------------------------------------- word list */

struct bl_wordlist {
    char *text;                 /* the words, NUL-separated */
    struct bli_u64map map;      /* hash -> offset + 1 */
    int64_t n;
};

static uint64_t fold_hash(const char *w, size_t n, int fold)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (fold && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

int bl_wordlist_from_buffer(bl_wordlist **out, const char *text, size_t n, bl_err *err)
{
    *out = NULL;
    bl_wordlist *w = calloc(1, sizeof *w);
    if (!w || !(w->text = malloc(n + 1)) || bli_u64map_init(&w->map, n / 8 + 16)) {
        bl_wordlist_free(w);
        return bli_err(err, BL_ENOMEM, "word list: out of memory");
    }
    if (n)   /* an empty list may come as a NULL mapping */
        memcpy(w->text, text, n);
    w->text[n] = 0;
    size_t pos = 0, len;
    const char *line;
    while (next_line(w->text, n, &pos, &line, &len)) {
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        if (!len)
            continue;
        ((char *)line)[len] = 0;
        /* exact and case-folded forms both point at the word */
        for (int fold = 0; fold < 2; fold++) {
            uint32_t *v = bli_u64map_slot(&w->map, fold_hash(line, len, fold) ^ (uint64_t)fold);
            if (!v) {
                bl_wordlist_free(w);
                return bli_err(err, BL_ENOMEM, "word list: out of memory");
            }
            if (!*v)
                *v = (uint32_t)(line - w->text) + 1;
        }
        w->n++;
    }
    *out = w;
    return BL_OK;
}

int bl_wordlist_load(bl_wordlist **out, const char *path, bl_err *err)
{
    struct bli_map m;
    *out = NULL;
    int rc = bli_map_file(&m, path, err);
    if (rc)
        return rc;
    if (m.size > UINT32_MAX - 1) {
        bli_unmap(&m);
        return bli_err(err, BL_ERANGE, "%s: a word list of %zu bytes is too large", path, m.size);
    }
    rc = bl_wordlist_from_buffer(out, (const char *)m.data, m.size, err);
    bli_unmap(&m);
    return rc;
}

void bl_wordlist_free(bl_wordlist *w)
{
    if (!w)
        return;
    free(w->text);
    bli_u64map_free(&w->map);
    free(w);
}

int64_t bl_wordlist_size(const bl_wordlist *w)
{
    return w->n;
}

static int fold_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

bool bl_wordlist_has(const bl_wordlist *w, const char *word, size_t n)
{
    if (!n)
        return false;
    for (int fold = 0; fold < 2; fold++) {
        const uint32_t *v = bli_u64map_get(&w->map, fold_hash(word, n, fold) ^ (uint64_t)fold);
        if (!v)
            continue;
        const char *f = w->text + *v - 1;
        if (strlen(f) == n && (fold ? fold_eq(f, word, n) : memcmp(f, word, n) == 0))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- features */

static const char *const stopwords[] = {
    /* Gopher's eight, then the commonest English function words */
    "the", "be", "to", "of", "and", "that", "have", "with",
    "a", "an", "in", "is", "it", "for", "on", "was", "as", "at", "by", "he", "she", "i",
    "you", "we", "they", "his", "her", "not", "but", "or", "this", "are", "from", "had",
    "has", "were", "been", "which", "there", "their", "will", "would", "all", "so", "if",
};

static int is_alnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A code point that counts as a letter for the Gopher rules: ASCII letters
 * and non-ASCII code points outside the punctuation and symbol blocks. */
static int is_letter_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (cp < 0xc0 || cp == 0xd7 || cp == 0xf7)
        return 0;
    if (cp >= 0x2000 && cp <= 0x2bff)
        return 0;
    if (cp >= 0x3000 && cp <= 0x303f)
        return 0;
    if (cp >= 0xfe00 && cp <= 0xfe0f)
        return 0;
    if (cp == 0xfffd || (cp >= 0x1f000 && cp <= 0x1faff))
        return 0;
    return 1;
}

/* Strip leading and trailing ASCII punctuation of a word. */
static void strip_punct(const char **w, int64_t *n)
{
    const unsigned char *p = (const unsigned char *)*w;
    int64_t a = 0, b = *n;
    while (a < b && p[a] < 0x80 && !is_alnum_ascii(p[a]))
        a++;
    while (b > a && p[b - 1] < 0x80 && !is_alnum_ascii(p[b - 1]))
        b--;
    *w += a;
    *n = b - a;
}

static int is_stopword(const char *w, int64_t n)
{
    if (n < 1 || n > 6)
        return 0;
    char lo[8];
    for (int64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        lo[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    for (size_t i = 0; i < sizeof stopwords / sizeof *stopwords; i++)
        if ((int64_t)strlen(stopwords[i]) == n && memcmp(stopwords[i], lo, (size_t)n) == 0)
            return 1;
    return 0;
}

/* Whether the word list has w (a stripped word with a letter): the form, the
 * form without a possessive 's, or every part of a hyphenated form. */
static int dict_has(const bl_wordlist *d, const char *w, int64_t n)
{
    if (bl_wordlist_has(d, w, (size_t)n))
        return 1;
    if (n > 2 && w[n - 2] == '\'' && (w[n - 1] == 's' || w[n - 1] == 'S'))
        return bl_wordlist_has(d, w, (size_t)n - 2);
    if (n > 4 && memcmp(w + n - 4, "\xe2\x80\x99s", 4) == 0)
        return bl_wordlist_has(d, w, (size_t)n - 4);
    if (memchr(w, '-', (size_t)n)) {
        int64_t a = 0;
        for (int64_t i = 0; i <= n; i++)
            if (i == n || w[i] == '-') {
                if (i == a || !bl_wordlist_has(d, w + a, (size_t)(i - a)))
                    return 0;
                a = i + 1;
            }
        return 1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Letters and letters outside the Latin script (PCRE2's Unicode tables). */
static int script_counts(const char *text, size_t n, int64_t *letters, int64_t *other)
{
    static const char *const pat[2] = {"\\p{L}", "(?!\\p{Latin})\\p{L}"};
    int64_t cnt[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        int e;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat[k], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &e, &eo, NULL);
        pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
        if (!re || !md) {
            pcre2_match_data_free(md);
            pcre2_code_free(re);
            return BL_ENOMEM;
        }
        PCRE2_SIZE at = 0;
        while (at < n && pcre2_match(re, (PCRE2_SPTR)text, n, at, 0, md, NULL) > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            cnt[k]++;
            at = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
    *letters = cnt[0];
    *other = cnt[1];
    return BL_OK;
}

int bl_drift_features(const struct bl_drift_scorer *s, const char *text, size_t n,
                      const float *model_bits, struct bl_drift_features *f)
{
    memset(f, 0, sizeof *f);
    const unsigned char *p = (const unsigned char *)text;
    f->n_bytes = (int64_t)n;
    if (!n)
        return BL_OK;
    int rc = BL_ENOMEM;
    uint32_t *sym = malloc(n * sizeof *sym);
    int64_t *wstart = malloc((n + 1) * sizeof *wstart), *wlen = malloc((n + 1) * sizeof *wlen);
    uint64_t *tri = malloc((n + 1) * sizeof *tri), *sorted = malloc((n + 1) * sizeof *sorted);
    unsigned char *zbuf = NULL;
    char *norm = malloc(n + 1);
    if (!sym || !wstart || !wlen || !tri || !sorted || !norm)
        goto out;

    /* characters: symbols, non-printables, non-ASCII */
    int64_t nc = 0, nonprint = 0, nonascii = 0, ascii_letters = 0;
    for (size_t i = 0; i < n;) {
        int len, valid;
        uint32_t cp = bli_utf8_next(p + i, n - i, &len, &valid);
        nc++;
        if (!valid || (cp < 32 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 127 && cp < 0xa0) ||
            cp == 0xfffd)
            nonprint++;
        if (cp >= 0x80)
            nonascii++;
        else if ((cp | 32) >= 'a' && (cp | 32) <= 'z')
            ascii_letters++;
        i += (size_t)len;
    }
    f->n_chars = nc;
    f->v[BL_DF_NONPRINT_RATE] = (double)nonprint / nc;
    f->have[BL_DF_NONPRINT_RATE] = true;
    {
        int64_t letters = ascii_letters, other = 0;
        if (nonascii && (rc = script_counts(text, n, &letters, &other)) != BL_OK)
            goto out;
        f->v[BL_DF_SCRIPT_RATE] = letters ? (double)other / letters : 0.0;
        f->have[BL_DF_SCRIPT_RATE] = true;
    }
    if (model_bits) {
        double b = 0;
        for (size_t i = 0; i < n; i++)
            b += model_bits[i];
        f->v[BL_DF_MODEL_BPC] = b / nc;
        f->have[BL_DF_MODEL_BPC] = true;
    }

    /* zlib: raw deflate at level 9 */
    {
        uLong bound = compressBound((uLong)n) + 16;
        zbuf = malloc(bound);
        z_stream z;
        memset(&z, 0, sizeof z);
        if (!zbuf || deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
            goto out;
        z.next_in = (Bytef *)(uintptr_t)text;
        z.avail_in = (uInt)n;
        z.next_out = zbuf;
        z.avail_out = (uInt)bound;
        int zr = deflate(&z, Z_FINISH);
        uLong zn = z.total_out;
        deflateEnd(&z);
        if (zr != Z_STREAM_END)
            goto out;
        f->v[BL_DF_ZLIB_RATIO] = (double)zn / (double)n;
        f->have[BL_DF_ZLIB_RATIO] = true;
    }

    /* the rest reads the text with its punctuation in ASCII */
    size_t tn = bli_drift_normalize(text, n, norm);
    text = norm;
    n = tn;
    p = (const unsigned char *)norm;

    /* character model: bits per character of the original */
    if (s && s->ref && n) {
        double b = 0;
        int64_t ns = char_symbols(text, n, sym);
        for (int64_t i = 0; i < ns; i++)
            b -= bli_ngram_log2p(&s->ref->chars, sym, 0, i);
        f->v[BL_DF_CHAR_CE] = b / nc;
        f->have[BL_DF_CHAR_CE] = true;
        /* word model */
        int64_t nt = bli_word_tokens(text, n, wstart, wlen, (int64_t)n + 1);
        if (nt >= 2) {
            for (int64_t i = 0; i < nt; i++)
                sym[i] = bli_ref_word_id(s->ref, text + wstart[i], wlen[i]);
            const struct bl_drift_ref *r = s->ref;
            double ce = 0, pmi = 0, vtot = r->word_uni_tot + 0.5 * r->words.n_sym;
            for (int64_t i = 0; i < nt; i++) {
                double lp = bli_ngram_log2p(&r->words, sym, 0, i);
                ce -= lp;
                if (i > 0)
                    pmi += lp - log2((r->word_uni[sym[i]] + 0.5) / vtot);
            }
            f->v[BL_DF_WORD_CE] = ce / nt;
            f->v[BL_DF_WORD_PMI] = pmi / (nt - 1);
            f->have[BL_DF_WORD_CE] = f->have[BL_DF_WORD_PMI] = true;
        }
    }

    /* whitespace-separated words: the Gopher rules, the word list, repeats */
    int64_t nw = 0;
    for (size_t i = 0; i < n;) {
        if (is_space(p[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !is_space(p[j]))
            j++;
        wstart[nw] = (int64_t)i;
        wlen[nw] = (int64_t)(j - i);
        nw++;
        i = j;
    }
    f->n_words = nw;
    if (nw) {
        int64_t chars = 0, alpha = 0, stop = 0, symbols = 0, dict_n = 0, dict_hit = 0;
        for (int64_t k = 0; k < nw; k++) {
            const char *w = text + wstart[k];
            int64_t wn = wlen[k];
            int has_letter = 0;
            for (int64_t i = 0; i < wn;) {
                int len, valid;
                uint32_t cp = bli_utf8_next((const unsigned char *)w + i, (size_t)(wn - i), &len, &valid);
                chars++;
                if (valid && is_letter_cp(cp))
                    has_letter = 1;
                if (cp == '#')
                    symbols++;
                i += len;
            }
            for (int64_t i = 0; i + 2 < wn; i++)
                if (w[i] == '.' && w[i + 1] == '.' && w[i + 2] == '.') {
                    symbols++;
                    i += 2;
                }
            alpha += has_letter;
            const char *sw = w;
            int64_t sn = wn;
            strip_punct(&sw, &sn);
            stop += is_stopword(sw, sn);
            if (s && s->words && has_letter && sn > 0) {
                dict_n++;
                dict_hit += dict_has(s->words, sw, sn);
            }
            tri[k] = 0;
        }
        f->v[BL_DF_MEAN_WORD_LEN] = (double)chars / nw;
        f->v[BL_DF_ALPHA_WORDS] = (double)alpha / nw;
        f->v[BL_DF_STOPWORD_RATE] = (double)stop / nw;
        f->v[BL_DF_SYMBOL_RATIO] = (double)symbols / nw;
        f->have[BL_DF_MEAN_WORD_LEN] = f->have[BL_DF_ALPHA_WORDS] = true;
        f->have[BL_DF_STOPWORD_RATE] = f->have[BL_DF_SYMBOL_RATIO] = true;
        if (s && s->words) {
            f->v[BL_DF_DICT_RATE] = dict_n ? (double)dict_hit / dict_n : 0.0;
            f->have[BL_DF_DICT_RATE] = true;
        }
        /* words inside a word 3-gram that occurs twice or more */
        int64_t nt3 = nw >= 3 ? nw - 2 : 0;
        for (int64_t k = 0; k < nt3; k++) {
            uint64_t h = 0xcbf29ce484222325ULL;
            for (int j = 0; j < 3; j++) {
                const unsigned char *w = p + wstart[k + j];
                for (int64_t i = 0; i < wlen[k + j]; i++) {
                    h ^= w[i];
                    h *= 0x100000001b3ULL;
                }
                h ^= 0xff;   /* a separator no UTF-8 text holds */
                h *= 0x100000001b3ULL;
            }
            tri[k] = h;
            sorted[k] = h;
        }
        qsort(sorted, (size_t)nt3, sizeof *sorted, cmp_u64);
        int64_t covered = 0;
        int64_t last = -1;   /* the last word marked */
        for (int64_t k = 0; k < nt3; k++) {
            uint64_t *lo = bsearch(&tri[k], sorted, (size_t)nt3, sizeof *sorted, cmp_u64);
            int dup = (lo > sorted && lo[-1] == tri[k]) || (lo + 1 < sorted + nt3 && lo[1] == tri[k]);
            if (dup) {
                for (int64_t j = k; j < k + 3; j++)
                    if (j > last) {
                        covered++;
                        last = j;
                    }
            }
        }
        f->v[BL_DF_REPEAT_RATE] = (double)covered / nw;
        f->have[BL_DF_REPEAT_RATE] = true;
    }
    rc = BL_OK;
out:
    free(sym);
    free(wstart);
    free(wlen);
    free(tri);
    free(sorted);
    free(zbuf);
    free(norm);
    return rc;
}

/* ---------------------------------------------------------------- baseline */

static double quantile_sorted(const double *x, int64_t n, double q)
{
    return gsl_stats_quantile_from_sorted_data(x, 1, (size_t)n, q);
}

int bl_drift_baseline_from_text(struct bl_drift_baseline *b, const struct bl_drift_scorer *s,
                                const char *text, size_t n, const float *model_bits, int window,
                                int64_t max_spans, bl_err *err)
{
    memset(b, 0, sizeof *b);
    if (window < 1)
        return bli_err(err, BL_EINVAL, "drift baseline: window %d", window);
    /* candidate spans: consecutive from each line's start, at word starts */
    int64_t cap = (int64_t)(n / (size_t)window) + 1, ns = 0;
    int64_t *span_a = malloc((size_t)cap * sizeof *span_a), *span_b = malloc((size_t)cap * sizeof *span_b);
    int64_t *off = malloc((n + 1) * sizeof *off);
    double *vals = NULL, *scores = NULL;
    struct bl_drift_features *fs = NULL;
    int rc = BL_ENOMEM;
    if (!span_a || !span_b || !off)
        goto out;
    size_t pos = 0, len;
    const char *line;
    while (next_line(text, n, &pos, &line, &len)) {
        int64_t lc = bl_utf8_offsets(line, len, off);
        int64_t c = 0;
        while (c + window <= lc && ns < cap) {
            span_a[ns] = (int64_t)(line - text) + off[c];
            span_b[ns] = (int64_t)(line - text) + off[c + window];
            ns++;
            /* the next span starts at the first word start at or after c + window */
            c += window;
            while (c < lc && !(line[off[c] - 1] == ' ' && line[off[c]] != ' '))
                c++;
        }
    }
    if (ns < 20) {
        rc = bli_err(err, BL_EINVAL, "drift baseline: only %lld spans of %d characters in the text (20 needed)",
                     (long long)ns, window);
        goto out;
    }
    int64_t take = max_spans > 0 && max_spans < ns ? max_spans : ns;
    fs = malloc((size_t)take * sizeof *fs);
    vals = malloc((size_t)take * sizeof *vals);
    scores = malloc((size_t)take * sizeof *scores);
    if (!fs || !vals || !scores)
        goto out;
    for (int64_t i = 0; i < take; i++) {
        int64_t k = i * ns / take;   /* evenly over the text */
        rc = bl_drift_features(s, text + span_a[k], (size_t)(span_b[k] - span_a[k]),
                               model_bits ? model_bits + span_a[k] : NULL, &fs[i]);
        if (rc) {
            rc = bli_err(err, rc, "drift baseline: out of memory");
            goto out;
        }
    }
    b->window = window;
    b->n_spans = take;
    double mean_words = 0;
    for (int64_t i = 0; i < take; i++)
        mean_words += (double)fs[i].n_words / take;
    for (int f = 0; f < BL_DF_COUNT; f++) {
        int64_t m = 0;
        for (int64_t i = 0; i < take; i++)
            if (fs[i].have[f])
                vals[m++] = fs[i].v[f];
        if (m < take / 2 || m < 10)
            continue;
        gsl_sort(vals, 1, (size_t)m);
        double med = quantile_sorted(vals, m, 0.5);
        for (int64_t i = 0; i < m; i++)
            scores[i] = fabs(vals[i] - med);
        gsl_sort(scores, 1, (size_t)m);
        double mad = 1.4826 * quantile_sorted(scores, m, 0.5);
        /* the tail: the bad side's 99th percentile is at most z = 2.326 */
        double hi = (quantile_sorted(vals, m, 0.99) - med) / 2.326;
        double lo = (med - quantile_sorted(vals, m, 0.01)) / 2.326;
        int dir = feature_dir[f];
        double tail = dir > 0 ? hi : dir < 0 ? lo : fmax(hi, lo);
        /* the resolution of a rate over the span's characters or words */
        double floor = 1e-6;
        if (f == BL_DF_NONPRINT_RATE || f == BL_DF_SCRIPT_RATE)
            floor = 1.0 / window;
        else if (f == BL_DF_DICT_RATE || f == BL_DF_STOPWORD_RATE || f == BL_DF_ALPHA_WORDS ||
                 f == BL_DF_SYMBOL_RATIO)
            floor = 1.0 / fmax(mean_words, 1.0);
        else if (f == BL_DF_REPEAT_RATE)   /* one 3-gram twice covers 4 to 6 words */
            floor = 3.0 / fmax(mean_words, 1.0);
        b->median[f] = med;
        b->scale[f] = fmax(fmax(mad, tail), floor);
        b->have[f] = true;
    }
    for (int64_t i = 0; i < take; i++)
        scores[i] = bl_drift_score(b, &fs[i], NULL);
    gsl_sort(scores, 1, (size_t)take);
    b->score_q[0] = quantile_sorted(scores, take, 0.5);
    b->score_q[1] = quantile_sorted(scores, take, 0.9);
    b->score_q[2] = quantile_sorted(scores, take, 0.99);
    rc = BL_OK;
out:
    if (rc == BL_ENOMEM)
        bli_err(err, rc, "drift baseline: out of memory");
    free(span_a);
    free(span_b);
    free(off);
    free(vals);
    free(scores);
    free(fs);
    return rc;
}

double bl_drift_score(const struct bl_drift_baseline *b, const struct bl_drift_features *f, double *z)
{
    double s2 = 0;
    for (int k = 0; k < BL_DF_COUNT; k++) {
        double zk = 0;
        if (b->have[k] && f->have[k]) {
            zk = (f->v[k] - b->median[k]) / b->scale[k];
            zk = feature_dir[k] > 0 ? zk : feature_dir[k] < 0 ? -zk : fabs(zk);
        }
        if (z)
            z[k] = zk;
        if (zk > 0)
            s2 += zk * zk;
    }
    return sqrt(s2);
}

void bl_drift_cusum_init(struct bl_drift_cusum *c, double k, double h)
{
    c->k = k;
    c->h = h;
    c->s = 0;
    c->start = -1;
    c->i = 0;
}

bool bl_drift_cusum_add(struct bl_drift_cusum *c, double score)
{
    double s = c->s + score - c->k;
    if (s > 0) {
        if (c->s <= 0)
            c->start = c->i;
        c->s = s;
    } else {
        c->s = 0;
        c->start = -1;
    }
    c->i++;
    return c->s > c->h;
}

/* ---------------------------------------------------------------- built in */

extern const unsigned char bli_drift_builtin_data[];
extern const uint64_t bli_drift_builtin_size;

int bl_drift_ref_builtin(bl_drift_ref **out, bl_err *err)
{
    return bl_drift_ref_load_memory(out, bli_drift_builtin_data, (size_t)bli_drift_builtin_size,
                                    "built-in English reference", err);
}
