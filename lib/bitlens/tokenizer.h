/* bitlens/tokenizer.h: SentencePiece-style BPE with scores and byte fallback.
 *
 * Encoding follows llama2.c's run.c and llama.cpp's SPM tokenizer (they
 * agree): spaces become U+2581 "▁" (llama2.c vocabularies store a plain
 * space instead; both are handled), a dummy "▁" is prepended to non-empty
 * text, the text is split into UTF-8 characters, and the adjacent pair whose
 * concatenation is the highest-scoring vocabulary piece is merged, leftmost
 * first on ties, until no pair is in the vocabulary.  Characters missing from
 * the vocabulary become byte tokens <0xXX>.
 *
 * Sources: a llama2.c tokenizer.bin (int32 max_token_length, then per token a
 * float32 score, an int32 length and the bytes) or a GGUF file whose
 * `tokenizer.ggml.model` is "llama".
 */
#ifndef BITLENS_TOKENIZER_H
#define BITLENS_TOKENIZER_H

#include <bitlens/common.h>
#include <bitlens/gguf.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_tokenizer bl_tokenizer;

/* Token kinds (GGUF tokenizer.ggml.token_type values). */
enum bl_token_kind {
    BL_TOKEN_NORMAL = 1,
    BL_TOKEN_UNKNOWN = 2,
    BL_TOKEN_CONTROL = 3,
    BL_TOKEN_USER = 4,
    BL_TOKEN_UNUSED = 5,
    BL_TOKEN_BYTE = 6
};

/* Flags of bl_tokenizer_encode(). */
#define BL_TOK_BOS 1u   /* prepend the BOS token */
#define BL_TOK_EOS 2u   /* append the EOS token */

/* Load a llama2.c tokenizer.bin holding exactly n_vocab tokens (a file with
 * fewer or more is BL_EMISMATCH: it belongs to another model). */
int bl_tokenizer_load_llama2c(bl_tokenizer **out, const char *path, int64_t n_vocab,
                              bl_err *err);

/* Build the tokenizer of a GGUF file (copies what it needs; the GGUF handle
 * may be freed afterwards). */
int bl_tokenizer_from_gguf(bl_tokenizer **out, const bl_gguf *g, bl_err *err);

void bl_tokenizer_free(bl_tokenizer *t);

int64_t bl_tokenizer_n_vocab(const bl_tokenizer *t);
int32_t bl_tokenizer_bos(const bl_tokenizer *t);   /* -1 if none */
int32_t bl_tokenizer_eos(const bl_tokenizer *t);   /* -1 if none */
const char *bl_tokenizer_model(const bl_tokenizer *t);  /* "llama" */
int bl_tokenizer_kind(const bl_tokenizer *t, int32_t id);   /* enum bl_token_kind */
float bl_tokenizer_score(const bl_tokenizer *t, int32_t id);

/* The vocabulary string of `id` as stored (byte tokens read "<0x0A>");
 * *len receives its length.  Owned by the tokenizer. */
const char *bl_tokenizer_piece(const bl_tokenizer *t, int32_t id, size_t *len);

/* Encode `len` bytes of text into ids[0..cap-1]; *n_ids receives the count.
 * If cap is too small, returns BL_ERANGE with *n_ids the count needed (the
 * first cap ids are written).  The count never exceeds 3 * len + 5: a
 * space becomes "▁", three bytes, and a vocabulary without it spells each
 * byte as a byte token; plus the dummy prefix, BOS and EOS. */
int bl_tokenizer_encode(const bl_tokenizer *t, const char *text, size_t len, unsigned flags,
                        int32_t *ids, int64_t cap, int64_t *n_ids);

/* The bytes `id` stands for when it follows `prev` (-1 at the start):
 * "▁" becomes a space, byte tokens become their byte, control tokens are
 * empty, and the leading space of the first piece after BOS is dropped (as
 * SentencePiece decoding does).  Writes at most cap bytes to buf, returns
 * the number of bytes of the piece (which may exceed cap). */
size_t bl_tokenizer_decode(const bl_tokenizer *t, int32_t prev, int32_t id, char *buf,
                           size_t cap);

#ifdef __cplusplus
}
#endif
#endif
