/*
 * A VM for engine tests: malloc'd RAM blocks, a thread that keeps
 * dirtying pages while "running", a software dirty log, and one trivial
 * device.  Implements struct mr_vm_ops without any VM host.
 */
#ifndef MAPRAM_TEST_FAKE_VM_H
#define MAPRAM_TEST_FAKE_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapram/vm.h"

#define FAKE_NBLOCKS 2

struct fake_vm {
    struct mr_ram_block blocks[FAKE_NBLOCKS];
    unsigned long *soft_dirty[FAKE_NBLOCKS];
    atomic_bool logging;
    enum mr_runstate run;
    pthread_mutex_t lock;
    pthread_t dirtier;
    atomic_bool dirtier_stop;
    bool dirtier_live, dirty_while_running;
    uint64_t seq;
    /* memory as it was when the save stopped the VM */
    uint8_t *snapshot[FAKE_NBLOCKS];
    int starts, stops;
    uint8_t dev_state[16];
    bool dev_loaded;
};

extern const struct mr_vm_ops fake_vm_ops;

/* Blocks of `pages0` and `pages1` pages; `fill` writes the pattern
 * (page i % 5 == 0 stays zero). */
void fake_vm_init(struct fake_vm *vm, uint64_t pages0, uint64_t pages1,
                  bool fill, enum mr_runstate run);
void fake_vm_destroy(struct fake_vm *vm);
/* Start the dirtying thread (the VM must be running). */
void fake_vm_start_dirtier(struct fake_vm *vm);

#endif
