/* tests/test-trace.c: the trace file (bitlens/trace.h, bitlens-trace(5))
 * through bl_trace_writer_* and bl_trace_reader_*.
 *
 * The format itself, on synthetic chunks:
 *   - hundreds of chunks of varied sizes (0 B to 1 MiB) and types, with and
 *     without byte shuffling, compressible and incompressible, read back
 *     byte for byte with their index, offset and flags; compressible
 *     payloads are stored compressed, incompressible ones as they are, and
 *     a shuffled payload stored as is holds its bytes as planes; the
 *     closing index lists every chunk and the trailer points at it;
 *   - a payload of exactly BL_TRACE_MAX_CHUNK is accepted (incompressible,
 *     and compressible with shuffling) and reads back; one byte more, or the
 *     index's type, is refused (BL_EINVAL) and the writer goes on;
 *   - header JSON (empty object, escapes and UTF-8, 300 KB) read back byte
 *     for byte; a header over BL_TRACE_MAX_HEADER refused;
 *   - a trace written to standard output that is a pipe (a child process)
 *     and read from the pipe with bl_trace_reader_open_fp, whole and cut;
 *   - an existing file refused without BL_TRACE_FORCE and left as it was;
 *     with it replaced, but only at close: until then the data goes to a
 *     temporary file beside it; bl_trace_writer_discard leaves nothing (and
 *     the old file intact); a missing directory is BL_EIO;
 *   - reader errors: missing file, a directory, bad magic, other version,
 *     empty memory (NULL, 0).
 * Empty payloads and the reader over (NULL, 0) run in a child process, so
 * that a sanitizer's report there fails one test point and the rest still
 * runs.
 * Robustness, on a real trace recorded with bl_record() from stories260K
 * (4 prompts, generation, hook_embed and every resid_post, lens: dozens of
 * chunks), read from memory (an exactly sized heap copy, so ASan sees any
 * read past the end) and from a stream:
 *   - cut at every 997th byte, at every chunk boundary +-1 and at 29
 *     places in the file header: a cut inside the file header is
 *     BL_EFORMAT at open; otherwise no error, reported incomplete, and
 *     exactly the whole chunks before the cut, equal in type, index,
 *     offset, flags and payload to the full read (also through a pipe);
 *   - a byte flipped in a chunk's payload (every chunk, six offsets each):
 *     the chunks before it read back, then BL_EFORMAT naming the chunk's
 *     number and offset and the CRC;
 *   - every byte of every chunk header flipped (3 masks): BL_EFORMAT naming
 *     the chunk and its offset, or, only where the flip makes the stored
 *     length run past the end of the file, an end as if cut short: never
 *     a wrong chunk, never complete;
 *   - every byte of the trailer and of the file header flipped: clean
 *     errors (BL_EUNSUPPORTED for the version, BL_EFORMAT otherwise);
 *   - a chunk claiming 2^31 (and 2^32 - 1) bytes in a 1 KB file:
 *     BL_EFORMAT; one claiming 60 MiB: incomplete;
 *   - garbage after the trailer: BL_EFORMAT after every chunk was read. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include <cjson/cJSON.h>

#include <bitlens/bitlens.h>

#include "tap.h"
#include "testutil.h"

#define CHUNK_HEADER 20

static char *dir;   /* the temporary directory of this run */

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 0x853C49E6748FEA9Bull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static uint32_t rnd_below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc_of(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static char *path_in(const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* Number of entries of dir (without . and ..); with `first` set, the name
 * of the first one that is not `except` is copied there. */
static int dir_entries(const char *d, const char *except, char *first, size_t cap)
{
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *e;
    if (first && cap)
        first[0] = '\0';
    if (!dp)
        return -1;
    while ((e = readdir(dp))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (first && cap && !first[0] && (!except || strcmp(e->d_name, except) != 0))
            snprintf(first, cap, "%s", e->d_name);
    }
    closedir(dp);
    return n;
}

/* Remove the entries of dir whose names start with prefix. */
static void remove_prefixed(const char *prefix)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    if (!dp)
        return;
    while ((e = readdir(dp))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char *p = path_in(e->d_name);
            remove(p);
            free(p);
        }
    }
    closedir(dp);
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* ------------------------------------------------- reference chunks */

/* A chunk as it should read back.  offset, flags and stored are checked
 * only when known (have_layout). */
struct ref {
    uint32_t type, flags;
    uint64_t index, offset;
    uint32_t stored, raw;
    int have_layout;
    unsigned char *data;
};

struct refs {
    struct ref *c;
    size_t n, cap;
};

static void refs_add(struct refs *r, const struct ref *c)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->c = realloc(r->c, r->cap * sizeof *r->c);
        if (!r->c)
            abort();
    }
    r->c[r->n] = *c;
    r->c[r->n].data = xmalloc(c->raw);
    if (c->raw)
        memcpy(r->c[r->n].data, c->data, c->raw);
    r->n++;
}

static void refs_free(struct refs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->c[i].data);
    free(r->c);
    memset(r, 0, sizeof *r);
}

static int chunk_eq(const struct bl_trace_chunk *c, const struct ref *w)
{
    if (c->type != w->type || c->index != w->index || c->raw_len != w->raw)
        return 0;
    if (w->have_layout && (c->offset != w->offset || c->flags != w->flags || c->stored_len != w->stored))
        return 0;
    return w->raw == 0 || (c->data && memcmp(c->data, w->data, w->raw) == 0);
}

/* What reading a trace to its end gave. */
struct outcome {
    int open_rc;       /* status of the open */
    int rc;            /* 0 at a clean end, or the error */
    size_t count;      /* chunks read */
    size_t same;       /* leading chunks equal to the reference */
    int complete;
    uint64_t end;      /* reader offset at the end */
    bl_err err;
};

/* Read r to its end (or an error), comparing chunk i with ref->c[i]. */
static void read_cmp(bl_trace_reader *r, const struct refs *ref, struct outcome *o)
{
    struct bl_trace_chunk c;
    int mismatch = 0;
    o->count = o->same = 0;
    for (;;) {
        memset(&c, 0, sizeof c);
        int s = bl_trace_reader_next(r, &c, &o->err);
        if (s <= 0) {
            o->rc = s;
            break;
        }
        if (!mismatch && o->count < ref->n && chunk_eq(&c, &ref->c[o->count]))
            o->same++;
        else
            mismatch = 1;
        if (++o->count > ref->n + 100) {   /* a reader that never ends */
            o->rc = 1;
            break;
        }
    }
    o->complete = bl_trace_reader_complete(r);
    o->end = bl_trace_reader_offset(r);
}

/* data[0..n) from an exactly sized heap copy */
static void read_memory(const unsigned char *data, size_t n, const struct refs *ref, struct outcome *o)
{
    unsigned char *copy = xmalloc(n);
    bl_trace_reader *r = NULL;
    memset(o, 0, sizeof *o);
    if (n)
        memcpy(copy, data, n);
    o->open_rc = bl_trace_reader_open_memory(&r, copy, n, "cut.blt", &o->err);
    if (o->open_rc == 0) {
        read_cmp(r, ref, o);
        bl_trace_reader_free(r);
    } else if (r) {
        o->open_rc = 99;   /* a failed open must not hand out a reader */
    }
    free(copy);
}

/* data[0..n) as a stream (fmemopen); n > 0 */
static void read_stream(const unsigned char *data, size_t n, const struct refs *ref, struct outcome *o)
{
    unsigned char *copy = xmalloc(n);
    bl_trace_reader *r = NULL;
    memset(o, 0, sizeof *o);
    memcpy(copy, data, n);
    FILE *fp = fmemopen(copy, n, "rb");
    if (!fp) {
        o->open_rc = 98;
        free(copy);
        return;
    }
    o->open_rc = bl_trace_reader_open_fp(&r, fp, "cut.blt", &o->err);
    if (o->open_rc == 0) {
        read_cmp(r, ref, o);
        bl_trace_reader_free(r);
    } else if (r) {
        o->open_rc = 99;
    }
    fclose(fp);
    free(copy);
}

/* The chunks of a whole trace (its data chunks), as a reference. */
static int load_refs(const unsigned char *data, size_t n, struct refs *out, uint64_t *hdr_end)
{
    bl_trace_reader *r;
    bl_err err;
    struct bl_trace_chunk c;
    int s;
    memset(out, 0, sizeof *out);
    if (bl_trace_reader_open_memory(&r, data, n, "full.blt", &err))
        return -1;
    size_t hl;
    bl_trace_reader_header(r, &hl);
    *hdr_end = 16 + hl + 4;
    while ((s = bl_trace_reader_next(r, &c, &err)) == 1) {
        struct ref w = {c.type, c.flags, c.index, c.offset, c.stored_len, c.raw_len, 1, (unsigned char *)c.data};
        refs_add(out, &w);
    }
    int complete = bl_trace_reader_complete(r);
    bl_trace_reader_free(r);
    return s == 0 && complete ? 0 : -1;
}

/* "chunk N" (followed by a space or '(') and "offset X" in msg */
static int names_chunk(const char *msg, uint64_t index, uint64_t offset)
{
    char a[48], b[48], c[48];
    snprintf(a, sizeof a, "chunk %" PRIu64 " ", index);
    snprintf(b, sizeof b, "chunk %" PRIu64 "(", index);
    snprintf(c, sizeof c, "offset %" PRIu64, offset);
    const char *at = strstr(msg, c);
    /* "offset 123" must not be the start of "offset 1234" */
    while (at && at[strlen(c)] >= '0' && at[strlen(c)] <= '9')
        at = strstr(at + 1, c);
    return (strstr(msg, a) || strstr(msg, b)) && at;
}

/* ------------------------------------------------------- synthetic */

/* A payload of n bytes of one kind: 0 random, 1 a smooth f16 ramp, 2
 * zeros, 3 repeated text. */
static void fill(unsigned char *p, size_t n, int kind)
{
    static const char text[] = "Once upon a time, there was a little girl named Lily. ";
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: p[i] = (unsigned char)rnd(); break;
        case 1: {
            uint16_t h = bl_f32_to_f16(0.001f * (float)(i / 2 % 4096) - 2.0f);
            p[i] = (unsigned char)(i % 2 ? h >> 8 : h);
            break;
        }
        case 2: p[i] = 0; break;
        default: p[i] = (unsigned char)text[i % (sizeof text - 1)]; break;
        }
    }
}

struct spec {
    uint32_t type;
    size_t n, from, es;
    int kind;
    unsigned char *data;
};

static uint32_t rnd_type(void)
{
    for (;;) {
        uint32_t t = BL_FOURCC('A' + rnd_below(26), 'A' + rnd_below(26), 'A' + rnd_below(26), 'A' + rnd_below(26));
        if (t != BL_FOURCC('I', 'N', 'D', 'X'))
            return t;
    }
}

static void make_specs(struct spec *s, size_t n)
{
    static const size_t sizes[] = {0, 1, 2, 3, 7, 8, 15, 16, 40, 63, 64, 65, 100, 255, 256, 1000, 4095, 4096,
                                   4097, 65535, 65536, 65537, 200000, 1u << 20};
    static const size_t ess[] = {0, 0, 2, 4, 8, 2};
    for (size_t i = 0; i < n; i++) {
        s[i].type = i % 7 == 3 ? BL_CHUNK_TENSOR : rnd_type();
        s[i].n = i < 2 * (sizeof sizes / sizeof sizes[0]) ? sizes[i / 2] : rnd_below(rnd_below(4) ? 5000 : 300000);
        s[i].kind = (int)(i % 4);
        s[i].es = ess[rnd_below(sizeof ess / sizeof ess[0])];
        /* the first two are empty: not shuffled, so that an empty shuffled
         * payload before any other (tested on its own, in a child process)
         * does not end this program under a sanitizer */
        if (i < 2)
            s[i].es = 0;
        s[i].from = 0;
        if (s[i].es) {
            size_t base = rnd_below(2) ? 0 : rnd_below((uint32_t)(s[i].n < 64 ? s[i].n + 1 : 65));
            s[i].from = base + (s[i].n - base) % s[i].es;
        }
        s[i].data = xmalloc(s[i].n);
        fill(s[i].data, s[i].n, s[i].kind);
    }
}

static void free_specs(struct spec *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].data);
}

static void shuffle_ref(unsigned char *dst, const unsigned char *src, size_t n, size_t from, size_t es)
{
    memcpy(dst, src, from);
    size_t m = (n - from) / es;
    for (size_t e = 0; e < m; e++)
        for (size_t b = 0; b < es; b++)
            dst[from + b * m + e] = src[from + e * es + b];
}

static int put_all(bl_trace_writer *w, const struct spec *s, size_t n, bl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = bl_trace_writer_put(w, s[i].type, s[i].data, s[i].n, s[i].from, s[i].es, err);
        if (rc)
            return rc;
    }
    return 0;
}

static void specs_refs(const struct spec *s, size_t n, struct refs *r)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        struct ref w = {s[i].type, 0, i, 0, 0, (uint32_t)s[i].n, 0, s[i].data};
        refs_add(r, &w);
    }
}

/* ------------------------------------------------- synthetic tests */

#define N_SPECS 240

static void round_trip(void)
{
    static struct spec s[N_SPECS];
    bl_err err;
    bl_trace_writer *w;
    char *p = path_in("round.blt");
    const char *hdr = "{\"tool\":\"test-trace\",\"n\":240}";

    make_specs(s, N_SPECS);
    int rc = bl_trace_writer_open(&w, p, hdr, 0, &err);
    ok(rc == 0, "writer opens a new file (%s)", rc ? err.msg : "ok");
    if (rc) {
        free_specs(s, N_SPECS);
        free(p);
        return;
    }
    uint64_t before = bl_trace_writer_bytes(w);
    ok(before == 16 + strlen(hdr) + 4, "after the header: %" PRIu64 " bytes (16 + header + CRC)", before);
    rc = put_all(w, s, N_SPECS, &err);
    ok(rc == 0, "%d chunks of 0 B .. 1 MiB, shuffled or not, put (%s)", N_SPECS, rc ? err.msg : "ok");
    uint64_t bytes = 0;
    rc = bl_trace_writer_close(w, &bytes, &err);
    ok(rc == 0 && (long)bytes == file_size(p), "closed: %" PRIu64 " bytes reported, %ld on disk", bytes,
       file_size(p));

    size_t n;
    unsigned char *file = read_file(p, &n);
    struct refs want;
    specs_refs(s, N_SPECS, &want);
    struct outcome o;
    read_memory(file, n, &want, &o);
    ok(o.open_rc == 0 && o.rc == 0 && o.count == N_SPECS && o.same == N_SPECS && o.complete && o.end == n,
       "read back from memory: %zu chunks, %zu equal in type, index and bytes, complete %d, ended at %" PRIu64
       " of %zu", o.count, o.same, o.complete, o.end, n);
    read_stream(file, n, &want, &o);
    ok(o.open_rc == 0 && o.rc == 0 && o.same == N_SPECS && o.count == N_SPECS && o.complete,
       "read back from a stream: %zu of %zu equal, complete %d", o.same, o.count, o.complete);

    /* the layout: offsets follow each other, flags as documented, shuffled
     * bytes stored as planes */
    bl_trace_reader *r;
    struct bl_trace_chunk c;
    int offsets = 1, zflags = 1, zsmall = 1, zlarge = 1, sflags = 1, planes = 1, nplanes = 0, ncomp = 0;
    uint64_t expect_off = 16 + strlen(hdr) + 4;
    uint32_t types[N_SPECS], flags[N_SPECS], stored[N_SPECS];
    uint64_t offs[N_SPECS];
    if (bl_trace_reader_open_memory(&r, file, n, "round.blt", &err) == 0) {
        size_t hl;
        const char *h = bl_trace_reader_header(r, &hl);
        ok(hl == strlen(hdr) && strcmp(h, hdr) == 0 && bl_trace_reader_version(r) == BL_TRACE_VERSION &&
               strcmp(bl_trace_reader_name(r), "round.blt") == 0,
           "header, version %u and name read back", bl_trace_reader_version(r));
        for (size_t i = 0; i < N_SPECS && bl_trace_reader_next(r, &c, &err) == 1; i++) {
            types[i] = c.type;
            flags[i] = c.flags;
            stored[i] = c.stored_len;
            offs[i] = c.offset;
            offsets &= c.offset == expect_off;
            expect_off = c.offset + CHUNK_HEADER + c.stored_len;
            int z = (c.flags & BL_CHUNK_ZLIB) != 0;
            /* compressed only when that makes it smaller; stored as is otherwise */
            zflags &= z ? c.stored_len < c.raw_len : c.stored_len == c.raw_len;
            /* zeros and repeated text of 64 bytes or more compress */
            if ((s[i].kind == 2 || s[i].kind == 3) && s[i].n >= 64)
                zsmall &= z;
            /* random bytes do not */
            if (s[i].kind == 0 && s[i].n >= 64)
                zlarge &= !z;
            ncomp += z;
            sflags &= ((c.flags & BL_CHUNK_SHUFFLED) != 0) == (s[i].es > 1);
            if (s[i].es > 1 && !z && c.raw_len > 0) {
                unsigned char *sh = xmalloc(s[i].n);
                shuffle_ref(sh, s[i].data, s[i].n, s[i].from, s[i].es);
                planes &= memcmp(file + c.offset + CHUNK_HEADER, sh, s[i].n) == 0;
                nplanes++;
                free(sh);
            }
        }
        bl_trace_reader_free(r);
    } else {
        ok(0, "header read back: %s", err.msg);
    }
    ok(offsets, "chunk offsets: the first right after the header CRC, each after the one before");
    ok(zflags, "zlib flag set exactly when the stored payload is smaller than the raw one");
    ok(zsmall, "zeros and repeated text (>= 64 bytes) are stored compressed (%d chunks compressed)", ncomp);
    ok(zlarge, "random bytes are stored as they are");
    ok(sflags, "shuffle flag set exactly on the chunks put with an element size > 1");
    ok(planes && nplanes > 10, "%d shuffled payloads stored uncompressed hold their bytes as planes", nplanes);

    /* the closing index and the trailer */
    int idx_ok = 0;
    uint64_t idx_at = n >= 16 ? rd64(file + n - 16) : 0;
    if (n >= 16 && memcmp(file + n - 8, BL_TRACE_END, 8) == 0 && idx_at == expect_off &&
        idx_at + CHUNK_HEADER <= n - 16) {
        const unsigned char *ch = file + idx_at;
        uint32_t fl = rd32(ch + 4), st = rd32(ch + 8), raw = rd32(ch + 12);
        if (rd32(ch) == BL_FOURCC('I', 'N', 'D', 'X') && idx_at + CHUNK_HEADER + st == n - 16) {
            unsigned char *ip = xmalloc(raw);
            uLongf got = raw;
            int dec = fl & BL_CHUNK_ZLIB ? uncompress(ip, &got, ch + CHUNK_HEADER, st) == Z_OK && got == raw
                                         : (memcpy(ip, ch + CHUNK_HEADER, st), st == raw);
            /* the payload: a uint64 count, then one 24-byte entry per chunk */
            if (dec && raw == 8 + 24 * (size_t)N_SPECS && rd64(ip) == N_SPECS) {
                idx_ok = 1;
                for (size_t i = 0; i < N_SPECS; i++) {
                    const unsigned char *e = ip + 8 + 24 * i;
                    idx_ok &= rd32(e) == types[i] && rd32(e + 4) == flags[i] && rd64(e + 8) == offs[i] &&
                              rd32(e + 16) == stored[i] && rd32(e + 20) == s[i].n;
                }
            }
            free(ip);
        }
    }
    ok(idx_ok, "the trailer points at an INDX chunk listing every chunk's type, flags, offset and lengths");

    free(file);
    refs_free(&want);
    free_specs(s, N_SPECS);
    remove(p);
    free(p);
}

/* Run fn(arg) in a child process: its exit status (0: fn returned 0;
 * 128 + signal if it died; a sanitizer's report exits nonzero). */
static int in_child(int (*fn)(const char *), const char *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int r = fn(arg);
        fflush(stdout);
        _exit(r ? 1 : 0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Empty payloads: plain, NULL, shuffled (the writer's first shuffled
 * chunk, so its scratch buffer is still unallocated), and a shuffled
 * payload that is all fixed part.  0 if they read back. */
static int empty_payloads(const char *p)
{
    bl_err err;
    bl_trace_writer *w;
    struct outcome o;
    size_t n;
    unsigned char *file;
    static const unsigned char nothing[1];
    int rc = bl_trace_writer_open(&w, p, "{}", 0, &err);
    int rp = rc ? rc : bl_trace_writer_put(w, BL_FOURCC('E', 'M', 'P', '1'), nothing, 0, 0, 4, &err);
    rp = rp ? rp : bl_trace_writer_put(w, BL_FOURCC('E', 'M', 'P', '2'), nothing, 0, 0, 0, &err);
    rp = rp ? rp : bl_trace_writer_put(w, BL_FOURCC('E', 'M', 'P', '3'), NULL, 0, 0, 0, &err);
    rp = rp ? rp : bl_trace_writer_put(w, BL_FOURCC('E', 'M', 'P', '4'), "abcdefgh", 8, 8, 2, &err);
    if (!rc)
        rc = rp ? (bl_trace_writer_discard(w), rp) : bl_trace_writer_close(w, NULL, &err);
    if (rc) {
        printf("# %s\n", err.msg);
        return 1;
    }
    file = read_file(p, &n);
    struct refs want = {0};
    static const uint32_t et[] = {BL_FOURCC('E', 'M', 'P', '1'), BL_FOURCC('E', 'M', 'P', '2'),
                                  BL_FOURCC('E', 'M', 'P', '3'), BL_FOURCC('E', 'M', 'P', '4')};
    for (int i = 0; i < 4; i++) {
        struct ref r = {et[i], 0, (uint64_t)i, 0, 0, i == 3 ? 8 : 0, 0, (unsigned char *)"abcdefgh"};
        refs_add(&want, &r);
    }
    if (!file)
        return 1;
    read_memory(file, n, &want, &o);
    free(file);
    refs_free(&want);
    return !(o.rc == 0 && o.count == 4 && o.same == 4 && o.complete);
}

/* A reader over no memory at all (NULL, 0): BL_EFORMAT. */
static int null_memory(const char *unused)
{
    bl_trace_reader *r = NULL;
    bl_err err;
    int rc = bl_trace_reader_open_memory(&r, NULL, 0, "empty", &err);
    printf("# open_memory(NULL, 0): %d (%s)\n", rc, rc ? err.msg : "opened");
    return !(rc == BL_EFORMAT && r == NULL);
}

static void empty_and_max(void)
{
    bl_err err;
    bl_trace_writer *w;
    struct outcome o;
    struct refs none = {0};
    char *p = path_in("empty.blt");
    size_t n;

    /* no chunk at all */
    int rc = bl_trace_writer_open(&w, p, "{}", 0, &err);
    rc = rc ? rc : bl_trace_writer_close(w, NULL, &err);
    unsigned char *file = read_file(p, &n);
    if (file)
        read_memory(file, n, &none, &o);
    ok(rc == 0 && file && o.open_rc == 0 && o.rc == 0 && o.count == 0 && o.complete,
       "a trace with no chunk: complete, nothing read");
    free(file);
    remove(p);

    /* empty payloads, in a child process: a sanitizer report there is one
     * failed test point, not the end of this program */
    int st = in_child(empty_payloads, p);
    ok(st == 0, "empty payloads (plain, NULL, shuffled as the writer's first shuffled chunk) and a shuffled "
       "payload of only its fixed part read back (child exit %d%s)", st, st ? ": see its report above" : "");
    remove(p);
    remove_prefixed("empty.blt");   /* what a child that died left */

    /* a payload of exactly BL_TRACE_MAX_CHUNK is accepted ("n at most
     * BL_TRACE_MAX_CHUNK"); one byte more is refused */
    size_t max = BL_TRACE_MAX_CHUNK;
    unsigned char *big = xmalloc(max + 1);
    fill(big, max + 1, 0);
    rc = bl_trace_writer_open(&w, p, "{}", 0, &err);
    if (rc) {
        ok(0, "writer for the largest chunk: %s", err.msg);
        free(big);
        free(p);
        return;
    }
    rc = bl_trace_writer_put(w, BL_FOURCC('B', 'I', 'G', 'R'), big, max, 0, 0, &err);
    ok(rc == 0, "a random payload of exactly BL_TRACE_MAX_CHUNK (%zu bytes) is accepted (%s)", max,
       rc ? err.msg : "ok");
    err.msg[0] = '\0';
    rc = bl_trace_writer_put(w, BL_FOURCC('B', 'I', 'G', 'X'), big, max + 1, 0, 0, &err);
    ok(rc == BL_EINVAL && err.code == BL_EINVAL && err.msg[0], "one byte more is refused: BL_EINVAL (%s)", err.msg);
    err.msg[0] = '\0';
    rc = bl_trace_writer_put(w, BL_FOURCC('I', 'N', 'D', 'X'), big, 16, 0, 0, &err);
    ok(rc == BL_EINVAL && err.msg[0], "a chunk of the index's type is refused: BL_EINVAL (%s)", err.msg);
    uint32_t crc_random = crc_of(big, max);   /* big is reused below */
    fill(big, max, 1);
    rc = bl_trace_writer_put(w, BL_FOURCC('B', 'I', 'G', 'C'), big, max, 40, 2, &err);
    ok(rc == 0, "a compressible, shuffled payload of BL_TRACE_MAX_CHUNK is accepted after the refusals (%s)",
       rc ? err.msg : "ok");
    rc = bl_trace_writer_close(w, NULL, &err);
    ok(rc == 0, "the writer closes after a refused chunk (%s)", rc ? err.msg : "ok");

    bl_trace_reader *r;
    struct bl_trace_chunk c;
    int got = 0, good = 1;
    rc = bl_trace_reader_open(&r, p, &err);
    if (rc == 0) {
        while (bl_trace_reader_next(r, &c, &err) == 1) {
            if (got == 0) {
                good &= c.type == BL_FOURCC('B', 'I', 'G', 'R') && c.raw_len == max && c.stored_len == max &&
                        crc_of(c.data, max) == crc_random;
            } else if (got == 1) {
                good &= c.type == BL_FOURCC('B', 'I', 'G', 'C') && c.raw_len == max && c.stored_len < max &&
                        memcmp(c.data, big, max) == 0;
            }
            got++;
        }
        good &= bl_trace_reader_complete(r);
        bl_trace_reader_free(r);
    }
    ok(rc == 0 && got == 2 && good, "both 64 MiB chunks read back (the random one stored as is), complete");
    free(big);
    remove(p);
    free(p);
}

static void headers(void)
{
    bl_err err;
    bl_trace_writer *w;
    bl_trace_reader *r;
    char *p = path_in("hdr.blt");
    /* escapes, UTF-8, a control character escaped, nested objects */
    static const char fancy[] =
        "{\"tool\":\"bitlens\",\"command\":\"bitlens record -p \\\"caf\xc3\xa9 \xe2\x82\xac\\\"\\n\\t\","
        "\"emoji\":\"\xf0\x9f\x98\x80\",\"nested\":{\"a\":[1,2.5,-3e-7,null,true,false]},\"ctl\":\"\\u0001\"}";
    size_t big_n = 300000;
    char *big = xmalloc(big_n + 64);
    size_t o = (size_t)snprintf(big, 64, "{\"values\":[");
    while (o < big_n) {
        o += (size_t)snprintf(big + o, 32, "%u,", rnd_below(100000));
    }
    big[o - 1] = ']';
    big[o] = '}';
    big[o + 1] = '\0';
    const char *hs[] = {"{}", fancy, big, ""};
    const char *names[] = {"{}", "escapes and UTF-8", "300 KB", "empty string"};
    for (int i = 0; i < 4; i++) {
        int rc = bl_trace_writer_open(&w, p, hs[i], BL_TRACE_FORCE, &err);
        rc = rc ? rc : bl_trace_writer_put(w, BL_FOURCC('D', 'A', 'T', 'A'), "x", 1, 0, 0, &err);
        rc = rc ? rc : bl_trace_writer_close(w, NULL, &err);
        int same = 0, json = 1;
        if (rc == 0 && bl_trace_reader_open(&r, p, &err) == 0) {
            size_t hl = 0;
            const char *h = bl_trace_reader_header(r, &hl);
            same = hl == strlen(hs[i]) && memcmp(h, hs[i], hl) == 0 && h[hl] == '\0';
            if (*hs[i]) {
                cJSON *a = cJSON_ParseWithLength(h, hl), *b = cJSON_Parse(hs[i]);
                json = a && b && cJSON_Compare(a, b, 1);
                cJSON_Delete(a);
                cJSON_Delete(b);
            }
            struct bl_trace_chunk c;
            same &= bl_trace_reader_next(r, &c, &err) == 1 && c.raw_len == 1 && c.data[0] == 'x';
            bl_trace_reader_free(r);
        }
        ok(rc == 0 && same && json, "header JSON round trip: %s (%zu bytes)", names[i], strlen(hs[i]));
    }
    free(big);
    remove(p);

    /* larger than BL_TRACE_MAX_HEADER: refused, nothing written */
    size_t hn = (size_t)BL_TRACE_MAX_HEADER + 1;
    char *huge = xmalloc(hn + 1);
    memset(huge, ' ', hn);
    huge[0] = '{';
    huge[hn - 1] = '}';
    huge[hn] = '\0';
    err.msg[0] = '\0';
    int before = dir_entries(dir, NULL, NULL, 0);
    int rc = bl_trace_writer_open(&w, p, huge, 0, &err);
    ok(rc == BL_EINVAL && err.msg[0] && dir_entries(dir, NULL, NULL, 0) == before,
       "a header over BL_TRACE_MAX_HEADER is refused, nothing written (%s)", err.msg);
    free(huge);
    free(p);
}

/* A child that writes to its standard output, a pipe; the read end as a
 * FILE (NULL on failure).  mode 0: a trace of specs through the writer with
 * path "-"; mode 1: the bytes data[0..n). */
static FILE *pipe_child(int mode, const struct spec *s, size_t ns, const unsigned char *data, size_t n, pid_t *pid)
{
    int fd[2];
    if (pipe(fd) != 0)
        return NULL;
    fflush(stdout);
    fflush(stderr);
    *pid = fork();
    if (*pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return NULL;
    }
    if (*pid == 0) {
        close(fd[0]);
        if (dup2(fd[1], 1) < 0)
            _exit(3);
        close(fd[1]);
        int rc = 0;
        if (mode == 0) {
            bl_trace_writer *w;
            bl_err err;
            rc = bl_trace_writer_open(&w, "-", "{\"pipe\":true}", 0, &err);
            rc = rc ? rc : put_all(w, s, ns, &err);
            rc = rc ? rc : bl_trace_writer_close(w, NULL, &err);
            fflush(stdout);
        } else {
            size_t done = 0;
            while (done < n) {
                ssize_t k = write(1, data + done, n - done < 4096 ? n - done : 4096);
                if (k <= 0)
                    _exit(4);
                done += (size_t)k;
            }
        }
        _exit(rc ? 1 : 0);
    }
    close(fd[1]);
    FILE *fp = fdopen(fd[0], "rb");
    if (!fp)
        close(fd[0]);
    return fp;
}

static int child_status(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void pipes(void)
{
    static struct spec s[60];
    make_specs(s, 60);
    struct refs want;
    specs_refs(s, 60, &want);
    pid_t pid;
    FILE *fp = pipe_child(0, s, 60, NULL, 0, &pid);
    if (!fp) {
        ok(0, "pipe and fork");
        free_specs(s, 60);
        refs_free(&want);
        return;
    }
    bl_trace_reader *r;
    bl_err err;
    struct outcome o;
    memset(&o, 0, sizeof o);
    o.open_rc = bl_trace_reader_open_fp(&r, fp, "<pipe>", &err);
    size_t hl = 0;
    if (o.open_rc == 0) {
        const char *h = bl_trace_reader_header(r, &hl);
        o.open_rc = strcmp(h, "{\"pipe\":true}") == 0 ? 0 : 97;
        read_cmp(r, &want, &o);
        bl_trace_reader_free(r);
    }
    fclose(fp);
    int st = child_status(pid);
    ok(st == 0 && o.open_rc == 0 && o.rc == 0 && o.count == 60 && o.same == 60 && o.complete,
       "a trace written to standard output (a pipe, path \"-\") reads from the pipe with open_fp: %zu of 60 "
       "chunks, complete %d (child exit %d)", o.same, o.complete, st);
    free_specs(s, 60);
    refs_free(&want);
}

static void files(void)
{
    bl_err err;
    bl_trace_writer *w;
    char *p = path_in("exists.blt"), first[256];
    static const char keep[] = "keep me\n";
    size_t n;

    /* refused without BL_TRACE_FORCE */
    write_file(p, keep, sizeof keep - 1);
    int before = dir_entries(dir, NULL, NULL, 0);
    err.msg[0] = '\0';
    w = (bl_trace_writer *)&err;   /* must be overwritten */
    int rc = bl_trace_writer_open(&w, p, "{}", 0, &err);
    char *k = read_file(p, &n);
    ok(rc == BL_EIO && w == NULL && strstr(err.msg, "exists") && k && n == sizeof keep - 1 &&
           memcmp(k, keep, n) == 0 && dir_entries(dir, NULL, NULL, 0) == before,
       "an existing file is refused without BL_TRACE_FORCE, left as it was (%s)", err.msg);
    free(k);

    /* replaced with it, at close only */
    rc = bl_trace_writer_open(&w, p, "{}", BL_TRACE_FORCE, &err);
    if (rc) {
        ok(0, "BL_TRACE_FORCE: %s", err.msg);
        free(p);
        return;
    }
    for (int i = 0; i < 50; i++) {
        unsigned char b[4096];
        fill(b, sizeof b, 0);
        bl_trace_writer_put(w, BL_FOURCC('D', 'A', 'T', 'A'), b, sizeof b, 0, 0, &err);
    }
    k = read_file(p, &n);
    int during = dir_entries(dir, "exists.blt", first, sizeof first);
    long tmp_size = -1;
    char *tmp = path_in(first);
    tmp_size = file_size(tmp);
    ok(k && n == sizeof keep - 1 && memcmp(k, keep, n) == 0,
       "with BL_TRACE_FORCE the old file stays until close");
    ok(during == before + 1 && strncmp(first, "exists.blt", 10) == 0 && tmp_size > 100000,
       "the data goes to a temporary file beside it ('%s', %ld bytes)", first, tmp_size);
    free(k);
    rc = bl_trace_writer_close(w, NULL, &err);
    ok(rc == 0 && bl_trace_is_trace(p) && dir_entries(dir, NULL, NULL, 0) == before && file_size(tmp) < 0,
       "close renames it over the old file; no temporary file is left");
    free(tmp);

    /* a new name does not exist before close */
    char *q = path_in("fresh.blt");
    rc = bl_trace_writer_open(&w, q, "{}", 0, &err);
    if (rc == 0) {
        bl_trace_writer_put(w, BL_FOURCC('D', 'A', 'T', 'A'), "abc", 3, 0, 0, &err);
        ok(file_size(q) < 0 && errno == ENOENT, "a new trace has no file under its name before close");
        rc = bl_trace_writer_close(w, NULL, &err);
        ok(rc == 0 && bl_trace_is_trace(q), "and is there after close");
    } else {
        ok(0, "open %s: %s", q, err.msg);
        skip(1, "no writer");
    }
    remove(q);

    /* discard: nothing left, the old file intact */
    before = dir_entries(dir, NULL, NULL, 0);
    rc = bl_trace_writer_open(&w, q, "{}", 0, &err);
    if (rc == 0) {
        bl_trace_writer_put(w, BL_FOURCC('D', 'A', 'T', 'A'), "abc", 3, 0, 0, &err);
        bl_trace_writer_discard(w);
    }
    ok(rc == 0 && dir_entries(dir, NULL, NULL, 0) == before && file_size(q) < 0,
       "bl_trace_writer_discard of a new trace leaves nothing");
    write_file(p, keep, sizeof keep - 1);
    rc = bl_trace_writer_open(&w, p, "{}", BL_TRACE_FORCE, &err);
    if (rc == 0) {
        bl_trace_writer_put(w, BL_FOURCC('D', 'A', 'T', 'A'), "abc", 3, 0, 0, &err);
        bl_trace_writer_discard(w);
    }
    k = read_file(p, &n);
    ok(rc == 0 && k && n == sizeof keep - 1 && memcmp(k, keep, n) == 0 && dir_entries(dir, NULL, NULL, 0) == before,
       "bl_trace_writer_discard with BL_TRACE_FORCE leaves the old file as it was, and no temporary file");
    free(k);
    remove(p);
    free(q);

    /* a directory that does not exist */
    q = path_in("no/such/dir/t.blt");
    err.msg[0] = '\0';
    rc = bl_trace_writer_open(&w, q, "{}", 0, &err);
    ok(rc == BL_EIO && strstr(err.msg, "no/such/dir"), "a missing directory: BL_EIO naming the path (%s)", err.msg);
    free(q);
    free(p);
}

static void reader_errors(void)
{
    bl_trace_reader *r = NULL;
    bl_err err;
    char *p = path_in("none.blt");
    err.msg[0] = '\0';
    int rc = bl_trace_reader_open(&r, p, &err);
    ok(rc == BL_EIO && r == NULL && strstr(err.msg, "none.blt"), "a missing file: BL_EIO (%s)", err.msg);
    rc = bl_trace_reader_open(&r, dir, &err);
    ok(rc == BL_EIO && r == NULL && strstr(err.msg, "directory"), "a directory: BL_EIO (%s)", err.msg);
    static const char gguf[] = "GGUF\3\0\0\0 not a trace at all";
    write_file(p, gguf, sizeof gguf - 1);
    rc = bl_trace_reader_open(&r, p, &err);
    ok(rc == BL_EFORMAT && r == NULL && strstr(err.msg, "magic"), "another format: BL_EFORMAT (%s)", err.msg);
    ok(bl_trace_is_trace(p) == 0, "bl_trace_is_trace says no to it");
    unsigned char v2[40];
    memcpy(v2, BL_TRACE_MAGIC, 8);
    wr32(v2 + 8, 2);
    wr32(v2 + 12, 2);
    memcpy(v2 + 16, "{}", 2);
    wr32(v2 + 18, (uint32_t)crc32(0, (const Bytef *)"{}", 2));
    rc = bl_trace_reader_open_memory(&r, v2, 22, "v2", &err);
    ok(rc == BL_EUNSUPPORTED && r == NULL, "version 2: BL_EUNSUPPORTED (%s)", err.msg);
    int st = in_child(null_memory, NULL);
    ok(st == 0, "no bytes at all (NULL, 0): BL_EFORMAT, in a child process (exit %d)", st);
    remove(p);
    free(p);
}

/* ------------------------------------------------------- real trace */

struct real {
    unsigned char *d;
    size_t n;
    struct refs ref;    /* data chunks */
    uint64_t hdr_end;   /* end of the file header (its CRC) */
    uint64_t idx_at;    /* the INDX chunk */
};

static int record_real(const char *path, struct real *t)
{
    char *mp = td_path("models/stories260K.bin"), *tp = td_path("models/tok512.bin");
    struct bl_model_params mpar = bl_model_default_params();
    bl_model *m = NULL;
    bl_err err;
    int rc = -1;
    memset(t, 0, sizeof *t);
    if (!mp || !tp)
        goto out;
    mpar.tokenizer_path = tp;
    if (bl_model_load(&m, mp, &mpar, &err)) {
        diag("%s", err.msg);
        goto out;
    }
    static const char *const prompts[] = {"Once upon a time", "The cat sat on the mat.",
                                          "Lily and Tom went to the park", "A big red ball"};
    struct bl_record_params p = bl_record_default_params();
    p.hooks = "hook_embed,blocks.*.hook_resid_post";
    p.n_gen = 24;
    p.sampling.temperature = 0.8f;
    p.sampling.seed = 7;
    p.n_threads = 1;
    if ((rc = bl_record(m, prompts, 4, &p, path, BL_TRACE_FORCE, NULL, &err))) {
        diag("bl_record: %s", err.msg);
        goto out;
    }
    t->d = read_file(path, &t->n);
    rc = t->d && load_refs(t->d, t->n, &t->ref, &t->hdr_end) == 0 ? 0 : -1;
    if (rc == 0)
        t->idx_at = rd64(t->d + t->n - 16);
out:
    bl_model_free(m);
    free(mp);
    free(tp);
    return rc;
}

static size_t whole_before(const struct real *t, uint64_t cut)
{
    size_t k = 0;
    while (k < t->ref.n && t->ref.c[k].offset + CHUNK_HEADER + t->ref.c[k].stored <= cut)
        k++;
    return k;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void truncation(const struct real *t)
{
    /* every 997th offset, and every boundary +-1 */
    size_t cap = t->n / 997 + 3 * (t->ref.n + 4) + 40, nc = 0;
    uint64_t *cuts = xmalloc(cap * sizeof *cuts);
    for (uint64_t c = 0; c < t->n; c += 997)
        cuts[nc++] = c;
    /* and in the file header: magic, version, length, JSON, CRC */
    for (uint64_t c = 1; c <= 24; c++)
        cuts[nc++] = c;
    for (uint64_t c = t->hdr_end - 5; c < t->hdr_end; c++)
        cuts[nc++] = c;
    uint64_t marks[4] = {t->hdr_end, t->idx_at, t->n - 16, t->n};
    for (size_t i = 0; i < t->ref.n + 4; i++) {
        uint64_t b = i < t->ref.n ? t->ref.c[i].offset : marks[i - t->ref.n];
        for (int d = -1; d <= 1; d++)
            if ((int64_t)b + d >= 0 && b + (uint64_t)d <= t->n)
                cuts[nc++] = b + (uint64_t)d;
    }
    qsort(cuts, nc, sizeof *cuts, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < nc; i++)
        if (u == 0 || cuts[i] != cuts[u - 1])
            cuts[u++] = cuts[i];
    nc = u;

    int mem_ok = 1, fp_ok = 1, hdr_ok = 1;
    size_t n997 = 0, nbound = 0, in_header = 0;
    char why[1024] = "";
    for (size_t i = 0; i < nc; i++) {
        uint64_t c = cuts[i];
        struct outcome o;
        size_t want = whole_before(t, c);
        int full = c == t->n;
        n997 += c % 997 == 0;
        nbound += c % 997 != 0;
        for (int mode = 0; mode < 2; mode++) {
            if (mode == 1 && c == 0)
                continue;   /* fmemopen needs a byte */
            if (mode == 0)
                read_memory(t->d, c, &t->ref, &o);
            else
                read_stream(t->d, c, &t->ref, &o);
            int good;
            if (c < t->hdr_end) {
                good = o.open_rc == BL_EFORMAT && o.err.code == BL_EFORMAT && o.err.msg[0];
                hdr_ok &= good;
                in_header += mode == 0;
            } else {
                good = o.open_rc == 0 && o.rc == 0 && o.count == want && o.same == want &&
                       o.complete == full && o.end <= c;
            }
            if (!good && !why[0])
                snprintf(why, sizeof why, "cut at %" PRIu64 " (%s): open %d, rc %d, %zu chunks (%zu equal), want %zu, "
                         "complete %d: %s", c, mode ? "stream" : "memory", o.open_rc, o.rc, o.count, o.same, want,
                         o.complete, o.err.msg);
            if (mode == 0)
                mem_ok &= good;
            else
                fp_ok &= good;
        }
    }
    if (why[0])
        diag("%s", why);
    ok(mem_ok, "%zu cuts (%zu at every 997th byte, %zu at chunk boundaries +-1 and in the file header) of the "
       "%zu-byte trace, from memory: each reads without error, incomplete, exactly the whole chunks before the cut",
       nc, n997, nbound, t->n);
    ok(fp_ok, "the same cuts from a stream");
    ok(hdr_ok && in_header > 0, "%zu cuts inside the file header: BL_EFORMAT at open", in_header);

    /* a cut through a pipe, from a writer that stops (one in the middle) */
    uint64_t mid = t->ref.c[t->ref.n / 2].offset + 7;
    pid_t pid;
    FILE *fp = pipe_child(1, NULL, 0, t->d, mid, &pid);
    struct outcome o;
    memset(&o, 0, sizeof o);
    bl_trace_reader *r;
    if (fp && (o.open_rc = bl_trace_reader_open_fp(&r, fp, "<pipe>", &o.err)) == 0) {
        read_cmp(r, &t->ref, &o);
        bl_trace_reader_free(r);
    }
    if (fp)
        fclose(fp);
    int st = fp ? child_status(pid) : -1;
    ok(fp && st == 0 && o.open_rc == 0 && o.rc == 0 && o.count == t->ref.n / 2 && o.same == o.count && !o.complete,
       "a trace cut short in a pipe: %zu whole chunks, incomplete", o.count);
    free(cuts);
}

static void payload_flips(const struct real *t)
{
    static const unsigned char masks[] = {0x01, 0x80, 0xFF, 0x10, 0x40, 0x7F};
    unsigned char *m = xmalloc(t->n);
    size_t runs = 0;
    int good_all = 1, stream_all = 1;
    char why[1024] = "";
    /* the data chunks and the index */
    for (size_t i = 0; i <= t->ref.n; i++) {
        uint64_t off = i < t->ref.n ? t->ref.c[i].offset : t->idx_at;
        uint32_t stored = i < t->ref.n ? t->ref.c[i].stored : rd32(t->d + t->idx_at + 8);
        if (stored == 0)
            continue;
        uint64_t at[6] = {0, stored - 1, stored / 2, rnd_below(stored), rnd_below(stored), rnd_below(stored)};
        for (int j = 0; j < 6; j++) {
            memcpy(m, t->d, t->n);
            m[off + CHUNK_HEADER + at[j]] ^= masks[(i + (size_t)j) % sizeof masks];
            struct outcome o;
            for (int mode = 0; mode < 2; mode++) {
                if (mode == 1 && j > 1)
                    continue;
                if (mode == 0)
                    read_memory(m, t->n, &t->ref, &o);
                else
                    read_stream(m, t->n, &t->ref, &o);
                int good = o.open_rc == 0 && o.rc == BL_EFORMAT && o.err.code == BL_EFORMAT && o.count == i &&
                           o.same == i && !o.complete && names_chunk(o.err.msg, i, off) && strstr(o.err.msg, "CRC");
                if (!good && !why[0])
                    snprintf(why, sizeof why, "chunk %zu at %" PRIu64 ", payload byte %" PRIu64 " (%s): rc %d, %zu "
                             "chunks read, complete %d: '%s'", i, off, at[j], mode ? "stream" : "memory", o.rc, o.count,
                             o.complete, o.err.msg);
                if (mode == 0)
                    good_all &= good;
                else
                    stream_all &= good;
                runs++;
            }
        }
    }
    if (why[0])
        diag("%s", why);
    ok(good_all, "a byte flipped in the payload of each of the %zu chunks (and the index), 6 offsets each: the "
       "chunks before it, then BL_EFORMAT naming the chunk number, its offset and the CRC", t->ref.n);
    ok(stream_all, "the same from a stream (%zu reads in all)", runs);
    free(m);
}

static void header_flips(const struct real *t)
{
    static const unsigned char masks[] = {0x01, 0x80, 0xFF};
    unsigned char *m = xmalloc(t->n);
    int good_all = 1, stream_all = 1;
    size_t errors = 0, incomplete = 0, runs = 0;
    char why[1024] = "";
    for (size_t i = 0; i <= t->ref.n; i++) {
        uint64_t off = i < t->ref.n ? t->ref.c[i].offset : t->idx_at;
        for (int b = 0; b < CHUNK_HEADER; b++)
            for (size_t k = 0; k < sizeof masks; k++) {
                memcpy(m, t->d, t->n);
                m[off + (uint64_t)b] ^= masks[k];
                uint32_t stored = rd32(m + off + 8);
                /* a stored length that runs past the end may read as a
                 * cut (the CRC cannot be checked), or be told apart by the
                 * trailer it swallowed: either is clean */
                int past_end = b >= 8 && b < 12 && stored <= BL_TRACE_MAX_CHUNK &&
                               off + CHUNK_HEADER + stored > t->n;
                struct outcome o;
                for (int mode = 0; mode < 2; mode++) {
                    if (mode == 1 && (b + (int)k) % 5)
                        continue;
                    if (mode == 0)
                        read_memory(m, t->n, &t->ref, &o);
                    else
                        read_stream(m, t->n, &t->ref, &o);
                    int named = o.rc == BL_EFORMAT && o.err.code == o.rc && names_chunk(o.err.msg, i, off);
                    int good = o.open_rc == 0 && o.count == i && o.same == i && !o.complete &&
                               (named || (past_end && o.rc == 0));
                    if (mode == 0) {
                        errors += o.rc < 0;
                        incomplete += o.rc == 0;
                    }
                    if (!good && !why[0])
                        snprintf(why, sizeof why, "chunk %zu at %" PRIu64 ", header byte %d ^ 0x%02x (%s): rc %d, %zu "
                                 "chunks (%zu equal), complete %d: '%s'", i, off, b, masks[k],
                                 mode ? "stream" : "memory", o.rc, o.count, o.same, o.complete, o.err.msg);
                    if (mode == 0)
                        good_all &= good;
                    else
                        stream_all &= good;
                    runs++;
                }
            }
    }
    if (why[0])
        diag("%s", why);
    ok(good_all, "every byte of every chunk header flipped (3 masks): %zu errors naming the chunk and its offset, "
       "%zu reads ended as cut short where the stored length ran past the end; never a wrong chunk, never "
       "complete", errors, incomplete);
    ok(stream_all, "the same from a stream (%zu reads in all)", runs);

    /* the trailer */
    int trailer = 1;
    why[0] = '\0';
    for (uint64_t b = t->n - 16; b < t->n; b++)
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(m, t->d, t->n);
            m[b] ^= masks[k];
            struct outcome o;
            read_memory(m, t->n, &t->ref, &o);
            int good = o.open_rc == 0 && o.rc == BL_EFORMAT && o.count == t->ref.n && o.same == t->ref.n &&
                       !o.complete && strstr(o.err.msg, "trailer");
            if (!good && !why[0])
                snprintf(why, sizeof why, "trailer byte %" PRIu64 " ^ 0x%02x: rc %d, complete %d: '%s'", b, masks[k], o.rc,
                         o.complete, o.err.msg);
            trailer &= good;
        }
    if (why[0])
        diag("%s", why);
    ok(trailer, "every byte of the trailer flipped: every chunk, then BL_EFORMAT about the trailer, not complete");

    /* the file header: magic, version, length, JSON, CRC */
    int fh = 1;
    why[0] = '\0';
    for (uint64_t b = 0; b < t->hdr_end; b++)
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(m, t->d, t->n);
            m[b] ^= masks[k];
            struct outcome o;
            int want = b >= 8 && b < 12 ? BL_EUNSUPPORTED : BL_EFORMAT;
            for (int mode = 0; mode < 2; mode++) {
                if (mode == 1 && b > 24 && b % 13)
                    continue;
                if (mode == 0)
                    read_memory(m, t->n, &t->ref, &o);
                else
                    read_stream(m, t->n, &t->ref, &o);
                int good = o.open_rc == want && o.err.code == want && o.err.msg[0];
                if (!good && !why[0])
                    snprintf(why, sizeof why, "file header byte %" PRIu64 " ^ 0x%02x (%s): open %d: '%s'", b, masks[k],
                             mode ? "stream" : "memory", o.open_rc, o.err.msg);
                fh &= good;
            }
        }
    if (why[0])
        diag("%s", why);
    ok(fh, "every byte of the %" PRIu64 "-byte file header flipped: the open fails cleanly (BL_EUNSUPPORTED for the "
       "version, BL_EFORMAT otherwise)", t->hdr_end);
    free(m);
}

static void lies(const struct real *t)
{
    /* a chunk claiming 2^31 bytes (and more) in a 1 KB file */
    unsigned char f[1024];
    static const struct {
        uint32_t stored, raw;
        int want;
        const char *what;
    } cases[] = {
        {0x80000000u, 0x80000000u, BL_EFORMAT, "2^31 stored and raw"},
        {16, 0x80000000u, BL_EFORMAT, "16 stored, 2^31 raw"},
        {0xFFFFFFFFu, 16, BL_EFORMAT, "2^32 - 1 stored"},
        {BL_TRACE_MAX_CHUNK + 1, 1, BL_EFORMAT, "BL_TRACE_MAX_CHUNK + 1 stored"},
        {60u << 20, 60u << 20, 0, "60 MiB stored (incomplete)"},
    };
    struct refs none = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(f, 0xAB, sizeof f);
        memcpy(f, BL_TRACE_MAGIC, 8);
        wr32(f + 8, BL_TRACE_VERSION);
        wr32(f + 12, 2);
        memcpy(f + 16, "{}", 2);
        wr32(f + 18, (uint32_t)crc32(0, (const Bytef *)"{}", 2));
        wr32(f + 22, BL_CHUNK_TENSOR);
        wr32(f + 26, BL_CHUNK_ZLIB);
        wr32(f + 30, cases[i].stored);
        wr32(f + 34, cases[i].raw);
        wr32(f + 38, 0x12345678);
        struct outcome o, s;
        read_memory(f, sizeof f, &none, &o);
        read_stream(f, sizeof f, &none, &s);
        int good = o.open_rc == 0 && o.rc == cases[i].want && o.count == 0 && !o.complete &&
                   (cases[i].want == 0 || names_chunk(o.err.msg, 0, 22)) && s.rc == o.rc && s.count == 0;
        ok(good, "a chunk claiming %s in a 1 KB file: %s (%s)", cases[i].what,
           cases[i].want ? "BL_EFORMAT naming chunk 0 at offset 22" : "read as cut short", o.err.msg);
    }

    /* garbage after the trailer */
    static const size_t extra[] = {1, 7, 4096};
    for (size_t i = 0; i < 4; i++) {
        size_t add = i < 3 ? extra[i] : t->n;
        unsigned char *m = xmalloc(t->n + add);
        memcpy(m, t->d, t->n);
        if (i < 3)
            fill(m + t->n, add, 0);
        else
            memcpy(m + t->n, t->d, t->n);   /* a second trace */
        struct outcome o;
        read_memory(m, t->n + add, &t->ref, &o);
        ok(o.open_rc == 0 && o.rc == BL_EFORMAT && o.count == t->ref.n && o.same == t->ref.n && !o.complete &&
               strstr(o.err.msg, "after the trailer"),
           "%zu bytes of %s after the trailer: every chunk, then BL_EFORMAT (%s)", add, i < 3 ? "garbage" : "another trace",
           o.err.msg);
        free(m);
    }
}

static void real_trace(void)
{
    char *p = path_in("real.blt");
    struct real t;
    if (record_real(p, &t) != 0) {
        ok(0, "record a trace from stories260K with bl_record()");
        free(p);
        return;
    }
    int types = 0;
    for (size_t i = 0; i < t.ref.n; i++)
        for (int k = 0; k < 5; k++) {
            static const uint32_t ty[] = {BL_CHUNK_PROMPT, BL_CHUNK_TOKENS, BL_CHUNK_STATS, BL_CHUNK_TENSOR,
                                          BL_CHUNK_LENS};
            types |= (t.ref.c[i].type == ty[k]) << k;
        }
    ok(t.ref.n >= 24 && types == 31 && t.idx_at == t.ref.c[t.ref.n - 1].offset + CHUNK_HEADER + t.ref.c[t.ref.n - 1].stored,
       "bl_record() wrote %zu chunks of all five record types in %zu bytes, complete", t.ref.n, t.n);
    truncation(&t);
    payload_flips(&t);
    header_flips(&t);
    lies(&t);
    free(t.d);
    refs_free(&t.ref);
    remove(p);
    free(p);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    dir = tmp_dir();
    if (!dir)
        skip_all("cannot make a temporary directory");
    round_trip();
    empty_and_max();
    headers();
    pipes();
    files();
    reader_errors();
    char *mp = td_path("models/stories260K.bin"), *tp = td_path("models/tok512.bin");
    if (mp && tp) {
        bl_set_threads(1);
        real_trace();
    } else {
        skip(1, "test data models/stories260K.bin and tok512.bin not found: no real trace");
    }
    free(mp);
    free(tp);
    rm_rf(dir);
    free(dir);
    return done_testing();
}
