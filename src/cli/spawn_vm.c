/*
 * Starting a VM for `restore --spawn` (see spawn_vm.h): a mapram-vm here,
 * a QEMU from its recorded command line in launch_config.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn_vm.h"

void spawn_vm_init(struct spawned_vm *vm)
{
    memset(vm, 0, sizeof(*vm));
}

static bool is_executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

static bool search_path(char *buf, size_t buf_bytes)
{
    const char *path = getenv("PATH");
    const char *p = path;

    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);

        if (len && snprintf(buf, buf_bytes, "%.*s/mapram-vm", (int)len, p) <
                   (int)buf_bytes && is_executable(buf))
            return true;
        p = colon ? colon + 1 : NULL;
    }
    return false;
}

int spawn_vm_find_binary(char *buf, size_t buf_bytes, struct mr_error *err)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n > 0) {
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(buf, buf_bytes, "%s/../vm/mapram-vm", self) <
                (int)buf_bytes && is_executable(buf))
                return 0;
        }
    }
    if (search_path(buf, buf_bytes))
        return 0;
    return mr_error_set(err, -ENOENT,
                        "cannot find mapram-vm (looked next to mapram and in PATH)");
}

static void exec_vm(const char *bin, const struct spawned_vm *vm,
                    char *const argv[])
{
    int log = open(vm->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                   0600);

    setsid();
    if (log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
    }
    execvp(bin, argv);   /* a recorded argv[0] may be a bare name */
    _exit(127);
}

/* Wait up to 5 s for the monitor socket; fail early if the VM died. */
static int wait_socket(struct spawned_vm *vm, struct mr_error *err)
{
    struct stat st;
    int status;

    for (int i = 0; i < 250; i++) {
        if (stat(vm->socket_path, &st) == 0 && S_ISSOCK(st.st_mode))
            return 0;
        if (waitpid(vm->pid, &status, WNOHANG) == vm->pid) {
            vm->pid = 0;
            vm->keep_log = true; /* the message points there */
            return mr_error_set(err, -ECHILD,
                                "%s exited before its monitor came up (see %s)",
                                vm->name, vm->log_path);
        }
        usleep(20000);
    }
    return mr_error_set(err, -ETIMEDOUT,
                        "%s did not open %s within 5 s", vm->name,
                        vm->socket_path);
}

int spawn_vm_prepare(struct spawned_vm *vm, const char *name,
                     struct mr_error *err)
{
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->dir, sizeof(vm->dir), "/tmp/mapram-vm.XXXXXX");
    if (!mkdtemp(vm->dir)) {
        vm->dir[0] = '\0';
        return mr_error_set(err, -errno, "cannot create a temp dir: %s",
                            strerror(errno));
    }
    snprintf(vm->socket_path, sizeof(vm->socket_path), "%s/qmp.sock", vm->dir);
    snprintf(vm->log_path, sizeof(vm->log_path), "%s/vm.log", vm->dir);
    return 0;
}

int spawn_vm_run(struct spawned_vm *vm, const char *bin, char *const argv[],
                 struct mr_error *err)
{
    vm->pid = fork();
    if (vm->pid < 0) {
        vm->pid = 0;
        return mr_error_set(err, -errno, "fork: %s", strerror(errno));
    }
    if (vm->pid == 0)
        exec_vm(bin, vm, argv);
    return wait_socket(vm, err);
}

int spawn_vm_start(struct spawned_vm *vm, uint64_t ram_bytes,
                   struct mr_error *err)
{
    char bin[PATH_MAX], mem[32], qmp[160];
    char *argv[] = { bin, "-m", mem, "-qmp", qmp, "-incoming", "defer",
                     "-nographic", NULL };

    if (spawn_vm_find_binary(bin, sizeof(bin), err) < 0 ||
        spawn_vm_prepare(vm, "mapram-vm", err) < 0)
        return err->code;
    if (ram_bytes % (1 << 20) == 0)
        snprintf(mem, sizeof(mem), "%" PRIu64 "M", ram_bytes >> 20);
    else
        snprintf(mem, sizeof(mem), "%" PRIu64 "K", ram_bytes >> 10);
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", vm->socket_path);
    return spawn_vm_run(vm, bin, argv, err);
}

void spawn_vm_kill(struct spawned_vm *vm)
{
    if (vm->pid > 0) {
        kill(vm->pid, SIGTERM);
        waitpid(vm->pid, NULL, 0);
        vm->pid = 0;
    }
    if (vm->dir[0] && !vm->keep_log) {
        unlink(vm->socket_path);
        unlink(vm->log_path);
        rmdir(vm->dir);
    }
}
