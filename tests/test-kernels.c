/* tests/test-kernels.c: the reference kernels against the fast ones, and
 * both against a double-precision computation done here (lib/kernels.c).
 *
 * Error bound.  A dot product of n float terms, evaluated in any order with
 * each product and sum rounded (or fused), satisfies
 *     |fl(sum w_i x_i) - sum w_i x_i| <= gamma_n sum |w_i x_i|,
 *     gamma_n = n u / (1 - n u),  u = FLT_EPSILON / 2
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5;
 * it covers the plain loop, the 4 x 8-lane FMA accumulators, and whatever
 * blocking sgemm uses).  For n u <= 1/2, gamma_n <= 2 n u = n FLT_EPSILON, so
 * we require
 *     |y - y_double| <= C * cols * FLT_EPSILON * sum_i |w_i x_i|,  C = 1,
 * which is the worst case itself, with no fudge.  The double reference sums
 * exact products (an f32 times an f32 fits in a double) with error about
 * cols 2^-53 sum|w x|, a billionth of the bound.  Two float results that
 * each meet the bound differ by at most twice it.
 *
 * Weights and inputs have random signs and magnitudes over several octaves
 * (f16 weights include subnormals), so a transposed matrix, a wrong row
 * stride or a dropped tail element moves the result by far more than the
 * bound. */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/tensor.h>
#include "kernels.h"
#include "tap.h"

#define C_BOUND 1.0

static const int64_t COLS[] = {1, 7, 8, 31, 33, 100, 288};
static const int64_t ROWS[] = {1, 3, 64, 513};
static const int64_t BATCH[] = {1, 2, 17};
static const int TYPES[] = {BL_F32, BL_F16, BL_BF16};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Sizes large enough (rows * cols >= 65536) that bli_matvec really forks;
 * checked in addition to the grid above for the thread-count test. */
static const int64_t BIG[][2] = {{513, 288}, {2049, 33}};

/* ---------------------------------------------------------------- data */

static uint64_t rng_state = 0x6b65726e656c73u;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rng_uniform(void)
{
    return (double)(rng_next() >> 11) * 0x1p-53;
}

/* A float of random sign with magnitude 2^[lo, hi). */
static float rand_float(double lo, double hi)
{
    double mag = exp2(lo + (hi - lo) * rng_uniform());
    return (float)(rng_next() & 1 ? -mag : mag);
}

/* Random f16 bits: sign, exponent field 9..17 (2^-6 .. 2^3), 1 in 16 a
 * subnormal; the value read from the fields in double. */
static uint16_t rand_f16(double *val)
{
    uint64_t r = rng_next();
    unsigned s = r & 1, m = (r >> 1) & 0x3ff;
    unsigned e = ((r >> 11) & 15) == 0 ? 0 : 9 + (unsigned)((r >> 15) % 9);
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, (int)e - 25);
    *val = s ? -v : v;
    return (uint16_t)(s << 15 | e << 10 | m);
}

/* Random bf16 bits: sign, exponent field 121..130 (2^-6 .. 2^3). */
static uint16_t rand_bf16(double *val)
{
    uint64_t r = rng_next();
    unsigned s = r & 1, m = (r >> 1) & 0x7f;
    unsigned e = 121 + (unsigned)((r >> 8) % 10);
    double v = ldexp(128 + m, (int)e - 134);
    *val = s ? -v : v;
    return (uint16_t)(s << 15 | e << 7 | m);
}

/* rows x cols weights of `type` in *W (malloc'd, exactly the bytes the
 * matrix takes) and their values in wd. */
static void *make_weights(int type, int64_t rows, int64_t cols, double *wd)
{
    int64_t n = rows * cols;
    if (type == BL_F32) {
        float *w = malloc((size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++) {
            w[i] = rand_float(-4, 2);
            wd[i] = w[i];
        }
        return w;
    }
    uint16_t *w = malloc((size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++)
        w[i] = type == BL_F16 ? rand_f16(&wd[i]) : rand_bf16(&wd[i]);
    return w;
}

static float *make_inputs(int64_t n)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = rand_float(-3, 3);
    return x;
}

/* Y[i][r] = sum_c W[r][c] X[i][c] in double, and A[i][r] = sum_c |W X|. */
static void ref_double(const double *wd, const float *X, double *Y, double *A, int64_t n,
                       int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0, a = 0;
            for (int64_t c = 0; c < cols; c++) {
                double p = wd[r * cols + c] * (double)X[i * cols + c];
                s += p;
                a += fabs(p);
            }
            Y[i * rows + r] = s;
            A[i * rows + r] = a;
        }
}

static const char *tname(int type)
{
    return bl_dtype_name(type);
}

/* Worst case seen over a family of comparisons. */
struct worst {
    double ratio;     /* max |err| / bound (must be <= 1) */
    double abs;       /* max |err| */
    int64_t rows, cols, n;
    long count;       /* comparisons made */
};

static void worst_init(struct worst *w)
{
    memset(w, 0, sizeof *w);
}

/* Fold |got - want| against `bound` into w; a NaN counts as infinitely bad. */
static void worst_add(struct worst *w, double got, double want, double bound, int64_t n,
                      int64_t rows, int64_t cols)
{
    double err = fabs(got - want);
    double ratio = err / bound;
    if (isnan(err))
        ratio = err = INFINITY;
    if (w->count++ == 0 || ratio > w->ratio) {
        w->ratio = ratio;
        w->n = n;
        w->rows = rows;
        w->cols = cols;
    }
    if (err > w->abs)
        w->abs = err;
}

static int worst_ok(const struct worst *w)
{
    return w->count > 0 && w->ratio <= 1.0;
}

/* ---------------------------------------------------------------- matvec */

static void test_matvec(int type)
{
    struct worst wref, wfast[2], wpair;
    worst_init(&wref);
    worst_init(&wfast[0]);
    worst_init(&wfast[1]);
    worst_init(&wpair);
    long differ_threads = 0, n_cases = 0;

    int64_t n_sizes = (int64_t)(NELEM(ROWS) * NELEM(COLS) + NELEM(BIG));
    for (int64_t k = 0; k < n_sizes; k++) {
        int64_t rows, cols;
        if (k < (int64_t)(NELEM(ROWS) * NELEM(COLS))) {
            rows = ROWS[k / (int64_t)NELEM(COLS)];
            cols = COLS[k % (int64_t)NELEM(COLS)];
        } else {
            rows = BIG[k - (int64_t)(NELEM(ROWS) * NELEM(COLS))][0];
            cols = BIG[k - (int64_t)(NELEM(ROWS) * NELEM(COLS))][1];
        }
        double *wd = malloc((size_t)(rows * cols) * sizeof *wd);
        void *W = make_weights(type, rows, cols, wd);
        float *x = make_inputs(cols);
        double *yd = malloc((size_t)rows * sizeof *yd), *ad = malloc((size_t)rows * sizeof *ad);
        float *yr = malloc((size_t)rows * sizeof *yr);
        float *y1 = malloc((size_t)rows * sizeof *y1), *y2 = malloc((size_t)rows * sizeof *y2);
        for (int64_t r = 0; r < rows; r++)
            yr[r] = y1[r] = y2[r] = NAN;   /* an unwritten output fails */
        ref_double(wd, x, yd, ad, 1, rows, cols);

        bli_matvec_ref(type, W, x, yr, rows, cols);
        bli_matvec(type, W, x, y1, rows, cols, 1);
        bli_matvec(type, W, x, y2, rows, cols, 2);
        for (int64_t r = 0; r < rows; r++) {
            double bound = C_BOUND * (double)cols * FLT_EPSILON * ad[r];
            worst_add(&wref, yr[r], yd[r], bound, 1, rows, cols);
            worst_add(&wfast[0], y1[r], yd[r], bound, 1, rows, cols);
            worst_add(&wfast[1], y2[r], yd[r], bound, 1, rows, cols);
            worst_add(&wpair, y1[r], yr[r], 2 * bound, 1, rows, cols);
        }
        if (memcmp(y1, y2, (size_t)rows * sizeof *y1) != 0) {
            differ_threads++;
            diag("%s matvec %lld x %lld: 1 and 2 threads give different bits", tname(type),
                 (long long)rows, (long long)cols);
        }
        n_cases++;
        free(wd);
        free(W);
        free(x);
        free(yd);
        free(ad);
        free(yr);
        free(y1);
        free(y2);
    }
    ok(worst_ok(&wref), "bli_matvec_ref %s vs double, %ld sizes: worst |err| / "
       "(cols eps sum|wx|) = %.3g at %lld x %lld, worst |err| %.3g",
       tname(type), n_cases, wref.ratio, (long long)wref.rows, (long long)wref.cols, wref.abs);
    for (int t = 0; t < 2; t++)
        ok(worst_ok(&wfast[t]), "bli_matvec (%s kernel) %s, %d thread%s, vs double: worst "
           "|err| / bound = %.3g at %lld x %lld, worst |err| %.3g", bli_kernel_name(),
           tname(type), t + 1, t ? "s" : "", wfast[t].ratio, (long long)wfast[t].rows,
           (long long)wfast[t].cols, wfast[t].abs);
    ok(worst_ok(&wpair), "bli_matvec vs bli_matvec_ref %s: worst |fast - ref| / (2 bound) "
       "= %.3g at %lld x %lld, worst |diff| %.3g", tname(type), wpair.ratio,
       (long long)wpair.rows, (long long)wpair.cols, wpair.abs);
    ok(differ_threads == 0, "bli_matvec %s gives the same bits with 1 and 2 threads "
       "(%ld sizes, %zu of them large enough to fork): %ld differ", tname(type), n_cases,
       NELEM(BIG) + 1, differ_threads);
}

/* ---------------------------------------------------------------- multi */

/* bli_matvec_multi: several products in one parallel region.  Each row is
 * still one dot product by one thread, so every output must carry the same
 * bits as bli_matvec of that matrix alone, whatever the thread count, and
 * meet the bound against double. */
static void test_matvec_multi(void)
{
    static const struct {
        int type;
        int64_t rows, cols;
    } spec[] = {{BL_F16, 513, 288}, {BL_F32, 3, 7}, {BL_BF16, 64, 33}, {BL_F32, 1, 100},
                {BL_BF16, 2049, 31}};
    enum { K = sizeof spec / sizeof spec[0] };
    struct bli_mv mv[K];
    double *wd[K], *yd[K], *ad[K];
    void *W[K];
    float *x[K], *yone[K];
    for (int k = 0; k < K; k++) {
        int64_t r = spec[k].rows, c = spec[k].cols;
        wd[k] = malloc((size_t)(r * c) * sizeof *wd[k]);
        W[k] = make_weights(spec[k].type, r, c, wd[k]);
        x[k] = make_inputs(c);
        yd[k] = malloc((size_t)r * sizeof *yd[k]);
        ad[k] = malloc((size_t)r * sizeof *ad[k]);
        yone[k] = malloc((size_t)r * sizeof *yone[k]);
        ref_double(wd[k], x[k], yd[k], ad[k], 1, r, c);
        bli_matvec(spec[k].type, W[k], x[k], yone[k], r, c, 1);
        mv[k] = (struct bli_mv){spec[k].type, W[k], x[k], malloc((size_t)r * sizeof(float)), r, c};
    }
    for (int nt = 1; nt <= 2; nt++) {
        struct worst w;
        worst_init(&w);
        int differ = 0;
        for (int k = 0; k < K; k++)
            for (int64_t r = 0; r < mv[k].rows; r++)
                mv[k].y[r] = NAN;
        bli_matvec_multi(mv, K, nt);
        for (int k = 0; k < K; k++) {
            if (memcmp(mv[k].y, yone[k], (size_t)mv[k].rows * sizeof(float)) != 0)
                differ++;
            for (int64_t r = 0; r < mv[k].rows; r++)
                worst_add(&w, mv[k].y[r], yd[k][r],
                          C_BOUND * (double)mv[k].cols * FLT_EPSILON * ad[k][r], 1, mv[k].rows,
                          mv[k].cols);
        }
        ok(differ == 0 && worst_ok(&w), "bli_matvec_multi of %d mixed-type matrices, %d "
           "thread%s: %d outputs differ in bits from bli_matvec alone; vs double worst "
           "|err| / bound = %.3g at %lld x %lld", K, nt, nt > 1 ? "s" : "", differ, w.ratio,
           (long long)w.rows, (long long)w.cols);
    }
    for (int k = 0; k < K; k++) {
        free(wd[k]);
        free(W[k]);
        free(x[k]);
        free(yd[k]);
        free(ad[k]);
        free(yone[k]);
        free(mv[k].y);
    }
}

/* ---------------------------------------------------------------- matmul */

static void test_matmul(int type)
{
    /* scratch (kernels.h: at least n_threads * cols floats, split evenly
     * between the threads): "small" gives each thread 2 rows and a bit, so
     * a 513-row matrix takes many blocks and the last block of a thread can
     * be a single row; "large" gives each thread the whole matrix.  f32
     * never touches it.  Allocated to the exact size, so the sanitizer
     * build catches a write past it. */
    int n_scr = type == BL_F32 ? 1 : 2;
    static const char *scr_name[] = {"small scratch (2 rows per thread)",
                                     "large scratch (all rows per thread)"};

    for (size_t bi = 0; bi < NELEM(BATCH); bi++) {
        int64_t n = BATCH[bi];
        struct worst wref, wfast[2][2], wpair[2][2];
        worst_init(&wref);
        for (int s = 0; s < 2; s++)
            for (int t = 0; t < 2; t++) {
                worst_init(&wfast[s][t]);
                worst_init(&wpair[s][t]);
            }
        int64_t exact_bad = 0, exact_cases = 0;
        for (size_t ri = 0; ri < NELEM(ROWS); ri++)
            for (size_t ci = 0; ci < NELEM(COLS); ci++) {
                int64_t rows = ROWS[ri], cols = COLS[ci];
                double *wd = malloc((size_t)(rows * cols) * sizeof *wd);
                void *W = make_weights(type, rows, cols, wd);
                float *X = make_inputs(n * cols);
                size_t ny = (size_t)(n * rows);
                double *Yd = malloc(ny * sizeof *Yd), *Ad = malloc(ny * sizeof *Ad);
                float *Yr = malloc(ny * sizeof *Yr), *Yf = malloc(ny * sizeof *Yf);
                ref_double(wd, X, Yd, Ad, n, rows, cols);

                for (size_t i = 0; i < ny; i++)
                    Yr[i] = NAN;
                bli_matmul_ref(type, W, X, Yr, n, rows, cols);
                for (size_t i = 0; i < ny; i++) {
                    double bound = C_BOUND * (double)cols * FLT_EPSILON * Ad[i];
                    worst_add(&wref, Yr[i], Yd[i], bound, n, rows, cols);
                }
                for (int s = 0; s < n_scr; s++)
                    for (int t = 0; t < 2; t++) {
                        int nt = t + 1;
                        size_t sf = type == BL_F32 ? 0
                                    : s == 0   ? (size_t)(nt * 2 * cols + 5)
                                               : (size_t)(nt * rows * cols + 7);
                        float *scratch = sf ? malloc(sf * sizeof *scratch) : NULL;
                        for (size_t i = 0; i < ny; i++)
                            Yf[i] = NAN;
                        bli_matmul(type, W, X, Yf, n, rows, cols, scratch, sf, nt);
                        if (s == 0) {   /* bli_matmul_dots: bit for bit n matrix-vector products */
                            float *ym = malloc((size_t)rows * sizeof *ym), *yd = malloc(ny * sizeof *yd);
                            bli_matmul_dots(type, W, X, yd, n, rows, cols, nt);
                            for (int64_t i = 0; i < n; i++) {
                                bli_matvec(type, W, X + i * cols, ym, rows, cols, 3 - nt);
                                exact_bad += memcmp(ym, yd + i * rows, (size_t)rows * sizeof *ym) != 0;
                            }
                            exact_cases++;
                            free(ym);
                            free(yd);
                        }
                        for (size_t i = 0; i < ny; i++) {
                            double bound = C_BOUND * (double)cols * FLT_EPSILON * Ad[i];
                            worst_add(&wfast[s][t], Yf[i], Yd[i], bound, n, rows, cols);
                            worst_add(&wpair[s][t], Yf[i], Yr[i], 2 * bound, n, rows, cols);
                        }
                        free(scratch);
                    }
                free(wd);
                free(W);
                free(X);
                free(Yd);
                free(Ad);
                free(Yr);
                free(Yf);
            }
        ok(exact_bad == 0, "bli_matmul_dots %s n=%lld: bit for bit n bli_matvec calls in %lld cases (1 and 2 "
           "threads against 2 and 1)", tname(type), (long long)n, (long long)exact_cases);
        ok(worst_ok(&wref), "bli_matmul_ref %s n=%lld vs double, %zu sizes: worst |err| / "
           "(cols eps sum|wx|) = %.3g at %lld x %lld, worst |err| %.3g", tname(type),
           (long long)n, NELEM(ROWS) * NELEM(COLS), wref.ratio, (long long)wref.rows,
           (long long)wref.cols, wref.abs);
        for (int s = 0; s < n_scr; s++)
            for (int t = 0; t < 2; t++) {
                const char *sn = type == BL_F32 ? "no scratch" : scr_name[s];
                ok(worst_ok(&wfast[s][t]), "bli_matmul %s n=%lld, %s, %d thread%s, vs double: "
                   "worst |err| / bound = %.3g at %lld x %lld, worst |err| %.3g",
                   tname(type), (long long)n, sn, t + 1, t ? "s" : "", wfast[s][t].ratio,
                   (long long)wfast[s][t].rows, (long long)wfast[s][t].cols, wfast[s][t].abs);
                ok(worst_ok(&wpair[s][t]), "bli_matmul vs bli_matmul_ref %s n=%lld, %s, %d "
                   "thread%s: worst |fast - ref| / (2 bound) = %.3g, worst |diff| %.3g",
                   tname(type), (long long)n, sn, t + 1, t ? "s" : "", wpair[s][t].ratio,
                   wpair[s][t].abs);
            }
    }
}

/* ---------------------------------------------------------------- rmsnorm */

/* Tolerance, relative per element.  sum x^2 over n positive terms: gamma_n
 * <= n u; then /n, +eps, sqrt (which halves the relative error so far and
 * adds u), 1/div, inv*x, w*(...): one u each.  Total <= (n/2 + 6) u; we allow
 * (n/2 + 8) FLT_EPSILON = (n + 16) u, twice that.  The divisor: (n/2 + 3) u,
 * allowed (n/2 + 4) FLT_EPSILON. */
static void test_rmsnorm(void)
{
    static const int64_t sizes[] = {1, 7, 288, 4096};
    static const struct {
        double lo, hi;
        float eps;
        const char *what;
    } scales[] = {
        {-3, 3, 1e-5f, "x ~ 2^[-3,3), eps 1e-5"},
        {-16, -12, 1e-5f, "x ~ 2^[-16,-12), eps 1e-5 dominates mean(x^2)"},
        {6, 10, 1e-6f, "x ~ 2^[6,10), eps 1e-6"},
    };
    for (size_t si = 0; si < NELEM(scales); si++) {
        double worst_o = 0, worst_d = 0, worst_abs = 0;
        int64_t worst_n = 0;
        for (size_t k = 0; k < NELEM(sizes); k++) {
            int64_t n = sizes[k];
            float *x = malloc((size_t)n * sizeof *x), *w = malloc((size_t)n * sizeof *w);
            float *o = malloc((size_t)n * sizeof *o);
            for (int64_t i = 0; i < n; i++) {
                x[i] = rand_float(scales[si].lo, scales[si].hi);
                w[i] = rand_float(-2, 1);
                o[i] = NAN;
            }
            double ss = 0;
            for (int64_t i = 0; i < n; i++)
                ss += (double)x[i] * x[i];
            double div = sqrt(ss / (double)n + (double)scales[si].eps);
            float got_div = bli_rmsnorm(o, x, w, n, scales[si].eps);
            double rd = fabs(got_div - div) / ((double)n / 2 + 4) / FLT_EPSILON / div;
            if (!(rd <= worst_d))
                worst_d = rd;
            for (int64_t i = 0; i < n; i++) {
                double want = (double)w[i] * x[i] / div;
                double err = fabs(o[i] - want);
                double r = err / (((double)n / 2 + 8) * FLT_EPSILON * fabs(want));
                if (isnan(r))
                    r = INFINITY;
                if (r > worst_o) {
                    worst_o = r;
                    worst_n = n;
                }
                if (err > worst_abs || isnan(err))
                    worst_abs = err;
            }
            free(x);
            free(w);
            free(o);
        }
        ok(worst_o <= 1 && worst_d <= 1, "bli_rmsnorm %s, n = 1, 7, 288, 4096, vs double: "
           "worst |err| / tol = %.3g (n=%lld), worst |err| %.3g; divisor |err| / tol %.3g",
           scales[si].what, worst_o, (long long)worst_n, worst_abs, worst_d);
    }
}

/* ---------------------------------------------------------------- softmax */

/* Tolerance, relative per element.  In float, d_i = x_i - max is rounded
 * (relative u, so an absolute |d_i| u inside exp, a relative |d_i| u after
 * it); expf adds about an ulp; the sum of n positive terms adds gamma_n and
 * carries the terms' own errors, at most sum_j p_j |d_j| u + eps; the
 * division adds u.  So p_i is within (|d_i| + S + n + 5) u relative, S =
 * sum_j p_j |d_j|; we allow (|d_i| + S + n + 6) FLT_EPSILON, about twice.
 * Plus 2 FLT_MIN absolute: expf results below FLT_MIN are subnormal and
 * lose relative accuracy. */
static int check_softmax(const float *in, int64_t n, const char *what)
{
    float *p = malloc((size_t)n * sizeof *p);
    memcpy(p, in, (size_t)n * sizeof *p);
    bli_softmax(p, n);

    double m = in[0];
    for (int64_t i = 1; i < n; i++)
        if (in[i] > m)
            m = in[i];
    double sum = 0, S = 0;
    double *e = malloc((size_t)n * sizeof *e);
    for (int64_t i = 0; i < n; i++) {
        e[i] = exp((double)in[i] - m);
        sum += e[i];
    }
    for (int64_t i = 0; i < n; i++)
        S += e[i] / sum * fabs((double)in[i] - m);
    double worst = 0, worst_abs = 0, psum = 0;
    int finite = 1;
    for (int64_t i = 0; i < n; i++) {
        double want = e[i] / sum;
        double tol = (fabs((double)in[i] - m) + S + (double)n + 6) * FLT_EPSILON * want +
                     2 * FLT_MIN;
        double err = fabs(p[i] - want);
        if (!isfinite(p[i]) || p[i] < 0)
            finite = 0;
        if (!(err / tol <= worst))
            worst = err / tol;
        if (!(err <= worst_abs))
            worst_abs = err;
        psum += p[i];
    }
    double sum_err = fabs(psum - 1);
    int good = finite && worst <= 1 && sum_err <= ((double)n + 2) * FLT_EPSILON;
    ok(good, "bli_softmax %s (n=%lld) vs double: all finite and >= 0: %s, worst |err| / tol "
       "= %.3g, worst |err| %.3g, |sum - 1| = %.3g", what, (long long)n,
       finite ? "yes" : "no", worst, worst_abs, sum_err);
    free(p);
    free(e);
    return good;
}

static void test_softmax(void)
{
    static const int64_t sizes[] = {1, 2, 7, 100, 1000};
    for (size_t k = 0; k < NELEM(sizes); k++) {
        int64_t n = sizes[k];
        float *x = malloc((size_t)n * sizeof *x);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(6 * (rng_uniform() - 0.5)) * (float)(1 + 3 * rng_uniform());
        char what[64];
        snprintf(what, sizeof what, "random logits in (-12, 12)");
        check_softmax(x, n, what);
        free(x);
    }
    /* exp(x) overflows float for x > 88.7: a softmax that does not subtract
     * the maximum returns inf/inf = NaN here */
    static const float big[] = {1000.0f, 999.5f, -1000.0f, 88.75f, 1000.0f, 995.0f, 0.0f};
    check_softmax(big, NELEM(big), "logits up to 1000 (exp overflows float)");
    static const float huge[] = {3.0e38f, -3.0e38f, 2.9999998e38f, 1.0e38f};
    check_softmax(huge, NELEM(huge), "logits near +-FLT_MAX");
    static const float neg[] = {-1000.0f, -1001.0f, -1003.0f, -999.0f};
    check_softmax(neg, NELEM(neg), "logits near -1000 (exp underflows float)");
}

/* ---------------------------------------------------------------- q8_0 */

/* Q8_0: blocks of 32 int8 and an f16 scale.  The quantizer is checked
 * against its definition (d the f16 nearest max|x|/127, every |x - d q| at
 * most half a step, |q| <= 127), the kernels against double sums over the
 * dequantized values read from the blocks here (the f16 scale decoded from
 * its bit fields), with the summation bound of the other types, and the
 * fast kernels against the reference ones. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

static void test_q8_0(void)
{
    static const int64_t qcols[] = {32, 64, 288, 800};
    static const int64_t qrows[] = {1, 3, 64, 513};
    struct worst wref, wfast, wmm;
    worst_init(&wref);
    worst_init(&wfast);
    worst_init(&wmm);
    double worst_step = 0;
    int scale_ok = 1, range_ok = 1;
    long cases = 0;
    for (size_t ci = 0; ci < NELEM(qcols); ci++)
        for (size_t ri = 0; ri < NELEM(qrows); ri++) {
            int64_t rows = qrows[ri], cols = qcols[ci], nb = cols / 32;
            float *wf = malloc((size_t)(rows * cols) * sizeof *wf);
            for (int64_t i = 0; i < rows * cols; i++)
                wf[i] = rand_float(-6, 1);
            if (rows > 2)   /* an all-zero block: d = 0 */
                memset(wf + 2 * cols, 0, 32 * sizeof *wf);
            size_t rb = bl_dtype_row_bytes(BL_Q8_0, cols);
            unsigned char *W = malloc(rb * (size_t)rows);
            for (int64_t r = 0; r < rows; r++)
                bl_quantize_q8_0(wf + r * cols, W + (size_t)r * rb, cols);
            double *wd = malloc((size_t)(rows * cols) * sizeof *wd);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t b = 0; b < nb; b++) {
                    const unsigned char *blk = W + (size_t)r * rb + (size_t)b * 34;
                    uint16_t h = (uint16_t)(blk[0] | blk[1] << 8);
                    double d = f16_value(h), amax = 0;
                    for (int i = 0; i < 32; i++)
                        amax = fmax(amax, fabs(wf[r * cols + b * 32 + i]));
                    /* d is the f16 nearest amax/127: within half an f16 ulp */
                    double want = amax / 127, ulp = want > 0 ? ldexp(1, ilogb(want) - 10) : 0;
                    if (fabs(d - want) > ulp / 2 * 1.0001 + 1e-30)
                        scale_ok = 0;
                    for (int i = 0; i < 32; i++) {
                        int q = (int8_t)blk[2 + i];
                        double x = wf[r * cols + b * 32 + i];
                        range_ok &= q >= -127 && q <= 127;
                        wd[r * cols + b * 32 + i] = d * q;
                        /* q rounds x by the exact scale amax/127; the block
                         * keeps that scale rounded to f16, which moves
                         * d q by at most 127 |d - amax/127| more */
                        if (want > 0)
                            worst_step = fmax(worst_step, (fabs(x - d * q) - 127 * fabs(d - want)) / want);
                    }
                }
            int64_t n = 5;
            float *X = make_inputs(n * cols);
            double *yd = malloc((size_t)(n * rows) * sizeof *yd), *ad = malloc((size_t)(n * rows) * sizeof *ad);
            float *yr = malloc((size_t)(n * rows) * sizeof *yr), *yf = malloc((size_t)(n * rows) * sizeof *yf);
            float *ym = malloc((size_t)(n * rows) * sizeof *ym);
            size_t scr_n = (size_t)(2 * cols);
            float *scr = malloc(scr_n * sizeof *scr);
            ref_double(wd, X, yd, ad, n, rows, cols);
            bli_matmul_ref(BL_Q8_0, W, X, yr, n, rows, cols);
            for (int64_t i = 0; i < n; i++)
                bli_matvec(BL_Q8_0, W, X + i * cols, yf + i * rows, rows, cols, 2);
            bli_matmul(BL_Q8_0, W, X, ym, n, rows, cols, scr, scr_n, 2);
            for (int64_t i = 0; i < n * rows; i++) {
                /* one more rounding per block: the scale times the block sum */
                double bound = C_BOUND * (double)(cols + nb) * FLT_EPSILON * ad[i];
                worst_add(&wref, yr[i], yd[i], bound, n, rows, cols);
                worst_add(&wfast, yf[i], yd[i], bound, n, rows, cols);
                worst_add(&wmm, ym[i], yd[i], bound, n, rows, cols);
            }
            cases++;
            free(wf);
            free(W);
            free(wd);
            free(X);
            free(yd);
            free(ad);
            free(yr);
            free(yf);
            free(ym);
            free(scr);
        }
    ok(scale_ok && range_ok, "bl_quantize_q8_0: every scale the f16 nearest max|x|/127, every q in [-127, 127]");
    ok(worst_step <= 0.5 + 1e-5, "bl_quantize_q8_0: every |x - d q| <= s/2 + 127 |d - s|, s = max|x|/127, d its "
       "f16 (worst %.6f s beyond the f16 term)", worst_step);
    ok(worst_ok(&wref), "bli_matmul_ref q8_0 vs double on the dequantized values, %ld sizes: worst |err| / bound %.3g",
       cases, wref.ratio);
    ok(worst_ok(&wfast), "bli_matvec q8_0 (%s kernel, 2 threads) vs double: worst |err| / bound %.3g, |err| %.3g",
       bli_kernel_name(), wfast.ratio, wfast.abs);
    ok(worst_ok(&wmm), "bli_matmul q8_0 (blocks dequantized, sgemm) vs double: worst |err| / bound %.3g",
       wmm.ratio);
}

int main(void)
{
    /* as bl_ctx_alloc does: OpenBLAS on the calling thread, bitlens' own
     * OpenMP threads split the rows */
    bli_blas_single_threaded();
    diag("fast matvec kernel: %s; BLAS: %s", bli_kernel_name(), bl_blas_name());
    for (size_t t = 0; t < NELEM(TYPES); t++)
        test_matvec(TYPES[t]);
    test_matvec_multi();
    for (size_t t = 0; t < NELEM(TYPES); t++)
        test_matmul(TYPES[t]);
    test_q8_0();
    test_rmsnorm();
    test_softmax();
    return done_testing();
}
