/* lib/safetensors.c: safetensors reader (layout and rules in
 * bitlens/safetensors.h).
 *
 * A file is read in four steps, each finished before the next begins:
 *   1. the 8-byte length and the header bounds against the file size;
 *   2. the header as text: UTF-8, no NUL, one JSON object (cJSON, given the
 *      exact length), nothing after it but whitespace, no escaped NUL;
 *   3. each entry on its own: dtype, shape and offsets typed and in range,
 *      byte size = element size * element count, inside the byte buffer;
 *   4. the entries together: names unique, the tensors tiling the buffer.
 * Only then are tensor pointers formed.  cJSON's tree is freed before the
 * open returns: names and metadata are copied. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <bitlens/safetensors.h>
#include "internal.h"

/* JSON numbers are doubles: integers are exact below 2^53. */
#define EXACT_LIMIT 9007199254740992.0

/* The dtypes of the format, with their sizes in bits (F4 and F6 pack
 * several elements in a byte) and the ggml type they map to (-1: none). */
static const struct dtype_info {
    const char *name;
    unsigned bits;
    int type;
} dtypes[] = {
    {"F32", 32, 0},         {"F16", 16, 1},         {"BF16", 16, 30},
    {"F64", 64, 28},        {"I8", 8, 24},          {"I16", 16, 25},
    {"I32", 32, 26},        {"I64", 64, 27},        {"U8", 8, -1},
    {"U16", 16, -1},        {"U32", 32, -1},        {"U64", 64, -1},
    {"BOOL", 8, -1},        {"C64", 64, -1},        {"F8_E4M3", 8, -1},
    {"F8_E5M2", 8, -1},     {"F8_E8M0", 8, -1},     {"F8_E4M3FNUZ", 8, -1},
    {"F8_E5M2FNUZ", 8, -1}, {"F6_E2M3", 6, -1},     {"F6_E3M2", 6, -1},
    {"F4", 4, -1},
};

static const struct dtype_info *find_dtype(const char *s)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, s) == 0)
            return &dtypes[i];
    return NULL;
}

/* One safetensors file. */
struct st_file {
    struct bli_map map;           /* owned mapping, or none (open_memory) */
    const unsigned char *data;    /* the whole file */
    size_t size;
    char *name;                   /* path or given name, for messages */
    size_t buf_off;               /* 8 + N: where the byte buffer starts */
};

/* What a tensor has besides its bl_tensor. */
struct ent {
    const char *dtype;            /* static: dtypes[].name */
    int64_t file;                 /* index into bl_safetensors.files */
    uint64_t begin, end;          /* data_offsets (relative to the buffer) */
};

struct meta {
    char *key;
    char *value;
};

/* A string and the index of what it names, for sorted lookups. */
struct named {
    const char *s;
    int64_t i;
};

/* Tensors and metadata: a whole handle, or one shard while an index is
 * read. */
struct table {
    int64_t n;
    struct bl_tensor *t;          /* n tensors; names owned */
    struct ent *e;                /* n */
    struct named *by_name;        /* n, sorted by name */
    int64_t n_meta;
    struct meta *meta;            /* n_meta, in file order; owned */
    struct named *meta_by_key;    /* n_meta, sorted by key */
};

struct bl_safetensors {
    char *name;
    int64_t n_files;
    struct st_file *files;
    struct table tab;
};

/* ------------------------------------------------------------ helpers */

static int cmp_named(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Sort v[0..n) by string (in place); return the first string that occurs
 * twice, or NULL. */
static const char *sort_named(struct named *v, int64_t n)
{
    const char *dup = NULL;
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_named);
    for (int64_t i = 1; i < n && !dup; i++)
        if (strcmp(v[i - 1].s, v[i].s) == 0)
            dup = v[i].s;
    return dup;
}

/* Index of s in the sorted v[0..n), or -1. */
static int64_t find_named(const struct named *v, int64_t n, const char *s)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].s, s);
        if (c == 0)
            return v[mid].i;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void table_release(struct table *tab)
{
    for (int64_t i = 0; tab->t && i < tab->n; i++)
        free((char *)tab->t[i].name);
    for (int64_t i = 0; tab->meta && i < tab->n_meta; i++) {
        free(tab->meta[i].key);
        free(tab->meta[i].value);
    }
    free(tab->t);
    free(tab->e);
    free(tab->by_name);
    free(tab->meta);
    free(tab->meta_by_key);
    memset(tab, 0, sizeof *tab);
}

static void file_release(struct st_file *f)
{
    bli_unmap(&f->map);
    free(f->name);
    memset(f, 0, sizeof *f);
}

/* 0 if s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * values above U+10FFFF) without NUL bytes; else 1 for a NUL, 2 for bad
 * UTF-8, with the offset of the offending byte in *at. */
static int check_text(const unsigned char *s, size_t n, size_t *at)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        *at = i;
        if (c == 0)
            return 1;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 2;
        }
        if (n - i < len)
            return 2;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 2;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 2;
        i += len;
    }
    return 0;
}

/* Offset of an escaped NUL ("\u0000", which would cut a C string short) in
 * JSON text s[0..n), or n if there is none.  Backslashes come in runs:
 * "\\u0000" is an escaped backslash then "u0000". */
static size_t find_escaped_nul(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] != '\\') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && s[j] == '\\')
            j++;
        if ((j - i) % 2 == 1 && n - j >= 5 && memcmp(s + j, "u0000", 5) == 0)
            return j - 1;
        i = j;
    }
    return n;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse text[0..n) as one JSON object followed only by whitespace.
 * `base` is the file offset of text[0] (for messages), `what` names the
 * text ("header", "index"); with brace_first the object must start at the
 * first byte, as the format requires of headers. */
static int parse_object(const unsigned char *text, size_t n, size_t base, const char *name,
                        const char *what, int brace_first, cJSON **out, bl_err *err)
{
    size_t at;
    *out = NULL;
    switch (check_text(text, n, &at)) {
    case 1:
        return bli_err(err, BL_EFORMAT, "%s: %s holds a NUL byte at offset %zu", name, what,
                       base + at);
    case 2:
        return bli_err(err, BL_EFORMAT, "%s: %s is not valid UTF-8 (byte 0x%02x at offset %zu)",
                       name, what, text[at], base + at);
    }
    const char *end = NULL;
    cJSON *root = n ? cJSON_ParseWithLengthOpts((const char *)text, n, &end, 0) : NULL;
    if (!root) {
        const char *t = (const char *)text;
        at = end && end >= t && end <= t + n ? (size_t)(end - t) : 0;
        return bli_err(err, BL_EFORMAT, "%s: %s is not valid JSON (error at offset %zu)", name,
                       what, base + at);
    }
    at = (size_t)(end - (const char *)text);
    while (at < n && is_ws(text[at]))
        at++;
    if (at < n) {
        cJSON_Delete(root);
        return bli_err(err, BL_EFORMAT, "%s: %s has bytes after its JSON value, at offset %zu", name,
                       what, base + at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bli_err(err, BL_EFORMAT, "%s: %s is not a JSON object", name, what);
    }
    if (brace_first && text[0] != '{') {
        cJSON_Delete(root);
        return bli_err(err, BL_EFORMAT, "%s: %s at offset %zu must start with '{' (found byte 0x%02x)",
                       name, what, base, text[0]);
    }
    if ((at = find_escaped_nul(text, n)) < n) {
        cJSON_Delete(root);
        return bli_err(err, BL_EFORMAT, "%s: %s holds an escaped NUL (\\u0000) at offset %zu", name,
                       what, base + at);
    }
    *out = root;
    return BL_OK;
}

enum { U_OK, U_NOT_NUMBER, U_NOT_NATURAL, U_TOO_BIG };

/* A JSON number that is an integer in [0, 2^53). */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return U_NOT_NUMBER;
    double d = v->valuedouble;
    if (!(d >= 0))
        return U_NOT_NATURAL;   /* negative, or NaN */
    if (d >= EXACT_LIMIT)
        return U_TOO_BIG;       /* or infinite */
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return U_NOT_NATURAL;   /* fractional */
    *out = u;
    return U_OK;
}

/* The message for a json_uint failure of `what` (e.g. "shape[2]"). */
static int bad_uint(bl_err *err, const char *name, const char *tensor, const char *what, int why,
                    const cJSON *v)
{
    if (why == U_NOT_NUMBER)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': %s is not a number", name, tensor, what);
    if (why == U_TOO_BIG)
        return bli_err(err, BL_EFORMAT,
                       "%s: tensor '%s': %s = %.17g is at or above 2^53, where JSON numbers "
                       "stop being exact integers",
                       name, tensor, what, v->valuedouble);
    return bli_err(err, BL_EFORMAT, "%s: tensor '%s': %s = %.17g is not a non-negative integer", name,
                   tensor, what, v->valuedouble);
}

/* "[2, 3, 4]" of a shape array (cut with "..." when long). */
static void fmt_shape(char *buf, size_t cap, const cJSON *shape)
{
    size_t o = 0;
    int first = 1;
    buf[0] = '\0';
    o += (size_t)snprintf(buf, cap, "[");
    for (const cJSON *c = shape->child; c && o < cap; c = c->next) {
        if (o > cap - 24) {
            snprintf(buf + o, cap - o, ", ...");
            o = cap;
            break;
        }
        o += (size_t)snprintf(buf + o, cap - o, "%s%.17g", first ? "" : ", ", c->valuedouble);
        first = 0;
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* ------------------------------------------------------------- a file */

/* Check one tensor entry `item` of file f and fill t and e (not the name).
 * *dims receives the number of dimensions (may exceed BL_MAX_DIMS: the
 * caller decides). */
static int parse_entry(const struct st_file *f, const cJSON *item, struct bl_tensor *t,
                       struct ent *e, int64_t *dims, bl_err *err)
{
    const char *nm = item->string;
    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    uint64_t shape[BL_MAX_DIMS];
    char what[48];
    int why;

    if (!cJSON_IsObject(item))
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': entry is not a JSON object", f->name, nm);
    /* the three keys the format defines, once each; others are ignored,
     * as the reference implementation ignores them */
    for (const cJSON *c = item->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (!c->string)
            continue;
        if (strcmp(c->string, "dtype") == 0)
            slot = &jd;
        else if (strcmp(c->string, "shape") == 0)
            slot = &js;
        else if (strcmp(c->string, "data_offsets") == 0)
            slot = &jo;
        if (!slot)
            continue;
        if (*slot)
            return bli_err(err, BL_EFORMAT, "%s: tensor '%s': key '%s' appears twice", f->name, nm,
                           c->string);
        *slot = c;
    }
    if (!jd || !js || !jo)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': no \"%s\"", f->name, nm,
                       !jd ? "dtype" : !js ? "shape" : "data_offsets");

    if (!cJSON_IsString(jd) || !jd->valuestring)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': \"dtype\" is not a string", f->name, nm);
    const struct dtype_info *dt = find_dtype(jd->valuestring);
    if (!dt)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", f->name, nm,
                       jd->valuestring);

    if (!cJSON_IsArray(js))
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': \"shape\" is not an array", f->name, nm);
    uint64_t nel = 1;   /* product of the non-zero dimensions */
    int zero = 0, overflow = 0;
    int64_t nd = 0;
    for (const cJSON *c = js->child; c; c = c->next, nd++) {
        uint64_t d;
        if ((why = json_uint(c, &d)) != U_OK) {
            snprintf(what, sizeof what, "shape[%" PRId64 "]", nd);
            return bad_uint(err, f->name, nm, what, why, c);
        }
        if (nd < BL_MAX_DIMS)
            shape[nd] = d;
        if (d == 0)
            zero = 1;
        else if (nel > (uint64_t)INT64_MAX / d)
            overflow = 1;
        else
            nel *= d;
    }
    /* even with a 0 among them, the others multiply without overflow, so
     * the element count is an int64_t in any order (bl_tensor_nelements) */
    char sh[96];
    if (overflow || (!zero && nel > UINT64_MAX / dt->bits)) {
        fmt_shape(sh, sizeof sh, js);
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': shape %s has too many elements (the count "
                       "overflows 64 bits)", f->name, nm, sh);
    }
    if (zero)
        nel = 0;
    if (nel * dt->bits % 8) {
        fmt_shape(sh, sizeof sh, js);
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': %s %s is not a whole number of bytes",
                       f->name, nm, dt->name, sh);
    }
    uint64_t nbytes = nel * dt->bits / 8;

    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': \"data_offsets\" is not an array of two "
                       "numbers", f->name, nm);
    uint64_t off[2];
    for (int k = 0; k < 2; k++) {
        const cJSON *c = cJSON_GetArrayItem(jo, k);
        if ((why = json_uint(c, &off[k])) != U_OK) {
            snprintf(what, sizeof what, "data_offsets[%d]", k);
            return bad_uint(err, f->name, nm, what, why, c);
        }
    }
    if (off[1] < off[0])
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] end before they begin", f->name, nm, off[0], off[1]);
    if (off[1] - off[0] != nbytes) {
        fmt_shape(sh, sizeof sh, js);
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': dtype/shape/byte-size mismatch: %s %s "
                       "takes %" PRIu64 " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                       f->name, nm, dt->name, sh, nbytes, off[0], off[1], off[1] - off[0]);
    }
    size_t buf_size = f->size - f->buf_off;
    if (off[1] > (uint64_t)buf_size)
        return bli_err(err, BL_EFORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] "
                       "run past the end of the byte buffer (%zu bytes from offset %zu; file size %zu)",
                       f->name, nm, off[0], off[1], buf_size, f->buf_off, f->size);

    *dims = nd;
    e->dtype = dt->name;
    e->begin = off[0];
    e->end = off[1];
    t->type = dt->type;
    t->n_dims = nd == 0 ? 1 : (int)(nd < BL_MAX_DIMS ? nd : BL_MAX_DIMS);
    for (int d = 0; d < BL_MAX_DIMS; d++)
        t->ne[d] = 1;
    /* ne[0] innermost: the last safetensors dimension */
    for (int64_t d = 0; d < nd && nd <= BL_MAX_DIMS; d++)
        t->ne[nd - 1 - d] = (int64_t)shape[d];
    t->offset = f->buf_off + (size_t)off[0];
    t->nbytes = (size_t)nbytes;
    t->data = f->data + t->offset;
    return BL_OK;
}

static int parse_metadata(const struct st_file *f, const cJSON *item, struct table *tab, bl_err *err)
{
    if (cJSON_IsNull(item))
        return BL_OK;   /* the reference reads null as no metadata */
    if (!cJSON_IsObject(item))
        return bli_err(err, BL_EFORMAT, "%s: \"__metadata__\" is not an object", f->name);
    int64_t n = cJSON_GetArraySize(item);
    tab->meta = bli_calloc((size_t)n, sizeof *tab->meta);
    tab->meta_by_key = bli_calloc((size_t)n, sizeof *tab->meta_by_key);
    if (!tab->meta || !tab->meta_by_key)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", f->name);
    for (const cJSON *c = item->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring || !c->string)
            return bli_err(err, BL_EFORMAT, "%s: \"__metadata__\" key '%s' is not a string", f->name,
                           c->string ? c->string : "");
        struct meta *m = &tab->meta[tab->n_meta];
        m->key = bli_strdup(c->string);
        m->value = bli_strdup(c->valuestring);
        if (!m->key || !m->value) {
            free(m->key);
            free(m->value);
            m->key = m->value = NULL;
            return bli_err(err, BL_ENOMEM, "%s: out of memory", f->name);
        }
        tab->meta_by_key[tab->n_meta].s = m->key;
        tab->meta_by_key[tab->n_meta].i = tab->n_meta;
        tab->n_meta++;
    }
    const char *dup = sort_named(tab->meta_by_key, tab->n_meta);
    if (dup)
        return bli_err(err, BL_EFORMAT, "%s: \"__metadata__\" key '%s' appears twice", f->name, dup);
    return BL_OK;
}

static int cmp_range(const void *a, const void *b)
{
    const struct ent *x = *(const struct ent *const *)a, *y = *(const struct ent *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The tensors must tile the byte buffer: sorted by offsets, each starts
 * where the previous ends; the first at 0, the last at the end. */
static int check_tiling(const struct st_file *f, const struct table *tab, bl_err *err)
{
    uint64_t buf_size = f->size - f->buf_off, at = 0;
    const struct ent **by = bli_malloc_array((size_t)tab->n, sizeof *by);
    if (!by)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", f->name);
    for (int64_t i = 0; i < tab->n; i++)
        by[i] = &tab->e[i];
    if (tab->n > 1)
        qsort(by, (size_t)tab->n, sizeof *by, cmp_range);
    int rc = BL_OK;
    const char *prev = NULL;
    const struct ent *pe = NULL;
    for (int64_t i = 0; i < tab->n && !rc; i++) {
        const struct ent *e = by[i];
        const char *nm = tab->t[e - tab->e].name;
        if (e->begin < at)
            rc = bli_err(err, BL_EFORMAT, "%s: tensors '%s' and '%s' overlap: data_offsets [%" PRIu64
                         ", %" PRIu64 "] and [%" PRIu64 ", %" PRIu64 "]", f->name, prev, nm,
                         pe->begin, pe->end, e->begin, e->end);
        else if (e->begin > at)
            rc = bli_err(err, BL_EFORMAT, "%s: hole in the byte buffer: bytes %" PRIu64 " to %" PRIu64
                         " (file offsets %zu to %zu) belong to no tensor (before '%s')", f->name,
                         at, e->begin, f->buf_off + (size_t)at, f->buf_off + (size_t)e->begin, nm);
        at = e->end;
        prev = nm;
        pe = e;
    }
    if (!rc && at < buf_size)
        rc = bli_err(err, BL_EFORMAT, "%s: hole in the byte buffer: bytes %" PRIu64 " to %" PRIu64
                     " (file offsets %zu to %zu, the end of the file) belong to no tensor%s%s%s",
                     f->name, at, buf_size, f->buf_off + (size_t)at, f->size,
                     prev ? " (after '" : "", prev ? prev : "", prev ? "')" : "");
    free(by);
    return rc;
}

/* Parse file f (index `fi` among the handle's files) into tab. */
static int parse_file(struct st_file *f, int64_t fi, struct table *tab, bl_err *err)
{
    int rc;

    if (f->size < 8)
        return bli_err(err, BL_EFORMAT, "%s: file of %zu bytes is shorter than the 8-byte header "
                       "length (not a safetensors file?)", f->name, f->size);
    uint64_t n = bli_rd_u64(f->data);
    if (n > BL_SAFETENSORS_MAX_HEADER)
        return bli_err(err, BL_EFORMAT, "%s: header length %" PRIu64 " at offset 0 is absurdly large "
                       "(the limit is %u bytes; not a safetensors file?)", f->name, n,
                       BL_SAFETENSORS_MAX_HEADER);
    if (n > f->size - 8)
        return bli_err(err, BL_EFORMAT, "%s: header of %" PRIu64 " bytes at offset 8 runs past the "
                       "end of the file (size %zu; truncated?)", f->name, n, f->size);
    f->buf_off = 8 + (size_t)n;

    cJSON *root;
    if ((rc = parse_object(f->data + 8, (size_t)n, 8, f->name, "header", 1, &root, err)))
        return rc;

    int64_t n_items = cJSON_GetArraySize(root), n_meta = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        n_meta += c->string && strcmp(c->string, "__metadata__") == 0;
    if (n_meta > 1) {
        rc = bli_err(err, BL_EFORMAT, "%s: key '__metadata__' appears twice", f->name);
        goto done;
    }
    int64_t n_t = n_items - n_meta;
    tab->t = bli_calloc((size_t)n_t, sizeof *tab->t);
    tab->e = bli_calloc((size_t)n_t, sizeof *tab->e);
    tab->by_name = bli_calloc((size_t)n_t, sizeof *tab->by_name);
    if (!tab->t || !tab->e || !tab->by_name) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", f->name);
        goto done;
    }
    const char *unsupported = NULL;
    int64_t unsupported_dims = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string) {
            rc = bli_err(err, BL_EFORMAT, "%s: header has an entry without a name", f->name);
            goto done;
        }
        if (strcmp(c->string, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, c, tab, err)))
                goto done;
            continue;
        }
        int64_t i = tab->n;
        struct bl_tensor *t = &tab->t[i];
        int64_t dims = 0;
        if ((rc = parse_entry(f, c, t, &tab->e[i], &dims, err)))
            goto done;
        if (!(t->name = bli_strdup(c->string))) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", f->name);
            goto done;
        }
        tab->e[i].file = fi;
        tab->by_name[i].s = t->name;
        tab->by_name[i].i = i;
        tab->n++;
        if (dims > BL_MAX_DIMS && !unsupported) {
            unsupported = t->name;
            unsupported_dims = dims;
        }
    }
    const char *dup = sort_named(tab->by_name, tab->n);
    if (dup) {
        rc = bli_err(err, BL_EFORMAT, "%s: tensor name '%s' appears twice", f->name, dup);
        goto done;
    }
    if ((rc = check_tiling(f, tab, err)))
        goto done;
    /* well-formed: now what bitlens cannot represent */
    if (unsupported)
        rc = bli_err(err, BL_EUNSUPPORTED, "%s: tensor '%s' has %" PRId64 " dimensions (bitlens "
                     "supports 1 to %d)", f->name, unsupported, unsupported_dims, BL_MAX_DIMS);
done:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------ opening */

static bl_safetensors *alloc_handle(const char *name, int64_t n_files)
{
    bl_safetensors *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->name = bli_strdup(name);
    st->files = bli_calloc((size_t)n_files, sizeof *st->files);
    if (!st->name || !st->files) {
        free(st->name);
        free(st->files);
        free(st);
        return NULL;
    }
    st->n_files = n_files;
    return st;
}

/* Open (or take in memory) one file as a whole handle. */
static int open_single(bl_safetensors **out, const char *name, const void *data, size_t size,
                       const char *path, bl_err *err)
{
    bl_safetensors *st = alloc_handle(name, 1);
    int rc;
    *out = NULL;
    if (!st)
        return bli_err(err, BL_ENOMEM, "%s: out of memory", name);
    struct st_file *f = &st->files[0];
    if (!(f->name = bli_strdup(name))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    if (path) {
        if ((rc = bli_map_file(&f->map, path, err)))
            goto fail;
        f->data = f->map.data;
        f->size = f->map.size;
    } else {
        f->data = data;
        f->size = size;
    }
    if ((rc = parse_file(f, 0, &st->tab, err)))
        goto fail;
    *out = st;
    return BL_OK;
fail:
    bl_safetensors_free(st);
    return rc;
}

int bl_safetensors_open(bl_safetensors **out, const char *path, bl_err *err)
{
    return open_single(out, path, NULL, 0, path, err);
}

int bl_safetensors_open_memory(bl_safetensors **out, const void *data, size_t size,
                               const char *name, bl_err *err)
{
    return open_single(out, name ? name : "<memory>", data, size, NULL, err);
}

/* ---------------------------------------------------- a sharded index */

/* A shard file name the index may use: a plain name in its directory. */
static int plain_name(const char *s)
{
    return s[0] && !strchr(s, '/') && !strstr(s, "..");
}

/* Metadata candidates while an index is merged. */
struct meta_cand {
    const char *key, *value;   /* borrowed */
    int64_t order;
};

static int cmp_cand(const void *a, const void *b)
{
    const struct meta_cand *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int cmp_cand_order(const void *a, const void *b)
{
    const struct meta_cand *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

/* The scalar JSON value v as text in buf, or NULL for arrays, objects and
 * null. */
static const char *scalar_text(const cJSON *v, char *buf, size_t cap)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d > -EXACT_LIMIT && d < EXACT_LIMIT && (double)(int64_t)d == d)
            snprintf(buf, cap, "%" PRId64, (int64_t)d);
        else
            snprintf(buf, cap, "%.17g", d);
        return buf;
    }
    return NULL;
}

/* The metadata of the handle: the index's scalars, then each shard's keys
 * not yet present. */
static int merge_metadata(bl_safetensors *st, const cJSON *imeta, struct table *shards,
                          int64_t n_shards, const char *path, bl_err *err)
{
    int64_t n = 0, k = 0;
    int rc = BL_OK;
    if (imeta)
        n += cJSON_GetArraySize(imeta);
    for (int64_t s = 0; s < n_shards; s++)
        n += shards[s].n_meta;
    struct meta_cand *c = bli_calloc((size_t)n, sizeof *c);
    char (*num)[32] = bli_calloc(imeta ? (size_t)cJSON_GetArraySize(imeta) : 1, sizeof *num);
    struct table *tab = &st->tab;
    if (!c || !num) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (const cJSON *v = imeta ? imeta->child : NULL; v; v = v->next) {
        const char *txt = scalar_text(v, num[k], sizeof num[k]);
        if (txt && v->string) {
            c[k].key = v->string;
            c[k].value = txt;
            c[k].order = k;
            k++;
        }
    }
    {
        /* the index's own keys must be unique */
        struct meta_cand *tmp = bli_calloc((size_t)k, sizeof *tmp);
        if (!tmp) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(tmp, c, (size_t)k * sizeof *tmp);
        if (k > 1)
            qsort(tmp, (size_t)k, sizeof *tmp, cmp_cand);
        for (int64_t i = 1; i < k && !rc; i++)
            if (strcmp(tmp[i - 1].key, tmp[i].key) == 0)
                rc = bli_err(err, BL_EFORMAT, "%s: \"metadata\" key '%s' appears twice", path,
                             tmp[i].key);
        free(tmp);
        if (rc)
            goto done;
    }
    for (int64_t s = 0; s < n_shards; s++)
        for (int64_t i = 0; i < shards[s].n_meta; i++, k++) {
            c[k].key = shards[s].meta[i].key;
            c[k].value = shards[s].meta[i].value;
            c[k].order = k;
        }
    /* keep the first of each key, in order */
    if (k > 1)
        qsort(c, (size_t)k, sizeof *c, cmp_cand);
    int64_t m = 0;
    for (int64_t i = 0; i < k; i++)
        if (i == 0 || strcmp(c[i - 1].key, c[i].key) != 0)
            c[m++] = c[i];
    if (m > 1)
        qsort(c, (size_t)m, sizeof *c, cmp_cand_order);
    tab->meta = bli_calloc((size_t)m, sizeof *tab->meta);
    tab->meta_by_key = bli_calloc((size_t)m, sizeof *tab->meta_by_key);
    if (!tab->meta || !tab->meta_by_key) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int64_t i = 0; i < m; i++) {
        struct meta *mt = &tab->meta[i];
        mt->key = bli_strdup(c[i].key);
        mt->value = bli_strdup(c[i].value);
        if (!mt->key || !mt->value) {
            free(mt->key);
            free(mt->value);
            mt->key = mt->value = NULL;
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        tab->meta_by_key[i].s = mt->key;
        tab->meta_by_key[i].i = i;
        tab->n_meta++;
    }
    sort_named(tab->meta_by_key, tab->n_meta);
done:
    free(c);
    free(num);
    return rc;
}

/* Add to a shard's error message which index listed the shard. */
static void in_index(bl_err *err, const char *index_path)
{
    if (err) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, " (a shard of '%s')", bli_basename(index_path));
    }
}

int bl_safetensors_open_index(bl_safetensors **out, const char *path, bl_err *err)
{
    struct bli_map map = {0};
    cJSON *root = NULL;
    struct named *wm = NULL, *by_file = NULL;
    int64_t *shard_of = NULL, n_shards = 0, n = 0;
    const char **shard_names = NULL;
    struct table *shards = NULL;
    char **used = NULL;
    bl_safetensors *st = NULL;
    int rc;

    *out = NULL;
    if ((rc = bli_map_file(&map, path, err)))
        return rc;
    if (map.size > BL_SAFETENSORS_MAX_HEADER) {
        rc = bli_err(err, BL_EFORMAT, "%s: index of %zu bytes is absurdly large (the limit is %u)",
                     path, map.size, BL_SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    if ((rc = parse_object(map.data, map.size, 0, path, "index", 0, &root, err)))
        goto fail;
    bli_unmap(&map);

    const cJSON *jwm = NULL, *jmeta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        const cJSON **slot = !c->string                           ? NULL
                             : strcmp(c->string, "weight_map") == 0 ? &jwm
                             : strcmp(c->string, "metadata") == 0   ? &jmeta
                                                                    : NULL;
        if (!slot)
            continue;
        if (*slot) {
            rc = bli_err(err, BL_EFORMAT, "%s: key '%s' appears twice", path, c->string);
            goto fail;
        }
        *slot = c;
    }
    if (!jwm || !cJSON_IsObject(jwm)) {
        rc = bli_err(err, BL_EFORMAT, "%s: no \"weight_map\" object (not a safetensors index?)", path);
        goto fail;
    }
    if (jmeta && cJSON_IsNull(jmeta))
        jmeta = NULL;
    if (jmeta && !cJSON_IsObject(jmeta)) {
        rc = bli_err(err, BL_EFORMAT, "%s: \"metadata\" is not an object", path);
        goto fail;
    }

    /* the weight map: names unique, shard names plain */
    n = cJSON_GetArraySize(jwm);
    wm = bli_calloc((size_t)n, sizeof *wm);
    by_file = bli_calloc((size_t)n, sizeof *by_file);
    shard_of = bli_calloc((size_t)n, sizeof *shard_of);
    shard_names = bli_calloc((size_t)n, sizeof *shard_names);
    if (!wm || !by_file || !shard_of || !shard_names) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    int64_t i = 0;
    for (const cJSON *c = jwm->child; c; c = c->next, i++) {
        if (!c->string || !cJSON_IsString(c) || !c->valuestring) {
            rc = bli_err(err, BL_EFORMAT, "%s: weight_map entry '%s' is not a string", path,
                         c->string ? c->string : "");
            goto fail;
        }
        if (!plain_name(c->valuestring)) {
            rc = bli_err(err, BL_EFORMAT, "%s: weight_map puts tensor '%s' in '%s', which is not a "
                         "plain file name (empty, or with '/' or \"..\")", path, c->string,
                         c->valuestring);
            goto fail;
        }
        wm[i].s = c->string;
        wm[i].i = i;
        by_file[i].s = c->valuestring;
        by_file[i].i = i;
    }
    if (n == 0) {
        rc = bli_err(err, BL_EFORMAT, "%s: the weight_map is empty", path);
        goto fail;
    }
    const char *dup = sort_named(wm, n);
    if (dup) {
        rc = bli_err(err, BL_EFORMAT, "%s: tensor '%s' appears twice in the weight_map", path, dup);
        goto fail;
    }
    /* the shards, once each, in file name order */
    sort_named(by_file, n);
    for (i = 0; i < n; i++) {
        if (i == 0 || strcmp(by_file[i - 1].s, by_file[i].s) != 0)
            shard_names[n_shards++] = by_file[i].s;
        shard_of[by_file[i].i] = n_shards - 1;
    }

    if (!(st = alloc_handle(path, n_shards))) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    shards = bli_calloc((size_t)n_shards, sizeof *shards);
    used = bli_calloc((size_t)n_shards, sizeof *used);
    if (!shards || !used) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    for (int64_t s = 0; s < n_shards; s++) {
        struct st_file *f = &st->files[s];
        size_t len = dir_len + strlen(shard_names[s]) + 1;
        if (!(f->name = malloc(len))) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        memcpy(f->name, path, dir_len);
        memcpy(f->name + dir_len, shard_names[s], len - dir_len);
        if ((rc = bli_map_file(&f->map, f->name, err))) {
            in_index(err, path);
            goto fail;
        }
        f->data = f->map.data;
        f->size = f->map.size;
        if ((rc = parse_file(f, s, &shards[s], err))) {
            in_index(err, path);
            goto fail;
        }
        if (!(used[s] = bli_calloc((size_t)shards[s].n, 1))) {
            rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
    }

    /* one table in weight_map order; every tensor of every shard claimed
     * exactly once */
    struct table *tab = &st->tab;
    tab->t = bli_calloc((size_t)n, sizeof *tab->t);
    tab->e = bli_calloc((size_t)n, sizeof *tab->e);
    tab->by_name = bli_calloc((size_t)n, sizeof *tab->by_name);
    if (!tab->t || !tab->e || !tab->by_name) {
        rc = bli_err(err, BL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    i = 0;
    for (const cJSON *c = jwm->child; c; c = c->next, i++) {
        int64_t s = shard_of[i];
        int64_t k = find_named(shards[s].by_name, shards[s].n, c->string);
        if (k < 0) {
            rc = bli_err(err, BL_EFORMAT, "%s: the weight_map puts tensor '%s' in '%s', which does "
                         "not hold it", path, c->string, st->files[s].name);
            goto fail;
        }
        used[s][k] = 1;
        tab->t[i] = shards[s].t[k];
        tab->e[i] = shards[s].e[k];
        shards[s].t[k].name = NULL;   /* moved */
        tab->by_name[i].s = tab->t[i].name;
        tab->by_name[i].i = i;
        tab->n++;
    }
    for (int64_t s = 0; s < n_shards; s++)
        for (int64_t k = 0; k < shards[s].n; k++) {
            if (used[s][k])
                continue;
            const char *nm = shards[s].t[k].name;
            int64_t w = find_named(wm, n, nm);
            if (w >= 0)
                rc = bli_err(err, BL_EFORMAT, "%s: tensor '%s' is in two shards, '%s' and '%s' (the "
                             "weight_map names '%s')", path, nm, st->files[shard_of[w]].name,
                             st->files[s].name, shard_names[shard_of[w]]);
            else
                rc = bli_err(err, BL_EFORMAT, "%s: shard '%s' holds tensor '%s', which the "
                             "weight_map does not list", path, st->files[s].name, nm);
            goto fail;
        }
    sort_named(tab->by_name, tab->n);
    if ((rc = merge_metadata(st, jmeta, shards, n_shards, path, err)))
        goto fail;
    *out = st;
    st = NULL;
    rc = BL_OK;
fail:
    for (int64_t s = 0; shards && s < n_shards; s++)
        table_release(&shards[s]);
    for (int64_t s = 0; used && s < n_shards; s++)
        free(used[s]);
    free(shards);
    free(used);
    free(wm);
    free(by_file);
    free(shard_of);
    free(shard_names);
    cJSON_Delete(root);
    bli_unmap(&map);
    bl_safetensors_free(st);
    return rc;
}

/* ------------------------------------------------------------ getters */

void bl_safetensors_free(bl_safetensors *st)
{
    if (!st)
        return;
    table_release(&st->tab);
    for (int64_t i = 0; st->files && i < st->n_files; i++)
        file_release(&st->files[i]);
    free(st->files);
    free(st->name);
    free(st);
}

const char *bl_safetensors_name(const bl_safetensors *st)
{
    return st->name;
}

int64_t bl_safetensors_n_tensors(const bl_safetensors *st)
{
    return st->tab.n;
}

const struct bl_tensor *bl_safetensors_tensor(const bl_safetensors *st, int64_t i)
{
    BL_ASSERT(i >= 0 && i < st->tab.n);
    return &st->tab.t[i];
}

const struct bl_tensor *bl_safetensors_find(const bl_safetensors *st, const char *name)
{
    int64_t i = find_named(st->tab.by_name, st->tab.n, name);
    return i < 0 ? NULL : &st->tab.t[i];
}

const char *bl_safetensors_dtype(const bl_safetensors *st, int64_t i)
{
    BL_ASSERT(i >= 0 && i < st->tab.n);
    return st->tab.e[i].dtype;
}

const char *bl_safetensors_tensor_file(const bl_safetensors *st, int64_t i)
{
    BL_ASSERT(i >= 0 && i < st->tab.n);
    return st->files[st->tab.e[i].file].name;
}

const char *bl_safetensors_metadata(const bl_safetensors *st, const char *key)
{
    int64_t i = find_named(st->tab.meta_by_key, st->tab.n_meta, key);
    return i < 0 ? NULL : st->tab.meta[i].value;
}

int64_t bl_safetensors_n_metadata(const bl_safetensors *st)
{
    return st->tab.n_meta;
}

const char *bl_safetensors_metadata_key(const bl_safetensors *st, int64_t i)
{
    BL_ASSERT(i >= 0 && i < st->tab.n_meta);
    return st->tab.meta[i].key;
}

const char *bl_safetensors_metadata_value(const bl_safetensors *st, int64_t i)
{
    BL_ASSERT(i >= 0 && i < st->tab.n_meta);
    return st->tab.meta[i].value;
}
