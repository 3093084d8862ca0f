/* lib/drafter_gen.c: greedy generation with a drafter (bitlens/drafter.h,
 * "generation"): speculative decoding that reproduces plain greedy, and
 * the unchecked "fast" mode.
 *
 * Slots: slot s is the s-th generated token, at position n_prompt + s of
 * the sequence.  The main model's logits at position n_prompt + s - 1
 * predict slot s; the drafter reads the hook row at that same position
 * and its head j drafts slot s + j.
 *
 * VERIFY, one step (g tokens out so far, cur = slot g - 1 not yet in the
 * KV cache, which holds P = n_prompt + g - 1 positions; drafts D_0..D_{K-1}
 * for slots g .. g+K-1):
 *   eval [cur, D_0 .. D_{m-1}] at P .. P+m, logits of every row;
 *   y_i = argmax of row i (the main model's token for slot g + i);
 *   a = the first i with D_i != y_i (m if none): slots g .. g+a-1 are
 *   D_0..D_{a-1}, slot g+a is y_a; rewind to P + a + 1; the next drafts
 *   read hook row a.
 * Exactness.  Plain greedy evaluates the prompt in one call and then each
 * token alone; every pass after the prompt is evaluated with BL_EVAL_EXACT
 * (the matrix-vector kernel's dot products, row by row; attention, norms
 * and activations are row by row either way), so its logits and KV
 * entries are one-token evaluations' bits: the decisions are plain
 * greedy's.
 *
 * FAST, one step: eval the tokens kept last step (the main model's token
 * and k - 1 drafts), logits of every row; the last row gives the main
 * model's next token and the hook row for the next drafts; the other rows
 * say which of the kept drafts a verify step would have accepted.
 *
 * Buffers are allocated once per call, sized by K, the vocabulary and
 * n_gen; the context's hook only copies rows. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/ctx.h>
#include <bitlens/tokenizer.h>

#include "drafter_eagle.h"
#include "drafter_internal.h"
#include "internal.h"

struct bl_spec_params bl_spec_default_params(void)
{
    struct bl_spec_params p = {0};
    p.mode = BL_SPEC_VERIFY;
    p.tokens_per_pass = 2;
    p.n_gen = 64;
    p.stop_at_eos = 1;
    return p;
}

/* The hook rows of positions lo .. lo+n-1 into rows [n x d]. */
struct capture {
    float *rows;
    int64_t lo, n, d;
};

static int capture_rows(const struct bl_hook_event *ev, void *user_data)
{
    struct capture *c = user_data;
    for (int64_t i = 0; i < ev->n_pos; i++) {
        int64_t r = ev->pos0 + i - c->lo;
        if (r >= 0 && r < c->n)
            memcpy(c->rows + r * c->d, ev->data + i * ev->width, (size_t)c->d * sizeof(float));
    }
    return 0;
}

struct gen {
    bl_ctx *ctx;
    const bl_drafter *d;
    const struct bl_spec_params *p;
    struct bl_spec_stats *st;
    bl_err *err;
    int K;
    int64_t V;            /* the model's vocabulary (logits per row) */
    int64_t Vt;           /* tokens that exist: the argmax runs over these */
    int64_t D;
    int64_t n_prompt;
    const int32_t *prompt;
    int32_t bos, eos;     /* stop tokens (-1: none) */

    float *logits;        /* [(K+1) x V] main logits of one eval */
    float *hook;          /* [(K+1) x D] its hook rows */
    float *dlogits;       /* [K x V] the drafter's logits */
    struct capture cap;
    int32_t draft[BL_DRAFTER_MAX_HEADS];   /* drafts for slots draft0 .. */
    int64_t draft0;

    int32_t *seq;         /* [n_gen] generated tokens, a final EOS included */
    int64_t n;            /* tokens in seq */
    int done;
    int32_t *greedy;      /* [n_gen] the main model's greedy token at each
                             slot given seq before it; -1 unknown */
    int32_t *pend;        /* [n_gen x K] head j's draft for slot s; -1 none */

    /* EAGLE: the verified history from the prompt's last position on: the
     * feature at each position and the token after it */
    float *hf;            /* [(n_gen + 1) x D] */
    int32_t *hy;          /* [n_gen + 1] */
    int64_t nh;
    struct bli_eagle_ws ew;
};

/* EAGLE: append position's feature (a hook row) and the token after it. */
static void hist_add(struct gen *g, const float *f, int32_t next)
{
    if (!g->hf || g->nh > g->p->n_gen)
        return;
    memcpy(g->hf + g->nh * g->D, f, (size_t)g->D * sizeof(float));
    g->hy[g->nh++] = next;
}

/* First maximum of z[0..n-1] (as bl_argmax) and its gap to the best other
 * value (INFINITY when n is 1). */
static int32_t top2(const float *z, int64_t n, float *gap)
{
    int64_t best = 0;
    for (int64_t v = 1; v < n; v++)
        if (z[v] > z[best])
            best = v;
    float second = -INFINITY;
    for (int64_t v = 0; v < n; v++)
        if (v != best && z[v] > second)
            second = z[v];
    *gap = n > 1 ? z[best] - second : INFINITY;
    return (int32_t)best;
}

/* Evaluate toks[0..n-1] at the context's position: logits and hook rows of
 * every row (all) or of the last row only (row 0). */
static int eval(struct gen *g, const int32_t *toks, int64_t n, int all)
{
    int64_t pos = bl_ctx_pos(g->ctx);
    g->cap.lo = all ? pos : pos + n - 1;
    g->cap.n = all ? n : 1;
    /* the prompt as plain greedy evaluates it (one call, default kernels);
     * every later pass with BL_EVAL_EXACT: the bits of one-token evals */
    unsigned fl = (all ? BL_EVAL_ALL_LOGITS : 0) | (bl_ctx_pos(g->ctx) > 0 ? BL_EVAL_EXACT : 0);
    int rc = bl_ctx_eval(g->ctx, toks, n, g->logits, fl);
    if (rc)
        return bli_err(g->err, rc, "%s", bl_ctx_errmsg(g->ctx));
    return BL_OK;
}

/* Draft slots s+1 .. s+K from hook row `row` (the position predicting s);
 * EAGLE drafts from the last BLI_EAGLE_WINDOW entries of the history,
 * which end at that position. */
static int draft_from(struct gen *g, int64_t row, int64_t s)
{
    if (g->d->eagle) {
        int64_t T = g->nh < BLI_EAGLE_WINDOW ? g->nh : BLI_EAGLE_WINDOW, w0 = g->nh - T;
        int rc = bli_eagle_draft(g->d->eagle, &g->ew, g->hf + w0 * g->D, g->hy + w0, T, w0, g->K, g->draft, g->err);
        if (rc)
            return rc;
        g->draft0 = s + 1;
        for (int j = 0; j < g->K; j++)
            if (s + 1 + j < g->p->n_gen)
                g->pend[(s + 1 + j) * g->K + j] = g->draft[j];
        return BL_OK;
    }
    int rc = bl_drafter_eval(g->d, g->hook + row * g->D, 1, g->dlogits, NULL, NULL, g->err);
    if (rc)
        return rc;
    g->draft0 = s + 1;
    for (int j = 0; j < g->K; j++) {
        float gap;
        g->draft[j] = top2(g->dlogits + (int64_t)j * g->V, g->Vt, &gap);
        if (s + 1 + j < g->p->n_gen)
            g->pend[(s + 1 + j) * g->K + j] = g->draft[j];
    }
    return BL_OK;
}

/* Append a token; sets done at the stop token or at n_gen. */
static void emit(struct gen *g, int32_t tok)
{
    BL_ASSERT(!g->done && g->n < g->p->n_gen);
    g->seq[g->n++] = tok;
    if (g->p->stop_at_eos && (tok == g->eos || tok == g->bos)) {
        g->st->stopped_eos = 1;
        g->done = 1;
    }
    if (g->n == g->p->n_gen)
        g->done = 1;
}

static int run_verify(struct gen *g)
{
    struct bl_spec_stats *st = g->st;
    int32_t batch[BL_DRAFTER_MAX_HEADS + 1];
    int rc;

    while (!g->done) {
        int64_t P = bl_ctx_pos(g->ctx), s = g->n;   /* slot s is predicted next */
        BL_ASSERT(P == g->n_prompt + s - 1 && g->draft0 == s);
        int64_t m = g->p->n_gen - s - 1 < g->K ? g->p->n_gen - s - 1 : g->K;
        batch[0] = g->seq[s - 1];
        memcpy(batch + 1, g->draft, (size_t)m * sizeof *batch);
        if ((rc = eval(g, batch, m + 1, 1)))
            return rc;
        st->main_passes++;
        int64_t a = 0;
        int32_t y = -1;
        for (;; a++) {
            float gap;
            y = top2(g->logits + a * g->V, g->Vt, &gap);
            if (a == m || g->draft[a] != y)
                break;
        }
        st->drafted += m;
        for (int64_t j = 0; j < m; j++)
            st->offered_at[j]++;
        for (int64_t j = 0; j < a; j++)
            st->accept_at[j]++;
        st->accepted += a;
        for (int64_t j = 0; j < a && !g->done; j++)
            emit(g, g->draft[j]);
        if (g->done)
            break;
        for (int64_t j = 0; j < a; j++)   /* rows 0 .. a-1 are verified, each followed by its draft */
            hist_add(g, g->hook + j * g->D, g->draft[j]);
        if ((rc = bl_ctx_rewind(g->ctx, P + a + 1)))
            return bli_err(g->err, rc, "%s", bl_ctx_errmsg(g->ctx));
        hist_add(g, g->hook + a * g->D, y);
        emit(g, y);
        if (!g->done && (rc = draft_from(g, a, s + a)))
            return rc;
    }
    /* verified output is greedy at every slot */
    memcpy(g->greedy, g->seq, (size_t)g->n * sizeof *g->seq);
    return BL_OK;
}

static int run_fast(struct gen *g)
{
    struct bl_spec_stats *st = g->st;
    int k = g->p->tokens_per_pass;
    int32_t batch[BL_DRAFTER_MAX_HEADS + 1];
    int rc;

    /* the first group: the main model's token (already out) and k-1 drafts */
    int64_t s0 = g->n - 1, L = 1;
    for (int j = 0; j < k - 1 && !g->done; j++, L++) {
        emit(g, g->draft[j]);
        st->offered_at[j]++;
        st->drafted++;
    }
    while (!g->done) {
        memcpy(batch, g->seq + s0, (size_t)L * sizeof *batch);
        if ((rc = eval(g, batch, L, 1)))
            return rc;
        st->main_passes++;
        int32_t y = -1;
        int chain = 1;
        for (int64_t i = 0; i < L; i++) {
            float gap;
            y = top2(g->logits + i * g->V, g->Vt, &gap);
            g->greedy[s0 + i + 1] = y;   /* s0 + L < n_gen: not done */
            if (i + 1 < L) {
                chain = chain && batch[i + 1] == y;
                if (chain) {
                    st->accept_at[i]++;
                    st->accepted++;
                }
            }
        }
        for (int64_t i = 0; i + 1 < L; i++)
            hist_add(g, g->hook + i * g->D, batch[i + 1]);
        hist_add(g, g->hook + (L - 1) * g->D, y);
        s0 += L;
        emit(g, y);
        if (g->done)
            break;
        if ((rc = draft_from(g, L - 1, s0)))
            return rc;
        L = 1;
        for (int j = 0; j < k - 1 && !g->done; j++, L++) {
            emit(g, g->draft[j]);
            st->offered_at[j]++;
            st->drafted++;
        }
    }
    return BL_OK;
}

static int find_hook(bl_ctx *ctx, const char *name)
{
    for (int64_t i = 0; i < bl_ctx_n_hooks(ctx); i++)
        if (strcmp(bl_ctx_hook_name(ctx, i), name) == 0)
            return (int)i;
    return -1;
}

int bl_drafter_generate(struct bl_ctx *ctx, const bl_drafter *d, const int32_t *prompt, int64_t n_prompt,
                        const struct bl_spec_params *params, int32_t *out, int64_t *n_out,
                        struct bl_spec_stats *stats, bl_err *err)
{
    BL_ASSERT(ctx && d && n_out);
    struct bl_spec_params p = params ? *params : bl_spec_default_params();
    struct bl_spec_stats st_local;
    struct bl_spec_stats *st = stats ? stats : &st_local;
    const struct bl_drafter_config *dc = &d->cfg;
    const bl_model *model = bl_ctx_model(ctx);
    const struct bl_model_config *mc = bl_model_config(model);
    const bl_tokenizer *tok = bl_model_tokenizer(model);
    int K = dc->n_heads;

    *n_out = 0;
    memset(st, 0, sizeof *st);
    st->n_heads = K;
    if (p.mode != BL_SPEC_VERIFY && p.mode != BL_SPEC_FAST)
        return bli_err(err, BL_EINVAL, "generation mode %d is not verify (1) or fast (2)", p.mode);
    if (p.mode == BL_SPEC_FAST && (p.tokens_per_pass < 1 || p.tokens_per_pass > K + 1))
        return bli_err(err, BL_EINVAL, "%d tokens per pass: 1 to %d (a drafter of %d heads, plus one)",
                       p.tokens_per_pass, K + 1, K);
    st->k = p.mode == BL_SPEC_FAST ? p.tokens_per_pass : K + 1;
    if (p.n_gen < 0)
        return bli_err(err, BL_EINVAL, "%" PRId64 " tokens to generate", p.n_gen);
    if (!prompt || n_prompt < 1)
        return bli_err(err, BL_EINVAL, "no prompt: generation starts from one token at least");
    if (!out && p.n_gen > 0)
        return bli_err(err, BL_EINVAL, "no output buffer for %" PRId64 " tokens", p.n_gen);
    if (dc->d != mc->dim || dc->n_vocab != mc->n_vocab)
        return bli_err(err, BL_EINVAL,
                       "drafter of width %" PRId64 " and vocabulary %" PRId64 " (for '%s') on a model of width %" PRId64
                       " and vocabulary %" PRId64 " ('%s')",
                       dc->d, dc->n_vocab, dc->model_name, mc->dim, mc->n_vocab,
                       bl_model_name(model) ? bl_model_name(model) : "");
    int hi = find_hook(ctx, dc->hook);
    if (hi < 0)
        return bli_err(err, BL_EINVAL, "drafter reads hook '%s', which the model has not", dc->hook);
    if (bl_ctx_hook_width(ctx, hi) != dc->d)
        return bli_err(err, BL_EINVAL, "hook '%s' has width %" PRId64 ", the drafter reads %" PRId64, dc->hook,
                       bl_ctx_hook_width(ctx, hi), dc->d);
    if (n_prompt + (p.n_gen > 0 ? p.n_gen - 1 : 0) > bl_ctx_n_ctx(ctx))
        return bli_err(err, BL_ERANGE,
                       "a prompt of %" PRId64 " tokens and %" PRId64 " generated need %" PRId64
                       " positions; the context holds %" PRId64,
                       n_prompt, p.n_gen, n_prompt + p.n_gen - 1, bl_ctx_n_ctx(ctx));
    if (p.n_gen == 0)
        return BL_OK;

    struct gen g = {0};
    int rc;
    g.ctx = ctx;
    g.d = d;
    g.p = &p;
    g.st = st;
    g.err = err;
    g.K = K;
    g.V = mc->n_vocab;
    g.Vt = tok && bl_tokenizer_n_vocab(tok) > 0 && bl_tokenizer_n_vocab(tok) < g.V ? bl_tokenizer_n_vocab(tok) : g.V;
    g.D = mc->dim;
    g.prompt = prompt;
    g.n_prompt = n_prompt;
    g.bos = tok ? bl_tokenizer_bos(tok) : -1;
    g.eos = tok ? bl_tokenizer_eos(tok) : -1;
    g.logits = bli_malloc_array((size_t)((K + 1) * g.V), sizeof(float));
    g.hook = bli_malloc_array((size_t)((K + 1) * g.D), sizeof(float));
    g.dlogits = bli_malloc_array((size_t)(K * g.V), sizeof(float));
    g.seq = bli_malloc_array((size_t)p.n_gen, sizeof(int32_t));
    g.greedy = bli_malloc_array((size_t)p.n_gen, sizeof(int32_t));
    g.pend = bli_malloc_array((size_t)(p.n_gen * K), sizeof(int32_t));
    if (d->eagle) {
        g.hf = bli_malloc_array((size_t)((p.n_gen + 1) * g.D), sizeof(float));
        g.hy = bli_malloc_array((size_t)(p.n_gen + 1), sizeof(int32_t));
        if (!g.hf || !g.hy || bli_eagle_ws_init(&g.ew, d->eagle, BLI_EAGLE_WINDOW + K, err)) {
            rc = bli_err(err, BL_ENOMEM, "out of memory for the drafter's window");
            goto fail;
        }
    }
    if (!g.logits || !g.hook || !g.dlogits || !g.seq || !g.greedy || !g.pend) {
        rc = bli_err(err, BL_ENOMEM, "out of memory for %" PRId64 " tokens of generation", p.n_gen);
        goto fail;
    }
    for (int64_t i = 0; i < p.n_gen; i++)
        g.greedy[i] = -1;
    for (int64_t i = 0; i < p.n_gen * K; i++)
        g.pend[i] = -1;
    g.cap = (struct capture){g.hook, 0, 0, g.D};

    bl_ctx_clear_hooks(ctx);
    if ((rc = bl_ctx_rewind(ctx, 0))) {
        rc = bli_err(err, rc, "%s", bl_ctx_errmsg(ctx));
        goto fail;
    }
    if ((rc = bl_ctx_add_hook_at(ctx, hi, capture_rows, &g.cap))) {
        rc = bli_err(err, rc, "out of memory for a hook");
        goto fail;
    }

    /* the prompt, as plain greedy evaluates it: one call, the last logits */
    if ((rc = eval(&g, prompt, n_prompt, 0)))
        goto fail;
    float gap;
    int32_t y = top2(g.logits, g.Vt, &gap);
    g.greedy[0] = y;
    hist_add(&g, g.hook, y);
    emit(&g, y);
    if (!g.done && (rc = draft_from(&g, 0, 0)))
        goto fail;
    if (!g.done && (rc = p.mode == BL_SPEC_VERIFY ? run_verify(&g) : run_fast(&g)))
        goto fail;

    /* each head against the main model's greedy token where known */
    for (int64_t s = 0; s < g.n; s++)
        for (int j = 0; j < K; j++) {
            int32_t t = g.pend[s * K + j];
            if (t < 0 || g.greedy[s] < 0)
                continue;
            st->compared_at[j]++;
            st->agree_at[j] += t == g.greedy[s];
        }
    *n_out = g.n - (st->stopped_eos ? 1 : 0);
    memcpy(out, g.seq, (size_t)*n_out * sizeof *out);
    st->tokens = *n_out;
    st->mean_accept_len = st->main_passes > 0 ? (double)st->tokens / (double)st->main_passes : (double)st->tokens;
    rc = BL_OK;
fail:
    bl_ctx_clear_hooks(ctx);
    free(g.logits);
    free(g.hook);
    free(g.dlogits);
    free(g.seq);
    free(g.greedy);
    free(g.pend);
    free(g.hf);
    free(g.hy);
    if (d->eagle)
        bli_eagle_ws_release(&g.ew);
    return rc;
}
