/* probes/tokstats.c: the token statistics of one position (a STAT row).
 *
 *   entropy    H(p) = -sum p log2 p, p = softmax(logits)        bits
 *   entropy_t  the same at the sampling temperature (0 at T = 0)
 *   surprisal  -log2 p(next)                                    bits
 *   rank       1 + the number of tokens more probable than next
 *   prob       p(next)
 *   top k      ids and probabilities, most probable first (ties: lower id)
 *
 * Sums run in double; log-probabilities come from logits - logsumexp, so
 * a probability below the float range still has an exact surprisal. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "internal.h"
#include "probes.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* logsumexp of x/t and the entropy (bits) of softmax(x/t): one pass for
 * the maximum, one for the sums (exp in float, sums in double).  A single
 * row (a decode step) splits the vocabulary over the threads, each summing
 * its own slice, the slices added in order: the same bits for a given
 * thread count. */
#define SLICES 8
static void entropy_at(const float *x, int64_t V, float t, double *lse_out, double *h_out)
{
    float it = 1.0f / t, mx[SLICES];
    double zs[SLICES], ss[SLICES];
    int ns = 1;
#ifdef _OPENMP
    if (!omp_in_parallel() && V >= 16384)
        ns = omp_get_max_threads() < SLICES ? omp_get_max_threads() : SLICES;
#endif
    int64_t per = (V + ns - 1) / ns;
#pragma omp parallel for num_threads(ns) schedule(static) if (ns > 1)
    for (int k = 0; k < ns; k++) {
        int64_t a = k * per, b = a + per < V ? a + per : V;
        float m = -INFINITY;
        for (int64_t i = a; i < b; i++)
            if (x[i] > m)
                m = x[i];
        mx[k] = m;
    }
    float m = -INFINITY;
    for (int k = 0; k < ns; k++)
        if (mx[k] > m)
            m = mx[k];
    m *= it;
#pragma omp parallel for num_threads(ns) schedule(static) if (ns > 1)
    for (int k = 0; k < ns; k++) {
        int64_t a = k * per, b = a + per < V ? a + per : V;
        double z = 0, s = 0;
        for (int64_t i = a; i < b; i++) {
            float d = x[i] * it - m, e = expf(d);
            z += e;
            s += (double)e * d;
        }
        zs[k] = z;
        ss[k] = s;
    }
    double z = 0, s = 0;
    for (int k = 0; k < ns; k++) {
        z += zs[k];
        s += ss[k];
    }
    *lse_out = m + log(z);
    /* H = log z - E[d] in nats */
    *h_out = (log(z) - s / z) / M_LN2;
}

void bli_tokstats_row(const float *logits, int64_t V, int32_t token, int32_t next, float t, int k,
                      float *work, unsigned char *out)
{
    double lse, h, lse_t, h_t = 0;
    entropy_at(logits, V, 1.0f, &lse, &h);
    if (t > 0 && t != 1.0f)
        entropy_at(logits, V, t, &lse_t, &h_t);
    else if (t == 1.0f)
        h_t = h;
    float surprisal = NAN, prob = NAN;
    int32_t rank = 0;
    int has_next = next >= 0 && next < V;
    float ln = has_next ? logits[next] : 0.0f;
    if (has_next) {
        double lp = ln - lse;
        surprisal = (float)(-lp / M_LN2);
        prob = (float)exp(lp);
        rank = 1;
    }
    /* one pass: the rank of next (ties: lower ids first) and the top k,
     * kept sorted by (logit desc, id asc) in ids[0..n) of the work row */
    int32_t *ids = (int32_t *)work;
    int kk = (int64_t)k < V ? k : (int)V;
    int n = 0;
    for (int64_t i = 0; i < V; i++) {
        float x = logits[i];
        if (has_next)
            rank += x > ln || (x == ln && i < next);
        if (kk == 0 || (n == kk && !(x > logits[ids[kk - 1]])))
            continue;
        int j = n < kk ? n++ : kk - 1;
        while (j > 0 && logits[ids[j - 1]] < x)
            ids[j] = ids[j - 1], j--;
        ids[j] = (int32_t)i;
    }
    bli_wr_u32(out, (uint32_t)token);
    bli_wr_u32(out + 4, (uint32_t)next);
    bli_wr_f32(out + 8, h < 0 ? 0.0f : (float)h);
    bli_wr_f32(out + 12, h_t < 0 ? 0.0f : (float)h_t);
    bli_wr_f32(out + 16, surprisal);
    bli_wr_u32(out + 20, (uint32_t)rank);
    bli_wr_f32(out + 24, prob);
    unsigned char *ti = out + 28, *tp = out + 28 + 4 * (size_t)k;
    for (int j = 0; j < k; j++) {
        int32_t id = j < kk ? ids[j] : -1;
        bli_wr_u32(ti + 4 * j, (uint32_t)id);
        bli_wr_f32(tp + 4 * j, id >= 0 ? (float)exp(logits[id] - lse) : 0.0f);
    }
}
