/* bitlens/model.h: load a transformer checkpoint (weights mmapped).
 *
 * Formats, told apart by their first bytes:
 *   - GGUF v3 (magic "GGUF"), arch "llama", "qwen2" or "gpt2", tensors
 *     f32/f16/bf16/q8_0, with the vocabulary in its metadata;
 *   - llama2.c .bin, version 1 (magic "ak42", 256-byte header, shared
 *     classifier flag) and the legacy header of seven int32 (a negative
 *     vocab_size marks a separate classifier); f32 weights.  These carry no
 *     vocabulary: give the tokenizer.bin in the params;
 *   - a Hugging Face folder (the path is a directory): config.json with
 *     model_type "llama", "qwen2" or "gpt2", model.safetensors or a sharded
 *     model.safetensors.index.json (f32, f16, bf16), tokenizer.json.  The
 *     tensors keep Hugging Face's layout (RoPE on halves of each head; GPT-2's
 *     Conv1D matrices are transposed once at load).
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
    BL_FORMAT_LLAMA2C = 2,
    BL_FORMAT_HF = 3      /* a Hugging Face folder */
};

enum bl_arch {
    BL_ARCH_LLAMA = 1,   /* Llama 1-3, TinyLlama, SmolLM2, Mistral-style */
    BL_ARCH_QWEN2 = 2,   /* Llama with biases on q, k, v */
    BL_ARCH_GPT2 = 3     /* LayerNorm, learned positions, GELU MLP, biases */
};

enum bl_norm {
    BL_NORM_RMS = 1,     /* x / sqrt(mean(x^2) + eps) * w */
    BL_NORM_LAYER = 2    /* (x - mean) / sqrt(var + eps) * w + b */
};

enum bl_rope {
    BL_ROPE_NONE = 0,    /* no rotary embedding (GPT-2: learned positions) */
    BL_ROPE_ADJACENT = 1,/* rotate pairs (2i, 2i+1) of each head: llama2.c,
                            GGUF "llama" (weights permuted by the converter) */
    BL_ROPE_HALVES = 2   /* rotate pairs (i, i + n_rot/2): Hugging Face
                            checkpoints (rotate_half), GGUF "qwen2" */
};

enum bl_mlp {
    BL_MLP_SWIGLU = 1,   /* down(silu(gate(x)) * up(x)) */
    BL_MLP_GELU = 2      /* down(gelu_tanh(up(x) + b) ) + b */
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
    int norm;              /* enum bl_norm */
    int rope;              /* enum bl_rope */
    int mlp;               /* enum bl_mlp */
    int pos_embd;          /* 1: learned position embeddings (ctx_train rows) */
    int qkv_bias;          /* 1: q, k, v have biases */
    int rope_scaled;       /* 1: RoPE frequencies divided by per-dimension
                              factors (Llama 3 scaling, rope_freqs.weight) */
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
const char *bl_model_arch_name(const bl_model *m);      /* "llama", "qwen2", "gpt2" */
const char *bl_model_path(const bl_model *m);
size_t bl_model_file_size(const bl_model *m);
/* The model's display name (general.name, else the file's base name). */
const char *bl_model_name(const bl_model *m);

/* The files the model was read from (the weights file, a llama2.c
 * tokenizer.bin, the shards of a Hugging Face folder), for identities like
 * sha256 sums.  Owned by the model. */
int64_t bl_model_n_files(const bl_model *m);
const char *bl_model_file(const bl_model *m, int64_t i);

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

/* Write the model as a GGUF v3 file at `path` (through a temporary name):
 * its architecture's metadata, its vocabulary if it has one, and every
 * tensor under its GGUF name, matrices converted to `type` (BL_F32, BL_F16,
 * BL_BF16 or BL_Q8_0; under q8_0 a matrix whose rows are not whole blocks
 * is written f16), vectors in f32.  A Llama checkpoint in Hugging Face's
 * layout gets its q and k rows permuted to GGUF's adjacent pairs, so
 * llama.cpp reads the file too. */
int bl_model_write_gguf(const bl_model *m, const char *path, int type, bl_err *err);

/* The GGUF handle of a GGUF model (NULL for other formats), for metadata. */
const bl_gguf *bl_model_gguf(const bl_model *m);

#ifdef __cplusplus
}
#endif
#endif
