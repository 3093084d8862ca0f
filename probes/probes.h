/* probes/probes.h: the probes `bitlens record` attaches (internal to
 * libbitlens).  A probe subscribes to hook points of a context and turns
 * what flows through them into trace records (bitlens/record.h). */
#ifndef BITLENS_PROBES_H
#define BITLENS_PROBES_H

#include <cjson/cJSON.h>

#include <bitlens/ctx.h>
#include <bitlens/record.h>
#include <bitlens/trace.h>

/* ---- tensors: rows of every matched hook point, as f32/f16/bf16 (TENS) */

struct bli_tensor_probe;

/* Attach to every point of ctx matching one of the comma-separated globs.
 * hooks_json receives one object per stored point (name, kind, layer,
 * width), in the order of their hook index.  *matched: number of points. */
int bli_tensor_probe_alloc(struct bli_tensor_probe **out, bl_ctx *ctx, const char *globs, int dtype,
                           bl_trace_writer *w, cJSON *hooks_json, int64_t *matched, bl_err *err);
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

#endif
