/*
 * psync: positional pwritev/preadv completing inside queue(), one request
 * at a time on the calling thread.  The reference engine: no state, no
 * kernel features, works on any descriptor.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "io/engine.h"

static int psync_init(struct mr_io_engine *e, unsigned depth,
                      struct mr_error *err)
{
    (void)e;
    (void)depth;
    (void)err;
    return 0;
}

static int psync_queue(struct mr_io_engine *e, struct mr_io_req *req)
{
    (void)e;
    for (;;) {
        int cnt = req->iovcnt < IOV_MAX ? req->iovcnt : IOV_MAX;
        off_t off = (off_t)(req->offset + req->done);
        ssize_t n = req->dir == MR_IO_WRITE ? pwritev(req->fd, req->iov, cnt, off)
                                            : preadv(req->fd, req->iov, cnt, off);

        if (mr_io_req_complete(req, n < 0 ? -errno : n))
            return MR_IO_DONE;
    }
}

static int psync_commit(struct mr_io_engine *e)
{
    (void)e;
    return 0;
}

static int psync_reap(struct mr_io_engine *e, unsigned min,
                      struct mr_io_req **out, unsigned max)
{
    (void)e;
    (void)min;
    (void)out;
    (void)max;
    return 0;
}

static int psync_sync(struct mr_io_engine *e, int fd)
{
    (void)e;
    return fdatasync(fd) < 0 ? -errno : 0;
}

static void psync_close(struct mr_io_engine *e)
{
    (void)e;
}

const struct mr_io_ops mr_io_psync_ops = {
    .name = "psync",
    .caps = MR_IO_CAP_DIRECT_OK,
    .init = psync_init,
    .queue = psync_queue,
    .commit = psync_commit,
    .reap = psync_reap,
    .sync = psync_sync,
    .close = psync_close,
};
