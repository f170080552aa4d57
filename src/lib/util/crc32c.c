/*
 * CRC32C (Castagnoli), as the file header and the per-extent checksums use
 * it: the fastest of carry-less-multiplication folding, the SSE4.2
 * instruction and a portable slice-by-8 table, chosen once at run time.
 * docs/file-format.md has the paths and their measured speeds.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "mapram/crc32c.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define CRC32C_POLY_REFLECTED 0x82f63b78U
#define CRC32C_POLY_NORMAL 0x11edc6f41ULL   /* x^32 + ..., bit j = x^j */

static uint32_t crc32c_table[8][256];
static bool crc32c_have_hw;
static bool crc32c_have_clmul;
/* zero_op[k]: the linear map a run of 2^k zero bytes applies to the raw
 * (unconditioned) CRC register, as 32 columns (column i = image of bit i). */
static uint32_t zero_op[64][32];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_apply(const uint32_t op[32], uint32_t v)
{
    uint32_t r = 0;

    for (int i = 0; v; i++, v >>= 1)
        if (v & 1)
            r ^= op[i];
    return r;
}

/* Zeros shift the register linearly: one zero bit is "shift right, xor
 * the polynomial if the low bit was set"; squaring that map gives 2, 4,
 * 8 bits, a byte, then 2^k bytes. */
static void zero_ops_init(void)
{
    uint32_t bit[32], tmp[32];

    bit[0] = CRC32C_POLY_REFLECTED;
    for (int i = 1; i < 32; i++)
        bit[i] = 1u << (i - 1);
    for (int sq = 0; sq < 3; sq++) {      /* 1 -> 8 bits */
        for (int i = 0; i < 32; i++)
            tmp[i] = gf2_apply(bit, bit[i]);
        memcpy(bit, tmp, sizeof(bit));
    }
    memcpy(zero_op[0], bit, sizeof(bit));
    for (int k = 1; k < 64; k++)
        for (int i = 0; i < 32; i++)
            zero_op[k][i] = gf2_apply(zero_op[k - 1], zero_op[k - 1][i]);
}

#if defined(__x86_64__)
/* x^n mod P, in the reflected 32-bit form the folding multiplies by
 * (bit i = coefficient of x^(31-i)). */
static uint64_t xpow_mod_reflected(unsigned n)
{
    uint64_t r = 1, out = 0;

    while (n--) {
        r <<= 1;
        if (r >> 32)
            r ^= CRC32C_POLY_NORMAL;
    }
    for (int i = 0; i < 32; i++)
        if (r & (1ULL << i))
            out |= 1ULL << (31 - i);
    return out;
}

/* Folding a 16-byte lane D bits forward.  A lane read little-endian holds
 * the message polynomial A = A_hi x^64 + A_lo with A_hi in the low qword
 * (reflected: the first bit is the highest power).  A carry-less product
 * of a reflected qword with a reflected 32-bit constant k lands as
 * (qword * k) x^33 in the lane's frame, so moving A_hi x^64 and A_lo by
 * x^D needs k_lo = x^(D+31) and k_hi = x^(D-33), both mod P. */
enum { FOLD_2048, FOLD_512, FOLD_128, FOLD_DISTANCES };
static uint64_t fold_k[FOLD_DISTANCES][2];
static bool crc32c_have_vpclmul;

static void fold_constants_init(void)
{
    static const unsigned dist[FOLD_DISTANCES] = { 2048, 512, 128 };

    for (int i = 0; i < FOLD_DISTANCES; i++) {
        fold_k[i][0] = xpow_mod_reflected(dist[i] + 31);
        fold_k[i][1] = xpow_mod_reflected(dist[i] - 33);
    }
}
#endif

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;

        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (crc & 1 ? CRC32C_POLY_REFLECTED : 0);
        crc32c_table[0][i] = crc;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc32c_table[k][i] = (crc32c_table[k - 1][i] >> 8) ^
                                 crc32c_table[0][crc32c_table[k - 1][i] & 0xff];
#if defined(__x86_64__)
    crc32c_have_hw = __builtin_cpu_supports("sse4.2");
    crc32c_have_clmul = crc32c_have_hw && __builtin_cpu_supports("pclmul");
    crc32c_have_vpclmul = crc32c_have_clmul &&
                          __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("vpclmulqdq");
    fold_constants_init();
#endif
    zero_ops_init();
}

/* Portable: one table step per byte at the edges, eight bytes per step in
 * between (little-endian hosts only take the fast loop). */
static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^
              crc32c_table[5][(w >> 16) & 0xff] ^
              crc32c_table[4][(w >> 24) & 0xff] ^
              crc32c_table[3][(w >> 32) & 0xff] ^
              crc32c_table[2][(w >> 40) & 0xff] ^
              crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
    }
#endif
    while (len--)
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
static __m128i fold_constant(int distance)
{
    return _mm_set_epi64x((long long)fold_k[distance][1],
                          (long long)fold_k[distance][0]);
}

__attribute__((target("sse4.2,pclmul")))
static __m128i fold_lane(__m128i a, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x00),
                                       _mm_clmulepi64_si128(a, k, 0x11)),
                         next);
}

/* Four lanes x[0..3] cover the 64 bytes before *pp: fold them into one,
 * fold in the remaining 16-byte pieces, and let the CRC instruction
 * finish the last lane's 16 bytes.  Leaves fewer than 16 bytes. */
__attribute__((target("sse4.2,pclmul")))
static uint64_t fold_finish(__m128i x[4], const uint8_t **pp, size_t *lenp)
{
    __m128i k128 = fold_constant(FOLD_128);
    __m128i a = fold_lane(fold_lane(fold_lane(x[0], k128, x[1]), k128, x[2]),
                          k128, x[3]);

    for (; *lenp >= 16; *pp += 16, *lenp -= 16)
        a = fold_lane(a, k128, _mm_loadu_si128((const __m128i *)*pp));
    return __builtin_ia32_crc32di(
        __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(a)),
        (uint64_t)_mm_extract_epi64(a, 1));
}

/* Four 16-byte lanes folded 64 bytes forward per step.  The initial CRC
 * enters as an XOR into the first four bytes.  Needs *lenp >= 64. */
__attribute__((target("sse4.2,pclmul")))
static uint64_t crc32c_clmul(uint64_t c, const uint8_t **pp, size_t *lenp)
{
    const uint8_t *p = *pp;
    __m128i k512 = fold_constant(FOLD_512), x[4];

    for (int i = 0; i < 4; i++)
        x[i] = _mm_loadu_si128((const __m128i *)(p + 16 * i));
    x[0] = _mm_xor_si128(x[0], _mm_cvtsi32_si128((int)(uint32_t)c));
    for (*pp += 64, *lenp -= 64; *lenp >= 64; *pp += 64, *lenp -= 64)
        for (int i = 0; i < 4; i++)
            x[i] = fold_lane(x[i], k512,
                             _mm_loadu_si128((const __m128i *)(*pp + 16 * i)));
    return fold_finish(x, pp, lenp);
}

__attribute__((target("avx512f,vpclmulqdq")))
static __m512i fold_zmm(__m512i a, __m512i k, __m512i next)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, k, 0x00),
                                     _mm512_clmulepi64_epi128(a, k, 0x11),
                                     next, 0x96);       /* a ^ b ^ c */
}

/* The same folding with AVX-512: four 64-byte registers, 256 bytes per
 * step (the 128-bit multiplier alone cannot keep up with memory here).
 * Needs *lenp >= 256. */
__attribute__((target("sse4.2,pclmul,avx512f,vpclmulqdq")))
static uint64_t crc32c_vpclmul(uint64_t c, const uint8_t **pp, size_t *lenp)
{
    __m512i k2048 = _mm512_broadcast_i32x4(fold_constant(FOLD_2048));
    __m512i k512 = _mm512_broadcast_i32x4(fold_constant(FOLD_512));
    __m512i z[4];
    __m128i x[4];

    for (int i = 0; i < 4; i++)
        z[i] = _mm512_loadu_si512((const void *)(*pp + 64 * i));
    z[0] = _mm512_xor_si512(z[0], _mm512_zextsi128_si512(
                                      _mm_cvtsi32_si128((int)(uint32_t)c)));
    for (*pp += 256, *lenp -= 256; *lenp >= 256; *pp += 256, *lenp -= 256)
        for (int i = 0; i < 4; i++)
            z[i] = fold_zmm(z[i], k2048,
                            _mm512_loadu_si512((const void *)(*pp + 64 * i)));
    z[0] = fold_zmm(fold_zmm(fold_zmm(z[0], k512, z[1]), k512, z[2]), k512,
                    z[3]);
    for (; *lenp >= 64; *pp += 64, *lenp -= 64)
        z[0] = fold_zmm(z[0], k512, _mm512_loadu_si512((const void *)*pp));
    x[0] = _mm512_extracti32x4_epi32(z[0], 0);
    x[1] = _mm512_extracti32x4_epi32(z[0], 1);
    x[2] = _mm512_extracti32x4_epi32(z[0], 2);
    x[3] = _mm512_extracti32x4_epi32(z[0], 3);
    return fold_finish(x, pp, lenp);
}

__attribute__((target("sse4.2,pclmul")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;

    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    if (crc32c_have_vpclmul && len >= 256)
        c = crc32c_vpclmul(c, &p, &len);
    else if (crc32c_have_clmul && len >= 64)
        c = crc32c_clmul(c, &p, &len);
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

uint32_t mr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
    if (crc32c_have_hw)
        return ~crc32c_hw(~crc, buf, len);
#endif
    return ~crc32c_sw(~crc, buf, len);
}

uint32_t mr_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw(~crc, buf, len);
}

uint32_t mr_crc32c_zeros(uint32_t crc, uint64_t len)
{
    uint32_t r;

    pthread_once(&crc32c_once, crc32c_init);
    r = ~crc;
    for (int k = 0; len; k++, len >>= 1)
        if (len & 1)
            r = gf2_apply(zero_op[k], r);
    return ~r;
}
