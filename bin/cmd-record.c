/* bin/cmd-record.c: `bitlens record`: run prompts with probes attached and
 * write a trace.  Like perf record: nothing on standard output (unless the
 * trace goes there), progress on standard error when it is a terminal. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens record [-m MODEL [-z TOKENIZER]] (-p PROMPT | -f PROMPTS) [-n N]\n"
    "                      [--hooks GLOB] [--dtype TYPE] [--drafter DRAFTER] [-o TRACE]\n"
    "                      [--force] [-t T] [--top-p P] [--top-k K] [--seed S]\n"
    "                      [--keep-top K] [--no-lens] [--no-hash] [-c N] [--threads N]\n"
    "                      [-q] [-v]\n"
    "\n"
    "  -m, --model MODEL          GGUF file, llama2.c .bin, or Hugging Face folder\n"
    "                             (default: the default model, see bitlens(1))\n"
    "  -p, --prompt PROMPT        one prompt\n"
    "  -f, --prompts PROMPTS      a file of prompts, one per line ('-': standard input)\n"
    "  -n, --tokens N             tokens to generate after each prompt (default 0:\n"
    "                             teacher-forced over the prompt only)\n"
    "      --hooks GLOB           hook points to store, comma-separated globs, or 'none'\n"
    "                             (default blocks.*.hook_resid_post, and with --drafter\n"
    "                             drafter.heads.*.hook_hidden too)\n"
    "      --dtype TYPE           stored tensors as f32, f16 or bf16 (default f16)\n"
    "      --drafter DRAFTER      run a drafter made for MODEL (bitlens train --drafter)\n"
    "                             at every position: its heads' drafts and statistics\n"
    "  -o, --output TRACE         the trace to write, '-' for standard output\n"
    "                             (default bitlens.blt)\n"
    "      --force                replace TRACE if it exists\n"
    "  -z, --tokenizer TOKENIZER  llama2.c tokenizer.bin (default: tokenizer.bin\n"
    "                             beside a .bin model)\n"
    "  -t, --temperature T        sampling temperature, 0 = greedy (default 1.0)\n"
    "      --top-p P              nucleus sampling mass in (0, 1] (default 0.9)\n"
    "      --top-k K              sample among the K most probable tokens (default 0: all)\n"
    "      --seed S               random seed (default 42)\n"
    "      --keep-top K           ids and probabilities kept per position (default 10)\n"
    "      --no-lens              no logit lens at each block's resid_post\n"
    "      --no-hash              no sha256 of the model's files in the header\n"
    "  -c, --ctx N                context size in positions (default: the longest prompt\n"
    "                             plus N)\n"
    "      --threads N            threads (default: OMP_NUM_THREADS, else all processors)\n"
    "  -q, --quiet                no progress or summary on stderr\n"
    "  -v, --verbose              the model and the recording settings, on stderr\n"
    "  -h, --help                 this text\n";

enum { OPT_HOOKS = 256, OPT_DTYPE, OPT_FORCE, OPT_TOP_P, OPT_TOP_K, OPT_SEED, OPT_KEEP_TOP, OPT_NO_LENS,
       OPT_NO_HASH, OPT_THREADS, OPT_DRAFTER };

static const struct option longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"prompt", required_argument, NULL, 'p'},
    {"prompts", required_argument, NULL, 'f'},
    {"tokens", required_argument, NULL, 'n'},
    {"hooks", required_argument, NULL, OPT_HOOKS},
    {"dtype", required_argument, NULL, OPT_DTYPE},
    {"drafter", required_argument, NULL, OPT_DRAFTER},
    {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, OPT_FORCE},
    {"tokenizer", required_argument, NULL, 'z'},
    {"temperature", required_argument, NULL, 't'},
    {"top-p", required_argument, NULL, OPT_TOP_P},
    {"top-k", required_argument, NULL, OPT_TOP_K},
    {"seed", required_argument, NULL, OPT_SEED},
    {"keep-top", required_argument, NULL, OPT_KEEP_TOP},
    {"no-lens", no_argument, NULL, OPT_NO_LENS},
    {"no-hash", no_argument, NULL, OPT_NO_HASH},
    {"ctx", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* prompts: one per non-empty line of a file */
static char **read_prompts(const char *path, int64_t *n)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        cli_die("%s: cannot open: %s", path, strerror(errno));
    char **v = NULL, *line = NULL;
    size_t cap = 0, nv = 0, lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (memchr(line, '\0', (size_t)len))
            cli_die("%s: prompt %zu holds a NUL byte", path, nv + 1);
        if (nv == cap) {
            cap = cap ? 2 * cap : 64;
            if (!(v = realloc(v, cap * sizeof *v)))
                cli_die("out of memory");
        }
        if (!(v[nv++] = strdup(line)))
            cli_die("out of memory");
    }
    if (ferror(f))
        cli_die("%s: read failed: %s", path, strerror(errno));
    free(line);
    if (f != stdin)
        fclose(f);
    if (nv == 0)
        cli_die("%s: no prompts (one per line; empty lines are skipped)", path);
    *n = (int64_t)nv;
    return v;
}

struct progress {
    double t0, last;
    int tty;
};

static int on_progress(void *user, int64_t prompt, int64_t n_prompts, int64_t positions)
{
    struct progress *pr = user;
    double now = cli_now();
    if (pr->tty && now - pr->last > 0.2) {
        fprintf(stderr, "\rbitlens record: prompt %" PRId64 "/%" PRId64 ", %" PRId64 " positions, %.0f pos/s   ",
                prompt < n_prompts ? prompt + 1 : n_prompts, n_prompts, positions,
                now > pr->t0 ? (double)positions / (now - pr->t0) : 0.0);
        pr->last = now;
    }
    return 0;
}

int cmd_record(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *prompts_file = NULL, *out = "bitlens.blt";
    const char *drafter_path = NULL;
    int hooks_given = 0;
    struct bl_model_params mp = bl_model_default_params();
    struct bl_record_params rp = bl_record_default_params();
    unsigned flags = 0;
    int threads = 0, opt;
    bl_err err = {0};

    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:p:f:n:o:z:t:c:qvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': prompts_file = optarg; break;
        case 'n': rp.n_gen = cli_int("-n", optarg, 0, 1 << 24); break;
        case OPT_HOOKS:
            rp.hooks = strcmp(optarg, "none") == 0 ? "" : optarg;
            hooks_given = 1;
            break;
        case OPT_DRAFTER: drafter_path = optarg; break;
        case OPT_DTYPE:
            if (strcmp(optarg, "f32") == 0)
                rp.dtype = BL_F32;
            else if (strcmp(optarg, "f16") == 0)
                rp.dtype = BL_F16;
            else if (strcmp(optarg, "bf16") == 0)
                rp.dtype = BL_BF16;
            else
                cli_usage("--dtype '%s': not one of f32, f16, bf16", optarg);
            break;
        case 'o': out = optarg; break;
        case OPT_FORCE: flags |= BL_TRACE_FORCE; break;
        case 'z': mp.tokenizer_path = optarg; break;
        case 't': rp.sampling.temperature = (float)cli_float("-t", optarg, 0, 1e6); break;
        case OPT_TOP_P: rp.sampling.top_p = (float)cli_float("--top-p", optarg, 1e-9, 1); break;
        case OPT_TOP_K: rp.sampling.top_k = cli_int("--top-k", optarg, 0, INT32_MAX); break;
        case OPT_SEED: rp.sampling.seed = cli_u64("--seed", optarg); break;
        case OPT_KEEP_TOP: rp.top_k = (int)cli_int("--keep-top", optarg, 0, 1000); break;
        case OPT_NO_LENS: rp.lens = 0; break;
        case OPT_NO_HASH: rp.hash = 0; break;
        case 'c': rp.n_ctx = cli_int("-c", optarg, 1, 1 << 24); break;
        case OPT_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind < argc)
        cli_usage("unexpected argument '%s'", argv[optind]);
    if (!prompt == !prompts_file)
        cli_usage("give the prompts with -p PROMPT or -f PROMPTS (one of them)");
    model_path = cli_default_model(model_path, mp.tokenizer_path);

    int64_t n = 1;
    char **prompts = prompts_file ? read_prompts(prompts_file, &n) : NULL;
    const char *one[1] = {prompt};

    /* the command line, for the header, quoted as a shell would need it */
    size_t cl = 16;
    for (int i = 0; i < argc; i++)
        cl += 4 * strlen(argv[i]) + 3;
    char *cmdline = malloc(cl), *o = cmdline;
    if (!cmdline)
        cli_die("out of memory");
    o += sprintf(o, "bitlens");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != '\0';
        for (const char *c = a; *c; c++)
            plain &= strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *c) != NULL;
        *o++ = ' ';
        if (plain) {
            o += sprintf(o, "%s", a);
            continue;
        }
        *o++ = '\'';
        for (const char *c = a; *c; c++) {
            if (*c == '\'') {
                memcpy(o, "'\\''", 4);
                o += 4;
            } else {
                *o++ = *c;
            }
        }
        *o++ = '\'';
        *o = '\0';
    }
    rp.command_line = cmdline;
    rp.n_threads = bl_set_threads(threads);

    bl_model *m;
    if (bl_model_load(&m, model_path, &mp, &err))
        cli_die("%s", err.msg);
    if (!bl_model_tokenizer(m))
        cli_die("%s: has no vocabulary: give its tokenizer.bin with -z", model_path);
    bl_drafter *dr = NULL;
    if (drafter_path) {
        if (bl_drafter_load(&dr, drafter_path, m, &err))
            cli_die("%s", err.msg);
        rp.drafter = dr;
        rp.drafter_path = drafter_path;
        if (!hooks_given)
            rp.hooks = BL_RECORD_DEFAULT_HOOKS "," BL_RECORD_DRAFTER_HOOKS;
    }

    struct progress pr = {cli_now(), 0, !cli_quiet && cli_stderr_tty()};
    rp.progress = on_progress;
    rp.progress_user = &pr;
    if (cli_verbose) {
        fprintf(stderr, "bitlens record: %s: %s, %s; hooks '%s', %s; lens %s; keep top %d\n", model_path,
                bl_model_format_name(m), bl_model_arch_name(m), rp.hooks, bl_dtype_name(rp.dtype),
                rp.lens ? "on" : "off", rp.top_k);
        if (dr) {
            const struct bl_drafter_config *dc = bl_drafter_config(dr);
            fprintf(stderr, "bitlens record: drafter %s: %d head%s on %s\n", drafter_path, dc->n_heads,
                    dc->n_heads == 1 ? "" : "s", dc->hook);
        }
    }
    struct bl_record_stats st;
    int rc = bl_record(m, prompts ? (const char *const *)prompts : one, n, &rp, out, flags, &st, &err);
    if (pr.tty)
        fputs("\r\033[K", stderr);
    if (rc)
        cli_die("%s", err.msg);
    if (!cli_quiet) {
        double t = cli_now() - pr.t0;
        fprintf(stderr, "bitlens record: %" PRId64 " prompt%s, %" PRId64 " positions in %.1f s; %.2f MB written to %s",
                st.prompts, st.prompts == 1 ? "" : "s", st.positions, t, (double)st.trace_bytes / 1e6,
                strcmp(out, "-") == 0 ? "standard output" : out);
        if (st.cut_short > 0)
            fprintf(stderr, "; %" PRId64 " generation%s stopped at a full context", st.cut_short,
                    st.cut_short == 1 ? "" : "s");
        if (st.drafter_rows > 0)
            fprintf(stderr, "; drafted from %" PRId64 " position%s", st.drafter_rows, st.drafter_rows == 1 ? "" : "s");
        if (st.tensor_values > 0)
            fprintf(stderr, " (%" PRId64 " tensor values, %.2f bytes per value in all)", st.tensor_values,
                    (double)st.trace_bytes / (double)st.tensor_values);
        fputc('\n', stderr);
    }
    bl_drafter_free(dr);
    bl_model_free(m);
    if (prompts) {
        for (int64_t i = 0; i < n; i++)
            free(prompts[i]);
        free(prompts);
    }
    free(cmdline);
    return 0;
}
