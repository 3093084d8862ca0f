/* lib/gguf.c: GGUF reader (layout in bitlens/gguf.h).
 *
 * Every read goes through a cursor that checks the bytes it needs against
 * the end of the file first.  Counts read from the file are checked against
 * the bytes left before anything is allocated from them. */
#include "config.h"

#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include <bitlens/gguf.h>
#include "internal.h"

struct kv {
    char *key;          /* NUL-terminated copy */
    uint32_t type;      /* enum bl_gguf_type */
    size_t off;         /* file offset of the value (of the elements for arrays) */
    size_t size;        /* bytes of the value (of all elements for arrays) */
    uint32_t arr_type;  /* arrays: element type */
    uint64_t arr_n;     /* arrays: element count */
};

struct bl_gguf {
    struct bli_map map;     /* owned mapping (bl_gguf_open), or none */
    const unsigned char *data;
    size_t size;
    char *name;
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    struct kv *kv;
    int64_t n_tensors;
    struct bl_tensor *tensors;
};

struct cursor {
    const unsigned char *p;
    size_t size;
    size_t off;
    const char *name;
    bl_err *err;
};

#define MAX_STRING ((uint64_t)1 << 30)

static int need(struct cursor *c, size_t n, const char *what)
{
    if (!bli_in_bounds(c->off, n, c->size))
        return bli_err(c->err, BL_EFORMAT,
                       "%s: %s at offset %zu needs %zu bytes but the file ends at %zu "
                       "(truncated?)",
                       c->name, what, c->off, n, c->size);
    return BL_OK;
}

static int rd_u32(struct cursor *c, uint32_t *v, const char *what)
{
    int rc = need(c, 4, what);
    if (rc)
        return rc;
    *v = bli_rd_u32(c->p + c->off);
    c->off += 4;
    return BL_OK;
}

static int rd_u64(struct cursor *c, uint64_t *v, const char *what)
{
    int rc = need(c, 8, what);
    if (rc)
        return rc;
    *v = bli_rd_u64(c->p + c->off);
    c->off += 8;
    return BL_OK;
}

/* A string: *s points into the file. */
static int rd_str(struct cursor *c, struct bl_gguf_str *s, const char *what)
{
    uint64_t len;
    size_t at = c->off;
    int rc = rd_u64(c, &len, what);
    if (rc)
        return rc;
    if (len > MAX_STRING || !bli_in_bounds(c->off, (size_t)len, c->size))
        return bli_err(c->err, BL_EFORMAT,
                       "%s: %s at offset %zu has length %" PRIu64
                       " which runs past the end of the file (size %zu)",
                       c->name, what, at, len, c->size);
    s->ptr = (const char *)c->p + c->off;
    s->len = len;
    c->off += (size_t)len;
    return BL_OK;
}

static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case BL_GGUF_UINT8:
    case BL_GGUF_INT8:
    case BL_GGUF_BOOL: return 1;
    case BL_GGUF_UINT16:
    case BL_GGUF_INT16: return 2;
    case BL_GGUF_UINT32:
    case BL_GGUF_INT32:
    case BL_GGUF_FLOAT32: return 4;
    case BL_GGUF_UINT64:
    case BL_GGUF_INT64:
    case BL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *bl_gguf_type_name(int type)
{
    static const char *const names[] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                        "int32", "float32", "bool",  "string", "array",
                                        "uint64", "int64", "float64"};
    if (type < 0 || type > BL_GGUF_FLOAT64)
        return "unknown";
    return names[type];
}

/* Read one value of `type` (not an array) and skip over it. */
static int skip_value(struct cursor *c, uint32_t type, const char *key)
{
    char what[320];
    snprintf(what, sizeof what, "value of key '%s'", key);
    if (type == BL_GGUF_STRING) {
        struct bl_gguf_str s;
        return rd_str(c, &s, what);
    }
    size_t n = scalar_size(type);
    if (n == 0)
        return bli_err(c->err, BL_EFORMAT, "%s: key '%s' at offset %zu has unknown type %" PRIu32,
                       c->name, key, c->off, type);
    int rc = need(c, n, what);
    if (rc)
        return rc;
    c->off += n;
    return BL_OK;
}

static int parse_kv(struct cursor *c, struct kv *kv, int64_t i)
{
    struct bl_gguf_str key;
    size_t at = c->off;
    char what[64];
    snprintf(what, sizeof what, "key %" PRId64, i);
    int rc = rd_str(c, &key, what);
    if (rc)
        return rc;
    if (key.len == 0 || memchr(key.ptr, '\0', key.len))
        return bli_err(c->err, BL_EFORMAT, "%s: key %" PRId64 " at offset %zu is empty or holds a NUL byte",
                       c->name, i, at);
    kv->key = bli_strndup(key.ptr, key.len);
    if (!kv->key)
        return bli_err(c->err, BL_ENOMEM, "%s: out of memory", c->name);
    rc = rd_u32(c, &kv->type, "value type");
    if (rc)
        return rc;
    if (kv->type != BL_GGUF_ARRAY) {
        kv->off = c->off;
        rc = skip_value(c, kv->type, kv->key);
        kv->size = c->off - kv->off;
        return rc;
    }
    rc = rd_u32(c, &kv->arr_type, "array element type");
    if (rc)
        return rc;
    rc = rd_u64(c, &kv->arr_n, "array length");
    if (rc)
        return rc;
    kv->off = c->off;
    if (kv->arr_type == BL_GGUF_ARRAY)
        return bli_err(c->err, BL_EUNSUPPORTED, "%s: key '%s' is an array of arrays (not supported)",
                       c->name, kv->key);
    if (kv->arr_type == BL_GGUF_STRING) {
        /* each string takes at least its 8-byte length */
        if (kv->arr_n > (c->size - c->off) / 8)
            return bli_err(c->err, BL_EFORMAT,
                           "%s: array '%s' at offset %zu claims %" PRIu64
                           " strings, more than the file can hold",
                           c->name, kv->key, kv->off, kv->arr_n);
        for (uint64_t j = 0; j < kv->arr_n; j++) {
            struct bl_gguf_str s;
            if ((rc = rd_str(c, &s, "string array element")))
                return rc;
        }
    } else {
        size_t es = scalar_size(kv->arr_type);
        if (es == 0)
            return bli_err(c->err, BL_EFORMAT, "%s: array '%s' has unknown element type %" PRIu32,
                           c->name, kv->key, kv->arr_type);
        if (kv->arr_n > (c->size - c->off) / es)
            return bli_err(c->err, BL_EFORMAT,
                           "%s: array '%s' at offset %zu holds %" PRIu64 " x %zu bytes, "
                           "past the end of the file (size %zu)",
                           c->name, kv->key, kv->off, kv->arr_n, es, c->size);
        c->off += (size_t)kv->arr_n * es;
    }
    kv->size = c->off - kv->off;
    return BL_OK;
}

static int parse_tensor(struct cursor *c, struct bl_tensor *t, int64_t i)
{
    struct bl_gguf_str name;
    uint32_t n_dims, type;
    uint64_t off;
    size_t at = c->off;
    char what[64];
    int rc;

    snprintf(what, sizeof what, "name of tensor %" PRId64, i);
    if ((rc = rd_str(c, &name, what)))
        return rc;
    if (name.len == 0 || memchr(name.ptr, '\0', name.len))
        return bli_err(c->err, BL_EFORMAT, "%s: tensor %" PRId64 " at offset %zu has an empty name or a NUL byte in it",
                       c->name, i, at);
    char *nm = bli_strndup(name.ptr, name.len);
    if (!nm)
        return bli_err(c->err, BL_ENOMEM, "%s: out of memory", c->name);
    t->name = nm;
    if ((rc = rd_u32(c, &n_dims, "tensor dimension count")))
        return rc;
    if (n_dims < 1 || n_dims > BL_MAX_DIMS)
        return bli_err(c->err, BL_EFORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions (1 to %d allowed)",
                       c->name, nm, n_dims, BL_MAX_DIMS);
    t->n_dims = (int)n_dims;
    int64_t nel = 1;
    for (int d = 0; d < BL_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < (int)n_dims && (rc = rd_u64(c, &ne, "tensor dimension")))
            return rc;
        if (ne == 0 || ne > (uint64_t)INT64_MAX || (int64_t)ne > INT64_MAX / nel)
            return bli_err(c->err, BL_EFORMAT, "%s: tensor '%s' has an invalid dimension %d of %" PRIu64,
                           c->name, nm, d, ne);
        t->ne[d] = (int64_t)ne;
        nel *= (int64_t)ne;
    }
    if ((rc = rd_u32(c, &type, "tensor type")))
        return rc;
    t->type = (int)type;
    if (!bl_dtype_name(t->type))
        return bli_err(c->err, BL_EFORMAT, "%s: tensor '%s' has unknown type %" PRIu32,
                       c->name, nm, type);
    if (t->ne[0] % bl_dtype_block(t->type))
        return bli_err(c->err, BL_EFORMAT, "%s: tensor '%s': row of %" PRId64 " elements is not a whole number of %s blocks",
                       c->name, nm, t->ne[0], bl_dtype_name(t->type));
    size_t row = bl_dtype_row_bytes(t->type, t->ne[0]);
    int64_t rows = nel / t->ne[0];
    if (row && (uint64_t)rows > SIZE_MAX / row)
        return bli_err(c->err, BL_EFORMAT, "%s: tensor '%s' is too large", c->name, nm);
    t->nbytes = row * (size_t)rows;
    if ((rc = rd_u64(c, &off, "tensor offset")))
        return rc;
    if (off > SIZE_MAX / 2)
        return bli_err(c->err, BL_EFORMAT, "%s: tensor '%s' has offset %" PRIu64 " beyond any file",
                       c->name, nm, off);
    t->offset = (size_t)off;    /* relative for now; made absolute later */
    return BL_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Find a name that occurs twice among n records of `stride` bytes whose
 * `char *` name sits at `name_off`: sort the names, compare neighbours
 * (O(n log n), so a hostile file with a million keys stays fast). */
static int find_duplicate(const void *base, size_t n, size_t stride, size_t name_off,
                          const char **dup)
{
    if (n < 2)
        return BL_OK;
    const char **names = bli_malloc_array(n, sizeof *names);
    if (!names)
        return BL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        memcpy(&names[i], (const char *)base + i * stride + name_off, sizeof names[i]);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = BL_OK;
    for (size_t i = 1; i < n && !rc; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            *dup = names[i];
            rc = BL_EFORMAT;
        }
    free(names);
    return rc;
}

static int cmp_offset(const void *a, const void *b)
{
    const struct bl_tensor *x = *(const struct bl_tensor *const *)a;
    const struct bl_tensor *y = *(const struct bl_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int check_tensors(bl_gguf *g, bl_err *err)
{
    /* data of each tensor inside the file, aligned, no two overlapping, no
     * two with the same name */
    for (int64_t i = 0; i < g->n_tensors; i++) {
        struct bl_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s': offset %zu is not a multiple of the alignment %zu",
                           g->name, t->name, t->offset, g->alignment);
        size_t abs = g->data_offset + t->offset;
        if (abs < g->data_offset || !bli_in_bounds(abs, t->nbytes, g->size))
            return bli_err(err, BL_EFORMAT,
                           "%s: tensor '%s': data at offset %zu + %zu bytes runs past the end of the file (size %zu)",
                           g->name, t->name, abs, t->nbytes, g->size);
        t->offset = abs;
        t->data = g->data + abs;
    }
    if (g->n_tensors < 2)
        return BL_OK;
    struct bl_tensor **by = bli_malloc_array((size_t)g->n_tensors, sizeof *by);
    if (!by)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", g->name);
    for (int64_t i = 0; i < g->n_tensors; i++)
        by[i] = &g->tensors[i];
    qsort(by, (size_t)g->n_tensors, sizeof *by, cmp_offset);
    int rc = BL_OK;
    for (int64_t i = 1; i < g->n_tensors && !rc; i++)
        if (by[i - 1]->offset + by[i - 1]->nbytes > by[i]->offset)
            rc = bli_err(err, BL_EFORMAT, "%s: tensors '%s' and '%s' overlap (offsets %zu and %zu)",
                         g->name, by[i - 1]->name, by[i]->name, by[i - 1]->offset, by[i]->offset);
    free(by);
    if (rc)
        return rc;
    const char *dup;
    if ((rc = find_duplicate(g->tensors, (size_t)g->n_tensors, sizeof *g->tensors,
                             offsetof(struct bl_tensor, name), &dup)))
        return rc == BL_ENOMEM ? bli_err(err, rc, "%s: out of memory", g->name)
                               : bli_err(err, rc, "%s: tensor name '%s' appears twice", g->name, dup);
    return BL_OK;
}

static int parse(bl_gguf *g, bl_err *err)
{
    struct cursor c = {g->data, g->size, 0, g->name, err};
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    int rc;

    if (g->size < 4 || bli_rd_u32(g->data) != BL_GGUF_MAGIC)
        return bli_err(err, BL_EFORMAT, "%s: not a GGUF file (bad magic)", g->name);
    if ((rc = rd_u32(&c, &magic, "magic")) || (rc = rd_u32(&c, &g->version, "version")))
        return rc;
    if (g->version != 2 && g->version != 3)
        return bli_err(err, BL_EUNSUPPORTED, "%s: GGUF version %" PRIu32 " is not supported (2 and 3 are)",
                       g->name, g->version);
    if ((rc = rd_u64(&c, &n_tensors, "tensor count")) || (rc = rd_u64(&c, &n_kv, "key count")))
        return rc;
    /* a kv takes at least 8+1+4+1 bytes, a tensor info 8+1+4+8+4+8 */
    if (n_kv > g->size / 14 || n_tensors > g->size / 33)
        return bli_err(err, BL_EFORMAT, "%s: header claims %" PRIu64 " keys and %" PRIu64
                       " tensors, more than a file of %zu bytes can hold",
                       g->name, n_kv, n_tensors, g->size);
    g->kv = bli_calloc((size_t)n_kv, sizeof *g->kv);
    g->tensors = bli_calloc((size_t)n_tensors, sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", g->name);
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1;
        if ((rc = parse_kv(&c, &g->kv[i], (int64_t)i)))
            return rc;
    }
    const char *dup;
    if ((rc = find_duplicate(g->kv, (size_t)g->n_kv, sizeof *g->kv, offsetof(struct kv, key), &dup)))
        return rc == BL_ENOMEM ? bli_err(err, rc, "%s: out of memory", g->name)
                               : bli_err(err, rc, "%s: key '%s' appears twice", g->name, dup);
    g->alignment = BL_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = bl_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        if (g->kv[ai].type != BL_GGUF_UINT32)
            return bli_err(err, BL_EFORMAT, "%s: general.alignment has type %s, not uint32", g->name,
                           bl_gguf_type_name((int)g->kv[ai].type));
        uint32_t a = bli_rd_u32(g->data + g->kv[ai].off);
        if (a == 0 || (a & (a - 1)))
            return bli_err(err, BL_EFORMAT, "%s: general.alignment %" PRIu32 " is not a power of two", g->name, a);
        if (a > (1u << 20))
            return bli_err(err, BL_EFORMAT, "%s: general.alignment %" PRIu32 " exceeds the maximum 1048576",
                           g->name, a);
        g->alignment = a;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = (int64_t)i + 1;
        if ((rc = parse_tensor(&c, &g->tensors[i], (int64_t)i)))
            return rc;
    }
    g->data_offset = (c.off + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors > 0 && g->data_offset > g->size)
        return bli_err(err, BL_EFORMAT, "%s: data section at offset %zu starts past the end of the file (size %zu)",
                       g->name, g->data_offset, g->size);
    return check_tensors(g, err);
}

static int open_common(bl_gguf **out, bl_gguf *g, bl_err *err)
{
    int rc = parse(g, err);
    if (rc) {
        bl_gguf_free(g);
        *out = NULL;
        return rc;
    }
    *out = g;
    return BL_OK;
}

int bl_gguf_open_memory(bl_gguf **out, const void *data, size_t size, const char *name,
                        bl_err *err)
{
    bl_gguf *g = calloc(1, sizeof *g);
    *out = NULL;
    if (!g || !(g->name = bli_strdup(name ? name : "<memory>"))) {
        free(g);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    g->data = data;
    g->size = size;
    return open_common(out, g, err);
}

int bl_gguf_open(bl_gguf **out, const char *path, bl_err *err)
{
    bl_gguf *g = calloc(1, sizeof *g);
    int rc;
    *out = NULL;
    if (!g || !(g->name = bli_strdup(path))) {
        free(g);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    if ((rc = bli_map_file(&g->map, path, err))) {
        bl_gguf_free(g);
        return rc;
    }
    g->data = g->map.data;
    g->size = g->map.size;
    return open_common(out, g, err);
}

void bl_gguf_free(bl_gguf *g)
{
    if (!g)
        return;
    for (int64_t i = 0; i < g->n_kv; i++)
        free(g->kv[i].key);
    for (int64_t i = 0; i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->name);
    bli_unmap(&g->map);
    free(g);
}

uint32_t bl_gguf_version(const bl_gguf *g) { return g->version; }
size_t bl_gguf_file_size(const bl_gguf *g) { return g->size; }
size_t bl_gguf_data_offset(const bl_gguf *g) { return g->data_offset; }
const char *bl_gguf_name(const bl_gguf *g) { return g->name; }
int64_t bl_gguf_n_kv(const bl_gguf *g) { return g->n_kv; }
int64_t bl_gguf_n_tensors(const bl_gguf *g) { return g->n_tensors; }

int64_t bl_gguf_find_key(const bl_gguf *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0)
            return i;
    return -1;
}

const char *bl_gguf_key(const bl_gguf *g, int64_t i)
{
    BL_ASSERT(i >= 0 && i < g->n_kv);
    return g->kv[i].key;
}

int bl_gguf_kv_type(const bl_gguf *g, int64_t i)
{
    BL_ASSERT(i >= 0 && i < g->n_kv);
    return (int)g->kv[i].type;
}

static const struct kv *lookup(const bl_gguf *g, const char *key)
{
    int64_t i = bl_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

static int wrong_type(const bl_gguf *g, const struct kv *kv, const char *want, bl_err *err)
{
    return bli_err(err, BL_EFORMAT, "%s: key '%s' has type %s, expected %s", g->name, kv->key,
                   bl_gguf_type_name((int)kv->type), want);
}

/* Read an integer-typed value as int64: 0, -1 for a non-integer type, -2 for
 * a uint64 above INT64_MAX. */
static int get_int(const bl_gguf *g, const struct kv *kv, int64_t *out)
{
    const unsigned char *p = g->data + kv->off;
    switch (kv->type) {
    case BL_GGUF_UINT8: *out = p[0]; return 0;
    case BL_GGUF_INT8: *out = (int8_t)p[0]; return 0;
    case BL_GGUF_UINT16: *out = (uint16_t)(p[0] | p[1] << 8); return 0;
    case BL_GGUF_INT16: *out = (int16_t)(uint16_t)(p[0] | p[1] << 8); return 0;
    case BL_GGUF_UINT32: *out = bli_rd_u32(p); return 0;
    case BL_GGUF_INT32: *out = bli_rd_i32(p); return 0;
    case BL_GGUF_INT64: *out = (int64_t)bli_rd_u64(p); return 0;
    case BL_GGUF_UINT64: {
        uint64_t v = bli_rd_u64(p);
        if (v > (uint64_t)INT64_MAX)
            return -2;
        *out = (int64_t)v;
        return 0;
    }
    default: return -1;
    }
}

int bl_gguf_get_i64(const bl_gguf *g, const char *key, int64_t *out, bl_err *err)
{
    const struct kv *kv = lookup(g, key);
    if (!kv)
        return BL_ENOTFOUND;
    int r = get_int(g, kv, out);
    if (r == -2)
        return bli_err(err, BL_EFORMAT, "%s: key '%s' = %" PRIu64 " is out of range", g->name, key,
                       bli_rd_u64(g->data + kv->off));
    if (r)
        return wrong_type(g, kv, "an integer", err);
    return BL_OK;
}

int bl_gguf_get_u32(const bl_gguf *g, const char *key, uint32_t *out, bl_err *err)
{
    int64_t v;
    int rc = bl_gguf_get_i64(g, key, &v, err);
    if (rc)
        return rc;
    if (v < 0 || v > UINT32_MAX)
        return bli_err(err, BL_EFORMAT, "%s: key '%s' = %" PRId64 " is out of range", g->name, key, v);
    *out = (uint32_t)v;
    return BL_OK;
}

int bl_gguf_get_f32(const bl_gguf *g, const char *key, float *out, bl_err *err)
{
    const struct kv *kv = lookup(g, key);
    if (!kv)
        return BL_ENOTFOUND;
    if (kv->type == BL_GGUF_FLOAT32) {
        *out = bli_rd_f32(g->data + kv->off);
        return BL_OK;
    }
    if (kv->type == BL_GGUF_FLOAT64) {
        uint64_t u = bli_rd_u64(g->data + kv->off);
        double d;
        memcpy(&d, &u, 8);
        *out = (float)d;
        return BL_OK;
    }
    return wrong_type(g, kv, "float32", err);
}

int bl_gguf_get_bool(const bl_gguf *g, const char *key, int *out, bl_err *err)
{
    const struct kv *kv = lookup(g, key);
    if (!kv)
        return BL_ENOTFOUND;
    if (kv->type != BL_GGUF_BOOL)
        return wrong_type(g, kv, "bool", err);
    *out = g->data[kv->off] != 0;
    return BL_OK;
}

int bl_gguf_get_str(const bl_gguf *g, const char *key, struct bl_gguf_str *out, bl_err *err)
{
    const struct kv *kv = lookup(g, key);
    if (!kv)
        return BL_ENOTFOUND;
    if (kv->type != BL_GGUF_STRING)
        return wrong_type(g, kv, "string", err);
    out->len = bli_rd_u64(g->data + kv->off);
    out->ptr = (const char *)g->data + kv->off + 8;
    return BL_OK;
}

int bl_gguf_get_arr(const bl_gguf *g, const char *key, int *elem_type, uint64_t *n, bl_err *err)
{
    const struct kv *kv = lookup(g, key);
    if (!kv)
        return BL_ENOTFOUND;
    if (kv->type != BL_GGUF_ARRAY)
        return wrong_type(g, kv, "array", err);
    *elem_type = (int)kv->arr_type;
    *n = kv->arr_n;
    return BL_OK;
}

const void *bl_gguf_arr_data(const bl_gguf *g, const char *key)
{
    const struct kv *kv = lookup(g, key);
    if (!kv || kv->type != BL_GGUF_ARRAY || kv->arr_type == BL_GGUF_STRING)
        return NULL;
    return g->data + kv->off;
}

int bl_gguf_arr_strings(const bl_gguf *g, const char *key, struct bl_gguf_str *strs, uint64_t n,
                        bl_err *err)
{
    const struct kv *kv = lookup(g, key);
    if (!kv)
        return BL_ENOTFOUND;
    if (kv->type != BL_GGUF_ARRAY || kv->arr_type != BL_GGUF_STRING)
        return bli_err(err, BL_EFORMAT, "%s: key '%s' is not an array of strings", g->name, key);
    BL_ASSERT(n <= kv->arr_n);
    /* bounds were checked when the file was parsed */
    size_t off = kv->off;
    for (uint64_t j = 0; j < n; j++) {
        strs[j].len = bli_rd_u64(g->data + off);
        strs[j].ptr = (const char *)g->data + off + 8;
        off += 8 + (size_t)strs[j].len;
    }
    return BL_OK;
}

const struct bl_tensor *bl_gguf_tensor(const bl_gguf *g, int64_t i)
{
    BL_ASSERT(i >= 0 && i < g->n_tensors);
    return &g->tensors[i];
}

const struct bl_tensor *bl_gguf_find_tensor(const bl_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}
