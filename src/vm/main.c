/*
 * mapram-vm: a KVM micro-VM host (or host-thread fallback) that runs the
 * migration test guest and serves a QMP monitor.  main() parses the
 * command line, builds the VM, optionally daemonizes, and waits for
 * SIGTERM/SIGINT/SIGHUP or `quit`, then tears down in order; it alone exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapram/migration.h"
#include "mapram/qmp.h"
#include "monitor.h"
#include "options.h"
#include "vmhost.h"

/* Signals main waits for; blocked in every thread (set before any
 * thread starts, so all inherit the mask). */
static void quit_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, MONITOR_QUIT_SIGNAL);
}

/* Fork; the parent waits for the child to report readiness (one byte on
 * a pipe) and exits with 0 or 1.  Returns the write end in the child. */
static int daemonize(struct mr_error *err)
{
    int fds[2];
    pid_t pid;
    char byte;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return mr_error_set(err, -errno, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
        return mr_error_set(err, -errno, "fork: %s", strerror(errno));
    if (pid > 0) {
        close(fds[1]);
        _exit(read(fds[0], &byte, 1) == 1 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    return fds[1];
}

static void detach_stdio(int ready_fd)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        close(null);
    }
    if (write(ready_fd, "", 1) < 0)
        perror("mapram-vm: notifying the parent");
    close(ready_fd);
}

static int write_pidfile(const char *path, struct mr_error *err)
{
    char buf[32];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

    if (fd < 0)
        return mr_error_set(err, -errno, "cannot create PID file: %s",
                            strerror(errno));
    if (write(fd, buf, (size_t)len) != len) {
        close(fd);
        return mr_error_set(err, -EIO, "cannot write PID file");
    }
    close(fd);
    return 0;
}

/* A failed incoming load with exit-on-error (docs/qmp.md, "migrate-incoming"): keep the
 * error and wake main(), which prints it and exits 1.  Runs on the load
 * thread. */
static void load_failed(void *opaque, bool exit_on_error,
                        const struct mr_error *e)
{
    if (!exit_on_error)
        return;
    mr_error_propagate(opaque, e);
    kill(getpid(), MONITOR_QUIT_SIGNAL);
}

static bool load_autostart(void *vm)
{
    return vm_autostart(vm);
}

/* The engine's events go to the monitor's clients (data is borrowed). */
static void forward_event(void *opaque, const char *name, json_t *data)
{
    mr_qmp_server_emit_event(opaque, name, json_incref(data));
}

/* The migration engine: commands and events on the monitor. */
static struct mr_migration *migration_setup(struct vm *vm, struct monitor *mon,
                                            struct mr_error *load_error,
                                            struct mr_error *err)
{
    struct mr_migration *mig = mr_migration_new(&vm_mr_ops, vm,
                                                vm->machine.blocks,
                                                MACHINE_NR_BLOCKS,
                                                monitor_fdsets(mon), err);

    if (mig && mr_migration_register_commands(mig, monitor_server(mon), err)) {
        mr_migration_free(mig);
        return NULL;
    }
    if (mig) {
        mr_migration_on_event(mig, forward_event, monitor_server(mon));
        mr_migration_on_load_failed(mig, load_failed, load_error);
        mr_migration_autostart_from(mig, load_autostart, vm);
    }
    return mig;
}

static const char *shutdown_reason(int sig)
{
    return sig == MONITOR_QUIT_SIGNAL ? "host-qmp-quit" : "host-signal";
}

/* Users before what they use: no monitor handler may run once the
 * migration is freed, and no save or load thread once the monitor (its
 * event sink) and the VM are. */
static void teardown(struct vm *vm, struct monitor *mon,
                     struct mr_migration *mig, const char *reason)
{
    monitor_shutdown(mon, reason);
    mr_migration_free(mig);
    monitor_free(mon);
    vm_destroy(vm);
}

static int run(const struct vm_config *cfg, struct mr_error *err)
{
    struct monitor *mon = NULL;
    struct mr_migration *mig = NULL;
    struct mr_error load_error = MR_ERROR_INIT;
    int ready_fd = -1, rc, sig = 0;
    struct vm vm;
    sigset_t set;

    quit_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (cfg->daemonize) {
        ready_fd = daemonize(err);
        if (ready_fd < 0)
            return ready_fd;
    }
    rc = vm_init(&vm, cfg, err);
    if (rc < 0)
        return rc;
    mon = monitor_new(&vm, err);
    rc = mon ? 0 : (err ? err->code : -ENOMEM);
    if (rc == 0) {
        mig = migration_setup(&vm, mon, &load_error, err);
        rc = mig ? 0 : (err ? err->code : -ENOMEM);
    }
    /* Power on (with -incoming: enter inmigrate) before the monitor
     * accepts, so no client can see the VM before its run state is set. */
    if (rc == 0)
        rc = vm_power_on(&vm, err);
    if (rc == 0)
        rc = monitor_start(mon, err);
    if (rc == 0 && cfg->incoming)
        rc = mr_migration_incoming(mig, cfg->incoming, err);
    if (rc == 0 && cfg->pidfile)
        rc = write_pidfile(cfg->pidfile, err);
    if (rc == 0) {
        if (ready_fd >= 0)
            detach_stdio(ready_fd);
        do {
            sig = sigwaitinfo(&set, NULL);
        } while (sig < 0 && errno == EINTR);
    }
    teardown(&vm, mon, mig, rc == 0 ? shutdown_reason(sig) : NULL);
    if (rc == 0 && mr_error_is_set(&load_error))
        rc = mr_error_propagate(err, &load_error);
    if (rc == 0 && cfg->pidfile)
        unlink(cfg->pidfile);
    return rc;
}

static const char usage_text[] =
    "usage: mapram-vm [options]\n"
    "  -m SIZE                      pc.ram size (64M ... 64G; default unit MiB)\n"
    "  -object memory-backend-ram|memfd|file,id=ID,size=SIZE[,mem-path=PATH]\n"
    "          [,share=on|off][,hugetlb=on]\n"
    "  -machine memory-backend=ID   take pc.ram from that backend\n"
    "  -qmp unix:PATH,server=on,wait=off   a QMP monitor socket (repeatable)\n"
    "  -serial file:PATH            the guest's serial output\n"
    "  -S                           start paused\n"
    "  -incoming defer|URI          wait for an incoming migration\n"
    "  -accel kvm|thread            vCPU accelerator (default kvm, thread fallback)\n"
    "  -name NAME                   the VM's name\n"
    "  -test-range START,END        the guest program's range (default 1M,end)\n"
    "  -daemonize, -pidfile PATH\n"
    "See docs/vm.md.\n";

int main(int argc, char **argv)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_config cfg;
    int rc;

    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
                      !strcmp(argv[1], "-help"))) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc == 2 && (!strcmp(argv[1], "--version") ||
                      !strcmp(argv[1], "-version"))) {
        printf("mapram-vm %s\n", MAPRAM_VERSION);
        return 0;
    }
    rc = vm_options_parse(argc, argv, &cfg, &err);
    if (rc == 0)
        rc = run(&cfg, &err);
    if (rc < 0)
        fprintf(stderr, "mapram-vm: %s\n", err.msg);
    vm_config_free(&cfg);
    return rc < 0 ? 1 : 0;
}
