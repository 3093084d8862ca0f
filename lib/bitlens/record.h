/* bitlens/record.h: `bitlens record`: run prompts through a model with
 * probes attached and write what they see to a trace (bitlens/trace.h).
 *
 * Each prompt is tokenized (BOS where the vocabulary wants it), evaluated
 * teacher-forced in one batch, then N tokens are sampled one at a time.
 * Position t of a prompt holds token x_t; its next-token distribution p_t
 * is over x_{t+1}, the next prompt token or the sampled one.  Positions
 * 0 .. P+N-2 are evaluated (the last sampled token is not); with N = 0 the
 * last prompt position is evaluated too and has no next token (-1).
 *
 * Probes (probes/ in the source tree):
 *   - tensors: every hook point matching the globs, rows stored as f32,
 *     f16 or bf16 (TENS chunks);
 *   - token statistics at every evaluated position (STAT): entropy of p_t in
 *     bits at T = 1 and at the sampling temperature, surprisal -log2 p_t of
 *     the next token, its rank (1 = most probable) and probability, the
 *     top-k ids and probabilities;
 *   - logit lens (LENS): each block's resid_post through the final norm and
 *     the unembedding: entropy in bits, cross-entropy of the next token in
 *     bits, and KL(p_t || lens) in bits, so full logits are never stored.
 *
 * Chunk payloads, little-endian, after decompression:
 *   PRMT  uint32 prompt, uint32 n_ids, uint32 text_len, uint32 0,
 *         int32 ids[n_ids], char text[text_len]          (a prompt begins)
 *   TOKS  uint32 prompt, uint32 0, uint64 pos0, uint64 n,
 *         int32 token[n], uint8 sampled[n], uint32 text_end[n],
 *         char text[]    (tokens at pos0..; token i decodes to the bytes
 *                         text[text_end[i-1] .. text_end[i]), as the
 *                         tokenizer prints it after the token before)
 *   STAT  uint32 prompt, uint32 k, uint64 pos0, uint64 n, then n rows of
 *         int32 token, int32 next, float entropy, float entropy_t,
 *         float surprisal, int32 rank, float prob, int32 top_id[k],
 *         float top_p[k]                                 (28 + 8k bytes)
 *   TENS  uint32 prompt, uint32 hook, uint32 dtype, uint32 0, uint64 pos0,
 *         uint64 n, uint64 width, then n x width elements of dtype
 *         (hook: index into the header's recorded.hooks)
 *   LENS  uint32 prompt, uint32 n_layers, uint64 pos0, uint64 n, then
 *         n x n_layers x {float entropy, float cross_entropy, float kl}
 *   DRFT  uint32 prompt, uint32 K, uint64 pos0, uint64 n, then n rows of
 *         K x {int32 token, float entropy, float surprisal, int32 rank}
 *         (16 K bytes; head j of the row of position t drafts x_{t+1+j})
 * The header's "recorded" object names the hooks (name, kind, layer,
 * width; head for a drafter's), the dtype, top_k, whether the lens was
 * taken, n_layers, n_vocab (the tokens the statistics run over), n_ctx and
 * the drafter (null without one); "sampling" holds the temperature, top_k,
 * top_p, seed and n_gen.
 *
 * With a drafter (bitlens/drafter.h), at every evaluated position t (the
 * positions with STAT rows) the drafter reads the row of its hook at t and
 * its K heads draft x_{t+2} .. x_{t+1+K}.  Head j's row of a DRFT record:
 *   token      its argmax over the n_vocab tokens (ties: the lower id)
 *   entropy    of the softmax of its logits, bits
 *   surprisal  -log2 q_j(x_{t+1+j}) of the token actually at t+1+j, bits
 *              (NaN where the sequence ends before t+1+j)
 *   rank       of that token, 0 for the argmax (ties: lower ids first),
 *              -1 where it is not known
 * The drafter's own tensors are hook points for --hooks like the model's:
 *   drafter.heads.J.hook_hidden   [d]        head J's last hidden state
 *   drafter.heads.J.hook_logits   [n_vocab]  its logits
 * listed in recorded.hooks after the model's, head by head, with kind
 * BL_TRACE_HOOK_DRAFTER_HIDDEN or _LOGITS, layer -1 and "head": J.
 */
#ifndef BITLENS_RECORD_H
#define BITLENS_RECORD_H

#include <bitlens/common.h>
#include <bitlens/drafter.h>
#include <bitlens/model.h>
#include <bitlens/sampler.h>
#include <bitlens/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BL_CHUNK_PROMPT BL_FOURCC('P', 'R', 'M', 'T')
#define BL_CHUNK_TOKENS BL_FOURCC('T', 'O', 'K', 'S')
#define BL_CHUNK_STATS BL_FOURCC('S', 'T', 'A', 'T')
#define BL_CHUNK_TENSOR BL_FOURCC('T', 'E', 'N', 'S')
#define BL_CHUNK_LENS BL_FOURCC('L', 'E', 'N', 'S')
#define BL_CHUNK_DRAFTER BL_FOURCC('D', 'R', 'F', 'T')

/* Hook kinds of a drafter's tensors in recorded.hooks: fixed numbers past
 * the model's kinds (enum bl_hook_kind, <bitlens/ctx.h>), so that a kind
 * added there never takes them. */
#define BL_TRACE_HOOK_DRAFTER_HIDDEN 64
#define BL_TRACE_HOOK_DRAFTER_LOGITS 65

/* 1 if `kind` may appear in recorded.hooks: a model hook kind or one of
 * the drafter's above. */
int bl_trace_hook_kind_valid(int kind);

/* The hooks recorded by default, and those a drafter adds to them when no
 * hooks are chosen (bitlens record --drafter without --hooks). */
#define BL_RECORD_DEFAULT_HOOKS "blocks.*.hook_resid_post"
#define BL_RECORD_DRAFTER_HOOKS "drafter.heads.*.hook_hidden"

struct bl_record_params {
    const char *hooks;        /* comma-separated globs of hook points to store;
                                 NULL or "" for none; default
                                 "blocks.*.hook_resid_post" */
    int dtype;                /* BL_F32, BL_F16 (default) or BL_BF16 */
    int top_k;                /* ids and probabilities kept per position (10) */
    int lens;                 /* 1: logit lens at each resid_post (default 1) */
    int64_t n_gen;            /* tokens generated after each prompt (0) */
    struct bl_sampler_params sampling;
    int64_t n_ctx;            /* context cap; 0: prompt + n_gen */
    int n_threads;            /* 0: OMP_NUM_THREADS or all processors */
    int hash;                 /* 1: sha256 of the weights file(s) in the header */
    const char *command_line; /* for the header; may be NULL */
    /* a drafter run at every evaluated position (DRFT records, and its
     * hook points for `hooks`): `drafter` (borrowed; it must be for
     * `model`), or when it is NULL the file `drafter_path`, loaded for the
     * model (BL_EMISMATCH naming both when it was made for another).
     * drafter_path names the file in the header (and is hashed there
     * unless hash is 0); it may be NULL with `drafter` given.  An
     * EAGLE-style drafter drafts at position t from the window of the
     * prompt's positions max(0, t - 15) .. t; its head J is its J-th
     * drafting step. */
    const bl_drafter *drafter;
    const char *drafter_path;
    /* progress: called after each evaluation with the index of the prompt
     * being recorded (n_prompts when all are done) and the positions so
     * far; nonzero stops (BL_ESTOPPED) */
    int (*progress)(void *user, int64_t prompt, int64_t n_prompts, int64_t positions);
    void *progress_user;
};

struct bl_record_params bl_record_default_params(void);

/* Summary of a finished recording. */
struct bl_record_stats {
    int64_t prompts, positions, tensor_values;
    int64_t cut_short;           /* prompts whose generation stopped at a full
                                    context before N tokens */
    uint64_t trace_bytes;
    uint64_t tensor_bytes_raw;   /* stored tensor values, before compression */
    int64_t drafter_rows;        /* DRFT rows (positions drafted from) */
};

/* Record prompts[0..n-1] through `model` into a trace at `out_path` ("-"
 * for standard output; BL_TRACE_FORCE replaces a file).  A failure leaves
 * no file behind.  stats may be NULL. */
int bl_record(const bl_model *model, const char *const *prompts, int64_t n, const struct bl_record_params *p,
              const char *out_path, unsigned trace_flags, struct bl_record_stats *stats, bl_err *err);

/* ---- reading the records back (validated: every size against the
 * chunk's length; BL_EFORMAT with a message otherwise).  The typed
 * pointers (ids, rows) read the little-endian payload in place, as every
 * host bitlens builds on is little-endian (configure checks). */

struct bl_rec_prompt {
    uint32_t prompt, n_ids, text_len;
    const int32_t *ids;       /* n_ids ids */
    const char *text;         /* not NUL-terminated */
};

struct bl_rec_tokens {
    uint32_t prompt;
    uint64_t pos0, n;
    const unsigned char *token;    /* n int32, little-endian */
    const unsigned char *sampled;  /* n uint8 */
    const unsigned char *text_end; /* n uint32, little-endian, non-decreasing */
    const char *text;              /* text_end[n-1] bytes */
};

/* Token i of a TOKS record: its id, whether it was sampled, and its text
 * (not NUL-terminated, *len bytes). */
int32_t bl_rec_token(const struct bl_rec_tokens *t, uint64_t i, int *sampled, const char **text, size_t *len);

struct bl_rec_stat_row {
    int32_t token, next;
    float entropy, entropy_t, surprisal;
    int32_t rank;
    float prob;
};

struct bl_rec_stats {
    uint32_t prompt, k;
    uint64_t pos0, n;
    const unsigned char *rows;     /* n rows of 28 + 8k bytes */
};

struct bl_rec_tensor {
    uint32_t prompt, hook, dtype;
    uint64_t pos0, n, width;
    const void *data;              /* n x width elements of dtype */
};

struct bl_rec_lens {
    uint32_t prompt, n_layers;
    uint64_t pos0, n;
    const float *rows;             /* n x n_layers x 3 floats */
};

#define BL_REC_DRAFTER_HEAD_BYTES 16

struct bl_rec_drafter {
    uint32_t prompt, k;            /* k: heads, 1..BL_DRAFTER_MAX_HEADS */
    uint64_t pos0, n;
    const unsigned char *rows;     /* n rows of k x 16 bytes */
};

/* Head j of a DRFT row (see above). */
struct bl_rec_drafter_head {
    int32_t token;                 /* the head's argmax */
    float entropy;                 /* bits */
    float surprisal;               /* bits of the actual token; NaN: unknown */
    int32_t rank;                  /* of the actual token, 0-based; -1: unknown */
};

int bl_rec_parse_prompt(const struct bl_trace_chunk *c, struct bl_rec_prompt *out, bl_err *err);
int bl_rec_parse_tokens(const struct bl_trace_chunk *c, struct bl_rec_tokens *out, bl_err *err);
int bl_rec_parse_stats(const struct bl_trace_chunk *c, struct bl_rec_stats *out, bl_err *err);
int bl_rec_parse_tensor(const struct bl_trace_chunk *c, struct bl_rec_tensor *out, bl_err *err);
int bl_rec_parse_lens(const struct bl_trace_chunk *c, struct bl_rec_lens *out, bl_err *err);
int bl_rec_parse_drafter(const struct bl_trace_chunk *c, struct bl_rec_drafter *out, bl_err *err);

/* Row i of a DRFT record: its k heads into heads[0..k-1]. */
void bl_rec_drafter_row(const struct bl_rec_drafter *d, uint64_t i, struct bl_rec_drafter_head *heads);

/* ---- the header, parsed and checked (every field the analyzers use) */

struct bl_trace_hook {
    const char *name;
    int kind;                      /* enum bl_hook_kind, or
                                      BL_TRACE_HOOK_DRAFTER_HIDDEN / _LOGITS */
    int layer;                     /* block, -1 outside the blocks */
    int64_t width;                 /* values per row; -1: attention rows of
                                      n_heads x n_ctx, padded */
    int head;                      /* a drafter's hook: its head, 1..K; else 0 */
};

struct bl_trace_meta {
    int64_t n_prompts;
    int dtype;                     /* of the TENS data: BL_F32, BL_F16, BL_BF16 */
    int top_k, lens;
    int64_t n_layers, n_vocab, n_ctx;
    int64_t n_hooks;
    struct bl_trace_hook *hooks;   /* [n_hooks] */
    const char *model_path, *model_name, *model_arch;
    const char *model_sha256;      /* of the first model file, NULL if not hashed */
    int64_t dim, n_heads;          /* model.config */
    double temperature;            /* sampling.temperature */
    int64_t n_gen;                 /* sampling.n_gen */
    /* recorded.drafter; drafter_heads 0 when there is none */
    int drafter_heads;             /* K */
    const char *drafter_kind;      /* "medusa" or "eagle" */
    const char *drafter_hook;      /* the model's hook it reads */
    const char *drafter_path;      /* NULL if not recorded */
    const char *drafter_sha256;    /* NULL if not hashed */
    void *json;                    /* owns the strings above */
};

/* Parse the header of r: BL_EFORMAT naming the trace and the field when one
 * is missing or out of range.  Release with bl_trace_meta_release(). */
int bl_trace_meta_read(const bl_trace_reader *r, struct bl_trace_meta *out, bl_err *err);
void bl_trace_meta_release(struct bl_trace_meta *m);

/* Row i of a STAT chunk; top_id/top_p (k entries each) may be NULL. */
void bl_rec_stat_row(const struct bl_rec_stats *s, uint64_t i, struct bl_rec_stat_row *row, int32_t *top_id,
                     float *top_p);

#ifdef __cplusplus
}
#endif
#endif
