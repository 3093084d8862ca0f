/* bin/cmd-convert.c: `bitlens convert`: write any model bitlens reads as
 * GGUF, optionally quantized. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens convert [-m MODEL [-z TOKENIZER]] -o OUT [--type TYPE] [--force] [-q]\n"
    "\n"
    "  -m, --model MODEL          model: GGUF, llama2.c .bin, or a Hugging Face folder\n"
    "                             (default: the default model, see bitlens(1))\n"
    "  -z, --tokenizer TOKENIZER  llama2.c tokenizer.bin (for a .bin model; given\n"
    "                             with another model it replaces the vocabulary)\n"
    "  -o, --output OUT           the GGUF file to write\n"
    "      --type TYPE            matrices as f32, f16, bf16 or q8_0 (default f32);\n"
    "                             vectors stay f32\n"
    "      --force                replace OUT if it exists\n"
    "  -q, --quiet                no summary on stderr\n"
    "  -h, --help                 this text\n";

enum { OPT_TYPE = 256, OPT_FORCE };

static const struct option longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"tokenizer", required_argument, NULL, 'z'},
    {"output", required_argument, NULL, 'o'},
    {"type", required_argument, NULL, OPT_TYPE},
    {"force", no_argument, NULL, OPT_FORCE},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_convert(int argc, char **argv)
{
    const char *model_path = NULL, *out = NULL, *type_name = "f32";
    struct bl_model_params mp = bl_model_default_params();
    int force = 0, opt, type;
    bl_err err = {0};

    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:z:o:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'z': mp.tokenizer_path = optarg; break;
        case 'o': out = optarg; break;
        case OPT_TYPE: type_name = optarg; break;
        case OPT_FORCE: force = 1; break;
        case 'q': cli_quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind < argc)
        cli_usage("unexpected argument '%s'", argv[optind]);
    if (!out)
        cli_usage("no output: give the GGUF file to write with -o OUT");
    if (strcmp(type_name, "f32") == 0)
        type = BL_F32;
    else if (strcmp(type_name, "f16") == 0)
        type = BL_F16;
    else if (strcmp(type_name, "bf16") == 0)
        type = BL_BF16;
    else if (strcmp(type_name, "q8_0") == 0)
        type = BL_Q8_0;
    else
        cli_usage("--type '%s': not one of f32, f16, bf16, q8_0", type_name);
    model_path = cli_default_model(model_path, mp.tokenizer_path);
    struct stat st;
    if (!force && stat(out, &st) == 0)
        cli_die("%s: exists (--force replaces it)", out);

    bl_model *m;
    if (bl_model_load(&m, model_path, &mp, &err))
        cli_die("%s", err.msg);
    double t0 = cli_now();
    if (bl_model_write_gguf(m, out, type, &err))
        cli_die("%s", err.msg);
    if (!cli_quiet) {
        size_t bytes = stat(out, &st) == 0 ? (size_t)st.st_size : 0;
        fprintf(stderr, "bitlens convert: %s (%s, %s) -> %s: %" PRId64 " tensors, matrices %s, %.1f MB in %.1f s%s\n",
                model_path, bl_model_format_name(m), bl_model_arch_name(m), out, bl_model_n_tensors(m),
                type_name, (double)bytes / 1e6, cli_now() - t0,
                bl_model_tokenizer(m) ? "" : "; no vocabulary (give -z for a llama2.c model)");
    }
    bl_model_free(m);
    return 0;
}
