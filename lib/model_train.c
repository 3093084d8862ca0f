/* lib/model_train.c: train a Llama-family model from scratch
 * (bitlens/train.h; the layout in lib/model_train_internal.h).
 *
 * One window of T positions at a time, forward then backward, all in f32.
 * Shapes: D = dim, H heads of hd = D / H, F = hidden_dim, V = n_vocab; every
 * activation is [T x width], row-major.  Forward, as lib/ctx.c computes it
 * (the same norm and softmax kernels, the same RoPE tables):
 *   x_0 = E[tok]
 *   block l:  n1 = RMSNorm(x_l) g1      r1 = sqrt(mean(x_l^2) + eps) per row
 *             q, k, v = n1 Wq^T, n1 Wk^T, n1 Wv^T; q, k rotated
 *             P_h = softmax(q_h k_h^T / sqrt(hd) + causal mask), z_h = P_h v_h
 *             m_l = x_l + z Wo^T
 *             n2 = RMSNorm(m_l) g2;  a = n2 Wg^T, u = n2 Wu^T
 *             hm = silu(a) u;  x_{l+1} = m_l + hm Wd^T
 *   nf = RMSNorm(x_L) gf,  logits = nf U^T   (U = E when tied)
 * Backward, from dZ = (softmax(logits) - onehot(target)) / (B T):
 *   dU = dZ^T nf,  dnf = dZ U,  dx = RMSNorm'(x_L, gf)^T dnf
 *   block l, from dx = dL/dx_{l+1}, down to l = 0:
 *     dWd = dx^T hm,  dhm = dx Wd
 *     da = dhm u silu'(a),  du = dhm silu(a),  silu'(a) = s (1 + a (1 - s))
 *     dWg = da^T n2,  dWu = du^T n2,  dn2 = da Wg + du Wu
 *     dx += RMSNorm'(m_l, g2)^T dn2                    (now dL/dm_l)
 *     dWo = dx^T z,  dz = dx Wo
 *     per head: dP = dz_h v_h^T,  dS_ij = P_ij (dP_ij - sum_t P_it dP_it) / sqrt(hd),
 *               dq_h = dS k_h,  dk_h = dS^T q_h,  dv_h = P^T dz_h
 *     dq, dk rotated back (the transposed rotation)
 *     dWq = dq^T n1 (k, v alike),  dn1 = dq Wq + dk Wk + dv Wv
 *     dx += RMSNorm'(x_l, g1)^T dn1                    (now dL/dx_l)
 *   dE[tok_i] += dx_i
 * with RMSNorm'(x, g)^T dn = dn g / r - x sum(dn g x) / (D r^3) per row and
 * dg = sum over rows of dn x / r.
 *
 * Matrix products go to cblas_sgemm (single-threaded; attention by blocks
 * of rows so the masked half is mostly skipped); the threads work on whole
 * windows, and a step adds the windows' gradients in window order under
 * `omp ordered`, so the sum is the same whatever the thread count. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <bitlens/gguf.h>
#include <bitlens/train.h>
#include "internal.h"
#include "kernels.h"
#include "model_internal.h"
#include "model_train_internal.h"

/* Attention rows per block: a block's scores cover keys 0..end of its last
 * row only. */
#define ATT_BLOCK 32
/* Floats per piece of the optimizer's work (fixed, so the pieces and their
 * sums do not depend on the thread count). */
#define OPT_CHUNK (1 << 15)

#define ADAM_B1 0.9
#define ADAM_B2 0.95
#define ADAM_EPS 1e-8

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- defaults */

struct bl_model_train_config bl_model_train_default_config(void)
{
    struct bl_model_train_config c = {0};
    c.n_vocab = 0;
    c.dim = 192;
    c.n_layers = 4;
    c.n_heads = 6;
    c.hidden_dim = 512;
    c.n_ctx = 256;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.tied = 1;
    return c;
}

struct bl_model_train_params bl_model_train_default_params(void)
{
    struct bl_model_train_params p = {0};
    p.steps = 3000;
    p.batch = 16;
    p.seq = 256;
    p.lr = 2e-3f;
    p.lr_end = 0.1f;
    p.weight_decay = 0.1f;
    p.clip = 1.0f;
    p.warmup = 100;
    p.seed = 1;
    p.eval_every = 250;
    p.valid_fraction = 0.05;
    p.n_threads = 0;
    return p;
}

/* ---------------------------------------------------------------- the model */

int64_t bl_model_train_n_params(const struct bl_model_train_config *c, int64_t n_vocab)
{
    int64_t D = c->dim, F = c->hidden_dim, V = c->n_vocab > 0 ? c->n_vocab : n_vocab;
    return V * D * (c->tied ? 1 : 2) + c->n_layers * (2 * D + 4 * D * D + 3 * D * F) + D;
}

int bli_mt_check_config(const struct bl_model_train_config *c, int64_t seq, bl_err *err)
{
#define RANGE(v, name, lo, hi)                                                                         \
    if (!((v) >= (lo) && (v) <= (hi)))                                                                 \
        return bli_err(err, BL_EINVAL, "model %s %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", \
                       name, (int64_t)(v), (int64_t)(lo), (int64_t)(hi));
    RANGE(c->n_vocab, "vocabulary size", 1, BLI_MAX_VOCAB);
    RANGE(c->dim, "dim", 2, BLI_MAX_DIM);
    RANGE(c->n_layers, "layers", 1, BLI_MAX_LAYERS);
    RANGE(c->n_heads, "heads", 1, c->dim);
    RANGE(c->hidden_dim, "hidden dim", 1, 16 * BLI_MAX_DIM);
    RANGE(c->n_ctx, "context length", 1, 1 << 20);
#undef RANGE
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2)
        return bli_err(err, BL_EINVAL, "model dim %" PRId64 " over %" PRId64 " heads is not an even head width",
                       c->dim, c->n_heads);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return bli_err(err, BL_EINVAL, "norm epsilon %g is out of range (0, 1)", (double)c->norm_eps);
    if (!(c->rope_theta > 1) || !isfinite(c->rope_theta))
        return bli_err(err, BL_EINVAL, "RoPE base %g must be finite and exceed 1", (double)c->rope_theta);
    if (c->tied != 0 && c->tied != 1)
        return bli_err(err, BL_EINVAL, "tied is %d (0 or 1)", c->tied);
    if (seq > 0 && seq > c->n_ctx)
        return bli_err(err, BL_EINVAL, "windows of %" PRId64 " tokens exceed the context length %" PRId64, seq,
                       c->n_ctx);
    return BL_OK;
}

void bli_mt_free(struct bli_mt *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->layer);
    free(m->tensor);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m);
}

/* Append tensor `name` of shape [ne1 rows x ne0] at offset *n. */
static int64_t add_tensor(struct bli_mt *m, const char *name, int64_t ne0, int64_t ne1, int matrix, int64_t *n)
{
    struct bli_mt_tensor *t = &m->tensor[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->off = *n;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->matrix = matrix;
    *n += ne0 * ne1;
    return t->off;
}

int bli_mt_alloc(struct bli_mt **out, const struct bl_model_train_config *c, bl_err *err)
{
    *out = NULL;
    int rc = bli_mt_check_config(c, 0, err);
    if (rc)
        return rc;
    struct bli_mt *m = calloc(1, sizeof *m);
    if (!m)
        return bli_err(err, BL_ENOMEM, "out of memory");
    m->cfg = *c;
    m->V = c->n_vocab;
    m->D = c->dim;
    m->L = c->n_layers;
    m->H = c->n_heads;
    m->hd = c->dim / c->n_heads;
    m->F = c->hidden_dim;
    int64_t D = m->D, F = m->F, V = m->V, half = m->hd / 2, n = 0;
    char name[48];
    m->layer = bli_calloc((size_t)m->L, sizeof *m->layer);
    m->tensor = bli_calloc((size_t)(9 * m->L + 3), sizeof *m->tensor);
    m->rope_cos = bli_malloc_array((size_t)(c->n_ctx * half), sizeof(float));
    m->rope_sin = bli_malloc_array((size_t)(c->n_ctx * half), sizeof(float));
    if (!m->layer || !m->tensor || !m->rope_cos || !m->rope_sin)
        goto nomem;
    m->embd = add_tensor(m, "token_embd.weight", D, V, 1, &n);
#define LNAME(s) (snprintf(name, sizeof name, "blk.%" PRId64 ".%s", l, (s)), name)
    for (int64_t l = 0; l < m->L; l++) {
        struct bli_mt_layer *ly = &m->layer[l];
        ly->attn_norm = add_tensor(m, LNAME("attn_norm.weight"), D, 1, 0, &n);
        ly->wq = add_tensor(m, LNAME("attn_q.weight"), D, D, 1, &n);
        ly->wk = add_tensor(m, LNAME("attn_k.weight"), D, D, 1, &n);
        ly->wv = add_tensor(m, LNAME("attn_v.weight"), D, D, 1, &n);
        ly->wo = add_tensor(m, LNAME("attn_output.weight"), D, D, 1, &n);
        ly->ffn_norm = add_tensor(m, LNAME("ffn_norm.weight"), D, 1, 0, &n);
        ly->w_gate = add_tensor(m, LNAME("ffn_gate.weight"), D, F, 1, &n);
        ly->w_up = add_tensor(m, LNAME("ffn_up.weight"), D, F, 1, &n);
        ly->w_down = add_tensor(m, LNAME("ffn_down.weight"), F, D, 1, &n);
    }
#undef LNAME
    m->out_norm = add_tensor(m, "output_norm.weight", D, 1, 0, &n);
    m->out = c->tied ? m->embd : add_tensor(m, "output.weight", D, V, 1, &n);
    m->n_params = n;
    if (!(m->params = bli_calloc((size_t)n, sizeof(float))))
        goto nomem;
    /* RoPE as bl_ctx_alloc builds its tables: theta_j = pos * base^(-2j/hd)
     * in double, cos and sin rounded once */
    for (int64_t pos = 0; pos < c->n_ctx; pos++)
        for (int64_t j = 0; j < half; j++) {
            double th = (double)pos * pow((double)c->rope_theta, -2.0 * (double)j / (double)m->hd);
            m->rope_cos[pos * half + j] = (float)cos(th);
            m->rope_sin[pos * half + j] = (float)sin(th);
        }
    *out = m;
    return BL_OK;
nomem:
    bli_mt_free(m);
    return bli_err(err, BL_ENOMEM, "out of memory for a model of dim %" PRId64 ", %" PRId64 " layers and %" PRId64
                   " tokens", D, c->n_layers, V);
}

int bli_mt_init(struct bli_mt *m, uint64_t seed, bl_err *err)
{
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return bli_err(err, BL_ENOMEM, "out of memory");
    gsl_rng_set(g, (unsigned long)(uint32_t)(seed ^ (seed >> 32)));
    double sd = 0.02, sd_proj = 0.02 / sqrt(2.0 * (double)m->L);
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const struct bli_mt_tensor *t = &m->tensor[i];
        float *p = m->params + t->off;
        int64_t n = t->ne0 * t->ne1;
        int proj = 0;
        for (int64_t l = 0; l < m->L; l++)
            proj |= t->off == m->layer[l].wo || t->off == m->layer[l].w_down;
        if (!t->matrix)
            for (int64_t k = 0; k < n; k++)
                p[k] = 1.0f;
        else
            for (int64_t k = 0; k < n; k++)
                p[k] = (float)gsl_ran_gaussian(g, proj ? sd_proj : sd);
    }
    gsl_rng_free(g);
    return BL_OK;
}

/* ---------------------------------------------------------------- workspace */

struct bli_mt_ws {
    int64_t cap;              /* positions it holds */
    float *x;                 /* [(L + 1) x T x D]: the residual entering block
                                 l, then the last block's output */
    float *mid;               /* [L x T x D] the residual after attention */
    float *n1, *n2;           /* [L x T x D] normalized, times the gains */
    float *r1, *r2;           /* [L x T] the norms' divisors */
    float *q, *k, *v, *z;     /* [L x T x D] q and k after RoPE; z attention out */
    float *P;                 /* [L x H x T x T] attention weights, 0 above the
                                 diagonal */
    float *a, *u, *hm;        /* [L x T x F] gate, up, silu(gate) * up */
    float *nf, *rf;           /* [T x D], [T] the final norm */
    float *logits;            /* [T x V]; dL/dlogits in a backward pass */
    float *tmp;               /* [T x D] a block's output before the residual */
    float *dx, *dn, *dq, *dk, *dv, *dz;   /* [T x D] backward */
    float *da, *du;           /* [T x F] backward */
    float *dP;                /* [T x T] one head's dL/dP, then dL/dS */
    float *grad;              /* [n_params] one window's gradient */
};

void bli_mt_ws_free(struct bli_mt_ws *w)
{
    if (!w)
        return;
    float **f[] = {&w->x,  &w->mid, &w->n1, &w->n2, &w->r1, &w->r2, &w->q,   &w->k,  &w->v,  &w->z,
                   &w->P,  &w->a,   &w->u,  &w->hm, &w->nf, &w->rf, &w->logits, &w->tmp, &w->dx, &w->dn,
                   &w->dq, &w->dk,  &w->dv, &w->dz, &w->da, &w->du, &w->dP,  &w->grad};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(*f[i]);
    free(w);
}

struct bli_mt_ws *bli_mt_ws_alloc(const struct bli_mt *m, int64_t T)
{
    BL_ASSERT(T >= 1);
    struct bli_mt_ws *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    size_t L = (size_t)m->L, TD = (size_t)(T * m->D), TF = (size_t)(T * m->F), TT = (size_t)(T * T);
    w->cap = T;
    struct {
        float **p;
        size_t n;
    } b[] = {
        {&w->x, (L + 1) * TD}, {&w->mid, L * TD}, {&w->n1, L * TD}, {&w->n2, L * TD},
        {&w->r1, L * (size_t)T}, {&w->r2, L * (size_t)T}, {&w->q, L * TD}, {&w->k, L * TD},
        {&w->v, L * TD}, {&w->z, L * TD}, {&w->P, L * (size_t)m->H * TT}, {&w->a, L * TF},
        {&w->u, L * TF}, {&w->hm, L * TF}, {&w->nf, TD}, {&w->rf, (size_t)T},
        {&w->logits, (size_t)T * (size_t)m->V}, {&w->tmp, TD}, {&w->dx, TD}, {&w->dn, TD},
        {&w->dq, TD}, {&w->dk, TD}, {&w->dv, TD}, {&w->dz, TD}, {&w->da, TF}, {&w->du, TF},
        {&w->dP, TT}, {&w->grad, (size_t)m->n_params},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (!(*b[i].p = bli_malloc_array(b[i].n, sizeof(float)))) {
            bli_mt_ws_free(w);
            return NULL;
        }
    return w;
}

/* ---------------------------------------------------------------- pieces */

/* C [M x N] = A [M x K] B^T, B [N x K] (+ C when acc); leading dimensions
 * lda, ldb, ldc. */
static void mm_nt(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int64_t M,
                  int64_t N, int64_t K, int acc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                acc ? 1.0f : 0.0f, C, (int)ldc);
}

/* C [M x N] = A [M x K] B, B [K x N] (+ C when acc). */
static void mm_nn(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int64_t M,
                  int64_t N, int64_t K, int acc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                acc ? 1.0f : 0.0f, C, (int)ldc);
}

/* C [M x N] = A^T B, A [K x M], B [K x N] (+ C when acc): a weight
 * gradient summed over K rows. */
static void mm_tn(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int64_t M,
                  int64_t N, int64_t K, int acc)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                acc ? 1.0f : 0.0f, C, (int)ldc);
}

/* Y [T x rows] = X [T x cols] W^T for a weight W [rows x cols]. */
static void linear(const float *X, const float *W, float *Y, int64_t T, int64_t rows, int64_t cols)
{
    mm_nt(X, cols, W, cols, Y, rows, T, rows, cols, 0);
}

/* dL/dx += RMSNorm'(x, g)^T dn and dg += sum over rows of dn * x / r, for
 * rows normalized with divisors r (bli_rmsnorm's). */
static void rmsnorm_back(const float *x, const float *g, const float *r, const float *dn, float *dx, float *dg,
                         int64_t T, int64_t D)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * D, *dt = dn + t * D;
        float inv = 1.0f / r[t];
        double s = 0;
        for (int64_t j = 0; j < D; j++) {
            dg[j] += dt[j] * (inv * xt[j]);
            s += (double)dt[j] * g[j] * xt[j];
        }
        float c = (float)(s * (double)inv * (double)inv * (double)inv / (double)D);
        float *o = dx + t * D;
        for (int64_t j = 0; j < D; j++)
            o[j] += inv * (dt[j] * g[j]) - xt[j] * c;
    }
}

/* Rotate the pairs (2j, 2j+1) of every head of v [T x D] at positions
 * 0..T-1 (back: by minus the angle, the transposed rotation). */
static void rope(const struct bli_mt *m, float *v, int64_t T, int back)
{
    int64_t half = m->hd / 2;
    for (int64_t i = 0; i < T; i++) {
        const float *cs = m->rope_cos + i * half, *sn = m->rope_sin + i * half;
        for (int64_t h = 0; h < m->H; h++) {
            float *r = v + i * m->D + h * m->hd;
            for (int64_t j = 0; j < half; j++) {
                float v0 = r[2 * j], v1 = r[2 * j + 1];
                if (back) {
                    r[2 * j] = v0 * cs[j] + v1 * sn[j];
                    r[2 * j + 1] = v1 * cs[j] - v0 * sn[j];
                } else {
                    r[2 * j] = v0 * cs[j] - v1 * sn[j];
                    r[2 * j + 1] = v0 * sn[j] + v1 * cs[j];
                }
            }
        }
    }
}

/* Causal attention of one block: P [H x T x T], z [T x D]. */
static void attention(const struct bli_mt *m, const float *q, const float *k, const float *v, float *P, float *z,
                      int64_t T)
{
    int64_t D = m->D, hd = m->hd;
    float sqrt_hd = sqrtf((float)hd);
    for (int64_t h = 0; h < m->H; h++) {
        float *Ph = P + h * T * T;
        for (int64_t i0 = 0; i0 < T; i0 += ATT_BLOCK) {
            int64_t i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T, nr = i1 - i0;
            /* scores of rows i0..i1-1 against keys 0..i1-1 */
            mm_nt(q + i0 * D + h * hd, D, k + h * hd, D, Ph + i0 * T, T, nr, i1, hd, 0);
            for (int64_t i = i0; i < i1; i++) {
                float *row = Ph + i * T;
                for (int64_t t = 0; t <= i; t++)
                    row[t] /= sqrt_hd;
                bli_softmax(row, i + 1);
                for (int64_t t = i + 1; t < T; t++)
                    row[t] = 0.0f;
            }
            mm_nn(Ph + i0 * T, T, v + h * hd, D, z + i0 * D + h * hd, D, nr, hd, i1, 0);
        }
    }
}

/* Backward through attention: dq, dk, dv [T x D] from dz (before RoPE's
 * backward). */
static void attention_back(const struct bli_mt *m, struct bli_mt_ws *w, const float *q, const float *k,
                           const float *v, const float *P, int64_t T)
{
    int64_t D = m->D, hd = m->hd;
    float sqrt_hd = sqrtf((float)hd);
    memset(w->dk, 0, (size_t)(T * D) * sizeof(float));
    memset(w->dv, 0, (size_t)(T * D) * sizeof(float));
    for (int64_t h = 0; h < m->H; h++) {
        const float *Ph = P + h * T * T;
        float *dS = w->dP;
        for (int64_t i0 = 0; i0 < T; i0 += ATT_BLOCK) {
            int64_t i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T, nr = i1 - i0;
            /* dP = dz_h v_h^T over keys 0..i1-1 */
            mm_nt(w->dz + i0 * D + h * hd, D, v + h * hd, D, dS + i0 * T, T, nr, i1, hd, 0);
            for (int64_t i = i0; i < i1; i++) {
                const float *p = Ph + i * T;
                float *d = dS + i * T;
                double dot = 0;
                for (int64_t t = 0; t <= i; t++)
                    dot += (double)p[t] * d[t];
                float fd = (float)dot;
                for (int64_t t = 0; t <= i; t++)
                    d[t] = p[t] * (d[t] - fd) / sqrt_hd;
                for (int64_t t = i + 1; t < i1; t++)
                    d[t] = 0.0f;
            }
            /* dq_h = dS k_h; dk_h += dS^T q_h; dv_h += P^T dz_h */
            mm_nn(dS + i0 * T, T, k + h * hd, D, w->dq + i0 * D + h * hd, D, nr, hd, i1, 0);
            mm_tn(dS + i0 * T, T, q + i0 * D + h * hd, D, w->dk + h * hd, D, i1, hd, nr, 1);
            mm_tn(Ph + i0 * T, T, w->dz + i0 * D + h * hd, D, w->dv + h * hd, D, i1, hd, nr, 1);
        }
    }
}

/* ---------------------------------------------------------------- forward */

/* One window: every activation into w, logits into w->logits. */
static void forward(const struct bli_mt *m, struct bli_mt_ws *w, const int32_t *tok, int64_t T)
{
    BL_ASSERT(T >= 1 && T <= w->cap && T <= m->cfg.n_ctx);
    int64_t D = m->D, F = m->F, H = m->H, L = m->L;
    float eps = m->cfg.norm_eps;
    const float *p = m->params;
    for (int64_t i = 0; i < T; i++)
        memcpy(w->x + i * D, p + m->embd + (int64_t)tok[i] * D, (size_t)D * sizeof(float));
    for (int64_t l = 0; l < L; l++) {
        const struct bli_mt_layer *ly = &m->layer[l];
        const float *x = w->x + l * T * D;
        float *xo = w->x + (l + 1) * T * D, *mid = w->mid + l * T * D, *n1 = w->n1 + l * T * D,
              *n2 = w->n2 + l * T * D, *q = w->q + l * T * D, *k = w->k + l * T * D, *v = w->v + l * T * D,
              *z = w->z + l * T * D, *r1 = w->r1 + l * T, *r2 = w->r2 + l * T, *a = w->a + l * T * F,
              *u = w->u + l * T * F, *hm = w->hm + l * T * F;
        for (int64_t i = 0; i < T; i++)
            r1[i] = bli_rmsnorm(n1 + i * D, x + i * D, p + ly->attn_norm, D, eps);
        linear(n1, p + ly->wq, q, T, D, D);
        linear(n1, p + ly->wk, k, T, D, D);
        linear(n1, p + ly->wv, v, T, D, D);
        rope(m, q, T, 0);
        rope(m, k, T, 0);
        attention(m, q, k, v, w->P + l * H * T * T, z, T);
        linear(z, p + ly->wo, w->tmp, T, D, D);
        for (int64_t i = 0; i < T * D; i++)
            mid[i] = x[i] + w->tmp[i];
        for (int64_t i = 0; i < T; i++)
            r2[i] = bli_rmsnorm(n2 + i * D, mid + i * D, p + ly->ffn_norm, D, eps);
        linear(n2, p + ly->w_gate, a, T, F, D);
        linear(n2, p + ly->w_up, u, T, F, D);
        for (int64_t i = 0; i < T * F; i++) {
            float g = a[i];
            g *= 1.0f / (1.0f + expf(-g));   /* as lib/ctx.c */
            hm[i] = g * u[i];
        }
        linear(hm, p + ly->w_down, w->tmp, T, D, F);
        for (int64_t i = 0; i < T * D; i++)
            xo[i] = mid[i] + w->tmp[i];
    }
    const float *xl = w->x + L * T * D;
    for (int64_t i = 0; i < T; i++)
        w->rf[i] = bli_rmsnorm(w->nf + i * D, xl + i * D, p + m->out_norm, D, eps);
    linear(w->nf, p + m->out, w->logits, T, m->V, D);
}

void bli_mt_forward(const struct bli_mt *m, struct bli_mt_ws *w, const int32_t *tok, int64_t T, float *logits)
{
    forward(m, w, tok, T);
    memcpy(logits, w->logits, (size_t)(T * m->V) * sizeof(float));
}

/* ---------------------------------------------------------------- backward */

/* From dL/dlogits in w->logits: this window's gradient into w->grad. */
static void backward(const struct bli_mt *m, struct bli_mt_ws *w, const int32_t *tok, int64_t T)
{
    int64_t D = m->D, F = m->F, H = m->H, L = m->L, V = m->V;
    const float *p = m->params;
    float *g = w->grad;
    size_t td = (size_t)(T * D) * sizeof(float);
    /* classifier (written whole: beta 0), then the final norm */
    mm_tn(w->logits, V, w->nf, D, g + m->out, D, V, D, T, 0);
    if (!m->cfg.tied)
        memset(g + m->embd, 0, (size_t)(V * D) * sizeof(float));
    mm_nn(w->logits, V, p + m->out, D, w->dn, D, T, D, V, 0);
    memset(w->dx, 0, td);
    memset(g + m->out_norm, 0, (size_t)D * sizeof(float));
    rmsnorm_back(w->x + L * T * D, p + m->out_norm, w->rf, w->dn, w->dx, g + m->out_norm, T, D);
    for (int64_t l = L - 1; l >= 0; l--) {
        const struct bli_mt_layer *ly = &m->layer[l];
        const float *x = w->x + l * T * D, *mid = w->mid + l * T * D, *n1 = w->n1 + l * T * D,
                    *n2 = w->n2 + l * T * D, *q = w->q + l * T * D, *k = w->k + l * T * D, *v = w->v + l * T * D,
                    *z = w->z + l * T * D, *r1 = w->r1 + l * T, *r2 = w->r2 + l * T, *a = w->a + l * T * F,
                    *u = w->u + l * T * F, *hm = w->hm + l * T * F;
        /* MLP */
        mm_tn(w->dx, D, hm, F, g + ly->w_down, F, D, F, T, 0);
        mm_nn(w->dx, D, p + ly->w_down, F, w->da, F, T, F, D, 0);   /* dhm */
        for (int64_t i = 0; i < T * F; i++) {
            float ai = a[i], s = 1.0f / (1.0f + expf(-ai)), dh = w->da[i];
            w->du[i] = dh * (ai * s);
            w->da[i] = dh * u[i] * s * (1.0f + ai * (1.0f - s));
        }
        mm_tn(w->da, F, n2, D, g + ly->w_gate, D, F, D, T, 0);
        mm_tn(w->du, F, n2, D, g + ly->w_up, D, F, D, T, 0);
        mm_nn(w->da, F, p + ly->w_gate, D, w->dn, D, T, D, F, 0);
        mm_nn(w->du, F, p + ly->w_up, D, w->dn, D, T, D, F, 1);
        memset(g + ly->ffn_norm, 0, (size_t)D * sizeof(float));
        rmsnorm_back(mid, p + ly->ffn_norm, r2, w->dn, w->dx, g + ly->ffn_norm, T, D);
        /* attention */
        mm_tn(w->dx, D, z, D, g + ly->wo, D, D, D, T, 0);
        mm_nn(w->dx, D, p + ly->wo, D, w->dz, D, T, D, D, 0);
        attention_back(m, w, q, k, v, w->P + l * H * T * T, T);
        rope(m, w->dq, T, 1);
        rope(m, w->dk, T, 1);
        mm_tn(w->dq, D, n1, D, g + ly->wq, D, D, D, T, 0);
        mm_tn(w->dk, D, n1, D, g + ly->wk, D, D, D, T, 0);
        mm_tn(w->dv, D, n1, D, g + ly->wv, D, D, D, T, 0);
        mm_nn(w->dq, D, p + ly->wq, D, w->dn, D, T, D, D, 0);
        mm_nn(w->dk, D, p + ly->wk, D, w->dn, D, T, D, D, 1);
        mm_nn(w->dv, D, p + ly->wv, D, w->dn, D, T, D, D, 1);
        memset(g + ly->attn_norm, 0, (size_t)D * sizeof(float));
        rmsnorm_back(x, p + ly->attn_norm, r1, w->dn, w->dx, g + ly->attn_norm, T, D);
    }
    for (int64_t i = 0; i < T; i++) {
        float *ge = g + m->embd + (int64_t)tok[i] * D;
        for (int64_t j = 0; j < D; j++)
            ge[j] += w->dx[i * D + j];
    }
}

/* The summed cross-entropy (nats) of window tok[0..T] (inputs 0..T-1,
 * targets 1..T); with want_grad, its gradient times `scale` into w->grad. */
static double window_loss(const struct bli_mt *m, struct bli_mt_ws *w, const int32_t *tok, int64_t T, float scale,
                          int want_grad)
{
    int64_t V = m->V;
    forward(m, w, tok, T);
    double ce = 0;
    for (int64_t i = 0; i < T; i++) {
        float *z = w->logits + i * V;
        int32_t t = tok[i + 1];
        float mx = z[0];
        for (int64_t j = 1; j < V; j++)
            mx = z[j] > mx ? z[j] : mx;
        float zt = z[t];
        double s = 0;
        for (int64_t j = 0; j < V; j++) {
            float e = expf(z[j] - mx);
            s += e;
            z[j] = e;
        }
        ce += log(s) + (double)mx - (double)zt;
        if (want_grad) {
            float c = (float)((double)scale / s);
            for (int64_t j = 0; j < V; j++)
                z[j] *= c;
            z[t] -= scale;
        }
    }
    if (want_grad)
        backward(m, w, tok, T);
    return ce;
}

/* The mean loss of B windows of T + 1 tokens and (grad not NULL) its
 * gradient, summed in window order; one workspace per thread (nt). */
static double batch_loss(const struct bli_mt *m, struct bli_mt_ws **ws, int nt, const int32_t *tok, int64_t B,
                         int64_t T, float *grad, double *lw)
{
    int64_t np = m->n_params;
    float scale = (float)(1.0 / ((double)B * (double)T));
    if (grad)
        memset(grad, 0, (size_t)np * sizeof(float));
    if (nt > B)
        nt = (int)B;
#pragma omp parallel for ordered schedule(static, 1) num_threads(nt) if (nt > 1)
    for (int64_t b = 0; b < B; b++) {
        struct bli_mt_ws *w = ws[thread_id()];
        lw[b] = window_loss(m, w, tok + b * (T + 1), T, scale, grad != NULL);
#pragma omp ordered
        if (grad) {
            const float *gw = w->grad;
            for (int64_t i = 0; i < np; i++)
                grad[i] += gw[i];
        }
    }
    double sum = 0;
    for (int64_t b = 0; b < B; b++)
        sum += lw[b];
    return sum / ((double)B * (double)T);
}

double bli_mt_loss(const struct bli_mt *m, const int32_t *tok, int64_t B, int64_t T, float *grad, int n_threads)
{
    int nt = bli_threads(n_threads);
    if (nt > B)
        nt = (int)B;
    struct bli_mt_ws **ws = bli_calloc((size_t)nt, sizeof *ws);
    double *lw = bli_malloc_array((size_t)B, sizeof *lw), loss = NAN;
    int ok = ws && lw;
    for (int i = 0; ok && i < nt; i++)
        ok = (ws[i] = bli_mt_ws_alloc(m, T)) != NULL;
    if (ok) {
        bli_blas_single_threaded();
        loss = batch_loss(m, ws, nt, tok, B, T, grad, lw);
    }
    for (int i = 0; ws && i < nt; i++)
        bli_mt_ws_free(ws[i]);
    free(ws);
    free(lw);
    return loss;
}

/* ---------------------------------------------------------------- writing */

int bli_mt_write_gguf(const struct bli_mt *m, const bl_tokenizer *tok, const char *name, const char *path,
                      bl_err *err)
{
    const struct bl_model_train_config *c = &m->cfg;
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    int rc = BL_OK;
    if (!w)
        return bli_err(err, BL_ENOMEM, "out of memory");
    BLI_TRY(bl_gguf_writer_set_str(w, "general.architecture", "llama"));
    BLI_TRY(bl_gguf_writer_set_str(w, "general.name", name ? name : "bitlens-llama"));
    BLI_TRY(bl_gguf_writer_set_u32(w, "general.file_type", 0));   /* all f32 */
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)m->D));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)m->F));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)m->L));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)m->H));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)m->H));
    BLI_TRY(bl_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)m->hd));
    BLI_TRY(bl_gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_theta));
    BLI_TRY(bl_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)m->V));
    if (tok && (rc = bl_tokenizer_write_gguf(tok, w, m->V))) {
        rc = bli_err(err, rc, "%s: the vocabulary (%s) cannot be written as GGUF keys (%s)", path,
                     bl_tokenizer_model(tok), bl_strerror(rc));
        goto done;
    }
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const struct bli_mt_tensor *t = &m->tensor[i];
        int64_t ne[2] = {t->ne0, t->ne1};
        BLI_TRY(bl_gguf_writer_add_tensor(w, t->name, BL_F32, t->matrix ? 2 : 1, ne, m->params + t->off));
    }
    rc = bl_gguf_writer_write(w, path, err);
    goto done;
fail:
    rc = bli_err(err, rc, "%s: cannot build the GGUF metadata and tensors (%s)", path, bl_strerror(rc));
done:
    bl_gguf_writer_free(w);
    return rc;
}

/* ---------------------------------------------------------------- training */

/* A piece of the optimizer's work: floats [off, off + n) of one tensor. */
struct opt_piece {
    int64_t off, n;
    int decay;
};

/* The step's learning rate: linear warm-up, then a cosine to lr_end * lr
 * at the last step. */
static double rate(const struct bl_model_train_params *p, int64_t s)
{
    if (s < p->warmup)
        return (double)p->lr * (double)(s + 1) / (double)p->warmup;
    int64_t span = p->steps - 1 - p->warmup;
    double f = span > 0 ? (double)(s - p->warmup) / (double)span : 0.0;
    double c = 0.5 * (1.0 + cos(M_PI * f));
    return (double)p->lr * ((double)p->lr_end + (1.0 - (double)p->lr_end) * c);
}

/* One AdamW step s (0-based): clip g to a global norm of p->clip, update
 * the moments mo, ve and the parameters.  Pieces are fixed, so the bits do
 * not depend on nt. */
static void adamw(struct bli_mt *m, const float *g, float *mo, float *ve, const struct opt_piece *pc, int64_t n_pc,
                  double *part, int64_t s, const struct bl_model_train_params *p, int nt)
{
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < n_pc; c++) {
        double acc = 0;
        const float *gc = g + pc[c].off;
        for (int64_t i = 0; i < pc[c].n; i++)
            acc += (double)gc[i] * gc[i];
        part[c] = acc;
    }
    double gn = 0;
    for (int64_t c = 0; c < n_pc; c++)
        gn += part[c];
    gn = sqrt(gn);
    float gs = p->clip > 0 && gn > p->clip ? (float)(p->clip / gn) : 1.0f;
    double lr = rate(p, s);
    float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2;
    float bc1 = (float)(1.0 - pow(ADAM_B1, (double)(s + 1))), bc2 = (float)(1.0 - pow(ADAM_B2, (double)(s + 1)));
    float flr = (float)lr, wd = p->weight_decay, eps = (float)ADAM_EPS;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < n_pc; c++) {
        float *th = m->params + pc[c].off, *mc = mo + pc[c].off, *vc = ve + pc[c].off;
        const float *gc = g + pc[c].off;
        float dec = pc[c].decay ? wd : 0.0f;
        for (int64_t i = 0; i < pc[c].n; i++) {
            float gi = gc[i] * gs;
            mc[i] = b1 * mc[i] + (1.0f - b1) * gi;
            vc[i] = b2 * vc[i] + (1.0f - b2) * gi * gi;
            float step = (mc[i] / bc1) / (sqrtf(vc[i] / bc2) + eps) + dec * th[i];
            th[i] -= flr * step;
        }
    }
}

/* Uniform in [0, n), n >= 1. */
static int64_t draw(gsl_rng *r, int64_t n)
{
    if (n <= (int64_t)0xffffffff)
        return (int64_t)gsl_rng_uniform_int(r, (unsigned long)n);
    uint64_t hi = gsl_rng_get(r), lo = gsl_rng_get(r);
    return (int64_t)(((hi << 32) | lo) % (uint64_t)n);
}

/* The mean loss over the held-out windows (NAN without any). */
static double evaluate(const struct bli_mt *m, struct bli_mt_ws **ws, int nt, const int32_t *valid, int64_t n_win,
                       int64_t T, double *lw)
{
    if (n_win == 0)
        return NAN;
    if (nt > n_win)
        nt = (int)n_win;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t b = 0; b < n_win; b++)
        lw[b] = window_loss(m, ws[thread_id()], valid + b * T, T, 0.0f, 0);
    double sum = 0;
    for (int64_t b = 0; b < n_win; b++)
        sum += lw[b];
    return sum / ((double)n_win * (double)T);
}

static int check_params(const struct bl_model_train_params *p, bl_err *err)
{
    if (p->steps < 0)
        return bli_err(err, BL_EINVAL, "%" PRId64 " training steps", p->steps);
    if (p->batch < 1 || p->batch > (1 << 20))
        return bli_err(err, BL_EINVAL, "batch of %" PRId64 " windows is out of range [1, %d]", p->batch, 1 << 20);
    if (p->seq < 1 || p->seq > BLI_MT_MAX_SEQ)
        return bli_err(err, BL_EINVAL, "windows of %" PRId64 " tokens are out of range [1, %d]", p->seq,
                       BLI_MT_MAX_SEQ);
    if (!(p->lr > 0) || !isfinite(p->lr))
        return bli_err(err, BL_EINVAL, "learning rate %g must be positive", (double)p->lr);
    if (!(p->lr_end >= 0 && p->lr_end <= 1))
        return bli_err(err, BL_EINVAL, "final learning-rate fraction %g is out of range [0, 1]", (double)p->lr_end);
    if (!(p->weight_decay >= 0) || !isfinite(p->weight_decay))
        return bli_err(err, BL_EINVAL, "weight decay %g must be finite and >= 0", (double)p->weight_decay);
    if (!(p->clip >= 0) || !isfinite(p->clip))
        return bli_err(err, BL_EINVAL, "gradient clip %g must be finite and >= 0", (double)p->clip);
    if (p->warmup < 0 || p->eval_every < 0)
        return bli_err(err, BL_EINVAL, "warm-up %" PRId64 " and eval_every %" PRId64 " must be >= 0", p->warmup,
                       p->eval_every);
    if (!(p->valid_fraction >= 0 && p->valid_fraction < 1))
        return bli_err(err, BL_EINVAL, "held-out fraction %g is out of range [0, 1)", p->valid_fraction);
    return BL_OK;
}

int bl_model_train(const bl_tokenizer *tok, const int32_t *ids, int64_t n_ids, const struct bl_model_train_config *c,
                   const struct bl_model_train_params *p, const char *out_path, struct bl_model_train_stats *stats,
                   bl_err *err)
{
    struct bl_model_train_stats st = {0};
    st.train_loss = st.valid_loss = st.valid_loss_start = NAN;
    if (stats)
        *stats = st;
    struct bl_model_train_config cfg = *c;
    int64_t n_tok = tok ? bl_tokenizer_n_vocab(tok) : 0;
    if (cfg.n_vocab == 0)
        cfg.n_vocab = n_tok;
    if (cfg.n_vocab <= 0)
        return bli_err(err, BL_EINVAL, "no vocabulary: give a tokenizer or a vocabulary size");
    if (cfg.n_vocab < n_tok)
        return bli_err(err, BL_EINVAL, "an embedding of %" PRId64 " rows cannot hold the tokenizer's %" PRId64 " tokens",
                       cfg.n_vocab, n_tok);
    int rc = bli_mt_check_config(&cfg, p->seq, err);
    if (rc || (rc = check_params(p, err)))
        return rc;
    if (!out_path)
        return bli_err(err, BL_EINVAL, "no output file");
    if (!ids || n_ids < 0)
        return bli_err(err, BL_EINVAL, "no corpus");
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= cfg.n_vocab)
            return bli_err(err, BL_EINVAL, "token id %" PRId32 " at index %" PRId64 " is outside the vocabulary (%" PRId64 ")",
                           ids[i], i, cfg.n_vocab);
    int64_t T = p->seq, B = p->batch;
    int64_t n_valid = (int64_t)floor((double)n_ids * p->valid_fraction), n_train = n_ids - n_valid;
    if (n_train < T + 1)
        return bli_err(err, BL_EINVAL, "a training part of %" PRId64 " tokens is too short for a window of %" PRId64
                       " + 1", n_train, T);
    int64_t n_win = n_valid >= T + 1 ? (n_valid - 1) / T : 0;
    st.n_train_tokens = n_train;
    st.n_valid_tokens = n_valid;
    st.n_valid_windows = n_win;

    double t0 = now();
    struct bli_mt *m = NULL;
    struct bli_mt_ws **ws = NULL;
    float *g = NULL, *mo = NULL, *ve = NULL;
    int32_t *btok = NULL;
    double *lw = NULL, *part = NULL;
    struct opt_piece *pc = NULL;
    gsl_rng *rng = NULL;
    int nt = bli_threads(p->n_threads), nws = 1;
    if ((rc = bli_mt_alloc(&m, &cfg, err)) || (rc = bli_mt_init(m, p->seed, err)))
        goto out;
    st.n_params = m->n_params;
    /* optimizer pieces, tensor by tensor */
    int64_t n_pc = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        n_pc += (m->tensor[i].ne0 * m->tensor[i].ne1 + OPT_CHUNK - 1) / OPT_CHUNK;
    /* workspaces: one per thread that has a window to work on */
    nws = nt;
    if (nws > B && nws > n_win)
        nws = (int)(B > n_win ? B : n_win);
    ws = bli_calloc((size_t)nws, sizeof *ws);
    g = bli_malloc_array((size_t)m->n_params, sizeof *g);
    mo = bli_calloc((size_t)m->n_params, sizeof *mo);
    ve = bli_calloc((size_t)m->n_params, sizeof *ve);
    btok = bli_malloc_array((size_t)(B * (T + 1)), sizeof *btok);
    lw = bli_malloc_array((size_t)(B > n_win ? B : n_win), sizeof *lw);
    part = bli_malloc_array((size_t)n_pc, sizeof *part);
    pc = bli_malloc_array((size_t)n_pc, sizeof *pc);
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    int ok = ws && g && mo && ve && btok && lw && part && pc && rng;
    for (int i = 0; ok && i < nws; i++)
        ok = (ws[i] = bli_mt_ws_alloc(m, T)) != NULL;
    if (!ok) {
        rc = bli_err(err, BL_ENOMEM, "out of memory for training %" PRId64 " parameters on %d threads with windows of %"
                     PRId64 " tokens", m->n_params, nws, T);
        goto out;
    }
    n_pc = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const struct bli_mt_tensor *t = &m->tensor[i];
        int64_t n = t->ne0 * t->ne1;
        for (int64_t o = 0; o < n; o += OPT_CHUNK, n_pc++) {
            pc[n_pc].off = t->off + o;
            pc[n_pc].n = n - o < OPT_CHUNK ? n - o : OPT_CHUNK;
            pc[n_pc].decay = t->matrix;
        }
    }
    gsl_rng_set(rng, (unsigned long)(uint32_t)(p->seed ^ (p->seed >> 32)) + 101);
    bli_blas_single_threaded();

    const int32_t *valid = ids + n_train;
    st.valid_loss_start = st.valid_loss = evaluate(m, ws, nws, valid, n_win, T, lw);
    if (p->progress && p->progress(p->progress_user, 0, p->steps, NAN, st.valid_loss)) {
        rc = bli_err(err, BL_ESTOPPED, "stopped before the first step");
        goto out;
    }
    double run_loss = 0, t_steps = 0;
    int64_t run_n = 0;
    for (int64_t s = 0; s < p->steps; s++) {
        double ts = now();
        for (int64_t b = 0; b < B; b++) {
            int64_t start = draw(rng, n_train - T);
            memcpy(btok + b * (T + 1), ids + start, (size_t)(T + 1) * sizeof(int32_t));
        }
        double loss = batch_loss(m, ws, nws, btok, B, T, g, lw);
        if (!isfinite(loss)) {
            rc = bli_err(err, BL_EINVAL, "the training loss is %g at step %" PRId64 " (learning rate %g too high?)",
                         loss, s + 1, rate(p, s));
            goto out;
        }
        adamw(m, g, mo, ve, pc, n_pc, part, s, p, nt);
        t_steps += now() - ts;
        run_loss += loss;
        run_n++;
        st.steps = s + 1;
        st.tokens = st.steps * B * T;
        if (!(p->eval_every > 0 && (s + 1) % p->eval_every == 0) && s + 1 != p->steps)
            continue;
        st.train_loss = run_loss / (double)run_n;
        run_loss = 0;
        run_n = 0;
        st.valid_loss = evaluate(m, ws, nws, valid, n_win, T, lw);
        if (p->progress && p->progress(p->progress_user, s + 1, p->steps, st.train_loss, st.valid_loss)) {
            rc = bli_err(err, BL_ESTOPPED, "stopped at step %" PRId64, s + 1);
            goto out;
        }
    }
    st.tokens_per_second = t_steps > 0 ? (double)st.tokens / t_steps : NAN;
    rc = bli_mt_write_gguf(m, tok, p->name, out_path, err);
out:
    st.seconds = now() - t0;
    if (stats)
        *stats = st;
    for (int i = 0; ws && i < nws; i++)
        bli_mt_ws_free(ws[i]);
    free(ws);
    free(g);
    free(mo);
    free(ve);
    free(btok);
    free(lw);
    free(part);
    free(pc);
    if (rng)
        gsl_rng_free(rng);
    bli_mt_free(m);
    return rc;
}
