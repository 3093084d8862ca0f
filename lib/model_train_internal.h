/* lib/model_train_internal.h: the trainer's model (lib/model_train.c),
 * for the tests: its parameter layout, loss and gradient, forward pass and
 * GGUF writer.  Not installed; symbols bli_mt_*. */
#ifndef BITLENS_MODEL_TRAIN_INTERNAL_H
#define BITLENS_MODEL_TRAIN_INTERNAL_H

#include <stdint.h>

#include <bitlens/train.h>

/* Longest window: keeps every workspace size far from overflowing. */
#define BLI_MT_MAX_SEQ (1 << 16)

/* Offsets (in floats) of one block's tensors in the parameter block. */
struct bli_mt_layer {
    int64_t attn_norm;   /* [D] */
    int64_t wq, wk, wv;  /* [D x D] each, rows = outputs */
    int64_t wo;          /* [D x D] */
    int64_t ffn_norm;    /* [D] */
    int64_t w_gate;      /* [F x D] */
    int64_t w_up;        /* [F x D] */
    int64_t w_down;      /* [D x F] */
};

/* A parameter tensor: its GGUF name and place. */
struct bli_mt_tensor {
    char name[48];       /* "blk.3.attn_q.weight" */
    int64_t off;         /* first float in params */
    int64_t ne0, ne1;    /* GGUF shape: ne0 columns (innermost), ne1 rows;
                            ne1 = 1 for a vector */
    int matrix;          /* decayed by AdamW */
};

/* The model being trained: all parameters in one f32 block, tensor after
 * tensor in file order: token_embd, then block by block attn_norm, attn_q,
 * attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, then
 * output_norm and (untied) output. */
struct bli_mt {
    struct bl_model_train_config cfg;   /* n_vocab resolved */
    int64_t V, D, L, H, hd, F;          /* vocabulary, dim, layers, heads,
                                           head_dim, hidden_dim */
    int64_t n_params;
    float *params;                      /* [n_params] (owned) */
    int64_t embd, out_norm, out;        /* offsets; out = embd when tied */
    struct bli_mt_layer *layer;         /* [L] (owned) */
    int64_t n_tensors;
    struct bli_mt_tensor *tensor;       /* [n_tensors] (owned) */
    float *rope_cos, *rope_sin;         /* [n_ctx x hd/2]: as bl_ctx builds
                                           them (double, rounded once) */
};

/* Check c (n_vocab already resolved, > 0) and seq (<= 0: not checked):
 * BL_EINVAL with a message naming the field. */
int bli_mt_check_config(const struct bl_model_train_config *c, int64_t seq, bl_err *err);

/* A model of shape c (checked here; c->n_vocab > 0), parameters zero.
 * Free with bli_mt_free. */
int bli_mt_alloc(struct bli_mt **out, const struct bl_model_train_config *c, bl_err *err);
void bli_mt_free(struct bli_mt *m);

/* The starting parameters of bitlens/train.h from seed. */
int bli_mt_init(struct bli_mt *m, uint64_t seed, bl_err *err);

/* Per-thread activations for windows of up to T positions (opaque). */
struct bli_mt_ws;
struct bli_mt_ws *bli_mt_ws_alloc(const struct bli_mt *m, int64_t T);
void bli_mt_ws_free(struct bli_mt_ws *w);

/* Mean next-token cross-entropy (nats) of B windows tok[b * (T + 1) ..
 * b * (T + 1) + T] (inputs 0..T-1, targets 1..T), each from position 0;
 * with grad (n_params floats, not NULL) its gradient, summed over the
 * windows in window order.  n_threads threads (0: all), one workspace
 * each for windows of T (allocated here).  NAN when out of memory.  Ids
 * are not checked. */
double bli_mt_loss(const struct bli_mt *m, const int32_t *tok, int64_t B, int64_t T, float *grad, int n_threads);

/* Logits [T x V] of one window tok[0..T-1] from position 0 (w for T). */
void bli_mt_forward(const struct bli_mt *m, struct bli_mt_ws *w, const int32_t *tok, int64_t T, float *logits);

/* Write m as GGUF "llama" at path with tok's vocabulary (NULL: none) and
 * general.name `name` (NULL: "bitlens-llama"). */
int bli_mt_write_gguf(const struct bli_mt *m, const bl_tokenizer *tok, const char *name, const char *path,
                      bl_err *err);

#endif
