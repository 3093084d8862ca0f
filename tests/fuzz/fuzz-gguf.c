/* tests/fuzz/fuzz-gguf.c: the GGUF reader and the GGUF vocabulary.
 *
 * The input is parsed with bl_gguf_open_memory().  If it parses, every key
 * is read with every typed getter, every array element is read (strings
 * through bl_gguf_arr_strings, numbers through bl_gguf_arr_data), the first
 * and last byte of every tensor's data is touched, and every pointer the
 * reader hands out is checked to lie inside the input.  Then the vocabulary
 * is built with bl_tokenizer_from_gguf(); if that works, every token is
 * read and decoded and a few texts (and the input's first bytes as text) are
 * encoded and decoded.
 */
#include "config.h"

#include <string.h>

#include <bitlens/gguf.h>
#include <bitlens/tokenizer.h>

#include "fuzz.h"

struct span {
    const uint8_t *lo, *hi;   /* the input */
};

static int inside(const struct span *s, const void *p, uint64_t n)
{
    const uint8_t *b = p;
    return b >= s->lo && b <= s->hi && n <= (uint64_t)(s->hi - b);
}

static size_t elem_size(int type)
{
    switch (type) {
    case BL_GGUF_UINT8: case BL_GGUF_INT8: case BL_GGUF_BOOL: return 1;
    case BL_GGUF_UINT16: case BL_GGUF_INT16: return 2;
    case BL_GGUF_UINT32: case BL_GGUF_INT32: case BL_GGUF_FLOAT32: return 4;
    case BL_GGUF_UINT64: case BL_GGUF_INT64: case BL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static void walk_array(const bl_gguf *g, const struct span *sp, const char *key)
{
    int et = -1;
    uint64_t n = 0;
    bl_err err;
    FUZZ_CHECK(bl_gguf_get_arr(g, key, &et, &n, &err) == BL_OK);
    FUZZ_CHECK(et != BL_GGUF_ARRAY);
    if (et == BL_GGUF_STRING) {
        /* the reader checked that n strings of >= 8 bytes fit in the file */
        FUZZ_CHECK(n <= (uint64_t)(sp->hi - sp->lo) / 8);
        FUZZ_CHECK(bl_gguf_arr_data(g, key) == NULL);
        struct bl_gguf_str *strs = malloc((n ? n : 1) * sizeof *strs);
        if (!strs)
            return;
        FUZZ_CHECK(bl_gguf_arr_strings(g, key, strs, n, &err) == BL_OK);
        for (uint64_t j = 0; j < n; j++) {
            FUZZ_CHECK(inside(sp, strs[j].ptr, strs[j].len));
            if (strs[j].len)
                fuzz_touch(strs[j].ptr, 1), fuzz_touch(strs[j].ptr + strs[j].len - 1, 1);
        }
        /* a shorter request reads a prefix of the same strings */
        if (n > 1) {
            struct bl_gguf_str first;
            FUZZ_CHECK(bl_gguf_arr_strings(g, key, &first, 1, &err) == BL_OK);
            FUZZ_CHECK(first.ptr == strs[0].ptr && first.len == strs[0].len);
        }
        free(strs);
        return;
    }
    size_t es = elem_size(et);
    FUZZ_CHECK(es > 0);
    FUZZ_CHECK(n <= (uint64_t)(sp->hi - sp->lo) / es);
    const unsigned char *p = bl_gguf_arr_data(g, key);
    FUZZ_CHECK(p != NULL);
    FUZZ_CHECK(inside(sp, p, n * es));
    unsigned s = 0;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t v = 0;
        memcpy(&v, p + j * es, es);
        s += (unsigned)v;
    }
    fuzz_sink += s;
    struct bl_gguf_str str;
    FUZZ_CHECK(bl_gguf_arr_strings(g, key, &str, 0, &err) == BL_EFORMAT);
}

static void walk_keys(const bl_gguf *g, const struct span *sp)
{
    int64_t n = bl_gguf_n_kv(g);
    bl_err err;
    FUZZ_CHECK(n >= 0);
    for (int64_t i = 0; i < n; i++) {
        const char *key = bl_gguf_key(g, i);
        int type = bl_gguf_kv_type(g, i);
        FUZZ_CHECK(key != NULL && key[0] != '\0');
        FUZZ_CHECK(bl_gguf_find_key(g, key) == i);   /* duplicates are rejected */
        FUZZ_CHECK(bl_gguf_type_name(type) != NULL);
        FUZZ_CHECK(type >= BL_GGUF_UINT8 && type <= BL_GGUF_FLOAT64);

        uint32_t u32;
        int64_t i64;
        float f;
        int b;
        struct bl_gguf_str s;
        int et;
        uint64_t an;
        int rc;
        rc = bl_gguf_get_u32(g, key, &u32, &err);
        FUZZ_CHECK(rc == BL_OK || rc == BL_EFORMAT);
        rc = bl_gguf_get_i64(g, key, &i64, &err);
        FUZZ_CHECK(rc == BL_OK || rc == BL_EFORMAT);
        if (rc == BL_OK && type != BL_GGUF_UINT64 && type != BL_GGUF_INT64)
            FUZZ_CHECK(i64 >= INT32_MIN && i64 <= UINT32_MAX);
        if (bl_gguf_get_u32(g, key, &u32, &err) == BL_OK)
            FUZZ_CHECK(rc == BL_OK && (int64_t)u32 == i64);
        rc = bl_gguf_get_f32(g, key, &f, &err);
        FUZZ_CHECK(rc == BL_OK || rc == BL_EFORMAT);
        FUZZ_CHECK((rc == BL_OK) == (type == BL_GGUF_FLOAT32 || type == BL_GGUF_FLOAT64));
        rc = bl_gguf_get_bool(g, key, &b, &err);
        FUZZ_CHECK(rc == BL_OK || rc == BL_EFORMAT);
        FUZZ_CHECK((rc == BL_OK) == (type == BL_GGUF_BOOL));
        if (rc == BL_OK)
            FUZZ_CHECK(b == 0 || b == 1);
        rc = bl_gguf_get_str(g, key, &s, &err);
        FUZZ_CHECK(rc == BL_OK || rc == BL_EFORMAT);
        FUZZ_CHECK((rc == BL_OK) == (type == BL_GGUF_STRING));
        if (rc == BL_OK) {
            FUZZ_CHECK(inside(sp, s.ptr, s.len));
            fuzz_touch(s.ptr, s.len);
        }
        rc = bl_gguf_get_arr(g, key, &et, &an, &err);
        FUZZ_CHECK(rc == BL_OK || rc == BL_EFORMAT);
        FUZZ_CHECK((rc == BL_OK) == (type == BL_GGUF_ARRAY));
        if (rc == BL_OK)
            walk_array(g, sp, key);
        else
            FUZZ_CHECK(bl_gguf_arr_data(g, key) == NULL);
    }
    /* a key that is absent (unless the input holds it: any name can be a key) */
    uint32_t u;
    static const char absent[] = "fuzz.no such key";
    int64_t ai = bl_gguf_find_key(g, absent);
    if (ai >= 0)
        FUZZ_CHECK(ai < n && strcmp(bl_gguf_key(g, ai), absent) == 0);
    else
        FUZZ_CHECK(bl_gguf_get_u32(g, absent, &u, NULL) == BL_ENOTFOUND);
}

static void walk_tensors(const bl_gguf *g, const struct span *sp)
{
    int64_t n = bl_gguf_n_tensors(g);
    size_t data_off = bl_gguf_data_offset(g);
    FUZZ_CHECK(n >= 0);
    if (n > 0)
        FUZZ_CHECK(data_off <= (size_t)(sp->hi - sp->lo));
    for (int64_t i = 0; i < n; i++) {
        const struct bl_tensor *t = bl_gguf_tensor(g, i);
        FUZZ_CHECK(t->name != NULL && t->name[0] != '\0');
        FUZZ_CHECK(bl_gguf_find_tensor(g, t->name) == t);   /* names are unique */
        FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= BL_MAX_DIMS);
        FUZZ_CHECK(bl_dtype_name(t->type) != NULL);
        int64_t nel = 1;
        for (int d = 0; d < BL_MAX_DIMS; d++) {
            FUZZ_CHECK(t->ne[d] >= 1);
            if (d >= t->n_dims)
                FUZZ_CHECK(t->ne[d] == 1);
            FUZZ_CHECK(t->ne[d] <= INT64_MAX / nel);
            nel *= t->ne[d];
        }
        FUZZ_CHECK(bl_tensor_nelements(t) == nel);
        size_t row = bl_dtype_row_bytes(t->type, t->ne[0]);
        FUZZ_CHECK(row > 0);
        FUZZ_CHECK(t->nbytes / row == (size_t)(nel / t->ne[0]) && t->nbytes % row == 0);
        FUZZ_CHECK(t->offset >= data_off);
        FUZZ_CHECK((const uint8_t *)t->data == sp->lo + t->offset);
        FUZZ_CHECK(inside(sp, t->data, t->nbytes));
        if (t->nbytes) {
            const uint8_t *d = t->data;
            fuzz_touch(d, 1);
            fuzz_touch(d + t->nbytes - 1, 1);
        }
    }
    const struct bl_tensor *t = bl_gguf_find_tensor(g, "fuzz.no such tensor");
    FUZZ_CHECK(t == NULL || strcmp(t->name, "fuzz.no such tensor") == 0);
}

static void walk_vocab(const bl_gguf *g, const uint8_t *data, size_t size)
{
    bl_tokenizer *t = NULL;
    bl_err err;
    int rc = bl_tokenizer_from_gguf(&t, g, &err);
    if (rc) {
        FUZZ_CHECK(t == NULL && rc < 0);
        return;
    }
    FUZZ_REACHED(FZ_TOKENIZER);
    uint64_t n;
    int et;
    FUZZ_CHECK(bl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, NULL) == BL_OK);
    FUZZ_CHECK(bl_tokenizer_n_vocab(t) == (int64_t)n);
    fuzz_walk_tokenizer(t);
    fuzz_encode_texts(t, data, size);
    FUZZ_REACHED(FZ_ENCODED);
    bl_tokenizer_free(t);
}

int FUZZ_ENTRY(gguf)(const uint8_t *data, size_t size)
{
    bl_gguf *g = NULL;
    bl_err err;
    err.msg[0] = '\0';
    int rc = bl_gguf_open_memory(&g, data, size, "fuzz.gguf", &err);
    if (rc) {
        FUZZ_CHECK(g == NULL && rc < 0);
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        return 0;
    }
    FUZZ_REACHED(FZ_PARSED);
    struct span sp = {data, data + size};
    FUZZ_CHECK(bl_gguf_version(g) == 2 || bl_gguf_version(g) == 3);
    FUZZ_CHECK(bl_gguf_file_size(g) == size);
    FUZZ_CHECK(strcmp(bl_gguf_name(g), "fuzz.gguf") == 0);
    walk_keys(g, &sp);
    walk_tensors(g, &sp);
    walk_vocab(g, data, size);
    bl_gguf_free(g);
    return 0;
}
