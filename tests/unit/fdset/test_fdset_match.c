/* Unit tests for the fdset matching rule (src/lib/fdset/fdset_match.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "mapram/fdset.h"

static void access_mode_must_agree(void **state)
{
    (void)state;
    assert_true(mr_fdset_flags_match(O_WRONLY, O_WRONLY));
    assert_true(mr_fdset_flags_match(O_RDONLY, O_RDONLY));
    assert_true(mr_fdset_flags_match(O_RDWR, O_RDWR));
    /* O_RDWR satisfies neither a read-only nor a write-only open. */
    assert_false(mr_fdset_flags_match(O_WRONLY, O_RDWR));
    assert_false(mr_fdset_flags_match(O_RDONLY, O_RDWR));
    assert_false(mr_fdset_flags_match(O_RDONLY, O_WRONLY));
}

static void o_direct_must_agree(void **state)
{
    (void)state;
    assert_true(mr_fdset_flags_match(O_WRONLY | O_DIRECT, O_WRONLY | O_DIRECT));
    assert_false(mr_fdset_flags_match(O_WRONLY | O_DIRECT, O_WRONLY));
    assert_false(mr_fdset_flags_match(O_WRONLY, O_WRONLY | O_DIRECT));
    assert_false(mr_fdset_flags_match(O_RDONLY | O_DIRECT, O_WRONLY | O_DIRECT));
}

static void other_flags_play_no_part(void **state)
{
    (void)state;
    /* The migration source's main channel: 0x41 on x86_64. */
    assert_true(mr_fdset_flags_match(O_WRONLY | O_CREAT, O_WRONLY));
    assert_true(mr_fdset_flags_match(O_WRONLY | O_CREAT | O_TRUNC,
                                     O_WRONLY | O_APPEND | O_NONBLOCK));
    assert_true(mr_fdset_flags_match(O_RDONLY | O_CLOEXEC, O_RDONLY | O_SYNC));
    assert_true(mr_fdset_flags_match(O_WRONLY | O_DIRECT | O_CREAT,
                                     O_WRONLY | O_DIRECT | O_LARGEFILE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(access_mode_must_agree),
        cmocka_unit_test(o_direct_must_agree),
        cmocka_unit_test(other_flags_play_no_part),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
