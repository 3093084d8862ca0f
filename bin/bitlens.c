/* bin/bitlens.c: `bitlens <command> [<args>]`, dispatching on a table.
 *
 * Adding a command: write bin/cmd-NAME.c with cmd_NAME(argc, argv) and a
 * usage string whose first line is the synopsis; add it to the table below
 * and to cli.h; write man/bitlens-NAME.1 with the same SYNOPSIS; list both
 * in Makefile.am.  tests/man-pages.sh checks that each command has a page
 * and that `-h` and the page name the same options. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "cli.h"

static const struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"convert", cmd_convert, "write a model as GGUF, in f32, f16, bf16 or q8_0"},
    {"demo", cmd_demo, "the whole pipeline on the default model: record, report, drift, charts"},
    {"drift", cmd_drift, "flag text drifting away from readable English (exit 1 when flagged)"},
    {"export", cmd_export, "write a trace as CSV tables or numpy .npy arrays"},
    {"generate", cmd_generate, "run a model and print the text it writes"},
    {"info", cmd_info, "describe a model file or a trace"},
    {"lens", cmd_lens, "the logit lens of a trace, layer by layer"},
    {"plot", cmd_plot, "charts of a trace through gnuplot: entropy, bits, spectrum, lens, probe, drift"},
    {"probe", cmd_probe, "bits about future tokens a probe decodes from each hook"},
    {"record", cmd_record, "run prompts with probes attached and write a trace"},
    {"report", cmd_report, "the bottleneck table: token bits against residual bits"},
    {"spectrum", cmd_spectrum, "covariance spectra, capacity and compressibility per hook"},
    {"train", cmd_train, "train drafter heads on a model's residual stream, a BPE vocabulary, or a model"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char usage[] =
    "usage: bitlens [--version] [--help] <command> [<args>]\n";

static void list_commands(FILE *fp)
{
    fputs(usage, fp);
    fputs("\ncommands:\n", fp);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'bitlens help <command>' shows the manual of a command;\n"
          "'bitlens <command> -h' its options.\n", fp);
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        list_commands(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--commands") == 0) {   /* for scripts and tests */
        for (size_t i = 0; i < N_COMMANDS; i++)
            printf("%s\t%s\n", commands[i].name, commands[i].summary);
        return 0;
    }
    const struct command *c = find(argv[1]);
    if (!c && strcmp(argv[1], "bitlens") != 0) {
        cli_cmd = "help";
        cli_die("'%s' is not a bitlens command (see 'bitlens help')", argv[1]);
    }
    char page[64];
    snprintf(page, sizeof page, c ? "bitlens-%s" : "bitlens", argv[1]);
    fflush(stdout);
    execlp("man", "man", page, (char *)NULL);
    /* no man(1): the option summary is the next best thing */
    if (c) {
        char *h[] = {(char *)c->name, "-h", NULL};
        return c->fn(2, h);
    }
    list_commands(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    /* the library reports GSL failures as statuses; never abort */
    gsl_set_error_handler_off();

    if (argc < 2) {
        list_commands(stderr);
        return EXIT_ERROR;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("bitlens %s\n", bl_version());
        return 0;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0)
        return cmd_help(argc - 1, argv + 1);
    const struct command *c = find(name);
    if (!c) {
        fprintf(stderr, "bitlens: '%s' is not a bitlens command (see 'bitlens help')\n", name);
        return EXIT_ERROR;
    }
    cli_cmd = c->name;
    int rc = c->fn(argc - 1, argv + 1);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("error writing to standard output");
        return EXIT_ERROR;
    }
    return rc;
}
