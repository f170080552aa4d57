/* Unit tests for the neutral guest state (src/vm/guest_state.c): the
 * register mapping both ways, validation, encoding and VMDESC. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "guest_state.h"

static const struct guest_layout layout = {
    .code_gpa = 0x4000, .off_entry = 0x10, .off_clear = 0x16, .off_inc = 0x32,
};

static void regs_round_trip(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct guest_state st = {
        .phase = GUEST_PHASE_INC, .next_addr = 0x234000, .passes = 300,
        .range_start = 0x100000, .range_end = 0x6400000,
    }, back;
    struct guest_regs regs;

    (void)state;
    guest_state_to_regs(&layout, &st, &regs);
    assert_int_equal(regs.rip, 0x4032);
    assert_int_equal(regs.rsi, 0x234000);
    assert_int_equal(regs.rbx, 300);
    assert_int_equal(regs.r8, 0x100000);
    assert_int_equal(regs.rdi, 0x6400000);
    assert_int_equal(regs.rdx, 0x3f8);
    assert_int_equal(guest_state_from_regs(&layout, &regs, &back, &err), 0);
    assert_int_equal(back.phase, GUEST_PHASE_INC);
    assert_int_equal(back.next_addr, 0x234000);
    assert_int_equal(back.passes, 300);

    st.phase = GUEST_PHASE_CLEAR;
    guest_state_to_regs(&layout, &st, &regs);
    assert_int_equal(regs.rip, 0x4016);
    assert_int_equal(guest_state_from_regs(&layout, &regs, &back, &err), 0);
    assert_int_equal(back.phase, GUEST_PHASE_CLEAR);
}

static void boot_state_maps_to_entry(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct guest_state st, back;
    struct guest_regs regs;

    (void)state;
    guest_state_reset(&st, 0x100000, 0x200000);
    guest_state_to_regs(&layout, &st, &regs);
    assert_int_equal(regs.rip, 0x4010);
    assert_int_equal(regs.rbx, 0);
    regs.rsi = 0xdead000; /* not meaningful before the program loads it */
    assert_int_equal(guest_state_from_regs(&layout, &regs, &back, &err), 0);
    assert_int_equal(back.phase, GUEST_PHASE_BOOT);
    assert_int_equal(back.next_addr, 0x100000);
    assert_int_equal(back.range_end, 0x200000);
}

static void unsafe_rip_refused(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct guest_regs regs = { .rip = 0x4019 };
    struct guest_state back;

    (void)state;
    assert_false(guest_rip_is_safe(&layout, 0x4019));
    assert_true(guest_rip_is_safe(&layout, 0x4016));
    assert_int_equal(guest_state_from_regs(&layout, &regs, &back, &err),
                     -EINVAL);
    assert_string_equal(err.msg, "vCPU stopped outside a safe point "
                        "(rip 0x4019)");
}

static void validation(void **state)
{
    struct guest_state st;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    guest_state_reset(&st, 0x100000, 0x4000000);
    assert_int_equal(guest_state_validate(&st, 0x4000000, &err), 0);
    st.phase = 3;
    assert_int_equal(guest_state_validate(&st, 0x4000000, &err), -EINVAL);
    assert_string_equal(err.msg, "guest-loop: invalid phase 3");
    mr_error_clear(&err);
    st.phase = GUEST_PHASE_INC;
    st.next_addr = 0x4000000;
    assert_int_equal(guest_state_validate(&st, 0x4000000, &err), -EINVAL);
    assert_string_equal(err.msg, "guest-loop: next address 0x4000000 outside "
                        "the test range");
    mr_error_clear(&err);
    st.next_addr = 0x100800;
    assert_int_equal(guest_state_validate(&st, 0x4000000, &err), -EINVAL);
    assert_string_equal(err.msg, "guest-loop: addresses must be page aligned");
    mr_error_clear(&err);
    guest_state_reset(&st, 0x1000, 0x4000000);
    assert_int_equal(guest_state_validate(&st, 0x4000000, &err), -EINVAL);
    assert_string_equal(err.msg, "guest-loop: test range [0x1000, 0x4000000) "
                        "does not fit RAM of 0x4000000 bytes");
}

static void encoding(void **state)
{
    static const uint8_t want[GUEST_STATE_BYTES] = {
        0, 0, 0, 2,
        0, 0, 0, 0, 0, 0x23, 0x40, 0,
        0, 0, 0, 0, 0, 0, 0x01, 0x2c,
        0, 0, 0, 0, 0, 0x10, 0, 0,
        0, 0, 0, 0, 0x06, 0x40, 0, 0,
    };
    struct guest_state st = {
        .phase = GUEST_PHASE_INC, .next_addr = 0x234000, .passes = 300,
        .range_start = 0x100000, .range_end = 0x6400000,
    }, back;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t buf[GUEST_STATE_BYTES];

    (void)state;
    guest_state_encode(&st, buf);
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(guest_state_decode(buf, sizeof(buf), &back, &err), 0);
    assert_int_equal(back.phase, st.phase);
    assert_int_equal(back.next_addr, st.next_addr);
    assert_int_equal(back.passes, st.passes);
    assert_int_equal(back.range_start, st.range_start);
    assert_int_equal(back.range_end, st.range_end);
    assert_int_equal(guest_state_decode(buf, 35, &back, &err), -EINVAL);
    assert_string_equal(err.msg, "guest-loop: expected 36 bytes of state, "
                        "found 35");
}

static void vmdesc_sizes_add_up(void **state)
{
    json_t *desc = guest_state_vmdesc(), *fields, *f;
    json_int_t total = 0;
    size_t i;

    (void)state;
    assert_string_equal(json_string_value(json_object_get(desc, "name")),
                        "guest-loop");
    assert_string_equal(json_string_value(json_object_get(desc, "vmsd_name")),
                        "guest-loop");
    assert_int_equal(json_integer_value(json_object_get(desc, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(desc, "instance_id")),
                     0);
    fields = json_object_get(desc, "fields");
    assert_int_equal(json_array_size(fields), 5);
    json_array_foreach(fields, i, f) {
        assert_non_null(json_string_value(json_object_get(f, "name")));
        assert_non_null(json_string_value(json_object_get(f, "type")));
        total += json_integer_value(json_object_get(f, "size"));
    }
    assert_int_equal(total, GUEST_STATE_BYTES);
    json_decref(desc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(regs_round_trip),
        cmocka_unit_test(boot_state_maps_to_entry),
        cmocka_unit_test(unsafe_rip_refused),
        cmocka_unit_test(validation),
        cmocka_unit_test(encoding),
        cmocka_unit_test(vmdesc_sizes_add_up),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
