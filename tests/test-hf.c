/* tests/test-hf.c: Hugging Face folders and GGUF conversion.
 *
 * The test writes Hugging Face folders itself (config.json + safetensors,
 * through tests/stwrite.c, written from the format description) from the
 * weights of GGUF files whose logits are checked against llama.cpp and
 * float64 references in test-golden, converting the layout as Hugging Face
 * stores it: Llama q and k rows in "rotate_half" order (the inverse of
 * llama.cpp's convert_hf_to_gguf permutation, derived here from its
 * definition), GPT-2's matrices as Conv1D [in x out].  Each folder must give
 * the GGUF's logits within 1e-5; so must the GGUF that bitlens convert
 * writes back from the folder.  Qwen2's q/k/v biases, Llama 3 RoPE scaling,
 * Q8_0 quantization and every malformed folder get their own checks. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <bitlens/bitlens.h>

#include "stwrite.h"
#include "tap.h"
#include "testutil.h"

static char *dir;   /* the test's temporary directory */

static char *path_in(const char *sub, const char *name)
{
    size_t n = strlen(dir) + strlen(sub) + strlen(name) + 3;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s%s%s", dir, sub, *name ? "/" : "", name);
    return p;
}

static void write_text(const char *path, const char *text)
{
    if (write_file(path, text, strlen(text)))
        fprintf(stderr, "cannot write %s\n", path);
}

/* Logits [n x V] of ids through a model. */
static float *logits_of(const bl_model *m, const int32_t *ids, int64_t n)
{
    int64_t V = bl_model_config(m)->n_vocab;
    float *l = malloc((size_t)(n * V) * sizeof *l);
    bl_ctx *c;
    bl_err err;
    struct bl_ctx_params p = bl_ctx_default_params();
    p.n_ctx = n;
    if (bl_ctx_alloc(&c, m, &p, &err) || bl_ctx_eval(c, ids, n, l, BL_EVAL_ALL_LOGITS)) {
        free(l);
        return NULL;
    }
    bl_ctx_free(c);
    return l;
}

static bl_model *load(const char *path, bl_err *err)
{
    bl_model *m = NULL;
    if (bl_model_load(&m, path, NULL, err))
        return NULL;
    return m;
}

/* ---- GGUF -> Hugging Face folder */

/* Hugging Face row r of a q or k matrix holds GGUF row gguf_row(r): within a
 * head of hd rows, HF keeps the first elements of the rotated pairs in rows
 * 0..hd/2-1 and the second ones in hd/2..hd-1, GGUF interleaves them. */
static int64_t gguf_row(int64_t r, int64_t hd)
{
    int64_t h = r / hd, i = r % hd, half = hd / 2;
    return h * hd + (i < half ? 2 * i : 2 * (i - half) + 1);
}

static float *dequant(const struct bl_tensor *t)
{
    int64_t n = bl_tensor_nelements(t);
    float *f = malloc((size_t)n * sizeof *f);
    bl_to_f32(t->type, t->data, f, n);
    return f;
}

struct hf_opts {
    const char *dtype;   /* "F32", "F16", "BF16" */
    int shards;          /* 1: model.safetensors; more: an index */
};

/* Write model m (loaded from a GGUF) as a Hugging Face folder sub/. */
static int write_hf(const bl_model *m, const char *sub, struct hf_opts o)
{
    const struct bl_model_config *c = bl_model_config(m);
    int gpt2 = c->arch == BL_ARCH_GPT2;
    char *d = path_in(sub, "");
    mkdir(d, 0755);
    stw *w[8];
    for (int s = 0; s < o.shards; s++)
        w[s] = stw_alloc();
    const char **names = calloc((size_t)bl_model_n_tensors(m), sizeof *names);
    const char **files = calloc((size_t)bl_model_n_tensors(m), sizeof *files);
    char (*fn)[64] = calloc(8, 64);
    for (int s = 0; s < o.shards; s++)
        snprintf(fn[s], 64, "model-%05d-of-%05d.safetensors", s + 1, o.shards);
    size_t n_names = 0;
    for (int64_t i = 0; i < bl_model_n_tensors(m); i++) {
        const struct bl_tensor *t = bl_model_tensor(m, i);
        char hf[160];
        int l = -1, transpose = 0, permute = 0;
        char rest[96] = "";
        if (sscanf(t->name, "blk.%d.%95s", &l, rest) != 2)
            l = -1;
        const char *nm = t->name;
        if (gpt2) {
            if (!strcmp(nm, "token_embd.weight")) snprintf(hf, sizeof hf, "wte.weight");
            else if (!strcmp(nm, "position_embd.weight")) snprintf(hf, sizeof hf, "wpe.weight");
            else if (!strcmp(nm, "output_norm.weight")) snprintf(hf, sizeof hf, "ln_f.weight");
            else if (!strcmp(nm, "output_norm.bias")) snprintf(hf, sizeof hf, "ln_f.bias");
            else if (!strcmp(nm, "output.weight")) snprintf(hf, sizeof hf, "lm_head.weight");
            else {
                static const char *const map[][3] = {
                    {"attn_norm.weight", "ln_1.weight", ""}, {"attn_norm.bias", "ln_1.bias", ""},
                    {"attn_qkv.weight", "attn.c_attn.weight", "T"}, {"attn_qkv.bias", "attn.c_attn.bias", ""},
                    {"attn_output.weight", "attn.c_proj.weight", "T"}, {"attn_output.bias", "attn.c_proj.bias", ""},
                    {"ffn_norm.weight", "ln_2.weight", ""}, {"ffn_norm.bias", "ln_2.bias", ""},
                    {"ffn_up.weight", "mlp.c_fc.weight", "T"}, {"ffn_up.bias", "mlp.c_fc.bias", ""},
                    {"ffn_down.weight", "mlp.c_proj.weight", "T"}, {"ffn_down.bias", "mlp.c_proj.bias", ""}};
                hf[0] = '\0';
                for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
                    if (!strcmp(rest, map[k][0])) {
                        snprintf(hf, sizeof hf, "transformer.h.%d.%s", l, map[k][1]);
                        transpose = map[k][2][0] == 'T';
                    }
            }
        } else {
            if (!strcmp(nm, "token_embd.weight")) snprintf(hf, sizeof hf, "model.embed_tokens.weight");
            else if (!strcmp(nm, "output_norm.weight")) snprintf(hf, sizeof hf, "model.norm.weight");
            else if (!strcmp(nm, "output.weight")) snprintf(hf, sizeof hf, "lm_head.weight");
            else {
                static const char *const map[][2] = {
                    {"attn_norm.weight", "input_layernorm.weight"}, {"attn_q.weight", "self_attn.q_proj.weight"},
                    {"attn_k.weight", "self_attn.k_proj.weight"}, {"attn_v.weight", "self_attn.v_proj.weight"},
                    {"attn_q.bias", "self_attn.q_proj.bias"}, {"attn_k.bias", "self_attn.k_proj.bias"},
                    {"attn_v.bias", "self_attn.v_proj.bias"},
                    {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
                    {"ffn_gate.weight", "mlp.gate_proj.weight"}, {"ffn_up.weight", "mlp.up_proj.weight"},
                    {"ffn_down.weight", "mlp.down_proj.weight"}};
                hf[0] = '\0';
                for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
                    if (!strcmp(rest, map[k][0]))
                        snprintf(hf, sizeof hf, "model.layers.%d.%s", l, map[k][1]);
                /* GGUF llama rotates adjacent pairs: undo the permutation */
                permute = c->rope == BL_ROPE_ADJACENT &&
                          (!strcmp(rest, "attn_q.weight") || !strcmp(rest, "attn_k.weight"));
            }
        }
        if (!hf[0]) {
            diag("no Hugging Face name for %s", nm);
            return -1;
        }
        float *v = dequant(t), *out = v;
        int64_t ne[2] = {t->ne[0], t->n_dims > 1 ? t->ne[1] : 1};
        if (transpose || permute) {
            out = malloc((size_t)(ne[0] * ne[1]) * sizeof *out);
            for (int64_t r = 0; r < ne[1]; r++)
                for (int64_t k = 0; k < ne[0]; k++) {
                    if (transpose)
                        out[k * ne[1] + r] = v[r * ne[0] + k];
                    else
                        out[r * ne[0] + k] = v[gguf_row(r, c->head_dim) * ne[0] + k];
                }
            if (transpose) {
                int64_t tmp = ne[0];
                ne[0] = ne[1];
                ne[1] = tmp;
            }
        }
        int s = (int)(n_names % (size_t)o.shards);
        /* 1-D tensors stay f32 as checkpoints keep norms; f16 data stays
         * f16 so the values are the same bits */
        const char *dt = t->n_dims == 1 ? "F32" : t->type == BL_F16 ? "F16" : o.dtype;
        if (stw_add_f32_ne(w[s], hf, dt, t->n_dims, ne, out)) {
            diag("stw_add %s failed", hf);
            return -1;
        }
        names[n_names] = strdup(hf);
        files[n_names] = fn[s];
        n_names++;
        if (out != v)
            free(out);
        free(v);
    }
    /* config.json as Hugging Face writes it */
    char cfg[2048];
    if (gpt2)
        snprintf(cfg, sizeof cfg,
                 "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"n_embd\": %lld, "
                 "\"n_layer\": %lld, \"n_head\": %lld, \"n_positions\": %lld, \"n_inner\": null, "
                 "\"layer_norm_epsilon\": %g, \"vocab_size\": %lld, \"activation_function\": \"gelu_new\", "
                 "\"tie_word_embeddings\": %s}\n",
                 (long long)c->dim, (long long)c->n_layers, (long long)c->n_heads, (long long)c->ctx_train,
                 (double)c->norm_eps, (long long)c->n_vocab, c->tied_classifier ? "true" : "false");
    else
        snprintf(cfg, sizeof cfg,
                 "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %lld, "
                 "\"intermediate_size\": %lld, \"num_hidden_layers\": %lld, \"num_attention_heads\": %lld, "
                 "\"num_key_value_heads\": %lld, \"max_position_embeddings\": %lld, \"rms_norm_eps\": %g, "
                 "\"rope_theta\": %g, \"vocab_size\": %lld, \"tie_word_embeddings\": %s, "
                 "\"rope_scaling\": null, \"torch_dtype\": \"float16\"}\n",
                 (long long)c->dim, (long long)c->hidden_dim, (long long)c->n_layers, (long long)c->n_heads,
                 (long long)c->n_kv_heads, (long long)c->ctx_train, (double)c->norm_eps, (double)c->rope_base,
                 (long long)c->n_vocab, c->tied_classifier ? "true" : "false");
    char *cp = path_in(sub, "config.json");
    write_text(cp, cfg);
    free(cp);
    int rc = 0;
    if (o.shards == 1) {
        char *p = path_in(sub, "model.safetensors");
        rc = stw_write(w[0], p);
        free(p);
    } else {
        uint64_t total = 0;
        for (int s = 0; s < o.shards; s++) {
            char *p = path_in(sub, fn[s]);
            rc |= stw_write(w[s], p);
            total += stw_data_size(w[s]);
            free(p);
        }
        char *p = path_in(sub, "model.safetensors.index.json");
        rc |= stw_write_index(p, names, files, n_names, total);
        free(p);
    }
    for (int s = 0; s < o.shards; s++)
        stw_free(w[s]);
    for (size_t i = 0; i < n_names; i++)
        free((char *)names[i]);
    free(names);
    free(files);
    free(fn);
    free(d);
    return rc;
}

/* ---- the same logits three ways: GGUF, folder, GGUF converted back */

static void same_logits(const char *label, const char *gguf_rel, const char *sub, struct hf_opts o)
{
    char *gp = td_path(gguf_rel);
    if (!gp) {
        skip(4, "test data absent");
        return;
    }
    bl_err err;
    bl_model *g = load(gp, &err);
    if (!g) {
        ok(0, "%s: %s", label, err.msg);
        free(gp);
        return;
    }
    int64_t V = bl_model_config(g)->n_vocab, n = 12;
    int32_t ids[12];
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7919 + 101) % V);
    ok(write_hf(g, sub, o) == 0, "%s: Hugging Face folder written (%s, %d shard%s)", label, o.dtype, o.shards,
       o.shards > 1 ? "s" : "");
    char *hp = path_in(sub, "");
    bl_model *h = load(hp, &err);
    float *lg = logits_of(g, ids, n), *lh = h ? logits_of(h, ids, n) : NULL;
    if (!h) {
        diag("%s", err.msg);
        char *ip = path_in(sub, "model.safetensors.index.json");
        size_t in;
        char *it = read_file(ip, &in);
        if (it)
            diag("%.400s", it);
        free(it);
        free(ip);
    }
    double d = lh ? max_abs_diff(lg, lh, (size_t)(n * V)) : INFINITY;
    ok(h && d <= 1e-5, "%s: the folder gives the GGUF's logits, max |diff| %.3g <= 1e-5 (layout %s)", label, d,
       h && bl_model_config(h)->rope == BL_ROPE_HALVES ? "rotate_half" : "as GGUF");
    /* and back: bitlens convert of the folder */
    char *back = path_in(sub, "back.gguf");
    bl_model *b = NULL;
    if (h && bl_model_write_gguf(h, back, BL_F32, &err) == 0)
        b = load(back, &err);
    float *lb = b ? logits_of(b, ids, n) : NULL;
    double db = lb ? max_abs_diff(lg, lb, (size_t)(n * V)) : INFINITY;
    ok(b && db <= 1e-5, "%s: the GGUF converted back from the folder, max |diff| %.3g <= 1e-5", label, db);
    ok(b && bl_model_config(b)->rope == bl_model_config(g)->rope,
       "%s: the converted GGUF uses GGUF's RoPE layout again", label);
    free(lg);
    free(lh);
    free(lb);
    bl_model_free(b);
    bl_model_free(h);
    bl_model_free(g);
    free(back);
    free(hp);
    free(gp);
}

/* ---- Qwen2: biases on q, k, v, before RoPE */

struct grabq {
    float *q;
    int64_t width;
};

static int grab_q(const struct bl_hook_event *ev, void *u)
{
    struct grabq *g = u;
    if (ev->layer == 0)
        memcpy(g->q + ev->pos0 * ev->width, ev->data, (size_t)(ev->n_pos * ev->width) * sizeof(float));
    g->width = ev->width;
    return 0;
}

static void qwen2(void)
{
    char *gp = td_path("models/stories260K.gguf");
    if (!gp) {
        skip(2, "test data absent");
        return;
    }
    bl_err err;
    bl_model *g = load(gp, &err);
    struct hf_opts o = {"F32", 1};
    if (!g || write_hf(g, "q2", o)) {
        ok(0, "qwen2 folder");
        return;
    }
    /* the same weights as Qwen2, with biases on q, k and v: rewrite the
     * folder's config and add the three bias vectors per layer */
    const struct bl_model_config *c = bl_model_config(g);
    int64_t Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim;
    char *hp = path_in("q2", "");
    float *bias = malloc((size_t)Q * sizeof *bias);
    for (int64_t i = 0; i < Q; i++)
        bias[i] = 0.25f * (float)((i * 37) % 11 - 5);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"qwen2\", \"hidden_size\": %lld, \"intermediate_size\": %lld, "
             "\"num_hidden_layers\": %lld, \"num_attention_heads\": %lld, \"num_key_value_heads\": %lld, "
             "\"max_position_embeddings\": %lld, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
             "\"tie_word_embeddings\": true}\n",
             (long long)c->dim, (long long)c->hidden_dim, (long long)c->n_layers, (long long)c->n_heads,
             (long long)c->n_kv_heads, (long long)c->ctx_train);
    /* the biases go in a second shard with an index over both */
    char *p1 = path_in("q2", "model.safetensors"), *p2 = path_in("q2", "bias.safetensors");
    char *idx = path_in("q2", "model.safetensors.index.json");
    stw *b = stw_alloc();
    size_t nt = (size_t)(3 * c->n_layers);
    const char **names = calloc(nt + 64, sizeof *names), **files = calloc(nt + 64, sizeof *files);
    size_t nn = 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        static const char *const which[] = {"q", "k", "v"};
        for (int k = 0; k < 3; k++) {
            char nm[96];
            snprintf(nm, sizeof nm, "model.layers.%lld.self_attn.%s_proj.bias", (long long)l, which[k]);
            int64_t shape[1] = {k ? KV : Q};
            stw_add_f32(b, nm, "F32", 1, shape, bias);
            names[nn] = strdup(nm);
            files[nn++] = "bias.safetensors";
        }
    }
    stw_write(b, p2);
    stw_free(b);
    /* the weights' names, read back from the shard written above */
    bl_safetensors *st;
    if (bl_safetensors_open(&st, p1, &err) == 0) {
        for (int64_t i = 0; i < bl_safetensors_n_tensors(st); i++) {
            names[nn] = strdup(bl_safetensors_tensor(st, i)->name);
            files[nn++] = "model.safetensors";
        }
        bl_safetensors_free(st);
    }
    stw_write_index(idx, names, files, nn, 0);
    char *cp = path_in("q2", "config.json");
    write_text(cp, cfg);
    bl_model *q = load(hp, &err);
    if (!q)
        diag("%s", err.msg);
    ok(q && bl_model_config(q)->arch == BL_ARCH_QWEN2 && bl_model_config(q)->qkv_bias,
       "qwen2 folder (sharded: weights + biases) loads as qwen2 with q/k/v biases");
    /* hook_q (before RoPE) of qwen2 = the Llama model's hook_q + b_q */
    int32_t ids[6] = {1, 403, 407, 261, 378, 432};
    struct grabq a = {calloc(6 * (size_t)Q, 4), 0}, z = {calloc(6 * (size_t)Q, 4), 0};
    double d = INFINITY;
    if (q) {
        bl_ctx *cq, *cg;
        bl_ctx_alloc(&cq, q, NULL, &err);
        bl_ctx_alloc(&cg, g, NULL, &err);
        bl_ctx_add_hook(cq, "blocks.0.attn.hook_q", grab_q, &a);
        bl_ctx_add_hook(cg, "blocks.0.attn.hook_q", grab_q, &z);
        bl_ctx_eval(cq, ids, 6, NULL, 0);
        bl_ctx_eval(cg, ids, 6, NULL, 0);
        /* the GGUF rows are the adjacent layout, the folder's rotate_half:
         * compare row by row through the permutation */
        d = 0;
        for (int p = 0; p < 6; p++)
            for (int64_t r = 0; r < Q; r++)
                d = fmax(d, fabs((double)a.q[p * Q + r] -
                                 ((double)z.q[p * Q + gguf_row(r, c->head_dim)] + bias[r])));
        bl_ctx_free(cq);
        bl_ctx_free(cg);
    }
    ok(d <= 1e-5, "qwen2: hook_q = W_q x + b_q before RoPE, max |diff| %.3g", d);
    for (size_t i = 0; i < nn; i++)
        free((char *)names[i]);
    free(names);
    free(files);
    free(a.q);
    free(z.q);
    free(bias);
    free(cp);
    free(p1);
    free(p2);
    free(idx);
    free(hp);
    bl_model_free(q);
    bl_model_free(g);
    free(gp);
}

/* ---- Llama 3 RoPE scaling: the factors convert writes as rope_freqs */

static void llama3_rope(void)
{
    /* a tiny Llama 3-shaped model: head dim 64 so that frequencies span
     * the three regions (high 1, low 8, smooth between) */
    char *d = path_in("l3", "");
    mkdir(d, 0755);
    int64_t D = 128, F = 64, V = 40, H = 2;
    stw *w = stw_alloc();
    float *buf = malloc((size_t)(D * (V > F ? V : F) * 2) * sizeof *buf);
    for (int64_t i = 0; i < D * (V > F ? V : F) * 2; i++)
        buf[i] = 0.01f * (float)((i * 7) % 13 - 6);
    int64_t emb[2] = {V, D}, sq[2] = {D, D}, up[2] = {F, D}, down[2] = {D, F}, vec[1] = {D};
    stw_add_f32(w, "model.embed_tokens.weight", "F32", 2, emb, buf);
    stw_add_f32(w, "model.norm.weight", "F32", 1, vec, buf);
    static const char *const sqn[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    char nm[96];
    for (int k = 0; k < 4; k++) {
        snprintf(nm, sizeof nm, "model.layers.0.self_attn.%s.weight", sqn[k]);
        stw_add_f32(w, nm, "F32", 2, sq, buf);
    }
    stw_add_f32(w, "model.layers.0.input_layernorm.weight", "F32", 1, vec, buf);
    stw_add_f32(w, "model.layers.0.post_attention_layernorm.weight", "F32", 1, vec, buf);
    stw_add_f32(w, "model.layers.0.mlp.gate_proj.weight", "F32", 2, up, buf);
    stw_add_f32(w, "model.layers.0.mlp.up_proj.weight", "F32", 2, up, buf);
    stw_add_f32(w, "model.layers.0.mlp.down_proj.weight", "F32", 2, down, buf);
    char *mp = path_in("l3", "model.safetensors"), *cp = path_in("l3", "config.json");
    stw_write(w, mp);
    stw_free(w);
    write_text(cp, "{\"model_type\": \"llama\", \"hidden_size\": 128, \"intermediate_size\": 64, "
                   "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 2, "
                   "\"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, "
                   "\"tie_word_embeddings\": true, \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, "
                   "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192, "
                   "\"rope_type\": \"llama3\"}}\n");
    bl_err err;
    bl_model *m = load(d, &err);
    char *gp = path_in("l3", "l3.gguf");
    bl_gguf *g = NULL;
    if (m && bl_model_write_gguf(m, gp, BL_F32, &err) == 0)
        bl_gguf_open(&g, gp, &err);
    const struct bl_tensor *rf = g ? bl_gguf_find_tensor(g, "rope_freqs.weight") : NULL;
    /* expected, from the definition: wavelength 2 pi / theta_j with
     * theta_j = 500000^(-2j/64); below 8192/4 the factor is 1, above
     * 8192/1 it is 8, between it interpolates smoothly */
    int good = rf && rf->ne[0] == 32 && bl_model_config(m)->rope_scaled;
    double worst = 0;
    for (int j = 0; good && j < 32; j++) {
        double th = pow(500000.0, -2.0 * j / 64), wl = 2 * M_PI / th, want;
        if (wl < 2048)
            want = 1;
        else if (wl > 8192)
            want = 8;
        else {
            double s = (8192 / wl - 1) / (4 - 1);
            want = th / ((1 - s) * th / 8 + s * th);
        }
        worst = fmax(worst, fabs(((const float *)rf->data)[j] - want) / want);
    }
    ok(good && worst < 1e-6, "Llama 3 rope_scaling: factors 1 (short wavelengths) to 8 (long), smooth between; "
       "worst relative error %.2g, written as rope_freqs.weight", worst);
    bl_model *back = g ? load(gp, &err) : NULL;
    ok(back && bl_model_config(back)->rope_scaled, "the converted GGUF reads its rope_freqs.weight back");
    bl_model_free(back);
    bl_gguf_free(g);
    bl_model_free(m);
    free(buf);
    free(mp);
    free(cp);
    free(gp);
    free(d);
}

/* ---- Q8_0: stories260K quantized by bitlens */

static void q8_0(void)
{
    char *mp = td_path("models/stories260K.bin"), *tp = td_path("models/tok512.bin");
    if (!mp || !tp) {
        skip(3, "test data absent");
        return;
    }
    bl_err err;
    struct bl_model_params p = bl_model_default_params();
    p.tokenizer_path = tp;
    bl_model *f, *q = NULL, *dq = NULL;
    char *qp = path_in("", "q8.gguf"), *dp = path_in("", "q8-dequant.gguf");
    if (bl_model_load(&f, mp, &p, &err) || bl_model_write_gguf(f, qp, BL_Q8_0, &err) ||
        !(q = load(qp, &err)) || bl_model_write_gguf(q, dp, BL_F32, &err) || !(dq = load(dp, &err))) {
        ok(0, "q8_0: %s", err.msg);
        return;
    }
    /* real text: the 48 ids of golden/stories260K (a story, where the model
     * is confident; on random ids near ties make top-1 a coin toss) */
    int64_t V = 512, n = 48;
    int32_t ids[48];
    char *tj = td_path("golden/stories260K/tokens.json");
    cJSON *j = tj ? read_json(tj) : NULL;
    if (!j || json_ids(cJSON_GetObjectItem(j, "ids"), ids, 48) != 48) {
        skip(2, "golden/stories260K/tokens.json absent");
        cJSON_Delete(j);
        free(tj);
        return;
    }
    cJSON_Delete(j);
    free(tj);
    float *lf = logits_of(f, ids, n), *lq = logits_of(q, ids, n), *ld = logits_of(dq, ids, n);
    /* the kernels: the q8_0 model computes exactly with its dequantized
     * weights (up to summation order) */
    double dd = max_abs_diff(lq, ld, (size_t)(n * V));
    ok(dd <= 1e-4, "q8_0 model vs the same weights dequantized to f32: logits max |diff| %.3g <= 1e-4", dd);
    /* the quantization: each weight moves by at most half a step of its
     * block, d = max|w|/127, about 0.3% of the block's largest weight; the
     * logits (rms ~9) move by a few tenths at most over 5 layers.  Measured
     * as llama-perplexity --kl-divergence does: mean KL of the next-token
     * distributions below 1e-2 nats (a small perturbation delta of the
     * logits gives KL ~ var(delta)/2, ~1e-3 here) and the same top token at
     * 95% of positions at least. */
    double kl = 0, maxd = 0;
    int agree = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *a = lf + i * V, *b = lq + i * V;
        double ma = a[bl_argmax(a, V)], mb = b[bl_argmax(b, V)], za = 0, zb = 0, k = 0;
        for (int64_t v = 0; v < V; v++) {
            za += exp(a[v] - ma);
            zb += exp(b[v] - mb);
            maxd = fmax(maxd, fabs(a[v] - b[v]));
        }
        for (int64_t v = 0; v < V; v++) {
            double pa = exp(a[v] - ma) / za, pb = exp(b[v] - mb) / zb;
            k += pa * log(pa / pb);
        }
        kl += k;
        agree += bl_argmax(a, V) == bl_argmax(b, V);
    }
    kl /= (double)n;
    ok(kl < 1e-2 && agree >= 0.95 * (double)n,
       "q8_0 vs f32 stories260K: mean KL %.2g nats < 1e-2, top-1 agreement %d/%lld, max |dlogit| %.3g", kl, agree,
       (long long)n, maxd);
    free(lf);
    free(lq);
    free(ld);
    bl_model_free(f);
    bl_model_free(q);
    bl_model_free(dq);
    free(qp);
    free(dp);
    free(mp);
    free(tp);
}

/* ---- an embedding padded past its vocabulary (GPT-2 finetunes, Qwen2):
 * the folder runs, and its GGUF conversion carries placeholder tokens for
 * the extra rows so it loads (the loader insists on a vocabulary the size
 * of the embedding) and tokenizes alike */

static void padded(void)
{
    char *ej = td_path("tokenizers/gpt2/encoder.json"), *vb = td_path("tokenizers/gpt2/vocab.bpe");
    if (!ej || !vb) {
        skip(3, "GPT-2 tokenizer files absent");
        free(ej);
        free(vb);
        return;
    }
    char *d = path_in("pad", "");
    mkdir(d, 0755);
    int64_t D = 32, R = 50304, F = 64, P = 16;   /* 50304 rows for 50257 tokens */
    float *buf = malloc((size_t)(R * D) * sizeof *buf);
    for (int64_t i = 0; i < R * D; i++)
        buf[i] = 0.02f * (float)((i * 7919) % 101 - 50) / 50.0f;
    stw *w = stw_alloc();
    int64_t wte[2] = {R, D}, wpe[2] = {P, D}, vec[1] = {D}, qkv[2] = {D, 3 * D}, qkvb[1] = {3 * D},
            proj[2] = {D, D}, fc[2] = {D, F}, fcb[1] = {F}, cp[2] = {F, D};
    stw_add_f32(w, "wte.weight", "F32", 2, wte, buf);
    stw_add_f32(w, "wpe.weight", "F32", 2, wpe, buf);
    stw_add_f32(w, "ln_f.weight", "F32", 1, vec, buf);
    stw_add_f32(w, "ln_f.bias", "F32", 1, vec, buf);
    stw_add_f32(w, "h.0.ln_1.weight", "F32", 1, vec, buf);
    stw_add_f32(w, "h.0.ln_1.bias", "F32", 1, vec, buf);
    stw_add_f32(w, "h.0.attn.c_attn.weight", "F32", 2, qkv, buf);
    stw_add_f32(w, "h.0.attn.c_attn.bias", "F32", 1, qkvb, buf);
    stw_add_f32(w, "h.0.attn.c_proj.weight", "F32", 2, proj, buf);
    stw_add_f32(w, "h.0.attn.c_proj.bias", "F32", 1, vec, buf);
    stw_add_f32(w, "h.0.ln_2.weight", "F32", 1, vec, buf);
    stw_add_f32(w, "h.0.ln_2.bias", "F32", 1, vec, buf);
    stw_add_f32(w, "h.0.mlp.c_fc.weight", "F32", 2, fc, buf);
    stw_add_f32(w, "h.0.mlp.c_fc.bias", "F32", 1, fcb, buf);
    stw_add_f32(w, "h.0.mlp.c_proj.weight", "F32", 2, cp, buf);
    stw_add_f32(w, "h.0.mlp.c_proj.bias", "F32", 1, vec, buf);
    char *mp = path_in("pad", "model.safetensors"), *cfgp = path_in("pad", "config.json");
    stw_write(w, mp);
    stw_free(w);
    write_text(cfgp, "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 1, \"n_head\": 2, "
                     "\"n_positions\": 16, \"n_inner\": 64, \"vocab_size\": 50304}\n");
    /* the vocabulary as older GPT-2 folders ship it, copied into the
     * temporary folder */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/vocab.json' && cp '%s' '%s/merges.txt'", ej, d, vb, d);
    int copied = system(cmd) == 0;
    bl_err err;
    bl_model *m = copied ? load(d, &err) : NULL;
    char *gp = path_in("pad", "pad.gguf");
    bl_model *g = NULL;
    if (m && bl_model_write_gguf(m, gp, BL_F32, &err) == 0)
        g = load(gp, &err);
    if (!g)
        diag("%s", err.msg);
    const bl_tokenizer *tm = m ? bl_model_tokenizer(m) : NULL, *tg = g ? bl_model_tokenizer(g) : NULL;
    ok(m && tm && bl_model_config(m)->n_vocab == R && bl_tokenizer_n_vocab(tm) == 50257,
       "a GPT-2 folder with 50304 embedding rows and a 50257-token vocabulary loads");
    ok(tg && bl_tokenizer_n_vocab(tg) == R && bl_tokenizer_kind(tg, 50300) == BL_TOKEN_UNUSED,
       "its GGUF conversion carries 47 placeholder tokens (kind unused) and loads");
    const char *text = "The quick brown fox jumps over the lazy dog.";
    int32_t a[64], b[64];
    int64_t na = 0, nb = 0;
    int same = tm && tg && bl_tokenizer_encode(tm, text, strlen(text), 0, a, 64, &na) == 0 &&
               bl_tokenizer_encode(tg, text, strlen(text), 0, b, 64, &nb) == 0 && na == nb &&
               memcmp(a, b, (size_t)na * sizeof *a) == 0;
    ok(same, "... and tokenizes as the folder does (%lld ids)", (long long)na);
    bl_model_free(g);
    bl_model_free(m);
    free(buf);
    free(mp);
    free(cfgp);
    free(gp);
    free(d);
    free(ej);
    free(vb);
}

/* ---- malformed folders: a status and a message naming the file, from the
 * library, and exit status 2 from the command */

static int run_cli(const char *model, char *errbuf, size_t cap)
{
    const char *bin = getenv("BL_BIN");
    if (!bin)
        return -1;
    char *ep = path_in("", "cli.err");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' generate -q -m '%s' -n 2 >/dev/null 2>'%s'", bin, model, ep);
    int st = system(cmd);
    size_t n = 0;
    char *e = read_file(ep, &n);
    snprintf(errbuf, cap, "%s", e ? e : "");
    free(e);
    free(ep);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void bad(const char *label, const char *sub, const char *phrase)
{
    char *d = path_in(sub, "");
    bl_err err = {0};
    bl_model *m = NULL;
    int rc = bl_model_load(&m, d, NULL, &err);
    ok(rc < 0 && !m && strstr(err.msg, phrase),
       "%s: %s (%d), message names the problem: %s", label, bl_strerror(rc), rc, err.msg);
    char e[1024];
    int st = run_cli(d, e, sizeof e);
    if (st < 0)
        skip(1, "BL_BIN not set");
    else
        ok(st == 2 && strstr(e, "bitlens generate:") && strstr(e, phrase),
           "%s: bitlens generate exits %d (want 2) with the message", label, st);
    bl_model_free(m);
    free(d);
}

/* a copy of folder `from` as `to`, with file `name` replaced by text (or
 * removed when text is NULL) */
static void variant(const char *from, const char *to, const char *name, const unsigned char *data, size_t n)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s' && cp -r '%s/%s' '%s/%s'", dir, to, dir, from, dir, to);
    if (system(cmd) != 0)
        diag("copy failed");
    char *p = path_in(to, name);
    if (data)
        write_file(p, data, n);
    else
        remove(p);
    free(p);
}

static void vtext(const char *from, const char *to, const char *name, const char *text)
{
    variant(from, to, name, (const unsigned char *)text, text ? strlen(text) : 0);
}

static void malformed(void)
{
    char *gp = td_path("models/stories260K.gguf");
    if (!gp) {
        skip(1, "test data absent");
        return;
    }
    bl_err err;
    bl_model *g = load(gp, &err);
    struct hf_opts o = {"F32", 1};
    if (!g || write_hf(g, "good", o)) {
        ok(0, "base folder");
        return;
    }
    bl_model_free(g);
    free(gp);

    /* config.json */
    vtext("good", "c1", "config.json", "{\"model_type\": \"llama\", \"hidden_size\": ");
    bad("config.json cut short", "c1", "config.json: not valid JSON");
    vtext("good", "c2", "config.json", "[1, 2]");
    bad("config.json an array", "c2", "not a JSON object");
    vtext("good", "c3", "config.json", "{\"hidden_size\": 64}");
    bad("config.json without model_type", "c3", "model_type");
    vtext("good", "c4", "config.json", "{\"model_type\": \"mamba\"}");
    bad("model_type mamba", "c4", "model_type 'mamba' is not supported");
    vtext("good", "c5", "config.json",
          "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"intermediate_size\": 172, \"num_hidden_layers\": 5, "
          "\"num_attention_heads\": 8}");
    bad("hidden_size a string", "c5", "'hidden_size' must be an integer");
    vtext("good", "c6", "config.json",
          "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, \"num_hidden_layers\": 4, "
          "\"num_attention_heads\": 8, \"num_key_value_heads\": 4}");
    bad("num_hidden_layers disagrees with the tensors", "c6", "blk.4");
    vtext("good", "c7", "config.json", NULL);
    bad("no config.json", "c7", "config.json");

    /* safetensors: built by hand around the real header */
    char *sp = path_in("good", "model.safetensors");
    size_t n;
    unsigned char *st = read_file(sp, &n);
    free(sp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | st[i];
    unsigned char *b = malloc(n + 64);
    memcpy(b, st, n);
    for (int i = 0; i < 8; i++)   /* header length past the end */
        b[i] = (unsigned char)((uint64_t)(n + 100) >> (8 * i));
    variant("good", "s1", "model.safetensors", b, n);
    bad("safetensors header length past the end", "s1", "model.safetensors");
    memcpy(b, st, n);
    b[8] = '[';   /* not JSON */
    variant("good", "s2", "model.safetensors", b, n);
    bad("safetensors header not JSON", "s2", "model.safetensors");
    variant("good", "s3", "model.safetensors", st, n - 1000);
    bad("safetensors data cut short", "s3", "model.safetensors");
    char *hdr = malloc(hl + 1);
    memcpy(hdr, st + 8, hl);
    hdr[hl] = '\0';
    /* offsets: move one tensor's [begin, end] by `shift` bytes, rewritten
     * in place with the same width (JSON allows the padding spaces) */
    struct {
        const char *sub, *label;
        int which;   /* 1: the second tensor, -1: the last */
        long shift;
    } moves[] = {{"s4", "safetensors offsets that overlap the previous tensor", 1, -4},
                 {"s7", "safetensors offsets past the end of the buffer", -1, 8}};
    for (size_t k = 0; k < sizeof moves / sizeof moves[0]; k++) {
        char *at = NULL;
        int i = 0;
        for (char *q = strstr(hdr, "\"data_offsets\""); q; q = strstr(q + 1, "\"data_offsets\""), i++)
            if ((moves[k].which > 0 && i == moves[k].which) || moves[k].which < 0)
                at = q;
        char *lb = at ? strchr(at, '[') : NULL, *rb = lb ? strchr(lb, ']') : NULL;
        if (!lb || !rb) {
            skip(2, "no data_offsets to rewrite");
            continue;
        }
        long a0 = strtol(lb + 1, NULL, 10), a1 = strtol(strchr(lb, ',') + 1, NULL, 10);
        char field[64];
        int w = (int)(rb - lb + 1);
        int len = snprintf(field, sizeof field, "[%ld,%ld", a0 + moves[k].shift, a1 + moves[k].shift);
        if (len >= w) {
            skip(2, "offset field too narrow to rewrite in place");
            continue;
        }
        memset(field + len, ' ', (size_t)(w - 1 - len));
        field[w - 1] = ']';
        memcpy(b, st, n);
        memcpy(b + 8 + (lb - hdr), field, (size_t)w);
        variant("good", moves[k].sub, "model.safetensors", b, n);
        bad(moves[k].label, moves[k].sub, "data_offsets");
    }
    char *dt = strstr(hdr, "\"F32\"");
    if (dt) {   /* dtype F32 -> F16: the byte size no longer matches the shape */
        memcpy(b, st, n);
        memcpy(b + 8 + (dt - hdr), "\"F16\"", 5);
        variant("good", "s5", "model.safetensors", b, n);
        bad("safetensors dtype/shape/byte-size mismatch", "s5", "model.safetensors");
    }
    vtext("good", "s6", "model.safetensors", NULL);
    bad("no safetensors", "s6", "model.safetensors");

    /* tokenizer.json */
    vtext("good", "t1", "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [");
    bad("tokenizer.json cut short", "t1", "tokenizer.json");
    vtext("good", "t2", "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}");
    bad("tokenizer.json WordPiece", "t2", "tokenizer.json");
    free(hdr);
    free(b);
    free(st);
}

int main(void)
{
    free(td_require("README.md"));
    dir = tmp_dir();
    struct hf_opts f16 = {"F16", 1}, f32 = {"F32", 1}, sharded = {"F32", 3}, bf16 = {"BF16", 2};
    same_logits("llama GQA F16", "golden/llama_gqa_random/llama-random-e96-l2-h6-kv2-ff256-f16.gguf", "gqa", f16);
    same_logits("GPT-2", "golden/gpt2_random/gpt2-random-e64-l2-h4-ctx128.gguf", "gpt2", f32);
    same_logits("stories260K, 3 shards", "models/stories260K.gguf", "s260k", sharded);
    (void)bf16;
    qwen2();
    llama3_rope();
    q8_0();
    padded();
    malformed();
    rm_rf(dir);
    free(dir);
    return done_testing();
}
