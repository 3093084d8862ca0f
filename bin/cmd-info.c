/* bin/cmd-info.c: `bitlens info`: describe a model file, or a trace
 * (bitlens-trace(5)): its header and a summary of its chunks. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens info [-z TOKENIZER] [--json] [-v] [FILE]\n"
    "\n"
    "FILE is a model file, or a trace that `bitlens record` wrote ('-': a trace\n"
    "on standard input); without FILE, the default model.\n"
    "\n"
    "  -z, --tokenizer TOKENIZER  llama2.c tokenizer.bin to describe with a .bin model\n"
    "      --json                 one JSON object on stdout\n"
    "  -v, --verbose              also list the GGUF metadata; for a trace, every\n"
    "                             prompt, hook and chunk\n"
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

/* ------------------------------------------------------------ traces */

#define TRACE_CHUNK_HEADER 20u   /* type, flags, stored, raw, crc */

/* chunks of one type */
struct chunk_type {
    uint32_t type;
    uint64_t count, stored, raw;
};

/* what the chunks hold for one prompt */
struct prompt_sum {
    int seen;                         /* its PRMT was read */
    uint64_t tokens, sampled, stats, lens;
    uint64_t rows_min, rows_max;      /* tensor rows per hook */
};

struct trace_sum {
    const char *name;
    bl_trace_reader *r;
    cJSON *hdr;
    int64_t n_prompts, n_hooks;
    struct chunk_type types[16];
    int n_types;                      /* past 15 kinds, the rest count as one */
    uint64_t chunks, stored, raw, end_offset, header_bytes;
    struct prompt_sum *prompts;
    uint64_t *hook_rows;              /* rows per hook, current prompt */
    int64_t cur;                      /* prompt of the last PRMT, -1 before */
    uint64_t tokens, sampled, stats, lens, rows;
};

static void fourcc(uint32_t t, char out[5])
{
    for (int i = 0; i < 4; i++) {
        unsigned char b = (unsigned char)(t >> (8 * i));
        out[i] = b >= 0x20 && b < 0x7f ? (char)b : '?';
    }
    out[4] = '\0';
}

static _Noreturn void trace_bad(const struct trace_sum *t, const struct bl_trace_chunk *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* a record that does not fit the rest of the trace: exit 2 naming it */
static _Noreturn void trace_bad(const struct trace_sum *t, const struct bl_trace_chunk *c, const char *fmt, ...)
{
    char msg[400], type[5];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fourcc(c->type, type);
    cli_die("%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 ": %s", t->name, c->index, type, c->offset, msg);
}

static const cJSON *jm(const cJSON *o, const char *name)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = jm(o, name);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

/* a number member as text ("?" if absent) */
static const char *jnum(const cJSON *o, const char *name, char *buf, size_t n)
{
    const cJSON *v = jm(o, name);
    if (!cJSON_IsNumber(v))
        snprintf(buf, n, "?");
    else if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e18)
        snprintf(buf, n, "%.0f", v->valuedouble);
    else
        snprintf(buf, n, "%g", v->valuedouble);
    return buf;
}

/* a string from the header, quoted, control characters escaped, cut after
 * `max` bytes at a character boundary */
static void put_quoted(const char *s, size_t max)
{
    size_t n = strlen(s), i = 0;
    putchar('"');
    while (i < n && i < max) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
        i++;
    }
    while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80)   /* finish the character */
        putchar(s[i++]);
    putchar('"');
    if (i < n)
        fputs("...", stdout);
}

static void count_type(struct trace_sum *t, const struct bl_trace_chunk *c)
{
    int i = 0;
    while (i < t->n_types && t->types[i].type != c->type)
        i++;
    if (i == t->n_types) {
        if (t->n_types == (int)(sizeof t->types / sizeof t->types[0]))
            i = t->n_types - 1;   /* the last slot gathers the rest */
        else
            t->types[t->n_types++].type = c->type;
    }
    t->types[i].count++;
    t->types[i].stored += c->stored_len;
    t->types[i].raw += c->raw_len;
}

/* the current prompt's tensor rows, folded into its summary */
static void end_prompt(struct trace_sum *t)
{
    if (t->cur < 0)
        return;
    struct prompt_sum *p = &t->prompts[t->cur];
    for (int64_t h = 0; h < t->n_hooks; h++) {
        uint64_t r = t->hook_rows[h];
        if (h == 0 || r < p->rows_min)
            p->rows_min = r;
        if (h == 0 || r > p->rows_max)
            p->rows_max = r;
        t->hook_rows[h] = 0;
    }
}

static struct prompt_sum *chunk_prompt(struct trace_sum *t, const struct bl_trace_chunk *c, uint32_t prompt)
{
    if (t->cur < 0)
        trace_bad(t, c, "a record before the first prompt record (PRMT)");
    if ((int64_t)prompt != t->cur)
        trace_bad(t, c, "a record of prompt %" PRIu32 " among the records of prompt %" PRId64, prompt, t->cur);
    return &t->prompts[t->cur];
}

/* one chunk: counted, its record checked and summed */
static void trace_chunk(struct trace_sum *t, const struct bl_trace_chunk *c)
{
    bl_err err = {0};
    t->chunks++;
    t->stored += c->stored_len;
    t->raw += c->raw_len;
    t->end_offset = c->offset + TRACE_CHUNK_HEADER + c->stored_len;
    count_type(t, c);
    switch (c->type) {
    case BL_CHUNK_PROMPT: {
        struct bl_rec_prompt p;
        if (bl_rec_parse_prompt(c, &p, &err))
            cli_die("%s: %s", t->name, err.msg);
        if (p.prompt >= (uint64_t)t->n_prompts)
            trace_bad(t, c, "prompt %" PRIu32 " is not in the header (%" PRId64 " prompts)", p.prompt, t->n_prompts);
        end_prompt(t);
        t->cur = p.prompt;
        t->prompts[t->cur].seen = 1;
        break;
    }
    case BL_CHUNK_TOKENS: {
        struct bl_rec_tokens k;
        if (bl_rec_parse_tokens(c, &k, &err))
            cli_die("%s: %s", t->name, err.msg);
        struct prompt_sum *p = chunk_prompt(t, c, k.prompt);
        uint64_t s = 0;
        for (uint64_t i = 0; i < k.n; i++)
            s += k.sampled[i] != 0;
        p->tokens += k.n;
        p->sampled += s;
        t->tokens += k.n;
        t->sampled += s;
        break;
    }
    case BL_CHUNK_STATS: {
        struct bl_rec_stats s;
        if (bl_rec_parse_stats(c, &s, &err))
            cli_die("%s: %s", t->name, err.msg);
        chunk_prompt(t, c, s.prompt)->stats += s.n;
        t->stats += s.n;
        break;
    }
    case BL_CHUNK_LENS: {
        struct bl_rec_lens l;
        if (bl_rec_parse_lens(c, &l, &err))
            cli_die("%s: %s", t->name, err.msg);
        chunk_prompt(t, c, l.prompt)->lens += l.n;
        t->lens += l.n;
        break;
    }
    case BL_CHUNK_TENSOR: {
        struct bl_rec_tensor x;
        if (bl_rec_parse_tensor(c, &x, &err))
            cli_die("%s: %s", t->name, err.msg);
        chunk_prompt(t, c, x.prompt);
        if (x.hook >= (uint64_t)t->n_hooks)
            trace_bad(t, c, "hook %" PRIu32 " is not in the header (%" PRId64 " hooks)", x.hook, t->n_hooks);
        t->hook_rows[x.hook] += x.n;
        t->rows += x.n;
        break;
    }
    default:
        break;   /* other records: counted by type only */
    }
}

/* -v: one line per chunk, as it is read */
static void print_chunk(const struct bl_trace_chunk *c)
{
    char type[5];
    fourcc(c->type, type);
    printf("  %8" PRIu64 " %-4s %12" PRIu64 " %10" PRIu32 " %10" PRIu32 "  %s%s", c->index, type, c->offset,
           c->stored_len, c->raw_len, c->flags & BL_CHUNK_ZLIB ? "zlib" : "-",
           c->flags & BL_CHUNK_SHUFFLED ? ",shuffled" : "");
    if (c->raw_len >= 24 && c->type != BL_CHUNK_PROMPT && c->type != BL_CHUNK_TENSOR &&
        (c->type == BL_CHUNK_TOKENS || c->type == BL_CHUNK_STATS || c->type == BL_CHUNK_LENS)) {
        const unsigned char *d = c->data;
        uint64_t pos0 = 0, n = 0;
        for (int i = 7; i >= 0; i--) {
            pos0 = pos0 << 8 | d[8 + i];
            n = n << 8 | d[16 + i];
        }
        printf("  prompt %" PRIu32 ", positions %" PRIu64 "+%" PRIu64,
               (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24, pos0, n);
    } else if (c->type == BL_CHUNK_TENSOR && c->raw_len >= 40) {
        const unsigned char *d = c->data;
        uint64_t pos0 = 0, n = 0;
        for (int i = 7; i >= 0; i--) {
            pos0 = pos0 << 8 | d[16 + i];
            n = n << 8 | d[24 + i];
        }
        printf("  prompt %" PRIu32 ", hook %" PRIu32 ", positions %" PRIu64 "+%" PRIu64,
               (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24,
               (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24, pos0, n);
    } else if (c->type == BL_CHUNK_PROMPT && c->raw_len >= 16) {
        const unsigned char *d = c->data;
        printf("  prompt %" PRIu32 ", %" PRIu32 " tokens",
               (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24,
               (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24);
    }
    putchar('\n');
}

static void print_trace_header(const struct trace_sum *t, const char *path)
{
    const cJSON *h = t->hdr, *m = jm(h, "model"), *cfg = jm(m, "config"), *voc = jm(m, "vocabulary");
    const cJSON *smp = jm(h, "sampling"), *rec = jm(h, "recorded");
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
    printf("trace:         %s (format version %" PRIu32 ")\n", strcmp(path, "-") == 0 ? "<stdin>" : path,
           bl_trace_reader_version(t->r));
    printf("written by:    %s %s\n", jstr(h, "tool"), jstr(h, "version"));
    printf("command:       %s\n", jstr(h, "command"));
    printf("created:       %s\n", jstr(h, "created"));
    printf("model:         %s\n", jstr(m, "path"));
    printf("               %s, %s, %s parameters\n", jstr(m, "format"), jstr(m, "architecture"),
           jnum(m, "parameters", a, sizeof a));
    printf("dimensions:    dim %s, %s layers, %s heads (%s key/value), head dim %s, hidden %s, "
           "context %s\n", jnum(cfg, "dim", a, sizeof a), jnum(cfg, "n_layers", b, sizeof b),
           jnum(cfg, "n_heads", c, sizeof c), jnum(cfg, "n_kv_heads", d, sizeof d),
           jnum(cfg, "head_dim", e, sizeof e), jnum(cfg, "hidden_dim", f, sizeof f),
           jnum(cfg, "ctx_train", g, sizeof g));
    const cJSON *files = jm(m, "files"), *fi;
    cJSON_ArrayForEach(fi, files) {   /* as sha256sum(1) prints them */
        const char *sha = jstr(fi, "sha256");
        printf("sha256:        %s  %s\n", strcmp(sha, "?") ? sha : "(not recorded: --no-hash)", jstr(fi, "path"));
    }
    if (voc)
        printf("vocabulary:    %s tokens (%s), BOS %s, EOS %s\n", jnum(voc, "size", a, sizeof a), jstr(voc, "model"),
               jnum(voc, "bos", b, sizeof b), jnum(voc, "eos", c, sizeof c));
    printf("prompts:       %" PRId64 "\n", t->n_prompts);
    const cJSON *pr, *prompts = jm(h, "prompts");
    int64_t i = 0, shown = cli_verbose ? t->n_prompts : 3;
    cJSON_ArrayForEach(pr, prompts) {
        if (i == shown) {
            printf("  ... %" PRId64 " more (-v lists them all)\n", t->n_prompts - shown);
            break;
        }
        printf("  %" PRId64 ": ", i);
        const cJSON *tx = jm(pr, "text");
        put_quoted(cJSON_IsString(tx) ? tx->valuestring : "?", cli_verbose ? (size_t)-1 : 60);
        printf(" (%s tokens)\n", jnum(pr, "n_tokens", a, sizeof a));
        i++;
    }
    printf("sampling:      temperature %s, top-p %s, top-k %s, seed %s\n", jnum(smp, "temperature", a, sizeof a),
           jnum(smp, "top_p", b, sizeof b), jnum(smp, "top_k", c, sizeof c), jnum(smp, "seed", d, sizeof d));
    printf("generated:     %s tokens after each prompt\n", jnum(smp, "n_gen", e, sizeof e));
    const cJSON *lens = jm(rec, "lens");
    printf("recorded:      %" PRId64 " hook point%s as %s; logit lens %s\n", t->n_hooks, t->n_hooks == 1 ? "" : "s",
           jstr(rec, "dtype"), cJSON_IsTrue(lens) ? "at each layer" : "not taken");
    printf("               top %s ids per position; context %s positions\n", jnum(rec, "top_k", a, sizeof a),
           jnum(rec, "n_ctx", b, sizeof b));
    const cJSON *hk;
    i = 0;
    shown = cli_verbose ? t->n_hooks : 8;
    cJSON_ArrayForEach(hk, jm(rec, "hooks")) {
        if (i == shown) {
            printf("  ... %" PRId64 " more (-v lists them all)\n", t->n_hooks - shown);
            break;
        }
        const cJSON *w = jm(hk, "width");
        if (cJSON_IsNumber(w) && w->valuedouble < 0)
            printf("  %s (varies with the position)\n", jstr(hk, "name"));
        else
            printf("  %s (width %s)\n", jstr(hk, "name"), jnum(hk, "width", a, sizeof a));
        i++;
    }
}

static void print_trace_chunks(const struct trace_sum *t, uint64_t bytes, int complete)
{
    printf("chunks:        %" PRIu64 " (%" PRIu64 " bytes stored, %" PRIu64 " raw)\n", t->chunks, t->stored, t->raw);
    if (t->n_types)
        printf("  %-4s %8s %14s %14s %7s\n", "type", "count", "stored", "raw", "ratio");
    for (int i = 0; i < t->n_types; i++) {
        const struct chunk_type *k = &t->types[i];
        char type[5];
        fourcc(k->type, type);
        printf("  %-4s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %7.2f\n", type, k->count, k->stored, k->raw,
               k->stored ? (double)k->raw / (double)k->stored : 0.0);
    }
    printf("tokens:        %" PRIu64 " (%" PRIu64 " sampled)\n", t->tokens, t->sampled);
    printf("evaluated:     %" PRIu64 " with statistics, %" PRIu64 " with the logit lens\n", t->stats, t->lens);
    printf("tensor rows:   %" PRIu64 " (%" PRId64 " hook point%s)\n", t->rows, t->n_hooks, t->n_hooks == 1 ? "" : "s");
    int64_t shown = cli_verbose ? t->n_prompts : 10;
    if (t->n_prompts)
        printf("per prompt:\n");
    for (int64_t i = 0; i < t->n_prompts; i++) {
        const struct prompt_sum *p = &t->prompts[i];
        if (i == shown) {
            printf("  ... %" PRId64 " more prompts (-v lists them all)\n", t->n_prompts - shown);
            break;
        }
        if (!p->seen) {
            printf("  %" PRId64 ": not in the trace\n", i);
            continue;
        }
        printf("  %" PRId64 ": %" PRIu64 " tokens (%" PRIu64 " sampled), %" PRIu64 " evaluated", i, p->tokens,
               p->sampled, p->stats);
        if (t->n_hooks) {
            if (p->rows_min == p->rows_max)
                printf(", %" PRIu64 " rows per hook", p->rows_min);
            else
                printf(", %" PRIu64 " to %" PRIu64 " rows per hook", p->rows_min, p->rows_max);
        }
        putchar('\n');
    }
    if (complete)
        printf("status:        complete (%" PRIu64 " bytes, closing index read)\n", bytes);
    else
        printf("status:        incomplete: no closing index\n"
               "               whole chunks end at offset %" PRIu64 " of %" PRIu64 " bytes\n", t->end_offset, bytes);
}

static void print_trace_json(const struct trace_sum *t, const char *path, uint64_t bytes, int complete)
{
    cJSON *o = t->hdr, *ch = cJSON_CreateObject(), *types = cJSON_CreateObject(), *ps = cJSON_CreateArray();
    if (!ch || !types || !ps)
        cli_die("out of memory");
    cJSON_AddStringToObject(ch, "file", path);
    cJSON_AddNumberToObject(ch, "format_version", bl_trace_reader_version(t->r));
    cJSON_AddNumberToObject(ch, "bytes", (double)bytes);
    cJSON_AddBoolToObject(ch, "complete", complete);
    cJSON_AddNumberToObject(ch, "end_offset", (double)t->end_offset);
    cJSON_AddNumberToObject(ch, "header_bytes", (double)t->header_bytes);
    cJSON_AddNumberToObject(ch, "count", (double)t->chunks);
    cJSON_AddNumberToObject(ch, "stored", (double)t->stored);
    cJSON_AddNumberToObject(ch, "raw", (double)t->raw);
    for (int i = 0; i < t->n_types; i++) {
        const struct chunk_type *k = &t->types[i];
        char type[5];
        fourcc(k->type, type);
        cJSON *e = cJSON_CreateObject();
        if (!e)
            cli_die("out of memory");
        cJSON_AddNumberToObject(e, "count", (double)k->count);
        cJSON_AddNumberToObject(e, "stored", (double)k->stored);
        cJSON_AddNumberToObject(e, "raw", (double)k->raw);
        cJSON_AddItemToObject(types, type, e);
    }
    cJSON_AddItemToObject(ch, "types", types);
    cJSON_AddNumberToObject(ch, "tokens", (double)t->tokens);
    cJSON_AddNumberToObject(ch, "sampled", (double)t->sampled);
    cJSON_AddNumberToObject(ch, "positions", (double)t->stats);
    cJSON_AddNumberToObject(ch, "lens_positions", (double)t->lens);
    cJSON_AddNumberToObject(ch, "tensor_rows", (double)t->rows);
    for (int64_t i = 0; i < t->n_prompts; i++) {
        const struct prompt_sum *p = &t->prompts[i];
        cJSON *e = cJSON_CreateObject();
        if (!e)
            cli_die("out of memory");
        cJSON_AddNumberToObject(e, "prompt", (double)i);
        cJSON_AddBoolToObject(e, "recorded", p->seen);
        cJSON_AddNumberToObject(e, "tokens", (double)p->tokens);
        cJSON_AddNumberToObject(e, "sampled", (double)p->sampled);
        cJSON_AddNumberToObject(e, "positions", (double)p->stats);
        cJSON_AddNumberToObject(e, "lens_positions", (double)p->lens);
        cJSON_AddNumberToObject(e, "rows_per_hook_min", (double)p->rows_min);
        cJSON_AddNumberToObject(e, "rows_per_hook_max", (double)p->rows_max);
        cJSON_AddItemToArray(ps, e);
    }
    cJSON_AddItemToObject(ch, "prompts", ps);
    cJSON_AddItemToObject(o, "chunks", ch);
    char *s = cJSON_Print(o);
    if (!s)
        cli_die("out of memory");
    puts(s);
    cJSON_free(s);
}

static int info_trace(const char *path, int json)
{
    struct trace_sum t;
    bl_err err = {0};
    memset(&t, 0, sizeof t);
    t.cur = -1;
    if (bl_trace_reader_open(&t.r, path, &err))
        cli_die("%s", err.msg);
    t.name = bl_trace_reader_name(t.r);
    size_t hl;
    const char *text = bl_trace_reader_header(t.r, &hl);
    t.header_bytes = 16 + (uint64_t)hl + 4;
    t.end_offset = t.header_bytes;
    if (!(t.hdr = cJSON_ParseWithLength(text, hl)) || !cJSON_IsObject(t.hdr))
        cli_die("%s: the header is not a JSON object", t.name);
    const cJSON *prompts = jm(t.hdr, "prompts"), *hooks = jm(jm(t.hdr, "recorded"), "hooks");
    if (!cJSON_IsArray(prompts))
        cli_die("%s: header: 'prompts' is missing or not an array", t.name);
    if (!cJSON_IsArray(hooks))
        cli_die("%s: header: 'recorded.hooks' is missing or not an array", t.name);
    t.n_prompts = cJSON_GetArraySize(prompts);
    t.n_hooks = cJSON_GetArraySize(hooks);
    t.prompts = calloc((size_t)t.n_prompts + 1, sizeof *t.prompts);
    t.hook_rows = calloc((size_t)t.n_hooks + 1, sizeof *t.hook_rows);
    if (!t.prompts || !t.hook_rows)
        cli_die("out of memory");

    /* with -v the chunks are listed as they are read: the header first */
    int list = cli_verbose && !json;
    if (list) {
        print_trace_header(&t, path);
        printf("\nchunk list:\n  %8s %-4s %12s %10s %10s  %s\n", "chunk", "type", "offset", "stored", "raw",
               "flags, contents");
    }
    struct bl_trace_chunk c;
    int rc;
    while ((rc = bl_trace_reader_next(t.r, &c, &err)) == 1) {
        trace_chunk(&t, &c);
        if (list)
            print_chunk(&c);
    }
    if (rc < 0)
        cli_die("%s", err.msg);
    end_prompt(&t);
    int complete = bl_trace_reader_complete(t.r);
    uint64_t bytes = bl_trace_reader_offset(t.r);
    if (json) {
        print_trace_json(&t, path, bytes, complete);
    } else {
        if (!list)
            print_trace_header(&t, path);
        putchar('\n');
        print_trace_chunks(&t, bytes, complete);
    }
    cJSON_Delete(t.hdr);
    free(t.prompts);
    free(t.hook_rows);
    bl_trace_reader_free(t.r);
    return 0;
}

/* A drafter file (bitlens train): its keys and tensors, without a model.
 * Returns -1 if path is not a drafter. */
static int info_drafter(const char *path, int json)
{
    bl_gguf *g;
    bl_err err = {0};
    if (bl_gguf_open(&g, path, &err))
        return -1;
    struct bl_gguf_str arch;
    if (bl_gguf_get_str(g, "general.architecture", &arch, &err) || arch.len != 15 ||
        memcmp(arch.ptr, "bitlens-drafter", 15) != 0) {
        bl_gguf_free(g);
        return -1;
    }
    static const char *const keys[] = {"bitlens.drafter.kind", "bitlens.drafter.n_heads", "bitlens.drafter.n_blocks",
                                       "bitlens.drafter.width", "bitlens.drafter.hook", "bitlens.drafter.model.name",
                                       "bitlens.drafter.model.sha256", "bitlens.drafter.model.dim",
                                       "bitlens.drafter.model.n_vocab"};
    int64_t n_params = 0;
    for (int64_t i = 0; i < bl_gguf_n_tensors(g); i++)
        n_params += bl_tensor_nelements(bl_gguf_tensor(g, i));
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "type", "drafter");
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            struct bl_gguf_str sv;
            int64_t iv;
            if (bl_gguf_get_str(g, keys[k], &sv, NULL) == 0) {
                char *v = strndup(sv.ptr, (size_t)sv.len);
                if (!v)
                    cli_die("out of memory");
                cJSON_AddStringToObject(o, keys[k] + 16, v);
                free(v);
            } else if (bl_gguf_get_i64(g, keys[k], &iv, NULL) == 0) {
                cJSON_AddNumberToObject(o, keys[k] + 16, (double)iv);
            }
        }
        cJSON_AddNumberToObject(o, "parameters", (double)n_params);
        char *t = cJSON_Print(o);
        if (t)
            puts(t);
        free(t);
        cJSON_Delete(o);
    } else {
        printf("file:          %s (%zu bytes)\n", path, bl_gguf_file_size(g));
        printf("format:        gguf v%" PRIu32 ", a drafter (bitlens train)\n", bl_gguf_version(g));
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            struct bl_gguf_str sv;
            int64_t iv;
            char label[32];
            snprintf(label, sizeof label, "%s:", keys[k] + 16);
            if (bl_gguf_get_str(g, keys[k], &sv, NULL) == 0)
                printf("%-14s %.*s\n", label, (int)(sv.len < 4096 ? sv.len : 4096), sv.ptr);
            else if (bl_gguf_get_i64(g, keys[k], &iv, NULL) == 0)
                printf("%-14s %" PRId64 "\n", label, iv);
        }
        printf("parameters:    %" PRId64 " in %" PRId64 " tensors\n", n_params, bl_gguf_n_tensors(g));
        if (cli_verbose)
            for (int64_t i = 0; i < bl_gguf_n_tensors(g); i++) {
                const struct bl_tensor *t = bl_gguf_tensor(g, i);
                char sh[64];
                shape(t, sh, sizeof sh);
                printf("  %-36s %-6s %s\n", t->name, bl_dtype_name(t->type), sh);
            }
    }
    bl_gguf_free(g);
    return 0;
}

/* A GGUF file holding only a vocabulary (bitlens train --tokenizer), or the
 * drift reference tables (bitlens drift --build-reference).  Returns -1 if
 * path is neither. */
static int info_vocab_or_reference(const char *path, int json)
{
    bl_gguf *g;
    bl_err err = {0};
    if (bl_gguf_open(&g, path, &err))
        return -1;
    struct bl_gguf_str arch = {0};
    bl_gguf_get_str(g, "general.architecture", &arch, NULL);
    int is_ref = arch.len == 13 && memcmp(arch.ptr, "bitlens-drift", 13) == 0;
    int is_vocab = !is_ref && bl_gguf_n_tensors(g) == 0 && bl_gguf_find_key(g, "tokenizer.ggml.tokens") >= 0;
    if (!is_ref && !is_vocab) {
        bl_gguf_free(g);
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    if (is_vocab) {
        bl_tokenizer *t;
        if (bl_tokenizer_from_gguf(&t, g, &err))
            cli_die("%s", err.msg);
        int32_t ids[64];
        int64_t n = 0;
        static const char sample[] = "Once upon a time, a tokenizer learned English.";
        bl_tokenizer_encode(t, sample, sizeof sample - 1, 0, ids, 64, &n);
        cJSON_AddStringToObject(o, "type", "vocabulary");
        cJSON_AddStringToObject(o, "model", bl_tokenizer_model(t));
        cJSON_AddNumberToObject(o, "tokens", (double)bl_tokenizer_n_vocab(t));
        cJSON_AddNumberToObject(o, "bos", bl_tokenizer_bos(t));
        cJSON_AddNumberToObject(o, "eos", bl_tokenizer_eos(t));
        cJSON_AddNumberToObject(o, "sample_tokens", (double)n);
        if (!json) {
            printf("file:          %s (%zu bytes)\n", path, bl_gguf_file_size(g));
            printf("format:        gguf v%" PRIu32 ", a vocabulary without a model\n", bl_gguf_version(g));
            printf("vocabulary:    %" PRId64 " tokens (%s), BOS %" PRId32 ", EOS %" PRId32 "\n", bl_tokenizer_n_vocab(t),
                   bl_tokenizer_model(t), bl_tokenizer_bos(t), bl_tokenizer_eos(t));
            printf("sample:        \"%s\" is %" PRId64 " tokens:", sample, n);
            for (int64_t i = 0; i < n && i < 64; i++) {
                size_t len;
                const char *piece = bl_tokenizer_piece(t, ids[i], &len);
                printf(" %.*s", (int)len, piece);
            }
            printf("\n");
        }
        bl_tokenizer_free(t);
    } else {
        bl_drift_ref *r;
        if (bl_drift_ref_load(&r, path, &err))
            cli_die("%s", err.msg);
        size_t nc;
        bl_drift_ref_calibration(r, &nc);
        uint32_t co = 0, wo = 0, ws = 0;
        int64_t cg = 0, wg = 0;
        bl_gguf_get_u32(g, "bitlens.drift.chars.order", &co, NULL);
        bl_gguf_get_u32(g, "bitlens.drift.words.order", &wo, NULL);
        bl_gguf_get_u32(g, "bitlens.drift.words.n_symbols", &ws, NULL);
        bl_gguf_get_i64(g, "bitlens.drift.chars.n_grams", &cg, NULL);
        bl_gguf_get_i64(g, "bitlens.drift.words.n_grams", &wg, NULL);
        cJSON_AddStringToObject(o, "type", "drift reference");
        cJSON_AddStringToObject(o, "source", bl_drift_ref_source(r));
        cJSON_AddNumberToObject(o, "char_order", co);
        cJSON_AddNumberToObject(o, "char_grams", (double)cg);
        cJSON_AddNumberToObject(o, "word_order", wo);
        cJSON_AddNumberToObject(o, "word_grams", (double)wg);
        cJSON_AddNumberToObject(o, "word_symbols", ws);
        cJSON_AddNumberToObject(o, "calibration_bytes", (double)nc);
        if (!json) {
            printf("file:          %s (%zu bytes)\n", path, bl_gguf_file_size(g));
            printf("format:        gguf v%" PRIu32 ", drift reference tables (bitlens drift)\n", bl_gguf_version(g));
            printf("source:        %s\n", bl_drift_ref_source(r));
            printf("characters:    %" PRIu32 "-gram Kneser-Ney, %" PRId64 " n-grams kept\n", co, cg);
            printf("words:         %" PRIu32 "-gram Kneser-Ney over %" PRIu32 " forms and shapes, %" PRId64
                   " n-grams kept\n", wo, ws, wg);
            printf("calibration:   %zu bytes of held-out text (the default baseline)\n", nc);
        }
        bl_drift_ref_free(r);
    }
    if (json) {
        char *t = cJSON_Print(o);
        if (t)
            puts(t);
        free(t);
    }
    cJSON_Delete(o);
    bl_gguf_free(g);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    struct bl_model_params mp = bl_model_default_params();
    int json = 0, opt;

    mp.describe_only = 1;
    bl_err err = {0};

    optind = 0;   /* a fresh scan: glibc reinitializes its state */
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
    if (optind + 1 < argc)
        cli_usage("one file at a time ('%s' is extra)", argv[optind + 1]);
    if (optind >= argc && mp.tokenizer_path)
        cli_usage("-z %s: a tokenizer goes with a llama2.c model FILE (the default model has its vocabulary "
                  "inside)", mp.tokenizer_path);
    const char *path = cli_default_model_as(optind < argc ? argv[optind] : NULL, "FILE");

    /* a trace ('-': one on standard input), else a model */
    if (strcmp(path, "-") == 0 || bl_trace_is_trace(path)) {
        if (mp.tokenizer_path)
            cli_usage("-z '%s': a tokenizer describes a model file, not a trace", mp.tokenizer_path);
        return info_trace(path, json);
    }

    if (info_drafter(path, json) == 0 || info_vocab_or_reference(path, json) == 0)
        return 0;
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
