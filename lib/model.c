/* lib/model.c: load GGUF and llama2.c checkpoints into one description.
 *
 * Both formats end as a table of tensors with GGUF names and shapes, checked
 * against the hyperparameters (every shape, every type, every byte inside
 * the file) before the forward pass may touch them. */
#include "config.h"

#include <errno.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <string.h>

#include <bitlens/gguf.h>
#include <bitlens/model.h>
#include "internal.h"
#include "model_internal.h"

/* Upper bounds on hyperparameters: far above any real model, low enough
 * that products of them cannot overflow. */
#define MAX_DIM BLI_MAX_DIM
#define MAX_LAYERS BLI_MAX_LAYERS
#define MAX_VOCAB BLI_MAX_VOCAB
#define MAX_CTX BLI_MAX_CTX


struct bl_model_params bl_model_default_params(void)
{
    struct bl_model_params p = {NULL, 0};
    return p;
}

int bl_model_computable(const bl_model *m, const char **why)
{
    if (why)
        *why = m->not_computable;
    return m->not_computable == NULL;
}

const struct bli_weights *bli_model_weights(const bl_model *m) { return &m->w; }
const struct bl_model_config *bl_model_config(const bl_model *m) { return &m->cfg; }
int bl_model_format(const bl_model *m) { return m->format; }
const char *bl_model_path(const bl_model *m) { return m->path; }
const char *bl_model_name(const bl_model *m) { return m->name; }
size_t bl_model_file_size(const bl_model *m) { return m->file_size; }
int64_t bl_model_n_tensors(const bl_model *m) { return m->n_tensors; }
const bl_tokenizer *bl_model_tokenizer(const bl_model *m) { return m->tok; }
const bl_gguf *bl_model_gguf(const bl_model *m) { return m->gguf; }

const char *bl_model_arch_name(const bl_model *m)
{
    switch (m->cfg.arch) {
    case BL_ARCH_LLAMA: return "llama";
    case BL_ARCH_QWEN2: return "qwen2";
    case BL_ARCH_GPT2: return "gpt2";
    default: return "unknown";
    }
}

const char *bl_model_format_name(const bl_model *m)
{
    if (m->format == BL_FORMAT_GGUF)
        return m->format_version == 2 ? "gguf v2" : "gguf v3";
    if (m->format == BL_FORMAT_HF)
        return "hugging face (safetensors)";
    return m->format_version == 1 ? "llama2.c v1" : "llama2.c v0 (legacy header)";
}

int64_t bl_model_n_files(const bl_model *m)
{
    return m->n_files;
}

const char *bl_model_file(const bl_model *m, int64_t i)
{
    BL_ASSERT(i >= 0 && i < m->n_files);
    return m->files[i];
}

int bli_model_add_file(bl_model *m, const char *path)
{
    for (int64_t i = 0; i < m->n_files; i++)
        if (strcmp(m->files[i], path) == 0)
            return BL_OK;
    char **f = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *f);
    if (!f)
        return BL_ENOMEM;
    m->files = f;
    if (!(f[m->n_files] = bli_strdup(path)))
        return BL_ENOMEM;
    m->n_files++;
    return BL_OK;
}

const struct bl_tensor *bl_model_tensor(const bl_model *m, int64_t i)
{
    BL_ASSERT(i >= 0 && i < m->n_tensors);
    return m->tensors[i];
}

const struct bl_tensor *bl_model_find_tensor(const bl_model *m, const char *name)
{
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i]->name, name) == 0)
            return m->tensors[i];
    return NULL;
}

int64_t bl_model_n_params(const bl_model *m)
{
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        n += bl_tensor_nelements(m->tensors[i]);
    return n;
}

size_t bl_model_decode_bytes(const bl_model *m)
{
    size_t b = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i] != m->w.tok_embd.t && m->tensors[i] != m->w.pos_embd.t)
            b += m->tensors[i]->nbytes;
    if (m->w.pos_embd.t)
        b += m->w.pos_embd.t->nbytes / (size_t)m->cfg.ctx_train;   /* one row */
    if (m->cfg.tied_classifier)
        b += m->w.tok_embd.t->nbytes;   /* read whole as the classifier */
    else
        b += m->w.tok_embd.t->nbytes / (size_t)m->cfg.n_vocab;   /* one row */
    return b;
}

void bl_model_free(bl_model *m)
{
    if (!m)
        return;
    bl_tokenizer_free(m->tok);
    bl_gguf_free(m->gguf);
    if (m->st)
        bl_safetensors_free(m->st);
    bli_unmap(&m->map);
    free(m->w.layers);
    free(m->tensors);
    free(m->own);
    free(m->names);
    for (int64_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    for (int64_t i = 0; i < m->n_files; i++)
        free(m->files[i]);
    free(m->files);
    free(m->owned);
    free(m->used);
    free(m->not_computable);
    free(m->path);
    free(m->name);
    free(m);
}

/* ------------------------------------------------------------ validation */

int bli_model_check_config(const bl_model *m, bl_err *err)
{
    const struct bl_model_config *c = &m->cfg;
    const char *p = m->path;
#define RANGE(v, name, lo, hi)                                                                 \
    if ((v) < (lo) || (v) > (hi))                                                              \
        return bli_err(err, BL_EFORMAT, "%s: %s = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", \
                       p, name, (int64_t)(v), (int64_t)(lo), (int64_t)(hi));
    RANGE(c->dim, "dim (embedding length)", 1, MAX_DIM);
    RANGE(c->n_layers, "layers (block count)", 1, MAX_LAYERS);
    RANGE(c->n_heads, "heads", 1, c->dim);
    RANGE(c->n_kv_heads, "key/value heads", 1, c->n_heads);
    RANGE(c->hidden_dim, "hidden dim (feed-forward length)", 1, 16 * MAX_DIM);
    RANGE(c->n_vocab, "vocabulary size", 1, MAX_VOCAB);
    RANGE(c->ctx_train, "context length", 1, MAX_CTX);
#undef RANGE
    if (c->dim % c->n_heads)
        return bli_err(err, BL_EFORMAT, "%s: dim %" PRId64 " is not a multiple of n_heads %" PRId64, p,
                       c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return bli_err(err, BL_EFORMAT, "%s: n_heads %" PRId64 " is not a multiple of n_kv_heads %" PRId64,
                       p, c->n_heads, c->n_kv_heads);
    if (c->rope != BL_ROPE_NONE && (c->n_rot < 2 || c->n_rot > c->head_dim || c->n_rot % 2))
        return bli_err(err, BL_EFORMAT, "%s: rotary dimension %" PRId64 " must be even and at most the head dimension %" PRId64,
                       p, c->n_rot, c->head_dim);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return bli_err(err, BL_EFORMAT, "%s: norm epsilon %g is out of range (0, 1)", p, c->norm_eps);
    if (c->rope != BL_ROPE_NONE && !(c->rope_base > 1))
        return bli_err(err, BL_EFORMAT, "%s: RoPE base %g must exceed 1", p, c->rope_base);
    return BL_OK;
}

/* Keep a buffer until the model is freed (f32 copies of vectors,
 * transposed or synthesized tensors). */
void *bli_model_own(bl_model *m, size_t bytes)
{
    void **o = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *o);
    if (!o)
        return NULL;
    m->owned = o;
    void *p = malloc(bytes ? bytes : 1);
    if (p)
        m->owned[m->n_owned++] = p;
    return p;
}

static int64_t tensor_index(const bl_model *m, const struct bl_tensor *t)
{
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i] == t)
            return i;
    return -1;
}

/* Bind a weight: the tensor exists, has shape {ne0, ne1} (ne1 = 0 for a
 * vector), and a type bitlens computes with; it is marked used.  Vectors
 * not stored in f32 are converted once, so the kernels read f32. */
static int bind(bl_model *m, struct bli_weight *w, const char *name, int64_t ne0, int64_t ne1,
                int optional, bl_err *err)
{
    const struct bl_tensor *t = bl_model_find_tensor(m, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (optional)
            return BL_OK;
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s' is missing", m->path, name);
    }
    int dims = ne1 ? 2 : 1;
    int ok = t->ne[0] == ne0 && (dims == 1 ? t->n_dims == 1 || bl_tensor_nelements(t) == ne0
                                           : t->ne[1] == ne1 && bl_tensor_nelements(t) == ne0 * ne1);
    if (!ok) {
        if (dims == 1)
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s' has shape [%" PRId64 ", %" PRId64 "], expected [%" PRId64 "]",
                           m->path, name, t->ne[0], t->ne[1], ne0);
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s' has shape [%" PRId64 ", %" PRId64 "], expected [%" PRId64 ", %" PRId64 "]",
                       m->path, name, t->ne[0], t->ne[1], ne0, ne1);
    }
    m->used[tensor_index(m, t)] = 1;
    w->t = t;
    w->data = t->data;
    w->type = t->type;
    if (!bl_dtype_supported(t->type)) {
        bl_err e;
        bli_err(&e, BL_EUNSUPPORTED, "%s: tensor '%s' has type %s, which bitlens cannot compute with (f32, f16, bf16, q8_0)",
                m->path, name, bl_dtype_name(t->type));
        if (!m->describe_only)
            return bli_err(err, e.code, "%s", e.msg);
        if (!m->not_computable && !(m->not_computable = bli_strdup(e.msg)))
            return bli_err(err, BL_ENOMEM, "out of memory");
        return BL_OK;
    }
    if (dims == 1 && t->type != BL_F32) {
        float *f = bli_model_own(m, (size_t)ne0 * sizeof *f);
        if (!f)
            return bli_err(err, BL_ENOMEM, "out of memory");
        bl_to_f32(t->type, t->data, f, ne0);
        w->data = f;
        w->type = BL_F32;
    }
    return BL_OK;
}

/* rows [r0, r0 + n) of a bound matrix (or of a vector: elements) */
static struct bli_weight view(const struct bli_weight *w, int64_t r0, int64_t cols)
{
    struct bli_weight v = *w;
    if (w->data)
        v.data = (const unsigned char *)w->data + (size_t)r0 * bl_dtype_row_bytes(w->type, cols);
    return v;
}

#define BIND(w, nm, a, b, opt)                                                                 \
    do {                                                                                       \
        if ((rc = bind(m, (w), (nm), (a), (b), (opt), err)))                                   \
            return rc;                                                                         \
    } while (0)

int bli_model_bind_all(bl_model *m, bl_err *err)
{
    struct bl_model_config *c = &m->cfg;
    int64_t D = c->dim, F = c->hidden_dim, V = c->n_vocab;
    int64_t Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim;
    int bias = c->arch == BL_ARCH_GPT2, ln = c->norm == BL_NORM_LAYER;
    char name[96];
    int rc;

    m->w.layers = bli_calloc((size_t)c->n_layers, sizeof *m->w.layers);
    m->used = bli_calloc((size_t)m->n_tensors, 1);
    if (!m->w.layers || !m->used)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", m->path);
    BIND(&m->w.tok_embd, "token_embd.weight", D, V, 0);
    if (c->pos_embd)
        BIND(&m->w.pos_embd, "position_embd.weight", D, c->ctx_train, 0);
#define LNAME(suffix) (snprintf(name, sizeof name, "blk.%" PRId64 ".%s", l, (suffix)), name)
    for (int64_t l = 0; l < c->n_layers; l++) {
        struct bli_layer *L = &m->w.layers[l];
        BIND(&L->attn_norm, LNAME("attn_norm.weight"), D, 0, 0);
        if (ln)
            BIND(&L->attn_norm_b, LNAME("attn_norm.bias"), D, 0, 0);
        /* a fused attn_qkv is rows [q | k | v]: bind views of it */
        if (bl_model_find_tensor(m, LNAME("attn_qkv.weight"))) {
            struct bli_weight qkv, bqkv;
            BIND(&qkv, LNAME("attn_qkv.weight"), D, Q + 2 * KV, 0);
            L->wq = view(&qkv, 0, D);
            L->wk = view(&qkv, Q, D);
            L->wv = view(&qkv, Q + KV, D);
            BIND(&bqkv, LNAME("attn_qkv.bias"), Q + 2 * KV, 0, !(bias || c->qkv_bias));
            L->bq = view(&bqkv, 0, 1);
            L->bk = view(&bqkv, Q, 1);
            L->bv = view(&bqkv, Q + KV, 1);
        } else {
            int qb = !(bias || c->qkv_bias);
            BIND(&L->wq, LNAME("attn_q.weight"), D, Q, 0);
            BIND(&L->wk, LNAME("attn_k.weight"), D, KV, 0);
            BIND(&L->wv, LNAME("attn_v.weight"), D, KV, 0);
            BIND(&L->bq, LNAME("attn_q.bias"), Q, 0, qb);
            BIND(&L->bk, LNAME("attn_k.bias"), KV, 0, qb);
            BIND(&L->bv, LNAME("attn_v.bias"), KV, 0, qb);
        }
        BIND(&L->wo, LNAME("attn_output.weight"), Q, D, 0);
        BIND(&L->bo, LNAME("attn_output.bias"), D, 0, !bias);
        BIND(&L->ffn_norm, LNAME("ffn_norm.weight"), D, 0, 0);
        if (ln)
            BIND(&L->ffn_norm_b, LNAME("ffn_norm.bias"), D, 0, 0);
        if (c->mlp == BL_MLP_SWIGLU)
            BIND(&L->w_gate, LNAME("ffn_gate.weight"), D, F, 0);
        BIND(&L->w_up, LNAME("ffn_up.weight"), D, F, 0);
        BIND(&L->b_up, LNAME("ffn_up.bias"), F, 0, !bias);
        BIND(&L->w_down, LNAME("ffn_down.weight"), F, D, 0);
        BIND(&L->b_down, LNAME("ffn_down.bias"), D, 0, !bias);
    }
#undef LNAME
    BIND(&m->w.output_norm, "output_norm.weight", D, 0, 0);
    if (ln)
        BIND(&m->w.output_norm_b, "output_norm.bias", D, 0, 0);
    BIND(&m->w.output, "output.weight", D, V, 1);
    c->tied_classifier = m->w.output.t == NULL;
    if (c->tied_classifier)
        m->w.output = m->w.tok_embd;
    if (c->rope != BL_ROPE_NONE) {
        struct bli_weight rf;
        BIND(&rf, "rope_freqs.weight", c->n_rot / 2, 0, 1);
        if (rf.data) {
            m->w.rope_factors = rf.data;
            c->rope_scaled = 1;
        }
    }
    return BL_OK;
}

/* Every tensor of the file must be one the model uses: a tensor left over
 * means the hyperparameters (say block_count) disagree with the file, and
 * running it would silently drop weights.  (llama.cpp refuses such files
 * too.) */
int bli_model_check_all_used(const bl_model *m, bl_err *err)
{
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!m->used[i])
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s' is not used by a %s model of %" PRId64
                           " blocks (the hyperparameters disagree with the tensors)",
                           m->path, m->tensors[i]->name, bl_model_arch_name(m), m->cfg.n_layers);
    return BL_OK;
}

/* The layer recipe of each architecture. */
void bli_model_set_family(struct bl_model_config *c, int arch)
{
    c->arch = arch;
    c->norm = arch == BL_ARCH_GPT2 ? BL_NORM_LAYER : BL_NORM_RMS;
    c->mlp = arch == BL_ARCH_GPT2 ? BL_MLP_GELU : BL_MLP_SWIGLU;
    c->pos_embd = arch == BL_ARCH_GPT2;
    c->qkv_bias = arch != BL_ARCH_LLAMA;
    /* GGUF "llama" weights are permuted for adjacent pairs; "qwen2" keeps
     * Hugging Face's halves (llama.cpp's NEOX rope type) */
    c->rope = arch == BL_ARCH_GPT2 ? BL_ROPE_NONE : arch == BL_ARCH_QWEN2 ? BL_ROPE_HALVES : BL_ROPE_ADJACENT;
}

/* ------------------------------------------------------------------ GGUF */

static int gguf_key(const bl_model *m, const char *arch, const char *suffix, int64_t *out,
                    int64_t dflt, int required, bl_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = bl_gguf_get_i64(m->gguf, key, out, err);
    if (rc == BL_ENOTFOUND) {
        if (required)
            return bli_err(err, BL_EFORMAT, "%s: required key '%s' is missing", m->path, key);
        *out = dflt;
        return BL_OK;
    }
    return rc;
}

static int gguf_keyf(const bl_model *m, const char *arch, const char *suffix, float *out,
                     float dflt, bl_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = bl_gguf_get_f32(m->gguf, key, out, err);
    if (rc == BL_ENOTFOUND) {
        *out = dflt;
        return BL_OK;
    }
    return rc;
}

static int load_gguf(bl_model *m, const struct bl_model_params *p, bl_err *err)
{
    struct bl_gguf_str s;
    char arch[32];
    int rc;

    if ((rc = bl_gguf_open(&m->gguf, m->path, err)))
        return rc;
    m->format = BL_FORMAT_GGUF;
    m->format_version = (int)bl_gguf_version(m->gguf);
    m->file_size = bl_gguf_file_size(m->gguf);
    rc = bl_gguf_get_str(m->gguf, "general.architecture", &s, err);
    if (rc == BL_ENOTFOUND)
        return bli_err(err, BL_EFORMAT, "%s: general.architecture is missing", m->path);
    if (rc)
        return rc;
    snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 31 ? s.len : 31), s.ptr);
    struct bl_model_config *c = &m->cfg;
    if (strcmp(arch, "llama") == 0) {
        bli_model_set_family(c, BL_ARCH_LLAMA);
    } else if (strcmp(arch, "qwen2") == 0) {
        bli_model_set_family(c, BL_ARCH_QWEN2);
    } else if (strcmp(arch, "gpt2") == 0) {
        bli_model_set_family(c, BL_ARCH_GPT2);
    } else {
        return bli_err(err, BL_EUNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2 and gpt2 are)",
                       m->path, arch);
    }
    if (bl_gguf_get_str(m->gguf, "general.name", &s, NULL) == BL_OK && s.len > 0) {
        free(m->name);
        m->name = bli_strndup(s.ptr, s.len < 200 ? (size_t)s.len : 200);
        if (!m->name)
            return bli_err(err, BL_ENOMEM, "out of memory");
    }
    char key[64];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (bl_gguf_get_str(m->gguf, key, &s, NULL) == BL_OK && !(s.len == 4 && memcmp(s.ptr, "none", 4) == 0))
        return bli_err(err, BL_EUNSUPPORTED, "%s: RoPE scaling '%.*s' is not supported (frequency factors in rope_freqs.weight are)",
                       m->path, (int)(s.len < 32 ? s.len : 32), s.ptr);

    int64_t n_rot;
    if ((rc = gguf_key(m, arch, "embedding_length", &c->dim, 0, 1, err)) ||
        (rc = gguf_key(m, arch, "block_count", &c->n_layers, 0, 1, err)) ||
        (rc = gguf_key(m, arch, "feed_forward_length", &c->hidden_dim, 0, 1, err)) ||
        (rc = gguf_key(m, arch, "attention.head_count", &c->n_heads, 0, 1, err)) ||
        (rc = gguf_key(m, arch, "attention.head_count_kv", &c->n_kv_heads, c->n_heads, 0, err)) ||
        (rc = gguf_key(m, arch, "context_length", &c->ctx_train, 2048, c->pos_embd, err)) ||
        (rc = gguf_key(m, arch, "rope.dimension_count", &n_rot, 0, 0, err)) ||
        (rc = gguf_keyf(m, arch, "rope.freq_base", &c->rope_base, 10000.0f, err)) ||
        (rc = gguf_keyf(m, arch, c->norm == BL_NORM_RMS ? "attention.layer_norm_rms_epsilon"
                                                        : "attention.layer_norm_epsilon",
                        &c->norm_eps, 1e-5f, err)))
        return rc;
    if (c->n_heads > 0 && c->dim > 0)
        c->head_dim = c->dim / c->n_heads;
    c->n_rot = c->rope == BL_ROPE_NONE ? 0 : n_rot ? n_rot : c->head_dim;
    const struct bl_tensor *emb = bl_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb)
        return bli_err(err, BL_EFORMAT, "%s: tensor 'token_embd.weight' is missing", m->path);
    c->n_vocab = emb->n_dims >= 2 ? emb->ne[1] : 0;
    if ((rc = bli_model_check_config(m, err)))
        return rc;
    int64_t vs;
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    if (bl_gguf_get_i64(m->gguf, key, &vs, NULL) == BL_OK && vs != c->n_vocab)
        return bli_err(err, BL_EMISMATCH, "%s: %s %" PRId64 " disagrees with the embedding's %" PRId64 " rows",
                       m->path, key, vs, c->n_vocab);

    m->n_tensors = bl_gguf_n_tensors(m->gguf);
    m->tensors = bli_calloc((size_t)m->n_tensors, sizeof *m->tensors);
    if (!m->tensors)
        return bli_err(err, BL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < m->n_tensors; i++)
        m->tensors[i] = bl_gguf_tensor(m->gguf, i);
    if ((rc = bli_model_bind_all(m, err)) || (rc = bli_model_check_all_used(m, err)))
        return rc;

    if (p->tokenizer_path)
        return bl_tokenizer_load_llama2c(&m->tok, p->tokenizer_path, c->n_vocab, err);
    rc = bl_tokenizer_from_gguf(&m->tok, m->gguf, err);
    if (rc == BL_ENOTFOUND)
        return BL_OK;   /* a model without a vocabulary: info works, generate asks for -z */
    if (rc)
        return rc;
    if (bl_tokenizer_n_vocab(m->tok) != c->n_vocab)
        return bli_err(err, BL_EMISMATCH, "%s: the vocabulary has %" PRId64 " tokens but the embedding has %" PRId64 " rows",
                       m->path, bl_tokenizer_n_vocab(m->tok), c->n_vocab);
    return BL_OK;
}

/* -------------------------------------------------------------- llama2.c */

#define LLAMA2C_MAGIC 0x616b3432u   /* "ak42" */

/* Add a synthesized tensor over [off, off + nbytes) of the file. */
static int add_tensor(bl_model *m, char **namep, const char *name, int64_t ne0, int64_t ne1,
                      size_t *off, bl_err *err)
{
    size_t nbytes = (size_t)ne0 * (size_t)(ne1 ? ne1 : 1) * 4;
    if (!bli_in_bounds(*off, nbytes, m->file_size))
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s' at offset %zu + %zu bytes runs past the end of the file (size %zu): truncated?",
                       m->path, name, *off, nbytes, m->file_size);
    struct bl_tensor *t = &m->own[m->n_tensors];
    size_t len = strlen(name) + 1;
    memcpy(*namep, name, len);
    t->name = *namep;
    *namep += len;
    t->type = BL_F32;
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    t->offset = *off;
    t->nbytes = nbytes;
    t->data = m->map.data + *off;
    m->tensors[m->n_tensors++] = t;
    *off += nbytes;
    return BL_OK;
}

static int load_llama2c(bl_model *m, const struct bl_model_params *p, bl_err *err)
{
    const unsigned char *d;
    size_t off, hdr;
    int shared;
    int rc;

    if ((rc = bli_map_file(&m->map, m->path, err)))
        return rc;
    d = m->map.data;
    m->file_size = m->map.size;
    m->format = BL_FORMAT_LLAMA2C;
    if (m->file_size >= 4 && bli_rd_u32(d) == LLAMA2C_MAGIC) {
        if (m->file_size < 256)
            return bli_err(err, BL_EFORMAT, "%s: llama2.c header is cut short (%zu of 256 bytes)", m->path, m->file_size);
        int32_t version = bli_rd_i32(d + 4);
        if (version != 1)
            return bli_err(err, BL_EUNSUPPORTED, "%s: llama2.c version %" PRId32 " is not supported (version 1 float32 and the legacy header are%s)",
                           m->path, version, version == 2 ? "; version 2 holds int8 weights" : "");
        m->format_version = 1;
        hdr = 8;
        shared = d[36];
        off = 256;
    } else {
        if (m->file_size < 28)
            return bli_err(err, BL_EFORMAT, "%s: too short for a model file (%zu bytes)", m->path, m->file_size);
        m->format_version = 0;
        hdr = 0;
        shared = -1;   /* from the sign of vocab_size */
        off = 28;
    }
    int32_t h[7];
    for (int i = 0; i < 7; i++)
        h[i] = bli_rd_i32(d + hdr + 4 * i);
    if (shared < 0) {
        shared = h[5] > 0;
        if (h[5] < 0 && h[5] != INT32_MIN)
            h[5] = -h[5];
    }
    struct bl_model_config *c = &m->cfg;
    bli_model_set_family(c, BL_ARCH_LLAMA);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->n_vocab = h[5];
    c->ctx_train = h[6];
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    c->n_rot = c->head_dim;
    c->rope_base = 10000.0f;
    c->norm_eps = 1e-5f;
    if (m->format_version == 0 &&
        (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
         c->n_kv_heads <= 0 || c->n_vocab <= 0 || c->ctx_train <= 0))
        return bli_err(err, BL_EFORMAT, "%s: not a model file bitlens knows (no GGUF or llama2.c magic, and the "
                       "legacy llama2.c header at offset 0 holds non-positive sizes)", m->path);
    if ((rc = bli_model_check_config(m, err))) {
        if (m->format_version == 0 && err) {
            char detail[sizeof err->msg];
            size_t pl = strlen(m->path);
            const char *d0 = err->msg;
            if (strncmp(d0, m->path, pl) == 0 && d0[pl] == ':' && d0[pl + 1] == ' ')
                d0 += pl + 2;
            snprintf(detail, sizeof detail, "%s", d0);
            bli_err(err, rc, "%s: not a model file bitlens knows (no GGUF or llama2.c magic; as a legacy "
                    "llama2.c header: %s)", m->path, detail);
        }
        return rc;
    }

    int64_t L = c->n_layers, D = c->dim, F = c->hidden_dim, V = c->n_vocab;
    int64_t kv = c->n_kv_heads * c->head_dim;
    size_t n_t = 3 + 9 * (size_t)L + (shared ? 0 : 1);
    m->own = bli_calloc(n_t, sizeof *m->own);
    m->tensors = bli_calloc(n_t, sizeof *m->tensors);
    m->names = malloc(n_t * 40);
    if (!m->own || !m->tensors || !m->names)
        return bli_err(err, BL_ENOMEM, "out of memory");
    char *np = m->names;
    char name[64];
    /* stacked per-layer arrays, in the order the file stores them */
    struct {
        const char *suffix;
        int64_t ne0, ne1;
    } stack[] = {
        {"attn_norm", D, 0}, {"attn_q", D, D}, {"attn_k", D, kv}, {"attn_v", D, kv},
        {"attn_output", D, D}, {"ffn_norm", D, 0}, {"ffn_gate", D, F}, {"ffn_down", F, D},
        {"ffn_up", D, F},
    };
#define ADD(nm, a, b)                                                                          \
    do {                                                                                       \
        if ((rc = add_tensor(m, &np, nm, a, b, &off, err)))                                    \
            return rc;                                                                         \
    } while (0)
#define ADD_STACK(i)                                                                           \
    for (int64_t l = 0; l < L; l++) {                                                          \
        snprintf(name, sizeof name, "blk.%" PRId64 ".%s.weight", l, stack[i].suffix);          \
        ADD(name, stack[i].ne0, stack[i].ne1);                                                 \
    }
    if (m->format_version == 0) {
        ADD("token_embd.weight", D, V);
        for (int i = 0; i < 9; i++)
            ADD_STACK(i);
        ADD("output_norm.weight", D, 0);
        /* freq_cis_real and freq_cis_imag: RoPE tables bitlens recomputes */
        size_t skip = 2 * (size_t)c->ctx_train * (size_t)(c->head_dim / 2) * 4;
        if (!bli_in_bounds(off, skip, m->file_size))
            return bli_err(err, BL_EFORMAT, "%s: RoPE tables at offset %zu + %zu bytes run past the end of the file (size %zu): truncated?",
                           m->path, off, skip, m->file_size);
        off += skip;
    } else {
        ADD_STACK(0);
        ADD_STACK(5);
        ADD("output_norm.weight", D, 0);
        ADD("token_embd.weight", D, V);
        static const int order[] = {1, 2, 3, 4, 6, 7, 8};
        for (int i = 0; i < 7; i++)
            ADD_STACK(order[i]);
    }
    if (!shared)
        ADD("output.weight", D, V);
#undef ADD_STACK
#undef ADD
    if (off != m->file_size)
        return bli_err(err, BL_EFORMAT, "%s: %zu bytes of trailing data at offset %zu: the header's sizes do not describe this file",
                       m->path, m->file_size - off, off);
    if ((rc = bli_model_bind_all(m, err)))
        return rc;

    const char *tp = p->tokenizer_path;
    char *guess = NULL;
    if (!tp) {
        /* llama2.c's default: tokenizer.bin beside the model */
        const char *base = bli_basename(m->path);
        size_t dl = (size_t)(base - m->path);
        guess = malloc(dl + 16);
        if (!guess)
            return bli_err(err, BL_ENOMEM, "out of memory");
        memcpy(guess, m->path, dl);
        memcpy(guess + dl, "tokenizer.bin", 14);
        FILE *f = fopen(guess, "rb");
        if (f) {
            fclose(f);
            tp = guess;
        }
    }
    rc = tp ? bl_tokenizer_load_llama2c(&m->tok, tp, V, err) : BL_OK;
    if (!rc && tp && tp == guess && bli_model_add_file(m, tp))
        rc = bli_err(err, BL_ENOMEM, "out of memory");
    free(guess);
    return rc;
}

/* ------------------------------------------------------------------ load */

int bl_model_load(bl_model **out, const char *path, const struct bl_model_params *params,
                  bl_err *err)
{
    struct bl_model_params p = params ? *params : bl_model_default_params();
    unsigned char magic[4] = {0};
    bl_model *m;
    int rc;

    *out = NULL;
    struct stat st;
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    size_t got = 0;
    if (!is_dir) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return bli_err(err, BL_EIO, "%s: cannot open: %s", path, strerror(errno));
        got = fread(magic, 1, 4, f);
        fclose(f);
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->path = bli_strdup(path)) || !(m->name = bli_strdup(bli_basename(path)))) {
        bl_model_free(m);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    m->describe_only = p.describe_only;
    if (is_dir)
        rc = bli_model_load_hf(m, &p, err);
    else if (got == 4 && bli_rd_u32(magic) == BL_GGUF_MAGIC)
        rc = load_gguf(m, &p, err);
    else
        rc = load_llama2c(m, &p, err);
    if (!rc && !is_dir && bli_model_add_file(m, path))
        rc = bli_err(err, BL_ENOMEM, "out of memory");
    if (!rc && p.tokenizer_path && bli_model_add_file(m, p.tokenizer_path))
        rc = bli_err(err, BL_ENOMEM, "out of memory");
    if (rc) {
        bl_model_free(m);
        return rc;
    }
    *out = m;
    return BL_OK;
}
