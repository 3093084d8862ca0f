/* tests/test-gguf.c: the GGUF reader (lib/gguf.c) and writer
 * (lib/gguf_write.c).
 *
 * Expected bytes and offsets come from the layout in bitlens/gguf.h (the
 * GGUF v3 spec), built here by hand with a little-endian byte builder that
 * shares nothing with the library: type numbers are the spec's literals, not
 * the header's enums.  Malformed files are made by patching a hand-built
 * valid file (whose bytes are first shown equal to the writer's output) at
 * offsets recorded while building it, or by building them whole.
 *
 * Sections:
 *   1. spec constants            the header's enums against the spec numbers
 *   2. exact writer bytes        a tiny file, byte for byte (literal)
 *   3. hand-built files read     every scalar and array type, alignment 16,
 *                                version 2, an empty file of 24 bytes
 *   4. round trip                every writer setter, f32/f16/bf16 tensors of
 *                                1..4 dims, alignment 32 and 64, set twice,
 *                                file and memory, temp-name writes
 *   5. typed getters             not found, wrong type, range, widening
 *   6. writer argument checks    EINVAL for what it cannot write
 *   7. error paths of the reader one test per check in lib/gguf.c
 *   8. truncation                every prefix of a valid file
 *   9. hostile sizes             10^6 keys claimed / present, timed
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bitlens/gguf.h>

#include "tap.h"

/* GGUF value types and ggml tensor types, as numbered by the spec. */
enum {
    GT_U8 = 0, GT_I8 = 1, GT_U16 = 2, GT_I16 = 3, GT_U32 = 4, GT_I32 = 5,
    GT_F32 = 6, GT_BOOL = 7, GT_STR = 8, GT_ARR = 9, GT_U64 = 10, GT_I64 = 11,
    GT_F64 = 12
};
enum { TT_F32 = 0, TT_F16 = 1, TT_Q8_0 = 8, TT_BF16 = 30 };

/* ------------------------------------------------------------------ helpers */

/* A growing byte buffer with explicit little-endian stores (independent of
 * the host byte order and of the library). */
struct buf {
    unsigned char *p;
    size_t n, cap;
};

static void b_raw(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            fprintf(stderr, "out of memory\n");
            exit(99);
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void b_u8(struct buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    b_raw(b, &c, 1);
}

static void b_le(struct buf *b, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++)
        b_u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static void b_u16(struct buf *b, uint16_t v) { b_le(b, v, 2); }
static void b_u32(struct buf *b, uint32_t v) { b_le(b, v, 4); }
static void b_u64(struct buf *b, uint64_t v) { b_le(b, v, 8); }

/* GGUF string: uint64 length, then the bytes */
static void b_strn(struct buf *b, const char *s, size_t n)
{
    b_u64(b, n);
    b_raw(b, s, n);
}

static void b_str(struct buf *b, const char *s) { b_strn(b, s, strlen(s)); }

static void b_zeros(struct buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b_u8(b, 0);
}

static void b_align(struct buf *b, size_t a)
{
    while (b->n % a)
        b_u8(b, 0);
}

static void b_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static void p_u32(unsigned char *p, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[off + i] = (unsigned char)(v >> (8 * i));
}

static void p_u64(unsigned char *p, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[off + i] = (unsigned char)(v >> (8 * i));
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Deterministic bytes that differ per seed and per position. */
static void fill_bytes(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Temporary directories (local: this test links no testutil.c). */
static char *make_tmp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    if (!p)
        return NULL;
    snprintf(p, 4096, "%s/bitlens-test-gguf-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Names in dir (excluding . and ..), joined by spaces, sorted order not
 * guaranteed; returns the count. */
static int list_dir(const char *dir, char *names, size_t cap)
{
    DIR *d = opendir(dir);
    int n = 0;
    names[0] = '\0';
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n)
            strncat(names, " ", cap - strlen(names) - 1);
        strncat(names, e->d_name, cap - strlen(names) - 1);
        n++;
    }
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    struct buf b = {0};
    unsigned char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, fp)) > 0)
        b_raw(&b, tmp, k);
    fclose(fp);
    if (!b.p)
        b.p = malloc(1);
    *n = b.n;
    return b.p;
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    int bad = n && fwrite(p, 1, n, fp) != n;
    if (fclose(fp) != 0)
        bad = 1;
    return bad ? -1 : 0;
}

/* Writer output captured in memory. */
static int writer_bytes(bl_gguf_writer *w, unsigned char **out, size_t *n, bl_err *err)
{
    char *p = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&p, &len);
    if (!fp)
        return -1000;
    int rc = bl_gguf_writer_write_fp(w, fp, err);
    fclose(fp);
    *out = (unsigned char *)p;
    *n = len;
    return rc;
}

/* An exact-size heap copy, so ASan sees any read past the end. */
static unsigned char *exact_copy(const unsigned char *p, size_t n)
{
    unsigned char *q = malloc(n ? n : 1);
    if (!q)
        exit(99);
    if (n)
        memcpy(q, p, n);
    return q;
}

static size_t first_diff(const unsigned char *a, size_t na, const unsigned char *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return i;
    return n;
}

/* Writer output `got` equals `want`, except that zero padding up to the
 * next multiple of `align` after the last tensor is allowed (the spec does
 * not say whether the file ends padded). */
static int same_bytes(const unsigned char *got, size_t ngot, const unsigned char *want,
                      size_t nwant, size_t align, const char *what)
{
    int same = ngot >= nwant && memcmp(got, want, nwant) == 0;
    if (same && ngot > nwant) {
        if (ngot - nwant >= align || (ngot % align) != 0)
            same = 0;
        for (size_t i = nwant; i < ngot && same; i++)
            if (got[i])
                same = 0;
        if (same)
            diag("%s: writer adds %zu bytes of trailing padding", what, ngot - nwant);
    }
    if (!same) {
        size_t d = first_diff(got, ngot, want, nwant);
        diag("%s: %zu bytes written, %zu expected; first difference at offset %zu "
             "(got 0x%02x, want 0x%02x)",
             what, ngot, nwant, d, d < ngot ? got[d] : 0, d < nwant ? want[d] : 0);
    }
    return same;
}

/* Open a malformed image from memory; it must fail with `want`, a message
 * starting with the name and containing p1 (and p2 if not NULL). */
static void expect_fail(const unsigned char *img, size_t n, int want, const char *p1,
                        const char *p2, const char *what)
{
    unsigned char *copy = exact_copy(img, n);
    bl_gguf *g = (bl_gguf *)&g;   /* must be reset to NULL */
    bl_err err = {0, "(no message)"};
    int rc = bl_gguf_open_memory(&g, copy, n, "bad.gguf", &err);
    int good = rc == want && g == NULL && err.code == want &&
               strncmp(err.msg, "bad.gguf: ", 10) == 0 && strstr(err.msg, p1) &&
               (!p2 || strstr(err.msg, p2));
    ok(good, "%s: %s, message names it", what, bl_strerror(want));
    if (!good)
        diag("  got status %d (%s), message '%s'; want '%s'%s%s%s", rc, bl_strerror(rc), err.msg,
             p1, p2 ? " and '" : "", p2 ? p2 : "", p2 ? "'" : "");
    if (rc == BL_OK && g && g != (bl_gguf *)&g)
        bl_gguf_free(g);
    free(copy);
}

/* ------------------------------------------------- 1. spec constants */

static void test_constants(void)
{
    int good = BL_GGUF_UINT8 == 0 && BL_GGUF_INT8 == 1 && BL_GGUF_UINT16 == 2 &&
               BL_GGUF_INT16 == 3 && BL_GGUF_UINT32 == 4 && BL_GGUF_INT32 == 5 &&
               BL_GGUF_FLOAT32 == 6 && BL_GGUF_BOOL == 7 && BL_GGUF_STRING == 8 &&
               BL_GGUF_ARRAY == 9 && BL_GGUF_UINT64 == 10 && BL_GGUF_INT64 == 11 &&
               BL_GGUF_FLOAT64 == 12;
    ok(good, "gguf value type numbers are the spec's (uint8=0 .. float64=12)");
    ok(BL_F32 == 0 && BL_F16 == 1 && BL_BF16 == 30, "ggml tensor types f32=0 f16=1 bf16=30");
    ok(BL_GGUF_MAGIC == 0x46554747u && BL_GGUF_DEFAULT_ALIGNMENT == 32,
       "magic 0x46554747 (\"GGUF\" little-endian), default alignment 32");
    ok(strcmp(bl_gguf_type_name(GT_U32), "uint32") == 0 &&
       strcmp(bl_gguf_type_name(GT_F64), "float64") == 0 &&
       strcmp(bl_gguf_type_name(GT_STR), "string") == 0 &&
       strcmp(bl_gguf_type_name(13), "unknown") == 0 &&
       strcmp(bl_gguf_type_name(-1), "unknown") == 0,
       "bl_gguf_type_name names types and says 'unknown' out of range");
}

/* ------------------------------------------------- 2. exact writer bytes */

static void test_exact_tiny(void)
{
    /* key "a" = uint32 7; tensor "t" f32 ne {2} = {1.0, -2.0} */
    static const unsigned char want[] = {
        'G', 'G', 'U', 'F',                     /* magic */
        3, 0, 0, 0,                             /* version 3 */
        1, 0, 0, 0, 0, 0, 0, 0,                 /* n_tensors 1 */
        1, 0, 0, 0, 0, 0, 0, 0,                 /* n_kv 1 */
        1, 0, 0, 0, 0, 0, 0, 0, 'a',            /* key "a" */
        4, 0, 0, 0,                             /* type uint32 */
        7, 0, 0, 0,                             /* 7 */
        1, 0, 0, 0, 0, 0, 0, 0, 't',            /* tensor name "t" (offset 41) */
        1, 0, 0, 0,                             /* n_dims 1 */
        2, 0, 0, 0, 0, 0, 0, 0,                 /* ne[0] 2 */
        0, 0, 0, 0,                             /* type f32 */
        0, 0, 0, 0, 0, 0, 0, 0,                 /* offset 0 (header ends at 74) */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 22 bytes of padding to 96 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x00, 0x80, 0x3f,                 /* 1.0f */
        0x00, 0x00, 0x00, 0xc0,                 /* -2.0f */
    };
    ok(sizeof want == 104, "hand-built tiny file is 104 bytes (74 header + 22 padding + 8 data)");

    bl_gguf_writer *w = bl_gguf_writer_alloc();
    const float data[2] = {1.0f, -2.0f};
    const int64_t ne[1] = {2};
    int rc = bl_gguf_writer_set_u32(w, "a", 7);
    rc = rc ? rc : bl_gguf_writer_add_tensor(w, "t", TT_F32, 1, ne, data);
    unsigned char *got = NULL;
    size_t n = 0;
    bl_err err = {0, ""};
    rc = rc ? rc : writer_bytes(w, &got, &n, &err);
    ok(rc == 0, "writer writes the tiny file (%s)", rc ? err.msg : "ok");
    ok(rc == 0 && same_bytes(got, n, want, sizeof want, 32, "tiny"),
       "tiny file: writer bytes equal the hand-built bytes (magic, version 3, counts, key, "
       "tensor info, padding, data)");

    /* the reader on the hand-built bytes */
    bl_gguf *g = NULL;
    unsigned char *img = exact_copy(want, sizeof want);
    rc = bl_gguf_open_memory(&g, img, sizeof want, "tiny", &err);
    ok(rc == 0, "reader opens the hand-built tiny file (%s)", rc ? err.msg : "ok");
    if (rc == 0) {
        uint32_t v = 0;
        const struct bl_tensor *t = bl_gguf_n_tensors(g) == 1 ? bl_gguf_tensor(g, 0) : NULL;
        ok(bl_gguf_version(g) == 3 && bl_gguf_n_kv(g) == 1 && bl_gguf_file_size(g) == 104 &&
           bl_gguf_data_offset(g) == 96,
           "tiny: version 3, 1 key, size 104, data at 96");
        ok(bl_gguf_get_u32(g, "a", &v, &err) == 0 && v == 7, "tiny: a = 7");
        ok(t && strcmp(t->name, "t") == 0 && t->type == BL_F32 && t->n_dims == 1 &&
           t->ne[0] == 2 && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1 && t->nbytes == 8 &&
           t->offset == 96 && t->data == img + 96,
           "tiny: tensor 't' f32 [2] at 96, 8 bytes, unused dims 1");
        bl_gguf_free(g);
    } else {
        skip(2, "tiny file not opened");
    }
    free(img);
    free(got);
    bl_gguf_writer_free(w);
}

/* ------------------------------------------------- 3. hand-built files */

static void test_hand_built(void)
{
    struct buf b = {0};
    /* header: 2 tensors, 14 keys, alignment 16 */
    b_raw(&b, "GGUF", 4);
    b_u32(&b, 3);
    b_u64(&b, 2);
    b_u64(&b, 14);
    b_str(&b, "general.architecture"); b_u32(&b, GT_STR); b_str(&b, "llama");
    b_str(&b, "x.u8");   b_u32(&b, GT_U8);  b_u8(&b, 200);
    b_str(&b, "x.i8");   b_u32(&b, GT_I8);  b_u8(&b, 0x85);           /* -123 */
    b_str(&b, "x.u16");  b_u32(&b, GT_U16); b_u16(&b, 65535);
    b_str(&b, "x.i16");  b_u32(&b, GT_I16); b_u16(&b, (uint16_t)-300);
    b_str(&b, "x.i64");  b_u32(&b, GT_I64); b_u64(&b, (uint64_t)-5000000000LL);
    b_str(&b, "x.f64");  b_u32(&b, GT_F64); b_u64(&b, 0x3fe0000000000000ull);   /* 0.5 */
    b_str(&b, "x.bool"); b_u32(&b, GT_BOOL); b_u8(&b, 2);             /* nonzero: true */
    b_str(&b, "x.arr");  b_u32(&b, GT_ARR); b_u32(&b, GT_I32); b_u64(&b, 3);
    b_u32(&b, (uint32_t)-1); b_u32(&b, 2); b_u32(&b, (uint32_t)-3);
    b_str(&b, "x.sarr"); b_u32(&b, GT_ARR); b_u32(&b, GT_STR); b_u64(&b, 3);
    b_str(&b, ""); b_str(&b, "ab"); b_strn(&b, "\xe2\x82\xac\0z", 5);
    b_str(&b, "x.u16arr"); b_u32(&b, GT_ARR); b_u32(&b, GT_U16); b_u64(&b, 2);
    b_u16(&b, 0x1234); b_u16(&b, 0xfedc);
    b_str(&b, "x.empty"); b_u32(&b, GT_ARR); b_u32(&b, GT_F64); b_u64(&b, 0);
    b_str(&b, "x.f32");  b_u32(&b, GT_F32); b_u32(&b, 0xc0490fdbu);   /* -3.14159274 */
    b_str(&b, "general.alignment"); b_u32(&b, GT_U32); b_u32(&b, 16);
    /* tensor infos */
    b_str(&b, "w"); b_u32(&b, 2); b_u64(&b, 2); b_u64(&b, 3); b_u32(&b, TT_F32); b_u64(&b, 0);
    b_str(&b, "v"); b_u32(&b, 1); b_u64(&b, 5); b_u32(&b, TT_BF16); b_u64(&b, 32);
    size_t header_end = b.n;
    b_align(&b, 16);
    size_t data_start = b.n;
    unsigned char w_data[24], v_data[10];
    fill_bytes(w_data, sizeof w_data, 1);
    fill_bytes(v_data, sizeof v_data, 2);
    b_raw(&b, w_data, 24);     /* w at 0..24 */
    b_zeros(&b, 8);            /* to 32 */
    b_raw(&b, v_data, 10);     /* v at 32..42 */

    unsigned char *img = exact_copy(b.p, b.n);
    bl_gguf *g = NULL;
    bl_err err = {0, ""};
    int rc = bl_gguf_open_memory(&g, img, b.n, "hand.gguf", &err);
    ok(rc == 0, "reader opens a hand-built file with every value type (%s)", rc ? err.msg : "ok");
    if (rc != 0) {
        skip(16, "hand-built file not opened");
        goto out;
    }
    ok(header_end % 16 != 0 && bl_gguf_data_offset(g) == data_start &&
       bl_gguf_file_size(g) == b.n && strcmp(bl_gguf_name(g), "hand.gguf") == 0,
       "hand: data section at %zu (header end %zu rounded up to general.alignment 16)",
       data_start, header_end);
    static const char *const keys[14] = {"general.architecture", "x.u8", "x.i8", "x.u16",
                                         "x.i16", "x.i64", "x.f64", "x.bool", "x.arr",
                                         "x.sarr", "x.u16arr", "x.empty", "x.f32",
                                         "general.alignment"};
    static const int types[14] = {GT_STR, GT_U8, GT_I8, GT_U16, GT_I16, GT_I64, GT_F64,
                                  GT_BOOL, GT_ARR, GT_ARR, GT_ARR, GT_ARR, GT_F32, GT_U32};
    int order = bl_gguf_n_kv(g) == 14;
    for (int i = 0; order && i < 14; i++)
        order = strcmp(bl_gguf_key(g, i), keys[i]) == 0 && bl_gguf_kv_type(g, i) == types[i] &&
                bl_gguf_find_key(g, keys[i]) == i;
    ok(order, "hand: 14 keys in file order with their types; find_key gives the index");
    ok(bl_gguf_find_key(g, "x.u") == -1 && bl_gguf_find_key(g, "x.u8x") == -1,
       "hand: find_key matches whole keys only");

    struct bl_gguf_str s = {0};
    ok(bl_gguf_get_str(g, "general.architecture", &s, &err) == 0 && s.len == 5 &&
       memcmp(s.ptr, "llama", 5) == 0, "hand: string value 'llama'");
    int64_t i64 = 0;
    uint32_t u32 = 0;
    int iv = 0;
    ok(bl_gguf_get_i64(g, "x.u8", &i64, &err) == 0 && i64 == 200 &&
       bl_gguf_get_u32(g, "x.u8", &u32, &err) == 0 && u32 == 200,
       "hand: uint8 200 through get_i64 and get_u32");
    ok(bl_gguf_get_i64(g, "x.i8", &i64, &err) == 0 && i64 == -123,
       "hand: int8 0x85 is -123 (sign-extended)");
    ok(bl_gguf_get_i64(g, "x.u16", &i64, &err) == 0 && i64 == 65535 &&
       bl_gguf_get_u32(g, "x.u16", &u32, &err) == 0 && u32 == 65535,
       "hand: uint16 65535 (not sign-extended)");
    ok(bl_gguf_get_i64(g, "x.i16", &i64, &err) == 0 && i64 == -300, "hand: int16 -300");
    ok(bl_gguf_get_i64(g, "x.i64", &i64, &err) == 0 && i64 == -5000000000LL,
       "hand: int64 -5000000000");
    float f = 0;
    ok(bl_gguf_get_f32(g, "x.f64", &f, &err) == 0 && f == 0.5f, "hand: float64 0.5 through get_f32");
    ok(bl_gguf_get_f32(g, "x.f32", &f, &err) == 0 && f32_bits(f) == 0xc0490fdbu,
       "hand: float32 bits 0xc0490fdb exact");
    ok(bl_gguf_get_bool(g, "x.bool", &iv, &err) == 0 && iv == 1, "hand: bool byte 2 reads as true");

    int et = -1;
    uint64_t n = 0;
    const unsigned char *ad = bl_gguf_arr_data(g, "x.arr");
    ok(bl_gguf_get_arr(g, "x.arr", &et, &n, &err) == 0 && et == GT_I32 && n == 3 && ad &&
       memcmp(ad, "\xff\xff\xff\xff\x02\x00\x00\x00\xfd\xff\xff\xff", 12) == 0,
       "hand: int32 array {-1, 2, -3}");
    ad = bl_gguf_arr_data(g, "x.u16arr");
    ok(bl_gguf_get_arr(g, "x.u16arr", &et, &n, &err) == 0 && et == GT_U16 && n == 2 && ad &&
       memcmp(ad, "\x34\x12\xdc\xfe", 4) == 0, "hand: uint16 array {0x1234, 0xfedc}");
    ok(bl_gguf_get_arr(g, "x.empty", &et, &n, &err) == 0 && et == GT_F64 && n == 0,
       "hand: empty float64 array");
    struct bl_gguf_str ss[3];
    memset(ss, 0, sizeof ss);
    ok(bl_gguf_get_arr(g, "x.sarr", &et, &n, &err) == 0 && et == GT_STR && n == 3 &&
       bl_gguf_arr_strings(g, "x.sarr", ss, 3, &err) == 0 && ss[0].len == 0 && ss[1].len == 2 &&
       memcmp(ss[1].ptr, "ab", 2) == 0 && ss[2].len == 5 &&
       memcmp(ss[2].ptr, "\xe2\x82\xac\0z", 5) == 0,
       "hand: string array {\"\", \"ab\", \"\\u20ac\\0z\"} (empty, non-ASCII, NUL inside)");

    const struct bl_tensor *tw = bl_gguf_find_tensor(g, "w");
    const struct bl_tensor *tv = bl_gguf_find_tensor(g, "v");
    ok(bl_gguf_n_tensors(g) == 2 && tw == bl_gguf_tensor(g, 0) && tv == bl_gguf_tensor(g, 1) &&
       !bl_gguf_find_tensor(g, "x"),
       "hand: 2 tensors, found by name in file order");
    ok(tw && tw->type == BL_F32 && tw->n_dims == 2 && tw->ne[0] == 2 && tw->ne[1] == 3 &&
       tw->ne[2] == 1 && tw->ne[3] == 1 && tw->nbytes == 24 && tw->offset == data_start &&
       tw->data == img + data_start && memcmp(tw->data, w_data, 24) == 0,
       "hand: 'w' f32 [2,3] 24 bytes at the data start");
    ok(tv && tv->type == BL_BF16 && tv->n_dims == 1 && tv->ne[0] == 5 && tv->nbytes == 10 &&
       tv->offset == data_start + 32 && tv->data == img + data_start + 32 &&
       memcmp(tv->data, v_data, 10) == 0,
       "hand: 'v' bf16 [5] 10 bytes at data start + 32 (alignment 16)");
    bl_gguf_free(g);

    /* version 2 has the same layout */
    p_u32(img, 4, 2);
    g = NULL;
    rc = bl_gguf_open_memory(&g, img, b.n, "v2.gguf", &err);
    ok(rc == 0 && bl_gguf_version(g) == 2 && bl_gguf_n_kv(g) == 14, "version 2 is read too");
    bl_gguf_free(g);

out:
    free(img);
    b_free(&b);

    /* no keys, no tensors: the 24-byte header alone */
    b_raw(&b, "GGUF", 4);
    b_u32(&b, 3);
    b_u64(&b, 0);
    b_u64(&b, 0);
    img = exact_copy(b.p, b.n);
    g = NULL;
    rc = bl_gguf_open_memory(&g, img, b.n, "empty.gguf", &err);
    ok(rc == 0 && bl_gguf_n_kv(g) == 0 && bl_gguf_n_tensors(g) == 0 &&
       bl_gguf_find_key(g, "a") == -1 && !bl_gguf_find_tensor(g, "a"),
       "a 24-byte file with no keys and no tensors opens");
    bl_gguf_free(g);
    free(img);
    b_free(&b);

    /* the writer with nothing set writes exactly that header */
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    unsigned char *got = NULL;
    size_t ngot = 0;
    rc = writer_bytes(w, &got, &ngot, &err);
    ok(rc == 0 && ngot == 24 &&
       memcmp(got, "GGUF\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24) == 0,
       "empty writer writes the 24-byte header only");
    free(got);
    bl_gguf_writer_free(w);
}

/* ------------------------------------------------- 4. round trip */

struct tspec {
    const char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    size_t esize;   /* bytes per element, from the spec */
};

static const struct tspec rt_tensors[] = {
    {"t.f32.1d", TT_F32, 1, {7, 1, 1, 1}, 4},
    {"t.f16.2d", TT_F16, 2, {5, 3, 1, 1}, 2},
    {"t.bf16.3d", TT_BF16, 3, {3, 1, 2, 1}, 2},
    {"t.f32.4d", TT_F32, 4, {2, 3, 1, 5}, 4},
    {"t.f16.4d.ones", TT_F16, 4, {1, 1, 1, 1}, 2},
    {"t.bf16.odd", TT_BF16, 2, {13, 7, 1, 1}, 2},
    {"blk.0.attn_q.weight", TT_F32, 2, {33, 9, 1, 1}, 4},
    {"t.f16.4d", TT_F16, 4, {3, 2, 5, 2}, 2},
    {"t.bf16.1d.exact", TT_BF16, 1, {16, 1, 1, 1}, 2},  /* exactly 32 bytes */
};
#define N_RT (sizeof rt_tensors / sizeof rt_tensors[0])

static size_t spec_nbytes(const struct tspec *t)
{
    size_t n = t->esize;
    for (int d = 0; d < t->n_dims; d++)
        n *= (size_t)t->ne[d];
    return n;
}

/* Numeric arrays written by the round trip */
static const uint8_t rt_u8[] = {0, 255, 7, 128};
static const int8_t rt_i8[] = {-128, 127, 0, -1, 5};
static const uint16_t rt_u16[] = {65535, 1, 0x8001};
static const int16_t rt_i16[] = {-32768, 32767, -2};
static const uint32_t rt_u32a[] = {4000000000u, 0, 0xdeadbeefu};
static const int32_t rt_i32a[] = {-2147483647 - 1, 2147483647, -7, 3};
static const uint64_t rt_u64a[] = {UINT64_MAX, 1, 0x0123456789abcdefull};
static const int64_t rt_i64a[] = {INT64_MIN, INT64_MAX, -1};
static const float rt_f32a[] = {-0.0f, 1e-38f, 3.5f, -1e30f, 0.1f};
static const double rt_f64a[] = {-2.5, 1e300, 0.1};
static const uint8_t rt_boola[] = {1, 0, 1, 1};

struct arrspec {
    const char *key;
    int type;
    const void *data;
    size_t n;
    size_t esize;
};

static const struct arrspec rt_arrays[] = {
    {"a.u8", GT_U8, rt_u8, 4, 1},       {"a.i8", GT_I8, rt_i8, 5, 1},
    {"a.u16", GT_U16, rt_u16, 3, 2},    {"a.i16", GT_I16, rt_i16, 3, 2},
    {"a.u32", GT_U32, rt_u32a, 3, 4},   {"a.i32", GT_I32, rt_i32a, 4, 4},
    {"a.u64", GT_U64, rt_u64a, 3, 8},   {"a.i64", GT_I64, rt_i64a, 3, 8},
    {"a.f32", GT_F32, rt_f32a, 5, 4},   {"a.f64", GT_F64, rt_f64a, 3, 8},
    {"a.bool", GT_BOOL, rt_boola, 4, 1}, {"a.empty", GT_I32, rt_i32a, 0, 4},
};
#define N_ARR (sizeof rt_arrays / sizeof rt_arrays[0])

static const char *const rt_strs[] = {"", "a", "\xff\xfe\x80", "", "\xe6\x97\xa5\xe6\x9c\xac",
                                      "tok\xc4\xa0with space", ""};
#define N_STRS (sizeof rt_strs / sizeof rt_strs[0])
static const char *const rt_nul_strs[] = {"a\0b", "\0", "xyz"};
static const size_t rt_nul_lens[] = {3, 1, 2};   /* "xy" of "xyz" */

#define RT_STR "caf\xc3\xa9 \xe2\x88\x91 \xf0\x9f\x98\x80"

/* keys in the order they are first set */
static const char *const rt_keys[] = {
    "r.u32",  "r.i32",  "r.u64",   "r.u64big", "r.f32",   "r.negzero", "r.true", "r.false",
    "r.b42",  "r.str",  "r.empty", "r.twice",  "a.u8",    "a.i8",      "a.u16",  "a.i16",
    "a.u32",  "a.i32",  "a.u64",   "a.i64",    "a.f32",   "a.f64",     "a.bool", "a.empty",
    "s.arr",  "s.nul",  "s.none",  "r.i32neg",
};
#define N_KEYS (sizeof rt_keys / sizeof rt_keys[0])

static int rt_fill_writer(bl_gguf_writer *w, unsigned char **tdata)
{
    int rc = 0;
#define W(x) do { if (!rc) rc = (x); } while (0)
    W(bl_gguf_writer_set_u32(w, "r.u32", 4000000000u));
    W(bl_gguf_writer_set_i32(w, "r.i32", -123456));
    W(bl_gguf_writer_set_u64(w, "r.u64", 0x0123456789abcdefull));
    W(bl_gguf_writer_set_u64(w, "r.u64big", UINT64_MAX));
    W(bl_gguf_writer_set_f32(w, "r.f32", -3.25e-7f));
    W(bl_gguf_writer_set_f32(w, "r.negzero", -0.0f));
    W(bl_gguf_writer_set_bool(w, "r.true", 1));
    W(bl_gguf_writer_set_bool(w, "r.false", 0));
    W(bl_gguf_writer_set_bool(w, "r.b42", 42));
    W(bl_gguf_writer_set_str(w, "r.str", RT_STR));
    W(bl_gguf_writer_set_str(w, "r.empty", ""));
    W(bl_gguf_writer_set_u32(w, "r.twice", 1));      /* replaced below, keeps its place */
    for (size_t i = 0; i < N_ARR; i++)
        W(bl_gguf_writer_set_arr(w, rt_arrays[i].key, rt_arrays[i].type, rt_arrays[i].data,
                                 rt_arrays[i].n));
    W(bl_gguf_writer_set_arr_str(w, "s.arr", rt_strs, NULL, N_STRS));
    W(bl_gguf_writer_set_arr_str(w, "s.nul", rt_nul_strs, rt_nul_lens, 3));
    W(bl_gguf_writer_set_arr_str(w, "s.none", rt_strs, NULL, 0));
    W(bl_gguf_writer_set_i32(w, "r.i32neg", -1));
    W(bl_gguf_writer_set_str(w, "r.twice", "second"));
    W(bl_gguf_writer_set_i32(w, "r.i32neg", -5));    /* same type, new value */
    for (size_t i = 0; i < N_RT; i++) {
        tdata[i] = malloc(spec_nbytes(&rt_tensors[i]));
        fill_bytes(tdata[i], spec_nbytes(&rt_tensors[i]), (uint32_t)(100 + i));
        W(bl_gguf_writer_add_tensor(w, rt_tensors[i].name, rt_tensors[i].type,
                                    rt_tensors[i].n_dims, rt_tensors[i].ne, tdata[i]));
    }
#undef W
    return rc;
}

/* Every value of the round trip file; `base` is the image for a memory open
 * (tensor data must point into it) or NULL. */
static void rt_check(const bl_gguf *g, const char *how, unsigned char *const *tdata,
                     const unsigned char *base, size_t size, size_t align)
{
    bl_err err = {0, ""};
    ok(bl_gguf_version(g) == 3, "%s: version 3", how);
    ok(bl_gguf_file_size(g) == size, "%s: file size %zu", how, size);

    int order = bl_gguf_n_kv(g) == (int64_t)(N_KEYS + (align != 32));
    for (size_t i = 0; order && i < N_KEYS; i++)
        order = strcmp(bl_gguf_key(g, (int64_t)i), rt_keys[i]) == 0;
    ok(order, "%s: %zu keys, in the order first set (a key set twice is one entry, "
       "in its first place)", how, N_KEYS + (align != 32));

    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f = 0;
    int bv = -1;
    struct bl_gguf_str s = {0};
    int64_t k;
    ok(bl_gguf_get_u32(g, "r.u32", &u32, &err) == 0 && u32 == 4000000000u &&
       (k = bl_gguf_find_key(g, "r.u32")) >= 0 && bl_gguf_kv_type(g, k) == GT_U32,
       "%s: uint32 4000000000", how);
    ok(bl_gguf_get_i64(g, "r.i32", &i64, &err) == 0 && i64 == -123456 &&
       (k = bl_gguf_find_key(g, "r.i32")) >= 0 && bl_gguf_kv_type(g, k) == GT_I32,
       "%s: int32 -123456", how);
    ok(bl_gguf_get_i64(g, "r.u64", &i64, &err) == 0 && i64 == 0x0123456789abcdefll &&
       (k = bl_gguf_find_key(g, "r.u64")) >= 0 && bl_gguf_kv_type(g, k) == GT_U64,
       "%s: uint64 0x0123456789abcdef", how);
    ok((k = bl_gguf_find_key(g, "r.u64big")) >= 0 && bl_gguf_kv_type(g, k) == GT_U64,
       "%s: uint64 UINT64_MAX kept as uint64", how);
    ok(bl_gguf_get_f32(g, "r.f32", &f, &err) == 0 && f32_bits(f) == f32_bits(-3.25e-7f) &&
       (k = bl_gguf_find_key(g, "r.f32")) >= 0 && bl_gguf_kv_type(g, k) == GT_F32,
       "%s: float32 -3.25e-7 bit-exact", how);
    ok(bl_gguf_get_f32(g, "r.negzero", &f, &err) == 0 && f32_bits(f) == 0x80000000u,
       "%s: float32 -0.0 keeps its sign", how);
    ok(bl_gguf_get_bool(g, "r.true", &bv, &err) == 0 && bv == 1 &&
       bl_gguf_get_bool(g, "r.false", &bv, &err) == 0 && bv == 0 &&
       bl_gguf_get_bool(g, "r.b42", &bv, &err) == 0 && bv == 1 &&
       (k = bl_gguf_find_key(g, "r.true")) >= 0 && bl_gguf_kv_type(g, k) == GT_BOOL,
       "%s: bools true, false, and 42 -> true", how);
    ok(bl_gguf_get_str(g, "r.str", &s, &err) == 0 && s.len == strlen(RT_STR) &&
       memcmp(s.ptr, RT_STR, s.len) == 0, "%s: non-ASCII string", how);
    ok(bl_gguf_get_str(g, "r.empty", &s, &err) == 0 && s.len == 0, "%s: empty string", how);
    ok(bl_gguf_get_str(g, "r.twice", &s, &err) == 0 && s.len == 6 &&
       memcmp(s.ptr, "second", 6) == 0 && (k = bl_gguf_find_key(g, "r.twice")) == 11 &&
       bl_gguf_kv_type(g, k) == GT_STR,
       "%s: key set twice (uint32 then string) has the last value and type", how);
    ok(bl_gguf_get_i64(g, "r.i32neg", &i64, &err) == 0 && i64 == -5,
       "%s: key set twice with the same type has the last value", how);

    int arr_ok = 1;
    for (size_t i = 0; i < N_ARR; i++) {
        int et = -1;
        uint64_t n = 99;
        const void *d = bl_gguf_arr_data(g, rt_arrays[i].key);
        int good = bl_gguf_get_arr(g, rt_arrays[i].key, &et, &n, &err) == 0 &&
                   et == rt_arrays[i].type && n == rt_arrays[i].n && d &&
                   (n == 0 || memcmp(d, rt_arrays[i].data, n * rt_arrays[i].esize) == 0) &&
                   bl_gguf_kv_type(g, bl_gguf_find_key(g, rt_arrays[i].key)) == GT_ARR;
        if (!good)
            diag("%s: array '%s' differs", how, rt_arrays[i].key);
        arr_ok &= good;
    }
    ok(arr_ok, "%s: numeric arrays of 11 element types and an empty one: type, count, bytes", how);

    int et = -1;
    uint64_t n = 0;
    struct bl_gguf_str ss[N_STRS];
    int sgood = bl_gguf_get_arr(g, "s.arr", &et, &n, &err) == 0 && et == GT_STR && n == N_STRS &&
                bl_gguf_arr_strings(g, "s.arr", ss, N_STRS, &err) == 0 &&
                !bl_gguf_arr_data(g, "s.arr");
    for (size_t i = 0; sgood && i < N_STRS; i++)
        sgood = ss[i].len == strlen(rt_strs[i]) && memcmp(ss[i].ptr, rt_strs[i], ss[i].len) == 0;
    ok(sgood, "%s: string array with empty strings and non-ASCII bytes", how);
    sgood = bl_gguf_get_arr(g, "s.nul", &et, &n, &err) == 0 && et == GT_STR && n == 3 &&
            bl_gguf_arr_strings(g, "s.nul", ss, 3, &err) == 0;
    for (size_t i = 0; sgood && i < 3; i++)
        sgood = ss[i].len == rt_nul_lens[i] && memcmp(ss[i].ptr, rt_nul_strs[i], ss[i].len) == 0;
    ok(sgood, "%s: string array given lengths (NUL bytes inside, a prefix)", how);
    ok(bl_gguf_get_arr(g, "s.none", &et, &n, &err) == 0 && et == GT_STR && n == 0 &&
       bl_gguf_arr_strings(g, "s.none", ss, 0, &err) == 0,
       "%s: empty string array", how);

    size_t doff = bl_gguf_data_offset(g);
    ok(doff % align == 0 && doff <= size, "%s: data section at %zu, a multiple of %zu", how, doff,
       align);
    int tgood = bl_gguf_n_tensors(g) == (int64_t)N_RT;
    for (size_t i = 0; tgood && i < N_RT; i++) {
        const struct tspec *sp = &rt_tensors[i];
        const struct bl_tensor *t = bl_gguf_tensor(g, (int64_t)i);
        int good = strcmp(t->name, sp->name) == 0 && t->type == sp->type &&
                   t->n_dims == sp->n_dims && bl_gguf_find_tensor(g, sp->name) == t;
        for (int d = 0; d < 4; d++)
            good &= t->ne[d] == (d < sp->n_dims ? sp->ne[d] : 1);
        good &= t->nbytes == spec_nbytes(sp);
        good &= t->offset % align == 0 && t->offset >= doff && t->offset + t->nbytes <= size;
        good &= memcmp(t->data, tdata[i], t->nbytes) == 0;
        if (base)
            good &= (const unsigned char *)t->data == base + t->offset;
        if (!good)
            diag("%s: tensor %zu '%s' differs (type %d dims %d ne %" PRId64 ",%" PRId64 ",%" PRId64
                 ",%" PRId64 " nbytes %zu offset %zu)",
                 how, i, sp->name, t->type, t->n_dims, t->ne[0], t->ne[1], t->ne[2], t->ne[3],
                 t->nbytes, t->offset);
        tgood &= good;
    }
    ok(tgood, "%s: %zu tensors (f32/f16/bf16, 1-4 dims): name, type, shape, bytes, data, offset "
       "a multiple of %zu", how, N_RT, align);
}

static void test_round_trip(const char *dir, size_t align)
{
    char path[4200], names[1024];
    unsigned char *tdata[N_RT] = {0};
    bl_err err = {0, ""};
    char sub[2048];

    snprintf(sub, sizeof sub, "%s/rt%zu", dir, align);
    if (mkdir(sub, 0700) != 0) {
        ok(0, "mkdir %s: %s", sub, strerror(errno));
        return;
    }
    snprintf(path, sizeof path, "%s/model.gguf", sub);

    bl_gguf_writer *w = bl_gguf_writer_alloc();
    int rc = rt_fill_writer(w, tdata);
    if (!rc && align != 32)
        rc = bl_gguf_writer_set_u32(w, "general.alignment", (uint32_t)align);
    ok(rc == 0, "align %zu: writer accepts every key and tensor", align);
    rc = bl_gguf_writer_write(w, path, &err);
    ok(rc == 0, "align %zu: write to a path (%s)", align, rc ? err.msg : "ok");
    int nd = list_dir(sub, names, sizeof names);
    ok(nd == 1 && strcmp(names, "model.gguf") == 0,
       "align %zu: after the write only the final file exists (found: %s)", align, names);

    size_t size = 0;
    unsigned char *bytes = slurp(path, &size);
    unsigned char *mem = NULL;
    size_t nmem = 0;
    rc = writer_bytes(w, &mem, &nmem, &err);
    ok(rc == 0 && bytes && nmem == size && memcmp(mem, bytes, size) == 0,
       "align %zu: write_fp and write give the same bytes", align);
    free(mem);
    ok(bytes && size >= 24 && memcmp(bytes, "GGUF\3\0\0\0", 8) == 0 &&
       bytes[8] == N_RT && bytes[16] == N_KEYS + (align != 32),
       "align %zu: file starts \"GGUF\", version 3, %zu tensors, %zu keys", align, N_RT,
       N_KEYS + (align != 32));

    /* from the path */
    bl_gguf *g = NULL;
    rc = bl_gguf_open(&g, path, &err);
    ok(rc == 0 && g && strcmp(bl_gguf_name(g), path) == 0, "align %zu: bl_gguf_open (%s)", align,
       rc ? err.msg : "ok");
    if (rc == 0) {
        char how[64];
        snprintf(how, sizeof how, "file, align %zu", align);
        rt_check(g, how, tdata, NULL, size, align);
        uint32_t a = 0;
        if (align != 32)
            ok(bl_gguf_get_u32(g, "general.alignment", &a, &err) == 0 && a == align,
               "align %zu: general.alignment reads back", align);
        bl_gguf_free(g);
    } else {
        skip(1, "not opened");
    }

    /* from memory, the same bytes in an exact-size buffer */
    unsigned char *img = bytes ? exact_copy(bytes, size) : NULL;
    g = NULL;
    rc = img ? bl_gguf_open_memory(&g, img, size, "rt-mem", &err) : -1;
    ok(rc == 0 && strcmp(bl_gguf_name(g), "rt-mem") == 0, "align %zu: bl_gguf_open_memory (%s)",
       align, rc ? err.msg : "ok");
    if (rc == 0) {
        char how[64];
        snprintf(how, sizeof how, "memory, align %zu", align);
        rt_check(g, how, tdata, img, size, align);
        /* the padding between tensors is zeros */
        int zeros = 1;
        for (int64_t i = 0; i < bl_gguf_n_tensors(g); i++) {
            const struct bl_tensor *t = bl_gguf_tensor(g, i);
            size_t end = t->offset + t->nbytes, next = (end + align - 1) / align * align;
            for (size_t j = end; j < next && j < size; j++)
                zeros &= img[j] == 0;
        }
        ok(zeros, "align %zu: padding after each tensor's data is zeros", align);
        bl_gguf_free(g);
    }
    free(img);

    /* writing again over the existing file replaces it, leaving one file */
    rc = bl_gguf_writer_write(w, path, &err);
    nd = list_dir(sub, names, sizeof names);
    size_t size2 = 0;
    unsigned char *bytes2 = slurp(path, &size2);
    ok(rc == 0 && nd == 1 && bytes2 && size2 == size && memcmp(bytes, bytes2, size) == 0,
       "align %zu: writing over an existing file replaces it (files: %s)", align, names);
    free(bytes2);
    free(bytes);
    bl_gguf_writer_free(w);
    for (size_t i = 0; i < N_RT; i++)
        free(tdata[i]);
}

static void test_write_failures(const char *dir)
{
    char path[4200], names[1024];
    bl_err err = {0, ""};
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    float x[4] = {1, 2, 3, 4};
    int64_t ne[1] = {4};
    bl_gguf_writer_set_u32(w, "k", 1);
    bl_gguf_writer_add_tensor(w, "x", TT_F32, 1, ne, x);

    char sub[2048];
    snprintf(sub, sizeof sub, "%s/wfail", dir);
    mkdir(sub, 0700);

    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no-such-dir/out.gguf", sub);
    int rc = bl_gguf_writer_write(w, path, &err);
    int nd = list_dir(sub, names, sizeof names);
    ok(rc == BL_EIO && err.code == BL_EIO && strstr(err.msg, "no-such-dir/out.gguf") &&
       strstr(err.msg, "cannot create") && nd == 0,
       "write into a missing directory: BL_EIO naming the path, nothing left (msg '%s')", err.msg);

    /* the target is an existing directory: the rename fails, the temp file
     * is removed */
    snprintf(path, sizeof path, "%s/adir", sub);
    mkdir(path, 0700);
    rc = bl_gguf_writer_write(w, path, &err);
    nd = list_dir(sub, names, sizeof names);
    struct stat st;
    ok(rc == BL_EIO && strstr(err.msg, "rename") && nd == 1 && strcmp(names, "adir") == 0 &&
       stat(path, &st) == 0 && S_ISDIR(st.st_mode),
       "write over a directory: BL_EIO, temp file removed, directory untouched "
       "(files: %s; msg '%s')", names, err.msg);

    /* a full device */
    FILE *fp = fopen("/dev/full", "wb");
    if (fp) {
        rc = bl_gguf_writer_write_fp(w, fp, &err);
        ok(rc == BL_EIO && strstr(err.msg, "write failed"),
           "write_fp to /dev/full: BL_EIO 'write failed' (msg '%s')", err.msg);
        fclose(fp);
    } else {
        skip(1, "no /dev/full");
    }
    bl_gguf_writer_free(w);
}

/* ------------------------------------------------- 5. typed getters */

static void test_getters(void)
{
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    int32_t arr[2] = {1, 2};
    const char *strs[1] = {"s"};
    bl_gguf_writer_set_u32(w, "g.u32", 4294967295u);
    bl_gguf_writer_set_i32(w, "g.neg", -1);
    bl_gguf_writer_set_i32(w, "g.i32", 123);
    bl_gguf_writer_set_u64(w, "g.u64", 4294967296ull);        /* one past UINT32_MAX */
    bl_gguf_writer_set_u64(w, "g.u64max", UINT64_MAX);
    bl_gguf_writer_set_u64(w, "g.u64small", 77);
    bl_gguf_writer_set_f32(w, "g.f32", 2.5f);
    bl_gguf_writer_set_bool(w, "g.bool", 1);
    bl_gguf_writer_set_str(w, "g.str", "text");
    bl_gguf_writer_set_arr(w, "g.arr", GT_I32, arr, 2);
    bl_gguf_writer_set_arr_str(w, "g.sarr", strs, NULL, 1);
    unsigned char *bytes = NULL;
    size_t n = 0;
    bl_err err = {0, ""};
    int rc = writer_bytes(w, &bytes, &n, &err);
    bl_gguf_writer_free(w);
    bl_gguf *g = NULL;
    rc = rc ? rc : bl_gguf_open_memory(&g, bytes, n, "getters.gguf", &err);
    ok(rc == 0, "getters file opens (%s)", rc ? err.msg : "ok");
    if (rc) {
        free(bytes);
        return;
    }

    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f = 0;
    int iv = 0, et = 0;
    uint64_t cnt = 0;
    struct bl_gguf_str s = {0};
    struct bl_gguf_str ss[1];

    /* absent keys */
    ok(bl_gguf_get_u32(g, "nope", &u32, &err) == BL_ENOTFOUND &&
       bl_gguf_get_i64(g, "nope", &i64, &err) == BL_ENOTFOUND &&
       bl_gguf_get_f32(g, "nope", &f, &err) == BL_ENOTFOUND &&
       bl_gguf_get_bool(g, "nope", &iv, &err) == BL_ENOTFOUND &&
       bl_gguf_get_str(g, "nope", &s, &err) == BL_ENOTFOUND &&
       bl_gguf_get_arr(g, "nope", &et, &cnt, &err) == BL_ENOTFOUND &&
       bl_gguf_arr_strings(g, "nope", ss, 1, &err) == BL_ENOTFOUND &&
       bl_gguf_arr_data(g, "nope") == NULL,
       "every getter returns BL_ENOTFOUND for an absent key");
    ok(bl_gguf_get_u32(g, "g.u3", &u32, &err) == BL_ENOTFOUND &&
       bl_gguf_get_u32(g, "g.u32.", &u32, &err) == BL_ENOTFOUND,
       "a prefix or extension of a key is not found");

    /* wrong types: BL_EFORMAT, message naming the key, its type and the wanted one */
#define WRONG(call, key, have, want)                                                         \
    do {                                                                                     \
        memset(&err, 0, sizeof err);                                                         \
        int r_ = (call);                                                                     \
        ok(r_ == BL_EFORMAT && err.code == BL_EFORMAT && strstr(err.msg, "'" key "'") &&     \
               strstr(err.msg, have) && strstr(err.msg, want),                               \
           "%s on %s: BL_EFORMAT naming the key and types (msg '%s')", #call, have, err.msg); \
    } while (0)
    WRONG(bl_gguf_get_u32(g, "g.str", &u32, &err), "g.str", "string", "integer");
    WRONG(bl_gguf_get_i64(g, "g.f32", &i64, &err), "g.f32", "float32", "integer");
    WRONG(bl_gguf_get_i64(g, "g.bool", &i64, &err), "g.bool", "bool", "integer");
    WRONG(bl_gguf_get_f32(g, "g.u32", &f, &err), "g.u32", "uint32", "float32");
    WRONG(bl_gguf_get_bool(g, "g.i32", &iv, &err), "g.i32", "int32", "bool");
    WRONG(bl_gguf_get_str(g, "g.bool", &s, &err), "g.bool", "bool", "string");
    WRONG(bl_gguf_get_str(g, "g.sarr", &s, &err), "g.sarr", "array", "string");
    WRONG(bl_gguf_get_arr(g, "g.str", &et, &cnt, &err), "g.str", "string", "array");
    WRONG(bl_gguf_get_u32(g, "g.arr", &u32, &err), "g.arr", "array", "integer");
#undef WRONG
    memset(&err, 0, sizeof err);
    ok(bl_gguf_arr_strings(g, "g.arr", ss, 1, &err) == BL_EFORMAT && strstr(err.msg, "'g.arr'") &&
       strstr(err.msg, "not an array of strings"),
       "arr_strings on an int32 array: BL_EFORMAT 'not an array of strings' (msg '%s')", err.msg);
    ok(bl_gguf_arr_strings(g, "g.str", ss, 1, &err) == BL_EFORMAT,
       "arr_strings on a string scalar: BL_EFORMAT");
    ok(bl_gguf_arr_data(g, "g.sarr") == NULL && bl_gguf_arr_data(g, "g.u32") == NULL &&
       bl_gguf_arr_data(g, "g.arr") != NULL,
       "arr_data is NULL for a string array and a scalar");

    /* ranges */
    memset(&err, 0, sizeof err);
    ok(bl_gguf_get_u32(g, "g.neg", &u32, &err) == BL_EFORMAT && strstr(err.msg, "'g.neg'") &&
       strstr(err.msg, "-1") && strstr(err.msg, "range"),
       "get_u32 on int32 -1: BL_EFORMAT, out of range (msg '%s')", err.msg);
    memset(&err, 0, sizeof err);
    ok(bl_gguf_get_u32(g, "g.u64", &u32, &err) == BL_EFORMAT && strstr(err.msg, "'g.u64'") &&
       strstr(err.msg, "4294967296") && strstr(err.msg, "range"),
       "get_u32 on uint64 2^32: BL_EFORMAT, out of range (msg '%s')", err.msg);
    ok(bl_gguf_get_u32(g, "g.u32", &u32, &err) == 0 && u32 == 4294967295u,
       "get_u32 on uint32 UINT32_MAX");
    ok(bl_gguf_get_u32(g, "g.u64small", &u32, &err) == 0 && u32 == 77 &&
       bl_gguf_get_u32(g, "g.i32", &u32, &err) == 0 && u32 == 123,
       "get_u32 accepts uint64 77 and int32 123 (values that fit)");
    ok(bl_gguf_get_i64(g, "g.u32", &i64, &err) == 0 && i64 == 4294967295LL &&
       bl_gguf_get_i64(g, "g.neg", &i64, &err) == 0 && i64 == -1,
       "get_i64 widens uint32 (no sign extension) and int32 (sign extension)");
    memset(&err, 0, sizeof err);
    i64 = 0;
    rc = bl_gguf_get_i64(g, "g.u64max", &i64, &err);
    ok(rc == BL_EFORMAT, "get_i64 on uint64 UINT64_MAX fails (does not fit int64)");
    ok(rc == BL_EFORMAT && strstr(err.msg, "'g.u64max'") && strstr(err.msg, "range") &&
       !strstr(err.msg, "expected an integer"),
       "get_i64 on uint64 UINT64_MAX: the message says out of range, not a wrong type "
       "(msg '%s')", err.msg);
    memset(&err, 0, sizeof err);
    rc = bl_gguf_get_u32(g, "g.u64max", &u32, &err);
    ok(rc == BL_EFORMAT && strstr(err.msg, "range") && !strstr(err.msg, "expected an integer"),
       "get_u32 on uint64 UINT64_MAX: the message says out of range (msg '%s')", err.msg);

    ok(bl_gguf_get_arr(g, "g.arr", &et, &cnt, &err) == 0 && et == GT_I32 && cnt == 2 &&
       bl_gguf_get_arr(g, "g.sarr", &et, &cnt, &err) == 0 && et == GT_STR && cnt == 1,
       "get_arr gives element type and count");
    ok(bl_gguf_get_f32(g, "g.f32", &f, &err) == 0 && f == 2.5f &&
       bl_gguf_get_bool(g, "g.bool", &iv, &err) == 0 && iv == 1 &&
       bl_gguf_get_str(g, "g.str", &s, &err) == 0 && s.len == 4 && memcmp(s.ptr, "text", 4) == 0,
       "f32, bool and string getters");
    bl_gguf_free(g);
    free(bytes);
}

/* ------------------------------------------------- 6. writer checks */

static void test_writer_args(void)
{
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    float x[64] = {0};
    int64_t ne4[4] = {2, 2, 2, 2}, ne5[5] = {1, 1, 1, 1, 1}, ne0[2] = {4, 0}, neq[1] = {33};
    int32_t a[1] = {1};
    ok(bl_gguf_writer_set_arr(w, "x", GT_STR, a, 1) == BL_EINVAL &&
       bl_gguf_writer_set_arr(w, "x", GT_ARR, a, 1) == BL_EINVAL &&
       bl_gguf_writer_set_arr(w, "x", 13, a, 1) == BL_EINVAL,
       "writer set_arr: string, array and unknown element types are BL_EINVAL");
    ok(bl_gguf_writer_add_tensor(w, "t", TT_F32, 0, ne4, x) == BL_EINVAL &&
       bl_gguf_writer_add_tensor(w, "t", TT_F32, 5, ne5, x) == BL_EINVAL,
       "writer add_tensor: 0 and 5 dimensions are BL_EINVAL");
    ok(bl_gguf_writer_add_tensor(w, "t", TT_F32, 2, ne0, x) == BL_EINVAL,
       "writer add_tensor: a zero dimension is BL_EINVAL");
    ok(bl_gguf_writer_add_tensor(w, "t", 99, 1, ne4, x) == BL_EINVAL,
       "writer add_tensor: unknown type 99 is BL_EINVAL");
    ok(bl_gguf_writer_add_tensor(w, "t", TT_Q8_0, 1, neq, x) == BL_EINVAL,
       "writer add_tensor: q8_0 row of 33 is BL_EINVAL");
    /* shapes whose byte size or row count overflow: run in a child, since
     * the second one overflows int64 arithmetic (UBSan aborts there) */
    static const struct {
        int n_dims;
        int64_t ne[4];
        const char *what;
    } huge[] = {
        {2, {(int64_t)1 << 30, (int64_t)1 << 40}, "f32 ne {2^30, 2^40}: 2^72 bytes"},
        {3, {1, (int64_t)1 << 40, (int64_t)1 << 40}, "f32 ne {1, 2^40, 2^40}: 2^80 rows"},
    };
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(1, 2);   /* a sanitizer report lands in order in the TAP log */
            bl_gguf_writer *cw = bl_gguf_writer_alloc();
            int crc = bl_gguf_writer_add_tensor(cw, "huge", TT_F32, huge[h].n_dims, huge[h].ne, x);
            _exit(crc == 0 ? 1 : 0);
        }
        int status = 0;
        int waited = pid > 0 && waitpid(pid, &status, 0) == pid;
        ok(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "writer add_tensor %s: refused (child %s %d)", huge[h].what,
           waited && WIFEXITED(status) ? "exit status" : "killed by signal",
           waited && WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }

    bl_err err = {0, ""};
    unsigned char *bytes = NULL;
    size_t n = 0;
    int rc = writer_bytes(w, &bytes, &n, &err);
    ok(rc == 0 && n == 24, "after refused arguments the writer holds nothing (24-byte file)");
    free(bytes);
    bl_gguf_writer_set_u32(w, "general.alignment", 48);
    rc = writer_bytes(w, &bytes, &n, &err);
    ok(rc == BL_EINVAL && strstr(err.msg, "general.alignment") && strstr(err.msg, "48"),
       "writer: general.alignment 48 is BL_EINVAL naming it (msg '%s')", err.msg);
    free(bytes);
    bl_gguf_writer_free(w);

    /* A writer should refuse what its own reader rejects, or write a file
     * the reader accepts. */
    struct {
        const char *what;
        int kind;
    } cases[] = {
        {"general.alignment given as uint64", 0},
        {"two tensors with the same name", 1},
        {"an empty key", 2},
        {"an empty tensor name", 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t ne[1] = {4};
        w = bl_gguf_writer_alloc();
        rc = 0;
        if (cases[c].kind == 0)
            rc = bl_gguf_writer_set_u64(w, "general.alignment", 64);
        if (cases[c].kind == 2)
            rc = bl_gguf_writer_set_u32(w, "", 1);
        int rc2 = bl_gguf_writer_add_tensor(w, cases[c].kind == 3 ? "" : "t", TT_F32, 1, ne, x);
        int rc3 = cases[c].kind == 1 ? bl_gguf_writer_add_tensor(w, "t", TT_F32, 1, ne, x + 4) : 0;
        bytes = NULL;
        int rc4 = writer_bytes(w, &bytes, &n, &err);
        int refused = rc || rc2 || rc3 || rc4;
        bl_gguf *g = NULL;
        bl_err rerr = {0, ""};
        int rrc = refused ? 0 : bl_gguf_open_memory(&g, bytes, n, "w.gguf", &rerr);
        ok(refused || rrc == 0,
           "writer with %s: refused, or the file reads back (reader says: %s)", cases[c].what,
           rrc ? rerr.msg : "ok");
        bl_gguf_free(g);
        free(bytes);
        bl_gguf_writer_free(w);
    }
}

/* ------------------------------------------------- 7. reader error paths */

#define B_NKV 8
#define B_NT 2

/* A valid file built by hand, with the offset of every field recorded. */
struct base {
    struct buf b;
    size_t kv_key[B_NKV];   /* key length field */
    size_t kv_type[B_NKV];  /* value type field */
    size_t kv_val[B_NKV];   /* value (arrays: element type field) */
    size_t t_name[B_NT], t_ndims[B_NT], t_ne[B_NT], t_type[B_NT], t_off[B_NT];
    size_t header_end, data_start, align_val;
};

static unsigned char base_ta[48], base_tb[16];

static void build_base(struct base *o)
{
    struct buf *b = &o->b;
    memset(o, 0, sizeof *o);
    fill_bytes(base_ta, sizeof base_ta, 7);
    fill_bytes(base_tb, sizeof base_tb, 8);
    b_raw(b, "GGUF", 4);
    b_u32(b, 3);
    b_u64(b, B_NT);
    b_u64(b, B_NKV);
    int i = 0;
#define KEY(k, t) (o->kv_key[i] = b->n, b_str(b, k), o->kv_type[i] = b->n, b_u32(b, t), \
                   o->kv_val[i] = b->n, i++)
    KEY("k.a", GT_U32); b_u32(b, 0xa1b2c3d4u);
    KEY("k.b", GT_I32); b_u32(b, (uint32_t)-2);
    KEY("k.s", GT_STR); b_str(b, "hello");
    KEY("k.arr", GT_ARR); b_u32(b, GT_I32); b_u64(b, 3);
    b_u32(b, 1); b_u32(b, (uint32_t)-2); b_u32(b, 3);
    KEY("k.sarr", GT_ARR); b_u32(b, GT_STR); b_u64(b, 3);
    b_str(b, "x"); b_str(b, ""); b_str(b, "yz");
    KEY("k.f", GT_F32); b_u32(b, 0x3f000000u);     /* 0.5 */
    KEY("k.t", GT_BOOL); b_u8(b, 1);
    KEY("general.alignment", GT_U32); o->align_val = b->n; b_u32(b, 32);
#undef KEY
    /* ta f32 [4,3] 48 bytes at 0; tb f16 [8] 16 bytes at 64 */
    o->t_name[0] = b->n; b_str(b, "ta");
    o->t_ndims[0] = b->n; b_u32(b, 2);
    o->t_ne[0] = b->n; b_u64(b, 4); b_u64(b, 3);
    o->t_type[0] = b->n; b_u32(b, TT_F32);
    o->t_off[0] = b->n; b_u64(b, 0);
    o->t_name[1] = b->n; b_str(b, "tb");
    o->t_ndims[1] = b->n; b_u32(b, 1);
    o->t_ne[1] = b->n; b_u64(b, 8);
    o->t_type[1] = b->n; b_u32(b, TT_F16);
    o->t_off[1] = b->n; b_u64(b, 64);
    o->header_end = b->n;
    b_align(b, 32);
    o->data_start = b->n;
    b_raw(b, base_ta, 48);
    b_zeros(b, 16);
    b_raw(b, base_tb, 16);
}

/* The base file, patched, must fail. */
struct patch {
    unsigned char *p;
    size_t n;
};

static void fresh(struct patch *pt, const struct base *o)
{
    free(pt->p);
    pt->p = exact_copy(o->b.p, o->b.n);
    pt->n = o->b.n;
}

static void test_base_is_valid(const struct base *o)
{
    /* the writer writes the same bytes as the hand-built base file */
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    int32_t arr[3] = {1, -2, 3};
    const char *strs[3] = {"x", "", "yz"};
    int64_t ne_a[2] = {4, 3}, ne_b[1] = {8};
    bl_gguf_writer_set_u32(w, "k.a", 0xa1b2c3d4u);
    bl_gguf_writer_set_i32(w, "k.b", -2);
    bl_gguf_writer_set_str(w, "k.s", "hello");
    bl_gguf_writer_set_arr(w, "k.arr", GT_I32, arr, 3);
    bl_gguf_writer_set_arr_str(w, "k.sarr", strs, NULL, 3);
    bl_gguf_writer_set_f32(w, "k.f", 0.5f);
    bl_gguf_writer_set_bool(w, "k.t", 1);
    bl_gguf_writer_set_u32(w, "general.alignment", 32);
    bl_gguf_writer_add_tensor(w, "ta", TT_F32, 2, ne_a, base_ta);
    bl_gguf_writer_add_tensor(w, "tb", TT_F16, 1, ne_b, base_tb);
    unsigned char *got = NULL;
    size_t n = 0;
    bl_err err = {0, ""};
    int rc = writer_bytes(w, &got, &n, &err);
    ok(rc == 0 && same_bytes(got, n, o->b.p, o->b.n, 32, "base"),
       "base file: writer bytes equal the hand-built bytes (%zu bytes: header ends at %zu, "
       "data at %zu, tensor data padded to 32)", o->b.n, o->header_end, o->data_start);
    free(got);
    bl_gguf_writer_free(w);

    bl_gguf *g = NULL;
    unsigned char *img = exact_copy(o->b.p, o->b.n);
    rc = bl_gguf_open_memory(&g, img, o->b.n, "base.gguf", &err);
    ok(rc == 0 && bl_gguf_n_kv(g) == B_NKV && bl_gguf_n_tensors(g) == B_NT &&
       bl_gguf_data_offset(g) == o->data_start &&
       bl_gguf_tensor(g, 1)->offset == o->data_start + 64,
       "base file opens: %d keys, %d tensors, data at %zu (%s)", B_NKV, B_NT, o->data_start,
       rc ? err.msg : "ok");
    bl_gguf_free(g);
    free(img);
}

static void test_open_errors(const char *dir)
{
    char path[4200];
    bl_err err;
    bl_gguf *g;
    int rc;

    snprintf(path, sizeof path, "%s/missing.gguf", dir);
    g = (bl_gguf *)&g;
    memset(&err, 0, sizeof err);
    rc = bl_gguf_open(&g, path, &err);
    ok(rc == BL_EIO && g == NULL && err.code == BL_EIO && strstr(err.msg, path) &&
       strstr(err.msg, "cannot open"),
       "missing file: BL_EIO, message names the path (msg '%s')", err.msg);

    g = (bl_gguf *)&g;
    memset(&err, 0, sizeof err);
    rc = bl_gguf_open(&g, dir, &err);
    ok(rc == BL_EIO && g == NULL && strstr(err.msg, "directory"),
       "a directory: BL_EIO 'is a directory' (msg '%s')", err.msg);

    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    write_bytes(path, "", 0);
    g = (bl_gguf *)&g;
    memset(&err, 0, sizeof err);
    rc = bl_gguf_open(&g, path, &err);
    ok(rc == BL_EFORMAT && g == NULL && strstr(err.msg, path) &&
       strstr(err.msg, "not a GGUF file"),
       "empty file: BL_EFORMAT 'not a GGUF file' (msg '%s')", err.msg);

    /* a truncated file through the mapping path (the mapping ends exactly
     * where the file does) */
    struct base o;
    build_base(&o);
    snprintf(path, sizeof path, "%s/cut.gguf", dir);
    write_bytes(path, o.b.p, o.b.n - 1);
    g = (bl_gguf *)&g;
    memset(&err, 0, sizeof err);
    rc = bl_gguf_open(&g, path, &err);
    ok(rc == BL_EFORMAT && g == NULL && strstr(err.msg, "'tb'") && strstr(err.msg, "past the end"),
       "file missing its last byte: BL_EFORMAT, tensor 'tb' runs past the end (msg '%s')",
       err.msg);
    b_free(&o.b);

    /* a character device */
    g = (bl_gguf *)&g;
    memset(&err, 0, sizeof err);
    rc = bl_gguf_open(&g, "/dev/null", &err);
    ok(rc == BL_EIO && g == NULL && strstr(err.msg, "/dev/null") &&
       strstr(err.msg, "not a regular file"),
       "/dev/null: BL_EIO 'not a regular file' (msg '%s')", err.msg);

    /* no name given: messages say <memory> */
    g = (bl_gguf *)&g;
    memset(&err, 0, sizeof err);
    rc = bl_gguf_open_memory(&g, "GGUF\1\0\0\0", 8, NULL, &err);
    ok(rc == BL_EUNSUPPORTED && g == NULL && strncmp(err.msg, "<memory>: ", 10) == 0,
       "open_memory with no name: messages start '<memory>: ' (msg '%s')", err.msg);

    /* a NULL err is allowed */
    g = (bl_gguf *)&g;
    rc = bl_gguf_open_memory(&g, "GGUF\4\0\0\0", 8, "x", NULL);
    ok(rc == BL_EUNSUPPORTED && g == NULL, "a NULL err pointer is allowed");
}

static void test_format_errors(void)
{
    struct base o;
    struct patch pt = {0};
    build_base(&o);
    test_base_is_valid(&o);
    const struct base *B = &o;

    /* header */
    fresh(&pt, B); pt.p[3] = 'L';
    expect_fail(pt.p, pt.n, BL_EFORMAT, "bad magic", NULL, "magic \"GGUL\"");
    fresh(&pt, B); p_u32(pt.p, 0, 0x47475546u);   /* "FUGG": byte-swapped */
    expect_fail(pt.p, pt.n, BL_EFORMAT, "not a GGUF file", NULL, "byte-swapped magic");
    expect_fail((const unsigned char *)"", 0, BL_EFORMAT, "not a GGUF file", NULL,
                "empty image (0 bytes)");
    fresh(&pt, B); p_u32(pt.p, 4, 1);
    expect_fail(pt.p, pt.n, BL_EUNSUPPORTED, "version 1", "not supported", "version 1");
    fresh(&pt, B); p_u32(pt.p, 4, 4);
    expect_fail(pt.p, pt.n, BL_EUNSUPPORTED, "version 4", "not supported", "version 4");
    fresh(&pt, B); p_u32(pt.p, 4, 0);
    expect_fail(pt.p, pt.n, BL_EUNSUPPORTED, "version 0", "not supported", "version 0");

    /* counts */
    fresh(&pt, B); p_u64(pt.p, 16, 1000000);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "1000000 keys", "more than a file", "n_kv 10^6");
    fresh(&pt, B); p_u64(pt.p, 8, 1000000);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "1000000 tensors", "more than a file", "n_tensors 10^6");
    fresh(&pt, B); p_u64(pt.p, 16, UINT64_MAX);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "more than a file", NULL, "n_kv 2^64-1");
    fresh(&pt, B); p_u64(pt.p, 8, (uint64_t)1 << 63);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "more than a file", NULL, "n_tensors 2^63");
    /* one key more than there is: the reader takes the first tensor info
     * for key 8 ("ta", type 2 = uint16, value 2 bytes), then reads the
     * tensor infos out of step and runs off the end */
    fresh(&pt, B); p_u64(pt.p, 16, B_NKV + 1);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "past the end", NULL, "n_kv one more than present");
    fresh(&pt, B); p_u64(pt.p, 8, B_NT + 1);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "tensor", NULL, "n_tensors one more than present");

    /* strings */
    fresh(&pt, B); p_u64(pt.p, B->kv_key[0], 1000);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "key 0", "past the end", "key length 1000 in a small file");
    fresh(&pt, B); p_u64(pt.p, B->kv_key[0], UINT64_MAX);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "key 0", "past the end", "key length 2^64-1");
    fresh(&pt, B); p_u64(pt.p, B->kv_val[2], pt.n - B->kv_val[2] - 8 + 1);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.s'", "past the end",
                "string value one byte longer than the rest of the file");
    fresh(&pt, B); p_u64(pt.p, B->kv_val[4] + 12, 5000);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "string array element", "past the end",
                "string array element length 5000");
    fresh(&pt, B); p_u64(pt.p, B->t_name[1], 1u << 20);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "name of tensor 1", "past the end",
                "tensor name length 2^20");

    /* keys */
    fresh(&pt, B); pt.p[B->kv_key[1] + 8 + 1] = '\0';   /* "k\0b" */
    expect_fail(pt.p, pt.n, BL_EFORMAT, "key 1", "NUL", "key with a NUL byte");
    /* an empty key: built whole */
    {
        struct buf e = {0};
        b_raw(&e, "GGUF", 4); b_u32(&e, 3); b_u64(&e, 0); b_u64(&e, 1);
        b_str(&e, ""); b_u32(&e, GT_U32); b_u32(&e, 5);
        b_zeros(&e, 16);
        expect_fail(e.p, e.n, BL_EFORMAT, "key 0", "empty", "empty key");
        b_free(&e);
    }
    fresh(&pt, B); pt.p[B->kv_key[1] + 8 + 2] = 'a';    /* "k.b" -> "k.a" */
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.a'", "appears twice", "duplicate key");
    fresh(&pt, B); pt.p[B->kv_key[7] + 8 + 16] = 'a';   /* general.alignmena, still unique */
    {
        unsigned char *img = exact_copy(pt.p, pt.n);
        bl_gguf *g = NULL;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, pt.n, "x", &err);
        ok(rc == 0 && bl_gguf_find_key(g, "general.alignmena") == 7,
           "control: a one-byte key change that keeps keys unique still opens");
        bl_gguf_free(g);
        free(img);
    }

    /* value types */
    fresh(&pt, B); p_u32(pt.p, B->kv_type[0], 13);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.a'", "unknown type 13", "value type 13");
    fresh(&pt, B); p_u32(pt.p, B->kv_type[0], 0xffffffffu);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.a'", "unknown type", "value type 2^32-1");
    fresh(&pt, B); p_u32(pt.p, B->kv_val[3], GT_ARR);
    expect_fail(pt.p, pt.n, BL_EUNSUPPORTED, "'k.arr'", "array of arrays", "array of arrays");
    fresh(&pt, B); p_u32(pt.p, B->kv_val[3], 13);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.arr'", "unknown element type 13",
                "array element type 13");

    /* array counts */
    fresh(&pt, B); p_u64(pt.p, B->kv_val[3] + 4, 1000000);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.arr'", "past the end", "int32 array count 10^6");
    fresh(&pt, B); p_u64(pt.p, B->kv_val[3] + 4, (uint64_t)1 << 62);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.arr'", "past the end",
                "int32 array count 2^62 (count x 4 overflows)");
    fresh(&pt, B); p_u64(pt.p, B->kv_val[4] + 4, 1000000);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.sarr'", "more than the file can hold",
                "string array count 10^6");
    fresh(&pt, B); p_u64(pt.p, B->kv_val[4] + 4, UINT64_MAX);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'k.sarr'", "more than the file can hold",
                "string array count 2^64-1");

    /* tensor infos */
    fresh(&pt, B); p_u32(pt.p, B->t_ndims[0], 0);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "0 dimensions", "n_dims 0");
    fresh(&pt, B); p_u32(pt.p, B->t_ndims[0], 5);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "5 dimensions", "n_dims 5");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[0] + 8, 0);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "invalid dimension 1 of 0", "ne[1] = 0");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[1], 0);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'tb'", "invalid dimension 0 of 0", "ne[0] = 0");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[0], (uint64_t)1 << 63);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "invalid dimension 0", "ne[0] = 2^63");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[0], (uint64_t)1 << 32); p_u64(pt.p, B->t_ne[0] + 8, (uint64_t)1 << 32);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "invalid dimension 1",
                "ne {2^32, 2^32}: element count overflows int64");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[0], (uint64_t)1 << 40); p_u64(pt.p, B->t_ne[0] + 8, (uint64_t)1 << 22);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "too large",
                "f32 ne {2^40, 2^22}: byte size overflows size_t");
    fresh(&pt, B); p_u32(pt.p, B->t_type[0], 99);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "unknown type 99", "tensor type 99");
    fresh(&pt, B); p_u32(pt.p, B->t_type[0], 31);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "unknown type 31", "tensor type 31 (unassigned)");
    fresh(&pt, B); p_u32(pt.p, B->t_type[0], TT_Q8_0); p_u64(pt.p, B->t_ne[0], 33);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "33 elements", "q8_0 row of 33 elements");
    fresh(&pt, B); pt.p[B->t_name[0] + 8 + 1] = '\0';
    expect_fail(pt.p, pt.n, BL_EFORMAT, "tensor 0", "NUL", "tensor name with a NUL byte");
    {
        /* an empty tensor name: built whole */
        struct buf e = {0};
        b_raw(&e, "GGUF", 4); b_u32(&e, 3); b_u64(&e, 1); b_u64(&e, 0);
        b_str(&e, ""); b_u32(&e, 1); b_u64(&e, 4); b_u32(&e, TT_F32); b_u64(&e, 0);
        b_align(&e, 32);
        b_zeros(&e, 16);
        expect_fail(e.p, e.n, BL_EFORMAT, "tensor 0", "empty name", "empty tensor name");
        b_free(&e);
    }

    /* tensor data */
    fresh(&pt, B); p_u64(pt.p, B->t_off[1], 65);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'tb'", "not a multiple of the alignment 32",
                "tensor offset 65");
    fresh(&pt, B); p_u64(pt.p, B->t_off[1], 4096);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'tb'", "past the end", "tensor offset 4096");
    fresh(&pt, B); p_u64(pt.p, B->t_off[1], (uint64_t)1 << 63);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'tb'", "beyond any file", "tensor offset 2^63");
    fresh(&pt, B); p_u64(pt.p, B->t_off[1], UINT64_MAX - 31);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'tb'", "beyond any file", "tensor offset 2^64-32");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[1], 9);         /* tb 18 bytes: 2 past the end */
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'tb'", "past the end", "last tensor 2 bytes too long");
    fresh(&pt, B); p_u64(pt.p, B->t_off[1], 0);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "overlap", "'ta'", "two tensors at offset 0");
    fresh(&pt, B); p_u64(pt.p, B->t_off[1], 32);        /* ta covers 0..48 */
    expect_fail(pt.p, pt.n, BL_EFORMAT, "overlap", "'tb'", "tensor at 32 inside one at 0..48");
    fresh(&pt, B); p_u64(pt.p, B->t_ne[0] + 8, 4);    /* ta [4,4]: 64 bytes, 0..64; tb at 64 */
    {
        unsigned char *img = exact_copy(pt.p, pt.n);
        bl_gguf *g = NULL;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, pt.n, "x", &err);
        ok(rc == 0 && bl_gguf_tensor(g, 0)->nbytes == 64,
           "control: tensors at 0..64 and 64..80 touch but do not overlap (%s)",
           rc ? err.msg : "ok");
        bl_gguf_free(g);
        free(img);
    }
    fresh(&pt, B); pt.p[B->t_name[1] + 8 + 1] = 'a';   /* "tb" -> "ta" */
    expect_fail(pt.p, pt.n, BL_EFORMAT, "'ta'", "appears twice", "duplicate tensor name");

    /* general.alignment */
    fresh(&pt, B); p_u32(pt.p, B->kv_type[7], GT_I32);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "general.alignment", "int32",
                "general.alignment of type int32");
    fresh(&pt, B); p_u32(pt.p, B->kv_type[7], GT_F32);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "general.alignment", "not uint32",
                "general.alignment of type float32");
    fresh(&pt, B); p_u32(pt.p, B->align_val, 0);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "general.alignment 0", NULL, "general.alignment 0");
    fresh(&pt, B); p_u32(pt.p, B->align_val, 48);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "general.alignment 48", "not a power of two",
                "general.alignment 48");
    fresh(&pt, B); p_u32(pt.p, B->align_val, 0x80000001u);
    expect_fail(pt.p, pt.n, BL_EFORMAT, "2147483649", "not a power of two",
                "general.alignment 2^31+1");
    {
        /* 2^21 is a power of two: the reader may refuse it as too large, but
         * the message must not say it is not a power of two */
        fresh(&pt, B); p_u32(pt.p, B->align_val, 1u << 21);
        unsigned char *img = exact_copy(pt.p, pt.n);
        bl_gguf *g = NULL;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, pt.n, "bad.gguf", &err);
        ok(rc == BL_EFORMAT && strstr(err.msg, "2097152") &&
           !strstr(err.msg, "not a power of two"),
           "general.alignment 2^21: BL_EFORMAT whose message does not call it "
           "'not a power of two' (msg '%s')", err.msg);
        bl_gguf_free(g);
        free(img);
    }
    /* alignment 64 from the key: the base offsets (0 and 64) are still
     * multiples, the data section moves to the next 64 */
    fresh(&pt, B); p_u32(pt.p, B->align_val, 64);
    {
        unsigned char *img = exact_copy(pt.p, pt.n);
        bl_gguf *g = NULL;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, pt.n, "x", &err);
        size_t want = (B->header_end + 63) / 64 * 64;
        /* the data section moves from data_start to `want`: with 416 bytes
         * the file is long enough only if want + 80 <= size */
        if (want + 80 <= pt.n)
            ok(rc == 0 && bl_gguf_data_offset(g) == want, "alignment 64 read from the key");
        else
            ok(rc == BL_EFORMAT && strstr(err.msg, "'tb'") && strstr(err.msg, "past the end"),
               "alignment 64 read from the key: data section moves to %zu, 'tb' now runs "
               "past the end (msg '%s')", want, err.msg);
        bl_gguf_free(g);
        free(img);
    }
    fresh(&pt, B); p_u32(pt.p, B->align_val, 16);
    p_u64(pt.p, B->t_off[1], 48);                       /* multiple of 16, not of 32 */
    {
        unsigned char *img = exact_copy(pt.p, pt.n);
        bl_gguf *g = NULL;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, pt.n, "x", &err);
        size_t want = (B->header_end + 15) / 16 * 16;
        ok(rc == 0 && bl_gguf_data_offset(g) == want &&
           bl_gguf_tensor(g, 1)->offset == want + 48,
           "general.alignment 16: offset 48 accepted, data section at %zu (%s)", want,
           rc ? err.msg : "ok");
        bl_gguf_free(g);
        free(img);
    }

    /* the data section itself */
    ok(B->header_end % 32 != 0, "base header ends at %zu, not a multiple of 32", B->header_end);
    expect_fail(B->b.p, B->header_end, BL_EFORMAT, "data section", "past the end",
                "file ending right after the tensor infos");
    expect_fail(B->b.p, B->data_start - 1, BL_EFORMAT, "data section", "past the end",
                "file ending one byte before the data section");
    expect_fail(B->b.p, B->data_start, BL_EFORMAT, "'ta'", "past the end",
                "file ending where the data section starts");

    free(pt.p);
    b_free(&o.b);
}

/* ------------------------------------------------- 8. truncation */

static void test_truncation(void)
{
    struct base o;
    build_base(&o);
    size_t bad_status = 0, bad_msg = 0, first_bad = SIZE_MAX;
    char first_msg[600] = "";
    for (size_t len = 0; len < o.b.n; len++) {
        unsigned char *img = exact_copy(o.b.p, len);
        bl_gguf *g = (bl_gguf *)&g;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, len, "cut.gguf", &err);
        int st_ok = rc == BL_EFORMAT && g == NULL && err.code == BL_EFORMAT;
        int msg_ok = strncmp(err.msg, "cut.gguf: ", 10) == 0 &&
                     (strstr(err.msg, "truncated") || strstr(err.msg, "past the end") ||
                      strstr(err.msg, "more than") || strstr(err.msg, "not a GGUF file"));
        if (!st_ok)
            bad_status++;
        if (!msg_ok)
            bad_msg++;
        if ((!st_ok || !msg_ok) && first_bad == SIZE_MAX) {
            first_bad = len;
            snprintf(first_msg, sizeof first_msg, "status %d, '%s'", rc, err.msg);
        }
        if (rc == BL_OK && g && g != (bl_gguf *)&g)
            bl_gguf_free(g);
        free(img);
    }
    ok(bad_status == 0, "every one of the %zu proper prefixes of a valid file fails with "
       "BL_EFORMAT", o.b.n);
    ok(bad_msg == 0, "every prefix's message names the file and says truncated / past the end");
    if (first_bad != SIZE_MAX)
        diag("first bad prefix: %zu bytes: %s", first_bad, first_msg);

    /* the same for the round trip file, every prefix (bigger, more types) */
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    unsigned char *tdata[N_RT] = {0};
    rt_fill_writer(w, tdata);
    unsigned char *bytes = NULL;
    size_t n = 0;
    bl_err err = {0, ""};
    int rc = writer_bytes(w, &bytes, &n, &err);
    bad_status = 0;
    first_bad = SIZE_MAX;
    for (size_t len = 0; rc == 0 && len < n; len++) {
        unsigned char *img = exact_copy(bytes, len);
        bl_gguf *g = NULL;
        int r = bl_gguf_open_memory(&g, img, len, "cut.gguf", &err);
        if (r != BL_EFORMAT || g) {
            bad_status++;
            if (first_bad == SIZE_MAX)
                first_bad = len;
        }
        bl_gguf_free(g);
        free(img);
    }
    ok(rc == 0 && bad_status == 0, "every one of the %zu proper prefixes of the round-trip file "
       "fails with BL_EFORMAT", n);
    if (first_bad != SIZE_MAX)
        diag("first bad prefix: %zu bytes", first_bad);
    free(bytes);
    for (size_t i = 0; i < N_RT; i++)
        free(tdata[i]);
    bl_gguf_writer_free(w);
    b_free(&o.b);
}

/* ------------------------------------------------- 9. hostile sizes */

static void test_hostile(void)
{
    /* 10^6 keys claimed by a 64-byte file */
    struct buf b = {0};
    b_raw(&b, "GGUF", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 1000000);
    b_str(&b, "a"); b_u32(&b, GT_U8); b_u8(&b, 1);
    b_zeros(&b, 64 - b.n);
    double t0 = now_seconds();
    for (int i = 0; i < 1000; i++) {
        unsigned char *img = exact_copy(b.p, b.n);
        bl_gguf *g = NULL;
        bl_err err = {0, ""};
        int rc = bl_gguf_open_memory(&g, img, b.n, "hostile.gguf", &err);
        if (i == 0)
            ok(rc == BL_EFORMAT && strstr(err.msg, "1000000 keys") && strstr(err.msg, "64 bytes"),
               "64-byte file claiming 10^6 keys: BL_EFORMAT before reading them (msg '%s')",
               err.msg);
        bl_gguf_free(g);
        free(img);
    }
    double dt = now_seconds() - t0;
    ok(dt < 1.0, "1000 rejections of that header take %.4f s (< 1 s: no allocation or work per "
       "claimed key)", dt);
    b_free(&b);

    /* 10^6 keys that are really there (20 MB): parsed in n log n, and a
     * duplicate of the first key at the very end is found */
    const uint32_t nk = 1000000;
    b_raw(&b, "GGUF", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, nk);
    char key[16];
    for (uint32_t i = 0; i < nk; i++) {
        snprintf(key, sizeof key, "k%07" PRIu32, i == nk - 1 ? 0 : i);
        b_str(&b, key);
        b_u32(&b, GT_U8);
        b_u8(&b, (unsigned)i);
    }
    bl_gguf *g = NULL;
    bl_err err = {0, ""};
    t0 = now_seconds();
    int rc = bl_gguf_open_memory(&g, b.p, b.n, "many.gguf", &err);
    dt = now_seconds() - t0;
    ok(rc == BL_EFORMAT && strstr(err.msg, "'k0000000'") && strstr(err.msg, "appears twice"),
       "10^6 keys, the last repeating the first: BL_EFORMAT duplicate (msg '%s')", err.msg);
    ok(dt < 20.0, "parsing 10^6 keys took %.2f s (a quadratic duplicate check would take hours)",
       dt);
    bl_gguf_free(g);
    /* make them unique: the file opens */
    snprintf(key, sizeof key, "k%07" PRIu32, nk - 1);
    memcpy(b.p + b.n - 1 - 4 - 8, key, 8);
    g = NULL;
    t0 = now_seconds();
    rc = bl_gguf_open_memory(&g, b.p, b.n, "many.gguf", &err);
    dt = now_seconds() - t0;
    uint32_t v = 0;
    ok(rc == 0 && bl_gguf_n_kv(g) == nk && bl_gguf_get_u32(g, "k0999999", &v, &err) == 0 &&
       v == (uint8_t)(nk - 1),
       "10^6 unique keys open in %.2f s (%s)", dt, rc ? err.msg : "ok");
    bl_gguf_free(g);
    b_free(&b);

    /* a string array claiming 2^40 strings in a small file */
    b_raw(&b, "GGUF", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 1);
    b_str(&b, "tokenizer.ggml.tokens"); b_u32(&b, GT_ARR); b_u32(&b, GT_STR);
    b_u64(&b, (uint64_t)1 << 40);
    b_zeros(&b, 64);
    t0 = now_seconds();
    unsigned char *img = exact_copy(b.p, b.n);
    g = NULL;
    rc = bl_gguf_open_memory(&g, img, b.n, "hostile.gguf", &err);
    dt = now_seconds() - t0;
    ok(rc == BL_EFORMAT && strstr(err.msg, "more than the file can hold") && dt < 0.5,
       "string array claiming 2^40 strings: rejected at once (%.4f s, msg '%s')", dt, err.msg);
    free(img);
    b_free(&b);
}

int main(void)
{
    char *dir = make_tmp_dir();
    if (!dir)
        skip_all("cannot create a temporary directory");

    test_constants();
    test_exact_tiny();
    test_hand_built();
    test_round_trip(dir, 32);
    test_round_trip(dir, 64);
    test_write_failures(dir);
    test_getters();
    test_writer_args();
    test_open_errors(dir);
    test_format_errors();
    test_truncation();
    test_hostile();

    remove_tree(dir);
    free(dir);
    return done_testing();
}
