/* lib/tokenizer.c: the tokenizer's entry points (see bitlens/tokenizer.h):
 * SentencePiece-style BPE with scores, llama2.c and GGUF vocabularies,
 * special tokens, decoding, and the GGUF writer.  Merges by rank, the
 * pre-tokenizers, byte-level BPE and the JSON formats are in
 * lib/tokenizer_bpe.c.
 *
 * SentencePiece merging keeps the symbols in a linked list over the
 * normalized text and the candidate pairs in a binary heap ordered by
 * (score desc, left asc), so encoding is O(n log n).  A merged symbol is
 * always a contiguous substring of the text, so a pair is looked up without
 * building a string. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <bitlens/tokenizer.h>
#include "internal.h"
#include "tokenizer_internal.h"

/* Texts longer than this are refused (symbol offsets are 32-bit, with room
 * for the "▁" a space becomes). */
#define MAX_TEXT ((size_t)1 << 30)

/* ------------------------------------------------------------------ lookup */

uint64_t bli_tok_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int32_t bli_tok_lookup(const bl_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)bli_tok_hash(s, n) & t->ht_mask;
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

static int build_index(bl_tokenizer *t, int strict, int64_t *dup)
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
        size_t i = (size_t)bli_tok_hash(t->piece[id], t->len[id]) & t->ht_mask;
        for (;;) {
            uint32_t e = t->ht[i];
            if (e != 0 && t->len[e - 1] == t->len[id] &&
                memcmp(t->piece[e - 1], t->piece[id], t->len[id]) == 0) {
                if (strict) {
                    *dup = id;
                    return BL_EFORMAT;
                }
                t->ht[i] = (uint32_t)id + 1;
                break;
            }
            if (e == 0) {
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

bl_tokenizer *bli_tok_alloc(int64_t n)
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
    t->bos = t->eos = t->unk = t->pad = -1;
    t->add_space_prefix = 1;
    t->add_bos = 1;
    t->space = "\xe2\x96\x81";
    t->space_len = 3;
    t->algo = BLI_ALGO_SCORES;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = t->byte_tok[b] = -1;
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
    free(t->special);
    bli_tok_free_bpe(t);
    free(t);
}

/* The special tokens sorted by their bytes, a prefix before what it
 * starts (qsort has no context argument, and a static would be mutable
 * state: a merge sort of our own). */
static int special_less(const bl_tokenizer *t, int32_t x, int32_t y)
{
    uint32_t lx = t->len[x], ly = t->len[y];
    int c = memcmp(t->piece[x], t->piece[y], lx < ly ? lx : ly);
    if (c)
        return c < 0;
    if (lx != ly)
        return lx < ly;
    return x < y;
}

static void sort_specials(const bl_tokenizer *t, int32_t *v, int32_t *tmp, int64_t n)
{
    if (n < 2)
        return;
    int64_t h = n / 2;
    sort_specials(t, v, tmp, h);
    sort_specials(t, v + h, tmp, n - h);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = special_less(t, v[j], v[i]) ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

int bli_tok_finish(bl_tokenizer *t, int kinds_known, int strict, int64_t *dup)
{
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    for (int64_t id = 0; id < t->n; id++) {
        int b = t->algo == BLI_ALGO_BYTES ? -1 : parse_byte_piece(t->piece[id], t->len[id]);
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
    int rc = build_index(t, strict, dup);
    if (rc)
        return rc;
    t->space_is_token = bli_tok_lookup(t, t->space, t->space_len) >= 0;
    /* the special tokens, sorted by their bytes for the prefix search */
    int64_t ns = 0;
    for (int64_t id = 0; id < t->n; id++) {
        int k = t->kind[id];
        ns += t->len[id] > 0 && (k == BL_TOKEN_CONTROL || k == BL_TOKEN_USER || k == BL_TOKEN_UNKNOWN);
    }
    memset(t->special_first, 0, sizeof t->special_first);
    t->n_special = 0;
    if (ns == 0)
        return BL_OK;
    int32_t *tmp = bli_malloc_array((size_t)ns, sizeof *tmp);
    t->special = bli_malloc_array((size_t)ns, sizeof *t->special);
    if (!tmp || !t->special) {
        free(tmp);
        return BL_ENOMEM;
    }
    for (int64_t id = 0; id < t->n; id++) {
        int k = t->kind[id];
        if (t->len[id] > 0 && (k == BL_TOKEN_CONTROL || k == BL_TOKEN_USER || k == BL_TOKEN_UNKNOWN)) {
            t->special[t->n_special++] = (int32_t)id;
            unsigned c = (unsigned char)t->piece[id][0];
            t->special_first[c >> 5] |= 1u << (c & 31);
        }
    }
    sort_specials(t, t->special, tmp, t->n_special);
    free(tmp);
    return BL_OK;
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
    if (!(t = bli_tok_alloc(n_vocab))) {
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
    if ((rc = bli_tok_finish(t, 0, 0, NULL))) {
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
    if (v == -1 || v == UINT32_MAX) {
        *out = -1;   /* none: what bl_tokenizer_write_gguf() writes where a default would apply */
        return BL_OK;
    }
    if (v < 0 || v >= n)
        return bli_err(err, BL_EFORMAT, "%s: %s = %" PRId64 " is not a token id (vocabulary of %" PRId64 ")",
                       bl_gguf_name(g), key, v, n);
    *out = (int32_t)v;
    return BL_OK;
}

static int get_flag(const bl_gguf *g, const char *key, int *out, bl_err *err)
{
    int v;
    int rc = bl_gguf_get_bool(g, key, &v, err);
    if (rc == BL_OK)
        *out = v;
    return rc == BL_ENOTFOUND ? BL_OK : rc;
}

/* tokenizer.ggml.merges: "a b" strings, split at the first space after the
 * first byte (as llama.cpp does), each half a token. */
static int gguf_merges(bl_tokenizer *t, const bl_gguf *g, bl_err *err)
{
    const char *name = bl_gguf_name(g);
    const char *key = "tokenizer.ggml.merges";
    struct bl_gguf_str *strs = NULL;
    int32_t *left = NULL, *right = NULL;
    uint64_t n;
    int et;
    int rc = bl_gguf_get_arr(g, key, &et, &n, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: a gpt2 vocabulary needs merges, and %s is absent", name, key);
    if (rc)
        return rc;
    if (et != BL_GGUF_STRING || n > INT32_MAX)
        return bli_err(err, BL_EFORMAT, "%s: %s is not an array of strings", name, key);
    if (n && (!(strs = bli_malloc_array((size_t)n, sizeof *strs)) ||
              !(left = bli_malloc_array((size_t)n, sizeof *left)) ||
              !(right = bli_malloc_array((size_t)n, sizeof *right)))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    if (n && (rc = bl_gguf_arr_strings(g, key, strs, n, err)))
        goto done;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = strs[i].ptr;
        size_t len = (size_t)strs[i].len;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            rc = bli_err(err, BL_EFORMAT, "%s: %s[%" PRIu64 "]: '%.*s' is not two tokens joined by a space",
                         name, key, i, (int)(len > 64 ? 64 : len), s);
            goto done;
        }
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        left[i] = bli_tok_lookup(t, s, ll);
        right[i] = bli_tok_lookup(t, sp + 1, rl);
        if (left[i] < 0 || right[i] < 0) {
            const char *bad = left[i] < 0 ? s : sp + 1;
            size_t bl = left[i] < 0 ? ll : rl;
            rc = bli_err(err, BL_EFORMAT, "%s: %s[%" PRIu64 "]: '%.*s' is not in the vocabulary", name, key, i,
                         (int)(bl > 64 ? 64 : bl), bad);
            goto done;
        }
    }
    rc = bli_tok_set_merges(t, left, right, (int64_t)n, name, key, err);
done:
    free(strs);
    free(left);
    free(right);
    return rc;
}

int bl_tokenizer_from_gguf(bl_tokenizer **out, const bl_gguf *g, bl_err *err)
{
    const char *name = bl_gguf_name(g);
    struct bl_gguf_str model, pre = {NULL, 0}, *strs = NULL;
    bl_tokenizer *t = NULL;
    uint64_t n;
    int et, rc;

    *out = NULL;
    rc = bl_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_ENOTFOUND, "%s: no vocabulary (tokenizer.ggml.model is absent)", name);
    if (rc)
        return rc;
    int bytes;
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0)
        bytes = 0;
    else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0)
        bytes = 1;
    else
        return bli_err(err, BL_EUNSUPPORTED, "%s: tokenizer model '%.*s' is not supported ('llama' and 'gpt2' are)",
                       name, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if (bytes) {
        rc = bl_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
        if (rc && rc != BL_ENOTFOUND)
            return rc;
    }
    rc = bl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: tokenizer.ggml.tokens is absent", name);
    if (rc)
        return rc;
    if (et != BL_GGUF_STRING || n == 0 || n > INT32_MAX - 1)
        return bli_err(err, BL_EFORMAT, "%s: tokenizer.ggml.tokens is not a non-empty array of strings", name);
    if (!(t = bli_tok_alloc((int64_t)n)) || !(strs = bli_malloc_array((size_t)n, sizeof *strs))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    if (bytes) {
        t->algo = BLI_ALGO_BYTES;
        memcpy(t->model, "gpt2", 5);
        t->add_space_prefix = 0;
        t->add_bos = 0;
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
            if (bytes && t->kind[i] == BL_TOKEN_BYTE)
                t->kind[i] = BL_TOKEN_NORMAL;   /* byte-level vocabularies have no <0xXX> tokens */
        }
        kinds_known = 1;
    } else if (rc != BL_ENOTFOUND) {
        goto fail;
    }
    if (!bytes) {
        /* llama.cpp's defaults for SentencePiece vocabularies */
        t->bos = 1 < (int64_t)n ? 1 : -1;
        t->eos = 2 < (int64_t)n ? 2 : -1;
        t->unk = 0;
    }
    if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", t->n, &t->bos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.eos_token_id", t->n, &t->eos, err)) ||
        (rc = get_id(g, "tokenizer.ggml.unknown_token_id", t->n, &t->unk, err)))
        goto fail;
    /* a padding id outside the vocabulary means none (stories260K.gguf has
     * 0xFFFFFFFF); llama.cpp ignores it too */
    int64_t pad;
    if (bl_gguf_get_i64(g, "tokenizer.ggml.padding_token_id", &pad, NULL) == BL_OK && pad >= 0 && pad < t->n)
        t->pad = (int32_t)pad;
    if ((rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) ||
        (rc = get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err)))
        goto fail;
    if (bytes) {
        /* the pre-tokenizer may set add_bos (Llama 3); the file's key wins */
        int add_bos = t->add_bos, has_bos_key = bl_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0;
        if ((rc = bli_tok_set_pre(t, pre.ptr, (size_t)pre.len, name, err)))
            goto fail;
        if (has_bos_key)
            t->add_bos = add_bos;
        t->prefix_space = t->add_space_prefix;
        t->add_space_prefix = 0;
    }
    int64_t dup;
    if ((rc = bli_tok_finish(t, kinds_known, 0, &dup))) {
        rc = bli_err(err, rc, "%s: out of memory", name);
        goto fail;
    }
    if (bytes && ((rc = gguf_merges(t, g, err)) || (rc = bli_tok_setup_bytes(t, name, err))))
        goto fail;
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
int bl_tokenizer_add_bos(const bl_tokenizer *t) { return t->add_bos; }
int bl_tokenizer_add_eos(const bl_tokenizer *t) { return t->add_eos; }

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

static void try_pair(const bl_tokenizer *t, const char *text, const struct bli_sym *s, int32_t l,
                     int32_t r, struct bli_bigram *h, size_t *nh)
{
    if (l < 0 || r < 0)
        return;
    uint32_t len = s[l].len + s[r].len;
    int32_t id = bli_tok_lookup(t, text + s[l].start, len);
    if (id < 0)
        return;
    struct bli_bigram b = {-(double)t->score[id], l, r, -1, -1, id, len};
    bli_heap_push(h, nh, b);
}

static size_t utf8_len(unsigned char c)
{
    static const unsigned char lookup_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup_len[c >> 4];
}

/* SentencePiece with scores: one fragment of text (no special tokens in
 * it), with the dummy prefix if `prefix`. */
static int encode_scores(const bl_tokenizer *t, const char *text, size_t len, int prefix,
                         struct bli_out *o, struct bli_ws *ws)
{
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    size_t nlen = len + (spaces + (prefix ? 1 : 0)) * t->space_len;
    nlen -= spaces;
    int rc = bli_tok_ws_reserve(ws, nlen, nlen);
    if (rc)
        return rc;
    char *norm = ws->buf;
    struct bli_sym *s = ws->sym;
    struct bli_bigram *h = ws->heap;
    size_t o_ = 0;
    if (prefix) {
        memcpy(norm, t->space, t->space_len);
        o_ = t->space_len;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(norm + o_, t->space, t->space_len);
            o_ += t->space_len;
        } else {
            norm[o_++] = text[i];
        }
    }
    BL_ASSERT(o_ == nlen);
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
        s[ns] = (struct bli_sym){ns - 1, ns + 1, -1, (uint32_t)i, (uint32_t)cl};
        ns++;
        i += cl;
    }
    if (ns == 0)
        return BL_OK;
    s[ns - 1].next = -1;
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        try_pair(t, norm, s, i, i + 1, h, &nh);
    while (nh > 0) {
        struct bli_bigram b = bli_heap_pop(h, &nh);
        struct bli_sym *l = &s[b.left], *r = &s[b.right];
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
        int32_t id = bli_tok_lookup(t, norm + s[i].start, s[i].len);
        if (id >= 0) {
            bli_emit(o, id);
            continue;
        }
        for (uint32_t j = 0; j < s[i].len; j++) {
            int32_t bid = t->byte_id[(unsigned char)norm[s[i].start + j]];
            bli_emit(o, bid >= 0 ? bid : t->unk >= 0 ? t->unk : 0);
        }
    }
    return BL_OK;
}

/* The leftmost special token in text[from..len-1], the longest there:
 * *at its offset; returns its id, or -1 if there is none. */
static int32_t find_special(const bl_tokenizer *t, const char *text, size_t len, size_t from,
                            size_t *at)
{
    const int32_t *sp = t->special;
    for (size_t i = from; i < len; i++) {
        unsigned c0 = (unsigned char)text[i];
        if (!(t->special_first[c0 >> 5] & (1u << (c0 & 31))))
            continue;
        /* narrow [lo, hi) to the tokens that start with text[i..i+d-1];
         * those exactly d bytes long come first in it */
        int64_t lo = 0, hi = t->n_special;
        int32_t best = -1;
        for (size_t d = 0; lo < hi; d++) {
            while (lo < hi && t->len[sp[lo]] == d)
                best = sp[lo++];
            if (lo >= hi || i + d >= len)
                break;
            unsigned char c = (unsigned char)text[i + d];
            /* first with byte d >= c */
            int64_t a = lo, b = hi;
            while (a < b) {
                int64_t mid = a + (b - a) / 2;
                if ((unsigned char)t->piece[sp[mid]][d] < c)
                    a = mid + 1;
                else
                    b = mid;
            }
            lo = a;
            b = hi;
            while (a < b) {
                int64_t mid = a + (b - a) / 2;
                if ((unsigned char)t->piece[sp[mid]][d] <= c)
                    a = mid + 1;
                else
                    b = mid;
            }
            hi = a;
        }
        if (best >= 0) {
            *at = i;
            return best;
        }
    }
    return -1;
}

int bl_tokenizer_encode(const bl_tokenizer *t, const char *text, size_t len, unsigned flags,
                        int32_t *ids, int64_t cap, int64_t *n_ids)
{
    struct bli_out o = {ids, cap, 0};
    struct bli_ws ws;
    int rc = BL_OK;

    memset(&ws, 0, sizeof ws);
    if (len >= MAX_TEXT) {
        *n_ids = 0;
        return BL_ERANGE;
    }
    if ((flags & BL_TOK_BOS) && t->bos >= 0)
        bli_emit(&o, t->bos);
    size_t pos = 0;
    int after_special = 0;
    while (pos < len) {
        size_t at = len;
        int32_t sid = -1;
        if ((flags & BL_TOK_SPECIAL) && t->n_special > 0)
            sid = find_special(t, text, len, pos, &at);
        if (at > pos) {
            const char *frag = text + pos;
            size_t flen = at - pos;
            if (t->algo == BLI_ALGO_SCORES) {
                /* after a special token the prefix is added only if it costs
                 * one id (the bound in bitlens/tokenizer.h) */
                int prefix = t->add_space_prefix &&
                             (!after_special || t->space_len == 1 || t->space_is_token);
                rc = encode_scores(t, frag, flen, prefix, &o, &ws);
            } else {
                rc = bli_tok_encode_bpe(t, frag, flen, pos == 0, &o, &ws);
            }
            if (rc)
                goto done;
        }
        if (sid < 0)
            break;
        bli_emit(&o, sid);
        pos = at + t->len[sid];
        after_special = 1;
    }
    if ((flags & BL_TOK_EOS) && t->eos >= 0)
        bli_emit(&o, t->eos);
    if (o.n > cap)
        rc = BL_ERANGE;
done:
    *n_ids = o.n;
    bli_tok_ws_release(&ws);
    return rc;
}

/* ---------------------------------------------------------------- decode */

static size_t copy_out(const char *p, size_t n, char *buf, size_t cap)
{
    if (cap > 0 && buf)
        memcpy(buf, p, n < cap ? n : cap);
    return n;
}

size_t bl_tokenizer_decode(const bl_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap)
{
    BL_ASSERT(id >= 0 && id < t->n);
    if (t->kind[id] == BL_TOKEN_CONTROL)
        return 0;
    if (t->kind[id] == BL_TOKEN_USER)
        return copy_out(t->piece[id], t->len[id], buf, cap);
    if (t->algo == BLI_ALGO_BYTES) {
        if (t->raw_len[id] != UINT32_MAX)
            return copy_out(t->raw + t->raw_off[id], t->raw_len[id], buf, cap);
        return copy_out(t->piece[id], t->len[id], buf, cap);
    }
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

/* ------------------------------------------------------------ GGUF writer */

int bl_tokenizer_write_gguf(const bl_tokenizer *t, bl_gguf_writer *w, int64_t n_rows)
{
    const char **strs = NULL;
    size_t *lens = NULL;
    char **conv = NULL;        /* llama2.c pieces with "▁" for ' ' */
    char *marena = NULL;       /* merges "a b" */
    float *scores = NULL;
    int32_t *types = NULL;
    char *pads = NULL;         /* "[PAD<id>]" placeholders */
    int rc = BL_OK;
    int bytes = t->algo == BLI_ALGO_BYTES;
    const char *pre = NULL;

    if (bytes) {
        if (!(pre = bli_tok_pre_name(t)))
            return BL_EUNSUPPORTED;
    } else if (t->algo == BLI_ALGO_MERGES &&
               (t->prefix_first || t->prefix_unless_space || t->n_splits || t->ignore_merges)) {
        return BL_EUNSUPPORTED;    /* Metaspace semantics GGUF "llama" cannot carry */
    }
    size_t n = (size_t)t->n;
    /* an embedding padded past the vocabulary: placeholder tokens
     * "[PAD<id>]" of kind unused fill the rows, as llama.cpp's converter
     * writes them, so the token list matches the embedding */
    size_t n_all = n_rows > t->n ? (size_t)n_rows : n;
    strs = bli_malloc_array(n_all, sizeof *strs);
    lens = bli_malloc_array(n_all, sizeof *lens);
    scores = bli_malloc_array(n_all, sizeof *scores);
    types = bli_malloc_array(n_all, sizeof *types);
    if (n_all > n)
        pads = bli_malloc_array(n_all - n, 24);
    if (!strs || !lens || !scores || !types || (n_all > n && !pads)) {
        rc = BL_ENOMEM;
        goto done;
    }
    for (size_t i = n; i < n_all; i++) {
        char *pp = pads + (i - n) * 24;
        lens[i] = (size_t)snprintf(pp, 24, "[PAD%zu]", i);
        strs[i] = pp;
        scores[i] = -1e9f;
        types[i] = BL_TOKEN_UNUSED;
    }
    int spaces = !bytes && t->space_len == 1;
    if (spaces && !(conv = bli_calloc(n, sizeof *conv))) {
        rc = BL_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        strs[i] = t->piece[i];
        lens[i] = t->len[i];
        types[i] = t->kind[i];
        scores[i] = t->score[i];
        if (spaces && memchr(t->piece[i], ' ', t->len[i])) {
            size_t k = 0;
            for (size_t j = 0; j < t->len[i]; j++)
                k += t->piece[i][j] == ' ' ? 3 : 1;
            if (!(conv[i] = malloc(k + 1))) {
                rc = BL_ENOMEM;
                goto done;
            }
            k = 0;
            for (size_t j = 0; j < t->len[i]; j++) {
                if (t->piece[i][j] == ' ') {
                    memcpy(conv[i] + k, "\xe2\x96\x81", 3);
                    k += 3;
                } else {
                    conv[i][k++] = t->piece[i][j];
                }
            }
            strs[i] = conv[i];
            lens[i] = k;
        }
    }
    if (t->algo == BLI_ALGO_MERGES) {
        /* scores from the merge ranks: minus the rank of the first merge
         * giving a piece; pieces no merge gives come last */
        for (size_t i = 0; i < n; i++)
            scores[i] = -1e9f;
        for (int64_t r = t->n_merges - 1; r >= 0; r--)
            scores[t->merge_id[r]] = -(float)r;
    }
    if ((rc = bl_gguf_writer_set_str(w, "tokenizer.ggml.model", bytes ? "gpt2" : "llama")) ||
        (rc = bl_gguf_writer_set_str(w, "tokenizer.ggml.pre", bytes ? pre : "default")) ||
        (rc = bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, n_all)) ||
        (rc = bl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BL_GGUF_INT32, types, n_all)))
        goto done;
    if (!bytes && (rc = bl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", BL_GGUF_FLOAT32, scores, n_all)))
        goto done;
    if (bytes) {
        size_t total = 0;
        for (int64_t r = 0; r < t->n_merges; r++) {
            const char *l = t->piece[t->merge_left[r]];
            size_t ll = t->len[t->merge_left[r]];
            /* llama.cpp splits at the first space after the first byte */
            if (ll > 1 && memchr(l + 1, ' ', ll - 1)) {
                rc = BL_EUNSUPPORTED;
                goto done;
            }
            total += ll + 1 + t->len[t->merge_right[r]];
        }
        const char **ms = bli_malloc_array((size_t)t->n_merges + 1, sizeof *ms);
        size_t *ml = bli_malloc_array((size_t)t->n_merges + 1, sizeof *ml);
        marena = malloc(total + 1);
        if (!ms || !ml || !marena) {
            free(ms);
            free(ml);
            rc = BL_ENOMEM;
            goto done;
        }
        size_t off = 0;
        for (int64_t r = 0; r < t->n_merges; r++) {
            int32_t a = t->merge_left[r], b = t->merge_right[r];
            ms[r] = marena + off;
            memcpy(marena + off, t->piece[a], t->len[a]);
            marena[off + t->len[a]] = ' ';
            memcpy(marena + off + t->len[a] + 1, t->piece[b], t->len[b]);
            ml[r] = t->len[a] + 1 + t->len[b];
            off += ml[r];
        }
        rc = bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", ms, ml, (uint64_t)t->n_merges);
        free(ms);
        free(ml);
        if (rc)
            goto done;
    }
    static const char *const id_keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id",
                                           "tokenizer.ggml.padding_token_id"};
    const int32_t idv[4] = {t->bos, t->eos, t->unk, t->pad};
    /* a "llama" vocabulary without one of the first three is read with
     * llama.cpp's defaults (1, 2, 0): write 0xFFFFFFFF, "none", instead */
    for (int k = 0; k < 4; k++)
        if ((idv[k] >= 0 || (!bytes && k < 3)) &&
            (rc = bl_gguf_writer_set_u32(w, id_keys[k], idv[k] >= 0 ? (uint32_t)idv[k] : UINT32_MAX)))
            goto done;
    int asp = bytes ? t->prefix_space : t->add_space_prefix;
    if ((rc = bl_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos)) ||
        (rc = bl_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos)) ||
        (rc = bl_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", asp)))
        goto done;
done:
    if (conv)
        for (size_t i = 0; i < n; i++)
            free(conv[i]);
    free(conv);
    free(strs);
    free(lens);
    free(scores);
    free(types);
    free(marena);
    free(pads);
    return rc;
}
