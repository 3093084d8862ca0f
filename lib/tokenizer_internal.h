/* lib/tokenizer_internal.h: the tokenizer object, shared by lib/tokenizer.c
 * (the public entry points, SentencePiece with scores, llama2.c and GGUF
 * vocabularies, special tokens, decoding, the GGUF writer) and
 * lib/tokenizer_bpe.c (merges by rank, regex pre-tokenizers, byte-level
 * BPE, encoder.json + vocab.bpe and tokenizer.json).  Not installed; the
 * symbols are bli_tok_ and not exported.
 *
 * Three encoders share one vocabulary representation:
 *
 *   BLI_ALGO_SCORES  SentencePiece BPE: the adjacent pair whose concatenation
 *                    is the best-scoring piece merges first (llama2.c
 *                    tokenizer.bin, GGUF "llama");
 *   BLI_ALGO_MERGES  the same text handling ("▁" for spaces, byte fallback),
 *                    but the pair of lowest merge rank merges first (a
 *                    tokenizer.json of the SentencePiece-converted kind);
 *   BLI_ALGO_BYTES   byte-level BPE: a regex pre-tokenizer cuts the text into
 *                    pieces, each piece starts as one symbol per byte (the
 *                    GPT-2 byte-to-unicode alphabet) and merges by rank
 *                    (encoder.json + vocab.bpe, GGUF "gpt2", tokenizer.json
 *                    with a ByteLevel pre-tokenizer).
 */
#ifndef BITLENS_TOKENIZER_INTERNAL_H
#define BITLENS_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <bitlens/tokenizer.h>

enum bli_tok_algo {
    BLI_ALGO_SCORES = 0,
    BLI_ALGO_MERGES = 1,
    BLI_ALGO_BYTES = 2
};

/* How a split step treats the spans its pattern matches (Hugging Face's
 * SplitDelimiterBehavior). */
enum bli_split_behavior {
    BLI_SPLIT_REMOVED = 0,      /* dropped */
    BLI_SPLIT_ISOLATED = 1,     /* pieces of their own */
    BLI_SPLIT_MERGED_PREV = 2,  /* appended to the piece before */
    BLI_SPLIT_MERGED_NEXT = 3,  /* prepended to the piece after */
    BLI_SPLIT_CONTIGUOUS = 4    /* adjacent matches form one piece */
};

#define BLI_MAX_SPLITS 8

/* One pre-tokenizer step: every piece is cut where `re` matches. */
struct bli_split {
    pcre2_code *re;       /* compiled with UTF, UCP and MATCH_INVALID_UTF (JIT if it can) */
    char *pattern;        /* the source, NUL-terminated (kept to name the step) */
    int literal;          /* pattern is a plain string, not a regex */
    int behavior;         /* enum bli_split_behavior */
    int invert;           /* the pattern matches the pieces, not the delimiters */
};

/* A merge rule in the pair table: key = (left + 1) << 32 | right, 0 = empty. */
struct bli_pair {
    uint64_t key;
    int32_t rank;         /* its position in the merges list: lower merges first */
    int32_t id;           /* the token the pair becomes */
};

struct bl_tokenizer {
    /* ---- the vocabulary */
    int64_t n;
    char **piece;           /* NUL-terminated copies as stored in the source */
    uint32_t *len;
    float *score;
    uint8_t *kind;          /* enum bl_token_kind */
    int16_t *byte_val;      /* byte tokens <0xXX>: their byte; else -1 */
    int32_t byte_id[256];   /* id of the token <0xXX>, or -1 */
    int32_t bos, eos, unk, pad;   /* -1 if none */
    int add_bos, add_eos;   /* what the vocabulary asks for at the ends of a prompt */
    char model[16];         /* "llama", "llama2.c", "gpt2" */
    int algo;               /* enum bli_tok_algo */
    uint32_t *ht;           /* pieces as stored; open addressing: id + 1, 0 = empty */
    size_t ht_mask;

    /* ---- SentencePiece text handling (SCORES, MERGES) */
    int add_space_prefix;   /* prepend a space to the text */
    int prefix_first;       /* ... only at the start of the text, not after a special token */
    int prefix_unless_space;/* ... only if the text does not already start with one */
    const char *space;      /* how the vocabulary writes a space: "▁" or " " */
    size_t space_len;
    int space_is_token;     /* `space` alone is a token */

    /* ---- merges (MERGES, BYTES) */
    int64_t n_merges;
    int32_t *merge_left;    /* [n_merges]: the two halves of merge r */
    int32_t *merge_right;
    int32_t *merge_id;      /*     and the token they become */
    struct bli_pair *pairs; /* (left, right) -> rank, result */
    size_t pairs_mask;
    int ignore_merges;      /* a piece that is a token is taken whole (Llama 3) */
    int byte_fallback;      /* MERGES: a character outside the vocabulary becomes
                               its <0xXX> tokens (else the unknown token) */
    int fuse_unk;           /* MERGES: adjacent unknown characters give one unknown token */

    /* ---- byte-level (BYTES) */
    int32_t byte_tok[256];  /* the token spelling byte b in the GPT-2 alphabet */
    char *raw;              /* the bytes each token stands for, concatenated */
    uint32_t *raw_off;      /* [n] offset into raw; raw_len UINT32_MAX: the piece */
    uint32_t *raw_len;      /*     holds characters outside the alphabet */
    uint32_t *rht;          /* index over the raw bytes, like ht */
    size_t rht_mask;
    int prefix_space;       /* ByteLevel add_prefix_space: a ' ' before each text
                               fragment that does not start with one */

    /* ---- pre-tokenizer (BYTES; MERGES for a Metaspace that splits) */
    char pre[32];           /* GGUF tokenizer.ggml.pre naming it, "" if none does */
    int n_splits;
    struct bli_split split[BLI_MAX_SPLITS];

    /* ---- special tokens (BL_TOK_SPECIAL): control, user-defined and
     * unknown tokens, sorted by their bytes */
    int32_t *special;
    int64_t n_special;
    uint32_t special_first[8];   /* bit set of their first bytes */
};

/* Work space of one bl_tokenizer_encode() call (the tokenizer itself is
 * never written while encoding). */
struct bli_sym {
    int32_t prev, next;     /* neighbours, -1 at the ends */
    int32_t id;             /* token id (BYTES, MERGES), or -1 */
    uint32_t start, len;    /* bytes of the piece; len 0 = merged away */
};

/* A candidate merge in the heap: lowest key first, then leftmost.  The key
 * is the rank (MERGES, BYTES) or minus the score (SCORES). */
struct bli_bigram {
    double key;
    int32_t left, right;    /* symbol indices */
    int32_t lid, rid;       /* their ids when pushed (BYTES, MERGES), to detect stale entries */
    int32_t id;             /* the result (BYTES, MERGES) */
    uint32_t len;           /* bytes of the result, to detect stale entries (SCORES) */
};

static inline int bli_bigram_before(const struct bli_bigram *a, const struct bli_bigram *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

/* The heap holds at most 3 entries per symbol: one per initial pair and two
 * per merge; the caller sizes it so. */
static inline void bli_heap_push(struct bli_bigram *h, size_t *n, struct bli_bigram b)
{
    size_t i = (*n)++;
    h[i] = b;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bli_bigram_before(&h[i], &h[p]))
            break;
        struct bli_bigram tmp = h[i];
        h[i] = h[p];
        h[p] = tmp;
        i = p;
    }
}

static inline struct bli_bigram bli_heap_pop(struct bli_bigram *h, size_t *n)
{
    struct bli_bigram top = h[0];
    h[0] = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && bli_bigram_before(&h[l], &h[m]))
            m = l;
        if (r < *n && bli_bigram_before(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        struct bli_bigram tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
    return top;
}

struct bli_out {
    int32_t *ids;
    int64_t cap, n;
};

struct bli_ws {
    struct bli_sym *sym;
    size_t sym_cap;
    struct bli_bigram *heap;
    size_t heap_cap;
    char *buf;              /* a fragment with its prefix */
    size_t buf_cap;
    pcre2_match_data *md;
    pcre2_match_context *mctx;   /* with a larger JIT stack, made on demand */
    pcre2_jit_stack *jit;
};

static inline void bli_emit(struct bli_out *o, int32_t id)
{
    if (o->n < o->cap)
        o->ids[o->n] = id;
    o->n++;
}

/* ---- lib/tokenizer.c */
uint64_t bli_tok_hash(const char *s, size_t n);
/* id of the piece s[0..n-1] as stored, or -1 */
int32_t bli_tok_lookup(const bl_tokenizer *t, const char *s, size_t n);
/* An empty tokenizer of n tokens (all fields allocated, ids -1). */
bl_tokenizer *bli_tok_alloc(int64_t n);
/* After pieces, kinds and ids are in: byte tables, the index, the special
 * token list.  strict: a piece that appears twice is an error (returned as
 * BL_EFORMAT with *dup its id); else the later one wins. */
int bli_tok_finish(bl_tokenizer *t, int kinds_known, int strict, int64_t *dup);

/* ---- lib/tokenizer_bpe.c */
void bli_tok_free_bpe(bl_tokenizer *t);
/* The GPT-2 byte-to-unicode alphabet: the UTF-8 of the character standing
 * for byte b (1 or 2 bytes) into out; returns its length. */
size_t bli_tok_byte_char(unsigned b, char out[2]);
/* Build the merge table from n merges given as (left, right) id pairs; the
 * result of each must be a token: the id is found by concatenation. */
int bli_tok_set_merges(bl_tokenizer *t, const int32_t *left, const int32_t *right, int64_t n,
                       const char *name, const char *what, bl_err *err);
/* Set up the byte-level tables (raw bytes, the index over them, byte_tok);
 * every byte must have its token. */
int bli_tok_setup_bytes(bl_tokenizer *t, const char *name, bl_err *err);
/* Pre-tokenizer of a GGUF tokenizer.ggml.pre name ("" or NULL: default). */
int bli_tok_set_pre(bl_tokenizer *t, const char *pre, size_t pre_len, const char *name,
                    bl_err *err);
/* Add a split step. */
int bli_tok_add_split(bl_tokenizer *t, const char *pattern, size_t len, int literal, int behavior,
                      int invert, const char *name, const char *path, bl_err *err);
/* Encode one text fragment with a merges encoder (MERGES or BYTES). */
int bli_tok_encode_bpe(const bl_tokenizer *t, const char *text, size_t len, int at_start,
                       struct bli_out *o, struct bli_ws *ws);
void bli_tok_ws_release(struct bli_ws *ws);
/* Grow the work space to hold n symbols (and their bigrams) and a buffer of
 * nbuf bytes. */
int bli_tok_ws_reserve(struct bli_ws *ws, size_t n, size_t nbuf);
/* The GGUF pre name matching the tokenizer's splits and ignore_merges, or NULL. */
const char *bli_tok_pre_name(const bl_tokenizer *t);

/* ---- lib/tokenizer_train.c */
/* Each distinct training word after training: spelled as the encoder sees
 * it ("▁" for the space), its count in the text, and the ids its
 * segmentation gives (a character outside the vocabulary as its byte
 * tokens).  Nonzero stops the listing. */
typedef int (*bli_tok_word_fn)(void *user, const char *word, size_t len, int64_t count,
                               const int32_t *ids, int64_t n_ids);
/* bl_tokenizer_train(), and for the tests, if fn is not NULL, fn called for
 * every distinct word, in the order of first occurrence (BL_ESTOPPED, and
 * no tokenizer, if it stops). */
int bli_tok_train(bl_tokenizer **out, const char *text, size_t n,
                  const struct bl_tokenizer_train_params *p, bli_tok_word_fn fn, void *user,
                  bl_err *err);

#endif
