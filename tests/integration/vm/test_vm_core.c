/*
 * The VM core driven in-process, under KVM and under the thread vCPU:
 * run, stop at a safe point, the memory pattern against the saved state,
 * frozen memory while stopped, dirty logging (exact set of guest-written
 * pages, host writes not reported), and device state moved between
 * accelerators (KVM -> thread and back) with the guest carrying on.
 * KVM cases skip when /dev/kvm is absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/layout.h"
#include "vmhost.h"

#define RAM_BYTES (64ull << 20)
#define RANGE_START (1ull << 20)
#define RANGE_END (16ull << 20)

static bool have_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static void make_config(struct vm_config *cfg, enum vm_accel accel,
                        bool incoming)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ram_bytes = RAM_BYTES;
    cfg->test_start = RANGE_START;
    cfg->test_end = RANGE_END;
    cfg->accels[0] = accel;
    cfg->nr_accels = 1;
    cfg->incoming = incoming ? (char *)"defer" : NULL;
}

static uint64_t counter(struct vm *vm)
{
    uint64_t v;

    memcpy(&v, vm->machine.ram + GUEST_COUNTER_GPA, sizeof(v));
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

/* Wait (bounded) until the guest has completed `passes` more passes. */
static void wait_passes(struct vm *vm, uint64_t passes)
{
    uint64_t start = counter(vm);

    for (int i = 0; i < 3000 && counter(vm) < start + passes; i++)
        sleep_ms(10);
    assert_true(counter(vm) >= start + passes);
}

static void get_state(struct vm *vm, struct guest_state *st)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_device_state *devs = NULL;
    size_t n = 0;

    assert_int_equal(vm_mr_ops.save_devices(vm, &devs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(devs[0].idstr, "guest-loop");
    assert_int_equal(guest_state_decode(devs[0].data, devs[0].size, st, &err),
                     0);
    mr_device_state_free_array(devs, n);
}

/* docs/test-guest.md, "RAM check", made exact by the saved state: pages below
 * next_addr hold passes + 1, the others passes (mod 256). */
static void check_pattern(struct vm *vm, const struct guest_state *st)
{
    assert_int_equal(st->phase, GUEST_PHASE_INC);
    assert_int_equal(st->passes, counter(vm));
    for (uint64_t a = st->range_start; a < st->range_end; a += 4096) {
        uint8_t want = (uint8_t)(st->passes + (a < st->next_addr));

        if (vm->machine.ram[a] != want)
            fail_msg("page 0x%llx holds %u, want %u",
                     (unsigned long long)a, vm->machine.ram[a], want);
    }
}

static void start_vm(struct vm *vm, struct vm_config *cfg)
{
    struct mr_error err = MR_ERROR_INIT;

    if (vm_init(vm, cfg, &err) < 0)
        fail_msg("vm_init: %s", err.msg);
    assert_int_equal(vm_power_on(vm, &err), 0);
}

static void stop_vm(struct vm *vm)
{
    struct mr_error err = MR_ERROR_INIT;

    if (vm_mr_ops.stop(vm, MR_RUN_PAUSED, &err) < 0)
        fail_msg("stop: %s", err.msg);
    assert_int_equal(vm_mr_ops.runstate(vm), MR_RUN_PAUSED);
}

static void run_stop_pattern(enum vm_accel accel)
{
    struct vm_config cfg;
    struct guest_state st;
    struct vm vm;
    uint8_t *snap = malloc(RANGE_END);

    make_config(&cfg, accel, false);
    start_vm(&vm, &cfg);
    assert_int_equal(vm_mr_ops.runstate(&vm), MR_RUN_RUNNING);
    for (int round = 0; round < 3; round++) {
        wait_passes(&vm, 2);
        stop_vm(&vm);
        get_state(&vm, &st);
        check_pattern(&vm, &st);
        memcpy(snap, vm.machine.ram, RANGE_END);
        sleep_ms(50);
        assert_memory_equal(snap, vm.machine.ram, RANGE_END);
        assert_int_equal(vm_mr_ops.start(&vm, NULL), 0);
    }
    vm_destroy(&vm);
    free(snap);
}

static void kvm_stop_pattern(void **state)
{
    (void)state;
    if (!have_kvm())
        skip();
    run_stop_pattern(VM_ACCEL_KVM);
}

static void thread_stop_pattern(void **state)
{
    (void)state;
    run_stop_pattern(VM_ACCEL_THREAD);
}

static bool test_bit(const unsigned long *bm, uint64_t page)
{
    return bm[page / (8 * sizeof(long))] >> (page % (8 * sizeof(long))) & 1;
}

/* The pages the guest wrote going from state a to state b. */
static bool expect_dirty(const struct guest_state *a,
                         const struct guest_state *b, uint64_t gpa)
{
    if (gpa == GUEST_COUNTER_GPA)
        return b->passes != a->passes;
    if (gpa < a->range_start || gpa >= a->range_end)
        return false;
    if (b->passes == a->passes)
        return gpa >= a->next_addr && gpa < b->next_addr;
    if (b->passes == a->passes + 1)
        return gpa >= a->next_addr || gpa < b->next_addr;
    return true;
}

static void run_dirty_log(enum vm_accel accel)
{
    size_t words = RAM_BYTES / 4096 / (8 * sizeof(long));
    unsigned long *bm[3] = { calloc(words, sizeof(long)), NULL, NULL };
    struct mr_error err = MR_ERROR_INIT;
    struct guest_state a, b;
    struct vm_config cfg;
    struct vm vm;

    make_config(&cfg, accel, false);
    start_vm(&vm, &cfg);
    wait_passes(&vm, 1);
    stop_vm(&vm);
    assert_int_equal(vm_mr_ops.dirty_log_start(&vm, &err), 0);
    /* host writes (as a restore does) must not be reported */
    memset(vm.machine.ram + 0x60000, 0xaa, 8192);
    vm.machine.ram[RANGE_START + 4096] ^= 1;
    vm.machine.ram[RANGE_START + 4096] ^= 1;
    for (int round = 0; round < 4; round++) {
        get_state(&vm, &a);
        assert_int_equal(vm_mr_ops.start(&vm, &err), 0);
        /* a short run, usually ending mid-pass, later rounds longer */
        if (round >= 2)
            wait_passes(&vm, 1);
        else
            sleep_ms(1);
        stop_vm(&vm);
        get_state(&vm, &b);
        memset(bm[0], 0, words * sizeof(long));
        assert_int_equal(vm_mr_ops.dirty_log_sync(&vm, bm, &err), 0);
        for (uint64_t gpa = 0; gpa < RAM_BYTES; gpa += 4096)
            if (test_bit(bm[0], gpa / 4096) != expect_dirty(&a, &b, gpa))
                fail_msg("round %d: page 0x%llx dirty=%d, expected %d "
                         "(next 0x%llx -> 0x%llx, passes %llu -> %llu)",
                         round, (unsigned long long)gpa,
                         test_bit(bm[0], gpa / 4096), expect_dirty(&a, &b, gpa),
                         (unsigned long long)a.next_addr,
                         (unsigned long long)b.next_addr,
                         (unsigned long long)a.passes,
                         (unsigned long long)b.passes);
    }
    vm_mr_ops.dirty_log_stop(&vm);
    vm_destroy(&vm);
    free(bm[0]);
}

static void kvm_dirty_log(void **state)
{
    (void)state;
    if (!have_kvm())
        skip();
    run_dirty_log(VM_ACCEL_KVM);
}

static void thread_dirty_log(void **state)
{
    (void)state;
    run_dirty_log(VM_ACCEL_THREAD);
}

/* Source runs on `from`; RAM and device state move to a fresh VM on `to`
 * started as with -incoming; the guest must carry on exactly. */
static void migrate_between(enum vm_accel from, enum vm_accel to)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_device_state *devs = NULL;
    struct vm_config scfg, dcfg;
    struct guest_state st, dst;
    struct vm src, dest;
    size_t n = 0;

    make_config(&scfg, from, false);
    make_config(&dcfg, to, true);
    start_vm(&src, &scfg);
    start_vm(&dest, &dcfg);
    assert_int_equal(vm_mr_ops.runstate(&dest), MR_RUN_INMIGRATE);
    wait_passes(&src, 3);
    assert_int_equal(vm_mr_ops.stop(&src, MR_RUN_FINISH_MIGRATE, &err), 0);
    assert_int_equal(vm_mr_ops.save_devices(&src, &devs, &n, &err), 0);
    get_state(&src, &st);
    memcpy(dest.machine.ram, src.machine.ram, RAM_BYTES);
    assert_int_equal(vm_mr_ops.load_devices(&dest, devs, n, &err), 0);
    mr_device_state_free_array(devs, n);
    get_state(&dest, &dst);
    assert_int_equal(st.phase, dst.phase);
    assert_int_equal(st.next_addr, dst.next_addr);
    assert_int_equal(st.passes, dst.passes);
    assert_int_equal(st.range_start, dst.range_start);
    assert_int_equal(st.range_end, dst.range_end);
    check_pattern(&dest, &dst);
    vm_mr_ops.set_runstate(&dest, MR_RUN_PAUSED);
    assert_int_equal(vm_mr_ops.start(&dest, &err), 0);
    wait_passes(&dest, 2);
    stop_vm(&dest);
    get_state(&dest, &dst);
    check_pattern(&dest, &dst);
    assert_true(dst.passes >= st.passes + 2);
    vm_destroy(&src);
    vm_destroy(&dest);
}

static void kvm_to_thread(void **state)
{
    (void)state;
    if (!have_kvm())
        skip();
    migrate_between(VM_ACCEL_KVM, VM_ACCEL_THREAD);
}

static void thread_to_kvm(void **state)
{
    (void)state;
    if (!have_kvm())
        skip();
    migrate_between(VM_ACCEL_THREAD, VM_ACCEL_KVM);
}

static void bad_device_state_refused(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_device_state dev = { 0 };
    struct guest_state st;
    uint8_t data[GUEST_STATE_BYTES];
    struct vm_config cfg;
    struct vm vm;

    (void)state;
    make_config(&cfg, VM_ACCEL_THREAD, true);
    start_vm(&vm, &cfg);
    dev.idstr = (char *)"serial";
    assert_int_equal(vm_mr_ops.load_devices(&vm, &dev, 1, &err), -EINVAL);
    assert_string_equal(err.msg, "Unknown savevm section or instance "
                        "'serial' 0. Make sure that your current VM setup "
                        "matches your saved VM setup, including any "
                        "hotplugged devices");
    guest_state_reset(&st, RANGE_START, RAM_BYTES + 4096);
    guest_state_encode(&st, data);
    dev.idstr = (char *)"guest-loop";
    dev.version_id = 1;
    dev.data = data;
    dev.size = sizeof(data);
    mr_error_clear(&err);
    assert_int_equal(vm_mr_ops.load_devices(&vm, &dev, 1, &err), -EINVAL);
    assert_string_equal(err.msg, "guest-loop: test range [0x100000, "
                        "0x4001000) does not fit RAM of 0x4000000 bytes");
    vm_destroy(&vm);
}

/* A guest that crashes (ud2 over its loop, no IDT: triple fault) puts
 * the VM in internal-error; cont then needs a reset, as in QEMU. */
static void kvm_guest_crash(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_config cfg;
    struct vm vm;
    uint8_t *code;

    (void)state;
    if (!have_kvm())
        skip();
    make_config(&cfg, VM_ACCEL_KVM, false);
    start_vm(&vm, &cfg);
    wait_passes(&vm, 1);
    stop_vm(&vm);
    code = vm.machine.ram + vm.machine.layout.code_gpa +
           vm.machine.layout.off_inc;
    code[0] = 0x0f;
    code[1] = 0x0b;
    assert_int_equal(vm_qmp_cont(&vm, &err), 0);
    for (int i = 0; i < 2000 && vm_mr_ops.runstate(&vm) == MR_RUN_RUNNING; i++)
        sleep_ms(10);
    assert_int_equal(vm_mr_ops.runstate(&vm), MR_RUN_INTERNAL_ERROR);
    assert_int_equal(vm_qmp_cont(&vm, &err), -EINVAL);
    assert_string_equal(err.msg, "Resetting the Virtual Machine is required");
    vm_destroy(&vm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thread_stop_pattern),
        cmocka_unit_test(kvm_stop_pattern),
        cmocka_unit_test(thread_dirty_log),
        cmocka_unit_test(kvm_dirty_log),
        cmocka_unit_test(kvm_to_thread),
        cmocka_unit_test(thread_to_kvm),
        cmocka_unit_test(bad_device_state_refused),
        cmocka_unit_test(kvm_guest_crash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
