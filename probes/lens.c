/* probes/lens.c: the logit lens at record time.
 *
 * During a batch the probe keeps each block's resid_post rows (L x n x D
 * floats, small); when the driver knows the next tokens it puts every
 * block's rows through the model's final norm and unembedding (one sgemm
 * per block, [n x D] by [V x D]^T) and reduces each distribution q to
 *   entropy        -sum q log2 q                        bits
 *   cross_entropy  -log2 q(next)                        bits (NaN: no next)
 *   kl             KL(p || q) = sum p (log2 p - log2 q) bits, p the model's
 * so no full logits are stored.  The last block's lens is the model itself:
 * its KL is 0 up to rounding. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model_internal.h"
#include "probes.h"

#define GROUP 64   /* rows through the lens at once */

struct bli_lens_probe {
    const struct bli_weights *w;
    struct bl_model_config cfg;
    int64_t nb, L, D, V;
    int64_t Vt;           /* tokens the distributions run over (<= V) */
    int n_threads;
    int64_t pos0;         /* position of row 0 of the batch */
    int64_t slot;         /* its row in the stash */
    float *stash;         /* [L][nb][D] resid_post rows */
    float *xn;            /* [G x D] normalized */
    float *q;             /* [G x V] lens logits */
    float *lp;            /* [G x V] log p of the model's distribution */
    float *pp;            /* [G x V] p */
    float *scratch;       /* for non-f32 unembeddings */
    size_t scratch_n;
};

static int on_resid(const struct bl_hook_event *ev, void *user)
{
    struct bli_lens_probe *p = user;
    int64_t r0 = p->slot + ev->pos0 - p->pos0;
    BL_ASSERT(r0 >= 0 && r0 + ev->n_pos <= p->nb);
    memcpy(p->stash + ((size_t)ev->layer * (size_t)p->nb + (size_t)r0) * (size_t)p->D, ev->data,
           (size_t)(ev->n_pos * ev->width) * sizeof(float));
    return 0;
}

int bli_lens_probe_alloc(struct bli_lens_probe **out, bl_ctx *ctx, int64_t n_batch, int64_t n_tokens, int n_threads,
                         bl_err *err)
{
    const bl_model *m = bl_ctx_model(ctx);
    struct bli_lens_probe *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return bli_err(err, BL_ENOMEM, "out of memory");
    p->w = bli_model_weights(m);
    p->cfg = *bl_model_config(m);
    p->nb = n_batch;
    p->L = p->cfg.n_layers;
    p->D = p->cfg.dim;
    p->V = p->cfg.n_vocab;
    p->Vt = n_tokens > 0 && n_tokens < p->V ? n_tokens : p->V;
    p->n_threads = bli_threads(n_threads);
    p->stash = bli_malloc_array((size_t)(p->L * p->nb * p->D), sizeof(float));
    p->xn = bli_malloc_array((size_t)(GROUP * p->D), sizeof(float));
    p->q = bli_malloc_array((size_t)(GROUP * p->V), sizeof(float));
    p->lp = bli_malloc_array((size_t)(GROUP * p->V), sizeof(float));
    p->pp = bli_malloc_array((size_t)(GROUP * p->V), sizeof(float));
    p->scratch_n = (size_t)p->D * (size_t)p->n_threads * 64;
    p->scratch = bli_malloc_array(p->scratch_n, sizeof(float));
    if (!p->stash || !p->xn || !p->q || !p->lp || !p->pp || !p->scratch || bl_ctx_add_hook(ctx, "blocks.*.hook_resid_post", on_resid, p) < 0) {
        bli_lens_probe_free(p);
        return bli_err(err, BL_ENOMEM, "out of memory for the logit lens (%lld x %lld floats)", (long long)p->nb,
                       (long long)p->V);
    }
    *out = p;
    return BL_OK;
}

void bli_lens_probe_batch(struct bli_lens_probe *p, int64_t pos0, int64_t slot)
{
    p->pos0 = pos0;
    p->slot = slot;
}

/* logsumexp of a row (exp in float, the sum in double) */
static double lse(const float *x, int64_t V)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        if (x[i] > m)
            m = x[i];
    double z = 0;
    for (int64_t i = 0; i < V; i++)
        z += expf(x[i] - m);
    return m + log(z);
}

/* Rows in groups of GROUP: the model's log p and p once per row, then per
 * block one sgemm and one pass over the vocabulary per row:
 *   a = q - lse(q), H += -e^a a, and KL = sum p log p - sum p a. */
void bli_lens_probe_rows(struct bli_lens_probe *p, int64_t n, const float *logits, const int32_t *next, float *out)
{
    int64_t D = p->D, V = p->V, Vt = p->Vt, L = p->L;
    const struct bli_weight *wn = &p->w->output_norm, *wb = &p->w->output_norm_b, *wo = &p->w->output;
    for (int64_t r0 = 0; r0 < n; r0 += GROUP) {
        int64_t g = n - r0 < GROUP ? n - r0 : GROUP;
        int nt = g * V >= (1 << 16) ? p->n_threads : 1;
        double plogp[GROUP];
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t i = 0; i < g; i++) {
            const float *f = logits + (r0 + i) * V;
            float *lpi = p->lp + i * V, *ppi = p->pp + i * V;
            float lf = (float)lse(f, Vt);
            double s = 0;
            for (int64_t v = 0; v < Vt; v++) {
                lpi[v] = f[v] - lf;
                ppi[v] = expf(lpi[v]);
                s += (double)ppi[v] * lpi[v];
            }
            plogp[i] = s;
        }
        for (int64_t l = 0; l < L; l++) {
            const float *x = p->stash + ((size_t)l * (size_t)p->nb + (size_t)r0) * (size_t)D;
            for (int64_t i = 0; i < g; i++) {
                if (p->cfg.norm == BL_NORM_RMS)
                    bli_rmsnorm(p->xn + i * D, x + i * D, wn->data, D, p->cfg.norm_eps);
                else
                    bli_layernorm(p->xn + i * D, x + i * D, wn->data, wb->data, D, p->cfg.norm_eps);
            }
            bli_matmul(wo->type, wo->data, p->xn, p->q, g, V, D, p->scratch, p->scratch_n, p->n_threads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
            for (int64_t i = 0; i < g; i++) {
                const float *q = p->q + i * V, *ppi = p->pp + i * V;
                float lq = (float)lse(q, Vt);
                double h = 0, pa = 0;
                for (int64_t v = 0; v < Vt; v++) {
                    float a = q[v] - lq;
                    h -= (double)expf(a) * a;
                    pa += (double)ppi[v] * a;
                }
                double kl = plogp[i] - pa;
                int32_t nx = next[r0 + i];
                float *o = out + ((r0 + i) * L + l) * 3;
                o[0] = (float)(h / M_LN2);
                o[1] = nx >= 0 && nx < Vt ? (float)(-(q[nx] - lq) / M_LN2) : NAN;
                o[2] = (float)(kl > 0 ? kl / M_LN2 : 0.0);
            }
        }
    }
}

void bli_lens_probe_free(struct bli_lens_probe *p)
{
    if (!p)
        return;
    free(p->stash);
    free(p->xn);
    free(p->q);
    free(p->lp);
    free(p->pp);
    free(p->scratch);
    free(p);
}
