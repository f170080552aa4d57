/*
 * Fault loops over the save and the load (DESIGN "fault-injection seam"):
 * for N = 1, 2, ... the Nth operation of one kind fails, until the fault
 * no longer fires.  Every run must end cleanly: an error recorded (or, for
 * faults the engines resume, a completed save), the source VM running
 * again, a destination that never started, and no descriptor leaked.
 * Needs a build with -Dfault_injection=true; skipped (77) otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_vm.h"
#include "scratch.h"
#include "io/fault.h"
#include "mapram/migration.h"

#define PAGES0 512
#define PAGES1 16
#define MAX_N 400

static char dir[256];

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    while ((e = readdir(d)))
        n++;
    closedir(d);
    return n;
}

#define CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, __VA_ARGS__); \
            fprintf(stderr, "\n"); \
            exit(1); \
        } \
    } while (0)

static struct mr_migration *new_mig(struct fake_vm *vm)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m = mr_migration_new(&fake_vm_ops, vm, vm->blocks,
                                              FAKE_NBLOCKS, NULL, &err);
    json_t *p = json_pack("{s:i,s:i}", "multifd-channels", 2,
                          "max-bandwidth", 0);

    CHECK(m, "new: %s", err.msg);
    mr_migration_set_capability(m, "mapped-ram", true, &err);
    mr_migration_set_capability(m, "multifd", true, &err);
    mr_migration_set_parameters(m, p, &err);
    json_decref(p);
    CHECK(!err.code, "configure: %s", err.msg);
    return m;
}

/* One save with the plan installed; returns whether the fault fired. */
static bool save_once(const struct mr_fault_plan *plan, bool resumable)
{
    struct fake_vm vm;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;
    char uri[300];
    int fds = count_fds();
    bool fired;

    fake_vm_init(&vm, PAGES0, PAGES1, true, MR_RUN_RUNNING);
    fake_vm_start_dirtier(&vm);
    m = new_mig(&vm);
    snprintf(uri, sizeof(uri), "file:%s/save", dir);
    mr_fault_set(plan);
    if (mr_migration_start(m, uri, &err) == 0)
        mr_migration_join(m, true);
    fired = mr_fault_fired() > 0;
    mr_fault_set(NULL);
    mr_migration_last_error(m, &err);
    if (!fired || resumable) {
        CHECK(mr_migration_state(m) == MR_MIG_COMPLETED,
              "op %d N=%llu: expected completed, got %s (%s)", plan->op,
              (unsigned long long)plan->nth,
              mr_mig_status_name(mr_migration_state(m)), err.msg);
    } else {
        CHECK(mr_migration_state(m) == MR_MIG_FAILED && err.msg[0],
              "op %d N=%llu: expected failed with a message, got %s", plan->op,
              (unsigned long long)plan->nth,
              mr_mig_status_name(mr_migration_state(m)));
        CHECK(vm.run == MR_RUN_RUNNING, "source VM left in state %d", vm.run);
    }
    mr_migration_free(m);
    fake_vm_destroy(&vm);
    CHECK(count_fds() == fds, "descriptor leak after op %d N=%llu", plan->op,
          (unsigned long long)plan->nth);
    return fired;
}

static bool load_once(const struct mr_fault_plan *plan)
{
    struct fake_vm vm;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;
    char uri[300];
    int fds = count_fds();
    bool fired;

    fake_vm_init(&vm, PAGES0, PAGES1, false, MR_RUN_INMIGRATE);
    m = new_mig(&vm);
    snprintf(uri, sizeof(uri), "file:%s/save", dir);
    mr_fault_set(plan);
    if (mr_migration_start_incoming(m, uri, false, &err) == 0)
        mr_migration_join(m, false);
    fired = mr_fault_fired() > 0;
    mr_fault_set(NULL);
    if (fired && plan->kind == MR_FAULT_EIO) {
        mr_migration_last_error(m, &err);
        CHECK(err.msg[0], "load read N=%llu: no error recorded",
              (unsigned long long)plan->nth);
        CHECK(vm.starts == 0 && vm.run == MR_RUN_INMIGRATE,
              "destination ran after a failed load");
    } else {
        CHECK(mr_migration_incoming_state(m) == MR_MIG_COMPLETED,
              "load N=%llu: %s", (unsigned long long)plan->nth,
              mr_mig_status_name(mr_migration_incoming_state(m)));
    }
    mr_migration_free(m);
    fake_vm_destroy(&vm);
    CHECK(count_fds() == fds, "descriptor leak after load N=%llu",
          (unsigned long long)plan->nth);
    return fired;
}

static void loop_save(enum mr_fault_op op, enum mr_fault_kind kind,
                      bool resumable)
{
    uint64_t n;

    for (n = 1; n <= MAX_N; n++) {
        struct mr_fault_plan plan = { op, n, kind };
        if (!save_once(&plan, resumable))
            break;
    }
    printf("save op %d kind %d: %llu runs\n", op, kind,
           (unsigned long long)n);
}

int main(void)
{
    struct mr_fault_plan none = { MR_FAULT_OP_WRITE, 1000000, MR_FAULT_EIO };
    uint64_t n;

    if (scratch_dir_make(dir, sizeof(dir), "mr-fault-"))
        return 1;
    loop_save(MR_FAULT_OP_OPEN, MR_FAULT_EIO, false);
    loop_save(MR_FAULT_OP_FTRUNCATE, MR_FAULT_EIO, false);
    loop_save(MR_FAULT_OP_PWRITE, MR_FAULT_ENOSPC, false);
    loop_save(MR_FAULT_OP_WRITE, MR_FAULT_EIO, false);
    loop_save(MR_FAULT_OP_WRITE, MR_FAULT_SHORT, true);
    save_once(&none, false); /* a good file for the load loop */
    for (n = 1; n <= MAX_N; n++) {
        struct mr_fault_plan plan = { MR_FAULT_OP_READ, n, MR_FAULT_EIO };
        if (!load_once(&plan))
            break;
    }
    printf("load read eio: %llu runs\n", (unsigned long long)n);
    return scratch_dir_remove(dir) == 0 ? 0 : 1;
}
