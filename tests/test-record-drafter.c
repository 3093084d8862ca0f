/* tests/test-record-drafter.c: bl_record() with a drafter (DRFT records
 * and the drafter's hook points) on stories260K.
 *
 *   - an untrained drafter (bl_drafter_new, width 0: W1 = 0, b1 = 0, so
 *     each block adds SiLU(0) = 0 and every head's logits are U h, the
 *     model's own logits at t): the known answer is that head j's draft at
 *     t is the model's argmax at t (STAT top_id[0]) and its entropy the
 *     model's entropy there; its surprisal of x_{t+1+j} is -log2 p_t of
 *     that token, from the model's recorded hook_logits row at t;
 *   - a drafter with random parameters (width 32, two blocks, so a
 *     transposed W1 or W2, or a head read at the wrong offset, shows): the
 *     recorded drafter.heads.J.hook_hidden and hook_logits rows (f32)
 *     against bl_drafter_eval on the recorded ln_final.hook_normalized rows;
 *     the DRFT statistics against double computations from the recorded
 *     logits and the recorded tokens;
 *   - the drafter changes nothing else: tokens and statistics equal those
 *     of the same recording without it;
 *   - a prompt longer than a batch (256 positions), so drafts of one batch
 *     wait for tokens of the next, and sampled tokens after it;
 *   - a drafter of 16 heads over a prompt of about 1280 tokens and a
 *     generation, so the DRFT buffer goes out in the middle of a prompt
 *     while drafts still wait for tokens;
 *   - the header (recorded.drafter, the hooks' kind, layer and head) and
 *     bl_trace_meta_read's checks on it;
 *   - bl_rec_parse_drafter's bounds: truncated, odd-length and overlong
 *     payloads, head counts 0 and 17 (BL_EFORMAT naming chunk and offset);
 *   - a drafter for another model (aidreams260K): BL_EMISMATCH, no file;
 *   - an EAGLE-style drafter with random parameters (3 heads, SwiGLU width
 *     32): its recorded hook_hidden and hook_logits rows against the
 *     layer run here, window by window: at position t the recorded
 *     features and tokens of positions max(0, t-15) .. t (y_i = x_{i+1}),
 *     RoPE from the window's start, then bli_eagle_forward K times, each
 *     time appending the last step's (g, argmax); head j is step j.  A
 *     window one position shorter gives other logits (so the check sees
 *     the window's length).  Its DRFT rows as above; everything else in
 *     the trace (tokens, statistics, lens, features) bit for bit that of
 *     a recording without it; without generation the last position's
 *     window ends with the model's argmax there (recorded hook_logits).
 *
 * Tolerances, and why:
 *   - hidden and logit rows 1e-5 relative (to the row's largest value):
 *     the same f32 products, only BLAS's blocking may differ between the
 *     16-row blocks of the recording and the rows at once here (for EAGLE
 *     the same calls on the same windows: expected 0);
 *   - DRFT entropy and surprisal against double sums over the recorded
 *     f32 logits: 1e-5 bits (the probe sums exp in float into doubles);
 *     token and rank exactly;
 *   - untrained heads against the model: 1e-4 bits, the model's logits
 *     coming from its own kernels, the heads' from BLAS over the f32
 *     unembedding (the two agree to about 1e-6 per logit). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bitlens/bitlens.h>

#include "drafter_eagle.h"
#include "drafter_internal.h"
#include "tap.h"
#include "testutil.h"

#define MAXP 4
#define MAXH 40

static char *dir;
static bl_model *model;

/* ------------------------------------------------------------ reading a trace */

struct prec {
    int64_t ntok, nsampled, nstat, ndr, ndr_chunks;
    int64_t dr_first_end;                /* the position after the first DRFT record */
    int32_t *tok;
    struct bl_rec_stat_row *stat;
    int32_t *top1;
    struct bl_rec_drafter_head *dr;      /* [ndr x K] */
    int64_t ntens[MAXH];
    float *tens[MAXH];
    unsigned char *stat_bytes;           /* the STAT payloads, concatenated */
    size_t stat_len;
    unsigned char *lens_bytes;           /* the LENS payloads, concatenated */
    size_t lens_len;
};

struct tr {
    struct bl_trace_meta meta;
    int K;
    int n_prompts;
    struct prec p[MAXP];
    char bad[600];
};

#define BAD(...)                                                          \
    do {                                                                  \
        if (!t->bad[0])                                                   \
            snprintf(t->bad, sizeof t->bad, __VA_ARGS__);                 \
    } while (0)

static void *grow(void *p, size_t elem, int64_t n)
{
    void *q = realloc(p, (size_t)(n > 0 ? n : 1) * elem);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        exit(99);
    }
    return q;
}

static void tr_free(struct tr *t)
{
    for (int i = 0; i < MAXP; i++) {
        struct prec *p = &t->p[i];
        free(p->tok);
        free(p->stat);
        free(p->top1);
        free(p->dr);
        free(p->stat_bytes);
        free(p->lens_bytes);
        for (int h = 0; h < MAXH; h++)
            free(p->tens[h]);
    }
    bl_trace_meta_release(&t->meta);
    memset(t, 0, sizeof *t);
}

static void on_chunk(struct tr *t, const struct bl_trace_chunk *c)
{
    bl_err err;
    if (c->type == BL_CHUNK_PROMPT) {
        struct bl_rec_prompt r;
        if (bl_rec_parse_prompt(c, &r, &err) || r.prompt >= MAXP || (int)r.prompt != t->n_prompts)
            BAD("PRMT: %s", err.msg);
        else
            t->n_prompts++;
        return;
    }
    if (c->type == BL_CHUNK_TOKENS) {
        struct bl_rec_tokens r;
        if (bl_rec_parse_tokens(c, &r, &err) || r.prompt >= (uint32_t)t->n_prompts) {
            BAD("TOKS: %s", err.msg);
            return;
        }
        struct prec *p = &t->p[r.prompt];
        if (r.pos0 != (uint64_t)p->ntok)
            BAD("TOKS of prompt %u out of order", r.prompt);
        p->tok = grow(p->tok, sizeof *p->tok, p->ntok + (int64_t)r.n);
        for (uint64_t i = 0; i < r.n; i++) {
            int sampled;
            p->tok[p->ntok++] = bl_rec_token(&r, i, &sampled, NULL, NULL);
            p->nsampled += sampled != 0;
        }
        return;
    }
    if (c->type == BL_CHUNK_STATS) {
        struct bl_rec_stats r;
        if (bl_rec_parse_stats(c, &r, &err) || r.prompt >= (uint32_t)t->n_prompts || r.k < 1) {
            BAD("STAT: %s", err.msg);
            return;
        }
        struct prec *p = &t->p[r.prompt];
        if (r.pos0 != (uint64_t)p->nstat)
            BAD("STAT of prompt %u out of order", r.prompt);
        p->stat = grow(p->stat, sizeof *p->stat, p->nstat + (int64_t)r.n);
        p->top1 = grow(p->top1, sizeof *p->top1, p->nstat + (int64_t)r.n);
        int32_t ids[1000];
        for (uint64_t i = 0; i < r.n; i++, p->nstat++) {
            bl_rec_stat_row(&r, i, &p->stat[p->nstat], ids, NULL);
            p->top1[p->nstat] = ids[0];
        }
        p->stat_bytes = grow(p->stat_bytes, 1, (int64_t)(p->stat_len + c->raw_len));
        memcpy(p->stat_bytes + p->stat_len, c->data, c->raw_len);
        p->stat_len += c->raw_len;
        return;
    }
    if (c->type == BL_CHUNK_DRAFTER) {
        struct bl_rec_drafter r;
        if (bl_rec_parse_drafter(c, &r, &err) || r.prompt >= (uint32_t)t->n_prompts || (int)r.k != t->K) {
            BAD("DRFT: %s (k %u, header %d)", err.msg, r.k, t->K);
            return;
        }
        struct prec *p = &t->p[r.prompt];
        if (r.pos0 != (uint64_t)p->ndr)
            BAD("DRFT of prompt %u at %llu, expected %lld", r.prompt, (unsigned long long)r.pos0, (long long)p->ndr);
        p->dr = grow(p->dr, sizeof *p->dr * (size_t)t->K, p->ndr + (int64_t)r.n);
        for (uint64_t i = 0; i < r.n; i++, p->ndr++)
            bl_rec_drafter_row(&r, i, p->dr + p->ndr * t->K);
        if (p->ndr_chunks++ == 0)
            p->dr_first_end = p->ndr;
        return;
    }
    if (c->type == BL_CHUNK_TENSOR) {
        struct bl_rec_tensor r;
        if (bl_rec_parse_tensor(c, &r, &err) || r.prompt >= (uint32_t)t->n_prompts || r.hook >= MAXH ||
            r.hook >= (uint32_t)t->meta.n_hooks || r.dtype != BL_F32 ||
            (int64_t)r.width != t->meta.hooks[r.hook].width) {
            BAD("TENS: %s", err.msg);
            return;
        }
        struct prec *p = &t->p[r.prompt];
        int h = (int)r.hook;
        if (r.pos0 != (uint64_t)p->ntens[h])
            BAD("TENS of prompt %u hook %d out of order", r.prompt, h);
        p->tens[h] = grow(p->tens[h], sizeof(float) * (size_t)r.width, p->ntens[h] + (int64_t)r.n);
        memcpy(p->tens[h] + (size_t)p->ntens[h] * r.width, r.data, (size_t)(r.n * r.width) * 4);
        p->ntens[h] += (int64_t)r.n;
        return;
    }
    if (c->type == BL_CHUNK_LENS) {
        struct bl_rec_lens r;
        if (bl_rec_parse_lens(c, &r, &err) || r.prompt >= (uint32_t)t->n_prompts) {
            BAD("LENS: %s", err.msg);
            return;
        }
        struct prec *p = &t->p[r.prompt];
        p->lens_bytes = grow(p->lens_bytes, 1, (int64_t)(p->lens_len + c->raw_len));
        memcpy(p->lens_bytes + p->lens_len, c->data, c->raw_len);
        p->lens_len += c->raw_len;
        return;
    }
    BAD("unknown chunk type %.4s", (const char *)&c->type);
}

static int load(const char *path, struct tr *t)
{
    bl_trace_reader *r;
    bl_err err;
    struct bl_trace_chunk c;
    memset(t, 0, sizeof *t);
    if (bl_trace_reader_open(&r, path, &err)) {
        BAD("%s", err.msg);
        return -1;
    }
    if (bl_trace_meta_read(r, &t->meta, &err)) {
        BAD("%s", err.msg);
        bl_trace_reader_free(r);
        return -1;
    }
    t->K = t->meta.drafter_heads;
    int rc;
    while ((rc = bl_trace_reader_next(r, &c, &err)) == 1)
        on_chunk(t, &c);
    if (rc < 0)
        BAD("%s", err.msg);
    if (!bl_trace_reader_complete(r))
        BAD("%s: incomplete", path);
    bl_trace_reader_free(r);
    return t->bad[0] ? -1 : 0;
}

static int hook_index(const struct tr *t, const char *name)
{
    for (int64_t i = 0; i < t->meta.n_hooks; i++)
        if (strcmp(t->meta.hooks[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------ references */

/* The statistics of logits z [V] in double: argmax (ties: lower id),
 * entropy in bits, and for x >= 0 its surprisal in bits and 0-based rank. */
static void ref_stats(const float *z, int64_t V, int32_t x, int32_t *tok, double *H, double *S, int32_t *rank)
{
    int64_t am = 0;
    for (int64_t v = 1; v < V; v++)
        if (z[v] > z[am])
            am = v;
    double m = z[am], Z = 0, e = 0;
    for (int64_t v = 0; v < V; v++)
        Z += exp((double)z[v] - m);
    for (int64_t v = 0; v < V; v++) {
        double q = exp((double)z[v] - m) / Z;
        if (q > 0)
            e -= q * log2(q);
    }
    *tok = (int32_t)am;
    *H = e;
    *S = NAN;
    *rank = -1;
    if (x >= 0) {
        *S = -(((double)z[x] - m) - log(Z)) / M_LN2;
        int32_t r = 0;
        for (int64_t v = 0; v < V; v++)
            r += z[v] > z[x] || (z[v] == z[x] && v < x);
        *rank = r;
    }
}

/* deterministic values in [-1, 1) */
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 4503599627370496.0 - 1.0;
}

/* random parameters of the scale of a trained drafter's */
static void randomize(bl_drafter *d, double scale)
{
    const struct bl_drafter_config *c = &d->cfg;
    int64_t h = bli_drafter_hidden(c);
    for (int j = 0; j < c->n_heads; j++)
        for (int b = 0; b < c->n_blocks; b++) {
            float *w1 = d->params + bli_drafter_w1(c, j, b), *b1 = d->params + bli_drafter_b1(c, j, b);
            for (int64_t i = 0; i < h * c->d; i++)
                w1[i] = (float)(scale * 1.7 * urand() / sqrt((double)c->d));
            for (int64_t i = 0; i < h; i++)
                b1[i] = (float)(0.2 * urand());
            if (c->width > 0) {
                float *w2 = d->params + bli_drafter_w2(c, j, b);
                for (int64_t i = 0; i < c->d * h; i++)
                    w2[i] = (float)(scale * 1.7 * urand() / sqrt((double)h));
            }
        }
}

static int record(const char *name, const char *const *prompts, int n, const struct bl_record_params *p,
                  char *path, size_t cap, bl_err *err)
{
    snprintf(path, cap, "%s/%s", dir, name);
    struct bl_record_params q = *p;
    q.n_threads = 2;
    return bl_record(model, prompts, n, &q, path, BL_TRACE_FORCE, NULL, err);
}

/* ------------------------------------------------------------ checks */

/* The DRFT rows of prompt i against the drafter's recorded logits
 * (hooks drafter.heads.J.hook_logits; heads without one are checked for
 * known/unknown only).  Returns failures; counts into *waited the drafts
 * whose token was sampled after the position was drafted from. */
static int check_stats(const struct tr *t, int i, int64_t V, int64_t *checked, int64_t *waited, int64_t P)
{
    const struct prec *p = &t->p[i];
    int K = t->K, bad = 0;
    for (int j = 1; j <= K; j++) {
        char name[64];
        snprintf(name, sizeof name, "drafter.heads.%d.hook_logits", j);
        int h = hook_index(t, name);
        for (int64_t pos = 0; pos < p->ndr; pos++) {
            const struct bl_rec_drafter_head *d = &p->dr[pos * K + j - 1];
            int64_t q = pos + 1 + j;
            int32_t x = q < p->ntok ? p->tok[q] : -1;
            if (h < 0) {
                if ((x >= 0) != (d->rank >= 0) || (x >= 0) != (int)isfinite(d->surprisal)) {
                    if (bad++ < 3)
                        diag("prompt %d pos %lld head %d: rank %d surprisal %g, the token at %lld %s", i,
                             (long long)pos, j, d->rank, (double)d->surprisal, (long long)q,
                             x >= 0 ? "is known" : "is not");
                }
                continue;
            }
            int32_t tok, rank;
            double H, S;
            ref_stats(p->tens[h] + pos * V, V, x, &tok, &H, &S, &rank);
            int ok1 = d->token == tok && fabs(d->entropy - H) <= 1e-5 && d->rank == rank &&
                      (x < 0 ? isnan(d->surprisal) : fabs(d->surprisal - S) <= 1e-5);
            if (!ok1 && bad++ < 3)
                diag("prompt %d pos %lld head %d: token %d/%d entropy %.7g/%.7g surprisal %.7g/%.7g rank %d/%d", i,
                     (long long)pos, j, d->token, tok, (double)d->entropy, H, (double)d->surprisal, S, d->rank, rank);
            (*checked)++;
            *waited += x >= 0 && q >= P + 1;   /* sampled after every prompt position was drafted from */
        }
    }
    return bad;
}

static void test_random(const char *drafter_file, const bl_drafter *dr, const char *const *prompts, int np)
{
    const struct bl_model_config *mc = bl_model_config(model);
    const struct bl_drafter_config *dc = bl_drafter_config(dr);
    int64_t D = mc->dim, V = mc->n_vocab;
    int K = dc->n_heads;
    struct bl_record_params p = bl_record_default_params();
    p.hooks = "ln_final.hook_normalized,drafter.heads.*";
    p.dtype = BL_F32;
    p.top_k = 3;
    p.n_gen = 10;
    p.sampling.seed = 5;
    p.drafter_path = drafter_file;
    char path[4200], path2[4200];
    bl_err err;
    struct bl_record_stats st;
    snprintf(path, sizeof path, "%s/random.blt", dir);
    struct bl_record_params q = p;
    q.n_threads = 2;
    int rc = bl_record(model, prompts, np, &q, path, BL_TRACE_FORCE, &st, &err);
    ok(rc == 0, "record 3 prompts with a random drafter from its file: %s", rc ? err.msg : "ok");
    struct tr t;
    if (rc || load(path, &t)) {
        diag("%s", rc ? err.msg : t.bad);
        skip(12, "no trace");
        return;
    }
    /* the header */
    char hex[65] = "";
    bl_sha256_file(drafter_file, hex, NULL, NULL, &err);
    ok(t.meta.drafter_heads == K && strcmp(t.meta.drafter_kind, "medusa") == 0 &&
           strcmp(t.meta.drafter_hook, "ln_final.hook_normalized") == 0 && t.meta.drafter_path &&
           strcmp(t.meta.drafter_path, drafter_file) == 0 && t.meta.drafter_sha256 &&
           strcmp(t.meta.drafter_sha256, hex) == 0,
       "header: recorded.drafter: %d heads, medusa, its hook, the file and its sha256", K);
    int hooks_ok = t.meta.n_hooks == 1 + 2 * K && t.meta.hooks[0].kind == BL_HOOK_LN_FINAL && t.meta.hooks[0].head == 0;
    for (int j = 1; j <= K && hooks_ok; j++) {
        const struct bl_trace_hook *a = &t.meta.hooks[2 * j - 1], *b = &t.meta.hooks[2 * j];
        char na[64], nb[64];
        snprintf(na, sizeof na, "drafter.heads.%d.hook_hidden", j);
        snprintf(nb, sizeof nb, "drafter.heads.%d.hook_logits", j);
        hooks_ok = strcmp(a->name, na) == 0 && a->kind == BL_TRACE_HOOK_DRAFTER_HIDDEN && a->layer == -1 &&
                   a->head == j && a->width == D && strcmp(b->name, nb) == 0 &&
                   b->kind == BL_TRACE_HOOK_DRAFTER_LOGITS && b->layer == -1 && b->head == j && b->width == V;
    }
    ok(hooks_ok, "header: the model's hook, then per head hook_hidden (kind 64, width %lld) and hook_logits "
       "(kind 65, width %lld), layer -1, head J", (long long)D, (long long)V);
    int64_t positions = 0;
    int rows_ok = t.n_prompts == np;
    for (int i = 0; i < np; i++) {
        const struct prec *pr = &t.p[i];
        positions += pr->nstat;
        rows_ok &= pr->ndr == pr->nstat && pr->nstat == pr->ntok - 1;
        for (int h = 0; h < t.meta.n_hooks; h++)
            rows_ok &= pr->ntens[h] == pr->nstat;
    }
    ok(rows_ok && st.drafter_rows == positions,
       "a DRFT row and a row of each drafter hook at every position with statistics (%lld)", (long long)positions);
    ok(t.p[np - 1].ntok - p.n_gen > 256, "the last prompt spans two batches (%lld tokens)",
       (long long)(t.p[np - 1].ntok - p.n_gen));

    /* the tensors against bl_drafter_eval on the recorded features */
    double worst_h = 0, worst_z = 0;
    int eval_ok = 1;
    for (int i = 0; i < np; i++) {
        const struct prec *pr = &t.p[i];
        int64_t n = pr->nstat;
        float *z = malloc((size_t)(n * K * V) * sizeof *z), *hd = malloc((size_t)(n * K * D) * sizeof *hd);
        if (!z || !hd || bl_drafter_eval(dr, pr->tens[0], n, z, NULL, hd, &err)) {
            eval_ok = 0;
            free(z);
            free(hd);
            continue;
        }
        for (int j = 0; j < K; j++) {
            const float *rh = pr->tens[1 + 2 * j], *rz = pr->tens[2 + 2 * j];
            for (int64_t r = 0; r < n; r++) {
                double mh = 1e-30, mz = 1e-30, dh = 0, dz = 0;
                for (int64_t k = 0; k < D; k++) {
                    double a = hd[(r * K + j) * D + k];
                    mh = fmax(mh, fabs(a));
                    dh = fmax(dh, fabs(a - rh[r * D + k]));
                }
                for (int64_t k = 0; k < V; k++) {
                    double a = z[(r * K + j) * V + k];
                    mz = fmax(mz, fabs(a));
                    dz = fmax(dz, fabs(a - rz[r * V + k]));
                }
                worst_h = fmax(worst_h, dh / mh);
                worst_z = fmax(worst_z, dz / mz);
            }
        }
        free(z);
        free(hd);
    }
    ok(eval_ok && worst_h <= 1e-5, "hook_hidden rows = bl_drafter_eval on the recorded ln_final rows (worst %.2g "
       "relative)", worst_h);
    ok(eval_ok && worst_z <= 1e-5, "hook_logits rows = bl_drafter_eval on the recorded ln_final rows (worst %.2g "
       "relative)", worst_z);
    /* the hidden state is not the feature: the random blocks moved it */
    double moved = 0;
    for (int64_t k = 0; k < D; k++)
        moved = fmax(moved, fabs(t.p[0].tens[1][k] - t.p[0].tens[0][k]));
    ok(moved > 0.1, "the random blocks move the hidden state away from the feature (by %.3g)", moved);

    /* the statistics */
    int64_t checked = 0, waited = 0;
    int bad = 0;
    for (int i = 0; i < np; i++)
        bad += check_stats(&t, i, V, &checked, &waited, t.p[i].ntok - t.p[i].nsampled);
    ok(bad == 0, "DRFT token, entropy, surprisal and rank = double computations from the recorded logits (%lld "
       "drafts, 1e-5 bits)", (long long)checked);
    ok(waited > 0, "%lld drafts waited for tokens sampled after their position", (long long)waited);
    int64_t unknown = 0;
    for (int i = 0; i < np; i++)
        for (int64_t pos = 0; pos < t.p[i].ndr; pos++)
            for (int j = 1; j <= K; j++) {
                const struct bl_rec_drafter_head *d = &t.p[i].dr[pos * K + j - 1];
                unknown += pos + 1 + j >= t.p[i].ntok && isnan(d->surprisal) && d->rank == -1;
            }
    ok(unknown == np * K * (K + 1) / 2, "past the last token: surprisal NaN and rank -1 (%lld drafts)",
       (long long)unknown);

    /* the same without the drafter: the same tokens and statistics */
    struct bl_record_params p2 = p;
    p2.drafter_path = NULL;
    p2.hooks = "ln_final.hook_normalized";
    rc = record("plain.blt", prompts, np, &p2, path2, sizeof path2, &err);
    struct tr u;
    int same = rc == 0 && load(path2, &u) == 0;
    if (same) {
        for (int i = 0; i < np; i++) {
            same &= u.p[i].ntok == t.p[i].ntok && memcmp(u.p[i].tok, t.p[i].tok, 4 * (size_t)t.p[i].ntok) == 0;
            same &= u.p[i].stat_len == t.p[i].stat_len &&
                    memcmp(u.p[i].stat_bytes, t.p[i].stat_bytes, t.p[i].stat_len) == 0;
            same &= u.p[i].ntens[0] == t.p[i].ntens[0] &&
                    memcmp(u.p[i].tens[0], t.p[i].tens[0], (size_t)(t.p[i].ntens[0] * D) * 4) == 0;
        }
        ok(same && u.meta.drafter_heads == 0 && u.K == 0, "without the drafter: the same tokens, statistics and "
           "features, bit for bit; the header's drafter null");
        tr_free(&u);
    } else {
        ok(0, "without the drafter: %s", rc ? err.msg : u.bad);
    }
    tr_free(&t);
}

/* untrained heads: the model's own prediction at t */
static void test_untrained(const char *const *prompts, int np)
{
    const struct bl_model_config *mc = bl_model_config(model);
    int64_t V = mc->n_vocab;
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = 3;
    cfg.n_blocks = 1;
    cfg.width = 0;
    bl_drafter *a = NULL;
    bl_err err;
    int rc = bl_drafter_new(&a, model, &cfg, 1, &err);
    ok(rc == 0, "bl_drafter_new: an untrained drafter of 3 heads, width 0");
    if (rc) {
        skip(4, "no drafter");
        return;
    }
    struct bl_record_params p = bl_record_default_params();
    p.hooks = "hook_logits";
    p.dtype = BL_F32;
    p.top_k = 1;
    p.n_gen = 8;
    p.sampling.temperature = 0;
    p.drafter = a;
    char path[4200];
    rc = record("untrained.blt", prompts, np, &p, path, sizeof path, &err);
    struct tr t;
    if (rc || load(path, &t)) {
        ok(0, "record with an untrained drafter given as an object: %s", rc ? err.msg : t.bad);
        skip(3, "no trace");
        bl_drafter_free(a);
        return;
    }
    ok(t.meta.drafter_heads == 3 && !t.meta.drafter_path && !t.meta.drafter_sha256 && t.meta.n_hooks == 1,
       "a drafter given as an object: path and sha256 null in the header; --hooks without drafter.*: none of its "
       "tensors");
    int64_t n = 0, bad_tok = 0, bad_h = 0, bad_s = 0;
    double worst_h = 0, worst_s = 0;
    for (int i = 0; i < np; i++) {
        const struct prec *pr = &t.p[i];
        for (int64_t pos = 0; pos < pr->ndr; pos++)
            for (int j = 1; j <= 3; j++) {
                const struct bl_rec_drafter_head *d = &pr->dr[pos * 3 + j - 1];
                int64_t q = pos + 1 + j;
                int32_t x = q < pr->ntok ? pr->tok[q] : -1, tok, rank;
                double H, S;
                ref_stats(pr->tens[0] + pos * V, V, x, &tok, &H, &S, &rank);
                n++;
                bad_tok += d->token != pr->top1[pos];
                worst_h = fmax(worst_h, fabs(d->entropy - pr->stat[pos].entropy));
                bad_h += !(fabs(d->entropy - pr->stat[pos].entropy) <= 1e-4);
                if (x >= 0) {
                    worst_s = fmax(worst_s, fabs(d->surprisal - S));
                    bad_s += !(fabs(d->surprisal - S) <= 1e-4) || d->rank != rank;
                }
            }
    }
    ok(n > 0 && bad_tok == 0, "untrained: every head drafts the model's own argmax at t (%lld drafts)", (long long)n);
    ok(n > 0 && bad_h == 0, "untrained: every head's entropy is the model's at t (worst %.2g bits)", worst_h);
    ok(n > 0 && bad_s == 0, "untrained: surprisal and rank of x_{t+1+j} under the model's p_t (worst %.2g bits)",
       worst_s);
    tr_free(&t);
    bl_drafter_free(a);
}

/* 16 heads over ~1280 positions: the buffer goes out mid-prompt */
static void test_long(const char *text_path)
{
    const struct bl_model_config *mc = bl_model_config(model);
    int64_t V = mc->n_vocab;
    size_t len;
    char *text = read_file(text_path, &len);
    if (!text) {
        skip(3, "no text");
        return;
    }
    /* newlines to spaces (one prompt), cut where the prompt has ~1275 tokens */
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' || text[i] == '\r')
            text[i] = ' ';
    const bl_tokenizer *tk = bl_model_tokenizer(model);
    int32_t *ids = malloc((len * 3 + 8) * sizeof *ids);
    size_t lo = 0, hi = len;
    while (ids && lo + 1 < hi) {   /* the longest prefix of at most 1275 tokens */
        size_t mid = (lo + hi) / 2;
        int64_t n = 0;
        bl_tokenizer_encode(tk, text, mid, BL_TOK_BOS, ids, (int64_t)(len * 3 + 8), &n);
        if (n <= 1275) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    while (lo > 0 && text[lo - 1] != ' ')   /* in the middle of a sentence, at a word */
        lo--;
    text[lo] = '\0';
    free(ids);
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = 16;
    cfg.n_blocks = 1;
    cfg.width = 16;
    bl_drafter *c = NULL;
    bl_err err;
    int rc = bl_drafter_new(&c, model, &cfg, 3, &err);
    if (!rc)
        randomize(c, 1.0);
    struct bl_record_params p = bl_record_default_params();
    p.hooks = "drafter.heads.16.hook_logits,drafter.heads.1.hook_logits";
    p.dtype = BL_F32;
    p.lens = 0;
    p.n_gen = 60;
    p.sampling.seed = 11;
    p.drafter = c;
    char path[4200];
    const char *one[1] = {text};
    if (!rc)
        rc = record("long.blt", one, 1, &p, path, sizeof path, &err);
    struct tr t;
    if (rc || load(path, &t)) {
        ok(0, "record a prompt of about 1275 tokens with 16 heads: %s", rc ? err.msg : t.bad);
        skip(2, "no trace");
        bl_drafter_free(c);
        free(text);
        return;
    }
    const struct prec *pr = &t.p[0];
    int64_t P = pr->ntok - pr->nsampled;
    /* the first record went out during the generation, and stopped at the
     * first position whose head 16 waited for a token sampled later */
    ok(pr->ndr_chunks >= 2 && pr->ndr == pr->nstat && pr->dr_first_end >= P - 16 && pr->dr_first_end < pr->ndr,
       "a prompt of %lld tokens, %lld generated: the first of %lld DRFT records ends at position %lld, whose drafts "
       "still waited", (long long)P, (long long)pr->nsampled, (long long)pr->ndr_chunks, (long long)pr->dr_first_end);
    int64_t checked = 0, waited = 0;
    int bad = check_stats(&t, 0, V, &checked, &waited, P);
    ok(bad == 0, "16 heads: each draft's token known exactly where the sequence has it; heads 1 and 16 = double "
       "computations (%lld drafts)", (long long)checked);
    ok(waited > 0, "16 heads: %lld drafts of heads 1 and 16 waited for sampled tokens", (long long)waited);
    tr_free(&t);
    bl_drafter_free(c);
    free(text);
}

/* ------------------------------------------------------------ the parser */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static int parse_fails(const unsigned char *b, uint32_t len, uint32_t type, const char *what)
{
    struct bl_trace_chunk c;
    struct bl_rec_drafter d;
    bl_err err = {0};
    memset(&c, 0, sizeof c);
    c.type = type;
    c.data = b;
    c.raw_len = len;
    c.index = 7;
    c.offset = 1234;
    int rc = bl_rec_parse_drafter(&c, &d, &err);
    int good = rc == BL_EFORMAT && err.code == BL_EFORMAT && strstr(err.msg, "chunk 7 (") &&
               strstr(err.msg, "at offset 1234") && (type != BL_CHUNK_DRAFTER || strstr(err.msg, "(DRFT)"));
    ok(good, "bl_rec_parse_drafter: %s: BL_EFORMAT naming the chunk and its offset ('%s')", what, err.msg);
    return good;
}

static void test_parser(void)
{
    unsigned char b[24 + 3 * 2 * 16 + 8];
    memset(b, 0, sizeof b);
    put32(b, 1);
    put32(b + 4, 2);
    put64(b + 8, 5);
    put64(b + 16, 3);
    for (int i = 0; i < 6; i++) {
        unsigned char *r = b + 24 + 16 * i;
        float e = 0.5f + (float)i, s = i == 5 ? NAN : 2.0f * (float)i;
        put32(r, (uint32_t)(100 + i));
        memcpy(r + 4, &e, 4);
        memcpy(r + 8, &s, 4);
        put32(r + 12, (uint32_t)(i == 5 ? -1 : i));
    }
    struct bl_trace_chunk c;
    memset(&c, 0, sizeof c);
    c.type = BL_CHUNK_DRAFTER;
    c.data = b;
    c.raw_len = 24 + 96;
    struct bl_rec_drafter d;
    struct bl_rec_drafter_head h[2];
    bl_err err;
    int rc = bl_rec_parse_drafter(&c, &d, &err);
    int good = rc == 0 && d.prompt == 1 && d.k == 2 && d.pos0 == 5 && d.n == 3 && d.rows == b + 24;
    if (good) {
        bl_rec_drafter_row(&d, 2, h);
        good = h[0].token == 104 && h[0].entropy == 4.5f && h[0].surprisal == 8.0f && h[0].rank == 4 &&
               h[1].token == 105 && isnan(h[1].surprisal) && h[1].rank == -1;
    }
    ok(good, "bl_rec_parse_drafter: 3 rows of 2 heads read back, row 2 head 2 unknown");
    parse_fails(b, 23, BL_CHUNK_DRAFTER, "23 bytes, short of the fixed part");
    parse_fails(b, 24 + 95, BL_CHUNK_DRAFTER, "one byte short of 3 rows");
    parse_fails(b, 24 + 97, BL_CHUNK_DRAFTER, "one byte past 3 rows");
    parse_fails(b, 24 + 88, BL_CHUNK_DRAFTER, "an odd length, 2.75 rows");
    put64(b + 16, (uint64_t)1 << 60);
    parse_fails(b, 24 + 96, BL_CHUNK_DRAFTER, "2^60 rows (n x 32 overflows)");
    put64(b + 16, 3);
    put32(b + 4, 0);
    parse_fails(b, 24, BL_CHUNK_DRAFTER, "0 heads");
    put32(b + 4, 17);
    parse_fails(b, 24 + 17 * 16, BL_CHUNK_DRAFTER, "17 heads");
    put32(b + 4, 2);
    parse_fails(b, 24 + 96, BL_CHUNK_STATS, "a STAT record");
}

/* ------------------------------------------------------------ the header */

static int meta_of(const char *hdr, bl_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/hdr.blt", dir);
    bl_trace_writer *w;
    bl_trace_reader *r;
    struct bl_trace_meta m;
    int rc = bl_trace_writer_open(&w, path, hdr, BL_TRACE_FORCE, err);
    if (rc || (rc = bl_trace_writer_close(w, NULL, err)) || (rc = bl_trace_reader_open(&r, path, err)))
        return 1000 + rc;
    rc = bl_trace_meta_read(r, &m, err);
    if (!rc)
        bl_trace_meta_release(&m);
    bl_trace_reader_free(r);
    return rc;
}

static void test_header(void)
{
    static const char head[] =
        "{\"prompts\":[{\"text\":\"a\"}],\"model\":{\"path\":\"m\",\"name\":\"m\",\"config\":{\"dim\":4,\"n_heads\":1}},"
        "\"recorded\":{\"top_k\":0,\"n_layers\":2,\"n_vocab\":8,\"n_ctx\":4,\"lens\":false,\"dtype\":\"f32\",";
    static const struct {
        const char *rest;
        int want;
        const char *what, *msg;
    } cases[] = {
        {"\"hooks\":[{\"name\":\"drafter.heads.2.hook_logits\",\"kind\":65,\"layer\":-1,\"width\":8,\"head\":2}],"
         "\"drafter\":{\"n_heads\":2,\"kind\":\"medusa\",\"hook\":\"ln_final.hook_normalized\",\"path\":null,"
         "\"sha256\":null}}}",
         0, "a drafter's hook of head 2 of 2", NULL},
        {"\"hooks\":[],\"drafter\":null}}", 0, "drafter null", NULL},
        {"\"hooks\":[]}}", 0, "no drafter member (an older trace)", NULL},
        {"\"hooks\":[{\"name\":\"drafter.heads.1.hook_hidden\",\"kind\":64,\"layer\":-1,\"width\":4,\"head\":1}],"
         "\"drafter\":null}}",
         BL_EFORMAT, "a drafter's hook without a drafter", "names none"},
        {"\"hooks\":[{\"name\":\"drafter.heads.3.hook_hidden\",\"kind\":64,\"layer\":-1,\"width\":4,\"head\":3}],"
         "\"drafter\":{\"n_heads\":2,\"kind\":\"medusa\",\"hook\":\"h\"}}}",
         BL_EFORMAT, "head 3 of 2", "head"},
        {"\"hooks\":[{\"name\":\"drafter.heads.1.hook_hidden\",\"kind\":64,\"layer\":-1,\"width\":4}],"
         "\"drafter\":{\"n_heads\":2,\"kind\":\"medusa\",\"hook\":\"h\"}}}",
         BL_EFORMAT, "a drafter's hook without its head", "head"},
        {"\"hooks\":[{\"name\":\"drafter.heads.1.hook_hidden\",\"kind\":64,\"layer\":0,\"width\":4,\"head\":1}],"
         "\"drafter\":{\"n_heads\":2,\"kind\":\"medusa\",\"hook\":\"h\"}}}",
         BL_EFORMAT, "a drafter's hook in layer 0", "layer"},
        {"\"hooks\":[{\"name\":\"x\",\"kind\":30,\"layer\":-1,\"width\":4}]}}", BL_EFORMAT, "kind 30",
         "is not a hook kind"},
        {"\"hooks\":[{\"name\":\"x\",\"kind\":66,\"layer\":-1,\"width\":4}]}}", BL_EFORMAT, "kind 66", "kind"},
        {"\"hooks\":[],\"drafter\":{\"n_heads\":17,\"kind\":\"medusa\",\"hook\":\"h\"}}}", BL_EFORMAT,
         "17 heads", "n_heads"},
        {"\"hooks\":[],\"drafter\":{\"n_heads\":2,\"hook\":\"h\"}}}", BL_EFORMAT, "a drafter without its kind",
         "recorded.drafter.kind"},
        {"\"hooks\":[],\"drafter\":[1]}}", BL_EFORMAT, "a drafter that is an array", "recorded.drafter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char h[1024];
        snprintf(h, sizeof h, "%s%s", head, cases[i].rest);
        bl_err err = {0};
        int rc = meta_of(h, &err);
        ok(rc == cases[i].want && (!cases[i].msg || strstr(err.msg, cases[i].msg)),
           "bl_trace_meta_read: %s: %s (%s)", cases[i].what, cases[i].want ? "BL_EFORMAT" : "read",
           rc ? err.msg : "ok");
    }
    ok(bl_trace_hook_kind_valid(0) && bl_trace_hook_kind_valid(BL_HOOK_LOGITS) && bl_trace_hook_kind_valid(64) &&
           bl_trace_hook_kind_valid(65) && !bl_trace_hook_kind_valid(-1) && !bl_trace_hook_kind_valid(BL_HOOK_N_KINDS) &&
           !bl_trace_hook_kind_valid(63) && !bl_trace_hook_kind_valid(66),
       "bl_trace_hook_kind_valid: the model's kinds, 64 and 65");
}

/* ------------------------------------------------------------ another model */

static void test_mismatch(const char *other_path, const char *other_tok)
{
    struct bl_model_params mp = bl_model_default_params();
    mp.tokenizer_path = other_tok;
    bl_model *other = NULL;
    bl_err err;
    if (bl_model_load(&other, other_path, &mp, &err)) {
        skip(3, "aidreams260K does not load");
        return;
    }
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = 2;
    cfg.n_blocks = 1;
    bl_drafter *d = NULL;
    char dpath[4200], out[4200];
    snprintf(dpath, sizeof dpath, "%s/aidreams-drafter.gguf", dir);
    snprintf(out, sizeof out, "%s/mismatch.blt", dir);
    if (bl_drafter_new(&d, other, &cfg, 1, &err) || bl_drafter_save(d, dpath, &err)) {
        skip(3, "no drafter for aidreams260K");
        bl_drafter_free(d);
        bl_model_free(other);
        return;
    }
    const char *pr[1] = {"Once upon a time"};
    struct bl_record_params p = bl_record_default_params();
    p.drafter_path = dpath;
    int rc = bl_record(model, pr, 1, &p, out, BL_TRACE_FORCE, NULL, &err);
    ok(rc == BL_EMISMATCH && strstr(err.msg, dpath) && strstr(err.msg, bl_model_name(other)) &&
           strstr(err.msg, bl_model_name(model)) && access(out, F_OK) != 0,
       "a drafter file for another model: BL_EMISMATCH naming the file and both models, no trace (%s)", err.msg);
    p.drafter_path = NULL;
    p.drafter = d;
    rc = bl_record(model, pr, 1, &p, out, BL_TRACE_FORCE, NULL, &err);
    ok(rc == BL_EMISMATCH && strstr(err.msg, bl_model_name(other)) && strstr(err.msg, bl_model_name(model)) &&
           access(out, F_OK) != 0,
       "a drafter object for another model: BL_EMISMATCH naming both, no trace (%s)", err.msg);
    p.drafter = NULL;
    snprintf(dpath, sizeof dpath, "%s/no-such-drafter.gguf", dir);
    p.drafter_path = dpath;
    rc = bl_record(model, pr, 1, &p, out, BL_TRACE_FORCE, NULL, &err);
    ok(rc != 0 && strstr(err.msg, "no-such-drafter.gguf") && access(out, F_OK) != 0,
       "a missing drafter file: an error naming it, no trace (%s)", err.msg);
    bl_drafter_free(d);
    bl_model_free(other);
}

/* ------------------------------------------------------------ EAGLE */

/* The EAGLE layer run here over prompt i of t (see the top; windows of
 * wlen positions), against its recorded drafter.heads.J rows: the worst
 * relative differences of hidden and logit rows, and the DRFT tokens that
 * are not the step's argmax.  fi: the features' hook; zi: the model's
 * logits' (-1: none), whose argmax ends a window where the trace has no
 * next token.  Returns -1 when something is missing. */
static int eagle_ref(const struct tr *t, int i, const struct bli_eagle *e, int64_t wlen, int fi, int zi,
                     double *worst_h, double *worst_z, int64_t *bad_tok, int64_t *n)
{
    const struct prec *pr = &t->p[i];
    int K = t->K;
    int64_t D = e->d, V = e->V, cap = wlen + K - 1;
    int hh[BL_DRAFTER_MAX_HEADS], hz[BL_DRAFTER_MAX_HEADS];
    for (int j = 1; j <= K; j++) {
        char name[64];
        snprintf(name, sizeof name, "drafter.heads.%d.hook_hidden", j);
        hh[j - 1] = hook_index(t, name);
        snprintf(name, sizeof name, "drafter.heads.%d.hook_logits", j);
        hz[j - 1] = hook_index(t, name);
        if (hh[j - 1] < 0 || hz[j - 1] < 0 || pr->ntens[hh[j - 1]] != pr->ndr || pr->ntens[hz[j - 1]] != pr->ndr)
            return -1;
    }
    if (fi < 0 || pr->ntens[fi] < pr->ndr)
        return -1;
    struct bli_eagle_ws ws = {0};
    bl_err err;
    float *f = malloc((size_t)(cap * D) * sizeof *f), *g = malloc((size_t)(cap * D) * sizeof *g);
    int32_t *y = malloc((size_t)cap * sizeof *y);
    int rc = !f || !g || !y || bli_eagle_ws_init(&ws, e, cap, &err) ? -1 : 0;
    for (int64_t pos = 0; pos < pr->ndr && rc == 0; pos++) {
        int64_t w0 = pos - (wlen - 1) > 0 ? pos - (wlen - 1) : 0, T = pos - w0 + 1, m = T;
        memcpy(f, pr->tens[fi] + w0 * D, (size_t)(T * D) * sizeof *f);
        for (int64_t k = 0; k < T; k++) {
            int64_t q = w0 + k + 1;
            if (q < pr->ntok) {
                y[k] = pr->tok[q];
            } else if (zi >= 0 && q == pos + 1) {
                const float *z = pr->tens[zi] + pos * V;
                int64_t am = 0;
                for (int64_t v = 1; v < V; v++)
                    am = z[v] > z[am] ? v : am;
                y[k] = (int32_t)am;
            } else {
                rc = -1;
            }
        }
        for (int j = 0; j < K && rc == 0; j++) {
            if (bli_eagle_forward(e, &ws, f, y, m, w0, g, NULL, &err)) {
                rc = -1;
                break;
            }
            const float *z = ws.Z + (m - 1) * V, *gl = g + (m - 1) * D;
            const float *rh = pr->tens[hh[j]] + pos * D, *rz = pr->tens[hz[j]] + pos * V;
            double mh = 1e-30, mz = 1e-30, dh = 0, dz = 0;
            int64_t am = 0;
            for (int64_t k = 0; k < D; k++) {
                mh = fmax(mh, fabs(gl[k]));
                dh = fmax(dh, fabs((double)gl[k] - rh[k]));
            }
            for (int64_t v = 0; v < V; v++) {
                mz = fmax(mz, fabs(z[v]));
                dz = fmax(dz, fabs((double)z[v] - rz[v]));
                am = z[v] > z[am] ? v : am;
            }
            *worst_h = fmax(*worst_h, dh / mh);
            *worst_z = fmax(*worst_z, dz / mz);
            *bad_tok += pr->dr[pos * K + j].token != am;
            (*n)++;
            if (j + 1 < K) {   /* the next step: (g, its argmax) */
                memcpy(f + m * D, gl, (size_t)D * sizeof *f);
                y[m++] = (int32_t)am;
            }
        }
    }
    bli_eagle_ws_release(&ws);
    free(f);
    free(g);
    free(y);
    return rc;
}

static void test_eagle(const char *const *prompts, int np)
{
    const struct bl_model_config *mc = bl_model_config(model);
    int64_t D = mc->dim, V = mc->n_vocab;
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_EAGLE;
    cfg.n_heads = 3;
    cfg.n_blocks = 1;
    cfg.width = 32;
    bl_drafter *e = NULL;
    bl_err err;
    if (bl_drafter_new(&e, model, &cfg, 9, &err)) {
        ok(0, "an EAGLE drafter: %s", err.msg);
        skip(9, "no EAGLE drafter");
        return;
    }
    /* away from the start: attention and the MLP matter (Wo = Wd = 0 there) */
    for (int64_t i = 0; i < e->n_params; i++)
        e->params[i] += (float)(0.1 * urand());
    int K = cfg.n_heads;
    struct bl_record_params p = bl_record_default_params();
    p.hooks = "ln_final.hook_normalized,drafter.heads.*";
    p.dtype = BL_F32;
    p.top_k = 3;
    p.lens = 1;
    p.n_gen = 10;
    p.sampling.seed = 5;
    p.drafter = e;
    char path[4200], path2[4200];
    int rc = record("eagle.blt", prompts, np, &p, path, sizeof path, &err);
    struct tr t;
    if (rc || load(path, &t)) {
        ok(0, "record 3 prompts with an EAGLE drafter: %s", rc ? err.msg : t.bad);
        skip(9, "no trace");
        bl_drafter_free(e);
        return;
    }
    ok(1, "record 3 prompts with an EAGLE drafter of 3 heads");
    ok(t.meta.drafter_heads == K && strcmp(t.meta.drafter_kind, "eagle") == 0 && t.meta.n_hooks == 1 + 2 * K,
       "header: recorded.drafter: %d heads, eagle; the feature's hook and 2 per head", K);
    int rows_ok = t.n_prompts == np;
    for (int i = 0; i < np && rows_ok; i++) {
        rows_ok = t.p[i].ndr == t.p[i].nstat && t.p[i].nstat == t.p[i].ntok - 1;
        for (int h = 0; h < t.meta.n_hooks; h++)
            rows_ok &= t.p[i].ntens[h] == t.p[i].nstat;
    }
    ok(rows_ok, "a DRFT row and a row of each drafter hook at every position with statistics");

    /* the layer run here, window by window */
    double wh = 0, wz = 0, sh = 0, sz = 0;
    int64_t bad_tok = 0, n = 0, sbad = 0, sn = 0;
    int ref_ok = 1;
    for (int i = 0; i < np; i++) {
        ref_ok &= eagle_ref(&t, i, e->eagle, BLI_EAGLE_WINDOW, 0, -1, &wh, &wz, &bad_tok, &n) == 0;
        ref_ok &= eagle_ref(&t, i, e->eagle, BLI_EAGLE_WINDOW - 1, 0, -1, &sh, &sz, &sbad, &sn) == 0;
    }
    ok(ref_ok && wh <= 1e-5, "EAGLE hook_hidden rows = g of drafting step J over the window max(0, t-15) .. t "
       "(worst %.2g relative, %lld drafts)", wh, (long long)n);
    ok(ref_ok && wz <= 1e-5, "EAGLE hook_logits rows = the logits of drafting step J (worst %.2g relative)", wz);
    ok(ref_ok && bad_tok == 0, "EAGLE DRFT tokens = each step's argmax, the token the next step reads (%lld differ)",
       (long long)bad_tok);
    ok(ref_ok && sz > 1e-3, "a window of 15 positions instead of 16 gives other logits (by %.2g relative): the "
       "check sees the window", sz);
    int64_t checked = 0, waited = 0;
    int bad = 0;
    for (int i = 0; i < np; i++)
        bad += check_stats(&t, i, V, &checked, &waited, t.p[i].ntok - t.p[i].nsampled);
    ok(bad == 0 && waited > 0, "EAGLE DRFT entropy, surprisal and rank = double computations from the recorded "
       "logits (%lld drafts, %lld waited for sampled tokens)", (long long)checked, (long long)waited);

    /* the same without the drafter: everything else bit for bit */
    struct bl_record_params p2 = p;
    p2.drafter = NULL;
    p2.hooks = "ln_final.hook_normalized";
    rc = record("eagle-plain.blt", prompts, np, &p2, path2, sizeof path2, &err);
    struct tr u;
    int same = rc == 0 && load(path2, &u) == 0;
    if (same) {
        same = u.n_prompts == t.n_prompts;
        for (int i = 0; i < np && same; i++) {
            const struct prec *a = &t.p[i], *b = &u.p[i];
            same = b->ntok == a->ntok && memcmp(b->tok, a->tok, 4 * (size_t)a->ntok) == 0 &&
                   b->stat_len == a->stat_len && memcmp(b->stat_bytes, a->stat_bytes, a->stat_len) == 0 &&
                   b->lens_len == a->lens_len && a->lens_len > 0 &&
                   memcmp(b->lens_bytes, a->lens_bytes, a->lens_len) == 0 && b->ntens[0] == a->ntens[0] &&
                   memcmp(b->tens[0], a->tens[0], (size_t)(a->ntens[0] * D) * 4) == 0;
        }
        ok(same && u.K == 0, "without the EAGLE drafter: the same tokens, statistics, lens and features, bit for bit");
        tr_free(&u);
    } else {
        ok(0, "without the EAGLE drafter: %s", rc ? err.msg : u.bad);
    }
    tr_free(&t);

    /* no generation: the last position's next token is the model's argmax */
    p.n_gen = 0;
    p.lens = 0;
    p.hooks = "ln_final.hook_normalized,hook_logits,drafter.heads.*";
    rc = record("eagle-nogen.blt", prompts, np, &p, path, sizeof path, &err);
    if (rc || load(path, &t)) {
        ok(0, "record with an EAGLE drafter and no generation: %s", rc ? err.msg : t.bad);
        bl_drafter_free(e);
        return;
    }
    wh = wz = 0;
    bad_tok = n = 0;
    ref_ok = hook_index(&t, "hook_logits") >= 0;
    for (int i = 0; i < np && ref_ok; i++)
        ref_ok = t.p[i].ndr == t.p[i].ntok &&
                 eagle_ref(&t, i, e->eagle, BLI_EAGLE_WINDOW, hook_index(&t, "ln_final.hook_normalized"),
                           hook_index(&t, "hook_logits"), &wh, &wz, &bad_tok, &n) == 0;
    ok(ref_ok && wh <= 1e-5 && wz <= 1e-5 && bad_tok == 0,
       "no generation: a DRFT row at every prompt position, the last one's window ending with the model's argmax "
       "(worst %.2g, %.2g relative, %lld tokens differ)", wh, wz, (long long)bad_tok);
    tr_free(&t);
    bl_drafter_free(e);
}

int main(void)
{
    char *mp = td_require("models/stories260K.bin"), *tp = td_require("models/tok512.bin");
    char *text = td_path("text/tinystories_train_head.txt");
    char *op = td_path("models/aidreams260K.bin"), *ot = td_path("models/aidreams_tok512.bin");
    struct bl_model_params mpar = bl_model_default_params();
    bl_err err;
    mpar.tokenizer_path = tp;
    if (bl_model_load(&model, mp, &mpar, &err)) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    if (!(dir = tmp_dir())) {
        printf("Bail out! no temporary directory\n");
        return 1;
    }

    test_parser();
    test_header();

    /* three prompts, the last longer than a batch of 256 positions */
    char *longp = NULL;
    size_t tl = 0;
    char *all = text ? read_file(text, &tl) : NULL;
    if (all) {
        size_t n = tl < 1500 ? tl : 1500;
        while (n > 0 && all[n - 1] != ' ')
            n--;
        longp = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            longp[i] = all[i] == '\n' || all[i] == '\r' ? ' ' : all[i];
        longp[n] = '\0';
    }
    const char *prompts[3] = {"Once upon a time", "Lily and Ben went to the park. They saw a big dog",
                              longp ? longp : "The sun"};
    struct bl_drafter_config cfg = {0};
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = 4;
    cfg.n_blocks = 2;
    cfg.width = 32;
    bl_drafter *b = NULL;
    char dfile[4200];
    snprintf(dfile, sizeof dfile, "%s/random.gguf", dir);
    int rc = bl_drafter_new(&b, model, &cfg, 7, &err);
    if (!rc) {
        randomize(b, 1.0);
        rc = bl_drafter_save(b, dfile, &err);
    }
    if (rc) {
        ok(0, "a random drafter: %s", err.msg);
    } else if (!longp) {
        skip(1, "text/tinystories_train_head.txt not found: no long prompt");
    } else {
        /* the file as loaded for the model: what bl_record reads */
        bl_drafter *lb = NULL;
        rc = bl_drafter_load(&lb, dfile, model, &err);
        ok(rc == 0, "the random drafter saved and loaded back");
        if (!rc)
            test_random(dfile, lb, prompts, 3);
        bl_drafter_free(lb);
    }
    bl_drafter_free(b);

    test_untrained(prompts, 3);
    if (text)
        test_long(text);
    else
        skip(3, "text/tinystories_train_head.txt not found");
    test_eagle(prompts, 3);
    if (op && ot)
        test_mismatch(op, ot);
    else
        skip(3, "aidreams260K not found");

    bl_model_free(model);
    rm_rf(dir);
    free(dir);
    free(all);
    free(longp);
    free(mp);
    free(tp);
    free(text);
    free(op);
    free(ot);
    return done_testing();
}
