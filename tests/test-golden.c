/* tests/test-golden.c: the forward pass against reference dumps.
 *
 * References (shared/testdata/golden, see its README):
 *   stories260K/            llama2.c run.c on stories260K.bin, 48 positions
 *   stories260K/llamacpp_gguf/  llama.cpp on stories260K.gguf, same ids
 *   llama_gqa_random/       llama.cpp and a float64 numpy forward pass on a
 *                           random grouped-query Llama GGUF with F16 weights
 * Tolerances (the issue's, and golden/README.md section 6):
 *   logits and residual streams within 1e-4 of run.c / llama.cpp on the f32
 *   model (run.c and llama.cpp themselves agree to 1.5e-5);
 *   on the F16 model within 1e-4 of the float64 reference, and within 2e-3
 *   of llama.cpp, which rounds activations to f16 before F16 products
 *   (it sits 3.9e-4 from exact math itself).
 * Each case runs three ways: one batch (sgemm), token by token through the
 * KV cache (SIMD matvec), and the plain reference kernels; every way must
 * meet the tolerance.  The largest difference is printed. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

struct capture {
    int64_t L, D, P;
    float *embed, *mid, *post, *final;   /* [P x D], [L x P x D] ... */
    float *embed_tok;                    /* hook_embed; embed is resid_pre of
                                            block 0 (GPT-2 adds positions) */
};

static int grab(const struct bl_hook_event *ev, void *user)
{
    struct capture *c = user;
    float *dst;
    switch (ev->kind) {
    case BL_HOOK_EMBED: dst = c->embed_tok; break;
    case BL_HOOK_RESID_PRE:
        if (ev->layer != 0)
            return 0;
        dst = c->embed;
        break;
    case BL_HOOK_RESID_MID: dst = c->mid + ev->layer * c->P * c->D; break;
    case BL_HOOK_RESID_POST: dst = c->post + ev->layer * c->P * c->D; break;
    case BL_HOOK_LN_FINAL: dst = c->final; break;
    default: return 1;
    }
    memcpy(dst + ev->pos0 * c->D, ev->data, (size_t)(ev->n_pos * ev->width) * sizeof(float));
    return 0;
}

enum mode { BATCH, INCREMENTAL, REFERENCE };
static const char *mode_name[] = {"batch", "token by token", "reference kernels"};

struct golden {
    const char *label;
    const char *dir;          /* under golden/ */
    const char *logits_file;  /* "logits.f32" */
    double tol_logits, tol_resid, tol_final;
    int have_resid;           /* compare embed/resid/final_norm too */
};

/* Run ids through model in `mode`; fills logits [P x V] and capture. */
static int run(bl_model *m, const int32_t *ids, int64_t P, enum mode mode, float *logits,
               struct capture *cap)
{
    struct bl_ctx_params cp = bl_ctx_default_params();
    bl_ctx *ctx;
    bl_err err;
    cp.n_ctx = P;
    cp.kernels = mode == REFERENCE ? BL_KERNELS_REFERENCE : BL_KERNELS_AUTO;
    if (bl_ctx_alloc(&ctx, m, &cp, &err)) {
        diag("%s", err.msg);
        return -1;
    }
    bl_ctx_add_hook(ctx, "hook_embed", grab, cap);
    bl_ctx_add_hook(ctx, "blocks.0.hook_resid_pre", grab, cap);
    bl_ctx_add_hook(ctx, "blocks.*.hook_resid_mid", grab, cap);
    bl_ctx_add_hook(ctx, "blocks.*.hook_resid_post", grab, cap);
    bl_ctx_add_hook(ctx, "ln_final.hook_normalized", grab, cap);
    int64_t V = bl_model_config(m)->n_vocab;
    int rc = 0;
    if (mode == INCREMENTAL) {
        for (int64_t i = 0; i < P && !rc; i++)
            rc = bl_ctx_eval(ctx, ids + i, 1, logits + i * V, 0);
    } else {
        rc = bl_ctx_eval(ctx, ids, P, logits, BL_EVAL_ALL_LOGITS);
    }
    if (rc)
        diag("eval: %s", bl_ctx_errmsg(ctx));
    bl_ctx_free(ctx);
    return rc;
}

static float *golden_f32(const struct golden *g, const char *name, size_t n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s/%s", g->dir, name);
    char *p = td_path(rel);
    float *f = p ? read_f32(p, n) : NULL;
    free(p);
    return f;
}

static void check_case(const struct golden *g, const char *model_rel, const char *tok_rel)
{
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s/tokens.json", g->dir);
    char *tj = td_path(rel), *mp = td_path(model_rel), *tp = tok_rel ? td_path(tok_rel) : NULL;
    if (!tj || !mp || (tok_rel && !tp)) {
        skip(3 * 2, "golden data absent");
        free(tj);
        free(mp);
        free(tp);
        return;
    }
    cJSON *j = read_json(tj);
    int32_t ids[512];
    int64_t P = json_ids(cJSON_GetObjectItem(j, "ids"), ids, 512);
    ok(P > 0, "%s: %lld golden token ids", g->label, (long long)P);

    struct bl_model_params mp_ = bl_model_default_params();
    mp_.tokenizer_path = tp;
    bl_model *m;
    bl_err err;
    if (bl_model_load(&m, mp, &mp_, &err)) {
        ok(0, "%s: load: %s", g->label, err.msg);
        goto out;
    }
    const struct bl_model_config *c = bl_model_config(m);
    int64_t V = c->n_vocab, D = c->dim, L = c->n_layers;
    float *want_logits = golden_f32(g, g->logits_file, (size_t)(P * V));
    float *want_post = g->have_resid ? golden_f32(g, "resid_post.f32", (size_t)(L * P * D)) : NULL;
    float *want_mid = g->have_resid ? golden_f32(g, "resid_mid.f32", (size_t)(L * P * D)) : NULL;
    float *want_embed = g->have_resid ? golden_f32(g, "embed.f32", (size_t)(P * D)) : NULL;
    float *want_final = g->have_resid ? golden_f32(g, "final_norm.f32", (size_t)(P * D)) : NULL;
    ok(want_logits && (!g->have_resid || (want_post && want_mid && want_embed && want_final)),
       "%s: golden dumps read", g->label);
    float *logits = malloc((size_t)(P * V) * sizeof *logits);
    struct capture cap = {L, D, P, calloc((size_t)(P * D), 4), calloc((size_t)(L * P * D), 4),
                          calloc((size_t)(L * P * D), 4), calloc((size_t)(P * D), 4),
                          calloc((size_t)(P * D), 4)};
    /* GPT-2's golden has the token embedding alone too */
    float *want_tok = g->have_resid ? golden_f32(g, "embed_tok.f32", (size_t)(P * D)) : NULL;
    for (int mode = BATCH; mode <= REFERENCE; mode++) {
        if (run(m, ids, P, (enum mode)mode, logits, &cap)) {
            ok(0, "%s (%s): run", g->label, mode_name[mode]);
            continue;
        }
        double dl = want_logits ? max_abs_diff(logits, want_logits, (size_t)(P * V)) : INFINITY;
        ok(dl <= g->tol_logits, "%s (%s): logits at all %lld positions, max |diff| %.3g <= %.0e",
           g->label, mode_name[mode], (long long)P, dl, g->tol_logits);
        if (g->have_resid) {
            double de = max_abs_diff(cap.embed, want_embed, (size_t)(P * D));
            double dm = max_abs_diff(cap.mid, want_mid, (size_t)(L * P * D));
            double dp = max_abs_diff(cap.post, want_post, (size_t)(L * P * D));
            double df = max_abs_diff(cap.final, want_final, (size_t)(P * D));
            double worst = fmax(fmax(de, dm), dp);
            ok(worst <= g->tol_resid,
               "%s (%s): residual stream, max |diff| embed %.3g, resid_mid %.3g, resid_post %.3g <= %.0e",
               g->label, mode_name[mode], de, dm, dp, g->tol_resid);
            ok(df <= g->tol_final, "%s (%s): final norm, max |diff| %.3g <= %.0e", g->label,
               mode_name[mode], df, g->tol_final);
            if (want_tok) {
                double dt = max_abs_diff(cap.embed_tok, want_tok, (size_t)(P * D));
                ok(dt == 0, "%s (%s): hook_embed is the token embedding alone, max |diff| %.3g", g->label,
                   mode_name[mode], dt);
            }
            for (int64_t l = 0; l < L; l++)
                diag("  layer %lld resid_post max |diff| %.3g", (long long)l,
                     max_abs_diff(cap.post + l * P * D, want_post + l * P * D, (size_t)(P * D)));
        }
    }
    free(logits);
    free(want_logits);
    free(want_post);
    free(want_mid);
    free(want_embed);
    free(want_final);
    free(cap.embed);
    free(cap.mid);
    free(cap.post);
    free(cap.final);
    free(cap.embed_tok);
    free(want_tok);
    bl_model_free(m);
out:
    cJSON_Delete(j);
    free(tj);
    free(mp);
    free(tp);
}

/* F16 and BF16 storage: stories260K.gguf rewritten with its matrices in
 * f16 (or bf16), and again in f32 holding exactly the rounded values.  The
 * two files are the same model, so the conversion and the f16/bf16 kernels
 * must give the f32 path's logits (itself checked against run.c above) up
 * to float summation order: within 1e-5, logits being up to ~22. */
static void check_half(int type)
{
    const char *tn = bl_dtype_name(type);
    char *src = td_path("models/stories260K.gguf");
    char *dir = tmp_dir();
    if (!src || !dir) {
        skip(2, "stories260K.gguf absent");
        free(src);
        free(dir);
        return;
    }
    bl_gguf *g;
    bl_err err;
    if (bl_gguf_open(&g, src, &err)) {
        ok(0, "%s", err.msg);
        free(src);
        rm_rf(dir);
        free(dir);
        return;
    }
    char path[2][4200];
    for (int as_f32 = 0; as_f32 < 2; as_f32++) {
        bl_gguf_writer *w = bl_gguf_writer_alloc();
        /* the metadata, copied key by key: scalars and arrays we know */
        for (int64_t i = 0; i < bl_gguf_n_kv(g); i++) {
            const char *k = bl_gguf_key(g, i);
            int t = bl_gguf_kv_type(g, i);
            struct bl_gguf_str str;
            int64_t iv;
            float fv;
            int et;
            uint64_t n;
            if (t == BL_GGUF_STRING && bl_gguf_get_str(g, k, &str, NULL) == 0) {
                char *v = strndup(str.ptr, str.len);
                bl_gguf_writer_set_str(w, k, v);
                free(v);
            } else if (t == BL_GGUF_FLOAT32 && bl_gguf_get_f32(g, k, &fv, NULL) == 0) {
                bl_gguf_writer_set_f32(w, k, fv);
            } else if (t == BL_GGUF_ARRAY && bl_gguf_get_arr(g, k, &et, &n, NULL) == 0) {
                if (et == BL_GGUF_STRING) {
                    struct bl_gguf_str *ss = malloc(n * sizeof *ss);
                    const char **ps = malloc(n * sizeof *ps);
                    size_t *ls = malloc(n * sizeof *ls);
                    bl_gguf_arr_strings(g, k, ss, n, NULL);
                    for (uint64_t j = 0; j < n; j++) {
                        ps[j] = ss[j].ptr;
                        ls[j] = ss[j].len;
                    }
                    bl_gguf_writer_set_arr_str(w, k, ps, ls, n);
                    free(ss);
                    free(ps);
                    free(ls);
                } else {
                    bl_gguf_writer_set_arr(w, k, et, bl_gguf_arr_data(g, k), n);
                }
            } else if (bl_gguf_get_i64(g, k, &iv, NULL) == 0) {
                bl_gguf_writer_set_u32(w, k, (uint32_t)iv);
            }
        }
        void *bufs[64];
        int nb = 0;
        for (int64_t i = 0; i < bl_gguf_n_tensors(g); i++) {
            const struct bl_tensor *t = bl_gguf_tensor(g, i);
            int64_t nel = bl_tensor_nelements(t);
            const float *f = t->data;
            if (t->n_dims == 1) {   /* norm vectors stay f32 */
                bl_gguf_writer_add_tensor(w, t->name, BL_F32, t->n_dims, t->ne, t->data);
                continue;
            }
            void *b = malloc((size_t)nel * 4);
            for (int64_t j = 0; j < nel; j++) {
                uint16_t h = type == BL_F16 ? bl_f32_to_f16(f[j]) : bl_f32_to_bf16(f[j]);
                if (as_f32)
                    ((float *)b)[j] = type == BL_F16 ? bl_f16_to_f32(h) : bl_bf16_to_f32(h);
                else
                    ((uint16_t *)b)[j] = h;
            }
            bufs[nb++] = b;
            bl_gguf_writer_add_tensor(w, t->name, as_f32 ? BL_F32 : type, t->n_dims, t->ne, b);
        }
        snprintf(path[as_f32], sizeof path[as_f32], "%s/%s%s.gguf", dir, tn, as_f32 ? "-as-f32" : "");
        if (bl_gguf_writer_write(w, path[as_f32], &err))
            ok(0, "write: %s", err.msg);
        for (int j = 0; j < nb; j++)
            free(bufs[j]);
        bl_gguf_writer_free(w);
    }
    bl_gguf_free(g);

    int32_t ids[48];
    for (int i = 0; i < 48; i++)
        ids[i] = i == 0 ? 1 : (int32_t)((i * 37 + 11) % 509 + 3);
    float *lg[2][2];   /* [half, f32][batch, token by token] */
    for (int k = 0; k < 2; k++) {
        bl_model *m;
        lg[k][0] = calloc(48 * 512, 4);
        lg[k][1] = calloc(48 * 512, 4);
        if (bl_model_load(&m, path[k], NULL, &err)) {
            ok(0, "load %s: %s", path[k], err.msg);
            continue;
        }
        if (k == 0)
            ok(bl_model_find_tensor(m, "blk.0.attn_q.weight")->type == type, "%s model holds %s matrices", tn, tn);
        struct capture cap = {5, 64, 48, calloc(48 * 64, 4), calloc(5 * 48 * 64, 4), calloc(5 * 48 * 64, 4),
                              calloc(48 * 64, 4), calloc(48 * 64, 4)};
        run(m, ids, 48, BATCH, lg[k][0], &cap);
        run(m, ids, 48, INCREMENTAL, lg[k][1], &cap);
        free(cap.embed);
        free(cap.mid);
        free(cap.post);
        free(cap.final);
        free(cap.embed_tok);
        bl_model_free(m);
    }
    /* batch: the rows are converted to f32 and multiplied by the same sgemm
     * as the f32 model, so the bits agree; token by token the f16/bf16
     * SIMD kernel converts as it goes, in the f32 kernel's order */
    double db = max_abs_diff(lg[0][0], lg[1][0], 48 * 512);
    double di = max_abs_diff(lg[0][1], lg[1][1], 48 * 512);
    ok(db <= 1e-5 && di <= 1e-5,
       "%s storage vs the same values in f32: logits max |diff| %.3g (batch), %.3g (token by token) <= 1e-5",
       tn, db, di);
    for (int k = 0; k < 2; k++) {
        free(lg[k][0]);
        free(lg[k][1]);
    }
    rm_rf(dir);
    free(dir);
    free(src);
}

/* Same inputs, same thread count: the same bits. */
static void check_determinism(void)
{
    char *mp = td_path("golden/llama_gqa_random/llama-random-e96-l2-h6-kv2-ff256-f16.gguf");
    if (!mp) {
        skip(2, "golden data absent");
        return;
    }
    bl_model *m;
    bl_err err;
    if (bl_model_load(&m, mp, NULL, &err)) {
        ok(0, "load: %s", err.msg);
        free(mp);
        return;
    }
    int32_t ids[10] = {1, 9038, 2501, 263, 931, 727, 471, 263, 6635, 29889};
    int64_t V = bl_model_config(m)->n_vocab;
    float *a = malloc((size_t)(10 * V) * 4), *b = malloc((size_t)(10 * V) * 4);
    for (int threads = 1; threads <= 2; threads++) {
        struct bl_ctx_params cp = bl_ctx_default_params();
        cp.n_ctx = 10;
        cp.n_threads = threads;
        bl_set_threads(threads);
        int same = 1;
        for (int rep = 0; rep < 2; rep++) {
            bl_ctx *ctx;
            bl_ctx_alloc(&ctx, m, &cp, NULL);
            bl_ctx_eval(ctx, ids, 6, rep ? b : a, BL_EVAL_ALL_LOGITS);
            for (int i = 6; i < 10; i++)
                bl_ctx_eval(ctx, ids + i, 1, (rep ? b : a) + i * V, 0);
            bl_ctx_free(ctx);
        }
        same = memcmp(a, b, (size_t)(10 * V) * 4) == 0;
        ok(same, "two runs with %d thread%s give identical logits bits", threads, threads > 1 ? "s" : "");
    }
    bl_set_threads(0);
    free(a);
    free(b);
    bl_model_free(m);
    free(mp);
}

int main(void)
{
    free(td_require("golden/README.md"));

    static const struct golden runc = {"stories260K.bin vs llama2.c run.c", "stories260K",
                                       "logits.f32", 1e-4, 1e-4, 1e-4, 1};
    check_case(&runc, "models/stories260K.bin", "models/tok512.bin");

    static const struct golden lcpp = {"stories260K.gguf vs llama.cpp", "stories260K/llamacpp_gguf",
                                       "logits.f32", 1e-4, 1e-4, 1e-4, 1};
    check_case(&lcpp, "models/stories260K.gguf", NULL);

    static const struct golden lcpp_exact = {"stories260K.gguf vs float64 numpy",
                                             "stories260K/llamacpp_gguf", "logits_numpy_f64ref.f32",
                                             1e-4, 0, 0, 0};
    check_case(&lcpp_exact, "models/stories260K.gguf", NULL);

    /* llama.cpp rounds activations to f16 before its F16 products: it sits
     * 3.9e-4 from exact math on these logits and up to 5.6e-5 on resid_post
     * (tokens.json); logits within 1e-3 of it, resid_post within 1e-4.
     * The final RMSNorm divides by a small RMS, magnifying llama.cpp's
     * rounding to ~1e-3 there: final norm gets the 2e-3 the golden README
     * suggests */
    static const struct golden gqa = {"llama GQA F16 vs llama.cpp", "llama_gqa_random", "logits.f32",
                                      1e-3, 1e-4, 2e-3, 1};
    check_case(&gqa, "golden/llama_gqa_random/llama-random-e96-l2-h6-kv2-ff256-f16.gguf", NULL);

    static const struct golden gqa_exact = {"llama GQA F16 vs float64 numpy", "llama_gqa_random",
                                            "logits_numpy_f64ref.f32", 1e-4, 0, 0, 0};
    check_case(&gqa_exact, "golden/llama_gqa_random/llama-random-e96-l2-h6-kv2-ff256-f16.gguf", NULL);

    /* GPT-2: llama.cpp sits 2.2e-4 from exact math (fp16 activations for
     * the F16 embedding/output, fp16 GELU table), 4.7e-5 on resid_post */
    static const struct golden gpt2 = {"GPT-2 vs llama.cpp", "gpt2_random", "logits.f32", 1e-3, 1e-4, 1e-3, 1};
    check_case(&gpt2, "golden/gpt2_random/gpt2-random-e64-l2-h4-ctx128.gguf", NULL);
    static const struct golden gpt2_exact = {"GPT-2 vs float64 numpy", "gpt2_random", "logits_numpy_f64ref.f32",
                                             1e-4, 0, 0, 0};
    check_case(&gpt2_exact, "golden/gpt2_random/gpt2-random-e64-l2-h4-ctx128.gguf", NULL);

    check_half(BL_F16);
    check_half(BL_BF16);
    check_determinism();
    return done_testing();
}
