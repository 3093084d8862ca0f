/* bitlens/drift.h: drift of text away from readable English (DESIGN.md,
 * "English drift of a text span").
 *
 * A span of text (UTF-8, any bytes) gets a vector of features, each with a
 * direction in which it moves when text stops being English:
 *
 *   model_bpc      bits per character under a language model (the main model,
 *                  one token at a time with its context)            higher
 *   char_ce        bits per character under a character 5-gram model of
 *                  reference English (interpolated Kneser-Ney)         higher
 *   word_ce        bits per word token under a word trigram model of
 *                  reference English (Kneser-Ney, unknown words by shape)
 *                                                                      higher
 *   word_pmi       mean over word tokens of log2 P(w | previous words) -
 *                  log2 P(w): the evidence of word order               lower
 *   dict_rate      share of words found in the system word list
 *                  (/usr/share/dict/words)                             lower
 *   zlib_ratio     raw-deflate size / size, level 9                   either
 *   nonprint_rate  control characters and invalid UTF-8 per character higher
 *   script_rate    letters outside the Latin script per letter        higher
 *   repeat_rate    share of words inside a word 3-gram that occurs
 *                  twice or more in the span                          higher
 *   stopword_rate  share of words that are English function words      lower
 *   mean_word_len  mean length of the whitespace-separated words      either
 *   symbol_ratio   '#' and '...' (Gopher's symbols) per word          higher
 *   alpha_words    share of words with at least one letter             lower
 *
 * The last four are the Gopher quality rules (Rae et al. 2021, A.1.1) made
 * continuous.  All but nonprint_rate, script_rate, zlib_ratio and model_bpc
 * read the text with typographic punctuation in ASCII (' " -- - ...),
 * emphasis underscores dropped and words of capitals lowercased, as the
 * reference tables were built.  A baseline (reference English, or any text such as the model's
 * own one-token-per-pass output) gives each feature a median and a robust
 * spread at the span length; a span's feature z-scores are turned toward the
 * feature's bad direction, and the score is the root of the sum of the
 * squared positive ones.  A CUSUM over the stream of scores flags sustained
 * drift and the span where it started.
 *
 * The reference English tables (character and word n-gram models, and a
 * calibration sample of English held out from them) are built from a corpus
 * by bl_drift_ref_build() and stored as GGUF; one built from the Brown corpus
 * is compiled into the library (bl_drift_ref_builtin()).
 */
#ifndef BITLENS_DRIFT_H
#define BITLENS_DRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bitlens/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bl_drift_feature {
    BL_DF_MODEL_BPC,
    BL_DF_CHAR_CE,
    BL_DF_WORD_CE,
    BL_DF_WORD_PMI,
    BL_DF_DICT_RATE,
    BL_DF_ZLIB_RATIO,
    BL_DF_NONPRINT_RATE,
    BL_DF_SCRIPT_RATE,
    BL_DF_REPEAT_RATE,
    BL_DF_STOPWORD_RATE,
    BL_DF_MEAN_WORD_LEN,
    BL_DF_SYMBOL_RATIO,
    BL_DF_ALPHA_WORDS,
    BL_DF_COUNT
};

/* "char_ce", ...; NULL out of range. */
const char *bl_drift_feature_name(int f);
/* +1 when higher is worse, -1 when lower is worse, 0 when either. */
int bl_drift_feature_direction(int f);

/* ---------------------------------------------------------------- reference */

typedef struct bl_drift_ref bl_drift_ref;

struct bl_drift_build_params {
    int char_order;        /* character n-gram order (default 5) */
    int char_min_count;    /* keep n-grams of order >= 2 seen this often (2) */
    int word_order;        /* word n-gram order (default 3) */
    int word_min_count;    /* keep word n-grams of order >= 2 seen this often (2) */
    int word_vocab;        /* at most this many word forms (default 12000) */
    int64_t calib_bytes;   /* calibration text kept, at most (default 262144) */
};
struct bl_drift_build_params bl_drift_build_default_params(void);

/* Build from a training text and a calibration text (both paragraph per
 * line; the calibration text must not overlap the training text: it is the
 * reference baseline).  `source` names the corpus in the file's metadata. */
int bl_drift_ref_build(bl_drift_ref **out, const char *train, size_t n_train, const char *calib,
                       size_t n_calib, const char *source, const struct bl_drift_build_params *p,
                       bl_err *err);
int bl_drift_ref_save(const bl_drift_ref *r, const char *path, bl_err *err);
/* A reference file (GGUF with bitlens.drift.* keys). */
int bl_drift_ref_load(bl_drift_ref **out, const char *path, bl_err *err);
int bl_drift_ref_load_memory(bl_drift_ref **out, const void *data, size_t size, const char *name,
                             bl_err *err);
/* The reference compiled into the library (Brown corpus). */
int bl_drift_ref_builtin(bl_drift_ref **out, bl_err *err);
void bl_drift_ref_free(bl_drift_ref *r);

/* The calibration text and the corpus's name. */
const char *bl_drift_ref_calibration(const bl_drift_ref *r, size_t *n);
const char *bl_drift_ref_source(const bl_drift_ref *r);

/* ---------------------------------------------------------------- word list */

typedef struct bl_wordlist bl_wordlist;

/* One word per line (the system list: /usr/share/dict/words).  Lookups fold
 * case when the exact form is absent. */
int bl_wordlist_load(bl_wordlist **out, const char *path, bl_err *err);
int bl_wordlist_from_buffer(bl_wordlist **out, const char *text, size_t n, bl_err *err);
void bl_wordlist_free(bl_wordlist *w);
bool bl_wordlist_has(const bl_wordlist *w, const char *word, size_t n);
int64_t bl_wordlist_size(const bl_wordlist *w);

/* ---------------------------------------------------------------- features */

/* What a span is scored with: any of them may be NULL (their features are
 * then not computed, have[f] false). */
struct bl_drift_scorer {
    const bl_drift_ref *ref;        /* char_ce, word_ce, word_pmi */
    const bl_wordlist *words;       /* dict_rate */
};

struct bl_drift_features {
    double v[BL_DF_COUNT];
    bool have[BL_DF_COUNT];
    int64_t n_bytes, n_chars, n_words;
};

/* The features of text[0..n).  model_bits, when not NULL, holds a model's
 * surprisal in bits assigned to each byte (a token's surprisal on its last
 * byte, as bl_drift_model_bits() writes it): model_bpc is their sum over the
 * span per character.  Never fails on any bytes; BL_ENOMEM only. */
int bl_drift_features(const struct bl_drift_scorer *s, const char *text, size_t n,
                      const float *model_bits, struct bl_drift_features *f);

/* A model's surprisal of text[0..n): each token's -log2 p given BOS and
 * the 64 to 191 tokens before it (segments of 128 scored after 64 of
 * context; less for a model whose context is shorter than 193), added to
 * bits[] at the token's last byte (bits has n entries, zeroed first).
 * Without BOS the first token is not scored.  The context is rewound. */
typedef struct bl_ctx bl_ctx;
int bl_drift_model_bits(bl_ctx *c, const char *text, size_t n, float *bits, bl_err *err);

/* ---------------------------------------------------------------- baseline */

struct bl_drift_baseline {
    int window;                      /* span length in characters */
    int64_t n_spans;                 /* spans it was measured on */
    double median[BL_DF_COUNT];
    double scale[BL_DF_COUNT];       /* robust spread, floored (see below) */
    bool have[BL_DF_COUNT];
    double score_q[3];               /* the score's 50%, 90% and 99% on the baseline */
};

/* Character offsets: the byte offset of each character start of text[0..n)
 * into off[0..nc], off[nc] = n; returns nc.  A byte of invalid UTF-8 is one
 * character. */
int64_t bl_utf8_offsets(const char *text, size_t n, int64_t *off);

/* The baseline of spans of `window` characters taken from a text (paragraph
 * per line; spans begin at word starts and stay within a line), at most
 * max_spans of them.  model_bits as for bl_drift_features (NULL: no model
 * feature).  BL_EINVAL when the text has fewer than 20 such spans. */
int bl_drift_baseline_from_text(struct bl_drift_baseline *b, const struct bl_drift_scorer *s,
                                const char *text, size_t n, const float *model_bits, int window,
                                int64_t max_spans, bl_err *err);

/* Score a span's features against the baseline: z[f] (may be NULL) receives
 * each feature's z-score turned so that positive is away from English (0 for
 * features absent from either), and the score, sqrt(sum of max(z,0)^2), is
 * returned. */
double bl_drift_score(const struct bl_drift_baseline *b, const struct bl_drift_features *f,
                      double *z);

/* CUSUM over a stream of scores: s = max(0, s + score - k); an alarm when
 * s > h.  `start` is the index of the span where s last left 0. */
struct bl_drift_cusum {
    double k, h;
    double s;
    int64_t start;   /* -1 while s is 0 */
    int64_t i;       /* spans seen */
};
void bl_drift_cusum_init(struct bl_drift_cusum *c, double k, double h);
/* Add a score; returns true when the CUSUM is above h after it. */
bool bl_drift_cusum_add(struct bl_drift_cusum *c, double score);

#ifdef __cplusplus
}
#endif

#endif
