/* lib/ctx.c: the forward pass (see bitlens/ctx.h for the math and hooks).
 *
 * Shapes in comments: n = positions in this batch, D = dim, Q = n_heads *
 * head_dim, KV = n_kv_heads * head_dim, F = hidden_dim, V = n_vocab.
 * All buffers are allocated in bl_ctx_alloc(); the forward pass allocates
 * nothing. */
#include "config.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <bitlens/ctx.h>
#include "internal.h"
#include "kernels.h"
#include "model_internal.h"

struct hook_sub {
    bl_hook_fn fn;
    void *user;
};

struct hook_point {
    char *name;
    int kind;
    int layer;                /* -1 outside the blocks */
    int n_subs;
    struct hook_sub *subs;
};

struct bl_ctx {
    const bl_model *model;
    struct bl_model_config cfg;
    const struct bli_weights *w;
    int64_t n_ctx;            /* positions the cache holds */
    int64_t n_batch;          /* positions per forward call */
    int64_t pos;              /* positions filled */
    int n_threads;
    int ref;                  /* reference kernels */
    int exact;                /* this eval: BL_EVAL_EXACT */

    float *key_cache;         /* [n_layers][n_ctx][KV] */
    float *value_cache;       /* [n_layers][n_ctx][KV] */
    float *rope_cos;          /* [n_ctx][n_rot/2] */
    float *rope_sin;          /* [n_ctx][n_rot/2] */

    float *x;                 /* residual stream [n_batch x D] */
    float *xb;                /* normalized input [n_batch x D] */
    float *xb2;               /* block output [n_batch x D] */
    float *q;                 /* queries [n_batch x Q] */
    float *z;                 /* attention output per head [n_batch x Q] */
    float *hb;                /* MLP gate [n_batch x F] */
    float *hb2;               /* MLP up [n_batch x F] */
    float *scale;             /* RMS divisors [n_batch] */
    float *att;               /* attention weights, per thread [n_threads x n_ctx] */
    float *wscratch;          /* f16/bf16 rows converted for sgemm */
    size_t wscratch_n;
    float *hook_logits;       /* [n_batch x V] when a hook wants logits the
                                 caller did not ask for; else NULL */
    float *scores;            /* [n_batch x n_heads x n_ctx] when a hook is on
                                 attention scores or patterns; else NULL */

    int64_t n_points;
    struct hook_point *points;
    struct hook_point absent;     /* for the points this model does not have */
    struct hook_point **at;   /* [kind * (n_layers + 1) + layer + 1] */

    char errmsg[512];
};

static int ctx_err(bl_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int ctx_err(bl_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

struct bl_ctx_params bl_ctx_default_params(void)
{
    struct bl_ctx_params p = {0, 256, 0, BL_KERNELS_AUTO};
    return p;
}

const bl_model *bl_ctx_model(const bl_ctx *c) { return c->model; }
int64_t bl_ctx_n_ctx(const bl_ctx *c) { return c->n_ctx; }
int64_t bl_ctx_pos(const bl_ctx *c) { return c->pos; }
const char *bl_ctx_errmsg(const bl_ctx *c) { return c->errmsg; }
int64_t bl_ctx_n_hooks(const bl_ctx *c) { return c->n_points; }

const char *bl_ctx_hook_name(const bl_ctx *c, int64_t i)
{
    BL_ASSERT(i >= 0 && i < c->n_points);
    return c->points[i].name;
}

int bl_ctx_rewind(bl_ctx *c, int64_t pos)
{
    if (pos < 0 || pos > c->pos)
        return ctx_err(c, BL_EINVAL, "cannot rewind to position %" PRId64 " (filled: %" PRId64 ")", pos, c->pos);
    c->pos = pos;
    return BL_OK;
}

/* ------------------------------------------------------------------ hooks */

static const struct {
    int kind;
    int per_layer;
    const char *name;   /* with %d for the layer */
} hook_names[BL_HOOK_N_KINDS] = {
    {BL_HOOK_EMBED, 0, "hook_embed"},
    {BL_HOOK_POS_EMBED, 0, "hook_pos_embed"},
    {BL_HOOK_RESID_PRE, 1, "blocks.%d.hook_resid_pre"},
    {BL_HOOK_LN1_SCALE, 1, "blocks.%d.ln1.hook_scale"},
    {BL_HOOK_LN1_NORMALIZED, 1, "blocks.%d.ln1.hook_normalized"},
    {BL_HOOK_ATTN_Q, 1, "blocks.%d.attn.hook_q"},
    {BL_HOOK_ATTN_K, 1, "blocks.%d.attn.hook_k"},
    {BL_HOOK_ATTN_V, 1, "blocks.%d.attn.hook_v"},
    {BL_HOOK_ATTN_SCORES, 1, "blocks.%d.attn.hook_attn_scores"},
    {BL_HOOK_ATTN_PATTERN, 1, "blocks.%d.attn.hook_pattern"},
    {BL_HOOK_ATTN_Z, 1, "blocks.%d.attn.hook_z"},
    {BL_HOOK_ATTN_OUT, 1, "blocks.%d.hook_attn_out"},
    {BL_HOOK_RESID_MID, 1, "blocks.%d.hook_resid_mid"},
    {BL_HOOK_LN2_SCALE, 1, "blocks.%d.ln2.hook_scale"},
    {BL_HOOK_LN2_NORMALIZED, 1, "blocks.%d.ln2.hook_normalized"},
    {BL_HOOK_MLP_PRE, 1, "blocks.%d.mlp.hook_pre"},
    {BL_HOOK_MLP_POST, 1, "blocks.%d.mlp.hook_post"},
    {BL_HOOK_MLP_OUT, 1, "blocks.%d.hook_mlp_out"},
    {BL_HOOK_RESID_POST, 1, "blocks.%d.hook_resid_post"},
    {BL_HOOK_LN_FINAL, 0, "ln_final.hook_normalized"},
    {BL_HOOK_LOGITS, 0, "hook_logits"},
};

static int build_hooks(bl_ctx *c)
{
    int64_t L = c->cfg.n_layers, n = 0;
    for (int k = 0; k < BL_HOOK_N_KINDS; k++)
        if (k != BL_HOOK_POS_EMBED || c->cfg.pos_embd)
            n += hook_names[k].per_layer ? L : 1;
    c->points = bli_calloc((size_t)n, sizeof *c->points);
    c->at = bli_calloc((size_t)BL_HOOK_N_KINDS * (size_t)(L + 1), sizeof *c->at);
    if (!c->points || !c->at)
        return BL_ENOMEM;
    /* points in forward-pass order: globals first, then block by block */
    int64_t i = 0;
    for (int pass = 0; pass < 3; pass++)
        for (int64_t l = pass == 1 ? 0 : -1; l < (pass == 1 ? L : 0); l++)
            for (int k = 0; k < BL_HOOK_N_KINDS; k++) {
                int pl = hook_names[k].per_layer;
                if (pl != (pass == 1))
                    continue;
                int first = k == BL_HOOK_EMBED || k == BL_HOOK_POS_EMBED;
                if (!pl && (pass == 0) != first)
                    continue;
                if (k == BL_HOOK_POS_EMBED && !c->cfg.pos_embd)
                    continue;
                struct hook_point *p = &c->points[i++];
                char buf[64];
                snprintf(buf, sizeof buf, hook_names[k].name, (int)l);
                if (!(p->name = bli_strdup(buf)))
                    return BL_ENOMEM;
                p->kind = k;
                p->layer = pl ? (int)l : -1;
                c->at[(size_t)k * (size_t)(L + 1) + (size_t)(p->layer + 1)] = p;
            }
    BL_ASSERT(i == n);
    c->n_points = n;
    /* points a model lacks lead to one that nothing can subscribe to */
    for (size_t k = 0; k < (size_t)BL_HOOK_N_KINDS * (size_t)(L + 1); k++)
        if (!c->at[k])
            c->at[k] = &c->absent;
    return BL_OK;
}

int bl_ctx_hook_kind(const bl_ctx *c, int64_t i)
{
    BL_ASSERT(i >= 0 && i < c->n_points);
    return c->points[i].kind;
}

int bl_ctx_hook_layer(const bl_ctx *c, int64_t i)
{
    BL_ASSERT(i >= 0 && i < c->n_points);
    return c->points[i].layer;
}

int64_t bl_ctx_hook_width(const bl_ctx *c, int64_t i)
{
    BL_ASSERT(i >= 0 && i < c->n_points);
    const struct bl_model_config *cf = &c->cfg;
    switch (c->points[i].kind) {
    case BL_HOOK_LN1_SCALE:
    case BL_HOOK_LN2_SCALE: return 1;
    case BL_HOOK_ATTN_Q:
    case BL_HOOK_ATTN_Z: return cf->n_heads * cf->head_dim;
    case BL_HOOK_ATTN_K:
    case BL_HOOK_ATTN_V: return cf->n_kv_heads * cf->head_dim;
    case BL_HOOK_ATTN_SCORES:
    case BL_HOOK_ATTN_PATTERN: return -1;
    case BL_HOOK_MLP_PRE:
    case BL_HOOK_MLP_POST: return cf->hidden_dim;
    case BL_HOOK_LOGITS: return cf->n_vocab;
    default: return cf->dim;
    }
}

int bl_ctx_add_hook_at(bl_ctx *c, int64_t i, bl_hook_fn fn, void *user_data)
{
    BL_ASSERT(i >= 0 && i < c->n_points);
    struct hook_point *p = &c->points[i];
    struct hook_sub *s = realloc(p->subs, (size_t)(p->n_subs + 1) * sizeof *s);
    if (!s)
        return BL_ENOMEM;
    s[p->n_subs++] = (struct hook_sub){fn, user_data};
    p->subs = s;
    if (p->kind == BL_HOOK_LOGITS && !c->hook_logits) {
        c->hook_logits = bli_malloc_array((size_t)(c->n_batch * c->cfg.n_vocab), sizeof(float));
        if (!c->hook_logits)
            return BL_ENOMEM;
    }
    if ((p->kind == BL_HOOK_ATTN_SCORES || p->kind == BL_HOOK_ATTN_PATTERN) && !c->scores) {
        size_t n = (size_t)c->n_batch * (size_t)c->cfg.n_heads * (size_t)c->n_ctx;
        if (!(c->scores = bli_malloc_array(n, sizeof(float))))
            return BL_ENOMEM;
    }
    return BL_OK;
}

int bl_ctx_add_hook(bl_ctx *c, const char *glob, bl_hook_fn fn, void *user_data)
{
    int matched = 0;
    for (int64_t i = 0; i < c->n_points; i++) {
        if (fnmatch(glob, c->points[i].name, 0) != 0)
            continue;
        if (bl_ctx_add_hook_at(c, i, fn, user_data))
            return BL_ENOMEM;
        matched++;
    }
    return matched;
}

void bl_ctx_clear_hooks(bl_ctx *c)
{
    for (int64_t i = 0; i < c->n_points; i++) {
        free(c->points[i].subs);
        c->points[i].subs = NULL;
        c->points[i].n_subs = 0;
    }
}

static int fire_slow(bl_ctx *c, struct hook_point *p, int64_t pos0, int64_t n, int64_t width,
                     float *data)
{
    struct bl_hook_event ev = {p->name, p->kind, p->layer, pos0, n, width, data};
    for (int i = 0; i < p->n_subs; i++)
        if (p->subs[i].fn(&ev, p->subs[i].user) != 0)
            return ctx_err(c, BL_ESTOPPED, "stopped by a hook on '%s'", p->name);
    return BL_OK;
}

/* One branch when nothing is attached. */
#define FIRE(kind, layer, data, width)                                                          \
    do {                                                                                        \
        struct hook_point *p_ = c->at[(size_t)(kind) * (size_t)(L + 1) + (size_t)((layer) + 1)]; \
        if (p_->n_subs && (rc = fire_slow(c, p_, pos0, n, (width), (data))))                     \
            return rc;                                                                          \
    } while (0)

/* ------------------------------------------------------------------ alloc */

void bl_ctx_free(bl_ctx *c)
{
    if (!c)
        return;
    bl_ctx_clear_hooks(c);
    if (c->points)
        for (int64_t i = 0; i < c->n_points; i++)
            free(c->points[i].name);
    free(c->points);
    free(c->at);
    free(c->key_cache);
    free(c->value_cache);
    free(c->rope_cos);
    free(c->rope_sin);
    free(c->x);
    free(c->xb);
    free(c->xb2);
    free(c->q);
    free(c->z);
    free(c->hb);
    free(c->hb2);
    free(c->scale);
    free(c->att);
    free(c->wscratch);
    free(c->hook_logits);
    free(c->scores);
    free(c);
}

static int needs_scratch(const struct bli_weight *w)
{
    return w->type != BL_F32;
}

int bl_ctx_alloc(bl_ctx **out, const bl_model *model, const struct bl_ctx_params *params,
                 bl_err *err)
{
    struct bl_ctx_params p = params ? *params : bl_ctx_default_params();
    bl_ctx *c;

    *out = NULL;
    const char *why;
    if (!bl_model_computable(model, &why))
        return bli_err(err, BL_EUNSUPPORTED, "%s", why);
    c = calloc(1, sizeof *c);
    if (!c)
        return bli_err(err, BL_ENOMEM, "out of memory");
    c->model = model;
    c->cfg = *bl_model_config(model);
    c->w = bli_model_weights(model);
    c->n_ctx = p.n_ctx > 0 ? p.n_ctx : c->cfg.ctx_train;
    if (c->cfg.pos_embd && c->n_ctx > c->cfg.ctx_train) {
        int64_t rows = c->cfg.ctx_train;
        bl_ctx_free(c);
        return bli_err(err, BL_ERANGE, "a context of %" PRId64 " positions: %s learned only %" PRId64
                       " position embeddings", p.n_ctx, bl_model_path(model), rows);
    }
    c->n_batch = p.n_batch > 0 ? p.n_batch : 256;
    if (c->n_batch > c->n_ctx)
        c->n_batch = c->n_ctx;
    c->ref = p.kernels == BL_KERNELS_REFERENCE;
    c->n_threads = c->ref ? 1 : bli_threads(p.n_threads);
    bli_blas_single_threaded();
    if (c->n_ctx > (1 << 24)) {
        bl_ctx_free(c);
        return bli_err(err, BL_EINVAL, "context of %" PRId64 " positions is too large", p.n_ctx);
    }

    const struct bl_model_config *cf = &c->cfg;
    size_t B = (size_t)c->n_batch, D = (size_t)cf->dim, F = (size_t)cf->hidden_dim;
    size_t Q = (size_t)(cf->n_heads * cf->head_dim), KV = (size_t)(cf->n_kv_heads * cf->head_dim);
    size_t cache = (size_t)cf->n_layers * (size_t)c->n_ctx * KV;
    size_t half = (size_t)cf->n_rot / 2;

    c->key_cache = bli_malloc_array(cache, sizeof(float));
    c->value_cache = bli_malloc_array(cache, sizeof(float));
    c->rope_cos = bli_malloc_array((size_t)c->n_ctx * half, sizeof(float));
    c->rope_sin = bli_malloc_array((size_t)c->n_ctx * half, sizeof(float));
    c->x = bli_malloc_array(B * D, sizeof(float));
    c->xb = bli_malloc_array(B * D, sizeof(float));
    c->xb2 = bli_malloc_array(B * D, sizeof(float));
    c->q = bli_malloc_array(B * Q, sizeof(float));
    c->z = bli_malloc_array(B * Q, sizeof(float));
    c->hb = bli_malloc_array(B * F, sizeof(float));
    c->hb2 = bli_malloc_array(B * F, sizeof(float));
    c->scale = bli_malloc_array(B, sizeof(float));
    c->att = bli_malloc_array((size_t)c->n_threads * (size_t)c->n_ctx, sizeof(float));
    if (!c->key_cache || !c->value_cache || !c->rope_cos || !c->rope_sin || !c->x || !c->xb ||
        !c->xb2 || !c->q || !c->z || !c->hb || !c->hb2 || !c->scale || !c->att)
        goto nomem;

    /* f16/bf16 matrices are converted a block of rows at a time for sgemm:
     * up to 4M floats, at least one row of the widest matrix */
    int any16 = needs_scratch(&c->w->tok_embd) || needs_scratch(&c->w->output);
    for (int64_t l = 0; l < cf->n_layers; l++) {
        const struct bli_layer *Ly = &c->w->layers[l];
        any16 |= needs_scratch(&Ly->wq) | needs_scratch(&Ly->wk) | needs_scratch(&Ly->wv) |
                 needs_scratch(&Ly->wo) | (Ly->w_gate.data && needs_scratch(&Ly->w_gate)) |
                 needs_scratch(&Ly->w_up) | needs_scratch(&Ly->w_down);
    }
    if (any16 && !c->ref) {
        size_t widest = D > F ? D : F;
        widest = widest > Q ? widest : Q;
        size_t most = (size_t)cf->n_vocab * D;
        c->wscratch_n = most < ((size_t)1 << 22) ? most : ((size_t)1 << 22);
        if (c->wscratch_n < widest * (size_t)c->n_threads)
            c->wscratch_n = widest * (size_t)c->n_threads;
        if (!(c->wscratch = bli_malloc_array(c->wscratch_n, sizeof(float))))
            goto nomem;
    }

    /* RoPE tables in double, rounded once: theta_j = pos * base^(-2j/n_rot),
     * divided by the model's frequency factor j where it has them */
    const float *rf = c->w->rope_factors;
    for (int64_t pos = 0; pos < c->n_ctx; pos++)
        for (size_t j = 0; j < half; j++) {
            double theta = (double)pos * pow((double)cf->rope_base, -2.0 * (double)j / (double)cf->n_rot);
            if (rf)
                theta /= (double)rf[j];
            c->rope_cos[(size_t)pos * half + j] = (float)cos(theta);
            c->rope_sin[(size_t)pos * half + j] = (float)sin(theta);
        }
    if (build_hooks(c))
        goto nomem;
    *out = c;
    return BL_OK;
nomem:
    bl_ctx_free(c);
    return bli_err(err, BL_ENOMEM, "out of memory for a context of %" PRId64 " positions", p.n_ctx > 0 ? p.n_ctx : cf->ctx_train);
}

/* ---------------------------------------------------------------- forward */

static void matmul(bl_ctx *c, const struct bli_weight *w, const float *X, float *Y, int64_t n,
                   int64_t rows, int64_t cols)
{
    if (c->ref)
        bli_matmul_ref(w->type, w->data, X, Y, n, rows, cols);
    else if (c->exact && n > 1)
        bli_matmul_dots(w->type, w->data, X, Y, n, rows, cols, c->n_threads);
    else
        bli_matmul(w->type, w->data, X, Y, n, rows, cols, c->wscratch, c->wscratch_n, c->n_threads);
}

/* Rotate the first n_rot dims of each head: pairs (2j, 2j+1) for the
 * adjacent layout, (j, j + n_rot/2) for the halves layout. */
static void rope(const bl_ctx *c, float *v, int64_t n, int64_t pos0, int64_t n_heads)
{
    int64_t hd = c->cfg.head_dim, half = c->cfg.n_rot / 2, width = n_heads * hd;
    int64_t stride = c->cfg.rope == BL_ROPE_HALVES ? 1 : 2;   /* of the pair's first element */
    int64_t gap = c->cfg.rope == BL_ROPE_HALVES ? half : 1;   /* to its second */
    for (int64_t i = 0; i < n; i++) {
        const float *cs = c->rope_cos + (pos0 + i) * half;
        const float *sn = c->rope_sin + (pos0 + i) * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *r = v + i * width + h * hd;
            for (int64_t j = 0; j < half; j++) {
                float *a = r + j * stride, *b = a + gap;
                float v0 = *a, v1 = *b;
                *a = v0 * cs[j] - v1 * sn[j];
                *b = v0 * sn[j] + v1 * cs[j];
            }
        }
    }
}

/* z[i, h] = sum_t softmax_t(q[i, h] . k[t, g] / sqrt(hd)) v[t, g] over
 * t <= pos0 + i, with g = h / (n_heads / n_kv_heads). */
static void attention(bl_ctx *c, int64_t l, int64_t n, int64_t pos0)
{
    const struct bl_model_config *cf = &c->cfg;
    int64_t H = cf->n_heads, hd = cf->head_dim, KV = cf->n_kv_heads * hd, Q = H * hd;
    int64_t group = H / cf->n_kv_heads;
    const float *kc = c->key_cache + (size_t)l * (size_t)c->n_ctx * (size_t)KV;
    const float *vc = c->value_cache + (size_t)l * (size_t)c->n_ctx * (size_t)KV;
    float sqrt_hd = sqrtf((float)hd);
    int64_t tasks = n * H;
    int64_t work = tasks * (pos0 + n) * hd;
    int nt = work >= (1 << 15) ? c->n_threads : 1;

#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t i = task / H, h = task % H, g = h / group, end = pos0 + i;
#ifdef _OPENMP
        float *att = c->att + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
#else
        float *att = c->att;
#endif
        const float *q = c->q + i * Q + h * hd;
        for (int64_t t = 0; t <= end; t++) {
            const float *k = kc + t * KV + g * hd;
            float s = 0.0f;
            for (int64_t j = 0; j < hd; j++)
                s += q[j] * k[j];
            att[t] = s / sqrt_hd;
        }
        bli_softmax(att, end + 1);
        float *z = c->z + i * Q + h * hd;
        memset(z, 0, (size_t)hd * sizeof *z);
        for (int64_t t = 0; t <= end; t++) {
            const float *v = vc + t * KV + g * hd;
            float a = att[t];
            for (int64_t j = 0; j < hd; j++)
                z[j] += a * v[j];
        }
    }
}

/* out = norm(in) * w (+ b) per row, divisors into c->scale: RMSNorm or
 * LayerNorm as the model uses. */
static void norm_rows(bl_ctx *c, float *out, const float *in, const struct bli_weight *w,
                      const struct bli_weight *b, int64_t n)
{
    int64_t D = c->cfg.dim;
    for (int64_t i = 0; i < n; i++) {
        if (c->cfg.norm == BL_NORM_RMS)
            c->scale[i] = bli_rmsnorm(out + i * D, in + i * D, w->data, D, c->cfg.norm_eps);
        else
            c->scale[i] = bli_layernorm(out + i * D, in + i * D, w->data, b->data, D, c->cfg.norm_eps);
    }
}

/* Y[i] += b for each of n rows of width, if the model has the bias. */
static void add_bias(float *Y, const struct bli_weight *b, int64_t n, int64_t width)
{
    if (!b->data)
        return;
    const float *bv = b->data;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < width; j++)
            Y[i * width + j] += bv[j];
}

/* GELU, tanh approximation (as GPT-2 computes it) */
static float gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

/* Attention through the whole score matrix, for hooks on the scores or
 * the pattern: S [n x H x K] with K = pos0 + n keys, masked entries -inf;
 * the hooks may change S (before the softmax) and the pattern (before it
 * weighs the values). */
static int attention_hooked(bl_ctx *c, int64_t l, int64_t n, int64_t pos0)
{
    const struct bl_model_config *cf = &c->cfg;
    int64_t H = cf->n_heads, hd = cf->head_dim, KV = cf->n_kv_heads * hd, Q = H * hd;
    int64_t group = H / cf->n_kv_heads, K = pos0 + n, L = cf->n_layers;
    const float *kc = c->key_cache + (size_t)l * (size_t)c->n_ctx * (size_t)KV;
    const float *vc = c->value_cache + (size_t)l * (size_t)c->n_ctx * (size_t)KV;
    float sqrt_hd = sqrtf((float)hd), *S = c->scores;
    int nt = n * H * K * hd >= (1 << 15) ? c->n_threads : 1;
    int rc;

#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t task = 0; task < n * H; task++) {
        int64_t i = task / H, h = task % H, g = h / group, end = pos0 + i;
        const float *q = c->q + i * Q + h * hd;
        float *row = S + (i * H + h) * K;
        for (int64_t t = 0; t < K; t++) {
            if (t > end) {
                row[t] = -INFINITY;
                continue;
            }
            const float *k = kc + t * KV + g * hd;
            float s = 0.0f;
            for (int64_t j = 0; j < hd; j++)
                s += q[j] * k[j];
            row[t] = s / sqrt_hd;
        }
    }
    FIRE(BL_HOOK_ATTN_SCORES, l, S, H * K);
    for (int64_t r = 0; r < n * H; r++) {
        int64_t i = r / H;
        bli_softmax(S + r * K, pos0 + i + 1);
        for (int64_t t = pos0 + i + 1; t < K; t++)
            S[r * K + t] = 0.0f;
    }
    FIRE(BL_HOOK_ATTN_PATTERN, l, S, H * K);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t task = 0; task < n * H; task++) {
        int64_t i = task / H, h = task % H, g = h / group;
        const float *a = S + (i * H + h) * K;
        float *z = c->z + i * Q + h * hd;
        memset(z, 0, (size_t)hd * sizeof *z);
        for (int64_t t = 0; t < K; t++) {
            const float *v = vc + t * KV + g * hd;
            for (int64_t j = 0; j < hd; j++)
                z[j] += a[t] * v[j];
        }
    }
    return BL_OK;
}

static int forward(bl_ctx *c, const int32_t *tokens, int64_t n, float *logits, int all)
{
    const struct bl_model_config *cf = &c->cfg;
    const struct bli_weights *w = c->w;
    int64_t L = cf->n_layers, D = cf->dim, F = cf->hidden_dim, V = cf->n_vocab;
    int64_t Q = cf->n_heads * cf->head_dim, KV = cf->n_kv_heads * cf->head_dim;
    int64_t pos0 = c->pos;
    size_t erow = bl_dtype_row_bytes(w->tok_embd.type, D);
    int rc;

    /* x = token embedding rows (+ position embedding rows) */
    for (int64_t i = 0; i < n; i++)
        bl_to_f32(w->tok_embd.type, (const unsigned char *)w->tok_embd.data + (size_t)tokens[i] * erow,
                  c->x + i * D, D);
    FIRE(BL_HOOK_EMBED, -1, c->x, D);
    if (cf->pos_embd) {
        size_t prow = bl_dtype_row_bytes(w->pos_embd.type, D);
        for (int64_t i = 0; i < n; i++)
            bl_to_f32(w->pos_embd.type, (const unsigned char *)w->pos_embd.data + (size_t)(pos0 + i) * prow,
                      c->xb2 + i * D, D);
        FIRE(BL_HOOK_POS_EMBED, -1, c->xb2, D);
        for (int64_t i = 0; i < n * D; i++)
            c->x[i] += c->xb2[i];
    }

    for (int64_t l = 0; l < L; l++) {
        const struct bli_layer *Ly = &w->layers[l];
        float *kc = c->key_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos0) * (size_t)KV;
        float *vc = c->value_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos0) * (size_t)KV;

        FIRE(BL_HOOK_RESID_PRE, l, c->x, D);
        norm_rows(c, c->xb, c->x, &Ly->attn_norm, &Ly->attn_norm_b, n);
        FIRE(BL_HOOK_LN1_SCALE, l, c->scale, 1);
        FIRE(BL_HOOK_LN1_NORMALIZED, l, c->xb, D);

        /* q [n x Q]; k, v [n x KV] straight into the cache */
        if (n == 1 && !c->ref) {
            struct bli_mv mv[3] = {{Ly->wq.type, Ly->wq.data, c->xb, c->q, Q, D},
                                   {Ly->wk.type, Ly->wk.data, c->xb, kc, KV, D},
                                   {Ly->wv.type, Ly->wv.data, c->xb, vc, KV, D}};
            bli_matvec_multi(mv, 3, c->n_threads);
        } else {
            matmul(c, &Ly->wq, c->xb, c->q, n, Q, D);
            matmul(c, &Ly->wk, c->xb, kc, n, KV, D);
            matmul(c, &Ly->wv, c->xb, vc, n, KV, D);
        }
        add_bias(c->q, &Ly->bq, n, Q);
        add_bias(kc, &Ly->bk, n, KV);
        add_bias(vc, &Ly->bv, n, KV);
        FIRE(BL_HOOK_ATTN_Q, l, c->q, Q);
        FIRE(BL_HOOK_ATTN_K, l, kc, KV);
        FIRE(BL_HOOK_ATTN_V, l, vc, KV);
        if (cf->rope != BL_ROPE_NONE) {
            rope(c, c->q, n, pos0, cf->n_heads);
            rope(c, kc, n, pos0, cf->n_kv_heads);
        }

        /* z [n x Q] */
        if (c->scores && (c->at[(size_t)BL_HOOK_ATTN_SCORES * (size_t)(L + 1) + (size_t)(l + 1)]->n_subs ||
                          c->at[(size_t)BL_HOOK_ATTN_PATTERN * (size_t)(L + 1) + (size_t)(l + 1)]->n_subs)) {
            if ((rc = attention_hooked(c, l, n, pos0)))
                return rc;
        } else {
            attention(c, l, n, pos0);
        }
        FIRE(BL_HOOK_ATTN_Z, l, c->z, Q);
        matmul(c, &Ly->wo, c->z, c->xb2, n, D, Q);   /* [n x D] */
        add_bias(c->xb2, &Ly->bo, n, D);
        FIRE(BL_HOOK_ATTN_OUT, l, c->xb2, D);
        for (int64_t i = 0; i < n * D; i++)
            c->x[i] += c->xb2[i];
        FIRE(BL_HOOK_RESID_MID, l, c->x, D);

        norm_rows(c, c->xb, c->x, &Ly->ffn_norm, &Ly->ffn_norm_b, n);
        FIRE(BL_HOOK_LN2_SCALE, l, c->scale, 1);
        FIRE(BL_HOOK_LN2_NORMALIZED, l, c->xb, D);
        if (cf->mlp == BL_MLP_SWIGLU) {
            if (n == 1 && !c->ref) {                     /* gate, up [n x F] */
                struct bli_mv mv[2] = {{Ly->w_gate.type, Ly->w_gate.data, c->xb, c->hb, F, D},
                                       {Ly->w_up.type, Ly->w_up.data, c->xb, c->hb2, F, D}};
                bli_matvec_multi(mv, 2, c->n_threads);
            } else {
                matmul(c, &Ly->w_gate, c->xb, c->hb, n, F, D);
                matmul(c, &Ly->w_up, c->xb, c->hb2, n, F, D);
            }
            FIRE(BL_HOOK_MLP_PRE, l, c->hb, F);
            for (int64_t i = 0; i < n * F; i++) {
                float g = c->hb[i];
                g *= 1.0f / (1.0f + expf(-g));
                c->hb[i] = g * c->hb2[i];
            }
        } else {
            matmul(c, &Ly->w_up, c->xb, c->hb, n, F, D);     /* [n x F] */
            add_bias(c->hb, &Ly->b_up, n, F);
            FIRE(BL_HOOK_MLP_PRE, l, c->hb, F);
            for (int64_t i = 0; i < n * F; i++)
                c->hb[i] = gelu_tanh(c->hb[i]);
        }
        FIRE(BL_HOOK_MLP_POST, l, c->hb, F);
        matmul(c, &Ly->w_down, c->hb, c->xb2, n, D, F);  /* [n x D] */
        add_bias(c->xb2, &Ly->b_down, n, D);
        FIRE(BL_HOOK_MLP_OUT, l, c->xb2, D);
        for (int64_t i = 0; i < n * D; i++)
            c->x[i] += c->xb2[i];
        FIRE(BL_HOOK_RESID_POST, l, c->x, D);
    }

    norm_rows(c, c->xb, c->x, &w->output_norm, &w->output_norm_b, n);
    FIRE(BL_HOOK_LN_FINAL, -1, c->xb, D);

    struct hook_point *lp = c->at[(size_t)BL_HOOK_LOGITS * (size_t)(L + 1)];
    if (!logits && lp->n_subs)
        logits = c->hook_logits;
    if (logits) {
        int64_t rows = all ? n : 1;
        const float *in = all ? c->xb : c->xb + (n - 1) * D;
        matmul(c, &w->output, in, logits, rows, V, D);   /* [rows x V] */
        if (lp->n_subs) {
            int64_t p0 = all ? pos0 : pos0 + n - 1;
            if ((rc = fire_slow(c, lp, p0, rows, V, logits)))
                return rc;
        }
    }
    c->pos += n;
    return BL_OK;
}

int bl_ctx_eval(bl_ctx *c, const int32_t *tokens, int64_t n, float *logits, unsigned flags)
{
    int64_t V = c->cfg.n_vocab;
    int all = (flags & BL_EVAL_ALL_LOGITS) != 0;

    c->exact = (flags & BL_EVAL_EXACT) != 0;
    if (n <= 0)
        return ctx_err(c, BL_EINVAL, "no tokens to evaluate");
    if (n > c->n_ctx - c->pos)
        return ctx_err(c, BL_ERANGE, "%" PRId64 " positions after the %" PRId64 " already filled exceed the context of %" PRId64,
                       n, c->pos, c->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return ctx_err(c, BL_EINVAL, "token id %" PRId32 " at index %" PRId64 " is outside the vocabulary (%" PRId64 ")",
                           tokens[i], i, V);
    for (int64_t done = 0; done < n;) {
        int64_t m = n - done < c->n_batch ? n - done : c->n_batch;
        int last = done + m == n;
        float *out = NULL;
        if (logits && all)
            out = logits + done * V;
        else if (logits && last)
            out = logits;
        int rc = forward(c, tokens + done, m, out, all);
        if (rc)
            return rc;
        done += m;
    }
    return BL_OK;
}
