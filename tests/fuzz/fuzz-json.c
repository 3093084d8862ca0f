/* tests/fuzz/fuzz-json.c: the tokenizer.json loader, and byte-level BPE on
 * arbitrary text.
 *
 * The first byte chooses the mode (data[0] % 4):
 *   0  data[1..] is a tokenizer.json (bl_tokenizer_load_hf_memory());
 *   1  data[1..] is a tokenizer.json, a NUL, then a tokenizer_config.json;
 *   3  data[1..] is a tokenizer.json, a NUL, then text to encode with it;
 *   2  data[1..] is text for the real GPT-2 vocabulary, loaded both from
 *      encoder.json + vocab.bpe and from ggml-vocab-gpt-2.gguf
 *      ($BL_TESTDATA; skipped if absent), flags BOS/EOS/SPECIAL from bits
 *      2-4 of data[0].
 *
 * A load that fails must say why (a status, no tokenizer, a message that
 * names the file).  A tokenizer that loads is walked (every id, every
 * decode: fuzz_walk_tokenizer()) and encodes the fixed texts, the input's
 * first 64 bytes and (mode 3) the given text with every flag, each checked
 * against what bitlens/tokenizer.h promises: BL_OK, at most 3 len + 5 ids,
 * all in the vocabulary, BOS and EOS where asked, BL_ERANGE with the count
 * needed (and the same leading ids) when the buffer is one id short.  A
 * byte-level tokenizer must decode its ids back to the text exactly (with
 * the one space its ByteLevel add_prefix_space puts in front), unless
 * special tokens were parsed or a Split removes text.  Then its vocabulary
 * is written as GGUF (bl_tokenizer_write_gguf()) and read back: what is
 * written must load, and a byte-level tokenizer must encode every text with
 * every flag as the original does.
 *
 * In mode 2 every text must round-trip exactly without BL_TOK_SPECIAL and
 * the two GPT-2 sources must agree id for id with every flag.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <bitlens/gguf.h>
#include <bitlens/tokenizer.h>

#include "fuzz.h"

static int loaded;
static bl_tokenizer *gpt2_files, *gpt2_gguf;   /* the real GPT-2 vocabulary, or NULL */

static char *testdata_path(const char *rel)
{
    const char *dir = getenv("BL_TESTDATA");
    if (!dir || !*dir)
        return NULL;
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    if (p && access(p, R_OK) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

static void load_real(void)
{
    bl_err err;
    char *e = testdata_path("tokenizers/gpt2/encoder.json"), *v = testdata_path("tokenizers/gpt2/vocab.bpe");
    char *g = testdata_path("tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    if (e && v && bl_tokenizer_load_gpt2(&gpt2_files, e, v, &err) != BL_OK) {
        fprintf(stderr, "fuzz-json: %s\n", err.msg);
        abort();
    }
    bl_gguf *gg = NULL;
    if (g && (bl_gguf_open(&gg, g, &err) != BL_OK || bl_tokenizer_from_gguf(&gpt2_gguf, gg, &err) != BL_OK)) {
        fprintf(stderr, "fuzz-json: %s\n", err.msg);
        abort();
    }
    bl_gguf_free(gg);
    free(e);
    free(v);
    free(g);
    loaded = 1;
}

/* Encode with the contract checks; the ids (malloc'd) and their count, or
 * NULL if memory ran out. */
static int32_t *encode_checked(const bl_tokenizer *t, const char *s, size_t len, unsigned flags, int64_t *n_out)
{
    int64_t nv = bl_tokenizer_n_vocab(t), cap = 3 * (int64_t)len + 5, n = -1;
    int32_t bos = bl_tokenizer_bos(t), eos = bl_tokenizer_eos(t);
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids)
        return NULL;
    int rc = bl_tokenizer_encode(t, s, len, flags, ids, cap, &n);
    if (rc == BL_ENOMEM) {
        free(ids);
        return NULL;
    }
    FUZZ_CHECK(rc == BL_OK);
    FUZZ_CHECK(n >= 0 && n <= cap);
    for (int64_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
    int64_t extra = ((flags & BL_TOK_BOS) && bos >= 0) + ((flags & BL_TOK_EOS) && eos >= 0);
    FUZZ_CHECK(n >= extra);
    if (len == 0)
        FUZZ_CHECK(n == extra);
    if ((flags & BL_TOK_BOS) && bos >= 0)
        FUZZ_CHECK(ids[0] == bos);
    if ((flags & BL_TOK_EOS) && eos >= 0)
        FUZZ_CHECK(ids[n - 1] == eos);
    if (n > 0) {
        int32_t *small = n > 1 ? malloc((size_t)(n - 1) * sizeof *small) : NULL;
        if (n == 1 || small) {
            int64_t n2 = -1;
            rc = bl_tokenizer_encode(t, s, len, flags, small, n - 1, &n2);
            if (rc != BL_ENOMEM) {
                FUZZ_CHECK(rc == BL_ERANGE && n2 == n);
                if (n > 1)
                    FUZZ_CHECK(memcmp(small, ids, (size_t)(n - 1) * sizeof *ids) == 0);
            }
            free(small);
        }
    }
    *n_out = n;
    return ids;
}

/* The decoded bytes of ids (malloc'd, *len), or NULL. */
static char *decode_all(const bl_tokenizer *t, const int32_t *ids, int64_t n, size_t *len)
{
    size_t total = 0;
    for (int64_t i = 0; i < n; i++)
        total += bl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], NULL, 0);
    char *s = malloc(total + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (int64_t i = 0; i < n; i++)
        o += bl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], s + o, total - o);
    FUZZ_CHECK(o == total);
    *len = total;
    return s;
}

/* Encode and check; for byte-level tokenizers that keep every byte, the
 * exact round trip.  prefix: the tokenizer puts a space before text that
 * has none. */
static void text(const bl_tokenizer *t, const char *s, size_t len, unsigned flags, int exact, int prefix)
{
    int64_t n;
    int32_t *ids = encode_checked(t, s, len, flags, &n);
    if (!ids)
        return;
    FUZZ_REACHED(FZ_ENCODED);
    /* BOS and EOS decode as their kind says: leave them out */
    int64_t from = (flags & BL_TOK_BOS) && bl_tokenizer_bos(t) >= 0;
    int64_t to = n - ((flags & BL_TOK_EOS) && bl_tokenizer_eos(t) >= 0);
    size_t dl;
    char *d = decode_all(t, ids + from, to - from, &dl);
    if (d && exact && !(flags & BL_TOK_SPECIAL)) {
        size_t lead = prefix && len > 0 && s[0] != ' ';
        FUZZ_CHECK(dl == len + lead);
        if (lead)
            FUZZ_CHECK(d[0] == ' ');
        FUZZ_CHECK(memcmp(d + lead, s, len) == 0);
        FUZZ_REACHED(FZ_ROUNDTRIP);
    }
    free(d);
    free(ids);
}

/* 1 if t and u encode s identically with flags. */
static void same_ids(const bl_tokenizer *t, const bl_tokenizer *u, const char *s, size_t len, unsigned flags)
{
    int64_t n1, n2;
    int32_t *a = encode_checked(t, s, len, flags, &n1), *b = encode_checked(u, s, len, flags, &n2);
    if (a && b) {
        FUZZ_CHECK(n1 == n2);
        FUZZ_CHECK(n1 == 0 || memcmp(a, b, (size_t)n1 * sizeof *a) == 0);
    }
    free(a);
    free(b);
}

/* Write t as GGUF and read it back; a byte-level one must encode as t. */
static void gguf_round_trip(const bl_tokenizer *t, const char *extra, size_t extra_len)
{
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    if (!w)
        return;
    int rc = bl_tokenizer_write_gguf(t, w, 0);
    if (rc == BL_ENOMEM) {
        bl_gguf_writer_free(w);
        return;
    }
    FUZZ_CHECK(rc == BL_OK || rc == BL_EUNSUPPORTED);
    if (rc) {
        bl_gguf_writer_free(w);
        return;
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&buf, &size);
    bl_err err;
    if (!fp) {
        bl_gguf_writer_free(w);
        return;
    }
    rc = bl_gguf_writer_write_fp(w, fp, &err);
    fclose(fp);
    bl_gguf_writer_free(w);
    FUZZ_CHECK(rc == BL_OK);
    bl_gguf *g = NULL;
    bl_tokenizer *u = NULL;
    rc = bl_gguf_open_memory(&g, buf, size, "fuzz-json.gguf", &err);
    FUZZ_CHECK(rc == BL_OK);
    rc = bl_tokenizer_from_gguf(&u, g, &err);
    if (rc)
        fprintf(stderr, "fuzz-json: the written GGUF does not load: %s\n", err.msg);
    FUZZ_CHECK(rc == BL_OK);
    FUZZ_CHECK(bl_tokenizer_n_vocab(u) == bl_tokenizer_n_vocab(t));
    FUZZ_CHECK(bl_tokenizer_bos(u) == bl_tokenizer_bos(t) && bl_tokenizer_eos(u) == bl_tokenizer_eos(t));
    FUZZ_CHECK(bl_tokenizer_add_bos(u) == bl_tokenizer_add_bos(t));
    FUZZ_CHECK(bl_tokenizer_add_eos(u) == bl_tokenizer_add_eos(t));
    if (strcmp(bl_tokenizer_model(t), "gpt2") == 0) {
        FUZZ_CHECK(strcmp(bl_tokenizer_model(u), "gpt2") == 0);
        for (size_t i = 0; i < FUZZ_N_TEXTS; i++)
            for (unsigned flags = 0; flags < 8; flags++)
                same_ids(t, u, fuzz_texts[i], fuzz_text_len(i), flags);
        if (extra)
            for (unsigned flags = 0; flags < 8; flags++)
                same_ids(t, u, extra, extra_len, flags);
    }
    bl_tokenizer_free(u);
    bl_gguf_free(g);
    free(buf);
}

static void json(const uint8_t *d, size_t n, int mode)
{
    const char *js = (const char *)d, *second = NULL;
    size_t jn = n, sn = 0;
    if (mode != 0) {
        const uint8_t *nul = memchr(d, 0, n);
        if (nul) {
            jn = (size_t)(nul - d);
            second = (const char *)nul + 1;
            sn = n - jn - 1;
        }
    }
    bl_tokenizer *t = NULL;
    bl_err err;
    err.msg[0] = '\0';
    int rc = bl_tokenizer_load_hf_memory(&t, js, jn, mode == 1 ? second : NULL, mode == 1 ? sn : 0,
                                         "fuzz/tokenizer.json", &err);
    if (rc) {
        FUZZ_CHECK(t == NULL && rc < 0 && err.code == rc);
        FUZZ_CHECK(rc == BL_EFORMAT || rc == BL_EUNSUPPORTED || rc == BL_ENOMEM);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(strstr(err.msg, "tokenizer.json") || strstr(err.msg, "tokenizer_config.json"));
        return;
    }
    FUZZ_REACHED(FZ_PARSED | FZ_TOKENIZER);
    fuzz_walk_tokenizer(t);
    /* a byte-level tokenizer keeps every byte unless a Split removes some */
    int bytes = strcmp(bl_tokenizer_model(t), "gpt2") == 0;
    int exact = bytes && !memmem(js, jn, "Removed", 7);
    int prefix = 0;
    if (exact) {
        int64_t k;
        int32_t *ids = encode_checked(t, "x", 1, 0, &k);
        size_t dl;
        char *dd = ids ? decode_all(t, ids, k, &dl) : NULL;
        prefix = dd && dl == 2 && dd[0] == ' ';
        free(dd);
        free(ids);
    }
    for (size_t i = 0; i < FUZZ_N_TEXTS; i++)
        text(t, fuzz_texts[i], fuzz_text_len(i), (unsigned)i % 8, exact, prefix);
    text(t, js, jn < 64 ? jn : 64, BL_TOK_BOS, exact, prefix);
    if (mode == 3 && second)
        for (unsigned flags = 0; flags < 8; flags++)
            text(t, second, sn, flags, exact, prefix);
    if (bl_tokenizer_n_vocab(t) <= 5000)
        gguf_round_trip(t, mode == 3 ? second : NULL, sn);
    bl_tokenizer_free(t);
}

int FUZZ_ENTRY(json)(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!loaded)
        load_real();
    unsigned mode = data[0] % 4;
    if (mode != 2) {
        json(data + 1, size - 1, (int)mode);
        return 0;
    }
    unsigned flags = (data[0] >> 2) & 7;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (gpt2_files)
        text(gpt2_files, s, n, flags, 1, 0);
    if (gpt2_files && gpt2_gguf)
        same_ids(gpt2_files, gpt2_gguf, s, n, flags);
    return 0;
}

#ifdef BL_FUZZ_REPLAY
/* Seeds for tests/fuzz/replay.c: small valid files of each kind.  Calls
 * add() for each; returns how many. */

static size_t put_str(char *b, size_t o, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (o + n < cap)
        memcpy(b + o, s, n);
    return o + n;
}

/* The vocabulary of the GPT-2 alphabet ("c":id for ids 0-255 in byte
 * order), as JSON object members. */
static size_t alphabet_members(char *b, size_t o, size_t cap)
{
    int k = 0;
    for (int byte = 0; byte < 256; byte++) {
        int cp = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174 ? byte : 256 + k++;
        char m[32];
        if (cp == '"' || cp == '\\')
            snprintf(m, sizeof m, "\"\\%c\":%d,", cp, byte);
        else if (cp < 128)
            snprintf(m, sizeof m, "\"%c\":%d,", cp, byte);
        else
            snprintf(m, sizeof m, "\"%c%c\":%d,", 0xC0 | (cp >> 6), 0x80 | (cp & 63), byte);
        o = put_str(b, o, cap, m);
    }
    return o;
}

size_t fuzz_json_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

size_t fuzz_json_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate))
{
    static char b[16384];
    size_t o, count = 0;
    const unsigned tok = FZ_PARSED | FZ_TOKENIZER | FZ_ENCODED;

    /* byte-level: ByteLevel with add_prefix_space, merges as strings and
     * pairs, a special and a user-defined added token (mode 0) */
    b[0] = 0;
    o = put_str(b, 1, sizeof b, "{\"added_tokens\":[{\"id\":261,\"content\":\"<|endoftext|>\",\"special\":true},"
                                "{\"id\":262,\"content\":\"<tool call>\",\"special\":false}],"
                                "\"normalizer\":{\"type\":\"NFC\"},"
                                "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true},"
                                "\"post_processor\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
                                "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"vocab\":{");
    o = alphabet_members(b, o, sizeof b);
    o = put_str(b, o, sizeof b, "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"\xc4\xa0w\":260,\"<|endoftext|>\":261},"
                                "\"merges\":[\"h e\",\"l l\",[\"he\",\"ll\"],\"hell o\",\"\xc4\xa0 w\"]}}");
    if (o < sizeof b) {
        add("json-bytelevel", b, o, tok | FZ_ROUNDTRIP, 0);
        count++;
    }

    /* byte-level: a Split of each behavior, Digits, ByteLevel with or
     * without its regex, ignore_merges; text after a NUL (mode 3) */
    static const char *const beh[] = {"Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous", "Removed"};
    static const char sample[] = "hello world  12345 <|endoftext|>\nhello\xff";
    for (int k = 0; k < 5; k++) {
        char head[1024];
        snprintf(head, sizeof head,
                 "{\"added_tokens\":[{\"id\":261,\"content\":\"<|endoftext|>\",\"special\":true}],"
                 "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                 "{\"type\":\"Split\",\"pattern\":{\"%s\":\"%s\"},\"behavior\":\"%s\",\"invert\":%s},"
                 "{\"type\":\"Digits\",\"individual_digits\":%s},"
                 "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":%s}]},"
                 "\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,\"vocab\":{",
                 k % 2 ? "String" : "Regex", k % 2 ? " " : "\\\\s+", beh[k], k == 3 ? "true" : "false",
                 k % 2 ? "true" : "false", k < 2 ? "true" : "false", k % 2 ? "false" : "true");
        b[0] = 3;
        o = put_str(b, 1, sizeof b, head);
        o = alphabet_members(b, o, sizeof b);
        o = put_str(b, o, sizeof b, "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"\xc4\xa0w\":260,"
                                    "\"<|endoftext|>\":261},\"merges\":[\"h e\",\"l l\",\"he ll\",\"hell o\",\"\xc4\xa0 w\"]}}");
        if (o < sizeof b)
            b[o] = 0;
        o = put_str(b, o + 1, sizeof b, sample);
        if (o < sizeof b) {
            char name[48];
            snprintf(name, sizeof name, "json-split-%s", beh[k]);
            add(name, b, o, tok | (k == 4 ? 0 : FZ_ROUNDTRIP), 0);
            count++;
        }
    }

    /* SentencePiece kind: Prepend + Replace, byte fallback for two bytes,
     * an unknown token, a template, and a tokenizer_config.json (mode 1) */
    static const char spm[] =
        "\1{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
        "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
        "\"pre_tokenizer\":null,"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],"
        "\"tokens\":[\"<s>\"]}}},"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\"},{\"type\":\"ByteFallback\"},"
        "{\"type\":\"Fuse\"},{\"type\":\"Strip\"}]},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{"
        "\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"<0x0A>\":3,\"<0xC3>\":4,\"\xe2\x96\x81\":5,\"a\":6,\"b\":7,\"c\":8,"
        "\"\xe2\x96\x81" "a\":9,\"ab\":10,\"\xe2\x96\x81" "ab\":11,\"abc\":12,\"\xc3\xa9\":13},"
        "\"merges\":[\"\xe2\x96\x81 a\",\"a b\",\"\xe2\x96\x81" "a b\",\"ab c\"]}}"
        "\0{\"add_bos_token\":true,\"add_eos_token\":false,\"bos_token\":\"<s>\","
        "\"eos_token\":{\"content\":\"</s>\"},\"pad_token\":null}";
    add("json-spm", spm, sizeof spm - 1, tok, 1);
    count++;

    /* SentencePiece kind with a Metaspace pre-tokenizer that splits */
    static const char meta[] =
        "\0{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\","
        "\"split\":true},\"decoder\":{\"type\":\"Metaspace\"},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{"
        "\"<unk>\":0,\"\xe2\x96\x81\":1,\"a\":2,\"b\":3,\"\xe2\x96\x81" "a\":4,\"ab\":5,\"\xe2\x96\x81" "ab\":6},"
        "\"merges\":[[\"\xe2\x96\x81\",\"a\"],[\"a\",\"b\"],[\"\xe2\x96\x81" "a\",\"b\"]]}}";
    add("json-metaspace", meta, sizeof meta - 1, tok, 1);
    count++;

    /* text for the real GPT-2 vocabulary (mode 2), with SPECIAL */
    static const char txt[] = "\x12Hello<|endoftext|> world! caf\xc3\xa9 \xf0\x9f\xa6\x99 \xff\xfe 12345   \n\n";
    add("json-gpt2-text", txt, sizeof txt - 1, 0, 1);
    count++;
    return count;
}
#endif
