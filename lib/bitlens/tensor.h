/* bitlens/tensor.h: element types, tensors as views, f16/bf16 conversion.
 *
 * Computation is f32.  Weights may be stored as f32, f16 (IEEE binary16),
 * bf16 (the top half of an f32) or q8_0 (ggml's 8-bit blocks); they are
 * converted a row at a time where they are used, never dequantized whole up
 * front.
 *
 * Shapes follow GGUF: ne[0] is the innermost (contiguous) dimension, so a
 * matrix W with ne = {cols, rows} is stored row-major as W[rows][cols] and a
 * linear layer computes y[r] = sum_c W[r][c] x[c].
 */
#ifndef BITLENS_TENSOR_H
#define BITLENS_TENSOR_H

#include <bitlens/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types.  The values are GGUF's (ggml_type) so a GGUF tensor type
 * maps to itself. */
enum bl_dtype {
    BL_F32 = 0,
    BL_F16 = 1,
    BL_Q8_0 = 8,     /* blocks of 32: an f16 scale d, then 32 int8 q; x = d * q */
    BL_BF16 = 30
};

#define BL_Q8_0_BLOCK 32      /* elements per Q8_0 block */
#define BL_Q8_0_BYTES 34      /* bytes per Q8_0 block */

#define BL_MAX_DIMS 4

/* A tensor: a named, typed view of memory the owner (a model, a GGUF file)
 * keeps alive.  Never freed by the user. */
struct bl_tensor {
    const char *name;          /* "blk.0.attn_q.weight"; owned by the owner */
    int type;                  /* enum bl_dtype */
    int n_dims;                /* 1..BL_MAX_DIMS */
    int64_t ne[BL_MAX_DIMS];   /* elements per dimension, ne[0] innermost;
                                  unused dimensions are 1 */
    const void *data;          /* first element (into the mmap) */
    size_t nbytes;             /* bytes of data */
    size_t offset;             /* byte offset of data in the file */
};

/* Name of a ggml type ("f32", "f16", "bf16", "q4_K", ...), or NULL if the
 * type is unknown.  Every ggml type is named and sized, so a file can be
 * described even where bitlens cannot compute with it. */
const char *bl_dtype_name(int type);

/* 1 if `type` is a dtype bitlens computes with, 0 otherwise. */
int bl_dtype_supported(int type);

/* Elements per block of `type` (1 for plain types, 32 or 256 for quantized
 * ones), or 0 if unknown. */
int64_t bl_dtype_block(int type);

/* Bytes taken by n elements of `type`; 0 if the type is unknown or n is not
 * a whole number of blocks. */
size_t bl_dtype_row_bytes(int type, int64_t n);

/* Number of elements of a tensor (product of ne). */
int64_t bl_tensor_nelements(const struct bl_tensor *t);

/* Exact conversions (round to nearest even where narrowing; NaN stays NaN,
 * overflow becomes infinity). */
float bl_f16_to_f32(uint16_t h);
uint16_t bl_f32_to_f16(float f);
float bl_bf16_to_f32(uint16_t h);
uint16_t bl_f32_to_bf16(float f);

/* Convert n elements of `type` at src into f32 at dst (n a whole number
 * of blocks for q8_0). */
void bl_to_f32(int type, const void *src, float *dst, int64_t n);

/* Quantize n floats (a multiple of 32) to q8_0 as ggml's reference
 * quantizer does: per block d = max|x| / 127, q = round(x / d) (half away
 * from zero), d stored as f16.  dst holds n / 32 * 34 bytes. */
void bl_quantize_q8_0(const float *src, void *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
