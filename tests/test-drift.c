/* tests/test-drift.c: the drift library (bitlens/drift.h) and the n-gram
 * internals behind it (analysis/drift_internal.h).
 *
 * Every expected value is worked out by hand in the comment beside its
 * check, or computed here from the definitions by code that shares nothing
 * with the library: a Kneser-Ney model that counts by scanning the symbol
 * stream (no tables, no hashing, no sorting), and zlib called directly for
 * the compression ratio.
 *
 * The n-gram model keeps its discounts and back-off weights (gamma) in
 * float32 (struct bli_ngram, and the reference file), so the expected
 * probabilities round those two quantities to float the same way before
 * using them; the comments give the exact rationals.  Sums of probabilities
 * are checked to 1e-6 for the same reason (a gamma rounded to float moves a
 * sum by up to ~6e-8). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <bitlens/ctx.h>
#include <bitlens/drift.h>
#include <bitlens/gguf.h>
#include <bitlens/model.h>

#include "drift_internal.h"
#include "tap.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

/* |a - b| <= tol, false for NaN */
static int near(double a, double b, double tol)
{
    return fabs(a - b) <= tol;
}

/* a copy of s[0..n) in a heap block of exactly n bytes, so that
 * AddressSanitizer sees any read past the end */
static char *exact(const void *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    if (!b) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    if (n)
        memcpy(b, s, n);
    return b;
}

/* an uninitialized heap block of exactly n bytes */
static char *block(size_t n)
{
    char *b = malloc(n ? n : 1);
    if (!b) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    return b;
}

static int features_of(const struct bl_drift_scorer *s, const char *text, size_t n, const float *bits,
                       struct bl_drift_features *f)
{
    char *b = exact(text, n);
    int rc = bl_drift_features(s, b, n, bits, f);
    free(b);
    return rc;
}

/* The features of a C string literal with no scorer (aborts on failure). */
static struct bl_drift_features feats(const struct bl_drift_scorer *s, const char *text, size_t n)
{
    struct bl_drift_features f;
    if (features_of(s, text, n, NULL, &f) != BL_OK) {
        printf("Bail out! bl_drift_features failed\n");
        exit(1);
    }
    return f;
}
#define FEATS(s, lit) feats(s, lit, sizeof lit - 1)

/* raw deflate at level 9, windowBits -15, memLevel 9: size / n (zlib itself,
 * independent of the library) */
static double deflate_ratio(const char *t, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    uLong cap = deflateBound(&z, (uLong)n) + 16;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)t;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int r = out ? deflate(&z, Z_FINISH) : Z_MEM_ERROR;
    double ratio = r == Z_STREAM_END ? (double)z.total_out / (double)n : -1;
    deflateEnd(&z);
    free(out);
    return ratio;
}

static int all_finite(const struct bl_drift_features *f)
{
    for (int k = 0; k < BL_DF_COUNT; k++)
        if (f->have[k] && !isfinite(f->v[k]))
            return 0;
    return 1;
}

/* which features are present, as a bit set */
static unsigned have_mask(const struct bl_drift_features *f)
{
    unsigned m = 0;
    for (int k = 0; k < BL_DF_COUNT; k++)
        m |= f->have[k] ? 1u << k : 0;
    return m;
}
#define B(f) (1u << (f))
/* the features every non-blank text has without a scorer */
#define PLAIN (B(BL_DF_ZLIB_RATIO) | B(BL_DF_NONPRINT_RATE) | B(BL_DF_SCRIPT_RATE) | B(BL_DF_REPEAT_RATE) | \
               B(BL_DF_STOPWORD_RATE) | B(BL_DF_MEAN_WORD_LEN) | B(BL_DF_SYMBOL_RATIO) | B(BL_DF_ALPHA_WORDS))

/* ---------------------------------------------------------------- names */

static void test_names(void)
{
    /* the table in drift.h's header comment */
    static const struct {
        const char *name;
        int dir;
    } want[BL_DF_COUNT] = {
        {"model_bpc", +1},     {"char_ce", +1},       {"word_ce", +1},      {"word_pmi", -1},
        {"dict_rate", -1},     {"zlib_ratio", 0},     {"nonprint_rate", +1}, {"script_rate", +1},
        {"repeat_rate", +1},   {"stopword_rate", -1}, {"mean_word_len", 0}, {"symbol_ratio", +1},
        {"alpha_words", -1},
    };
    int good = 1;
    for (int f = 0; f < BL_DF_COUNT; f++) {
        const char *n = bl_drift_feature_name(f);
        good &= n && strcmp(n, want[f].name) == 0 && bl_drift_feature_direction(f) == want[f].dir;
    }
    ok(good, "feature names and directions as drift.h lists them");
    ok(!bl_drift_feature_name(-1) && !bl_drift_feature_name(BL_DF_COUNT) &&
           bl_drift_feature_direction(BL_DF_COUNT) == 0,
       "names out of range: NULL, direction 0");
    struct bl_drift_build_params p = bl_drift_build_default_params();
    ok(p.char_order == 5 && p.char_min_count == 2 && p.word_order == 3 && p.word_min_count == 2 &&
           p.word_vocab == 12000 && p.calib_bytes == 262144,
       "default build params 5, 2, 3, 2, 12000, 262144 as documented");
}

/* ---------------------------------------------------------------- UTF-8 */

static void test_utf8(void)
{
    static const struct {
        const char *s;
        size_t n;
        uint32_t cp;   /* for valid ones */
        int len, valid;
    } c[] = {
        {"A", 1, 0x41, 1, 1},
        {"\xc2\x80", 2, 0x80, 2, 1},             /* smallest two-byte */
        {"\xc3\xa9", 2, 0xe9, 2, 1},
        {"\xdf\xbf", 2, 0x7ff, 2, 1},
        {"\xe0\xa0\x80", 3, 0x800, 3, 1},        /* smallest three-byte */
        {"\xe2\x82\xac", 3, 0x20ac, 3, 1},
        {"\xed\x9f\xbf", 3, 0xd7ff, 3, 1},       /* just below the surrogates */
        {"\xee\x80\x80", 3, 0xe000, 3, 1},       /* just above */
        {"\xef\xbf\xbf", 3, 0xffff, 3, 1},
        {"\xf0\x90\x80\x80", 4, 0x10000, 4, 1},  /* smallest four-byte */
        {"\xf0\x9f\x98\x80", 4, 0x1f600, 4, 1},
        {"\xf4\x8f\xbf\xbf", 4, 0x10ffff, 4, 1}, /* the last code point */
        /* overlong forms */
        {"\xc0\x80", 2, 0, 1, 0},
        {"\xc1\xbf", 2, 0, 1, 0},
        {"\xe0\x80\x80", 3, 0, 1, 0},
        {"\xe0\x9f\xbf", 3, 0, 1, 0},            /* U+07FF in three bytes */
        {"\xf0\x80\x80\x80", 4, 0, 1, 0},
        {"\xf0\x8f\xbf\xbf", 4, 0, 1, 0},        /* U+FFFF in four bytes */
        /* surrogates */
        {"\xed\xa0\x80", 3, 0, 1, 0},
        {"\xed\xbf\xbf", 3, 0, 1, 0},
        /* beyond U+10FFFF, bytes that never lead */
        {"\xf4\x90\x80\x80", 4, 0, 1, 0},
        {"\xf5\x80\x80\x80", 4, 0, 1, 0},
        {"\xf7\xbf\xbf\xbf", 4, 0, 1, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0, 1, 0},
        {"\xfe", 1, 0, 1, 0},
        {"\xff", 1, 0, 1, 0},
        {"\x80", 1, 0, 1, 0},                    /* a lone continuation */
        {"\xbf\x80", 2, 0, 1, 0},
        /* a bad continuation */
        {"\xc3\x41", 2, 0, 1, 0},
        {"\xe2\x82\x41", 3, 0, 1, 0},
        {"\xe2\x28\xa1", 3, 0, 1, 0},
        {"\xf0\x9f\x98\x41", 4, 0, 1, 0},
        /* truncated by the end of the buffer */
        {"\xc3", 1, 0, 1, 0},
        {"\xe2\x82", 2, 0, 1, 0},
        {"\xf0\x9f\x98", 3, 0, 1, 0},
        {"\xe2\x82\xac", 2, 0, 1, 0},
        {"\xf4\x8f\xbf\xbf", 3, 0, 1, 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char *b = exact(c[i].s, c[i].n);
        int len = -1, valid = -1;
        uint32_t cp = bli_utf8_next((const unsigned char *)b, c[i].n, &len, &valid);
        free(b);
        if (len != c[i].len || valid != c[i].valid || (c[i].valid && cp != c[i].cp)) {
            diag("utf8 case %zu: cp %#x len %d valid %d", i, cp, len, valid);
            bad++;
        }
    }
    ok(!bad, "bli_utf8_next: %zu cases (valid extremes, overlongs, surrogates, > U+10FFFF, truncated)",
       sizeof c / sizeof *c);

    /* a(0) é(1,2) \xff(3) €(4..6) b(7) \xe2(8) \x82(9): the last two are a
     * truncated sequence, one character per byte -> 7 characters */
    static const char mix[] = "a\xc3\xa9\xff\xe2\x82\xac"
                              "b\xe2\x82";
    static const int64_t want[] = {0, 1, 3, 4, 7, 8, 9, 10};
    int64_t off[11];
    char *m = exact(mix, 10);
    int64_t nc = bl_utf8_offsets(m, 10, off);
    ok(nc == 7 && memcmp(off, want, sizeof want) == 0, "bl_utf8_offsets on mixed valid/invalid: 7, offsets 0 1 3 4 7 8 9 10");
    ok(bl_utf8_offsets(m, 10, NULL) == 7, "bl_utf8_offsets with off NULL counts");
    free(m);
    off[0] = -1;
    ok(bl_utf8_offsets("", 0, off) == 0 && off[0] == 0, "bl_utf8_offsets of nothing: 0, off[0] = 0");
}

static void test_char_symbol(void)
{
    /* 1..95 printable ASCII (space 1, '!' 2, 'A' 65-31 = 34, '~' 95); tab,
     * newline, return fold into the space; 96 other code points; 97 control
     * characters (C0, DEL, C1) and invalid bytes */
    ok(bli_char_symbol(' ', 1) == 1 && bli_char_symbol('!', 1) == 2 && bli_char_symbol('A', 1) == 34 &&
           bli_char_symbol('~', 1) == 95,
       "char symbols of printable ASCII: 1, 2, 34, 95");
    ok(bli_char_symbol('\t', 1) == 1 && bli_char_symbol('\n', 1) == 1 && bli_char_symbol('\r', 1) == 1,
       "tab, newline, return are the space symbol");
    ok(bli_char_symbol(0, 1) == 97 && bli_char_symbol(0x1f, 1) == 97 && bli_char_symbol(0x7f, 1) == 97 &&
           bli_char_symbol(0x85, 1) == 97 && bli_char_symbol(0x9f, 1) == 97 && bli_char_symbol('a', 0) == 97,
       "control characters and invalid bytes are symbol 97");
    ok(bli_char_symbol(0xa0, 1) == 96 && bli_char_symbol(0xe9, 1) == 96 && bli_char_symbol(0x3b3, 1) == 96 &&
           bli_char_symbol(0x1f600, 1) == 96,
       "other code points are symbol 96");
}

/* ---------------------------------------------------------------- words */

static void test_word_tokens(void)
{
    /* d o n ' t _ s t o p -  n  o  w  ,  _  o  k  ?
     * 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18
     * "don't" (0,5): the apostrophe has a letter after it; "stop-now" (6,8);
     * "," (14,1); "ok" (16,2); "?" (18,1) */
    const char *t = "don't stop-now, ok?";
    int64_t st[16], ln[16];
    int64_t n = bli_word_tokens(t, strlen(t), st, ln, 16);
    static const int64_t ws[] = {0, 6, 14, 16, 18}, wl[] = {5, 8, 1, 2, 1};
    ok(n == 5 && memcmp(st, ws, sizeof ws) == 0 && memcmp(ln, wl, sizeof wl) == 0,
       "\"don't stop-now, ok?\": don't | stop-now | , | ok | ?");

    /* ' q u o t e d ' _ a -  -  b  _  x  -  _  n  a  ï(2)  v  e
     * 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19,20 21 22
     * the apostrophes and hyphens with no letter after them stand alone;
     * non-ASCII bytes are word bytes */
    const char *u = "'quoted' a--b x- na\xc3\xafve";
    static const int64_t us[] = {0, 1, 7, 9, 10, 11, 12, 14, 15, 17}, ul[] = {1, 6, 1, 1, 1, 1, 1, 1, 1, 6};
    n = bli_word_tokens(u, strlen(u), st, ln, 16);
    ok(n == 10 && memcmp(st, us, sizeof us) == 0 && memcmp(ln, ul, sizeof ul) == 0,
       "outer apostrophes, a double hyphen, a trailing hyphen, UTF-8 inside a word");

    for (int i = 0; i < 16; i++)
        st[i] = -7;
    n = bli_word_tokens(t, strlen(t), st, ln, 2);
    ok(n == 5 && st[0] == 0 && st[1] == 6 && st[2] == -7, "cap 2: returns all 5, writes 2");
    ok(bli_word_tokens("", 0, st, ln, 16) == 0 && bli_word_tokens(" \t\r\n\f\v ", 7, st, ln, 16) == 0,
       "no tokens in nothing or in white space");
}

static void test_word_shape(void)
{
    static const struct {
        const char *w;
        int shape;
    } c[] = {
        {",", BLI_UNK_PUNCT},      {"-", BLI_UNK_PUNCT},     {"a", BLI_UNK_LOWER},     {"Hello", BLI_UNK_CAP},
        {"Running", BLI_UNK_CAP},  {"1999", BLI_UNK_NUM},    {"x2", BLI_UNK_NUM},      {"caf\xc3\xa9", BLI_UNK_NONASCII},
        {"running", BLI_UNK_ING},  {"ing", BLI_UNK_LOWER},   {"sing", BLI_UNK_LOWER},  /* suffix + 2 letters needed */
        {"tired", BLI_UNK_ED},     {"red", BLI_UNK_LOWER},   {"quickly", BLI_UNK_LY},  {"nation", BLI_UNK_TION},
        {"tension", BLI_UNK_TION}, {"teacher", BLI_UNK_ER},  {"actor", BLI_UNK_ER},    {"national", BLI_UNK_ADJ},
        {"famous", BLI_UNK_ADJ},   {"active", BLI_UNK_ADJ},  {"readable", BLI_UNK_ADJ}, {"magic", BLI_UNK_ADJ},
        {"cats", BLI_UNK_S},       {"bus", BLI_UNK_S},       {"is", BLI_UNK_LOWER},    {"dog", BLI_UNK_LOWER},
        {"aaaaaaaaaaaaaaaaaaaaaaaaa", BLI_UNK_LONG},          /* 25 letters */
        {"aaaaaaaaaaaaaaaaaaaaaaaa", BLI_UNK_LOWER},          /* 24 */
        {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3",
         BLI_UNK_LONG},                                       /* 25 bytes: length first */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int s = bli_word_shape(c[i].w, (int64_t)strlen(c[i].w));
        if (s != c[i].shape) {
            diag("shape of '%s': %d, expected %d", c[i].w, s, c[i].shape);
            bad++;
        }
    }
    ok(!bad, "bli_word_shape: %zu words in their unknown classes", sizeof c / sizeof *c);
}

/* ---------------------------------------------------------------- normalize */

static void test_normalize(void)
{
    static const struct {
        const char *in, *out;
    } c[] = {
        {"\xe2\x80\x9cHi,\xe2\x80\x9d she said", "\"Hi,\" she said"},
        {"it\xe2\x80\x99s \xe2\x80\x98ok\xe2\x80\x99 \xe2\x80\x9equote\xe2\x80\x9f", "it's 'ok' \"quote\xe2\x80\x9f"},
        {"a\xe2\x80\x94" "b\xe2\x80\x95" "c", "a--b--c"},
        {"1\xe2\x80\x93" "2 \xe2\x88\x92" "5 x\xe2\x80\x90y", "1-2 -5 x-y"},
        {"wait\xe2\x80\xa6", "wait..."},
        {"_emphasis_ snake_case", "emphasis snakecase"},
        {"GNU LICENSE", "gnu license"},
        {"I am", "I am"},
        {"Hello World", "Hello World"},
        {"NASA's A B OK\nGO USA.", "NASA's A B ok\ngo usa."},
        {"a\xc2\xa0" "b\xe2\x80\x83" "c\xe2\x80\xaf" "d", "a b c d"},
        {"co\xc2\xad" "op x\xe2\x80\x8by \xef\xbb\xbfHi", "coop xy Hi"},
        {"\xff\xfe \xc3\xa9", "\xff\xfe \xc3\xa9"},
        /* spaces of every width separate words: a word of one capital
         * stays, a word of capitals only is lowercased */
        {"A\xc2\xa0" "B", "A B"},
        {"GNU\xc2\xa0License", "gnu License"},
        {"", ""},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        size_t n = strlen(c[i].in);
        char *in = exact(c[i].in, n), *out = block(n);   /* out holds exactly n bytes */
        size_t m = bli_drift_normalize(in, n, out);
        if (m > n || m != strlen(c[i].out) || memcmp(out, c[i].out, m) != 0) {
            diag("normalize case %zu: got %zu bytes '%.*s', expected '%s'", i, m, (int)(m <= n ? m : 0), out,
                 c[i].out);
            bad++;
        }
        free(in);
        free(out);
    }
    ok(!bad, "bli_drift_normalize: %zu cases (quotes, dashes, ellipsis, '_', capitals, spaces, invisibles)",
       sizeof c / sizeof *c);

    /* never longer than the input, on every byte value and on a text of
     * nothing but replacements */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    char *out = block(256);
    size_t m = bli_drift_normalize(all, 256, out);
    /* nothing is valid UTF-8 beyond ASCII in 0..255 in order; only '_' goes */
    ok(m == 255 && memcmp(out, all, 95) == 0 && memcmp(out + 95, all + 96, 160) == 0,
       "all 256 byte values: only '_' dropped, 255 bytes");
    free(out);
    const char *rep = "\xe2\x80\xa6\xe2\x80\x94\xe2\x80\x9c\xc2\xa0\xe2\x80\x8b_\xe2\x80\xa6";
    size_t rn = strlen(rep);
    char *ri = exact(rep, rn);
    out = block(rn);
    m = bli_drift_normalize(ri, rn, out);
    ok(m == 10 && memcmp(out, "...--\" ...", 10) == 0, "replacements only: 18 bytes -> '...--\" ...' (10)");
    free(ri);
    free(out);
}

/* ---------------------------------------------------------------- features */

static void test_features_plain(void)
{
    struct bl_drift_features f = FEATS(NULL, "The cat sat on the mat.");
    /* 23 bytes, 23 characters; words The cat sat on the mat. (3 3 3 2 3 4 =
     * 18 codepoints / 6 = 3); stop words The, on, the: 3/6; every word has
     * a letter; no '#' or '...'; the four 3-grams are different: 0 */
    ok(f.n_bytes == 23 && f.n_chars == 23 && f.n_words == 6, "\"The cat sat on the mat.\": 23 bytes, 23 chars, 6 words");
    ok(have_mask(&f) == PLAIN, "no scorer, no bits: the eight plain features only");
    ok(f.v[BL_DF_MEAN_WORD_LEN] == 3.0 && f.v[BL_DF_STOPWORD_RATE] == 0.5 && f.v[BL_DF_ALPHA_WORDS] == 1.0 &&
           f.v[BL_DF_SYMBOL_RATIO] == 0.0 && f.v[BL_DF_REPEAT_RATE] == 0.0 && f.v[BL_DF_NONPRINT_RATE] == 0.0 &&
           f.v[BL_DF_SCRIPT_RATE] == 0.0,
       "mean_word_len 3, stopword 1/2, alpha 1, symbols 0, repeat 0, nonprint 0, script 0");
    ok(f.v[BL_DF_ZLIB_RATIO] == deflate_ratio("The cat sat on the mat.", 23), "zlib_ratio = zlib's raw deflate / 23");

    /* the multi-byte word lengths count code points: naïve 5, café 4 */
    f = FEATS(NULL, "na\xc3\xafve caf\xc3\xa9");
    ok(f.n_bytes == 12 && f.n_chars == 10 && f.v[BL_DF_MEAN_WORD_LEN] == 4.5 && f.v[BL_DF_SCRIPT_RATE] == 0.0,
       "\"naïve café\": 10 chars, mean_word_len 9/2, Latin letters only");

    /* repeats: a 3-gram occurring twice marks its three words */
    f = FEATS(NULL, "a b c a b c");   /* abc at 0 and 3: all 6 */
    ok(f.v[BL_DF_REPEAT_RATE] == 1.0, "repeat \"a b c a b c\" = 1");
    f = FEATS(NULL, "a b c d");
    ok(f.v[BL_DF_REPEAT_RATE] == 0.0, "repeat \"a b c d\" = 0");
    f = FEATS(NULL, "x a b c y a b c z");   /* abc at 1 and 5: words 1-3, 5-7 */
    ok(near(f.v[BL_DF_REPEAT_RATE], 6.0 / 9, 1e-15), "repeat \"x a b c y a b c z\" = 6/9");
    f = FEATS(NULL, "a a a a");   /* aaa at 0 and 1, overlapping: words 0-3 once each */
    ok(f.v[BL_DF_REPEAT_RATE] == 1.0, "repeat \"a a a a\" = 1 (overlaps counted once)");
    f = FEATS(NULL, "a  b\tc\na b c");   /* the kind of white space does not matter */
    ok(f.v[BL_DF_REPEAT_RATE] == 1.0, "repeat across different white space = 1");
    f = FEATS(NULL, "a b");
    ok(f.v[BL_DF_REPEAT_RATE] == 0.0 && f.have[BL_DF_REPEAT_RATE], "repeat of two words = 0");

    /* symbols: '#' twice and "..." once over 5 words; letters in tag, more, #x */
    f = FEATS(NULL, "# tag ... more #x");
    ok(near(f.v[BL_DF_SYMBOL_RATIO], 3.0 / 5, 1e-15) && near(f.v[BL_DF_ALPHA_WORDS], 3.0 / 5, 1e-15),
       "\"# tag ... more #x\": symbol_ratio 3/5, alpha_words 3/5");
    /* "…" is "..." after normalization; "......" holds two, "...." one */
    f = FEATS(NULL, "wait\xe2\x80\xa6 really...... ok ....");
    ok(near(f.v[BL_DF_SYMBOL_RATIO], 4.0 / 4, 1e-15), "ellipsis character, 6 dots, 4 dots: 1+2+1 symbols / 4 words");

    /* stop words: case folded, outer punctuation stripped */
    f = FEATS(NULL, "(The) it's WOULD, there!");   /* the, would, there: 3/4 ("it's" is not one) */
    ok(f.v[BL_DF_STOPWORD_RATE] == 0.75, "stopword_rate \"(The) it's WOULD, there!\" = 3/4");
    f = FEATS(NULL, "I AM A Bot");   /* I, A: 2/4 */
    ok(f.v[BL_DF_STOPWORD_RATE] == 0.5, "stopword_rate \"I AM A Bot\" = 2/4");

    /* non-printables: a(ok) \x01(control) b \xff(invalid) c: 2/5 */
    f = FEATS(NULL, "a\x01" "b\xff" "c");
    ok(f.n_chars == 5 && f.v[BL_DF_NONPRINT_RATE] == 0.4 && f.v[BL_DF_SCRIPT_RATE] == 0.0,
       "nonprint_rate a\\x01b\\xffc = 2/5 (control, invalid byte); script 0");
    f = FEATS(NULL, "a\tb\nc\r");
    ok(f.v[BL_DF_NONPRINT_RATE] == 0.0, "tab, newline, return are printable");
    /* DEL, x, U+0085 (C1), U+FFFD: 3/4 */
    f = FEATS(NULL, "\x7f" "x\xc2\x85\xef\xbf\xbd");
    ok(f.n_chars == 4 && f.v[BL_DF_NONPRINT_RATE] == 0.75, "DEL, a C1 control and U+FFFD are non-printable: 3/4");

    /* script: letters outside Latin per letter */
    f = FEATS(NULL, "ab\xce\xb3\xce\xb4");   /* a b γ δ */
    ok(f.v[BL_DF_SCRIPT_RATE] == 0.5, "script_rate \"abγδ\" = 2/4");
    f = FEATS(NULL, "\xce\xa9mega");   /* Ω m e g a */
    ok(f.v[BL_DF_SCRIPT_RATE] == 0.2, "script_rate \"Ωmega\" = 1/5");
    f = FEATS(NULL, "\xe6\x97\xa5\xe6\x9c\xac ab");   /* 日 本 a b */
    ok(f.v[BL_DF_SCRIPT_RATE] == 0.5, "script_rate \"日本 ab\" = 2/4");
    f = FEATS(NULL, "1 2 \xce\xb3!");   /* digits and punctuation are not letters: 1/1 */
    ok(f.v[BL_DF_SCRIPT_RATE] == 1.0, "script_rate \"1 2 γ!\" = 1/1");
    f = FEATS(NULL, "ab\xff\xce\xb3");   /* the invalid byte is no letter: a b γ, 1/3 */
    ok(near(f.v[BL_DF_SCRIPT_RATE], 1.0 / 3, 1e-15), "script_rate with an invalid byte = 1/3");
    f = FEATS(NULL, "123 !?");
    ok(f.v[BL_DF_SCRIPT_RATE] == 0.0 && f.have[BL_DF_SCRIPT_RATE], "script_rate with no letters = 0");

    /* zlib: one byte is a fixed-Huffman block: 3 header bits + an 8-bit
     * literal + a 7-bit end of block = 18 bits -> 3 bytes (a stored block
     * would take 6) */
    f = FEATS(NULL, "a");
    ok(f.v[BL_DF_ZLIB_RATIO] == 3.0, "zlib_ratio \"a\" = 3 bytes / 1");
    static const char zt[] = "the the the the the the the the quick brown fox\n\x01\xff";
    f = FEATS(NULL, zt);
    ok(f.v[BL_DF_ZLIB_RATIO] == deflate_ratio(zt, sizeof zt - 1), "zlib_ratio of a repetitive text = zlib's own");

    /* white space only: the character features, no word features */
    f = FEATS(NULL, "  \n\t");
    ok(f.n_chars == 4 && f.n_words == 0 &&
           have_mask(&f) == (B(BL_DF_ZLIB_RATIO) | B(BL_DF_NONPRINT_RATE) | B(BL_DF_SCRIPT_RATE)),
       "white space only: zlib, nonprint, script; no word features");
}

static void test_model_bpc(void)
{
    struct bl_drift_features f;
    static const float bits[] = {1, 2, 0, 5};   /* 8 bits over "ab c": 4 chars */
    int rc = features_of(NULL, "ab c", 4, bits, &f);
    ok(rc == BL_OK && f.have[BL_DF_MODEL_BPC] && f.v[BL_DF_MODEL_BPC] == 2.0, "model_bpc = 8 bits / 4 chars = 2");
    static const float bits2[] = {0, 3, 1};   /* "é!" is 3 bytes, 2 chars: 4/2 */
    rc = features_of(NULL, "\xc3\xa9!", 3, bits2, &f);
    ok(rc == BL_OK && f.v[BL_DF_MODEL_BPC] == 2.0, "model_bpc per character, not per byte: 4 / 2");
    rc = features_of(NULL, "ab c", 4, NULL, &f);
    ok(rc == BL_OK && !f.have[BL_DF_MODEL_BPC], "no model bits: no model_bpc");
}

static void test_dict(void)
{
    bl_wordlist *w = NULL;
    bl_err err = {0};
    /* trailing spaces and \r trimmed, empty lines skipped: 6 words */
    static const char list[] = "cat\nMat\ndog \r\n\nwell\nknown\nParis\r\n";
    int rc = bl_wordlist_from_buffer(&w, list, sizeof list - 1, &err);
    ok(rc == BL_OK && w && bl_wordlist_size(w) == 6, "word list of 6 words (\\r, trailing space, empty line)");
    if (!w)
        return;
#define HAS(s) bl_wordlist_has(w, s, strlen(s))
    ok(HAS("cat") && HAS("Cat") && HAS("CAT") && HAS("mat") && HAS("Mat") && HAS("MAT") && HAS("paris") &&
           HAS("Paris") && HAS("dog"),
       "exact forms, and other cases folded");
    ok(!HAS("dog ") && !HAS("ca") && !HAS("cats") && !bl_wordlist_has(w, "cat", 0) && !HAS("well-known"),
       "no prefixes, no plurals, no empty word, no hyphen splitting in bl_wordlist_has");
#undef HAS
    struct bl_drift_scorer s = {NULL, w};
    /* words: The cat's mat, DOG? well-known well-zebra paris 42 Zebra
     * with a letter: 8 (not 42); found: cat's (possessive -> cat), mat
     * (case), dog (stripped), well-known (both parts), paris: 5/8.
     * The, well-zebra (zebra absent), Zebra are not. */
    struct bl_drift_features f = FEATS(&s, "The cat's mat, DOG? well-known well-zebra paris 42 Zebra");
    ok(f.have[BL_DF_DICT_RATE] && f.v[BL_DF_DICT_RATE] == 0.625, "dict_rate = 5/8");
    f = FEATS(&s, "4th 42 3.14 cat");   /* 4th has a letter and is absent, cat found: 1/2 */
    ok(f.v[BL_DF_DICT_RATE] == 0.5, "numbers left out of dict_rate, \"4th\" counted: 1/2");
    f = FEATS(NULL, "cat");
    ok(!f.have[BL_DF_DICT_RATE], "no word list: no dict_rate");
    bl_wordlist_free(w);

    char *dir = tmp_dir(), path[4200];
    snprintf(path, sizeof path, "%s/words", dir);
    write_file(path, "alpha\nbeta\n", 11);
    rc = bl_wordlist_load(&w, path, &err);
    ok(rc == BL_OK && bl_wordlist_size(w) == 2 && bl_wordlist_has(w, "Beta", 4), "bl_wordlist_load from a file");
    bl_wordlist_free(w);
    snprintf(path, sizeof path, "%s/absent", dir);
    rc = bl_wordlist_load(&w, path, &err);
    ok(rc < 0 && !w && err.msg[0], "bl_wordlist_load of a missing file: %d, '%s'", rc, err.msg);
    rm_rf(dir);
    free(dir);
}

/* ---------------------------------------------------------------- n-grams */

/* the sum of P(x | h) over x in 0..V-1 (h[0..L), oldest first) */
static double sum_p(const struct bli_ngram *m, const uint32_t *h, int L, uint32_t V)
{
    uint32_t buf[16];
    memcpy(buf, h, (size_t)L * sizeof *h);
    double s = 0;
    for (uint32_t x = 0; x < V; x++) {
        buf[L] = x;
        s += exp2(bli_ngram_log2p(m, buf, 0, L));
    }
    return s;
}

/* P(x | h) from the model: log2p of h then x */
static double model_p(const struct bli_ngram *m, const uint32_t *h, int L, uint32_t x)
{
    uint32_t buf[16];
    memcpy(buf, h, (size_t)L * sizeof *h);
    buf[L] = x;
    return exp2(bli_ngram_log2p(m, buf, 0, L));
}

static void test_ngram_hand(void)
{
    /* Two paragraphs over {1,2,3}; 0 starts a paragraph:
     *   index  0 1 2 3 4 5 | 6 7 8 9
     *   sym    0 1 2 1 2 3 | 0 2 1 2
     * Raw counts (grams inside one paragraph, none ending in 0):
     *   order 3: 012:1 121:1 212:2 123:1 021:1
     *   order 2: 01:1 12:3 21:2 23:1 02:1
     * Kneser-Ney counts: order 3 raw; order 2 raw for 01 and 02 (they begin
     * a paragraph), else the number of distinct left extensions in order 3:
     *   12 <- {0,2}: 2;  21 <- {1,0}: 2;  23 <- {1}: 1
     *   order 1: 1 <- {0,2}: 2;  2 <- {1,0}: 2;  3 <- {2}: 1
     * Discounts n1/(n1 + 2 n2):
     *   D3: n1 = 4 (012 121 123 021), n2 = 1 (212): 4/6 = 2/3
     *   D2: n1 = 3 (01 02 23), n2 = 2 (12 21): 3/7
     *   D1: n1 = 1 (3), n2 = 2 (1 2): 1/5
     * Order 1: total 5, kept (2-.2)+(2-.2)+(1-.2) = 4.4, gamma1 = .6/5 = .12;
     *   P1(x) = max(c-.2, 0)/5 + .12/4: P1(0) = .03, P1(1) = P1(2) = .39, P1(3) = .19
     * Contexts of order 1 (tot = the sum of the KN counts of hx):
     *   "0": 01:1 02:1, tot 2, kept 2(1-3/7) = 8/7, gamma (2-8/7)/2 = 3/7
     *   "1": 12:2, tot 2, kept 11/7, gamma (2-11/7)/2 = 3/14
     *   "2": 21:2 23:1, tot 3, kept 11/7 + 4/7, gamma (3-15/7)/3 = 2/7
     *   "3": no gram: gamma 1
     * Contexts of order 2:
     *   "01": 012:1, tot 1, gamma 2/3;   "02": 021:1, tot 1, gamma 2/3
     *   "12": 121:1 123:1, tot 2, kept 2/3, gamma 2/3
     *   "21": 212:2, tot 2, kept 4/3, gamma 1/3 */
    static const uint32_t s[] = {0, 1, 2, 1, 2, 3, 0, 2, 1, 2};
    struct bli_ngram m;
    int rc = bli_ngram_build(&m, s, 10, 3, 2, 4, 1);
    ok(rc == BL_OK, "bli_ngram_build: order 3, 2 bits, 4 symbols");
    if (rc)
        return;
    const double D1 = (float)(1.0 / 5), D2 = (float)(3.0 / 7), D3 = (float)(2.0 / 3);
    ok(m.discount[1] == (float)D1 && m.discount[2] == (float)D2 && m.discount[3] == (float)D3,
       "discounts 1/5, 3/7, 2/3");
    /* kept: 3 unigrams, 5 bigrams, 5 trigrams; contexts 0 1 2, 01 02 12 21 */
    ok(m.n_grams == 13 && m.n_ctx == 7, "13 grams, 7 contexts");
    const double g1 = (5 - ((2 - D1) + (2 - D1) + (1 - D1))) / 5;
    const double P1[4] = {g1 / 4, (2 - D1) / 5 + g1 / 4, (2 - D1) / 5 + g1 / 4, (1 - D1) / 5 + g1 / 4};
    const double ga0 = (float)((2 - 2 * (1 - D2)) / 2), ga1 = (float)((2 - (2 - D2)) / 2),
                 ga2 = (float)((3 - ((2 - D2) + (1 - D2))) / 3);
    const double ga01 = (float)(1 - (1 - D3)), ga02 = ga01, ga12 = (float)((2 - 2 * (1 - D3)) / 2),
                 ga21 = (float)((2 - (2 - D3)) / 2);
    /* order 2 */
    const double p1_0 = (1 - D2) / 2 + ga0 * P1[1];   /* 2/7 + 3/7 .39 = 3.17/7 = .452857 */
    const double p2_1 = (2 - D2) / 2 + ga1 * P1[2];   /* 11/14 + 3/14 .39 = 12.17/14 = .869286 */
    const double p3_1 = ga1 * P1[3];                  /* 3/14 .19 = .040714 */
    const double p1_2 = (2 - D2) / 3 + ga2 * P1[1];   /* 11/21 + 2/7 .39 = 13.34/21 = .635238 */
    const double p3_2 = (1 - D2) / 3 + ga2 * P1[3];   /* 4/21 + 2/7 .19 = 5.14/21 = .244762 */
    /* order 3 */
    const double p2_01 = (1 - D3) + ga01 * p2_1;      /* 1/3 + 2/3 .869286 = .912857 */
    const double p1_12 = (1 - D3) / 2 + ga12 * p1_2;  /* 1/6 + 2/3 .635238 = .590159 */
    const double p2_21 = (2 - D3) / 2 + ga21 * p2_1;  /* 2/3 + 1/3 .869286 = .956429 */
    const double p3_12 = (1 - D3) / 2 + ga12 * p3_2;  /* 1/6 + 2/3 .244762 = .329841 */
    const double p1_02 = (1 - D3) + ga02 * p1_2;      /* 1/3 + 2/3 .635238 = .756825 */
    const double p3_21 = ga21 * p3_1;                 /* 1/3 .040714 = .013571 */
    const double p0_12 = ga12 * ga2 * P1[0];          /* 2/3 2/7 .03 = .005714 */
    /* the float roundings above move nothing beyond 1e-7: the rationals */
    ok(near(p1_0, 3.17 / 7, 1e-7) && near(p2_01, 0.912857142857, 1e-7) && near(p1_12, 0.590158730159, 1e-7) &&
           near(p2_21, 0.956428571429, 1e-7) && near(p3_12, 0.329841269841, 1e-7) &&
           near(p1_02, 0.756825396825, 1e-7) && near(p3_21, 0.013571428571, 1e-7) &&
           near(p0_12, 0.005714285714, 1e-7),
       "hand values agree with the exact rationals");
#define LP(lo, i) bli_ngram_log2p(&m, s, lo, i)
    ok(near(LP(0, 1), log2(p1_0), 1e-9), "P(1 | 0) at the paragraph start = 3.17/7");
    ok(near(LP(0, 2), log2(p2_01), 1e-9), "P(2 | 0 1) = .912857");
    ok(near(LP(0, 3), log2(p1_12), 1e-9), "P(1 | 1 2) = .590159");
    ok(near(LP(0, 4), log2(p2_21), 1e-9), "P(2 | 2 1) = .956429");
    ok(near(LP(0, 5), log2(p3_12), 1e-9), "P(3 | 1 2) = .329841");
    ok(near(LP(0, 7), log2(p1_0 /* P(2|0) = P(1|0) */), 1e-9),
       "P(2 | 0) in the second paragraph: the context stops at its start");
    ok(near(LP(0, 8), log2(p1_02), 1e-9), "P(1 | 0 2) = .756825");
    ok(near(LP(3, 4), log2(p2_1), 1e-9), "context cut at lo = 3: P(2 | 1) = .869286");
    ok(near(LP(4, 4), log2(P1[2]), 1e-9), "context cut at lo = 4: P1(2) = .39");
#undef LP
    static const uint32_t q1[] = {2, 1, 3}, q2[] = {2, 3, 1}, q3[] = {1, 2, 0};
    ok(near(bli_ngram_log2p(&m, q1, 0, 2), log2(p3_21), 1e-9), "unseen 213: gamma(21) P(3|1) = .013571");
    ok(near(bli_ngram_log2p(&m, q2, 0, 2), log2(P1[1]), 1e-9), "absent contexts 23 and 3: P1(1) = .39");
    ok(near(bli_ngram_log2p(&m, q3, 0, 2), log2(p0_12), 1e-9),
       "the start symbol, never seen after 12: gamma(12) gamma(2) P1(0) = .005714");

    static const uint32_t ctx[][2] = {{0, 0}, {0, 0}, {1, 0}, {2, 0}, {3, 0}, {0, 1},
                                      {0, 2}, {1, 2}, {2, 1}, {2, 3}, {1, 1}, {3, 1}};
    static const int clen[] = {0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2};
    double worst = 0;
    for (size_t k = 0; k < sizeof clen / sizeof *clen; k++)
        worst = fmax(worst, fabs(sum_p(&m, ctx[k], clen[k], 4) - 1));
    ok(worst <= 1e-6, "P(. | h) sums to 1 over the 4 symbols for 12 contexts (worst %.3g)", worst);
    bli_ngram_free(&m);

    /* Pruned at min_count 2 (grams of order >= 2 with a KN count below 2
     * dropped; discounts and context totals from all grams): kept 12, 21,
     * 212.  Contexts: "1" (12, gamma 3/14 as before); "2" (21 kept, 23 not:
     * tot 3, kept 11/7, gamma (3 - 11/7)/3 = 10/21); "21" (gamma 1/3).  "0",
     * "01", "02", "12" keep no gram: gamma 1, they back off entirely. */
    rc = bli_ngram_build(&m, s, 10, 3, 2, 4, 2);
    ok(rc == BL_OK && m.n_grams == 6 && m.n_ctx == 3 && m.discount[2] == (float)D2,
       "pruned at 2: 6 grams, 3 contexts, same discounts");
    if (rc)
        return;
    const double gp2 = (float)((3 - (2 - D2)) / 3);
    const double pp1_2 = (2 - D2) / 3 + gp2 * P1[1];   /* 11/21 + 10/21 .39 = 14.9/21 = .709524 */
    const double pp3_2 = gp2 * P1[3];                  /* 10/21 .19 = 1.9/21 = .090476 */
    ok(near(pp1_2, 14.9 / 21, 1e-7) && near(pp3_2, 1.9 / 21, 1e-7), "pruned hand values agree with the rationals");
    static const uint32_t h2[] = {2}, h12[] = {1, 2}, h0[] = {0}, h21[] = {2, 1}, h01[] = {0, 1};
    ok(near(model_p(&m, h2, 1, 1), pp1_2, 1e-9), "pruned P(1 | 2) = 14.9/21");
    ok(near(model_p(&m, h12, 2, 3), pp3_2, 1e-9), "pruned P(3 | 1 2) = P(3 | 2) = 1.9/21");
    ok(near(model_p(&m, h0, 1, 1), P1[1], 1e-9), "pruned P(1 | 0) = P1(1) = .39");
    ok(near(model_p(&m, h21, 2, 2), p2_21, 1e-9), "pruned P(2 | 2 1) unchanged = .956429");
    ok(near(model_p(&m, h01, 2, 2), p2_1, 1e-9), "pruned P(2 | 0 1) = P(2 | 1) = .869286");
    worst = 0;
    for (size_t k = 0; k < sizeof clen / sizeof *clen; k++)
        worst = fmax(worst, fabs(sum_p(&m, ctx[k], clen[k], 4) - 1));
    ok(worst <= 1e-6, "pruned: sums still 1 for 12 contexts (worst %.3g)", worst);
    bli_ngram_free(&m);

    /* Counts beyond float precision (a loaded table may hold any count): one
     * unigram seen 2^25 times, D1 = .5, 4 symbols.  gamma1 = (2^25 - (2^25 -
     * .5)) / 2^25 = 2^-26, so an unseen symbol gets 2^-26 / 4 = 2^-28: log2p
     * is -28 exactly; the seen one 1 - 2^-26 + 2^-28.  (2^25 - .5 done in
     * float is 2^25 again: the discount vanishes, gamma1 is 0 and the unseen
     * symbol's log2p is -inf.) */
    memset(&m, 0, sizeof m);
    m.order = 1, m.bits = 2, m.n_sym = 4, m.discount[1] = 0.5f, m.n_grams = 1, m.n_ctx = 0;
    m.gram_key = malloc(sizeof *m.gram_key), m.gram_count = malloc(sizeof *m.gram_count);
    m.ctx_key = malloc(sizeof *m.ctx_key), m.ctx_tot = malloc(sizeof *m.ctx_tot);
    m.ctx_gamma = malloc(sizeof *m.ctx_gamma);
    m.gram_key[0] = 1ULL << 60 | 1, m.gram_count[0] = 1u << 25;
    rc = bli_ngram_index(&m);
    static const uint32_t one[] = {1}, two[] = {2};
    double lp2 = bli_ngram_log2p(&m, two, 0, 0), lp1 = bli_ngram_log2p(&m, one, 0, 0);
    ok(rc == BL_OK && lp2 == -28 && near(exp2(lp1), 1 - exp2(-26) + exp2(-28), 1e-15),
       "a count of 2^25 keeps its discount: unseen log2p %g (want -28)", lp2);
    bli_ngram_free(&m);

    /* arguments out of range */
    ok(bli_ngram_build(&m, s, 10, 0, 2, 4, 1) == BL_EINVAL && bli_ngram_build(&m, s, 10, 7, 2, 4, 1) == BL_EINVAL &&
           bli_ngram_build(&m, s, 10, 3, 21, 4, 1) == BL_EINVAL && bli_ngram_build(&m, s, 10, 3, 2, 5, 1) == BL_EINVAL,
       "order 0 or 7, 3 x 21 bits > 60, 5 symbols in 2 bits: BL_EINVAL");
}

/* A Kneser-Ney model by the definition in drift_internal.h, counting by
 * scanning the stream: nothing shared with analysis/ngram.c.  Counts are
 * memoized by gram (V^order is small here). */
#define KN_V 5
#define KN_MAXO 4
struct kn {
    const uint32_t *s;
    int64_t n;
    int order, min_count;
    double D[KN_MAXO + 1];
    double uni_tot, gamma1;
    int64_t *memo[KN_MAXO + 1];
};

/* occurrences of g[0..o) inside one paragraph (a 0 only as its first
 * symbol), not ending in 0 */
static int64_t kn_raw(const struct kn *k, const uint32_t *g, int o)
{
    int64_t c = 0;
    for (int64_t i = o - 1; i < k->n; i++) {
        int hit = k->s[i] != 0;
        for (int j = 0; j < o && hit; j++) {
            uint32_t v = k->s[i - o + 1 + j];
            hit = v == g[j] && (j == 0 || v != 0);
        }
        c += hit;
    }
    return c;
}

/* raw at the highest order and for grams that begin with 0; else the number
 * of distinct symbols seen before the gram */
static int64_t kn_count(const struct kn *k, const uint32_t *g, int o)
{
    int64_t idx = 0;
    for (int j = 0; j < o; j++)
        idx = idx * KN_V + g[j];
    if (k->memo[o][idx] >= 0)
        return k->memo[o][idx];
    int64_t c = 0;
    if (o == k->order || g[0] == 0) {
        c = kn_raw(k, g, o);
    } else {
        uint32_t x[KN_MAXO + 1];
        memcpy(x + 1, g, (size_t)o * sizeof *g);
        for (uint32_t a = 0; a < KN_V; a++) {
            x[0] = a;
            c += kn_raw(k, x, o + 1) > 0;
        }
    }
    return k->memo[o][idx] = c;
}

static int kn_kept(const struct kn *k, int o, int64_t c)
{
    return c > 0 && (o == 1 || c >= k->min_count);
}

static void kn_init(struct kn *k, const uint32_t *s, int64_t n, int order, int min_count)
{
    memset(k, 0, sizeof *k);
    k->s = s;
    k->n = n;
    k->order = order;
    k->min_count = min_count;
    for (int o = 1; o <= order; o++) {
        int64_t size = 1;
        for (int j = 0; j < o; j++)
            size *= KN_V;
        k->memo[o] = malloc((size_t)size * sizeof *k->memo[o]);
        for (int64_t j = 0; j < size; j++)
            k->memo[o][j] = -1;
    }
    for (int o = 1; o <= order; o++) {
        /* each distinct gram of the stream once: counts of counts */
        double n1 = 0, n2 = 0;
        for (int64_t i = o - 1; i < n; i++) {
            const uint32_t *g = s + i - o + 1;
            if (!kn_raw(k, g, o))
                continue;   /* not a gram: it crosses a paragraph start */
            int seen = 0;
            for (int64_t j = o - 1; j < i && !seen; j++)
                seen = memcmp(s + j - o + 1, g, (size_t)o * sizeof *g) == 0;
            if (seen)
                continue;
            int64_t c = kn_count(k, g, o);
            n1 += c == 1;
            n2 += c == 2;
        }
        double d = n1 + 2 * n2 > 0 ? n1 / (n1 + 2 * n2) : 0.5;
        k->D[o] = (float)(d < 0.1 ? 0.1 : d > 0.95 ? 0.95 : d);
    }
    double tot = 0, kept = 0;
    for (uint32_t x = 0; x < KN_V; x++) {
        int64_t c = kn_count(k, &x, 1);
        tot += (double)c;
        kept += fmax((double)c - k->D[1], 0);
    }
    k->uni_tot = tot;
    k->gamma1 = tot > 0 ? (tot - kept) / tot : 1;
}

static void kn_free(struct kn *k)
{
    for (int o = 1; o <= KN_MAXO; o++)
        free(k->memo[o]);
}

/* P(x | h[0..L)), h oldest first (a 0 only as h[0]) */
static double kn_p(const struct kn *k, const uint32_t *h, int L, uint32_t x)
{
    uint32_t g[KN_MAXO + 1];
    g[0] = x;
    double p = fmax((double)kn_count(k, g, 1) - k->D[1], 0) / k->uni_tot + k->gamma1 / KN_V;
    for (int o = 2; o <= k->order && o - 1 <= L; o++) {
        memcpy(g, h + L - (o - 1), (size_t)(o - 1) * sizeof *g);
        double tot = 0, kept = 0;
        int any = 0;
        for (uint32_t y = 0; y < KN_V; y++) {
            g[o - 1] = y;
            int64_t c = kn_count(k, g, o);
            tot += (double)c;
            if (kn_kept(k, o, c)) {
                any = 1;
                kept += fmax((double)c - k->D[o], 0);
            }
        }
        if (!any)
            continue;   /* no gram kept in this context: gamma 1 */
        double gamma = (float)((tot - kept) / tot);
        g[o - 1] = x;
        int64_t c = kn_count(k, g, o);
        p = (kn_kept(k, o, c) ? fmax((double)c - k->D[o], 0) / tot : 0) + gamma * p;
    }
    return p;
}

static void test_ngram_scan(void)
{
    /* pseudo-random streams over 0..4, skewed toward 1, with a paragraph
     * start about one symbol in eight (empty paragraphs included) */
    static const uint32_t pick[8] = {1, 1, 1, 2, 2, 3, 4, 0};
    enum { N = 120 };
    uint32_t s[N];
    for (int seed = 1; seed <= 2; seed++) {
        uint64_t r = (uint64_t)seed * 0x9e3779b97f4a7c15ULL;
        s[0] = 0;
        for (int i = 1; i < N; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            s[i] = pick[(r >> 33) % 8];
        }
        for (int order = 2; order <= KN_MAXO; order++)
            for (int mc = 1; mc <= 3; mc++) {
                struct bli_ngram m;
                if (bli_ngram_build(&m, s, N, order, 3, KN_V, mc) != BL_OK) {
                    ok(0, "bli_ngram_build seed %d order %d min_count %d", seed, order, mc);
                    continue;
                }
                struct kn k;
                kn_init(&k, s, N, order, mc);
                int dbad = 0;
                for (int o = 1; o <= order; o++)
                    dbad += m.discount[o] != (float)k.D[o];
                double worst = 0, worst_sum = 0;
                int64_t checked = 0;
                for (int64_t i = 0; i < N; i++) {
                    int64_t los[4] = {0, i - 2, i - 1, i};
                    for (int a = 0; a < 4; a++) {
                        int64_t lo = los[a];
                        if (lo < 0)
                            continue;
                        /* the history: from lo, or from the last paragraph start after it */
                        int64_t st = lo;
                        for (int64_t j = i - 1; j >= lo; j--)
                            if (s[j] == 0) {
                                st = j;
                                break;
                            }
                        int64_t L = i - st;
                        if (L > order - 1)
                            st = i - (order - 1), L = order - 1;
                        if (s[i] != 0) {
                            double want = log2(kn_p(&k, s + st, (int)L, s[i]));
                            worst = fmax(worst, fabs(bli_ngram_log2p(&m, s, lo, i) - want));
                            checked++;
                        }
                        if (a == 0)
                            worst_sum = fmax(worst_sum, fabs(sum_p(&m, s + st, (int)L, KN_V) - 1));
                    }
                }
                ok(!dbad && worst <= 1e-9,
                   "seed %d, order %d, min_count %d: %lld log2p = scanned KN (worst %.3g), discounts equal", seed,
                   order, mc, (long long)checked, worst);
                ok(worst_sum <= 1e-6, "seed %d, order %d, min_count %d: sums over 5 symbols are 1 (worst %.3g)",
                   seed, order, mc, worst_sum);
                kn_free(&k);
                bli_ngram_free(&m);
            }
    }
}

static void test_u64map(void)
{
    struct bli_u64map m;
    int good = bli_u64map_init(&m, 4) == BL_OK;
    for (uint64_t k = 1; good && k <= 1000; k++) {
        uint32_t *v = bli_u64map_slot(&m, k * 0x10001);
        good = v && *v == 0;
        if (v)
            *v = (uint32_t)k;
    }
    for (uint64_t k = 1; good && k <= 1000; k++) {
        const uint32_t *v = bli_u64map_get(&m, k * 0x10001);
        good = v && *v == k && *bli_u64map_slot(&m, k * 0x10001) == k;
    }
    ok(good && m.n == 1000 && !bli_u64map_get(&m, 3) && (m.cap & (m.cap - 1)) == 0,
       "u64map: 1000 keys through growth, all found, absent key absent");
    bli_u64map_free(&m);
    /* FNV-1a 64 published vectors: "a" -> af63dc4c8601ec8c, "foobar" -> 85944171f73967e8 */
    ok(bli_fnv1a("a", 1) == 0xaf63dc4c8601ec8cULL && bli_fnv1a("foobar", 6) == 0x85944171f73967e8ULL,
       "bli_fnv1a matches FNV-1a 64 test vectors");
}

/* ---------------------------------------------------------------- reference */

static void test_ref_tiny(void)
{
    struct bl_drift_build_params p = bl_drift_build_default_params();
    p.char_order = 2;
    p.char_min_count = 1;
    p.word_order = 2;
    p.word_min_count = 1;
    p.word_vocab = 10;
    p.calib_bytes = 4;
    bl_drift_ref *r = NULL;
    bl_err err = {0};
    static const char train[] = "a b\nb a b\n", calib[] = "x y\nz\n";
    int rc = bl_drift_ref_build(&r, train, sizeof train - 1, calib, sizeof calib - 1, "tiny", &p, &err);
    ok(rc == BL_OK && r, "tiny reference built: %s", err.msg);
    if (!r)
        return;
    size_t nc;
    const char *c = bl_drift_ref_calibration(r, &nc);
    /* whole lines up to 4 bytes: "x y\n" */
    ok(nc == 4 && memcmp(c, "x y\n", 5) == 0 && strcmp(bl_drift_ref_source(r), "tiny") == 0,
       "calibration \"x y\\n\" (whole lines within 4 bytes), source \"tiny\"");

    /* characters: "a b" and "b a b" are the streams 0 a _ b and 0 b _ a _ b
     * (a 66, b 67, space 1 of the 98 symbols)
     *   bigrams (the highest order: raw): 0a:1 a_:2 _b:2 0b:1 b_:1 _a:1
     *   unigrams (left extensions): a <- {0,_} 2, _ <- {a,b} 2, b <- {_,0} 2
     *   D2: n1 = 4, n2 = 2: 4/8 = .5;  D1: n1 = 0, n2 = 3: 0, clamped to .1
     *   order 1: total 6, kept 3(2-.1) = 5.7, gamma1 = .3/6 = .05,
     *            P1(a) = P1(_) = P1(b) = 1.9/6 + .05/98 = .317177
     *   context a: a_:2, tot 2, gamma (2-1.5)/2 = 1/4
     *   context _: _b:2 _a:1, tot 3, kept 1.5 + .5, gamma 1/3
     *   context b: b_:1, tot 1, gamma 1/2
     * "a b a" is a _ b _ a (no paragraph symbol before a span):
     *   P1(a), P(_|a) = 1.5/2 + P1/4, P(b|_) = 1.5/3 + P1/3,
     *   P(_|b) = .5 + P1/2, P(a|_) = .5/3 + P1/3;
     *   char_ce = -(the sum of their log2) / 5 characters */
    ok(r->chars.n_sym == 98 && r->chars.order == 2 && r->chars.discount[2] == 0.5f &&
           r->chars.discount[1] == (float)0.1,
       "character model: 98 symbols, order 2, D2 = .5, D1 = .1");
    const double cD1 = (float)0.1, cD2 = 0.5;
    const double cg1 = (6 - 3 * (2 - cD1)) / 6, cP1 = (2 - cD1) / 6 + cg1 / 98;
    const double cga = (float)((2 - (2 - cD2)) / 2), cgs = (float)((3 - ((2 - cD2) + (1 - cD2))) / 3),
                 cgb = (float)(1 - (1 - cD2));
    const double char_ce = -(log2(cP1) + log2((2 - cD2) / 2 + cga * cP1) + log2((2 - cD2) / 3 + cgs * cP1) +
                             log2((1 - cD2) + cgb * cP1) + log2((1 - cD2) / 3 + cgs * cP1)) / 5;

    /* words: "a" twice, "b" three times: both in the vocabulary (count >= 2),
     * ranked by count: b = 16, a = 17 (BLI_WORD_FIRST + rank), 18 symbols.
     * Streams 0 a b | 0 b a b:
     *   bigrams: 0a:1 ab:2 0b:1 ba:1;  unigrams: b <- {a,0} 2, a <- {0,b} 2
     *   D2: n1 = 3, n2 = 1: 3/5 = .6;  D1: n1 = 0, n2 = 2: clamped to .1
     *   order 1: total 4, gamma1 = (4 - 3.8)/4 = .05, P1(a) = P1(b) = 1.9/4 + .05/18
     *   context a: ab:2, tot 2, gamma (2 - 1.4)/2 = .3
     *   context b: ba:1, tot 1, gamma .6
     * "a b a": P1(a), P(b|a) = 1.4/2 + .3 P1(b), P(a|b) = .4 + .6 P1(a);
     *   word_ce = -(the sum of their log2) / 3 tokens
     *   word_pmi: unigram counts b 3, a 2 (total 5), smoothed by .5 over the
     *   18 symbols (total 14): P(b) = 3.5/14, P(a) = 2.5/14;
     *   ((log2 P(b|a) - log2 3.5/14) + (log2 P(a|b) - log2 2.5/14)) / 2 */
    ok(r->n_vocab == 2 && strcmp(r->vocab[0], "b") == 0 && strcmp(r->vocab[1], "a") == 0 && r->words.n_sym == 18 &&
           r->word_uni[16] == 3 && r->word_uni[17] == 2 && r->word_uni_tot == 5,
       "vocabulary b, a (by count); 18 word symbols; unigram counts 3, 2");
    ok(bli_ref_word_id(r, "a", 1) == 17 && bli_ref_word_id(r, "b", 1) == 16 &&
           bli_ref_word_id(r, "Zed", 3) == BLI_UNK_CAP && bli_ref_word_id(r, "A", 1) == BLI_UNK_CAP &&
           bli_ref_word_id(r, "ab", 2) == BLI_UNK_LOWER,
       "word ids: vocabulary forms exactly, the rest by shape");
    const double wD1 = (float)0.1, wD2 = (float)0.6;
    const double wg1 = (4 - 2 * (2 - wD1)) / 4, wP1 = (2 - wD1) / 4 + wg1 / 18;
    const double wga = (float)((2 - (2 - wD2)) / 2), wgb = (float)(1 - (1 - wD2));
    const double pba = (2 - wD2) / 2 + wga * wP1, pab = (1 - wD2) + wgb * wP1;
    const double word_ce = -(log2(wP1) + log2(pba) + log2(pab)) / 3;
    const double word_pmi = ((log2(pba) - log2(3.5 / 14)) + (log2(pab) - log2(2.5 / 14))) / 2;
    ok(near(wP1, 0.477777778, 1e-7) && near(pba, 0.843333333, 1e-7) && near(pab, 0.686666667, 1e-7) &&
           near(cP1, 0.317176871, 1e-7),
       "hand values: P1(a) .477778, P(b|a) .843333, P(a|b) .686667; chars P1 .317177");

    struct bl_drift_scorer sc = {r, NULL};
    struct bl_drift_features f = FEATS(&sc, "a b a");
    ok(f.have[BL_DF_CHAR_CE] && near(f.v[BL_DF_CHAR_CE], char_ce, 1e-9), "char_ce \"a b a\" = %.9f (want %.9f)",
       f.v[BL_DF_CHAR_CE], char_ce);
    ok(f.have[BL_DF_WORD_CE] && near(f.v[BL_DF_WORD_CE], word_ce, 1e-9), "word_ce \"a b a\" = %.9f (want %.9f)",
       f.v[BL_DF_WORD_CE], word_ce);
    ok(f.have[BL_DF_WORD_PMI] && near(f.v[BL_DF_WORD_PMI], word_pmi, 1e-9),
       "word_pmi \"a b a\" = %.9f (want %.9f)", f.v[BL_DF_WORD_PMI], word_pmi);
    ok(have_mask(&f) == (PLAIN | B(BL_DF_CHAR_CE) | B(BL_DF_WORD_CE) | B(BL_DF_WORD_PMI)),
       "a reference and no word list: the three model features, no dict_rate");

    /* "b Zed": b = 16, then the unknown capitalized word (class 1), never
     * seen after b: P(1|b) = gamma(b) P1(1) = .6 (.05/18);
     * pmi = log2 P(1|b) - log2 (0 + .5)/14 */
    const double p1b = wgb * (wg1 / 18);
    f = FEATS(&sc, "b Zed");
    ok(near(f.v[BL_DF_WORD_CE], -(log2(wP1) + log2(p1b)) / 2, 1e-9) &&
           near(f.v[BL_DF_WORD_PMI], log2(p1b) - log2(0.5 / 14), 1e-9),
       "\"b Zed\": an unknown word by its shape class");
    /* one token: no word features; char_ce = -log2 P1(a) */
    f = FEATS(&sc, "a");
    ok(!f.have[BL_DF_WORD_CE] && !f.have[BL_DF_WORD_PMI] && near(f.v[BL_DF_CHAR_CE], -log2(cP1), 1e-9),
       "one token: char_ce -log2 P1(a), no word_ce or word_pmi");
    bl_drift_ref_free(r);

    /* parameters out of range */
    int bad = 0;
    struct bl_drift_build_params q;
    for (int k = 0; k < 6; k++) {
        q = p;
        if (k == 0)
            q.char_order = 1;
        if (k == 1)
            q.char_order = 7;
        if (k == 2)
            q.word_order = 1;
        if (k == 3)
            q.word_order = 5;
        if (k == 4)
            q.word_vocab = 0;
        if (k == 5)
            q.word_vocab = (1 << 14) - BLI_WORD_FIRST + 1;
        rc = bl_drift_ref_build(&r, train, sizeof train - 1, calib, sizeof calib - 1, "x", &q, &err);
        bad += rc != BL_EINVAL || r != NULL;
    }
    ok(!bad, "orders and vocabulary out of range: BL_EINVAL");
}

/* The offset of the elements of GGUF array `key` in b[0..n), and its count
 * (the count field is the 8 bytes before); -1 if absent. */
static long arr_at(const unsigned char *b, size_t n, const char *key, uint64_t *count)
{
    size_t kl = strlen(key);
    for (size_t i = 8; i + kl + 16 <= n; i++) {
        uint64_t len;
        memcpy(&len, b + i - 8, 8);
        if (len == kl && memcmp(b + i, key, kl) == 0) {
            uint32_t t;
            memcpy(&t, b + i + kl, 4);
            if (t != BL_GGUF_ARRAY)
                return -1;
            memcpy(count, b + i + kl + 8, 8);
            return (long)(i + kl + 16);
        }
    }
    return -1;
}

static int same_ngram(const struct bli_ngram *a, const struct bli_ngram *b)
{
    return a->order == b->order && a->bits == b->bits && a->n_sym == b->n_sym &&
           memcmp(a->discount, b->discount, sizeof a->discount) == 0 && a->n_grams == b->n_grams &&
           a->n_ctx == b->n_ctx &&
           memcmp(a->gram_key, b->gram_key, (size_t)a->n_grams * sizeof *a->gram_key) == 0 &&
           memcmp(a->gram_count, b->gram_count, (size_t)a->n_grams * sizeof *a->gram_count) == 0 &&
           memcmp(a->ctx_key, b->ctx_key, (size_t)a->n_ctx * sizeof *a->ctx_key) == 0 &&
           memcmp(a->ctx_tot, b->ctx_tot, (size_t)a->n_ctx * sizeof *a->ctx_tot) == 0 &&
           memcmp(a->ctx_gamma, b->ctx_gamma, (size_t)a->n_ctx * sizeof *a->ctx_gamma) == 0 &&
           a->uni_tot == b->uni_tot && a->gamma1 == b->gamma1;
}

static int same_ref(const bl_drift_ref *a, const bl_drift_ref *b)
{
    if (!same_ngram(&a->chars, &b->chars) || !same_ngram(&a->words, &b->words) || a->n_vocab != b->n_vocab ||
        a->n_calib != b->n_calib || memcmp(a->calib, b->calib, a->n_calib) != 0 || strcmp(a->source, b->source) ||
        a->word_uni_tot != b->word_uni_tot ||
        memcmp(a->word_uni, b->word_uni, (size_t)(BLI_WORD_FIRST + a->n_vocab) * sizeof *a->word_uni))
        return 0;
    for (int64_t i = 0; i < a->n_vocab; i++)
        if (strcmp(a->vocab[i], b->vocab[i]))
            return 0;
    return 1;
}

static const char corpus[] =
    "The cat sat on the mat, and the dog sat on the rug.\n"
    "A cat and a dog met on the road; the cat ran and the dog sat.\n"
    "\n"
    "The dog's owner said that the mat was red and the rug was blue.\n"
    "It was a well-known fact: dogs chase cats, and cats chase mice.\n"
    "\xe2\x80\x9cNo,\xe2\x80\x9d said the CAT \xe2\x80\x94 not on the mat today\xe2\x80\xa6\n"
    "The mice ran on the road and the cat sat on the mat again.\n";
static const char calib_text[] = "The mouse sat on the rug.\nA dog ran on the road.\n";

/* texts on which a built and a loaded reference must agree bit for bit */
static int same_features(const bl_drift_ref *a, const bl_drift_ref *b)
{
    static const char *const texts[] = {
        "The cat sat on the mat.",
        "the dog ran on the road and the cat ran on the rug",
        "Zebra qu\xc3\xa9 #tag \xe2\x80\x9cquoted\xe2\x80\x9d \x01\xff",
        corpus,
        "x",
    };
    struct bl_drift_scorer sa = {a, NULL}, sb = {b, NULL};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct bl_drift_features fa, fb;
        if (features_of(&sa, texts[i], strlen(texts[i]), NULL, &fa) ||
            features_of(&sb, texts[i], strlen(texts[i]), NULL, &fb))
            return 0;
        if (memcmp(fa.v, fb.v, sizeof fa.v) || memcmp(fa.have, fb.have, sizeof fa.have) ||
            !fa.have[BL_DF_CHAR_CE])
            return 0;
    }
    return 1;
}

/* Load a reference image from memory (a copy of exactly n bytes):
 * returns the status; *r the reference or NULL. */
static int load_copy(bl_drift_ref **r, const unsigned char *b, size_t n, bl_err *err)
{
    char *c = exact(b, n);
    memset(err, 0, sizeof *err);
    int rc = bl_drift_ref_load_memory(r, c, n, "corrupt", err);
    free(c);
    return rc;
}

static void test_ref_roundtrip(void)
{
    struct bl_drift_build_params p = bl_drift_build_default_params();
    p.char_order = 4;
    p.char_min_count = 2;
    p.word_order = 3;
    p.word_min_count = 1;
    p.word_vocab = 20;
    p.calib_bytes = 1000;
    bl_drift_ref *r = NULL, *l = NULL, *x = NULL;
    bl_err err = {0};
    int rc = bl_drift_ref_build(&r, corpus, sizeof corpus - 1, calib_text, sizeof calib_text - 1, "round trip", &p,
                                &err);
    ok(rc == BL_OK && r && r->n_vocab > 5 && r->n_calib == sizeof calib_text - 1,
       "reference built from %zu bytes: %lld char grams, %lld word grams, %lld forms", sizeof corpus - 1,
       r ? (long long)r->chars.n_grams : 0, r ? (long long)r->words.n_grams : 0, r ? (long long)r->n_vocab : 0);
    if (!r)
        return;
    char *dir = tmp_dir(), path[4200];
    snprintf(path, sizeof path, "%s/ref.gguf", dir);
    rc = bl_drift_ref_save(r, path, &err);
    ok(rc == BL_OK, "saved: %s", err.msg);
    rc = bl_drift_ref_load(&l, path, &err);
    ok(rc == BL_OK && l && same_ref(r, l), "loaded: every table, form, count and the texts equal");
    ok(l && same_features(r, l), "built and loaded give the same features bit for bit on 5 texts");
    bl_drift_ref_free(l);
    l = NULL;

    size_t size = 0;
    unsigned char *buf = read_file(path, &size);
    if (!buf) {
        ok(0, "read back %s", path);
        return;
    }
    rc = load_copy(&l, buf, size, &err);   /* the copy is freed before l is used */
    ok(rc == BL_OK && l && same_ref(r, l) && same_features(r, l),
       "bl_drift_ref_load_memory of the file's %zu bytes: the same reference", size);
    bl_drift_ref_free(l);

    /* every truncation (no tensors: the file ends with its last value) */
    int bad = 0;
    for (size_t n = 0; n < size; n++) {
        rc = load_copy(&x, buf, n, &err);
        if (rc != BL_EFORMAT || x || !err.msg[0] || err.code != rc) {
            if (bad++ < 3)
                diag("truncated to %zu: %d '%s'", n, rc, err.msg);
        }
        bl_drift_ref_free(x);
    }
    ok(!bad, "all %zu truncations refused with BL_EFORMAT and a message", size);
    static const size_t cut[] = {1, 4, 24, 100};
    bad = 0;
    for (size_t k = 0; k < sizeof cut / sizeof *cut + 2; k++) {
        size_t n = k < 4 ? cut[k] : k == 4 ? size / 2 : size - 1;
        char tp[4300];
        snprintf(tp, sizeof tp, "%s/cut%zu.gguf", dir, n);
        write_file(tp, buf, n);
        memset(&err, 0, sizeof err);
        rc = bl_drift_ref_load(&x, tp, &err);
        bad += rc != BL_EFORMAT || x || !err.msg[0];
        bl_drift_ref_free(x);
    }
    ok(!bad, "truncated files (1, 4, 24, 100, half, all but 1 byte): bl_drift_ref_load refuses");

    /* one byte changed in the varint arrays.  Flipping bit 7 turns a last
     * byte into a continuation or back: the array then holds one varint more
     * or fewer than its count, which must be refused every time. */
    static const char *const packed[] = {
        "bitlens.drift.chars.gram_keys", "bitlens.drift.chars.gram_counts", "bitlens.drift.chars.ctx_keys",
        "bitlens.drift.chars.ctx_totals", "bitlens.drift.words.gram_keys", "bitlens.drift.words.gram_counts",
        "bitlens.drift.words.ctx_keys", "bitlens.drift.words.ctx_totals",
    };
    int64_t flips = 0, refused = 0, accepted = 0, other_bad = 0, missing = 0;
    bad = 0;
    for (size_t a = 0; a < sizeof packed / sizeof *packed; a++) {
        uint64_t cnt;
        long at = arr_at(buf, size, packed[a], &cnt);
        if (at < 0 || (uint64_t)at + cnt > size) {
            missing++;
            continue;
        }
        for (uint64_t j = 0; j < cnt; j++) {
            unsigned char *c = (unsigned char *)exact(buf, size);
            c[at + j] ^= 0x80;
            rc = load_copy(&x, c, size, &err);
            bad += rc != BL_EFORMAT || x || !err.msg[0];
            bl_drift_ref_free(x);
            flips++;
            /* other changes keep the number of varints: the value moves;
             * refused with a message, or a reference whose features are
             * finite */
            for (int v = 0; v < 2; v++) {
                c[at + j] = (unsigned char)(buf[at + j] ^ (v ? 0x7f : 0x01));
                rc = load_copy(&x, c, size, &err);
                if (rc == BL_OK && x) {
                    struct bl_drift_scorer sc = {x, NULL};
                    struct bl_drift_features f;
                    accepted++;
                    if (features_of(&sc, corpus, sizeof corpus - 1, NULL, &f) || !all_finite(&f))
                        other_bad++;
                } else {
                    refused++;
                    other_bad += rc != BL_EFORMAT || x || !err.msg[0];
                }
                bl_drift_ref_free(x);
            }
            free(c);
        }
    }
    ok(!missing && flips > 100 && !bad, "%lld single-bit changes of varint continuation bits: all BL_EFORMAT",
       (long long)flips);
    ok(!other_bad, "%lld other one-byte changes: %lld refused with BL_EFORMAT, %lld load and score finite",
       (long long)(refused + accepted), (long long)refused, (long long)accepted);

    /* a ctx_gamma array one element shorter than n_contexts (a consistent
     * GGUF otherwise: the count field says so, the bytes are gone) */
    uint64_t cnt;
    long at = arr_at(buf, size, "bitlens.drift.chars.ctx_gamma", &cnt);
    if (at > 0 && cnt > 0) {
        unsigned char *c = malloc(size - 4);
        size_t cut_at = (size_t)at + 4 * (cnt - 1);
        memcpy(c, buf, cut_at);
        memcpy(c + cut_at, buf + cut_at + 4, size - cut_at - 4);
        uint64_t fewer = cnt - 1;
        memcpy(c + at - 8, &fewer, 8);
        rc = load_copy(&x, c, size - 4, &err);
        ok(rc == BL_EFORMAT && !x && err.msg[0], "ctx_gamma one short of n_contexts: refused (%d '%s')", rc,
           err.msg);
        bl_drift_ref_free(x);
        free(c);
    } else {
        ok(0, "ctx_gamma array found in the file");
    }
    /* A discount of 0 (the build clamps them to [.1, .95]) leaves an unseen
     * symbol no mass: P1 = 0 + gamma1/98 with gamma1 = 0.  A back-off weight
     * of 0 in a context does the same for what that context never saw (here
     * the space: a control character, symbol 97, never follows one).  Such a
     * file must be refused, or score finite features (the fuzz contract). */
    int64_t sp = -1;
    for (int64_t i = 0; i < r->chars.n_ctx; i++)
        if (r->chars.ctx_key[i] == (1ULL << 60 | 1))
            sp = i;
    long dat = arr_at(buf, size, "bitlens.drift.chars.discount", &cnt);
    for (int k = 0; k < 2; k++) {
        long z = k == 0 ? dat : at < 0 || sp < 0 ? -1 : at + 4 * sp;
        if (z < 0) {
            ok(0, "found the %s to zero", k ? "space's back-off weight" : "discount");
            continue;
        }
        unsigned char *c = (unsigned char *)exact(buf, size);
        memset(c + z, 0, 4);
        rc = load_copy(&x, c, size, &err);
        struct bl_drift_scorer sc = {x, NULL};
        struct bl_drift_features f;
        int fine = rc == BL_EFORMAT ? !x && err.msg[0]
                                    : rc == BL_OK && !features_of(&sc, "a \x01", 3, NULL, &f) && all_finite(&f);
        ok(fine, "%s 0: refused or finite (load %d '%s', char_ce %g)", k ? "the space's back-off weight" : "D1",
           rc, err.msg, rc == BL_OK ? f.v[BL_DF_CHAR_CE] : 0.0);
        bl_drift_ref_free(x);
        free(c);
    }
    free(buf);

    /* a GGUF that is not a drift reference, one of another version, no file */
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    bl_gguf_writer_set_str(w, "general.architecture", "bitlens-drift");
    snprintf(path, sizeof path, "%s/nokeys.gguf", dir);
    bl_gguf_writer_write(w, path, &err);
    memset(&err, 0, sizeof err);
    rc = bl_drift_ref_load(&x, path, &err);
    ok(rc == BL_EFORMAT && !x && strstr(err.msg, "bitlens.drift.version"), "a GGUF without the keys: '%s'",
       err.msg);
    bl_gguf_writer_set_u32(w, "bitlens.drift.version", 2);
    bl_gguf_writer_write(w, path, &err);
    memset(&err, 0, sizeof err);
    rc = bl_drift_ref_load(&x, path, &err);
    ok(rc == BL_EUNSUPPORTED && !x && err.msg[0], "version 2: BL_EUNSUPPORTED '%s'", err.msg);
    bl_gguf_writer_free(w);
    snprintf(path, sizeof path, "%s/absent.gguf", dir);
    rc = bl_drift_ref_load(&x, path, &err);
    ok(rc == BL_EIO && !x, "a missing file: BL_EIO");

    bl_drift_ref_free(r);
    rm_rf(dir);
    free(dir);

    /* a training text with no words: refused, or it must load back after saving */
    static const char *const empty[] = {"", " \n\n"};
    for (int k = 0; k < 2; k++) {
        r = NULL;
        memset(&err, 0, sizeof err);
        rc = bl_drift_ref_build(&r, empty[k], strlen(empty[k]), "", 0, "empty", &p, &err);
        if (rc != BL_OK) {
            ok(!r && err.msg[0], "training text '%s' with no words: refused (%d '%s')", k ? "blank" : "", rc,
               err.msg);
            continue;
        }
        dir = tmp_dir();
        snprintf(path, sizeof path, "%s/empty.gguf", dir);
        int rs = bl_drift_ref_save(r, path, &err);
        memset(&err, 0, sizeof err);
        int rl = rs ? rs : bl_drift_ref_load(&x, path, &err);
        ok(rs == BL_OK && rl == BL_OK, "training text %s with no words: built, so it must save and load (%d '%s')",
           k ? "of blank lines" : "empty", rl, err.msg);
        bl_drift_ref_free(x);
        x = NULL;
        bl_drift_ref_free(r);
        rm_rf(dir);
        free(dir);
    }
}

static void test_builtin(void)
{
    bl_drift_ref *r = NULL;
    bl_err err = {0};
    int rc = bl_drift_ref_builtin(&r, &err);
    ok(rc == BL_OK && r, "built-in reference loads: %s", err.msg);
    if (!r)
        return;
    size_t n;
    const char *cal = bl_drift_ref_calibration(r, &n);
    ok(strstr(bl_drift_ref_source(r), "Brown") != NULL, "its source names the Brown corpus: '%s'",
       bl_drift_ref_source(r));
    ok(n > 1000 && cal && strlen(cal) == n && r->chars.n_sym == BLI_CHAR_NSYM && r->n_vocab > 100,
       "a calibration text of %zu bytes, 98 character symbols, %lld word forms", n, (long long)r->n_vocab);
    struct bl_drift_scorer s = {r, NULL};
    struct bl_drift_features e = FEATS(&s, "The committee met on Tuesday to discuss the budget for next year.");
    struct bl_drift_features g = FEATS(&s, "Xq#zv Pkqw jJ!x wvq Zzkp qqxj vvbn Kqz wpxq zzj.");
    ok(all_finite(&e) && all_finite(&g) && e.have[BL_DF_WORD_PMI] && e.v[BL_DF_CHAR_CE] > 0 &&
           e.v[BL_DF_CHAR_CE] < g.v[BL_DF_CHAR_CE],
       "English below gibberish on char_ce: %.2f < %.2f; all finite", e.v[BL_DF_CHAR_CE], g.v[BL_DF_CHAR_CE]);
    bl_drift_ref_free(r);
}

/* ---------------------------------------------------------------- baseline */

static char *repeat_lines(const char *line, int times, size_t *n)
{
    size_t l = strlen(line);
    char *t = malloc(l * (size_t)times + 1);
    for (int i = 0; i < times; i++)
        memcpy(t + l * (size_t)i, line, l);
    t[l * (size_t)times] = 0;
    *n = l * (size_t)times;
    return t;
}

static void test_baseline(void)
{
    struct bl_drift_baseline b;
    bl_err err = {0};
    size_t n;
    /* 43 characters a line: spans of 20 at 0 ("the quick brown fox ")
     * and at 20, the next word start ("jumps over the lazy "); from 40
     * ("dog") 20 more do not fit: 2 spans a line, 200 in all */
    char *t = repeat_lines("the quick brown fox jumps over the lazy dog\n", 100, &n);
    float *bits = malloc(n * sizeof *bits);
    for (size_t i = 0; i < n; i++)
        bits[i] = 1.0f;
    int rc = bl_drift_baseline_from_text(&b, NULL, t, n, bits, 20, 0, &err);
    ok(rc == BL_OK && b.window == 20 && b.n_spans == 200, "100 lines, window 20: 200 spans (%d '%s')", rc, err.msg);
    /* both spans: 4 words of 16 codepoints (mean 4), one stop word "the"
     * (1/4), letters in all, nothing else; the model 1 bit a byte = a char.
     * Scales with no spread are their floors: 1/window for the character
     * rates, 1/(mean words = 4) for the word rates, 3/4 for repeats, 1e-6
     * for the rest */
    ok(b.have[BL_DF_MODEL_BPC] && b.median[BL_DF_MODEL_BPC] == 1.0 && b.scale[BL_DF_MODEL_BPC] == 1e-6,
       "model_bpc median 1, scale floor 1e-6");
    ok(b.median[BL_DF_STOPWORD_RATE] == 0.25 && near(b.scale[BL_DF_STOPWORD_RATE], 0.25, 1e-12) &&
           b.median[BL_DF_MEAN_WORD_LEN] == 4.0 && b.scale[BL_DF_MEAN_WORD_LEN] == 1e-6 &&
           b.median[BL_DF_ALPHA_WORDS] == 1.0 && near(b.scale[BL_DF_ALPHA_WORDS], 0.25, 1e-12),
       "stopword 1/4 (scale 1/4), mean_word_len 4 (1e-6), alpha 1 (1/4)");
    ok(b.median[BL_DF_NONPRINT_RATE] == 0 && b.scale[BL_DF_NONPRINT_RATE] == 0.05 &&
           b.scale[BL_DF_SCRIPT_RATE] == 0.05 && near(b.scale[BL_DF_REPEAT_RATE], 0.75, 1e-12) &&
           near(b.scale[BL_DF_SYMBOL_RATIO], 0.25, 1e-12),
       "nonprint and script scale 1/20, repeat 3/4, symbols 1/4");
    ok(!b.have[BL_DF_CHAR_CE] && !b.have[BL_DF_WORD_CE] && !b.have[BL_DF_WORD_PMI] && !b.have[BL_DF_DICT_RATE],
       "no scorer: no model or word list features");
    /* zlib: two values, a and c, 100 spans each: the median is their mean,
     * every deviation d = |a-c|/2, MAD 1.4826 d beats the tail d/2.326;
     * every span's score is then d / 1.4826 d (0 if a = c) */
    double za = deflate_ratio("the quick brown fox ", 20), zc = deflate_ratio("jumps over the lazy ", 20);
    double d = fabs(za - zc) / 2, zq = za != zc ? 1 / 1.4826 : 0;
    ok(near(b.median[BL_DF_ZLIB_RATIO], (za + zc) / 2, 1e-12) &&
           near(b.scale[BL_DF_ZLIB_RATIO], za != zc ? 1.4826 * d : 1e-6, 1e-12) && near(b.score_q[0], zq, 1e-9) &&
           near(b.score_q[1], zq, 1e-9) && near(b.score_q[2], zq, 1e-9),
       "zlib median %.4f and scale from zlib's own sizes; score quantiles %.4f", b.median[BL_DF_ZLIB_RATIO], zq);
    rc = bl_drift_baseline_from_text(&b, NULL, t, n, NULL, 20, 50, &err);
    ok(rc == BL_OK && b.n_spans == 50 && !b.have[BL_DF_MODEL_BPC], "max_spans 50: 50 spans; no bits, no model_bpc");
    free(t);
    free(bits);

    /* 9 lines: 18 spans, refused; 10 lines: 20 */
    t = repeat_lines("the quick brown fox jumps over the lazy dog\n", 9, &n);
    memset(&err, 0, sizeof err);
    rc = bl_drift_baseline_from_text(&b, NULL, t, n, NULL, 20, 0, &err);
    ok(rc == BL_EINVAL && err.code == BL_EINVAL && strstr(err.msg, "18"), "18 spans: BL_EINVAL '%s'", err.msg);
    free(t);
    t = repeat_lines("the quick brown fox jumps over the lazy dog\n", 10, &n);
    rc = bl_drift_baseline_from_text(&b, NULL, t, n, NULL, 20, 0, &err);
    ok(rc == BL_OK && b.n_spans == 20, "20 spans: enough");
    rc = bl_drift_baseline_from_text(&b, NULL, t, n, NULL, 0, 0, &err);
    ok(rc == BL_EINVAL, "window 0: BL_EINVAL");
    free(t);

    /* 196 lines A and 4 lines B of exactly 20 characters, one span each:
     *   A "abcd efgh ijkl mnopq": 4 words, 17 codepoints: 4.25
     *   B "ab cd ef gh ij klmno": 6 words, 15: 2.5
     * mean_word_len: median 4.25, MAD 0; the 1% quantile (position 1.99 of
     * 0..199) is 2.5, so the tail is (4.25 - 2.5)/2.326 and the scale is it.
     * Stop words none: scale 1/(mean words (196*4 + 4*6)/200 = 4.04).
     * A B span scores 1.75 / (1.75/2.326) = 2.326 on mean_word_len, and on
     * zlib 2.326 too if B's ratio differs from A's (the same tail rule);
     * score quantiles: 196 zeros and 4 of those: 0, 0, and that */
    const char *A = "abcd efgh ijkl mnopq\n", *Bl = "ab cd ef gh ij klmno\n";
    t = malloc(21 * 200 + 1);
    for (int i = 0; i < 200; i++)
        memcpy(t + 21 * i, i % 50 == 10 ? Bl : A, 21);
    rc = bl_drift_baseline_from_text(&b, NULL, t, 21 * 200, NULL, 20, 0, &err);
    double zA = deflate_ratio(A, 20), zB = deflate_ratio(Bl, 20);
    double sB = zA != zB ? sqrt(2.0) * 2.326 : 2.326;
    ok(rc == BL_OK && b.n_spans == 200 && b.median[BL_DF_MEAN_WORD_LEN] == 4.25 &&
           near(b.scale[BL_DF_MEAN_WORD_LEN], 1.75 / 2.326, 1e-12),
       "a skewed feature: median 4.25, scale from the 1%% tail 1.75/2.326");
    ok(near(b.scale[BL_DF_STOPWORD_RATE], 1 / 4.04, 1e-12) && near(b.scale[BL_DF_REPEAT_RATE], 3 / 4.04, 1e-12),
       "word-rate floors from 4.04 words a span");
    ok(b.score_q[0] == 0 && b.score_q[1] == 0 && near(b.score_q[2], sB, 1e-9),
       "score quantiles 0, 0, %.4f (got %.4f)", sB, b.score_q[2]);
    free(t);
}

static void test_score(void)
{
    struct bl_drift_baseline b;
    struct bl_drift_features f;
    memset(&b, 0, sizeof b);
    memset(&f, 0, sizeof f);
#define SET(k, med, sc, val)                                                                                     \
    (b.median[k] = (med), b.scale[k] = (sc), b.have[k] = true, f.v[k] = (val), f.have[k] = true)
    SET(BL_DF_MODEL_BPC, 2.0, 0.5, 3.0);           /* +1: (3-2)/.5 = 2 */
    SET(BL_DF_WORD_PMI, 1.0, 0.25, 0.5);           /* -1: -(.5-1)/.25 = 2 */
    SET(BL_DF_ZLIB_RATIO, 0.5, 0.125, 0.125);      /* 0: |(.125-.5)/.125| = 3 */
    SET(BL_DF_DICT_RATE, 0.75, 0.125, 0.875);      /* -1: -(.875-.75)/.125 = -1, better than English */
    SET(BL_DF_MEAN_WORD_LEN, 4.0, 1.0, 5.0);       /* 0: |1| = 1 */
    SET(BL_DF_REPEAT_RATE, 0.25, 0.25, 0.0);       /* +1: -1 */
#undef SET
    b.median[BL_DF_NONPRINT_RATE] = 0, b.scale[BL_DF_NONPRINT_RATE] = 1, b.have[BL_DF_NONPRINT_RATE] = true;
    f.v[BL_DF_SCRIPT_RATE] = 5, f.have[BL_DF_SCRIPT_RATE] = true;   /* the baseline lacks it */
    double z[BL_DF_COUNT];
    double s = bl_drift_score(&b, &f, z);
    /* sqrt(2^2 + 2^2 + 3^2 + 1^2) = sqrt(18) */
    ok(z[BL_DF_MODEL_BPC] == 2 && z[BL_DF_WORD_PMI] == 2 && z[BL_DF_ZLIB_RATIO] == 3 && z[BL_DF_DICT_RATE] == -1 &&
           z[BL_DF_MEAN_WORD_LEN] == 1 && z[BL_DF_REPEAT_RATE] == -1,
       "z turned toward the bad side: 2, 2, |-3|, -1, |1|, -1");
    ok(z[BL_DF_NONPRINT_RATE] == 0 && z[BL_DF_SCRIPT_RATE] == 0 && z[BL_DF_CHAR_CE] == 0,
       "z 0 where the features or the baseline lack the feature");
    ok(s == sqrt(18.0) && bl_drift_score(&b, &f, NULL) == s, "score sqrt(4+4+9+1) = sqrt(18); z may be NULL");
    f.v[BL_DF_ZLIB_RATIO] = 0.875;   /* the other side: |(.875-.5)/.125| = 3 too */
    ok(bl_drift_score(&b, &f, z) == sqrt(18.0) && z[BL_DF_ZLIB_RATIO] == 3, "two-sided: the same z above the median");
}

static void test_cusum(void)
{
    struct bl_drift_cusum c;
    bl_drift_cusum_init(&c, 1, 2);
    ok(c.k == 1 && c.h == 2 && c.s == 0 && c.start == -1 && c.i == 0, "init: k 1, h 2, s 0, start -1, i 0");
    /* s = max(0, s + score - 1): scores 0 2 2 0 3 -> s 0 1 2 1 3; alarm when
     * s > 2: only the last; s left 0 at index 1 */
    static const double sc[] = {0, 2, 2, 0, 3, 0, 0, 0, 1.5};
    static const double want_s[] = {0, 1, 2, 1, 3, 2, 1, 0, 0.5};
    static const int want_a[] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
    static const int64_t want_start[] = {-1, 1, 1, 1, 1, 1, 1, -1, 8};
    int bad = 0;
    for (int i = 0; i < 9; i++) {
        bool a = bl_drift_cusum_add(&c, sc[i]);
        if (a != want_a[i] || c.s != want_s[i] || c.start != want_start[i] || c.i != i + 1) {
            diag("cusum step %d: s %g start %lld alarm %d", i, c.s, (long long)c.start, a);
            bad++;
        }
    }
    /* then 0 0 0: s 2 1 0 (back to 0 clears start); 1.5: s .5, start 8 */
    ok(!bad, "CUSUM k=1 h=2 over 0 2 2 0 3 0 0 0 1.5: s 0 1 2 1 3 2 1 0 .5, alarm at 4 only, start 1 then -1 then 8");
}

/* ---------------------------------------------------------------- edges */

static void test_edges(void)
{
    bl_wordlist *w = NULL;
    bl_drift_ref *r = NULL;
    bl_err err = {0};
    bl_wordlist_from_buffer(&w, "cat\ndog\n", 8, &err);
    struct bl_drift_build_params p = bl_drift_build_default_params();
    p.char_order = 2, p.char_min_count = 1, p.word_order = 2, p.word_min_count = 1, p.word_vocab = 10;
    bl_drift_ref_build(&r, "a b\nb a b\n", 10, "", 0, "tiny", &p, &err);
    struct bl_drift_scorer s = {r, w};
    struct bl_drift_features f;
    static const float zero_bits[1] = {0};

    int rc = features_of(&s, "", 0, zero_bits, &f);
    ok(rc == BL_OK && have_mask(&f) == 0 && f.n_chars == 0 && f.n_bytes == 0 && f.n_words == 0,
       "empty text: BL_OK, no feature, 0 chars");

    /* all 256 byte values: 0..127 are characters, 128..255 each an invalid
     * byte (no lead byte is followed by a continuation byte) -> 256 chars.
     * Non-printable: 29 C0 controls (not tab, newline, return) + DEL + 128
     * invalid = 158/256.  Letters: the 52 ASCII ones, all Latin: script 0.
     * Words (white space 9..13 and 32; '_' dropped by normalization):
     * 0..8 (9), 14..31 (18), 33..255 but '_' (222): mean 249/3 = 83; only
     * the last has a letter (1/3) and a '#' (1/3); it is not in the list */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    rc = features_of(&s, all, 256, NULL, &f);
    ok(rc == BL_OK && f.n_chars == 256 && f.n_words == 3 && bl_utf8_offsets(all, 256, NULL) == 256,
       "all byte values: 256 chars, 3 words");
    ok(f.v[BL_DF_NONPRINT_RATE] == 158.0 / 256 && f.v[BL_DF_SCRIPT_RATE] == 0 && f.v[BL_DF_MEAN_WORD_LEN] == 83 &&
           near(f.v[BL_DF_ALPHA_WORDS], 1.0 / 3, 1e-15) && near(f.v[BL_DF_SYMBOL_RATIO], 1.0 / 3, 1e-15) &&
           f.v[BL_DF_STOPWORD_RATE] == 0 && f.v[BL_DF_REPEAT_RATE] == 0 && f.v[BL_DF_DICT_RATE] == 0 &&
           f.v[BL_DF_ZLIB_RATIO] == deflate_ratio(all, 256),
       "all byte values: nonprint 158/256, script 0, mean_word_len 83, alpha 1/3, symbols 1/3, dict 0, zlib");
    ok(all_finite(&f) && have_mask(&f) == (PLAIN | B(BL_DF_CHAR_CE) | B(BL_DF_WORD_CE) | B(BL_DF_WORD_PMI) |
                                           B(BL_DF_DICT_RATE)),
       "all byte values: every scorer feature present and finite");

    /* invalid UTF-8 only: 4 characters, all non-printable; no letters */
    f = FEATS(&s, "\xff\xfe\xc0\xaf");
    ok(f.n_chars == 4 && f.v[BL_DF_NONPRINT_RATE] == 1 && f.v[BL_DF_SCRIPT_RATE] == 0 && f.n_words == 1 &&
           f.v[BL_DF_MEAN_WORD_LEN] == 4 && f.v[BL_DF_ALPHA_WORDS] == 0 && all_finite(&f),
       "invalid UTF-8: nonprint 1, script 0, one word of 4, alpha 0");

    /* NUL inside: a b NUL c d _ e f: 8 chars, the NUL non-printable (1/8),
     * words "ab\0cd" (5) and "ef" (2): mean 3.5 */
    static const char nul[] = "ab\0cd ef";
    rc = features_of(&s, nul, 8, NULL, &f);
    ok(rc == BL_OK && f.n_bytes == 8 && f.n_chars == 8 && f.n_words == 2 && f.v[BL_DF_NONPRINT_RATE] == 0.125 &&
           f.v[BL_DF_MEAN_WORD_LEN] == 3.5 && f.v[BL_DF_ZLIB_RATIO] == deflate_ratio(nul, 8) && all_finite(&f),
       "NUL inside the text: 8 chars, nonprint 1/8, mean_word_len 7/2");

    /* one line of 4 MB: "abcd " 800000 times: every word "abcd" (4), the
     * same 3-gram everywhere (repeat 1), no stop word, not in the list */
    size_t n;
    char *big = repeat_lines("abcd ", 800000, &n);
    rc = bl_drift_features(&s, big, n, NULL, &f);
    ok(rc == BL_OK && f.n_bytes == 4000000 && f.n_chars == 4000000 && f.n_words == 800000 &&
           f.v[BL_DF_MEAN_WORD_LEN] == 4 && f.v[BL_DF_REPEAT_RATE] == 1 && f.v[BL_DF_STOPWORD_RATE] == 0 &&
           f.v[BL_DF_ALPHA_WORDS] == 1 && f.v[BL_DF_DICT_RATE] == 0 && f.v[BL_DF_NONPRINT_RATE] == 0,
       "4 MB in one line: 800000 words of 4, repeat 1, stop 0, alpha 1, dict 0");
    ok(all_finite(&f) && f.v[BL_DF_ZLIB_RATIO] == deflate_ratio(big, n) && f.v[BL_DF_ZLIB_RATIO] < 0.01 &&
           f.v[BL_DF_CHAR_CE] > 0 && f.have[BL_DF_WORD_PMI],
       "4 MB: zlib ratio %.5f (zlib's own), char_ce %.2f, all finite", f.v[BL_DF_ZLIB_RATIO], f.v[BL_DF_CHAR_CE]);
    free(big);
    bl_drift_ref_free(r);
    bl_wordlist_free(w);
}

/* bl_drift_model_bits against the model run here by hand: each token's
 * -log2 p given BOS and the tokens before it, by the definition in drift.h
 * (segments of 128 tokens scored after up to 64 tokens of context). */
static double ref_bits_total(bl_model *m, const int32_t *ids, int64_t nid, int32_t bos)
{
    int64_t V = bl_model_config(m)->n_vocab;
    double total = 0;
    for (int64_t s = 0; s < nid; s += 128) {
        int64_t e = s + 128 < nid ? s + 128 : nid, from = s - 64 > 0 ? s - 64 : 0;
        int64_t len = 1 + (e - from);
        int32_t *seq = malloc((size_t)len * sizeof *seq);
        float *lg = malloc((size_t)len * (size_t)V * sizeof *lg);
        seq[0] = bos;
        memcpy(seq + 1, ids + from, (size_t)(e - from) * sizeof *seq);
        bl_ctx *c;
        bl_ctx_alloc(&c, m, NULL, NULL);
        bl_ctx_eval(c, seq, len, lg, BL_EVAL_ALL_LOGITS);
        for (int64_t k = s; k < e; k++) {
            const float *row = lg + (size_t)(k - from) * (size_t)V;   /* the row before ids[k] */
            double mx = row[0], z = 0;
            for (int64_t v = 1; v < V; v++)
                mx = row[v] > mx ? row[v] : mx;
            for (int64_t v = 0; v < V; v++)
                z += exp(row[v] - mx);
            total += -(row[ids[k]] - mx - log(z)) / log(2.0);
        }
        bl_ctx_free(c);
        free(seq);
        free(lg);
    }
    return total;
}

static void test_model_bits(void)
{
    char *mp = td_path("models/stories260K.bin"), *tp = td_path("models/tok512.bin"),
         *xp = td_path("text/tinystories_train_head.txt");
    if (!mp || !tp || !xp) {
        skip(4, "no stories260K or TinyStories in the test data");
        free(mp);
        free(tp);
        free(xp);
        return;
    }
    struct bl_model_params p = bl_model_default_params();
    p.tokenizer_path = tp;
    bl_model *m;
    bl_err err;
    if (bl_model_load(&m, mp, &p, &err)) {
        ok(0, "model_bits: load stories260K: %s", err.msg);
        return;
    }
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    size_t tn;
    char *text = read_file(xp, &tn);
    static const size_t lens[2] = {55, 3000};   /* one segment; several */
    for (int k = 0; k < 2; k++) {
        size_t n = lens[k];
        while (n < tn && (text[n] & 0xc0) == 0x80)
            n++;
        int32_t *ids = malloc((3 * n + 8) * sizeof *ids);
        int64_t nid = 0;
        bl_tokenizer_encode(tok, text, n, 0, ids, (int64_t)(3 * n + 8), &nid);
        double want = ref_bits_total(m, ids, nid, bl_tokenizer_bos(tok));
        float *bits = malloc(n * sizeof *bits);
        bl_ctx *c;
        bl_ctx_alloc(&c, m, NULL, NULL);
        int rc = bl_drift_model_bits(c, text, n, bits, &err);
        double got = 0;
        int64_t nonzero = 0;
        for (size_t i = 0; i < n; i++) {
            got += bits[i];
            nonzero += bits[i] != 0;
        }
        ok(rc == 0 && fabs(got - want) <= 1e-4 * want,
           "model_bits: %zu bytes, %lld tokens: %.6f bits in all, by hand %.6f", n, (long long)nid, got, want);
        ok(nonzero > 0 && nonzero <= nid, "model_bits: bits on %lld bytes, at most one per token (%lld)",
           (long long)nonzero, (long long)nid);
        bl_ctx_free(c);
        free(bits);
        free(ids);
    }
    free(text);
    bl_model_free(m);
    free(mp);
    free(tp);
    free(xp);
}

int main(void)
{
    test_names();
    test_utf8();
    test_char_symbol();
    test_word_tokens();
    test_word_shape();
    test_normalize();
    test_features_plain();
    test_model_bpc();
    test_model_bits();
    test_dict();
    test_ngram_hand();
    test_ngram_scan();
    test_u64map();
    test_ref_tiny();
    test_ref_roundtrip();
    test_builtin();
    test_baseline();
    test_score();
    test_cusum();
    test_edges();
    return done_testing();
}
