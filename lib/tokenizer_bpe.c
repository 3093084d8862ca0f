/* lib/tokenizer_bpe.c: BPE by merge rank (see bitlens/tokenizer.h and
 * lib/tokenizer_internal.h): the GPT-2 byte-to-unicode alphabet, the merge
 * table, regex pre-tokenizers (PCRE2), the byte-level and
 * SentencePiece-text encoders, and the loaders of OpenAI's encoder.json +
 * vocab.bpe and Hugging Face's tokenizer.json (cJSON).
 *
 * Encoding a piece: one symbol per byte (byte-level) or per UTF-8
 * character (SentencePiece text), each with its token id; the adjacent
 * pairs that are merge rules go into a binary heap ordered by (rank,
 * position); the lowest is merged into the token it becomes and the pairs
 * with its new neighbours are pushed; entries whose symbols changed since
 * are skipped.  O(n log n) per piece, with the pair table a hash on the two
 * ids.  The work space belongs to the encode call, never to the tokenizer. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <bitlens/tokenizer.h>
#include "internal.h"
#include "tokenizer_internal.h"

/* ------------------------------------------------------ the GPT-2 alphabet */

/* The code point standing for byte b: printable Latin-1 bytes stand for
 * themselves, the other 68 (0-32, 127-160, 173) for 256 + their order. */
static unsigned byte_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    if (b <= 32)
        return 256 + b;
    if (b <= 160)
        return 256 + 33 + (b - 127);
    return 256 + 67;   /* 173 */
}

/* The byte a code point stands for, or -1. */
static int cp_byte(unsigned cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp > 256 + 67)
        return -1;
    unsigned k = cp - 256;
    if (k <= 32)
        return (int)k;
    if (k <= 66)
        return (int)(127 + k - 33);
    return 173;
}

size_t bli_tok_byte_char(unsigned b, char out[2])
{
    unsigned cp = byte_cp(b & 0xff);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* The bytes piece p[0..n-1] spells in the alphabet into out (at most n
 * bytes); returns their count, or -1 if a character is not in it. */
static int64_t alphabet_decode(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)p[i];
        unsigned cp;
        if (c < 0x80) {
            cp = c;
            i++;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n && ((unsigned char)p[i + 1] & 0xC0) == 0x80) {
            cp = (c & 0x1F) << 6 | ((unsigned char)p[i + 1] & 0x3F);
            if (cp < 0x80)
                return -1;   /* overlong */
            i += 2;
        } else {
            return -1;
        }
        int b = cp_byte(cp);
        if (b < 0)
            return -1;
        out[o++] = (char)b;
    }
    return (int64_t)o;
}

/* ------------------------------------------------------------- cleanup */

void bli_tok_free_bpe(bl_tokenizer *t)
{
    free(t->merge_left);
    free(t->merge_right);
    free(t->merge_id);
    free(t->pairs);
    free(t->raw);
    free(t->raw_off);
    free(t->raw_len);
    free(t->rht);
    for (int i = 0; i < t->n_splits; i++) {
        pcre2_code_free(t->split[i].re);
        free(t->split[i].pattern);
    }
    t->n_splits = 0;
}

/* ------------------------------------------------------------- merges */

static uint64_t pair_key(int32_t l, int32_t r)
{
    return ((uint64_t)(uint32_t)l + 1) << 32 | (uint32_t)r;
}

static size_t pair_slot(uint64_t key, size_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & mask;
}

static const struct bli_pair *find_pair(const bl_tokenizer *t, int32_t l, int32_t r)
{
    if (!t->pairs)
        return NULL;
    uint64_t key = pair_key(l, r);
    for (size_t i = pair_slot(key, t->pairs_mask);; i = (i + 1) & t->pairs_mask) {
        const struct bli_pair *p = &t->pairs[i];
        if (p->key == key)
            return p;
        if (p->key == 0)
            return NULL;
    }
}

int bli_tok_set_merges(bl_tokenizer *t, const int32_t *left, const int32_t *right, int64_t n,
                       const char *name, const char *what, bl_err *err)
{
    char *tmp = NULL;
    size_t tmp_cap = 0;
    int rc = BL_OK;

    if (n < 0 || n > INT32_MAX)
        return bli_err(err, BL_EFORMAT, "%s: %s: %" PRId64 " merges is too many", name, what, n);
    size_t cap = 16;
    while (cap < (size_t)n + (size_t)n / 2 + 1)
        cap <<= 1;
    t->pairs = bli_calloc(cap, sizeof *t->pairs);
    t->merge_left = bli_malloc_array((size_t)n + 1, sizeof *t->merge_left);
    t->merge_right = bli_malloc_array((size_t)n + 1, sizeof *t->merge_right);
    t->merge_id = bli_malloc_array((size_t)n + 1, sizeof *t->merge_id);
    if (!t->pairs || !t->merge_left || !t->merge_right || !t->merge_id)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", name);
    t->pairs_mask = cap - 1;
    for (int64_t r = 0; r < n; r++) {
        int32_t a = left[r], b = right[r];
        BL_ASSERT(a >= 0 && a < t->n && b >= 0 && b < t->n);
        size_t la = t->len[a], lb = t->len[b];
        if (la + lb > tmp_cap) {
            char *nt = realloc(tmp, la + lb);
            if (!nt) {
                rc = bli_err(err, BL_ENOMEM, "%s: out of memory", name);
                goto done;
            }
            tmp = nt;
            tmp_cap = la + lb;
        }
        memcpy(tmp, t->piece[a], la);
        memcpy(tmp + la, t->piece[b], lb);
        int32_t id = bli_tok_lookup(t, tmp, la + lb);
        if (id < 0) {
            rc = bli_err(err, BL_EFORMAT, "%s: %s[%" PRId64 "]: '%.*s' + '%.*s' = '%.*s' is not in the vocabulary",
                         name, what, r, (int)(la > 48 ? 48 : la), t->piece[a], (int)(lb > 48 ? 48 : lb),
                         t->piece[b], (int)(la + lb > 96 ? 96 : la + lb), tmp);
            goto done;
        }
        t->merge_left[r] = a;
        t->merge_right[r] = b;
        t->merge_id[r] = id;
        /* a pair listed twice keeps its first rank, as llama.cpp's map does */
        uint64_t key = pair_key(a, b);
        for (size_t i = pair_slot(key, t->pairs_mask);; i = (i + 1) & t->pairs_mask) {
            struct bli_pair *p = &t->pairs[i];
            if (p->key == key)
                break;
            if (p->key == 0) {
                *p = (struct bli_pair){key, (int32_t)r, id};
                break;
            }
        }
    }
    t->n_merges = n;
done:
    free(tmp);
    return rc;
}

/* ---------------------------------------------------- byte-level tables */

static int32_t raw_lookup(const bl_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)bli_tok_hash(s, n) & t->rht_mask;
    for (;;) {
        uint32_t e = t->rht[i];
        if (e == 0)
            return -1;
        int32_t id = (int32_t)(e - 1);
        if (t->raw_len[id] == n && memcmp(t->raw + t->raw_off[id], s, n) == 0)
            return id;
        i = (i + 1) & t->rht_mask;
    }
}

int bli_tok_setup_bytes(bl_tokenizer *t, const char *name, bl_err *err)
{
    size_t total = 0;
    for (int64_t id = 0; id < t->n; id++)
        total += t->len[id];
    if (total > UINT32_MAX - 1)
        return bli_err(err, BL_EFORMAT, "%s: the vocabulary holds %zu bytes of pieces, too many", name, total);
    t->raw = malloc(total + 1);
    t->raw_off = bli_malloc_array((size_t)t->n, sizeof *t->raw_off);
    t->raw_len = bli_malloc_array((size_t)t->n, sizeof *t->raw_len);
    size_t cap = 16;
    while (cap < (size_t)t->n * 2)
        cap <<= 1;
    t->rht = bli_calloc(cap, sizeof *t->rht);
    if (!t->raw || !t->raw_off || !t->raw_len || !t->rht)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", name);
    t->rht_mask = cap - 1;
    size_t off = 0;
    for (int64_t id = 0; id < t->n; id++) {
        int64_t k = alphabet_decode(t->piece[id], t->len[id], t->raw + off);
        t->raw_off[id] = (uint32_t)off;
        t->raw_len[id] = k < 0 || t->len[id] == 0 ? UINT32_MAX : (uint32_t)k;
        if (t->raw_len[id] == UINT32_MAX)
            continue;
        off += (size_t)k;
        /* as the index over the pieces: a later duplicate replaces an earlier one */
        size_t i = (size_t)bli_tok_hash(t->raw + t->raw_off[id], (size_t)k) & t->rht_mask;
        for (;;) {
            uint32_t e = t->rht[i];
            if (e == 0 || (t->raw_len[e - 1] == (uint32_t)k &&
                           memcmp(t->raw + t->raw_off[e - 1], t->raw + t->raw_off[id], (size_t)k) == 0)) {
                t->rht[i] = (uint32_t)id + 1;
                break;
            }
            i = (i + 1) & t->rht_mask;
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        char c[2];
        size_t cl = bli_tok_byte_char(b, c);
        t->byte_tok[b] = bli_tok_lookup(t, c, cl);
        if (t->byte_tok[b] < 0)
            return bli_err(err, BL_EFORMAT, "%s: the byte-level vocabulary has no token for byte 0x%02X ('%.*s')",
                           name, b, (int)cl, c);
    }
    return BL_OK;
}

/* ------------------------------------------------------ pre-tokenizers */

/* The pre-tokenizer regexes of the tokenizers bitlens knows, as their
 * tokenizer.json files write them. */
static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_TEKKEN[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_DIGIT[] = "\\p{N}";

struct pre_def {
    const char *name;        /* what bitlens writes */
    const char *alias[3];    /* what it also reads */
    const char *re[2];       /* Isolated split steps, in order */
    int ignore_merges;
    int add_bos;             /* llama.cpp's default when the file does not say */
};

static const struct pre_def pre_defs[] = {
    {"gpt-2", {"default", NULL, NULL}, {RE_GPT2, NULL}, 0, 0},
    {"llama-bpe", {"llama3", "llama-v3", NULL}, {RE_LLAMA3, NULL}, 1, 1},
    {"qwen2", {NULL, NULL, NULL}, {RE_QWEN2, NULL}, 0, 0},
    {"smollm", {NULL, NULL, NULL}, {RE_DIGIT, RE_GPT2}, 0, 0},
    {"tekken", {NULL, NULL, NULL}, {RE_TEKKEN, NULL}, 1, 1},
};
#define N_PRE_DEFS (sizeof pre_defs / sizeof pre_defs[0])

int bli_tok_add_split(bl_tokenizer *t, const char *pattern, size_t len, int literal, int behavior,
                      int invert, const char *name, const char *path, bl_err *err)
{
    if (t->n_splits >= BLI_MAX_SPLITS)
        return bli_err(err, BL_EUNSUPPORTED, "%s: %s: more than %d pre-tokenizer splits", name, path,
                       BLI_MAX_SPLITS);
    if (len == 0)
        return bli_err(err, BL_EFORMAT, "%s: %s: empty split pattern", name, path);
    struct bli_split *sp = &t->split[t->n_splits];
    memset(sp, 0, sizeof *sp);
    if (!(sp->pattern = bli_strndup(pattern, len)))
        return bli_err(err, BL_ENOMEM, "%s: out of memory", name);
    int errcode;
    PCRE2_SIZE erroff;
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    sp->re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &errcode, &erroff, NULL);
    if (!sp->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        free(sp->pattern);
        sp->pattern = NULL;
        return bli_err(err, BL_EFORMAT, "%s: %s: pattern '%.*s' does not compile: %s at offset %zu", name, path,
                       (int)(len > 80 ? 80 : len), pattern, (const char *)msg, (size_t)erroff);
    }
    /* JIT if the platform has it; pcre2_match() uses it by itself */
    (void)pcre2_jit_compile(sp->re, PCRE2_JIT_COMPLETE);
    sp->literal = literal;
    sp->behavior = behavior;
    sp->invert = invert;
    t->n_splits++;
    return BL_OK;
}

int bli_tok_set_pre(bl_tokenizer *t, const char *pre, size_t pre_len, const char *name, bl_err *err)
{
    const struct pre_def *d = &pre_defs[0];
    if (pre && pre_len > 0) {
        d = NULL;
        for (size_t i = 0; i < N_PRE_DEFS && !d; i++) {
            const struct pre_def *c = &pre_defs[i];
            if (strlen(c->name) == pre_len && memcmp(c->name, pre, pre_len) == 0)
                d = c;
            for (int k = 0; k < 3 && !d && c->alias[k]; k++)
                if (strlen(c->alias[k]) == pre_len && memcmp(c->alias[k], pre, pre_len) == 0)
                    d = c;
        }
        if (!d)
            return bli_err(err, BL_EUNSUPPORTED,
                           "%s: pre-tokenizer '%.*s' (tokenizer.ggml.pre) is not supported "
                           "(gpt-2, llama-bpe, qwen2, smollm and tekken are)",
                           name, (int)(pre_len > 64 ? 64 : pre_len), pre);
    }
    for (int k = 0; k < 2 && d->re[k]; k++) {
        int rc = bli_tok_add_split(t, d->re[k], strlen(d->re[k]), 0, BLI_SPLIT_ISOLATED, 0, name,
                                   "tokenizer.ggml.pre", err);
        if (rc)
            return rc;
    }
    t->ignore_merges = d->ignore_merges;
    t->add_bos = d->add_bos;
    snprintf(t->pre, sizeof t->pre, "%s", d->name);
    return BL_OK;
}

const char *bli_tok_pre_name(const bl_tokenizer *t)
{
    for (size_t i = 0; i < N_PRE_DEFS; i++) {
        const struct pre_def *d = &pre_defs[i];
        int n = d->re[1] ? 2 : 1;
        if (n != t->n_splits || d->ignore_merges != t->ignore_merges)
            continue;
        int same = 1;
        for (int k = 0; k < n && same; k++) {
            const struct bli_split *sp = &t->split[k];
            same = !sp->literal && !sp->invert && sp->behavior == BLI_SPLIT_ISOLATED &&
                   strcmp(sp->pattern, d->re[k]) == 0;
        }
        if (same)
            return d->name;
    }
    return NULL;
}

/* ------------------------------------------------------------- encoding */

void bli_tok_ws_release(struct bli_ws *ws)
{
    free(ws->sym);
    free(ws->heap);
    free(ws->buf);
    if (ws->md)
        pcre2_match_data_free(ws->md);
    if (ws->mctx)
        pcre2_match_context_free(ws->mctx);
    if (ws->jit)
        pcre2_jit_stack_free(ws->jit);
    memset(ws, 0, sizeof *ws);
}

int bli_tok_ws_reserve(struct bli_ws *ws, size_t n, size_t nbuf)
{
    if (n > ws->sym_cap) {
        size_t cap = ws->sym_cap ? ws->sym_cap : 64;
        while (cap < n)
            cap *= 2;
        struct bli_sym *s = bli_malloc_array(cap, sizeof *s);
        struct bli_bigram *h = bli_malloc_array(3 * cap + 1, sizeof *h);
        if (!s || !h) {
            free(s);
            free(h);
            return BL_ENOMEM;
        }
        free(ws->sym);
        free(ws->heap);
        ws->sym = s;
        ws->heap = h;
        ws->sym_cap = cap;
        ws->heap_cap = 3 * cap + 1;
    }
    if (nbuf > ws->buf_cap) {
        size_t cap = ws->buf_cap ? ws->buf_cap : 256;
        while (cap < nbuf)
            cap *= 2;
        char *b = malloc(cap);
        if (!b)
            return BL_ENOMEM;
        free(ws->buf);
        ws->buf = b;
        ws->buf_cap = cap;
    }
    return BL_OK;
}

static size_t utf8_len(unsigned char c)
{
    static const unsigned char lookup_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup_len[c >> 4];
}

struct enc {
    const bl_tokenizer *t;
    struct bli_out *o;
    struct bli_ws *ws;
};

static void push_pair(const bl_tokenizer *t, const struct bli_sym *s, int32_t l, int32_t r,
                      struct bli_bigram *h, size_t *nh)
{
    if (l < 0 || r < 0 || s[l].id < 0 || s[r].id < 0)
        return;
    const struct bli_pair *p = find_pair(t, s[l].id, s[r].id);
    if (!p)
        return;
    struct bli_bigram b = {(double)p->rank, l, r, s[l].id, s[r].id, p->id, 0};
    bli_heap_push(h, nh, b);
}

/* Merge the symbols s[0..ns-1] (linked in order) by rank. */
static void merge_symbols(const bl_tokenizer *t, struct bli_sym *s, int32_t ns, struct bli_bigram *h)
{
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        push_pair(t, s, i, i + 1, h, &nh);
    while (nh > 0) {
        struct bli_bigram b = bli_heap_pop(h, &nh);
        struct bli_sym *l = &s[b.left], *r = &s[b.right];
        if (l->len == 0 || r->len == 0 || l->next != b.right || l->id != b.lid || r->id != b.rid)
            continue;   /* stale: a side was merged since */
        l->id = b.id;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = b.left;
        push_pair(t, s, l->prev, b.left, h, &nh);
        push_pair(t, s, b.left, l->next, h, &nh);
    }
}

/* Byte-level BPE of one piece. */
static int piece_bytes(struct enc *e, const char *p, size_t n)
{
    const bl_tokenizer *t = e->t;
    if (n == 0)
        return BL_OK;
    if (t->ignore_merges) {
        int32_t id = raw_lookup(t, p, n);
        if (id >= 0) {
            bli_emit(e->o, id);
            return BL_OK;
        }
    }
    if (n == 1) {
        bli_emit(e->o, t->byte_tok[(unsigned char)p[0]]);
        return BL_OK;
    }
    /* symbols and heap only: the buffer may hold this very piece */
    int rc = bli_tok_ws_reserve(e->ws, n, 0);
    if (rc)
        return rc;
    struct bli_sym *s = e->ws->sym;
    for (size_t i = 0; i < n; i++)
        s[i] = (struct bli_sym){(int32_t)i - 1, (int32_t)i + 1, t->byte_tok[(unsigned char)p[i]], (uint32_t)i, 1};
    s[n - 1].next = -1;
    merge_symbols(t, s, (int32_t)n, e->ws->heap);
    for (int32_t i = 0; i >= 0; i = s[i].next)
        bli_emit(e->o, s[i].id);
    return BL_OK;
}

/* SentencePiece-text BPE of one piece: symbols are UTF-8 characters. */
static int piece_chars(struct enc *e, const char *p, size_t n)
{
    const bl_tokenizer *t = e->t;
    if (n == 0)
        return BL_OK;
    if (t->ignore_merges) {
        int32_t id = bli_tok_lookup(t, p, n);
        if (id >= 0) {
            bli_emit(e->o, id);
            return BL_OK;
        }
    }
    int rc = bli_tok_ws_reserve(e->ws, n, 0);
    if (rc)
        return rc;
    struct bli_sym *s = e->ws->sym;
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        /* as encode_scores() cuts characters */
        size_t cl = utf8_len((unsigned char)p[i]);
        if (cl > n - i)
            cl = n - i;
        for (size_t k = 1; k < cl; k++)
            if (((unsigned char)p[i + k] & 0xc0) != 0x80) {
                cl = k;
                break;
            }
        s[ns] = (struct bli_sym){ns - 1, ns + 1, bli_tok_lookup(t, p + i, cl), (uint32_t)i, (uint32_t)cl};
        ns++;
        i += cl;
    }
    s[ns - 1].next = -1;
    merge_symbols(t, s, ns, e->ws->heap);
    int prev_unk = 0;
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (s[i].id >= 0) {
            bli_emit(e->o, s[i].id);
            prev_unk = 0;
            continue;
        }
        int all = t->byte_fallback;
        for (uint32_t j = 0; j < s[i].len && all; j++)
            all = t->byte_id[(unsigned char)p[s[i].start + j]] >= 0;
        if (all) {
            for (uint32_t j = 0; j < s[i].len; j++)
                bli_emit(e->o, t->byte_id[(unsigned char)p[s[i].start + j]]);
            prev_unk = 0;
        } else if (!(prev_unk && t->fuse_unk)) {
            /* the loader made sure there is an unknown token if byte fallback can fail */
            bli_emit(e->o, t->unk >= 0 ? t->unk : 0);
            prev_unk = 1;
        }
    }
    return BL_OK;
}

/* PCRE2's match limit for one search, plus 16 per byte left (PCRE2's own
 * default is 10 000 000). */
#define BLI_MATCH_LIMIT 1000000

/* The next non-empty match of split k in s[0..n-1] at or after pos:
 * 1 with [*ms, *me), 0 if none.  A match error other than running out of
 * memory (the match limit) ends the matching: the rest is left unmatched. */
static int next_match(struct enc *e, int k, const char *s, size_t n, size_t pos, size_t *ms, size_t *me,
                      int *rc)
{
    const struct bli_split *sp = &e->t->split[k];
    struct bli_ws *ws = e->ws;
    *rc = BL_OK;
    if (pos >= n)
        return 0;
    if (!ws->md && !(ws->md = pcre2_match_data_create(1, NULL))) {
        *rc = BL_ENOMEM;
        return 0;
    }
    if (!ws->mctx && !(ws->mctx = pcre2_match_context_create(NULL))) {
        *rc = BL_ENOMEM;
        return 0;
    }
    /* a regex from a tokenizer.json may backtrack without end: bound each
     * search (the tokenizers' own regexes take a few steps per byte: Llama
     * 3's backtracks once per byte of a run of spaces) */
    size_t limit = BLI_MATCH_LIMIT + 16 * (n - pos);
    pcre2_set_match_limit(ws->mctx, limit > UINT32_MAX || limit < n - pos ? UINT32_MAX : (uint32_t)limit);
    int r = pcre2_match(sp->re, (PCRE2_SPTR)s, n, pos, PCRE2_NOTEMPTY, ws->md, ws->mctx);
    if (r == PCRE2_ERROR_JIT_STACKLIMIT && !ws->jit) {
        /* a long piece: give the JIT a larger stack for this call */
        if (!(ws->jit = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL))) {
            *rc = BL_ENOMEM;
            return 0;
        }
        pcre2_jit_stack_assign(ws->mctx, NULL, ws->jit);
        r = pcre2_match(sp->re, (PCRE2_SPTR)s, n, pos, PCRE2_NOTEMPTY, ws->md, ws->mctx);
    }
    if (r == PCRE2_ERROR_NOMEMORY) {
        *rc = BL_ENOMEM;
        return 0;
    }
    if (r < 0)
        return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ws->md);
    if (ov[0] >= ov[1] || ov[1] > n)
        return 0;
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

static int split_from(struct enc *e, int k, const char *s, size_t n);

static int emit_piece(struct enc *e, int k, const char *s, size_t a, size_t b)
{
    return b > a ? split_from(e, k + 1, s + a, b - a) : BL_OK;
}

/* Apply split step k (and the ones after it) to s[0..n-1]; the pieces of
 * the last step are encoded. */
static int split_from(struct enc *e, int k, const char *s, size_t n)
{
    const bl_tokenizer *t = e->t;
    if (k >= t->n_splits)
        return t->algo == BLI_ALGO_BYTES ? piece_bytes(e, s, n) : piece_chars(e, s, n);
    const struct bli_split *sp = &t->split[k];
    size_t cur = 0, pos = 0, prev_end = 0, gs = 0, ge = 0;
    int group = 0, rc = BL_OK;
    for (;;) {
        size_t ms = n, me = n, ds = 0, de = 0;
        int found = next_match(e, k, s, n, pos, &ms, &me, &rc);
        if (rc)
            return rc;
        int have = 0;
        if (!sp->invert) {
            if (!found)
                break;
            ds = ms;
            de = me;
            have = 1;
        } else {
            /* the pieces match; the gaps between them are the delimiters */
            size_t gap_end = found ? ms : n;
            if (gap_end > prev_end) {
                ds = prev_end;
                de = gap_end;
                have = 1;
            }
            if (found)
                prev_end = me;
        }
        pos = me;
        if (have) {
            switch (sp->behavior) {
            case BLI_SPLIT_REMOVED:
                rc = emit_piece(e, k, s, cur, ds);
                cur = de;
                break;
            case BLI_SPLIT_ISOLATED:
                if (!(rc = emit_piece(e, k, s, cur, ds)))
                    rc = emit_piece(e, k, s, ds, de);
                cur = de;
                break;
            case BLI_SPLIT_MERGED_PREV:
                rc = emit_piece(e, k, s, cur, de);
                cur = de;
                break;
            case BLI_SPLIT_MERGED_NEXT:
                rc = emit_piece(e, k, s, cur, ds);
                cur = ds;
                break;
            default:   /* CONTIGUOUS */
                if (group && ds == ge) {
                    ge = de;
                } else {
                    if (group) {
                        if (!(rc = emit_piece(e, k, s, cur, gs)))
                            rc = emit_piece(e, k, s, gs, ge);
                        cur = ge;
                    }
                    gs = ds;
                    ge = de;
                    group = 1;
                }
                break;
            }
            if (rc)
                return rc;
        }
        if (!found)
            break;
    }
    if (group) {
        if ((rc = emit_piece(e, k, s, cur, gs)) || (rc = emit_piece(e, k, s, gs, ge)))
            return rc;
        cur = ge;
    }
    return emit_piece(e, k, s, cur, n);
}

int bli_tok_encode_bpe(const bl_tokenizer *t, const char *text, size_t len, int at_start,
                       struct bli_out *o, struct bli_ws *ws)
{
    struct enc e = {t, o, ws};
    int rc;
    if (t->algo == BLI_ALGO_BYTES) {
        /* ByteLevel add_prefix_space: one space before a fragment that has none */
        if (t->prefix_space && text[0] != ' ') {
            /* (the pieces only ever grow the symbols and the heap, so the
             * buffer stays where it is while they are read from it) */
            if ((rc = bli_tok_ws_reserve(ws, 0, len + 1)))
                return rc;
            ws->buf[0] = ' ';
            memcpy(ws->buf + 1, text, len);
            return split_from(&e, 0, ws->buf, len + 1);
        }
        return split_from(&e, 0, text, len);
    }
    /* SentencePiece text: the prefix, and spaces written as the vocabulary does */
    int prefix = t->add_space_prefix &&
                 (at_start || (!t->prefix_first && (t->space_len == 1 || t->space_is_token)));
    if (prefix && t->prefix_unless_space &&
        (text[0] == ' ' || (len >= t->space_len && memcmp(text, t->space, t->space_len) == 0)))
        prefix = 0;
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    size_t nlen = len - spaces + (spaces + (prefix ? 1 : 0)) * t->space_len;
    if ((rc = bli_tok_ws_reserve(ws, 0, nlen)))
        return rc;
    char *norm = ws->buf;
    size_t k = 0;
    if (prefix) {
        memcpy(norm, t->space, t->space_len);
        k = t->space_len;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(norm + k, t->space, t->space_len);
            k += t->space_len;
        } else {
            norm[k++] = text[i];
        }
    }
    BL_ASSERT(k == nlen);
    return split_from(&e, 0, norm, nlen);
}

/* ------------------------------------------------------------------ JSON */

/* Messages name the file and the JSON path of the problem. */
struct jx {
    const char *file;
    bl_err *err;
};

__attribute__((format(printf, 4, 5)))
static int jerr(const struct jx *j, int code, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path)
        return bli_err(j->err, code, "%s: %s: %s", j->file, path, msg);
    return bli_err(j->err, code, "%s: %s", j->file, msg);
}

static const char *jtype(const cJSON *v)
{
    if (!v) return "missing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* 1 if s[0..n-1] stops inside a string or with brackets left open: the
 * start of a document that was cut short. */
static int json_cut_short(const char *s, size_t n)
{
    int64_t depth = 0;
    int in_str = 0, esc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return in_str || depth > 0;
}

/* Parse a whole JSON document: nothing but white space may follow it. */
static int jparse(const struct jx *j, const char *data, size_t len, cJSON **out)
{
    const char *end = NULL;
    *out = NULL;
    if (len == 0 || !data)
        return jerr(j, BL_EFORMAT, NULL, "empty file: not JSON");
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : len;
        size_t line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (data[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (off >= len || json_cut_short(data, len))
            return jerr(j, BL_EFORMAT, NULL, "not valid JSON: it ends early at offset %zu (truncated?)", len);
        return jerr(j, BL_EFORMAT, NULL, "not valid JSON: error at line %zu, column %zu (offset %zu)", line, col,
                    off);
    }
    size_t off = (size_t)(end - data);
    while (off < len && (data[off] == ' ' || data[off] == '\t' || data[off] == '\n' || data[off] == '\r'))
        off++;
    if (off < len) {
        cJSON_Delete(root);
        return jerr(j, BL_EFORMAT, NULL, "not valid JSON: trailing data at offset %zu", off);
    }
    *out = root;
    return BL_OK;
}

/* A member that is present and not null, or NULL. */
static const cJSON *jget(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int jstr(const struct jx *j, const cJSON *v, const char *path, const char **out)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return jerr(j, BL_EFORMAT, path, "%s, not a string", jtype(v));
    *out = v->valuestring;
    return BL_OK;
}

/* An optional boolean member: *out unchanged if absent or null. */
static int jbool_opt(const struct jx *j, const cJSON *obj, const char *key, const char *parent, int *out)
{
    const cJSON *v = jget(obj, key);
    if (!v)
        return BL_OK;
    if (!cJSON_IsBool(v)) {
        char path[256];
        snprintf(path, sizeof path, "%.200s%s%s", parent, *parent ? "." : "", key);
        return jerr(j, BL_EFORMAT, path, "%s, not a boolean", jtype(v));
    }
    *out = cJSON_IsTrue(v);
    return BL_OK;
}

/* An integer in [lo, hi]. */
static int jint(const struct jx *j, const cJSON *v, const char *path, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return jerr(j, BL_EFORMAT, path, "%s, not an integer", jtype(v));
    double d = v->valuedouble;
    if (!(d >= -9.0e15 && d <= 9.0e15) || d != (double)(int64_t)d)
        return jerr(j, BL_EFORMAT, path, "%g is not an integer", d);
    if ((int64_t)d < lo || (int64_t)d > hi)
        return jerr(j, BL_EFORMAT, path, "%" PRId64 " is out of range (%" PRId64 " to %" PRId64 ")", (int64_t)d, lo,
                    hi);
    *out = (int64_t)d;
    return BL_OK;
}

/* The "type" member of a pre-tokenizer, normalizer, decoder or
 * post-processor. */
static int jtype_of(const struct jx *j, const cJSON *v, const char *path, const char **type)
{
    char p[256];
    if (!cJSON_IsObject(v))
        return jerr(j, BL_EFORMAT, path, "%s, not an object", jtype(v));
    snprintf(p, sizeof p, "%.200s.type", path);
    return jstr(j, cJSON_GetObjectItemCaseSensitive(v, "type"), p, type);
}

/* A whole file into memory (NUL-terminated). */
static int read_whole(const char *path, char **out, size_t *len, bl_err *err)
{
    struct bli_map m;
    int rc = bli_map_file(&m, path, err);
    *out = NULL;
    if (rc)
        return rc;
    char *b = malloc(m.size + 1);
    if (!b) {
        bli_unmap(&m);
        return bli_err(err, BL_ENOMEM, "%s: out of memory", path);
    }
    if (m.size)
        memcpy(b, m.data, m.size);
    b[m.size] = '\0';
    *len = m.size;
    *out = b;
    bli_unmap(&m);
    return BL_OK;
}

/* ---------------------------------------------------- encoder.json + vocab.bpe */

static bl_tokenizer *bytes_alloc(int64_t n)
{
    bl_tokenizer *t = bli_tok_alloc(n);
    if (!t)
        return NULL;
    t->algo = BLI_ALGO_BYTES;
    memcpy(t->model, "gpt2", 5);
    t->add_space_prefix = 0;
    t->add_bos = 0;
    return t;
}

int bl_tokenizer_load_gpt2(bl_tokenizer **out, const char *encoder_json, const char *vocab_bpe, bl_err *err)
{
    struct jx j = {encoder_json, err};
    char *ej = NULL, *vb = NULL, *tmp = NULL;
    size_t ejn = 0, vbn = 0;
    cJSON *root = NULL;
    bl_tokenizer *t = NULL;
    int32_t *left = NULL, *right = NULL;
    int rc;

    *out = NULL;
    if ((rc = read_whole(encoder_json, &ej, &ejn, err)) || (rc = jparse(&j, ej, ejn, &root)))
        goto fail;
    if (!cJSON_IsObject(root)) {
        rc = jerr(&j, BL_EFORMAT, NULL, "%s, not an object of token ids", jtype(root));
        goto fail;
    }
    int64_t n = cJSON_GetArraySize(root);
    if (n < 1 || n > INT32_MAX - 1) {
        rc = jerr(&j, BL_EFORMAT, NULL, "holds %" PRId64 " tokens", n);
        goto fail;
    }
    if (!(t = bytes_alloc(n))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", encoder_json);
        goto fail;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        char path[96];
        snprintf(path, sizeof path, "['%.40s']", e->string);
        int64_t id;
        if ((rc = jint(&j, e, path, 0, n - 1, &id)))
            goto fail;
        if (!e->string[0]) {
            rc = jerr(&j, BL_EFORMAT, path, "an empty token");
            goto fail;
        }
        if (t->piece[id]) {
            rc = jerr(&j, BL_EFORMAT, path, "id %" PRId64 " is also '%.40s'", id, t->piece[id]);
            goto fail;
        }
        size_t len = strlen(e->string);
        if (!(t->piece[id] = bli_strndup(e->string, len))) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", encoder_json);
            goto fail;
        }
        t->len[id] = (uint32_t)len;
        if (strcmp(e->string, "<|endoftext|>") == 0)
            t->bos = t->eos = (int32_t)id;
    }
    /* n distinct ids in 0..n-1: no gaps */
    int64_t dup = -1;
    if ((rc = bli_tok_finish(t, 0, 1, &dup))) {
        if (rc == BL_EFORMAT)
            rc = jerr(&j, rc, NULL, "token '%.40s' appears twice", t->piece[dup]);
        else
            rc = bli_err(err, rc, "%s: out of memory", encoder_json);
        goto fail;
    }

    /* vocab.bpe: "#version: 0.2", then "a b" per line */
    if ((rc = read_whole(vocab_bpe, &vb, &vbn, err)))
        goto fail;
    size_t lines = 1;
    for (size_t i = 0; i < vbn; i++)
        lines += vb[i] == '\n';
    left = bli_malloc_array(lines, sizeof *left);
    right = bli_malloc_array(lines, sizeof *right);
    if (!left || !right) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", vocab_bpe);
        goto fail;
    }
    int64_t nm = 0;
    size_t line = 0, tmp_cap = 0;
    for (size_t at = 0; at < vbn;) {
        const char *s = vb + at;
        const char *nl = memchr(s, '\n', vbn - at);
        size_t ll = nl ? (size_t)(nl - s) : vbn - at;
        at += ll + (nl ? 1 : 0);
        line++;
        if (ll && s[ll - 1] == '\r')
            ll--;
        if (ll == 0 || (line == 1 && s[0] == '#'))
            continue;
        const char *sp = memchr(s, ' ', ll);
        if (!sp || sp == s || sp == s + ll - 1 || memchr(sp + 1, ' ', (size_t)(s + ll - sp - 1))) {
            rc = bli_err(err, BL_EFORMAT, "%s: line %zu: '%.*s' is not two tokens joined by one space", vocab_bpe,
                         line, (int)(ll > 64 ? 64 : ll), s);
            goto fail;
        }
        size_t la = (size_t)(sp - s), lb = ll - la - 1;
        int32_t a = bli_tok_lookup(t, s, la), b = bli_tok_lookup(t, sp + 1, lb);
        if (a < 0 || b < 0) {
            rc = bli_err(err, BL_EFORMAT, "%s: line %zu: '%.*s' is not in %s", vocab_bpe, line,
                         (int)(a < 0 ? (la > 64 ? 64 : la) : (lb > 64 ? 64 : lb)), a < 0 ? s : sp + 1,
                         bli_basename(encoder_json));
            goto fail;
        }
        if (la + lb > tmp_cap) {
            free(tmp);
            tmp_cap = 2 * (la + lb);
            if (!(tmp = malloc(tmp_cap))) {
                rc = bli_err(err, BL_ENOMEM, "%s: out of memory", vocab_bpe);
                goto fail;
            }
        }
        memcpy(tmp, s, la);
        memcpy(tmp + la, sp + 1, lb);
        if (bli_tok_lookup(t, tmp, la + lb) < 0) {
            rc = bli_err(err, BL_EFORMAT, "%s: line %zu: '%.*s' + '%.*s' is not in %s", vocab_bpe, line,
                         (int)(la > 48 ? 48 : la), s, (int)(lb > 48 ? 48 : lb), sp + 1, bli_basename(encoder_json));
            goto fail;
        }
        left[nm] = a;
        right[nm] = b;
        nm++;
    }
    if ((rc = bli_tok_set_merges(t, left, right, nm, vocab_bpe, "merges", err)) ||
        (rc = bli_tok_setup_bytes(t, encoder_json, err)) || (rc = bli_tok_set_pre(t, "gpt-2", 5, vocab_bpe, err)))
        goto fail;
    t->add_bos = 0;
    *out = t;
    t = NULL;
fail:
    cJSON_Delete(root);
    free(ej);
    free(vb);
    free(tmp);
    free(left);
    free(right);
    bl_tokenizer_free(t);
    return rc;
}

/* -------------------------------------------------------- tokenizer.json */

struct hf {
    struct jx j;
    bl_tokenizer *t;
    int bytes;             /* a ByteLevel pre-tokenizer: byte-level BPE */
    int seen_bytelevel;
    int prepend, replace;  /* normalizer Prepend("▁"), Replace(" ", "▁") */
    int metaspace;         /* pre_tokenizer Metaspace */
    int32_t tmpl_bos, tmpl_eos;   /* from the post_processor, or -1 */
};

static int has_bytelevel(const cJSON *v, int depth)
{
    if (!cJSON_IsObject(v) || depth > 16)
        return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (!cJSON_IsString(type))
        return 0;
    if (strcmp(type->valuestring, "ByteLevel") == 0)
        return 1;
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(v, "pretokenizers"))
            if (has_bytelevel(e, depth + 1))
                return 1;
    }
    return 0;
}

/* A step of a tokenizer.json pipeline (normalizer, pre-tokenizer,
 * decoder, post-processor) at JSON path `path`. */
typedef int (*hf_step)(struct hf *h, const cJSON *v, const char *path, int depth);

/* A "Sequence" step: each element of its array `key` through `fn`. */
static int hf_sequence(struct hf *h, const cJSON *v, const char *path, const char *key, hf_step fn,
                       int depth)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(v, key), *e;
    char p[256];
    int i = 0, rc;
    snprintf(p, sizeof p, "%.200s.%s", path, key);
    if (!cJSON_IsArray(arr))
        return jerr(&h->j, BL_EFORMAT, p, "%s, not an array", jtype(arr));
    cJSON_ArrayForEach(e, arr) {
        snprintf(p, sizeof p, "%.200s.%s[%d]", path, key, i++);
        if ((rc = fn(h, e, p, depth + 1)))
            return rc;
    }
    return BL_OK;
}

static int hf_normalizer(struct hf *h, const cJSON *v, const char *path, int depth)
{
    const struct jx *j = &h->j;
    const char *type = NULL, *s = NULL;
    char p[256];
    int rc;
    if (!v || cJSON_IsNull(v))
        return BL_OK;
    if (depth > 16)
        return jerr(j, BL_EUNSUPPORTED, path, "normalizers nested too deeply");
    if ((rc = jtype_of(j, v, path, &type)))
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return hf_sequence(h, v, path, "normalizers", hf_normalizer, depth);
    if (strcmp(type, "NFC") == 0)
        return BL_OK;   /* a no-op: the text is taken to be NFC already */
    if (!h->bytes && strcmp(type, "Prepend") == 0) {
        snprintf(p, sizeof p, "%.200s.prepend", path);
        if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(v, "prepend"), p, &s)))
            return rc;
        if (strcmp(s, "\xe2\x96\x81") != 0)
            return jerr(j, BL_EUNSUPPORTED, p, "Prepend of '%.40s' is not supported (only of \"\xe2\x96\x81\")", s);
        h->prepend = 1;
        return BL_OK;
    }
    if (!h->bytes && strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(v, "pattern");
        const char *from = NULL, *to = NULL;
        snprintf(p, sizeof p, "%.200s.pattern", path);
        if (!cJSON_IsObject(pat))
            return jerr(j, BL_EFORMAT, p, "%s, not an object", jtype(pat));
        if (!cJSON_GetObjectItemCaseSensitive(pat, "String"))
            return jerr(j, BL_EUNSUPPORTED, p, "a Replace normalizer with a regex is not supported");
        snprintf(p, sizeof p, "%.200s.pattern.String", path);
        if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(pat, "String"), p, &from)))
            return rc;
        snprintf(p, sizeof p, "%.200s.content", path);
        if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(v, "content"), p, &to)))
            return rc;
        if (strcmp(from, " ") != 0 || strcmp(to, "\xe2\x96\x81") != 0)
            return jerr(j, BL_EUNSUPPORTED, path,
                        "Replace of '%.40s' by '%.40s' is not supported (only of ' ' by \"\xe2\x96\x81\")",
                        from, to);
        h->replace = 1;
        return BL_OK;
    }
    snprintf(p, sizeof p, "%.200s.type", path);
    return jerr(j, BL_EUNSUPPORTED, p, "normalizer '%.40s' is not supported%s", type,
                h->bytes ? " with a ByteLevel pre-tokenizer (NFC is)" : " (NFC, Prepend, Replace and Sequence are)");
}

static int hf_pre(struct hf *h, const cJSON *v, const char *path, int depth)
{
    const struct jx *j = &h->j;
    bl_tokenizer *t = h->t;
    const char *type = NULL, *s = NULL;
    char p[256];
    int rc;
    if (!v || cJSON_IsNull(v))
        return BL_OK;
    if (depth > 16)
        return jerr(j, BL_EUNSUPPORTED, path, "pre-tokenizers nested too deeply");
    if ((rc = jtype_of(j, v, path, &type)))
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return hf_sequence(h, v, path, "pretokenizers", hf_pre, depth);
    if (h->seen_bytelevel)
        return jerr(j, BL_EUNSUPPORTED, path, "a %.40s pre-tokenizer after ByteLevel is not supported", type);
    if (strcmp(type, "ByteLevel") == 0) {
        int prefix = 1, use_regex = 1, trim = 1;
        if ((rc = jbool_opt(j, v, "add_prefix_space", path, &prefix)) ||
            (rc = jbool_opt(j, v, "use_regex", path, &use_regex)) ||
            (rc = jbool_opt(j, v, "trim_offsets", path, &trim)))
            return rc;
        if (prefix && t->n_splits > 0)
            return jerr(j, BL_EUNSUPPORTED, path,
                        "ByteLevel add_prefix_space after another pre-tokenizer is not supported");
        t->prefix_space = prefix;
        h->seen_bytelevel = 1;
        if (use_regex)
            return bli_tok_add_split(t, RE_GPT2, sizeof RE_GPT2 - 1, 0, BLI_SPLIT_ISOLATED, 0, j->file, path,
                                     j->err);
        return BL_OK;
    }
    if (h->bytes && strcmp(type, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(v, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const char *beh = NULL;
        int invert = 0, behavior;
        snprintf(p, sizeof p, "%.200s.pattern", path);
        if (!cJSON_IsObject(pat) || (!re == !str))
            return jerr(j, BL_EFORMAT, p, "%s, not an object holding a Regex or a String",
                        cJSON_IsObject(pat) ? "an object" : jtype(pat));
        snprintf(p, sizeof p, "%.200s.pattern.%s", path, re ? "Regex" : "String");
        if ((rc = jstr(j, re ? re : str, p, &s)))
            return rc;
        snprintf(p, sizeof p, "%.200s.behavior", path);
        if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(v, "behavior"), p, &beh)))
            return rc;
        if (strcmp(beh, "Removed") == 0) behavior = BLI_SPLIT_REMOVED;
        else if (strcmp(beh, "Isolated") == 0) behavior = BLI_SPLIT_ISOLATED;
        else if (strcmp(beh, "MergedWithPrevious") == 0) behavior = BLI_SPLIT_MERGED_PREV;
        else if (strcmp(beh, "MergedWithNext") == 0) behavior = BLI_SPLIT_MERGED_NEXT;
        else if (strcmp(beh, "Contiguous") == 0) behavior = BLI_SPLIT_CONTIGUOUS;
        else
            return jerr(j, BL_EFORMAT, p, "'%.40s' is not Removed, Isolated, MergedWithPrevious, MergedWithNext "
                        "or Contiguous", beh);
        if ((rc = jbool_opt(j, v, "invert", path, &invert)))
            return rc;
        snprintf(p, sizeof p, "%.200s.pattern.%s", path, re ? "Regex" : "String");
        return bli_tok_add_split(t, s, strlen(s), re == NULL, behavior, invert, j->file, p, j->err);
    }
    if (h->bytes && strcmp(type, "Digits") == 0) {
        int individual = 0;
        if ((rc = jbool_opt(j, v, "individual_digits", path, &individual)))
            return rc;
        return bli_tok_add_split(t, RE_DIGIT, sizeof RE_DIGIT - 1, 0,
                                 individual ? BLI_SPLIT_ISOLATED : BLI_SPLIT_CONTIGUOUS, 0, j->file, path, j->err);
    }
    if (!h->bytes && strcmp(type, "Metaspace") == 0 && !h->metaspace) {
        const char *scheme = NULL;
        int split = 1, prefix = -1;
        snprintf(p, sizeof p, "%.200s.replacement", path);
        if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(v, "replacement"), p, &s)))
            return rc;
        if (strcmp(s, "\xe2\x96\x81") != 0)
            return jerr(j, BL_EUNSUPPORTED, p,
                        "a Metaspace replacement '%.40s' is not supported (only \"\xe2\x96\x81\")", s);
        if ((rc = jbool_opt(j, v, "split", path, &split)) || (rc = jbool_opt(j, v, "add_prefix_space", path, &prefix)))
            return rc;
        const cJSON *ps = jget(v, "prepend_scheme");
        if (ps) {
            snprintf(p, sizeof p, "%.200s.prepend_scheme", path);
            if ((rc = jstr(j, ps, p, &scheme)))
                return rc;
            if (strcmp(scheme, "always") == 0) prefix = 1;
            else if (strcmp(scheme, "never") == 0) prefix = 0;
            else if (strcmp(scheme, "first") == 0) { prefix = 1; t->prefix_first = 1; }
            else return jerr(j, BL_EFORMAT, p, "'%.40s' is not always, first or never", scheme);
        }
        h->metaspace = 1;
        t->add_space_prefix = prefix != 0;
        t->prefix_unless_space = 1;
        if (split)
            return bli_tok_add_split(t, "\xe2\x96\x81", 3, 1, BLI_SPLIT_MERGED_NEXT, 0, j->file, path, j->err);
        return BL_OK;
    }
    snprintf(p, sizeof p, "%.200s.type", path);
    return jerr(j, BL_EUNSUPPORTED, p, "pre-tokenizer '%.40s' is not supported%s", type,
                h->bytes ? " (ByteLevel, Split, Digits and Sequence are)"
                         : " without a ByteLevel one (Metaspace is)");
}

static int hf_decoder(struct hf *h, const cJSON *v, const char *path, int depth)
{
    static const char *const known[] = {"ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"};
    const struct jx *j = &h->j;
    const char *type = NULL;
    char p[256];
    int rc;
    if (!v || cJSON_IsNull(v))
        return BL_OK;
    if (depth > 16)
        return jerr(j, BL_EUNSUPPORTED, path, "decoders nested too deeply");
    if ((rc = jtype_of(j, v, path, &type)))
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return hf_sequence(h, v, path, "decoders", hf_decoder, depth);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(type, known[i]) == 0)
            return BL_OK;
    snprintf(p, sizeof p, "%.200s.type", path);
    return jerr(j, BL_EUNSUPPORTED, p, "decoder '%.40s' is not supported", type);
}

/* A token named in a post-processor or tokenizer_config.json. */
static int hf_token(const struct hf *h, const struct jx *j, const char *s, const char *path, int32_t *out)
{
    int32_t id = bli_tok_lookup(h->t, s, strlen(s));
    if (id < 0)
        return jerr(j, BL_EFORMAT, path, "'%.40s' is not in the vocabulary", s);
    *out = id;
    return BL_OK;
}

/* RobertaProcessing / BertProcessing: cls and sep are [token, id]. */
static int hf_pair_token(struct hf *h, const cJSON *v, const char *key, const char *path, int32_t *out)
{
    const struct jx *j = &h->j;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(v, key);
    char p[256];
    const char *s = NULL;
    int64_t id;
    int rc;
    snprintf(p, sizeof p, "%.200s.%s", path, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2)
        return jerr(j, BL_EFORMAT, p, "%s, not a [token, id] pair", jtype(a));
    snprintf(p, sizeof p, "%.200s.%s[0]", path, key);
    if ((rc = jstr(j, cJSON_GetArrayItem(a, 0), p, &s)))
        return rc;
    snprintf(p, sizeof p, "%.200s.%s[1]", path, key);
    if ((rc = jint(j, cJSON_GetArrayItem(a, 1), p, 0, h->t->n - 1, &id)))
        return rc;
    if (strcmp(h->t->piece[id], s) != 0)
        return jerr(j, BL_EFORMAT, p, "id %" PRId64 " is '%.40s', not '%.40s'", id, h->t->piece[id], s);
    *out = (int32_t)id;
    return BL_OK;
}

/* A SpecialToken of a template: its id through special_tokens, or by name. */
static int hf_template_token(struct hf *h, const cJSON *item, const cJSON *specials, const char *path,
                             int32_t *out)
{
    const struct jx *j = &h->j;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    char p[256];
    const char *name = NULL;
    int rc;
    *out = -1;
    if (!cJSON_IsObject(item))
        return jerr(j, BL_EFORMAT, path, "%s, not an object", jtype(item));
    if (!st) {
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(item, "Sequence")))
            return jerr(j, BL_EFORMAT, path, "neither a SpecialToken nor a Sequence");
        return BL_OK;
    }
    snprintf(p, sizeof p, "%.200s.SpecialToken", path);
    if (!cJSON_IsObject(st))
        return jerr(j, BL_EFORMAT, p, "%s, not an object", jtype(st));
    snprintf(p, sizeof p, "%.200s.SpecialToken.id", path);
    if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(st, "id"), p, &name)))
        return rc;
    const cJSON *sp = specials ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
    if (sp) {
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
        int64_t id;
        snprintf(p, sizeof p, "post_processor.special_tokens['%.40s'].ids", name);
        if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) < 1)
            return jerr(j, BL_EFORMAT, p, "%s, not a non-empty array of ids", jtype(ids));
        snprintf(p, sizeof p, "post_processor.special_tokens['%.40s'].ids[0]", name);
        if ((rc = jint(j, cJSON_GetArrayItem(ids, 0), p, 0, h->t->n - 1, &id)))
            return rc;
        *out = (int32_t)id;
        return BL_OK;
    }
    return hf_token(h, j, name, p, out);
}

static int hf_post(struct hf *h, const cJSON *v, const char *path, int depth)
{
    const struct jx *j = &h->j;
    const char *type = NULL;
    char p[256];
    int rc;
    if (!v || cJSON_IsNull(v))
        return BL_OK;
    if (depth > 16)
        return jerr(j, BL_EUNSUPPORTED, path, "post-processors nested too deeply");
    if ((rc = jtype_of(j, v, path, &type)))
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return hf_sequence(h, v, path, "processors", hf_post, depth);
    if (strcmp(type, "ByteLevel") == 0)
        return BL_OK;
    if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(v, "single");
        const cJSON *specials = jget(v, "special_tokens");
        snprintf(p, sizeof p, "%.200s.special_tokens", path);
        if (specials && !cJSON_IsObject(specials))
            return jerr(j, BL_EFORMAT, p, "%s, not an object", jtype(specials));
        snprintf(p, sizeof p, "%.200s.single", path);
        if (!cJSON_IsArray(single))
            return jerr(j, BL_EFORMAT, p, "%s, not an array", jtype(single));
        int n = cJSON_GetArraySize(single);
        for (int i = 0; i < n; i++) {
            int32_t id;
            snprintf(p, sizeof p, "%.200s.single[%d]", path, i);
            if ((rc = hf_template_token(h, cJSON_GetArrayItem(single, i), specials, p, &id)))
                return rc;
            if (id >= 0 && i == 0)
                h->tmpl_bos = id;
            else if (id >= 0 && i == n - 1)
                h->tmpl_eos = id;
        }
        return BL_OK;
    }
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        if ((rc = hf_pair_token(h, v, "cls", path, &h->tmpl_bos)) ||
            (rc = hf_pair_token(h, v, "sep", path, &h->tmpl_eos)))
            return rc;
        return BL_OK;
    }
    snprintf(p, sizeof p, "%.200s.type", path);
    return jerr(j, BL_EUNSUPPORTED, p, "post-processor '%.40s' is not supported", type);
}

/* model.vocab and added_tokens: the pieces and their kinds. */
static int hf_vocab(struct hf *h, const cJSON *model, const cJSON *added, const char *name)
{
    const struct jx *j = &h->j;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    char p[256];
    int rc;
    if (!cJSON_IsObject(vocab))
        return jerr(j, BL_EFORMAT, "model.vocab", "%s, not an object", jtype(vocab));
    if (added && !cJSON_IsArray(added))
        return jerr(j, BL_EFORMAT, "added_tokens", "%s, not an array", jtype(added));
    int64_t nv = cJSON_GetArraySize(vocab), na = added ? cJSON_GetArraySize(added) : 0;
    if (nv + na < 1 || nv + na > INT32_MAX - 1)
        return jerr(j, BL_EFORMAT, "model.vocab", "holds %" PRId64 " tokens", nv + na);
    bl_tokenizer *t = h->bytes ? bytes_alloc(nv + na) : bli_tok_alloc(nv + na);
    if (!(h->t = t))
        return bli_err(j->err, BL_ENOMEM, "%s: out of memory", name);
    int64_t max_id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id;
        snprintf(p, sizeof p, "model.vocab['%.40s']", e->string);
        if ((rc = jint(j, e, p, 0, nv + na - 1, &id)))
            return rc;
        if (!e->string[0])
            return jerr(j, BL_EFORMAT, p, "an empty token");
        if (t->piece[id])
            return jerr(j, BL_EFORMAT, p, "id %" PRId64 " is also '%.40s'", id, t->piece[id]);
        size_t len = strlen(e->string);
        if (!(t->piece[id] = bli_strndup(e->string, len)))
            return bli_err(j->err, BL_ENOMEM, "%s: out of memory", name);
        t->len[id] = (uint32_t)len;
        t->kind[id] = BL_TOKEN_NORMAL;
        if (id > max_id)
            max_id = id;
    }
    int i = 0;
    cJSON_ArrayForEach(e, added) {
        const char *content = NULL;
        int64_t id;
        int special = 0, flag;
        snprintf(p, sizeof p, "added_tokens[%d]", i);
        if (!cJSON_IsObject(e))
            return jerr(j, BL_EFORMAT, p, "%s, not an object", jtype(e));
        snprintf(p, sizeof p, "added_tokens[%d].id", i);
        if ((rc = jint(j, cJSON_GetObjectItemCaseSensitive(e, "id"), p, 0, nv + na - 1, &id)))
            return rc;
        snprintf(p, sizeof p, "added_tokens[%d].content", i);
        if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(e, "content"), p, &content)))
            return rc;
        if (!content[0])
            return jerr(j, BL_EFORMAT, p, "an empty token");
        snprintf(p, sizeof p, "added_tokens[%d]", i);
        if ((rc = jbool_opt(j, e, "special", p, &special)) || (rc = jbool_opt(j, e, "single_word", p, &flag)) ||
            (rc = jbool_opt(j, e, "lstrip", p, &flag)) || (rc = jbool_opt(j, e, "rstrip", p, &flag)) ||
            (rc = jbool_opt(j, e, "normalized", p, &flag)))
            return rc;
        if (t->piece[id] && strcmp(t->piece[id], content) != 0)
            return jerr(j, BL_EFORMAT, p, "id %" PRId64 " is '%.40s' in model.vocab, not '%.40s'", id,
                        t->piece[id], content);
        if (!t->piece[id]) {
            size_t len = strlen(content);
            if (!(t->piece[id] = bli_strndup(content, len)))
                return bli_err(j->err, BL_ENOMEM, "%s: out of memory", name);
            t->len[id] = (uint32_t)len;
        }
        t->kind[id] = special ? BL_TOKEN_CONTROL : BL_TOKEN_USER;
        if (id > max_id)
            max_id = id;
        i++;
    }
    for (int64_t id = 0; id <= max_id; id++)
        if (!t->piece[id])
            return jerr(j, BL_EFORMAT, "model.vocab", "no token has id %" PRId64 " (ids must run from 0 to %" PRId64
                        " without gaps)", id, max_id);
    t->n = max_id + 1;
    return BL_OK;
}

/* model.merges: "a b" strings or [a, b] pairs. */
static int hf_merges(struct hf *h, const cJSON *model, const char *name)
{
    const struct jx *j = &h->j;
    bl_tokenizer *t = h->t;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    char p[96];
    int rc = BL_OK;
    if (!cJSON_IsArray(merges))
        return jerr(j, BL_EFORMAT, "model.merges", "%s, not an array", jtype(merges));
    int64_t n = cJSON_GetArraySize(merges);
    int32_t *left = bli_malloc_array((size_t)n + 1, sizeof *left);
    int32_t *right = bli_malloc_array((size_t)n + 1, sizeof *right);
    if (!left || !right) {
        rc = bli_err(j->err, BL_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        snprintf(p, sizeof p, "model.merges[%" PRId64 "]", i);
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) {
                rc = jerr(j, BL_EFORMAT, p, "'%.60s' is not two tokens joined by one space", s);
                goto done;
            }
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            rc = jerr(j, BL_EFORMAT, p, "not a string or a pair");
            goto done;
        }
        left[i] = bli_tok_lookup(t, a, la);
        right[i] = bli_tok_lookup(t, b, lb);
        if (left[i] < 0 || right[i] < 0) {
            rc = jerr(j, BL_EFORMAT, p, "'%.*s' is not in the vocabulary", (int)(left[i] < 0 ? (la > 60 ? 60 : la)
                                                                                                : (lb > 60 ? 60 : lb)),
                      left[i] < 0 ? a : b);
            goto done;
        }
        i++;
    }
    rc = bli_tok_set_merges(t, left, right, n, j->file, "model.merges", j->err);
done:
    free(left);
    free(right);
    return rc;
}

/* bos_token etc. of tokenizer_config.json: a string, {"content": ...} or null. */
static int cfg_token(struct hf *h, const struct jx *cj, const cJSON *cfg, const char *key, int *present,
                     int32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = NULL;
    char p[96];
    int rc;
    *present = v != NULL;
    if (!v)
        return BL_OK;
    if (cJSON_IsNull(v)) {
        *out = -1;
        return BL_OK;
    }
    if (cJSON_IsObject(v)) {
        snprintf(p, sizeof p, "%.40s.content", key);
        if ((rc = jstr(cj, cJSON_GetObjectItemCaseSensitive(v, "content"), p, &s)))
            return rc;
    } else if (cJSON_IsString(v)) {
        s = v->valuestring;
        snprintf(p, sizeof p, "%s", key);
    } else {
        return jerr(cj, BL_EFORMAT, key, "%s, not a string, an object or null", jtype(v));
    }
    return hf_token(h, cj, s, p, out);
}

static int hf_config(struct hf *h, const char *config, size_t config_len, const char *config_name,
                     int *bos_set, int *eos_set, int *add_bos_set, int *add_eos_set)
{
    struct jx cj = {config_name, h->j.err};
    bl_tokenizer *t = h->t;
    cJSON *cfg = NULL;
    int rc, pad_set, unk_set;
    if ((rc = jparse(&cj, config, config_len, &cfg)))
        return rc;
    if (!cJSON_IsObject(cfg)) {
        rc = jerr(&cj, BL_EFORMAT, NULL, "%s, not an object", jtype(cfg));
        goto done;
    }
    int32_t unk = t->unk;
    if ((rc = cfg_token(h, &cj, cfg, "bos_token", bos_set, &t->bos)) ||
        (rc = cfg_token(h, &cj, cfg, "eos_token", eos_set, &t->eos)) ||
        (rc = cfg_token(h, &cj, cfg, "pad_token", &pad_set, &t->pad)) ||
        (rc = cfg_token(h, &cj, cfg, "unk_token", &unk_set, &unk)))
        goto done;
    if (unk_set && unk >= 0 && t->unk < 0)
        t->unk = unk;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    *add_bos_set = v && !cJSON_IsNull(v);
    if ((rc = jbool_opt(&cj, cfg, "add_bos_token", "", &t->add_bos)))
        goto done;
    v = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    *add_eos_set = v && !cJSON_IsNull(v);
    rc = jbool_opt(&cj, cfg, "add_eos_token", "", &t->add_eos);
done:
    cJSON_Delete(cfg);
    return rc;
}

/* The first of names that is a token, or -1. */
static int32_t first_token(const bl_tokenizer *t, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = bli_tok_lookup(t, *names, strlen(*names));
        if (id >= 0)
            return id;
    }
    return -1;
}

static int hf_load(bl_tokenizer **out, const char *json, size_t len, const char *config, size_t config_len,
                   const char *name, const char *config_name, bl_err *err)
{
    struct hf h;
    cJSON *root = NULL;
    const char *type = NULL, *s = NULL;
    int rc;

    memset(&h, 0, sizeof h);
    h.j.file = name;
    h.j.err = err;
    h.tmpl_bos = h.tmpl_eos = -1;
    *out = NULL;
    if ((rc = jparse(&h.j, json, len, &root)))
        return rc;
    struct jx *j = &h.j;
    if (!cJSON_IsObject(root)) {
        rc = jerr(j, BL_EFORMAT, NULL, "%s, not an object", jtype(root));
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        rc = jerr(j, BL_EFORMAT, "model", "%s, not an object", jtype(model));
        goto fail;
    }
    if ((rc = jstr(j, cJSON_GetObjectItemCaseSensitive(model, "type"), "model.type", &type)))
        goto fail;
    if (strcmp(type, "BPE") != 0) {
        rc = jerr(j, BL_EUNSUPPORTED, "model.type", "'%.40s' is not supported (only BPE)", type);
        goto fail;
    }
    /* fields of the BPE model that change what it does */
    const cJSON *v = jget(model, "dropout");
    if (v && (!cJSON_IsNumber(v) || v->valuedouble != 0)) {
        rc = cJSON_IsNumber(v) ? jerr(j, BL_EUNSUPPORTED, "model.dropout", "BPE dropout is not supported")
                               : jerr(j, BL_EFORMAT, "model.dropout", "%s, not a number", jtype(v));
        goto fail;
    }
    static const char *const affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        char p[64];
        snprintf(p, sizeof p, "model.%s", affix[k]);
        if ((v = jget(model, affix[k]))) {
            if ((rc = jstr(j, v, p, &s)))
                goto fail;
            if (s[0]) {
                rc = jerr(j, BL_EUNSUPPORTED, p, "'%.40s' is not supported (only empty)", s);
                goto fail;
            }
        }
    }
    const char *unk_token = NULL;
    if ((v = jget(model, "unk_token")) && (rc = jstr(j, v, "model.unk_token", &unk_token)))
        goto fail;
    int byte_fallback = 0, fuse_unk = 0, ignore_merges = 0;
    if ((rc = jbool_opt(j, model, "byte_fallback", "model", &byte_fallback)) ||
        (rc = jbool_opt(j, model, "fuse_unk", "model", &fuse_unk)) ||
        (rc = jbool_opt(j, model, "ignore_merges", "model", &ignore_merges)))
        goto fail;

    h.bytes = has_bytelevel(jget(root, "pre_tokenizer"), 0);
    if ((rc = hf_vocab(&h, model, jget(root, "added_tokens"), name)))
        goto fail;
    bl_tokenizer *t = h.t;
    t->ignore_merges = ignore_merges;
    if (!h.bytes) {
        t->algo = BLI_ALGO_MERGES;
        t->byte_fallback = byte_fallback;
        t->fuse_unk = fuse_unk;
        t->add_space_prefix = 0;
        t->add_bos = 0;
    }
    if ((rc = hf_normalizer(&h, jget(root, "normalizer"), "normalizer", 0)) ||
        (rc = hf_pre(&h, jget(root, "pre_tokenizer"), "pre_tokenizer", 0)) ||
        (rc = hf_decoder(&h, jget(root, "decoder"), "decoder", 0)))
        goto fail;
    if (!h.bytes) {
        if (h.prepend && !h.replace) {
            rc = jerr(j, BL_EUNSUPPORTED, "normalizer",
                      "Prepend(\"\xe2\x96\x81\") without Replace(' ', \"\xe2\x96\x81\") is not supported");
            goto fail;
        }
        if (h.metaspace && (h.prepend || h.replace)) {
            rc = jerr(j, BL_EUNSUPPORTED, "normalizer",
                      "a Prepend or Replace normalizer with a Metaspace pre-tokenizer is not supported");
            goto fail;
        }
        if (h.replace || h.metaspace) {
            t->space = "\xe2\x96\x81";
            t->space_len = 3;
        } else {
            t->space = " ";
            t->space_len = 1;
        }
        if (!h.metaspace)
            t->add_space_prefix = h.prepend;
        /* kinds: byte tokens, the unknown token */
        for (int64_t id = 0; id < t->n && byte_fallback; id++)
            if (t->kind[id] == BL_TOKEN_NORMAL && t->len[id] == 6 && memcmp(t->piece[id], "<0x", 3) == 0 &&
                t->piece[id][5] == '>')
                t->kind[id] = BL_TOKEN_BYTE;   /* bli_tok_finish checks the hex digits */
    }
    if (unk_token) {
        int64_t id = -1;
        for (int64_t k = 0; k < t->n && id < 0; k++)
            if (strcmp(t->piece[k], unk_token) == 0)
                id = k;
        if (id < 0) {
            rc = jerr(j, BL_EFORMAT, "model.unk_token", "'%.40s' is not in the vocabulary", unk_token);
            goto fail;
        }
        t->unk = (int32_t)id;
        if (t->kind[id] == BL_TOKEN_NORMAL)
            t->kind[id] = BL_TOKEN_UNKNOWN;
    }
    int64_t dup = -1;
    if ((rc = bli_tok_finish(t, 1, 1, &dup))) {
        if (rc == BL_EFORMAT)
            rc = jerr(j, rc, "model.vocab", "token '%.40s' appears twice (ids %d and %" PRId64 ")", t->piece[dup],
                      bli_tok_lookup(t, t->piece[dup], t->len[dup]), dup);
        else
            rc = bli_err(err, rc, "%s: out of memory", name);
        goto fail;
    }
    for (int64_t id = 0; id < t->n; id++)
        if (t->kind[id] == BL_TOKEN_BYTE && t->byte_val[id] < 0)
            t->kind[id] = BL_TOKEN_NORMAL;
    if ((rc = hf_merges(&h, model, name)))
        goto fail;
    if (h.bytes) {
        if ((rc = bli_tok_setup_bytes(t, name, err)))
            goto fail;
        const char *pre = bli_tok_pre_name(t);
        snprintf(t->pre, sizeof t->pre, "%s", pre ? pre : "");
    } else if (t->unk < 0) {
        int all = byte_fallback;
        for (int b = 0; b < 256 && all; b++)
            all = t->byte_id[b] >= 0;
        if (!all) {
            rc = jerr(j, BL_EUNSUPPORTED, "model", "neither an unk_token nor byte_fallback with all 256 <0xXX> tokens: "
                      "text outside the vocabulary could not be encoded");
            goto fail;
        }
    }
    if ((rc = hf_post(&h, jget(root, "post_processor"), "post_processor", 0)))
        goto fail;
    int bos_set = 0, eos_set = 0, add_bos_set = 0, add_eos_set = 0;
    if (config && (rc = hf_config(&h, config, config_len, config_name, &bos_set, &eos_set, &add_bos_set,
                                  &add_eos_set)))
        goto fail;
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    if (!bos_set)
        t->bos = h.tmpl_bos >= 0 ? h.tmpl_bos : first_token(t, bos_names);
    if (!eos_set)
        t->eos = h.tmpl_eos >= 0 ? h.tmpl_eos : first_token(t, eos_names);
    if (!add_bos_set)
        t->add_bos = h.tmpl_bos >= 0;
    if (!add_eos_set)
        t->add_eos = h.tmpl_eos >= 0;
    if (t->add_bos && t->bos < 0)
        t->add_bos = 0;
    if (t->add_eos && t->eos < 0)
        t->add_eos = 0;
    memcpy(t->model, h.bytes ? "gpt2" : "llama", h.bytes ? 5 : 6);
    cJSON_Delete(root);
    *out = t;
    return BL_OK;
fail:
    cJSON_Delete(root);
    bl_tokenizer_free(h.t);
    return rc;
}

int bl_tokenizer_load_hf_memory(bl_tokenizer **out, const char *json, size_t len, const char *config,
                                size_t config_len, const char *name, bl_err *err)
{
    return hf_load(out, json, len, config, config_len, name ? name : "tokenizer.json",
                   "tokenizer_config.json", err);
}

int bl_tokenizer_load_hf(bl_tokenizer **out, const char *tokenizer_json, bl_err *err)
{
    char *json = NULL, *cfg = NULL, *cfg_path = NULL;
    size_t len = 0, cfg_len = 0;
    int rc;

    *out = NULL;
    if ((rc = read_whole(tokenizer_json, &json, &len, err)))
        return rc;
    /* tokenizer_config.json in the same directory, if there is one */
    const char *base = bli_basename(tokenizer_json);
    size_t dir = (size_t)(base - tokenizer_json);
    static const char cfg_name[] = "tokenizer_config.json";
    if (!(cfg_path = malloc(dir + sizeof cfg_name))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", tokenizer_json);
        goto done;
    }
    memcpy(cfg_path, tokenizer_json, dir);
    memcpy(cfg_path + dir, cfg_name, sizeof cfg_name);
    FILE *f = fopen(cfg_path, "rb");
    if (f) {
        fclose(f);
        if ((rc = read_whole(cfg_path, &cfg, &cfg_len, err)))
            goto done;
    }
    rc = hf_load(out, json, len, cfg, cfg_len, tokenizer_json, cfg_path, err);
done:
    free(json);
    free(cfg);
    free(cfg_path);
    return rc;
}
