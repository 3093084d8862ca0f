/* bitlens/model.h: load a transformer checkpoint (weights mmapped).
 *
 * Formats, told apart by their first bytes:
 *   - GGUF v3 (magic "GGUF"), arch "llama", tensors f32/f16/bf16, with the
 *     vocabulary in its metadata;
 *   - llama2.c .bin, version 1 (magic "ak42", 256-byte header, shared
 *     classifier flag) and the legacy header of seven int32 (a negative
 *     vocab_size marks a separate classifier); f32 weights.  These carry no
 *     vocabulary: give the tokenizer.bin in the params.
 *
 * All formats are presented through GGUF tensor names (token_embd.weight,
 * blk.N.attn_q.weight, ..., output.weight) so `bitlens info` shows one table.
 */
#ifndef BITLENS_MODEL_H
#define BITLENS_MODEL_H

#include <bitlens/common.h>
#include <bitlens/tensor.h>
#include <bitlens/tokenizer.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_model bl_model;

enum bl_format {
    BL_FORMAT_GGUF = 1,
    BL_FORMAT_LLAMA2C = 2
};

enum bl_arch {
    BL_ARCH_LLAMA = 1
};

/* Hyperparameters, as read from the file. */
struct bl_model_config {
    int arch;              /* enum bl_arch */
    int64_t n_vocab;       /* rows of the token embedding */
    int64_t dim;           /* d_model, width of the residual stream */
    int64_t n_layers;
    int64_t n_heads;       /* query heads */
    int64_t n_kv_heads;    /* key/value heads (grouped-query attention) */
    int64_t head_dim;      /* dim / n_heads */
    int64_t hidden_dim;    /* width of the MLP */
    int64_t ctx_train;     /* context length the model was trained with */
    int64_t n_rot;         /* rotary dimensions per head (<= head_dim) */
    float rope_base;       /* RoPE frequency base (10000) */
    float norm_eps;        /* RMSNorm epsilon */
    int tied_classifier;   /* 1: the unembedding is the token embedding */
};

struct bl_model_params {
    const char *tokenizer_path;   /* llama2.c tokenizer.bin, or NULL */
    int describe_only;            /* accept tensor types bitlens cannot compute
                                     with (for `bitlens info`); such a model
                                     has bl_model_computable() == 0 */
};

struct bl_model_params bl_model_default_params(void);

/* Load `path`.  *out owns the mapping and the tokenizer; free with
 * bl_model_free().  On failure err names the file, the offset and the
 * problem. */
int bl_model_load(bl_model **out, const char *path, const struct bl_model_params *params,
                  bl_err *err);

void bl_model_free(bl_model *m);

const struct bl_model_config *bl_model_config(const bl_model *m);
int bl_model_format(const bl_model *m);                 /* enum bl_format */
const char *bl_model_format_name(const bl_model *m);    /* "gguf v3", "llama2.c v0" */
const char *bl_model_arch_name(const bl_model *m);      /* "llama" */
const char *bl_model_path(const bl_model *m);
size_t bl_model_file_size(const bl_model *m);
/* The model's display name (general.name, else the file's base name). */
const char *bl_model_name(const bl_model *m);

/* Tensors in file order.  Owned by the model. */
int64_t bl_model_n_tensors(const bl_model *m);
const struct bl_tensor *bl_model_tensor(const bl_model *m, int64_t i);
const struct bl_tensor *bl_model_find_tensor(const bl_model *m, const char *name);

/* Number of parameters (elements of all tensors; a tied classifier counts
 * once).  Bytes of weights one decode step reads (every matrix once, the
 * embedding row aside). */
int64_t bl_model_n_params(const bl_model *m);
size_t bl_model_decode_bytes(const bl_model *m);

/* The tokenizer: from the GGUF metadata or the params' tokenizer.bin; NULL
 * if the model was loaded without one.  Owned by the model. */
const bl_tokenizer *bl_model_tokenizer(const bl_model *m);

/* 1 if the forward pass can run this model; else 0 and *why (if not NULL)
 * says which tensor stops it.  Only a describe_only load can yield 0. */
int bl_model_computable(const bl_model *m, const char **why);

/* The GGUF handle of a GGUF model (NULL for other formats), for metadata. */
const bl_gguf *bl_model_gguf(const bl_model *m);

#ifdef __cplusplus
}
#endif
#endif
