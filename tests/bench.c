/* tests/bench.c: `make bench`: throughput of the forward pass, side by side
 * in one run.
 *
 * Models: stories260K (real, from the test data) and a random model of
 * stories15M's shape (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000)
 * written by the benchmark itself as GGUF, in f32 and in f16, and quantized
 * to q8_0 by bitlens' writer, so it is mapped like a real checkpoint.
 *
 * For 1 and 2 threads: prompt tokens/s (one batch of 128 positions through
 * sgemm) and single-token decode tokens/s (128 steps through the KV cache),
 * with the bytes of weights each decode step streams (every matrix once, one
 * embedding row) turned into GB/s and set beside the machine's read
 * bandwidth measured in the same run, so "memory bound" is a number.  The
 * plain reference kernels run once for the fast/reference ratio.  Each
 * figure is the median of 5 runs; these machines are noisy.
 *
 * The analysis library (bitlens/analysis.h), after the forward pass:
 *   - bl_moments_add on synthetic rows of width 64, 288 and 768, rows/s and
 *     GB/s of f32 rows consumed, against Welford's one-row update written
 *     here in plain loops; the two covariances must agree within 1e-9
 *     relative (tests/test-moments.c's measure), or the bench fails;
 *   - bl_probe_fit at stories260K's size (d 64, vocabulary 512) on a
 *     synthetic stream, 5000 rows for 4 epochs, on 1 and 2 threads;
 *   - bl_report_compute on a trace recorded here from stories260K over 50
 *     paragraphs of TinyStories, without probes (k 0: spectra and
 *     bootstrap) and with them (k 4), on 1 and 2 threads (median of 3).
 * The section takes 30 to 45 s on two cores.
 *
 * Drift (bitlens/drift.h): loading the built-in reference tables; the
 * features of 128-character spans of the TinyStories head, characters/s,
 * with no tables (zlib, scripts and the Gopher rules only), with the word
 * list, with the n-gram tables, with both; and the model feature's cost,
 * bl_drift_model_bits with stories260K on the same text, on 1 and 2
 * threads.  Median of 5. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <sys/resource.h>

#include <gsl/gsl_rng.h>
#include <gsl/gsl_randist.h>

#include <bitlens/bitlens.h>

#define REPS 5
#define N_PROMPT 128
#define N_DECODE 128

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Sum a block with AVX2 loads, four independent accumulators: as fast as a
 * core can read. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2")))
static uint64_t sum_block(const uint64_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t v[4];
    _mm256_storeu_si256((__m256i *)v, a0);
    uint64_t s = v[0] + v[1] + v[2] + v[3];
    for (; i < n; i++)
        s += p[i];
    return s;
}
#else
static uint64_t sum_block(const uint64_t *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}
#endif

/* Read bandwidth: sum the words of a buffer far larger than the caches,
 * each thread its own contiguous half. */
static double read_bandwidth(int threads)
{
    size_t n = (size_t)256 << 20 >> 3;   /* 256 MiB */
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    double t[REPS];
    volatile uint64_t sink = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        uint64_t s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
        {
            int tid = 0, nth = 1;
#ifdef _OPENMP
            tid = omp_get_thread_num();
            nth = omp_get_num_threads();
#endif
            size_t per = n / (size_t)nth;
            s += sum_block(buf + (size_t)tid * per, tid == nth - 1 ? n - (size_t)tid * per : per);
        }
        sink += s;
        t[r] = now() - t0;
    }
    (void)sink;
    free(buf);
    return (double)(n * sizeof *buf) / median(t, REPS) / 1e9;
}

/* A random Llama model of the given shape as a GGUF file (no vocabulary). */
static int write_random(const char *path, int type, int64_t dim, int64_t layers, int64_t heads,
                        int64_t hidden, int64_t vocab, int64_t ctx, const bl_tokenizer *tok)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 15);
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    if (tok)   /* a real vocabulary, so `record` can tokenize prompts */
        bl_tokenizer_write_gguf(tok, w, vocab);
    bl_gguf_writer_set_str(w, "general.architecture", "llama");
    bl_gguf_writer_set_str(w, "general.name", "random-15M-shape");
    bl_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)ctx);
    bl_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)dim);
    bl_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)layers);
    bl_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)hidden);
    bl_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)heads);
    bl_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)heads);
    size_t n_t = 3 + 9 * (size_t)layers;
    void **bufs = calloc(n_t, sizeof *bufs);
    size_t nb = 0;
#define TENSOR(name, ne0, ne1, std)                                                            \
    do {                                                                                       \
        int64_t ne_[2] = {(ne0), (ne1)};                                                       \
        int64_t n_ = ne_[0] * ne_[1];                                                          \
        int t_ = (ne1) > 1 ? type : BL_F32;                                                    \
        void *b_ = malloc((size_t)n_ * (t_ == BL_F32 ? 4 : 2));                                \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                  \
            float v_ = (std) > 0 ? (float)gsl_ran_gaussian(rng, (std)) : 1.0f;                 \
            if (t_ == BL_F32)                                                                  \
                ((float *)b_)[i_] = v_;                                                        \
            else                                                                               \
                ((uint16_t *)b_)[i_] = bl_f32_to_f16(v_);                                      \
        }                                                                                      \
        bufs[nb++] = b_;                                                                       \
        bl_gguf_writer_add_tensor(w, (name), t_, (ne1) > 1 ? 2 : 1, ne_, b_);                  \
    } while (0)
    char name[64];
    TENSOR("token_embd.weight", dim, vocab, 0.02);
    for (int64_t l = 0; l < layers; l++) {
        static const char *const nm[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                          "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
        int64_t shp[9][2] = {{dim, 1}, {dim, dim}, {dim, dim}, {dim, dim}, {dim, dim},
                             {dim, 1}, {dim, hidden}, {dim, hidden}, {hidden, dim}};
        for (int k = 0; k < 9; k++) {
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, nm[k]);
            TENSOR(name, shp[k][0], shp[k][1], shp[k][1] > 1 ? 0.02 : 0);
        }
    }
    TENSOR("output_norm.weight", dim, 1, 0);
    TENSOR("output.weight", dim, vocab, 0.02);
#undef TENSOR
    bl_err err;
    int rc = bl_gguf_writer_write(w, path, &err);
    if (rc)
        fprintf(stderr, "bench: %s\n", err.msg);
    for (size_t i = 0; i < nb; i++)
        free(bufs[i]);
    free(bufs);
    bl_gguf_writer_free(w);
    gsl_rng_free(rng);
    return rc;
}

struct result {
    double prompt_tps, decode_tps;
};

static struct result measure(const bl_model *m, int threads, int kernels, int reps, int n_decode)
{
    const struct bl_model_config *c = bl_model_config(m);
    struct bl_ctx_params p = bl_ctx_default_params();
    p.n_ctx = N_PROMPT + n_decode + 1;
    p.n_batch = N_PROMPT;
    p.n_threads = threads;
    p.kernels = kernels;
    bl_set_threads(threads);
    bl_ctx *ctx;
    bl_err err;
    if (bl_ctx_alloc(&ctx, m, &p, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    int32_t *ids = malloc(N_PROMPT * sizeof *ids);
    for (int i = 0; i < N_PROMPT; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % c->n_vocab);
    float *logits = malloc((size_t)c->n_vocab * sizeof *logits);
    double tp[REPS], td[REPS];
    for (int r = 0; r < reps; r++) {
        bl_ctx_rewind(ctx, 0);
        double t0 = now();
        bl_ctx_eval(ctx, ids, N_PROMPT, logits, 0);
        tp[r] = N_PROMPT / (now() - t0);
        int32_t tok = (int32_t)bl_argmax(logits, c->n_vocab);
        t0 = now();
        for (int i = 0; i < n_decode; i++) {
            bl_ctx_eval(ctx, &tok, 1, logits, 0);
            tok = (int32_t)bl_argmax(logits, c->n_vocab);
        }
        td[r] = n_decode / (now() - t0);
    }
    free(ids);
    free(logits);
    bl_ctx_free(ctx);
    struct result res = {median(tp, reps), median(td, reps)};
    return res;
}

/* ---- recording */

static long rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static double plain_generation(const bl_model *m, const char *prompt, int64_t n_gen, int threads)
{
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    int32_t ids[1024];
    int64_t n;
    bl_tokenizer_encode(tok, prompt, strlen(prompt), BL_TOK_BOS, ids, 1024, &n);
    struct bl_ctx_params cp = bl_ctx_default_params();
    cp.n_ctx = n + n_gen;
    cp.n_threads = threads;
    bl_ctx *ctx;
    bl_ctx_alloc(&ctx, m, &cp, NULL);
    int64_t V = bl_model_config(m)->n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    double t0 = now();
    bl_ctx_eval(ctx, ids, n, logits, 0);
    for (int64_t g = 0; g + 1 < n_gen; g++) {
        int32_t next = (int32_t)bl_argmax(logits, bl_tokenizer_n_vocab(tok));
        bl_ctx_eval(ctx, &next, 1, logits, 0);
    }
    double t = now() - t0;
    free(logits);
    bl_ctx_free(ctx);
    return t;
}

struct rss_watch {
    int64_t at[3];
    long kb[3];
};

static int watch(void *user, int64_t prompt, int64_t n_prompts, int64_t positions)
{
    struct rss_watch *w = user;
    (void)prompt;
    (void)n_prompts;
    for (int i = 0; i < 3; i++)
        if (!w->kb[i] && positions >= w->at[i])
            w->kb[i] = rss_kb();
    return 0;
}

static void bench_record(const bl_model *m, const char *dir, const char *text, int threads)
{
    char out[4096];
    snprintf(out, sizeof out, "%s/bench.blt", dir);
    const char *prompt = "Once upon a time, in a land far away, there lived a curious researcher who "
                         "wanted to know how many bits a chain of thought passes from one token to the next.";
    int64_t n_gen = 128;
    struct bl_record_params p = bl_record_default_params();
    p.n_gen = n_gen;
    p.sampling.temperature = 0;
    p.hash = 0;
    p.n_threads = threads;
    p.dtype = BL_F16;
    bl_set_threads(threads);
    double tp[REPS], tr[REPS], tl[REPS];
    struct bl_record_stats st = {0};
    bl_err err;
    for (int r = 0; r < REPS; r++) {
        tp[r] = plain_generation(m, prompt, n_gen, threads);
        p.lens = 0;
        double t0 = now();
        if (bl_record(m, &prompt, 1, &p, out, BL_TRACE_FORCE, &st, &err)) {
            printf("record: %s\n", err.msg);
            return;
        }
        tr[r] = now() - t0;
        p.lens = 1;
        t0 = now();
        bl_record(m, &prompt, 1, &p, out, BL_TRACE_FORCE, NULL, &err);
        tl[r] = now() - t0;
    }
    double plain = median(tp, REPS), rec = median(tr, REPS), lens = median(tl, REPS);
    printf("\nrecording (random 15M shape, f32 weights, %d threads; one prompt + %lld generated tokens; median of %d):\n",
           threads, (long long)n_gen, REPS);
    printf("  plain generation                 %8.3f s\n", plain);
    printf("  record every resid_post in f16   %8.3f s   %+.1f%% over plain generation (token statistics included)\n",
           rec, 100 * (rec / plain - 1));
    printf("  ... and the logit lens          %8.3f s   %+.1f%%\n", lens, 100 * (lens / plain - 1));
    printf("  trace: %llu bytes for %lld f16 values of %d hooks: %.3f bytes per recorded value in all\n",
           (unsigned long long)st.trace_bytes, (long long)st.tensor_values, (int)bl_model_config(m)->n_layers,
           (double)st.trace_bytes / (double)st.tensor_values);

    /* 20,000 positions: 100 prompts of ~200 tokens from a text */
    if (!text)
        return;
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    char *prompts[100];
    size_t off = 0, len = strlen(text);
    int np = 0;
    while (np < 100 && off < len) {
        /* take characters until the prompt has 199 tokens after BOS */
        size_t lo = 1, hi = len - off < 4000 ? len - off : 4000;
        int32_t ids[8192];
        int64_t n;
        while (lo < hi) {
            size_t mid = (lo + hi + 1) / 2;
            bl_tokenizer_encode(tok, text + off, mid, BL_TOK_BOS, ids, 8192, &n);
            if (n <= 200)
                lo = mid;
            else
                hi = mid - 1;
        }
        prompts[np] = strndup(text + off, lo);
        if (memchr(prompts[np], '\0', lo) == NULL && strlen(prompts[np]) > 0)
            np++;
        else
            free(prompts[np]);
        off += lo;
    }
    struct rss_watch w = {{2000, 10000, 19000}, {0}};
    p.n_gen = 0;
    p.lens = 0;
    p.progress = watch;
    p.progress_user = &w;
    long before = rss_kb();
    double t0 = now();
    int rc = bl_record(m, (const char *const *)prompts, np, &p, out, BL_TRACE_FORCE, &st, &err);
    double t = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (rc)
        printf("record: %s\n", err.msg);
    else
        printf("  %lld prompts, %lld positions teacher-forced in %.1f s (%.0f pos/s): RSS %ld MB before, %ld MB "
               "at 2k positions, %ld MB at 10k, %ld MB at 19k; peak RSS of the process %ld MB; trace %.1f MB, "
               "%.3f bytes per value\n",
               (long long)st.prompts, (long long)st.positions, t, (double)st.positions / t, before / 1024,
               w.kb[0] / 1024, w.kb[1] / 1024, w.kb[2] / 1024, ru.ru_maxrss / 1024, (double)st.trace_bytes / 1e6,
               (double)st.trace_bytes / (double)st.tensor_values);
    for (int i = 0; i < np; i++)
        free(prompts[i]);
    unlink(out);
}

/* ---- analysis (bitlens/analysis.h) */

/* Rows like a residual stream: a different mean and scale per coordinate,
 * one coordinate's mean far out (as real streams have), neighbours
 * correlated: x_j = mu_j + s_j (z_j + 0.5 z_{j-1}), mu_j = 0.5 (j mod 11) - 2
 * (mu_0 = 40), s_j = 0.1 + 2 j / d. */
static float *stream_rows(gsl_rng *rng, int64_t n, int64_t d)
{
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t r = 0; r < n; r++) {
        double zp = 0;
        for (int64_t j = 0; j < d; j++) {
            double z = gsl_ran_gaussian(rng, 1.0);
            double mu = j ? 0.5 * (double)(j % 11) - 2 : 40;
            x[r * d + j] = (float)(mu + (0.1 + 2.0 * (double)j / (double)d) * (z + 0.5 * zp));
            zp = z;
        }
    }
    return x;
}

/* The reference moments: Welford's one-row update in plain loops, in
 * double, no BLAS: delta = x - mean; mean += delta / k; M2 += delta delta^T
 * (k - 1) / k on the upper triangle, mirrored at the end.  Kept out of
 * line at a fixed alignment, so its speed does not move with edits
 * elsewhere in this file: inlined into main(), the same scalar loop ran
 * 0.8 or 1.4 million rows/s of d 64 from one build to the next. */
__attribute__((noinline, aligned(64)))
static void ref_moments(const float *x, int64_t n, int64_t d, double *mean, double *m2, double *delta)
{
    memset(mean, 0, (size_t)d * sizeof *mean);
    memset(m2, 0, (size_t)(d * d) * sizeof *m2);
    for (int64_t r = 0; r < n; r++) {
        const float *row = x + r * d;
        double k = (double)(r + 1);
        for (int64_t j = 0; j < d; j++) {
            delta[j] = (double)row[j] - mean[j];
            mean[j] += delta[j] / k;
        }
        for (int64_t i = 0; i < d; i++) {
            double c = delta[i] * (k - 1) / k;
            for (int64_t j = i; j < d; j++)
                m2[i * d + j] += c * delta[j];
        }
    }
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < i; j++)
            m2[i * d + j] = m2[j * d + i];
}

/* Worst difference of two covariances, each entry relative to the scale
 * sqrt(ref_ii ref_jj) of its pair (tests/test-moments.c's measure). */
static double cov_err(const double *c, const double *ref, int64_t d)
{
    double worst = 0;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) {
            double e = fabs(c[i * d + j] - ref[i * d + j]) / sqrt(ref[i * d + i] * ref[j * d + j]);
            if (e > worst || isnan(e))
                worst = e;
        }
    return worst;
}

#define MOMENTS_BATCH 256   /* rows per bl_moments_add, as the report adds them */

/* Returns 0 if the covariances agree within 1e-9. */
static int bench_moments(void)
{
    static const int64_t dims[] = {64, 288, 768};
    int bad = 0;
    printf("\nstreamed moments (bl_moments_add, batches of %d rows as the report adds them; 1 thread: "
           "OpenBLAS runs on the caller) against a plain reference (Welford's one-row update, double loops, "
           "no BLAS); covariance error per entry relative to sqrt(var_i var_j); median of %d:\n",
           MOMENTS_BATCH, REPS);
    printf("%6s %7s %8s %12s %8s %12s %8s %9s %10s\n", "d", "rows", "f32 MB", "rows/s", "GB/s", "ref rows/s",
           "ref GB/s", "fast/ref", "max error");
    bl_set_threads(1);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 260);
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        int64_t d = dims[di];
        /* about 2^28 multiply-adds of the d x d update in all, between 1024
         * and 65536 rows, whole batches */
        int64_t n = ((int64_t)1 << 28) / (d * d) / MOMENTS_BATCH * MOMENTS_BATCH;
        n = n < 1024 ? 1024 : n > 65536 ? 65536 : n;
        float *x = stream_rows(rng, n, d);
        double *mean = malloc((size_t)d * sizeof *mean), *delta = malloc((size_t)d * sizeof *delta);
        double *m2 = malloc((size_t)(d * d) * sizeof *m2), *cov = malloc((size_t)(d * d) * sizeof *cov);
        struct bl_moments m;
        if (!x || !mean || !delta || !m2 || !cov || bl_moments_init(&m, d)) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        double tf[REPS], tr[REPS];
        for (int r = 0; r < REPS; r++) {
            bl_moments_reset(&m);
            double t0 = now();
            for (int64_t r0 = 0; r0 < n; r0 += MOMENTS_BATCH)
                bl_moments_add(&m, x + r0 * d, n - r0 < MOMENTS_BATCH ? n - r0 : MOMENTS_BATCH);
            tf[r] = now() - t0;
            t0 = now();
            ref_moments(x, n, d, mean, m2, delta);
            tr[r] = now() - t0;
        }
        bl_moments_covariance(&m, cov);
        for (int64_t i = 0; i < d * d; i++)
            m2[i] /= (double)n;
        double err = cov_err(cov, m2, d);
        double f = median(tf, REPS), rf = median(tr, REPS), bytes = (double)(n * d) * sizeof(float);
        printf("%6lld %7lld %8.1f %12.0f %8.2f %12.0f %8.2f %8.1fx %10.2g%s\n", (long long)d, (long long)n,
               bytes / 1e6, (double)n / f, bytes / f / 1e9, (double)n / rf, bytes / rf / 1e9, rf / f, err,
               err < 1e-9 ? "" : "  WRONG (> 1e-9)");
        bad |= !(err < 1e-9);
        bl_moments_release(&m);
        free(x);
        free(mean);
        free(delta);
        free(m2);
        free(cov);
    }
    gsl_rng_free(rng);
    return bad;
}

#define PROBE_D 64       /* stories260K's width ... */
#define PROBE_V 512      /* ... and vocabulary */
#define PROBE_N 5000     /* rows: 3500 training, 500 validation, 1000 held out */
#define PROBE_EPOCHS 4

/* The probe on a synthetic stream (as in tests/test-probe.c): tokens i.i.d.
 * from p(v) ~ exp(-v/64), r_t = E1[x_{t+1}] + E2[x_{t+2}] + N(0, 0.1^2)
 * with random codebooks, a random RMSNorm head (w in [0.5, 1.5], U of sd
 * 0.5); the target x_{t+1}.  Patience above the epochs, so every epoch runs. */
static void bench_probe(int max_threads)
{
    const int64_t d = PROBE_D, V = PROBE_V, n = PROBE_N;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 512);
    float *w = malloc((size_t)d * sizeof *w), *U = malloc((size_t)(V * d) * sizeof *U);
    float *E = malloc((size_t)(2 * V * d) * sizeof *E), *x = malloc((size_t)(n * d) * sizeof *x);
    int32_t *tok = malloc((size_t)(n + 2) * sizeof *tok);
    unsigned char *train = malloc((size_t)n);
    double *pv = malloc((size_t)V * sizeof *pv);
    for (int64_t j = 0; j < d; j++)
        w[j] = (float)(0.5 + gsl_rng_uniform(rng));
    for (int64_t i = 0; i < V * d; i++)
        U[i] = (float)gsl_ran_gaussian(rng, 0.5);
    for (int64_t i = 0; i < 2 * V * d; i++)
        E[i] = (float)gsl_ran_gaussian(rng, 1.0);
    for (int64_t v = 0; v < V; v++)
        pv[v] = exp(-(double)v / 64.0);
    gsl_ran_discrete_t *g = gsl_ran_discrete_preproc((size_t)V, pv);
    for (int64_t t = 0; t < n + 2; t++)
        tok[t] = (int32_t)gsl_ran_discrete(rng, g);
    gsl_ran_discrete_free(g);
    for (int64_t t = 0; t < n; t++) {
        for (int64_t c = 0; c < d; c++)
            x[t * d + c] = (float)(gsl_ran_gaussian(rng, 0.1) + E[tok[t + 1] * d + c] +
                                   E[(V + tok[t + 2]) * d + c]);
        train[t] = t % 10 < 7 ? 1 : t % 10 == 7 ? 2 : 0;
    }
    struct bl_probe_head head = {.d = d, .n_vocab = V, .norm = BL_NORM_RMS, .norm_w = w,
                                 .norm_b = NULL, .norm_eps = 1e-5f, .unembed = U};
    struct bl_probe_params p = bl_probe_default_params();
    p.epochs = PROBE_EPOCHS;
    p.patience = 1000;
    double rate[3] = {0};
    struct bl_probe_result res = {0};
    printf("\nprobe (bl_probe_fit): d %d, vocabulary %d (stories260K's), %d rows (%d training, %d validation, "
           "%d held out), %d epochs of batch %lld, all run; median of %d:\n",
           PROBE_D, PROBE_V, PROBE_N, PROBE_N * 7 / 10, PROBE_N / 10, PROBE_N / 5, PROBE_EPOCHS,
           (long long)p.batch, REPS);
    printf("%6s %10s %18s %8s\n", "thr", "s per fit", "rows x epochs/s", "bits");
    for (int t = 1; t <= max_threads; t++) {
        p.n_threads = t;
        bl_set_threads(t);
        double tf[REPS];
        bl_err err;
        for (int r = 0; r < REPS; r++) {
            double t0 = now();
            if (bl_probe_fit(&head, x, d, tok + 1, train, n, &p, &res, &err)) {
                printf("probe: %s\n", err.msg);
                goto out;
            }
            tf[r] = now() - t0;
            if (r < REPS - 1)
                bl_probe_result_release(&res);
        }
        double f = median(tf, REPS);
        rate[t] = (double)res.n_train * res.epochs_run / f;
        printf("%6d %10.3f %18.0f %8.3f%s\n", t, f, rate[t], res.bits,
               res.epochs_run == PROBE_EPOCHS ? "" : "  (stopped early)");
        bl_probe_result_release(&res);
    }
    if (max_threads > 1)
        printf("2 threads / 1: %.2fx\n", rate[2] / rate[1]);
out:
    gsl_rng_free(rng);
    free(w);
    free(U);
    free(E);
    free(x);
    free(tok);
    free(train);
    free(pv);
}

#define REPORT_PARAGRAPHS 50
#define REPORT_REPS 3

/* The report end to end: a trace of stories260K over the first paragraphs
 * of TinyStories, recorded with the defaults (resid_post in f16, the
 * lens), then bl_report_compute without and with the probes. */
static void bench_report(const char *td, const char *dir, int max_threads)
{
    char path[4096], tok[4096], tp[4096], out[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", td);
    snprintf(tok, sizeof tok, "%s/models/tok512.bin", td);
    snprintf(tp, sizeof tp, "%s/text/tinystories_train_head.txt", td);
    snprintf(out, sizeof out, "%s/report.blt", dir);
    struct bl_model_params mp = bl_model_default_params();
    mp.tokenizer_path = tok;
    bl_model *m;
    bl_err err;
    FILE *f = fopen(tp, "rb");
    if (!f || bl_model_load(&m, path, &mp, &err)) {
        printf("\n(report: skipped, %s)\n", f ? err.msg : "no text/tinystories_train_head.txt in the test data");
        if (f)
            fclose(f);
        return;
    }
    char *text = calloc(1, 1 << 20);
    if (fread(text, 1, (1 << 20) - 1, f) == 0)
        text[0] = '\0';
    fclose(f);
    /* paragraphs: runs of text between blank lines */
    char *prompts[REPORT_PARAGRAPHS];
    int np = 0;
    for (char *s = text; *s && np < REPORT_PARAGRAPHS;) {
        while (*s == '\n')
            s++;
        char *e = strstr(s, "\n\n");
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len > 0)
            prompts[np++] = strndup(s, len);
        s += len;
    }
    struct bl_record_params rp = bl_record_default_params();
    rp.hash = 0;
    rp.n_threads = max_threads;
    bl_set_threads(max_threads);
    struct bl_record_stats st = {0};
    double t0 = now();
    int rc = bl_record(m, (const char *const *)prompts, np, &rp, out, BL_TRACE_FORCE, &st, &err);
    double trec = now() - t0;
    for (int i = 0; i < np; i++)
        free(prompts[i]);
    free(text);
    if (rc) {
        printf("\nreport: recording the trace: %s\n", err.msg);
        bl_model_free(m);
        return;
    }
    const struct bl_model_config *c = bl_model_config(m);
    double mb = (double)st.trace_bytes / 1e6;
    printf("\nreport (bl_report_compute) end to end: a trace of stories260K over the first %d paragraphs of "
           "tinystories_train_head.txt, %lld positions, %lld hooks (resid_post, width %lld, f16) and the lens, "
           "%.2f MB (recorded in %.1f s, %d threads); bootstrap %d; median of %d:\n",
           np, (long long)st.positions, (long long)c->n_layers, (long long)c->dim, mb, trec, max_threads,
           bl_report_default_params().bootstrap, REPORT_REPS);
    printf("%6s %4s %10s %12s %12s\n", "k", "thr", "seconds", "positions/s", "trace MB/s");
    double sec[2][3] = {{0}};
    for (int k = 0; k <= 4; k += 4) {
        for (int t = 1; t <= max_threads; t++) {
            struct bl_report_params p = bl_report_default_params();
            p.k = k;
            p.model = k ? m : NULL;
            p.n_threads = t;
            p.probe.n_threads = t;
            bl_set_threads(t);
            double tr[REPORT_REPS];
            for (int r = 0; r < REPORT_REPS; r++) {
                bl_trace_reader *rd;
                struct bl_report rep;
                t0 = now();
                rc = bl_trace_reader_open(&rd, out, &err);
                if (!rc) {
                    rc = bl_report_compute(&rd, 1, &p, &rep, &err);
                    bl_trace_reader_free(rd);
                }
                tr[r] = now() - t0;
                if (rc) {
                    printf("report: %s\n", err.msg);
                    goto out;
                }
                bl_report_release(&rep);
            }
            double s = median(tr, REPORT_REPS);
            sec[k / 4][t] = s;
            printf("%6s %4d %10.3f %12.0f %12.2f\n", k ? "4" : "0", t, s, (double)st.positions / s, mb / s);
        }
    }
    if (max_threads > 1)
        printf("2 threads / 1: k 0 %.2fx, k 4 %.2fx\n", sec[0][1] / sec[0][2], sec[1][1] / sec[1][2]);
out:
    unlink(out);
    bl_model_free(m);
}

static double drift_pass(const struct bl_drift_scorer *sc, const char *text, size_t n, const int64_t *off,
                         int64_t nc)
{
    double t0 = now();
    struct bl_drift_features f;
    for (int64_t c = 0; c + 128 <= nc; c += 128)
        bl_drift_features(sc, text + off[c], (size_t)(off[c + 128] - off[c]), NULL, &f);
    (void)n;
    return now() - t0;
}

static void bench_drift(const char *td, int max_threads)
{
    printf("\ndrift (bitlens/drift.h)\n");
    char path[4096];
    snprintf(path, sizeof path, "%s/text/tinystories_train_head.txt", td);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        printf("(drift: no %s)\n", path);
        return;
    }
    char *text = malloc(1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, fp) : 0;
    fclose(fp);
    int64_t *off = malloc((n + 1) * sizeof *off);
    int64_t nc = bl_utf8_offsets(text, n, off);
    double t[REPS];
    bl_drift_ref *ref = NULL;
    bl_err err;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        bl_drift_ref_free(ref);
        if (bl_drift_ref_builtin(&ref, &err)) {
            printf("(drift: %s)\n", err.msg);
            free(text);
            free(off);
            return;
        }
        t[r] = now() - t0;
    }
    printf("built-in reference tables: loaded and indexed in %.1f ms\n", 1e3 * median(t, REPS));
    bl_wordlist *words = NULL;
    if (bl_wordlist_load(&words, "/usr/share/dict/words", &err))
        printf("(no word list: %s)\n", err.msg);
    struct { const char *label; struct bl_drift_scorer sc; } cases[] = {
        {"no tables", {NULL, NULL}},
        {"word list", {NULL, words}},
        {"n-gram tables", {ref, NULL}},
        {"n-gram tables + word list", {ref, words}},
    };
    printf("%-28s %14s %12s\n", "features of 128-char spans", "characters/s", "spans/s");
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        if (!ref && cases[k].sc.ref)
            continue;
        if (!words && cases[k].sc.words)
            continue;
        for (int r = 0; r < REPS; r++)
            t[r] = drift_pass(&cases[k].sc, text, n, off, nc);
        double s = median(t, REPS);
        printf("%-28s %14.0f %12.0f\n", cases[k].label, (double)(nc / 128 * 128) / s, (double)(nc / 128) / s);
    }
    /* the model feature: stories260K's surprisal of the same text */
    char tok[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", td);
    snprintf(tok, sizeof tok, "%s/models/tok512.bin", td);
    struct bl_model_params mp = bl_model_default_params();
    mp.tokenizer_path = tok;
    bl_model *m;
    if (bl_model_load(&m, path, &mp, &err) == 0) {
        float *bits = malloc(n * sizeof *bits);
        size_t m_n = n < 65536 ? n : 65536;
        for (int th = 1; th <= max_threads; th++) {
            struct bl_ctx_params cp = bl_ctx_default_params();
            cp.n_threads = th;
            bl_ctx *ctx;
            if (bl_ctx_alloc(&ctx, m, &cp, &err))
                break;
            for (int r = 0; r < REPS; r++) {
                double t0 = now();
                bl_drift_model_bits(ctx, text, m_n, bits, &err);
                t[r] = now() - t0;
            }
            printf("%-28s %14.0f %12s (stories260K, %d thread%s)\n", "model bits per character", (double)m_n / median(t, REPS),
                   "", th, th > 1 ? "s" : "");
            bl_ctx_free(ctx);
        }
        free(bits);
        bl_model_free(m);
    }
    bl_wordlist_free(words);
    bl_drift_ref_free(ref);
    free(text);
    free(off);
}

/* Returns nonzero if a fast path gave a wrong answer. */
static int bench_analysis(const char *td, const char *dir, int max_threads)
{
    double t0 = now();
    printf("\nanalysis (bitlens/analysis.h)\n");
    int bad = bench_moments();
    bench_probe(max_threads);
    if (td && *td) {
        bench_report(td, dir, max_threads);
        bench_drift(td, max_threads);
    } else
        printf("\n(report and drift: skipped, no test data directory)\n");
    printf("\nanalysis section: %.1f s\n", now() - t0);
    return bad;
}

static void row(const char *label, const bl_model *m, int threads, struct result r, double bw)
{
    double bytes = (double)bl_model_decode_bytes(m);
    double gbs = bytes * r.decode_tps / 1e9;
    printf("%-30s %8.1f MB %3d %12.0f %12.1f %9.2f %8.0f%%\n", label, bytes / 1e6, threads,
           r.prompt_tps, r.decode_tps, gbs, bw > 0 ? 100 * gbs / bw : 0);
}

int main(int argc, char **argv)
{
    const char *td = argc > 1 ? argv[1] : getenv("BL_TESTDATA");
    int max_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (max_threads > 2)
        max_threads = 2;

    printf("bitlens %s bench: %ld processors; kernels %s\n", bl_version(),
           sysconf(_SC_NPROCESSORS_ONLN), getenv("BL_BENCH_KERNELS") ? getenv("BL_BENCH_KERNELS") : "fast");
    printf("cblas_sgemm from %s\n  (%s)\n", bl_blas_name(), bl_blas_config());
    double bw[3] = {0};
    for (int t = 1; t <= max_threads; t++)
        bw[t] = read_bandwidth(t);
    printf("memory read bandwidth (256 MiB, median of %d): 1 thread %.1f GB/s", REPS, bw[1]);
    if (max_threads > 1)
        printf(", 2 threads %.1f GB/s", bw[2]);
    printf("\nprompt: one batch of %d positions; decode: %d single-token steps; median of %d runs\n\n",
           N_PROMPT, N_DECODE, REPS);
    printf("%-30s %11s %3s %12s %12s %9s %9s\n", "model", "weights/tok", "thr", "prompt tok/s",
           "decode tok/s", "GB/s", "of read");

    char path[4096];
    bl_model *m;
    bl_err err;
    if (td) {
        char tok[4096];
        snprintf(path, sizeof path, "%s/models/stories260K.bin", td);
        snprintf(tok, sizeof tok, "%s/models/tok512.bin", td);
        struct bl_model_params mp = bl_model_default_params();
        mp.tokenizer_path = tok;
        if (bl_model_load(&m, path, &mp, &err) == 0) {
            for (int t = 1; t <= max_threads; t++)
                row("stories260K.bin (f32)", m, t, measure(m, t, BL_KERNELS_AUTO, REPS, N_DECODE), bw[t]);
            bl_model_free(m);
        } else {
            printf("(stories260K: %s)\n", err.msg);
        }
    }

    /* the Llama-2 vocabulary (32000 tokens) for the random model, so it
     * can record prompts */
    bl_tokenizer *vocab = NULL;
    char *text = NULL;
    if (td) {
        char vp[4096], tp[4096];
        snprintf(vp, sizeof vp, "%s/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", td);
        bl_gguf *g;
        if (bl_gguf_open(&g, vp, NULL) == 0) {
            bl_tokenizer_from_gguf(&vocab, g, NULL);
            bl_gguf_free(g);
        }
        snprintf(tp, sizeof tp, "%s/text/alice_in_wonderland.txt", td);
        FILE *f = fopen(tp, "rb");
        if (f) {
            text = calloc(1, 1 << 20);
            if (fread(text, 1, (1 << 20) - 1, f) == 0)
                text[0] = '\0';
            fclose(f);
        }
    }
    char dir[] = "/tmp/bitlens-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    struct result ref = {0}, fast1 = {0};
    bl_model *rec_model = NULL;
    int recorded = 0;
    static const int types[] = {BL_F32, BL_F16, BL_Q8_0};
    char f32path[4096];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        int type = types[ti];
        snprintf(path, sizeof path, "%s/random15M-%s.gguf", dir, bl_dtype_name(type));
        fprintf(stderr, "bench: writing %s\n", path);
        if (type == BL_Q8_0) {
            /* quantized from the f32 model by bitlens' own writer */
            bl_model *f;
            if (bl_model_load(&f, f32path, NULL, &err) || bl_model_write_gguf(f, path, BL_Q8_0, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            bl_model_free(f);
        } else if (write_random(path, type, 288, 6, 6, 768, 32000, 512, vocab)) {
            return 1;
        }
        if (bl_model_load(&m, path, NULL, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        char label[64];
        snprintf(label, sizeof label, "random 15M shape (%s)", bl_dtype_name(type));
        for (int t = 1; t <= max_threads; t++) {
            struct result r = measure(m, t, BL_KERNELS_AUTO, REPS, N_DECODE);
            if (type == BL_F32 && t == 1)
                fast1 = r;
            row(label, m, t, r, bw[t]);
        }
        if (type == BL_F32) {
            ref = measure(m, 1, BL_KERNELS_REFERENCE, 1, 16);
            row("  same, reference kernels", m, 1, ref, bw[1]);
            if (vocab)
                recorded = bl_model_load(&rec_model, path, NULL, &err) == 0;
        }
        bl_model_free(m);
        if (type == BL_F32)
            snprintf(f32path, sizeof f32path, "%s", path);
        else
            unlink(path);
    }
    printf("\nfast / reference kernels, 1 thread, random 15M f32: prompt %.1fx, decode %.1fx\n",
           fast1.prompt_tps / ref.prompt_tps, fast1.decode_tps / ref.decode_tps);
    if (recorded) {
        bench_record(rec_model, dir, text, max_threads);
        bl_model_free(rec_model);
    } else {
        printf("\n(recording: no vocabulary in the test data to tokenize prompts with)\n");
    }
    int bad = bench_analysis(td, dir, max_threads);
    bl_tokenizer_free(vocab);
    free(text);
    unlink(f32path);
    rmdir(dir);
    return bad;
}
