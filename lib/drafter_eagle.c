/* lib/drafter_eagle.c: the EAGLE-style drafter layer (lib/drafter_eagle.h):
 * forward over a window, loss, analytic backward, greedy drafting.
 *
 * Backward, given dZ = dL/dZ (softmax(z_i) - onehot(target_i)) / n_tok on
 * rows with a token target, 0 elsewhere:
 *   dG  = dZ U + 2 lambda / (n_feat d) (G - ftgt)   on rows with a feature target
 *   dWd = dG^T Hm,  dHm = dG Wd                     Hm = SiLU(Gt) * Up
 *   dGt = dHm * Up * SiLU'(Gt),  dUp = dHm * SiLU(Gt)
 *   dWg = dGt^T N2,  dWu = dUp^T N2,  dN2 = dGt Wg + dUp Wu
 *   dA  = dG + RMSNorm'(A, g2)^T dN2,  dg2
 *   dWo = dA^T O,  dO = dA Wo
 *   attention, head by head (S = q k^T / sqrt(dh), P = softmax(S)):
 *     dP_ij = dO_i . v_j,  dS_ij = P_ij (dP_ij - sum_l P_il dP_il)   j <= i
 *     dq_i = sum_j dS_ij k_j / sqrt(dh),  dk_j = sum_i dS_ij q_i / sqrt(dh),
 *     dv_j = sum_i P_ij dO_i
 *   dq, dk rotated back (RoPE by -angle)
 *   dWq = dQ^T N1 (and k, v),  dN1 = dQ Wq + dK Wk + dV Wv
 *   dU  = dA + RMSNorm'(U, g1)^T dN1,  dg1
 *   dWfc = dU^T X,  dbfc = sum over rows of dU
 * with RMSNorm'(x, g)^T dn = r (dn g - xh mean(dn g xh)), xh = x r,
 * r = 1/sqrt(mean(x^2) + eps), and dg = sum over rows of dn xh.
 *
 * The matrix products go to cblas_sgemm; attention, the norms and RoPE are
 * plain loops (windows are short). */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "drafter_eagle.h"
#include "internal.h"
#include "model_internal.h"
#include <bitlens/drafter.h>
#include <bitlens/tensor.h>

/* ---------------------------------------------------------------- setup */

static const char *const tensor_names[BLI_EAGLE_N_TENSORS] = {
    "fc.weight", "fc.bias", "norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight",
    "attn.o.weight", "norm2.weight", "mlp.gate.weight", "mlp.up.weight", "mlp.down.weight",
};

const char *bli_eagle_tensor_name(int t)
{
    BL_ASSERT(t >= 0 && t < BLI_EAGLE_N_TENSORS);
    return tensor_names[t];
}

void bli_eagle_free(struct bli_eagle *e)
{
    if (!e)
        return;
    free(e->params);
    free(e->unembed_buf);
    free(e->embed_buf);
    free(e);
}

/* An f32 copy [V x d] of a model weight. */
static float *to_f32(const struct bli_weight *w, int64_t V, int64_t d)
{
    float *out = bli_malloc_array((size_t)(V * d), sizeof(float));
    if (!out)
        return NULL;
    size_t row = bl_dtype_row_bytes(w->type, d);
    for (int64_t v = 0; v < V; v++)
        bl_to_f32(w->type, (const unsigned char *)w->data + (size_t)v * row, out + v * d, d);
    return out;
}

int bli_eagle_alloc(struct bli_eagle **out, const bl_model *model, const float *unembed, int64_t m, float lambda,
                    bl_err *err)
{
    *out = NULL;
    const struct bl_model_config *mc = bl_model_config(model);
    const struct bli_weights *mw = bli_model_weights(model);
    int64_t d = mc->dim, H = mc->n_heads, V = mc->n_vocab;
    if (H < 1 || d % H != 0 || (d / H) % 2 != 0)
        return bli_err(err, BL_EINVAL, "%s: dim %" PRId64 " over %" PRId64 " heads is not an even head width",
                       bl_model_path(model), d, H);
    if (m < 0 || m > BL_DRAFTER_MAX_WIDTH)
        return bli_err(err, BL_EINVAL, "EAGLE hidden width %" PRId64 ": 0 (4 d) to %d", m, BL_DRAFTER_MAX_WIDTH);
    if (!isfinite(lambda))
        return bli_err(err, BL_EINVAL, "EAGLE feature loss weight %g is not finite", (double)lambda);
    if (!mw->tok_embd.data || !bl_dtype_supported(mw->tok_embd.type))
        return bli_err(err, BL_EUNSUPPORTED, "%s: no token embedding an EAGLE layer can read",
                       bl_model_path(model));
    if (!unembed && (!mw->output.data || !bl_dtype_supported(mw->output.type)))
        return bli_err(err, BL_EUNSUPPORTED, "%s: no unembedding an EAGLE layer can read out through",
                       bl_model_path(model));
    struct bli_eagle *e = calloc(1, sizeof *e);
    if (!e)
        return bli_err(err, BL_ENOMEM, "out of memory");
    e->d = d;
    e->H = H;
    e->dh = d / H;
    e->m = m ? m : 4 * d;
    e->V = V;
    e->eps = mc->norm_eps > 0 ? mc->norm_eps : 1e-5f;
    e->lambda = lambda < 0 ? BLI_EAGLE_DEFAULT_LAMBDA : lambda;
    int64_t sz[BLI_EAGLE_N_TENSORS] = {
        [BLI_EAGLE_WFC] = d * 2 * d, [BLI_EAGLE_BFC] = d, [BLI_EAGLE_G1] = d,
        [BLI_EAGLE_WQ] = d * d,      [BLI_EAGLE_WK] = d * d, [BLI_EAGLE_WV] = d * d,
        [BLI_EAGLE_WO] = d * d,      [BLI_EAGLE_G2] = d,
        [BLI_EAGLE_WG] = e->m * d,   [BLI_EAGLE_WU] = e->m * d, [BLI_EAGLE_WD] = d * e->m,
    };
    int64_t n = 0;
    for (int t = 0; t < BLI_EAGLE_N_TENSORS; t++) {
        e->off[t] = n;
        e->size[t] = sz[t];
        n += sz[t];
    }
    e->n_params = n;
    e->params = bli_calloc((size_t)n, sizeof(float));
    e->embed_buf = to_f32(&mw->tok_embd, V, d);
    if (!unembed)
        e->unembed_buf = to_f32(&mw->output, V, d);
    if (!e->params || !e->embed_buf || (!unembed && !e->unembed_buf))
        goto fail;
    e->embed = e->embed_buf;
    e->unembed = unembed ? unembed : e->unembed_buf;
    *out = e;
    return BL_OK;
fail:
    bli_eagle_free(e);
    return bli_err(err, BL_ENOMEM, "out of memory for an EAGLE layer of %" PRId64 " parameters", n);
}

int bli_eagle_init(struct bli_eagle *e, uint64_t seed, bl_err *err)
{
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return bli_err(err, BL_ENOMEM, "out of memory");
    gsl_rng_set(g, (unsigned long)(seed ^ (seed >> 32)) + 11);
    int64_t d = e->d;
    memset(e->params, 0, (size_t)e->n_params * sizeof(float));
    float *wfc = e->params + e->off[BLI_EAGLE_WFC];
    double sfc = 1.0 / sqrt(2.0 * (double)d), sd = 1.0 / sqrt((double)d);
    for (int64_t r = 0; r < d; r++) {
        wfc[r * 2 * d + r] = 1.0f;            /* f-half: the identity */
        for (int64_t c = d; c < 2 * d; c++)   /* E-half: N(0, 1/(2d)) */
            wfc[r * 2 * d + c] = (float)gsl_ran_gaussian(g, sfc);
    }
    static const int normal[] = {BLI_EAGLE_WQ, BLI_EAGLE_WK, BLI_EAGLE_WV, BLI_EAGLE_WG, BLI_EAGLE_WU};
    for (size_t k = 0; k < sizeof normal / sizeof normal[0]; k++) {
        float *p = e->params + e->off[normal[k]];
        for (int64_t i = 0; i < e->size[normal[k]]; i++)
            p[i] = (float)gsl_ran_gaussian(g, sd);
    }
    for (int64_t i = 0; i < d; i++) {
        e->params[e->off[BLI_EAGLE_G1] + i] = 1.0f;
        e->params[e->off[BLI_EAGLE_G2] + i] = 1.0f;
    }
    gsl_rng_free(g);
    return BL_OK;
}

void bli_eagle_ws_release(struct bli_eagle_ws *w)
{
    float **f[] = {&w->X,  &w->U,  &w->N1, &w->Q,  &w->K,  &w->Vv,  &w->O,  &w->A,  &w->N2, &w->G,
                   &w->R1, &w->R2, &w->P,  &w->Gt, &w->Up, &w->Hm,  &w->Z,  &w->cs, &w->sn, &w->dG,
                   &w->dA, &w->dN, &w->dO, &w->dQ, &w->dK, &w->dV,  &w->dU, &w->dGt, &w->dUp, &w->fx};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(*f[i]);
    free(w->yx);
    memset(w, 0, sizeof *w);
}

int bli_eagle_ws_init(struct bli_eagle_ws *w, const struct bli_eagle *e, int64_t cap, bl_err *err)
{
    memset(w, 0, sizeof *w);
    if (cap < 1 || cap > (1 << 16))
        return bli_err(err, BL_ERANGE, "EAGLE window of %" PRId64 " steps: 1 to %d", cap, 1 << 16);
    int64_t d = e->d, m = e->m;
    size_t cd = (size_t)(cap * d), cm = (size_t)(cap * m);
    w->cap = cap;
    w->X = bli_malloc_array(2 * cd, sizeof(float));
    float **dbufs[] = {&w->U,  &w->N1, &w->Q,  &w->K,  &w->Vv, &w->O,  &w->A,  &w->N2, &w->G,
                       &w->dG, &w->dA, &w->dN, &w->dO, &w->dQ, &w->dK, &w->dV, &w->dU, &w->fx};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++)
        *dbufs[i] = bli_malloc_array(cd, sizeof(float));
    float **mbufs[] = {&w->Gt, &w->Up, &w->Hm, &w->dGt, &w->dUp};
    for (size_t i = 0; i < sizeof mbufs / sizeof mbufs[0]; i++)
        *mbufs[i] = bli_malloc_array(cm, sizeof(float));
    w->R1 = bli_malloc_array((size_t)cap, sizeof(float));
    w->R2 = bli_malloc_array((size_t)cap, sizeof(float));
    w->P = bli_calloc((size_t)(e->H * cap * cap), sizeof(float));
    w->Z = bli_malloc_array((size_t)(cap * e->V), sizeof(float));
    w->cs = bli_malloc_array((size_t)(cap * e->dh / 2), sizeof(float));
    w->sn = bli_malloc_array((size_t)(cap * e->dh / 2), sizeof(float));
    w->yx = bli_malloc_array((size_t)cap, sizeof(int32_t));
    int bad = !w->X || !w->R1 || !w->R2 || !w->P || !w->Z || !w->cs || !w->sn || !w->yx;
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++)
        bad |= !*dbufs[i];
    for (size_t i = 0; i < sizeof mbufs / sizeof mbufs[0]; i++)
        bad |= !*mbufs[i];
    if (bad) {
        bli_eagle_ws_release(w);
        return bli_err(err, BL_ENOMEM, "out of memory for an EAGLE window of %" PRId64 " steps", cap);
    }
    return BL_OK;
}

/* ---------------------------------------------------------------- pieces */

static float sigmoidf(float a)
{
    return 1.0f / (1.0f + expf(-a));
}

/* out = x r g row by row, r[t] = 1/sqrt(mean(x_t^2) + eps). */
static void rmsnorm(const float *x, const float *g, float *out, float *r, int64_t T, int64_t d, float eps)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * d;
        double ss = 0;
        for (int64_t k = 0; k < d; k++)
            ss += (double)xt[k] * xt[k];
        float rt = (float)(1.0 / sqrt(ss / (double)d + eps));
        r[t] = rt;
        for (int64_t k = 0; k < d; k++)
            out[t * d + k] = xt[k] * rt * g[k];
    }
}

/* dx += RMSNorm'(x, g)^T dn, dg += sum over rows of dn * x r. */
static void rmsnorm_back(const float *x, const float *g, const float *r, const float *dn, float *dx, float *dg,
                         int64_t T, int64_t d)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * d, *dt = dn + t * d;
        float rt = r[t];
        double s = 0;
        for (int64_t k = 0; k < d; k++) {
            float xh = xt[k] * rt;
            dg[k] += dt[k] * xh;
            s += (double)dt[k] * g[k] * xh;
        }
        float mean = (float)(s / (double)d);
        for (int64_t k = 0; k < d; k++)
            dx[t * d + k] += rt * (dt[k] * g[k] - xt[k] * rt * mean);
    }
}

/* Rotate the pairs (2j, 2j+1) of each head of v [T x d] by the angles of
 * w->cs, w->sn (sign +1), or back (sign -1). */
static void rope(const struct bli_eagle *e, const struct bli_eagle_ws *w, float *v, int64_t T, float sign)
{
    int64_t half = e->dh / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < e->H; h++) {
            float *p = v + t * e->d + h * e->dh;
            for (int64_t j = 0; j < half; j++) {
                float c = w->cs[t * half + j], s = sign * w->sn[t * half + j];
                float a = p[2 * j], b = p[2 * j + 1];
                p[2 * j] = a * c - b * s;
                p[2 * j + 1] = a * s + b * c;
            }
        }
}

/* C [M x N] = A B^T (+ C when acc): A [M x K], B [N x K]. */
static void mm_nt(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, int acc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)K,
                acc ? 1.0f : 0.0f, C, (int)N);
}

/* C [M x N] = A B (+ C when acc): A [M x K], B [K x N]. */
static void mm_nn(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, int acc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)N,
                acc ? 1.0f : 0.0f, C, (int)N);
}

/* C [M x N] = A^T B: A [K x M], B [K x N] (a weight gradient over K rows). */
static void mm_tn(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)M, B, (int)N, 0.0f,
                C, (int)N);
}

/* ---------------------------------------------------------------- forward */

static int check_window(const struct bli_eagle *e, const struct bli_eagle_ws *w, const int32_t *y, int64_t T,
                        int64_t pos0, bl_err *err)
{
    if (T < 1)
        return bli_err(err, BL_EINVAL, "EAGLE window of %" PRId64 " steps", T);
    if (T > w->cap)
        return bli_err(err, BL_ERANGE, "EAGLE window of %" PRId64 " steps in a workspace of %" PRId64, T, w->cap);
    if (pos0 < 0)
        return bli_err(err, BL_EINVAL, "EAGLE window at position %" PRId64, pos0);
    for (int64_t i = 0; i < T; i++)
        if (y[i] < 0 || y[i] >= e->V)
            return bli_err(err, BL_EINVAL, "EAGLE input token %" PRId32 " at step %" PRId64
                           " outside the vocabulary of %" PRId64, y[i], i, e->V);
    return BL_OK;
}

/* The layer over a checked window: every activation into w. */
static void forward(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y, int64_t T,
                    int64_t pos0)
{
    int64_t d = e->d, m = e->m, H = e->H, dh = e->dh, half = dh / 2, cap = w->cap;
    const float *p = e->params;
    const float *Wfc = p + e->off[BLI_EAGLE_WFC], *bfc = p + e->off[BLI_EAGLE_BFC],
                *g1 = p + e->off[BLI_EAGLE_G1], *Wq = p + e->off[BLI_EAGLE_WQ], *Wk = p + e->off[BLI_EAGLE_WK],
                *Wv = p + e->off[BLI_EAGLE_WV], *Wo = p + e->off[BLI_EAGLE_WO], *g2 = p + e->off[BLI_EAGLE_G2],
                *Wg = p + e->off[BLI_EAGLE_WG], *Wu = p + e->off[BLI_EAGLE_WU], *Wd = p + e->off[BLI_EAGLE_WD];
    /* x_i = [f_i ; E y_i] */
    for (int64_t i = 0; i < T; i++) {
        memcpy(w->X + i * 2 * d, f + i * d, (size_t)d * sizeof(float));
        memcpy(w->X + i * 2 * d + d, e->embed + (int64_t)y[i] * d, (size_t)d * sizeof(float));
    }
    /* u = x Wfc^T + bfc, n1 = RMSNorm(u) g1 */
    mm_nt(w->X, Wfc, w->U, T, d, 2 * d, 0);
    for (int64_t i = 0; i < T; i++)
        for (int64_t k = 0; k < d; k++)
            w->U[i * d + k] += bfc[k];
    rmsnorm(w->U, g1, w->N1, w->R1, T, d, e->eps);
    /* q, k, v; RoPE at pos0 + i */
    mm_nt(w->N1, Wq, w->Q, T, d, d, 0);
    mm_nt(w->N1, Wk, w->K, T, d, d, 0);
    mm_nt(w->N1, Wv, w->Vv, T, d, d, 0);
    for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < half; j++) {
            double th = (double)(pos0 + i) * pow(BLI_EAGLE_ROPE_THETA, -2.0 * (double)j / (double)dh);
            w->cs[i * half + j] = (float)cos(th);
            w->sn[i * half + j] = (float)sin(th);
        }
    rope(e, w, w->Q, T, 1.0f);
    rope(e, w, w->K, T, 1.0f);
    /* causal attention, head by head */
    float scale = 1.0f / sqrtf((float)dh);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < T; i++) {
            float *P = w->P + (h * cap + i) * cap;
            const float *q = w->Q + i * d + h * dh;
            float mx = -INFINITY;
            for (int64_t j = 0; j <= i; j++) {
                const float *k = w->K + j * d + h * dh;
                float s = 0;
                for (int64_t c = 0; c < dh; c++)
                    s += q[c] * k[c];
                P[j] = s * scale;
                mx = fmaxf(mx, P[j]);
            }
            float sum = 0;
            for (int64_t j = 0; j <= i; j++) {
                P[j] = expf(P[j] - mx);
                sum += P[j];
            }
            float *o = w->O + i * d + h * dh;
            for (int64_t c = 0; c < dh; c++)
                o[c] = 0;
            for (int64_t j = 0; j <= i; j++) {
                P[j] /= sum;
                const float *v = w->Vv + j * d + h * dh;
                for (int64_t c = 0; c < dh; c++)
                    o[c] += P[j] * v[c];
            }
            for (int64_t j = i + 1; j < T; j++)
                P[j] = 0;
        }
    /* a = u + o Wo^T, n2 = RMSNorm(a) g2 */
    memcpy(w->A, w->U, (size_t)(T * d) * sizeof(float));
    mm_nt(w->O, Wo, w->A, T, d, d, 1);
    rmsnorm(w->A, g2, w->N2, w->R2, T, d, e->eps);
    /* g = a + (SiLU(n2 Wg^T) * n2 Wu^T) Wd^T */
    mm_nt(w->N2, Wg, w->Gt, T, m, d, 0);
    mm_nt(w->N2, Wu, w->Up, T, m, d, 0);
    for (int64_t i = 0; i < T * m; i++)
        w->Hm[i] = w->Gt[i] * sigmoidf(w->Gt[i]) * w->Up[i];
    memcpy(w->G, w->A, (size_t)(T * d) * sizeof(float));
    mm_nt(w->Hm, Wd, w->G, T, d, m, 1);
    /* logits */
    mm_nt(w->G, e->unembed, w->Z, T, e->V, d, 0);
}

static int32_t argmax_row(const float *z, int64_t V)
{
    int64_t am = 0;
    for (int64_t v = 1; v < V; v++)
        if (z[v] > z[am])
            am = v;
    return (int32_t)am;
}

int bli_eagle_forward(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y,
                      int64_t T, int64_t pos0, float *hidden, int32_t *argmax, bl_err *err)
{
    int rc = check_window(e, w, y, T, pos0, err);
    if (rc)
        return rc;
    forward(e, w, f, y, T, pos0);
    if (hidden)
        memcpy(hidden, w->G, (size_t)(T * e->d) * sizeof(float));
    if (argmax)
        for (int64_t i = 0; i < T; i++)
            argmax[i] = argmax_row(w->Z + i * e->V, e->V);
    return BL_OK;
}

/* ---------------------------------------------------------------- backward */

/* Backward from dL/dG in w->dG: every parameter's gradient into grad. */
static void backward(const struct bli_eagle *e, struct bli_eagle_ws *w, int64_t T, float *grad)
{
    int64_t d = e->d, m = e->m, H = e->H, dh = e->dh, cap = w->cap;
    const float *p = e->params;
    const float *g1 = p + e->off[BLI_EAGLE_G1], *Wq = p + e->off[BLI_EAGLE_WQ], *Wk = p + e->off[BLI_EAGLE_WK],
                *Wv = p + e->off[BLI_EAGLE_WV], *Wo = p + e->off[BLI_EAGLE_WO], *g2 = p + e->off[BLI_EAGLE_G2],
                *Wg = p + e->off[BLI_EAGLE_WG], *Wu = p + e->off[BLI_EAGLE_WU], *Wd = p + e->off[BLI_EAGLE_WD];
    float *gr[BLI_EAGLE_N_TENSORS];
    for (int t = 0; t < BLI_EAGLE_N_TENSORS; t++)
        gr[t] = grad + e->off[t];
    size_t td = (size_t)(T * d) * sizeof(float);
    /* SwiGLU */
    mm_tn(w->dG, w->Hm, gr[BLI_EAGLE_WD], d, m, T);
    mm_nn(w->dG, Wd, w->dGt, T, m, d, 0);   /* dHm, for now */
    for (int64_t i = 0; i < T * m; i++) {
        float a = w->Gt[i], s = sigmoidf(a), dh_ = w->dGt[i];
        w->dUp[i] = dh_ * a * s;
        w->dGt[i] = dh_ * w->Up[i] * s * (1.0f + a * (1.0f - s));
    }
    mm_tn(w->dGt, w->N2, gr[BLI_EAGLE_WG], m, d, T);
    mm_tn(w->dUp, w->N2, gr[BLI_EAGLE_WU], m, d, T);
    mm_nn(w->dGt, Wg, w->dN, T, d, m, 0);
    mm_nn(w->dUp, Wu, w->dN, T, d, m, 1);
    /* second norm and the residual */
    memcpy(w->dA, w->dG, td);
    memset(gr[BLI_EAGLE_G2], 0, (size_t)d * sizeof(float));
    rmsnorm_back(w->A, g2, w->R2, w->dN, w->dA, gr[BLI_EAGLE_G2], T, d);
    /* output projection */
    mm_tn(w->dA, w->O, gr[BLI_EAGLE_WO], d, d, T);
    mm_nn(w->dA, Wo, w->dO, T, d, d, 0);
    /* attention */
    memset(w->dQ, 0, td);
    memset(w->dK, 0, td);
    memset(w->dV, 0, td);
    float scale = 1.0f / sqrtf((float)dh);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < T; i++) {
            const float *P = w->P + (h * cap + i) * cap;
            const float *dO = w->dO + i * d + h * dh, *q = w->Q + i * d + h * dh;
            float *dq = w->dQ + i * d + h * dh;
            float *dP = w->dUp;   /* free again: i + 1 <= cap <= cap * m floats */
            float dot = 0;
            for (int64_t j = 0; j <= i; j++) {
                const float *v = w->Vv + j * d + h * dh;
                float s = 0;
                for (int64_t c = 0; c < dh; c++)
                    s += dO[c] * v[c];
                dP[j] = s;
                dot += P[j] * s;
            }
            for (int64_t j = 0; j <= i; j++) {
                float ds = P[j] * (dP[j] - dot) * scale;
                const float *k = w->K + j * d + h * dh;
                float *dk = w->dK + j * d + h * dh, *dv = w->dV + j * d + h * dh;
                for (int64_t c = 0; c < dh; c++) {
                    dq[c] += ds * k[c];
                    dk[c] += ds * q[c];
                    dv[c] += P[j] * dO[c];
                }
            }
        }
    rope(e, w, w->dQ, T, -1.0f);
    rope(e, w, w->dK, T, -1.0f);
    mm_tn(w->dQ, w->N1, gr[BLI_EAGLE_WQ], d, d, T);
    mm_tn(w->dK, w->N1, gr[BLI_EAGLE_WK], d, d, T);
    mm_tn(w->dV, w->N1, gr[BLI_EAGLE_WV], d, d, T);
    mm_nn(w->dQ, Wq, w->dN, T, d, d, 0);
    mm_nn(w->dK, Wk, w->dN, T, d, d, 1);
    mm_nn(w->dV, Wv, w->dN, T, d, d, 1);
    /* first norm and the residual */
    memcpy(w->dU, w->dA, td);
    memset(gr[BLI_EAGLE_G1], 0, (size_t)d * sizeof(float));
    rmsnorm_back(w->U, g1, w->R1, w->dN, w->dU, gr[BLI_EAGLE_G1], T, d);
    /* fc */
    mm_tn(w->dU, w->X, gr[BLI_EAGLE_WFC], d, 2 * d, T);
    float *gb = gr[BLI_EAGLE_BFC];
    memset(gb, 0, (size_t)d * sizeof(float));
    for (int64_t i = 0; i < T; i++)
        for (int64_t k = 0; k < d; k++)
            gb[k] += w->dU[i * d + k];
}

double bli_eagle_loss(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y,
                      int64_t T, int64_t pos0, const int32_t *tgt, const float *ftgt, const unsigned char *fmask,
                      float *grad, bl_err *err)
{
    if (check_window(e, w, y, T, pos0, err))
        return NAN;
    int64_t d = e->d, V = e->V, n_tok = 0, n_feat = 0;
    for (int64_t i = 0; i < T; i++) {
        n_tok += tgt && tgt[i] >= 0 && tgt[i] < V;
        n_feat += ftgt && (!fmask || fmask[i]);
    }
    forward(e, w, f, y, T, pos0);
    /* cross-entropy; Z becomes dL/dZ */
    double ce = 0;
    for (int64_t i = 0; i < T; i++) {
        float *z = w->Z + i * V;
        int32_t t = tgt ? tgt[i] : -1;
        if (t < 0 || t >= V) {
            memset(z, 0, (size_t)V * sizeof *z);
            continue;
        }
        float mx = z[argmax_row(z, V)];
        double s = 0;
        for (int64_t v = 0; v < V; v++)
            s += exp((double)(z[v] - mx));
        ce += log(s) + mx - z[t];
        float sc = 1.0f / (float)n_tok;
        for (int64_t v = 0; v < V; v++)
            z[v] = (float)(exp((double)(z[v] - mx)) / s) * sc;
        z[t] -= sc;
    }
    /* feature regression; dG = its gradient, then + dZ U */
    double se = 0;
    float fs = n_feat ? 2.0f * e->lambda / ((float)n_feat * (float)d) : 0.0f;
    for (int64_t i = 0; i < T; i++) {
        int has = ftgt && (!fmask || fmask[i]);
        for (int64_t k = 0; k < d; k++) {
            float r = has ? w->G[i * d + k] - ftgt[i * d + k] : 0.0f;
            se += (double)r * r;
            w->dG[i * d + k] = fs * r;
        }
    }
    double loss = (n_tok ? ce / (double)n_tok : 0.0) + (n_feat ? e->lambda * se / ((double)n_feat * d) : 0.0);
    if (grad) {
        mm_nn(w->Z, e->unembed, w->dG, T, d, V, 1);
        backward(e, w, T, grad);
    }
    return loss;
}

/* ---------------------------------------------------------------- drafting */

int bli_eagle_draft_full(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y,
                         int64_t T, int64_t pos0, int n_draft, int64_t n_tokens, int32_t *tokens, float *logits,
                         float *hidden, bl_err *err)
{
    if (n_draft < 1)
        return bli_err(err, BL_EINVAL, "%d EAGLE draft tokens", n_draft);
    if (T >= 1 && T + n_draft - 1 > w->cap)
        return bli_err(err, BL_ERANGE, "EAGLE window of %" PRId64 " steps and %d drafts in a workspace of %" PRId64,
                       T, n_draft, w->cap);
    int rc = check_window(e, w, y, T, pos0, err);
    if (rc)
        return rc;
    int64_t d = e->d, V = e->V, n = T, Vt = n_tokens > 0 && n_tokens < V ? n_tokens : V;
    memcpy(w->fx, f, (size_t)(T * d) * sizeof(float));
    memcpy(w->yx, y, (size_t)T * sizeof(int32_t));
    for (int k = 0; k < n_draft; k++) {
        forward(e, w, w->fx, w->yx, n, pos0);
        const float *z = w->Z + (n - 1) * V, *g = w->G + (n - 1) * d;
        int32_t tok = argmax_row(z, Vt);
        if (tokens)
            tokens[k] = tok;
        if (logits)
            memcpy(logits + (int64_t)k * V, z, (size_t)V * sizeof(float));
        if (hidden)
            memcpy(hidden + (int64_t)k * d, g, (size_t)d * sizeof(float));
        if (k + 1 < n_draft) {   /* the next input: (g of the last step, its token) */
            memcpy(w->fx + n * d, g, (size_t)d * sizeof(float));
            w->yx[n] = tok;
            n++;
        }
    }
    return BL_OK;
}

int bli_eagle_draft(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y, int64_t T,
                    int64_t pos0, int n_draft, int32_t *out, bl_err *err)
{
    return bli_eagle_draft_full(e, w, f, y, T, pos0, n_draft, 0, out, NULL, NULL, err);
}
