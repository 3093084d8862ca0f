/* lib/sha256.c: SHA-256 from FIPS 180-4 (see bitlens/hash.h).
 *
 * Section numbers below are those of FIPS PUB 180-4 (August 2015).  The
 * message is processed in 512-bit blocks; each block is expanded into a
 * schedule of 64 words W[t] and mixed into the eight working variables
 * a..h by 64 rounds (6.2.2).  Words are big-endian (3.1).
 *
 * Two compression functions, chosen once per context by bl_sha256_init:
 * the portable one (plain loops, as the standard writes them) and one on
 * the x86 SHA extensions.  Tests run both on the same messages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#endif

#include <bitlens/hash.h>
#include "internal.h"

/* Internal, for tests/test-sha256.c: start a message on the named
 * compression function ("portable", "sha-ni"); BL_EUNSUPPORTED if this CPU
 * or build lacks it.  And the name of the one a context uses. */

/* Values of bl_sha256.impl.  0 marks a context not initialised, or spent by
 * bl_sha256_final. */
enum { IMPL_NONE = 0, IMPL_PORTABLE = 1, IMPL_SHA_NI = 2 };

/* 4.2.2: the first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u,
    0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u,
    0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

/* 5.3.3: the initial hash value H(0), the first 32 bits of the fractional
 * parts of the square roots of the first 8 primes. */
static const uint32_t H0[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

/* ---------------------------------------------------------------- portable */

/* 3.2: ROTR^n(x), 0 < n < 32. */
static inline uint32_t rotr(uint32_t x, int n)
{
    return x >> n | x << (32 - n);
}

/* 4.1.2: the six logical functions. */
static inline uint32_t ch(uint32_t x, uint32_t y, uint32_t z)
{
    return (x & y) ^ (~x & z);
}
static inline uint32_t maj(uint32_t x, uint32_t y, uint32_t z)
{
    return (x & y) ^ (x & z) ^ (y & z);
}
static inline uint32_t big_sigma0(uint32_t x)
{
    return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}
static inline uint32_t big_sigma1(uint32_t x)
{
    return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}
static inline uint32_t small_sigma0(uint32_t x)
{
    return rotr(x, 7) ^ rotr(x, 18) ^ x >> 3;
}
static inline uint32_t small_sigma1(uint32_t x)
{
    return rotr(x, 17) ^ rotr(x, 19) ^ x >> 10;
}

static inline uint32_t rd_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void wr_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* 6.2.2: mix n_blocks 64-byte blocks at p into state. */
static void blocks_portable(uint32_t state[8], const unsigned char *p, size_t n_blocks)
{
    uint32_t W[64];

    for (; n_blocks > 0; n_blocks--, p += 64) {
        /* 1. the message schedule */
        for (int t = 0; t < 16; t++)
            W[t] = rd_be32(p + 4 * t);
        for (int t = 16; t < 64; t++)
            W[t] = small_sigma1(W[t - 2]) + W[t - 7] + small_sigma0(W[t - 15]) + W[t - 16];

        /* 2. the working variables from the previous hash value */
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];

        /* 3. the 64 rounds */
        for (int t = 0; t < 64; t++) {
            uint32_t T1 = h + big_sigma1(e) + ch(e, f, g) + K[t] + W[t];
            uint32_t T2 = big_sigma0(a) + maj(a, b, c);
            h = g;
            g = f;
            f = e;
            e = d + T1;
            d = c;
            c = b;
            b = a;
            a = T1 + T2;
        }

        /* 4. the intermediate hash value */
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }
}

/* ---------------------------------------------------------------- SHA-NI */

#ifdef HAVE_SHA_NI
/* The same compression on the SHA extensions.  SHA256RNDS2 runs two rounds
 * on the state split as {A,B,E,F} and {C,D,G,H} (lane 3 down to lane 0),
 * taking W[t] + K[t] for both rounds from the low two lanes of its third
 * operand; after two rounds the old {A,B,E,F} is the new {C,D,G,H}.  The
 * schedule 6.2.2 step 1 for W[t..t+3] is SHA256MSG1 (the sigma0 terms plus
 * W[t-16..t-13]), plus W[t-7..t-4] from PALIGNR, then SHA256MSG2 (the sigma1
 * terms, which need W[t..t+1] for W[t+2..t+3]). */
__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_sha_ni(uint32_t state[8], const unsigned char *p, size_t n_blocks)
{
    /* Reverses the bytes of each 32-bit lane: big-endian words to lanes. */
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m128i abef = _mm_set_epi32((int)state[0], (int)state[1], (int)state[4], (int)state[5]);
    __m128i cdgh = _mm_set_epi32((int)state[2], (int)state[3], (int)state[6], (int)state[7]);

    for (; n_blocks > 0; n_blocks--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh;
        /* m0..m3: W[t..t+3], W[t+4..t+7], ... for the current t */
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);

        for (int t = 0; t < 64; t += 4) {
            __m128i wk = _mm_add_epi32(m0, _mm_loadu_si128((const __m128i *)(K + t)));
            /* rounds t, t+1: the result is the new {A,B,E,F}, and the old
             * {A,B,E,F} is now {C,D,G,H}, so the two variables trade roles */
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            /* rounds t+2, t+3 on lanes 2,3 of wk; they trade back */
            wk = _mm_shuffle_epi32(wk, 0x0e);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);

            if (t + 16 < 64) {
                /* W[t+16..t+19] from m0..m3 = W[t..t+15] */
                __m128i w = _mm_sha256msg1_epu32(m0, m1);
                w = _mm_add_epi32(w, _mm_alignr_epi8(m3, m2, 4));
                w = _mm_sha256msg2_epu32(w, m3);
                m0 = m1;
                m1 = m2;
                m2 = m3;
                m3 = w;
            } else {
                m0 = m1;
                m1 = m2;
                m2 = m3;
            }
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }

    uint32_t v[4];
    _mm_storeu_si128((__m128i *)v, abef);
    state[0] = v[3];
    state[1] = v[2];
    state[4] = v[1];
    state[5] = v[0];
    _mm_storeu_si128((__m128i *)v, cdgh);
    state[2] = v[3];
    state[3] = v[2];
    state[6] = v[1];
    state[7] = v[0];
}

/* SHA, SSSE3 and SSE4.1, asked once per process and kept (a fact about the
 * hardware, immutable after pthread_once, as in kernels.c: cpuid traps to the
 * hypervisor on a virtual machine, so it is not asked per context). */
static int has_sha_ni;
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_probe(void)
{
    unsigned a, b, c, d;
    int ok1 = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) && (c & bit_SSE4_1);
    int ok7 = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
    has_sha_ni = ok1 && ok7;
}

static int cpu_has_sha_ni(void)
{
    pthread_once(&sha_once, sha_probe);
    return has_sha_ni;
}
#endif

/* ---------------------------------------------------------------- streaming */

static void run_blocks(struct bl_sha256 *h, const unsigned char *p, size_t n_blocks)
{
#ifdef HAVE_SHA_NI
    if (h->impl == IMPL_SHA_NI) {
        blocks_sha_ni(h->state, p, n_blocks);
        return;
    }
#endif
    blocks_portable(h->state, p, n_blocks);
}

static void start(struct bl_sha256 *h, int impl)
{
    memcpy(h->state, H0, sizeof h->state);
    h->n_bytes = 0;
    memset(h->block, 0, sizeof h->block);
    h->impl = impl;
}

void bl_sha256_init(struct bl_sha256 *h)
{
    BL_ASSERT(h);
#ifdef HAVE_SHA_NI
    if (cpu_has_sha_ni()) {
        start(h, IMPL_SHA_NI);
        return;
    }
#endif
    start(h, IMPL_PORTABLE);
}

int bli_sha256_init_impl(struct bl_sha256 *h, const char *name)
{
    BL_ASSERT(h && name);
    if (strcmp(name, "portable") == 0) {
        start(h, IMPL_PORTABLE);
        return BL_OK;
    }
#ifdef HAVE_SHA_NI
    if (strcmp(name, "sha-ni") == 0 && cpu_has_sha_ni()) {
        start(h, IMPL_SHA_NI);
        return BL_OK;
    }
#endif
    return BL_EUNSUPPORTED;
}

const char *bli_sha256_impl_name(const struct bl_sha256 *h)
{
    switch (h->impl) {
    case IMPL_PORTABLE: return "portable";
    case IMPL_SHA_NI: return "sha-ni";
    default: return "none";
    }
}

void bl_sha256_update(struct bl_sha256 *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t have;

    BL_ASSERT(h && h->impl != IMPL_NONE);   /* initialised, not spent */
    if (n == 0)
        return;
    BL_ASSERT(p);
    have = (size_t)(h->n_bytes % 64);
    h->n_bytes += n;

    /* complete a pending partial block first */
    if (have > 0) {
        size_t take = 64 - have < n ? 64 - have : n;
        memcpy(h->block + have, p, take);
        p += take;
        n -= take;
        if (have + take < 64)
            return;
        run_blocks(h, h->block, 1);
    }
    /* whole blocks straight from the caller's memory */
    if (n >= 64) {
        run_blocks(h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    if (n > 0)
        memcpy(h->block, p, n);
}

void bl_sha256_final(struct bl_sha256 *h, unsigned char out[32])
{
    BL_ASSERT(h && h->impl != IMPL_NONE && out);

    /* 5.1.1: a 1 bit, zeros up to 448 mod 512 bits, then the length in bits
     * as a 64-bit big-endian integer. */
    uint64_t bits = h->n_bytes * 8;
    size_t have = (size_t)(h->n_bytes % 64);
    h->block[have++] = 0x80;
    if (have > 56) {
        memset(h->block + have, 0, 64 - have);
        run_blocks(h, h->block, 1);
        have = 0;
    }
    memset(h->block + have, 0, 56 - have);
    for (int i = 0; i < 8; i++)
        h->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    run_blocks(h, h->block, 1);

    /* 6.2.2: H0..H7 big-endian */
    for (int i = 0; i < 8; i++)
        wr_be32(out + 4 * i, h->state[i]);

    /* spent: wipe it, and let _update and _final assert against reuse */
    memset(h, 0, sizeof *h);
}

void bl_sha256_hex(const unsigned char digest[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    BL_ASSERT(digest && out);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

/* ---------------------------------------------------------------- files */

#define FILE_BUF (64 * 1024)                  /* bytes per read */
#define PROGRESS_EVERY ((uint64_t)64 << 20)   /* bytes between progress calls */

static int stopped(bl_err *err, const char *path, uint64_t done, uint64_t total)
{
    return bli_err(err, BL_ESTOPPED, "%s: stopped by the progress callback after %llu of %llu bytes",
                   path, (unsigned long long)done, (unsigned long long)total);
}

int bl_sha256_file(const char *path, char out_hex[65],
                   int (*progress)(void *user, uint64_t done, uint64_t total),
                   void *user, bl_err *err)
{
    unsigned char buf[FILE_BUF], digest[32];
    struct bl_sha256 h;
    struct stat st;
    uint64_t done = 0, total, next_report = PROGRESS_EVERY, reported = UINT64_MAX;
    int fd, rc;

    BL_ASSERT(path && out_hex);
    out_hex[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bli_err(err, BL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = bli_err(err, BL_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = bli_err(err, BL_EIO, "%s: is a directory", path);
        goto fail;
    }
    total = S_ISREG(st.st_mode) && st.st_size > 0 ? (uint64_t)st.st_size : 0;
#ifdef POSIX_FADV_SEQUENTIAL
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);   /* a hint only */
#endif

    bl_sha256_init(&h);
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = bli_err(err, BL_EIO, "%s: cannot read at offset %llu: %s", path,
                         (unsigned long long)done, strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        bl_sha256_update(&h, buf, (size_t)got);
        done += (uint64_t)got;
        if (progress && done >= next_report) {
            next_report += PROGRESS_EVERY;
            reported = done;
            if (progress(user, done, total)) {
                rc = stopped(err, path, done, total);
                goto fail;
            }
        }
    }
    close(fd);
    /* the call at the end, unless the last one was already there */
    if (progress && reported != done && progress(user, done, total))
        return stopped(err, path, done, total);
    bl_sha256_final(&h, digest);
    bl_sha256_hex(digest, out_hex);
    return BL_OK;

fail:
    close(fd);
    return rc;
}
