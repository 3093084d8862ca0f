/* lib/internal.h: helpers shared inside libbitlens (lib/, probes/,
 * analysis/).  Not installed; symbols are bli_ and not exported. */
#ifndef BITLENS_INTERNAL_H
#define BITLENS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <bitlens/common.h>

/* Programmer errors (a bad shape, a NULL that cannot be): file:line and
 * abort.  Bad input data is never an assert: it is a status and a message. */
#define BL_ASSERT(x)                                                          \
    do {                                                                      \
        if (!(x)) bli_assert_fail(__FILE__, __LINE__, #x);                    \
    } while (0)

_Noreturn void bli_assert_fail(const char *file, int line, const char *expr);

/* rc = call; if that is a failure, goto fail: for a run of calls (GGUF
 * writer keys) whose cleanup is at the function's `fail:` label.  The
 * function declares `int rc`. */
#define BLI_TRY(call)                                                         \
    do {                                                                      \
        if ((rc = (call)))                                                    \
            goto fail;                                                        \
    } while (0)

/* Set err (if not NULL) and return code. */
int bli_err(bl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int bli_verr(bl_err *err, int code, const char *fmt, va_list ap);

/* A read-only mapping of a whole file. */
struct bli_map {
    const unsigned char *data;   /* NULL for an empty file */
    size_t size;
};

int bli_map_file(struct bli_map *m, const char *path, bl_err *err);
void bli_unmap(struct bli_map *m);

/* Bounds check: 1 if [off, off+len) lies within size (no overflow). */
static inline int bli_in_bounds(size_t off, size_t len, size_t size)
{
    return off <= size && len <= size - off;
}

/* Little-endian loads from possibly unaligned memory. */
static inline uint32_t bli_rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t bli_rd_u64(const unsigned char *p)
{
    return (uint64_t)bli_rd_u32(p) | (uint64_t)bli_rd_u32(p + 4) << 32;
}
static inline int32_t bli_rd_i32(const unsigned char *p)
{
    uint32_t u = bli_rd_u32(p);
    int32_t v;
    __builtin_memcpy(&v, &u, 4);
    return v;
}
static inline float bli_rd_f32(const unsigned char *p)
{
    uint32_t u = bli_rd_u32(p);
    float v;
    __builtin_memcpy(&v, &u, 4);
    return v;
}

/* Little-endian stores to possibly unaligned memory. */
static inline void bli_wr_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void bli_wr_u64(unsigned char *p, uint64_t v)
{
    bli_wr_u32(p, (uint32_t)v);
    bli_wr_u32(p + 4, (uint32_t)(v >> 32));
}
static inline void bli_wr_f32(unsigned char *p, float f)
{
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    bli_wr_u32(p, u);
}

/* The base name of a path (pointer into it). */
const char *bli_basename(const char *path);

/* 1 if name matches one of the comma-separated fnmatch(3) globs. */
int bli_match_globs(const char *globs, const char *name);

/* malloc/calloc that treat n*size overflow as failure. */
void *bli_calloc(size_t n, size_t size);
void *bli_malloc_array(size_t n, size_t size);
char *bli_strdup(const char *s);
char *bli_strndup(const char *s, size_t n);

/* SHA-256 with a named implementation ("portable", "sha-ni"), for the
 * tests that check one against the other (lib/sha256.c). */
struct bl_sha256;
int bli_sha256_init_impl(struct bl_sha256 *h, const char *name);
const char *bli_sha256_impl_name(const struct bl_sha256 *h);

/* Number of threads to use for a request of n (n <= 0: all processors). */
int bli_threads(int n);

#endif
