/* tests/craft.c: write model and tokenizer files, good and broken, for the
 * loader tests.
 *
 *   craft KIND SRC OUT [ARGS]   (a file made from SRC)
 *   craft KIND OUT              (badmagic, gguf-synth, gguf-q4k)
 *
 * (see `usage` below for the kinds)
 *
 * The llama2.c conversions read a legacy ("v0") checkpoint, the seven-int32
 * header of llama2.c's original export:
 *
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *         (vocab_size < 0: a separate classifier follows the RoPE tables)
 *   float token_embedding[V][D], attn_norm[L][D], wq[L][D][D],
 *         wk[L][KV][D], wv[L][KV][D], wo[L][D][D], ffn_norm[L][D],
 *         w1[L][F][D] (gate), w2[L][D][F] (down), w3[L][F][D] (up),
 *         final_norm[D], freq_cis_real[S][hd/2], freq_cis_imag[S][hd/2],
 *         [classifier[V][D]]
 *
 * and write it again as legacy or version 1 (llama2.c export.py
 * "version1_export"):
 *
 *   uint32 magic 0x616b3432 ("ak42"), int32 version 1, the seven int32
 *   (vocab_size positive), uint8 shared_classifier, zeros up to byte 256,
 *   then attn_norm, ffn_norm, final_norm, token_embedding, wq, wk, wv, wo,
 *   w1, w2, w3, [classifier]; no RoPE tables.
 *
 * A separate classifier is written as a copy of the source's classifier
 * (the embedding when it is shared) multiplied by SCALE, so a test can tell
 * whether the loader really reads it from its own place: with SCALE 0.5
 * every logit halves (exactly: a power of two).
 *
 * GGUF files are built with the library's writer (bl_gguf_writer_*): a copy
 * of a real GGUF with one thing broken, or a small synthetic model.
 *
 * Built by `make check` for tests/cli-errors.sh.  tests/test-model.c
 * includes this file with CRAFT_NO_MAIN defined to reuse the functions, so
 * everything here is static and prefixed cr_. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

#include "testutil.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "craft.c copies little-endian floats as host floats"
#endif

#define CR_FN static __attribute__((unused))

#define CR_L2C_MAGIC 0x616b3432u

/* ---------------------------------------------------------------- files */


static void cr_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t cr_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t cr_get_i32(const unsigned char *p)
{
    uint32_t u = cr_get_u32(p);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static uint64_t cr_get_u64(const unsigned char *p)
{
    return (uint64_t)cr_get_u32(p) | (uint64_t)cr_get_u32(p + 4) << 32;
}

/* ---------------------------------------------------------------- llama2.c */

/* Sections of a legacy checkpoint, in file order. */
enum {
    CR_EMB, CR_ATTN_NORM, CR_WQ, CR_WK, CR_WV, CR_WO, CR_FFN_NORM, CR_W1, CR_W2, CR_W3,
    CR_FINAL_NORM, CR_FREQ_RE, CR_FREQ_IM, CR_CLS, CR_N_SECT
};

/* A legacy llama2.c checkpoint, parsed. */
struct cr_l2c {
    int32_t hdr[7];              /* dim, hidden, layers, heads, kv heads, |vocab|, seq_len */
    int shared;                  /* 1: no separate classifier in the file */
    size_t off[CR_N_SECT];       /* byte offset of each section */
    size_t len[CR_N_SECT];       /* bytes of each section (CR_CLS: 0 when shared) */
    size_t size;                 /* bytes the header describes (= the file size) */
};

/* Parse the legacy header of buf[0..n-1] and lay out its sections.
 * 0, or -1 with the reason in why. */
CR_FN int cr_l2c_parse(const unsigned char *buf, size_t n, struct cr_l2c *h, char *why,
                       size_t whylen)
{
    memset(h, 0, sizeof *h);
    if (n < 28) {
        snprintf(why, whylen, "%zu bytes: too short for a llama2.c header", n);
        return -1;
    }
    if (cr_get_u32(buf) == CR_L2C_MAGIC) {
        snprintf(why, whylen, "already a version-%d llama2.c file (give the legacy one)",
                 (int)cr_get_i32(buf + 4));
        return -1;
    }
    for (int i = 0; i < 7; i++)
        h->hdr[i] = cr_get_i32(buf + 4 * i);
    h->shared = h->hdr[5] > 0;
    if (h->hdr[5] < 0 && h->hdr[5] != INT32_MIN)
        h->hdr[5] = -h->hdr[5];
    for (int i = 0; i < 7; i++)
        if (h->hdr[i] <= 0 || h->hdr[i] > (1 << 24)) {
            snprintf(why, whylen, "header field %d is %" PRId32 ": not a legacy llama2.c header", i,
                     h->hdr[i]);
            return -1;
        }
    size_t D = (size_t)h->hdr[0], F = (size_t)h->hdr[1], L = (size_t)h->hdr[2];
    size_t H = (size_t)h->hdr[3], KVH = (size_t)h->hdr[4], V = (size_t)h->hdr[5];
    size_t S = (size_t)h->hdr[6];
    if (D % H || D > 65536 || F > (1 << 20) || L > 1024) {
        snprintf(why, whylen, "implausible dimensions in the header");
        return -1;
    }
    size_t hd = D / H, KV = KVH * hd;
    size_t nel[CR_N_SECT] = {
        V * D, L * D, L * D * D, L * KV * D, L * KV * D, L * D * D, L * D,
        L * F * D, L * D * F, L * F * D, D, S * hd / 2, S * hd / 2, h->shared ? 0 : V * D,
    };
    size_t off = 28;
    for (int i = 0; i < CR_N_SECT; i++) {
        h->off[i] = off;
        h->len[i] = nel[i] * 4;
        off += h->len[i];
    }
    h->size = off;
    if (off != n) {
        snprintf(why, whylen, "the header describes %zu bytes but the file has %zu", off, n);
        return -1;
    }
    return 0;
}

/* Convert a legacy checkpoint to llama2.c `version` (0 = legacy, 1 = "ak42")
 * with a tied classifier (shared = 1) or a separate one (shared = 0) that is
 * the source's classifier times cls_scale.  Returns a malloc'd image and its
 * size in *outn, or NULL with the reason in why. */
CR_FN unsigned char *cr_l2c_convert(const unsigned char *src, size_t n, int version, int shared,
                                    float cls_scale, size_t *outn, char *why, size_t whylen)
{
    struct cr_l2c h;
    if (cr_l2c_parse(src, n, &h, why, whylen))
        return NULL;
    if (version != 0 && version != 1) {
        snprintf(why, whylen, "version %d: only 0 and 1 are written", version);
        return NULL;
    }
    /* where the classifier comes from: its own section, else the embedding */
    int cls_src = h.shared ? CR_EMB : CR_CLS;
    size_t cls_len = h.len[CR_EMB];
    size_t total = version == 1 ? 256 : 28;
    static const int order0[] = {CR_EMB, CR_ATTN_NORM, CR_WQ, CR_WK, CR_WV, CR_WO, CR_FFN_NORM,
                                 CR_W1, CR_W2, CR_W3, CR_FINAL_NORM, CR_FREQ_RE, CR_FREQ_IM};
    static const int order1[] = {CR_ATTN_NORM, CR_FFN_NORM, CR_FINAL_NORM, CR_EMB, CR_WQ, CR_WK,
                                 CR_WV, CR_WO, CR_W1, CR_W2, CR_W3};
    const int *order = version == 1 ? order1 : order0;
    size_t n_order = version == 1 ? sizeof order1 / sizeof order1[0] : sizeof order0 / sizeof order0[0];
    for (size_t i = 0; i < n_order; i++)
        total += h.len[order[i]];
    if (!shared)
        total += cls_len;
    unsigned char *out = calloc(1, total);
    if (!out) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    size_t o = 0;
    int32_t hdr[7];
    memcpy(hdr, h.hdr, sizeof hdr);
    if (version == 1) {
        cr_put_u32(out, CR_L2C_MAGIC);
        cr_put_u32(out + 4, 1);
        o = 8;
    } else if (!shared) {
        hdr[5] = -hdr[5];
    }
    for (int i = 0; i < 7; i++)
        cr_put_u32(out + o + 4 * (size_t)i, (uint32_t)hdr[i]);
    o += 28;
    if (version == 1) {
        out[o] = shared ? 1 : 0;
        o = 256;   /* zero padding from calloc */
    }
    for (size_t i = 0; i < n_order; i++) {
        memcpy(out + o, src + h.off[order[i]], h.len[order[i]]);
        o += h.len[order[i]];
    }
    if (!shared) {
        const unsigned char *c = src + h.off[cls_src];
        for (size_t i = 0; i < cls_len; i += 4) {
            float f;
            memcpy(&f, c + i, 4);
            f *= cls_scale;
            memcpy(out + o + i, &f, 4);
        }
        o += cls_len;
    }
    if (o != total) {   /* cannot happen: the sizes above add up */
        free(out);
        snprintf(why, whylen, "internal error: wrote %zu of %zu bytes", o, total);
        return NULL;
    }
    *outn = total;
    return out;
}

/* ---------------------------------------------------------------- tokenizer.bin */

/* The llama2.c tokenizer in buf: the offset just past token k for
 * k = 0..*count-1 goes to ends[k] (ends may be NULL).  0, or -1 if the file
 * is not a whole tokenizer.bin. */
CR_FN int cr_tok_scan(const unsigned char *buf, size_t n, size_t *ends, size_t cap, size_t *count)
{
    size_t off = 4, k = 0;
    if (n < 4)
        return -1;
    while (off < n) {
        if (n - off < 8)
            return -1;
        int32_t len = cr_get_i32(buf + off + 4);
        if (len < 0 || (size_t)len > n - off - 8)
            return -1;
        off += 8 + (size_t)len;
        if (ends && k < cap)
            ends[k] = off;
        k++;
    }
    *count = k;
    return 0;
}

/* ---------------------------------------------------------------- GGUF */

/* Copy every key and tensor of g into a new writer.  Tensor data is
 * borrowed from g, which must stay open until the writer has written.  NULL
 * with the reason in why on failure. */
CR_FN bl_gguf_writer *cr_gguf_copy(const bl_gguf *g, char *why, size_t whylen)
{
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    struct bl_gguf_str *strs = NULL;
    const char **ptrs = NULL;
    size_t *lens = NULL;
    int rc = 0;
    if (!w) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < bl_gguf_n_kv(g) && !rc; i++) {
        const char *key = bl_gguf_key(g, i);
        int type = bl_gguf_kv_type(g, i);
        int64_t iv;
        float fv;
        int bv, et;
        uint64_t n;
        struct bl_gguf_str s;
        switch (type) {
        case BL_GGUF_STRING: {
            if ((rc = bl_gguf_get_str(g, key, &s, NULL)))
                break;
            char *v = malloc((size_t)s.len + 1);
            if (!v) {
                rc = BL_ENOMEM;
                break;
            }
            memcpy(v, s.ptr, (size_t)s.len);
            v[s.len] = '\0';
            rc = bl_gguf_writer_set_str(w, key, v);
            free(v);
            break;
        }
        case BL_GGUF_FLOAT32:
        case BL_GGUF_FLOAT64:
            if (!(rc = bl_gguf_get_f32(g, key, &fv, NULL)))
                rc = bl_gguf_writer_set_f32(w, key, fv);
            break;
        case BL_GGUF_BOOL:
            if (!(rc = bl_gguf_get_bool(g, key, &bv, NULL)))
                rc = bl_gguf_writer_set_bool(w, key, bv);
            break;
        case BL_GGUF_ARRAY:
            if ((rc = bl_gguf_get_arr(g, key, &et, &n, NULL)))
                break;
            if (et == BL_GGUF_STRING) {
                strs = calloc(n ? n : 1, sizeof *strs);
                ptrs = calloc(n ? n : 1, sizeof *ptrs);
                lens = calloc(n ? n : 1, sizeof *lens);
                if (!strs || !ptrs || !lens) {
                    rc = BL_ENOMEM;
                    break;
                }
                if ((rc = bl_gguf_arr_strings(g, key, strs, n, NULL)))
                    break;
                for (uint64_t j = 0; j < n; j++) {
                    ptrs[j] = strs[j].ptr;
                    lens[j] = (size_t)strs[j].len;
                }
                rc = bl_gguf_writer_set_arr_str(w, key, ptrs, lens, n);
                free(strs);
                free(ptrs);
                free(lens);
                strs = NULL;
                ptrs = NULL;
                lens = NULL;
            } else {
                rc = bl_gguf_writer_set_arr(w, key, et, bl_gguf_arr_data(g, key), n);
            }
            break;
        case BL_GGUF_UINT32:
            if (!(rc = bl_gguf_get_i64(g, key, &iv, NULL)))
                rc = bl_gguf_writer_set_u32(w, key, (uint32_t)iv);
            break;
        case BL_GGUF_UINT64:
            if (!(rc = bl_gguf_get_i64(g, key, &iv, NULL)))
                rc = bl_gguf_writer_set_u64(w, key, (uint64_t)iv);
            break;
        default:   /* other integers: as int32 when they fit, else uint64 */
            if ((rc = bl_gguf_get_i64(g, key, &iv, NULL)))
                break;
            if (iv >= INT32_MIN && iv <= INT32_MAX)
                rc = bl_gguf_writer_set_i32(w, key, (int32_t)iv);
            else
                rc = bl_gguf_writer_set_u64(w, key, (uint64_t)iv);
            break;
        }
        if (rc)
            snprintf(why, whylen, "copying key '%s' (%s): %s", key, bl_gguf_type_name(type),
                     bl_strerror(rc));
    }
    for (int64_t i = 0; i < bl_gguf_n_tensors(g) && !rc; i++) {
        const struct bl_tensor *t = bl_gguf_tensor(g, i);
        if ((rc = bl_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data)))
            snprintf(why, whylen, "copying tensor '%s': %s", t->name, bl_strerror(rc));
    }
    free(strs);
    free(ptrs);
    free(lens);
    if (rc) {
        bl_gguf_writer_free(w);
        return NULL;
    }
    return w;
}

/* Open src, copy it into a writer and apply one change:
 *   "copy"        none
 *   "arch=NAME"   general.architecture = NAME
 *   "vocab-N"     the vocabulary (tokens, scores, token types) without its
 *                 last N entries
 *   "set:KEY=V"   KEY = V: an integer as int32 (uint32 if the key holds an
 *                 unsigned type), a number with a point as float32, else a
 *                 string
 * then write out.  0, or -1 with the reason in why. */
CR_FN int cr_gguf_variant(const char *src, const char *out, const char *change, char *why,
                          size_t whylen)
{
    bl_gguf *g = NULL;
    bl_gguf_writer *w = NULL;
    bl_err err = {0};
    struct bl_gguf_str *strs = NULL;
    const char **ptrs = NULL;
    size_t *lens = NULL;
    int ret = -1;

    if (bl_gguf_open(&g, src, &err)) {
        snprintf(why, whylen, "%s", err.msg);
        return -1;
    }
    if (!(w = cr_gguf_copy(g, why, whylen)))
        goto done;
    if (strncmp(change, "arch=", 5) == 0) {
        if (bl_gguf_writer_set_str(w, "general.architecture", change + 5)) {
            snprintf(why, whylen, "out of memory");
            goto done;
        }
    } else if (strncmp(change, "vocab-", 6) == 0) {
        uint64_t drop = strtoull(change + 6, NULL, 10), n;
        int et;
        if (bl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, NULL) || et != BL_GGUF_STRING ||
            drop == 0 || drop >= n) {
            snprintf(why, whylen, "%s: no vocabulary of more than %" PRIu64 " tokens", src, drop);
            goto done;
        }
        uint64_t keep = n - drop;
        strs = calloc(n, sizeof *strs);
        ptrs = calloc(n, sizeof *ptrs);
        lens = calloc(n, sizeof *lens);
        if (!strs || !ptrs || !lens || bl_gguf_arr_strings(g, "tokenizer.ggml.tokens", strs, n, NULL)) {
            snprintf(why, whylen, "cannot read the vocabulary");
            goto done;
        }
        for (uint64_t j = 0; j < keep; j++) {
            ptrs[j] = strs[j].ptr;
            lens[j] = (size_t)strs[j].len;
        }
        if (bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", ptrs, lens, keep)) {
            snprintf(why, whylen, "out of memory");
            goto done;
        }
        /* keep the per-token arrays consistent with the token list, so the
         * only fault is the count against the embedding */
        static const char *const per_token[] = {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
        for (int k = 0; k < 2; k++) {
            uint64_t m;
            if (bl_gguf_get_arr(g, per_token[k], &et, &m, NULL) == BL_OK && m == n &&
                bl_gguf_writer_set_arr(w, per_token[k], et, bl_gguf_arr_data(g, per_token[k]), keep)) {
                snprintf(why, whylen, "out of memory");
                goto done;
            }
        }
    } else if (strncmp(change, "set:", 4) == 0) {
        char key[256];
        const char *eq = strchr(change + 4, '=');
        if (!eq || eq == change + 4 || (size_t)(eq - change - 4) >= sizeof key) {
            snprintf(why, whylen, "set: give KEY=VALUE");
            goto done;
        }
        memcpy(key, change + 4, (size_t)(eq - change - 4));
        key[eq - change - 4] = '\0';
        const char *val = eq + 1;
        char *end;
        errno = 0;
        long long iv = strtoll(val, &end, 10);
        int rc;
        if (*val && !*end && !errno) {
            int64_t k = bl_gguf_find_key(g, key);
            int t = k >= 0 ? bl_gguf_kv_type(g, k) : BL_GGUF_INT32;
            if ((t == BL_GGUF_UINT32 || t == BL_GGUF_UINT64 || t == BL_GGUF_UINT16 ||
                 t == BL_GGUF_UINT8) && iv >= 0 && iv <= (long long)UINT32_MAX)
                rc = bl_gguf_writer_set_u32(w, key, (uint32_t)iv);
            else
                rc = bl_gguf_writer_set_i32(w, key, (int32_t)iv);
        } else if (*val && (strtof(val, &end), !*end) && strchr(val, '.')) {
            rc = bl_gguf_writer_set_f32(w, key, strtof(val, NULL));
        } else {
            rc = bl_gguf_writer_set_str(w, key, val);
        }
        if (rc) {
            snprintf(why, whylen, "set %s: %s", key, bl_strerror(rc));
            goto done;
        }
    } else if (strcmp(change, "copy") != 0) {
        snprintf(why, whylen, "unknown change '%s'", change);
        goto done;
    }
    if (bl_gguf_writer_write(w, out, &err)) {
        snprintf(why, whylen, "%s", err.msg);
        goto done;
    }
    ret = 0;
done:
    free(strs);
    free(ptrs);
    free(lens);
    bl_gguf_writer_free(w);
    bl_gguf_free(g);
    return ret;
}

/* In the GGUF image buf[0..n-1] (written by bl_gguf_writer, n_dims as
 * recorded), find the tensor-info record of `name` and set its data offset
 * (relative to the data section) to `rel`.  0, or -1 if it is not found. */
CR_FN int cr_gguf_set_offset(unsigned char *buf, size_t n, const char *name, uint64_t rel)
{
    size_t nl = strlen(name);
    if (n < 24)
        return -1;
    uint64_t n_tensors = cr_get_u64(buf + 8);
    /* a tensor record: u64 length, name, u32 n_dims, u64 ne[n_dims], u32
     * type, u64 offset.  Search for the length-prefixed name followed by a
     * plausible n_dims; names of keys are followed by a type instead, but
     * no key is named like a tensor. */
    for (size_t i = 24; i + 8 + nl + 4 <= n && n_tensors; i++) {
        if (cr_get_u64(buf + i) != nl || memcmp(buf + i + 8, name, nl) != 0)
            continue;
        size_t p = i + 8 + nl;
        uint32_t nd = cr_get_u32(buf + p);
        if (nd < 1 || nd > 4 || p + 4 + 8 * (size_t)nd + 4 + 8 > n)
            continue;
        p += 4 + 8 * (size_t)nd + 4;
        for (int b = 0; b < 8; b++)
            buf[p + (size_t)b] = (unsigned char)(rel >> (8 * b));
        return 0;
    }
    return -1;
}

/* Write src again with the data offset of tensor `name` moved past the end
 * of the file (aligned, so only the bounds check can object).  0 or -1. */
CR_FN int cr_gguf_offset_past_end(const char *src, const char *out, const char *name, char *why,
                                  size_t whylen)
{
    if (cr_gguf_variant(src, out, "copy", why, whylen))
        return -1;
    size_t n;
    unsigned char *buf = (unsigned char *)read_file(out, &n);
    if (!buf) {
        snprintf(why, whylen, "%s: cannot read back: %s", out, strerror(errno));
        return -1;
    }
    /* relative offset n rounded up to 32: absolute offset beyond n */
    uint64_t rel = ((uint64_t)n + 31) / 32 * 32;
    int rc = cr_gguf_set_offset(buf, n, name, rel);
    if (rc)
        snprintf(why, whylen, "%s: tensor '%s' not found", src, name);
    else if ((rc = write_file(out, buf, n)))
        snprintf(why, whylen, "%s: cannot write: %s", out, strerror(errno));
    free(buf);
    return rc;
}

/* Deterministic pseudo-random floats in [-scale, scale) (a 64-bit LCG). */
static void cr_fill(float *x, size_t n, uint64_t *state, float scale)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = scale * ((float)(*state >> 40) / (float)(1u << 24) * 2.0f - 1.0f);
    }
}

/* A small synthetic Llama GGUF: dim 8, 1 layer, 2 heads, hidden 256,
 * vocabulary of 32 (with a "llama" tokenizer), context 16; every tensor f32
 * except blk.0.ffn_down.weight [256, 8], stored as `down_type` (BL_F32, or
 * a type bitlens cannot compute with such as q4_K = 12, whose 256-element
 * blocks fit the 256-wide rows).  0, or -1 with the reason in why. */
CR_FN int cr_gguf_synth(const char *out, int down_type, char *why, size_t whylen)
{
    enum { D = 8, F = 256, V = 32 };
    static float emb[V * D], nrm[D], wq[D * D], wk[D * D], wv[D * D], wo[D * D];
    static float gate[F * D], up[F * D], down[D * F], onrm[D];
    static unsigned char down_q[D * 210 * (F / 256) + 4096];
    uint64_t st = 0x9e3779b97f4a7c15ull;
    cr_fill(emb, V * D, &st, 1.0f);
    cr_fill(wq, D * D, &st, 0.5f);
    cr_fill(wk, D * D, &st, 0.5f);
    cr_fill(wv, D * D, &st, 0.5f);
    cr_fill(wo, D * D, &st, 0.5f);
    cr_fill(gate, F * D, &st, 0.5f);
    cr_fill(up, F * D, &st, 0.5f);
    cr_fill(down, D * F, &st, 0.1f);
    for (int i = 0; i < D; i++) {
        nrm[i] = 1.0f + 0.125f * (float)i;
        onrm[i] = 1.5f - 0.0625f * (float)i;
    }
    const void *down_data = down;
    if (down_type != BL_F32) {
        size_t rb = bl_dtype_row_bytes(down_type, F);
        if (rb == 0 || rb * D > sizeof down_q) {
            snprintf(why, whylen, "type %d cannot hold rows of %d elements", down_type, F);
            return -1;
        }
        /* arbitrary bytes: the data is never computed with; keep f16
         * scales finite by clearing the top bits of every byte */
        for (size_t i = 0; i < rb * D; i++)
            down_q[i] = (unsigned char)((i * 37u + 11u) & 0x3f);
        down_data = down_q;
    }

    static const char *pieces[V] = {"<unk>", "<s>", "</s>", " ", "a", "b", "c", "d",
                                    "e", "f", "g", "h", "i", "j", "k", "l",
                                    "m", "n", "o", "p", "q", "r", "s", "t",
                                    "u", "v", "w", "x", "y", "z", " a", " t"};
    float scores[V];
    int32_t types[V];
    for (int i = 0; i < V; i++) {
        scores[i] = -(float)i;
        types[i] = i < 3 ? (i == 0 ? BL_TOKEN_UNKNOWN : BL_TOKEN_CONTROL) : BL_TOKEN_NORMAL;
    }

    bl_gguf_writer *w = bl_gguf_writer_alloc();
    if (!w) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    int rc = 0;
    rc |= bl_gguf_writer_set_str(w, "general.architecture", "llama");
    rc |= bl_gguf_writer_set_str(w, "general.name", "craft synthetic");
    rc |= bl_gguf_writer_set_u32(w, "llama.context_length", 16);
    rc |= bl_gguf_writer_set_u32(w, "llama.embedding_length", D);
    rc |= bl_gguf_writer_set_u32(w, "llama.feed_forward_length", F);
    rc |= bl_gguf_writer_set_u32(w, "llama.block_count", 1);
    rc |= bl_gguf_writer_set_u32(w, "llama.attention.head_count", 2);
    rc |= bl_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 2);
    rc |= bl_gguf_writer_set_u32(w, "llama.rope.dimension_count", 4);
    rc |= bl_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= bl_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    rc |= bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, NULL, V);
    rc |= bl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", BL_GGUF_FLOAT32, scores, V);
    rc |= bl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BL_GGUF_INT32, types, V);
    rc |= bl_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc |= bl_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    const int64_t ne_emb[2] = {D, V}, ne_vec[1] = {D}, ne_sq[2] = {D, D}, ne_up[2] = {D, F},
                  ne_down[2] = {F, D};
    rc |= bl_gguf_writer_add_tensor(w, "token_embd.weight", BL_F32, 2, ne_emb, emb);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", BL_F32, 1, ne_vec, nrm);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", BL_F32, 2, ne_sq, wq);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.attn_k.weight", BL_F32, 2, ne_sq, wk);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.attn_v.weight", BL_F32, 2, ne_sq, wv);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.attn_output.weight", BL_F32, 2, ne_sq, wo);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", BL_F32, 1, ne_vec, nrm);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.ffn_gate.weight", BL_F32, 2, ne_up, gate);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", BL_F32, 2, ne_up, up);
    rc |= bl_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", down_type, 2, ne_down, down_data);
    rc |= bl_gguf_writer_add_tensor(w, "output_norm.weight", BL_F32, 1, ne_vec, onrm);
    bl_err err = {0};
    if (rc) {
        snprintf(why, whylen, "building the GGUF failed");
        rc = -1;
    } else if (bl_gguf_writer_write(w, out, &err)) {
        snprintf(why, whylen, "%s", err.msg);
        rc = -1;
    }
    bl_gguf_writer_free(w);
    return rc;
}

/* ---------------------------------------------------------------- kinds */

/* Kinds that make a file from nothing (`craft KIND OUT`); the others read
 * a source (`craft KIND SRC OUT [ARGS]`). */
CR_FN int cr_kind_has_source(const char *kind)
{
    return strcmp(kind, "badmagic") != 0 && strcmp(kind, "gguf-q4k") != 0 &&
           strcmp(kind, "gguf-synth") != 0;
}

/* One craft: kind, source (NULL for the kinds without), output path and the
 * further arguments (see usage).  0, or -1 with the reason in why. */
CR_FN int cr_make(const char *kind, const char *srcpath, const char *out, int argc, char **argv,
                  char *why, size_t whylen)
{
#define NEED(k)                                                                                 \
    do {                                                                                        \
        if (argc < (k)) {                                                                       \
            snprintf(why, whylen, "%s: missing arguments", kind);                               \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)
    unsigned char *src = NULL, *img = NULL;
    size_t n = 0, m = 0;
    int ret = -1;

    if (strcmp(kind, "badmagic") == 0) {
        /* text, not a model: no GGUF or llama2.c magic, and as a legacy
         * header its int32s are far out of range */
        char buf[4096];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = "this is not a model file\n"[i % 25];
        if (write_file(out, buf, sizeof buf)) {
            snprintf(why, whylen, "%s: cannot write: %s", out, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (strcmp(kind, "gguf-q4k") == 0)
        return cr_gguf_synth(out, 12, why, whylen);
    if (strcmp(kind, "gguf-synth") == 0)
        return cr_gguf_synth(out, BL_F32, why, whylen);
    if (!srcpath) {
        snprintf(why, whylen, "%s: no source file", kind);
        return -1;
    }
    if (strcmp(kind, "gguf-copy") == 0)
        return cr_gguf_variant(srcpath, out, "copy", why, whylen);
    if (strcmp(kind, "gguf-arch") == 0) {
        NEED(1);
        char change[128];
        snprintf(change, sizeof change, "arch=%s", argv[0]);
        return cr_gguf_variant(srcpath, out, change, why, whylen);
    }
    if (strcmp(kind, "gguf-vocab") == 0) {
        char change[64];
        snprintf(change, sizeof change, "vocab-%s", argc > 0 ? argv[0] : "12");
        return cr_gguf_variant(srcpath, out, change, why, whylen);
    }
    if (strcmp(kind, "gguf-set") == 0) {
        NEED(1);
        char change[512];
        snprintf(change, sizeof change, "set:%s", argv[0]);
        return cr_gguf_variant(srcpath, out, change, why, whylen);
    }
    if (strcmp(kind, "gguf-offset") == 0)
        return cr_gguf_offset_past_end(srcpath, out, argc > 0 ? argv[0] : "token_embd.weight", why,
                                       whylen);

    /* the rest read the source themselves */
    if (!(src = (unsigned char *)read_file(srcpath, &n))) {
        snprintf(why, whylen, "%s: cannot read: %s", srcpath, strerror(errno));
        return -1;
    }
    if (strcmp(kind, "llama2c-v1") == 0 || strcmp(kind, "llama2c-unshared") == 0 ||
        strcmp(kind, "llama2c-v1-unshared") == 0 || strcmp(kind, "llama2c-v2") == 0) {
        int v1 = strcmp(kind, "llama2c-unshared") != 0;
        int shared = strstr(kind, "unshared") == NULL;
        float scale = argc > 0 ? strtof(argv[0], NULL) : 0.5f;
        img = cr_l2c_convert(src, n, v1, shared, scale, &m, why, whylen);
        if (!img)
            goto done;
        if (strcmp(kind, "llama2c-v2") == 0)
            cr_put_u32(img + 4, 2);   /* version 2: int8 weights in llama2.c */
    } else if (strcmp(kind, "truncate") == 0) {
        NEED(1);
        char *end;
        errno = 0;
        long long b = strtoll(argv[0], &end, 10);
        if (errno || end == argv[0] || *end) {
            snprintf(why, whylen, "truncate: '%s' is not a byte count", argv[0]);
            goto done;
        }
        if (b < 0)   /* -N: N bytes fewer than the source */
            b += (long long)n;
        if (b < 0 || (unsigned long long)b > n) {
            snprintf(why, whylen, "truncate: %s bytes is outside the file (%zu bytes)", argv[0], n);
            goto done;
        }
        m = (size_t)b;
        img = src;
        src = NULL;
    } else if (strcmp(kind, "tok-head") == 0 || strcmp(kind, "tok-cut") == 0 ||
               strcmp(kind, "tok-extra") == 0) {
        size_t count, *ends = NULL;
        if (cr_tok_scan(src, n, NULL, 0, &count) || count == 0) {
            snprintf(why, whylen, "%s: not a llama2.c tokenizer.bin", srcpath);
            goto done;
        }
        if (strcmp(kind, "tok-cut") == 0) {
            /* the last token one byte short */
            m = n - 1;
            img = src;
            src = NULL;
        } else if (strcmp(kind, "tok-head") == 0) {
            NEED(1);
            size_t keep = (size_t)strtoull(argv[0], NULL, 10);
            if (keep == 0 || keep > count || !(ends = malloc(count * sizeof *ends))) {
                snprintf(why, whylen, "tok-head: keep 1 to %zu tokens", count);
                goto done;
            }
            cr_tok_scan(src, n, ends, count, &count);
            m = ends[keep - 1];
            free(ends);
            img = src;
            src = NULL;
        } else {
            NEED(1);
            size_t more = (size_t)strtoull(argv[0], NULL, 10);
            if (more == 0 || more > 100000 || !(img = malloc(n + more * 16))) {
                snprintf(why, whylen, "tok-extra: add 1 to 100000 tokens");
                goto done;
            }
            memcpy(img, src, n);
            m = n;
            for (size_t i = 0; i < more; i++) {
                char piece[8];
                int len = snprintf(piece, sizeof piece, "x%zu", i % 100000);
                float score = -1000.0f - (float)i;
                memcpy(img + m, &score, 4);
                cr_put_u32(img + m + 4, (uint32_t)len);
                memcpy(img + m + 8, piece, (size_t)len);
                m += 8 + (size_t)len;
            }
        }
    } else {
        snprintf(why, whylen, "unknown kind '%s'", kind);
        goto done;
    }
    if (write_file(out, img, m)) {
        snprintf(why, whylen, "%s: cannot write: %s", out, strerror(errno));
        goto done;
    }
    ret = 0;
done:
    free(src);
    free(img);
    return ret;
#undef NEED
}

#ifndef CRAFT_NO_MAIN
static const char usage[] =
    "usage: craft KIND [SRC] OUT [ARGS]\n"
    "  llama2c-v1 SRC.bin OUT              legacy llama2.c checkpoint to version 1 (\"ak42\")\n"
    "  llama2c-unshared SRC.bin OUT [S]    legacy, separate classifier = classifier * S (0.5)\n"
    "  llama2c-v1-unshared SRC.bin OUT [S] version 1, separate classifier * S (0.5)\n"
    "  llama2c-v2 SRC.bin OUT              version 1 layout with version 2 in the header\n"
    "  truncate SRC OUT BYTES              the first BYTES bytes (-N: all but the last N)\n"
    "  badmagic OUT                        4096 bytes of text\n"
    "  gguf-copy SRC.gguf OUT              rewrite with the library's writer\n"
    "  gguf-arch SRC.gguf OUT ARCH         general.architecture = ARCH\n"
    "  gguf-vocab SRC.gguf OUT [N]         vocabulary without its last N (12) tokens\n"
    "  gguf-offset SRC.gguf OUT [TENSOR]   TENSOR's data offset past the end of the file\n"
    "  gguf-set SRC.gguf OUT KEY=VALUE     one key set (integer, float with a point, or string)\n"
    "  gguf-synth OUT                      small synthetic Llama, all f32\n"
    "  gguf-q4k OUT                        the same with blk.0.ffn_down.weight in q4_K\n"
    "  tok-head SRC OUT N                  tokenizer.bin with only its first N tokens\n"
    "  tok-extra SRC OUT N                 tokenizer.bin with N tokens appended\n"
    "  tok-cut SRC OUT                     tokenizer.bin with its last token cut short\n";

int main(int argc, char **argv)
{
    char why[1024];
    if (argc < 3 || (cr_kind_has_source(argv[1]) && argc < 4)) {
        fputs(usage, stderr);
        return 2;
    }
    int src = cr_kind_has_source(argv[1]);
    if (cr_make(argv[1], src ? argv[2] : NULL, argv[src ? 3 : 2], argc - (src ? 4 : 3),
                argv + (src ? 4 : 3), why, sizeof why)) {
        fprintf(stderr, "craft %s: %s\n", argv[1], why);
        return 2;
    }
    return 0;
}
#endif
