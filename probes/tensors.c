/* probes/tensors.c: store the rows of hook points in a trace (TENS).
 *
 * Each point has a buffer of rows in the storage dtype; contiguous rows of
 * one prompt accumulate and go out as one chunk when the buffer fills
 * (about 1 MiB), when the next rows do not continue it (another prompt, a
 * rewind, another width) or at a flush.  Memory is bounded by the number of
 * points, whatever the number of positions recorded. */
#include "config.h"

#include <string.h>

#include <bitlens/tensor.h>
#include "internal.h"
#include "probes.h"

#define FLUSH_BYTES (1u << 20)
#define TENS_HEADER 40u

struct point {
    struct bli_tensor_probe *p;
    uint32_t hook;        /* index in the header's recorded.hooks */
    unsigned char *buf;   /* TENS header + rows */
    size_t cap, used;     /* bytes */
    uint32_t prompt;
    uint64_t pos0, n, width;
};

struct bli_tensor_probe {
    bl_trace_writer *w;
    int dtype;
    size_t es;            /* bytes per element */
    uint32_t prompt;
    struct point *pts;
    int64_t n_pts;
    int64_t *extra_pt;    /* [n_extra]: the point of each extra one, or -1 */
    int64_t n_extra;
    int64_t values;
    bl_err err;
    int failed;
};

static int flush_point(struct point *pt, bl_err *err)
{
    struct bli_tensor_probe *p = pt->p;
    if (pt->n == 0)
        return BL_OK;
    unsigned char *h = pt->buf;
    bli_wr_u32(h, pt->prompt);
    bli_wr_u32(h + 4, pt->hook);
    bli_wr_u32(h + 8, (uint32_t)p->dtype);
    bli_wr_u32(h + 12, 0);
    bli_wr_u64(h + 16, pt->pos0);
    bli_wr_u64(h + 24, pt->n);
    bli_wr_u64(h + 32, pt->width);
    int rc = bl_trace_writer_put(p->w, BL_CHUNK_TENSOR, pt->buf, pt->used, TENS_HEADER, p->es > 1 ? p->es : 0, err);
    pt->n = 0;
    pt->used = TENS_HEADER;
    return rc;
}

static void store(const struct bli_tensor_probe *p, unsigned char *dst, const float *src, int64_t n)
{
    switch (p->dtype) {
    case BL_F32: memcpy(dst, src, (size_t)n * 4); break;
    case BL_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = bl_f32_to_f16(src[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
        break;
    case BL_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = bl_f32_to_bf16(src[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
        break;
    default: BL_ASSERT(!"tensor probe dtype");
    }
}

/* n_pos rows from pos0 (row i at data + i * stride) into point pt; nonzero
 * (p->err set) on failure */
static int put_rows(struct point *pt, const char *name, int64_t pos0, int64_t n_pos, int64_t width_,
                    const float *data, int64_t stride)
{
    struct bli_tensor_probe *p = pt->p;
    if (p->failed)
        return 1;
    uint64_t width = (uint64_t)width_;
    int contiguous = pt->n > 0 && pt->prompt == p->prompt && pt->width == width &&
                     pt->pos0 + pt->n == (uint64_t)pos0;
    size_t row = (size_t)width * p->es, add = row * (size_t)n_pos;
    if (pt->n > 0 && (!contiguous || pt->used + add > FLUSH_BYTES) && flush_point(pt, &p->err)) {
        p->failed = 1;
        return 1;
    }
    if (pt->n == 0) {
        pt->prompt = p->prompt;
        pt->pos0 = (uint64_t)pos0;
        pt->width = width;
    }
    /* a batch larger than a chunk allows goes out in pieces */
    for (int64_t i = 0; i < n_pos; i++) {
        if (pt->used + row > BL_TRACE_MAX_CHUNK && pt->n > 0) {
            uint64_t next = pt->pos0 + pt->n;
            if (flush_point(pt, &p->err)) {
                p->failed = 1;
                return 1;
            }
            pt->pos0 = next;
        }
        if (pt->used + row > pt->cap) {
            size_t cap = pt->cap * 2 > pt->used + row ? pt->cap * 2 : pt->used + row;
            unsigned char *b = realloc(pt->buf, cap);
            if (!b) {
                bli_err(&p->err, BL_ENOMEM, "out of memory buffering '%s'", name);
                p->failed = 1;
                return 1;
            }
            pt->buf = b;
            pt->cap = cap;
        }
        store(p, pt->buf + pt->used, data + i * stride, width_);
        pt->used += row;
        pt->n++;
    }
    p->values += n_pos * width_;
    return 0;
}

static int on_hook(const struct bl_hook_event *ev, void *user)
{
    return put_rows(user, ev->name, ev->pos0, ev->n_pos, ev->width, ev->data, ev->width);
}

/* the header's object for a point */
static int hook_json(cJSON *hooks_json, const char *name, int kind, int layer, int head, int64_t width)
{
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddStringToObject(h, "name", name) || !cJSON_AddNumberToObject(h, "kind", kind) ||
        !cJSON_AddNumberToObject(h, "layer", layer) || !cJSON_AddNumberToObject(h, "width", (double)width) ||
        (head > 0 && !cJSON_AddNumberToObject(h, "head", head))) {
        cJSON_Delete(h);
        return BL_ENOMEM;
    }
    cJSON_AddItemToArray(hooks_json, h);
    return BL_OK;
}

int bli_tensor_probe_alloc(struct bli_tensor_probe **out, bl_ctx *ctx, const char *globs, int dtype,
                           const struct bli_extra_point *extra, int64_t n_extra, bl_trace_writer *w,
                           cJSON *hooks_json, int64_t *matched, bl_err *err)
{
    struct bli_tensor_probe *p = calloc(1, sizeof *p);
    *out = NULL;
    *matched = 0;
    if (!p)
        return bli_err(err, BL_ENOMEM, "out of memory");
    if (dtype != BL_F32 && dtype != BL_F16 && dtype != BL_BF16) {
        free(p);
        return bli_err(err, BL_EINVAL, "tensors are stored as f32, f16 or bf16");
    }
    p->w = w;
    p->dtype = dtype;
    p->es = bl_dtype_row_bytes(dtype, 1);
    int64_t n = bl_ctx_n_hooks(ctx);
    p->n_extra = n_extra;
    p->extra_pt = bli_malloc_array((size_t)(n_extra > 0 ? n_extra : 1), sizeof *p->extra_pt);
    if (!p->extra_pt) {
        free(p);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    if (globs && *globs) {
        for (int64_t i = 0; i < n; i++)
            p->n_pts += bli_match_globs(globs, bl_ctx_hook_name(ctx, i));
        for (int64_t i = 0; i < n_extra; i++)
            p->n_pts += bli_match_globs(globs, extra[i].name);
    }
    p->pts = bli_calloc((size_t)(p->n_pts ? p->n_pts : 1), sizeof *p->pts);
    if (!p->pts) {
        free(p->extra_pt);
        free(p);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    /* the model's points in the order of the forward pass, then the
     * extra ones in their order */
    for (int64_t i = 0; i < n_extra; i++)
        p->extra_pt[i] = -1;
    int64_t k = 0;
    for (int64_t i = 0; i < n + n_extra && k < p->n_pts; i++) {
        const char *name = i < n ? bl_ctx_hook_name(ctx, i) : extra[i - n].name;
        if (!bli_match_globs(globs, name))
            continue;
        struct point *pt = &p->pts[k];
        pt->p = p;
        pt->hook = (uint32_t)k;
        pt->used = TENS_HEADER;
        pt->cap = 64 << 10;
        int rc = (pt->buf = malloc(pt->cap)) ? BL_OK : BL_ENOMEM;
        if (!rc && i < n)
            rc = bl_ctx_add_hook_at(ctx, i, on_hook, pt) ||
                 hook_json(hooks_json, name, bl_ctx_hook_kind(ctx, i), bl_ctx_hook_layer(ctx, i), 0,
                           bl_ctx_hook_width(ctx, i));
        else if (!rc) {
            const struct bli_extra_point *e = &extra[i - n];
            rc = hook_json(hooks_json, name, e->kind, e->layer, e->head, e->width);
            p->extra_pt[i - n] = k;
        }
        if (rc) {
            bli_tensor_probe_free(p);
            return bli_err(err, BL_ENOMEM, "out of memory");
        }
        k++;
    }
    *matched = p->n_pts;
    *out = p;
    return BL_OK;
}

int64_t bli_tensor_probe_extra(const struct bli_tensor_probe *p, int64_t i)
{
    return i >= 0 && i < p->n_extra ? p->extra_pt[i] : -1;
}

int bli_tensor_probe_put(struct bli_tensor_probe *p, int64_t point, const char *name, int64_t pos0, int64_t n,
                         int64_t width, const float *rows, int64_t stride, bl_err *err)
{
    BL_ASSERT(point >= 0 && point < p->n_pts);
    if (put_rows(&p->pts[point], name, pos0, n, width, rows, stride))
        return bli_err(err, p->err.code, "%s", p->err.msg);
    return BL_OK;
}

void bli_tensor_probe_writer(struct bli_tensor_probe *p, bl_trace_writer *w)
{
    p->w = w;
}

void bli_tensor_probe_prompt(struct bli_tensor_probe *p, uint32_t prompt)
{
    p->prompt = prompt;
}

int bli_tensor_probe_flush(struct bli_tensor_probe *p, bl_err *err)
{
    if (p->failed)
        return bli_err(err, p->err.code, "%s", p->err.msg);
    for (int64_t i = 0; i < p->n_pts; i++)
        if (flush_point(&p->pts[i], err))
            return err ? err->code : BL_EIO;
    return BL_OK;
}

const bl_err *bli_tensor_probe_error(const struct bli_tensor_probe *p)
{
    return p->failed ? &p->err : NULL;
}

int64_t bli_tensor_probe_values(const struct bli_tensor_probe *p)
{
    return p->values;
}

void bli_tensor_probe_free(struct bli_tensor_probe *p)
{
    if (!p)
        return;
    for (int64_t i = 0; i < p->n_pts; i++)
        free(p->pts[i].buf);
    free(p->pts);
    free(p->extra_pt);
    free(p);
}
