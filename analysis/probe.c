/* analysis/probe.c: the future-token probe (bitlens/analysis.h, "probe").
 *
 * Usable information about x_{t+k} in r_t (V-information, Xu et al. 2020):
 * an affine map into the model's own final norm and unembedding (a "future
 * lens", Pal et al. 2023; a "tuned lens" translator, Belrose et al. 2023)
 * trained on some positions, its cross-entropy measured on the others.
 *
 * Forward, one row x [d_in] with target y:
 *   h = A x + b                       A [d x d_in], b [d]
 *   RMSNorm:   s = sqrt(mean(h^2) + eps),      xhat = h / s
 *   LayerNorm: s = sqrt(var(h) + eps),         xhat = (h - mean(h)) / s
 *   n = w * xhat (+ beta for LayerNorm)        elementwise
 *   z = tau U n + c                   U [n_vocab x d], c [n_vocab], tau a scalar
 *   loss = log sum_v exp(z_v) - z_y   nats; the mean over the batch
 *
 * c, a learned logit bias, is not in the model: it is there so that the
 * probe's family holds the unigram (V-information needs a family that can
 * ignore its input, Xu et al. 2020).  Without it, softmax(U n) with n
 * confined by the norm (|n| fixed, and mean 0 for LayerNorm) cannot in
 * general express the unigram when n_vocab > d, and the probe's held-out
 * cross-entropy stays above the unigram's for reasons unrelated to r: in
 * tests/test-probe.c a probe without c scores -0.73 bits (RMSNorm) and
 * -0.35 bits (LayerNorm) on a token the stream does not encode, against
 * -0.08 with c.  c starts at the log of the smoothed training unigram, so
 * a probe whose A r contributed nothing would predict exactly that.
 * tau, a learned logit scale, lets the probe pass smoothly from that
 * unigram (tau = 0, whatever A) to the model's own head (tau = 1): the norm
 * fixes |n|, so without it the only way to weaken a confident but useless
 * U n is to turn A, which an optimizer starting at the lens does slowly.
 *
 * Backward (B rows in the batch; g = dL/dn * w elementwise):
 *   dL/dz = (softmax(z) - onehot(y)) / B
 *   dL/dn = dL/dz U                   (a row of [B x V] times [V x d])
 *   RMSNorm:   dL/dh = (g - xhat * mean(g * xhat)) / s
 *   LayerNorm: dL/dh = (g - mean(g) - xhat * mean(g * xhat)) / s
 *     (from d s / d h_j = (h_j - mean) / (d s), and for LayerNorm the
 *     mean's own derivative 1/d, which takes mean(g) out)
 *   dL/dA = sum over rows dL/dh x^T   ([d x B] times [B x d_in])
 *   dL/db = sum over rows dL/dh
 *   dL/dc = sum over rows dL/dz
 *   dL/dtau = sum over rows and v of dL/dz_v (U n)_v; dL/dn above is
 *     then tau dL/dz U
 * The three batch products go to cblas_sgemm (OpenBLAS through
 * <gsl/gsl_cblas.h>), the columns of each output split across the threads;
 * everything per row runs in a parallel loop over rows.  Each value is made
 * by one thread in a fixed order, and each product cut into blocks that
 * depend only on its sizes, so a fit is the same bits for the same inputs
 * and seed whatever the number of threads.
 *
 * Training: A starts at the identity when d_in == d, else N(0, 1/d_in); b
 * at 0; c at the log of the smoothed training unigram; tau at 0, where the
 * probe predicts that unigram exactly, or, when d_in == d and it scores
 * better on the validation rows, at 1 (the logit lens plus c, a far better
 * start for the next token at late layers).  Each epoch visits the
 * training rows in an order shuffled by MT19937 (gsl_rng) seeded from
 * params.seed; the last batch of an epoch may be short.
 * Adam (beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected) at a fixed rate
 * after an optional linear warm-up (an internal option lets the rate fall
 * linearly towards 0 after it), with decoupled weight decay (AdamW) pulling
 * A towards the identity (d_in == d) or 0; b, c and tau are not decayed.  With validation
 * rows the best epoch is kept and training stops after `patience` epochs
 * without a better validation loss.
 *
 * Evaluation, on the held-out rows: the probe's cross-entropy, the
 * cross-entropy under the training targets' unigram with add-one smoothing
 * ((count + 1) / (n_train + n_vocab)), and the held-out targets' empirical
 * entropy, all in bits.
 *
 * Memory: the rows stay the caller's; a fit holds A, b, c with their
 * gradients and Adam moments, one batch's buffers (struct bli_probe_ws, the
 * batch x n_vocab logits the largest), the row indices and n_test doubles of
 * per_position. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <bitlens/analysis.h>
#include "internal.h"
#include "kernels.h"
#include "probe_internal.h"

/* Below this many multiply-adds a product or a loop runs on one thread. */
#define PAR_MIN_WORK (1 << 16)

#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8f

struct bl_probe_params bl_probe_default_params(void)
{
    struct bl_probe_params p = {
        .epochs = 16,
        .patience = 2,
        .batch = 64,
        .lr = 1e-3f,
        .weight_decay = 0.0f,
        .seed = 1,
        .n_threads = 0,
    };
    return p;
}

void bl_probe_result_release(struct bl_probe_result *r)
{
    if (!r)
        return;
    free(r->per_position);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- workspace */

void bli_probe_ws_release(struct bli_probe_ws *w)
{
    if (!w)
        return;
    free(w->x);
    free(w->y);
    free(w->h);
    free(w->xhat);
    free(w->inv);
    free(w->n);
    free(w->z);
    free(w->ce);
    free(w->gtau);
    memset(w, 0, sizeof *w);
}

int bli_probe_ws_init(struct bli_probe_ws *w, const struct bl_probe_head *head, int64_t d_in,
                      int64_t cap, int n_threads)
{
    BL_ASSERT(head && head->d > 0 && head->n_vocab > 0 && d_in > 0 && cap > 0);
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->d = head->d;
    w->d_in = d_in;
    w->n_vocab = head->n_vocab;
    w->n_threads = n_threads > 0 ? n_threads : 1;
    size_t c = (size_t)cap;
    int64_t widest = d_in > head->n_vocab ? d_in : head->n_vocab;
    if (head->d > widest)
        widest = head->d;
    if ((uint64_t)cap > SIZE_MAX / sizeof(double) / (uint64_t)widest)
        return BL_ENOMEM;
    w->x = bli_malloc_array(c * (size_t)d_in, sizeof *w->x);
    w->y = bli_malloc_array(c, sizeof *w->y);
    w->h = bli_malloc_array(c * (size_t)head->d, sizeof *w->h);
    w->xhat = bli_malloc_array(c * (size_t)head->d, sizeof *w->xhat);
    w->inv = bli_malloc_array(c, sizeof *w->inv);
    w->n = bli_malloc_array(c * (size_t)head->d, sizeof *w->n);
    w->z = bli_malloc_array(c * (size_t)head->n_vocab, sizeof *w->z);
    w->ce = bli_malloc_array(c, sizeof *w->ce);
    w->gtau = bli_malloc_array(c, sizeof *w->gtau);
    if (!w->x || !w->y || !w->h || !w->xhat || !w->inv || !w->n || !w->z || !w->ce || !w->gtau)
        return BL_ENOMEM;
    return BL_OK;
}

/* ---------------------------------------------------------------- products */

/* C [M x N] = op(A) op(B), row-major, the columns of C cut into blocks
 * whose width depends only on N (a multiple of 16, at most 32 blocks) and
 * the blocks shared among up to nt threads.  Each block is one cblas_sgemm
 * call, the same call whatever nt is, and OpenBLAS is kept to one thread
 * (bli_probe_fit), so C does not depend on the number of threads. */
static void sgemm_cols(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int64_t M, int64_t N,
                       int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                       float *C, int64_t ldc, int nt)
{
    BL_ASSERT(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
              ldb <= INT_MAX && ldc <= INT_MAX);
    int64_t per = (N + 31) / 32;
    per = per < 64 ? 64 : (per + 15) / 16 * 16;
    int64_t nb = (N + per - 1) / per;
    if ((double)M * (double)N * (double)K < 4.0 * PAR_MIN_WORK)
        nt = 1;
    if (nt > nb)
        nt = (int)nb;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t i = 0; i < nb; i++) {
        int64_t n0 = i * per, n1 = n0 + per < N ? n0 + per : N;
        const float *Bp = tb == CblasNoTrans ? B + n0 : B + n0 * ldb;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)(n1 - n0), (int)K, alpha, A, (int)lda, Bp,
                    (int)ldb, 0.0f, C + n0, (int)ldc);
    }
}

/* Threads for a loop over `rows` rows of `per_row` operations each. */
static int loop_threads(const struct bli_probe_ws *w, int64_t rows, int64_t per_row)
{
    return (double)rows * (double)per_row >= PAR_MIN_WORK ? w->n_threads : 1;
}

/* ---------------------------------------------------------------- forward */

/* One row of the norm: h [d] in, xhat [d], *inv and out [d]. */
static void norm_row(const struct bl_probe_head *head, const float *h, float *xhat, float *inv,
                     float *out)
{
    int64_t d = head->d;
    double mean = 0.0, ms = 0.0;
    if (head->norm == BL_NORM_LAYER) {
        for (int64_t j = 0; j < d; j++)
            mean += h[j];
        mean /= (double)d;
    }
    for (int64_t j = 0; j < d; j++) {
        double c = h[j] - mean;
        ms += c * c;
    }
    ms /= (double)d;
    float iv = (float)(1.0 / sqrt(ms + (double)head->norm_eps));
    *inv = iv;
    for (int64_t j = 0; j < d; j++) {
        xhat[j] = (float)((h[j] - mean) * iv);
        out[j] = head->norm_w[j] * xhat[j];
    }
    if (head->norm == BL_NORM_LAYER && head->norm_b)
        for (int64_t j = 0; j < d; j++)
            out[j] += head->norm_b[j];
}

/* h = x A^T + b, the norm, z = n U^T over `rows` rows of w. */
static void forward(const struct bl_probe_head *head, const float *A, const float *b,
                    const float *x, int64_t rows, struct bli_probe_ws *w)
{
    int64_t d = head->d, V = head->n_vocab, d_in = w->d_in;
    sgemm_cols(CblasNoTrans, CblasTrans, rows, d, d_in, 1.0f, x, d_in, A, d_in, w->h, d, w->n_threads);
    int nt = loop_threads(w, rows, 4 * d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < rows; r++) {
        float *h = w->h + r * d;
        for (int64_t j = 0; j < d; j++)
            h[j] += b[j];
        norm_row(head, h, w->xhat + r * d, &w->inv[r], w->n + r * d);
    }
    sgemm_cols(CblasNoTrans, CblasTrans, rows, V, d, 1.0f, w->n, d, head->unembed, d, w->z, V,
               w->n_threads);
}

/* z = tau z0 + c (c may be NULL) from w->z = z0 = U n; each row's
 * cross-entropy (nats) into w->ce; with grad, z becomes dL/dz of the mean
 * over the rows and w->gtau[r] each row's part of dL/dtau = sum_v dL/dz_v
 * z0_v.  Returns the mean. */
static double cross_entropy(const float *c, float tau, const int32_t *y, int64_t rows, int grad,
                            struct bli_probe_ws *w)
{
    int64_t V = w->n_vocab;
    int nt = loop_threads(w, rows, 8 * V);
    float scale = 1.0f / (float)rows;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < rows; r++) {
        float *z = w->z + r * V;
        float mx = -INFINITY;
        for (int64_t v = 0; v < V; v++) {
            float zz = tau * z[v] + (c ? c[v] : 0.0f);
            if (zz > mx)
                mx = zz;
        }
        float z0y = z[y[r]], zy = tau * z0y + (c ? c[y[r]] : 0.0f);
        double s = 0.0, pz = 0.0;
        for (int64_t v = 0; v < V; v++) {
            float e = expf(tau * z[v] + (c ? c[v] : 0.0f) - mx);
            s += e;
            pz += (double)e * z[v];
            if (grad)
                z[v] = e;
        }
        w->ce[r] = log(s) + (double)mx - (double)zy;
        if (grad) {
            float is = (float)(1.0 / s);
            for (int64_t v = 0; v < V; v++)
                z[v] = z[v] * is * scale;
            z[y[r]] -= scale;
            w->gtau[r] = (pz / s - (double)z0y) * (double)scale;
        }
    }
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++)
        sum += w->ce[r];
    return sum / (double)rows;
}

double bli_probe_loss(const struct bl_probe_head *head, const float *A, const float *b,
                      const float *c, float tau, const float *x, const int32_t *y, int64_t rows,
                      struct bli_probe_ws *w)
{
    BL_ASSERT(rows > 0 && rows <= w->cap && head->d == w->d && head->n_vocab == w->n_vocab);
    forward(head, A, b, x, rows, w);
    return cross_entropy(c, tau, y, rows, 0, w);
}

/* ---------------------------------------------------------------- backward */

/* One row: dn [d] = dL/dn in, dh [d] = dL/dh out. */
static void norm_row_backward(const struct bl_probe_head *head, const float *dn, const float *xhat,
                              float inv, float *dh)
{
    int64_t d = head->d;
    double gm = 0.0, gx = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double g = (double)dn[j] * head->norm_w[j];
        gm += g;
        gx += g * xhat[j];
    }
    gm = head->norm == BL_NORM_LAYER ? gm / (double)d : 0.0;
    gx /= (double)d;
    for (int64_t j = 0; j < d; j++) {
        double g = (double)dn[j] * head->norm_w[j];
        dh[j] = (float)((g - gm - xhat[j] * gx) * inv);
    }
}

double bli_probe_loss_grad(const struct bl_probe_head *head, const float *A, const float *b,
                           const float *c, float tau, const float *x, const int32_t *y, int64_t rows,
                           struct bli_probe_ws *w, float *gA, float *gb, float *gc, float *gtau)
{
    BL_ASSERT(rows > 0 && rows <= w->cap && head->d == w->d && head->n_vocab == w->n_vocab);
    int64_t d = head->d, V = head->n_vocab, d_in = w->d_in;
    forward(head, A, b, x, rows, w);
    double loss = cross_entropy(c, tau, y, rows, 1, w);
    if (gtau) {
        double g = 0.0;
        for (int64_t r = 0; r < rows; r++)
            g += w->gtau[r];
        *gtau = (float)g;
    }
    if (c && gc) {
        for (int64_t v = 0; v < V; v++)
            gc[v] = 0.0f;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t v = 0; v < V; v++)
                gc[v] += w->z[r * V + v];
    }
    /* dL/dn = tau dL/dz U into w->n (the norm's output is not needed again) */
    sgemm_cols(CblasNoTrans, CblasNoTrans, rows, d, V, tau, w->z, V, head->unembed, d, w->n, d,
               w->n_threads);
    int nt = loop_threads(w, rows, 6 * d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < rows; r++)
        norm_row_backward(head, w->n + r * d, w->xhat + r * d, w->inv[r], w->h + r * d);
    /* gA = dh^T x: [d x rows] [rows x d_in] */
    sgemm_cols(CblasTrans, CblasNoTrans, d, d_in, rows, 1.0f, w->h, d, x, d_in, gA, d_in, w->n_threads);
    for (int64_t j = 0; j < d; j++)
        gb[j] = 0.0f;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < d; j++)
            gb[j] += w->h[r * d + j];
    return loss;
}

/* ---------------------------------------------------------------- fit */

/* MT19937 takes a 32-bit seed: fold all 64 bits (the splitmix64 finalizer)
 * and keep clear of 0, which GSL replaces with its default. */
static unsigned long seed32(uint64_t seed)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint32_t s = (uint32_t)(z ^ (z >> 32));
    return s ? s : 1;
}

/* One Adam step on n parameters; `diag` (if >= 0) marks a d x d_in matrix
 * whose decay pulls towards the identity: element i is on the diagonal when
 * i % (diag + 1) == 0 and i < diag * diag. */
static void adam_step(float *theta, const float *g, float *m, float *v, int64_t n, double lr,
                      double wd, double bc1, double bc2, int64_t diag, int nt)
{
    float flr = (float)lr, fwd = (float)wd;
    float ibc1 = (float)(1.0 / bc1), ibc2 = (float)(1.0 / bc2);
    float b1 = (float)ADAM_BETA1, b2 = (float)ADAM_BETA2;
    if (n < PAR_MIN_WORK)
        nt = 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float step = (m[i] * ibc1) / (sqrtf(v[i] * ibc2) + ADAM_EPS);
        float t = theta[i];
        if (fwd != 0.0f) {
            float target = diag >= 0 && i < diag * diag && i % (diag + 1) == 0 ? 1.0f : 0.0f;
            step += fwd * (t - target);
        }
        theta[i] = t - flr * step;
    }
}

static int check_params(const struct bl_probe_head *head, int64_t d_in,
                        const struct bl_probe_params *p, bl_err *err)
{
    if (head->d < 1)
        return bli_err(err, BL_EINVAL, "probe head of width %lld", (long long)head->d);
    if (head->n_vocab < 1)
        return bli_err(err, BL_EINVAL, "probe head of %lld tokens", (long long)head->n_vocab);
    if (head->norm != BL_NORM_RMS && head->norm != BL_NORM_LAYER)
        return bli_err(err, BL_EINVAL, "probe head: unknown norm %d", head->norm);
    if (!(head->norm_eps >= 0.0f) || !isfinite(head->norm_eps))
        return bli_err(err, BL_EINVAL, "probe head: norm epsilon %g", (double)head->norm_eps);
    if (d_in < 1)
        return bli_err(err, BL_EINVAL, "probe input width %lld must be >= 1", (long long)d_in);
    if (p->epochs < 1)
        return bli_err(err, BL_EINVAL, "probe epochs %d must be >= 1", p->epochs);
    if (p->patience < 1)
        return bli_err(err, BL_EINVAL, "probe patience %d must be >= 1", p->patience);
    if (p->batch < 1)
        return bli_err(err, BL_EINVAL, "probe batch %lld must be >= 1", (long long)p->batch);
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        return bli_err(err, BL_EINVAL, "probe learning rate %g must be > 0", (double)p->lr);
    if (!(p->weight_decay >= 0.0f) || !isfinite(p->weight_decay))
        return bli_err(err, BL_EINVAL, "probe weight decay %g must be >= 0",
                       (double)p->weight_decay);
    return BL_OK;
}

static void gather(const float *x, int64_t d_in, const int32_t *y, const int64_t *idx,
                   int64_t rows, struct bli_probe_ws *w)
{
    for (int64_t r = 0; r < rows; r++) {
        memcpy(w->x + r * d_in, x + idx[r] * d_in, (size_t)d_in * sizeof *x);
        w->y[r] = y[idx[r]];
    }
}

/* The mean loss (nats) over rows idx[0..n-1], in batches of cap. */
static double mean_loss(const struct bl_probe_head *head, const float *A, const float *b, const float *c,
                        float tau, const float *x, int64_t d_in, const int32_t *y, const int64_t *idx, int64_t n, int64_t cap,
                        struct bli_probe_ws *w)
{
    double s = 0;
    for (int64_t r0 = 0; r0 < n; r0 += cap) {
        int64_t rows = n - r0 < cap ? n - r0 : cap;
        gather(x, d_in, y, idx + r0, rows, w);
        s += bli_probe_loss(head, A, b, c, tau, w->x, w->y, rows, w) * (double)rows;
    }
    return n ? s / (double)n : NAN;
}

static void keep(float *A2, float *b2, float *c2, const float *A, const float *b, const float *c, size_t na, int64_t d,
                 int64_t V)
{
    memcpy(A2, A, na * sizeof *A);
    memcpy(b2, b, (size_t)d * sizeof *b);
    memcpy(c2, c, (size_t)V * sizeof *c);
}

int bli_probe_fit(const struct bl_probe_head *head, const float *x, int64_t d_in,
                  const int32_t *y, const unsigned char *train, int64_t n,
                  const struct bl_probe_params *p, const struct bli_probe_opts *opts,
                  struct bl_probe_result *out, float *A_out, float *b_out, float *c_out,
                  float *tau_out, bl_err *err)
{
    BL_ASSERT(head && p && out && (n == 0 || (x && y && train)));
    memset(out, 0, sizeof *out);
    int rc = check_params(head, d_in, p, err);
    if (rc)
        return rc;
    BL_ASSERT(head->norm_w && head->unembed);
    int64_t warmup = opts ? opts->warmup : 0;
    int use_c = !(opts && opts->no_logit_bias);
    int decay = opts && opts->lr_decay;
    if (warmup < 0)
        return bli_err(err, BL_EINVAL, "probe warm-up of %lld steps", (long long)warmup);
    if (n < 0)
        return bli_err(err, BL_EINVAL, "%lld probe rows", (long long)n);

    int64_t d = head->d, V = head->n_vocab;
    /* A, its gradient and two Adam moments: 4 d x d_in floats */
    if ((uint64_t)d > SIZE_MAX / sizeof(float) / (uint64_t)d_in / 4)
        return bli_err(err, BL_ENOMEM, "probe of %lld x %lld parameters", (long long)d,
                       (long long)d_in);
    int64_t n_train = 0, n_valid = 0, n_test = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] == -1)
            continue;
        if (y[i] < 0 || y[i] >= V)
            return bli_err(err, BL_EINVAL, "row %lld: target %ld outside [0, %lld)",
                           (long long)i, (long)y[i], (long long)V);
        for (int64_t j = 0; j < d_in; j++)
            if (!isfinite(x[i * d_in + j]))
                return bli_err(err, BL_EINVAL, "row %lld: non-finite value at column %lld",
                               (long long)i, (long long)j);
        if (train[i] == 2)
            n_valid++;
        else if (train[i])
            n_train++;
        else
            n_test++;
    }
    if (n_train == 0)
        return bli_err(err, BL_EINVAL, "no training rows (train[i] != 0 with a target) among %lld",
                       (long long)n);
    if (n_test == 0)
        return bli_err(err, BL_EINVAL, "no held-out rows (train[i] == 0 with a target) among %lld",
                       (long long)n);

    int nt = bli_threads(p->n_threads);
    bli_blas_single_threaded();   /* the threads here split the products */
    int64_t cap = p->batch;
    int64_t most = n_train > n_test ? n_train : n_test;
    most = most > n_valid ? most : n_valid;
    if (cap > most)
        cap = most;
    size_t na = (size_t)d * (size_t)d_in;

    struct bli_probe_ws w;
    memset(&w, 0, sizeof w);
    gsl_rng *rng = NULL;
    int64_t *idx_train = bli_malloc_array((size_t)n_train, sizeof *idx_train);
    int64_t *idx_test = bli_malloc_array((size_t)n_test, sizeof *idx_test);
    int64_t *idx_valid = bli_malloc_array((size_t)(n_valid ? n_valid : 1), sizeof *idx_valid);
    /* the best epoch's parameters, with validation rows */
    float *bestA = n_valid ? bli_malloc_array(na, sizeof *bestA) : NULL;
    float *bestb = n_valid ? bli_malloc_array((size_t)d, sizeof *bestb) : NULL;
    float *bestc = n_valid ? bli_malloc_array((size_t)V, sizeof *bestc) : NULL;
    int64_t *count = bli_calloc((size_t)V, sizeof *count);
    int64_t *count_test = bli_calloc((size_t)V, sizeof *count_test);
    float *A = bli_malloc_array(na, sizeof *A), *gA = bli_malloc_array(na, sizeof *gA);
    float *mA = bli_calloc(na, sizeof *mA), *vA = bli_calloc(na, sizeof *vA);
    float *b = bli_calloc((size_t)d, sizeof *b), *gb = bli_malloc_array((size_t)d, sizeof *gb);
    float *mb = bli_calloc((size_t)d, sizeof *mb), *vb = bli_calloc((size_t)d, sizeof *vb);
    float *c = bli_calloc((size_t)V, sizeof *c), *gc = bli_malloc_array((size_t)V, sizeof *gc);
    float *mc = bli_calloc((size_t)V, sizeof *mc), *vc = bli_calloc((size_t)V, sizeof *vc);
    double *per = bli_malloc_array((size_t)n_test, sizeof *per);
    if (!idx_train || !idx_test || !count || !count_test || !A || !gA || !mA || !vA || !b ||
        !gb || !mb || !vb || !c || !gc || !mc || !vc || !per || !idx_valid ||
        (n_valid && (!bestA || !bestb || !bestc)))
        goto nomem;
    if (bli_probe_ws_init(&w, head, d_in, cap, nt))
        goto nomem;
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        goto nomem;
    gsl_rng_set(rng, seed32(p->seed));

    n_train = n_test = n_valid = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] == -1)
            continue;
        if (train[i] == 2) {
            idx_valid[n_valid++] = i;
        } else if (train[i]) {
            idx_train[n_train++] = i;
            count[y[i]]++;
        } else {
            idx_test[n_test++] = i;
            count_test[y[i]]++;
        }
    }

    /* c: the log of the smoothed training unigram (softmax(c) is that
     * unigram); b = 0; A: the identity (d_in == d), else N(0, 1/d_in) */
    double denom = (double)n_train + (double)V;
    for (int64_t v = 0; v < V; v++)
        c[v] = (float)log(((double)count[v] + 1.0) / denom);
    /* the start: A = I when d_in == d, else N(0, 1/d_in); b = 0; and
     * tau = 0, where the probe predicts the training unigram exactly and
     * can move smoothly away from it, or, when d_in == d and it scores
     * better on the validation rows (the training rows without them),
     * tau = 1: the logit lens, a far better start for the next token at
     * late layers */
    float tau = 0.0f, gtau = 0.0f, mtau = 0.0f, vtau = 0.0f, besttau = 0.0f;
    if (d_in == d) {
        memset(A, 0, na * sizeof *A);
        for (int64_t j = 0; j < d; j++)
            A[j * d_in + j] = 1.0f;
        const int64_t *ix = n_valid ? idx_valid : idx_train;
        int64_t nx = n_valid ? n_valid : n_train;
        double uni = mean_loss(head, A, b, use_c ? c : NULL, 0.0f, x, d_in, y, ix, nx, cap, &w);
        double lens = mean_loss(head, A, b, use_c ? c : NULL, 1.0f, x, d_in, y, ix, nx, cap, &w);
        if (lens < uni)
            tau = 1.0f;
    } else {
        double sd = 1.0 / sqrt((double)d_in);
        for (size_t i = 0; i < na; i++)
            A[i] = (float)gsl_ran_gaussian(rng, sd);
    }
    out->logit_scale_start = tau;

    int64_t t = 0, steps = (int64_t)p->epochs * ((n_train + cap - 1) / cap);
    int64_t w0 = warmup > 1 ? warmup : 1;   /* the last step of the warm-up */
    double wd = p->weight_decay;
    double best = INFINITY;
    int bad = 0, e;
    out->best_epoch = 0;
    if (n_valid) {
        best = mean_loss(head, A, b, use_c ? c : NULL, tau, x, d_in, y, idx_valid, n_valid, cap, &w);
        keep(bestA, bestb, bestc, A, b, c, na, d, V);
        besttau = tau;
    }
    for (e = 0; e < p->epochs && bad < p->patience; e++) {
        gsl_ran_shuffle(rng, idx_train, (size_t)n_train, sizeof *idx_train);
        for (int64_t r0 = 0; r0 < n_train; r0 += cap) {
            int64_t rows = n_train - r0 < cap ? n_train - r0 : cap;
            gather(x, d_in, y, idx_train + r0, rows, &w);
            bli_probe_loss_grad(head, A, b, use_c ? c : NULL, tau, w.x, w.y, rows, &w, gA, gb, gc, &gtau);
            t++;
            double lr = p->lr;
            if (warmup > 0 && t < warmup)
                lr *= (double)t / (double)warmup;
            if (decay && t > w0)
                lr *= (double)(steps - t + 1) / (double)(steps - w0 + 1);
            double bc1 = 1.0 - pow(ADAM_BETA1, (double)t);
            double bc2 = 1.0 - pow(ADAM_BETA2, (double)t);
            adam_step(A, gA, mA, vA, (int64_t)na, lr, wd, bc1, bc2, d_in == d ? d : -1, nt);
            adam_step(&tau, &gtau, &mtau, &vtau, 1, lr, 0.0, bc1, bc2, -1, 1);
            adam_step(b, gb, mb, vb, d, lr, 0.0, bc1, bc2, -1, nt);
            if (use_c)
                adam_step(c, gc, mc, vc, V, lr, 0.0, bc1, bc2, -1, nt);
        }
        if (n_valid) {
            double v = mean_loss(head, A, b, use_c ? c : NULL, tau, x, d_in, y, idx_valid, n_valid, cap, &w);
            if (v < best) {
                best = v;
                bad = 0;
                out->best_epoch = e + 1;
                keep(bestA, bestb, bestc, A, b, c, na, d, V);
                besttau = tau;
            } else {
                bad++;
            }
        }
    }
    out->epochs_run = e;
    if (n_valid) {
        keep(A, b, c, bestA, bestb, bestc, na, d, V);
        tau = besttau;
    } else {
        out->best_epoch = e;
    }
    out->logit_scale = tau;
    out->ce_valid = n_valid ? best / log(2.0) : NAN;
    out->ce_train = mean_loss(head, A, b, use_c ? c : NULL, tau, x, d_in, y, idx_train, n_train, cap, &w) / log(2.0);

    /* held-out evaluation */
    double ln2 = log(2.0);
    double sum_probe = 0.0, sum_uni = 0.0;
    for (int64_t r0 = 0; r0 < n_test; r0 += cap) {
        int64_t rows = n_test - r0 < cap ? n_test - r0 : cap;
        gather(x, d_in, y, idx_test + r0, rows, &w);
        bli_probe_loss(head, A, b, use_c ? c : NULL, tau, w.x, w.y, rows, &w);
        for (int64_t r = 0; r < rows; r++) {
            double uni = -log(((double)count[w.y[r]] + 1.0) / denom);
            sum_probe += w.ce[r];
            sum_uni += uni;
            per[r0 + r] = (uni - w.ce[r]) / ln2;
        }
    }
    double h = 0.0;
    for (int64_t v = 0; v < V; v++)
        if (count_test[v] > 0) {
            double q = (double)count_test[v] / (double)n_test;
            h -= q * log2(q);
        }
    out->ce_probe = sum_probe / (double)n_test / ln2;
    out->ce_unigram = sum_uni / (double)n_test / ln2;
    out->h_unigram = h;
    out->bits = out->ce_unigram - out->ce_probe;
    out->n_train = n_train;
    out->n_valid = n_valid;
    out->n_test = n_test;
    out->per_position = per;
    per = NULL;
    if (A_out)
        memcpy(A_out, A, na * sizeof *A);
    if (b_out)
        memcpy(b_out, b, (size_t)d * sizeof *b);
    if (c_out)
        memcpy(c_out, c, (size_t)V * sizeof *c);
    if (tau_out)
        *tau_out = tau;
    rc = BL_OK;
    goto done;
nomem:
    rc = bli_err(err, BL_ENOMEM, "out of memory for a probe of %lld x %lld (batch %lld)",
                 (long long)d, (long long)d_in, (long long)cap);
done:
    if (rng)
        gsl_rng_free(rng);
    bli_probe_ws_release(&w);
    free(idx_train);
    free(idx_test);
    free(idx_valid);
    free(bestA);
    free(bestb);
    free(bestc);
    free(count);
    free(count_test);
    free(A);
    free(gA);
    free(mA);
    free(vA);
    free(b);
    free(gb);
    free(mb);
    free(vb);
    free(c);
    free(gc);
    free(mc);
    free(vc);
    free(per);
    return rc;
}

int bl_probe_fit(const struct bl_probe_head *head, const float *x, int64_t d_in, const int32_t *y,
                 const unsigned char *train, int64_t n, const struct bl_probe_params *p,
                 struct bl_probe_result *out, bl_err *err)
{
    return bli_probe_fit(head, x, d_in, y, train, n, p, NULL, out, NULL, NULL, NULL, NULL, err);
}
