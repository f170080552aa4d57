/* Unit tests for errors as values (src/lib/util/error.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mapram/error.h"

static void first_error_wins(void **state)
{
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    assert_int_equal(mr_error_set(&err, -ENOENT, "first %d", 1), -ENOENT);
    assert_int_equal(mr_error_set(&err, -EIO, "second"), -ENOENT);
    assert_string_equal(err.msg, "first 1");
    assert_true(mr_error_is_set(&err));
}

static void nonnegative_code_becomes_einval(void **state)
{
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    assert_int_equal(mr_error_set(&err, 0, "x"), -EINVAL);
    assert_int_equal(mr_error_set(NULL, 5, "x"), -EINVAL);
    assert_int_equal(mr_error_set(NULL, -EIO, "x"), -EIO);
}

static void prefix_and_truncation(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    char big[600];

    (void)state;
    mr_error_prefix(&err, "ignored: ");
    assert_false(mr_error_is_set(&err));
    mr_error_set(&err, -EIO, "disk on fire");
    mr_error_prefix(&err, "block %s: ", "pc.ram");
    assert_string_equal(err.msg, "block pc.ram: disk on fire");

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mr_error_clear(&err);
    mr_error_set(&err, -EIO, "%s", big);
    assert_int_equal(strlen(err.msg), MR_ERROR_MSG_MAX - 1);
}

static void propagate(void **state)
{
    struct mr_error a = MR_ERROR_INIT, b = MR_ERROR_INIT;

    (void)state;
    assert_int_equal(mr_error_propagate(&a, &b), 0);
    mr_error_set(&b, -ENOSPC, "full");
    assert_int_equal(mr_error_propagate(&a, &b), -ENOSPC);
    assert_string_equal(a.msg, "full");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_error_wins),
        cmocka_unit_test(nonnegative_code_becomes_einval),
        cmocka_unit_test(prefix_and_truncation),
        cmocka_unit_test(propagate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
