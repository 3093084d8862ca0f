/* tests/test-model-train.c: training a Llama-family model from scratch
 * (bitlens/train.h, lib/model_train.c), TAP.
 *
 * - gradient check: a tiny model (dim 16, 2 layers, 2 heads of 8, hidden
 *   24, 300 tokens, windows of 37 positions so attention spans two of the
 *   trainer's 32-row blocks), tied and untied, on random non-zero
 *   parameters (gains near 1, not 1).  The loss is recomputed here by an
 *   independent float64 forward pass written from bitlens/train.h's
 *   formulas with plain loops; the trainer's f32 loss must match it to 1e-5
 *   relative (f32 rounding of a loss near 6; about 1e-8 seen).  The
 *   analytic f32 gradient of every parameter tensor is compared with
 *   central differences of that f64 loss (step 1e-4: truncation O(1e-8)
 *   relative, rounding 1e-12) at 16 entries per tensor (embedding entries
 *   from rows the window reads): ||g - fd|| / ||fd|| per tensor below 1e-3,
 *   the f32 rounding of the analytic gradient being about 1e-7..1e-6;
 * - the loss and gradient summed over 5 windows are bit for bit the same
 *   on 1, 2 and 3 threads;
 * - the file the trainer writes, loaded by bl_model_load and run by
 *   bl_ctx_eval, gives the trainer's own logits (max |diff| below 1e-4 of
 *   the largest logit; both are f32 computations of the same formulas
 *   with different summation orders, about 1e-6 seen), for a random
 *   untied model with a padded vocabulary and for a trained tied one; and
 *   the held-out loss bl_model_train reports equals the loss computed from
 *   bl_ctx_eval's logits on the held-out windows as bitlens/train.h
 *   defines them (1e-4 relative);
 * - training lowers the held-out loss: a dim-32 model on the TinyStories
 *   head tokenized with tok512 (about 99k tokens, the last 10% held out),
 *   200 steps of 8 x 64 tokens, from about log(512) = 6.24 to 0.3 nats
 *   below the cross-entropy of the training part's unigram distribution on
 *   the held-out tokens (4.83), the best a model blind to the context does,
 *   and below 0.75 log(512) (4.11 seen);
 * - the same seed gives the same file bit for bit, on 1 and on 2 threads;
 *   another seed gives another file; bl_model_train_n_params counts what
 *   the file holds;
 * - the progress callback: its calls, and stopping (BL_ESTOPPED, no file);
 * - every BL_EINVAL of the configuration and parameters, with a message,
 *   and a loss that overflows (learning rate 1e30) stopping the run;
 * - timings (diag): tokens per second of training at dim 64 and 128,
 *   4 layers, 2 threads. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <bitlens/bitlens.h>
#include "model_train_internal.h"
#include "tap.h"
#include "testutil.h"

static gsl_rng *rng;

/* ---------------------------------------------------------------- the f64 reference */

/* Mean next-token cross-entropy of B windows tok[b (T+1) ..] under the
 * model of shape m with parameters p (doubles, m's layout), computed from
 * the formulas of bitlens/train.h. */
static double ref_loss(const struct bli_mt *m, const double *p, const int32_t *tok, int64_t B, int64_t T)
{
    int64_t D = m->D, F = m->F, H = m->H, hd = m->hd, V = m->V;
    double eps = m->cfg.norm_eps, theta = m->cfg.rope_theta;
    double *x = malloc(sizeof(double) * (size_t)(T * D)), *n = malloc(sizeof(double) * (size_t)(T * D)),
           *q = malloc(sizeof(double) * (size_t)(T * D)), *k = malloc(sizeof(double) * (size_t)(T * D)),
           *v = malloc(sizeof(double) * (size_t)(T * D)), *z = malloc(sizeof(double) * (size_t)(T * D)),
           *a = malloc(sizeof(double) * (size_t)(T * F)), *u = malloc(sizeof(double) * (size_t)(T * F)),
           *s = malloc(sizeof(double) * (size_t)T), *lg = malloc(sizeof(double) * (size_t)V);
    double ce = 0;
    /* out[i][r] = sum_c in[i][c] W[r][c] for W [rows x cols] */
#define LIN(in, W, out, rows, cols)                                                            \
    for (int64_t i = 0; i < T; i++)                                                            \
        for (int64_t r = 0; r < (rows); r++) {                                                 \
            double acc = 0;                                                                    \
            for (int64_t c = 0; c < (cols); c++)                                               \
                acc += (in)[i * (cols) + c] * (W)[r * (cols) + c];                             \
            (out)[i * (rows) + r] = acc;                                                       \
        }
    /* n = x / sqrt(mean(x^2) + eps) * g, row by row */
#define RMS(g)                                                                                 \
    for (int64_t i = 0; i < T; i++) {                                                          \
        double ss = 0;                                                                         \
        for (int64_t c = 0; c < D; c++)                                                        \
            ss += x[i * D + c] * x[i * D + c];                                                 \
        double r = 1.0 / sqrt(ss / (double)D + eps);                                           \
        for (int64_t c = 0; c < D; c++)                                                        \
            n[i * D + c] = x[i * D + c] * r * (g)[c];                                          \
    }
    for (int64_t b = 0; b < B; b++) {
        const int32_t *t = tok + b * (T + 1);
        for (int64_t i = 0; i < T; i++)
            for (int64_t c = 0; c < D; c++)
                x[i * D + c] = p[m->embd + (int64_t)t[i] * D + c];
        for (int64_t l = 0; l < m->L; l++) {
            const struct bli_mt_layer *ly = &m->layer[l];
            RMS(p + ly->attn_norm);
            LIN(n, p + ly->wq, q, D, D);
            LIN(n, p + ly->wk, k, D, D);
            LIN(n, p + ly->wv, v, D, D);
            for (int64_t i = 0; i < T; i++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t j = 0; j < hd / 2; j++) {
                        double ang = (double)i * pow(theta, -2.0 * (double)j / (double)hd);
                        double co = cos(ang), si = sin(ang);
                        double *qq = q + i * D + h * hd + 2 * j, *kk = k + i * D + h * hd + 2 * j;
                        double q0 = qq[0], q1 = qq[1], k0 = kk[0], k1 = kk[1];
                        qq[0] = q0 * co - q1 * si;
                        qq[1] = q0 * si + q1 * co;
                        kk[0] = k0 * co - k1 * si;
                        kk[1] = k0 * si + k1 * co;
                    }
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < T; i++) {
                    double mx = -INFINITY, sum = 0;
                    for (int64_t j = 0; j <= i; j++) {
                        double d = 0;
                        for (int64_t c = 0; c < hd; c++)
                            d += q[i * D + h * hd + c] * k[j * D + h * hd + c];
                        s[j] = d / sqrt((double)hd);
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    for (int64_t j = 0; j <= i; j++)
                        sum += (s[j] = exp(s[j] - mx));
                    for (int64_t c = 0; c < hd; c++) {
                        double acc = 0;
                        for (int64_t j = 0; j <= i; j++)
                            acc += s[j] / sum * v[j * D + h * hd + c];
                        z[i * D + h * hd + c] = acc;
                    }
                }
            LIN(z, p + ly->wo, q, D, D);   /* q reused for z Wo^T */
            for (int64_t i = 0; i < T * D; i++)
                x[i] += q[i];
            RMS(p + ly->ffn_norm);
            LIN(n, p + ly->w_gate, a, F, D);
            LIN(n, p + ly->w_up, u, F, D);
            for (int64_t i = 0; i < T * F; i++)
                a[i] = a[i] / (1.0 + exp(-a[i])) * u[i];
            LIN(a, p + ly->w_down, q, D, F);
            for (int64_t i = 0; i < T * D; i++)
                x[i] += q[i];
        }
        RMS(p + m->out_norm);
        for (int64_t i = 0; i < T; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t r = 0; r < V; r++) {
                double acc = 0;
                for (int64_t c = 0; c < D; c++)
                    acc += n[i * D + c] * p[m->out + r * D + c];
                lg[r] = acc;
                mx = acc > mx ? acc : mx;
            }
            for (int64_t r = 0; r < V; r++)
                sum += exp(lg[r] - mx);
            ce += log(sum) + mx - lg[t[i + 1]];
        }
    }
#undef LIN
#undef RMS
    free(x), free(n), free(q), free(k), free(v), free(z), free(a), free(u), free(s), free(lg);
    return ce / (double)(B * T);
}

/* ---------------------------------------------------------------- helpers */

static struct bl_model_train_config tiny_config(int tied)
{
    struct bl_model_train_config c = bl_model_train_default_config();
    c.n_vocab = 300;
    c.dim = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.hidden_dim = 24;
    c.n_ctx = 40;
    c.tied = tied;
    return c;
}

/* Random parameters: matrices N(0, 1/cols), gains 1 + N(0, 0.2). */
static void randomize(struct bli_mt *m)
{
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const struct bli_mt_tensor *t = &m->tensor[i];
        for (int64_t k = 0; k < t->ne0 * t->ne1; k++)
            m->params[t->off + k] = t->matrix ? (float)gsl_ran_gaussian(rng, 1.0 / sqrt((double)t->ne0))
                                              : (float)(1.0 + gsl_ran_gaussian(rng, 0.2));
    }
}

static void random_tokens(int32_t *tok, int64_t n, int64_t V)
{
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)gsl_rng_uniform_int(rng, (unsigned long)V);
}

/* ---------------------------------------------------------------- gradient check */

static void gradient_check(int tied)
{
    enum { B = 2, T = 37, SAMPLES = 16 };
    struct bl_model_train_config c = tiny_config(tied);
    struct bli_mt *m;
    bl_err err;
    if (bli_mt_alloc(&m, &c, &err)) {
        ok(0, "alloc: %s", err.msg);
        return;
    }
    randomize(m);
    int32_t tok[B * (T + 1)];
    random_tokens(tok, B * (T + 1), m->V);
    float *g = malloc(sizeof(float) * (size_t)m->n_params), *g2 = malloc(sizeof(float) * (size_t)m->n_params);
    double *p = malloc(sizeof(double) * (size_t)m->n_params);
    for (int64_t i = 0; i < m->n_params; i++)
        p[i] = m->params[i];
    double l32 = bli_mt_loss(m, tok, B, T, g, 1), l64 = ref_loss(m, p, tok, B, T);
    ok(fabs(l32 - l64) <= 1e-5 * l64, "%s: the trainer's f32 loss %.9f equals the f64 reference %.9f (rel %.1e)",
       tied ? "tied" : "untied", l32, l64, fabs(l32 - l64) / l64);
    double worst = 0;
    const char *worst_name = "";
    int all_ok = 1;
    for (int64_t ti = 0; ti < m->n_tensors; ti++) {
        const struct bli_mt_tensor *t = &m->tensor[ti];
        int64_t n = t->ne0 * t->ne1;
        double num = 0, den = 0;
        for (int s = 0; s < SAMPLES; s++) {
            int64_t k;
            if (t->off == m->embd && s % 2 == 0)   /* a row the windows read */
                k = (int64_t)tok[gsl_rng_uniform_int(rng, B * (T + 1))] * t->ne0 +
                    (int64_t)gsl_rng_uniform_int(rng, (unsigned long)t->ne0);
            else
                k = (int64_t)gsl_rng_uniform_int(rng, (unsigned long)n);
            int64_t i = t->off + k;
            double h = 1e-4, keep = p[i];
            p[i] = keep + h;
            double lp = ref_loss(m, p, tok, B, T);
            p[i] = keep - h;
            double lm = ref_loss(m, p, tok, B, T);
            p[i] = keep;
            double fd = (lp - lm) / (2 * h);
            num += (g[i] - fd) * (g[i] - fd);
            den += fd * fd;
        }
        double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        if (rel > worst) {
            worst = rel;
            worst_name = t->name;
        }
        diag("%s %-24s ||g - fd|| / ||fd|| = %.2e  (||fd|| %.2e)", tied ? "tied" : "untied", t->name, rel,
             sqrt(den));
        all_ok &= rel < 1e-3;
    }
    ok(all_ok, "%s: the analytic gradient of each of %" PRId64 " tensors matches central differences of the f64 "
       "loss (worst %.2e, %s; bound 1e-3)", tied ? "tied" : "untied", m->n_tensors, worst, worst_name);
    if (!tied) {
        enum { B4 = 5 };
        int32_t t4[B4 * (T + 1)];
        random_tokens(t4, B4 * (T + 1), m->V);
        double l1 = bli_mt_loss(m, t4, B4, T, g, 1), l2 = bli_mt_loss(m, t4, B4, T, g2, 2);
        int same = l1 == l2 && memcmp(g, g2, sizeof(float) * (size_t)m->n_params) == 0;
        l2 = bli_mt_loss(m, t4, B4, T, g2, 3);
        same &= l1 == l2 && memcmp(g, g2, sizeof(float) * (size_t)m->n_params) == 0;
        ok(same, "the loss and gradient over %d windows are bit for bit the same on 1, 2 and 3 threads", B4);
    }
    free(g);
    free(g2);
    free(p);
    bli_mt_free(m);
}

/* ---------------------------------------------------------------- round trip */

/* Copy a loaded model's tensors into m (same shape) by name. */
static int take_weights(struct bli_mt *m, const bl_model *model)
{
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const struct bl_tensor *t = bl_model_find_tensor(model, m->tensor[i].name);
        if (!t || t->type != BL_F32 || bl_tensor_nelements(t) != m->tensor[i].ne0 * m->tensor[i].ne1)
            return -1;
        memcpy(m->params + m->tensor[i].off, t->data, t->nbytes);
    }
    return bl_model_n_tensors(model) == m->n_tensors ? 0 : -1;
}

/* max |a - b| / max(1, max |a|) over n */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0, s = 1;
    for (int64_t i = 0; i < n; i++) {
        d = fabs((double)a[i] - b[i]) > d ? fabs((double)a[i] - b[i]) : d;
        s = fabs(a[i]) > s ? fabs(a[i]) : s;
    }
    return d / s;
}

/* The trainer's logits for tok[0..T-1] and bl_ctx_eval's on the loaded
 * model: their relative difference, and each one's summed cross-entropy
 * of the targets tok[1..T] when want_ce. */
static double compare_logits(const struct bli_mt *m, bl_ctx *ctx, const int32_t *tok, int64_t T, double *ce_ctx)
{
    int64_t V = m->V;
    float *a = malloc(sizeof(float) * (size_t)(T * V)), *b = malloc(sizeof(float) * (size_t)(T * V));
    struct bli_mt_ws *w = bli_mt_ws_alloc(m, T);
    bli_mt_forward(m, w, tok, T, a);
    bl_ctx_rewind(ctx, 0);
    int rc = bl_ctx_eval(ctx, tok, T, b, BL_EVAL_ALL_LOGITS);
    double d = rc ? INFINITY : rel_diff(a, b, T * V);
    if (ce_ctx) {
        double ce = 0;
        for (int64_t i = 0; i < T; i++) {
            const float *z = b + i * V;
            double mx = z[0], s = 0;
            for (int64_t j = 1; j < V; j++)
                mx = z[j] > mx ? z[j] : mx;
            for (int64_t j = 0; j < V; j++)
                s += exp(z[j] - mx);
            ce += log(s) + mx - z[tok[i + 1]];
        }
        *ce_ctx += ce;
    }
    bli_mt_ws_free(w);
    free(a);
    free(b);
    return d;
}

static void round_trip_random(const char *dir, const bl_tokenizer *tok512)
{
    /* untied, 520 rows for the tokenizer's 512 tokens (padded in the file) */
    struct bl_model_train_config c = tiny_config(0);
    c.n_vocab = 520;
    c.n_ctx = 48;
    c.rope_theta = 500.0f;   /* not the default: the file must carry it */
    c.norm_eps = 1e-6f;
    struct bli_mt *m;
    bl_err err;
    char path[512];
    snprintf(path, sizeof path, "%s/random.gguf", dir);
    if (bli_mt_alloc(&m, &c, &err)) {
        ok(0, "alloc: %s", err.msg);
        return;
    }
    randomize(m);
    int rc = bli_mt_write_gguf(m, tok512, "random", path, &err);
    ok(rc == BL_OK, "a random untied model with a padded vocabulary is written (%s)", rc ? err.msg : "ok");
    bl_model *model = NULL;
    struct bl_model_params mp = bl_model_default_params();
    rc = bl_model_load(&model, path, &mp, &err);
    ok(rc == BL_OK, "bl_model_load reads it (%s)", rc ? err.msg : "ok");
    if (rc) {
        bli_mt_free(m);
        return;
    }
    const struct bl_model_config *mc = bl_model_config(model);
    ok(mc->arch == BL_ARCH_LLAMA && mc->dim == 16 && mc->n_layers == 2 && mc->n_heads == 2 && mc->n_kv_heads == 2 &&
       mc->hidden_dim == 24 && mc->n_vocab == 520 && mc->ctx_train == 48 && mc->rope_base == 500.0f &&
       mc->norm_eps == 1e-6f && !mc->tied_classifier && mc->rope == BL_ROPE_ADJACENT && mc->n_rot == 8 &&
       bl_model_tokenizer(model) && bl_tokenizer_n_vocab(bl_model_tokenizer(model)) == 520 &&
       bl_model_n_params(model) == m->n_params,
       "its configuration is the trainer's (%" PRId64 " parameters, separate classifier)", bl_model_n_params(model));
    struct bl_ctx_params cp = bl_ctx_default_params();
    cp.n_threads = 2;
    bl_ctx *ctx;
    if ((rc = bl_ctx_alloc(&ctx, model, &cp, &err)) == BL_OK) {
        int32_t t[48];
        random_tokens(t, 48, 520);
        double d = compare_logits(m, ctx, t, 48, NULL);
        ok(d < 1e-4, "bl_ctx_eval's logits over 48 positions equal the trainer's (max diff %.1e of the largest)", d);
        bl_ctx_free(ctx);
    } else {
        ok(0, "context: %s", err.msg);
    }
    bl_model_free(model);
    bli_mt_free(m);
}

/* ---------------------------------------------------------------- corpus */

/* The TinyStories head, paragraph by paragraph with BOS, tokenized. */
static int32_t *tinystories(const bl_tokenizer *tok, int64_t *n_out)
{
    char *path = td_path("text/tinystories_train_head.txt");
    size_t n;
    char *text = path ? read_file(path, &n) : NULL;
    free(path);
    if (!text)
        return NULL;
    int64_t cap = 3 * (int64_t)n + 5 * 4096, used = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    for (char *s = text; *s;) {
        char *e = strstr(s, "\n\n");
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int64_t k = 0;
        if (len > 0 && bl_tokenizer_encode(tok, s, len, BL_TOK_BOS, ids + used, cap - used, &k) == BL_OK)
            used += k;
        if (!e)
            break;
        s = e + 2;
    }
    free(text);
    *n_out = used;
    return ids;
}

/* Cross-entropy (nats) of the targets held[1..n-1] under the unigram
 * distribution of train[0..n_train-1], add-one smoothed over V tokens: the
 * best a model that ignores the context can do, near enough. */
static double unigram_ce(const int32_t *train, int64_t n_train, const int32_t *held, int64_t n, int64_t V)
{
    double *cnt = calloc((size_t)V, sizeof *cnt), ce = 0;
    for (int64_t i = 0; i < n_train; i++)
        cnt[train[i]] += 1;
    for (int64_t i = 1; i < n; i++)
        ce -= log((cnt[held[i]] + 1) / ((double)n_train + (double)V));
    free(cnt);
    return ce / (double)(n - 1);
}

/* ---------------------------------------------------------------- progress */

struct prog {
    int calls;
    int64_t steps[16];
    double train[16], valid[16];
    int stop_at;   /* return nonzero at this call (0: never) */
};

static int on_progress(void *user, int64_t step, int64_t steps, double train_loss, double valid_loss)
{
    struct prog *pr = user;
    (void)steps;
    if (pr->calls < 16) {
        pr->steps[pr->calls] = step;
        pr->train[pr->calls] = train_loss;
        pr->valid[pr->calls] = valid_loss;
    }
    pr->calls++;
    return pr->stop_at && pr->calls == pr->stop_at;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    void *x = read_file(a, &na), *y = read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ---------------------------------------------------------------- training */

static void training(const char *dir, const bl_tokenizer *tok, const int32_t *ids, int64_t n_ids)
{
    struct bl_model_train_config c = bl_model_train_default_config();
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.hidden_dim = 96;
    c.n_ctx = 64;
    struct bl_model_train_params p = bl_model_train_default_params();
    p.steps = 200;
    p.batch = 8;
    p.seq = 64;
    p.lr = 1e-2f;
    p.warmup = 20;
    p.eval_every = 50;
    p.valid_fraction = 0.1;
    p.n_threads = 1;
    p.seed = 7;
    struct prog pr = {0};
    p.progress = on_progress;
    p.progress_user = &pr;
    struct bl_model_train_stats st;
    bl_err err;
    char a[512], b[512], c1[512], d[512];
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(c1, sizeof c1, "%s/c.gguf", dir);
    snprintf(d, sizeof d, "%s/d.gguf", dir);
    int rc = bl_model_train(tok, ids, n_ids, &c, &p, a, &st, &err);
    ok(rc == BL_OK, "a dim-32 model trains for 200 steps on %" PRId64 " tokens (%s)", n_ids, rc ? err.msg : "ok");
    if (rc)
        return;
    double logv = log(512.0), uni = unigram_ce(ids, n_ids - st.n_valid_tokens, ids + (n_ids - st.n_valid_tokens),
                                                st.n_valid_windows * p.seq + 1, 512);
    diag("held-out loss %.3f -> %.3f nats (log 512 = %.3f), training loss %.3f; %" PRId64 " parameters, %" PRId64
         " held-out windows, %.2f s, %.0f tokens/s", st.valid_loss_start, st.valid_loss, logv, st.train_loss,
         st.n_params, st.n_valid_windows, st.seconds, st.tokens_per_second);
    ok(fabs(st.valid_loss_start - logv) < 0.2 && st.valid_loss < uni - 0.3 && st.valid_loss < 0.75 * logv,
       "the held-out loss falls from about log(512) (%.3f) to %.3f, below the training unigram's %.3f",
       st.valid_loss_start, st.valid_loss, uni);
    ok(st.n_params == bl_model_train_n_params(&c, 512) && st.n_params == 43168 &&
       bl_model_train_n_params(&c, 0) == 43168 - 512 * 32,
       "bl_model_train_n_params counts %" PRId64 " parameters (with the tokenizer's 512 rows)", st.n_params);
    ok(st.steps == 200 && st.tokens == 200 * 8 * 64 && st.n_valid_tokens == (int64_t)floor((double)n_ids * 0.1) &&
       st.n_train_tokens == n_ids - st.n_valid_tokens && st.n_valid_windows == (st.n_valid_tokens - 1) / 64,
       "the stats count steps, tokens and held-out windows as documented");
    ok(pr.calls == 5 && pr.steps[0] == 0 && isnan(pr.train[0]) && pr.valid[0] == st.valid_loss_start &&
       pr.steps[1] == 50 && pr.steps[4] == 200 && pr.valid[4] == st.valid_loss && pr.train[4] == st.train_loss &&
       pr.valid[2] < pr.valid[0],
       "progress is called at steps 0, 50, 100, 150, 200 with the losses (%d calls)", pr.calls);

    /* the file against bl_ctx_eval: logits and the held-out loss */
    bl_model *model = NULL;
    struct bl_model_params mp = bl_model_default_params();
    if ((rc = bl_model_load(&model, a, &mp, &err))) {
        ok(0, "load: %s", err.msg);
        return;
    }
    const bl_tokenizer *lt = bl_model_tokenizer(model);
    int32_t probe[16];
    int64_t np = 0, nq = 0;
    const char *text = "Once upon a time, there was a little dog.";
    bl_tokenizer_encode(tok, text, strlen(text), BL_TOK_BOS, probe, 16, &np);
    if (lt)
        bl_tokenizer_encode(lt, text, strlen(text), BL_TOK_BOS, probe, 16, &nq);
    ok(lt && bl_model_config(model)->tied_classifier && np == nq,
       "the file carries the vocabulary (the loaded tokenizer encodes as tok512) and a tied classifier");
    struct bl_model_train_config cc = c;
    cc.n_vocab = 512;
    struct bli_mt *m;
    struct bl_ctx_params cp = bl_ctx_default_params();
    cp.n_threads = 2;
    bl_ctx *ctx = NULL;
    if (bli_mt_alloc(&m, &cc, &err) || take_weights(m, model) || bl_ctx_alloc(&ctx, model, &cp, &err)) {
        ok(0, "the loaded tensors into the trainer's layout: %s", err.msg);
        bl_model_free(model);
        return;
    }
    int64_t n_valid = st.n_valid_tokens, T = p.seq;
    const int32_t *valid = ids + (n_ids - n_valid);
    double worst = 0, ce = 0;
    for (int64_t w = 0; w < st.n_valid_windows; w++) {
        double dd = compare_logits(m, ctx, valid + w * T, T, &ce);
        worst = dd > worst ? dd : worst;
    }
    double vl = ce / ((double)st.n_valid_windows * (double)T);
    ok(worst < 1e-4, "trained: bl_ctx_eval's logits equal the trainer's on %" PRId64 " held-out windows (max diff %.1e "
       "of the largest)", st.n_valid_windows, worst);
    ok(fabs(vl - st.valid_loss) <= 1e-4 * st.valid_loss,
       "the held-out loss from bl_ctx_eval, %.6f, is the trainer's %.6f (rel %.1e)", vl, st.valid_loss,
       fabs(vl - st.valid_loss) / st.valid_loss);
    bl_ctx_free(ctx);
    bli_mt_free(m);
    bl_model_free(model);

    /* reproducibility: shorter runs */
    p.steps = 30;
    p.eval_every = 0;
    p.progress = NULL;
    p.n_threads = 2;
    int r1 = bl_model_train(tok, ids, n_ids, &c, &p, b, NULL, &err);
    int r2 = bl_model_train(tok, ids, n_ids, &c, &p, c1, NULL, &err);
    p.n_threads = 1;
    int r3 = bl_model_train(tok, ids, n_ids, &c, &p, d, NULL, &err);
    ok(!r1 && !r2 && same_file(b, c1), "two runs with the same seed write the same file bit for bit");
    ok(!r3 && same_file(b, d), "one thread writes the same file bit for bit as two");
    p.seed = 8;
    int r4 = bl_model_train(tok, ids, n_ids, &c, &p, d, NULL, &err);
    ok(!r4 && !same_file(b, d), "another seed writes another file");

    /* stopping */
    struct prog stop = {0};
    stop.stop_at = 2;
    p.eval_every = 10;
    p.progress = on_progress;
    p.progress_user = &stop;
    unlink(d);
    rc = bl_model_train(tok, ids, n_ids, &c, &p, d, &st, &err);
    ok(rc == BL_ESTOPPED && stop.calls == 2 && st.steps == 10 && access(d, F_OK) != 0,
       "a progress callback returning nonzero stops at step 10 with BL_ESTOPPED and no file (%s)", err.msg);
}

/* ---------------------------------------------------------------- errors */

static void errors(const char *dir, const bl_tokenizer *tok, const int32_t *ids, int64_t n_ids)
{
    char path[512];
    snprintf(path, sizeof path, "%s/err.gguf", dir);
    struct bl_model_train_config c0 = tiny_config(1);
    c0.n_vocab = 0;
    struct bl_model_train_params p0 = bl_model_train_default_params();
    p0.steps = 1;
    p0.batch = 1;
    p0.seq = 8;
    p0.n_threads = 1;
    bl_err err;
    struct {
        const char *what;
        int field;
        double value;
        int no_tok;
        const char *needle;
    } cases[] = {
        {"dim not a multiple of the heads", 0, 15, 0, "head width"},
        {"an odd head width", 0, 18, 0, "head width"},   /* 2 heads of 9 */
        {"seq > n_ctx", 1, 41, 0, "exceed the context length"},
        {"no vocabulary", 2, 0, 1, "no vocabulary"},
        {"fewer rows than the tokenizer's tokens", 2, 500, 0, "cannot hold"},
        {"zero layers", 3, 0, 0, "layers"},
        {"zero hidden width", 4, 0, 0, "hidden dim"},
        {"norm epsilon 0", 5, 0, 0, "epsilon"},
        {"RoPE base 1", 6, 1, 0, "RoPE base"},
        {"zero batch", 7, 0, 0, "batch"},
        {"a negative learning rate", 8, -1, 0, "learning rate"},
        {"lr_end above 1", 9, 2, 0, "fraction"},
        {"a negative weight decay", 10, -1, 0, "weight decay"},
        {"held-out fraction 1", 11, 1, 0, "held-out fraction"},
        {"a negative step count", 12, -1, 0, "steps"},
        {"a corpus too short for one window", 13, 8, 0, "too short"},
        {"an id outside the vocabulary", 14, 512, 0, "outside the vocabulary"},
        {"a negative clip", 15, -1, 0, "clip"},
        {"a negative warm-up", 16, -1, 0, "warm-up"},
        {"windows longer than 65536 tokens", 17, 65537, 0, "out of range"},
        {"a learning rate of 1e30 (the loss overflows)", 18, 1e30, 0, "training loss is"},
    };
    int32_t *bad = malloc(sizeof(int32_t) * (size_t)n_ids);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bl_model_train_config c = c0;
        struct bl_model_train_params p = p0;
        const int32_t *x = ids;
        int64_t n = n_ids;
        double v = cases[i].value;
        switch (cases[i].field) {
        case 0: c.dim = (int64_t)v; break;
        case 1: p.seq = (int64_t)v; break;
        case 2: c.n_vocab = (int64_t)v; break;
        case 3: c.n_layers = (int64_t)v; break;
        case 4: c.hidden_dim = (int64_t)v; break;
        case 5: c.norm_eps = (float)v; break;
        case 6: c.rope_theta = (float)v; break;
        case 7: p.batch = (int64_t)v; break;
        case 8: p.lr = (float)v; break;
        case 9: p.lr_end = (float)v; break;
        case 10: p.weight_decay = (float)v; break;
        case 11: p.valid_fraction = v; break;
        case 12: p.steps = (int64_t)v; break;
        case 13: n = (int64_t)v; break;
        case 14:
            memcpy(bad, ids, sizeof(int32_t) * (size_t)n_ids);
            bad[n_ids / 2] = (int32_t)v;
            x = bad;
            break;
        case 15: p.clip = (float)v; break;
        case 16: p.warmup = (int64_t)v; break;
        case 17: p.seq = (int64_t)v, c.n_ctx = (int64_t)v; break;
        case 18: p.lr = (float)v, p.steps = 5, p.warmup = 0; break;
        }
        memset(&err, 0, sizeof err);
        int rc = bl_model_train(cases[i].no_tok ? NULL : tok, x, n, &c, &p, path, NULL, &err);
        ok(rc == BL_EINVAL && err.code == BL_EINVAL && strstr(err.msg, cases[i].needle) && access(path, F_OK) != 0,
           "%s: BL_EINVAL, \"%s\"", cases[i].what, err.msg);
    }
    free(bad);
    /* without a tokenizer but with a vocabulary size: a file without a vocabulary */
    struct bl_model_train_config c = c0;
    c.n_vocab = 512;
    p0.steps = 2;
    int rc = bl_model_train(NULL, ids, n_ids, &c, &p0, path, NULL, &err);
    bl_model *model = NULL;
    struct bl_model_params mp = bl_model_default_params();
    int lrc = rc ? rc : bl_model_load(&model, path, &mp, &err);
    ok(!rc && !lrc && !bl_model_tokenizer(model) && bl_model_config(model)->n_vocab == 512,
       "no tokenizer and n_vocab 512: a model file without a vocabulary (%s)", rc || lrc ? err.msg : "ok");
    bl_model_free(model);
}

/* ---------------------------------------------------------------- timings */

static void timings(const char *dir, const bl_tokenizer *tok, const int32_t *ids, int64_t n_ids)
{
    char path[512];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    int64_t dims[2] = {64, 128};
    for (int i = 0; i < 2; i++) {
        struct bl_model_train_config c = bl_model_train_default_config();
        c.dim = dims[i];
        c.n_layers = 4;
        c.n_heads = dims[i] / 32;
        c.hidden_dim = 3 * dims[i];
        c.n_ctx = 128;
        struct bl_model_train_params p = bl_model_train_default_params();
        p.steps = i == 0 ? 8 : 4;
        p.batch = 8;
        p.seq = 128;
        p.eval_every = 0;
        p.valid_fraction = 0;
        p.n_threads = 2;
        struct bl_model_train_stats st;
        bl_err err;
        int rc = bl_model_train(tok, ids, n_ids, &c, &p, path, &st, &err);
        if (rc) {
            diag("timing run: %s", err.msg);
            continue;
        }
        diag("dim %" PRId64 ", 4 layers, %" PRId64 " heads, hidden %" PRId64 ", vocab 512, %" PRId64
             " parameters: %.0f tokens/s on 2 threads (batch 8 x 128)", c.dim, c.n_heads, c.hidden_dim, st.n_params,
             st.tokens_per_second);
    }
}

int main(void)
{
    rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 20240611);
    char *tokp = td_require("models/tok512.bin");
    bl_tokenizer *tok = NULL;
    bl_err err;
    if (bl_tokenizer_load_llama2c(&tok, tokp, 512, &err)) {
        ok(0, "tok512: %s", err.msg);
        return done_testing();
    }
    char *dir = tmp_dir();

    struct bl_model_train_config dc = bl_model_train_default_config();
    struct bl_model_train_params dp = bl_model_train_default_params();
    ok(dc.dim == 192 && dc.n_layers == 4 && dc.n_heads == 6 && dc.hidden_dim == 512 && dc.n_ctx == 256 &&
       dc.tied == 1 && dc.n_vocab == 0 && dc.rope_theta == 10000.0f && dc.norm_eps == 1e-5f &&
       bl_model_train_n_params(&dc, 2048) == 2164416 && dp.steps == 3000 && dp.batch == 16 && dp.seq == 256 &&
       dp.lr == 2e-3f && dp.lr_end == 0.1f && dp.weight_decay == 0.1f && dp.clip == 1.0f && dp.warmup == 100 &&
       dp.seed == 1 && dp.eval_every == 250 && dp.valid_fraction == 0.05 && dp.n_threads == 0 && !dp.name &&
       !dp.progress,
       "the defaults are the documented ones (2164416 parameters with 2048 tokens)");

    gradient_check(1);
    gradient_check(0);
    round_trip_random(dir, tok);

    int64_t n_ids = 0;
    int32_t *ids = tinystories(tok, &n_ids);
    if (ids && n_ids > 10000) {
        diag("TinyStories head: %" PRId64 " tokens", n_ids);
        training(dir, tok, ids, n_ids);
        errors(dir, tok, ids, n_ids);
        timings(dir, tok, ids, n_ids);
    } else {
        skip(1, "text/tinystories_train_head.txt not found");
    }
    free(ids);
    rm_rf(dir);
    free(dir);
    free(tokp);
    bl_tokenizer_free(tok);
    gsl_rng_free(rng);
    return done_testing();
}
