/* Unit tests for fault-plan parsing (src/lib/io/fault.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/fault.h"
#include "io/sys.h"

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
    assert_int_equal(mr_fault_parse("uffd-read:3:eio", &p, NULL), 0);
    assert_int_equal(p.op, MR_FAULT_OP_UFFD_READ);
    assert_int_equal(mr_fault_parse("lazy-read:1:eio", &p, NULL), 0);
    assert_int_equal(p.op, MR_FAULT_OP_LAZY_READ);
    assert_int_equal(mr_fault_parse("userfaultfd:1:eio", &p, NULL), 0);
    assert_int_equal(p.op, MR_FAULT_OP_USERFAULTFD);
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

/* Run by meson with MAPRAM_FAULT=pwrite:2:eio (test io/fault-env): the
 * plan comes from the environment without any API call. */
static void plan_from_environment(void **state)
{
#ifdef MR_FAULT_INJECTION
    const struct mr_sys *sys = mr_sys_default();
    char path[] = "/tmp/mr-fault-XXXXXX";
    int fd;

    (void)state;
    if (!getenv("MAPRAM_FAULT"))
        skip();
    fd = mkostemp(path, O_CLOEXEC);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(mr_sys_pwrite_all(sys, fd, "a", 1, 0), 0);
    assert_int_equal(mr_sys_pwrite_all(sys, fd, "b", 1, 1), -EIO);
    assert_int_equal(mr_sys_pwrite_all(sys, fd, "c", 1, 2), 0);
    assert_int_equal(mr_fault_fired(), 1);
    close(fd);
#else
    (void)state;
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_ok),
        cmocka_unit_test(parse_bad),
        cmocka_unit_test(plan_from_environment),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
