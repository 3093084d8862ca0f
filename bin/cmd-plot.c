/* bin/cmd-plot.c: `bitlens plot`: one chart of one or more traces, drawn by
 * gnuplot.
 *
 * The numbers come from the library: bl_report_compute() for the bits,
 * spectrum, lens and probe charts, and for the entropy chart, which needs
 * every position's value, the STAT records read here.  They are written as
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
    "\n"
    "One chart of the traces, drawn by gnuplot: the data and a gnuplot script are\n"
    "written, then gnuplot runs the script.  Several traces of one model merge.\n"
    "\n"
    "      --chart NAME         entropy: histograms of entropy and surprisal per\n"
    "                           position; bits: bits per vector at each hook (log\n"
    "                           scale); spectrum: eigenvalue / total variance per\n"
    "                           hook (log scale); lens: the logit lens by layer;\n"
    "                           probe: bits about x_{t+k} by k\n"
    "  -o, --output FILE        the image, FILE.png or FILE.svg (default: CHART.png\n"
    "                           in the current directory, e.g. bits.png)\n"
    "      --script DIR         write CHART.gp and CHART.dat into DIR (created if\n"
    "                           missing) and do not run gnuplot\n"
    "      --size WxH           image size in pixels (default 900x600)\n"
    "      --force              replace an output file that exists\n"
    "  -m, --model MODEL        the model for the probe (bits and probe charts;\n"
    "                           default: the one the trace names; its sha256 must\n"
    "                           match)\n"
    "      --no-verify          do not check the model's sha256 against the trace\n"
    "      --hooks GLOB         recorded hooks to plot, comma-separated globs\n"
    "                           (default: all of fixed width)\n"
    "  -k, --ahead K            probe x_{t+1} .. x_{t+K} (default 4; bits chart: 0\n"
    "                           for no probe)\n"
    "      --bootstrap B        resamples of the prompts for 95% intervals (default\n"
    "                           200; 0: none)\n"
    "      --seed S             seed of the bootstrap, the samples and the probe\n"
    "                           (default 1)\n"
    "      --threads N          threads (default: OMP_NUM_THREADS, else all processors)\n"
    "  -q, --quiet              no progress, notes or summary on stderr\n"
    "  -v, --verbose            settings, the terminal, timings and gnuplot's\n"
    "                           messages on stderr\n"
    "  -h, --help               this text\n";

enum {
    OPT_CHART = 256, OPT_SCRIPT, OPT_SIZE, OPT_FORCE, OPT_NO_VERIFY, OPT_HOOKS, OPT_BOOTSTRAP, OPT_SEED, OPT_THREADS
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
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

enum chart { C_ENTROPY, C_BITS, C_SPECTRUM, C_LENS, C_PROBE, N_CHARTS };

static const char *const chart_names[N_CHARTS] = {"entropy", "bits", "spectrum", "lens", "probe"};

#define DEFAULT_WIDTH 900
#define DEFAULT_HEIGHT 600
#define HIST_BINS 80          /* about this many histogram bins (entropy) */

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

/* A name as one .dat word: blanks, controls and '#' (which would split or
 * end the line) become '_'.  Hook names hold none (letters, digits, '.',
 * '_'); a trace is input, so this is not assumed. */
static void dat_word(FILE *fp, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        fputc(c <= ' ' || c == 0x7f || c == '#' ? '_' : c, fp);
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
static char *find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *s = path;; s++) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char *dir = n ? strndup(s, n) : strdup(".");
        if (!dir)
            cli_die("out of memory");
        char *f = path_join(dir, name);
        free(dir);
        struct stat sb;
        if (stat(f, &sb) == 0 && S_ISREG(sb.st_mode) && access(f, X_OK) == 0)
            return f;
        free(f);
        if (!e)
            return NULL;
        s = e;
    }
}

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

/* The script's common head: terminal, output, title, grid. */
static void gp_head(struct plot *pl, const char *title, const char *what)
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
    if (!ascii(pl->model) || !ascii(pl->traces) || !ascii(pl->set_output))
        fputs("set encoding utf8\n", fp);
    fputs("set output ", fp);
    gp_str(fp, pl->set_output);
    char sub[1024];
    snprintf(sub, sizeof sub, "model %s; trace %s (%" PRId64 " prompt%s, %" PRId64 " positions)", pl->model,
             pl->traces, pl->n_prompts, pl->n_prompts == 1 ? "" : "s", pl->n_positions);
    fputs("\nset title ", fp);
    gp_str(fp, title);
    fputs(".\"\\n\".", fp);
    gp_str(fp, sub);
    fputs("\nset grid\n", fp);
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
    int verify = 1, force = 0, threads = 0, opt;
    struct plot pl;

    memset(&pl, 0, sizeof pl);
    pl.width = DEFAULT_WIDTH;
    pl.height = DEFAULT_HEIGHT;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:m:k:qvh", longopts, NULL)) != -1) {
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
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (!chart)
        cli_usage("no chart: give --chart entropy, bits, spectrum, lens or probe");
    for (pl.chart = 0; pl.chart < N_CHARTS && strcmp(chart, chart_names[pl.chart]) != 0; pl.chart++)
        ;
    if (pl.chart == N_CHARTS)
        cli_usage("--chart '%s': not one of entropy, bits, spectrum, lens, probe", chart);
    pl.name = chart_names[pl.chart];
    if (optind >= argc)
        cli_usage("no trace: give one or more TRACE files ('-' for standard input)");
    int n_traces = argc - optind, stdin_used = 0;
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
    char *gnuplot = find_in_path("gnuplot");
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
    pl.traces = trace_label(rd, n_traces);

    if (cli_verbose) {
        fprintf(stderr, "bitlens plot: chart %s; %d trace%s; ", pl.name, n_traces, n_traces == 1 ? "" : "s");
        if (pl.chart != C_ENTROPY)
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
    if (pl.chart != C_ENTROPY) {
        if (p.k > 0) {
            struct bl_trace_meta meta;
            if (bl_trace_meta_read(rd[0], &meta, &err))
                cli_die("%s", err.msg);
            m = cli_trace_model(model, &meta, argv[optind], verify, pl.chart == C_PROBE);
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
