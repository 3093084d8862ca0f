/* tests/test-model.c: the model loaders (GGUF, llama2.c legacy and
 * version 1) on real files, converted files and broken files.
 *
 * stories260K.bin (legacy llama2.c header, shared classifier) is the
 * reference.  The conversions of tests/craft.c (included below) turn it
 * into version 1, and into legacy and version 1 files with a separate
 * classifier; each must give the same config, the same tensors (names,
 * shapes, bytes, and the offsets the llama2.c layouts put them at) and
 * bit-identical logits.  A separate classifier that is the embedding times
 * 0.5 must give exactly half the logits: the classifier is linear and a
 * power-of-two scale is exact in floating point, so the expectation is
 * derived without running the model on it.  stories260K.gguf holds the same
 * weights: same config (but its context of 128 and its own output.weight),
 * identical f32 data, identical logits.
 *
 * Every loader failure is checked for its status, a NULL model, and a
 * message that names the file and the problem: missing file, directory,
 * empty file, garbage, every prefix of the .bin and the .gguf at a stride of
 * 997 bytes plus the boundaries of the header and of every tensor (never a
 * crash, always BL_EFORMAT), llama2.c version 2, a tensor past the end, a
 * q4_K tensor (refused for compute, described with describe_only),
 * vocabulary against embedding, tokenizer.bin of another model, an
 * unsupported architecture; and bl_ctx_eval's token and context checks. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

#define CRAFT_NO_MAIN
#include "craft.c"

static char *tmp;            /* scratch directory */
static char *bin_path;       /* stories260K.bin */
static char *tok_path;       /* tok512.bin */
static char *gguf_path;      /* stories260K.gguf */

/* the prompt "Once upon a time" as llama2.c encodes it (golden/README.md) */
static const int32_t ids[] = {1, 403, 407, 261, 378};
#define N_IDS ((int64_t)(sizeof ids / sizeof ids[0]))

static const char *tpath(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmp, name);
    return p;
}

static int write_tmp(const char *name, const void *data, size_t n)
{
    if (write_file(tpath(name), data, n)) {
        diag("cannot write %s", tpath(name));
        return -1;
    }
    return 0;
}

static bl_model *load(const char *path, const char *tok, int describe, bl_err *err)
{
    struct bl_model_params p = bl_model_default_params();
    bl_model *m = (bl_model *)1;   /* must be set to NULL on failure */
    p.tokenizer_path = tok;
    p.describe_only = describe;
    memset(err, 0, sizeof *err);
    int rc = bl_model_load(&m, path, &p, err);
    if (rc) {
        if (m != NULL)
            diag("bl_model_load failed (%d) but left *out = %p", rc, (void *)m);
        return NULL;
    }
    return m;
}

static bl_model *load_ok(const char *path, const char *tok, const char *label)
{
    bl_err err;
    bl_model *m = load(path, tok, 0, &err);
    ok(m != NULL, "%s: loads", label);
    if (!m)
        diag("%s", err.msg);
    return m;
}

/* The load must fail with `want`, leave *out NULL, and say `name` (the
 * file at fault) and every word of `words` (NULL-terminated). */
static void expect_fail(const char *path, const char *tok, int describe, int want,
                        const char *name, const char *const *words, const char *label)
{
    struct bl_model_params p = bl_model_default_params();
    bl_model *m = (bl_model *)1;
    bl_err err;
    memset(&err, 0, sizeof err);
    p.tokenizer_path = tok;
    p.describe_only = describe;
    int rc = bl_model_load(&m, path, &p, &err);
    int good = rc == want && m == NULL && err.code == want && strstr(err.msg, name) != NULL;
    const char *missing = NULL;
    for (int i = 0; words && words[i]; i++)
        if (!strstr(err.msg, words[i])) {
            missing = words[i];
            good = 0;
            break;
        }
    ok(good, "%s: %s (%d) naming the file%s", label, bl_strerror(want), want,
       words && words[0] ? " and the problem" : "");
    if (!good) {
        diag("got status %d (%s), err.code %d, model %p", rc, bl_strerror(rc), err.code, (void *)m);
        diag("message: %s", err.msg);
        if (missing)
            diag("the message does not say '%s'", missing);
        else if (!strstr(err.msg, name))
            diag("the message does not name '%s'", name);
    }
    if (rc == 0 && m && m != (bl_model *)1)
        bl_model_free(m);
}

/* Logits [n x V] of tokens through a fresh context of n_ctx positions (one
 * thread, default kernels: deterministic).  NULL on failure. */
static float *run_logits(const bl_model *m, const int32_t *tokens, int64_t n, int64_t n_ctx)
{
    struct bl_ctx_params cp = bl_ctx_default_params();
    bl_ctx *ctx;
    bl_err err;
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    if (bl_ctx_alloc(&ctx, m, &cp, &err)) {
        diag("bl_ctx_alloc: %s", err.msg);
        return NULL;
    }
    int64_t V = bl_model_config(m)->n_vocab;
    float *lg = malloc((size_t)(n * V) * sizeof *lg);
    if (lg && bl_ctx_eval(ctx, tokens, n, lg, BL_EVAL_ALL_LOGITS)) {
        diag("bl_ctx_eval: %s", bl_ctx_errmsg(ctx));
        free(lg);
        lg = NULL;
    }
    bl_ctx_free(ctx);
    return lg;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Config fields equal, except those the caller says differ by design. */
static int same_config(const struct bl_model_config *a, const struct bl_model_config *b,
                       int check_ctx, int check_tied)
{
    int same = a->arch == b->arch && a->n_vocab == b->n_vocab && a->dim == b->dim &&
               a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
               a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
               a->hidden_dim == b->hidden_dim && a->n_rot == b->n_rot &&
               a->rope_base == b->rope_base && a->norm_eps == b->norm_eps;
    if (check_ctx)
        same = same && a->ctx_train == b->ctx_train;
    if (check_tied)
        same = same && a->tied_classifier == b->tied_classifier;
    if (!same)
        diag("config differs: vocab %lld/%lld dim %lld/%lld layers %lld/%lld heads %lld/%lld kv %lld/%lld "
             "hidden %lld/%lld rot %lld/%lld ctx %lld/%lld tied %d/%d",
             (long long)a->n_vocab, (long long)b->n_vocab, (long long)a->dim, (long long)b->dim,
             (long long)a->n_layers, (long long)b->n_layers, (long long)a->n_heads,
             (long long)b->n_heads, (long long)a->n_kv_heads, (long long)b->n_kv_heads,
             (long long)a->hidden_dim, (long long)b->hidden_dim, (long long)a->n_rot,
             (long long)b->n_rot, (long long)a->ctx_train, (long long)b->ctx_train,
             a->tied_classifier, b->tied_classifier);
    return same;
}

/* Every tensor of `ref` is in `m` with the same type, shape and bytes. */
static int same_tensors(const bl_model *ref, const bl_model *m, const char *label)
{
    int bad = 0;
    for (int64_t i = 0; i < bl_model_n_tensors(ref); i++) {
        const struct bl_tensor *a = bl_model_tensor(ref, i);
        const struct bl_tensor *b = bl_model_find_tensor(m, a->name);
        const char *why = NULL;
        if (!b)
            why = "missing";
        else if (a->type != b->type || a->n_dims != b->n_dims)
            why = "type or rank differs";
        else if (memcmp(a->ne, b->ne, sizeof a->ne) != 0)
            why = "shape differs";
        else if (a->nbytes != b->nbytes || memcmp(a->data, b->data, a->nbytes) != 0)
            why = "data differs";
        if (why && bad++ < 5)
            diag("%s: tensor '%s': %s", label, a->name, why);
    }
    return bad == 0;
}

/* ------------------------------------------------------------ llama2.c layouts */

/* Section of a tensor name in the legacy layout, and its layer (-1 if the
 * tensor is not per layer). */
static int section_of(const char *name, int *layer)
{
    static const struct { const char *suffix; int sect; } per_layer[] = {
        {"attn_norm", CR_ATTN_NORM}, {"attn_q", CR_WQ}, {"attn_k", CR_WK},
        {"attn_v", CR_WV}, {"attn_output", CR_WO}, {"ffn_norm", CR_FFN_NORM},
        {"ffn_gate", CR_W1}, {"ffn_down", CR_W2}, {"ffn_up", CR_W3},
    };
    *layer = -1;
    if (strcmp(name, "token_embd.weight") == 0) return CR_EMB;
    if (strcmp(name, "output_norm.weight") == 0) return CR_FINAL_NORM;
    if (strcmp(name, "output.weight") == 0) return CR_CLS;
    int l, n = 0;
    char suffix[64];
    if (sscanf(name, "blk.%d.%63[a-z_].weight%n", &l, suffix, &n) == 2 && name[n] == '\0')
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
            if (strcmp(per_layer[i].suffix, suffix) == 0) {
                *layer = l;
                return per_layer[i].sect;
            }
    return -1;
}

/* Where the llama2.c writer of `version` puts tensor `name` of the model
 * whose legacy layout is h (sections laid out by cr_l2c_parse from the
 * header dims), computed here independently of the loader. */
static size_t expected_offset(const struct cr_l2c *h, int version, const char *name)
{
    static const int order1[] = {CR_ATTN_NORM, CR_FFN_NORM, CR_FINAL_NORM, CR_EMB, CR_WQ, CR_WK,
                                 CR_WV, CR_WO, CR_W1, CR_W2, CR_W3, CR_CLS};
    int layer, s = section_of(name, &layer);
    if (s < 0)
        return (size_t)-1;
    size_t L = (size_t)h->hdr[2];
    size_t per = layer >= 0 ? h->len[s] / L : 0;
    size_t len_cls = (size_t)h->hdr[5] * (size_t)h->hdr[0] * 4;
    size_t base;
    if (version == 0) {
        base = h->off[s];
        if (s == CR_CLS)   /* after the RoPE tables */
            base = h->off[CR_FREQ_IM] + h->len[CR_FREQ_IM];
    } else {
        base = 256;
        for (size_t i = 0; order1[i] != s; i++)
            base += order1[i] == CR_CLS ? len_cls : h->len[order1[i]];
    }
    return base + (size_t)(layer >= 0 ? layer : 0) * per;
}

/* Every tensor sits where the layout says and its data is those bytes of
 * the file. */
static int offsets_ok(const bl_model *m, const struct cr_l2c *h, int version,
                      const unsigned char *file, size_t size, const char *label)
{
    int bad = 0;
    for (int64_t i = 0; i < bl_model_n_tensors(m); i++) {
        const struct bl_tensor *t = bl_model_tensor(m, i);
        size_t want = expected_offset(h, version, t->name);
        int good = t->offset == want && t->offset + t->nbytes <= size &&
                   memcmp(t->data, file + t->offset, t->nbytes) == 0;
        if (!good && bad++ < 5)
            diag("%s: tensor '%s' at offset %zu (%zu bytes), the layout puts it at %zu", label,
                 t->name, t->offset, t->nbytes, want);
    }
    return bad == 0;
}

/* Elements of a Llama model with these header dims, counted by hand:
 * the embedding, per layer two norms, wq and wo [D x D], wk and wv
 * [KV x D], three MLP matrices [F x D], then the final norm; a separate
 * classifier adds V x D. */
static int64_t expected_params(const int32_t hdr[7], int shared)
{
    int64_t D = hdr[0], F = hdr[1], L = hdr[2], H = hdr[3], KVH = hdr[4], V = hdr[5];
    int64_t KV = KVH * (D / H);
    int64_t n = V * D + L * (2 * D + 2 * D * D + 2 * KV * D + 3 * F * D) + D;
    return shared ? n : n + V * D;
}

/* ---------------------------------------------------------------- the tests */

struct variant {
    const char *file;
    int version;       /* llama2.c header: 0 legacy, 1 "ak42" */
    int shared;
    float scale;       /* separate classifier = embedding * scale */
};

static void test_variants(const bl_model *m0, const unsigned char *src, size_t n,
                          const struct cr_l2c *h, const float *ref)
{
    static const struct variant vs[] = {
        {"v1.bin", 1, 1, 1.0f},
        {"unshared-v0.bin", 0, 0, 1.0f},
        {"unshared-v0-half.bin", 0, 0, 0.5f},
        {"unshared-v1.bin", 1, 0, 1.0f},
        {"unshared-v1-half.bin", 1, 0, 0.5f},
    };
    const struct bl_model_config *c0 = bl_model_config(m0);
    int64_t V = c0->n_vocab, D = c0->dim;
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        const struct variant *v = &vs[k];
        char why[512], label[128];
        size_t m;
        snprintf(label, sizeof label, "llama2.c v%d, %s classifier%s", v->version,
                 v->shared ? "shared" : "separate", v->scale != 1.0f ? " (embedding x 0.5)" : "");
        unsigned char *img = cr_l2c_convert(src, n, v->version, v->shared, v->scale, &m, why, sizeof why);
        if (!img || write_tmp(v->file, img, m)) {
            ok(0, "%s: converted (%s)", label, img ? "write failed" : why);
            free(img);
            continue;
        }
        bl_model *mv = load_ok(tpath(v->file), tok_path, label);
        if (!mv) {
            free(img);
            continue;
        }
        const struct bl_model_config *c = bl_model_config(mv);
        const char *fmt = bl_model_format_name(mv);
        ok(bl_model_format(mv) == BL_FORMAT_LLAMA2C &&
               strstr(fmt, v->version == 1 ? "llama2.c v1" : "llama2.c v0") != NULL,
           "%s: format '%s'", label, fmt);
        ok(same_config(c0, c, 1, 0), "%s: same config as the original", label);
        ok(c->tied_classifier == v->shared, "%s: classifier reported %s", label,
           c->tied_classifier ? "tied" : "separate");
        ok(bl_model_n_tensors(mv) == bl_model_n_tensors(m0) + !v->shared &&
               same_tensors(m0, mv, label),
           "%s: the original's %lld tensors, same names, shapes and bytes%s", label,
           (long long)bl_model_n_tensors(m0), v->shared ? "" : ", plus output.weight");
        ok(offsets_ok(mv, h, v->version, img, m, label), "%s: every tensor where the v%d layout puts it",
           label, v->version);
        ok(bl_model_n_params(mv) == expected_params(h->hdr, v->shared),
           "%s: %lld parameters (expected %lld)", label, (long long)bl_model_n_params(mv),
           (long long)expected_params(h->hdr, v->shared));
        if (!v->shared) {
            const struct bl_tensor *o = bl_model_find_tensor(mv, "output.weight");
            const struct bl_tensor *e = bl_model_find_tensor(mv, "token_embd.weight");
            int good = o && e && o->ne[0] == D && o->ne[1] == V && o->offset == m - (size_t)(V * D) * 4;
            for (int64_t i = 0; good && i < V * D; i++) {
                float fo, fe;
                memcpy(&fo, (const char *)o->data + 4 * i, 4);
                memcpy(&fe, (const char *)e->data + 4 * i, 4);
                good = fo == v->scale * fe;
            }
            ok(good, "%s: output.weight [%lld, %lld] is read from the end of the file and is "
               "the embedding x %g", label, (long long)D, (long long)V, (double)v->scale);
        }
        float *lg = ref ? run_logits(mv, ids, N_IDS, N_IDS) : NULL;
        if (!lg) {
            ok(0, "%s: logits", label);
        } else if (v->scale == 1.0f) {
            int same = memcmp(lg, ref, (size_t)(N_IDS * V) * sizeof *lg) == 0;
            ok(same, "%s: logits bit-identical to the original's (%lld x %lld)", label,
               (long long)N_IDS, (long long)V);
            if (!same)
                diag("max |difference| %g", max_abs_diff(lg, ref, (size_t)(N_IDS * V)));
        } else {
            size_t bad = 0, moved = 0;
            for (int64_t i = 0; i < N_IDS * V; i++) {
                bad += lg[i] != v->scale * ref[i];
                moved += ref[i] != 0 && lg[i] != ref[i];
            }
            ok(bad == 0 && moved > 0, "%s: logits are exactly %g x the original's "
               "(%zu of %lld differ from that, %zu moved)", label, (double)v->scale, bad,
               (long long)(N_IDS * V), moved);
        }
        free(lg);
        bl_model_free(mv);
        free(img);
    }
}

static void test_gguf(const bl_model *m0, const float *ref)
{
    bl_model *mg = load_ok(gguf_path, NULL, "stories260K.gguf");
    if (!mg)
        return;
    const struct bl_model_config *c0 = bl_model_config(m0), *cg = bl_model_config(mg);
    ok(bl_model_format(mg) == BL_FORMAT_GGUF && strcmp(bl_model_format_name(mg), "gguf v3") == 0,
       "gguf: format '%s'", bl_model_format_name(mg));
    ok(same_config(c0, cg, 0, 0), "gguf: same config as stories260K.bin");
    int64_t ctx = -1;
    bl_gguf_get_i64(bl_model_gguf(mg), "llama.context_length", &ctx, NULL);
    ok(cg->ctx_train == 128 && ctx == 128, "gguf: context %lld from llama.context_length (%lld)",
       (long long)cg->ctx_train, (long long)ctx);
    ok(cg->tied_classifier == 0 && bl_model_find_tensor(mg, "output.weight") != NULL,
       "gguf: separate classifier (it stores output.weight)");
    ok(bl_model_n_tensors(mg) == bl_model_n_tensors(m0) + 1 && same_tensors(m0, mg, "gguf"),
       "gguf: every tensor of the .bin with the same name, shape, type f32 and bytes");
    const struct bl_tensor *o = bl_model_find_tensor(mg, "output.weight");
    const struct bl_tensor *e = bl_model_find_tensor(m0, "token_embd.weight");
    ok(o && e && o->nbytes == e->nbytes && o->type == BL_F32 && memcmp(o->data, e->data, e->nbytes) == 0,
       "gguf: output.weight is the .bin's shared classifier, byte for byte");
    ok(bl_model_n_params(mg) == bl_model_n_params(m0) + c0->n_vocab * c0->dim,
       "gguf: %lld parameters (the .bin's plus the classifier)", (long long)bl_model_n_params(mg));
    const bl_tokenizer *t = bl_model_tokenizer(mg);
    ok(t && bl_tokenizer_n_vocab(t) == 512 && bl_tokenizer_bos(t) == 1 && bl_tokenizer_eos(t) == 2,
       "gguf: its own vocabulary of 512, BOS 1, EOS 2");
    float *lg = ref ? run_logits(mg, ids, N_IDS, N_IDS) : NULL;
    int same = lg && memcmp(lg, ref, (size_t)(N_IDS * c0->n_vocab) * sizeof *lg) == 0;
    ok(same, "gguf: logits bit-identical to the .bin's");
    if (lg && !same)
        diag("max |difference| %g", max_abs_diff(lg, ref, (size_t)(N_IDS * c0->n_vocab)));
    free(lg);

    /* rewritten with the library's writer, as the broken variants below are */
    char why[512];
    if (cr_gguf_variant(gguf_path, tpath("copy.gguf"), "copy", why, sizeof why)) {
        ok(0, "gguf copy: written (%s)", why);
    } else {
        bl_model *mc = load_ok(tpath("copy.gguf"), NULL, "gguf copy by the writer");
        if (mc) {
            ok(same_config(cg, bl_model_config(mc), 1, 1) &&
                   bl_model_n_tensors(mc) == bl_model_n_tensors(mg) && same_tensors(mg, mc, "copy"),
               "gguf copy: same config and tensors");
            bl_model_free(mc);
        }
    }
    bl_model_free(mg);
}

/* The lengths to cut a file to: every `stride` bytes, and each boundary
 * b - 1, b, b + 1 of `bounds`; sorted descending without repeats, all
 * below `size`. */
static size_t cut_points(size_t size, size_t stride, const size_t *bounds, size_t nb, size_t *out)
{
    size_t n = 0;
    for (size_t l = 0; l < size; l += stride)
        out[n++] = l;
    for (size_t i = 0; i < nb; i++)
        for (int d = -1; d <= 1; d++) {
            size_t l = bounds[i] + (size_t)d;
            if ((d >= 0 || bounds[i] > 0) && l < size)
                out[n++] = l;
        }
    /* insertion sort, descending, then drop repeats */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j - 1] < out[j]; j--) {
            size_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || out[k - 1] != out[i])
            out[k++] = out[i];
    return k;
}

/* Load every prefix (longest first, cutting one file down with
 * truncate(2)): each must fail with BL_EFORMAT naming the file and saying
 * it is cut short. */
static void truncation_sweep(const char *label, const char *name, const unsigned char *file,
                             size_t size, const size_t *bounds, size_t nb)
{
    static const char *const words[] = {"truncated", "past the end", "too short", "cut short",
                                        "can hold", "ends at"};
    char path[4200];
    snprintf(path, sizeof path, "%s", tpath(name));
    size_t cap = size / 997 + 3 * nb + 2;
    size_t *cuts = malloc(cap * sizeof *cuts);
    if (!cuts || write_tmp(name, file, size)) {
        ok(0, "%s: prefixes written", label);
        free(cuts);
        return;
    }
    size_t n = cut_points(size, 997, bounds, nb, cuts), bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (truncate(path, (off_t)cuts[i]) != 0) {
            diag("truncate %s to %zu failed", path, cuts[i]);
            bad++;
            continue;
        }
        bl_err err;
        bl_model *m = load(path, tok_path, 0, &err);
        int says = 0;
        for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
            says |= strstr(err.msg, words[w]) != NULL;
        if (m || err.code != BL_EFORMAT || !strstr(err.msg, path) || !says) {
            if (bad++ < 5)
                diag("%s cut to %zu bytes: status %d: %s", label, cuts[i], m ? 0 : err.code,
                     m ? "loaded" : err.msg);
            bl_model_free(m);
        }
    }
    ok(n > 100 && bad == 0, "%s: all %zu prefixes (every 997 bytes and at the header and "
       "tensor boundaries) fail with BL_EFORMAT naming the file and the truncation", label, n);
    if (bad)
        diag("%zu of %zu prefixes misbehaved", bad, n);
    free(cuts);
}

static void test_truncation(const bl_model *m0, const unsigned char *bin, size_t bin_n,
                            const struct cr_l2c *h)
{
    /* .bin: the header, every tensor's ends, the RoPE tables */
    size_t nb = 0, bounds[2 * 64 + 8];
    bounds[nb++] = 4;
    bounds[nb++] = 28;
    for (int64_t i = 0; i < bl_model_n_tensors(m0) && nb + 2 < 2 * 64; i++) {
        const struct bl_tensor *t = bl_model_tensor(m0, i);
        bounds[nb++] = t->offset;
        bounds[nb++] = t->offset + t->nbytes;
    }
    bounds[nb++] = h->off[CR_FREQ_RE];
    bounds[nb++] = h->off[CR_FREQ_IM];
    bounds[nb++] = bin_n;
    truncation_sweep("stories260K.bin", "cut.bin", bin, bin_n, bounds, nb);

    /* version 1: its 256-byte header and tensors */
    char why[512];
    size_t v1n;
    unsigned char *v1 = cr_l2c_convert(bin, bin_n, 1, 0, 1.0f, &v1n, why, sizeof why);
    if (v1) {
        nb = 0;
        bounds[nb++] = 8;
        bounds[nb++] = 36;
        bounds[nb++] = 256;
        bounds[nb++] = v1n - (size_t)(h->hdr[5] * h->hdr[0]) * 4;   /* output.weight */
        bounds[nb++] = v1n;
        truncation_sweep("llama2.c v1 (separate classifier)", "cut-v1.bin", v1, v1n, bounds, nb);
        free(v1);
    } else {
        ok(0, "v1 conversion: %s", why);
    }

    /* GGUF: header fields, key/value and tensor-info region, every tensor */
    size_t gn;
    unsigned char *g = (unsigned char *)read_file(gguf_path, &gn);
    bl_gguf *gg = NULL;
    bl_err err;
    if (!g || bl_gguf_open(&gg, gguf_path, &err)) {
        ok(0, "stories260K.gguf readable");
        free(g);
        return;
    }
    nb = 0;
    size_t gb[2 * 64 + 8];
    gb[nb++] = 4;
    gb[nb++] = 8;
    gb[nb++] = 16;
    gb[nb++] = 24;
    gb[nb++] = bl_gguf_data_offset(gg);
    size_t end = 0;
    for (int64_t i = 0; i < bl_gguf_n_tensors(gg) && nb + 2 < 2 * 64; i++) {
        const struct bl_tensor *t = bl_gguf_tensor(gg, i);
        gb[nb++] = t->offset;
        gb[nb++] = t->offset + t->nbytes;
        if (t->offset + t->nbytes > end)
            end = t->offset + t->nbytes;
    }
    ok(end == gn, "stories260K.gguf: the last tensor ends at the end of the file (%zu of %zu), "
       "so every shorter prefix is truncated", end, gn);
    truncation_sweep("stories260K.gguf", "cut.gguf", g, gn, gb, nb);
    bl_gguf_free(gg);
    free(g);
}

static void test_errors(const unsigned char *bin, size_t bin_n)
{
    char why[512];
#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

    expect_fail(tpath("no-such-model.bin"), NULL, 0, BL_EIO, tpath("no-such-model.bin"),
                W("cannot open"), "missing file");
    expect_fail(tpath("no-such-model.gguf"), NULL, 1, BL_EIO, tpath("no-such-model.gguf"),
                W("cannot open"), "missing file, describe_only");
    mkdir(tpath("a-directory"), 0700);
    expect_fail(tpath("a-directory"), NULL, 0, BL_EIO, tpath("a-directory"), W("directory"),
                "a directory");
    write_tmp("empty.bin", "", 0);
    expect_fail(tpath("empty.bin"), NULL, 0, BL_EFORMAT, tpath("empty.bin"), W("too short"),
                "empty file");
    write_tmp("three.bin", "GGU", 3);
    expect_fail(tpath("three.bin"), NULL, 0, BL_EFORMAT, tpath("three.bin"), W("too short"),
                "3-byte file");
    write_tmp("magic-only.gguf", "GGUF", 4);
    expect_fail(tpath("magic-only.gguf"), NULL, 0, BL_EFORMAT, tpath("magic-only.gguf"),
                W("truncated"), "GGUF magic and nothing else");
    if (cr_make("badmagic", NULL, tpath("garbage.bin"), 0, NULL, why, sizeof why) == 0)
        expect_fail(tpath("garbage.bin"), NULL, 0, BL_EFORMAT, tpath("garbage.bin"),
                    W("not a model file"), "text file (wrong magic)");
    else
        ok(0, "badmagic: %s", why);
    /* legacy header with a negative size */
    unsigned char neg[64] = {0};
    memcpy(neg, bin, sizeof neg);
    cr_put_u32(neg + 8, (uint32_t)-5);
    write_tmp("negative.bin", neg, sizeof neg);
    expect_fail(tpath("negative.bin"), NULL, 0, BL_EFORMAT, tpath("negative.bin"),
                W("not a model file"), "legacy header with n_layers -5");

    /* llama2.c version 1 header cut short, version 2, trailing bytes */
    size_t v1n;
    unsigned char *v1 = cr_l2c_convert(bin, bin_n, 1, 1, 1.0f, &v1n, why, sizeof why);
    if (v1) {
        write_tmp("v1-header-cut.bin", v1, 100);
        expect_fail(tpath("v1-header-cut.bin"), tok_path, 0, BL_EFORMAT, tpath("v1-header-cut.bin"),
                    W("cut short"), "llama2.c v1 header cut at 100 bytes");
        cr_put_u32(v1 + 4, 2);
        write_tmp("v2.bin", v1, v1n);
        expect_fail(tpath("v2.bin"), tok_path, 0, BL_EUNSUPPORTED, tpath("v2.bin"),
                    W("version 2"), "llama2.c version 2");
        expect_fail(tpath("v2.bin"), tok_path, 1, BL_EUNSUPPORTED, tpath("v2.bin"),
                    W("version 2"), "llama2.c version 2, describe_only");
        cr_put_u32(v1 + 4, 1);
        free(v1);
    } else {
        ok(0, "v1 conversion: %s", why);
    }
    unsigned char *longer = malloc(bin_n + 4);
    if (longer) {
        memcpy(longer, bin, bin_n);
        memset(longer + bin_n, 0, 4);
        write_tmp("trailing.bin", longer, bin_n + 4);
        expect_fail(tpath("trailing.bin"), tok_path, 0, BL_EFORMAT, tpath("trailing.bin"),
                    W("trailing"), "llama2.c file with 4 bytes of trailing data");
        free(longer);
    }

    /* GGUF: a tensor's data past the end */
    if (cr_gguf_offset_past_end(gguf_path, tpath("offset.gguf"), "token_embd.weight", why, sizeof why))
        ok(0, "gguf-offset: %s", why);
    else
        expect_fail(tpath("offset.gguf"), NULL, 1, BL_EFORMAT, tpath("offset.gguf"),
                    W("token_embd.weight", "past the end"), "GGUF tensor data offset past the end");

    /* GGUF: a q4_K matrix.  The same model in f32 works, so the type alone
     * is what stops it. */
    if (cr_gguf_synth(tpath("synth.gguf"), BL_F32, why, sizeof why) ||
        cr_gguf_synth(tpath("q4k.gguf"), 12, why, sizeof why)) {
        ok(0, "synthetic GGUFs: %s", why);
    } else {
        bl_model *ms = load_ok(tpath("synth.gguf"), NULL, "synthetic f32 GGUF");
        const char *whyc = "x";
        if (ms) {
            int32_t t3[3] = {1, 4, 5};
            float *lg = run_logits(ms, t3, 3, 16);
            ok(bl_model_computable(ms, &whyc) == 1 && whyc == NULL && lg &&
                   all_finite(lg, 3 * 32),
               "synthetic f32 GGUF: computable, finite logits");
            free(lg);
        }
        expect_fail(tpath("q4k.gguf"), NULL, 0, BL_EUNSUPPORTED, tpath("q4k.gguf"),
                    W("blk.0.ffn_down.weight", "q4_K"), "q4_K tensor");
        bl_err err;
        bl_model *mq = load(tpath("q4k.gguf"), NULL, 1, &err);
        ok(mq != NULL, "q4_K tensor: loads with describe_only");
        if (mq) {
            const char *w = NULL;
            int comp = bl_model_computable(mq, &w);
            ok(comp == 0 && w && strstr(w, "blk.0.ffn_down.weight") && strstr(w, "q4_K"),
               "q4_K tensor: bl_model_computable() is 0 and says why: %s", w ? w : "(null)");
            const struct bl_tensor *t = bl_model_find_tensor(mq, "blk.0.ffn_down.weight");
            ok(t && t->type == 12 && t->ne[0] == 256 && t->ne[1] == 8 && t->nbytes == 8 * 144 &&
                   ms && bl_model_n_params(mq) == bl_model_n_params(ms),
               "q4_K tensor: described (type q4_K, [256, 8], 1152 bytes; same parameter count)");
            struct bl_ctx_params cp = bl_ctx_default_params();
            bl_ctx *ctx = (bl_ctx *)1;
            memset(&err, 0, sizeof err);
            int rc = bl_ctx_alloc(&ctx, mq, &cp, &err);
            ok(rc == BL_EUNSUPPORTED && ctx == NULL && strstr(err.msg, "q4_K"),
               "q4_K tensor: bl_ctx_alloc refuses it (%d: %s)", rc, err.msg);
            bl_model_free(mq);
        } else {
            diag("%s", err.msg);
        }
        bl_model_free(ms);
    }

    /* GGUF: vocabulary of 500 against an embedding of 512 rows */
    if (cr_gguf_variant(gguf_path, tpath("vocab.gguf"), "vocab-12", why, sizeof why)) {
        ok(0, "gguf-vocab: %s", why);
    } else {
        expect_fail(tpath("vocab.gguf"), NULL, 0, BL_EMISMATCH, tpath("vocab.gguf"),
                    W("500", "512"), "GGUF vocabulary of 500 tokens, embedding of 512 rows");
        expect_fail(tpath("vocab.gguf"), NULL, 1, BL_EMISMATCH, tpath("vocab.gguf"),
                    W("500", "512"), "GGUF vocabulary of 500, describe_only");
    }

    /* GGUF: one key of stories260K.gguf changed, so the hyperparameters, the
     * tensors or the vocabulary disagree */
    static const struct {
        const char *set;
        int want;
        const char *words[3];
        const char *label;
    } keys[] = {
        {"llama.attention.head_count=0", BL_EFORMAT, {"heads", "0"}, "zero heads"},
        {"llama.attention.head_count_kv=3", BL_EFORMAT, {"n_kv_heads", "3"}, "8 heads over 3 kv heads"},
        {"llama.embedding_length=100000", BL_EFORMAT, {"dim", "100000"}, "dim 100000"},
        {"llama.embedding_length=128", BL_EFORMAT, {"token_embd.weight", "128"}, "dim 128 against [64, 512] tensors"},
        {"llama.rope.dimension_count=7", BL_EFORMAT, {"rotary", "7"}, "odd rotary dimension"},
        {"llama.attention.layer_norm_rms_epsilon=2.0", BL_EFORMAT, {"epsilon"}, "RMSNorm epsilon 2"},
        {"llama.context_length=-5", BL_EFORMAT, {"-5"}, "context -5"},
        {"llama.feed_forward_length=171", BL_EFORMAT, {"blk.0.ffn_gate.weight", "171"}, "hidden 171 against 172"},
        {"llama.block_count=6", BL_EFORMAT, {"blk.5.", "missing"}, "6 blocks, tensors for 5"},
        {"llama.block_count=4", BL_EFORMAT, {"blk.4."}, "4 blocks, tensors for 5 (blk.4.* unused)"},
        {"llama.vocab_size=100", BL_EMISMATCH, {"100", "512"}, "llama.vocab_size 100 against 512 rows"},
        {"tokenizer.ggml.bos_token_id=9999", BL_EFORMAT, {"bos_token_id", "9999"}, "BOS id 9999"},
        {"tokenizer.ggml.model=gpt2", BL_EFORMAT, {"gpt2", "merges"}, "tokenizer model gpt2 without merges"},
        {"tokenizer.ggml.model=bert", BL_EUNSUPPORTED, {"'bert'"}, "tokenizer model bert"},
        {"llama.rope.scaling.type=linear", BL_EUNSUPPORTED, {"linear"}, "RoPE scaling linear"},
        {"general.architecture=", BL_EUNSUPPORTED, {"''"}, "empty architecture"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char change[160], label[160];
        const char *words[4] = {keys[i].words[0], keys[i].words[1], keys[i].words[2], NULL};
        snprintf(change, sizeof change, "set:%s", keys[i].set);
        snprintf(label, sizeof label, "GGUF %s (%s)", keys[i].label, keys[i].set);
        if (cr_gguf_variant(gguf_path, tpath("key.gguf"), change, why, sizeof why))
            ok(0, "%s: written (%s)", label, why);
        else
            expect_fail(tpath("key.gguf"), NULL, 1, keys[i].want, tpath("key.gguf"), words, label);
    }

    /* llama2.c version 1: the shared-classifier byte against the file */
    size_t un, sn;
    unsigned char *u1 = cr_l2c_convert(bin, bin_n, 1, 0, 1.0f, &un, why, sizeof why);
    unsigned char *s1 = cr_l2c_convert(bin, bin_n, 1, 1, 1.0f, &sn, why, sizeof why);
    if (u1 && s1) {
        u1[36] = 1;
        write_tmp("v1-flag-shared.bin", u1, un);
        expect_fail(tpath("v1-flag-shared.bin"), tok_path, 0, BL_EFORMAT, tpath("v1-flag-shared.bin"),
                    W("trailing"), "llama2.c v1 flagged shared but holding a classifier");
        s1[36] = 0;
        write_tmp("v1-flag-separate.bin", s1, sn);
        expect_fail(tpath("v1-flag-separate.bin"), tok_path, 0, BL_EFORMAT,
                    tpath("v1-flag-separate.bin"), W("output.weight", "past the end"),
                    "llama2.c v1 flagged separate but holding no classifier");
    } else {
        ok(0, "v1 conversions: %s", why);
    }
    free(u1);
    free(s1);

    /* GGUF: architectures bitlens does not run ("t5", "mamba") */
    static const char *const arches[] = {"t5", "mamba"};
    for (int i = 0; i < 2; i++) {
        char change[32], name[32], quoted[40];
        snprintf(change, sizeof change, "arch=%s", arches[i]);
        snprintf(name, sizeof name, "%s.gguf", arches[i]);
        snprintf(quoted, sizeof quoted, "'%s'", arches[i]);
        if (cr_gguf_variant(gguf_path, tpath(name), change, why, sizeof why))
            ok(0, "gguf-arch: %s", why);
        else
            expect_fail(tpath(name), NULL, 1, BL_EUNSUPPORTED, tpath(name), W(quoted, "architecture"),
                        arches[i]);
    }

    /* a llama file relabelled gpt2: gpt2's keys are missing */
    if (cr_gguf_variant(gguf_path, tpath("gpt2.gguf"), "arch=gpt2", why, sizeof why))
        ok(0, "gguf-arch: %s", why);
    else
        expect_fail(tpath("gpt2.gguf"), NULL, 1, BL_EFORMAT, tpath("gpt2.gguf"), W("gpt2.embedding_length", "missing"),
                    "llama tensors under architecture gpt2");

    /* tokenizer.bin of another model, or cut short */
    size_t tn;
    unsigned char *tok = (unsigned char *)read_file(tok_path, &tn);
    size_t ends[600], count = 0;
    if (!tok || cr_tok_scan(tok, tn, ends, 600, &count) || count != 512) {
        ok(0, "tok512.bin: 512 tokens (%zu)", count);
    } else {
        write_tmp("tok300.bin", tok, ends[299]);
        expect_fail(bin_path, tpath("tok300.bin"), 0, BL_EMISMATCH, tpath("tok300.bin"),
                    W("300", "512", "another model"), "tokenizer.bin with 300 of 512 tokens");
        expect_fail(gguf_path, tpath("tok300.bin"), 0, BL_EMISMATCH, tpath("tok300.bin"),
                    W("300", "512"), "tokenizer.bin with 300 tokens given for the GGUF");
        if (cr_make("tok-extra", tok_path, tpath("tok600.bin"), 1, (char *[]){"88", NULL}, why,
                    sizeof why) == 0)
            expect_fail(bin_path, tpath("tok600.bin"), 0, BL_EMISMATCH, tpath("tok600.bin"),
                        W("600", "512", "another model"), "tokenizer.bin with 600 tokens");
        else
            ok(0, "tok-extra: %s", why);
        write_tmp("tokcut.bin", tok, tn - 1);
        expect_fail(bin_path, tpath("tokcut.bin"), 0, BL_EFORMAT, tpath("tokcut.bin"),
                    W("token 511"), "tokenizer.bin with its last token cut short");
        write_tmp("tokempty.bin", tok, 0);
        expect_fail(bin_path, tpath("tokempty.bin"), 0, BL_EFORMAT, tpath("tokempty.bin"),
                    W("too short"), "empty tokenizer.bin");
        expect_fail(bin_path, tpath("no-such-tokenizer.bin"), 0, BL_EIO,
                    tpath("no-such-tokenizer.bin"), W("cannot open"), "missing tokenizer.bin");

        /* tokenizer.bin beside the model, llama2.c's default */
        mkdir(tpath("beside"), 0700);
        char model[4200];
        snprintf(model, sizeof model, "%s/beside/model.bin", tmp);
        bl_err err;
        if (symlink(bin_path, model) != 0) {
            ok(0, "symlink %s", model);
        } else {
            bl_model *m = load(model, NULL, 0, &err);
            ok(m && bl_model_tokenizer(m) == NULL,
               "a .bin with no tokenizer.bin beside it loads without a vocabulary");
            bl_model_free(m);
            char tb[4200];
            snprintf(tb, sizeof tb, "%s/beside/tokenizer.bin", tmp);
            write_file(tb, tok, ends[299]);
            expect_fail(model, NULL, 0, BL_EMISMATCH, tb, W("300", "512"),
                        "the tokenizer.bin beside the model holds 300 tokens");
            write_file(tb, tok, tn);
            m = load(model, NULL, 0, &err);
            ok(m && bl_model_tokenizer(m) && bl_tokenizer_n_vocab(bl_model_tokenizer(m)) == 512,
               "the tokenizer.bin beside the model is found and read");
            bl_model_free(m);
        }
    }
    free(tok);
#undef W
}

static void test_eval_errors(const bl_model *m0)
{
    struct bl_ctx_params cp = bl_ctx_default_params();
    bl_ctx *ctx, *fresh;
    bl_err err;
    int64_t V = bl_model_config(m0)->n_vocab;
    cp.n_ctx = 8;
    cp.n_threads = 1;
    if (bl_ctx_alloc(&ctx, m0, &cp, &err) || bl_ctx_alloc(&fresh, m0, &cp, &err)) {
        ok(0, "bl_ctx_alloc: %s", err.msg);
        return;
    }
    float *lg = malloc((size_t)V * sizeof *lg), *lf = malloc((size_t)V * sizeof *lf);
    int32_t bad[3] = {1, (int32_t)V, 5};
    int rc = bl_ctx_eval(ctx, bad, 3, lg, 0);
    ok(rc == BL_EINVAL && strstr(bl_ctx_errmsg(ctx), "512") && bl_ctx_pos(ctx) == 0,
       "eval: token id %lld (= n_vocab) is BL_EINVAL and nothing is evaluated (%s)", (long long)V,
       bl_ctx_errmsg(ctx));
    int32_t neg = -1;
    rc = bl_ctx_eval(ctx, &neg, 1, lg, 0);
    ok(rc == BL_EINVAL && strstr(bl_ctx_errmsg(ctx), "-1") && bl_ctx_pos(ctx) == 0,
       "eval: token id -1 is BL_EINVAL (%s)", bl_ctx_errmsg(ctx));
    rc = bl_ctx_eval(ctx, ids, 0, lg, 0);
    ok(rc == BL_EINVAL, "eval: no tokens is BL_EINVAL (%s)", bl_ctx_errmsg(ctx));
    int32_t nine[9] = {1, 403, 407, 261, 378, 1, 403, 407, 261};
    rc = bl_ctx_eval(ctx, nine, 9, lg, 0);
    ok(rc == BL_ERANGE && bl_ctx_pos(ctx) == 0, "eval: 9 tokens in a context of 8 is BL_ERANGE (%s)",
       bl_ctx_errmsg(ctx));
    rc = bl_ctx_eval(ctx, ids, N_IDS, lg, 0);
    ok(rc == 0 && bl_ctx_pos(ctx) == N_IDS, "eval: then 5 tokens fit");
    rc = bl_ctx_eval(ctx, nine, 4, lg, 0);
    ok(rc == BL_ERANGE && bl_ctx_pos(ctx) == N_IDS,
       "eval: 4 more past the context of 8 is BL_ERANGE, position stays 5 (%s)", bl_ctx_errmsg(ctx));
    /* the failures changed nothing: same logits as a context without them
     * (evaluated in the same batches) */
    rc = bl_ctx_eval(ctx, nine + 5, 3, lg, 0);
    int rf = bl_ctx_eval(fresh, nine, 5, lf, 0);
    if (rf == 0)
        rf = bl_ctx_eval(fresh, nine + 5, 3, lf, 0);
    ok(rc == 0 && rf == 0 && memcmp(lg, lf, (size_t)V * sizeof *lg) == 0 && bl_ctx_pos(ctx) == 8,
       "eval: after the refused calls the context gives the same logits as a fresh one");
    rc = bl_ctx_eval(ctx, ids, 1, lg, 0);
    ok(rc == BL_ERANGE, "eval: a full context refuses one more token (%s)", bl_ctx_errmsg(ctx));
    free(lg);
    free(lf);
    bl_ctx_free(ctx);
    bl_ctx_free(fresh);
}

int main(void)
{
    bin_path = td_require("models/stories260K.bin");
    tok_path = td_require("models/tok512.bin");
    gguf_path = td_require("models/stories260K.gguf");
    if (!(tmp = tmp_dir()))
        skip_all("cannot make a temporary directory");

    size_t bin_n;
    unsigned char *bin = (unsigned char *)read_file(bin_path, &bin_n);
    struct cr_l2c h;
    char why[512];
    if (!bin || cr_l2c_parse(bin, bin_n, &h, why, sizeof why)) {
        ok(0, "stories260K.bin is a legacy llama2.c file: %s", bin ? why : "cannot read");
        rm_rf(tmp);
        return done_testing();
    }

    /* the original, legacy header */
    bl_model *m0 = load_ok(bin_path, tok_path, "stories260K.bin");
    float *ref = NULL;
    if (m0) {
        const struct bl_model_config *c = bl_model_config(m0);
        ok(bl_model_format(m0) == BL_FORMAT_LLAMA2C && strstr(bl_model_format_name(m0), "v0"),
           "stories260K.bin: format '%s'", bl_model_format_name(m0));
        ok(c->arch == BL_ARCH_LLAMA && c->dim == h.hdr[0] && c->hidden_dim == h.hdr[1] &&
               c->n_layers == h.hdr[2] && c->n_heads == h.hdr[3] && c->n_kv_heads == h.hdr[4] &&
               c->n_vocab == h.hdr[5] && c->ctx_train == h.hdr[6],
           "stories260K.bin: config is the header's seven fields");
        ok(c->dim == 64 && c->hidden_dim == 172 && c->n_layers == 5 && c->n_heads == 8 &&
               c->n_kv_heads == 4 && c->n_vocab == 512 && c->ctx_train == 512 &&
               c->head_dim == 8 && c->n_rot == 8 && c->rope_base == 10000.0f && c->norm_eps == 1e-5f,
           "stories260K.bin: dim 64, hidden 172, 5 layers, 8/4 heads, head dim 8, vocab 512, seq 512");
        ok(c->tied_classifier == 1 && bl_model_find_tensor(m0, "output.weight") == NULL,
           "stories260K.bin: tied classifier (positive vocab_size), no output.weight");
        ok(bl_model_n_tensors(m0) == 2 + 9 * (int64_t)h.hdr[2], "stories260K.bin: %lld tensors",
           (long long)bl_model_n_tensors(m0));
        ok(offsets_ok(m0, &h, 0, bin, bin_n, "v0"), "stories260K.bin: every tensor where the legacy layout puts it");
        ok(bl_model_n_params(m0) == expected_params(h.hdr, 1) && bl_model_n_params(m0) == 260032,
           "stories260K.bin: %lld parameters (by hand from the header: %lld)",
           (long long)bl_model_n_params(m0), (long long)expected_params(h.hdr, 1));
        const bl_tokenizer *t = bl_model_tokenizer(m0);
        ok(t && bl_tokenizer_n_vocab(t) == 512, "stories260K.bin: tokenizer of 512 tokens");
        ok(strcmp(bl_model_name(m0), "stories260K.bin") == 0 && bl_model_file_size(m0) == bin_n &&
               bl_model_gguf(m0) == NULL && strcmp(bl_model_path(m0), bin_path) == 0,
           "stories260K.bin: name, path and file size");

        ref = run_logits(m0, ids, N_IDS, N_IDS);
        ok(ref && all_finite(ref, (size_t)(N_IDS * c->n_vocab)), "stories260K.bin: logits computed");
        /* make sure the reference is the model, not an artefact both sides
         * would share: run.c's logits within the golden tolerance */
        char *gp = td_path("golden/stories260K/logits.f32");
        float *gold = gp ? read_f32(gp, (size_t)(48 * 512)) : NULL;
        if (!gold || !ref) {
            skip(1, "golden/stories260K/logits.f32 absent");
        } else {
            double d = max_abs_diff(ref, gold, (size_t)(N_IDS * 512));
            ok(d <= 1e-4, "stories260K.bin: logits within 1e-4 of llama2.c run.c (%.3g)", d);
        }
        free(gold);
        free(gp);

        test_variants(m0, bin, bin_n, &h, ref);
        test_gguf(m0, ref);
        test_truncation(m0, bin, bin_n, &h);
        test_eval_errors(m0);
    }
    test_errors(bin, bin_n);

    free(ref);
    bl_model_free(m0);
    free(bin);
    rm_rf(tmp);
    free(tmp);
    free(bin_path);
    free(tok_path);
    free(gguf_path);
    return done_testing();
}
