/* lib/model_internal.h: the parts of bl_model the forward pass reads. */
#ifndef BITLENS_MODEL_INTERNAL_H
#define BITLENS_MODEL_INTERNAL_H

#include <bitlens/model.h>

/* A weight matrix or vector ready for the kernels. */
struct bli_weight {
    const struct bl_tensor *t;   /* the tensor (name, type, shape) */
    const void *data;            /* its data, or an f32 copy for norm vectors */
    int type;                    /* type of data */
};

struct bli_layer {
    struct bli_weight attn_norm, wq, wk, wv, wo;
    struct bli_weight ffn_norm, w_gate, w_up, w_down;
};

/* Weights of a loaded model (owned by it). */
struct bli_weights {
    struct bli_weight tok_embd;   /* [n_vocab x dim] */
    struct bli_layer *layers;     /* n_layers */
    struct bli_weight output_norm;
    struct bli_weight output;     /* [n_vocab x dim]; the embedding when tied */
};

const struct bli_weights *bli_model_weights(const bl_model *m);

#endif
