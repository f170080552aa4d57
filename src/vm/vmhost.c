/*
 * The VM and its mr_vm_ops (see vmhost.h): run state transitions with
 * their events, dirty logging forwarded to the vCPU, and the device state
 * (one accelerator-neutral "guest-loop" section).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmhost.h"

static void emit(struct vm *vm, const char *event)
{
    if (vm->emit)
        vm->emit(vm->emit_opaque, event);
}

/* Called with vm->lock held. */
static int stop_locked(struct vm *vm, enum mr_runstate state,
                       struct mr_error *err)
{
    if (vm->state == MR_RUN_RUNNING) {
        int rc = vm->cpu_ops->pause(vm->cpu, err);

        vm->state = state;
        emit(vm, "STOP");
        return rc;
    }
    vm->state = state;
    return 0;
}

static int start_locked(struct vm *vm, struct mr_error *err)
{
    int rc;

    if (vm->state == MR_RUN_RUNNING)
        return 0;
    rc = vm->cpu_ops->resume(vm->cpu, err);
    if (rc < 0)
        return rc;
    vm->state = MR_RUN_RUNNING;
    emit(vm, "RESUME");
    return 0;
}

static int ops_stop(void *opaque, enum mr_runstate state, struct mr_error *err)
{
    struct vm *vm = opaque;
    int rc;

    pthread_mutex_lock(&vm->lock);
    rc = stop_locked(vm, state, err);
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

static int ops_start(void *opaque, struct mr_error *err)
{
    struct vm *vm = opaque;
    int rc;

    pthread_mutex_lock(&vm->lock);
    rc = start_locked(vm, err);
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

static enum mr_runstate ops_runstate(void *opaque)
{
    struct vm *vm = opaque;
    enum mr_runstate state;

    pthread_mutex_lock(&vm->lock);
    state = vm->state;
    pthread_mutex_unlock(&vm->lock);
    return state;
}

static void ops_set_runstate(void *opaque, enum mr_runstate state)
{
    struct vm *vm = opaque;

    pthread_mutex_lock(&vm->lock);
    vm->state = state;
    pthread_mutex_unlock(&vm->lock);
}

static int ops_dirty_log_start(void *opaque, struct mr_error *err)
{
    struct vm *vm = opaque;

    return vm->cpu_ops->dirty_log_start(vm->cpu, err);
}

/* Only pc.ram is ever written by the guest; the fixed blocks stay clean. */
static int ops_dirty_log_sync(void *opaque, unsigned long *const *bitmaps,
                              struct mr_error *err)
{
    struct vm *vm = opaque;

    return vm->cpu_ops->dirty_log_sync(vm->cpu, bitmaps[0], err);
}

static void ops_dirty_log_stop(void *opaque)
{
    struct vm *vm = opaque;

    vm->cpu_ops->dirty_log_stop(vm->cpu);
}

static int ops_save_devices(void *opaque, struct mr_device_state **out,
                            size_t *count, struct mr_error *err)
{
    struct vm *vm = opaque;
    struct mr_device_state *dev = calloc(1, sizeof(*dev));
    struct guest_state st;
    int rc;

    if (!dev)
        return mr_error_set(err, -ENOMEM, "out of memory");
    rc = vm->cpu_ops->get_state(vm->cpu, &st, err);
    if (rc < 0) {
        free(dev);
        return rc;
    }
    dev->idstr = strdup(GUEST_STATE_IDSTR);
    dev->instance_id = 0;
    dev->version_id = GUEST_STATE_VERSION;
    dev->size = GUEST_STATE_BYTES;
    dev->data = malloc(GUEST_STATE_BYTES);
    dev->vmdesc = guest_state_vmdesc();
    if (!dev->idstr || !dev->data || !dev->vmdesc) {
        mr_device_state_free_array(dev, 1);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    guest_state_encode(&st, dev->data);
    *out = dev;
    *count = 1;
    return 0;
}

static int load_one(struct vm *vm, const struct mr_device_state *dev,
                    struct mr_error *err)
{
    struct guest_state st;
    int rc;

    if (strcmp(dev->idstr, GUEST_STATE_IDSTR) || dev->instance_id != 0)
        return mr_error_set(err, -EINVAL, "Unknown savevm section or "
                            "instance '%s' %u. Make sure that your current VM "
                            "setup matches your saved VM setup, including any "
                            "hotplugged devices", dev->idstr,
                            dev->instance_id);
    if (dev->version_id > GUEST_STATE_VERSION)
        return mr_error_set(err, -EINVAL, "savevm: unsupported version %u "
                            "for '%s' v%d", dev->version_id, dev->idstr,
                            GUEST_STATE_VERSION);
    rc = guest_state_decode(dev->data, dev->size, &st, err);
    if (rc == 0)
        rc = vm->cpu_ops->set_state(vm->cpu, &st, err);
    return rc;
}

static int ops_load_devices(void *opaque, const struct mr_device_state *states,
                            size_t count, struct mr_error *err)
{
    struct vm *vm = opaque;
    int rc = 0;

    for (size_t i = 0; i < count && rc == 0; i++)
        rc = load_one(vm, &states[i], err);
    return rc;
}

/* The loader refuses other sections as soon as it reads them. */
static bool ops_has_device(void *opaque, const char *idstr,
                           uint32_t instance_id)
{
    (void)opaque;
    return strcmp(idstr, GUEST_STATE_IDSTR) == 0 && instance_id == 0;
}

const struct mr_vm_ops vm_mr_ops = {
    .machine_type = "mapram-vm-1.0",
    .stop = ops_stop,
    .start = ops_start,
    .runstate = ops_runstate,
    .set_runstate = ops_set_runstate,
    .dirty_log_start = ops_dirty_log_start,
    .dirty_log_sync = ops_dirty_log_sync,
    .dirty_log_stop = ops_dirty_log_stop,
    .save_devices = ops_save_devices,
    .load_devices = ops_load_devices,
    .has_device = ops_has_device,
};

static const struct vcpu_ops *accel_ops(enum vm_accel accel)
{
    return accel == VM_ACCEL_KVM ? &vcpu_kvm_ops : &vcpu_thread_ops;
}

/* Try the accelerators in order.  Falling back from KVM is announced in
 * one line; with nothing left to fall back to, KVM's error is the error. */
static int create_vcpu(struct vm *vm, struct mr_error *err)
{
    static const enum vm_accel fallback[] = { VM_ACCEL_KVM, VM_ACCEL_THREAD };
    const enum vm_accel *accels = vm->cfg->accels;
    size_t n = vm->cfg->nr_accels;

    if (n == 0) {
        accels = fallback;
        n = 2;
    }
    for (size_t i = 0; i < n; i++) {
        struct mr_error try_err = MR_ERROR_INIT;

        vm->cpu_ops = accel_ops(accels[i]);
        vm->cpu = vm->cpu_ops->create(&vm->machine, &try_err);
        if (vm->cpu)
            return 0;
        if (i + 1 == n)
            return mr_error_propagate(err, &try_err);
        fprintf(stderr, "mapram-vm: %s not usable (%s), falling back to "
                "-accel %s\n", vm->cpu_ops->name, try_err.msg,
                accel_ops(accels[i + 1])->name);
    }
    return mr_error_set(err, -EINVAL, "no accelerator");
}

/* QEMU stops a guest whose vCPU failed in internal-error (STOP event). */
static void vcpu_fatal(void *opaque, const struct mr_error *cpu_err)
{
    struct vm *vm = opaque;

    fprintf(stderr, "mapram-vm: the vCPU stopped: %s\n", cpu_err->msg);
    pthread_mutex_lock(&vm->lock);
    if (vm->state == MR_RUN_RUNNING) {
        vm->state = MR_RUN_INTERNAL_ERROR;
        emit(vm, "STOP");
    }
    pthread_mutex_unlock(&vm->lock);
}

int vm_init(struct vm *vm, const struct vm_config *cfg, struct mr_error *err)
{
    int rc;

    memset(vm, 0, sizeof(*vm));
    vm->cfg = cfg;
    vm->state = MR_RUN_PRELAUNCH;
    pthread_mutex_init(&vm->lock, NULL);
    rc = machine_init(&vm->machine, cfg, err);
    if (rc < 0)
        return rc;
    vm->machine.on_vcpu_fatal = vcpu_fatal;
    vm->machine.fatal_opaque = vm;
    rc = create_vcpu(vm, err);
    if (rc < 0)
        machine_destroy(&vm->machine);
    return rc;
}

int vm_power_on(struct vm *vm, struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&vm->lock);
    vm->autostart = !vm->cfg->start_paused;
    if (vm->cfg->incoming)
        vm->state = MR_RUN_INMIGRATE;
    else if (vm->autostart)
        rc = start_locked(vm, err);
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

void vm_destroy(struct vm *vm)
{
    if (vm->cpu)
        vm->cpu_ops->destroy(vm->cpu);
    vm->cpu = NULL;
    machine_destroy(&vm->machine);
    pthread_mutex_destroy(&vm->lock);
}

int vm_qmp_stop(struct vm *vm, struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&vm->lock);
    /* QEMU's qmp_stop: in inmigrate only remember it for the load; a VM
     * that is not running keeps its state (prelaunch stays prelaunch). */
    if (vm->state == MR_RUN_INMIGRATE)
        vm->autostart = false;
    else if (vm->state == MR_RUN_RUNNING)
        rc = stop_locked(vm, MR_RUN_PAUSED, err);
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

int vm_qmp_cont(struct vm *vm, struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&vm->lock);
    switch (vm->state) {
    case MR_RUN_INMIGRATE:
        vm->autostart = true;
        break;
    case MR_RUN_FINISH_MIGRATE:
        rc = mr_error_set(err, -EBUSY, "Migration is not finalized yet");
        break;
    case MR_RUN_INTERNAL_ERROR:
    case MR_RUN_SHUTDOWN:
        rc = mr_error_set(err, -EINVAL, "Resetting the Virtual Machine is "
                          "required");
        break;
    case MR_RUN_SUSPENDED:
        break;
    default:
        rc = start_locked(vm, err);
        if (rc < 0)
            vm->state = MR_RUN_INTERNAL_ERROR;
        break;
    }
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

bool vm_autostart(struct vm *vm)
{
    bool autostart;

    pthread_mutex_lock(&vm->lock);
    autostart = vm->autostart;
    pthread_mutex_unlock(&vm->lock);
    return autostart;
}
