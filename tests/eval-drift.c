/* tests/eval-drift.c: the drift evaluation behind `make eval-drift`.
 *
 * Clean spans of English from several sources and registers (Brown
 * documents held out of the reference tables: news, learned, fiction; the
 * Debian licences: technical prose; TinyStories: stories; two Gutenberg
 * novels) are scored against corruptions of the same spans (shuffled words,
 * random tokens of a model's vocabulary, a letter cipher, base64, reversed
 * text, 10/30/50% garbage words) and against spans of other languages
 * (Debian fortunes and the French Debian FAQ).  Prints, per span length,
 * the AUROC of each family against the clean spans and the false-positive
 * rate of the clean spans at the default threshold, then checks the
 * acceptance figures.  Also the CUSUM: the share of streams of 8 spans
 * with an alarm, clean and corrupted.  TinyStories' known mojibake is put
 * back to UTF-8 punctuation first (it is damage in the data, not English).
 * 400 spans per source (--spans), seeds fixed: the same figures every run.
 * EVAL_DRIFT_SHOW=1 prints the clean spans past the threshold with the
 * features that moved; 2 also the corrupted spans scoring under 2.5.
 *
 * usage: eval-drift CORPUS_DIR TESTDATA_DIR [--reference FILE] [--dict FILE]
 *                   [-m MODEL -z TOKENIZER] [--spans N] [--threshold T] [--seed S]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include <bitlens/bitlens.h>

#include "drift-corrupt.h"
#include "testutil.h"

#define MAX_SRC 16

struct source {
    const char *name;
    char *text;
    size_t n;
};

static int load_source(struct source *s, const char *name, const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    s->name = name;
    s->text = read_file(path, &s->n);
    if (!s->text) {
        fprintf(stderr, "eval-drift: cannot read %s\n", path);
        return -1;
    }
    return 0;
}

/* Join a text's paragraphs (blank-line separated, as in TinyStories and the
 * Gutenberg books) into one line each. */
static void paragraphs_to_lines(struct source *s)
{
    char *t = s->text;
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        char c = t[i];
        if (c == '\r')
            continue;
        if (c == '\n') {
            size_t j = i + 1;
            while (j < s->n && (t[j] == '\r' || t[j] == ' ' || t[j] == '\t'))
                j++;
            if (j < s->n && t[j] == '\n') {
                t[o++] = '\n';
                while (j < s->n && (t[j] == '\n' || t[j] == '\r'))
                    j++;
                i = j - 1;
                continue;
            }
            c = ' ';
        }
        t[o++] = c;
    }
    t[o] = 0;
    s->n = o;
}

/* TinyStories holds UTF-8 punctuation decoded as Windows-1252 and encoded
 * again ("â€œ" for U+201C): put it back, so that its clean spans are clean. */
static void repair_mojibake(struct source *s)
{
    static const char *const from[] = {"\xc3\xa2\xe2\x82\xac\xc5\x93", "\xc3\xa2\xe2\x82\xac\xc2\x9d",
                                       "\xc3\xa2\xe2\x82\xac\xe2\x84\xa2", "\xc3\xa2\xe2\x82\xac\xcb\x9c",
                                       "\xc3\xa2\xe2\x82\xac\xe2\x80\x9d", "\xc3\xa2\xe2\x82\xac\xe2\x80\x9c",
                                       "\xc3\xa2\xe2\x82\xac\xc2\xa6", "\xc3\xa2\xe2\x82\xac"};
    static const char *const to[] = {"\xe2\x80\x9c", "\xe2\x80\x9d", "\xe2\x80\x99", "\xe2\x80\x98",
                                     "\xe2\x80\x94", "\xe2\x80\x93", "\xe2\x80\xa6", "\xe2\x80\x9d"};
    for (size_t k = 0; k < sizeof from / sizeof *from; k++) {
        size_t fl = strlen(from[k]), tl = strlen(to[k]), o = 0;
        for (size_t i = 0; i < s->n;) {
            if (i + fl <= s->n && memcmp(s->text + i, from[k], fl) == 0) {
                memcpy(s->text + o, to[k], tl);
                o += tl;
                i += fl;
            } else
                s->text[o++] = s->text[i++];
        }
        s->n = o;
        s->text[o] = 0;
    }
}

struct scorer {
    struct bl_drift_scorer sc;
    struct bl_drift_baseline base;
    bl_ctx *ctx;
};

/* CUSUM alarms over streams of `len` consecutive scores: the share of
 * streams with one. */
static double stream_alarms(const double *x, int64_t n, int len, double k, double h)
{
    int64_t streams = 0, alarms = 0;
    for (int64_t a = 0; a + len <= n; a += len) {
        struct bl_drift_cusum c;
        bl_drift_cusum_init(&c, k, h);
        bool any = false;
        for (int i = 0; i < len; i++)
            any |= bl_drift_cusum_add(&c, x[a + i]);
        streams++;
        alarms += any;
    }
    return streams ? (double)alarms / streams : NAN;
}

static int show;   /* EVAL_DRIFT_SHOW: print spans past the threshold */

static void show_span(const char *what, const char *span, double score, const double *z)
{
    printf("    [%s] %.2f \"%s\"\n       ", what, score, span);
    for (int f = 0; f < BL_DF_COUNT; f++)
        if (z[f] > 1.5)
            printf(" %s %.1f", bl_drift_feature_name(f), z[f]);
    printf("\n");
}

static double score_span_z(struct scorer *s, const char *span, double *z);

static double score_span(struct scorer *s, const char *span)
{
    double z[BL_DF_COUNT];
    return score_span_z(s, span, z);
}

static double score_span_z(struct scorer *s, const char *span, double *z)
{
    size_t n = strlen(span);
    float *bits = NULL;
    if (s->ctx) {
        bits = malloc((n ? n : 1) * sizeof *bits);
        bl_err err = {0};
        if (!bits || bl_drift_model_bits(s->ctx, span, n, bits, &err)) {
            fprintf(stderr, "eval-drift: %s\n", err.msg);
            exit(2);
        }
    }
    struct bl_drift_features f;
    if (bl_drift_features(&s->sc, span, n, bits, &f)) {
        fprintf(stderr, "eval-drift: out of memory\n");
        exit(2);
    }
    free(bits);
    return bl_drift_score(&s->base, &f, z);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: eval-drift CORPUS_DIR TESTDATA_DIR [--reference FILE] [--dict FILE] "
                        "[-m MODEL -z TOKENIZER] [--spans N] [--threshold T] [--seed S]\n");
        return 2;
    }
    const char *corpus = argv[1], *td = argv[2], *ref_path = NULL, *dict = "/usr/share/dict/words";
    const char *model_path = NULL, *tok_path = NULL;
    int n_spans = 400;
    double threshold = 5.5;
    unsigned long seed = 1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--reference") && i + 1 < argc)
            ref_path = argv[++i];
        else if (!strcmp(argv[i], "--dict") && i + 1 < argc)
            dict = argv[++i];
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            model_path = argv[++i];
        else if (!strcmp(argv[i], "-z") && i + 1 < argc)
            tok_path = argv[++i];
        else if (!strcmp(argv[i], "--spans") && i + 1 < argc)
            n_spans = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threshold") && i + 1 < argc)
            threshold = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "eval-drift: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    show = getenv("EVAL_DRIFT_SHOW") ? atoi(getenv("EVAL_DRIFT_SHOW")) : 0;
    bl_err err = {0};
    bl_drift_ref *ref;
    if (ref_path ? bl_drift_ref_load(&ref, ref_path, &err) : bl_drift_ref_builtin(&ref, &err)) {
        fprintf(stderr, "eval-drift: %s\n", err.msg);
        return 2;
    }
    bl_wordlist *words = NULL;
    if (bl_wordlist_load(&words, dict, &err)) {
        fprintf(stderr, "eval-drift: %s (install Debian's wamerican)\n", err.msg);
        return 2;
    }
    /* the vocabulary for random tokens: tok512 of stories260K */
    char tokpath[4096];
    snprintf(tokpath, sizeof tokpath, "%s/models/tok512.bin", td);
    bl_tokenizer *tok;
    if (bl_tokenizer_load_llama2c(&tok, tokpath, 512, &err)) {
        fprintf(stderr, "eval-drift: %s\n", err.msg);
        return 2;
    }
    int64_t nv = bl_tokenizer_n_vocab(tok);
    char **vocab = calloc((size_t)nv, sizeof *vocab);
    for (int64_t i = 0; i < nv; i++) {
        char buf[256];
        size_t len = bl_tokenizer_decode(tok, 1, (int32_t)i, buf, sizeof buf - 1);
        if (len >= sizeof buf)
            len = sizeof buf - 1;
        buf[len] = 0;
        vocab[i] = strdup(buf);
    }

    /* clean sources and other languages */
    struct source clean[MAX_SRC], other[MAX_SRC];
    int nc = 0, no = 0;
    char tdtext[4096];
    snprintf(tdtext, sizeof tdtext, "%s/text", td);
    if (load_source(&clean[nc++], "news", corpus, "heldout-news.txt") ||
        load_source(&clean[nc++], "learned", corpus, "heldout-learned.txt") ||
        load_source(&clean[nc++], "fiction", corpus, "heldout-fiction.txt") ||
        load_source(&clean[nc++], "technical", corpus, "heldout-technical.txt") ||
        load_source(&clean[nc++], "stories", tdtext, "tinystories_train_head.txt") ||
        load_source(&clean[nc++], "novel", tdtext, "pride_and_prejudice.txt") ||
        load_source(&clean[nc++], "children's novel", tdtext, "alice_in_wonderland.txt") ||
        load_source(&other[no++], "french", corpus, "other-fr.txt") ||
        load_source(&other[no++], "german", corpus, "other-de.txt") ||
        load_source(&other[no++], "spanish", corpus, "other-es.txt") ||
        load_source(&other[no++], "italian", corpus, "other-it.txt"))
        return 2;
    for (int i = 4; i < nc; i++)
        paragraphs_to_lines(&clean[i]);
    repair_mojibake(&clean[4]);

    bl_model *model = NULL;
    bl_ctx *ctx = NULL;
    if (model_path) {
        struct bl_model_params mp = bl_model_default_params();
        mp.tokenizer_path = tok_path;
        if (bl_model_load(&model, model_path, &mp, &err) || bl_ctx_alloc(&ctx, model, NULL, &err)) {
            fprintf(stderr, "eval-drift: %s\n", err.msg);
            return 2;
        }
    }

    static const int lengths[] = {32, 64, 128};
    static const struct {
        const char *name;
        int kind;
        double frac;
    } fam[] = {
        {"shuffled words", DC_SHUFFLE, 0}, {"random tokens", DC_TOKENS, 0}, {"letter cipher", DC_CIPHER, 0},
        {"base64", DC_BASE64, 0},          {"reversed", DC_REVERSE, 0},     {"garbage 10%", DC_GARBAGE, 0.1},
        {"garbage 30%", DC_GARBAGE, 0.3},  {"garbage 50%", DC_GARBAGE, 0.5},
    };
    const int nfam = (int)(sizeof fam / sizeof *fam);
    int failed = 0;
    printf("drift evaluation: reference %s; word list %s (%lld words); model %s\n", bl_drift_ref_source(ref), dict,
           (long long)bl_wordlist_size(words), model_path ? model_path : "none");
    printf("clean English: up to %d spans from each of", n_spans);
    for (int i = 0; i < nc; i++)
        printf(" %s", clean[i].name);
    printf("; default threshold %g\n", threshold);

    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        int L = lengths[li];
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(r, seed + (unsigned long)L);
        struct scorer s = {.sc = {.ref = ref, .words = words}, .ctx = ctx};
        size_t ncal;
        const char *cal = bl_drift_ref_calibration(ref, &ncal);
        float *cbits = NULL;
        if (ctx) {
            /* the model reads 64 KiB of the calibration text, as bitlens drift does */
            size_t m = ncal > 65536 ? 65536 : ncal;
            while (m > 0 && m < ncal && cal[m - 1] != '\n')
                m--;
            ncal = m;
            cbits = malloc(ncal * sizeof *cbits);
            if (bl_drift_model_bits(ctx, cal, ncal, cbits, &err)) {
                fprintf(stderr, "eval-drift: %s\n", err.msg);
                return 2;
            }
        }
        if (bl_drift_baseline_from_text(&s.base, &s.sc, cal, ncal, cbits, L, 4000, &err)) {
            fprintf(stderr, "eval-drift: %s\n", err.msg);
            return 2;
        }
        free(cbits);
        /* clean spans */
        char **spans[MAX_SRC];
        int64_t ns[MAX_SRC], total = 0;
        for (int i = 0; i < nc; i++) {
            ns[i] = dc_spans(clean[i].text, clean[i].n, L, n_spans, r, &spans[i]);
            total += ns[i];
        }
        double *neg = malloc((size_t)total * sizeof *neg), *pos = malloc((size_t)total * sizeof *pos);
        int64_t k = 0;
        printf("\nspans of %d characters: %lld clean\n", L, (long long)total);
        printf("  %-16s %8s %8s\n", "clean source", "spans", "FPR");
        int64_t fp_all = 0;
        for (int i = 0; i < nc; i++) {
            int64_t fp = 0;
            for (int64_t j = 0; j < ns[i]; j++) {
                double z[BL_DF_COUNT];
                neg[k] = score_span_z(&s, spans[i][j], z);
                fp += neg[k] > threshold;
                if (show && neg[k] > threshold)
                    show_span(clean[i].name, spans[i][j], neg[k], z);
                k++;
            }
            fp_all += fp;
            printf("  %-16s %8lld %7.2f%%\n", clean[i].name, (long long)ns[i], 100.0 * fp / (ns[i] ? ns[i] : 1));
        }
        double fpr = 100.0 * fp_all / (total ? total : 1);
        printf("  %-16s %8lld %7.2f%%%s\n", "all", (long long)total, fpr,
               L == 128 ? (fpr <= 1.0 ? "   ok (<= 1%)" : "   FAIL (> 1%)") : "");
        if (L == 128 && fpr > 1.0)
            failed++;
        printf("  CUSUM (k = baseline p90 %.2f, h = %g) over streams of 8 spans: clean %.2f%% alarmed\n",
               s.base.score_q[1], threshold, 100 * stream_alarms(neg, total, 8, s.base.score_q[1], threshold));
        printf("  %-16s %8s %8s %10s %8s\n", "corruption", "spans", "AUROC", "flagged", "streams");
        for (int fi = 0; fi < nfam; fi++) {
            struct dc_params p = {.vocab = (const char *const *)vocab, .n_vocab = nv, .garbage_frac = fam[fi].frac};
            int64_t m = 0, flagged = 0;
            for (int i = 0; i < nc; i++)
                for (int64_t j = 0; j < ns[i]; j++) {
                    char *c = dc_corrupt((dc_kind)fam[fi].kind, spans[i][j], &p, r);
                    if (!c)
                        continue;
                    double z[BL_DF_COUNT];
                    pos[m] = score_span_z(&s, c, z);
                    flagged += pos[m] > threshold;
                    if (show > 1 && fam[fi].kind == DC_SHUFFLE && pos[m] < 2.5)
                        show_span(fam[fi].name, c, pos[m], z);
                    m++;
                    free(c);
                }
            double auc = dc_auroc(pos, (int)m, neg, (int)total);
            double need = fam[fi].kind == DC_SHUFFLE ? (L == 128 ? 0.95 : 0) :
                          fam[fi].kind == DC_GARBAGE && fam[fi].frac < 0.3 ? 0 :
                          L == 128 ? 0.98 : L == 64 ? 0.95 : 0;
            const char *verdict = need == 0 ? "" : auc >= need ? "   ok" : "   FAIL";
            if (need > 0 && !(auc >= need))
                failed++;
            printf("  %-16s %8lld %8.4f %9.1f%% %7.1f%%%s", fam[fi].name, (long long)m, auc,
                   100.0 * flagged / (m ? m : 1), 100 * stream_alarms(pos, m, 8, s.base.score_q[1], threshold),
                   verdict);
            if (need > 0)
                printf(" (>= %.2f)", need);
            printf("\n");
        }
        for (int i = 0; i < no; i++) {
            char **os;
            int64_t m = dc_spans(other[i].text, other[i].n, L, n_spans, r, &os), flagged = 0;
            for (int64_t j = 0; j < m; j++) {
                double z[BL_DF_COUNT];
                pos[j] = score_span_z(&s, os[j], z);
                flagged += pos[j] > threshold;
                if (show > 1 && pos[j] < 2.5)
                    show_span(other[i].name, os[j], pos[j], z);
            }
            double auc = dc_auroc(pos, (int)m, neg, (int)total);
            double need = L == 128 ? 0.98 : L == 64 ? 0.95 : 0;
            if (need > 0 && !(auc >= need))
                failed++;
            printf("  %-16s %8lld %8.4f %9.1f%% %7.1f%%%s", other[i].name, (long long)m, auc,
                   100.0 * flagged / (m ? m : 1), 100 * stream_alarms(pos, m, 8, s.base.score_q[1], threshold),
                   need == 0 ? "" : auc >= need ? "   ok" : "   FAIL");
            if (need > 0)
                printf(" (>= %.2f)", need);
            printf("\n");
            dc_strv_free(os, m);
        }
        for (int i = 0; i < nc; i++)
            dc_strv_free(spans[i], ns[i]);
        free(neg);
        free(pos);
        gsl_rng_free(r);
    }
    printf("\n%s\n", failed ? "eval-drift: some figures miss the acceptance bar" : "eval-drift: every figure meets the bar");
    for (int i = 0; i < nc; i++)
        free(clean[i].text);
    for (int i = 0; i < no; i++)
        free(other[i].text);
    for (int64_t i = 0; i < nv; i++)
        free(vocab[i]);
    free(vocab);
    bl_tokenizer_free(tok);
    bl_ctx_free(ctx);
    bl_model_free(model);
    bl_wordlist_free(words);
    bl_drift_ref_free(ref);
    return failed ? 1 : 0;
}
