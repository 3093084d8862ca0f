/* tests/test-drafter.c: the Medusa heads' analytic gradients against
 * central differences, layer by layer, and the trainer (TAP).
 *
 * The heads read out through stories260K's unembedding (the test data),
 * so the check runs on the real shapes (d 64, 512 tokens).  For each head
 * layout (width 0: h + SiLU(W1 h + b1); width 96: h + W2 SiLU(W1 h + b1);
 * one and two blocks) and each tensor of each block, a sample of its
 * entries is moved by +-eps and the loss's central difference compared with
 * the analytic gradient: relative error ||g - fd|| / ||fd|| over the sample
 * below 1e-3 (f32 forward, eps 1e-2 on parameters of scale 0.3).
 *
 * The trainer: on rows whose targets are a fixed function of the feature
 * (the token whose unembedding row is nearest a fixed rotation of it), held-
 * out top-1 agreement must rise well above the untrained heads'; the same
 * seed twice (and one thread, twice) gives bitwise identical parameters. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <bitlens/bitlens.h>
#include "drafter_internal.h"
#include "tap.h"
#include "testutil.h"

static bl_model *model;
static gsl_rng *rng;

static void fill(float *p, int64_t n, double sd)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)gsl_ran_gaussian(rng, sd);
}

/* targets: random tokens, some -1 */
static void targets(int32_t *tok, int64_t rows, int K, int64_t V)
{
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j <= K; j++)
            tok[r * (K + 1) + j] = gsl_rng_uniform(rng) < 0.1 ? -1 : (int32_t)gsl_rng_uniform_int(rng, (unsigned long)V);
}

/* relative error of the analytic gradient over a sample of [off, off + n) */
static double check_range(bl_drafter *d, const float *x, const int32_t *tok, int64_t rows, const float *g,
                          int64_t off, int64_t n, int samples)
{
    const float eps = 1e-2f;
    double num = 0, den = 0;
    int64_t step = n / samples > 1 ? n / samples : 1;
    for (int64_t i = off + (int64_t)gsl_rng_uniform_int(rng, (unsigned long)step); i < off + n; i += step) {
        float keep = d->params[i];
        d->params[i] = keep + eps;
        double lp = bli_drafter_loss(d, x, tok, rows, NULL, 1);
        d->params[i] = keep - eps;
        double lm = bli_drafter_loss(d, x, tok, rows, NULL, 1);
        d->params[i] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        num += (fd - g[i]) * (fd - g[i]);
        den += fd * fd;
    }
    return den > 0 ? sqrt(num / den) : INFINITY;
}

static void test_gradients(int K, int blocks, int64_t width)
{
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = K;
    cfg.n_blocks = blocks;
    cfg.width = width;
    bl_drafter *d;
    bl_err err;
    int rc = bl_drafter_new(&d, model, &cfg, 3, &err);
    if (rc) {
        ok(0, "drafter K %d, %d blocks, width %" PRId64 ": %s", K, blocks, width, err.msg);
        return;
    }
    const struct bl_drafter_config *c = bl_drafter_config(d);
    int64_t D = c->d, V = c->n_vocab, h = bli_drafter_hidden(c), rows = 12;
    fill(d->params, d->n_params, 0.3 / sqrt((double)D) * 3);
    float *x = malloc((size_t)(rows * D) * sizeof *x), *g = malloc((size_t)d->n_params * sizeof *g);
    int32_t *tok = malloc((size_t)(rows * (K + 1)) * sizeof *tok);
    fill(x, rows * D, 1.0);
    targets(tok, rows, K, V);
    double loss = bli_drafter_loss(d, x, tok, rows, g, 2);
    float *g1 = malloc((size_t)d->n_params * sizeof *g1);
    double loss1 = bli_drafter_loss(d, x, tok, rows, g1, 1);
    ok(loss == loss1 && memcmp(g, g1, (size_t)d->n_params * sizeof *g) == 0,
       "K %d, %d block(s), width %" PRId64 ": loss %.6f and gradient the same on 1 and 2 threads", K, blocks, width,
       loss);
    for (int j = 0; j < K; j += K > 1 ? K - 1 : 1)   /* the first and last heads */
        for (int b = 0; b < blocks; b++) {
            double e1 = check_range(d, x, tok, rows, g, bli_drafter_w1(c, j, b), h * D, 24);
            double eb = check_range(d, x, tok, rows, g, bli_drafter_b1(c, j, b), h, 12);
            ok(e1 < 1e-3, "width %" PRId64 ", head %d block %d: dL/dW1 vs central differences, relative error %.2e",
               width, j + 1, b, e1);
            ok(eb < 1e-3, "width %" PRId64 ", head %d block %d: dL/db1 vs central differences, relative error %.2e",
               width, j + 1, b, eb);
            if (width > 0) {
                double e2 = check_range(d, x, tok, rows, g, bli_drafter_w2(c, j, b), D * h, 24);
                ok(e2 < 1e-3, "width %" PRId64 ", head %d block %d: dL/dW2 vs central differences, relative error %.2e",
                   width, j + 1, b, e2);
            }
        }
    free(x);
    free(g);
    free(g1);
    free(tok);
    bl_drafter_free(d);
}

/* The untrained heads repeat the main model's head: with W = 0 (width 0)
 * or W2 = 0 (width w) each head's logits are U h. */
static void test_start(void)
{
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = 3;
    cfg.n_blocks = 2;
    cfg.width = 32;
    bl_drafter *d;
    bl_err err;
    if (bl_drafter_new(&d, model, &cfg, 1, &err)) {
        ok(0, "new: %s", err.msg);
        return;
    }
    const struct bl_drafter_config *c = bl_drafter_config(d);
    int64_t D = c->d, V = c->n_vocab;
    float x[2 * 64];
    fill(x, 2 * D, 1.0);
    float *z = malloc((size_t)(2 * 3 * V) * sizeof *z);
    int rc = bl_drafter_eval(d, x, 2, z, NULL, NULL, &err);
    double mx = 0;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 3; j++)
            for (int64_t v = 0; v < V; v++) {
                double want = 0;
                for (int64_t i = 0; i < D; i++)
                    want += (double)d->unembed[v * D + i] * x[r * D + i];
                mx = fmax(mx, fabs(z[(r * 3 + j) * V + v] - want));
            }
    ok(rc == 0 && mx < 1e-4, "untrained heads: logits U h (largest difference %.2e)", mx);
    ok(bl_drafter_n_params(d) == 3 * 2 * (32 * D + 32 + D * 32), "%" PRId64 " parameters", bl_drafter_n_params(d));
    free(z);
    bl_drafter_free(d);

    cfg.n_heads = 0;
    ok(bl_drafter_new(&d, model, &cfg, 1, &err) == BL_EINVAL, "0 heads: '%s'", err.msg);
    cfg.n_heads = 2;
    cfg.kind = 7;
    ok(bl_drafter_new(&d, model, &cfg, 1, &err) == BL_EINVAL, "kind 7: '%s'", err.msg);
}

/* Rows whose head-j target is the token nearest R_j x in the unembedding. */
static void synth(const bl_drafter *d, struct bl_drafter_data *data, int64_t n, int K)
{
    const struct bl_drafter_config *c = bl_drafter_config(d);
    int64_t D = c->d, V = c->n_vocab;
    data->n = n;
    data->d = D;
    data->k = K;
    data->feat = malloc((size_t)(n * D) * sizeof(float));
    data->tok = malloc((size_t)(n * (K + 1)) * sizeof(int32_t));
    data->seq = calloc((size_t)n, sizeof(int32_t));
    float *R = malloc((size_t)((K + 1) * D * D) * sizeof *R);
    fill(R, (K + 1) * D * D, 1.0 / sqrt((double)D));
    fill(data->feat, n * D, 1.0);
    float *y = malloc((size_t)D * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j <= K; j++) {
            for (int64_t a = 0; a < D; a++) {
                double s = 0;
                for (int64_t b = 0; b < D; b++)
                    s += (double)R[(j * D + a) * D + b] * data->feat[i * D + b];
                y[a] = (float)s;
            }
            int64_t best = 0;
            double bv = -INFINITY;
            for (int64_t v = 0; v < V; v++) {
                double s = 0;
                for (int64_t a = 0; a < D; a++)
                    s += (double)d->unembed[v * D + a] * y[a];
                if (s > bv) {
                    bv = s;
                    best = v;
                }
            }
            data->tok[i * (K + 1) + j] = (int32_t)best;
        }
    free(R);
    free(y);
}

static void test_training(void)
{
    enum { K = 2, N = 3000 };
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = K;
    cfg.n_blocks = 1;
    cfg.width = 128;
    bl_drafter *d[3];
    bl_err err;
    for (int i = 0; i < 3; i++)
        if (bl_drafter_new(&d[i], model, &cfg, 5, &err)) {
            ok(0, "new: %s", err.msg);
            return;
        }
    struct bl_drafter_data data = {0};
    synth(d[0], &data, N, K);
    unsigned char *valid = malloc(N);
    for (int i = 0; i < N; i++)
        valid[i] = i % 5 == 0;
    double l0, t0[K];
    bl_drafter_evaluate(d[0], &data, valid, &l0, t0, &err);
    struct bl_drafter_train_params p = bl_drafter_train_default_params();
    p.steps = 600;
    p.lr = 3e-3f;
    p.eval_every = 0;
    p.n_threads = 2;
    struct bl_drafter_train_stats st[3];
    int rc = bl_drafter_train(d[0], &data, valid, &p, &st[0], &err);
    rc |= bl_drafter_train(d[1], &data, valid, &p, &st[1], &err);
    p.n_threads = 1;
    rc |= bl_drafter_train(d[2], &data, valid, &p, &st[2], &err);
    ok(rc == 0, "trained 3 times%s%s", rc ? ": " : "", rc ? err.msg : "");
    diag("held-out top-1 before: %.3f %.3f; after %" PRId64 " steps: %.3f %.3f (loss %.3f -> %.3f nats, %.2f s)",
         t0[0], t0[1], st[0].steps, st[0].top1[0], st[0].top1[1], l0, st[0].valid_loss, st[0].seconds);
    ok(st[0].valid_loss < l0 - 0.5 && st[0].top1[0] > t0[0] + 0.2 && st[0].top1[1] > t0[1] + 0.2,
       "training on a learnable map: held-out loss %.3f -> %.3f nats, top-1 of head 1 %.3f -> %.3f",
       l0, st[0].valid_loss, t0[0], st[0].top1[0]);
    ok(memcmp(d[0]->params, d[1]->params, (size_t)d[0]->n_params * sizeof(float)) == 0,
       "the same seed twice: identical parameters");
    ok(memcmp(d[0]->params, d[2]->params, (size_t)d[0]->n_params * sizeof(float)) == 0,
       "one thread and two: identical parameters (heads are whole per thread)");
    ok(st[0].n_train == N - N / 5 && st[0].n_valid == N / 5, "%" PRId64 " training rows, %" PRId64 " held out",
       st[0].n_train, st[0].n_valid);

    /* EAGLE-style: windows of one sequence; the same seed twice, and one
     * thread against two, give the same parameters */
    {
        struct bl_drafter_config ec = {0};
        ec.kind = BL_DRAFTER_EAGLE;
        ec.n_heads = K;
        ec.n_blocks = 1;
        ec.width = 64;
        bl_drafter *e[3];
        int erc = 0;
        for (int i = 0; i < 3; i++)
            erc |= bl_drafter_new(&e[i], model, &ec, 5, &err);
        struct bl_drafter_train_params ep = bl_drafter_train_default_params();
        ep.steps = 40;
        ep.batch = 64;
        ep.eval_every = 0;
        ep.n_threads = 2;
        struct bl_drafter_train_stats es[3];
        double before = 0, after = 0;
        if (!erc) {
            bl_drafter_evaluate(e[0], &data, valid, &before, NULL, &err);
            erc |= bl_drafter_train(e[0], &data, valid, &ep, &es[0], &err);
            erc |= bl_drafter_train(e[1], &data, valid, &ep, &es[1], &err);
            ep.n_threads = 1;
            erc |= bl_drafter_train(e[2], &data, valid, &ep, &es[2], &err);
            bl_drafter_evaluate(e[0], &data, valid, &after, NULL, &err);
        }
        ok(erc == 0 && after < before, "EAGLE-style: 40 steps lower the held-out loss %.3f -> %.3f nats%s%s", before,
           after, erc ? ": " : "", erc ? err.msg : "");
        ok(erc == 0 && memcmp(e[0]->params, e[1]->params, (size_t)e[0]->n_params * sizeof(float)) == 0 &&
               memcmp(e[0]->params, e[2]->params, (size_t)e[0]->n_params * sizeof(float)) == 0,
           "EAGLE-style: the same seed twice, and one thread against two, give identical parameters");
        for (int i = 0; i < 3; i++)
            bl_drafter_free(e[i]);
    }

    /* errors */
    struct bl_drafter_train_params q = bl_drafter_train_default_params();
    q.batch = 0;
    ok(bl_drafter_train(d[0], &data, valid, &q, &st[0], &err) == BL_EINVAL, "batch 0: '%s'", err.msg);
    data.k = 1;
    ok(bl_drafter_train(d[0], &data, valid, &p, &st[0], &err) == BL_EINVAL, "a set with fewer tokens ahead than "
       "heads: '%s'", err.msg);
    data.k = K;
    bl_drafter_data_release(&data);
    free(valid);
    for (int i = 0; i < 3; i++)
        bl_drafter_free(d[i]);
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
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 20261128);
    test_start();
    test_gradients(2, 1, 0);
    test_gradients(2, 2, 0);
    test_gradients(3, 1, 96);
    test_gradients(2, 2, 96);
    test_training();
    gsl_rng_free(rng);
    bl_model_free(model);
    free(mp);
    free(tp);
    return done_testing();
}
