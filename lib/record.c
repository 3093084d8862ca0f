/* lib/record.c: `bitlens record` (see bitlens/record.h).
 *
 * One context serves every prompt (rewound between them), sized for the
 * longest prompt plus the generation, so memory does not grow with the
 * number of prompts or positions recorded: the probes buffer at most about
 * a megabyte per stream before a chunk goes out. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <bitlens/ctx.h>
#include <bitlens/hash.h>
#include <bitlens/record.h>
#include <bitlens/tensor.h>
#include "internal.h"
#include "probes.h"

#define FLUSH_BYTES (1u << 20)
#define LENS_GATHER 64

struct bl_record_params bl_record_default_params(void)
{
    struct bl_record_params p;
    memset(&p, 0, sizeof p);
    p.hooks = BL_RECORD_DEFAULT_HOOKS;
    p.dtype = BL_F16;
    p.top_k = 10;
    p.lens = 1;
    p.sampling = bl_sampler_default_params();
    p.sampling.top_p = 0.9f;
    p.hash = 1;
    return p;
}

/* A growing chunk payload: a fixed header, then rows. */
struct rows {
    unsigned char *b;
    size_t used, cap, header;
    uint64_t pos0, n;
};

static int rows_room(struct rows *r, size_t add)
{
    if (r->used + add <= r->cap)
        return BL_OK;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->used + add)
        cap *= 2;
    unsigned char *b = realloc(r->b, cap);
    if (!b)
        return BL_ENOMEM;
    r->b = b;
    r->cap = cap;
    return BL_OK;
}

struct rec {
    const bl_model *m;
    const bl_tokenizer *tok;
    const struct bl_record_params *p;
    bl_ctx *ctx;
    bl_sampler *sampler;
    bl_trace_writer *w;
    struct bli_tensor_probe *tp;
    struct bli_lens_probe *lp;
    struct bli_drafter_probe *dp;
    bl_drafter *own_drafter;   /* loaded from drafter_path */
    int32_t *seq;         /* [n_ctx + 1] the tokens of the prompt so far */
    int64_t n_seq;
    int64_t V, L, nb, n_ctx;
    int64_t Vt;           /* tokens of the vocabulary (the embedding may be padded) */
    float *logits;        /* [nb x V] */
    float *work;          /* [V] */
    int32_t *next;        /* [nb] */
    float *lens_rows;     /* [nb x L x 3] */
    /* single-token steps gather in the lens probe (one unembedding pass
     * for LENS_GATHER positions instead of one each) */
    float *plog;          /* [LENS_GATHER x V] their logits */
    int32_t plnext[LENS_GATHER];
    int64_t pending, pending_pos0, gather;   /* gather: at most LENS_GATHER and n_batch */
    int n_threads;
    uint32_t prompt;
    int64_t n_prompts;
    struct rows stat, lens, toks;
    int32_t *tok_ids;     /* TOKS: ids, flags and text ends buffered apart */
    unsigned char *tok_flags;
    uint32_t *tok_end;
    size_t tok_cap;
    char *text;           /* decoded token text */
    size_t text_len, text_cap;
    int32_t prev_tok;     /* the token before, for decoding */
    struct bl_record_stats st;
};

static int flush_stats(struct rec *r, bl_err *err)
{
    if (r->stat.n == 0)
        return BL_OK;
    bli_wr_u32(r->stat.b, r->prompt);
    bli_wr_u32(r->stat.b + 4, (uint32_t)r->p->top_k);
    bli_wr_u64(r->stat.b + 8, r->stat.pos0);
    bli_wr_u64(r->stat.b + 16, r->stat.n);
    int rc = bl_trace_writer_put(r->w, BL_CHUNK_STATS, r->stat.b, r->stat.used, 0, 0, err);
    r->stat.used = r->stat.header;
    r->stat.n = 0;
    return rc;
}

static int flush_lens(struct rec *r, bl_err *err)
{
    if (r->lens.n == 0)
        return BL_OK;
    bli_wr_u32(r->lens.b, r->prompt);
    bli_wr_u32(r->lens.b + 4, (uint32_t)r->L);
    bli_wr_u64(r->lens.b + 8, r->lens.pos0);
    bli_wr_u64(r->lens.b + 16, r->lens.n);
    int rc = bl_trace_writer_put(r->w, BL_CHUNK_LENS, r->lens.b, r->lens.used, 0, 0, err);
    r->lens.used = r->lens.header;
    r->lens.n = 0;
    return rc;
}

static int flush_tokens(struct rec *r, bl_err *err)
{
    if (r->toks.n == 0)
        return BL_OK;
    size_t n = (size_t)r->toks.n, bytes = 24 + 9 * n + r->text_len;
    r->toks.used = 0;
    if (rows_room(&r->toks, bytes))
        return bli_err(err, BL_ENOMEM, "out of memory");
    unsigned char *b = r->toks.b;
    bli_wr_u32(b, r->prompt);
    bli_wr_u32(b + 4, 0);
    bli_wr_u64(b + 8, r->toks.pos0);
    bli_wr_u64(b + 16, n);
    for (size_t i = 0; i < n; i++) {
        bli_wr_u32(b + 24 + 4 * i, (uint32_t)r->tok_ids[i]);
        bli_wr_u32(b + 24 + 5 * n + 4 * i, r->tok_end[i]);
    }
    memcpy(b + 24 + 4 * n, r->tok_flags, n);
    memcpy(b + 24 + 9 * n, r->text, r->text_len);
    r->toks.n = 0;
    r->text_len = 0;
    return bl_trace_writer_put(r->w, BL_CHUNK_TOKENS, b, bytes, 0, 0, err);
}

static int add_token(struct rec *r, int64_t pos, int32_t id, int sampled, bl_err *err)
{
    if (r->toks.n == 0)
        r->toks.pos0 = (uint64_t)pos;
    if ((size_t)r->toks.n == r->tok_cap) {
        size_t cap = r->tok_cap ? 2 * r->tok_cap : 1024;
        int32_t *ids = realloc(r->tok_ids, cap * sizeof *ids);
        if (ids)
            r->tok_ids = ids;
        unsigned char *fl = realloc(r->tok_flags, cap);
        if (fl)
            r->tok_flags = fl;
        uint32_t *te = realloc(r->tok_end, cap * sizeof *te);
        if (te)
            r->tok_end = te;
        if (!ids || !fl || !te)
            return bli_err(err, BL_ENOMEM, "out of memory");
        r->tok_cap = cap;
    }
    /* the text the token prints after the one before it */
    size_t k = bl_tokenizer_decode(r->tok, pos == 0 ? -1 : r->prev_tok, id, NULL, 0);
    if (r->text_len + k > r->text_cap) {
        size_t cap = r->text_cap ? 2 * r->text_cap : 4096;
        while (cap < r->text_len + k)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t)
            return bli_err(err, BL_ENOMEM, "out of memory");
        r->text = t;
        r->text_cap = cap;
    }
    bl_tokenizer_decode(r->tok, pos == 0 ? -1 : r->prev_tok, id, r->text + r->text_len, k);
    r->text_len += k;
    r->prev_tok = id;
    r->tok_ids[r->toks.n] = id;
    r->tok_flags[r->toks.n] = (unsigned char)sampled;
    r->tok_end[r->toks.n] = (uint32_t)r->text_len;
    r->toks.n++;
    return r->toks.n >= 1 << 16 || r->text_len >= (1u << 22) ? flush_tokens(r, err) : BL_OK;
}

/* append n lens rows (r->lens_rows) for positions from pos0 */
static int put_lens(struct rec *r, int64_t pos0, int64_t n, bl_err *err)
{
    size_t lrow = (size_t)r->L * 12;
    if (r->lens.n && r->lens.used + lrow * (size_t)n > FLUSH_BYTES && flush_lens(r, err))
        return err ? err->code : BL_EIO;
    if (rows_room(&r->lens, lrow * (size_t)n))
        return bli_err(err, BL_ENOMEM, "out of memory");
    if (r->lens.n == 0)
        r->lens.pos0 = (uint64_t)pos0;
    for (int64_t i = 0; i < n * r->L * 3; i++) {
        uint32_t u;
        memcpy(&u, &r->lens_rows[i], 4);
        bli_wr_u32(r->lens.b + r->lens.used + 4 * (size_t)i, u);
    }
    r->lens.used += lrow * (size_t)n;
    r->lens.n += (uint64_t)n;
    return BL_OK;
}

/* the gathered single-token steps through the lens */
static int lens_pending(struct rec *r, bl_err *err)
{
    if (!r->lp || r->pending == 0)
        return BL_OK;
    bli_lens_probe_rows(r->lp, r->pending, r->plog, r->plnext, r->lens_rows);
    int rc = put_lens(r, r->pending_pos0, r->pending, err);
    r->pending = 0;
    return rc;
}

/* statistics (and lens rows) for the n positions from pos0 just evaluated,
 * whose tokens are ids[0..n) and next tokens r->next[0..n) */
static int add_rows(struct rec *r, int64_t pos0, int64_t n, const int32_t *ids, bl_err *err)
{
    size_t srow = BLI_STAT_ROW_BYTES(r->p->top_k);
    if (r->stat.n && r->stat.used + srow * (size_t)n > FLUSH_BYTES && flush_stats(r, err))
        return err ? err->code : BL_EIO;
    if (rows_room(&r->stat, srow * (size_t)n))
        return bli_err(err, BL_ENOMEM, "out of memory");
    if (r->stat.n == 0)
        r->stat.pos0 = (uint64_t)pos0;
    /* rows are independent: a batch spreads over the threads, each with
     * its own work row */
    size_t wn = (size_t)r->V + (size_t)r->p->top_k + 1;
    int nt = n > 1 ? r->n_threads : 1;
    unsigned char *base = r->stat.b + r->stat.used;
    if (nt == 1) {   /* one row: the row itself spreads over the threads */
        for (int64_t i = 0; i < n; i++)
            bli_tokstats_row(r->logits + i * r->V, r->Vt, ids[i], r->next[i], r->p->sampling.temperature,
                             r->p->top_k, r->work, base + (size_t)i * srow);
    } else {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            bli_tokstats_row(r->logits + i * r->V, r->Vt, ids[i], r->next[i], r->p->sampling.temperature,
                             r->p->top_k, r->work + (size_t)tid * wn, base + (size_t)i * srow);
        }
    }
    r->stat.used += srow * (size_t)n;
    r->stat.n += (uint64_t)n;
    r->st.positions += n;
    int rc;
    if (r->dp && (rc = bli_drafter_probe_rows(r->dp, pos0, n, r->logits, err)))
        return rc;
    if (!r->lp)
        return BL_OK;
    if (n > 1) {   /* a prompt batch: through the lens at once */
        bli_lens_probe_rows(r->lp, n, r->logits, r->next, r->lens_rows);
        return put_lens(r, pos0, n, err);
    }
    /* a single step: gather it */
    if (r->pending == 0)
        r->pending_pos0 = pos0;
    memcpy(r->plog + r->pending * r->V, r->logits, (size_t)r->V * sizeof(float));
    r->plnext[r->pending++] = r->next[0];
    return r->pending == r->gather ? lens_pending(r, err) : BL_OK;
}

static int eval(struct rec *r, const int32_t *ids, int64_t n, bl_err *err)
{
    /* a prompt batch fills the lens store from row 0 (nothing is pending
     * then); a single step takes the next free row */
    if (r->lp)
        bli_lens_probe_batch(r->lp, bl_ctx_pos(r->ctx), n > 1 ? 0 : r->pending);
    if (r->dp)
        bli_drafter_probe_batch(r->dp, bl_ctx_pos(r->ctx), n);
    int rc = bl_ctx_eval(r->ctx, ids, n, r->logits, BL_EVAL_ALL_LOGITS);
    if (rc == BL_ESTOPPED && r->tp && bli_tensor_probe_error(r->tp))
        return bli_err(err, bli_tensor_probe_error(r->tp)->code, "%s", bli_tensor_probe_error(r->tp)->msg);
    if (rc)
        return bli_err(err, rc, "%s", bl_ctx_errmsg(r->ctx));
    return BL_OK;
}

static int record_prompt(struct rec *r, int64_t idx, const char *text, const int32_t *ids, int64_t P, bl_err *err)
{
    const struct bl_record_params *p = r->p;
    int rc;
    r->prompt = (uint32_t)idx;
    if (r->tp)
        bli_tensor_probe_prompt(r->tp, r->prompt);
    bl_ctx_rewind(r->ctx, 0);
    memcpy(r->seq, ids, (size_t)P * sizeof *ids);
    r->n_seq = P;
    if (r->dp)
        bli_drafter_probe_prompt(r->dp, r->prompt, r->seq, &r->n_seq);

    /* PRMT */
    size_t tl = strlen(text), bytes = 16 + 4 * (size_t)P + tl;
    unsigned char *b = malloc(bytes);
    if (!b)
        return bli_err(err, BL_ENOMEM, "out of memory");
    bli_wr_u32(b, r->prompt);
    bli_wr_u32(b + 4, (uint32_t)P);
    bli_wr_u32(b + 8, (uint32_t)tl);
    bli_wr_u32(b + 12, 0);
    for (int64_t i = 0; i < P; i++)
        bli_wr_u32(b + 16 + 4 * i, (uint32_t)ids[i]);
    memcpy(b + 16 + 4 * P, text, tl);
    rc = bytes <= BL_TRACE_MAX_CHUNK ? bl_trace_writer_put(r->w, BL_CHUNK_PROMPT, b, bytes, 0, 0, err)
                                     : bli_err(err, BL_ERANGE, "prompt %" PRId64 " is too long to store", idx);
    free(b);
    if (rc)
        return rc;

    /* teacher-forced in batches; the last row's next token is sampled */
    int32_t sampled = -1;
    for (int64_t b0 = 0; b0 < P; b0 += r->nb) {
        int64_t n = P - b0 < r->nb ? P - b0 : r->nb;
        if ((rc = eval(r, ids + b0, n, err)))
            return rc;
        for (int64_t j = 0; j < n; j++) {
            int64_t t = b0 + j;
            if (t + 1 < P) {
                r->next[j] = ids[t + 1];
            } else if (p->n_gen > 0) {
                sampled = bl_sampler_sample(r->sampler, r->logits + j * r->V);
                r->next[j] = sampled;
                r->seq[r->n_seq++] = sampled;
                if (r->dp)
                    bli_drafter_probe_known(r->dp);
            } else {
                r->next[j] = -1;
            }
            if ((rc = add_token(r, t, ids[t], 0, err)))
                return rc;
        }
        if ((rc = add_rows(r, b0, n, ids + b0, err)))
            return rc;
        if (p->progress && p->progress(p->progress_user, idx, r->n_prompts, r->st.positions))
            return bli_err(err, BL_ESTOPPED, "stopped");
    }
    /* generation: each sampled token is recorded; all but the last are
     * evaluated */
    int32_t bos = bl_tokenizer_bos(r->tok), eos = bl_tokenizer_eos(r->tok);
    for (int64_t g = 0; g < p->n_gen && sampled >= 0; g++) {
        int64_t pos = P + g;
        int32_t cur = sampled;
        if ((rc = add_token(r, pos, cur, 1, err)))
            return rc;
        if (g + 1 == p->n_gen || cur == eos || cur == bos)
            break;
        if (pos >= r->n_ctx) {
            r->st.cut_short++;
            break;
        }
        if ((rc = eval(r, &cur, 1, err)))
            return rc;
        sampled = bl_sampler_sample(r->sampler, r->logits);
        r->next[0] = sampled;
        r->seq[r->n_seq++] = sampled;
        if (r->dp)
            bli_drafter_probe_known(r->dp);
        if ((rc = add_rows(r, pos, 1, &cur, err)))
            return rc;
        if (p->progress && p->progress(p->progress_user, idx, r->n_prompts, r->st.positions))
            return bli_err(err, BL_ESTOPPED, "stopped");
    }
    if ((rc = lens_pending(r, err)) || (rc = flush_tokens(r, err)) || (rc = flush_stats(r, err)) ||
        (rc = flush_lens(r, err)) || (r->dp && (rc = bli_drafter_probe_flush(r->dp, err))) ||
        (r->tp && (rc = bli_tensor_probe_flush(r->tp, err))))
        return rc;
    r->st.prompts++;
    return BL_OK;
}

/* ------------------------------------------------------------ header */

/* an f32 as the shortest decimal that reads back to it (0.9, not
 * 0.899999976158142) */
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

static cJSON *model_json(const bl_model *m, const struct bl_record_params *p, bl_err *err, int *rc)
{
    const struct bl_model_config *c = bl_model_config(m);
    cJSON *o = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
    *rc = BL_OK;
    if (!o || !cfg) {
        cJSON_Delete(o);
        cJSON_Delete(cfg);
        *rc = bli_err(err, BL_ENOMEM, "out of memory");
        return NULL;
    }
    cJSON_AddStringToObject(o, "path", bl_model_path(m));
    cJSON_AddStringToObject(o, "name", bl_model_name(m));
    cJSON_AddStringToObject(o, "format", bl_model_format_name(m));
    cJSON_AddStringToObject(o, "architecture", bl_model_arch_name(m));
    cJSON_AddNumberToObject(o, "parameters", (double)bl_model_n_params(m));
    cJSON_AddNumberToObject(cfg, "dim", (double)c->dim);
    cJSON_AddNumberToObject(cfg, "n_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(cfg, "n_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(cfg, "n_kv_heads", (double)c->n_kv_heads);
    cJSON_AddNumberToObject(cfg, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(cfg, "hidden_dim", (double)c->hidden_dim);
    cJSON_AddNumberToObject(cfg, "n_vocab", (double)c->n_vocab);
    cJSON_AddNumberToObject(cfg, "ctx_train", (double)c->ctx_train);
    cJSON_AddItemToObject(o, "config", cfg);
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    for (int64_t i = 0; i < bl_model_n_files(m); i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "path", bl_model_file(m, i));
        if (p->hash) {
            char hex[65];
            if ((*rc = bl_sha256_file(bl_model_file(m, i), hex, NULL, NULL, err))) {
                cJSON_Delete(f);
                cJSON_Delete(o);
                return NULL;
            }
            cJSON_AddStringToObject(f, "sha256", hex);
        }
        cJSON_AddItemToArray(files, f);
    }
    const bl_tokenizer *t = bl_model_tokenizer(m);
    cJSON *v = cJSON_AddObjectToObject(o, "vocabulary");
    cJSON_AddStringToObject(v, "model", bl_tokenizer_model(t));
    cJSON_AddNumberToObject(v, "size", (double)bl_tokenizer_n_vocab(t));
    cJSON_AddNumberToObject(v, "bos", bl_tokenizer_bos(t));
    cJSON_AddNumberToObject(v, "eos", bl_tokenizer_eos(t));
    return o;
}

/* recorded.drafter */
static cJSON *drafter_json(const bl_drafter *d, const struct bl_record_params *p, bl_err *err, int *rc)
{
    const struct bl_drafter_config *c = bl_drafter_config(d);
    cJSON *o = cJSON_CreateObject();
    *rc = BL_OK;
    if (!o) {
        *rc = bli_err(err, BL_ENOMEM, "out of memory");
        return NULL;
    }
    if (p->drafter_path)
        cJSON_AddStringToObject(o, "path", p->drafter_path);
    else
        cJSON_AddNullToObject(o, "path");
    if (p->drafter_path && p->hash) {
        char hex[65];
        if ((*rc = bl_sha256_file(p->drafter_path, hex, NULL, NULL, err))) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddStringToObject(o, "sha256", hex);
    } else {
        cJSON_AddNullToObject(o, "sha256");
    }
    cJSON_AddStringToObject(o, "kind", c->kind == BL_DRAFTER_MEDUSA ? "medusa" : "eagle");
    cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "n_blocks", c->n_blocks);
    cJSON_AddNumberToObject(o, "width", (double)c->width);
    cJSON_AddStringToObject(o, "hook", c->hook);
    cJSON_AddNumberToObject(o, "parameters", (double)bl_drafter_n_params(d));
    return o;
}

/* ------------------------------------------------------------ record */

int bl_record(const bl_model *model, const char *const *prompts, int64_t n, const struct bl_record_params *params,
              const char *out_path, unsigned trace_flags, struct bl_record_stats *stats, bl_err *err)
{
    struct bl_record_params p = params ? *params : bl_record_default_params();
    struct rec r;
    const struct bl_model_config *c = bl_model_config(model);
    int32_t **ids = NULL;
    int64_t *lens = NULL;
    cJSON *hdr = NULL, *hooks = NULL;
    char *hdr_text = NULL;
    int rc = BL_OK;

    memset(&r, 0, sizeof r);
    r.m = model;
    r.p = &p;
    r.tok = bl_model_tokenizer(model);
    r.V = c->n_vocab;
    r.L = c->n_layers;
    r.n_prompts = n;
    r.Vt = r.tok ? bl_tokenizer_n_vocab(r.tok) : r.V;
    if (!r.tok)
        return bli_err(err, BL_EINVAL, "%s: has no vocabulary to tokenize the prompts with", bl_model_path(model));
    if (n < 1)
        return bli_err(err, BL_EINVAL, "no prompts to record");
    if (p.top_k < 0 || p.top_k > 1000)
        return bli_err(err, BL_EINVAL, "top-k %d is out of range [0, 1000]", p.top_k);
    if (p.n_gen < 0)
        return bli_err(err, BL_EINVAL, "negative number of tokens to generate");

    /* tokenize every prompt: the context fits the longest */
    ids = bli_calloc((size_t)n, sizeof *ids);
    lens = bli_calloc((size_t)n, sizeof *lens);
    if (!ids || !lens) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    int64_t longest = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len = strlen(prompts[i]);
        int64_t cap = 3 * (int64_t)len + 5;
        unsigned flags = BL_TOK_SPECIAL | (bl_tokenizer_add_bos(r.tok) || len == 0 ? BL_TOK_BOS : 0);
        if (!(ids[i] = bli_malloc_array((size_t)cap, sizeof **ids))) {
            rc = bli_err(err, BL_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = bl_tokenizer_encode(r.tok, prompts[i], len, flags, ids[i], cap, &lens[i])))
            goto out;
        if (lens[i] == 0) {
            rc = bli_err(err, BL_EINVAL, "prompt %" PRId64 " is empty and the vocabulary has no BOS", i);
            goto out;
        }
        longest = lens[i] > longest ? lens[i] : longest;
    }
    r.n_ctx = longest + p.n_gen;
    if (p.n_ctx > 0 && p.n_ctx < r.n_ctx)
        r.n_ctx = p.n_ctx;
    if (c->pos_embd && r.n_ctx > c->ctx_train)
        r.n_ctx = c->ctx_train;
    if (longest > r.n_ctx) {
        rc = bli_err(err, BL_ERANGE, "a prompt of %" PRId64 " tokens does not fit the context of %" PRId64 " positions",
                     longest, r.n_ctx);
        goto out;
    }
    struct bl_ctx_params cp = bl_ctx_default_params();
    cp.n_ctx = r.n_ctx;
    cp.n_threads = p.n_threads;
    if ((rc = bl_ctx_alloc(&r.ctx, model, &cp, err)))
        goto out;
    r.nb = cp.n_batch < r.n_ctx ? cp.n_batch : r.n_ctx;
    struct bl_sampler_params sp = p.sampling;
    if (!(r.sampler = bl_sampler_alloc(&sp, bl_tokenizer_n_vocab(r.tok), err))) {
        rc = err ? err->code : BL_EINVAL;
        goto out;
    }
    r.n_threads = bli_threads(p.n_threads);
    r.gather = r.nb < LENS_GATHER ? r.nb : LENS_GATHER;
    r.logits = bli_malloc_array((size_t)(r.nb * r.V), sizeof(float));
    r.work = bli_malloc_array((size_t)r.n_threads * ((size_t)r.V + (size_t)p.top_k + 1), sizeof(float));
    r.plog = p.lens ? bli_malloc_array((size_t)LENS_GATHER * (size_t)r.V, sizeof(float)) : NULL;
    r.next = bli_malloc_array((size_t)r.nb, sizeof(int32_t));
    r.seq = bli_malloc_array((size_t)r.n_ctx + 1, sizeof(int32_t));
    r.lens_rows = bli_malloc_array((size_t)((r.nb > LENS_GATHER ? r.nb : LENS_GATHER) * r.L * 3), sizeof(float));
    hooks = cJSON_CreateArray();
    if (!r.logits || !r.work || !r.next || !r.seq || !r.lens_rows || !hooks || (p.lens && !r.plog)) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    /* the drafter first: its tensors are hook points for the globs */
    const bl_drafter *drafter = p.drafter;
    if (!drafter && p.drafter_path) {
        if ((rc = bl_drafter_load(&r.own_drafter, p.drafter_path, model, err)))
            goto out;
        drafter = r.own_drafter;
    }
    if (drafter && !r.own_drafter) {   /* given: made or loaded for this model */
        const struct bl_drafter_config *dc = bl_drafter_config(drafter);
        const char *mname = bl_model_name(model) ? bl_model_name(model) : "";
        if (dc->d != c->dim || dc->n_vocab != c->n_vocab || strcmp(dc->model_name, mname) != 0) {
            rc = bli_err(err, BL_EMISMATCH, "%s: a drafter for model '%s' (dim %" PRId64 ", %" PRId64 " tokens), not "
                         "for '%s' (dim %" PRId64 ", %" PRId64 " tokens)", p.drafter_path ? p.drafter_path : "drafter",
                         dc->model_name, dc->d, dc->n_vocab, mname, c->dim, c->n_vocab);
            goto out;
        }
    }
    const struct bli_extra_point *extra = NULL;
    int64_t n_extra = 0;
    if (drafter) {
        if ((rc = bli_drafter_probe_alloc(&r.dp, r.ctx, drafter, r.nb, r.Vt, p.n_threads, err))) {
            if (p.drafter_path && err) {
                char why[sizeof err->msg];
                memcpy(why, err->msg, sizeof why);
                bli_err(err, rc, "%s: %s", p.drafter_path, why);
            }
            goto out;
        }
        extra = bli_drafter_probe_points(r.dp, &n_extra);
    }
    int64_t matched = 0;
    if ((rc = bli_tensor_probe_alloc(&r.tp, r.ctx, p.hooks, p.dtype, extra, n_extra, NULL, hooks, &matched, err)))
        goto out;
    if (r.dp && (rc = bli_drafter_probe_outputs(r.dp, r.tp, NULL, err)))
        goto out;
    if (p.hooks && *p.hooks && matched == 0) {
        rc = bli_err(err, BL_ENOTFOUND, "no hook point matches '%s' (see bitlens-record(1) for the names)", p.hooks);
        goto out;
    }
    if (p.lens && (rc = bli_lens_probe_alloc(&r.lp, r.ctx, r.nb, r.Vt, p.n_threads, err)))
        goto out;
    r.stat.header = r.stat.used = 24;
    r.lens.header = r.lens.used = 24;
    if (rows_room(&r.stat, 24) || rows_room(&r.lens, 24)) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }

    /* the header */
    hdr = cJSON_CreateObject();
    if (!hdr) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    cJSON_AddStringToObject(hdr, "tool", "bitlens");
    cJSON_AddStringToObject(hdr, "version", bl_version());
    cJSON_AddStringToObject(hdr, "command", p.command_line ? p.command_line : "");
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    cJSON_AddStringToObject(hdr, "created", when);
    cJSON *mj = model_json(model, &p, err, &rc);
    if (!mj)
        goto out;
    cJSON_AddItemToObject(hdr, "model", mj);
    cJSON *pj = cJSON_AddArrayToObject(hdr, "prompts");
    for (int64_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "text", prompts[i]);
        cJSON_AddNumberToObject(e, "n_tokens", (double)lens[i]);
        cJSON_AddItemToArray(pj, e);
    }
    cJSON *sj = cJSON_AddObjectToObject(hdr, "sampling");
    cJSON_AddNumberToObject(sj, "temperature", f32_json(p.sampling.temperature));
    cJSON_AddNumberToObject(sj, "top_k", (double)p.sampling.top_k);
    cJSON_AddNumberToObject(sj, "top_p", f32_json(p.sampling.top_p));
    if (p.sampling.seed < (1ull << 53)) {
        cJSON_AddNumberToObject(sj, "seed", (double)p.sampling.seed);
    } else {   /* beyond a double's integers: the exact digits as a string */
        char sd[24];
        snprintf(sd, sizeof sd, "%llu", (unsigned long long)p.sampling.seed);
        cJSON_AddStringToObject(sj, "seed", sd);
    }
    cJSON_AddNumberToObject(sj, "n_gen", (double)p.n_gen);
    cJSON *rj = cJSON_AddObjectToObject(hdr, "recorded");
    cJSON_AddItemToObject(rj, "hooks", hooks);
    hooks = NULL;
    cJSON_AddStringToObject(rj, "dtype", bl_dtype_name(p.dtype));
    cJSON_AddNumberToObject(rj, "top_k", p.top_k);
    cJSON_AddBoolToObject(rj, "lens", p.lens);
    cJSON_AddNumberToObject(rj, "n_layers", (double)r.L);
    cJSON_AddNumberToObject(rj, "n_vocab", (double)r.Vt);
    cJSON_AddNumberToObject(rj, "n_ctx", (double)r.n_ctx);
    if (drafter) {
        cJSON *dj = drafter_json(drafter, &p, err, &rc);
        if (!dj)
            goto out;
        cJSON_AddItemToObject(rj, "drafter", dj);
    } else {
        cJSON_AddNullToObject(rj, "drafter");
    }
    if (!(hdr_text = cJSON_PrintUnformatted(hdr))) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = bl_trace_writer_open(&r.w, out_path, hdr_text, trace_flags, err)))
        goto out;
    bli_tensor_probe_writer(r.tp, r.w);
    if (r.dp && (rc = bli_drafter_probe_outputs(r.dp, r.tp, r.w, err)))
        goto out;

    for (int64_t i = 0; i < n && !rc; i++) {
        rc = record_prompt(&r, i, prompts[i], ids[i], lens[i], err);
        if (!rc && p.progress && p.progress(p.progress_user, i + 1, n, r.st.positions))
            rc = bli_err(err, BL_ESTOPPED, "stopped");
    }
    if (!rc) {
        rc = bl_trace_writer_close(r.w, &r.st.trace_bytes, err);
        r.w = NULL;
    }
out:
    if (r.w)
        bl_trace_writer_discard(r.w);
    if (r.tp) {
        r.st.tensor_values = bli_tensor_probe_values(r.tp);
        r.st.tensor_bytes_raw = (uint64_t)r.st.tensor_values * bl_dtype_row_bytes(p.dtype, 1);
    }
    if (r.dp)
        r.st.drafter_rows = bli_drafter_probe_n_rows(r.dp);
    if (stats)
        *stats = r.st;
    bl_ctx_free(r.ctx);   /* before the probes its hooks point to */
    bli_tensor_probe_free(r.tp);
    bli_lens_probe_free(r.lp);
    bli_drafter_probe_free(r.dp);
    bl_drafter_free(r.own_drafter);
    free(r.seq);
    bl_sampler_free(r.sampler);
    free(r.logits);
    free(r.work);
    free(r.next);
    free(r.lens_rows);
    free(r.plog);
    free(r.stat.b);
    free(r.lens.b);
    free(r.toks.b);
    free(r.tok_ids);
    free(r.tok_flags);
    free(r.tok_end);
    free(r.text);
    if (ids)
        for (int64_t i = 0; i < n; i++)
            free(ids[i]);
    free(ids);
    free(lens);
    cJSON_Delete(hooks);
    cJSON_Delete(hdr);
    free(hdr_text);
    return rc;
}
