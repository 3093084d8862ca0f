/* tests/fuzz/replay.c: run the fuzz targets without libFuzzer.
 *
 *   fuzz-replay TARGET FILE|DIR...      each file (each regular file of each
 *                                       directory, in name order) once
 *   fuzz-replay --selftest              built-in inputs, for `make check`
 *   fuzz-replay --write-seeds TARGET DIR   the synthetic seeds, as files
 *
 * TARGET is one of the targets below (gguf, llama2c, tokenizer, safetensors,
 * json, trace, report, drift).  Output is TAP.  An input passes if
 * the target returns; a crash, a sanitizer report or a failed FUZZ_CHECK
 * ends the program, after "fuzz-replay: crashed on <input>" on stderr (and
 * the input written to $FUZZ_REPLAY_SAVE if that is set).
 *
 * The selftest feeds each target:
 *   - the files of $BL_TESTDATA, read in place (models, vocabularies,
 *     tokenizers; for the tokenizer target also text and llama.cpp's
 *     tokenizer test strings);
 *   - small valid files built here (GGUF models with a vocabulary, a
 *     vocabulary-only GGUF, llama2.c models of both header versions,
 *     tokenizer.bin files) and checks each one gets as far as it should
 *     (parsed, tokenizer built, model evaluated, text round trip);
 *   - every prefix of some of them, single-byte changes at many offsets,
 *     a few random multi-byte mutations, random bytes after each magic,
 *     random llama2.c models with arbitrary float weights, and plain random
 *     bytes, all from fixed seeds;
 *   - every file of $BL_SRCDIR/tests/fuzz/regress/ named TARGET-*.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <bitlens/bitlens.h>

#include "fuzz.h"
#include "testutil.h"
#include "tap.h"

unsigned fuzz_reached;

/* ------------------------------------------------------------ targets */

struct target {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
};

static const struct target targets[] = {
    {"gguf", fuzz_gguf},
    {"llama2c", fuzz_llama2c},
    {"tokenizer", fuzz_tokenizer},
    {"safetensors", fuzz_safetensors},
    {"json", fuzz_json},
    {"trace", fuzz_trace},
    {"report", fuzz_report},
    {"drift", fuzz_drift},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

static const struct target *find_target(const char *name)
{
    for (size_t i = 0; i < N_TARGETS; i++)
        if (strcmp(targets[i].name, name) == 0)
            return &targets[i];
    return NULL;
}

/* ------------------------------------------------- crash reporting */

static char cur_name[600];
static const uint8_t *cur_data;
static size_t cur_size;

static void say(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

static void report_current(void)
{
    if (!cur_name[0])
        return;
    say("fuzz-replay: crashed on ");
    say(cur_name);
    say("\n");
    const char *save = getenv("FUZZ_REPLAY_SAVE");
    if (save && *save && cur_data) {
        int fd = open(save, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            ssize_t r = write(fd, cur_data, cur_size);
            (void)r;
            close(fd);
            say("fuzz-replay: input saved to ");
            say(save);
            say("\n");
        }
    }
    cur_name[0] = '\0';
}

static void on_signal(int sig)
{
    report_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Present when a sanitizer runtime is linked; it reports its own errors
 * (and must keep its SIGSEGV handler). */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void install_reporting(void)
{
    signal(SIGABRT, on_signal);
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(report_current);
    } else {
        signal(SIGSEGV, on_signal);
        signal(SIGBUS, on_signal);
        signal(SIGFPE, on_signal);
        signal(SIGILL, on_signal);
    }
}

/* ------------------------------------------------- failed checks */

/* A failed FUZZ_CHECK jumps back to run(), which counts it; the TAP line of
 * the group of inputs reports the count (and diag lines the first few). */
static jmp_buf check_jump;
static volatile int check_armed;
static char check_msg[1024];
static unsigned n_failed, n_failed_total;

void fuzz_replay_fail(const char *file, int line, const char *expr)
{
    snprintf(check_msg, sizeof check_msg, "%s:%d: fuzz check failed: %s, on %s", file, line, expr,
             cur_name);
    if (!check_armed) {
        fprintf(stderr, "%s\n", check_msg);
        abort();
    }
    longjmp(check_jump, 1);
}

/* 1 if no check failed since the last call. */
static int passed(void)
{
    int p = n_failed == 0;
    if (n_failed > 3)
        diag("... and %u more failed checks", n_failed - 3);
    n_failed = 0;
    return p;
}

/* The plan and the exit status.  After a failed check the target's
 * allocations for that input were abandoned: skip the leak check at exit,
 * which would only list them. */
static int finish(void)
{
    int rc = done_testing();
    if (n_failed_total) {
        fflush(NULL);
        _exit(rc ? rc : 1);
    }
    return rc;
}

/* Run one input through a target from an exactly sized heap copy (so a read
 * past the end is a heap overflow ASan sees).  Returns what it reached. */
static unsigned run(const struct target *t, const uint8_t *data, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static unsigned run(const struct target *t, const uint8_t *data, size_t size, const char *fmt, ...)
{
    va_list ap;
    int o = snprintf(cur_name, sizeof cur_name, "%s: ", t->name);
    va_start(ap, fmt);
    vsnprintf(cur_name + o, sizeof cur_name - (size_t)o, fmt, ap);
    va_end(ap);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) {
        fprintf(stderr, "fuzz-replay: out of memory\n");
        exit(99);
    }
    if (size)
        memcpy(copy, data, size);
    cur_data = copy;
    cur_size = size;
    fuzz_reached = 0;
    if (setjmp(check_jump) == 0) {
        check_armed = 1;
        t->fn(copy, size);
    } else {
        if (++n_failed <= 3)
            diag("%s", check_msg);
        n_failed_total++;
    }
    check_armed = 0;
    free(copy);
    cur_data = NULL;
    cur_name[0] = '\0';
    return fuzz_reached;
}

/* ------------------------------------------------------------ files */

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of dir whose names start with prefix (NULL: all but dot
 * files), sorted; *n receives the count.  NULL if dir cannot be read. */
static char **list_dir(const char *dir, const char *prefix, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (prefix ? strncmp(e->d_name, prefix, strlen(prefix)) != 0 : e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p)
            break;
        snprintf(p, len, "%s/%s", dir, e->d_name);
        if (!is_regular(p)) {
            free(p);
            continue;
        }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(p);
                break;
            }
            v = nv;
        }
        v[cnt++] = p;
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_names);
    *n = cnt;
    return v ? v : calloc(1, sizeof *v);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ----------------------------------------------------- random numbers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint32_t rnd_below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

static float rnd_weight(void)
{
    return ((float)rnd_below(2001) - 1000.0f) / 2000.0f;   /* [-0.5, 0.5] */
}

/* --------------------------------------------------------- byte buffers */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            fprintf(stderr, "fuzz-replay: out of memory\n");
            exit(99);
        }
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }

static void put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_f32(struct buf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

static void put_zeros(struct buf *b, size_t n)
{
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        put(b, z, k);
        n -= k;
    }
}

/* ------------------------------------------------------ the vocabulary */

/* A small SentencePiece vocabulary: specials, a few byte tokens, pieces
 * that merge.  "_" stands for the space: "▁" in GGUF, ' ' in llama2.c. */
static const char *const vocab[] = {
    "<unk>", "<s>", "</s>", "<0x0A>", "<0x41>", "<0xC3>", "<0xA9>", "_", "a", "b", "c",
    "_a", "ab", "_ab", "abc", "_t", "he", "_the", "e", "h", "t", ".", ",", "\xc3\xa9",
};
#define N_VOCAB ((int)(sizeof vocab / sizeof vocab[0]))

static int vocab_kind(int i)
{
    return i == 0 ? BL_TOKEN_UNKNOWN : i <= 2 ? BL_TOKEN_CONTROL : i <= 6 ? BL_TOKEN_BYTE : BL_TOKEN_NORMAL;
}

/* Token i as the format writes it. */
static void vocab_piece(int i, int gguf, char *out, size_t cap)
{
    if (!gguf && i == 1) {
        snprintf(out, cap, "\n<s>\n");
        return;
    }
    if (!gguf && i == 2) {
        snprintf(out, cap, "\n</s>\n");
        return;
    }
    size_t o = 0;
    for (const char *p = vocab[i]; *p && o + 4 < cap; p++) {
        if (*p == '_' && i >= 7) {
            const char *sp = gguf ? "\xe2\x96\x81" : " ";
            memcpy(out + o, sp, strlen(sp));
            o += strlen(sp);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* A llama2.c tokenizer.bin of the vocabulary. */
static void make_tokbin(struct buf *b)
{
    char piece[32];
    put_u32(b, 8);
    for (int i = 0; i < N_VOCAB; i++) {
        vocab_piece(i, 0, piece, sizeof piece);
        put_f32(b, i < 7 ? 0.0f : -(float)i);
        put_u32(b, (uint32_t)strlen(piece));
        put(b, piece, strlen(piece));
    }
}

/* --------------------------------------------------------------- GGUF */

struct gtensor {
    char name[48];
    int type, n_dims;
    int64_t ne[4];
    struct buf data;
};

struct gguf_build {
    struct buf kv;
    uint64_t n_kv;
    struct gtensor *t;
    size_t n_t, cap_t;
};

static void gkey(struct gguf_build *g, const char *key, uint32_t type)
{
    put_u64(&g->kv, strlen(key));
    put(&g->kv, key, strlen(key));
    put_u32(&g->kv, type);
    g->n_kv++;
}

static void gstr(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void g_u32(struct gguf_build *g, const char *key, uint32_t v)
{
    gkey(g, key, BL_GGUF_UINT32);
    put_u32(&g->kv, v);
}

static void g_f32(struct gguf_build *g, const char *key, float v)
{
    gkey(g, key, BL_GGUF_FLOAT32);
    put_f32(&g->kv, v);
}

static void g_str(struct gguf_build *g, const char *key, const char *v)
{
    gkey(g, key, BL_GGUF_STRING);
    gstr(&g->kv, v);
}

static void g_bool(struct gguf_build *g, const char *key, int v)
{
    gkey(g, key, BL_GGUF_BOOL);
    put_u8(&g->kv, (uint8_t)(v != 0));
}

static void g_arr(struct gguf_build *g, const char *key, uint32_t et, uint64_t n)
{
    gkey(g, key, BL_GGUF_ARRAY);
    put_u32(&g->kv, et);
    put_u64(&g->kv, n);
}

/* A tensor of random values (norm vectors around 1). */
static void g_tensor(struct gguf_build *g, const char *name, int type, int64_t ne0, int64_t ne1,
                     int norm)
{
    if (g->n_t == g->cap_t) {
        g->cap_t = g->cap_t ? 2 * g->cap_t : 32;
        g->t = realloc(g->t, g->cap_t * sizeof *g->t);
        if (!g->t)
            exit(99);
    }
    struct gtensor *t = &g->t[g->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    int64_t n = ne0 * (ne1 ? ne1 : 1);
    if (type == 8) {   /* q8_0: blocks of an f16 scale and 32 int8 */
        for (int64_t i = 0; i < n / 32; i++) {
            put_u16(&t->data, bl_f32_to_f16(0.01f));
            for (int j = 0; j < 32; j++)
                put_u8(&t->data, (uint8_t)rnd());
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float v = norm ? 1.0f + rnd_weight() / 4 : rnd_weight();
        if (type == BL_F32)
            put_f32(&t->data, v);
        else if (type == BL_F16)
            put_u16(&t->data, bl_f32_to_f16(v));
        else
            put_u16(&t->data, bl_f32_to_bf16(v));
    }
}

static void g_finish(struct gguf_build *g, struct buf *out, uint32_t version, size_t align)
{
    put_u32(out, BL_GGUF_MAGIC);
    put_u32(out, version);
    put_u64(out, g->n_t);
    put_u64(out, g->n_kv);
    put(out, g->kv.p, g->kv.n);
    uint64_t off = 0;
    for (size_t i = 0; i < g->n_t; i++) {
        struct gtensor *t = &g->t[i];
        gstr(out, t->name);
        put_u32(out, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            put_u64(out, (uint64_t)t->ne[d]);
        put_u32(out, (uint32_t)t->type);
        put_u64(out, off);
        off = (off + t->data.n + align - 1) / align * align;
    }
    if (g->n_t) {
        put_zeros(out, (align - out->n % align) % align);
        size_t start = out->n;
        for (size_t i = 0; i < g->n_t; i++) {
            put_zeros(out, (align - (out->n - start) % align) % align);
            put(out, g->t[i].data.p, g->t[i].data.n);
        }
    }
    for (size_t i = 0; i < g->n_t; i++)
        free(g->t[i].data.p);
    free(g->t);
    free(g->kv.p);
}

static void g_vocab(struct gguf_build *g, int with_types)
{
    char piece[32];
    g_str(g, "tokenizer.ggml.model", "llama");
    g_arr(g, "tokenizer.ggml.tokens", BL_GGUF_STRING, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++) {
        vocab_piece(i, 1, piece, sizeof piece);
        gstr(&g->kv, piece);
    }
    if (with_types) {
        g_arr(g, "tokenizer.ggml.scores", BL_GGUF_FLOAT32, N_VOCAB);
        for (int i = 0; i < N_VOCAB; i++)
            put_f32(&g->kv, i < 7 ? 0.0f : -(float)i);
        g_arr(g, "tokenizer.ggml.token_type", BL_GGUF_INT32, N_VOCAB);
        for (int i = 0; i < N_VOCAB; i++)
            put_u32(&g->kv, (uint32_t)vocab_kind(i));
        g_u32(g, "tokenizer.ggml.bos_token_id", 1);
        g_u32(g, "tokenizer.ggml.eos_token_id", 2);
        g_u32(g, "tokenizer.ggml.unknown_token_id", 0);
        g_bool(g, "tokenizer.ggml.add_space_prefix", 1);
    }
}

/* One key of every scalar type and an array of every element type. */
static void g_all_types(struct gguf_build *g)
{
    gkey(g, "fuzz.u8", BL_GGUF_UINT8); put_u8(&g->kv, 200);
    gkey(g, "fuzz.i8", BL_GGUF_INT8); put_u8(&g->kv, 0x80);
    gkey(g, "fuzz.u16", BL_GGUF_UINT16); put_u16(&g->kv, 65535);
    gkey(g, "fuzz.i16", BL_GGUF_INT16); put_u16(&g->kv, 0x8000);
    gkey(g, "fuzz.i32", BL_GGUF_INT32); put_u32(&g->kv, 0xFFFFFFFFu);
    gkey(g, "fuzz.u64", BL_GGUF_UINT64); put_u64(&g->kv, UINT64_MAX);
    gkey(g, "fuzz.i64", BL_GGUF_INT64); put_u64(&g->kv, (uint64_t)INT64_MIN);
    gkey(g, "fuzz.f64", BL_GGUF_FLOAT64); put_u64(&g->kv, 0x7FEFFFFFFFFFFFFFull);
    g_f32(g, "fuzz.f32", -0.0f);
    g_bool(g, "fuzz.bool", 1);
    g_str(g, "fuzz.empty", "");
    static const uint32_t et[] = {BL_GGUF_UINT8, BL_GGUF_INT8, BL_GGUF_UINT16, BL_GGUF_INT16,
                                  BL_GGUF_UINT32, BL_GGUF_INT32, BL_GGUF_FLOAT32, BL_GGUF_BOOL,
                                  BL_GGUF_UINT64, BL_GGUF_INT64, BL_GGUF_FLOAT64};
    static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 8, 8};
    char key[32];
    for (size_t i = 0; i < sizeof et / sizeof et[0]; i++) {
        snprintf(key, sizeof key, "fuzz.arr.%s", bl_gguf_type_name((int)et[i]));
        g_arr(g, key, et[i], 3);
        for (int j = 0; j < 3; j++)
            for (size_t k = 0; k < es[i]; k++)
                put_u8(&g->kv, (uint8_t)(j * 7 + k + 1));
    }
    g_arr(g, "fuzz.arr.empty", BL_GGUF_UINT32, 0);
    g_arr(g, "fuzz.arr.strings", BL_GGUF_STRING, 2);
    gstr(&g->kv, "");
    gstr(&g->kv, "x");
}

struct model_spec {
    int D, F, L, H, KVH, V, ctx;
    int tied;
    int emb_type, mat_type, norm_type, out_type;
    int quant;        /* layer 0's attn_q as q8_0 (needs D a multiple of 32) */
};

static void g_model(struct gguf_build *g, const struct model_spec *s)
{
    int hd = s->D / s->H, kv = s->KVH * hd;
    char name[48];
    g_str(g, "general.architecture", "llama");
    g_str(g, "general.name", "bitlens fuzz seed");
    g_u32(g, "llama.embedding_length", (uint32_t)s->D);
    g_u32(g, "llama.block_count", (uint32_t)s->L);
    g_u32(g, "llama.feed_forward_length", (uint32_t)s->F);
    g_u32(g, "llama.attention.head_count", (uint32_t)s->H);
    g_u32(g, "llama.attention.head_count_kv", (uint32_t)s->KVH);
    g_u32(g, "llama.context_length", (uint32_t)s->ctx);
    g_u32(g, "llama.rope.dimension_count", (uint32_t)hd);
    g_f32(g, "llama.rope.freq_base", 10000.0f);
    g_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    g_tensor(g, "token_embd.weight", s->emb_type, s->D, s->V, 0);
    for (int l = 0; l < s->L; l++) {
        int mt = l % 2 ? BL_F32 : s->mat_type;
#define T(suffix, type, a, b, norm)                                                     \
    do {                                                                                \
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, suffix);                     \
        g_tensor(g, name, type, a, b, norm);                                            \
    } while (0)
        T("attn_norm", s->norm_type, s->D, 0, 1);
        T("attn_q", s->quant && l == 0 ? 8 : mt, s->D, s->D, 0);
        T("attn_k", mt, s->D, kv, 0);
        T("attn_v", mt, s->D, kv, 0);
        T("attn_output", mt, s->D, s->D, 0);
        T("ffn_norm", l % 2 ? BL_F32 : s->norm_type, s->D, 0, 1);
        T("ffn_gate", mt, s->D, s->F, 0);
        T("ffn_up", BL_F32, s->D, s->F, 0);
        T("ffn_down", mt, s->F, s->D, 0);
#undef T
    }
    g_tensor(g, "output_norm.weight", s->norm_type, s->D, 0, 1);
    if (!s->tied)
        g_tensor(g, "output.weight", s->out_type, s->D, s->V, 0);
}

/* ----------------------------------------------------------- llama2.c */

static void put_floats(struct buf *b, size_t n, int norm, int wild)
{
    for (size_t i = 0; i < n; i++) {
        float v = norm ? 1.0f + rnd_weight() / 4 : rnd_weight();
        if (wild && rnd_below(16) == 0) {
            static const uint32_t special[] = {0x7FC00000u, 0x7F800000u, 0xFF800000u, 0x00000001u,
                                               0x7F7FFFFFu, 0x80000000u, 0xFFFFFFFFu};
            uint32_t u = special[rnd_below(sizeof special / sizeof special[0])];
            memcpy(&v, &u, 4);
        }
        put_f32(b, v);
    }
}

/* A llama2.c checkpoint: version 0 (legacy seven int32) or 1 ("ak42"). */
static void make_llama2c(struct buf *b, int version, const struct model_spec *s, int wild)
{
    size_t D = (size_t)s->D, F = (size_t)s->F, L = (size_t)s->L, V = (size_t)s->V;
    size_t hd = D / (size_t)s->H, kv = (size_t)s->KVH * hd;
    int32_t h[7] = {s->D, s->F, s->L, s->H, s->KVH, s->V, s->ctx};
    if (version == 0) {
        if (s->tied == 0)
            h[5] = -h[5];
        for (int i = 0; i < 7; i++)
            put_u32(b, (uint32_t)h[i]);
        put_floats(b, V * D, 0, wild);          /* token_embd */
        put_floats(b, L * D, 1, wild);          /* attn_norm */
        put_floats(b, L * D * D, 0, wild);      /* wq */
        put_floats(b, L * D * kv, 0, wild);     /* wk */
        put_floats(b, L * D * kv, 0, wild);     /* wv */
        put_floats(b, L * D * D, 0, wild);      /* wo */
        put_floats(b, L * D, 1, wild);          /* ffn_norm */
        put_floats(b, L * F * D, 0, wild);      /* w1 gate */
        put_floats(b, L * D * F, 0, wild);      /* w2 down */
        put_floats(b, L * F * D, 0, wild);      /* w3 up */
        put_floats(b, D, 1, wild);              /* output_norm */
        put_floats(b, 2 * (size_t)s->ctx * (hd / 2), 0, 0);   /* freq_cis real, imag */
    } else {
        put_u32(b, 0x616b3432u);
        put_u32(b, 1);
        for (int i = 0; i < 7; i++)
            put_u32(b, (uint32_t)h[i]);
        put_u8(b, (uint8_t)(s->tied != 0));
        put_zeros(b, 256 - 37);
        put_floats(b, L * D, 1, wild);          /* attn_norm */
        put_floats(b, L * D, 1, wild);          /* ffn_norm */
        put_floats(b, D, 1, wild);              /* output_norm */
        put_floats(b, V * D, 0, wild);          /* token_embd */
        put_floats(b, L * D * D, 0, wild);      /* wq */
        put_floats(b, L * D * kv, 0, wild);     /* wk */
        put_floats(b, L * D * kv, 0, wild);     /* wv */
        put_floats(b, L * D * D, 0, wild);      /* wo */
        put_floats(b, L * F * D, 0, wild);      /* w1 gate */
        put_floats(b, L * D * F, 0, wild);      /* w2 down */
        put_floats(b, L * F * D, 0, wild);      /* w3 up */
    }
    if (!s->tied)
        put_floats(b, V * D, 0, wild);          /* classifier */
}

/* -------------------------------------------------------------- seeds */

struct seed {
    char name[48];
    const struct target *target;
    struct buf data;
    unsigned expect;    /* FZ_* bits it must reach */
    int mutate;         /* also feed its prefixes and changed bytes */
};

#define MAX_SEEDS 96
static struct seed seeds[MAX_SEEDS];
static size_t n_seeds;

static struct seed *new_seed(const char *target, const char *name, unsigned expect, int mutate)
{
    if (n_seeds == MAX_SEEDS) {
        fprintf(stderr, "fuzz-replay: more than %d seeds: raise MAX_SEEDS\n", MAX_SEEDS);
        exit(2);
    }
    struct seed *s = &seeds[n_seeds++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->target = find_target(target);
    s->expect = expect;
    s->mutate = mutate;
    return s;
}

static void copy_seed(const char *target, const struct seed *from, unsigned expect, int mutate)
{
    struct seed *s = new_seed(target, from->name, expect, mutate);
    put(&s->data, from->data.p, from->data.n);
}

/* safetensors seeds: the length, the header padded to 8 bytes, the buffer
 * (see fuzz-safetensors.c for the index's shards). */
static void st_seed(const char *name, const char *header, const uint8_t *buf, size_t nbuf, int mutate)
{
    struct seed *s = new_seed("safetensors", name, FZ_PARSED, mutate);
    size_t h = strlen(header), pad = (8 - h % 8) % 8;
    put_u64(&s->data, h + pad);
    put(&s->data, header, h);
    put(&s->data, "        ", pad);
    put(&s->data, buf, nbuf);
}

static void build_safetensors_seeds(void)
{
    static const uint8_t b3[26] = {0, 0x3C, 0, 0x40, 0, 0x42, 0, 0xBC, 0, 0xC0, 0, 0xC2,
                                   0, 0, 0x80, 0x3F, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0x80, 0x3F};
    st_seed("st-three.safetensors",
            "{\"__metadata__\":{\"format\":\"pt\"},"
            "\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
            "\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[24,26]},"
            "\"i\":{\"dtype\":\"I32\",\"shape\":[1,1,1,1],\"data_offsets\":[20,24]}}",
            b3, sizeof b3, 1);
    st_seed("st-empty.safetensors", "{}", NULL, 0, 0);
    static const uint8_t b5[8] = {1, 2, 3, 4, 0x12, 0x34, 0, 0};
    st_seed("st-other-dtypes.safetensors",
            "{\"u\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[0,4]},"
            "\"f4\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[4,6]},"
            "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[6,6]},"
            "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[6,8]}}",
            b5, sizeof b5, 0);
    struct seed *s = new_seed("safetensors", "st-index.json", FZ_PARSED, 1);
    static const char idx[] = "{\"metadata\":{\"total_size\":18},\"weight_map\":{"
                              "\"a\":\"model-00001-of-00002.safetensors\","
                              "\"b\":\"model-00001-of-00002.safetensors\","
                              "\"c\":\"model-00002-of-00002.safetensors\"}}";
    put(&s->data, idx, sizeof idx - 1);
}

/* tokenizer.json seeds: tests/fuzz/fuzz-json.c builds them */
size_t fuzz_json_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

static void add_json_seed(const char *name, const void *data, size_t n, unsigned expect, int mutate)
{
    struct seed *s = new_seed("json", name, expect, mutate);
    put(&s->data, data, n);
}

/* trace seeds: tests/fuzz/fuzz-trace.c writes them with the trace writer */
size_t fuzz_trace_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

static void add_trace_seed(const char *name, const void *data, size_t n, unsigned expect, int mutate)
{
    struct seed *s = new_seed("trace", name, expect, mutate);
    put(&s->data, data, n);
}

/* report seeds: tests/fuzz/fuzz-report.c writes them */
size_t fuzz_report_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

static void add_report_seed(const char *name, const void *data, size_t n, unsigned expect, int mutate)
{
    struct seed *s = new_seed("report", name, expect, mutate);
    put(&s->data, data, n);
}

/* drift seeds: tests/fuzz/fuzz-drift.c builds them (references and texts) */
size_t fuzz_drift_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

static void add_drift_seed(const char *name, const void *data, size_t n, unsigned expect, int mutate)
{
    struct seed *s = new_seed("drift", name, expect, mutate);
    put(&s->data, data, n);
}

static void build_seeds(int have_tok512, int have_spm)
{
    static const struct model_spec mixed = {8, 12, 2, 2, 1, N_VOCAB, 16, 0, BL_F16, BL_BF16, BL_BF16, BL_F16, 0};
    static const struct model_spec tied = {8, 12, 1, 2, 2, N_VOCAB, 8, 1, BL_F32, BL_F32, BL_F32, BL_F32, 0};
    static const struct model_spec quant = {32, 40, 1, 4, 2, N_VOCAB, 8, 1, BL_F32, BL_F32, BL_F16, BL_F32, 1};
    static const struct model_spec l2c_gqa = {8, 12, 2, 2, 1, N_VOCAB, 4, 0, 0, 0, 0, 0, 0};
    static const struct model_spec l2c_mha = {8, 12, 1, 2, 2, N_VOCAB, 4, 1, 0, 0, 0, 0, 0};
    const unsigned tok = FZ_PARSED | FZ_TOKENIZER | FZ_ENCODED;
    const unsigned model = FZ_MODEL | FZ_EVAL | FZ_MODEL_TOK;
    struct gguf_build g;
    struct seed *s;

    rng_state = 0x2545F4914F6CDD1Dull;

    memset(&g, 0, sizeof g);
    g_model(&g, &mixed);
    g_vocab(&g, 1);
    s = new_seed("gguf", "model-mixed.gguf", tok, 1);
    g_finish(&g, &s->data, 3, 32);

    memset(&g, 0, sizeof g);
    g_u32(&g, "general.alignment", 8);
    g_str(&g, "llama.rope.scaling.type", "none");
    g_u32(&g, "llama.vocab_size", N_VOCAB);
    g_model(&g, &tied);
    g_vocab(&g, 0);
    s = new_seed("gguf", "model-tied-v2-align8.gguf", tok, 0);
    g_finish(&g, &s->data, 2, 8);

    memset(&g, 0, sizeof g);
    g_model(&g, &quant);
    g_vocab(&g, 1);
    s = new_seed("gguf", "model-q8_0.gguf", tok, 0);
    g_finish(&g, &s->data, 3, 32);

    memset(&g, 0, sizeof g);
    g_str(&g, "general.architecture", "llama");
    g_vocab(&g, 1);
    g_all_types(&g);
    s = new_seed("gguf", "vocab-all-types.gguf", tok, 1);
    g_finish(&g, &s->data, 3, 32);

    /* the GGUF models through the model loader */
    copy_seed("llama2c", &seeds[0], model, 0);
    copy_seed("llama2c", &seeds[1], model, 1);
    copy_seed("llama2c", &seeds[2], model, 0);   /* q8_0: computed since issue 3 */

    /* refused: RoPE scaling, a vocabulary size the embedding disagrees with */
    memset(&g, 0, sizeof g);
    g_str(&g, "llama.rope.scaling.type", "linear");
    g_model(&g, &tied);
    s = new_seed("llama2c", "model-rope-linear.gguf", 0, 0);
    g_finish(&g, &s->data, 3, 32);
    memset(&g, 0, sizeof g);
    g_u32(&g, "llama.vocab_size", N_VOCAB + 1);
    g_model(&g, &tied);
    s = new_seed("llama2c", "model-vocab-size-mismatch.gguf", 0, 0);
    g_finish(&g, &s->data, 3, 32);

    s = new_seed("llama2c", "model-v0-gqa.bin", model, 1);
    make_llama2c(&s->data, 0, &l2c_gqa, 0);
    s = new_seed("llama2c", "model-v0-tied.bin", model, 0);
    make_llama2c(&s->data, 0, &l2c_mha, 0);
    s = new_seed("llama2c", "model-v1-gqa.bin", model, 0);
    make_llama2c(&s->data, 1, &l2c_gqa, 0);
    s = new_seed("llama2c", "model-v1-tied.bin", model, 1);
    make_llama2c(&s->data, 1, &l2c_mha, 0);

    /* tokenizer.bin with its size given (mode 0) and counted (mode 3) */
    s = new_seed("tokenizer", "tokbin-mode0.bin", tok, 1);
    put_u8(&s->data, 0);
    put_u16(&s->data, N_VOCAB - 1);
    make_tokbin(&s->data);
    s = new_seed("tokenizer", "tokbin-mode3.bin", tok, 1);
    put_u8(&s->data, 3);
    make_tokbin(&s->data);
    /* text for tok512 (mode 1) and the Llama vocabulary (mode 2), with
     * every BOS/EOS combination */
    static const char *const texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  two spaces, a tab\tand\nnewlines\n\n",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87",
        "\xff\xfe\x80 invalid \xc3 utf-8 \xe2\x96",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (unsigned mode = 1; mode <= 2; mode++) {
            int have = mode == 1 ? have_tok512 : have_spm;
            int exact = mode == 1 || i != 3;
            char name[48];
            snprintf(name, sizeof name, "text%zu-mode%u", i, mode);
            unsigned flags = (unsigned)i % 4;
            s = new_seed("tokenizer", name, have ? FZ_ENCODED | (exact ? FZ_ROUNDTRIP : 0) : 0, i == 2);
            put_u8(&s->data, (uint8_t)(mode | flags << 2));
            put(&s->data, texts[i], strlen(texts[i]));
        }
    build_safetensors_seeds();
    fuzz_json_seeds(add_json_seed);
    fuzz_trace_seeds(add_trace_seed);
    fuzz_report_seeds(add_report_seed);
    fuzz_drift_seeds(add_drift_seed);
}

static void free_seeds(void)
{
    for (size_t i = 0; i < n_seeds; i++)
        free(seeds[i].data.p);
    n_seeds = 0;
}

/* ----------------------------------------------------------- selftest */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *td;   /* $BL_TESTDATA, or NULL */

/* Run every file matching pattern (under the test data) through t, with
 * `prefix` bytes put in front; one TAP line per file. */
static void run_testdata(const struct target *t, const char *pattern, const uint8_t *prefix,
                         size_t n_prefix, unsigned expect_if_name, const char *name_part)
{
    char pat[1024];
    glob_t gl;
    snprintf(pat, sizeof pat, "%s/%s", td, pattern);
    if (glob(pat, 0, NULL, &gl) != 0)
        return;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        size_t n;
        uint8_t *d = (uint8_t *)read_file(gl.gl_pathv[i], &n);
        if (!d) {
            ok(0, "%s: cannot read %s", t->name, gl.gl_pathv[i]);
            continue;
        }
        uint8_t *in = d;
        if (n_prefix) {
            in = malloc(n + n_prefix);
            if (!in)
                exit(99);
            memcpy(in, prefix, n_prefix);
            memcpy(in + n_prefix, d, n);
            n += n_prefix;
        }
        const char *rel = gl.gl_pathv[i] + strlen(td) + 1;
        double t0 = now();
        unsigned got = run(t, in, n, "%s", rel);
        unsigned want = name_part && strstr(base_name(rel), name_part) ? expect_if_name : 0;
        int p = passed();
        ok(p && (got & want) == want, "%s: %s (%zu bytes, %.2f s, reached 0x%x, want 0x%x)", t->name, rel, n,
           now() - t0, got, want);
        if (in != d)
            free(in);
        free(d);
    }
    globfree(&gl);
}

/* llama.cpp's tokenizer test strings (*.inp: cases separated by a line
 * "__ggml_vocab_test__") as text for modes 1 and 2. */
static void run_vocab_tests(const struct target *t)
{
    char pat[1024];
    glob_t gl;
    snprintf(pat, sizeof pat, "%s/tokenizers/*/*.inp", td);
    if (glob(pat, 0, NULL, &gl) != 0)
        return;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        size_t n;
        uint8_t *d = (uint8_t *)read_file(gl.gl_pathv[i], &n);
        if (!d)
            continue;
        size_t cases = 0, at = 0;
        while (at < n) {
            uint8_t *end = memmem(d + at, n - at, sep, sizeof sep - 1);
            size_t len = end ? (size_t)(end - (d + at)) : n - at;
            uint8_t *in = malloc(len + 1);
            if (!in)
                exit(99);
            memcpy(in + 1, d + at, len);
            for (unsigned mode = 1; mode <= 2; mode++)
                for (unsigned flags = 0; flags < 4; flags++) {
                    in[0] = (uint8_t)(mode | flags << 2);
                    run(t, in, len + 1, "%s case %zu mode %u flags %u", base_name(gl.gl_pathv[i]), cases,
                        mode, flags);
                }
            free(in);
            cases++;
            at += len + (end ? sizeof sep - 1 : 0);
        }
        ok(passed(), "%s: %zu test strings of %s, modes 1 and 2, every BOS/EOS flag", t->name, cases,
           base_name(gl.gl_pathv[i]));
        free(d);
    }
    globfree(&gl);
}

/* Pieces of the text files as text for modes 1 and 2. */
static void run_text_files(const struct target *t)
{
    char pat[1024];
    glob_t gl;
    snprintf(pat, sizeof pat, "%s/text/*.txt", td);
    if (glob(pat, 0, NULL, &gl) != 0)
        return;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        size_t n;
        uint8_t *d = (uint8_t *)read_file(gl.gl_pathv[i], &n);
        if (!d)
            continue;
        size_t runs = 0;
        uint8_t in[1 + 700];
        for (size_t at = 0; at < n && at < 24000; at += 600) {
            size_t len = n - at < 600 ? n - at : 600;
            /* cut at arbitrary bytes too: mid-character starts and ends */
            size_t skew = at / 600 % 3;
            memcpy(in + 1, d + at + skew, len - (len > skew ? skew : len));
            for (unsigned mode = 1; mode <= 2; mode++) {
                in[0] = (uint8_t)(mode | (unsigned)(at / 600 % 4) << 2);
                run(t, in, 1 + len - (len > skew ? skew : len), "%s at %zu mode %u",
                    base_name(gl.gl_pathv[i]), at, mode);
                runs++;
            }
        }
        ok(passed(), "%s: %zu pieces of %s", t->name, runs, base_name(gl.gl_pathv[i]));
        free(d);
    }
    globfree(&gl);
}

static void selftest_testdata(void)
{
    const struct target *g = find_target("gguf"), *l = find_target("llama2c"),
                        *k = find_target("tokenizer");
    if (!td) {
        skip(1, "BL_TESTDATA not set: no test data files");
        return;
    }
    /* the GGUF reader on every file; the model loader on every file */
    run_testdata(g, "models/*.gguf", NULL, 0, FZ_PARSED | FZ_TOKENIZER | FZ_ENCODED, "stories");
    run_testdata(g, "tokenizers/*/*.gguf", NULL, 0, FZ_PARSED | FZ_TOKENIZER, "llama-spm");
    run_testdata(g, "models/*.bin", NULL, 0, 0, NULL);
    run_testdata(l, "models/*.gguf", NULL, 0, FZ_MODEL | FZ_EVAL | FZ_MODEL_TOK, "stories");
    run_testdata(l, "models/*.bin", NULL, 0, FZ_MODEL | FZ_EVAL | FZ_MODEL_TOK, "260K");
    run_testdata(l, "tokenizers/*/*.gguf", NULL, 0, 0, NULL);
    /* tokenizer.bin files: mode 0 for 512 tokens, mode 3 */
    static const uint8_t mode0_512[3] = {0, 0xFF, 0x01}, mode3[1] = {3};
    run_testdata(k, "models/*tok*.bin", mode0_512, 3, FZ_TOKENIZER | FZ_ENCODED, "tok512");
    run_testdata(k, "models/*tok*.bin", mode3, 1, FZ_TOKENIZER | FZ_ENCODED, "tok512");
    run_vocab_tests(k);
    run_text_files(k);
}

static void selftest_seeds(void)
{
    for (size_t i = 0; i < n_seeds; i++) {
        struct seed *s = &seeds[i];
        unsigned got = run(s->target, s->data.p, s->data.n, "synthetic %s", s->name);
        int p = passed();
        ok(p && (got & s->expect) == s->expect, "%s: synthetic %s (%zu bytes) reached 0x%x, want 0x%x",
           s->target->name, s->name, s->data.n, got, s->expect);
    }
}

/* Every prefix, and byte changes at many offsets. */
static void selftest_mutations(void)
{
    static const uint8_t masks[] = {0x01, 0x80, 0xFF};
    for (size_t i = 0; i < n_seeds; i++) {
        struct seed *s = &seeds[i];
        if (!s->mutate)
            continue;
        const struct target *t = s->target;
        double t0 = now();
        for (size_t n = 0; n < s->data.n; n++)
            run(t, s->data.p, n, "prefix of %zu bytes of %s", n, s->name);
        ok(passed(), "%s: all %zu prefixes of %s (%.2f s)", t->name, s->data.n, s->name, now() - t0);

        t0 = now();
        uint8_t *m = malloc(s->data.n);
        if (!m)
            exit(99);
        /* every offset in the first 2 KiB, then about 500 more spread out */
        size_t runs = 0, stride = s->data.n > 2048 ? (s->data.n - 2048) / 500 + 1 : 1;
        for (size_t off = 0; off < s->data.n; off += off < 2048 ? 1 : stride)
            for (size_t k = 0; k < sizeof masks; k++) {
                memcpy(m, s->data.p, s->data.n);
                m[off] ^= masks[k];
                run(t, m, s->data.n, "%s with byte %zu ^ 0x%02x", s->name, off, masks[k]);
                runs++;
            }
        ok(passed(), "%s: %zu single-byte changes of %s (%.2f s)", t->name, runs, s->name, now() - t0);

        /* a few bytes at a time, to values that matter to parsers */
        t0 = now();
        static const uint8_t vals[] = {0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF};
        for (int r = 0; r < 300; r++) {
            memcpy(m, s->data.p, s->data.n);
            int k = 1 + (int)rnd_below(8);
            for (int j = 0; j < k; j++) {
                size_t off = rnd_below((uint32_t)s->data.n);
                m[off] = rnd_below(2) ? vals[rnd_below(sizeof vals)] : (uint8_t)rnd();
            }
            run(t, m, s->data.n, "%s with random bytes changed (round %d)", s->name, r);
        }
        ok(passed(), "%s: 300 multi-byte mutations of %s (%.2f s)", t->name, s->name, now() - t0);
        free(m);
    }
}

static void selftest_random(void)
{
    rng_state = 0x5DEECE66Dull;
    uint8_t buf[1024];
    for (size_t ti = 0; ti < N_TARGETS; ti++) {
        const struct target *t = &targets[ti];
        double t0 = now();
        for (int r = 0; r < 500; r++) {
            size_t n = rnd_below(sizeof buf + 1);
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)rnd();
            run(t, buf, n, "random %d (%zu bytes)", r, n);
        }
        ok(passed(), "%s: 500 random inputs (%.2f s)", t->name, now() - t0);
    }

    /* random bytes after each format's magic, with small counts */
    const struct target *g = find_target("gguf"), *l = find_target("llama2c"),
                        *k = find_target("tokenizer");
    double t0 = now();
    for (int r = 0; r < 600; r++) {
        struct buf b = {0};
        put_u32(&b, BL_GGUF_MAGIC);
        put_u32(&b, 2 + (uint32_t)rnd_below(2));
        put_u64(&b, rnd_below(4));
        put_u64(&b, rnd_below(4));
        size_t n = rnd_below(300);
        for (size_t i = 0; i < n; i++)
            put_u8(&b, rnd_below(3) ? (uint8_t)rnd_below(8) : (uint8_t)rnd());
        run(g, b.p, b.n, "GGUF header with random body %d", r);
        run(l, b.p, b.n, "GGUF header with random body %d", r);
        free(b.p);
    }
    ok(passed(), "gguf, llama2c: 600 GGUF headers with random bodies (%.2f s)", now() - t0);

    t0 = now();
    for (int r = 0; r < 600; r++) {
        struct buf b = {0};
        int v1 = r % 2;
        if (v1) {
            put_u32(&b, 0x616b3432u);
            put_u32(&b, 1);
        }
        for (int i = 0; i < 7; i++)
            put_u32(&b, rnd_below(4) ? rnd_below(9) : (uint32_t)rnd());
        if (v1) {
            put_u8(&b, (uint8_t)rnd_below(2));
            put_zeros(&b, 256 - 37);
        }
        size_t n = rnd_below(2048);
        for (size_t i = 0; i < n; i++)
            put_u8(&b, (uint8_t)rnd());
        run(l, b.p, b.n, "llama2.c header with random body %d", r);
        free(b.p);
    }
    ok(passed(), "llama2c: 600 llama2.c headers with random sizes and bodies (%.2f s)", now() - t0);

    /* random but consistent llama2.c models with wild weights (NaN,
     * infinities, denormals, FLT_MAX) */
    t0 = now();
    unsigned evals = 0;
    for (int r = 0; r < 120; r++) {
        struct model_spec s;
        memset(&s, 0, sizeof s);
        int hd = 2 * (1 + (int)rnd_below(3));
        s.KVH = 1 + (int)rnd_below(2);
        s.H = s.KVH * (1 + (int)rnd_below(2));
        s.D = s.H * hd;
        s.F = 1 + (int)rnd_below(16);
        s.L = 1 + (int)rnd_below(3);
        s.V = 1 + (int)rnd_below(300);
        s.ctx = 1 + (int)rnd_below(6);
        s.tied = (int)rnd_below(2);
        struct buf b = {0};
        make_llama2c(&b, (int)rnd_below(2), &s, 1);
        unsigned got = run(l, b.p, b.n, "random llama2.c model %d", r);
        evals += (got & FZ_EVAL) != 0;
        free(b.p);
    }
    int p = passed();
    ok(p && evals == 120, "llama2c: 120 random llama2.c models with wild weights, %u evaluated (%.2f s)", evals,
       now() - t0);

    /* tokenizer.bin: random records */
    t0 = now();
    for (int r = 0; r < 500; r++) {
        struct buf b = {0};
        put_u8(&b, r % 2 ? 3 : 0);
        int nt = (int)rnd_below(40);
        if (r % 2 == 0)
            put_u16(&b, (uint16_t)(nt ? nt - 1 + (int)rnd_below(2) : 0));
        put_u32(&b, rnd_below(8) ? 1 + rnd_below(8) : (uint32_t)rnd());
        for (int i = 0; i < nt; i++) {
            static const char alpha[] = " ab<0x>\n\xe2\x96\x81\xc3\xa9";
            uint32_t len = rnd_below(7);
            if (rnd_below(8))
                put_f32(&b, -(float)rnd_below(100));
            else
                put_u32(&b, 0x7FC00000u);   /* NaN */
            put_u32(&b, len);
            for (uint32_t j = 0; j < len; j++)
                put_u8(&b, (uint8_t)alpha[rnd_below(sizeof alpha - 1)]);
        }
        run(k, b.p, b.n, "random tokenizer.bin %d", r);
        free(b.p);
    }
    ok(passed(), "tokenizer: 500 random tokenizer.bin files (%.2f s)", now() - t0);
}

static void selftest_regress(void)
{
    const char *src = getenv("BL_SRCDIR");
    if (!src || !*src) {
        skip(1, "BL_SRCDIR not set: no regression inputs");
        return;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress", src);
    for (size_t ti = 0; ti < N_TARGETS; ti++) {
        const struct target *t = &targets[ti];
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s-", t->name);
        size_t n = 0;
        char **files = list_dir(dir, prefix, &n);
        for (size_t i = 0; i < n; i++) {
            size_t len;
            uint8_t *d = (uint8_t *)read_file(files[i], &len);
            if (!d) {
                ok(0, "%s: cannot read %s", t->name, files[i]);
                continue;
            }
            run(t, d, len, "regress/%s", base_name(files[i]));
            ok(passed(), "%s: regress/%s", t->name, base_name(files[i]));
            free(d);
        }
        free_list(files, n);
    }
}

static int selftest(void)
{
    double t0 = now();
    td = getenv("BL_TESTDATA");
    if (td && (!*td || access(td, R_OK) != 0))
        td = NULL;
    int have_tok512 = 0, have_spm = 0;
    if (td) {
        char p[1024];
        snprintf(p, sizeof p, "%s/models/tok512.bin", td);
        have_tok512 = access(p, R_OK) == 0;
        snprintf(p, sizeof p, "%s/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", td);
        have_spm = access(p, R_OK) == 0;
    }
    diag("test data: %s", td ? td : "(none)");
    build_seeds(have_tok512, have_spm);
    selftest_seeds();
    selftest_testdata();
    selftest_regress();
    selftest_mutations();
    selftest_random();
    free_seeds();
    diag("selftest took %.1f s", now() - t0);
    return finish();
}

/* ------------------------------------------------------------------ main */

static int replay(const struct target *t, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            ok(0, "%s: cannot stat %s", t->name, argv[i]);
            continue;
        }
        size_t n = 1;
        char **files;
        if (S_ISDIR(st.st_mode)) {
            files = list_dir(argv[i], NULL, &n);
            if (!files) {
                ok(0, "%s: cannot read directory %s", t->name, argv[i]);
                continue;
            }
        } else {
            files = malloc(sizeof *files);
            if (!files || !(files[0] = strdup(argv[i])))
                exit(99);
        }
        double t0 = now();
        size_t done = 0;
        for (size_t j = 0; j < n; j++) {
            size_t len;
            uint8_t *d = (uint8_t *)read_file(files[j], &len);
            if (!d) {
                ok(0, "%s: cannot read %s", t->name, files[j]);
                continue;
            }
            unsigned got = run(t, d, len, "%s", files[j]);
            if (!S_ISDIR(st.st_mode))
                ok(passed(), "%s: %s (%zu bytes, reached 0x%x)", t->name, files[j], len, got);
            done++;
            free(d);
        }
        if (S_ISDIR(st.st_mode))
            ok(passed(), "%s: %zu files of %s (%.2f s)", t->name, done, argv[i], now() - t0);
        free_list(files, n);
    }
    return finish();
}

static int write_seeds(const struct target *t, const char *dir)
{
    int have = getenv("BL_TESTDATA") != NULL;
    size_t written = 0;
    build_seeds(have, have);
    for (size_t i = 0; i < n_seeds; i++) {
        if (seeds[i].target != t)
            continue;
        char path[4096];
        int len = snprintf(path, sizeof path, "%s/synthetic-%s", dir, seeds[i].name);
        if (len < 0 || (size_t)len >= sizeof path || write_file(path, seeds[i].data.p, seeds[i].data.n) != 0) {
            fprintf(stderr, "fuzz-replay: cannot write %s\n", path);
            free_seeds();
            return 1;
        }
        written++;
    }
    free_seeds();
    fprintf(stderr, "fuzz-replay: %zu seeds for %s written to %s\n", written, t->name, dir);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fuzz-replay TARGET FILE|DIR...\n"
                    "       fuzz-replay --selftest\n"
                    "       fuzz-replay --write-seeds TARGET DIR\n"
                    "TARGET:");
    for (size_t i = 0; i < N_TARGETS; i++)
        fprintf(stderr, "%s %s", i ? "," : "", targets[i].name);
    fputc('\n', stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_reporting();
    bl_set_threads(1);
    if (argc == 2 && strcmp(argv[1], "--selftest") == 0)
        return selftest();
    if (argc == 4 && strcmp(argv[1], "--write-seeds") == 0) {
        const struct target *t = find_target(argv[2]);
        if (!t)
            usage();
        return write_seeds(t, argv[3]);
    }
    if (argc < 3)
        usage();
    const struct target *t = find_target(argv[1]);
    if (!t)
        usage();
    return replay(t, argc - 2, argv + 2);
}
