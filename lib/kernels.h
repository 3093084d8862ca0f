/* lib/kernels.h: the linear-algebra kernels of the forward pass.
 *
 * Each operation has a plain reference kernel (readable loops, one thread,
 * float accumulation in index order, as llama2.c) and a fast one (AVX2/FMA
 * when the CPU has it, OpenMP over rows, BLAS sgemm for batches).  Tests
 * check the two against each other. */
#ifndef BITLENS_KERNELS_H
#define BITLENS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* y[r] = sum_c W[r][c] * x[c] for r < rows; W is rows x cols of `type`. */
void bli_matvec_ref(int type, const void *W, const float *x, float *y, int64_t rows,
                    int64_t cols);
void bli_matvec(int type, const void *W, const float *x, float *y, int64_t rows,
                int64_t cols, int n_threads);

/* Several matrix-vector products in one parallel region (q, k and v of a
 * token; gate and up): the rows of all of them are split across threads. */
struct bli_mv {
    int type;
    const void *W;
    const float *x;
    float *y;
    int64_t rows, cols;
};
void bli_matvec_multi(const struct bli_mv *mv, int n_mv, int n_threads);

/* Make OpenBLAS run every call on the calling thread: bitlens' own OpenMP
 * threads split the work (bli_matmul), so the two never compete for cores. */
void bli_blas_single_threaded(void);

/* Y[n x rows] = X[n x cols] W^T.  The fast kernel gives each thread a block
 * of rows of W and calls cblas_sgemm on it; f16/bf16 rows are converted to
 * f32 in the thread's share of `scratch` first (scratch_floats >= n_threads *
 * cols; more is faster).  A single row goes to bli_matvec. */
void bli_matmul_ref(int type, const void *W, const float *X, float *Y, int64_t n,
                    int64_t rows, int64_t cols);
void bli_matmul(int type, const void *W, const float *X, float *Y, int64_t n,
                int64_t rows, int64_t cols, float *scratch, size_t scratch_floats,
                int n_threads);

/* The same product through the matrix-vector kernel's dot products, each
 * row of W read once for all n rows of X: bit for bit n bli_matvec calls,
 * whatever the thread count (bl_ctx_eval's BL_EVAL_EXACT). */
void bli_matmul_dots(int type, const void *W, const float *X, float *Y, int64_t n, int64_t rows,
                     int64_t cols, int n_threads);

/* o[i] = w[i] * x[i] / sqrt(mean(x^2) + eps); returns the divisor. */
float bli_rmsnorm(float *o, const float *x, const float *w, int64_t n, float eps);

/* o[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i] (var biased, in
 * float as llama.cpp and PyTorch compute it); returns the divisor. */
float bli_layernorm(float *o, const float *x, const float *w, const float *b, int64_t n, float eps);

/* In-place softmax of x[0..n-1]. */
void bli_softmax(float *x, int64_t n);

/* Name of the fast matvec variant in use ("avx2+fma", "generic"). */
const char *bli_kernel_name(void);

#endif
