/*
 * The host-thread vCPU: the guest program's loop in C on a host thread,
 * over the same memory and serial protocol, where KVM is not available.
 * Its state is the neutral guest_state (every page step a safe point);
 * dirty logging is an atomic software bitmap; RAM is populated before the
 * guest first writes it, so memory that cannot be backed fails the vCPU. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "guest/layout.h"
#include "vcpu.h"
#include "vcpu_park.h"

#define BITS_PER_WORD (8 * sizeof(unsigned long))
#define BACKED_CHUNK_BYTES (2ull << 20) /* populated in steps of this */

struct vcpu {
    struct machine *m;
    pthread_t thread;
    struct vcpu_park park;
    atomic_bool stop_req;          /* polled by the loop */
    struct guest_state st;         /* owned by the thread while running */
    atomic_bool logging;
    _Atomic unsigned long *dirty;
    size_t nr_words;
    /* Owned by the vCPU thread: one bit per BACKED_CHUNK_BYTES of pc.ram
     * known to have memory behind it. */
    unsigned long *backed;
    bool no_populate;              /* the kernel lacks MADV_POPULATE_WRITE */
};

static int populate(uint8_t *addr, uint64_t len)
{
    int rc;

    do {
        rc = madvise(addr, len, MADV_POPULATE_WRITE);
    } while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

/*
 * Before the guest writes the page at `gpa`: a file on a full tmpfs, or a
 * hugetlb pool run dry, would answer the store with SIGBUS, where KVM's
 * KVM_RUN fails with EFAULT.  MADV_POPULATE_WRITE allocates without
 * touching the content and reports the same condition as an error.  A
 * chunk that fails is retried page by page, so the guest stops at the
 * first page it really cannot write.
 */
static int back_page(struct vcpu *cpu, uint64_t gpa, struct mr_error *err)
{
    uint64_t chunk = gpa / BACKED_CHUNK_BYTES, start, len;
    unsigned long bit = 1ul << (chunk % BITS_PER_WORD);
    int rc;

    if (cpu->no_populate || (cpu->backed[chunk / BITS_PER_WORD] & bit))
        return 0;
    start = chunk * BACKED_CHUNK_BYTES;
    len = cpu->m->ram_bytes - start < BACKED_CHUNK_BYTES
              ? cpu->m->ram_bytes - start : BACKED_CHUNK_BYTES;
    rc = populate(cpu->m->ram + start, len);
    if (rc == -EINVAL) {
        cpu->no_populate = true; /* older kernel: as before, no check */
        return 0;
    }
    if (rc == 0) {
        cpu->backed[chunk / BITS_PER_WORD] |= bit;
        return 0;
    }
    gpa -= gpa % GUEST_PAGE_BYTES;
    rc = populate(cpu->m->ram + gpa, GUEST_PAGE_BYTES);
    if (rc == -EHWPOISON)       /* poisoned: docs/lazy-load.md */
        return mr_error_set(err, -EHWPOISON, "guest memory at 0x%llx is "
                            "withheld (a failed lazy load): the vCPU stops",
                            (unsigned long long)gpa);
    if (rc < 0)
        return mr_error_set(err, rc, "guest memory at 0x%llx cannot be "
                            "backed: %s", (unsigned long long)gpa,
                            strerror(-rc));
    return 0;
}

static void mark_dirty(struct vcpu *cpu, uint64_t gpa)
{
    uint64_t page = gpa / GUEST_PAGE_BYTES;

    if (atomic_load_explicit(&cpu->logging, memory_order_relaxed))
        atomic_fetch_or_explicit(&cpu->dirty[page / BITS_PER_WORD],
                                 1ul << (page % BITS_PER_WORD),
                                 memory_order_relaxed);
}

static void end_pass(struct vcpu *cpu)
{
    struct guest_state *st = &cpu->st;

    st->passes++;
    memcpy(cpu->m->ram + GUEST_COUNTER_GPA, &st->passes, sizeof(st->passes));
    mark_dirty(cpu, GUEST_COUNTER_GPA);
    st->next_addr = st->range_start;
    if (st->passes % 64 == 0)
        machine_serial_out(cpu->m, 'B');
}

/* One instruction-level step of guest.S, from one safe point to the next;
 * a failure leaves the state at the safe point it started from. */
static int step(struct vcpu *cpu, struct mr_error *err)
{
    struct guest_state *st = &cpu->st;
    uint8_t *ram = cpu->m->ram;
    bool last;
    int rc;

    if (st->phase == GUEST_PHASE_BOOT) {
        machine_serial_out(cpu->m, 'A');
        st->next_addr = st->range_start;
        st->phase = GUEST_PHASE_CLEAR;
        return 0;
    }
    rc = back_page(cpu, st->next_addr, err);
    if (rc < 0)
        return rc;
    if (st->phase == GUEST_PHASE_CLEAR) {
        ram[st->next_addr] = 0;
        mark_dirty(cpu, st->next_addr);
        st->next_addr += GUEST_PAGE_BYTES;
        if (st->next_addr >= st->range_end) {
            st->next_addr = st->range_start;
            st->phase = GUEST_PHASE_INC;
        }
        return 0;
    }
    last = st->next_addr + GUEST_PAGE_BYTES >= st->range_end;
    rc = last ? back_page(cpu, GUEST_COUNTER_GPA, err) : 0;
    if (rc < 0)
        return rc;
    ram[st->next_addr]++;
    mark_dirty(cpu, st->next_addr);
    st->next_addr += GUEST_PAGE_BYTES;
    if (last)
        end_pass(cpu);
    return 0;
}

static int run_until_stop(struct vcpu *cpu, struct mr_error *err)
{
    int rc = 0;

    while (rc == 0 &&
           !atomic_load_explicit(&cpu->stop_req, memory_order_relaxed))
        rc = step(cpu, err);
    return rc;
}

static void *thread_main(void *opaque)
{
    struct vcpu *cpu = opaque;

    pthread_mutex_lock(&cpu->park.lock);
    while (vcpu_park_wait_for_run(&cpu->park)) {
        struct mr_error err = MR_ERROR_INIT;
        int rc;

        pthread_mutex_unlock(&cpu->park.lock);
        rc = run_until_stop(cpu, &err);
        pthread_mutex_lock(&cpu->park.lock);
        if (rc < 0)
            vcpu_park_fail(&cpu->park, cpu->m, &err);
    }
    pthread_mutex_unlock(&cpu->park.lock);
    return NULL;
}

static struct vcpu *thread_create(struct machine *m, struct mr_error *err)
{
    struct vcpu *cpu = calloc(1, sizeof(*cpu));
    int rc;

    if (!cpu) {
        mr_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    cpu->m = m;
    cpu->st = m->boot_state;
    cpu->nr_words = (m->ram_bytes / GUEST_PAGE_BYTES + BITS_PER_WORD - 1) /
                    BITS_PER_WORD;
    cpu->dirty = calloc(cpu->nr_words, sizeof(*cpu->dirty));
    cpu->backed = calloc(m->ram_bytes / BACKED_CHUNK_BYTES / BITS_PER_WORD + 1,
                         sizeof(*cpu->backed));
    vcpu_park_init(&cpu->park);
    rc = cpu->dirty && cpu->backed
             ? pthread_create(&cpu->thread, NULL, thread_main, cpu) : ENOMEM;
    if (rc) {
        mr_error_set(err, -rc, "cannot start the vCPU thread: %s",
                     strerror(rc));
        free(cpu->dirty);
        free(cpu->backed);
        free(cpu);
        return NULL;
    }
    return cpu;
}

static void thread_destroy(struct vcpu *cpu)
{
    atomic_store(&cpu->stop_req, true);
    vcpu_park_quit(&cpu->park);
    pthread_join(cpu->thread, NULL);
    vcpu_park_destroy(&cpu->park);
    free(cpu->dirty);
    free(cpu->backed);
    free(cpu);
}

static int thread_resume(struct vcpu *cpu, struct mr_error *err)
{
    int rc;

    pthread_mutex_lock(&cpu->park.lock);
    rc = vcpu_park_failure(&cpu->park, err);
    if (rc == 0) {
        atomic_store(&cpu->stop_req, false);
        cpu->park.run_wanted = true;
        pthread_cond_broadcast(&cpu->park.cond);
    }
    pthread_mutex_unlock(&cpu->park.lock);
    return rc;
}

static int thread_pause(struct vcpu *cpu, struct mr_error *err)
{
    int rc;

    pthread_mutex_lock(&cpu->park.lock);
    cpu->park.run_wanted = false;
    atomic_store(&cpu->stop_req, true);
    vcpu_park_wait_parked(&cpu->park);
    rc = vcpu_park_failure(&cpu->park, err);
    pthread_mutex_unlock(&cpu->park.lock);
    return rc;
}

static int thread_get_state(struct vcpu *cpu, struct guest_state *out,
                            struct mr_error *err)
{
    (void)err;
    pthread_mutex_lock(&cpu->park.lock);
    *out = cpu->st;
    pthread_mutex_unlock(&cpu->park.lock);
    return 0;
}

static int thread_set_state(struct vcpu *cpu, const struct guest_state *st,
                            struct mr_error *err)
{
    int rc = guest_state_validate(st, cpu->m->ram_bytes, err);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&cpu->park.lock);
    cpu->st = *st;
    pthread_mutex_unlock(&cpu->park.lock);
    return 0;
}

static int thread_dirty_log_start(struct vcpu *cpu, struct mr_error *err)
{
    (void)err;
    for (size_t i = 0; i < cpu->nr_words; i++)
        atomic_store_explicit(&cpu->dirty[i], 0, memory_order_relaxed);
    atomic_store(&cpu->logging, true);
    return 0;
}

static int thread_dirty_log_sync(struct vcpu *cpu, unsigned long *bitmap,
                                 struct mr_error *err)
{
    (void)err;
    for (size_t i = 0; i < cpu->nr_words; i++)
        bitmap[i] |= atomic_exchange_explicit(&cpu->dirty[i], 0,
                                              memory_order_relaxed);
    return 0;
}

static void thread_dirty_log_stop(struct vcpu *cpu)
{
    atomic_store(&cpu->logging, false);
}

const struct vcpu_ops vcpu_thread_ops = {
    .name = "thread",
    .create = thread_create,
    .destroy = thread_destroy,
    .resume = thread_resume,
    .pause = thread_pause,
    .get_state = thread_get_state,
    .set_state = thread_set_state,
    .dirty_log_start = thread_dirty_log_start,
    .dirty_log_sync = thread_dirty_log_sync,
    .dirty_log_stop = thread_dirty_log_stop,
};
