/* Unit tests for fault-plan parsing (src/lib/io/fault.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io/fault.h"

static void parse_ok(void **state)
{
    struct mr_fault_plan p;

    (void)state;
    assert_int_equal(mr_fault_parse("write:17:eio", &p, NULL), 0);
    assert_int_equal(p.op, MR_FAULT_OP_WRITE);
    assert_int_equal(p.nth, 17);
    assert_int_equal(p.kind, MR_FAULT_EIO);
    assert_int_equal(mr_fault_parse("fdatasync:1:enospc", &p, NULL), 0);
    assert_int_equal(p.op, MR_FAULT_OP_FDATASYNC);
    assert_int_equal(p.kind, MR_FAULT_ENOSPC);
    assert_int_equal(mr_fault_parse("read:2:short", &p, NULL), 0);
    assert_int_equal(p.kind, MR_FAULT_SHORT);
}

static void parse_bad(void **state)
{
    static const struct { const char *spec, *msg; } cases[] = {
        { "write:17", "Invalid fault plan 'write:17': expected <op>:<N>:<kind>" },
        { "writ:1:eio", "Invalid fault plan 'writ:1:eio': unknown operation 'writ'" },
        { "write:0:eio", "Invalid fault plan 'write:0:eio': N must be a positive integer" },
        { "write::eio", "Invalid fault plan 'write::eio': N must be a positive integer" },
        { "write:1x:eio", "Invalid fault plan 'write:1x:eio': N must be a positive integer" },
        { "write:1:boom", "Invalid fault plan 'write:1:boom': unknown fault 'boom'" },
    };
    struct mr_fault_plan p;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_error err = MR_ERROR_INIT;

        assert_int_equal(mr_fault_parse(cases[i].spec, &p, &err), -EINVAL);
        assert_string_equal(err.msg, cases[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_ok),
        cmocka_unit_test(parse_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
