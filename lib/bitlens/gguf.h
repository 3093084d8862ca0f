/* bitlens/gguf.h: read and write GGUF files (llama.cpp's model format).
 *
 * Byte layout of GGUF version 3 (all integers little-endian):
 *
 *   uint32  magic            "GGUF" (0x46554747)
 *   uint32  version          3 (2 is read too: same layout)
 *   uint64  n_tensors
 *   uint64  n_kv
 *   n_kv times:
 *     string  key            (uint64 length, then that many bytes, no NUL)
 *     uint32  value type     (enum bl_gguf_type)
 *     value                  scalar, string, or
 *                            array: uint32 element type, uint64 count, elements
 *   n_tensors times:
 *     string  name
 *     uint32  n_dims         1..4
 *     uint64  ne[n_dims]     ne[0] innermost
 *     uint32  type           ggml type (enum bl_dtype values)
 *     uint64  offset         from the start of the data section; a multiple
 *                            of the alignment
 *   padding to `general.alignment` (uint32 key, default 32)
 *   data section             tensor data
 *
 * The reader checks every length and offset against the file size before it
 * touches memory, and rejects overlapping or misaligned tensor data, so a
 * hostile file yields BL_EFORMAT with a message, never a crash.  Keys and
 * tensor names are copied; string values and tensor data are views into the
 * mapping, valid until bl_gguf_free().
 */
#ifndef BITLENS_GGUF_H
#define BITLENS_GGUF_H

#include <stdio.h>
#include <bitlens/common.h>
#include <bitlens/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BL_GGUF_MAGIC 0x46554747u
#define BL_GGUF_DEFAULT_ALIGNMENT 32

enum bl_gguf_type {
    BL_GGUF_UINT8 = 0,
    BL_GGUF_INT8 = 1,
    BL_GGUF_UINT16 = 2,
    BL_GGUF_INT16 = 3,
    BL_GGUF_UINT32 = 4,
    BL_GGUF_INT32 = 5,
    BL_GGUF_FLOAT32 = 6,
    BL_GGUF_BOOL = 7,
    BL_GGUF_STRING = 8,
    BL_GGUF_ARRAY = 9,
    BL_GGUF_UINT64 = 10,
    BL_GGUF_INT64 = 11,
    BL_GGUF_FLOAT64 = 12
};

typedef struct bl_gguf bl_gguf;

/* A string inside the file: not NUL-terminated. */
struct bl_gguf_str {
    const char *ptr;
    uint64_t len;
};

/* Open and map `path`.  On success *out owns the mapping; free it with
 * bl_gguf_free(). */
int bl_gguf_open(bl_gguf **out, const char *path, bl_err *err);

/* Parse a GGUF image already in memory (borrowed: it must outlive the
 * handle).  `name` is used in messages.  For fuzzing and tests. */
int bl_gguf_open_memory(bl_gguf **out, const void *data, size_t size,
                        const char *name, bl_err *err);

void bl_gguf_free(bl_gguf *g);

uint32_t bl_gguf_version(const bl_gguf *g);
size_t bl_gguf_file_size(const bl_gguf *g);
size_t bl_gguf_data_offset(const bl_gguf *g);   /* start of the data section */
const char *bl_gguf_name(const bl_gguf *g);      /* the path or given name */

/* ---- metadata */
int64_t bl_gguf_n_kv(const bl_gguf *g);
/* Index of `key`, or -1. */
int64_t bl_gguf_find_key(const bl_gguf *g, const char *key);
const char *bl_gguf_key(const bl_gguf *g, int64_t i);
int bl_gguf_kv_type(const bl_gguf *g, int64_t i);          /* enum bl_gguf_type */
const char *bl_gguf_type_name(int type);                   /* "uint32", ... */

/* Typed getters by key.  Return 0, BL_ENOTFOUND if the key is absent, or
 * BL_EFORMAT (with a message in err) if it has another type.  Integer getters
 * accept any integer type whose value fits. */
int bl_gguf_get_u32(const bl_gguf *g, const char *key, uint32_t *out, bl_err *err);
int bl_gguf_get_i64(const bl_gguf *g, const char *key, int64_t *out, bl_err *err);
int bl_gguf_get_f32(const bl_gguf *g, const char *key, float *out, bl_err *err);
int bl_gguf_get_bool(const bl_gguf *g, const char *key, int *out, bl_err *err);
int bl_gguf_get_str(const bl_gguf *g, const char *key, struct bl_gguf_str *out, bl_err *err);

/* Arrays: element type and count of key `key`; BL_ENOTFOUND or BL_EFORMAT
 * if absent or not an array. */
int bl_gguf_get_arr(const bl_gguf *g, const char *key, int *elem_type,
                    uint64_t *n, bl_err *err);
/* Pointer to the elements of a numeric array (unaligned: read with memcpy). */
const void *bl_gguf_arr_data(const bl_gguf *g, const char *key);
/* Fill strs[0..n-1] with the strings of a string array; n as from get_arr. */
int bl_gguf_arr_strings(const bl_gguf *g, const char *key, struct bl_gguf_str *strs,
                        uint64_t n, bl_err *err);

/* ---- tensors */
int64_t bl_gguf_n_tensors(const bl_gguf *g);
const struct bl_tensor *bl_gguf_tensor(const bl_gguf *g, int64_t i);
/* The tensor named `name`, or NULL. */
const struct bl_tensor *bl_gguf_find_tensor(const bl_gguf *g, const char *name);

/* ---- writer
 *
 * Collects metadata and tensors in memory and writes a GGUF v3 file.  Tensor
 * data is borrowed until bl_gguf_writer_write() returns.  Keys are written in
 * the order they were first set; setting a key again replaces its value. */
typedef struct bl_gguf_writer bl_gguf_writer;

bl_gguf_writer *bl_gguf_writer_alloc(void);
void bl_gguf_writer_free(bl_gguf_writer *w);
int bl_gguf_writer_set_u32(bl_gguf_writer *w, const char *key, uint32_t v);
int bl_gguf_writer_set_i32(bl_gguf_writer *w, const char *key, int32_t v);
int bl_gguf_writer_set_u64(bl_gguf_writer *w, const char *key, uint64_t v);
int bl_gguf_writer_set_f32(bl_gguf_writer *w, const char *key, float v);
int bl_gguf_writer_set_bool(bl_gguf_writer *w, const char *key, int v);
int bl_gguf_writer_set_str(bl_gguf_writer *w, const char *key, const char *v);
/* Numeric array: n elements of `elem_type` (a fixed-size gguf type) copied. */
int bl_gguf_writer_set_arr(bl_gguf_writer *w, const char *key, int elem_type,
                           const void *data, uint64_t n);
int bl_gguf_writer_set_arr_str(bl_gguf_writer *w, const char *key,
                               const char *const *strs, const size_t *lens, uint64_t n);
/* Add a tensor; `data` holds bl_dtype_row_bytes(type, ne[0]) * rows bytes. */
int bl_gguf_writer_add_tensor(bl_gguf_writer *w, const char *name, int type,
                              int n_dims, const int64_t *ne, const void *data);
/* Write the file to a stream, or to `path` (through a temporary name and a
 * rename, so a failed write never leaves a partial file). */
int bl_gguf_writer_write_fp(bl_gguf_writer *w, FILE *fp, bl_err *err);
int bl_gguf_writer_write(bl_gguf_writer *w, const char *path, bl_err *err);

#ifdef __cplusplus
}
#endif
#endif
