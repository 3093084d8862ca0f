/* analysis/probe_internal.h: the pieces of the future-token probe
 * (analysis/probe.c) that the tests reach: the batch forward/backward pass,
 * so a finite-difference check can be written against it, and the fit with
 * the options bl_probe_params does not (yet) carry.  Not installed; symbols
 * are bli_ and not exported.
 *
 * The probe on one row x [d_in]:
 *   h = A x + b                  A [d x d_in], b [d]
 *   n = norm(h)                  the head's RMSNorm or LayerNorm
 *   z = tau U n + c              U = head->unembed [n_vocab x d], c [n_vocab]
 *                                a learned logit bias, tau a learned logit
 *                                scale (probe.c says why)
 *   loss = log sum_v exp z_v - z_y   nats (bl_probe_result reports bits)
 * over a batch of rows X [rows x d_in], the mean of the rows' losses. */
#ifndef BITLENS_PROBE_INTERNAL_H
#define BITLENS_PROBE_INTERNAL_H

#include <stdint.h>

#include <bitlens/analysis.h>

/* Buffers for batches of up to `cap` rows, allocated once per fit.  Nothing
 * in them is larger than a batch: cap x n_vocab logits is the biggest. */
struct bli_probe_ws {
    int64_t cap;        /* rows per batch at most */
    int64_t d, d_in, n_vocab;
    int n_threads;      /* OpenMP threads for rows and matrix products */
    float *x;           /* [cap x d_in] the batch's rows, gathered */
    int32_t *y;         /* [cap] their targets */
    float *h;           /* [cap x d] A x + b; after the backward pass dL/dh */
    float *xhat;        /* [cap x d] the normalized h before the weight:
                           h / s (RMS) or (h - mean) / s (LayerNorm) */
    float *inv;         /* [cap] 1 / s, s = sqrt(mean(h^2) + eps) or
                           sqrt(var(h) + eps) */
    float *n;           /* [cap x d] the norm's output; after the backward
                           pass dL/dn */
    float *z;           /* [cap x n_vocab] logits; after the backward pass
                           dL/dz = (softmax(z) - onehot(y)) / rows */
    double *ce;         /* [cap] each row's cross-entropy, nats */
    double *gtau;       /* [cap] each row's part of dL/dtau */
};

/* Allocate for head->d, d_in, head->n_vocab and cap rows: 0 or BL_ENOMEM.
 * Release with bli_probe_ws_release() (also after a failed init). */
int bli_probe_ws_init(struct bli_probe_ws *w, const struct bl_probe_head *head, int64_t d_in,
                      int64_t cap, int n_threads);
void bli_probe_ws_release(struct bli_probe_ws *w);

/* The forward pass over rows x [rows x d_in] with targets y [rows], each in
 * [0, n_vocab) (rows <= w->cap), c NULL for no logit bias: each row's
 * cross-entropy into w->ce (nats); returns their mean (nats). */
double bli_probe_loss(const struct bl_probe_head *head, const float *A, const float *b,
                      const float *c, float tau, const float *x, const int32_t *y, int64_t rows,
                      struct bli_probe_ws *w);

/* The forward pass, then the analytic gradient of the mean loss (nats):
 * gA [d x d_in] = dL/dA, gb [d] = dL/db, gc [n_vocab] = dL/dc (untouched if
 * c or gc is NULL), *gtau = dL/dtau (if gtau is not NULL).  Returns the
 * mean loss. */
double bli_probe_loss_grad(const struct bl_probe_head *head, const float *A, const float *b,
                           const float *c, float tau, const float *x, const int32_t *y, int64_t rows,
                           struct bli_probe_ws *w, float *gA, float *gb, float *gc, float *gtau);

/* Options of a fit beyond struct bl_probe_params. */
struct bli_probe_opts {
    int64_t warmup;     /* steps over which the learning rate rises linearly
                           from lr/warmup to lr; 0: the fixed rate throughout */
    int lr_decay;       /* 1: after the warm-up the rate falls linearly
                           towards 0 (lr / (steps - warmup + 1) at the last
                           step); 0: it stays at lr */
    int no_logit_bias;  /* 1: logits tau U n only, the family without the
                           unigram (to show why c is there) */
};

/* bl_probe_fit with opts (NULL: what bl_probe_fit does: no warm-up, a fixed
 * rate, the logit bias).  A_out, b_out, c_out, tau_out, if not NULL,
 * receive the trained A [d x d_in], b [d], c [n_vocab] (c stays the log
 * unigram with no_logit_bias, unused) and tau. */
int bli_probe_fit(const struct bl_probe_head *head, const float *x, int64_t d_in,
                  const int32_t *y, const unsigned char *train, int64_t n,
                  const struct bl_probe_params *p, const struct bli_probe_opts *opts,
                  struct bl_probe_result *out, float *A_out, float *b_out, float *c_out,
                  float *tau_out, bl_err *err);

#endif
