/* tests/test-tokenizer.c: SentencePiece-style BPE against its references.
 *
 *   llama.cpp's tokenizer test vectors for the Llama SPM vocabulary
 *   (tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf.inp/.out: strings
 *   separated by a line "__ggml_vocab_test__", ids one line per string,
 *   tokenized without BOS);
 *   llama2.c run.c's ids for 30 strings on tok512.bin (golden/tok512_vectors.json,
 *   with BOS), and run.c's decoding of them;
 *   the same 30 strings through stories260K.gguf's vocabulary, which is
 *   tok512 written with "▁" for spaces: the ids must be the same;
 *   the model names, BOS wishes and BL_TOK_SPECIAL.  (Byte-level BPE and
 *   tokenizer.json are in tests/test-bpe.c.) */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

static int same_ids(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void show(const char *what, const int32_t *ids, int64_t n)
{
    char buf[2048];
    size_t o = 0;
    for (int64_t i = 0; i < n && o < sizeof buf - 16; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, " %d", ids[i]);
    buf[o] = '\0';
    diag("  %s:%s", what, buf);
}

/* llama.cpp's .inp/.out pair */
static void llamacpp_vectors(const char *vocab_rel)
{
    char inp_rel[256], out_rel[256];
    snprintf(inp_rel, sizeof inp_rel, "%s.inp", vocab_rel);
    snprintf(out_rel, sizeof out_rel, "%s.out", vocab_rel);
    char *vp = td_path(vocab_rel), *ip = td_path(inp_rel), *op = td_path(out_rel);
    if (!vp || !ip || !op) {
        skip(1, "llama.cpp vocabulary test vectors absent");
        goto out;
    }
    bl_gguf *g;
    bl_tokenizer *t;
    bl_err err;
    if (bl_gguf_open(&g, vp, &err) || bl_tokenizer_from_gguf(&t, g, &err)) {
        ok(0, "load %s: %s", vocab_rel, err.msg);
        goto out;
    }
    bl_gguf_free(g);
    size_t ni, no;
    char *in = read_file(ip, &ni), *outs = read_file(op, &no);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep);
    int n = 0, passed = 0;
    char *p = in, *q = outs;
    while (p < in + ni) {
        char *e = strstr(p, sep);
        size_t len = e ? (size_t)(e - p) : (size_t)(in + ni - p);
        char *nl = strchr(q, '\n');
        if (!nl)
            break;
        *nl = '\0';
        int32_t want[1024], got[1024];
        int64_t nw = 0, ng;
        for (char *tokp = strtok(q, " "); tokp; tokp = strtok(NULL, " "))
            want[nw++] = (int32_t)atoi(tokp);
        int rc = bl_tokenizer_encode(t, p, len, 0, got, 1024, &ng);
        int good = rc == 0 && same_ids(got, ng, want, nw);
        n++;
        passed += good;
        if (!good) {
            diag("case %d: '%.*s'", n, (int)len, p);
            show("want", want, nw);
            show("got ", got, ng);
        }
        q = nl + 1;
        if (!e)
            break;
        p = e + sl;
    }
    ok(n > 0 && passed == n, "%s: %d of %d llama.cpp test vectors", vocab_rel, passed, n);
    free(in);
    free(outs);
    bl_tokenizer_free(t);
out:
    free(vp);
    free(ip);
    free(op);
}

/* run.c's ids and decoding for tok512 (llama2.c file), and the same
 * through the GGUF vocabulary */
static void runc_vectors(void)
{
    char *jp = td_path("golden/tok512_vectors.json"), *tp = td_path("models/tok512.bin"),
         *gp = td_path("models/stories260K.gguf");
    if (!jp || !tp || !gp) {
        skip(4, "tok512 vectors absent");
        goto out;
    }
    bl_tokenizer *t, *tg;
    bl_gguf *g;
    bl_err err;
    if (bl_tokenizer_load_llama2c(&t, tp, 512, &err) || bl_gguf_open(&g, gp, &err) ||
        bl_tokenizer_from_gguf(&tg, g, &err)) {
        ok(0, "load tokenizers: %s", err.msg);
        goto out;
    }
    bl_gguf_free(g);
    cJSON *j = read_json(jp);
    const cJSON *v;
    int n = 0, enc = 0, dec = 0, encg = 0, decg = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, "vectors")) {
        const char *text = cJSON_GetObjectItem(v, "text")->valuestring;
        const char *want_text = cJSON_GetObjectItem(v, "decoded_by_runc")->valuestring;
        int32_t want[512], got[512];
        int64_t nw = json_ids(cJSON_GetObjectItem(v, "ids"), want, 512), ng;
        n++;
        for (int src = 0; src < 2; src++) {
            const bl_tokenizer *tk = src ? tg : t;
            int rc = bl_tokenizer_encode(tk, text, strlen(text), BL_TOK_BOS, got, 512, &ng);
            int good = rc == 0 && same_ids(got, ng, want, nw);
            if (!good) {
                diag("%s: '%s'", src ? "gguf" : "tok512.bin", text);
                show("want", want, nw);
                show("got ", got, ng);
            }
            *(src ? &encg : &enc) += good;
            /* decode as run.c does: concatenate decode(prev, tok) over ids[1:] */
            char buf[4096];
            size_t o = 0;
            for (int64_t i = 1; i < nw; i++)
                o += bl_tokenizer_decode(tk, want[i - 1], want[i], buf + o, sizeof buf - o);
            int dgood = o == strlen(want_text) && memcmp(buf, want_text, o) == 0;
            if (!dgood)
                diag("%s decode: want '%s' got '%.*s'", src ? "gguf" : "tok512.bin", want_text, (int)o, buf);
            *(src ? &decg : &dec) += dgood;
        }
    }
    ok(n == 30 && enc == n, "tok512.bin: %d of %d run.c encodings", enc, n);
    ok(n == 30 && dec == n, "tok512.bin: %d of %d run.c decodings", dec, n);
    ok(n == 30 && encg == n, "stories260K.gguf vocabulary: %d of %d run.c encodings", encg, n);
    ok(n == 30 && decg == n, "stories260K.gguf vocabulary: %d of %d run.c decodings", decg, n);
    cJSON_Delete(j);
    bl_tokenizer_free(t);
    bl_tokenizer_free(tg);
out:
    free(jp);
    free(tp);
    free(gp);
}

/* The buffer contract: too small a buffer gives BL_ERANGE and the count. */
static void buffer_contract(void)
{
    char *tp = td_path("models/tok512.bin");
    if (!tp) {
        skip(3, "tok512.bin absent");
        return;
    }
    bl_tokenizer *t;
    bl_err err;
    if (bl_tokenizer_load_llama2c(&t, tp, 512, &err)) {
        ok(0, "load: %s", err.msg);
        free(tp);
        return;
    }
    const char *s = "Once upon a time there was a dragon.";
    int32_t ids[64], few[3];
    int64_t n, m;
    int rc = bl_tokenizer_encode(t, s, strlen(s), BL_TOK_BOS | BL_TOK_EOS, ids, 64, &n);
    ok(rc == 0 && n > 4 && ids[0] == 1 && ids[n - 1] == 2, "BOS and EOS flags add ids 1 and 2 (%lld ids)",
       (long long)n);
    rc = bl_tokenizer_encode(t, s, strlen(s), BL_TOK_BOS | BL_TOK_EOS, few, 3, &m);
    ok(rc == BL_ERANGE && m == n && memcmp(few, ids, sizeof few) == 0,
       "a 3-id buffer: BL_ERANGE, count %lld, first ids written", (long long)m);
    rc = bl_tokenizer_encode(t, "", 0, 0, few, 3, &m);
    ok(rc == 0 && m == 0, "empty text without BOS: no ids");
    bl_tokenizer_free(t);
    free(tp);
}

/* The model name, whether BOS is wanted, and special tokens: text spelling
 * "<s>" is BOS with BL_TOK_SPECIAL (and the text after it gets the dummy
 * prefix, as llama.cpp does), ordinary text without. */
static void properties(void)
{
    char *tp = td_path("models/tok512.bin"), *gp = td_path("models/stories260K.gguf");
    if (!tp || !gp) {
        skip(4, "tok512.bin or stories260K.gguf absent");
        goto out;
    }
    bl_tokenizer *t, *tg;
    bl_gguf *g;
    bl_err err;
    if (bl_tokenizer_load_llama2c(&t, tp, 512, &err) || bl_gguf_open(&g, gp, &err) ||
        bl_tokenizer_from_gguf(&tg, g, &err)) {
        ok(0, "load tokenizers: %s", err.msg);
        goto out;
    }
    bl_gguf_free(g);
    ok(strcmp(bl_tokenizer_model(t), "llama2.c") == 0 && bl_tokenizer_add_bos(t) && !bl_tokenizer_add_eos(t),
       "tok512.bin: model 'llama2.c', wants BOS, not EOS");
    ok(strcmp(bl_tokenizer_model(tg), "llama") == 0 && bl_tokenizer_add_bos(tg) &&
           bl_tokenizer_kind(tg, 1) == BL_TOKEN_CONTROL,
       "stories260K.gguf: model 'llama', wants BOS, <s> is a control token");
    int32_t a[64], b[64], c[64];
    int64_t na, nb, nc;
    int rc = bl_tokenizer_encode(tg, "Once<s>upon", 11, BL_TOK_SPECIAL, a, 64, &na);
    rc |= bl_tokenizer_encode(tg, "Once", 4, 0, b, 64, &nb);
    rc |= bl_tokenizer_encode(tg, "upon", 4, 0, c, 64, &nc);
    ok(rc == 0 && na == nb + 1 + nc && same_ids(a, nb, b, nb) && a[nb] == 1 && same_ids(a + nb + 1, nc, c, nc),
       "BL_TOK_SPECIAL: 'Once<s>upon' is 'Once', BOS, '\xe2\x96\x81upon'");
    rc = bl_tokenizer_encode(tg, "Once<s>upon", 11, 0, a, 64, &na);
    int has = 0;
    for (int64_t i = 0; i < na; i++)
        has |= a[i] == 1;
    ok(rc == 0 && !has && na > 3, "without it, '<s>' is ordinary text (%lld ids)", (long long)na);
    bl_tokenizer_free(t);
    bl_tokenizer_free(tg);
out:
    free(tp);
    free(gp);
}

int main(void)
{
    free(td_require("README.md"));
    llamacpp_vectors("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    runc_vectors();
    buffer_contract();
    properties();
    return done_testing();
}
