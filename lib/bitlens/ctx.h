/* bitlens/ctx.h: the reference transformer's forward pass, with hook points.
 *
 * A context holds what one sequence needs: the KV cache, scratch buffers
 * sized once from the model's config, and the hooks.  bl_ctx_eval() runs a
 * batch of positions (prompt processing: matrix-matrix products through
 * BLAS) or a single token (decode: matrix-vector kernels), appending to the
 * KV cache.  Same inputs and the same thread count give the same bits.
 *
 * Llama family (llama, qwen2), per layer (x is [n x dim], n positions):
 *   h  = RMSNorm(x) * w_attn_norm                   ln1.hook_normalized
 *   q  = h Wq^T, k = h Wk^T, v = h Wv^T             attn.hook_q/k/v (before RoPE)
 *   q, k rotated by RoPE on adjacent pairs (2i, 2i+1) of each head
 *   z  = softmax(q k^T / sqrt(head_dim) + causal mask) v, query head h
 *        reading kv head h / (n_heads / n_kv_heads)   attn.hook_z
 *   x += z Wo^T                                     hook_attn_out, hook_resid_mid
 *   h  = RMSNorm(x) * w_ffn_norm                    ln2.hook_normalized
 *   x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T      mlp.hook_pre/post, hook_mlp_out,
 *                                                   hook_resid_post
 * then ln_final.hook_normalized and hook_logits.  RoPE rotates adjacent
 * pairs or the two halves of each head, as the model's layout requires
 * (struct bl_model_config.rope), with Llama 3 frequency factors if present.
 *
 * GPT-2 family: x = token embedding + position embedding (hook_embed,
 * hook_pos_embed, then blocks.0.hook_resid_pre); LayerNorm with bias in
 * place of RMSNorm (hook_scale = sqrt(var + eps)); biases on q, k, v, the
 * attention output and both MLP matrices; no RoPE; the MLP is
 * down(gelu_tanh(up(h))) with hook_pre = up(h) + b and hook_post its GELU.
 *
 * Hook points carry TransformerLens names ("blocks.3.hook_resid_post").  A
 * probe subscribes by glob (fnmatch(3): "blocks.*.hook_resid_post") and
 * receives the tensor [positions x width] in f32; it may read it or write it
 * (patching, ablation) and the forward pass continues from what it left
 * (except hook_scale, which reports the divisor already applied).
 * With no hook attached a hook point costs one branch.  The `hook_scale`
 * points carry one number per position: the divisor of the norm,
 * sqrt(mean(x^2)+eps) for RMSNorm, sqrt(var(x)+eps) for LayerNorm.  A model
 * has only the points its architecture has (hook_pos_embed: GPT-2 family).
 */
#ifndef BITLENS_CTX_H
#define BITLENS_CTX_H

#include <bitlens/common.h>
#include <bitlens/model.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_ctx bl_ctx;

/* Hook kinds.  Per-layer kinds fire once per layer. */
enum bl_hook_kind {
    BL_HOOK_EMBED = 0,          /* hook_embed               [n x dim] token embedding */
    BL_HOOK_POS_EMBED,          /* hook_pos_embed           [n x dim] learned positions
                                   (GPT-2 family only) */
    BL_HOOK_RESID_PRE,          /* blocks.L.hook_resid_pre   [n x dim] */
    BL_HOOK_LN1_SCALE,          /* blocks.L.ln1.hook_scale   [n x 1] */
    BL_HOOK_LN1_NORMALIZED,     /* blocks.L.ln1.hook_normalized [n x dim] */
    BL_HOOK_ATTN_Q,             /* blocks.L.attn.hook_q      [n x n_heads*head_dim] */
    BL_HOOK_ATTN_K,             /* blocks.L.attn.hook_k      [n x n_kv_heads*head_dim] */
    BL_HOOK_ATTN_V,             /* blocks.L.attn.hook_v      [n x n_kv_heads*head_dim] */
    BL_HOOK_ATTN_SCORES,        /* blocks.L.attn.hook_attn_scores [n x n_heads*K]: row i,
                                   head h, key t at [i][h*K + t], K = pos0 + n keys;
                                   q.k/sqrt(head_dim), -inf where t > pos0 + i */
    BL_HOOK_ATTN_PATTERN,       /* blocks.L.attn.hook_pattern [n x n_heads*K]: the
                                   softmax of the scores, 0 where masked */
    BL_HOOK_ATTN_Z,             /* blocks.L.attn.hook_z      [n x n_heads*head_dim] */
    BL_HOOK_ATTN_OUT,           /* blocks.L.hook_attn_out    [n x dim] */
    BL_HOOK_RESID_MID,          /* blocks.L.hook_resid_mid   [n x dim] */
    BL_HOOK_LN2_SCALE,          /* blocks.L.ln2.hook_scale   [n x 1] */
    BL_HOOK_LN2_NORMALIZED,     /* blocks.L.ln2.hook_normalized [n x dim] */
    BL_HOOK_MLP_PRE,            /* blocks.L.mlp.hook_pre     [n x hidden] gate pre-activation */
    BL_HOOK_MLP_POST,           /* blocks.L.mlp.hook_post    [n x hidden] silu(gate)*up */
    BL_HOOK_MLP_OUT,            /* blocks.L.hook_mlp_out     [n x dim] */
    BL_HOOK_RESID_POST,         /* blocks.L.hook_resid_post  [n x dim] */
    BL_HOOK_LN_FINAL,           /* ln_final.hook_normalized  [n x dim] */
    BL_HOOK_LOGITS,             /* hook_logits               [rows x n_vocab]: every
                                   row with BL_EVAL_ALL_LOGITS, else the last row of
                                   each internal batch */
    BL_HOOK_N_KINDS
};

/* What a hook callback receives.  `data` is writable and valid only during
 * the call. */
struct bl_hook_event {
    const char *name;   /* "blocks.3.hook_resid_post" */
    int kind;           /* enum bl_hook_kind */
    int layer;          /* block index, or -1 outside the blocks */
    int64_t pos0;       /* absolute position of row 0 */
    int64_t n_pos;      /* number of rows */
    int64_t width;      /* floats per row */
    float *data;        /* [n_pos x width], row-major */
};

/* A hook callback returns 0 to go on; nonzero stops the evaluation, which
 * returns BL_ESTOPPED; the KV cache then holds the positions before the
 * internal batch (of n_batch positions) that was stopped. */
typedef int (*bl_hook_fn)(const struct bl_hook_event *ev, void *user_data);

enum bl_kernels {
    BL_KERNELS_AUTO = 0,    /* fastest available (SIMD, BLAS) */
    BL_KERNELS_REFERENCE    /* plain loops, one thread: the readable reference */
};

struct bl_ctx_params {
    int64_t n_ctx;      /* positions the KV cache holds; 0 = the model's ctx_train */
    int64_t n_batch;    /* positions per internal batch; default 256 */
    int n_threads;      /* OpenMP threads; 0 = OMP_NUM_THREADS if set, else
                           the number of processors */
    int kernels;        /* enum bl_kernels */
};

struct bl_ctx_params bl_ctx_default_params(void);

/* A context for `model` (borrowed: it must outlive the context).  Like
 * bl_set_threads(), it makes OpenBLAS run on the calling thread: the
 * context splits matrix products across its own n_threads. */
int bl_ctx_alloc(bl_ctx **out, const bl_model *model, const struct bl_ctx_params *p,
                 bl_err *err);
void bl_ctx_free(bl_ctx *c);

const bl_model *bl_ctx_model(const bl_ctx *c);
int64_t bl_ctx_n_ctx(const bl_ctx *c);
/* Positions already in the KV cache: the next token goes at this position. */
int64_t bl_ctx_pos(const bl_ctx *c);
/* Forget positions >= pos (0 clears the sequence). */
int bl_ctx_rewind(bl_ctx *c, int64_t pos);

/* Flags of bl_ctx_eval(). */
#define BL_EVAL_ALL_LOGITS 1u   /* logits for every position, else the last only */
#define BL_EVAL_EXACT 2u        /* the bits of n one-token evaluations: every
                                   matrix product by the matrix-vector kernel's
                                   dot products (attention, norms and
                                   activations are row by row anyway); for a
                                   speculative decoder's verify passes, slower
                                   than the default for long batches */

/* Run tokens[0..n-1] at positions pos..pos+n-1, pos = bl_ctx_pos().
 * logits, if not NULL, receives [n x n_vocab] (BL_EVAL_ALL_LOGITS) or
 * [1 x n_vocab] floats; NULL skips the classifier (unless a hook on
 * hook_logits asks for it, then only the hook sees them).
 * Returns BL_ERANGE if the positions would pass n_ctx, BL_EINVAL for a
 * token id out of the vocabulary, BL_ESTOPPED if a hook stopped the run. */
int bl_ctx_eval(bl_ctx *c, const int32_t *tokens, int64_t n, float *logits, unsigned flags);

/* The message of the last failure of this context. */
const char *bl_ctx_errmsg(const bl_ctx *c);

/* ---- hooks */

/* Number of hook points and their names (owned by the context). */
int64_t bl_ctx_n_hooks(const bl_ctx *c);
const char *bl_ctx_hook_name(const bl_ctx *c, int64_t i);

/* Kind (enum bl_hook_kind), block (-1 outside) and width of hook point i:
 * floats per position, or -1 where it varies with the position (attention
 * scores and patterns: n_heads x positions so far). */
int bl_ctx_hook_kind(const bl_ctx *c, int64_t i);
int bl_ctx_hook_layer(const bl_ctx *c, int64_t i);
int64_t bl_ctx_hook_width(const bl_ctx *c, int64_t i);

/* Attach fn to point i only (by index, as listed by bl_ctx_hook_name). */
int bl_ctx_add_hook_at(bl_ctx *c, int64_t i, bl_hook_fn fn, void *user_data);

/* Attach fn to every hook point whose name matches `glob`.  Returns the
 * number of points matched (0 is not an error: the caller decides), or
 * BL_ENOMEM.  Several callbacks on one point run in the order added. */
int bl_ctx_add_hook(bl_ctx *c, const char *glob, bl_hook_fn fn, void *user_data);
void bl_ctx_clear_hooks(bl_ctx *c);

#ifdef __cplusplus
}
#endif
#endif
