/* tests/test-drafter-io.c: drafter files (bl_drafter_save, bl_drafter_load)
 * with the real model stories260K.
 *
 * Known answers:
 *   - a drafter with random parameters (not the start values: every float
 *     differs, with a -0 and a subnormal among them) survives save and load
 *     bit for bit, its configuration field for field, and bl_drafter_eval
 *     gives the same logits and tokens bit for bit, for width 0 (W1 [d x d],
 *     no W2, one block, K = 4) and width 96 (W1 [96 x 64] and W2 [64 x 96],
 *     rectangular so a transposed matrix shows, two blocks, K = 3);
 *   - the file is the documented layout: read back through bl_gguf, keys
 *     and an element of a W2 agree with offsets computed here by hand, and
 *     a file this test writes itself through the GGUF writer loads;
 *   - a drafter for stories260K loads against a renamed copy of it (same
 *     sha256) and not against llama2xs (BL_EMISMATCH naming both, with the
 *     first 12 hex digits of each sha256); without a sha256, dim, vocabulary
 *     and name still decide;
 *   - every 97th prefix of a file, a tensor of wrong shape, type or name,
 *     a missing one, and bad keys are clean errors naming the file and
 *     the tensor or key; the output pointer stays NULL. */
#include "config.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>
#include <bitlens/gguf.h>

#include "drafter_internal.h"
#include "tap.h"
#include "testutil.h"

static bl_model *model;
static char *dir;
static int64_t D, V;

/* ---------------------------------------------------------------- helpers */

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* uniform in [-1, 1) (xorshift64*) */
static float frand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545f4914f6cdd1du) >> 11) / 4503599627370496.0 - 1.0);
}

static char *tpath(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static int has(const char *msg, const char *s)
{
    return !s || strstr(msg, s) != NULL;
}

/* Load path against m, expecting status `code` and up to three strings in
 * the message. */
static void expect_err(const char *path, const bl_model *m, int code, const char *s1, const char *s2,
                       const char *s3, const char *what)
{
    bl_drafter *d = (bl_drafter *)1;
    bl_err err = {0};
    int rc = bl_drafter_load(&d, path, m, &err);
    ok(rc == code && d == NULL && err.code == code && has(err.msg, path) && has(err.msg, s1) && has(err.msg, s2) &&
           has(err.msg, s3),
       "%s: %s (%s)", what, bl_strerror(code), err.msg);
    if (rc == BL_OK)
        bl_drafter_free(d);
}

static bl_drafter *load_ok(const char *path, const bl_model *m, const char *what)
{
    bl_drafter *d = NULL;
    bl_err err = {0};
    int rc = bl_drafter_load(&d, path, m, &err);
    ok(rc == BL_OK && d, "%s loads (%s)", what, rc ? err.msg : "ok");
    return rc ? NULL : d;
}

static bl_drafter *new_drafter(int64_t width, int n_blocks, int K, uint64_t seed)
{
    struct bl_drafter_config c = {0};
    c.kind = BL_DRAFTER_MEDUSA;
    c.n_heads = K;
    c.n_blocks = n_blocks;
    c.width = width;
    bl_drafter *d;
    bl_err err;
    if (bl_drafter_new(&d, model, &c, seed, &err)) {
        diag("bl_drafter_new: %s", err.msg);
        abort();
    }
    return d;
}

/* Offsets of the layout in drafter_internal.h, computed here by hand. */
static int64_t off_w1(const struct bl_drafter_config *c, int j, int b)
{
    int64_t h = c->width ? c->width : c->d;
    int64_t block = h * c->d + h + (c->width ? c->d * h : 0);
    return ((int64_t)j * c->n_blocks + b) * block;
}

/* A drafter file written here through the GGUF writer: the keys and
 * tensors of d, less omit_key and omit_tensor.  The caller changes it
 * (setting a key again replaces it) and writes it with finish(). */
static bl_gguf_writer *fmt_writer(const bl_drafter *d, const char *omit_key, const char *omit_tensor)
{
    const struct bl_drafter_config *c = bl_drafter_config(d);
    int64_t h = c->width ? c->width : c->d;
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    int bad = !w;
#define S(k, v) (bad |= !omit_key || strcmp(omit_key, k) ? bl_gguf_writer_set_str(w, k, v) : 0)
#define U(k, v) (bad |= !omit_key || strcmp(omit_key, k) ? bl_gguf_writer_set_u32(w, k, (uint32_t)(v)) : 0)
    S("general.architecture", "bitlens-drafter");
    S("general.name", "written by test-drafter-io");
    S("bitlens.drafter.kind", "medusa");
    U("bitlens.drafter.n_heads", c->n_heads);
    U("bitlens.drafter.n_blocks", c->n_blocks);
    U("bitlens.drafter.width", c->width);
    S("bitlens.drafter.hook", c->hook);
    S("bitlens.drafter.model.name", c->model_name);
    S("bitlens.drafter.model.sha256", c->model_sha256);
    U("bitlens.drafter.model.dim", c->d);
    U("bitlens.drafter.model.n_vocab", c->n_vocab);
#undef S
#undef U
    for (int j = 0; j < c->n_heads; j++)
        for (int b = 0; b < c->n_blocks; b++) {
            const float *p = d->params + off_w1(c, j, b);
            const int64_t ne_w1[2] = {c->d, h}, ne_b1[1] = {h}, ne_w2[2] = {h, c->d};
            char n[64];
            snprintf(n, sizeof n, "drafter.heads.%d.blocks.%d.w1", j + 1, b);
            if (!omit_tensor || strcmp(omit_tensor, n))
                bad |= bl_gguf_writer_add_tensor(w, n, BL_F32, 2, ne_w1, p);
            snprintf(n, sizeof n, "drafter.heads.%d.blocks.%d.b1", j + 1, b);
            if (!omit_tensor || strcmp(omit_tensor, n))
                bad |= bl_gguf_writer_add_tensor(w, n, BL_F32, 1, ne_b1, p + h * c->d);
            snprintf(n, sizeof n, "drafter.heads.%d.blocks.%d.w2", j + 1, b);
            if (c->width && (!omit_tensor || strcmp(omit_tensor, n)))
                bad |= bl_gguf_writer_add_tensor(w, n, BL_F32, 2, ne_w2, p + h * c->d + h);
        }
    if (bad) {
        diag("fmt_writer failed");
        abort();
    }
    return w;
}

static const char *finish(bl_gguf_writer *w, const char *name)
{
    bl_err err;
    const char *p = tpath(name);
    if (bl_gguf_writer_write(w, p, &err)) {
        diag("%s", err.msg);
        abort();
    }
    bl_gguf_writer_free(w);
    return p;
}

/* ---------------------------------------------------------------- round trip */

static int same_config(const struct bl_drafter_config *a, const struct bl_drafter_config *b)
{
    return a->kind == b->kind && a->n_heads == b->n_heads && a->n_blocks == b->n_blocks && a->width == b->width &&
           a->d == b->d && a->n_vocab == b->n_vocab && strcmp(a->hook, b->hook) == 0 &&
           strcmp(a->model_name, b->model_name) == 0 && strcmp(a->model_sha256, b->model_sha256) == 0;
}

static int n_entries(const char *path)
{
    DIR *dp = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!dp)
        return -1;
    while ((e = readdir(dp)))
        n += e->d_name[0] != '.';
    closedir(dp);
    return n;
}

static void round_trip(int64_t width, int n_blocks, int K, const char *name)
{
    bl_drafter *d = new_drafter(width, n_blocks, K, 7), *e = NULL;
    const struct bl_drafter_config *c = bl_drafter_config(d);
    int64_t h = width ? width : D, np = bl_drafter_n_params(d);
    bl_err err;
    ok(np == (int64_t)K * n_blocks * (h * D + h + (width ? D * h : 0)),
       "width %lld, %d blocks, K = %d: %lld parameters", (long long)width, n_blocks, K, (long long)np);
    for (int64_t i = 0; i < np; i++)
        d->params[i] = 0.25f * frand();
    d->params[0] = -0.0f;
    d->params[np / 2] = 1e-40f;   /* subnormal */

    int before = n_entries(dir);
    const char *path = tpath(name);
    int rc = bl_drafter_save(d, path, &err);
    ok(rc == BL_OK, "save %s (%s)", name, rc ? err.msg : "ok");
    ok(n_entries(dir) == before + 1, "only the file is left in the directory (no temporary)");
    rc = bl_drafter_save(d, path, &err);
    ok(rc == BL_OK && n_entries(dir) == before + 1, "saving again replaces it");

    if (!(e = load_ok(path, model, name))) {
        bl_drafter_free(d);
        return;
    }
    ok(bl_drafter_n_params(e) == np && memcmp(d->params, e->params, (size_t)np * sizeof(float)) == 0,
       "parameters bit for bit");
    ok(same_config(c, bl_drafter_config(e)), "configuration field for field (kind %d, hook '%s', model '%s' %.12s)",
       bl_drafter_config(e)->kind, bl_drafter_config(e)->hook, bl_drafter_config(e)->model_name,
       bl_drafter_config(e)->model_sha256);

    enum { N = 5 };
    float *x = malloc(N * D * sizeof *x), *l1 = malloc((size_t)(N * K * V) * sizeof *l1),
          *l2 = malloc((size_t)(N * K * V) * sizeof *l2);
    int32_t t1[N * BL_DRAFTER_MAX_HEADS], t2[N * BL_DRAFTER_MAX_HEADS];
    for (int64_t i = 0; i < N * D; i++)
        x[i] = 2.0f * frand();
    int r1 = bl_drafter_eval(d, x, N, l1, t1, NULL, &err), r2 = bl_drafter_eval(e, x, N, l2, t2, NULL, &err);
    double spread = 0;
    for (int64_t i = 1; i < N * K * V; i++)
        spread += l1[i] != l1[0];
    ok(r1 == BL_OK && r2 == BL_OK && spread > 0 &&
           memcmp(l1, l2, (size_t)(N * K * V) * sizeof *l1) == 0 && memcmp(t1, t2, N * K * sizeof *t1) == 0,
       "bl_drafter_eval on %d random features: the same logits and tokens bit for bit", N);

    /* the file read without the loader: keys and the layout */
    bl_gguf *g;
    if (bl_gguf_open(&g, path, &err)) {
        ok(0, "bl_gguf_open: %s", err.msg);
    } else {
        struct bl_gguf_str s;
        int64_t v[5];
        int good = bl_gguf_get_str(g, "general.architecture", &s, NULL) == 0 && s.len == 15 &&
                   memcmp(s.ptr, "bitlens-drafter", 15) == 0;
        good &= bl_gguf_get_str(g, "bitlens.drafter.kind", &s, NULL) == 0 && s.len == 6 &&
                memcmp(s.ptr, "medusa", 6) == 0;
        good &= bl_gguf_get_str(g, "bitlens.drafter.model.sha256", &s, NULL) == 0 && s.len == 64 &&
                memcmp(s.ptr, c->model_sha256, 64) == 0;
        good &= bl_gguf_get_i64(g, "bitlens.drafter.n_heads", &v[0], NULL) == 0 &&
                bl_gguf_get_i64(g, "bitlens.drafter.n_blocks", &v[1], NULL) == 0 &&
                bl_gguf_get_i64(g, "bitlens.drafter.width", &v[2], NULL) == 0 &&
                bl_gguf_get_i64(g, "bitlens.drafter.model.dim", &v[3], NULL) == 0 &&
                bl_gguf_get_i64(g, "bitlens.drafter.model.n_vocab", &v[4], NULL) == 0 && v[0] == K &&
                v[1] == n_blocks && v[2] == width && v[3] == D && v[4] == V;
        ok(good, "keys read back through bl_gguf");
        ok(bl_gguf_n_tensors(g) == (int64_t)K * n_blocks * (width ? 3 : 2), "%lld tensors",
           (long long)bl_gguf_n_tensors(g));
        /* the last head's last block: W1 [h x d] element (r, col) is
         * params[w1 + r * d + col]; W2 [d x h] (r, col) at w2 + r * h + col */
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "drafter.heads.%d.blocks.%d.w1", K, n_blocks - 1);
        snprintf(n2, sizeof n2, "drafter.heads.%d.blocks.%d.%s", K, n_blocks - 1, width ? "w2" : "b1");
        const struct bl_tensor *t1w = bl_gguf_find_tensor(g, n1), *t2w = bl_gguf_find_tensor(g, n2);
        int64_t o = off_w1(c, K - 1, n_blocks - 1);
        int64_t r = h - 2, col = D - 3;
        float a, b;
        int lay = t1w && t1w->type == BL_F32 && t1w->n_dims == 2 && t1w->ne[0] == D && t1w->ne[1] == h;
        if (lay) {
            memcpy(&a, (const float *)t1w->data + r * D + col, 4);
            lay = memcmp(&a, &d->params[o + r * D + col], 4) == 0;
        }
        ok(lay, "%s is ne {%lld, %lld} and element (%lld, %lld) is where the layout puts it", n1, (long long)D,
           (long long)h, (long long)r, (long long)col);
        if (width) {
            r = D - 3, col = h - 2;
            lay = t2w && t2w->n_dims == 2 && t2w->ne[0] == h && t2w->ne[1] == D;
            if (lay) {
                memcpy(&b, (const float *)t2w->data + r * h + col, 4);
                lay = memcmp(&b, &d->params[o + h * D + h + r * h + col], 4) == 0;
            }
        } else {
            lay = t2w && t2w->n_dims == 1 && t2w->ne[0] == h;
            if (lay) {
                memcpy(&b, (const float *)t2w->data + h - 1, 4);
                lay = memcmp(&b, &d->params[o + h * D + h - 1], 4) == 0;
            }
        }
        ok(lay, "%s is where the layout puts it", n2);
        bl_gguf_free(g);
    }

    /* a file written here, not by bl_drafter_save, loads the same */
    bl_drafter *f;
    char nm[64];
    snprintf(nm, sizeof nm, "hand-%s", name);
    if ((f = load_ok(finish(fmt_writer(d, NULL, NULL), nm), model, "a file written through the GGUF writer here"))) {
        ok(memcmp(d->params, f->params, (size_t)np * sizeof(float)) == 0, "its parameters bit for bit");
        bl_drafter_free(f);
    }
    free(x);
    free(l1);
    free(l2);
    bl_drafter_free(e);
    bl_drafter_free(d);
}

/* ---------------------------------------------------------------- identity */

static void identity(const char *mp, const char *tp)
{
    bl_err err;
    const char *path = tpath("w96.gguf");
    bl_drafter *d = new_drafter(96, 2, 3, 11);
    const struct bl_drafter_config *c = bl_drafter_config(d);
    char mine[13], other[13];
    snprintf(mine, sizeof mine, "%.12s", c->model_sha256);

    /* llama2xs: dim 64 and 512 tokens as stories260K, another file */
    char *xp = td_path("models/llama2xs.bin");
    bl_model *xs = NULL;
    struct bl_model_params p = bl_model_default_params();
    p.tokenizer_path = tp;
    if (!xp || bl_model_load(&xs, xp, &p, &err)) {
        skip(1, "models/llama2xs.bin not loadable");
    } else {
        bl_drafter *o = NULL;
        bl_drafter_new(&o, xs, c, 1, &err);
        snprintf(other, sizeof other, "%.12s", o ? bl_drafter_config(o)->model_sha256 : "?");
        bl_drafter_free(o);
        expect_err(path, xs, BL_EMISMATCH, "stories260K.bin", "llama2xs.bin", mine,
                   "a drafter for stories260K against llama2xs");
        bl_err e2;
        bl_drafter *x = NULL;
        bl_drafter_load(&x, path, xs, &e2);
        ok(strstr(e2.msg, other) && strstr(e2.msg, "sha256"), "the message has llama2xs's sha256 %s too", other);
        bl_model_free(xs);
    }
    free(xp);

    /* a renamed copy of stories260K.bin: the name differs, the sha256 not */
    size_t n;
    void *bytes = read_file(mp, &n);
    const char *cp = tpath("renamed-copy.bin");
    bl_model *copy = NULL;
    if (!bytes || write_file(cp, bytes, n) || bl_model_load(&copy, cp, &p, &err)) {
        skip(1, "no copy of the model");
    } else {
        bl_drafter *x = load_ok(path, copy, "against a renamed copy of the model (same sha256)");
        if (x)
            ok(strcmp(bl_drafter_config(x)->model_name, "renamed-copy.bin") == 0,
               "the loaded drafter names the model as it is called now ('%s')", bl_drafter_config(x)->model_name);
        else
            skip(1, "not loaded");
        bl_drafter_free(x);
        bl_model_free(copy);
    }
    free(bytes);

    /* no sha256 in the file: dim, vocabulary and then the name decide */
    bl_gguf_writer *w = fmt_writer(d, "bitlens.drafter.model.sha256", NULL);
    bl_drafter *x = load_ok(finish(w, "nosha.gguf"), model, "a file without a sha256 for the same model");
    bl_drafter_free(x);
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.model.sha256", "");
    bl_gguf_writer_set_u32(w, "bitlens.drafter.model.dim", 32);
    expect_err(finish(w, "dim.gguf"), model, BL_EMISMATCH, "dim 32", "dim 64", "stories260K.bin",
               "an empty sha256 and dim 32");
    w = fmt_writer(d, "bitlens.drafter.model.sha256", NULL);
    bl_gguf_writer_set_u32(w, "bitlens.drafter.model.n_vocab", 32000);
    expect_err(finish(w, "vocab.gguf"), model, BL_EMISMATCH, "32000 tokens", "vocabulary", NULL,
               "no sha256 and 32000 tokens");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_u32(w, "bitlens.drafter.model.dim", 128);
    expect_err(finish(w, "dim2.gguf"), model, BL_EMISMATCH, "dim 128", mine, NULL,
               "the right sha256 and dim 128");
    w = fmt_writer(d, "bitlens.drafter.model.sha256", NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.model.name", "stories15M.bin");
    expect_err(finish(w, "name.gguf"), model, BL_EMISMATCH, "stories15M.bin", "name", NULL,
               "no sha256 and another name");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.model.name", "stories15M.bin");
    x = load_ok(finish(w, "name2.gguf"), model, "another name with the same sha256");
    bl_drafter_free(x);
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.model.sha256", "0123456789abcdef");
    expect_err(finish(w, "badsha.gguf"), model, BL_EFORMAT, "bitlens.drafter.model.sha256", "0123456789abcdef",
               NULL, "a sha256 of 16 hex digits");
    bl_drafter_free(d);
}

/* ---------------------------------------------------------------- bad files */

static void truncated(const char *name)
{
    size_t n;
    unsigned char *b = read_file(tpath(name), &n);
    if (!b) {
        ok(0, "read %s", name);
        return;
    }
    const char *p = tpath("prefix.gguf");
    int64_t tried = 0, clean = 0;
    bl_err first = {0}, last = {0};
    for (size_t len = 0; len < n; len += 97) {
        bl_drafter *d = (bl_drafter *)1;
        bl_err err = {0};
        if (write_file(p, b, len))
            break;
        int rc = bl_drafter_load(&d, p, model, &err);
        tried++;
        if (rc == BL_EFORMAT && d == NULL && strstr(err.msg, p))
            clean++;
        else
            diag("prefix of %zu bytes: status %d, '%s'", len, rc, err.msg);
        if (len == 0)
            first = err;
        last = err;
        if (rc == BL_OK)
            bl_drafter_free(d);
    }
    ok(tried > 0 && clean == tried, "%s: %lld of %lld prefixes (every 97th length of %zu bytes) refused as malformed",
       name, (long long)clean, (long long)tried, n);
    diag("empty: %s", first.msg);
    diag("longest: %s", last.msg);
    free(b);
}

static void bad_tensors(void)
{
    bl_drafter *d = new_drafter(96, 2, 3, 5), *z = new_drafter(0, 1, 2, 5);
    static uint16_t f16[96];
    static float big[64 * 96 + 100];
    const int64_t t_w1[2] = {96, 64}, ne_b1[1] = {96}, ne_b1r[2] = {96, 1}, ne_b1s[1] = {95},
                  ne_w2z[2] = {64, 64};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        big[i] = frand();

    bl_gguf_writer *w = fmt_writer(d, NULL, "drafter.heads.2.blocks.0.w1");
    bl_gguf_writer_add_tensor(w, "drafter.heads.2.blocks.0.w1", BL_F32, 2, t_w1, big);
    expect_err(finish(w, "transposed.gguf"), model, BL_EFORMAT, "'drafter.heads.2.blocks.0.w1'", "is [64 x 96]",
               "expected [96 x 64]", "W1 stored transposed");

    w = fmt_writer(d, NULL, "drafter.heads.3.blocks.1.b1");
    bl_gguf_writer_add_tensor(w, "drafter.heads.3.blocks.1.b1", BL_F16, 1, ne_b1, f16);
    expect_err(finish(w, "f16.gguf"), model, BL_EFORMAT, "'drafter.heads.3.blocks.1.b1'", "type f16",
               "expected f32", "b1 in f16");

    w = fmt_writer(d, NULL, "drafter.heads.1.blocks.1.b1");
    bl_gguf_writer_add_tensor(w, "drafter.heads.1.blocks.1.b1", BL_F32, 1, ne_b1s, big);
    expect_err(finish(w, "short.gguf"), model, BL_EFORMAT, "'drafter.heads.1.blocks.1.b1' is [95]",
               "expected [96]", NULL, "b1 one short");

    w = fmt_writer(d, NULL, "drafter.heads.1.blocks.0.w2");
    expect_err(finish(w, "missing.gguf"), model, BL_EFORMAT, "'drafter.heads.1.blocks.0.w2'", "missing", NULL,
               "a W2 missing");

    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_add_tensor(w, "drafter.heads.4.blocks.0.w1", BL_F32, 2, t_w1, big);
    expect_err(finish(w, "extra.gguf"), model, BL_EFORMAT, "'drafter.heads.4.blocks.0.w1'", "not part", "3 heads",
               "a fourth head in a drafter of three");

    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_add_tensor(w, "drafter.heads.01.blocks.0.w3", BL_F32, 1, ne_b1, big);
    expect_err(finish(w, "stray.gguf"), model, BL_EFORMAT, "'drafter.heads.01.blocks.0.w3'", "not part", NULL,
               "a stray tensor");

    w = fmt_writer(z, NULL, NULL);
    bl_gguf_writer_add_tensor(w, "drafter.heads.1.blocks.0.w2", BL_F32, 2, ne_w2z, big);
    expect_err(finish(w, "w2-in-w0.gguf"), model, BL_EFORMAT, "'drafter.heads.1.blocks.0.w2'", "width 0", NULL,
               "a W2 in a drafter of width 0");

    /* trailing dimensions of 1 are the same shape */
    w = fmt_writer(d, NULL, "drafter.heads.2.blocks.1.b1");
    bl_gguf_writer_add_tensor(w, "drafter.heads.2.blocks.1.b1", BL_F32, 2, ne_b1r, big);
    bl_drafter *x = load_ok(finish(w, "b1-2d.gguf"), model, "b1 stored as ne {96, 1}");
    if (x)
        ok(memcmp(x->params + bli_drafter_b1(&x->cfg, 1, 1), big, 96 * sizeof(float)) == 0, "and read as [96]");
    else
        skip(1, "not loaded");
    bl_drafter_free(x);
    bl_drafter_free(z);
    bl_drafter_free(d);
}

static void bad_keys(const char *gguf_model)
{
    bl_drafter *d = new_drafter(96, 2, 3, 5);
    bl_gguf_writer *w;

    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.kind", "hydra");
    expect_err(finish(w, "hydra.gguf"), model, BL_EUNSUPPORTED, "'bitlens.drafter.kind'", "'hydra'", NULL,
               "an unknown kind");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.kind", "eagle");
    expect_err(finish(w, "eagle.gguf"), model, BL_EINVAL, "EAGLE-style drafter is one layer", NULL, NULL,
               "an eagle drafter of 2 blocks");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_u32(w, "bitlens.drafter.kind", 1);
    expect_err(finish(w, "kind-int.gguf"), model, BL_EFORMAT, "'bitlens.drafter.kind'", "uint32", NULL,
               "a kind that is a number");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_u32(w, "bitlens.drafter.n_heads", 0);
    expect_err(finish(w, "k0.gguf"), model, BL_EFORMAT, "'bitlens.drafter.n_heads' = 0", "out of range", NULL,
               "0 heads");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_u32(w, "bitlens.drafter.n_heads", 17);
    expect_err(finish(w, "k17.gguf"), model, BL_EFORMAT, "'bitlens.drafter.n_heads' = 17", NULL, NULL, "17 heads");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_i32(w, "bitlens.drafter.n_blocks", -1);
    expect_err(finish(w, "nb.gguf"), model, BL_EFORMAT, "'bitlens.drafter.n_blocks' = -1", NULL, NULL,
               "-1 blocks");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_u64(w, "bitlens.drafter.width", 1u << 20);
    expect_err(finish(w, "wide.gguf"), model, BL_EFORMAT, "'bitlens.drafter.width' = 1048576", NULL, NULL,
               "width 2^20");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.width", "96");
    expect_err(finish(w, "width-str.gguf"), model, BL_EFORMAT, "'bitlens.drafter.width'", "string", NULL,
               "a width that is a string");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_u32(w, "bitlens.drafter.width", 64);
    expect_err(finish(w, "width64.gguf"), model, BL_EFORMAT, "'drafter.heads.1.blocks.0.w1' is [96 x 64]",
               "expected [64 x 64]", NULL, "width 64 over tensors of width 96");
    w = fmt_writer(d, "bitlens.drafter.n_blocks", NULL);
    expect_err(finish(w, "no-nb.gguf"), model, BL_EFORMAT, "'bitlens.drafter.n_blocks'", "missing", NULL,
               "no n_blocks");
    w = fmt_writer(d, "bitlens.drafter.hook", NULL);
    expect_err(finish(w, "no-hook.gguf"), model, BL_EFORMAT, "'bitlens.drafter.hook'", "missing", NULL,
               "no hook");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "bitlens.drafter.hook",
                           "blocks.0.attn.hook_pattern.blocks.0.attn.hook_pattern.blocks.0.x");   /* 64 bytes */
    expect_err(finish(w, "long-hook.gguf"), model, BL_EFORMAT, "'bitlens.drafter.hook' is 64 bytes long",
               "at most 63", NULL, "a hook name of 64 bytes");
    w = fmt_writer(d, NULL, NULL);
    bl_gguf_writer_set_str(w, "general.architecture", "llama");
    expect_err(finish(w, "llama.gguf"), model, BL_EUNSUPPORTED, "'llama'", "not a drafter", NULL,
               "architecture llama");
    w = fmt_writer(d, "general.architecture", NULL);
    expect_err(finish(w, "no-arch.gguf"), model, BL_EFORMAT, "general.architecture", "missing", NULL,
               "no architecture");
    if (gguf_model)
        expect_err(gguf_model, model, BL_EUNSUPPORTED, "'llama'", "not a drafter", NULL, "a model as a drafter");
    else
        skip(1, "models/stories260K.gguf absent");
    expect_err(tpath("no-such-file.gguf"), model, BL_EIO, NULL, NULL, NULL, "a file that does not exist");

    bl_err err = {0};
    int rc = bl_drafter_save(d, tpath("no-such-dir/x.gguf"), &err);
    ok(rc == BL_EIO && strstr(err.msg, "no-such-dir"), "save into a missing directory: %s (%s)", bl_strerror(rc),
       err.msg);
    bl_drafter_free(d);
}

int main(void)
{
    char *mp = td_require("models/stories260K.bin");
    char *tp = td_require("models/tok512.bin");
    char *gp = td_path("models/stories260K.gguf");
    struct bl_model_params p = bl_model_default_params();
    bl_err err;
    p.tokenizer_path = tp;
    if (bl_model_load(&model, mp, &p, &err)) {
        ok(0, "load: %s", err.msg);
        return done_testing();
    }
    D = bl_model_config(model)->dim;
    V = bl_model_config(model)->n_vocab;
    if (!(dir = tmp_dir())) {
        ok(0, "a temporary directory");
        return done_testing();
    }
    round_trip(0, 1, 4, "w0.gguf");
    round_trip(96, 2, 3, "w96.gguf");
    identity(mp, tp);
    truncated("w0.gguf");
    truncated("w96.gguf");
    bad_tensors();
    bad_keys(gp);
    rm_rf(dir);
    free(dir);
    bl_model_free(model);
    free(mp);
    free(tp);
    free(gp);
    return done_testing();
}
