/* lib/kernels.c: reference and fast kernels (see kernels.h). */
#include "config.h"

#include <dlfcn.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#endif

#include <bitlens/tensor.h>
#include "internal.h"
#include "kernels.h"

/* Declared here rather than through OpenBLAS's cblas.h, which clashes with
 * <gsl/gsl_cblas.h>. */
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads(int n);
#endif
#ifdef HAVE_OPENBLAS_GET_CONFIG
char *openblas_get_config(void);
#endif

/* Below this many multiply-adds a matvec runs on one thread: the fork/join
 * costs more than it saves. */
#define PAR_MIN_WORK (1 << 16)

/* ---------------------------------------------------------------- reference */

static float dot_ref(int type, const void *row, const float *x, int64_t n)
{
    float sum = 0.0f;
    switch (type) {
    case BL_F32: {
        const float *w = row;
        for (int64_t i = 0; i < n; i++)
            sum += w[i] * x[i];
        break;
    }
    case BL_F16: {
        const uint16_t *w = row;
        for (int64_t i = 0; i < n; i++)
            sum += bl_f16_to_f32(w[i]) * x[i];
        break;
    }
    case BL_BF16: {
        const uint16_t *w = row;
        for (int64_t i = 0; i < n; i++)
            sum += bl_bf16_to_f32(w[i]) * x[i];
        break;
    }
    case BL_Q8_0: {
        /* the scale times the block's int8 dot product, block by block */
        const unsigned char *w = row;
        for (int64_t b = 0; b < n / BL_Q8_0_BLOCK; b++) {
            const unsigned char *blk = w + b * BL_Q8_0_BYTES;
            uint16_t h;
            memcpy(&h, blk, 2);
            float part = 0.0f;
            for (int i = 0; i < BL_Q8_0_BLOCK; i++)
                part += (float)(int8_t)blk[2 + i] * x[b * BL_Q8_0_BLOCK + i];
            sum += bl_f16_to_f32(h) * part;
        }
        break;
    }
    default:
        BL_ASSERT(!"dot_ref: unsupported type");
    }
    return sum;
}

void bli_matvec_ref(int type, const void *W, const float *x, float *y, int64_t rows,
                    int64_t cols)
{
    size_t rb = bl_dtype_row_bytes(type, cols);
    for (int64_t r = 0; r < rows; r++)
        y[r] = dot_ref(type, (const unsigned char *)W + (size_t)r * rb, x, cols);
}

void bli_matmul_ref(int type, const void *W, const float *X, float *Y, int64_t n,
                    int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < n; i++)
        bli_matvec_ref(type, W, X + i * cols, Y + i * rows, rows, cols);
}

float bli_rmsnorm(float *o, const float *x, const float *w, int64_t n, float eps)
{
    float ss = 0.0f;
    for (int64_t j = 0; j < n; j++)
        ss += x[j] * x[j];
    ss /= (float)n;
    ss += eps;
    float div = sqrtf(ss);
    float inv = 1.0f / div;
    for (int64_t j = 0; j < n; j++)
        o[j] = w[j] * (inv * x[j]);
    return div;
}

float bli_layernorm(float *o, const float *x, const float *w, const float *b, int64_t n, float eps)
{
    float mean = 0.0f;
    for (int64_t j = 0; j < n; j++)
        mean += x[j];
    mean /= (float)n;
    float var = 0.0f;
    for (int64_t j = 0; j < n; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= (float)n;
    float div = sqrtf(var + eps);
    float inv = 1.0f / div;
    for (int64_t j = 0; j < n; j++)
        o[j] = (x[j] - mean) * inv * w[j] + b[j];
    return div;
}

void bli_softmax(float *x, int64_t n)
{
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int64_t i = 0; i < n; i++)
        x[i] /= sum;
}

/* ---------------------------------------------------------------- fast: x86 */

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_KERNELS 1

__attribute__((target("avx2,fma,f16c")))
static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma,f16c")))
static inline __m256 load8(int type, const void *row, int64_t i)
{
    if (type == BL_F32)
        return _mm256_loadu_ps((const float *)row + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
    if (type == BL_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* q8_0: per block, 32 int8 widened to 4 x 8 floats, multiplied with x,
 * summed, then scaled by the block's d into the accumulator. */
__attribute__((target("avx2,fma,f16c")))
static float dot_q8_0_avx2(const void *row, const float *x, int64_t n)
{
    const unsigned char *w = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / BL_Q8_0_BLOCK; b++) {
        const unsigned char *blk = w + b * BL_Q8_0_BYTES;
        const float *xb = x + b * BL_Q8_0_BLOCK;
        uint16_t h;
        memcpy(&h, blk, 2);
        __m256 part = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            __m128i q8 = _mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * k));
            __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            part = _mm256_fmadd_ps(q, _mm256_loadu_ps(xb + 8 * k), part);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(h)), part, acc);
    }
    return hsum256(acc);
}

__attribute__((target("avx2,fma,f16c")))
static float dot_avx2(int type, const void *row, const float *x, int64_t n)
{
    if (type == BL_Q8_0)
        return dot_q8_0_avx2(row, x, n);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load8(type, row, i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load8(type, row, i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load8(type, row, i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load8(type, row, i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(load8(type, row, i), _mm256_loadu_ps(x + i), a0);
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    if (i < n)
        sum += dot_ref(type, (const unsigned char *)row + bl_dtype_row_bytes(type, i),
                       x + i, n - i);
    return sum;
}

/* AVX2, FMA and F16C, asked once per process: __builtin_cpu_supports
 * reads a table the runtime filled at startup, but clang 14 does not know
 * "f16c", and cpuid itself traps to the hypervisor on a virtual machine, so
 * the answer is kept (a fact about the hardware, set once under
 * pthread_once: the only static state in the library, and immutable after). */
static int has_avx2_fma_f16c;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_probe(void)
{
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    has_avx2_fma_f16c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

/* f16 / bf16 rows to f32, 8 at a time (the batch path converts blocks of
 * weight rows before sgemm) */
__attribute__((target("avx2,fma,f16c")))
static void to_f32_avx2(int type, const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, load8(type, src, i));
    if (i < n)
        bl_to_f32(type, (const unsigned char *)src + bl_dtype_row_bytes(type, i), dst + i, n - i);
}

static int cpu_has_avx2(void)
{
    pthread_once(&cpu_once, cpu_probe);
    return has_avx2_fma_f16c;
}
#endif

static void row_to_f32(int type, const void *src, float *dst, int64_t n)
{
#ifdef HAVE_X86_KERNELS
    if ((type == BL_F16 || type == BL_BF16) && cpu_has_avx2()) {
        to_f32_avx2(type, src, dst, n);
        return;
    }
#endif
    bl_to_f32(type, src, dst, n);
}

const char *bli_kernel_name(void)
{
#ifdef HAVE_X86_KERNELS
    if (cpu_has_avx2())
        return "avx2+fma";
#endif
    return "generic";
}

void bli_matvec(int type, const void *W, const float *x, float *y, int64_t rows,
                int64_t cols, int n_threads)
{
    struct bli_mv mv = {type, W, x, y, rows, cols};
    bli_matvec_multi(&mv, 1, n_threads);
}

void bli_matvec_multi(const struct bli_mv *mv, int n_mv, int n_threads)
{
    float (*dot)(int, const void *, const float *, int64_t) = dot_ref;
#ifdef HAVE_X86_KERNELS
    if (cpu_has_avx2())
        dot = dot_avx2;
#endif
    int64_t total = 0, work = 0;
    for (int k = 0; k < n_mv; k++) {
        total += mv[k].rows;
        work += mv[k].rows * mv[k].cols;
    }
    /* Each row is summed by one thread in a fixed order, so the result does
     * not depend on the number of threads.  The rows of all matrices are one
     * range split across the threads: one fork/join for q, k and v. */
    int nt = work >= PAR_MIN_WORK ? n_threads : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t g = 0; g < total; g++) {
        int k = 0;
        int64_t r = g;
        while (r >= mv[k].rows)
            r -= mv[k++].rows;
        size_t rb = bl_dtype_row_bytes(mv[k].type, mv[k].cols);
        mv[k].y[r] = dot(mv[k].type, (const unsigned char *)mv[k].W + (size_t)r * rb, mv[k].x,
                         mv[k].cols);
    }
}

void bli_blas_single_threaded(void)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(1);
#endif
}

void bli_matmul_dots(int type, const void *W, const float *X, float *Y, int64_t n, int64_t rows,
                     int64_t cols, int n_threads)
{
    float (*dot)(int, const void *, const float *, int64_t) = dot_ref;
#ifdef HAVE_X86_KERNELS
    if (cpu_has_avx2())
        dot = dot_avx2;
#endif
    size_t rb = bl_dtype_row_bytes(type, cols);
    int nt = n * rows * cols >= PAR_MIN_WORK ? n_threads : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < rows; r++) {
        const unsigned char *w = (const unsigned char *)W + (size_t)r * rb;
        for (int64_t i = 0; i < n; i++)
            Y[i * rows + r] = dot(type, w, X + i * cols, cols);
    }
}

void bli_matmul(int type, const void *W, const float *X, float *Y, int64_t n,
                int64_t rows, int64_t cols, float *scratch, size_t scratch_floats,
                int n_threads)
{
    if (n == 1) {
        bli_matvec(type, W, X, Y, rows, cols, n_threads);
        return;
    }
    /* OpenBLAS runs single-threaded (bli_blas_single_threaded); the threads
     * here each multiply a block of rows of W, so one runtime (OpenMP)
     * owns the cores and nothing spins against anything else. */
    size_t rb = bl_dtype_row_bytes(type, cols);
    int nt = n * rows * cols >= 4 * PAR_MIN_WORK ? n_threads : 1;
    if (nt > rows / 16)
        nt = rows / 16 > 1 ? (int)(rows / 16) : 1;
    BL_ASSERT(type == BL_F32 || scratch_floats / (size_t)nt >= (size_t)cols);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        int64_t per = (rows + nth - 1) / nth;
        per = (per + 15) / 16 * 16;
        int64_t r0 = tid * per, r1 = r0 + per < rows ? r0 + per : rows;
        const unsigned char *w = (const unsigned char *)W;
        if (r0 < r1 && type == BL_F32) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)(r1 - r0), (int)cols,
                        1.0f, X, (int)cols, (const float *)(w + (size_t)r0 * rb), (int)cols, 0.0f,
                        Y + r0, (int)rows);
        } else if (r0 < r1) {
            /* convert a block of rows to f32 in this thread's scratch, multiply */
            size_t mine = scratch_floats / (size_t)nth;
            float *s = scratch + (size_t)tid * mine;
            int64_t block = (int64_t)(mine / (size_t)cols);
            for (int64_t b0 = r0; b0 < r1; b0 += block) {
                int64_t nr = r1 - b0 < block ? r1 - b0 : block;
                for (int64_t r = 0; r < nr; r++)
                    row_to_f32(type, w + (size_t)(b0 + r) * rb, s + r * cols, cols);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nr, (int)cols,
                            1.0f, X, (int)cols, s, (int)cols, 0.0f, Y + b0, (int)rows);
            }
        }
    }
}

const char *bl_blas_name(void)
{
    /* Which shared object answers cblas_sgemm: the point of linking
     * -lgsl -lopenblas is that it is OpenBLAS, not libgslcblas.  The string
     * belongs to the dynamic loader and lives as long as the process. */
    Dl_info info;
    if (dladdr((void *)cblas_sgemm, &info) && info.dli_fname)
        return info.dli_fname;
    return "unknown";
}

const char *bl_blas_config(void)
{
#ifdef HAVE_OPENBLAS_GET_CONFIG
    return openblas_get_config();
#else
    return "unknown";
#endif
}
