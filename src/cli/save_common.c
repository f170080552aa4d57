/*
 * Shared management plumbing for save and restore (see save_common.h).
 * The monitor is the only channel to the VM: QEMU 10 and mapram-vm answer
 * the same commands, so nothing here knows which one it talks to.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "save_common.h"

volatile sig_atomic_t mgmt_signal;

static void on_signal(int signo)
{
    mgmt_signal = signo;
}

void mgmt_signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a blocked wait should return and look at the flag */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

double mgmt_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum progress_mode mgmt_progress_mode(bool json)
{
    if (json)
        return PROGRESS_JSON;
    return isatty(STDERR_FILENO) ? PROGRESS_TTY : PROGRESS_PLAIN;
}

/* The hint for a monitor that accepted us but never greeted. */
static int busy_monitor(const char *socket_path, int timeout_ms,
                        struct mr_error *err)
{
    mr_error_clear(err);
    return mr_error_set(err, -ETIMEDOUT,
                        "no QMP greeting from '%s' within %g s: another "
                        "client (libvirt?) may hold this monitor (QEMU serves "
                        "one client per -qmp socket); add a second -qmp "
                        "socket for mapram", socket_path,
                        timeout_ms / 1000.0);
}

int mgmt_connect(const char *socket_path, int timeout_ms,
                 struct mr_qmp_client **out, struct mr_error *err)
{
    struct stat st;

    /* The client waits for a socket that is not there yet (a VM still
     * starting); an operator naming a wrong path should hear it at once. */
    if (stat(socket_path, &st) < 0)
        return mr_error_set(err, -errno,
                            "cannot connect to the VM monitor at '%s': %s",
                            socket_path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return mr_error_set(err, -ENOTSOCK,
                            "cannot connect to the VM monitor at '%s': not a socket",
                            socket_path);
    *out = mr_qmp_client_connect(socket_path, timeout_ms, err);
    if (*out)
        return 0;
    if (err->code == -ETIMEDOUT && strstr(err->msg, "greeting"))
        return busy_monitor(socket_path, timeout_ms, err);
    return mr_error_prefix(err, "cannot connect to the VM monitor at '%s': ",
                           socket_path);
}

/* --timeout SECONDS: how long to wait for the monitor's greeting. */
int mgmt_parse_timeout(const char *cmd, const char *text, int *timeout_ms)
{
    char *end;
    double s;

    errno = 0;
    s = strtod(text, &end);
    if (errno || end == text || *end || !(s > 0) || s > 3600) {
        fprintf(stderr, "mapram %s: --timeout expects seconds, more than 0 "
                "and at most 3600, not '%s'\n", cmd, text);
        return -1;
    }
    *timeout_ms = (int)(s * 1000 + 0.5);
    if (*timeout_ms < 1)
        *timeout_ms = 1;
    return 0;
}

int mgmt_exec(struct mr_qmp_client *c, const char *command, json_t *args,
              struct mr_error *err)
{
    json_t *ret = mr_qmp_client_execute(c, command, args, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, err);

    if (!ret)
        return mr_error_set(err, -EIO, "%s failed", command);
    json_decref(ret);
    return 0;
}

int mgmt_query_status(struct mr_qmp_client *c, struct mgmt_vm_status *st,
                      struct mr_error *err)
{
    json_t *ret = mr_qmp_client_execute(c, "query-status", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, err);
    const char *status;

    if (!ret)
        return mr_error_set(err, -EIO, "query-status failed");
    status = json_string_value(json_object_get(ret, "status"));
    snprintf(st->status, sizeof(st->status), "%s", status ? status : "");
    st->running = json_is_true(json_object_get(ret, "running"));
    json_decref(ret);
    if (!status)
        return mr_error_set(err, -EPROTO,
                            "query-status: reply has no 'status'");
    return 0;
}

int mgmt_check_incoming(struct mr_qmp_client *c, struct mr_error *err)
{
    struct mgmt_vm_status st;

    if (mgmt_query_status(c, &st, err) < 0)
        return err->code;
    if (strcmp(st.status, "inmigrate"))
        return mr_error_set(err, -EINVAL, "'-incoming' was not specified on "
                            "the command line");
    return 0;
}

int mgmt_query_ram_size(struct mr_qmp_client *c, uint64_t *ram_bytes,
                        struct mr_error *err)
{
    json_t *ret = mr_qmp_client_execute(c, "query-memory-size-summary",
                                        NULL, NULL, 0, MGMT_QMP_TIMEOUT_MS,
                                        err);
    json_t *base;

    if (!ret)
        return mr_error_prefix(err, "cannot read the VM's RAM size: ");
    base = json_object_get(ret, "base-memory");
    if (!json_is_integer(base) || json_integer_value(base) <= 0) {
        json_decref(ret);
        return mr_error_set(err, -EPROTO,
                            "query-memory-size-summary: no 'base-memory' in the reply");
    }
    *ram_bytes = (uint64_t)json_integer_value(base);
    json_decref(ret);
    return 0;
}

int mgmt_query_migrate_status(struct mr_qmp_client *c, char *status,
                              size_t status_bytes, struct mr_error *err)
{
    json_t *ret = mr_qmp_client_execute(c, "query-migrate", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, err);
    const char *s;

    if (!ret)
        return mr_error_set(err, -EIO, "query-migrate failed");
    s = json_string_value(json_object_get(ret, "status"));
    snprintf(status, status_bytes, "%s", s ? s : "none");
    json_decref(ret);
    return 0;
}

bool mgmt_migration_is_running(const char *status)
{
    static const char *const idle[] = { "none", "completed", "failed",
                                        "cancelled", NULL };

    for (const char *const *s = idle; *s; s++)
        if (!strcmp(status, *s))
            return false;
    return true;
}

void mgmt_query_version(struct mr_qmp_client *c, char *buf, size_t buf_bytes)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *ret = mr_qmp_client_execute(c, "query-version", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, &err);
    json_t *q = json_object_get(ret, "qemu");
    const char *pkg = json_string_value(json_object_get(ret, "package"));

    buf[0] = '\0';
    if (q)
        snprintf(buf, buf_bytes, "%s %" JSON_INTEGER_FORMAT ".%"
                 JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT,
                 pkg && !strncmp(pkg, "mapram-vm", 9) ? "mapram-vm" : "QEMU",
                 json_integer_value(json_object_get(q, "major")),
                 json_integer_value(json_object_get(q, "minor")),
                 json_integer_value(json_object_get(q, "micro")));
    json_decref(ret);
}

void mgmt_query_name(struct mr_qmp_client *c, char *buf, size_t buf_bytes)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *ret = mr_qmp_client_execute(c, "query-name", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, &err);
    const char *name = json_string_value(json_object_get(ret, "name"));

    snprintf(buf, buf_bytes, "%s", name ? name : "");
    json_decref(ret);
}

int mgmt_configure_migration(struct mr_qmp_client *c, unsigned channels,
                             bool direct_io, const char *io_engine,
                             json_t **meta, struct mr_error *err)
{
    json_t *caps = json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b}]",
                             "capability", "events", "state", 1,
                             "capability", "multifd", "state", 1,
                             "capability", "mapped-ram", "state", 1);
    json_t *params = json_pack("{s:i,s:b,s:I}", "multifd-channels",
                               (int)channels, "direct-io", direct_io,
                               "max-bandwidth", (json_int_t)0);

    if (params && io_engine &&
        json_object_set_new(params, "x-io-engine", json_string(io_engine)))
        json_decref(params), params = NULL;
    if (!caps || !params) {
        json_decref(caps);
        json_decref(params);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    if (meta)
        *meta = json_pack("{s:{s:b,s:b,s:b},s:O}", "capabilities",
                          "events", 1, "multifd", 1, "mapped-ram", 1,
                          "parameters", params);
    if (mgmt_exec(c, "migrate-set-capabilities",
                  json_pack("{s:o}", "capabilities", caps), err) < 0) {
        json_decref(params);
        return err->code;
    }
    if (mgmt_exec(c, "migrate-set-parameters", params, err) < 0) {
        /* QEMU knows no x-io-engine: say which option asked for it. */
        if (io_engine && strstr(err->msg, "x-io-engine"))
            mr_error_prefix(err, "--io-engine needs a mapram-vm: ");
        return err->code;
    }
    return 0;
}

int mgmt_parse_io_engine(const char *cmd, const char *text, const char **out)
{
    static const char *const names[] = { "auto", "psync", "io_uring" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(text, names[i])) {
            *out = names[i];
            return 0;
        }
    }
    fprintf(stderr, "mapram %s: --io-engine expects auto, psync or io_uring, "
            "got '%s'\n", cmd, text);
    return -1;
}

int mgmt_add_fds(struct mr_qmp_client *c, const int *fds, size_t nfds,
                 int64_t *fdset_id, struct mr_error *err)
{
    for (size_t i = 0; i < nfds; i++) {
        json_t *args = *fdset_id < 0 ? NULL :
                       json_pack("{s:I}", "fdset-id", (json_int_t)*fdset_id);
        json_t *ret = mr_qmp_client_execute(c, "add-fd", args, &fds[i], 1,
                                            MGMT_QMP_TIMEOUT_MS, err);
        json_t *id;

        if (!ret)
            return mr_error_prefix(err, "add-fd: ");
        id = json_object_get(ret, "fdset-id");
        if (!json_is_integer(id)) {
            json_decref(ret);
            return mr_error_set(err, -EPROTO, "add-fd: no 'fdset-id' in the reply");
        }
        *fdset_id = json_integer_value(id);
        json_decref(ret);
    }
    return 0;
}

/* Is fdset `id` still listed by query-fdsets?  (false on any error) */
static bool fdset_listed(struct mr_qmp_client *c, int64_t id)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *ret = mr_qmp_client_execute(c, "query-fdsets", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, &err);
    size_t i;
    json_t *set;
    bool found = false;

    json_array_foreach(ret, i, set) {
        if (json_integer_value(json_object_get(set, "fdset-id")) == id)
            found = true;
    }
    json_decref(ret);
    return found;
}

int mgmt_remove_fdset(struct mr_qmp_client *c, int64_t fdset_id,
                      struct mr_error *err)
{
    struct mr_error local = MR_ERROR_INIT;
    json_t *ret;

    if (fdset_id < 0)
        return 0;
    ret = mr_qmp_client_execute(c, "remove-fd",
                                json_pack("{s:I}", "fdset-id",
                                          (json_int_t)fdset_id),
                                NULL, 0, MGMT_QMP_TIMEOUT_MS, &local);
    if (!ret) {
        mr_error_propagate(err, &local);
        return mr_error_prefix(err, "remove-fd: ");
    }
    json_decref(ret);
    /* The VM closes its duplicates in its own cleanup, just after the
     * migration ended; give it a moment so the set is really gone. */
    for (int i = 0; i < 50 && fdset_listed(c, fdset_id); i++)
        usleep(20000);
    return 0;
}

static uint64_t member_u64(json_t *obj, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(obj, key));

    return v > 0 ? (uint64_t)v : 0;
}

static void fill_sample(struct progress_sample *s, json_t *info)
{
    json_t *ram = json_object_get(info, "ram");

    s->total_bytes = member_u64(ram, "total");
    s->remaining_bytes = member_u64(ram, "remaining");
    s->written_bytes = member_u64(ram, "transferred");
}

/* One poll: 1 when the migration ended (0 in err for completed). */
static int poll_once(struct mr_qmp_client *c, struct progress_sample *s,
                     char *status, size_t status_bytes, struct mr_error *err)
{
    json_t *info = mr_qmp_client_execute(c, "query-migrate", NULL, NULL, 0,
                                         MGMT_QMP_TIMEOUT_MS, err);
    const char *st, *desc;

    if (!info)
        return mr_error_prefix(err, "lost the VM while migrating: ");
    st = json_string_value(json_object_get(info, "status"));
    snprintf(status, status_bytes, "%s", st ? st : "none");
    if (json_object_get(info, "ram"))
        fill_sample(s, info);
    if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
        desc = json_string_value(json_object_get(info, "error-desc"));
        mr_error_set(err, -EIO, "migration %s%s%s", status,
                     desc ? ": " : "", desc ? desc : "");
        json_decref(info);
        return 1;
    }
    json_decref(info);
    return !strcmp(status, "completed");
}

int mgmt_follow_migration(struct mr_qmp_client *c, struct progress *p,
                          const char *op, bool cancel_on_signal,
                          struct mr_error *err)
{
    struct progress_sample s = { .op = op };
    char status[32] = "setup";
    struct mr_error dummy = MR_ERROR_INIT;
    double start = mgmt_now_s();
    int interrupted = 0;
    int rc;
    json_t *ev;

    s.status = status;
    for (;;) {
        if (mgmt_signal && !interrupted) {
            interrupted = mgmt_signal;
            if (!cancel_on_signal)
                break;
            json_decref(mr_qmp_client_execute(c, "migrate_cancel", NULL,
                                              NULL, 0, MGMT_QMP_TIMEOUT_MS,
                                              &dummy));
        }
        rc = poll_once(c, &s, status, sizeof(status), err);
        s.elapsed_s = mgmt_now_s() - start;
        if (rc < 0 && err->code == -EINTR && mgmt_signal) {
            mr_error_clear(err); /* the signal cut a wait short: go on */
            continue;
        }
        if (rc < 0)
            break;
        progress_report(p, &s, rc == 1);
        if (rc == 1)
            break;
        /* Sleep until the next event or 200 ms, whichever comes first. */
        ev = mr_qmp_client_wait_event(c, "MIGRATION", 200, &dummy);
        json_decref(ev);
        mr_error_clear(&dummy);
    }
    progress_end(p);
    if (interrupted) {
        mr_error_clear(err);
        return mr_error_set(err, -EINTR, "interrupted by %s",
                            interrupted == SIGINT ? "SIGINT" : "SIGTERM");
    }
    return mr_error_is_set(err) ? err->code : 0;
}

static void *aligned_block(size_t bytes)
{
    void *buf = NULL;

    if (posix_memalign(&buf, bytes, bytes))
        return NULL;
    memset(buf, 0, bytes);
    return buf;
}

bool mgmt_probe_direct_write(int fd, uint64_t offset)
{
    const size_t bytes = 1 << 20; /* docs/test-guest.md, "O_DIRECT probe": 1 MiB at 1 MiB */
    void *buf = aligned_block(bytes);
    ssize_t n;

    if (!buf)
        return false;
    n = pwrite(fd, buf, bytes, (off_t)offset);
    free(buf);
    return n == (ssize_t)bytes;
}

bool mgmt_probe_direct_read(int fd)
{
    const size_t bytes = 4096;
    void *buf = aligned_block(bytes);
    ssize_t n;

    if (!buf)
        return false;
    n = pread(fd, buf, bytes, 0);
    free(buf);
    return n >= 0;
}

int mgmt_parse_channels(const char *cmd, const char *text, unsigned *out)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (*end || end == text || v < 1 || v > 255) {
        fprintf(stderr, "mapram %s: --channels expects 1 to 255, got '%s'\n",
                cmd, text);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}
