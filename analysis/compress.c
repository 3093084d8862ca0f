/* analysis/compress.c: empirical compressibility (bitlens/analysis.h).
 *
 * Each value x becomes the integer q = floor(x / step + 1/2), step =
 * sqrt(12 noise_var), saturated to the int32 range.  q is zigzag-mapped
 * (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) and taken as 32-bit little-endian.
 * The values are cut into blocks of BLOCK; each block is byte-planed (all
 * first bytes, then all second bytes, ...) and each plane of each block is
 * deflated on its own, raw deflate at level 6, three times: with zlib's
 * default strategy, Huffman coding only, and run lengths only; the shortest
 * of the three counts.  Any of them inflates with zlib, and a raw deflate
 * stream ends itself, so the planes' streams laid end to end are a complete
 * encoding and the count of their bytes is an honest size.  Only that count
 * is kept.
 *
 * Block boundaries depend on the number of values alone, never on how they
 * were split across bl_compress_add() calls, so any split of the same values
 * gives the same count.  Memory stays bounded: one block, one plane, and
 * three deflate states (about 1.1 MiB in all).
 *
 * Why these choices, each measured on data of known entropy (see
 * tests/test-moments.c):
 *   - zigzag: with two's complement every small negative q fills the three
 *     upper planes with 0xff, and deflate codes a byte in no less than a
 *     bit, so symmetric data would cost up to 3 spurious bits per element;
 *   - a plane at a time, shortest of three strategies: LZ77's string
 *     matches, which make constant and repetitive planes nearly free, cost
 *     up to 1.8 bits per element on planes of i.i.d. bytes from a small
 *     alphabet (a 16-valued plane), where Huffman coding alone is within a
 *     few hundredths of a bit of the entropy.  One stream with the default
 *     strategy measured up to 1.8 bits per element over the entropy; this
 *     scheme stays within 0.35.
 * What remains is deflate's own floor: a byte costs a whole number of bits
 * in its Huffman code, and the end-of-block symbol takes a code too, so a
 * plane of two equiprobable byte values costs about 1.3 to 1.5 bits per
 * byte, not 1.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <bitlens/analysis.h>
#include "internal.h"

#define BLOCK 65536         /* values per byte-planed block */
#define OUT_BYTES 16384     /* compressed output is counted, then dropped */
#define NSTRAT 3

static const int strategies[NSTRAT] = {Z_DEFAULT_STRATEGY, Z_HUFFMAN_ONLY, Z_RLE};

struct bl_compress {
    double step;             /* quantizer step, sqrt(12 noise_var) */
    z_stream z[NSTRAT];      /* raw deflate, level 6, one per strategy */
    int nz;                  /* how many of z[] are initialized */
    int finished;            /* bits is final: nothing more may be added */
    int64_t n;               /* values added */
    int64_t fill;            /* values waiting in q[] */
    uint64_t bytes;          /* compressed bytes of the blocks done */
    double bits;             /* the result once finished */
    uint32_t q[BLOCK];       /* zigzagged integers of the current block */
    unsigned char plane[BLOCK];
    unsigned char out[OUT_BYTES];
};

int bl_compress_alloc(struct bl_compress **out, double noise_var)
{
    BL_ASSERT(out != NULL);
    *out = NULL;
    if (!(noise_var > 0) || !isfinite(noise_var))
        return BL_EINVAL;
    const double step = sqrt(12.0 * noise_var);
    if (!(step > 0) || !isfinite(step))
        return BL_EINVAL;

    struct bl_compress *c = calloc(1, sizeof(*c));
    if (!c)
        return BL_ENOMEM;
    c->step = step;
    for (int s = 0; s < NSTRAT; s++) {
        int zrc = deflateInit2(&c->z[s], Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, strategies[s]);
        if (zrc != Z_OK) {
            bl_compress_free(c);
            return zrc == Z_MEM_ERROR ? BL_ENOMEM : BL_EUNSUPPORTED;
        }
        c->nz = s + 1;
    }
    *out = c;
    return BL_OK;
}

void bl_compress_free(struct bl_compress *c)
{
    if (!c)
        return;
    for (int s = 0; s < c->nz; s++)
        deflateEnd(&c->z[s]);
    free(c);
}

/* Bytes of k bytes at p as one raw deflate stream with z's strategy, or -1
 * if zlib fails (it cannot with our use: an error here is a bug). */
static int64_t deflated_size(struct bl_compress *c, z_stream *z, const unsigned char *p, int64_t k)
{
    if (deflateReset(z) != Z_OK)
        return -1;
    z->next_in = (unsigned char *)p;   /* zlib does not write through next_in */
    z->avail_in = (uInt)k;
    int64_t bytes = 0;
    for (;;) {
        z->next_out = c->out;
        z->avail_out = OUT_BYTES;
        int zrc = deflate(z, Z_FINISH);
        bytes += OUT_BYTES - z->avail_out;
        if (zrc == Z_STREAM_END)
            return bytes;
        if (zrc != Z_OK && zrc != Z_BUF_ERROR)
            return -1;
        if (zrc == Z_BUF_ERROR && z->avail_out == OUT_BYTES)
            return -1;                  /* no progress */
    }
}

/* Plane the pending block and count its planes' shortest encodings. */
static int flush_block(struct bl_compress *c)
{
    const int64_t k = c->fill;
    if (k == 0)
        return BL_OK;
    for (int b = 0; b < 4; b++) {
        for (int64_t i = 0; i < k; i++)
            c->plane[i] = (unsigned char)(c->q[i] >> (8 * b));
        int64_t best = -1;
        for (int s = 0; s < NSTRAT; s++) {
            int64_t size = deflated_size(c, &c->z[s], c->plane, k);
            if (size < 0)
                return BL_EINVAL;
            if (best < 0 || size < best)
                best = size;
        }
        c->bytes += (uint64_t)best;
    }
    c->fill = 0;
    return BL_OK;
}

/* The zigzagged quantization of x (finite). */
static uint32_t quantize(double x, double step)
{
    const double v = floor(x / step + 0.5);
    int64_t q;
    if (v >= 2147483647.0)
        q = INT32_MAX;
    else if (v <= -2147483648.0)
        q = INT32_MIN;
    else
        q = (int64_t)v;
    /* zigzag without signed overflow: 2q for q >= 0, -2q - 1 for q < 0 */
    const uint32_t u = (uint32_t)q;
    return (u << 1) ^ (0u - (uint32_t)(q < 0));
}

int bl_compress_add(struct bl_compress *c, const float *values, int64_t n)
{
    BL_ASSERT(c != NULL);
    BL_ASSERT(n >= 0);
    BL_ASSERT(!c->finished);   /* nothing is added after bl_compress_bits() */
    if (n == 0)
        return BL_OK;
    BL_ASSERT(values != NULL);
    /* bad data changes nothing */
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(values[i]))
            return BL_EINVAL;

    for (int64_t i = 0; i < n; i++) {
        c->q[c->fill++] = quantize(values[i], c->step);
        c->n++;
        if (c->fill == BLOCK) {
            int rc = flush_block(c);
            if (rc != BL_OK)
                return rc;
        }
    }
    return BL_OK;
}

double bl_compress_bits(struct bl_compress *c)
{
    BL_ASSERT(c != NULL);
    if (c->finished)
        return c->bits;
    c->finished = 1;
    if (c->n == 0)
        return c->bits = 0;
    if (flush_block(c) != BL_OK)
        return c->bits = NAN;
    return c->bits = 8.0 * (double)c->bytes / (double)c->n;
}
