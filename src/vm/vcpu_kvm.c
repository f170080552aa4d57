/*
 * The KVM vCPU: one vCPU entered directly in 64-bit long mode (CPL 3) at
 * the guest program, pc.ram as memory slot 0 at guest-physical 0, port
 * I/O to 0x3f8 as the serial port, KVM_GET_DIRTY_LOG for dirty tracking.
 *
 * Stopping is cooperative: pause() sets the stop flag in guest memory; the
 * program sees it at its next safe point (a few instructions away) and
 * writes the phase to the park port.  The vCPU thread completes that OUT
 * with immediate_exit (so no I/O is left pending and the registers are
 * final), puts rip back on the safe point, clears the flag and parks.  A
 * parked vCPU's registers therefore always map to a neutral guest_state
 * (guest_state.c).  The flag is only ever 1 while a stop is in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest/layout.h"
#include "vcpu.h"
#include "vcpu_park.h"

#define MAX_CPUID_ENTRIES 256

struct vcpu {
    struct machine *m;
    int kvm_fd, vm_fd, fd;
    struct kvm_run *run;
    size_t run_bytes;
    pthread_t thread;
    bool thread_started;
    struct vcpu_park park;
    unsigned long *scratch;        /* KVM_GET_DIRTY_LOG buffer */
    size_t nr_words;
};

static int set_slot(struct vcpu *cpu, uint32_t flags, struct mr_error *err)
{
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .flags = flags,
        .guest_phys_addr = 0,
        .memory_size = cpu->m->ram_bytes,
        .userspace_addr = (uintptr_t)cpu->m->ram,
    };

    if (ioctl(cpu->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return mr_error_set(err, -errno, "KVM_SET_USER_MEMORY_REGION: %s",
                            strerror(errno));
    return 0;
}

static int set_cpuid(struct vcpu *cpu, struct mr_error *err)
{
    struct kvm_cpuid2 *cpuid;
    int rc = 0;

    cpuid = calloc(1, sizeof(*cpuid) +
                          MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid)
        return mr_error_set(err, -ENOMEM, "out of memory");
    cpuid->nent = MAX_CPUID_ENTRIES;
    /* Long mode must be in the guest's CPUID or KVM refuses EFER.LME. */
    if (ioctl(cpu->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
        ioctl(cpu->fd, KVM_SET_CPUID2, cpuid) < 0)
        rc = mr_error_set(err, -errno, "KVM CPUID setup: %s", strerror(errno));
    free(cpuid);
    return rc;
}

static void flat_segment(struct kvm_segment *s, uint16_t selector, bool code)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = selector;
    s->dpl = 3;
    s->type = code ? 11 : 3; /* exec/read accessed : read/write accessed */
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code;
    s->db = !code;
}

static int enter_long_mode(struct vcpu *cpu, struct mr_error *err)
{
    struct kvm_sregs sregs;

    if (ioctl(cpu->fd, KVM_GET_SREGS, &sregs) < 0)
        return mr_error_set(err, -errno, "KVM_GET_SREGS: %s", strerror(errno));
    flat_segment(&sregs.cs, GUEST_SELECTOR_CODE, true);
    flat_segment(&sregs.ds, GUEST_SELECTOR_DATA, false);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.gdt.base = GUEST_GDT_GPA;
    sregs.gdt.limit = 3 * 8 - 1;
    sregs.cr3 = GUEST_PML4_GPA;
    sregs.cr4 = 1u << 5;                           /* PAE */
    sregs.cr0 = 0x80050033;                        /* PG WP NE ET MP PE */
    sregs.efer = (1u << 8) | (1u << 10);           /* LME LMA */
    if (ioctl(cpu->fd, KVM_SET_SREGS, &sregs) < 0)
        return mr_error_set(err, -errno, "KVM_SET_SREGS: %s", strerror(errno));
    return 0;
}

static int load_regs(struct vcpu *cpu, const struct guest_state *st,
                     struct mr_error *err)
{
    struct guest_regs g;
    struct kvm_regs regs;

    guest_state_to_regs(&cpu->m->layout, st, &g);
    memset(&regs, 0, sizeof(regs));
    regs.rflags = 0x3002; /* IOPL 3: the CPL 3 program may use OUT */
    regs.rip = g.rip;
    regs.rsi = g.rsi;
    regs.rdi = g.rdi;
    regs.rbx = g.rbx;
    regs.rdx = g.rdx;
    regs.r8 = g.r8;
    if (ioctl(cpu->fd, KVM_SET_REGS, &regs) < 0)
        return mr_error_set(err, -errno, "KVM_SET_REGS: %s", strerror(errno));
    return 0;
}

static int read_regs(struct vcpu *cpu, struct guest_regs *g,
                     struct mr_error *err)
{
    struct kvm_regs regs;

    if (ioctl(cpu->fd, KVM_GET_REGS, &regs) < 0)
        return mr_error_set(err, -errno, "KVM_GET_REGS: %s", strerror(errno));
    g->rip = regs.rip;
    g->rsi = regs.rsi;
    g->rdi = regs.rdi;
    g->rbx = regs.rbx;
    g->rdx = regs.rdx;
    g->r8 = regs.r8;
    return 0;
}

/* Returns 1 when the guest reported at the park port with `*phase`. */
static int handle_exit(struct vcpu *cpu, uint8_t *phase, struct mr_error *err)
{
    struct kvm_run *run = cpu->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 1)
            return 0;
        if (run->io.port == GUEST_PARK_PORT) {
            *phase = data[0];
            return 1;
        }
        if (run->io.port == GUEST_SERIAL_PORT)
            for (uint32_t i = 0; i < run->io.count; i++)
                machine_serial_out(cpu->m, data[i]);
        return 0;
    case KVM_EXIT_INTR:
        return 0;
    case KVM_EXIT_SHUTDOWN:
        return mr_error_set(err, -EIO, "KVM: the guest triple-faulted");
    case KVM_EXIT_FAIL_ENTRY:
        return mr_error_set(err, -EIO, "KVM: entry failed, hardware reason "
                            "0x%llx", (unsigned long long)
                            run->fail_entry.hardware_entry_failure_reason);
    default:
        return mr_error_set(err, -EIO, "KVM: unexpected exit reason %u",
                            run->exit_reason);
    }
}

/*
 * Guest memory that a failed lazy load withholds is poisoned
 * (docs/lazy-load.md, "Fail closed"): KVM answers the vCPU's access with a
 * SIGBUS (BUS_MCEERR_AR) to the vCPU thread, and KVM_RUN returns EINTR.
 * The handler notes it for the thread inside KVM_RUN; any other SIGBUS
 * keeps its default action.  Signal state is per thread by necessity.
 */
static __thread volatile sig_atomic_t in_kvm_run, poisoned;
static __thread void *volatile poison_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (!in_kvm_run || (si->si_code != BUS_MCEERR_AR &&
                        si->si_code != BUS_MCEERR_AO)) {
        signal(sig, SIG_DFL);
        raise(sig);             /* delivered on return: the default */
        return;
    }
    poisoned = 1;
    poison_addr = si->si_addr;
}

static int install_sigbus(struct mr_error *err)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, NULL) < 0)
        return mr_error_set(err, -errno, "sigaction(SIGBUS): %s",
                            strerror(errno));
    return 0;
}

static int withheld(struct vcpu *cpu, struct mr_error *err)
{
    uintptr_t a = (uintptr_t)poison_addr, base = (uintptr_t)cpu->m->ram;

    poisoned = 0;
    return mr_error_set(err, -EHWPOISON, "guest memory at 0x%llx is "
                        "withheld (a failed lazy load): the vCPU stops",
                        (unsigned long long)(a >= base ? a - base : a));
}

static int run_once(struct vcpu *cpu, uint8_t *phase, struct mr_error *err)
{
    int rc;

    in_kvm_run = 1;
    rc = ioctl(cpu->fd, KVM_RUN, 0);
    in_kvm_run = 0;
    if (poisoned)
        return withheld(cpu, err);
    if (rc < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        return mr_error_set(err, -errno, "KVM_RUN: %s", strerror(errno));
    }
    return handle_exit(cpu, phase, err);
}

/* Finish the park port OUT without running further guest code, then put
 * rip on the safe point of `phase`. */
static int settle_at_safe_point(struct vcpu *cpu, uint8_t phase,
                                struct mr_error *err)
{
    struct guest_regs g = { 0 };
    struct guest_state st;
    int rc;

    cpu->run->immediate_exit = 1;
    rc = ioctl(cpu->fd, KVM_RUN, 0);
    cpu->run->immediate_exit = 0;
    if (rc == 0 || errno != EINTR)
        return mr_error_set(err, -EIO, "KVM: could not complete the park "
                            "exit: %s", rc == 0 ? "guest ran" : strerror(errno));
    if (phase != GUEST_PHASE_CLEAR && phase != GUEST_PHASE_INC)
        return mr_error_set(err, -EIO, "guest parked with bad phase %u", phase);
    rc = read_regs(cpu, &g, err);
    if (rc < 0)
        return rc;
    st.phase = phase;
    st.next_addr = g.rsi;
    st.passes = g.rbx;
    st.range_start = g.r8;
    st.range_end = g.rdi;
    return load_regs(cpu, &st, err);
}

static volatile uint8_t *stop_flag(struct vcpu *cpu)
{
    return (volatile uint8_t *)(cpu->m->ram + GUEST_STOP_GPA);
}

static int run_until_stop(struct vcpu *cpu, struct mr_error *err)
{
    uint8_t phase = 0;
    int rc = 0;

    while (rc == 0)
        rc = run_once(cpu, &phase, err);
    if (rc == 1)
        rc = settle_at_safe_point(cpu, phase, err);
    if (rc != -EHWPOISON)       /* the flag's page may be withheld */
        *stop_flag(cpu) = 0;
    return rc;
}

static void *thread_main(void *opaque)
{
    struct vcpu *cpu = opaque;

    pthread_mutex_lock(&cpu->park.lock);
    while (vcpu_park_wait_for_run(&cpu->park)) {
        pthread_mutex_unlock(&cpu->park.lock);
        struct mr_error err = MR_ERROR_INIT;
        int rc = run_until_stop(cpu, &err);
        pthread_mutex_lock(&cpu->park.lock);
        if (rc < 0)
            vcpu_park_fail(&cpu->park, cpu->m, &err);
    }
    pthread_mutex_unlock(&cpu->park.lock);
    return NULL;
}

static int open_kvm(struct vcpu *cpu, struct mr_error *err)
{
    int mmap_bytes, rc;

    cpu->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (cpu->kvm_fd < 0)
        return mr_error_set(err, -errno, "Could not access KVM kernel module: "
                            "%s", strerror(errno));
    if (ioctl(cpu->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        return mr_error_set(err, -EINVAL, "/dev/kvm is not a KVM device or "
                            "speaks another API version");
    cpu->vm_fd = ioctl(cpu->kvm_fd, KVM_CREATE_VM, 0);
    if (cpu->vm_fd < 0)
        return mr_error_set(err, -errno, "KVM_CREATE_VM: %s", strerror(errno));
    rc = set_slot(cpu, 0, err);
    if (rc < 0)
        return rc;
    cpu->fd = ioctl(cpu->vm_fd, KVM_CREATE_VCPU, 0);
    if (cpu->fd < 0)
        return mr_error_set(err, -errno, "KVM_CREATE_VCPU: %s",
                            strerror(errno));
    mmap_bytes = ioctl(cpu->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_bytes < (int)sizeof(struct kvm_run))
        return mr_error_set(err, -EINVAL, "KVM_GET_VCPU_MMAP_SIZE failed");
    cpu->run = mmap(NULL, (size_t)mmap_bytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED, cpu->fd, 0);
    if (cpu->run == MAP_FAILED) {
        cpu->run = NULL;
        return mr_error_set(err, -errno, "mmap kvm_run: %s", strerror(errno));
    }
    cpu->run_bytes = (size_t)mmap_bytes;
    return 0;
}

static void kvm_destroy(struct vcpu *cpu);

static struct vcpu *kvm_create(struct machine *m, struct mr_error *err)
{
    struct vcpu *cpu = calloc(1, sizeof(*cpu));
    int rc;

    if (!cpu) {
        mr_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    cpu->m = m;
    cpu->kvm_fd = cpu->vm_fd = cpu->fd = -1;
    vcpu_park_init(&cpu->park);
    cpu->nr_words = (m->ram_bytes / GUEST_PAGE_BYTES + 63) / 64;
    cpu->scratch = calloc(cpu->nr_words, sizeof(unsigned long));
    rc = cpu->scratch ? 0 : mr_error_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = install_sigbus(err);
    if (rc == 0)
        rc = open_kvm(cpu, err);
    if (rc == 0)
        rc = set_cpuid(cpu, err);
    if (rc == 0)
        rc = enter_long_mode(cpu, err);
    if (rc == 0)
        rc = load_regs(cpu, &m->boot_state, err);
    if (rc == 0) {
        rc = -pthread_create(&cpu->thread, NULL, thread_main, cpu);
        if (rc < 0)
            mr_error_set(err, rc, "cannot start the vCPU thread: %s",
                         strerror(-rc));
        cpu->thread_started = rc == 0;
    }
    if (rc < 0) {
        kvm_destroy(cpu);
        return NULL;
    }
    return cpu;
}

/* The stop flag's page can be withheld by a failed lazy load (poisoned):
 * then the vCPU cannot run guest code either and parks on the poison by
 * itself.  Populating it first turns the poison into an error here. */
static bool stop_flag_writable(struct vcpu *cpu)
{
    uint8_t *page = cpu->m->ram + (GUEST_STOP_GPA & ~(uint64_t)4095);

    return madvise(page, 4096, MADV_POPULATE_WRITE) == 0 || errno == EINVAL;
}

static int kvm_pause(struct vcpu *cpu, struct mr_error *err)
{
    int rc;

    pthread_mutex_lock(&cpu->park.lock);
    cpu->park.run_wanted = false;
    if (!cpu->park.parked && stop_flag_writable(cpu))
        *stop_flag(cpu) = 1;
    vcpu_park_wait_parked(&cpu->park);
    rc = vcpu_park_failure(&cpu->park, err);
    pthread_mutex_unlock(&cpu->park.lock);
    return rc;
}

static void kvm_destroy(struct vcpu *cpu)
{
    if (cpu->thread_started) {
        kvm_pause(cpu, NULL);
        vcpu_park_quit(&cpu->park);
        pthread_join(cpu->thread, NULL);
    }
    if (cpu->run)
        munmap(cpu->run, cpu->run_bytes);
    if (cpu->fd >= 0)
        close(cpu->fd);
    if (cpu->vm_fd >= 0)
        close(cpu->vm_fd);
    if (cpu->kvm_fd >= 0)
        close(cpu->kvm_fd);
    vcpu_park_destroy(&cpu->park);
    free(cpu->scratch);
    free(cpu);
}

static int kvm_resume(struct vcpu *cpu, struct mr_error *err)
{
    int rc;

    pthread_mutex_lock(&cpu->park.lock);
    rc = vcpu_park_failure(&cpu->park, err);
    if (rc == 0) {
        cpu->park.run_wanted = true;
        pthread_cond_broadcast(&cpu->park.cond);
    }
    pthread_mutex_unlock(&cpu->park.lock);
    return rc;
}

static int kvm_get_state(struct vcpu *cpu, struct guest_state *out,
                         struct mr_error *err)
{
    struct guest_regs g;
    int rc = read_regs(cpu, &g, err);

    return rc < 0 ? rc : guest_state_from_regs(&cpu->m->layout, &g, out, err);
}

static int kvm_set_state(struct vcpu *cpu, const struct guest_state *st,
                         struct mr_error *err)
{
    int rc = guest_state_validate(st, cpu->m->ram_bytes, err);

    /* RAM may come from a file written while a stop was in flight */
    *stop_flag(cpu) = 0;
    return rc < 0 ? rc : load_regs(cpu, st, err);
}

static int kvm_dirty_log_start(struct vcpu *cpu, struct mr_error *err)
{
    return set_slot(cpu, KVM_MEM_LOG_DIRTY_PAGES, err);
}

static int kvm_dirty_log_sync(struct vcpu *cpu, unsigned long *bitmap,
                              struct mr_error *err)
{
    struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = cpu->scratch };

    /* Without manual protection this also re-arms the log atomically. */
    if (ioctl(cpu->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
        return mr_error_set(err, -errno, "KVM_GET_DIRTY_LOG: %s",
                            strerror(errno));
    for (size_t i = 0; i < cpu->nr_words; i++)
        bitmap[i] |= cpu->scratch[i];
    return 0;
}

static void kvm_dirty_log_stop(struct vcpu *cpu)
{
    set_slot(cpu, 0, NULL);
}

const struct vcpu_ops vcpu_kvm_ops = {
    .name = "kvm",
    .create = kvm_create,
    .destroy = kvm_destroy,
    .resume = kvm_resume,
    .pause = kvm_pause,
    .get_state = kvm_get_state,
    .set_state = kvm_set_state,
    .dirty_log_start = kvm_dirty_log_start,
    .dirty_log_sync = kvm_dirty_log_sync,
    .dirty_log_stop = kvm_dirty_log_stop,
};
