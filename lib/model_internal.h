/* lib/model_internal.h: the parts of bl_model the forward pass reads. */
#ifndef BITLENS_MODEL_INTERNAL_H
#define BITLENS_MODEL_INTERNAL_H

#include <bitlens/model.h>

/* A weight matrix or vector ready for the kernels; data == NULL when the
 * model has no such weight (a bias GPT-2 has and Llama has not). */
struct bli_weight {
    const struct bl_tensor *t;   /* the tensor it comes from (name, type, shape) */
    const void *data;            /* its rows (a view into t for the q, k and v
                                    parts of a fused attn_qkv), or an f32 copy
                                    for vectors stored in f16/bf16 */
    int type;                    /* type of data */
};

struct bli_layer {
    struct bli_weight attn_norm, attn_norm_b;   /* [D] */
    struct bli_weight wq, wk, wv;               /* [Q x D], [KV x D], [KV x D] */
    struct bli_weight bq, bk, bv;               /* [Q], [KV], [KV] */
    struct bli_weight wo, bo;                   /* [D x Q], [D] */
    struct bli_weight ffn_norm, ffn_norm_b;     /* [D] */
    struct bli_weight w_gate;                   /* [F x D], SwiGLU only */
    struct bli_weight w_up, b_up;               /* [F x D], [F] */
    struct bli_weight w_down, b_down;           /* [D x F], [D] */
};

/* Weights of a loaded model (owned by it). */
struct bli_weights {
    struct bli_weight tok_embd;       /* [n_vocab x D] */
    struct bli_weight pos_embd;       /* [ctx_train x D], learned positions only */
    struct bli_layer *layers;         /* n_layers */
    struct bli_weight output_norm, output_norm_b;
    struct bli_weight output;         /* [n_vocab x D]; the embedding when tied */
    const float *rope_factors;        /* [n_rot/2]: RoPE frequency j is divided
                                         by rope_factors[j] (Llama 3 scaling),
                                         or NULL */
};

const struct bli_weights *bli_model_weights(const bl_model *m);

/* ---- for the loaders (model.c, model_hf.c) and the writer (model_write.c) */

#include <bitlens/gguf.h>
#include <bitlens/safetensors.h>
#include "internal.h"

#define BLI_MAX_DIM (1 << 16)
#define BLI_MAX_LAYERS 1024
#define BLI_MAX_VOCAB (1 << 24)
#define BLI_MAX_CTX (1 << 24)

struct bl_model {
    char *path;
    char *name;
    int format;                 /* enum bl_format */
    int format_version;
    size_t file_size;
    struct bli_map map;         /* llama2.c: the mapping */
    bl_gguf *gguf;              /* GGUF: the parsed file (owns the mapping) */
    bl_safetensors *st;         /* Hugging Face: the weights (own the mappings) */
    struct bl_model_config cfg;
    int64_t n_tensors;
    const struct bl_tensor **tensors;   /* file order */
    struct bl_tensor *own;      /* llama2.c, Hugging Face: tensors under GGUF names */
    char *names;                /* llama2.c: their names */
    struct bli_weights w;
    unsigned char *used;        /* [n_tensors]: bound to a weight */
    void **owned;               /* buffers freed with the model */
    int64_t n_owned;
    bl_tokenizer *tok;
    char **files;               /* files read: weights, tokenizer, shards */
    int64_t n_files;
    int describe_only;
    char *not_computable;       /* why the forward pass cannot run, or NULL */
};

/* Note a file the model was read from (copied). */
int bli_model_add_file(bl_model *m, const char *path);
/* Buffers kept until the model is freed. */
void *bli_model_own(bl_model *m, size_t bytes);
/* The layer recipe (norm, rope, mlp, biases) of an architecture. */
void bli_model_set_family(struct bl_model_config *c, int arch);
/* Hyperparameters in range and consistent. */
int bli_model_check_config(const bl_model *m, bl_err *err);
/* Find, check and bind every weight by GGUF name from m->tensors. */
int bli_model_bind_all(bl_model *m, bl_err *err);
/* Every tensor of m->tensors bound to a weight. */
int bli_model_check_all_used(const bl_model *m, bl_err *err);
/* Load a Hugging Face folder (config.json, safetensors, tokenizer.json). */
int bli_model_load_hf(bl_model *m, const struct bl_model_params *p, bl_err *err);

#endif
