/* lib/drafter.c: Medusa-style drafter heads (bitlens/drafter.h): the
 * forward pass, its analytic backward pass and the trainer.
 *
 * Forward, head j over a batch X [B x d] (rows are features r_t):
 *   H_0 = X
 *   A_b = H_b W1_b^T + b1_b                [B x h]
 *   S_b = SiLU(A_b) = A_b sigma(A_b)
 *   H_{b+1} = H_b + S_b W2_b^T   (width w)   or   H_b + S_b   (width 0)
 *   Z = H_nb U^T                           [B x V], U the main model's
 *   loss_j = mean over rows with a target of logsumexp(Z) - Z[target]
 * and the loss is the mean of loss_j over the heads that have rows.
 *
 * Backward (G = dL/dZ = (softmax(Z) - onehot) / (K' n_j)):
 *   dH = G U
 *   for b = nb-1 .. 0:
 *     width w:  dW2_b = dH^T S_b,  dS = dH W2_b      else dS = dH
 *     dA = dS * SiLU'(A_b),  SiLU'(a) = sigma(a) (1 + a (1 - sigma(a)))
 *     dW1_b = dA^T H_b,  db1_b = sum over rows of dA
 *     dH = dH + dA W1_b
 * The products go to cblas_sgemm (OpenBLAS, kept on the calling thread);
 * the heads are independent, so they are shared among the threads whole,
 * each writing its own slice of the gradient, and each head's loss is
 * summed in a fixed order: the same bits for the same thread count. */
#include "config.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "drafter_eagle.h"
#include "drafter_internal.h"
#include "internal.h"
#include "kernels.h"
#include "model_internal.h"
#include <bitlens/hash.h>
#include <bitlens/tensor.h>

/* ---------------------------------------------------------------- setup */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bli_drafter_identity(const bl_model *model, struct bl_drafter_config *cfg, bl_err *err)
{
    const struct bl_model_config *mc = bl_model_config(model);
    cfg->d = mc->dim;
    cfg->n_vocab = mc->n_vocab;
    snprintf(cfg->model_name, sizeof cfg->model_name, "%s", bl_model_name(model) ? bl_model_name(model) : "");
    cfg->model_sha256[0] = '\0';
    if (bl_model_n_files(model) > 0)
        return bl_sha256_file(bl_model_file(model, 0), cfg->model_sha256, NULL, NULL, err);
    return BL_OK;
}

static int check_config(const struct bl_drafter_config *c, bl_err *err)
{
    if (c->kind == BL_DRAFTER_EAGLE && c->n_blocks != 1)
        return bli_err(err, BL_EINVAL, "an EAGLE-style drafter is one layer: %d blocks", c->n_blocks);
    if (c->kind != BL_DRAFTER_MEDUSA && c->kind != BL_DRAFTER_EAGLE)
        return bli_err(err, BL_EINVAL, "drafter kind %d is not medusa (1) or eagle (2)", c->kind);
    if (c->n_heads < 1 || c->n_heads > BL_DRAFTER_MAX_HEADS)
        return bli_err(err, BL_EINVAL, "%d drafter heads: 1 to %d", c->n_heads, BL_DRAFTER_MAX_HEADS);
    if (c->n_blocks < 1 || c->n_blocks > BL_DRAFTER_MAX_BLOCKS)
        return bli_err(err, BL_EINVAL, "%d blocks per head: 1 to %d", c->n_blocks, BL_DRAFTER_MAX_BLOCKS);
    if (c->width < 0 || c->width > BL_DRAFTER_MAX_WIDTH)
        return bli_err(err, BL_EINVAL, "block width %" PRId64 ": 0 (the model's dim) to %d", c->width,
                       BL_DRAFTER_MAX_WIDTH);
    return BL_OK;
}

int bli_drafter_alloc(bl_drafter **out, const bl_model *model, const struct bl_drafter_config *cfg, bl_err *err)
{
    *out = NULL;
    int rc = check_config(cfg, err);
    if (rc)
        return rc;
    bl_drafter *d = calloc(1, sizeof *d);
    if (!d)
        return bli_err(err, BL_ENOMEM, "out of memory");
    d->cfg = *cfg;
    d->model = model;
    if (!d->cfg.hook[0])
        snprintf(d->cfg.hook, sizeof d->cfg.hook, "%s", BL_DRAFTER_DEFAULT_HOOK);
    const struct bl_model_config *mc = bl_model_config(model);
    d->cfg.d = mc->dim;
    d->cfg.n_vocab = mc->n_vocab;
    const struct bli_weights *w = bli_model_weights(model);
    if (!w->output.data || !bl_dtype_supported(w->output.type)) {
        free(d);
        return bli_err(err, BL_EUNSUPPORTED, "%s: no unembedding a drafter can read out through",
                       bl_model_path(model));
    }
    int64_t D = d->cfg.d, V = d->cfg.n_vocab;
    d->unembed_buf = bli_malloc_array((size_t)(V * D), sizeof(float));
    if (!d->unembed_buf) {
        bl_drafter_free(d);
        return bli_err(err, BL_ENOMEM, "out of memory for the unembedding (%" PRId64 " x %" PRId64 ")", V, D);
    }
    size_t row = bl_dtype_row_bytes(w->output.type, D);
    for (int64_t v = 0; v < V; v++)
        bl_to_f32(w->output.type, (const unsigned char *)w->output.data + (size_t)v * row, d->unembed_buf + v * D,
                  D);
    d->unembed = d->unembed_buf;
    if (d->cfg.kind == BL_DRAFTER_EAGLE) {
        if ((rc = bli_eagle_alloc(&d->eagle, model, d->unembed, d->cfg.width, -1.0f, err))) {
            bl_drafter_free(d);
            return rc;
        }
        d->params = d->eagle->params;
        d->n_params = d->eagle->n_params;
    } else {
        d->n_params = (int64_t)d->cfg.n_heads * d->cfg.n_blocks * bli_drafter_block_size(&d->cfg);
        d->params = bli_calloc((size_t)d->n_params, sizeof(float));
        if (!d->params) {
            bl_drafter_free(d);
            return bli_err(err, BL_ENOMEM, "out of memory for a drafter of %" PRId64 " parameters", d->n_params);
        }
    }
    *out = d;
    return BL_OK;
}

int bl_drafter_new(bl_drafter **out, const bl_model *model, const struct bl_drafter_config *cfg, uint64_t seed,
                   bl_err *err)
{
    struct bl_drafter_config c = *cfg;
    int rc = bli_drafter_identity(model, &c, err);
    if (rc)
        return rc;
    if ((rc = bli_drafter_alloc(out, model, &c, err)))
        return rc;
    bl_drafter *d = *out;
    if (d->eagle) {
        if ((rc = bli_eagle_init(d->eagle, seed, err))) {
            bl_drafter_free(d);
            *out = NULL;
        }
        return rc;
    }
    if (d->cfg.width > 0) {   /* W1 ~ N(0, 1/d); W2 = 0, b1 = 0 */
        gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
        if (!g) {
            bl_drafter_free(d);
            *out = NULL;
            return bli_err(err, BL_ENOMEM, "out of memory");
        }
        gsl_rng_set(g, (unsigned long)(seed ^ (seed >> 32)) + 1);
        double sd = 1.0 / sqrt((double)d->cfg.d);
        int64_t n1 = d->cfg.width * d->cfg.d;
        for (int j = 0; j < d->cfg.n_heads; j++)
            for (int b = 0; b < d->cfg.n_blocks; b++) {
                float *w1 = d->params + bli_drafter_w1(&d->cfg, j, b);
                for (int64_t i = 0; i < n1; i++)
                    w1[i] = (float)gsl_ran_gaussian(g, sd);
            }
        gsl_rng_free(g);
    }
    return BL_OK;
}

void bl_drafter_free(bl_drafter *d)
{
    if (!d)
        return;
    if (d->eagle)
        bli_eagle_free(d->eagle);   /* its parameters with it */
    else
        free(d->params);
    free(d->unembed_buf);
    free(d);
}

const struct bl_drafter_config *bl_drafter_config(const bl_drafter *d)
{
    return &d->cfg;
}

int64_t bl_drafter_n_params(const bl_drafter *d)
{
    return d->n_params;
}

/* ---------------------------------------------------------------- one head */

struct head_ws {
    int64_t cap;
    float *H;      /* [(nb + 1) x cap x d] */
    float *A;      /* [nb x cap x h] */
    float *S;      /* [nb x cap x h] */
    float *Z;      /* [cap x V] */
    float *dH, *dS, *dA;
};

static void ws_free(struct head_ws *w)
{
    free(w->H);
    free(w->A);
    free(w->S);
    free(w->Z);
    free(w->dH);
    free(w->dS);
    free(w->dA);
    memset(w, 0, sizeof *w);
}

static int ws_init(struct head_ws *w, const struct bl_drafter_config *c, int64_t cap)
{
    int64_t d = c->d, h = bli_drafter_hidden(c), nb = c->n_blocks;
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->H = bli_malloc_array((size_t)((nb + 1) * cap * d), sizeof(float));
    w->A = bli_malloc_array((size_t)(nb * cap * h), sizeof(float));
    w->S = bli_malloc_array((size_t)(nb * cap * h), sizeof(float));
    w->Z = bli_malloc_array((size_t)(cap * c->n_vocab), sizeof(float));
    w->dH = bli_malloc_array((size_t)(cap * d), sizeof(float));
    w->dS = bli_malloc_array((size_t)(cap * h), sizeof(float));
    w->dA = bli_malloc_array((size_t)(cap * h), sizeof(float));
    if (!w->H || !w->A || !w->S || !w->Z || !w->dH || !w->dS || !w->dA) {
        ws_free(w);
        return BL_ENOMEM;
    }
    return BL_OK;
}

static float sigmoidf(float a)
{
    return 1.0f / (1.0f + expf(-a));
}

/* Head j's blocks over rows x [B x d]: H_nb at w->H + nb*B*d, logits in w->Z. */
static void head_forward(const bl_drafter *dr, int j, const float *x, int64_t B, struct head_ws *w)
{
    const struct bl_drafter_config *c = &dr->cfg;
    int64_t d = c->d, h = bli_drafter_hidden(c), nb = c->n_blocks, V = c->n_vocab;
    memcpy(w->H, x, (size_t)(B * d) * sizeof(float));
    for (int b = 0; b < nb; b++) {
        const float *W1 = dr->params + bli_drafter_w1(c, j, b), *b1 = dr->params + bli_drafter_b1(c, j, b);
        float *Hb = w->H + b * B * d, *Hn = Hb + B * d, *A = w->A + b * B * h, *S = w->S + b * B * h;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)h, (int)d, 1.0f, Hb, (int)d, W1, (int)d,
                    0.0f, A, (int)h);
        for (int64_t r = 0; r < B; r++)
            for (int64_t k = 0; k < h; k++) {
                float a = A[r * h + k] + b1[k];
                A[r * h + k] = a;
                S[r * h + k] = a * sigmoidf(a);
            }
        memcpy(Hn, Hb, (size_t)(B * d) * sizeof(float));
        if (c->width > 0) {
            const float *W2 = dr->params + bli_drafter_w2(c, j, b);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)d, (int)h, 1.0f, S, (int)h, W2,
                        (int)h, 1.0f, Hn, (int)d);
        } else {
            for (int64_t i = 0; i < B * d; i++)
                Hn[i] += S[i];
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)V, (int)d, 1.0f, w->H + nb * B * d, (int)d,
                dr->unembed, (int)d, 0.0f, w->Z, (int)V);
}

/* Cross-entropy of each row of w->Z against y[r * ystride] (-1: none):
 * the sum (nats) and rows counted; with grad, Z becomes dL/dZ scaled by
 * `scale` (0 for rows without a target); top1 counts argmax hits. */
static double head_ce(struct head_ws *w, const int32_t *y, int64_t ystride, int64_t B, int64_t V, int grad,
                      float scale, int64_t *counted, int64_t *top1)
{
    double sum = 0;
    int64_t n = 0, hit = 0;
    for (int64_t r = 0; r < B; r++) {
        float *z = w->Z + r * V;
        int32_t t = y[r * ystride];
        float mx = -INFINITY;
        int64_t am = 0;
        for (int64_t v = 0; v < V; v++)
            if (z[v] > mx) {
                mx = z[v];
                am = v;
            }
        if (t < 0 || t >= V) {
            if (grad)
                memset(z, 0, (size_t)V * sizeof *z);
            continue;
        }
        double s = 0;
        for (int64_t v = 0; v < V; v++)
            s += exp((double)(z[v] - mx));
        sum += log(s) + mx - z[t];
        n++;
        hit += am == t;
        if (grad) {
            for (int64_t v = 0; v < V; v++)
                z[v] = (float)(exp((double)(z[v] - mx)) / s) * scale;
            z[t] -= scale;
        }
    }
    *counted = n;
    if (top1)
        *top1 = hit;
    return sum;
}

/* Backward through head j given dL/dZ in w->Z; gradient slice g of head j. */
static void head_backward(const bl_drafter *dr, int j, int64_t B, struct head_ws *w, float *grad)
{
    const struct bl_drafter_config *c = &dr->cfg;
    int64_t d = c->d, h = bli_drafter_hidden(c), nb = c->n_blocks, V = c->n_vocab;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)d, (int)V, 1.0f, w->Z, (int)V, dr->unembed,
                (int)d, 0.0f, w->dH, (int)d);
    for (int b = nb - 1; b >= 0; b--) {
        const float *W1 = dr->params + bli_drafter_w1(c, j, b);
        float *gW1 = grad + bli_drafter_w1(c, j, b), *gb1 = grad + bli_drafter_b1(c, j, b);
        const float *Hb = w->H + b * B * d, *A = w->A + b * B * h, *S = w->S + b * B * h;
        const float *dS = w->dH;
        if (c->width > 0) {
            const float *W2 = dr->params + bli_drafter_w2(c, j, b);
            float *gW2 = grad + bli_drafter_w2(c, j, b);
            /* dW2 [d x h] = dH^T [d x B] S [B x h] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)h, (int)B, 1.0f, w->dH, (int)d, S,
                        (int)h, 0.0f, gW2, (int)h);
            /* dS [B x h] = dH [B x d] W2 [d x h] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)h, (int)d, 1.0f, w->dH, (int)d, W2,
                        (int)h, 0.0f, w->dS, (int)h);
            dS = w->dS;
        }
        for (int64_t k = 0; k < h; k++)
            gb1[k] = 0.0f;
        for (int64_t r = 0; r < B; r++)
            for (int64_t k = 0; k < h; k++) {
                float a = A[r * h + k], s = sigmoidf(a);
                float da = dS[r * h + k] * s * (1.0f + a * (1.0f - s));
                w->dA[r * h + k] = da;
                gb1[k] += da;
            }
        /* dW1 [h x d] = dA^T [h x B] H_b [B x d] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)h, (int)d, (int)B, 1.0f, w->dA, (int)h, Hb, (int)d,
                    0.0f, gW1, (int)d);
        /* dH += dA [B x h] W1 [h x d] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)d, (int)h, 1.0f, w->dA, (int)h, W1,
                    (int)d, 1.0f, w->dH, (int)d);
    }
}

/* ---------------------------------------------------------------- loss */

/* Loss (and gradient) over rows, each head on one thread. */
static double loss_rows(const bl_drafter *dr, const float *x, const int32_t *tok, int64_t rows, float *grad,
                        int n_threads, double *head_loss, int64_t *head_n, int64_t *head_hit, int *rc)
{
    const struct bl_drafter_config *c = &dr->cfg;
    int K = c->n_heads;
    int64_t V = c->n_vocab;
    int nt = n_threads > K ? K : n_threads;
    int64_t cnt[BL_DRAFTER_MAX_HEADS] = {0};
    /* rows with a target per head first: the gradient's scale */
    int heads_with = 0;
    for (int j = 0; j < K; j++) {
        for (int64_t r = 0; r < rows; r++)
            cnt[j] += tok[r * (K + 1) + j + 1] >= 0 && tok[r * (K + 1) + j + 1] < V;
        heads_with += cnt[j] > 0;
    }
    int failed = 0;
    double hl[BL_DRAFTER_MAX_HEADS] = {0};
#pragma omp parallel for num_threads(nt) schedule(static, 1) if (nt > 1) reduction(| : failed)
    for (int j = 0; j < K; j++) {
        struct head_ws w;
        if (ws_init(&w, c, rows > 0 ? rows : 1)) {
            failed = 1;
            continue;
        }
        head_forward(dr, j, x, rows, &w);
        float scale = cnt[j] ? 1.0f / ((float)heads_with * (float)cnt[j]) : 0.0f;
        int64_t n = 0, hit = 0;
        hl[j] = head_ce(&w, tok + j + 1, K + 1, rows, V, grad != NULL, scale, &n, &hit);
        if (head_n)
            head_n[j] = n;
        if (head_hit)
            head_hit[j] = hit;
        if (grad)
            head_backward(dr, j, rows, &w, grad);
        ws_free(&w);
    }
    *rc = failed ? BL_ENOMEM : BL_OK;
    double loss = 0;
    for (int j = 0; j < K; j++) {
        if (head_loss)
            head_loss[j] = hl[j];
        if (cnt[j])
            loss += hl[j] / (double)cnt[j];
    }
    return heads_with ? loss / heads_with : NAN;
}

double bli_drafter_loss(const bl_drafter *d, const float *x, const int32_t *tok, int64_t rows, float *grad,
                        int n_threads)
{
    int rc;
    bli_blas_single_threaded();
    double l = loss_rows(d, x, tok, rows, grad, bli_threads(n_threads), NULL, NULL, NULL, &rc);
    return rc ? NAN : l;
}

/* ---------------------------------------------------------------- eval */

int bl_drafter_eval(const bl_drafter *dr, const float *h, int64_t n, float *logits, int32_t *tokens, float *hidden,
                    bl_err *err)
{
    const struct bl_drafter_config *c = &dr->cfg;
    int K = c->n_heads;
    int64_t V = c->n_vocab, d = c->d, nb = c->n_blocks;
    if (dr->eagle)
        return bli_err(err, BL_EUNSUPPORTED, "an EAGLE-style drafter drafts from a window of verified positions, "
                       "not from one feature: bl_drafter_simulate");
    if (n <= 0)
        return BL_OK;
    struct head_ws w;
    if (ws_init(&w, c, n))
        return bli_err(err, BL_ENOMEM, "out of memory for %" PRId64 " drafter rows", n);
    for (int j = 0; j < K; j++) {
        head_forward(dr, j, h, n, &w);
        for (int64_t r = 0; r < n; r++) {
            const float *z = w.Z + r * V;
            if (logits)
                memcpy(logits + (r * K + j) * V, z, (size_t)V * sizeof *z);
            if (tokens) {
                int64_t am = 0;
                for (int64_t v = 1; v < V; v++)
                    if (z[v] > z[am])
                        am = v;
                tokens[r * K + j] = (int32_t)am;
            }
            if (hidden)
                memcpy(hidden + (r * K + j) * d, w.H + nb * n * d + r * d, (size_t)d * sizeof(float));
        }
    }
    ws_free(&w);
    return BL_OK;
}

static int evaluate(const bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *mask,
                    double *loss, double *top1, int nt, bl_err *err)
{
    const struct bl_drafter_config *c = &dr->cfg;
    int K = c->n_heads;
    if (data->d != c->d || data->k < K)
        return bli_err(err, BL_EINVAL, "training set of width %" PRId64 " and %d tokens ahead for a drafter of width "
                       "%" PRId64 " and %d heads", data->d, data->k, c->d, K);
    enum { CHUNK = 256 };
    float *x = bli_malloc_array(CHUNK * (size_t)c->d, sizeof(float));
    int32_t *t = bli_malloc_array(CHUNK * (size_t)(K + 1), sizeof(int32_t));
    if (!x || !t) {
        free(x);
        free(t);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    bli_blas_single_threaded();
    double hl[BL_DRAFTER_MAX_HEADS] = {0};
    int64_t hn[BL_DRAFTER_MAX_HEADS] = {0}, hh[BL_DRAFTER_MAX_HEADS] = {0};
    int rc = BL_OK;
    int64_t i = 0;
    while (i < data->n && !rc) {
        int64_t m = 0;
        for (; i < data->n && m < CHUNK; i++) {
            if (mask && !mask[i])
                continue;
            memcpy(x + m * c->d, data->feat + i * data->d, (size_t)c->d * sizeof(float));
            for (int j = 0; j <= K; j++)
                t[m * (K + 1) + j] = data->tok[i * (data->k + 1) + j];
            m++;
        }
        if (!m)
            break;
        double l[BL_DRAFTER_MAX_HEADS];
        int64_t n[BL_DRAFTER_MAX_HEADS], h[BL_DRAFTER_MAX_HEADS];
        loss_rows(dr, x, t, m, NULL, nt, l, n, h, &rc);
        for (int j = 0; j < K; j++) {
            hl[j] += l[j];
            hn[j] += n[j];
            hh[j] += h[j];
        }
    }
    free(x);
    free(t);
    if (rc)
        return bli_err(err, rc, "out of memory");
    double s = 0;
    int with = 0;
    for (int j = 0; j < K; j++) {
        if (hn[j]) {
            s += hl[j] / (double)hn[j];
            with++;
        }
        if (top1)
            top1[j] = hn[j] ? (double)hh[j] / (double)hn[j] : NAN;
    }
    if (loss)
        *loss = with ? s / with : NAN;
    return BL_OK;
}

static int eagle_eval(const bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *valid,
                      double *loss, double *top1, bl_err *err);

int bl_drafter_evaluate(const bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *mask,
                        double *loss, double *top1, bl_err *err)
{
    if (dr->eagle)
        return eagle_eval(dr, data, mask, loss, top1, err);
    return evaluate(dr, data, mask, loss, top1, bli_threads(0), err);
}

/* ---------------------------------------------------------------- training */

struct bl_drafter_data_params bl_drafter_data_default_params(void)
{
    struct bl_drafter_data_params p = {0};
    p.targets = BL_TARGETS_SELF;
    p.k = 4;
    p.n_gen = 64;
    p.max_prompt = 32;
    p.hook = BL_DRAFTER_DEFAULT_HOOK;
    return p;
}

struct bl_drafter_train_params bl_drafter_train_default_params(void)
{
    struct bl_drafter_train_params p = {0};
    p.steps = 2000;
    p.batch = 64;
    p.lr = 3e-3f;
    p.weight_decay = 0.01f;
    p.clip = 1.0f;
    p.warmup = -1;   /* steps / 20 */
    p.seed = 1;
    p.eval_every = 200;
    return p;
}

/* Is parameter i a matrix entry (decayed) rather than a bias? */
static int is_matrix(const struct bl_drafter_config *c, int64_t i)
{
    int64_t bs = bli_drafter_block_size(c), o = i % bs, h = bli_drafter_hidden(c);
    return o < h * c->d || o >= h * c->d + h;
}

/* Is parameter i of an EAGLE layer a matrix entry (decayed)? */
static int eagle_matrix(const struct bli_eagle *e, int64_t i)
{
    static const int mats[] = {BLI_EAGLE_WFC, BLI_EAGLE_WQ, BLI_EAGLE_WK, BLI_EAGLE_WV,
                               BLI_EAGLE_WO,  BLI_EAGLE_WG, BLI_EAGLE_WU, BLI_EAGLE_WD};
    for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++)
        if (i >= e->off[mats[k]] && i < e->off[mats[k]] + e->size[mats[k]])
            return 1;
    return 0;
}

/* One AdamW step s (0-based) on dr's parameters with gradient g: the global
 * norm clipped, the rate warmed up linearly over `warm` steps and then
 * decayed to 0 along a cosine; decay on the matrices only. */
static void adamw(bl_drafter *dr, const float *g, float *m, float *v, int64_t s, int64_t warm,
                  const struct bl_drafter_train_params *p)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int64_t np = dr->n_params;
    double gn = 0;
    for (int64_t i = 0; i < np; i++)
        gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    float gs = p->clip > 0 && gn > p->clip ? (float)(p->clip / gn) : 1.0f;
    double lr = p->lr;
    if (s < warm)
        lr *= (double)(s + 1) / (double)warm;
    else if (p->steps > warm)
        lr *= 0.5 * (1.0 + cos(M_PI * (double)(s - warm) / (double)(p->steps - warm)));
    double bc1 = 1.0 - pow(b1, (double)(s + 1)), bc2 = 1.0 - pow(b2, (double)(s + 1));
    float *th = dr->params;
    for (int64_t i = 0; i < np; i++) {
        float gi = g[i] * gs;
        m[i] = (float)(b1 * m[i] + (1 - b1) * gi);
        v[i] = (float)(b2 * v[i] + (1 - b2) * gi * gi);
        double step = (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
        if (p->weight_decay > 0 && (dr->eagle ? eagle_matrix(dr->eagle, i) : is_matrix(&dr->cfg, i)))
            step += p->weight_decay * th[i];
        th[i] = (float)(th[i] - lr * step);
    }
}

static int train_eagle(bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *valid,
                       const struct bl_drafter_train_params *p, struct bl_drafter_train_stats *st, bl_err *err);

/* After step s (0-based): every eval_every steps and at the last, the mean
 * training loss since the last report, the held-out figures (when rows are
 * held out) and the progress callback, whose nonzero return stops. */
static int after_step(const bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *valid,
                      const struct bl_drafter_train_params *p, struct bl_drafter_train_stats *st, int64_t s, int nt,
                      double *run_loss, int64_t *run_n, bl_err *err)
{
    int K = dr->cfg.n_heads, rc;
    if (!(p->eval_every > 0 && (s + 1) % p->eval_every == 0) && s + 1 != p->steps)
        return BL_OK;
    st->steps = s + 1;
    st->train_loss = *run_n ? *run_loss / (double)*run_n : NAN;
    *run_loss = 0;
    *run_n = 0;
    st->valid_loss = NAN;
    for (int j = 0; j < K; j++)
        st->top1[j] = NAN;
    if (st->n_valid && (rc = dr->eagle ? eagle_eval(dr, data, valid, &st->valid_loss, st->top1, err)
                                       : evaluate(dr, data, valid, &st->valid_loss, st->top1, nt, err)))
        return rc;
    if (p->progress && p->progress(p->progress_user, s + 1, p->steps, st->train_loss, st->valid_loss, st->top1, K))
        return bli_err(err, BL_ESTOPPED, "stopped at step %" PRId64, s + 1);
    return BL_OK;
}

int bl_drafter_train(bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *valid,
                     const struct bl_drafter_train_params *p, struct bl_drafter_train_stats *st, bl_err *err)
{
    if (dr->eagle)
        return train_eagle(dr, data, valid, p, st, err);
    const struct bl_drafter_config *c = &dr->cfg;
    int K = c->n_heads;
    int64_t D = c->d;
    memset(st, 0, sizeof *st);
    if (data->d != D || data->k < K)
        return bli_err(err, BL_EINVAL, "training set of width %" PRId64 " and %d tokens ahead for a drafter of width "
                       "%" PRId64 " and %d heads", data->d, data->k, D, K);
    if (p->steps < 0 || p->batch < 1 || p->batch > 1 << 20 || !(p->lr > 0) || !(p->weight_decay >= 0) ||
        !(p->clip >= 0))
        return bli_err(err, BL_EINVAL, "training parameters out of range (steps %" PRId64 ", batch %" PRId64
                       ", lr %g, weight decay %g, clip %g)", p->steps, p->batch, (double)p->lr,
                       (double)p->weight_decay, (double)p->clip);
    double t0 = now();
    int64_t ntr = 0, nva = 0;
    for (int64_t i = 0; i < data->n; i++)
        if (valid && valid[i])
            nva++;
        else
            ntr++;
    st->n_train = ntr;
    st->n_valid = nva;
    if (ntr == 0)
        return bli_err(err, BL_EINVAL, "no training rows");
    int64_t np = dr->n_params, B = p->batch;
    int64_t *idx = bli_malloc_array((size_t)ntr, sizeof *idx);
    float *g = bli_malloc_array((size_t)np, sizeof *g), *m = bli_calloc((size_t)np, sizeof *m),
          *v = bli_calloc((size_t)np, sizeof *v), *x = bli_malloc_array((size_t)(B * D), sizeof *x);
    int32_t *t = bli_malloc_array((size_t)(B * (K + 1)), sizeof *t);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = BL_OK;
    if (!idx || !g || !m || !v || !x || !t || !rng) {
        rc = bli_err(err, BL_ENOMEM, "out of memory for training %" PRId64 " parameters", np);
        goto out;
    }
    gsl_rng_set(rng, (unsigned long)(p->seed ^ (p->seed >> 32)) + 7);
    for (int64_t i = 0, k = 0; i < data->n; i++)
        if (!(valid && valid[i]))
            idx[k++] = i;
    bli_blas_single_threaded();
    int nt = bli_threads(p->n_threads);
    int64_t warm = p->warmup >= 0 ? p->warmup : p->steps / 20, pos = ntr;
    double run_loss = 0;
    int64_t run_n = 0;
    for (int64_t s = 0; s < p->steps; s++) {
        /* a batch: the next B indices of a shuffled pass */
        int64_t rows = 0;
        while (rows < B) {
            if (pos >= ntr) {
                gsl_ran_shuffle(rng, idx, (size_t)ntr, sizeof *idx);
                pos = 0;
            }
            int64_t i = idx[pos++];
            memcpy(x + rows * D, data->feat + i * D, (size_t)D * sizeof(float));
            for (int j = 0; j <= K; j++)
                t[rows * (K + 1) + j] = data->tok[i * (data->k + 1) + j];
            rows++;
            if (ntr < B && pos >= ntr)
                break;
        }
        double loss = loss_rows(dr, x, t, rows, g, nt, NULL, NULL, NULL, &rc);
        if (rc) {
            rc = bli_err(err, rc, "out of memory");
            goto out;
        }
        if (isfinite(loss)) {
            run_loss += loss;
            run_n++;
        }
        adamw(dr, g, m, v, s, warm, p);
        if ((rc = after_step(dr, data, valid, p, st, s, nt, &run_loss, &run_n, err)))
            goto out;
    }
    st->steps = p->steps;
out:
    st->seconds = now() - t0;
    free(idx);
    free(g);
    free(m);
    free(v);
    free(x);
    free(t);
    if (rng)
        gsl_rng_free(rng);
    return rc;
}

/* ---------------------------------------------------------------- sequences */

/* The runs of consecutive rows of one sequence among rows with want(i):
 * start and length of each, in row order.  Returns the count, -1 when out
 * of memory. */
static int64_t runs(const struct bl_drafter_data *data, const unsigned char *mask, int holdout, int64_t **start,
                    int64_t **len)
{
    int64_t n = 0, cap = 64;
    *start = bli_malloc_array((size_t)cap, sizeof **start);
    *len = bli_malloc_array((size_t)cap, sizeof **len);
    if (!*start || !*len)
        return -1;
    for (int64_t i = 0; i < data->n;) {
        int in = mask ? (mask[i] != 0) == holdout : 1;
        if (!in) {
            i++;
            continue;
        }
        int64_t j = i + 1;
        while (j < data->n && data->seq[j] == data->seq[i] && (mask ? (mask[j] != 0) == holdout : 1))
            j++;
        if (n == cap) {
            cap *= 2;
            int64_t *a = realloc(*start, (size_t)cap * sizeof *a), *b = a ? realloc(*len, (size_t)cap * sizeof *b) : NULL;
            if (a)
                *start = a;
            if (!b)
                return -1;
            *len = b;
        }
        (*start)[n] = i;
        (*len)[n] = j - i;
        n++;
        i = j;
    }
    return n;
}

/* K draft tokens at row t of the run starting at s0: Medusa from the row's
 * feature, EAGLE from the window of verified rows up to t. */
static int draft_at(const bl_drafter *dr, const struct bl_drafter_data *data, int64_t s0, int64_t t,
                    struct bli_eagle_ws *ew, float *fx, int32_t *yx, int32_t *out, bl_err *err)
{
    int K = dr->cfg.n_heads;
    int64_t D = data->d;
    if (!dr->eagle)
        return bl_drafter_eval(dr, data->feat + t * D, 1, NULL, out, NULL, err);
    int64_t w0 = t - BLI_EAGLE_WINDOW + 1 > s0 ? t - BLI_EAGLE_WINDOW + 1 : s0, T = t - w0 + 1;
    for (int64_t i = 0; i < T; i++) {
        memcpy(fx + i * D, data->feat + (w0 + i) * D, (size_t)D * sizeof(float));
        int32_t y = data->tok[(w0 + i) * (data->k + 1)];
        yx[i] = y >= 0 && y < dr->cfg.n_vocab ? y : 0;
    }
    return bli_eagle_draft(dr->eagle, ew, fx, yx, T, w0 - s0, K, out, err);
}

int bl_drafter_simulate(const bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *mask,
                        struct bl_drafter_sim *out, bl_err *err)
{
    int K = dr->cfg.n_heads, kk = data->k + 1;
    memset(out, 0, sizeof *out);
    if (data->d != dr->cfg.d || data->k < K)
        return bli_err(err, BL_EINVAL, "training set of width %" PRId64 " and %d tokens ahead for a drafter of width "
                       "%" PRId64 " and %d heads", data->d, data->k, dr->cfg.d, K);
    int64_t *st = NULL, *ln = NULL;
    int64_t nr = runs(data, mask, 1, &st, &ln);
    struct bli_eagle_ws ew = {0};
    float *fx = bli_malloc_array((size_t)(BLI_EAGLE_WINDOW * data->d), sizeof *fx);
    int32_t *yx = bli_malloc_array(BLI_EAGLE_WINDOW, sizeof *yx);
    int rc = BL_OK;
    if (nr < 0 || !fx || !yx)
        rc = bli_err(err, BL_ENOMEM, "out of memory");
    else if (dr->eagle)
        rc = bli_eagle_ws_init(&ew, dr->eagle, BLI_EAGLE_WINDOW + K, err);
    bli_blas_single_threaded();
    for (int64_t r = 0; r < nr && !rc; r++) {
        int64_t s0 = st[r], n = ln[r];
        out->sequences++;
        for (int64_t t = 0; t < n && !rc;) {
            int32_t dft[BL_DRAFTER_MAX_HEADS];
            if ((rc = draft_at(dr, data, s0, s0 + t, &ew, fx, yx, dft, err)))
                break;
            const int32_t *truth = data->tok + (s0 + t) * kk;
            int a = 0;
            while (a < K && truth[1 + a] >= 0 && dft[a] == truth[1 + a])
                a++;
            for (int j = 0; j < K; j++)
                if (truth[1 + j] >= 0) {
                    out->compared[j]++;
                    out->agree[j] += dft[j] == truth[1 + j];
                }
            int64_t got = a + 1 < n - t ? a + 1 : n - t;
            out->tokens += got;
            out->passes++;
            t += got;
        }
    }
    out->tokens_per_pass = out->passes ? (double)out->tokens / (double)out->passes : NAN;
    if (dr->eagle)
        bli_eagle_ws_release(&ew);
    free(fx);
    free(yx);
    free(st);
    free(ln);
    return rc;
}

/* ---------------------------------------------------------------- EAGLE training */

/* The loss of one window [s, s + T) of a run (teacher-forced): token
 * targets x_{t+2} = tok[.][1], feature targets the next row's feature
 * within the window. */
static double eagle_window(const bl_drafter *dr, const struct bl_drafter_data *data, int64_t s, int64_t T,
                           int64_t pos0, struct bli_eagle_ws *w, int32_t *y, int32_t *tgt, unsigned char *fm,
                           float *grad, bl_err *err)
{
    int64_t V = dr->cfg.n_vocab, kk = data->k + 1;
    for (int64_t i = 0; i < T; i++) {
        int32_t a = data->tok[(s + i) * kk], b = data->tok[(s + i) * kk + 1];
        y[i] = a >= 0 && a < V ? a : 0;
        tgt[i] = b >= 0 && b < V ? b : -1;
        fm[i] = i + 1 < T;
    }
    return bli_eagle_loss(dr->eagle, w, data->feat + s * data->d, y, T, pos0, tgt, data->feat + (s + 1) * data->d, fm,
                          grad, err);
}

static int eagle_eval(const bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *valid,
                      double *loss, double *top1, bl_err *err)
{
    int K = dr->cfg.n_heads;
    int64_t *st = NULL, *ln = NULL, nr = runs(data, valid, 1, &st, &ln);
    struct bli_eagle_ws w = {0};
    int32_t y[BLI_EAGLE_WINDOW], tgt[BLI_EAGLE_WINDOW];
    unsigned char fm[BLI_EAGLE_WINDOW];
    int rc = nr < 0 ? bli_err(err, BL_ENOMEM, "out of memory") : bli_eagle_ws_init(&w, dr->eagle, BLI_EAGLE_WINDOW, err);
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t r = 0; r < nr && !rc; r++)
        for (int64_t o = 0; o < ln[r] && !rc; o += BLI_EAGLE_WINDOW) {
            int64_t T = ln[r] - o < BLI_EAGLE_WINDOW ? ln[r] - o : BLI_EAGLE_WINDOW;
            double l = eagle_window(dr, data, st[r] + o, T, o, &w, y, tgt, fm, NULL, err);
            if (isnan(l))
                rc = err ? err->code : BL_EINVAL;
            sum += l;
            cnt++;
        }
    if (nr >= 0)
        bli_eagle_ws_release(&w);
    free(st);
    free(ln);
    if (rc)
        return rc;
    struct bl_drafter_sim sim;
    if ((rc = bl_drafter_simulate(dr, data, valid, &sim, err)))
        return rc;
    if (loss)
        *loss = cnt ? sum / (double)cnt : NAN;
    for (int j = 0; j < K; j++)
        if (top1)
            top1[j] = sim.compared[j] ? (double)sim.agree[j] / (double)sim.compared[j] : NAN;
    return BL_OK;
}

static int train_eagle(bl_drafter *dr, const struct bl_drafter_data *data, const unsigned char *valid,
                       const struct bl_drafter_train_params *p, struct bl_drafter_train_stats *st, bl_err *err)
{
    enum { W = BLI_EAGLE_WINDOW };
    memset(st, 0, sizeof *st);
    if (data->d != dr->cfg.d || data->k < 1 || !data->seq)
        return bli_err(err, BL_EINVAL, "training set of width %" PRId64 " for a drafter of width %" PRId64, data->d,
                       dr->cfg.d);
    if (p->steps < 0 || p->batch < 1 || p->batch > 1 << 20 || !(p->lr > 0) || !(p->weight_decay >= 0) ||
        !(p->clip >= 0))
        return bli_err(err, BL_EINVAL, "training parameters out of range (steps %" PRId64 ", batch %" PRId64
                       ", lr %g, weight decay %g, clip %g)", p->steps, p->batch, (double)p->lr,
                       (double)p->weight_decay, (double)p->clip);
    double t0 = now();
    for (int64_t i = 0; i < data->n; i++)
        if (valid && valid[i])
            st->n_valid++;
        else
            st->n_train++;
    /* training windows: each run of training rows cut into windows of W */
    int64_t *rs = NULL, *rl = NULL, nr = runs(data, valid, 0, &rs, &rl), nw = 0;
    for (int64_t r = 0; r < nr; r++)
        nw += (rl[r] + W - 1) / W;
    int64_t *ws_ = nr >= 0 ? bli_malloc_array((size_t)(nw ? nw : 1), 3 * sizeof(int64_t)) : NULL;
    int64_t np = dr->n_params, per = p->batch / W > 0 ? p->batch / W : 1;   /* windows per step */
    int nt = bli_threads(p->n_threads);
    if (nt > per)
        nt = (int)per;
    float *g = bli_malloc_array((size_t)np, sizeof *g), *m = bli_calloc((size_t)np, sizeof *m),
          *v = bli_calloc((size_t)np, sizeof *v), *gw = bli_malloc_array((size_t)(per * np), sizeof *gw);
    double *lw = bli_malloc_array((size_t)per, sizeof *lw);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = BL_OK;
    if (nr < 0 || !ws_ || !g || !m || !v || !gw || !lw || !rng) {
        rc = bli_err(err, BL_ENOMEM, "out of memory for training %" PRId64 " parameters", np);
        goto out;
    }
    if (nw == 0) {
        rc = bli_err(err, BL_EINVAL, "no training rows");
        goto out;
    }
    for (int64_t r = 0, k = 0; r < nr; r++)
        for (int64_t o = 0; o < rl[r]; o += W, k++) {
            ws_[3 * k] = rs[r] + o;
            ws_[3 * k + 1] = rl[r] - o < W ? rl[r] - o : W;
            ws_[3 * k + 2] = o;
        }
    gsl_rng_set(rng, (unsigned long)(p->seed ^ (p->seed >> 32)) + 7);
    int64_t *order = bli_malloc_array((size_t)nw, sizeof *order);
    if (!order) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < nw; i++)
        order[i] = i;
    bli_blas_single_threaded();
    int64_t warm = p->warmup >= 0 ? p->warmup : p->steps / 20, pos = nw;
    double run_loss = 0;
    int64_t run_n = 0;
    for (int64_t s = 0; s < p->steps && !rc; s++) {
        int64_t *pk = bli_malloc_array((size_t)per, sizeof *pk);
        if (!pk) {
            rc = bli_err(err, BL_ENOMEM, "out of memory");
            break;
        }
        for (int64_t b = 0; b < per; b++) {
            if (pos >= nw) {
                gsl_ran_shuffle(rng, order, (size_t)nw, sizeof *order);
                pos = 0;
            }
            pk[b] = order[pos++];
        }
        int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : failed)
        {
            struct bli_eagle_ws w;
            int32_t y[W], tgt[W];
            unsigned char fm[W];
            bl_err e2;
            if (bli_eagle_ws_init(&w, dr->eagle, W, &e2))
                failed = 1;
            else {
#pragma omp for schedule(static)
                for (int64_t b = 0; b < per; b++) {
                    const int64_t *x = ws_ + 3 * pk[b];
                    lw[b] = eagle_window(dr, data, x[0], x[1], x[2], &w, y, tgt, fm, gw + b * np, &e2);
                    if (isnan(lw[b]))
                        failed = 1;
                }
                bli_eagle_ws_release(&w);
            }
        }
        free(pk);
        if (failed) {
            rc = bli_err(err, BL_ENOMEM, "EAGLE training step %" PRId64 " failed", s + 1);
            break;
        }
        /* the mean over the windows, summed in window order */
        double loss = 0;
        for (int64_t i = 0; i < np; i++) {
            double acc = 0;
            for (int64_t b = 0; b < per; b++)
                acc += gw[b * np + i];
            g[i] = (float)(acc / (double)per);
        }
        for (int64_t b = 0; b < per; b++)
            loss += lw[b] / (double)per;
        run_loss += loss;
        run_n++;
        adamw(dr, g, m, v, s, warm, p);
        if ((rc = after_step(dr, data, valid, p, st, s, nt, &run_loss, &run_n, err)))
            break;
    }
    free(order);
    if (!rc)
        st->steps = p->steps;
out:
    st->seconds = now() - t0;
    free(rs);
    free(rl);
    free(ws_);
    free(g);
    free(m);
    free(v);
    free(gw);
    free(lw);
    if (rng)
        gsl_rng_free(rng);
    return rc;
}
