/* examples/probe-norms.c: write your own probes on bitlens' hook points.
 *
 * A probe is a function with the signature of bl_hook_fn, attached to hook
 * points of a context by name (a glob) with bl_ctx_add_hook().  During
 * bl_ctx_eval() the forward pass calls it at each point it is attached to
 * with the activations [positions x width] in f32, which it may read or
 * overwrite.  This program runs one prompt through a model three ways:
 *
 *   1. reading: the L2 norm of the residual stream after each block
 *      (blocks.L.hook_resid_post), per position;
 *   2. reading: the entropy in bits of each attention head's pattern
 *      (blocks.L.attn.hook_pattern), the distribution of a query over the
 *      keys it may attend to, averaged over the positions after the first;
 *   3. writing: for each head in turn, zero that head's slice of
 *      blocks.L.attn.hook_z (zero-ablation: the head contributes nothing to
 *      the attention output) and measure the change in the surprisal of the
 *      prompt's next tokens, -log2 p(x_{t+1}), averaged over positions.
 *
 * It prints three small tables.  It uses only the installed API:
 *
 *   cc -std=c11 -o probe-norms probe-norms.c \
 *       $(pkg-config --cflags --libs bitlens) -lm
 *   ./probe-norms -z tok512.bin -p 'Once upon a time' stories260K.bin
 *
 * Part 3 evaluates the prompt once per head (n_layers x n_heads times): it
 * is meant for small models. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

/* ------------------------------------------------------------ the probes */

/* What the reading probes fill in.  Every buffer is allocated before the
 * evaluation: a callback runs inside the forward pass and must not
 * allocate (nor print: it may run once per layer per batch). */
struct norms {
    int64_t n_pos;        /* positions of the prompt */
    int64_t n_layers;
    int64_t n_heads;
    double *norm;         /* [n_layers x n_pos]: ||resid_post|| per position */
    double *ent_sum;      /* [n_layers x n_heads]: pattern entropy summed over
                             positions 1 .. n_pos-1 */
};

/* blocks.L.hook_resid_post: ev->data is [ev->n_pos x ev->width], row i being
 * position ev->pos0 + i, width = dim.  Read only. */
static int on_resid_post(const struct bl_hook_event *ev, void *user)
{
    struct norms *s = user;
    for (int64_t i = 0; i < ev->n_pos; i++) {
        int64_t pos = ev->pos0 + i;
        if (pos >= s->n_pos)
            continue;
        const float *row = ev->data + i * ev->width;
        double ss = 0;
        for (int64_t j = 0; j < ev->width; j++)
            ss += (double)row[j] * row[j];
        s->norm[ev->layer * s->n_pos + pos] = sqrt(ss);
    }
    return 0;   /* 0: go on; nonzero would stop bl_ctx_eval (BL_ESTOPPED) */
}

/* blocks.L.attn.hook_pattern: the softmax of the attention scores.  Its
 * width varies: a batch of n rows starting at pos0 sees K = pos0 + n keys,
 * and row i holds n_heads blocks of K weights, head h at
 * [i * width + h * K + t]; weights past the query's own position
 * (t > pos0 + i) are 0. */
static int on_pattern(const struct bl_hook_event *ev, void *user)
{
    struct norms *s = user;
    int64_t K = ev->pos0 + ev->n_pos, H = ev->width / K;
    for (int64_t i = 0; i < ev->n_pos; i++) {
        int64_t pos = ev->pos0 + i;
        if (pos == 0 || pos >= s->n_pos)   /* position 0 sees one key: 0 bits */
            continue;
        for (int64_t h = 0; h < H && h < s->n_heads; h++) {
            const float *a = ev->data + i * ev->width + h * K;
            double e = 0;
            for (int64_t t = 0; t <= pos; t++)
                if (a[t] > 0)
                    e -= a[t] * log2(a[t]);
            s->ent_sum[ev->layer * s->n_heads + h] += e;
        }
    }
    return 0;
}

/* The writing probe: zero one head's output in blocks.L.attn.hook_z, whose
 * rows hold n_heads blocks of head_dim values (head h at h * head_dim).
 * The forward pass goes on from what the callback leaves in ev->data. */
struct ablate {
    int64_t head, head_dim;
};

static int on_z_ablate(const struct bl_hook_event *ev, void *user)
{
    const struct ablate *a = user;
    for (int64_t i = 0; i < ev->n_pos; i++)
        memset(ev->data + i * ev->width + a->head * a->head_dim, 0, (size_t)a->head_dim * sizeof(float));
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* Only a program prints and exits: the library returns a status and, for
 * constructors, a message in a bl_err naming the file and the problem. */
static void die(const char *what, const char *msg)
{
    if (what)
        fprintf(stderr, "probe-norms: %s: %s\n", what, msg);
    else
        fprintf(stderr, "probe-norms: %s\n", msg);
    exit(1);
}

/* Mean surprisal in bits of the prompt's own next tokens under logits
 * [n x V]: position t predicts ids[t + 1]. */
static double mean_surprisal(const float *logits, int64_t V, const int32_t *ids, int64_t n)
{
    double sum = 0;
    for (int64_t t = 0; t + 1 < n; t++) {
        const float *x = logits + t * V;
        double m = -INFINITY, z = 0;
        for (int64_t v = 0; v < V; v++)
            m = x[v] > m ? x[v] : m;
        for (int64_t v = 0; v < V; v++)
            z += exp(x[v] - m);
        sum += -((double)x[ids[t + 1]] - m - log(z)) / log(2.0);
    }
    return n > 1 ? sum / (double)(n - 1) : 0.0;
}

/* The token's text, printable and at most 10 bytes, in a static buffer. */
static const char *token_text(const bl_tokenizer *tok, int32_t prev, int32_t id)
{
    static char buf[16];
    char raw[64];
    size_t n = bl_tokenizer_decode(tok, prev, id, raw, sizeof raw);
    const char *s = raw;
    if (n == 0)   /* a control token such as BOS decodes to nothing */
        s = bl_tokenizer_piece(tok, id, &n);
    if (n > sizeof raw)
        n = sizeof raw;
    size_t k = 0;
    for (size_t i = 0; i < n && k < 10; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\t' || c == '\r')
            continue;   /* "\n<s>\n", llama2.c's BOS piece, shows as <s> */
        buf[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[k] = '\0';
    return buf;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = "Once upon a time, there was a little girl named Lily.";
    struct bl_model_params mp = bl_model_default_params();
    bl_err err = {0};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-z") == 0 && i + 1 < argc)
            mp.tokenizer_path = argv[++i];
        else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
            prompt = argv[++i];
        else if (argv[i][0] != '-' && !model_path)
            model_path = argv[i];
        else {
            fprintf(stderr, "usage: probe-norms [-z TOKENIZER] [-p PROMPT] MODEL\n");
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "usage: probe-norms [-z TOKENIZER] [-p PROMPT] MODEL\n");
        return 2;
    }

    /* The model owns its weights (a read-only mapping) and its tokenizer. */
    bl_model *model;
    if (bl_model_load(&model, model_path, &mp, &err))
        die(NULL, err.msg);   /* the message names the file */
    const bl_tokenizer *tok = bl_model_tokenizer(model);   /* owned by the model */
    if (!tok)
        die(model_path, "no vocabulary (give a tokenizer.bin with -z)");
    const struct bl_model_config *cfg = bl_model_config(model);
    int64_t L = cfg->n_layers, H = cfg->n_heads, V = cfg->n_vocab;

    /* The prompt, with BOS in front where the vocabulary wants it.  A text
     * of len bytes never gives more than 3 * len + 5 ids. */
    size_t len = strlen(prompt);
    int64_t cap = 3 * (int64_t)len + 5, P = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    unsigned flags = BL_TOK_SPECIAL | (bl_tokenizer_add_bos(tok) ? BL_TOK_BOS : 0);
    if (!ids)
        die("prompt", "out of memory");
    int rc = bl_tokenizer_encode(tok, prompt, len, flags, ids, cap, &P);
    if (rc || P < 2)
        die("prompt", rc ? bl_strerror(rc) : "needs at least two tokens");

    /* A context for the prompt: its KV cache holds P positions. */
    struct bl_ctx_params cp = bl_ctx_default_params();
    cp.n_ctx = P;
    bl_ctx *ctx;
    if (bl_ctx_alloc(&ctx, model, &cp, &err))
        die(NULL, err.msg);

    struct norms s = {P, L, H, calloc((size_t)(L * P), sizeof(double)), calloc((size_t)(L * H), sizeof(double))};
    float *logits = malloc((size_t)(P * V) * sizeof(float));
    if (!s.norm || !s.ent_sum || !logits)
        die("buffers", "out of memory");

    /* 1 and 2: attach the reading probes by glob.  bl_ctx_add_hook returns
     * the number of points matched (0 is not an error: check it). */
    if (bl_ctx_add_hook(ctx, "blocks.*.hook_resid_post", on_resid_post, &s) != L ||
        bl_ctx_add_hook(ctx, "blocks.*.attn.hook_pattern", on_pattern, &s) != L)
        die(model_path, "hook points missing or out of memory");
    /* BL_EVAL_ALL_LOGITS: logits for every position, [P x V] */
    if ((rc = bl_ctx_eval(ctx, ids, P, logits, BL_EVAL_ALL_LOGITS)))
        die(bl_strerror(rc), bl_ctx_errmsg(ctx));   /* a context keeps its last message */
    double base = mean_surprisal(logits, V, ids, P);

    printf("# %s: %lld layers, %lld heads, dim %lld; prompt of %lld tokens\n", bl_model_name(model),
           (long long)L, (long long)H, (long long)cfg->dim, (long long)P);
    printf("\n# norms: L2 norm of blocks.L.hook_resid_post per position\n");
    printf("%4s  %-10s", "pos", "token");
    for (int64_t l = 0; l < L; l++)
        printf(" %7s%lld", "L", (long long)l);
    printf("\n");
    for (int64_t t = 0; t < P; t++) {
        printf("%4lld  %-10s", (long long)t, token_text(tok, t ? ids[t - 1] : -1, ids[t]));
        for (int64_t l = 0; l < L; l++)
            printf(" %8.3f", s.norm[l * P + t]);
        printf("\n");
    }

    printf("\n# entropy: bits of blocks.L.attn.hook_pattern per head, mean over\n"
           "# positions 1..%lld (at most %.3f)\n", (long long)(P - 1), log2((double)P));
    printf("%5s", "layer");
    for (int64_t h = 0; h < H; h++)
        printf(" %6s%lld", "h", (long long)h);
    printf("\n");
    for (int64_t l = 0; l < L; l++) {
        printf("%5lld", (long long)l);
        for (int64_t h = 0; h < H; h++)
            printf(" %7.3f", s.ent_sum[l * H + h] / (double)(P - 1));
        printf("\n");
    }

    /* 3: the writing probe.  Clear the hooks, rewind the KV cache to 0, and
     * run the prompt again with one head of one layer zeroed.  A glob with
     * no wildcard names one point. */
    printf("\n# ablation: change in mean next-token surprisal (bits), one head of\n"
           "# blocks.L.attn.hook_z zeroed; baseline %.4f bits\n", base);
    printf("%5s", "layer");
    for (int64_t h = 0; h < H; h++)
        printf(" %6s%lld", "h", (long long)h);
    printf("\n");
    for (int64_t l = 0; l < L; l++) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%lld.attn.hook_z", (long long)l);
        printf("%5lld", (long long)l);
        for (int64_t h = 0; h < H; h++) {
            struct ablate a = {h, cfg->head_dim};
            bl_ctx_clear_hooks(ctx);
            bl_ctx_rewind(ctx, 0);
            if (bl_ctx_add_hook(ctx, name, on_z_ablate, &a) != 1)
                die(name, "no such hook point");
            if ((rc = bl_ctx_eval(ctx, ids, P, logits, BL_EVAL_ALL_LOGITS)))
                die(bl_strerror(rc), bl_ctx_errmsg(ctx));
            printf(" %+7.3f", mean_surprisal(logits, V, ids, P) - base);
        }
        printf("\n");
    }

    /* The context before the model it borrows; the tokenizer goes with the
     * model. */
    bl_ctx_free(ctx);
    bl_model_free(model);
    free(ids);
    free(logits);
    free(s.norm);
    free(s.ent_sum);
    return 0;
}
