/*
 * The file transport (docs/multifd.md, "When multifd over a file applies"): `file:PATH[,offset=N]` and
 * /dev/fdset/N, QEMU's open messages, the O_DIRECT probe, the fdset rules,
 * never O_TRUNC below the offset; a FIFO without a reader is waited for on
 * the migration thread, never on the monitor's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/source.h"
#include "io/sys.h"
#include "mapram/fdset.h"
#include "migration/fdset_rules.h"
#include "migration/transport.h"

#define FILE_FIFO_RETRY_MS 20

static void close_fd(struct mig_chan *c, int fd)
{
    if (fd < 0)
        return;
    if (c->fdsets)
        mr_fdset_close(c->fdsets, fd);
    else
        close(fd);
}

/* Open `path` (or /dev/fdset/N) with `flags`, QEMU's messages. */
static int open_path(struct mig_chan *c, int flags, struct mr_error *err)
{
    const char *path = c->addr.path;
    int fd, e;

    if (mr_fdset_path_is_fdset(path)) {
        if (!c->fdsets)
            return mr_error_set(err, -ENOENT, "Failed to find fdset %s", path);
        return mr_fdset_open(c->fdsets, path, flags, err);
    }
    /* Through the mr_sys table, so fault-injection builds can fail it. */
    fd = mr_sys_default()->open(path, flags | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    e = errno;
    if ((flags & O_NONBLOCK) && e == ENXIO)
        return -ENXIO;  /* a FIFO nobody reads yet: the caller waits */
    if ((flags & O_DIRECT) && e == EINVAL) {
        int probe = open(path, (flags & ~O_DIRECT) | O_CLOEXEC, 0600);
        if (probe >= 0) {
            close(probe);
            return mr_error_set(err, -EINVAL, "Could not open '%s': "
                                "filesystem does not support O_DIRECT", path);
        }
    }
    return mr_error_set(err, -e, "Could not %s '%s': %s",
                        (flags & O_CREAT) ? "create" : "open", path,
                        strerror(e));
}

static int file_check(struct mr_fdset_registry *fdsets,
                      const struct mr_mig_addr *a, bool source, bool multifd,
                      bool dio, struct mr_error *err)
{
    if (!mr_fdset_path_is_fdset(a->path))
        return 0;
    return mr_fdset_rules_probe(fdsets, a->path, source, multifd, dio, err);
}

/* The opened main file: blocking again, never truncated below the offset. */
static int main_opened(struct mig_chan *c, int fd, struct mr_error *err)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0 && (fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (mr_sys_default()->ftruncate(fd, (off_t)c->addr.offset) < 0) {
        int e = errno;
        close_fd(c, fd);
        return mr_error_set(err, -e, "failed to truncate migration file to "
                            "offset %llx: %s",
                            (unsigned long long)c->addr.offset, strerror(e));
    }
    c->main_fd = fd;
    c->main_pending = false;
    return 0;
}

/* O_NONBLOCK: a FIFO without a reader fails with ENXIO instead of
 * blocking; for anything else the flag changes nothing. */
static int file_open_save(struct mig_chan *c, struct mr_error *err)
{
    int fd = open_path(c, O_CREAT | O_WRONLY | O_NONBLOCK, err);

    if (fd == -ENXIO) {
        c->main_pending = true;
        return 0;
    }
    return fd < 0 ? fd : main_opened(c, fd, err);
}

static int wait_main(struct mig_chan *c, mig_cancelled_fn cancelled,
                     void *opaque, struct mr_error *err)
{
    const struct timespec ts = { 0, FILE_FIFO_RETRY_MS * 1000000L };

    for (;;) {
        int fd;

        if (cancelled(opaque))
            return mr_error_set(err, -ECANCELED, "Migration cancelled");
        fd = open_path(c, O_CREAT | O_WRONLY | O_NONBLOCK, err);
        if (fd != -ENXIO)
            return fd < 0 ? fd : main_opened(c, fd, err);
        nanosleep(&ts, NULL);
    }
}

static int open_channels(struct mig_chan *c, int flags, struct mr_error *err)
{
    for (unsigned i = 0; i < c->nchan; i++) {
        int fd = open_path(c, flags | (c->dio ? O_DIRECT : 0), err);

        if (fd < 0)
            return fd;
        c->fds[i] = fd;
    }
    return 0;
}

static int file_open_save_finish(struct mig_chan *c, mig_cancelled_fn cancelled,
                                 void *opaque, struct mr_error *err)
{
    int rc = c->main_pending ? wait_main(c, cancelled, opaque, err) : 0;

    return rc ? rc : open_channels(c, O_WRONLY, err);
}

static int file_open_load(struct mig_chan *c, struct mr_error *err)
{
    int fd = open_path(c, O_RDONLY, err);

    if (fd < 0)
        return fd;
    c->main_fd = fd;
    return open_channels(c, O_RDONLY, err);
}

static int file_write_main(struct mig_chan *c, const void *buf, size_t len,
                           uint64_t off, struct mr_error *err)
{
    int rc = mr_sys_pwrite_all(mr_sys_default(), c->main_fd, buf, len,
                               (off_t)off);

    if (rc)
        return mr_error_set(err, rc, "Unable to write to file: %s",
                            strerror(-rc));
    return 0;
}

static int file_source(struct mig_chan *c, struct mr_source *src,
                       struct mr_error *err)
{
    return mr_source_init_fd(src, c->main_fd, err);
}

static int file_sync_main(struct mig_chan *c, struct mr_error *err)
{
    if (mr_sys_default()->fdatasync(c->main_fd) < 0)
        return mr_error_set(err, -errno, "Unable to sync file: %s",
                            strerror(errno));
    return 0;
}

static void file_close(struct mig_chan *c)
{
    for (unsigned i = 0; i < c->nchan; i++) {
        close_fd(c, c->fds[i]);
        c->fds[i] = -1;
    }
    /* direct-io means "leave the page cache alone": drop what the buffered
     * main stream (headers, bitmaps, device state, trailer) pulled in */
    if (c->loading && c->dio && c->main_fd >= 0)
        (void)posix_fadvise(c->main_fd, 0, 0, POSIX_FADV_DONTNEED);
    close_fd(c, c->main_fd);
    c->main_fd = -1;
}

const struct mig_transport_ops mig_transport_file = {
    .name = "file",
    .seekable = true,
    .check = file_check,
    .open_save = file_open_save,
    .open_save_finish = file_open_save_finish,
    .open_load = file_open_load,
    .write_main = file_write_main,
    .source = file_source,
    .sync_main = file_sync_main,
    .close = file_close,
};
