/* Unit tests: the fdset up-front rules over fake descriptor lists. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "migration/fdset_rules.h"

static const char *src(const struct mr_fdset_fdinfo *fds, int n, bool multifd,
                       bool dio)
{
    static struct mr_error err;

    mr_error_clear(&err);
    return mr_fdset_rules_source(fds, n, multifd, dio, &err) ? err.msg : "";
}

static const char *dst(const struct mr_fdset_fdinfo *fds, int n, bool dio)
{
    static struct mr_error err;

    mr_error_clear(&err);
    return mr_fdset_rules_dest(fds, n, dio, &err) ? err.msg : "";
}

static void test_source(void **state)
{
    const struct mr_fdset_fdinfo good_dio[] = {
        { O_WRONLY | O_DIRECT, 0 }, { O_WRONLY, 1 } };
    const struct mr_fdset_fdinfo plain[] = { { O_WRONLY, 0 }, { O_WRONLY, 1 } };
    const struct mr_fdset_fdinfo dup[] = { { O_WRONLY, 0 }, { O_WRONLY, 0 } };
    const struct mr_fdset_fdinfo rdwr[] = { { O_RDWR, 0 }, { O_WRONLY, 1 } };
    const struct mr_fdset_fdinfo both_direct[] = {
        { O_WRONLY | O_DIRECT, 0 }, { O_WRONLY | O_DIRECT, 1 } };
    char want[64];

    (void)state;
    assert_string_equal(src(good_dio, 2, true, true), "");
    assert_string_equal(src(plain, 2, true, false), "");
    assert_string_equal(src(good_dio, 2, false, false),
                        "fdset is only supported with multifd");
    assert_string_equal(src(plain, 1, true, false),
                        "Outgoing migration needs two fds in the fdset, got 1");
    assert_string_equal(src(plain, 3, true, false),
                        "Outgoing migration needs two fds in the fdset, got 3");
    assert_string_equal(src(dup, 2, true, false),
                        "Outgoing migration needs two fds in the fdset that "
                        "are not duplicates of each other");
    snprintf(want, sizeof(want), "Fdset is missing a file descriptor with "
             "flags: 0x%x", O_WRONLY | O_DIRECT);
    assert_string_equal(src(plain, 2, true, true), want);
    assert_string_equal(src(both_direct, 2, true, true),
                        "Fdset is missing a file descriptor with flags: 0x41");
    assert_string_equal(src(rdwr, 2, true, false),
                        "Fdset is missing a file descriptor with flags: 0x41");
}

static void test_dest(void **state)
{
    const struct mr_fdset_fdinfo ro[] = { { O_RDONLY, 0 } };
    const struct mr_fdset_fdinfo ro_dio[] = {
        { O_RDONLY | O_DIRECT, 0 }, { O_RDONLY, 1 } };
    const struct mr_fdset_fdinfo wo[] = { { O_WRONLY, 0 } };
    char want[64];

    (void)state;
    assert_string_equal(dst(ro, 1, false), "");
    assert_string_equal(dst(ro_dio, 2, true), "");
    assert_string_equal(dst(wo, 1, false),
                        "Fdset is missing a file descriptor with flags: 0x0");
    snprintf(want, sizeof(want), "Fdset is missing a file descriptor with "
             "flags: 0x%x", O_RDONLY | O_DIRECT);
    assert_string_equal(dst(ro, 1, true), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_dest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
