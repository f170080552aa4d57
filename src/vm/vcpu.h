/*
 * One vCPU behind an ops table, so KVM and the host-thread fallback are
 * peers (vcpu_kvm.c, vcpu_thread.c) rather than an #ifdef forest.
 *
 * Contract shared by both:
 *  - create() leaves the vCPU parked at the machine's boot state;
 *  - resume() lets it run; pause() returns once it is parked at a safe
 *    point of the guest program (guest_state.h), so get_state/set_state,
 *    only legal while parked, see a complete neutral state;
 *  - dirty logging covers pc.ram and reports only the guest's own writes
 *    (the host writing guest memory, e.g. during a restore, never counts).
 */
#ifndef MAPRAM_VM_VCPU_H
#define MAPRAM_VM_VCPU_H

#include "guest_state.h"
#include "machine.h"
#include "mapram/error.h"

struct vcpu;

struct vcpu_ops {
    const char *name; /* "kvm", "thread" */
    struct vcpu *(*create)(struct machine *m, struct mr_error *err);
    void (*destroy)(struct vcpu *cpu);
    int (*resume)(struct vcpu *cpu, struct mr_error *err);
    int (*pause)(struct vcpu *cpu, struct mr_error *err);
    int (*get_state)(struct vcpu *cpu, struct guest_state *out,
                     struct mr_error *err);
    int (*set_state)(struct vcpu *cpu, const struct guest_state *st,
                     struct mr_error *err);
    int (*dirty_log_start)(struct vcpu *cpu, struct mr_error *err);
    /* OR pc.ram pages written since the last sync into `bitmap`. */
    int (*dirty_log_sync)(struct vcpu *cpu, unsigned long *bitmap,
                          struct mr_error *err);
    void (*dirty_log_stop)(struct vcpu *cpu);
};

extern const struct vcpu_ops vcpu_kvm_ops;
extern const struct vcpu_ops vcpu_thread_ops;

#endif
