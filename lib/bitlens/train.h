/* bitlens/train.h: train a small Llama-family base model from scratch.
 *
 * bl_model_train() trains the architecture bitlens's forward pass computes
 * for GGUF "llama" (bitlens/ctx.h) on a tokenized corpus and writes it as a
 * GGUF v3 file with the vocabulary inside, which bl_model_load() reads back:
 * the loaded model run by bl_ctx_eval() gives the trainer's own logits (to
 * f32 rounding).  Per layer, x [T x dim] for the T positions of a window:
 *
 *   h  = RMSNorm(x) * w_attn_norm              RMSNorm(x) = x / sqrt(mean(x^2) + eps)
 *   q, k, v = h Wq^T, h Wk^T, h Wv^T           n_heads heads of head_dim = dim / n_heads
 *   q, k rotated by RoPE: pair (2j, 2j+1) of each head at position t by the
 *        angle t * rope_theta^(-2j / head_dim)
 *   z  = softmax(q k^T / sqrt(head_dim) + causal mask) v, head by head
 *   x += z Wo^T
 *   h  = RMSNorm(x) * w_ffn_norm
 *   x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * then logits = (RMSNorm(x) * w_output_norm) U^T, with U the token embedding
 * (tied) or its own matrix.  Positions count from 0 at the start of each
 * window.
 *
 * Training is teacher-forced next-token cross-entropy.  The corpus ids[] is
 * cut in two: the first n_ids - n_valid tokens train, the last n_valid =
 * floor(n_ids * valid_fraction) are held out.  Each step draws `batch`
 * windows of seq + 1 tokens at start positions uniform over the training
 * part (a seeded generator, one draw per window, in order); window b's
 * tokens 0..seq-1 are the input and 1..seq the targets, and the loss is the
 * mean cross-entropy (nats) over the batch's batch * seq targets.  The
 * held-out loss is the same mean over the windows [w seq, w seq + seq] of
 * the held-out part, w = 0, 1, ... while they fit (so every held-out token
 * but the first is a target once), each evaluated from position 0.
 *
 * Optimizer: AdamW (beta1 0.9, beta2 0.95, eps 1e-8) with decoupled weight
 * decay on the matrices (embedding, projections, classifier) but not on the
 * norms' gains; the gradient clipped to a global L2 norm of `clip`; the
 * rate rising linearly over `warmup` steps ((s + 1) / warmup of lr at step
 * s), then falling along a cosine from lr to lr_end * lr at the last step.
 *
 * Start: matrices N(0, 0.02^2), the two projections that write into the
 * residual stream (attn_output, ffn_down) N(0, (0.02 / sqrt(2 n_layers))^2),
 * gains 1, drawn from a GSL Mersenne Twister seeded with `seed`, tensor by
 * tensor in file order.
 *
 * Reproducibility: the steps run OpenMP threads over the batch's windows,
 * one window per task with single-threaded BLAS, and add the windows'
 * gradients in window order; so the same corpus, configuration, seed give
 * the same file bit for bit whatever the thread count, on one machine and
 * BLAS build.
 *
 * Memory: per thread the activations of one window (about seq * (n_layers *
 * (8 dim + 3 hidden_dim + n_heads * seq) + n_vocab) floats) and one
 * gradient; in all, four copies of the parameters (weights, gradient, two
 * AdamW moments) plus one gradient per thread.
 */
#ifndef BITLENS_TRAIN_H
#define BITLENS_TRAIN_H

#include <bitlens/common.h>
#include <bitlens/tokenizer.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shape of the model.  n_kv_heads = n_heads (no grouped queries). */
struct bl_model_train_config {
    int64_t n_vocab;      /* rows of the embedding; 0: the tokenizer's
                             vocabulary size.  More rows than the tokenizer
                             has tokens are padded (placeholder tokens in the
                             file) */
    int64_t dim;          /* width of the residual stream */
    int64_t n_layers;     /* decoder blocks */
    int64_t n_heads;      /* attention heads; dim / n_heads must be even */
    int64_t hidden_dim;   /* width of the SwiGLU MLP */
    int64_t n_ctx;        /* context length written to the file
                             (llama.context_length); seq <= n_ctx */
    float rope_theta;     /* RoPE frequency base (> 1) */
    float norm_eps;       /* RMSNorm epsilon, in (0, 1) */
    int tied;             /* 1: the classifier is the token embedding (no
                             output.weight); 0: a separate matrix */
};

/* Defaults: dim 192, 4 layers, 6 heads (of 32), hidden 512, n_ctx 256,
 * theta 10000, eps 1e-5, tied, n_vocab 0 (the tokenizer's): 2.16 M
 * parameters with a vocabulary of 2048. */
struct bl_model_train_config bl_model_train_default_config(void);

/* Parameters of a model of shape c: c->n_vocab rows of embedding, or
 * n_vocab when c->n_vocab is 0 (the tokenizer's size).  The tied
 * classifier counts once, as bl_model_n_params() counts them. */
int64_t bl_model_train_n_params(const struct bl_model_train_config *c, int64_t n_vocab);

/* Progress: called before the first step (step 0: train_loss NAN,
 * valid_loss the starting model's), then after every eval_every steps and
 * after the last one, with the mean training loss of the steps since the
 * previous call and the held-out loss (NAN when nothing is held out).  A
 * nonzero return stops training: bl_model_train() returns BL_ESTOPPED and
 * writes no file. */
typedef int (*bl_model_train_progress_fn)(void *user_data, int64_t step, int64_t steps, double train_loss,
                                          double valid_loss);

struct bl_model_train_params {
    int64_t steps;        /* optimizer steps, >= 0 (0 writes the starting
                             model) */
    int64_t batch;        /* windows per step, >= 1 */
    int64_t seq;          /* tokens per window (targets per window), 1..n_ctx
                             and at most 65536 */
    float lr;             /* peak learning rate, > 0 */
    float lr_end;         /* the rate at the last step, as a fraction of lr,
                             in [0, 1] */
    float weight_decay;   /* AdamW decoupled decay on matrices, >= 0 */
    float clip;           /* global gradient-norm bound; 0: no clipping */
    int64_t warmup;       /* steps of linear warm-up, >= 0 */
    uint64_t seed;        /* starting weights and window positions */
    int64_t eval_every;   /* steps between held-out evaluations and progress
                             calls; 0: only after the last step */
    double valid_fraction;/* share of the corpus held out (its tail), [0, 1) */
    int n_threads;        /* OpenMP threads; 0 = OMP_NUM_THREADS if set, else
                             the number of processors */
    const char *name;     /* general.name in the file; NULL: "bitlens-llama" */
    bl_model_train_progress_fn progress;   /* may be NULL */
    void *progress_user;  /* handed to progress */
};

/* Defaults: 3000 steps, batch 16, seq 256 (12.3 M tokens), lr 2e-3 to
 * 10%, weight decay 0.1, clip 1, warm-up 100, seed 1, eval_every 250,
 * valid_fraction 0.05, all threads, no progress callback. */
struct bl_model_train_params bl_model_train_default_params(void);

/* What a run did. */
struct bl_model_train_stats {
    int64_t n_params;         /* parameters (a tied classifier counted once) */
    int64_t n_train_tokens;   /* tokens of the training part */
    int64_t n_valid_tokens;   /* tokens of the held-out part */
    int64_t n_valid_windows;  /* held-out windows evaluated (0: no held-out loss) */
    int64_t steps;            /* steps done */
    int64_t tokens;           /* targets trained on: steps * batch * seq */
    double train_loss;        /* mean training loss of the steps since the last
                                 progress point (nats) */
    double valid_loss_start;  /* held-out loss of the starting model (NAN: none) */
    double valid_loss;        /* held-out loss of the written model (NAN: none) */
    double seconds;           /* wall time of the steps and evaluations */
    double tokens_per_second; /* tokens / the steps' wall time */
};

/* Train a model of shape c on ids[0..n_ids-1] (the tokenized corpus:
 * documents joined with the tokenizer's BOS between them, as the caller
 * chose) and write it to out_path as GGUF v3 (f32 tensors, through a
 * temporary name), with the vocabulary of tok (may be NULL when c->n_vocab
 * is set: a file without a vocabulary).  tok is borrowed; stats (may be
 * NULL) receives the figures above.  Returns BL_EINVAL with a message for a
 * configuration or parameter out of range (dim not a multiple of an even
 * head width, seq > n_ctx, no vocabulary, fewer rows than the tokenizer has
 * tokens, a corpus too short for one window, an id outside the vocabulary;
 * also a training loss that stops being finite, which writes no file),
 * BL_ENOMEM, BL_ESTOPPED (progress), BL_EIO (the file), or the tokenizer
 * writer's BL_EUNSUPPORTED. */
int bl_model_train(const bl_tokenizer *tok, const int32_t *ids, int64_t n_ids, const struct bl_model_train_config *c,
                   const struct bl_model_train_params *p, const char *out_path, struct bl_model_train_stats *stats,
                   bl_err *err);

#ifdef __cplusplus
}
#endif
#endif
