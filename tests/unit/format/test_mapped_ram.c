/* Unit tests for mapped-ram layout math and bitmaps
 * (src/lib/format/mapped_ram.c), checked against docs/stream-format.md, "Worked example"
 * and the QEMU 10.0.2 interop files' README. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "format/mapped_ram.h"

static void bitmap_size_is_whole_words(void **state)
{
    (void)state;
    assert_int_equal(mr_mapped_ram_bitmap_size(0), 0);
    assert_int_equal(mr_mapped_ram_bitmap_size(1), 8);
    assert_int_equal(mr_mapped_ram_bitmap_size(64), 8);
    assert_int_equal(mr_mapped_ram_bitmap_size(65), 16);
    assert_int_equal(mr_mapped_ram_bitmap_size(16384), 2048);
    assert_int_equal(mr_mapped_ram_bitmap_size(32768), 4096);
}

static void layout_matches_spec_example(void **state)
{
    struct mr_mapped_ram_layout l;

    (void)state;
    /* docs/stream-format.md, "Worked example": pc.ram header at 0x6F, 128 MiB. */
    assert_true(mr_mapped_ram_layout(0x6f, 0x8000000, 4096, &l));
    assert_int_equal(l.bitmap_offset, 0x8b);
    assert_int_equal(l.bitmap_size, 4096);
    assert_int_equal(l.pages_offset, 0x100000);
    assert_int_equal(l.next_offset, 0x8100000);
    /* docs/stream-format.md, "Worked example": pc.bios header at 0x8100010. */
    assert_true(mr_mapped_ram_layout(0x8100010, 0x40000, 4096, &l));
    assert_int_equal(l.bitmap_offset, 0x810002c);
    assert_int_equal(l.pages_offset, 0x8200000);
    /* Interop README: "mem" header at 0x6c, bitmap at 0x88. */
    assert_true(mr_mapped_ram_layout(0x6c, 0x4000000, 4096, &l));
    assert_int_equal(l.bitmap_offset, 0x88);
    assert_int_equal(l.pages_offset, 0x100000);
}

static void layout_exactly_aligned_has_no_padding(void **state)
{
    struct mr_mapped_ram_layout l;

    (void)state;
    /* bitmap ends exactly at 1 MiB: 0x100000 - 28 - 8 */
    assert_true(mr_mapped_ram_layout(0x100000 - 36, 4096, 4096, &l));
    assert_int_equal(l.pages_offset, 0x100000);
}

static void layout_rejects_bad_input(void **state)
{
    struct mr_mapped_ram_layout l;
    uint64_t out;

    (void)state;
    assert_false(mr_mapped_ram_layout(0, 4097, 4096, &l));
    assert_false(mr_mapped_ram_layout(0, 4096, 0, &l));
    assert_false(mr_mapped_ram_layout(UINT64_MAX - 10, 4096, 4096, &l));
    assert_false(mr_mapped_ram_layout(0x1000, UINT64_MAX & ~0xfffULL, 4096,
                                      &l));
    assert_false(mr_mapped_ram_align_up(UINT64_MAX - 5, &out));
    assert_true(mr_mapped_ram_align_up(0x100001, &out));
    assert_int_equal(out, 0x200000);
}

static void bitmap_is_little_endian_64(void **state)
{
    /* docs/stream-format.md, "Worked example": pages 0-9 set -> ff 03 00 .. */
    uint8_t bm[16] = { 0xff, 0x03 };

    (void)state;
    assert_int_equal(mr_bitmap_le64_count(bm, 64), 10);
    assert_true(mr_bitmap_le64_test(bm, 9));
    assert_false(mr_bitmap_le64_test(bm, 10));
    mr_bitmap_le64_set(bm, 64);
    assert_int_equal(bm[8], 1);
    assert_int_equal(mr_bitmap_le64_count(bm, 64), 10);
    assert_int_equal(mr_bitmap_le64_count(bm, 65), 11);
    mr_bitmap_le64_clear(bm, 0);
    assert_int_equal(bm[0], 0xfe);
    assert_int_equal(mr_bitmap_le64_count(bm, 5), 4);
}

static void bits_beyond_num_pages(void **state)
{
    uint8_t bm[8] = { 0 };

    (void)state;
    mr_bitmap_le64_set(bm, 3);
    assert_int_equal(mr_bitmap_le64_count_beyond(bm, 8, 32), 0);
    mr_bitmap_le64_set(bm, 40);
    mr_bitmap_le64_set(bm, 63);
    assert_int_equal(mr_bitmap_le64_count_beyond(bm, 8, 32), 2);
    assert_int_equal(mr_bitmap_le64_count_beyond(bm, 8, 64), 0);
}

static void runs_of_set_bits(void **state)
{
    uint8_t bm[8] = { 0 };
    uint64_t a, b;

    (void)state;
    for (int i = 2; i < 20; i++)
        mr_bitmap_le64_set(bm, (uint64_t)i);
    mr_bitmap_le64_set(bm, 30);
    mr_bitmap_le64_set(bm, 63);
    assert_true(mr_bitmap_le64_next_run(bm, 64, 0, &a, &b));
    assert_int_equal(a, 2);
    assert_int_equal(b, 20);
    assert_true(mr_bitmap_le64_next_run(bm, 64, b, &a, &b));
    assert_int_equal(a, 30);
    assert_int_equal(b, 31);
    assert_true(mr_bitmap_le64_next_run(bm, 64, b, &a, &b));
    assert_int_equal(a, 63);
    assert_int_equal(b, 64);
    assert_false(mr_bitmap_le64_next_run(bm, 64, b, &a, &b));
    /* num_pages cuts a run short and hides later bits. */
    assert_true(mr_bitmap_le64_next_run(bm, 10, 0, &a, &b));
    assert_int_equal(b, 10);
    assert_false(mr_bitmap_le64_next_run(bm, 30, 20, &a, &b));
    memset(bm, 0xff, sizeof(bm));
    assert_true(mr_bitmap_le64_next_run(bm, 61, 3, &a, &b));
    assert_int_equal(a, 3);
    assert_int_equal(b, 61);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bitmap_size_is_whole_words),
        cmocka_unit_test(layout_matches_spec_example),
        cmocka_unit_test(layout_exactly_aligned_has_no_padding),
        cmocka_unit_test(layout_rejects_bad_input),
        cmocka_unit_test(bitmap_is_little_endian_64),
        cmocka_unit_test(bits_beyond_num_pages),
        cmocka_unit_test(runs_of_set_bits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
