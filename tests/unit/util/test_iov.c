/* Unit tests for iovec helpers (src/lib/util/iov.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/iov.h"

static char buf[100];

static void advance(void **state)
{
    struct iovec v[3] = { { buf, 10 }, { buf + 10, 20 }, { buf + 50, 5 } };
    struct iovec *p = v;
    int n = 3;

    (void)state;
    assert_int_equal(mr_iov_total(v, 3), 35);
    assert_int_equal(mr_iov_advance(&p, &n, 4), 0);
    assert_ptr_equal(p, v);
    assert_ptr_equal(p->iov_base, buf + 4);
    assert_int_equal(p->iov_len, 6);
    /* Exactly to the end of an entry: the next one starts whole. */
    assert_int_equal(mr_iov_advance(&p, &n, 6), 0);
    assert_int_equal(n, 2);
    assert_ptr_equal(p->iov_base, buf + 10);
    assert_int_equal(p->iov_len, 20);
    /* Across an entry boundary. */
    assert_int_equal(mr_iov_advance(&p, &n, 22), 0);
    assert_int_equal(n, 1);
    assert_ptr_equal(p->iov_base, buf + 52);
    assert_int_equal(p->iov_len, 3);
    /* Past the end: the excess comes back. */
    assert_int_equal(mr_iov_advance(&p, &n, 7), 4);
    assert_int_equal(n, 0);
}

static void advance_skips_empty(void **state)
{
    struct iovec v[3] = { { buf, 4 }, { buf + 4, 0 }, { buf + 4, 4 } };
    struct iovec *p = v;
    int n = 3;

    (void)state;
    assert_int_equal(mr_iov_advance(&p, &n, 4), 0);
    assert_int_equal(n, 1);
    assert_ptr_equal(p, &v[2]);
}

static void runs(void **state)
{
    struct iovec v[5] = { { buf, 10 }, { buf + 10, 10 }, { buf + 30, 5 },
                          { buf + 35, 5 }, { buf + 40, 5 } };

    (void)state;
    assert_int_equal(mr_iov_run_len(v, 5, 64), 2);
    assert_int_equal(mr_iov_run_len(v + 2, 3, 64), 3);
    assert_int_equal(mr_iov_run_len(v + 2, 3, 2), 2);
    assert_int_equal(mr_iov_run_len(v, 0, 64), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(advance),
        cmocka_unit_test(advance_skips_empty),
        cmocka_unit_test(runs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
