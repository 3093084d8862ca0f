/* analysis/drift_model.c: a language model's surprisal of a text, byte by
 * byte, for the drift feature model_bpc. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <bitlens/ctx.h>
#include <bitlens/drift.h>
#include <bitlens/model.h>

#include "internal.h"

int bl_drift_model_bits(bl_ctx *c, const char *text, size_t n, float *bits, bl_err *err)
{
    const bl_model *m = bl_ctx_model(c);
    const bl_tokenizer *tok = bl_model_tokenizer(m);
    memset(bits, 0, n * sizeof *bits);
    if (!tok)
        return bli_err(err, BL_EINVAL, "%s: the model has no tokenizer", bl_model_path(m));
    if (!n)
        return BL_OK;
    int64_t V = bl_model_config(m)->n_vocab, n_ctx = bl_ctx_n_ctx(c);
    int64_t cap = 3 * (int64_t)n + 8, nid = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    float *logits = NULL;
    int rc = BL_ENOMEM;
    if (!ids)
        goto out;
    int32_t bos = bl_tokenizer_bos(tok);
    rc = bl_tokenizer_encode(tok, text, n, 0, ids, cap, &nid);
    if (rc) {
        rc = bli_err(err, rc, "cannot tokenize a text of %zu bytes", n);
        goto out;
    }
    /* blocks of at most n_ctx - 1 tokens, each after BOS (or, without one,
     * after the block's first token, which then goes unscored) */
    int64_t block = n_ctx - 1 < 128 ? n_ctx - 1 : 128;
    if (block < 1) {
        rc = bli_err(err, BL_EINVAL, "%s: a context of %lld positions", bl_model_path(m), (long long)n_ctx);
        goto out;
    }
    logits = malloc((size_t)(block + 1) * (size_t)V * sizeof *logits);
    if (!logits) {
        rc = bli_err(err, BL_ENOMEM, "out of memory");
        goto out;
    }
    size_t at = 0;          /* bytes decoded so far */
    int32_t prev = bos;
    int64_t i = 0;
    while (i < nid) {
        /* start a context: BOS, then the tokens while they fit */
        if ((rc = bl_ctx_rewind(c, 0)) != BL_OK)
            goto ctxerr;
        int64_t first = i, room = n_ctx - 1;
        if (bos >= 0) {
            if ((rc = bl_ctx_eval(c, &bos, 1, logits, 0)) != BL_OK)
                goto ctxerr;
        } else {
            /* no BOS: the first token is context only */
            if ((rc = bl_ctx_eval(c, &ids[i], 1, logits, 0)) != BL_OK)
                goto ctxerr;
            char tmp[64];
            at += bl_tokenizer_decode(tok, prev, ids[i], tmp, sizeof tmp);
            prev = ids[i];
            i++;
            first = i;
        }
        /* logits holds the distribution for ids[first] */
        while (i < nid && i - first < room) {
            int64_t b = nid - i < block ? nid - i : block;
            if (i - first + b > room)
                b = room - (i - first);
            /* row 0 of `logits` is the distribution of ids[i]; evaluate ids[i..i+b) */
            float *rows = logits + V;   /* the next b rows */
            if ((rc = bl_ctx_eval(c, &ids[i], b, rows, BL_EVAL_ALL_LOGITS)) != BL_OK)
                goto ctxerr;
            for (int64_t k = 0; k < b; k++) {
                const float *row = logits + (size_t)k * V;
                float mx = row[0];
                for (int64_t v = 1; v < V; v++)
                    mx = row[v] > mx ? row[v] : mx;
                double z = 0;
                for (int64_t v = 0; v < V; v++)
                    z += exp((double)row[v] - mx);
                double lp = (double)row[ids[i + k]] - mx - log(z);
                char tmp[64];
                size_t len = bl_tokenizer_decode(tok, prev, ids[i + k], tmp, sizeof tmp);
                prev = ids[i + k];
                at += len;
                size_t where = at ? (at <= n ? at - 1 : n - 1) : 0;
                bits[where] += (float)(-lp / log(2.0));
            }
            /* the last row predicts the next token */
            memcpy(logits, logits + (size_t)b * V, (size_t)V * sizeof *logits);
            i += b;
        }
    }
    rc = BL_OK;
    goto out;
ctxerr:
    rc = bli_err(err, rc, "%s: %s", bl_model_path(m), bl_ctx_errmsg(c));
out:
    free(ids);
    free(logits);
    return rc;
}
