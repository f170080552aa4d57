/* Unit tests: the working-set sidecar codec (format/wset.c): a round
 * trip, and each kind of damage refused with its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "format/wset.h"
#include "mapram/crc32c.h"

static struct mr_wset_block blocks[2] = {
    { "pc.ram", 150 << 20 }, { "pc.bios", 256 << 10 },
};
static struct mr_wset_entry entries[3] = { { 0, 7 }, { 0, 6 }, { 1, 0 } };

static void sample(uint8_t **buf, size_t *len)
{
    struct mr_wset w = { .granule = 1 << 20, .file_size = 12345,
                         .file_mtime_ns = 678, .nblocks = 2,
                         .blocks = blocks, .n = 3, .e = entries };

    assert_int_equal(mr_wset_encode(&w, buf, len), 0);
}

static void recrc(uint8_t *buf, size_t len)
{
    uint32_t crc = mr_crc32c(0, buf, len - 4);

    for (int i = 0; i < 4; i++)
        buf[len - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static const char *decode_msg(const uint8_t *buf, size_t len)
{
    static struct mr_error err;
    struct mr_wset w;

    mr_error_clear(&err);
    if (!mr_wset_decode(buf, len, &w, &err))
        mr_wset_free(&w);
    return err.msg;
}

static void test_round_trip(void **state)
{
    uint8_t *buf;
    size_t len;
    struct mr_wset w;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    sample(&buf, &len);
    assert_int_equal(mr_wset_decode(buf, len, &w, &err), 0);
    assert_int_equal(w.granule, 1 << 20);
    assert_int_equal(w.file_size, 12345);
    assert_int_equal(w.file_mtime_ns, 678);
    assert_int_equal(w.nblocks, 2);
    assert_string_equal(w.blocks[1].name, "pc.bios");
    assert_int_equal(w.blocks[0].used_length, 150 << 20);
    assert_int_equal(w.n, 3);
    assert_memory_equal(w.e, entries, sizeof(entries));
    mr_wset_free(&w);
    free(buf);
}

static void test_damage(void **state)
{
    uint8_t *buf;
    size_t len;

    (void)state;
    sample(&buf, &len);
    buf[len - 1] ^= 1;
    assert_string_equal(decode_msg(buf, len), "working set: CRC mismatch");
    buf[len - 1] ^= 1;
    assert_string_equal(decode_msg(buf, len - 8),
                        "working set: CRC mismatch");
    assert_string_equal(decode_msg(buf, 10),
                        "working set: not a working-set file");
    buf[8] = 2;                                   /* version */
    recrc(buf, len);
    assert_string_equal(decode_msg(buf, len), "working set: unknown version");
    buf[8] = 1;
    buf[16] = 3;                                  /* granule 0x100003 */
    recrc(buf, len);
    assert_string_equal(decode_msg(buf, len), "working set: field out of range");
    buf[16] = 0;
    buf[len - 8] = 9;                             /* bios granule 9 */
    recrc(buf, len);
    assert_string_equal(decode_msg(buf, len), "working set: entry beyond "
                        "its block");
    buf[len - 8] = 0;
    buf[len - 12] = 5;                            /* block 5 */
    recrc(buf, len);
    assert_string_equal(decode_msg(buf, len), "working set: entry names no "
                        "block");
    buf[len - 12] = 1;
    buf[40] = 4;                                  /* 4 entries */
    recrc(buf, len);
    assert_string_equal(decode_msg(buf, len), "working set: entry count "
                        "does not match the size");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
