/* tests/test-safetensors.c: the safetensors reader (lib/safetensors.c).
 *
 * Files come from two sources that share nothing with the reader: the test
 * writer tests/stwrite.c (written from the format description), and bytes
 * put together by hand here, the length prefix written out byte by byte.
 * Malformed files are small hand-written headers, one per rule the reader
 * enforces (bitlens/safetensors.h lists them).
 *
 * Sections:
 *   1. round trip        F32/F16/BF16 tensors of 0 (scalar) to 4 dims,
 *                        metadata with escapes, other dtypes (type -1), an
 *                        empty tensor; file (mmap) and memory
 *   2. by hand           a file built byte by byte, tensors out of buffer
 *                        order, no header padding (unaligned data)
 *   3. accepted corners  "{}", null metadata, unknown keys, ggml mappings
 *   4. sharded           two shards and an index read as one table
 *   5. errors            every check of the reader, status and message
 *   6. index errors      every check of the index reader
 *   7. robustness        every prefix, every header byte changed
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bitlens/safetensors.h>

#include "tap.h"
#include "testutil.h"
#include "stwrite.h"

/* ------------------------------------------------------------ helpers */

/* 8-byte little-endian length, the header text, then nbuf bytes of buf. */
static unsigned char *mk(const char *header, const void *buf, size_t nbuf, size_t *n)
{
    size_t h = strlen(header);
    unsigned char *p = malloc(8 + h + nbuf + 1);
    if (!p)
        exit(99);
    for (int k = 0; k < 8; k++)
        p[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(p + 8, header, h);
    if (nbuf)
        memcpy(p + 8 + h, buf, nbuf);
    *n = 8 + h + nbuf;
    return p;
}

static unsigned char zeros[4096];

/* Open header+buffer from memory (an exactly sized heap copy, so ASan sees
 * any read past the end); expect status `code` and `phrase` in the message
 * (and the name, which every message starts with). */
static void expect_raw(const unsigned char *data, size_t n, int code, const char *phrase,
                       const char *what)
{
    bl_safetensors *st = (bl_safetensors *)1;
    bl_err err = {0, ""};
    unsigned char *copy = malloc(n ? n : 1);
    if (!copy)
        exit(99);
    memcpy(copy, data, n);
    int rc = bl_safetensors_open_memory(&st, copy, n, "bad.safetensors", &err);
    int good = rc == code && st == NULL && err.code == code && strstr(err.msg, phrase) &&
               strncmp(err.msg, "bad.safetensors: ", 17) == 0;
    ok(good, "%s: %s", what, bl_strerror(code));
    if (!good)
        diag("rc %d (%s), message \"%s\", wanted \"%s\"", rc, bl_strerror(rc), err.msg, phrase);
    else
        diag("%s", err.msg);
    bl_safetensors_free(rc ? NULL : st);
    free(copy);
}

static void expect_fail(const char *header, size_t nbuf, int code, const char *phrase,
                        const char *what)
{
    size_t n;
    unsigned char *d = mk(header, zeros, nbuf, &n);
    expect_raw(d, n, code, phrase, what);
    free(d);
}

/* Open header+buffer from memory, expecting success. */
static bl_safetensors *open_ok(const unsigned char *data, size_t n, const char *what)
{
    bl_safetensors *st = NULL;
    bl_err err = {0, ""};
    int rc = bl_safetensors_open_memory(&st, data, n, what, &err);
    if (rc) {
        diag("%s: rc %d: %s", what, rc, err.msg);
        return NULL;
    }
    return st;
}

/* Values that expose a transposition or an off-by-one: all different,
 * exactly representable in f16 and bf16 (8 significant bits or fewer). */
static float val(int tensor, int64_t i)
{
    return (float)((i * 7 + tensor * 13) % 61 - 30) * 0.25f + (float)tensor;
}

/* Little-endian bytes of n f32 values stored as dtype. */
static void encode(const char *dtype, const float *v, int64_t n, unsigned char *out)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        if (strcmp(dtype, "F32") == 0) {
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++)
                out[4 * i + k] = (unsigned char)(u >> (8 * k));
        } else {
            u = strcmp(dtype, "F16") == 0 ? bl_f32_to_f16(v[i]) : bl_f32_to_bf16(v[i]);
            out[2 * i] = (unsigned char)u;
            out[2 * i + 1] = (unsigned char)(u >> 8);
        }
    }
}

/* Every tensor inside [base, base+size), sizes consistent, find() agrees,
 * first and last byte readable; returns 1 if all hold. */
static int walk(const bl_safetensors *st, const unsigned char *base, size_t size)
{
    int good = 1;
    for (int64_t i = 0; i < bl_safetensors_n_tensors(st); i++) {
        const struct bl_tensor *t = bl_safetensors_tensor(st, i);
        good &= t->name != NULL && bl_safetensors_find(st, t->name) == t;
        good &= t->n_dims >= 1 && t->n_dims <= BL_MAX_DIMS;
        good &= bl_safetensors_dtype(st, i) != NULL;
        good &= t->offset <= size && t->nbytes <= size - t->offset;
        good &= (const unsigned char *)t->data == base + t->offset;
        if (t->nbytes) {
            volatile unsigned char a = ((const unsigned char *)t->data)[0];
            volatile unsigned char b = ((const unsigned char *)t->data)[t->nbytes - 1];
            (void)a;
            (void)b;
        }
    }
    for (int64_t i = 0; i < bl_safetensors_n_metadata(st); i++) {
        const char *k = bl_safetensors_metadata_key(st, i);
        good &= k && bl_safetensors_metadata(st, k) == bl_safetensors_metadata_value(st, i);
    }
    return good;
}

/* ------------------------------------------------------ 1. round trip */

struct rt {
    const char *name, *dtype;
    int n_dims;
    int64_t shape[4];   /* outermost first */
};

static const struct rt rts[] = {
    {"scalar", "F32", 0, {0}},
    {"model.norm.weight", "F32", 1, {7}},
    {"model.layers.0.mlp.up_proj.weight", "F16", 2, {3, 5}},
    {"cube.bf16", "BF16", 3, {2, 3, 4}},
    {"hyper", "F32", 4, {2, 1, 3, 2}},
    {"vec.f16", "F16", 1, {1}},
    {"mat.bf16", "BF16", 2, {4, 2}},
};
#define N_RT (sizeof rts / sizeof rts[0])

static int64_t rt_nel(const struct rt *r)
{
    int64_t n = 1;
    for (int d = 0; d < r->n_dims; d++)
        n *= r->shape[d];
    return n;
}

static int check_round_trip(const bl_safetensors *st, const unsigned char *base, size_t size,
                            float **vals, const char *how)
{
    int good = 1;
    static const uint8_t u8[6] = {0, 1, 2, 250, 251, 255};
    ok(bl_safetensors_n_tensors(st) == (int64_t)N_RT + 3, "%s: %d tensors", how, (int)N_RT + 3);
    for (size_t i = 0; i < N_RT; i++) {
        const struct rt *r = &rts[i];
        const struct bl_tensor *t = bl_safetensors_tensor(st, (int64_t)i);
        int64_t n = rt_nel(r);
        int es = strcmp(r->dtype, "F32") == 0 ? 4 : 2;
        int type = strcmp(r->dtype, "F32") == 0 ? 0 : strcmp(r->dtype, "F16") == 0 ? 1 : 30;
        int g = strcmp(t->name, r->name) == 0 && bl_safetensors_find(st, r->name) == t &&
                strcmp(bl_safetensors_dtype(st, (int64_t)i), r->dtype) == 0 && t->type == type;
        /* ne reversed: ne[0] is the last shape entry; a scalar is {1} */
        g &= t->n_dims == (r->n_dims ? r->n_dims : 1);
        for (int d = 0; d < BL_MAX_DIMS; d++) {
            int64_t want = d < r->n_dims ? r->shape[r->n_dims - 1 - d] : 1;
            g &= t->ne[d] == want;
        }
        g &= bl_tensor_nelements(t) == n && t->nbytes == (size_t)(n * es);
        g &= (const unsigned char *)t->data == base + t->offset && t->offset + t->nbytes <= size;
        unsigned char *want = malloc((size_t)(n * es));
        encode(r->dtype, vals[i], n, want);
        g &= memcmp(t->data, want, (size_t)(n * es)) == 0;
        free(want);
        /* and as numbers: element [.., r, c] at row-major position */
        float *f = malloc((size_t)n * sizeof *f);
        bl_to_f32(t->type, t->data, f, n);
        for (int64_t k = 0; k < n; k++)
            g &= f[k] == vals[i][k];
        free(f);
        ok(g, "%s: '%s' %s %d-d: name, dtype, type %d, ne reversed, bytes and values", how, r->name,
           r->dtype, r->n_dims, type);
        good &= g;
    }
    /* a row of the F16 [3, 5] matrix: ne = {5, 3}, row 1 is elements 5..9 */
    const struct bl_tensor *m = bl_safetensors_find(st, "model.layers.0.mlp.up_proj.weight");
    float row[5];
    bl_to_f32(m->type, (const unsigned char *)m->data + 1 * m->ne[0] * 2, row, 5);
    ok(row[0] == vals[2][5] && row[4] == vals[2][9] && m->ne[0] == 5 && m->ne[1] == 3,
       "%s: [3, 5] matrix: ne {5, 3}, row 1 holds elements 5..9", how);

    const struct bl_tensor *b = bl_safetensors_find(st, "flags.u8");
    int64_t bi = -1;
    for (int64_t i = 0; i < bl_safetensors_n_tensors(st); i++)
        if (bl_safetensors_tensor(st, i) == b)
            bi = i;
    ok(b && bi >= 0 && b->type == -1 && strcmp(bl_safetensors_dtype(st, bi), "U8") == 0 &&
           b->nbytes == 6 && memcmp(b->data, u8, 6) == 0 && b->n_dims == 2 && b->ne[0] == 3 &&
           b->ne[1] == 2,
       "%s: U8 [2, 3] kept with type -1, its 6 bytes intact", how);
    const struct bl_tensor *e = bl_safetensors_find(st, "empty");
    ok(e && e->nbytes == 0 && e->n_dims == 2 && e->ne[0] == 0 && e->ne[1] == 3 &&
           bl_tensor_nelements(e) == 0,
       "%s: empty F32 [3, 0]: ne {0, 3}, 0 bytes", how);
    const struct bl_tensor *f4 = bl_safetensors_find(st, "packed.f4");
    ok(f4 && f4->type == -1 && f4->nbytes == 3 && f4->ne[0] == 6,
       "%s: F4 [6] (4-bit elements) is 3 bytes, type -1", how);

    ok(bl_safetensors_n_metadata(st) == 3 && strcmp(bl_safetensors_metadata(st, "format"), "pt") == 0 &&
           strcmp(bl_safetensors_metadata(st, "note"), "a \"quoted\" \\ back\nslash caf\xc3\xa9") == 0 &&
           strcmp(bl_safetensors_metadata(st, "empty"), "") == 0 &&
           strcmp(bl_safetensors_metadata_key(st, 0), "format") == 0 &&
           strcmp(bl_safetensors_metadata_key(st, 2), "empty") == 0 &&
           bl_safetensors_metadata(st, "absent") == NULL,
       "%s: metadata: 3 keys in file order, escapes decoded, absent key is NULL", how);
    ok(bl_safetensors_find(st, "nope") == NULL && bl_safetensors_find(st, "") == NULL &&
           bl_safetensors_find(st, "scalarx") == NULL,
       "%s: find() of absent names is NULL", how);
    ok(walk(st, base, size), "%s: every tensor inside the file", how);
    return good;
}

static void test_round_trip(const char *dir)
{
    stw *w = stw_alloc();
    float *vals[N_RT];
    int added = 1;
    stw_meta(w, "format", "pt");
    stw_meta(w, "note", "a \"quoted\" \\ back\nslash caf\xc3\xa9");
    stw_meta(w, "empty", "");
    for (size_t i = 0; i < N_RT; i++) {
        int64_t n = rt_nel(&rts[i]);
        vals[i] = malloc((size_t)n * sizeof(float));
        for (int64_t k = 0; k < n; k++)
            vals[i][k] = val((int)i, k);
        added &= stw_add_f32(w, rts[i].name, rts[i].dtype, rts[i].n_dims, rts[i].shape, vals[i]) == 0;
    }
    static const uint8_t u8[6] = {0, 1, 2, 250, 251, 255};
    static const uint8_t f4[3] = {0x12, 0x34, 0x56};
    const int64_t s23[2] = {2, 3}, s30[2] = {3, 0}, s6[1] = {6};
    added &= stw_add(w, "flags.u8", "U8", 2, s23, u8, 6) == 0;
    added &= stw_add(w, "empty", "F32", 2, s30, NULL, 0) == 0;
    added &= stw_add(w, "packed.f4", "F4", 1, s6, f4, 3) == 0;
    ok(added, "writer took every tensor");

    size_t n;
    unsigned char *img = stw_build(w, &n);
    bl_safetensors *st = open_ok(img, n, "round-trip.safetensors");
    ok(st != NULL, "round trip from memory opens");
    if (st) {
        check_round_trip(st, img, n, vals, "memory");
        ok(bl_safetensors_tensor(st, 0)->offset % 8 == 0,
           "memory: the writer padded the header to 8 bytes: first tensor at offset %zu",
           bl_safetensors_tensor(st, 0)->offset);
        ok(strcmp(bl_safetensors_name(st), "round-trip.safetensors") == 0 &&
               strcmp(bl_safetensors_tensor_file(st, 0), "round-trip.safetensors") == 0,
           "memory: name and tensor_file are the given name");
        bl_safetensors_free(st);
    }

    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ok(stw_write(w, path) == 0, "writer writes %s", path);
    bl_err err = {0, ""};
    st = NULL;
    int rc = bl_safetensors_open(&st, path, &err);
    ok(rc == 0 && st, "round trip from a file (mmap) opens: %s", rc ? err.msg : "ok");
    if (st) {
        const unsigned char *base = (const unsigned char *)bl_safetensors_tensor(st, 0)->data -
                                    bl_safetensors_tensor(st, 0)->offset;
        check_round_trip(st, base, n, vals, "file");
        ok(strcmp(bl_safetensors_name(st), path) == 0, "file: name is the path");
        bl_safetensors_free(st);
    }
    /* the file bytes are the builder's bytes */
    size_t fn;
    unsigned char *fd = read_file(path, &fn);
    ok(fd && fn == n && memcmp(fd, img, n) == 0, "stw_write wrote what stw_build built (%zu bytes)", n);
    free(fd);

    /* without header padding the data is unaligned, and still read */
    stw_set_align(w, 1);
    free(img);
    img = stw_build(w, &n);
    st = open_ok(img, n, "unpadded.safetensors");
    int odd = 0;
    if (st) {
        for (int64_t i = 0; i < bl_safetensors_n_tensors(st); i++)
            odd |= bl_safetensors_tensor(st, i)->offset % 4 != 0;
        check_round_trip(st, img, n, vals, "unpadded");
        bl_safetensors_free(st);
    }
    ok(st && odd, "unpadded header: some tensor data is not 4-byte aligned, and reads the same");
    free(img);
    for (size_t i = 0; i < N_RT; i++)
        free(vals[i]);
    stw_free(w);
}

/* ------------------------------------------------------------ 2. by hand */

static void test_by_hand(void)
{
    /* The format, literally: an 8-byte little-endian N, N bytes of JSON,
     * then the buffer.  Tensor "b" is listed first but stored second; the
     * header is 153 bytes (not a multiple of 8), so the data is unaligned. */
    static const char hdr[] =
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
        "\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[0,4]}}";
    size_t h = sizeof hdr - 1;
    unsigned char file[8 + sizeof hdr - 1 + 12];
    memset(file, 0, sizeof file);
    file[0] = (unsigned char)(h & 0xFF);   /* N, little-endian */
    file[1] = (unsigned char)(h >> 8);
    memcpy(file + 8, hdr, h);
    unsigned char *buf = file + 8 + h;
    /* a: f16 1.0 = 0x3C00, -2.0 = 0xC000 */
    buf[0] = 0x00, buf[1] = 0x3C, buf[2] = 0x00, buf[3] = 0xC0;
    /* b: f32 0.5 = 0x3F000000, 3.0 = 0x40400000 */
    buf[4] = 0x00, buf[5] = 0x00, buf[6] = 0x00, buf[7] = 0x3F;
    buf[8] = 0x00, buf[9] = 0x00, buf[10] = 0x40, buf[11] = 0x40;

    bl_safetensors *st = open_ok(file, sizeof file, "hand.safetensors");
    ok(st != NULL, "hand-built file (header %zu bytes, %zu in all) opens", h, sizeof file);
    if (!st)
        return;
    const struct bl_tensor *a = bl_safetensors_tensor(st, 1), *b = bl_safetensors_tensor(st, 0);
    ok(bl_safetensors_n_tensors(st) == 2 && strcmp(b->name, "b") == 0 && strcmp(a->name, "a") == 0,
       "two tensors, in header order (b, a)");
    float fa[2], fb[2];
    bl_to_f32(a->type, a->data, fa, 2);
    bl_to_f32(b->type, b->data, fb, 2);
    ok(a->type == 1 && a->n_dims == 2 && a->ne[0] == 1 && a->ne[1] == 2 && a->offset == 8 + h &&
           a->nbytes == 4 && fa[0] == 1.0f && fa[1] == -2.0f,
       "a: F16 [2, 1] -> ne {1, 2}, at offset %zu, values 1 and -2", 8 + h);
    ok(b->type == 0 && b->n_dims == 1 && b->ne[0] == 2 && b->offset == 8 + h + 4 && b->nbytes == 8 &&
           fb[0] == 0.5f && fb[1] == 3.0f,
       "b: F32 [2] at offset %zu (unaligned), values 0.5 and 3", 8 + h + 4);
    ok(strcmp(bl_safetensors_metadata(st, "format"), "pt") == 0 && bl_safetensors_n_metadata(st) == 1,
       "metadata between tensors is read");
    bl_safetensors_free(st);
}

/* ---------------------------------------------------- 3. accepted corners */

static void test_accepted(void)
{
    size_t n;
    unsigned char *d;
    bl_safetensors *st;

    d = mk("{}", NULL, 0, &n);
    st = open_ok(d, n, "empty");
    ok(st && bl_safetensors_n_tensors(st) == 0 && bl_safetensors_n_metadata(st) == 0,
       "\"{}\" and no buffer: no tensors, no metadata");
    bl_safetensors_free(st);
    free(d);

    d = mk("{\"__metadata__\":null,\"x\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3],"
           "\"extra\":[1,{}]}}   \n\t ", zeros, 3, &n);
    st = open_ok(d, n, "null-metadata");
    ok(st && bl_safetensors_n_metadata(st) == 0 && bl_safetensors_n_tensors(st) == 1 &&
           bl_safetensors_tensor(st, 0)->type == 24,
       "null __metadata__, an unknown key in an entry, trailing whitespace: accepted");
    bl_safetensors_free(st);
    free(d);

    /* every dtype: ggml number or -1, and its size */
    static const struct {
        const char *dtype;
        int type;
        size_t bytes;   /* of 4 elements */
    } m[] = {
        {"F32", 0, 16},  {"F16", 1, 8},     {"BF16", 30, 8},   {"F64", 28, 32},  {"I8", 24, 4},
        {"I16", 25, 8},  {"I32", 26, 16},   {"I64", 27, 32},   {"U8", -1, 4},    {"U16", -1, 8},
        {"U32", -1, 16}, {"U64", -1, 32},   {"BOOL", -1, 4},   {"C64", -1, 32},  {"F8_E4M3", -1, 4},
        {"F8_E5M2", -1, 4}, {"F8_E8M0", -1, 4}, {"F8_E4M3FNUZ", -1, 4}, {"F8_E5M2FNUZ", -1, 4},
        {"F6_E2M3", -1, 3}, {"F6_E3M2", -1, 3}, {"F4", -1, 2},
    };
    int good = 1;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        char h[200];
        snprintf(h, sizeof h, "{\"t\":{\"dtype\":\"%s\",\"shape\":[4],\"data_offsets\":[0,%zu]}}",
                 m[i].dtype, m[i].bytes);
        d = mk(h, zeros, m[i].bytes, &n);
        st = open_ok(d, n, m[i].dtype);
        int g = st && bl_safetensors_tensor(st, 0)->type == m[i].type &&
                bl_safetensors_tensor(st, 0)->nbytes == m[i].bytes &&
                strcmp(bl_safetensors_dtype(st, 0), m[i].dtype) == 0 &&
                stw_dtype_bits(m[i].dtype) * 4 == 8 * m[i].bytes;
        if (!g)
            diag("dtype %s", m[i].dtype);
        good &= g;
        bl_safetensors_free(st);
        free(d);
    }
    ok(good, "all %zu dtypes of the format: ggml type numbers (F32 0, F16 1, BF16 30, F64 28, "
       "I8..I64 24..27), the rest -1, sizes from the element size", sizeof m / sizeof m[0]);

    /* the largest exact integer is still accepted as a number (then fails
     * as out of the buffer, not as inexact) */
    expect_fail("{\"t\":{\"dtype\":\"U8\",\"shape\":[9007199254740991],"
                "\"data_offsets\":[0,9007199254740991]}}",
                0, BL_EFORMAT, "run past the end of the byte buffer", "2^53 - 1 is an exact offset");

    /* empty tensors anywhere in the tiling; a zero dim with a huge one */
    d = mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"z\":{\"dtype\":\"F32\",\"shape\":[0,2147483648,2147483648],\"data_offsets\":[4,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
           "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
           zeros, 8, &n);
    st = open_ok(d, n, "empties");
    ok(st && bl_safetensors_n_tensors(st) == 4 && bl_safetensors_find(st, "z")->nbytes == 0 &&
           bl_tensor_nelements(bl_safetensors_find(st, "z")) == 0 && bl_safetensors_find(st, "e")->offset == n,
       "empty tensors between and after the others, one with other dimensions of 2^31");
    bl_safetensors_free(st);
    free(d);
}

/* ------------------------------------------------------------ 4. sharded */

static void test_sharded(const char *dir)
{
    char p1[4200], p2[4200], pi[4200];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(pi, sizeof pi, "%s/model.safetensors.index.json", dir);
    float a[6], b[4], c[3];
    for (int i = 0; i < 6; i++)
        a[i] = val(1, i);
    for (int i = 0; i < 4; i++)
        b[i] = val(2, i);
    for (int i = 0; i < 3; i++)
        c[i] = val(3, i);
    const int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3};
    stw *w1 = stw_alloc(), *w2 = stw_alloc();
    stw_meta(w1, "format", "pt");
    stw_meta(w2, "format", "np");
    stw_meta(w2, "shard2", "yes");
    stw_add_f32(w1, "model.embed_tokens.weight", "BF16", 2, s23, a);
    stw_add_f32(w1, "model.norm.weight", "F32", 1, s3, c);
    stw_add_f32(w2, "lm_head.weight", "F16", 1, s4, b);
    uint64_t total = stw_data_size(w1) + stw_data_size(w2);
    int wrote = stw_write(w1, p1) == 0 && stw_write(w2, p2) == 0;
    const char *names[] = {"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"};
    const char *files[] = {"model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors",
                           "model-00001-of-00002.safetensors"};
    wrote &= stw_write_index(pi, names, files, 3, total) == 0;
    ok(wrote, "two shards and an index written");

    bl_safetensors *st = NULL;
    bl_err err = {0, ""};
    int rc = bl_safetensors_open_index(&st, pi, &err);
    ok(rc == 0 && st, "index opens: %s", rc ? err.msg : "ok");
    if (!st)
        return;
    int good = bl_safetensors_n_tensors(st) == 3;
    for (int i = 0; i < 3 && good; i++)
        good &= strcmp(bl_safetensors_tensor(st, i)->name, names[i]) == 0;
    ok(good, "3 tensors, in weight_map order");
    const struct bl_tensor *ta = bl_safetensors_find(st, "model.embed_tokens.weight");
    const struct bl_tensor *tb = bl_safetensors_find(st, "lm_head.weight");
    const struct bl_tensor *tc = bl_safetensors_find(st, "model.norm.weight");
    float fa[6], fb[4], fc[3];
    if (ta && tb && tc) {
        bl_to_f32(ta->type, ta->data, fa, 6);
        bl_to_f32(tb->type, tb->data, fb, 4);
        bl_to_f32(tc->type, tc->data, fc, 3);
    }
    ok(ta && tb && tc && ta->type == 30 && ta->ne[0] == 3 && ta->ne[1] == 2 && tb->type == 1 &&
           tc->type == 0 && memcmp(fa, a, sizeof a) == 0 && memcmp(fb, b, sizeof b) == 0 &&
           memcmp(fc, c, sizeof c) == 0,
       "tensors of both shards: types, shapes, values");
    ok(strcmp(bl_safetensors_tensor_file(st, 0), p2) == 0 && strcmp(bl_safetensors_tensor_file(st, 1), p1) == 0,
       "tensor_file names each tensor's shard");
    char tot[32];
    snprintf(tot, sizeof tot, "%" PRIu64, total);
    ok(strcmp(bl_safetensors_metadata(st, "total_size"), tot) == 0 &&
           strcmp(bl_safetensors_metadata(st, "format"), "pt") == 0 &&
           strcmp(bl_safetensors_metadata(st, "shard2"), "yes") == 0 && bl_safetensors_n_metadata(st) == 3 &&
           strcmp(bl_safetensors_metadata_key(st, 0), "total_size") == 0,
       "metadata: index total_size as text (%s), then the shards' keys, first shard wins", tot);
    ok(strcmp(bl_safetensors_name(st), pi) == 0, "name is the index path");
    bl_safetensors_free(st);
    stw_free(w1);
    stw_free(w2);

    /* an index in the current directory (no '/' in its path) */
    char cwd[4200];
    if (getcwd(cwd, sizeof cwd) && chdir(dir) == 0) {
        rc = bl_safetensors_open_index(&st, "model.safetensors.index.json", &err);
        ok(rc == 0 && bl_safetensors_n_tensors(st) == 3 &&
               strcmp(bl_safetensors_tensor_file(st, 0), "model-00002-of-00002.safetensors") == 0,
           "index given without a directory reads shards from the current one");
        bl_safetensors_free(rc ? NULL : st);
        if (chdir(cwd) != 0)
            diag("cannot return to %s", cwd);
    }
}

/* ------------------------------------------------------------ 5. errors */

#define T(s) "{\"t\":{\"dtype\":\"F32\",\"shape\":" s ",\"data_offsets\":[0,0]}}"

static void test_errors(const char *dir)
{
    unsigned char small[8] = {0};
    for (size_t n = 0; n < 8; n++)
        expect_raw(small, n, BL_EFORMAT, "shorter than the 8-byte", n == 0 ? "empty file" : "file under 8 bytes");

    unsigned char big[16] = {0x01, 0xE1, 0xF5, 0x05, 0, 0, 0, 0};   /* 100000001 */
    expect_raw(big, sizeof big, BL_EFORMAT, "absurdly large", "header length 100000001");
    unsigned char huge[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, '{', '}'};
    expect_raw(huge, sizeof huge, BL_EFORMAT, "absurdly large", "header length 2^64 - 1");
    unsigned char past[16] = {9, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    expect_raw(past, sizeof past, BL_EFORMAT, "runs past the end of the file",
               "header length 9 with 8 bytes left");
    unsigned char nul[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' '};
    expect_raw(nul, sizeof nul, BL_EFORMAT, "NUL byte at offset 10", "a NUL byte in the header");

    expect_fail("", 0, BL_EFORMAT, "not valid JSON", "empty header (N = 0)");
    expect_fail("{\"t\":", 0, BL_EFORMAT, "not valid JSON", "header cut short");
    expect_fail("{\"t\":{}} x", 0, BL_EFORMAT, "bytes after its JSON value, at offset 17", "bytes after the object");
    expect_fail("{} {}", 0, BL_EFORMAT, "bytes after its JSON value", "two objects");
    expect_fail("[1]", 0, BL_EFORMAT, "is not a JSON object", "header is an array");
    expect_fail("\"x\"", 0, BL_EFORMAT, "is not a JSON object", "header is a string");
    expect_fail(" {}", 0, BL_EFORMAT, "must start with '{'", "leading space");
    expect_fail("{\"caf\xc3\":{}}", 0, BL_EFORMAT, "not valid UTF-8 (byte 0xc3 at offset 13)", "cut UTF-8");
    expect_fail("{\"\xc0\xaf\":{}}", 0, BL_EFORMAT, "not valid UTF-8", "overlong UTF-8");
    expect_fail("{\"\xed\xa0\x80\":{}}", 0, BL_EFORMAT, "not valid UTF-8", "UTF-8 surrogate");
    expect_fail("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, BL_EFORMAT,
                "escaped NUL (\\u0000) at offset 11", "escaped NUL in a name");
    /* "\\u0000" is a backslash then text: accepted */
    size_t n;
    unsigned char *d = mk("{\"a\\\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", NULL, 0, &n);
    bl_safetensors *st = open_ok(d, n, "backslash");
    ok(st && bl_safetensors_find(st, "a\\u0000b") != NULL, "an escaped backslash before u0000 is not a NUL");
    bl_safetensors_free(st);
    free(d);

    expect_fail("{\"t\":[1]}", 0, BL_EFORMAT, "tensor 't': entry is not a JSON object", "entry is an array");
    expect_fail("{\"t\":7}", 0, BL_EFORMAT, "tensor 't': entry is not a JSON object", "entry is a number");
    expect_fail("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BL_EFORMAT, "tensor 't': no \"dtype\"",
                "missing dtype");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, BL_EFORMAT, "tensor 't': no \"shape\"",
                "missing shape");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, BL_EFORMAT, "tensor 't': no \"data_offsets\"",
                "missing data_offsets");
    expect_fail("{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BL_EFORMAT,
                "\"dtype\" is not a string", "dtype is a number");
    expect_fail("{\"t\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BL_EFORMAT,
                "tensor 't': unknown dtype 'F128'", "unknown dtype");
    expect_fail("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BL_EFORMAT,
                "unknown dtype 'f32'", "dtype names are case-sensitive");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                BL_EFORMAT, "tensor 't': key 'dtype' appears twice", "dtype twice in an entry");
    expect_fail(T("{}"), 0, BL_EFORMAT, "\"shape\" is not an array", "shape is an object");
    expect_fail(T("[2,-1]"), 0, BL_EFORMAT, "shape[1] = -1 is not a non-negative integer", "negative dimension");
    expect_fail(T("[2.5]"), 0, BL_EFORMAT, "shape[0] = 2.5 is not a non-negative integer", "fractional dimension");
    expect_fail(T("[\"2\"]"), 0, BL_EFORMAT, "shape[0] is not a number", "dimension is a string");
    expect_fail(T("[9007199254740992]"), 0, BL_EFORMAT, "shape[0] = 9007199254740992 is at or above 2^53",
                "dimension 2^53");
    expect_fail(T("[1e300]"), 0, BL_EFORMAT, "above 2^53", "dimension 1e300");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                BL_EFORMAT, "overflows 64 bits", "shape product overflows");
    expect_fail("{\"t\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                BL_EFORMAT, "overflows 64 bits", "shape product 2^64 overflows");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0,
                BL_EFORMAT, "overflows 64 bits", "an empty shape whose other dimensions overflow");
    expect_fail("{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1, BL_EFORMAT,
                "F4 [3] is not a whole number of bytes", "3 F4 elements");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, BL_EFORMAT,
                "\"data_offsets\" is not an array of two numbers", "one offset");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, BL_EFORMAT,
                "not an array of two numbers", "three offsets");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0,\"b\":4}}}", 4, BL_EFORMAT,
                "not an array of two numbers", "offsets as an object");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, BL_EFORMAT,
                "data_offsets[0] = -4 is not a non-negative integer", "negative offset");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,null]}}", 4, BL_EFORMAT,
                "data_offsets[1] is not a number", "null offset");
    expect_fail("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9007199254740993,9007199254740994]}}", 1,
                BL_EFORMAT, "data_offsets[0] = 9007199254740992 is at or above 2^53", "offset 2^53 + 1 (inexact)");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, BL_EFORMAT,
                "data_offsets [4, 0] end before they begin", "begin > end");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 8, BL_EFORMAT,
                "data_offsets [0, 12] run past the end of the byte buffer (8 bytes", "end past the buffer");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, BL_EFORMAT,
                "dtype/shape/byte-size mismatch: F32 [2, 3] takes 24 bytes but data_offsets [0, 20] hold 20",
                "size mismatch");
    expect_fail("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, BL_EFORMAT,
                "byte-size mismatch", "F32-sized BF16");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, BL_EFORMAT, "tensors 'a' and 'b' overlap: data_offsets [0, 8] and [4, 12]", "overlap");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                8, BL_EFORMAT, "overlap", "two tensors on the same bytes");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                8, BL_EFORMAT, "overlap", "empty tensor inside another");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12, BL_EFORMAT, "hole in the byte buffer: bytes 4 to 8", "hole between tensors");
    expect_fail("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, BL_EFORMAT,
                "hole in the byte buffer: bytes 0 to 4", "hole before the first tensor");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5, BL_EFORMAT,
                "bytes 4 to 5 (file offsets", "a trailing byte after the last tensor");
    expect_fail("{}", 3, BL_EFORMAT, "hole in the byte buffer: bytes 0 to 3", "buffer bytes with no tensor");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, BL_EFORMAT, "tensor name 'a' appears twice", "duplicate tensor name");
    expect_fail("{\"__metadata__\":{},\"__metadata__\":{}}", 0, BL_EFORMAT, "key '__metadata__' appears twice",
                "duplicate __metadata__");
    expect_fail("{\"__metadata__\":[\"pt\"]}", 0, BL_EFORMAT, "\"__metadata__\" is not an object",
                "__metadata__ is an array");
    expect_fail("{\"__metadata__\":\"pt\"}", 0, BL_EFORMAT, "\"__metadata__\" is not an object",
                "__metadata__ is a string");
    expect_fail("{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0, BL_EFORMAT,
                "\"__metadata__\" key 'n' is not a string", "metadata value a number");
    expect_fail("{\"__metadata__\":{\"k\":{}}}", 0, BL_EFORMAT, "key 'k' is not a string", "metadata value an object");
    expect_fail("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, BL_EFORMAT,
                "\"__metadata__\" key 'k' appears twice", "duplicate metadata key");
    expect_fail("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,2]}}", 2, BL_EUNSUPPORTED,
                "tensor 't' has 5 dimensions (bitlens supports 1 to 4)", "5-d tensor");
    /* a malformed file with a 5-d tensor is malformed first */
    expect_fail("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,2]}}", 3, BL_EFORMAT,
                "hole", "5-d tensor in a file with a hole");
    /* deep nesting is refused by cJSON's nesting limit, not the stack */
    {
        char deep[4200];
        size_t o = 0;
        o += (size_t)snprintf(deep, sizeof deep, "{\"__metadata__\":");
        for (int i = 0; i < 2000; i++)
            deep[o++] = '[';
        deep[o] = '\0';
        expect_fail(deep, 0, BL_EFORMAT, "not valid JSON", "2000 nested arrays");
    }

    bl_err err = {0, ""};
    st = (bl_safetensors *)1;
    char path[4200];
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    int rc = bl_safetensors_open(&st, path, &err);
    ok(rc == BL_EIO && st == NULL && strstr(err.msg, "absent.safetensors: cannot open"),
       "a missing file: BL_EIO naming it (%s)", err.msg);
    rc = bl_safetensors_open(&st, dir, &err);
    ok(rc == BL_EIO && strstr(err.msg, "is a directory"), "a directory: BL_EIO (%s)", err.msg);
    /* a message names the path of a mapped file */
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    d = mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros, 2, &n);
    write_file(path, d, n);
    free(d);
    rc = bl_safetensors_open(&st, path, &err);
    ok(rc == BL_EFORMAT && strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, "run past the end"),
       "a truncated file on disk: the message starts with its path");
    rc = bl_safetensors_open(&st, path, NULL);
    ok(rc == BL_EFORMAT && st == NULL, "a NULL bl_err is allowed");
}

/* ------------------------------------------------------ 6. index errors */

static void write_text(const char *path, const char *text)
{
    if (write_file(path, text, strlen(text)) != 0)
        diag("cannot write %s", path);
}

static void expect_index(const char *dir, const char *json, int code, const char *phrase, const char *what)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/test.index.json", dir);
    write_text(path, json);
    bl_safetensors *st = (bl_safetensors *)1;
    bl_err err = {0, ""};
    int rc = bl_safetensors_open_index(&st, path, &err);
    int good = rc == code && (code ? st == NULL : st != NULL) && strstr(code ? err.msg : "", phrase) != NULL;
    ok(good, "index: %s: %s", what, bl_strerror(code));
    if (!good)
        diag("rc %d, message \"%s\", wanted \"%s\"", rc, err.msg, phrase);
    else if (rc)
        diag("%s", err.msg);
    bl_safetensors_free(rc ? NULL : st);
}

static void test_index_errors(const char *dir)
{
    char p[4200];
    /* shards: A holds x and y, B holds y and z, C holds w */
    static const float v[2] = {1, 2};
    const int64_t s2[1] = {2};
    const char *sets[3][2] = {{"x", "y"}, {"y", "z"}, {"w", NULL}};
    const char *fn[3] = {"A.safetensors", "B.safetensors", "C.safetensors"};
    for (int s = 0; s < 3; s++) {
        stw *w = stw_alloc();
        for (int k = 0; k < 2 && sets[s][k]; k++)
            stw_add_f32(w, sets[s][k], "F32", 1, s2, v);
        snprintf(p, sizeof p, "%s/%s", dir, fn[s]);
        stw_write(w, p);
        stw_free(w);
    }
    snprintf(p, sizeof p, "%s/broken.safetensors", dir);
    static const char broken[] = "\x04\0\0\0\0\0\0\0{\"a\"";
    write_file(p, broken, sizeof broken - 1);

    expect_index(dir, "{\"weight_map\":{\"w\":\"C.safetensors\"}}", BL_OK, "", "a valid one-shard index");
    expect_index(dir, "{\"weight_map\":{\"x\":\"A.safetensors\",\"q\":\"A.safetensors\",\"y\":\"A.safetensors\"}}",
                 BL_EFORMAT, "puts tensor 'q' in '", "a listed tensor absent from its shard");
    expect_index(dir, "{\"weight_map\":{\"x\":\"A.safetensors\",\"y\":\"A.safetensors\",\"z\":\"B.safetensors\"}}",
                 BL_EFORMAT, "tensor 'y' is in two shards", "a tensor in two shards");
    expect_index(dir, "{\"weight_map\":{\"x\":\"A.safetensors\"}}", BL_EFORMAT,
                 "holds tensor 'y', which the weight_map does not list", "a shard tensor not listed");
    expect_index(dir, "{\"weight_map\":{\"x\":\"A.safetensors\",\"x\":\"A.safetensors\",\"y\":\"A.safetensors\"}}",
                 BL_EFORMAT, "tensor 'x' appears twice in the weight_map", "a name twice in the weight_map");
    expect_index(dir, "{\"weight_map\":{\"x\":\"../A.safetensors\"}}", BL_EFORMAT, "not a plain file name",
                 "a shard name with ..");
    expect_index(dir, "{\"weight_map\":{\"x\":\"/tmp/A.safetensors\"}}", BL_EFORMAT, "not a plain file name",
                 "an absolute shard path");
    expect_index(dir, "{\"weight_map\":{\"x\":\"sub/A.safetensors\"}}", BL_EFORMAT, "not a plain file name",
                 "a shard in a subdirectory");
    expect_index(dir, "{\"weight_map\":{\"x\":\"\"}}", BL_EFORMAT, "not a plain file name", "an empty shard name");
    expect_index(dir, "{\"weight_map\":{\"x\":3}}", BL_EFORMAT, "weight_map entry 'x' is not a string",
                 "a shard name that is a number");
    expect_index(dir, "{\"weight_map\":{\"x\":\"missing.safetensors\"}}", BL_EIO, "missing.safetensors: cannot open",
                 "a missing shard");
    expect_index(dir, "{\"weight_map\":{\"a\":\"broken.safetensors\"}}", BL_EFORMAT,
                 "broken.safetensors: header is not valid JSON", "a malformed shard, named by its path");
    expect_index(dir, "{\"metadata\":{}}", BL_EFORMAT, "no \"weight_map\" object", "no weight_map");
    expect_index(dir, "{\"weight_map\":[\"A.safetensors\"]}", BL_EFORMAT, "no \"weight_map\" object",
                 "weight_map is an array");
    expect_index(dir, "{\"weight_map\":{}}", BL_EFORMAT, "the weight_map is empty", "an empty weight_map");
    expect_index(dir, "{\"weight_map\":{\"w\":\"C.safetensors\"},\"weight_map\":{}}", BL_EFORMAT,
                 "key 'weight_map' appears twice", "weight_map twice");
    expect_index(dir, "{\"metadata\":[],\"weight_map\":{\"w\":\"C.safetensors\"}}", BL_EFORMAT,
                 "\"metadata\" is not an object", "metadata is an array");
    expect_index(dir, "{\"metadata\":{\"a\":1,\"a\":2},\"weight_map\":{\"w\":\"C.safetensors\"}}", BL_EFORMAT,
                 "\"metadata\" key 'a' appears twice", "a metadata key twice");
    expect_index(dir, "{\"weight_map\":{\"w\":\"C.safetensors\"}", BL_EFORMAT, "index is not valid JSON",
                 "cut JSON");
    expect_index(dir, "", BL_EFORMAT, "index is not valid JSON", "an empty index");
    expect_index(dir, "[]", BL_EFORMAT, "index is not a JSON object", "an array");

    bl_safetensors *st = (bl_safetensors *)1;
    bl_err err = {0, ""};
    snprintf(p, sizeof p, "%s/no.index.json", dir);
    int rc = bl_safetensors_open_index(&st, p, &err);
    ok(rc == BL_EIO && st == NULL && strstr(err.msg, "no.index.json: cannot open"), "index: a missing index: BL_EIO");

    /* metadata scalars as text, objects skipped */
    snprintf(p, sizeof p, "%s/test.index.json", dir);
    write_text(p, "{\"metadata\":{\"total_size\":8,\"ratio\":0.5,\"ok\":true,\"s\":\"x\",\"o\":{},\"n\":null},"
                  "\"weight_map\":{\"w\":\"C.safetensors\"}}");
    rc = bl_safetensors_open_index(&st, p, &err);
    ok(rc == 0 && strcmp(bl_safetensors_metadata(st, "total_size"), "8") == 0 &&
           strcmp(bl_safetensors_metadata(st, "ratio"), "0.5") == 0 &&
           strcmp(bl_safetensors_metadata(st, "ok"), "true") == 0 && strcmp(bl_safetensors_metadata(st, "s"), "x") == 0 &&
           bl_safetensors_metadata(st, "o") == NULL && bl_safetensors_metadata(st, "n") == NULL &&
           bl_safetensors_n_metadata(st) == 4,
       "index metadata: numbers, booleans and strings as text; objects and null left out");
    bl_safetensors_free(rc ? NULL : st);
}

/* ------------------------------------------------------- 7. robustness */

static void test_robust(void)
{
    stw *w = stw_alloc();
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = val(0, i);
    const int64_t s34[2] = {3, 4}, s2[1] = {2}, s0[1] = {0};
    stw_meta(w, "format", "pt");
    stw_add_f32(w, "w", "F16", 2, s34, v);
    stw_add_f32(w, "b", "F32", 1, s2, v);
    stw_add_f32(w, "e", "BF16", 1, s0, v);
    size_t n;
    unsigned char *img = stw_build(w, &n);
    stw_free(w);
    size_t hdr = 8;
    for (int k = 0; k < 8; k++)
        hdr += (size_t)img[k] << (8 * k);

    int good = 1;
    for (size_t len = 0; len < n; len++) {
        unsigned char *c = malloc(len ? len : 1);
        memcpy(c, img, len);
        bl_safetensors *st = (bl_safetensors *)1;
        bl_err err = {0, ""};
        int rc = bl_safetensors_open_memory(&st, c, len, "prefix", &err);
        int g = rc == BL_EFORMAT && st == NULL && strncmp(err.msg, "prefix: ", 8) == 0;
        if (!g && good)
            diag("prefix of %zu bytes: rc %d: %s", len, rc, err.msg);
        good &= g;
        free(c);
    }
    ok(good, "all %zu proper prefixes of a valid file fail with BL_EFORMAT and a message", n);

    static const unsigned char masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF};
    size_t runs = 0, opened = 0;
    good = 1;
    unsigned char *c = malloc(n);
    for (size_t off = 0; off < hdr; off++)
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(c, img, n);
            c[off] ^= masks[k];
            bl_safetensors *st = NULL;
            bl_err err = {0, ""};
            int rc = bl_safetensors_open_memory(&st, c, n, "flip", &err);
            runs++;
            if (rc == 0) {
                opened++;
                good &= walk(st, c, n);
                bl_safetensors_free(st);
            } else {
                int g = (rc == BL_EFORMAT || rc == BL_EUNSUPPORTED) && st == NULL && err.msg[0];
                if (!g && good)
                    diag("byte %zu ^ 0x%02x: rc %d: %s", off, masks[k], rc, err.msg);
                good &= g;
            }
        }
    ok(good, "%zu single-byte changes of the length and header: clean errors, or (%zu) files "
       "whose every tensor lies inside", runs, opened);

    /* random bytes over the header, from a fixed seed */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    good = 1;
    for (int r = 0; r < 3000; r++) {
        memcpy(c, img, n);
        int k = 1 + r % 6;
        for (int j = 0; j < k; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t off = 8 + (size_t)(s % (hdr - 8));
            static const char pick[] = "{}[]\",:0123456789-.e \\u";
            c[off] = (unsigned char)pick[(s >> 32) % (sizeof pick - 1)];
        }
        bl_safetensors *st = NULL;
        bl_err err = {0, ""};
        int rc = bl_safetensors_open_memory(&st, c, n, "mutant", &err);
        if (rc == 0) {
            good &= walk(st, c, n);
            bl_safetensors_free(st);
        } else {
            good &= (rc == BL_EFORMAT || rc == BL_EUNSUPPORTED) && err.msg[0];
        }
    }
    ok(good, "3000 headers with JSON punctuation sprinkled in: clean errors or sound tables");
    free(c);
    free(img);
}

int main(void)
{
    char *dir = tmp_dir();
    if (!dir) {
        printf("Bail out! cannot make a temporary directory\n");
        return 1;
    }
    test_round_trip(dir);
    test_by_hand();
    test_accepted();
    test_sharded(dir);
    test_errors(dir);
    test_index_errors(dir);
    test_robust();
    rm_rf(dir);
    free(dir);
    return done_testing();
}
