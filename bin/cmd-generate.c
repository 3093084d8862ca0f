/* bin/cmd-generate.c: `bitlens generate`: run a model, print its text. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens generate [-m MODEL [-z TOKENIZER]] [-p PROMPT] [-n N] [-t T]\n"
    "                        [--top-p P] [--top-k K] [--seed S] [-c N]\n"
    "                        [--drafter D [--mode verify|fast] [--tokens-per-pass K]]\n"
    "                        [--threads N] [-q] [-v]\n"
    "\n"
    "  -m, --model MODEL          GGUF file, llama2.c .bin, or Hugging Face folder\n"
    "                             (default: the default model, see bitlens(1))\n"
    "  -z, --tokenizer TOKENIZER  llama2.c tokenizer.bin (default: tokenizer.bin\n"
    "                             beside a .bin model)\n"
    "  -p, --prompt PROMPT        text to start from (default: empty, BOS only)\n"
    "  -n, --tokens N             tokens to generate (default 256)\n"
    "  -t, --temperature T        sampling temperature, 0 = greedy (default 1.0)\n"
    "      --top-p P              nucleus sampling mass in (0, 1] (default 0.9)\n"
    "      --top-k K              sample among the K most probable tokens, 0 = all\n"
    "                             (default 0)\n"
    "      --seed S               random seed (default 42)\n"
    "  -c, --ctx N                context size in positions (default: the model's;\n"
    "                             a longer generation goes past it with a warning,\n"
    "                             or stops there for learned positions)\n"
    "      --drafter D            a drafter trained for this model (bitlens train):\n"
    "                             several tokens per forward pass; greedy only\n"
    "      --mode M               verify: drafts checked by the model, the output is\n"
    "                             plain greedy's (speculative decoding); fast: the\n"
    "                             drafts kept unchecked (default verify)\n"
    "      --tokens-per-pass K    fast: tokens kept per pass, the model's own and K-1\n"
    "                             drafted, 1 to heads+1 (default 2)\n"
    "      --threads N            threads (default: OMP_NUM_THREADS, else all processors)\n"
    "  -q, --quiet                no statistics or warnings on stderr\n"
    "  -v, --verbose              the settings, the prompt's token ids and the kernels\n"
    "                             on stderr\n"
    "  -h, --help                 this text\n";

enum { OPT_TOP_P = 256, OPT_TOP_K, OPT_SEED, OPT_THREADS, OPT_DRAFTER, OPT_MODE, OPT_TPP };

static const struct option longopts[] = {
    {"model", required_argument, NULL, 'm'},
    {"tokenizer", required_argument, NULL, 'z'},
    {"prompt", required_argument, NULL, 'p'},
    {"tokens", required_argument, NULL, 'n'},
    {"temperature", required_argument, NULL, 't'},
    {"top-p", required_argument, NULL, OPT_TOP_P},
    {"top-k", required_argument, NULL, OPT_TOP_K},
    {"seed", required_argument, NULL, OPT_SEED},
    {"ctx", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"drafter", required_argument, NULL, OPT_DRAFTER},
    {"mode", required_argument, NULL, OPT_MODE},
    {"tokens-per-pass", required_argument, NULL, OPT_TPP},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_generate(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = "";
    struct bl_model_params mp = bl_model_default_params();
    struct bl_sampler_params sp = bl_sampler_default_params();
    struct bl_ctx_params cp = bl_ctx_default_params();
    int64_t n_gen = 256, n_ctx = 0;
    int threads = 0, opt, have_t = 0, have_mode = 0, have_tpp = 0;
    const char *drafter_path = NULL;
    struct bl_spec_params spp = bl_spec_default_params();
    bl_err err = {0};

    sp.top_p = 0.9f;
    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:z:p:n:t:c:qvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'z': mp.tokenizer_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': n_gen = cli_int("-n", optarg, 0, 1 << 24); break;
        case 't':
            sp.temperature = (float)cli_float("-t", optarg, 0, 1e6);
            have_t = 1;
            break;
        case OPT_TOP_P: sp.top_p = (float)cli_float("--top-p", optarg, 1e-9, 1); break;
        case OPT_TOP_K: sp.top_k = cli_int("--top-k", optarg, 0, INT32_MAX); break;
        case OPT_SEED: sp.seed = cli_u64("--seed", optarg); break;
        case 'c': n_ctx = cli_int("-c", optarg, 1, 1 << 24); break;
        case OPT_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case OPT_DRAFTER: drafter_path = optarg; break;
        case OPT_MODE:
            if (strcmp(optarg, "verify") == 0)
                spp.mode = BL_SPEC_VERIFY;
            else if (strcmp(optarg, "fast") == 0)
                spp.mode = BL_SPEC_FAST;
            else
                cli_usage("--mode '%s': verify or fast", optarg);
            have_mode = 1;
            break;
        case OPT_TPP:
            spp.tokens_per_pass = (int)cli_int("--tokens-per-pass", optarg, 1, BL_DRAFTER_MAX_HEADS + 1);
            have_tpp = 1;
            break;
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind < argc)
        cli_usage("unexpected argument '%s'", argv[optind]);
    model_path = cli_default_model(model_path, mp.tokenizer_path);
    if (!drafter_path && (have_mode || have_tpp))
        cli_usage("--mode and --tokens-per-pass need --drafter D");
    if (drafter_path) {
        if (have_t && sp.temperature != 0)
            cli_usage("--drafter decodes greedily: -t %g is not 0", sp.temperature);
        sp.temperature = 0;
        if (have_tpp && spp.mode != BL_SPEC_FAST)
            cli_usage("--tokens-per-pass is for --mode fast");
    }

    threads = bl_set_threads(threads);
    bl_model *model;
    if (bl_model_load(&model, model_path, &mp, &err))
        cli_die("%s", err.msg);
    const bl_tokenizer *tok = bl_model_tokenizer(model);
    if (!tok)
        cli_die("%s: has no vocabulary: give its tokenizer.bin with -z", model_path);
    const struct bl_model_config *cfg = bl_model_config(model);

    /* the prompt: BOS where the vocabulary wants it (Llama, llama2.c; not
     * GPT-2), special tokens written in it recognized; an empty prompt
     * starts from BOS (GPT-2's <|endoftext|>) */
    size_t plen = strlen(prompt);
    int64_t cap = 3 * (int64_t)plen + 5, n_prompt;   /* the bound in tokenizer.h */
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids)
        cli_die("out of memory");
    unsigned flags = BL_TOK_SPECIAL | (bl_tokenizer_add_bos(tok) || plen == 0 ? BL_TOK_BOS : 0);
    if (bl_tokenizer_encode(tok, prompt, plen, flags, ids, cap, &n_prompt))
        cli_die("cannot tokenize the prompt");
    if (n_prompt == 0)   /* a vocabulary without BOS and an empty prompt */
        cli_die("the prompt is empty and the vocabulary has no BOS token to start from");

    /* context: the last sampled token is printed, never evaluated.  A model
     * with learned positions (GPT-2) has none past its trained context: the
     * run stops there.  Rotary models go past it with a warning. */
    int64_t needed = n_prompt + (n_gen > 0 ? n_gen - 1 : 0) + (drafter_path ? BL_DRAFTER_MAX_HEADS + 1 : 0);
    int64_t limit = n_ctx > 0 ? n_ctx : cfg->ctx_train;
    if (cfg->pos_embd && limit > cfg->ctx_train) {
        cli_die("%s: learned position embeddings for %" PRId64 " positions only: -c %" PRId64 " is too long",
                model_path, cfg->ctx_train, n_ctx);
    }
    if (n_prompt > limit) {
        if (n_ctx > 0)
            cli_die("the prompt is %" PRId64 " tokens, longer than the context (-c %" PRId64 ")", n_prompt, n_ctx);
        cli_die("%s: the prompt is %" PRId64 " tokens, longer than the model's context of %" PRId64 " positions%s",
                model_path, n_prompt, cfg->ctx_train, cfg->pos_embd ? "" : " (-c N runs past it)");
    }
    if (n_ctx > 0 || cfg->pos_embd) {
        cp.n_ctx = needed < limit ? needed : limit;
        if (cp.n_ctx > cfg->ctx_train)
            cli_warn("%s was trained with a context of %" PRId64 " positions; -c %" PRId64 " lets this run go to %" PRId64,
                     model_path, cfg->ctx_train, n_ctx, cp.n_ctx);
    } else {
        if (needed > cfg->ctx_train)
            cli_warn("%s was trained with a context of %" PRId64 " positions; this run goes to %" PRId64,
                     model_path, cfg->ctx_train, needed);
        cp.n_ctx = needed;
    }
    cp.n_threads = threads;
    if (cli_verbose) {
        fprintf(stderr, "bitlens generate: %s: %s, %s, %" PRId64 " parameters\n", model_path,
                bl_model_format_name(model), bl_model_arch_name(model), bl_model_n_params(model));
        fprintf(stderr, "bitlens generate: prompt of %" PRId64 " tokens:", n_prompt);
        for (int64_t i = 0; i < n_prompt; i++)
            fprintf(stderr, " %" PRId32, ids[i]);
        fprintf(stderr, "\nbitlens generate: context %" PRId64 " positions; temperature %g, top-k %" PRId64
                ", top-p %g, seed %" PRIu64 "; %d thread%s; cblas_sgemm from %s\n",
                cp.n_ctx, sp.temperature, sp.top_k, sp.top_p, sp.seed, threads, threads == 1 ? "" : "s",
                bl_blas_name());
    }

    bl_ctx *ctx;
    if (bl_ctx_alloc(&ctx, model, &cp, &err))
        cli_die("%s", err.msg);
    bl_drafter *drafter = NULL;
    if (drafter_path) {
        if (bl_drafter_load(&drafter, drafter_path, model, &err))
            cli_die("%s", err.msg);
        const struct bl_drafter_config *dc = bl_drafter_config(drafter);
        if (spp.mode == BL_SPEC_FAST && spp.tokens_per_pass > dc->n_heads + 1)
            cli_usage("--tokens-per-pass %d: %s has %d heads, so at most %d", spp.tokens_per_pass, drafter_path,
                      dc->n_heads, dc->n_heads + 1);
    }
    /* the embedding may have rows past the vocabulary (padding): sample
     * among the tokens that exist */
    bl_sampler *sampler = bl_sampler_alloc(&sp, bl_tokenizer_n_vocab(tok), &err);
    if (!sampler)
        cli_die("%s", err.msg);
    float *logits = malloc((size_t)cfg->n_vocab * sizeof *logits);
    char *piece = malloc(4096);
    if (!logits || !piece)
        cli_die("out of memory");

    struct cli_utf8 u8 = {{0}, 0, 0};
    /* the prompt as the model reads it (BOS, if any, prints nothing) */
    for (int64_t i = 0; i < n_prompt; i++) {
        size_t k = bl_tokenizer_decode(tok, i ? ids[i - 1] : -1, ids[i], piece, 4096);
        cli_utf8_put(&u8, stdout, piece, k < 4096 ? k : 4096);
    }
    fflush(stdout);

    double t0 = cli_now(), t1 = t0;
    int64_t n_out = 0;
    struct bl_spec_stats st;
    if (drafter && n_gen > 0) {
        int32_t *out = malloc((size_t)n_gen * sizeof *out);
        if (!out)
            cli_die("out of memory");
        spp.n_gen = n_gen;
        if (bl_drafter_generate(ctx, drafter, ids, n_prompt, &spp, out, &n_out, &st, &err))
            cli_die("%s", err.msg);
        int32_t prev = ids[n_prompt - 1];
        for (int64_t i = 0; i < n_out; i++) {
            size_t k = bl_tokenizer_decode(tok, prev, out[i], piece, 4096);
            cli_utf8_put(&u8, stdout, piece, k < 4096 ? k : 4096);
            prev = out[i];
        }
        free(out);
        t1 = t0;
    } else if (n_gen > 0) {
        if (bl_ctx_eval(ctx, ids, n_prompt, logits, 0))
            cli_die("%s", bl_ctx_errmsg(ctx));
        t1 = cli_now();
        int32_t prev = ids[n_prompt - 1];
        int32_t bos = bl_tokenizer_bos(tok), eos = bl_tokenizer_eos(tok);
        for (;;) {
            int32_t next = bl_sampler_sample(sampler, logits);
            if (next == bos || next == eos)
                break;
            size_t k = bl_tokenizer_decode(tok, prev, next, piece, 4096);
            cli_utf8_put(&u8, stdout, piece, k < 4096 ? k : 4096);
            fflush(stdout);
            n_out++;
            if (n_out == n_gen)
                break;
            if (bl_ctx_pos(ctx) == bl_ctx_n_ctx(ctx)) {
                cli_warn("context full at %" PRId64 " positions", bl_ctx_n_ctx(ctx));
                break;
            }
            if (bl_ctx_eval(ctx, &next, 1, logits, 0))
                cli_die("%s", bl_ctx_errmsg(ctx));
            prev = next;
        }
    }
    double t2 = cli_now();
    putchar('\n');
    fflush(stdout);   /* the text, then the statistics, also through a pipe */
    if (!cli_quiet && drafter && n_gen > 0) {
        double dt = t2 - t0;
        fprintf(stderr, "bitlens generate: %" PRId64 " token%s in %" PRId64 " model passes (%s mode): %.2f tokens per "
                        "pass, %.3f passes per token; %.1f tok/s (%d thread%s)\n",
                n_out, n_out == 1 ? "" : "s", st.main_passes, spp.mode == BL_SPEC_VERIFY ? "verify" : "fast",
                st.mean_accept_len, n_out ? (double)st.main_passes / (double)n_out : 0.0,
                dt > 0 ? (double)n_out / dt : 0.0, threads, threads == 1 ? "" : "s");
        fprintf(stderr, "bitlens generate: acceptance by draft position:");
        for (int j = 0; j < st.n_heads; j++)
            if (st.offered_at[j])
                fprintf(stderr, " %d: %.3f", j + 1, (double)st.accept_at[j] / (double)st.offered_at[j]);
        fprintf(stderr, "\nbitlens generate: top-1 agreement with the model by head:");
        for (int j = 0; j < st.n_heads; j++)
            if (st.compared_at[j])
                fprintf(stderr, " %d: %.3f", j + 1, (double)st.agree_at[j] / (double)st.compared_at[j]);
        fputc('\n', stderr);
    } else if (!cli_quiet && n_gen > 0) {
        double pt = t1 - t0, dt = t2 - t1;
        int64_t n_dec = n_out > 1 ? n_out - 1 : 0;
        fprintf(stderr, "bitlens generate: %" PRId64 " token%s; prompt %" PRId64 " token%s at %.1f tok/s, "
                "decode %.1f tok/s (%d thread%s)\n",
                n_out, n_out == 1 ? "" : "s", n_prompt, n_prompt == 1 ? "" : "s", pt > 0 ? (double)n_prompt / pt : 0.0,
                dt > 0 ? (double)n_dec / dt : 0.0, threads, threads == 1 ? "" : "s");
    }
    free(piece);
    free(logits);
    free(ids);
    bl_sampler_free(sampler);
    bl_drafter_free(drafter);
    bl_ctx_free(ctx);
    bl_model_free(model);
    return 0;
}
