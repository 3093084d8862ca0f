/* probes/drafter.c: a drafter's heads at every evaluated position (DRFT
 * records, bitlens/record.h), and its tensors through the tensor probe.
 *
 * The probe copies the rows of the drafter's hook (ln_final.hook_normalized
 * by default) as the model evaluates them; after the evaluation the
 * drafter runs on them, in blocks of BLOCK rows shared among the threads
 * (the blocks depend on the batch, never on the thread count, so the bits
 * do not either).  For head j at position t (j = 1..K):
 *
 *   token      argmax of its logits z over the first n_tokens (ties: the
 *              lower id)
 *   entropy    H(q) = log Z - E_q[z - m] in bits, q = softmax(z),
 *              m = max z, Z = sum exp(z - m) (exp in float, sums in double)
 *   surprisal  (m + log Z - z[x]) / ln 2 bits, x = x_{t+1+j}
 *   rank       the number of tokens scored above x (ties: lower ids first)
 *
 * x_{t+1+j} may not be known yet when t is drafted from (a token sampled
 * later): the head's logits then wait in a ring of K+1 positions x K heads
 * until it is (bli_drafter_probe_known) or the prompt ends (unknown: NaN,
 * -1).  A position drafted from has its x_{t+1} known, and x_{t+1+K} is
 * known before position t+K+1 is drafted from, so K+1 positions suffice.
 * DRFT rows wait in a buffer until none of their heads waits, and go out
 * as a record when about 256 KiB has gathered or the prompt ends.
 *
 * An EAGLE-style drafter (lib/drafter_eagle.h) drafts from a history, not
 * from one row: at position t its window is the prompt's positions
 * w0 = max(0, t - 15) .. t (BLI_EAGLE_WINDOW of them), step i the feature
 * at w0 + i and the token after it, x_{w0+i+1}, at RoPE position w0 + i
 * (as training places a window at its offset in the sequence).  It then
 * drafts K tokens autoregressively (bli_eagle_draft_full, argmax over the
 * first n_tokens); head j's logits and hidden state are those of drafting
 * step j, which predict x_{t+1+j}, so the statistics above apply as they
 * are.  The feature rows of the last 15 positions before a batch are kept
 * in front of it.  x_{t+1} is known at t except at the last position of a
 * prompt recorded without generation: there the window's last token is
 * the model's own argmax at t over the first n_tokens (the token a greedy
 * verification would accept).  Positions are drafted from in parallel,
 * one workspace per thread; each position's result depends only on its
 * window, so the bits do not depend on the thread count. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "drafter_eagle.h"
#include "drafter_internal.h"
#include "internal.h"
#include "probes.h"

#define FLUSH_BYTES (1u << 18)   /* a record of about 256 KiB */
#define BLOCK 16                    /* rows per drafter evaluation */
#define LOGIT_BUDGET ((int64_t)1 << 22)   /* floats of logits held at once */
#define PARALLEL_WORK ((int64_t)1 << 16)  /* logits: fewer are done on one thread */
#define ROW(K) ((size_t)BL_REC_DRAFTER_HEAD_BYTES * (size_t)(K))

struct bli_drafter_probe {
    const bl_drafter *d;
    int K;
    int64_t D, V, Vt, nb;
    int n_threads;
    float *fbuf;          /* [(W1 + nb) x D] the hook rows: W1 kept before the batch, then the batch's */
    float *feat;          /* fbuf + W1 x D: the row of position lo */
    int64_t W1;           /* rows kept before the batch: BLI_EAGLE_WINDOW - 1 (EAGLE), 0 */
    int64_t f_lo;         /* the first position whose row is held, -1: none yet */
    int64_t lo, n_cap;    /* the batch: positions lo .. lo+n_cap-1 */
    struct bli_eagle_ws *ews;   /* EAGLE: [n_threads] workspaces of BLI_EAGLE_WINDOW + K - 1 steps */
    int32_t *ey;          /* EAGLE: [n_threads x BLI_EAGLE_WINDOW] a window's tokens */
    int64_t m;            /* rows drafted at once, a multiple of BLOCK (or nb) */
    float *logits;        /* [m x K x V] */
    float *hidden;        /* [m x K x D], NULL when no hidden state is stored */
    char (*names)[48];    /* [2K] */
    struct bli_extra_point *pts;   /* [2K] */
    struct bli_tensor_probe *tp;
    int64_t *pt;          /* [2K]: the tensor probe's point, or -1 */
    bl_trace_writer *w;
    uint32_t prompt;
    const int32_t *seq;   /* the tokens known: seq[0 .. *n_seq) */
    const int64_t *n_seq;
    unsigned char *buf;   /* DRFT header + rows of positions buf_pos0 .. */
    size_t used, cap;
    uint64_t buf_pos0, buf_n;
    float *ring;          /* [(K+1) x K x V] logits of the heads waiting */
    double *ring_lse;     /* [(K+1) x K] */
    int64_t *ring_t;      /* [K+1] the position of each slot, -1: none */
    unsigned char *pend;  /* [(K+1) x K] */
    int64_t rows;
};

static int capture(const struct bl_hook_event *ev, void *user)
{
    struct bli_drafter_probe *p = user;
    for (int64_t i = 0; i < ev->n_pos; i++) {
        int64_t r = ev->pos0 + i - p->lo;
        if (r >= 0 && r < p->n_cap)
            memcpy(p->feat + r * p->D, ev->data + i * ev->width, (size_t)p->D * sizeof(float));
    }
    return 0;
}

int bli_drafter_probe_alloc(struct bli_drafter_probe **out, bl_ctx *ctx, const bl_drafter *d, int64_t n_batch,
                            int64_t n_tokens, int n_threads, bl_err *err)
{
    const struct bl_drafter_config *c = bl_drafter_config(d);
    const struct bl_model_config *mc = bl_model_config(bl_ctx_model(ctx));
    *out = NULL;
    if (c->d != mc->dim || c->n_vocab != mc->n_vocab)
        return bli_err(err, BL_EINVAL, "a drafter of width %" PRId64 " and %" PRId64 " tokens for a model of dim %"
                       PRId64 " and %" PRId64 " tokens", c->d, c->n_vocab, mc->dim, mc->n_vocab);
    int64_t hi = -1;
    for (int64_t i = 0; i < bl_ctx_n_hooks(ctx) && hi < 0; i++)
        if (strcmp(bl_ctx_hook_name(ctx, i), c->hook) == 0)
            hi = i;
    if (hi < 0)
        return bli_err(err, BL_EINVAL, "the drafter reads hook '%s', which the model has not", c->hook);
    if (bl_ctx_hook_width(ctx, hi) != c->d)
        return bli_err(err, BL_EINVAL, "hook '%s' has width %" PRId64 ", the drafter reads %" PRId64, c->hook,
                       bl_ctx_hook_width(ctx, hi), c->d);
    struct bli_drafter_probe *p = calloc(1, sizeof *p);
    if (!p)
        return bli_err(err, BL_ENOMEM, "out of memory");
    int K = c->n_heads;
    p->d = d;
    p->K = K;
    p->D = c->d;
    p->V = c->n_vocab;
    p->Vt = n_tokens > 0 && n_tokens < p->V ? n_tokens : p->V;
    p->nb = n_batch;
    p->n_threads = bli_threads(n_threads);
    int64_t m = LOGIT_BUDGET / ((int64_t)K * p->V);
    m = m < BLOCK ? BLOCK : m / BLOCK * BLOCK;
    p->m = m < n_batch ? m : n_batch;
    p->W1 = d->eagle ? BLI_EAGLE_WINDOW - 1 : 0;
    p->f_lo = -1;
    p->fbuf = bli_malloc_array((size_t)((p->W1 + n_batch) * p->D), sizeof(float));
    p->feat = p->fbuf ? p->fbuf + p->W1 * p->D : NULL;
    p->logits = bli_malloc_array((size_t)(p->m * K * p->V), sizeof(float));
    p->names = bli_calloc((size_t)(2 * K), sizeof *p->names);
    p->pts = bli_calloc((size_t)(2 * K), sizeof *p->pts);
    p->pt = bli_malloc_array((size_t)(2 * K), sizeof *p->pt);
    p->ring = bli_malloc_array((size_t)((K + 1) * K) * (size_t)p->V, sizeof(float));
    p->ring_lse = bli_calloc((size_t)((K + 1) * K), sizeof(double));
    p->ring_t = bli_malloc_array((size_t)(K + 1), sizeof(int64_t));
    p->pend = bli_calloc((size_t)((K + 1) * K), 1);
    p->cap = 24 + (size_t)n_batch * ROW(K) + FLUSH_BYTES;
    p->buf = malloc(p->cap);
    if (d->eagle) {
        p->ews = bli_calloc((size_t)p->n_threads, sizeof *p->ews);
        p->ey = bli_malloc_array((size_t)p->n_threads * BLI_EAGLE_WINDOW, sizeof(int32_t));
    }
    if (!p->fbuf || !p->logits || !p->names || !p->pts || !p->pt || !p->ring || !p->ring_lse || !p->ring_t ||
        !p->pend || !p->buf || (d->eagle && (!p->ews || !p->ey))) {
        bli_drafter_probe_free(p);
        return bli_err(err, BL_ENOMEM, "out of memory for a drafter of %d heads over %" PRId64 " tokens", K, p->V);
    }
    for (int i = 0; d->eagle && i < p->n_threads; i++) {
        int rc = bli_eagle_ws_init(&p->ews[i], d->eagle, BLI_EAGLE_WINDOW + K - 1, err);
        if (rc) {
            bli_drafter_probe_free(p);
            return rc;
        }
    }
    for (int j = 0; j < K; j++) {
        snprintf(p->names[2 * j], sizeof p->names[0], "drafter.heads.%d.hook_hidden", j + 1);
        snprintf(p->names[2 * j + 1], sizeof p->names[0], "drafter.heads.%d.hook_logits", j + 1);
        p->pts[2 * j] = (struct bli_extra_point){p->names[2 * j], BL_TRACE_HOOK_DRAFTER_HIDDEN, -1, j + 1, p->D};
        p->pts[2 * j + 1] = (struct bli_extra_point){p->names[2 * j + 1], BL_TRACE_HOOK_DRAFTER_LOGITS, -1, j + 1, p->V};
    }
    for (int i = 0; i < 2 * K; i++)
        p->pt[i] = -1;
    for (int i = 0; i <= K; i++)
        p->ring_t[i] = -1;
    p->used = 24;
    if (bl_ctx_add_hook_at(ctx, hi, capture, p)) {
        bli_drafter_probe_free(p);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    *out = p;
    return BL_OK;
}

const struct bli_extra_point *bli_drafter_probe_points(const struct bli_drafter_probe *p, int64_t *n)
{
    *n = 2 * p->K;
    return p->pts;
}

int bli_drafter_probe_outputs(struct bli_drafter_probe *p, struct bli_tensor_probe *tp, bl_trace_writer *w,
                              bl_err *err)
{
    int any_hidden = 0;
    p->tp = tp;
    p->w = w;
    for (int i = 0; i < 2 * p->K; i++) {
        p->pt[i] = tp ? bli_tensor_probe_extra(tp, i) : -1;
        any_hidden |= i % 2 == 0 && p->pt[i] >= 0;
    }
    if (any_hidden && !p->hidden && !(p->hidden = bli_malloc_array((size_t)(p->m * p->K * p->D), sizeof(float))))
        return bli_err(err, BL_ENOMEM, "out of memory");
    return BL_OK;
}

void bli_drafter_probe_prompt(struct bli_drafter_probe *p, uint32_t prompt, const int32_t *seq, const int64_t *n_seq)
{
    p->prompt = prompt;
    p->seq = seq;
    p->n_seq = n_seq;
    p->used = 24;
    p->buf_n = 0;
    for (int i = 0; i <= p->K; i++)
        p->ring_t[i] = -1;
    memset(p->pend, 0, (size_t)((p->K + 1) * p->K));
    p->f_lo = -1;
}

void bli_drafter_probe_batch(struct bli_drafter_probe *p, int64_t pos0, int64_t n)
{
    BL_ASSERT(n >= 0 && n <= p->nb);
    if (p->W1 > 0 && p->f_lo >= 0 && pos0 == p->lo + p->n_cap) {
        /* keep the rows of the W1 positions before pos0 (those held) */
        int64_t keep = pos0 - p->f_lo < p->W1 ? pos0 - p->f_lo : p->W1;
        memmove(p->feat - keep * p->D, p->feat + (pos0 - keep - p->lo) * p->D, (size_t)(keep * p->D) * sizeof(float));
        p->f_lo = pos0 - keep;
    } else {
        p->f_lo = pos0;
    }
    p->lo = pos0;
    p->n_cap = n;
}

/* token, entropy (bits) and log Z of the logits z over the first Vt */
static void head_stats(const float *z, int64_t Vt, int32_t *tok, float *ent, double *lse)
{
    int64_t am = 0;
    float m = z[0];
    for (int64_t v = 1; v < Vt; v++)
        if (z[v] > m) {
            m = z[v];
            am = v;
        }
    double s = 0, e = 0;
    for (int64_t v = 0; v < Vt; v++) {
        float x = z[v] - m, q = expf(x);
        s += q;
        e += (double)q * x;
    }
    double h = (log(s) - e / s) / M_LN2;
    *tok = (int32_t)am;
    *ent = h < 0 ? 0.0f : (float)h;
    *lse = m + log(s);
}

/* surprisal (bits) and 0-based rank of token x */
static void target_stats(const float *z, int64_t Vt, double lse, int32_t x, float *surp, int32_t *rank)
{
    if (x < 0 || x >= Vt) {
        *surp = NAN;
        *rank = -1;
        return;
    }
    float zx = z[x];
    int32_t r = 0;
    for (int64_t v = 0; v < Vt; v++)
        r += z[v] > zx || (z[v] == zx && v < x);
    *surp = (float)((lse - zx) / M_LN2);
    *rank = r;
}

/* the bytes of head j (0-based) of position t's row */
static unsigned char *cell(struct bli_drafter_probe *p, int64_t t, int j)
{
    return p->buf + 24 + (size_t)(t - (int64_t)p->buf_pos0) * ROW(p->K) + (size_t)j * BL_REC_DRAFTER_HEAD_BYTES;
}

/* write rows [buf_pos0, buf_pos0 + n) as a record, keep the rest */
static int write_rows(struct bli_drafter_probe *p, uint64_t n, bl_err *err)
{
    if (n == 0)
        return BL_OK;
    size_t bytes = (size_t)n * ROW(p->K);
    bli_wr_u32(p->buf, p->prompt);
    bli_wr_u32(p->buf + 4, (uint32_t)p->K);
    bli_wr_u64(p->buf + 8, p->buf_pos0);
    bli_wr_u64(p->buf + 16, n);
    int rc = p->w ? bl_trace_writer_put(p->w, BL_CHUNK_DRAFTER, p->buf, 24 + bytes, 0, 0, err) : BL_OK;
    memmove(p->buf + 24, p->buf + 24 + bytes, p->used - 24 - bytes);
    p->used -= bytes;
    p->buf_pos0 += n;
    p->buf_n -= n;
    return rc;
}

void bli_drafter_probe_known(struct bli_drafter_probe *p)
{
    int K = p->K;
    int64_t known = p->n_seq ? *p->n_seq : 0;
    for (int s = 0; s <= K; s++) {
        int64_t t = p->ring_t[s];
        if (t < 0)
            continue;
        for (int j = 0; j < K; j++) {
            int64_t q = t + 2 + j;   /* head j+1 drafts x_{t+1+(j+1)} */
            if (!p->pend[s * K + j] || q >= known)
                continue;
            float surp;
            int32_t rank;
            target_stats(p->ring + ((size_t)s * K + j) * (size_t)p->V, p->Vt, p->ring_lse[s * K + j], p->seq[q],
                         &surp, &rank);
            unsigned char *c = cell(p, t, j);
            bli_wr_f32(c + 8, surp);
            bli_wr_u32(c + 12, (uint32_t)rank);
            p->pend[s * K + j] = 0;
        }
    }
}

/* EAGLE: draft from position t (row r of p->logits and p->hidden) with
 * workspace slot `slot`; model_logits: the model's logits at t, for its
 * argmax when x_{t+1} is not known */
static int eagle_position(struct bli_drafter_probe *p, int slot, int64_t t, int64_t r, const float *model_logits,
                          bl_err *err)
{
    int64_t w0 = t - (BLI_EAGLE_WINDOW - 1) > p->f_lo ? t - (BLI_EAGLE_WINDOW - 1) : p->f_lo, T = t - w0 + 1;
    int64_t known = p->n_seq ? *p->n_seq : 0;
    int32_t *y = p->ey + (size_t)slot * BLI_EAGLE_WINDOW;
    for (int64_t i = 0; i < T; i++) {
        int64_t q = w0 + i + 1;
        if (q < known) {
            y[i] = p->seq[q];
        } else {   /* only the last: positions are drafted from in order of the tokens */
            BL_ASSERT(q == t + 1 && model_logits);
            int64_t am = 0;
            for (int64_t v = 1; v < p->Vt; v++)
                if (model_logits[v] > model_logits[am])
                    am = v;
            y[i] = (int32_t)am;
        }
    }
    int K = p->K;
    return bli_eagle_draft_full(p->d->eagle, &p->ews[slot], p->feat + (w0 - p->lo) * p->D, y, T, w0, K, p->Vt, NULL,
                                p->logits + r * K * p->V, p->hidden ? p->hidden + r * K * p->D : NULL, err);
}

int bli_drafter_probe_rows(struct bli_drafter_probe *p, int64_t pos0, int64_t n, const float *model_logits,
                           bl_err *err)
{
    int K = p->K;
    int64_t V = p->V, D = p->D;
    BL_ASSERT(pos0 >= p->lo && pos0 + n <= p->lo + p->n_cap);
    if (p->buf_n == 0)
        p->buf_pos0 = (uint64_t)pos0;
    BL_ASSERT((uint64_t)pos0 == p->buf_pos0 + p->buf_n);
    for (int64_t i0 = 0; i0 < n; i0 += p->m) {
        int64_t mm = n - i0 < p->m ? n - i0 : p->m, nblk = (mm + BLOCK - 1) / BLOCK;
        const float *x = p->feat + (pos0 + i0 - p->lo) * D;
        int failed = 0, nt;
        bl_err berr = {0};
        if (p->d->eagle) {   /* EAGLE: position by position, each from its window */
            nt = mm < p->n_threads ? (int)mm : p->n_threads;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
            for (int64_t r = 0; r < mm; r++) {
                int slot = 0;
#ifdef _OPENMP
                slot = omp_get_thread_num();
#endif
                int64_t t = pos0 + i0 + r;
                bl_err e;
                if (eagle_position(p, slot, t, r, model_logits ? model_logits + (t - pos0) * V : NULL, &e)) {
#pragma omp critical(bli_drafter_probe_err)
                    if (!failed) {
                        failed = 1;
                        berr = e;
                    }
                }
            }
        } else {   /* Medusa: block by block */
            nt = nblk < p->n_threads ? (int)nblk : p->n_threads;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
            for (int64_t b = 0; b < nblk; b++) {
                int64_t r0 = b * BLOCK, nr = mm - r0 < BLOCK ? mm - r0 : BLOCK;
                bl_err e;
                if (bl_drafter_eval(p->d, x + r0 * D, nr, p->logits + r0 * K * V, NULL,
                                    p->hidden ? p->hidden + r0 * K * D : NULL, &e)) {
#pragma omp critical(bli_drafter_probe_err)
                    if (!failed) {
                        failed = 1;
                        berr = e;
                    }
                }
            }
        }
        if (failed)
            return bli_err(err, berr.code, "%s", berr.msg);
        /* the tensors */
        for (int j = 0; j < K && p->tp; j++) {
            int rc;
            if (p->pt[2 * j] >= 0 && (rc = bli_tensor_probe_put(p->tp, p->pt[2 * j], p->names[2 * j], pos0 + i0, mm, D,
                                                                 p->hidden + (int64_t)j * D, K * D, err)))
                return rc;
            if (p->pt[2 * j + 1] >= 0 &&
                (rc = bli_tensor_probe_put(p->tp, p->pt[2 * j + 1], p->names[2 * j + 1], pos0 + i0, mm, V,
                                           p->logits + (int64_t)j * V, K * V, err)))
                return rc;
        }
        /* room for the rows: first out with what no head waits on */
        if (p->used + (size_t)mm * ROW(K) > p->cap) {
            int64_t first = (int64_t)(p->buf_pos0 + p->buf_n);
            for (int s = 0; s <= K; s++)
                for (int j = 0; j < K; j++)
                    if (p->pend[s * K + j] && p->ring_t[s] < first)
                        first = p->ring_t[s];
            int rc = write_rows(p, (uint64_t)(first - (int64_t)p->buf_pos0), err);
            if (rc)
                return rc;
            if (p->used + (size_t)mm * ROW(K) > p->cap) {   /* cannot happen: K+1 rows wait at most */
                size_t cap = p->used + (size_t)mm * ROW(K);
                unsigned char *b = realloc(p->buf, cap);
                if (!b)
                    return bli_err(err, BL_ENOMEM, "out of memory");
                p->buf = b;
                p->cap = cap;
            }
        }
        /* the positions take their ring slots (what waited there is
         * settled: its tokens are known by now) */
        int64_t known = p->n_seq ? *p->n_seq : 0;
        for (int64_t r = 0; r < mm; r++) {
            int64_t t = pos0 + i0 + r;
            int s = (int)(t % (K + 1));
            p->ring_t[s] = t;
            memset(p->pend + s * K, 0, (size_t)K);
        }
        p->used += (size_t)mm * ROW(K);
        p->buf_n += (uint64_t)mm;
        /* threads only where there is work for them (a region costs more
         * than a few heads over a small vocabulary) */
        int64_t tasks = mm * K;
        nt = tasks > 1 && tasks * p->Vt >= PARALLEL_WORK ? (tasks < p->n_threads ? (int)tasks : p->n_threads) : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t task = 0; task < tasks; task++) {
            int64_t r = task / K, t = pos0 + i0 + r;
            int j = (int)(task % K), s = (int)(t % (K + 1));
            const float *z = p->logits + (r * K + j) * V;
            int32_t tok, rank = -1;
            float ent, surp = NAN;
            double lse;
            head_stats(z, p->Vt, &tok, &ent, &lse);
            int64_t q = t + 2 + j;
            if (q < known) {
                target_stats(z, p->Vt, lse, p->seq[q], &surp, &rank);
            } else {   /* wait for x_q */
                memcpy(p->ring + ((size_t)s * K + j) * (size_t)V, z, (size_t)V * sizeof(float));
                p->ring_lse[s * K + j] = lse;
                p->pend[s * K + j] = 1;
            }
            unsigned char *c = cell(p, t, j);
            bli_wr_u32(c, (uint32_t)tok);
            bli_wr_f32(c + 4, ent);
            bli_wr_f32(c + 8, surp);
            bli_wr_u32(c + 12, (uint32_t)rank);
        }
        p->rows += mm;
    }
    return BL_OK;
}

int bli_drafter_probe_flush(struct bli_drafter_probe *p, bl_err *err)
{
    memset(p->pend, 0, (size_t)((p->K + 1) * p->K));
    for (int i = 0; i <= p->K; i++)
        p->ring_t[i] = -1;
    return write_rows(p, p->buf_n, err);
}

int64_t bli_drafter_probe_n_rows(const struct bli_drafter_probe *p)
{
    return p->rows;
}

void bli_drafter_probe_free(struct bli_drafter_probe *p)
{
    if (!p)
        return;
    free(p->fbuf);
    for (int i = 0; p->ews && i < p->n_threads; i++)
        bli_eagle_ws_release(&p->ews[i]);
    free(p->ews);
    free(p->ey);
    free(p->logits);
    free(p->hidden);
    free(p->names);
    free(p->pts);
    free(p->pt);
    free(p->ring);
    free(p->ring_lse);
    free(p->ring_t);
    free(p->pend);
    free(p->buf);
    free(p);
}
