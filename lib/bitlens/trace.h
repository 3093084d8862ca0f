/* bitlens/trace.h: the trace file `bitlens record` writes and every analyzer
 * reads (bitlens-trace(5)).
 *
 * Byte layout, all integers little-endian:
 *
 *   char    magic[8]      "BLTRACE\n"
 *   uint32  version       1
 *   uint32  header_len    bytes of JSON that follow (at most 64 MiB)
 *   char    header[header_len]   UTF-8 JSON object: tool, command line,
 *                         model identity (with sha256), prompts, sampling,
 *                         what was recorded
 *   uint32  header_crc    CRC-32 (zlib's) of the header bytes
 *   chunks, each:
 *     uint32  type        four ASCII letters, e.g. "TENS"
 *     uint32  flags       bit 0: payload is zlib-compressed; bit 1: the raw
 *                         payload's tensor data is byte-shuffled (see below);
 *                         bits 8-15: the shuffled elements' size in bytes;
 *                         bits 16-31: the offset in the raw payload where
 *                         the shuffled data begins
 *     uint32  stored_len  bytes of payload in the file (at most 64 MiB)
 *     uint32  raw_len     bytes after decompression (at most 64 MiB)
 *     uint32  crc         CRC-32 of the 16 bytes above and the stored payload
 *     uint8   payload[stored_len]
 *   the closing index chunk, type "INDX": uint64 count, then one entry per
 *     earlier chunk: uint32 type, uint32 flags, uint64 offset, uint32
 *     stored_len, uint32 raw_len (a trace of more chunks than 64 MiB of
 *     entries holds writes count 0; readers need not use the index), then
 *     the trailer:
 *   uint64  index_offset  offset of the INDX chunk
 *   char    end[8]        "BLTREND\n"
 *
 * A file without the INDX chunk and trailer was cut short (a crash, a full
 * disk, a pipe closed): it reads back to its last whole chunk and is
 * reported incomplete.  A chunk whose CRC does not match is an error naming
 * the chunk and its offset, and nothing after it is read.  The index is
 * optional for readers: everything reads sequentially, so a trace streams
 * through a pipe.
 *
 * Payloads (after decompression; see bitlens/record.h for the records they
 * hold) begin with a fixed header of uint32/uint64 fields and carry arrays
 * of fixed-size rows.  Byte shuffling (flag bit 1) stores the bytes of
 * tensor elements as planes (all first bytes, then all second bytes, ...),
 * which compresses f16 streams to well under 2 bytes per value; it applies
 * to the data after the payload's fixed header, whose length the chunk type
 * fixes.
 */
#ifndef BITLENS_TRACE_H
#define BITLENS_TRACE_H

#include <stdio.h>
#include <bitlens/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BL_TRACE_MAGIC "BLTRACE\n"
#define BL_TRACE_END "BLTREND\n"
#define BL_TRACE_VERSION 1u
#define BL_TRACE_MAX_CHUNK (64u << 20)
#define BL_TRACE_MAX_HEADER (64u << 20)

#define BL_FOURCC(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* Chunk flags */
#define BL_CHUNK_ZLIB 1u
#define BL_CHUNK_SHUFFLED 2u

/* ---- writing */

typedef struct bl_trace_writer bl_trace_writer;

/* Flags of bl_trace_writer_open() */
#define BL_TRACE_FORCE 1u   /* replace an existing file */

/* Start a trace at `path` ("-" for standard output) with the JSON header
 * `header_json` (copied).  A file is written under a temporary name in the
 * same directory and renamed by bl_trace_writer_close(); an existing file is
 * refused (BL_EIO, "exists") unless BL_TRACE_FORCE.  Free with _close() or
 * _discard(). */
int bl_trace_writer_open(bl_trace_writer **out, const char *path, const char *header_json,
                         unsigned flags, bl_err *err);

/* Append a chunk: the payload (n bytes, copied) is byte-shuffled from offset
 * `shuffle_from` in units of `elem_size` bytes when elem_size > 1 (give 0 to
 * store it as is), compressed with zlib when that makes it smaller, and
 * written with its CRC (payloads under 64 bytes are stored as they are).
 * n at most BL_TRACE_MAX_CHUNK. */
int bl_trace_writer_put(bl_trace_writer *w, uint32_t type, const void *payload, size_t n,
                        size_t shuffle_from, size_t elem_size, bl_err *err);

/* Bytes written so far (header and chunks). */
uint64_t bl_trace_writer_bytes(const bl_trace_writer *w);

/* Write the index and trailer, flush, rename the temporary file to its
 * name, and free the writer (also on failure).  *bytes (if not NULL)
 * receives the size of the whole trace. */
int bl_trace_writer_close(bl_trace_writer *w, uint64_t *bytes, bl_err *err);

/* Free the writer and remove its temporary file: nothing is left. */
void bl_trace_writer_discard(bl_trace_writer *w);

/* ---- reading */

typedef struct bl_trace_reader bl_trace_reader;

/* A chunk as read: the payload decompressed and unshuffled into memory the
 * reader owns, valid until the next bl_trace_reader_next(). */
struct bl_trace_chunk {
    uint32_t type;
    uint32_t flags;
    uint64_t index;                  /* 0, 1, ... in file order */
    uint64_t offset;                 /* of the chunk in the file */
    uint32_t stored_len, raw_len;
    const unsigned char *data;       /* raw_len bytes */
};

/* Open `path` ("-" for standard input) and read its header. */
int bl_trace_reader_open(bl_trace_reader **out, const char *path, bl_err *err);
/* The same over a FILE the caller keeps open (name for messages). */
int bl_trace_reader_open_fp(bl_trace_reader **out, FILE *fp, const char *name, bl_err *err);
/* The same over bytes in memory (borrowed), for tests and fuzzing. */
int bl_trace_reader_open_memory(bl_trace_reader **out, const void *data, size_t size,
                                const char *name, bl_err *err);
void bl_trace_reader_free(bl_trace_reader *r);

/* The header JSON (NUL-terminated, owned by the reader). */
const char *bl_trace_reader_header(const bl_trace_reader *r, size_t *len);
uint32_t bl_trace_reader_version(const bl_trace_reader *r);
const char *bl_trace_reader_name(const bl_trace_reader *r);

/* Read the next data chunk (never the index): 1 with *c filled, 0 at the end
 * of the trace, or a negative status (a CRC mismatch, a malformed chunk)
 * with err naming the chunk and its offset.  A trace cut short ends (0)
 * after its last whole chunk. */
int bl_trace_reader_next(bl_trace_reader *r, struct bl_trace_chunk *c, bl_err *err);

/* After the end: 1 if the closing index and trailer were read, 0 if the
 * trace was cut short.  _offset: the bytes consumed so far (after a cut,
 * including those of the partial chunk). */
int bl_trace_reader_complete(const bl_trace_reader *r);
uint64_t bl_trace_reader_offset(const bl_trace_reader *r);
/* The offset just after the last whole chunk read (or after the header):
 * where a trace cut short stops being usable. */
uint64_t bl_trace_reader_whole_end(const bl_trace_reader *r);

/* 1 if the file at path starts with the trace magic (for `bitlens info`). */
int bl_trace_is_trace(const char *path);

#ifdef __cplusplus
}
#endif
#endif
