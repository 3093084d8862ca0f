/* tests/fuzz/fuzz-tokenizer.c: the llama2.c tokenizer.bin reader, and
 * encode/decode with real vocabularies.
 *
 * The first byte chooses the mode (data[0] % 4):
 *   0  tokenizer.bin: data[1..2] give the vocabulary size (1 + a uint16),
 *      data[3..] is the file, loaded from a memfd with
 *      bl_tokenizer_load_llama2c();
 *   3  the same with the vocabulary size that makes the file whole (the
 *      number of (score, length, bytes) records it holds), so mutations of a
 *      valid file get past the count check;
 *      a tokenizer that loads is walked (every id, every decode) and used to
 *      encode a few texts and the file's first bytes;
 *   1  data[1..] is text for the real tok512.bin ($BL_TESTDATA/models;
 *      skipped if absent), flags BOS/EOS from bits 2-3 of data[0];
 *   2  the same text for the Llama SentencePiece vocabulary
 *      ($BL_TESTDATA/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf).
 *
 * Text modes check what bitlens/tokenizer.h promises: ids in the
 * vocabulary, at most 3 len + 5 of them, BOS/EOS where asked, BL_ERANGE with
 * the count needed when the buffer is one id short, and that decoding the
 * ids one after the other (each with the previous id) gives back the text:
 * exactly after BOS (the dummy prefix space is dropped), with the one
 * leading space of the dummy prefix without BOS.
 *
 * Where the round trip must hold: for tok512.bin, any text.  Its vocabulary
 * writes a space as a plain ' ' and holds all 256 byte tokens, and every
 * token is a substring of the normalized text or one byte of it, so the
 * decoded bytes are the normalized text.  For the Llama vocabulary, text
 * that is valid UTF-8 and holds no U+2581 (which decodes to ' '): there a
 * symbol cut out of invalid UTF-8 can split a "▁" into byte tokens.
 */
#include "config.h"

#include <string.h>

#include <bitlens/gguf.h>
#include <bitlens/tokenizer.h>

#include "fuzz.h"

static int tok_fd = -1;
static int loaded;                  /* the real vocabularies were looked for */
static bl_tokenizer *tok512;        /* models/tok512.bin, or NULL */
static bl_tokenizer *spm;           /* the Llama SentencePiece vocabulary, or NULL */
static int spm_space_prefix = 1;    /* its tokenizer.ggml.add_space_prefix */

static char *testdata_path(const char *rel)
{
    const char *dir = getenv("BL_TESTDATA");
    if (!dir || !*dir)
        return NULL;
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static void load_real(void)
{
    bl_err err;
    char *p = testdata_path("models/tok512.bin");
    if (p && access(p, R_OK) == 0 && bl_tokenizer_load_llama2c(&tok512, p, 512, &err) != BL_OK) {
        fprintf(stderr, "fuzz-tokenizer: %s\n", err.msg);
        abort();
    }
    free(p);
    p = testdata_path("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    bl_gguf *g = NULL;
    if (p && access(p, R_OK) == 0) {
        if (bl_gguf_open(&g, p, &err) != BL_OK || bl_tokenizer_from_gguf(&spm, g, &err) != BL_OK) {
            fprintf(stderr, "fuzz-tokenizer: %s\n", err.msg);
            abort();
        }
        int asp;
        if (bl_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp, NULL) == BL_OK)
            spm_space_prefix = asp;
        bl_gguf_free(g);
    }
    free(p);
    loaded = 1;
}

/* The number of whole token records in a tokenizer.bin image. */
static int64_t count_tokens(const uint8_t *d, size_t n)
{
    int64_t count = 0;
    size_t o = 4;
    while (n >= 8 && o <= n - 8) {
        int32_t len = (int32_t)fuzz_rd_u32(d + o + 4);
        if (len < 0 || (size_t)len > n - o - 8)
            break;
        o += 8 + (size_t)len;
        count++;
    }
    return count;
}

static void tokenizer_file(const uint8_t *d, size_t n, int64_t n_vocab)
{
    char path[64];
    bl_tokenizer *t = NULL;
    bl_err err;
    if (tok_fd < 0 && (tok_fd = fuzz_memfd("fuzz-tokenizer")) < 0) {
        perror("fuzz-tokenizer: memfd_create");
        abort();
    }
    if (fuzz_memfd_fill(tok_fd, d, n) != 0) {
        perror("fuzz-tokenizer: writing the memfd");
        abort();
    }
    err.msg[0] = '\0';
    int rc = bl_tokenizer_load_llama2c(&t, fuzz_fd_path(path, sizeof path, tok_fd), n_vocab, &err);
    if (rc) {
        FUZZ_CHECK(t == NULL && rc < 0 && err.code == rc && err.msg[0] != '\0');
        return;
    }
    FUZZ_REACHED(FZ_PARSED | FZ_TOKENIZER);
    FUZZ_CHECK(bl_tokenizer_n_vocab(t) == n_vocab);
    FUZZ_CHECK(count_tokens(d, n) == n_vocab);
    fuzz_walk_tokenizer(t);
    fuzz_encode_texts(t, (const uint8_t *)d, n);
    FUZZ_REACHED(FZ_ENCODED);
    bl_tokenizer_free(t);
}

/* Encode and decode text with t; check the round trip if `exact`. */
static void text(const bl_tokenizer *t, const char *s, size_t n, unsigned flags, int space_prefix,
                 int exact)
{
    char *out;
    size_t out_len;
    fuzz_encode(t, s, n, flags, &out, &out_len);
    FUZZ_REACHED(FZ_ENCODED);
    if (!out)
        return;
    if (exact) {
        int bos = (flags & BL_TOK_BOS) && bl_tokenizer_bos(t) >= 0;
        size_t lead = !bos && space_prefix && n > 0;
        FUZZ_CHECK(out_len == n + lead);
        if (lead)
            FUZZ_CHECK(out[0] == ' ');
        FUZZ_CHECK(memcmp(out + lead, s, n) == 0);
        FUZZ_REACHED(FZ_ROUNDTRIP);
    }
    free(out);
}

static int has_lower_block(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81)
            return 1;
    return 0;
}

int FUZZ_ENTRY(tokenizer)(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!loaded)
        load_real();
    unsigned mode = data[0] % 4;
    unsigned flags = (data[0] >> 2) & 3;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;

    switch (mode) {
    case 0:
        if (size < 3)
            return 0;
        tokenizer_file(data + 3, size - 3, 1 + (int64_t)(data[1] | data[2] << 8));
        break;
    case 3: {
        int64_t v = count_tokens(rest, n);
        tokenizer_file(rest, n, v > 0 ? v : 1);
        break;
    }
    case 1:
        if (tok512)
            text(tok512, (const char *)rest, n, flags, 1, 1);
        break;
    case 2:
        if (spm)
            text(spm, (const char *)rest, n, flags, spm_space_prefix,
                 fuzz_utf8_valid(rest, n) && !has_lower_block(rest, n));
        break;
    }
    return 0;
}
