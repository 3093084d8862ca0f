/* lib/drafter_eagle.h: the EAGLE-style drafter layer (Li et al. 2024),
 * internal to libbitlens (lib/drafter_eagle.c).  Not installed.
 *
 * One decoder layer over a window of T steps i = 0..T-1 of one sequence,
 * causal.  Step i reads the main model's feature f_i [d] at position t+i
 * and the token after it, y_i = x_{t+i+1}:
 *   x_i = [f_i ; E y_i]                         [2d]  E the token embedding
 *   u   = x Wfc^T + bfc                         [T x d]
 *   n1  = RMSNorm(u) * g1
 *   q, k, v = n1 Wq^T, n1 Wk^T, n1 Wv^T         [T x d], H heads of dh = d/H;
 *         RoPE on q and k at position pos0 + i, pairs (2j, 2j+1) of each
 *         head rotated by (pos0 + i) * theta^(-2j/dh), theta 10000
 *   o   = softmax(q k^T / sqrt(dh) + causal mask) v, per head
 *   a   = u + o Wo^T
 *   n2  = RMSNorm(a) * g2
 *   g   = a + (SiLU(n2 Wg^T) * (n2 Wu^T)) Wd^T  hidden width m
 *   z_i = U g_i                                 [V]   U the unembedding
 * with U and E the main model's, frozen.  g_i stands for the feature at
 * position t+i+1 and z_i predicts x_{t+i+2}.
 *
 * Loss over a window: the mean over steps with a token target of
 * CE(z_i, target_i), plus lambda times the mean over steps with a feature
 * target and over dims of (g_i - ftarget_i)^2.  For a verified window the
 * targets are target_i = y_{i+1} and ftarget_i = f_{i+1}.
 *
 * Start (bli_eagle_init): the f-half of Wfc (its columns 0..d-1) is the
 * identity and its E-half N(0, 1/(2d)) (the fan-in of Wfc), bfc = 0;
 * g1 = g2 = 1; Wq, Wk, Wv, Wg, Wu ~ N(0, 1/d); Wo = Wd = 0.  Then a = u
 * and g = u = f + Wfc_E E y: the untrained layer passes the feature through
 * plus a small term of the token, so its logits start near the main
 * model's own, as the Medusa heads' do.
 *
 * Everything runs in f32 through cblas_sgemm; a workspace sized for the
 * longest window holds every activation, so a forward or backward pass
 * allocates nothing. */
#ifndef BITLENS_DRAFTER_EAGLE_H
#define BITLENS_DRAFTER_EAGLE_H

#include <stdint.h>

#include <bitlens/common.h>
#include <bitlens/model.h>

/* The parameter tensors, in their order in the parameter block. */
enum bli_eagle_tensor {
    BLI_EAGLE_WFC,   /* [d x 2d]  columns 0..d-1 read f, d..2d-1 read E y */
    BLI_EAGLE_BFC,   /* [d] */
    BLI_EAGLE_G1,    /* [d]       first RMSNorm's gain */
    BLI_EAGLE_WQ,    /* [d x d] */
    BLI_EAGLE_WK,    /* [d x d] */
    BLI_EAGLE_WV,    /* [d x d] */
    BLI_EAGLE_WO,    /* [d x d] */
    BLI_EAGLE_G2,    /* [d]       second RMSNorm's gain */
    BLI_EAGLE_WG,    /* [m x d]   SwiGLU gate */
    BLI_EAGLE_WU,    /* [m x d]   SwiGLU up */
    BLI_EAGLE_WD,    /* [d x m]   SwiGLU down */
    BLI_EAGLE_N_TENSORS
};

#define BLI_EAGLE_DEFAULT_LAMBDA 1.0f
#define BLI_EAGLE_ROPE_THETA 10000.0

struct bli_eagle {
    int64_t d;                /* feature width: the main model's dim */
    int64_t H;                /* attention heads: the main model's n_heads */
    int64_t dh;               /* d / H, even */
    int64_t m;                /* SwiGLU hidden width */
    int64_t V;                /* vocabulary: rows of U and E */
    float eps;                /* RMSNorm epsilon: the model's norm_eps, or 1e-5 */
    float lambda;             /* weight of the feature regression in the loss */
    float *params;            /* all parameters, tensor after tensor (owned) */
    int64_t n_params;
    int64_t off[BLI_EAGLE_N_TENSORS];   /* offset of each tensor in params */
    int64_t size[BLI_EAGLE_N_TENSORS];  /* its floats */
    const float *unembed;     /* U [V x d] f32, frozen */
    const float *embed;       /* E [V x d] f32, frozen */
    float *unembed_buf;       /* owned copies behind them, or NULL when the */
    float *embed_buf;         /*   caller lent the array */
};

/* Activations of a window of up to cap steps (owned by the workspace). */
struct bli_eagle_ws {
    int64_t cap;
    float *X;                 /* [cap x 2d] the inputs [f ; E y] */
    float *U, *N1, *Q, *K, *Vv, *O, *A, *N2, *G;   /* [cap x d]; Q, K after RoPE */
    float *R1, *R2;           /* [cap] 1/sqrt(mean(u^2) + eps), same for a */
    float *P;                 /* [H x cap x cap] attention weights */
    float *Gt, *Up, *Hm;      /* [cap x m] gate and up pre-activations,
                                 SiLU(gate) * up */
    float *Z;                 /* [cap x V] logits; dL/dZ after a backward */
    float *cs, *sn;           /* [cap x dh/2] RoPE cos and sin */
    float *dG, *dA, *dN, *dO, *dQ, *dK, *dV, *dU;  /* [cap x d] backward scratch */
    float *dGt, *dUp;         /* [cap x m] */
    float *fx;                /* [cap x d] bli_eagle_draft's window */
    int32_t *yx;              /* [cap] */
};

/* A layer for `model` (d, H, V, eps from it) with SwiGLU width m (0: 4d)
 * and loss weight lambda (< 0: BLI_EAGLE_DEFAULT_LAMBDA), parameters zero.
 * unembed: the main model's unembedding as f32 [V x d] to borrow (it must
 * outlive the layer; a Medusa drafter's d->unembed), or NULL to convert
 * the model's own; the token embedding is always converted.  BL_EINVAL
 * when d is not a multiple of an even head width, BL_EUNSUPPORTED when the
 * model has no embedding or unembedding in a readable type.  Free with
 * bli_eagle_free. */
int bli_eagle_alloc(struct bli_eagle **out, const bl_model *model, const float *unembed, int64_t m, float lambda,
                    bl_err *err);
void bli_eagle_free(struct bli_eagle *e);

/* Draw the starting parameters (see the top) from seed. */
int bli_eagle_init(struct bli_eagle *e, uint64_t seed, bl_err *err);

/* "fc.weight", "fc.bias", "norm1.weight", "attn.q.weight", ...: a tensor's
 * name (static storage). */
const char *bli_eagle_tensor_name(int t);

/* A workspace for windows of up to cap steps; release it with
 * bli_eagle_ws_release. */
int bli_eagle_ws_init(struct bli_eagle_ws *w, const struct bli_eagle *e, int64_t cap, bl_err *err);
void bli_eagle_ws_release(struct bli_eagle_ws *w);

/* The layer over a window: f [T x d] features, y [T] tokens (0..V-1),
 * step i at RoPE position pos0 + i (>= 0).  Logits in w->Z [T x V];
 * hidden (may be NULL) receives g [T x d], argmax (may be NULL) the top
 * token of each step [T].  BL_ERANGE if T > w->cap, BL_EINVAL for T < 1,
 * pos0 < 0 or a token outside the vocabulary. */
int bli_eagle_forward(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y,
                      int64_t T, int64_t pos0, float *hidden, int32_t *argmax, bl_err *err);

/* The loss of a window (forward as above): tgt [T] the token targets (-1
 * or out of range: none; NULL: none), ftgt [T x d] the feature targets of
 * the steps with fmask[i] != 0 (fmask NULL: every step; ftgt NULL: none;
 * rows not selected are not read, so ftgt = f + d with fmask[T-1] = 0
 * asks g_i to match f_{i+1}).  With grad (n_params floats, not NULL)
 * dL/dparams is written (overwritten, not accumulated).  Returns the loss
 * in nats (0 without targets), or NAN with err set on a bad argument. */
double bli_eagle_loss(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y,
                      int64_t T, int64_t pos0, const int32_t *tgt, const float *ftgt, const unsigned char *fmask,
                      float *grad, bl_err *err);

/* Greedy draft after a verified window f [T x d], y [T]: n_draft tokens
 * into out.  Token k is the argmax of the last step's logits; the window
 * then grows by (g of the last step, token k) and is run again.  The
 * workspace needs cap >= T + n_draft - 1 (BL_ERANGE otherwise). */
int bli_eagle_draft(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y, int64_t T,
                    int64_t pos0, int n_draft, int32_t *out, bl_err *err);

/* bli_eagle_draft with what each drafting step k (0..n_draft-1) saw: the
 * token is the argmax of the last step's logits over the first n_tokens
 * (<= 0 or beyond V: all V; ties: the lower id), so a vocabulary padded
 * past its real tokens never drafts a padding id; tokens [n_draft],
 * logits [n_draft x V] and hidden [n_draft x d] (each may be NULL) receive
 * step k's token, its logits (which predict the token k + 1 places
 * after the window's last y) and its g (which stands for the feature
 * before it).  Same errors and workspace as bli_eagle_draft, which is
 * this with n_tokens 0. */
int bli_eagle_draft_full(const struct bli_eagle *e, struct bli_eagle_ws *w, const float *f, const int32_t *y,
                         int64_t T, int64_t pos0, int n_draft, int64_t n_tokens, int32_t *tokens, float *logits,
                         float *hidden, bl_err *err);

#endif
