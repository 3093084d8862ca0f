/* probes/probes.h: the probes `bitlens record` attaches (internal to
 * libbitlens).  A probe subscribes to hook points of a context and turns
 * what flows through them into trace records (bitlens/record.h). */
#ifndef BITLENS_PROBES_H
#define BITLENS_PROBES_H

#include <cjson/cJSON.h>

#include <bitlens/ctx.h>
#include <bitlens/drafter.h>
#include <bitlens/record.h>
#include <bitlens/trace.h>

/* ---- tensors: rows of every matched hook point, as f32/f16/bf16 (TENS) */

struct bli_tensor_probe;

/* A point outside the context (a drafter's tensors): rows come through
 * bli_tensor_probe_put(), not through a hook. */
struct bli_extra_point {
    const char *name;
    int kind, layer, head;    /* for the header; head 0: none */
    int64_t width;
};

/* Attach to every point of ctx matching one of the comma-separated globs,
 * and take the extra points [n_extra] that match them (after the model's).
 * hooks_json receives one object per stored point (name, kind, layer,
 * width, and head for an extra one with a head), in the order of their
 * hook index.  *matched: number of points. */
int bli_tensor_probe_alloc(struct bli_tensor_probe **out, bl_ctx *ctx, const char *globs, int dtype,
                           const struct bli_extra_point *extra, int64_t n_extra, bl_trace_writer *w,
                           cJSON *hooks_json, int64_t *matched, bl_err *err);
/* The point stored for extra point i, or -1 if the globs left it out. */
int64_t bli_tensor_probe_extra(const struct bli_tensor_probe *p, int64_t i);
/* Rows of an extra point: n rows of `width` floats from pos0, row i at
 * rows + i * stride (floats). */
int bli_tensor_probe_put(struct bli_tensor_probe *p, int64_t point, const char *name, int64_t pos0, int64_t n,
                         int64_t width, const float *rows, int64_t stride, bl_err *err);
/* The writer the chunks go to (the probe can be made before the trace is
 * opened, to name its hooks in the header). */
void bli_tensor_probe_writer(struct bli_tensor_probe *p, bl_trace_writer *w);
/* The prompt the next rows belong to. */
void bli_tensor_probe_prompt(struct bli_tensor_probe *p, uint32_t prompt);
/* Write what is buffered. */
int bli_tensor_probe_flush(struct bli_tensor_probe *p, bl_err *err);
/* A write error raised inside a hook (the hook stopped the run). */
const bl_err *bli_tensor_probe_error(const struct bli_tensor_probe *p);
int64_t bli_tensor_probe_values(const struct bli_tensor_probe *p);
void bli_tensor_probe_free(struct bli_tensor_probe *p);

/* ---- token statistics of one position (STAT rows) */

#define BLI_STAT_ROW_BYTES(k) (28 + 8 * (size_t)(k))

/* Fill one STAT row at out from the position's logits [V]: entropy at T=1
 * and at temperature t (0 for t == 0), surprisal, rank and probability of
 * `next` (-1: none: NaN, 0, NaN), and the top k.  work: V floats. */
void bli_tokstats_row(const float *logits, int64_t V, int32_t token, int32_t next, float t, int k,
                      float *work, unsigned char *out);

/* ---- logit lens: each block's resid_post through the final norm and the
 * unembedding (LENS rows) */

struct bli_lens_probe;

/* n_tokens: the distributions run over the first n_tokens rows of the
 * unembedding (the vocabulary; an embedding may be padded past it). */
int bli_lens_probe_alloc(struct bli_lens_probe **out, bl_ctx *ctx, int64_t n_batch, int64_t n_tokens, int n_threads,
                         bl_err *err);
/* The batch about to be evaluated: its row 0 is position pos0 and is kept
 * in row `slot` of the probe's store (slot + rows <= n_batch), so rows of
 * several single-token steps can gather before one computation. */
void bli_lens_probe_batch(struct bli_lens_probe *p, int64_t pos0, int64_t slot);
/* Store rows [0, n): logits [n x V] of the model for them, next tokens
 * (-1: none); out: n x n_layers x 3 floats. */
void bli_lens_probe_rows(struct bli_lens_probe *p, int64_t n, const float *logits, const int32_t *next, float *out);
void bli_lens_probe_free(struct bli_lens_probe *p);

/* ---- drafter: a drafter's heads at each evaluated position (DRFT rows,
 * and its tensors through the tensor probe) */

struct bli_drafter_probe;

/* Run d on the rows of its hook in ctx (BL_EINVAL if ctx's model has not
 * that hook, or of another width).  n_batch: most positions per eval;
 * n_tokens: the statistics run over the first n_tokens logits; tp (may be
 * NULL) stores the tensors of the drafter points it took, which are the
 * extra points [2K] of bli_drafter_probe_points() in that order. */
int bli_drafter_probe_alloc(struct bli_drafter_probe **out, bl_ctx *ctx, const bl_drafter *d, int64_t n_batch,
                            int64_t n_tokens, int n_threads, bl_err *err);
/* The 2K extra points of the drafter's tensors: head 1 hidden, head 1
 * logits, head 2 hidden, ... (names owned by the probe). */
const struct bli_extra_point *bli_drafter_probe_points(const struct bli_drafter_probe *p, int64_t *n);
/* Where the tensors go (NULL: none), and the trace writer (NULL: the
 * records are dropped).  Called again when the writer opens. */
int bli_drafter_probe_outputs(struct bli_drafter_probe *p, struct bli_tensor_probe *tp, bl_trace_writer *w,
                              bl_err *err);
/* A new prompt: its index, and the tokens known so far (the caller's
 * array, which grows as tokens are sampled: seq[0 .. *n_seq)). */
void bli_drafter_probe_prompt(struct bli_drafter_probe *p, uint32_t prompt, const int32_t *seq, const int64_t *n_seq);
/* The batch about to be evaluated: positions pos0 .. pos0+n-1. */
void bli_drafter_probe_batch(struct bli_drafter_probe *p, int64_t pos0, int64_t n);
/* The batch's positions pos0 .. pos0+n-1 were evaluated: draft from them
 * (the tokens known so far settle what they can).  model_logits: the
 * model's logits of those positions [n x n_vocab], read by an EAGLE-style
 * drafter at a position whose next token is not known (may be NULL when
 * every next token is). */
int bli_drafter_probe_rows(struct bli_drafter_probe *p, int64_t pos0, int64_t n, const float *model_logits,
                           bl_err *err);
/* More tokens are known (*n_seq grew): settle the drafts they decide. */
void bli_drafter_probe_known(struct bli_drafter_probe *p);
/* The prompt is done: the rest stays unknown; write what is buffered. */
int bli_drafter_probe_flush(struct bli_drafter_probe *p, bl_err *err);
int64_t bli_drafter_probe_n_rows(const struct bli_drafter_probe *p);
void bli_drafter_probe_free(struct bli_drafter_probe *p);

#endif
