/* tests/test-drafter-data.c: bl_drafter_data_build() on stories260K.
 *
 * Each training set is checked against a run of the same model written
 * here, independently of lib/drafter_data.c:
 *   - BL_TARGETS_SELF: the prompt (BOS first) in one batch, then plain
 *     greedy generation, one token per bl_ctx_eval() and the argmax of its
 *     logits over the tokenizer's tokens (first maximum), up to n_gen tokens
 *     or a BOS/EOS (kept as the last token); a hook attached by glob keeps
 *     every position's row.  The tok[0] column of a prompt's rows is that
 *     continuation, tok[j] the same shifted by j with -1 past its end, and
 *     the features are the hook rows at the positions before each target,
 *     from the prompt's last token on.  Tolerance 1e-6: the reference runs
 *     the same evaluations with the same thread count, so the rows should
 *     agree bit for bit; 1e-6 only leaves room for nothing else to matter;
 *   - BL_TARGETS_CORPUS: one batched evaluation of the prompt; P - 1 rows
 *     per prompt with the prompt's own next tokens, and max_prompt keeping
 *     the first tokens only;
 *   - a hook other than the default (blocks.2.hook_resid_post), and a
 *     story the model ends with BOS within n_gen tokens (its last row
 *     predicts the BOS; no row past it);
 *   - every error status the builder returns for bad arguments, a hook
 *     whose width is not dim, an unknown hook, and a progress callback
 *     that stops the run (the output left empty each time);
 *   - the same call twice gives the same bytes. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

#define NP 3
#define MAXT 256

static bl_model *model;
static const bl_tokenizer *tok;
static int64_t D, V, Vt;
static const char *const prompts[NP] = {
    "Once upon a time",
    "Tom had a big red ball. He",
    "The sun",
};

/* --------------------------------------------------------------- reference */

struct ref {
    int32_t x[MAXT];       /* prompt, then the continuation */
    int64_t P, end;        /* prompt tokens; tokens in x */
    float feat[MAXT * 64]; /* hook rows by position */
};

static int keep_rows(const struct bl_hook_event *ev, void *user)
{
    struct ref *r = user;
    if (ev->width != D || ev->pos0 + ev->n_pos > MAXT)
        abort();
    memcpy(r->feat + ev->pos0 * D, ev->data, (size_t)(ev->n_pos * D) * sizeof(float));
    return 0;
}

static int64_t encode(const char *text, int32_t *ids, int64_t cap)
{
    int64_t n = 0;
    if (bl_tokenizer_encode(tok, text, strlen(text), BL_TOK_BOS, ids, cap, &n))
        abort();
    return n;
}

/* the prompt, then n_gen greedy tokens (n_gen 0: the prompt only), with
 * the rows of `hook` */
static void reference(struct ref *r, const char *text, int64_t max_prompt, int64_t n_gen, const char *hook)
{
    struct bl_ctx_params cp = bl_ctx_default_params();
    bl_ctx *c;
    float *logits = malloc((size_t)V * sizeof *logits);
    memset(r, 0, sizeof *r);
    r->P = encode(text, r->x, MAXT);
    if (r->P > max_prompt)
        r->P = max_prompt;
    r->end = r->P;
    cp.n_ctx = MAXT;
    cp.n_threads = 2;
    if (!logits || bl_ctx_alloc(&c, model, &cp, NULL) || bl_ctx_add_hook(c, hook, keep_rows, r) != 1)
        abort();
    if (bl_ctx_eval(c, r->x, r->P, logits, 0))
        abort();
    int32_t bos = bl_tokenizer_bos(tok), eos = bl_tokenizer_eos(tok);
    for (int64_t g = 0; g < n_gen; g++) {
        int32_t next = 0;
        for (int32_t v = 1; v < Vt; v++)
            if (logits[v] > logits[next])
                next = v;
        r->x[r->end++] = next;
        if (g + 1 == n_gen || next == bos || next == eos)
            break;
        if (bl_ctx_eval(c, &next, 1, logits, 0))
            abort();
    }
    bl_ctx_free(c);
    free(logits);
}

/* rows of sequence s in data: first row, count (they must be consecutive) */
static int64_t rows_of(const struct bl_drafter_data *d, int32_t s, int64_t *first)
{
    int64_t n = 0;
    *first = -1;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->seq[i] != s)
            continue;
        if (n == 0)
            *first = i;
        else if (*first + n != i)
            return -1;
        n++;
    }
    return n;
}

/* Check rows [r0, r0+n) of d against r: row i is position t = t0 + i. */
static void check_rows(const char *what, const struct bl_drafter_data *d, int64_t r0, int64_t n, const struct ref *r,
                       int64_t t0)
{
    int tok_ok = 1, shift_ok = 1;
    double diff = 0;
    int K = d->k;
    for (int64_t i = 0; i < n; i++) {
        int64_t t = t0 + i;
        const int32_t *row = d->tok + (r0 + i) * (K + 1);
        if (row[0] != r->x[t + 1])
            tok_ok = 0;
        for (int j = 1; j <= K; j++)
            if (row[j] != (t + 1 + j < r->end ? r->x[t + 1 + j] : -1))
                shift_ok = 0;
        double dd = max_abs_diff(d->feat + (r0 + i) * D, r->feat + t * D, (size_t)D);
        diff = dd > diff ? dd : diff;
    }
    ok(tok_ok, "%s: tok[0] is the reference's next token at each of %lld rows", what, (long long)n);
    ok(shift_ok, "%s: tok[1..%d] are tok[0] shifted, -1 past the end", what, K);
    ok(diff <= 1e-6, "%s: features are the hook rows at t (max |diff| %.3g <= 1e-6)", what, diff);
}

/* ------------------------------------------------------------------- tests */

static int build(const char *const *pr, int64_t n, const struct bl_drafter_data_params *p,
                 struct bl_drafter_data *d, bl_err *err)
{
    return bl_drafter_data_build(model, pr, n, p, d, err);
}

static void self_targets(void)
{
    struct bl_drafter_data_params p = bl_drafter_data_default_params();
    struct bl_drafter_data d;
    bl_err err;
    p.targets = BL_TARGETS_SELF;
    p.n_gen = 20;
    p.k = 4;
    p.n_threads = 2;
    int rc = build(prompts, NP, &p, &d, &err);
    ok(rc == 0, "self: builds (%s)", rc ? err.msg : "ok");
    if (rc) {
        skip(3 * NP + 3, "no training set");
        return;
    }
    ok(d.d == D && d.k == 4, "self: d %lld, k %d", (long long)d.d, d.k);
    int64_t total = 0;
    int range_ok = 1;
    for (int64_t i = 0; i < d.n * 5; i++)
        if (d.tok[i] < -1 || d.tok[i] >= V || (i % 5 == 0 && d.tok[i] < 0))
            range_ok = 0;
    ok(range_ok, "self: targets are -1 or token ids < n_vocab, tok[0] never -1");
    for (int s = 0; s < NP; s++) {
        static struct ref r;
        int64_t first;
        reference(&r, prompts[s], p.max_prompt, p.n_gen, BL_DRAFTER_DEFAULT_HOOK);
        int64_t n = rows_of(&d, s, &first), gen = r.end - r.P;
        total += n;
        char what[64];
        snprintf(what, sizeof what, "self prompt %d", s);
        if (!ok(n == gen, "%s: %lld rows, one per greedy token (%lld)", what, (long long)n, (long long)gen)) {
            skip(3, "row count differs");
            continue;
        }
        check_rows(what, &d, first, n, &r, r.P - 1);
    }
    ok(total == d.n, "self: every row belongs to a prompt (%lld)", (long long)d.n);

    /* another hook, and K at its largest */
    struct bl_drafter_data d2;
    p.hook = "blocks.2.hook_resid_post";
    p.k = BL_DRAFTER_MAX_HEADS;
    p.n_gen = 12;
    rc = build(prompts + 1, 1, &p, &d2, &err);
    ok(rc == 0 && d2.k == BL_DRAFTER_MAX_HEADS, "self, blocks.2.hook_resid_post, K = %d: builds (%s)",
       BL_DRAFTER_MAX_HEADS, rc ? err.msg : "ok");
    if (!rc) {
        static struct ref r;
        reference(&r, prompts[1], p.max_prompt, p.n_gen, p.hook);
        int ok_seq = 1;
        for (int64_t i = 0; i < d2.n; i++)
            ok_seq &= d2.seq[i] == 0;
        ok(d2.n == r.end - r.P && ok_seq, "self, hook: %lld rows of sequence 0", (long long)d2.n);
        if (d2.n == r.end - r.P)
            check_rows("self, hook blocks.2.hook_resid_post", &d2, 0, d2.n, &r, r.P - 1);
        else
            skip(3, "row count differs");
    } else {
        skip(4, "no training set");
    }
    bl_drafter_data_release(&d2);

    /* a story that ends: the continuation stops after the BOS (or EOS)
     * the model predicts, which is the last row's tok[0] */
    const char *story = "They played all day and had fun.";
    p.hook = NULL;
    p.k = 4;
    p.n_gen = 200;
    rc = build(&story, 1, &p, &d2, &err);
    if (!rc) {
        static struct ref r;
        reference(&r, story, p.max_prompt, p.n_gen, BL_DRAFTER_DEFAULT_HOOK);
        int32_t last = d2.n ? d2.tok[(d2.n - 1) * 5] : -1;
        ok(d2.n == r.end - r.P && d2.n < p.n_gen &&
           (last == bl_tokenizer_bos(tok) || last == bl_tokenizer_eos(tok)),
           "self, a story that ends: %lld rows < n_gen %lld, the last predicting BOS/EOS (%d)", (long long)d2.n,
           (long long)p.n_gen, last);
        if (d2.n == r.end - r.P)
            check_rows("self, a story that ends", &d2, 0, d2.n, &r, r.P - 1);
        else
            skip(3, "row count differs");
    } else {
        ok(0, "self, a story that ends: builds (%s)", err.msg);
        skip(3, "no training set");
    }
    bl_drafter_data_release(&d2);
    bl_drafter_data_release(&d);
    ok(d.n == 0 && !d.feat && !d.tok && !d.seq, "release empties the set");
}

static void corpus_targets(void)
{
    struct bl_drafter_data_params p = bl_drafter_data_default_params();
    struct bl_drafter_data d;
    bl_err err;
    p.targets = BL_TARGETS_CORPUS;
    p.k = 3;
    p.n_threads = 2;
    int rc = build(prompts, NP, &p, &d, &err);
    ok(rc == 0, "corpus: builds (%s)", rc ? err.msg : "ok");
    if (rc) {
        skip(4 * NP, "no training set");
        return;
    }
    for (int s = 0; s < NP; s++) {
        static struct ref r;
        int64_t first;
        reference(&r, prompts[s], p.max_prompt, 0, BL_DRAFTER_DEFAULT_HOOK);
        int64_t n = rows_of(&d, s, &first);
        char what[64];
        snprintf(what, sizeof what, "corpus prompt %d", s);
        if (!ok(n == r.P - 1, "%s: %lld rows for %lld prompt tokens", what, (long long)n, (long long)r.P)) {
            skip(3, "row count differs");
            continue;
        }
        check_rows(what, &d, first, n, &r, 0);
    }
    bl_drafter_data_release(&d);

    /* max_prompt keeps the first tokens; a one-token prompt has no rows */
    const char *two[2] = {prompts[1], ""};
    p.max_prompt = 6;
    rc = build(two, 2, &p, &d, &err);
    int32_t ids[MAXT];
    encode(prompts[1], ids, MAXT);
    int good = rc == 0 && d.n == 5;
    for (int64_t i = 0; good && i < d.n; i++)
        for (int j = 0; j <= 3; j++)
            good &= d.seq[i] == 0 && d.tok[i * 4 + j] == (i + 1 + j < 6 ? ids[i + 1 + j] : -1);
    ok(good, "corpus, max_prompt 6: 5 rows, targets from the first 6 tokens, none for \"\" (%s)",
       rc ? err.msg : "ok");
    bl_drafter_data_release(&d);
}

static int calls;
static int64_t last_done = -1, last_total = -1;
static int stage_ok = 1;

static int progress(void *user, const char *stage, int64_t done, int64_t total)
{
    int stop_at = *(int *)user;
    calls++;
    stage_ok &= strcmp(stage, "prompts") == 0 && done == calls;
    last_done = done;
    last_total = total;
    return stop_at && done == stop_at;
}

static void expect(const char *what, int rc, int want, const bl_err *err, const struct bl_drafter_data *d,
                   const char *needle)
{
    int empty = d->n == 0 && !d->feat && !d->tok && !d->seq;
    ok(rc == want && empty && (!needle || strstr(err->msg, needle)), "%s: %s (%s)", what, bl_strerror(want),
       rc ? err->msg : "returned 0");
}

static void errors(void)
{
    struct bl_drafter_data_params p = bl_drafter_data_default_params();
    struct bl_drafter_data d;
    bl_err err;
    p.n_gen = 4;

    p.hook = "blocks.9.hook_resid_post";
    expect("unknown hook", build(prompts, NP, &p, &d, &err), BL_ENOTFOUND, &err, &d, "'blocks.9.hook_resid_post'");
    p.hook = "blocks.0.mlp.hook_post";
    expect("hook of width hidden_dim", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, "'blocks.0.mlp.hook_post'");
    p.hook = "blocks.0.attn.hook_pattern";
    expect("hook of varying width", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, "'blocks.0.attn.hook_pattern'");
    p.hook = NULL;
    int rc = build(prompts, 1, &p, &d, &err);
    ok(rc == 0 && d.n == 4, "hook NULL: the default (%s)", rc ? err.msg : "ok");
    bl_drafter_data_release(&d);

    p.k = 0;
    expect("K 0", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, NULL);
    p.k = BL_DRAFTER_MAX_HEADS + 1;
    expect("K past BL_DRAFTER_MAX_HEADS", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, NULL);
    p.k = 4;
    expect("no prompts", build(prompts, 0, &p, &d, &err), BL_EINVAL, &err, &d, NULL);
    p.targets = 3;
    expect("unknown targets", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, NULL);
    p.targets = BL_TARGETS_SELF;
    p.n_gen = 0;
    expect("self with n_gen 0", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, NULL);
    p.n_gen = 4;
    p.max_prompt = 0;
    expect("max_prompt 0", build(prompts, NP, &p, &d, &err), BL_EINVAL, &err, &d, NULL);
    p.max_prompt = 32;

    int stop_at = 0;
    p.progress = progress;
    p.progress_user = &stop_at;
    rc = build(prompts, NP, &p, &d, &err);
    ok(rc == 0 && calls == NP && stage_ok && last_done == NP && last_total == NP,
       "progress: once per prompt, stage \"prompts\", done 1..%d of %d", NP, NP);
    bl_drafter_data_release(&d);
    stop_at = 2;
    calls = 0;
    expect("progress returning nonzero", build(prompts, NP, &p, &d, &err), BL_ESTOPPED, &err, &d, NULL);
    ok(calls == 2, "progress: no call after the one that stopped (%d calls)", calls);
}

static void deterministic(void)
{
    struct bl_drafter_data_params p = bl_drafter_data_default_params();
    struct bl_drafter_data a, b;
    p.n_gen = 24;
    p.k = 5;
    p.n_threads = 2;
    int ra = build(prompts, NP, &p, &a, NULL), rb = build(prompts, NP, &p, &b, NULL);
    int same = ra == 0 && rb == 0 && a.n == b.n && a.n > 0 && a.d == b.d && a.k == b.k &&
               memcmp(a.feat, b.feat, (size_t)(a.n * a.d) * sizeof(float)) == 0 &&
               memcmp(a.tok, b.tok, (size_t)(a.n * (a.k + 1)) * sizeof(int32_t)) == 0 &&
               memcmp(a.seq, b.seq, (size_t)a.n * sizeof(int32_t)) == 0;
    ok(same, "the same call twice gives the same bytes (%lld rows)", (long long)a.n);
    bl_drafter_data_release(&a);
    bl_drafter_data_release(&b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *mp = td_require("models/stories260K.bin"), *tp = td_require("models/tok512.bin");
    struct bl_model_params mpar = bl_model_default_params();
    bl_err err;
    mpar.tokenizer_path = tp;
    if (bl_model_load(&model, mp, &mpar, &err)) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    tok = bl_model_tokenizer(model);
    D = bl_model_config(model)->dim;
    V = bl_model_config(model)->n_vocab;
    Vt = bl_tokenizer_n_vocab(tok);
    if (D != 64) {
        printf("Bail out! stories260K has dim %lld, not 64\n", (long long)D);
        return 1;
    }
    self_targets();
    corpus_targets();
    errors();
    deterministic();
    bl_model_free(model);
    free(mp);
    free(tp);
    return done_testing();
}
