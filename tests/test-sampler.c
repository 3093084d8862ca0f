/* tests/test-sampler.c: greedy, temperature, top-k and top-p sampling
 * (lib/sampler.c).
 *
 * Expected distributions are computed here in double from the logits
 * (softmax, sorting, prefix sums), never taken from the sampler.  Draw counts
 * are compared with Pearson's chi-square test; with fixed seeds the p-values
 * are fixed numbers, and we require p > 1e-6.  To show the test has power,
 * the same counts are also tested against deliberately wrong distributions,
 * which must be rejected (p < 1e-6). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include <bitlens/sampler.h>
#include "tap.h"

#define P_MIN 1e-6
#define MAXV 16

/* Six logits, deliberately not sorted, with distinct probabilities from
 * about 0.5 down to about 0.012. */
static const float L6[6] = {1.0f, 2.5f, -0.5f, 0.3f, 2.0f, -1.2f};

/* ---------------------------------------------------------------- helpers */

/* p = softmax(l / T) in double. */
static void softmax_ref(const float *l, int n, double T, double *p)
{
    double m = l[0], s = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > m)
            m = l[i];
    for (int i = 0; i < n; i++)
        s += p[i] = exp(((double)l[i] - m) / T);
    for (int i = 0; i < n; i++)
        p[i] /= s;
}

/* order[] = token ids by descending p, ascending id on ties (insertion sort:
 * a handful of elements). */
static void order_ref(const double *p, int n, int *order)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            int a = order[j - 1], b = order[j];
            if (p[b] > p[a] || (p[b] == p[a] && b < a)) {
                order[j - 1] = b;
                order[j] = a;
            }
        }
}

static bl_sampler *sampler(double T, int64_t top_k, double top_p, uint64_t seed, int64_t V)
{
    struct bl_sampler_params sp = bl_sampler_default_params();
    sp.temperature = (float)T;
    sp.top_k = top_k;
    sp.top_p = (float)top_p;
    sp.seed = seed;
    bl_err err = {0};
    bl_sampler *s = bl_sampler_alloc(&sp, V, &err);
    if (!s)
        diag("bl_sampler_alloc(T=%g, top_k=%lld, top_p=%g): %s", T, (long long)top_k, top_p,
             err.msg);
    return s;
}

/* Draw n tokens; counts[0..V-1]; returns the number of ids outside [0, V). */
static long draw(bl_sampler *s, const float *logits, int64_t V, long n, long *counts)
{
    long bad = 0;
    memset(counts, 0, (size_t)V * sizeof *counts);
    for (long i = 0; i < n; i++) {
        int32_t t = bl_sampler_sample(s, logits);
        if (t < 0 || t >= V)
            bad++;
        else
            counts[t]++;
    }
    return bad;
}

/* Pearson's chi-square of counts against probabilities p over the cells with
 * p > 0 (p sums to 1 over them); *out_stat receives the statistic, *df the
 * degrees of freedom.  Returns the p-value. */
static double chisq(const long *counts, const double *p, int V, double *out_stat, int *df)
{
    long N = 0;
    int cells = 0;
    for (int i = 0; i < V; i++)
        if (p[i] > 0) {
            N += counts[i];
            cells++;
        }
    double stat = 0;
    for (int i = 0; i < V; i++)
        if (p[i] > 0) {
            double e = p[i] * (double)N;
            stat += (counts[i] - e) * (counts[i] - e) / e;
        }
    *out_stat = stat;
    *df = cells - 1;
    if (cells < 2)   /* one cell: nothing to test (the caller checks the set) */
        return 1.0;
    return gsl_cdf_chisq_Q(stat, cells - 1);
}

/* Count of draws outside the allowed set (allowed[i] == 0). */
static long outside(const long *counts, const int *allowed, int V)
{
    long n = 0;
    for (int i = 0; i < V; i++)
        if (!allowed[i])
            n += counts[i];
    return n;
}

/* ---------------------------------------------------------------- argmax */

static void test_argmax(void)
{
    static const struct {
        float x[6];
        int64_t n, want;
        const char *what;
    } c[] = {
        {{3, 1, 3}, 3, 0, "tie at 0 and 2"},
        {{-5, -2, -2, -7}, 4, 1, "negative, tie at 1 and 2"},
        {{0.5f, 0.25f, 1, 1, 1, 0}, 6, 2, "three-way tie"},
        {{-1, -1, -1, -1}, 4, 0, "all equal"},
        {{0, 1, 2, 3, 4, 5}, 6, 5, "maximum last"},
        {{9, 1, 2, 3, 4, 5}, 6, 0, "maximum first"},
        {{-INFINITY, -3, -INFINITY}, 3, 1, "-inf around"},
        {{7}, 1, 0, "n = 1"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int64_t got = bl_argmax(c[i].x, c[i].n);
        ok(got == c[i].want, "bl_argmax %s: want %lld, got %lld", c[i].what,
           (long long)c[i].want, (long long)got);
    }
}

/* ---------------------------------------------------------------- greedy */

static void test_greedy(void)
{
    static const float tie[5] = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f};
    static const float last[4] = {-3.0f, -1.0f, -2.0f, -0.5f};
    struct {
        const float *l;
        int V;
        int32_t want;
        const char *what;
    } c[] = {
        {tie, 5, 1, "tie between 1 and 3"},
        {last, 4, 3, "maximum last"},
        {L6, 6, 1, "six logits"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        /* T = 0 whatever the other settings */
        bl_sampler *s0 = sampler(0, 0, 1, 7, c[i].V);
        bl_sampler *s1 = sampler(0, 2, 0.5, 8, c[i].V);
        long wrong = 0;
        for (int k = 0; k < 1000; k++)
            wrong += (s0 && bl_sampler_sample(s0, c[i].l) != c[i].want) +
                     (s1 && bl_sampler_sample(s1, c[i].l) != c[i].want);
        ok(s0 && s1 && wrong == 0, "temperature 0 (plain, and with top_k 2 top_p 0.5) is "
           "argmax, first maximum: %s -> %d, %ld of 2000 draws differ", c[i].what,
           c[i].want, wrong);
        bl_sampler_free(s0);
        bl_sampler_free(s1);
    }

    static const double temps[] = {0.3, 1, 5, 100};
    long wrong = 0;
    int alloc_failed = 0;
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++)
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
            bl_sampler *s = sampler(temps[t], 1, 1, 100 + t, c[i].V);
            if (!s) {
                alloc_failed++;
                continue;
            }
            for (int k = 0; k < 2000; k++)
                wrong += bl_sampler_sample(s, c[i].l) != c[i].want;
            bl_sampler_free(s);
        }
    ok(!alloc_failed && wrong == 0, "top_k 1 is argmax (first maximum on ties) at T = 0.3, "
       "1, 5, 100: %ld of 24000 draws differ", wrong);
}

/* ---------------------------------------------------------------- seeds */

static void test_seeds(void)
{
    enum { N = 2000 };
    static int32_t a[N], b[N];
    bl_sampler *s1 = sampler(1, 0, 1, 1234, 6), *s2 = sampler(1, 0, 1, 1234, 6);
    long differ = 0;
    for (int i = 0; i < N && s1 && s2; i++) {
        a[i] = bl_sampler_sample(s1, L6);
        b[i] = bl_sampler_sample(s2, L6);
        differ += a[i] != b[i];
    }
    ok(s1 && s2 && differ == 0, "two samplers with seed 1234 draw the same %d tokens: "
       "%ld differ", N, differ);
    bl_sampler_free(s1);
    bl_sampler_free(s2);

    /* Distinct seeds, including two that differ only in the high 32 bits,
     * give distinct sequences.  Over 2000 draws from six tokens with
     * probabilities up to 0.5, two independent sequences agree everywhere
     * with probability < 0.6^2000: a coincidence cannot pass. */
    static const uint64_t seeds[] = {1, 2, 42, 7, 7 + (8ull << 32), 0xdeadbeefcafeull};
    enum { NS = sizeof seeds / sizeof seeds[0] };
    static int32_t seq[NS][N];
    int fail = 0;
    for (int k = 0; k < NS; k++) {
        bl_sampler *s = sampler(1, 0, 1, seeds[k], 6);
        if (!s) {
            fail = 1;
            continue;
        }
        for (int i = 0; i < N; i++)
            seq[k][i] = bl_sampler_sample(s, L6);
        bl_sampler_free(s);
    }
    int same_pairs = 0;
    for (int i = 0; i < NS; i++)
        for (int j = i + 1; j < NS; j++)
            if (memcmp(seq[i], seq[j], sizeof seq[i]) == 0) {
                diag("seeds %llu and %llu give the same sequence",
                     (unsigned long long)seeds[i], (unsigned long long)seeds[j]);
                same_pairs++;
            }
    ok(!fail && same_pairs == 0, "%d distinct seeds (two differ only above bit 32) give "
       "pairwise distinct sequences of %d draws: %d pairs equal", NS, N, same_pairs);
}

/* ---------------------------------------------------------------- T */

static void test_temperature(void)
{
    enum { N = 200000 };
    long counts[MAXV] = {0};
    double p1[6], p2[6], stat, pv;
    int df;
    softmax_ref(L6, 6, 1.0, p1);

    bl_sampler *s = sampler(1, 0, 1, 20240601, 6);
    long bad = s ? draw(s, L6, 6, N, counts) : N;
    bl_sampler_free(s);
    pv = chisq(counts, p1, 6, &stat, &df);
    ok(bad == 0 && pv > P_MIN, "T=1, %d draws over 6 tokens match softmax(logits): "
       "chi2 = %.2f, df %d, p = %.3g (want > %g); ids out of range %ld", N, stat, df, pv,
       P_MIN, bad);
    {
        double worst = 0;
        for (int i = 0; i < 6; i++) {
            double d = fabs((double)counts[i] / N - p1[i]);
            if (d > worst)
                worst = d;
        }
        diag("T=1: worst |frequency - p| = %.2g (one standard error of the largest p: %.2g)",
             worst, sqrt(p1[1] * (1 - p1[1]) / N));
    }

    /* power: the same counts against two wrong distributions */
    double wrong[6];
    memcpy(wrong, p1, sizeof wrong);
    wrong[1] -= 0.01;   /* move 1% of the mass from the top token to the second */
    wrong[4] += 0.01;
    double pw = chisq(counts, wrong, 6, &stat, &df);
    ok(pw < P_MIN, "chi-square rejects the T=1 counts against softmax with 0.01 of mass "
       "moved between the top two tokens: chi2 = %.1f, p = %.3g (want < %g)", stat, pw, P_MIN);
    for (int i = 0; i < 6; i++)
        p2[i] = p1[i] * p1[i];
    double z = 0;
    for (int i = 0; i < 6; i++)
        z += p2[i];
    for (int i = 0; i < 6; i++)
        p2[i] /= z;
    pw = chisq(counts, p2, 6, &stat, &df);
    ok(pw < P_MIN, "chi-square rejects the T=1 counts against the T=0.5 distribution: "
       "chi2 = %.1f, p = %.3g", stat, pw);

    /* T = 0.5: softmax(l / 0.5) = p^2 / sum p^2 */
    s = sampler(0.5, 0, 1, 99, 6);
    bad = s ? draw(s, L6, 6, N, counts) : N;
    bl_sampler_free(s);
    pv = chisq(counts, p2, 6, &stat, &df);
    ok(bad == 0 && pv > P_MIN, "T=0.5, %d draws match p^2 renormalized (p the T=1 "
       "softmax): chi2 = %.2f, df %d, p = %.3g", N, stat, df, pv);
    pw = chisq(counts, p1, 6, &stat, &df);
    ok(pw < P_MIN, "chi-square rejects the T=0.5 counts against the T=1 distribution: "
       "chi2 = %.1f, p = %.3g", stat, pw);
}

/* ---------------------------------------------------------------- top-k */

static void check_restricted(const char *what, const float *l, int V, double T, int64_t top_k,
                             double top_p, const int *allowed, long N, uint64_t seed)
{
    double p[MAXV], q[MAXV], z = 0, stat;
    long counts[MAXV] = {0};
    int df, n_allowed = 0;
    softmax_ref(l, V, T, p);
    for (int i = 0; i < V; i++) {
        q[i] = allowed[i] ? p[i] : 0;
        z += q[i];
        n_allowed += allowed[i] != 0;
    }
    for (int i = 0; i < V; i++)
        q[i] /= z;
    bl_sampler *s = sampler(T, top_k, top_p, seed, V);
    float copy[MAXV];
    memcpy(copy, l, (size_t)V * sizeof *l);
    long bad = s ? draw(s, copy, V, N, counts) : N;
    bl_sampler_free(s);
    long out = outside(counts, allowed, V);
    int missing = 0;
    for (int i = 0; i < V; i++)
        if (allowed[i] && counts[i] == 0)
            missing++;
    double pv = chisq(counts, q, V, &stat, &df);
    ok(bad == 0 && out == 0 && missing == 0 && pv > P_MIN,
       "%s: %ld draws, %ld outside the %d allowed tokens, %d allowed never drawn; "
       "chi2 vs renormalized softmax = %.2f, df %d, p = %.3g", what, N, out, n_allowed,
       missing, stat, df, pv);
    ok(memcmp(copy, l, (size_t)V * sizeof *l) == 0, "%s: logits unchanged by sampling", what);
}

static void test_top_k(void)
{
    /* the 3 largest of L6 are ids 1 (2.5), 4 (2.0), 0 (1.0) */
    static const int allow3[6] = {1, 1, 0, 0, 1, 0};
    check_restricted("top_k 3, T=1", L6, 6, 1, 3, 1, allow3, 200000, 31337);
    check_restricted("top_k 3, T=2", L6, 6, 2, 3, 1, allow3, 200000, 31338);
    /* ties are ordered by id: of the equal logits at 1 and 3, id 1 is kept */
    static const float tie[5] = {2.0f, 1.0f, 2.0f, 1.0f, 0.0f};
    static const int allow_tie[5] = {1, 1, 1, 0, 0};
    check_restricted("top_k 3 with a tie at the cut (ids 1 and 3), T=1: keeps 0, 2, 1", tie, 5,
                     1, 3, 1, allow_tie, 200000, 4242);
    /* top_k >= V is no limit */
    static const int all6[6] = {1, 1, 1, 1, 1, 1};
    check_restricted("top_k 6 = V, T=1", L6, 6, 1, 6, 1, all6, 100000, 555);
    check_restricted("top_k 1000 > V, T=1", L6, 6, 1, 1000, 1, all6, 100000, 556);
}

/* ---------------------------------------------------------------- top-p */

static void test_top_p(void)
{
    double p[6], cum[6];
    int order[6];
    softmax_ref(L6, 6, 1.0, p);
    order_ref(p, 6, order);
    double c = 0;
    for (int k = 0; k < 6; k++)
        cum[k] = c += p[order[k]];   /* mass of the k+1 most probable tokens */
    diag("T=1 probabilities by rank: %.4f %.4f %.4f %.4f %.4f %.4f; prefix mass %.4f %.4f "
         "%.4f %.4f %.4f", p[order[0]], p[order[1]], p[order[2]], p[order[3]], p[order[4]],
         p[order[5]], cum[0], cum[1], cum[2], cum[3], cum[4]);

    /* Just below the mass of the k most probable tokens, k tokens reach it;
     * just above, k + 1 are needed.  The margin 1e-3 is far above the
     * float rounding of top_p and of the probabilities (~1e-7). */
    for (int k = 1; k <= 6; k++) {
        for (int side = -1; side <= 1; side += 2) {
            double top_p = cum[k - 1] + side * 1e-3;
            if (top_p > 1)
                continue;
            int size = side < 0 ? k : k + 1;
            int allowed[6] = {0};
            for (int j = 0; j < size; j++)
                allowed[order[j]] = 1;
            char what[160];
            snprintf(what, sizeof what, "top_p %.4f (%s the mass %.4f of the top %d), T=1: "
                     "the top %d tokens", top_p, side < 0 ? "just below" : "just above",
                     cum[k - 1], k, size);
            check_restricted(what, L6, 6, 1, 0, top_p, allowed, 50000, 900 + (uint64_t)k);
        }
    }

    /* top_k then top_p.  The header applies top_p after restricting to
     * top_k; whether the mass is measured before or after renormalizing
     * over the top_k tokens, these numbers give the same set (asserted). */
    double zk = 0;
    for (int j = 0; j < 4; j++)
        zk += p[order[j]];
    int set_renorm = 0, set_global = 0;
    double cr = 0, cg = 0;
    for (int j = 0; j < 4; j++) {
        cr += p[order[j]] / zk;
        cg += p[order[j]];
        if (!set_renorm && cr >= 0.9)
            set_renorm = j + 1;
        if (!set_global && cg >= 0.9)
            set_global = j + 1;
    }
    if (set_renorm != set_global || set_renorm == 0) {
        skip(2, "top_k 4 + top_p 0.9: the two readings of the header differ for these logits");
    } else {
        int allowed[6] = {0};
        for (int j = 0; j < set_renorm; j++)
            allowed[order[j]] = 1;
        char what[128];
        snprintf(what, sizeof what, "top_k 4 and top_p 0.9, T=1: the top %d tokens", set_renorm);
        check_restricted(what, L6, 6, 1, 4, 0.9, allowed, 100000, 77);
    }

    /* temperature applies before top_p: at T=0.5 the top token alone has
     * mass p1^2 / sum p^2 */
    double p2[6];
    softmax_ref(L6, 6, 0.5, p2);
    double top_p = p2[order[0]] - 1e-3;
    int allowed1[6] = {0};
    allowed1[order[0]] = 1;
    if (!(top_p > cum[0] + 0.05))
        diag("test data: T=0.5 should put clearly more mass on the top token (%.4f vs %.4f)",
             p2[order[0]], cum[0]);
    {
        bl_sampler *s = sampler(0.5, 0, top_p, 13, 6);
        long counts[MAXV] = {0};
        long bad = s ? draw(s, L6, 6, 20000, counts) : 20000;
        bl_sampler_free(s);
        long out = outside(counts, allowed1, 6);
        ok(bad == 0 && out == 0 && top_p > cum[0] + 0.05, "T=0.5, top_p %.4f (below the top token's T=0.5 mass, above "
           "its T=1 mass %.4f): only token %d, %ld of 20000 draws outside", top_p, cum[0],
           order[0], out);
    }
}

/* ---------------------------------------------------------------- alloc */

static void test_alloc(void)
{
    struct bl_sampler_params d = bl_sampler_default_params();
    ok(d.temperature == 1.0f && d.top_k == 0 && d.top_p == 1.0f && d.seed == 42,
       "default params: T %g, top_k %lld, top_p %g, seed %llu (want 1, 0, 1, 42)",
       d.temperature, (long long)d.top_k, d.top_p, (unsigned long long)d.seed);

    static const struct {
        float T;
        int64_t k;
        float p;
        int64_t V;
        const char *what;
    } bad[] = {
        {-1.0f, 0, 1.0f, 6, "temperature -1"},
        {-1e-30f, 0, 1.0f, 6, "temperature -1e-30"},
        {NAN, 0, 1.0f, 6, "temperature NaN"},
        {1.0f, 0, 0.0f, 6, "top_p 0"},
        {1.0f, 0, -0.5f, 6, "top_p -0.5"},
        {1.0f, 0, 1.0000001f, 6, "top_p 1 + 2^-23"},
        {1.0f, 0, 2.0f, 6, "top_p 2"},
        {1.0f, 0, NAN, 6, "top_p NaN"},
        {1.0f, -1, 1.0f, 6, "top_k -1"},
        {1.0f, INT64_MIN, 1.0f, 6, "top_k INT64_MIN"},
        {1.0f, 0, 1.0f, 0, "n_vocab 0"},
        {1.0f, 0, 1.0f, -3, "n_vocab -3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct bl_sampler_params sp = d;
        sp.temperature = bad[i].T;
        sp.top_k = bad[i].k;
        sp.top_p = bad[i].p;
        bl_err err;
        memset(&err, 0x55, sizeof err);
        err.msg[sizeof err.msg - 1] = 0;
        bl_sampler *s = bl_sampler_alloc(&sp, bad[i].V, &err);
        bl_sampler *s2 = bl_sampler_alloc(&sp, bad[i].V, NULL);
        int good = !s && !s2 && err.code == BL_EINVAL && err.msg[0] && err.msg[0] != 0x55;
        ok(good, "bl_sampler_alloc rejects %s: NULL, code %d (want %d), message '%s'; "
           "also with err NULL", bad[i].what, err.code, BL_EINVAL, s ? "" : err.msg);
        bl_sampler_free(s);
        bl_sampler_free(s2);
    }

    static const struct {
        float T;
        int64_t k;
        float p;
        const char *what;
    } good[] = {
        {0.0f, 0, 1.0f, "temperature 0"},
        {1.0f, 0, 1.0f, "top_p 1"},
        {1.0f, 0, 1e-7f, "top_p 1e-7"},
        {2.0f, 0, 1.0f, "temperature 2, top_k 0 (no limit)"},
        {1e-3f, 5, 0.5f, "T 0.001, top_k 5, top_p 0.5"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct bl_sampler_params sp = d;
        sp.temperature = good[i].T;
        sp.top_k = good[i].k;
        sp.top_p = good[i].p;
        bl_err err = {0};
        bl_sampler *s = bl_sampler_alloc(&sp, 6, &err);
        int32_t t = s ? bl_sampler_sample(s, L6) : -1;
        ok(s && t >= 0 && t < 6, "bl_sampler_alloc accepts %s (%s) and samples token %d",
           good[i].what, s ? "ok" : err.msg, t);
        bl_sampler_free(s);
    }
    /* a tiny top_p keeps only the most probable token */
    {
        bl_sampler *s = sampler(1, 0, 1e-7, 3, 6);
        long counts[MAXV] = {0};
        long bad_ids = s ? draw(s, L6, 6, 5000, counts) : 5000;
        bl_sampler_free(s);
        ok(bad_ids == 0 && counts[1] == 5000, "top_p 1e-7 keeps only the argmax: %ld of 5000 "
           "draws were token 1", counts[1]);
    }
}

int main(void)
{
    test_argmax();
    test_greedy();
    test_seeds();
    test_temperature();
    test_top_k();
    test_top_p();
    test_alloc();
    return done_testing();
}
