/* tests/test-tokenizer-train.c: training a SentencePiece-style BPE
 * vocabulary (bl_tokenizer_train(), lib/tokenizer_train.c).
 *
 *   small corpora whose merges are worked out by hand in the comments
 *   (ties go to the concatenation first in byte order; "▁" is the bytes
 *   e2 96 81, so it sorts after ASCII);
 *   the layout of a trained vocabulary: specials, byte tokens, characters,
 *   merges, no duplicate, no piece over max_piece_bytes;
 *   encoding then decoding gives back the text, byte fallback included
 *   (emoji, invalid UTF-8, NUL, text that spells "<s>" or "<0x41>");
 *   the encoder reproduces the training segmentation: the whole training
 *   text encodes as the concatenation of its words' segmentations, the
 *   words cut by a splitter written here; and a plain BPE written here,
 *   applying the merges in their order to each word, gives the same ids;
 *   the GGUF round trip, determinism over runs and thread counts, bytes per
 *   token on held-out text, and every error status.
 * The parts on text/ files skip without the test data. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bitlens/bitlens.h>
#include "tokenizer_internal.h"

#include "tap.h"
#include "testutil.h"

#define SP "\xe2\x96\x81"   /* U+2581 */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct bl_tokenizer_train_params params(int64_t vocab, int64_t max_piece, int prefix, int threads)
{
    struct bl_tokenizer_train_params p = bl_tokenizer_train_default_params();
    p.vocab = vocab;
    p.max_piece_bytes = max_piece;
    p.add_space_prefix = prefix;
    p.n_threads = threads;
    return p;
}

static bl_tokenizer *train(const char *text, size_t n, const struct bl_tokenizer_train_params *p)
{
    bl_tokenizer *t = NULL;
    bl_err err;
    int rc = bl_tokenizer_train(&t, text, n, p, &err);
    if (rc) {
        diag("training: %s (%d)", err.msg, rc);
        return NULL;
    }
    return t;
}

static int piece_is(const bl_tokenizer *t, int32_t id, const char *s)
{
    size_t len;
    const char *p = bl_tokenizer_piece(t, id, &len);
    return len == strlen(s) && memcmp(p, s, len) == 0;
}

/* ids first.. spell list[0..n-1] */
static int pieces_are(const bl_tokenizer *t, int32_t first, const char *const *list, int n)
{
    int good = 1;
    for (int i = 0; i < n; i++)
        if (!piece_is(t, first + i, list[i])) {
            size_t len;
            const char *p = bl_tokenizer_piece(t, first + i, &len);
            diag("  id %d is '%.*s', expected '%s'", first + i, (int)len, p, list[i]);
            good = 0;
        }
    return good;
}

static int32_t *enc(const bl_tokenizer *t, const char *s, size_t len, unsigned flags, int64_t *n)
{
    int64_t cap = 3 * (int64_t)len + 5;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (bl_tokenizer_encode(t, s, len, flags, ids, cap, n)) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* t written to a GGUF file (in a temporary directory, removed here) and read
 * back; NULL on failure, err saying why. */
static bl_tokenizer *gguf_round_trip(const bl_tokenizer *t, bl_err *err)
{
    char *dir = tmp_dir(), path[4200];
    snprintf(path, sizeof path, "%s/vocab.gguf", dir);
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    bl_gguf *g = NULL;
    bl_tokenizer *u = NULL;
    int rc = w ? bl_tokenizer_write_gguf(t, w, 0) : BL_ENOMEM;
    if (rc)
        snprintf(err->msg, sizeof err->msg, "writing the vocabulary: status %d", rc);
    if (!rc)
        rc = bl_gguf_writer_write(w, path, err);
    if (!rc)
        rc = bl_gguf_open(&g, path, err);
    if (!rc)
        rc = bl_tokenizer_from_gguf(&u, g, err);
    bl_gguf_free(g);
    bl_gguf_writer_free(w);
    rm_rf(dir);
    free(dir);
    return rc ? NULL : u;
}

static int enc_is(const bl_tokenizer *t, const char *s, const int32_t *want, int64_t nw)
{
    int64_t n;
    int32_t *ids = enc(t, s, strlen(s), 0, &n);
    int good = ids && n == nw && memcmp(ids, want, (size_t)n * sizeof *ids) == 0;
    if (!good && ids) {
        char buf[1024];
        size_t o = 0;
        for (int64_t i = 0; i < n && o < sizeof buf - 16; i++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, " %d", ids[i]);
        buf[o] = '\0';
        diag("  '%s' encodes as%s", s, buf);
    }
    free(ids);
    return good;
}

/* Encode with BOS, decode every id after the one before it: the text. */
static int round_trip(const bl_tokenizer *t, const char *s, size_t len)
{
    int64_t n;
    int32_t *ids = enc(t, s, len, BL_TOK_BOS, &n);
    if (!ids)
        return 0;
    size_t total = 0;
    for (int64_t i = 1; i < n; i++)
        total += bl_tokenizer_decode(t, ids[i - 1], ids[i], NULL, 0);
    char *out = malloc(total + 1);
    size_t o = 0;
    for (int64_t i = 1; i < n; i++)
        o += bl_tokenizer_decode(t, ids[i - 1], ids[i], out + o, total - o);
    int good = ids[0] == bl_tokenizer_bos(t) && o == len && memcmp(out, s, len) == 0;
    if (!good)
        for (size_t i = 0; i < len && i < o; i++)
            if (out[i] != s[i]) {
                diag("  decoded text differs at byte %zu of %zu (decoded %zu bytes)", i, len, o);
                break;
            }
    free(out);
    free(ids);
    return good;
}

/* 1 if s[0..n) is exactly one valid UTF-8 character */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    size_t want = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
                : s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;
    if (!want || want > n)
        return 0;
    for (size_t k = 1; k < want; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return want;
}

static int valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char_len((const unsigned char *)s + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* ------------------------------------------------- a string -> value map */

struct entry {
    char *s;
    size_t len;
    int64_t count;
    int32_t *ids;       /* a word's segmentation; a piece's id in ids_n */
    int64_t n;
};

struct map {
    struct entry *e;
    size_t cap, n;
};

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static struct entry *map_get(struct map *m, const char *s, size_t len, int add)
{
    if (add && (m->n + 1) * 2 > m->cap) {
        struct map big = {calloc(m->cap ? 2 * m->cap : 1024, sizeof(struct entry)), m->cap ? 2 * m->cap : 1024, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].s) {
                size_t j = fnv(m->e[i].s, m->e[i].len) & (big.cap - 1);
                while (big.e[j].s)
                    j = (j + 1) & (big.cap - 1);
                big.e[j] = m->e[i];
                big.n++;
            }
        free(m->e);
        *m = big;
    }
    if (!m->cap)
        return NULL;
    size_t j = fnv(s, len) & (m->cap - 1);
    for (; m->e[j].s; j = (j + 1) & (m->cap - 1))
        if (m->e[j].len == len && memcmp(m->e[j].s, s, len) == 0)
            return &m->e[j];
    if (!add)
        return NULL;
    m->e[j].s = malloc(len + 1);
    memcpy(m->e[j].s, s, len);
    m->e[j].len = len;
    m->n++;
    return &m->e[j];
}

static void map_free(struct map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].s) {
            free(m->e[i].s);
            free(m->e[i].ids);
        }
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* the trainer's words, from bli_tok_train()'s listing */
static int collect_word(void *user, const char *word, size_t len, int64_t count, const int32_t *ids,
                        int64_t n)
{
    struct map *m = user;
    struct entry *e = map_get(m, word, len, 1);
    if (e->ids)
        return 1;   /* listed twice */
    e->count = count;
    e->n = n;
    e->ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    memcpy(e->ids, ids, (size_t)n * sizeof *ids);
    return 0;
}

static bl_tokenizer *train_words(const char *text, size_t n, const struct bl_tokenizer_train_params *p,
                                 struct map *words)
{
    bl_tokenizer *t = NULL;
    bl_err err;
    int rc = bli_tok_train(&t, text, n, p, collect_word, words, &err);
    if (rc)
        diag("training: %s (%d)", err.msg, rc);
    return t;
}

/* ------------------------------------- the encoder's view, written here */

/* A symbol as the encoder cuts one: the length the lead byte announces,
 * shortened at the end or at a byte that is not a continuation byte. */
static size_t sym(const unsigned char *p, size_t n)
{
    size_t want = p[0] < 0xc0 ? 1 : p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    size_t k = 1;
    while (k < want && k < n && (p[k] & 0xc0) == 0x80)
        k++;
    return k;
}

static int is_break(const char *p, size_t k)
{
    return k == 1 && strchr("\t\n\v\f\r", *p) && *p;
}

/* Cut the text into words as documented: "▁" for the prefix and every
 * space, a word before every "▁", runs of tab/newline/... on their own.
 * Calls fn for each word of the normalized text. */
static void split_words(const char *text, size_t n, int prefix,
                        void (*fn)(void *u, const char *w, size_t len), void *u)
{
    char *norm = malloc(3 * n + 4);
    size_t m = 0;
    if (prefix && n) {
        memcpy(norm, SP, 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(norm + m, SP, 3);
            m += 3;
        } else {
            norm[m++] = text[i];
        }
    }
    size_t start = 0;
    int brk = 0;
    for (size_t i = 0; i < m;) {
        size_t k = sym((const unsigned char *)norm + i, m - i);
        int space = k == 3 && memcmp(norm + i, SP, 3) == 0;
        int b = is_break(norm + i, k);
        if (i > start && (space || b != brk)) {
            fn(u, norm + start, i - start);
            start = i;
        }
        if (i == start)
            brk = b;
        i += k;
    }
    if (m > start)
        fn(u, norm + start, m - start);
    free(norm);
}

struct concat {
    struct map *words;
    int32_t *ids;
    int64_t n, cap;
    int64_t missing;
};

static void concat_word(void *u, const char *w, size_t len)
{
    struct concat *c = u;
    struct entry *e = map_get(c->words, w, len, 0);
    if (!e) {
        if (c->missing++ < 3)
            diag("  word '%.*s' is not among the trainer's", (int)len, w);
        return;
    }
    if (c->n + e->n > c->cap) {
        c->cap = 2 * (c->n + e->n);
        c->ids = realloc(c->ids, (size_t)c->cap * sizeof *c->ids);
    }
    memcpy(c->ids + c->n, e->ids, (size_t)e->n * sizeof *e->ids);
    c->n += e->n;
}

/* The whole text encodes as its words' training segmentations, one after
 * the other. */
static int encodes_as_trained(const bl_tokenizer *t, const char *text, size_t n, int prefix, struct map *words)
{
    struct concat c = {words, NULL, 0, 0, 0};
    split_words(text, n, prefix, concat_word, &c);
    int64_t ne;
    int32_t *ids = enc(t, text, n, 0, &ne);
    int good = ids && !c.missing && ne == c.n && (ne == 0 || memcmp(ids, c.ids, (size_t)ne * sizeof *ids) == 0);
    if (!good && ids && !c.missing) {
        int64_t i = 0;
        while (i < ne && i < c.n && ids[i] == c.ids[i])
            i++;
        diag("  %" PRId64 " ids encoded, %" PRId64 " trained; first difference at %" PRId64, ne, c.n, i);
    }
    free(ids);
    free(c.ids);
    return good;
}

/* Plain BPE: the merges in order, each applied left to right to the word
 * (pieces = the tokenizer's normal tokens longer than one character, in id
 * order).  ids[] receives the result, with byte fallback. */
struct bpe {
    const bl_tokenizer *t;
    struct map pieces;      /* every normal token -> id (in n) */
    int32_t *merges;        /* ids of the merged pieces in merge order */
    int64_t n_merges;
};

static void bpe_init(struct bpe *b, const bl_tokenizer *t)
{
    memset(b, 0, sizeof *b);
    b->t = t;
    int64_t nv = bl_tokenizer_n_vocab(t);
    b->merges = malloc((size_t)nv * sizeof *b->merges);
    for (int32_t id = 0; id < nv; id++) {
        if (bl_tokenizer_kind(t, id) != BL_TOKEN_NORMAL)
            continue;
        size_t len;
        const char *p = bl_tokenizer_piece(t, id, &len);
        map_get(&b->pieces, p, len, 1)->n = id;
        if (utf8_char_len((const unsigned char *)p, len) != len)
            b->merges[b->n_merges++] = id;
    }
}

static void bpe_free(struct bpe *b)
{
    map_free(&b->pieces);
    free(b->merges);
}

static int64_t bpe_word(struct bpe *b, const char *w, size_t len, int32_t *ids)
{
    size_t *at = malloc((len + 1) * sizeof *at), ns = 0;   /* symbol starts */
    for (size_t i = 0; i < len; i += sym((const unsigned char *)w + i, len - i))
        at[ns++] = i;
    at[ns] = len;
    for (int64_t r = 0; r < b->n_merges; r++) {
        size_t pl;
        const char *p = bl_tokenizer_piece(b->t, b->merges[r], &pl);
        for (size_t i = 0; i + 1 < ns; i++)
            if (at[i + 2] - at[i] == pl && memcmp(w + at[i], p, pl) == 0) {
                memmove(at + i + 1, at + i + 2, (ns - i - 1) * sizeof *at);
                ns--;
            }
    }
    int64_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        struct entry *e = map_get(&b->pieces, w + at[i], at[i + 1] - at[i], 0);
        if (e)
            ids[n++] = (int32_t)e->n;
        else
            for (size_t k = at[i]; k < at[i + 1]; k++)
                ids[n++] = 3 + (unsigned char)w[k];
    }
    free(at);
    return n;
}

/* Plain BPE against the trainer on every word (how many differ), and
 * against bl_tokenizer_encode() on the first `few` words that start with
 * "▁" (encoded without it, as the dummy prefix puts it back). */
static void check_bpe(const bl_tokenizer *t, struct map *words, int few, int64_t *differ, int64_t *enc_differ,
                      int64_t *enc_checked)
{
    struct bpe b;
    bpe_init(&b, t);
    *differ = *enc_differ = *enc_checked = 0;
    for (size_t i = 0; i < words->cap; i++) {
        struct entry *e = &words->e[i];
        if (!e->s)
            continue;
        int32_t *ids = malloc((e->len + 1) * sizeof *ids);
        int64_t n = bpe_word(&b, e->s, e->len, ids);
        if (n != e->n || memcmp(ids, e->ids, (size_t)n * sizeof *ids) != 0) {
            if ((*differ)++ < 3)
                diag("  plain BPE and the trainer differ on '%.*s'", (int)e->len, e->s);
        }
        if (*enc_checked < few && e->len > 3 && memcmp(e->s, SP, 3) == 0) {
            int64_t ne;
            int32_t *got = enc(t, e->s + 3, e->len - 3, 0, &ne);
            (*enc_checked)++;
            if (!got || ne != n || memcmp(got, ids, (size_t)n * sizeof *ids) != 0) {
                if ((*enc_differ)++ < 3)
                    diag("  plain BPE and the encoder differ on '%.*s'", (int)e->len, e->s);
            }
            free(got);
        }
        free(ids);
    }
    bpe_free(&b);
}

/* --------------------------------------------------------------- tests */

/* "low" x5, "lower" x2, "newest" x6, "widest" x3: the corpus of Sennrich
 * et al.'s BPE example, worked out by hand.
 *
 * Words: ▁low 5, ▁lower 2, ▁newest 6, ▁widest 3 (the dummy prefix and the
 * spaces make every word start with "▁").  Characters: e 17, w 16, ▁ 16,
 * s 9, t 9, l 7, o 7, n 6, d 3, i 3, r 2 (95 in all; leaving out even r,
 * 2/95, exceeds 1/10000, so all 11 are kept), ties in byte order ("w"
 * 0x77 before "▁" 0xe2): ids 259..269.
 *
 * Pair counts: ▁l 7, lo 7, ow 7, we 8, er 2, ▁n 6, ne 6, ew 6, es 9, st 9,
 * ▁w 3, wi 3, id 3, de 3.
 *   0 "es" (9, tie with "st": "es" first).  Now "wes" 6, "est" 9, "des"
 *     3; "we" 2, "st" 0, "de" 0.
 *   1 "est" 9.  "west" 6, "dest" 3.
 *   2 "lo" (7, ties "ow" and "▁l").  "▁lo" 7, "low" 7.
 *   3 "low" (7, before "▁lo").  "▁low" 7, "lowe" 2, "we" 0.
 *   4 "▁low" 7.  "▁lowe" 2.
 *   5 "ew" (6, ties "ne", "west", "▁n").  "new" 6, "ewest" 6.
 *   6 "ewest" (6, before "new", "▁n").  "newest" 6.
 *   7 "newest" (before "▁n").  "▁newest" 6.
 *   8 "▁newest" 6.
 *   9 "dest" (3, ties "id", "wi", "▁w").  "idest" 3.
 *  10 "idest".  11 "widest".  12 "▁widest".
 *  13 "er" (2, before "▁lowe").  "▁lower" 2.
 *  14 "▁lower".  No pair is left: 259 + 11 + 15 = 285 tokens.
 *
 * Encoding "lowest" ("▁lowest"): es, est, lo, low, ▁low apply, nothing
 * else: ▁low (274) est (271).  "newer" ("▁newer"): ew (5), then er
 * (13): ▁ (261) n (266) ew (275) er (283).
 *
 * With max_piece_bytes 4: es, est, lo, low as before ("▁low" is 6
 * bytes); then among the 6s ("ew", "ne", "west", "▁n") "ew"; "ewest" is 5
 * bytes, so "new" (6) comes next, and "▁new" and "newest" are too long;
 * then "dest" (3, before "id", "wi", "▁w"); "idest" is too long, "id" is
 * gone: "wi" (3, before "▁w"), "▁wi" too long; then "er" (2, before
 * "lowe"); "lower" too long, and "lowe" is gone.  9 merges: 279 tokens. */
static const char *const low_text =
    "low low low low low lower lower newest newest newest newest newest newest widest widest widest";

static void test_by_hand(void)
{
    static const char *const chars[] = {"e", "w", SP, "s", "t", "l", "o", "n", "d", "i", "r"};
    static const char *const merges[] = {"es", "est", "lo", "low", SP "low", "ew", "ewest", "newest",
                                         SP "newest", "dest", "idest", "widest", SP "widest", "er",
                                         SP "lower"};
    struct bl_tokenizer_train_params p = params(1024, 16, 1, 1);
    struct map words = {0};
    bl_tokenizer *t = train_words(low_text, strlen(low_text), &p, &words);
    ok(t != NULL, "by hand: trains");
    if (!t)
        return;
    ok(bl_tokenizer_n_vocab(t) == 285, "by hand: the text runs out of pairs at 285 tokens (got %" PRId64 ")",
       bl_tokenizer_n_vocab(t));
    ok(pieces_are(t, 259, chars, 11), "by hand: the 11 characters, most frequent first, ties in byte order");
    ok(pieces_are(t, 270, merges, 15), "by hand: the 15 merges in order");
    int scores = 1;
    for (int r = 0; r < 15; r++)
        scores &= bl_tokenizer_score(t, 270 + r) == (float)-r;
    for (int i = 0; i < 11; i++)
        scores &= bl_tokenizer_score(t, 259 + i) == (float)-(15 + i);
    ok(scores, "by hand: merge r scores -r, the characters -(15 + i) after them");
    ok(enc_is(t, "lowest", (const int32_t[]){274, 271}, 2), "by hand: 'lowest' encodes as ▁low est");
    ok(enc_is(t, "newer", (const int32_t[]){261, 266, 275, 283}, 4), "by hand: 'newer' encodes as ▁ n ew er");
    ok(enc_is(t, "low lower", (const int32_t[]){274, 284}, 2), "by hand: training words encode whole");
    /* a character the text never had: byte fallback ("▁" then <0x78> 'x') */
    ok(enc_is(t, "xl", (const int32_t[]){261, 3 + 'x', 264}, 3), "by hand: 'x' falls back to its byte token");

    struct entry *e = map_get(&words, SP "newest", strlen(SP "newest"), 0);
    ok(words.n == 4 && e && e->count == 6 && e->n == 1 && e->ids[0] == 278,
       "by hand: the trainer saw 4 distinct words, ▁newest 6 times, segmented as one piece");
    int64_t differ, enc_differ, checked;
    check_bpe(t, &words, 100, &differ, &enc_differ, &checked);
    ok(differ == 0 && enc_differ == 0 && checked == 4,
       "by hand: plain BPE on the words gives the trainer's and the encoder's ids");
    ok(encodes_as_trained(t, low_text, strlen(low_text), 1, &words), "by hand: the text encodes as trained");
    map_free(&words);
    bl_tokenizer_free(t);

    /* a smaller vocabulary stops the merges early, or has room only for
     * the most frequent characters */
    p.vocab = 275;
    t = train(low_text, strlen(low_text), &p);
    ok(t && bl_tokenizer_n_vocab(t) == 275 && pieces_are(t, 270, merges, 5),
       "by hand: vocab 275 keeps the first 5 merges");
    bl_tokenizer_free(t);
    p.vocab = 265;
    t = train(low_text, strlen(low_text), &p);
    ok(t && bl_tokenizer_n_vocab(t) == 265 && pieces_are(t, 259, chars, 6),
       "by hand: vocab 265 has room for the 6 most frequent characters only");
    if (t)   /* "r" and "i" are no tokens now: byte fallback */
        ok(enc_is(t, "ri", (const int32_t[]){261, 3 + 'r', 3 + 'i'}, 3), "by hand: 'ri' is ▁ <0x72> <0x69>");
    else
        skip(1, "no tokenizer");
    bl_tokenizer_free(t);

    static const char *const merges4[] = {"es", "est", "lo", "low", "ew", "new", "dest", "wi", "er"};
    p = params(1024, 4, 1, 1);
    t = train(low_text, strlen(low_text), &p);
    ok(t && bl_tokenizer_n_vocab(t) == 279 && pieces_are(t, 270, merges4, 9),
       "by hand: max_piece_bytes 4 gives its 9 merges");
    bl_tokenizer_free(t);
}

/* Without the dummy prefix the first word has no "▁"; words after a
 * newline neither; runs of newlines are words.
 *
 * "ab ab ab", add_space_prefix 0: words ab 1, ▁ab 2; characters a 3, b 3,
 * ▁ 2; pairs ab 3, ▁a 2: merges "ab", then "▁ab" (2): 264 tokens, and
 * "ab ab" encodes as ab (262) ▁ab (263).
 *
 * "ab\n\nab\n\nab" with the prefix: words ▁ab 1, \n\n 2, ab 2; characters
 * \n 4, a 3, b 3, ▁ 1; pairs ab 3, \n\n 2, ▁a 1: merges "ab", "\n\n",
 * "▁ab"; 266 tokens; the text encodes as ▁ab (265) \n\n (264) ab (263)
 * \n\n ab. */
static void test_words(void)
{
    struct bl_tokenizer_train_params p = params(1024, 16, 0, 1);
    bl_tokenizer *t = train("ab ab ab", 8, &p);
    ok(t && bl_tokenizer_n_vocab(t) == 264 && pieces_are(t, 259, (const char *const[]){"a", "b", SP, "ab", SP "ab"}, 5),
       "no prefix: a b ▁ ab ▁ab");
    if (t) {
        ok(enc_is(t, "ab ab", (const int32_t[]){262, 263}, 2), "no prefix: 'ab ab' encodes as ab ▁ab");
        /* the setting travels with the tokenizer through GGUF */
        bl_err err;
        bl_tokenizer *u = gguf_round_trip(t, &err);
        ok(u && enc_is(u, "ab ab", (const int32_t[]){262, 263}, 2), "no prefix: so after a GGUF round trip");
        bl_tokenizer_free(u);
    } else {
        skip(2, "no tokenizer");
    }
    bl_tokenizer_free(t);

    const char *nl = "ab\n\nab\n\nab";
    p.add_space_prefix = 1;
    struct map words = {0};
    t = train_words(nl, strlen(nl), &p, &words);
    ok(t && bl_tokenizer_n_vocab(t) == 266 &&
       pieces_are(t, 259, (const char *const[]){"\n", "a", "b", SP, "ab", "\n\n", SP "ab"}, 7),
       "newlines: \\n a b ▁ ab \\n\\n ▁ab");
    if (t) {
        ok(enc_is(t, nl, (const int32_t[]){265, 264, 263, 264, 263}, 5), "newlines: ▁ab \\n\\n ab \\n\\n ab");
        ok(words.n == 3 && map_get(&words, "\n\n", 2, 0) && map_get(&words, "\n\n", 2, 0)->count == 2,
           "newlines: 3 distinct words, \\n\\n twice");
    } else {
        skip(2, "no tokenizer");
    }
    map_free(&words);
    bl_tokenizer_free(t);

    /* text spelling special and byte tokens: no piece may let the encoder
     * build one ("<s" + ">" would be the control token <s>) */
    const char *sp = "a<s>b a<s>b a<s>b x</s>y x</s>y <0x41> <0x41> <0x41> <unk> <unk> <s> <s>";
    p = params(1024, 16, 1, 1);
    t = train(sp, strlen(sp), &p);
    int clean = t != NULL;
    static const char *const forms[] = {"<s>", "</s>", "<unk>", "<0x41>"};
    for (int32_t id = 259; t && id < bl_tokenizer_n_vocab(t); id++) {
        size_t len;
        const char *s = bl_tokenizer_piece(t, id, &len);
        for (int k = 0; k < 4; k++) {
            size_t m = strlen(forms[k]);
            if (len >= 2 && len <= m && (!memcmp(forms[k], s, len) || !memcmp(forms[k] + m - len, s, len))) {
                diag("  piece %d '%.*s' is part of %s", id, (int)len, s, forms[k]);
                clean = 0;
            }
        }
    }
    ok(clean, "specials: no piece begins or ends a special or byte token's spelling");
    ok(t && round_trip(t, sp, strlen(sp)), "specials: the text decodes back (not as control or byte tokens)");
    bl_tokenizer_free(t);
}

static void test_errors(void)
{
    bl_tokenizer *t = (bl_tokenizer *)&t;   /* must become NULL */
    bl_err err;
    struct bl_tokenizer_train_params p = params(259, 16, 1, 1);
    int rc = bl_tokenizer_train(&t, "abc", 3, &p, &err);
    ok(rc == BL_EINVAL && !t && strstr(err.msg, "vocab 259") && strstr(err.msg, "260"),
       "vocab 259: BL_EINVAL (%s)", err.msg);
    p.vocab = ((int64_t)1 << 24) + 1;
    rc = bl_tokenizer_train(&t, "abc", 3, &p, &err);
    ok(rc == BL_EINVAL && strstr(err.msg, "16777217"), "vocab 2^24 + 1: BL_EINVAL (%s)", err.msg);
    p = params(300, 3, 1, 1);
    rc = bl_tokenizer_train(&t, "abc", 3, &p, &err);
    ok(rc == BL_EINVAL && strstr(err.msg, "max_piece_bytes 3"), "max_piece_bytes 3: BL_EINVAL (%s)", err.msg);
    p.max_piece_bytes = 1025;
    rc = bl_tokenizer_train(&t, "abc", 3, &p, &err);
    ok(rc == BL_EINVAL && strstr(err.msg, "1025"), "max_piece_bytes 1025: BL_EINVAL (%s)", err.msg);
    p = params(300, 16, 1, 1);
    rc = bl_tokenizer_train(&t, NULL, 3, &p, &err);
    ok(rc == BL_EINVAL && !t, "NULL text of 3 bytes: BL_EINVAL (%s)", err.msg);

    /* an empty text: the special and byte tokens, and "▁" */
    rc = bl_tokenizer_train(&t, NULL, 0, &p, &err);
    ok(rc == 0 && t && bl_tokenizer_n_vocab(t) == 260 && piece_is(t, 259, SP), "empty text: 260 tokens, ▁ last");
    if (t) {
        /* "▁ab": ▁ and the bytes of a and b */
        ok(enc_is(t, "ab", (const int32_t[]){259, 3 + 'a', 3 + 'b'}, 3), "empty text: 'ab' encodes as ▁ <0x61> <0x62>");
        ok(round_trip(t, "h\xc3\xa9 \xff", 5), "empty text: decodes back");
    } else {
        skip(2, "no tokenizer");
    }
    bl_tokenizer_free(t);

    /* default parameters with NULL */
    rc = bl_tokenizer_train(&t, low_text, strlen(low_text), NULL, &err);
    struct bl_tokenizer_train_params d = bl_tokenizer_train_default_params();
    ok(rc == 0 && t && bl_tokenizer_n_vocab(t) == 285 && d.vocab == 1024 && d.max_piece_bytes == 16 &&
       d.add_space_prefix == 1 && d.n_threads == 0 && !d.progress,
       "NULL parameters: the defaults (1024, 16, prefix, all threads)");
    bl_tokenizer_free(t);
}

struct prog {
    int64_t calls, last, total, stop_at;
    int monotone;
};

static int on_progress(void *user, int64_t merges, int64_t total)
{
    struct prog *g = user;
    g->monotone &= merges == g->last + 1 && (g->calls == 0 || total == g->total);
    g->calls++;
    g->last = merges;
    g->total = total;
    return g->stop_at && merges >= g->stop_at;
}

static void test_progress(void)
{
    struct prog g = {0, 0, 0, 0, 1};
    struct bl_tokenizer_train_params p = params(1024, 16, 1, 1);
    p.progress = on_progress;
    p.progress_user = &g;
    bl_tokenizer *t = train(low_text, strlen(low_text), &p);
    /* 1024 - 259 - 11 = 754 planned, 15 made */
    ok(t && g.calls == 15 && g.last == 15 && g.total == 754 && g.monotone,
       "progress: once per merge, with the 754 planned (%" PRId64 " calls, last %" PRId64 " of %" PRId64 ")",
       g.calls, g.last, g.total);
    bl_tokenizer_free(t);
    g = (struct prog){0, 0, 0, 4, 1};
    bl_err err;
    t = (bl_tokenizer *)&t;
    int rc = bl_tokenizer_train(&t, low_text, strlen(low_text), &p, &err);
    ok(rc == BL_ESTOPPED && !t && g.calls == 4 && strstr(err.msg, "after 4 of 754"),
       "progress: nonzero stops with BL_ESTOPPED (%s)", err.msg);
}

/* The layout every trained vocabulary has. */
static int layout_ok(const bl_tokenizer *t, int64_t max_piece, int64_t *n_chars)
{
    int64_t n = bl_tokenizer_n_vocab(t);
    int good = bl_tokenizer_bos(t) == 1 && bl_tokenizer_eos(t) == 2 && bl_tokenizer_add_bos(t) &&
               !bl_tokenizer_add_eos(t) && strcmp(bl_tokenizer_model(t), "llama") == 0 &&
               piece_is(t, 0, "<unk>") && bl_tokenizer_kind(t, 0) == BL_TOKEN_UNKNOWN &&
               piece_is(t, 1, "<s>") && bl_tokenizer_kind(t, 1) == BL_TOKEN_CONTROL &&
               piece_is(t, 2, "</s>") && bl_tokenizer_kind(t, 2) == BL_TOKEN_CONTROL;
    if (!good)
        diag("  the special tokens are wrong");
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        if (!piece_is(t, 3 + b, want) || bl_tokenizer_kind(t, 3 + b) != BL_TOKEN_BYTE) {
            diag("  byte token %d is wrong", b);
            good = 0;
        }
    }
    /* characters (one each, scores below all merges), then merges with
     * falling scores */
    struct map seen = {0};
    int64_t chars = 0;
    float last = 1.0f;
    for (int32_t id = 259; id < n; id++) {
        size_t len;
        const char *s = bl_tokenizer_piece(t, id, &len);
        int one = utf8_char_len((const unsigned char *)s, len) == len;
        if (bl_tokenizer_kind(t, id) != BL_TOKEN_NORMAL || !valid_utf8(s, len) || (int64_t)len > max_piece ||
            len == 0) {
            diag("  token %d '%.*s' is not a normal valid piece of at most %" PRId64 " bytes", id, (int)len, s,
                 max_piece);
            good = 0;
        }
        if (one && id != 259 + chars) {
            diag("  token %d '%.*s', a character, comes after a merge", id, (int)len, s);
            good = 0;
        }
        if (one) {
            chars++;
        } else {
            if (!(bl_tokenizer_score(t, id) < last)) {
                diag("  token %d: score %g after %g", id, bl_tokenizer_score(t, id), last);
                good = 0;
            }
            last = bl_tokenizer_score(t, id);
        }
        struct entry *e = map_get(&seen, s, len, 1);
        if (e->count++) {
            diag("  token %d '%.*s' appears twice", id, (int)len, s);
            good = 0;
        }
    }
    for (int32_t id = 259; id < 259 + chars; id++)
        if (!(bl_tokenizer_score(t, id) < last) || (id > 259 && !(bl_tokenizer_score(t, id) < bl_tokenizer_score(t, id - 1)))) {
            diag("  character token %d scores %g, not below the merges and the characters before", id,
                 bl_tokenizer_score(t, id));
            good = 0;
            break;
        }
    map_free(&seen);
    *n_chars = chars;
    return good;
}

static int same_vocab(const bl_tokenizer *a, const bl_tokenizer *b)
{
    if (bl_tokenizer_n_vocab(a) != bl_tokenizer_n_vocab(b))
        return 0;
    for (int32_t id = 0; id < bl_tokenizer_n_vocab(a); id++) {
        size_t la, lb;
        const char *pa = bl_tokenizer_piece(a, id, &la), *pb = bl_tokenizer_piece(b, id, &lb);
        if (la != lb || memcmp(pa, pb, la) || bl_tokenizer_score(a, id) != bl_tokenizer_score(b, id) ||
            bl_tokenizer_kind(a, id) != bl_tokenizer_kind(b, id))
            return 0;
    }
    return 1;
}

static char *read_text(const char *rel, size_t *n)
{
    char *path = td_path(rel);
    char *s = path ? read_file(path, n) : NULL;
    free(path);
    return s;
}

static void test_corpus(void)
{
    size_t ns, na;
    char *stories = read_text("text/tinystories_train_head.txt", &ns);
    char *alice = read_text("text/alice_in_wonderland.txt", &na);
    if (!stories || !alice) {
        skip(21, "text/tinystories_train_head.txt or text/alice_in_wonderland.txt absent");
        free(stories);
        free(alice);
        return;
    }
    struct bl_tokenizer_train_params p = params(1024, 16, 1, 1);
    struct map words = {0};
    double t0 = now();
    bl_tokenizer *t = train_words(stories, ns, &p, &words);
    double t1 = now();
    ok(t != NULL, "tinystories: trains to 1024 in %.3f s", t1 - t0);
    if (!t) {
        skip(20, "no tokenizer");
        map_free(&words);
        free(stories);
        free(alice);
        return;
    }
    int64_t chars = 0;
    ok(bl_tokenizer_n_vocab(t) == 1024, "tinystories: 1024 tokens");
    int laid = layout_ok(t, 16, &chars);
    ok(laid, "tinystories: specials, byte tokens, %" PRId64 " characters, merges; no duplicate", chars);

    /* the text's words as the trainer segmented them, back from the encoder */
    ok(encodes_as_trained(t, stories, ns, 1, &words),
       "tinystories: the text encodes as the concatenation of its %zu words' training segmentations", words.n);
    int64_t differ, enc_differ, checked;
    check_bpe(t, &words, 300, &differ, &enc_differ, &checked);
    ok(differ == 0, "tinystories: plain BPE (merges in order) gives the trainer's ids on all %zu words (%" PRId64
       " differ)", words.n, differ);
    ok(enc_differ == 0 && checked == 300, "tinystories: and the encoder's on %" PRId64 " words", checked);
    int64_t total = 0;
    for (size_t i = 0; i < words.cap; i++)
        if (words.e[i].s)
            total += words.e[i].count * (int64_t)words.e[i].len;
    int64_t spaces = 0;
    for (size_t i = 0; i < ns; i++)
        spaces += stories[i] == ' ';
    ok(total == (int64_t)ns + 2 * spaces + 3, "tinystories: the words' bytes times their counts make the text, "
       "each space 2 bytes longer as \"▁\", and the prefix");
    map_free(&words);

    /* round trips: the training text, another text, and byte fallback */
    ok(round_trip(t, stories, ns), "tinystories: decodes back");
    ok(round_trip(t, alice, na), "alice (not trained on): decodes back");
    static const char odd[] = "caf\xc3\xa9 \xf0\x9f\x98\x80 emoji  two spaces \t tab\r\n"
                              " bad \xff\xfe \xe2\x96 x \xc3 \xed\xa0\x80 \xc0\x80 \xf8\x88\x80\x80\x80 nul \0 end\xe2";
    ok(round_trip(t, odd, sizeof odd - 1), "emoji, invalid UTF-8, NUL, spaces, tab, CRLF: decode back");
    /* a U+2581 in the text is a space to SentencePiece: it decodes as one */
    ok(round_trip(t, "a b", 3), "'a b' decodes back");
    int64_t n1, n2;
    int32_t *i1 = enc(t, "a b", 3, 0, &n1), *i2 = enc(t, "a" SP "b", 5, 0, &n2);
    ok(i1 && i2 && n1 == n2 && !memcmp(i1, i2, (size_t)n1 * sizeof *i1), "'a▁b' encodes as 'a b'");
    free(i1);
    free(i2);
    int64_t n;
    int32_t *ids = enc(t, "\xf0\x9f\x98\x80", 4, 0, &n);
    ok(ids && n == 5 && ids[1] == 3 + 0xf0 && ids[4] == 3 + 0x80, "an emoji not in the vocabulary: 4 byte tokens");
    free(ids);

    /* alice, trained on itself: the same checks */
    words = (struct map){0};
    p.vocab = 4096;
    t0 = now();
    bl_tokenizer *ta = train_words(alice, na, &p, &words);
    t1 = now();
    ok(ta && bl_tokenizer_n_vocab(ta) == 4096 && layout_ok(ta, 16, &chars),
       "alice: 4096 tokens in %.3f s, laid out as they should", t1 - t0);
    ok(ta && encodes_as_trained(ta, alice, na, 1, &words), "alice: encodes as trained");
    if (ta)
        check_bpe(ta, &words, 300, &differ, &enc_differ, &checked);
    ok(ta && differ == 0 && enc_differ == 0, "alice: plain BPE agrees with the trainer and the encoder");
    map_free(&words);

    /* GGUF round trip */
    bl_err err;
    bl_tokenizer *u = gguf_round_trip(t, &err);
    ok(u && same_vocab(t, u), "GGUF: written and read back, the same pieces, scores and kinds");
    if (u) {
        int32_t *a = enc(t, alice, na, BL_TOK_BOS, &n1), *b = enc(u, alice, na, BL_TOK_BOS, &n2);
        ok(a && b && n1 == n2 && !memcmp(a, b, (size_t)n1 * sizeof *a), "GGUF: alice encodes the same (%" PRId64
           " ids)", n1);
        free(a);
        free(b);
        a = enc(t, odd, sizeof odd - 1, 0, &n1);
        b = enc(u, odd, sizeof odd - 1, 0, &n2);
        ok(a && b && n1 == n2 && !memcmp(a, b, (size_t)n1 * sizeof *a), "GGUF: and the odd text");
        free(a);
        free(b);
    } else {
        diag("GGUF: %s", err.msg);
        skip(2, "no tokenizer from the GGUF");
    }
    bl_tokenizer_free(u);

    /* determinism: runs and thread counts */
    int same = 1;
    for (int threads = 1; threads <= 4; threads++) {
        p = params(1024, 16, 1, threads);
        bl_tokenizer *v = train(stories, ns, &p);
        same &= v && same_vocab(t, v);
        bl_tokenizer_free(v);
    }
    ok(same, "the same vocabulary on 1, 2, 3 and 4 threads and on every run");
    bl_tokenizer_free(ta);
    bl_tokenizer_free(t);

    /* timings (the report quotes them) */
    for (int v = 1024; v <= 4096; v *= 4)
        for (int threads = 1; threads <= 2; threads++) {
            p = params(v, 16, 1, threads);
            t0 = now();
            bl_tokenizer *x = train(stories, ns, &p);
            diag("tinystories head (%zu bytes) to %d tokens on %d thread%s: %.3f s", ns, v, threads,
                 threads > 1 ? "s" : "", now() - t0);
            bl_tokenizer_free(x);
        }

    /* bytes per token on held-out text: train on the first 80% (cut at a
     * line), measure on the rest */
    size_t cut = ns * 4 / 5;
    while (cut < ns && stories[cut - 1] != '\n')
        cut++;
    const int64_t sizes[3] = {512, 1024, 4096};
    double bpt[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        p = params(sizes[k], 16, 1, 0);
        bl_tokenizer *x = train(stories, cut, &p);
        int32_t *h = x ? enc(x, stories + cut, ns - cut, 0, &n) : NULL;
        if (h)
            bpt[k] = (double)(ns - cut) / (double)n;
        diag("held-out tinystories (%zu bytes): vocab %" PRId64 ": %.3f bytes per token", ns - cut, sizes[k], bpt[k]);
        free(h);
        bl_tokenizer_free(x);
    }
    ok(bpt[0] > 2.0 && bpt[1] > bpt[0] && bpt[2] > bpt[1], "held-out compression improves with the vocabulary");
    /* for scale: llama2.c's tok512, trained by SentencePiece on all of TinyStories */
    char *tp = td_path("models/tok512.bin");
    bl_tokenizer *x = NULL;
    bl_err err2;
    if (tp && bl_tokenizer_load_llama2c(&x, tp, 512, &err2) == 0) {
        int32_t *h = enc(x, stories + cut, ns - cut, 0, &n);
        if (h)
            diag("held-out tinystories: tok512.bin (llama2.c): %.3f bytes per token", (double)(ns - cut) / (double)n);
        free(h);
    }
    bl_tokenizer_free(x);
    free(tp);
    free(stories);
    free(alice);
}

int main(void)
{
    test_by_hand();
    test_words();
    test_errors();
    test_progress();
    test_corpus();
    return done_testing();
}
