/* tests/test-probe.c: the future-token probe (analysis/probe.c) against
 * known answers.
 *
 * 1. Gradient check, per parameter group (A, b and the logit bias c) and
 *    per norm (RMSNorm; LayerNorm with a bias): the analytic gradient of
 *    bli_probe_loss_grad against central differences of an independent
 *    double-precision forward pass written here (plain loops, no BLAS).
 *    Small: d 12, d_in 9, vocabulary 17, 7 rows, all different so a
 *    transposed A or U or a swapped stride changes the answer.  Large: d 64,
 *    d_in 72, vocabulary 300, 256 rows on 2 threads, past every threshold
 *    at which products and row loops split, and compared with 1 thread.
 *    Tolerance 1e-3 relative (L2 over the group, and max error over max
 *    |fd|): the f32 gradient is good to about 1e-6, the double differences
 *    with step 1e-4 to about 1e-8.
 * 2. A synthetic residual stream with a known answer: tokens i.i.d. from
 *    p(v) ~ exp(-v/12) over 64 tokens (entropy H = 4.984 bits, computed
 *    here), r_t = E1[x_{t+1}] + E2[x_{t+2}] + E3[x_{t+3}] + noise (random
 *    N(0,1) codebooks in d_in 48, noise sd 0.1), a random head (U [64 x
 *    32] of sd 0.5, logits of sd about 3; w in [0.5, 1.5]).  x_{t+1..3} are
 *    determined by r_t, so the probe must recover at least 90% of H for
 *    k = 1, 2, 3; x_{t+4}, and shuffled targets, are independent of r_t:
 *    |bits| < 5% of H.  h_unigram, the held-out sample's plug-in entropy,
 *    must match H within its bias (V-1)/(2 n ln 2) plus 4 standard errors.
 *    40000 rows, 32000 for training, 10 epochs of batch 64 at lr 1e-2 and
 *    weight decay 0.1: about 0.3 s a fit.  Fewer rows leave the null case
 *    further below 0 (a probe fitted to 4800 rows scores -0.36 bits on
 *    shuffled targets: overfitting and Adam's noise at a fixed rate, both
 *    shrinking with more rows), hence 40000 rather than a few thousand.
 * 3. Determinism: the same seed and threads give the same bits, another
 *    seed close ones; the first Adam step is known exactly (bias
 *    correction, warm-up, decay towards I or 0).
 * 4. Every BL_EINVAL of bl_probe_fit, and BL_ENOMEM for an impossible A.
 * The whole program takes under 10 s (about 20 s with sanitizers). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <bitlens/analysis.h>
#include "probe_internal.h"
#include "tap.h"

/* ---------------------------------------------------------------- helpers */

struct head_buf {
    struct bl_probe_head h;
    float *w, *beta, *U;
};

static void head_make(struct head_buf *hb, int64_t d, int64_t V, int norm, double u_sd,
                      gsl_rng *rng)
{
    hb->w = malloc((size_t)d * sizeof *hb->w);
    hb->beta = malloc((size_t)d * sizeof *hb->beta);
    hb->U = malloc((size_t)(V * d) * sizeof *hb->U);
    for (int64_t j = 0; j < d; j++) {
        hb->w[j] = (float)(0.5 + gsl_rng_uniform(rng));
        hb->beta[j] = (float)gsl_ran_gaussian(rng, 0.1);
    }
    for (int64_t i = 0; i < V * d; i++)
        hb->U[i] = (float)gsl_ran_gaussian(rng, u_sd);
    hb->h = (struct bl_probe_head){
        .d = d,
        .n_vocab = V,
        .norm = norm,
        .norm_w = hb->w,
        .norm_b = norm == BL_NORM_LAYER ? hb->beta : NULL,
        .norm_eps = 1e-5f,
        .unembed = hb->U,
    };
}

static void head_free(struct head_buf *hb)
{
    free(hb->w);
    free(hb->beta);
    free(hb->U);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- reference */

/* The mean cross-entropy (nats) of the probe over rows, in double, written
 * from the definitions without sharing code with analysis/probe.c.  The
 * logit scale tau is ref_tau (a file-scope double, so the finite-difference
 * helper below can perturb it like any other parameter). */
static double ref_tau = 1.0;

static double ref_loss(const struct bl_probe_head *hd, const double *A, const double *b,
                       const double *c, const float *x, int64_t d_in, const int32_t *y,
                       int64_t rows)
{
    int64_t d = hd->d, V = hd->n_vocab;
    double *h = malloc((size_t)d * sizeof *h), *nv = malloc((size_t)d * sizeof *nv);
    double *z = malloc((size_t)V * sizeof *z);
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d_in;
        for (int64_t i = 0; i < d; i++) {
            double s = b[i];
            for (int64_t j = 0; j < d_in; j++)
                s += A[i * d_in + j] * xr[j];
            h[i] = s;
        }
        double mean = 0.0, var = 0.0;
        if (hd->norm == BL_NORM_LAYER) {
            for (int64_t i = 0; i < d; i++)
                mean += h[i];
            mean /= (double)d;
        }
        for (int64_t i = 0; i < d; i++)
            var += (h[i] - mean) * (h[i] - mean);
        var /= (double)d;
        double s = sqrt(var + hd->norm_eps);
        for (int64_t i = 0; i < d; i++)
            nv[i] = (h[i] - mean) / s * hd->norm_w[i] + (hd->norm_b ? hd->norm_b[i] : 0.0);
        double mx = -INFINITY;
        for (int64_t v = 0; v < V; v++) {
            double t = 0.0;
            for (int64_t i = 0; i < d; i++)
                t += (double)hd->unembed[v * d + i] * nv[i];
            t = ref_tau * t + (c ? c[v] : 0.0);
            z[v] = t;
            if (t > mx)
                mx = t;
        }
        double se = 0.0;
        for (int64_t v = 0; v < V; v++)
            se += exp(z[v] - mx);
        total += log(se) + mx - z[y[r]];
    }
    free(h);
    free(nv);
    free(z);
    return total / (double)rows;
}

/* ---------------------------------------------------------------- 1. gradient */

/* |g - fd|_2 / |fd|_2 over one group (every stride-th element), the
 * central differences taken on the reference loss by perturbing p[i] (a
 * double copy of the parameter); *max_rel = max |g - fd| / max |fd|. */
static double group_error(const struct bl_probe_head *hd, double *Ad, double *bd, double *cd,
                          double *p, const float *g, int64_t count, int64_t stride,
                          const float *x, int64_t d_in, const int32_t *y, int64_t rows,
                          double *max_rel)
{
    const double step = 1e-4;
    double num = 0.0, den = 0.0, mx_err = 0.0, mx_fd = 0.0;
    for (int64_t i = 0; i < count; i += stride) {
        double keep = p[i];
        p[i] = keep + step;
        double lp = ref_loss(hd, Ad, bd, cd, x, d_in, y, rows);
        p[i] = keep - step;
        double lm = ref_loss(hd, Ad, bd, cd, x, d_in, y, rows);
        p[i] = keep;
        double fd = (lp - lm) / (2 * step);
        double e = g[i] - fd;
        num += e * e;
        den += fd * fd;
        if (fabs(e) > mx_err)
            mx_err = fabs(e);
        if (fabs(fd) > mx_fd)
            mx_fd = fabs(fd);
    }
    *max_rel = mx_err / mx_fd;
    return sqrt(num / den);
}

/* The check at one size.  The small size (d 12, d_in 9, V 17, 7 rows) runs
 * everything on one thread whatever n_threads; the large one (d 64, d_in 72,
 * V 300, 256 rows) is past every threshold, so with 2 threads each product
 * and each loop over rows is split: there the gradient is also compared
 * with the one-thread gradient, and the finite differences taken on a
 * subset (every 97th element of A, 5th of c, 2nd of b) to keep it quick. */
static void test_gradient(int norm, int n_threads, int large)
{
    const char *name = norm == BL_NORM_RMS ? "rmsnorm" : "layernorm";
    const int64_t d = large ? 64 : 12, d_in = large ? 72 : 9, V = large ? 300 : 17;
    const int64_t rows = large ? 256 : 7;
    const int64_t sA = large ? 97 : 1, sb = large ? 2 : 1, sc = large ? 5 : 1;
    char what[96];
    snprintf(what, sizeof what, "%s, %s, %d thread(s)", name, large ? "large" : "small",
             n_threads);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7 + (unsigned long)norm);
    struct head_buf hb;
    head_make(&hb, d, V, norm, 1.0, rng);
    size_t na = (size_t)(d * d_in);
    float *A = malloc(na * sizeof *A), *b = malloc((size_t)d * sizeof *b);
    float *c = malloc((size_t)V * sizeof *c);
    double *Ad = malloc(na * sizeof *Ad), *bd = malloc((size_t)d * sizeof *bd);
    double *cd = malloc((size_t)V * sizeof *cd);
    float *gA = malloc(na * sizeof *gA), *gb = malloc((size_t)d * sizeof *gb);
    float *gc = malloc((size_t)V * sizeof *gc), *g1 = malloc(na * sizeof *g1);
    float *gb1 = malloc((size_t)d * sizeof *gb1), *gc1 = malloc((size_t)V * sizeof *gc1);
    float *x = malloc((size_t)(rows * d_in) * sizeof *x);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    for (size_t i = 0; i < na; i++)
        Ad[i] = A[i] = (float)gsl_ran_gaussian(rng, 0.5);
    for (int64_t i = 0; i < d; i++)
        bd[i] = b[i] = (float)gsl_ran_gaussian(rng, 0.3);
    for (int64_t v = 0; v < V; v++)
        cd[v] = c[v] = (float)gsl_ran_gaussian(rng, 1.0);
    for (int64_t i = 0; i < rows * d_in; i++)
        x[i] = (float)gsl_ran_gaussian(rng, 1.0);
    for (int64_t r = 0; r < rows; r++)
        y[r] = (int32_t)gsl_rng_uniform_int(rng, (unsigned long)V);

    struct bli_probe_ws w;
    int rc = bli_probe_ws_init(&w, &hb.h, d_in, rows + 1, n_threads);
    ok(rc == 0, "%s: workspace", what);
    /* a logit scale away from 0 and 1, so every term of dL/dtau shows */
    const float tau = 0.7f;
    float gtau = 0;
    ref_tau = tau;
    double loss = bli_probe_loss_grad(&hb.h, A, b, c, tau, x, y, rows, &w, gA, gb, gc, &gtau);
    double lref = ref_loss(&hb.h, Ad, bd, cd, x, d_in, y, rows);
    ok(fabs(loss - lref) < 1e-5 * lref, "%s: loss %.8f nats matches the double reference %.8f",
       what, loss, lref);
    double loss2 = bli_probe_loss(&hb.h, A, b, c, tau, x, y, rows, &w);
    ok(loss2 == loss, "%s: forward-only loss equals the loss of the gradient pass", what);

    double mA, mb, mc;
    double eA = group_error(&hb.h, Ad, bd, cd, Ad, gA, (int64_t)na, sA, x, d_in, y, rows, &mA);
    double eb = group_error(&hb.h, Ad, bd, cd, bd, gb, d, sb, x, d_in, y, rows, &mb);
    double ec = group_error(&hb.h, Ad, bd, cd, cd, gc, V, sc, x, d_in, y, rows, &mc);
    double mt, et = group_error(&hb.h, Ad, bd, cd, &ref_tau, &gtau, 1, 1, x, d_in, y, rows, &mt);
    ok(eA < 1e-3 && mA < 1e-3,
       "%s: dL/dA [%lldx%lld] vs central differences: relative L2 error %.2e, "
       "max error / max |fd| %.2e (< 1e-3)",
       what, (long long)d, (long long)d_in, eA, mA);
    ok(eb < 1e-3 && mb < 1e-3,
       "%s: dL/db [%lld] vs central differences: relative L2 error %.2e, "
       "max error / max |fd| %.2e (< 1e-3)",
       what, (long long)d, eb, mb);
    ok(ec < 1e-3 && mc < 1e-3,
       "%s: dL/dc [%lld] vs central differences: relative L2 error %.2e, "
       "max error / max |fd| %.2e (< 1e-3)",
       what, (long long)V, ec, mc);
    ok(et < 1e-3, "%s: dL/dtau %.6f vs central differences: relative error %.2e (< 1e-3)", what, (double)gtau, et);

    if (large && n_threads > 1) {
        struct bli_probe_ws w1;
        rc = bli_probe_ws_init(&w1, &hb.h, d_in, rows, 1);
        double l1 = bli_probe_loss_grad(&hb.h, A, b, c, tau, x, y, rows, &w1, g1, gb1, gc1, NULL);
        double num = 0.0, den = 0.0;
        for (size_t i = 0; i < na; i++) {
            num += ((double)g1[i] - gA[i]) * ((double)g1[i] - gA[i]);
            den += (double)g1[i] * g1[i];
        }
        ok(rc == 0 && fabs(l1 - loss) < 1e-6 * loss && sqrt(num / den) < 1e-5,
           "%s: the same loss and dL/dA as one thread (loss %.3g apart, dL/dA %.2e relative)",
           what, fabs(l1 - loss), sqrt(num / den));
        bli_probe_ws_release(&w1);
    } else {
        /* without the logit bias: the model's head alone */
        double l0 = bli_probe_loss_grad(&hb.h, A, b, NULL, tau, x, y, rows, &w, g1, gb1, NULL, NULL);
        double l0ref = ref_loss(&hb.h, Ad, bd, NULL, x, d_in, y, rows);
        double eA0 = group_error(&hb.h, Ad, bd, NULL, Ad, g1, (int64_t)na, sA, x, d_in, y, rows,
                                 &mA);
        double eb0 = group_error(&hb.h, Ad, bd, NULL, bd, gb1, d, sb, x, d_in, y, rows, &mb);
        ok(fabs(l0 - l0ref) < 1e-5 * l0ref && eA0 < 1e-3 && mA < 1e-3 && eb0 < 1e-3 &&
               mb < 1e-3,
           "%s, no logit bias: loss %.8f vs %.8f, dL/dA error %.2e, dL/db error %.2e", what, l0,
           l0ref, eA0, eb0);
    }

    bli_probe_ws_release(&w);
    free(A);
    free(b);
    free(c);
    free(Ad);
    free(bd);
    free(cd);
    free(gA);
    free(gb);
    free(gc);
    free(g1);
    free(gb1);
    free(gc1);
    free(x);
    free(y);
    head_free(&hb);
    gsl_rng_free(rng);
}

/* ---------------------------------------------------------------- 2. synthetic stream */

#define SV 64          /* vocabulary */
#define SD 32          /* head width */
#define SDIN 48        /* residual width */
#define SK 3           /* future tokens encoded */
#define SN 40000       /* rows: 32000 for training, 8000 held out */
#define SU 0.5         /* sd of the unembedding's entries: logits of sd ~3 */

struct stream {
    int64_t n;              /* rows */
    double p[SV], H;        /* the token distribution and its entropy, bits */
    double var_logp;        /* Var[log2 p(x)], for the plug-in entropy's error */
    int32_t *tok;           /* [n + SK + 1] */
    float *r;               /* [n x SDIN] */
    unsigned char *train;   /* [n] */
};

static void stream_make(struct stream *s, int64_t n, gsl_rng *rng)
{
    s->n = n;
    double z = 0.0;
    for (int v = 0; v < SV; v++)
        z += s->p[v] = exp(-v / 12.0);
    s->H = 0.0;
    double m2 = 0.0;
    for (int v = 0; v < SV; v++) {
        s->p[v] /= z;
        s->H -= s->p[v] * log2(s->p[v]);
        m2 += s->p[v] * log2(s->p[v]) * log2(s->p[v]);
    }
    s->var_logp = m2 - s->H * s->H;
    gsl_ran_discrete_t *g = gsl_ran_discrete_preproc(SV, s->p);
    s->tok = malloc((size_t)(n + SK + 1) * sizeof *s->tok);
    for (int64_t t = 0; t < n + SK + 1; t++)
        s->tok[t] = (int32_t)gsl_ran_discrete(rng, g);
    gsl_ran_discrete_free(g);
    float *E = malloc((size_t)SK * SV * SDIN * sizeof *E);
    for (int i = 0; i < SK * SV * SDIN; i++)
        E[i] = (float)gsl_ran_gaussian(rng, 1.0);
    s->r = malloc((size_t)n * SDIN * sizeof *s->r);
    s->train = malloc((size_t)n);
    for (int64_t t = 0; t < n; t++) {
        for (int c = 0; c < SDIN; c++) {
            double v = gsl_ran_gaussian(rng, 0.1);
            for (int k = 1; k <= SK; k++)
                v += E[((k - 1) * SV + s->tok[t + k]) * SDIN + c];
            s->r[t * SDIN + c] = (float)v;
        }
        s->train[t] = t % 5 != 0;
    }
    free(E);
}

static void stream_free(struct stream *s)
{
    free(s->tok);
    free(s->r);
    free(s->train);
}

static struct bl_probe_params synth_params(void)
{
    struct bl_probe_params p = bl_probe_default_params();
    p.epochs = 10;
    p.batch = 64;
    p.lr = 1e-2f;
    p.weight_decay = 0.1f;
    p.seed = 1;
    p.n_threads = 2;
    return p;
}

/* Fit the probe for targets y on the stream; NaN bits if the fit fails. */
static struct bl_probe_result fit(const struct bl_probe_head *h, const struct stream *s,
                                  const int32_t *y, const struct bl_probe_params *p,
                                  const struct bli_probe_opts *o, const char *what)
{
    struct bl_probe_result res;
    bl_err err = {0};
    double t0 = seconds();
    int rc = bli_probe_fit(h, s->r, SDIN, y, s->train, s->n, p, o, &res, NULL, NULL, NULL, NULL, &err);
    if (rc) {
        diag("%s: %s", what, err.msg);
        memset(&res, 0, sizeof res);
        res.bits = NAN;
        return res;
    }
    diag("%s: ce_probe %.4f, ce_unigram %.4f, h_unigram %.4f, bits %.4f (%.1f%% of H), "
         "%.2f s",
         what, res.ce_probe, res.ce_unigram, res.h_unigram, res.bits, 100 * res.bits / s->H,
         seconds() - t0);
    return res;
}

static void test_synthetic(void)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 2024);
    struct stream s;
    stream_make(&s, SN, rng);
    struct head_buf hb[2];
    head_make(&hb[0], SD, SV, BL_NORM_RMS, SU, rng);
    head_make(&hb[1], SD, SV, BL_NORM_LAYER, SU, rng);
    int32_t *y = malloc(SN * sizeof *y);
    struct bl_probe_params p = synth_params();
    diag("synthetic stream: %d tokens, H = %.4f bits, r_t encodes x_{t+1..%d} in d_in %d, "
         "head %d x %d, %d rows (80%% training), %d epochs, batch %lld, lr %g",
         SV, s.H, SK, SDIN, SV, SD, SN, p.epochs, (long long)p.batch, (double)p.lr);
    double bound = 0.05 * s.H;
    char what[128];

    for (int hn = 0; hn < 2; hn++) {
        const char *name = hn == 0 ? "rmsnorm" : "layernorm";
        for (int k = 1; k <= SK + 1; k++) {
            for (int64_t t = 0; t < SN; t++)
                y[t] = s.tok[t + k];
            y[7] = -1;   /* a skipped row */
            snprintf(what, sizeof what, "%s, k = %d", name, k);
            struct bl_probe_result res = fit(&hb[hn].h, &s, y, &p, NULL, what);
            if (k <= SK)
                ok(res.bits >= 0.9 * s.H, "%s (encoded): %.4f bits >= 90%% of H = %.4f", what,
                   res.bits, s.H);
            else
                ok(fabs(res.bits) < bound, "%s (not encoded): |%.4f| bits < 5%% of H = %.4f",
                   what, res.bits, bound);
            if (hn == 0 && k == 1) {
                ok(res.n_train == 31999 && res.n_test == 8000,
                   "row counts skip the -1 target (%lld, %lld)", (long long)res.n_train,
                   (long long)res.n_test);
                double bias = (SV - 1) / (2.0 * (double)res.n_test * log(2.0));
                double se = sqrt(s.var_logp / (double)res.n_test);
                ok(fabs(res.h_unigram - s.H) < bias + 4 * se,
                   "h_unigram %.4f matches H = %.4f within bias %.4f + 4 se %.4f", res.h_unigram,
                   s.H, bias, 4 * se);
                double mean = 0.0;
                for (int64_t i = 0; i < res.n_test; i++)
                    mean += res.per_position[i];
                mean /= (double)res.n_test;
                ok(fabs(mean - res.bits) < 1e-9, "per_position averages to bits (%.6f)", mean);
            }
            bl_probe_result_release(&res);
        }

        /* shuffled targets: the k = 1 targets permuted across rows */
        for (int64_t t = 0; t < SN; t++)
            y[t] = s.tok[t + 1];
        gsl_ran_shuffle(rng, y, SN, sizeof *y);
        snprintf(what, sizeof what, "%s, shuffled k = 1 targets", name);
        struct bl_probe_result res = fit(&hb[hn].h, &s, y, &p, NULL, what);
        ok(fabs(res.bits) < bound, "%s: |%.4f| bits < 5%% of H", what, res.bits);
        bl_probe_result_release(&res);

        /* the internal option of a rate falling to 0: the same answers, the
         * null case closer to 0 */
        struct bli_probe_opts o = {.lr_decay = 1};
        snprintf(what, sizeof what, "%s, shuffled, rate decaying", name);
        res = fit(&hb[hn].h, &s, y, &p, &o, what);
        ok(fabs(res.bits) < bound, "%s: |%.4f| bits < 5%% of H", what, res.bits);
        bl_probe_result_release(&res);
        for (int64_t t = 0; t < SN; t++)
            y[t] = s.tok[t + 1];
        snprintf(what, sizeof what, "%s, k = 1, rate decaying", name);
        res = fit(&hb[hn].h, &s, y, &p, &o, what);
        ok(res.bits >= 0.9 * s.H, "%s: %.4f bits >= 90%% of H", what, res.bits);
        bl_probe_result_release(&res);

        /* why the probe has a logit bias: without it the family cannot
         * express the unigram and a probe that knows nothing about x_{t+4}
         * scores well below it */
        o = (struct bli_probe_opts){.no_logit_bias = 1};
        for (int64_t t = 0; t < SN; t++)
            y[t] = s.tok[t + SK + 1];
        snprintf(what, sizeof what, "%s, k = %d, no logit bias", name, SK + 1);
        res = fit(&hb[hn].h, &s, y, &p, &o, what);
        ok(res.bits < -bound, "%s: %.4f bits, below -5%% of H", what, res.bits);
        bl_probe_result_release(&res);
    }
    /* a head as wide as the stream: A starts at the identity (the logit
     * lens) and decays towards it */
    struct head_buf hw;
    head_make(&hw, SDIN, SV, BL_NORM_RMS, SU * sqrt((double)SD / SDIN), rng);
    for (int64_t t = 0; t < SN; t++)
        y[t] = s.tok[t + 1];
    struct bl_probe_result res = fit(&hw.h, &s, y, &p, NULL, "rmsnorm, d = d_in, k = 1");
    ok(res.bits >= 0.9 * s.H, "d = d_in, k = 1: %.4f bits >= 90%% of H", res.bits);
    bl_probe_result_release(&res);
    gsl_ran_shuffle(rng, y, SN, sizeof *y);
    res = fit(&hw.h, &s, y, &p, NULL, "rmsnorm, d = d_in, shuffled");
    ok(fabs(res.bits) < bound, "d = d_in, shuffled: |%.4f| bits < 5%% of H", res.bits);
    bl_probe_result_release(&res);
    head_free(&hw);

    free(y);
    head_free(&hb[0]);
    head_free(&hb[1]);
    stream_free(&s);
    gsl_rng_free(rng);
}

/* ---------------------------------------------------------------- 3. determinism */

static void test_determinism(void)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 99);
    struct stream s;
    stream_make(&s, 10000, rng);
    struct head_buf hb;
    head_make(&hb, SD, SV, BL_NORM_RMS, SU, rng);
    int32_t *y = malloc((size_t)s.n * sizeof *y);
    for (int64_t t = 0; t < s.n; t++)
        y[t] = s.tok[t + 2];
    struct bl_probe_params p = synth_params();
    struct bl_probe_result r[3];
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        p.seed = i < 2 ? 5 : 6;
        rc |= bl_probe_fit(&hb.h, s.r, SDIN, y, s.train, s.n, &p, &r[i], NULL);
    }
    ok(rc == 0, "three fits");
    if (rc == 0) {
        ok(r[0].ce_probe == r[1].ce_probe && r[0].bits == r[1].bits &&
               memcmp(r[0].per_position, r[1].per_position,
                      (size_t)r[0].n_test * sizeof *r[0].per_position) == 0,
           "same seed, same threads: identical bits (%.17g)", r[0].bits);
        ok(r[0].bits != r[2].bits && fabs(r[0].bits - r[2].bits) < 0.02 * s.H,
           "another seed: different but close (%.4f vs %.4f bits)", r[0].bits, r[2].bits);
    }
    for (int i = 0; i < 3; i++)
        bl_probe_result_release(&r[i]);

    /* a size past the threading thresholds (d = d_in 64, 400 tokens, batch
     * 128), random rows and targets: two threads, twice */
    enum { TD = 64, TV = 400, TN = 4000 };
    struct head_buf ht;
    head_make(&ht, TD, TV, BL_NORM_LAYER, 0.3, rng);
    float *tx = malloc((size_t)TN * TD * sizeof *tx);
    int32_t *ty = malloc(TN * sizeof *ty);
    unsigned char *tt = malloc(TN);
    for (int i = 0; i < TN * TD; i++)
        tx[i] = (float)gsl_ran_gaussian(rng, 1.0);
    for (int i = 0; i < TN; i++) {
        ty[i] = (int32_t)gsl_rng_uniform_int(rng, TV);
        tt[i] = i % 4 != 0;
    }
    struct bl_probe_params q = bl_probe_default_params();
    q.epochs = 2;
    q.batch = 128;
    q.n_threads = 2;
    struct bl_probe_result t2[2], t1;
    rc = bl_probe_fit(&ht.h, tx, TD, ty, tt, TN, &q, &t2[0], NULL);
    rc |= bl_probe_fit(&ht.h, tx, TD, ty, tt, TN, &q, &t2[1], NULL);
    q.n_threads = 1;
    rc |= bl_probe_fit(&ht.h, tx, TD, ty, tt, TN, &q, &t1, NULL);
    ok(rc == 0 && memcmp(t2[0].per_position, t2[1].per_position,
                         (size_t)t2[0].n_test * sizeof *t2[0].per_position) == 0,
       "two threads, twice, at d 64 x 400 tokens: identical (%.17g bits)", t2[0].bits);
    ok(rc == 0 && t1.n_test == t2[0].n_test &&
           memcmp(t1.per_position, t2[0].per_position,
                  (size_t)t1.n_test * sizeof *t1.per_position) == 0,
       "one thread and two: identical (%.17g and %.17g bits)", t1.bits, t2[0].bits);
    bl_probe_result_release(&t2[0]);
    bl_probe_result_release(&t2[1]);
    bl_probe_result_release(&t1);
    free(tx);
    free(ty);
    free(tt);
    head_free(&ht);

    free(y);
    head_free(&hb);
    stream_free(&s);
    gsl_rng_free(rng);
}

/* ---------------------------------------------------------------- 3b. optimizer */

/* The lens's top token for row x (A = I, b = 0, tau = 1), from the
 * reference's definitions. */
static int32_t ref_lens_argmax(const struct bl_probe_head *hd, const float *x)
{
    int64_t d = hd->d, V = hd->n_vocab;
    double ms = 0.0, mean = 0.0;
    if (hd->norm == BL_NORM_LAYER) {
        for (int64_t i = 0; i < d; i++)
            mean += x[i];
        mean /= (double)d;
    }
    for (int64_t i = 0; i < d; i++)
        ms += (x[i] - mean) * (x[i] - mean);
    double s = sqrt(ms / (double)d + hd->norm_eps), best = -INFINITY;
    int32_t arg = 0;
    for (int64_t v = 0; v < V; v++) {
        double t = 0.0;
        for (int64_t i = 0; i < d; i++)
            t += (double)hd->unembed[v * d + i] * ((x[i] - mean) / s * hd->norm_w[i] + (hd->norm_b ? hd->norm_b[i] : 0.0));
        if (t > best) {
            best = t;
            arg = (int32_t)v;
        }
    }
    return arg;
}

/* One Adam step, known exactly: at t = 1 the bias-corrected update is
 * m^/sqrt(v^) = g/|g|, so every parameter with a gradient moves by lr_t
 * (the warm-up's lr/W at the first step) against its gradient's sign,
 * whatever the gradient's size (uncorrected, the move would be
 * 0.1/sqrt(0.001) = 3.16 times that).  Two starts: targets the lens
 * predicts (its top token) make the fit start at tau = 1, where A, b, c
 * and tau all move; random targets make it start at the unigram, tau = 0,
 * where A and b have no gradient (dL/dn carries a factor tau) and only c
 * and tau move.  Decoupled decay adds lr wd (A - I) when d_in == d, zero
 * at the identity start, and lr wd A otherwise. */
static void test_optimizer(void)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    enum { D = 8, V = 10, N = 20, DIN2 = 5 };
    struct head_buf hb;
    head_make(&hb, D, V, BL_NORM_RMS, 1.0, rng);
    float x[N * D];
    int32_t y[N], ylens[N];
    unsigned char train[N];
    for (int i = 0; i < N * D; i++)
        x[i] = (float)gsl_ran_gaussian(rng, 1.0);
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)gsl_rng_uniform_int(rng, V);
        ylens[i] = ref_lens_argmax(&hb.h, x + i * D);
        train[i] = i < 16;
    }
    struct bl_probe_params p = bl_probe_default_params();
    p.epochs = 1;       /* 16 training rows, batch 64: one step */
    p.lr = 0.01f;
    p.n_threads = 1;
    float A[D * D], b[D], c[V], tau;
    struct bl_probe_result res;

    for (int lens = 0; lens <= 1; lens++) {
        const int32_t *yy = lens ? ylens : y;
        int64_t count[V] = {0};
        for (int i = 0; i < 16; i++)
            count[yy[i]]++;
        for (int warm = 0; warm <= 4; warm += 4) {
            struct bli_probe_opts o = {.warmup = warm};
            double lr_t = warm ? p.lr / warm : p.lr;
            int rc = bli_probe_fit(&hb.h, x, D, yy, train, N, &p, &o, &res, A, b, c, &tau, NULL);
            double start = res.logit_scale_start;
            bl_probe_result_release(&res);
            double wa = 0.0, wb = 0.0, wc = 0.0;
            double move = lens ? lr_t : 0.0;   /* A and b */
            for (int i = 0; i < D * D; i++) {
                double a0 = i % (D + 1) == 0 ? 1.0 : 0.0;
                wa = fmax(wa, fabs(fabs(A[i] - a0) - move));
            }
            for (int j = 0; j < D; j++)
                wb = fmax(wb, fabs(fabs(b[j]) - move));
            for (int v = 0; v < V; v++) {
                double c0 = log((count[v] + 1.0) / (16.0 + V));
                wc = fmax(wc, fabs(fabs(c[v] - c0) - lr_t));
            }
            double wt = fabs(fabs(tau - start) - lr_t);
            ok(rc == 0 && start == (lens ? 1.0 : 0.0) && wa < 1e-3 * lr_t && wb < 1e-3 * lr_t &&
                   wc < 1e-3 * lr_t && wt < 1e-3 * lr_t,
               "first Adam step, %s targets, warm-up %d: start tau = %g; A, b moved by %g, c and tau by lr_t = %g "
               "(worst %.2e, %.2e, %.2e, %.2e)",
               lens ? "lens-predicted" : "random", warm, start, move, lr_t, wa, wb, wc, wt);
        }
    }

    /* decay at the identity start does nothing on the first step */
    float Aw[D * D];
    p.weight_decay = 0.5f;
    int rc = bli_probe_fit(&hb.h, x, D, y, train, N, &p, NULL, &res, Aw, NULL, NULL, NULL, NULL);
    bl_probe_result_release(&res);
    p.weight_decay = 0.0f;
    rc |= bli_probe_fit(&hb.h, x, D, y, train, N, &p, NULL, &res, A, NULL, NULL, NULL, NULL);
    bl_probe_result_release(&res);
    ok(rc == 0 && memcmp(A, Aw, sizeof A) == 0, "decay towards I: no pull at the identity");

    /* d_in != d: A0 (no decay) = Ai - lr s, Aw = Ai - lr (s + wd Ai), so
     * (A0 - Aw) / (lr wd) = Ai = A0 + lr s, s = +-1 */
    float x2[N * DIN2], A0[D * DIN2], A2[D * DIN2];
    for (int i = 0; i < N * DIN2; i++)
        x2[i] = (float)gsl_ran_gaussian(rng, 1.0);
    rc = bli_probe_fit(&hb.h, x2, DIN2, y, train, N, &p, NULL, &res, A0, NULL, NULL, NULL, NULL);
    bl_probe_result_release(&res);
    p.weight_decay = 0.5f;
    rc |= bli_probe_fit(&hb.h, x2, DIN2, y, train, N, &p, NULL, &res, A2, NULL, NULL, NULL, NULL);
    bl_probe_result_release(&res);
    /* here the start is tau = 0 (random targets): A has no gradient, s = 0,
     * and the decay alone moves it */
    double worst = 0.0;
    for (int i = 0; i < D * DIN2; i++) {
        double ai = ((double)A0[i] - A2[i]) / (p.lr * p.weight_decay);
        worst = fmax(worst, fabs(ai - A0[i]));
    }
    ok(rc == 0 && worst < 1e-2 * p.lr,
       "decay towards 0 when d_in != d: the pull is lr wd A (worst %.2e)", worst);

    head_free(&hb);
    gsl_rng_free(rng);
}

/* ---------------------------------------------------------------- 4. errors */

static void expect_einval(const struct bl_probe_head *h, const float *x, int64_t d_in,
                          const int32_t *y, const unsigned char *train, int64_t n,
                          const struct bl_probe_params *p, const char *want, const char *what)
{
    struct bl_probe_result res;
    bl_err err = {0};
    int rc = bl_probe_fit(h, x, d_in, y, train, n, p, &res, &err);
    ok(rc == BL_EINVAL && err.code == BL_EINVAL && strstr(err.msg, want) &&
           res.per_position == NULL,
       "%s: BL_EINVAL '%s'", what, err.msg);
}

static void test_errors(void)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    struct head_buf hb;
    head_make(&hb, 8, 10, BL_NORM_RMS, 1.0, rng);
    enum { N = 6, DIN = 8 };
    float x[N * DIN];
    for (int i = 0; i < N * DIN; i++)
        x[i] = (float)gsl_ran_gaussian(rng, 1.0);
    int32_t y[N] = {1, 2, 3, 4, 5, 6};
    unsigned char train[N] = {1, 1, 1, 1, 0, 0}, all[N] = {1, 1, 1, 1, 1, 1}, none[N] = {0};
    struct bl_probe_params p = bl_probe_default_params();
    p.epochs = 1;

    struct bl_probe_result res;
    ok(bl_probe_fit(&hb.h, x, DIN, y, train, N, &p, &res, NULL) == 0 && res.n_test == 2,
       "the valid case fits");
    bl_probe_result_release(&res);

    expect_einval(&hb.h, x, DIN, y, none, N, &p, "no training rows", "all rows held out");
    int32_t yt[N] = {1, 2, 3, 4, -1, -1};
    expect_einval(&hb.h, x, DIN, yt, train, N, &p, "no held-out rows",
                  "held-out rows all skipped (-1)");
    expect_einval(&hb.h, x, DIN, y, all, N, &p, "no held-out rows", "no rows held out");
    int32_t yn[N] = {-1, -1, -1, -1, 2, 3};
    expect_einval(&hb.h, x, DIN, yn, train, N, &p, "no training rows", "training rows all -1");
    expect_einval(&hb.h, x, DIN, y, train, 0, &p, "no training rows", "no rows at all");
    int32_t yb[N] = {1, 2, 10, 4, 5, 6};
    expect_einval(&hb.h, x, DIN, yb, train, N, &p, "row 2: target 10 outside [0, 10)",
                  "target = n_vocab");
    int32_t ym[N] = {1, 2, 3, 4, 5, -2};
    expect_einval(&hb.h, x, DIN, ym, train, N, &p, "row 5: target -2", "target -2");
    expect_einval(&hb.h, x, 0, y, train, N, &p, "input width 0", "d_in 0");
    expect_einval(&hb.h, x, -3, y, train, N, &p, "input width -3", "d_in -3");
    float xn[N * DIN];
    memcpy(xn, x, sizeof x);
    xn[3 * DIN + 5] = NAN;
    expect_einval(&hb.h, xn, DIN, y, train, N, &p, "row 3: non-finite value at column 5",
                  "NaN in a row");

    struct bl_probe_params q = p;
    q.epochs = 0;
    expect_einval(&hb.h, x, DIN, y, train, N, &q, "epochs 0", "epochs 0");
    q = p;
    q.batch = 0;
    expect_einval(&hb.h, x, DIN, y, train, N, &q, "batch 0", "batch 0");
    q = p;
    q.lr = 0.0f;
    expect_einval(&hb.h, x, DIN, y, train, N, &q, "learning rate", "learning rate 0");
    q = p;
    q.lr = NAN;
    expect_einval(&hb.h, x, DIN, y, train, N, &q, "learning rate", "learning rate NaN");
    q = p;
    q.weight_decay = -1.0f;
    expect_einval(&hb.h, x, DIN, y, train, N, &q, "weight decay", "negative weight decay");

    struct bl_probe_head h2 = hb.h;
    h2.norm = 7;
    expect_einval(&h2, x, DIN, y, train, N, &p, "unknown norm 7", "unknown norm");
    h2 = hb.h;
    h2.d = 0;
    expect_einval(&h2, x, DIN, y, train, N, &p, "width 0", "head width 0");
    h2 = hb.h;
    h2.n_vocab = 0;
    expect_einval(&h2, x, DIN, y, train, N, &p, "of 0 tokens", "vocabulary 0");
    h2 = hb.h;
    h2.norm_eps = -1.0f;
    expect_einval(&h2, x, DIN, y, train, N, &p, "epsilon", "negative epsilon");

    /* A of 8 x 2^62 floats: refused before x is read */
    bl_err e2 = {0};
    int rc2 = bl_probe_fit(&hb.h, x, (int64_t)1 << 62, y, train, 1, &p, &res, &e2);
    ok(rc2 == BL_ENOMEM && strstr(e2.msg, "8 x 4611686018427387904"),
       "an A too large for memory: BL_ENOMEM '%s'", e2.msg);

    struct bli_probe_opts o = {.warmup = -1};
    bl_err err = {0};
    int rc = bli_probe_fit(&hb.h, x, DIN, y, train, N, &p, &o, &res, NULL, NULL, NULL, NULL, &err);
    ok(rc == BL_EINVAL && strstr(err.msg, "warm-up"), "negative warm-up: BL_EINVAL '%s'",
       err.msg);

    head_free(&hb);
    gsl_rng_free(rng);
}

int main(void)
{
    double t0 = seconds();
    diag("cblas_sgemm from %s", bl_blas_name());
    test_gradient(BL_NORM_RMS, 1, 0);
    test_gradient(BL_NORM_LAYER, 1, 0);
    test_gradient(BL_NORM_RMS, 2, 1);
    test_gradient(BL_NORM_LAYER, 2, 1);
    double t1 = seconds();
    test_synthetic();
    double t2 = seconds();
    test_determinism();
    test_optimizer();
    test_errors();
    diag("time: gradient checks %.2f s, synthetic fits %.2f s, total %.2f s", t1 - t0, t2 - t1,
         seconds() - t0);
    return done_testing();
}
