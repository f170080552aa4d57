/* The fake VM of the engine tests (see fake_vm.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_vm.h"
#include "util/bitmap.h"

#define PS 4096

static uint64_t pages(const struct fake_vm *vm, int b)
{
    return vm->blocks[b].used_length / PS;
}

static void fill_page(uint8_t *p, uint64_t i, uint64_t seq)
{
    uint64_t head = i ^ 0x5a5a5a5a5a5a5a5aULL ^ seq;

    memcpy(p, &head, 8);
    memset(p + 8, (int)((i * 7 + seq) & 0xff), PS - 8);
}

void fake_vm_init(struct fake_vm *vm, uint64_t pages0, uint64_t pages1,
                  bool fill, enum mr_runstate run)
{
    static const char *const names[FAKE_NBLOCKS] = { "pc.ram", "pc.bios" };
    uint64_t n[FAKE_NBLOCKS] = { pages0, pages1 };

    memset(vm, 0, sizeof(*vm));
    pthread_mutex_init(&vm->lock, NULL);
    vm->run = run;
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        vm->blocks[b].name = names[b];
        vm->blocks[b].used_length = n[b] * PS;
        vm->blocks[b].page_size = PS;
        vm->blocks[b].host = aligned_alloc(PS, n[b] * PS);
        memset(vm->blocks[b].host, 0, n[b] * PS);
        vm->soft_dirty[b] = mr_bitmap_new(n[b]);
        for (uint64_t i = 0; fill && i < n[b]; i++)
            if (i % 5)
                fill_page(vm->blocks[b].host + i * PS, i + (uint64_t)b * 7, 0);
    }
}

static void snapshot(struct fake_vm *vm)
{
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        free(vm->snapshot[b]);
        vm->snapshot[b] = malloc(vm->blocks[b].used_length);
        memcpy(vm->snapshot[b], vm->blocks[b].host, vm->blocks[b].used_length);
    }
}

static void *dirtier(void *arg)
{
    struct fake_vm *vm = arg;
    uint64_t x = 88172645463325252ULL;

    while (!atomic_load(&vm->dirtier_stop)) {
        for (int k = 0; k < 64; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t i = x % pages(vm, 0);
            /* write first, then log: a sync in between sees it next time */
            fill_page(vm->blocks[0].host + i * PS, i, ++vm->seq);
            if (atomic_load(&vm->logging))
                mr_bitmap_set_atomic(vm->soft_dirty[0], i);
        }
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void fake_vm_start_dirtier(struct fake_vm *vm)
{
    atomic_store(&vm->dirtier_stop, false);
    vm->dirtier_live = true;
    vm->dirty_while_running = true;
    pthread_create(&vm->dirtier, NULL, dirtier, vm);
}

static void stop_dirtier(struct fake_vm *vm)
{
    if (!vm->dirtier_live)
        return;
    atomic_store(&vm->dirtier_stop, true);
    pthread_join(vm->dirtier, NULL);
    vm->dirtier_live = false;
}

void fake_vm_destroy(struct fake_vm *vm)
{
    stop_dirtier(vm);
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        free(vm->blocks[b].host);
        free(vm->soft_dirty[b]);
        free(vm->snapshot[b]);
    }
    pthread_mutex_destroy(&vm->lock);
}

static int fvm_stop(void *opaque, enum mr_runstate state, struct mr_error *err)
{
    struct fake_vm *vm = opaque;

    (void)err;
    stop_dirtier(vm);
    pthread_mutex_lock(&vm->lock);
    vm->run = state;
    vm->stops++;
    pthread_mutex_unlock(&vm->lock);
    snapshot(vm);
    return 0;
}

static int fvm_start(void *opaque, struct mr_error *err)
{
    struct fake_vm *vm = opaque;

    (void)err;
    pthread_mutex_lock(&vm->lock);
    vm->run = MR_RUN_RUNNING;
    vm->starts++;
    pthread_mutex_unlock(&vm->lock);
    if (vm->dirty_while_running)
        fake_vm_start_dirtier(vm);
    return 0;
}

static enum mr_runstate fvm_runstate(void *opaque)
{
    struct fake_vm *vm = opaque;
    enum mr_runstate r;

    pthread_mutex_lock(&vm->lock);
    r = vm->run;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

static void fvm_set_runstate(void *opaque, enum mr_runstate state)
{
    struct fake_vm *vm = opaque;

    pthread_mutex_lock(&vm->lock);
    vm->run = state;
    pthread_mutex_unlock(&vm->lock);
}

static int fvm_log_start(void *opaque, struct mr_error *err)
{
    struct fake_vm *vm = opaque;

    (void)err;
    atomic_store(&vm->logging, true);
    return 0;
}

static int fvm_log_sync(void *opaque, unsigned long *const *bitmaps,
                        struct mr_error *err)
{
    struct fake_vm *vm = opaque;

    (void)err;
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        size_t words = mr_bitmap_nr_longs(pages(vm, b));
        for (size_t w = 0; w < words; w++)
            bitmaps[b][w] |= __atomic_exchange_n(&vm->soft_dirty[b][w], 0UL,
                                                 __ATOMIC_ACQ_REL);
    }
    return 0;
}

static void fvm_log_stop(void *opaque)
{
    struct fake_vm *vm = opaque;

    atomic_store(&vm->logging, false);
}

static int fvm_save_devices(void *opaque, struct mr_device_state **out,
                            size_t *count, struct mr_error *err)
{
    struct fake_vm *vm = opaque;
    struct mr_device_state *d = calloc(1, sizeof(*d));

    (void)err;
    d->idstr = strdup("fake-dev");
    d->version_id = 1;
    d->size = sizeof(vm->dev_state);
    d->data = malloc(d->size);
    memcpy(d->data, vm->dev_state, d->size);
    *out = d;
    *count = 1;
    return 0;
}

static int fvm_load_devices(void *opaque, const struct mr_device_state *states,
                            size_t count, struct mr_error *err)
{
    struct fake_vm *vm = opaque;

    if (count != 1 || strcmp(states[0].idstr, "fake-dev") ||
        states[0].size != sizeof(vm->dev_state))
        return mr_error_set(err, -EINVAL, "fake-dev: unexpected device state");
    memcpy(vm->dev_state, states[0].data, sizeof(vm->dev_state));
    vm->dev_loaded = true;
    return 0;
}

static bool fvm_has_device(void *opaque, const char *idstr,
                           uint32_t instance_id)
{
    (void)opaque;
    return strcmp(idstr, "fake-dev") == 0 && instance_id == 0;
}

const struct mr_vm_ops fake_vm_ops = {
    .machine_type = "mapram-test-1.0",
    .stop = fvm_stop,
    .start = fvm_start,
    .runstate = fvm_runstate,
    .set_runstate = fvm_set_runstate,
    .dirty_log_start = fvm_log_start,
    .dirty_log_sync = fvm_log_sync,
    .dirty_log_stop = fvm_log_stop,
    .save_devices = fvm_save_devices,
    .load_devices = fvm_load_devices,
    .has_device = fvm_has_device,
};
