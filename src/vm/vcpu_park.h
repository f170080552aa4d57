/*
 * Parking a vCPU thread: the handshake both accelerators share.  The vCPU
 * thread parks (announces it and waits) until it is wanted running or told
 * to quit; pause() clears run_wanted and waits until the thread has parked.
 * All fields are under `lock`.
 */
#ifndef MAPRAM_VM_VCPU_PARK_H
#define MAPRAM_VM_VCPU_PARK_H

#include <pthread.h>
#include <stdbool.h>

struct vcpu_park {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool run_wanted, parked, quit;
};

void vcpu_park_init(struct vcpu_park *p);
void vcpu_park_destroy(struct vcpu_park *p);

/* vCPU thread, lock held: park until wanted running (returns true, no
 * longer parked) or told to quit (returns false). */
bool vcpu_park_wait_for_run(struct vcpu_park *p);

/* Controller, lock held: wait until the vCPU thread has parked. */
void vcpu_park_wait_parked(struct vcpu_park *p);

/* Controller: tell a parked vCPU thread to leave its loop. */
void vcpu_park_quit(struct vcpu_park *p);

#endif
