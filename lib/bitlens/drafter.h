/* bitlens/drafter.h: multi-token drafters on the residual stream.
 *
 * A drafter reads one hook of a frozen main model (by default the final
 * normalized residual, ln_final.hook_normalized, [d]) at position t, where
 * the main model itself predicts x_{t+1}, and writes the K tokens after it:
 * head j (1..K) predicts x_{t+1+j}.
 *
 * Medusa-style heads (Cai et al. 2024): head j is n_blocks residual blocks
 *     width 0:  h <- h + SiLU(W1 h + b1)              W1 [d x d]
 *     width w:  h <- h + W2 SiLU(W1 h + b1)           W1 [w x d], W2 [d x w]
 * read out by the main model's own unembedding, z_j = U h  ([n_vocab]).
 * W2 starts at 0 (width w) and W1 at 0 (width 0, where then SiLU(b1) = 0
 * for b1 = 0), so an untrained head predicts what the main model's head
 * predicts from the same feature.
 *
 * EAGLE-style (Li et al. 2024): one causal decoder layer over the verified
 * positions (the feature and the embedding of the token after it), whose
 * output stands for the next feature and is read out by U; it drafts the
 * K tokens autoregressively from a window of the last BLI_EAGLE_WINDOW (16)
 * verified positions (lib/drafter_eagle.h).  It needs that history, so
 * bl_drafter_eval() refuses it (BL_EUNSUPPORTED); bl_drafter_generate()
 * and bl_drafter_simulate() keep the history.  width is its SwiGLU width
 * (0: 4d), n_blocks 1.
 *
 * Files: GGUF, general.architecture "bitlens-drafter", with the kind, K,
 * blocks, width, the hook, and the main model's name, dim, vocabulary size
 * and sha256 (of its first file); bl_drafter_load() refuses a drafter
 * against a model whose identity differs.
 *
 * Training (bl_drafter_train) is deterministic for a seed and thread
 * count: AdamW, global-norm gradient clipping, linear warm-up then cosine
 * decay, minibatches in an order drawn from the seed. */
#ifndef BITLENS_DRAFTER_H
#define BITLENS_DRAFTER_H

#include <stdint.h>

#include "common.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum bl_drafter_kind { BL_DRAFTER_MEDUSA = 1, BL_DRAFTER_EAGLE = 2 };

#define BL_DRAFTER_MAX_HEADS 16
#define BL_DRAFTER_MAX_BLOCKS 64
#define BL_DRAFTER_MAX_WIDTH 65536
#define BL_DRAFTER_DEFAULT_HOOK "ln_final.hook_normalized"

struct bl_drafter_config {
    int kind;                 /* enum bl_drafter_kind */
    int n_heads;              /* K, 1..BL_DRAFTER_MAX_HEADS */
    int n_blocks;             /* residual blocks per head, 1..BL_DRAFTER_MAX_BLOCKS */
    int64_t width;            /* hidden width of a block, 0..BL_DRAFTER_MAX_WIDTH;
                                 0: d, in the form without W2 */
    int64_t d;                /* feature width: the main model's dim */
    int64_t n_vocab;          /* logits: the main model's vocabulary */
    char hook[64];            /* the main model's hook read */
    char model_name[128];     /* identity of the main model */
    char model_sha256[65];    /* of its first file; "" if not known */
};

typedef struct bl_drafter bl_drafter;

/* A new drafter for `model` (dim, vocabulary and identity taken from it;
 * cfg->d and n_vocab are ignored), parameters at their start (see above)
 * with W1 of width w drawn N(0, 1/d) from `seed`.  `model` must outlive
 * the drafter (its unembedding is read). */
int bl_drafter_new(bl_drafter **out, const bl_model *model, const struct bl_drafter_config *cfg,
                   uint64_t seed, bl_err *err);
/* Load a drafter file for `model` (which must outlive it): BL_EMISMATCH
 * naming both when the file was trained for another model (dim,
 * vocabulary, and sha256 where both have one, else the name). */
int bl_drafter_load(bl_drafter **out, const char *path, const bl_model *model, bl_err *err);
int bl_drafter_save(const bl_drafter *d, const char *path, bl_err *err);
void bl_drafter_free(bl_drafter *d);

const struct bl_drafter_config *bl_drafter_config(const bl_drafter *d);
int64_t bl_drafter_n_params(const bl_drafter *d);

/* Draft from n features h [n x d]: logits [n x K x n_vocab] (may be NULL)
 * and the argmax tokens [n x K] (may be NULL).  hidden, if not NULL,
 * receives each head's last hidden state [n x K x d]. */
int bl_drafter_eval(const bl_drafter *d, const float *h, int64_t n, float *logits, int32_t *tokens,
                    float *hidden, bl_err *err);

/* ---------------------------------------------------------------- data
 *
 * A training set: features r_t [n x d] at the hook, and the tokens after
 * them, tok [n x (K + 1)]: tok[i][0] = x_{t+1}, tok[i][j] = x_{t+1+j}, -1
 * where the sequence ends. */
struct bl_drafter_data {
    int64_t n, d;
    int k;                    /* K: columns of tok are K + 1 */
    float *feat;
    int32_t *tok;
    int32_t *seq;             /* [n] the sequence (prompt) of each row */
};

enum bl_drafter_targets {
    BL_TARGETS_SELF = 1,      /* the main model's greedy continuation of
                                 each prompt (self-distillation) */
    BL_TARGETS_CORPUS = 2     /* the prompt's own next tokens */
};

struct bl_drafter_data_params {
    int targets;              /* enum bl_drafter_targets */
    int k;                    /* K */
    int64_t n_gen;            /* BL_TARGETS_SELF: tokens generated after
                                 each prompt (default 64) */
    int64_t max_prompt;       /* prompt tokens kept (default 32) */
    const char *hook;         /* default BL_DRAFTER_DEFAULT_HOOK */
    int n_threads;
    int (*progress)(void *user, const char *stage, int64_t done, int64_t total);
    void *progress_user;
};
struct bl_drafter_data_params bl_drafter_data_default_params(void);

/* Run the main model over prompts (tokenized with its tokenizer, BOS
 * first) and collect the rows: with BL_TARGETS_SELF the rows are the
 * positions of the greedy continuation (from the prompt's last token on),
 * with BL_TARGETS_CORPUS every position of the prompt. */
int bl_drafter_data_build(const bl_model *model, const char *const *prompts, int64_t n_prompts,
                          const struct bl_drafter_data_params *p, struct bl_drafter_data *out, bl_err *err);
void bl_drafter_data_release(struct bl_drafter_data *d);

/* ---------------------------------------------------------------- training */

struct bl_drafter_train_params {
    int64_t steps;            /* optimizer steps (default 2000) */
    int64_t batch;            /* rows per step (default 64) */
    float lr;                 /* peak learning rate (default 3e-3) */
    float weight_decay;       /* AdamW, on matrices only (default 0.01) */
    float clip;               /* global gradient norm clip (default 1; 0: none) */
    int64_t warmup;           /* linear warm-up steps (default steps / 20) */
    uint64_t seed;            /* batch order (default 1) */
    int64_t eval_every;       /* steps between held-out evaluations
                                 (default 200; 0: only at the end) */
    int n_threads;
    /* called after each evaluation; nonzero stops training */
    int (*progress)(void *user, int64_t step, int64_t steps, double train_loss, double valid_loss,
                    const double *top1, int k);
    void *progress_user;
};
struct bl_drafter_train_params bl_drafter_train_default_params(void);

struct bl_drafter_train_stats {
    int64_t steps, n_train, n_valid;
    double train_loss, valid_loss;         /* mean over heads, nats */
    double top1[BL_DRAFTER_MAX_HEADS];     /* held-out top-1 agreement per head */
    double seconds;
};

/* Train d on data: rows with valid[i] != 0 are held out (NULL: none). */
int bl_drafter_train(bl_drafter *d, const struct bl_drafter_data *data, const unsigned char *valid,
                     const struct bl_drafter_train_params *p, struct bl_drafter_train_stats *stats, bl_err *err);

/* Greedy decoding in verify mode, simulated on a training set's held-out
 * sequences (rows with mask[i] != 0, NULL: all, grouped by seq in row
 * order; each sequence is a greedy continuation, as BL_TARGETS_SELF builds
 * them): from its first row, draft K tokens, accept them while they equal
 * the continuation's, move past the accepted ones and the model's own
 * token, and count the passes.  Since verify mode's output is the greedy
 * continuation, this is the decoding bitlens generate --drafter does
 * with its tokens per pass (less one pass per sequence: the first draft
 * here is counted as a pass, where generate drafts it from the prompt's); agree[j] /
 * compared[j] is head j+1's top-1 agreement at the positions visited. */
struct bl_drafter_sim {
    int64_t tokens, passes, sequences;
    double tokens_per_pass;
    int64_t agree[BL_DRAFTER_MAX_HEADS], compared[BL_DRAFTER_MAX_HEADS];
};
int bl_drafter_simulate(const bl_drafter *d, const struct bl_drafter_data *data, const unsigned char *mask,
                        struct bl_drafter_sim *out, bl_err *err);

/* Held-out figures of d on rows with mask[i] != 0 (NULL: all). */
int bl_drafter_evaluate(const bl_drafter *d, const struct bl_drafter_data *data, const unsigned char *mask,
                        double *loss, double *top1, bl_err *err);

/* ---------------------------------------------------------------- generation
 *
 * Greedy generation with a drafter, in one of two modes.  Slot s of the
 * output is the s-th generated token; the prompt's last position predicts
 * slot 0.  At each step the main model has just predicted slot g (its
 * argmax, over the tokenizer's tokens when the embedding is padded) from
 * the hook row h at the position before, and the drafter's K heads draft
 * slots g+1 .. g+K from h.
 *
 * BL_SPEC_VERIFY (speculative decoding): one main pass evaluates
 * [x_g, d_1 .. d_m] (m = K, fewer near the end), logits for every
 * position; d_i is accepted while it equals the main model's argmax at the
 * position before it, and the first disagreement gives the main model's
 * token instead (all m accepted: the token after d_m).  A pass yields
 * accepted + 1 tokens; the KV cache is rewound to the accepted prefix and
 * the next draft reads the hook at the last accepted position.  The output
 * is the plain greedy output: one prompt eval, then one single-token eval
 * per token through the KV cache, bit for bit: every pass after the prompt
 * is evaluated with BL_EVAL_EXACT (bitlens/ctx.h), so its logits and KV
 * entries are those of one-token evaluations.
 *
 * BL_SPEC_FAST (no verification): each pass yields the main model's token
 * plus the first k - 1 drafted ones (k = tokens_per_pass), all kept; the
 * next pass evaluates those k tokens.  tokens_per_pass 1 is plain greedy.
 *
 * Per-head figures: agree_at[j] / compared_at[j] is head j+1's top-1
 * agreement with the main model's own greedy token at the slot it drafted,
 * given the output before that slot, over the slots where that is known
 * (every output slot in VERIFY; in FAST, the slots evaluated by a later
 * pass).  In FAST, "accepted" counts the kept drafts that verification
 * would have accepted. */

enum bl_spec_mode {
    BL_SPEC_VERIFY = 1,       /* speculative decoding: output = plain greedy */
    BL_SPEC_FAST = 2          /* drafts kept unchecked */
};

struct bl_spec_params {
    int mode;                 /* enum bl_spec_mode (default VERIFY) */
    int tokens_per_pass;      /* FAST: k, tokens kept per pass, 1..K+1: the
                                 main model's own plus k-1 drafted (default 2);
                                 VERIFY: ignored */
    int64_t n_gen;            /* tokens to generate, >= 0 (default 64) */
    int stop_at_eos;          /* stop at the tokenizer's EOS or BOS token, which
                                 is not written to out (default 1) */
};
struct bl_spec_params bl_spec_default_params(void);

struct bl_spec_stats {
    int64_t tokens;           /* tokens generated (= *n_out) */
    int64_t main_passes;      /* main-model evals after the prompt's */
    int64_t drafted;          /* drafts evaluated by the main model (VERIFY)
                                 or kept (FAST) */
    int64_t accepted;         /* of those, accepted (see above) */
    double mean_accept_len;   /* tokens per main pass: tokens / main_passes
                                 (tokens when there was no pass) */
    int k;                    /* most tokens a pass yields: K + 1 (VERIFY)
                                 or tokens_per_pass (FAST) */
    int n_heads;              /* K of the drafter */
    int stopped_eos;          /* 1 if generation ended at EOS/BOS */
    int64_t offered_at[BL_DRAFTER_MAX_HEADS];  /* drafts at draft position j
                                                  (0-based) evaluated or kept */
    int64_t accept_at[BL_DRAFTER_MAX_HEADS];   /* of those, accepted */
    int64_t agree_at[BL_DRAFTER_MAX_HEADS];    /* head j+1 equals the main model's
                                                  greedy token at its slot */
    int64_t compared_at[BL_DRAFTER_MAX_HEADS]; /* slots where that is known */
};

struct bl_ctx;                /* bl_ctx of <bitlens/ctx.h> */

/* Generate greedily from prompt[0..n_prompt-1] (BOS included if wanted)
 * with the main model of ctx and drafter d: up to p->n_gen tokens into out
 * (the caller's, room for p->n_gen), their number into *n_out (0 on
 * error); p NULL: the defaults; st (may be NULL) receives the figures
 * above.  ctx is restarted (rewound to 0) and must hold
 * n_prompt + n_gen - 1 positions (BL_ERANGE otherwise).  The context's
 * hooks are cleared at entry and on return: a pass evaluates positions
 * that are then dropped, which a probe would see.  BL_EINVAL for a bad
 * mode, tokens_per_pass or n_gen, a NULL or empty prompt, a
 * NULL out, a prompt token outside the vocabulary, or a drafter whose
 * width, vocabulary or hook does not fit ctx's model. */
int bl_drafter_generate(struct bl_ctx *ctx, const bl_drafter *d, const int32_t *prompt, int64_t n_prompt,
                        const struct bl_spec_params *p, int32_t *out, int64_t *n_out, struct bl_spec_stats *st,
                        bl_err *err);

#ifdef __cplusplus
}
#endif
#endif
