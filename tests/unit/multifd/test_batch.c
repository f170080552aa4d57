/* Unit tests for batch planning and zero-page detection
 * (src/lib/multifd/batch.c, zero.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "multifd/batch.h"
#include "multifd/zero.h"

#define D MR_PAGE_DATA
#define Z MR_PAGE_ZERO
#define B MR_PAGE_BRIDGED

static void sort(void **state)
{
    uint64_t p[] = { 5, 1, 9, 2, 2, 0 };
    uint64_t want[] = { 0, 1, 2, 2, 5, 9 };

    (void)state;
    mr_batch_sort(p, 6);
    assert_memory_equal(p, want, sizeof(p));
    mr_batch_sort(p, 0);
}

static void plan_no_bridging(void **state)
{
    uint64_t pages[] = { 0, 1, 2, 3, 4, 7, 8, 10 };
    uint8_t kind[] = { D, D, Z, D, D, D, D, D };
    struct mr_page_run runs[8];
    size_t n;

    (void)state;
    n = mr_batch_plan(pages, kind, 8, 0, runs);
    assert_int_equal(n, 4);
    assert_int_equal(runs[0].first, 0);
    assert_int_equal(runs[0].nr_pages, 2);
    assert_int_equal(runs[1].first, 3);
    assert_int_equal(runs[1].nr_pages, 2);
    assert_int_equal(runs[2].first, 7);
    assert_int_equal(runs[2].nr_pages, 2);
    assert_int_equal(runs[3].first, 10);
    assert_int_equal(runs[3].nr_pages, 1);
    assert_int_equal(kind[2], Z);
}

static void plan_bridging(void **state)
{
    /* data, 2 zero, data, 3 zero, data, 1 zero (trailing), gap, data */
    uint64_t pages[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 20 };
    uint8_t kind[] = { D, Z, Z, D, Z, Z, Z, D, Z, D };
    uint8_t want[] = { D, B, B, D, Z, Z, Z, D, Z, D };
    struct mr_page_run runs[10];
    size_t n;

    (void)state;
    n = mr_batch_plan(pages, kind, 10, 2, runs);
    assert_int_equal(n, 3);
    assert_int_equal(runs[0].first, 0);
    assert_int_equal(runs[0].nr_pages, 4);
    assert_int_equal(runs[1].first, 7);
    assert_int_equal(runs[1].nr_pages, 1);
    assert_int_equal(runs[2].first, 20);
    assert_int_equal(runs[2].nr_pages, 1);
    assert_memory_equal(kind, want, sizeof(want));
}

/* A hole in the page indexes is never bridged, zero or not. */
static void plan_gap_in_indexes(void **state)
{
    uint64_t pages[] = { 0, 1, 3, 4 };
    uint8_t kind[] = { D, Z, Z, D };
    struct mr_page_run runs[4];

    (void)state;
    assert_int_equal(mr_batch_plan(pages, kind, 4, 8, runs), 2);
    assert_int_equal(kind[1], Z);
    assert_int_equal(kind[2], Z);
}

static void plan_all_zero_and_empty(void **state)
{
    uint64_t pages[] = { 0, 1, 2 };
    uint8_t kind[] = { Z, Z, Z };
    struct mr_page_run runs[3];

    (void)state;
    assert_int_equal(mr_batch_plan(pages, kind, 3, 8, runs), 0);
    assert_int_equal(mr_batch_plan(pages, kind, 0, 8, runs), 0);
}

static void zero_detection(void **state)
{
    uint8_t *page = aligned_alloc(4096, 4096);

    (void)state;
    memset(page, 0, 4096);
    assert_true(mr_page_is_zero(page, 4096));
    assert_true(mr_page_is_zero_words(page, 4096));
    /* Every byte position must be seen by both versions. */
    for (size_t i = 0; i < 4096; i += 37) {
        page[i] = 0x80;
        assert_false(mr_page_is_zero(page, 4096));
        assert_false(mr_page_is_zero_words(page, 4096));
        page[i] = 0;
    }
    page[4095] = 1;
    assert_false(mr_page_is_zero(page, 4096));
    assert_false(mr_page_is_zero_words(page, 4096));
    assert_true(mr_page_is_zero(page, 4032));
    free(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sort),
        cmocka_unit_test(plan_no_bridging),
        cmocka_unit_test(plan_bridging),
        cmocka_unit_test(plan_gap_in_indexes),
        cmocka_unit_test(plan_all_zero_and_empty),
        cmocka_unit_test(zero_detection),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
