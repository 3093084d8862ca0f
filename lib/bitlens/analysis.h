/* bitlens/analysis.h: measurements over traces (DESIGN.md, "Measurements").
 *
 * Token channel: per position entropy H_t = -sum p log2 p and surprisal
 * -log2 p(x_{t+1}), against the bound log2|V| bits per token.
 *
 * Residual channel, per hook point, over the recorded vectors r in R^d:
 *   - a streamed mean and covariance (bl_moments), mergeable across traces,
 *     shards and prompts (Chan et al.'s pairwise update, in double);
 *   - the eigen-spectrum of the covariance (GSL), its participation ratio
 *     (sum l)^2 / sum l^2, effective rank exp(entropy of l / sum l), the
 *     components holding 90% and 99% of the variance;
 *   - the Gaussian capacity at a noise floor s2: 1/2 sum log2(1 + l_i/s2)
 *     bits, an upper figure;
 *   - compressibility: bits per element after uniform quantization at the
 *     noise floor's step and zlib, an empirical figure.
 * Usable information about future tokens (V-information, Xu et al. 2020):
 *   bits about x_{t+k} that a probe trained on r_t recovers on held-out
 *   positions, H_unigram(x_{t+k}) - CE_probe, the probe an affine map into
 *   the model's own final norm and unembedding (bl_probe).  A lower figure:
 *   distribution-free lower bounds on mutual information cannot exceed
 *   O(ln N) for N samples (McAllester & Stratos 2018), so thousands of bits
 *   of capacity and a handful of decodable bits are both honest numbers.
 */
#ifndef BITLENS_ANALYSIS_H
#define BITLENS_ANALYSIS_H

#include <bitlens/common.h>
#include <bitlens/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- moments
 *
 * Streamed mean and covariance of d-dimensional vectors, in double.  Rows
 * are added in batches (centered within the batch, then merged), so one
 * pass over any number of rows costs O(d^2) memory.  Two moments of the
 * same d merge exactly as if their rows had been added to one (up to
 * rounding: the test requires 1e-9 relative). */
struct bl_moments {
    int64_t d;
    double n;          /* rows added (a double: merged counts stay exact below 2^53) */
    double *mean;      /* [d] */
    double *m2;        /* [d x d] sum of (r - mean)(r - mean)^T, upper triangle
                          and lower both filled */
};

/* Allocate for dimension d (n = 0).  BL_ENOMEM if d x d doubles cannot be
 * had.  Release with bl_moments_release(). */
int bl_moments_init(struct bl_moments *m, int64_t d);
void bl_moments_release(struct bl_moments *m);
void bl_moments_reset(struct bl_moments *m);
/* Add n rows of d floats (row-major, stride d). */
int bl_moments_add(struct bl_moments *m, const float *rows, int64_t n);
/* m += other (same d). */
int bl_moments_merge(struct bl_moments *m, const struct bl_moments *other);
/* The covariance (divided by n, the population covariance) into cov [d x d]. */
void bl_moments_covariance(const struct bl_moments *m, double *cov);
/* Mean of the squared elements, sum_i (var_i + mean_i^2) / d: the stream's
 * scale for the default noise floor. */
double bl_moments_mean_square(const struct bl_moments *m);

/* ---------------------------------------------------------------- spectrum */

struct bl_spectrum {
    int64_t d;
    double *eig;              /* [d] eigenvalues of the covariance, descending,
                                 negative rounding noise clipped to 0 */
    double total;             /* sum of eig: the total variance */
    double participation;     /* (sum l)^2 / sum l^2 */
    double effective_rank;    /* exp(-sum q log q), q = l / sum l */
    int64_t c90, c99;         /* components for 90% and 99% of the variance */
};

/* Eigen-decompose the covariance of m (GSL's symmetric eigensolver).
 * Release with bl_spectrum_release(). */
int bl_spectrum_from_moments(struct bl_spectrum *s, const struct bl_moments *m, bl_err *err);
/* The same from eigenvalues given directly (for tests and merged spectra). */
int bl_spectrum_from_eigenvalues(struct bl_spectrum *s, const double *eig, int64_t d);
void bl_spectrum_release(struct bl_spectrum *s);

/* Gaussian capacity 1/2 sum log2(1 + l_i / noise_var), bits. */
double bl_spectrum_capacity(const struct bl_spectrum *s, double noise_var);

/* The default noise floor: the rounding noise of the storage dtype (BL_F32,
 * BL_F16, BL_BF16) at the values actually stored.  A value x = m 2^e,
 * m in [1, 2), sits on a grid of step u = 2^(e + 1 - p), p the dtype's
 * significand bits (24, 11, 8); rounding onto it leaves an error uniform
 * in +-u/2, of variance u^2 / 12.  The floor is the mean of u^2 / 12 over
 * the elements (subnormals and zeros on the dtype's finest grid), counted
 * from the exponents alone, so it follows the stream's real spread of
 * magnitudes rather than a formula in its mean square (which, as
 * mean_square 2^-2p / 3, overstates Gaussian rounding noise 1.85 times and
 * a heavy-tailed stream's more).  A value that is a power of two was
 * rounded from either side of a binade boundary, from an interval of
 * 3u/4 around it (u/4 below on the finer grid, u/2 above): its variance
 * is u^2 / 16.  Non-finite elements are not counted. */
struct bl_rounding {
    int dtype;
    int64_t n;                 /* finite elements counted */
    int64_t count[256];        /* by f32 exponent field */
    int64_t pow2[256];         /* of those, powers of two */
};

void bl_rounding_init(struct bl_rounding *r, int dtype);
void bl_rounding_add(struct bl_rounding *r, const float *x, int64_t n);
/* Mean rounding variance of the elements added (0 if none). */
double bl_rounding_variance(const struct bl_rounding *r);

/* ---------------------------------------------------------------- compress
 *
 * Empirical compressibility: each element quantized to the step
 * sqrt(12 noise_var) (a uniform quantizer whose error has variance
 * noise_var), the integers written as 32-bit little-endian, byte-planed and
 * deflated by zlib; bits per element = 8 * compressed bytes / elements. */
struct bl_compress;
int bl_compress_alloc(struct bl_compress **out, double noise_var);
int bl_compress_add(struct bl_compress *c, const float *values, int64_t n);
/* Finish the stream; bits per element (0 if nothing was added). */
double bl_compress_bits(struct bl_compress *c);
void bl_compress_free(struct bl_compress *c);

/* ---------------------------------------------------------------- percentiles */

/* Percentile block of n values: min, 1%, 5%, median, 95%, 99%, max and
 * mean (GSL quantiles of the sorted values; NaNs are left out and counted). */
struct bl_percentiles {
    int64_t n, nan;
    double min, p01, p05, median, p95, p99, max, mean;
};

/* values is sorted in place. */
void bl_percentiles(double *values, int64_t n, struct bl_percentiles *out);

/* ---------------------------------------------------------------- probe
 *
 * A future-token probe: an affine map r -> A r + b into the input of the
 * model's final norm, then the model's unembedding U, a learned logit scale
 * tau and bias c (z = tau U norm(A r + b) + c), trained by minimizing the cross-entropy of x_{t+k} (analytic
 * gradients, Adam, a seeded shuffle), evaluated on held-out positions.
 * The head (norm and unembedding) is given, not learned.  The bias c (it
 * starts at the log of the smoothed training unigram) puts the unigram in
 * the probe's family: V-information needs a family that can ignore its
 * input (Xu et al. 2020), and softmax(U n) with n confined by the norm
 * cannot express the unigram when n_vocab > d.  The scale tau lets the
 * probe leave the unigram smoothly (at tau = 0 it is the unigram whatever
 * r is; the norm's output never shrinks, so without tau a weakly
 * informative prediction is out of reach of a probe started there); the
 * fit starts at tau = 0, or at tau = 1 with A = I (the logit lens) when
 * that scores better.
 *
 * Rows marked for validation stop the training early: after each epoch the
 * probe's cross-entropy on them is measured, the parameters of the best
 * epoch (the initial ones count as epoch 0) are kept, and training stops
 * after `patience` epochs without improvement.  Held-out bits can still be
 * slightly negative: a probe that learned nothing pays for its noise,
 * about parameters / (2 N_train ln 2) bits. */
struct bl_probe_head {
    int64_t d;               /* width of the norm's input (the model's dim) */
    int64_t n_vocab;         /* rows of the unembedding used (tokens) */
    int norm;                /* BL_NORM_RMS or BL_NORM_LAYER (bitlens/model.h) */
    const float *norm_w;     /* [d] */
    const float *norm_b;     /* [d] or NULL */
    float norm_eps;
    const float *unembed;    /* [n_vocab x d] f32, row-major */
};

struct bl_probe_params {
    int epochs;              /* passes over the training rows at most
                                (default 16) */
    int patience;            /* epochs without a better validation loss
                                before stopping (default 2) */
    int64_t batch;           /* rows per step (default 64) */
    float lr;                /* Adam learning rate (default 1e-3) */
    float weight_decay;      /* on A - I, or on A when d_in != d (default 0) */
    uint64_t seed;           /* shuffle order, and A's random start when d_in != d (default 1) */
    int n_threads;
};

struct bl_probe_params bl_probe_default_params(void);

struct bl_probe_result {
    double ce_probe;         /* held-out cross-entropy, bits per position */
    double ce_unigram;       /* held-out cross-entropy under the training
                                unigram (add-one smoothed), bits */
    double h_unigram;        /* entropy of the held-out targets' empirical
                                distribution, bits */
    double bits;             /* ce_unigram - ce_probe: usable bits */
    double ce_train;         /* training rows' cross-entropy at the end, bits */
    double ce_valid;         /* validation rows' at the kept epoch (NaN: none) */
    int epochs_run, best_epoch;   /* best_epoch 0: the initial parameters */
    double logit_scale_start;     /* tau at the start: 0 (the unigram) or 1
                                     (the logit lens) */
    double logit_scale;           /* tau as trained */
    int64_t n_train, n_valid, n_test;
    double *per_position;    /* [n_test] unigram CE - probe CE of each held-out
                                row, bits (for bootstrap), owned by the result */
};

/* Train on rows x[i] (d_in floats each) with targets y[i] in [0, n_vocab)
 * (-1: skip): train[i] 1 for training, 2 for validation (early stopping;
 * none: all epochs run), 0 for the held-out evaluation.  d_in may differ from the head's d (A is d x d_in).  Free the
 * result with bl_probe_result_release(). */
int bl_probe_fit(const struct bl_probe_head *head, const float *x, int64_t d_in, const int32_t *y,
                 const unsigned char *train, int64_t n, const struct bl_probe_params *p,
                 struct bl_probe_result *out, bl_err *err);
void bl_probe_result_release(struct bl_probe_result *r);

/* The head of a loaded model: its final norm and the first n_tokens rows
 * of its unembedding (0: all), converted to f32 into *buf (free() it after
 * the head's last use). */
int bl_probe_head_from_model(struct bl_probe_head *h, const bl_model *m, int64_t n_tokens, float **buf,
                             bl_err *err);

/* ---------------------------------------------------------------- report
 *
 * Everything above over one trace, in one streamed pass: the token
 * channel from the STAT records, the logit lens from LENS, and for every
 * recorded hook the spectrum, capacity, compressibility and (given the
 * model) the future-token probe, with bootstrap confidence intervals over
 * prompts: B resamples of the prompts with replacement, each estimate
 * recomputed on each (moments merged per prompt; the probe is not
 * retrained: its held-out losses are resampled), the 2.5% and 97.5%
 * quantiles reported.  The bottleneck ratio of an estimate is its value
 * over the mean token entropy (bits actually passed per token), both from
 * the same resample. */

struct bl_trace_reader;

struct bl_report_params {
    const char *hooks;        /* comma-separated globs of recorded hooks
                                 (NULL: all) */
    double noise_var;         /* > 0: this floor for every hook; else each
                                 hook's default (bl_rounding) */
    int k;                    /* probe k = 1..k (default 4; 0: no probe) */
    int lens;                 /* use the LENS records (default 1) */
    int spectrum;             /* eigen-decompose (default 1) */
    int bootstrap;            /* resamples (default 200; 0: no intervals) */
    uint64_t seed;            /* bootstrap, row sample, probe split (default 1) */
    double test_fraction;     /* prompts held out for the probe (default 0.2;
                                 with one prompt, positions are split) */
    int64_t max_rows;         /* rows kept per hook for the probe and the
                                 compressibility (default 20000) */
    size_t memory;            /* bytes for per-prompt moments and kept rows
                                 (default 1 GiB); beyond, intervals are
                                 dropped and rows capped, and the report says */
    const struct bl_model *model;   /* for the probe's head; NULL: no probe */
    struct bl_probe_params probe;
    int n_threads;
    int (*progress)(void *user, const char *stage, int64_t done, int64_t total);
    void *progress_user;
};

struct bl_report_params bl_report_default_params(void);

/* An estimate with its bootstrap interval (lo, hi NaN without one). */
struct bl_estimate {
    double value, lo, hi;
};

/* How one probe of a report trained (bl_probe_result's figures). */
struct bl_report_probe_fit {
    int64_t n_train, n_valid;     /* rows with a target k ahead */
    int epochs_run, best_epoch;   /* best_epoch 0: the starting parameters */
    double logit_scale_start;     /* 0: started at the unigram; 1: at the lens */
    double logit_scale;           /* as trained */
    double ce_train, ce_valid;    /* bits per position (ce_valid NaN: none) */
};

struct bl_report_hook {
    char *name;
    int kind, layer;              /* enum bl_hook_kind; block or -1 */
    int64_t width, rows;          /* values per row; rows seen */
    int64_t kept;                 /* rows kept (a seeded uniform sample) for
                                     the probe and the compressibility */
    double mean_square, noise_var;
    struct bl_spectrum spec;      /* eig NULL if not computed */
    struct bl_estimate participation, effective_rank, capacity;  /* capacity: bits */
    struct bl_estimate capacity_ratio;   /* capacity / mean token entropy */
    double compress_bits;         /* per element; NaN if not computed */
    struct bl_estimate lens_bits;        /* resid_post only: the layer's lens */
    struct bl_estimate lens_ratio;
    int k;                               /* probes fitted (0: none) */
    struct bl_estimate *probe_bits;      /* [k]: bits about x_{t+j}, j = 1..k */
    struct bl_estimate *probe_ratio;     /* [k] */
    double *probe_ce;                    /* [k] held-out CE of the probe, bits */
    double *probe_ce_unigram;            /* [k] held-out CE of the unigram, bits */
    int64_t *probe_n_test;               /* [k] held-out rows */
    struct bl_report_probe_fit *probe_fit;   /* [k] */
};

struct bl_report_lens_layer {
    struct bl_percentiles entropy, cross_entropy, kl;   /* bits */
    double mean_ce;               /* over positions with a next token */
    struct bl_estimate bits;      /* H_unigram(next) - mean CE */
    struct bl_estimate ratio;     /* bits / mean token entropy */
};

/* The drafter channel (traces recorded with a drafter, DRFT records): a
 * pass of the main model with K heads emits up to K+1 tokens, its own
 * x_{t+1} (k = 1) and head j's x_{t+1+j} (k = j+1).  Each k has the mean
 * entropy of that token's distribution, the bits per pass of emitting
 * tokens 1..k (the sum of their mean entropies), the bound k log2|V|, and
 * against the token actually at t+k (prompt or sampled), the share of
 * positions where the distribution's argmax is it and its mean surprisal.
 * k = 1 is the main model's own (from STAT: its mean entropy is the
 * report's mean_entropy). */
struct bl_report_drafter_token {
    struct bl_estimate entropy;        /* mean entropy of token k's distribution, bits */
    struct bl_estimate bits_per_pass;  /* sum of the mean entropies of tokens 1..k, bits */
    double bound;                      /* k log2|V| */
    struct bl_estimate top1;           /* share of positions with the actual token
                                          first (rank 0 of DRFT, rank 1 of STAT) */
    struct bl_estimate surprisal;      /* mean -log2 q(actual), bits */
    int64_t n;                         /* positions */
    int64_t n_known;                   /* of those, with the actual token known */
};

struct bl_report_drafter {
    int n_heads;                       /* K; 0: the traces hold no drafter statistics */
    char *path, *sha256;               /* recorded.drafter (NULL if not recorded) */
    char *kind, *hook;
    int64_t n_positions;               /* DRFT rows */
    struct bl_report_drafter_token *tok;   /* [K + 1]: k = 1 .. K+1 */
    /* tokens a pass yields when its drafts are checked against the
     * recorded continuation: 1 + the heads agreeing before the first that
     * does not, over positions whose K next tokens are all known */
    struct bl_estimate accept_len;
    int64_t accept_n;                  /* those positions */
};

struct bl_report {
    char *trace_name;             /* the traces' names, comma-separated */
    char *model_name, *model_path, *model_sha256;   /* sha NULL if not recorded */
    int64_t n_prompts, n_positions, n_vocab;
    double log2_vocab;            /* the token channel's bound per pass */
    double h_unigram_next;        /* plug-in entropy of the next tokens, bits */
    double temperature;           /* sampling temperature of entropy_t */
    struct bl_percentiles entropy, entropy_t, surprisal;   /* bits */
    struct bl_estimate mean_entropy;
    int complete;                 /* every trace had its closing index */
    int dtype;                    /* storage dtype of the tensors */
    int64_t n_layers;
    int has_lens;
    struct bl_report_lens_layer *lens;   /* [n_layers] when has_lens */
    int64_t n_hooks;
    struct bl_report_hook *hooks;
    int bootstrap;                /* resamples done (0: none) */
    int64_t n_units;              /* resampling units: prompts, or groups of
                                     prompts when memory is short */
    char notes[1024];             /* what was capped or skipped, for the reader */
    struct bl_report_drafter drafter;   /* n_heads 0: none */
};

/* Read the traces r[0..n-1] to their ends and compute one report over
 * all their prompts (the traces must have recorded the same hooks from the
 * same model: their moments merge).  Release with bl_report_release(). */
int bl_report_compute(struct bl_trace_reader *const *r, int n, const struct bl_report_params *p,
                      struct bl_report *out, bl_err *err);
void bl_report_release(struct bl_report *rep);

#ifdef __cplusplus
}
#endif
#endif
