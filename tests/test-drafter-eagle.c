/* tests/test-drafter-eagle.c: the EAGLE-style drafter layer
 * (lib/drafter_eagle.h) on stories260K's shapes (d 64, 8 heads of 8,
 * 512 tokens, SwiGLU width 256), TAP.
 *
 * - the start: with Wo = Wd = 0 the layer's output is u = f + Wfc_E E y
 *   + bfc, and the parameter count is 73920;
 * - the library's f32 loss against an independent reference written here
 *   from the header's formulas in double with plain loops: relative 1e-5
 *   (f32 rounding of a loss near 13; about 1e-9 seen);
 * - the analytic gradient of every parameter tensor against central
 *   differences of that reference, on random non-zero parameters over a
 *   window of T = 6 steps with token targets (one step without) and
 *   feature targets (the last step without): relative error
 *   ||g - fd|| / ||fd|| over a sample of 24 of each tensor's entries below
 *   1e-3.  The differences are taken in double (eps 1e-4: truncation
 *   O(eps^2), rounding 1e-11), so what is left is the f32 rounding of the
 *   analytic gradient, about 1e-6 seen; central differences of the f32
 *   loss itself (eps 1e-2) agree only to 1e-4..1e-3 and would put the
 *   bound at the noise;
 * - causality: changing step 4's input leaves steps 0..3 bit for bit;
 * - RoPE is relative: the same window at positions 5.. has the same loss
 *   to 1e-5 (f32 angles: 4e-7 seen);
 * - greedy drafting: the first draft is forward's argmax at the last
 *   step, the second the argmax after appending (g, draft 1);
 * - the error statuses of the window checks. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <bitlens/bitlens.h>
#include "drafter_eagle.h"
#include "kernels.h"
#include "tap.h"
#include "testutil.h"

#define T 6

static bl_model *model;
static gsl_rng *rng;

static void fill(float *p, int64_t n, double mean, double sd)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(mean + gsl_ran_gaussian(rng, sd));
}

/* A window: features, tokens, token targets (y shifted, the last step's
 * drawn, step 2 without), feature targets f shifted (the last without). */
struct window {
    float f[T * 64];
    int32_t y[T], tgt[T];
    unsigned char fmask[T];
};

static void make_window(struct window *wd, int64_t d, int64_t V)
{
    fill(wd->f, T * d, 0.0, 1.0);
    for (int i = 0; i < T; i++)
        wd->y[i] = (int32_t)gsl_rng_uniform_int(rng, (unsigned long)V);
    for (int i = 0; i < T; i++) {
        wd->tgt[i] = i + 1 < T ? wd->y[i + 1] : (int32_t)gsl_rng_uniform_int(rng, (unsigned long)V);
        wd->fmask[i] = i + 1 < T;
    }
    wd->tgt[2] = -1;
}

static double loss_of(struct bli_eagle *e, struct bli_eagle_ws *w, const struct window *wd, int64_t pos0,
                      float *grad)
{
    bl_err err;
    double l = bli_eagle_loss(e, w, wd->f, wd->y, T, pos0, wd->tgt, wd->f + e->d, wd->fmask, grad, &err);
    if (isnan(l))
        diag("loss: %s", err.msg);
    return l;
}

/* ---- an independent reference: the layer in double, plain loops,
 * written from the formulas of lib/drafter_eagle.h (d <= 64, m <= 256). */

static double ref_rms(const double *x, int64_t d, double eps)
{
    double ss = 0;
    for (int64_t k = 0; k < d; k++)
        ss += x[k] * x[k];
    return 1.0 / sqrt(ss / (double)d + eps);
}

static double ref_loss(const struct bli_eagle *e, const double *p, const struct window *wd, int64_t pos0)
{
    enum { D = 64, M = 256 };
    int64_t d = e->d, m = e->m, H = e->H, dh = e->dh, V = e->V;
    if (d > D || m > M)
        abort();
    const double *Wfc = p + e->off[BLI_EAGLE_WFC], *bfc = p + e->off[BLI_EAGLE_BFC], *g1 = p + e->off[BLI_EAGLE_G1],
                 *Wq = p + e->off[BLI_EAGLE_WQ], *Wk = p + e->off[BLI_EAGLE_WK], *Wv = p + e->off[BLI_EAGLE_WV],
                 *Wo = p + e->off[BLI_EAGLE_WO], *g2 = p + e->off[BLI_EAGLE_G2], *Wg = p + e->off[BLI_EAGLE_WG],
                 *Wu = p + e->off[BLI_EAGLE_WU], *Wd = p + e->off[BLI_EAGLE_WD];
    static double u[T][D], q[T][D], k[T][D], v[T][D], a[T][D], g[T][D];
    for (int i = 0; i < T; i++) {
        double x[2 * D], n1[D];
        for (int64_t c = 0; c < d; c++) {
            x[c] = wd->f[i * d + c];
            x[d + c] = e->embed[(int64_t)wd->y[i] * d + c];
        }
        for (int64_t r = 0; r < d; r++) {
            double s = bfc[r];
            for (int64_t c = 0; c < 2 * d; c++)
                s += Wfc[r * 2 * d + c] * x[c];
            u[i][r] = s;
        }
        double r1 = ref_rms(u[i], d, e->eps);
        for (int64_t c = 0; c < d; c++)
            n1[c] = u[i][c] * r1 * g1[c];
        for (int64_t r = 0; r < d; r++) {
            double sq = 0, sk = 0, sv = 0;
            for (int64_t c = 0; c < d; c++) {
                sq += Wq[r * d + c] * n1[c];
                sk += Wk[r * d + c] * n1[c];
                sv += Wv[r * d + c] * n1[c];
            }
            q[i][r] = sq;
            k[i][r] = sk;
            v[i][r] = sv;
        }
        for (int64_t h = 0; h < H; h++)   /* RoPE at pos0 + i */
            for (int64_t j = 0; j < dh / 2; j++) {
                double th = (double)(pos0 + i) / pow(10000.0, (double)(2 * j) / (double)dh);
                int64_t c0 = h * dh + 2 * j;
                double q0 = q[i][c0], q1 = q[i][c0 + 1], k0 = k[i][c0], k1 = k[i][c0 + 1];
                q[i][c0] = q0 * cos(th) - q1 * sin(th);
                q[i][c0 + 1] = q0 * sin(th) + q1 * cos(th);
                k[i][c0] = k0 * cos(th) - k1 * sin(th);
                k[i][c0 + 1] = k0 * sin(th) + k1 * cos(th);
            }
    }
    double ce = 0, se = 0;
    int n_tok = 0, n_feat = 0;
    for (int i = 0; i < T; i++) {
        double o[D] = {0}, n2[D], hm[M];
        for (int64_t h = 0; h < H; h++) {
            double s[T], mx = -INFINITY, z = 0;
            for (int j = 0; j <= i; j++) {
                s[j] = 0;
                for (int64_t c = h * dh; c < (h + 1) * dh; c++)
                    s[j] += q[i][c] * k[j][c];
                s[j] /= sqrt((double)dh);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j <= i; j++)
                z += exp(s[j] - mx);
            for (int j = 0; j <= i; j++)
                for (int64_t c = h * dh; c < (h + 1) * dh; c++)
                    o[c] += exp(s[j] - mx) / z * v[j][c];
        }
        for (int64_t r = 0; r < d; r++) {
            a[i][r] = u[i][r];
            for (int64_t c = 0; c < d; c++)
                a[i][r] += Wo[r * d + c] * o[c];
        }
        double r2 = ref_rms(a[i], d, e->eps);
        for (int64_t c = 0; c < d; c++)
            n2[c] = a[i][c] * r2 * g2[c];
        for (int64_t r = 0; r < m; r++) {
            double sg = 0, su = 0;
            for (int64_t c = 0; c < d; c++) {
                sg += Wg[r * d + c] * n2[c];
                su += Wu[r * d + c] * n2[c];
            }
            hm[r] = sg / (1.0 + exp(-sg)) * su;
        }
        for (int64_t r = 0; r < d; r++) {
            g[i][r] = a[i][r];
            for (int64_t c = 0; c < m; c++)
                g[i][r] += Wd[r * m + c] * hm[c];
        }
        if (wd->tgt[i] >= 0) {
            double zmax = -INFINITY, zs = 0, zt = 0;
            double *z = malloc((size_t)V * sizeof *z);
            for (int64_t t = 0; t < V; t++) {
                z[t] = 0;
                for (int64_t c = 0; c < d; c++)
                    z[t] += (double)e->unembed[t * d + c] * g[i][c];
                zmax = fmax(zmax, z[t]);
            }
            for (int64_t t = 0; t < V; t++)
                zs += exp(z[t] - zmax);
            zt = z[wd->tgt[i]];
            free(z);
            ce += log(zs) + zmax - zt;
            n_tok++;
        }
        if (wd->fmask[i]) {
            for (int64_t c = 0; c < d; c++)
                se += (g[i][c] - wd->f[(i + 1) * d + c]) * (g[i][c] - wd->f[(i + 1) * d + c]);
            n_feat++;
        }
    }
    return ce / n_tok + (double)e->lambda * se / ((double)n_feat * (double)d);
}

/* relative error of the analytic gradient g over a sample of tensor t,
 * against central differences of the reference at the parameters pd */
static double check_tensor(const struct bli_eagle *e, double *pd, const struct window *wd, const float *g, int t,
                           int samples)
{
    const double eps = 1e-4;
    int64_t off = e->off[t], n = e->size[t];
    double num = 0, den = 0;
    int64_t step = n / samples > 1 ? n / samples : 1;
    for (int64_t i = off + (int64_t)gsl_rng_uniform_int(rng, (unsigned long)step); i < off + n; i += step) {
        double keep = pd[i];
        pd[i] = keep + eps;
        double lp = ref_loss(e, pd, wd, 0);
        pd[i] = keep - eps;
        double lm = ref_loss(e, pd, wd, 0);
        pd[i] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        num += (fd - g[i]) * (fd - g[i]);
        den += fd * fd;
    }
    return den > 0 ? sqrt(num / den) : INFINITY;
}

/* Random non-zero parameters of the scale a trained layer has. */
static void randomize(struct bli_eagle *e)
{
    int64_t d = e->d;
    float *p = e->params;
    fill(p + e->off[BLI_EAGLE_WFC], e->size[BLI_EAGLE_WFC], 0.0, 1.0 / sqrt(2.0 * (double)d));
    fill(p + e->off[BLI_EAGLE_BFC], d, 0.0, 0.3);
    fill(p + e->off[BLI_EAGLE_G1], d, 1.0, 0.3);
    fill(p + e->off[BLI_EAGLE_G2], d, 1.0, 0.3);
    /* q and k large enough that attention is far from uniform */
    fill(p + e->off[BLI_EAGLE_WQ], d * d, 0.0, 2.0 / sqrt((double)d));
    fill(p + e->off[BLI_EAGLE_WK], d * d, 0.0, 2.0 / sqrt((double)d));
    fill(p + e->off[BLI_EAGLE_WV], d * d, 0.0, 1.0 / sqrt((double)d));
    fill(p + e->off[BLI_EAGLE_WO], d * d, 0.0, 1.0 / sqrt((double)d));
    fill(p + e->off[BLI_EAGLE_WG], e->m * d, 0.0, 1.0 / sqrt((double)d));
    fill(p + e->off[BLI_EAGLE_WU], e->m * d, 0.0, 1.0 / sqrt((double)d));
    fill(p + e->off[BLI_EAGLE_WD], d * e->m, 0.0, 1.0 / sqrt((double)e->m));
}

static void test_start(struct bli_eagle *e, struct bli_eagle_ws *w)
{
    int64_t d = e->d;
    bl_err err;
    ok(e->d == 64 && e->H == 8 && e->m == 256 && e->V == 512, "stories260K: d %" PRId64 ", %" PRId64
       " heads, m %" PRId64 ", %" PRId64 " tokens", e->d, e->H, e->m, e->V);
    ok(e->n_params == 73920, "%" PRId64 " parameters for d 64, m 256 (2d^2 + 4d^2 + 3dm + 3d = 73920)",
       e->n_params);
    ok(bli_eagle_init(e, 5, &err) == 0, "init");
    struct window wd;
    make_window(&wd, d, e->V);
    float g[T * 64];
    int rc = bli_eagle_forward(e, w, wd.f, wd.y, T, 0, g, NULL, &err);
    const float *wfc = e->params + e->off[BLI_EAGLE_WFC];
    double mx = 0, dev = 0;
    for (int i = 0; i < T; i++)
        for (int64_t r = 0; r < d; r++) {
            double want = wd.f[i * d + r];
            for (int64_t c = 0; c < d; c++)
                want += (double)wfc[r * 2 * d + d + c] * e->embed[wd.y[i] * d + c];
            mx = fmax(mx, fabs(g[i * d + r] - want));
            dev = fmax(dev, fabs(g[i * d + r] - wd.f[i * d + r]));
        }
    ok(rc == 0 && mx < 1e-5, "start: g = f + Wfc_E E y (largest difference %.2e; |g - f| up to %.2f)", mx, dev);
}

static void test_gradients(struct bli_eagle *e, struct bli_eagle_ws *w)
{
    randomize(e);
    struct window wd;
    make_window(&wd, e->d, e->V);
    float *g = malloc((size_t)e->n_params * sizeof *g);
    double loss = loss_of(e, w, &wd, 0, g);
    double loss0 = loss_of(e, w, &wd, 0, NULL);
    ok(isfinite(loss) && loss == loss0, "loss %.6f, the same with and without the gradient", loss);
    double *pd = malloc((size_t)e->n_params * sizeof *pd);
    for (int64_t i = 0; i < e->n_params; i++)
        pd[i] = e->params[i];
    double lref = ref_loss(e, pd, &wd, 0);
    ok(fabs(loss - lref) < 1e-5 * fabs(lref), "loss %.7f = the double reference's %.7f (relative %.1e)", loss, lref,
       fabs(loss - lref) / fabs(lref));
    static const char *const sym[BLI_EAGLE_N_TENSORS] = {"Wfc", "bfc", "g1", "Wq", "Wk", "Wv",
                                                         "Wo",  "g2",  "Wg", "Wu", "Wd"};
    for (int t = 0; t < BLI_EAGLE_N_TENSORS; t++) {
        double er = check_tensor(e, pd, &wd, g, t, 24);
        ok(er < 1e-3, "dL/d%s (%s, %" PRId64 " entries) vs central differences: relative error %.2e", sym[t],
           bli_eagle_tensor_name(t), e->size[t], er);
    }
    free(pd);
    /* the feature term alone, and lambda's weight on it */
    float keep = e->lambda;
    e->lambda = 0.0f;
    double ce = loss_of(e, w, &wd, 0, NULL);
    e->lambda = 2.0f;
    double l2 = loss_of(e, w, &wd, 0, NULL);
    e->lambda = keep;
    ok(fabs((l2 - ce) - 2.0 * (loss - ce)) < 1e-5 * l2, "lambda weighs the feature term (%.6f = 2 x %.6f)",
       l2 - ce, loss - ce);
    free(g);
}

static void test_causal(struct bli_eagle *e, struct bli_eagle_ws *w)
{
    int64_t d = e->d, V = e->V;
    struct window a, b;
    make_window(&a, d, V);
    b = a;
    for (int64_t k = 0; k < d; k++)
        b.f[4 * d + k] += (float)gsl_ran_gaussian(rng, 1.0);
    b.y[4] = (a.y[4] + 17) % (int32_t)V;
    bl_err err;
    float ga[T * 64], gb[T * 64];
    float *za = malloc((size_t)(T * V) * sizeof *za);
    int rc = bli_eagle_forward(e, w, a.f, a.y, T, 0, ga, NULL, &err);
    memcpy(za, w->Z, (size_t)(T * V) * sizeof *za);
    rc |= bli_eagle_forward(e, w, b.f, b.y, T, 0, gb, NULL, &err);
    double before = fmax(max_abs_diff(ga, gb, (size_t)(4 * d)), max_abs_diff(za, w->Z, (size_t)(4 * V)));
    double after = max_abs_diff(ga + 4 * d, gb + 4 * d, (size_t)(2 * d));
    double after5 = max_abs_diff(ga + 5 * d, gb + 5 * d, (size_t)d);
    ok(rc == 0 && before == 0, "causal: step 4's input leaves g and logits of steps 0..3 unchanged (%.2e)", before);
    ok(after > 1e-3 && after5 > 1e-3, "and changes steps 4 and 5 (%.2e, %.2e)", after, after5);
    free(za);
}

static void test_rope(struct bli_eagle *e, struct bli_eagle_ws *w)
{
    struct window wd;
    make_window(&wd, e->d, e->V);
    double l0 = loss_of(e, w, &wd, 0, NULL), l5 = loss_of(e, w, &wd, 5, NULL);
    ok(fabs(l0 - l5) < 1e-5, "RoPE: positions 5.. give the loss of 0.. (%.7f, %.7f, difference %.1e)", l0, l5,
       fabs(l0 - l5));
    /* and order is seen at all: without RoPE, attention from step 5 is
     * the same set of keys and values whatever their order, so swapping
     * steps 1 and 2 would leave step 5's output as it was */
    struct window sw = wd;
    for (int64_t k = 0; k < e->d; k++) {
        float t = sw.f[1 * e->d + k];
        sw.f[1 * e->d + k] = sw.f[2 * e->d + k];
        sw.f[2 * e->d + k] = t;
    }
    int32_t ty = sw.y[1];
    sw.y[1] = sw.y[2];
    sw.y[2] = ty;
    bl_err err;
    float g0[T * 64], g1[T * 64];
    int rc = bli_eagle_forward(e, w, wd.f, wd.y, T, 0, g0, NULL, &err);
    rc |= bli_eagle_forward(e, w, sw.f, sw.y, T, 0, g1, NULL, &err);
    double dlast = max_abs_diff(g0 + 5 * e->d, g1 + 5 * e->d, (size_t)e->d);
    ok(rc == 0 && dlast > 1e-4, "RoPE: swapping steps 1 and 2 changes step 5 (%.2e): order is seen", dlast);
}

static void test_draft(struct bli_eagle *e, struct bli_eagle_ws *w)
{
    int64_t d = e->d;
    struct window wd;
    make_window(&wd, d, e->V);
    bl_err err;
    int32_t am[T + 1], out[3];
    float g[(T + 1) * 64];
    int rc = bli_eagle_forward(e, w, wd.f, wd.y, T, 3, g, am, &err);
    rc |= bli_eagle_draft(e, w, wd.f, wd.y, T, 3, 3, out, &err);
    ok(rc == 0 && out[0] == am[T - 1], "draft: first token %" PRId32 " is forward's argmax at the last step (%" PRId32
       ")", out[0], am[T - 1]);
    /* the second: the window grown by (g_5, draft 1) */
    float f2[(T + 1) * 64];
    int32_t y2[T + 1];
    memcpy(f2, wd.f, sizeof(float) * (size_t)(T * d));
    memcpy(f2 + T * d, g + (T - 1) * d, sizeof(float) * (size_t)d);
    memcpy(y2, wd.y, sizeof wd.y);
    y2[T] = out[0];
    rc = bli_eagle_forward(e, w, f2, y2, T + 1, 3, NULL, am, &err);
    ok(rc == 0 && out[1] == am[T], "draft: second token %" PRId32 " is the argmax after appending (g, draft 1) (%"
       PRId32 ")", out[1], am[T]);
    /* errors */
    rc = bli_eagle_draft(e, w, wd.f, wd.y, T, 0, 4, out, &err);
    ok(rc == BL_ERANGE, "draft: window %d + 4 drafts in a workspace of %" PRId64 ": BL_ERANGE (%s)", T, w->cap,
       err.msg);
    rc = bli_eagle_draft(e, w, wd.f, wd.y, T, 0, 0, out, &err);
    ok(rc == BL_EINVAL, "draft: 0 tokens: BL_EINVAL (%s)", err.msg);
    rc = bli_eagle_forward(e, w, wd.f, wd.y, w->cap + 1, 0, NULL, NULL, &err);
    ok(rc == BL_ERANGE, "forward: window longer than the workspace: BL_ERANGE (%s)", err.msg);
    rc = bli_eagle_forward(e, w, wd.f, wd.y, 0, 0, NULL, NULL, &err);
    ok(rc == BL_EINVAL, "forward: empty window: BL_EINVAL (%s)", err.msg);
    rc = bli_eagle_forward(e, w, wd.f, wd.y, T, -1, NULL, NULL, &err);
    ok(rc == BL_EINVAL, "forward: negative position: BL_EINVAL (%s)", err.msg);
    int32_t keep = wd.y[3];
    wd.y[3] = (int32_t)e->V;
    rc = bli_eagle_forward(e, w, wd.f, wd.y, T, 0, NULL, NULL, &err);
    double l = bli_eagle_loss(e, w, wd.f, wd.y, T, 0, wd.tgt, NULL, NULL, NULL, &err);
    wd.y[3] = keep;
    ok(rc == BL_EINVAL && isnan(l), "token outside the vocabulary: BL_EINVAL, loss NAN (%s)", err.msg);
}

static void test_alloc_errors(void)
{
    struct bli_eagle *e;
    bl_err err;
    int rc = bli_eagle_alloc(&e, model, NULL, -1, -1.0f, &err);
    ok(rc == BL_EINVAL && !e, "hidden width -1: BL_EINVAL (%s)", err.msg);
    rc = bli_eagle_alloc(&e, model, NULL, 0, NAN, &err);
    ok(rc == BL_EINVAL && !e, "lambda NAN: BL_EINVAL (%s)", err.msg);
    struct bli_eagle_ws w;
    if (bli_eagle_alloc(&e, model, NULL, 16, -1.0f, &err) == 0) {
        rc = bli_eagle_ws_init(&w, e, 0, &err);
        ok(rc == BL_ERANGE, "workspace of 0 steps: BL_ERANGE (%s)", err.msg);
        ok(e->m == 16 && e->lambda == BLI_EAGLE_DEFAULT_LAMBDA && e->eps > 0,
           "m 16, lambda default %g, eps %g", (double)e->lambda, (double)e->eps);
        bli_eagle_free(e);
    } else {
        ok(0, "alloc m 16: %s", err.msg);
    }
}

int main(void)
{
    char *mp = td_path("models/stories260K.bin"), *tp = td_path("models/tok512.bin");
    if (!mp || !tp)
        skip_all("test data not found (configure --with-testdata=DIR)");
    struct bl_model_params mpar = bl_model_default_params();
    mpar.tokenizer_path = tp;
    bl_err err;
    if (bl_model_load(&model, mp, &mpar, &err)) {
        diag("%s", err.msg);
        return 1;
    }
    bli_blas_single_threaded();
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 20250611);
    struct bli_eagle *e;
    struct bli_eagle_ws w;
    if (bli_eagle_alloc(&e, model, NULL, 0, -1.0f, &err) || bli_eagle_ws_init(&w, e, T + 2, &err)) {
        diag("%s", err.msg);
        return 1;
    }
    test_start(e, &w);
    test_gradients(e, &w);
    test_causal(e, &w);
    test_rope(e, &w);
    test_draft(e, &w);
    test_alloc_errors();
    bli_eagle_ws_release(&w);
    bli_eagle_free(e);
    gsl_rng_free(rng);
    bl_model_free(model);
    free(mp);
    free(tp);
    return done_testing();
}
