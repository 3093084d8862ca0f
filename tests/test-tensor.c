/* tests/test-tensor.c: f16/bf16 conversion and the dtype table (lib/tensor.c).
 *
 * Expected values come from three places, none of them the code under test:
 *   - a first-principles model of the two formats in double arithmetic:
 *     decode_ref() reads sign, exponent and significand fields, round_ref()
 *     finds the two representable neighbours of x and keeps the nearer one
 *     (the even one on a tie);
 *   - the CPU's F16C instructions (vcvtph2ps / vcvtps2ph with the rounding
 *     mode in the immediate: round to nearest even), when the CPU has them;
 *   - values derived by hand, written out in the tables below.
 * The hand tables are also checked against the other two references, so a
 * slip in a table shows as a failure of the table, not of the library. */
#include "config.h"

#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#include <bitlens/tensor.h>
#include "tap.h"

#define N_RANDOM 1000000

/* ---------------------------------------------------------------- helpers */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* splitmix64: a fixed-seed generator that needs nothing from the library. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A binary interchange format: f16 is {10, 5}, bf16 is {7, 8}. */
struct fmt {
    const char *name;
    int mant_bits;   /* stored significand bits */
    int exp_bits;
};

static const struct fmt F16 = {"f16", 10, 5};
static const struct fmt BF16 = {"bf16", 7, 8};

static int fmt_bias(const struct fmt *f)
{
    return (1 << (f->exp_bits - 1)) - 1;
}

static int fmt_is_nan(const struct fmt *f, uint16_t h)
{
    unsigned e = (h >> f->mant_bits) & ((1u << f->exp_bits) - 1);
    unsigned m = h & ((1u << f->mant_bits) - 1);
    return e == (1u << f->exp_bits) - 1 && m != 0;
}

/* The value of bit pattern h, read field by field: (-1)^s 2^(e-bias)
 * (1 + m/2^p) for a normal number, 2^(1-bias) (m/2^p) for a subnormal one.
 * Exact in double.  NaN for a NaN pattern (sign kept). */
static double decode_ref(const struct fmt *f, uint16_t h)
{
    int bias = fmt_bias(f);
    unsigned s = h >> 15;
    unsigned e = (h >> f->mant_bits) & ((1u << f->exp_bits) - 1);
    unsigned m = h & ((1u << f->mant_bits) - 1);
    double v;
    if (e == (1u << f->exp_bits) - 1)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, 1 - bias - f->mant_bits);
    else
        v = ldexp((double)(m + (1u << f->mant_bits)), (int)e - bias - f->mant_bits);
    return s ? -v : v;
}

/* Largest finite value of the format. */
static double fmt_max(const struct fmt *f)
{
    int bias = fmt_bias(f);
    return ldexp(2.0 - ldexp(1.0, -f->mant_bits), bias);
}

/* Round the finite or infinite x to the format, nearest, ties to even.
 * Let E be the binade of |x| (clamped below at the smallest normal exponent,
 * which gives the evenly spaced subnormals) and ulp = 2^(E - p).  The two
 * neighbours are lo = floor(|x|/ulp) ulp and hi = lo + ulp; all of this is
 * exact in double for an f32 x.  A result beyond the largest finite value is
 * infinity (IEEE 754: anything at or above max + ulp/2 overflows). */
static double round_ref(const struct fmt *f, double x)
{
    double a = fabs(x);
    if (a == 0 || isinf(a))
        return x;
    int e2;
    frexp(a, &e2);                           /* a = m 2^e2, m in [0.5, 1) */
    int E = e2 - 1;                          /* 2^E <= a < 2^(E+1) */
    int emin = 1 - fmt_bias(f);
    if (E < emin)
        E = emin;
    double ulp = ldexp(1.0, E - f->mant_bits);
    double q = a / ulp;                      /* exact: power-of-two scale */
    double lo = floor(q), hi = lo + 1;
    double dlo = q - lo, dhi = hi - q;       /* exact */
    double k;
    if (dlo < dhi)
        k = lo;
    else if (dhi < dlo)
        k = hi;
    else
        k = fmod(lo, 2.0) == 0 ? lo : hi;    /* tie: the even significand */
    double r = k * ulp;
    if (r > fmt_max(f))
        r = INFINITY;
    return copysign(r, x);
}

/* 1 if the pattern h (of format f) is what rounding x gives: NaN in -> a NaN
 * of the same sign out; otherwise the same value and the same sign (so
 * -0 and +0 differ). */
static int matches_rounding(const struct fmt *f, float x, uint16_t h)
{
    if (isnan(x))
        return fmt_is_nan(f, h) && (h >> 15) == (f2u(x) >> 31);
    if (fmt_is_nan(f, h))
        return 0;
    double want = round_ref(f, x);
    double got = decode_ref(f, h);
    return got == want && !!signbit(got) == !!signbit(want);
}

/* 1 if the f32 result r of widening h agrees with decode_ref. */
static int matches_decode(const struct fmt *f, uint16_t h, float r)
{
    double want = decode_ref(f, h);
    if (isnan(want))
        return isnan(r) && !!signbit(r) == (h >> 15);
    return (double)r == want && !!signbit(r) == (h >> 15);
}

/* A random f32 bit pattern.  With narrow set, the exponent is drawn from the
 * range that matters for f16 (2^-26 .. 2^17: zero, subnormal, normal,
 * overflow), with otherwise random sign and significand. */
static float random_f32(int narrow)
{
    uint32_t u = (uint32_t)rng_next();
    if (narrow) {
        uint32_t e = 101 + (uint32_t)(rng_next() % 43);   /* 101 .. 143 */
        u = (u & 0x807fffffu) | e << 23;
    }
    return u2f(u);
}

/* ---------------------------------------------------------------- F16C */

#ifdef HAVE_X86
__attribute__((target("f16c")))
static float hw_f16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}

__attribute__((target("f16c")))
static uint16_t hw_f32_to_f16(float f)
{
    __m128i r = _mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT);
    return (uint16_t)_mm_extract_epi16(r, 0);
}

static int have_f16c(void)
{
    return __builtin_cpu_supports("f16c");
}
#else
static float hw_f16_to_f32(uint16_t h)
{
    (void)h;
    return 0;
}

static uint16_t hw_f32_to_f16(float f)
{
    (void)f;
    return 0;
}

static int have_f16c(void)
{
    return 0;
}
#endif

/* Same result from the library and the hardware (NaN: NaN-ness and sign). */
static int same_f16(uint16_t a, uint16_t b)
{
    if (fmt_is_nan(&F16, a) || fmt_is_nan(&F16, b))
        return fmt_is_nan(&F16, a) && fmt_is_nan(&F16, b) && (a >> 15) == (b >> 15);
    return a == b;
}

static int same_f32(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) && !!signbit(a) == !!signbit(b);
    return f2u(a) == f2u(b);
}

/* ---------------------------------------------------------------- tables */

struct narrow_case {
    uint32_t in;        /* f32 bits (so a signalling NaN survives as written) */
    uint16_t want;      /* derived by hand; for a NaN input only its sign counts */
    const char *what;
};

#define NAN_OUT 0xffff   /* marker: expect a NaN (sign from the input) */

/* f32 -> f16.  f16 has 11 significant bits, normals from 2^-14, subnormals
 * k 2^-24 (k = 1..1023), largest finite 65504 = 0x7bff; the halfway point to
 * the next (nonexistent) value is 65520, which rounds to even: infinity. */
static const struct narrow_case f16_cases[] = {
    {0x00000000u, 0x0000, "+0"},
    {0x80000000u, 0x8000, "-0"},
    {0x33800000u, 0x0001, "2^-24, smallest subnormal"},
    {0xb3800000u, 0x8001, "-2^-24"},
    {0x387fc000u, 0x03ff, "1023 2^-24, largest subnormal"},
    {0x38800000u, 0x0400, "2^-14, smallest normal"},
    {0x33000000u, 0x0000, "2^-25, tie between 0 and 2^-24 -> 0"},
    {0xb3000000u, 0x8000, "-2^-25, tie -> -0"},
    {0x33000001u, 0x0001, "just above 2^-25 -> 2^-24"},
    {0x32ffffffu, 0x0000, "just below 2^-25 -> 0"},
    {0x33c00000u, 0x0002, "1.5 2^-24, tie between 1 and 2 -> 2"},
    {0x34200000u, 0x0002, "2.5 2^-24, tie between 2 and 3 -> 2"},
    {0x387fa000u, 0x03fe, "1022.5 2^-24, subnormal tie -> 0x3fe"},
    {0x387fe000u, 0x0400, "1023.5 2^-24, tie between largest subnormal and 2^-14 -> 0x400"},
    {0x387fffffu, 0x0400, "largest f32 below 2^-14 -> 2^-14"},
    {0x00000001u, 0x0000, "2^-149, f32 subnormal -> 0"},
    {0x80000001u, 0x8000, "-2^-149 -> -0"},
    {0x3f800000u, 0x3c00, "1"},
    {0xbfc00000u, 0xbe00, "-1.5"},
    {0x3f801000u, 0x3c00, "1 + 2^-11, tie -> 1"},
    {0x3f801001u, 0x3c01, "just above 1 + 2^-11"},
    {0x3f803000u, 0x3c02, "1 + 3 2^-11, tie -> 1 + 2^-9"},
    {0x3f802fffu, 0x3c01, "just below 1 + 3 2^-11"},
    {0xbf803000u, 0xbc02, "-(1 + 3 2^-11), tie"},
    {0x38801000u, 0x0400, "2^-14 (1 + 2^-11), tie at the smallest normal"},
    {0x3dcccccdu, 0x2e66, "0.1f -> 1638 2^-14"},
    {0x477fe000u, 0x7bff, "65504, largest f16"},
    {0xc77fe000u, 0xfbff, "-65504"},
    {0x477fefffu, 0x7bff, "65519.996, below the overflow tie"},
    {0x477feffdu, 0x7bff, "65519.99 (nearest f32)"},
    {0x477ff000u, 0x7c00, "65520, tie -> inf"},
    {0xc77ff000u, 0xfc00, "-65520 -> -inf"},
    {0x47800000u, 0x7c00, "65536 -> inf"},
    {0x7f7fffffu, 0x7c00, "FLT_MAX -> inf"},
    {0x7f800000u, 0x7c00, "inf"},
    {0xff800000u, 0xfc00, "-inf"},
    {0x7fc00000u, NAN_OUT, "quiet NaN"},
    {0xffc00000u, NAN_OUT, "-quiet NaN"},
    {0x7f800001u, NAN_OUT, "signalling NaN, payload in the low bit only"},
    {0xff800001u, NAN_OUT, "-signalling NaN, low payload"},
    {0x7fffffffu, NAN_OUT, "NaN, all payload bits"},
};

/* f32 -> bf16: bf16 is the top half of an f32; 8 significant bits, so the
 * ulp at 1 is 2^-7 and subnormals are k 2^-133.  Largest finite
 * 0x7f7f = (2 - 2^-7) 2^127; the overflow tie is (2 - 2^-8) 2^127. */
static const struct narrow_case bf16_cases[] = {
    {0x00000000u, 0x0000, "+0"},
    {0x80000000u, 0x8000, "-0"},
    {0x3f800000u, 0x3f80, "1"},
    {0x3f808000u, 0x3f80, "1 + 2^-8, tie -> 1"},
    {0x3f808001u, 0x3f81, "just above 1 + 2^-8"},
    {0x3f818000u, 0x3f82, "1 + 3 2^-8, tie -> 1 + 2^-6"},
    {0xbf818000u, 0xbf82, "-(1 + 3 2^-8), tie"},
    {0x3f817fffu, 0x3f81, "just below 1 + 3 2^-8"},
    {0x3dcccccdu, 0x3dcd, "0.1f"},
    {0x7f7f0000u, 0x7f7f, "largest bf16"},
    {0x7f7f7fffu, 0x7f7f, "just below the overflow tie"},
    {0x7f7f8000u, 0x7f80, "overflow tie -> inf"},
    {0x7f7fffffu, 0x7f80, "FLT_MAX -> inf"},
    {0xff7fffffu, 0xff80, "-FLT_MAX -> -inf"},
    {0x00010000u, 0x0001, "2^-133, smallest bf16 subnormal"},
    {0x00008000u, 0x0000, "2^-134, tie between 0 and 2^-133 -> 0"},
    {0x00008001u, 0x0001, "just above 2^-134"},
    {0x00018000u, 0x0002, "1.5 2^-133, tie -> 2"},
    {0x00000001u, 0x0000, "2^-149 -> 0"},
    {0x007fffffu, 0x0080, "largest f32 subnormal -> 2^-126"},
    {0x7f800000u, 0x7f80, "inf"},
    {0xff800000u, 0xff80, "-inf"},
    {0x7fc00000u, NAN_OUT, "quiet NaN"},
    {0x7f800001u, NAN_OUT, "signalling NaN, low payload (truncation would give inf)"},
    {0xff800001u, NAN_OUT, "-signalling NaN, low payload"},
    {0x7fffffffu, NAN_OUT, "NaN, all payload bits (rounding up would carry)"},
};

#define N_F16_CASES (sizeof f16_cases / sizeof f16_cases[0])
#define N_BF16_CASES (sizeof bf16_cases / sizeof bf16_cases[0])

static int case_ok(const struct fmt *f, const struct narrow_case *c, uint16_t got)
{
    if (c->want == NAN_OUT)
        return fmt_is_nan(f, got) && (got >> 15) == (c->in >> 31);
    return got == c->want;
}

/* ---------------------------------------------------------------- f16 */

static void test_f16_widen(void)
{
    /* every pattern against the field-by-field decoding */
    long bad = 0;
    int first = -1;
    for (int h = 0; h < 65536; h++)
        if (!matches_decode(&F16, (uint16_t)h, bl_f16_to_f32((uint16_t)h)) && bad++ == 0)
            first = h;
    ok(bad == 0, "bl_f16_to_f32 of all 65536 patterns equals the field-by-field value: "
       "%ld mismatches (first 0x%04x)", bad, first < 0 ? 0 : first);

    if (!have_f16c()) {
        skip(1, "CPU without F16C: no hardware reference");
    } else {
        bad = 0;
        first = -1;
        for (int h = 0; h < 65536; h++)
            if (!same_f32(bl_f16_to_f32((uint16_t)h), hw_f16_to_f32((uint16_t)h)) && bad++ == 0)
                first = h;
        ok(bad == 0, "bl_f16_to_f32 of all 65536 patterns equals F16C vcvtph2ps "
           "(bits; NaN: NaN-ness and sign): %ld mismatches (first 0x%04x)", bad,
           first < 0 ? 0 : first);
    }

    /* bl_to_f32 over the whole table, from an odd (misaligned) address */
    unsigned char *buf = malloc(2 * 65536 + 1);
    float *out = malloc(65536 * sizeof *out);
    for (int h = 0; h < 65536; h++) {
        uint16_t v = (uint16_t)h;
        memcpy(buf + 1 + 2 * h, &v, 2);
    }
    bl_to_f32(BL_F16, buf + 1, out, 65536);
    bad = 0;
    first = -1;
    for (int h = 0; h < 65536; h++)
        if (!matches_decode(&F16, (uint16_t)h, out[h]) && bad++ == 0)
            first = h;
    ok(bad == 0, "bl_to_f32(BL_F16) of all 65536 patterns from a misaligned buffer: "
       "%ld mismatches (first 0x%04x)", bad, first < 0 ? 0 : first);
    free(buf);
    free(out);

    /* widening then narrowing gives the pattern back: every f16 value is an
     * f32 value, and an exact value rounds to itself */
    bad = 0;
    first = -1;
    for (int h = 0; h < 65536; h++) {
        uint16_t back = bl_f32_to_f16(bl_f16_to_f32((uint16_t)h));
        int good = fmt_is_nan(&F16, (uint16_t)h)
                       ? fmt_is_nan(&F16, back) && (back >> 15) == (h >> 15)
                       : back == h;
        if (!good && bad++ == 0)
            first = h;
    }
    ok(bad == 0, "bl_f32_to_f16(bl_f16_to_f32(h)) == h for all 65536 patterns "
       "(NaN: stays NaN, same sign): %ld mismatches (first 0x%04x)", bad,
       first < 0 ? 0 : first);
}

static void test_f16_narrow_edges(void)
{
    for (size_t i = 0; i < N_F16_CASES; i++) {
        const struct narrow_case *c = &f16_cases[i];
        uint16_t got = bl_f32_to_f16(u2f(c->in));
        if (c->want == NAN_OUT)
            ok(case_ok(&F16, c, got), "bl_f32_to_f16 %s (0x%08x): want a %sNaN, got 0x%04x",
               c->what, c->in, c->in >> 31 ? "negative " : "", got);
        else
            ok(case_ok(&F16, c, got), "bl_f32_to_f16 %s (0x%08x): want 0x%04x, got 0x%04x",
               c->what, c->in, c->want, got);
    }

    /* the hand table against the two independent references */
    int bad = 0;
    for (size_t i = 0; i < N_F16_CASES; i++) {
        const struct narrow_case *c = &f16_cases[i];
        uint16_t w = c->want == NAN_OUT ? (uint16_t)(0x7e00 | (c->in >> 31 << 15)) : c->want;
        if (!matches_rounding(&F16, u2f(c->in), w)) {
            diag("f16 table row '%s': the double-rounding model disagrees", c->what);
            bad++;
        }
    }
    ok(bad == 0, "f16 hand table agrees with the round-to-nearest-even model in double "
       "(%d rows disagree)", bad);
    if (!have_f16c()) {
        skip(1, "CPU without F16C: no hardware reference");
    } else {
        bad = 0;
        for (size_t i = 0; i < N_F16_CASES; i++) {
            const struct narrow_case *c = &f16_cases[i];
            uint16_t hw = hw_f32_to_f16(u2f(c->in));
            if (!case_ok(&F16, c, hw)) {
                diag("f16 table row '%s': F16C gives 0x%04x", c->what, hw);
                bad++;
            }
        }
        ok(bad == 0, "f16 hand table agrees with F16C vcvtps2ph (%d rows disagree)", bad);
    }
}

static void test_f16_narrow_random(void)
{
    for (int narrow = 0; narrow <= 1; narrow++) {
        const char *what = narrow ? "random f32 with exponents 2^-26..2^16"
                                  : "random f32 bit patterns (all exponents)";
        long bad_model = 0, bad_hw = 0;
        uint32_t first_model = 0, first_hw = 0;
        int hw = have_f16c();
        rng_state = narrow ? 0x5eed0002u : 0x5eed0001u;
        for (long i = 0; i < N_RANDOM; i++) {
            float x = random_f32(narrow);
            uint16_t got = bl_f32_to_f16(x);
            if (!matches_rounding(&F16, x, got) && bad_model++ == 0)
                first_model = f2u(x);
            if (hw && !same_f16(got, hw_f32_to_f16(x)) && bad_hw++ == 0)
                first_hw = f2u(x);
        }
        ok(bad_model == 0, "bl_f32_to_f16 on %d %s equals nearest-even rounding in double: "
           "%ld mismatches (first input 0x%08x)", N_RANDOM, what, bad_model, first_model);
        if (!hw)
            skip(1, "CPU without F16C: no hardware reference");
        else
            ok(bad_hw == 0, "bl_f32_to_f16 on %d %s equals F16C vcvtps2ph: "
               "%ld mismatches (first input 0x%08x)", N_RANDOM, what, bad_hw, first_hw);
    }
}

/* The conversions promise round to nearest even; a caller that has changed
 * the floating-point rounding mode (interval arithmetic, fesetround) must
 * still get those bits.  Only the library runs under the directed mode; the
 * results are checked against the double model after the mode is restored
 * (the model itself assumes round to nearest). */
#define N_MODE 4000
static void test_rounding_mode_independence(void)
{
    static float in[N_MODE];
    static uint16_t got16[N_MODE], gotbf[N_MODE];
    static float gotw[N_MODE];
    rng_state = 0x5eed0003u;
    for (int i = 0; i < N_MODE; i++) {
        if (i < (int)N_F16_CASES)
            in[i] = u2f(f16_cases[i].in);
        else if (i < 2000)   /* f16 subnormal range and just above */
            in[i] = u2f((uint32_t)(rng_next() & 0x807fffffu) | (uint32_t)(101 + i % 14) << 23);
        else
            in[i] = random_f32(1);
    }
    static const struct {
        int mode;
        const char *name;
    } modes[] = {
#ifdef FE_UPWARD
        {FE_UPWARD, "FE_UPWARD"},
#endif
#ifdef FE_DOWNWARD
        {FE_DOWNWARD, "FE_DOWNWARD"},
#endif
#ifdef FE_TOWARDZERO
        {FE_TOWARDZERO, "FE_TOWARDZERO"},
#endif
    };
    int n_modes = (int)(sizeof modes / sizeof modes[0]);
    if (n_modes == 0) {
        skip(3, "no directed rounding modes in <fenv.h>");
        return;
    }
    int bad16 = 0, badbf = 0, badw = 0, ran = 0;
    uint32_t first16 = 0;
    const char *first16_mode = "";
    for (int m = 0; m < n_modes; m++) {
        if (fesetround(modes[m].mode) != 0) {
            diag("fesetround(%s) failed", modes[m].name);
            continue;
        }
        for (int i = 0; i < N_MODE; i++) {
            got16[i] = bl_f32_to_f16(in[i]);
            gotbf[i] = bl_f32_to_bf16(in[i]);
            gotw[i] = bl_f16_to_f32((uint16_t)(i * 16 + 3));
        }
        fesetround(FE_TONEAREST);
        ran++;
        for (int i = 0; i < N_MODE; i++) {
            if (!matches_rounding(&F16, in[i], got16[i]) && bad16++ == 0) {
                first16 = f2u(in[i]);
                first16_mode = modes[m].name;
                diag("under %s bl_f32_to_f16(0x%08x = %a) = 0x%04x, nearest even is %a",
                     modes[m].name, f2u(in[i]), (double)in[i], got16[i],
                     round_ref(&F16, in[i]));
            }
            if (!matches_rounding(&BF16, in[i], gotbf[i]))
                badbf++;
            if (!matches_decode(&F16, (uint16_t)(i * 16 + 3), gotw[i]))
                badw++;
        }
    }
    ok(ran == n_modes && bad16 == 0, "bl_f32_to_f16 rounds to nearest even whatever the "
       "caller's rounding mode (%d inputs x %d directed modes): %d differ (first 0x%08x "
       "under %s)", N_MODE, n_modes, bad16, first16, first16_mode);
    ok(ran == n_modes && badbf == 0, "bl_f32_to_bf16 rounds to nearest even whatever the "
       "caller's rounding mode: %d differ", badbf);
    ok(ran == n_modes && badw == 0, "bl_f16_to_f32 is exact whatever the rounding mode: "
       "%d differ", badw);
}

/* ---------------------------------------------------------------- bf16 */

static void test_bf16(void)
{
    long bad = 0;
    int first = -1;
    for (int h = 0; h < 65536; h++)
        if (!matches_decode(&BF16, (uint16_t)h, bl_bf16_to_f32((uint16_t)h)) && bad++ == 0)
            first = h;
    ok(bad == 0, "bl_bf16_to_f32 of all 65536 patterns equals the field-by-field value: "
       "%ld mismatches (first 0x%04x)", bad, first < 0 ? 0 : first);

    unsigned char *buf = malloc(2 * 65536 + 1);
    float *out = malloc(65536 * sizeof *out);
    for (int h = 0; h < 65536; h++) {
        uint16_t v = (uint16_t)h;
        memcpy(buf + 1 + 2 * h, &v, 2);
    }
    bl_to_f32(BL_BF16, buf + 1, out, 65536);
    bad = 0;
    first = -1;
    for (int h = 0; h < 65536; h++)
        if (!matches_decode(&BF16, (uint16_t)h, out[h]) && bad++ == 0)
            first = h;
    ok(bad == 0, "bl_to_f32(BL_BF16) of all 65536 patterns from a misaligned buffer: "
       "%ld mismatches (first 0x%04x)", bad, first < 0 ? 0 : first);
    free(buf);
    free(out);

    for (size_t i = 0; i < N_BF16_CASES; i++) {
        const struct narrow_case *c = &bf16_cases[i];
        uint16_t got = bl_f32_to_bf16(u2f(c->in));
        if (c->want == NAN_OUT)
            ok(case_ok(&BF16, c, got), "bl_f32_to_bf16 %s (0x%08x): want a %sNaN, got 0x%04x",
               c->what, c->in, c->in >> 31 ? "negative " : "", got);
        else
            ok(case_ok(&BF16, c, got), "bl_f32_to_bf16 %s (0x%08x): want 0x%04x, got 0x%04x",
               c->what, c->in, c->want, got);
    }
    int tbad = 0;
    for (size_t i = 0; i < N_BF16_CASES; i++) {
        const struct narrow_case *c = &bf16_cases[i];
        uint16_t w = c->want == NAN_OUT ? (uint16_t)(0x7fc0 | (c->in >> 31 << 15)) : c->want;
        if (!matches_rounding(&BF16, u2f(c->in), w)) {
            diag("bf16 table row '%s': the double-rounding model disagrees", c->what);
            tbad++;
        }
    }
    ok(tbad == 0, "bf16 hand table agrees with the round-to-nearest-even model in double "
       "(%d rows disagree)", tbad);

    rng_state = 0x5eed0004u;
    bad = 0;
    long nans = 0;
    uint32_t firstx = 0;
    for (long i = 0; i < N_RANDOM; i++) {
        float x = random_f32(0);
        if (i % 1000 == 0)   /* make sure NaNs with all kinds of payload are in */
            x = u2f((f2u(x) & 0x807fffffu) | 0x7f800001u);
        nans += isnan(x);
        uint16_t got = bl_f32_to_bf16(x);
        if (!matches_rounding(&BF16, x, got) && bad++ == 0)
            firstx = f2u(x);
    }
    ok(bad == 0, "bl_f32_to_bf16 on %d random f32 bit patterns (%ld NaNs) equals "
       "nearest-even rounding in double, NaN stays NaN: %ld mismatches (first 0x%08x)",
       N_RANDOM, nans, bad, firstx);
}

/* ---------------------------------------------------------------- f32 */

static void test_to_f32_f32(void)
{
    static const uint32_t pat[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x3f800000u,
                                   0xc0490fdbu, 0x7f7fffffu, 0x7f800000u, 0xff800000u,
                                   0x7fc00001u, 0x7f800001u, 0xffbfffffu, 0x12345678u};
    enum { N = sizeof pat / sizeof pat[0] };
    unsigned char buf[4 * N + 1];
    float out[N];
    memcpy(buf + 1, pat, sizeof pat);
    bl_to_f32(BL_F32, buf + 1, out, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (f2u(out[i]) != pat[i])
            bad++;
    ok(bad == 0, "bl_to_f32(BL_F32) copies %d patterns bit for bit (NaN payloads, "
       "misaligned source): %d differ", N, bad);
}

/* ---------------------------------------------------------------- dtypes */

static void test_dtypes(void)
{
    /* From ggml's block definitions: q8_0 is an f16 scale + 32 int8 = 34
     * bytes per 32; q4_0 an f16 scale + 16 bytes of nibbles = 18 per 32;
     * q4_K two f16 + 12 bytes of scales + 128 of nibbles = 144 per 256;
     * q6_K 128 (low 4 bits) + 64 (high 2 bits) + 16 scales + an f16 = 210
     * per 256. */
    static const struct {
        int type;
        const char *name;
        int64_t block;
        int64_t n;
        size_t bytes;
        int supported;   /* -1: not asserted (quantized types may come) */
    } t[] = {
        {BL_F32, "f32", 1, 7, 28, 1},
        {BL_F16, "f16", 1, 7, 14, 1},
        {BL_BF16, "bf16", 1, 3, 6, 1},
        {2, "q4_0", 32, 64, 36, -1},
        {8, "q8_0", 32, 96, 102, -1},
        {12, "q4_K", 256, 512, 288, -1},
        {14, "q6_K", 256, 256, 210, -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *name = bl_dtype_name(t[i].type);
        int64_t blk = bl_dtype_block(t[i].type);
        size_t rb = bl_dtype_row_bytes(t[i].type, t[i].n);
        int sup = bl_dtype_supported(t[i].type);
        ok(name && strcmp(name, t[i].name) == 0 && blk == t[i].block && rb == t[i].bytes &&
               (t[i].supported < 0 || sup == t[i].supported),
           "dtype %d: name '%s' block %lld, %lld elements take %zu bytes, supported %d "
           "(want '%s' %lld %zu %d)",
           t[i].type, name ? name : "(null)", (long long)blk, (long long)t[i].n, rb, sup,
           t[i].name, (long long)t[i].block, t[i].bytes, t[i].supported);
    }
    ok(bl_dtype_row_bytes(BL_F32, 0) == 0 && bl_dtype_row_bytes(8, 0) == 0,
       "row_bytes of 0 elements is 0");
    size_t a = bl_dtype_row_bytes(8, 33), b = bl_dtype_row_bytes(8, 31),
           c = bl_dtype_row_bytes(12, 128), d = bl_dtype_row_bytes(14, 257);
    ok(a == 0 && b == 0 && c == 0 && d == 0,
       "row_bytes is 0 for a count that is not a whole number of blocks "
       "(q8_0 33: %zu, q8_0 31: %zu, q4_K 128: %zu, q6_K 257: %zu)", a, b, c, d);
    /* 4 and 5 were q4_2/q4_3, removed from ggml; 31 is unassigned. */
    static const int unknown[] = {-1, 4, 5, 31, 1000};
    int bad = 0;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int u = unknown[i];
        if (bl_dtype_name(u) || bl_dtype_block(u) != 0 || bl_dtype_row_bytes(u, 32) != 0 ||
            bl_dtype_row_bytes(u, 256) != 0 || bl_dtype_supported(u)) {
            diag("unknown type %d: name %s block %lld row_bytes(32) %zu supported %d", u,
                 bl_dtype_name(u) ? bl_dtype_name(u) : "(null)", (long long)bl_dtype_block(u),
                 bl_dtype_row_bytes(u, 32), bl_dtype_supported(u));
            bad++;
        }
    }
    ok(bad == 0, "unknown types (-1, 4, 5, 31, 1000): no name, block 0, row_bytes 0, "
       "unsupported (%d wrong)", bad);
}

int main(void)
{
    if (!have_f16c())
        diag("no F16C on this CPU: the hardware comparisons are skipped");
    test_f16_widen();
    test_f16_narrow_edges();
    test_f16_narrow_random();
    test_bf16();
    test_to_f32_f32();
    test_rounding_mode_independence();
    test_dtypes();
    return done_testing();
}
