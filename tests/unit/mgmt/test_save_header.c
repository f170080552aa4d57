/* Unit tests for mapram's save-file header codec (src/cli/save_header.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "save_header.h"

static void sample(struct save_header *h)
{
    memset(h, 0, sizeof(*h));
    h->version = SAVE_HEADER_VERSION;
    h->state = SAVE_HEADER_STATE_DONE;
    h->header_size = 4096;
    h->flags = SAVE_HEADER_F_WAS_RUNNING | SAVE_HEADER_F_MULTIFD |
               SAVE_HEADER_F_MAPPED_RAM;
    h->stream_offset = 4096;
    h->stream_size = 73481334;
    h->ram_size = 64u << 20;
    h->created = 1700000000;
    h->channels = 4;
    strcpy(h->vm_name, "guest-1");
    strcpy(h->tool_version, "mapram 0.1.0");
    strcpy(h->vm_version, "QEMU 10.0.2");
    h->meta_len = 17;
}

static void test_crc32c_vectors(void **state)
{
    uint8_t zeros[32] = { 0 };

    (void)state;
    assert_int_equal(save_header_crc32c(0, "123456789", 9), 0xe3069283);
    assert_int_equal(save_header_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aa);
    assert_int_equal(save_header_crc32c(0, "", 0), 0);
}

static void test_layout(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES];
    struct save_header h;

    (void)state;
    sample(&h);
    save_header_encode(&h, s);
    assert_memory_equal(s, "MAPRAMSV", 8);
    assert_memory_equal(s + 12, "DONE", 4);      /* state, little-endian */
    assert_int_equal(s[16], 0x00);               /* header_size 4096 */
    assert_int_equal(s[17], 0x10);
    assert_int_equal(s[20], 0x19);               /* flags */
    assert_int_equal(s[24 + 1], 0x10);           /* stream_offset */
    assert_int_equal(s[56], 4);                  /* channels */
    assert_string_equal((char *)s + 64, "guest-1");
    assert_string_equal((char *)s + 128, "mapram 0.1.0");
    assert_string_equal((char *)s + 160, "QEMU 10.0.2");
    assert_int_equal(s[192], 17);                /* meta_len */
    for (int i = 196; i < 512; i++)
        assert_int_equal(s[i], 0);
}

static void test_roundtrip(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES];
    struct save_header h, d;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    sample(&h);
    save_header_encode(&h, s);
    assert_int_equal(save_header_decode(s, &d, &err), 0);
    assert_int_equal(d.header_crc, h.header_crc);
    assert_int_equal(d.flags, h.flags);
    assert_int_equal(d.stream_offset, 4096);
    assert_int_equal(d.stream_size, 73481334);
    assert_int_equal(d.ram_size, 64u << 20);
    assert_int_equal(d.created, 1700000000);
    assert_int_equal(d.channels, 4);
    assert_int_equal(d.meta_len, 17);
    assert_string_equal(d.vm_name, "guest-1");
    assert_string_equal(d.vm_version, "QEMU 10.0.2");
    assert_int_equal(save_header_check_restorable(&d, 4096 + 73481334, &err), 0);
}

static void test_long_name_is_cut(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES];
    struct save_header h, d;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    sample(&h);
    memset(h.vm_name, 'n', 64);
    h.vm_name[64] = '\0';
    save_header_encode(&h, s);
    assert_int_equal(s[128], 'm');               /* did not spill over */
    assert_int_equal(save_header_decode(s, &d, &err), 0);
    assert_int_equal(strlen(d.vm_name), 64);
}

/* Decode `s` and expect failure with exactly `msg`. */
static void expect_decode_error(const uint8_t *s, const char *msg)
{
    struct save_header d;
    struct mr_error err = MR_ERROR_INIT;

    assert_true(save_header_decode(s, &d, &err) < 0);
    assert_string_equal(err.msg, msg);
}

static void test_bad_magic(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES] = "QEVM";

    (void)state;
    expect_decode_error(s, "not a mapram save file (no MAPRAMSV header)");
}

static void test_bad_version(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES];
    struct save_header h;

    (void)state;
    sample(&h);
    h.version = 2;
    save_header_encode(&h, s);
    expect_decode_error(s, "unsupported mapram header version 2 (expected 1)");
}

static void test_bad_crc(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES], zeroed[SAVE_HEADER_SECTOR_BYTES];
    struct save_header h;
    char msg[128];

    (void)state;
    sample(&h);
    save_header_encode(&h, s);
    s[300] ^= 1;                                 /* a reserved byte flips */
    memcpy(zeroed, s, sizeof(s));
    memset(zeroed + 60, 0, 4);
    snprintf(msg, sizeof(msg),
             "mapram header checksum mismatch: expected 0x%08x, found 0x%08x",
             save_header_crc32c(0, zeroed, sizeof(zeroed)), h.header_crc);
    expect_decode_error(s, msg);
}

static void test_bad_sizes(void **state)
{
    uint8_t s[SAVE_HEADER_SECTOR_BYTES];
    struct save_header h;

    (void)state;
    sample(&h);
    h.header_size = 1000;
    save_header_encode(&h, s);
    expect_decode_error(s, "bad mapram header: header_size 1000 is not a "
                        "multiple of 512 of at least 512");
    sample(&h);
    h.stream_offset = 512;
    save_header_encode(&h, s);
    expect_decode_error(s, "bad mapram header: stream_offset 512 lies inside "
                        "the 4096-byte header");
    sample(&h);
    h.meta_len = 3585;
    save_header_encode(&h, s);
    expect_decode_error(s, "bad mapram header: meta_len 3585 exceeds the 3584 "
                        "bytes after the first sector");
}

static void test_restorable(void **state)
{
    struct save_header h;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    sample(&h);
    h.state = SAVE_HEADER_STATE_PART;
    assert_true(save_header_check_restorable(&h, 1ull << 30, &err) < 0);
    assert_string_equal(err.msg, "incomplete save file: the save did not finish");
    mr_error_clear(&err);
    sample(&h);
    assert_true(save_header_check_restorable(&h, 4096 + 73481333, &err) < 0);
    assert_string_equal(err.msg, "truncated save file: expected at least "
                        "73485430 bytes, found 73485429");
    mr_error_clear(&err);
    h.stream_size = 0;
    assert_true(save_header_check_restorable(&h, 1ull << 30, &err) < 0);
    assert_string_equal(err.msg, "bad mapram header: stream_size 0 at offset 4096");
    mr_error_clear(&err);
    h.stream_size = UINT64_MAX;
    assert_true(save_header_check_restorable(&h, 1ull << 30, &err) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_long_name_is_cut),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_bad_crc),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_restorable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
