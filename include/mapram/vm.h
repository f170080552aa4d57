/*
 * What the migration engine needs from a VM: the embedder's side of the
 * contract.
 *
 * A VM host (src/vm/mapram-vm, or any VMM embedding libmapram) describes
 * its guest RAM as blocks and implements `struct mr_vm_ops`: run control,
 * dirty tracking and its own device state.  libmapram never touches vCPUs
 * or the accelerator directly.
 */
#ifndef MAPRAM_VM_H
#define MAPRAM_VM_H

#include <jansson.h>
/* json_t: a device's VMDESCRIPTION entry, which is JSON in the stream. */
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

/* QEMU's RunState names (docs/qmp.md, "Run states"). */
enum mr_runstate {
    MR_RUN_DEBUG,
    MR_RUN_INMIGRATE,
    MR_RUN_INTERNAL_ERROR,
    MR_RUN_IO_ERROR,
    MR_RUN_PAUSED,
    MR_RUN_POSTMIGRATE,
    MR_RUN_PRELAUNCH,
    MR_RUN_FINISH_MIGRATE,
    MR_RUN_RESTORE_VM,
    MR_RUN_RUNNING,
    MR_RUN_SAVE_VM,
    MR_RUN_SHUTDOWN,
    MR_RUN_SUSPENDED,
    MR_RUN_WATCHDOG,
    MR_RUN_GUEST_PANICKED,
    MR_RUN_COLO,
    MR_RUN__MAX
};

const char *mr_runstate_name(enum mr_runstate state);
/* True for states in which the guest counts as live ("running" and the few
 * QEMU treats alike), i.e. a restore should resume it. */
bool mr_runstate_is_live(enum mr_runstate state);

/* One guest RAM block, as named in the stream ("pc.ram", "pc.bios"). */
struct mr_ram_block {
    const char *name;     /* idstr, at most 255 bytes, no NUL inside */
    uint8_t *host;        /* page-aligned host mapping of the whole block */
    uint64_t used_length; /* bytes, a multiple of page_size */
    uint64_t page_size;   /* target page size: 4096 */
};

/* One device's state, saved as a FULL section and described in VMDESC. */
struct mr_device_state {
    char *idstr;          /* section idstr, e.g. "cpu" */
    uint32_t instance_id;
    uint32_t version_id;
    uint8_t *data;
    size_t size;
    json_t *vmdesc;       /* this device's VMDESC entry (owned) */
};

void mr_device_state_free_array(struct mr_device_state *states, size_t count);

struct mr_vm_ops {
    /* Machine type written to and checked against the configuration
     * section, e.g. "mapram-vm-1.0". */
    const char *machine_type;

    /* Stop every vCPU and enter `state` (paused, finish-migrate, ...).
     * Emits STOP if the guest was running.  Idempotent. */
    int (*stop)(void *vm, enum mr_runstate state, struct mr_error *err);
    /* Start the vCPUs (state running, RESUME event). */
    int (*start)(void *vm, struct mr_error *err);
    enum mr_runstate (*runstate)(void *vm);
    /* Change the state without starting or stopping anything
     * (inmigrate -> paused, finish-migrate -> postmigrate). */
    void (*set_runstate)(void *vm, enum mr_runstate state);

    /* Dirty tracking over all blocks.  sync ORs the pages written since the
     * previous sync (or since start) into bitmaps[i] for block i, one bit
     * per page in native unsigned long words, and resets the VM's log. */
    int (*dirty_log_start)(void *vm, struct mr_error *err);
    int (*dirty_log_sync)(void *vm, unsigned long *const *bitmaps,
                          struct mr_error *err);
    void (*dirty_log_stop)(void *vm);

    /* Device state, called with the guest stopped.  save allocates the
     * array (freed by the caller with mr_device_state_free_array). */
    int (*save_devices)(void *vm, struct mr_device_state **out,
                        size_t *count, struct mr_error *err);
    int (*load_devices)(void *vm, const struct mr_device_state *states,
                        size_t count, struct mr_error *err);
    /* Optional: whether load_devices accepts a section of this device.
     * With it, a load refuses an unknown section as soon as it is read. */
    bool (*has_device)(void *vm, const char *idstr, uint32_t instance_id);
};

#endif
