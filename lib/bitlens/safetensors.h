/* bitlens/safetensors.h: read safetensors files (Hugging Face's format),
 * single or sharded.
 *
 * Byte layout (all integers little-endian):
 *
 *   uint64  N                header length in bytes (at most 100000000)
 *   N bytes header           UTF-8 JSON object, maybe padded with spaces:
 *     "__metadata__": {"key": "value", ...}      optional, strings only
 *     "NAME": {"dtype": "F32",                   one entry per tensor
 *              "shape": [d0, d1, ...],           outermost first, row-major;
 *                                                [] is a scalar
 *              "data_offsets": [begin, end]}     bytes [begin, end) of the
 *                                                byte buffer
 *   byte buffer              the rest of the file: tensor data, packed, no
 *                            strides
 *
 * A sharded checkpoint adds model.safetensors.index.json beside the shards:
 *
 *   {"metadata": {"total_size": 123, ...},
 *    "weight_map": {"NAME": "model-00001-of-00002.safetensors", ...}}
 *
 * What the reader accepts (the rules of the reference implementation,
 * huggingface/safetensors, checked before any byte is touched):
 *   - the file holds the 8-byte length and the whole header; the header is
 *     at most 100000000 bytes, valid UTF-8 without NUL bytes, one JSON
 *     object that starts with '{', followed by nothing but whitespace;
 *   - no key appears twice, at the top level or inside an entry;
 *   - "__metadata__", if present, is an object of strings (or null);
 *   - each tensor entry is an object with a known "dtype" string, a "shape"
 *     array and a "data_offsets" pair; dimensions and offsets are integers
 *     from 0 to 2^53 - 1 (JSON numbers are doubles here: larger ones could
 *     not be exact; 3, 3.0 and 3e0 are all read as 3); the product of the
 *     non-zero dimensions fits in an int64_t;
 *   - end - begin is exactly the element size times the element count (a
 *     dimension of 0 makes an empty tensor of 0 bytes);
 *   - the tensors tile the byte buffer exactly: sorted by offset, each one
 *     starts where the previous one ends, the first at 0 and the last ends
 *     at the end of the file (no overlap, no hole, no trailing bytes).
 * A file that breaks a rule gets BL_EFORMAT with a message naming the file
 * and the tensor, key or offset.  A well-formed file with a tensor of more
 * than 4 dimensions gets BL_EUNSUPPORTED.  Tensor data need not be aligned
 * (the reference writer pads the header to a multiple of 8 bytes, other
 * writers may not): read it with memcpy or the bl_to_f32() family.
 *
 * Tensors are struct bl_tensor views with GGUF's dimension order: ne[0] is
 * the innermost dimension, the LAST entry of "shape", so a safetensors
 * [rows, cols] matrix has ne = {cols, rows}; a scalar (shape []) has n_dims
 * 1 and ne = {1}.  `type` is the ggml type number of the dtype:
 *
 *   F32 0   F16 1   BF16 30   F64 28   I8 24   I16 25   I32 26   I64 27
 *
 * Every other dtype of the format (U8, U16, U32, U64, BOOL, C64, F8_E4M3,
 * F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, F6_E2M3, F6_E3M2, F4) is
 * accepted and described with type -1 and its nbytes computed from its
 * element size, so a model loader can skip what it does not use;
 * bl_safetensors_dtype() gives the dtype as the file spells it.  An unknown
 * dtype string is BL_EFORMAT.  `offset` is the absolute byte offset of the
 * data in its file; `data` points into the mapping.
 *
 * Ownership: names, dtype strings, metadata and tensor data returned by the
 * getters belong to the handle and stay valid until bl_safetensors_free().
 * A handle is read-only after it is opened: threads may share it.
 */
#ifndef BITLENS_SAFETENSORS_H
#define BITLENS_SAFETENSORS_H

#include <bitlens/common.h>
#include <bitlens/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The reference implementation's header size limit. */
#define BL_SAFETENSORS_MAX_HEADER 100000000u

typedef struct bl_safetensors bl_safetensors;

/* Open and map the safetensors file `path`.  On success *out owns the
 * mapping; free it with bl_safetensors_free().  On failure *out is NULL and
 * err says why: BL_EIO (cannot open or map), BL_EFORMAT, BL_EUNSUPPORTED,
 * BL_ENOMEM. */
int bl_safetensors_open(bl_safetensors **out, const char *path, bl_err *err);

/* Parse a safetensors image already in memory.  The memory is borrowed: it
 * must outlive the handle.  `name` (may be NULL) is used in messages and
 * returned by bl_safetensors_name().  For tests and fuzzing. */
int bl_safetensors_open_memory(bl_safetensors **out, const void *data, size_t size,
                               const char *name, bl_err *err);

/* Open a sharded checkpoint through its index (model.safetensors.index.json):
 * every shard its weight_map names is opened once, from the index's own
 * directory, and the tensors of all shards are presented as one table, in
 * weight_map order.  Shard names must be plain file names (not empty, no
 * '/' and no "..").  Errors, besides those of each shard (named by its
 * path): the index is not a JSON object with a "weight_map" object of
 * strings; a tensor the map lists is absent from its shard; a tensor is in
 * a shard the map does not name for it (in two shards, or not listed).
 * Metadata: the scalars of the index's "metadata" object as text
 * ("total_size" -> "123"), then the "__metadata__" keys of the shards not
 * already present (the first shard, in file name order, wins). */
int bl_safetensors_open_index(bl_safetensors **out, const char *index_json_path, bl_err *err);

/* Free the handle, its mappings and everything the getters returned.
 * NULL is allowed. */
void bl_safetensors_free(bl_safetensors *st);

/* The path or name given when opening (the index path for a sharded
 * checkpoint). */
const char *bl_safetensors_name(const bl_safetensors *st);

/* ---- tensors */

int64_t bl_safetensors_n_tensors(const bl_safetensors *st);

/* Tensor i, 0 <= i < n_tensors (in header order for one file); a view
 * owned by the handle. */
const struct bl_tensor *bl_safetensors_tensor(const bl_safetensors *st, int64_t i);

/* The tensor named `name`, or NULL (binary search: O(log n)). */
const struct bl_tensor *bl_safetensors_find(const bl_safetensors *st, const char *name);

/* The dtype of tensor i as the file spells it ("F32", "U8", ...); a static
 * string. */
const char *bl_safetensors_dtype(const bl_safetensors *st, int64_t i);

/* The file that holds tensor i: the name of the handle for a single file,
 * the shard's path for a sharded checkpoint. */
const char *bl_safetensors_tensor_file(const bl_safetensors *st, int64_t i);

/* ---- metadata ("__metadata__", and the index's "metadata") */

/* The value of `key`, or NULL if absent. */
const char *bl_safetensors_metadata(const bl_safetensors *st, const char *key);

/* Enumerate the metadata: count, then key i and its value, in file order. */
int64_t bl_safetensors_n_metadata(const bl_safetensors *st);
const char *bl_safetensors_metadata_key(const bl_safetensors *st, int64_t i);
const char *bl_safetensors_metadata_value(const bl_safetensors *st, int64_t i);

#ifdef __cplusplus
}
#endif
#endif
