/* analysis/moments.c: streamed mean and covariance, their eigen-spectrum,
 * and the default noise floor (bitlens/analysis.h).
 *
 * A batch of n rows is reduced in two passes over its floats: its mean (in
 * double), then its scatter about that mean, sum (r - mean_b)(r - mean_b)^T,
 * by dsyrk on chunks of centered rows converted to double.  The batch is then
 * merged into the running moments with Chan, Golub & LeVeque's pairwise
 * update ("Algorithms for computing the sample variance", 1983):
 *
 *   n     = n_a + n_b
 *   delta = mean_b - mean_a
 *   mean  = mean_a + delta * (n_b / n)
 *   M2    = M2_a + M2_b + delta delta^T * (n_a n_b / n)
 *
 * bl_moments_merge() applies the same update to another moments.  Centering
 * each batch on its own mean keeps the scatter free of the cancellation a
 * one-pass sum of squares suffers when the mean is large against the spread.
 *
 * Everything is plain double arithmetic in a fixed order (OpenBLAS's dsyrk
 * included: its threads split the output, not the sum), so the same rows in
 * the same batches give the same bits.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>

#include <bitlens/analysis.h>
#include <bitlens/tensor.h>
#include "internal.h"

/* Rows converted to double per dsyrk call: about CHUNK_DOUBLES doubles
 * (512 KiB), and never fewer than CHUNK_MIN_ROWS rows, so that each call
 * is a rank-k update worth its pass over the d x d output. */
#define CHUNK_DOUBLES ((int64_t)1 << 16)
#define CHUNK_MIN_ROWS 32

/* ---------------------------------------------------------------- moments */

int bl_moments_init(struct bl_moments *m, int64_t d)
{
    BL_ASSERT(m != NULL);
    BL_ASSERT(d >= 1);
    m->d = d;
    m->n = 0;
    m->mean = NULL;
    m->m2 = NULL;
    /* d * d * sizeof(double) must fit a size_t (checked before either
     * allocation is tried, so a huge d asks the allocator for nothing) */
    if ((uint64_t)d > SIZE_MAX / sizeof(double) / (uint64_t)d)
        return BL_ENOMEM;
    m->mean = calloc((size_t)d, sizeof(double));
    m->m2 = calloc((size_t)d * (size_t)d, sizeof(double));
    if (!m->mean || !m->m2) {
        bl_moments_release(m);
        m->d = d;
        return BL_ENOMEM;
    }
    return BL_OK;
}

void bl_moments_release(struct bl_moments *m)
{
    if (!m)
        return;
    free(m->mean);
    free(m->m2);
    m->mean = NULL;
    m->m2 = NULL;
    m->n = 0;
}

void bl_moments_reset(struct bl_moments *m)
{
    BL_ASSERT(m != NULL && m->mean != NULL);
    m->n = 0;
    memset(m->mean, 0, (size_t)m->d * sizeof(double));
    memset(m->m2, 0, (size_t)m->d * (size_t)m->d * sizeof(double));
}

/* Chan et al.'s update of m by a set of nb rows with mean mean_b and
 * scatter m2_b.  The scatter may already have been added into m->m2
 * (m2_b NULL: bl_moments_add accumulates it there directly); the
 * correction delta delta^T n_a n_b / n is added in either case.  Only the
 * upper triangle (j >= i, row-major) is updated; the caller mirrors it.
 * m2_b and mean_b may alias m's own arrays (m merged with itself): each
 * element is read before it is written. */
static void chan_update(struct bl_moments *m, double nb, const double *mean_b, const double *m2_b)
{
    const int64_t d = m->d;
    const double na = m->n, n = na + nb;
    const double w = na * nb / n;        /* 0 when m was empty */
    const double f = nb / n;             /* 1 when m was empty */

    for (int64_t i = 0; i < d; i++) {
        const double di = mean_b[i] - m->mean[i];
        double *row = m->m2 + i * d;
        const double *row_b = m2_b ? m2_b + i * d : NULL;
        for (int64_t j = i; j < d; j++) {
            const double dj = mean_b[j] - m->mean[j];
            double v = row[j];
            if (row_b)
                v += row_b[j];
            row[j] = v + w * di * dj;
        }
    }
    for (int64_t i = 0; i < d; i++)
        m->mean[i] += (mean_b[i] - m->mean[i]) * f;
    m->n = n;
}

/* Copy the upper triangle of the d x d row-major a into its lower one, in
 * tiles of MIRROR_TILE x MIRROR_TILE so that the column reads stay in
 * cache for large d. */
#define MIRROR_TILE 64
static void mirror_upper(double *a, int64_t d)
{
    for (int64_t ib = 0; ib < d; ib += MIRROR_TILE) {
        const int64_t ie = ib + MIRROR_TILE < d ? ib + MIRROR_TILE : d;
        for (int64_t jb = 0; jb <= ib; jb += MIRROR_TILE)
            for (int64_t i = ib; i < ie; i++) {
                const int64_t je = jb + MIRROR_TILE < i ? jb + MIRROR_TILE : i;
                for (int64_t j = jb; j < je; j++)
                    a[i * d + j] = a[j * d + i];
            }
    }
}

int bl_moments_add(struct bl_moments *m, const float *rows, int64_t n)
{
    BL_ASSERT(m != NULL && m->mean != NULL);
    BL_ASSERT(n >= 0);
    if (n == 0)
        return BL_OK;
    BL_ASSERT(rows != NULL);

    const int64_t d = m->d;
    int64_t chunk = CHUNK_DOUBLES / d;
    if (chunk < CHUNK_MIN_ROWS)
        chunk = CHUNK_MIN_ROWS;
    if (chunk > n)
        chunk = n;
    /* dsyrk takes int dimensions */
    if (d > INT32_MAX)
        return BL_ENOMEM;

    double *mean_b = bli_malloc_array((size_t)d, sizeof(double));
    double *x = bli_malloc_array((size_t)chunk * (size_t)d, sizeof(double));
    int rc = BL_OK;
    if (!mean_b || !x) {
        rc = BL_ENOMEM;
        goto done;
    }

    /* pass 1: the batch mean.  A sum of floats in double overflows only
     * past 1e270 rows, so a non-finite sum means a NaN or infinity among
     * the rows: rejected before m is touched. */
    memset(mean_b, 0, (size_t)d * sizeof(double));
    for (int64_t r = 0; r < n; r++) {
        const float *row = rows + r * d;
        for (int64_t j = 0; j < d; j++)
            mean_b[j] += row[j];
    }
    for (int64_t j = 0; j < d; j++) {
        if (!isfinite(mean_b[j])) {
            rc = BL_EINVAL;
            goto done;
        }
        mean_b[j] /= (double)n;
    }

    /* pass 2: the centered rows, a chunk at a time, their scatter summed
     * straight into m->m2's upper triangle (C = X^T X + C, X chunk x d) */
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t k = n - r0 < chunk ? n - r0 : chunk;
        for (int64_t r = 0; r < k; r++) {
            const float *row = rows + (r0 + r) * d;
            double *xr = x + r * d;
            for (int64_t j = 0; j < d; j++)
                xr[j] = (double)row[j] - mean_b[j];
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)k, 1.0, x, (int)d, 1.0,
                    m->m2, (int)d);
    }

    chan_update(m, (double)n, mean_b, NULL);
    mirror_upper(m->m2, d);

done:
    free(mean_b);
    free(x);
    return rc;
}

int bl_moments_merge(struct bl_moments *m, const struct bl_moments *other)
{
    BL_ASSERT(m != NULL && other != NULL && m->mean != NULL && other->mean != NULL);
    BL_ASSERT(m->d == other->d);
    if (other->n == 0)
        return BL_OK;
    chan_update(m, other->n, other->mean, other->m2);
    mirror_upper(m->m2, m->d);
    return BL_OK;
}

void bl_moments_covariance(const struct bl_moments *m, double *cov)
{
    BL_ASSERT(m != NULL && m->mean != NULL && cov != NULL);
    const size_t dd = (size_t)m->d * (size_t)m->d;
    if (m->n == 0) {
        memset(cov, 0, dd * sizeof(double));
        return;
    }
    for (size_t i = 0; i < dd; i++)
        cov[i] = m->m2[i] / m->n;
}

double bl_moments_mean_square(const struct bl_moments *m)
{
    BL_ASSERT(m != NULL && m->mean != NULL);
    if (m->n == 0)
        return 0;
    double s = 0;
    for (int64_t i = 0; i < m->d; i++)
        s += m->m2[i * m->d + i] / m->n + m->mean[i] * m->mean[i];
    return s / (double)m->d;
}

/* ---------------------------------------------------------------- spectrum */

static int cmp_descending(const void *pa, const void *pb)
{
    const double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

/* s->eig holds d finite values: sort them descending, clip negatives to 0,
 * and derive the summaries. */
static void spectrum_finish(struct bl_spectrum *s)
{
    const int64_t d = s->d;
    double *l = s->eig;

    qsort(l, (size_t)d, sizeof(double), cmp_descending);
    double total = 0;
    for (int64_t i = 0; i < d; i++) {
        if (l[i] < 0)
            l[i] = 0;
        total += l[i];
    }
    s->total = total;
    s->participation = 0;
    s->effective_rank = 0;
    s->c90 = 0;
    s->c99 = 0;
    if (!(total > 0))
        return;             /* no variance: no components */

    /* both from the shares q = l / total, so that no square of a tiny or
     * huge eigenvalue under- or overflows: PR = 1 / sum q^2 */
    double sq = 0, h = 0;
    for (int64_t i = 0; i < d; i++) {
        const double q = l[i] / total;
        sq += q * q;
        if (q > 0)
            h -= q * log(q);
    }
    s->participation = 1 / sq;
    s->effective_rank = exp(h);

    /* the fewest leading components whose sum reaches the fraction, with
     * slack for the rounding of the running sum (at most d ulps), so that
     * ten equal eigenvalues give c90 = 9 and not 10 */
    const double slack = (double)(d + 1) * 2.220446049250313e-16 * total;
    double cum = 0;
    for (int64_t i = 0; i < d; i++) {
        cum += l[i];
        if (s->c90 == 0 && cum >= 0.90 * total - slack)
            s->c90 = i + 1;
        if (s->c99 == 0 && cum >= 0.99 * total - slack)
            s->c99 = i + 1;
    }
    if (s->c90 == 0)
        s->c90 = d;
    if (s->c99 == 0)
        s->c99 = d;
}

static void spectrum_clear(struct bl_spectrum *s, int64_t d)
{
    memset(s, 0, sizeof(*s));
    s->d = d;
}

int bl_spectrum_from_moments(struct bl_spectrum *s, const struct bl_moments *m, bl_err *err)
{
    BL_ASSERT(s != NULL && m != NULL && m->mean != NULL);
    const int64_t d = m->d;
    spectrum_clear(s, d);
    if (m->n == 0)
        return bli_err(err, BL_EINVAL, "no rows: the covariance of an empty stream is undefined");

    gsl_matrix *a = NULL;
    gsl_vector *eval = NULL;
    gsl_eigen_symm_workspace *w = NULL;
    int rc = BL_OK;

    a = gsl_matrix_alloc((size_t)d, (size_t)d);
    eval = gsl_vector_alloc((size_t)d);
    w = gsl_eigen_symm_alloc((size_t)d);
    s->eig = bli_malloc_array((size_t)d, sizeof(double));
    if (!a || !eval || !w || !s->eig) {
        rc = bli_err(err, BL_ENOMEM, "spectrum: cannot allocate for d = %lld", (long long)d);
        goto fail;
    }
    /* the matrix is d x d with tda = d, so its data is the covariance */
    bl_moments_covariance(m, a->data);
    int status = gsl_eigen_symm(a, eval, w);
    if (status != GSL_SUCCESS) {
        rc = bli_err(err, BL_EINVAL, "spectrum: symmetric eigensolver failed (d = %lld): %s",
                     (long long)d, gsl_strerror(status));
        goto fail;
    }
    for (int64_t i = 0; i < d; i++)
        s->eig[i] = gsl_vector_get(eval, (size_t)i);
    spectrum_finish(s);
    gsl_eigen_symm_free(w);
    gsl_vector_free(eval);
    gsl_matrix_free(a);
    return BL_OK;

fail:
    if (w)
        gsl_eigen_symm_free(w);
    if (eval)
        gsl_vector_free(eval);
    if (a)
        gsl_matrix_free(a);
    bl_spectrum_release(s);
    return rc;
}

int bl_spectrum_from_eigenvalues(struct bl_spectrum *s, const double *eig, int64_t d)
{
    BL_ASSERT(s != NULL);
    BL_ASSERT(d >= 1 && eig != NULL);
    spectrum_clear(s, d);
    for (int64_t i = 0; i < d; i++)
        if (!isfinite(eig[i]))
            return BL_EINVAL;
    s->eig = bli_malloc_array((size_t)d, sizeof(double));
    if (!s->eig)
        return BL_ENOMEM;
    memcpy(s->eig, eig, (size_t)d * sizeof(double));
    spectrum_finish(s);
    return BL_OK;
}

void bl_spectrum_release(struct bl_spectrum *s)
{
    if (!s)
        return;
    free(s->eig);
    s->eig = NULL;
}

double bl_spectrum_capacity(const struct bl_spectrum *s, double noise_var)
{
    BL_ASSERT(s != NULL && s->eig != NULL);
    double bits = 0;
    for (int64_t i = 0; i < s->d; i++) {
        const double l = s->eig[i];
        if (l <= 0)
            continue;        /* a direction without variance carries nothing */
        if (!(noise_var > 0))
            return INFINITY; /* variance against no noise at all */
        bits += log1p(l / noise_var);
    }
    return 0.5 * bits / M_LN2;
}

/* ---------------------------------------------------------------- noise floor */

static void dtype_grid(int dtype, int *p, int *emin)
{
    switch (dtype) {
    case BL_F32: *p = 24; *emin = -126; break;
    case BL_F16: *p = 11; *emin = -14; break;
    case BL_BF16: *p = 8; *emin = -126; break;
    default: BL_ASSERT(!"bl_rounding: dtype is f32, f16 or bf16");
    }
}

void bl_rounding_init(struct bl_rounding *r, int dtype)
{
    int p, emin;
    dtype_grid(dtype, &p, &emin);   /* checks the dtype */
    memset(r, 0, sizeof *r);
    r->dtype = dtype;
}

void bl_rounding_add(struct bl_rounding *r, const float *x, int64_t n)
{
    int64_t nonfinite = r->count[255];
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        r->count[(u >> 23) & 0xff]++;
        r->pow2[(u >> 23) & 0xff] += (u & 0x7fffff) == 0;
    }
    /* exponent field 255 (infinities, NaN) is kept apart and not counted */
    r->n += n - (r->count[255] - nonfinite);
}

double bl_rounding_variance(const struct bl_rounding *r)
{
    int p, emin;
    dtype_grid(r->dtype, &p, &emin);
    double s = 0;
    int64_t n = 0;
    for (int E = 0; E < 255; E++) {
        if (!r->count[E])
            continue;
        int e = E == 0 ? emin : E - 127 < emin ? emin : E - 127;
        /* a power of two above the finest grid sits on a binade boundary */
        int64_t edge = E > 0 && E - 127 > emin ? r->pow2[E] : 0;
        double u2 = ldexp(1.0, 2 * (e + 1 - p));
        s += (double)(r->count[E] - edge) * u2 / 12.0 + (double)edge * u2 / 16.0;
        n += r->count[E];
    }
    return n ? s / (double)n : 0.0;
}
