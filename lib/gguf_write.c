/* lib/gguf_write.c: GGUF v3 writer (layout in bitlens/gguf.h). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <bitlens/gguf.h>
#include "internal.h"

struct wkv {
    char *key;
    uint32_t type;
    unsigned char *val;   /* encoded value bytes (after the type field) */
    size_t len;
};

struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[BL_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

struct bl_gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
};

bl_gguf_writer *bl_gguf_writer_alloc(void)
{
    return calloc(1, sizeof(bl_gguf_writer));
}

void bl_gguf_writer_free(bl_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Store an encoded value under key, replacing an earlier one.  Takes
 * ownership of val. */
static int put(bl_gguf_writer *w, const char *key, uint32_t type, unsigned char *val, size_t len)
{
    if (!val)
        return BL_ENOMEM;
    /* refuse what the reader would refuse: an empty key, an alignment that
     * is not a uint32 */
    if (!key[0] || (strcmp(key, "general.alignment") == 0 && type != BL_GGUF_UINT32)) {
        free(val);
        return BL_EINVAL;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].len = len;
            return BL_OK;
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        struct wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) {
            free(val);
            return BL_ENOMEM;
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = bli_strdup(key);
    if (!k) {
        free(val);
        return BL_ENOMEM;
    }
    w->kv[w->n_kv++] = (struct wkv){k, type, val, len};
    return BL_OK;
}

static unsigned char *dup_bytes(const void *p, size_t n)
{
    unsigned char *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int bl_gguf_writer_set_u32(bl_gguf_writer *w, const char *key, uint32_t v)
{
    return put(w, key, BL_GGUF_UINT32, dup_bytes(&v, 4), 4);
}

int bl_gguf_writer_set_i32(bl_gguf_writer *w, const char *key, int32_t v)
{
    return put(w, key, BL_GGUF_INT32, dup_bytes(&v, 4), 4);
}

int bl_gguf_writer_set_u64(bl_gguf_writer *w, const char *key, uint64_t v)
{
    return put(w, key, BL_GGUF_UINT64, dup_bytes(&v, 8), 8);
}

int bl_gguf_writer_set_f32(bl_gguf_writer *w, const char *key, float v)
{
    return put(w, key, BL_GGUF_FLOAT32, dup_bytes(&v, 4), 4);
}

int bl_gguf_writer_set_bool(bl_gguf_writer *w, const char *key, int v)
{
    unsigned char b = v ? 1 : 0;
    return put(w, key, BL_GGUF_BOOL, dup_bytes(&b, 1), 1);
}

int bl_gguf_writer_set_str(bl_gguf_writer *w, const char *key, const char *v)
{
    size_t n = strlen(v);
    unsigned char *b = malloc(8 + n);
    if (!b)
        return BL_ENOMEM;
    put_u64(b, n);
    memcpy(b + 8, v, n);
    return put(w, key, BL_GGUF_STRING, b, 8 + n);
}

static size_t elem_size(int t)
{
    switch (t) {
    case BL_GGUF_UINT8: case BL_GGUF_INT8: case BL_GGUF_BOOL: return 1;
    case BL_GGUF_UINT16: case BL_GGUF_INT16: return 2;
    case BL_GGUF_UINT32: case BL_GGUF_INT32: case BL_GGUF_FLOAT32: return 4;
    case BL_GGUF_UINT64: case BL_GGUF_INT64: case BL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

int bl_gguf_writer_set_arr(bl_gguf_writer *w, const char *key, int elem_type, const void *data,
                           uint64_t n)
{
    size_t es = elem_size(elem_type);
    if (es == 0)
        return BL_EINVAL;
    if (n > (SIZE_MAX - 12) / es)
        return BL_ENOMEM;
    unsigned char *b = malloc(12 + (size_t)n * es);
    if (!b)
        return BL_ENOMEM;
    uint32_t et = (uint32_t)elem_type;
    memcpy(b, &et, 4);
    put_u64(b + 4, n);
    if (n)
        memcpy(b + 12, data, (size_t)n * es);
    return put(w, key, BL_GGUF_ARRAY, b, 12 + (size_t)n * es);
}

int bl_gguf_writer_set_arr_str(bl_gguf_writer *w, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n)
{
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++)
        total += 8 + (lens ? lens[i] : strlen(strs[i]));
    unsigned char *b = malloc(total);
    if (!b)
        return BL_ENOMEM;
    uint32_t et = BL_GGUF_STRING;
    memcpy(b, &et, 4);
    put_u64(b + 4, n);
    size_t off = 12;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        put_u64(b + off, len);
        memcpy(b + off + 8, strs[i], len);
        off += 8 + len;
    }
    return put(w, key, BL_GGUF_ARRAY, b, total);
}

int bl_gguf_writer_add_tensor(bl_gguf_writer *w, const char *name, int type, int n_dims,
                              const int64_t *ne, const void *data)
{
    if (n_dims < 1 || n_dims > BL_MAX_DIMS || !bl_dtype_name(type) || !name[0])
        return BL_EINVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return BL_EINVAL;
    struct wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    int64_t rows = 1;
    for (int d = 0; d < BL_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1)
            return BL_EINVAL;
        if (d > 0) {
            if (t.ne[d] > INT64_MAX / rows)
                return BL_EINVAL;
            rows *= t.ne[d];
        }
    }
    size_t rb = bl_dtype_row_bytes(type, t.ne[0]);
    if (rb == 0 || (uint64_t)rows > SIZE_MAX / rb)
        return BL_EINVAL;
    t.nbytes = rb * (size_t)rows;
    t.data = data;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return BL_ENOMEM;
        w->t = nt;
        w->cap_t = cap;
    }
    if (!(t.name = bli_strdup(name)))
        return BL_ENOMEM;
    w->t[w->n_t++] = t;
    return BL_OK;
}

static size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

/* An output stream that counts what it wrote (so padding works on pipes)
 * and remembers whether any write failed. */
struct out {
    FILE *fp;
    size_t n;
    int bad;
};

static void wr(struct out *o, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, o->fp) != n)
        o->bad = 1;
    o->n += n;
}

static void wr_u32(struct out *o, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    wr(o, b, 4);
}

static void wr_u64(struct out *o, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    wr(o, b, 8);
}

static void wr_str(struct out *o, const char *s)
{
    size_t n = strlen(s);
    wr_u64(o, n);
    wr(o, s, n);
}

static void wr_pad(struct out *o, size_t align)
{
    static const unsigned char zeros[64];
    size_t pad = align_up(o->n, align) - o->n;
    wr(o, zeros, pad);
}

int bl_gguf_writer_write_fp(bl_gguf_writer *w, FILE *fp, bl_err *err)
{
    size_t align = BL_GGUF_DEFAULT_ALIGNMENT;
    struct out o = {fp, 0, 0};
    size_t off = 0;

    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0 && w->kv[i].type == BL_GGUF_UINT32) {
            uint32_t a;
            memcpy(&a, w->kv[i].val, 4);
            if (a == 0 || (a & (a - 1)) || a > 64)
                return bli_err(err, BL_EINVAL, "general.alignment %u is not a power of two up to 64", a);
            align = a;
        }
    wr_u32(&o, BL_GGUF_MAGIC);
    wr_u32(&o, 3);
    wr_u64(&o, w->n_t);
    wr_u64(&o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        wr_str(&o, w->kv[i].key);
        wr_u32(&o, w->kv[i].type);
        wr(&o, w->kv[i].val, w->kv[i].len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        wr_str(&o, t->name);
        wr_u32(&o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            wr_u64(&o, (uint64_t)t->ne[d]);
        wr_u32(&o, (uint32_t)t->type);
        wr_u64(&o, off);
        off = align_up(off + t->nbytes, align);
    }
    if (w->n_t)
        wr_pad(&o, align);
    /* the data section starts aligned, so absolute padding is relative */
    for (size_t i = 0; i < w->n_t; i++) {
        wr(&o, w->t[i].data, w->t[i].nbytes);
        if (i + 1 < w->n_t)
            wr_pad(&o, align);
    }
    if (o.bad || fflush(fp) != 0 || ferror(fp))
        return bli_err(err, BL_EIO, "write failed: %s", strerror(errno));
    return BL_OK;
}

int bl_gguf_writer_write(bl_gguf_writer *w, const char *path, bl_err *err)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp)
        return bli_err(err, BL_ENOMEM, "out of memory");
    snprintf(tmp, n + 16, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        int rc = bli_err(err, BL_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = bl_gguf_writer_write_fp(w, fp, err);
    if (fclose(fp) != 0 && rc == BL_OK)
        rc = bli_err(err, BL_EIO, "%s: write failed: %s", tmp, strerror(errno));
    if (rc == BL_OK && rename(tmp, path) != 0)
        rc = bli_err(err, BL_EIO, "%s: cannot rename to '%s': %s", tmp, path, strerror(errno));
    if (rc != BL_OK) {
        if (err && strncmp(err->msg, tmp, strlen(tmp)) != 0) {
            char m[sizeof err->msg];
            memcpy(m, err->msg, sizeof m);
            bli_err(err, rc, "%s: %.400s", path, m);
        }
        unlink(tmp);
    }
    free(tmp);
    return rc;
}
