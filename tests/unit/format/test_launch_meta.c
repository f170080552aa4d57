/* Unit tests for the launch metadata codec and its place in the header
 * (src/lib/format/launch_meta.c, docs/file-header.md, "Launch
 * metadata"). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format/mapram_header.h"
#include "mapram/crc32c.h"

static void sample(struct mr_launch_meta *m)
{
    mr_launch_meta_init(m);
    assert_int_equal(mr_launch_meta_add(m, "kind", "qemu", NULL), 0);
    assert_int_equal(mr_launch_meta_add(m, "argv", "qemu-system-x86_64", NULL), 0);
    assert_int_equal(mr_launch_meta_add(m, "argv", "-m", NULL), 0);
    assert_int_equal(mr_launch_meta_add(m, "argv", "", NULL), 0);
    assert_int_equal(mr_launch_meta_add(m, "machine", "pc-q35-10.0", NULL), 0);
}

static size_t encode(const struct mr_launch_meta *m, uint8_t *buf, size_t n)
{
    int len = mr_launch_meta_encode(m, buf, n, NULL);

    assert_true(len > 0);
    assert_int_equal((size_t)len, mr_launch_meta_encoded_size(m));
    return (size_t)len;
}

static void round_trip_keeps_order_and_repeats(void **state)
{
    struct mr_launch_meta m, back;
    uint8_t buf[512];
    size_t len;

    (void)state;
    sample(&m);
    len = encode(&m, buf, sizeof(buf));
    assert_memory_equal(buf, "MRLAUNCH\1\0\0\0\5\0\0\0", 16);
    /* first entry: key length 4, value length 4, "kind", "qemu" */
    assert_memory_equal(buf + 16, "\4\0\4\0\0\0kindqemu", 14);
    assert_int_equal(mr_launch_meta_parse(buf, len, &back, NULL), 0);
    assert_int_equal(back.count, 5);
    for (size_t i = 0; i < m.count; i++) {
        assert_string_equal(back.entries[i].key, m.entries[i].key);
        assert_string_equal(back.entries[i].value, m.entries[i].value);
    }
    assert_string_equal(mr_launch_meta_get(&back, "argv"), "qemu-system-x86_64");
    assert_null(mr_launch_meta_get(&back, "device"));
    mr_launch_meta_free(&back);
    mr_launch_meta_free(&m);
}

static void bad_keys_refused_on_add(void **state)
{
    struct mr_launch_meta m;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    mr_launch_meta_init(&m);
    assert_int_equal(mr_launch_meta_add(&m, "", "x", &err), -EINVAL);
    mr_error_clear(&err);
    assert_int_equal(mr_launch_meta_add(&m, "Kind", "x", &err), -EINVAL);
    assert_int_equal(m.count, 0);
    mr_launch_meta_free(&m);
}

static void expect_parse_error(const uint8_t *buf, size_t len, const char *words)
{
    struct mr_launch_meta m;
    struct mr_error err = MR_ERROR_INIT;

    assert_true(mr_launch_meta_parse(buf, len, &m, &err) < 0);
    assert_non_null(strstr(err.msg, words));
    assert_int_equal(m.count, 0);
}

static void parser_trusts_no_length(void **state)
{
    struct mr_launch_meta m;
    uint8_t buf[512], bad[512];
    size_t len;

    (void)state;
    sample(&m);
    len = encode(&m, buf, sizeof(buf));
    mr_launch_meta_free(&m);
    expect_parse_error(buf, 8, "magic");
    memcpy(bad, buf, len);
    bad[0] = 'X';
    expect_parse_error(bad, len, "magic");
    memcpy(bad, buf, len);
    bad[8] = 2;
    expect_parse_error(bad, len, "version");
    memcpy(bad, buf, len);
    bad[12] = 6;                        /* one entry more than there is */
    expect_parse_error(bad, len, "cut short");
    memcpy(bad, buf, len);
    bad[18] = 0xff;                     /* value runs past the end */
    expect_parse_error(bad, len, "past the end");
    memcpy(bad, buf, len);
    bad[22] = 'K';                      /* key "Kind" */
    expect_parse_error(bad, len, "bad key");
    memcpy(bad, buf, len);
    bad[26] = 0;                        /* NUL inside "qemu" */
    expect_parse_error(bad, len, "NUL");
    expect_parse_error(buf, len - 1, "past the end");
    memcpy(bad, buf, len);
    bad[len] = 0;
    expect_parse_error(bad, len + 1, "after the last entry");
    memcpy(bad, buf, len);
    bad[12] = 0xff;
    bad[13] = 0xff;
    expect_parse_error(bad, len, "entries");
}

static void encode_refuses_a_small_buffer(void **state)
{
    struct mr_launch_meta m;
    uint8_t buf[32];

    (void)state;
    sample(&m);
    assert_int_equal(mr_launch_meta_encode(&m, buf, sizeof(buf), NULL), -E2BIG);
    mr_launch_meta_free(&m);
}

static struct mr_file_header header(uint32_t meta_len, uint32_t launch_len)
{
    struct mr_file_header h = {
        .version = 1, .state = MR_FILE_STATE_DONE, .header_size = 4096,
        .stream_offset = 4096, .meta_len = meta_len, .launch_len = launch_len,
        .launch_crc = 0x12345678,
    };

    return h;
}

static void header_carries_length_and_crc(void **state)
{
    struct mr_file_header h = header(100, 200), back;
    uint8_t s[512];

    (void)state;
    mr_file_header_encode(&h, s);
    assert_memory_equal(s + 196, "\310\0\0\0\x78\x56\x34\x12", 8);
    assert_int_equal(mr_file_header_decode(s, &back, NULL), 0);
    assert_int_equal(back.launch_len, 200);
    assert_int_equal(back.launch_crc, 0x12345678);
    assert_int_equal(mr_file_header_launch_offset(&back), 612);
}

static void header_refuses_launch_past_the_area(void **state)
{
    struct mr_file_header h = header(3000, 585), back;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t s[512];

    (void)state;
    mr_file_header_encode(&h, s);
    assert_int_equal(mr_file_header_decode(s, &back, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "launch metadata of at most 584"));
}

static void old_header_has_no_launch(void **state)
{
    struct mr_file_header h = header(17, 0), back;
    uint8_t s[512];

    (void)state;
    h.launch_crc = 0;
    mr_file_header_encode(&h, s);
    for (int i = 196; i < 512; i++)
        assert_int_equal(s[i], 0);
    assert_int_equal(mr_file_header_decode(s, &back, NULL), 0);
    assert_int_equal(back.launch_len, 0);
}

static void launch_crc_checked(void **state)
{
    struct mr_file_header h = header(0, 5);
    struct mr_error err = MR_ERROR_INIT;
    uint8_t blob[5] = "abcde";

    (void)state;
    h.launch_crc = mr_crc32c(0, blob, sizeof(blob));
    assert_int_equal(mr_file_header_check_launch(&h, blob, 5, NULL), 0);
    blob[2] ^= 1;
    assert_int_equal(mr_file_header_check_launch(&h, blob, 5, &err), -EIO);
    assert_non_null(strstr(err.msg, "launch metadata CRC32C"));
    assert_int_equal(mr_file_header_check_launch(&h, blob, 4, NULL), -EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_keeps_order_and_repeats),
        cmocka_unit_test(bad_keys_refused_on_add),
        cmocka_unit_test(parser_trusts_no_length),
        cmocka_unit_test(encode_refuses_a_small_buffer),
        cmocka_unit_test(header_carries_length_and_crc),
        cmocka_unit_test(header_refuses_launch_past_the_area),
        cmocka_unit_test(old_header_has_no_launch),
        cmocka_unit_test(launch_crc_checked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
