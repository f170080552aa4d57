/*
 * A toy VMM embedding libmapram through its public headers only: one RAM
 * block, saved to a mapped-ram file with two multifd channels, loaded
 * into a second, empty VM, and compared byte for byte.
 * Usage: toy_vmm [FILE]  (default: toy_vmm.sav in the current directory)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mapram/migration.h>

#define PAGE 4096
#define RAM_BYTES (16u << 20)

struct toy_vm {
    enum mr_runstate run;
    struct mr_ram_block ram;
};

static int toy_stop(void *opaque, enum mr_runstate state, struct mr_error *err)
{
    (void)err;
    ((struct toy_vm *)opaque)->run = state;
    return 0;
}

static int toy_start(void *opaque, struct mr_error *err)
{
    (void)err;
    ((struct toy_vm *)opaque)->run = MR_RUN_RUNNING;
    return 0;
}

static enum mr_runstate toy_runstate(void *opaque)
{
    return ((struct toy_vm *)opaque)->run;
}

static void toy_set_runstate(void *opaque, enum mr_runstate state)
{
    ((struct toy_vm *)opaque)->run = state;
}

/* The toy guest never runs, so no page is ever dirtied: a stopped save. */
static int toy_log_start(void *opaque, struct mr_error *err)
{
    (void)opaque, (void)err;
    return 0;
}

static int toy_log_sync(void *opaque, unsigned long *const *bitmaps,
                        struct mr_error *err)
{
    (void)opaque, (void)bitmaps, (void)err;
    return 0;
}

static void toy_log_stop(void *opaque)
{
    (void)opaque;
}

static const struct mr_vm_ops toy_ops = {
    .machine_type = "toy-vmm-1.0",
    .stop = toy_stop, .start = toy_start,
    .runstate = toy_runstate, .set_runstate = toy_set_runstate,
    .dirty_log_start = toy_log_start, .dirty_log_sync = toy_log_sync,
    .dirty_log_stop = toy_log_stop,
    /* no device state: save_devices and load_devices are optional */
};

static void toy_init(struct toy_vm *vm, enum mr_runstate run)
{
    vm->run = run;
    vm->ram = (struct mr_ram_block){ "pc.ram", aligned_alloc(PAGE, RAM_BYTES),
                                     RAM_BYTES, PAGE };
    memset(vm->ram.host, 0, RAM_BYTES);
}

/* Capabilities and parameters are QMP's, so both sides set the same. */
static struct mr_migration *engine(struct toy_vm *vm, struct mr_error *err)
{
    struct mr_migration *m = mr_migration_new(&toy_ops, vm, &vm->ram, 1,
                                              NULL, err);
    json_t *params = json_pack("{s:i}", "multifd-channels", 2);

    if (m && (mr_migration_set_capability(m, "mapped-ram", true, err) ||
              mr_migration_set_capability(m, "multifd", true, err) ||
              mr_migration_set_parameters(m, params, err))) {
        mr_migration_free(m);
        m = NULL;
    }
    json_decref(params);
    return m;
}

/* Run one save (outgoing) or load and report how it ended. */
static int migrate(struct toy_vm *vm, const char *uri, bool outgoing)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m = engine(vm, &err);
    int rc = m ? 0 : -1;

    if (m) {
        rc = outgoing ? mr_migration_start(m, uri, &err)
                      : mr_migration_start_incoming(m, uri, false, &err);
        if (!rc)
            mr_migration_join(m, outgoing);
        mr_migration_last_error(m, &err);
        enum mr_mig_status st = outgoing ? mr_migration_state(m)
                                         : mr_migration_incoming_state(m);
        rc = st == MR_MIG_COMPLETED ? 0 : -1;
        printf("%s %s: %s\n", outgoing ? "save" : "load", uri,
               mr_mig_status_name(st));
        mr_migration_free(m);
    }
    if (rc)
        fprintf(stderr, "toy_vmm: %s\n", err.msg[0] ? err.msg : "failed");
    return rc;
}

int main(int argc, char **argv)
{
    struct toy_vm src, dst;
    char uri[4200];

    snprintf(uri, sizeof(uri), "file:%s", argc > 1 ? argv[1] : "toy_vmm.sav");
    toy_init(&src, MR_RUN_PAUSED);
    toy_init(&dst, MR_RUN_INMIGRATE);
    for (uint32_t i = 0; i < RAM_BYTES / PAGE; i += 3)  /* 1 page in 3 */
        memset(src.ram.host + (size_t)i * PAGE, (int)(i % 251) + 1, PAGE);
    if (migrate(&src, uri, true) || migrate(&dst, uri, false))
        return 1;
    if (memcmp(src.ram.host, dst.ram.host, RAM_BYTES)) {
        fprintf(stderr, "toy_vmm: the loaded VM differs from the saved one\n");
        return 1;
    }
    printf("memory verified: %u bytes identical, VM %s\n", RAM_BYTES,
           mr_runstate_name(dst.run));
    free(src.ram.host);
    free(dst.ram.host);
    return 0;
}
