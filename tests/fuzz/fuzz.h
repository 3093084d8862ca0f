/* tests/fuzz/fuzz.h: shared by the fuzz targets and the replay driver.
 *
 * Each target file (fuzz-gguf.c, fuzz-llama2c.c, fuzz-tokenizer.c) defines
 * one entry point with FUZZ_ENTRY(name).  Built as a libFuzzer target that
 * is LLVMFuzzerTestOneInput; built with -DBL_FUZZ_REPLAY, the three files
 * are linked into tests/fuzz-replay and the entries are fuzz_gguf,
 * fuzz_llama2c and fuzz_tokenizer.
 *
 * A target never trusts the library: what the headers promise (a string
 * inside the file, an id inside the vocabulary, BL_ERANGE with the count
 * needed) is checked with FUZZ_CHECK.  Under libFuzzer a failed check
 * aborts, so a broken promise is a crash with its input saved; under the
 * replay driver it is a failed test and the driver goes on with the next
 * input (what the target had allocated for that input leaks).  Targets keep
 * their own state in statics (a memfd, a tokenizer loaded once); the
 * library has none.
 */
#ifndef BL_FUZZ_H
#define BL_FUZZ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef BL_FUZZ_REPLAY
#define FUZZ_ENTRY(name) fuzz_##name
/* What the last input reached (FZ_* bits), for the selftest to check that
 * valid inputs get past the parser.  Reset by the driver. */
extern unsigned fuzz_reached;
#define FUZZ_REACHED(bits) (fuzz_reached |= (unsigned)(bits))
int fuzz_gguf(const uint8_t *data, size_t size);
int fuzz_llama2c(const uint8_t *data, size_t size);
int fuzz_tokenizer(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_json(const uint8_t *data, size_t size);
int fuzz_trace(const uint8_t *data, size_t size);
int fuzz_report(const uint8_t *data, size_t size);
int fuzz_drift(const uint8_t *data, size_t size);
#else
#define FUZZ_ENTRY(name) LLVMFuzzerTestOneInput
#define FUZZ_REACHED(bits) ((void)0)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

/* A copy of a trace-looking input with every CRC that can be computed
 * made right, so that mutations get past the CRCs; NULL if the input does
 * not get that far (tests/fuzz/tracecrc.c). */
uint8_t *fuzz_fix_trace_crcs(const uint8_t *data, size_t size);

/* How far an input got. */
enum {
    FZ_PARSED = 1u << 0,     /* the container parsed (GGUF, tokenizer.bin) */
    FZ_TOKENIZER = 1u << 1,  /* a tokenizer was built */
    FZ_ENCODED = 1u << 2,    /* text was encoded and decoded */
    FZ_ROUNDTRIP = 1u << 3,  /* decode(encode(text)) == text was checked */
    FZ_MODEL = 1u << 4,      /* bl_model_load succeeded */
    FZ_DESCRIBE = 1u << 5,   /* loaded only with describe_only */
    FZ_EVAL = 1u << 6,       /* the forward pass ran */
    FZ_MODEL_TOK = 1u << 7,  /* a model loaded with a tokenizer.bin */
    FZ_RECORDS = 1u << 8,    /* a trace held every record type, all parsed */
    FZ_REPORT = 1u << 9,     /* bl_report_compute succeeded */
    FZ_DRIFT_TEXT = 1u << 10 /* every drift feature of the full scorer computed */
};

/* Where a target's loops write what they read, so reads are not optimized
 * away (ASan checks each one). */
__attribute__((unused)) static volatile unsigned fuzz_sink;

#define FUZZ_CHECK(cond)                                                      \
    do {                                                                      \
        if (!(cond))                                                          \
            fuzz_fail(__FILE__, __LINE__, #cond);                             \
    } while (0)

#ifdef BL_FUZZ_REPLAY
/* The driver records the failure and goes on with the next input. */
__attribute__((noreturn)) void fuzz_replay_fail(const char *file, int line, const char *expr);
#define fuzz_fail fuzz_replay_fail
#else
__attribute__((noreturn, unused))
static void fuzz_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
#endif

/* Touch every byte of [p, p+n). */
__attribute__((unused))
static void fuzz_touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    fuzz_sink += s;
}

/* An anonymous in-memory file; -1 if memfd_create fails. */
__attribute__((unused))
static int fuzz_memfd(const char *name)
{
    return memfd_create(name, MFD_CLOEXEC);
}

/* Make fd hold exactly data[0..size-1]; 0 or -1. */
__attribute__((unused))
static int fuzz_memfd_fill(int fd, const void *data, size_t size)
{
    const unsigned char *p = data;
    if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, p + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

/* "/proc/self/fd/N" for fd into buf. */
__attribute__((unused))
static const char *fuzz_fd_path(char *buf, size_t cap, int fd)
{
    snprintf(buf, cap, "/proc/self/fd/%d", fd);
    return buf;
}

/* Little-endian reads from the input. */
__attribute__((unused))
static uint32_t fuzz_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* 1 if s[0..n-1] is well-formed UTF-8 (no overlongs, surrogates or values
 * above U+10FFFF). */
__attribute__((unused))
static int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len)
            return 0;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* ---- tokenizer checks shared by the targets (need <bitlens/tokenizer.h>) */
#ifdef BITLENS_TOKENIZER_H
#include <string.h>

/* Every accessor of every id, and every decode (after nothing and after
 * BOS) into a buffer of exactly the size asked for. */
__attribute__((unused))
static void fuzz_walk_tokenizer(const bl_tokenizer *t)
{
    int64_t n = bl_tokenizer_n_vocab(t);
    int32_t bos = bl_tokenizer_bos(t), eos = bl_tokenizer_eos(t);
    FUZZ_CHECK(n >= 1 && n <= INT32_MAX);
    FUZZ_CHECK(bos >= -1 && bos < n);
    FUZZ_CHECK(eos >= -1 && eos < n);
    FUZZ_CHECK(bl_tokenizer_model(t) != NULL);
    for (int32_t id = 0; id < n; id++) {
        int kind = bl_tokenizer_kind(t, id);
        FUZZ_CHECK(kind >= BL_TOKEN_NORMAL && kind <= BL_TOKEN_BYTE);
        size_t len = (size_t)-1;
        const char *p = bl_tokenizer_piece(t, id, &len);
        FUZZ_CHECK(p != NULL && len != (size_t)-1);
        fuzz_touch(p, len);
        float sc = bl_tokenizer_score(t, id);
        fuzz_touch(&sc, sizeof sc);
        for (int k = 0; k < 2; k++) {
            int32_t prev = k == 0 ? -1 : bos;
            size_t need = bl_tokenizer_decode(t, prev, id, NULL, 0);
            FUZZ_CHECK(need <= (len > 1 ? len : 1));
            char *buf = malloc(need ? need : 1);
            if (!buf)
                continue;
            size_t got = bl_tokenizer_decode(t, prev, id, buf, need);
            FUZZ_CHECK(got == need);
            fuzz_touch(buf, got);
            free(buf);
        }
    }
}

/* Encode text[0..len-1] with `flags` and check what bitlens/tokenizer.h
 * promises: BL_OK with at most 3 len + 5 ids, all in the vocabulary, BOS and
 * EOS where asked; with a buffer one id too small, BL_ERANGE with the count
 * needed and the same leading ids.  The ids are decoded one after the other
 * (each with the previous id) and the bytes returned in *out (malloc'd,
 * *out_len bytes); NULL if memory ran out.  Returns the number of ids. */
__attribute__((unused))
static int64_t fuzz_encode(const bl_tokenizer *t, const char *text, size_t len, unsigned flags,
                           char **out, size_t *out_len)
{
    int64_t nv = bl_tokenizer_n_vocab(t);
    int32_t bos = bl_tokenizer_bos(t), eos = bl_tokenizer_eos(t);
    /* "the count never exceeds 3 * len + 5" (it was "len + 3" until the
     * fuzzer found tests/fuzz/regress/tokenizer-encode-bound) */
    int64_t cap = 3 * (int64_t)len + 5, n = -1;
    *out = NULL;
    *out_len = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids)
        return 0;
    int rc = bl_tokenizer_encode(t, text, len, flags, ids, cap, &n);
    if (rc == BL_ENOMEM) {
        free(ids);
        return 0;
    }
    FUZZ_CHECK(rc == BL_OK || rc == BL_ERANGE);
    FUZZ_CHECK(n >= 0 && n <= cap);   /* the bound bitlens/tokenizer.h promises */
    FUZZ_CHECK(rc == BL_OK);
    for (int64_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
    int64_t extra = ((flags & BL_TOK_BOS) && bos >= 0) + ((flags & BL_TOK_EOS) && eos >= 0);
    if (len == 0)
        FUZZ_CHECK(n == extra);
    else
        FUZZ_CHECK(n > extra);
    if ((flags & BL_TOK_BOS) && bos >= 0)
        FUZZ_CHECK(ids[0] == bos);
    if ((flags & BL_TOK_EOS) && eos >= 0)
        FUZZ_CHECK(ids[n - 1] == eos);

    /* one id too few (an exactly sized buffer, so ASan sees a write past
     * it): BL_ERANGE, the count needed, and the first cap ids written */
    if (n > 0) {
        int32_t *small = n > 1 ? malloc((size_t)(n - 1) * sizeof *small) : NULL;
        if (n == 1 || small) {
            int64_t n2 = -1;
            rc = bl_tokenizer_encode(t, text, len, flags, small, n - 1, &n2);
            if (rc != BL_ENOMEM) {
                FUZZ_CHECK(rc == BL_ERANGE);
                FUZZ_CHECK(n2 == n);
                if (n > 1)
                    FUZZ_CHECK(memcmp(small, ids, (size_t)(n - 1) * sizeof *ids) == 0);
            }
            free(small);
        }
    }

    size_t total = 0;
    for (int64_t i = 0; i < n; i++)
        total += bl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], NULL, 0);
    char *s = malloc(total + 1);
    if (s) {
        size_t o = 0;
        for (int64_t i = 0; i < n; i++)
            o += bl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], s + o, total - o);
        FUZZ_CHECK(o == total);
        s[total] = '\0';
        *out = s;
        *out_len = total;
    }
    free(ids);
    return n;
}

/* A few texts that reach the tokenizer's corners. */
__attribute__((unused))
static const char *const fuzz_texts[] = {
    "", " ", "a", "Once upon a time", " leading and trailing ", "two  spaces\n\nnewlines\ttab",
    "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 100 \xf0\x9f\x98\x80", "\xe2\x96\x81 already", "<s> </s> <unk> <0x41>",
    "\xff\xfe invalid \xc3", "\xf0\x9f", "x\0y",
};
#define FUZZ_N_TEXTS (sizeof fuzz_texts / sizeof fuzz_texts[0])
/* lengths: "x\0y" holds a NUL */
__attribute__((unused))
static size_t fuzz_text_len(size_t i)
{
    return i == FUZZ_N_TEXTS - 1 ? 3 : strlen(fuzz_texts[i]);
}

/* Encode the fixed texts, then the first 64 bytes of the input as text. */
__attribute__((unused)) static void fuzz_encode_texts(const bl_tokenizer *t, const uint8_t *data,
                                                       size_t size)
{
    char *out;
    size_t out_len;
    for (size_t i = 0; i < FUZZ_N_TEXTS; i++) {
        fuzz_encode(t, fuzz_texts[i], fuzz_text_len(i), i % 4, &out, &out_len);
        free(out);
    }
    fuzz_encode(t, (const char *)data, size < 64 ? size : 64, BL_TOK_BOS, &out, &out_len);
    free(out);
}
#endif

#endif
