/* lib/drafter_internal.h: the drafter's layout, shared by lib/drafter.c
 * (math, training), lib/drafter_io.c (GGUF files) and
 * lib/drafter_data.c (training sets). */
#ifndef BITLENS_DRAFTER_INTERNAL_H
#define BITLENS_DRAFTER_INTERNAL_H

#include <bitlens/drafter.h>

/* All parameters in one f32 block, head after head, block after block:
 *   W1 [h x d], b1 [h], then W2 [d x h] when width > 0,
 * with h = width ? width : d.  Tensor names in files:
 *   drafter.heads.J.blocks.B.w1 / .b1 / .w2   (J from 1, B from 0). */
struct bli_eagle;

struct bl_drafter {
    struct bl_drafter_config cfg;
    const bl_model *model;
    float *params;            /* EAGLE: the layer's (owned by eagle) */
    int64_t n_params;
    struct bli_eagle *eagle;  /* BL_DRAFTER_EAGLE: the layer */
    float *unembed_buf;       /* the unembedding as f32 [n_vocab x d] */
    const float *unembed;
};

/* EAGLE: the window of verified steps a draft reads, and the window
 * length trained on. */
#define BLI_EAGLE_WINDOW 16

/* Hidden width of a block. */
static inline int64_t bli_drafter_hidden(const struct bl_drafter_config *c)
{
    return c->width > 0 ? c->width : c->d;
}

/* Floats per block and per head. */
static inline int64_t bli_drafter_block_size(const struct bl_drafter_config *c)
{
    int64_t h = bli_drafter_hidden(c);
    return h * c->d + h + (c->width > 0 ? c->d * h : 0);
}

/* Offsets of head j (0-based) block b's W1, b1 and W2 in params. */
static inline int64_t bli_drafter_w1(const struct bl_drafter_config *c, int j, int b)
{
    return ((int64_t)j * c->n_blocks + b) * bli_drafter_block_size(c);
}
static inline int64_t bli_drafter_b1(const struct bl_drafter_config *c, int j, int b)
{
    return bli_drafter_w1(c, j, b) + bli_drafter_hidden(c) * c->d;
}
static inline int64_t bli_drafter_w2(const struct bl_drafter_config *c, int j, int b)
{
    return bli_drafter_b1(c, j, b) + bli_drafter_hidden(c);
}

/* Allocate d with its parameters (zero) and the model's unembedding;
 * cfg's d, n_vocab and identity are filled from model.  For drafter_io. */
int bli_drafter_alloc(bl_drafter **out, const bl_model *model, const struct bl_drafter_config *cfg, bl_err *err);

/* The identity of model into cfg (name, sha256 of its first file, d,
 * n_vocab). */
int bli_drafter_identity(const bl_model *model, struct bl_drafter_config *cfg, bl_err *err);

/* Forward and backward over `rows` features x [rows x d] with targets
 * tok [rows x (K+1)] (column j for head j; -1 skipped), for tests and the
 * trainer: the mean cross-entropy over heads and rows with a target
 * (nats); with grad (n_params floats, not NULL) dL/dparams. */
double bli_drafter_loss(const bl_drafter *d, const float *x, const int32_t *tok, int64_t rows, float *grad,
                        int n_threads);

#endif
