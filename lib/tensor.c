/* lib/tensor.c: dtypes and exact f16/bf16 conversion. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <bitlens/tensor.h>
#include "internal.h"

/* Every ggml type, so `bitlens info` can name and size the tensors of any
 * GGUF file, including types bitlens does not compute with.  Block size
 * (elements) and bytes per block, as ggml defines them. */
static const struct {
    int type;
    const char *name;
    int blck;
    int size;
} ggml_types[] = {
    {0, "f32", 1, 4},        {1, "f16", 1, 2},        {2, "q4_0", 32, 18},
    {3, "q4_1", 32, 20},     {6, "q5_0", 32, 22},     {7, "q5_1", 32, 24},
    {8, "q8_0", 32, 34},     {9, "q8_1", 32, 36},     {10, "q2_K", 256, 84},
    {11, "q3_K", 256, 110},  {12, "q4_K", 256, 144},  {13, "q5_K", 256, 176},
    {14, "q6_K", 256, 210},  {15, "q8_K", 256, 292},  {16, "iq2_xxs", 256, 66},
    {17, "iq2_xs", 256, 74}, {18, "iq3_xxs", 256, 98}, {19, "iq1_s", 256, 50},
    {20, "iq4_nl", 32, 18},  {21, "iq3_s", 256, 110}, {22, "iq2_s", 256, 82},
    {23, "iq4_xs", 256, 136}, {24, "i8", 1, 1},       {25, "i16", 1, 2},
    {26, "i32", 1, 4},       {27, "i64", 1, 8},       {28, "f64", 1, 8},
    {29, "iq1_m", 256, 56},  {30, "bf16", 1, 2},      {34, "tq1_0", 256, 54},
    {35, "tq2_0", 256, 66},
};

static int type_index(int type)
{
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].type == type)
            return (int)i;
    return -1;
}

const char *bl_dtype_name(int type)
{
    int i = type_index(type);
    return i < 0 ? NULL : ggml_types[i].name;
}

int bl_dtype_supported(int type)
{
    return type == BL_F32 || type == BL_F16 || type == BL_BF16 || type == BL_Q8_0;
}

int64_t bl_dtype_block(int type)
{
    int i = type_index(type);
    return i < 0 ? 0 : ggml_types[i].blck;
}

size_t bl_dtype_row_bytes(int type, int64_t n)
{
    int i = type_index(type);
    if (i < 0 || n < 0 || n % ggml_types[i].blck)
        return 0;
    return (size_t)(n / ggml_types[i].blck) * (size_t)ggml_types[i].size;
}

int64_t bl_tensor_nelements(const struct bl_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->ne[i];
    return n;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float bl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;

    if (exp == 0x1f)                       /* inf / nan */
        return bits_f32(sign | 0x7f800000u | man << 13);
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | (exp + 112) << 23 | man << 13);
}

uint16_t bl_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;

    if (a >= 0x7f800000u)                  /* inf or nan */
        return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | ((a >> 13) & 0x3ff) : 0);
    if (a >= 0x477ff000u)                  /* rounds to >= 65520: overflow */
        return sign | 0x7c00;
    if (a < 0x38800000u) {                 /* below the smallest normal 2^-14 */
        /* subnormal or zero: value / 2^-24 rounded to nearest even, in
         * integers (nearbyintf would follow the caller's rounding mode) */
        uint32_t e = a >> 23;
        if (e < 102)                       /* below 2^-25: rounds to 0 */
            return sign;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;   /* value = m * 2^(e-150) */
        uint32_t shift = 126 - e;                    /* 14 .. 24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        q += rem > half || (rem == half && (q & 1));
        return sign | (uint16_t)q;         /* q = 0x400 is the smallest normal */
    }
    /* normal: drop 13 mantissa bits with round to nearest even */
    uint32_t mant_odd = (a >> 13) & 1;
    a += 0xfff + mant_odd;
    a -= 0x38000000u;                      /* rebias exponent 127 -> 15 */
    return sign | (uint16_t)(a >> 13);
}

float bl_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t bl_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)   /* nan: keep it a quiet nan */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void bl_to_f32(int type, const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    switch (type) {
    case BL_F32:
        memcpy(dst, src, (size_t)n * 4);
        break;
    case BL_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = bl_f16_to_f32(h);
        }
        break;
    case BL_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = bl_bf16_to_f32(h);
        }
        break;
    case BL_Q8_0:
        BL_ASSERT(n % BL_Q8_0_BLOCK == 0);
        for (int64_t b = 0; b < n / BL_Q8_0_BLOCK; b++) {
            const unsigned char *blk = p + b * BL_Q8_0_BYTES;
            uint16_t h;
            memcpy(&h, blk, 2);
            float d = bl_f16_to_f32(h);
            for (int i = 0; i < BL_Q8_0_BLOCK; i++)
                dst[b * BL_Q8_0_BLOCK + i] = d * (float)(int8_t)blk[2 + i];
        }
        break;
    default:
        BL_ASSERT(!"bl_to_f32: unsupported type");
    }
}

void bl_quantize_q8_0(const float *src, void *dst, int64_t n)
{
    unsigned char *out = dst;
    BL_ASSERT(n % BL_Q8_0_BLOCK == 0);
    for (int64_t b = 0; b < n / BL_Q8_0_BLOCK; b++) {
        const float *x = src + b * BL_Q8_0_BLOCK;
        unsigned char *blk = out + b * BL_Q8_0_BYTES;
        float amax = 0.0f;
        for (int i = 0; i < BL_Q8_0_BLOCK; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = bl_f32_to_f16(d);
        memcpy(blk, &h, 2);
        for (int i = 0; i < BL_Q8_0_BLOCK; i++)
            blk[2 + i] = (unsigned char)(int8_t)roundf(x[i] * id);
    }
}
