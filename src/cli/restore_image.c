/*
 * `mapram restore` for libvirt images and bare QEMU saves: walk the file,
 * take the stream offset from where it was found and the capabilities
 * from the stream, then feed QEMU through one of two feeds (an fdset on
 * the file, or a decompressor's pipe handed over with getfd).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "restore_image.h"
#include "save_common.h"
#include "mapram/format.h"
#include "mapram/image.h"

#define IMAGE_FD_NAME "mapram-image"

extern char **environ;

struct feed;

/* How the stream reaches QEMU: chosen once per restore. */
struct feed_ops {
    int (*attach)(struct feed *f, struct mr_qmp_client *qmp,
                  struct mr_error *err);
    /* `failed`: the load went wrong already; only clean up. */
    int (*detach)(struct feed *f, struct mr_qmp_client *qmp, bool failed,
                  struct mr_error *err);
};

struct feed {
    const struct feed_ops *ops;
    int fd;                     /* the image file */
    uint64_t offset;            /* where the QEMU stream starts */
    const char *tool;           /* decompressor (pipe feed) */
    pid_t child;
    int64_t fdset_id;
    char uri[96];
};

/* ---- the file itself, through an fdset ---- */

static int file_attach(struct feed *f, struct mr_qmp_client *qmp,
                       struct mr_error *err)
{
    if (mgmt_add_fds(qmp, &f->fd, 1, &f->fdset_id, err) < 0)
        return err->code;
    snprintf(f->uri, sizeof(f->uri), "file:/dev/fdset/%" PRId64
             ",offset=%" PRIu64, f->fdset_id, f->offset);
    return 0;
}

static int file_detach(struct feed *f, struct mr_qmp_client *qmp,
                       bool failed, struct mr_error *err)
{
    int64_t id = f->fdset_id;

    (void)failed;
    f->fdset_id = -1;
    return id < 0 ? 0 : mgmt_remove_fdset(qmp, id, err);
}

static const struct feed_ops file_feed = { file_attach, file_detach };

/* ---- a decompressor's output, through getfd and fd: ---- */

static bool in_path(const char *tool)
{
    const char *path = getenv("PATH");
    char buf[4096];

    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");

        if (n && n + strlen(tool) + 2 <= sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, tool);
            if (access(buf, X_OK) == 0)
                return true;
        }
        p += n + (p[n] == ':');
    }
    return false;
}

/* The child reads the file from the stream's start on its stdin. */
static int spawn_tool(struct feed *f, int out, struct mr_error *err)
{
    char *argv[] = { (char *)f->tool, "-dc", NULL };
    posix_spawn_file_actions_t fa;
    int rc;

    if (lseek(f->fd, (off_t)f->offset, SEEK_SET) < 0)
        return mr_error_set(err, -errno, "cannot seek to the stream: %s",
                            strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, f->fd, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    rc = posix_spawnp(&f->child, f->tool, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return mr_error_set(err, -rc, "cannot start '%s -dc': %s", f->tool,
                            strerror(rc));
    return 0;
}

static int pipe_attach(struct feed *f, struct mr_qmp_client *qmp,
                       struct mr_error *err)
{
    int p[2];
    json_t *ret;

    if (pipe2(p, O_CLOEXEC) < 0)
        return mr_error_set(err, -errno, "pipe: %s", strerror(errno));
    if (spawn_tool(f, p[1], err) < 0) {
        close(p[0]);
        close(p[1]);
        return err->code;
    }
    close(p[1]);
    ret = mr_qmp_client_execute(qmp, "getfd", json_pack("{s:s}", "fdname",
                                IMAGE_FD_NAME), &p[0], 1, MGMT_QMP_TIMEOUT_MS,
                                err);
    close(p[0]);
    if (!ret)
        return mr_error_prefix(err, "getfd: ");
    json_decref(ret);
    snprintf(f->uri, sizeof(f->uri), "fd:%s", IMAGE_FD_NAME);
    return 0;
}

/* The decompressor must have read the whole stream without a complaint. */
static int pipe_detach(struct feed *f, struct mr_qmp_client *qmp,
                       bool failed, struct mr_error *err)
{
    int status;
    pid_t child = f->child;

    (void)qmp;
    f->child = 0;
    if (child <= 0)
        return 0;
    if (failed)
        kill(child, SIGTERM);
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (failed)
        return 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return mr_error_set(err, -EIO, "'%s -dc' failed (status 0x%x) while "
                            "decompressing the image", f->tool, status);
    return 0;
}

static const struct feed_ops pipe_feed = { pipe_attach, pipe_detach };

/* ---- choosing and checking ---- */

bool restore_image_wanted(const char *path, int64_t offset)
{
    uint8_t sector[MR_FILE_HEADER_SECTOR];
    struct mr_error err = MR_ERROR_INIT;
    int fd;
    ssize_t n;

    if (offset >= 0)
        return true;
    fd = cli_open_regular(path, O_RDONLY, &err);
    if (fd < 0)
        return false;   /* the mapram path reports the error */
    n = pread(fd, sector, sizeof(sector), 0);
    close(fd);
    return n >= 4 && (!memcmp(sector, "QEVM", 4) ||
                      !memcmp(sector, "LibvirtQemud", 12));
}

/* libvirt's compressed formats 1-5 are named after their tools. */
static bool compressed(const struct mr_location *l)
{
    return l->kind == MR_CONTAINER_LIBVIRT && l->libvirt.format >= 1 &&
           l->libvirt.format <= 5;
}

static int check_image(const char *path, const struct mr_walk *w,
                       const struct mr_error *walk_err, struct feed *f,
                       struct mr_error *err)
{
    const struct mr_location *l = &w->loc;

    if (l->kind == MR_CONTAINER_LIBVIRT && !l->libvirt.complete)
        return mr_error_set(err, -EINVAL, "%s: incomplete libvirt image "
                            "(LibvirtQemudPart): the save did not finish, so "
                            "it cannot be restored", path);
    if (compressed(l)) {
        f->ops = &pipe_feed;
        f->tool = mr_libvirt_format_name(l->libvirt.format);
        if (!in_path(f->tool))
            return mr_error_set(err, -ENOENT, "%s: a %s-compressed libvirt "
                                "image needs the '%s' tool to restore, and "
                                "it was not found in PATH", path, f->tool,
                                f->tool);
    } else if (mr_error_is_set(walk_err)) {
        return mr_error_set(err, walk_err->code, "%s: %s", path,
                            walk_err->msg);
    } else if (l->incomplete) {
        return mr_error_set(err, -EINVAL, "%s: incomplete save file: the "
                            "save did not finish", path);
    }
    f->offset = l->stream_offset;
    return 0;
}

/* A sealed mapped-ram file (mapram seal) is checked extent by extent
 * before the VM is touched, so bit rot never reaches a guest; without a
 * trailer this is the layout check alone. */
static int check_data(const char *path, int fd, const struct mr_walk *w,
                      struct mr_error *err)
{
    struct mr_verify_report rep;

    if (compressed(&w->loc) || !w->mapped_ram)
        return 0;
    if (mr_image_verify(fd, w, &rep, err) < 0)
        return mr_error_prefix(err, "%s: ", path);
    return 0;
}

/* Compressed streams are never mapped-ram: QEMU needs a seekable file
 * for it. */
static int set_capabilities(struct mr_qmp_client *qmp, bool mapped_ram,
                            struct mr_error *err)
{
    json_t *caps = json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b}]",
                             "capability", "events", "state", 1,
                             "capability", "multifd", "state", 0,
                             "capability", "mapped-ram", "state", mapped_ram);

    if (!caps)
        return mr_error_set(err, -ENOMEM, "out of memory");
    return mgmt_exec(qmp, "migrate-set-capabilities",
                     json_pack("{s:o}", "capabilities", caps), err);
}

static int start_incoming(struct mr_qmp_client *qmp, struct feed *f,
                          bool mapped_ram, bool run, struct mr_error *err)
{
    if (mgmt_check_incoming(qmp, err) < 0 ||
        set_capabilities(qmp, mapped_ram, err) < 0)
        return err->code;
    /* in "inmigrate", stop only clears autostart: the guest stays paused */
    if (!run && mgmt_exec(qmp, "stop", NULL, err) < 0)
        return err->code;
    if (f->ops->attach(f, qmp, err) < 0)
        return err->code;
    return mgmt_exec(qmp, "migrate-incoming",
                     json_pack("{s:s,s:b}", "uri", f->uri, "exit-on-error", 0),
                     err);
}

/* --running or --paused win; else libvirt's was_running; else run. */
static bool want_running(const struct restore_image_opts *o,
                         const struct mr_location *l)
{
    if (o->running || o->paused)
        return o->running;
    if (l->kind == MR_CONTAINER_LIBVIRT)
        return l->libvirt.was_running != 0;
    return true;
}

static int load(const struct restore_image_opts *o, struct feed *f,
                const struct mr_walk *w, bool run, struct mr_error *err)
{
    struct mr_qmp_client *qmp = NULL;
    struct mr_error ignore = MR_ERROR_INIT;
    struct mgmt_vm_status st;
    struct progress prog;
    int rc;

    rc = mgmt_connect(o->socket_path, o->timeout_ms, &qmp, err);
    if (rc == 0)
        rc = start_incoming(qmp, f, !compressed(&w->loc) && w->mapped_ram,
                            run, err);
    if (rc == 0) {
        progress_init(&prog, mgmt_progress_mode(o->json),
                      o->json ? stdout : stderr);
        rc = mgmt_follow_migration(qmp, &prog, "restore", false, err);
    }
    if (qmp && f->ops->detach(f, qmp, rc != 0, rc ? &ignore : err) < 0 &&
        rc == 0)
        rc = err->code;
    if (rc == 0 && mgmt_query_status(qmp, &st, err) == 0 && run &&
        !st.running)
        rc = mgmt_exec(qmp, "cont", NULL, err);
    else if (rc == 0 && mr_error_is_set(err))
        rc = err->code;
    if (qmp)
        mr_qmp_client_close(qmp);
    return rc;
}

int restore_image(const struct restore_image_opts *o, bool *running,
                  struct mr_error *err)
{
    struct feed f = { .ops = &file_feed, .fdset_id = -1 };
    struct mr_error walk_err = MR_ERROR_INIT;
    struct mr_walk w;
    int rc;

    f.fd = cli_open_regular(o->path, O_RDONLY, err);
    if (f.fd < 0)
        return mr_error_prefix(err, "Could not open '%s': ", o->path);
    mr_image_walk(f.fd, o->offset, &w, &walk_err);
    rc = check_image(o->path, &w, &walk_err, &f, err);
    if (rc == 0)
        rc = check_data(o->path, f.fd, &w, err);
    *running = want_running(o, &w.loc);
    if (rc == 0)
        rc = load(o, &f, &w, *running, err);
    mr_walk_free(&w);
    close(f.fd);
    return rc;
}
