/*
 * CRC32C.  The file header needs it for 512 bytes, but the per-extent data
 * checksums (docs/file-format.md) run it over all of guest RAM on every
 * save and load, so speed matters: x86-64 CPUs with SSE4.2 have a CRC32C
 * instruction (8 bytes per step), checked once at run time; elsewhere a
 * slice-by-8 table does 8 bytes per step in portable C.  The tables are
 * built once, thread-safely.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "mapram/crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78U

static uint32_t crc32c_table[8][256];
static bool crc32c_have_hw;
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
/* The CRC32 instruction has a latency of about three cycles but can start
 * one per cycle, so three independent streams over consecutive stripes run
 * about three times faster than one chain.  The stripes' registers are
 * then joined by shifting the earlier ones over the later stripes' length
 * (the zero-run operators: the raw CRC is linear). */
#define CRC32C_STRIPE_LOG2 13
#define CRC32C_STRIPE ((size_t)1 << CRC32C_STRIPE_LOG2) /* bytes per stream */

__attribute__((target("sse4.2")))
static uint64_t crc32c_hw_3way(uint64_t c, const uint8_t **pp, size_t *lenp)
{
    const uint8_t *p = *pp;
    size_t len = *lenp;

    for (; len >= 3 * CRC32C_STRIPE; len -= 3 * CRC32C_STRIPE,
                                     p += 3 * CRC32C_STRIPE) {
        uint64_t c1 = 0, c2 = 0;

        for (size_t i = 0; i < CRC32C_STRIPE; i += 8) {
            uint64_t w0, w1, w2;

            memcpy(&w0, p + i, 8);
            memcpy(&w1, p + CRC32C_STRIPE + i, 8);
            memcpy(&w2, p + 2 * CRC32C_STRIPE + i, 8);
            c = __builtin_ia32_crc32di(c, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        c = gf2_apply(zero_op[CRC32C_STRIPE_LOG2], (uint32_t)c) ^ (uint32_t)c1;
        c = gf2_apply(zero_op[CRC32C_STRIPE_LOG2], (uint32_t)c) ^ (uint32_t)c2;
    }
    *pp = p;
    *lenp = len;
    return c;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;

    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    c = crc32c_hw_3way(c, &p, &len);
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
