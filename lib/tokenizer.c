/* lib/tokenizer.c: SentencePiece-style BPE (see bitlens/tokenizer.h).
 *
 * Merging keeps the symbols in a linked list over the normalized text and
 * the candidate pairs in a binary heap ordered by (score desc, left asc), so
 * encoding is O(n log n).  A merged symbol is always a contiguous substring
 * of the text, so a pair is looked up without building a string. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <bitlens/tokenizer.h>
#include "internal.h"

struct bl_tokenizer {
    int64_t n;
    char **piece;           /* NUL-terminated copies as stored in the source */
    uint32_t *len;
    float *score;
    uint8_t *kind;          /* enum bl_token_kind */
    int16_t *byte_val;      /* byte tokens: their byte; else -1 */
    int32_t byte_id[256];   /* id of the token <0xXX>, or -1 */
    int32_t bos, eos, unk;
    int add_space_prefix;
    const char *space;      /* how the vocabulary writes a space: "▁" or " " */
    size_t space_len;
    char model[16];
    uint32_t *ht;           /* open addressing: id + 1, 0 = empty */
    size_t ht_mask;
};

/* ------------------------------------------------------------------ lookup */

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* id of the piece equal to s[0..n-1], or -1 */
static int32_t lookup(const bl_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)fnv1a(s, n) & t->ht_mask;
    for (;;) {
        uint32_t e = t->ht[i];
        if (e == 0)
            return -1;
        int32_t id = (int32_t)(e - 1);
        if (t->len[id] == n && memcmp(t->piece[id], s, n) == 0)
            return id;
        i = (i + 1) & t->ht_mask;
    }
}

static int build_index(bl_tokenizer *t)
{
    size_t cap = 16;
    while (cap < (size_t)t->n * 2)
        cap <<= 1;
    t->ht = calloc(cap, sizeof *t->ht);
    if (!t->ht)
        return BL_ENOMEM;
    t->ht_mask = cap - 1;
    /* a later duplicate replaces an earlier one, as llama.cpp's map does */
    for (int64_t id = 0; id < t->n; id++) {
        if (t->len[id] == 0)
            continue;
        size_t i = (size_t)fnv1a(t->piece[id], t->len[id]) & t->ht_mask;
        for (;;) {
            uint32_t e = t->ht[i];
            if (e == 0 || (t->len[e - 1] == t->len[id] &&
                           memcmp(t->piece[e - 1], t->piece[id], t->len[id]) == 0)) {
                t->ht[i] = (uint32_t)id + 1;
                break;
            }
            i = (i + 1) & t->ht_mask;
        }
    }
    return BL_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Byte tokens read "<0xXX>". */
static int parse_byte_piece(const char *p, size_t n)
{
    if (n != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>')
        return -1;
    int hi = hexval(p[3]), lo = hexval(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static bl_tokenizer *tok_alloc(int64_t n)
{
    bl_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n;
    t->piece = bli_calloc((size_t)n, sizeof *t->piece);
    t->len = bli_calloc((size_t)n, sizeof *t->len);
    t->score = bli_calloc((size_t)n, sizeof *t->score);
    t->kind = bli_calloc((size_t)n, sizeof *t->kind);
    t->byte_val = bli_calloc((size_t)n, sizeof *t->byte_val);
    if (!t->piece || !t->len || !t->score || !t->kind || !t->byte_val) {
        bl_tokenizer_free(t);
        return NULL;
    }
    t->bos = t->eos = t->unk = -1;
    t->add_space_prefix = 1;
    memcpy(t->model, "llama", 6);
    return t;
}

void bl_tokenizer_free(bl_tokenizer *t)
{
    if (!t)
        return;
    if (t->piece)
        for (int64_t i = 0; i < t->n; i++)
            free(t->piece[i]);
    free(t->piece);
    free(t->len);
    free(t->score);
    free(t->kind);
    free(t->byte_val);
    free(t->ht);
    free(t);
}

/* After pieces and kinds are in: byte tables and the index. */
static int finish(bl_tokenizer *t, int kinds_known)
{
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    for (int64_t id = 0; id < t->n; id++) {
        int b = parse_byte_piece(t->piece[id], t->len[id]);
        t->byte_val[id] = -1;
        if (!kinds_known)
            t->kind[id] = b >= 0 ? BL_TOKEN_BYTE : BL_TOKEN_NORMAL;
        if (b >= 0 && t->kind[id] == BL_TOKEN_BYTE) {
            t->byte_val[id] = (int16_t)b;
            if (t->byte_id[b] < 0)
                t->byte_id[b] = (int32_t)id;
        }
    }
    if (!kinds_known) {
        if (t->unk >= 0) t->kind[t->unk] = BL_TOKEN_UNKNOWN;
        if (t->bos >= 0) t->kind[t->bos] = BL_TOKEN_CONTROL;
        if (t->eos >= 0) t->kind[t->eos] = BL_TOKEN_CONTROL;
    }
    return build_index(t);
}

/* --------------------------------------------------------------- loaders */

int bl_tokenizer_load_llama2c(bl_tokenizer **out, const char *path, int64_t n_vocab, bl_err *err)
{
    struct bli_map m;
    bl_tokenizer *t = NULL;
    int rc;

    *out = NULL;
    if (n_vocab < 1 || n_vocab > INT32_MAX - 1)
        return bli_err(err, BL_EINVAL, "%s: vocabulary size %" PRId64 " is out of range", path, n_vocab);
    if ((rc = bli_map_file(&m, path, err)))
        return rc;
    if (m.size < 4) {
        rc = bli_err(err, BL_EFORMAT, "%s: too short for a llama2.c tokenizer (%zu bytes)", path, m.size);
        goto fail;
    }
    int32_t max_len = bli_rd_i32(m.data);
    if (max_len < 1 || max_len > (1 << 20)) {
        rc = bli_err(err, BL_EFORMAT, "%s: max_token_length %" PRId32 " at offset 0 is not plausible: "
                     "not a llama2.c tokenizer", path, max_len);
        goto fail;
    }
    if (!(t = tok_alloc(n_vocab))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    t->space = " ";
    t->space_len = 1;
    memcpy(t->model, "llama2.c", 9);
    size_t off = 4;
    for (int64_t i = 0; i < n_vocab; i++) {
        if (off == m.size) {
            rc = bli_err(err, BL_EMISMATCH, "%s: holds %" PRId64 " tokens but the model's vocabulary has %" PRId64
                         ": a tokenizer for another model", path, i, n_vocab);
            goto fail;
        }
        if (!bli_in_bounds(off, 8, m.size)) {
            rc = bli_err(err, BL_EFORMAT, "%s: token %" PRId64 " at offset %zu is cut short (file size %zu)",
                         path, i, off, m.size);
            goto fail;
        }
        float score = bli_rd_f32(m.data + off);
        int32_t len = bli_rd_i32(m.data + off + 4);
        if (len < 0 || len > max_len || !bli_in_bounds(off + 8, (size_t)len, m.size)) {
            rc = bli_err(err, BL_EFORMAT, "%s: token %" PRId64 " at offset %zu has length %" PRId32
                         " (max_token_length %" PRId32 ", %zu bytes left)",
                         path, i, off, len, max_len, m.size - off - 8);
            goto fail;
        }
        t->score[i] = score;
        t->len[i] = (uint32_t)len;
        if (!(t->piece[i] = bli_strndup((const char *)m.data + off + 8, (size_t)len))) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        off += 8 + (size_t)len;
    }
    if (off != m.size) {
        /* count the whole tokens that follow, to say what the file is */
        int64_t more = 0;
        size_t o = off;
        while (bli_in_bounds(o, 8, m.size)) {
            int32_t len = bli_rd_i32(m.data + o + 4);
            if (len < 0 || !bli_in_bounds(o + 8, (size_t)len, m.size))
                break;
            o += 8 + (size_t)len;
            more++;
        }
        if (o == m.size)
            rc = bli_err(err, BL_EMISMATCH, "%s: holds %" PRId64 " tokens but the model's vocabulary has %" PRId64
                         ": a tokenizer for another model", path, n_vocab + more, n_vocab);
        else
            rc = bli_err(err, BL_EFORMAT, "%s: %zu bytes of trailing data at offset %zu after token %" PRId64,
                         path, m.size - off, off, n_vocab - 1);
        goto fail;
    }
    /* llama2.c conventions: 0 <unk>, 1 BOS, 2 EOS */
    t->unk = 0;
    t->bos = n_vocab > 1 ? 1 : -1;
    t->eos = n_vocab > 2 ? 2 : -1;
    if ((rc = finish(t, 0))) {
        rc = bli_err(err, rc, "%s: out of memory", path);
        goto fail;
    }
    bli_unmap(&m);
    *out = t;
    return BL_OK;
fail:
    bl_tokenizer_free(t);
    bli_unmap(&m);
    return rc;
}

static int get_id(const bl_gguf *g, const char *key, int64_t n, int32_t *out, bl_err *err)
{
    int64_t v;
    int rc = bl_gguf_get_i64(g, key, &v, err);
    if (rc == BL_ENOTFOUND)
        return BL_OK;
    if (rc)
        return rc;
    if (v < 0 || v >= n)
        return bli_err(err, BL_EFORMAT, "%s: %s = %" PRId64 " is not a token id (vocabulary of %" PRId64 ")",
                       bl_gguf_name(g), key, v, n);
    *out = (int32_t)v;
    return BL_OK;
}

int bl_tokenizer_from_gguf(bl_tokenizer **out, const bl_gguf *g, bl_err *err)
{
    const char *name = bl_gguf_name(g);
    struct bl_gguf_str model, *strs = NULL;
    bl_tokenizer *t = NULL;
    uint64_t n;
    int et, rc;

    *out = NULL;
    rc = bl_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_ENOTFOUND, "%s: no vocabulary (tokenizer.ggml.model is absent)", name);
    if (rc)
        return rc;
    if (!(model.len == 5 && memcmp(model.ptr, "llama", 5) == 0))
        return bli_err(err, BL_EUNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (only 'llama' for now)",
                       name, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    rc = bl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: tokenizer.ggml.tokens is absent", name);
    if (rc)
        return rc;
    if (et != BL_GGUF_STRING || n == 0 || n > INT32_MAX - 1)
        return bli_err(err, BL_EFORMAT, "%s: tokenizer.ggml.tokens is not a non-empty array of strings", name);
    if (!(t = tok_alloc((int64_t)n)) || !(strs = bli_malloc_array((size_t)n, sizeof *strs))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    if ((rc = bl_gguf_arr_strings(g, "tokenizer.ggml.tokens", strs, n, err)))
        goto fail;
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i].len > (1u << 20)) {
            rc = bli_err(err, BL_EFORMAT, "%s: token %" PRIu64 " is %" PRIu64 " bytes long", name, i, strs[i].len);
            goto fail;
        }
        t->len[i] = (uint32_t)strs[i].len;
        if (!(t->piece[i] = bli_strndup(strs[i].ptr, (size_t)strs[i].len))) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", name);
            goto fail;
        }
    }
    /* scores and types are optional, but must match the token count */
    uint64_t m;
    rc = bl_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &m, err);
    if (rc == BL_OK) {
        if (et != BL_GGUF_FLOAT32 || m != n) {
            rc = bli_err(err, BL_EFORMAT, "%s: tokenizer.ggml.scores holds %" PRIu64 " %s, expected %" PRIu64 " float32",
                         name, m, bl_gguf_type_name(et), n);
            goto fail;
        }
        memcpy(t->score, bl_gguf_arr_data(g, "tokenizer.ggml.scores"), (size_t)n * 4);
    } else if (rc != BL_ENOTFOUND) {
        goto fail;
    }
    int kinds_known = 0;
    rc = bl_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &m, err);
    if (rc == BL_OK) {
        if (et != BL_GGUF_INT32 || m != n) {
            rc = bli_err(err, BL_EFORMAT, "%s: tokenizer.ggml.token_type holds %" PRIu64 " %s, expected %" PRIu64 " int32",
                         name, m, bl_gguf_type_name(et), n);
            goto fail;
        }
        const unsigned char *p = bl_gguf_arr_data(g, "tokenizer.ggml.token_type");
        for (uint64_t i = 0; i < n; i++) {
            int32_t k = bli_rd_i32(p + 4 * i);
            t->kind[i] = (uint8_t)(k >= BL_TOKEN_NORMAL && k <= BL_TOKEN_BYTE ? k : BL_TOKEN_NORMAL);
        }
        kinds_known = 1;
    } else if (rc != BL_ENOTFOUND) {
        goto fail;
    }
    t->bos = 1 < (int64_t)n ? 1 : -1;
    t->eos = 2 < (int64_t)n ? 2 : -1;
    t->unk = 0;
    if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", t->n, &t->bos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.eos_token_id", t->n, &t->eos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.unknown_token_id", t->n, &t->unk, err)))
        goto fail;
    int asp;
    rc = bl_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp, err);
    if (rc == BL_OK)
        t->add_space_prefix = asp;
    else if (rc != BL_ENOTFOUND)
        goto fail;
    t->space = "\xe2\x96\x81";
    t->space_len = 3;
    if ((rc = finish(t, kinds_known))) {
        rc = bli_err(err, rc, "%s: out of memory", name);
        goto fail;
    }
    free(strs);
    *out = t;
    return BL_OK;
fail:
    free(strs);
    bl_tokenizer_free(t);
    return rc;
}

/* ---------------------------------------------------------------- access */

int64_t bl_tokenizer_n_vocab(const bl_tokenizer *t) { return t->n; }
int32_t bl_tokenizer_bos(const bl_tokenizer *t) { return t->bos; }
int32_t bl_tokenizer_eos(const bl_tokenizer *t) { return t->eos; }
const char *bl_tokenizer_model(const bl_tokenizer *t) { return t->model; }

int bl_tokenizer_kind(const bl_tokenizer *t, int32_t id)
{
    BL_ASSERT(id >= 0 && id < t->n);
    return t->kind[id];
}

float bl_tokenizer_score(const bl_tokenizer *t, int32_t id)
{
    BL_ASSERT(id >= 0 && id < t->n);
    return t->score[id];
}

const char *bl_tokenizer_piece(const bl_tokenizer *t, int32_t id, size_t *len)
{
    BL_ASSERT(id >= 0 && id < t->n);
    if (len)
        *len = t->len[id];
    return t->piece[id];
}

/* ---------------------------------------------------------------- encode */

struct sym {
    int32_t prev, next;   /* neighbours in the list, -1 at the ends */
    size_t start, len;    /* substring of the normalized text; len 0 = merged away */
};

struct bigram {
    float score;
    int32_t left, right;
    size_t len;           /* text length of the merge, to detect stale entries */
};

/* heap order: higher score first, then smaller left */
static int before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct bigram *h, size_t *n, struct bigram b)
{
    size_t i = (*n)++;
    h[i] = b;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&h[i], &h[p]))
            break;
        struct bigram tmp = h[i];
        h[i] = h[p];
        h[p] = tmp;
        i = p;
    }
}

static struct bigram heap_pop(struct bigram *h, size_t *n)
{
    struct bigram top = h[0];
    h[0] = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && before(&h[l], &h[m]))
            m = l;
        if (r < *n && before(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        struct bigram tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
    return top;
}

static void try_pair(const bl_tokenizer *t, const char *text, const struct sym *s, int32_t l,
                     int32_t r, struct bigram *h, size_t *nh)
{
    if (l < 0 || r < 0)
        return;
    size_t len = s[l].len + s[r].len;
    int32_t id = lookup(t, text + s[l].start, len);
    if (id < 0)
        return;
    heap_push(h, nh, (struct bigram){t->score[id], l, r, len});
}

static size_t utf8_len(unsigned char c)
{
    static const unsigned char lookup_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup_len[c >> 4];
}

int bl_tokenizer_encode(const bl_tokenizer *t, const char *text, size_t len, unsigned flags,
                        int32_t *ids, int64_t cap, int64_t *n_ids)
{
    int64_t n = 0;
    int rc = BL_OK;
    char *norm = NULL;
    struct sym *s = NULL;
    struct bigram *h = NULL;

#define EMIT(id)                                                                               \
    do {                                                                                       \
        if (n < cap)                                                                           \
            ids[n] = (id);                                                                     \
        n++;                                                                                   \
    } while (0)

    if ((flags & BL_TOK_BOS) && t->bos >= 0)
        EMIT(t->bos);
    if (len > 0) {
        /* normalize: dummy prefix, spaces written as the vocabulary does */
        size_t spaces = 0;
        for (size_t i = 0; i < len; i++)
            spaces += text[i] == ' ';
        size_t nlen = len + (spaces + (t->add_space_prefix ? 1 : 0)) * (t->space_len - 1) +
                      (t->add_space_prefix ? 1 : 0);
        norm = malloc(nlen + 1);
        s = bli_malloc_array(nlen, sizeof *s);
        h = bli_malloc_array(3 * nlen + 1, sizeof *h);
        if (!norm || !s || !h) {
            rc = BL_ENOMEM;
            goto done;
        }
        size_t o = 0;
        if (t->add_space_prefix) {
            memcpy(norm, t->space, t->space_len);
            o = t->space_len;
        }
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') {
                memcpy(norm + o, t->space, t->space_len);
                o += t->space_len;
            } else {
                norm[o++] = text[i];
            }
        }
        BL_ASSERT(o == nlen);
        /* one symbol per UTF-8 character: the length its lead byte gives,
         * cut short at the end of the text or at the first byte that is not
         * a continuation byte (so a stray lead byte never swallows the "▁"
         * after it; valid UTF-8 splits as llama.cpp splits it) */
        int32_t ns = 0;
        for (size_t i = 0; i < nlen;) {
            size_t cl = utf8_len((unsigned char)norm[i]);
            if (cl > nlen - i)
                cl = nlen - i;
            for (size_t k = 1; k < cl; k++)
                if (((unsigned char)norm[i + k] & 0xc0) != 0x80) {
                    cl = k;
                    break;
                }
            s[ns] = (struct sym){ns - 1, ns + 1, i, cl};
            ns++;
            i += cl;
        }
        s[ns - 1].next = -1;
        size_t nh = 0;
        for (int32_t i = 0; i + 1 < ns; i++)
            try_pair(t, norm, s, i, i + 1, h, &nh);
        while (nh > 0) {
            struct bigram b = heap_pop(h, &nh);
            struct sym *l = &s[b.left], *r = &s[b.right];
            if (l->len == 0 || r->len == 0 || l->len + r->len != b.len || l->next != b.right)
                continue;   /* stale: one side was merged since */
            l->len += r->len;
            r->len = 0;
            l->next = r->next;
            if (r->next >= 0)
                s[r->next].prev = b.left;
            try_pair(t, norm, s, l->prev, b.left, h, &nh);
            try_pair(t, norm, s, b.left, l->next, h, &nh);
        }
        for (int32_t i = 0; i >= 0; i = s[i].next) {
            int32_t id = lookup(t, norm + s[i].start, s[i].len);
            if (id >= 0) {
                EMIT(id);
                continue;
            }
            for (size_t j = 0; j < s[i].len; j++) {
                int32_t bid = t->byte_id[(unsigned char)norm[s[i].start + j]];
                EMIT(bid >= 0 ? bid : t->unk >= 0 ? t->unk : 0);
            }
        }
    }
    if ((flags & BL_TOK_EOS) && t->eos >= 0)
        EMIT(t->eos);
    if (n > cap)
        rc = BL_ERANGE;
#undef EMIT
done:
    *n_ids = n;
    free(norm);
    free(s);
    free(h);
    return rc;
}

/* ---------------------------------------------------------------- decode */

size_t bl_tokenizer_decode(const bl_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap)
{
    BL_ASSERT(id >= 0 && id < t->n);
    if (t->kind[id] == BL_TOKEN_CONTROL)
        return 0;
    if (t->byte_val[id] >= 0) {
        if (cap > 0)
            buf[0] = (char)t->byte_val[id];
        return 1;
    }
    const char *p = t->piece[id];
    size_t n = t->len[id], o = 0;
    int strip = prev >= 0 && prev == t->bos;
    for (size_t i = 0; i < n;) {
        if (n - i >= t->space_len && memcmp(p + i, t->space, t->space_len) == 0) {
            i += t->space_len;
            if (strip && o == 0) {
                strip = 0;
                continue;
            }
            if (o < cap)
                buf[o] = ' ';
            o++;
        } else {
            if (o < cap)
                buf[o] = p[i];
            o++;
            i++;
        }
        strip = 0;
    }
    return o;
}
