/*
 * Parking a vCPU thread: the handshake both accelerators share.  The vCPU
 * thread parks (announces it and waits) until it is wanted running or told
 * to quit; pause() clears run_wanted and waits until the thread has parked.
 * A vCPU whose guest cannot go on parks for good with its error.  All
 * fields are under `lock`.
 */
#ifndef MAPRAM_VM_VCPU_PARK_H
#define MAPRAM_VM_VCPU_PARK_H

#include <pthread.h>
#include <stdbool.h>

#include "machine.h"
#include "mapram/error.h"

struct vcpu_park {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool run_wanted, parked, quit;
    int failed;                /* negative errno once the guest failed */
    struct mr_error fail_err;
};

void vcpu_park_init(struct vcpu_park *p);
void vcpu_park_destroy(struct vcpu_park *p);

/* vCPU thread, lock held: park until wanted running (returns true, no
 * longer parked) or told to quit (returns false). */
bool vcpu_park_wait_for_run(struct vcpu_park *p);

/* Controller, lock held: wait until the vCPU thread has parked. */
void vcpu_park_wait_parked(struct vcpu_park *p);

/* vCPU thread, lock held: the guest cannot go on.  Park for good with
 * `err`, then tell the machine (on_vcpu_fatal) with the lock dropped, since
 * the VM may be waiting in pause() under its own lock. */
void vcpu_park_fail(struct vcpu_park *p, struct machine *m,
                    const struct mr_error *err);

/* Controller, lock held: 0, or the failure (its message into `err`). */
int vcpu_park_failure(struct vcpu_park *p, struct mr_error *err);

/* Controller: tell a parked vCPU thread to leave its loop. */
void vcpu_park_quit(struct vcpu_park *p);

#endif
