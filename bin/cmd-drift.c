/* bin/cmd-drift.c: `bitlens drift`: score text, or the text of a trace (its
 * generated tokens, and with a drafter the drafts of fast mode), span by
 * span for drift away from readable English; flag spans and sustained drift
 * (CUSUM); exit 1 when anything is flagged.  Also builds the reference
 * English tables (--build-reference). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include <bitlens/drift.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens drift (TRACE | --text FILE | -) [-m MODEL] [-z TOKENIZER] [--no-model]\n"
    "                     [--no-verify] [-w N] [--stride N] [-t T] [--cusum-k K] [--cusum-h H]\n"
    "                     [--baseline FILE] [--reference FILE] [--dict FILE] [--lines]\n"
    "                     [--tokens-per-pass K] [--threads N] [--all] [--csv | --json] [-q] [-v]\n"
    "       bitlens drift --build-reference OUT --train FILE --calibration FILE\n"
    "                     [--source NAME] [-q]\n"
    "\n"
    "Score text span by span for drift away from readable English: bits per\n"
    "character under a model and under reference English, word statistics, a\n"
    "word list, compression, scripts, repetition and the Gopher rules, each\n"
    "against a baseline.  Flags spans above the threshold and sustained drift\n"
    "(CUSUM).  Exit status 1 when anything is flagged, 0 when nothing is.\n"
    "\n"
    "  TRACE                    score the trace's generated text per prompt (verify);\n"
    "                           with a drafter also the drafts of fast mode, the\n"
    "                           model's token and K-1 drafted ones per pass\n"
    "      --text FILE          score the text of FILE ('-': standard input)\n"
    "  -m, --model MODEL        add bits per character under MODEL (default: with\n"
    "                           --text or -, the default model, see bitlens(1); with\n"
    "                           a trace, the model it names)\n"
    "  -z, --tokenizer FILE     the llama2.c tokenizer.bin for a .bin model\n"
    "      --no-model           no model feature\n"
    "      --no-verify          do not check the model's sha256 against the trace\n"
    "  -w, --window N           span length in characters (default 128)\n"
    "      --stride N           characters from one span to the next (default: the\n"
    "                           window); spans start at word starts\n"
    "  -t, --threshold T        flag spans scoring above T (default 5.5)\n"
    "      --cusum-k K          CUSUM allowance (default: the baseline's 90th\n"
    "                           percentile score)\n"
    "      --cusum-h H          CUSUM decision level (default: the threshold)\n"
    "      --baseline FILE      the baseline: a trace (its generated text: the model's\n"
    "                           own one-token-per-pass output) or a text file\n"
    "                           (default: the reference English calibration text)\n"
    "      --reference FILE     reference English tables (default: built in, Brown)\n"
    "      --dict FILE          word list (default /usr/share/dict/words)\n"
    "      --lines              with --text: each line is a text of its own\n"
    "      --tokens-per-pass K  fast mode's tokens per pass (default: every K from 2\n"
    "                           to the drafter's heads + 1)\n"
    "      --threads N          threads for the model (default: all processors)\n"
    "      --all                list every span, not only the flagged ones\n"
    "      --csv                one row per span: its place, score, features, text\n"
    "      --json               one JSON object\n"
    "      --build-reference OUT  build reference tables from a training text and a\n"
    "                           calibration text (paragraph per line) into OUT\n"
    "      --train FILE         its training text\n"
    "      --calibration FILE   its calibration text (held out from the training text)\n"
    "      --source NAME        the corpus's name, stored in OUT\n"
    "  -q, --quiet              no progress or notes on stderr\n"
    "  -v, --verbose            the baseline and timings on stderr\n"
    "  -h, --help               this text\n";

enum {
    OPT_TEXT = 256, OPT_NO_MODEL, OPT_NO_VERIFY, OPT_STRIDE, OPT_CUSUM_K, OPT_CUSUM_H, OPT_BASELINE,
    OPT_REFERENCE, OPT_DICT, OPT_LINES, OPT_TPP, OPT_THREADS, OPT_ALL, OPT_CSV, OPT_JSON, OPT_BUILD,
    OPT_TRAIN, OPT_CALIB, OPT_SOURCE
};

static const struct option options[] = {
    {"text", required_argument, NULL, OPT_TEXT},
    {"model", required_argument, NULL, 'm'},
    {"tokenizer", required_argument, NULL, 'z'},
    {"no-model", no_argument, NULL, OPT_NO_MODEL},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"window", required_argument, NULL, 'w'},
    {"stride", required_argument, NULL, OPT_STRIDE},
    {"threshold", required_argument, NULL, 't'},
    {"cusum-k", required_argument, NULL, OPT_CUSUM_K},
    {"cusum-h", required_argument, NULL, OPT_CUSUM_H},
    {"baseline", required_argument, NULL, OPT_BASELINE},
    {"reference", required_argument, NULL, OPT_REFERENCE},
    {"dict", required_argument, NULL, OPT_DICT},
    {"lines", no_argument, NULL, OPT_LINES},
    {"tokens-per-pass", required_argument, NULL, OPT_TPP},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"all", no_argument, NULL, OPT_ALL},
    {"csv", no_argument, NULL, OPT_CSV},
    {"json", no_argument, NULL, OPT_JSON},
    {"build-reference", required_argument, NULL, OPT_BUILD},
    {"train", required_argument, NULL, OPT_TRAIN},
    {"calibration", required_argument, NULL, OPT_CALIB},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define DEFAULT_WINDOW 128
#define DEFAULT_THRESHOLD 5.5
#define MAX_INPUT ((size_t)1 << 30)
#define DEFAULT_DICT "/usr/share/dict/words"

/* A text to score: a prompt's output in one mode, a line, or a file. */
struct doc {
    char *label;      /* "prompt 3", "line 12", the file name */
    char *mode;       /* "text", "verify", "fast k=2" */
    int k;            /* tokens per pass (trace), else 0 */
    char *text;
    size_t n;
    float *bits;      /* model surprisal per byte, or NULL */
};

struct docs {
    struct doc *d;
    int64_t n, cap;
};

static struct doc *add_doc(struct docs *ds, const char *label, const char *mode, int k, char *text, size_t n)
{
    if (ds->n == ds->cap) {
        ds->cap = ds->cap ? 2 * ds->cap : 16;
        ds->d = realloc(ds->d, (size_t)ds->cap * sizeof *ds->d);
        if (!ds->d)
            cli_die("out of memory");
    }
    struct doc *d = &ds->d[ds->n++];
    d->label = strdup(label);
    d->mode = strdup(mode);
    if (!d->label || !d->mode)
        cli_die("out of memory");
    d->k = k;
    d->text = text;
    d->n = n;
    d->bits = NULL;
    return d;
}

static void free_docs(struct docs *ds)
{
    for (int64_t i = 0; i < ds->n; i++) {
        free(ds->d[i].label);
        free(ds->d[i].mode);
        free(ds->d[i].text);
        free(ds->d[i].bits);
    }
    free(ds->d);
    memset(ds, 0, sizeof *ds);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        cli_die("out of memory");
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---------------------------------------------------------------- traces */

struct tbuf {
    char *s;
    size_t n, cap;
};

static void tb_add(struct tbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            cli_die("out of memory");
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* One prompt of a trace: its tokens by position and the drafts. */
struct tprompt {
    int64_t n_pos, n_prompt;
    int32_t *ids;          /* [n_pos], -1 where absent */
    char **text;           /* [n_pos] token texts as recorded */
    size_t *len;
    int k;                 /* heads */
    int32_t *draft;        /* [n_pos x k], -1 where absent */
};

static void tprompt_free(struct tprompt *p)
{
    for (int64_t i = 0; p->text && i < p->n_pos; i++)
        free(p->text[i]);
    free(p->ids);
    free(p->text);
    free(p->len);
    free(p->draft);
    memset(p, 0, sizeof *p);
}

static void tprompt_grow(struct tprompt *p, int64_t n_pos, int k)
{
    if (n_pos <= p->n_pos && k <= p->k)
        return;
    int64_t np = n_pos > p->n_pos ? n_pos : p->n_pos;
    int nk = k > p->k ? k : p->k;
    p->ids = realloc(p->ids, (size_t)np * sizeof *p->ids);
    p->text = realloc(p->text, (size_t)np * sizeof *p->text);
    p->len = realloc(p->len, (size_t)np * sizeof *p->len);
    int32_t *draft = malloc((size_t)np * (size_t)(nk ? nk : 1) * sizeof *draft);
    if (!p->ids || !p->text || !p->len || !draft)
        cli_die("out of memory");
    for (int64_t i = 0; i < np * (nk ? nk : 1); i++)
        draft[i] = -1;
    for (int64_t i = 0; p->draft && i < p->n_pos; i++)
        for (int j = 0; j < p->k; j++)
            draft[i * nk + j] = p->draft[i * p->k + j];
    free(p->draft);
    p->draft = draft;
    for (int64_t i = p->n_pos; i < np; i++) {
        p->ids[i] = -1;
        p->text[i] = NULL;
        p->len[i] = 0;
    }
    p->n_pos = np;
    p->k = nk;
}

/* The generated text of each prompt of a trace (mode "verify"), and with
 * drafts the fast-mode text for each k in ks. */
static void trace_docs(const char *path, const bl_tokenizer *tok, const int *ks, int nks, struct docs *out,
                       int *heads)
{
    bl_trace_reader *r;
    bl_err err = {0};
    if (bl_trace_reader_open(&r, path, &err))
        cli_die("%s", err.msg);
    struct bl_trace_meta meta;
    if (bl_trace_meta_read(r, &meta, &err))
        cli_die("%s", err.msg);
    *heads = meta.drafter_heads;
    int64_t np = meta.n_prompts > 0 ? meta.n_prompts : 0;
    struct tprompt *ps = calloc((size_t)(np ? np : 1), sizeof *ps);
    if (!ps)
        cli_die("out of memory");
    struct bl_trace_chunk c;
    int rc;
    while ((rc = bl_trace_reader_next(r, &c, &err)) == 1) {
        if (c.type == BL_CHUNK_PROMPT) {
            struct bl_rec_prompt p;
            if (bl_rec_parse_prompt(&c, &p, &err))
                cli_die("%s", err.msg);
            if ((int64_t)p.prompt >= np)
                cli_die("%s: chunk %llu at offset %llu: prompt %u of %lld", path, (unsigned long long)c.index,
                        (unsigned long long)c.offset, p.prompt, (long long)np);
            ps[p.prompt].n_prompt = p.n_ids;
        } else if (c.type == BL_CHUNK_TOKENS) {
            struct bl_rec_tokens t;
            if (bl_rec_parse_tokens(&c, &t, &err))
                cli_die("%s", err.msg);
            if ((int64_t)t.prompt >= np || t.pos0 + t.n > (uint64_t)1 << 30)
                cli_die("%s: chunk %llu at offset %llu: prompt %u, positions %llu+%llu out of range", path,
                        (unsigned long long)c.index, (unsigned long long)c.offset, t.prompt,
                        (unsigned long long)t.pos0, (unsigned long long)t.n);
            struct tprompt *p = &ps[t.prompt];
            tprompt_grow(p, (int64_t)(t.pos0 + t.n), p->k);
            for (uint64_t i = 0; i < t.n; i++) {
                int sampled;
                const char *s;
                size_t len;
                int64_t at = (int64_t)(t.pos0 + i);
                p->ids[at] = bl_rec_token(&t, i, &sampled, &s, &len);
                free(p->text[at]);
                p->text[at] = dup_bytes(s, len);
                p->len[at] = len;
            }
        } else if (c.type == BL_CHUNK_DRAFTER) {
            struct bl_rec_drafter d;
            if (bl_rec_parse_drafter(&c, &d, &err))
                cli_die("%s", err.msg);
            if ((int64_t)d.prompt >= np || d.pos0 + d.n > (uint64_t)1 << 30)
                cli_die("%s: chunk %llu at offset %llu: prompt %u, positions %llu+%llu out of range", path,
                        (unsigned long long)c.index, (unsigned long long)c.offset, d.prompt,
                        (unsigned long long)d.pos0, (unsigned long long)d.n);
            struct tprompt *p = &ps[d.prompt];
            tprompt_grow(p, (int64_t)(d.pos0 + d.n), (int)d.k);
            struct bl_rec_drafter_head h[BL_DRAFTER_MAX_HEADS];
            for (uint64_t i = 0; i < d.n; i++) {
                bl_rec_drafter_row(&d, i, h);
                for (uint32_t j = 0; j < d.k; j++)
                    p->draft[(int64_t)(d.pos0 + i) * p->k + j] = h[j].token;
            }
        }
    }
    if (rc < 0)
        cli_die("%s", err.msg);
    for (int64_t i = 0; i < np; i++) {
        struct tprompt *p = &ps[i];
        char label[64];
        snprintf(label, sizeof label, "prompt %lld", (long long)i);
        /* verify: the generated tokens as recorded */
        struct tbuf b = {0};
        tb_add(&b, "", 0);
        for (int64_t t = p->n_prompt; t < p->n_pos; t++)
            if (p->text[t])
                tb_add(&b, p->text[t], p->len[t]);
        add_doc(out, label, "verify", 1, b.s, b.n);
        /* fast: from the prompt's last position, passes k apart, each the
         * recorded next token and the first k-1 drafts made there */
        for (int q = 0; q < nks && tok && p->k; q++) {
            int k = ks[q];
            if (k < 2 || k > p->k + 1)
                continue;
            struct tbuf f = {0};
            tb_add(&f, "", 0);
            int32_t prev = -1;
            for (int64_t t = p->n_prompt - 1; t >= 0 && t + 1 < p->n_pos; t += k) {
                if (p->ids[t + 1] < 0)
                    break;
                int32_t pass[BL_DRAFTER_MAX_HEADS + 1];
                pass[0] = p->ids[t + 1];
                int m = 1;
                for (int j = 0; j < k - 1 && p->draft[t * p->k + j] >= 0; j++)
                    pass[m++] = p->draft[t * p->k + j];
                if (m < k)
                    break;   /* no drafts recorded at t */
                for (int j = 0; j < m; j++) {
                    char piece[256];
                    size_t len = bl_tokenizer_decode(tok, prev, pass[j], piece, sizeof piece);
                    tb_add(&f, piece, len < sizeof piece ? len : sizeof piece);
                    prev = pass[j];
                }
            }
            char mode[32];
            snprintf(mode, sizeof mode, "fast k=%d", k);
            add_doc(out, label, mode, k, f.s, f.n);
        }
        tprompt_free(p);
    }
    free(ps);
    bl_trace_meta_release(&meta);
    bl_trace_reader_free(r);
}

/* ---------------------------------------------------------------- spans */

struct span {
    int64_t doc, index;
    int64_t c0, c1;            /* characters */
    int64_t b0, b1;            /* bytes */
    struct bl_drift_features f;
    double z[BL_DF_COUNT];
    double score, cusum;
    bool flagged, alarm;
    int64_t alarm_from;        /* the span index where the CUSUM run began */
};

struct spans {
    struct span *s;
    int64_t n, cap;
};

/* Baselines by span length (the last span of a text may be shorter). */
struct baselines {
    const char *name;              /* for messages: the file, or the reference */
    const struct bl_drift_scorer *scorer;
    const char *text;
    size_t n;
    const float *bits;
    int64_t max_spans;
    struct bl_drift_baseline *b;   /* [window + 1], by length */
    bool *have;
    int window;
};

static const struct bl_drift_baseline *baseline_at(struct baselines *bs, int len)
{
    if (len > bs->window)
        len = bs->window;
    if (!bs->have[len]) {
        bl_err err = {0};
        if (bl_drift_baseline_from_text(&bs->b[len], bs->scorer, bs->text, bs->n, bs->bits, len, bs->max_spans,
                                        &err))
            cli_die("%s: %s", bs->name, err.msg);
        bs->have[len] = true;
    }
    return &bs->b[len];
}

static int is_word_start(const char *t, int64_t b)
{
    return b == 0 || ((t[b - 1] == ' ' || t[b - 1] == '\n' || t[b - 1] == '\t') && t[b] != ' ' && t[b] != '\n');
}

/* How far past its nominal place a span looks for a word start to begin at:
 * longer than English words, so that text without blanks is still covered. */
#define WORD_START_REACH 32

/* The first word start among characters c .. c + WORD_START_REACH (before
 * nc), else c itself. */
static int64_t word_start_from(const char *t, const int64_t *off, int64_t nc, int64_t c)
{
    for (int64_t j = c; j < nc && j <= c + WORD_START_REACH; j++)
        if (is_word_start(t, off[j]))
            return j;
    return c;
}

static void score_doc(struct spans *out, int64_t di, const struct doc *d, const struct bl_drift_scorer *sc,
                      struct baselines *bs, int window, int stride, double threshold, double cusum_k,
                      double cusum_h)
{
    int64_t *off = malloc((d->n + 1) * sizeof *off);
    if (!off)
        cli_die("out of memory");
    int64_t nc = bl_utf8_offsets(d->text, d->n, off);
    struct bl_drift_cusum cu;
    const struct bl_drift_baseline *full = baseline_at(bs, window);
    bl_drift_cusum_init(&cu, isnan(cusum_k) ? full->score_q[1] : cusum_k, isnan(cusum_h) ? threshold : cusum_h);
    int64_t idx = 0;
    int64_t c = word_start_from(d->text, off, nc, 0);   /* the first word start */
    int min_len = window / 2 > 8 ? window / 2 : 8;
    while (c < nc) {
        int64_t e = c + window < nc ? c + window : nc;
        if (e - c < min_len && !(idx == 0 && e - c > 0)) {
            break;   /* a short tail: left out */
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 256;
            out->s = realloc(out->s, (size_t)out->cap * sizeof *out->s);
            if (!out->s)
                cli_die("out of memory");
        }
        struct span *s = &out->s[out->n++];
        memset(s, 0, sizeof *s);
        s->doc = di;
        s->index = idx++;
        s->c0 = c;
        s->c1 = e;
        s->b0 = off[c];
        s->b1 = off[e];
        if (bl_drift_features(sc, d->text + s->b0, (size_t)(s->b1 - s->b0), d->bits ? d->bits + s->b0 : NULL,
                              &s->f))
            cli_die("out of memory");
        const struct bl_drift_baseline *b = baseline_at(bs, (int)(e - c));
        s->score = bl_drift_score(b, &s->f, s->z);
        s->alarm = bl_drift_cusum_add(&cu, s->score);
        s->cusum = cu.s;
        s->alarm_from = cu.start;
        s->flagged = s->score > threshold || s->alarm;
        /* the next span: `stride` on, at a word start */
        if (e == nc)
            break;
        c = word_start_from(d->text, off, nc, c + stride);
    }
    free(off);
}

/* The features that moved most, "dict_rate -4.1, char_ce +3.0" (z > 2). */
static void moved(const struct span *s, char *buf, size_t cap)
{
    int order[BL_DF_COUNT];
    for (int f = 0; f < BL_DF_COUNT; f++)
        order[f] = f;
    for (int i = 0; i < BL_DF_COUNT; i++)
        for (int j = i + 1; j < BL_DF_COUNT; j++)
            if (s->z[order[j]] > s->z[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    buf[0] = 0;
    size_t at = 0;
    for (int i = 0; i < 4 && s->z[order[i]] > 2; i++) {
        int f = order[i];
        int dir = bl_drift_feature_direction(f);
        double signed_z = dir < 0 ? -s->z[f] : s->z[f];
        int w = snprintf(buf + at, cap - at, "%s%s %+.1f", i ? ", " : "", bl_drift_feature_name(f), signed_z);
        if (w < 0 || (size_t)w >= cap - at)
            break;
        at += (size_t)w;
    }
}

/* ---------------------------------------------------------------- output */

static void csv_text(FILE *fp, const char *s, size_t n)
{
    struct cli_utf8 u = {0};
    fputc('"', fp);
    size_t a = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '"' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
            cli_utf8_put(&u, fp, s + a, i - a);
            if (i < n)
                fputs(s[i] == '"' ? "\"\"" : " ", fp);
            a = i + 1;
        }
    }
    fputc('"', fp);
}

static void print_text(FILE *fp, const char *s, size_t n)
{
    struct cli_utf8 u = {0};
    size_t a = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
            cli_utf8_put(&u, fp, s + a, i - a);
            if (i < n)
                fputc(' ', fp);
            a = i + 1;
        }
}

static char *utf8_clean(const char *s, size_t n)
{
    /* valid UTF-8 for JSON: invalid bytes become U+FFFD */
    char *out = malloc(3 * n + 1);
    if (!out)
        cli_die("out of memory");
    size_t o = 0;
    int64_t *off = malloc((n + 1) * sizeof *off);
    if (!off)
        cli_die("out of memory");
    int64_t nc = bl_utf8_offsets(s, n, off);
    for (int64_t i = 0; i < nc; i++) {
        size_t len = (size_t)(off[i + 1] - off[i]);
        unsigned char c0 = (unsigned char)s[off[i]];
        if (len == 1 && c0 >= 0x80) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else {
            memcpy(out + o, s + off[i], len);
            o += len;
        }
    }
    out[o] = 0;
    free(off);
    return out;
}

struct mode_sum {
    const char *mode;
    int64_t spans, flagged, docs, docs_flagged;
    double score_sum;
    double feat_sum[BL_DF_COUNT];
    int64_t feat_n[BL_DF_COUNT];
};

static int summarize(const struct docs *ds, const struct spans *ss, struct mode_sum *ms, int cap)
{
    int nm = 0;
    for (int64_t i = 0; i < ss->n; i++) {
        const struct span *s = &ss->s[i];
        const char *mode = ds->d[s->doc].mode;
        int m = 0;
        while (m < nm && strcmp(ms[m].mode, mode) != 0)
            m++;
        if (m == nm) {
            if (nm == cap)
                continue;
            memset(&ms[nm], 0, sizeof ms[nm]);
            ms[nm++].mode = mode;
        }
        ms[m].spans++;
        ms[m].flagged += s->flagged;
        ms[m].score_sum += s->score;
        for (int f = 0; f < BL_DF_COUNT; f++)
            if (s->f.have[f]) {
                ms[m].feat_sum[f] += s->f.v[f];
                ms[m].feat_n[f]++;
            }
    }
    /* texts per mode, and those with a flagged span */
    for (int m = 0; m < nm; m++)
        for (int64_t d = 0; d < ds->n; d++) {
            if (strcmp(ds->d[d].mode, ms[m].mode) != 0)
                continue;
            ms[m].docs++;
            for (int64_t i = 0; i < ss->n; i++)
                if (ss->s[i].doc == d && ss->s[i].flagged) {
                    ms[m].docs_flagged++;
                    break;
                }
        }
    return nm;
}

static void out_table(const struct docs *ds, const struct spans *ss, const struct bl_drift_baseline *b,
                      const char *baseline_name, double threshold, double cusum_h, int all)
{
    printf("drift: %lld spans of up to %d characters in %lld texts; baseline %s (%lld spans); threshold %g\n",
           (long long)ss->n, b->window, (long long)ds->n, baseline_name, (long long)b->n_spans, threshold);
    int64_t shown = 0;
    for (int64_t i = 0; i < ss->n; i++) {
        const struct span *s = &ss->s[i];
        if (!all && !s->flagged)
            continue;
        if (!shown++)
            printf("\n%-12s %-9s %5s %13s %7s %7s %s\n", "text", "mode", "span", "characters", "score", "cusum",
                   "flag  moved");
        char mv[256];
        moved(s, mv, sizeof mv);
        const char *flag = s->score > threshold ? (s->alarm ? "*+" : "* ") : s->alarm ? " +" : "  ";
        char range[32];
        snprintf(range, sizeof range, "%lld..%lld", (long long)s->c0, (long long)s->c1);
        printf("%-12s %-9s %5lld %13s %7.2f %7.2f %s    %s\n", ds->d[s->doc].label, ds->d[s->doc].mode,
               (long long)s->index, range, s->score, s->cusum, flag, mv);
        printf("    \"");
        print_text(stdout, ds->d[s->doc].text + s->b0, (size_t)(s->b1 - s->b0));
        printf("\"\n");
        if (s->alarm && (i == 0 || !ss->s[i - 1].alarm || ss->s[i - 1].doc != s->doc))
            printf("    sustained drift (CUSUM above %g) since span %lld\n", cusum_h, (long long)s->alarm_from);
    }
    if (shown)
        printf("\n* score above the threshold; + CUSUM alarm (sustained drift)\n");
    struct mode_sum ms[16];
    int nm = summarize(ds, ss, ms, 16);
    printf("\n%-10s %6s %6s %13s %13s %10s", "mode", "texts", "spans", "flagged spans", "flagged texts",
           "mean score");
    static const int show[] = {BL_DF_MODEL_BPC, BL_DF_CHAR_CE, BL_DF_WORD_PMI, BL_DF_DICT_RATE};
    for (size_t j = 0; j < sizeof show / sizeof *show; j++)
        printf(" %13s", bl_drift_feature_name(show[j]));
    printf("\n");
    for (int m = 0; m < nm; m++) {
        printf("%-10s %6lld %6lld %13lld %13lld %10.2f", ms[m].mode, (long long)ms[m].docs, (long long)ms[m].spans,
               (long long)ms[m].flagged, (long long)ms[m].docs_flagged,
               ms[m].spans ? ms[m].score_sum / ms[m].spans : 0.0);
        for (size_t j = 0; j < sizeof show / sizeof *show; j++) {
            int f = show[j];
            if (ms[m].feat_n[f])
                printf(" %13.3f", ms[m].feat_sum[f] / ms[m].feat_n[f]);
            else
                printf(" %13s", "-");
        }
        printf("\n");
    }
}

static void out_csv(FILE *fp, const struct docs *ds, const struct spans *ss)
{
    fprintf(fp, "text,mode,k,span,char_start,char_end,score,cusum,flagged,alarm");
    for (int f = 0; f < BL_DF_COUNT; f++)
        fprintf(fp, ",%s", bl_drift_feature_name(f));
    for (int f = 0; f < BL_DF_COUNT; f++)
        fprintf(fp, ",z_%s", bl_drift_feature_name(f));
    fprintf(fp, ",span_text\n");
    for (int64_t i = 0; i < ss->n; i++) {
        const struct span *s = &ss->s[i];
        const struct doc *d = &ds->d[s->doc];
        csv_text(fp, d->label, strlen(d->label));
        fputc(',', fp);
        csv_text(fp, d->mode, strlen(d->mode));
        fprintf(fp, ",%d,%lld,%lld,%lld,%.6g,%.6g,%d,%d", d->k, (long long)s->index, (long long)s->c0,
                (long long)s->c1, s->score, s->cusum, s->flagged, s->alarm);
        for (int f = 0; f < BL_DF_COUNT; f++)
            if (s->f.have[f])
                fprintf(fp, ",%.6g", s->f.v[f]);
            else
                fprintf(fp, ",");
        for (int f = 0; f < BL_DF_COUNT; f++)
            if (s->f.have[f])
                fprintf(fp, ",%.4g", s->z[f] == 0 ? 0.0 : s->z[f]);
            else
                fprintf(fp, ",");
        fprintf(fp, ",");
        csv_text(fp, d->text + s->b0, (size_t)(s->b1 - s->b0));
        fprintf(fp, "\n");
    }
}

static void out_json(const struct docs *ds, const struct spans *ss, const struct bl_drift_baseline *b,
                     const char *baseline_name, double threshold, double cusum_k, double cusum_h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "window", b->window);
    cJSON_AddNumberToObject(o, "threshold", threshold);
    cJSON_AddNumberToObject(o, "cusum_k", isnan(cusum_k) ? b->score_q[1] : cusum_k);
    cJSON_AddNumberToObject(o, "cusum_h", isnan(cusum_h) ? threshold : cusum_h);
    cJSON *bj = cJSON_AddObjectToObject(o, "baseline");
    cJSON_AddStringToObject(bj, "source", baseline_name);
    cJSON_AddNumberToObject(bj, "spans", (double)b->n_spans);
    cJSON *med = cJSON_AddObjectToObject(bj, "median"), *sc = cJSON_AddObjectToObject(bj, "scale");
    for (int f = 0; f < BL_DF_COUNT; f++)
        if (b->have[f]) {
            cJSON_AddNumberToObject(med, bl_drift_feature_name(f), b->median[f]);
            cJSON_AddNumberToObject(sc, bl_drift_feature_name(f), b->scale[f]);
        }
    cJSON *q = cJSON_AddObjectToObject(bj, "score");
    cJSON_AddNumberToObject(q, "p50", b->score_q[0]);
    cJSON_AddNumberToObject(q, "p90", b->score_q[1]);
    cJSON_AddNumberToObject(q, "p99", b->score_q[2]);
    cJSON *texts = cJSON_AddArrayToObject(o, "texts");
    for (int64_t d = 0; d < ds->n; d++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "text", ds->d[d].label);
        cJSON_AddStringToObject(t, "mode", ds->d[d].mode);
        cJSON_AddNumberToObject(t, "k", ds->d[d].k);
        cJSON_AddNumberToObject(t, "bytes", (double)ds->d[d].n);
        cJSON *sp = cJSON_AddArrayToObject(t, "spans");
        bool any = false;
        for (int64_t i = 0; i < ss->n; i++) {
            const struct span *s = &ss->s[i];
            if (s->doc != d)
                continue;
            any |= s->flagged;
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "span", (double)s->index);
            cJSON_AddNumberToObject(j, "char_start", (double)s->c0);
            cJSON_AddNumberToObject(j, "char_end", (double)s->c1);
            cJSON_AddNumberToObject(j, "score", s->score);
            cJSON_AddNumberToObject(j, "cusum", s->cusum);
            cJSON_AddBoolToObject(j, "flagged", s->flagged);
            cJSON_AddBoolToObject(j, "alarm", s->alarm);
            if (s->alarm)
                cJSON_AddNumberToObject(j, "alarm_from", (double)s->alarm_from);
            cJSON *fo = cJSON_AddObjectToObject(j, "features"), *zo = cJSON_AddObjectToObject(j, "z");
            for (int f = 0; f < BL_DF_COUNT; f++)
                if (s->f.have[f]) {
                    cJSON_AddNumberToObject(fo, bl_drift_feature_name(f), s->f.v[f]);
                    cJSON_AddNumberToObject(zo, bl_drift_feature_name(f), s->z[f]);
                }
            char *clean = utf8_clean(ds->d[d].text + s->b0, (size_t)(s->b1 - s->b0));
            cJSON_AddStringToObject(j, "span_text", clean);
            free(clean);
            cJSON_AddItemToArray(sp, j);
        }
        cJSON_AddBoolToObject(t, "flagged", any);
        cJSON_AddItemToArray(texts, t);
    }
    struct mode_sum ms[16];
    int nm = summarize(ds, ss, ms, 16);
    cJSON *sum = cJSON_AddArrayToObject(o, "summary");
    for (int m = 0; m < nm; m++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "mode", ms[m].mode);
        cJSON_AddNumberToObject(j, "texts", (double)ms[m].docs);
        cJSON_AddNumberToObject(j, "texts_flagged", (double)ms[m].docs_flagged);
        cJSON_AddNumberToObject(j, "spans", (double)ms[m].spans);
        cJSON_AddNumberToObject(j, "spans_flagged", (double)ms[m].flagged);
        cJSON_AddNumberToObject(j, "mean_score", ms[m].spans ? ms[m].score_sum / ms[m].spans : 0.0);
        cJSON *fo = cJSON_AddObjectToObject(j, "mean_features");
        for (int f = 0; f < BL_DF_COUNT; f++)
            if (ms[m].feat_n[f])
                cJSON_AddNumberToObject(fo, bl_drift_feature_name(f), ms[m].feat_sum[f] / ms[m].feat_n[f]);
        cJSON_AddItemToArray(sum, j);
    }
    char *s = cJSON_Print(o);
    if (!s)
        cli_die("out of memory");
    puts(s);
    free(s);
    cJSON_Delete(o);
}

/* ---------------------------------------------------------------- main */

static int build_reference(const char *out, const char *train, const char *calib, const char *source)
{
    if (!train || !calib)
        cli_usage("--build-reference needs --train FILE and --calibration FILE");
    size_t nt, nc;
    char *t = cli_slurp(train, MAX_INPUT, &nt), *c = cli_slurp(calib, MAX_INPUT, &nc);
    double t0 = cli_now();
    bl_drift_ref *r;
    bl_err err = {0};
    if (!cli_quiet)
        fprintf(stderr, "bitlens drift: counting n-grams of %zu bytes of %s\n", nt, train);
    if (bl_drift_ref_build(&r, t, nt, c, nc, source ? source : train, NULL, &err))
        cli_die("%s", err.msg);
    if (bl_drift_ref_save(r, out, &err))
        cli_die("%s", err.msg);
    if (!cli_quiet) {
        struct stat sb;
        stat(out, &sb);
        fprintf(stderr, "bitlens drift: wrote %s (%lld bytes) in %.1f s\n", out, (long long)sb.st_size,
                cli_now() - t0);
    }
    bl_drift_ref_free(r);
    free(t);
    free(c);
    return 0;
}

/* The command; with csv_to, CSV goes there whatever the options say. */
static int drift(int argc, char **argv, FILE *csv_to)
{
    const char *text_path = NULL, *model_path = NULL, *tok_path = NULL, *baseline_path = NULL;
    const char *ref_path = NULL, *dict_path = NULL, *build_out = NULL, *train = NULL, *calib = NULL;
    const char *source = NULL;
    int no_model = 0, verify = 1, window = DEFAULT_WINDOW, stride = 0, lines = 0, tpp = 0, threads = 0;
    int all = 0, csv = 0, json = 0;
    double threshold = DEFAULT_THRESHOLD, cusum_k = NAN, cusum_h = NAN;
    int c;
    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:z:w:t:qvh", options, NULL)) != -1) {
        switch (c) {
        case OPT_TEXT: text_path = optarg; break;
        case 'm': model_path = optarg; break;
        case 'z': tok_path = optarg; break;
        case OPT_NO_MODEL: no_model = 1; break;
        case OPT_NO_VERIFY: verify = 0; break;
        case 'w': window = (int)cli_int("--window", optarg, 8, 1 << 20); break;
        case OPT_STRIDE: stride = (int)cli_int("--stride", optarg, 1, 1 << 20); break;
        case 't': threshold = cli_float("--threshold", optarg, 0, 1e9); break;
        case OPT_CUSUM_K: cusum_k = cli_float("--cusum-k", optarg, 0, 1e9); break;
        case OPT_CUSUM_H: cusum_h = cli_float("--cusum-h", optarg, 0, 1e9); break;
        case OPT_BASELINE: baseline_path = optarg; break;
        case OPT_REFERENCE: ref_path = optarg; break;
        case OPT_DICT: dict_path = optarg; break;
        case OPT_LINES: lines = 1; break;
        case OPT_TPP: tpp = (int)cli_int("--tokens-per-pass", optarg, 1, BL_DRAFTER_MAX_HEADS + 1); break;
        case OPT_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case OPT_ALL: all = 1; break;
        case OPT_CSV: csv = 1; break;
        case OPT_JSON: json = 1; break;
        case OPT_BUILD: build_out = optarg; break;
        case OPT_TRAIN: train = optarg; break;
        case OPT_CALIB: calib = optarg; break;
        case OPT_SOURCE: source = optarg; break;
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(c, argv);
        }
    }
    if (build_out) {
        if (optind < argc || text_path)
            cli_usage("--build-reference takes no text to score");
        return build_reference(build_out, train, calib, source);
    }
    if (train || calib || source)
        cli_usage("--train, --calibration and --source are for --build-reference");
    if (csv && json)
        cli_usage("--csv or --json, not both");
    const char *trace_path = NULL;
    if (optind < argc) {
        if (text_path || optind + 1 < argc)
            cli_usage("give one input: a TRACE, --text FILE or '-'");
        if (strcmp(argv[optind], "-") == 0)
            text_path = "-";
        else
            trace_path = argv[optind];
    }
    if (!text_path && !trace_path)
        cli_usage("give the text to score: a TRACE, --text FILE or '-' (standard input)");
    if (lines && !text_path)
        cli_usage("--lines is for --text");
    if (tpp && !trace_path)
        cli_usage("--tokens-per-pass is for a trace recorded with a drafter");
    if (!stride)
        stride = window;
    if (threads)
        bl_set_threads(threads);
    bl_err err = {0};

    /* the reference and the word list */
    bl_drift_ref *ref = NULL;
    if (ref_path ? bl_drift_ref_load(&ref, ref_path, &err) : bl_drift_ref_builtin(&ref, &err))
        cli_die("%s", err.msg);
    bl_wordlist *words = NULL;
    {
        const char *dp = dict_path ? dict_path : DEFAULT_DICT;
        struct stat sb;
        if (!dict_path && stat(dp, &sb) != 0) {
            if (!cli_quiet)
                cli_warn("no word list at %s (Debian package wamerican): dict_rate left out", dp);
        } else if (bl_wordlist_load(&words, dp, &err))
            cli_die("%s", err.msg);
    }
    struct bl_drift_scorer sc = {.ref = ref, .words = words};

    /* the texts */
    struct docs ds = {0};
    bl_model *model = NULL;
    int heads = 0;
    if (trace_path) {
        struct stat tsb;
        if (stat(trace_path, &tsb) != 0)
            cli_die("%s: %s", trace_path, strerror(errno));
        if (S_ISDIR(tsb.st_mode))
            cli_die("%s: is a directory", trace_path);
        if (!bl_trace_is_trace(trace_path))
            cli_die("%s: not a bitlens trace (for text give --text %s)", trace_path, trace_path);
        bl_trace_reader *r;
        if (bl_trace_reader_open(&r, trace_path, &err))
            cli_die("%s", err.msg);
        struct bl_trace_meta meta;
        if (bl_trace_meta_read(r, &meta, &err))
            cli_die("%s", err.msg);
        if (!no_model || meta.drafter_heads)
            model = cli_trace_model(model_path, tok_path, &meta, trace_path, verify, 0);
        bl_trace_meta_release(&meta);
        bl_trace_reader_free(r);
        int ks[BL_DRAFTER_MAX_HEADS + 1], nks = 0;
        if (tpp)
            ks[nks++] = tpp;
        else
            for (int k = 2; k <= BL_DRAFTER_MAX_HEADS + 1; k++)
                ks[nks++] = k;
        trace_docs(trace_path, model ? bl_model_tokenizer(model) : NULL, ks, nks, &ds, &heads);
        if (heads && !model && !cli_quiet)
            cli_warn("%s: without its model, the drafts cannot be spelled: verify mode only", trace_path);
        if (tpp && heads && tpp > heads + 1)
            cli_usage("--tokens-per-pass %d: the drafter has %d heads, so at most %d", tpp, heads, heads + 1);
        if (tpp && !heads)
            cli_usage("--tokens-per-pass: %s was recorded without a drafter", trace_path);
    } else {
        size_t n;
        char *t = cli_slurp(text_path, MAX_INPUT, &n);
        const char *name = strcmp(text_path, "-") == 0 ? "stdin" : text_path;
        if (lines) {
            size_t a = 0;
            int64_t ln = 0;
            while (a < n) {
                const char *e = memchr(t + a, '\n', n - a);
                size_t b = e ? (size_t)(e - t) : n;
                ln++;
                if (b > a) {
                    char label[64];
                    snprintf(label, sizeof label, "line %lld", (long long)ln);
                    add_doc(&ds, label, "text", 0, dup_bytes(t + a, b - a), b - a);
                }
                a = b + 1;
            }
            free(t);
        } else
            add_doc(&ds, name, "text", 0, t, n);
        if (!no_model) {
            model_path = cli_default_model(model_path, tok_path);
            struct bl_model_params mp = bl_model_default_params();
            mp.tokenizer_path = tok_path;
            if (bl_model_load(&model, model_path, &mp, &err))
                cli_die("%s", err.msg);
        }
    }
    if (no_model && model_path)
        cli_usage("-m MODEL and --no-model contradict each other");

    /* the model's surprisal is wanted (a drafter trace's model may be loaded
     * only to spell its drafts) */
    int model_bits = model && !no_model;

    /* the baseline text */
    char *btext = NULL;
    size_t bn = 0;
    char baseline_name[512];
    if (baseline_path) {
        if (bl_trace_is_trace(baseline_path)) {
            struct docs bd = {0};
            int bh;
            trace_docs(baseline_path, NULL, NULL, 0, &bd, &bh);
            struct tbuf b = {0};
            tb_add(&b, "", 0);
            for (int64_t i = 0; i < bd.n; i++) {
                /* one line per prompt: spans stay within a prompt's text */
                for (size_t j = 0; j < bd.d[i].n; j++)
                    if (bd.d[i].text[j] == '\n')
                        bd.d[i].text[j] = ' ';
                tb_add(&b, bd.d[i].text, bd.d[i].n);
                tb_add(&b, "\n", 1);
            }
            free_docs(&bd);
            btext = b.s;
            bn = b.n;
        } else
            btext = cli_slurp(baseline_path, MAX_INPUT, &bn);
        snprintf(baseline_name, sizeof baseline_name, "%s", baseline_path);
    } else {
        size_t n;
        const char *cal = bl_drift_ref_calibration(ref, &n);
        if (model_bits && n > 65536) {
            /* the model reads less of it: whole lines up to 64 KiB */
            const char *e = cal + 65536;
            while (e > cal && e[-1] != '\n')
                e--;
            n = (size_t)(e - cal);
        }
        btext = dup_bytes(cal, n);
        bn = n;
        snprintf(baseline_name, sizeof baseline_name, "reference English (%s)", bl_drift_ref_source(ref));
    }

    /* the model's surprisal of every text */
    float *bbits = NULL;
    if (model_bits) {
        struct bl_ctx_params cp = bl_ctx_default_params();
        cp.n_threads = threads;
        bl_ctx *ctx;
        if (bl_ctx_alloc(&ctx, model, &cp, &err))
            cli_die("%s", err.msg);
        double t0 = cli_now();
        struct cli_progress pr;
        cli_progress_init(&pr);
        pr.stage = "model bits";
        bbits = malloc((bn ? bn : 1) * sizeof *bbits);
        if (!bbits)
            cli_die("out of memory");
        if (bl_drift_model_bits(ctx, btext, bn, bbits, &err))
            cli_die("baseline: %s", err.msg);
        for (int64_t i = 0; i < ds.n; i++) {
            ds.d[i].bits = malloc((ds.d[i].n ? ds.d[i].n : 1) * sizeof *ds.d[i].bits);
            if (!ds.d[i].bits)
                cli_die("out of memory");
            if (bl_drift_model_bits(ctx, ds.d[i].text, ds.d[i].n, ds.d[i].bits, &err))
                cli_die("%s: %s", ds.d[i].label, err.msg);
            if (!cli_quiet)
                cli_progress(&pr, "model bits", i + 1, ds.n);
        }
        if (cli_verbose)
            fprintf(stderr, "bitlens drift: model bits of %zu + texts in %.2f s\n", bn, cli_now() - t0);
        bl_ctx_free(ctx);
    }

    /* baselines and spans */
    struct baselines bs = {.name = baseline_name, .scorer = &sc, .text = btext, .n = bn, .bits = bbits, .max_spans = 4000,
                           .window = window};
    bs.b = calloc((size_t)window + 1, sizeof *bs.b);
    bs.have = calloc((size_t)window + 1, sizeof *bs.have);
    if (!bs.b || !bs.have)
        cli_die("out of memory");
    const struct bl_drift_baseline *full = baseline_at(&bs, window);
    if (cli_verbose) {
        fprintf(stderr, "bitlens drift: baseline %s, %lld spans of %d characters; score p50 %.2f p90 %.2f "
                "p99 %.2f\n", baseline_name, (long long)full->n_spans, window, full->score_q[0], full->score_q[1],
                full->score_q[2]);
        for (int f = 0; f < BL_DF_COUNT; f++)
            if (full->have[f])
                fprintf(stderr, "  %-14s median %10.4f  scale %10.4f\n", bl_drift_feature_name(f), full->median[f],
                        full->scale[f]);
    }
    struct spans ss = {0};
    for (int64_t i = 0; i < ds.n; i++)
        score_doc(&ss, i, &ds.d[i], &sc, &bs, window, stride, threshold, cusum_k, cusum_h);
    if (!ss.n && !cli_quiet)
        cli_warn("no text to score (%lld empty texts)", (long long)ds.n);

    if (csv_to)
        out_csv(csv_to, &ds, &ss);
    else if (csv)
        out_csv(stdout, &ds, &ss);
    else if (json)
        out_json(&ds, &ss, full, baseline_name, threshold, cusum_k, cusum_h);
    else
        out_table(&ds, &ss, full, baseline_name, threshold, isnan(cusum_h) ? threshold : cusum_h, all);
    int found = 0;
    for (int64_t i = 0; i < ss.n; i++)
        found |= ss.s[i].flagged;
    FILE *out = csv_to ? csv_to : stdout;
    if (fflush(out) != 0 || ferror(out))
        cli_die("%s: write error", csv_to ? "drift spans" : "standard output");

    free(ss.s);
    free(bs.b);
    free(bs.have);
    free(bbits);
    free(btext);
    free_docs(&ds);
    bl_model_free(model);
    bl_wordlist_free(words);
    bl_drift_ref_free(ref);
    return found ? EXIT_FOUND : 0;
}

int cmd_drift(int argc, char **argv)
{
    return drift(argc, argv, NULL);
}

int cli_drift_csv(int argc, char **argv, FILE *out)
{
    return drift(argc, argv, out);
}
