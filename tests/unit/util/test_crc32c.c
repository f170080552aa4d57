/* Unit tests for CRC32C (src/lib/util/crc32c.c) against published check
 * values (RFC 3720 appendix B.4 and the common "123456789" check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mapram/crc32c.h"

static void known_vectors(void **state)
{
    uint8_t buf[32];

    (void)state;
    assert_int_equal(mr_crc32c(0, "123456789", 9), 0xe3069283);
    assert_int_equal(mr_crc32c(0, "", 0), 0);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(mr_crc32c(0, buf, sizeof(buf)), 0x8a9136aa);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(mr_crc32c(0, buf, sizeof(buf)), 0x62a8ab43);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(mr_crc32c(0, buf, sizeof(buf)), 0x46dd794e);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(mr_crc32c(0, buf, sizeof(buf)), 0x113fdb5c);
}

static void chaining(void **state)
{
    (void)state;
    assert_int_equal(mr_crc32c(mr_crc32c(0, "1234", 4), "56789", 5),
                     0xe3069283);
}

/* The hardware and the portable paths agree at every length and alignment,
 * including chained calls that split a buffer at odd places. */
static void hw_matches_portable(void **state)
{
    static uint8_t buf[4096 + 16];
    uint32_t seed = 12345;

    (void)state;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = (uint8_t)(seed >> 16);
    }
    assert_int_equal(mr_crc32c_portable(0, "123456789", 9), 0xe3069283);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 80; len++)
            assert_int_equal(mr_crc32c(0, buf + off, len),
                             mr_crc32c_portable(0, buf + off, len));
    assert_int_equal(mr_crc32c(0, buf + 3, 4096),
                     mr_crc32c_portable(0, buf + 3, 4096));
    assert_int_equal(mr_crc32c(mr_crc32c(0, buf, 1001), buf + 1001, 3000),
                     mr_crc32c_portable(0, buf, 4001));
}

/* Lengths around the folding paths' edges (64-byte SSE steps, 256-byte
 * AVX-512 steps, the 16-byte tail and the bytes after it), at odd
 * alignments and with a non-zero starting CRC, against the table. */
static void folding_matches_portable(void **state)
{
    static uint8_t buf[70000];
    static const size_t lens[] = { 63, 64, 65, 79, 80, 127, 128, 191, 255,
                                   256, 257, 271, 272, 319, 320, 335, 511,
                                   512, 513, 767, 1024 + 15, 4096, 65536,
                                   65536 + 17 };
    uint32_t seed = 777;

    (void)state;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = (uint8_t)(seed >> 16);
    }
    for (size_t off = 0; off < 3; off++)
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            assert_int_equal(mr_crc32c(0x1234, buf + off, lens[i]),
                             mr_crc32c_portable(0x1234, buf + off, lens[i]));
            assert_int_equal(mr_crc32c(0, buf + off, lens[i]),
                             mr_crc32c_portable(0, buf + off, lens[i]));
        }
    /* All-ones data: every product term is live. */
    memset(buf, 0xff, 1000);
    assert_int_equal(mr_crc32c(0xffffffff, buf, 1000),
                     mr_crc32c_portable(0xffffffff, buf, 1000));
}

static void zeros_without_memory(void **state)
{
    static uint8_t z[3 << 20];
    const uint64_t lens[] = { 0, 1, 2, 3, 7, 8, 4095, 4096, 65537,
                              1 << 20, (3 << 20) - 5 };

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        assert_int_equal(mr_crc32c_zeros(0, lens[i]),
                         mr_crc32c(0, z, lens[i]));
        assert_int_equal(mr_crc32c_zeros(0xe3069283, lens[i]),
                         mr_crc32c(0xe3069283, z, lens[i]));
    }
    assert_int_equal(mr_crc32c_zeros(0, 32), 0x8a9136aa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_vectors),
        cmocka_unit_test(chaining),
        cmocka_unit_test(hw_matches_portable),
        cmocka_unit_test(folding_matches_portable),
        cmocka_unit_test(zeros_without_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
