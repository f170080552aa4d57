/* Unit tests: the migration state table and compare-and-swap transitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "migration/state.h"

struct rec {
    int n;
    enum mr_mig_status seen[16];
};

static void record(void *opaque, enum mr_mig_status to)
{
    struct rec *r = opaque;

    r->seen[r->n++] = to;
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mr_mig_status_name(MR_MIG_NONE), "none");
    assert_string_equal(mr_mig_status_name(MR_MIG_PRE_SWITCHOVER),
                        "pre-switchover");
    assert_string_equal(mr_mig_status_name(MR_MIG_WAIT_UNPLUG), "wait-unplug");
    assert_string_equal(mr_mig_status_name(MR_MIG_POSTCOPY_RECOVER_SETUP),
                        "postcopy-recover-setup");
}

static void test_source_path(void **state)
{
    struct rec r = { 0 };
    struct mr_mig_state s;

    (void)state;
    mr_mig_state_init(&s, false, record, &r);
    assert_true(mr_mig_state_cas(&s, MR_MIG_NONE, MR_MIG_SETUP));
    /* wrong expected state: nothing happens, nothing is reported */
    assert_false(mr_mig_state_cas(&s, MR_MIG_NONE, MR_MIG_SETUP));
    assert_true(mr_mig_state_cas(&s, MR_MIG_SETUP, MR_MIG_ACTIVE));
    assert_false(mr_mig_state_cas(&s, MR_MIG_ACTIVE, MR_MIG_COMPLETED));
    assert_true(mr_mig_state_cas(&s, MR_MIG_ACTIVE, MR_MIG_DEVICE));
    assert_true(mr_mig_state_cas(&s, MR_MIG_DEVICE, MR_MIG_COMPLETED));
    assert_int_equal(r.n, 4);
    assert_int_equal(r.seen[3], MR_MIG_COMPLETED);
    assert_false(mr_mig_state_cas(&s, MR_MIG_COMPLETED, MR_MIG_FAILED));
    assert_true(mr_mig_status_is_terminal(mr_mig_state_get(&s)));
    assert_true(mr_mig_state_reset(&s));
    assert_int_equal(mr_mig_state_get(&s), MR_MIG_NONE);
    assert_int_equal(r.n, 4); /* reset is silent */
}

static void test_cancel_race(void **state)
{
    struct rec r = { 0 };
    struct mr_mig_state s;

    (void)state;
    mr_mig_state_init(&s, false, record, &r);
    assert_true(mr_mig_state_cas(&s, MR_MIG_NONE, MR_MIG_SETUP));
    assert_true(mr_mig_state_cas(&s, MR_MIG_SETUP, MR_MIG_ACTIVE));
    assert_true(mr_mig_state_cas(&s, MR_MIG_ACTIVE, MR_MIG_CANCELLING));
    /* the save thread's active -> device loses against the cancel */
    assert_false(mr_mig_state_cas(&s, MR_MIG_ACTIVE, MR_MIG_DEVICE));
    assert_false(mr_mig_state_reset(&s)); /* not terminal yet */
    assert_true(mr_mig_state_cas(&s, MR_MIG_CANCELLING, MR_MIG_CANCELLED));
    assert_int_equal(r.n, 4);
}

static void test_tables(void **state)
{
    (void)state;
    assert_true(mr_mig_state_allowed(false, MR_MIG_SETUP, MR_MIG_CANCELLED));
    assert_true(mr_mig_state_allowed(false, MR_MIG_ACTIVE,
                                     MR_MIG_PRE_SWITCHOVER));
    assert_true(mr_mig_state_allowed(false, MR_MIG_PRE_SWITCHOVER,
                                     MR_MIG_DEVICE));
    assert_false(mr_mig_state_allowed(false, MR_MIG_NONE, MR_MIG_ACTIVE));
    assert_false(mr_mig_state_allowed(false, MR_MIG_FAILED, MR_MIG_ACTIVE));
    assert_true(mr_mig_state_allowed(true, MR_MIG_SETUP, MR_MIG_FAILED));
    assert_true(mr_mig_state_allowed(true, MR_MIG_ACTIVE, MR_MIG_COMPLETED));
    assert_false(mr_mig_state_allowed(true, MR_MIG_ACTIVE, MR_MIG_DEVICE));
    assert_false(mr_mig_state_allowed(true, MR_MIG_SETUP, MR_MIG_CANCELLING));
    assert_false(mr_mig_state_allowed(true, MR_MIG__MAX, MR_MIG_NONE));
    assert_true(mr_mig_status_is_running(MR_MIG_DEVICE));
    assert_false(mr_mig_status_is_running(MR_MIG_NONE));
    assert_false(mr_mig_status_is_running(MR_MIG_FAILED));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_source_path),
        cmocka_unit_test(test_cancel_race),
        cmocka_unit_test(test_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
