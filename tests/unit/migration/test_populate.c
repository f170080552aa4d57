/*
 * Populate-ahead (migration/populate.c): it faults the ranges in without
 * changing what they hold, counts what it did, and is off with
 * MAPRAM_POPULATE_THREADS=0.  (Pages outside the ranges are not checked:
 * the kernel may fault neighbours in too.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "migration/populate.h"

#define MIB (1u << 20)

static void populates_without_changing_content(void **state)
{
    uint64_t size = 9 * MIB;
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct mr_populate *p;
    unsigned char vec[9 * MIB / 4096];

    (void)state;
    assert_true(m != MAP_FAILED);
    setenv("MAPRAM_POPULATE_THREADS", "2", 1);
    /* data already written where the reads may have landed first */
    memset(m + 3 * MIB, 0xab, MIB);
    p = mr_populate_new();
    assert_non_null(p);
    mr_populate_add(p, m + MIB, 5 * MIB);      /* cut into 2 MiB pieces */
    mr_populate_add(p, m + 7 * MIB, 4096);
    mr_populate_start(p);
    /* free() would stop it early (the load frees it once the reads are
     * done): wait for the whole plan first */
    while (mr_populate_done_bytes(p) < 5 * MIB + 4096)
        usleep(1000);
    mr_populate_free(p);
    assert_int_equal(mincore(m, size, vec), 0);
    for (size_t i = 0; i < sizeof(vec); i++) {
        uint64_t off = i * 4096ull;

        if ((off >= MIB && off < 6 * MIB) || off == 7 * MIB)
            assert_true(vec[i] & 1);
    }
    for (uint64_t i = 0; i < size; i++)
        assert_int_equal(m[i], i >= 3 * MIB && i < 4 * MIB ? 0xab : 0);
    munmap(m, size);
}

static void done_bytes_counts(void **state)
{
    uint8_t *m = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct mr_populate *p;

    (void)state;
    setenv("MAPRAM_POPULATE_THREADS", "1", 1);
    p = mr_populate_new();
    assert_non_null(p);
    mr_populate_add(p, m, 3 * MIB);
    assert_int_equal(mr_populate_done_bytes(p), 0);
    mr_populate_start(p);
    while (mr_populate_done_bytes(p) < 3 * MIB)
        usleep(1000);
    assert_int_equal(mr_populate_done_bytes(p), 3 * MIB);
    mr_populate_free(p);
    munmap(m, 4 * MIB);
}

static void off_when_zero_threads(void **state)
{
    struct mr_populate *p;

    (void)state;
    setenv("MAPRAM_POPULATE_THREADS", "0", 1);
    assert_null(mr_populate_new());
    /* the load calls these with NULL when populate-ahead is off */
    mr_populate_add(NULL, NULL, 4096);
    mr_populate_start(NULL);
    mr_populate_free(NULL);
    assert_int_equal(mr_populate_done_bytes(NULL), 0);
    setenv("MAPRAM_POPULATE_THREADS", "junk", 1);   /* the default */
    p = mr_populate_new();
    assert_non_null(p);
    mr_populate_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(populates_without_changing_content),
        cmocka_unit_test(done_bytes_counts),
        cmocka_unit_test(off_when_zero_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
