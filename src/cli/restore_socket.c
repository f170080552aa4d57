/*
 * `mapram restore` over multifd sockets (restore_socket.h): set the
 * destination's capabilities (multifd on, mapped-ram off, N channels, no
 * compression), have it listen on a UNIX socket in a private 0700
 * directory, let the peer layer connect N+1 sockets (each checked against
 * the monitor's peer pid) and send the verified file, then wait for the
 * destination to complete and start or keep the guest paused.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "restore_socket.h"
#include "save_common.h"

#define SOCK_NAME "mig.sock"

int restore_socket_prepare(struct restore_socket *s, const char *path,
                           int64_t offset, struct mr_error *err)
{
    struct mr_error ignore = MR_ERROR_INIT;

    s->fd = cli_open_regular(path, O_RDONLY, err);
    if (s->fd < 0)
        return mr_error_prefix(err, "Could not open '%s': ", path);
    /* O_DIRECT where the file system allows it; buffered otherwise */
    s->fd_direct = cli_reopen(s->fd, path, O_RDONLY | O_DIRECT, &ignore);
    if (mr_peer_restore_open(s->fd, s->fd_direct, offset, &s->peer, err) < 0)
        return mr_error_prefix(err, "%s: ", path);
    return 0;
}

bool restore_socket_is_qemu(struct mr_qmp_client *qmp)
{
    char v[64];

    mgmt_query_version(qmp, v, sizeof(v));
    return !strncmp(v, "QEMU ", 5);
}

void restore_socket_done(struct restore_socket *s)
{
    mr_peer_restore_free(s->peer);
    s->peer = NULL;
    if (s->fd_direct >= 0)
        close(s->fd_direct);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = s->fd_direct = -1;
}

static int parse_uuid(const char *text, uint8_t out[16], struct mr_error *err)
{
    unsigned n = 0;

    for (const char *p = text; p && *p && n < 32; p++) {
        unsigned v;

        if (*p == '-')
            continue;
        if (sscanf(p, "%1x", &v) != 1)
            break;
        out[n / 2] = (uint8_t)(n % 2 ? out[n / 2] | v : v << 4);
        n++;
    }
    if (n != 32)
        return mr_error_set(err, -EINVAL, "query-uuid: bad UUID '%s'",
                            text ? text : "");
    return 0;
}

static int query_uuid(struct mr_qmp_client *qmp, uint8_t out[16],
                      struct mr_error *err)
{
    json_t *ret = mr_qmp_client_execute(qmp, "query-uuid", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, err);
    int rc;

    if (!ret)
        return mr_error_prefix(err, "query-uuid: ");
    rc = parse_uuid(json_string_value(json_object_get(ret, "UUID")), out,
                    err);
    json_decref(ret);
    return rc;
}

static int configure(struct mr_qmp_client *qmp, unsigned channels,
                     struct mr_error *err)
{
    json_t *caps = json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b}]",
                             "capability", "events", "state", 1,
                             "capability", "mapped-ram", "state", 0,
                             "capability", "multifd", "state", 1);

    if (mgmt_exec(qmp, "migrate-set-capabilities",
                  json_pack("{s:o}", "capabilities", caps), err) < 0)
        return err->code;
    return mgmt_exec(qmp, "migrate-set-parameters",
                     json_pack("{s:i,s:s}", "multifd-channels", (int)channels,
                               "multifd-compression", "none"), err);
}

static int listen_incoming(struct mr_qmp_client *qmp, const char *dir,
                           struct mr_error *err)
{
    char uri[4200];

    snprintf(uri, sizeof(uri), "unix:%s/%s", dir, SOCK_NAME);
    return mgmt_exec(qmp, "migrate-incoming",
                     json_pack("{s:s,s:b}", "uri", uri, "exit-on-error", 0),
                     err);
}

struct send_progress {
    struct progress prog;
    double start;
};

static void on_progress(void *opaque, uint64_t done, uint64_t total,
                        uint64_t wire)
{
    struct send_progress *sp = opaque;
    struct progress_sample s = {
        .op = "restore", .status = "active", .total_bytes = total,
        .remaining_bytes = total > done ? total - done : 0,
        .written_bytes = wire, .elapsed_s = mgmt_now_s() - sp->start,
    };

    progress_report(&sp->prog, &s, false);
}

/* After a failed send the destination's load fails on the cut sockets:
 * wait briefly until it says so, so the VM is settled when we return. */
static void wait_failed(struct mr_qmp_client *qmp)
{
    struct mr_error ignore = MR_ERROR_INIT;
    char st[32];

    for (int i = 0; i < 100; i++) {
        if (mgmt_query_migrate_status(qmp, st, sizeof(st), &ignore) < 0 ||
            !mgmt_migration_is_running(st))
            return;
        usleep(50 * 1000);
    }
}

static int send_and_follow(struct restore_socket *s, struct mr_qmp_client *qmp,
                           const struct restore_socket_opts *o,
                           struct mr_peer_restore_link *l, const char *dir,
                           struct mr_error *err)
{
    struct send_progress sp = { .start = mgmt_now_s() };
    char path[4200];

    progress_init(&sp.prog, mgmt_progress_mode(o->json),
                  o->json ? stdout : stderr);
    snprintf(path, sizeof(path), "%s/%s", dir, SOCK_NAME);
    l->path = path;
    l->progress = on_progress;
    l->opaque = &sp;
    if (mr_peer_restore_send(s->peer, l, err) < 0) {
        progress_end(&sp.prog);
        wait_failed(qmp);
        return err->code;
    }
    return mgmt_follow_migration(qmp, &sp.prog, "restore", false, err);
}

static bool want_running(const struct restore_socket_opts *o,
                         const struct mr_peer_restore_info *in)
{
    if (o->running || o->paused)
        return o->running;
    if (in->was_running_known)
        return in->was_running;
    return true;
}

static void say_unverified(const struct restore_socket_opts *o,
                           const struct mr_peer_restore_info *in)
{
    if (!in->checksums)
        fprintf(stderr, "mapram restore: %s has no checksum trailer: its "
                "pages are sent as read, unverified ('mapram seal %s' adds "
                "one)\n", o->path, o->path);
}

int restore_socket_run(struct restore_socket *s, struct mr_qmp_client *qmp,
                       const struct restore_socket_opts *o, bool *running,
                       struct mr_error *err)
{
    const struct mr_peer_restore_info *in = mr_peer_restore_info(s->peer);
    struct mr_peer_restore_link l = { .cancel = &mgmt_signal };
    struct mgmt_vm_status st;
    char dir[4096] = "";
    int rc;

    *running = want_running(o, in);
    l.channels = o->channels ? o->channels : mgmt_default_channels();
    l.peer_pid = mr_qmp_client_peer_pid(qmp);
    say_unverified(o, in);
    if (l.peer_pid <= 0)
        return mr_error_set(err, -EPERM, "cannot tell the VM's pid from its "
                            "monitor socket: sockets need a local VM");
    if (mgmt_check_incoming(qmp, err) < 0 || configure(qmp, l.channels, err) < 0 ||
        query_uuid(qmp, l.uuid, err) < 0 ||
        (!*running && mgmt_exec(qmp, "stop", NULL, err) < 0) ||
        mr_peer_restore_dir(dir, sizeof(dir), err) < 0)
        return err->code;
    rc = listen_incoming(qmp, dir, err);
    if (rc == 0)
        rc = send_and_follow(s, qmp, o, &l, dir, err);
    mr_peer_restore_dir_remove(dir);
    if (rc == 0 && mgmt_query_status(qmp, &st, err) == 0 && *running &&
        !st.running)
        rc = mgmt_exec(qmp, "cont", NULL, err);
    else if (rc == 0 && mr_error_is_set(err))
        rc = err->code;
    return rc;
}
