/* lib/drafter_io.c: drafter files (bitlens/drafter.h), GGUF v3 through the
 * writer and reader of bitlens/gguf.h.
 *
 * Keys (integers are written as uint32; any integer type that fits is read):
 *   general.architecture          "bitlens-drafter"
 *   general.name                  "medusa drafter for <model>" (not read)
 *   general.file_type             0 (all f32, llama.cpp's ALL_F32; not read)
 *   bitlens.drafter.kind          "medusa" or "eagle"
 *   bitlens.drafter.n_heads       K, 1..BL_DRAFTER_MAX_HEADS
 *   bitlens.drafter.n_blocks      blocks per head, 1..64
 *   bitlens.drafter.width         hidden width of a block, 0 (= dim)..65536
 *   bitlens.drafter.hook          the main model's hook read
 *   bitlens.drafter.model.name    the main model's display name
 *   bitlens.drafter.model.sha256  of its first file, 64 hex digits, or ""
 *   bitlens.drafter.model.dim     its dim
 *   bitlens.drafter.model.n_vocab its vocabulary size
 * Tensors, all f32, head J (1..K) block B (0..n_blocks-1), h the hidden
 * width (width, or dim when width is 0), d the model's dim:
 *   drafter.heads.J.blocks.B.w1   W1 [h x d]   GGUF ne {d, h}
 *   drafter.heads.J.blocks.B.b1   b1 [h]       ne {h}
 *   drafter.heads.J.blocks.B.w2   W2 [d x h]   ne {h, d}, only when width > 0
 * and nothing else; an EAGLE-style drafter (n_blocks 1, width = its SwiGLU
 * width m) has instead the tensors of lib/drafter_eagle.h, f32:
 *   drafter.eagle.fc.weight [d x 2d], fc.bias [d], norm1.weight [d],
 *   attn.q/k/v/o.weight [d x d], norm2.weight [d], mlp.gate.weight and
 *   mlp.up.weight [m x d], mlp.down.weight [d x m]   (names as
 *   bli_eagle_tensor_name gives them, after "drafter.eagle.")
 *
 * The loader checks the identity first (dim, vocabulary size, and the
 * sha256 when both sides know it, else the name), so a drafter for another
 * model is reported as such rather than as a tensor of the wrong shape. */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "drafter_eagle.h"
#include "drafter_internal.h"
#include "internal.h"
#include <bitlens/gguf.h>

#define ARCH "bitlens-drafter"
#define MAX_BLOCKS 64
#define MAX_WIDTH (1 << 16)

static const char *kind_name(int kind)
{
    switch (kind) {
    case BL_DRAFTER_MEDUSA: return "medusa";
    case BL_DRAFTER_EAGLE: return "eagle";
    default: return NULL;
    }
}

/* EAGLE tensor t's file name and GGUF shape (ne, innermost first). */
static int eagle_tensor(const struct bli_eagle *e, int t, char *name, size_t cap, int64_t *ne)
{
    snprintf(name, cap, "drafter.eagle.%s", bli_eagle_tensor_name(t));
    int64_t d = e->d, m = e->m;
    switch (t) {
    case BLI_EAGLE_WFC: ne[0] = 2 * d; ne[1] = d; return 2;
    case BLI_EAGLE_BFC: case BLI_EAGLE_G1: case BLI_EAGLE_G2: ne[0] = d; return 1;
    case BLI_EAGLE_WG: case BLI_EAGLE_WU: ne[0] = d; ne[1] = m; return 2;
    case BLI_EAGLE_WD: ne[0] = m; ne[1] = d; return 2;
    default: ne[0] = d; ne[1] = d; return 2;   /* q, k, v, o */
    }
}

/* The file name of tensor `what` ("w1", "b1", "w2") of head j (0-based)
 * block b. */
static void tensor_name(char *buf, size_t cap, int j, int b, const char *what)
{
    snprintf(buf, cap, "drafter.heads.%d.blocks.%d.%s", j + 1, b, what);
}

/* ---------------------------------------------------------------- save */

int bl_drafter_save(const bl_drafter *d, const char *path, bl_err *err)
{
    const struct bl_drafter_config *c = &d->cfg;
    const char *kind = kind_name(c->kind);
    BL_ASSERT(kind);   /* bli_drafter_alloc checked it */
    int64_t h = bli_drafter_hidden(c), D = c->d;
    char name[160], tn[64];
    int rc = BL_OK;

    bl_gguf_writer *w = bl_gguf_writer_alloc();
    if (!w)
        return bli_err(err, BL_ENOMEM, "out of memory");
    snprintf(name, sizeof name, "%s drafter for %s", kind, c->model_name[0] ? c->model_name : "an unnamed model");
    BLI_TRY(bl_gguf_writer_set_str(w, "general.architecture", ARCH));
    BLI_TRY(bl_gguf_writer_set_str(w, "general.name", name));
    BLI_TRY(bl_gguf_writer_set_u32(w, "general.file_type", 0));
    BLI_TRY(bl_gguf_writer_set_str(w, "bitlens.drafter.kind", kind));
    BLI_TRY(bl_gguf_writer_set_u32(w, "bitlens.drafter.n_heads", (uint32_t)c->n_heads));
    BLI_TRY(bl_gguf_writer_set_u32(w, "bitlens.drafter.n_blocks", (uint32_t)c->n_blocks));
    BLI_TRY(bl_gguf_writer_set_u32(w, "bitlens.drafter.width", (uint32_t)(d->eagle ? d->eagle->m : c->width)));
    BLI_TRY(bl_gguf_writer_set_str(w, "bitlens.drafter.hook", c->hook));
    BLI_TRY(bl_gguf_writer_set_str(w, "bitlens.drafter.model.name", c->model_name));
    BLI_TRY(bl_gguf_writer_set_str(w, "bitlens.drafter.model.sha256", c->model_sha256));
    BLI_TRY(bl_gguf_writer_set_u32(w, "bitlens.drafter.model.dim", (uint32_t)c->d));
    BLI_TRY(bl_gguf_writer_set_u32(w, "bitlens.drafter.model.n_vocab", (uint32_t)c->n_vocab));
    if (d->eagle) {
        for (int t = 0; t < BLI_EAGLE_N_TENSORS; t++) {
            int64_t ne[2];
            int nd = eagle_tensor(d->eagle, t, tn, sizeof tn, ne);
            BLI_TRY(bl_gguf_writer_add_tensor(w, tn, BL_F32, nd, ne, d->params + d->eagle->off[t]));
        }
    }
    for (int j = 0; j < c->n_heads && !d->eagle; j++)
        for (int b = 0; b < c->n_blocks; b++) {
            const int64_t ne_w1[2] = {D, h}, ne_b1[1] = {h}, ne_w2[2] = {h, D};
            tensor_name(tn, sizeof tn, j, b, "w1");
            BLI_TRY(bl_gguf_writer_add_tensor(w, tn, BL_F32, 2, ne_w1, d->params + bli_drafter_w1(c, j, b)));
            tensor_name(tn, sizeof tn, j, b, "b1");
            BLI_TRY(bl_gguf_writer_add_tensor(w, tn, BL_F32, 1, ne_b1, d->params + bli_drafter_b1(c, j, b)));
            if (c->width > 0) {
                tensor_name(tn, sizeof tn, j, b, "w2");
                BLI_TRY(bl_gguf_writer_add_tensor(w, tn, BL_F32, 2, ne_w2, d->params + bli_drafter_w2(c, j, b)));
            }
        }
    /* through a temporary name and a rename: no partial file on failure */
    rc = bl_gguf_writer_write(w, path, err);
    bl_gguf_writer_free(w);
    return rc;
fail:
    bl_gguf_writer_free(w);
    return bli_err(err, rc, "%s: cannot build the drafter's GGUF metadata and tensors (%s)", path,
                   bl_strerror(rc));
}

/* ---------------------------------------------------------------- load */

/* Integer key in [lo, hi]. */
static int get_int(const bl_gguf *g, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   bl_err *err)
{
    int rc = bl_gguf_get_i64(g, key, out, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: required key '%s' is missing", path, key);
    if (rc)
        return rc;   /* the reader's message names the file and the key */
    if (*out < lo || *out > hi)
        return bli_err(err, BL_EFORMAT, "%s: key '%s' = %" PRId64 " is out of range (%" PRId64 " to %" PRId64 ")",
                       path, key, *out, lo, hi);
    return BL_OK;
}

/* String key into buf[cap] (NUL-terminated); an absent optional key is "". */
static int get_str(const bl_gguf *g, const char *path, const char *key, int required, char *buf, size_t cap,
                   bl_err *err)
{
    struct bl_gguf_str s;
    buf[0] = '\0';
    int rc = bl_gguf_get_str(g, key, &s, err);
    if (rc == BL_ENOTFOUND && !required)
        return BL_OK;
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: required key '%s' is missing", path, key);
    if (rc)
        return rc;
    if (s.len >= cap)
        return bli_err(err, BL_EFORMAT, "%s: key '%s' is %" PRIu64 " bytes long (at most %zu)", path, key, s.len,
                       cap - 1);
    if (memchr(s.ptr, '\0', (size_t)s.len))
        return bli_err(err, BL_EFORMAT, "%s: key '%s' holds a NUL byte", path, key);
    memcpy(buf, s.ptr, (size_t)s.len);
    buf[s.len] = '\0';
    return BL_OK;
}

/* The configuration in the file's keys, range-checked. */
static int read_config(const bl_gguf *g, const char *path, struct bl_drafter_config *c, bl_err *err)
{
    char s[64];
    int64_t v;
    int rc;

    memset(c, 0, sizeof *c);
    if (bl_gguf_find_key(g, "general.architecture") < 0)
        return bli_err(err, BL_EFORMAT, "%s: general.architecture is missing: not a drafter file", path);
    if ((rc = get_str(g, path, "general.architecture", 1, s, sizeof s, err)))
        return rc;
    if (strcmp(s, ARCH) != 0)
        return bli_err(err, BL_EUNSUPPORTED, "%s: general.architecture is '%s', not '" ARCH "': not a drafter file",
                       path, s);

    if ((rc = get_str(g, path, "bitlens.drafter.kind", 1, s, sizeof s, err)))
        return rc;
    if (strcmp(s, "medusa") == 0)
        c->kind = BL_DRAFTER_MEDUSA;
    else if (strcmp(s, "eagle") == 0)
        c->kind = BL_DRAFTER_EAGLE;
    else
        return bli_err(err, BL_EUNSUPPORTED, "%s: key 'bitlens.drafter.kind' = '%s' is not a drafter kind "
                       "(medusa or eagle)", path, s);

    if ((rc = get_int(g, path, "bitlens.drafter.n_heads", 1, BL_DRAFTER_MAX_HEADS, &v, err)))
        return rc;
    c->n_heads = (int)v;
    if ((rc = get_int(g, path, "bitlens.drafter.n_blocks", 1, MAX_BLOCKS, &v, err)))
        return rc;
    c->n_blocks = (int)v;
    if ((rc = get_int(g, path, "bitlens.drafter.width", 0, MAX_WIDTH, &c->width, err)))
        return rc;
    if ((rc = get_str(g, path, "bitlens.drafter.hook", 1, c->hook, sizeof c->hook, err)))
        return rc;
    if (!c->hook[0])
        return bli_err(err, BL_EFORMAT, "%s: key 'bitlens.drafter.hook' is empty", path);

    if ((rc = get_str(g, path, "bitlens.drafter.model.name", 1, c->model_name, sizeof c->model_name, err)))
        return rc;
    if ((rc = get_str(g, path, "bitlens.drafter.model.sha256", 0, c->model_sha256, sizeof c->model_sha256, err)))
        return rc;
    size_t n = strlen(c->model_sha256);
    int hex = 1;
    for (size_t i = 0; i < n; i++)
        hex &= isxdigit((unsigned char)c->model_sha256[i]) != 0;
    if ((n != 0 && n != 64) || !hex)
        return bli_err(err, BL_EFORMAT, "%s: key 'bitlens.drafter.model.sha256' = '%s' is not 64 hex digits", path,
                       c->model_sha256);
    if ((rc = get_int(g, path, "bitlens.drafter.model.dim", 1, INT32_MAX, &c->d, err)))
        return rc;
    if ((rc = get_int(g, path, "bitlens.drafter.model.n_vocab", 1, INT32_MAX, &c->n_vocab, err)))
        return rc;
    return BL_OK;
}

/* "name (sha256 0123456789ab, dim 64, 512 tokens)" */
static void describe(char *buf, size_t cap, const struct bl_drafter_config *c)
{
    snprintf(buf, cap, "'%.100s' (sha256 %.12s, dim %" PRId64 ", %" PRId64 " tokens)", c->model_name,
             c->model_sha256[0] ? c->model_sha256 : "unknown", c->d, c->n_vocab);
}

/* Does the file's model (f) match the given one (m)?  dim and vocabulary
 * always; the sha256 when both know it, the name only when one does not
 * (a renamed copy of the same file is the same model). */
static int check_identity(const char *path, const struct bl_drafter_config *f, const struct bl_drafter_config *m,
                          bl_err *err)
{
    const char *what = NULL;
    if (f->d != m->d)
        what = "dim";
    else if (f->n_vocab != m->n_vocab)
        what = "vocabulary size";
    else if (f->model_sha256[0] && m->model_sha256[0]) {
        if (strcasecmp(f->model_sha256, m->model_sha256) != 0)
            what = "sha256";
    } else if (f->model_name[0] && m->model_name[0] && strcmp(f->model_name, m->model_name) != 0)
        what = "name (no sha256 to compare)";
    if (!what)
        return BL_OK;
    char a[200], b[200];
    describe(a, sizeof a, f);
    describe(b, sizeof b, m);
    return bli_err(err, BL_EMISMATCH, "%s: a drafter for model %s, not for %s: the %s differs", path, a, b, what);
}

/* "64 x 96" for ne {96, 64}: rows first, as the layout is written. */
static void shape_str(char *buf, size_t cap, const int64_t *ne, int n_dims)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = n_dims - 1; i >= 0 && o < cap; i--)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i == n_dims - 1 ? "" : " x ", ne[i]);
}

/* Check one tensor of the file against its expected shape and copy it. */
static int read_tensor(const bl_gguf *g, const char *path, const char *name, int n_dims, const int64_t *ne,
                       float *dst, bl_err *err)
{
    const struct bl_tensor *t = bl_gguf_find_tensor(g, name);
    char want[64], got[96];
    int64_t ne4[BL_MAX_DIMS] = {1, 1, 1, 1};
    for (int i = 0; i < n_dims; i++)
        ne4[i] = ne[i];
    shape_str(want, sizeof want, ne, n_dims);
    if (!t)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s' [%s] is missing", path, name, want);
    if (t->type != BL_F32)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s' has type %s, expected f32", path, name,
                       bl_dtype_name(t->type) ? bl_dtype_name(t->type) : "unknown");
    /* trailing dimensions of 1 are the same shape */
    if (memcmp(t->ne, ne4, sizeof ne4) != 0) {
        shape_str(got, sizeof got, t->ne, t->n_dims);
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s' is [%s], expected [%s] (rows x columns)", path, name, got,
                       want);
    }
    int64_t n = bl_tensor_nelements(t);
    BL_ASSERT(t->nbytes == (size_t)n * sizeof(float));
    memcpy(dst, t->data, t->nbytes);
    return BL_OK;
}

/* Parse a decimal number of up to 4 digits without a leading zero at *p. */
static int parse_num(const char **p, int *out)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 5)
        v = 10 * v + (s[n++] - '0');
    if (n == 0 || n > 4 || (n > 1 && s[0] == '0'))
        return 0;
    *out = v;
    *p = s + n;
    return 1;
}

/* Is `name` one of the tensors of a drafter of configuration c? */
static int expected_tensor(const struct bl_drafter_config *c, const char *name)
{
    static const char head[] = "drafter.heads.", blocks[] = ".blocks.";
    const char *p = name;
    int j, b;
    if (strncmp(p, head, sizeof head - 1) != 0)
        return 0;
    p += sizeof head - 1;
    if (!parse_num(&p, &j) || strncmp(p, blocks, sizeof blocks - 1) != 0)
        return 0;
    p += sizeof blocks - 1;
    if (!parse_num(&p, &b) || j < 1 || j > c->n_heads || b >= c->n_blocks)
        return 0;
    return strcmp(p, ".w1") == 0 || strcmp(p, ".b1") == 0 || (c->width > 0 && strcmp(p, ".w2") == 0);
}

static int read_eagle(const bl_gguf *g, const char *path, bl_drafter *d, bl_err *err)
{
    char tn[64];
    int rc;
    for (int64_t i = 0; i < bl_gguf_n_tensors(g); i++) {
        const char *name = bl_gguf_tensor(g, i)->name;
        int known = 0;
        for (int t = 0; t < BLI_EAGLE_N_TENSORS && !known; t++) {
            int64_t ne[2];
            eagle_tensor(d->eagle, t, tn, sizeof tn, ne);
            known = strcmp(tn, name) == 0;
        }
        if (!known)
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s' is not part of an EAGLE-style drafter", path, name);
    }
    for (int t = 0; t < BLI_EAGLE_N_TENSORS; t++) {
        int64_t ne[2];
        int nd = eagle_tensor(d->eagle, t, tn, sizeof tn, ne);
        if ((rc = read_tensor(g, path, tn, nd, ne, d->params + d->eagle->off[t], err)))
            return rc;
    }
    return BL_OK;
}

static int read_params(const bl_gguf *g, const char *path, bl_drafter *d, bl_err *err)
{
    const struct bl_drafter_config *c = &d->cfg;
    int64_t h = bli_drafter_hidden(c), D = c->d;
    const int64_t ne_w1[2] = {D, h}, ne_b1[1] = {h}, ne_w2[2] = {h, D};
    char tn[64];
    int rc;
    if (d->eagle)
        return read_eagle(g, path, d, err);
    for (int64_t i = 0; i < bl_gguf_n_tensors(g); i++) {
        const char *name = bl_gguf_tensor(g, i)->name;
        if (!expected_tensor(c, name))
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s' is not part of a drafter of %d heads of %d blocks "
                           "of width %" PRId64, path, name, c->n_heads, c->n_blocks, c->width);
    }
    for (int j = 0; j < c->n_heads; j++)
        for (int b = 0; b < c->n_blocks; b++) {
            tensor_name(tn, sizeof tn, j, b, "w1");
            if ((rc = read_tensor(g, path, tn, 2, ne_w1, d->params + bli_drafter_w1(c, j, b), err)))
                return rc;
            tensor_name(tn, sizeof tn, j, b, "b1");
            if ((rc = read_tensor(g, path, tn, 1, ne_b1, d->params + bli_drafter_b1(c, j, b), err)))
                return rc;
            if (c->width > 0) {
                tensor_name(tn, sizeof tn, j, b, "w2");
                if ((rc = read_tensor(g, path, tn, 2, ne_w2, d->params + bli_drafter_w2(c, j, b), err)))
                    return rc;
            }
        }
    return BL_OK;
}

int bl_drafter_load(bl_drafter **out, const char *path, const bl_model *model, bl_err *err)
{
    struct bl_drafter_config fc, cur;
    bl_drafter *d = NULL;
    bl_gguf *g = NULL;
    *out = NULL;
    int rc = bl_gguf_open(&g, path, err);
    if (rc)
        return rc;
    if ((rc = read_config(g, path, &fc, err)))
        goto fail;
    memset(&cur, 0, sizeof cur);
    if ((rc = bli_drafter_identity(model, &cur, err)))
        goto fail;
    if ((rc = check_identity(path, &fc, &cur, err)))
        goto fail;
    /* the same model: keep the name it goes by now, and whichever sha256
     * is known */
    memcpy(fc.model_name, cur.model_name, sizeof fc.model_name);
    if (cur.model_sha256[0])
        memcpy(fc.model_sha256, cur.model_sha256, sizeof fc.model_sha256);
    if ((rc = bli_drafter_alloc(&d, model, &fc, err))) {
        if (rc != BL_ENOMEM && err) {
            char m[sizeof err->msg];
            memcpy(m, err->msg, sizeof m);
            bli_err(err, rc, "%s: %.400s", path, m);
        }
        goto fail;
    }
    if ((rc = read_params(g, path, d, err)))
        goto fail;
    bl_gguf_free(g);
    *out = d;
    return BL_OK;
fail:
    bl_drafter_free(d);
    bl_gguf_free(g);
    return rc;
}
