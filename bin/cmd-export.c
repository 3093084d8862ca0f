/* bin/cmd-export.c: `bitlens export`: a trace as tidy CSV tables or as one
 * .npy array per recorded hook point.
 *
 * Streams: each chunk is written out as it is read, so memory holds one
 * chunk (and, for .npy, the tokens of the prompt being read, to name the
 * rows in index.csv), whatever the length of the trace.  Files are written
 * under temporary names in the output directory and renamed when the whole
 * trace has been read; a failure leaves no file behind.
 *
 * The .npy files (format version 1.0) start with a 128-byte header whose
 * shape is rewritten at the end, when the number of rows is known; the
 * closing index of the trace is never needed, so a trace streams in from a
 * pipe. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens export [-i] TRACE --format csv|npy [-o DIR] [--force] [-q]\n"
    "\n"
    "  -i, --input TRACE     the trace to read, '-' for standard input (or give\n"
    "                        it as the argument)\n"
    "      --format csv|npy  csv: tokens.csv, stats.csv and lens.csv; npy: one\n"
    "                        HOOK.npy per recorded hook point and index.csv\n"
    "  -o, --output DIR      the directory to write into, created if missing\n"
    "                        (default: TRACE without .blt plus '-export';\n"
    "                        bitlens-export for standard input)\n"
    "      --force           replace files that exist in DIR\n"
    "  -q, --quiet           no summary or warnings on stderr\n"
    "  -h, --help            this text\n";

enum { OPT_FORMAT = 256, OPT_FORCE };

static const struct option longopts[] = {
    {"input", required_argument, NULL, 'i'},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, OPT_FORCE},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define CHUNK_HEADER 20u    /* type, flags, stored, raw, crc (bitlens/trace.h) */
#define NPY_HEADER 128u     /* bytes before the data of each .npy file */

/* An output file, written under a temporary name and renamed at the end. */
struct out {
    char *path;       /* DIR/NAME */
    char *tmp;        /* DIR/NAME.tmp.PID while it is being written */
    FILE *fp;         /* open CSV files; .npy files are opened per chunk */
};

/* A hook point as the header names it, and its .npy file. */
struct hook {
    const char *name;     /* in the parsed header */
    int kind;             /* enum bl_hook_kind */
    int64_t width;        /* floats per row; -1: varies (attention) */
    int64_t out_width;    /* columns of the .npy */
    struct out file;
    uint64_t rows;        /* rows written */
    int have;             /* rows of the current prompt: [start, end) */
    uint64_t start, end;
};

/* The tokens of the prompt being read (npy: names the rows of index.csv). */
struct toks {
    uint64_t base, n, cap;     /* positions base .. base+n */
    int32_t *id;
    uint32_t *text_end;        /* into text, like a TOKS record */
    char *text;
    size_t text_len, text_cap;
};

struct export {
    const char *trace;        /* its name in messages ("<stdin>" for '-') */
    const char *dir;          /* the output directory */
    int npy, force;           /* --format npy (else csv); --force */
    bl_trace_reader *r;
    cJSON *hdr;               /* the trace header, parsed */
    int64_t n_prompts;        /* prompts the header lists */
    int64_t top_k;            /* top ids per STAT row (recorded.top_k) */
    int64_t n_heads, n_ctx;   /* attention rows: heads and keys (npy) */
    int lens;                 /* the logit lens was taken */
    int dtype;                /* recorded dtype (enum bl_dtype) */
    struct hook *hooks;       /* npy: the header's recorded.hooks */
    int64_t n_hooks;
    struct out tokens, stats, lensf, index;   /* the CSV files */
    int made_dir;             /* dir was created here (removed on failure) */
    /* reading */
    int64_t prompt;           /* current prompt (last PRMT), -1 before any */
    uint64_t n_chunks;        /* chunks read */
    uint64_t end_offset;      /* where the last whole chunk ends */
    struct toks tk;           /* npy: tokens of the current prompt */
    uint64_t n_tok_rows, n_stat_rows, n_lens_rows, n_index_rows;   /* rows written */
    int64_t prompts_seen;     /* PRMT records read */
    int truncated;            /* npy rows of the last prompt dropped */
    unsigned char *row;       /* one converted .npy row */
    size_t row_cap;
};

/* the export being written, for the exit-time cleanup of its files */
static struct export *cleanup_ex;

static void out_discard(struct out *o)
{
    if (o->fp) {
        fclose(o->fp);
        o->fp = NULL;
    }
    if (o->tmp) {
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
    }
}

/* at exit: a failure (cli_die) leaves no half-written file behind */
static void cleanup(void)
{
    struct export *ex = cleanup_ex;
    if (!ex)
        return;
    out_discard(&ex->tokens);
    out_discard(&ex->stats);
    out_discard(&ex->lensf);
    out_discard(&ex->index);
    for (int64_t i = 0; ex->hooks && i < ex->n_hooks; i++)
        out_discard(&ex->hooks[i].file);
    if (ex->made_dir)
        rmdir(ex->dir);   /* only if empty */
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        cli_die("out of memory");
    return p;
}

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

static void out_init(struct out *o, const char *dir, const char *name)
{
    o->path = path_join(dir, name, "");
    size_t n = strlen(o->path) + 32;
    o->tmp = xmalloc(n);
    snprintf(o->tmp, n, "%s.tmp.%ld", o->path, (long)getpid());
}

/* refuse an existing file unless --force */
static void out_check(const struct out *o, int force)
{
    struct stat st;
    if (lstat(o->path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            cli_die("%s: is a directory", o->path);
        if (!force)
            cli_die("%s: exists (--force replaces it)", o->path);
    }
}

static void out_create(struct out *o, int keep_open)
{
    if (!(o->fp = fopen(o->tmp, "wb")))
        cli_die("%s: cannot create: %s", o->tmp, strerror(errno));
    if (!keep_open && fclose(o->fp) != 0) {
        o->fp = NULL;
        cli_die("%s: write failed: %s", o->tmp, strerror(errno));
    }
    if (!keep_open)
        o->fp = NULL;
}

static void out_commit(struct out *o)
{
    if (!o->tmp)
        return;
    if (o->fp) {
        FILE *fp = o->fp;
        o->fp = NULL;
        if (ferror(fp) | fclose(fp))
            cli_die("%s: write failed: %s", o->tmp, strerror(errno));
    }
    if (rename(o->tmp, o->path) != 0)
        cli_die("%s: cannot rename to '%s': %s", o->tmp, o->path, strerror(errno));
    free(o->tmp);
    o->tmp = NULL;
}

static void out_free(struct out *o)
{
    free(o->path);
    free(o->tmp);
}

/* ------------------------------------------------------------ messages */

/* a problem with a chunk: exit 2 naming the trace, the chunk and its offset */
static _Noreturn void bad_chunk(const struct export *ex, const struct bl_trace_chunk *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static _Noreturn void bad_chunk(const struct export *ex, const struct bl_trace_chunk *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char type[5];
    for (int i = 0; i < 4; i++) {
        unsigned char b = (unsigned char)(c->type >> (8 * i));
        type[i] = b >= 0x20 && b < 0x7f ? (char)b : '?';
    }
    type[4] = '\0';
    cli_die("%s: chunk %" PRIu64 " (%s) at offset %" PRIu64 ": %s", ex->trace, c->index, type, c->offset, msg);
}

/* ------------------------------------------------------------ the header */

static const cJSON *member(const cJSON *o, const char *name)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

/* an integer member, or die naming it */
static int64_t int_member(const struct export *ex, const cJSON *o, const char *where, const char *name,
                          int64_t lo, int64_t hi)
{
    const cJSON *v = member(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        cli_die("%s: header: '%s%s' is missing or not an integer in [%" PRId64 ", %" PRId64 "]", ex->trace, where,
                name, lo, hi);
    return (int64_t)v->valuedouble;
}

/* a hook name usable as a file name: letters, digits, '.', '_', '-' */
static int safe_name(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > 200)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static void read_header(struct export *ex)
{
    size_t len;
    const char *text = bl_trace_reader_header(ex->r, &len);
    if (!(ex->hdr = cJSON_ParseWithLength(text, len)) || !cJSON_IsObject(ex->hdr))
        cli_die("%s: the header is not a JSON object", ex->trace);
    const cJSON *prompts = member(ex->hdr, "prompts"), *rec = member(ex->hdr, "recorded");
    if (!cJSON_IsArray(prompts))
        cli_die("%s: header: 'prompts' is missing or not an array", ex->trace);
    ex->n_prompts = cJSON_GetArraySize(prompts);
    if (!cJSON_IsObject(rec))
        cli_die("%s: header: 'recorded' is missing or not an object", ex->trace);
    ex->top_k = int_member(ex, rec, "recorded.", "top_k", 0, 1000);
    const cJSON *lens = member(rec, "lens");
    if (!cJSON_IsBool(lens))
        cli_die("%s: header: 'recorded.lens' is missing or not a boolean", ex->trace);
    ex->lens = cJSON_IsTrue(lens);
    const cJSON *hooks = member(rec, "hooks"), *dt = member(rec, "dtype");
    if (!cJSON_IsArray(hooks))
        cli_die("%s: header: 'recorded.hooks' is missing or not an array", ex->trace);
    if (!cJSON_IsString(dt))
        cli_die("%s: header: 'recorded.dtype' is missing or not a string", ex->trace);
    if (strcmp(dt->valuestring, "f32") == 0)
        ex->dtype = BL_F32;
    else if (strcmp(dt->valuestring, "f16") == 0)
        ex->dtype = BL_F16;
    else if (strcmp(dt->valuestring, "bf16") == 0)
        ex->dtype = BL_BF16;
    else
        cli_die("%s: header: 'recorded.dtype' '%s' is not f32, f16 or bf16", ex->trace, dt->valuestring);
    ex->n_hooks = cJSON_GetArraySize(hooks);
    if (!ex->npy)
        return;
    if (ex->n_hooks == 0)
        cli_die("%s: holds no hook tensors to export as .npy (recorded with --hooks none); "
                "'--format csv' exports its token statistics", ex->trace);
    ex->hooks = calloc((size_t)ex->n_hooks, sizeof *ex->hooks);
    if (!ex->hooks)
        cli_die("out of memory");
    int variable = 0;
    for (int64_t i = 0; i < ex->n_hooks; i++) {
        const cJSON *h = cJSON_GetArrayItem(hooks, (int)i), *name = member(h, "name");
        struct hook *k = &ex->hooks[i];
        char where[64];
        snprintf(where, sizeof where, "recorded.hooks[%" PRId64 "].", i);
        if (!cJSON_IsString(name))
            cli_die("%s: header: '%sname' is missing or not a string", ex->trace, where);
        if (!safe_name(name->valuestring))
            cli_die("%s: header: hook name '%s' cannot name a file (letters, digits, '.', '_', '-')", ex->trace,
                    name->valuestring);
        for (int64_t j = 0; j < i; j++)
            if (strcmp(ex->hooks[j].name, name->valuestring) == 0)
                cli_die("%s: header: hook '%s' is listed twice", ex->trace, name->valuestring);
        k->name = name->valuestring;
        k->kind = (int)int_member(ex, h, where, "kind", 0, BL_TRACE_HOOK_DRAFTER_LOGITS);
        if (!bl_trace_hook_kind_valid(k->kind))
            cli_die("%s: header: '%skind' %d is not a hook kind", ex->trace, where, k->kind);
        k->width = int_member(ex, h, where, "width", -1, BL_TRACE_MAX_CHUNK);
        if (k->width == 0)
            cli_die("%s: header: '%swidth' is 0", ex->trace, where);
        variable |= k->width < 0;
    }
    if (variable) {
        /* rows of attention scores and patterns hold n_heads x K numbers,
         * K the keys seen so far: padded to K = n_ctx */
        const cJSON *model = member(ex->hdr, "model"), *cfg = member(model, "config");
        ex->n_heads = int_member(ex, cfg, "model.config.", "n_heads", 1, 1 << 20);
        ex->n_ctx = int_member(ex, rec, "recorded.", "n_ctx", 1, 1 << 30);
        if ((uint64_t)ex->n_heads * (uint64_t)ex->n_ctx > BL_TRACE_MAX_CHUNK)
            cli_die("%s: header: attention rows of %" PRId64 " heads x %" PRId64 " positions are too wide", ex->trace,
                    ex->n_heads, ex->n_ctx);
    }
    for (int64_t i = 0; i < ex->n_hooks; i++) {
        struct hook *k = &ex->hooks[i];
        k->out_width = k->width > 0 ? k->width : ex->n_heads * ex->n_ctx;
    }
}

/* ------------------------------------------------------------ CSV */

/* length of the valid UTF-8 sequence at s (n bytes left), 0 if none */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return need;
}

/* a token's text as one quoted CSV field (RFC 4180: quotes doubled; commas
 * and line breaks stay inside the quotes).  Bytes that are not valid UTF-8
 * (a character split across byte tokens) and control bytes other than tab,
 * newline and carriage return are written <0xNN>, as SentencePiece names
 * byte tokens. */
static void csv_text(FILE *fp, const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    fputc('"', fp);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        if (k == 1 && s[i] == '"') {
            fputs("\"\"", fp);
        } else if (k == 0 || (k == 1 && ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') ||
                                         s[i] == 0x7f))) {
            fprintf(fp, "<0x%02X>", s[i]);
            k = 1;
        } else {
            fwrite(s + i, 1, k, fp);
        }
        i += k;
    }
    fputc('"', fp);
}

/* a float: the shortest form that reads back to the same float32 (%.9g
 * at most); NaN is an empty field, which pandas and R read as missing */
static void csv_float(FILE *fp, float f)
{
    if (isnan(f))
        return;
    if (isinf(f)) {
        fputs(f > 0 ? "inf" : "-inf", fp);
        return;
    }
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    fputs(buf, fp);
}

static void csv_tokens(struct export *ex, const struct bl_rec_tokens *t)
{
    FILE *fp = ex->tokens.fp;
    for (uint64_t i = 0; i < t->n; i++) {
        int sampled;
        const char *text;
        size_t len;
        int32_t id = bl_rec_token(t, i, &sampled, &text, &len);
        fprintf(fp, "%" PRIu32 ",%" PRIu64 ",%" PRId32 ",", t->prompt, t->pos0 + i, id);
        csv_text(fp, text, len);
        fprintf(fp, ",%d\n", sampled ? 1 : 0);
    }
    ex->n_tok_rows += t->n;
}

static void csv_stats(struct export *ex, const struct bl_rec_stats *s, int32_t *top_id, float *top_p)
{
    FILE *fp = ex->stats.fp;
    for (uint64_t i = 0; i < s->n; i++) {
        struct bl_rec_stat_row row;
        bl_rec_stat_row(s, i, &row, top_id, top_p);
        fprintf(fp, "%" PRIu32 ",%" PRIu64 ",%" PRId32 ",%" PRId32 ",", s->prompt, s->pos0 + i, row.token, row.next);
        csv_float(fp, row.entropy);
        fputc(',', fp);
        csv_float(fp, row.entropy_t);
        fputc(',', fp);
        csv_float(fp, row.surprisal);
        fprintf(fp, ",%" PRId32 ",", row.rank);
        csv_float(fp, row.prob);
        for (uint32_t j = 0; j < s->k; j++) {
            fprintf(fp, ",%" PRId32 ",", top_id[j]);
            csv_float(fp, top_p[j]);
        }
        fputc('\n', fp);
    }
    ex->n_stat_rows += s->n;
}

static float le_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void csv_lens(struct export *ex, const struct bl_rec_lens *l)
{
    FILE *fp = ex->lensf.fp;
    const unsigned char *d = (const unsigned char *)l->rows;
    for (uint64_t i = 0; i < l->n; i++) {
        for (uint32_t j = 0; j < l->n_layers; j++) {
            const unsigned char *e = d + 12 * (i * l->n_layers + j);
            fprintf(fp, "%" PRIu32 ",%" PRIu64 ",%" PRIu32 ",", l->prompt, l->pos0 + i, j);
            csv_float(fp, le_f32(e));
            fputc(',', fp);
            csv_float(fp, le_f32(e + 4));
            fputc(',', fp);
            csv_float(fp, le_f32(e + 8));
            fputc('\n', fp);
        }
    }
    ex->n_lens_rows += l->n;
}

/* ------------------------------------------------------------ .npy */

static const char *npy_descr(int dtype)
{
    return dtype == BL_F16 ? "<f2" : "<f4";   /* bf16: numpy has none; f32 */
}

static size_t npy_elem(int dtype)
{
    return dtype == BL_F16 ? 2 : 4;
}

/* the NPY_HEADER bytes that open a .npy of rows x cols (format 1.0) */
static void npy_header(unsigned char *h, int dtype, uint64_t rows, int64_t cols)
{
    char dict[NPY_HEADER];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%" PRIu64 ", %" PRId64
                     "), }", npy_descr(dtype), rows, cols);
    if (n <= 0 || (size_t)n > NPY_HEADER - 11)
        cli_die("internal error: .npy header of %d bytes", n);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = NPY_HEADER - 10;
    h[8] = (unsigned char)(hl & 0xff);
    h[9] = (unsigned char)(hl >> 8);
    memset(h + 10, ' ', NPY_HEADER - 10);
    memcpy(h + 10, dict, (size_t)n);
    h[NPY_HEADER - 1] = '\n';
}

static void npy_write_header(struct hook *k, int dtype)
{
    unsigned char h[NPY_HEADER];
    npy_header(h, dtype, k->rows, k->out_width);
    FILE *fp = fopen(k->file.tmp, "r+b");
    if (!fp)
        cli_die("%s: cannot open: %s", k->file.tmp, strerror(errno));
    if (fwrite(h, 1, NPY_HEADER, fp) != NPY_HEADER || fclose(fp) != 0)
        cli_die("%s: write failed: %s", k->file.tmp, strerror(errno));
}

static unsigned char *row_buf(struct export *ex, size_t n)
{
    if (n > ex->row_cap) {
        free(ex->row);
        ex->row = xmalloc(n);
        ex->row_cap = n;
    }
    return ex->row;
}

/* rows of a TENS record (of the current prompt: checked before) appended to
 * the hook's .npy */
static void npy_tensor(struct export *ex, const struct bl_trace_chunk *c, const struct bl_rec_tensor *t)
{
    if (t->hook >= (uint64_t)ex->n_hooks)
        bad_chunk(ex, c, "hook %" PRIu32 " is not in the header (%" PRId64 " hooks)", t->hook, ex->n_hooks);
    struct hook *k = &ex->hooks[t->hook];
    if ((int)t->dtype != ex->dtype)
        bad_chunk(ex, c, "'%s' rows are %s, the header says %s", k->name, bl_dtype_name((int)t->dtype),
                  bl_dtype_name(ex->dtype));
    int64_t keys = 0;
    if (k->width > 0 && t->width != (uint64_t)k->width)
        bad_chunk(ex, c, "'%s' rows of width %" PRIu64 ", the header says %" PRId64, k->name, t->width, k->width);
    if (k->width < 0) {
        if (t->width % (uint64_t)ex->n_heads || t->width / (uint64_t)ex->n_heads > (uint64_t)ex->n_ctx)
            bad_chunk(ex, c, "'%s' rows of width %" PRIu64 " are not %" PRId64 " heads x at most %" PRId64
                      " positions", k->name, t->width, ex->n_heads, ex->n_ctx);
        keys = (int64_t)(t->width / (uint64_t)ex->n_heads);
    }
    if (k->have && t->pos0 != k->end)
        bad_chunk(ex, c, "'%s' rows of prompt %" PRIu32 " from position %" PRIu64 " do not continue those before "
                  "(positions %" PRIu64 " to %" PRIu64 ")", k->name, t->prompt, t->pos0, k->start, k->end - 1);
    if (!k->have) {
        k->have = 1;
        k->start = k->end = t->pos0;
    }
    if (t->n == 0)
        return;

    size_t es_in = t->dtype == BL_F32 ? 4 : 2, es = npy_elem(ex->dtype);
    size_t row_out = (size_t)k->out_width * es;
    FILE *fp = fopen(k->file.tmp, "r+b");
    if (!fp)
        cli_die("%s: cannot open: %s", k->file.tmp, strerror(errno));
    if (fseeko(fp, (off_t)NPY_HEADER + (off_t)k->rows * (off_t)row_out, SEEK_SET) != 0)
        cli_die("%s: seek failed: %s", k->file.tmp, strerror(errno));
    const unsigned char *src = t->data;
    int ok = 1;
    if (k->width > 0 && t->dtype != BL_BF16) {
        /* f32 and f16 rows are stored little-endian, as the .npy wants them */
        size_t bytes = (size_t)t->n * row_out;
        ok = fwrite(src, 1, bytes, fp) == bytes;
    } else {
        unsigned char *row = row_buf(ex, row_out);
        /* the padding of attention rows: 0 in patterns, -inf in scores, as
         * the model has them at the keys a row does not see */
        uint32_t pad32 = k->kind == BL_HOOK_ATTN_SCORES ? 0xff800000u : 0;
        uint16_t pad16 = k->kind == BL_HOOK_ATTN_SCORES ? 0xfc00u : 0;
        uint64_t per = k->width > 0 ? t->width : (uint64_t)keys;   /* numbers per head block */
        uint64_t blocks = k->width > 0 ? 1 : (uint64_t)ex->n_heads;
        uint64_t stride = k->width > 0 ? (uint64_t)k->out_width : (uint64_t)ex->n_ctx;
        for (uint64_t i = 0; i < t->n && ok; i++) {
            const unsigned char *in = src + i * t->width * es_in;
            for (uint64_t b = 0; b < blocks; b++) {
                unsigned char *o = row + b * stride * es;
                const unsigned char *s = in + b * per * es_in;
                for (uint64_t e = 0; e < stride; e++) {
                    if (e >= per) {
                        if (es == 4) {
                            for (int q = 0; q < 4; q++)
                                o[4 * e + (uint64_t)q] = (unsigned char)(pad32 >> (8 * q));
                        } else {
                            o[2 * e] = (unsigned char)pad16;
                            o[2 * e + 1] = (unsigned char)(pad16 >> 8);
                        }
                    } else if (t->dtype == BL_BF16) {
                        /* bf16 -> f32: the same bits in the high half */
                        o[4 * e] = 0;
                        o[4 * e + 1] = 0;
                        o[4 * e + 2] = s[2 * e];
                        o[4 * e + 3] = s[2 * e + 1];
                    } else {
                        memcpy(o + e * es, s + e * es, es);
                    }
                }
            }
            ok = fwrite(row, 1, row_out, fp) == row_out;
        }
    }
    if (!ok || fclose(fp) != 0)
        cli_die("%s: write failed: %s", k->file.tmp, strerror(errno));
    k->rows += t->n;
    k->end += t->n;
}

/* the tokens of a TOKS record, kept until the prompt ends */
static void toks_add(struct export *ex, const struct bl_trace_chunk *c, const struct bl_rec_tokens *t)
{
    struct toks *tk = &ex->tk;
    if (tk->n == 0)
        tk->base = t->pos0;
    else if (t->pos0 != tk->base + tk->n)
        bad_chunk(ex, c, "tokens from position %" PRIu64 " do not continue those before (positions %" PRIu64
                  " to %" PRIu64 ")", t->pos0, tk->base, tk->base + tk->n - 1);
    if (tk->n + t->n > tk->cap) {
        uint64_t cap = tk->cap ? tk->cap : 1024;
        while (cap < tk->n + t->n)
            cap *= 2;
        int32_t *id = realloc(tk->id, cap * sizeof *id);
        if (id)
            tk->id = id;
        uint32_t *te = realloc(tk->text_end, cap * sizeof *te);
        if (te)
            tk->text_end = te;
        if (!id || !te)
            cli_die("out of memory");
        tk->cap = cap;
    }
    for (uint64_t i = 0; i < t->n; i++) {
        const char *text;
        size_t len;
        tk->id[tk->n] = bl_rec_token(t, i, NULL, &text, &len);
        if (tk->text_len + len > tk->text_cap) {
            size_t cap = tk->text_cap ? tk->text_cap : 4096;
            while (cap < tk->text_len + len)
                cap *= 2;
            char *s = realloc(tk->text, cap);
            if (!s)
                cli_die("out of memory");
            tk->text = s;
            tk->text_cap = cap;
        }
        if (tk->text_len + len > UINT32_MAX)
            bad_chunk(ex, c, "the tokens of prompt %" PRId64 " hold more than 4 GiB of text", ex->prompt);
        if (len)
            memcpy(tk->text + tk->text_len, text, len);
        tk->text_len += len;
        tk->text_end[tk->n] = (uint32_t)tk->text_len;
        tk->n++;
    }
}

/* the end of the current prompt's records (c: the PRMT of the next; NULL
 * at the end of the trace, cut_short if it is incomplete): every hook must
 * hold the same positions, but for the last prompt of a trace cut short,
 * whose rows are cut to those every hook holds; index.csv gets a row for
 * each */
static void npy_end_prompt(struct export *ex, const struct bl_trace_chunk *c, int cut_short)
{
    if (ex->prompt < 0)
        return;
    struct hook *h0 = &ex->hooks[0];
    int same = 1;
    for (int64_t i = 1; i < ex->n_hooks; i++) {
        struct hook *k = &ex->hooks[i];
        uint64_t n0 = h0->have ? h0->end - h0->start : 0, nk = k->have ? k->end - k->start : 0;
        if (n0 != nk || (n0 && k->start != h0->start))
            same = 0;
    }
    uint64_t start = h0->start, end = h0->have ? h0->end : h0->start;
    if (!same) {
        if (!cut_short) {
            /* name the first two hooks that differ */
            int64_t j = 1;
            for (; j < ex->n_hooks; j++) {
                struct hook *k = &ex->hooks[j];
                if ((k->have ? k->end - k->start : 0) != (h0->have ? h0->end - h0->start : 0) ||
                    (k->have && h0->have && k->start != h0->start))
                    break;
            }
            struct hook *k = &ex->hooks[j];
            char a[64], b[64];
            if (h0->have && h0->end > h0->start)
                snprintf(a, sizeof a, "positions %" PRIu64 " to %" PRIu64, h0->start, h0->end - 1);
            else
                snprintf(a, sizeof a, "no positions");
            if (k->have && k->end > k->start)
                snprintf(b, sizeof b, "positions %" PRIu64 " to %" PRIu64, k->start, k->end - 1);
            else
                snprintf(b, sizeof b, "no positions");
            if (c)
                bad_chunk(ex, c, "prompt %" PRId64 " ends with hook '%s' at %s but '%s' at %s: the hooks of a trace "
                          "must record the same positions", ex->prompt, h0->name, a, k->name, b);
            cli_die("%s: prompt %" PRId64 " ends with hook '%s' at %s but '%s' at %s: the hooks of a trace must "
                    "record the same positions", ex->trace, ex->prompt, h0->name, a, k->name, b);
        }
        /* a trace cut short: keep the positions every hook holds */
        int common = 1;
        for (int64_t i = 0; i < ex->n_hooks; i++) {
            struct hook *k = &ex->hooks[i];
            if (!k->have || k->start != h0->start)
                common = 0;
            else if (k->end < end)
                end = k->end;
        }
        if (!common)
            end = start;
        for (int64_t i = 0; i < ex->n_hooks; i++) {
            struct hook *k = &ex->hooks[i];
            uint64_t keep = common ? end : k->start;   /* rows of this prompt before `keep` stay */
            if (k->have && k->end > keep) {
                k->rows -= k->end - keep;
                k->end = keep;
            }
        }
        ex->truncated = 1;
    }
    /* index.csv */
    FILE *fp = ex->index.fp;
    struct toks *tk = &ex->tk;
    for (uint64_t p = start; p < end; p++) {
        fprintf(fp, "%" PRIu64 ",%" PRId64 ",%" PRIu64 ",", ex->n_index_rows, ex->prompt, p);
        if (tk->n && p >= tk->base && p < tk->base + tk->n) {
            uint64_t i = p - tk->base;
            uint32_t a = i ? tk->text_end[i - 1] : 0;
            fprintf(fp, "%" PRId32 ",", tk->id[i]);
            csv_text(fp, tk->text + a, tk->text_end[i] - a);
        } else if (cut_short) {
            fputc(',', fp);   /* the tokens were not written before the cut */
        } else {
            if (c)
                bad_chunk(ex, c, "prompt %" PRId64 " has tensor rows at position %" PRIu64 " but no token there",
                          ex->prompt, p);
            cli_die("%s: prompt %" PRId64 " has tensor rows at position %" PRIu64 " but no token there", ex->trace,
                    ex->prompt, p);
        }
        fputc('\n', fp);
        ex->n_index_rows++;
    }
    for (int64_t i = 0; i < ex->n_hooks; i++)
        ex->hooks[i].have = 0;
    tk->n = 0;
    tk->text_len = 0;
}

/* ------------------------------------------------------------ the run */

static char *default_dir(const char *trace)
{
    if (strcmp(trace, "-") == 0)
        return strdup("bitlens-export");
    size_t n = strlen(trace);
    while (n > 1 && trace[n - 1] == '/')
        n--;
    if (n > 4 && strncmp(trace + n - 4, ".blt", 4) == 0 && trace[n - 5] != '/')
        n -= 4;
    char *d = xmalloc(n + 8);
    memcpy(d, trace, n);
    memcpy(d + n, "-export", 8);
    return d;
}

static void open_outputs(struct export *ex)
{
    struct stat st;
    if (stat(ex->dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            cli_die("%s: exists and is not a directory", ex->dir);
    } else if (errno != ENOENT) {
        cli_die("%s: %s", ex->dir, strerror(errno));
    }
    if (ex->npy) {
        out_init(&ex->index, ex->dir, "index.csv");
        for (int64_t i = 0; i < ex->n_hooks; i++) {
            struct hook *k = &ex->hooks[i];
            char *name = path_join("", k->name, ".npy");
            out_init(&k->file, ex->dir, name + 1);
            free(name);
        }
    } else {
        out_init(&ex->tokens, ex->dir, "tokens.csv");
        out_init(&ex->stats, ex->dir, "stats.csv");
        if (ex->lens)
            out_init(&ex->lensf, ex->dir, "lens.csv");
    }
    /* nothing is written if any file is in the way */
    struct out *all[] = {&ex->index, &ex->tokens, &ex->stats, &ex->lensf};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->path)
            out_check(all[i], ex->force);
    for (int64_t i = 0; i < ex->n_hooks && ex->npy; i++)
        out_check(&ex->hooks[i].file, ex->force);

    if (stat(ex->dir, &st) != 0) {
        if (mkdir(ex->dir, 0777) != 0)
            cli_die("%s: cannot create the directory: %s", ex->dir, strerror(errno));
        ex->made_dir = 1;
    }
    if (ex->npy) {
        out_create(&ex->index, 1);
        fputs("row,prompt,position,token,text\n", ex->index.fp);
        for (int64_t i = 0; i < ex->n_hooks; i++) {
            struct hook *k = &ex->hooks[i];
            out_create(&k->file, 0);
            npy_write_header(k, ex->dtype);
        }
        return;
    }
    out_create(&ex->tokens, 1);
    fputs("prompt,position,token,text,sampled\n", ex->tokens.fp);
    out_create(&ex->stats, 1);
    fputs("prompt,position,token,next,entropy_bits,entropy_t_bits,surprisal_bits,rank,prob", ex->stats.fp);
    for (int64_t j = 1; j <= ex->top_k; j++)
        fprintf(ex->stats.fp, ",top%" PRId64 "_id,top%" PRId64 "_p", j, j);
    fputc('\n', ex->stats.fp);
    if (ex->lens) {
        out_create(&ex->lensf, 1);
        fputs("prompt,position,layer,entropy_bits,cross_entropy_bits,kl_bits\n", ex->lensf.fp);
    }
}

static void check_prompt(const struct export *ex, const struct bl_trace_chunk *c, uint32_t prompt)
{
    if (ex->prompt < 0)
        bad_chunk(ex, c, "a record before the first prompt record (PRMT)");
    if ((int64_t)prompt != ex->prompt)
        bad_chunk(ex, c, "a record of prompt %" PRIu32 " among the records of prompt %" PRId64, prompt, ex->prompt);
}

static void run(struct export *ex)
{
    struct bl_trace_chunk c;
    bl_err err = {0};
    int32_t *top_id = xmalloc((size_t)ex->top_k * sizeof *top_id + 4);
    float *top_p = xmalloc((size_t)ex->top_k * sizeof *top_p + 4);
    size_t hl;
    bl_trace_reader_header(ex->r, &hl);
    ex->end_offset = 16 + (uint64_t)hl + 4;
    ex->prompt = -1;
    int rc;
    while ((rc = bl_trace_reader_next(ex->r, &c, &err)) == 1) {
        ex->n_chunks++;
        ex->end_offset = c.offset + CHUNK_HEADER + c.stored_len;
        switch (c.type) {
        case BL_CHUNK_PROMPT: {
            struct bl_rec_prompt p;
            if (bl_rec_parse_prompt(&c, &p, &err))
                cli_die("%s: %s", ex->trace, err.msg);
            if (p.prompt >= (uint64_t)ex->n_prompts)
                bad_chunk(ex, &c, "prompt %" PRIu32 " is not in the header (%" PRId64 " prompts)", p.prompt,
                          ex->n_prompts);
            if (ex->npy)
                npy_end_prompt(ex, &c, 0);
            ex->prompt = p.prompt;
            ex->prompts_seen++;
            break;
        }
        case BL_CHUNK_TOKENS: {
            struct bl_rec_tokens t;
            if (bl_rec_parse_tokens(&c, &t, &err))
                cli_die("%s: %s", ex->trace, err.msg);
            check_prompt(ex, &c, t.prompt);
            if (ex->npy)
                toks_add(ex, &c, &t);
            else
                csv_tokens(ex, &t);
            break;
        }
        case BL_CHUNK_STATS: {
            struct bl_rec_stats s;
            if (bl_rec_parse_stats(&c, &s, &err))
                cli_die("%s: %s", ex->trace, err.msg);
            check_prompt(ex, &c, s.prompt);
            if (s.k != (uint64_t)ex->top_k)
                bad_chunk(ex, &c, "rows of top %" PRIu32 ", the header says top %" PRId64, s.k, ex->top_k);
            if (!ex->npy)
                csv_stats(ex, &s, top_id, top_p);
            break;
        }
        case BL_CHUNK_LENS: {
            struct bl_rec_lens l;
            if (bl_rec_parse_lens(&c, &l, &err))
                cli_die("%s: %s", ex->trace, err.msg);
            check_prompt(ex, &c, l.prompt);
            if (!ex->lens)
                bad_chunk(ex, &c, "logit-lens rows, but the header says the lens was not taken");
            if (!ex->npy)
                csv_lens(ex, &l);
            break;
        }
        case BL_CHUNK_TENSOR: {
            struct bl_rec_tensor t;
            if (bl_rec_parse_tensor(&c, &t, &err))
                cli_die("%s: %s", ex->trace, err.msg);
            check_prompt(ex, &c, t.prompt);
            if (ex->npy)
                npy_tensor(ex, &c, &t);
            break;
        }
        default:
            break;   /* records of other kinds: not exported */
        }
    }
    if (rc < 0)
        cli_die("%s", err.msg);
    int complete = bl_trace_reader_complete(ex->r);
    if (ex->npy)
        npy_end_prompt(ex, NULL, !complete);
    free(top_id);
    free(top_p);
}

int cmd_export(int argc, char **argv)
{
    struct export ex;
    const char *input = NULL, *format = NULL, *dir = NULL;
    int opt;
    bl_err err = {0};

    memset(&ex, 0, sizeof ex);
    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":i:o:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            if (input)
                cli_usage("one trace at a time ('%s' and '%s')", input, optarg);
            input = optarg;
            break;
        case OPT_FORMAT: format = optarg; break;
        case 'o': dir = optarg; break;
        case OPT_FORCE: ex.force = 1; break;
        case 'q': cli_quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind < argc) {
        if (input)
            cli_usage("one trace at a time ('%s' and '%s')", input, argv[optind]);
        input = argv[optind++];
    }
    if (optind < argc)
        cli_usage("one trace at a time ('%s' is extra)", argv[optind]);
    if (!input)
        cli_usage("no trace: give the trace to export ('-' for standard input)");
    if (!format)
        cli_usage("no format: give --format csv or --format npy");
    if (strcmp(format, "npy") == 0)
        ex.npy = 1;
    else if (strcmp(format, "csv") != 0)
        cli_usage("--format '%s': not one of csv, npy", format);
    if (dir && !*dir)
        cli_usage("-o: an empty directory name");

    ex.trace = strcmp(input, "-") == 0 ? "<stdin>" : input;
    char *dflt = dir ? NULL : default_dir(input);
    if (!dir && !dflt)
        cli_die("out of memory");
    ex.dir = dir ? dir : dflt;
    if (bl_trace_reader_open(&ex.r, input, &err))
        cli_die("%s", err.msg);
    read_header(&ex);
    cleanup_ex = &ex;
    atexit(cleanup);
    open_outputs(&ex);
    run(&ex);

    /* the .npy headers get their row counts; then every file its name */
    if (ex.npy) {
        for (int64_t i = 0; i < ex.n_hooks; i++) {
            struct hook *k = &ex.hooks[i];
            if (k->rows != ex.hooks[0].rows)
                cli_die("internal error: '%s' has %" PRIu64 " rows, '%s' %" PRIu64, k->name, k->rows,
                        ex.hooks[0].name, ex.hooks[0].rows);
            npy_write_header(k, ex.dtype);
            off_t size = (off_t)NPY_HEADER + (off_t)k->rows * (off_t)k->out_width * (off_t)npy_elem(ex.dtype);
            if (truncate(k->file.tmp, size) != 0)
                cli_die("%s: cannot truncate: %s", k->file.tmp, strerror(errno));
        }
        out_commit(&ex.index);
        for (int64_t i = 0; i < ex.n_hooks; i++)
            out_commit(&ex.hooks[i].file);
    } else {
        out_commit(&ex.tokens);
        out_commit(&ex.stats);
        out_commit(&ex.lensf);
    }
    cleanup_ex = NULL;

    int complete = bl_trace_reader_complete(ex.r);
    if (!complete) {
        cli_warn("%s: incomplete trace: its whole chunks end at offset %" PRIu64 " (after %" PRIu64
                 " chunks, no closing index); exported what they hold", ex.trace, ex.end_offset, ex.n_chunks);
        if (ex.truncated)
            cli_warn("%s: the rows of the last prompt that not every hook holds were left out", ex.trace);
    }
    if (!cli_quiet) {
        if (ex.npy)
            fprintf(stderr, "bitlens export: %s: %" PRId64 " prompt%s, %" PRIu64 " rows of %" PRId64
                    " hook%s: %" PRId64 " .npy file%s and index.csv in %s\n", ex.trace, ex.prompts_seen,
                    ex.prompts_seen == 1 ? "" : "s", ex.hooks[0].rows, ex.n_hooks, ex.n_hooks == 1 ? "" : "s",
                    ex.n_hooks, ex.n_hooks == 1 ? "" : "s", ex.dir);
        else
            fprintf(stderr, "bitlens export: %s: %" PRId64 " prompt%s: %" PRIu64 " tokens, %" PRIu64
                    " positions with statistics%s in %s\n", ex.trace, ex.prompts_seen,
                    ex.prompts_seen == 1 ? "" : "s", ex.n_tok_rows, ex.n_stat_rows,
                    ex.lens ? " and logit lens" : "", ex.dir);
    }

    bl_trace_reader_free(ex.r);
    cJSON_Delete(ex.hdr);
    out_free(&ex.tokens);
    out_free(&ex.stats);
    out_free(&ex.lensf);
    out_free(&ex.index);
    for (int64_t i = 0; i < ex.n_hooks && ex.hooks; i++)
        out_free(&ex.hooks[i].file);
    free(ex.hooks);
    free(ex.tk.id);
    free(ex.tk.text_end);
    free(ex.tk.text);
    free(ex.row);
    free(dflt);
    return 0;
}
