/* lib/model_write.c: write a loaded model as GGUF (`bitlens convert`).
 *
 * Any model bitlens loads (GGUF, llama2.c, a Hugging Face folder) becomes a
 * GGUF v3 file llama.cpp can read too: the architecture's metadata, the
 * vocabulary, and the tensors under their GGUF names, matrices in the asked
 * type.  Two layouts change on the way: a Llama checkpoint that rotates
 * halves of each head (Hugging Face) gets its q and k rows permuted to the
 * adjacent pairs GGUF "llama" expects, and GPT-2's matrices are already
 * transposed at load. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "model_internal.h"

/* general.file_type values llama.cpp uses (llama_ftype) */
static uint32_t file_type(int type)
{
    switch (type) {
    case BL_F32: return 0;
    case BL_F16: return 1;
    case BL_Q8_0: return 7;
    case BL_BF16: return 32;
    default: return 0;
    }
}

/* The row of a halves-layout head matrix that goes to GGUF row r: within a
 * head, adjacent pair (2j, 2j+1) comes from rows j and j + hd/2. */
static int64_t unpermute_row(int64_t r, int64_t hd)
{
    int64_t h = r / hd, i = r % hd;
    return h * hd + (i % 2) * (hd / 2) + i / 2;
}

static int is_qk(const char *name)
{
    const char *s = strrchr(name, '.');
    if (!s)
        return 0;
    size_t n = (size_t)(s - name);
    return (n >= 7 && (memcmp(s - 7, ".attn_q", 7) == 0 || memcmp(s - 7, ".attn_k", 7) == 0));
}

/* Write `t` converted to `type` into a new buffer of *nbytes bytes. */
static void *convert(const struct bl_tensor *t, int type, int permute, int64_t hd, size_t *nbytes)
{
    int64_t cols = t->ne[0], rows = bl_tensor_nelements(t) / cols;
    size_t rb_in = bl_dtype_row_bytes(t->type, cols), rb_out = bl_dtype_row_bytes(type, cols);
    unsigned char *out = malloc(rb_out * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof *row);
    if (!out || !row) {
        free(out);
        free(row);
        return NULL;
    }
    if (permute && t->n_dims == 1) {   /* a q or k bias: permute its elements */
        float *tmp = malloc((size_t)cols * sizeof *tmp);
        if (!tmp) {
            free(out);
            free(row);
            return NULL;
        }
        bl_to_f32(t->type, t->data, tmp, cols);
        for (int64_t i = 0; i < cols; i++)
            row[i] = tmp[unpermute_row(i, hd)];
        free(tmp);
        BL_ASSERT(type == BL_F32);
        memcpy(out, row, (size_t)cols * 4);
        free(row);
        *nbytes = rb_out;
        return out;
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = permute ? unpermute_row(r, hd) : r;
        bl_to_f32(t->type, (const unsigned char *)t->data + (size_t)src * rb_in, row, cols);
        unsigned char *dst = out + (size_t)r * rb_out;
        switch (type) {
        case BL_F32: memcpy(dst, row, (size_t)cols * 4); break;
        case BL_F16:
            for (int64_t c = 0; c < cols; c++) {
                uint16_t h = bl_f32_to_f16(row[c]);
                memcpy(dst + 2 * c, &h, 2);
            }
            break;
        case BL_BF16:
            for (int64_t c = 0; c < cols; c++) {
                uint16_t h = bl_f32_to_bf16(row[c]);
                memcpy(dst + 2 * c, &h, 2);
            }
            break;
        case BL_Q8_0: bl_quantize_q8_0(row, dst, cols); break;
        default: BL_ASSERT(!"convert: type");
        }
    }
    free(row);
    *nbytes = rb_out * (size_t)rows;
    return out;
}

int bl_model_write_gguf(const bl_model *m, const char *path, int type, bl_err *err)
{
    const struct bl_model_config *c = &m->cfg;
    const char *arch = bl_model_arch_name(m);
    bl_gguf_writer *w = NULL;
    void **bufs = NULL;
    int64_t nb = 0;
    char key[96];
    int rc = BL_OK;

    if (type != BL_F32 && type != BL_F16 && type != BL_BF16 && type != BL_Q8_0)
        return bli_err(err, BL_EINVAL, "cannot write tensors of type %s (f32, f16, bf16 and q8_0 are written)",
                       bl_dtype_name(type) ? bl_dtype_name(type) : "unknown");
    const char *why;
    if (!bl_model_computable(m, &why))
        return bli_err(err, BL_EUNSUPPORTED, "%s", why);
    /* GGUF "llama" rotates adjacent pairs: a halves-layout Llama is
     * permuted; qwen2 keeps halves in GGUF too */
    int permute = c->arch == BL_ARCH_LLAMA && c->rope == BL_ROPE_HALVES;
    if (c->arch == BL_ARCH_LLAMA && c->rope == BL_ROPE_HALVES && c->n_rot != c->head_dim)
        return bli_err(err, BL_EUNSUPPORTED, "%s: partial rotary dimensions cannot be permuted", m->path);

    if (!(w = bl_gguf_writer_alloc()) || !(bufs = bli_calloc((size_t)m->n_tensors + 1, sizeof *bufs)))
        goto nomem;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, (suffix)), key)
    BLI_TRY(bl_gguf_writer_set_str(w, "general.architecture", arch));
    BLI_TRY(bl_gguf_writer_set_str(w, "general.name", bl_model_name(m)));
    BLI_TRY(bl_gguf_writer_set_u32(w, "general.file_type", file_type(type)));
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)c->ctx_train));
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)c->dim));
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->hidden_dim));
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)c->n_layers));
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads));
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads));
    if (c->norm == BL_NORM_RMS)
        BLI_TRY(bl_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps));
    else
        BLI_TRY(bl_gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps));
    if (c->rope != BL_ROPE_NONE) {
        BLI_TRY(bl_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->n_rot));
        BLI_TRY(bl_gguf_writer_set_f32(w, KEY("rope.freq_base"), c->rope_base));
    }
    BLI_TRY(bl_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)c->n_vocab));
    if (m->tok && (rc = bl_tokenizer_write_gguf(m->tok, w, c->n_vocab))) {
        rc = bli_err(err, rc, "%s: the vocabulary (%s) cannot be written as GGUF keys (%s)", m->path,
                     bl_tokenizer_model(m->tok), bl_strerror(rc));
        goto done;
    }
#undef KEY

    for (int64_t i = 0; i < m->n_tensors; i++) {
        const struct bl_tensor *t = m->tensors[i];
        /* matrices in the asked type (q8_0 needs rows of whole blocks: f16
         * otherwise, as llama.cpp falls back); vectors in f32 */
        int tt = t->n_dims >= 2 ? type : BL_F32;
        if (tt == BL_Q8_0 && t->ne[0] % BL_Q8_0_BLOCK)
            tt = BL_F16;
        int pm = permute && is_qk(t->name);
        size_t n;
        void *b = convert(t, tt, pm, c->head_dim, &n);
        if (!b)
            goto nomem;
        bufs[nb++] = b;
        BLI_TRY(bl_gguf_writer_add_tensor(w, t->name, tt, t->n_dims, t->ne, b));
    }
    if (m->w.rope_factors && !bl_model_find_tensor(m, "rope_freqs.weight")) {
        int64_t ne = c->n_rot / 2;
        BLI_TRY(bl_gguf_writer_add_tensor(w, "rope_freqs.weight", BL_F32, 1, &ne, m->w.rope_factors));
    }
    rc = bl_gguf_writer_write(w, path, err);
    goto done;
nomem:
    rc = bli_err(err, BL_ENOMEM, "out of memory");
    goto done;
fail:
    rc = bli_err(err, rc, "%s: cannot build the GGUF metadata and tensors (%s)", path, bl_strerror(rc));
done:
    for (int64_t i = 0; i < nb; i++)
        free(bufs[i]);
    free(bufs);
    bl_gguf_writer_free(w);
    return rc;
}
