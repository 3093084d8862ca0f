/* tests/fuzz/tracecrc.c: fuzz_fix_trace_crcs() (fuzz.h), shared by the
 * trace and report targets. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <bitlens/trace.h>

#include "fuzz.h"

#define CHUNK_HEADER 20u
#define TYPE_INDEX BL_FOURCC('I', 'N', 'D', 'X')

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc_of(uint32_t c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = (uint32_t)crc32(c, p, k);
        p += k;
        n -= k;
    }
    return c;
}

/* A copy of a trace-looking input with every CRC that can be computed
 * made right; NULL if the input does not get that far. */
uint8_t *fuzz_fix_trace_crcs(const uint8_t *data, size_t size)
{
    if (size < 16 || memcmp(data, BL_TRACE_MAGIC, 8) != 0)
        return NULL;
    uint32_t hl = fuzz_rd_u32(data + 12);
    if (hl > size - 16 || size - 16 - hl < 4)
        return NULL;
    uint8_t *m = malloc(size);
    if (!m)
        return NULL;
    memcpy(m, data, size);
    put32(m + 16 + hl, crc_of((uint32_t)crc32(0L, Z_NULL, 0), m + 16, hl));
    size_t at = 16 + (size_t)hl + 4;
    while (size - at >= CHUNK_HEADER) {
        uint32_t stored = fuzz_rd_u32(m + at + 8);
        if (stored > size - at - CHUNK_HEADER)
            break;
        uint32_t c = crc_of((uint32_t)crc32(0L, Z_NULL, 0), m + at, 16);
        put32(m + at + 16, crc_of(c, m + at + CHUNK_HEADER, stored));
        size_t chunk_at = at;
        at += CHUNK_HEADER + stored;
        if (fuzz_rd_u32(m + chunk_at) == TYPE_INDEX) {
            if (size - at >= 16) {
                put32(m + at, (uint32_t)chunk_at);
                put32(m + at + 4, (uint32_t)((uint64_t)chunk_at >> 32));
            }
            break;
        }
    }
    return m;
}
