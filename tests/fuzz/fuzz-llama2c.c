/* tests/fuzz/fuzz-llama2c.c: the model loader (llama2.c .bin and GGUF).
 *
 * bl_model_load() takes a path, so the input goes into an anonymous memfd
 * and is loaded as /proc/self/fd/N (the loader mmaps it like a file).
 * Inputs starting with "GGUF" take the GGUF model path, others the llama2.c
 * path (version 1 "ak42" header or the legacy seven int32).
 *
 * For each input:
 *   1. load without a tokenizer (a GGUF brings its own vocabulary); if the
 *      tensor types are unsupported, load again with describe_only;
 *   2. walk what a loaded model describes: config, tensors (first and last
 *      byte of each), parameter counts, its tokenizer;
 *   3. if it is computable: a context of 4 positions, a hook on every point
 *      (each event's rows touched), a batch of two tokens (the first and
 *      last of the vocabulary), one more token, the BL_ERANGE and BL_EINVAL
 *      refusals, a rewind and one more token;
 *   4. load again with a generated tokenizer.bin of exactly n_vocab tokens,
 *      encode a prompt with it and evaluate it; and with n_vocab + 1 tokens,
 *      which must fail with BL_EMISMATCH.
 *
 * The loader bounds everything by the file size (every tensor must lie in
 * the file), so no input is skipped on its header: an input the loader
 * accepts that then needs seconds or gigabytes is a finding.  The target
 * only caps its own extra work (the generated tokenizer, logits buffers).
 */
#include "config.h"

#include <string.h>

#include <bitlens/common.h>
#include <bitlens/ctx.h>
#include <bitlens/model.h>
#include <bitlens/tokenizer.h>

#include "fuzz.h"

/* The largest vocabulary for which a tokenizer.bin is generated, and for
 * which logits are requested. */
#define MAX_GEN_VOCAB 65536
#define MAX_LOGITS_VOCAB (1 << 20)

static int model_fd = -1, tok_fd = -1;

/* Token i of the generated vocabulary: llama2.c's three specials, the 256
 * byte tokens, then distinct strings over " a-z" (bijective base 27). */
static size_t gen_piece(int64_t i, char *buf)
{
    static const char alpha[] = " abcdefghijklmnopqrstuvwxyz";
    if (i == 0)
        return (size_t)sprintf(buf, "<unk>");
    if (i == 1)
        return (size_t)sprintf(buf, "\n<s>\n");
    if (i == 2)
        return (size_t)sprintf(buf, "\n</s>\n");
    if (i < 259)
        return (size_t)sprintf(buf, "<0x%02X>", (unsigned)(i - 3));
    int64_t j = i - 259 + 1;
    size_t n = 0;
    char tmp[16];
    while (j > 0) {
        j--;
        tmp[n++] = alpha[j % 27];
        j /= 27;
    }
    for (size_t k = 0; k < n; k++)
        buf[k] = tmp[n - 1 - k];
    return n;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A llama2.c tokenizer.bin of n tokens in tok_fd; 0 or -1. */
static int gen_tokenizer(int64_t n)
{
    size_t size = 4, max_len = 0;
    char piece[16];
    for (int64_t i = 0; i < n; i++) {
        size_t len = gen_piece(i, piece);
        size += 8 + len;
        if (len > max_len)
            max_len = len;
    }
    uint8_t *buf = malloc(size);
    if (!buf)
        return -1;
    put32(buf, (uint32_t)max_len);
    size_t o = 4;
    for (int64_t i = 0; i < n; i++) {
        size_t len = gen_piece(i, piece);
        float score = i < 259 ? 0.0f : -(float)(i - 259);
        uint32_t u;
        memcpy(&u, &score, 4);
        put32(buf + o, u);
        put32(buf + o + 4, (uint32_t)len);
        memcpy(buf + o + 8, piece, len);
        o += 8 + len;
    }
    int rc = fuzz_memfd_fill(tok_fd, buf, size);
    free(buf);
    return rc;
}

struct hook_count {
    int64_t events;
    int64_t n_layers;
};

static int on_hook(const struct bl_hook_event *ev, void *user)
{
    struct hook_count *hc = user;
    FUZZ_CHECK(ev->name != NULL && ev->data != NULL);
    FUZZ_CHECK(ev->kind >= 0 && ev->kind < BL_HOOK_N_KINDS);
    FUZZ_CHECK(ev->layer >= -1 && ev->layer < hc->n_layers);
    FUZZ_CHECK(ev->n_pos >= 1 && ev->width >= 1 && ev->pos0 >= 0);
    /* read and write back the first and last element */
    size_t last = (size_t)(ev->n_pos * ev->width) - 1;
    float a = ev->data[0], b = ev->data[last];
    ev->data[0] = a;
    ev->data[last] = b;
    hc->events++;
    return 0;
}

static void walk_model(const bl_model *m, size_t size)
{
    const struct bl_model_config *c = bl_model_config(m);
    FUZZ_CHECK(bl_model_format(m) == BL_FORMAT_GGUF || bl_model_format(m) == BL_FORMAT_LLAMA2C);
    FUZZ_CHECK(bl_model_format_name(m) && bl_model_arch_name(m) && bl_model_name(m) && bl_model_path(m));
    FUZZ_CHECK(bl_model_file_size(m) == size);
    /* what the forward pass relies on */
    FUZZ_CHECK(c->dim >= 1 && c->n_layers >= 1 && c->n_vocab >= 1 && c->hidden_dim >= 1);
    FUZZ_CHECK(c->n_heads >= 1 && c->n_kv_heads >= 1 && c->n_heads % c->n_kv_heads == 0);
    FUZZ_CHECK(c->head_dim * c->n_heads == c->dim);
    FUZZ_CHECK(c->n_rot >= 2 && c->n_rot <= c->head_dim && c->n_rot % 2 == 0);
    FUZZ_CHECK(c->ctx_train >= 1);
    int64_t n = bl_model_n_tensors(m);
    FUZZ_CHECK(n >= 1);
    for (int64_t i = 0; i < n; i++) {
        const struct bl_tensor *t = bl_model_tensor(m, i);
        FUZZ_CHECK(t->name && bl_model_find_tensor(m, t->name) == t);
        FUZZ_CHECK(t->offset <= size && t->nbytes <= size - t->offset);
        if (t->nbytes) {
            fuzz_touch(t->data, 1);
            fuzz_touch((const uint8_t *)t->data + t->nbytes - 1, 1);
        }
    }
    FUZZ_CHECK(bl_model_n_params(m) >= 1);
    FUZZ_CHECK(bl_model_decode_bytes(m) <= size);
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    if (tok)
        FUZZ_CHECK(bl_tokenizer_n_vocab(tok) == c->n_vocab);
    FUZZ_CHECK((bl_model_gguf(m) != NULL) == (bl_model_format(m) == BL_FORMAT_GGUF));
}

/* Run tokens through a fresh context of 4 positions. */
static void eval_model(const bl_model *m, const int32_t *prompt, int64_t n_prompt, unsigned variant)
{
    const struct bl_model_config *c = bl_model_config(m);
    int64_t V = c->n_vocab;
    struct bl_ctx_params p = bl_ctx_default_params();
    p.n_ctx = 4;
    p.n_batch = variant & 1 ? 1 : 4;
    p.n_threads = 1;
    p.kernels = variant & 2 ? BL_KERNELS_REFERENCE : BL_KERNELS_AUTO;
    bl_ctx *ctx = NULL;
    bl_err err;
    int rc = bl_ctx_alloc(&ctx, m, &p, &err);
    if (rc == BL_ENOMEM)
        return;
    FUZZ_CHECK(rc == BL_OK);
    FUZZ_CHECK(bl_ctx_n_ctx(ctx) == 4 && bl_ctx_pos(ctx) == 0 && bl_ctx_model(ctx) == m);
    int64_t nh = bl_ctx_n_hooks(ctx);
    FUZZ_CHECK(nh == 3 + (c->pos_embd ? 1 : 0) + 17 * c->n_layers);
    for (int64_t i = 0; i < nh; i++)
        FUZZ_CHECK(bl_ctx_hook_name(ctx, i) != NULL);
    struct hook_count hc = {0, c->n_layers};
    if (variant & 4)
        FUZZ_CHECK(bl_ctx_add_hook(ctx, "*", on_hook, &hc) == nh);

    float *logits = V <= MAX_LOGITS_VOCAB ? malloc(2 * (size_t)V * sizeof *logits) : NULL;
    if (prompt) {
        int64_t np = n_prompt < 3 ? n_prompt : 3;
        if (np > 0) {
            rc = bl_ctx_eval(ctx, prompt, np, logits, BL_EVAL_ALL_LOGITS & (np <= 2 ? ~0u : 0u));
            FUZZ_CHECK(rc == BL_OK);
            FUZZ_CHECK(bl_ctx_pos(ctx) == np);
        }
    } else {
        int32_t two[2] = {0, (int32_t)(V - 1)};
        rc = bl_ctx_eval(ctx, two, 2, logits, BL_EVAL_ALL_LOGITS);
        FUZZ_CHECK(rc == BL_OK);
        int32_t one = (int32_t)(V / 2);
        rc = bl_ctx_eval(ctx, &one, 1, logits, 0);
        FUZZ_CHECK(rc == BL_OK && bl_ctx_pos(ctx) == 3);
        FUZZ_CHECK(bl_ctx_eval(ctx, two, 2, logits, 0) == BL_ERANGE);
        int32_t bad = (int32_t)V;
        FUZZ_CHECK(bl_ctx_eval(ctx, &bad, 1, logits, 0) == BL_EINVAL);
        bad = -1;
        FUZZ_CHECK(bl_ctx_eval(ctx, &bad, 1, logits, 0) == BL_EINVAL);
        FUZZ_CHECK(bl_ctx_pos(ctx) == 3);
        FUZZ_CHECK(bl_ctx_rewind(ctx, 5) == BL_EINVAL);
        FUZZ_CHECK(bl_ctx_rewind(ctx, 1) == BL_OK);
        one = (int32_t)(1 % V);
        rc = bl_ctx_eval(ctx, &one, 1, NULL, 0);
        FUZZ_CHECK(rc == BL_OK && bl_ctx_pos(ctx) == 2);
    }
    if (variant & 4)
        FUZZ_CHECK(hc.events > 0);
    if (logits)
        fuzz_touch(logits, sizeof *logits);
    FUZZ_REACHED(FZ_EVAL);
    free(logits);
    bl_ctx_free(ctx);
}

/* Load with a generated tokenizer.bin of n tokens. */
static void with_tokenizer(const char *path, int64_t n_vocab, unsigned variant)
{
    char tpath[64];
    bl_err err;
    bl_model *m = NULL;
    if (n_vocab > MAX_GEN_VOCAB || gen_tokenizer(n_vocab) != 0)
        return;
    struct bl_model_params p = bl_model_default_params();
    p.tokenizer_path = fuzz_fd_path(tpath, sizeof tpath, tok_fd);
    int rc = bl_model_load(&m, path, &p, &err);
    if (rc == BL_ENOMEM)
        return;
    FUZZ_CHECK(rc == BL_OK);
    FUZZ_REACHED(FZ_MODEL_TOK);
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    FUZZ_CHECK(tok != NULL && bl_tokenizer_n_vocab(tok) == n_vocab);
    int32_t ids[32];
    int64_t n = 0;
    static const char prompt[] = "Once upon a time";
    rc = bl_tokenizer_encode(tok, prompt, sizeof prompt - 1, BL_TOK_BOS, ids, 32, &n);
    FUZZ_CHECK(rc == BL_OK && n >= 1 && n <= (int64_t)sizeof prompt + 2);
    for (int64_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab);
    if (bl_model_computable(m, NULL))
        eval_model(m, ids, n, variant);
    bl_model_free(m);

    /* a tokenizer for another model */
    if (n_vocab + 1 <= MAX_GEN_VOCAB && gen_tokenizer(n_vocab + 1) == 0) {
        rc = bl_model_load(&m, path, &p, &err);
        FUZZ_CHECK(m == NULL);
        FUZZ_CHECK(rc == BL_EMISMATCH || rc == BL_ENOMEM);
    }
}

int FUZZ_ENTRY(llama2c)(const uint8_t *data, size_t size)
{
    char path[64];
    bl_model *m = NULL;
    bl_err err;

    if (model_fd < 0) {
        bl_set_threads(1);
        model_fd = fuzz_memfd("fuzz-model");
        tok_fd = fuzz_memfd("fuzz-tokenizer");
        if (model_fd < 0 || tok_fd < 0) {
            perror("fuzz-llama2c: memfd_create");
            abort();
        }
    }
    if (fuzz_memfd_fill(model_fd, data, size) != 0) {
        perror("fuzz-llama2c: writing the memfd");
        abort();
    }
    fuzz_fd_path(path, sizeof path, model_fd);
    unsigned variant = size ? data[size - 1] : 0;

    struct bl_model_params p = bl_model_default_params();
    err.msg[0] = '\0';
    int rc = bl_model_load(&m, path, &p, &err);
    if (rc == BL_EUNSUPPORTED) {
        p.describe_only = 1;
        rc = bl_model_load(&m, path, &p, &err);
        if (rc == BL_OK)
            FUZZ_REACHED(FZ_DESCRIBE);
    }
    if (rc) {
        FUZZ_CHECK(m == NULL && rc < 0 && err.code == rc && err.msg[0] != '\0');
        return 0;
    }
    FUZZ_REACHED(FZ_MODEL);
    walk_model(m, size);
    const char *why = NULL;
    int computable = bl_model_computable(m, &why);
    FUZZ_CHECK(computable ? why == NULL : p.describe_only && why != NULL);
    int64_t n_vocab = bl_model_config(m)->n_vocab;
    if (computable)
        eval_model(m, NULL, 0, variant);
    bl_model_free(m);
    if (!p.describe_only)
        with_tokenizer(path, n_vocab, variant);
    return 0;
}
