/* bitlens/tokenizer.h: the tokenizers of the model families bitlens runs.
 *
 * Two kinds of BPE, chosen by the source:
 *
 * SentencePiece-style BPE with byte fallback (llama2.c tokenizer.bin, GGUF
 * `tokenizer.ggml.model` "llama", and a tokenizer.json converted from a
 * SentencePiece model: Llama 2, TinyLlama).  Encoding follows llama2.c's
 * run.c and llama.cpp's SPM tokenizer (they agree): spaces become U+2581 "▁"
 * (llama2.c vocabularies store a plain space instead; both are handled), a
 * dummy "▁" is prepended to non-empty text, the text is split into UTF-8
 * characters, and the adjacent pair whose concatenation is the
 * highest-scoring vocabulary piece is merged, leftmost first on ties, until
 * no pair is in the vocabulary.  A tokenizer.json has no scores but an
 * ordered merge list: there the pair of lowest merge rank merges first, as
 * Hugging Face's BPE model does.  Characters missing from the vocabulary
 * become byte tokens <0xXX> (or the unknown token if there is none).
 *
 * Byte-level BPE (GPT-2: OpenAI's encoder.json + vocab.bpe, GGUF "gpt2",
 * a tokenizer.json with a ByteLevel pre-tokenizer: GPT-2, SmolLM2, Qwen2,
 * Llama 3).  A pre-tokenizer regex (PCRE2, Unicode classes) cuts the text
 * into pieces; each piece is spelled with the GPT-2 byte-to-unicode
 * alphabet, one symbol per byte, and the adjacent pair of lowest merge rank
 * merges first, leftmost on ties.  Every byte has its token (a vocabulary
 * without one is BL_EFORMAT), so decoding gives back exactly the bytes
 * encoded (unless a tokenizer.json Split removes some), and a text of n
 * bytes never gives more than n ids, plus BOS/EOS and, with ByteLevel
 * add_prefix_space, the space put before each fragment.  Pre-tokenizers (GGUF
 * `tokenizer.ggml.pre`): "default" or absent and "gpt-2" (the GPT-2 regex),
 * "llama-bpe" (also "llama3", "llama-v3": Llama 3's regex; a piece that is
 * a token is taken whole), "qwen2", "smollm" (digits one by one, then the
 * GPT-2 regex) and "tekken" (Mistral Nemo).
 *
 * Text that is not valid UTF-8: a byte-level tokenizer matches its regexes
 * with PCRE2_MATCH_INVALID_UTF, so an invalid sequence never matches a
 * character class; each run of them becomes a piece of its own, and its
 * bytes are encoded (and decoded) like any others.  SentencePiece-style
 * tokenizers cut a stray lead byte short at the next byte that is not a
 * continuation byte and spell it with byte tokens.  Each regex search runs
 * under a PCRE2 match limit of 1 000 000 steps plus 16 per byte of the
 * piece left (the regexes above need a few per byte); a regex from a
 * tokenizer.json that needs more (one that backtracks without end) stops
 * cutting that piece there, and the rest of it is one piece.
 *
 * tokenizer.json (Hugging Face tokenizers): model.type "BPE" with
 *   - pre_tokenizer ByteLevel {add_prefix_space, use_regex}, Split
 *     {pattern {Regex | String}, behavior, invert}, Digits
 *     {individual_digits}, or a Sequence of them with ByteLevel last;
 *     decoder ByteLevel; merges as "a b" strings or [a, b] pairs;
 *     ignore_merges; or
 *   - normalizer Prepend("▁") + Replace(" ", "▁") (or pre_tokenizer
 *     Metaspace {replacement "▁", prepend_scheme, split}), byte_fallback,
 *     <0xXX> byte tokens, decoder Replace/ByteFallback/Fuse/Strip; it
 *     needs an unk_token, or byte_fallback with all 256 byte tokens.
 *   A normalizer NFC is accepted and does nothing: bitlens assumes the text
 *   is already in NFC (ASCII and most text is).  added_tokens become control
 *   (special: true) or user-defined tokens; their lstrip, rstrip,
 *   single_word and normalized flags are ignored.  BOS and EOS come from a
 *   tokenizer_config.json in the same directory (bos_token, eos_token,
 *   add_bos_token, add_eos_token), else from the post_processor
 *   (TemplateProcessing, RobertaProcessing, BertProcessing), else from the
 *   usual names (<s>, </s>, <|endoftext|>, <|begin_of_text|>,
 *   <|end_of_text|>).  Other model types (WordPiece, Unigram, WordLevel),
 *   normalizers and pre-tokenizers are BL_EUNSUPPORTED, naming the type.
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
#define BL_TOK_BOS 1u       /* prepend the BOS token */
#define BL_TOK_EOS 2u       /* append the EOS token */
#define BL_TOK_SPECIAL 4u   /* text spelling a control, user-defined or unknown
                               token ("<|endoftext|>", "<s>") is that token: the
                               text is cut around them first (the leftmost match,
                               the longest at a position).  Without it, such text
                               is ordinary text. */

/* Load a llama2.c tokenizer.bin holding exactly n_vocab tokens (a file with
 * fewer or more is BL_EMISMATCH: it belongs to another model). */
int bl_tokenizer_load_llama2c(bl_tokenizer **out, const char *path, int64_t n_vocab,
                              bl_err *err);

/* Build the tokenizer of a GGUF file (copies what it needs; the GGUF handle
 * may be freed afterwards).  `tokenizer.ggml.model` "llama" (tokens,
 * scores, token_type) or "gpt2" (tokens, token_type, merges "a b", pre);
 * both: bos/eos/unknown/padding ids (0xFFFFFFFF or -1: none; "llama"
 * defaults to 1, 2 and 0 when absent), add_bos_token, add_eos_token,
 * add_space_prefix.  A vocabulary without tokens, a gpt2 one without merges,
 * or merges naming a string that is not a token are BL_EFORMAT; another
 * model or an unknown pre-tokenizer is BL_EUNSUPPORTED, naming it.  (For
 * "gpt2", add_space_prefix true puts a space before the text as a ByteLevel
 * add_prefix_space does; llama.cpp ignores that key there.) */
int bl_tokenizer_from_gguf(bl_tokenizer **out, const bl_gguf *g, bl_err *err);

/* OpenAI's GPT-2 files: encoder.json (a JSON object token -> id) and
 * vocab.bpe (a "#version" comment line, then one merge "a b" per line).
 * "<|endoftext|>" is a control token and both BOS and EOS; the pre-tokenizer
 * is the GPT-2 regex; no BOS is added to prompts. */
int bl_tokenizer_load_gpt2(bl_tokenizer **out, const char *encoder_json, const char *vocab_bpe,
                           bl_err *err);

/* A Hugging Face tokenizer.json (see above for what is supported), and
 * tokenizer_config.json beside it if there is one.  Malformed JSON or a
 * field of the wrong type is BL_EFORMAT with the file and the JSON path
 * ("tokenizer.json: model.merges[12]: not a string or a pair"). */
int bl_tokenizer_load_hf(bl_tokenizer **out, const char *tokenizer_json, bl_err *err);

/* The same from memory: `json` (len bytes) is the tokenizer.json, `config`
 * (config_len bytes, or NULL) the tokenizer_config.json; `name` is used in
 * messages.  Nothing is kept. */
int bl_tokenizer_load_hf_memory(bl_tokenizer **out, const char *json, size_t len,
                                const char *config, size_t config_len, const char *name,
                                bl_err *err);

void bl_tokenizer_free(bl_tokenizer *t);

int64_t bl_tokenizer_n_vocab(const bl_tokenizer *t);
int32_t bl_tokenizer_bos(const bl_tokenizer *t);   /* -1 if none */
int32_t bl_tokenizer_eos(const bl_tokenizer *t);   /* -1 if none */
/* "llama" (SentencePiece-style), "llama2.c" (the same, from a
 * tokenizer.bin) or "gpt2" (byte-level BPE).  A static string. */
const char *bl_tokenizer_model(const bl_tokenizer *t);
int bl_tokenizer_kind(const bl_tokenizer *t, int32_t id);   /* enum bl_token_kind */
float bl_tokenizer_score(const bl_tokenizer *t, int32_t id); /* 0 where the source has none */

/* Whether the vocabulary wants BOS at the start of a prompt (and EOS at its
 * end): llama2.c and SentencePiece vocabularies yes (no EOS); GPT-2's
 * encoder.json no; GGUF and tokenizer.json as the file says.  The caller
 * passes BL_TOK_BOS / BL_TOK_EOS accordingly. */
int bl_tokenizer_add_bos(const bl_tokenizer *t);
int bl_tokenizer_add_eos(const bl_tokenizer *t);

/* The vocabulary string of `id` as stored (byte tokens read "<0x0A>",
 * byte-level tokens "Ġthe").  *len receives its length.  Owned by the
 * tokenizer. */
const char *bl_tokenizer_piece(const bl_tokenizer *t, int32_t id, size_t *len);

/* Encode `len` bytes of text into ids[0..cap-1]; *n_ids receives the count.
 * If cap is too small, returns BL_ERANGE with *n_ids the count needed (the
 * first cap ids are written).  The count never exceeds 3 * len + 5: in a
 * SentencePiece vocabulary a space becomes "▁", three bytes, and a
 * vocabulary without it spells each byte as a byte token, plus the dummy
 * prefix (after a special token the prefix is only added if "▁" is a token,
 * so it costs at most one id), BOS and EOS; byte-level BPE gives at most
 * one id per byte plus the prefix space.  A text of 2^30 bytes or more is
 * BL_ERANGE.  Thread-safe: encoding never writes to the tokenizer. */
int bl_tokenizer_encode(const bl_tokenizer *t, const char *text, size_t len, unsigned flags,
                        int32_t *ids, int64_t cap, int64_t *n_ids);

/* The bytes `id` stands for when it follows `prev` (-1 at the start):
 * control tokens are empty, user-defined tokens are their text; in a
 * SentencePiece vocabulary "▁" becomes a space, byte tokens become their
 * byte, and the leading space of the first piece after BOS is dropped (as
 * SentencePiece decoding does); in a byte-level vocabulary each character
 * of the GPT-2 alphabet becomes its byte (a piece holding other characters
 * is its own text).  Writes at most cap bytes to buf, returns the number of
 * bytes of the piece (which may exceed cap; never more than the piece's
 * length, or 1). */
size_t bl_tokenizer_decode(const bl_tokenizer *t, int32_t prev, int32_t id, char *buf,
                           size_t cap);

/* Write the tokenizer.ggml.* keys (model, pre, tokens, scores, token_type,
 * merges, bos/eos/unknown/padding ids, add_bos_token, add_eos_token,
 * add_space_prefix) so that bl_tokenizer_from_gguf() on the written file
 * encodes as t does.  A llama2.c vocabulary is written with "▁" for its
 * spaces (so text holding U+2581 itself encodes differently after the
 * trip); a tokenizer.json of the SentencePiece kind as "llama" with scores
 * made from its merge ranks (minus the rank of the first merge giving each
 * piece), which encodes the same where merge order and piece order agree,
 * as in any file a SentencePiece converter writes.  BL_EUNSUPPORTED if t cannot be written so (a Metaspace
 * pre-tokenizer, a regex pre-tokenizer no GGUF name stands for); BL_ENOMEM.
 * n_rows > the vocabulary size pads the token list to n_rows entries with
 * placeholders "[PAD<id>]" of kind BL_TOKEN_UNUSED, for an embedding with
 * more rows than the vocabulary has tokens (Qwen2, many GPT-2 finetunes);
 * 0 writes the vocabulary as it is. */
int bl_tokenizer_write_gguf(const bl_tokenizer *t, bl_gguf_writer *w, int64_t n_rows);

/* ---- training a vocabulary */

struct bl_tokenizer_train_params {
    int64_t vocab;            /* tokens in all, the 3 special and 256 byte tokens
                                 and "▁" included: 260 to 16777216 (scores stay
                                 exact in float32); default 1024 */
    int64_t max_piece_bytes;  /* longest merged piece in bytes, 4 to 1024 (a
                                 character is at most 4); default 16 */
    int add_space_prefix;     /* SentencePiece's dummy prefix: the text starts with
                                 "▁" as if it began with a space; the tokenizer
                                 keeps the setting for encoding; default 1 */
    int n_threads;            /* threads counting the words; 0 = OMP_NUM_THREADS if
                                 set, else the number of processors.  The
                                 vocabulary does not depend on it; default 0 */
    /* called after each merge with the merges made and the merges planned
     * (vocab minus the special, byte and character tokens); nonzero stops
     * the training, which returns BL_ESTOPPED.  May be NULL. */
    int (*progress)(void *user, int64_t merges, int64_t total);
    void *progress_user;
};

struct bl_tokenizer_train_params bl_tokenizer_train_default_params(void);

/* Train a SentencePiece-style BPE vocabulary with byte fallback on the n
 * bytes of text (any bytes, NUL included; read during the call only) with
 * the parameters p (NULL: the defaults), such that bl_tokenizer_encode()
 * segments the training text exactly as the training did.
 *
 * The vocabulary: id 0 "<unk>" (unknown), 1 "<s>" (BOS, control), 2 "</s>"
 * (EOS, control), 3..258 "<0x00>".."<0xFF>" (BL_TOKEN_BYTE, score 0); then
 * the characters of the text, most frequent first (ties: by their UTF-8
 * bytes), as many as make up 99.99% of its characters (fewer if the
 * vocabulary has no room), a space counted as "▁", and "▁" always (in its
 * place, or last if it would not be kept: as byte tokens it would decode
 * as itself, not as a space); then the merged pieces in the order they
 * were made.  Merge r (from 0) scores -r, and with M merges the i-th
 * character (from 0) -(M + i), as SentencePiece numbers them, so the
 * encoder's best-score-first order is the merge order.  Characters
 * outside the vocabulary, U+0000 and bytes that are not valid UTF-8 are
 * left to byte fallback and never merged.  The tokenizer is "llama", adds
 * BOS to prompts, keeps add_space_prefix, and can be written with
 * bl_tokenizer_write_gguf().
 *
 * Words: the text as the encoder sees it ("▁" for each space, and at the
 * start with add_space_prefix) is cut before every "▁" (a U+2581 in the
 * text counts as one) and around every run of tab, newline, vertical tab,
 * form feed and carriage return: " the cat\n\nsat" gives "▁the", "▁cat",
 * "\n\n", "sat".  Note that a word after a newline has no "▁": a corpus of
 * documents or lines should be encoded as it was trained on, the whole
 * text at once.  Pieces never span two words.
 *
 * Merging: the frequencies of the distinct words are counted once; then,
 * until the vocabulary is full, the two adjacent pieces whose
 * concatenation occurs most often in the words become one piece (ties: the
 * concatenation first in byte order), at most max_piece_bytes long, never
 * one that is, begins or ends a special or byte token's spelling ("<s",
 * "0x41>"), since the encoder would turn that text into that token.  Each
 * merge segments the words as bl_tokenizer_encode() would with the pieces
 * so far (every adjacent pair forming the new piece merges, leftmost first,
 * and so does any pair it brings together that forms an earlier piece), so
 * that the counts are those of the encoder's own segmentation.  When no
 * pair is left (a short or empty text) the vocabulary is smaller than
 * `vocab`: an empty text gives the 259 special and byte tokens and "▁".  The
 * result depends only on the text and vocab, max_piece_bytes and
 * add_space_prefix.
 *
 * *out owns the new tokenizer (free it with bl_tokenizer_free()), NULL on
 * failure.  BL_EINVAL (a parameter out of range, or NULL text with n > 0),
 * BL_ERANGE (distinct words of 2^31 characters or more in all),
 * BL_ESTOPPED, BL_ENOMEM; err says which. */
int bl_tokenizer_train(bl_tokenizer **out, const char *text, size_t n,
                       const struct bl_tokenizer_train_params *p, bl_err *err);

#ifdef __cplusplus
}
#endif
#endif
