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

/* Buffers long enough for the three-stream path (3 x 8 KiB stripes), at
 * lengths around its boundaries and odd alignments. */
static void long_buffers_match_portable(void **state)
{
    static uint8_t buf[4 * 24576 + 64];
    static const size_t lens[] = { 24575, 24576, 24577, 24576 + 8,
                                   2 * 24576 - 1, 3 * 24576 + 13,
                                   4 * 24576 };
    uint32_t seed = 777;

    (void)state;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = (uint8_t)(seed >> 16);
    }
    for (size_t off = 0; off < 3; off++)
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
            assert_int_equal(mr_crc32c(0x1234, buf + off, lens[i]),
                             mr_crc32c_portable(0x1234, buf + off, lens[i]));
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
        cmocka_unit_test(long_buffers_match_portable),
        cmocka_unit_test(zeros_without_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
