/* tests/drift-corrupt.h: spans of text and corruptions of them, for the
 * drift evaluation (make eval-drift): clean spans of readable text are scored
 * against corrupted ones, and dc_auroc says how well a score separates them.
 *
 * Text is UTF-8, one paragraph per line.  Lengths are in codepoints: a
 * codepoint is a byte that is not a continuation byte (10xxxxxx) together
 * with the continuation bytes after it, so invalid input is counted and cut
 * without ever splitting a valid sequence.  A word is a maximal run of
 * characters other than ASCII whitespace.
 *
 * Every function that draws at random takes the caller's gsl_rng and
 * nothing else random: the same generator state gives the same result.
 * There is no global state.  Functions returning char * return a malloc'd,
 * NUL-terminated string the caller frees, or NULL for a bad argument or
 * when memory runs out. */
#ifndef BITLENS_TESTS_DRIFT_CORRUPT_H
#define BITLENS_TESTS_DRIFT_CORRUPT_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- UTF-8 */

/* Codepoints in s. */
int64_t dc_utf8_len(const char *s);

/* Bytes taken by the first n codepoints of s (all of s if it has fewer). */
size_t dc_utf8_offset(const char *s, int64_t n);

/* Cut s after its first n codepoints, in place; returns s. */
char *dc_utf8_truncate(char *s, int64_t n);

/* 1 if s is well-formed UTF-8 (no overlong forms, surrogates or codepoints
 * above U+10FFFF), else 0. */
int dc_utf8_valid(const char *s);

/* ---------------------------------------------------------------- spans */

/* Up to max spans of exactly L codepoints from text (n bytes, one paragraph
 * per line; it need not be NUL-terminated).  Whitespace in a paragraph is
 * first squeezed to single spaces and trimmed.  A span lies inside one
 * paragraph (paragraphs shorter than L give none), starts at the start of
 * a word and does not end in a space; spans never overlap.  They are chosen
 * uniformly at random: candidate starts (every word start that fits) are
 * visited in a random order and each is kept unless it overlaps a span kept
 * before, until max are kept, so they spread over the whole text.  The
 * result is in text order.
 *
 * *spans receives a malloc'd array of the returned count of malloc'd
 * strings (free it with dc_strv_free; NULL when the count is 0).  Returns
 * that count, or -1 (L < 1, max < 0, out of memory, more candidate starts
 * than r has values: 2^32 for mt19937). */
int64_t dc_spans(const char *text, size_t n, int64_t L, int64_t max, gsl_rng *r,
                 char ***spans);

/* Free n strings and the array holding them (NULL is fine). */
void dc_strv_free(char **v, int64_t n);

/* ---------------------------------------------------------------- corruptions */

/* Each takes a clean span and returns a corrupted one of exactly as many
 * codepoints (dc_random_tokens: exactly L).  The result is valid UTF-8
 * whenever the input is (and, for dc_random_tokens, always). */

/* The words of span in a Fisher-Yates order.  The blanks between words stay
 * where they were, so the length is unchanged; punctuation stays attached to
 * its word.  An order that gives back the input is drawn again (up to 64
 * times), so the span changes unless all its words are equal. */
char *dc_shuffle_words(const char *span, gsl_rng *r);

/* Uniformly random pieces of vocab (n_vocab strings, SentencePiece's U+2581
 * already turned into a space by the caller) concatenated until there are
 * at least L codepoints, then cut to L.  Pieces that are empty, not valid
 * UTF-8 (lone bytes of byte-fallback tokens) or hold ASCII control
 * characters (newlines, tabs) are skipped; NULL if none is left. */
char *dc_random_tokens(const char *const *vocab, int64_t n_vocab, int64_t L, gsl_rng *r);

/* A random permutation of a..z, never the identity, applied to lowercase
 * letters and the same permutation to uppercase (b -> q means B -> Q).
 * Everything else, non-ASCII letters included, is unchanged. */
char *dc_cipher(const char *span, gsl_rng *r);

/* Base64 of n bytes (RFC 4648, standard alphabet, padded with '='). */
char *dc_base64(const void *data, size_t n);

/* Base64 of span's bytes, cut to span's length in codepoints (always
 * possible: the encoding is 4/3 as long as the bytes). */
char *dc_base64_span(const char *span);

/* The codepoints of span in reverse order. */
char *dc_reverse(const char *span);

/* Garbage words at fraction frac (0..1): of the words holding a letter or
 * digit, round(frac * count) distinct ones, halves rounded away from zero,
 * are chosen at random; in each, the core from its first to its last letter
 * or digit is replaced by as many random letters a..z, never the same as
 * the core was, and punctuation before and after the core is kept
 * ("Hello," -> "qzvbe,").  Words without a letter or digit ("--", an em
 * dash) stay.  Letters and digits are ASCII ones and every non-ASCII
 * codepoint outside the punctuation and symbol blocks (U+0080..U+00BF,
 * U+00D7, U+00F7, U+2000..U+2BFF, U+3000..U+303F, U+1F000..U+1FAFF). */
char *dc_garbage_words(const char *span, double frac, gsl_rng *r);

/* All of the above behind one call, for loops over the kinds. */
typedef enum {
    DC_SHUFFLE,     /* dc_shuffle_words */
    DC_TOKENS,      /* dc_random_tokens with L = the span's length */
    DC_CIPHER,      /* dc_cipher */
    DC_BASE64,      /* dc_base64_span */
    DC_REVERSE,     /* dc_reverse */
    DC_GARBAGE,     /* dc_garbage_words */
    DC_NKINDS
} dc_kind;

struct dc_params {
    const char *const *vocab;   /* DC_TOKENS: the pieces (not owned) */
    int64_t n_vocab;
    double garbage_frac;        /* DC_GARBAGE: 0.1, 0.3, 0.5, ... */
};

/* "shuffle", "tokens", "cipher", "base64", "reverse", "garbage"; NULL for
 * anything else.  A static string. */
const char *dc_kind_name(dc_kind kind);

/* The corruption kind of span; p may be NULL for kinds that need none. */
char *dc_corrupt(dc_kind kind, const char *span, const struct dc_params *p, gsl_rng *r);

/* ---------------------------------------------------------------- AUROC */

/* The area under the ROC curve for telling pos (scores of corrupted spans)
 * from neg (clean ones): the fraction of pairs (p, q) with p > q, a tie
 * counting half, i.e. Mann-Whitney U / (np * nn), from mid-ranks after one
 * sort, O((np + nn) log(np + nn)).  1 means every corrupted span scores
 * above every clean one, 0.5 no separation.  NaN if np or nn is below 1,
 * a score is NaN, or memory runs out. */
double dc_auroc(const double *pos, int np, const double *neg, int nn);

#ifdef __cplusplus
}
#endif

#endif
