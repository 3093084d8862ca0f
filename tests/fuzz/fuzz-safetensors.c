/* tests/fuzz/fuzz-safetensors.c: the safetensors reader on arbitrary bytes.
 *
 * The input is opened with bl_safetensors_open_memory().  A failure must
 * come with BL_EFORMAT, BL_EUNSUPPORTED or BL_ENOMEM, no handle and a
 * message that starts with the name.  A success is held to every promise
 * of bitlens/safetensors.h: each tensor inside the input and at
 * data == input + offset (first and last byte read), nbytes = element size
 * * element count of its dtype, the ggml type the dtype maps to, ne in
 * range with unused dimensions 1, find() returning it; the tensors tiling
 * the byte buffer exactly (sorted by offset, each starts where the previous
 * ends, the last ends at the end of the input); every metadata key found
 * with its value.
 *
 * An input that starts with '{' is also written as an index
 * (model.safetensors.index.json) into a temporary directory that holds two
 * fixed valid shards, model-00001-of-00002.safetensors (tensors "a", "b")
 * and model-00002-of-00002.safetensors ("c", metadata "format"), and opened
 * with bl_safetensors_open_index(): the same checks, less the ones that
 * need the shard's bytes.  The directory is made for each such input and
 * removed after it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bitlens/safetensors.h>

#include "fuzz.h"

/* The format's dtypes: size in bits, ggml type (-1: none).  Written here
 * from the format description, not taken from the library. */
static int dtype_info(const char *s, unsigned *bits)
{
    static const struct {
        const char *name;
        unsigned bits;
        int type;
    } t[] = {
        {"F32", 32, 0},   {"F16", 16, 1},    {"BF16", 16, 30},  {"F64", 64, 28},
        {"I8", 8, 24},    {"I16", 16, 25},   {"I32", 32, 26},   {"I64", 64, 27},
        {"U8", 8, -1},    {"U16", 16, -1},   {"U32", 32, -1},   {"U64", 64, -1},
        {"BOOL", 8, -1},  {"C64", 64, -1},   {"F8_E4M3", 8, -1}, {"F8_E5M2", 8, -1},
        {"F8_E8M0", 8, -1}, {"F8_E4M3FNUZ", 8, -1}, {"F8_E5M2FNUZ", 8, -1},
        {"F6_E2M3", 6, -1}, {"F6_E3M2", 6, -1}, {"F4", 4, -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, s) == 0) {
            *bits = t[i].bits;
            return t[i].type;
        }
    *bits = 0;
    return -2;
}

struct span {
    size_t off, n;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

/* Check the handle; data/size is the file when it is a single one. */
static void check(const bl_safetensors *st, const uint8_t *data, size_t size)
{
    int64_t n = bl_safetensors_n_tensors(st);
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK(bl_safetensors_name(st) != NULL);
    struct span *sp = data ? malloc((size_t)(n ? n : 1) * sizeof *sp) : NULL;
    for (int64_t i = 0; i < n; i++) {
        const struct bl_tensor *t = bl_safetensors_tensor(st, i);
        FUZZ_CHECK(t != NULL && t->name != NULL);
        FUZZ_CHECK(bl_safetensors_find(st, t->name) == t);
        FUZZ_CHECK(bl_safetensors_tensor_file(st, i) != NULL);
        const char *dt = bl_safetensors_dtype(st, i);
        FUZZ_CHECK(dt != NULL);
        unsigned bits;
        int type = dtype_info(dt, &bits);
        FUZZ_CHECK(type != -2);
        FUZZ_CHECK(t->type == type);
        FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= BL_MAX_DIMS);
        uint64_t nel = 1;
        int zero = 0;
        for (int d = 0; d < BL_MAX_DIMS; d++) {
            FUZZ_CHECK(t->ne[d] >= 0);
            FUZZ_CHECK(d < t->n_dims || t->ne[d] == 1);
            zero |= t->ne[d] == 0;
        }
        for (int d = 0; d < BL_MAX_DIMS && !zero; d++) {
            /* the data is inside the input: no product can overflow */
            FUZZ_CHECK(nel <= UINT64_MAX / (uint64_t)t->ne[d]);
            nel *= (uint64_t)t->ne[d];
        }
        if (zero)
            nel = 0;
        FUZZ_CHECK(nel <= UINT64_MAX / bits && nel * bits % 8 == 0);
        FUZZ_CHECK(t->nbytes == nel * bits / 8);
        if (type >= 0 && nel)
            FUZZ_CHECK(bl_dtype_row_bytes(type, t->ne[0]) * (nel / (uint64_t)t->ne[0]) == t->nbytes);
        if (data) {
            FUZZ_CHECK(t->offset >= 8 && t->offset <= size && t->nbytes <= size - t->offset);
            FUZZ_CHECK((const uint8_t *)t->data == data + t->offset);
            sp[i].off = t->offset;
            sp[i].n = t->nbytes;
        }
        if (t->nbytes) {
            fuzz_touch(t->data, 1);
            fuzz_touch((const uint8_t *)t->data + t->nbytes - 1, 1);
        }
        if (type == BL_F32 || type == BL_F16 || type == BL_BF16) {
            float f[16];
            int64_t k = nel < 16 ? (int64_t)nel : 16;
            bl_to_f32(type, t->data, f, k);
            fuzz_touch(f, (size_t)k * sizeof *f);
        }
    }
    if (data) {
        /* the tensors tile the byte buffer: 8 + N up to the end */
        size_t at = 8 + (size_t)(data[0] | (uint64_t)data[1] << 8 | (uint64_t)data[2] << 16 |
                                 (uint64_t)data[3] << 24 | (uint64_t)data[4] << 32 |
                                 (uint64_t)data[5] << 40 | (uint64_t)data[6] << 48 |
                                 (uint64_t)data[7] << 56);
        if (n > 1)
            qsort(sp, (size_t)n, sizeof *sp, cmp_span);
        for (int64_t i = 0; i < n; i++) {
            FUZZ_CHECK(sp[i].off == at);
            at += sp[i].n;
        }
        FUZZ_CHECK(at == size);
        free(sp);
    }
    int64_t m = bl_safetensors_n_metadata(st);
    FUZZ_CHECK(m >= 0);
    for (int64_t i = 0; i < m; i++) {
        const char *k = bl_safetensors_metadata_key(st, i), *v = bl_safetensors_metadata_value(st, i);
        FUZZ_CHECK(k != NULL && v != NULL);
        FUZZ_CHECK(bl_safetensors_metadata(st, k) == v);
        fuzz_touch(k, strlen(k));
        fuzz_touch(v, strlen(v));
    }
}

/* ------------------------------------------------- the index directory */

static const char *const shard_names[2] = {"model-00001-of-00002.safetensors",
                                           "model-00002-of-00002.safetensors"};

static int write_all(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = n && fwrite(d, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

/* A shard in dir: length, header, buffer. */
static int write_shard(const char *dir, const char *name, const char *header, const uint8_t *buf,
                       size_t nbuf)
{
    uint8_t file[512];
    char p[700];
    size_t h = strlen(header);
    if (8 + h + nbuf > sizeof file)
        return -1;
    for (int k = 0; k < 8; k++)
        file[k] = (uint8_t)((uint64_t)h >> (8 * k));
    memcpy(file + 8, header, h);
    memcpy(file + 8 + h, buf, nbuf);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return write_all(p, file, 8 + h + nbuf);
}

/* The input as an index beside the two shards, in a directory made for
 * this input and removed after it (so an aborted run leaves nothing but
 * the directory of the input that crashed). */
static void run_index(const uint8_t *data, size_t size)
{
    static const uint8_t b1[12] = {0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0, 0x00, 0x3C, 0x00, 0xBC};
    static const uint8_t b2[6] = {0x80, 0x3F, 0x00, 0x40, 0x40, 0x40};
    const char *tmp = getenv("TMPDIR");
    char dir[512], p[700];
    snprintf(dir, sizeof dir, "%s/bitlens-fuzz-st-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (write_shard(dir, shard_names[0],
                    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[8,12]}}",
                    b1, sizeof b1) == 0 &&
        write_shard(dir, shard_names[1],
                    "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"c\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]}}",
                    b2, sizeof b2) == 0 &&
        write_all(p, data, size) == 0) {
        bl_safetensors *st = (bl_safetensors *)1;
        bl_err err = {0, ""};
        int rc = bl_safetensors_open_index(&st, p, &err);
        if (rc) {
            FUZZ_CHECK(rc == BL_EFORMAT || rc == BL_EUNSUPPORTED || rc == BL_EIO || rc == BL_ENOMEM);
            FUZZ_CHECK(st == NULL);
            FUZZ_CHECK(err.code == rc && strncmp(err.msg, dir, strlen(dir)) == 0);
        } else {
            FUZZ_REACHED(FZ_PARSED);
            check(st, NULL, 0);
            bl_safetensors_free(st);
        }
    }
    unlink(p);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, shard_names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int FUZZ_ENTRY(safetensors)(const uint8_t *data, size_t size)
{
    bl_safetensors *st = (bl_safetensors *)1;
    bl_err err = {0, ""};
    int rc = bl_safetensors_open_memory(&st, data, size, "fuzz", &err);
    if (rc) {
        FUZZ_CHECK(rc == BL_EFORMAT || rc == BL_EUNSUPPORTED || rc == BL_ENOMEM);
        FUZZ_CHECK(st == NULL);
        FUZZ_CHECK(err.code == rc && strncmp(err.msg, "fuzz: ", 6) == 0);
    } else {
        FUZZ_REACHED(FZ_PARSED);
        check(st, data, size);
        bl_safetensors_free(st);
    }
    if (size > 0 && data[0] == '{')
        run_index(data, size);
    return 0;
}
