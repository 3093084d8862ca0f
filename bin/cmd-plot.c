/* bin/cmd-plot.c: `bitlens plot`: one chart of one or more traces, drawn by
 * gnuplot.
 *
 * The numbers come from the library: bl_report_compute() for the bits,
 * spectrum, lens and probe charts, and for the entropy chart, which needs
 * every position's value, the STAT records read here.  The drift chart
 * reads the spans of `bitlens drift --csv`: a CSV file it is given, or the
 * CSV that the drift command, run in-process (cli_drift_csv()), writes to a
 * temporary file for a trace or a text.  They are written as
 * CHART.dat (whitespace-separated columns under one '#' line naming them;
 * per-hook blocks separated by two blank lines, gnuplot's `index`), next to
 * a gnuplot script CHART.gp that reads the data by its bare name, so that
 * `cd DIR && gnuplot CHART.gp` draws the chart.
 *
 * Without --script the two files go to a temporary directory (mkdtemp,
 * removed at exit, also after a failure) where gnuplot runs as `gnuplot -d
 * CHART.gp` (-d: no ~/.gnuplot), with its messages in a log shown on a
 * failure (and under -v).  The image is written under a temporary name
 * beside the output and renamed into place once gnuplot has succeeded, so
 * a failure leaves no file behind.  With --script DIR the files are written
 * into DIR (under temporary names, renamed when complete) and gnuplot is
 * not run.
 *
 * Terminals: pngcairo for .png (libgd's png when this gnuplot lacks
 * pngcairo, said under -v), svg for .svg; noenhanced text, so that the
 * underscores of hook names print as they are. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens plot TRACE... --chart entropy|bits|spectrum|lens|probe [-o FILE]\n"
    "                    [--script DIR] [--size WxH] [--force] [-m MODEL] [--no-verify]\n"
    "                    [--hooks GLOB] [-k K] [--bootstrap B] [--seed S] [--threads N]\n"
    "                    [-q] [-v]\n"
    "       bitlens plot (TRACE | CSV | --text FILE) --chart drift [-o FILE]\n"
    "                    [--script DIR] [--size WxH] [--force] [-m MODEL] [--no-verify]\n"
    "                    [--baseline FILE] [-w N] [-t T] [--threads N] [-q] [-v]\n"
    "\n"
    "One chart of the traces, drawn by gnuplot: the data and a gnuplot script are\n"
    "written, then gnuplot runs the script.  Several traces of one model merge.\n"
    "\n"
    "      --chart NAME         entropy: histograms of entropy and surprisal per\n"
    "                           position; bits: bits per vector at each hook (log\n"
    "                           scale); spectrum: eigenvalue / total variance per\n"
    "                           hook (log scale); lens: the logit lens by layer;\n"
    "                           probe: bits about x_{t+k} by k; drift: the drift\n"
    "                           score of each span (bitlens drift) of a TRACE, of\n"
    "                           a CSV of 'bitlens drift --csv' ('-': standard\n"
    "                           input) or of --text FILE\n"
    "  -o, --output FILE        the image, FILE.png or FILE.svg (default: CHART.png\n"
    "                           in the current directory, e.g. bits.png)\n"
    "      --script DIR         write CHART.gp and CHART.dat into DIR (created if\n"
    "                           missing) and do not run gnuplot\n"
    "      --size WxH           image size in pixels (default 900x600)\n"
    "      --force              replace an output file that exists\n"
    "  -m, --model MODEL        the model for the probe (bits and probe charts;\n"
    "                           default: the one the trace names; its sha256 must\n"
    "                           match), and for the drift chart's model_bpc\n"
    "      --no-verify          do not check the model's sha256 against the trace\n"
    "      --hooks GLOB         recorded hooks to plot, comma-separated globs\n"
    "                           (default: all of fixed width)\n"
    "  -k, --ahead K            probe x_{t+1} .. x_{t+K} (default 4; bits chart: 0\n"
    "                           for no probe)\n"
    "      --bootstrap B        resamples of the prompts for 95% intervals (default\n"
    "                           200; 0: none)\n"
    "      --seed S             seed of the bootstrap, the samples and the probe\n"
    "                           (default 1)\n"
    "      --text FILE          drift chart: score the text of FILE ('-': standard\n"
    "                           input)\n"
    "      --baseline FILE      drift chart: the baseline, a trace or a text file\n"
    "                           (default: reference English)\n"
    "  -w, --window N           drift chart: span length in characters (default 128)\n"
    "  -t, --threshold T        drift chart: the threshold drawn, and flagging above\n"
    "                           it (default 5.5)\n"
    "      --threads N          threads (default: OMP_NUM_THREADS, else all processors)\n"
    "  -q, --quiet              no progress, notes or summary on stderr\n"
    "  -v, --verbose            settings, the terminal, timings and gnuplot's\n"
    "                           messages on stderr\n"
    "  -h, --help               this text\n";

enum {
    OPT_CHART = 256, OPT_SCRIPT, OPT_SIZE, OPT_FORCE, OPT_NO_VERIFY, OPT_HOOKS, OPT_BOOTSTRAP, OPT_SEED, OPT_THREADS,
    OPT_TEXT, OPT_BASELINE
};

static const struct option longopts[] = {
    {"chart", required_argument, NULL, OPT_CHART},
    {"output", required_argument, NULL, 'o'},
    {"script", required_argument, NULL, OPT_SCRIPT},
    {"size", required_argument, NULL, OPT_SIZE},
    {"force", no_argument, NULL, OPT_FORCE},
    {"model", required_argument, NULL, 'm'},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"hooks", required_argument, NULL, OPT_HOOKS},
    {"ahead", required_argument, NULL, 'k'},
    {"bootstrap", required_argument, NULL, OPT_BOOTSTRAP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"text", required_argument, NULL, OPT_TEXT},
    {"baseline", required_argument, NULL, OPT_BASELINE},
    {"window", required_argument, NULL, 'w'},
    {"threshold", required_argument, NULL, 't'},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

enum chart { C_ENTROPY, C_BITS, C_SPECTRUM, C_LENS, C_PROBE, C_DRIFT, N_CHARTS };

static const char *const chart_names[N_CHARTS] = {"entropy", "bits", "spectrum", "lens", "probe", "drift"};

#define DEFAULT_WIDTH 900
#define DEFAULT_HEIGHT 600
#define HIST_BINS 80          /* about this many histogram bins (entropy) */
#define DRIFT_THRESHOLD 5.5   /* bitlens drift's default threshold */
#define DRIFT_TEXT_SERIES 12  /* plain texts: a series each, up to this many */

/* ------------------------------------------------------------ files */

/* An output file, written under a temporary name and renamed at the end. */
struct out {
    char *path;       /* DIR/NAME */
    char *tmp;        /* DIR/NAME.tmp.PID while it is being written */
    FILE *fp;
};

/* What the run has made, for the exit-time cleanup: a failure (cli_die)
 * leaves no file behind. */
static struct {
    struct out dat, gp;     /* CHART.dat, CHART.gp */
    char *tmpdir;           /* without --script: the mkdtemp directory */
    char *log;              /* tmpdir/gnuplot.log */
    char *img_tmp;          /* the image under its temporary name */
    const char *dir;        /* --script DIR */
    int made_dir;           /* DIR was created here */
} st;

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

static void cleanup(void)
{
    out_discard(&st.dat);
    out_discard(&st.gp);
    if (st.img_tmp)
        unlink(st.img_tmp);
    if (st.tmpdir) {
        if (st.dat.path)
            unlink(st.dat.path);
        if (st.gp.path)
            unlink(st.gp.path);
        if (st.log)
            unlink(st.log);
        rmdir(st.tmpdir);
    }
    if (st.made_dir)
        rmdir(st.dir);   /* only if empty */
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        cli_die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        cli_die("out of memory");
    return p;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *tmp_name(const char *path)
{
    size_t n = strlen(path) + 32;
    char *p = xmalloc(n);
    snprintf(p, n, "%s.tmp.%ld", path, (long)getpid());
    return p;
}

/* refuse an existing file unless --force */
static void check_absent(const char *path, int force)
{
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            cli_die("%s: is a directory", path);
        if (!force)
            cli_die("%s: exists (--force replaces it)", path);
    } else if (errno != ENOENT) {
        cli_die("%s: %s", path, strerror(errno));
    }
}

static void out_open(struct out *o, const char *dir, const char *name)
{
    o->path = path_join(dir, name);
    o->tmp = tmp_name(o->path);
    if (!(o->fp = fopen(o->tmp, "w")))
        cli_die("%s: cannot create: %s", o->tmp, strerror(errno));
}

static void out_commit(struct out *o)
{
    FILE *fp = o->fp;
    o->fp = NULL;
    if (ferror(fp) | fclose(fp))
        cli_die("%s: write failed: %s", o->tmp, strerror(errno));
    if (rename(o->tmp, o->path) != 0)
        cli_die("%s: cannot rename to '%s': %s", o->tmp, o->path, strerror(errno));
    free(o->tmp);
    o->tmp = NULL;
}

/* ------------------------------------------------------------ writing */

/* A number in a .dat file: the report's CSV precision; NaN for none. */
static void dat_num(FILE *fp, double v)
{
    if (isnan(v))
        fputs(" NaN", fp);
    else if (isinf(v))
        fputs(v > 0 ? " inf" : " -inf", fp);
    else
        fprintf(fp, " %.9g", v);
}

/* A name as one .dat word: blanks, controls, '#' and quotes (which would
 * split or end the line, or start a quoted column) become '_'.  Hook names
 * hold none (letters, digits, '.', '_'); a trace is input, so this is not
 * assumed. */
static void dat_word(FILE *fp, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        fputc(c <= ' ' || c == 0x7f || c == '#' || c == '"' || c == '\'' ? '_' : c, fp);
    }
}

/* 1 if s is plain ASCII */
static int ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* A gnuplot string constant: single-quoted, where nothing but a doubled
 * quote is special; control characters become '?'. */
static void gp_str(FILE *fp, const char *s)
{
    fputc('\'', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'')
            fputs("''", fp);
        else
            fputc(c < ' ' || c == 0x7f ? '?' : c, fp);
    }
    fputc('\'', fp);
}

/* A number for a legend: about 3 significant digits. */
static const char *legend_num(char *b, size_t n, double v)
{
    if (fabs(v) >= 100)
        snprintf(b, n, "%.0f", v);
    else
        snprintf(b, n, "%.3g", v);
    return b;
}

/* ------------------------------------------------------------ running gnuplot */

/* The first executable `name` in PATH (as execvp searches it), or NULL. */
/* Run prog argv in directory cwd (NULL: here) with its standard output
 * and error into log_fd (-1: /dev/null); its exit status, 128 + N for a
 * signal N, -1 if it could not be started. */
static int run_prog(const char *prog, char *const argv[], const char *cwd, int log_fd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = log_fd >= 0 ? log_fd : open("/dev/null", O_WRONLY);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
            dup2(in, STDIN_FILENO) < 0)
            _exit(126);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execv(prog, argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* 1 if this gnuplot has the pngcairo terminal */
static int has_pngcairo(const char *gnuplot)
{
    char *argv[] = {"gnuplot", "-d", "-e", "set terminal pngcairo", NULL};
    return run_prog(gnuplot, argv, NULL, -1) == 0;
}

/* Copy gnuplot's log to stderr, each line after "gnuplot: ". */
static void show_log(const char *log)
{
    FILE *fp = fopen(log, "r");
    if (!fp)
        return;
    char line[1024];
    int start = 1;
    while (fgets(line, sizeof line, fp)) {
        if (start)
            fputs("gnuplot: ", stderr);
        fputs(line, stderr);
        start = strchr(line, '\n') != NULL;
    }
    if (!start)
        fputc('\n', stderr);
    fclose(fp);
}

/* ------------------------------------------------------------ the plot */

struct plot {
    enum chart chart;
    const char *name;         /* chart_names[chart] */
    int width, height;
    int svg;                  /* else PNG */
    const char *terminal;     /* pngcairo, png or svg */
    const char *set_output;   /* the file the script writes */
    const char *model;        /* model name, for the title */
    char *traces;             /* the traces' names, for the title */
    int64_t n_prompts, n_positions;
    FILE *dat, *gp;
    int series;               /* plot clauses written so far */
};

/* The script's common head: terminal, output, title (and the line `sub`
 * under it), grid. */
static void gp_head_sub(struct plot *pl, const char *title, const char *what, const char *sub)
{
    FILE *fp = pl->gp;
    fprintf(fp, "# %s.gp: %s\n", pl->name, what);
    fprintf(fp, "# written by bitlens plot --chart %s (bitlens %s) from %s.dat, the data\n", pl->name,
            PACKAGE_VERSION, pl->name);
    fprintf(fp, "# file in this directory: cd to it and run 'gnuplot %s.gp'.\n\n", pl->name);
    if (pl->svg)
        fprintf(fp, "set terminal svg size %d,%d noenhanced font 'sans,10'\n", pl->width, pl->height);
    else if (strcmp(pl->terminal, "pngcairo") == 0)
        fprintf(fp, "set terminal pngcairo size %d,%d noenhanced font 'sans,10'\n", pl->width, pl->height);
    else
        fprintf(fp, "set terminal png size %d,%d noenhanced\n", pl->width, pl->height);
    /* utf8 only where a name needs it: under a C locale gnuplot warns that
     * it cannot convert its degree sign whenever the encoding is set */
    if (!ascii(title) || !ascii(sub) || !ascii(pl->set_output))
        fputs("set encoding utf8\n", fp);
    fputs("set output ", fp);
    gp_str(fp, pl->set_output);
    fputs("\nset title ", fp);
    gp_str(fp, title);
    fputs(".\"\\n\".", fp);
    gp_str(fp, sub);
    fputs("\nset grid\n", fp);
}

/* gp_head_sub() under a line naming the model and the traces */
static void gp_head(struct plot *pl, const char *title, const char *what)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "model %s; trace %s (%" PRId64 " prompt%s, %" PRId64 " positions)", pl->model,
             pl->traces, pl->n_prompts, pl->n_prompts == 1 ? "" : "s", pl->n_positions);
    gp_head_sub(pl, title, what, sub);
}

/* Start the next plot clause: "plot " or ", \\\n     " */
static void gp_clause(struct plot *pl)
{
    fputs(pl->series++ ? ", \\\n     " : "plot ", pl->gp);
}

/* ------------------------------------------------------------ entropy */

struct values {
    double *v;
    size_t n, cap;
};

static void values_add(struct values *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            cli_die("out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

/* Entropy and surprisal of every position of the traces, from their STAT
 * records; *log2v the bound, *mean the mean entropy (as bl_report has it:
 * over the positions whose entropy is finite). */
static void read_positions(bl_trace_reader **rd, int n, struct plot *pl, struct values *ent, struct values *sur,
                           double *log2v)
{
    bl_err err = {0};
    int64_t n_vocab = 0;
    for (int t = 0; t < n; t++) {
        struct bl_trace_meta meta;
        const char *name = bl_trace_reader_name(rd[t]);
        if (bl_trace_meta_read(rd[t], &meta, &err))
            cli_die("%s", err.msg);
        if (t == 0) {
            n_vocab = meta.n_vocab;
            pl->model = xstrdup(meta.model_name);
        } else if (meta.n_vocab != n_vocab) {
            cli_die("%s: a vocabulary of %" PRId64 " tokens, %s has %" PRId64 ": traces of one model merge", name,
                    meta.n_vocab, bl_trace_reader_name(rd[0]), n_vocab);
        }
        bl_trace_meta_release(&meta);
        struct bl_trace_chunk c;
        int rc;
        while ((rc = bl_trace_reader_next(rd[t], &c, &err)) == 1) {
            if (c.type == BL_CHUNK_PROMPT) {
                pl->n_prompts++;
            } else if (c.type == BL_CHUNK_STATS) {
                struct bl_rec_stats s;
                if (bl_rec_parse_stats(&c, &s, &err))
                    cli_die("%s: %s", name, err.msg);
                for (uint64_t i = 0; i < s.n; i++) {
                    struct bl_rec_stat_row w;
                    bl_rec_stat_row(&s, i, &w, NULL, NULL);
                    if (isfinite(w.entropy))
                        values_add(ent, w.entropy);
                    if (w.next >= 0 && isfinite(w.surprisal))
                        values_add(sur, w.surprisal);
                    pl->n_positions++;
                }
            }
        }
        if (rc < 0)
            cli_die("%s", err.msg);
        if (!bl_trace_reader_complete(rd[t]))
            cli_warn("%s: incomplete trace (no closing index): plotted as far as its last whole chunk", name);
    }
    *log2v = log2((double)n_vocab);
}

/* a bin width of 1, 2, 2.5 or 5 times a power of 10, at least `raw` */
static double nice_step(double raw)
{
    double p = pow(10, floor(log10(raw)));
    static const double m[] = {1, 2, 2.5, 5, 10};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i] * p >= raw * (1 - 1e-12))
            return m[i] * p;
    return 10 * p;
}

static void chart_entropy(struct plot *pl, bl_trace_reader **rd, int n)
{
    struct values ent = {0}, sur = {0};
    double log2v;
    read_positions(rd, n, pl, &ent, &sur, &log2v);
    if (ent.n == 0)
        cli_die("%s: no position with token statistics to plot", pl->traces);
    double top = log2v, sum = 0;
    for (size_t i = 0; i < ent.n; i++) {
        sum += ent.v[i];
        if (ent.v[i] > top)
            top = ent.v[i];
    }
    for (size_t i = 0; i < sur.n; i++)
        if (sur.v[i] > top)
            top = sur.v[i];
    double mean = sum / (double)ent.n;
    double step = nice_step(top > 0 ? top / HIST_BINS : 1);
    int64_t bins = (int64_t)ceil(top / step * (1 - 1e-12));
    if (bins < 1)
        bins = 1;
    if ((double)bins * step <= top)   /* the maximum falls in the last bin */
        bins++;
    int64_t *ce = calloc((size_t)bins, sizeof *ce), *cs = calloc((size_t)bins, sizeof *cs);
    if (!ce || !cs)
        cli_die("out of memory");
    for (int s = 0; s < 2; s++) {
        const struct values *v = s ? &sur : &ent;
        int64_t *c = s ? cs : ce;
        for (size_t i = 0; i < v->n; i++) {
            int64_t b = (int64_t)floor(v->v[i] / step);   /* rounding below 0: bin 0 */
            c[b < 0 ? 0 : b >= bins ? bins - 1 : b]++;
        }
    }

    FILE *fp = pl->dat;
    fputs("# bin_lo bin_hi entropy_share surprisal_share\n", fp);
    for (int64_t b = 0; b < bins; b++) {
        dat_num(fp, (double)b * step);
        dat_num(fp, (double)(b + 1) * step);
        dat_num(fp, (double)ce[b] / (double)ent.n);
        dat_num(fp, sur.n ? (double)cs[b] / (double)sur.n : NAN);
        fputc('\n', fp);
    }

    char b1[32], b2[32];
    fp = pl->gp;
    gp_head(pl, "Token channel: entropy and surprisal per position",
            "histograms of the entropy (T=1) and the surprisal of each position");
    fprintf(fp, "\n# %zu positions with an entropy, %zu with a surprisal (a next token); bins of %g bits\n", ent.n,
            sur.n, step);
    fprintf(fp, "log2V = %.9g       # log2|V|: the bound per pass, bits\n", log2v);
    fprintf(fp, "Hmean = %.9g       # the mean entropy, bits\n", mean);
    fputs("set xlabel 'bits per position'\n"
          "set ylabel 'share of positions'\n", fp);
    fprintf(fp, "set xrange [0:%.9g]\n", (double)bins * step);
    fputs("set yrange [0:*]\n"
          "set key top right\n"
          "set arrow 1 from log2V, graph 0 to log2V, graph 1 nohead lw 2 dt 2 lc 'black'\n"
          "set arrow 2 from Hmean, graph 0 to Hmean, graph 1 nohead lw 2 dt 3 lc 'dark-orange'\n", fp);
    gp_clause(pl);
    fprintf(fp, "'%s.dat' using (($1 + $2) / 2):3 with histeps lw 2 lc 'dark-red' title 'entropy at T=1'", pl->name);
    if (sur.n) {
        gp_clause(pl);
        fputs("'' using (($1 + $2) / 2):4 with histeps lw 2 lc 'royalblue' title 'surprisal of the next token'", fp);
    }
    gp_clause(pl);
    fprintf(fp, "NaN with lines lw 2 dt 2 lc 'black' title 'log2|V| = %s bits (bound per pass)'",
            legend_num(b1, sizeof b1, log2v));
    gp_clause(pl);
    fprintf(fp, "NaN with lines lw 2 dt 3 lc 'dark-orange' title 'mean entropy %s bits'",
            legend_num(b2, sizeof b2, mean));
    fputc('\n', fp);
    free(ce);
    free(cs);
    free(ent.v);
    free(sur.v);
}

/* ------------------------------------------------------------ bits */

/* hooks in layer order: embeddings, the blocks by layer (each in the
 * forward order of its hook kinds), then the final norm and the logits */
static const struct bl_report *sort_rep;

static int hook_rank(const struct bl_report_hook *h)
{
    return h->layer >= 0 ? 1 : h->kind == BL_HOOK_EMBED || h->kind == BL_HOOK_POS_EMBED ? 0 : 2;
}

static int by_layer(const void *a, const void *b)
{
    const struct bl_report_hook *x = &sort_rep->hooks[*(const int64_t *)a], *y = &sort_rep->hooks[*(const int64_t *)b];
    int rx = hook_rank(x), ry = hook_rank(y);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    return (i > j) - (i < j);
}

static int64_t *layer_order(const struct bl_report *r)
{
    int64_t *o = xmalloc((size_t)r->n_hooks * sizeof *o);
    for (int64_t i = 0; i < r->n_hooks; i++)
        o[i] = i;
    sort_rep = r;
    qsort(o, (size_t)r->n_hooks, sizeof *o, by_layer);
    return o;
}

/* gnuplot's x of a clause: column 1 (3), shifted by dx */
static const char *xcol_n(char *b, size_t n, int col, double dx)
{
    if (dx == 0)
        snprintf(b, n, "%d", col);
    else
        snprintf(b, n, "($%d%+.3g)", col, dx);
    return b;
}

static const char *xcol(char *b, size_t n, double dx)
{
    return xcol_n(b, n, 1, dx);
}

static const char *xcol3(char *b, size_t n, double dx)
{
    return xcol_n(b, n, 3, dx);
}

/* one series of the bits chart */
struct series {
    const char *title;
    int col, lo, hi;         /* columns of bits.dat (lo, hi 0: no interval) */
    double dx;               /* x offset, so that error bars do not cover each other */
    const char *style;       /* line colour and point type */
};

static void note_range(double v, double *mn, double *mx)
{
    if (v > 0 && isfinite(v)) {
        if (v < *mn)
            *mn = v;
        if (v > *mx)
            *mx = v;
    }
}

static void chart_bits(struct plot *pl, const struct bl_report *r)
{
    int64_t *ord = layer_order(r);
    int K = 0;
    for (int64_t i = 0; i < r->n_hooks; i++)
        if (r->hooks[i].k > K)
            K = r->hooks[i].k;

    FILE *fp = pl->dat;
    fputs("# x hook layer width raw_bits capacity_bits capacity_lo capacity_hi zlib_bits lens_bits lens_lo lens_hi",
          fp);
    for (int k = 1; k <= K; k++)
        fprintf(fp, " probe%d_bits probe%d_lo probe%d_hi", k, k, k);
    fputc('\n', fp);
    double mn = INFINITY, mx = 0;
    note_range(r->mean_entropy.value, &mn, &mx);
    note_range(r->log2_vocab, &mn, &mx);
    int have_lens = 0;
    int *have_probe = calloc((size_t)K + 1, sizeof *have_probe);
    if (!have_probe)
        cli_die("out of memory");
    for (int64_t j = 0; j < r->n_hooks; j++) {
        const struct bl_report_hook *h = &r->hooks[ord[j]];
        fprintf(fp, "%" PRId64 " ", j);
        dat_word(fp, h->name);
        fprintf(fp, " %d %" PRId64, h->layer, h->width);
        double zlib = h->compress_bits * (double)h->width;
        double v[] = {(double)h->width * 32, h->capacity.value, h->capacity.lo, h->capacity.hi, zlib,
                      h->lens_bits.value, h->lens_bits.lo, h->lens_bits.hi};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            dat_num(fp, v[i]);
        note_range(v[0], &mn, &mx);
        note_range(v[1], &mn, &mx);
        note_range(v[2], &mn, &mx);
        note_range(v[3], &mn, &mx);
        note_range(v[4], &mn, &mx);
        if (h->lens_bits.value > 0) {
            have_lens = 1;
            note_range(h->lens_bits.value, &mn, &mx);
            note_range(h->lens_bits.lo, &mn, &mx);
            note_range(h->lens_bits.hi, &mn, &mx);
        }
        for (int k = 0; k < K; k++) {
            const struct bl_estimate *e = k < h->k ? &h->probe_bits[k] : NULL;
            dat_num(fp, e ? e->value : NAN);
            dat_num(fp, e ? e->lo : NAN);
            dat_num(fp, e ? e->hi : NAN);
            if (e && e->value > 0) {
                have_probe[k] = 1;
                note_range(e->value, &mn, &mx);
                note_range(e->lo, &mn, &mx);
                note_range(e->hi, &mn, &mx);
            }
        }
        fputc('\n', fp);
    }
    /* decades around everything drawn; room above the highest */
    double ymin = pow(10, floor(log10(mn))), ymax = pow(10, ceil(log10(mx * 1.5)));

    char b1[32], b2[32], x[32];
    fp = pl->gp;
    gp_head(pl, "Bits per vector at each hook point",
            "bits per vector at each hook point, in layer order, on a log scale");
    fputs("\n# A log axis holds no value <= 0: such values (a lens or probe that decodes\n"
          "# less than the unigram, a hook without a lens) are left out of their\n"
          "# series (pos), and an interval reaching to 0 or below is drawn down to\n"
          "# the bottom of the axis (low).\n", fp);
    fprintf(fp, "ymin = %.9g\nymax = %.9g\n", ymin, ymax);
    fprintf(fp, "Hmean = %.9g       # mean token entropy, bits per pass\n", r->mean_entropy.value);
    fprintf(fp, "log2V = %.9g       # log2|V|: the bound per pass, bits\n", r->log2_vocab);
    fputs("pos(v) = v > 0 ? v : NaN\n"
          "low(v, lo) = lo == lo ? (lo > 0 ? lo : ymin) : v\n"
          "high(v, hi) = hi == hi ? hi : v\n"
          "set logscale y\n"
          "set yrange [ymin:ymax]\n"
          "set format y '%g'\n"
          "set ylabel 'bits per vector (log scale)'\n"
          "set xlabel 'hook point, in layer order'\n", fp);
    fprintf(fp, "set xrange [-0.5:%.1f]\n", (double)r->n_hooks - 0.5);
    /* labels slant down to the left of their ticks: room for the first */
    size_t first = strlen(r->hooks[ord[0]].name);
    fprintf(fp, "set xtics rotate by 30 right\nset lmargin %d\n", first > 12 ? (int)(0.8 * (double)first) : 10);
    fputs("set key outside right top samplen 2 width -6\n", fp);
    if (r->bootstrap)
        fprintf(fp, "# error bars: 95%% percentile bootstrap intervals, %d resamples of the prompts\n", r->bootstrap);

    const char *ci = r->bootstrap ? ", 95% CI" : "";
    char t_cap[64], t_lens[64];
    snprintf(t_cap, sizeof t_cap, "Gaussian capacity%s", ci);
    snprintf(t_lens, sizeof t_lens, "logit lens, x_{t+1}%s", ci);
    struct series s[] = {
        {"raw, d x 32", 5, 0, 0, 0, "lc 'gray40' pt 4"},
        {t_cap, 6, 7, 8, 0, "lc 'dark-red' pt 7"},
        {"zlib, quantized", 9, 0, 0, 0, "lc 'orange' pt 5"},
        {t_lens, 10, 11, 12, -0.08, "lc 'dark-green' pt 9"},
    };
    if (!have_lens)
        fputs("# the logit lens: no positive value (or no lens in the trace), left out\n", fp);
    for (int k = 0; k < K; k++)
        if (!have_probe[k])
            fprintf(fp, "# probe k=%d: no positive value, left out\n", k + 1);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        if (i == 3 && !have_lens)
            continue;
        gp_clause(pl);
        if (i == 0)
            fprintf(fp, "'%s.dat' using 1:(pos($%d)):xtic(2)", pl->name, s[i].col);
        else if (s[i].lo && r->bootstrap)
            fprintf(fp, "'' using %s:(pos($%d)):(low($%d, $%d)):(high($%d, $%d))", xcol(x, sizeof x, s[i].dx),
                    s[i].col, s[i].col, s[i].lo, s[i].col, s[i].hi);
        else
            fprintf(fp, "'' using %s:(pos($%d))", xcol(x, sizeof x, s[i].dx), s[i].col);
        fprintf(fp, " with %s lw 2 %s title ", s[i].lo && r->bootstrap ? "yerrorlines" : "linespoints", s[i].style);
        gp_str(fp, s[i].title);
    }
    static const char *const colors[] = {"royalblue", "dark-violet", "dark-cyan", "steelblue", "purple"};
    for (int k = 0; k < K; k++) {
        if (!have_probe[k])
            continue;
        int col = 13 + 3 * k;
        double dx = 0.25 * (k + 1) / (K + 1);
        gp_clause(pl);
        if (r->bootstrap)
            fprintf(fp, "'' using %s:(pos($%d)):(low($%d, $%d)):(high($%d, $%d)) with yerrorlines",
                    xcol(x, sizeof x, dx), col, col, col + 1, col, col + 2);
        else
            fprintf(fp, "'' using %s:(pos($%d)) with linespoints", xcol(x, sizeof x, dx), col);
        fprintf(fp, " lw 2 lc '%s' pt %d title 'probe, x_{t+%d}%s'", colors[k % 5], 6 + 2 * (k % 4), k + 1, ci);
    }
    if (r->mean_entropy.value > 0) {
        gp_clause(pl);
        fprintf(fp, "Hmean with lines lw 2 dt 3 lc 'dark-orange' title 'mean token entropy, %s'",
                legend_num(b1, sizeof b1, r->mean_entropy.value));
    }
    gp_clause(pl);
    fprintf(fp, "log2V with lines lw 2 dt 2 lc 'black' title 'log2|V| = %s, bound per pass'",
            legend_num(b2, sizeof b2, r->log2_vocab));
    fputc('\n', fp);
    free(have_probe);
    free(ord);
}

/* ------------------------------------------------------------ spectrum */

static void chart_spectrum(struct plot *pl, const struct bl_report *r)
{
    int64_t *ord = layer_order(r), dmax = 1;
    FILE *fp = pl->dat;
    fputs("# hook layer component eigenvalue fraction cumulative\n", fp);
    int64_t *block = xmalloc((size_t)r->n_hooks * sizeof *block);   /* gnuplot index of each hook, -1: none */
    int64_t n_blocks = 0;
    for (int64_t j = 0; j < r->n_hooks; j++) {
        const struct bl_report_hook *h = &r->hooks[ord[j]];
        block[j] = -1;
        if (!h->spec.eig || !(h->spec.total > 0))
            continue;
        if (n_blocks)
            fputs("\n\n", fp);
        block[j] = n_blocks++;
        double cum = 0;
        for (int64_t i = 0; i < h->spec.d; i++) {
            double f = h->spec.eig[i] / h->spec.total;
            cum += f;
            dat_word(fp, h->name);
            fprintf(fp, " %d %" PRId64, h->layer, i + 1);
            dat_num(fp, h->spec.eig[i]);
            dat_num(fp, f);
            dat_num(fp, cum);
            fputc('\n', fp);
        }
        if (h->spec.d > dmax)
            dmax = h->spec.d;
    }
    if (n_blocks == 0)
        cli_die("%s: no hook with a nonzero variance to plot", pl->traces);

    fp = pl->gp;
    gp_head(pl, "Covariance spectrum of each hook point",
            "eigenvalues of each hook's covariance over the total variance, log scale");
    fputs("\n# Eigenvalues clipped to 0 (rounding) have no place on a log axis and are left\n"
          "# out (pos).  PR in the legend: the participation ratio (sum l)^2 / sum l^2.\n"
          "pos(v) = v > 0 ? v : NaN\n"
          "set logscale y\n"
          "set format y '%g'\n"
          "set xlabel 'component, by decreasing eigenvalue'\n"
          "set ylabel 'eigenvalue / total variance (log scale)'\n", fp);
    fprintf(fp, "set xrange [%g:%" PRId64 "]\n", dmax > 1 ? 1.0 : 0.5, dmax > 1 ? dmax : 2);
    fprintf(fp, "set key %s\n", n_blocks > 12 ? "outside right top" : "top right");
    for (int64_t j = 0; j < r->n_hooks; j++)
        if (block[j] < 0)
            fprintf(fp, "# %s: no spectrum (no variance), left out\n", r->hooks[ord[j]].name);
    for (int64_t j = 0; j < r->n_hooks; j++) {
        const struct bl_report_hook *h = &r->hooks[ord[j]];
        if (block[j] < 0)
            continue;
        char t[512], b[32];
        snprintf(t, sizeof t, "%s (PR %s)", h->name, legend_num(b, sizeof b, h->participation.value));
        gp_clause(pl);
        if (pl->series == 1)
            fprintf(fp, "'%s.dat'", pl->name);
        else
            fputs("''", fp);
        fprintf(fp, " index %" PRId64 " using 3:(pos($5)) with lines lw 2 title ", block[j]);
        gp_str(fp, t);
    }
    fputc('\n', fp);
    free(block);
    free(ord);
}

/* ------------------------------------------------------------ lens */

static void chart_lens(struct plot *pl, const struct bl_report *r)
{
    if (!r->has_lens || r->n_layers < 1)
        cli_die("%s: holds no logit lens (recorded with --no-lens): nothing for the lens chart", pl->traces);
    FILE *fp = pl->dat;
    fputs("# layer mean_ce entropy_p05 entropy_median entropy_p95 kl_p05 kl_median kl_p95"
          " ce_p05 ce_median ce_p95 bits bits_lo bits_hi\n", fp);
    for (int64_t l = 0; l < r->n_layers; l++) {
        const struct bl_report_lens_layer *x = &r->lens[l];
        fprintf(fp, "%" PRId64, l);
        double v[] = {x->mean_ce, x->entropy.p05, x->entropy.median, x->entropy.p95, x->kl.p05, x->kl.median,
                      x->kl.p95, x->cross_entropy.p05, x->cross_entropy.median, x->cross_entropy.p95,
                      x->bits.value, x->bits.lo, x->bits.hi};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            dat_num(fp, v[i]);
        fputc('\n', fp);
    }

    char b[32];
    fp = pl->gp;
    gp_head(pl, "Logit lens by layer",
            "the logit lens of each block's resid_post, layer by layer, in bits");
    fputs("\n# Error bars: the 5% and 95% percentiles over the positions.  Hnext: the\n"
          "# unigram entropy of the next token, the cross-entropy at which the lens\n"
          "# decodes 0 bits.\n", fp);
    fprintf(fp, "Hnext = %.9g\n", r->h_unigram_next);
    fputs("set xlabel 'layer'\n"
          "set ylabel 'bits per position'\n", fp);
    fprintf(fp, "set xrange [-0.5:%.1f]\n", (double)r->n_layers - 0.5);
    fputs("set xtics 1\n"
          "set yrange [0:*]\n"
          "set key top right\n", fp);
    gp_clause(pl);
    fprintf(fp, "'%s.dat' using 1:2 with linespoints lw 2 lc 'black' pt 7 title 'mean cross-entropy of the next token'",
            pl->name);
    gp_clause(pl);
    fputs("'' using ($1-0.05):4:3:5 with yerrorlines lw 2 lc 'royalblue' pt 5 title 'entropy, median (5%-95%)'", fp);
    gp_clause(pl);
    fputs("'' using ($1+0.05):7:6:8 with yerrorlines lw 2 lc 'dark-red' pt 9 "
          "title 'KL to the model, median (5%-95%)'", fp);
    if (isfinite(r->h_unigram_next)) {
        gp_clause(pl);
        fprintf(fp, "Hnext with lines lw 2 dt 2 lc 'gray40' title 'unigram entropy of the next token, %s bits'",
                legend_num(b, sizeof b, r->h_unigram_next));
    }
    fputc('\n', fp);
}

/* ------------------------------------------------------------ probe */

static void chart_probe(struct plot *pl, const struct bl_report *r)
{
    int64_t *ord = layer_order(r);
    int K = 0;
    FILE *fp = pl->dat;
    fputs("# hook layer k bits lo hi ce_probe ce_unigram n_test\n", fp);
    int64_t n_blocks = 0;
    for (int64_t j = 0; j < r->n_hooks; j++) {
        const struct bl_report_hook *h = &r->hooks[ord[j]];
        if (h->k == 0)
            continue;
        if (n_blocks++)
            fputs("\n\n", fp);
        if (h->k > K)
            K = h->k;
        for (int k = 0; k < h->k; k++) {
            dat_word(fp, h->name);
            fprintf(fp, " %d %d", h->layer, k + 1);
            dat_num(fp, h->probe_bits[k].value);
            dat_num(fp, h->probe_bits[k].lo);
            dat_num(fp, h->probe_bits[k].hi);
            dat_num(fp, h->probe_ce[k]);
            dat_num(fp, h->probe_ce_unigram[k]);
            fprintf(fp, " %" PRId64 "\n", h->probe_n_test[k]);
        }
    }
    if (n_blocks == 0)
        cli_die("%s: no probe was fitted: nothing for the probe chart", pl->traces);

    fp = pl->gp;
    gp_head(pl, "Future-token probe: usable bits about x_{t+k}",
            "bits about x_{t+k} a probe decodes from each hook, by k");
    fputs("\n# bits = CE of the unigram - CE of the probe, on held-out prompts: below 0 the\n"
          "# probe decodes less than the unigram does.\n", fp);
    if (r->bootstrap)
        fprintf(fp, "# error bars: 95%% percentile bootstrap intervals, %d resamples of the held-out prompts\n",
                r->bootstrap);
    fputs("low(v, lo) = lo == lo ? lo : v\n"
          "high(v, hi) = hi == hi ? hi : v\n"
          "set xlabel 'k, tokens ahead'\n"
          "set ylabel 'bits about x_{t+k} per position'\n", fp);
    fprintf(fp, "set xrange [0.5:%.1f]\n", K + 0.5);
    fprintf(fp, "set xtics 1\nset xzeroaxis lt -1\nset key %s\n", n_blocks > 12 ? "outside right top" : "top right");
    int64_t b = 0;
    char x[32];
    for (int64_t j = 0; j < r->n_hooks; j++) {
        const struct bl_report_hook *h = &r->hooks[ord[j]];
        if (h->k == 0)
            continue;
        double dx = n_blocks > 1 ? 0.2 * ((double)b / (double)(n_blocks - 1) - 0.5) : 0;
        gp_clause(pl);
        if (pl->series == 1)
            fprintf(fp, "'%s.dat'", pl->name);
        else
            fputs("''", fp);
        if (r->bootstrap)
            fprintf(fp, " index %" PRId64 " using %s:4:(low($4, $5)):(high($4, $6)) with yerrorlines", b,
                    xcol3(x, sizeof x, dx));
        else
            fprintf(fp, " index %" PRId64 " using %s:4 with linespoints", b, xcol3(x, sizeof x, dx));
        fputs(" lw 2 title ", fp);
        gp_str(fp, h->name);
        b++;
    }
    fputc('\n', fp);
    free(ord);
}

/* ------------------------------------------------------------ drift */

/* The columns of `bitlens drift --csv` that the chart reads: the first ten
 * (the features, their z-scores and the span's text follow). */
static const char drift_header[] = "text,mode,k,span,char_start,char_end,score,cusum,flagged,alarm,";

/* A span, from a row of the CSV. */
struct drow {
    char *text, *mode;       /* the text's label and the mode, as written */
    int k;
    int64_t span, c0, c1;
    double score, cusum;
    int flagged, alarm;
    int series;              /* its series in the chart */
};

struct drows {
    struct drow *r;
    int64_t n, cap;
    char *source;            /* for the title: "trace t.blt", "text a.txt", "spans.csv" */
    const char *baseline;    /* for the title, when scored here: the baseline */
    double threshold;
    int64_t off_threshold;   /* rows flagged otherwise than at the threshold */
};

/* The field of a CSV line at *p ("..." with "" for a quote, or bare) as a
 * malloc'd string; *p moves past its comma, to NULL after the last field.
 * NULL when *p is already NULL or a quote is not closed. */
static char *csv_field(const char **p)
{
    const char *s = *p;
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = xmalloc(n + 1), *o = out;
    if (*s == '"') {
        for (s++;; s++) {
            if (!*s) {
                free(out);
                return NULL;
            }
            if (*s == '"') {
                if (s[1] != '"')
                    break;
                s++;
            }
            *o++ = *s;
        }
        s++;   /* the closing quote */
        if (*s && *s != ',') {
            free(out);
            return NULL;
        }
    } else {
        while (*s && *s != ',')
            *o++ = *s++;
    }
    *o = '\0';
    *p = *s == ',' ? s + 1 : NULL;
    return out;
}

/* A whole field as a number in [lo, hi]; 0 if it is not one. */
static int csv_num(const char *f, double lo, double hi, double *v)
{
    char *end;
    if (!f || !*f)
        return 0;
    errno = 0;
    *v = strtod(f, &end);
    return !errno && !*end && isfinite(*v) && *v >= lo && *v <= hi;
}

/* The rows of a drift CSV from fp, its header line already read. */
static void drift_read_csv(FILE *fp, const char *name, struct drows *d)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t ln = 1;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        ln++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len)
            continue;
        const char *p = line;
        char *f[10];
        int nf = 0;
        while (nf < 10 && (f[nf] = csv_field(&p)) != NULL)
            nf++;
        double v[8];
        int ok = nf == 10 && p && csv_num(f[2], 0, 1e6, &v[0]) && csv_num(f[3], 0, 1e15, &v[1]) &&
                 csv_num(f[4], 0, 1e15, &v[2]) && csv_num(f[5], 0, 1e15, &v[3]) && csv_num(f[6], 0, HUGE_VAL, &v[4]) &&
                 csv_num(f[7], 0, HUGE_VAL, &v[5]) && csv_num(f[8], 0, 1, &v[6]) && csv_num(f[9], 0, 1, &v[7]) &&
                 v[2] <= v[3];
        for (int i = 2; i < nf; i++)
            free(f[i]);
        if (!ok) {
            for (int i = 0; i < nf && i < 2; i++)
                free(f[i]);
            cli_die("%s: line %" PRId64 ": not a row of 'bitlens drift --csv' (text, mode, k, span, char_start, "
                    "char_end, score, cusum, flagged, alarm, ...)", name, ln);
        }
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 256;
            d->r = realloc(d->r, (size_t)d->cap * sizeof *d->r);
            if (!d->r)
                cli_die("out of memory");
        }
        d->r[d->n++] = (struct drow){
            .text = f[0], .mode = f[1], .k = (int)v[0], .span = (int64_t)v[1], .c0 = (int64_t)v[2],
            .c1 = (int64_t)v[3], .score = v[4], .cusum = v[5], .flagged = v[6] != 0, .alarm = v[7] != 0,
        };
    }
    if (ferror(fp))
        cli_die("%s: read error: %s", name, strerror(errno));
    free(line);
}

/* The first line of fp (without its end); NULL at the end of the file. */
static char *first_line(FILE *fp)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, fp);
    if (len < 0) {
        free(line);
        return NULL;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    return line;
}

static int is_drift_header(const char *line)
{
    return line && strncmp(line, drift_header, sizeof drift_header - 1) == 0;
}

/* The spans to plot: from the CSV `input` (standard input for "-"), or
 * computed by the drift command in-process for the trace `input` or the
 * text `text`, with the options given here. */
static void drift_spans(struct drows *d, const char *input, const char *text, const char *baseline, int window,
                        const char *model, int verify, int threads)
{
    if (input) {
        FILE *fp = strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
        const char *name = fp == stdin ? "standard input" : input;
        struct stat sb;
        if (!fp)
            cli_die("%s: %s", input, strerror(errno));
        if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode))
            cli_die("%s: is a directory", input);
        char *head = first_line(fp);
        if (is_drift_header(head)) {
            free(head);
            drift_read_csv(fp, name, d);
            if (fp != stdin)
                fclose(fp);
            d->source = xstrdup(fp == stdin ? "<stdin>" : input);
            return;
        }
        free(head);
        if (fp == stdin)
            cli_die("standard input: not the CSV of 'bitlens drift --csv' (for text on standard input, give "
                    "--text -)");
        fclose(fp);
    }
    /* bitlens drift, its CSV to a temporary file */
    char *argv[24], wbuf[32], tbuf[40], nbuf[32];
    int argc = 0;
    argv[argc++] = "drift";
    if (text) {
        argv[argc++] = "--text";
        argv[argc++] = (char *)text;
    } else {
        argv[argc++] = (char *)input;
    }
    if (baseline) {
        argv[argc++] = "--baseline";
        argv[argc++] = (char *)baseline;
    }
    if (window) {
        snprintf(wbuf, sizeof wbuf, "%d", window);
        argv[argc++] = "-w";
        argv[argc++] = wbuf;
    }
    snprintf(tbuf, sizeof tbuf, "%.17g", d->threshold);
    argv[argc++] = "-t";
    argv[argc++] = tbuf;
    if (model) {
        argv[argc++] = "-m";
        argv[argc++] = (char *)model;
    }
    if (!verify)
        argv[argc++] = "--no-verify";
    if (threads) {
        snprintf(nbuf, sizeof nbuf, "%d", threads);
        argv[argc++] = "--threads";
        argv[argc++] = nbuf;
    }
    if (cli_quiet)
        argv[argc++] = "-q";
    if (cli_verbose)
        argv[argc++] = "-v";
    argv[argc] = NULL;
    FILE *tmp = tmpfile();
    if (!tmp)
        cli_die("cannot create a temporary file: %s", strerror(errno));
    /* its messages are the drift command's */
    const char *cmd = cli_cmd;
    cli_cmd = "drift";
    int rc = cli_drift_csv(argc, argv, tmp);
    cli_cmd = cmd;
    if (cli_verbose)
        fprintf(stderr, "bitlens plot: bitlens drift exited %d (%s)\n", rc, rc ? "something flagged" : "nothing flagged");
    rewind(tmp);
    char *head = first_line(tmp);
    if (!is_drift_header(head))
        cli_die("bitlens drift wrote no CSV header");
    free(head);
    drift_read_csv(tmp, "drift spans", d);
    fclose(tmp);
    const char *what = text ? "text" : "trace";
    const char *shown = text && strcmp(text, "-") == 0 ? "<stdin>" : text ? text : input;
    size_t n = strlen(what) + strlen(shown) + 2;
    d->source = xmalloc(n);
    snprintf(d->source, n, "%s %s", what, shown);
    d->baseline = baseline ? baseline : "reference English";
}

static void drift_free(struct drows *d)
{
    for (int64_t i = 0; i < d->n; i++) {
        free(d->r[i].text);
        free(d->r[i].mode);
    }
    free(d->r);
    free(d->source);
    memset(d, 0, sizeof *d);
}

/* The score of each span: one series per mode (a trace: verify, fast k=2,
 * ...), or per text when every text is plain text (at most
 * DRIFT_TEXT_SERIES of them; more make one series); x is the span's number
 * along its series, the texts one after another, and the line runs on from
 * one text to the next. */
static void chart_drift(struct plot *pl, struct drows *d)
{
    if (d->n == 0)
        cli_die("%s: no span to plot (no text, or empty texts)", pl->traces);
    /* the series */
    int plain = 1;
    for (int64_t i = 0; i < d->n; i++)
        plain &= strcmp(d->r[i].mode, "text") == 0;
    int64_t n_texts = 0;
    for (int64_t i = 0; i < d->n; i++)
        if (i == 0 || strcmp(d->r[i].text, d->r[i - 1].text) != 0 || strcmp(d->r[i].mode, d->r[i - 1].mode) != 0)
            n_texts++;
    int by_text = plain && n_texts <= DRIFT_TEXT_SERIES;
    const char **names = xmalloc((size_t)d->n * sizeof *names);
    int n_series = 0;
    for (int64_t i = 0; i < d->n; i++) {
        const char *key = by_text ? d->r[i].text : d->r[i].mode;
        int s = 0;
        while (s < n_series && strcmp(names[s], key) != 0)
            s++;
        if (s == n_series)
            names[n_series++] = key;
        d->r[i].series = s;
    }

    /* the rows, a block per series */
    FILE *fp = pl->dat;
    fputs("# x series text mode k span char_start char_end score cusum flagged alarm\n", fp);
    int64_t xmax = 0, n_flagged = 0, n_alarms = 0;
    double ymax = d->threshold;
    int *flagged = calloc((size_t)n_series, sizeof *flagged), *alarms = calloc((size_t)n_series, sizeof *alarms);
    if (!flagged || !alarms)
        cli_die("out of memory");
    for (int s = 0; s < n_series; s++) {
        if (s)
            fputs("\n\n", fp);
        int64_t x = 0;
        for (int64_t i = 0; i < d->n; i++) {
            const struct drow *r = &d->r[i];
            if (r->series != s)
                continue;
            fprintf(fp, "%" PRId64 " ", x);
            dat_word(fp, names[s]);
            fputc(' ', fp);
            dat_word(fp, r->text);
            fputc(' ', fp);
            dat_word(fp, r->mode);
            fprintf(fp, " %d %" PRId64 " %" PRId64 " %" PRId64, r->k, r->span, r->c0, r->c1);
            dat_num(fp, r->score);
            dat_num(fp, r->cusum);
            fprintf(fp, " %d %d\n", r->flagged, r->alarm);
            if (x > xmax)
                xmax = x;
            x++;
            if (r->score > ymax)
                ymax = r->score;
            flagged[s] += r->flagged;
            alarms[s] += r->alarm;
            n_flagged += r->flagged;
            n_alarms += r->alarm;
            /* a span not flagged where the threshold says, or flagged below it without an alarm */
            double t = d->threshold;
            if ((!r->alarm && r->flagged && r->score < t * (1 - 1e-5)) || (!r->flagged && r->score > t * (1 + 1e-5)))
                d->off_threshold++;
        }
    }
    if (d->off_threshold)
        cli_warn("%s: %" PRId64 " span%s flagged otherwise than a threshold of %g says: give the threshold it was "
                 "scored with (-t T)", pl->traces, d->off_threshold, d->off_threshold == 1 ? " is" : "s are",
                 d->threshold);

    fp = pl->gp;
    char title[64], sub[1024], b1[32];
    snprintf(title, sizeof title, "English drift: the score of each span");
    int at = snprintf(sub, sizeof sub, "%s: %" PRId64 " text%s, %" PRId64 " span%s, %" PRId64 " flagged", d->source,
                      n_texts, n_texts == 1 ? "" : "s", d->n, d->n == 1 ? "" : "s", n_flagged);
    if (d->baseline && at > 0 && (size_t)at < sizeof sub)
        snprintf(sub + at, sizeof sub - (size_t)at, "; baseline %s", d->baseline);
    gp_head_sub(pl, title, "the drift score of each span (bitlens drift), a line per series", sub);
    fputs("\n# x: the spans of each series (a mode of a trace, or a text) in order, the\n"
          "# texts one after another; a block of drift.dat per series.  Filled points:\n"
          "# flagged spans (a score above the threshold, or a CUSUM alarm); open\n"
          "# circles: spans where the CUSUM of their text is above its decision level h\n"
          "# (sustained drift).\n", fp);
    fprintf(fp, "threshold = %.9g\n", d->threshold);
    fputs("set xlabel 'span, in order through the texts'\n"
          "set ylabel 'drift score (0: like the baseline)'\n", fp);
    fprintf(fp, "set xrange [-0.5:%.1f]\n", (double)xmax + 0.5);
    if (xmax < 20)
        fputs("set xtics 1\n", fp);
    fprintf(fp, "set yrange [0:%.9g]\n", ymax * 1.08);
    fprintf(fp, "set key %s\n", n_series > 6 ? "outside right top" : "top right");
    for (int s = 0; s < n_series; s++) {
        gp_clause(pl);
        if (pl->series == 1)
            fprintf(fp, "'%s.dat'", pl->name);
        else
            fputs("''", fp);
        fprintf(fp, " index %d using 1:9 with linespoints lw 2 pt 7 ps 0.4 lc %d title ", s, s + 1);
        gp_str(fp, names[s]);
        if (flagged[s]) {
            gp_clause(pl);
            fprintf(fp, "'' index %d using 1:($11 > 0 ? $9 : NaN) with points pt 7 ps 1.3 lc %d notitle", s, s + 1);
        }
        if (alarms[s]) {
            gp_clause(pl);
            fprintf(fp, "'' index %d using 1:($12 > 0 ? $9 : NaN) with points pt 6 ps 2.2 lw 1.5 lc 'black' notitle", s);
        }
    }
    gp_clause(pl);
    fprintf(fp, "threshold with lines lw 2 dt 2 lc 'black' title 'threshold %s'",
            legend_num(b1, sizeof b1, d->threshold));
    if (n_flagged) {
        gp_clause(pl);
        fputs("NaN with points pt 7 ps 1.3 lc 'gray40' title 'flagged span'", fp);
    }
    if (n_alarms) {
        gp_clause(pl);
        fputs("NaN with points pt 6 ps 2.2 lw 1.5 lc 'black' title 'CUSUM alarm'", fp);
    }
    fputc('\n', fp);
    free(names);
    free(flagged);
    free(alarms);
}

/* ------------------------------------------------------------ the command */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcasecmp(s + n - m, suffix) == 0;
}

static void parse_size(const char *s, int *w, int *h)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10), b = 0;
    int ok = !errno && end != s && (*end == 'x' || *end == 'X') && s[0] >= '0' && s[0] <= '9';
    if (ok) {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        ok = !errno && end != t && !*end && t[0] >= '0' && t[0] <= '9';
    }
    if (!ok || a < 16 || a > 16384 || b < 16 || b > 16384)
        cli_usage("--size '%s': give WIDTHxHEIGHT in pixels, each 16 to 16384 (e.g. 900x600)", s);
    *w = (int)a;
    *h = (int)b;
}

/* an absolute path for `path` (a relative one from the current directory) */
static char *absolute(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        cli_die("cannot find the current directory: %s", strerror(errno));
    char *p = path_join(cwd, path);
    free(cwd);
    return p;
}

/* `s` for a shell command line: as it is when it is plain, else quoted */
static void shell_word(FILE *fp, const char *s)
{
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-+=:,@%") == strlen(s)) {
        fputs(s, fp);
        return;
    }
    fputc('\'', fp);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", fp);
        else
            fputc(*s, fp);
    fputc('\'', fp);
}

/* the traces' names for the title: a few, then how many more */
static char *trace_label(bl_trace_reader **rd, int n)
{
    size_t len = 64;
    int shown = n < 3 ? n : 2;
    for (int i = 0; i < shown; i++)
        len += strlen(bl_trace_reader_name(rd[i])) + 2;
    char *s = xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < shown; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, bl_trace_reader_name(rd[i]));
    }
    if (shown < n)
        snprintf(s + strlen(s), 64, " and %d more", n - shown);
    return s;
}

int cmd_plot(int argc, char **argv)
{
    struct bl_report_params p = bl_report_default_params();
    const char *chart = NULL, *output = NULL, *script = NULL, *model = NULL;
    const char *text = NULL, *baseline = NULL;   /* the drift chart's */
    int verify = 1, force = 0, threads = 0, opt, window = 0, drift_opts = 0;
    double threshold = DRIFT_THRESHOLD;
    struct plot pl;
    struct drows drift;

    memset(&pl, 0, sizeof pl);
    pl.width = DEFAULT_WIDTH;
    pl.height = DEFAULT_HEIGHT;
    memset(&drift, 0, sizeof drift);
    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:m:k:w:t:qvh", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_CHART: chart = optarg; break;
        case 'o': output = optarg; break;
        case OPT_SCRIPT: script = optarg; break;
        case OPT_SIZE: parse_size(optarg, &pl.width, &pl.height); break;
        case OPT_FORCE: force = 1; break;
        case 'm': model = optarg; break;
        case OPT_NO_VERIFY: verify = 0; break;
        case OPT_HOOKS: p.hooks = optarg; break;
        case 'k': p.k = (int)cli_int("-k", optarg, 0, 64); break;
        case OPT_BOOTSTRAP: p.bootstrap = (int)cli_int("--bootstrap", optarg, 0, 100000); break;
        case OPT_SEED: p.seed = cli_u64("--seed", optarg); break;
        case OPT_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case OPT_TEXT: text = optarg; drift_opts = 1; break;
        case OPT_BASELINE: baseline = optarg; drift_opts = 1; break;
        case 'w': window = (int)cli_int("--window", optarg, 8, 1 << 20); drift_opts = 1; break;
        case 't': threshold = cli_float("--threshold", optarg, 0, 1e9); drift_opts = 1; break;
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (!chart)
        cli_usage("no chart: give --chart entropy, bits, spectrum, lens, probe or drift");
    for (pl.chart = 0; pl.chart < N_CHARTS && strcmp(chart, chart_names[pl.chart]) != 0; pl.chart++)
        ;
    if (pl.chart == N_CHARTS)
        cli_usage("--chart '%s': not one of entropy, bits, spectrum, lens, probe, drift", chart);
    pl.name = chart_names[pl.chart];
    if (pl.chart == C_DRIFT) {
        if (text && optind < argc)
            cli_usage("the drift chart: a TRACE, a CSV or --text FILE, not both");
        if (!text && optind >= argc)
            cli_usage("no input: give a TRACE, a CSV of 'bitlens drift --csv' ('-': standard input) or --text FILE");
        if (optind + 1 < argc)
            cli_usage("the drift chart takes one TRACE or CSV, not %d", argc - optind);
    } else if (drift_opts) {
        cli_usage("--text, --baseline, -w and -t are for the drift chart");
    } else if (optind >= argc) {
        cli_usage("no trace: give one or more TRACE files ('-' for standard input)");
    }
    int n_traces = pl.chart == C_DRIFT ? 0 : argc - optind, stdin_used = 0;
    if (n_traces > 4096)
        cli_usage("%d traces: at most 4096", n_traces);
    if (pl.chart == C_PROBE && p.k == 0)
        cli_usage("-k 0: the probe chart needs K of 1 or more");
    if (output && !*output)
        cli_usage("-o: an empty file name");
    if (script && !*script)
        cli_usage("--script: an empty directory name");
    char dflt[32];
    snprintf(dflt, sizeof dflt, "%s.png", pl.name);
    if (!output)
        output = dflt;
    else if (ends_with(output, ".svg"))
        pl.svg = 1;
    else if (!ends_with(output, ".png"))
        cli_usage("-o '%s': give a file name ending in .png or .svg", output);

    /* gnuplot, and its terminal, before any work */
    char *gnuplot = cli_find_in_path("gnuplot");
    if (!gnuplot && !script)
        cli_die("gnuplot is not installed (not in PATH): install it (Debian: apt install gnuplot-nox), "
                "or write the script with --script DIR");
    pl.terminal = pl.svg ? "svg" : "pngcairo";
    if (!pl.svg && gnuplot && !has_pngcairo(gnuplot)) {
        pl.terminal = "png";
        if (cli_verbose)
            fprintf(stderr, "bitlens plot: %s has no pngcairo terminal: using png (libgd)\n", gnuplot);
    } else if (!pl.svg && !gnuplot && cli_verbose) {
        fputs("bitlens plot: gnuplot is not in PATH: the script asks for pngcairo\n", stderr);
    }

    /* where the files go; nothing is in the way */
    char *img = NULL, *img_abs = NULL;
    atexit(cleanup);
    if (script) {
        struct stat sb;
        st.dir = script;
        char name[64];
        snprintf(name, sizeof name, "%s.gp", pl.name);
        char *gp = path_join(script, name);
        snprintf(name, sizeof name, "%s.dat", pl.name);
        char *dat = path_join(script, name);
        if (stat(script, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                cli_die("%s: exists and is not a directory", script);
            check_absent(gp, force);
            check_absent(dat, force);
        } else if (errno != ENOENT) {
            cli_die("%s: %s", script, strerror(errno));
        }
        free(gp);
        free(dat);
        img_abs = output == dflt ? xstrdup(dflt) : absolute(output);
        pl.set_output = img_abs;
    } else {
        check_absent(output, force);
        img = tmp_name(output);
        FILE *fp = fopen(img, "wb");   /* can it be written? gnuplot writes it */
        if (!fp)
            cli_die("%s: cannot create: %s", output, strerror(errno));
        st.img_tmp = img;
        fclose(fp);
        img_abs = absolute(img);
        pl.set_output = img_abs;
    }

    p.n_threads = bl_set_threads(threads);
    p.probe.seed = p.seed;
    if (pl.chart != C_BITS && pl.chart != C_PROBE)
        p.k = 0;
    p.spectrum = pl.chart == C_BITS || pl.chart == C_SPECTRUM;
    p.lens = pl.chart == C_BITS || pl.chart == C_LENS;

    bl_err err = {0};
    bl_trace_reader **rd = calloc((size_t)(n_traces ? n_traces : 1), sizeof *rd);
    if (!rd)
        cli_die("out of memory");
    for (int i = 0; i < n_traces; i++) {
        const char *path = argv[optind + i];
        if (strcmp(path, "-") == 0 && stdin_used++)
            cli_usage("standard input ('-') can be read once");
        if (bl_trace_reader_open(&rd[i], path, &err))
            cli_die("%s", err.msg);
    }
    if (pl.chart == C_DRIFT)
        pl.traces = xstrdup(text ? (strcmp(text, "-") == 0 ? "<stdin>" : text)
                                 : strcmp(argv[optind], "-") == 0 ? "<stdin>" : argv[optind]);
    else
        pl.traces = trace_label(rd, n_traces);

    if (cli_verbose) {
        if (pl.chart == C_DRIFT)
            fprintf(stderr, "bitlens plot: chart drift of %s; threshold %g; ", pl.traces, threshold);
        else
            fprintf(stderr, "bitlens plot: chart %s; %d trace%s; ", pl.name, n_traces, n_traces == 1 ? "" : "s");
        if (pl.chart != C_ENTROPY && pl.chart != C_DRIFT)
            fprintf(stderr, "hooks '%s'; k %d; bootstrap %d; seed %llu; %d threads; ", p.hooks ? p.hooks : "*", p.k,
                    p.bootstrap, (unsigned long long)p.seed, p.n_threads);
        fprintf(stderr, "terminal %s, %dx%d\n", pl.terminal, pl.width, pl.height);
    }

    /* the numbers */
    struct cli_progress pr;
    cli_progress_init(&pr);
    struct bl_report r;
    bl_model *m = NULL;
    memset(&r, 0, sizeof r);
    int have_report = 0;
    if (pl.chart == C_DRIFT) {
        drift.threshold = threshold;
        drift_spans(&drift, text ? NULL : argv[optind], text, baseline, window, model, verify, threads);
    } else if (pl.chart != C_ENTROPY) {
        if (p.k > 0) {
            struct bl_trace_meta meta;
            if (bl_trace_meta_read(rd[0], &meta, &err))
                cli_die("%s", err.msg);
            m = cli_trace_model(model, NULL, &meta, argv[optind], verify, pl.chart == C_PROBE);
            bl_trace_meta_release(&meta);
            p.model = m;
        }
        p.progress = cli_progress;
        p.progress_user = &pr;
        int rc = bl_report_compute(rd, n_traces, &p, &r, &err);
        if (pr.tty)
            fputs("\r\033[K", stderr);
        if (rc)
            cli_die("%s", err.msg);
        have_report = 1;
        for (const char *s = r.notes; *s;) {
            const char *e = strchr(s, '\n');
            int len = e ? (int)(e - s) : (int)strlen(s);
            cli_warn("%.*s", len, s);
            s += len + (e != NULL);
        }
        if (!r.complete)
            cli_warn("%s: incomplete trace (no closing index): plotted as far as its last whole chunk", pl.traces);
        if (pl.chart != C_LENS && r.n_hooks == 0)
            cli_die("%s: holds no hook tensors of fixed width to plot (recorded with --hooks none?)", pl.traces);
        pl.model = xstrdup(r.model_name);
        pl.n_prompts = r.n_prompts;
        pl.n_positions = r.n_positions;
    }

    /* the data and the script */
    if (script) {
        struct stat sb;
        if (stat(script, &sb) != 0) {
            if (mkdir(script, 0777) != 0)
                cli_die("%s: cannot create the directory: %s", script, strerror(errno));
            st.made_dir = 1;
        }
    } else {
        const char *t = getenv("TMPDIR");
        char *tmpl = path_join(t && *t ? t : "/tmp", "bitlens-plot.XXXXXX");
        if (!mkdtemp(tmpl))
            cli_die("%s: cannot create a temporary directory: %s", tmpl, strerror(errno));
        st.tmpdir = tmpl;
        st.log = path_join(tmpl, "gnuplot.log");
        if (cli_verbose)
            fprintf(stderr, "bitlens plot: data and script in %s (removed at exit)\n", tmpl);
    }
    const char *dir = script ? script : st.tmpdir;
    char name[64];
    snprintf(name, sizeof name, "%s.dat", pl.name);
    out_open(&st.dat, dir, name);
    snprintf(name, sizeof name, "%s.gp", pl.name);
    out_open(&st.gp, dir, name);
    pl.dat = st.dat.fp;
    pl.gp = st.gp.fp;
    switch (pl.chart) {
    case C_ENTROPY: chart_entropy(&pl, rd, n_traces); break;
    case C_BITS: chart_bits(&pl, &r); break;
    case C_SPECTRUM: chart_spectrum(&pl, &r); break;
    case C_LENS: chart_lens(&pl, &r); break;
    case C_PROBE: chart_probe(&pl, &r); break;
    case C_DRIFT: chart_drift(&pl, &drift); break;
    case N_CHARTS: break;
    }
    out_commit(&st.dat);
    out_commit(&st.gp);

    if (script) {
        if (!cli_quiet) {
            fprintf(stderr, "bitlens plot: wrote %s and %s; to draw %s run:\n  cd ", st.gp.path, st.dat.path,
                    pl.set_output);
            shell_word(stderr, script);
            fprintf(stderr, " && gnuplot %s.gp\n", pl.name);
        }
    } else {
        int fd = open(st.log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd < 0)
            cli_die("%s: cannot create: %s", st.log, strerror(errno));
        snprintf(name, sizeof name, "%s.gp", pl.name);
        char *gargv[] = {"gnuplot", "-d", name, NULL};
        double t0 = cli_now();
        int rc = run_prog(gnuplot, gargv, st.tmpdir, fd);
        close(fd);
        if (rc != 0 || cli_verbose)
            show_log(st.log);
        if (rc < 0)
            cli_die("%s: cannot run: %s", gnuplot, strerror(errno));
        if (rc == 126 || rc == 127)
            cli_die("%s: could not be started in %s (exit status %d)", gnuplot, st.tmpdir, rc);
        if (rc)
            cli_die("gnuplot failed on the %s chart's script (exit status %d); 'bitlens plot --script DIR' writes "
                    "it out to look at", pl.name, rc);
        struct stat sb;
        if (stat(img, &sb) != 0 || sb.st_size == 0)
            cli_die("%s: gnuplot wrote nothing", output);
        if (!force && lstat(output, &sb) == 0)
            cli_die("%s: exists (--force replaces it)", output);
        if (rename(img, output) != 0)
            cli_die("%s: cannot rename to '%s': %s", img, output, strerror(errno));
        st.img_tmp = NULL;
        if (cli_verbose)
            fprintf(stderr, "bitlens plot: gnuplot took %.2f s\n", cli_now() - t0);
        if (!cli_quiet) {
            fprintf(stderr, "bitlens plot: %s: the %s chart of %s (%s, %dx%d)\n", output, pl.name, pl.traces,
                    pl.terminal, pl.width, pl.height);
        }
    }
    if (cli_verbose)
        fprintf(stderr, "bitlens plot: done in %.2f s\n", cli_now() - pr.t0);

    if (have_report)
        bl_report_release(&r);
    drift_free(&drift);
    for (int i = 0; i < n_traces; i++)
        bl_trace_reader_free(rd[i]);
    free(rd);
    bl_model_free(m);
    free(gnuplot);
    free(img);
    free(img_abs);
    free(pl.traces);
    free((char *)pl.model);
    return 0;
}
