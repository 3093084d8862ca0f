/* lib/tokenizer_train.c: training a SentencePiece-style BPE vocabulary with
 * byte fallback (bl_tokenizer_train(), see bitlens/tokenizer.h).
 *
 * The words.  The text is cut into words as the encoder would see it (a
 * "▁" for each space, the dummy prefix), and the distinct words are
 * counted in a hash table, in parallel over chunks of the text that start
 * at a space (each chunk's table keeps its words in the order they first
 * occur, and the tables are merged in chunk order, so the result does not
 * depend on the number of threads).
 *
 * The symbols.  Every distinct word becomes a run of slots, one per
 * character (split as lib/tokenizer.c splits text into symbols), linked
 * both ways; a merge makes the left slot the merged piece and unlinks the
 * right one.  A slot holds a piece id (characters first, then merged
 * pieces), NONE for a character left to byte fallback (never merged), or
 * DEAD once absorbed.
 *
 * The candidates.  Each string that two adjacent symbols concatenate to
 * (at most max_piece_bytes long) is a candidate, with how often it occurs
 * (the word counts summed over its occurrences) and a list of the left
 * slots where it was seen (not pruned: an entry is checked when used).
 * Counts are updated at each merge for the pairs around it only.  A max-heap
 * of (count, candidate), ties by the candidate's bytes, gives the next
 * merge; it is kept lazily: a count that rises is pushed again at the end of
 * the merge, an entry whose count has since dropped is pushed again with its
 * present count when it surfaces.
 *
 * The merge.  The encoder (lib/tokenizer.c, encode_scores) merges, best
 * score first and leftmost on ties, any adjacent pair whose concatenation is
 * a piece, whatever two pieces it is made of.  With the words segmented as
 * the encoder would with the pieces so far, adding piece r (the worst score
 * yet) changes a word only where two adjacent symbols concatenate to it:
 * the encoder merges those, leftmost first, and after each, any pair the
 * merge brings together that concatenates to an earlier piece (which comes
 * first).  A heap in the encoder's order (struct bli_bigram: rank, then the
 * position of the left symbol) replays exactly that over the occurrences of
 * the new piece, so the trainer's segmentation is the encoder's, and the
 * counts are counts of what the encoder will produce.  Usually that is the
 * classic BPE update (every occurrence of the chosen pair merges, left to
 * right); the two differ only where one string can be cut into two pieces
 * in more than one way. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/tokenizer.h>
#include "internal.h"
#include "tokenizer_internal.h"

#define N_FIXED 259                      /* <unk>, <s>, </s>, <0x00>..<0xFF> */
#define MAX_VOCAB ((int64_t)1 << 24)     /* -rank stays exact in a float */
#define MAX_PIECE 1024
#define MIN_CHUNK 65536                  /* bytes of text per counting thread, at least */
#define NONE (-1)                        /* slot: a character left to byte fallback */
#define DEAD (-2)                        /* slot: absorbed by the symbol on its left */

static const char SPACE[] = "\xe2\x96\x81";   /* U+2581, how the encoder writes a space */

/* ------------------------------------------------------------ characters */

/* The length of the symbol at p (n > 0 bytes left): the length its lead
 * byte gives, cut short at the end or at the first byte that is not a
 * continuation byte.  It must cut as encode_scores() in lib/tokenizer.c
 * does (the round-trip and segmentation tests check it). */
static size_t sym_len(const unsigned char *p, size_t n)
{
    static const unsigned char lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t cl = lead_len[p[0] >> 4];
    if (cl > n)
        cl = n;
    for (size_t k = 1; k < cl; k++)
        if ((p[k] & 0xc0) != 0x80)
            return k;
    return cl;
}

/* 1 if the symbol p[0..n) (continuation bytes checked by sym_len) is a
 * valid UTF-8 character other than U+0000: shortest form, no surrogate,
 * at most U+10FFFF.  Anything else is left to byte fallback, so that every
 * piece is valid UTF-8. */
static int valid_char(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    switch (n) {
    case 1: return c >= 0x01 && c < 0x80;
    case 2: return c >= 0xc2 && c <= 0xdf;
    case 3: return c >= 0xe0 && c <= 0xef && !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
    case 4: return c >= 0xf0 && c <= 0xf4 && !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
    default: return 0;
    }
}

/* The bytes of a character as a number, big-endian and zero-padded, so
 * that numbers order as the bytes do. */
static uint32_t char_key(const unsigned char *p, size_t n)
{
    uint32_t k = 0;
    for (size_t i = 0; i < 4; i++)
        k = k << 8 | (i < n ? p[i] : 0u);
    return k;
}

enum { C_TEXT, C_SPACE, C_BREAK };

/* a space (or U+2581) starts a word; tab, newline, vertical tab, form feed
 * and carriage return make runs of their own */
static int sym_class(const unsigned char *p, size_t n)
{
    if (n == 3 && memcmp(p, SPACE, 3) == 0)
        return C_SPACE;
    if (n != 1)
        return C_TEXT;
    if (p[0] == ' ')
        return C_SPACE;
    return p[0] == '\t' || p[0] == '\n' || p[0] == '\v' || p[0] == '\f' || p[0] == '\r' ? C_BREAK : C_TEXT;
}

/* 1 if s[0..n) (n >= 2) is the spelling of a special or byte token, or a
 * part of one at its start or end: the encoder would merge "<s" and ">"
 * into the control token <s>, and text "<0x41>" into the byte token, and
 * decode them as something else than the text. */
static int special_part(const char *s, size_t n)
{
    static const char *const spec[3] = {"<unk>", "<s>", "</s>"};
    static const char pat[] = "<0xHH>";   /* H: a hex digit */
    if (s[0] != '<' && s[n - 1] != '>')
        return 0;
    for (int k = 0; k < 3; k++) {
        size_t m = strlen(spec[k]);
        if (n <= m && (memcmp(spec[k], s, n) == 0 || memcmp(spec[k] + m - n, s, n) == 0))
            return 1;
    }
    if (n > 6)
        return 0;
    for (int end = 0; end < 2; end++) {
        size_t at = end ? 6 - n : 0;
        size_t i = 0;
        for (; i < n; i++) {
            char c = s[i], q = pat[at + i];
            int hex = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
            if (q == 'H' ? !hex : c != q)
                break;
        }
        if (i == n)
            return 1;
    }
    return 0;
}

/* ----------------------------------------------------------------- words */

struct word {
    const char *p;      /* its characters after the "▁", in the text */
    size_t len;
    uint64_t hash;
    int64_t count;      /* occurrences in the text */
    int space;          /* starts with "▁" (a space, the dummy prefix or a U+2581) */
};

struct word_slot {
    uint64_t hash;
    int64_t i;          /* index + 1; 0 = empty */
};

/* Distinct words in the order of first occurrence, and a hash index. */
struct words {
    struct word *w;
    int64_t n, cap;
    struct word_slot *ht;
    size_t mask;        /* table size - 1; the table is empty when ht is NULL */
};

static void words_release(struct words *m)
{
    free(m->w);
    free(m->ht);
    memset(m, 0, sizeof *m);
}

static int words_add(struct words *m, const char *p, size_t len, int space, uint64_t h, int64_t count)
{
    if (!m->ht || (size_t)(m->n + 1) * 2 > m->mask + 1) {
        size_t cap = m->ht ? 2 * (m->mask + 1) : 1024;
        struct word_slot *ht = bli_calloc(cap, sizeof *ht);
        if (!ht)
            return BL_ENOMEM;
        for (int64_t i = 0; i < m->n; i++) {
            size_t j = (size_t)m->w[i].hash & (cap - 1);
            while (ht[j].i)
                j = (j + 1) & (cap - 1);
            ht[j] = (struct word_slot){m->w[i].hash, i + 1};
        }
        free(m->ht);
        m->ht = ht;
        m->mask = cap - 1;
    }
    size_t j = (size_t)h & m->mask;
    for (; m->ht[j].i; j = (j + 1) & m->mask) {
        if (m->ht[j].hash != h)
            continue;
        struct word *w = &m->w[m->ht[j].i - 1];
        if (w->len == len && w->space == space && memcmp(w->p, p, len) == 0) {
            w->count += count;
            return BL_OK;
        }
    }
    if (m->n == m->cap) {
        int64_t cap = m->cap ? 2 * m->cap : 1024;
        struct word *nw = realloc(m->w, (size_t)cap * sizeof *nw);
        if (!nw)
            return BL_ENOMEM;
        m->w = nw;
        m->cap = cap;
    }
    m->w[m->n] = (struct word){p, len, h, count, space};
    m->ht[j] = (struct word_slot){h, ++m->n};
    return BL_OK;
}

/* FNV-1a's low bits (the table index) depend on the low bits of its state
 * only: fold the high bits in. */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t word_hash(const char *p, size_t len, int space)
{
    return mix(bli_tok_hash(p, len) + (uint64_t)space);
}

/* Count the words of text[lo..hi) into m; prefix: the chunk starts with
 * the dummy "▁".  A chunk other than the first starts at a space. */
static int scan_words(struct words *m, const char *text, size_t lo, size_t hi, int prefix)
{
    const unsigned char *u = (const unsigned char *)text;
    size_t start = lo;
    int open = prefix, space = prefix, brk = 0, rc;
    for (size_t i = lo; i < hi;) {
        size_t cl = sym_len(u + i, hi - i);
        int c = sym_class(u + i, cl);
        if (open && (c == C_SPACE || (c == C_BREAK) != brk)) {
            if ((rc = words_add(m, text + start, i - start, space, word_hash(text + start, i - start, space), 1)))
                return rc;
            open = 0;
        }
        if (!open) {
            open = 1;
            space = c == C_SPACE;
            brk = c == C_BREAK;
            start = space ? i + cl : i;
        }
        i += cl;
    }
    if (open && (rc = words_add(m, text + start, hi - start, space, word_hash(text + start, hi - start, space), 1)))
        return rc;
    return BL_OK;
}

/* The distinct words of the text into *m, counted on nt threads. */
static int count_words(struct words *m, const char *text, size_t n, int prefix, int nt)
{
    size_t nchunk = (size_t)nt;
    if (nchunk > n / MIN_CHUNK)
        nchunk = n / MIN_CHUNK;
    if (nchunk <= 1)
        return n ? scan_words(m, text, 0, n, prefix) : BL_OK;
    size_t *cut = bli_malloc_array(nchunk + 1, sizeof *cut);
    struct words *part = bli_calloc(nchunk, sizeof *part);
    int rc = BL_OK;
    if (!cut || !part) {
        rc = BL_ENOMEM;
        goto done;
    }
    /* chunks start at a space: a word never spans two, and a symbol is
     * never cut (a space is always a symbol of its own) */
    cut[0] = 0;
    cut[nchunk] = n;
    for (size_t k = 1; k < nchunk; k++) {
        size_t c = n / nchunk * k;
        if (c < cut[k - 1])
            c = cut[k - 1];
        const char *sp = memchr(text + c, ' ', n - c);
        cut[k] = sp ? (size_t)(sp - text) : n;
    }
    int failed = 0;
#pragma omp parallel for num_threads(nt) schedule(static, 1) reduction(| : failed)
    for (int64_t k = 0; k < (int64_t)nchunk; k++)
        failed |= scan_words(&part[k], text, cut[k], cut[k + 1], k == 0 && prefix) != BL_OK;
    if (failed) {
        rc = BL_ENOMEM;
        goto done;
    }
    for (size_t k = 0; k < nchunk && !rc; k++)
        for (int64_t i = 0; i < part[k].n && !rc; i++) {
            const struct word *w = &part[k].w[i];
            rc = words_add(m, w->p, w->len, w->space, w->hash, w->count);
        }
done:
    if (part)
        for (size_t k = 0; k < nchunk; k++)
            words_release(&part[k]);
    free(part);
    free(cut);
    return rc;
}

/* --------------------------------------------------------------- trainer */

struct slot {
    int32_t id;         /* piece id, NONE or DEAD */
    int32_t prev, next; /* neighbours in the word, -1 at its ends */
    int32_t word;       /* index into words */
};

struct cand {
    size_t off;         /* its bytes in the arena */
    uint32_t len;
    uint32_t hash;      /* mix(bli_tok_hash()), low 32 bits */
    int32_t piece;      /* its piece id once merged, else -1 */
    int touched;        /* in the touched list */
    int64_t count;      /* adjacent occurrences in the words, times the word counts */
    int64_t pushed;     /* the count of its newest heap entry, 0 if none */
    int64_t pos;        /* head of its list of left slots (node index), -1 if none */
};

struct node {
    int32_t slot;
    int64_t next;       /* -1 at the end */
};

struct heap_ent {
    int64_t count;
    int32_t cand;
};

struct chr {
    uint32_t key;       /* char_key() */
    int32_t id;         /* piece id, or NONE */
    int64_t count;
};

struct trainer {
    int64_t max_len;            /* max_piece_bytes */
    struct words words;
    int32_t *first;             /* [words.n] first slot of each word */
    struct slot *slot;
    int64_t n_slot;

    /* characters: a table key -> index into chr */
    struct chr *chr;
    int64_t n_chr, chr_cap;
    int32_t *cht;               /* index + 1; 0 = empty */
    size_t cmask;

    /* pieces: the characters kept (ids 0 .. n_char - 1), then merges */
    int64_t n_char, n_piece;
    size_t *poff;               /* [max_piece] bytes in the arena */
    uint32_t *plen;
    char *arena;
    size_t arena_len, arena_cap;

    struct cand *cand;
    int64_t n_cand, cand_cap;
    int32_t *ht;                /* candidate index + 1; 0 = empty */
    size_t mask;
    struct node *node;
    int64_t n_node, node_cap, free_node;
    struct heap_ent *heap;      /* candidates, most frequent first */
    int64_t n_heap, heap_cap;
    int32_t *touched;           /* candidates whose count rose in this merge */
    int64_t n_touched, touched_cap;
    struct bli_bigram *step;    /* pairs to merge in this merge, encoder order */
    size_t n_step;
    int64_t step_cap;
};

static void trainer_release(struct trainer *tr)
{
    words_release(&tr->words);
    free(tr->first);
    free(tr->slot);
    free(tr->chr);
    free(tr->cht);
    free(tr->poff);
    free(tr->plen);
    free(tr->arena);
    free(tr->cand);
    free(tr->ht);
    free(tr->node);
    free(tr->heap);
    free(tr->touched);
    free(tr->step);
}

/* The array p (of *cap elements of size sz) grown to hold n: p itself,
 * or a new block (*cap updated), or NULL if out of memory (p unchanged). */
static void *grow(void *p, int64_t *cap, int64_t n, size_t sz)
{
    if (n <= *cap)
        return p;
    int64_t c = *cap ? *cap : 256;
    while (c < n)
        c *= 2;
    if ((uint64_t)c > SIZE_MAX / sz)
        return NULL;
    void *q = realloc(p, (size_t)c * sz);
    if (q)
        *cap = c;
    return q;
}

#define GROW(arr, cap, n)                                                     \
    do {                                                                      \
        void *q_ = grow((arr), &(cap), (n), sizeof *(arr));                   \
        if (!q_)                                                              \
            return BL_ENOMEM;                                                 \
        (arr) = q_;                                                           \
    } while (0)

static int arena_add(struct trainer *tr, const void *s, size_t n, size_t *off)
{
    if (tr->arena_len + n > tr->arena_cap) {
        size_t c = tr->arena_cap ? tr->arena_cap : 4096;
        while (c < tr->arena_len + n)
            c *= 2;
        char *a = realloc(tr->arena, c);
        if (!a)
            return BL_ENOMEM;
        tr->arena = a;
        tr->arena_cap = c;
    }
    memcpy(tr->arena + tr->arena_len, s, n);
    *off = tr->arena_len;
    tr->arena_len += n;
    return BL_OK;
}

/* ---- characters */

static int32_t chr_find(const struct trainer *tr, uint32_t key, size_t *at)
{
    size_t j = (size_t)mix(key) & tr->cmask;
    for (; tr->cht[j]; j = (j + 1) & tr->cmask)
        if (tr->chr[tr->cht[j] - 1].key == key)
            return tr->cht[j] - 1;
    *at = j;
    return -1;
}

static int chr_index(struct trainer *tr)
{
    size_t cap = 256;
    while (cap < (size_t)tr->n_chr * 2)
        cap <<= 1;
    free(tr->cht);
    if (!(tr->cht = bli_calloc(cap, sizeof *tr->cht)))
        return BL_ENOMEM;
    tr->cmask = cap - 1;
    for (int64_t i = 0; i < tr->n_chr; i++) {
        size_t at = 0;
        chr_find(tr, tr->chr[i].key, &at);
        tr->cht[at] = (int32_t)i + 1;
    }
    return BL_OK;
}

static int chr_add(struct trainer *tr, uint32_t key, int64_t count)
{
    size_t at = 0;
    int32_t i = chr_find(tr, key, &at);
    if (i >= 0) {
        tr->chr[i].count += count;
        return BL_OK;
    }
    GROW(tr->chr, tr->chr_cap, tr->n_chr + 1);
    tr->chr[tr->n_chr++] = (struct chr){key, NONE, count};
    if ((size_t)tr->n_chr * 2 > tr->cmask + 1)
        return chr_index(tr);
    tr->cht[at] = (int32_t)tr->n_chr;
    return BL_OK;
}

static int chr_before(const void *a, const void *b)
{
    const struct chr *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* The characters of the words, counted; the most frequent become pieces
 * 0 .. n_char - 1, until those left out make up at most 1/10000 of the
 * characters, or the vocabulary has no more room; and "▁". */
static int choose_chars(struct trainer *tr, int64_t room, int64_t *n_syms)
{
    int64_t total = 0;
    int rc;
    *n_syms = 0;
    if ((rc = chr_index(tr)))
        return rc;
    for (int64_t w = 0; w < tr->words.n; w++) {
        const struct word *wd = &tr->words.w[w];
        const unsigned char *p = (const unsigned char *)wd->p;
        int64_t syms = wd->space;
        if (wd->space && (rc = chr_add(tr, char_key((const unsigned char *)SPACE, 3), wd->count)))
            return rc;
        for (size_t i = 0; i < wd->len;) {
            size_t cl = sym_len(p + i, wd->len - i);
            if (valid_char(p + i, cl) && (rc = chr_add(tr, char_key(p + i, cl), wd->count)))
                return rc;
            i += cl;
            syms++;
        }
        total += syms * wd->count;
        *n_syms += syms;
    }
    if (tr->n_chr > 1)
        qsort(tr->chr, (size_t)tr->n_chr, sizeof *tr->chr, chr_before);
    int64_t kept = 0, cum = 0;
    while (kept < tr->n_chr && kept < room && total - cum > total / 10000)
        cum += tr->chr[kept++].count;
    /* "▁" is always kept, even if rare or absent: as byte tokens it would
     * decode as itself, not as a space */
    uint32_t sk = char_key((const unsigned char *)SPACE, 3);
    int64_t j = 0;   /* where "▁" is */
    while (j < tr->n_chr && tr->chr[j].key != sk)
        j++;
    if (j == tr->n_chr) {
        GROW(tr->chr, tr->chr_cap, tr->n_chr + 1);
        tr->chr[tr->n_chr++] = (struct chr){sk, NONE, 0};
    }
    if (j >= kept) {
        if (kept == room)
            kept--;
        /* in its place in the order: after the others kept */
        struct chr c = tr->chr[j];
        memmove(tr->chr + kept + 1, tr->chr + kept, (size_t)(j - kept) * sizeof c);
        tr->chr[kept++] = c;
    }
    tr->n_char = tr->n_piece = kept;
    /* room for the characters and the merges planned */
    tr->poff = bli_malloc_array((size_t)room, sizeof *tr->poff);
    tr->plen = bli_malloc_array((size_t)room, sizeof *tr->plen);
    if (!tr->poff || !tr->plen)
        return BL_ENOMEM;
    for (int64_t i = 0; i < kept; i++) {
        unsigned char b[4];
        uint32_t k = tr->chr[i].key;
        for (int q = 0; q < 4; q++)
            b[q] = (unsigned char)(k >> (24 - 8 * q));
        size_t n = sym_len(b, 4);
        if ((rc = arena_add(tr, b, n, &tr->poff[i])))
            return rc;
        tr->plen[i] = (uint32_t)n;
        tr->chr[i].id = (int32_t)i;
    }
    return chr_index(tr);   /* the order changed */
}

/* The piece id of the character p[0..n), or NONE. */
static int32_t char_id(const struct trainer *tr, const unsigned char *p, size_t n)
{
    size_t at = 0;
    if (!valid_char(p, n))
        return NONE;
    int32_t i = chr_find(tr, char_key(p, n), &at);
    return i >= 0 ? tr->chr[i].id : NONE;
}

/* One slot per character of each word, linked. */
static int build_slots(struct trainer *tr, int64_t n_syms)
{
    if (!(tr->slot = bli_malloc_array((size_t)n_syms + 1, sizeof *tr->slot)) ||
        !(tr->first = bli_malloc_array((size_t)tr->words.n + 1, sizeof *tr->first)))
        return BL_ENOMEM;
    const unsigned char *sp = (const unsigned char *)SPACE;
    int32_t s = 0;
    for (int64_t w = 0; w < tr->words.n; w++) {
        const struct word *wd = &tr->words.w[w];
        const unsigned char *p = (const unsigned char *)wd->p;
        tr->first[w] = s;
        if (wd->space) {
            tr->slot[s] = (struct slot){char_id(tr, sp, 3), s - 1, s + 1, (int32_t)w};
            s++;
        }
        for (size_t i = 0; i < wd->len;) {
            size_t cl = sym_len(p + i, wd->len - i);
            tr->slot[s] = (struct slot){char_id(tr, p + i, cl), s - 1, s + 1, (int32_t)w};
            s++;
            i += cl;
        }
        tr->slot[tr->first[w]].prev = -1;
        tr->slot[s - 1].next = -1;
    }
    tr->n_slot = s;
    return BL_OK;
}

/* ---- candidates */

static int32_t cand_find(const struct trainer *tr, const char *s, uint32_t len, uint32_t h, size_t *at)
{
    size_t j = (size_t)h & tr->mask;
    for (; tr->ht[j]; j = (j + 1) & tr->mask) {
        const struct cand *c = &tr->cand[tr->ht[j] - 1];
        if (c->hash == h && c->len == len && memcmp(tr->arena + c->off, s, len) == 0)
            return tr->ht[j] - 1;
    }
    *at = j;
    return -1;
}

static int cand_add(struct trainer *tr, const char *s, uint32_t len, uint32_t h, size_t at, int32_t *out)
{
    if (tr->n_cand >= INT32_MAX - 1)
        return BL_ERANGE;
    size_t off;
    GROW(tr->cand, tr->cand_cap, tr->n_cand + 1);
    if (arena_add(tr, s, len, &off))
        return BL_ENOMEM;
    int32_t e = (int32_t)tr->n_cand++;
    tr->cand[e] = (struct cand){off, len, h, -1, 0, 0, 0, -1};
    tr->ht[at] = e + 1;
    *out = e;
    if ((size_t)tr->n_cand * 2 > tr->mask + 1) {
        size_t cap = 2 * (tr->mask + 1);
        int32_t *ht = bli_calloc(cap, sizeof *ht);
        if (!ht)
            return BL_ENOMEM;
        for (int64_t i = 0; i < tr->n_cand; i++) {
            size_t j = (size_t)tr->cand[i].hash & (cap - 1);
            while (ht[j])
                j = (j + 1) & (cap - 1);
            ht[j] = (int32_t)i + 1;
        }
        free(tr->ht);
        tr->ht = ht;
        tr->mask = cap - 1;
    }
    return BL_OK;
}

/* candidate heap: highest count first, then the candidate's bytes */
static int cand_before(const struct trainer *tr, const struct heap_ent *x, const struct heap_ent *y)
{
    if (x->count != y->count)
        return x->count > y->count;
    const struct cand *a = &tr->cand[x->cand], *b = &tr->cand[y->cand];
    int d = memcmp(tr->arena + a->off, tr->arena + b->off, a->len < b->len ? a->len : b->len);
    if (d)
        return d < 0;
    if (a->len != b->len)
        return a->len < b->len;
    return x->cand < y->cand;
}

static int heap_push(struct trainer *tr, int32_t e)
{
    GROW(tr->heap, tr->heap_cap, tr->n_heap + 1);
    struct heap_ent *h = tr->heap;
    int64_t i = tr->n_heap++;
    h[i] = (struct heap_ent){tr->cand[e].count, e};
    tr->cand[e].pushed = tr->cand[e].count;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!cand_before(tr, &h[i], &h[p]))
            break;
        struct heap_ent t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
    return BL_OK;
}

static struct heap_ent heap_pop(struct trainer *tr)
{
    struct heap_ent *h = tr->heap, top = h[0];
    h[0] = h[--tr->n_heap];
    int64_t i = 0, n = tr->n_heap;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(tr, &h[l], &h[m]))
            m = l;
        if (r < n && cand_before(tr, &h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        struct heap_ent t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

/* The most frequent candidate, or -1 if none is left. */
static int best_cand(struct trainer *tr, int32_t *out)
{
    while (tr->n_heap > 0) {
        struct heap_ent top = heap_pop(tr);
        struct cand *c = &tr->cand[top.cand];
        if (c->piece >= 0)
            continue;
        if (top.count == c->count && c->count > 0) {
            *out = top.cand;
            return BL_OK;
        }
        if (top.count > c->count) {
            /* it dropped since: back in with what it has now */
            c->pushed = 0;
            if (c->count > 0 && heap_push(tr, top.cand))
                return BL_ENOMEM;
        }
    }
    *out = -1;
    return BL_OK;
}

/* Push the candidates whose count rose during a merge. */
static int flush_touched(struct trainer *tr)
{
    for (int64_t i = 0; i < tr->n_touched; i++) {
        struct cand *c = &tr->cand[tr->touched[i]];
        c->touched = 0;
        if (c->piece < 0 && c->count > c->pushed && heap_push(tr, tr->touched[i]))
            return BL_ENOMEM;
    }
    tr->n_touched = 0;
    return BL_OK;
}

static int step_push(struct trainer *tr, int32_t piece, int32_t l, int32_t r, uint32_t len)
{
    GROW(tr->step, tr->step_cap, (int64_t)tr->n_step + 1);
    /* the encoder's key, minus the score: the rank */
    struct bli_bigram b = {(double)(piece - tr->n_char), l, r, -1, -1, piece, len};
    bli_heap_push(tr->step, &tr->n_step, b);
    return BL_OK;
}

/* The pair of slot l and the one after it leaves (sign -1) or joins (+1)
 * its word: count it, or if it concatenates to a piece, have it merged. */
static int pair_update(struct trainer *tr, int32_t l, int sign)
{
    int32_t r = tr->slot[l].next;
    if (r < 0)
        return BL_OK;
    int32_t a = tr->slot[l].id, b = tr->slot[r].id;
    if (a < 0 || b < 0)
        return BL_OK;
    uint32_t la = tr->plen[a], lb = tr->plen[b], len = la + lb;
    if (len > tr->max_len)
        return BL_OK;
    char buf[MAX_PIECE];
    memcpy(buf, tr->arena + tr->poff[a], la);
    memcpy(buf + la, tr->arena + tr->poff[b], lb);
    uint32_t h = (uint32_t)mix(bli_tok_hash(buf, len));
    size_t at = 0;
    int32_t e = cand_find(tr, buf, len, h, &at);
    if (e >= 0 && tr->cand[e].piece >= 0)
        return sign > 0 ? step_push(tr, tr->cand[e].piece, l, r, len) : BL_OK;
    int64_t f = tr->words.w[tr->slot[l].word].count;
    if (sign < 0) {
        if (e >= 0)
            tr->cand[e].count -= f;
        return BL_OK;
    }
    int rc;
    if (e < 0) {
        if (special_part(buf, len))
            return BL_OK;
        if ((rc = cand_add(tr, buf, len, h, at, &e)))
            return rc;
    }
    int64_t k = tr->free_node;
    if (k >= 0) {
        tr->free_node = tr->node[k].next;
    } else {
        GROW(tr->node, tr->node_cap, tr->n_node + 1);
        k = tr->n_node++;
    }
    struct cand *c = &tr->cand[e];
    tr->node[k] = (struct node){l, c->pos};
    c->pos = k;
    c->count += f;
    if (!c->touched) {
        GROW(tr->touched, tr->touched_cap, tr->n_touched + 1);
        c->touched = 1;
        tr->touched[tr->n_touched++] = e;
    }
    return BL_OK;
}

/* Merge the symbols at slots l and r (adjacent) into piece id. */
static int merge_at(struct trainer *tr, int32_t l, int32_t r, int32_t id)
{
    int32_t pl = tr->slot[l].prev, rn = tr->slot[r].next;
    int rc;
    if ((pl >= 0 && (rc = pair_update(tr, pl, -1))) || (rc = pair_update(tr, l, -1)) ||
        (rc = pair_update(tr, r, -1)))
        return rc;
    tr->slot[l].id = id;
    tr->slot[l].next = rn;
    tr->slot[r].id = DEAD;
    if (rn >= 0)
        tr->slot[rn].prev = l;
    if (pl >= 0 && (rc = pair_update(tr, pl, 1)))
        return rc;
    return pair_update(tr, l, 1);
}

/* Candidate e becomes the next piece: merge it in every word as the
 * encoder would (see the top of the file). */
static int merge(struct trainer *tr, int32_t e)
{
    int32_t id = (int32_t)tr->n_piece++;
    struct cand *c = &tr->cand[e];
    int rc;
    c->piece = id;
    tr->poff[id] = c->off;
    tr->plen[id] = c->len;
    const char *s = tr->arena + c->off;
    for (int64_t k = c->pos, next; k >= 0; k = next) {
        int32_t l = tr->node[k].slot, r = tr->slot[l].next;
        next = tr->node[k].next;
        tr->node[k].next = tr->free_node;
        tr->free_node = k;
        if (r < 0 || tr->slot[l].id < 0 || tr->slot[r].id < 0)
            continue;
        uint32_t la = tr->plen[tr->slot[l].id], lb = tr->plen[tr->slot[r].id];
        if (la + lb == c->len && memcmp(tr->arena + tr->poff[tr->slot[l].id], s, la) == 0 &&
            memcmp(tr->arena + tr->poff[tr->slot[r].id], s + la, lb) == 0 &&
            (rc = step_push(tr, id, l, r, c->len)))
            return rc;
    }
    c->pos = -1;
    while (tr->n_step > 0) {
        struct bli_bigram b = bli_heap_pop(tr->step, &tr->n_step);
        const struct slot *L = &tr->slot[b.left], *R = &tr->slot[b.right];
        if (L->id < 0 || R->id < 0 || L->next != b.right || tr->plen[L->id] + tr->plen[R->id] != b.len)
            continue;   /* stale: one side was merged since */
        if ((rc = merge_at(tr, b.left, b.right, b.id)))
            return rc;
    }
    return flush_touched(tr);
}

/* ------------------------------------------------------------ the result */

static int make_tokenizer(const struct trainer *tr, int add_space_prefix, bl_tokenizer **out)
{
    int64_t n_merge = tr->n_piece - tr->n_char;
    bl_tokenizer *t = bli_tok_alloc(N_FIXED + tr->n_piece);
    if (!t)
        return BL_ENOMEM;
    static const char *const spec[3] = {"<unk>", "<s>", "</s>"};
    static const uint8_t spec_kind[3] = {BL_TOKEN_UNKNOWN, BL_TOKEN_CONTROL, BL_TOKEN_CONTROL};
    for (int i = 0; i < N_FIXED; i++) {
        char buf[8];
        if (i < 3)
            snprintf(buf, sizeof buf, "%s", spec[i]);
        else
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        if (!(t->piece[i] = bli_strdup(buf)))
            goto nomem;
        t->len[i] = (uint32_t)strlen(buf);
        t->kind[i] = i < 3 ? spec_kind[i] : BL_TOKEN_BYTE;
        t->score[i] = 0.0f;
    }
    for (int64_t i = 0; i < tr->n_piece; i++) {
        int64_t id = N_FIXED + i;
        if (!(t->piece[id] = bli_strndup(tr->arena + tr->poff[i], tr->plen[i])))
            goto nomem;
        t->len[id] = tr->plen[i];
        t->kind[id] = BL_TOKEN_NORMAL;
        /* merge r scores -r; the characters follow the merges, as
         * SentencePiece numbers them (their scores are never compared: no
         * two symbols concatenate to a character) */
        t->score[id] = (float)(i < tr->n_char ? -(n_merge + i) : -(i - tr->n_char));
    }
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_bos = 1;
    t->add_eos = 0;
    t->add_space_prefix = add_space_prefix;
    int64_t dup = -1;
    int rc = bli_tok_finish(t, 1, 1, &dup);
    BL_ASSERT(rc != BL_EFORMAT);   /* every piece is new: see special_part() */
    if (rc)
        goto nomem;
    *out = t;
    return BL_OK;
nomem:
    bl_tokenizer_free(t);
    return BL_ENOMEM;
}

/* The words and their final segmentation, for the tests. */
static int list_words(const struct trainer *tr, bli_tok_word_fn fn, void *user)
{
    char *buf = NULL;
    int32_t *ids = NULL;
    size_t cap = 0;
    int rc = BL_OK;
    for (int64_t w = 0; w < tr->words.n && !rc; w++) {
        const struct word *wd = &tr->words.w[w];
        size_t len = wd->len + (wd->space ? 3 : 0);
        if (len > cap) {
            cap = 2 * len;
            free(buf);
            free(ids);
            buf = malloc(cap);
            ids = bli_malloc_array(cap, sizeof *ids);
            if (!buf || !ids) {
                rc = BL_ENOMEM;
                break;
            }
        }
        if (wd->space)
            memcpy(buf, SPACE, 3);
        memcpy(buf + (wd->space ? 3 : 0), wd->p, wd->len);
        int64_t n = 0;
        size_t at = 0;
        for (int32_t s = tr->first[w]; s >= 0; s = tr->slot[s].next) {
            int32_t id = tr->slot[s].id;
            BL_ASSERT(id != DEAD);
            if (id >= 0) {
                ids[n++] = N_FIXED + id;
                at += tr->plen[id];
                continue;
            }
            size_t cl = sym_len((const unsigned char *)buf + at, len - at);
            for (size_t k = 0; k < cl; k++)
                ids[n++] = 3 + (unsigned char)buf[at + k];
            at += cl;
        }
        BL_ASSERT(at == len);
        if (fn(user, buf, len, wd->count, ids, n))
            rc = BL_ESTOPPED;
    }
    free(buf);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------- the entry */

struct bl_tokenizer_train_params bl_tokenizer_train_default_params(void)
{
    struct bl_tokenizer_train_params p;
    memset(&p, 0, sizeof p);
    p.vocab = 1024;
    p.max_piece_bytes = 16;
    p.add_space_prefix = 1;
    p.n_threads = 0;
    return p;
}

int bli_tok_train(bl_tokenizer **out, const char *text, size_t n,
                  const struct bl_tokenizer_train_params *pp, bli_tok_word_fn fn, void *user,
                  bl_err *err)
{
    struct bl_tokenizer_train_params p = pp ? *pp : bl_tokenizer_train_default_params();
    struct trainer tr;
    int rc;

    BL_ASSERT(out);
    *out = NULL;
    memset(&tr, 0, sizeof tr);
    tr.free_node = -1;
    if (p.vocab <= N_FIXED || p.vocab > MAX_VOCAB)
        return bli_err(err, BL_EINVAL, "tokenizer training: vocab %" PRId64 " is out of range (%d, the 3 special "
                       "and 256 byte tokens and at least one more, to %" PRId64 ")",
                       p.vocab, N_FIXED + 1, MAX_VOCAB);
    if (p.max_piece_bytes < 4 || p.max_piece_bytes > MAX_PIECE)
        return bli_err(err, BL_EINVAL, "tokenizer training: max_piece_bytes %" PRId64 " is out of range (4 to %d)",
                       p.max_piece_bytes, MAX_PIECE);
    if (!text && n > 0)
        return bli_err(err, BL_EINVAL, "tokenizer training: no text, but a length of %zu bytes", n);
    tr.max_len = p.max_piece_bytes;

    int64_t room = p.vocab - N_FIXED, n_syms;
    if ((rc = count_words(&tr.words, text, n, p.add_space_prefix != 0, bli_threads(p.n_threads))) ||
        (rc = choose_chars(&tr, room, &n_syms)))
        goto fail;
    if (n_syms >= INT32_MAX) {
        rc = bli_err(err, BL_ERANGE, "tokenizer training: the distinct words hold %" PRId64 " characters in all, "
                     "more than %d", n_syms, INT32_MAX - 1);
        goto fail;
    }
    if ((rc = build_slots(&tr, n_syms)))
        goto fail;
    tr.mask = 1023;
    if (!(tr.ht = bli_calloc(tr.mask + 1, sizeof *tr.ht))) {
        rc = BL_ENOMEM;
        goto fail;
    }
    /* the pairs of every word: no pair concatenates to a piece yet */
    for (int32_t s = 0; s < (int32_t)tr.n_slot; s++)
        if ((rc = pair_update(&tr, s, 1)))
            goto fail;
    if ((rc = flush_touched(&tr)))
        goto fail;

    int64_t planned = room - tr.n_char;
    for (int64_t m = 0; m < planned; m++) {
        int32_t e;
        if ((rc = best_cand(&tr, &e)))
            goto fail;
        if (e < 0)
            break;   /* no pair left: a smaller vocabulary */
        if ((rc = merge(&tr, e)))
            goto fail;
        if (p.progress && p.progress(p.progress_user, m + 1, planned)) {
            rc = bli_err(err, BL_ESTOPPED, "tokenizer training: stopped after %" PRId64 " of %" PRId64 " merges",
                         m + 1, planned);
            goto fail;
        }
    }
    if ((rc = make_tokenizer(&tr, p.add_space_prefix != 0, out)))
        goto fail;
    if (fn && (rc = list_words(&tr, fn, user))) {
        bl_tokenizer_free(*out);
        *out = NULL;
        goto fail;
    }
    trainer_release(&tr);
    return BL_OK;
fail:
    if (rc == BL_ENOMEM)
        bli_err(err, rc, "tokenizer training: out of memory");
    else if (rc == BL_ERANGE && tr.n_cand >= INT32_MAX - 1)
        bli_err(err, rc, "tokenizer training: more than %d distinct pairs of pieces", INT32_MAX - 2);
    trainer_release(&tr);
    return rc;
}

int bl_tokenizer_train(bl_tokenizer **out, const char *text, size_t n,
                       const struct bl_tokenizer_train_params *p, bl_err *err)
{
    return bli_tok_train(out, text, n, p, NULL, NULL, err);
}
