/* bitlens/sampler.h: choose the next token from logits.
 *
 * temperature 0 is greedy (argmax; the first maximum wins, as llama2.c).
 * Otherwise p = softmax(logits / temperature), restricted to the top_k most
 * probable tokens (0 = all), then to the smallest set of most probable tokens
 * whose mass reaches top_p (1 = all), renormalized, and one token drawn with
 * a uniform number from GSL's MT19937 seeded with `seed` (the 64 bits are
 * hashed to MT19937's 32-bit seed, so two seeds collide only by chance, about
 * one pair in 2^32).  Ties in probability are ordered by token id, so a seed
 * fixes the output.  With top_k and top_p both set, top_p is the share of
 * the top_k tokens' mass.
 */
#ifndef BITLENS_SAMPLER_H
#define BITLENS_SAMPLER_H

#include <bitlens/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_sampler bl_sampler;

struct bl_sampler_params {
    float temperature;   /* 0 = greedy; default 1 */
    int64_t top_k;       /* 0 = no limit; default 0 */
    float top_p;         /* in (0, 1]; default 1 */
    uint64_t seed;       /* default 42 */
};

struct bl_sampler_params bl_sampler_default_params(void);

/* A sampler for a vocabulary of n_vocab; NULL with err set if the params are
 * out of range or memory runs out.  Free with bl_sampler_free(). */
bl_sampler *bl_sampler_alloc(const struct bl_sampler_params *p, int64_t n_vocab, bl_err *err);
void bl_sampler_free(bl_sampler *s);

/* Choose a token; logits[0..n_vocab-1] are not modified. */
int32_t bl_sampler_sample(bl_sampler *s, const float *logits);

/* Index of the first maximum of x[0..n-1]. */
int64_t bl_argmax(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
