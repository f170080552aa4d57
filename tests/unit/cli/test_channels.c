/* Unit tests for the default channel count (src/cli/channels.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "channels.h"

static void test_unknown_cpus(void **state)
{
    (void)state;
    assert_int_equal(mgmt_channels_for_cpus(-1), MGMT_FALLBACK_CHANNELS);
    assert_int_equal(mgmt_channels_for_cpus(0), MGMT_FALLBACK_CHANNELS);
}

static void test_one_per_cpu_clamped(void **state)
{
    (void)state;
    assert_int_equal(mgmt_channels_for_cpus(1), 2);
    assert_int_equal(mgmt_channels_for_cpus(2), 2);
    assert_int_equal(mgmt_channels_for_cpus(3), 3);
    assert_int_equal(mgmt_channels_for_cpus(8), 8);
    assert_int_equal(mgmt_channels_for_cpus(9), 8);
    assert_int_equal(mgmt_channels_for_cpus(4096), 8);
}

static void test_within_protocol_range(void **state)
{
    unsigned n = mgmt_default_channels();

    (void)state;
    /* multifd-channels is a uint8 >= 1 */
    assert_true(n >= 1 && n <= 255);
    assert_true(n >= MGMT_MIN_DEFAULT_CHANNELS);
    assert_true(n <= MGMT_MAX_DEFAULT_CHANNELS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_cpus),
        cmocka_unit_test(test_one_per_cpu_clamped),
        cmocka_unit_test(test_within_protocol_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
