/*
 * The VM: machine + vCPU + run state, and its `struct mr_vm_ops`
 * implementation for the migration engine (include/mapram/vm.h).
 *
 * One `struct vm` is passed explicitly everywhere (no globals).  Run
 * control is serialised by vm->lock; STOP/RESUME events go through the
 * `emit` callback (the monitor wires it to mr_qmp_server_emit_event).
 */
#ifndef MAPRAM_VM_VMHOST_H
#define MAPRAM_VM_VMHOST_H

#include <pthread.h>
#include <stdbool.h>

#include "machine.h"
#include "mapram/vm.h"
#include "options.h"
#include "vcpu.h"

struct vm {
    const struct vm_config *cfg;
    struct machine machine;
    const struct vcpu_ops *cpu_ops;
    struct vcpu *cpu;
    pthread_mutex_t lock;
    enum mr_runstate state;   /* under lock */
    bool autostart;           /* under lock: start after an incoming load */
    void (*emit)(void *opaque, const char *event);
    void *emit_opaque;
};

extern const struct mr_vm_ops vm_mr_ops;

/* Build the machine and the vCPU on the first usable accelerator of
 * -accel (default: kvm, then thread).  Each fallback prints one notice
 * line on stderr; a lone -accel kvm that cannot work is an error. */
int vm_init(struct vm *vm, const struct vm_config *cfg, struct mr_error *err);
/* Enter the initial run state: inmigrate (-incoming), prelaunch (-S) or
 * running. */
int vm_power_on(struct vm *vm, struct mr_error *err);
void vm_destroy(struct vm *vm);

/* The monitor's stop/cont with QEMU's semantics (docs/qmp.md, "Run states"). */
int vm_qmp_stop(struct vm *vm, struct mr_error *err);
int vm_qmp_cont(struct vm *vm, struct mr_error *err);
bool vm_autostart(struct vm *vm);

#endif
