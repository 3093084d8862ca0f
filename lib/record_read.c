/* lib/record_read.c: parse the records of a trace (bitlens/record.h),
 * checking every count against the chunk's length. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <bitlens/record.h>
#include <bitlens/ctx.h>
#include <bitlens/drafter.h>
#include <bitlens/tensor.h>
#include "internal.h"

static int bad(const struct bl_trace_chunk *c, bl_err *err, const char *what)
{
    return bli_err(err, BL_EFORMAT, "chunk %" PRIu64 " (%.4s) at offset %" PRIu64 ": %s", c->index,
                   (const char *)&c->type, c->offset, what);
}

/* n rows of `row` bytes after `head` bytes fill the chunk exactly */
static int fits(const struct bl_trace_chunk *c, size_t head, uint64_t n, uint64_t row)
{
    if (c->raw_len < head)
        return 0;
    uint64_t left = c->raw_len - head;
    if (row == 0)
        return left == 0;
    return n <= left / row && n * row == left;
}

int bl_rec_parse_prompt(const struct bl_trace_chunk *c, struct bl_rec_prompt *o, bl_err *err)
{
    if (c->type != BL_CHUNK_PROMPT || c->raw_len < 16)
        return bad(c, err, "not a prompt record");
    const unsigned char *d = c->data;
    o->prompt = bli_rd_u32(d);
    o->n_ids = bli_rd_u32(d + 4);
    o->text_len = bli_rd_u32(d + 8);
    if ((uint64_t)o->n_ids * 4 + o->text_len != c->raw_len - 16)
        return bad(c, err, "prompt ids and text do not fill the record");
    o->ids = (const int32_t *)(d + 16);
    o->text = (const char *)d + 16 + 4 * (size_t)o->n_ids;
    return BL_OK;
}

int bl_rec_parse_tokens(const struct bl_trace_chunk *c, struct bl_rec_tokens *o, bl_err *err)
{
    if (c->type != BL_CHUNK_TOKENS || c->raw_len < 24)
        return bad(c, err, "not a token record");
    const unsigned char *d = c->data;
    o->prompt = bli_rd_u32(d);
    o->pos0 = bli_rd_u64(d + 8);
    o->n = bli_rd_u64(d + 16);
    uint64_t left = c->raw_len - 24;
    if (o->n > left / 9)
        return bad(c, err, "token count does not fit the record's length");
    o->token = d + 24;
    o->sampled = d + 24 + 4 * o->n;
    o->text_end = d + 24 + 5 * o->n;
    o->text = (const char *)d + 24 + 9 * o->n;
    uint64_t text_len = left - 9 * o->n, prev = 0;
    for (uint64_t i = 0; i < o->n; i++) {
        uint64_t e = bli_rd_u32(o->text_end + 4 * i);
        if (e < prev || e > text_len)
            return bad(c, err, "token text offsets out of order or past the record");
        prev = e;
    }
    if (prev != text_len)
        return bad(c, err, "token text does not fill the record");
    return BL_OK;
}

int32_t bl_rec_token(const struct bl_rec_tokens *t, uint64_t i, int *sampled, const char **text, size_t *len)
{
    BL_ASSERT(i < t->n);
    uint32_t a = i ? bli_rd_u32(t->text_end + 4 * (i - 1)) : 0, b = bli_rd_u32(t->text_end + 4 * i);
    if (sampled)
        *sampled = t->sampled[i];
    if (text)
        *text = t->text + a;
    if (len)
        *len = b - a;
    return bli_rd_i32(t->token + 4 * i);
}

int bl_rec_parse_stats(const struct bl_trace_chunk *c, struct bl_rec_stats *o, bl_err *err)
{
    if (c->type != BL_CHUNK_STATS || c->raw_len < 24)
        return bad(c, err, "not a statistics record");
    const unsigned char *d = c->data;
    o->prompt = bli_rd_u32(d);
    o->k = bli_rd_u32(d + 4);
    o->pos0 = bli_rd_u64(d + 8);
    o->n = bli_rd_u64(d + 16);
    if (o->k > 1000 || !fits(c, 24, o->n, 28 + 8 * (uint64_t)o->k))
        return bad(c, err, "row count and top-k do not match the record's length");
    o->rows = d + 24;
    return BL_OK;
}

int bl_rec_parse_tensor(const struct bl_trace_chunk *c, struct bl_rec_tensor *o, bl_err *err)
{
    if (c->type != BL_CHUNK_TENSOR || c->raw_len < 40)
        return bad(c, err, "not a tensor record");
    const unsigned char *d = c->data;
    o->prompt = bli_rd_u32(d);
    o->hook = bli_rd_u32(d + 4);
    o->dtype = bli_rd_u32(d + 8);
    o->pos0 = bli_rd_u64(d + 16);
    o->n = bli_rd_u64(d + 24);
    o->width = bli_rd_u64(d + 32);
    if (o->dtype != BL_F32 && o->dtype != BL_F16 && o->dtype != BL_BF16)
        return bad(c, err, "tensor dtype is not f32, f16 or bf16");
    uint64_t es = o->dtype == BL_F32 ? 4 : 2;
    if (o->width == 0 || o->width > (uint64_t)BL_TRACE_MAX_CHUNK || !fits(c, 40, o->n, o->width * es))
        return bad(c, err, "rows x width do not match the record's length");
    o->data = d + 40;
    return BL_OK;
}

int bl_rec_parse_lens(const struct bl_trace_chunk *c, struct bl_rec_lens *o, bl_err *err)
{
    if (c->type != BL_CHUNK_LENS || c->raw_len < 24)
        return bad(c, err, "not a logit-lens record");
    const unsigned char *d = c->data;
    o->prompt = bli_rd_u32(d);
    o->n_layers = bli_rd_u32(d + 4);
    o->pos0 = bli_rd_u64(d + 8);
    o->n = bli_rd_u64(d + 16);
    if (o->n_layers == 0 || o->n_layers > 100000 || !fits(c, 24, o->n, 12 * (uint64_t)o->n_layers))
        return bad(c, err, "rows x layers do not match the record's length");
    o->rows = (const float *)(d + 24);
    return BL_OK;
}

int bl_rec_parse_drafter(const struct bl_trace_chunk *c, struct bl_rec_drafter *o, bl_err *err)
{
    if (c->type != BL_CHUNK_DRAFTER || c->raw_len < 24)
        return bad(c, err, "not a drafter record");
    const unsigned char *d = c->data;
    o->prompt = bli_rd_u32(d);
    o->k = bli_rd_u32(d + 4);
    o->pos0 = bli_rd_u64(d + 8);
    o->n = bli_rd_u64(d + 16);
    if (o->k < 1 || o->k > BL_DRAFTER_MAX_HEADS)
        return bad(c, err, "drafter head count is not 1 to 16");
    if (!fits(c, 24, o->n, BL_REC_DRAFTER_HEAD_BYTES * (uint64_t)o->k))
        return bad(c, err, "rows x heads do not match the record's length");
    o->rows = d + 24;
    return BL_OK;
}

void bl_rec_drafter_row(const struct bl_rec_drafter *s, uint64_t i, struct bl_rec_drafter_head *h)
{
    BL_ASSERT(i < s->n);
    const unsigned char *d = s->rows + i * BL_REC_DRAFTER_HEAD_BYTES * (uint64_t)s->k;
    for (uint32_t j = 0; j < s->k; j++, d += BL_REC_DRAFTER_HEAD_BYTES) {
        h[j].token = bli_rd_i32(d);
        h[j].entropy = bli_rd_f32(d + 4);
        h[j].surprisal = bli_rd_f32(d + 8);
        h[j].rank = bli_rd_i32(d + 12);
    }
}

int bl_trace_hook_kind_valid(int kind)
{
    return (kind >= 0 && kind < BL_HOOK_N_KINDS) || kind == BL_TRACE_HOOK_DRAFTER_HIDDEN ||
           kind == BL_TRACE_HOOK_DRAFTER_LOGITS;
}

void bl_rec_stat_row(const struct bl_rec_stats *s, uint64_t i, struct bl_rec_stat_row *r, int32_t *top_id,
                     float *top_p)
{
    BL_ASSERT(i < s->n);
    const unsigned char *d = s->rows + i * (28 + 8 * (uint64_t)s->k);
    r->token = bli_rd_i32(d);
    r->next = bli_rd_i32(d + 4);
    r->entropy = bli_rd_f32(d + 8);
    r->entropy_t = bli_rd_f32(d + 12);
    r->surprisal = bli_rd_f32(d + 16);
    r->rank = bli_rd_i32(d + 20);
    r->prob = bli_rd_f32(d + 24);
    for (uint32_t j = 0; j < s->k; j++) {
        if (top_id)
            top_id[j] = bli_rd_i32(d + 28 + 4 * j);
        if (top_p)
            top_p[j] = bli_rd_f32(d + 28 + 4 * (size_t)s->k + 4 * j);
    }
}

/* ------------------------------------------------------------ the header */

struct hdr {
    const char *trace;
    bl_err *err;
    int rc;
};

static const cJSON *member(const cJSON *o, const char *name)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static int64_t int_at(struct hdr *h, const cJSON *o, const char *where, const char *name, int64_t lo, int64_t hi)
{
    const cJSON *v = member(o, name);
    if (h->rc)
        return lo;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi) {
        h->rc = bli_err(h->err, BL_EFORMAT, "%s: header: '%s%s' is missing or not an integer in [%" PRId64 ", %" PRId64 "]",
                        h->trace, where, name, lo, hi);
        return lo;
    }
    return (int64_t)v->valuedouble;
}

static const char *str_at(struct hdr *h, const cJSON *o, const char *where, const char *name, int optional)
{
    const cJSON *v = member(o, name);
    if (h->rc)
        return "";
    if (cJSON_IsString(v))
        return v->valuestring;
    if (!optional)
        h->rc = bli_err(h->err, BL_EFORMAT, "%s: header: '%s%s' is missing or not a string", h->trace, where, name);
    return NULL;
}

int bl_trace_meta_read(const bl_trace_reader *r, struct bl_trace_meta *m, bl_err *err)
{
    struct hdr h = {bl_trace_reader_name(r), err, BL_OK};
    size_t len;
    const char *text = bl_trace_reader_header(r, &len);
    memset(m, 0, sizeof *m);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bli_err(err, BL_EFORMAT, "%s: the header is not a JSON object", h.trace);
    }
    m->json = root;
    const cJSON *prompts = member(root, "prompts"), *rec = member(root, "recorded"), *model = member(root, "model");
    const cJSON *cfg = member(model, "config"), *smp = member(root, "sampling");
    if (!cJSON_IsArray(prompts))
        h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'prompts' is missing or not an array", h.trace);
    else if (!cJSON_IsObject(rec))
        h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'recorded' is missing or not an object", h.trace);
    else if (!cJSON_IsObject(model))
        h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'model' is missing or not an object", h.trace);
    if (h.rc)
        goto out;
    m->n_prompts = cJSON_GetArraySize(prompts);
    m->top_k = (int)int_at(&h, rec, "recorded.", "top_k", 0, 1000);
    m->n_layers = int_at(&h, rec, "recorded.", "n_layers", 1, 1 << 20);
    m->n_vocab = int_at(&h, rec, "recorded.", "n_vocab", 1, 1 << 24);   /* no vocabulary comes near */
    m->n_ctx = int_at(&h, rec, "recorded.", "n_ctx", 1, INT32_MAX);
    m->dim = int_at(&h, cfg, "model.config.", "dim", 1, 1 << 20);
    m->n_heads = int_at(&h, cfg, "model.config.", "n_heads", 1, 1 << 20);
    m->model_path = str_at(&h, model, "model.", "path", 0);
    m->model_name = str_at(&h, model, "model.", "name", 0);
    m->model_arch = str_at(&h, model, "model.", "architecture", 1);
    const cJSON *files = member(model, "files");
    m->model_sha256 = cJSON_IsArray(files) ? str_at(&h, cJSON_GetArrayItem(files, 0), "model.files[0].", "sha256", 1)
                                           : NULL;
    const cJSON *temp = member(smp, "temperature");
    m->temperature = cJSON_IsNumber(temp) ? temp->valuedouble : NAN;
    const cJSON *ng = member(smp, "n_gen");
    m->n_gen = cJSON_IsNumber(ng) && ng->valuedouble >= 0 && ng->valuedouble < 1e15 ? (int64_t)ng->valuedouble : 0;
    const cJSON *lens = member(rec, "lens"), *dt = member(rec, "dtype"), *hooks = member(rec, "hooks");
    const cJSON *dr = member(rec, "drafter");
    if (dr && !cJSON_IsNull(dr)) {
        if (!cJSON_IsObject(dr) && !h.rc)
            h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'recorded.drafter' is not an object or null", h.trace);
        m->drafter_heads = (int)int_at(&h, dr, "recorded.drafter.", "n_heads", 1, BL_DRAFTER_MAX_HEADS);
        m->drafter_kind = str_at(&h, dr, "recorded.drafter.", "kind", 0);
        m->drafter_hook = str_at(&h, dr, "recorded.drafter.", "hook", 0);
        m->drafter_path = str_at(&h, dr, "recorded.drafter.", "path", 1);
        m->drafter_sha256 = str_at(&h, dr, "recorded.drafter.", "sha256", 1);
    }
    if (h.rc)
        goto out;
    if (!cJSON_IsBool(lens)) {
        h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'recorded.lens' is missing or not a boolean", h.trace);
        goto out;
    }
    m->lens = cJSON_IsTrue(lens);
    if (!cJSON_IsString(dt) || (strcmp(dt->valuestring, "f32") && strcmp(dt->valuestring, "f16") &&
                                strcmp(dt->valuestring, "bf16"))) {
        h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'recorded.dtype' is missing or not f32, f16 or bf16", h.trace);
        goto out;
    }
    m->dtype = dt->valuestring[0] == 'b' ? BL_BF16 : dt->valuestring[1] == '3' ? BL_F32 : BL_F16;
    if (!cJSON_IsArray(hooks)) {
        h.rc = bli_err(err, BL_EFORMAT, "%s: header: 'recorded.hooks' is missing or not an array", h.trace);
        goto out;
    }
    m->n_hooks = cJSON_GetArraySize(hooks);
    if (m->n_hooks && !(m->hooks = bli_calloc((size_t)m->n_hooks, sizeof *m->hooks))) {
        h.rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < m->n_hooks && !h.rc; i++) {
        const cJSON *o = cJSON_GetArrayItem(hooks, (int)i);
        struct bl_trace_hook *k = &m->hooks[i];
        char where[48];
        snprintf(where, sizeof where, "recorded.hooks[%" PRId64 "].", i);
        k->name = str_at(&h, o, where, "name", 0);
        k->kind = (int)int_at(&h, o, where, "kind", 0, BL_TRACE_HOOK_DRAFTER_LOGITS);
        if (!h.rc && !bl_trace_hook_kind_valid(k->kind))
            h.rc = bli_err(err, BL_EFORMAT, "%s: header: '%skind' %d is not a hook kind", h.trace, where, k->kind);
        k->layer = (int)int_at(&h, o, where, "layer", -1, m->n_layers - 1);
        k->width = int_at(&h, o, where, "width", -1, BL_TRACE_MAX_CHUNK);
        if (!h.rc && k->width == 0)
            h.rc = bli_err(err, BL_EFORMAT, "%s: header: '%swidth' is 0", h.trace, where);
        if (!h.rc && (k->kind == BL_TRACE_HOOK_DRAFTER_HIDDEN || k->kind == BL_TRACE_HOOK_DRAFTER_LOGITS)) {
            /* a drafter's: of a head of the recorded drafter */
            if (!m->drafter_heads)
                h.rc = bli_err(err, BL_EFORMAT, "%s: header: '%sname' '%s' is a drafter's hook, and "
                               "'recorded.drafter' names none", h.trace, where, k->name);
            k->head = (int)int_at(&h, o, where, "head", 1, m->drafter_heads);
            if (!h.rc && k->layer != -1)
                h.rc = bli_err(err, BL_EFORMAT, "%s: header: '%slayer' of a drafter's hook is not -1", h.trace, where);
        }
        for (int64_t j = 0; j < i && !h.rc; j++)
            if (strcmp(m->hooks[j].name, k->name) == 0)
                h.rc = bli_err(err, BL_EFORMAT, "%s: header: hook '%s' is listed twice", h.trace, k->name);
    }
out:
    if (h.rc)
        bl_trace_meta_release(m);
    return h.rc;
}

void bl_trace_meta_release(struct bl_trace_meta *m)
{
    if (!m)
        return;
    free(m->hooks);
    cJSON_Delete(m->json);
    memset(m, 0, sizeof *m);
}
