/*
 * `mapram save --transport socket`: the VM (QEMU 10) migrates with multifd
 * over a UNIX socket in a private directory of ours, and libmapram's
 * mr_peer_save writes the file: pages at their mapped-ram offsets with
 * O_DIRECT, the checksum trailer, fdatasync.  Only then does the header
 * flip to DONE (and a --force sibling replace FILE), and only then does
 * the VM hear SHUT(0) on its return path, so its `completed` means the
 * file is durable.  Any failure answers SHUT(1) (or closes the sockets)
 * so the VM fails its migration and roll_back() leaves it as it was.
 * docs/peer-save.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "save_run.h"
#include "mapram/peer.h"

#define ACCEPT_TIMEOUT_MS 30000

struct sock_save {
    struct save_run *r;
    struct mr_peer_save *ps;
    pthread_t thread;
    bool started;
    int done;                   /* atomic: run() returned */
    int rc;
    struct mr_error err;        /* run()'s */
    int fd_read;
    double start;
};

static void *receiver(void *opaque)
{
    struct sock_save *s = opaque;

    s->rc = mr_peer_save_run(s->ps, &s->err);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' :
           c >= 'a' && c <= 'f' ? c - 'a' + 10 :
           c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* query-uuid: the UUID QEMU puts in every multifd handshake. */
static int query_uuid(struct mr_qmp_client *c, uint8_t out[16],
                      struct mr_error *err)
{
    json_t *ret = mr_qmp_client_execute(c, "query-uuid", NULL, NULL, 0,
                                        MGMT_QMP_TIMEOUT_MS, err);
    const char *u = json_string_value(json_object_get(ret, "UUID"));
    int n = 0;

    for (const char *p = u; p && *p && n < 32; p++) {
        if (*p == '-')
            continue;
        if (hex(*p) < 0)
            break;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(hex(*p) << 4);
        else
            out[n / 2] |= (uint8_t)hex(*p);
        n++;
    }
    json_decref(ret);
    if (n != 32)
        return mr_error_set(err, -EPROTO, "query-uuid: no UUID in the reply");
    return 0;
}

bool save_socket_usable(struct save_run *r)
{
    struct mr_error ignore = MR_ERROR_INIT;
    uint8_t uuid[16];

    return strncmp(r->hdr.vm_version, "mapram-vm", 9) &&
           query_uuid(r->qmp, uuid, &ignore) == 0;
}

/* multifd over sockets, no mapped-ram, the return path on. */
static int configure(struct save_run *r, struct mr_error *err)
{
    json_t *caps = json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b}]",
                             "capability", "events", "state", 1,
                             "capability", "multifd", "state", 1,
                             "capability", "mapped-ram", "state", 0,
                             "capability", "return-path", "state", 1);
    json_t *params = json_pack("{s:i,s:b,s:I,s:s}", "multifd-channels",
                               (int)r->o.channels, "direct-io", 0,
                               "max-bandwidth", (json_int_t)0,
                               "multifd-compression", "none");

    if (params && r->o.io_engine)
        json_object_set_new(params, "x-io-engine", json_string(r->o.io_engine));
    if (!caps || !params) {
        json_decref(caps);
        json_decref(params);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    r->meta = json_pack("{s:s,s:{s:b,s:b,s:b,s:b},s:O}", "transport", "socket",
                        "capabilities", "events", 1, "multifd", 1,
                        "mapped-ram", 1, "return-path", 1,
                        "parameters", params);
    if (mgmt_exec(r->qmp, "migrate-set-capabilities",
                  json_pack("{s:o}", "capabilities", caps), err) < 0) {
        json_decref(params);
        return err->code;
    }
    if (mgmt_exec(r->qmp, "migrate-set-parameters", params, err) < 0) {
        if (r->o.io_engine && strstr(err->msg, "x-io-engine"))
            mr_error_prefix(err, "--io-engine needs a mapram-vm: ");
        return err->code;
    }
    return 0;
}

static int start_receiver(struct sock_save *s, struct mr_error *err)
{
    struct save_run *r = s->r;
    struct mr_peer_save_config cfg = {
        .listen_fd = -1,
        .expected_pid = mr_qmp_client_peer_pid(r->qmp),
        .channels = r->o.channels,
        .accept_timeout_ms = ACCEPT_TIMEOUT_MS,
        .fd = r->fd_main,
        .fd_direct = r->direct_io ? r->fd_direct : -1,
        .fd_read = -1,
        .stream_offset = r->hdr.stream_offset,
        /* guest RAM plus ROMs, VGA memory and the like */
        .max_ram_bytes = r->hdr.ram_size + (4ull << 30),
    };
    struct mr_error local = MR_ERROR_INIT;
    int rc;

    if (query_uuid(r->qmp, cfg.uuid, err) < 0)
        return err->code;
    s->fd_read = cli_reopen(r->fd_main, r->work_path, O_RDONLY, &local);
    cfg.fd_read = s->fd_read;
    if (mr_peer_save_new(&cfg, &s->ps, err) < 0)
        return err->code;
    rc = pthread_create(&s->thread, NULL, receiver, s);
    if (rc)
        return mr_error_set(err, -rc, "cannot start the receiver: %s",
                            strerror(rc));
    s->started = true;
    return 0;
}

static void sample(struct sock_save *s, struct progress_sample *ps,
                   const char *status)
{
    struct mr_peer_save_progress p;
    uint64_t got;

    mr_peer_save_progress(s->ps, &p);
    got = p.page_bytes + p.zero_pages * 4096;
    ps->op = "save";
    ps->status = status;
    ps->total_bytes = p.ram_total;
    ps->written_bytes = p.page_bytes;
    ps->remaining_bytes = got < p.ram_total ? p.ram_total - got : 0;
    ps->elapsed_s = mgmt_now_s() - s->start;
}

static bool receiver_done(struct sock_save *s)
{
    return __atomic_load_n(&s->done, __ATOMIC_ACQUIRE);
}

/* "migration failed: <the VM's error-desc>". */
static void vm_failure(struct mr_qmp_client *c, const char *status,
                       struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;
    json_t *info = mr_qmp_client_execute(c, "query-migrate", NULL, NULL, 0,
                                         MGMT_QMP_TIMEOUT_MS, &e);
    const char *desc = json_string_value(json_object_get(info,
                                                         "error-desc"));

    mr_error_set(err, -EIO, "migration %s%s%s", status, desc ? ": " : "",
                 desc ? desc : "");
    json_decref(info);
}

/* The receiver failed.  If only because the VM hung up (EPIPE: the cause
 * is on its side, e.g. a page channel it lost), the VM's own error says
 * more, so it comes first. */
static int receiver_failure(struct sock_save *s, struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;
    char status[32];

    if (s->err.code == -EPIPE) {
        for (int i = 0; i < 100; i++) {
            if (mgmt_query_migrate_status(s->r->qmp, status, sizeof(status),
                                          &e) < 0)
                break;
            if (!strcmp(status, "failed")) {
                vm_failure(s->r->qmp, status, err);
                return mr_error_prefix(err, "%s; ", s->err.msg);
            }
            if (!mgmt_migration_is_running(status))
                break;
            usleep(10000);
        }
    }
    return mr_error_propagate(err, &s->err);
}

/* Until the receiver is done or the VM's migration ended on its own. */
static int follow(struct sock_save *s, struct progress *prog,
                  struct mr_error *err)
{
    struct progress_sample ps;
    char status[32];

    for (;;) {
        if (mgmt_signal) {
            mr_error_set(err, -EINTR, "interrupted by %s",
                         mgmt_signal == SIGINT ? "SIGINT" : "SIGTERM");
            mr_peer_save_abort(s->ps, err->msg);
            return err->code;
        }
        if (receiver_done(s))
            return 0;
        if (mgmt_query_migrate_status(s->r->qmp, status, sizeof(status),
                                      err) < 0)
            return err->code;
        if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
            /* the receiver's own error is the better one: it names the
             * channel or the stream that failed (it may wait up to half a
             * second for its channels to report) */
            for (int i = 0; i < 100; i++) {
                if (receiver_done(s))
                    return 0;
                usleep(10000);
            }
            vm_failure(s->r->qmp, status, err);
            mr_peer_save_abort(s->ps, err->msg);
            return err->code;
        }
        sample(s, &ps, status);
        progress_report(prog, &ps, false);
        usleep(100000);
    }
}

/* After SHUT(0): the VM reports completed. */
static int wait_completed(struct save_run *r, struct mr_error *err)
{
    char status[32];

    for (int i = 0; i < 3000; i++) {
        if (mgmt_query_migrate_status(r->qmp, status, sizeof(status), err) < 0)
            return err->code;
        if (!strcmp(status, "completed"))
            return 0;
        if (!mgmt_migration_is_running(status))
            return mr_error_set(err, -EIO, "the VM reported '%s' after the "
                                "file was complete", status);
        usleep(10000);
    }
    return mr_error_set(err, -ETIMEDOUT, "the VM did not report completed "
                        "after the file was complete");
}

/* The file is durable: DONE, sync, put in place, then tell the VM. */
static int complete(struct sock_save *s, struct progress *prog,
                    struct mr_error *err)
{
    struct save_run *r = s->r;
    struct mr_peer_save_progress p;
    struct progress_sample ps;

    mr_peer_save_progress(s->ps, &p);
    r->direct_io = p.direct_io;
    r->hdr.stream_size = p.stream_size;
    r->hdr.state = MR_FILE_STATE_DONE;
    if (!p.direct_io)
        r->hdr.flags &= ~MR_FILE_FLAG_DIRECT_IO;
    if (save_write_header(r, err) < 0)
        return err->code;
    if (fdatasync(r->fd_main) < 0)
        return mr_error_set(err, -errno, "cannot sync '%s': %s", r->o.path,
                            strerror(errno));
    if (save_publish(r, err) < 0)
        return err->code;
    r->created = false;     /* complete: never removed from here on */
    if (mr_peer_save_finish(s->ps, true, err) < 0)
        return err->code;
    if (wait_completed(r, err) < 0)
        return err->code;
    sample(s, &ps, "completed");
    progress_report(prog, &ps, true);
    return 0;
}

static void cleanup(struct sock_save *s)
{
    if (s->started)
        pthread_join(s->thread, NULL);
    if (s->ps) {
        mr_peer_save_finish(s->ps, false, &(struct mr_error)MR_ERROR_INIT);
        mr_peer_save_free(s->ps);
    }
    if (s->fd_read >= 0)
        close(s->fd_read);
}

static int migrate(struct sock_save *s, struct mr_error *err)
{
    const char *uri = mr_peer_save_uri(s->ps);

    if (mgmt_exec(s->r->qmp, "migrate", json_pack("{s:s}", "uri", uri),
                  err) < 0) {
        mr_peer_save_abort(s->ps, err->msg);
        return err->code;
    }
    s->r->migration_started = true;
    return 0;
}

int save_socket_run(struct save_run *r, struct mr_error *err)
{
    struct sock_save s = { .r = r, .fd_read = -1, .start = mgmt_now_s() };
    struct progress prog;
    int rc;

    if (configure(r, err) < 0)
        return err->code;
    save_fill_header(r);
    if (save_write_header(r, err) < 0 ||
        (!r->o.live && save_pause_vm(r, err) < 0))
        return err->code;
    progress_init(&prog, mgmt_progress_mode(r->o.json),
                  r->o.json ? stdout : stderr);
    rc = start_receiver(&s, err);
    if (rc == 0)
        rc = migrate(&s, err);
    if (rc == 0)
        rc = follow(&s, &prog, err);
    if (s.started)
        pthread_join(s.thread, NULL);
    s.started = false;
    if (rc == 0 && s.rc < 0)
        rc = receiver_failure(&s, err);
    else if (rc < 0 && s.rc < 0 && err->code != -EINTR)
        mr_error_clear(err), rc = mr_error_propagate(err, &s.err);
    if (rc == 0)
        rc = complete(&s, &prog, err);
    progress_end(&prog);
    cleanup(&s);
    return rc;
}
