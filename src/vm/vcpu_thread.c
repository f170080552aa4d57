/*
 * The host-thread vCPU: a thread runs the guest program's loop in C over
 * the same memory, with the same serial protocol and pass counter, so
 * mapram-vm works where KVM is not available.  Its state *is* the neutral
 * guest_state; every page step is a safe point.  Dirty logging is a
 * software bitmap with an atomic bit set per guest write.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "guest/layout.h"
#include "vcpu.h"
#include "vcpu_park.h"

#define BITS_PER_WORD (8 * sizeof(unsigned long))

struct vcpu {
    struct machine *m;
    pthread_t thread;
    struct vcpu_park park;
    atomic_bool stop_req;          /* polled by the loop */
    struct guest_state st;         /* owned by the thread while running */
    atomic_bool logging;
    _Atomic unsigned long *dirty;
    size_t nr_words;
};

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

/* One instruction-level step of guest.S, from one safe point to the next. */
static void step(struct vcpu *cpu)
{
    struct guest_state *st = &cpu->st;
    uint8_t *ram = cpu->m->ram;

    switch (st->phase) {
    case GUEST_PHASE_BOOT:
        machine_serial_out(cpu->m, 'A');
        st->next_addr = st->range_start;
        st->phase = GUEST_PHASE_CLEAR;
        break;
    case GUEST_PHASE_CLEAR:
        ram[st->next_addr] = 0;
        mark_dirty(cpu, st->next_addr);
        st->next_addr += GUEST_PAGE_BYTES;
        if (st->next_addr >= st->range_end) {
            st->next_addr = st->range_start;
            st->phase = GUEST_PHASE_INC;
        }
        break;
    default:
        ram[st->next_addr]++;
        mark_dirty(cpu, st->next_addr);
        st->next_addr += GUEST_PAGE_BYTES;
        if (st->next_addr >= st->range_end)
            end_pass(cpu);
        break;
    }
}

static void *thread_main(void *opaque)
{
    struct vcpu *cpu = opaque;

    pthread_mutex_lock(&cpu->park.lock);
    while (vcpu_park_wait_for_run(&cpu->park)) {
        pthread_mutex_unlock(&cpu->park.lock);
        while (!atomic_load_explicit(&cpu->stop_req, memory_order_relaxed))
            step(cpu);
        pthread_mutex_lock(&cpu->park.lock);
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
    vcpu_park_init(&cpu->park);
    rc = cpu->dirty ? pthread_create(&cpu->thread, NULL, thread_main, cpu)
                    : ENOMEM;
    if (rc) {
        mr_error_set(err, -rc, "cannot start the vCPU thread: %s",
                     strerror(rc));
        free(cpu->dirty);
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
    free(cpu);
}

static int thread_resume(struct vcpu *cpu, struct mr_error *err)
{
    (void)err;
    pthread_mutex_lock(&cpu->park.lock);
    atomic_store(&cpu->stop_req, false);
    cpu->park.run_wanted = true;
    pthread_cond_broadcast(&cpu->park.cond);
    pthread_mutex_unlock(&cpu->park.lock);
    return 0;
}

static int thread_pause(struct vcpu *cpu, struct mr_error *err)
{
    (void)err;
    pthread_mutex_lock(&cpu->park.lock);
    cpu->park.run_wanted = false;
    atomic_store(&cpu->stop_req, true);
    vcpu_park_wait_parked(&cpu->park);
    pthread_mutex_unlock(&cpu->park.lock);
    return 0;
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
