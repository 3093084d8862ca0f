/* analysis/drift_model.c: a language model's surprisal of a text, byte by
 * byte, for the drift feature model_bpc.
 *
 * The text is tokenized once and scored in segments of SEG tokens, each
 * evaluated after BOS and the PRE tokens before it (teacher-forced, not
 * scored), so every token is scored with 64 to 191 tokens of context
 * whatever the text's length (both shrink 2:1 for a shorter context).  Attention over the model's whole context
 * would cost more than the rest of the pass on a small model (stories260K
 * spent three quarters of its time there at 512 positions) and buys a
 * drift feature nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/ctx.h>
#include <bitlens/drift.h>
#include <bitlens/model.h>

#include "internal.h"

#define SEG 128
#define PRE 64

/* -log2 softmax(row)[id] */
static double surprisal(const float *row, int64_t V, int32_t id)
{
    float mx = row[0];
    for (int64_t v = 1; v < V; v++)
        mx = row[v] > mx ? row[v] : mx;
    double z = 0;
    for (int64_t v = 0; v < V; v++)
        z += exp((double)row[v] - mx);
    return -((double)row[id] - mx - log(z)) / log(2.0);
}

int bl_drift_model_bits(bl_ctx *c, const char *text, size_t n, float *bits, bl_err *err)
{
    const bl_model *m = bl_ctx_model(c);
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    if (n)
        memset(bits, 0, n * sizeof *bits);
    if (!tok)
        return bli_err(err, BL_EINVAL, "%s: the model has no tokenizer", bl_model_path(m));
    if (!n)
        return BL_OK;
    int64_t V = bl_model_config(m)->n_vocab, n_ctx = bl_ctx_n_ctx(c);
    /* a short context (aidreams260K has 128) shrinks both, keeping 2:1 */
    int64_t seg = SEG, pre = PRE;
    if (1 + pre + seg > n_ctx) {
        seg = (n_ctx - 1) * 2 / 3;
        pre = n_ctx - 1 - seg;
    }
    if (seg < 1)
        return bli_err(err, BL_EINVAL, "%s: a context of %lld positions cannot score text", bl_model_path(m),
                       (long long)n_ctx);
    if (n > ((size_t)1 << 29))
        return bli_err(err, BL_ERANGE, "a text of %zu bytes is too long to score (at most 512 MiB)", n);
    int64_t cap = 3 * (int64_t)n + 8, nid = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    size_t *end = malloc((size_t)cap * sizeof *end);
    float *logits = malloc((size_t)(seg + 1) * (size_t)V * sizeof *logits);
    int rc = BL_ENOMEM;
    if (!ids || !end || !logits) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    rc = bl_tokenizer_encode(tok, text, n, 0, ids, cap, &nid);
    if (rc) {
        rc = bli_err(err, rc, "cannot tokenize a text of %zu bytes", n);
        goto out;
    }
    /* where each token ends in the text: its surprisal goes to that byte */
    int32_t bos = bl_tokenizer_bos(tok), prev = bos;
    size_t at = 0;
    for (int64_t i = 0; i < nid; i++) {
        char piece[8];
        at += bl_tokenizer_decode(tok, prev, ids[i], piece, sizeof piece);
        prev = ids[i];
        end[i] = at == 0 ? 0 : at <= n ? at - 1 : n - 1;
    }
    /* without BOS the text's first token is context only */
    for (int64_t s = bos >= 0 ? 0 : 1; s < nid; s += seg) {
        int64_t e = s + seg < nid ? s + seg : nid, from = s - pre > 0 ? s - pre : 0;
        if ((rc = bl_ctx_rewind(c, 0)) != BL_OK)
            goto ctxerr;
        /* BOS and the context before the segment: the last row predicts ids[s] */
        if (bos >= 0 && (rc = bl_ctx_eval(c, &bos, 1, logits, 0)) != BL_OK)
            goto ctxerr;
        if (s > from && (rc = bl_ctx_eval(c, ids + from, s - from, logits, 0)) != BL_OK)
            goto ctxerr;
        /* the segment: row k predicts ids[s + k + 1] */
        if ((rc = bl_ctx_eval(c, ids + s, e - s, logits + V, BL_EVAL_ALL_LOGITS)) != BL_OK)
            goto ctxerr;
        for (int64_t k = s; k < e; k++)
            bits[end[k]] += (float)surprisal(logits + (size_t)(k - s) * (size_t)V, V, ids[k]);
    }
    rc = BL_OK;
    goto out;
ctxerr:
    rc = bli_err(err, rc, "%s: %s", bl_model_path(m), bl_ctx_errmsg(c));
out:
    free(ids);
    free(end);
    free(logits);
    return rc;
}
