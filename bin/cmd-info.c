/* bin/cmd-info.c: `bitlens info`: describe a model file. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens info [-z TOKENIZER] [--json] [-v] FILE\n"
    "\n"
    "  -z, --tokenizer TOKENIZER  llama2.c tokenizer.bin to describe with a .bin model\n"
    "      --json                 one JSON object on stdout\n"
    "  -v, --verbose              also list the GGUF metadata\n"
    "  -h, --help                 this text\n";

enum { OPT_JSON = 256 };

static const struct option longopts[] = {
    {"tokenizer", required_argument, NULL, 'z'},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void shape(const struct bl_tensor *t, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->n_dims && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static void human_count(int64_t n, char *buf, size_t len)
{
    if (n >= 1000000000)
        snprintf(buf, len, "%.2f B", (double)n / 1e9);
    else if (n >= 1000000)
        snprintf(buf, len, "%.2f M", (double)n / 1e6);
    else if (n >= 1000)
        snprintf(buf, len, "%.1f K", (double)n / 1e3);
    else
        snprintf(buf, len, "%" PRId64, n);
}

/* One GGUF metadata value, short: scalars in full, arrays by type and
 * length, strings cut at 60 bytes. */
static void kv_value(const bl_gguf *g, int64_t i, char *buf, size_t n)
{
    const char *key = bl_gguf_key(g, i);
    int type = bl_gguf_kv_type(g, i);
    int64_t iv;
    float fv;
    int bv;
    struct bl_gguf_str s;
    int et;
    uint64_t an;
    if (type == BL_GGUF_STRING && bl_gguf_get_str(g, key, &s, NULL) == 0) {
        int cut = s.len > 60;
        snprintf(buf, n, "'%.*s'%s", (int)(cut ? 60 : s.len), s.ptr, cut ? "..." : "");
        for (char *p = buf; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
    } else if (type == BL_GGUF_ARRAY && bl_gguf_get_arr(g, key, &et, &an, NULL) == 0) {
        snprintf(buf, n, "[%s x %" PRIu64 "]", bl_gguf_type_name(et), an);
    } else if ((type == BL_GGUF_FLOAT32 || type == BL_GGUF_FLOAT64) &&
               bl_gguf_get_f32(g, key, &fv, NULL) == 0) {
        snprintf(buf, n, "%g", fv);
    } else if (type == BL_GGUF_BOOL && bl_gguf_get_bool(g, key, &bv, NULL) == 0) {
        snprintf(buf, n, "%s", bv ? "true" : "false");
    } else if (bl_gguf_get_i64(g, key, &iv, NULL) == 0) {
        snprintf(buf, n, "%" PRId64, iv);
    } else {
        snprintf(buf, n, "(%s)", bl_gguf_type_name(type));
    }
}

/* An f32 as the shortest decimal that reads back to it (1e-05, not
 * 9.99999974737875e-06). */
static double f32_json(float f)
{
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return strtod(buf, NULL);
}

static int print_json(const bl_model *m)
{
    const struct bl_model_config *c = bl_model_config(m);
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    cJSON *o = cJSON_CreateObject(), *cfg = cJSON_CreateObject(), *ts = cJSON_CreateArray();
    if (!o || !cfg || !ts)
        cli_die("out of memory");
    cJSON_AddStringToObject(o, "file", bl_model_path(m));
    cJSON_AddNumberToObject(o, "file_size", (double)bl_model_file_size(m));
    cJSON_AddStringToObject(o, "format", bl_model_format_name(m));
    cJSON_AddStringToObject(o, "architecture", bl_model_arch_name(m));
    cJSON_AddStringToObject(o, "name", bl_model_name(m));
    cJSON_AddNumberToObject(o, "parameters", (double)bl_model_n_params(m));
    const char *why;
    int comp = bl_model_computable(m, &why);
    cJSON_AddBoolToObject(o, "computable", comp);
    if (!comp)
        cJSON_AddStringToObject(o, "not_computable_because", why);
    cJSON_AddNumberToObject(cfg, "dim", (double)c->dim);
    cJSON_AddNumberToObject(cfg, "n_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(cfg, "n_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(cfg, "n_kv_heads", (double)c->n_kv_heads);
    cJSON_AddNumberToObject(cfg, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(cfg, "hidden_dim", (double)c->hidden_dim);
    cJSON_AddNumberToObject(cfg, "n_vocab", (double)c->n_vocab);
    cJSON_AddNumberToObject(cfg, "ctx_train", (double)c->ctx_train);
    cJSON_AddNumberToObject(cfg, "n_rot", (double)c->n_rot);
    if (c->rope != BL_ROPE_NONE)
        cJSON_AddNumberToObject(cfg, "rope_base", f32_json(c->rope_base));
    else
        cJSON_AddNullToObject(cfg, "rope_base");
    cJSON_AddNumberToObject(cfg, "norm_eps", f32_json(c->norm_eps));
    cJSON_AddBoolToObject(cfg, "tied_classifier", c->tied_classifier);
    cJSON_AddStringToObject(cfg, "norm", c->norm == BL_NORM_RMS ? "rms" : "layer");
    cJSON_AddStringToObject(cfg, "rope", c->rope == BL_ROPE_NONE ? "none" : c->rope == BL_ROPE_HALVES ? "halves" : "adjacent");
    cJSON_AddStringToObject(cfg, "mlp", c->mlp == BL_MLP_SWIGLU ? "swiglu" : "gelu");
    cJSON_AddBoolToObject(cfg, "learned_positions", c->pos_embd);
    cJSON_AddBoolToObject(cfg, "qkv_bias", c->qkv_bias);
    cJSON_AddBoolToObject(cfg, "rope_scaled", c->rope_scaled);
    cJSON_AddItemToObject(o, "config", cfg);
    if (tok) {
        cJSON *v = cJSON_AddObjectToObject(o, "vocabulary");
        cJSON_AddStringToObject(v, "model", bl_tokenizer_model(tok));
        cJSON_AddNumberToObject(v, "size", (double)bl_tokenizer_n_vocab(tok));
        cJSON_AddNumberToObject(v, "bos", bl_tokenizer_bos(tok));
        cJSON_AddNumberToObject(v, "eos", bl_tokenizer_eos(tok));
    } else {
        cJSON_AddNullToObject(o, "vocabulary");
    }
    for (int64_t i = 0; i < bl_model_n_tensors(m); i++) {
        const struct bl_tensor *t = bl_model_tensor(m, i);
        cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddStringToObject(e, "type", bl_dtype_name(t->type));
        for (int d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddNumberToObject(e, "offset", (double)t->offset);
        cJSON_AddNumberToObject(e, "bytes", (double)t->nbytes);
        cJSON_AddItemToArray(ts, e);
    }
    cJSON_AddItemToObject(o, "tensors", ts);
    const bl_gguf *g = bl_model_gguf(m);
    if (g) {
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        char buf[128];
        for (int64_t i = 0; i < bl_gguf_n_kv(g); i++) {
            kv_value(g, i, buf, sizeof buf);
            cJSON_AddStringToObject(md, bl_gguf_key(g, i), buf);
        }
    }
    char *s = cJSON_Print(o);
    if (!s)
        cli_die("out of memory");
    puts(s);
    cJSON_free(s);
    cJSON_Delete(o);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    struct bl_model_params mp = bl_model_default_params();
    int json = 0, opt;

    mp.describe_only = 1;
    bl_err err = {0};

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":z:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'z': mp.tokenizer_path = optarg; break;
        case OPT_JSON: json = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind >= argc)
        cli_usage("no file: give a model file");
    if (optind + 1 < argc)
        cli_usage("one file at a time ('%s' is extra)", argv[optind + 1]);
    const char *path = argv[optind];

    bl_model *m;
    if (bl_model_load(&m, path, &mp, &err))
        cli_die("%s", err.msg);
    if (json) {
        print_json(m);
        bl_model_free(m);
        return 0;
    }
    const struct bl_model_config *c = bl_model_config(m);
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    char n1[32];
    human_count(bl_model_n_params(m), n1, sizeof n1);
    printf("file:          %s (%zu bytes)\n", path, bl_model_file_size(m));
    printf("format:        %s\n", bl_model_format_name(m));
    printf("architecture:  %s\n", bl_model_arch_name(m));
    printf("name:          %s\n", bl_model_name(m));
    printf("parameters:    %" PRId64 " (%s)\n", bl_model_n_params(m), n1);
    printf("dimensions:    dim %" PRId64 ", %" PRId64 " layer%s, %" PRId64 " head%s (%" PRId64
           " key/value), head dim %" PRId64 ", hidden %" PRId64 "\n",
           c->dim, c->n_layers, c->n_layers == 1 ? "" : "s", c->n_heads, c->n_heads == 1 ? "" : "s",
           c->n_kv_heads, c->head_dim, c->hidden_dim);
    printf("context:       %" PRId64 " positions; ", c->ctx_train);
    if (c->rope == BL_ROPE_NONE)
        printf("learned position embeddings");
    else
        printf("RoPE base %g over %" PRId64 " dims (%s)%s", c->rope_base, c->n_rot,
               c->rope == BL_ROPE_HALVES ? "halves of each head" : "adjacent pairs",
               c->rope_scaled ? ", scaled frequencies" : "");
    printf("; %s eps %g\n", c->norm == BL_NORM_RMS ? "RMSNorm" : "LayerNorm", c->norm_eps);
    printf("blocks:        %s attention%s, %s MLP\n", c->qkv_bias ? "biased" : "bias-free",
           c->arch == BL_ARCH_GPT2 ? " (fused qkv)" : "", c->mlp == BL_MLP_SWIGLU ? "SwiGLU" : "GELU (tanh)");
    printf("classifier:    %s\n", c->tied_classifier ? "tied to the token embedding" : "separate (output.weight)");
    const char *why;
    if (!bl_model_computable(m, &why))
        printf("computable:    no: %s\n", why);
    if (tok)
        printf("vocabulary:    %" PRId64 " tokens (%s), BOS %" PRId32 ", EOS %" PRId32 "\n",
               bl_tokenizer_n_vocab(tok), bl_tokenizer_model(tok), bl_tokenizer_bos(tok), bl_tokenizer_eos(tok));
    else
        printf("vocabulary:    %" PRId64 " rows; no tokenizer (give a tokenizer.bin with -z)\n", c->n_vocab);
    const bl_gguf *g = bl_model_gguf(m);
    if (g && cli_verbose) {
        printf("\nmetadata (%" PRId64 " keys):\n", bl_gguf_n_kv(g));
        char buf[128];
        for (int64_t i = 0; i < bl_gguf_n_kv(g); i++) {
            kv_value(g, i, buf, sizeof buf);
            printf("  %-44s %s\n", bl_gguf_key(g, i), buf);
        }
    }
    printf("\ntensors (%" PRId64 "):\n", bl_model_n_tensors(m));
    printf("  %-32s %-5s %-16s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    for (int64_t i = 0; i < bl_model_n_tensors(m); i++) {
        const struct bl_tensor *t = bl_model_tensor(m, i);
        char sh[64];
        shape(t, sh, sizeof sh);
        printf("  %-32s %-5s %-16s %12zu %12zu\n", t->name, bl_dtype_name(t->type), sh, t->offset, t->nbytes);
    }
    bl_model_free(m);
    return 0;
}
