/* bin/cmd-report.c: `bitlens report`, `spectrum`, `lens` and `probe`: one
 * engine (bl_report_compute) and four views of it, each as a table, tidy
 * CSV (--csv) or JSON (--json) on standard output. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"

enum view { V_REPORT = 1, V_SPECTRUM = 2, V_LENS = 4, V_PROBE = 8, V_ALL = 15 };

static const char usage_report[] =
    "usage: bitlens report TRACE... [-m MODEL] [--no-verify] [--hooks GLOB] [--noise VAR]\n"
    "                      [-k K] [--no-probe] [--no-lens] [--bootstrap B] [--seed S]\n"
    "                      [--test-fraction F] [--max-rows N] [--epochs N] [--patience N]\n"
    "                      [--memory MIB] [--threads N] [--csv | --json] [-q] [-v]\n"
    "\n"
    "The bottleneck table: for each recorded hook point, what its residual stream\n"
    "holds (spectrum, Gaussian capacity, compressibility) and what of it is usable\n"
    "for the next tokens (logit lens, future-token probe), against the bits the\n"
    "tokens pass; then the token channel.  Several traces of one model merge.\n"
    "\n"
    "  -m, --model MODEL        the model for the probe (default: the one the trace\n"
    "                           names; its sha256 must match)\n"
    "      --no-verify          do not check the model's sha256 against the trace\n"
    "      --hooks GLOB         recorded hooks to report, comma-separated globs\n"
    "                           (default: all of fixed width)\n"
    "      --noise VAR          noise floor variance for the capacity and the\n"
    "                           quantizer (default: the storage dtype's rounding\n"
    "                           noise at each stream's stored values)\n"
    "  -k, --ahead K            probe x_{t+1} .. x_{t+K} (default 4)\n"
    "      --no-probe           no probe (same as -k 0)\n"
    "      --no-lens            leave out the logit lens\n"
    "      --bootstrap B        resamples of the prompts for 95% intervals (default\n"
    "                           200; 0: none)\n"
    "      --seed S             seed of the bootstrap, the samples and the probe\n"
    "                           (default 1)\n"
    "      --test-fraction F    prompts held out to evaluate the probe (default 0.2)\n"
    "      --max-rows N         rows per hook kept for the probe and zlib (default 20000)\n"
    "      --epochs N           most probe training passes (default 16)\n"
    "      --patience N         stop after N passes without a better validation\n"
    "                           loss (default 2)\n"
    "      --memory MIB         memory for moments and rows (default 1024)\n"
    "      --threads N          threads (default: OMP_NUM_THREADS, else all processors)\n"
    "      --csv                tidy CSV: hook,layer,k,estimate,value,lo,hi\n"
    "      --json               one JSON object\n"
    "  -q, --quiet              no progress or notes on stderr\n"
    "  -v, --verbose            settings and timings on stderr\n"
    "  -h, --help               this text\n";

static const char usage_spectrum[] =
    "usage: bitlens spectrum TRACE... [--hooks GLOB] [--noise VAR] [-n N] [--bootstrap B]\n"
    "                        [--seed S] [--max-rows N] [--memory MIB] [--threads N]\n"
    "                        [--csv | --json] [-q] [-v]\n"
    "\n"
    "The covariance spectrum of each recorded hook: participation ratio, effective\n"
    "rank, components for 90% and 99% of the variance, Gaussian capacity at the\n"
    "noise floor, bits per element after quantization and zlib, the eigenvalues.\n"
    "\n"
    "      --hooks GLOB         recorded hooks, comma-separated globs (default: all\n"
    "                           of fixed width)\n"
    "      --noise VAR          noise floor variance (default: the storage dtype's\n"
    "                           rounding noise at each stream's stored values)\n"
    "  -n, --eigenvalues N      eigenvalues listed per hook in the table (default 8;\n"
    "                           CSV and JSON hold all)\n"
    "      --bootstrap B        resamples of the prompts for 95% intervals (default 200)\n"
    "      --seed S             seed (default 1)\n"
    "      --max-rows N         rows per hook kept for zlib (default 20000)\n"
    "      --memory MIB         memory for moments and rows (default 1024)\n"
    "      --threads N          threads\n"
    "      --csv                tidy CSV: hook,layer,i,eigenvalue,fraction,cumulative\n"
    "      --json               one JSON object\n"
    "  -q, --quiet              no progress or notes on stderr\n"
    "  -v, --verbose            settings and timings on stderr\n"
    "  -h, --help               this text\n";

static const char usage_lens[] =
    "usage: bitlens lens TRACE... [--bootstrap B] [--seed S] [--csv | --json] [-q] [-v]\n"
    "\n"
    "The logit lens recorded at each block's resid_post: percentile blocks of its\n"
    "entropy, cross-entropy of the next token and KL to the model's distribution,\n"
    "and the bits about the next token it recovers, H_unigram - CE.\n"
    "\n"
    "      --bootstrap B        resamples of the prompts for 95% intervals (default 200)\n"
    "      --seed S             seed (default 1)\n"
    "      --csv                tidy CSV: layer,quantity,statistic,value\n"
    "      --json               one JSON object\n"
    "  -q, --quiet              no progress or notes on stderr\n"
    "  -v, --verbose            settings and timings on stderr\n"
    "  -h, --help               this text\n";

static const char usage_probe[] =
    "usage: bitlens probe TRACE... [-m MODEL] [--no-verify] [-k K] [--hooks GLOB]\n"
    "                     [--bootstrap B] [--seed S] [--test-fraction F] [--max-rows N]\n"
    "                     [--epochs N] [--patience N] [--memory MIB] [--threads N]\n"
    "                     [--csv | --json] [-q] [-v]\n"
    "\n"
    "Usable bits about future tokens: for each hook and k = 1..K, a probe (an\n"
    "affine map into the model's final norm and unembedding) trained on r_t to\n"
    "predict x_{t+k}, evaluated on held-out prompts: H_unigram - CE_probe.\n"
    "\n"
    "  -m, --model MODEL        the model (default: the one the trace names; its\n"
    "                           sha256 must match)\n"
    "      --no-verify          do not check the model's sha256 against the trace\n"
    "  -k, --ahead K            probe x_{t+1} .. x_{t+K} (default 4)\n"
    "      --hooks GLOB         recorded hooks, comma-separated globs (default: all\n"
    "                           of fixed width)\n"
    "      --bootstrap B        resamples of the held-out prompts (default 200)\n"
    "      --seed S             seed of the split, the samples and the training\n"
    "                           (default 1)\n"
    "      --test-fraction F    prompts held out (default 0.2)\n"
    "      --max-rows N         rows per hook kept (default 20000)\n"
    "      --epochs N           most training passes (default 16)\n"
    "      --patience N         stop after N passes without a better validation\n"
    "                           loss (default 2)\n"
    "      --memory MIB         memory for the rows (default 1024)\n"
    "      --threads N          threads\n"
    "      --csv                tidy CSV: hook,layer,k,estimate,value,lo,hi\n"
    "      --json               one JSON object\n"
    "  -q, --quiet              no progress or notes on stderr\n"
    "  -v, --verbose            settings and timings on stderr\n"
    "  -h, --help               this text\n";

enum {
    OPT_NO_VERIFY = 256, OPT_HOOKS, OPT_NOISE, OPT_NO_PROBE, OPT_NO_LENS, OPT_BOOTSTRAP, OPT_SEED,
    OPT_TEST_FRACTION, OPT_MAX_ROWS, OPT_EPOCHS,
    OPT_PATIENCE, OPT_MEMORY, OPT_THREADS, OPT_CSV, OPT_JSON
};

/* Options and the views that take them. */
static const struct {
    struct option o;
    int views;
} options[] = {
    {{"model", required_argument, NULL, 'm'}, V_REPORT | V_PROBE},
    {{"no-verify", no_argument, NULL, OPT_NO_VERIFY}, V_REPORT | V_PROBE},
    {{"hooks", required_argument, NULL, OPT_HOOKS}, V_REPORT | V_SPECTRUM | V_PROBE},
    {{"noise", required_argument, NULL, OPT_NOISE}, V_REPORT | V_SPECTRUM},
    {{"ahead", required_argument, NULL, 'k'}, V_REPORT | V_PROBE},
    {{"no-probe", no_argument, NULL, OPT_NO_PROBE}, V_REPORT},
    {{"no-lens", no_argument, NULL, OPT_NO_LENS}, V_REPORT},
    {{"eigenvalues", required_argument, NULL, 'n'}, V_SPECTRUM},
    {{"bootstrap", required_argument, NULL, OPT_BOOTSTRAP}, V_ALL},
    {{"seed", required_argument, NULL, OPT_SEED}, V_ALL},
    {{"test-fraction", required_argument, NULL, OPT_TEST_FRACTION}, V_REPORT | V_PROBE},
    {{"max-rows", required_argument, NULL, OPT_MAX_ROWS}, V_REPORT | V_SPECTRUM | V_PROBE},
    {{"epochs", required_argument, NULL, OPT_EPOCHS}, V_REPORT | V_PROBE},
    {{"patience", required_argument, NULL, OPT_PATIENCE}, V_REPORT | V_PROBE},
    {{"memory", required_argument, NULL, OPT_MEMORY}, V_REPORT | V_SPECTRUM | V_PROBE},
    {{"threads", required_argument, NULL, OPT_THREADS}, V_REPORT | V_SPECTRUM | V_PROBE},
    {{"csv", no_argument, NULL, OPT_CSV}, V_ALL},
    {{"json", no_argument, NULL, OPT_JSON}, V_ALL},
    {{"quiet", no_argument, NULL, 'q'}, V_ALL},
    {{"verbose", no_argument, NULL, 'v'}, V_ALL},
    {{"help", no_argument, NULL, 'h'}, V_ALL},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* ------------------------------------------------------------ formatting */

/* A number in `w` columns with about 4 significant digits; "-" for NaN. */
static const char *num(char *b, size_t n, double v)
{
    if (v == 0)
        v = 0;   /* no "-0.000" */
    if (isnan(v))
        snprintf(b, n, "-");
    else if (v != 0 && (fabs(v) >= 1e6 || fabs(v) < 1e-3))
        snprintf(b, n, "%.3g", v);
    else if (fabs(v) >= 1000)
        snprintf(b, n, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(b, n, "%.1f", v);
    else if (fabs(v) >= 10)
        snprintf(b, n, "%.2f", v);
    else
        snprintf(b, n, "%.3f", v);
    return b;
}

static const char *interval_text(char *b, size_t n, const struct bl_estimate *e)
{
    char x[32], y[32];
    if (isnan(e->lo) || isnan(e->hi))
        snprintf(b, n, "-");
    else
        snprintf(b, n, "%s..%s", num(x, sizeof x, e->lo), num(y, sizeof y, e->hi));
    return b;
}

static void csv_num(FILE *fp, double v)
{
    if (isnan(v))
        return;
    if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", fp);
    else
        fprintf(fp, "%.9g", v);
}

/* hook,layer,k,estimate,value,lo,hi */
static void csv_row(FILE *fp, const char *hook, int layer, int k, const char *estimate, double v, double lo, double hi)
{
    /* hook names hold no commas or quotes (letters, digits, '.', '_') */
    fprintf(fp, "%s,", hook);
    if (layer >= 0)
        fprintf(fp, "%d", layer);
    fputc(',', fp);
    if (k > 0)
        fprintf(fp, "%d", k);
    fprintf(fp, ",%s,", estimate);
    csv_num(fp, v);
    fputc(',', fp);
    csv_num(fp, lo);
    fputc(',', fp);
    csv_num(fp, hi);
    fputc('\n', fp);
}

static void csv_est(FILE *fp, const char *hook, int layer, int k, const char *estimate, const struct bl_estimate *e)
{
    csv_row(fp, hook, layer, k, estimate, e->value, e->lo, e->hi);
}

static cJSON *jnum(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static void jadd(cJSON *o, const char *name, double v)
{
    cJSON_AddItemToObject(o, name, jnum(v));
}

static void jest(cJSON *o, const char *name, const struct bl_estimate *e)
{
    cJSON *x = cJSON_AddObjectToObject(o, name);
    jadd(x, "value", e->value);
    jadd(x, "lo", e->lo);
    jadd(x, "hi", e->hi);
}

static void jpct(cJSON *o, const char *name, const struct bl_percentiles *p)
{
    cJSON *x = cJSON_AddObjectToObject(o, name);
    jadd(x, "n", (double)p->n);
    jadd(x, "min", p->min);
    jadd(x, "p01", p->p01);
    jadd(x, "p05", p->p05);
    jadd(x, "median", p->median);
    jadd(x, "p95", p->p95);
    jadd(x, "p99", p->p99);
    jadd(x, "max", p->max);
    jadd(x, "mean", p->mean);
}

static void pct_header(FILE *fp, const char *title, int w)
{
    fprintf(fp, "%-*s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", w, title, "n", "min", "1%", "5%", "median", "95%",
            "99%", "max", "mean");
}

static void pct_row(FILE *fp, const char *label, int w, const struct bl_percentiles *p)
{
    char b[9][32];
    fprintf(fp, "%-*s %8" PRId64 " %8s %8s %8s %8s %8s %8s %8s %8s\n", w, label, p->n, num(b[0], 32, p->min),
            num(b[1], 32, p->p01), num(b[2], 32, p->p05), num(b[3], 32, p->median), num(b[4], 32, p->p95),
            num(b[5], 32, p->p99), num(b[6], 32, p->max), num(b[7], 32, p->mean));
}

static void csv_pct(FILE *fp, const char *hook, int layer, const char *what, const struct bl_percentiles *p)
{
    static const char *names[] = {"n", "min", "p01", "p05", "median", "p95", "p99", "max", "mean"};
    double v[] = {(double)p->n, p->min, p->p01, p->p05, p->median, p->p95, p->p99, p->max, p->mean};
    char e[96];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        snprintf(e, sizeof e, "%s.%s", what, names[i]);
        csv_row(fp, hook, layer, 0, e, v[i], NAN, NAN);
    }
}

static int hook_width(const struct bl_report *r)
{
    size_t w = 4;
    for (int64_t i = 0; i < r->n_hooks; i++)
        if (strlen(r->hooks[i].name) > w)
            w = strlen(r->hooks[i].name);
    return (int)w;
}

/* ------------------------------------------------------------ views */

static void print_preamble(FILE *fp, const struct bl_report *r)
{
    char b[3][32];
    fprintf(fp, "trace      %s: %" PRId64 " prompt%s, %" PRId64 " positions%s\n", r->trace_name, r->n_prompts,
            r->n_prompts == 1 ? "" : "s", r->n_positions, r->complete ? "" : " (cut short)");
    fprintf(fp, "model      %s (%s", r->model_name, r->model_path);
    if (r->model_sha256)
        fprintf(fp, ", sha256 %.16s...", r->model_sha256);
    fputs(")\n", fp);
    fprintf(fp, "tokens     bound log2|V| = %s bits per pass; mean entropy %s bits", num(b[0], 32, r->log2_vocab),
            num(b[1], 32, r->mean_entropy.value));
    if (!isnan(r->mean_entropy.lo))
        fprintf(fp, " (95%% %s)", interval_text(b[2], 32, &r->mean_entropy));
    fprintf(fp, "; H_unigram(next) %s bits\n", num(b[0], 32, r->h_unigram_next));
    if (r->bootstrap)
        fprintf(fp, "intervals  95%% percentile bootstrap, %d resamples over %" PRId64 " %s\n", r->bootstrap,
                r->n_units, r->n_units < r->n_prompts ? "groups of prompts" : "prompts");
}

static void print_tokens(FILE *fp, const struct bl_report *r)
{
    char t[48];
    snprintf(t, sizeof t, "entropy (T=%g)", r->temperature);
    fputc('\n', fp);
    pct_header(fp, "token channel, bits", 20);
    pct_row(fp, "entropy (T=1)", 20, &r->entropy);
    if (!isnan(r->temperature) && r->temperature != 1 && r->temperature > 0)
        pct_row(fp, t, 20, &r->entropy_t);
    pct_row(fp, "surprisal", 20, &r->surprisal);
}

/* the drafter channel, k = 1 .. K+1 tokens per pass */
static void print_drafter(FILE *fp, const struct bl_report *r)
{
    const struct bl_report_drafter *d = &r->drafter;
    char b[8][32], i1[40], i2[40], i3[40];
    if (!d->n_heads)
        return;
    fprintf(fp, "\ndrafter channel: %s, %d head%s on %s (%s), %" PRId64 " positions\n", d->kind, d->n_heads,
            d->n_heads == 1 ? "" : "s", d->hook, d->path ? d->path : "no file", d->n_positions);
    fprintf(fp, "%3s %-7s %8s %9s %16s %8s %7s %16s %9s %16s\n", "k", "token", "entropy", "bits/pass", "95%", "bound",
            "top-1", "95%", "surprisal", "95%");
    for (int k = 0; k <= d->n_heads; k++) {
        const struct bl_report_drafter_token *t = &d->tok[k];
        char who[16];
        if (k == 0)
            snprintf(who, sizeof who, "main");
        else
            snprintf(who, sizeof who, "head %d", k);
        fprintf(fp, "%3d %-7s %8s %9s %16s %8s %7s %16s %9s %16s\n", k + 1, who, num(b[0], 32, t->entropy.value),
                num(b[1], 32, t->bits_per_pass.value), interval_text(i1, sizeof i1, &t->bits_per_pass),
                num(b[2], 32, t->bound), num(b[3], 32, t->top1.value), interval_text(i2, sizeof i2, &t->top1),
                num(b[4], 32, t->surprisal.value), interval_text(i3, sizeof i3, &t->surprisal));
    }
    fprintf(fp, "accepted   %s tokens per pass", num(b[0], 32, d->accept_len.value));
    if (!isnan(d->accept_len.lo))
        fprintf(fp, " (95%% %s)", interval_text(i1, sizeof i1, &d->accept_len));
    fprintf(fp, " over the %" PRId64 " positions whose next %d tokens are known\n", d->accept_n, d->n_heads + 1);
    fputs("\nk = tokens per pass: the main model's x_{t+1} (k = 1), then head j's x_{t+1+j} (k = j+1);\n"
          "bits/pass = the mean entropies of tokens 1..k summed; bound = k log2|V|; top-1 and surprisal\n"
          "(bits) against the token actually at t+k; accepted = 1 + the heads matching it before the first\n"
          "that does not.\n",
          fp);
}

static void report_text(FILE *fp, const struct bl_report *r, int K)
{
    int w = hook_width(r);
    char b[16][32];
    print_preamble(fp, r);
    fputc('\n', fp);
    fprintf(fp, "%-*s %5s %7s %7s %7s %5s %5s %9s %9s %7s", w, "hook", "d", "raw", "PR", "erank", "c90", "c99",
            "capacity", "zlib", "lens");
    for (int k = 1; k <= K; k++) {
        char h[24];
        snprintf(h, sizeof h, "probe+%d", k);
        fprintf(fp, " %7s", h);
    }
    fprintf(fp, " %9s %8s\n", "cap/H", "probe/H");
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        char c90[24] = "-", c99[24] = "-";
        if (h->spec.eig) {
            snprintf(c90, sizeof c90, "%" PRId64, h->spec.c90);
            snprintf(c99, sizeof c99, "%" PRId64, h->spec.c99);
        }
        fprintf(fp, "%-*s %5" PRId64 " %7" PRId64 " %7s %7s %5s %5s %9s %9s %7s", w, h->name, h->width, h->width * 32,
                num(b[0], 32, h->participation.value), num(b[1], 32, h->effective_rank.value), c90, c99,
                num(b[2], 32, h->capacity.value), num(b[3], 32, h->compress_bits * (double)h->width),
                num(b[4], 32, h->lens_bits.value));
        for (int k = 0; k < K; k++)
            fprintf(fp, " %7s", num(b[5], 32, k < h->k ? h->probe_bits[k].value : NAN));
        fprintf(fp, " %9s %8s\n", num(b[6], 32, h->capacity_ratio.value),
                num(b[7], 32, h->k > 0 ? h->probe_ratio[0].value : NAN));
    }
    fputs("\nbits per vector: raw = d x 32 (f32); capacity = Gaussian capacity at the noise floor (an upper\n"
          "figure); zlib = after quantizing at that floor; lens, probe+k = bits about x_{t+k} decoded on\n"
          "held-out positions (lower figures); cap/H, probe/H = over the mean token entropy per pass.\n",
          fp);
    if (r->bootstrap) {
        fprintf(fp, "\n%-*s %13s %13s %13s", w, "95% intervals", "capacity", "cap/H", "lens");
        for (int k = 1; k <= K; k++) {
            char h[24];
            snprintf(h, sizeof h, "probe+%d", k);
            fprintf(fp, " %13s", h);
        }
        fputc('\n', fp);
        for (int64_t i = 0; i < r->n_hooks; i++) {
            const struct bl_report_hook *h = &r->hooks[i];
            fprintf(fp, "%-*s %13s %13s %13s", w, h->name, interval_text(b[0], 32, &h->capacity),
                    interval_text(b[1], 32, &h->capacity_ratio), interval_text(b[2], 32, &h->lens_bits));
            for (int k = 0; k < K; k++)
                fprintf(fp, " %13s", k < h->k ? interval_text(b[3], 32, &h->probe_bits[k]) : "-");
            fputc('\n', fp);
        }
    }
    print_tokens(fp, r);
    print_drafter(fp, r);
}

/* The CSV rows of a hook's probes, k = 1..K. */
static void probe_rows(FILE *fp, const struct bl_report_hook *h)
{
    for (int k = 0; k < h->k; k++) {
        const struct bl_report_probe_fit *f = &h->probe_fit[k];
        csv_est(fp, h->name, h->layer, k + 1, "probe_bits", &h->probe_bits[k]);
        csv_est(fp, h->name, h->layer, k + 1, "probe_ratio", &h->probe_ratio[k]);
        csv_row(fp, h->name, h->layer, k + 1, "probe_ce", h->probe_ce[k], NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "unigram_ce", h->probe_ce_unigram[k], NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "n_test", (double)h->probe_n_test[k], NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "n_train", (double)f->n_train, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "n_valid", (double)f->n_valid, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "train_ce", f->ce_train, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "valid_ce", f->ce_valid, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "epochs_run", (double)f->epochs_run, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "best_epoch", (double)f->best_epoch, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "logit_scale_start", f->logit_scale_start, NAN, NAN);
        csv_row(fp, h->name, h->layer, k + 1, "logit_scale", f->logit_scale, NAN, NAN);
    }
}

static void report_csv(FILE *fp, const struct bl_report *r)
{
    fputs("hook,layer,k,estimate,value,lo,hi\n", fp);
    csv_row(fp, "tokens", -1, 0, "prompts", (double)r->n_prompts, NAN, NAN);
    csv_row(fp, "tokens", -1, 0, "positions", (double)r->n_positions, NAN, NAN);
    csv_row(fp, "tokens", -1, 0, "log2_vocab", r->log2_vocab, NAN, NAN);
    csv_row(fp, "tokens", -1, 0, "h_unigram_next", r->h_unigram_next, NAN, NAN);
    csv_est(fp, "tokens", -1, 0, "mean_entropy", &r->mean_entropy);
    csv_pct(fp, "tokens", -1, "entropy", &r->entropy);
    csv_pct(fp, "tokens", -1, "entropy_t", &r->entropy_t);
    csv_pct(fp, "tokens", -1, "surprisal", &r->surprisal);
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        csv_row(fp, h->name, h->layer, 0, "width", (double)h->width, NAN, NAN);
        csv_row(fp, h->name, h->layer, 0, "rows", (double)h->rows, NAN, NAN);
        csv_row(fp, h->name, h->layer, 0, "raw_bits", (double)h->width * 32, NAN, NAN);
        csv_row(fp, h->name, h->layer, 0, "mean_square", h->mean_square, NAN, NAN);
        csv_row(fp, h->name, h->layer, 0, "noise_var", h->noise_var, NAN, NAN);
        csv_est(fp, h->name, h->layer, 0, "participation_ratio", &h->participation);
        csv_est(fp, h->name, h->layer, 0, "effective_rank", &h->effective_rank);
        csv_row(fp, h->name, h->layer, 0, "components_90", h->spec.eig ? (double)h->spec.c90 : NAN, NAN, NAN);
        csv_row(fp, h->name, h->layer, 0, "components_99", h->spec.eig ? (double)h->spec.c99 : NAN, NAN, NAN);
        csv_est(fp, h->name, h->layer, 0, "capacity_bits", &h->capacity);
        csv_est(fp, h->name, h->layer, 0, "capacity_ratio", &h->capacity_ratio);
        csv_row(fp, h->name, h->layer, 0, "zlib_bits_per_element", h->compress_bits, NAN, NAN);
        csv_est(fp, h->name, h->layer, 0, "lens_bits", &h->lens_bits);
        csv_est(fp, h->name, h->layer, 0, "lens_ratio", &h->lens_ratio);
        probe_rows(fp, h);
    }
    const struct bl_report_drafter *d = &r->drafter;
    if (d->n_heads) {
        csv_row(fp, "drafter", -1, 0, "drafter_heads", d->n_heads, NAN, NAN);
        csv_row(fp, "drafter", -1, 0, "drafter_positions", (double)d->n_positions, NAN, NAN);
        for (int k = 0; k <= d->n_heads; k++) {
            const struct bl_report_drafter_token *t = &d->tok[k];
            csv_est(fp, "drafter", -1, k + 1, "drafter_entropy", &t->entropy);
            csv_est(fp, "drafter", -1, k + 1, "drafter_bits_per_pass", &t->bits_per_pass);
            csv_row(fp, "drafter", -1, k + 1, "drafter_bound", t->bound, NAN, NAN);
            csv_est(fp, "drafter", -1, k + 1, "drafter_top1", &t->top1);
            csv_est(fp, "drafter", -1, k + 1, "drafter_surprisal", &t->surprisal);
            csv_row(fp, "drafter", -1, k + 1, "drafter_n", (double)t->n, NAN, NAN);
            csv_row(fp, "drafter", -1, k + 1, "drafter_n_known", (double)t->n_known, NAN, NAN);
        }
        csv_est(fp, "drafter", -1, 0, "drafter_accept_len", &d->accept_len);
        csv_row(fp, "drafter", -1, 0, "drafter_accept_n", (double)d->accept_n, NAN, NAN);
    }
}

static void json_drafter(cJSON *o, const struct bl_report *r)
{
    const struct bl_report_drafter *d = &r->drafter;
    if (!d->n_heads) {
        cJSON_AddNullToObject(o, "drafter");
        return;
    }
    cJSON *x = cJSON_AddObjectToObject(o, "drafter");
    if (d->path)
        cJSON_AddStringToObject(x, "path", d->path);
    else
        cJSON_AddNullToObject(x, "path");
    if (d->sha256)
        cJSON_AddStringToObject(x, "sha256", d->sha256);
    else
        cJSON_AddNullToObject(x, "sha256");
    cJSON_AddStringToObject(x, "kind", d->kind);
    cJSON_AddStringToObject(x, "hook", d->hook);
    jadd(x, "n_heads", d->n_heads);
    jadd(x, "positions", (double)d->n_positions);
    cJSON *a = cJSON_AddArrayToObject(x, "tokens");
    for (int k = 0; k <= d->n_heads; k++) {
        const struct bl_report_drafter_token *t = &d->tok[k];
        cJSON *e = cJSON_CreateObject();
        jadd(e, "k", k + 1);
        jadd(e, "head", k);
        jest(e, "entropy", &t->entropy);
        jest(e, "bits_per_pass", &t->bits_per_pass);
        jadd(e, "bound", t->bound);
        jest(e, "top1", &t->top1);
        jest(e, "surprisal", &t->surprisal);
        jadd(e, "n", (double)t->n);
        jadd(e, "n_known", (double)t->n_known);
        cJSON_AddItemToArray(a, e);
    }
    jest(x, "accept_len", &d->accept_len);
    jadd(x, "accept_n", (double)d->accept_n);
}

static cJSON *json_common(const struct bl_report *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "trace", r->trace_name);
    cJSON *m = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(m, "name", r->model_name);
    cJSON_AddStringToObject(m, "path", r->model_path);
    if (r->model_sha256)
        cJSON_AddStringToObject(m, "sha256", r->model_sha256);
    else
        cJSON_AddNullToObject(m, "sha256");
    jadd(o, "prompts", (double)r->n_prompts);
    jadd(o, "positions", (double)r->n_positions);
    cJSON_AddBoolToObject(o, "complete", r->complete);
    jadd(o, "bootstrap", r->bootstrap);
    jadd(o, "resampling_units", (double)r->n_units);
    cJSON *notes = cJSON_AddArrayToObject(o, "notes");
    for (const char *s = r->notes; *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char *line = strndup(s, n);
        if (line) {
            cJSON_AddItemToArray(notes, cJSON_CreateString(line));
            free(line);
        }
        s += n + (e != NULL);
    }
    cJSON *t = cJSON_AddObjectToObject(o, "tokens");
    jadd(t, "n_vocab", (double)r->n_vocab);
    jadd(t, "log2_vocab", r->log2_vocab);
    jadd(t, "h_unigram_next", r->h_unigram_next);
    jest(t, "mean_entropy", &r->mean_entropy);
    jadd(t, "temperature", r->temperature);
    jpct(t, "entropy", &r->entropy);
    jpct(t, "entropy_t", &r->entropy_t);
    jpct(t, "surprisal", &r->surprisal);
    return o;
}

static void json_hook(cJSON *a, const struct bl_report_hook *h, int eigenvalues)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(a, o);
    cJSON_AddStringToObject(o, "name", h->name);
    jadd(o, "layer", h->layer >= 0 ? h->layer : NAN);
    jadd(o, "width", (double)h->width);
    jadd(o, "rows", (double)h->rows);
    jadd(o, "kept", (double)h->kept);
    jadd(o, "raw_bits", (double)h->width * 32);
    jadd(o, "mean_square", h->mean_square);
    jadd(o, "noise_var", h->noise_var);
    jest(o, "participation_ratio", &h->participation);
    jest(o, "effective_rank", &h->effective_rank);
    jadd(o, "components_90", h->spec.eig ? (double)h->spec.c90 : NAN);
    jadd(o, "components_99", h->spec.eig ? (double)h->spec.c99 : NAN);
    jest(o, "capacity_bits", &h->capacity);
    jest(o, "capacity_ratio", &h->capacity_ratio);
    jadd(o, "zlib_bits_per_element", h->compress_bits);
    jest(o, "lens_bits", &h->lens_bits);
    jest(o, "lens_ratio", &h->lens_ratio);
    cJSON *p = cJSON_AddArrayToObject(o, "probe");
    for (int k = 0; k < h->k; k++) {
        cJSON *e = cJSON_CreateObject();
        jadd(e, "k", k + 1);
        jest(e, "bits", &h->probe_bits[k]);
        jest(e, "ratio", &h->probe_ratio[k]);
        jadd(e, "ce_probe", h->probe_ce[k]);
        jadd(e, "ce_unigram", h->probe_ce_unigram[k]);
        jadd(e, "n_test", (double)h->probe_n_test[k]);
        const struct bl_report_probe_fit *f = &h->probe_fit[k];
        jadd(e, "n_train", (double)f->n_train);
        jadd(e, "n_valid", (double)f->n_valid);
        jadd(e, "ce_train", f->ce_train);
        jadd(e, "ce_valid", f->ce_valid);
        jadd(e, "epochs_run", f->epochs_run);
        jadd(e, "best_epoch", f->best_epoch);
        jadd(e, "logit_scale_start", f->logit_scale_start);
        jadd(e, "logit_scale", f->logit_scale);
        cJSON_AddItemToArray(p, e);
    }
    if (eigenvalues && h->spec.eig) {
        cJSON *e = cJSON_AddArrayToObject(o, "eigenvalues");
        for (int64_t i = 0; i < h->spec.d; i++)
            cJSON_AddItemToArray(e, jnum(h->spec.eig[i]));
    }
}

static void json_lens(cJSON *o, const struct bl_report *r)
{
    cJSON *a = cJSON_AddArrayToObject(o, "lens");
    if (!r->has_lens)
        return;
    for (int64_t l = 0; l < r->n_layers; l++) {
        const struct bl_report_lens_layer *x = &r->lens[l];
        cJSON *e = cJSON_CreateObject();
        jadd(e, "layer", (double)l);
        jpct(e, "entropy", &x->entropy);
        jpct(e, "cross_entropy", &x->cross_entropy);
        jpct(e, "kl", &x->kl);
        jadd(e, "mean_ce", x->mean_ce);
        jest(e, "bits", &x->bits);
        jest(e, "ratio", &x->ratio);
        cJSON_AddItemToArray(a, e);
    }
}

static void json_print(FILE *fp, cJSON *o)
{
    char *s = o ? cJSON_Print(o) : NULL;
    if (!s)
        cli_die("out of memory");
    fputs(s, fp);
    fputc('\n', fp);
    free(s);
    cJSON_Delete(o);
}

static void spectrum_text(FILE *fp, const struct bl_report *r, int n_eig)
{
    int w = hook_width(r);
    char b[12][32];
    print_preamble(fp, r);
    fputc('\n', fp);
    fprintf(fp, "%-*s %5s %8s %10s %10s %7s %7s %5s %5s %9s %8s\n", w, "hook", "d", "rows", "mean sq", "noise", "PR",
            "erank", "c90", "c99", "capacity", "zlib/elt");
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        fprintf(fp, "%-*s %5" PRId64 " %8" PRId64 " %10s %10s %7s %7s %5" PRId64 " %5" PRId64 " %9s %8s\n", w, h->name,
                h->width, h->rows, num(b[0], 32, h->mean_square), num(b[1], 32, h->noise_var),
                num(b[2], 32, h->participation.value), num(b[3], 32, h->effective_rank.value),
                h->spec.eig ? h->spec.c90 : 0, h->spec.eig ? h->spec.c99 : 0, num(b[4], 32, h->capacity.value),
                num(b[5], 32, h->compress_bits));
    }
    if (r->bootstrap) {
        fprintf(fp, "\n%-*s %13s %13s %13s\n", w, "95% intervals", "PR", "erank", "capacity");
        for (int64_t i = 0; i < r->n_hooks; i++) {
            const struct bl_report_hook *h = &r->hooks[i];
            fprintf(fp, "%-*s %13s %13s %13s\n", w, h->name, interval_text(b[0], 32, &h->participation),
                    interval_text(b[1], 32, &h->effective_rank), interval_text(b[2], 32, &h->capacity));
        }
    }
    if (n_eig > 0) {
        fprintf(fp, "\n%-*s  leading eigenvalues (share of the variance)\n", w, "hook");
        for (int64_t i = 0; i < r->n_hooks; i++) {
            const struct bl_report_hook *h = &r->hooks[i];
            if (!h->spec.eig)
                continue;
            fprintf(fp, "%-*s ", w, h->name);
            for (int64_t j = 0; j < h->spec.d && j < n_eig; j++)
                fprintf(fp, " %s (%.1f%%)", num(b[0], 32, h->spec.eig[j]),
                        h->spec.total > 0 ? 100 * h->spec.eig[j] / h->spec.total : 0.0);
            fputc('\n', fp);
        }
    }
    fputs("\nPR = participation ratio (sum l)^2 / sum l^2; erank = exp(entropy of l / sum l); c90, c99 =\n"
          "components for 90% and 99% of the variance; capacity = 1/2 sum log2(1 + l / noise), bits per\n"
          "vector; zlib/elt = bits per element after quantizing at the noise floor and zlib.\n",
          fp);
}

static void spectrum_csv(FILE *fp, const struct bl_report *r)
{
    fputs("hook,layer,i,eigenvalue,fraction,cumulative\n", fp);
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        if (!h->spec.eig)
            continue;
        double cum = 0;
        for (int64_t j = 0; j < h->spec.d; j++) {
            double f = h->spec.total > 0 ? h->spec.eig[j] / h->spec.total : NAN;
            cum += f;
            fprintf(fp, "%s,", h->name);
            if (h->layer >= 0)
                fprintf(fp, "%d", h->layer);
            fprintf(fp, ",%" PRId64 ",%.9g,%.9g,%.9g\n", j, h->spec.eig[j], f, cum);
        }
    }
}

static void lens_text(FILE *fp, const struct bl_report *r)
{
    char b[4][32];
    print_preamble(fp, r);
    if (!r->has_lens) {
        fputs("\nthe trace holds no logit lens (recorded with --no-lens)\n", fp);
        return;
    }
    static const char *titles[] = {"lens entropy, bits", "lens cross-entropy, bits", "KL to the model, bits"};
    for (int q = 0; q < 3; q++) {
        fputc('\n', fp);
        pct_header(fp, titles[q], 24);
        for (int64_t l = 0; l < r->n_layers; l++) {
            const struct bl_report_lens_layer *x = &r->lens[l];
            char label[32];
            snprintf(label, sizeof label, "layer %" PRId64, l);
            pct_row(fp, label, 24, q == 0 ? &x->entropy : q == 1 ? &x->cross_entropy : &x->kl);
        }
    }
    fprintf(fp, "\n%-24s %10s %10s %16s %10s %16s\n", "bits about x_{t+1}", "mean CE", "bits", "95%", "bits/H", "95%");
    for (int64_t l = 0; l < r->n_layers; l++) {
        const struct bl_report_lens_layer *x = &r->lens[l];
        char label[32], i1[40], i2[40];
        snprintf(label, sizeof label, "layer %" PRId64, l);
        fprintf(fp, "%-24s %10s %10s %16s %10s %16s\n", label, num(b[0], 32, x->mean_ce), num(b[1], 32, x->bits.value),
                interval_text(i1, sizeof i1, &x->bits), num(b[2], 32, x->ratio.value),
                interval_text(i2, sizeof i2, &x->ratio));
    }
    fprintf(fp, "\nbits = H_unigram(next) - mean CE, H_unigram(next) = %s bits; H = mean token entropy.\n",
            num(b[0], 32, r->h_unigram_next));
}

static void lens_csv(FILE *fp, const struct bl_report *r)
{
    fputs("layer,quantity,statistic,value\n", fp);
    if (!r->has_lens)
        return;
    static const char *stats[] = {"n", "min", "p01", "p05", "median", "p95", "p99", "max", "mean"};
    for (int64_t l = 0; l < r->n_layers; l++) {
        const struct bl_report_lens_layer *x = &r->lens[l];
        const struct bl_percentiles *ps[3] = {&x->entropy, &x->cross_entropy, &x->kl};
        static const char *qs[3] = {"entropy", "cross_entropy", "kl"};
        for (int q = 0; q < 3; q++) {
            const struct bl_percentiles *p = ps[q];
            double v[] = {(double)p->n, p->min, p->p01, p->p05, p->median, p->p95, p->p99, p->max, p->mean};
            for (int s = 0; s < 9; s++) {
                fprintf(fp, "%" PRId64 ",%s,%s,", l, qs[q], stats[s]);
                csv_num(fp, v[s]);
                fputc('\n', fp);
            }
        }
        const struct bl_estimate *es[2] = {&x->bits, &x->ratio};
        static const char *en[2] = {"bits", "ratio"};
        for (int e = 0; e < 2; e++) {
            double v[3] = {es[e]->value, es[e]->lo, es[e]->hi};
            static const char *vn[3] = {"value", "lo", "hi"};
            for (int s = 0; s < 3; s++) {
                fprintf(fp, "%" PRId64 ",%s,%s,", l, en[e], vn[s]);
                csv_num(fp, v[s]);
                fputc('\n', fp);
            }
        }
    }
}

static void probe_text(FILE *fp, const struct bl_report *r)
{
    int w = hook_width(r);
    char b[6][32], i1[40], i2[40];
    print_preamble(fp, r);
    fprintf(fp, "\n%-*s %3s %7s %10s %10s %8s %16s %8s %16s\n", w, "hook", "k", "n test", "CE unigram", "CE probe",
            "bits", "95%", "bits/H", "95%");
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        for (int k = 0; k < h->k; k++)
            fprintf(fp, "%-*s %3d %7" PRId64 " %10s %10s %8s %16s %8s %16s\n", w, h->name, k + 1, h->probe_n_test[k],
                    num(b[0], 32, h->probe_ce_unigram[k]), num(b[1], 32, h->probe_ce[k]),
                    num(b[2], 32, h->probe_bits[k].value), interval_text(i1, sizeof i1, &h->probe_bits[k]),
                    num(b[3], 32, h->probe_ratio[k].value), interval_text(i2, sizeof i2, &h->probe_ratio[k]));
    }
    fputs("\nbits about x_{t+k} = CE unigram - CE probe on held-out prompts (cross-entropies in bits per\n"
          "position; the unigram fitted on the training prompts); H = mean token entropy per pass.\n",
          fp);
}

static void probe_csv(FILE *fp, const struct bl_report *r)
{
    fputs("hook,layer,k,estimate,value,lo,hi\n", fp);
    for (int64_t i = 0; i < r->n_hooks; i++) {
        const struct bl_report_hook *h = &r->hooks[i];
        probe_rows(fp, h);
    }
}

/* ------------------------------------------------------------ the command */

static int run(enum view view, int argc, char **argv)
{
    const char *usage = view == V_REPORT ? usage_report : view == V_SPECTRUM ? usage_spectrum
                        : view == V_LENS ? usage_lens : usage_probe;
    struct bl_report_params p = bl_report_default_params();
    const char *model = NULL;
    int verify = 1, csv = 0, json = 0, n_eig = 8, threads = 0, opt;
    struct option longopts[N_OPTIONS + 1];
    char shortopts[32] = ":qvh";
    size_t n = 0;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].views & view) {
            longopts[n++] = options[i].o;
            int c = options[i].o.val;
            if (c < 256 && !strchr(shortopts, c)) {
                size_t l = strlen(shortopts);
                shortopts[l] = (char)c;
                shortopts[l + 1] = options[i].o.has_arg ? ':' : '\0';
                shortopts[l + 2] = '\0';
            }
        }
    memset(&longopts[n], 0, sizeof longopts[n]);

    if (view == V_SPECTRUM || view == V_LENS)
        p.k = 0;
    if (view == V_LENS || view == V_PROBE)
        p.spectrum = 0;
    if (view == V_SPECTRUM || view == V_PROBE)
        p.lens = 0;

    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model = optarg; break;
        case OPT_NO_VERIFY: verify = 0; break;
        case OPT_HOOKS: p.hooks = optarg; break;
        case OPT_NOISE: p.noise_var = cli_float("--noise", optarg, 1e-300, 1e300); break;
        case 'k': p.k = (int)cli_int("-k", optarg, view == V_PROBE ? 1 : 0, 64); break;
        case OPT_NO_PROBE: p.k = 0; break;
        case OPT_NO_LENS: p.lens = 0; break;
        case 'n': n_eig = (int)cli_int("-n", optarg, 0, 1 << 20); break;
        case OPT_BOOTSTRAP: p.bootstrap = (int)cli_int("--bootstrap", optarg, 0, 100000); break;
        case OPT_SEED: p.seed = cli_u64("--seed", optarg); break;
        case OPT_TEST_FRACTION: p.test_fraction = cli_float("--test-fraction", optarg, 1e-6, 1 - 1e-6); break;
        case OPT_MAX_ROWS: p.max_rows = cli_int("--max-rows", optarg, 0, INT32_MAX); break;
        case OPT_EPOCHS: p.probe.epochs = (int)cli_int("--epochs", optarg, 1, 100000); break;
        case OPT_PATIENCE: p.probe.patience = (int)cli_int("--patience", optarg, 1, 100000); break;
        case OPT_MEMORY: p.memory = (size_t)cli_int("--memory", optarg, 1, 1 << 24) << 20; break;
        case OPT_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case OPT_CSV: csv = 1; break;
        case OPT_JSON: json = 1; break;
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind >= argc)
        cli_usage("no trace: give one or more TRACE files ('-' for standard input)");
    if (csv && json)
        cli_usage("--csv and --json: choose one");
    int n_traces = argc - optind, stdin_used = 0;
    if (n_traces > 4096)
        cli_usage("%d traces: at most 4096", n_traces);
    p.n_threads = bl_set_threads(threads);
    p.probe.seed = p.seed;

    bl_err err = {0};
    bl_trace_reader **rd = calloc((size_t)n_traces, sizeof *rd);
    if (!rd)
        cli_die("out of memory");
    for (int i = 0; i < n_traces; i++) {
        const char *path = argv[optind + i];
        if (strcmp(path, "-") == 0 && stdin_used++)
            cli_usage("standard input ('-') can be read once");
        if (bl_trace_reader_open(&rd[i], path, &err))
            cli_die("%s", err.msg);
    }

    bl_model *m = NULL;
    if (p.k > 0) {
        struct bl_trace_meta meta;
        if (bl_trace_meta_read(rd[0], &meta, &err))
            cli_die("%s", err.msg);
        m = cli_trace_model(model, NULL, &meta, argv[optind], verify, view == V_PROBE);
        bl_trace_meta_release(&meta);
        p.model = m;
    }

    struct cli_progress pr;
    cli_progress_init(&pr);
    p.progress = cli_progress;
    p.progress_user = &pr;
    if (cli_verbose)
        fprintf(stderr, "bitlens %s: %d trace%s; hooks '%s'; k %d; bootstrap %d; seed %llu; %d threads\n", cli_cmd,
                n_traces, n_traces == 1 ? "" : "s", p.hooks ? p.hooks : "*", p.k, p.bootstrap,
                (unsigned long long)p.seed, p.n_threads);
    struct bl_report r;
    int rc = bl_report_compute(rd, n_traces, &p, &r, &err);
    if (pr.tty)
        fputs("\r\033[K", stderr);
    if (rc)
        cli_die("%s", err.msg);
    if (cli_verbose)
        fprintf(stderr, "bitlens %s: computed in %.2f s\n", cli_cmd, cli_now() - pr.t0);
    if (!cli_quiet && r.notes[0]) {
        for (const char *s = r.notes; *s;) {
            const char *e = strchr(s, '\n');
            int len = e ? (int)(e - s) : (int)strlen(s);
            cli_warn("%.*s", len, s);
            s += len + (e != NULL);
        }
    }
    if (view != V_LENS && !json && r.n_hooks == 0 && !cli_quiet)
        cli_warn("%s: holds no hook tensors of fixed width to analyze (recorded with --hooks none?)", r.trace_name);

    FILE *fp = stdout;
    if (json) {
        cJSON *o = json_common(&r);
        if (!o)
            cli_die("out of memory");
        if (view != V_LENS) {
            cJSON *a = cJSON_AddArrayToObject(o, "hooks");
            for (int64_t i = 0; i < r.n_hooks; i++)
                json_hook(a, &r.hooks[i], view == V_SPECTRUM);
        }
        if (view == V_REPORT || view == V_LENS)
            json_lens(o, &r);
        if (view == V_REPORT)
            json_drafter(o, &r);
        json_print(fp, o);
    } else if (csv) {
        if (view == V_REPORT)
            report_csv(fp, &r);
        else if (view == V_SPECTRUM)
            spectrum_csv(fp, &r);
        else if (view == V_LENS)
            lens_csv(fp, &r);
        else
            probe_csv(fp, &r);
    } else {
        if (view == V_REPORT)
            report_text(fp, &r, p.k);
        else if (view == V_SPECTRUM)
            spectrum_text(fp, &r, n_eig);
        else if (view == V_LENS)
            lens_text(fp, &r);
        else
            probe_text(fp, &r);
    }
    bl_report_release(&r);
    for (int i = 0; i < n_traces; i++)
        bl_trace_reader_free(rd[i]);
    free(rd);
    bl_model_free(m);
    return 0;
}

int cmd_report(int argc, char **argv)
{
    return run(V_REPORT, argc, argv);
}

int cmd_spectrum(int argc, char **argv)
{
    return run(V_SPECTRUM, argc, argv);
}

int cmd_lens(int argc, char **argv)
{
    return run(V_LENS, argc, argv);
}

int cmd_probe(int argc, char **argv)
{
    return run(V_PROBE, argc, argv);
}
