/* Unit tests: the lazy load's claim table under threads (fault and fill
 * arbitration): every granule installed exactly once, no fault lost. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "migration/lazy_claim.h"

#define GRANULES 20000
#define FAULTERS 3

struct world {
    struct mr_claim t;
    atomic_int installs[GRANULES];
    atomic_int fail_once[GRANULES];  /* the first install of some fails */
    atomic_long faults_served;
};

/* An install of g: sometimes fails the first time (the claim goes back). */
static void install(struct world *w, uint64_t g)
{
    if (g % 7 == 0 && atomic_exchange(&w->fail_once[g], 1) == 0) {
        mr_claim_done(&w->t, g, false);
        return;
    }
    atomic_fetch_add(&w->installs[g], 1);
    mr_claim_done(&w->t, g, true);
}

static void *filler(void *arg)
{
    struct world *w = arg;

    while (!mr_claim_all_resident(&w->t))
        for (uint64_t g = 0; g < GRANULES; g++)
            if (mr_claim_take(&w->t, g))
                install(w, g);
    return NULL;
}

/* A fault on g is served when g is resident: by us if we win the claim,
 * else by its owner (a claim given back is retried). */
static void *faulter(void *arg)
{
    struct world *w = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;

    for (int i = 0; i < GRANULES; i++) {
        uint64_t g = (uint64_t)rand_r(&seed) % GRANULES;

        while (mr_claim_get(&w->t, g) != MR_CLAIM_RESIDENT)
            if (mr_claim_take(&w->t, g))
                install(w, g);
        atomic_fetch_add(&w->faults_served, 1);
    }
    return NULL;
}

/* The fill as lazy_fill.c runs it: a batch is g and the granules after
 * it up to BATCH, cut at the first one it cannot take; the whole batch is
 * installed or (one in five) given back, never in part. */
#define BATCH 4

static void *batch_filler(void *arg)
{
    struct world *w = arg;

    while (!mr_claim_all_resident(&w->t))
        for (uint64_t g = 0; g < GRANULES; g++) {
            uint64_t n = 1;

            if (!mr_claim_take(&w->t, g))
                continue;
            while (n < BATCH && g + n < GRANULES &&
                   mr_claim_take(&w->t, g + n))
                n++;
            bool ok = !(g % 5 == 0 && atomic_exchange(&w->fail_once[g], 1)
                                          == 0);
            for (uint64_t k = g; k < g + n; k++) {
                if (ok)
                    atomic_fetch_add(&w->installs[k], 1);
                mr_claim_done(&w->t, k, ok);
            }
            g += n - 1;
        }
    return NULL;
}

static void run_world(void *(*fill)(void *))
{
    struct world *w = calloc(1, sizeof(*w));
    pthread_t th[FAULTERS + 2];

    assert_int_equal(mr_claim_init(&w->t, GRANULES), 0);
    assert_int_equal(pthread_create(&th[0], NULL, fill, w), 0);
    assert_int_equal(pthread_create(&th[1], NULL, fill, w), 0);
    for (int i = 2; i < FAULTERS + 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, faulter, w), 0);
    for (int i = 0; i < FAULTERS + 2; i++)
        pthread_join(th[i], NULL);
    assert_true(mr_claim_all_resident(&w->t));
    for (uint64_t g = 0; g < GRANULES; g++)
        assert_int_equal(atomic_load(&w->installs[g]), 1);
    assert_int_equal(atomic_load(&w->faults_served), FAULTERS * GRANULES);
    mr_claim_free(&w->t);
    free(w);
}

/* Two batch fillers (two channels' worth of producers) and three
 * faulters: no granule twice, no fault lost, given-back batches redone. */
static void test_batches(void **state)
{
    (void)state;
    run_world(batch_filler);
}

static void test_arbitration(void **state)
{
    struct world *w = calloc(1, sizeof(*w));
    pthread_t th[FAULTERS + 1];

    (void)state;
    assert_int_equal(mr_claim_init(&w->t, GRANULES), 0);
    assert_int_equal(pthread_create(&th[0], NULL, filler, w), 0);
    for (int i = 1; i <= FAULTERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, faulter, w), 0);
    for (int i = 0; i <= FAULTERS; i++)
        pthread_join(th[i], NULL);
    assert_true(mr_claim_all_resident(&w->t));
    for (uint64_t g = 0; g < GRANULES; g++) {
        assert_int_equal(atomic_load(&w->installs[g]), 1);
        assert_int_equal(mr_claim_get(&w->t, g), MR_CLAIM_RESIDENT);
    }
    assert_int_equal(atomic_load(&w->faults_served), FAULTERS * GRANULES);
    mr_claim_free(&w->t);
    free(w);
}

static void test_single_owner(void **state)
{
    struct mr_claim t;

    (void)state;
    assert_int_equal(mr_claim_init(&t, 4), 0);
    assert_true(mr_claim_take(&t, 2));
    assert_false(mr_claim_take(&t, 2));
    assert_int_equal(mr_claim_get(&t, 2), MR_CLAIM_BUSY);
    mr_claim_done(&t, 2, false);
    assert_true(mr_claim_take(&t, 2));
    mr_claim_done(&t, 2, true);
    assert_false(mr_claim_take(&t, 2));
    assert_false(mr_claim_take(&t, 4));      /* out of range */
    assert_false(mr_claim_all_resident(&t));
    mr_claim_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_owner),
        cmocka_unit_test(test_arbitration),
        cmocka_unit_test(test_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
