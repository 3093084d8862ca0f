/* lib/sampler.c: greedy, temperature, top-k and top-p sampling. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include <bitlens/sampler.h>
#include "internal.h"

struct cand {
    float p;
    int32_t id;
};

struct bl_sampler {
    struct bl_sampler_params p;
    int64_t n_vocab;
    gsl_rng *rng;
    struct cand *cand;    /* workspace [n_vocab] */
};

struct bl_sampler_params bl_sampler_default_params(void)
{
    struct bl_sampler_params p = {1.0f, 0, 1.0f, 42};
    return p;
}

bl_sampler *bl_sampler_alloc(const struct bl_sampler_params *params, int64_t n_vocab, bl_err *err)
{
    struct bl_sampler_params p = params ? *params : bl_sampler_default_params();
    if (!(p.temperature >= 0) || !isfinite(p.temperature)) {
        bli_err(err, BL_EINVAL, "temperature %.9g must be a finite number >= 0", p.temperature);
        return NULL;
    }
    if (!(p.top_p > 0 && p.top_p <= 1)) {
        bli_err(err, BL_EINVAL, "top-p %.9g must be in (0, 1]", p.top_p);
        return NULL;
    }
    if (p.top_k < 0) {
        bli_err(err, BL_EINVAL, "top-k %lld must be >= 0", (long long)p.top_k);
        return NULL;
    }
    if (n_vocab < 1) {
        bli_err(err, BL_EINVAL, "vocabulary of %lld tokens", (long long)n_vocab);
        return NULL;
    }
    bl_sampler *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->p = p;
    s->n_vocab = n_vocab;
    s->cand = bli_malloc_array((size_t)n_vocab, sizeof *s->cand);
    s->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!s->cand || !s->rng)
        goto nomem;
    /* MT19937 takes a 32-bit seed: mix all 64 bits into 32 (the splitmix64
     * finalizer) so nearby or structured seeds do not collide by design,
     * and keep clear of 0, which GSL replaces with its default 4357 */
    uint64_t z = p.seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint32_t seed32 = (uint32_t)(z ^ (z >> 32));
    gsl_rng_set(s->rng, seed32 ? seed32 : 1);
    return s;
nomem:
    bl_sampler_free(s);
    bli_err(err, BL_ENOMEM, "out of memory");
    return NULL;
}

void bl_sampler_free(bl_sampler *s)
{
    if (!s)
        return;
    if (s->rng)
        gsl_rng_free(s->rng);
    free(s->cand);
    free(s);
}

int64_t bl_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* descending probability, then ascending id */
static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t bl_sampler_sample(bl_sampler *s, const float *logits)
{
    int64_t V = s->n_vocab;
    if (s->p.temperature == 0.0f)
        return (int32_t)bl_argmax(logits, V);

    /* softmax at temperature T, in double for the normalizer */
    float max = logits[bl_argmax(logits, V)];
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        float e = expf((logits[i] - max) / s->p.temperature);
        s->cand[i] = (struct cand){e, (int32_t)i};
        sum += e;
    }
    int64_t n = V;
    if (s->p.top_k > 0 && s->p.top_k < V)
        n = s->p.top_k;
    if (n < V || s->p.top_p < 1.0f) {
        qsort(s->cand, (size_t)V, sizeof *s->cand, cmp_cand);
        if (n < V) {
            sum = 0;
            for (int64_t i = 0; i < n; i++)
                sum += s->cand[i].p;
        }
        if (s->p.top_p < 1.0f) {
            /* smallest prefix whose mass reaches top_p */
            double cum = 0, target = s->p.top_p * sum;
            int64_t k = 0;
            while (k < n) {
                cum += s->cand[k++].p;
                if (cum >= target)
                    break;
            }
            n = k;
            sum = cum;
        }
    }
    double u = gsl_rng_uniform(s->rng) * sum, cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += s->cand[i].p;
        if (u < cum)
            return s->cand[i].id;
    }
    return s->cand[n - 1].id;   /* rounding at the top end */
}
