/* tests/fuzz/fuzz-drift.c: the drift library (bitlens/drift.h) on one
 * input read two ways.
 *
 * (a) The input is a reference English file (GGUF with bitlens.drift.*
 *     keys) for bl_drift_ref_load_memory().  A failure must hand out no
 *     reference and set err with its code (a BL_E* status) and a message
 *     that names the input.
 *     A reference that loads must give its calibration text and source,
 *     and score a fixed text (English, typography, other scripts, invalid
 *     UTF-8, repeats): every feature present is finite, the rates are in
 *     [0, 1].
 * (b) The input is text (at most TEXT_MAX bytes of it) for
 *     bl_drift_features(), scored with the built-in reference and a tiny
 *     word list (both loaded once) and with per-byte model surprisals, and
 *     (unless it is a GGUF file) again with no scorer.  Checked: every
 *     feature present is finite; the features each scorer provides are
 *     present or absent as the header says; n_chars <= n_bytes and equals bl_utf8_offsets()'s count;
 *     dict_rate, nonprint_rate, script_rate, repeat_rate, stopword_rate and
 *     alpha_words lie in [0, 1]; zlib_ratio > 0; model_bpc is the
 *     surprisals' sum per character; the features that need no scorer are
 *     the same without one.  The input is also a word list
 *     (bl_wordlist_from_buffer()): its first word must be found, and a few
 *     lookups must not crash.  bl_utf8_offsets() must give at most one
 *     character per byte, offsets strictly increasing by 1 to 4 bytes from 0
 *     to the size, and on valid UTF-8 one character per leading byte.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <bitlens/drift.h>
#include <bitlens/gguf.h>

#include "fuzz.h"

/* What the input reached: FZ_PARSED, it loaded as a reference;
 * FZ_DRIFT_TEXT (fuzz.h), every feature of the full scorer was computed as
 * text, the word model's and the word list's included. */

/* Text longer than this is cut: the features are linear in the length.
 * An input that begins with GGUF's magic is mostly a reference's tables,
 * slow to score as text (a lookup per character and order, and each span
 * sets up a deflate stream of some 400 KB) and no better text than any
 * other bytes: as text it is only its first GGUF_TEXT_MAX bytes, scored
 * once, which keeps the replay's ten thousand mutations of a reference
 * within seconds under the sanitizers. */
#define TEXT_MAX ((size_t)64 << 10)
#define GGUF_TEXT_MAX ((size_t)64)

static const char fixed_text[] =
    "The committee met on Tuesday to discuss the budget, and the budget was not discussed. "
    "It's a well-known problem: the dog's owner said \xe2\x80\x9cnobody\xe2\x80\x99s fault\xe2\x80\x9d "
    "\xe2\x80\x94 and the dog\xe2\x80\x99s owner said it again... NASA #budget _emphasis_\n"
    "caf\xc3\xa9 na\xc3\xafve \xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0 \xe4\xb8\xad\xe6\x96\x87 "
    "\xf0\x9f\x98\x80\xc2\xa0x\xe2\x80\x8by 3.14 -- \x01\x7f\xff\xc3 the the the the the the\r\n";

static const char tiny_words[] = "the\nThe\nquick\nbrown\nfox\ndog\nowner\nwell\nknown\nbudget \r\n\n"
                                 "committee\nmet\non\nTuesday\nit's\nnobody\nfault\ncaf\xc3\xa9\n";

static int is_rate(int f)
{
    return f == BL_DF_DICT_RATE || f == BL_DF_NONPRINT_RATE || f == BL_DF_SCRIPT_RATE ||
           f == BL_DF_REPEAT_RATE || f == BL_DF_STOPWORD_RATE || f == BL_DF_ALPHA_WORDS;
}

/* What bitlens/drift.h promises of the features of text[0..n) scored by s
 * (model_bits, when not NULL, sums to bits_sum). */
static void check_features(const struct bl_drift_features *f, const struct bl_drift_scorer *s, size_t n,
                           const float *model_bits, double bits_sum)
{
    FUZZ_CHECK(f->n_bytes == (int64_t)n);
    FUZZ_CHECK(f->n_chars >= 0 && f->n_chars <= f->n_bytes);
    FUZZ_CHECK(f->n_words >= 0 && f->n_words <= f->n_bytes);
    if (n == 0) {
        FUZZ_CHECK(f->n_chars == 0 && f->n_words == 0);
        for (int k = 0; k < BL_DF_COUNT; k++)
            FUZZ_CHECK(!f->have[k]);
        return;
    }
    FUZZ_CHECK(f->n_chars >= 1 && (uint64_t)f->n_chars * 4 >= n);
    for (int k = 0; k < BL_DF_COUNT; k++) {
        if (!f->have[k])
            continue;
        FUZZ_CHECK(isfinite(f->v[k]));
        if (is_rate(k))
            FUZZ_CHECK(f->v[k] >= 0 && f->v[k] <= 1);
    }
    /* always there for a nonempty span */
    FUZZ_CHECK(f->have[BL_DF_NONPRINT_RATE] && f->have[BL_DF_SCRIPT_RATE] && f->have[BL_DF_ZLIB_RATIO]);
    FUZZ_CHECK(f->v[BL_DF_ZLIB_RATIO] > 0);
    /* the scorer's features only with the scorer's parts */
    int ref = s && s->ref, words = s && s->words;
    FUZZ_CHECK(ref || (!f->have[BL_DF_CHAR_CE] && !f->have[BL_DF_WORD_CE] && !f->have[BL_DF_WORD_PMI]));
    FUZZ_CHECK(f->have[BL_DF_WORD_CE] == f->have[BL_DF_WORD_PMI]);
    FUZZ_CHECK(!f->have[BL_DF_WORD_CE] || f->have[BL_DF_CHAR_CE]);
    FUZZ_CHECK(f->have[BL_DF_DICT_RATE] == (words && f->n_words > 0));
    FUZZ_CHECK(f->have[BL_DF_MODEL_BPC] == (model_bits != NULL));
    if (model_bits)
        FUZZ_CHECK(f->v[BL_DF_MODEL_BPC] == bits_sum / (double)f->n_chars);
    /* the word features come together, over words of at least a character */
    int w = f->n_words > 0;
    FUZZ_CHECK(f->have[BL_DF_MEAN_WORD_LEN] == w && f->have[BL_DF_ALPHA_WORDS] == w &&
               f->have[BL_DF_STOPWORD_RATE] == w && f->have[BL_DF_SYMBOL_RATIO] == w &&
               f->have[BL_DF_REPEAT_RATE] == w);
    if (w) {
        FUZZ_CHECK(f->v[BL_DF_MEAN_WORD_LEN] >= 1);
        FUZZ_CHECK(f->v[BL_DF_SYMBOL_RATIO] >= 0);
    }
}

/* Score text[0..n) with s and check; returns BL_OK or BL_ENOMEM. */
static int score(const struct bl_drift_scorer *s, const char *text, size_t n, struct bl_drift_features *f)
{
    int rc = bl_drift_features(s, text, n, NULL, f);
    if (rc == BL_ENOMEM)
        return rc;
    FUZZ_CHECK(rc == BL_OK);
    check_features(f, s, n, NULL, 0);
    return BL_OK;
}

/* ---------------------------------------------------------- (a) reference */

static void as_reference(const uint8_t *data, size_t size, const bl_wordlist *words)
{
    bl_drift_ref *r = (bl_drift_ref *)&r;   /* must be reset to NULL on failure */
    bl_err err;
    memset(&err, 0, sizeof err);
    int rc = bl_drift_ref_load_memory(&r, data, size, "fuzz.gguf", &err);
    if (rc) {
        FUZZ_CHECK(rc >= BL_ESTOPPED && rc <= BL_EIO);
        FUZZ_CHECK(r == NULL);
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(strstr(err.msg, "fuzz.gguf") != NULL);
        return;
    }
    FUZZ_CHECK(r != NULL);
    FUZZ_REACHED(FZ_PARSED);
    size_t nc = (size_t)-1;
    const char *calib = bl_drift_ref_calibration(r, &nc);
    const char *source = bl_drift_ref_source(r);
    FUZZ_CHECK(calib != NULL && source != NULL);
    FUZZ_CHECK(strlen(calib) == nc);
    fuzz_touch(source, strlen(source));

    struct bl_drift_scorer s = {r, words};
    struct bl_drift_features f;
    score(&s, fixed_text, sizeof fixed_text - 1, &f);
    bl_drift_ref_free(r);
}

/* ---------------------------------------------------------- (b) text */

/* The built-in reference and the tiny word list, loaded once. */
static const bl_drift_ref *builtin_ref(void)
{
    static bl_drift_ref *ref;
    if (!ref) {
        bl_err err;
        int rc = bl_drift_ref_builtin(&ref, &err);
        FUZZ_CHECK(rc == BL_OK && ref != NULL);
    }
    return ref;
}

static const bl_wordlist *tiny_wordlist(void)
{
    static bl_wordlist *words;
    if (!words) {
        bl_err err;
        int rc = bl_wordlist_from_buffer(&words, tiny_words, sizeof tiny_words - 1, &err);
        FUZZ_CHECK(rc == BL_OK && words != NULL);
        FUZZ_CHECK(bl_wordlist_size(words) == 18);
        FUZZ_CHECK(bl_wordlist_has(words, "budget", 6) && bl_wordlist_has(words, "TUESDAY", 7));
        FUZZ_CHECK(!bl_wordlist_has(words, "budge", 5) && !bl_wordlist_has(words, "", 0));
    }
    return words;
}

static void check_offsets(const char *text, size_t n)
{
    int64_t nc = bl_utf8_offsets(text, n, NULL);
    FUZZ_CHECK(nc >= 0 && (uint64_t)nc <= n);
    int64_t *off = malloc(((size_t)nc + 1) * sizeof *off);
    if (!off)
        return;
    FUZZ_CHECK(bl_utf8_offsets(text, n, off) == nc);
    FUZZ_CHECK(off[0] == 0 && off[nc] == (int64_t)n);
    for (int64_t i = 0; i < nc; i++)
        FUZZ_CHECK(off[i + 1] - off[i] >= 1 && off[i + 1] - off[i] <= 4);
    if (fuzz_utf8_valid((const unsigned char *)text, n)) {
        int64_t lead = 0;
        for (size_t i = 0; i < n; i++)
            lead += ((unsigned char)text[i] & 0xC0) != 0x80;
        FUZZ_CHECK(nc == lead);
        for (int64_t i = 0; i < nc; i++)
            FUZZ_CHECK(((unsigned char)text[off[i]] & 0xC0) != 0x80);
    }
    free(off);
}

static void as_wordlist(const char *text, size_t n)
{
    bl_wordlist *w = (bl_wordlist *)&w;
    bl_err err;
    memset(&err, 0, sizeof err);
    int rc = bl_wordlist_from_buffer(&w, text, n, &err);
    if (rc) {
        FUZZ_CHECK(rc == BL_ENOMEM && w == NULL && err.code == rc && err.msg[0] != '\0');
        return;
    }
    FUZZ_CHECK(w != NULL);
    size_t lines = 1;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    int64_t size = bl_wordlist_size(w);
    FUZZ_CHECK(size >= 0 && (uint64_t)size <= lines);
    /* the first line, trimmed as the list trims it, is a word of the list
     * (it came first: its exact form's slot holds it) */
    const char *nl = memchr(text, '\n', n);
    size_t len = nl ? (size_t)(nl - text) : n;
    while (len && (text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    if (len && !memchr(text, '\0', len)) {
        FUZZ_CHECK(size >= 1);
        FUZZ_CHECK(bl_wordlist_has(w, text, len));
    }
    FUZZ_CHECK(!bl_wordlist_has(w, text, 0));
    /* lookups that may or may not hit: a prefix, another case, the text */
    if (len > 1)
        fuzz_sink += bl_wordlist_has(w, text, len - 1);
    char up[32];
    size_t m = len < sizeof up ? len : sizeof up;
    for (size_t i = 0; i < m; i++)
        up[i] = (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i] >= 'A' && text[i] <= 'Z' ? text[i] + 32 : text[i]);
    fuzz_sink += bl_wordlist_has(w, up, m);
    fuzz_sink += bl_wordlist_has(w, text, n);
    fuzz_sink += bl_wordlist_has(w, "the", 3);
    bl_wordlist_free(w);
}

static void as_text(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int gguf = size >= 4 && fuzz_rd_u32(data) == BL_GGUF_MAGIC;
    size_t max = gguf ? GGUF_TEXT_MAX : TEXT_MAX;
    size_t n = size < max ? size : max;
    struct bl_drift_scorer s = {builtin_ref(), tiny_wordlist()};

    /* model surprisals: a few bits per byte, from the byte */
    float *bits = malloc((n ? n : 1) * sizeof *bits);
    if (!bits)
        return;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        bits[i] = (float)(data[i] & 15) * 0.75f;
        sum += bits[i];
    }
    struct bl_drift_features f, g;
    int rc = bl_drift_features(&s, text, n, bits, &f);
    if (rc != BL_ENOMEM) {
        FUZZ_CHECK(rc == BL_OK);
        check_features(&f, &s, n, bits, sum);
    }
    free(bits);
    if (rc == BL_ENOMEM)
        return;
    FUZZ_CHECK(f.n_chars == bl_utf8_offsets(text, n, NULL));
    if (f.have[BL_DF_CHAR_CE] && f.have[BL_DF_WORD_CE] && f.have[BL_DF_DICT_RATE])
        FUZZ_REACHED(FZ_DRIFT_TEXT);

    /* without a scorer: the same features, less those of the scorer */
    if (!gguf && score(NULL, text, n, &g) == BL_OK) {
        FUZZ_CHECK(g.n_chars == f.n_chars && g.n_words == f.n_words);
        for (int k = 0; k < BL_DF_COUNT; k++) {
            if (k == BL_DF_MODEL_BPC || k == BL_DF_CHAR_CE || k == BL_DF_WORD_CE || k == BL_DF_WORD_PMI ||
                k == BL_DF_DICT_RATE)
                FUZZ_CHECK(!g.have[k]);
            else
                FUZZ_CHECK(g.have[k] == f.have[k] && (!g.have[k] || g.v[k] == f.v[k]));
        }
    }

    check_offsets(text, n);
    as_wordlist(text, n);
}

int FUZZ_ENTRY(drift)(const uint8_t *data, size_t size)
{
    as_reference(data, size, tiny_wordlist());
    as_text(data, size);
    return 0;
}

#ifdef BL_FUZZ_REPLAY
/* Seeds for tests/fuzz/replay.c: the built-in reference as
 * bl_drift_ref_save() writes it, two small references built here from a
 * few hundred bytes of text (each expected to load), and a few texts
 * (English, other scripts, binary, invalid UTF-8, a word list), each
 * expected to get every feature. */
#include "testutil.h"

size_t fuzz_drift_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

static const char seed_train[] =
    "The man walked to the river, and the children walked to the river.\n"
    "He sat by the water; the children sat by the man.\n";
static const char seed_calib[] = "The man went home.\n";

/* Save r under dir and hand its bytes to add; 1 if it did. */
static size_t add_ref(void (*add)(const char *, const void *, size_t, unsigned, int), const char *dir,
                      const char *name, bl_drift_ref *r, int mutate)
{
    char path[4200];
    bl_err err;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    void *data = r && bl_drift_ref_save(r, path, &err) == BL_OK ? read_file(path, &n) : NULL;
    bl_drift_ref_free(r);
    if (!data)
        return 0;
    add(name, data, n, FZ_PARSED | FZ_DRIFT_TEXT, mutate);
    free(data);
    return 1;
}

size_t fuzz_drift_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate))
{
    size_t count = 0;
    char *dir = tmp_dir();
    if (!dir)
        return 0;
    bl_drift_ref *r;
    bl_err err;
    if (bl_drift_ref_builtin(&r, &err) == BL_OK)
        count += add_ref(add, dir, "drift-builtin.gguf", r, 0);
    /* default orders (5 and 3) on a tiny text: every prefix and byte change */
    if (bl_drift_ref_build(&r, seed_train, sizeof seed_train - 1, seed_calib, sizeof seed_calib - 1, "fuzz seed",
                           NULL, &err) == BL_OK)
        count += add_ref(add, dir, "drift-small.gguf", r, 1);
    /* the other extremes of the orders, every n-gram kept */
    struct bl_drift_build_params p = bl_drift_build_default_params();
    p.char_order = 2;
    p.word_order = 4;
    p.char_min_count = p.word_min_count = 1;
    p.word_vocab = 3;
    if (bl_drift_ref_build(&r, seed_train, sizeof seed_train - 1, "", 0, "", &p, &err) == BL_OK)
        count += add_ref(add, dir, "drift-orders.gguf", r, 0);
    rm_rf(dir);
    free(dir);

    static const struct {
        const char *name, *text;
        size_t n;
        int mutate;
    } texts[] = {
        {"drift-english.txt", seed_train, sizeof seed_train - 1, 0},
        {"drift-fixed.txt", fixed_text, sizeof fixed_text - 1, 1},
        {"drift-scripts.txt",
         "\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0 \xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1 "
         "\xe6\x9d\xb1\xe4\xba\xac \xd8\xa7\xd9\x84\xd9\x82\xd8\xa7\xd9\x87\xd8\xb1\xd8\xa9 and Paris, "
         "\xe2\x80\x98quoted\xe2\x80\x99 \xe2\x80\xa6 \xef\xbb\xbf\xe2\x80\x83 \xf0\x9f\x98\x80 "
         "\xf0\x9d\x90\x80 \xe2\x84\x96 \xc2\xbd\n",
         0, 0},
        {"drift-invalid-utf8.txt",
         "the \xc0\xaf overlong \xed\xa0\x80 surrogate \xf4\x90\x80\x80 beyond \xe2\x82 cut \x80\xbf lone "
         "\xfe\xff bytes and \xf0\x9f\x98",
         0, 0},
        {"drift-wordlist.txt", "Fox\nthe\r\nwell-known \n\nO'Brien\ncaf\xc3\xa9\n#\n...\n", 0, 0},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        add(texts[i].name, texts[i].text, texts[i].n ? texts[i].n : strlen(texts[i].text), FZ_DRIFT_TEXT,
            texts[i].mutate);
        count++;
    }
    /* every byte value, twice: control characters, invalid UTF-8, spaces */
    unsigned char bin[512];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i < 256 ? i : 511 - i);
    add("drift-binary.bin", bin, sizeof bin, FZ_DRIFT_TEXT, 0);
    return count + 1;
}
#endif
