/* tests/fuzz/fuzz-trace.c: the trace reader (bitlens/trace.h) and the
 * record parsers (bitlens/record.h).
 *
 * The input is read as a trace with bl_trace_reader_open_memory(), every
 * chunk with bl_trace_reader_next().  Each chunk goes through the parser of
 * its type and then through every record parser as if it were of that
 * type, so any payload meets every parser's bounds checks.  Where a parser
 * accepts, every byte it exposes is read: prompt ids (as the int32_t
 * array the header hands out) and text, each token's id, flag and text
 * through bl_rec_token(), each STAT row with its top-k through
 * bl_rec_stat_row(), each tensor element decoded, each lens float (as the
 * float array the header hands out), each drafter head through
 * bl_rec_drafter_row().  Checked: a failed open hands out no
 * reader and sets err; chunks come in order, each right after the one
 * before and inside the input, at most BL_TRACE_MAX_CHUNK raw bytes, stored
 * as is only when stored and raw lengths agree; what a parser accepts fills
 * the chunk exactly and its pointers lie inside it; token texts are
 * contiguous and end at the end of the record; a complete trace ends at the
 * end of the input; after the end (or an error) the reader stays ended.
 *
 * The input is then read a second time with its CRCs recomputed (the
 * header's, each whole chunk's, and the trailer's index offset), so that
 * mutations reach decompression, unshuffling and the parsers instead of
 * stopping at the first CRC mismatch.
 */
#include "config.h"

#include <string.h>

#include <zlib.h>

#include <bitlens/record.h>
#include <bitlens/tensor.h>
#include <bitlens/trace.h>

#include "fuzz.h"

#define CHUNK_HEADER 20u
#define TYPE_INDEX BL_FOURCC('I', 'N', 'D', 'X')

static void sink_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    fuzz_sink += u;
}

/* [p, p + n) inside [lo, hi) */
static int inside(const void *p, uint64_t n, const unsigned char *lo, const unsigned char *hi)
{
    const unsigned char *b = p;
    return b >= lo && b <= hi && n <= (uint64_t)(hi - b);
}

static void parse_failed(int rc, const bl_err *err)
{
    FUZZ_CHECK(rc == BL_EFORMAT);
    FUZZ_CHECK(err->code == rc && err->msg[0] != '\0');
    FUZZ_CHECK(memchr(err->msg, '\0', sizeof err->msg) != NULL);
}

static int walk_prompt(const struct bl_trace_chunk *c)
{
    struct bl_rec_prompt p;
    bl_err err;
    int rc = bl_rec_parse_prompt(c, &p, &err);
    if (rc) {
        parse_failed(rc, &err);
        return 0;
    }
    const unsigned char *lo = c->data, *hi = c->data + c->raw_len;
    FUZZ_CHECK(c->type == BL_CHUNK_PROMPT);
    FUZZ_CHECK(16 + 4 * (uint64_t)p.n_ids + p.text_len == c->raw_len);
    FUZZ_CHECK(inside(p.ids, 4 * (uint64_t)p.n_ids, lo, hi));
    FUZZ_CHECK(inside(p.text, p.text_len, lo, hi));
    unsigned s = p.prompt;
    for (uint32_t i = 0; i < p.n_ids; i++)
        s += (unsigned)p.ids[i];
    fuzz_sink += s;
    fuzz_touch(p.text, p.text_len);
    return 1;
}

static int walk_tokens(const struct bl_trace_chunk *c)
{
    struct bl_rec_tokens t;
    bl_err err;
    int rc = bl_rec_parse_tokens(c, &t, &err);
    if (rc) {
        parse_failed(rc, &err);
        return 0;
    }
    const unsigned char *lo = c->data, *hi = c->data + c->raw_len;
    FUZZ_CHECK(c->type == BL_CHUNK_TOKENS);
    FUZZ_CHECK(t.n <= (c->raw_len - 24) / 9);
    FUZZ_CHECK(inside(t.token, 4 * t.n, lo, hi));
    FUZZ_CHECK(inside(t.sampled, t.n, lo, hi));
    FUZZ_CHECK(inside(t.text_end, 4 * t.n, lo, hi));
    FUZZ_CHECK(inside(t.text, 0, lo, hi));
    const char *expect = t.text;
    for (uint64_t i = 0; i < t.n; i++) {
        int sampled = -1;
        const char *text = NULL;
        size_t len = (size_t)-1;
        int32_t id = bl_rec_token(&t, i, &sampled, &text, &len);
        FUZZ_CHECK(text == expect);   /* token texts follow each other */
        FUZZ_CHECK(inside(text, len, lo, hi));
        fuzz_touch(text, len);
        fuzz_sink += (unsigned)id + (unsigned)sampled;
        expect = text + len;
    }
    /* the texts fill the rest of the record */
    FUZZ_CHECK((const unsigned char *)expect == (t.n ? hi : (const unsigned char *)t.text));
    return 1;
}

static int walk_stats(const struct bl_trace_chunk *c)
{
    static int32_t ids[1000];
    static float ps[1000];
    struct bl_rec_stats s;
    bl_err err;
    int rc = bl_rec_parse_stats(c, &s, &err);
    if (rc) {
        parse_failed(rc, &err);
        return 0;
    }
    FUZZ_CHECK(c->type == BL_CHUNK_STATS);
    FUZZ_CHECK(s.k <= 1000);
    FUZZ_CHECK(24 + s.n * (28 + 8 * (uint64_t)s.k) == c->raw_len);
    FUZZ_CHECK(inside(s.rows, c->raw_len - 24, c->data, c->data + c->raw_len));
    for (uint64_t i = 0; i < s.n; i++) {
        struct bl_rec_stat_row row;
        bl_rec_stat_row(&s, i, &row, ids, ps);
        fuzz_sink += (unsigned)row.token + (unsigned)row.next + (unsigned)row.rank;
        sink_f32(row.entropy);
        sink_f32(row.entropy_t);
        sink_f32(row.surprisal);
        sink_f32(row.prob);
        for (uint32_t j = 0; j < s.k; j++) {
            fuzz_sink += (unsigned)ids[j];
            sink_f32(ps[j]);
        }
        /* and without the top-k arrays */
        bl_rec_stat_row(&s, i, &row, NULL, NULL);
    }
    return 1;
}

static int walk_tensor(const struct bl_trace_chunk *c)
{
    struct bl_rec_tensor t;
    bl_err err;
    int rc = bl_rec_parse_tensor(c, &t, &err);
    if (rc) {
        parse_failed(rc, &err);
        return 0;
    }
    FUZZ_CHECK(c->type == BL_CHUNK_TENSOR);
    FUZZ_CHECK(t.dtype == BL_F32 || t.dtype == BL_F16 || t.dtype == BL_BF16);
    FUZZ_CHECK(t.width > 0);
    uint64_t es = t.dtype == BL_F32 ? 4 : 2;
    FUZZ_CHECK(t.n <= c->raw_len && t.width <= c->raw_len);
    FUZZ_CHECK(40 + t.n * t.width * es == c->raw_len);
    FUZZ_CHECK(inside(t.data, t.n * t.width * es, c->data, c->data + c->raw_len));
    const unsigned char *d = t.data;
    for (uint64_t i = 0; i < t.n * t.width; i++) {
        if (es == 4) {
            float f;
            memcpy(&f, d + 4 * i, 4);
            sink_f32(f);
        } else {
            uint16_t h = (uint16_t)(d[2 * i] | d[2 * i + 1] << 8);
            sink_f32(t.dtype == BL_F16 ? bl_f16_to_f32(h) : bl_bf16_to_f32(h));
        }
    }
    return 1;
}

static int walk_lens(const struct bl_trace_chunk *c)
{
    struct bl_rec_lens l;
    bl_err err;
    int rc = bl_rec_parse_lens(c, &l, &err);
    if (rc) {
        parse_failed(rc, &err);
        return 0;
    }
    FUZZ_CHECK(c->type == BL_CHUNK_LENS);
    FUZZ_CHECK(l.n_layers >= 1);
    FUZZ_CHECK(24 + l.n * l.n_layers * 12 == c->raw_len);
    FUZZ_CHECK(inside(l.rows, l.n * l.n_layers * 12, c->data, c->data + c->raw_len));
    for (uint64_t i = 0; i < l.n * l.n_layers * 3; i++)
        sink_f32(l.rows[i]);
    return 1;
}

static int walk_drafter(const struct bl_trace_chunk *c)
{
    struct bl_rec_drafter d;
    struct bl_rec_drafter_head h[BL_DRAFTER_MAX_HEADS];
    bl_err err;
    int rc = bl_rec_parse_drafter(c, &d, &err);
    if (rc) {
        parse_failed(rc, &err);
        return 0;
    }
    FUZZ_CHECK(c->type == BL_CHUNK_DRAFTER);
    FUZZ_CHECK(d.k >= 1 && d.k <= BL_DRAFTER_MAX_HEADS);
    FUZZ_CHECK(24 + d.n * 16 * (uint64_t)d.k == c->raw_len);
    FUZZ_CHECK(inside(d.rows, d.n * 16 * (uint64_t)d.k, c->data, c->data + c->raw_len));
    for (uint64_t i = 0; i < d.n; i++) {
        bl_rec_drafter_row(&d, i, h);
        for (uint32_t j = 0; j < d.k; j++) {
            fuzz_sink += (unsigned)h[j].token + (unsigned)h[j].rank;
            sink_f32(h[j].entropy);
            sink_f32(h[j].surprisal);
        }
    }
    return 1;
}

static const struct {
    uint32_t type;
    int (*walk)(const struct bl_trace_chunk *);
} parsers[] = {
    {BL_CHUNK_PROMPT, walk_prompt}, {BL_CHUNK_TOKENS, walk_tokens}, {BL_CHUNK_STATS, walk_stats},
    {BL_CHUNK_TENSOR, walk_tensor}, {BL_CHUNK_LENS, walk_lens},     {BL_CHUNK_DRAFTER, walk_drafter},
};
#define N_PARSERS (sizeof parsers / sizeof parsers[0])

/* Read data[0..size) as a trace; returns the record types parsed (bit i:
 * parsers[i]). */
static unsigned read_trace(const uint8_t *data, size_t size)
{
    bl_trace_reader *r = NULL;
    bl_err err;
    err.msg[0] = '\0';
    int rc = bl_trace_reader_open_memory(&r, data, size, "fuzz.blt", &err);
    if (rc) {
        FUZZ_CHECK(r == NULL && rc < 0);
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        return 0;
    }
    FUZZ_REACHED(FZ_PARSED);
    size_t hl = (size_t)-1;
    const char *h = bl_trace_reader_header(r, &hl);
    FUZZ_CHECK(h != NULL && hl <= size && size - hl >= 20);
    FUZZ_CHECK(h[hl] == '\0');
    fuzz_touch(h, hl);
    FUZZ_CHECK(bl_trace_reader_version(r) == BL_TRACE_VERSION);
    FUZZ_CHECK(strcmp(bl_trace_reader_name(r), "fuzz.blt") == 0);

    unsigned seen = 0;
    uint64_t k = 0, next_at = 16 + (uint64_t)hl + 4;
    struct bl_trace_chunk c;
    for (;;) {
        memset(&c, 0, sizeof c);
        err.msg[0] = '\0';
        rc = bl_trace_reader_next(r, &c, &err);
        if (rc <= 0)
            break;
        FUZZ_CHECK(rc == 1);
        FUZZ_CHECK(c.index == k);
        FUZZ_CHECK(c.offset == next_at);
        FUZZ_CHECK(c.offset <= size && size - c.offset >= CHUNK_HEADER + (uint64_t)c.stored_len);
        FUZZ_CHECK(c.raw_len <= BL_TRACE_MAX_CHUNK && c.stored_len <= BL_TRACE_MAX_CHUNK);
        FUZZ_CHECK(c.type != TYPE_INDEX);
        FUZZ_CHECK((c.flags & BL_CHUNK_ZLIB) || c.stored_len == c.raw_len);
        FUZZ_CHECK(c.raw_len == 0 || c.data != NULL);
        fuzz_touch(c.data, c.raw_len);
        next_at = c.offset + CHUNK_HEADER + c.stored_len;
        k++;
        for (size_t i = 0; i < N_PARSERS; i++) {
            if (c.type == parsers[i].type && parsers[i].walk(&c))
                seen |= 1u << i;
            /* the same bytes as every other record type */
            struct bl_trace_chunk as = c;
            as.type = parsers[i].type;
            if (c.type != parsers[i].type)
                parsers[i].walk(&as);
        }
    }
    if (rc < 0) {
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
    }
    int complete = bl_trace_reader_complete(r);
    FUZZ_CHECK(complete == 0 || complete == 1);
    FUZZ_CHECK(bl_trace_reader_offset(r) <= size);
    if (complete)
        FUZZ_CHECK(rc == 0 && bl_trace_reader_offset(r) == size);
    /* ended stays ended */
    FUZZ_CHECK(bl_trace_reader_next(r, &c, &err) == 0);
    FUZZ_CHECK(bl_trace_reader_complete(r) == complete);
    bl_trace_reader_free(r);
    if (seen == (1u << N_PARSERS) - 1)
        FUZZ_REACHED(FZ_RECORDS);
    return seen;
}

int FUZZ_ENTRY(trace)(const uint8_t *data, size_t size)
{
    read_trace(data, size);
    uint8_t *fixed = fuzz_fix_trace_crcs(data, size);
    if (fixed) {
        if (memcmp(fixed, data, size) != 0)
            read_trace(fixed, size);
        free(fixed);
    }
    return 0;
}

#ifdef BL_FUZZ_REPLAY
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Seeds for tests/fuzz/replay.c: small traces written with the writer,
 * holding every record type (f32, f16 and bf16 tensors, shuffled, DRFT,
 * compressed or not), a chunk of an unknown type and an empty one.  Calls
 * add() for each; returns how many. */
#include "testutil.h"

size_t fuzz_trace_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate));

struct sb {
    uint8_t b[4096];
    size_t n;
};

static void sb_u32(struct sb *s, uint32_t v)
{
    put32(s->b + s->n, v);
    s->n += 4;
}

static void sb_u64(struct sb *s, uint64_t v)
{
    sb_u32(s, (uint32_t)v);
    sb_u32(s, (uint32_t)(v >> 32));
}

static void sb_f32(struct sb *s, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    sb_u32(s, u);
}

static void sb_bytes(struct sb *s, const void *p, size_t n)
{
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void sb_u16(struct sb *s, uint16_t v)
{
    s->b[s->n++] = (uint8_t)v;
    s->b[s->n++] = (uint8_t)(v >> 8);
}

/* The records; with `big` also a compressible tensor.  0 or -1. */
static int write_records(bl_trace_writer *w, int big)
{
    struct sb s;
    bl_err err;
    int rc = 0;
#define PUT(type, from, es) (rc = rc ? rc : bl_trace_writer_put(w, type, s.b, s.n, from, es, &err))
    /* PRMT: ids 1 403 407, "Once upon" */
    s.n = 0;
    sb_u32(&s, 0);
    sb_u32(&s, 3);
    sb_u32(&s, 9);
    sb_u32(&s, 0);
    sb_u32(&s, 1);
    sb_u32(&s, 403);
    sb_u32(&s, 407);
    sb_bytes(&s, "Once upon", 9);
    PUT(BL_CHUNK_PROMPT, 0, 0);
    /* TOKS: 3 tokens, the last sampled; texts "", "Once", " upon" */
    s.n = 0;
    sb_u32(&s, 0);
    sb_u32(&s, 0);
    sb_u64(&s, 0);
    sb_u64(&s, 3);
    sb_u32(&s, 1);
    sb_u32(&s, 403);
    sb_u32(&s, 407);
    sb_bytes(&s, "\0\0\1", 3);
    sb_u32(&s, 0);
    sb_u32(&s, 4);
    sb_u32(&s, 9);
    sb_bytes(&s, "Once upon", 9);
    PUT(BL_CHUNK_TOKENS, 0, 0);
    /* STAT: k = 2, two rows */
    s.n = 0;
    sb_u32(&s, 0);
    sb_u32(&s, 2);
    sb_u64(&s, 0);
    sb_u64(&s, 2);
    for (int i = 0; i < 2; i++) {
        sb_u32(&s, i ? 403 : 1);
        sb_u32(&s, i ? 407 : 403);
        sb_f32(&s, 3.5f + (float)i);
        sb_f32(&s, 2.25f);
        sb_f32(&s, 1.5f);
        sb_u32(&s, 2);
        sb_f32(&s, 0.35f);
        sb_u32(&s, 261);
        sb_u32(&s, i ? 407 : 403);
        sb_f32(&s, 0.5f);
        sb_f32(&s, 0.35f);
    }
    PUT(BL_CHUNK_STATS, 0, 0);
    /* TENS f16 2 x 3, shuffled; f32 2 x 2, shuffled; bf16 1 x 4 */
    static const int dts[3] = {BL_F16, BL_F32, BL_BF16};
    static const int rows[3] = {2, 2, 1}, widths[3] = {3, 2, 4};
    for (int t = 0; t < 3; t++) {
        s.n = 0;
        sb_u32(&s, 0);
        sb_u32(&s, (uint32_t)t);
        sb_u32(&s, (uint32_t)dts[t]);
        sb_u32(&s, 0);
        sb_u64(&s, 0);
        sb_u64(&s, (uint64_t)rows[t]);
        sb_u64(&s, (uint64_t)widths[t]);
        for (int i = 0; i < rows[t] * widths[t]; i++) {
            float v = 0.25f * (float)i - 1.0f;
            if (dts[t] == BL_F32)
                sb_f32(&s, v);
            else
                sb_u16(&s, dts[t] == BL_F16 ? bl_f32_to_f16(v) : bl_f32_to_bf16(v));
        }
        PUT(BL_CHUNK_TENSOR, t == 2 ? 0 : 40, t == 2 ? 0 : (dts[t] == BL_F32 ? 4 : 2));
    }
    /* LENS: 2 positions x 2 layers */
    s.n = 0;
    sb_u32(&s, 0);
    sb_u32(&s, 2);
    sb_u64(&s, 0);
    sb_u64(&s, 2);
    for (int i = 0; i < 12; i++)
        sb_f32(&s, (float)i / 3.0f);
    PUT(BL_CHUNK_LENS, 0, 0);
    /* DRFT: 2 positions x 2 heads */
    s.n = 0;
    sb_u32(&s, 0);
    sb_u32(&s, 2);
    sb_u64(&s, 0);
    sb_u64(&s, 2);
    for (int i = 0; i < 4; i++) {
        sb_u32(&s, (uint32_t)(261 + i));
        sb_f32(&s, 1.5f + (float)i);
        sb_f32(&s, 2.25f * (float)i);
        sb_u32(&s, (uint32_t)(i == 3 ? -1 : i));
    }
    PUT(BL_CHUNK_DRAFTER, 0, 0);
    /* an unknown type, an empty chunk */
    s.n = 0;
    sb_bytes(&s, "extra", 5);
    PUT(BL_FOURCC('X', 'T', 'R', 'A'), 0, 0);
    s.n = 0;
    PUT(BL_FOURCC('N', 'O', 'N', 'E'), 0, 0);
    if (big) {   /* 32 x 8 f16, compressible */
        s.n = 0;
        sb_u32(&s, 1);
        sb_u32(&s, 0);
        sb_u32(&s, BL_F16);
        sb_u32(&s, 0);
        sb_u64(&s, 3);
        sb_u64(&s, 32);
        sb_u64(&s, 8);
        for (int i = 0; i < 256; i++)
            sb_u16(&s, bl_f32_to_f16((float)(i % 8) * 0.5f));
        PUT(BL_CHUNK_TENSOR, 40, 2);
    }
#undef PUT
    return rc ? -1 : 0;
}

size_t fuzz_trace_seeds(void (*add)(const char *name, const void *data, size_t n, unsigned expect, int mutate))
{
    char *dir = tmp_dir();
    size_t count = 0;
    if (!dir)
        return 0;
    static const char header[] = "{\"tool\":\"bitlens\",\"recorded\":{\"hooks\":[{\"name\":\"a\"},{\"name\":\"b\"},"
                                 "{\"name\":\"c\"}],\"dtype\":\"f16\"}}";
    for (int v = 0; v < 3; v++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/seed-%d.blt", dir, v);
        bl_trace_writer *w;
        bl_err err;
        if (bl_trace_writer_open(&w, path, v == 2 ? "{}" : header, BL_TRACE_FORCE, &err) != 0)
            continue;
        if (v < 2 && write_records(w, v) != 0) {
            bl_trace_writer_discard(w);
            continue;
        }
        if (bl_trace_writer_close(w, NULL, &err) != 0)
            continue;
        size_t n;
        uint8_t *d = read_file(path, &n);
        if (!d)
            continue;
        if (v == 0) {
            add("trace-records.blt", d, n, FZ_PARSED | FZ_RECORDS, 1);
            /* cut short: without the index and trailer */
            uint64_t idx = 0;
            for (int i = 0; i < 8; i++)
                idx |= (uint64_t)d[n - 16 + (size_t)i] << (8 * i);
            add("trace-records-cut.blt", d, (size_t)idx, FZ_PARSED | FZ_RECORDS, 0);
            count += 2;
        } else {
            add(v == 1 ? "trace-compressed.blt" : "trace-empty.blt", d, n, v == 1 ? FZ_PARSED | FZ_RECORDS : FZ_PARSED,
                v == 1);
            count++;
        }
        free(d);
    }
    rm_rf(dir);
    free(dir);
    return count;
}
#endif
