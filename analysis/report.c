/* analysis/report.c: the bottleneck report (bitlens/analysis.h).
 *
 * One streamed pass over the traces gathers, per resampling unit (a
 * prompt, or a group of prompts when memory is short):
 *   - token-channel sums (entropy, counts) from STAT, and the tokens
 *     themselves, so the probe's targets x_{t+k} are known;
 *   - logit-lens cross-entropy sums per layer from LENS;
 *   - per selected hook, the streamed moments of its rows (bl_moments), and
 *     a seeded uniform sample of rows (reservoir sampling, Vitter's
 *     algorithm R) for the probe and the compressibility.
 * Percentile blocks come from the values themselves, or from a uniform
 * sample of 2^20 of them (2^18 per lens layer) on long traces.
 *
 * The estimates are then made once on everything, and B more times on
 * bootstrap resamples of the units (multiplicities drawn from a seeded
 * multinomial, all estimates of one resample from the same draw, so a
 * ratio's interval is the interval of the ratio).  Resamples run in
 * parallel; each depends only on its own draw, so the result does not
 * depend on the thread count. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include <bitlens/analysis.h>
#include <bitlens/ctx.h>
#include <bitlens/drafter.h>
#include <bitlens/record.h>
#include <bitlens/tensor.h>
#include "internal.h"
#include "model_internal.h"

#define SERIES_CAP ((int64_t)1 << 20)       /* values kept per token series */
#define LENS_SERIES_CAP ((int64_t)1 << 18)  /* per lens layer and series */
#define CONV_ROWS 256                       /* rows converted to f32 at once */
/* Spectral intervals need B eigen-decompositions of d x d: skipped (and
 * said) when B d^3 exceeds this many (about a minute on two cores). */
#define BOOT_EIG_BUDGET 2e12

struct bl_report_params bl_report_default_params(void)
{
    struct bl_report_params p = {0};
    p.hooks = NULL;
    p.noise_var = 0;
    p.k = 4;
    p.lens = 1;
    p.spectrum = 1;
    p.bootstrap = 200;
    p.seed = 1;
    p.test_fraction = 0.2;
    p.max_rows = 20000;
    p.memory = (size_t)1 << 30;
    p.probe = bl_probe_default_params();
    return p;
}

/* ------------------------------------------------------------ the model's head */

int bl_probe_head_from_model(struct bl_probe_head *h, const bl_model *m, int64_t n_tokens, float **buf, bl_err *err)
{
    const struct bl_model_config *c = bl_model_config(m);
    const struct bli_weights *w = bli_model_weights(m);
    int64_t D = c->dim, V = n_tokens > 0 && n_tokens < c->n_vocab ? n_tokens : c->n_vocab;
    memset(h, 0, sizeof *h);
    *buf = NULL;
    if (!w->output.data || !w->output_norm.data)
        return bli_err(err, BL_EUNSUPPORTED, "%s: the model has no final norm or unembedding to probe through",
                       bl_model_path(m));
    if (!bl_dtype_supported(w->output.type))
        return bli_err(err, BL_EUNSUPPORTED, "%s: the unembedding is %s, which bitlens cannot compute with",
                       bl_model_path(m), bl_dtype_name(w->output.type));
    float *b = bli_malloc_array((size_t)(V * D + 2 * D), sizeof(float));
    if (!b)
        return bli_err(err, BL_ENOMEM, "out of memory for the unembedding (%" PRId64 " x %" PRId64 " floats)", V, D);
    size_t row = bl_dtype_row_bytes(w->output.type, D);
    for (int64_t v = 0; v < V; v++)
        bl_to_f32(w->output.type, (const unsigned char *)w->output.data + (size_t)v * row, b + v * D, D);
    float *nw = b + V * D, *nb = nw + D;
    bl_to_f32(w->output_norm.type, w->output_norm.data, nw, D);
    if (w->output_norm_b.data)
        bl_to_f32(w->output_norm_b.type, w->output_norm_b.data, nb, D);
    h->d = D;
    h->n_vocab = V;
    h->norm = c->norm;
    h->norm_w = nw;
    h->norm_b = w->output_norm_b.data ? nb : NULL;
    h->norm_eps = c->norm_eps;
    h->unembed = b;
    *buf = b;
    return BL_OK;
}

/* ------------------------------------------------------------ state */

/* Values of one series: all of them, or a uniform sample of cap. */
struct series {
    float *v;
    int64_t n, cap, alloc, seen;
};

enum { ROLE_TEST = 0, ROLE_TRAIN = 1, ROLE_VALID = 2 };   /* bl_probe_fit's train[i] */

struct unit {
    int32_t *tok;        /* token at each position, -1 unknown */
    int64_t n_tok;
    int64_t stat_next;   /* the position after its last STAT row */
    int64_t drft_next;   /* the position after its last DRFT row */
    int64_t group;
    int role;            /* for the probe: ROLE_TRAIN, ROLE_VALID, ROLE_TEST */
};

struct hook {
    int64_t index;       /* in the traces' recorded.hooks */
    const struct bl_trace_hook *h;
    struct bl_moments *g;        /* [G], NULL without the spectrum */
    struct bl_rounding round;    /* the stored values' rounding noise */
    int64_t rows;
    int64_t cap, n_kept, seen;
    float *kept;                 /* [cap x width] */
    int32_t *kept_unit, *kept_pos;
};

struct rep {
    const struct bl_report_params *p;
    struct bl_report *out;
    bl_err *err;
    struct bl_trace_meta *meta;  /* [n_traces] */
    int n_traces;
    int64_t L, V;
    int64_t n_units, G;
    int64_t *unit_base;          /* [n_traces]: first unit of each trace */
    struct unit *u;
    double *h_sum, *h_n;         /* [G] */
    double *ce_sum, *ce_n;       /* [G x L] */
    int64_t *unigram;            /* [V] next-token counts */
    int64_t n_next;
    struct series ent, ent_t, surp;
    struct series *lens;         /* [3 L]: entropy, ce, kl of layer l at 3l.. */
    struct hook *hk;
    int64_t nh;
    int64_t *hook_of;            /* [meta n_hooks] -> index in hk or -1 */
    gsl_rng *rng;                /* reservoirs, probe split */
    float *conv;                 /* [CONV_ROWS x max width] */
    int64_t chunks;
    /* the drafter channel: K heads (0: none); per group g and token k of
     * a pass (0: the main model's, j: head j's) DS sums at
     * ds[(g * (K + 1) + k) * DS] */
    int K;
    double *ds;
    double *acc;                 /* [G x 2]: accepted-length sum, positions */
    int64_t drft_rows;
};

enum { DS_ENT, DS_ENT_N, DS_HIT, DS_KNOWN, DS_SURP, DS };

static void note(struct bl_report *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct bl_report *o, const char *fmt, ...)
{
    size_t n = strlen(o->notes);
    if (n + 2 >= sizeof o->notes)
        return;
    if (n) {
        o->notes[n++] = '\n';
        o->notes[n] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->notes + n, sizeof o->notes - n, fmt, ap);
    va_end(ap);
}

static int series_add(struct series *s, float x, gsl_rng *rng)
{
    s->seen++;
    if (s->n < s->cap) {
        if (s->n == s->alloc) {
            int64_t a = s->alloc ? 2 * s->alloc : 1024;
            if (a > s->cap)
                a = s->cap;
            float *v = realloc(s->v, (size_t)a * sizeof *v);
            if (!v)
                return -1;
            s->v = v;
            s->alloc = a;
        }
        s->v[s->n++] = x;
    } else {
        int64_t j = (int64_t)(gsl_rng_uniform(rng) * (double)s->seen);
        if (j < s->cap)
            s->v[j] = x;
    }
    return 0;
}

static int series_percentiles(const struct series *s, struct bl_percentiles *o)
{
    double *d = bli_malloc_array((size_t)(s->n ? s->n : 1), sizeof *d);
    if (!d)
        return -1;
    for (int64_t i = 0; i < s->n; i++)
        d[i] = s->v[i];
    bl_percentiles(d, s->n, o);
    free(d);
    return 0;
}

static int unit_token(struct unit *u, int64_t pos, int32_t tok)
{
    if (pos >= u->n_tok) {
        int64_t n = pos + 1 > 2 * u->n_tok ? pos + 1 : 2 * u->n_tok;
        if (n < 64)
            n = 64;
        int32_t *t = realloc(u->tok, (size_t)n * sizeof *t);
        if (!t)
            return -1;
        for (int64_t i = u->n_tok; i < n; i++)
            t[i] = -1;
        u->tok = t;
        u->n_tok = n;
    }
    u->tok[pos] = tok;
    return 0;
}

static int32_t unit_target(const struct unit *u, int64_t pos)
{
    return pos >= 0 && pos < u->n_tok ? u->tok[pos] : -1;
}

static int oom(struct rep *r)
{
    return bli_err(r->err, BL_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------ setup */

static int check_same(struct rep *r, int i, const char *ta, const char *tb)
{
    const struct bl_trace_meta *a = &r->meta[0], *b = &r->meta[i];
    if (a->n_layers != b->n_layers || a->n_vocab != b->n_vocab || a->dim != b->dim)
        return bli_err(r->err, BL_EMISMATCH, "%s and %s: recorded from models of different shapes (%s, %s)", ta, tb,
                       a->model_path, b->model_path);
    if (a->model_sha256 && b->model_sha256 && strcmp(a->model_sha256, b->model_sha256) != 0)
        return bli_err(r->err, BL_EMISMATCH, "%s and %s: recorded from different models (sha256 %.12s... and %.12s...)",
                       ta, tb, a->model_sha256, b->model_sha256);
    if (a->drafter_heads != b->drafter_heads ||
        (a->drafter_sha256 && b->drafter_sha256 && strcmp(a->drafter_sha256, b->drafter_sha256) != 0))
        return bli_err(r->err, BL_EMISMATCH, "%s and %s: recorded with different drafters (or one without): record "
                       "them alike to merge", ta, tb);
    if (a->dtype != b->dtype || a->n_hooks != b->n_hooks)
        return bli_err(r->err, BL_EMISMATCH, "%s and %s: different hooks or dtypes: record them alike to merge", ta, tb);
    for (int64_t k = 0; k < a->n_hooks; k++)
        if (strcmp(a->hooks[k].name, b->hooks[k].name) != 0 || a->hooks[k].width != b->hooks[k].width)
            return bli_err(r->err, BL_EMISMATCH, "%s and %s: different hooks ('%s' and '%s'): record them alike "
                           "to merge", ta, tb, a->hooks[k].name, b->hooks[k].name);
    return BL_OK;
}

static int setup(struct rep *r, struct bl_trace_reader *const *rd)
{
    const struct bl_report_params *p = r->p;
    struct bl_report *o = r->out;
    int rc;
    if (!(r->meta = bli_calloc((size_t)r->n_traces, sizeof *r->meta)) ||
        !(r->unit_base = bli_calloc((size_t)r->n_traces, sizeof *r->unit_base)))
        return oom(r);
    size_t names = 1;
    for (int i = 0; i < r->n_traces; i++) {
        if ((rc = bl_trace_meta_read(rd[i], &r->meta[i], r->err)))
            return rc;
        if (i && (rc = check_same(r, i, bl_trace_reader_name(rd[0]), bl_trace_reader_name(rd[i]))))
            return rc;
        r->unit_base[i] = r->n_units;
        r->n_units += r->meta[i].n_prompts;
        names += strlen(bl_trace_reader_name(rd[i])) + 2;
    }
    const struct bl_trace_meta *m = &r->meta[0];
    if (r->n_units == 0)
        return bli_err(r->err, BL_EFORMAT, "%s: the trace holds no prompts", bl_trace_reader_name(rd[0]));
    if (r->n_units > INT32_MAX)
        return bli_err(r->err, BL_ERANGE, "more than 2^31 prompts");
    r->L = m->n_layers;
    r->V = m->n_vocab;
    if (!(o->trace_name = malloc(names)) || !(o->model_name = bli_strdup(m->model_name)) ||
        !(o->model_path = bli_strdup(m->model_path)) ||
        (m->model_sha256 && !(o->model_sha256 = bli_strdup(m->model_sha256))))
        return oom(r);
    o->trace_name[0] = '\0';
    for (int i = 0; i < r->n_traces; i++) {
        if (i)
            strcat(o->trace_name, ", ");
        strcat(o->trace_name, bl_trace_reader_name(rd[i]));
    }
    o->n_prompts = r->n_units;
    o->n_vocab = r->V;
    o->log2_vocab = log2((double)r->V);
    o->temperature = m->temperature;
    o->dtype = m->dtype;
    o->n_layers = r->L;
    o->complete = 1;

    /* hooks: fixed-width ones matching the globs, when anything uses rows */
    if (!(r->hook_of = bli_malloc_array((size_t)(m->n_hooks ? m->n_hooks : 1), sizeof *r->hook_of)) ||
        !(r->hk = bli_calloc((size_t)(m->n_hooks ? m->n_hooks : 1), sizeof *r->hk)))
        return oom(r);
    int rows_needed = p->spectrum || (p->k > 0 && p->model);
    int64_t skipped_var = 0, max_w = 1;
    double moment_bytes = 0, row_bytes = 0;
    for (int64_t i = 0; i < m->n_hooks; i++) {
        const struct bl_trace_hook *h = &m->hooks[i];
        r->hook_of[i] = -1;
        if (!rows_needed || (p->hooks && *p->hooks && !bli_match_globs(p->hooks, h->name)))
            continue;
        if (h->width < 0) {
            skipped_var++;
            continue;
        }
        struct hook *k = &r->hk[r->nh];
        r->hook_of[i] = r->nh++;
        k->index = i;
        k->h = h;
        if (h->width > max_w)
            max_w = h->width;
        moment_bytes += ((double)h->width * (double)h->width + (double)h->width) * 8.0;
        row_bytes += (double)h->width * 4.0 + 8.0;
    }
    if (skipped_var)
        note(o, "%" PRId64 " attention score/pattern hook(s) left out: their rows grow with the context", skipped_var);
    if (p->hooks && *p->hooks && rows_needed && r->nh == 0)
        return bli_err(r->err, BL_ENOTFOUND, "%s: no recorded hook of fixed width matches '%s'", o->trace_name,
                       p->hooks);

    /* memory: moments (and the lens's sums) per unit where the budget
     * allows, else per group */
    double budget = (double)p->memory;
    double per_group = (p->spectrum && r->nh ? moment_bytes : 0.0) + 16.0 * (double)r->L + 16.0;
    if (per_group > budget / 2)
        return bli_err(r->err, BL_ENOMEM, "the covariances of the %" PRId64 " hooks and the sums of %" PRId64 " layers "
                       "need %.1f MiB, over half the %.1f MiB allowed: select fewer hooks or allow more memory",
                       r->nh, r->L, per_group / 1048576.0, budget / 1048576.0);
    double ng = floor(budget / 2 / per_group);
    r->G = ng >= (double)r->n_units ? r->n_units : ng < 1 ? 1 : (int64_t)ng;
    budget -= (double)r->G * per_group;
    if (r->G < r->n_units)
        note(o, "moments kept for %" PRId64 " groups of the %" PRId64 " prompts (memory): intervals resample groups",
             r->G, r->n_units);
    int64_t cap = p->max_rows > 0 ? p->max_rows : 0;
    if (row_bytes > 0 && (double)cap * row_bytes > budget)
        cap = (int64_t)(budget / row_bytes);
    for (int64_t i = 0; i < r->nh; i++) {
        struct hook *k = &r->hk[i];
        k->cap = cap;
        bl_rounding_init(&k->round, m->dtype);
        if (p->spectrum) {
            if (!(k->g = bli_calloc((size_t)r->G, sizeof *k->g)))
                return oom(r);
            for (int64_t g = 0; g < r->G; g++)
                if ((rc = bl_moments_init(&k->g[g], k->h->width)))
                    return bli_err(r->err, rc, "out of memory for the moments of %s", k->h->name);
        }
    }
    o->n_units = r->G;

    if (!(r->u = bli_calloc((size_t)r->n_units, sizeof *r->u)) ||
        !(r->h_sum = bli_calloc((size_t)r->G, sizeof(double))) || !(r->h_n = bli_calloc((size_t)r->G, sizeof(double))) ||
        !(r->ce_sum = bli_calloc((size_t)(r->G * r->L), sizeof(double))) ||
        !(r->ce_n = bli_calloc((size_t)(r->G * r->L), sizeof(double))) ||
        !(r->unigram = bli_calloc((size_t)r->V, sizeof(int64_t))) ||
        !(r->lens = bli_calloc((size_t)(3 * r->L), sizeof *r->lens)) ||
        !(r->conv = bli_malloc_array((size_t)(CONV_ROWS * max_w), sizeof(float))) || !(r->rng = gsl_rng_alloc(gsl_rng_mt19937)))
        return oom(r);
    for (int64_t i = 0; i < r->n_units; i++)
        r->u[i].group = i % r->G;
    r->K = m->drafter_heads;
    if (r->K > 0 && (!(r->ds = bli_calloc((size_t)(r->G * (r->K + 1) * DS), sizeof(double))) ||
                     !(r->acc = bli_calloc((size_t)(2 * r->G), sizeof(double)))))
        return oom(r);
    r->ent.cap = r->ent_t.cap = r->surp.cap = SERIES_CAP;
    for (int64_t i = 0; i < 3 * r->L; i++)
        r->lens[i].cap = LENS_SERIES_CAP;
    gsl_rng_set(r->rng, (unsigned long)(p->seed ^ (p->seed >> 32)));
    return BL_OK;
}

/* ------------------------------------------------------------ the pass */

static int bad_chunk(struct rep *r, const struct bl_trace_chunk *c, const char *name, const char *what)
{
    return bli_err(r->err, BL_EFORMAT, "%s: chunk %" PRIu64 " (%.4s) at offset %" PRIu64 ": %s", name, c->index,
                   (const char *)&c->type, c->offset, what);
}

static int check_rows(struct rep *r, int t, const struct bl_trace_chunk *c, const char *name, uint32_t prompt,
                      uint64_t pos0, uint64_t n)
{
    const struct bl_trace_meta *m = &r->meta[t];
    if (prompt >= (uint64_t)m->n_prompts)
        return bad_chunk(r, c, name, "prompt index beyond the header's prompts");
    if (pos0 > (uint64_t)m->n_ctx || n > (uint64_t)m->n_ctx - pos0)
        return bad_chunk(r, c, name, "positions beyond the header's n_ctx");
    return BL_OK;
}

static int on_stats(struct rep *r, int t, const struct bl_trace_chunk *c, const char *name)
{
    struct bl_rec_stats s;
    int rc = bl_rec_parse_stats(c, &s, r->err);
    if (rc || (rc = check_rows(r, t, c, name, s.prompt, s.pos0, s.n)))
        return rc;
    struct unit *u = &r->u[r->unit_base[t] + s.prompt];
    if (s.pos0 != (uint64_t)u->stat_next)   /* bitlens record writes them in order */
        return bad_chunk(r, c, name, "statistics rows out of order: positions of a prompt must follow each other");
    u->stat_next = (int64_t)(s.pos0 + s.n);
    for (uint64_t i = 0; i < s.n; i++) {
        struct bl_rec_stat_row w;
        bl_rec_stat_row(&s, i, &w, NULL, NULL);
        int64_t pos = (int64_t)(s.pos0 + i);
        if (w.token < 0 || w.token >= r->V || w.next < -1 || w.next >= r->V)
            return bad_chunk(r, c, name, "token id outside the vocabulary");
        if (unit_token(u, pos, w.token) || (w.next >= 0 && unit_token(u, pos + 1, w.next)))
            return oom(r);
        if (series_add(&r->ent, w.entropy, r->rng) || series_add(&r->ent_t, w.entropy_t, r->rng))
            return oom(r);
        if (isfinite(w.entropy)) {
            r->h_sum[u->group] += w.entropy;
            r->h_n[u->group] += 1;
        }
        if (w.next >= 0) {
            if (series_add(&r->surp, w.surprisal, r->rng))
                return oom(r);
            r->unigram[w.next]++;
            r->n_next++;
        }
        if (r->K > 0 && w.next >= 0 && isfinite(w.surprisal)) {   /* the drafter channel's k = 1 */
            double *d = r->ds + u->group * (r->K + 1) * DS;
            d[DS_HIT] += w.rank == 1;
            d[DS_KNOWN] += 1;
            d[DS_SURP] += w.surprisal;
        }
        r->out->n_positions++;
    }
    return BL_OK;
}

static int on_lens(struct rep *r, int t, const struct bl_trace_chunk *c, const char *name)
{
    struct bl_rec_lens s;
    int rc = bl_rec_parse_lens(c, &s, r->err);
    if (rc || (rc = check_rows(r, t, c, name, s.prompt, s.pos0, s.n)))
        return rc;
    if ((int64_t)s.n_layers != r->L)
        return bad_chunk(r, c, name, "layer count differs from the header's n_layers");
    int64_t g = r->u[r->unit_base[t] + s.prompt].group;
    const unsigned char *d = (const unsigned char *)s.rows;
    for (uint64_t i = 0; i < s.n; i++)
        for (int64_t l = 0; l < r->L; l++, d += 12) {
            float e = bli_rd_f32(d), ce = bli_rd_f32(d + 4), kl = bli_rd_f32(d + 8);
            if (series_add(&r->lens[3 * l], e, r->rng) || series_add(&r->lens[3 * l + 2], kl, r->rng))
                return oom(r);
            if (!isnan(ce)) {
                if (series_add(&r->lens[3 * l + 1], ce, r->rng))
                    return oom(r);
                r->ce_sum[g * r->L + l] += ce;
                r->ce_n[g * r->L + l] += 1;
            }
        }
    r->out->has_lens = 1;
    return BL_OK;
}

static int on_drafter(struct rep *r, int t, const struct bl_trace_chunk *c, const char *name)
{
    struct bl_rec_drafter s;
    struct bl_rec_drafter_head hd[BL_DRAFTER_MAX_HEADS];
    int rc = bl_rec_parse_drafter(c, &s, r->err);
    if (rc || (rc = check_rows(r, t, c, name, s.prompt, s.pos0, s.n)))
        return rc;
    if ((int)s.k != r->K)
        return bad_chunk(r, c, name, r->K ? "head count differs from the header's recorded.drafter.n_heads"
                                          : "drafter rows, and the header's recorded.drafter names none");
    struct unit *u = &r->u[r->unit_base[t] + s.prompt];
    if (s.pos0 != (uint64_t)u->drft_next)
        return bad_chunk(r, c, name, "drafter rows out of order: positions of a prompt must follow each other");
    u->drft_next = (int64_t)(s.pos0 + s.n);
    int K = r->K;
    double *d = r->ds + u->group * (K + 1) * DS, *acc = r->acc + 2 * u->group;
    for (uint64_t i = 0; i < s.n; i++) {
        bl_rec_drafter_row(&s, i, hd);
        int all = 1, lead = 0, agree = 1;
        for (int j = 0; j < K; j++) {
            const struct bl_rec_drafter_head *h = &hd[j];
            double *dj = d + (j + 1) * DS;
            if (h->token < 0 || h->token >= r->V || h->rank < -1 || h->rank >= r->V)
                return bad_chunk(r, c, name, "a drafted token or rank outside the vocabulary");
            if (isfinite(h->entropy)) {
                dj[DS_ENT] += h->entropy;
                dj[DS_ENT_N] += 1;
            }
            if (h->rank >= 0 && isfinite(h->surprisal)) {
                dj[DS_HIT] += h->rank == 0;
                dj[DS_KNOWN] += 1;
                dj[DS_SURP] += h->surprisal;
            } else {
                all = 0;
            }
            agree &= h->rank == 0;
            lead += agree;
        }
        if (all) {
            acc[0] += 1 + lead;
            acc[1] += 1;
        }
        r->drft_rows++;
    }
    return BL_OK;
}

static int on_tensor(struct rep *r, int t, const struct bl_trace_chunk *c, const char *name)
{
    struct bl_rec_tensor s;
    const struct bl_trace_meta *m = &r->meta[t];
    int rc = bl_rec_parse_tensor(c, &s, r->err);
    if (rc || (rc = check_rows(r, t, c, name, s.prompt, s.pos0, s.n)))
        return rc;
    if (s.hook >= (uint64_t)m->n_hooks)
        return bad_chunk(r, c, name, "hook index beyond the header's recorded.hooks");
    int64_t hi = r->hook_of[s.hook];
    if (hi < 0)
        return BL_OK;
    struct hook *k = &r->hk[hi];
    int64_t W = k->h->width;
    if ((int64_t)s.width != W)
        return bad_chunk(r, c, name, "row width differs from the header's");
    int64_t unit = r->unit_base[t] + s.prompt;
    struct unit *u = &r->u[unit];
    size_t es = s.dtype == BL_F32 ? 4 : 2;
    for (uint64_t i0 = 0; i0 < s.n; i0 += CONV_ROWS) {
        int64_t nr = s.n - i0 < CONV_ROWS ? (int64_t)(s.n - i0) : CONV_ROWS;
        bl_to_f32((int)s.dtype, (const unsigned char *)s.data + i0 * (uint64_t)W * es, r->conv, nr * W);
        if (k->g && (rc = bl_moments_add(&k->g[u->group], r->conv, nr)))
            return rc == BL_EINVAL ? bli_err(r->err, rc, "%s: chunk %" PRIu64 " (TENS) at offset %" PRIu64 ": %s holds a value that "
                                             "is not finite (prompt %" PRIu32 ")", name, c->index, c->offset, k->h->name, s.prompt)
                                   : oom(r);
        bl_rounding_add(&k->round, r->conv, nr * W);
        for (int64_t j = 0; j < nr; j++) {
            int64_t slot = -1;
            k->seen++;
            if (k->n_kept < k->cap) {
                if (!k->kept) {
                    /* the sample is allocated on the first row: hooks never
                     * seen cost nothing */
                    if (!(k->kept = bli_malloc_array((size_t)(k->cap * W), sizeof(float))) ||
                        !(k->kept_unit = bli_malloc_array((size_t)k->cap, sizeof(int32_t))) ||
                        !(k->kept_pos = bli_malloc_array((size_t)k->cap, sizeof(int32_t))))
                        return oom(r);
                }
                slot = k->n_kept++;
            } else if (k->cap > 0) {
                int64_t x = (int64_t)(gsl_rng_uniform(r->rng) * (double)k->seen);
                slot = x < k->cap ? x : -1;
            }
            if (slot >= 0) {
                memcpy(k->kept + slot * W, r->conv + j * W, (size_t)W * sizeof(float));
                k->kept_unit[slot] = (int32_t)unit;
                k->kept_pos[slot] = (int32_t)(s.pos0 + i0 + (uint64_t)j);
            }
        }
        k->rows += nr;
    }
    return BL_OK;
}

static int pass(struct rep *r, struct bl_trace_reader *const *rd)
{
    const struct bl_report_params *p = r->p;
    for (int t = 0; t < r->n_traces; t++) {
        const char *name = bl_trace_reader_name(rd[t]);
        struct bl_trace_chunk c;
        int rc;
        while ((rc = bl_trace_reader_next(rd[t], &c, r->err)) == 1) {
            rc = BL_OK;
            if (c.type == BL_CHUNK_STATS)
                rc = on_stats(r, t, &c, name);
            else if (c.type == BL_CHUNK_LENS && p->lens)
                rc = on_lens(r, t, &c, name);
            else if (c.type == BL_CHUNK_TENSOR && r->nh)
                rc = on_tensor(r, t, &c, name);
            else if (c.type == BL_CHUNK_DRAFTER)
                rc = on_drafter(r, t, &c, name);
            if (rc)
                return rc;
            r->chunks++;
            if (p->progress && (r->chunks & 15) == 0 &&
                p->progress(p->progress_user, "reading", (int64_t)bl_trace_reader_offset(rd[t]), 0))
                return bli_err(r->err, BL_ESTOPPED, "stopped");
        }
        if (rc < 0)
            return rc;
        if (!bl_trace_reader_complete(rd[t])) {
            r->out->complete = 0;
            note(r->out, "%s was cut short: read to its last whole chunk", name);
        }
    }
    if (r->out->n_positions == 0)
        return bli_err(r->err, BL_EFORMAT, "%s: no token statistics (STAT records) to report on", r->out->trace_name);
    return BL_OK;
}

/* ------------------------------------------------------------ estimates */

static struct bl_estimate point(double v)
{
    struct bl_estimate e = {v, NAN, NAN};
    return e;
}

/* The 2.5% and 97.5% quantiles of the finite replicate values; none
 * (NaN) if fewer than 90% of the replicates gave one. */
static void interval(struct bl_estimate *e, double *v, int64_t B)
{
    int64_t k = 0;
    for (int64_t i = 0; i < B; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    if (k == 0 || (double)k < 0.9 * (double)B)
        return;
    gsl_sort(v, 1, (size_t)k);
    e->lo = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.025);
    e->hi = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)k, 0.975);
}

static double plugin_entropy(const int64_t *count, int64_t V, int64_t n)
{
    double h = 0;
    for (int64_t v = 0; v < V; v++)
        if (count[v] > 0) {
            double q = (double)count[v] / (double)n;
            h -= q * log2(q);
        }
    return h;
}

/* Weighted combination of the group moments: W[g] copies of group g.
 * cov [d x d] (all of it), returns the rows counted (0: none). */
static double combine(const struct bl_moments *g, int64_t G, const unsigned *W, double *mean, double *cov)
{
    int64_t d = g[0].d;
    double n = 0;
    memset(mean, 0, (size_t)d * sizeof *mean);
    memset(cov, 0, (size_t)(d * d) * sizeof *cov);
    for (int64_t j = 0; j < G; j++)
        if (W[j] && g[j].n > 0) {
            n += W[j] * g[j].n;
            for (int64_t a = 0; a < d; a++)
                mean[a] += W[j] * g[j].n * g[j].mean[a];
        }
    if (n <= 0)
        return 0;
    for (int64_t a = 0; a < d; a++)
        mean[a] /= n;
    for (int64_t j = 0; j < G; j++) {
        if (!W[j] || g[j].n <= 0)
            continue;
        double w = W[j], wn = W[j] * g[j].n;
        for (int64_t a = 0; a < d; a++) {
            double da = g[j].mean[a] - mean[a];
            const double *m2 = g[j].m2 + a * d;
            double *c = cov + a * d;
            for (int64_t b = 0; b <= a; b++)
                c[b] += w * m2[b] + wn * da * (g[j].mean[b] - mean[b]);
        }
    }
    for (int64_t a = 0; a < d; a++)
        for (int64_t b = 0; b <= a; b++) {
            cov[a * d + b] /= n;
            cov[b * d + a] = cov[a * d + b];
        }
    return n;
}

struct boot {
    int64_t B;
    unsigned *W;                 /* [B x G] multiplicities */
    double *ment;                /* [B] mean token entropy */
};

static double boot_ment(const struct rep *r, const unsigned *W)
{
    double s = 0, n = 0;
    for (int64_t g = 0; g < r->G; g++) {
        s += W[g] * r->h_sum[g];
        n += W[g] * r->h_n[g];
    }
    return n > 0 ? s / n : NAN;
}

/* The drafter channel's figures for the group weights W (all 1: the
 * point estimates): per token k of a pass, entropy, bits per pass, top-1
 * and surprisal into v[k * 4 ..], the accepted length into v[4 (K+1)].
 * ment: the main model's mean entropy under the same weights. */
static void drafter_figures(const struct rep *r, const unsigned *W, double ment, double *v)
{
    int K = r->K;
    double cum = 0;
    for (int k = 0; k <= K; k++) {
        double s[DS] = {0};
        for (int64_t g = 0; g < r->G; g++) {
            const double *d = r->ds + (g * (K + 1) + k) * DS;
            double w = W ? W[g] : 1;
            for (int q = 0; q < DS; q++)
                s[q] += w * d[q];
        }
        double ent = k == 0 ? ment : s[DS_ENT_N] > 0 ? s[DS_ENT] / s[DS_ENT_N] : NAN;
        cum += ent;
        v[4 * k] = ent;
        v[4 * k + 1] = cum;
        v[4 * k + 2] = s[DS_KNOWN] > 0 ? s[DS_HIT] / s[DS_KNOWN] : NAN;
        v[4 * k + 3] = s[DS_KNOWN] > 0 ? s[DS_SURP] / s[DS_KNOWN] : NAN;
    }
    double a = 0, n = 0;
    for (int64_t g = 0; g < r->G; g++) {
        double w = W ? W[g] : 1;
        a += w * r->acc[2 * g];
        n += w * r->acc[2 * g + 1];
    }
    v[4 * (K + 1)] = n > 0 ? a / n : NAN;
}

static int drafter_estimates(struct rep *r, const struct boot *bt)
{
    struct bl_report *o = r->out;
    struct bl_report_drafter *dr = &o->drafter;
    const struct bl_trace_meta *m = &r->meta[0];
    int K = r->K;
    if (K == 0)
        return BL_OK;
    if (r->drft_rows == 0) {
        note(o, "the header names a drafter, but the trace holds no drafter rows (DRFT records)");
        return BL_OK;
    }
    int64_t nv = 4 * (K + 1) + 1;
    double *v = bli_malloc_array((size_t)nv, sizeof *v);
    double *vb = bt->B ? bli_malloc_array((size_t)(nv * bt->B), sizeof *vb) : NULL;
    if (!v || (bt->B && !vb) || !(dr->tok = bli_calloc((size_t)(K + 1), sizeof *dr->tok)) ||
        (m->drafter_path && !(dr->path = bli_strdup(m->drafter_path))) ||
        (m->drafter_sha256 && !(dr->sha256 = bli_strdup(m->drafter_sha256))) ||
        !(dr->kind = bli_strdup(m->drafter_kind)) || !(dr->hook = bli_strdup(m->drafter_hook))) {
        free(v);
        free(vb);
        return oom(r);
    }
    dr->n_heads = K;
    dr->n_positions = r->drft_rows;
    drafter_figures(r, NULL, o->mean_entropy.value, v);
    for (int64_t b = 0; b < bt->B; b++)
        drafter_figures(r, bt->W + b * r->G, bt->ment[b], vb + b * nv);
    /* the replicates of figure i, gathered */
    double *col = bt->B ? bli_malloc_array((size_t)bt->B, sizeof *col) : NULL;
    if (bt->B && !col) {
        free(v);
        free(vb);
        return oom(r);
    }
    for (int64_t i = 0; i < nv; i++) {
        struct bl_estimate *e;
        int k = (int)(i / 4);
        if (i == nv - 1)
            e = &dr->accept_len;
        else
            e = i % 4 == 0 ? &dr->tok[k].entropy : i % 4 == 1 ? &dr->tok[k].bits_per_pass
                : i % 4 == 2 ? &dr->tok[k].top1 : &dr->tok[k].surprisal;
        *e = point(v[i]);
        if (bt->B) {
            for (int64_t b = 0; b < bt->B; b++)
                col[b] = vb[b * nv + i];
            interval(e, col, bt->B);
        }
    }
    /* k = 1 is the token channel's own figure, interval included */
    dr->tok[0].entropy = dr->tok[0].bits_per_pass = o->mean_entropy;
    for (int k = 0; k <= K; k++) {
        double n = 0, known = 0;
        for (int64_t g = 0; g < r->G; g++) {
            const double *d = r->ds + (g * (K + 1) + k) * DS;
            n += d[DS_ENT_N];
            known += d[DS_KNOWN];
        }
        dr->tok[k].bound = (k + 1) * o->log2_vocab;
        dr->tok[k].n = k == 0 ? o->n_positions : (int64_t)n;
        dr->tok[k].n_known = (int64_t)known;
    }
    for (int64_t g = 0; g < r->G; g++)
        dr->accept_n += (int64_t)r->acc[2 * g + 1];
    free(col);
    free(v);
    free(vb);
    return BL_OK;
}

static int hook_spectrum(struct rep *r, struct hook *k, struct bl_report_hook *o, const struct boot *bt)
{
    const struct bl_report_params *p = r->p;
    int64_t d = k->h->width;
    struct bl_moments all;
    int rc = bl_moments_init(&all, d);
    if (rc)
        return bli_err(r->err, rc, "out of memory for the moments of %s", k->h->name);
    for (int64_t g = 0; g < r->G; g++)
        if ((rc = bl_moments_merge(&all, &k->g[g]))) {
            bl_moments_release(&all);
            return bli_err(r->err, rc, "moments of %s", k->h->name);
        }
    o->mean_square = bl_moments_mean_square(&all);
    o->noise_var = p->noise_var > 0 ? p->noise_var : bl_rounding_variance(&k->round);
    if (all.n < 2) {
        bl_moments_release(&all);
        return BL_OK;
    }
    rc = bl_spectrum_from_moments(&o->spec, &all, r->err);
    bl_moments_release(&all);
    if (rc)
        return rc;
    double ment = r->out->mean_entropy.value;
    o->participation = point(o->spec.participation);
    o->effective_rank = point(o->spec.effective_rank);
    o->capacity = point(bl_spectrum_capacity(&o->spec, o->noise_var));
    o->capacity_ratio = point(o->capacity.value / ment);

    /* compressibility of the kept rows at the same floor */
    if (k->n_kept > 0 && o->noise_var > 0) {
        struct bl_compress *c;
        if ((rc = bl_compress_alloc(&c, o->noise_var)))
            return bli_err(r->err, rc, "out of memory");
        rc = bl_compress_add(c, k->kept, k->n_kept * d);
        o->compress_bits = rc ? NAN : bl_compress_bits(c);
        bl_compress_free(c);
        if (rc)
            return bli_err(r->err, rc, "compressing the rows of %s", k->h->name);
    }

    if (!bt->B)
        return BL_OK;
    if ((double)bt->B * (double)d * (double)d * (double)d > BOOT_EIG_BUDGET) {
        note(r->out, "%s: no intervals on its spectrum (%" PRId64 " eigen-decompositions of %" PRId64 " x %" PRId64
             " are too many; lower --bootstrap)", k->h->name, bt->B, d, d);
        return BL_OK;
    }
    double *pr = bli_malloc_array((size_t)(4 * bt->B), sizeof(double));
    if (!pr)
        return oom(r);
    double *er = pr + bt->B, *cap = er + bt->B, *cr = cap + bt->B;
    int failed = 0;
#pragma omp parallel num_threads(bli_threads(p->n_threads)) reduction(| : failed)
    {
        double *mean = malloc((size_t)d * sizeof(double)), *cov = malloc((size_t)(d * d) * sizeof(double));
        double *ev = malloc((size_t)d * sizeof(double));
        gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc((size_t)d);
        gsl_vector *eval = gsl_vector_alloc((size_t)d);
        if (!mean || !cov || !ev || !ws || !eval)
            failed = 1;
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < bt->B; b++) {
            pr[b] = er[b] = cap[b] = cr[b] = NAN;
            if (failed)
                continue;
            if (combine(k->g, r->G, bt->W + b * r->G, mean, cov) < 2)
                continue;
            gsl_matrix_view mv = gsl_matrix_view_array(cov, (size_t)d, (size_t)d);
            if (gsl_eigen_symm(&mv.matrix, eval, ws) != GSL_SUCCESS)
                continue;
            for (int64_t i = 0; i < d; i++)
                ev[i] = gsl_vector_get(eval, (size_t)i);
            struct bl_spectrum s;
            if (bl_spectrum_from_eigenvalues(&s, ev, d)) {
                failed = 1;
                continue;
            }
            pr[b] = s.participation;
            er[b] = s.effective_rank;
            cap[b] = bl_spectrum_capacity(&s, o->noise_var);
            cr[b] = cap[b] / bt->ment[b];
            bl_spectrum_release(&s);
        }
        free(mean);
        free(cov);
        free(ev);
        if (ws)
            gsl_eigen_symm_free(ws);
        if (eval)
            gsl_vector_free(eval);
    }
    if (!failed) {
        interval(&o->participation, pr, bt->B);
        interval(&o->effective_rank, er, bt->B);
        interval(&o->capacity, cap, bt->B);
        interval(&o->capacity_ratio, cr, bt->B);
    }
    free(pr);
    return failed ? oom(r) : BL_OK;
}

/* Which units the probe holds out: a seeded choice of test_fraction of
 * them (at least one, at most all but one), and of the rest a tenth (at
 * least one when three or more remain) to stop its training early. */
static void choose_roles(struct rep *r)
{
    int64_t n = r->n_units;
    for (int64_t i = 0; i < n; i++)
        r->u[i].role = ROLE_TRAIN;
    if (n < 2)
        return;
    int64_t nt = (int64_t)llround(r->p->test_fraction * (double)n);
    if (nt < 1)
        nt = 1;
    if (nt > n - 1)
        nt = n - 1;
    int64_t nv = (int64_t)llround(0.1 * (double)(n - nt));
    if (nv < 1 && n - nt >= 3)
        nv = 1;
    int64_t *idx = bli_malloc_array((size_t)n, sizeof *idx);
    if (!idx) {   /* fall back to every fifth: still a split */
        for (int64_t i = 0; i < n; i++)
            r->u[i].role = i % 5 == 4 ? ROLE_TEST : ROLE_TRAIN;
        return;
    }
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (g) {
        gsl_rng_set(g, (unsigned long)(r->p->seed * 2654435761u + 17));
        gsl_ran_shuffle(g, idx, (size_t)n, sizeof *idx);
        gsl_rng_free(g);
    }
    for (int64_t i = 0; i < nt + nv; i++)
        r->u[idx[i]].role = i < nt ? ROLE_TEST : ROLE_VALID;
    free(idx);
}

/* The probe arrays of hook o, K of them, all NaN. */
static int probe_alloc(struct rep *r, struct bl_report_hook *o, int64_t K)
{
    if (!(o->probe_bits = bli_calloc((size_t)K, sizeof *o->probe_bits)) ||
        !(o->probe_ratio = bli_calloc((size_t)K, sizeof *o->probe_ratio)) ||
        !(o->probe_ce = bli_calloc((size_t)K, sizeof *o->probe_ce)) ||
        !(o->probe_ce_unigram = bli_calloc((size_t)K, sizeof *o->probe_ce_unigram)) ||
        !(o->probe_n_test = bli_calloc((size_t)K, sizeof *o->probe_n_test)) ||
        !(o->probe_fit = bli_calloc((size_t)K, sizeof *o->probe_fit)))
        return oom(r);
    o->k = (int)K;
    for (int64_t j = 0; j < K; j++) {
        o->probe_bits[j] = o->probe_ratio[j] = point(NAN);
        o->probe_ce[j] = o->probe_ce_unigram[j] = NAN;
        o->probe_fit[j].ce_train = o->probe_fit[j].ce_valid = NAN;
        o->probe_fit[j].logit_scale = o->probe_fit[j].logit_scale_start = NAN;
    }
    return BL_OK;
}

/* The role of each kept row of hook k (ROLE_*) into train [n_kept]. */
static void row_roles(const struct rep *r, const struct hook *k, unsigned char *train)
{
    for (int64_t i = 0; i < k->n_kept; i++) {
        const struct unit *u = &r->u[k->kept_unit[i]];
        if (r->n_units > 1) {
            train[i] = (unsigned char)u->role;
        } else {
            /* one prompt: the last test_fraction of its positions held
             * out, the tenth before them for validation */
            int64_t last = u->n_tok;
            while (last > 0 && u->tok[last - 1] < 0)
                last--;
            double at = (double)k->kept_pos[i] / (double)(last ? last : 1), tf = r->p->test_fraction;
            train[i] = at >= 1 - tf ? ROLE_TEST : at >= 1 - tf - 0.1 * (1 - tf) ? ROLE_VALID : ROLE_TRAIN;
        }
    }
}

/* Why a probe was not fitted */
enum { FIT_DONE, FIT_NO_ROWS, FIT_NO_TEST, FIT_NO_TRAIN };

/* One probe: hook k (its kept rows' roles in train), x_{t+j}, into o's
 * slot j - 1.  Runs on one thread; *why says what was missing. */
static int fit_one(const struct rep *r, const struct hook *k, const unsigned char *train, int64_t j,
                   struct bl_report_hook *o, const struct bl_probe_head *head, const struct boot *bt,
                   const struct bl_probe_params *pp, int *why, bl_err *err)
{
    int64_t n = k->n_kept;
    int rc = BL_OK;
    *why = FIT_DONE;
    if (n == 0) {
        *why = FIT_NO_ROWS;
        return BL_OK;
    }
    int32_t *y = bli_malloc_array((size_t)n, sizeof *y);
    int64_t *grp = bli_malloc_array((size_t)n, sizeof *grp);
    double *rep = bt->B ? bli_malloc_array((size_t)(2 * bt->B), sizeof(double)) : NULL;
    if (!y || !grp || (bt->B && !rep)) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    int64_t nt = 0, ntrain = 0;
    for (int64_t i = 0; i < n; i++) {
        y[i] = unit_target(&r->u[k->kept_unit[i]], (int64_t)k->kept_pos[i] + j);
        if (y[i] >= head->n_vocab)
            y[i] = -1;
        if (y[i] >= 0 && train[i] == ROLE_TEST)
            grp[nt++] = r->u[k->kept_unit[i]].group;
        ntrain += y[i] >= 0 && train[i] == ROLE_TRAIN;
    }
    if (nt == 0 || ntrain == 0) {
        *why = nt == 0 ? FIT_NO_TEST : FIT_NO_TRAIN;
        goto out;
    }
    struct bl_probe_result res = {0};
    if ((rc = bl_probe_fit(head, k->kept, k->h->width, y, train, n, pp, &res, err)))
        goto out;
    if (res.n_test != nt) {
        bl_probe_result_release(&res);
        rc = bli_err(err, BL_EINVAL, "probe of %s: %" PRId64 " held-out rows, expected %" PRId64, k->h->name,
                     res.n_test, nt);
        goto out;
    }
    o->probe_ce[j - 1] = res.ce_probe;
    o->probe_ce_unigram[j - 1] = res.ce_unigram;
    o->probe_n_test[j - 1] = nt;
    o->probe_fit[j - 1] = (struct bl_report_probe_fit){res.n_train, res.n_valid, res.epochs_run, res.best_epoch,
                                                       res.logit_scale_start, res.logit_scale, res.ce_train,
                                                       res.ce_valid};
    o->probe_bits[j - 1] = point(res.bits);
    o->probe_ratio[j - 1] = point(res.bits / r->out->mean_entropy.value);
    if (bt->B) {
        double *pb = rep, *pr = rep + bt->B;
        for (int64_t b = 0; b < bt->B; b++) {
            const unsigned *W = bt->W + b * r->G;
            double sw = 0, w = 0;
            for (int64_t i = 0; i < nt; i++) {
                sw += W[grp[i]] * res.per_position[i];
                w += W[grp[i]];
            }
            pb[b] = w > 0 ? sw / w : NAN;
            pr[b] = pb[b] / bt->ment[b];
        }
        interval(&o->probe_bits[j - 1], pb, bt->B);
        interval(&o->probe_ratio[j - 1], pr, bt->B);
    }
    bl_probe_result_release(&res);
out:
    free(y);
    free(grp);
    free(rep);
    return rc;
}

/* Every probe, hooks x k: the fits are independent, so they are shared
 * among the threads whole (each on one thread: no barrier inside a fit,
 * which keeps busy machines from stalling on spinning threads), and each
 * gives the same bits whatever thread runs it.  The first failure in
 * (hook, k) order is the one reported; notes are written in that order. */
static int all_probes(struct rep *r, const struct bl_probe_head *head, const struct boot *bt)
{
    const struct bl_report_params *p = r->p;
    int64_t K = p->k, T = r->nh * K;
    int rc = BL_OK;
    for (int64_t i = 0; i < r->nh && !rc; i++)
        rc = probe_alloc(r, &r->out->hooks[i], K);
    if (rc)
        return rc;
    unsigned char **train = bli_calloc((size_t)r->nh, sizeof *train);
    int *frc = bli_calloc((size_t)T, sizeof *frc), *why = bli_calloc((size_t)T, sizeof *why);
    bl_err *ferr = bli_calloc((size_t)T, sizeof *ferr);
    if (!train || !frc || !why || !ferr)
        rc = oom(r);
    for (int64_t i = 0; i < r->nh && !rc; i++) {
        const struct hook *k = &r->hk[i];
        if (!(train[i] = bli_malloc_array((size_t)(k->n_kept ? k->n_kept : 1), 1)))
            rc = oom(r);
        else
            row_roles(r, k, train[i]);
    }
    if (rc)
        goto out;
    struct bl_probe_params pp = p->probe;
    pp.n_threads = 1;
    int nth = bli_threads(p->probe.n_threads);
    if (nth > T)
        nth = (int)T;
    int64_t done = 0;
    int stop = 0;
#pragma omp parallel for num_threads(nth) schedule(dynamic, 1) if (nth > 1)
    for (int64_t t = 0; t < T; t++) {
        int s;
#pragma omp atomic read
        s = stop;
        if (s) {
            frc[t] = BL_ESTOPPED;
            continue;
        }
        int64_t i = t / K, j = t % K + 1;
        frc[t] = fit_one(r, &r->hk[i], train[i], j, &r->out->hooks[i], head, bt, &pp, &why[t], &ferr[t]);
#pragma omp critical(bl_report_progress)
        {
            done++;
            if (p->progress && p->progress(p->progress_user, "probe", done, T)) {
#pragma omp atomic write
                stop = 1;
            }
        }
    }
    for (int64_t t = 0; t < T && !rc; t++) {
        const char *name = r->hk[t / K].h->name;
        if (frc[t] == BL_ESTOPPED && !ferr[t].msg[0])
            rc = bli_err(r->err, BL_ESTOPPED, "stopped");
        else if (frc[t]) {
            rc = frc[t];
            if (r->err)
                *r->err = ferr[t];
        } else if (t % K == 0 && why[t] == FIT_NO_ROWS)
            note(r->out, "%s: no probe: no rows kept (max_rows %" PRId64 ")", name, p->max_rows);
        else if (t % K == 0 && why[t] != FIT_DONE)
            note(r->out, "%s: no probe: %s", name, why[t] == FIT_NO_TEST ? "no held-out rows" : "no training rows");
    }
out:
    if (train)
        for (int64_t i = 0; i < r->nh; i++)
            free(train[i]);
    free(train);
    free(frc);
    free(why);
    free(ferr);
    return rc;
}

static int estimates(struct rep *r)
{
    const struct bl_report_params *p = r->p;
    struct bl_report *o = r->out;
    struct boot bt = {0};
    struct bl_probe_head head;
    float *head_buf = NULL;
    double *tmp = NULL;
    int rc = BL_OK;

    /* the token channel */
    if (series_percentiles(&r->ent, &o->entropy) || series_percentiles(&r->ent_t, &o->entropy_t) ||
        series_percentiles(&r->surp, &o->surprisal))
        return oom(r);
    if (r->ent.seen > r->ent.n)
        note(o, "percentiles from a uniform sample of %" PRId64 " of the %" PRId64 " positions", r->ent.n, r->ent.seen);
    double hs = 0, hn = 0;
    for (int64_t g = 0; g < r->G; g++) {
        hs += r->h_sum[g];
        hn += r->h_n[g];
    }
    o->mean_entropy = point(hn > 0 ? hs / hn : NAN);
    o->h_unigram_next = r->n_next ? plugin_entropy(r->unigram, r->V, r->n_next) : NAN;

    /* the bootstrap draws, all made before any estimate */
    int B = p->bootstrap > 0 ? p->bootstrap : 0;
    if (B && r->G < 2) {
        note(o, "no intervals: the bootstrap needs at least two prompts");
        B = 0;
    }
    if (B) {
        bt.B = B;
        if (!(bt.W = bli_malloc_array((size_t)(B * r->G), sizeof(unsigned))) ||
            !(bt.ment = bli_malloc_array((size_t)B, sizeof(double))) ||
            !(tmp = bli_malloc_array((size_t)(2 * B), sizeof(double)))) {
            rc = oom(r);
            goto out;
        }
        gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
        double *pu = bli_malloc_array((size_t)r->G, sizeof(double));
        if (!g || !pu) {
            if (g)
                gsl_rng_free(g);
            free(pu);
            rc = oom(r);
            goto out;
        }
        gsl_rng_set(g, (unsigned long)(p->seed ^ 0x9e3779b97f4a7c15ull));
        for (int64_t i = 0; i < r->G; i++)
            pu[i] = 1;
        for (int64_t b = 0; b < B; b++) {
            gsl_ran_multinomial(g, (size_t)r->G, (unsigned)r->G, pu, bt.W + b * r->G);
            bt.ment[b] = boot_ment(r, bt.W + b * r->G);
        }
        gsl_rng_free(g);
        free(pu);
        memcpy(tmp, bt.ment, (size_t)B * sizeof(double));
        interval(&o->mean_entropy, tmp, B);
        o->bootstrap = B;
    }

    if ((rc = drafter_estimates(r, &bt)))
        goto out;

    /* the logit lens */
    if (o->has_lens) {
        if (!(o->lens = bli_calloc((size_t)r->L, sizeof *o->lens))) {
            rc = oom(r);
            goto out;
        }
        for (int64_t l = 0; l < r->L; l++) {
            struct bl_report_lens_layer *ll = &o->lens[l];
            if (series_percentiles(&r->lens[3 * l], &ll->entropy) ||
                series_percentiles(&r->lens[3 * l + 1], &ll->cross_entropy) ||
                series_percentiles(&r->lens[3 * l + 2], &ll->kl)) {
                rc = oom(r);
                goto out;
            }
            double s = 0, n = 0;
            for (int64_t g = 0; g < r->G; g++) {
                s += r->ce_sum[g * r->L + l];
                n += r->ce_n[g * r->L + l];
            }
            ll->mean_ce = n > 0 ? s / n : NAN;
            ll->bits = point(o->h_unigram_next - ll->mean_ce);
            ll->ratio = point(ll->bits.value / o->mean_entropy.value);
            if (B) {
                double *vb = tmp, *vr = tmp + B;
                for (int64_t b = 0; b < B; b++) {
                    const unsigned *W = bt.W + b * r->G;
                    double sb = 0, nb = 0;
                    for (int64_t g = 0; g < r->G; g++) {
                        sb += W[g] * r->ce_sum[g * r->L + l];
                        nb += W[g] * r->ce_n[g * r->L + l];
                    }
                    vb[b] = nb > 0 ? o->h_unigram_next - sb / nb : NAN;
                    vr[b] = vb[b] / bt.ment[b];
                }
                interval(&ll->bits, vb, B);
                interval(&ll->ratio, vr, B);
            }
        }
    }

    /* the hooks */
    if (!(o->hooks = bli_calloc((size_t)(r->nh ? r->nh : 1), sizeof *o->hooks))) {
        rc = oom(r);
        goto out;
    }
    o->n_hooks = r->nh;
    for (int64_t i = 0; i < r->nh; i++) {
        struct hook *k = &r->hk[i];
        struct bl_report_hook *oh = &o->hooks[i];
        if (!(oh->name = bli_strdup(k->h->name))) {
            rc = oom(r);
            goto out;
        }
        oh->kind = k->h->kind;
        oh->layer = k->h->layer;
        oh->width = k->h->width;
        oh->rows = k->rows;
        oh->kept = k->n_kept;
        oh->mean_square = oh->noise_var = oh->compress_bits = NAN;
        oh->participation = oh->effective_rank = oh->capacity = oh->capacity_ratio = point(NAN);
        oh->lens_bits = oh->lens_ratio = point(NAN);
        if (o->has_lens && oh->kind == BL_HOOK_RESID_POST && oh->layer >= 0 && oh->layer < r->L) {
            oh->lens_bits = o->lens[oh->layer].bits;
            oh->lens_ratio = o->lens[oh->layer].ratio;
        }
        if (k->seen > k->n_kept)
            note(o, "%s: probe and compressibility on a uniform sample of %" PRId64 " of its %" PRId64 " rows",
                 oh->name, k->n_kept, k->seen);
        if (p->spectrum) {
            if (p->progress && p->progress(p->progress_user, "spectrum", i, r->nh)) {
                rc = bli_err(r->err, BL_ESTOPPED, "stopped");
                goto out;
            }
            if ((rc = hook_spectrum(r, k, oh, &bt)))
                goto out;
        }
    }

    /* the probes */
    if (p->k > 0 && p->model && r->nh) {
        const struct bl_model_config *mc = bl_model_config(p->model);
        if (mc->dim != r->meta[0].dim || mc->n_layers != r->L) {
            rc = bli_err(r->err, BL_EMISMATCH, "%s has dim %" PRId64 " and %" PRId64 " layers; the trace was recorded "
                           "from dim %" PRId64 " and %" PRId64 " layers", bl_model_path(p->model), mc->dim, mc->n_layers,
                           r->meta[0].dim, r->L);
            goto out;
        }
        if ((rc = bl_probe_head_from_model(&head, p->model, r->V, &head_buf, r->err)))
            goto out;
        choose_roles(r);
        rc = all_probes(r, &head, &bt);
    } else if (p->k > 0 && r->nh) {
        note(o, "no probe: no model to take the final norm and unembedding from");
    }
out:
    free(bt.W);
    free(bt.ment);
    free(tmp);
    free(head_buf);
    return rc;
}

/* ------------------------------------------------------------ entry */

static void rep_free(struct rep *r)
{
    if (r->meta)
        for (int i = 0; i < r->n_traces; i++)
            bl_trace_meta_release(&r->meta[i]);
    free(r->meta);
    free(r->unit_base);
    if (r->u)
        for (int64_t i = 0; i < r->n_units; i++)
            free(r->u[i].tok);
    free(r->u);
    free(r->h_sum);
    free(r->h_n);
    free(r->ce_sum);
    free(r->ce_n);
    free(r->unigram);
    free(r->ent.v);
    free(r->ent_t.v);
    free(r->surp.v);
    if (r->lens)
        for (int64_t i = 0; i < 3 * r->L; i++)
            free(r->lens[i].v);
    free(r->lens);
    if (r->hk)
        for (int64_t i = 0; i < r->nh; i++) {
            struct hook *k = &r->hk[i];
            if (k->g)
                for (int64_t g = 0; g < r->G; g++)
                    bl_moments_release(&k->g[g]);
            free(k->g);
            free(k->kept);
            free(k->kept_unit);
            free(k->kept_pos);
        }
    free(r->hk);
    free(r->hook_of);
    free(r->conv);
    free(r->ds);
    free(r->acc);
    if (r->rng)
        gsl_rng_free(r->rng);
}

int bl_report_compute(struct bl_trace_reader *const *rd, int n, const struct bl_report_params *params,
                      struct bl_report *out, bl_err *err)
{
    struct bl_report_params p = params ? *params : bl_report_default_params();
    struct rep r = {0};
    memset(out, 0, sizeof *out);
    if (n < 1 || !rd)
        return bli_err(err, BL_EINVAL, "no trace to report on");
    if (p.k < 0 || p.k > 64)
        return bli_err(err, BL_EINVAL, "k = %d: the probe looks 1 to 64 tokens ahead", p.k);
    if (p.bootstrap < 0 || p.bootstrap > 100000)
        return bli_err(err, BL_EINVAL, "%d bootstrap resamples: 0 to 100000", p.bootstrap);
    if (!(p.test_fraction > 0 && p.test_fraction < 1))
        return bli_err(err, BL_EINVAL, "test fraction %g is not in (0, 1)", p.test_fraction);
    if (p.noise_var < 0 || !isfinite(p.noise_var))
        return bli_err(err, BL_EINVAL, "noise variance %g is not a finite number >= 0", p.noise_var);
    if (p.probe.n_threads == 0)
        p.probe.n_threads = p.n_threads;
    r.p = &p;
    r.out = out;
    r.err = err;
    r.n_traces = n;
    int rc = setup(&r, rd);
    if (!rc)
        rc = pass(&r, rd);
    if (!rc)
        rc = estimates(&r);
    rep_free(&r);
    if (rc)
        bl_report_release(out);
    return rc;
}

void bl_report_release(struct bl_report *o)
{
    if (!o)
        return;
    free(o->trace_name);
    free(o->model_name);
    free(o->model_path);
    free(o->model_sha256);
    free(o->lens);
    if (o->hooks)
        for (int64_t i = 0; i < o->n_hooks; i++) {
            struct bl_report_hook *h = &o->hooks[i];
            free(h->name);
            bl_spectrum_release(&h->spec);
            free(h->probe_bits);
            free(h->probe_ratio);
            free(h->probe_ce);
            free(h->probe_ce_unigram);
            free(h->probe_n_test);
            free(h->probe_fit);
        }
    free(o->hooks);
    free(o->drafter.path);
    free(o->drafter.sha256);
    free(o->drafter.kind);
    free(o->drafter.hook);
    free(o->drafter.tok);
    memset(o, 0, sizeof *o);
}
