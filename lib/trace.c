/* lib/trace.c: the trace file (layout in bitlens/trace.h).
 *
 * The chunk flags carry the shuffle parameters: bits 8-15 the element size,
 * bits 16-31 the offset in the raw payload where shuffled data begins. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <bitlens/trace.h>
#include "internal.h"

#define TYPE_INDEX BL_FOURCC('I', 'N', 'D', 'X')
#define CHUNK_HEADER 20u

/* elements of es bytes from src (m bytes) into planes at dst */
static void shuffle(unsigned char *dst, const unsigned char *src, size_t m, size_t es)
{
    size_t n = m / es;
    for (size_t e = 0; e < n; e++)
        for (size_t b = 0; b < es; b++)
            dst[b * n + e] = src[e * es + b];
}

static void unshuffle(unsigned char *dst, const unsigned char *src, size_t m, size_t es)
{
    size_t n = m / es;
    for (size_t b = 0; b < es; b++)
        for (size_t e = 0; e < n; e++)
            dst[e * es + b] = src[b * n + e];
}

static uint32_t chunk_crc(const unsigned char *hdr16, const unsigned char *payload, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr16, 16);
    /* zlib's crc32 takes uInt lengths: feed large payloads in pieces */
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, payload, k);
        payload += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ------------------------------------------------------------------ write */

struct index_entry {
    uint32_t type, flags;
    uint64_t offset;
    uint32_t stored, raw;
};

struct bl_trace_writer {
    FILE *fp;
    int to_stdout;
    char *path, *tmp;
    uint64_t bytes;
    struct index_entry *idx;
    size_t n_idx, cap_idx;
    unsigned char *buf;       /* shuffle scratch */
    unsigned char *zbuf;      /* compressed payload */
    size_t buf_cap, zbuf_cap;
    int failed;
};

static int wr(bl_trace_writer *w, const void *p, size_t n, bl_err *err)
{
    if (n && fwrite(p, 1, n, w->fp) != n) {
        w->failed = 1;
        return bli_err(err, BL_EIO, "%s: write failed: %s", w->to_stdout ? "<stdout>" : w->tmp, strerror(errno));
    }
    w->bytes += n;
    return BL_OK;
}

static int grow(unsigned char **b, size_t *cap, size_t need)
{
    if (*cap >= need)
        return BL_OK;
    unsigned char *n = realloc(*b, need);
    if (!n)
        return BL_ENOMEM;
    *b = n;
    *cap = need;
    return BL_OK;
}

int bl_trace_writer_open(bl_trace_writer **out, const char *path, const char *header_json,
                         unsigned flags, bl_err *err)
{
    bl_trace_writer *w = calloc(1, sizeof *w);
    size_t hl = strlen(header_json);
    int rc;

    *out = NULL;
    if (!w)
        return bli_err(err, BL_ENOMEM, "out of memory");
    if (hl > BL_TRACE_MAX_HEADER) {
        free(w);
        return bli_err(err, BL_EINVAL, "trace header of %zu bytes is too large", hl);
    }
    if (strcmp(path, "-") == 0) {
        w->fp = stdout;
        w->to_stdout = 1;
    } else {
        struct stat st;
        if (!(flags & BL_TRACE_FORCE) && stat(path, &st) == 0) {
            free(w);
            return bli_err(err, BL_EIO, "%s: exists (--force replaces it)", path);
        }
        size_t n = strlen(path) + 32;
        w->path = bli_strdup(path);
        w->tmp = malloc(n);
        if (!w->path || !w->tmp) {
            bl_trace_writer_discard(w);
            return bli_err(err, BL_ENOMEM, "out of memory");
        }
        snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
        if (!(w->fp = fopen(w->tmp, "wb"))) {
            rc = bli_err(err, BL_EIO, "%s: cannot create: %s", w->tmp, strerror(errno));
            free(w->tmp);
            w->tmp = NULL;
            bl_trace_writer_discard(w);
            return rc;
        }
    }
    unsigned char h[16];
    memcpy(h, BL_TRACE_MAGIC, 8);
    bli_wr_u32(h + 8, BL_TRACE_VERSION);
    bli_wr_u32(h + 12, (uint32_t)hl);
    unsigned char crc[4];
    bli_wr_u32(crc, (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)header_json, (uInt)hl));
    if ((rc = wr(w, h, 16, err)) || (rc = wr(w, header_json, hl, err)) || (rc = wr(w, crc, 4, err))) {
        bl_trace_writer_discard(w);
        return rc;
    }
    *out = w;
    return BL_OK;
}

uint64_t bl_trace_writer_bytes(const bl_trace_writer *w)
{
    return w->bytes;
}

/* write one chunk: payload already in its final raw form */
static int put_chunk(bl_trace_writer *w, uint32_t type, uint32_t flags, const unsigned char *raw, size_t n,
                     bl_err *err)
{
    int rc;
    const unsigned char *stored = raw;
    size_t stored_len = n;
    uLongf zl = compressBound((uLong)n);
    if (n >= 64) {
        if (grow(&w->zbuf, &w->zbuf_cap, zl))
            return bli_err(err, BL_ENOMEM, "out of memory");
        if (compress2(w->zbuf, &zl, raw, (uLong)n, 1) == Z_OK && zl < n) {
            stored = w->zbuf;
            stored_len = zl;
            flags |= BL_CHUNK_ZLIB;
        }
    }
    unsigned char h[CHUNK_HEADER];
    bli_wr_u32(h, type);
    bli_wr_u32(h + 4, flags);
    bli_wr_u32(h + 8, (uint32_t)stored_len);
    bli_wr_u32(h + 12, (uint32_t)n);
    bli_wr_u32(h + 16, chunk_crc(h, stored, stored_len));
    if (w->n_idx == w->cap_idx) {
        size_t cap = w->cap_idx ? 2 * w->cap_idx : 256;
        struct index_entry *ni = realloc(w->idx, cap * sizeof *ni);
        if (!ni)
            return bli_err(err, BL_ENOMEM, "out of memory");
        w->idx = ni;
        w->cap_idx = cap;
    }
    w->idx[w->n_idx] = (struct index_entry){type, flags, w->bytes, (uint32_t)stored_len, (uint32_t)n};
    if ((rc = wr(w, h, CHUNK_HEADER, err)) || (rc = wr(w, stored, stored_len, err)))
        return rc;
    w->n_idx++;
    return BL_OK;
}

int bl_trace_writer_put(bl_trace_writer *w, uint32_t type, const void *payload, size_t n,
                        size_t shuffle_from, size_t elem_size, bl_err *err)
{
    if (w->failed)
        return bli_err(err, BL_EIO, "%s: an earlier write failed", w->to_stdout ? "<stdout>" : w->tmp);
    if (n > BL_TRACE_MAX_CHUNK || type == TYPE_INDEX)
        return bli_err(err, BL_EINVAL, "chunk of %zu bytes (at most %u) or of the index type", n, BL_TRACE_MAX_CHUNK);
    const unsigned char *raw = payload;
    uint32_t flags = 0;
    if (elem_size > 1) {
        BL_ASSERT(elem_size < 256 && shuffle_from < 65536 && shuffle_from <= n &&
                  (n - shuffle_from) % elem_size == 0);
        if (grow(&w->buf, &w->buf_cap, n ? n : 1))
            return bli_err(err, BL_ENOMEM, "out of memory");
        if (shuffle_from)
            memcpy(w->buf, payload, shuffle_from);
        shuffle(w->buf + shuffle_from, raw + shuffle_from, n - shuffle_from, elem_size);
        raw = w->buf;
        flags = BL_CHUNK_SHUFFLED | (uint32_t)elem_size << 8 | (uint32_t)shuffle_from << 16;
    }
    return put_chunk(w, type, flags, raw, n, err);
}

static void writer_free(bl_trace_writer *w)
{
    free(w->idx);
    free(w->buf);
    free(w->zbuf);
    free(w->path);
    free(w->tmp);
    free(w);
}

int bl_trace_writer_close(bl_trace_writer *w, uint64_t *bytes, bl_err *err)
{
    int rc = BL_OK;
    uint64_t at = w->bytes;
    size_t n = w->n_idx * 24 + 8;
    unsigned char *p = malloc(n);
    if (!p) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto fail;
    }
    bli_wr_u64(p, w->n_idx);
    for (size_t i = 0; i < w->n_idx; i++) {
        unsigned char *e = p + 8 + i * 24;
        bli_wr_u32(e, w->idx[i].type);
        bli_wr_u32(e + 4, w->idx[i].flags);
        bli_wr_u64(e + 8, w->idx[i].offset);
        bli_wr_u32(e + 16, w->idx[i].stored);
        bli_wr_u32(e + 20, w->idx[i].raw);
    }
    if (n > BL_TRACE_MAX_CHUNK) {   /* a huge trace: readers do without the index */
        free(p);
        p = NULL;
        n = 8;
        unsigned char none[8] = {0};
        rc = put_chunk(w, TYPE_INDEX, 0, none, 8, err);
    } else {
        rc = put_chunk(w, TYPE_INDEX, 0, p, n, err);
    }
    free(p);
    if (rc)
        goto fail;
    unsigned char t[16];
    bli_wr_u64(t, at);
    memcpy(t + 8, BL_TRACE_END, 8);
    if ((rc = wr(w, t, 16, err)))
        goto fail;
    if (fflush(w->fp) != 0) {
        rc = bli_err(err, BL_EIO, "%s: write failed: %s", w->to_stdout ? "<stdout>" : w->tmp, strerror(errno));
        goto fail;
    }
    if (bytes)
        *bytes = w->bytes;
    if (!w->to_stdout) {
        FILE *fp = w->fp;
        w->fp = NULL;
        if (fclose(fp) != 0) {
            rc = bli_err(err, BL_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
            goto fail;
        }
        if (rename(w->tmp, w->path) != 0) {
            rc = bli_err(err, BL_EIO, "%s: cannot rename to '%s': %s", w->tmp, w->path, strerror(errno));
            goto fail;
        }
    }
    writer_free(w);
    return BL_OK;
fail:
    bl_trace_writer_discard(w);
    return rc;
}

void bl_trace_writer_discard(bl_trace_writer *w)
{
    if (!w)
        return;
    if (!w->to_stdout) {
        if (w->fp)
            fclose(w->fp);
        if (w->tmp)
            unlink(w->tmp);
    } else {
        fflush(w->fp);
    }
    writer_free(w);
}

/* ------------------------------------------------------------------ read */

struct bl_trace_reader {
    FILE *fp;                 /* a stream, or NULL for memory */
    int own_fp;
    const unsigned char *mem; /* memory source */
    size_t mem_size, mem_pos;
    char *name;
    uint32_t version;
    char *header;
    size_t header_len;
    uint64_t pos;             /* bytes consumed */
    uint64_t whole_end;       /* end of the last whole chunk read */
    uint64_t n_chunks;
    int done, complete;
    unsigned char *stored, *raw, *tmp;
    size_t stored_cap, raw_cap, tmp_cap;
};

/* read up to n bytes; returns the count read (short at the end) */
static size_t rd(bl_trace_reader *r, void *p, size_t n)
{
    size_t got;
    if (r->fp) {
        got = fread(p, 1, n, r->fp);
    } else {
        got = r->mem_size - r->mem_pos < n ? r->mem_size - r->mem_pos : n;
        if (got)
            memcpy(p, r->mem + r->mem_pos, got);
        r->mem_pos += got;
    }
    r->pos += got;
    return got;
}

static uint32_t get32(const unsigned char *p)
{
    return bli_rd_u32(p);
}

/* a chunk type for messages: its four letters, or hex if not printable */
static const char *type_str(uint32_t type, char buf[12])
{
    unsigned char b[4] = {(unsigned char)type, (unsigned char)(type >> 8), (unsigned char)(type >> 16),
                          (unsigned char)(type >> 24)};
    int printable = 1;
    for (int i = 0; i < 4; i++)
        printable &= b[i] >= 0x20 && b[i] < 0x7f;
    if (printable)
        snprintf(buf, 12, "%c%c%c%c", b[0], b[1], b[2], b[3]);
    else
        snprintf(buf, 12, "0x%08" PRIx32, type);
    return buf;
}

static int read_header(bl_trace_reader *r, bl_err *err)
{
    unsigned char h[16];
    size_t got = rd(r, h, 16);
    if (got < 8 || memcmp(h, BL_TRACE_MAGIC, 8) != 0)
        return bli_err(err, BL_EFORMAT, "%s: not a bitlens trace (bad magic)", r->name);
    if (got < 16)
        return bli_err(err, BL_EFORMAT, "%s: the header is cut short at offset %zu", r->name, got);
    r->version = get32(h + 8);
    if (r->version != BL_TRACE_VERSION)
        return bli_err(err, BL_EUNSUPPORTED, "%s: trace version %" PRIu32 " is not supported (this bitlens reads %u)",
                       r->name, r->version, BL_TRACE_VERSION);
    uint32_t hl = get32(h + 12);
    if (hl > BL_TRACE_MAX_HEADER)
        return bli_err(err, BL_EFORMAT, "%s: header length %" PRIu32 " at offset 12 exceeds %u", r->name, hl,
                       BL_TRACE_MAX_HEADER);
    if (!r->fp && hl > r->mem_size - r->mem_pos)
        return bli_err(err, BL_EFORMAT, "%s: header of %" PRIu32 " bytes runs past the end (%zu bytes)", r->name, hl,
                       r->mem_size);
    if (!(r->header = malloc((size_t)hl + 1)))
        return bli_err(err, BL_ENOMEM, "out of memory");
    unsigned char crc[4];
    if (rd(r, r->header, hl) != hl || rd(r, crc, 4) != 4)
        return bli_err(err, BL_EFORMAT, "%s: the header (%" PRIu32 " bytes at offset 16) is cut short", r->name, hl);
    r->header[hl] = '\0';
    r->header_len = hl;
    r->whole_end = 16 + (uint64_t)hl + 4;
    uint32_t want = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)r->header, (uInt)hl);
    if (get32(crc) != want)
        return bli_err(err, BL_EFORMAT, "%s: header CRC mismatch (offset %" PRIu64 ")", r->name,
                       (uint64_t)(16 + hl));
    return BL_OK;
}

static int reader_common(bl_trace_reader **out, bl_trace_reader *r, bl_err *err)
{
    int rc = read_header(r, err);
    if (rc) {
        bl_trace_reader_free(r);
        *out = NULL;
        return rc;
    }
    *out = r;
    return BL_OK;
}

int bl_trace_reader_open_fp(bl_trace_reader **out, FILE *fp, const char *name, bl_err *err)
{
    bl_trace_reader *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r || !(r->name = bli_strdup(name))) {
        free(r);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    r->fp = fp;
    return reader_common(out, r, err);
}

int bl_trace_reader_open(bl_trace_reader **out, const char *path, bl_err *err)
{
    *out = NULL;
    if (strcmp(path, "-") == 0)
        return bl_trace_reader_open_fp(out, stdin, "<stdin>", err);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return bli_err(err, BL_EIO, "%s: is a directory", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return bli_err(err, BL_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = bl_trace_reader_open_fp(out, fp, path, err);
    if (rc)
        fclose(fp);
    else
        (*out)->own_fp = 1;
    return rc;
}

int bl_trace_reader_open_memory(bl_trace_reader **out, const void *data, size_t size, const char *name,
                                bl_err *err)
{
    bl_trace_reader *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r || !(r->name = bli_strdup(name ? name : "<memory>"))) {
        free(r);
        return bli_err(err, BL_ENOMEM, "out of memory");
    }
    r->mem = data;
    r->mem_size = size;
    return reader_common(out, r, err);
}

void bl_trace_reader_free(bl_trace_reader *r)
{
    if (!r)
        return;
    if (r->own_fp)
        fclose(r->fp);
    free(r->name);
    free(r->header);
    free(r->stored);
    free(r->raw);
    free(r->tmp);
    free(r);
}

const char *bl_trace_reader_header(const bl_trace_reader *r, size_t *len)
{
    if (len)
        *len = r->header_len;
    return r->header;
}

uint32_t bl_trace_reader_version(const bl_trace_reader *r) { return r->version; }
const char *bl_trace_reader_name(const bl_trace_reader *r) { return r->name; }
int bl_trace_reader_complete(const bl_trace_reader *r) { return r->complete; }
uint64_t bl_trace_reader_offset(const bl_trace_reader *r) { return r->pos; }
uint64_t bl_trace_reader_whole_end(const bl_trace_reader *r) { return r->whole_end; }

/* the trailer after the index: offset of the index and the end magic */
static int read_trailer(bl_trace_reader *r, uint64_t index_at, bl_err *err)
{
    unsigned char t[16];
    size_t got = rd(r, t, 16);
    if (got < 16)
        return BL_OK;   /* cut short inside the trailer: incomplete */
    if (memcmp(t + 8, BL_TRACE_END, 8) != 0 || bli_rd_u64(t) != index_at)
        return bli_err(err, BL_EFORMAT, "%s: the trailer at offset %" PRIu64 " does not close the index at %" PRIu64,
                       r->name, r->pos - 16, index_at);
    unsigned char extra;
    if (rd(r, &extra, 1) == 1)
        return bli_err(err, BL_EFORMAT, "%s: bytes after the trailer at offset %" PRIu64, r->name, r->pos - 1);
    r->complete = 1;
    return BL_OK;
}

int bl_trace_reader_next(bl_trace_reader *r, struct bl_trace_chunk *c, bl_err *err)
{
    for (;;) {
        if (r->done)
            return 0;
        unsigned char h[CHUNK_HEADER];
        uint64_t at = r->pos;
        size_t got = rd(r, h, CHUNK_HEADER);
        if (got < CHUNK_HEADER) {   /* the end, or cut inside a chunk header */
            r->done = 1;
            return 0;
        }
        uint32_t type = get32(h), flags = get32(h + 4), stored = get32(h + 8), raw = get32(h + 12);
        uint32_t crc = get32(h + 16);
        char ts[12];
        if (stored > BL_TRACE_MAX_CHUNK || raw > BL_TRACE_MAX_CHUNK) {
            r->done = 1;
            return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 " claims %" PRIu32 " / %" PRIu32
                           " bytes (at most %u)", r->name, r->n_chunks, type_str(type, ts), at, stored, raw,
                           BL_TRACE_MAX_CHUNK);
        }
        if (!r->fp && stored > r->mem_size - r->mem_pos) {   /* cut short: only what is there */
            r->done = 1;
            size_t left = r->mem_size - r->mem_pos;
            if (left >= 16 && memcmp(r->mem + r->mem_size - 8, BL_TRACE_END, 8) == 0)
                return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 ": its length %" PRIu32
                               " runs past the closing index (a corrupt length)", r->name, r->n_chunks,
                               type_str(type, ts), at, stored);
            r->pos += left;
            r->mem_pos = r->mem_size;
            return 0;
        }
        if (grow(&r->stored, &r->stored_cap, stored ? stored : 1)) {
            r->done = 1;
            return bli_err(err, BL_ENOMEM, "out of memory");
        }
        size_t got_payload = rd(r, r->stored, stored);
        if (got_payload < stored) {
            r->done = 1;
            /* cut inside the payload, unless what follows ends with the
             * closing trailer: then the length itself is corrupt */
            if (got_payload >= 16 && memcmp(r->stored + got_payload - 8, BL_TRACE_END, 8) == 0)
                return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 ": its length %" PRIu32
                               " runs past the closing index (a corrupt length)", r->name, r->n_chunks,
                               type_str(type, ts), at, stored);
            return 0;
        }
        if (chunk_crc(h, r->stored, stored) != crc) {
            r->done = 1;
            return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 ": CRC mismatch",
                           r->name, r->n_chunks, type_str(type, ts), at);
        }
        r->whole_end = r->pos;
        r->n_chunks++;
        if (type == TYPE_INDEX) {
            r->done = 1;
            int rc = read_trailer(r, at, err);
            return rc ? rc : 0;
        }
        /* decompress */
        const unsigned char *data = r->stored;
        if (flags & BL_CHUNK_ZLIB) {
            if (grow(&r->raw, &r->raw_cap, raw ? raw : 1)) {
                r->done = 1;
                return bli_err(err, BL_ENOMEM, "out of memory");
            }
            uLongf n = raw;
            if (uncompress(r->raw, &n, r->stored, stored) != Z_OK || n != raw) {
                r->done = 1;
                return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 ": the payload does not "
                               "decompress to %" PRIu32 " bytes", r->name, r->n_chunks - 1, type_str(type, ts), at, raw);
            }
            data = r->raw;
        } else if (stored != raw) {
            r->done = 1;
            return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " at offset %" PRIu64 ": %" PRIu32
                           " bytes stored uncompressed but %" PRIu32 " announced", r->name, r->n_chunks - 1, at,
                           stored, raw);
        }
        if (flags & BL_CHUNK_SHUFFLED) {
            size_t es = (flags >> 8) & 0xff, from = flags >> 16;
            if (es < 2 || from > raw || (raw - from) % es) {
                r->done = 1;
                return bli_err(err, BL_EFORMAT, "%s: chunk %" PRIu64 " at offset %" PRIu64 ": shuffle of %zu-byte "
                               "elements from byte %zu does not fit %" PRIu32 " bytes", r->name, r->n_chunks - 1, at,
                               es, from, raw);
            }
            if (grow(&r->tmp, &r->tmp_cap, raw ? raw : 1)) {
                r->done = 1;
                return bli_err(err, BL_ENOMEM, "out of memory");
            }
            memcpy(r->tmp, data, from);
            unshuffle(r->tmp + from, data + from, raw - from, es);
            data = r->tmp;
        }
        c->type = type;
        c->flags = flags;
        c->index = r->n_chunks - 1;
        c->offset = at;
        c->stored_len = stored;
        c->raw_len = raw;
        c->data = data;
        return 1;
    }
}

int bl_trace_is_trace(const char *path)
{
    char m[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(m, 1, 8, f);
    fclose(f);
    return got == 8 && memcmp(m, BL_TRACE_MAGIC, 8) == 0;
}
