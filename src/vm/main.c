/*
 * mapram-vm: a KVM micro-VM host (or host-thread fallback) that runs the
 * migration test guest and serves a QMP monitor.  main() parses the
 * command line, builds the VM, optionally daemonizes, and waits for
 * SIGTERM/SIGINT or the monitor's `quit`; it is the only place that exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int run(const struct vm_config *cfg, struct mr_error *err)
{
    struct monitor *mon = NULL;
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
    /* The migration engine plugs in here (branch `mig`), before the
     * monitor starts:
     *   mig = mr_migration_new(&vm_mr_ops, &vm, vm.machine.blocks,
     *                          MACHINE_NR_BLOCKS, monitor_fdsets(mon),
     *                          monitor_server(mon), err);
     *   mr_migration_register_commands(mig, monitor_server(mon), err);
     *   mr_migration_autostart_from(mig, <adapter calling vm_autostart>,
     *                               &vm);
     * and after vm_power_on(), for -incoming URI (cfg->incoming):
     *   mr_migration_incoming(mig, cfg->incoming, err).
     * A load that fails with exit-on-error should print its message and
     * make run() return 1; free mig before monitor_free(). */
    if (rc == 0)
        rc = monitor_start(mon, err);
    if (rc == 0)
        rc = vm_power_on(&vm, err);
    if (rc == 0 && cfg->pidfile)
        rc = write_pidfile(cfg->pidfile, err);
    if (rc == 0) {
        if (ready_fd >= 0)
            detach_stdio(ready_fd);
        do {
            sig = sigwaitinfo(&set, NULL);
        } while (sig < 0 && errno == EINTR);
        monitor_emit_shutdown(mon, sig == MONITOR_QUIT_SIGNAL
                                       ? "host-qmp-quit" : "host-signal");
    }
    monitor_free(mon);
    vm_destroy(&vm);
    if (rc == 0 && cfg->pidfile)
        unlink(cfg->pidfile);
    return rc;
}

int main(int argc, char **argv)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_config cfg;
    int rc;

    rc = vm_options_parse(argc, argv, &cfg, &err);
    if (rc == 0)
        rc = run(&cfg, &err);
    if (rc < 0)
        fprintf(stderr, "mapram-vm: %s\n", err.msg);
    vm_config_free(&cfg);
    return rc < 0 ? 1 : 0;
}
