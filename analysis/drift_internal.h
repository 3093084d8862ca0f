/* analysis/drift_internal.h: the n-gram models behind bitlens/drift.h. */
#ifndef BITLENS_DRIFT_INTERNAL_H
#define BITLENS_DRIFT_INTERNAL_H

#include <stdint.h>

#include <bitlens/drift.h>

/* An open-addressing map from nonzero uint64 keys to uint32 values. */
struct bli_u64map {
    uint64_t *keys;     /* 0: empty */
    uint32_t *vals;
    uint64_t cap;       /* a power of two */
    uint64_t n;
};
int bli_u64map_init(struct bli_u64map *m, uint64_t expected);
void bli_u64map_free(struct bli_u64map *m);
/* The slot's value for key, inserted as 0 if absent; NULL on ENOMEM. */
uint32_t *bli_u64map_slot(struct bli_u64map *m, uint64_t key);
/* The value, or NULL if absent. */
const uint32_t *bli_u64map_get(const struct bli_u64map *m, uint64_t key);

#define BLI_NGRAM_MAX_ORDER 6

/* An interpolated Kneser-Ney n-gram model over symbols 0..n_sym-1 (0 is the
 * start of a paragraph).  Grams of order n: the highest order keeps raw
 * counts, lower orders continuation counts (distinct left extensions).
 * P(x | h) = max(c(hx) - D_n, 0) / tot(h) + gamma(h) P(x | h'), h' = h
 * without its oldest symbol; a context absent from the table has gamma 1;
 * order 1 interpolates with the uniform distribution.  gamma(h) is the mass
 * the kept grams of h leave over, so pruning keeps every P normalized. */
struct bli_ngram {
    int order, bits;
    uint32_t n_sym;
    float discount[BLI_NGRAM_MAX_ORDER + 1];
    /* sorted arrays (the stored form) */
    int64_t n_grams, n_ctx;
    uint64_t *gram_key;
    uint32_t *gram_count;
    uint64_t *ctx_key;
    uint32_t *ctx_tot;
    float *ctx_gamma;
    double uni_tot;                 /* order 1's total */
    double gamma1;                  /* order 1's mass for the uniform */
    /* lookups */
    struct bli_u64map gram_map, ctx_map;
};

/* Count a symbol stream (paragraphs start with a 0 symbol) and prune. */
int bli_ngram_build(struct bli_ngram *m, const uint32_t *sym, int64_t n, int order, int bits,
                    uint32_t n_sym, int min_count);
/* Build the lookup maps over the arrays (after loading them). */
int bli_ngram_index(struct bli_ngram *m);
void bli_ngram_free(struct bli_ngram *m);
/* log2 P(sym[i] | sym[i-order+1..i-1]), the context cut at index lo (the
 * span's start: no symbols before it are used). */
double bli_ngram_log2p(const struct bli_ngram *m, const uint32_t *sym, int64_t lo, int64_t i);

/* The word tokens of a text: maximal runs of letters, digits, non-ASCII
 * characters and inner apostrophes and hyphens; every other non-space
 * character is a token of its own.  Writes up to cap (start, length) byte
 * pairs; returns the count (which may exceed cap). */
int64_t bli_word_tokens(const char *text, size_t n, int64_t *start, int64_t *len, int64_t cap);

/* Unknown word classes by shape: word ids 1..BLI_WORD_UNK_N; 0 is the start
 * of a paragraph; vocabulary forms from BLI_WORD_FIRST. */
enum {
    BLI_UNK_CAP = 1, BLI_UNK_NUM, BLI_UNK_NONASCII, BLI_UNK_ING, BLI_UNK_ED, BLI_UNK_LY,
    BLI_UNK_S, BLI_UNK_TION, BLI_UNK_ER, BLI_UNK_ADJ, BLI_UNK_LOWER, BLI_UNK_PUNCT,
    BLI_UNK_LONG, BLI_WORD_UNK_N = BLI_UNK_LONG
};
#define BLI_WORD_FIRST 16
int bli_word_shape(const char *w, int64_t n);

/* The character symbol of a code point (characters model): 1..95 printable
 * ASCII (space = 1; tab, newline, return fold into space), 96 any other code
 * point, 97 a control character or invalid byte. */
#define BLI_CHAR_NSYM 98
uint32_t bli_char_symbol(uint32_t cp, int valid);

/* Decode one UTF-8 character at p (n > 0 bytes left): its code point and
 * length; *valid 0 for an invalid byte (length 1). */
uint32_t bli_utf8_next(const unsigned char *p, size_t n, int *len, int *valid);

/* Typographic punctuation to ASCII ("'", '"', "--", "-", "..."), emphasis
 * underscores and invisible characters dropped, spaces of every width to a
 * space, words of two or more capitals and no small letters lowercased.
 * out holds n bytes; returns its length (never more than n). */
size_t bli_drift_normalize(const char *text, size_t n, char *out);

struct bl_drift_ref {
    char *source;
    char *calib;
    size_t n_calib;
    struct bli_ngram chars, words;
    /* the word vocabulary: forms, and a map from a form's hash */
    int64_t n_vocab;
    char **vocab;
    uint32_t *word_uni;             /* raw unigram counts by word id */
    double word_uni_tot;
    struct bli_u64map vocab_map;    /* hash -> id */
};

uint64_t bli_fnv1a(const void *data, size_t n);
/* A word form's id in the reference (its shape class when unknown). */
uint32_t bli_ref_word_id(const struct bl_drift_ref *r, const char *w, int64_t n);

#endif
