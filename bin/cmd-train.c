/* bin/cmd-train.c: `bitlens train`: train a drafter on a corpus, or a
 * byte-fallback BPE vocabulary (--tokenizer). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: bitlens train --drafter medusa [-m MODEL [-z TOKENIZER]] --corpus TEXT [-o DRAFTER]\n"
    "                     [--heads K] [--blocks N] [--width W] [--hook NAME]\n"
    "                     [--targets self|corpus] [--prompts N] [--prompt-tokens N] [--gen N]\n"
    "                     [--valid-every N] [--steps N] [--batch N] [--lr R] [--weight-decay W]\n"
    "                     [--clip C] [--warmup N] [--eval-every N] [--seed S] [--threads N]\n"
    "                     [--force] [-q] [-v]\n"
    "       bitlens train --tokenizer --corpus TEXT [--vocab N] [--max-piece N]\n"
    "                     [--no-space-prefix] [-o TOKENIZER] [--threads N] [--force] [-q] [-v]\n"
    "       bitlens train --model --corpus TEXT [-z TOKENIZER | --vocab N] [--dim N]\n"
    "                     [--layers N] [--heads N] [--hidden N] [--ctx N] [--seq N]\n"
    "                     [--valid-fraction F] [--steps N] [--batch N] [--lr R]\n"
    "                     [--weight-decay W] [--clip C] [--warmup N] [--eval-every N]\n"
    "                     [--seed S] [-o MODEL] [--threads N] [--force] [-q] [-v]\n"
    "\n"
    "Train multi-token drafter heads on the residual stream of a frozen model: head\n"
    "j reads the hook at position t and predicts x_{t+1+j}.  The corpus's paragraphs\n"
    "(blocks of lines between blank lines) are the prompts; with --targets self the\n"
    "targets are the model's own greedy continuation of each (self-distillation).\n"
    "\n"
    "      --drafter KIND       medusa (K heads on one feature) or eagle (one layer\n"
    "                           drafting K tokens autoregressively)\n"
    "  -m, --model MODEL        the main model (GGUF, llama2.c .bin, HF folder;\n"
    "                           default: the default model, see bitlens(1))\n"
    "  -z, --tokenizer TOK      llama2.c tokenizer.bin for a .bin model\n"
    "      --corpus TEXT        the training text\n"
    "  -o, --output DRAFTER     the drafter file (default drafter.gguf)\n"
    "      --heads K            heads, tokens drafted per pass (default 4)\n"
    "      --blocks N           residual blocks per head (default 1)\n"
    "      --width W            hidden width of a block, h + W2 SiLU(W1 h + b); 0:\n"
    "                           h + SiLU(W h + b) (default: 4 x the model's dim)\n"
    "      --hook NAME          the hook read (default ln_final.hook_normalized)\n"
    "      --targets T          self (the model's greedy continuations) or corpus\n"
    "                           (the text's own next tokens) (default self)\n"
    "      --prompts N          paragraphs used, 0 = all (default 0)\n"
    "      --prompt-tokens N    tokens of each paragraph kept as the prompt (default 32)\n"
    "      --gen N              greedy tokens after each prompt, for self (default 64)\n"
    "      --valid-every N      every Nth prompt held out for the figures (default 10)\n"
    "      --steps N            optimizer steps (default 3000)\n"
    "      --batch N            rows per step (default 64)\n"
    "      --lr R               peak learning rate (default 0.003)\n"
    "      --weight-decay W     AdamW decay on the matrices (default 0.01)\n"
    "      --clip C             gradient norm clip, 0 = none (default 1)\n"
    "      --warmup N           linear warm-up steps, then cosine (default steps/20)\n"
    "      --eval-every N       steps between held-out figures (default 250)\n"
    "      --seed S             seed of the start and the batch order (default 1)\n"
    "      --threads N          threads (default: OMP_NUM_THREADS, else all processors)\n"
    "      --force              replace an existing output file\n"
    "\n"
    "With --tokenizer (given first, without a value), train a SentencePiece-style\n"
    "BPE vocabulary with byte fallback on the corpus and write it as a GGUF file\n"
    "holding only the vocabulary (default tokenizer.gguf):\n"
    "      --vocab N            tokens in all, 3 special and 256 byte tokens\n"
    "                           included (default 1024)\n"
    "      --max-piece N        longest merged piece in bytes (default 16)\n"
    "      --no-space-prefix    no dummy space before the text\n"
    "\n"
    "With --model (given first, without a value), train a Llama-family model from\n"
    "scratch on the corpus and write it as GGUF with its vocabulary inside\n"
    "(default model.gguf): the vocabulary of -z (a GGUF from --tokenizer), or one\n"
    "trained here first with --vocab N (default 1024).  --steps, --batch (windows\n"
    "per step), --lr, --weight-decay, --clip, --warmup, --eval-every and --seed as\n"
    "above (defaults 1000, 16, 0.003, 0.1, 1, 50, 100, 1), --heads the attention\n"
    "heads (4), and:\n"
    "      --dim N              residual stream width (default 128)\n"
    "      --layers N           decoder blocks (default 4)\n"
    "      --hidden N           SwiGLU width (default 384)\n"
    "      --ctx N              context length (default 256)\n"
    "      --seq N              tokens per training window (default 128)\n"
    "      --valid-fraction F   the corpus's tail held out (default 0.05)\n"
    "  -q, --quiet              no progress or figures on stderr\n"
    "  -v, --verbose            settings and timings on stderr\n"
    "  -h, --help               this text\n";

enum {
    OPT_DRAFTER = 256, OPT_CORPUS, OPT_HEADS, OPT_BLOCKS, OPT_WIDTH, OPT_HOOK, OPT_TARGETS, OPT_PROMPTS,
    OPT_PROMPT_TOKENS, OPT_GEN, OPT_VALID_EVERY, OPT_STEPS, OPT_BATCH, OPT_LR, OPT_WD, OPT_CLIP, OPT_WARMUP,
    OPT_EVAL_EVERY, OPT_SEED, OPT_THREADS, OPT_FORCE, OPT_VOCAB, OPT_MAX_PIECE, OPT_NO_SPACE_PREFIX,
    OPT_DIM, OPT_LAYERS, OPT_NHEADS, OPT_HIDDEN, OPT_CTX, OPT_SEQ, OPT_VALID_FRACTION
};

static const struct option longopts[] = {
    {"drafter", required_argument, NULL, OPT_DRAFTER},
    {"model", required_argument, NULL, 'm'},
    {"tokenizer", required_argument, NULL, 'z'},
    {"corpus", required_argument, NULL, OPT_CORPUS},
    {"output", required_argument, NULL, 'o'},
    {"heads", required_argument, NULL, OPT_HEADS},
    {"blocks", required_argument, NULL, OPT_BLOCKS},
    {"width", required_argument, NULL, OPT_WIDTH},
    {"hook", required_argument, NULL, OPT_HOOK},
    {"targets", required_argument, NULL, OPT_TARGETS},
    {"prompts", required_argument, NULL, OPT_PROMPTS},
    {"prompt-tokens", required_argument, NULL, OPT_PROMPT_TOKENS},
    {"gen", required_argument, NULL, OPT_GEN},
    {"valid-every", required_argument, NULL, OPT_VALID_EVERY},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"weight-decay", required_argument, NULL, OPT_WD},
    {"clip", required_argument, NULL, OPT_CLIP},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"force", no_argument, NULL, OPT_FORCE},
    {"vocab", required_argument, NULL, OPT_VOCAB},
    {"max-piece", required_argument, NULL, OPT_MAX_PIECE},
    {"no-space-prefix", no_argument, NULL, OPT_NO_SPACE_PREFIX},
    {"dim", required_argument, NULL, OPT_DIM},
    {"layers", required_argument, NULL, OPT_LAYERS},
    {"hidden", required_argument, NULL, OPT_HIDDEN},
    {"ctx", required_argument, NULL, OPT_CTX},
    {"seq", required_argument, NULL, OPT_SEQ},
    {"valid-fraction", required_argument, NULL, OPT_VALID_FRACTION},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The paragraphs of a text file, each one line (whitespace runs joined). */
static char **paragraphs(const char *path, int64_t max, int64_t *n_out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        cli_die("%s: cannot open: %s", path, strerror(errno));
    char **v = NULL, *cur = NULL, *line = NULL;
    size_t len = 0, cap = 0, lcap = 0;
    int64_t n = 0, vcap = 0;
    for (;;) {
        ssize_t got = getline(&line, &lcap, fp);
        int more = got >= 0, blank = 1;
        if (more)
            for (ssize_t i = 0; i < got; i++)
                if (line[i] != ' ' && line[i] != '\t' && line[i] != '\n' && line[i] != '\r')
                    blank = 0;
        if ((blank || !more) && len > 0) {
            if (n == vcap) {
                vcap = vcap ? 2 * vcap : 256;
                char **nv = realloc(v, (size_t)vcap * sizeof *v);
                if (!nv)
                    cli_die("out of memory");
                v = nv;
            }
            v[n++] = cur;
            cur = NULL;
            len = cap = 0;
            if (max > 0 && n >= max)
                break;
        }
        if (!more)
            break;
        if (blank)
            continue;
        size_t l = (size_t)got;
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' '))
            line[--l] = '\0';
        if (len + l + 2 > cap) {
            cap = (len + l + 2) * 2;
            char *nc = realloc(cur, cap);
            if (!nc)
                cli_die("out of memory");
            cur = nc;
        }
        if (len)
            cur[len++] = ' ';
        memcpy(cur + len, line, l + 1);
        len += l;
    }
    if (ferror(fp))
        cli_die("%s: read error", path);
    fclose(fp);
    free(cur);
    free(line);
    *n_out = n;
    return v;
}

struct prog {
    double t0;
    int tty;
};

static int on_data(void *user, const char *stage, int64_t done, int64_t total)
{
    struct prog *pr = user;
    if (pr->tty && (done % 16 == 0 || done == total))
        fprintf(stderr, "\r\033[Kbitlens train: %s %" PRId64 "/%" PRId64 " (%.0f s)", stage, done, total,
                cli_now() - pr->t0);
    return 0;
}

static int on_step(void *user, int64_t step, int64_t steps, double tl, double vl, const double *top1, int k)
{
    struct prog *pr = user;
    if (cli_quiet)
        return 0;
    if (pr->tty)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "bitlens train: step %6" PRId64 "/%" PRId64 "  train %.4f  held-out %.4f nats  top-1", step, steps,
            tl, vl);
    for (int j = 0; j < k; j++)
        fprintf(stderr, " %.3f", top1[j]);
    fprintf(stderr, "  (%.0f s)\n", cli_now() - pr->t0);
    return 0;
}

static int on_merge(void *user, int64_t merges, int64_t total)
{
    struct prog *pr = user;
    if (pr->tty && (merges % 64 == 0 || merges == total))
        fprintf(stderr, "\r\033[Kbitlens train: merge %" PRId64 "/%" PRId64 " (%.1f s)", merges, total,
                cli_now() - pr->t0);
    return 0;
}

/* The output file must not exist (unless --force) and its directory must
 * take it: say so before the work. */
static void check_output(const char *output, int force)
{
    struct stat sb;
    if (!force && stat(output, &sb) == 0)
        cli_die("%s exists: --force replaces it", output);
    const char *slash = strrchr(output, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - output) + (slash == output) : 1, slash ? output : ".");
    if (access(dir, W_OK) != 0)
        cli_die("%s: cannot write in %s: %s", output, dir, strerror(errno));
}

/* bitlens train --tokenizer */
static int train_tokenizer(const char *corpus, const char *output, const struct bl_tokenizer_train_params *tp,
                           int force)
{
    if (!corpus)
        cli_usage("--corpus TEXT is required");
    check_output(output, force);
    size_t n;
    char *text = cli_slurp(corpus, (size_t)1 << 30, &n);
    struct prog pr = {cli_now(), !cli_quiet && cli_stderr_tty()};
    struct bl_tokenizer_train_params p = *tp;
    p.progress = on_merge;
    p.progress_user = &pr;
    bl_err err = {0};
    bl_tokenizer *t;
    if (bl_tokenizer_train(&t, text, n, &p, &err))
        cli_die("%s: %s", corpus, err.msg);
    double secs = cli_now() - pr.t0;
    if (pr.tty)
        fputs("\r\033[K", stderr);
    bl_gguf_writer *w = bl_gguf_writer_alloc();
    if (!w || bl_gguf_writer_set_str(w, "general.architecture", "llama") ||
        bl_gguf_writer_set_str(w, "general.name", "bitlens BPE vocabulary") || bl_tokenizer_write_gguf(t, w, 0))
        cli_die("out of memory");
    if (bl_gguf_writer_write(w, output, &err))
        cli_die("%s", err.msg);
    bl_gguf_writer_free(w);
    if (!cli_quiet) {
        /* bytes per token over the first MiB (whole lines) */
        size_t m = n < ((size_t)1 << 20) ? n : (size_t)1 << 20;
        while (m < n && m > 0 && text[m - 1] != '\n')
            m--;
        int64_t nid = 0;
        int32_t *ids = malloc((3 * m + 8) * sizeof *ids);
        if (ids && bl_tokenizer_encode(t, text, m, 0, ids, (int64_t)(3 * m + 8), &nid) == 0)
            fprintf(stderr, "bitlens train: %s: %" PRId64 " tokens (asked %" PRId64 ") from %zu bytes of %s in %.1f s; "
                            "%.2f bytes per token on its first %zu bytes\n",
                    output, bl_tokenizer_n_vocab(t), tp->vocab, n, corpus, secs, nid ? (double)m / nid : 0.0, m);
        free(ids);
    }
    bl_tokenizer_free(t);
    free(text);
    return 0;
}

static int on_model_step(void *user, int64_t step, int64_t steps, double tl, double vl)
{
    struct prog *pr = user;
    if (cli_quiet)
        return 0;
    if (step == 0)
        fprintf(stderr, "bitlens train: step %6" PRId64 "/%" PRId64 "  held-out %.4f nats (the start)\n", step, steps,
                vl);
    else
        fprintf(stderr, "bitlens train: step %6" PRId64 "/%" PRId64 "  train %.4f  held-out %.4f nats  (%.0f s)\n",
                step, steps, tl, vl, cli_now() - pr->t0);
    return 0;
}

/* bitlens train --model */
static int train_model(const char *corpus, const char *vocab_path, const char *output,
                       const struct bl_tokenizer_train_params *tkp, const struct bl_model_train_config *cfg,
                       const struct bl_model_train_params *mtp, int force)
{
    if (!corpus)
        cli_usage("--corpus TEXT is required");
    check_output(output, force);
    size_t n;
    char *text = cli_slurp(corpus, (size_t)1 << 30, &n);
    bl_err err = {0};
    bl_tokenizer *tok = NULL;
    struct prog pr = {cli_now(), !cli_quiet && cli_stderr_tty()};
    if (vocab_path) {
        bl_gguf *g;
        if (bl_gguf_open(&g, vocab_path, &err) || bl_tokenizer_from_gguf(&tok, g, &err))
            cli_die("%s", err.msg);
        bl_gguf_free(g);
    } else {
        struct bl_tokenizer_train_params p = *tkp;
        p.progress = on_merge;
        p.progress_user = &pr;
        if (bl_tokenizer_train(&tok, text, n, &p, &err))
            cli_die("%s: %s", corpus, err.msg);
        if (pr.tty)
            fputs("\r\033[K", stderr);
        if (!cli_quiet)
            fprintf(stderr, "bitlens train: a vocabulary of %" PRId64 " tokens trained on %s in %.1f s\n",
                    bl_tokenizer_n_vocab(tok), corpus, cli_now() - pr.t0);
    }
    /* the corpus as one text after BOS, encoded as the vocabulary was trained */
    int64_t cap = 3 * (int64_t)n + 8, nid = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids)
        cli_die("out of memory");
    double t0 = cli_now();
    if (bl_tokenizer_encode(tok, text, n, BL_TOK_BOS, ids, cap, &nid))
        cli_die("%s: cannot encode %zu bytes", corpus, n);
    if (!cli_quiet)
        fprintf(stderr, "bitlens train: %s: %zu bytes, %" PRId64 " tokens (%.2f bytes per token) in %.1f s\n", corpus, n,
                nid, nid ? (double)n / nid : 0.0, cli_now() - t0);
    free(text);
    struct bl_model_train_params p = *mtp;
    p.progress = on_model_step;
    p.progress_user = &pr;
    if (cli_verbose)
        fprintf(stderr, "bitlens train: llama, dim %" PRId64 ", %" PRId64 " layers, %" PRId64 " heads, hidden %" PRId64
                        ", context %" PRId64 ", %" PRId64 " parameters; %" PRId64 " steps of %" PRId64 " x %" PRId64
                        " tokens\n",
                cfg->dim, cfg->n_layers, cfg->n_heads, cfg->hidden_dim, cfg->n_ctx,
                bl_model_train_n_params(cfg, bl_tokenizer_n_vocab(tok)), p.steps, p.batch, p.seq);
    pr.t0 = cli_now();
    struct bl_model_train_stats st;
    if (bl_model_train(tok, ids, nid, cfg, &p, output, &st, &err))
        cli_die("%s", err.msg);
    if (!cli_quiet)
        fprintf(stderr, "bitlens train: %s: %" PRId64 " parameters, %" PRId64 " steps (%" PRId64 " tokens) in %.0f s, "
                        "%.0f tokens/s; held-out loss %.4f nats (%.4f at the start) on %" PRId64 " tokens\n",
                output, st.n_params, st.steps, st.tokens, st.seconds, st.tokens_per_second, st.valid_loss,
                st.valid_loss_start, st.n_valid_tokens);
    free(ids);
    bl_tokenizer_free(tok);
    return 0;
}

int cmd_train(int argc, char **argv)
{
    const char *model_path = NULL, *corpus = NULL, *output = "drafter.gguf";
    struct bl_model_params mp = bl_model_default_params();
    struct bl_drafter_config cfg = {0};
    struct bl_drafter_data_params dp = bl_drafter_data_default_params();
    struct bl_drafter_train_params tp = bl_drafter_train_default_params();
    int64_t n_prompts_max = 0, valid_every = 10;
    int threads = 0, force = 0, opt, have_kind = 0, have_width = 0;
    cfg.kind = BL_DRAFTER_MEDUSA;
    cfg.n_heads = 4;
    cfg.n_blocks = 1;
    tp.steps = 3000;
    tp.eval_every = 250;

    struct bl_tokenizer_train_params tkp = bl_tokenizer_train_default_params();
    struct bl_model_train_config mcfg = bl_model_train_default_config();
    struct bl_model_train_params mtp = bl_model_train_default_params();
    int tokenizer_mode = 0, model_mode = 0, have_output = 0, have_vocab_opts = 0, have_model_opts = 0;
    const char *heads_arg = NULL;
    /* `--tokenizer` or `--model` with no value (the end, or an option next)
     * is the mode; with a value it is -z's or -m's long form */
    for (int i = 1; i < argc; i++) {
        int tk = strcmp(argv[i], "--tokenizer") == 0, md = strcmp(argv[i], "--model") == 0;
        if ((tk || md) && (i + 1 == argc || argv[i + 1][0] == '-')) {
            tokenizer_mode |= tk;
            model_mode |= md;
            for (int j = i; j + 1 < argc; j++)
                argv[j] = argv[j + 1];
            argc--;
            i--;
        }
    }
    if (tokenizer_mode && model_mode)
        cli_usage("--tokenizer or --model, not both (--model trains its vocabulary too)");
    /* the options the drafter and the model share (--steps ... --seed) set
     * the parameters of the one being trained */

    optind = 0;   /* a fresh scan: glibc reinitializes its state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:z:o:qvh", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_DRAFTER:
            if (strcmp(optarg, "medusa") == 0)
                cfg.kind = BL_DRAFTER_MEDUSA;
            else if (strcmp(optarg, "eagle") == 0)
                cfg.kind = BL_DRAFTER_EAGLE;
            else
                cli_usage("--drafter '%s': medusa or eagle", optarg);
            have_kind = 1;
            break;
        case 'm': model_path = optarg; break;
        case 'z': mp.tokenizer_path = optarg; break;
        case OPT_CORPUS: corpus = optarg; break;
        case 'o':
            output = optarg;
            have_output = 1;
            break;
        case OPT_VOCAB:
            tkp.vocab = cli_int("--vocab", optarg, 260, 1 << 24);
            have_vocab_opts = 1;
            break;
        case OPT_MAX_PIECE:
            tkp.max_piece_bytes = cli_int("--max-piece", optarg, 4, 1024);
            have_vocab_opts = 1;
            break;
        case OPT_NO_SPACE_PREFIX:
            tkp.add_space_prefix = 0;
            have_vocab_opts = 1;
            break;
        case OPT_HEADS: heads_arg = optarg; break;
        case OPT_DIM: mcfg.dim = cli_int("--dim", optarg, 2, 1 << 16); have_model_opts = 1; break;
        case OPT_LAYERS: mcfg.n_layers = cli_int("--layers", optarg, 1, 1024); have_model_opts = 1; break;
        case OPT_HIDDEN: mcfg.hidden_dim = cli_int("--hidden", optarg, 1, 1 << 20); have_model_opts = 1; break;
        case OPT_CTX: mcfg.n_ctx = cli_int("--ctx", optarg, 2, 1 << 20); have_model_opts = 1; break;
        case OPT_SEQ: mtp.seq = cli_int("--seq", optarg, 1, 65536); have_model_opts = 1; break;
        case OPT_VALID_FRACTION:
            mtp.valid_fraction = cli_float("--valid-fraction", optarg, 0, 0.99);
            have_model_opts = 1;
            break;
        case OPT_BLOCKS: cfg.n_blocks = (int)cli_int("--blocks", optarg, 1, BL_DRAFTER_MAX_BLOCKS); break;
        case OPT_WIDTH:
            cfg.width = cli_int("--width", optarg, 0, BL_DRAFTER_MAX_WIDTH);
            have_width = 1;
            break;
        case OPT_HOOK:
            if (strlen(optarg) >= sizeof cfg.hook)
                cli_usage("--hook '%s': too long", optarg);
            snprintf(cfg.hook, sizeof cfg.hook, "%s", optarg);
            break;
        case OPT_TARGETS:
            if (strcmp(optarg, "self") == 0)
                dp.targets = BL_TARGETS_SELF;
            else if (strcmp(optarg, "corpus") == 0)
                dp.targets = BL_TARGETS_CORPUS;
            else
                cli_usage("--targets '%s': self or corpus", optarg);
            break;
        case OPT_PROMPTS: n_prompts_max = cli_int("--prompts", optarg, 0, INT32_MAX); break;
        case OPT_PROMPT_TOKENS: dp.max_prompt = cli_int("--prompt-tokens", optarg, 1, 1 << 20); break;
        case OPT_GEN: dp.n_gen = cli_int("--gen", optarg, 1, 1 << 20); break;
        case OPT_VALID_EVERY: valid_every = cli_int("--valid-every", optarg, 0, INT32_MAX); break;
        case OPT_STEPS: *(model_mode ? &mtp.steps : &tp.steps) = cli_int("--steps", optarg, 0, INT64_C(1) << 40); break;
        case OPT_BATCH: *(model_mode ? &mtp.batch : &tp.batch) = cli_int("--batch", optarg, 1, 1 << 20); break;
        case OPT_LR: *(model_mode ? &mtp.lr : &tp.lr) = (float)cli_float("--lr", optarg, 1e-12, 10); break;
        case OPT_WD: *(model_mode ? &mtp.weight_decay : &tp.weight_decay) = (float)cli_float("--weight-decay", optarg, 0, 10); break;
        case OPT_CLIP: *(model_mode ? &mtp.clip : &tp.clip) = (float)cli_float("--clip", optarg, 0, 1e9); break;
        case OPT_WARMUP: *(model_mode ? &mtp.warmup : &tp.warmup) = cli_int("--warmup", optarg, 0, INT64_C(1) << 40); break;
        case OPT_EVAL_EVERY: *(model_mode ? &mtp.eval_every : &tp.eval_every) = cli_int("--eval-every", optarg, 0, INT64_C(1) << 40); break;
        case OPT_SEED: *(model_mode ? &mtp.seed : &tp.seed) = cli_u64("--seed", optarg); break;
        case OPT_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case OPT_FORCE: force = 1; break;
        case 'q': cli_quiet = 1; break;
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: cli_bad_option(opt, argv);
        }
    }
    if (optind < argc)
        cli_usage("unexpected argument '%s'", argv[optind]);
    if (model_mode) {
        if (have_kind || model_path || n_prompts_max || have_width)
            cli_usage("--model trains a model from scratch: no --drafter, -m, --prompts or --width");
        if (heads_arg)
            mcfg.n_heads = cli_int("--heads", heads_arg, 1, 1024);
        if (threads)
            bl_set_threads(threads);
        mtp.n_threads = threads;
        tkp.n_threads = threads;
        return train_model(corpus, mp.tokenizer_path, have_output ? output : "model.gguf", &tkp, &mcfg, &mtp, force);
    }
    if (have_model_opts)
        cli_usage("--dim, --layers, --hidden, --ctx, --seq and --valid-fraction are for --model");
    if (heads_arg)
        cfg.n_heads = (int)cli_int("--heads", heads_arg, 1, BL_DRAFTER_MAX_HEADS);
    if (tokenizer_mode) {
        if (have_kind || model_path || mp.tokenizer_path)
            cli_usage("--tokenizer trains a vocabulary: no --drafter, -m or -z");
        if (threads)
            bl_set_threads(threads);
        tkp.n_threads = threads;
        return train_tokenizer(corpus, have_output ? output : "tokenizer.gguf", &tkp, force);
    }
    if (have_vocab_opts)
        cli_usage("--vocab, --max-piece and --no-space-prefix are for --tokenizer");
    if (!have_kind)
        cli_usage("--drafter medusa|eagle (or --tokenizer) is required");
    if (!corpus)
        cli_usage("--corpus TEXT is required");
    model_path = cli_default_model(model_path, mp.tokenizer_path);
    check_output(output, force);
    dp.k = cfg.n_heads;
    dp.hook = cfg.hook[0] ? cfg.hook : BL_DRAFTER_DEFAULT_HOOK;
    dp.n_threads = threads;
    tp.n_threads = threads;

    bl_err err = {0};
    bl_model *model;
    if (bl_model_load(&model, model_path, &mp, &err))
        cli_die("%s", err.msg);
    if (!have_width)
        cfg.width = 4 * bl_model_config(model)->dim > BL_DRAFTER_MAX_WIDTH ? BL_DRAFTER_MAX_WIDTH
                                                                          : 4 * bl_model_config(model)->dim;
    int64_t n_prompts;
    char **prompts = paragraphs(corpus, n_prompts_max, &n_prompts);
    if (n_prompts < 2)
        cli_die("%s: %" PRId64 " paragraph(s): at least 2 are needed (one to hold out)", corpus, n_prompts);

    struct prog pr = {cli_now(), !cli_quiet && cli_stderr_tty()};
    bl_drafter *d;
    if (bl_drafter_new(&d, model, &cfg, tp.seed, &err))
        cli_die("%s", err.msg);
    const struct bl_drafter_config *c = bl_drafter_config(d);
    if (cli_verbose)
        fprintf(stderr, "bitlens train: %s drafter, %d heads of %d block(s), width %" PRId64 " (%" PRId64
                        " parameters), reading %s of %s (d %" PRId64 ")\n",
                c->kind == BL_DRAFTER_MEDUSA ? "medusa" : "eagle", c->n_heads, c->n_blocks,
                c->width ? c->width : c->d, bl_drafter_n_params(d), c->hook, model_path, c->d);

    struct bl_drafter_data data;
    dp.progress = on_data;
    dp.progress_user = &pr;
    double t_data = cli_now();
    if (bl_drafter_data_build(model, (const char *const *)prompts, n_prompts, &dp, &data, &err))
        cli_die("%s", err.msg);
    t_data = cli_now() - t_data;
    if (pr.tty)
        fputs("\r\033[K", stderr);
    unsigned char *valid = calloc((size_t)(data.n ? data.n : 1), 1);
    if (!valid)
        cli_die("out of memory");
    int64_t n_valid = 0;
    for (int64_t i = 0; i < data.n; i++) {
        valid[i] = valid_every > 0 && data.seq[i] % valid_every == valid_every - 1;
        n_valid += valid[i];
    }
    if (n_valid == 0 && !cli_quiet)
        cli_warn("no prompt held out (%" PRId64 " prompts, --valid-every %" PRId64 "): no held-out figures", n_prompts,
                 valid_every);
    if (!cli_quiet)
        fprintf(stderr, "bitlens train: %" PRId64 " prompts of %s, %" PRId64 " rows (%s targets) in %.1f s\n",
                n_prompts, corpus, data.n, dp.targets == BL_TARGETS_SELF ? "self-distilled" : "corpus", t_data);

    tp.progress = on_step;
    tp.progress_user = &pr;
    struct bl_drafter_train_stats st;
    if (bl_drafter_train(d, &data, valid, &tp, &st, &err))
        cli_die("%s", err.msg);
    if (bl_drafter_save(d, output, &err))
        cli_die("%s", err.msg);
    if (!cli_quiet) {
        fprintf(stderr, "bitlens train: %s: %" PRId64 " step%s in %.1f s on %" PRId64 " rows", output, st.steps,
                st.steps == 1 ? "" : "s", st.seconds, st.n_train);
        if (st.steps > 0 && st.n_valid > 0) {
            fprintf(stderr, "; held-out (%" PRId64 " rows) loss %.4f nats, top-1 per head", st.n_valid, st.valid_loss);
            for (int j = 0; j < c->n_heads; j++)
                fprintf(stderr, " %.3f", st.top1[j]);
        }
        fputc('\n', stderr);
        struct bl_drafter_sim sim;
        if (st.steps > 0 && st.n_valid > 0 && dp.targets == BL_TARGETS_SELF &&
            bl_drafter_simulate(d, &data, valid, &sim, &err) == 0)
            fprintf(stderr, "bitlens train: held-out decoding in verify mode (simulated on %" PRId64 " continuations): "
                            "%.3f tokens per model pass (%" PRId64 " tokens, %" PRId64 " passes)\n",
                    sim.sequences, sim.tokens_per_pass, sim.tokens, sim.passes);
    }
    free(valid);
    bl_drafter_data_release(&data);
    bl_drafter_free(d);
    for (int64_t i = 0; i < n_prompts; i++)
        free(prompts[i]);
    free(prompts);
    bl_model_free(model);
    return 0;
}
