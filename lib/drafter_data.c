/* lib/drafter_data.c: drafter training sets (bitlens/drafter.h, "data").
 *
 * One context serves every prompt (rewound between them), sized for the
 * longest kept prompt plus the generation, as lib/record.c does.  A hook on
 * the chosen point copies each evaluated position's row into a buffer
 * [n_ctx x d], indexed by absolute position; once a prompt is done, its
 * rows are appended to the output from there.
 *
 * For a prompt x_0 .. x_{P-1}:
 *   BL_TARGETS_SELF    the prompt in one batch, then greedy tokens x_P ..
 *                      x_{E-1} (argmax over the tokenizer's tokens, one
 *                      token per eval through the KV cache), E - P <= n_gen,
 *                      ending early after BOS or EOS (kept as the last
 *                      token: it is what the model predicts there) or when
 *                      the next position would pass n_ctx.  The last token
 *                      is never evaluated.  Rows t = P-1 .. E-2.
 *   BL_TARGETS_CORPUS  the prompt in one batch; rows t = 0 .. P-2, E = P.
 * Row of position t: feat = hook[t], tok[j] = x_{t+1+j} if t+1+j < E, else
 * -1 (j = 0..K); seq = the prompt's index. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/ctx.h>
#include <bitlens/sampler.h>
#include <bitlens/tokenizer.h>
#include "drafter_internal.h"
#include "internal.h"

#define FIRST_ROWS 256

/* What the hook writes into. */
struct capture {
    float *buf;           /* [cap x d] rows by absolute position */
    int64_t cap, d;
};

static int on_hook(const struct bl_hook_event *ev, void *user)
{
    struct capture *c = user;
    BL_ASSERT(ev->width == c->d && ev->pos0 >= 0 && ev->pos0 + ev->n_pos <= c->cap);
    memcpy(c->buf + ev->pos0 * c->d, ev->data, (size_t)(ev->n_pos * c->d) * sizeof(float));
    return 0;
}

static void *realloc_array(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return realloc(p, n * size > 0 ? n * size : 1);
}

/* Room in out for `add` more rows (capacity *cap, doubling). */
static int room(struct bl_drafter_data *out, int64_t *cap, int64_t add, bl_err *err)
{
    if (out->n + add <= *cap)
        return BL_OK;
    int64_t c = *cap ? *cap : FIRST_ROWS;
    while (c < out->n + add)
        c *= 2;
    float *f = realloc_array(out->feat, (size_t)c, (size_t)out->d * sizeof(float));
    if (f)
        out->feat = f;
    int32_t *t = realloc_array(out->tok, (size_t)c, (size_t)(out->k + 1) * sizeof(int32_t));
    if (t)
        out->tok = t;
    int32_t *s = realloc_array(out->seq, (size_t)c, sizeof(int32_t));
    if (s)
        out->seq = s;
    if (!f || !t || !s)
        return bli_err(err, BL_ENOMEM, "out of memory for %" PRId64 " training rows", c);
    *cap = c;
    return BL_OK;
}

/* Append the rows t = t0 .. t1-1 of sequence x [end] (features in cap). */
static int add_rows(struct bl_drafter_data *out, int64_t *cap, const struct capture *cp, const int32_t *x,
                    int64_t end, int64_t t0, int64_t t1, int32_t seq, bl_err *err)
{
    int rc;
    if (t1 <= t0)
        return BL_OK;
    if ((rc = room(out, cap, t1 - t0, err)))
        return rc;
    int64_t d = out->d, w = out->k + 1;
    memcpy(out->feat + out->n * d, cp->buf + t0 * d, (size_t)((t1 - t0) * d) * sizeof(float));
    for (int64_t t = t0; t < t1; t++, out->n++) {
        int32_t *row = out->tok + out->n * w;
        for (int64_t j = 0; j < w; j++)
            row[j] = t + 1 + j < end ? x[t + 1 + j] : -1;
        out->seq[out->n] = seq;
    }
    return BL_OK;
}

/* Exact hook name -> index, width checked against d. */
static int find_hook(const bl_ctx *ctx, const char *name, int64_t d, int64_t *idx, bl_err *err)
{
    for (int64_t i = 0; i < bl_ctx_n_hooks(ctx); i++) {
        if (strcmp(bl_ctx_hook_name(ctx, i), name) != 0)
            continue;
        int64_t w = bl_ctx_hook_width(ctx, i);
        if (w < 0)
            return bli_err(err, BL_EINVAL, "hook '%s' has a width that varies with the position, not the model's dim %" PRId64,
                           name, d);
        if (w != d)
            return bli_err(err, BL_EINVAL, "hook '%s' has %" PRId64 " values per position, not the model's dim %" PRId64,
                           name, w, d);
        *idx = i;
        return BL_OK;
    }
    return bli_err(err, BL_ENOTFOUND, "no hook point '%s' in this model", name);
}

/* Tokenize every prompt (BOS first), keeping its first max_prompt ids:
 * prompt i is (*ids)[(*off)[i] .. (*off)[i+1]). */
static int tokenize(const bl_tokenizer *tok, const char *const *prompts, int64_t n_prompts, int64_t max_prompt,
                    int32_t **ids, int64_t **off, int64_t *longest, bl_err *err)
{
    int32_t *scratch = NULL, *a = NULL;
    int64_t *o = bli_calloc((size_t)n_prompts + 1, sizeof *o), scratch_cap = 0, a_cap = 0;
    int rc = BL_OK;

    *longest = 0;
    if (!o)
        return bli_err(err, BL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n_prompts; i++) {
        BL_ASSERT(prompts[i]);
        size_t len = strlen(prompts[i]);
        int64_t need = 3 * (int64_t)len + 5, n = 0;
        if (need > scratch_cap) {
            int32_t *s = realloc_array(scratch, (size_t)need, sizeof *s);
            if (!s) {
                rc = bli_err(err, BL_ENOMEM, "out of memory");
                goto fail;
            }
            scratch = s;
            scratch_cap = need;
        }
        if ((rc = bl_tokenizer_encode(tok, prompts[i], len, BL_TOK_BOS | BL_TOK_SPECIAL, scratch, scratch_cap, &n))) {
            rc = bli_err(err, rc, "prompt %" PRId64 ": cannot be tokenized: %s", i, bl_strerror(rc));
            goto fail;
        }
        if (n == 0) {
            rc = bli_err(err, BL_EINVAL, "prompt %" PRId64 " is empty and the vocabulary has no BOS", i);
            goto fail;
        }
        n = n < max_prompt ? n : max_prompt;
        if (o[i] + n > a_cap) {
            int64_t c = a_cap ? a_cap : 1024;
            while (c < o[i] + n)
                c *= 2;
            int32_t *t = realloc_array(a, (size_t)c, sizeof *t);
            if (!t) {
                rc = bli_err(err, BL_ENOMEM, "out of memory");
                goto fail;
            }
            a = t;
            a_cap = c;
        }
        memcpy(a + o[i], scratch, (size_t)n * sizeof *a);
        o[i + 1] = o[i] + n;
        *longest = n > *longest ? n : *longest;
    }
    free(scratch);
    *ids = a;
    *off = o;
    return BL_OK;
fail:
    free(scratch);
    free(a);
    free(o);
    return rc;
}

int bl_drafter_data_build(const bl_model *model, const char *const *prompts, int64_t n_prompts,
                          const struct bl_drafter_data_params *params, struct bl_drafter_data *out, bl_err *err)
{
    struct bl_drafter_data_params p = params ? *params : bl_drafter_data_default_params();
    const struct bl_model_config *mc = bl_model_config(model);
    const bl_tokenizer *tok = bl_model_tokenizer(model);
    const char *hook = p.hook ? p.hook : BL_DRAFTER_DEFAULT_HOOK;
    int self = p.targets == BL_TARGETS_SELF;
    int32_t *ids = NULL, *x = NULL;   /* kept prompt ids, flat; one sequence */
    int64_t *off = NULL, cap = 0;     /* prompt i: ids[off[i] .. off[i+1]) */
    int64_t longest = 0, n_ctx = 0, hi = -1;
    struct bl_ctx_params cpar = bl_ctx_default_params();
    float *logits = NULL;
    bl_ctx *ctx = NULL;
    struct capture cp = {NULL, 0, mc->dim};
    int rc = BL_OK;

    BL_ASSERT(out);
    memset(out, 0, sizeof *out);
    if (!tok)
        return bli_err(err, BL_EINVAL, "%s: has no vocabulary to tokenize the prompts with", bl_model_path(model));
    if (n_prompts < 1)
        return bli_err(err, BL_EINVAL, "no prompts to build a training set from");
    if (n_prompts > INT32_MAX)
        return bli_err(err, BL_ERANGE, "%" PRId64 " prompts: at most %d", n_prompts, INT32_MAX);
    BL_ASSERT(prompts);
    if (p.targets != BL_TARGETS_SELF && p.targets != BL_TARGETS_CORPUS)
        return bli_err(err, BL_EINVAL, "targets %d are not self (1) or corpus (2)", p.targets);
    if (p.k < 1 || p.k > BL_DRAFTER_MAX_HEADS)
        return bli_err(err, BL_EINVAL, "%d drafter heads: 1 to %d", p.k, BL_DRAFTER_MAX_HEADS);
    if (self && p.n_gen < 1)
        return bli_err(err, BL_EINVAL, "%" PRId64 " tokens to generate: at least 1 for self targets", p.n_gen);
    if (p.max_prompt < 1)
        return bli_err(err, BL_EINVAL, "%" PRId64 " prompt tokens kept: at least 1", p.max_prompt);

    /* the embedding may have rows past the vocabulary: greedy tokens are
     * drawn from the tokenizer's tokens, so every target is < n_vocab */
    int64_t V = mc->n_vocab, Vt = bl_tokenizer_n_vocab(tok) < V ? bl_tokenizer_n_vocab(tok) : V;
    int32_t bos = bl_tokenizer_bos(tok), eos = bl_tokenizer_eos(tok);

    if ((rc = tokenize(tok, prompts, n_prompts, p.max_prompt, &ids, &off, &longest, err)))
        goto fail;

    /* the context: the longest prompt and the generated tokens but the
     * last (never evaluated); learned positions stop at ctx_train */
    n_ctx = longest;
    if (self)
        n_ctx = p.n_gen - 1 > INT64_MAX - longest ? INT64_MAX : longest + p.n_gen - 1;
    if (mc->pos_embd && n_ctx > mc->ctx_train)
        n_ctx = mc->ctx_train;
    if (longest > n_ctx) {
        rc = bli_err(err, BL_ERANGE, "a prompt of %" PRId64 " tokens does not fit the context of %" PRId64 " positions",
                     longest, n_ctx);
        goto fail;
    }
    cpar.n_ctx = n_ctx;
    cpar.n_threads = p.n_threads;
    if ((rc = bl_ctx_alloc(&ctx, model, &cpar, err)))
        goto fail;
    if ((rc = find_hook(ctx, hook, mc->dim, &hi, err)))
        goto fail;
    cp.cap = n_ctx;
    cp.buf = bli_malloc_array((size_t)n_ctx, (size_t)mc->dim * sizeof(float));
    x = bli_malloc_array((size_t)n_ctx + 1, sizeof *x);
    logits = self ? bli_malloc_array((size_t)V, sizeof *logits) : NULL;
    if (!cp.buf || !x || (self && !logits)) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = bl_ctx_add_hook_at(ctx, hi, on_hook, &cp))) {
        rc = bli_err(err, rc, "hook '%s': %s", hook, bl_ctx_errmsg(ctx));
        goto fail;
    }

    out->d = mc->dim;
    out->k = p.k;
    for (int64_t i = 0; i < n_prompts; i++) {
        int64_t P = off[i + 1] - off[i], end = P;
        memcpy(x, ids + off[i], (size_t)P * sizeof *x);
        bl_ctx_rewind(ctx, 0);
        if (self || P > 1) {
            if ((rc = bl_ctx_eval(ctx, x, P, logits, 0))) {
                rc = bli_err(err, rc, "prompt %" PRId64 ": %s", i, bl_ctx_errmsg(ctx));
                goto fail;
            }
        }
        if (self) {
            x[end++] = (int32_t)bl_argmax(logits, Vt);
            while (end - P < p.n_gen) {
                int32_t last = x[end - 1];
                if (last == eos || last == bos || end - 1 >= n_ctx)
                    break;
                if ((rc = bl_ctx_eval(ctx, &last, 1, logits, 0))) {
                    rc = bli_err(err, rc, "prompt %" PRId64 ": %s", i, bl_ctx_errmsg(ctx));
                    goto fail;
                }
                x[end++] = (int32_t)bl_argmax(logits, Vt);
            }
            rc = add_rows(out, &cap, &cp, x, end, P - 1, end - 1, (int32_t)i, err);
        } else {
            rc = add_rows(out, &cap, &cp, x, end, 0, P - 1, (int32_t)i, err);
        }
        if (rc)
            goto fail;
        if (p.progress && p.progress(p.progress_user, "prompts", i + 1, n_prompts)) {
            rc = bli_err(err, BL_ESTOPPED, "stopped after %" PRId64 " of %" PRId64 " prompts", i + 1, n_prompts);
            goto fail;
        }
    }
    goto done;

fail:
    bl_drafter_data_release(out);
done:
    bl_ctx_free(ctx);   /* before the buffer its hook writes to */
    free(cp.buf);
    free(x);
    free(logits);
    free(ids);
    free(off);
    return rc;
}

void bl_drafter_data_release(struct bl_drafter_data *d)
{
    if (!d)
        return;
    free(d->feat);
    free(d->tok);
    free(d->seq);
    memset(d, 0, sizeof *d);
}
