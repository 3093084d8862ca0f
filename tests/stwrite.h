/* tests/stwrite.h: a small safetensors writer for the tests.
 *
 * Written from the format description (huggingface/safetensors README), not
 * from bitlens' reader, so the tests check one against the other:
 *
 *   uint64 N (little-endian), N bytes of JSON header, the byte buffer
 *
 * The header holds "__metadata__" first (when any key was set), then the
 * tensors in the order they were added; their data is packed in that order
 * from offset 0 of the byte buffer, so the tensors tile it.  The header is
 * padded with spaces to a multiple of 8 bytes, as the reference writer does
 * (stw_set_align changes that: 1 means no padding).  Shapes are given
 * outermost first, as safetensors and PyTorch write them; the _ne variant
 * takes GGUF order (ne[0] innermost, as struct bl_tensor) and reverses it.
 *
 * Every function returns 0, or -1 for an argument it cannot write (unknown
 * dtype, a byte count that disagrees with the shape, out of memory).  Data
 * is copied: the caller's buffers may go as soon as a call returns. */
#ifndef BITLENS_TESTS_STWRITE_H
#define BITLENS_TESTS_STWRITE_H

#include <stddef.h>
#include <stdint.h>

typedef struct stw stw;

stw *stw_alloc(void);
void stw_free(stw *w);

/* Pad the header to a multiple of `align` bytes (default 8). */
void stw_set_align(stw *w, unsigned align);

/* Add (or replace) a "__metadata__" entry. */
int stw_meta(stw *w, const char *key, const char *value);

/* A tensor of any dtype the format knows ("F32", "U8", "F4", ...), shape
 * outermost first (n_dims 0: a scalar), nbytes of raw little-endian data. */
int stw_add(stw *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
            const void *data, size_t nbytes);

/* A tensor from f32 values stored as "F32", "F16" or "BF16" (rounded to
 * nearest even), shape outermost first. */
int stw_add_f32(stw *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
                const float *values);

/* The same with the shape in GGUF order (ne[0] innermost). */
int stw_add_f32_ne(stw *w, const char *name, const char *dtype, int n_dims, const int64_t *ne,
                   const float *values);

/* Bytes of tensor data so far (an index's "total_size"). */
uint64_t stw_data_size(const stw *w);

/* The whole file in a malloc'd buffer (*size bytes), or NULL. */
unsigned char *stw_build(const stw *w, size_t *size);

/* Write the file to path (created or replaced). */
int stw_write(const stw *w, const char *path);

/* Write a sharded checkpoint's index: tensor names[i] lives in files[i]. */
int stw_write_index(const char *path, const char *const *names, const char *const *files, size_t n,
                    uint64_t total_size);

/* Element size of a dtype in bits, 0 if unknown. */
unsigned stw_dtype_bits(const char *dtype);

#endif
