/* lib/model_hf.c: load a Hugging Face folder.
 *
 *   config.json                     hyperparameters (model_type llama, qwen2,
 *                                   mistral, gpt2)
 *   model.safetensors, or           the weights (f32, f16, bf16)
 *   model.safetensors.index.json    + its shards
 *   tokenizer.json                  the vocabulary (or vocab.json +
 *                                   merges.txt for older GPT-2 folders)
 *
 * The tensors are presented under GGUF names, as views of the safetensors
 * mappings, so the forward pass and `bitlens info` see one table.  Two
 * layouts differ from GGUF and are handled where they differ: Llama and
 * Qwen2 checkpoints rotate the two halves of each head (config rope
 * BL_ROPE_HALVES, no permutation of the weights), and GPT-2's Conv1D
 * matrices are stored [in x out], so those four per block are transposed
 * once at load into memory the model owns. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "model_internal.h"

#define MAX_CONFIG_BYTES (16u << 20)

/* ------------------------------------------------------------ config.json */

struct jcfg {
    const char *file;   /* for messages */
    const cJSON *root;
    bl_err *err;
};

/* An integer field: absent -> dflt (or an error if required), else a JSON
 * number holding an integer in [lo, hi]. */
static int j_int(const struct jcfg *j, const char *key, int64_t *out, int64_t dflt, int required,
                 int64_t lo, int64_t hi)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return bli_err(j->err, BL_EFORMAT, "%s: '%s' is missing", j->file, key);
        *out = dflt;
        return BL_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < (double)lo || d > (double)hi)
        return bli_err(j->err, BL_EFORMAT, "%s: '%s' must be an integer in [%" PRId64 ", %" PRId64 "]",
                       j->file, key, lo, hi);
    *out = (int64_t)d;
    return BL_OK;
}

static int j_float(const struct jcfg *j, const cJSON *obj, const char *key, double *out, double dflt,
                   int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return bli_err(j->err, BL_EFORMAT, "%s: '%s' is missing", j->file, key);
        *out = dflt;
        return BL_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bli_err(j->err, BL_EFORMAT, "%s: '%s' must be a number", j->file, key);
    *out = v->valuedouble;
    return BL_OK;
}

static int j_bool(const struct jcfg *j, const char *key, int *out, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return BL_OK;
    }
    if (!cJSON_IsBool(v))
        return bli_err(j->err, BL_EFORMAT, "%s: '%s' must be true or false", j->file, key);
    *out = cJSON_IsTrue(v);
    return BL_OK;
}

static const char *j_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Read a small text file whole (NUL-terminated). */
static char *slurp(const char *path, size_t *n, bl_err *err)
{
    struct bli_map map;
    if (bli_map_file(&map, path, err))
        return NULL;
    if (map.size > MAX_CONFIG_BYTES) {
        bli_unmap(&map);
        bli_err(err, BL_EFORMAT, "%s: %zu bytes is too large for a configuration file", path, map.size);
        return NULL;
    }
    char *s = malloc(map.size + 1);
    if (!s) {
        bli_unmap(&map);
        bli_err(err, BL_ENOMEM, "out of memory");
        return NULL;
    }
    if (map.size)
        memcpy(s, map.data, map.size);
    s[map.size] = '\0';
    *n = map.size;
    bli_unmap(&map);
    return s;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Llama 3 RoPE scaling: the factor dividing each frequency (Hugging Face's
 * rope_type "llama3"), or a constant one ("linear"). */
static int rope_scaling(bl_model *m, const struct jcfg *j)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j->root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs))
        return BL_OK;
    if (!cJSON_IsObject(rs))
        return bli_err(j->err, BL_EFORMAT, "%s: 'rope_scaling' must be an object or null", j->file);
    const char *type = j_str(rs, "rope_type");
    if (!type)
        type = j_str(rs, "type");
    if (!type)
        return bli_err(j->err, BL_EFORMAT, "%s: 'rope_scaling' has no 'rope_type'", j->file);
    if (strcmp(type, "default") == 0)
        return BL_OK;
    int llama3 = strcmp(type, "llama3") == 0;
    if (!llama3 && strcmp(type, "linear") != 0)
        return bli_err(j->err, BL_EUNSUPPORTED, "%s: rope_scaling type '%s' is not supported (linear and llama3 are)",
                       j->file, type);
    double factor, low = 1, high = 4, orig = 8192;
    int rc;
    if ((rc = j_float(j, rs, "factor", &factor, 1, 1)) ||
        (llama3 && ((rc = j_float(j, rs, "low_freq_factor", &low, 1, 1)) ||
                    (rc = j_float(j, rs, "high_freq_factor", &high, 4, 1)) ||
                    (rc = j_float(j, rs, "original_max_position_embeddings", &orig, 8192, 1)))))
        return rc;
    if (!(factor > 0) || (llama3 && !(high > low && low > 0 && orig > 0)))
        return bli_err(j->err, BL_EFORMAT, "%s: rope_scaling factors out of range", j->file);
    int64_t half = m->cfg.n_rot / 2;
    float *f = bli_model_own(m, (size_t)half * sizeof *f);
    if (!f)
        return bli_err(j->err, BL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < half; i++) {
        double freq = pow((double)m->cfg.rope_base, -2.0 * (double)i / (double)m->cfg.n_rot);
        double div = factor;
        if (llama3) {
            double wavelen = 2 * M_PI / freq;
            if (wavelen < orig / high) {
                div = 1;
            } else if (wavelen <= orig / low) {
                double smooth = (orig / wavelen - low) / (high - low);
                double nf = (1 - smooth) * freq / factor + smooth * freq;
                div = freq / nf;
            }
        }
        f[i] = (float)div;
    }
    m->w.rope_factors = f;
    m->cfg.rope_scaled = 1;
    return BL_OK;
}

static int read_config(bl_model *m, const char *path, bl_err *err)
{
    size_t n;
    char *text = slurp(path, &n, err);
    if (!text)
        return err ? err->code : BL_EIO;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        return bli_err(err, BL_EFORMAT, "%s: not valid JSON (near byte %zu)", path, at);
    }
    free(text);
    struct jcfg j = {path, root, err};
    struct bl_model_config *c = &m->cfg;
    int rc = BL_OK;
    if (!cJSON_IsObject(root)) {
        rc = bli_err(err, BL_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    const char *type = j_str(root, "model_type");
    if (!type) {
        rc = bli_err(err, BL_EFORMAT, "%s: 'model_type' is missing or not a string", path);
        goto out;
    }
    const int64_t BIG = BLI_MAX_CTX;
    if (strcmp(type, "gpt2") == 0) {
        int64_t inner;
        double eps;
        bli_model_set_family(c, BL_ARCH_GPT2);
        const char *act = j_str(root, "activation_function");
        if (act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0) {
            rc = bli_err(err, BL_EUNSUPPORTED, "%s: activation_function '%s' is not supported (gelu_new is)", path, act);
            goto out;
        }
        if ((rc = j_int(&j, "n_embd", &c->dim, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "n_layer", &c->n_layers, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "n_head", &c->n_heads, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "n_positions", &c->ctx_train, 1024, 0, 1, BIG)) ||
            (rc = j_int(&j, "n_inner", &inner, 0, 0, 0, BIG)) ||
            (rc = j_float(&j, root, "layer_norm_epsilon", &eps, 1e-5, 0)))
            goto out;
        c->n_kv_heads = c->n_heads;
        c->hidden_dim = inner ? inner : 4 * c->dim;
        c->norm_eps = (float)eps;
    } else if (strcmp(type, "llama") == 0 || strcmp(type, "mistral") == 0 || strcmp(type, "qwen2") == 0) {
        int64_t head_dim;
        double eps, theta;
        int bias = 0;
        bli_model_set_family(c, strcmp(type, "qwen2") == 0 ? BL_ARCH_QWEN2 : BL_ARCH_LLAMA);
        if ((rc = j_int(&j, "hidden_size", &c->dim, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "num_hidden_layers", &c->n_layers, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "num_attention_heads", &c->n_heads, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "num_key_value_heads", &c->n_kv_heads, c->n_heads, 0, 1, BIG)) ||
            (rc = j_int(&j, "intermediate_size", &c->hidden_dim, 0, 1, 1, BIG)) ||
            (rc = j_int(&j, "max_position_embeddings", &c->ctx_train, 2048, 0, 1, BIG)) ||
            (rc = j_int(&j, "head_dim", &head_dim, 0, 0, 0, BIG)) ||
            (rc = j_float(&j, root, "rms_norm_eps", &eps, 1e-6, 0)) ||
            (rc = j_float(&j, root, "rope_theta", &theta, 10000, 0)) ||
            (rc = j_bool(&j, "attention_bias", &bias, 0)))
            goto out;
        if (head_dim && c->dim % c->n_heads == 0 && head_dim != c->dim / c->n_heads) {
            rc = bli_err(err, BL_EUNSUPPORTED, "%s: head_dim %" PRId64 " differs from hidden_size / num_attention_heads (not supported)",
                         path, head_dim);
            goto out;
        }
        if (strcmp(type, "mistral") == 0 && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "sliding_window"))) {
            int64_t sw;
            if ((rc = j_int(&j, "sliding_window", &sw, 0, 0, 0, BIG)))
                goto out;
            if (sw && sw < c->ctx_train) {
                rc = bli_err(err, BL_EUNSUPPORTED, "%s: sliding-window attention (%" PRId64 ") is not supported", path, sw);
                goto out;
            }
        }
        c->qkv_bias = c->qkv_bias || bias;
        c->norm_eps = (float)eps;
        c->rope_base = (float)theta;
        c->rope = BL_ROPE_HALVES;   /* Hugging Face's rotate_half layout */
    } else {
        rc = bli_err(err, BL_EUNSUPPORTED, "%s: model_type '%s' is not supported (llama, mistral, qwen2 and gpt2 are)",
                     path, type);
        goto out;
    }
    if (c->n_heads > 0 && c->dim % c->n_heads == 0)
        c->head_dim = c->dim / c->n_heads;
    c->n_rot = c->rope == BL_ROPE_NONE ? 0 : c->head_dim;
    int tie;
    if ((rc = j_bool(&j, "tie_word_embeddings", &tie, c->arch == BL_ARCH_GPT2)))
        goto out;
    (void)tie;   /* the tensors decide: lm_head.weight present or not */
    if (c->rope != BL_ROPE_NONE && (rc = rope_scaling(m, &j)))
        goto out;
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------ tensor names */

/* GGUF name for a Hugging Face tensor name; *transpose for GPT-2's Conv1D;
 * returns 0 (and name unchanged) for a buffer to ignore, -1 if unknown. */
static int map_name(int arch, const char *hf, char *out, size_t cap, int *transpose)
{
    int l, used = 0;
    char rest[160];
    *transpose = 0;
    if (arch == BL_ARCH_GPT2) {
        if (strncmp(hf, "transformer.", 12) == 0)
            hf += 12;
        static const struct {
            const char *hf, *gguf;
        } top[] = {{"wte.weight", "token_embd.weight"}, {"wpe.weight", "position_embd.weight"},
                   {"ln_f.weight", "output_norm.weight"}, {"ln_f.bias", "output_norm.bias"},
                   {"lm_head.weight", "output.weight"}};
        for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
            if (strcmp(hf, top[i].hf) == 0)
                return snprintf(out, cap, "%s", top[i].gguf) > 0;
        if (sscanf(hf, "h.%d.%159s%n", &l, rest, &used) != 2 || hf[used] || l < 0)
            return -1;
        static const struct {
            const char *hf, *gguf;
            int t;
        } blk[] = {{"ln_1.weight", "attn_norm.weight", 0},   {"ln_1.bias", "attn_norm.bias", 0},
                   {"attn.c_attn.weight", "attn_qkv.weight", 1}, {"attn.c_attn.bias", "attn_qkv.bias", 0},
                   {"attn.c_proj.weight", "attn_output.weight", 1}, {"attn.c_proj.bias", "attn_output.bias", 0},
                   {"ln_2.weight", "ffn_norm.weight", 0},    {"ln_2.bias", "ffn_norm.bias", 0},
                   {"mlp.c_fc.weight", "ffn_up.weight", 1},  {"mlp.c_fc.bias", "ffn_up.bias", 0},
                   {"mlp.c_proj.weight", "ffn_down.weight", 1}, {"mlp.c_proj.bias", "ffn_down.bias", 0}};
        if (strcmp(rest, "attn.bias") == 0 || strcmp(rest, "attn.masked_bias") == 0)
            return 0;   /* causal-mask buffers of old checkpoints */
        for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
            if (strcmp(rest, blk[i].hf) == 0) {
                *transpose = blk[i].t;
                return snprintf(out, cap, "blk.%d.%s", l, blk[i].gguf) > 0;
            }
        return -1;
    }
    static const struct {
        const char *hf, *gguf;
    } top[] = {{"model.embed_tokens.weight", "token_embd.weight"}, {"model.norm.weight", "output_norm.weight"},
               {"lm_head.weight", "output.weight"}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strcmp(hf, top[i].hf) == 0)
            return snprintf(out, cap, "%s", top[i].gguf) > 0;
    if (sscanf(hf, "model.layers.%d.%159s%n", &l, rest, &used) != 2 || hf[used] || l < 0)
        return -1;
    static const struct {
        const char *hf, *gguf;
    } blk[] = {{"input_layernorm.weight", "attn_norm.weight"},
               {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.q_proj.bias", "attn_q.bias"},
               {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.k_proj.bias", "attn_k.bias"},
               {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.v_proj.bias", "attn_v.bias"},
               {"self_attn.o_proj.weight", "attn_output.weight"}, {"self_attn.o_proj.bias", "attn_output.bias"},
               {"post_attention_layernorm.weight", "ffn_norm.weight"},
               {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
               {"mlp.down_proj.weight", "ffn_down.weight"}};
    if (strcmp(rest, "self_attn.rotary_emb.inv_freq") == 0)
        return 0;
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
        if (strcmp(rest, blk[i].hf) == 0)
            return snprintf(out, cap, "blk.%d.%s", l, blk[i].gguf) > 0;
    return -1;
}

/* A transposed copy of a 2-D tensor of 2- or 4-byte elements. */
static int transpose(bl_model *m, struct bl_tensor *t, bl_err *err)
{
    size_t es = t->type == BL_F32 ? 4 : t->type == BL_F16 || t->type == BL_BF16 ? 2 : 0;
    if (es == 0 || t->n_dims != 2)
        return bli_err(err, BL_EUNSUPPORTED, "%s: tensor '%s' (%s) cannot be transposed", m->path, t->name,
                       t->type >= 0 && bl_dtype_name(t->type) ? bl_dtype_name(t->type) : "unknown type");
    int64_t cols = t->ne[0], rows = t->ne[1];
    unsigned char *d = bli_model_own(m, t->nbytes);
    if (!d)
        return bli_err(err, BL_ENOMEM, "out of memory");
    const unsigned char *s = t->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy(d + ((size_t)c * (size_t)rows + (size_t)r) * es, s + ((size_t)r * (size_t)cols + (size_t)c) * es, es);
    t->data = d;
    t->ne[0] = rows;
    t->ne[1] = cols;
    return BL_OK;
}

static int map_tensors(bl_model *m, bl_err *err)
{
    int64_t n = bl_safetensors_n_tensors(m->st);
    m->own = bli_calloc((size_t)n, sizeof *m->own);
    m->tensors = bli_calloc((size_t)n, sizeof *m->tensors);
    if (!m->own || !m->tensors)
        return bli_err(err, BL_ENOMEM, "out of memory");
    m->n_tensors = 0;
    m->file_size = 0;
    for (int64_t i = 0; i < n; i++) {
        const struct bl_tensor *src = bl_safetensors_tensor(m->st, i);
        char name[192];
        int tr;
        int r = map_name(m->cfg.arch, src->name, name, sizeof name, &tr);
        m->file_size += src->nbytes;
        if (r == 0)
            continue;
        if (r < 0)
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s' is not a weight of a %s model", m->path, src->name,
                           bl_model_arch_name(m));
        struct bl_tensor *t = &m->own[m->n_tensors];
        *t = *src;
        char *nm = bli_model_own(m, strlen(name) + 1);
        if (!nm)
            return bli_err(err, BL_ENOMEM, "out of memory");
        memcpy(nm, name, strlen(name) + 1);
        t->name = nm;
        if (tr && transpose(m, t, err))
            return err ? err->code : BL_EUNSUPPORTED;
        m->tensors[m->n_tensors++] = t;
    }
    /* two Hugging Face names for one GGUF name (transformer.wte and wte) */
    for (int64_t i = 0; i < m->n_tensors; i++)
        for (int64_t k = i + 1; k < m->n_tensors; k++)
            if (strcmp(m->tensors[i]->name, m->tensors[k]->name) == 0)
                return bli_err(err, BL_EFORMAT, "%s: two tensors map to '%s'", m->path, m->tensors[i]->name);
    return BL_OK;
}

/* ------------------------------------------------------------------ load */

int bli_model_load_hf(bl_model *m, const struct bl_model_params *p, bl_err *err)
{
    char *cfg = join(m->path, "config.json"), *idx = join(m->path, "model.safetensors.index.json");
    char *one = join(m->path, "model.safetensors"), *tj = join(m->path, "tokenizer.json");
    char *vj = join(m->path, "vocab.json"), *mt = join(m->path, "merges.txt");
    int rc;

    m->format = BL_FORMAT_HF;
    m->format_version = 0;
    if (!cfg || !idx || !one || !tj || !vj || !mt) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    if (!exists(cfg)) {
        rc = bli_err(err, BL_EIO, "%s: a directory without config.json: not a Hugging Face model folder", m->path);
        goto out;
    }
    if ((rc = read_config(m, cfg, err)))
        goto out;
    if (exists(idx))
        rc = bl_safetensors_open_index(&m->st, idx, err);
    else if (exists(one))
        rc = bl_safetensors_open(&m->st, one, err);
    else
        rc = bli_err(err, BL_EIO, "%s: no model.safetensors or model.safetensors.index.json", m->path);
    if (rc)
        goto out;
    if ((rc = map_tensors(m, err)))
        goto out;
    for (int64_t i = 0; i < bl_safetensors_n_tensors(m->st); i++)
        if (bli_model_add_file(m, bl_safetensors_tensor_file(m->st, i))) {
            rc = bli_err(err, BL_ENOMEM, "out of memory");
            goto out;
        }
    if (exists(tj) && bli_model_add_file(m, tj)) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    const struct bl_tensor *emb = bl_model_find_tensor(m, "token_embd.weight");
    if (!emb) {
        rc = bli_err(err, BL_EFORMAT, "%s: the token embedding is missing", m->path);
        goto out;
    }
    m->cfg.n_vocab = emb->n_dims == 2 ? emb->ne[1] : 0;
    if ((rc = bli_model_check_config(m, err)) || (rc = bli_model_bind_all(m, err)) ||
        (rc = bli_model_check_all_used(m, err)))
        goto out;

    if (p->tokenizer_path)
        rc = bl_tokenizer_load_llama2c(&m->tok, p->tokenizer_path, m->cfg.n_vocab, err);
    else if (exists(tj))
        rc = bl_tokenizer_load_hf(&m->tok, tj, err);
    else if (exists(vj) && exists(mt))
        rc = bl_tokenizer_load_gpt2(&m->tok, vj, mt, err);
    if (rc)
        goto out;
    /* embeddings are often padded past the vocabulary (Qwen2: 151936 rows,
     * 151665 tokens); a vocabulary larger than the embedding is an error */
    if (m->tok && bl_tokenizer_n_vocab(m->tok) > m->cfg.n_vocab)
        rc = bli_err(err, BL_EMISMATCH, "%s: the vocabulary has %" PRId64 " tokens but the embedding only %" PRId64 " rows",
                     m->path, bl_tokenizer_n_vocab(m->tok), m->cfg.n_vocab);
out:
    free(cfg);
    free(idx);
    free(one);
    free(tj);
    free(vj);
    free(mt);
    return rc;
}
