/* tests/stwrite.c: see stwrite.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/tensor.h>

#include "stwrite.h"

struct stw_tensor {
    char *name;
    char dtype[16];
    int n_dims;
    int64_t shape[8];
    unsigned char *data;
    size_t nbytes;
};

struct stw {
    unsigned align;
    size_t n_meta;
    char **meta_key, **meta_val;
    size_t n, cap;
    struct stw_tensor *t;
};

/* A growable byte string. */
struct sb {
    char *p;
    size_t n, cap;
    int bad;
};

static void sb_put(struct sb *b, const void *d, size_t n)
{
    if (b->bad)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->bad = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void sb_fmt(struct sb *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {   /* never cut short */
        b->bad = 1;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

/* s as a JSON string literal: quotes, backslashes and control characters
 * escaped; other bytes (UTF-8) as they are. */
static void sb_json_str(struct sb *b, const char *s)
{
    sb_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            sb_fmt(b, "\\u%04x", *p);
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_str(b, "\"");
}

/* The format's dtypes and their element sizes in bits. */
unsigned stw_dtype_bits(const char *dtype)
{
    static const struct {
        const char *name;
        unsigned bits;
    } t[] = {
        {"BOOL", 8},         {"U8", 8},           {"I8", 8},       {"F8_E5M2", 8},
        {"F8_E4M3", 8},      {"F8_E8M0", 8},      {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8},
        {"I16", 16},         {"U16", 16},         {"F16", 16},     {"BF16", 16},
        {"I32", 32},         {"U32", 32},         {"F32", 32},     {"I64", 64},
        {"U64", 64},         {"F64", 64},         {"C64", 64},     {"F4", 4},
        {"F6_E2M3", 6},      {"F6_E3M2", 6},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, dtype) == 0)
            return t[i].bits;
    return 0;
}

stw *stw_alloc(void)
{
    stw *w = calloc(1, sizeof *w);
    if (w)
        w->align = 8;
    return w;
}

void stw_free(stw *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_key[i]);
        free(w->meta_val[i]);
    }
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->meta_key);
    free(w->meta_val);
    free(w->t);
    free(w);
}

void stw_set_align(stw *w, unsigned align)
{
    w->align = align ? align : 1;
}

int stw_meta(stw *w, const char *key, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -1;
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_key[i], key) == 0) {
            free(w->meta_val[i]);
            w->meta_val[i] = v;
            return 0;
        }
    char **k = realloc(w->meta_key, (w->n_meta + 1) * sizeof *k);
    if (k)
        w->meta_key = k;
    char **vv = realloc(w->meta_val, (w->n_meta + 1) * sizeof *vv);
    if (vv)
        w->meta_val = vv;
    char *kc = strdup(key);
    if (!k || !vv || !kc) {
        free(v);
        free(kc);
        return -1;
    }
    w->meta_key[w->n_meta] = kc;
    w->meta_val[w->n_meta] = v;
    w->n_meta++;
    return 0;
}

int stw_add(stw *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
            const void *data, size_t nbytes)
{
    unsigned bits = stw_dtype_bits(dtype);
    if (!bits || n_dims < 0 || n_dims > 8)
        return -1;
    uint64_t nel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0)
            return -1;
        nel *= (uint64_t)shape[d];
    }
    if (nel * bits % 8 || nel * bits / 8 != nbytes)
        return -1;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct stw_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return -1;
        w->t = nt;
        w->cap = cap;
    }
    struct stw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return -1;
    }
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->shape[d] = shape[d];
    if (nbytes)
        memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
    w->n++;
    return 0;
}

int stw_add_f32(stw *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
                const float *values)
{
    size_t nel = 1, es;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0)
            return -1;
        nel *= (size_t)shape[d];
    }
    if (strcmp(dtype, "F32") == 0)
        es = 4;
    else if (strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0)
        es = 2;
    else
        return -1;
    unsigned char *buf = malloc(nel * es + 1);
    if (!buf)
        return -1;
    for (size_t i = 0; i < nel; i++) {
        uint32_t u;
        if (es == 4) {
            memcpy(&u, &values[i], 4);
        } else {
            u = dtype[0] == 'F' ? bl_f32_to_f16(values[i]) : bl_f32_to_bf16(values[i]);
        }
        for (size_t k = 0; k < es; k++)   /* little-endian whatever the host */
            buf[i * es + k] = (unsigned char)(u >> (8 * k));
    }
    int rc = stw_add(w, name, dtype, n_dims, shape, buf, nel * es);
    free(buf);
    return rc;
}

int stw_add_f32_ne(stw *w, const char *name, const char *dtype, int n_dims, const int64_t *ne,
                   const float *values)
{
    int64_t shape[8];
    if (n_dims < 0 || n_dims > 8)
        return -1;
    for (int d = 0; d < n_dims; d++)
        shape[d] = ne[n_dims - 1 - d];
    return stw_add_f32(w, name, dtype, n_dims, shape, values);
}

uint64_t stw_data_size(const stw *w)
{
    uint64_t s = 0;
    for (size_t i = 0; i < w->n; i++)
        s += w->t[i].nbytes;
    return s;
}

unsigned char *stw_build(const stw *w, size_t *size)
{
    struct sb h = {0};
    int first = 1;
    sb_str(&h, "{");
    if (w->n_meta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i)
                sb_str(&h, ",");
            sb_json_str(&h, w->meta_key[i]);
            sb_str(&h, ":");
            sb_json_str(&h, w->meta_val[i]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct stw_tensor *t = &w->t[i];
        if (!first)
            sb_str(&h, ",");
        first = 0;
        sb_json_str(&h, t->name);
        sb_str(&h, ":{\"dtype\":");
        sb_json_str(&h, t->dtype);
        sb_str(&h, ",\"shape\":[");
        for (int d = 0; d < t->n_dims; d++)
            sb_fmt(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_fmt(&h, "],\"data_offsets\":[%llu,", (unsigned long long)off);
        off += t->nbytes;
        sb_fmt(&h, "%llu]}", (unsigned long long)off);
    }
    sb_str(&h, "}");
    while (!h.bad && h.n % w->align)
        sb_str(&h, " ");
    if (h.bad) {
        free(h.p);
        return NULL;
    }
    size_t total = 8 + h.n + (size_t)off;
    unsigned char *out = malloc(total ? total : 1);
    if (!out) {
        free(h.p);
        return NULL;
    }
    for (int k = 0; k < 8; k++)
        out[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    memcpy(out + 8, h.p, h.n);
    size_t o = 8 + h.n;
    for (size_t i = 0; i < w->n; i++) {
        if (w->t[i].nbytes)
            memcpy(out + o, w->t[i].data, w->t[i].nbytes);
        o += w->t[i].nbytes;
    }
    free(h.p);
    *size = total;
    return out;
}

static int put_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = n && fwrite(data, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

int stw_write(const stw *w, const char *path)
{
    size_t n;
    unsigned char *d = stw_build(w, &n);
    if (!d)
        return -1;
    int rc = put_file(path, d, n);
    free(d);
    return rc;
}

int stw_write_index(const char *path, const char *const *names, const char *const *files, size_t n,
                    uint64_t total_size)
{
    struct sb b = {0};
    sb_fmt(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
           (unsigned long long)total_size);
    for (size_t i = 0; i < n; i++) {
        sb_str(&b, i ? ",\n    " : "\n    ");
        sb_json_str(&b, names[i]);
        sb_str(&b, ": ");
        sb_json_str(&b, files[i]);
    }
    sb_str(&b, "\n  }\n}\n");
    if (b.bad) {
        free(b.p);
        return -1;
    }
    int rc = put_file(path, b.p, b.n);
    free(b.p);
    return rc;
}
