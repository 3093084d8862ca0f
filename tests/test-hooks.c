/* tests/test-hooks.c: hook points on the forward pass of stories260K.
 *
 * Known answers:
 *   - names: 3 global points and 15 per block, TransformerLens style;
 *   - a hook sees [positions x width] with the right pos0, rows and width in
 *     a batch and token by token;
 *   - blocks.L.hook_resid_pre of block l+1 is hook_resid_post of block l;
 *     ln1.hook_scale is sqrt(mean(x^2) + eps) of resid_pre (recomputed here
 *     in double), ln1.hook_normalized is resid_pre / scale * w;
 *   - zero-ablating the last block's resid_post at one position makes that
 *     position's logits exactly 0 (RMSNorm of 0 is 0) and leaves every other
 *     position's logits bit for bit;
 *   - ablating an earlier block at position p leaves positions < p bit for
 *     bit (causality) and changes positions >= p;
 *   - patching every position's hook_embed with the embeddings of another
 *     prompt reproduces that prompt's logits bit for bit;
 *   - a hook that returns nonzero stops the run with BL_ESTOPPED. */
#include "config.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

static bl_model *model;
static int64_t V, D, L;

static bl_ctx *new_ctx(int64_t n_ctx)
{
    struct bl_ctx_params p = bl_ctx_default_params();
    bl_ctx *c;
    p.n_ctx = n_ctx;
    if (bl_ctx_alloc(&c, model, &p, NULL))
        abort();
    return c;
}

/* ---- names */
static void names(void)
{
    bl_ctx *c = new_ctx(8);
    int64_t n = bl_ctx_n_hooks(c);
    ok(n == 3 + 17 * L, "%lld hook points (3 global + 17 per block x %lld)", (long long)n, (long long)L);
    int unique = 1, tl = 1;
    for (int64_t i = 0; i < n; i++) {
        const char *a = bl_ctx_hook_name(c, i);
        for (int64_t j = 0; j < i; j++)
            unique &= strcmp(a, bl_ctx_hook_name(c, j)) != 0;
        tl &= strncmp(a, "blocks.", 7) == 0 || strcmp(a, "hook_embed") == 0 ||
              strcmp(a, "ln_final.hook_normalized") == 0 || strcmp(a, "hook_logits") == 0;
    }
    ok(unique && tl, "names unique and TransformerLens-shaped");
    ok(strcmp(bl_ctx_hook_name(c, 0), "hook_embed") == 0 &&
           strcmp(bl_ctx_hook_name(c, 1), "blocks.0.hook_resid_pre") == 0 &&
           strcmp(bl_ctx_hook_name(c, n - 1), "hook_logits") == 0,
       "points in forward order: hook_embed, blocks.0.hook_resid_pre ... hook_logits");
    static const char *const want[] = {
        "blocks.4.hook_resid_pre", "blocks.4.ln1.hook_scale", "blocks.4.ln1.hook_normalized",
        "blocks.4.attn.hook_q", "blocks.4.attn.hook_k", "blocks.4.attn.hook_v",
        "blocks.4.attn.hook_attn_scores", "blocks.4.attn.hook_pattern", "blocks.4.attn.hook_z",
        "blocks.4.hook_attn_out", "blocks.4.hook_resid_mid", "blocks.4.ln2.hook_scale",
        "blocks.4.ln2.hook_normalized", "blocks.4.mlp.hook_pre", "blocks.4.mlp.hook_post",
        "blocks.4.hook_mlp_out", "blocks.4.hook_resid_post"};
    int found = 0;
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        for (int64_t i = 0; i < n; i++)
            found += strcmp(bl_ctx_hook_name(c, i), want[k]) == 0;
    ok(found == 17, "block 4 has its 17 named points (%d found)", found);
    bl_hook_fn nop = NULL;
    ok(bl_ctx_add_hook(c, "blocks.*.hook_resid_post", nop, NULL) == L, "glob blocks.*.hook_resid_post matches %lld", (long long)L);
    ok(bl_ctx_add_hook(c, "*.attn.hook_[qkv]", nop, NULL) == 3 * L, "glob *.attn.hook_[qkv] matches 3 per block");
    ok(bl_ctx_add_hook(c, "no.such.hook", nop, NULL) == 0, "a glob matching nothing returns 0");
    bl_ctx_clear_hooks(c);
    bl_ctx_free(c);
}

/* ---- event shapes */
struct seen {
    int64_t calls, pos0[64], n_pos[64], width[64];
    int kind[64], layer[64];
};

static int record_event(const struct bl_hook_event *ev, void *u)
{
    struct seen *s = u;
    if (s->calls < 64) {
        s->pos0[s->calls] = ev->pos0;
        s->n_pos[s->calls] = ev->n_pos;
        s->width[s->calls] = ev->width;
        s->kind[s->calls] = ev->kind;
        s->layer[s->calls] = ev->layer;
    }
    s->calls++;
    return 0;
}

static void shapes(const int32_t *ids)
{
    const struct bl_model_config *cf = bl_model_config(model);
    struct {
        const char *glob;
        int64_t width;
    } cases[] = {
        {"hook_embed", D},
        {"blocks.2.ln1.hook_scale", 1},
        {"blocks.2.attn.hook_q", cf->n_heads * cf->head_dim},
        {"blocks.2.attn.hook_k", cf->n_kv_heads * cf->head_dim},
        {"blocks.2.attn.hook_z", cf->n_heads * cf->head_dim},
        {"blocks.2.mlp.hook_post", cf->hidden_dim},
        {"blocks.2.hook_resid_post", D},
        {"hook_logits", V},
    };
    float *logits = malloc((size_t)(8 * V) * 4);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bl_ctx *c = new_ctx(8);
        struct seen s = {0};
        bl_ctx_add_hook(c, cases[k].glob, record_event, &s);
        bl_ctx_eval(c, ids, 5, logits, BL_EVAL_ALL_LOGITS);      /* batch of 5 */
        bl_ctx_eval(c, ids + 5, 1, logits, 0);                   /* one token */
        ok(s.calls == 2 && s.pos0[0] == 0 && s.n_pos[0] == 5 && s.pos0[1] == 5 && s.n_pos[1] == 1 &&
               s.width[0] == cases[k].width && s.width[1] == cases[k].width,
           "%s: batch [0, 5) then position 5, width %lld", cases[k].glob, (long long)cases[k].width);
        bl_ctx_free(c);
    }
    /* the logits hook with no caller buffer fires on the last row only */
    bl_ctx *c = new_ctx(8);
    struct seen s = {0};
    bl_ctx_add_hook(c, "hook_logits", record_event, &s);
    bl_ctx_eval(c, ids, 5, NULL, 0);
    ok(s.calls == 1 && s.pos0[0] == 4 && s.n_pos[0] == 1, "hook_logits without a caller buffer: the last row");
    bl_ctx_free(c);
    free(logits);
}

/* ---- consistency of norms and streams */
struct streams {
    float pre[8][5][64], post[8][5][64], scale[8][5], norm[8][5][64];
};

static int grab(const struct bl_hook_event *ev, void *u)
{
    struct streams *s = u;
    for (int64_t i = 0; i < ev->n_pos; i++) {
        int64_t p = ev->pos0 + i;
        const float *r = ev->data + i * ev->width;
        switch (ev->kind) {
        case BL_HOOK_RESID_PRE: memcpy(s->pre[p][ev->layer], r, (size_t)D * 4); break;
        case BL_HOOK_RESID_POST: memcpy(s->post[p][ev->layer], r, (size_t)D * 4); break;
        case BL_HOOK_LN1_SCALE: s->scale[p][ev->layer] = r[0]; break;
        case BL_HOOK_LN1_NORMALIZED: memcpy(s->norm[p][ev->layer], r, (size_t)D * 4); break;
        }
    }
    return 0;
}

static void norms(const int32_t *ids)
{
    static struct streams s;
    bl_ctx *c = new_ctx(8);
    bl_ctx_add_hook(c, "blocks.*.hook_resid_p*", grab, &s);   /* pre and post */
    bl_ctx_add_hook(c, "blocks.*.ln1.*", grab, &s);
    bl_ctx_eval(c, ids, 8, NULL, 0);
    double chain = 0, scale_err = 0, norm_err = 0;
    for (int p = 0; p < 8; p++)
        for (int64_t l = 0; l < L; l++) {
            if (l + 1 < L)
                chain = fmax(chain, max_abs_diff(s.pre[p][l + 1], s.post[p][l], (size_t)D));
            double ss = 0;
            for (int64_t j = 0; j < D; j++)
                ss += (double)s.pre[p][l][j] * s.pre[p][l][j];
            double want = sqrt(ss / (double)D + 1e-5);
            scale_err = fmax(scale_err, fabs(want - s.scale[p][l]) / want);
            char name[64];
            snprintf(name, sizeof name, "blk.%lld.attn_norm.weight", (long long)l);
            const float *w = bl_model_find_tensor(model, name)->data;
            for (int64_t j = 0; j < D; j++)
                norm_err = fmax(norm_err, fabs((double)s.pre[p][l][j] / want * w[j] - s.norm[p][l][j]));
        }
    ok(chain == 0, "resid_pre of block l+1 is resid_post of block l, bit for bit");
    ok(scale_err < 1e-6, "ln1.hook_scale = sqrt(mean(x^2)+eps) of resid_pre, relative error %.2g < 1e-6", scale_err);
    ok(norm_err < 1e-5, "ln1.hook_normalized = resid_pre / scale * w, max |diff| %.2g < 1e-5", norm_err);
    bl_ctx_free(c);
}

/* ---- ablation and patching */
struct ablate {
    int64_t pos;
};

static int zero_row(const struct bl_hook_event *ev, void *u)
{
    const struct ablate *a = u;
    if (a->pos >= ev->pos0 && a->pos < ev->pos0 + ev->n_pos)
        memset(ev->data + (a->pos - ev->pos0) * ev->width, 0, (size_t)ev->width * 4);
    return 0;
}

static void run_logits(const int32_t *ids, int64_t n, float *out, const char *glob, bl_hook_fn fn,
                       void *u, int incremental)
{
    bl_ctx *c = new_ctx(n);
    if (glob)
        bl_ctx_add_hook(c, glob, fn, u);
    if (incremental)
        for (int64_t i = 0; i < n; i++)
            bl_ctx_eval(c, ids + i, 1, out + i * V, 0);
    else
        bl_ctx_eval(c, ids, n, out, BL_EVAL_ALL_LOGITS);
    bl_ctx_free(c);
}

static int rows_equal(const float *a, const float *b, int64_t r0, int64_t r1)
{
    return memcmp(a + r0 * V, b + r0 * V, (size_t)((r1 - r0) * V) * 4) == 0;
}

static int rows_differ(const float *a, const float *b, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        if (memcmp(a + r * V, b + r * V, (size_t)V * 4) == 0)
            return 0;
    return 1;
}

static void ablation(const int32_t *ids)
{
    float *clean = malloc((size_t)(8 * V) * 4), *abl = malloc((size_t)(8 * V) * 4);
    for (int inc = 0; inc < 2; inc++) {
        const char *how = inc ? "token by token" : "batch";
        run_logits(ids, 8, clean, NULL, NULL, NULL, inc);
        struct ablate a = {3};
        char glob[64];
        snprintf(glob, sizeof glob, "blocks.%lld.hook_resid_post", (long long)(L - 1));
        run_logits(ids, 8, abl, glob, zero_row, &a, inc);
        int zero = 1;
        for (int64_t v = 0; v < V; v++)
            zero &= abl[3 * V + v] == 0.0f;
        ok(zero, "%s: last block's resid_post zeroed at position 3: its logits are exactly 0", how);
        ok(rows_equal(clean, abl, 0, 3) && rows_equal(clean, abl, 4, 8),
           "%s: ... and every other position's logits are unchanged, bit for bit", how);
        run_logits(ids, 8, abl, "blocks.1.hook_resid_post", zero_row, &a, inc);
        ok(rows_equal(clean, abl, 0, 3), "%s: block 1 ablated at position 3: positions 0-2 unchanged (causal)", how);
        ok(rows_differ(clean, abl, 3, 8), "%s: ... positions 3-7 changed", how);
    }
    free(clean);
    free(abl);
}

struct patch {
    const float *src;   /* [8 x D] embeddings to write */
};

static int grab_embed(const struct bl_hook_event *ev, void *u)
{
    memcpy((float *)u + ev->pos0 * D, ev->data, (size_t)(ev->n_pos * ev->width) * 4);
    return 0;
}

static int write_embed(const struct bl_hook_event *ev, void *u)
{
    const struct patch *p = u;
    memcpy(ev->data, p->src + ev->pos0 * D, (size_t)(ev->n_pos * ev->width) * 4);
    return 0;
}

static void patching(const int32_t *a_ids, const int32_t *b_ids)
{
    float *emb = malloc((size_t)(8 * D) * 4), *la = malloc((size_t)(8 * V) * 4), *lb = malloc((size_t)(8 * V) * 4);
    for (int inc = 0; inc < 2; inc++) {
        run_logits(a_ids, 8, la, "hook_embed", grab_embed, emb, inc);
        struct patch p = {emb};
        run_logits(b_ids, 8, lb, "hook_embed", write_embed, &p, inc);
        ok(rows_equal(la, lb, 0, 8), "%s: prompt B with prompt A's embeddings patched in gives A's logits, bit for bit",
           inc ? "token by token" : "batch");
    }
    free(emb);
    free(la);
    free(lb);
}

/* ---- attention scores and pattern */
struct att {
    int64_t H, K, n;
    float *pattern;   /* [n x H x K] of block 1, as seen */
    float *v;         /* [n x KV] values of block 1 */
    int uniform;      /* set block 1's scores of head 0 equal */
};

static int att_scores(const struct bl_hook_event *ev, void *u)
{
    struct att *a = u;
    if (a->uniform)
        for (int64_t i = 0; i < ev->n_pos; i++)
            for (int64_t t = 0; t <= ev->pos0 + i; t++)
                ev->data[i * ev->width + t] = 0.5f;   /* head 0: all keys alike */
    return 0;
}

static int att_pattern(const struct bl_hook_event *ev, void *u)
{
    struct att *a = u;
    a->n = ev->n_pos;
    a->K = ev->width / a->H;
    memcpy(a->pattern, ev->data, (size_t)(ev->n_pos * ev->width) * sizeof(float));
    return 0;
}

static int att_v(const struct bl_hook_event *ev, void *u)
{
    struct att *a = u;
    memcpy(a->v, ev->data, (size_t)(ev->n_pos * ev->width) * sizeof(float));
    return 0;
}

static int att_z(const struct bl_hook_event *ev, void *u)
{
    memcpy(u, ev->data, (size_t)(ev->n_pos * ev->width) * sizeof(float));
    return 0;
}

static void attention_hooks(const int32_t *ids)
{
    const struct bl_model_config *cf = bl_model_config(model);
    int64_t H = cf->n_heads, hd = cf->head_dim, KV = cf->n_kv_heads * hd;
    struct att a = {H, 0, 0, calloc((size_t)(8 * H * 8), 4), calloc((size_t)(8 * KV), 4), 0};
    float *plain = malloc((size_t)(8 * V) * 4), *hooked = malloc((size_t)(8 * V) * 4);
    float *z = calloc((size_t)(8 * H * hd), 4);
    run_logits(ids, 8, plain, NULL, NULL, NULL, 0);
    bl_ctx *c = new_ctx(8);
    bl_ctx_add_hook(c, "blocks.1.attn.hook_pattern", att_pattern, &a);
    bl_ctx_eval(c, ids, 8, hooked, BL_EVAL_ALL_LOGITS);
    bl_ctx_free(c);
    ok(rows_equal(plain, hooked, 0, 8), "a hook on the pattern that changes nothing leaves the logits bit for bit");
    double sum_err = 0, masked = 0;
    for (int64_t i = 0; i < a.n; i++)
        for (int64_t h = 0; h < H; h++) {
            double s = 0;
            for (int64_t t = 0; t < a.K; t++) {
                float p = a.pattern[(i * H + h) * a.K + t];
                if (t <= i)
                    s += p;
                else
                    masked = fmax(masked, fabs(p));
            }
            sum_err = fmax(sum_err, fabs(s - 1));
        }
    ok(a.n == 8 && a.K == 8 && sum_err < 1e-6 && masked == 0,
       "hook_pattern [8 x %lld heads x 8 keys]: each row sums to 1 over keys <= its position (%.2g), 0 beyond",
       (long long)H, sum_err);
    /* equal scores for head 0: its z is the mean of the values so far */
    a.uniform = 1;
    c = new_ctx(8);
    bl_ctx_add_hook(c, "blocks.1.attn.hook_attn_scores", att_scores, &a);
    bl_ctx_add_hook(c, "blocks.1.attn.hook_v", att_v, &a);
    bl_ctx_add_hook(c, "blocks.1.attn.hook_z", att_z, z);
    bl_ctx_eval(c, ids, 8, NULL, 0);
    bl_ctx_free(c);
    double zerr = 0;
    for (int64_t i = 0; i < 8; i++)
        for (int64_t j = 0; j < hd; j++) {
            double m = 0;   /* head 0 reads kv head 0; hook_v is before RoPE, and v has none */
            for (int64_t t = 0; t <= i; t++)
                m += a.v[t * KV + j];
            zerr = fmax(zerr, fabs(m / (double)(i + 1) - z[i * H * hd + j]));
        }
    ok(zerr < 1e-6, "scores set equal by a hook: head 0 averages the values (max |diff| %.2g)", zerr);
    free(a.pattern);
    free(a.v);
    free(z);
    free(plain);
    free(hooked);
}

static int stop_at_layer2(const struct bl_hook_event *ev, void *u)
{
    (void)u;
    return ev->layer == 2;
}

static void stopping(const int32_t *ids)
{
    bl_ctx *c = new_ctx(8);
    bl_ctx_eval(c, ids, 2, NULL, 0);
    bl_ctx_add_hook(c, "blocks.*.hook_mlp_out", stop_at_layer2, NULL);
    int rc = bl_ctx_eval(c, ids + 2, 3, NULL, 0);
    ok(rc == BL_ESTOPPED && bl_ctx_pos(c) == 2, "a hook returning nonzero stops the run: BL_ESTOPPED, positions stay at 2");
    ok(strstr(bl_ctx_errmsg(c), "blocks.2.hook_mlp_out") != NULL, "the message names the hook: %s", bl_ctx_errmsg(c));
    bl_ctx_clear_hooks(c);
    ok(bl_ctx_eval(c, ids + 2, 3, NULL, 0) == 0 && bl_ctx_pos(c) == 5, "after clearing hooks the same batch runs");
    bl_ctx_free(c);
}

int main(void)
{
    char *mp = td_require("models/stories260K.bin");
    char *tp = td_require("models/tok512.bin");
    struct bl_model_params p = bl_model_default_params();
    bl_err err;
    p.tokenizer_path = tp;
    if (bl_model_load(&model, mp, &p, &err)) {
        ok(0, "load: %s", err.msg);
        return done_testing();
    }
    V = bl_model_config(model)->n_vocab;
    D = bl_model_config(model)->dim;
    L = bl_model_config(model)->n_layers;
    /* two different prompts: BOS "Once upon a time, there was", and eight
     * other ids */
    const int32_t a[8] = {1, 403, 407, 261, 378, 432, 383, 286};
    const int32_t b[8] = {1, 297, 490, 417, 285, 265, 436, 379};
    names();
    shapes(a);
    norms(a);
    ablation(a);
    patching(a, b);
    attention_hooks(a);
    stopping(a);
    bl_model_free(model);
    free(mp);
    free(tp);
    return done_testing();
}
