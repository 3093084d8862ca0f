/* tests/test-drafter-gen.c: bl_drafter_generate() on stories260K against
 * plain greedy decoding (one prompt eval, then one single-token eval per
 * token through the KV cache, as `bitlens generate -t 0` runs).
 *
 * Prompts: the first 20 blank-line paragraphs of the TinyStories text, BOS
 * and their first 15 tokens (16 ids), 64 tokens generated.  Drafters:
 *   - untrained (bl_drafter_new, K = 4, width 0): every head predicts what
 *     the main head predicts from the same feature, a "repeat" drafter;
 *   - random (K = 5, width 32, 2 blocks, every parameter drawn);
 *   - trained here on the greedy continuations of the same prompts, so
 *     that whole drafts are accepted and the bonus token is taken.
 * Checked: VERIFY's output is plain greedy's, token for token, for each
 * drafter and prompt; the statistics add up (tokens = 1 + accepted + main
 * passes when no EOS cut the run); FAST with one token per pass is plain
 * greedy; FAST with k = 2 and k = K + 1 gives n_gen tokens in n_gen / k
 * passes (rounded).  Exactness: batched evals (5 positions) of the greedy
 * sequence with BL_EVAL_EXACT give the single-token logits bit for bit,
 * which is what makes VERIFY plain greedy's.
 * Errors: mode, tokens per pass, NULL and empty prompt, n_gen, a drafter of
 * another width (llama_gqa_random, dim 96), a hook the model lacks or of
 * another width, a context too short (BL_ERANGE), a token outside the
 * vocabulary. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

#include "drafter_internal.h"
#include "tap.h"
#include "testutil.h"

#define NP 20       /* prompts */
#define PLEN 16     /* ids per prompt, BOS included */
#define NGEN 64     /* tokens generated */
#define NCTX (PLEN + NGEN - 1)

static bl_model *model;
static const bl_tokenizer *tok;
static bl_ctx *ctx;
static int64_t D, V, Vt;

static char *paras[NP];              /* the paragraphs */
static int32_t prompts[NP][PLEN];
static int64_t plen[NP];
static int32_t gold[NP][NGEN];       /* plain greedy, stopping at EOS/BOS */
static int64_t ngold[NP];
static int gold_eos[NP];             /* the run ended at EOS/BOS */
static float *gold_logits;           /* [NP x NGEN x V]: logits predicting slot s */
static float *gold_hook;             /* [NP x NGEN x D]: ln_final row predicting slot s */
static double gold_min_gap = INFINITY;
static int gold_near_ties;           /* decisions with a gap <= the default margin */

static uint64_t rng = 0x2545f4914f6cdd1du;
static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545f4914f6cdd1du) >> 11) / 4503599627370496.0 - 1.0);
}

/* ------------------------------------------------------------ plain greedy */

struct grab {
    float *rows;    /* one row per call: the last position's */
    int64_t d;
};

static int grab_last(const struct bl_hook_event *ev, void *user)
{
    struct grab *g = user;
    memcpy(g->rows, ev->data + (ev->n_pos - 1) * ev->width, (size_t)g->d * sizeof(float));
    return 0;
}

/* Plain greedy from prompt: up to n_gen tokens, stopping (token not kept)
 * at EOS/BOS when stop; logits and hook rows of each slot if not NULL.
 * Returns the count, -1 on error. */
static int64_t greedy_in(bl_ctx *c, const int32_t *prompt, int64_t n, int64_t n_gen, int stop, int32_t *out,
                         float *logits_out, float *hook_out, int *eos_hit)
{
    float *logits = malloc((size_t)V * sizeof *logits);
    float row[1024];
    struct grab g = {row, D};
    int64_t k = 0;
    *eos_hit = 0;
    if (!logits || D > 1024)
        goto fail;
    bl_ctx_clear_hooks(c);
    if (bl_ctx_rewind(c, 0) || bl_ctx_add_hook(c, "ln_final.hook_normalized", grab_last, &g) != 1 ||
        bl_ctx_eval(c, prompt, n, logits, 0))
        goto fail;
    while (k < n_gen) {
        if (logits_out)
            memcpy(logits_out + k * V, logits, (size_t)V * sizeof *logits);
        if (hook_out)
            memcpy(hook_out + k * D, row, (size_t)D * sizeof *row);
        int32_t t = (int32_t)bl_argmax(logits, Vt);
        if (logits_out) {
            float gap = INFINITY;
            for (int64_t v = 0; v < Vt; v++)
                if (v != t && logits[t] - logits[v] < gap)
                    gap = logits[t] - logits[v];
            gold_min_gap = gap < gold_min_gap ? gap : gold_min_gap;
            gold_near_ties += gap <= 1e-3f;
        }
        if (stop && (t == bl_tokenizer_eos(tok) || t == bl_tokenizer_bos(tok))) {
            *eos_hit = 1;
            break;
        }
        out[k++] = t;
        if (k == n_gen)
            break;
        if (bl_ctx_eval(c, &t, 1, logits, 0))
            goto fail;
    }
    bl_ctx_clear_hooks(c);
    free(logits);
    return k;
fail:
    bl_ctx_clear_hooks(c);
    free(logits);
    return -1;
}

static int64_t greedy(const int32_t *prompt, int64_t n, int64_t n_gen, int stop, int32_t *out, float *logits_out,
                      float *hook_out, int *eos_hit)
{
    return greedy_in(ctx, prompt, n, n_gen, stop, out, logits_out, hook_out, eos_hit);
}

/* ------------------------------------------------------------ prompts */

static int load_prompts(const char *path)
{
    size_t n;
    char *text = read_file(path, &n);
    if (!text)
        return -1;
    int32_t *ids = malloc((3 * n + 5) * sizeof *ids);
    size_t at = 0;
    int got = 0;
    while (got < NP && at < n) {
        while (at < n && text[at] == '\n')
            at++;
        char *end = strstr(text + at, "\n\n");
        size_t len = end ? (size_t)(end - (text + at)) : n - at;
        if (len == 0)
            break;
        int64_t m;
        if (bl_tokenizer_encode(tok, text + at, len, BL_TOK_BOS, ids, (int64_t)(3 * len + 5), &m) == 0 && m >= 4) {
            plen[got] = m < PLEN ? m : PLEN;
            memcpy(prompts[got], ids, (size_t)plen[got] * sizeof *ids);
            paras[got] = malloc(len + 1);
            memcpy(paras[got], text + at, len);
            paras[got][len] = '\0';
            got++;
        }
        at += len;
    }
    free(ids);
    free(text);
    return got == NP ? 0 : -1;
}

/* ------------------------------------------------------------ drafters */

static bl_drafter *new_drafter(int K, int blocks, int64_t width)
{
    struct bl_drafter_config c = {0};
    bl_err err;
    bl_drafter *d;
    c.kind = BL_DRAFTER_MEDUSA;
    c.n_heads = K;
    c.n_blocks = blocks;
    c.width = width;
    if (bl_drafter_new(&d, model, &c, 7, &err)) {
        diag("bl_drafter_new: %s", err.msg);
        return NULL;
    }
    return d;
}

/* Train d on the greedy continuations: row (prompt, slot s) is the hook
 * predicting slot s, targets slots s .. s+K. */
static int train(bl_drafter *d)
{
    int K = bl_drafter_config(d)->n_heads;
    struct bl_drafter_data data = {0};
    data.d = D;
    data.k = K;
    data.feat = malloc((size_t)(NP * NGEN * D) * sizeof(float));
    data.tok = malloc((size_t)(NP * NGEN * (K + 1)) * sizeof(int32_t));
    data.seq = malloc((size_t)(NP * NGEN) * sizeof(int32_t));
    for (int i = 0; i < NP; i++)
        for (int64_t s = 0; s < ngold[i]; s++, data.n++) {
            memcpy(data.feat + data.n * D, gold_hook + ((int64_t)i * NGEN + s) * D, (size_t)D * sizeof(float));
            for (int j = 0; j <= K; j++)
                data.tok[data.n * (K + 1) + j] = s + j < ngold[i] ? gold[i][s + j] : -1;
            data.seq[data.n] = i;
        }
    struct bl_drafter_train_params tp = bl_drafter_train_default_params();
    struct bl_drafter_train_stats ts;
    bl_err err;
    tp.steps = 600;
    tp.lr = 3e-3f;
    tp.eval_every = 0;
    tp.n_threads = 1;
    int rc = bl_drafter_train(d, &data, NULL, &tp, &ts, &err);
    if (rc)
        diag("bl_drafter_train: %s", err.msg);
    else
        diag("trained drafter: %lld rows, training loss %.3f nats", (long long)ts.n_train, ts.train_loss);
    bl_drafter_data_release(&data);
    return rc;
}

/* ------------------------------------------------------------ checks */

/* The statistics add up; why is set to the first failure. */
static int stats_ok(const struct bl_spec_stats *st, int64_t n_out, const struct bl_spec_params *p, int K,
                    const char **why)
{
    int64_t so = 0, sa = 0;
    *why = "";
    for (int j = 0; j < BL_DRAFTER_MAX_HEADS; j++) {
        so += st->offered_at[j];
        sa += st->accept_at[j];
        if (st->accept_at[j] > st->offered_at[j] || st->agree_at[j] > st->compared_at[j] ||
            (j >= K && (st->offered_at[j] || st->compared_at[j]))) {
            *why = "a head's counts";
            return 0;
        }
        if (j > 0 && st->accept_at[j] > st->accept_at[j - 1]) {
            *why = "acceptance not a prefix";
            return 0;
        }
    }
    if (st->tokens != n_out) {
        *why = "tokens != n_out";
        return 0;
    }
    if (!st->stopped_eos && st->tokens != p->n_gen) {
        *why = "fewer tokens than n_gen without EOS";
        return 0;
    }
    if (so != st->drafted || sa != st->accepted || st->accepted > st->drafted) {
        *why = "drafted / accepted";
        return 0;
    }
    if (st->n_heads != K || st->k != (p->mode == BL_SPEC_VERIFY ? K + 1 : p->tokens_per_pass)) {
        *why = "k";
        return 0;
    }
    /* each verifying pass yields one token at least */
    if (!st->stopped_eos && (st->tokens < st->main_passes || st->mean_accept_len < 1.0)) {
        *why = "fewer than one token per pass";
        return 0;
    }
    if (st->main_passes > 0 && fabs(st->mean_accept_len - (double)st->tokens / (double)st->main_passes) > 1e-12) {
        *why = "tokens per pass";
        return 0;
    }
    if (p->mode == BL_SPEC_VERIFY && !st->stopped_eos &&
        st->tokens != 1 + st->accepted + st->main_passes) {
        *why = "tokens != 1 + accepted + batched passes";
        return 0;
    }
    return 1;
}

struct run_sum {
    int same, stats, failed;
    int64_t tokens, passes, drafted, accepted;
    int64_t agree[BL_DRAFTER_MAX_HEADS], compared[BL_DRAFTER_MAX_HEADS];
    const char *why;
    int first_bad;
};

/* bl_drafter_generate on every prompt, compared with gold (or, for
 * stop == 0, with plain greedy that does not stop). */
static void run_all(const bl_drafter *d, const struct bl_spec_params *p, struct run_sum *r)
{
    int K = bl_drafter_config(d)->n_heads;
    memset(r, 0, sizeof *r);
    r->first_bad = -1;
    for (int i = 0; i < NP; i++) {
        int32_t out[NGEN], ref[NGEN];
        int64_t n_out = -1, n_ref;
        struct bl_spec_stats st;
        bl_err err;
        int eos;
        if (p->stop_at_eos) {
            n_ref = ngold[i];
            memcpy(ref, gold[i], sizeof ref);
        } else {
            n_ref = greedy(prompts[i], plen[i], p->n_gen, 0, ref, NULL, NULL, &eos);
        }
        if (bl_drafter_generate(ctx, d, prompts[i], plen[i], p, out, &n_out, &st, &err)) {
            diag("prompt %d: %s", i, err.msg);
            r->failed++;
            continue;
        }
        int same = n_out == (p->n_gen < n_ref ? p->n_gen : n_ref) && memcmp(out, ref, (size_t)n_out * sizeof *out) == 0;
        r->same += same;
        if (!same && r->first_bad < 0)
            r->first_bad = i;
        const char *why;
        if (stats_ok(&st, n_out, p, K, &why))
            r->stats++;
        else if (!r->why)
            r->why = why;
        r->tokens += st.tokens;
        r->passes += st.main_passes;
        r->drafted += st.drafted;
        r->accepted += st.accepted;
        for (int j = 0; j < K; j++) {
            r->agree[j] += st.agree_at[j];
            r->compared[j] += st.compared_at[j];
        }
    }
}

static void report(const char *what, const struct run_sum *r, int K)
{
    char heads[256] = "";
    size_t o = 0;
    for (int j = 0; j < K && o < sizeof heads; j++)
        o += (size_t)snprintf(heads + o, sizeof heads - o, " %.2f",
                              r->compared[j] ? (double)r->agree[j] / (double)r->compared[j] : 0.0);
    diag("%s: %lld tokens in %lld passes (%.3f tokens/pass), %lld/%lld drafts accepted; head agreement%s",
         what, (long long)r->tokens, (long long)r->passes, r->passes ? (double)r->tokens / (double)r->passes : 0.0,
         (long long)r->accepted, (long long)r->drafted, heads);
}

/* VERIFY is greedy, for drafter d. */
static void verify_is_greedy(const char *name, const bl_drafter *d, double *tpp)
{
    int K = bl_drafter_config(d)->n_heads;
    struct bl_spec_params p = bl_spec_default_params();
    struct run_sum r;
    p.n_gen = NGEN;
    run_all(d, &p, &r);
    if (!ok(r.failed == 0 && r.same == NP, "%s drafter, VERIFY: output is plain greedy's on %d/%d prompts", name,
            r.same, NP) && r.first_bad >= 0)
        diag("first difference: prompt %d", r.first_bad);
    ok(r.stats == NP, "%s drafter, VERIFY: statistics add up on %d/%d prompts%s%s", name, r.stats, NP,
       r.why ? ": " : "", r.why ? r.why : "");
    report(name, &r, K);
    if (tpp)
        *tpp = r.passes ? (double)r.tokens / (double)r.passes : 0;
}

/* ------------------------------------------------------------ main */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *mp = td_require("models/stories260K.bin"), *tp = td_require("models/tok512.bin"),
         *tx = td_require("text/tinystories_train_head.txt");
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
    struct bl_ctx_params cp = bl_ctx_default_params();
    cp.n_ctx = NCTX;
    if (bl_ctx_alloc(&ctx, model, &cp, &err)) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    if (load_prompts(tx)) {
        printf("Bail out! cannot read %d prompts from %s\n", NP, tx);
        return 1;
    }
    gold_logits = malloc((size_t)(NP * NGEN * V) * sizeof(float));
    gold_hook = malloc((size_t)(NP * NGEN * D) * sizeof(float));
    int n_eos = 0, gold_fail = 0;
    for (int i = 0; i < NP; i++) {
        ngold[i] = greedy(prompts[i], plen[i], NGEN, 1, gold[i], gold_logits + (int64_t)i * NGEN * V,
                          gold_hook + (int64_t)i * NGEN * D, &gold_eos[i]);
        gold_fail += ngold[i] < 0;
        n_eos += gold_eos[i];
    }
    ok(!gold_fail, "plain greedy on %d prompts (%d end at EOS); smallest top-2 logit gap on the way %.3g, "
       "%d decisions with a gap <= 0.001", NP, n_eos, gold_min_gap, gold_near_ties);

    /* ---- batched vs single-token logits along the greedy sequences */
    {
        double drift = 0;
        int flips = 0, fail = 0;
        float *lg = malloc((size_t)(5 * V) * sizeof *lg);
        bl_ctx_clear_hooks(ctx);
        for (int i = 0; i < NP && !fail; i++) {
            fail |= bl_ctx_rewind(ctx, 0) || bl_ctx_eval(ctx, prompts[i], plen[i], lg, 0);
            /* slot s's token at position plen + s predicts slot s + 1 */
            for (int64_t s = 0; s + 1 < ngold[i] && !fail; s += 5) {
                int64_t m = ngold[i] - 1 - s < 5 ? ngold[i] - 1 - s : 5;
                fail |= bl_ctx_eval(ctx, gold[i] + s, m, lg, BL_EVAL_ALL_LOGITS | BL_EVAL_EXACT);
                for (int64_t r = 0; r < m && !fail; r++) {
                    const float *ref = gold_logits + ((int64_t)i * NGEN + s + r + 1) * V;
                    double dd = max_abs_diff(lg + r * V, ref, (size_t)V);
                    if (dd > drift)
                        drift = dd;
                    flips += bl_argmax(lg + r * V, Vt) != bl_argmax(ref, Vt);
                }
            }
        }
        free(lg);
        ok(!fail && drift == 0 && flips == 0,
           "batched evals (5 positions, BL_EVAL_EXACT) of the greedy sequences: the single-token logits bit for bit "
           "(largest difference %.3g, argmax flips %d)", drift, flips);
    }

    /* ---- drafters */
    bl_drafter *rep = new_drafter(4, 1, 0), *rnd = new_drafter(5, 2, 32), *trn = new_drafter(4, 1, 0);
    if (!rep || !rnd || !trn) {
        printf("Bail out! no drafter\n");
        return 1;
    }
    for (int64_t i = 0; i < rnd->n_params; i++)
        rnd->params[i] = 0.3f * frand();
    ok(train(trn) == 0, "a drafter trained on the greedy continuations");

    double tpp_rep = 0, tpp_trn = 0;
    verify_is_greedy("untrained", rep, &tpp_rep);
    verify_is_greedy("random", rnd, NULL);
    verify_is_greedy("trained", trn, &tpp_trn);
    diag("untrained drafter, VERIFY: %.3f tokens per pass", tpp_rep);

    /* ---- EAGLE-style: untrained, trained on the same rows, and the
     * trained one through its file */
    {
        struct bl_drafter_config c = {0};
        bl_drafter *eu = NULL, *et = NULL, *el = NULL;
        c.kind = BL_DRAFTER_EAGLE;
        c.n_heads = 4;
        c.n_blocks = 1;
        c.width = 128;
        int rc = bl_drafter_new(&eu, model, &c, 3, &err) || bl_drafter_new(&et, model, &c, 3, &err);
        ok(rc == 0 && train(et) == 0, "EAGLE-style drafters: made, one trained on the greedy continuations%s%s",
           rc ? ": " : "", rc ? err.msg : "");
        if (eu && et) {
            double tpp_eu = 0, tpp_et = 0;
            verify_is_greedy("EAGLE untrained", eu, &tpp_eu);
            verify_is_greedy("EAGLE trained", et, &tpp_et);
            ok(tpp_eu >= 1.0 && tpp_et > 2.0, "EAGLE tokens per pass: untrained %.3f >= 1, trained %.3f > 2", tpp_eu,
               tpp_et);
            char *dir = tmp_dir(), path[4200];
            snprintf(path, sizeof path, "%s/eagle.gguf", dir);
            rc = bl_drafter_save(et, path, &err) || bl_drafter_load(&el, path, model, &err);
            ok(rc == 0 && el && el->n_params == et->n_params &&
                   memcmp(el->params, et->params, (size_t)et->n_params * sizeof(float)) == 0 &&
                   bl_drafter_config(el)->kind == BL_DRAFTER_EAGLE,
               "EAGLE drafter file: saved and loaded bit for bit%s%s", rc ? ": " : "", rc ? err.msg : "");
            if (el)
                verify_is_greedy("EAGLE loaded", el, NULL);
            rm_rf(dir);
            free(dir);
        }
        bl_drafter_free(eu);
        bl_drafter_free(et);
        bl_drafter_free(el);
    }
    ok(tpp_rep >= 1.0 && tpp_trn > 2.0, "tokens per pass: untrained %.3f >= 1, trained %.3f > 2", tpp_rep, tpp_trn);
    {
        struct bl_spec_params p = bl_spec_default_params();
        struct bl_spec_stats st;
        int32_t out[NGEN];
        int64_t n;
        int all = 0;
        for (int i = 0; i < NP; i++)
            if (bl_drafter_generate(ctx, trn, prompts[i], plen[i], &p, out, &n, &st, &err) == 0)
                all += st.accept_at[3] > 0;
        ok(all > 0, "trained drafter: whole drafts (4 of 4) accepted on %d prompts", all);
    }

    /* ---- no stop at EOS (none of these continuations reaches one: see
     * below for some that do) */
    {
        struct bl_spec_params p = bl_spec_default_params();
        struct run_sum r;
        p.stop_at_eos = 0;
        run_all(trn, &p, &r);
        ok(r.same == NP && r.stats == NP && r.tokens == (int64_t)NP * NGEN,
           "stop_at_eos 0: plain greedy on %d/%d prompts, %lld tokens", r.same, NP, (long long)r.tokens);
    }

    /* ---- EOS: whole paragraphs that end a story make the model end it too
     * (paragraph 2 after 41 tokens, paragraph 5 at once); the context is
     * the model's (512 positions), on one thread (the main one above runs
     * on all processors) */
    {
        bl_ctx *lc;
        struct bl_ctx_params lp = bl_ctx_default_params();
        lp.n_threads = 1;
        int32_t *ids = malloc(4096 * sizeof *ids);
        int good = 0, tried = 0, stops = 0, through = 0, stats = 0;
        if (bl_ctx_alloc(&lc, model, &lp, &err)) {
            printf("Bail out! %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < NP; i++) {
            int64_t m;
            int32_t ref[NGEN], out[NGEN];
            int64_t nr, n;
            int eos;
            if (bl_tokenizer_encode(tok, paras[i], strlen(paras[i]), BL_TOK_BOS, ids, 4096, &m) || m > 400)
                continue;
            nr = greedy_in(lc, ids, m, NGEN, 1, ref, NULL, NULL, &eos);
            if (!eos)
                continue;
            tried++;
            const bl_drafter *ds[3] = {rep, rnd, trn};
            for (int di = 0; di < 3; di++)
                for (int mode = 0; mode < 2; mode++) {
                    struct bl_spec_params p = bl_spec_default_params();
                    struct bl_spec_stats st;
                    const char *why;
                    if (mode) {
                        p.mode = BL_SPEC_FAST;
                        p.tokens_per_pass = 1;
                    }
                    int rc = bl_drafter_generate(lc, ds[di], ids, m, &p, out, &n, &st, &err);
                    good += rc == 0 && n == nr && memcmp(out, ref, (size_t)n * sizeof *out) == 0;
                    stops += rc == 0 && st.stopped_eos;
                    stats += rc == 0 && stats_ok(&st, n, &p, bl_drafter_config(ds[di])->n_heads, &why);
                }
            /* and through it */
            struct bl_spec_params p = bl_spec_default_params();
            p.stop_at_eos = 0;
            nr = greedy_in(lc, ids, m, NGEN, 0, ref, NULL, NULL, &eos);
            int rc = bl_drafter_generate(lc, trn, ids, m, &p, out, &n, NULL, &err);
            through += rc == 0 && n == NGEN && nr == NGEN && memcmp(out, ref, sizeof ref) == 0;
        }
        ok(tried >= 2 && good == 6 * tried && stops == 6 * tried && stats == 6 * tried,
           "paragraphs whose greedy continuation ends at EOS (%d of %d): VERIFY and FAST/1 stop there, plain "
           "greedy, with 3 drafters (%d/%d)", tried, NP, good, 6 * tried);
        ok(tried >= 2 && through == tried, "and with stop_at_eos 0 they go through it as plain greedy does (%d/%d)",
           through, tried);
        free(ids);
        bl_ctx_free(lc);
    }

    /* ---- FAST */
    {
        struct bl_spec_params p = bl_spec_default_params();
        struct run_sum r;
        p.mode = BL_SPEC_FAST;
        p.tokens_per_pass = 1;
        run_all(rep, &p, &r);
        ok(r.same == NP && r.stats == NP && r.drafted == 0 && r.passes == r.tokens - (NP - n_eos),
           "FAST, 1 token per pass: plain greedy on %d/%d prompts, %lld passes for %lld tokens", r.same, NP,
           (long long)r.passes, (long long)r.tokens);
        for (int k = 2; k <= 5; k += 3) {
            const bl_drafter *d = k == 2 ? rep : trn;
            int good = 0, stats = 0;
            int64_t tokens = 0, passes = 0;
            p.tokens_per_pass = k;
            for (int i = 0; i < NP; i++) {
                int32_t out[NGEN];
                int64_t n;
                struct bl_spec_stats st;
                const char *why;
                if (bl_drafter_generate(ctx, d, prompts[i], plen[i], &p, out, &n, &st, &err)) {
                    diag("prompt %d: %s", i, err.msg);
                    continue;
                }
                stats += stats_ok(&st, n, &p, 4, &why);
                /* the prompt eval yields k tokens, each pass k more: the
                 * last group is not evaluated */
                int64_t want = (NGEN - k + k - 1) / k;
                good += st.stopped_eos || (n == NGEN && st.main_passes == want);
                tokens += st.tokens;
                passes += st.main_passes;
            }
            ok(good == NP && stats == NP,
               "FAST, %d tokens per pass (%s drafter): %d tokens in ceil(%d/%d) - 1 passes on %d/%d prompts "
               "(%.3f tokens/pass)",
               k, k == 2 ? "untrained" : "trained", NGEN, NGEN, k, good, NP,
               passes ? (double)tokens / (double)passes : 0.0);
        }
        /* with the trained drafter, FAST keeps what VERIFY accepts: as long as
         * its drafts are right, the output is greedy */
        p.tokens_per_pass = 2;
        run_all(trn, &p, &r);
        diag("FAST, 2 per pass, trained drafter: %d/%d outputs equal plain greedy, %lld/%lld kept drafts "
             "would have been accepted", r.same, NP, (long long)r.accepted, (long long)r.drafted);
        ok(r.stats == NP && r.accepted <= r.drafted, "FAST statistics add up");
    }

    /* ---- small cases */
    {
        struct bl_spec_params p = bl_spec_default_params();
        struct bl_spec_stats st;
        int32_t out[NGEN];
        int64_t n = -1;
        p.n_gen = 0;
        int rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ok(rc == 0 && n == 0 && st.tokens == 0 && st.main_passes == 0, "n_gen 0: no tokens, no pass");
        p.n_gen = 1;
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ok(rc == 0 && n == 1 && out[0] == gold[0][0] && st.main_passes == 0 && st.mean_accept_len == 1.0,
           "n_gen 1: the prompt eval's token, no pass");
        p.n_gen = 2;
        rc = bl_drafter_generate(ctx, trn, prompts[1], plen[1], &p, out, &n, &st, &err);
        ok(rc == 0 && n == 2 && out[0] == gold[1][0] && out[1] == gold[1][1] && st.main_passes == 1 &&
           st.drafted == 0, "n_gen 2: one pass of one position, no draft checked");
        /* a one-token prompt (BOS) */
        int32_t ref[NGEN];
        int eos;
        int64_t nr = greedy(prompts[0], 1, NGEN, 1, ref, NULL, NULL, &eos);
        p = bl_spec_default_params();
        rc = bl_drafter_generate(ctx, trn, prompts[0], 1, &p, out, &n, &st, &err);
        ok(rc == 0 && n == nr && memcmp(out, ref, (size_t)n * sizeof *out) == 0,
           "a prompt of BOS alone: plain greedy (%lld tokens)", (long long)n);
        /* determinism */
        struct bl_spec_stats st2;
        int32_t out2[NGEN];
        int64_t n2;
        bl_drafter_generate(ctx, rnd, prompts[3], plen[3], &p, out, &n, &st, &err);
        bl_drafter_generate(ctx, rnd, prompts[3], plen[3], &p, out2, &n2, &st2, &err);
        ok(n == n2 && memcmp(out, out2, (size_t)n * sizeof *out) == 0 && memcmp(&st, &st2, sizeof st) == 0,
           "the same call twice: the same tokens and statistics");
        /* NULL params and stats: the defaults */
        rc = bl_drafter_generate(ctx, rep, prompts[2], plen[2], NULL, out, &n, NULL, &err);
        ok(rc == 0 && n == ngold[2] && memcmp(out, gold[2], (size_t)n * sizeof *out) == 0,
           "NULL params and stats: the defaults (VERIFY, 64 tokens)");
    }

    /* ---- errors */
    {
        struct bl_spec_params p = bl_spec_default_params();
        int32_t out[NGEN + 1];
        int64_t n;
        struct bl_spec_stats st;
        int rc;
#define ERR(want, what)                                                                                      \
    ok(rc == (want) && err.code == (want) && err.msg[0] && n == 0, "%s: %s (%s)", what, bl_strerror(want), \
       err.msg)
        memset(&err, 0, sizeof err);
        p.mode = 3;
        n = -1;
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "mode 3");
        p = bl_spec_default_params();
        p.mode = BL_SPEC_FAST;
        p.tokens_per_pass = 0;
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "FAST, 0 tokens per pass");
        p.tokens_per_pass = 6;
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "FAST, K + 2 tokens per pass");
        p.tokens_per_pass = 5;
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ok(rc == 0 && n > 0, "FAST, K + 1 tokens per pass is allowed");
        p = bl_spec_default_params();
        rc = bl_drafter_generate(ctx, rep, NULL, plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "NULL prompt");
        rc = bl_drafter_generate(ctx, rep, prompts[0], 0, &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "empty prompt");
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, NULL, &n, &st, &err);
        ERR(BL_EINVAL, "NULL output");
        p.n_gen = -1;
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "n_gen -1");
        p.n_gen = NGEN;
        p = bl_spec_default_params();
        p.n_gen = NGEN + 1;
        rc = bl_drafter_generate(ctx, rep, prompts[0], PLEN, &p, out, &n, &st, &err);
        ERR(BL_ERANGE, "one position more than the context");
        p.n_gen = NGEN;
        int32_t badp[3] = {1, (int32_t)V, 5};
        rc = bl_drafter_generate(ctx, rep, badp, 3, &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "a prompt token outside the vocabulary");

        char saved[64];
        memcpy(saved, rep->cfg.hook, sizeof saved);
        snprintf(rep->cfg.hook, sizeof rep->cfg.hook, "blocks.9.hook_resid_post");
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "a hook the model lacks");
        snprintf(rep->cfg.hook, sizeof rep->cfg.hook, "blocks.0.mlp.hook_pre");
        rc = bl_drafter_generate(ctx, rep, prompts[0], plen[0], &p, out, &n, &st, &err);
        ERR(BL_EINVAL, "a hook of another width");
        memcpy(rep->cfg.hook, saved, sizeof saved);
        /* a hook on a residual stream works too (the drafter reads another
         * feature: still exact) */
        snprintf(rnd->cfg.hook, sizeof rnd->cfg.hook, "blocks.2.hook_resid_post");
        rc = bl_drafter_generate(ctx, rnd, prompts[4], plen[4], &p, out, &n, &st, &err);
        ok(rc == 0 && n == ngold[4] && memcmp(out, gold[4], (size_t)n * sizeof *out) == 0,
           "a drafter on blocks.2.hook_resid_post: plain greedy");

        char *gp = td_path("golden/llama_gqa_random/llama-random-e96-l2-h6-kv2-ff256-f16.gguf");
        bl_model *other = NULL;
        bl_drafter *wide = NULL;
        struct bl_model_params op = bl_model_default_params();
        if (gp && bl_model_load(&other, gp, &op, &err) == 0) {
            struct bl_drafter_config c = {0};
            c.kind = BL_DRAFTER_MEDUSA;
            c.n_heads = 2;
            c.n_blocks = 1;
            if (bl_drafter_new(&wide, other, &c, 1, &err) == 0) {
                rc = bl_drafter_generate(ctx, wide, prompts[0], plen[0], &p, out, &n, &st, &err);
                ERR(BL_EINVAL, "a drafter for a model of width 96");
            } else {
                ok(0, "a drafter for llama_gqa_random: %s", err.msg);
            }
        } else {
            skip(1, "golden/llama_gqa_random not found");
        }
        bl_drafter_free(wide);
        bl_model_free(other);
        free(gp);
#undef ERR
    }

    bl_drafter_free(rep);
    bl_drafter_free(rnd);
    bl_drafter_free(trn);
    free(gold_logits);
    free(gold_hook);
    bl_ctx_free(ctx);
    bl_model_free(model);
    for (int i = 0; i < NP; i++)
        free(paras[i]);
    free(mp);
    free(tp);
    free(tx);
    return done_testing();
}
