/* tests/test-bpe.c: byte-level BPE and tokenizer.json (lib/tokenizer_bpe.c
 * and the special-token, decoding and GGUF-writing parts of lib/tokenizer.c).
 *
 * References (read in place from $BL_TESTDATA; these parts skip without it):
 *   llama.cpp's test vectors for ggml-vocab-gpt-2.gguf (.inp: strings
 *   separated by "\n__ggml_vocab_test__\n"; .out: one line of ids per string,
 *   tokenized without BOS and without special parsing), through the GGUF
 *   vocabulary, through OpenAI's encoder.json + vocab.bpe, and through two
 *   tokenizer.json files this test writes from those two files (ByteLevel
 *   pre-tokenizer, merges as "a b" strings; and Split(GPT-2 regex) +
 *   ByteLevel(use_regex false), merges as [a, b] pairs);
 *   the Llama SentencePiece vectors (ggml-vocab-llama-spm.gguf.inp/.out)
 *   through a tokenizer.json of the SentencePiece-converted kind built from
 *   that GGUF vocabulary as Hugging Face's converter builds one (every split
 *   of a piece into two pieces of the vocabulary is a merge; merges ordered
 *   by the piece's score, then by the ids of the halves);
 *   golden/gpt2_random/tokens.json: llama.cpp's ids for its prompt.
 * Then: decoding round trips, special tokens with and without
 * BL_TOK_SPECIAL, the GGUF write round trip of every source, thread safety,
 * the encode speed on tinyshakespeare.txt, and every error path of the
 * loaders (these on small files built here, without the test data).
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

/* Encode into a malloc'd array (3 len + 5 ids, the documented bound). */
static int32_t *enc(const bl_tokenizer *t, const char *s, size_t len, unsigned flags, int64_t *n, int *rc)
{
    int64_t cap = 3 * (int64_t)len + 5;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    *rc = bl_tokenizer_encode(t, s, len, flags, ids, cap, n);
    return ids;
}

/* Decode ids one after the other (each with the previous id). */
static char *dec(const bl_tokenizer *t, const int32_t *ids, int64_t n, size_t *len)
{
    size_t total = 0;
    for (int64_t i = 0; i < n; i++)
        total += bl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], NULL, 0);
    char *s = malloc(total + 1);
    size_t o = 0;
    for (int64_t i = 0; i < n; i++)
        o += bl_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], s + o, total - o);
    s[o] = '\0';
    *len = o;
    return s;
}

/* ------------------------------------------------------- test vectors */

struct vectors {
    int n;
    char *text[128];
    size_t len[128];
    int32_t *ids[128];
    int64_t n_ids[128];
    char *in, *out;   /* the files (texts point into in) */
};

static void free_vectors(struct vectors *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->ids[i]);
    free(v->in);
    free(v->out);
    memset(v, 0, sizeof *v);
}

/* tokenizers/llama.cpp-vocab/NAME.inp and .out: 0, or -1 if absent */
static int load_vectors(const char *vocab_rel, struct vectors *v)
{
    char rel[256];
    size_t ni, no;
    memset(v, 0, sizeof *v);
    snprintf(rel, sizeof rel, "%s.inp", vocab_rel);
    char *ip = td_path(rel);
    snprintf(rel, sizeof rel, "%s.out", vocab_rel);
    char *op = td_path(rel);
    if (!ip || !op || !(v->in = read_file(ip, &ni)) || !(v->out = read_file(op, &no))) {
        free(ip);
        free(op);
        return -1;
    }
    free(ip);
    free(op);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep);
    char *p = v->in, *q = v->out;
    while (p < v->in + ni && v->n < 128) {
        char *e = strstr(p, sep);
        size_t len = e ? (size_t)(e - p) : (size_t)(v->in + ni - p);
        char *nl = strchr(q, '\n');
        if (!nl)
            break;
        *nl = '\0';
        int i = v->n++;
        v->text[i] = p;
        v->len[i] = len;
        v->ids[i] = malloc(1024 * sizeof(int32_t));
        for (char *tp = strtok(q, " "); tp && v->n_ids[i] < 1024; tp = strtok(NULL, " "))
            v->ids[i][v->n_ids[i]++] = (int32_t)atoi(tp);
        q = nl + 1;
        if (!e)
            break;
        p = e + sl;
    }
    return 0;
}

/* How many vectors t encodes as expected (flags 0); failures are shown. */
static int run_vectors(const bl_tokenizer *t, const struct vectors *v, const char *what)
{
    int passed = 0, shown = 0;
    for (int i = 0; i < v->n; i++) {
        int64_t n;
        int rc;
        int32_t *got = enc(t, v->text[i], v->len[i], 0, &n, &rc);
        int good = rc == 0 && same_ids(got, n, v->ids[i], v->n_ids[i]);
        passed += good;
        if (!good && shown++ < 4) {
            diag("%s: case %d '%.*s'", what, i, (int)v->len[i], v->text[i]);
            show("want", v->ids[i], v->n_ids[i]);
            show("got ", got, n);
        }
        free(got);
    }
    return passed;
}

/* 1 if t and u encode every vector text identically with these flags. */
static int same_encoding(const bl_tokenizer *t, const bl_tokenizer *u, const struct vectors *v, unsigned flags)
{
    int same = 1;
    for (int i = 0; i < v->n && same; i++) {
        int64_t n1, n2;
        int rc1, rc2;
        int32_t *a = enc(t, v->text[i], v->len[i], flags, &n1, &rc1);
        int32_t *b = enc(u, v->text[i], v->len[i], flags, &n2, &rc2);
        same = rc1 == 0 && rc2 == 0 && same_ids(a, n1, b, n2);
        if (!same) {
            diag("differ on case %d '%.*s' (flags %u)", i, (int)v->len[i], v->text[i], flags);
            show("first ", a, n1);
            show("second", b, n2);
        }
        free(a);
        free(b);
    }
    return same;
}

/* --------------------------------------------------------- tokenizers */

static bl_tokenizer *from_gguf_file(const char *path, bl_err *err)
{
    bl_gguf *g;
    bl_tokenizer *t = NULL;
    if (bl_gguf_open(&g, path, err))
        return NULL;
    if (bl_tokenizer_from_gguf(&t, g, err))
        t = NULL;
    bl_gguf_free(g);
    return t;
}

/* Write t's vocabulary to a GGUF file and read it back. */
static bl_tokenizer *gguf_round_trip(const bl_tokenizer *t, const char *dir, const char *name, int *wrc)
{
    char path[4200];
    bl_err err;
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    bl_gguf_writer_set_str(w, "general.architecture", "llama");
    *wrc = bl_tokenizer_write_gguf(t, w, 0);
    if (*wrc == 0)
        *wrc = bl_gguf_writer_write(w, path, &err);
    bl_gguf_writer_free(w);
    if (*wrc)
        return NULL;
    bl_tokenizer *u = from_gguf_file(path, &err);
    if (!u)
        diag("reading back %s: %s", path, err.msg);
    return u;
}

/* tokenizer.json from encoder.json + vocab.bpe: GPT-2's own layout
 * (ByteLevel does the regex, merges "a b"), or Split + ByteLevel without
 * regex and merges as pairs.  Returns the JSON text. */
static char *gpt2_json(const char *ej, const char *vb, int variant)
{
    cJSON *enc_json = read_json(ej);
    size_t n;
    char *merges_txt = read_file(vb, &n);
    if (!enc_json || !merges_txt)
        return NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *at = cJSON_CreateObject();
    cJSON_AddNumberToObject(at, "id", 50256);
    cJSON_AddStringToObject(at, "content", "<|endoftext|>");
    cJSON_AddBoolToObject(at, "single_word", 0);
    cJSON_AddBoolToObject(at, "lstrip", 0);
    cJSON_AddBoolToObject(at, "rstrip", 0);
    cJSON_AddBoolToObject(at, "normalized", 1);
    cJSON_AddBoolToObject(at, "special", 1);
    cJSON_AddItemToArray(added, at);
    cJSON_AddNullToObject(root, "normalizer");
    if (variant == 0) {
        cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
        cJSON_AddStringToObject(pre, "type", "ByteLevel");
        cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
        cJSON_AddBoolToObject(pre, "trim_offsets", 1);
        cJSON_AddBoolToObject(pre, "use_regex", 1);
    } else {
        cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *seq = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *split = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
        cJSON_AddStringToObject(pat, "Regex",
                                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddBoolToObject(split, "invert", 0);
        cJSON_AddItemToArray(seq, split);
        cJSON *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
        cJSON_AddBoolToObject(bl, "trim_offsets", 1);
        cJSON_AddBoolToObject(bl, "use_regex", 0);
        cJSON_AddItemToArray(seq, bl);
    }
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "ByteLevel");
    cJSON_AddBoolToObject(post, "add_prefix_space", 1);
    cJSON_AddBoolToObject(post, "trim_offsets", 0);
    cJSON *decd = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(decd, "type", "ByteLevel");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(model, "end_of_word_suffix", "");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    const cJSON *e;
    cJSON_ArrayForEach(e, enc_json)
        cJSON_AddNumberToObject(vocab, e->string, e->valuedouble);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    char *save = NULL;
    int line = 0;
    for (char *l = strtok_r(merges_txt, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (line++ == 0 && l[0] == '#')
            continue;
        if (variant == 0) {
            cJSON_AddItemToArray(merges, cJSON_CreateString(l));
        } else {
            char *sp = strchr(l, ' ');
            *sp = '\0';
            const char *pair[2] = {l, sp + 1};
            cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    cJSON_Delete(enc_json);
    free(merges_txt);
    return s;
}

/* The Hugging Face converter's view of a SentencePiece vocabulary: vocab
 * {piece: id}, merges of every split of a normal piece into two normal
 * pieces, ordered by the piece's score (higher first), then by the ids of
 * the halves. */
struct merge_rec {
    float score;
    int32_t piece, l, r;
};

static int cmp_merge(const void *a, const void *b)
{
    const struct merge_rec *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->piece != y->piece)
        return x->piece < y->piece ? -1 : 1;
    if (x->l != y->l)
        return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

/* id of piece s[0..n-1] among the normal tokens (linear probing table) */
struct pmap {
    int32_t *slot;
    size_t mask;
    const bl_tokenizer *t;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int32_t pmap_get(const struct pmap *m, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0)
            return -1;
        size_t len;
        const char *p = bl_tokenizer_piece(m->t, id, &len);
        if (len == n && memcmp(p, s, n) == 0)
            return id;
    }
}

static char *spm_json(const bl_tokenizer *t, int with_template)
{
    int64_t n = bl_tokenizer_n_vocab(t);
    struct pmap m = {malloc(sizeof(int32_t) << 17), (1u << 17) - 1, t};
    for (size_t i = 0; i <= m.mask; i++)
        m.slot[i] = -1;
    for (int32_t id = 0; id < n; id++) {
        if (bl_tokenizer_kind(t, id) != BL_TOKEN_NORMAL)
            continue;
        size_t len;
        const char *p = bl_tokenizer_piece(t, id, &len);
        size_t i = hash_bytes(p, len) & m.mask;
        while (m.slot[i] >= 0)
            i = (i + 1) & m.mask;
        m.slot[i] = id;
    }
    size_t nm = 0, cap = 1 << 16;
    struct merge_rec *mr = malloc(cap * sizeof *mr);
    for (int32_t id = 0; id < n; id++) {
        if (bl_tokenizer_kind(t, id) != BL_TOKEN_NORMAL)
            continue;
        size_t len;
        const char *p = bl_tokenizer_piece(t, id, &len);
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80)
                continue;   /* splits at character boundaries only */
            int32_t l = pmap_get(&m, p, k), r = pmap_get(&m, p + k, len - k);
            if (l < 0 || r < 0)
                continue;
            if (nm == cap)
                mr = realloc(mr, (cap *= 2) * sizeof *mr);
            mr[nm++] = (struct merge_rec){bl_tokenizer_score(t, id), id, l, r};
        }
    }
    qsort(mr, nm, sizeof *mr, cmp_merge);
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t id = 0; id < 3; id++) {
        cJSON *at = cJSON_CreateObject();
        cJSON_AddNumberToObject(at, "id", id);
        cJSON_AddStringToObject(at, "content", bl_tokenizer_piece(t, id, NULL));
        cJSON_AddBoolToObject(at, "special", 1);
        cJSON_AddItemToArray(added, at);
    }
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *ns = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "Prepend");
    cJSON_AddStringToObject(pp, "prepend", "\xe2\x96\x81");
    cJSON_AddItemToArray(ns, pp);
    cJSON *rp = cJSON_CreateObject();
    cJSON_AddStringToObject(rp, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(rp, "pattern"), "String", " ");
    cJSON_AddStringToObject(rp, "content", "\xe2\x96\x81");
    cJSON_AddItemToArray(ns, rp);
    cJSON_AddNullToObject(root, "pre_tokenizer");
    if (with_template) {
        cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
        cJSON_AddStringToObject(post, "type", "TemplateProcessing");
        cJSON *single = cJSON_AddArrayToObject(post, "single");
        cJSON *it = cJSON_CreateObject();
        cJSON *st = cJSON_AddObjectToObject(it, "SpecialToken");
        cJSON_AddStringToObject(st, "id", "<s>");
        cJSON_AddNumberToObject(st, "type_id", 0);
        cJSON_AddItemToArray(single, it);
        it = cJSON_CreateObject();
        st = cJSON_AddObjectToObject(it, "Sequence");
        cJSON_AddStringToObject(st, "id", "A");
        cJSON_AddNumberToObject(st, "type_id", 0);
        cJSON_AddItemToArray(single, it);
        cJSON *sp = cJSON_AddObjectToObject(post, "special_tokens");
        cJSON *s1 = cJSON_AddObjectToObject(sp, "<s>");
        cJSON_AddStringToObject(s1, "id", "<s>");
        int one = 1;
        cJSON_AddItemToObject(s1, "ids", cJSON_CreateIntArray(&one, 1));
    }
    cJSON *decd = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(decd, "type", "Sequence");
    cJSON *ds = cJSON_AddArrayToObject(decd, "decoders");
    static const char *const dtypes[] = {"Replace", "ByteFallback", "Fuse", "Strip"};
    for (int i = 0; i < 4; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", dtypes[i]);
        cJSON_AddItemToArray(ds, d);
    }
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *p = bl_tokenizer_piece(t, id, &len);
        cJSON_AddNumberToObject(vocab, p, id);
    }
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t i = 0; i < nm; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s %s", bl_tokenizer_piece(t, mr[i].l, NULL), bl_tokenizer_piece(t, mr[i].r, NULL));
        cJSON_AddItemToArray(merges, cJSON_CreateString(buf));
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(mr);
    free(m.slot);
    diag("SentencePiece-converted tokenizer.json: %lld tokens, %zu merges, %zu bytes", (long long)n, nm, strlen(s));
    return s;
}

/* ------------------------------------------------------- GPT-2 sources */

static void check_roundtrip_text(const bl_tokenizer *t, const struct vectors *v, const char *what)
{
    int good = 0;
    for (int i = 0; i < v->n; i++) {
        int64_t n;
        int rc;
        size_t dl;
        int32_t *ids = enc(t, v->text[i], v->len[i], 0, &n, &rc);
        char *d = dec(t, ids, n, &dl);
        int same = rc == 0 && dl == v->len[i] && memcmp(d, v->text[i], dl) == 0;
        if (!same)
            diag("%s: case %d decodes to '%s'", what, i, d);
        good += same;
        free(ids);
        free(d);
    }
    ok(v->n > 0 && good == v->n, "%s: %d of %d test strings decode back to themselves", what, good, v->n);
}

static bl_tokenizer *gpt2_gguf, *gpt2_files, *gpt2_json_a, *gpt2_json_b, *spm_gguf, *spm_hf, *tok512;
static struct vectors gv, sv;
static char *tmp;

static void gpt2_sources(void)
{
    char *gp = td_path("tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    char *ej = td_path("tokenizers/gpt2/encoder.json"), *vb = td_path("tokenizers/gpt2/vocab.bpe");
    bl_err err;
    if (!gp || !ej || !vb || load_vectors("tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", &gv)) {
        skip(14, "GPT-2 vocabularies or test vectors absent");
        goto out;
    }
    diag("ggml-vocab-gpt-2.gguf.inp holds %d test strings, one of them empty, and .out %d lines of ids (the "
         "issue's 47 counts the nothing after the file's final separator)", gv.n, gv.n);

    gpt2_gguf = from_gguf_file(gp, &err);
    ok(gpt2_gguf != NULL, "ggml-vocab-gpt-2.gguf loads%s%s", gpt2_gguf ? "" : ": ", gpt2_gguf ? "" : err.msg);
    if (!gpt2_gguf)
        goto out;
    ok(strcmp(bl_tokenizer_model(gpt2_gguf), "gpt2") == 0 && bl_tokenizer_n_vocab(gpt2_gguf) == 50257 &&
           bl_tokenizer_bos(gpt2_gguf) == 50256 && bl_tokenizer_eos(gpt2_gguf) == 50256 &&
           !bl_tokenizer_add_bos(gpt2_gguf) && bl_tokenizer_kind(gpt2_gguf, 50256) == BL_TOKEN_CONTROL,
       "GGUF gpt2: model 'gpt2', 50257 tokens, BOS = EOS = 50256 (control), no BOS added");
    int p = run_vectors(gpt2_gguf, &gv, "gguf");
    ok(p == gv.n && gv.n == 46, "ggml-vocab-gpt-2.gguf: %d of %d llama.cpp test vectors", p, gv.n);

    double t0 = now();
    int rc = bl_tokenizer_load_gpt2(&gpt2_files, ej, vb, &err);
    double dt = now() - t0;
    ok(rc == 0, "encoder.json + vocab.bpe load (%.2f s)%s%s", dt, rc ? ": " : "", rc ? err.msg : "");
    if (rc)
        goto out;
    int same_pieces = bl_tokenizer_n_vocab(gpt2_files) == 50257;
    for (int32_t id = 0; same_pieces && id < 50257; id++) {
        size_t a, b;
        const char *pa = bl_tokenizer_piece(gpt2_files, id, &a), *pb = bl_tokenizer_piece(gpt2_gguf, id, &b);
        same_pieces = a == b && memcmp(pa, pb, a) == 0 &&
                      bl_tokenizer_kind(gpt2_files, id) == bl_tokenizer_kind(gpt2_gguf, id);
    }
    ok(same_pieces && bl_tokenizer_bos(gpt2_files) == 50256 && bl_tokenizer_eos(gpt2_files) == 50256 &&
           !bl_tokenizer_add_bos(gpt2_files) && strcmp(bl_tokenizer_model(gpt2_files), "gpt2") == 0,
       "encoder.json: the GGUF's 50257 pieces and kinds, BOS = EOS = 50256, no BOS added");
    p = run_vectors(gpt2_files, &gv, "encoder.json");
    ok(p == gv.n, "encoder.json + vocab.bpe: %d of %d llama.cpp test vectors", p, gv.n);

    for (int variant = 0; variant < 2; variant++) {
        char *js = gpt2_json(ej, vb, variant);
        bl_tokenizer **tp = variant ? &gpt2_json_b : &gpt2_json_a;
        t0 = now();
        rc = js ? bl_tokenizer_load_hf_memory(tp, js, strlen(js), NULL, 0, "gpt2/tokenizer.json", &err) : -1;
        dt = now() - t0;
        const char *what = variant ? "tokenizer.json with Split + ByteLevel(use_regex false), merges as pairs"
                                   : "tokenizer.json with ByteLevel, merges as strings";
        ok(rc == 0 && bl_tokenizer_n_vocab(*tp) == 50257 && bl_tokenizer_bos(*tp) == 50256 &&
               !bl_tokenizer_add_bos(*tp),
           "%s loads (%.2f s, %zu bytes)%s%s", what, dt, js ? strlen(js) : 0, rc ? ": " : "", rc ? err.msg : "");
        if (rc == 0) {
            p = run_vectors(*tp, &gv, "tokenizer.json");
            ok(p == gv.n, "%s: %d of %d llama.cpp test vectors", what, p, gv.n);
        } else {
            skip(1, "no tokenizer");
        }
        free(js);
    }
    check_roundtrip_text(gpt2_gguf, &gv, "GGUF gpt2");
    check_roundtrip_text(gpt2_files, &gv, "encoder.json");
    if (gpt2_json_a)
        check_roundtrip_text(gpt2_json_a, &gv, "tokenizer.json");
    else
        skip(1, "no tokenizer");

    /* golden/gpt2_random: llama.cpp's ids for the prompt, through that
     * file's own vocabulary and through encoder.json */
    char *tj = td_path("golden/gpt2_random/tokens.json"),
         *rg = td_path("golden/gpt2_random/gpt2-random-e64-l2-h4-ctx128.gguf");
    cJSON *j = tj ? read_json(tj) : NULL;
    bl_tokenizer *rt = rg ? from_gguf_file(rg, &err) : NULL;
    if (j && rt) {
        const char *prompt = cJSON_GetObjectItem(j, "prompt")->valuestring;
        int32_t want[64];
        int64_t nw = json_ids(cJSON_GetObjectItem(j, "prompt_ids"), want, 64), n1, n2;
        int rc1, rc2;
        int32_t *a = enc(rt, prompt, strlen(prompt), 0, &n1, &rc1);
        int32_t *b = enc(gpt2_files, prompt, strlen(prompt), 0, &n2, &rc2);
        ok(rc1 == 0 && rc2 == 0 && same_ids(a, n1, want, nw) && same_ids(b, n2, want, nw),
           "golden/gpt2_random: '%s' gives its %lld prompt_ids (its GGUF and encoder.json)", prompt,
           (long long)nw);
        free(a);
        free(b);
    } else {
        skip(1, "golden/gpt2_random absent");
    }
    cJSON_Delete(j);
    bl_tokenizer_free(rt);
    free(tj);
    free(rg);
out:
    free(gp);
    free(ej);
    free(vb);
}

/* ---------------------------------------------------- SentencePiece kind */

static void spm_sources(void)
{
    char *sp = td_path("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    char *tp = td_path("models/tok512.bin");
    bl_err err;
    if (tp && bl_tokenizer_load_llama2c(&tok512, tp, 512, &err))
        tok512 = NULL;
    free(tp);
    if (!sp || load_vectors("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", &sv) ||
        !(spm_gguf = from_gguf_file(sp, &err))) {
        skip(6, "Llama SentencePiece vocabulary absent");
        free(sp);
        return;
    }
    free(sp);
    int p = run_vectors(spm_gguf, &sv, "spm gguf");
    ok(p == sv.n && sv.n == 46, "ggml-vocab-llama-spm.gguf: %d of %d vectors (the reference)", p, sv.n);
    ok(bl_tokenizer_add_bos(spm_gguf) && !bl_tokenizer_add_eos(spm_gguf) &&
           strcmp(bl_tokenizer_model(spm_gguf), "llama") == 0,
       "GGUF llama: model 'llama', wants BOS, not EOS");

    char *js = spm_json(spm_gguf, 1);
    double t0 = now();
    int rc = bl_tokenizer_load_hf_memory(&spm_hf, js, strlen(js), NULL, 0, "llama-spm/tokenizer.json", &err);
    ok(rc == 0, "SentencePiece-converted tokenizer.json loads (%.2f s)%s%s", now() - t0, rc ? ": " : "",
       rc ? err.msg : "");
    if (rc) {
        free(js);
        skip(3, "no tokenizer");
        return;
    }
    ok(strcmp(bl_tokenizer_model(spm_hf), "llama") == 0 && bl_tokenizer_bos(spm_hf) == 1 &&
           bl_tokenizer_eos(spm_hf) == 2 && bl_tokenizer_add_bos(spm_hf) && !bl_tokenizer_add_eos(spm_hf) &&
           bl_tokenizer_kind(spm_hf, 0) == BL_TOKEN_CONTROL && bl_tokenizer_kind(spm_hf, 3) == BL_TOKEN_BYTE,
       "its BOS 1 from the TemplateProcessing (added), EOS 2 by name, <0x00> a byte token");
    p = run_vectors(spm_hf, &sv, "spm tokenizer.json");
    ok(p == sv.n, "SentencePiece-converted tokenizer.json: %d of %d Llama SPM vectors, as through the GGUF", p,
       sv.n);
    /* decoding after BOS gives the text back */
    int good = 0;
    for (int i = 0; i < sv.n; i++) {
        int64_t n;
        size_t dl;
        int32_t *ids = enc(spm_hf, sv.text[i], sv.len[i], BL_TOK_BOS, &n, &rc);
        char *d = dec(spm_hf, ids, n, &dl);
        good += rc == 0 && dl == sv.len[i] && memcmp(d, sv.text[i], dl) == 0;
        free(ids);
        free(d);
    }
    ok(good == sv.n, "SentencePiece tokenizer.json: %d of %d strings decode back after BOS", good, sv.n);

    /* the same file in a directory beside a tokenizer_config.json that says
     * add_eos_token and names EOS by an object */
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
    write_file(path, js, strlen(js));
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmp);
    const char *cfg = "{\"add_bos_token\": false, \"add_eos_token\": true, \"bos_token\": \"<s>\", "
                      "\"eos_token\": {\"__type\": \"AddedToken\", \"content\": \"</s>\"}, \"pad_token\": null}";
    write_file(path, cfg, strlen(cfg));
    snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
    bl_tokenizer *t2;
    rc = bl_tokenizer_load_hf(&t2, path, &err);
    ok(rc == 0 && !bl_tokenizer_add_bos(t2) && bl_tokenizer_add_eos(t2) && bl_tokenizer_eos(t2) == 2,
       "tokenizer_config.json beside it: add_bos_token false, add_eos_token true, eos_token {content}%s%s",
       rc ? ": " : "", rc ? err.msg : "");
    if (rc == 0)
        bl_tokenizer_free(t2);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmp);
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
    unlink(path);
    free(js);
}

/* ------------------------------------------------------- special tokens */

static void special_tokens(void)
{
    if (!gpt2_gguf) {
        skip(7, "GPT-2 vocabulary absent");
        return;
    }
    const char *s = "Hello<|endoftext|> world<|endoftext|>";
    int64_t n, na, nb;
    int rc, rca, rcb;
    int32_t *ids = enc(gpt2_gguf, s, strlen(s), BL_TOK_SPECIAL, &n, &rc);
    int32_t *a = enc(gpt2_gguf, "Hello", 5, 0, &na, &rca);
    int32_t *b = enc(gpt2_gguf, " world", 6, 0, &nb, &rcb);
    int good = rc == 0 && n == na + nb + 2 && memcmp(ids, a, (size_t)na * 4) == 0 && ids[na] == 50256 &&
               memcmp(ids + na + 1, b, (size_t)nb * 4) == 0 && ids[n - 1] == 50256;
    ok(good, "BL_TOK_SPECIAL: 'Hello<|endoftext|> world<|endoftext|>' is Hello, 50256, ' world', 50256");
    free(ids);
    ids = enc(gpt2_gguf, s, strlen(s), 0, &n, &rc);
    int has = 0;
    for (int64_t i = 0; i < n; i++)
        has |= ids[i] == 50256;
    size_t dl;
    char *d = dec(gpt2_gguf, ids, n, &dl);
    ok(rc == 0 && !has && n > 10 && dl == strlen(s) && memcmp(d, s, dl) == 0,
       "without it the same text is ordinary text (%lld ids, no 50256) and decodes back", (long long)n);
    free(d);
    free(ids);
    free(a);
    free(b);
    char buf[16];
    ok(bl_tokenizer_decode(gpt2_gguf, -1, 50256, buf, sizeof buf) == 0, "a control token decodes to nothing");

    /* a user-defined (non-special) added token in a tokenizer.json */
    if (gpt2_json_a) {
        char *ej = td_path("tokenizers/gpt2/encoder.json"), *vb = td_path("tokenizers/gpt2/vocab.bpe");
        char *js = gpt2_json(ej, vb, 0);
        cJSON *root = cJSON_Parse(js);
        cJSON *at = cJSON_CreateObject();
        cJSON_AddNumberToObject(at, "id", 50257);
        cJSON_AddStringToObject(at, "content", "<tool call>");
        cJSON_AddBoolToObject(at, "special", 0);
        cJSON_AddItemToArray(cJSON_GetObjectItem(root, "added_tokens"), at);
        char *js2 = cJSON_PrintUnformatted(root);
        bl_tokenizer *t;
        bl_err err;
        rc = bl_tokenizer_load_hf_memory(&t, js2, strlen(js2), NULL, 0, "user/tokenizer.json", &err);
        if (rc == 0) {
            const char *u = "a<tool call>b";
            ids = enc(t, u, strlen(u), BL_TOK_SPECIAL, &n, &rc);
            char *dd = dec(t, ids, n, &dl);
            ok(rc == 0 && n == 3 && ids[1] == 50257 && bl_tokenizer_kind(t, 50257) == BL_TOKEN_USER &&
                   dl == strlen(u) && memcmp(dd, u, dl) == 0,
               "a user-defined added token: matched with BL_TOK_SPECIAL, decodes to its text");
            free(dd);
            free(ids);
            ids = enc(t, u, strlen(u), 0, &n, &rc);
            has = 0;
            for (int64_t i = 0; i < n; i++)
                has |= ids[i] == 50257;
            ok(rc == 0 && !has && n > 3, "... and is ordinary text without it");
            free(ids);
            bl_tokenizer_free(t);
        } else {
            ok(0, "load: %s", err.msg);
            skip(1, "no tokenizer");
        }
        free(js2);
        cJSON_Delete(root);
        free(js);
        free(ej);
        free(vb);
    } else {
        skip(2, "no tokenizer.json");
    }
    /* SentencePiece: text after a special token gets the dummy prefix, as
     * llama.cpp does */
    if (spm_gguf) {
        const char *t1 = "Hello<s>world</s>";
        ids = enc(spm_gguf, t1, strlen(t1), BL_TOK_SPECIAL, &n, &rc);
        a = enc(spm_gguf, "Hello", 5, 0, &na, &rca);
        b = enc(spm_gguf, "world", 5, 0, &nb, &rcb);
        good = rc == 0 && n == na + nb + 2 && memcmp(ids, a, (size_t)na * 4) == 0 && ids[na] == 1 &&
               memcmp(ids + na + 1, b, (size_t)nb * 4) == 0 && ids[n - 1] == 2;
        ok(good, "Llama SPM: 'Hello<s>world</s>' with BL_TOK_SPECIAL: Hello, 1, '\xe2\x96\x81world', 2");
        free(ids);
        free(a);
        free(b);
        if (spm_hf) {
            int64_t n2;
            ids = enc(spm_gguf, t1, strlen(t1), BL_TOK_SPECIAL | BL_TOK_BOS, &n, &rc);
            a = enc(spm_hf, t1, strlen(t1), BL_TOK_SPECIAL | BL_TOK_BOS, &n2, &rca);
            ok(rc == 0 && rca == 0 && same_ids(ids, n, a, n2), "... the same through the tokenizer.json");
            free(ids);
            free(a);
        } else {
            skip(1, "no tokenizer");
        }
    } else {
        skip(2, "Llama vocabulary absent");
    }
}

/* ----------------------------------------------------- GGUF round trip */

static void gguf_round_trips(void)
{
    struct src {
        const char *name;
        const bl_tokenizer *t;
        const struct vectors *v;
    } srcs[] = {
        {"tok512.bin (llama2.c)", tok512, &sv}, {"GGUF llama", spm_gguf, &sv}, {"GGUF gpt2", gpt2_gguf, &gv},
        {"encoder.json + vocab.bpe", gpt2_files, &gv}, {"tokenizer.json byte-level", gpt2_json_a, &gv},
        {"tokenizer.json Split + ByteLevel", gpt2_json_b, &gv}, {"tokenizer.json SentencePiece", spm_hf, &sv},
    };
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        const struct src *s = &srcs[i];
        if (!s->t || s->v->n == 0) {
            skip(1, "source absent");
            continue;
        }
        int wrc;
        char name[32];
        snprintf(name, sizeof name, "rt%zu", i);
        bl_tokenizer *u = gguf_round_trip(s->t, tmp, name, &wrc);
        if (!u) {
            ok(0, "%s: write_gguf %d", s->name, wrc);
            continue;
        }
        int same = bl_tokenizer_n_vocab(u) == bl_tokenizer_n_vocab(s->t) &&
                   bl_tokenizer_bos(u) == bl_tokenizer_bos(s->t) && bl_tokenizer_eos(u) == bl_tokenizer_eos(s->t) &&
                   bl_tokenizer_add_bos(u) == bl_tokenizer_add_bos(s->t) &&
                   bl_tokenizer_add_eos(u) == bl_tokenizer_add_eos(s->t);
        for (unsigned flags = 0; flags < 8 && same; flags++)
            same = same_encoding(s->t, u, s->v, flags);
        /* and text that is no test vector: a piece of each text file, and bytes */
        static const char *const extra[] = {"  two  spaces\tand\r\nnewlines\n\n", "\xff\xfe invalid \xc3 utf-8 \xe2\x96",
                                            "\xe2\x96\x81 already", "caf\xc3\xa9 \xf0\x9f\x98\x80 100,000.5"};
        struct vectors ev;
        memset(&ev, 0, sizeof ev);
        for (size_t k = 0; k < 4; k++) {
            ev.text[k] = (char *)extra[k];
            ev.len[k] = strlen(extra[k]);
        }
        ev.n = 4;
        /* a llama2.c vocabulary is written with "▁" for its spaces, so text
         * that holds U+2581 itself encodes differently (documented) */
        if (i == 0) {
            ev.text[2] = ev.text[3];
            ev.len[2] = ev.len[3];
            ev.n = 3;
        }
        if (same)
            same = same_encoding(s->t, u, &ev, BL_TOK_BOS) && same_encoding(s->t, u, &ev, BL_TOK_SPECIAL);
        size_t tl;
        char *tp = td_path("text/alice_in_wonderland.txt");
        char *text = tp ? read_file(tp, &tl) : NULL;
        if (same && text) {
            for (size_t off = 0, k = 0; k < 64 && off + 300 < tl; k++, off += tl / 64) {
                ev.text[k] = text + off;
                ev.len[k] = 300;
                ev.n = (int)k + 1;
            }
            same = same_encoding(s->t, u, &ev, BL_TOK_BOS);
        }
        free(text);
        free(tp);
        ok(same, "GGUF write round trip of %s (model '%s'): the same ids for every test string, flag and text",
           s->name, bl_tokenizer_model(u));
        bl_tokenizer_free(u);
    }
}

/* ------------------------------------------------ threads and speed */

struct job {
    const bl_tokenizer *t;
    const char *text;
    size_t len;
    int32_t *ids;
    int64_t n;
    int rc;
};

static void *encode_job(void *arg)
{
    struct job *j = arg;
    j->ids = enc(j->t, j->text, j->len, 0, &j->n, &j->rc);
    return NULL;
}

static void speed_and_threads(void)
{
    char *sp = td_path("text/tinyshakespeare.txt");
    size_t len;
    char *text = sp ? read_file(sp, &len) : NULL;
    free(sp);
    if (!text || !gpt2_files) {
        skip(3, "tinyshakespeare.txt or GPT-2 vocabulary absent");
        free(text);
        return;
    }
    int64_t n;
    int rc;
    double t0 = now();
    int32_t *ids = enc(gpt2_files, text, len, 0, &n, &rc);
    double dt = now() - t0;
    size_t dl;
    char *d = dec(gpt2_files, ids, n, &dl);
    diag("GPT-2 encode of tinyshakespeare.txt: %zu bytes -> %lld ids in %.3f s (%.1f MB/s)", len, (long long)n, dt,
         (double)len / dt / 1e6);
    ok(rc == 0 && n > 200000 && n < (int64_t)len && dl == len && memcmp(d, text, len) == 0,
       "tinyshakespeare.txt: %lld ids that decode back to its %zu bytes", (long long)n, len);
    /* unoptimized or sanitizer builds are slower; the release figure is in the diag line */
    ok(dt < 10.0, "encoding it takes %.3f s", dt);
    free(d);

    /* four threads encoding with one tokenizer get the same ids */
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){i % 2 ? gpt2_files : gpt2_json_b ? gpt2_json_b : gpt2_files, text, len / 4, NULL, 0, 0};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    int same = 1;
    int64_t nref;
    int32_t *ref = enc(gpt2_files, text, len / 4, 0, &nref, &rc);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        same &= jobs[i].rc == 0 && same_ids(jobs[i].ids, jobs[i].n, ref, nref);
        free(jobs[i].ids);
    }
    ok(same, "four threads encoding a quarter of it with shared tokenizers get the same %lld ids", (long long)nref);
    free(ref);
    free(ids);
    free(text);
}

/* Text that is not UTF-8, and long runs, through byte-level BPE. */
static void odd_text(void)
{
    if (!gpt2_files || !gpt2_json_b) {
        skip(2, "GPT-2 vocabulary absent");
        return;
    }
    static const char *const texts[] = {"\xff\xfe\xfd", "a\xc3(b", "\xe2\x82", "x\xf0\x9f\x98", "\xc0\xaf overlong",
                                        "\xed\xa0\x80 surrogate", "\x80\x80\x80 cont", "tab\t\x00nul"};
    int good = 0, n_texts = (int)(sizeof texts / sizeof texts[0]);
    for (int i = 0; i < n_texts; i++) {
        size_t len = i == n_texts - 1 ? 8 : strlen(texts[i]);
        for (int k = 0; k < 2; k++) {
            const bl_tokenizer *t = k ? gpt2_json_b : gpt2_files;
            int64_t n;
            int rc;
            size_t dl;
            int32_t *ids = enc(t, texts[i], len, 0, &n, &rc);
            char *d = dec(t, ids, n, &dl);
            good += rc == 0 && n >= 1 && n <= (int64_t)len && dl == len && memcmp(d, texts[i], len) == 0;
            free(ids);
            free(d);
        }
    }
    ok(good == 2 * n_texts, "invalid UTF-8 and NUL bytes: %d of %d encodings give at most one id per byte and "
       "decode back", good, 2 * n_texts);
    /* long runs of one class: one piece of a megabyte */
    size_t big = 1 << 20;
    char *s = malloc(big);
    int all = 1;
    static const char fill[] = {' ', 'a', '1', '!', '\n'};
    for (size_t f = 0; f < sizeof fill; f++) {
        memset(s, fill[f], big);
        int64_t n;
        int rc;
        size_t dl;
        double t0 = now();
        int32_t *ids = enc(gpt2_files, s, big, 0, &n, &rc);
        double dt = now() - t0;
        char *d = dec(gpt2_files, ids, n, &dl);
        int good1 = rc == 0 && dl == big && memcmp(d, s, big) == 0;
        if (!good1 || dt > 5)
            diag("a megabyte of '%c': rc %d, %lld ids, %.2f s", fill[f] == '\n' ? 'n' : fill[f], rc, (long long)n, dt);
        all &= good1;
        free(ids);
        free(d);
    }
    ok(all, "a megabyte of one character (space, letter, digit, punctuation, newline) encodes and decodes back");
    free(s);
}

/* ------------------------------------------------------------- errors */

/* A small byte-level tokenizer.json: the 256 alphabet characters (ids
 * 0-255 in byte order), "he", "ll", "hell", "hello", "Ġw", and
 * <|endoftext|> (261, also an added special token). */
static cJSON *small_json(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *at = cJSON_CreateObject();
    cJSON_AddNumberToObject(at, "id", 261);
    cJSON_AddStringToObject(at, "content", "<|endoftext|>");
    cJSON_AddBoolToObject(at, "special", 1);
    cJSON_AddItemToArray(added, at);
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    cJSON *decd = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(decd, "type", "ByteLevel");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    /* the GPT-2 alphabet, computed here independently of the library */
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
            cp = b;
        else
            cp = 256 + n++;
        char u[3] = {0};
        if (cp < 128)
            u[0] = (char)cp;
        else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 63));
        }
        cJSON_AddNumberToObject(vocab, u, b);
    }
    static const char *const more[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "<|endoftext|>"};
    for (int i = 0; i < 6; i++)
        cJSON_AddNumberToObject(vocab, more[i], 256 + i);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    static const char *const m[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w"};
    for (int i = 0; i < 5; i++)
        cJSON_AddItemToArray(merges, cJSON_CreateString(m[i]));
    return root;
}

static cJSON *at_path(cJSON *root, const char *a, const char *b)
{
    cJSON *o = cJSON_GetObjectItem(root, a);
    return b ? cJSON_GetObjectItem(o, b) : o;
}

/* Load JSON text; check the status and that the message names the file and
 * holds `want`. */
static void expect_json(const char *js, size_t len, const char *cfg, int want_rc, const char *want, const char *what)
{
    bl_tokenizer *t = NULL;
    bl_err err;
    memset(&err, 0, sizeof err);
    int rc = bl_tokenizer_load_hf_memory(&t, js, len, cfg, cfg ? strlen(cfg) : 0, "bad/tokenizer.json", &err);
    const char *file = cfg && strstr(want, "tokenizer_config") ? "tokenizer_config.json" : "bad/tokenizer.json";
    int good = rc == want_rc && t == NULL && strstr(err.msg, file) && strstr(err.msg, want);
    ok(good, "%s: %s", what, err.msg);
    if (!good)
        diag("  want status %d (%s) and '%s', got %d", want_rc, bl_strerror(want_rc), want, rc);
    bl_tokenizer_free(t);
}

static void expect_tree(cJSON *root, int want_rc, const char *want, const char *what)
{
    char *js = cJSON_PrintUnformatted(root);
    expect_json(js, strlen(js), NULL, want_rc, want, what);
    free(js);
    cJSON_Delete(root);
}

static void json_errors(void)
{
    /* first: the small file itself works */
    cJSON *root = small_json();
    char *js = cJSON_PrintUnformatted(root);
    bl_tokenizer *t = NULL;
    bl_err err;
    int rc = bl_tokenizer_load_hf_memory(&t, js, strlen(js), NULL, 0, "small/tokenizer.json", &err);
    int64_t n = 0;
    int32_t ids[16];
    if (rc == 0)
        rc = bl_tokenizer_encode(t, "hello world", 11, 0, ids, 16, &n);
    ok(rc == 0 && n == 6 && ids[0] == 259 && ids[1] == 260 && bl_tokenizer_eos(t) == 261 &&
           strcmp(bl_tokenizer_model(t), "gpt2") == 0,
       "a small byte-level tokenizer.json: 'hello world' is hello, Ġw, o, r, l, d%s%s", rc ? ": " : "",
       rc ? err.msg : "");
    bl_tokenizer_free(t);

    expect_json("", 0, NULL, BL_EFORMAT, "empty", "empty file");
    expect_json("not json", 8, NULL, BL_EFORMAT, "not valid JSON", "not JSON");
    expect_json(js, strlen(js) / 2, NULL, BL_EFORMAT, "truncated", "truncated half way");
    expect_json("{} x", 4, NULL, BL_EFORMAT, "trailing data", "trailing data");
    expect_json("[1, 2]", 6, NULL, BL_EFORMAT, "an array, not an object", "an array");
    expect_json("{}", 2, NULL, BL_EFORMAT, "model: missing", "model missing");
    free(js);
    cJSON_Delete(root);

    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", NULL), "type", cJSON_CreateString("WordPiece"));
    expect_tree(root, BL_EUNSUPPORTED, "model.type: 'WordPiece' is not supported", "model.type WordPiece");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", NULL), "type", cJSON_CreateString("Unigram"));
    expect_tree(root, BL_EUNSUPPORTED, "'Unigram' is not supported", "model.type Unigram");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", NULL), "type", cJSON_CreateNumber(3));
    expect_tree(root, BL_EFORMAT, "model.type: a number, not a string", "model.type a number");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", NULL), "vocab", cJSON_CreateArray());
    expect_tree(root, BL_EFORMAT, "model.vocab: an array, not an object", "model.vocab an array");
    root = small_json();
    cJSON_AddItemToArray(at_path(root, "model", "merges"), cJSON_CreateString("h zz"));
    expect_tree(root, BL_EFORMAT, "model.merges[5]: 'zz' is not in the vocabulary", "a merge of an unknown token");
    root = small_json();
    cJSON_AddItemToArray(at_path(root, "model", "merges"), cJSON_CreateString("o w"));
    expect_tree(root, BL_EFORMAT, "model.merges[5]: 'o' + 'w' = 'ow' is not in the vocabulary",
                "a merge whose result is not a token");
    root = small_json();
    cJSON_AddItemToArray(at_path(root, "model", "merges"), cJSON_CreateNumber(12));
    expect_tree(root, BL_EFORMAT, "model.merges[5]: not a string or a pair", "a merge that is a number");
    root = small_json();
    cJSON_AddItemToArray(at_path(root, "model", "merges"), cJSON_CreateString("hello"));
    expect_tree(root, BL_EFORMAT, "model.merges[5]: 'hello' is not two tokens joined by one space",
                "a merge without a space");
    root = small_json();
    const char *three[3] = {"h", "e", "l"};
    cJSON_AddItemToArray(at_path(root, "model", "merges"), cJSON_CreateStringArray(three, 3));
    expect_tree(root, BL_EFORMAT, "model.merges[5]: not a string or a pair", "a merge of three");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", "vocab"), "hello", cJSON_CreateNumber(70000));
    expect_tree(root, BL_EFORMAT, "model.vocab['hello']: 70000 is out of range", "a vocab id out of range");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", "vocab"), "hello", cJSON_CreateNumber(-1));
    expect_tree(root, BL_EFORMAT, "model.vocab['hello']: -1 is out of range", "a negative vocab id");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", "vocab"), "hello", cJSON_CreateNumber(256));
    expect_tree(root, BL_EFORMAT, "model.vocab['hello']: id 256 is also 'he'", "a duplicated vocab id");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", "vocab"), "hello", cJSON_CreateNumber(2.5));
    expect_tree(root, BL_EFORMAT, "model.vocab['hello']: 2.5 is not an integer", "a fractional vocab id");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "model", "vocab"), "hello", cJSON_CreateString("259"));
    expect_tree(root, BL_EFORMAT, "model.vocab['hello']: a string, not an integer", "a vocab id as a string");
    root = small_json();
    cJSON_AddNumberToObject(at_path(root, "model", "vocab"), "hello", 262);
    expect_tree(root, BL_EFORMAT, "token 'hello' appears twice", "a token twice in model.vocab");
    root = small_json();
    cJSON_DeleteItemFromObject(at_path(root, "model", "vocab"), "hell");
    cJSON_DeleteItemFromArray(at_path(root, "model", "merges"), 3);
    cJSON_DeleteItemFromArray(at_path(root, "model", "merges"), 2);
    expect_tree(root, BL_EFORMAT, "no token has id 258", "a gap in the ids");
    root = small_json();
    cJSON_DeleteItemFromObject(at_path(root, "model", "vocab"), "A");
    cJSON_AddNumberToObject(at_path(root, "model", "vocab"), "A-", 65);
    expect_tree(root, BL_EFORMAT, "no token for byte 0x41", "a byte-level vocabulary without a byte");
    root = small_json();
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "added_tokens"), 0), "content",
                              cJSON_CreateString("<|other|>"));
    expect_tree(root, BL_EFORMAT, "added_tokens[0]: id 261 is '<|endoftext|>' in model.vocab, not '<|other|>'",
                "an added token disagreeing with model.vocab");
    root = small_json();
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "added_tokens"), 0), "special",
                              cJSON_CreateString("yes"));
    expect_tree(root, BL_EFORMAT, "added_tokens[0].special: a string, not a boolean", "special not a boolean");
    root = small_json();
    cJSON_ReplaceItemInObject(root, "added_tokens", cJSON_CreateObject());
    expect_tree(root, BL_EFORMAT, "added_tokens: an object, not an array", "added_tokens an object");
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "pre_tokenizer", NULL), "type", cJSON_CreateString("Whitespace"));
    expect_tree(root, BL_EUNSUPPORTED, "pre_tokenizer.type: pre-tokenizer 'Whitespace' is not supported without",
                "Whitespace alone (no ByteLevel: the SentencePiece kind)");
    root = small_json();
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *arr = cJSON_AddArrayToObject(seq, "pretokenizers");
    cJSON *ws = cJSON_CreateObject();
    cJSON_AddStringToObject(ws, "type", "Whitespace");
    cJSON_AddItemToArray(arr, ws);
    cJSON_AddItemToArray(arr, cJSON_Duplicate(at_path(root, "pre_tokenizer", NULL), 1));
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", seq);
    expect_tree(root, BL_EUNSUPPORTED, "pre_tokenizer.pretokenizers[0].type: pre-tokenizer 'Whitespace' is not "
                "supported", "an unknown pre-tokenizer");
    root = small_json();
    cJSON *nf = cJSON_CreateObject();
    cJSON_AddStringToObject(nf, "type", "NFKC");
    cJSON_AddItemToObject(root, "normalizer", nf);
    expect_tree(root, BL_EUNSUPPORTED, "normalizer.type: normalizer 'NFKC' is not supported", "normalizer NFKC");
    root = small_json();
    nf = cJSON_CreateObject();
    cJSON_AddStringToObject(nf, "type", "NFC");
    cJSON_AddItemToObject(root, "normalizer", nf);
    js = cJSON_PrintUnformatted(root);
    rc = bl_tokenizer_load_hf_memory(&t, js, strlen(js), NULL, 0, "nfc/tokenizer.json", &err);
    ok(rc == 0, "normalizer NFC is accepted (a no-op)");
    if (rc == 0)
        bl_tokenizer_free(t);
    free(js);
    cJSON_Delete(root);
    /* Split: bad behavior, bad regex, a pattern that is neither */
    for (int k = 0; k < 3; k++) {
        root = small_json();
        seq = cJSON_CreateObject();
        cJSON_AddStringToObject(seq, "type", "Sequence");
        arr = cJSON_AddArrayToObject(seq, "pretokenizers");
        cJSON *sp = cJSON_CreateObject();
        cJSON_AddStringToObject(sp, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(sp, "pattern");
        if (k == 2)
            cJSON_AddNumberToObject(pat, "Other", 1);
        else
            cJSON_AddStringToObject(pat, "Regex", k == 1 ? "(unclosed" : "\\s+");
        cJSON_AddStringToObject(sp, "behavior", k == 0 ? "Sideways" : "Isolated");
        cJSON_AddItemToArray(arr, sp);
        cJSON_AddItemToArray(arr, cJSON_Duplicate(at_path(root, "pre_tokenizer", NULL), 1));
        cJSON_ReplaceItemInObject(root, "pre_tokenizer", seq);
        static const char *const want[] = {"pre_tokenizer.pretokenizers[0].behavior: 'Sideways' is not",
                                           "pre_tokenizer.pretokenizers[0].pattern.Regex: pattern '(unclosed' does "
                                           "not compile",
                                           "pre_tokenizer.pretokenizers[0].pattern: an object, not an object holding"};
        static const char *const what[] = {"a Split with an unknown behavior", "a Split regex that does not compile",
                                           "a Split pattern that is neither Regex nor String"};
        expect_tree(root, BL_EFORMAT, want[k], what[k]);
    }
    root = small_json();
    cJSON_ReplaceItemInObject(at_path(root, "decoder", NULL), "type", cJSON_CreateString("WordPiece"));
    expect_tree(root, BL_EUNSUPPORTED, "decoder.type: decoder 'WordPiece' is not supported", "an unknown decoder");
    root = small_json();
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "Mystery");
    cJSON_AddItemToObject(root, "post_processor", pp);
    expect_tree(root, BL_EUNSUPPORTED, "post_processor.type: post-processor 'Mystery'", "an unknown post-processor");
    root = small_json();
    pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "RobertaProcessing");
    cJSON *cls = cJSON_AddArrayToObject(pp, "cls");
    cJSON_AddItemToArray(cls, cJSON_CreateString("<|endoftext|>"));
    cJSON_AddItemToArray(cls, cJSON_CreateNumber(5));
    cJSON_AddItemToObject(root, "post_processor", pp);
    expect_tree(root, BL_EFORMAT, "post_processor.cls[1]: id 5 is '\xc4\x85', not '<|endoftext|>'",
                "RobertaProcessing naming the wrong id");
    root = small_json();
    cJSON_AddNumberToObject(at_path(root, "model", NULL), "dropout", 0.1);
    expect_tree(root, BL_EUNSUPPORTED, "model.dropout: BPE dropout is not supported", "dropout");
    root = small_json();
    cJSON_AddStringToObject(at_path(root, "model", NULL), "continuing_subword_prefix", "##");
    expect_tree(root, BL_EUNSUPPORTED, "model.continuing_subword_prefix: '##' is not supported",
                "a continuing_subword_prefix");
    root = small_json();
    cJSON_AddStringToObject(at_path(root, "model", NULL), "unk_token", "<nope>");
    expect_tree(root, BL_EFORMAT, "model.unk_token: '<nope>' is not in the vocabulary", "an unknown unk_token");
    root = small_json();
    cJSON_AddStringToObject(at_path(root, "model", NULL), "byte_fallback", "true");
    expect_tree(root, BL_EFORMAT, "model.byte_fallback: a string, not a boolean", "byte_fallback a string");
    /* tokenizer_config.json */
    root = small_json();
    js = cJSON_PrintUnformatted(root);
    expect_json(js, strlen(js), "{\"bos_token\": \"<nope>\"}", BL_EFORMAT,
                "tokenizer_config.json: bos_token: '<nope>' is not in the vocabulary", "config naming an unknown BOS");
    expect_json(js, strlen(js), "{\"add_bos_token\": 1}", BL_EFORMAT,
                "tokenizer_config.json: add_bos_token: a number, not a boolean", "config add_bos_token a number");
    expect_json(js, strlen(js), "{\"eos_token\": 7}", BL_EFORMAT,
                "tokenizer_config.json: eos_token: a number, not a string", "config eos_token a number");
    expect_json(js, strlen(js), "{\"bos_token\": ", BL_EFORMAT, "tokenizer_config.json: not valid JSON",
                "config truncated");
    free(js);
    cJSON_Delete(root);
    /* the SentencePiece kind: no unknown token and no byte fallback */
    root = small_json();
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", cJSON_CreateNull());
    expect_tree(root, BL_EUNSUPPORTED, "model: neither an unk_token nor byte_fallback",
                "a SentencePiece-kind file that cannot spell unknown text");
    root = small_json();
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", cJSON_CreateNull());
    nf = cJSON_CreateObject();
    cJSON_AddStringToObject(nf, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(nf, "pattern"), "String", "a");
    cJSON_AddStringToObject(nf, "content", "b");
    cJSON_AddItemToObject(root, "normalizer", nf);
    expect_tree(root, BL_EUNSUPPORTED, "normalizer: Replace of 'a' by 'b' is not supported",
                "a Replace normalizer of something else");

    /* the file loader: a missing file */
    rc = bl_tokenizer_load_hf(&t, "/nonexistent/tokenizer.json", &err);
    ok(rc == BL_EIO && strstr(err.msg, "/nonexistent/tokenizer.json"), "a missing tokenizer.json: %s", err.msg);
}

/* encoder.json + vocab.bpe that are wrong */
static void gpt2_file_errors(void)
{
    char ep[4200], vp[4200];
    snprintf(ep, sizeof ep, "%s/encoder.json", tmp);
    snprintf(vp, sizeof vp, "%s/vocab.bpe", tmp);
    cJSON *root = small_json();
    cJSON *vocab = cJSON_Duplicate(at_path(root, "model", "vocab"), 1);
    cJSON_Delete(root);
    char *good_enc = cJSON_PrintUnformatted(vocab);
    const char *good_bpe = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n\xc4\xa0 w\n";
    struct {
        const char *enc, *bpe;
        int rc;
        const char *file, *want, *what;
    } cases[] = {
        {NULL, NULL, 0, NULL, NULL, "the good pair loads"},
        {"{\"a\": 0,", NULL, BL_EFORMAT, "encoder.json", "not valid JSON", "encoder.json truncated"},
        {"[0, 1]", NULL, BL_EFORMAT, "encoder.json", "an array, not an object", "encoder.json an array"},
        {"{\"a\": \"0\"}", NULL, BL_EFORMAT, "encoder.json", "['a']: a string, not an integer", "an id as a string"},
        {"{\"a\": 5}", NULL, BL_EFORMAT, "encoder.json", "['a']: 5 is out of range", "an id out of range"},
        {"{\"a\": 0, \"b\": 0}", NULL, BL_EFORMAT, "encoder.json", "['b']: id 0 is also 'a'", "a duplicated id"},
        {NULL, "#version: 0.2\nh e\nhe\n", BL_EFORMAT, "vocab.bpe", "line 3: 'he' is not two tokens joined by one space",
         "a merge line without a space"},
        {NULL, "#version: 0.2\nh e\nh  e\n", BL_EFORMAT, "vocab.bpe", "line 3: 'h  e' is not two tokens",
         "a merge line with two spaces"},
        {NULL, "#version: 0.2\nh zz\n", BL_EFORMAT, "vocab.bpe", "line 2: 'zz' is not in encoder.json",
         "a merge of an unknown token"},
        {NULL, "#version: 0.2\no w\n", BL_EFORMAT, "vocab.bpe", "line 2: 'o' + 'w' is not in encoder.json",
         "a merge whose result is not a token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *e = cases[i].enc ? cases[i].enc : good_enc, *b = cases[i].bpe ? cases[i].bpe : good_bpe;
        write_file(ep, e, strlen(e));
        write_file(vp, b, strlen(b));
        bl_tokenizer *t = NULL;
        bl_err err;
        memset(&err, 0, sizeof err);
        int rc = bl_tokenizer_load_gpt2(&t, ep, vp, &err);
        if (cases[i].rc == 0) {
            int64_t n = 0;
            int32_t ids[8];
            if (rc == 0)
                rc = bl_tokenizer_encode(t, "hello", 5, 0, ids, 8, &n);
            ok(rc == 0 && n == 1 && ids[0] == 259, "%s ('hello' is one token)%s%s", cases[i].what, rc ? ": " : "",
               rc ? err.msg : "");
        } else {
            ok(rc == cases[i].rc && !t && strstr(err.msg, cases[i].file) && strstr(err.msg, cases[i].want),
               "%s: %s", cases[i].what, err.msg);
        }
        bl_tokenizer_free(t);
    }
    bl_tokenizer *t = NULL;
    bl_err err;
    snprintf(vp, sizeof vp, "%s/no-such.bpe", tmp);
    write_file(ep, good_enc, strlen(good_enc));
    int rc = bl_tokenizer_load_gpt2(&t, ep, vp, &err);
    ok(rc == BL_EIO && strstr(err.msg, "no-such.bpe"), "a missing vocab.bpe: %s", err.msg);
    free(good_enc);
    cJSON_Delete(vocab);
}

/* GGUF gpt2 vocabularies that are wrong */
static void gguf_errors(void)
{
    struct {
        const char *model, *pre;
        int merges;      /* 0 none, 1 good, 2 unknown token, 3 no space, 4 not strings */
        int rc;
        const char *want, *what;
    } cases[] = {
        {"gpt2", "gpt-2", 1, 0, NULL, "a small GGUF gpt2 vocabulary loads"},
        {"gpt2", NULL, 1, 0, NULL, "without tokenizer.ggml.pre (the GPT-2 regex)"},
        {"gpt2", "qwen2", 1, 0, NULL, "pre qwen2"},
        {"gpt2", "llama-bpe", 1, 0, NULL, "pre llama-bpe"},
        {"gpt2", "smollm", 1, 0, NULL, "pre smollm"},
        {"gpt2", "tekken", 1, 0, NULL, "pre tekken"},
        {"gpt2", "gpt-2", 0, BL_EFORMAT, "a gpt2 vocabulary needs merges, and tokenizer.ggml.merges is absent",
         "no merges"},
        {"gpt2", "gpt-2", 2, BL_EFORMAT, "tokenizer.ggml.merges[1]: 'zz' is not in the vocabulary",
         "a merge of an unknown token"},
        {"gpt2", "gpt-2", 3, BL_EFORMAT, "tokenizer.ggml.merges[1]: 'hell' is not two tokens joined by a space",
         "a merge without a space"},
        {"gpt2", "gpt-2", 4, BL_EFORMAT, "tokenizer.ggml.merges is not an array of strings", "merges of numbers"},
        {"gpt2", "falcon", 1, BL_EUNSUPPORTED, "pre-tokenizer 'falcon' (tokenizer.ggml.pre) is not supported",
         "an unknown pre-tokenizer"},
        {"bert", NULL, 1, BL_EUNSUPPORTED, "tokenizer model 'bert' is not supported", "an unknown model"},
    };
    cJSON *root = small_json();
    cJSON *vocab = at_path(root, "model", "vocab");
    int nv = cJSON_GetArraySize(vocab);
    const char **toks = calloc((size_t)nv, sizeof *toks);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
        toks[(int)e->valuedouble] = e->string;
    int32_t *types = malloc((size_t)nv * sizeof *types);
    for (int i = 0; i < nv; i++)
        types[i] = i == 261 ? BL_TOKEN_CONTROL : BL_TOKEN_NORMAL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/err%zu.gguf", tmp, i);
        bl_gguf_writer *w = bl_gguf_writer_alloc();
        bl_gguf_writer_set_str(w, "general.architecture", "gpt2");
        bl_gguf_writer_set_str(w, "tokenizer.ggml.model", cases[i].model);
        if (cases[i].pre)
            bl_gguf_writer_set_str(w, "tokenizer.ggml.pre", cases[i].pre);
        bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, (uint64_t)nv);
        bl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BL_GGUF_INT32, types, (uint64_t)nv);
        bl_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 261);
        const char *m1[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w"};
        const char *m2[] = {"h e", "h zz"};
        const char *m3[] = {"h e", "hell"};
        if (cases[i].merges == 1)
            bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m1, NULL, 5);
        else if (cases[i].merges == 2)
            bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m2, NULL, 2);
        else if (cases[i].merges == 3)
            bl_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m3, NULL, 2);
        else if (cases[i].merges == 4)
            bl_gguf_writer_set_arr(w, "tokenizer.ggml.merges", BL_GGUF_INT32, types, 3);
        bl_err err;
        memset(&err, 0, sizeof err);
        int rc = bl_gguf_writer_write(w, path, &err);
        bl_gguf_writer_free(w);
        bl_gguf *g = NULL;
        bl_tokenizer *t = NULL;
        if (rc == 0)
            rc = bl_gguf_open(&g, path, &err);
        if (rc == 0)
            rc = bl_tokenizer_from_gguf(&t, g, &err);
        if (cases[i].rc == 0) {
            int64_t n = 0;
            int32_t ids[16];
            if (rc == 0)
                rc = bl_tokenizer_encode(t, "hello world", 11, 0, ids, 16, &n);
            ok(rc == 0 && n == 6 && ids[0] == 259 && ids[1] == 260 && bl_tokenizer_eos(t) == 261 &&
                   bl_tokenizer_bos(t) == -1,
               "%s: 'hello world' is hello, Ġw, o, r, l, d%s%s", cases[i].what, rc ? ": " : "", rc ? err.msg : "");
        } else {
            ok(rc == cases[i].rc && !t && strstr(err.msg, path) && strstr(err.msg, cases[i].want), "%s: %s",
               cases[i].what, err.msg);
        }
        bl_tokenizer_free(t);
        bl_gguf_free(g);
        unlink(path);
    }
    free(toks);
    free(types);
    cJSON_Delete(root);
}

/* What write_gguf refuses, and what every pre-tokenizer writes back. */
static void write_gguf_cases(void)
{
    /* a pre-tokenizer no GGUF name stands for */
    cJSON *root = small_json();
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *arr = cJSON_AddArrayToObject(seq, "pretokenizers");
    cJSON *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(sp, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "pattern"), "String", "o");
    cJSON_AddStringToObject(sp, "behavior", "MergedWithPrevious");
    cJSON_AddItemToArray(arr, sp);
    cJSON_AddItemToArray(arr, cJSON_Duplicate(at_path(root, "pre_tokenizer", NULL), 1));
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", seq);
    cJSON_ReplaceItemInObject(at_path(root, "pre_tokenizer", NULL), "type", cJSON_CreateString("Sequence"));
    char *js = cJSON_PrintUnformatted(root);
    bl_tokenizer *t;
    bl_err err;
    int rc = bl_tokenizer_load_hf_memory(&t, js, strlen(js), NULL, 0, "split/tokenizer.json", &err);
    if (rc == 0) {
        int64_t n = 0;
        int32_t ids[16];
        /* "hello" splits after each o: "hello" stays whole; "ow" -> "o", "w" */
        rc = bl_tokenizer_encode(t, "hellohello", 10, 0, ids, 16, &n);
        int wrc;
        bl_tokenizer *u = gguf_round_trip(t, tmp, "split", &wrc);
        ok(rc == 0 && n == 2 && ids[0] == 259 && ids[1] == 259 && !u && wrc == BL_EUNSUPPORTED,
           "Split(String 'o', MergedWithPrevious): 'hellohello' is hello, hello; write_gguf refuses it");
        bl_tokenizer_free(u);
        bl_tokenizer_free(t);
    } else {
        ok(0, "load: %s", err.msg);
    }
    free(js);
    cJSON_Delete(root);
}

int main(void)
{
    tmp = tmp_dir();
    if (!tmp)
        skip_all("no temporary directory");
    json_errors();
    gpt2_file_errors();
    gguf_errors();
    write_gguf_cases();
    char *td = td_path("README.md");
    if (!td) {
        skip(1, "BL_TESTDATA absent: no real vocabularies");
    } else {
        gpt2_sources();
        spm_sources();
        special_tokens();
        gguf_round_trips();
        speed_and_threads();
        odd_text();
    }
    free(td);
    bl_tokenizer_free(gpt2_gguf);
    bl_tokenizer_free(gpt2_files);
    bl_tokenizer_free(gpt2_json_a);
    bl_tokenizer_free(gpt2_json_b);
    bl_tokenizer_free(spm_gguf);
    bl_tokenizer_free(spm_hf);
    bl_tokenizer_free(tok512);
    free_vectors(&gv);
    free_vectors(&sv);
    rm_rf(tmp);
    free(tmp);
    return done_testing();
}
