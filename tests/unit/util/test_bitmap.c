/* Unit tests for page bitmaps (src/lib/util/bitmap.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/bitmap.h"

static void set_clear_test(void **state)
{
    unsigned long *map = mr_bitmap_new(200);

    (void)state;
    mr_bitmap_set_atomic(map, 0);
    mr_bitmap_set_atomic(map, 63);
    mr_bitmap_set_atomic(map, 64);
    mr_bitmap_set_atomic(map, 199);
    assert_true(mr_bitmap_test(map, 0));
    assert_true(mr_bitmap_test(map, 63));
    assert_true(mr_bitmap_test(map, 64));
    assert_false(mr_bitmap_test(map, 65));
    assert_int_equal(mr_bitmap_count(map, 200), 4);
    mr_bitmap_clear_atomic(map, 63);
    assert_false(mr_bitmap_test(map, 63));
    assert_int_equal(mr_bitmap_count(map, 200), 3);
    /* count ignores bits past nbits */
    assert_int_equal(mr_bitmap_count(map, 199), 2);
    free(map);
}

static void ranges(void **state)
{
    unsigned long *map = mr_bitmap_new(300);

    (void)state;
    mr_bitmap_set_range_atomic(map, 60, 150);       /* 60..209 */
    assert_int_equal(mr_bitmap_count(map, 300), 150);
    assert_false(mr_bitmap_test(map, 59));
    assert_true(mr_bitmap_test(map, 60));
    assert_true(mr_bitmap_test(map, 209));
    assert_false(mr_bitmap_test(map, 210));
    mr_bitmap_clear_range_atomic(map, 64, 64);      /* one whole word */
    assert_int_equal(mr_bitmap_count(map, 300), 86);
    assert_true(mr_bitmap_test(map, 63));
    assert_false(mr_bitmap_test(map, 64));
    assert_false(mr_bitmap_test(map, 127));
    assert_true(mr_bitmap_test(map, 128));
    mr_bitmap_set_range_atomic(map, 5, 0);
    assert_false(mr_bitmap_test(map, 5));
    free(map);
}

static void find_next(void **state)
{
    unsigned long *map = mr_bitmap_new(200);

    (void)state;
    assert_int_equal(mr_bitmap_next_set(map, 200, 0), 200);
    assert_int_equal(mr_bitmap_next_clear(map, 200, 0), 0);
    mr_bitmap_set_range_atomic(map, 70, 60);        /* 70..129 */
    assert_int_equal(mr_bitmap_next_set(map, 200, 0), 70);
    assert_int_equal(mr_bitmap_next_set(map, 200, 70), 70);
    assert_int_equal(mr_bitmap_next_set(map, 200, 130), 200);
    assert_int_equal(mr_bitmap_next_clear(map, 200, 70), 130);
    assert_int_equal(mr_bitmap_next_set(map, 100, 100), 100);
    /* All set up to nbits: next_clear answers nbits. */
    mr_bitmap_set_range_atomic(map, 0, 200);
    assert_int_equal(mr_bitmap_next_clear(map, 200, 0), 200);
    assert_int_equal(mr_bitmap_next_clear(map, 150, 10), 150);
    free(map);
}

static void runs(void **state)
{
    unsigned long *map = mr_bitmap_new(256);
    uint64_t first, len, b;
    uint64_t want[][2] = { { 0, 1 }, { 10, 120 }, { 255, 1 } };
    size_t k = 0;

    (void)state;
    mr_bitmap_set_atomic(map, 0);
    mr_bitmap_set_range_atomic(map, 10, 120);
    mr_bitmap_set_atomic(map, 255);
    for (b = 0; mr_bitmap_next_run(map, 256, b, &first, &len); b = first + len) {
        assert_true(k < 3);
        assert_int_equal(first, want[k][0]);
        assert_int_equal(len, want[k][1]);
        k++;
    }
    assert_int_equal(k, 3);
    /* A run is cut at nbits. */
    assert_true(mr_bitmap_next_run(map, 100, 50, &first, &len));
    assert_int_equal(first, 50);
    assert_int_equal(len, 50);
    free(map);
}

static void disk_form(void **state)
{
    unsigned long *map = mr_bitmap_new(70);
    unsigned long *back = mr_bitmap_new(70);
    uint8_t out[16], in[16];

    (void)state;
    assert_int_equal(mr_bitmap_disk_bytes(70), 16);
    assert_int_equal(mr_bitmap_disk_bytes(64), 8);
    assert_int_equal(mr_bitmap_disk_bytes(0), 0);
    mr_bitmap_set_atomic(map, 0);
    mr_bitmap_set_atomic(map, 9);
    mr_bitmap_set_atomic(map, 69);
    map[1] |= 1UL << 10;           /* bit 74: past nbits, must not appear */
    mr_bitmap_to_le64(map, 70, out);
    assert_int_equal(out[0], 0x01);
    assert_int_equal(out[1], 0x02);
    assert_int_equal(out[8], 0x20);
    assert_int_equal(out[9], 0x00);
    for (int i = 2; i < 8; i++)
        assert_int_equal(out[i], 0);
    memcpy(in, out, sizeof(in));
    in[9] = 0xff;                  /* trailing garbage bits are ignored */
    mr_bitmap_from_le64(in, 70, back);
    assert_int_equal(mr_bitmap_count(back, 128), 3);
    assert_true(mr_bitmap_test(back, 69));
    free(map);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_clear_test),
        cmocka_unit_test(ranges),
        cmocka_unit_test(find_next),
        cmocka_unit_test(runs),
        cmocka_unit_test(disk_form),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
