/* tests/test-report.c: bl_report_compute() on synthetic traces whose
 * answers are known in closed form (TAP).
 *
 * The traces are written record by record (PRMT-less: the report reads
 * only the header, STAT and TENS), so every number the report should find
 * is fixed by construction:
 *   - rows +-sqrt(d l_i) q_i, q_i the columns of a random orthogonal Q,
 *     each prompt holding every pair: the population covariance is exactly
 *     Q diag(l) Q^T, so the eigenvalues are l, and the participation
 *     ratio, effective rank, c90/c99 and the Gaussian capacity follow by
 *     arithmetic on l;
 *   - next tokens cycling through 4 ids: H_unigram(next) = 2 bits;
 *   - entropies 0 .. N-1 in a shuffled order: min, median, max and mean;
 *   - identical prompts: every bootstrap interval of zero width;
 *   - prompts whose mean entropies differ: the interval of the mean
 *     entropy against 1.96 standard errors of the prompt means;
 *   - the default noise floor against the rounding variance recomputed
 *     with frexp;
 * and the same prompts as one trace, as two, with 1 and 2 threads, and
 * with too little memory for a moment per prompt, give the same numbers.
 * Damaged records are refused with the chunk, its offset and the problem. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <bitlens/bitlens.h>
#include "tap.h"
#include "testutil.h"

#define D 8     /* width of the synthetic stream */
#define V 16    /* vocabulary */

static const double lam[D] = {8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625};
static double Q[D][D];    /* orthonormal columns */
static char *dir;

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}

static void putf(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u);
}

/* Q: Gram-Schmidt (twice) on Gaussian columns */
static void make_q(gsl_rng *g)
{
    for (int j = 0; j < D; j++) {
        for (int i = 0; i < D; i++)
            Q[i][j] = gsl_ran_gaussian(g, 1.0);
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < j; k++) {
                double dot = 0;
                for (int i = 0; i < D; i++)
                    dot += Q[i][k] * Q[i][j];
                for (int i = 0; i < D; i++)
                    Q[i][j] -= dot * Q[i][k];
            }
        double n = 0;
        for (int i = 0; i < D; i++)
            n += Q[i][j] * Q[i][j];
        for (int i = 0; i < D; i++)
            Q[i][j] /= sqrt(n);
    }
}

/* What a synthetic trace holds. */
struct syn {
    int P;                  /* prompts in the header */
    int first, count;       /* the prompts written: first .. first+count-1
                               (their index in this trace: 0 .. count-1) */
    int same;               /* every prompt alike */
    int damage;             /* 0, or which record to spoil (see write_trace) */
};

#define N_ROWS (2 * D)   /* rows per prompt: every +- pair */

/* The entropy of row i of (global) prompt p. */
static float entropy_of(const struct syn *s, int p, int i)
{
    if (s->same)
        return (float)(0.25 * i);
    /* prompt means differ: 0.1 p + a pattern of mean 0.5 */
    return (float)(0.1 * p + (i % 2 ? 0.75 : 0.25));
}

static char *header(int P, const char *dtype)
{
    char *h = malloc(4096 + 8 * (size_t)P);
    int n = sprintf(h, "{\"prompts\":[");
    for (int p = 0; p < P; p++)
        n += sprintf(h + n, "%s\"p%d\"", p ? "," : "", p);
    sprintf(h + n,
            "],\"recorded\":{\"top_k\":0,\"n_layers\":1,\"n_vocab\":%d,\"n_ctx\":64,\"lens\":false,"
            "\"dtype\":\"%s\",\"hooks\":[{\"name\":\"blocks.0.hook_resid_post\",\"kind\":%d,\"layer\":0,"
            "\"width\":%d}]},\"model\":{\"path\":\"none.bin\",\"name\":\"synthetic\",\"config\":{\"dim\":%d,"
            "\"n_heads\":1}}}",
            V, dtype, BL_HOOK_RESID_POST, D, D);
    return h;
}

/* Damage: 1 a TENS record naming a prompt past the header's, 2 a row width
 * unlike the header's, 3 a NaN in a row, 4 a token id past the vocabulary,
 * 5 a hook index past the header's, 6 positions past n_ctx. */
static char *write_trace(const char *name, const struct syn *s)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    char *h = header(s->count, "f32");
    bl_err err;
    bl_trace_writer *w;
    int rc = bl_trace_writer_open(&w, path, h, BL_TRACE_FORCE, &err);
    free(h);
    if (rc) {
        diag("%s: %s", path, err.msg);
        exit(1);
    }
    for (int q = 0; q < s->count; q++) {
        int p = s->first + q;
        unsigned char st[24 + N_ROWS * 28];
        put32(st, (uint32_t)q);
        put32(st + 4, 0);
        put64(st + 8, 0);
        put64(st + 16, N_ROWS);
        for (int i = 0; i < N_ROWS; i++) {
            unsigned char *r = st + 24 + 28 * i;
            int tok = (i + 3 * p) % 4, next = i + 1 < N_ROWS ? (i + 1 + 3 * p) % 4 : -1;
            if (s->damage == 4 && q == 1 && i == 2)
                tok = V;
            put32(r, (uint32_t)tok);
            put32(r + 4, (uint32_t)next);
            putf(r + 8, entropy_of(s, p, i));
            putf(r + 12, entropy_of(s, p, i));
            putf(r + 16, 1.0f);
            put32(r + 20, 0);
            putf(r + 24, 0.5f);
        }
        rc = bl_trace_writer_put(w, BL_CHUNK_STATS, st, sizeof st, 0, 0, &err);

        unsigned char te[40 + N_ROWS * (D + 1) * 4];
        int width = s->damage == 2 && q == 1 ? D + 1 : D;
        memset(te, 0, 40);
        put32(te, (uint32_t)(s->damage == 1 && q == 1 ? s->count : q));
        put32(te + 4, s->damage == 5 && q == 1 ? 1 : 0);
        put32(te + 8, BL_F32);
        put64(te + 16, s->damage == 6 && q == 1 ? 60 : 0);
        put64(te + 24, N_ROWS);
        put64(te + 32, (uint64_t)width);
        for (int i = 0; i < N_ROWS; i++) {
            int j = i / 2;
            double a = (i % 2 ? -1 : 1) * sqrt(D * lam[j]);
            for (int c = 0; c < width; c++)
                putf(te + 40 + 4 * ((size_t)i * width + c), c < D ? (float)(a * Q[c][j]) : 0.0f);
        }
        if (s->damage == 3 && q == 1)
            putf(te + 40 + 4 * 5, NAN);
        if (!rc)
            rc = bl_trace_writer_put(w, BL_CHUNK_TENSOR, te, 40 + (size_t)N_ROWS * width * 4, 40, 4, &err);
        if (rc) {
            diag("%s: %s", path, err.msg);
            exit(1);
        }
    }
    if (bl_trace_writer_close(w, NULL, &err)) {
        diag("%s: %s", path, err.msg);
        exit(1);
    }
    return path;
}

/* bl_report_compute over the named traces; rc, and the message in err */
static int report(char **paths, int n, const struct bl_report_params *p, struct bl_report *out, bl_err *err)
{
    bl_trace_reader *rd[4];
    int rc = 0, k = 0;
    for (; k < n && !rc; k++)
        if ((rc = bl_trace_reader_open(&rd[k], paths[k], err)))
            break;
    if (!rc)
        rc = bl_report_compute(rd, n, p, out, err);
    for (int i = 0; i < k; i++)
        bl_trace_reader_free(rd[i]);
    return rc;
}

static double rel(double a, double b)
{
    return fabs(a - b) / (fabs(b) > 1e-300 ? fabs(b) : 1.0);
}

static int same_est(const struct bl_estimate *a, const struct bl_estimate *b, double tol)
{
    return rel(a->value, b->value) <= tol && rel(a->lo, b->lo) <= tol && rel(a->hi, b->hi) <= tol;
}

/* The rounding variance of a float, as DESIGN.md defines the floor (f32:
 * 24 significand bits): an independent frexp version of bl_rounding. */
static double round_var(float x)
{
    if (x == 0.0f || fabsf(x) < 0x1p-126f)
        return ldexp(1.0, 2 * (-126 + 1 - 24)) / 12.0;
    int e;
    double m = frexp(fabs((double)x), &e);   /* x = m 2^e, m in [0.5, 1) */
    double u = ldexp(1.0, e - 24);            /* = 2^((e-1) + 1 - 24) */
    return m == 0.5 ? u * u / 16.0 : u * u / 12.0;
}

static void test_known(void)
{
    enum { P = 40 };
    struct syn s = {P, 0, P, 0, 0};
    char *one = write_trace("one.blt", &s);
    struct bl_report_params p = bl_report_default_params();
    p.k = 0;
    p.bootstrap = 400;
    p.n_threads = 2;
    p.noise_var = 0.01;
    struct bl_report r;
    bl_err err;
    int rc = report(&one, 1, &p, &r, &err);
    ok(rc == 0, "a synthetic trace of %d prompts: report computed%s%s", P, rc ? ": " : "", rc ? err.msg : "");
    if (rc)
        return;
    ok(r.n_prompts == P && r.n_positions == P * N_ROWS && r.n_hooks == 1 && r.hooks[0].rows == P * N_ROWS,
       "%" PRId64 " prompts, %" PRId64 " positions, %" PRId64 " hook of %" PRId64 " rows", r.n_prompts,
       r.n_positions, r.n_hooks, r.hooks[0].rows);
    ok(fabs(r.log2_vocab - 4.0) < 1e-15, "log2|V| = 4 (%.17g)", r.log2_vocab);
    ok(fabs(r.h_unigram_next - 2.0) < 1e-12, "next tokens cycling through 4 ids: H_unigram = 2 bits (%.15g)",
       r.h_unigram_next);

    const struct bl_report_hook *h = &r.hooks[0];
    double mx = 0, sum = 0, sum2 = 0, ent = 0, cap = 0;
    for (int i = 0; i < D; i++) {
        mx = fmax(mx, rel(h->spec.eig[i], lam[i]));
        sum += lam[i];
        sum2 += lam[i] * lam[i];
        cap += 0.5 * log2(1 + lam[i] / 0.01);
    }
    for (int i = 0; i < D; i++)
        ent -= lam[i] / sum * log(lam[i] / sum);
    ok(h->spec.eig && mx < 1e-5, "eigenvalues 8, 4, ..., 1/16 of Q diag(l) Q^T: worst relative error %.2e", mx);
    ok(rel(h->participation.value, sum * sum / sum2) < 1e-5, "participation ratio %.6f (want %.6f)",
       h->participation.value, sum * sum / sum2);
    ok(rel(h->effective_rank.value, exp(ent)) < 1e-5, "effective rank %.6f (want %.6f)", h->effective_rank.value,
       exp(ent));
    int64_t c90 = 0, c99 = 0;
    for (double acc = 0; c99 < D && acc < 0.99 * sum; c99++)
        acc += lam[c99];
    for (double acc = 0; c90 < D && acc < 0.9 * sum; c90++)
        acc += lam[c90];
    ok(h->spec.c90 == c90 && h->spec.c99 == c99, "c90 %" PRId64 ", c99 %" PRId64 " (want %" PRId64 " and %" PRId64 ")",
       h->spec.c90, h->spec.c99, c90, c99);
    ok(rel(h->capacity.value, cap) < 1e-5 && h->noise_var == 0.01,
       "capacity at noise 0.01: %.6f bits (want 1/2 sum log2(1 + l/v) = %.6f)", h->capacity.value, cap);
    ok(rel(h->capacity_ratio.value, h->capacity.value / r.mean_entropy.value) < 1e-12,
       "capacity ratio = capacity / mean token entropy");

    /* the entropy: mean over prompts of 0.1 p + 0.5 */
    double want = 0.1 * (P - 1) / 2.0 + 0.5;
    ok(rel(r.mean_entropy.value, want) < 1e-6 && rel(r.entropy.mean, want) < 1e-6,
       "mean token entropy %.6f (want %.6f)", r.mean_entropy.value, want);
    ok(r.entropy.min == 0.25f && rel(r.entropy.max, (float)(0.1 * (P - 1) + 0.75)) < 1e-7,
       "entropy min %.4f and max %.4f", r.entropy.min, r.entropy.max);
    /* bootstrap of a mean of P equal-sized prompt means m_p = 0.1 p + 0.5:
     * standard error sd(m) / sqrt(P), sd the population one */
    double var = 0;
    for (int q = 0; q < P; q++)
        var += (0.1 * q + 0.5 - want) * (0.1 * q + 0.5 - want);
    double se = sqrt(var / P / P);
    double lo = r.mean_entropy.lo, hi = r.mean_entropy.hi;
    ok(lo < want && want < hi && fabs((hi - lo) / (2 * 1.96 * se) - 1) < 0.15,
       "mean entropy interval %.4f..%.4f: width %.4f against 2 x 1.96 standard errors %.4f (within 15%%)", lo, hi,
       hi - lo, 2 * 1.96 * se);
    ok(isnan(h->participation.lo) || (h->participation.lo <= h->participation.value + 1e-9 &&
                                      h->participation.value <= h->participation.hi + 1e-9),
       "participation interval %.6f..%.6f holds the estimate (identical prompts' spectra)", h->participation.lo,
       h->participation.hi);

    /* default floor: the rounding variance of the stored values */
    struct bl_report_params pd = p;
    pd.noise_var = 0;
    pd.bootstrap = 0;
    struct bl_report rd;
    rc = report(&one, 1, &pd, &rd, &err);
    double fl = 0;
    int64_t nv = 0;
    for (int q = 0; q < P; q++)
        for (int i = 0; i < N_ROWS; i++)
            for (int c = 0; c < D; c++, nv++) {
                double a = (i % 2 ? -1 : 1) * sqrt(D * lam[i / 2]);
                fl += round_var((float)(a * Q[c][i / 2]));
            }
    fl /= (double)nv;
    ok(rc == 0 && rel(rd.hooks[0].noise_var, fl) < 1e-9,
       "default floor %.6e: the mean rounding variance of the stored f32 values (%.6e, from frexp)",
       rc ? NAN : rd.hooks[0].noise_var, fl);
    double cd = 0;
    for (int i = 0; i < D; i++)
        cd += 0.5 * log2(1 + lam[i] / fl);
    ok(rc == 0 && rel(rd.hooks[0].capacity.value, cd) < 1e-5, "capacity at that floor %.4f bits (want %.4f)",
       rc ? NAN : rd.hooks[0].capacity.value, cd);
    ok(rc == 0 && rd.bootstrap == 0 && isnan(rd.mean_entropy.lo) && isnan(rd.hooks[0].capacity.hi),
       "--bootstrap 0: no intervals");
    if (!rc)
        bl_report_release(&rd);

    /* the same prompts as two traces */
    struct syn a = {P, 0, 15, 0, 0}, b = {P, 15, P - 15, 0, 0};
    char *two[2] = {write_trace("a.blt", &a), write_trace("b.blt", &b)};
    struct bl_report r2;
    rc = report(two, 2, &p, &r2, &err);
    ok(rc == 0, "the same prompts in two traces: report computed%s%s", rc ? ": " : "", rc ? err.msg : "");
    if (!rc) {
        double me = 0;
        for (int i = 0; i < D; i++)
            me = fmax(me, rel(r2.hooks[0].spec.eig[i], h->spec.eig[i]));
        ok(me < 1e-12 && r2.n_prompts == P && r2.n_positions == r.n_positions,
           "two traces: the eigenvalues of one (worst %.1e), %" PRId64 " prompts", me, r2.n_prompts);
        ok(same_est(&r2.mean_entropy, &r.mean_entropy, 1e-12) &&
               same_est(&r2.hooks[0].capacity, &h->capacity, 1e-9) &&
               same_est(&r2.hooks[0].participation, &h->participation, 1e-9),
           "two traces: mean entropy, capacity and PR with their intervals as one trace's");
        ok(strstr(r2.trace_name, "a.blt") && strstr(r2.trace_name, "b.blt"), "the report names both: %s",
           r2.trace_name);
        bl_report_release(&r2);
    } else {
        skip(3, "no report of two traces");
    }

    /* one thread */
    struct bl_report_params p1 = p;
    p1.n_threads = 1;
    struct bl_report r1;
    rc = report(&one, 1, &p1, &r1, &err);
    ok(rc == 0 && memcmp(r1.hooks[0].spec.eig, h->spec.eig, D * sizeof(double)) == 0 &&
           memcmp(&r1.hooks[0].capacity, &h->capacity, sizeof h->capacity) == 0 &&
           memcmp(&r1.mean_entropy, &r.mean_entropy, sizeof r.mean_entropy) == 0,
       "one thread and two: the same bits");
    if (!rc)
        bl_report_release(&r1);

    /* memory for fewer moments than prompts: groups; points unchanged */
    struct bl_report_params pm = p;
    pm.memory = 16384;
    struct bl_report rm;
    rc = report(&one, 1, &pm, &rm, &err);
    if (rc == 0) {
        double me = 0;
        for (int i = 0; i < D; i++)
            me = fmax(me, rel(rm.hooks[0].spec.eig[i], h->spec.eig[i]));
        for (char *c = rm.notes; *c; c++)
            if (*c == '\n')
                *c = ' ';
        ok(rm.n_units < P && strstr(rm.notes, "groups") != NULL,
           "16 KiB of memory: %" PRId64 " resampling groups, and a note: %s", rm.n_units, rm.notes);
        ok(me < 1e-9 && rel(rm.hooks[0].capacity.value, h->capacity.value) < 1e-9,
           "grouped: the same eigenvalues (worst %.1e) and capacity", me);
        bl_report_release(&rm);
    } else {
        ok(0, "16 KiB of memory: %s", err.msg);
        skip(1, "no grouped report");
    }
    bl_report_release(&r);
    free(two[0]);
    free(two[1]);
    free(one);
}

static void test_identical(void)
{
    struct syn s = {12, 0, 12, 1, 0};
    char *path = write_trace("same.blt", &s);
    struct bl_report_params p = bl_report_default_params();
    p.k = 0;
    p.bootstrap = 100;
    p.noise_var = 0.01;
    struct bl_report r;
    bl_err err;
    int rc = report(&path, 1, &p, &r, &err);
    if (rc) {
        ok(0, "identical prompts: %s", err.msg);
        skip(1, "no report");
        free(path);
        return;
    }
    const struct bl_report_hook *h = &r.hooks[0];
    ok(r.mean_entropy.lo == r.mean_entropy.value && r.mean_entropy.hi == r.mean_entropy.value,
       "identical prompts: the mean entropy's interval is the point %.6f", r.mean_entropy.value);
    ok(rel(h->capacity.lo, h->capacity.value) < 1e-9 && rel(h->capacity.hi, h->capacity.value) < 1e-9 &&
           rel(h->participation.lo, h->participation.value) < 1e-9 &&
           rel(h->effective_rank.hi, h->effective_rank.value) < 1e-9,
       "identical prompts: capacity, PR and erank intervals of zero width (capacity %.6f..%.6f)", h->capacity.lo,
       h->capacity.hi);
    /* entropies 0, 0.25, ..., 3.75 in every prompt */
    ok(r.entropy.min == 0 && r.entropy.max == 3.75 && fabs(r.entropy.median - 1.875) < 1e-12 &&
           fabs(r.entropy.mean - 1.875) < 1e-12,
       "entropy percentiles of 0 .. 3.75: min 0, median %.4f, max %.4f", r.entropy.median, r.entropy.max);
    bl_report_release(&r);
    free(path);
}

static void test_damage(void)
{
    static const struct {
        int damage;
        const char *chunk, *what;
    } cases[] = {
        {1, "chunk 3 (TENS) at offset", "prompt index beyond the header's prompts"},
        {2, "chunk 3 (TENS) at offset", "row width differs from the header's"},
        {3, "chunk 3 (TENS) at offset", "not finite (prompt 1)"},
        {4, "chunk 2 (STAT) at offset", "token id outside the vocabulary"},
        {5, "chunk 3 (TENS) at offset", "hook index beyond the header's recorded.hooks"},
        {6, "chunk 3 (TENS) at offset", "positions beyond the header's n_ctx"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct syn s = {3, 0, 3, 0, cases[i].damage};
        char name[32];
        snprintf(name, sizeof name, "bad%d.blt", cases[i].damage);
        char *path = write_trace(name, &s);
        struct bl_report_params p = bl_report_default_params();
        p.k = 0;
        p.bootstrap = 10;
        struct bl_report r;
        bl_err err;
        memset(&err, 0, sizeof err);
        int rc = report(&path, 1, &p, &r, &err);
        ok(rc == BL_EFORMAT || (cases[i].damage == 3 && rc == BL_EINVAL),
           "damage %d: refused (rc %d)", cases[i].damage, rc);
        ok(rc && strstr(err.msg, name) && strstr(err.msg, cases[i].chunk) &&
               strstr(err.msg, cases[i].what),
           "damage %d: '%s'", cases[i].damage, rc ? err.msg : "(no error)");
        if (!rc)
            bl_report_release(&r);
        free(path);
    }
    /* traces recorded differently do not merge */
    struct syn a = {3, 0, 3, 0, 0};
    char *p2[2] = {write_trace("m1.blt", &a), NULL};
    char *h = header(3, "f16");
    char path[4096];
    snprintf(path, sizeof path, "%s/m2.blt", dir);
    bl_trace_writer *w;
    bl_err err;
    int rc = bl_trace_writer_open(&w, path, h, BL_TRACE_FORCE, &err);
    rc = rc ? rc : bl_trace_writer_close(w, NULL, &err);
    free(h);
    p2[1] = path;
    struct bl_report_params p = bl_report_default_params();
    p.k = 0;
    struct bl_report r;
    rc = rc ? rc : report(p2, 2, &p, &r, &err);
    ok(rc == BL_EMISMATCH && strstr(err.msg, "m1.blt and ") && strstr(err.msg, "m2.blt") &&
           strstr(err.msg, "record them alike"),
       "f32 and f16 traces: '%s'",
       rc ? err.msg : "merged");
    if (!rc)
        bl_report_release(&r);
    free(p2[0]);
}

int main(void)
{
    dir = tmp_dir();
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 20261128);
    make_q(g);
    gsl_rng_free(g);
    test_known();
    test_identical();
    test_damage();
    rm_rf(dir);
    free(dir);
    return done_testing();
}
