/* Unit tests for mapram's file header codec
 * (src/lib/format/mapram_header.c, docs/file-header.md). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "format/mapram_header.h"
#include "mapram/crc32c.h"

static struct mr_file_header sample(void)
{
    struct mr_file_header h = {
        .version = 1,
        .state = MR_FILE_STATE_DONE,
        .header_size = 4096,
        .flags = MR_FILE_FLAG_MULTIFD | MR_FILE_FLAG_MAPPED_RAM,
        .stream_offset = 4096,
        .stream_size = 0x1234567,
        .ram_size = 64 << 20,
        .created = 1763771400,
        .channels = 2,
        .meta_len = 17,
    };

    strcpy(h.vm_name, "guest-1");
    strcpy(h.tool_version, "mapram 0.1.0");
    strcpy(h.vm_version, "QEMU 10.0.2");
    return h;
}

static void layout_is_little_endian_at_documented_offsets(void **state)
{
    struct mr_file_header h = sample();
    uint8_t s[512];

    (void)state;
    mr_file_header_encode(&h, s);
    assert_memory_equal(s, "MAPRAMSV", 8);
    assert_memory_equal(s + 8, "\x01\0\0\0", 4);
    assert_memory_equal(s + 12, "DONE", 4);
    assert_memory_equal(s + 16, "\x00\x10\0\0", 4);
    assert_int_equal(s[20], 0x18);
    assert_memory_equal(s + 24, "\x00\x10\0\0\0\0\0\0", 8);
    assert_memory_equal(s + 32, "\x67\x45\x23\x01\0\0\0\0", 8);
    assert_int_equal(s[56], 2);
    assert_string_equal((char *)s + 64, "guest-1");
    assert_string_equal((char *)s + 128, "mapram 0.1.0");
    assert_string_equal((char *)s + 160, "QEMU 10.0.2");
    assert_int_equal(s[192], 17);
    for (int i = 196; i < 512; i++)
        assert_int_equal(s[i], 0);
    /* The CRC covers the sector with its own field zeroed. */
    uint32_t stored = (uint32_t)s[60] | (uint32_t)s[61] << 8 |
                      (uint32_t)s[62] << 16 | (uint32_t)s[63] << 24;
    memset(s + 60, 0, 4);
    assert_int_equal(stored, mr_crc32c(0, s, 512));
    assert_int_equal(stored, h.header_crc);
}

static void round_trip(void **state)
{
    struct mr_file_header h = sample(), d;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t s[512];

    (void)state;
    mr_file_header_encode(&h, s);
    assert_int_equal(mr_file_header_decode(s, &d, &err), 0);
    assert_int_equal(d.stream_size, h.stream_size);
    assert_int_equal(d.created, h.created);
    assert_string_equal(d.vm_name, "guest-1");
    assert_true(mr_file_header_is_complete(&d));
    assert_int_equal(mr_file_header_check_size(&d, 4096 + 0x1234567, &err), 0);
    assert_int_equal(mr_file_header_check_size(&d, 4096 + 0x1234566, &err),
                     -EIO);
    assert_string_equal(err.msg, "truncated: expected the stream to end at "
                        "0x1235567 (mapram header), found the end of the file "
                        "at 0x1235566");
}

static void long_name_is_truncated_not_overflowing(void **state)
{
    struct mr_file_header h = sample(), d;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t s[512];

    (void)state;
    memset(h.vm_name, 'x', 64);
    h.vm_name[64] = '\0';
    mr_file_header_encode(&h, s);
    assert_int_equal(mr_file_header_decode(s, &d, &err), 0);
    assert_int_equal(strlen(d.vm_name), 64);
}

static void expect_decode_error(struct mr_file_header *h, int field_off,
                                uint8_t value, int code, const char *msg)
{
    struct mr_file_header d;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t s[512];

    mr_file_header_encode(h, s);
    if (field_off >= 0) {
        /* Corrupt after encoding, then fix the CRC so the field check runs. */
        uint32_t crc;

        s[field_off] = value;
        memset(s + 60, 0, 4);
        crc = mr_crc32c(0, s, 512);
        for (int i = 0; i < 4; i++)
            s[60 + i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(mr_file_header_decode(s, &d, &err), code);
    assert_string_equal(err.msg, msg);
}

static void decode_errors(void **state)
{
    struct mr_file_header h = sample();
    struct mr_file_header d;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t s[512];

    (void)state;
    expect_decode_error(&h, 8, 2, -ENOTSUP, "expected mapram header version 1 "
                        "at offset 0x8, found 2");
    expect_decode_error(&h, 12, 'X', -EINVAL, "expected mapram header state "
                        "PART or DONE at offset 0xc, found 0x454e4f58");
    expect_decode_error(&h, 16, 1, -EINVAL, "expected a mapram header size "
                        "that is a multiple of 512 at offset 0x10, found 4097");
    expect_decode_error(&h, 20, 0x20, -EINVAL, "expected mapram header flags "
                        "within 0x1f at offset 0x14, found 0x20");
    expect_decode_error(&h, 25, 0, -EINVAL, "expected a stream offset of at "
                        "least the header size 0x1000 at offset 0x18, found "
                        "0x0");
    expect_decode_error(&h, 193, 0x10, -EINVAL, "expected metadata of at most "
                        "3584 bytes at offset 0xc0, found 4113");
    mr_file_header_encode(&h, s);
    s[100] ^= 1;
    assert_int_equal(mr_file_header_decode(s, &d, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "expected mapram header CRC32C"));
    assert_non_null(strstr(err.msg, "at offset 0x3c, found 0x"));
    mr_error_clear(&err);
    s[0] = 'X';
    assert_int_equal(mr_file_header_decode(s, &d, &err), -EINVAL);
}

static void part_state_is_incomplete(void **state)
{
    struct mr_file_header h = sample(), d;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t s[512];

    (void)state;
    h.state = MR_FILE_STATE_PART;
    h.stream_size = 0;
    mr_file_header_encode(&h, s);
    assert_memory_equal(s + 12, "PART", 4);
    assert_int_equal(mr_file_header_decode(s, &d, &err), 0);
    assert_false(mr_file_header_is_complete(&d));
    assert_int_equal(mr_file_header_check_size(&d, 0, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_is_little_endian_at_documented_offsets),
        cmocka_unit_test(round_trip),
        cmocka_unit_test(long_name_is_truncated_not_overflowing),
        cmocka_unit_test(decode_errors),
        cmocka_unit_test(part_state_is_incomplete),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
