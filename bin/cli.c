/* bin/cli.c: shared command-line helpers. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

const char *cli_cmd = NULL;
int cli_quiet = 0, cli_verbose = 0;

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
    fflush(stdout);
    if (cli_cmd)
        fprintf(stderr, "bitlens %s: %s", cli_cmd, kind);
    else
        fprintf(stderr, "bitlens: %s", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    if (cli_quiet)
        return;
    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
}

void cli_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    exit(EXIT_ERROR);
}

void cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "see 'bitlens %s -h'\n", cli_cmd ? cli_cmd : "help");
    exit(EXIT_ERROR);
}

void cli_bad_option(int opt, char **argv)
{
    extern int optind, optopt;
    const char *arg = argv[optind - 1];
    if (opt == ':')
        cli_usage("option '%s' needs an argument", arg);
    if (optopt && arg[0] == '-' && arg[1] != '-')
        cli_usage("unknown option '-%c'", optopt);
    cli_usage("unknown option '%s'", arg);
}

int64_t cli_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        cli_usage("%s '%s': not an integer", opt, s);
    if (v < lo || v > hi)
        cli_usage("%s %lld: out of range [%lld, %lld]", opt, v, (long long)lo, (long long)hi);
    return v;
}

uint64_t cli_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    if (*s == '-')
        cli_usage("%s '%s': not a non-negative integer", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        cli_usage("%s '%s': not a non-negative integer", opt, s);
    return v;
}

double cli_float(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        cli_usage("%s '%s': not a number", opt, s);
    if (v < lo || v > hi)
        cli_usage("%s %g: out of range [%g, %g]", opt, v, lo, hi);
    return v;
}

int cli_stderr_tty(void)
{
    return isatty(STDERR_FILENO);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int utf8_need(unsigned char c)
{
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;   /* continuation byte or invalid lead */
}

void cli_utf8_put(struct cli_utf8 *u, FILE *fp, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (u->n > 0) {
            if ((c & 0xc0) == 0x80) {
                u->buf[u->n++] = c;
                if (u->n == u->need) {
                    fwrite(u->buf, 1, (size_t)u->n, fp);
                    u->n = 0;
                }
                continue;
            }
            u->n = 0;   /* sequence cut short: drop it */
        }
        int need = utf8_need(c);
        if (need == 1) {
            /* as llama2.c's safe_printf: printable ASCII and whitespace */
            if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' || c == '\r' || c == '\v' ||
                c == '\f')
                fputc(c, fp);
        } else if (need > 1) {
            u->buf[0] = c;
            u->n = 1;
            u->need = need;
        }
    }
}

void cli_progress_init(struct cli_progress *pr)
{
    pr->t0 = cli_now();
    pr->last = 0;
    pr->tty = !cli_quiet && cli_stderr_tty();
    pr->stage = NULL;
}

int cli_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    struct cli_progress *pr = user;
    double now = cli_now();
    if (!pr->tty || (now - pr->last < 0.2 && stage == pr->stage))
        return 0;
    if (total > 0)
        fprintf(stderr, "\r\033[Kbitlens %s: %s %" PRId64 "/%" PRId64 " (%.0f s)", cli_cmd, stage, done, total,
                now - pr->t0);
    else
        fprintf(stderr, "\r\033[Kbitlens %s: %s, %.1f MB (%.0f s)", cli_cmd, stage, (double)done / 1e6, now - pr->t0);
    pr->last = now;
    pr->stage = stage;
    return 0;
}

/* path as written, else relative to the trace's directory (malloc'd) */
static char *beside_trace(const char *path, const char *trace)
{
    struct stat sb;
    const char *slash = strrchr(trace, '/');
    char *p = malloc(strlen(path) + strlen(trace) + 2);
    if (!p)
        cli_die("out of memory");
    strcpy(p, path);
    if (stat(p, &sb) != 0 && path[0] != '/' && strcmp(trace, "-") != 0 && slash) {
        size_t n = (size_t)(slash - trace) + 1;
        memcpy(p, trace, n);
        strcpy(p + n, path);
        if (stat(p, &sb) != 0)
            strcpy(p, path);
    }
    return p;
}

/* The llama2.c tokenizer a trace's model was read with: the second of the
 * header's model files, when the first is a .bin (NULL otherwise). */
static const char *recorded_tokenizer(const struct bl_trace_meta *meta)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive((const cJSON *)meta->json, "model");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    if (cJSON_GetArraySize(files) != 2)
        return NULL;
    const cJSON *p0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(files, 0), "path");
    const cJSON *p1 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(files, 1), "path");
    if (!cJSON_IsString(p0) || !cJSON_IsString(p1))
        return NULL;
    size_t n = strlen(p0->valuestring);
    return n > 4 && strcmp(p0->valuestring + n - 4, ".bin") == 0 ? p1->valuestring : NULL;
}

bl_model *cli_trace_model(const char *given, const char *given_tok, const struct bl_trace_meta *meta,
                          const char *trace, int verify, int required)
{
    struct stat sb;
    char *path = given ? strdup(given) : beside_trace(meta->model_path, trace);
    if (!path)
        cli_die("out of memory");
    /* messages name the path from a copy: cli_die exits without freeing */
    char shown[4096];
    snprintf(shown, sizeof shown, "%s", path);
    int there = given || stat(path, &sb) == 0;
    bl_err err = {0};
    bl_model *m = NULL;
    /* a llama2.c model with the tokenizer it was recorded with, if it is there */
    struct bl_model_params mp = bl_model_default_params();
    const char *tok = given_tok ? given_tok : given ? NULL : recorded_tokenizer(meta);
    char *tokpath = tok ? (given_tok ? strdup(given_tok) : beside_trace(tok, trace)) : NULL;
    if (tokpath && (given_tok || stat(tokpath, &sb) == 0))
        mp.tokenizer_path = tokpath;
    int rc = there ? bl_model_load(&m, path, &mp, &err) : 0;
    free(path);
    free(tokpath);
    if (!there) {
        if (required)
            cli_die("%s: the model it was recorded from, %s, is not there: give it with -m MODEL", trace, shown);
        if (!cli_quiet)
            cli_warn("%s: the model it was recorded from, %s, is not there: no %s (give it with -m MODEL)", trace,
                     shown, strcmp(cli_cmd, "drift") == 0 ? "model feature" : "probe");
        return NULL;
    }
    if (rc)
        cli_die("%s", err.msg);
    if (verify) {
        char hex[65], msg[sizeof shown + 256];
        msg[0] = '\0';
        if (!meta->model_sha256)
            snprintf(msg, sizeof msg, "%s: recorded without the model's sha256 (--no-hash): pass --no-verify to "
                     "use %s anyway", trace, shown);
        else if (bl_sha256_file(bl_model_file(m, 0), hex, NULL, NULL, &err))
            snprintf(msg, sizeof msg, "%s", err.msg);
        else if (strcmp(hex, meta->model_sha256) != 0)
            snprintf(msg, sizeof msg, "%s: sha256 %.16s... is not the trace's model (%.16s..., %s): pass --no-verify "
                     "to use it anyway", bl_model_file(m, 0), hex, meta->model_sha256, meta->model_path);
        if (msg[0]) {
            bl_model_free(m);
            cli_die("%s", msg);
        }
    }
    return m;
}

/* A whole file or standard input ("-"), NUL-terminated; *n its length.  A
 * directory, a read error or more than max bytes is an error naming it. */
char *cli_slurp(const char *path, size_t max, size_t *n)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp)
        cli_die("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode))
        cli_die("%s: is a directory", path);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        cli_die("out of memory");
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= max)
                cli_die("%s: more than %zu bytes of text: split it", path, max);
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                cli_die("out of memory");
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, fp);
        len += r;
        if (r == 0) {
            if (ferror(fp))
                cli_die("%s: read error after %zu bytes", path, len);
            break;
        }
    }
    if (fp != stdin)
        fclose(fp);
    buf[len] = 0;
    *n = len;
    return buf;
}

/* ------------------------------------------------------------ the default model */

#ifndef BL_PKGDATADIR
#define BL_PKGDATADIR "/usr/local/share/bitlens"
#endif
#ifndef BL_SRCDATADIR
#define BL_SRCDATADIR "lib"
#endif

/* path made absolute in place (a trace names it, and is read from
 * elsewhere); left as it is if that fails or does not fit. */
static const char *absolute(char *path, size_t cap)
{
    char *r = realpath(path, NULL);
    if (r && strlen(r) < cap)
        memcpy(path, r, strlen(r) + 1);
    free(r);
    return path;
}

/* The directory holding the default model: $BITLENS_DATADIR, else the
 * installed one if the file is there, else the source tree's. */
static const char *default_dir(const char *file, const char *what, const char *instead, char *path, size_t cap)
{
    const char *env = getenv("BITLENS_DATADIR");
    struct stat sb;
    if (env && *env) {
        snprintf(path, cap, "%s/%s", env, file);
        if (stat(path, &sb) != 0)
            cli_die("no default %s: %s: %s (BITLENS_DATADIR is set to '%s'); %s", what, path, strerror(errno), env,
                    instead);
        if (!S_ISREG(sb.st_mode))
            cli_die("no default %s: %s: not a regular file (BITLENS_DATADIR is set to '%s'); %s", what, path, env,
                    instead);
        return absolute(path, cap);
    }
    static const char *const dirs[] = {BL_PKGDATADIR, BL_SRCDATADIR};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, cap, "%s/%s", dirs[i], file);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            return absolute(path, cap);
    }
    cli_die("no default %s: %s is in neither %s (make install) nor %s; set BITLENS_DATADIR to the directory "
            "holding it, or %s", what, file, BL_PKGDATADIR, BL_SRCDATADIR, instead);
}

const char *cli_default_model_as(const char *given, const char *option)
{
    static char path[4096];
    if (given)
        return given;
    if (!path[0])
        default_dir("default-model.gguf", "model", "give a model with -m MODEL", path, sizeof path);
    if (!cli_quiet) {
        fflush(stdout);
        fprintf(stderr, "bitlens %s: no %s: using the default model, %s (trained by bitlens on the Brown corpus; "
                "see bitlens(1))\n", cli_cmd ? cli_cmd : "", option, path);
    }
    return path;
}

const char *cli_default_model(const char *given, const char *tokenizer)
{
    if (!given && tokenizer)
        cli_usage("-z %s: a tokenizer goes with a llama2.c model given with -m (the default model has its "
                  "vocabulary inside)", tokenizer);
    return cli_default_model_as(given, "-m");
}

const char *cli_default_drafter(void)
{
    static char path[4096];
    if (!path[0])
        default_dir("default-drafter.gguf", "drafter", "give a drafter with --drafter DRAFTER", path, sizeof path);
    return path;
}

char *cli_find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *s = path;; s++) {
        const char *e = strchr(s, ':');
        int n = e ? (int)(e - s) : (int)strlen(s);
        size_t cap = (size_t)n + strlen(name) + 3;
        char *f = malloc(cap);
        if (!f)
            cli_die("out of memory");
        /* an empty entry is the current directory */
        snprintf(f, cap, "%.*s/%s", n ? n : 1, n ? s : ".", name);
        struct stat sb;
        if (stat(f, &sb) == 0 && S_ISREG(sb.st_mode) && access(f, X_OK) == 0)
            return f;
        free(f);
        if (!e)
            return NULL;
        s = e;
    }
}
