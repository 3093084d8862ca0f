/* bin/cli.h: what the subcommands share: messages, exit codes, parsing
 * numbers and loading a model from the common options. */
#ifndef BITLENS_CLI_H
#define BITLENS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <bitlens/bitlens.h>

/* Exit statuses: 0 ok, 1 "found something" (drift), 2 usage or input error. */
#define EXIT_FOUND 1
#define EXIT_ERROR 2

/* Name of the running subcommand, for messages ("generate"). */
extern const char *cli_cmd;
/* -q / -v */
extern int cli_quiet, cli_verbose;

/* "bitlens CMD: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cli_error, then exit 2. */
_Noreturn void cli_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage mistake: the message, a pointer to -h, exit 2. */
_Noreturn void cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* getopt_long returned '?' (unknown option) or ':' (missing argument; the
 * optstring starts with ':' and opterr is 0): say which, exit 2. */
_Noreturn void cli_bad_option(int opt, char **argv);

/* Strict number parsing for option `opt`: the whole string, within
 * [lo, hi]; anything else is a usage error. */
int64_t cli_int(const char *opt, const char *s, int64_t lo, int64_t hi);
uint64_t cli_u64(const char *opt, const char *s);
double cli_float(const char *opt, const char *s, double lo, double hi);

/* A whole file or standard input ("-"), NUL-terminated, malloc'd; *n its
 * length.  A directory, a read error or more than max bytes: cli_die. */
char *cli_slurp(const char *path, size_t max, size_t *n);

/* The first executable `name` in $PATH (malloc'd), or NULL. */
char *cli_find_in_path(const char *name);

/* 1 if stderr is a terminal (progress goes there only then). */
int cli_stderr_tty(void);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* Print text bytes as UTF-8: complete valid sequences are written, invalid
 * bytes and control characters other than whitespace are dropped. */
struct cli_utf8 {
    unsigned char buf[4];
    int n, need;
};
void cli_utf8_put(struct cli_utf8 *u, FILE *fp, const char *s, size_t n);

/* Progress of a long analysis on stderr (a terminal only): one line
 * rewritten at most every 0.2 s.  `user` of cli_progress() is a struct
 * cli_progress; cli_progress() always returns 0 (go on). */
struct cli_progress {
    double t0, last;
    int tty;
    const char *stage;
};
void cli_progress_init(struct cli_progress *pr);
int cli_progress(void *user, const char *stage, int64_t done, int64_t total);

/* The model a trace was recorded from, for the probe: -m's (`given`), or
 * the one the trace's header names (as written, else relative to the
 * trace's directory), its sha256 checked against the header's unless
 * !verify (a mismatch is an error).  A llama2.c model is loaded with
 * `given_tok`, else the tokenizer.bin the header names if it is there.  Not there: an error when `required`,
 * else a warning and NULL. */
bl_model *cli_trace_model(const char *given, const char *given_tok, const struct bl_trace_meta *meta,
                          const char *trace, int verify, int required);

/* The default model and its drafter (lib/default-model.gguf and
 * lib/default-drafter.gguf of the source tree, installed in the package's
 * data directory), for a command given no -m.  Looked up in
 * $BITLENS_DATADIR when it is set, else the installed data directory, else
 * the source tree the program was built from.  cli_default_model(given)
 * returns `given` when it is not NULL; else the default's path, after
 * saying on stderr (unless -q) that it is used (a `tokenizer` given with
 * -z and no model is a usage error).  Not found: an error naming
 * where it looked and pointing to -m.  cli_default_drafter() says nothing. */
const char *cli_default_model(const char *given, const char *tokenizer);
/* The same where the model is given otherwise (`option` names how). */
const char *cli_default_model_as(const char *given, const char *option);
const char *cli_default_drafter(void);

/* Commands: cmd_<name>(argc, argv) returns the exit status. */
int cmd_convert(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_drift(int argc, char **argv);
/* `bitlens drift` with argv (argv[0] "drift"), its spans as CSV (the
 * --csv columns) to out whatever the options say; the exit status. */
int cli_drift_csv(int argc, char **argv, FILE *out);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_spectrum(int argc, char **argv);
int cmd_lens(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_train(int argc, char **argv);

#endif
